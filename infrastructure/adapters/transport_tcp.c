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
 * options of its own, so any transport_options key is refused.
 *
 * A `listen:` list arrives as listener.N ("KIND HOST PORT MAX_CONNECTIONS")
 * with listener.N.cert, .key and .client_ca for a tls one. This transport
 * serves the kinds tcp and tls: the same network code, a carrier per
 * connection chosen by its listener (docs/architecture.md, "Listeners and
 * carriers"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imcore/plugin.h"
#include "imcore/transport.h"
#include "adapter_config.h"
#include "im_log.h"
#include "im_net_server.h"

/* One listener's settings as read, the strings the config points at. */
typedef struct listener_text {
    char kind[16], host[64];
    char cert[256], key[256], client_ca[256];
    char where[300], cert_where[300], key_where[300], ca_where[300];
} listener_text;

typedef struct adapter {
    im_adapter base;              /* first */
    char listen_host[64];
    char node_id[64];
    im_net_config cfg;
    listener_text text[IM_NET_MAX_LISTENERS];
    im_net_listener_config listeners[IM_NET_MAX_LISTENERS];
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

static void copy_setting(const imcore_host_api *api, imcore_host *host, const char *key,
                         char *out, size_t size, char *where, size_t wsize)
{
    const char *v = api->config_get(host, key);
    snprintf(out, size, "%s", v ? v : "");
    const char *w = api->config_where(host, key);
    snprintf(where, wsize, "%s", w ? w : "");
}

/* listener.N settings into a->listeners; false with out->error set if one
 * is malformed (the config reader wrote them: a bug, not a user's slip). */
static bool read_listeners(adapter *a, const imcore_host_api *api, imcore_host *host,
                           imcore_plugin *out)
{
    for (unsigned i = 0; i < IM_NET_MAX_LISTENERS; i++) {
        char key[48];
        snprintf(key, sizeof key, "listener.%u", i);
        const char *v = api->config_get(host, key);
        if (!v)
            break;
        listener_text *t = &a->text[i];
        im_net_listener_config *lc = &a->listeners[i];
        unsigned port = 0, maxc = 0;
        if (sscanf(v, "%15s %63s %u %u", t->kind, t->host, &port, &maxc) != 4 || port > 65535) {
            snprintf(out->error, sizeof out->error, "%s: malformed: '%s'", key, v);
            return false;
        }
        const char *w = api->config_where(host, key);
        snprintf(t->where, sizeof t->where, "%s", w ? w : "");
        char sub[64];
        snprintf(sub, sizeof sub, "%s.cert", key);
        copy_setting(api, host, sub, t->cert, sizeof t->cert, t->cert_where, sizeof t->cert_where);
        snprintf(sub, sizeof sub, "%s.key", key);
        copy_setting(api, host, sub, t->key, sizeof t->key, t->key_where, sizeof t->key_where);
        snprintf(sub, sizeof sub, "%s.client_ca", key);
        copy_setting(api, host, sub, t->client_ca, sizeof t->client_ca, t->ca_where,
                     sizeof t->ca_where);
        *lc = (im_net_listener_config){
            .transport = t->kind, .host = t->host, .port = (uint16_t)port,
            .max_connections = maxc, .cert = t->cert, .key = t->key, .client_ca = t->client_ca,
            .where = t->where[0] ? t->where : NULL,
            .cert_where = t->cert_where[0] ? t->cert_where : NULL,
            .key_where = t->key_where[0] ? t->key_where : NULL,
            .client_ca_where = t->ca_where[0] ? t->ca_where : NULL,
        };
        a->cfg.nlisteners = i + 1;
    }
    a->cfg.listeners = a->cfg.nlisteners ? a->listeners : NULL;
    return true;
}

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
        "limits.max_unauthenticated_per_address", "limits.input_buffer_bytes", "listener.*",
        NULL,
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
    /* The certificates are loaded here too, so that --check-config, which
     * runs every init, finds a bad one; open_transport loads them again. */
    im_error err = { 0 };
    if (!read_listeners(a, api, host, out) ||
        (im_net_check_listeners(a->cfg.listeners, a->cfg.nlisteners, &err) != IM_OK &&
         snprintf(out->error, sizeof out->error, "%s", err.msg) >= 0)) {
        out->state = NULL; /* a refused init is not shut down: its state goes here */
        im_adapter_free(a);
        return 1;
    }
    out->open_transport = open_transport;
    return 0;
}
