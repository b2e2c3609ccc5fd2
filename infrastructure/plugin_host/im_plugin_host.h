/* infrastructure/plugin_host/im_plugin_host.h: loads the plugins the config
 * lists (dlopen), gives each the host table of include/imcore/plugin.h, and
 * connects them to the server: the message filter port (on_message), a
 * route port around the network's (accounts the plugins speak for, and
 * login/logout events), and the plugin loop, the one thread where every
 * other callback runs.
 *
 * Lifecycle: load (each plugin's init) -> router (wrap the network's port)
 * -> start (on_start, then what claimed accounts missed, before clients
 * are let in) -> stop (before the store goes) -> free (shutdown, unload).
 *
 * Every failure at load names the config file and line and the plugin:
 * "imcore.yaml:12: plugin word_filter: cannot load ...", and so does a
 * port table an adapter hands over that the server cannot use.
 *
 * The plugin ABI's versions and tables are checked in im_plugin_abi.c: a
 * plugin's description before its init, each port table once when it is
 * opened (never per call). */
#ifndef IM_PLUGIN_HOST_H
#define IM_PLUGIN_HOST_H

#include <stdbool.h>
#include <stdint.h>
#include "imcore/errors.h"
#include "application/im_app.h"
#include "application/ports/im_filter.h"
#include "im_config.h"
#include "im_plugin_abi.h" /* im_route_ports */

typedef struct im_plugin_host im_plugin_host;

/* Loads cfg->plugins in order (cfg is only read during the call), then,
 * with with_adapters, the storage adapter cfg->storage_engine names, the
 * transport adapter cfg->transport names and the cluster adapter
 * cfg->cluster names (none for "none"). A plugin found by name is
 * plugin_dir/<name>.so. *out is the caller's: release with
 * im_plugin_host_free(). Errors: IM_EINVAL (unknown plugin, missing symbol,
 * another build signature, no plugin API version in common, a transport
 * built for sessions of another size, init refused: err says which),
 * IM_ENOMEM. */
int im_plugin_host_load(const im_config *cfg, bool with_adapters, im_plugin_host **out,
                        im_error *err);

/* Loads the storage adapter cfg->storage_engine names, and nothing else:
 * no extension of cfg->plugins, no transport, no cluster adapter. For a
 * program that needs a store as the server opens it, and none of the
 * server (the storage conformance suite, tools): open the store with
 * im_plugin_host_open_storage, destroy it, then im_plugin_host_free.
 * cfg is only read during the call; *out is the caller's. Errors as
 * im_plugin_host_load's. */
int im_plugin_host_load_storage(const im_config *cfg, im_plugin_host **out, im_error *err);

/* Opens the store through the storage adapter loaded with with_adapters
 * (or by im_plugin_host_load_storage):
 * the plugin storage_<engine>.so in plugin_dir, whose config is the
 * storage section. *out is the caller's (im_store_destroy), and must be
 * destroyed before the host is freed: its code lives in the adapter. A
 * store whose table is short (an older adapter) or of plugin API 1 comes
 * behind a shim with the fallbacks of imcore/storage.h; the log names what
 * falls back. Errors: the adapter's (IM_EIO: cannot open the database,
 * ...); IM_EUNSUPPORTED, "FILE:LINE: storage.engine: NAME: why", for a
 * table the server cannot use (no size, a required operation missing). */
int im_plugin_host_open_storage(im_plugin_host *h, im_store **out, im_error *err);

/* Opens the transport through the transport adapter loaded with
 * with_adapters: the plugin transport_<name>.so in plugin_dir, whose config
 * is the server's network settings (listen.*, workers, node_id, limits.*,
 * session.*, accounts.* of the failed-login limit) and transport_options
 * as options.*. *out is the caller's ((*out)->ops->destroy, or
 * imcore_transport_destroy), and must be destroyed before the host is
 * freed: its code lives in the adapter. Its table is checked as the
 * store's is (im_plugin_host_open_storage). Errors: the adapter's (IM_EIO:
 * cannot listen, ...); IM_EUNSUPPORTED for a table the server cannot use. */
int im_plugin_host_open_transport(im_plugin_host *h, imcore_transport **out, im_error *err);

/* The route port the application is to use, before the plugins' own
 * (im_plugin_host_router), from the transport's three tables in *routes
 * (borrowed: they must outlive the host), which are checked first as the
 * store's table is. With a cluster adapter (cluster_<name>.so), its
 * presence and delivery, wrapped around the transport's, replace those in
 * *routes (the adapter's until the host is freed; one of plugin API 2 has
 * its one table joined and cut by the host); replies stay the
 * transport's: whoever is answered is connected here. The adapter's
 * config is node_id, listen.host, listen.port (set here to the port the
 * transport bound), the zookeeper.* keys, session.login_policy and
 * cluster_options as options.*. cluster: none leaves *routes as it is. Errors: the adapter's; IM_EUNSUPPORTED for a
 * table the server cannot use; IM_ENOMEM. */
int im_plugin_host_open_cluster(im_plugin_host *h, im_route_ports *routes, im_error *err);

/* The filter port, or NULL when no plugin filters messages and none speaks
 * for an account (or the store opened by im_plugin_host_open_storage is
 * durable, so a busy account's messages can wait there). Borrowed: valid
 * until the host is freed. */
im_filter *im_plugin_host_filter(im_plugin_host *h);

/* The route port to build the application with, in place in *routes:
 * left as it is when no plugin claims an account or watches logins (so
 * plugins cost routing nothing then), else the host's three tables around
 * it. What *routes held is borrowed and must outlive the host; so do the
 * host's tables. h NULL leaves *routes as it is. */
void im_plugin_host_router(im_plugin_host *h, im_route_ports *routes);

/* Wires the host to the application and its stores (borrowed: they must
 * outlive im_plugin_host_stop) and starts the plugin loop: runs each
 * on_start, hands each claimed account what was stored for it while the
 * server was down (up to limits.plugin_backlog messages each; the rest
 * follows as the plugin catches up), and returns once the plugins have
 * handled that. Call it before clients are let in. NULL or no plugins: nothing to do.
 * Errors: IM_ENOMEM, IM_EIO (reading what was stored). */
int im_plugin_host_start(im_plugin_host *h, im_app *app, im_store *store,
                         im_group_repo *groups, im_error *err);

/* Lets the plugins finish the work already queued, then stops the plugin
 * loop and the blocking thread. From then on messages for claimed accounts
 * stay unacked in the store (they come at the next start), and sends fail
 * with IM_ESHUTDOWN. Call it after the network has stopped and before the
 * store is destroyed. Idempotent; NULL is fine. */
void im_plugin_host_stop(im_plugin_host *h);

/* Shuts the cluster adapter down (its shutdown, now rather than in
 * im_plugin_host_free): its threads stop handing messages from other nodes
 * to the transport's delivery, which it borrows. Call it once nothing can
 * use its presence and delivery any more (the network stopped, the store
 * destroyed: no completion routes a message) and before the transport is
 * destroyed. Idempotent; NULL, or no cluster adapter, is fine. */
void im_plugin_host_close_cluster(im_plugin_host *h);

/* Stops (as above), calls each plugin's shutdown (in reverse order), then
 * unloads it. NULL is fine. Only once no worker can call the filter any
 * more. */
void im_plugin_host_free(im_plugin_host *h);

#endif
