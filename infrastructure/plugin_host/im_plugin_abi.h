/* infrastructure/plugin_host/im_plugin_abi.h: the plugin ABI as the host
 * checks it: which version it speaks with a plugin, decided from the
 * plugin's imcore_plugin_about before its init runs. Not a public header;
 * it knows the public headers only (so that tests can drive it with any
 * description), not the host's state. */
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
 * does not meet, a transport built for sessions of another size. */
int im__abi_choose(const imcore_plugin_info *about, im_abi_role role, size_t session_size,
                   unsigned *version, im_error *err);

#endif
