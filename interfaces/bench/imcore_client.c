/* interfaces/bench/imcore_client.c: the imcore wire, as a bench transport.
 *
 * Frames are encoded and decoded with the project's codec
 * (infrastructure/codec_protobuf), so the bench speaks exactly what the
 * server reads. The request_id of a Ping carries its send time, and a
 * message's client_msg_id carries its counter and intended send time
 * (body.h), so answers need no table of requests in flight.
 *
 * The I/O is hand-made rather than a bufferevent, because the bench must
 * cost the machine less than the server it measures: a bufferevent turns
 * every write into two epoll_ctl calls (arm and disarm EV_WRITE) and every
 * read into an ioctl(FIONREAD) plus a readv. Here a frame is packed straight
 * into the connection's output buffer, and one flush event per driver, run at
 * the end of the loop iteration, writes each connection that has output once:
 * everything one iteration produced leaves in a single write(), and EV_WRITE
 * is armed only when the kernel would not take it all. Reads go into one
 * buffer per driver; only the tail of an incomplete frame is kept per
 * connection, so 20,000 idle connections hold no buffers at all.
 *
 * Like any client, the bench acknowledges what it received (DeliveryAck,
 * cumulative per conversation), so the server may forget it: at the latest
 * every ACK_EVERY deliveries, and every ACK_FLUSH_MS for the rest.
 *
 * A connection may be closed while it is being read (a protocol error, or
 * the driver closing it from a callback) or while it waits for the flush:
 * `busy` and `queued` keep its memory until both are over.
 *
 * --tls: the same buffers and events, with SSL_read and SSL_write on the
 * socket (the handshake first, once the connect completes; the Login after
 * it). A handshake that fails counts as a failed connect, and the first
 * one's reason is printed. */
#include "driver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "body.h"
#include "im_codec.h"
#include "im_tls_client.h"
#include "netaddr.h"

/* The largest frame accepted from the server: far above any --size, and a
 * bound before anything is allocated. */
#define READ_MAX_FRAME ((16u << 20) + 1024u)
#define READ_CHUNK (256u << 10)        /* one read() per readable event, at most */
#define OUT_KEEP (64u << 10)           /* an output buffer above this is freed once empty */
#define ACK_EVERY 64
#define ACK_FLUSH_MS 100

typedef struct ic_conn {
    bench_conn *c;
    int fd;
    SSL *ssl;               /* --tls, else NULL */
    bool handshaking;       /* --tls: connected, the handshake not done */
    bool write_wants_read;  /* SSL_write waits for input (a key update) */
    struct event rev, wev;  /* readable (persistent); writable (armed on demand) */
    uint8_t *out;           /* bytes [out_off, out_len) wait for the kernel */
    size_t out_off, out_len, out_cap;
    uint8_t *tail;          /* the start of a frame not yet complete */
    size_t tail_len;
    struct ic_conn *next_flush;
    bool queued;            /* on the driver's flush list */
    bool connected;
    bool logged_in;
    bool registering;       /* --password: the Login sent has create_account */
    bool dead;
    int busy;
    int last_error;         /* the code of the last Error naming no message */
    uint32_t unacked;       /* deliveries of conv not yet acknowledged */
    uint64_t rx_seq;        /* the highest seq received in conv */
    char conv[96];          /* the conversation being received ("" none) */
} ic_conn;

typedef struct ic_state {
    struct event *flush;    /* active when flush_head is not empty */
    struct event *acks;     /* every ACK_FLUSH_MS */
    ic_conn *flush_head;
    uint8_t *rbuf;          /* READ_CHUNK plus room for the largest tail */
    size_t rcap;
    SSL_CTX *tls;           /* --tls */
    bool told;              /* the first TLS failure was printed */
} ic_state;

static void ic_free(ic_conn *ic)
{
    free(ic->out);
    free(ic->tail);
    free(ic);
}

/* Detaches ic from its bench_conn and closes the socket now; the memory goes
 * when nothing refers to it any more. */
static void ic_release(ic_conn *ic)
{
    if (ic->dead)
        return;
    ic->dead = true;
    ic->c->tp = NULL;
    event_del(&ic->rev);
    event_del(&ic->wev);
    if (ic->ssl) {
        SSL_free(ic->ssl);
        ic->ssl = NULL;
        ERR_clear_error();
    }
    close(ic->fd);
    ic->fd = -1;
    if (ic->busy == 0 && !ic->queued)
        ic_free(ic);
}

static void ic_fail(ic_conn *ic, int code)
{
    if (ic->dead)
        return;
    bench_conn *c = ic->c;
    ic_release(ic);
    bench_on_closed(c, code);
}

static void queue_flush(ic_conn *ic)
{
    if (ic->queued)
        return;
    ic_state *s = ic->c->d->tp_state;
    ic->queued = true;
    ic->next_flush = s->flush_head;
    s->flush_head = ic;
    /* Same priority as everything else: it runs after the callbacks already
     * due in this iteration, so their output leaves together. */
    event_active(s->flush, EV_TIMEOUT, 0);
}

/* Writes what the kernel takes. Returns 0, or an errno value. */
static int write_out(ic_conn *ic)
{
    while (ic->out_off < ic->out_len) {
        if (ic->ssl) {
            size_t len = ic->out_len - ic->out_off;
            int w = SSL_write(ic->ssl, ic->out + ic->out_off, len > INT32_MAX ? INT32_MAX : (int)len);
            if (w > 0) {
                ic->out_off += (size_t)w;
                continue;
            }
            int e = SSL_get_error(ic->ssl, w);
            if (e == SSL_ERROR_WANT_WRITE) {
                event_add(&ic->wev, NULL);
                return 0;
            }
            if (e == SSL_ERROR_WANT_READ) {
                ic->write_wants_read = true;
                return 0;
            }
            ERR_clear_error();
            return EPIPE;
        }
        ssize_t w = send(ic->fd, ic->out + ic->out_off, ic->out_len - ic->out_off, MSG_NOSIGNAL);
        if (w > 0) {
            ic->out_off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(&ic->wev, NULL);
            return 0;
        }
        return w < 0 ? errno : EPIPE;
    }
    ic->out_off = ic->out_len = 0;
    if (ic->out_cap > OUT_KEEP) {
        free(ic->out);
        ic->out = NULL;
        ic->out_cap = 0;
    }
    return 0;
}

static void flush_all(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    ic_state *s = arg;
    ic_conn *list = s->flush_head;
    s->flush_head = NULL;
    while (list) {
        ic_conn *ic = list;
        list = ic->next_flush;
        ic->queued = false;
        if (ic->dead) {
            if (ic->busy == 0)
                ic_free(ic);
            continue;
        }
        if (!ic->connected || ic->handshaking || event_pending(&ic->wev, EV_WRITE, NULL))
            continue; /* the writable event (or the handshake) will write */
        int e = write_out(ic);
        if (e)
            ic_fail(ic, BENCH_ERR_CLOSED);
    }
}

static int ic_write(ic_conn *ic, Imcore__Envelope *env)
{
    if (ic->dead)
        return ENOTCONN;
    env->type = im_envelope_type_for(env->body_case);
    size_t n = im_frame_size(env);
    if (ic->out_len + n > ic->out_cap) {
        if (ic->out_off > 0) { /* reclaim what was written */
            memmove(ic->out, ic->out + ic->out_off, ic->out_len - ic->out_off);
            ic->out_len -= ic->out_off;
            ic->out_off = 0;
        }
        if (ic->out_len + n > ic->out_cap) {
            size_t cap = ic->out_cap ? ic->out_cap : 256;
            while (cap < ic->out_len + n)
                cap *= 2;
            uint8_t *p = realloc(ic->out, cap);
            if (!p)
                return ENOMEM;
            ic->out = p;
            ic->out_cap = cap;
        }
    }
    ic->out_len += im_frame_pack(env, ic->out + ic->out_len);
    queue_flush(ic);
    return 0;
}

static int send_login(ic_conn *ic, bool create_account)
{
    const bench_opts *o = ic->c->d->o;
    Imcore__Login login = IMCORE__LOGIN__INIT;
    login.user_id = ic->c->user;
    login.client_version = "imcore-bench/" BENCH_VERSION;
    if (o->password[0]) {
        login.password = im_pb_str(o->password);
        login.create_account = create_account;
    }
    ic->registering = create_account;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.body_case = IMCORE__ENVELOPE__BODY_LOGIN;
    env.login = &login;
    env.request_id = 1;
    return ic_write(ic, &env);
}

/* An Error before LoginAck. With --password the first Login registers the
 * user (create_account): USER_EXISTS then means "log in", and NOT_FOUND
 * "register after all"; both are answered on the same connection, which the
 * server keeps open. Registering first, rather than trying a login first,
 * matters: a NOT_FOUND counts as a failed login, and a few of those from one
 * address make the server refuse its logins for a while (RATE_LIMITED). Any
 * other refusal fails the attempt; the driver retries it later. */
static void login_refused(ic_conn *ic, int code)
{
    if (ic->c->d->o->password[0]) {
        if (code == IMCORE__ERROR_CODE__NOT_FOUND && !ic->registering) {
            if (send_login(ic, true) != 0)
                ic_fail(ic, BENCH_ERR_CONNECT);
            return;
        }
        if (code == IMCORE__ERROR_CODE__USER_EXISTS && ic->registering) {
            if (send_login(ic, false) != 0)
                ic_fail(ic, BENCH_ERR_CONNECT);
            return;
        }
    }
    bench_on_error(ic->c, code);
    ic_fail(ic, code);
}

static void send_delivery_ack(ic_conn *ic)
{
    if (ic->unacked == 0 || !ic->conv[0] || ic->dead)
        return;
    Imcore__DeliveryAck a = IMCORE__DELIVERY_ACK__INIT;
    a.conversation = ic->conv;
    a.seq = ic->rx_seq;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.body_case = IMCORE__ENVELOPE__BODY_DELIVERY_ACK;
    env.delivery_ack = &a;
    (void)ic_write(ic, &env);
    ic->unacked = 0;
}

static void note_delivery(ic_conn *ic, const Imcore__Delivery *m)
{
    if (!m->conversation || !m->conversation[0] || m->seq == 0)
        return;
    if (strcmp(ic->conv, m->conversation) != 0) {
        send_delivery_ack(ic);
        snprintf(ic->conv, sizeof ic->conv, "%s", m->conversation);
        ic->rx_seq = 0;
    }
    if (m->seq > ic->rx_seq)
        ic->rx_seq = m->seq;
    if (++ic->unacked >= ACK_EVERY)
        send_delivery_ack(ic);
}

static void flush_acks(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    bench_driver *d = arg;
    for (uint32_t i = 0; i < d->n; i++)
        if (d->conns[i].tp)
            send_delivery_ack(d->conns[i].tp);
}

static void dispatch(ic_conn *ic, const Imcore__Envelope *env)
{
    bench_conn *c = ic->c;
    uint32_t counter;
    uint64_t intended;
    switch (env->body_case) {
    case IMCORE__ENVELOPE__BODY_LOGIN_ACK:
        ic->logged_in = true;
        bench_on_login(c, env->login_ack->heartbeat_s);
        break;
    case IMCORE__ENVELOPE__BODY_PONG:
        bench_on_pong(c, env->request_id);
        break;
    case IMCORE__ENVELOPE__BODY_SEND_ACK: {
        const Imcore__SendAck *a = env->send_ack;
        if (bench_msgid_parse(a->client_msg_id, &counter, &intended) == 0)
            bench_on_ack(c, counter, intended, a->seq, a->delivered);
        else
            bench__error(c->d, 0);
        break;
    }
    case IMCORE__ENVELOPE__BODY_DELIVERY: {
        const Imcore__Delivery *m = env->delivery;
        bench_delivery dl = {
            .kind = m->kind == IMCORE__DELIVERY__KIND__PRIVATE ? BENCH_KIND_PRIVATE
                    : m->kind == IMCORE__DELIVERY__KIND__GROUP ? BENCH_KIND_GROUP
                                                               : 0,
            .from = m->from, .to = m->to, .group = m->group,
            .body = m->body.data, .len = m->body.len, .seq = m->seq,
        };
        note_delivery(ic, m);
        bench_on_delivery(c, &dl);
        break;
    }
    case IMCORE__ENVELOPE__BODY_OK:
        bench_on_ok(c);
        break;
    case IMCORE__ENVELOPE__BODY_ERROR: {
        const Imcore__Error *e = env->error;
        if (bench_msgid_parse(e->client_msg_id, &counter, &intended) == 0) {
            bench_on_refused(c, (int)e->code, counter, intended);
        } else if (!ic->logged_in && env->request_id == 1) {
            login_refused(ic, (int)e->code);
        } else {
            ic->last_error = (int)e->code;
            bench_on_error(c, (int)e->code);
        }
        break;
    }
    default:
        break; /* answers to requests the bench does not make */
    }
}

static void tls_failed(ic_conn *ic, unsigned long e)
{
    ic_state *s = ic->c->d->tp_state;
    if (!s->told) {
        char why[256];
        fprintf(stderr, "imcore-bench: TLS to %s:%u: %s\n", ic->c->d->o->host, ic->c->d->o->port,
                im_tls_client_why(ic->ssl, e, "handshake failed", why, sizeof why));
        s->told = true;
    }
    ERR_clear_error();
    ic_fail(ic, BENCH_ERR_CONNECT);
}

/* One step of the handshake; the Login goes out once it is done. */
static void handshake(ic_conn *ic)
{
    int r = SSL_do_handshake(ic->ssl);
    if (r == 1) {
        ic->handshaking = false;
        if (send_login(ic, ic->c->d->o->password[0] != '\0') != 0)
            ic_fail(ic, BENCH_ERR_CONNECT);
        return;
    }
    int e = SSL_get_error(ic->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return; /* rev is on */
    if (e == SSL_ERROR_WANT_WRITE) {
        event_add(&ic->wev, NULL);
        return;
    }
    tls_failed(ic, ERR_peek_last_error());
}

/* SSL_read into buf until it would block or cap is reached: > 0 bytes, 0
 * at the end, -1 with errno EAGAIN (nothing now) or EPIPE. */
static ssize_t tls_read(ic_conn *ic, uint8_t *buf, size_t cap)
{
    size_t got = 0;
    while (got < cap) {
        int r = SSL_read(ic->ssl, buf + got, (int)(cap - got > INT32_MAX ? INT32_MAX : cap - got));
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        int e = SSL_get_error(ic->ssl, r);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_WANT_WRITE) {
            event_add(&ic->wev, NULL);
            break;
        }
        ERR_clear_error();
        if (got)
            break; /* the end is seen again on the next read */
        if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL)
            return 0;
        errno = EPIPE;
        return -1;
    }
    if (got == 0) {
        errno = EAGAIN;
        return -1;
    }
    return (ssize_t)got;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    ic_conn *ic = arg;
    ic_state *s = ic->c->d->tp_state;
    if (ic->handshaking) {
        handshake(ic);
        return;
    }
    if (ic->write_wants_read) {
        ic->write_wants_read = false;
        queue_flush(ic);
    }
    if (ic->tail_len + READ_CHUNK > s->rcap) {
        uint8_t *p = realloc(s->rbuf, ic->tail_len + READ_CHUNK);
        if (!p) {
            ic_fail(ic, BENCH_ERR_CLOSED);
            return;
        }
        s->rbuf = p;
        s->rcap = ic->tail_len + READ_CHUNK;
    }
    if (ic->tail_len)
        memcpy(s->rbuf, ic->tail, ic->tail_len);
    size_t have = ic->tail_len;
    ssize_t r = ic->ssl ? tls_read(ic, s->rbuf + have, READ_CHUNK)
                        : recv(fd, s->rbuf + have, READ_CHUNK, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    bool closed = r <= 0; /* EOF or a reset: what was read before still counts */
    if (r > 0)
        have += (size_t)r;

    size_t pos = 0;
    ic->busy++;
    while (!ic->dead && have - pos >= IM_FRAME_HEADER_BYTES) {
        uint32_t len;
        if (im_frame_length(s->rbuf + pos, READ_MAX_FRAME, &len) != IM_OK) {
            bench__error(ic->c->d, IMCORE__ERROR_CODE__BAD_FRAME);
            ic_fail(ic, IMCORE__ERROR_CODE__BAD_FRAME);
            break;
        }
        if (have - pos < IM_FRAME_HEADER_BYTES + len)
            break;
        Imcore__Envelope *env;
        if (im_envelope_decode(s->rbuf + pos + IM_FRAME_HEADER_BYTES, len, &env, NULL) != IM_OK) {
            bench__error(ic->c->d, IMCORE__ERROR_CODE__BAD_FRAME);
            ic_fail(ic, IMCORE__ERROR_CODE__BAD_FRAME);
            break;
        }
        dispatch(ic, env);
        im_envelope_free(env);
        pos += IM_FRAME_HEADER_BYTES + len;
    }
    ic->busy--;
    if (ic->dead) {
        if (ic->busy == 0 && !ic->queued)
            ic_free(ic);
        return;
    }
    /* Keep the start of an incomplete frame for the next read. */
    size_t rest = have - pos;
    if (rest > ic->tail_len || (rest == 0 && ic->tail)) {
        free(ic->tail);
        ic->tail = rest ? malloc(rest) : NULL;
        if (rest && !ic->tail) {
            ic_fail(ic, BENCH_ERR_CLOSED);
            return;
        }
    }
    if (rest)
        memcpy(ic->tail, s->rbuf + pos, rest);
    ic->tail_len = rest;
    if (closed)
        ic_fail(ic, ic->last_error ? ic->last_error : BENCH_ERR_CLOSED);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    ic_conn *ic = arg;
    if (!ic->connected) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            ic_fail(ic, BENCH_ERR_CONNECT);
            return;
        }
        ic->connected = true;
        event_add(&ic->rev, NULL);
        if (ic->ssl) {
            ic->handshaking = true;
            handshake(ic);
            return;
        }
        if (send_login(ic, ic->c->d->o->password[0] != '\0') != 0)
            ic_fail(ic, BENCH_ERR_CONNECT);
        return;
    }
    if (ic->handshaking) {
        handshake(ic);
        return;
    }
    if (write_out(ic) != 0)
        ic_fail(ic, BENCH_ERR_CLOSED);
}

static int ic_init(bench_driver *d)
{
    ic_state *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    d->tp_state = s;
    s->rcap = READ_CHUNK;
    s->rbuf = malloc(s->rcap);
    s->flush = event_new(d->base, -1, 0, flush_all, s);
    s->acks = event_new(d->base, -1, EV_PERSIST, flush_acks, d);
    if (!s->rbuf || !s->flush || !s->acks)
        return -1;
    const bench_opts *o = d->o;
    if (o->tls) {
        char why[256];
        s->tls = im_tls_client_ctx(o->ca_file[0] ? o->ca_file : NULL, o->insecure, why,
                                   sizeof why);
        if (!s->tls) {
            fprintf(stderr, "imcore-bench: --tls: %s\n", why);
            return -1;
        }
    }
    struct timeval tv = { 0, ACK_FLUSH_MS * 1000 };
    event_add(s->acks, &tv);
    return 0;
}

static void ic_fini(bench_driver *d)
{
    ic_state *s = d->tp_state;
    if (!s)
        return;
    while (s->flush_head) { /* the loop is over: what waited for a flush goes */
        ic_conn *ic = s->flush_head;
        s->flush_head = ic->next_flush;
        ic->queued = false;
        if (ic->dead && ic->busy == 0)
            ic_free(ic);
    }
    if (s->flush)
        event_free(s->flush);
    if (s->acks)
        event_free(s->acks);
    free(s->rbuf);
    SSL_CTX_free(s->tls);
    free(s);
    d->tp_state = NULL;
}

static int ic_open(bench_conn *c)
{
    const bench_opts *o = c->d->o;
    int fd = bench_socket_open((const struct sockaddr *)&o->server, o->source_addrs, c->index);
    if (fd < 0)
        return errno ? errno : EIO;
    if (connect(fd, (const struct sockaddr *)&o->server, o->server_len) != 0 &&
        errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return e;
    }
    ic_conn *ic = calloc(1, sizeof *ic);
    if (!ic) {
        close(fd);
        return ENOMEM;
    }
    ic->c = c;
    ic->fd = fd;
    ic_state *s = c->d->tp_state;
    if (s->tls) {
        ic->ssl = SSL_new(s->tls);
        if (!ic->ssl || !im_tls_client_prepare(ic->ssl, o->host, o->servername) ||
            SSL_set_fd(ic->ssl, fd) != 1) {
            SSL_free(ic->ssl);
            ERR_clear_error();
            free(ic);
            close(fd);
            return ENOMEM;
        }
        SSL_set_connect_state(ic->ssl);
    }
    event_assign(&ic->rev, c->d->base, fd, EV_READ | EV_PERSIST, on_readable, ic);
    event_assign(&ic->wev, c->d->base, fd, EV_WRITE, on_writable, ic);
    event_add(&ic->wev, NULL); /* the connect completes when the socket is writable */
    c->tp = ic;
    return 0;
}

static void ic_close(bench_conn *c)
{
    if (c->tp)
        ic_release(c->tp);
}

static int ic_logout(bench_conn *c)
{
    Imcore__Logout lo = IMCORE__LOGOUT__INIT;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.body_case = IMCORE__ENVELOPE__BODY_LOGOUT;
    env.logout = &lo;
    env.request_id = 2;
    return c->tp ? ic_write(c->tp, &env) : ENOTCONN;
}

static int ic_ping(bench_conn *c, uint64_t now_ns)
{
    Imcore__Ping p = IMCORE__PING__INIT;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.body_case = IMCORE__ENVELOPE__BODY_PING;
    env.ping = &p;
    env.request_id = now_ns;
    return c->tp ? ic_write(c->tp, &env) : ENOTCONN;
}

static int ic_send_private(bench_conn *c, const char *to, const uint8_t *body, size_t len,
                           uint32_t counter, uint64_t intended_ns)
{
    char id[BENCH_MSGID_MAX];
    bench_msgid_format(id, counter, intended_ns);
    Imcore__PrivateMessage m = IMCORE__PRIVATE_MESSAGE__INIT;
    m.to = im_pb_str(to);
    m.body.data = im_pb_bytes(body);
    m.body.len = len;
    m.client_msg_id = id;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.body_case = IMCORE__ENVELOPE__BODY_PRIVATE_MESSAGE;
    env.private_message = &m;
    env.request_id = counter;
    return c->tp ? ic_write(c->tp, &env) : ENOTCONN;
}

static int ic_send_group(bench_conn *c, const char *group, const uint8_t *body, size_t len,
                         uint32_t counter, uint64_t intended_ns)
{
    char id[BENCH_MSGID_MAX];
    bench_msgid_format(id, counter, intended_ns);
    Imcore__GroupMessage m = IMCORE__GROUP_MESSAGE__INIT;
    m.group = im_pb_str(group);
    m.body.data = im_pb_bytes(body);
    m.body.len = len;
    m.client_msg_id = id;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.body_case = IMCORE__ENVELOPE__BODY_GROUP_MESSAGE;
    env.group_message = &m;
    env.request_id = counter;
    return c->tp ? ic_write(c->tp, &env) : ENOTCONN;
}

static int ic_group_create(bench_conn *c, const char *group, uint32_t max_members)
{
    Imcore__GroupCreate m = IMCORE__GROUP_CREATE__INIT;
    m.group = im_pb_str(group);
    m.max_members = max_members;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.body_case = IMCORE__ENVELOPE__BODY_GROUP_CREATE;
    env.group_create = &m;
    env.request_id = 3;
    return c->tp ? ic_write(c->tp, &env) : ENOTCONN;
}

static int ic_group_join(bench_conn *c, const char *group)
{
    Imcore__GroupJoin m = IMCORE__GROUP_JOIN__INIT;
    m.group = im_pb_str(group);
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.body_case = IMCORE__ENVELOPE__BODY_GROUP_JOIN;
    env.group_join = &m;
    env.request_id = 4;
    return c->tp ? ic_write(c->tp, &env) : ENOTCONN;
}

static size_t ic_backlog(bench_conn *c)
{
    ic_conn *ic = c->tp;
    return ic ? ic->out_len - ic->out_off : 0;
}

const bench_transport_ops bench_imcore_transport = {
    .name = "imcore",
    .init = ic_init,
    .fini = ic_fini,
    .open = ic_open,
    .close = ic_close,
    .logout = ic_logout,
    .ping = ic_ping,
    .send_private = ic_send_private,
    .send_group = ic_send_group,
    .group_create = ic_group_create,
    .group_join = ic_group_join,
    .backlog = ic_backlog,
};
