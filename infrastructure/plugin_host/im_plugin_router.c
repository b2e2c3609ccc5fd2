/* infrastructure/plugin_host/im_plugin_router.c: the route port the
 * application gets when plugins take part in routing. It wraps the
 * network's port and adds two things:
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

static im_plugin_host *host_of(im_router *r)
{
    return (im_plugin_host *)((char *)r - offsetof(im_plugin_host, router));
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
    /* A handful at most, fixed after load: a scan beats a hash here. */
    for (unsigned i = 0; i < ph->nclaims; i++)
        if (strcmp(ph->claims[i].user, user) == 0)
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
    /* Handled: acked, so it does not come again at the next start. */
    im_error err = { 0 };
    if (ph->store && m->seq &&
        ph->store->ops->ack(ph->store, c->user, d->conv, m->seq, &err) != IM_OK)
        IM_WARN("plugin %s: cannot ack %s #%llu for %s: %s", h->name, d->conv,
                (unsigned long long)m->seq, c->user, err.msg);
}

static char *put_str(char *p, const char **field, const char *s)
{
    size_t n = strlen(s) + 1;
    memcpy(p, s, n);
    *field = p;
    return p + n;
}

void im__deliver_to_claim(im_plugin_host *ph, im_claim *c, const im_message *m,
                          const char *sender_name)
{
    const char *cmid = m->client_msg_id ? m->client_msg_id : "";
    const char *name = sender_name ? sender_name : m->sender;
    size_t len = strlen(m->sender) + strlen(m->target) + strlen(cmid) + strlen(name) + 4 +
                 m->body_len + 1;
    delivery_item *d = calloc(1, sizeof *d + len);
    if (!d) {
        IM_ERROR("out of memory: a message for %s waits for the next start", c->user);
        return;
    }
    d->base.run = run_delivery;
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
    /* A refused push (the loop has stopped) leaves the message unacked:
     * the store hands it over again at the next start. */
    if (!im__loop_push(ph, &d->base))
        free(d);
}

/* ---- presence ---- */

typedef struct presence_item {
    im_loop_item base;
    bool login;
    char user[IM_USER_ID_MAX + 1];
    char name[IM_DISPLAY_NAME_MAX + 1];
} presence_item;

static void run_presence(im_plugin_host *ph, im_loop_item *it)
{
    presence_item *p = (presence_item *)it;
    for (unsigned i = 0; i < ph->n; i++) {
        imcore_plugin *d = &ph->plugins[i].desc;
        if (p->login && d->on_login)
            d->on_login(d->state, p->user, p->name);
        else if (!p->login && d->on_logout)
            d->on_logout(d->state, p->user);
    }
}

static void push_presence(im_plugin_host *ph, bool login, const char *user, const char *name)
{
    presence_item *p = calloc(1, sizeof *p);
    if (!p) {
        IM_ERROR("out of memory: plugins miss that %s went %s", user, login ? "online" : "offline");
        return;
    }
    p->base.run = run_presence;
    p->login = login;
    snprintf(p->user, sizeof p->user, "%s", user);
    snprintf(p->name, sizeof p->name, "%s", name ? name : "");
    if (!im__loop_push(ph, &p->base))
        free(p);
}

/* ---- the port ---- */

static int pr_bind(im_router *r, const char *user_id, const char *display_name,
                   const im_endpoint *ep, im_login_policy policy, im_endpoint *replaced,
                   im_error *err)
{
    im_plugin_host *ph = host_of(r);
    if (im__claim_find(ph, user_id))
        return im_error_set(err, IM_EREFUSED, "%s is a service account of this server",
                            user_id);
    int rc = ph->inner->ops->bind(ph->inner, user_id, display_name, ep, policy, replaced, err);
    if (rc == 0 && ph->wants_presence)
        push_presence(ph, true, user_id, display_name);
    return rc;
}

static bool pr_unbind(im_router *r, const char *user_id, const im_endpoint *ep)
{
    im_plugin_host *ph = host_of(r);
    if (is_claim_ep(ep))
        return false;
    bool gone = ph->inner->ops->unbind(ph->inner, user_id, ep);
    if (gone && ph->wants_presence)
        push_presence(ph, false, user_id, NULL);
    return gone;
}

static bool pr_is_online(im_router *r, const char *user_id)
{
    im_plugin_host *ph = host_of(r);
    return im__claim_find(ph, user_id) || ph->inner->ops->is_online(ph->inner, user_id);
}

static bool pr_is_reserved(im_router *r, const char *user_id)
{
    return im__claim_find(host_of(r), user_id) != NULL;
}

static int pr_deliver(im_router *r, const im_message *m, const char *sender_name, im_error *err)
{
    im_plugin_host *ph = host_of(r);
    im_claim *c = m->kind == IM_MESSAGE_PRIVATE ? im__claim_find(ph, m->target) : NULL;
    if (!c)
        return ph->inner->ops->deliver(ph->inner, m, sender_name, err);
    im__deliver_to_claim(ph, c, m, sender_name);
    return IM_OK;
}

static int pr_deliver_many(im_router *r, const char *const *members, size_t n,
                           const char *skip, const im_message *m, const char *sender_name)
{
    im_plugin_host *ph = host_of(r);
    int delivered = ph->inner->ops->deliver_many(ph->inner, members, n, skip, m, sender_name);
    if (delivered < 0)
        return delivered;
    for (unsigned k = 0; k < ph->nclaims; k++) {
        im_claim *c = &ph->claims[k];
        if (skip && strcmp(skip, c->user) == 0)
            continue;
        for (size_t i = 0; i < n; i++)
            if (strcmp(members[i], c->user) == 0) {
                im__deliver_to_claim(ph, c, m, sender_name);
                delivered++;
                break;
            }
    }
    return delivered;
}

static void pr_kick(im_router *r, const im_endpoint *ep, int code, const char *why)
{
    im_plugin_host *ph = host_of(r);
    if (!is_claim_ep(ep)) {
        ph->inner->ops->kick(ph->inner, ep, code, why);
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

static size_t pr_list_online(im_router *r, im_router_user_fn fn, void *arg)
{
    im_plugin_host *ph = host_of(r);
    struct listing l = { .fn = fn, .arg = arg };
    for (unsigned i = 0; i < ph->nclaims && !l.stopped; i++)
        list_through(&l, ph->claims[i].user, ph->claims[i].name);
    return ph->nclaims + ph->inner->ops->list_online(ph->inner, list_through, &l);
}

static void pr_deliver_to(im_router *r, const im_endpoint *ep, const im_message *m,
                          const char *sender_name)
{
    im_plugin_host *ph = host_of(r);
    if (!is_claim_ep(ep)) {
        ph->inner->ops->deliver_to(ph->inner, ep, m, sender_name);
        return;
    }
    im_claim *c = claim_at(ph, ep);
    if (c)
        im__deliver_to_claim(ph, c, m, sender_name);
}

/* An answer to a claimed account's own request: nobody reads it, so a
 * failure is written to the log for the plugin's author. */
static void log_refusal(im_plugin_host *ph, const im_endpoint *ep, int rc, const char *msg)
{
    im_claim *c = claim_at(ph, ep);
    IM_WARN("plugin %s: a request of %s failed: %s (%s)", c ? c->owner->name : "?",
            c ? c->user : "?", msg && msg[0] ? msg : im_strerror(rc), im_strerror(rc));
}

static void pr_send_result(im_router *r, const im_endpoint *ep, uint64_t request_id,
                           const char *client_msg_id, int rc, const im_send_result *res,
                           const char *msg)
{
    im_plugin_host *ph = host_of(r);
    if (!is_claim_ep(ep))
        ph->inner->ops->send_result(ph->inner, ep, request_id, client_msg_id, rc, res, msg);
    else if (rc != IM_OK)
        log_refusal(ph, ep, rc, msg);
}

static void pr_send_status(im_router *r, const im_endpoint *ep, uint64_t request_id, int rc,
                           const char *msg)
{
    im_plugin_host *ph = host_of(r);
    if (!is_claim_ep(ep))
        ph->inner->ops->send_status(ph->inner, ep, request_id, rc, msg);
    else if (rc != IM_OK)
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

static void pr_with_session(im_router *r, const im_endpoint *ep,
                            void (*fn)(void *arg, im_session *s), void *arg)
{
    im_plugin_host *ph = host_of(r);
    if (!is_claim_ep(ep)) {
        ph->inner->ops->with_session(ph->inner, ep, fn, arg);
        return;
    }
    im_claim *c = claim_at(ph, ep);
    call_item *ci = c ? calloc(1, sizeof *ci) : NULL;
    if (ci) {
        ci->base.run = run_call;
        ci->claim = c;
        ci->fn = fn;
        ci->arg = arg;
        if (im__loop_push(ph, &ci->base))
            return;
        free(ci);
    }
    fn(arg, NULL); /* runs exactly once: with no session, it only frees */
}

static void pr_send_login_result(im_router *r, const im_endpoint *ep, uint64_t request_id,
                                 int rc, const im_session *s, const char *token,
                                 const char *msg)
{
    im_plugin_host *ph = host_of(r);
    if (!is_claim_ep(ep))
        ph->inner->ops->send_login_result(ph->inner, ep, request_id, rc, s, token, msg);
}

static const struct im_router_ops plugin_router_ops = {
    .name = "plugins",
    .bind = pr_bind,
    .unbind = pr_unbind,
    .is_online = pr_is_online,
    .is_reserved = pr_is_reserved,
    .deliver = pr_deliver,
    .deliver_many = pr_deliver_many,
    .kick = pr_kick,
    .list_online = pr_list_online,
    .deliver_to = pr_deliver_to,
    .send_result = pr_send_result,
    .send_status = pr_send_status,
    .with_session = pr_with_session,
    .send_login_result = pr_send_login_result,
};

void im__plugin_router_init(im_plugin_host *ph)
{
    ph->router.ops = &plugin_router_ops;
}
