/* infrastructure/net_libevent/im_net_router.c: the route port on one node,
 * in its three tables: presence (the registry), delivery, and the replies
 * to one session.
 *
 * The registry maps each online user to the endpoint of its session, in
 * shards by hash so that workers rarely contend. Delivery encodes a message
 * once, however many receive it; a receiver on the calling worker gets it
 * written at once, others get one queue item per worker (not per receiver)
 * sharing the encoded frame. */
#include "im_net_internal.h"

#include <stdlib.h>
#include <string.h>

#include "im_codec.h"
#include "im_log.h"

typedef struct reg_entry {
    im_endpoint ep;
    char display_name[IM_DISPLAY_NAME_MAX + 1];
} reg_entry;

/* Each table is a member of the server: back from it to the server. */
#define SERVER_OF(port, member) \
    ((im_net_server *)(void *)((char *)(port) - offsetof(im_net_server, member)))

static im_net_server *presence_srv(im_presence *p)
{
    return SERVER_OF(p, presence);
}

static im_net_server *delivery_srv(im_delivery *d)
{
    return SERVER_OF(d, delivery);
}

static im_net_server *replies_srv(im_replies *r)
{
    return SERVER_OF(r, replies);
}

static im_registry_shard *shard_of(im_net_server *srv, const char *user_id)
{
    return &srv->shards[im_strmap_hash(user_id) % IM_REGISTRY_SHARDS];
}

static bool same_endpoint(const im_endpoint *a, const im_endpoint *b)
{
    return a->node == b->node && a->worker == b->worker && a->conn_id == b->conn_id;
}

static int router_bind(im_presence *r, const char *user_id, const char *display_name,
                       const im_endpoint *ep, im_login_policy policy, im_endpoint *replaced,
                       im_error *err)
{
    im_registry_shard *sh = shard_of(presence_srv(r), user_id);
    int rc = 0;
    pthread_mutex_lock(&sh->lock);
    reg_entry *e = im_strmap_get(sh->users, user_id);
    if (e) {
        if (policy == IM_LOGIN_REJECT) {
            rc = IM_EDUPLICATE;
        } else {
            *replaced = e->ep;
            e->ep = *ep;
            snprintf(e->display_name, sizeof e->display_name, "%s", display_name);
            rc = 1;
        }
    } else if (!(e = malloc(sizeof *e))) {
        rc = im_error_set(err, IM_ENOMEM, "out of memory");
    } else {
        e->ep = *ep;
        snprintf(e->display_name, sizeof e->display_name, "%s", display_name);
        if (im_strmap_put(sh->users, user_id, e, NULL) != IM_OK) {
            free(e);
            rc = im_error_set(err, IM_ENOMEM, "out of memory");
        }
    }
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

static bool router_unbind(im_presence *r, const char *user_id, const im_endpoint *ep)
{
    im_registry_shard *sh = shard_of(presence_srv(r), user_id);
    pthread_mutex_lock(&sh->lock);
    reg_entry *e = im_strmap_get(sh->users, user_id);
    bool forgot = e && same_endpoint(&e->ep, ep);
    if (forgot) {
        im_strmap_remove(sh->users, user_id);
        free(e);
    }
    pthread_mutex_unlock(&sh->lock);
    return forgot;
}

static bool lookup(im_net_server *srv, const char *user_id, im_endpoint *ep)
{
    im_registry_shard *sh = shard_of(srv, user_id);
    pthread_mutex_lock(&sh->lock);
    reg_entry *e = im_strmap_get(sh->users, user_id);
    if (e)
        *ep = e->ep;
    pthread_mutex_unlock(&sh->lock);
    return e != NULL;
}

static bool router_is_online(im_presence *r, const char *user_id)
{
    im_endpoint ep;
    return lookup(presence_srv(r), user_id, &ep);
}

/* A notice's event (IM_NOTICE_*, in client_msg_id) on the wire. */
static Imcore__Delivery__Notice notice_of(const char *event)
{
    static const struct { const char *name; Imcore__Delivery__Notice wire; } events[] = {
        { IM_NOTICE_INVITED, IMCORE__DELIVERY__NOTICE__NOTICE_INVITED },
        { IM_NOTICE_REMOVED, IMCORE__DELIVERY__NOTICE__NOTICE_REMOVED },
        { IM_NOTICE_OWNER, IMCORE__DELIVERY__NOTICE__NOTICE_OWNER },
        { IM_NOTICE_DELETED, IMCORE__DELIVERY__NOTICE__NOTICE_DELETED },
    };
    for (size_t i = 0; event && i < sizeof events / sizeof events[0]; i++)
        if (strcmp(event, events[i].name) == 0)
            return events[i].wire;
    return IMCORE__DELIVERY__NOTICE__NOTICE_NONE;
}

/* Fills d and env (which points to d) for m; conv is the caller's buffer
 * of IM_CONVERSATION_ID_MAX + 1 bytes. */
static void fill_delivery(const im_message *m, const char *sender_name, char *conv,
                          Imcore__Delivery *d, Imcore__Envelope *env)
{
    bool notice = m->kind == IM_MESSAGE_NOTICE;
    conv[0] = '\0';
    if (!notice)
        im_message_conversation_id(m, conv, IM_CONVERSATION_ID_MAX + 1);
    imcore__delivery__init(d);
    d->conversation = conv;
    d->kind = notice                        ? IMCORE__DELIVERY__KIND__NOTICE
              : m->kind == IM_MESSAGE_GROUP ? IMCORE__DELIVERY__KIND__GROUP
                                            : IMCORE__DELIVERY__KIND__PRIVATE;
    d->from = im_pb_str(m->sender);
    d->from_name = im_pb_str(sender_name ? sender_name : m->sender);
    d->to = im_pb_str(m->kind == IM_MESSAGE_PRIVATE ? m->target : "");
    d->group = im_pb_str(m->kind != IM_MESSAGE_PRIVATE ? m->target : "");
    d->body.data = im_pb_bytes(m->body);
    d->body.len = m->body_len;
    d->seq = m->seq;
    d->server_time_ms = m->server_time_ms;
    d->client_msg_id = im_pb_str(notice ? "" : m->client_msg_id);
    if (notice)
        d->notice = notice_of(m->client_msg_id);
    imcore__envelope__init(env);
    env->type = IMCORE__TYPE__DELIVERY;
    env->body_case = IMCORE__ENVELOPE__BODY_DELIVERY;
    env->delivery = d;
}

/* One Delivery frame for m, with a reference for the caller. */
static im_frame *encode_delivery(const im_message *m, const char *sender_name)
{
    char conv[IM_CONVERSATION_ID_MAX + 1];
    Imcore__Delivery d;
    Imcore__Envelope env;
    fill_delivery(m, sender_name, conv, &d, &env);
    im_frame *f = im__frame_new(im_frame_size_bound(&env));
    if (f)
        f->len = im_frame_pack(&env, f->data);
    return f;
}

/* The connection at ep when it is on the calling worker, else NULL: then
 * an answer can be packed straight into its output, with no shared frame. */
static im_conn *local_conn(const im_endpoint *ep)
{
    im_worker *self = im__current_worker();
    return self && self->index == ep->worker ? im__conn_find(self, ep->conn_id) : NULL;
}

static bool is_local(const im_endpoint *ep)
{
    im_worker *self = im__current_worker();
    return self && self->index == ep->worker;
}


/* Hands frame to the sessions eps[0..n), all on worker w.
 *
 * Written at once when w is the calling worker, but only if nothing is
 * queued for it: a queued delivery may carry an earlier seq of the same
 * conversation (two group members sending from two workers), and the
 * message must not overtake it. The store's ordering makes the check
 * sufficient: an earlier message's fan-out was queued before this one's
 * seq was given. */
static int deliver_to_worker(im_net_server *srv, unsigned w, const uint64_t *ids, size_t n,
                             im_frame *f)
{
    im_worker *self = im__current_worker();
    if (self && self->index == w && im__worker_queue_empty(self)) {
        for (size_t i = 0; i < n; i++) {
            im_conn *c = im__conn_find(self, ids[i]);
            if (c)
                im__conn_send(c, f->data, f->len);
        }
        return IM_OK;
    }
    im_item *it = im__item_new(ITEM_DELIVER, n);
    if (!it)
        return IM_ENOMEM;
    memcpy(it->ids, ids, n * sizeof ids[0]);
    it->n = n;
    im__frame_ref(f);
    it->frame = f;
    im__worker_push(&srv->workers[w], it);
    return IM_OK;
}

static int router_deliver(im_delivery *r, const im_message *m, const char *sender_name,
                          im_error *err)
{
    im_net_server *srv = delivery_srv(r);
    im_endpoint ep;
    if (!lookup(srv, m->target, &ep))
        return im_error_set(err, IM_EOFFLINE, "%s is not online", m->target);
    if (is_local(&ep) && im__worker_queue_empty(im__current_worker())) {
        im_conn *c = local_conn(&ep);
        if (!c)
            return im_error_set(err, IM_EOFFLINE, "%s is not online", m->target);
        char conv[IM_CONVERSATION_ID_MAX + 1];
        Imcore__Delivery d;
        Imcore__Envelope env;
        fill_delivery(m, sender_name, conv, &d, &env);
        im__conn_send_envelope(c, &env);
        return IM_OK;
    }
    im_frame *f = encode_delivery(m, sender_name);
    if (!f)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    int rc = deliver_to_worker(srv, ep.worker, &ep.conn_id, 1, f);
    im__frame_unref(f);
    if (rc != IM_OK)
        return im_error_set(err, rc, "out of memory");
    return IM_OK;
}

/* One online receiver of a fan-out: where its session lives. */
typedef struct fan_target {
    unsigned worker;
    uint64_t conn_id;
} fan_target;

/* Fan-out scratch held on the stack: groups with few members online
 * allocate nothing for it. */
#define FAN_STACK 64

static int router_deliver_many(im_delivery *r, const char *const *members, size_t n,
                               const char *skip, const im_message *m, const char *sender_name)
{
    im_net_server *srv = delivery_srv(r);
    unsigned nw = srv->nworkers;
    /* The scratch is proportional to the members online, not to the group
     * (a group of 100,000 with 10 online takes 10 entries, where one array
     * of n per worker took n * workers): the online receivers are gathered
     * in an array that grows with them, then counted per worker and laid
     * out by worker with those counts as offsets. */
    fan_target stack_t[FAN_STACK], *t = stack_t;
    uint64_t stack_ids[FAN_STACK], *ids = stack_ids;
    size_t stack_off[FAN_STACK + 1], *off = stack_off;
    size_t nt = 0, cap = FAN_STACK;
    int delivered = 0;
    im_frame *f = NULL;
    for (size_t i = 0; i < n; i++) {
        im_endpoint ep;
        if ((skip && strcmp(members[i], skip) == 0) || !lookup(srv, members[i], &ep) ||
            ep.worker >= nw)
            continue;
        if (nt == cap) {
            fan_target *bigger = malloc(2 * cap * sizeof *bigger);
            if (!bigger) {
                delivered = IM_ENOMEM;
                goto out;
            }
            memcpy(bigger, t, nt * sizeof *t);
            if (t != stack_t)
                free(t);
            t = bigger;
            cap *= 2;
        }
        t[nt++] = (fan_target){ .worker = ep.worker, .conn_id = ep.conn_id };
    }
    if (nt == 0)
        goto out;
    if (nt > FAN_STACK && !(ids = malloc(nt * sizeof *ids))) {
        delivered = IM_ENOMEM;
        goto out;
    }
    if (nw > FAN_STACK && !(off = malloc((nw + 1) * sizeof *off))) {
        delivered = IM_ENOMEM;
        goto out;
    }
    /* off[w + 1] counts worker w's receivers, then off[w] is where they
     * start in ids; the fill moves each off[w] to the next one's start. */
    memset(off, 0, (nw + 1) * sizeof *off);
    for (size_t i = 0; i < nt; i++)
        off[t[i].worker + 1]++;
    for (unsigned w = 0; w < nw; w++)
        off[w + 1] += off[w];
    for (size_t i = 0; i < nt; i++)
        ids[off[t[i].worker]++] = t[i].conn_id;
    /* Now off[w] is where worker w's receivers end, and off[w - 1] (or 0)
     * where they start. */
    if (!(f = encode_delivery(m, sender_name))) {
        delivered = IM_ENOMEM;
        goto out;
    }
    for (unsigned w = 0; w < nw; w++) {
        size_t start = w ? off[w - 1] : 0, count = off[w] - start;
        if (count == 0)
            continue;
        if (deliver_to_worker(srv, w, &ids[start], count, f) != IM_OK) {
            delivered = IM_ENOMEM;
            goto out;
        }
        delivered += (int)count;
    }
out:
    if (t != stack_t)
        free(t);
    if (ids != stack_ids)
        free(ids);
    if (off != stack_off)
        free(off);
    if (f)
        im__frame_unref(f);
    return delivered;
}

static void router_kick(im_delivery *r, const im_endpoint *ep, int code, const char *why);

/* Packs env into a new shared frame (one reference for the caller). */
static im_frame *encode_envelope(Imcore__Envelope *env)
{
    env->type = im_envelope_type_for(env->body_case);
    im_frame *f = im__frame_new(im_frame_size_bound(env));
    if (f)
        f->len = im_frame_pack(env, f->data);
    return f;
}

static void send_frame_to(im_net_server *srv, const im_endpoint *ep, im_frame *f)
{
    if (!f) {
        IM_ERROR("out of memory: a frame for session %llu is lost",
                 (unsigned long long)ep->conn_id);
        return;
    }
    if (ep->worker < srv->nworkers &&
        deliver_to_worker(srv, ep->worker, &ep->conn_id, 1, f) != IM_OK)
        IM_ERROR("out of memory: a frame for session %llu is lost",
                 (unsigned long long)ep->conn_id);
    im__frame_unref(f);
}

/* Sends env to the session at ep: packed in place when it is local, else
 * through a frame on its worker's queue. */
static void send_envelope_to(im_net_server *srv, const im_endpoint *ep, Imcore__Envelope *env)
{
    if (is_local(ep)) {
        im_conn *c = local_conn(ep);
        if (c)
            im__conn_send_envelope(c, env);
        return;
    }
    send_frame_to(srv, ep, encode_envelope(env));
}

/* The application's answer to the oldest request still waiting at ep:
 * like send_envelope_to, but the connection counts it as that answer, so
 * that what it answered at once meanwhile follows it, in request order. */
static void send_answer_to(im_net_server *srv, const im_endpoint *ep, Imcore__Envelope *env)
{
    if (is_local(ep)) {
        im_conn *c = local_conn(ep);
        if (c)
            im__conn_answer_later(c, env);
        return;
    }
    if (ep->worker >= srv->nworkers)
        return;
    im_frame *f = encode_envelope(env);
    im_item *it = f ? im__item_new(ITEM_ANSWER, 1) : NULL;
    if (!it) {
        /* The connection would wait for this answer for ever: end it. */
        IM_ERROR("out of memory: an answer for session %llu is lost",
                 (unsigned long long)ep->conn_id);
        im__frame_unref(f);
        router_kick(&srv->delivery, ep, IM_ENOMEM, "out of memory");
        return;
    }
    it->n = 1;
    it->ids[0] = ep->conn_id;
    it->frame = f;
    im__worker_push(&srv->workers[ep->worker], it);
}

static void router_deliver_to(im_delivery *r, const im_endpoint *ep, const im_message *m,
                              const char *sender_name)
{
    char conv[IM_CONVERSATION_ID_MAX + 1];
    Imcore__Delivery d;
    Imcore__Envelope env;
    fill_delivery(m, sender_name, conv, &d, &env);
    send_envelope_to(delivery_srv(r), ep, &env);
}

static void send_error_to(im_net_server *srv, const im_endpoint *ep, uint64_t rid, int rc,
                          const char *msg, const char *client_msg_id)
{
    Imcore__Error e;
    char text[IM_ERROR_TEXT_BYTES];
    im__error_fill(&e, rc, msg, client_msg_id, text);
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.request_id = rid;
    env.body_case = IMCORE__ENVELOPE__BODY_ERROR;
    env.error = &e;
    send_answer_to(srv, ep, &env);
}

static void router_send_result(im_replies *r, const im_endpoint *ep, uint64_t rid,
                               const char *client_msg_id, int rc, const im_send_result *res,
                               const char *msg)
{
    if (rc != IM_OK) {
        send_error_to(replies_srv(r), ep, rid, rc, msg, client_msg_id);
        return;
    }
    Imcore__SendAck ack = IMCORE__SEND_ACK__INIT;
    ack.client_msg_id = im_pb_str(client_msg_id ? client_msg_id : "");
    ack.seq = res->seq;
    ack.server_time_ms = res->server_time_ms;
    ack.delivered = res->delivered;
    ack.duplicate = res->duplicate;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.request_id = rid;
    env.body_case = IMCORE__ENVELOPE__BODY_SEND_ACK;
    env.send_ack = &ack;
    send_answer_to(replies_srv(r), ep, &env);
}

static void router_send_status(im_replies *r, const im_endpoint *ep, uint64_t rid, int rc,
                               const char *msg)
{
    if (rc != IM_OK) {
        send_error_to(replies_srv(r), ep, rid, rc, msg, NULL);
        return;
    }
    Imcore__Ok ok = IMCORE__OK__INIT;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.request_id = rid;
    env.body_case = IMCORE__ENVELOPE__BODY_OK;
    env.ok = &ok;
    send_answer_to(replies_srv(r), ep, &env);
}

struct history_to { im_net_server *srv; const im_endpoint *ep; };

static void send_history_env(void *ctx, Imcore__Envelope *env)
{
    struct history_to *ht = ctx;
    send_answer_to(ht->srv, ht->ep, env);
}

/* Packed here, on the caller's thread (the store's, usually): the worker
 * only writes the frame. */
static void router_send_history(im_replies *r, const im_endpoint *ep, uint64_t rid, int rc,
                                const im_message *msgs, size_t n, const char *msg)
{
    im_net_server *srv = replies_srv(r);
    struct history_to ht = { srv, ep };
    im__history_answer(srv->cfg.max_frame_bytes, rid, rc, msgs, n, msg, send_history_env, &ht);
}

static void router_with_session(im_replies *r, const im_endpoint *ep,
                                void (*fn)(void *arg, im_session *s), void *arg)
{
    im_net_server *srv = replies_srv(r);
    im_worker *self = im__current_worker();
    if (ep->worker >= srv->nworkers) {
        fn(arg, NULL);
        return;
    }
    if (self && self->index == ep->worker) {
        im_conn *c = im__conn_find(self, ep->conn_id);
        fn(arg, c ? &c->session : NULL);
        return;
    }
    im_item *it = im__item_new(ITEM_CALL, 1);
    if (!it) {
        IM_ERROR("out of memory: a request for session %llu is dropped",
                 (unsigned long long)ep->conn_id);
        fn(arg, NULL);
        return;
    }
    it->n = 1;
    it->ids[0] = ep->conn_id;
    it->call = fn;
    it->call_arg = arg;
    im__worker_push(&srv->workers[ep->worker], it);
}

/* A login answer that arrived off its session's thread: carried there. */
typedef struct login_answer {
    uint64_t rid;
    int rc;
    char token[72];
    char msg[200];
    im_endpoint ep;
    im_net_server *srv;
} login_answer;

static void answer_login_on_worker(void *arg, im_session *s)
{
    login_answer *la = arg;
    if (s) {
        im_conn *c = im__conn_find(im__current_worker(), la->ep.conn_id);
        if (c)
            im__conn_login_result(c, la->rid, la->rc, la->token, la->msg);
    }
    free(la);
}

static void router_send_login_result(im_replies *r, const im_endpoint *ep, uint64_t rid, int rc,
                                     const im_session *s, const char *token, const char *msg)
{
    (void)s; /* the connection at ep holds it */
    im_worker *self = im__current_worker();
    if (self && self->index == ep->worker) {
        im_conn *c = im__conn_find(self, ep->conn_id);
        if (c)
            im__conn_login_result(c, rid, rc, token, msg);
        return;
    }
    login_answer *la = calloc(1, sizeof *la);
    if (!la)
        return;
    la->rid = rid;
    la->rc = rc;
    la->ep = *ep;
    snprintf(la->token, sizeof la->token, "%s", token ? token : "");
    snprintf(la->msg, sizeof la->msg, "%s", msg ? msg : "");
    router_with_session(r, ep, answer_login_on_worker, la);
}

static void router_kick(im_delivery *r, const im_endpoint *ep, int code, const char *why)
{
    im_net_server *srv = delivery_srv(r);
    im_worker *self = im__current_worker();
    if (ep->worker >= srv->nworkers)
        return;
    if (self && self->index == ep->worker) {
        im_conn *c = im__conn_find(self, ep->conn_id);
        if (c)
            im__conn_close(c, code, why);
        return;
    }
    im_item *it = im__item_new(ITEM_KICK, 1);
    if (!it) {
        IM_ERROR("out of memory: cannot close session %llu", (unsigned long long)ep->conn_id);
        return;
    }
    it->n = 1;
    it->ids[0] = ep->conn_id;
    it->code = code;
    snprintf(it->why, sizeof it->why, "%s", why ? why : "");
    im__worker_push(&srv->workers[ep->worker], it);
}

struct listing { im_router_user_fn fn; void *arg; bool stopped; };

static bool list_one(void *arg, const char *key, void *value)
{
    struct listing *l = arg;
    if (!l->stopped && !l->fn(l->arg, key, ((reg_entry *)value)->display_name))
        l->stopped = true;
    return !l->stopped;
}

static size_t router_list_online(im_presence *r, im_router_user_fn fn, void *arg)
{
    im_net_server *srv = presence_srv(r);
    struct listing l = { .fn = fn, .arg = arg };
    size_t total = 0;
    for (int i = 0; i < IM_REGISTRY_SHARDS; i++) {
        im_registry_shard *sh = &srv->shards[i];
        pthread_mutex_lock(&sh->lock);
        total += im_strmap_count(sh->users);
        if (!l.stopped)
            im_strmap_each(sh->users, list_one, &l);
        pthread_mutex_unlock(&sh->lock);
    }
    return total;
}

static const struct im_presence_ops net_presence_ops = {
    .size = sizeof(struct im_presence_ops),
    .name = "local",
    .bind = router_bind,
    .unbind = router_unbind,
    .is_online = router_is_online,
    .list_online = router_list_online,
};

static const struct im_delivery_ops net_delivery_ops = {
    .size = sizeof(struct im_delivery_ops),
    .name = "local",
    .deliver = router_deliver,
    .deliver_many = router_deliver_many,
    .deliver_to = router_deliver_to,
    .kick = router_kick,
};

static const struct im_replies_ops net_replies_ops = {
    .size = sizeof(struct im_replies_ops),
    .name = "local",
    .send_result = router_send_result,
    .send_status = router_send_status,
    .send_login_result = router_send_login_result,
    .with_session = router_with_session,
    .send_history = router_send_history,
};

int im__router_init(im_net_server *srv)
{
    srv->presence.ops = &net_presence_ops;
    srv->delivery.ops = &net_delivery_ops;
    srv->replies.ops = &net_replies_ops;
    for (int i = 0; i < IM_REGISTRY_SHARDS; i++) {
        pthread_mutex_init(&srv->shards[i].lock, NULL);
        if (!(srv->shards[i].users = im_strmap_new()))
            return IM_ENOMEM;
    }
    return IM_OK;
}

static bool free_entry(void *arg, const char *key, void *value)
{
    (void)arg, (void)key;
    free(value);
    return true;
}

void im__router_destroy(im_net_server *srv)
{
    for (int i = 0; i < IM_REGISTRY_SHARDS; i++) {
        if (srv->shards[i].users) {
            im_strmap_each(srv->shards[i].users, free_entry, NULL);
            im_strmap_free(srv->shards[i].users);
        }
        pthread_mutex_destroy(&srv->shards[i].lock);
    }
}
