/* infrastructure/plugin_host/im_plugin_abi.h: the plugin ABI as the host
 * checks it: which version it speaks with a plugin, and whether the port
 * tables an adapter hands over are ones it can use. Not a public header;
 * it knows the public headers only (so that tests can drive it with any
 * table), not the host's state.
 *
 * What crosses the boundary is checked once, where it crosses, never per
 * call: a plugin's imcore_plugin_about before its init, a port's table
 * when open_* hands it over. A table with every operation this server
 * knows is used as it is, so calls through it cost what they always did.
 * One that ends early (an adapter built before operations were appended),
 * or has an older version's layout, is put behind a shim that forwards each call
 * to the adapter's operation or to the fallback its header documents: one
 * indirect call more, for such adapters only. */
#ifndef IM_PLUGIN_ABI_H
#define IM_PLUGIN_ABI_H

#include <stddef.h>

#include "imcore/plugin.h"
#include "imcore/route.h"
#include "imcore/storage.h"
#include "imcore/transport.h"

/* The plugin API versions this host speaks: IM_PLUGIN_API_OLDEST to
 * IMCORE_PLUGIN_API_VERSION. */
#define IM_PLUGIN_API_OLDEST 1u

/* What a config entry loads, which decides what a plugin must be. */
typedef enum im_abi_role {
    IM_ABI_EXTENSION = 0,         /* plugins: */
    IM_ABI_STORAGE,               /* storage.engine */
    IM_ABI_TRANSPORT,             /* transport */
    IM_ABI_CLUSTER,               /* cluster */
} im_abi_role;

/* Decides, before the plugin's init runs, which version to speak with it:
 * from about (NULL: the plugin exports no imcore_plugin_about, so it is of
 * version 1) for an entry of the given role, with session_size the
 * server's sizeof(im_session). Sets *version and returns IM_OK, or returns
 * IM_EINVAL with err saying why, in a sentence fit to follow "FILE:LINE:
 * plugin NAME: ": another build signature, a version range this server
 * does not meet, a transport of version 1 or one built for sessions of
 * another size, a cluster adapter of version 1. */
int im__abi_choose(const imcore_plugin_info *about, im_abi_role role, size_t session_size,
                   unsigned *version, im_error *err);

/* The store s, opened by an adapter that speaks plugin API version, as
 * this server's storage port. *out is s itself when its table has every
 * operation this server knows; otherwise a shim that takes s over (its
 * destroy destroys s, then frees itself). absent (may be NULL) gets the
 * optional operations the server falls back for, comma-separated ("" for
 * none), for the log. Errors: IM_EUNSUPPORTED (a table without a size, or
 * without an operation the server cannot do without: err names it; s is
 * destroyed if its table has destroy), IM_ENOMEM (s destroyed). */
int im__abi_store(im_store *s, unsigned version, im_store **out, char *absent,
                  size_t absent_size, im_error *err);

/* The route port of this node, or of a cluster adapter, in its three
 * tables (imcore/route.h). Each borrowed. */
typedef struct im_route_ports {
    im_presence *presence;
    im_delivery *delivery;
    im_replies *replies;
} im_route_ports;

/* Checks the tables of p that are set (a NULL one is not looked at), of
 * an adapter of version 3 or later: each must say its size and have every
 * required operation. The optional ones (is_reserved, send_history) the
 * application asks for itself (IM_ROUTE_HAS), so a table is always used as
 * it is, with no shim. absent (may be NULL) gets the optional operations
 * missing, comma-separated ("" for none), for the log. Errors:
 * IM_EUNSUPPORTED, err naming the table and the operation. */
int im__abi_route(const im_route_ports *p, char *absent, size_t absent_size, im_error *err);

/* ---- plugin API 2: one route table for all three ----
 * Frozen here as version 2 released it, for transports and cluster
 * adapters built then. */

typedef struct im_router_v2 im_router_v2;

struct im_router_ops_v2 {
    size_t size;
    const char *name;
    int (*bind)(im_router_v2 *r, const char *user_id, const char *display_name,
                const im_endpoint *ep, im_login_policy policy, im_endpoint *replaced,
                im_error *err);
    bool (*unbind)(im_router_v2 *r, const char *user_id, const im_endpoint *ep);
    bool (*is_online)(im_router_v2 *r, const char *user_id);
    int (*deliver)(im_router_v2 *r, const im_message *m, const char *sender_name, im_error *err);
    int (*deliver_many)(im_router_v2 *r, const char *const *members, size_t n, const char *skip,
                        const im_message *m, const char *sender_name);
    void (*kick)(im_router_v2 *r, const im_endpoint *ep, int code, const char *why);
    size_t (*list_online)(im_router_v2 *r, im_router_user_fn fn, void *arg);
    void (*deliver_to)(im_router_v2 *r, const im_endpoint *ep, const im_message *m,
                       const char *sender_name);
    void (*send_result)(im_router_v2 *r, const im_endpoint *ep, uint64_t request_id,
                        const char *client_msg_id, int rc, const im_send_result *res,
                        const char *msg);
    void (*send_status)(im_router_v2 *r, const im_endpoint *ep, uint64_t request_id, int rc,
                        const char *msg);
    void (*with_session)(im_router_v2 *r, const im_endpoint *ep,
                         void (*fn)(void *arg, im_session *s), void *arg);
    void (*send_login_result)(im_router_v2 *r, const im_endpoint *ep, uint64_t request_id,
                              int rc, const im_session *s, const char *token, const char *msg);
    /* optional from here on */
    bool (*is_reserved)(im_router_v2 *r, const char *user_id);
    void (*send_history)(im_router_v2 *r, const im_endpoint *ep, uint64_t request_id, int rc,
                         const im_message *msgs, size_t n, const char *msg);
};

struct im_router_v2 { const struct im_router_ops_v2 *ops; };

struct imcore_transport_ops_v2 {
    size_t size;
    const char *name;
    im_router_v2 *(*router)(imcore_transport *t);
    int (*run)(imcore_transport *t, const imcore_core_api *core, im_app *app, im_error *err);
    void (*destroy)(imcore_transport *t);
    unsigned (*bound_port)(const imcore_transport *t);
    void (*stop)(imcore_transport *t);
};

/* imcore_plugin.open_cluster as version 2 had it. */
typedef int (*im_open_cluster_v2_fn)(void *state, im_router_v2 *local, im_router_v2 **out,
                                     im_error *err);

/* The route table r of version 2 (a transport's or a cluster adapter's),
 * checked (every operation up to send_login_result required), cut into
 * this server's three tables in *out, which forward to r's operations:
 * one indirect call more. is_reserved and send_history are set in them
 * only if r has them. *shim is what holds them, the caller's to free()
 * once nothing uses them; r stays the adapter's. absent and errors as for
 * im__abi_store. */
int im__abi_split_v2(im_router_v2 *r, im_route_ports *out, void **shim, char *absent,
                     size_t absent_size, im_error *err);

/* The opposite, for a cluster adapter of version 2, which wraps one
 * table: *out is a table of version 2 whose operations forward to
 * local's three (borrowed: they must outlive it). *out is the caller's to
 * free(). Errors: IM_ENOMEM. */
int im__abi_join_v2(const im_route_ports *local, im_router_v2 **out, im_error *err);

/* The transport t, opened by an adapter that speaks plugin API version
 * (2 or later), as this server's. *out is t itself when its table is
 * complete and of this server's layout; otherwise a shim that takes t
 * over (its destroy destroys t): for version 2, one whose presence,
 * delivery and replies are t's one route table cut in three
 * (im__abi_split_v2, checked here). absent and errors as for
 * im__abi_store. */
int im__abi_transport(imcore_transport *t, unsigned version, imcore_transport **out,
                      char *absent, size_t absent_size, im_error *err);

#endif
