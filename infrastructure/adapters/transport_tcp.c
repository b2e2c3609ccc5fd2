/* infrastructure/adapters/transport_tcp.c: the libevent TCP transport as a
 * transport adapter plugin (transport_tcp.so), chosen with `transport: tcp`
 * (the default).
 *
 * Built like any plugin, against include/imcore at its boundary: it carries
 * its own copy of the network code (infrastructure/net_libevent), the codec
 * and the domain's session rules inside the .so, and reaches the
 * application only through the core table the server hands to run. The
 * server reaches it through imcore_plugin_init and open_transport alone.
 *
 * Its settings are the server's own typed keys (listen.*, workers, ...),
 * which the config reader has checked, handed over flattened; it has no
 * options of its own, so any transport_options key is refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imcore/plugin.h"
#include "imcore/transport.h"
#include "adapter_config.h"
#include "im_log.h"
#include "im_net_server.h"

typedef struct adapter {
    im_adapter base;              /* first */
    char listen_host[64];
    char node_id[64];
    im_net_config cfg;
} adapter;

/* The port: the net server behind it. */
typedef struct tcp_transport {
    imcore_transport base;        /* first: the port is the transport */
    im_net_server *srv;
} tcp_transport;

static im_net_server *srv_of(const imcore_transport *t)
{
    return ((const tcp_transport *)t)->srv;
}

static im_presence *tcp_presence(imcore_transport *t)
{
    return im_net_server_presence(srv_of(t));
}

static im_delivery *tcp_delivery(imcore_transport *t)
{
    return im_net_server_delivery(srv_of(t));
}

static im_replies *tcp_replies(imcore_transport *t)
{
    return im_net_server_replies(srv_of(t));
}

static unsigned tcp_bound_port(const imcore_transport *t)
{
    return im_net_server_bound_port(srv_of(t));
}

static int tcp_run(imcore_transport *t, const imcore_core_api *core, im_app *app, im_error *err)
{
    /* Every function of the table this transport calls. */
    if (!core || core->size < offsetof(imcore_core_api, online_users_page) +
                                  sizeof core->online_users_page)
        return im_error_set(err, IM_EINVAL, "transport tcp: the server's core table is too old");
    /* The server checked imcore_plugin_about's session_size at load; this
     * is the same rule where the sessions are made, in case a server did
     * not. */
    if (core->session_size != sizeof(im_session))
        return im_error_set(err, IM_EINVAL,
                            "transport tcp: built for sessions of %zu bytes, the server's are "
                            "%zu", sizeof(im_session), core->session_size);
    return im_net_server_run(srv_of(t), core, app, err);
}

static void tcp_stop(imcore_transport *t)
{
    im_net_server_stop(srv_of(t));
}

static void tcp_destroy(imcore_transport *t)
{
    if (!t)
        return;
    im_net_server_free(srv_of(t));
    free(t);
}

static const struct imcore_transport_ops tcp_ops = {
    .size = sizeof(struct imcore_transport_ops),
    .name = "tcp",
    .presence = tcp_presence,
    .delivery = tcp_delivery,
    .replies = tcp_replies,
    .bound_port = tcp_bound_port,
    .run = tcp_run,
    .stop = tcp_stop,
    .destroy = tcp_destroy,
};

static int open_transport(void *state, imcore_transport **out, im_error *err)
{
    adapter *a = state;
    *out = NULL;
    tcp_transport *t = calloc(1, sizeof *t);
    if (!t)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    t->base.ops = &tcp_ops;
    int rc = im_net_server_new(&a->cfg, &t->srv, err);
    if (rc != IM_OK) {
        free(t);
        return rc;
    }
    *out = &t->base;
    return IM_OK;
}

/* The network code keeps each connection's session by value
 * (im_net_internal.h), so the server must refuse this build if its own
 * sessions are of another size. */
const imcore_plugin_info imcore_plugin_about = {
    IMCORE_PLUGIN_INFO_FIELDS("transport_tcp", "1"),
    .session_size = sizeof(im_session),
};

int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    static const char *const known[] = {
        "listen.host", "listen.port", "workers", "node_id", "limits.max_connections",
        "limits.max_frame_bytes", "limits.output_buffer_bytes", "session.heartbeat_s",
        "session.idle_timeout_s", "accounts.max_login_failures",
        "accounts.login_failure_window_s", "accounts.max_registrations",
        "session.login_timeout_s", "session.frame_timeout_s", "limits.max_unauthenticated",
        "limits.max_unauthenticated_per_address", "limits.input_buffer_bytes", NULL,
    };
    adapter *a = im_adapter_new(api, host, out, "transport_tcp",
                                IM_ADAPTER_PLUGIN_SIZE(open_transport), known,
                                "transport_options", sizeof *a);
    if (!a)
        return 1;
    const char *h = api->config_get(host, "listen.host");
    snprintf(a->listen_host, sizeof a->listen_host, "%s", h && h[0] ? h : "127.0.0.1");
    const char *node = api->config_get(host, "node_id");
    snprintf(a->node_id, sizeof a->node_id, "%s", node && node[0] ? node : "node-1");
    a->cfg = (im_net_config){
        .listen_host = a->listen_host,
        .listen_port = (uint16_t)im_adapter_uint(api, host, "listen.port", 7000),
        .workers = im_adapter_uint(api, host, "workers", 1),
        .node = 0,
        .node_id = a->node_id,
        .max_connections = im_adapter_uint(api, host, "limits.max_connections", 19000),
        .max_frame_bytes = im_adapter_uint(api, host, "limits.max_frame_bytes", 65536),
        .output_buffer_bytes = im_adapter_uint(api, host, "limits.output_buffer_bytes", 4194304),
        .heartbeat_s = im_adapter_uint(api, host, "session.heartbeat_s", 30),
        .idle_timeout_s = im_adapter_uint(api, host, "session.idle_timeout_s", 90),
        .max_login_failures = im_adapter_uint(api, host, "accounts.max_login_failures", 5),
        .login_failure_window_s =
            im_adapter_uint(api, host, "accounts.login_failure_window_s", 60),
        .max_registrations = im_adapter_uint(api, host, "accounts.max_registrations", 100),
        .login_timeout_s = im_adapter_uint(api, host, "session.login_timeout_s", 10),
        .frame_timeout_s = im_adapter_uint(api, host, "session.frame_timeout_s", 30),
        .max_unauthenticated = im_adapter_uint(api, host, "limits.max_unauthenticated", 9500),
        .max_unauth_per_address =
            im_adapter_uint(api, host, "limits.max_unauthenticated_per_address", 1000),
        .input_budget_bytes = im_adapter_uint(api, host, "limits.input_buffer_bytes", 67108864),
    };
    if (a->cfg.workers == 0)
        a->cfg.workers = 1;
    out->open_transport = open_transport;
    return 0;
}
