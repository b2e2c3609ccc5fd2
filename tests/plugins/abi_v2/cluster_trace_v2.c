/* A cluster adapter of plugin API 2 (cluster: trace_v2 ->
 * cluster_trace_v2.so), built against the frozen headers of version 2,
 * whose route port was one table: wraps the node's port and forwards every
 * op to it unchanged, logging one line per delivery ("cluster_trace_v2:
 * deliver alice -> bob"), so that a test can see that a server of today
 * still routes through an adapter of version 2. */
#include <stdio.h>

#include "imcore/plugin.h"

typedef struct trace {
    im_router base;               /* first: the port is the adapter */
    im_router *local;
    const imcore_host_api *api;
    imcore_host *host;
    char node[64];
} trace;

static trace the_trace;           /* one per load */

static im_router *local_of(im_router *r)
{
    return ((trace *)r)->local;
}

static int t_bind(im_router *r, const char *user_id, const char *display_name,
                  const im_endpoint *ep, im_login_policy policy, im_endpoint *replaced,
                  im_error *err)
{
    im_router *l = local_of(r);
    return l->ops->bind(l, user_id, display_name, ep, policy, replaced, err);
}

static bool t_unbind(im_router *r, const char *user_id, const im_endpoint *ep)
{
    im_router *l = local_of(r);
    return l->ops->unbind(l, user_id, ep);
}

static bool t_is_online(im_router *r, const char *user_id)
{
    im_router *l = local_of(r);
    return l->ops->is_online(l, user_id);
}

static bool t_is_reserved(im_router *r, const char *user_id)
{
    im_router *l = local_of(r);
    return l->ops->is_reserved ? l->ops->is_reserved(l, user_id) : false;
}

static int t_deliver(im_router *r, const im_message *m, const char *sender_name, im_error *err)
{
    trace *t = (trace *)r;
    t->api->log(t->host, IMCORE_LOG_INFO, "deliver %s -> %s", m->sender, m->target);
    return t->local->ops->deliver(t->local, m, sender_name, err);
}

static int t_deliver_many(im_router *r, const char *const *members, size_t n, const char *skip,
                          const im_message *m, const char *sender_name)
{
    trace *t = (trace *)r;
    t->api->log(t->host, IMCORE_LOG_INFO, "deliver %s -> %s (%zu members)", m->sender,
                m->target, n);
    return t->local->ops->deliver_many(t->local, members, n, skip, m, sender_name);
}

static void t_kick(im_router *r, const im_endpoint *ep, int code, const char *why)
{
    im_router *l = local_of(r);
    l->ops->kick(l, ep, code, why);
}

static size_t t_list_online(im_router *r, im_router_user_fn fn, void *arg)
{
    im_router *l = local_of(r);
    return l->ops->list_online(l, fn, arg);
}

static void t_deliver_to(im_router *r, const im_endpoint *ep, const im_message *m,
                         const char *sender_name)
{
    trace *t = (trace *)r;
    t->api->log(t->host, IMCORE_LOG_INFO, "deliver %s -> %s (to a session, seq %llu)",
                m->sender, m->target, (unsigned long long)m->seq);
    t->local->ops->deliver_to(t->local, ep, m, sender_name);
}

static void t_send_result(im_router *r, const im_endpoint *ep, uint64_t request_id,
                          const char *client_msg_id, int rc, const im_send_result *res,
                          const char *msg)
{
    im_router *l = local_of(r);
    l->ops->send_result(l, ep, request_id, client_msg_id, rc, res, msg);
}

static void t_send_status(im_router *r, const im_endpoint *ep, uint64_t request_id, int rc,
                          const char *msg)
{
    im_router *l = local_of(r);
    l->ops->send_status(l, ep, request_id, rc, msg);
}

static void t_with_session(im_router *r, const im_endpoint *ep,
                           void (*fn)(void *arg, im_session *s), void *arg)
{
    im_router *l = local_of(r);
    l->ops->with_session(l, ep, fn, arg);
}

static void t_send_login_result(im_router *r, const im_endpoint *ep, uint64_t request_id,
                                int rc, const im_session *s, const char *token, const char *msg)
{
    im_router *l = local_of(r);
    l->ops->send_login_result(l, ep, request_id, rc, s, token, msg);
}

static const struct im_router_ops trace_ops = {
    .size = sizeof(struct im_router_ops),
    .name = "cluster_trace",
    .bind = t_bind,
    .unbind = t_unbind,
    .is_online = t_is_online,
    .is_reserved = t_is_reserved,
    .deliver = t_deliver,
    .deliver_many = t_deliver_many,
    .kick = t_kick,
    .list_online = t_list_online,
    .deliver_to = t_deliver_to,
    .send_result = t_send_result,
    .send_status = t_send_status,
    .with_session = t_with_session,
    .send_login_result = t_send_login_result,
};

static int open_cluster(void *state, im_router *local, im_router **out, im_error *err)
{
    (void)err;
    trace *t = state;
    t->base.ops = &trace_ops;
    t->local = local;
    *out = &t->base;
    t->api->log(t->host, IMCORE_LOG_INFO, "node %s: wrapping the %s route port", t->node,
                local->ops->name ? local->ops->name : "?");
    return 0;
}

IMCORE_PLUGIN_INFO("cluster_trace_v2", "1");

int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    if (out->size < offsetof(imcore_plugin, open_cluster) + sizeof out->open_cluster) {
        snprintf(out->error, sizeof out->error, "this server has no cluster adapters");
        return 1;
    }
    const char *node = api->config_get(host, "node_id");
    the_trace = (trace){ .api = api, .host = host };
    snprintf(the_trace.node, sizeof the_trace.node, "%s", node ? node : "?");
    out->state = &the_trace;
    out->open_cluster = open_cluster;
    return 0;
}
