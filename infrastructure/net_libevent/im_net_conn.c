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

void im__conn_send_error(im_conn *c, uint64_t request_id, int code, const char *msg,
                         const char *client_msg_id)
{
    Imcore__Error e;
    char text[IM_ERROR_TEXT_BYTES];
    im__error_fill(&e, code, msg, client_msg_id, text);
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.request_id = request_id;
    env.body_case = IMCORE__ENVELOPE__BODY_ERROR;
    env.error = &e;
    im__conn_send_envelope(c, &env);
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
        int n = evbuffer_write(c->out, c->fd);
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
    bool left = evbuffer_get_length(c->out) > 0;
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

void im__conn_accept(im_worker *w, int fd, const char *peer)
{
    im_net_server *srv = w->srv;
    uint32_t slot;
    im_conn *c = calloc(1, sizeof *c);
    if (!c || slot_take(w, &slot) != IM_OK) {
        IM_ERROR("peer=%s out of memory accepting a connection", peer);
        free(c);
        close(fd);
        atomic_fetch_sub(&srv->connections, 1);
        return;
    }
    c->fd = fd;
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    c->rev = event_new(w->base, fd, EV_READ | EV_PERSIST, on_readable, c);
    if (!c->in || !c->out || !c->rev) {
        IM_ERROR("peer=%s out of memory accepting a connection", peer);
        w->free_slots[w->nfree++] = slot;
        im__conn_destroy(c);
        atomic_fetch_sub(&srv->connections, 1);
        return;
    }
    c->w = w;
    c->id = ((uint64_t)++w->generation << 32) | slot;
    c->ep = (im_endpoint){ .node = srv->cfg.node, .worker = w->index, .conn_id = c->id };
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    srv->core->session_init(&c->session, atomic_fetch_add(&srv->next_session_id, 1),
                           im__monotonic_ms());
    w->slots[slot] = c;
    w->live++;
    event_add(c->rev, NULL);
    IM_DEBUG("peer=%s connected (session %llu)", peer, (unsigned long long)im__conn_session_id(c));
}

void im__conn_destroy(im_conn *c)
{
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    if (c->in)
        evbuffer_free(c->in);
    if (c->out)
        evbuffer_free(c->out);
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
    if (code != 0)
        im__conn_send_error(c, 0, code, why, NULL);
    if (c->w->srv->core->session_is_authenticated(&c->session))
        IM_INFO("user=%s peer=%s session %llu closed: %s", im__conn_who(c), c->peer,
                (unsigned long long)im__conn_session_id(c), why ? why : "logout");
    else
        IM_DEBUG("peer=%s session %llu closed: %s", c->peer,
                 (unsigned long long)im__conn_session_id(c), why ? why : "closed");
    c->w->srv->core->session_closed(c->w->srv->app, &c->session, &c->ep, code);
    event_del(c->rev);
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
        im__conn_destroy(c);
        atomic_fetch_sub(&w->srv->connections, 1);
    }
    if (w->shutting_down && w->live == 0)
        event_base_loopexit(w->base, NULL);
}

/* Shutdown. What a peer sent before it still counts: an ack left unread
 * would be a message delivered again after the restart, a request left
 * unread one its sender never hears about. So the input already in each
 * socket is taken first (bounded: a peer that keeps sending cannot hold the
 * shutdown up), answered, and only then is the session closed. */
void im__worker_close_all(im_worker *w)
{
    for (uint32_t i = 0; i < w->nslots; i++) {
        im_conn *c = w->slots[i];
        if (c && !c->closing)
            read_input(c, SHUTDOWN_READ_ROUNDS);
        if (c && !c->closing)
            im__conn_close(c, IM_ESHUTDOWN, "the server is shutting down");
    }
    if (w->live == 0)
        event_base_loopexit(w->base, NULL);
}

/* Once a second: sessions silent too long are closed, and closing ones
 * whose peer did not take their last frames in time are dropped. */
void im__conn_sweep_idle(im_worker *w)
{
    uint64_t now = im__monotonic_ms();
    uint64_t timeout = (uint64_t)w->srv->cfg.idle_timeout_s * 1000u;
    for (uint32_t i = 0; i < w->nslots; i++) {
        im_conn *c = w->slots[i];
        if (!c || c->reaping)
            continue;
        if (c->closing) {
            if (now >= c->close_deadline_ms)
                retire(c);
        } else if (w->srv->core->session_is_idle(&c->session, now, timeout)) {
            im__conn_close(c, IM_EIDLE, "no heartbeat within idle_timeout_s");
        }
    }
}

/* Reads what the socket has, at most rounds chunks (into the input buffer's
 * own space: no ioctl to ask how much first), then takes every complete
 * frame. A frame over the limit is refused from its header alone, before
 * anything is allocated. */
static void read_input(im_conn *c, int rounds)
{
    int fd = c->fd;
    for (int round = 0; round < rounds; round++) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(c->in, READ_CHUNK, &v, 1) != 1) {
            im__conn_close(c, IM_ENOMEM, "out of memory");
            return;
        }
        ssize_t n = read(fd, v.iov_base, v.iov_len);
        if (n > 0) {
            v.iov_len = (size_t)n;
            evbuffer_commit_space(c->in, &v, 1);
            if ((size_t)n < READ_CHUNK)
                break;
            continue;
        }
        evbuffer_commit_space(c->in, &v, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break;
        if (n < 0)
            IM_DEBUG("peer=%s read failed: %s", c->peer, strerror(errno));
        take_frames(c); /* what came before the end still counts */
        size_t left = evbuffer_get_length(c->in);
        if (n == 0 && left > 0 && !c->closing) {
            /* Half a frame, then the end: say so (the peer may still read). */
            char why[96];
            snprintf(why, sizeof why, "the connection ended inside a frame (%zu bytes)", left);
            IM_WARN("user=%s peer=%s %s", im__conn_who(c), c->peer, why);
            im__conn_close(c, IM_EPROTO, why);
            return;
        }
        im__conn_close(c, 0, n == 0 ? "peer closed the connection" : "connection error");
        return;
    }
    take_frames(c);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    read_input(arg, READ_ROUNDS);
}

static void take_frames(im_conn *c)
{
    struct evbuffer *in = c->in;
    uint32_t max = c->w->srv->cfg.max_frame_bytes;
    c->w->srv->core->session_touch(&c->session, im__monotonic_ms());

    while (!c->closing) {
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
        evbuffer_drain(in, IM_FRAME_HEADER_BYTES + (size_t)len);
        if (rc != IM_OK) {
            IM_WARN("user=%s peer=%s bad frame: %s", im__conn_who(c), c->peer, err.msg);
            im__conn_close(c, rc, err.msg);
            break;
        }
        im__conn_dispatch(c, env);
        im_envelope_release(&c->w->arena, env);
    }
}
