/* infrastructure/plugin_host/im_plugin_router.c: the route port the
 * application gets when plugins take part in routing. It wraps the three
 * tables of the port below it (the transport's, or a cluster adapter's
 * presence and delivery with the transport's replies) and adds two things:
 *
 * - claimed accounts: online from the start, addressed by endpoints on
 *   IM_PLUGIN_WORKER; what is routed to them goes to their plugin's
 *   on_delivery on the loop, and is acked in the store once handled;
 * - presence events: a bind that brings a user online and an unbind that
 *   takes the last session away become on_login / on_logout.
 *
 * Everything else passes through to the inner port unchanged. */
#include "im_plugin_internal.h"

#include <stdlib.h>
#include <string.h>

#include "im_log.h"
#include "im_strmap.h"

#define HOST_OF(port, member) \
    ((im_plugin_host *)(void *)((char *)(port) - offsetof(im_plugin_host, member)))

static im_plugin_host *presence_host(im_presence *p)
{
    return HOST_OF(p, presence);
}

static im_plugin_host *delivery_host(im_delivery *d)
{
    return HOST_OF(d, delivery);
}

static im_plugin_host *replies_host(im_replies *r)
{
    return HOST_OF(r, replies);
}

static bool is_claim_ep(const im_endpoint *ep)
{
    return ep->worker == IM_PLUGIN_WORKER;
}

static im_claim *claim_at(im_plugin_host *ph, const im_endpoint *ep)
{
    return ep->conn_id >= 1 && ep->conn_id <= ph->nclaims ? &ph->claims[ep->conn_id - 1] : NULL;
}

im_claim *im__claim_find(im_plugin_host *ph, const char *user)
{
    /* A handful at most, fixed after load: a scan beats a hash here. Most
     * ids asked about are clients', which the first byte already tells
     * apart, so strcmp runs only for the likely match. */
    for (unsigned i = 0; i < ph->nclaims; i++)
        if (ph->claims[i].user[0] == user[0] && strcmp(ph->claims[i].user, user) == 0)
            return &ph->claims[i];
    return NULL;
}

/* ---- deliveries to claimed accounts ---- */

typedef struct delivery_item {
    im_loop_item base;
    im_claim *claim;
    im_message m;                 /* points into data */
    const char *sender_name;
    char conv[IM_CONVERSATION_ID_MAX + 1];
    char data[];                  /* sender, target, client_msg_id, sender name, body */
} delivery_item;

static void maybe_catch_up(im_plugin_host *ph, im_claim *c);

static void run_delivery(im_plugin_host *ph, im_loop_item *it)
{
    delivery_item *d = (delivery_item *)it;
    im_claim *c = d->claim;
    const im_message *m = &d->m;
    imcore_message im = {
        .size = sizeof im,
        .kind = m->kind == IM_MESSAGE_GROUP ? IMCORE_MESSAGE_GROUP : IMCORE_MESSAGE_PRIVATE,
        .from = m->sender, .to = m->target, .body = m->body, .body_len = m->body_len,
        .client_msg_id = m->client_msg_id, .seq = m->seq, .server_time_ms = m->server_time_ms,
        .from_name = d->sender_name,
    };
    imcore_host *h = c->owner;
    if (h->desc.on_delivery)
        h->desc.on_delivery(h->desc.state, c->user, &im);
    /* Handled: acked, so it does not come again at the next start (nor at
     * the next catch-up, which the store orders after this ack). */
    im_error err = { 0 };
    if (ph->store && m->seq &&
        ph->store->ops->ack(ph->store, c->user, d->conv, m->seq, &err) != IM_OK) {
        c->retry_later = true;
        IM_WARN("plugin %s: cannot ack %s #%llu for %s: %s", h->name, d->conv,
                (unsigned long long)m->seq, c->user, err.msg);
    }
    atomic_fetch_sub(&c->queued, 1);
    maybe_catch_up(ph, c);
}

/* The loop stopped first: the message stays unacked, and the store hands
 * it over again at the next start. */
static void cancel_delivery(im_plugin_host *ph, im_loop_item *it)
{
    (void)ph;
    atomic_fetch_sub(&((delivery_item *)it)->claim->queued, 1);
}

static char *put_str(char *p, const char **field, const char *s)
{
    size_t n = strlen(s) + 1;
    memcpy(p, s, n);
    *field = p;
    return p + n;
}

/* Copies m into a loop item for the claim's on_delivery. IM_OK, or
 * IM_ENOMEM, or IM_ESHUTDOWN when the loop has stopped. */
static int queue_delivery(im_plugin_host *ph, im_claim *c, const im_message *m,
                          const char *sender_name)
{
    const char *cmid = m->client_msg_id ? m->client_msg_id : "";
    const char *name = sender_name ? sender_name : m->sender;
    size_t len = strlen(m->sender) + strlen(m->target) + strlen(cmid) + strlen(name) + 4 +
                 m->body_len + 1;
    delivery_item *d = calloc(1, sizeof *d + len);
    if (!d) {
        IM_ERROR("out of memory: a message for %s waits for the next start", c->user);
        return IM_ENOMEM;
    }
    d->base.run = run_delivery;
    d->base.cancel = cancel_delivery;
    d->claim = c;
    d->m = *m;
    char *p = d->data;
    p = put_str(p, &d->m.sender, m->sender);
    p = put_str(p, &d->m.target, m->target);
    p = put_str(p, &d->m.client_msg_id, cmid);
    p = put_str(p, &d->sender_name, name);
    memcpy(p, m->body, m->body_len);
    p[m->body_len] = '\0';
    d->m.body = (const uint8_t *)p;
    im_message_conversation_id(&d->m, d->conv, sizeof d->conv);
    atomic_fetch_add(&c->queued, 1);
    /* A refused push (the loop has stopped) leaves the message unacked:
     * the store hands it over again at the next start. */
    if (!im__loop_push(ph, &d->base)) {
        atomic_fetch_sub(&c->queued, 1);
        free(d);
        return IM_ESHUTDOWN;
    }
    return IM_OK;
}

/* Work for the loop that only looks at the claim: pushed when it falls
 * behind, so that a loop that has already drained starts the catch-up. */
typedef struct claim_item {
    im_loop_item base;
    im_claim *claim;
} claim_item;

static void run_check(im_plugin_host *ph, im_loop_item *it)
{
    maybe_catch_up(ph, ((claim_item *)it)->claim);
}

static void push_check(im_plugin_host *ph, im_claim *c)
{
    claim_item *ci = calloc(1, sizeof *ci);
    if (!ci)
        return; /* the next handled delivery checks too */
    ci->base.run = run_check;
    ci->claim = c;
    if (!im__loop_push(ph, &ci->base))
        free(ci);
}

int im__deliver_to_claim(im_plugin_host *ph, im_claim *c, const im_message *m,
                         const char *sender_name)
{
    if (ph->durable_store) {
        if (atomic_load(&c->behind))
            return IM_EBUSY; /* kept in the store: the catch-up reads it */
        if (atomic_load(&c->queued) >= ph->limits.plugin_backlog) {
            atomic_store(&c->behind, true);
            c->announced = true;
            IM_WARN("plugin %s: %s is behind, %u messages wait on the plugin loop: new ones "
                    "wait in the store", c->owner->name, c->user, ph->limits.plugin_backlog);
            push_check(ph, c);
            return IM_EBUSY;
        }
    } else if (m->kind == IM_MESSAGE_GROUP && atomic_load(&c->queued) >= ph->limits.plugin_backlog) {
        /* Nowhere to keep it (private ones were refused before the store). */
        if (atomic_fetch_add(&c->skipped, 1) == 0)
            IM_WARN("plugin %s: %s is behind: group messages skip it (no durable storage)",
                    c->owner->name, c->user);
        return IM_EBUSY;
    }
    return queue_delivery(ph, c, m, sender_name);
}

int im__claim_admits_private(im_plugin_host *ph, im_claim *c, im_error *err)
{
    if (atomic_load(&c->queued) < ph->limits.plugin_backlog)
        return IM_OK;
    return im_error_set(err, IM_EBUSY, "%s is busy: try again later", c->user);
}

/* ---- catching up from the store ---- */

typedef struct catch_up {
    im_loop_item base;            /* ends it on the loop */
    im_plugin_host *ph;
    im_claim *claim;
    size_t count;
    int rc;
    im_error err;
    im_start_wait *start;
} catch_up;

static bool catch_up_one(void *arg, const im_message *m)
{
    catch_up *cu = arg;
    (void)queue_delivery(cu->ph, cu->claim, m, NULL); /* a failure: it stays unacked */
    cu->count++;
    return true;
}

static void run_catch_up_done(im_plugin_host *ph, im_loop_item *it)
{
    catch_up *cu = (catch_up *)it;
    im_claim *c = cu->claim;
    c->fetching = false;
    if (cu->rc != IM_OK) {
        c->retry_later = true;
        IM_WARN("plugin %s: cannot read what %s missed: %s", c->owner->name, c->user,
                cu->err.msg);
    }
    maybe_catch_up(ph, c);
}

/* In the store's completion order: every message stored before this read
 * is in it, every one after finds the claim live again. */
static void catch_up_done(void *arg, int rc, const im_error *err)
{
    catch_up *cu = arg;
    im_plugin_host *ph = cu->ph;
    im_claim *c = cu->claim;
    cu->rc = rc;
    if (rc != IM_OK && err)
        cu->err = *err;
    if (rc == IM_OK && cu->count < ph->limits.plugin_backlog) {
        atomic_store(&c->behind, false);
        if (c->announced)
            IM_INFO("plugin %s: %s has caught up", c->owner->name, c->user);
        c->announced = false;
    }
    if (cu->start) {
        pthread_mutex_lock(&ph->start_lock);
        if (rc != IM_OK && cu->start->rc == IM_OK) {
            cu->start->rc = rc;
            cu->start->err = cu->err;
        }
        ph->start_waiting--;
        pthread_cond_signal(&ph->start_cond);
        pthread_mutex_unlock(&ph->start_lock);
    }
    cu->base.run = run_catch_up_done;
    if (!im__loop_push(ph, &cu->base))
        free(cu);
}

int im__claim_catch_up(im_plugin_host *ph, im_claim *c, im_start_wait *start, im_error *err)
{
    catch_up *cu = calloc(1, sizeof *cu);
    if (!cu)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    *cu = (catch_up){ .ph = ph, .claim = c, .start = start };
    c->fetching = true;
    c->retry_later = false;
    int rc = ph->store->ops->pending(ph->store, c->user, ph->limits.plugin_backlog, catch_up_one,
                                     catch_up_done, cu, err);
    if (rc != IM_OK) {
        c->fetching = false;
        free(cu);
    }
    return rc;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    im_claim *c = arg;
    maybe_catch_up(c->owner->ph, c);
}

#define CATCH_UP_RETRY_MS 1000

/* On the loop, once it holds nothing for c: reads what c missed. After a
 * failed ack or read, a second later, so that a failing store is not read
 * in a tight loop (the same messages would come again and again). */
static void maybe_catch_up(im_plugin_host *ph, im_claim *c)
{
    if (!atomic_load(&c->behind) || c->fetching || atomic_load(&c->queued) > 0)
        return;
    if (c->retry && evtimer_pending(c->retry, NULL))
        return;
    if (!c->retry_later) {
        im_error err = { 0 };
        if (im__claim_catch_up(ph, c, NULL, &err) == IM_OK)
            return;
        IM_WARN("plugin %s: cannot read what %s missed: %s", c->owner->name, c->user, err.msg);
    }
    c->retry_later = false;
    struct timeval tv = { .tv_sec = CATCH_UP_RETRY_MS / 1000,
                          .tv_usec = (CATCH_UP_RETRY_MS % 1000) * 1000 };
    if (!c->retry)
        c->retry = evtimer_new(ph->base, on_retry, c);
    if (!c->retry || evtimer_add(c->retry, &tv) != 0)
        IM_ERROR("plugin %s: cannot schedule a catch-up for %s: what it missed waits for the "
                 "next start", c->owner->name, c->user);
}

void im__claims_free(im_plugin_host *ph)
{
    for (unsigned i = 0; i < ph->nclaims; i++) {
        im_claim *c = &ph->claims[i];
        unsigned long skipped = atomic_load(&c->skipped);
        if (skipped)
            IM_WARN("plugin %s: %lu group messages skipped %s while it was behind",
                    c->owner->name, skipped, c->user);
        if (c->retry) {
            event_free(c->retry);
            c->retry = NULL;
        }
    }
}

/* ---- presence ----
 *
 * A presence event waits in the loop's queue like everything else, but a
 * user has at most one waiting: an event for a user who already has one
 * overwrites it. So a loop that falls behind holds one item per user whose
 * state changed, not one per login, and a plugin learns each user's latest
 * state. The price, only while the loop is behind: a login and a logout in
 * between reach it as the last of them (a logout for a user it never saw
 * log in, or a second login). */

typedef struct presence_item {
    im_loop_item base;
    bool login;
    char user[IM_USER_ID_MAX + 1];
    char name[IM_DISPLAY_NAME_MAX + 1];
} presence_item;

static void run_presence(im_plugin_host *ph, im_loop_item *it)
{
    presence_item *p = (presence_item *)it;
    /* From here on a new event for the user needs an item of its own. */
    pthread_mutex_lock(&ph->presence_lock);
    if (ph->presence_waiting && im_strmap_get(ph->presence_waiting, p->user) == p)
        im_strmap_remove(ph->presence_waiting, p->user);
    bool login = p->login;
    char name[IM_DISPLAY_NAME_MAX + 1];
    memcpy(name, p->name, sizeof name);
    pthread_mutex_unlock(&ph->presence_lock);
    for (unsigned i = 0; i < ph->n; i++) {
        imcore_plugin *d = &ph->plugins[i].desc;
        if (login && d->on_login)
            d->on_login(d->state, p->user, name);
        else if (!login && d->on_logout)
            d->on_logout(d->state, p->user);
    }
}

static void push_presence(im_plugin_host *ph, bool login, const char *user, const char *name)
{
    pthread_mutex_lock(&ph->presence_lock);
    presence_item *p = ph->presence_waiting ? im_strmap_get(ph->presence_waiting, user) : NULL;
    if (p) {
        p->login = login;
        snprintf(p->name, sizeof p->name, "%s", name ? name : "");
        pthread_mutex_unlock(&ph->presence_lock);
        return;
    }
    p = calloc(1, sizeof *p);
    if (!p) {
        pthread_mutex_unlock(&ph->presence_lock);
        IM_ERROR("out of memory: plugins miss that %s went %s", user, login ? "online" : "offline");
        return;
    }
    p->base.run = run_presence;
    p->login = login;
    snprintf(p->user, sizeof p->user, "%s", user);
    snprintf(p->name, sizeof p->name, "%s", name ? name : "");
    if (!im__loop_push(ph, &p->base)) {
        pthread_mutex_unlock(&ph->presence_lock);
        free(p);
        return;
    }
    /* Without the map (out of memory) the event still goes, uncoalesced. */
    if (!ph->presence_waiting)
        ph->presence_waiting = im_strmap_new();
    if (ph->presence_waiting)
        (void)im_strmap_put(ph->presence_waiting, p->user, p, NULL);
    pthread_mutex_unlock(&ph->presence_lock);
}

/* ---- the port ---- */

static int pr_bind(im_presence *r, const char *user_id, const char *display_name,
                   const im_endpoint *ep, im_login_policy policy, im_endpoint *replaced,
                   im_error *err)
{
    im_plugin_host *ph = presence_host(r);
    if (im__claim_find(ph, user_id))
        return im_error_set(err, IM_EREFUSED, "%s is a service account of this server",
                            user_id);
    int rc = im_presence_bind(ph->inner.presence, user_id, display_name, ep, policy, replaced,
                              err);
    if (rc == 0 && ph->wants_presence)
        push_presence(ph, true, user_id, display_name);
    return rc;
}

static bool pr_unbind(im_presence *r, const char *user_id, const im_endpoint *ep)
{
    im_plugin_host *ph = presence_host(r);
    if (is_claim_ep(ep))
        return false;
    bool gone = im_presence_unbind(ph->inner.presence, user_id, ep);
    if (gone && ph->wants_presence)
        push_presence(ph, false, user_id, NULL);
    return gone;
}

static bool pr_is_online(im_presence *r, const char *user_id)
{
    im_plugin_host *ph = presence_host(r);
    return im__claim_find(ph, user_id) || im_presence_is_online(ph->inner.presence, user_id);
}

static bool pr_is_reserved(im_presence *r, const char *user_id)
{
    return im__claim_find(presence_host(r), user_id) != NULL;
}

static int pr_deliver(im_delivery *r, const im_message *m, const char *sender_name, im_error *err)
{
    im_plugin_host *ph = delivery_host(r);
    im_claim *c = m->kind == IM_MESSAGE_PRIVATE ? im__claim_find(ph, m->target) : NULL;
    if (!c)
        return im_delivery_deliver(ph->inner.delivery, m, sender_name, err);
    int rc = im__deliver_to_claim(ph, c, m, sender_name);
    return rc == IM_OK ? IM_OK : im_error_set(err, rc, "%s cannot take it now", c->user);
}

static int pr_deliver_many(im_delivery *r, const char *const *members, size_t n,
                           const char *skip, const im_message *m, const char *sender_name)
{
    im_plugin_host *ph = delivery_host(r);
    int delivered = im_delivery_deliver_many(ph->inner.delivery, members, n, skip, m,
                                             sender_name);
    /* A notice about a group is for clients: plugins get messages only. */
    if (delivered < 0 || m->kind == IM_MESSAGE_NOTICE)
        return delivered;
    for (unsigned k = 0; k < ph->nclaims; k++) {
        im_claim *c = &ph->claims[k];
        if (skip && strcmp(skip, c->user) == 0)
            continue;
        for (size_t i = 0; i < n; i++)
            if (strcmp(members[i], c->user) == 0) {
                delivered += im__deliver_to_claim(ph, c, m, sender_name) == IM_OK;
                break;
            }
    }
    return delivered;
}

static void pr_kick(im_delivery *r, const im_endpoint *ep, int code, const char *why)
{
    im_plugin_host *ph = delivery_host(r);
    if (!is_claim_ep(ep)) {
        im_delivery_kick(ph->inner.delivery, ep, code, why);
        return;
    }
    im_claim *c = claim_at(ph, ep);
    IM_WARN("service account %s cannot be closed (%s): it stays online", c ? c->user : "?",
            why ? why : "");
}

struct listing { im_router_user_fn fn; void *arg; bool stopped; };

static bool list_through(void *arg, const char *user, const char *name)
{
    struct listing *l = arg;
    if (!l->stopped && !l->fn(l->arg, user, name))
        l->stopped = true;
    return !l->stopped;
}

static size_t pr_list_online(im_presence *r, im_router_user_fn fn, void *arg)
{
    im_plugin_host *ph = presence_host(r);
    struct listing l = { .fn = fn, .arg = arg };
    for (unsigned i = 0; i < ph->nclaims && !l.stopped; i++)
        list_through(&l, ph->claims[i].user, ph->claims[i].name);
    return ph->nclaims + im_presence_list_online(ph->inner.presence, list_through, &l);
}

static void pr_deliver_to(im_delivery *r, const im_endpoint *ep, const im_message *m,
                          const char *sender_name)
{
    im_plugin_host *ph = delivery_host(r);
    if (!is_claim_ep(ep)) {
        im_delivery_deliver_to(ph->inner.delivery, ep, m, sender_name);
        return;
    }
    im_claim *c = claim_at(ph, ep);
    if (c)
        (void)im__deliver_to_claim(ph, c, m, sender_name);
}

/* An answer to a claimed account's own request: nobody reads it, so a
 * failure is written to the log for the plugin's author. */
static void log_refusal(im_plugin_host *ph, const im_endpoint *ep, int rc, const char *msg)
{
    im_claim *c = claim_at(ph, ep);
    IM_WARN("plugin %s: a request of %s failed: %s (%s)", c ? c->owner->name : "?",
            c ? c->user : "?", msg && msg[0] ? msg : im_strerror(rc), im_strerror(rc));
}

static void pr_send_result(im_replies *r, const im_endpoint *ep, uint64_t request_id,
                           const char *client_msg_id, int rc, const im_send_result *res,
                           const char *msg)
{
    im_plugin_host *ph = replies_host(r);
    if (!is_claim_ep(ep))
        im_replies_send_result(ph->inner.replies, ep, request_id, client_msg_id, rc, res,
                               msg);
    else if (rc != IM_OK)
        log_refusal(ph, ep, rc, msg);
}

static void pr_send_status(im_replies *r, const im_endpoint *ep, uint64_t request_id, int rc,
                           const char *msg)
{
    im_plugin_host *ph = replies_host(r);
    if (!is_claim_ep(ep))
        im_replies_send_status(ph->inner.replies, ep, request_id, rc, msg);
    else if (!im__group_call_answer(ph, claim_at(ph, ep), request_id, rc) && rc != IM_OK)
        log_refusal(ph, ep, rc, msg);
}

typedef struct call_item {
    im_loop_item base;
    im_claim *claim;
    void (*fn)(void *arg, im_session *s);
    void *arg;
} call_item;

static void run_call(im_plugin_host *ph, im_loop_item *it)
{
    (void)ph;
    call_item *ci = (call_item *)it;
    ci->fn(ci->arg, &ci->claim->session);
}

/* The loop stopped before the call ran: fn still runs once, with no
 * session, as route.h promises, so that it frees its argument. */
static void cancel_call(im_plugin_host *ph, im_loop_item *it)
{
    (void)ph;
    call_item *ci = (call_item *)it;
    ci->fn(ci->arg, NULL);
}

/* For a claimed account fn always goes through the loop's queue, from the
 * loop thread too: it never runs inside the call while the loop takes
 * work, so a caller holding a lock or half-way through its own state is
 * safe. Only when the loop has stopped (or memory is out) does fn run at
 * once, inside the call, with a NULL session. */
static void pr_with_session(im_replies *r, const im_endpoint *ep,
                            void (*fn)(void *arg, im_session *s), void *arg)
{
    im_plugin_host *ph = replies_host(r);
    if (!is_claim_ep(ep)) {
        im_replies_with_session(ph->inner.replies, ep, fn, arg);
        return;
    }
    im_claim *c = claim_at(ph, ep);
    call_item *ci = c ? calloc(1, sizeof *ci) : NULL;
    if (ci) {
        ci->base.run = run_call;
        ci->base.cancel = cancel_call;
        ci->claim = c;
        ci->fn = fn;
        ci->arg = arg;
        if (im__loop_push(ph, &ci->base))
            return;
        free(ci);
    }
    fn(arg, NULL); /* runs exactly once: with no session, it only frees */
}

static void pr_send_login_result(im_replies *r, const im_endpoint *ep, uint64_t request_id,
                                 int rc, const im_session *s, const char *token,
                                 const char *msg)
{
    im_plugin_host *ph = replies_host(r);
    if (!is_claim_ep(ep))
        im_replies_send_login_result(ph->inner.replies, ep, request_id, rc, s, token, msg);
}

/* A claimed account never asks for history; the network's port answers
 * for the others, if it can. */
static void pr_send_history(im_replies *r, const im_endpoint *ep, uint64_t request_id, int rc,
                            const im_message *msgs, size_t n, const char *msg)
{
    im_plugin_host *ph = replies_host(r);
    if (is_claim_ep(ep))
        return;
    if (IM_ROUTE_HAS(ph->inner.replies, send_history))
        im_replies_send_history(ph->inner.replies, ep, request_id, rc, msgs, n, msg);
    else
        im_replies_send_status(ph->inner.replies, ep, request_id, IM_EUNSUPPORTED,
                               "the transport cannot answer a history");
}

static const struct im_presence_ops plugin_presence_ops = {
    .size = sizeof(struct im_presence_ops),
    .name = "plugins",
    .bind = pr_bind,
    .unbind = pr_unbind,
    .is_online = pr_is_online,
    .list_online = pr_list_online,
    .is_reserved = pr_is_reserved,
};

static const struct im_delivery_ops plugin_delivery_ops = {
    .size = sizeof(struct im_delivery_ops),
    .name = "plugins",
    .deliver = pr_deliver,
    .deliver_many = pr_deliver_many,
    .deliver_to = pr_deliver_to,
    .kick = pr_kick,
};

/* The claimed accounts' sessions live on this node, on the plugin loop:
 * their replies are the host's to give, whatever carries presence and
 * delivery. */
static const struct im_replies_ops plugin_replies_ops = {
    .size = sizeof(struct im_replies_ops),
    .name = "plugins",
    .send_result = pr_send_result,
    .send_status = pr_send_status,
    .send_login_result = pr_send_login_result,
    .with_session = pr_with_session,
    .send_history = pr_send_history,
};

void im__plugin_router_init(im_plugin_host *ph)
{
    ph->presence.ops = &plugin_presence_ops;
    ph->delivery.ops = &plugin_delivery_ops;
    ph->replies.ops = &plugin_replies_ops;
}
