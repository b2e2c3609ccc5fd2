/* interfaces/bench/mqtt.c: MQTT 5 with libmosquitto, as a bench transport,
 * so that an MQTT broker is measured by the same workloads and checks as
 * imcore.
 *
 * The mapping: a user is a client whose id is its user name and which
 * subscribes (QoS 1) to its own topic "u/<user>" before it counts as logged
 * in; a private message is a QoS 1 PUBLISH to the peer's topic; a group is
 * the topic "g/<group>", created and joined by subscribing with No Local
 * (so, as in imcore, the sender does not get its own message). The PUBACK is the ack; a PUBACK "no matching subscribers" is
 * counted as USER_OFFLINE, its imcore counterpart.
 *
 * libmosquitto runs without its own thread: its socket sits in the driver's
 * libevent loop (a persistent read event, and a write event armed whenever
 * mosquitto_want_write() says so), and one timer per driver calls
 * mosquitto_loop_misc() for keepalives. Each client costs three descriptors
 * (its socket and the library's internal socket pair).
 *
 * The library calls back from inside its own calls, and a client must not be
 * destroyed there, so a closed client is reaped from a zero-delay event:
 * bench_on_closed() is always called from that event, never from inside a
 * call the driver made. */
#include "driver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "body.h"
#include "clock.h"
#include "netaddr.h"

typedef struct mq_pending {
    int mid;
    uint32_t counter;
    uint64_t intended_ns;
} mq_pending;

enum { MQ_CONNECTING, MQ_SUBSCRIBING, MQ_ONLINE };

typedef struct mq_conn {
    bench_conn *c;
    struct mosquitto *m;
    struct event rev, wev, later; /* read, write, and the deferred reap */
    bool events;                  /* rev and wev are assigned */
    int state;
    int sub_mid, op_mid;
    bool dying, silent;
    int close_code;
    mq_pending *ring;             /* PUBLISHes waiting for their PUBACK, oldest first */
    uint32_t head, len, cap;
    struct mq_conn *prev, *next;  /* on mq_state.dying while waiting for the reap */
    char topic[48];
} mq_conn;

typedef struct mq_state {
    struct event *misc;
    mq_conn *dying;               /* closed, reap pending: freed by fini if the loop is over */
} mq_state;

static void mq_free(mq_conn *mq)
{
    mq_state *s = mq->c->d->tp_state;
    if (mq->dying) {
        if (mq->prev)
            mq->prev->next = mq->next;
        else
            s->dying = mq->next;
        if (mq->next)
            mq->next->prev = mq->prev;
    }
    event_del(&mq->later);
    mosquitto_destroy(mq->m);
    free(mq->ring);
    free(mq);
}

static void mq_arm_write(mq_conn *mq)
{
    if (mq->events && !mq->dying && mosquitto_want_write(mq->m) && !event_pending(&mq->wev, EV_WRITE, NULL))
        event_add(&mq->wev, NULL);
}

static void mq_reap(evutil_socket_t fd, short what, void *arg);

/* The socket is gone (closed by the library or by us): stop its events at
 * once, before its number can be reused, and reap the rest later. */
static void mq_die(mq_conn *mq, int code)
{
    if (mq->dying)
        return;
    mq_state *s = mq->c->d->tp_state;
    mq->dying = true;
    mq->next = s->dying;
    mq->prev = NULL;
    if (s->dying)
        s->dying->prev = mq;
    s->dying = mq;
    mq->close_code = code;
    if (mq->events) {
        event_del(&mq->rev);
        event_del(&mq->wev);
    }
    event_del(&mq->later);
    evtimer_assign(&mq->later, mq->c->d->base, mq_reap, mq);
    struct timeval zero = { 0, 0 };
    evtimer_add(&mq->later, &zero);
}

static void mq_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    mq_conn *mq = arg;
    bench_conn *c = mq->c;
    bool tell = !mq->silent;
    int code = mq->close_code;
    if (c->tp == mq)
        c->tp = NULL;
    mq_free(mq);
    if (tell)
        bench_on_closed(c, code);
}

static void on_connect(struct mosquitto *m, void *arg, int rc, int flags, const mosquitto_property *p)
{
    (void)flags, (void)p;
    mq_conn *mq = arg;
    if (rc != 0) {
        bench__error(mq->c->d, BENCH_ERR_CONNECT);
        mq_die(mq, BENCH_ERR_CONNECT);
        return;
    }
    mq->state = MQ_SUBSCRIBING;
    snprintf(mq->topic, sizeof mq->topic, "u/%s", mq->c->user);
    if (mosquitto_subscribe_v5(m, &mq->sub_mid, mq->topic, 1, 0, NULL) != MOSQ_ERR_SUCCESS)
        mq_die(mq, BENCH_ERR_CONNECT);
}

static void on_disconnect(struct mosquitto *m, void *arg, int rc, const mosquitto_property *p)
{
    (void)m, (void)rc, (void)p;
    mq_conn *mq = arg;
    mq_die(mq, mq->state == MQ_CONNECTING ? BENCH_ERR_CONNECT : BENCH_ERR_CLOSED);
}

static void on_subscribe(struct mosquitto *m, void *arg, int mid, int n, const int *granted,
                         const mosquitto_property *p)
{
    (void)m, (void)p;
    mq_conn *mq = arg;
    bool ok = n >= 1 && granted[0] >= 0 && granted[0] <= 2;
    if (mq->state == MQ_SUBSCRIBING && mid == mq->sub_mid) {
        if (!ok) {
            mq_die(mq, BENCH_ERR_CONNECT);
            return;
        }
        mq->state = MQ_ONLINE;
        const bench_opts *o = mq->c->d->o;
        bench_on_login(mq->c, o->heartbeat_s ? o->heartbeat_s : 30);
    } else if (mid == mq->op_mid) {
        mq->op_mid = -1;
        if (ok)
            bench_on_ok(mq->c);
        else
            bench_on_error(mq->c, 0);
    }
}

static void on_publish(struct mosquitto *m, void *arg, int mid, int reason, const mosquitto_property *p)
{
    (void)m, (void)p;
    mq_conn *mq = arg;
    /* PUBACKs come in order; look further only if one is missing. */
    for (uint32_t k = 0; k < mq->len; k++) {
        mq_pending *e = &mq->ring[(mq->head + k) % mq->cap];
        if (e->mid != mid)
            continue;
        mq_pending got = *e;
        for (uint32_t j = k; j > 0; j--)
            mq->ring[(mq->head + j) % mq->cap] = mq->ring[(mq->head + j - 1) % mq->cap];
        mq->head = (mq->head + 1) % mq->cap;
        mq->len--;
        if (reason == MQTT_RC_NO_MATCHING_SUBSCRIBERS)
            bench_on_refused(mq->c, 7 /* USER_OFFLINE */, got.counter, got.intended_ns);
        else if (reason >= 0x80)
            bench_on_refused(mq->c, 0, got.counter, got.intended_ns);
        else
            bench_on_ack(mq->c, got.counter, got.intended_ns, 0, UINT32_MAX);
        return;
    }
    bench__error(mq->c->d, 0);
}

static void on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg,
                       const mosquitto_property *p)
{
    (void)m, (void)p;
    mq_conn *mq = arg;
    bench_delivery dl = { .from = "", .to = "", .group = "", .body = msg->payload,
                          .len = (size_t)msg->payloadlen };
    if (strncmp(msg->topic, "u/", 2) == 0) {
        dl.kind = BENCH_KIND_PRIVATE;
        dl.to = msg->topic + 2;
    } else if (strncmp(msg->topic, "g/", 2) == 0) {
        dl.kind = BENCH_KIND_GROUP;
        dl.group = msg->topic + 2;
    }
    bench_on_delivery(mq->c, &dl);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    mq_conn *mq = arg;
    if (mq->dying)
        return;
    int rc = MOSQ_ERR_SUCCESS;
    if (what & EV_READ)
        rc = mosquitto_loop_read(mq->m, 64);
    if (rc == MOSQ_ERR_SUCCESS && !mq->dying && (what & EV_WRITE))
        rc = mosquitto_loop_write(mq->m, 64);
    /* On an error the library has closed the socket and called
     * on_disconnect; make sure, for the cases where it did not. */
    if (rc != MOSQ_ERR_SUCCESS && !mq->dying)
        mq_die(mq, mq->state == MQ_CONNECTING ? BENCH_ERR_CONNECT : BENCH_ERR_CLOSED);
    mq_arm_write(mq);
}

static void on_misc(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    bench_driver *d = arg;
    for (uint32_t i = 0; i < d->n; i++) {
        mq_conn *mq = d->conns[i].tp;
        if (mq && !mq->dying && mq->events) {
            if (mosquitto_loop_misc(mq->m) != MOSQ_ERR_SUCCESS && !mq->dying)
                mq_die(mq, BENCH_ERR_CLOSED);
            mq_arm_write(mq);
        }
    }
}

static int mq_init(bench_driver *d)
{
    mosquitto_lib_init();
    mq_state *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    s->misc = event_new(d->base, -1, EV_PERSIST, on_misc, d);
    struct timeval sec = { 1, 0 };
    event_add(s->misc, &sec);
    d->tp_state = s;
    return 0;
}

static void mq_fini(bench_driver *d)
{
    mq_state *s = d->tp_state;
    if (s) {
        while (s->dying) /* the loop is over: reap without telling anyone */
            mq_free(s->dying);
        event_free(s->misc);
        free(s);
    }
    d->tp_state = NULL;
    mosquitto_lib_cleanup();
}

static int mq_open(bench_conn *c)
{
    bench_driver *d = c->d;
    const bench_opts *o = d->o;
    mq_conn *mq = calloc(1, sizeof *mq);
    if (!mq)
        return ENOMEM;
    mq->c = c;
    mq->op_mid = -1;
    mq->m = mosquitto_new(c->user, true, mq);
    if (!mq->m) {
        int e = errno ? errno : ENOMEM;
        free(mq);
        return e;
    }
    mosquitto_int_option(mq->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(mq->m, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_int_option(mq->m, MOSQ_OPT_SEND_MAXIMUM, 65535);
    mosquitto_int_option(mq->m, MOSQ_OPT_RECEIVE_MAXIMUM, 65535);
    mosquitto_connect_v5_callback_set(mq->m, on_connect);
    mosquitto_disconnect_v5_callback_set(mq->m, on_disconnect);
    mosquitto_subscribe_v5_callback_set(mq->m, on_subscribe);
    mosquitto_publish_v5_callback_set(mq->m, on_publish);
    mosquitto_message_v5_callback_set(mq->m, on_message);
    evtimer_assign(&mq->later, d->base, mq_reap, mq);

    char src[32];
    const char *bind = bench_source_addr(o->server.ss_family == AF_INET ? o->source_addrs : 0,
                                         c->index, src, sizeof src);
    int keepalive = o->heartbeat_s ? (int)o->heartbeat_s : 30;
    const char *host = strcmp(o->host, "localhost") == 0 ? "127.0.0.1" : o->host;
    int rc = mosquitto_connect_bind_async(mq->m, host, o->port, keepalive, bind);
    int fd = mosquitto_socket(mq->m);
    if (rc != MOSQ_ERR_SUCCESS || fd < 0) {
        int e = rc == MOSQ_ERR_ERRNO && errno ? errno : ECONNREFUSED;
        mosquitto_destroy(mq->m);
        free(mq);
        return e;
    }
    event_assign(&mq->rev, d->base, fd, EV_READ | EV_PERSIST, on_io, mq);
    event_assign(&mq->wev, d->base, fd, EV_WRITE, on_io, mq);
    mq->events = true;
    event_add(&mq->rev, NULL);
    c->tp = mq;
    mq_arm_write(mq);
    return 0;
}

static void mq_close(bench_conn *c)
{
    mq_conn *mq = c->tp;
    if (!mq)
        return;
    c->tp = NULL;
    mq->silent = true;
    mq_die(mq, 0);
}

static int mq_logout(bench_conn *c)
{
    mq_conn *mq = c->tp;
    if (!mq || mq->dying)
        return ENOTCONN;
    if (mosquitto_disconnect(mq->m) != MOSQ_ERR_SUCCESS)
        return EIO;
    mq_arm_write(mq);
    return 0;
}

static int mq_publish(bench_conn *c, const char *topic, const uint8_t *body, size_t len,
                      uint32_t counter, uint64_t intended_ns)
{
    mq_conn *mq = c->tp;
    if (!mq || mq->dying)
        return ENOTCONN;
    if (mq->len == mq->cap) {
        uint32_t cap = mq->cap ? mq->cap * 2 : 8;
        mq_pending *r = malloc(cap * sizeof *r);
        if (!r)
            return ENOMEM;
        for (uint32_t k = 0; k < mq->len; k++)
            r[k] = mq->ring[(mq->head + k) % mq->cap];
        free(mq->ring);
        mq->ring = r;
        mq->head = 0;
        mq->cap = cap;
    }
    int mid;
    if (mosquitto_publish_v5(mq->m, &mid, topic, (int)len, body, 1, false, NULL) != MOSQ_ERR_SUCCESS)
        return EIO;
    mq->ring[(mq->head + mq->len) % mq->cap] = (mq_pending){ mid, counter, intended_ns };
    mq->len++;
    mq_arm_write(mq);
    return 0;
}

static int mq_send_private(bench_conn *c, const char *to, const uint8_t *body, size_t len,
                           uint32_t counter, uint64_t intended_ns)
{
    char topic[48];
    snprintf(topic, sizeof topic, "u/%s", to);
    return mq_publish(c, topic, body, len, counter, intended_ns);
}

static int mq_send_group(bench_conn *c, const char *group, const uint8_t *body, size_t len,
                         uint32_t counter, uint64_t intended_ns)
{
    char topic[48];
    snprintf(topic, sizeof topic, "g/%s", group);
    return mq_publish(c, topic, body, len, counter, intended_ns);
}

/* A topic needs no creating, but the creator is a member (as in imcore):
 * it subscribes, like a join. */
static int mq_group_join(bench_conn *c, const char *group);
static int mq_group_create(bench_conn *c, const char *group, uint32_t max_members)
{
    (void)max_members;
    return mq_group_join(c, group);
}

static int mq_group_join(bench_conn *c, const char *group)
{
    mq_conn *mq = c->tp;
    if (!mq || mq->dying)
        return ENOTCONN;
    char topic[48];
    snprintf(topic, sizeof topic, "g/%s", group);
    if (mosquitto_subscribe_v5(mq->m, &mq->op_mid, topic, 1, MQTT_SUB_OPT_NO_LOCAL, NULL) !=
        MOSQ_ERR_SUCCESS)
        return EIO;
    mq_arm_write(mq);
    return 0;
}

static size_t mq_backlog(bench_conn *c)
{
    mq_conn *mq = c->tp;
    /* libmosquitto does not say how many bytes it holds; count the PUBLISHes
     * not yet acknowledged, at the size of one body each. */
    return mq ? (size_t)mq->len * c->d->o->size : 0;
}

const bench_transport_ops bench_mqtt_transport = {
    .name = "mqtt",
    .init = mq_init,
    .fini = mq_fini,
    .open = mq_open,
    .close = mq_close,
    .logout = mq_logout,
    .ping = NULL,
    .send_private = mq_send_private,
    .send_group = mq_send_group,
    .group_create = mq_group_create,
    .group_join = mq_group_join,
    .backlog = mq_backlog,
};
