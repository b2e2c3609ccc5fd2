/* infrastructure/cluster_redis/im_redis.c: see the header.
 *
 * Everything hiredis touches lives on the "redis" thread: other threads
 * only queue commands and wake the loop. Each connection (the command one,
 * and one per consumer) is a `conn` that is either down (waiting for its
 * reconnect timer), connecting, or up. hiredis frees a context after its
 * connect callback reports a failure and after its disconnect callback, so
 * `ac` is cleared there and never used after. */
#include "im_redis.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "im_log.h"

#define BACKOFF_FIRST_MS 100u
#define BACKOFF_MAX_MS 5000u
#define TICK_MS 100
#define BLOCK_MS 1000

typedef struct cmd {
    struct cmd *next, *prev;      /* the queue, then the connection's in-flight list */
    char *buf;                    /* RESP, from redisFormatCommandArgv */
    size_t len;
    uint64_t sent_ms;
    im_redis_reply_fn fn;
    void *arg;
    struct conn *conn;            /* while in flight */
} cmd;

typedef enum { CONN_DOWN, CONN_CONNECTING, CONN_UP } conn_state;

typedef struct consumer consumer;

typedef struct conn {
    im_redis *owner;
    redisAsyncContext *ac;
    conn_state state;
    bool was_up;                  /* for logging once per change */
    unsigned failures;            /* since the last success: the backoff's exponent */
    uint64_t connect_started_ms;
    uint64_t retry_at_ms;         /* when down */
    cmd inflight;                 /* sentinel of a circular list, oldest first */
    bool drop;                    /* close it on the next tick (not from a hiredis callback) */
    consumer *cons;               /* NULL: the command connection */
} conn;

struct consumer {
    consumer *next;
    char *stream, *group, *name;
    bool from_start;              /* a group made here reads the whole stream ("0"), not "$" */
    unsigned count;
    im_redis_entry_fn fn;
    void *arg;
    bool history_done;            /* read its own pending entries ("0") since connecting */
    uint64_t read_sent_ms;        /* the read in flight (0: none) */
    conn c;
};

struct im_redis {
    char *host;
    uint16_t port;
    char *password;
    unsigned connect_timeout_ms, command_timeout_ms;
    struct event_base *base;
    struct event *wake, *tick;
    pthread_t thread;
    pthread_mutex_t lock;         /* queue, new consumers, stopping, up */
    cmd *queue_head, **queue_tail;
    consumer *new_consumers;
    bool stopping;
    bool up;                      /* mirror of the command connection, for other threads */
    uint64_t ups;                 /* times the command connection came up */
    conn commands;
    consumer *consumers;          /* the thread's */
    unsigned rand_state;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void answer(cmd *c, int rc, const redisReply *reply, const char *why)
{
    if (c->fn) {
        im_error err = { 0 };
        if (rc != IM_OK)
            im_error_set(&err, rc, "%s", why);
        c->fn(c->arg, rc, reply, rc == IM_OK ? NULL : &err);
    }
    free(c->buf);
    free(c);
}

static void inflight_init(conn *k)
{
    k->inflight.next = k->inflight.prev = &k->inflight;
}

static void inflight_remove(cmd *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void set_up(im_redis *r, conn *k, bool up)
{
    if (!k->cons) {
        pthread_mutex_lock(&r->lock);
        if (up && !r->up)
            r->ups++;
        r->up = up;
        pthread_mutex_unlock(&r->lock);
    }
}

/* Backoff for the failures-th try in a row, with jitter: half of it fixed,
 * half random, so that nodes restarted together do not knock together. */
static uint64_t backoff_ms(im_redis *r, unsigned failures)
{
    uint64_t d = BACKOFF_FIRST_MS;
    for (unsigned i = 1; i < failures && d < BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    return d / 2 + (uint64_t)rand_r(&r->rand_state) % (d / 2 + 1);
}

static void went_down(im_redis *r, conn *k, const char *why)
{
    k->ac = NULL;
    k->state = CONN_DOWN;
    k->failures++;
    k->retry_at_ms = now_ms() + backoff_ms(r, k->failures);
    if (k->was_up) {
        k->was_up = false;
        if (k->cons)
            IM_DEBUG("redis: stream %s: connection lost (%s)", k->cons->stream, why);
        else
            IM_WARN("redis: lost %s:%u (%s); reconnecting", r->host, r->port, why);
    }
    set_up(r, k, false);
    /* hiredis answered every command in flight (with NULL) before this. */
}

/* ---- consumers ---- */

static void consumer_read(consumer *s);

static void on_group_created(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    consumer *s = priv;
    redisReply *rep = reply;
    if (!rep)
        return; /* the connection went: it starts again on reconnect */
    if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "BUSYGROUP", 9) != 0)
        IM_WARN("redis: stream %s: cannot create group %s: %s", s->stream, s->group, rep->str);
    consumer_read(s);
}

static void consumer_create_group(consumer *s)
{
    redisAsyncCommand(s->c.ac, on_group_created, s, "XGROUP CREATE %s %s %s MKSTREAM", s->stream,
                      s->group, s->from_start ? "0" : "$");
}

static void on_read(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    consumer *s = priv;
    redisReply *rep = reply;
    if (!rep || s->c.state != CONN_UP)
        return;
    s->read_sent_ms = 0;
    if (rep->type == REDIS_REPLY_ERROR) {
        if (strncmp(rep->str, "NOGROUP", 7) == 0 || strncmp(rep->str, "UNBLOCKED", 9) == 0) {
            /* Redis restarted without its data, or the stream was deleted
             * under a blocked read: the group is gone. */
            IM_INFO("redis: stream %s: group %s is gone; creating it again", s->stream, s->group);
            s->history_done = false;
            consumer_create_group(s);
        } else {
            IM_WARN("redis: stream %s: read refused: %s", s->stream, rep->str);
            s->c.drop = true; /* on the next tick, and read again after a backoff */
        }
        return;
    }
    size_t got = 0;
    /* [[stream, [[id, [field, value, ...]], ...]]] or nil on timeout */
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1) {
        redisReply *st = rep->element[0];
        if (st->type == REDIS_REPLY_ARRAY && st->elements == 2 &&
            st->element[1]->type == REDIS_REPLY_ARRAY) {
            redisReply *entries = st->element[1];
            for (size_t i = 0; i < entries->elements; i++) {
                redisReply *e = entries->element[i];
                if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                    e->element[0]->type != REDIS_REPLY_STRING)
                    continue;
                got++;
                /* An entry read back from the pending list after it was
                 * deleted has a nil field list: just ack it. */
                if (e->element[1]->type == REDIS_REPLY_ARRAY)
                    s->fn(s->arg, e->element[0]->str, e->element[1]);
                if (s->c.state != CONN_UP)
                    return;
                redisAsyncCommand(s->c.ac, NULL, NULL, "XACK %s %s %s", s->stream, s->group,
                                  e->element[0]->str);
            }
        }
    }
    if (!s->history_done && got == 0)
        s->history_done = true;
    consumer_read(s);
}

/* First this consumer's entries read before and not acked (a connection
 * lost between handing one over and its XACK), then new ones. */
static void consumer_read(consumer *s)
{
    char count[16], block[16];
    snprintf(count, sizeof count, "%u", s->count);
    snprintf(block, sizeof block, "%d", BLOCK_MS);
    const char *argv[] = { "XREADGROUP", "GROUP", s->group, s->name, "COUNT", count,
                           "BLOCK", block, "STREAMS", s->stream, s->history_done ? ">" : "0" };
    int argc = sizeof argv / sizeof argv[0];
    if (!s->history_done) /* no BLOCK for the pending list: it answers at once */
        memmove(&argv[6], &argv[8], 3 * sizeof argv[0]), argc -= 2;
    s->read_sent_ms = now_ms();
    redisAsyncCommandArgv(s->c.ac, on_read, s, argc, argv, NULL);
}

/* ---- connections ---- */

static void conn_start(im_redis *r, conn *k);

static void on_connect(const redisAsyncContext *ac, int status)
{
    conn *k = ac->data;
    im_redis *r = k->owner;
    if (status != REDIS_OK) {
        went_down(r, k, ac->errstr);
        return;
    }
    k->state = CONN_UP;
    k->failures = 0;
    k->drop = false;
    redisEnableKeepAlive(&k->ac->c); /* a peer gone silent is noticed */
    if (!k->was_up) {
        k->was_up = true;
        if (k->cons)
            IM_DEBUG("redis: stream %s: reading", k->cons->stream);
        else
            IM_INFO("redis: connected to %s:%u", r->host, r->port);
    }
    set_up(r, k, true);
    if (k->cons) {
        k->cons->history_done = false;
        k->cons->read_sent_ms = 0;
        consumer_create_group(k->cons);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    conn *k = ac->data;
    went_down(k->owner, k, status == REDIS_OK ? "closed" : ac->errstr);
}

static void conn_start(im_redis *r, conn *k)
{
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac || ac->err) {
        char why[128];
        snprintf(why, sizeof why, "%s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        went_down(r, k, why);
        return;
    }
    ac->data = k;
    k->ac = ac;
    k->state = CONN_CONNECTING;
    k->connect_started_ms = now_ms();
    redisLibeventAttach(ac, r->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (r->password && *r->password)
        redisAsyncCommand(ac, NULL, NULL, "AUTH %s", r->password);
}

/* The answer to a command: hiredis calls this with NULL when the
 * connection goes with the command in flight. */
static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    cmd *c = priv;
    im_redis *r = c->conn->owner;
    inflight_remove(c);
    if (reply)
        answer(c, IM_OK, reply, NULL);
    else
        answer(c, r->stopping ? IM_ESHUTDOWN : IM_EIO,
               NULL, r->stopping ? "the cluster link is stopping" : "Redis connection lost");
}

static void send_queued(im_redis *r, cmd *list)
{
    while (list) {
        cmd *c = list;
        list = c->next;
        c->next = NULL;
        conn *k = &r->commands;
        if (k->state != CONN_UP) {
            answer(c, IM_EIO, NULL, "Redis is unreachable");
            continue;
        }
        c->conn = k;
        c->sent_ms = now_ms();
        c->prev = k->inflight.prev;
        c->next = &k->inflight;
        k->inflight.prev->next = c;
        k->inflight.prev = c;
        if (redisAsyncFormattedCommand(k->ac, on_reply, c, c->buf, c->len) != REDIS_OK) {
            inflight_remove(c);
            answer(c, IM_EIO, NULL, "Redis connection lost");
        }
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    im_redis *r = arg;
    pthread_mutex_lock(&r->lock);
    cmd *list = r->queue_head;
    r->queue_head = NULL;
    r->queue_tail = &r->queue_head;
    consumer *fresh = r->new_consumers;
    r->new_consumers = NULL;
    bool stopping = r->stopping;
    pthread_mutex_unlock(&r->lock);
    if (stopping) {
        while (list) {
            cmd *c = list;
            list = c->next;
            answer(c, IM_ESHUTDOWN, NULL, "the cluster link is stopping");
        }
        while (fresh) {
            consumer *s = fresh;
            fresh = s->next;
            s->next = r->consumers;
            r->consumers = s;
        }
        event_base_loopbreak(r->base);
        return;
    }
    while (fresh) {
        consumer *s = fresh;
        fresh = s->next;
        s->next = r->consumers;
        r->consumers = s;
        conn_start(r, &s->c);
    }
    send_queued(r, list);
}

/* True when the oldest command, or a consumer's blocking read, has waited
 * past the command timeout (a read may block BLOCK_MS by itself). */
static bool stuck(const im_redis *r, const conn *k, uint64_t now)
{
    if (k->cons)
        return k->cons->read_sent_ms &&
               now - k->cons->read_sent_ms > BLOCK_MS + r->command_timeout_ms;
    return k->inflight.next != &k->inflight &&
           now - k->inflight.next->sent_ms > r->command_timeout_ms;
}

/* Every TICK_MS: reconnect what is due, give up on a connect or a command
 * that takes too long (dropping the connection answers what is in flight). */
static void check_conn(im_redis *r, conn *k, uint64_t now)
{
    if (k->state == CONN_DOWN && now >= k->retry_at_ms) {
        conn_start(r, k);
    } else if (k->state == CONN_CONNECTING &&
               now - k->connect_started_ms > r->connect_timeout_ms) {
        redisAsyncContext *ac = k->ac;
        k->ac = NULL;
        redisAsyncFree(ac); /* not connected: no disconnect callback */
        went_down(r, k, "connect timed out");
    } else if (k->state == CONN_UP && (k->drop || stuck(r, k, now))) {
        /* A hard close: hiredis's redisAsyncDisconnect would wait for the
         * answers a hung server never sends. Freeing answers what is in
         * flight with NULL and calls on_disconnect, which marks it down. */
        if (!k->drop)
            IM_WARN("redis: no answer from %s:%u for %u ms; dropping the connection", r->host,
                    r->port, r->command_timeout_ms);
        k->drop = false;
        redisAsyncFree(k->ac);
        if (k->ac) /* on_disconnect did not run: it was not marked connected */
            went_down(r, k, "dropped");
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    im_redis *r = arg;
    uint64_t now = now_ms();
    check_conn(r, &r->commands, now);
    for (consumer *s = r->consumers; s; s = s->next)
        check_conn(r, &s->c, now);
}

static void conn_close(conn *k)
{
    if (k->ac) {
        redisAsyncContext *ac = k->ac;
        k->ac = NULL;
        k->was_up = false;
        redisAsyncFree(ac); /* answers what is in flight with NULL */
    }
    k->state = CONN_DOWN;
}

static void *redis_main(void *arg)
{
    im_redis *r = arg;
    im_log_set_thread_name("redis");
    conn_start(r, &r->commands);
    event_base_dispatch(r->base);
    conn_close(&r->commands);
    for (consumer *s = r->consumers; s; s = s->next)
        conn_close(&s->c);
    return NULL;
}

/* ---- API ---- */

int im_redis_new(const im_redis_config *cfg, im_redis **out, im_error *err)
{
    *out = NULL;
    if (!cfg->host || !*cfg->host || cfg->port == 0)
        return im_error_set(err, IM_EINVAL, "cluster: no Redis host and port");
    evthread_use_pthreads();
    im_redis *r = calloc(1, sizeof *r);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    r->host = strdup(cfg->host);
    r->password = cfg->password && *cfg->password ? strdup(cfg->password) : NULL;
    r->port = cfg->port;
    r->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 2000;
    r->command_timeout_ms = cfg->command_timeout_ms ? cfg->command_timeout_ms : 5000;
    if (r->command_timeout_ms < 2 * BLOCK_MS)
        r->command_timeout_ms = 2 * BLOCK_MS; /* a consumer's blocking read is no timeout */
    r->queue_tail = &r->queue_head;
    r->commands.owner = r;
    inflight_init(&r->commands);
    r->rand_state = (unsigned)now_ms() ^ (unsigned)(uintptr_t)r;
    pthread_mutex_init(&r->lock, NULL);
    r->base = event_base_new();
    if (r->base) {
        r->wake = event_new(r->base, -1, 0, on_wake, r);
        r->tick = event_new(r->base, -1, EV_PERSIST, on_tick, r);
    }
    struct timeval tv = { 0, TICK_MS * 1000 };
    if (!r->host || (cfg->password && *cfg->password && !r->password) || !r->base || !r->wake ||
        !r->tick || event_add(r->tick, &tv) != 0 ||
        pthread_create(&r->thread, NULL, redis_main, r) != 0) {
        if (r->wake)
            event_free(r->wake);
        if (r->tick)
            event_free(r->tick);
        if (r->base)
            event_base_free(r->base);
        pthread_mutex_destroy(&r->lock);
        free(r->host);
        free(r->password);
        free(r);
        return im_error_set(err, IM_ENOMEM, "cluster: cannot start the Redis link");
    }
    *out = r;
    return IM_OK;
}

int im_redis_command(im_redis *r, im_redis_reply_fn fn, void *arg, int argc,
                     const char *const *argv, const size_t *len)
{
    cmd *c = calloc(1, sizeof *c);
    char *buf = NULL;
    long long n = c ? redisFormatCommandArgv(&buf, argc, (const char **)(uintptr_t)argv, len) : -1;
    if (!c || n < 0) {
        free(c);
        return IM_ENOMEM;
    }
    c->buf = buf;
    c->len = (size_t)n;
    c->fn = fn;
    c->arg = arg;
    pthread_mutex_lock(&r->lock);
    if (r->stopping) {
        pthread_mutex_unlock(&r->lock);
        free(buf);
        free(c);
        return IM_ESHUTDOWN;
    }
    bool was_empty = r->queue_head == NULL;
    *r->queue_tail = c;
    r->queue_tail = &c->next;
    pthread_mutex_unlock(&r->lock);
    if (was_empty)
        event_active(r->wake, 0, 0);
    return IM_OK;
}

static int consume(im_redis *r, const char *stream, const char *group, const char *consumer_name,
                   bool from_start, unsigned count, im_redis_entry_fn fn, void *arg);

int im_redis_consume(im_redis *r, const char *stream, const char *group, const char *consumer_name,
                     unsigned count, im_redis_entry_fn fn, void *arg)
{
    return consume(r, stream, group, consumer_name, false, count, fn, arg);
}

int im_redis_consume_all(im_redis *r, const char *stream, const char *group,
                         const char *consumer_name, unsigned count, im_redis_entry_fn fn,
                         void *arg)
{
    return consume(r, stream, group, consumer_name, true, count, fn, arg);
}

static int consume(im_redis *r, const char *stream, const char *group, const char *consumer_name,
                   bool from_start, unsigned count, im_redis_entry_fn fn, void *arg)
{
    if (!stream || !*stream || !group || !*group || !consumer_name || !*consumer_name || !fn)
        return IM_EINVAL;
    consumer *s = calloc(1, sizeof *s);
    if (!s)
        return IM_ENOMEM;
    s->stream = strdup(stream);
    s->group = strdup(group);
    s->name = strdup(consumer_name);
    if (!s->stream || !s->group || !s->name) {
        free(s->stream); free(s->group); free(s->name); free(s);
        return IM_ENOMEM;
    }
    s->count = count ? count : 100;
    s->from_start = from_start;
    s->fn = fn;
    s->arg = arg;
    s->c.owner = r;
    s->c.cons = s;
    inflight_init(&s->c);
    pthread_mutex_lock(&r->lock);
    if (r->stopping) {
        pthread_mutex_unlock(&r->lock);
        free(s->stream); free(s->group); free(s->name); free(s);
        return IM_ESHUTDOWN;
    }
    s->next = r->new_consumers;
    r->new_consumers = s;
    pthread_mutex_unlock(&r->lock);
    event_active(r->wake, 0, 0);
    return IM_OK;
}

bool im_redis_connected(im_redis *r)
{
    pthread_mutex_lock(&r->lock);
    bool up = r->up;
    pthread_mutex_unlock(&r->lock);
    return up;
}

uint64_t im_redis_connections(im_redis *r)
{
    pthread_mutex_lock(&r->lock);
    uint64_t n = r->ups;
    pthread_mutex_unlock(&r->lock);
    return n;
}

void im_redis_destroy(im_redis *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stopping = true;
    pthread_mutex_unlock(&r->lock);
    event_active(r->wake, 0, 0);
    pthread_join(r->thread, NULL);
    /* Commands queued after the last wake-up. */
    on_wake(-1, 0, r);
    event_free(r->wake);
    event_free(r->tick);
    event_base_free(r->base);
    while (r->consumers) {
        consumer *s = r->consumers;
        r->consumers = s->next;
        free(s->stream); free(s->group); free(s->name); free(s);
    }
    pthread_mutex_destroy(&r->lock);
    free(r->host);
    if (r->password) {
        memset(r->password, 0, strlen(r->password));
        free(r->password);
    }
    free(r);
}
