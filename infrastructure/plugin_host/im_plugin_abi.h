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
 * or has version 1's layout, is put behind a shim that forwards each call
 * to the adapter's operation or to the fallback its header documents: one
 * indirect call more, for such adapters only. */
#ifndef IM_PLUGIN_ABI_H
#define IM_PLUGIN_ABI_H

#include <stddef.h>

#include "imcore/plugin.h"

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

/* The route port r of a transport or cluster adapter (version 2 or later)
 * as this server's. *out is r itself when its table is complete;
 * otherwise a shim around r, which stays the adapter's. *shim is what the
 * caller frees (free()) once nothing uses the port: NULL when *out is r.
 * absent and errors as for im__abi_store (r is never destroyed: a route
 * port has no destroy). */
int im__abi_router(im_router *r, im_router **out, void **shim, char *absent, size_t absent_size,
                   im_error *err);

/* The transport t (version 2 or later) as this server's. *out is t itself
 * when its table is complete; otherwise a shim that takes t over (its
 * destroy destroys t). absent and errors as for im__abi_store. */
int im__abi_transport(imcore_transport *t, imcore_transport **out, char *absent,
                      size_t absent_size, im_error *err);

#endif
