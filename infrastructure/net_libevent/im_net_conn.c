/* infrastructure/net_libevent/im_net_conn.c: one client connection, on the
 * worker that owns it: bytes in, frames out, requests handed to the
 * application, answers written back.
 *
 * A connection is never freed inside one of its own callbacks: closing marks
 * it, tells the peer why, and the worker's reap event frees it after the
 * output has drained (or a grace period has run out). So a handler may close
 * any connection, its own included, and carry on safely. */
#include "im_net_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "im_codec.h"
#include "im_log.h"

#define CLOSE_GRACE_S 2          /* how long a closing peer gets to read its last frames */
#define READ_CHUNK 16384
#define READ_ROUNDS 4            /* per wake-up, so one busy peer cannot starve the rest */
#define SHUTDOWN_READ_ROUNDS 64  /* 1 MiB: what a peer had sent when shutdown began */

static void take_frames(im_conn *c);
static void read_input(im_conn *c, int rounds);

/* ---- the slot table: conn id -> conn, for this worker only ---- */

static int slot_take(im_worker *w, uint32_t *slot)
{
    if (w->nfree) {
        *slot = w->free_slots[--w->nfree];
        return IM_OK;
    }
    uint32_t n = w->nslots ? w->nslots * 2 : 64;
    im_conn **slots = realloc(w->slots, n * sizeof *slots);
    if (!slots)
        return IM_ENOMEM;
    w->slots = slots;
    uint32_t *fs = realloc(w->free_slots, n * sizeof *fs);
    if (!fs)
        return IM_ENOMEM;
    w->free_slots = fs;
    for (uint32_t i = n; i-- > w->nslots + 1;)
        w->free_slots[w->nfree++] = i;
    for (uint32_t i = w->nslots; i < n; i++)
        w->slots[i] = NULL;
    *slot = w->nslots;
    w->nslots = n;
    return IM_OK;
}

im_conn *im__conn_find(im_worker *w, uint64_t id)
{
    uint32_t slot = (uint32_t)id;
    if (slot >= w->nslots)
        return NULL;
    im_conn *c = w->slots[slot];
    return c && c->id == id && !c->closing ? c : NULL;
}

/* ---- writing ----
 *
 * Writes only append to the connection's output buffer and put the
 * connection on its worker's flush list; the worker writes every listed
 * connection once per loop iteration, just before it waits again (as Redis
 * does before sleeping). So a burst of answers and deliveries costs one
 * writev, and the write event is registered only when the kernel's buffer
 * is full, instead of being added and removed around every write. */

static void want_flush(im_conn *c)
{
    if (!c->flush_listed) {
        c->flush_listed = true;
        c->next_flush = c->w->flush;
        c->w->flush = c;
    }
}

void im__conn_send(im_conn *c, const uint8_t *data, size_t len)
{
    if (c->closing)
        return;
    if (evbuffer_get_length(c->out) + len > c->w->srv->cfg.output_buffer_bytes) {
        IM_WARN("user=%s peer=%s closing a slow consumer: %zu bytes unsent",
                im__conn_who(c), c->peer, evbuffer_get_length(c->out));
        im__conn_close(c, IM_EBUSY, "too much unread output: closing a slow consumer");
        return;
    }
    evbuffer_add(c->out, data, len);
    want_flush(c);
}

/* Packs env straight into the output buffer's free space: no copy. */
void im__conn_send_envelope(im_conn *c, Imcore__Envelope *env)
{
    bool farewell = c->closing && env->body_case == IMCORE__ENVELOPE__BODY_ERROR;
    if (c->closing && !farewell)
        return;
    env->type = im_envelope_type_for(env->body_case);
    size_t size = im_frame_size_bound(env);
    /* The last words of a closing connection skip the output limit. */
    if (!farewell && evbuffer_get_length(c->out) + size > c->w->srv->cfg.output_buffer_bytes) {
        IM_WARN("user=%s peer=%s closing a slow consumer: %zu bytes unsent",
                im__conn_who(c), c->peer, evbuffer_get_length(c->out));
        im__conn_close(c, IM_EBUSY, "too much unread output: closing a slow consumer");
        return;
    }
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(c->out, (ev_ssize_t)size, &v, 1) != 1 || v.iov_len < size) {
        im__conn_close(c, IM_ENOMEM, "out of memory");
        return;
    }
    v.iov_len = im_frame_pack(env, v.iov_base);
    evbuffer_commit_space(c->out, &v, 1);
    want_flush(c);
}

static void error_frame(im_conn *c, uint64_t request_id, int code, const char *msg,
                        const char *client_msg_id, bool in_order)
{
    Imcore__Error e;
    char text[IM_ERROR_TEXT_BYTES];
    im__error_fill(&e, code, msg, client_msg_id, text);
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.request_id = request_id;
    env.body_case = IMCORE__ENVELOPE__BODY_ERROR;
    env.error = &e;
    if (in_order)
        im__conn_answer_now(c, &env);
    else
        im__conn_send_envelope(c, &env);
}

void im__conn_send_error(im_conn *c, uint64_t request_id, int code, const char *msg,
                         const char *client_msg_id)
{
    error_frame(c, request_id, code, msg, client_msg_id, false);
}

/* ---- answers in request order ---- */

/* Held answers past this many bytes stop the connection taking requests
 * until they are out: a flood of requests refused at once (over the rate
 * limit, say) behind one slow request costs bounded memory. */
#define HELD_BYTES_MAX (64u * 1024u)

static void input_end(im_conn *c);

void im__conn_expect_answer(im_conn *c)
{
    c->accepted++;
    c->w->unanswered++;
}

void im__conn_answer_error(im_conn *c, uint64_t request_id, int code, const char *msg,
                           const char *client_msg_id)
{
    error_frame(c, request_id, code, msg, client_msg_id, true);
}

void im__conn_refused(im_conn *c, uint64_t request_id, int code, const char *msg,
                      const char *client_msg_id)
{
    if (c->closing)
        return; /* the close has settled what was owed */
    c->accepted--;
    c->w->unanswered--;
    im__conn_answer_error(c, request_id, code, msg, client_msg_id);
}

void im__conn_answer_now(im_conn *c, Imcore__Envelope *env)
{
    if (c->answered == c->accepted || c->closing) {
        im__conn_send_envelope(c, env);
        return;
    }
    env->type = im_envelope_type_for(env->body_case);
    size_t bound = im_frame_size_bound(env);
    im_held_answer *h = malloc(sizeof *h + bound);
    if (!h) {
        im__conn_close(c, IM_ENOMEM, "out of memory");
        return;
    }
    h->next = NULL;
    h->after = c->accepted;
    h->len = im_frame_pack(env, h->data);
    if (c->held_tail)
        c->held_tail->next = h;
    else
        c->held_head = h;
    c->held_tail = h;
    c->held_bytes += h->len;
}

static void held_free(im_conn *c)
{
    while (c->held_head) {
        im_held_answer *h = c->held_head;
        c->held_head = h->next;
        free(h);
    }
    c->held_tail = NULL;
    c->held_bytes = 0;
}

/* Takes requests again once nothing is owed. */
static void resume(im_conn *c)
{
    c->paused = false;
    if (!c->input_ended && !c->input_done)
        event_add(c->rev, NULL);
    take_frames(c);
    if (!c->paused && !c->closing && c->input_ended && c->answered == c->accepted)
        input_end(c);
    /* TLS reads ahead: records may wait in the SSL while the socket is
     * empty, and then no readable event would come. */
    if (c->ssl && !c->paused && !c->closing && !c->input_ended && !c->input_done &&
        im__tls_has_pending(c->ssl))
        event_active(c->rev, EV_READ, 0);
}

/* One more answer has come: what was held behind it follows. */
static void answered(im_conn *c)
{
    if (c->closing)
        return; /* closed meanwhile (a slow consumer): the close settled it */
    c->answered++;
    c->w->unanswered--;
    while (c->held_head && c->held_head->after <= c->answered) {
        im_held_answer *h = c->held_head;
        c->held_head = h->next;
        if (!c->held_head)
            c->held_tail = NULL;
        c->held_bytes -= h->len;
        im__conn_send(c, h->data, h->len);
        free(h);
    }
    /* An answer that came at once, inside take_frames: its loop goes on. */
    if (c->answered != c->accepted || c->closing || c->taking)
        return;
    if (c->paused)
        resume(c);
    else if (c->input_ended)
        input_end(c);
}

void im__conn_answer_later(im_conn *c, Imcore__Envelope *env)
{
    im__conn_send_envelope(c, env);
    answered(c);
}

void im__conn_answer_frame(im_conn *c, const uint8_t *data, size_t len)
{
    im__conn_send(c, data, len);
    answered(c);
}

/* Whether the request env must wait for the answers owed before it: reads
 * and a logout must see what came before them, and nothing is taken while
 * a login is being checked. Sends and membership changes are answered by
 * the store in the order they reach it, so they go on, as do requests
 * answered at once (held behind), up to a bound. */
static bool must_wait(const im_conn *c, const Imcore__Envelope *env)
{
    if (c->answered == c->accepted)
        return false;
    if (c->login_pending)
        return true;
    switch (env->body_case) {
    case IMCORE__ENVELOPE__BODY_PRIVATE_MESSAGE:
    case IMCORE__ENVELOPE__BODY_GROUP_MESSAGE:
    case IMCORE__ENVELOPE__BODY_GROUP_CREATE:
    case IMCORE__ENVELOPE__BODY_GROUP_JOIN:
    case IMCORE__ENVELOPE__BODY_GROUP_LEAVE:
    case IMCORE__ENVELOPE__BODY_DELIVERY_ACK:
    case IMCORE__ENVELOPE__BODY_PING:
        return c->held_bytes > HELD_BYTES_MAX;
    default:
        return true;
    }
}

/* Hands the connection to the reap event, which frees it outside of any of
 * its callbacks. */
static void retire(im_conn *c)
{
    if (c->reaping)
        return;
    c->reaping = true;
    c->closing = true;
    event_del(c->rev);
    if (c->wev)
        event_del(c->wev);
    c->next_dead = c->w->dead;
    c->w->dead = c;
    event_active(c->w->reap, 0, 0);
}

/* Writes what the socket takes now. Returns false if the connection broke
 * (it is then closed without a farewell). */
static bool write_out(im_conn *c)
{
    while (evbuffer_get_length(c->out) > 0) {
        int n = c->ssl ? im__tls_write(c) : evbuffer_write(c->out, c->fd);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break;
        IM_DEBUG("peer=%s write failed: %s", c->peer, n < 0 ? strerror(errno) : "closed");
        evbuffer_drain(c->out, evbuffer_get_length(c->out));
        if (c->closing)
            retire(c);
        else
            im__conn_close(c, 0, "connection broken");
        return false;
    }
    return true;
}

static void on_writable(evutil_socket_t fd, short what, void *arg);

/* After a write: wait for the socket to drain if data is left, else stop
 * waiting; a closing connection whose output is out is done. */
static void after_write(im_conn *c)
{
    if (c->reaping)
        return;
    /* A TLS read that needs the socket writable waits like output does. */
    bool left = evbuffer_get_length(c->out) > 0 || c->tls_read_wants_write;
    if (left && !c->wev) {
        c->wev = event_new(c->w->base, c->fd, EV_WRITE | EV_PERSIST, on_writable, c);
        if (!c->wev) {
            retire(c);
            return;
        }
    }
    if (left && !c->wev_added) {
        event_add(c->wev, NULL);
        c->wev_added = true;
    } else if (!left && c->wev_added) {
        event_del(c->wev);
        c->wev_added = false;
    }
    if (!left && c->closing)
        retire(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    im_conn *c = arg;
    if (c->tls_read_wants_write) {
        c->tls_read_wants_write = false;
        if (!c->closing && !c->paused && !c->input_ended && !c->input_done)
            read_input(c, READ_ROUNDS);
        if (c->reaping)
            return;
    }
    if (write_out(c))
        after_write(c);
}

void im__worker_flush(im_worker *w)
{
    while (w->flush) {
        im_conn *c = w->flush;
        w->flush = c->next_flush;
        c->flush_listed = false;
        if (c->reaping || c->wev_added) /* a waiting socket is written when writable */
            continue;
        if (write_out(c))
            after_write(c);
    }
}

/* ---- life and death ---- */

static void on_readable(evutil_socket_t fd, short what, void *arg);

void im__conn_accept(im_worker *w, int fd, const char *peer, im_listener *lis, struct ssl_st *ssl)
{
    im_net_server *srv = w->srv;
    uint32_t slot;
    im_conn *c = calloc(1, sizeof *c);
    if (!c || slot_take(w, &slot) != IM_OK) {
        IM_ERROR("peer=%s out of memory accepting a connection", peer);
        free(c);
        im__tls_free(ssl, false);
        close(fd);
        atomic_fetch_sub(&srv->connections, 1);
        atomic_fetch_sub(&lis->connections, 1);
        im__limiter_close_unauthenticated(srv, peer);
        return;
    }
    c->fd = fd;
    c->ssl = ssl;
    c->lis = lis;
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    c->rev = event_new(w->base, fd, EV_READ | EV_PERSIST, on_readable, c);
    if (!c->in || !c->out || !c->rev) {
        IM_ERROR("peer=%s out of memory accepting a connection", peer);
        w->free_slots[w->nfree++] = slot;
        im__conn_destroy(c);
        atomic_fetch_sub(&srv->connections, 1);
        atomic_fetch_sub(&lis->connections, 1);
        im__limiter_close_unauthenticated(srv, peer);
        return;
    }
    c->w = w;
    c->id = ((uint64_t)++w->generation << 32) | slot;
    c->ep = (im_endpoint){ .node = srv->cfg.node, .worker = w->index, .conn_id = c->id };
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->opened_ms = im__monotonic_ms();
    c->unauth_counted = true; /* by the acceptor */
    srv->core->session_init(&c->session, atomic_fetch_add(&srv->next_session_id, 1),
                           c->opened_ms);
    w->slots[slot] = c;
    w->live++;
    event_add(c->rev, NULL);
    IM_DEBUG("peer=%s connected on %s (session %llu)", peer, lis->kind,
             (unsigned long long)im__conn_session_id(c));
}

void im__conn_destroy(im_conn *c)
{
    held_free(c);
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    if (c->in)
        evbuffer_free(c->in);
    if (c->out)
        evbuffer_free(c->out);
    if (c->ssl)
        im__tls_free(c->ssl, !c->tls_failed);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

void im__conn_close(im_conn *c, int code, const char *why)
{
    if (c->closing)
        return;
    /* Closing first: the farewell below bypasses the output limit, and a
     * slow consumer's close cannot recurse through im__conn_send. */
    c->closing = true;
    /* A TLS peer hears nothing before its handshake is done. */
    if (code != 0 && (!c->ssl || im__tls_established(c->ssl)))
        im__conn_send_error(c, 0, code, why, NULL);
    if (c->w->srv->core->session_is_authenticated(&c->session))
        IM_INFO("user=%s peer=%s session %llu closed: %s", im__conn_who(c), c->peer,
                (unsigned long long)im__conn_session_id(c), why ? why : "logout");
    else
        IM_DEBUG("peer=%s session %llu closed: %s", c->peer,
                 (unsigned long long)im__conn_session_id(c), why ? why : "closed");
    c->w->srv->core->session_closed(c->w->srv->app, &c->session, &c->ep, code);
    event_del(c->rev);
    /* Answers still to come find the connection gone: owe them no more. */
    c->w->unanswered -= c->accepted - c->answered;
    c->answered = c->accepted;
    held_free(c);
    im__conn_settle_limits(c);
    c->w->input_bytes -= c->in_counted;
    c->in_counted = 0;
    if (evbuffer_get_length(c->out) == 0) {
        retire(c);
        return;
    }
    /* Let the last frames go out, but not forever: the sweep drops a peer
     * that has not read them by the deadline. */
    c->close_deadline_ms = im__monotonic_ms() + CLOSE_GRACE_S * 1000u;
    want_flush(c);
}

void im__conn_reap(im_worker *w)
{
    while (w->dead) {
        im_conn *c = w->dead;
        w->dead = c->next_dead;
        uint32_t slot = (uint32_t)c->id;
        w->slots[slot] = NULL;
        w->free_slots[w->nfree++] = slot;
        w->live--;
        atomic_fetch_sub(&c->lis->connections, 1);
        im__conn_destroy(c);
        atomic_fetch_sub(&w->srv->connections, 1);
    }
    if (w->shutting_down && w->live == 0)
        event_base_loopexit(w->base, NULL);
}

/* Shutdown, first step. What a peer sent before it still counts: an ack
 * left unread would be a message delivered again after the restart, a
 * request left unread one its sender never hears about. So the input
 * already in each socket is taken (bounded: a peer that keeps sending
 * cannot hold the shutdown up), nothing more is read, and the worker
 * reports once every request taken has its answer: stored messages acked
 * and handed to receivers online here. */
void im__worker_drain(im_worker *w)
{
    w->draining = true;
    for (uint32_t i = 0; i < w->nslots; i++) {
        im_conn *c = w->slots[i];
        if (!c || c->closing)
            continue;
        if (!c->input_ended)
            read_input(c, SHUTDOWN_READ_ROUNDS);
        if (!c->closing) {
            c->input_done = true;
            event_del(c->rev);
        }
    }
    im__worker_check_drained(w);
}

void im__worker_check_drained(im_worker *w)
{
    if (!w->draining || w->drain_reported || w->unanswered != 0)
        return;
    w->drain_reported = true;
    im_net_server *srv = w->srv;
    pthread_mutex_lock(&srv->drain_lock);
    srv->drained++;
    pthread_cond_broadcast(&srv->drain_cond);
    pthread_mutex_unlock(&srv->drain_lock);
}

/* Shutdown, last step: every session is told and closed. */
void im__worker_close_all(im_worker *w)
{
    for (uint32_t i = 0; i < w->nslots; i++) {
        im_conn *c = w->slots[i];
        if (c && !c->closing)
            im__conn_close(c, IM_ESHUTDOWN, "the server is shutting down");
    }
    if (w->live == 0)
        event_base_loopexit(w->base, NULL);
}

/* Once a second: sessions silent too long, connections that have not
 * logged in by their deadline and frames begun but not finished by theirs
 * are closed, and closing ones whose peer did not take their last frames in
 * time are dropped. */
void im__conn_sweep_idle(im_worker *w)
{
    const im_net_config *cfg = &w->srv->cfg;
    uint64_t now = im__monotonic_ms();
    uint64_t timeout = (uint64_t)cfg->idle_timeout_s * 1000u;
    uint64_t login_ms = (uint64_t)cfg->login_timeout_s * 1000u;
    uint64_t frame_ms = (uint64_t)cfg->frame_timeout_s * 1000u;
    for (uint32_t i = 0; i < w->nslots; i++) {
        im_conn *c = w->slots[i];
        if (!c || c->reaping)
            continue;
        if (c->closing) {
            if (now >= c->close_deadline_ms)
                retire(c);
        } else if (c->ssl && !im__tls_established(c->ssl) && now - c->opened_ms >= login_ms) {
            IM_INFO("peer=%s closed: TLS handshake not completed within "
                    "session.login_timeout_s (%u s)", c->peer, cfg->login_timeout_s);
            im__conn_close(c, 0, "TLS handshake not completed in time");
        } else if (!w->srv->core->session_is_authenticated(&c->session) &&
                   now - c->opened_ms >= login_ms) {
            IM_INFO("peer=%s closed: not logged in within login_timeout_s (%u s)", c->peer,
                    cfg->login_timeout_s);
            im__conn_close(c, IM_EIDLE, "not logged in within login_timeout_s");
        } else if (c->frame_started_ms && now - c->frame_started_ms >= frame_ms) {
            IM_WARN("user=%s peer=%s closed: a frame was not completed within "
                    "frame_timeout_s (%u s)", im__conn_who(c), c->peer, cfg->frame_timeout_s);
            im__conn_close(c, IM_EIDLE, "a frame was not completed within frame_timeout_s");
        } else if (w->srv->core->session_is_idle(&c->session, now, timeout)) {
            im__conn_close(c, IM_EIDLE, "no heartbeat within idle_timeout_s");
        }
    }
}

/* The peer has closed its sending side and every frame before the end
 * has been taken and answered: half a frame left is an error (the peer
 * may still read it), otherwise the session ends. */
static void input_end(im_conn *c)
{
    size_t left = evbuffer_get_length(c->in);
    if (left > 0) {
        char why[96];
        snprintf(why, sizeof why, "the connection ended inside a frame (%zu bytes)", left);
        IM_WARN("user=%s peer=%s %s", im__conn_who(c), c->peer, why);
        im__conn_close(c, IM_EPROTO, why);
        return;
    }
    im__conn_close(c, 0, "peer closed the connection");
}

/* Reads what the socket has, at most rounds chunks (into the input buffer's
 * own space: no ioctl to ask how much first), then takes every complete
 * frame. A frame over the limit is refused from its header alone, before
 * anything is allocated. */
static void read_input(im_conn *c, int rounds)
{
    int fd = c->fd;
    int round = 0;
    for (; round < rounds; round++) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(c->in, READ_CHUNK, &v, 1) != 1) {
            im__conn_close(c, IM_ENOMEM, "out of memory");
            return;
        }
        ssize_t n = c->ssl ? im__tls_read(c, v.iov_base, v.iov_len)
                           : read(fd, v.iov_base, v.iov_len);
        if (n > 0) {
            v.iov_len = (size_t)n;
            evbuffer_commit_space(c->in, &v, 1);
            /* A short read empties the socket; SSL_read returns a record
             * at a time, so TLS reads on until it would block. */
            if ((size_t)n < READ_CHUNK && !c->ssl)
                break;
            continue;
        }
        evbuffer_commit_space(c->in, &v, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (c->tls_read_wants_write)
                after_write(c); /* waits for writable, then reads again */
            round = -1;         /* the socket is empty: the next readable event comes */
            break;
        }
        take_frames(c); /* what came before the end still counts */
        if (c->closing)
            return;
        if (n < 0) {
            IM_DEBUG("peer=%s read failed: %s", c->peer, strerror(errno));
            im__conn_close(c, 0, "connection error");
            return;
        }
        /* The end: what was taken still gets its answers first. */
        c->input_ended = true;
        event_del(c->rev);
        if (!c->paused && c->answered == c->accepted)
            input_end(c);
        return;
    }
    take_frames(c);
    /* Rounds used up: a plain socket with more is readable again at once;
     * what TLS read ahead into the SSL needs its own wake-up. */
    if (round == rounds && c->ssl && !c->closing && !c->paused && im__tls_has_pending(c->ssl))
        event_active(c->rev, EV_READ, 0);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    im_conn *c = arg;
    /* A TLS wake-up (event_active) may find the input stopped meanwhile. */
    if (c->ssl && (c->paused || c->closing || c->input_ended || c->input_done))
        return;
    read_input(c, READ_ROUNDS);
}

/* After frames were taken: the input left counts against the worker's
 * share of limits.input_buffer_bytes, and a frame left half-read starts
 * (or keeps) its deadline. Half frames are what a slow or malicious client
 * makes the server hold, so one that pushes the worker past its share is
 * closed; complete frames waiting their turn (paused) are not. */
static void account_input(im_conn *c, uint64_t now, bool took)
{
    if (c->closing)
        return;
    im_worker *w = c->w;
    size_t len = evbuffer_get_length(c->in);
    w->input_bytes = w->input_bytes + len - c->in_counted;
    c->in_counted = len;
    if (len == 0 || c->paused) {
        c->frame_started_ms = 0;
        return;
    }
    if (took || !c->frame_started_ms)
        c->frame_started_ms = now;
    if (w->input_bytes > w->srv->cfg.input_budget_bytes / w->srv->nworkers) {
        IM_WARN("user=%s peer=%s closed: %zu bytes of a frame held while the server's input "
                "is over limits.input_buffer_bytes", im__conn_who(c), c->peer, len);
        im__conn_close(c, IM_EBUSY, "too much unfinished input on the server: send whole frames");
    }
}

static void take_frames(im_conn *c)
{
    struct evbuffer *in = c->in;
    uint32_t max = c->w->srv->cfg.max_frame_bytes;
    uint64_t now = im__monotonic_ms();
    bool took = false;

    c->taking = true;
    while (!c->closing && !c->paused) {
        size_t avail = evbuffer_get_length(in);
        if (avail < IM_FRAME_HEADER_BYTES)
            break;
        uint8_t hdr[IM_FRAME_HEADER_BYTES];
        evbuffer_copyout(in, hdr, sizeof hdr);
        uint32_t len;
        if (im_frame_length(hdr, max, &len) != IM_OK) {
            char why[96];
            snprintf(why, sizeof why, "frame of %u bytes is over the limit of %u bytes", len, max);
            IM_WARN("user=%s peer=%s %s", im__conn_who(c), c->peer, why);
            im__conn_close(c, IM_EFRAMESIZE, why);
            break;
        }
        if (avail < IM_FRAME_HEADER_BYTES + (size_t)len)
            break;
        uint8_t *frame = evbuffer_pullup(in, IM_FRAME_HEADER_BYTES + (ssize_t)len);
        Imcore__Envelope *env;
        im_error err = { 0 };
        int rc = im_envelope_decode_in(&c->w->arena, frame + IM_FRAME_HEADER_BYTES, len, &env,
                                       &err);
        if (rc != IM_OK) {
            evbuffer_drain(in, IM_FRAME_HEADER_BYTES + (size_t)len);
            IM_WARN("user=%s peer=%s bad frame: %s", im__conn_who(c), c->peer, err.msg);
            im__conn_close(c, rc, err.msg);
            break;
        }
        if (must_wait(c, env)) {
            /* Left in the input, decoded again when its turn comes; the
             * socket is not read meanwhile, so the client is held back. */
            im_envelope_release(&c->w->arena, env);
            c->paused = true;
            event_del(c->rev);
            break;
        }
        evbuffer_drain(in, IM_FRAME_HEADER_BYTES + (size_t)len);
        took = true;
        im__conn_dispatch(c, env);
        im_envelope_release(&c->w->arena, env);
    }
    c->taking = false;
    /* A whole frame is a sign of life; a byte of one is not (slowloris). */
    if (took)
        c->w->srv->core->session_touch(&c->session, now);
    account_input(c, now, took);
}
