/* tests/cluster/test_redis.c: the cluster's Redis link against a real
 * Redis (started by tests/services/run_with.py, address in
 * IMCORE_TEST_REDIS). Commands are answered on the link's thread; a stream
 * consumer gets every entry once, in order, and acks it; a connection
 * killed under it is made again and what was handed out but not acked
 * comes again; a group that vanished (Redis restarted empty) is created
 * again; a Redis that hangs fails commands with IM_EIO after the command
 * timeout, and the link recovers by itself when it answers again. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "im_log.h"
#include "im_redis.h"

#define DEADLINE_MS 15000

static char host[64];
static unsigned port;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A command's answer, waited for on a condition. */
typedef struct answer {
    pthread_mutex_t lock;
    pthread_cond_t done;
    bool have;
    int rc;
    int type;
    char str[256];
    long long integer;
} answer;

static void on_answer(void *arg, int rc, const redisReply *r, const im_error *err)
{
    answer *a = arg;
    pthread_mutex_lock(&a->lock);
    a->rc = rc;
    a->type = r ? r->type : -1;
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
              r->type == REDIS_REPLY_ERROR))
        snprintf(a->str, sizeof a->str, "%s", r->str);
    else if (!r && err)
        snprintf(a->str, sizeof a->str, "%s", err->msg);
    a->integer = r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    a->have = true;
    pthread_cond_broadcast(&a->done);
    pthread_mutex_unlock(&a->lock);
}

/* Runs the command and waits for its answer (fails past the deadline). */
static answer run(im_redis *r, int argc, const char *const *argv)
{
    answer a = { .have = false };
    pthread_mutex_init(&a.lock, NULL);
    pthread_cond_init(&a.done, NULL);
    assert_int_equal(im_redis_command(r, on_answer, &a, argc, argv, NULL), IM_OK);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += DEADLINE_MS / 1000;
    pthread_mutex_lock(&a.lock);
    while (!a.have)
        if (pthread_cond_timedwait(&a.done, &a.lock, &until) != 0)
            break;
    bool have = a.have;
    pthread_mutex_unlock(&a.lock);
    if (!have)
        fail_msg("no answer to %s within %d ms", argv[0], DEADLINE_MS);
    answer out = a;
    pthread_cond_destroy(&a.done);
    pthread_mutex_destroy(&a.lock);
    return out;
}

#define RUN(r, ...)                                                           \
    run((r), (int)(sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(char *)), \
        (const char *const[]){ __VA_ARGS__ })

static void poll_until(bool (*cond)(void *), void *arg, const char *what)
{
    uint64_t start = now_ms();
    while (!cond(arg)) {
        if (now_ms() - start > DEADLINE_MS)
            fail_msg("not within %d ms: %s", DEADLINE_MS, what);
        struct timespec ts = { 0, 20 * 1000000L };
        nanosleep(&ts, NULL); /* polling a state that has no condition to wait on */
    }
}

static bool is_connected(void *r) { return im_redis_connected(r); }

static im_redis *open_link(unsigned command_timeout_ms)
{
    im_redis_config cfg = { .host = host, .port = (uint16_t)port,
                            .command_timeout_ms = command_timeout_ms };
    im_redis *r = NULL;
    im_error err = { 0 };
    assert_int_equal(im_redis_new(&cfg, &r, &err), IM_OK);
    poll_until(is_connected, r, "the link connected");
    return r;
}

/* What a consumer got: ids and the value of field "n", in order. */
typedef struct got {
    pthread_mutex_t lock;
    int n;
    int values[512];
} got;

static void on_entry(void *arg, const char *id, const redisReply *fields)
{
    (void)id;
    got *g = arg;
    int v = -1;
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (strcmp(fields->element[i]->str, "n") == 0)
            v = atoi(fields->element[i + 1]->str);
    pthread_mutex_lock(&g->lock);
    if (g->n < 512)
        g->values[g->n++] = v;
    pthread_mutex_unlock(&g->lock);
}

typedef struct want { got *g; int n; } want;

static bool has_n(void *arg)
{
    want *w = arg;
    pthread_mutex_lock(&w->g->lock);
    bool ok = w->g->n >= w->n;
    pthread_mutex_unlock(&w->g->lock);
    return ok;
}

static void xadd(im_redis *r, const char *stream, int n)
{
    char v[16];
    snprintf(v, sizeof v, "%d", n);
    answer a = RUN(r, "XADD", stream, "*", "n", v);
    assert_int_equal(a.rc, IM_OK);
    assert_int_equal(a.type, REDIS_REPLY_STRING);
}

static void test_commands(void **state)
{
    (void)state;
    im_redis *r = open_link(0);
    answer a = RUN(r, "SET", "imcore:test:k", "v1");
    assert_int_equal(a.rc, IM_OK);
    assert_string_equal(a.str, "OK");
    a = RUN(r, "GET", "imcore:test:k");
    assert_string_equal(a.str, "v1");
    a = RUN(r, "NOSUCHCOMMAND");
    assert_int_equal(a.rc, IM_OK); /* Redis's own refusal is an answer */
    assert_int_equal(a.type, REDIS_REPLY_ERROR);
    im_redis_destroy(r);
}

static void test_consumer_in_order_and_acked(void **state)
{
    (void)state;
    im_redis *r = open_link(0);
    got g = { .n = 0 };
    pthread_mutex_init(&g.lock, NULL);
    assert_int_equal(im_redis_consume(r, "imcore:test:s1", "nodes", "node-1", 10, on_entry, &g),
                     IM_OK);
    /* The group is made at "$": wait for it before adding. */
    poll_until(is_connected, r, "connected");
    uint64_t start = now_ms();
    for (;;) {
        answer a = RUN(r, "XINFO", "GROUPS", "imcore:test:s1");
        if (a.type == REDIS_REPLY_ARRAY || now_ms() - start > DEADLINE_MS)
            break;
        struct timespec ts = { 0, 20 * 1000000L };
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < 100; i++)
        xadd(r, "imcore:test:s1", i);
    want w = { &g, 100 };
    poll_until(has_n, &w, "100 entries consumed");
    pthread_mutex_lock(&g.lock);
    for (int i = 0; i < 100; i++)
        assert_int_equal(g.values[i], i);
    pthread_mutex_unlock(&g.lock);
    /* Every one acked: nothing pending for the group. */
    start = now_ms();
    for (;;) {
        answer a = RUN(r, "XPENDING", "imcore:test:s1", "nodes");
        (void)a;
        /* XPENDING's summary starts with the count: read it as a command of its own */
        answer c = RUN(r, "EVAL", "return redis.call('XPENDING', KEYS[1], ARGV[1])[1]", "1",
                       "imcore:test:s1", "nodes");
        if (c.integer == 0)
            break;
        if (now_ms() - start > DEADLINE_MS)
            fail_msg("%lld entries still pending", c.integer);
    }
    im_redis_destroy(r);
    pthread_mutex_destroy(&g.lock);
}

static void wait_group(im_redis *r, const char *stream)
{
    uint64_t start = now_ms();
    for (;;) {
        answer a = RUN(r, "EVAL", "return #redis.call('XINFO', 'GROUPS', KEYS[1])", "1", stream);
        if (a.rc == IM_OK && a.type == REDIS_REPLY_INTEGER && a.integer > 0)
            return;
        if (now_ms() - start > DEADLINE_MS)
            fail_msg("no consumer group on %s", stream);
        struct timespec ts = { 0, 20 * 1000000L };
        nanosleep(&ts, NULL);
    }
}

/* Redis restarted without its data: the group is gone (NOGROUP); the
 * consumer creates it again and reads what comes after. A killed
 * connection is made again. */
static void test_consumer_survives_lost_group_and_kill(void **state)
{
    (void)state;
    im_redis *r = open_link(0);
    got g = { .n = 0 };
    pthread_mutex_init(&g.lock, NULL);
    assert_int_equal(im_redis_consume(r, "imcore:test:s2", "nodes", "node-1", 10, on_entry, &g),
                     IM_OK);
    wait_group(r, "imcore:test:s2");
    xadd(r, "imcore:test:s2", 1);
    want w = { &g, 1 };
    poll_until(has_n, &w, "the first entry");

    answer a = RUN(r, "DEL", "imcore:test:s2"); /* the stream and its group */
    assert_int_equal(a.integer, 1);
    wait_group(r, "imcore:test:s2");
    xadd(r, "imcore:test:s2", 2);
    w.n = 2;
    poll_until(has_n, &w, "an entry after the group was made again");

    /* Every client connection killed: both connections come back. */
    a = RUN(r, "CLIENT", "KILL", "TYPE", "normal");
    poll_until(is_connected, r, "the link connected again");
    wait_group(r, "imcore:test:s2");
    /* A command may meet the dying connection: retry until it lands. */
    uint64_t start = now_ms();
    while (RUN(r, "XADD", "imcore:test:s2", "*", "n", "3").rc != IM_OK)
        if (now_ms() - start > DEADLINE_MS)
            fail_msg("XADD never went through after the kill");
    w.n = 3;
    poll_until(has_n, &w, "an entry after the connections were killed");
    pthread_mutex_lock(&g.lock);
    assert_int_equal(g.values[0], 1);
    assert_int_equal(g.values[1], 2);
    assert_int_equal(g.values[g.n - 1], 3);
    pthread_mutex_unlock(&g.lock);
    im_redis_destroy(r);
    pthread_mutex_destroy(&g.lock);
}

/* A Redis that stops answering (SIGSTOP): commands fail with IM_EIO after
 * the command timeout; when it answers again (SIGCONT) the link is back
 * by itself. */
static void test_hung_redis(void **state)
{
    (void)state;
    im_redis *r = open_link(2000);
    answer info = RUN(r, "EVAL", "return redis.call('INFO','server'):match('process_id:(%d+)')",
                      "0");
    int pid = atoi(info.str);
    assert_true(pid > 1);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    uint64_t t0 = now_ms();
    answer a = RUN(r, "PING");
    uint64_t took = now_ms() - t0;
    assert_int_equal(kill(pid, SIGCONT), 0);
    assert_int_equal(a.rc, IM_EIO);
    print_message("a command to a hung Redis failed after %llu ms (timeout 2000 ms)\n",
                  (unsigned long long)took);
    assert_true(took >= 1900 && took < 6000);
    poll_until(is_connected, r, "the link back after Redis answers again");
    uint64_t start = now_ms();
    while ((a = RUN(r, "PING")).rc != IM_OK)
        if (now_ms() - start > DEADLINE_MS)
            fail_msg("PING never answered after SIGCONT");
    assert_string_equal(a.str, "PONG");
    im_redis_destroy(r);
}

static void test_down_answers_at_once(void **state)
{
    (void)state;
    im_redis_config cfg = { .host = "127.0.0.1", .port = 1 }; /* nothing listens */
    im_redis *r = NULL;
    assert_int_equal(im_redis_new(&cfg, &r, NULL), IM_OK);
    uint64_t t0 = now_ms();
    answer a = RUN(r, "PING");
    assert_int_equal(a.rc, IM_EIO);
    assert_true(now_ms() - t0 < 1000);
    im_redis_destroy(r);
    cfg.port = 0;
    assert_int_equal(im_redis_new(&cfg, &r, NULL), IM_EINVAL);
}

int main(void)
{
    const char *addr = getenv("IMCORE_TEST_REDIS");
    if (!addr || !strchr(addr, ':')) {
        fprintf(stderr, "IMCORE_TEST_REDIS is not set: run through "
                        "tests/services/run_with.py redis -- test_redis\n");
        return 1;
    }
    snprintf(host, sizeof host, "%.*s", (int)(strchr(addr, ':') - addr), addr);
    port = (unsigned)atoi(strchr(addr, ':') + 1);
    im_log_set_level(IM_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_down_answers_at_once),
        cmocka_unit_test(test_consumer_in_order_and_acked),
        cmocka_unit_test(test_consumer_survives_lost_group_and_kill),
        cmocka_unit_test(test_hung_redis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
