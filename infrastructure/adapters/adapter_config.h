/* infrastructure/adapters/adapter_config.h: what the built-in adapter
 * plugins share: checking the server's API and reading their settings.
 * Header-only (static inline): each plugin is its own .so. */
#ifndef IM_ADAPTER_CONFIG_H
#define IM_ADAPTER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imcore/plugin.h"

/* The server knows every function an adapter uses, and the callback it
 * fills (open_storage, open_transport, ...): IM_ADAPTER_API_OK(api, out,
 * open_storage). */
#define IM_ADAPTER_API_OK(api, out, callback) \
    im_adapter_api_ok((api), (out), offsetof(imcore_plugin, callback) + sizeof (out)->callback)

static inline bool im_adapter_api_ok(const imcore_host_api *api, imcore_plugin *out,
                                     size_t plugin_size)
{
    if (api->size < offsetof(imcore_host_api, config_key) + sizeof api->config_key ||
        out->size < plugin_size) {
        snprintf(out->error, sizeof out->error, "this server is older than the adapter");
        return false;
    }
    return true;
}

/* Every key is one of known (NULL-terminated): options.* belong to other
 * engines. The server sets the other keys itself, so an unknown one comes
 * from the options mapping, which the config calls options_name
 * ("storage.options", "transport_options"). */
static inline bool im_adapter_keys_ok(const imcore_host_api *api, imcore_host *host,
                                      const char *const *known, const char *options_name,
                                      imcore_plugin *out)
{
    const char *key;
    for (unsigned i = 0; (key = api->config_key(host, i)) != NULL; i++) {
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++)
            ok = strcmp(*k, key) == 0;
        if (!ok) {
            const char *where = api->config_where(host, key);
            const char *shown = strncmp(key, "options.", 8) == 0 ? key + 8 : key;
            snprintf(out->error, sizeof out->error, "%s%s%s.%s: unknown key for %s",
                     where ? where : "", where ? ": " : "", options_name, shown, out->name);
            return false;
        }
    }
    return true;
}

/* A number the server's config reader has already checked. */
static inline unsigned im_adapter_uint(const imcore_host_api *api, imcore_host *host,
                                       const char *key, unsigned fallback)
{
    const char *v = api->config_get(host, key);
    return v && v[0] ? (unsigned)strtoul(v, NULL, 10) : fallback;
}

#endif
