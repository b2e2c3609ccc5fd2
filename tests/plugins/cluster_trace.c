/* A test cluster adapter (cluster: trace -> cluster_trace.so): wraps the
 * node's presence and delivery and forwards every op to them unchanged,
 * logging one line per delivery ("cluster_trace: deliver alice -> bob"),
 * so that a test can see that the application's messages go through the
 * tables a cluster adapter gives. It never sees a session, nor the replies
 * to one: those stay with the transport. Built against the public headers
 * only, like a real adapter (Redis, ZooKeeper) will be. */
#include <stdio.h>

#include "imcore/plugin.h"
#include "imcore/route.h"

typedef struct trace {
    im_presence presence;         /* the adapter's two tables */
    im_delivery delivery;
    im_presence *local_presence;  /* this node's, which it wraps */
    im_delivery *local_delivery;
    const imcore_host_api *api;
    imcore_host *host;
    char node[64];
} trace;

static trace the_trace;           /* one per load */

static trace *of_presence(im_presence *p)
{
    return (trace *)(void *)((char *)p - offsetof(trace, presence));
}

static trace *of_delivery(im_delivery *d)
{
    return (trace *)(void *)((char *)d - offsetof(trace, delivery));
}

static int t_bind(im_presence *p, const char *user_id, const char *display_name,
                  const im_endpoint *ep, im_login_policy policy, im_endpoint *replaced,
                  im_error *err)
{
    return im_presence_bind(of_presence(p)->local_presence, user_id, display_name, ep, policy,
                            replaced, err);
}

static bool t_unbind(im_presence *p, const char *user_id, const im_endpoint *ep)
{
    return im_presence_unbind(of_presence(p)->local_presence, user_id, ep);
}

static bool t_is_online(im_presence *p, const char *user_id)
{
    return im_presence_is_online(of_presence(p)->local_presence, user_id);
}

static size_t t_list_online(im_presence *p, im_router_user_fn fn, void *arg)
{
    return im_presence_list_online(of_presence(p)->local_presence, fn, arg);
}

static bool t_is_reserved(im_presence *p, const char *user_id)
{
    return im_presence_is_reserved(of_presence(p)->local_presence, user_id);
}

static int t_deliver(im_delivery *d, const im_message *m, const char *sender_name,
                     im_error *err)
{
    trace *t = of_delivery(d);
    t->api->log(t->host, IMCORE_LOG_INFO, "deliver %s -> %s", m->sender, m->target);
    return im_delivery_deliver(t->local_delivery, m, sender_name, err);
}

static int t_deliver_many(im_delivery *d, const char *const *members, size_t n,
                          const char *skip, const im_message *m, const char *sender_name)
{
    trace *t = of_delivery(d);
    t->api->log(t->host, IMCORE_LOG_INFO, "deliver %s -> %s (%zu members)", m->sender,
                m->target, n);
    return im_delivery_deliver_many(t->local_delivery, members, n, skip, m, sender_name);
}

static void t_deliver_to(im_delivery *d, const im_endpoint *ep, const im_message *m,
                         const char *sender_name)
{
    trace *t = of_delivery(d);
    t->api->log(t->host, IMCORE_LOG_INFO, "deliver %s -> %s (to a session, seq %llu)",
                m->sender, m->target, (unsigned long long)m->seq);
    im_delivery_deliver_to(t->local_delivery, ep, m, sender_name);
}

static void t_kick(im_delivery *d, const im_endpoint *ep, int code, const char *why)
{
    im_delivery_kick(of_delivery(d)->local_delivery, ep, code, why);
}

static const struct im_presence_ops trace_presence_ops = {
    .size = sizeof(struct im_presence_ops),
    .name = "cluster_trace",
    .bind = t_bind,
    .unbind = t_unbind,
    .is_online = t_is_online,
    .list_online = t_list_online,
    .is_reserved = t_is_reserved,
};

static const struct im_delivery_ops trace_delivery_ops = {
    .size = sizeof(struct im_delivery_ops),
    .name = "cluster_trace",
    .deliver = t_deliver,
    .deliver_many = t_deliver_many,
    .deliver_to = t_deliver_to,
    .kick = t_kick,
};

static int open_cluster(void *state, im_presence *local_presence, im_delivery *local_delivery,
                        im_presence **presence, im_delivery **delivery, im_error *err)
{
    (void)err;
    trace *t = state;
    t->presence.ops = &trace_presence_ops;
    t->delivery.ops = &trace_delivery_ops;
    t->local_presence = local_presence;
    t->local_delivery = local_delivery;
    *presence = &t->presence;
    *delivery = &t->delivery;
    t->api->log(t->host, IMCORE_LOG_INFO, "node %s: wrapping the %s route port", t->node,
                local_presence->ops->name ? local_presence->ops->name : "?");
    return 0;
}

IMCORE_PLUGIN_INFO("cluster_trace", "1");

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
