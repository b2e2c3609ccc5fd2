/* infrastructure/adapters/adapter_config.h: what the built-in adapter
 * plugins share: checking the server's API, the start of their init, and
 * reading their settings.
 * Header-only (static inline): each plugin is its own .so. */
#ifndef IM_ADAPTER_CONFIG_H
#define IM_ADAPTER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imcore/plugin.h"

/* What imcore_plugin must reach for the adapter's callback (open_storage,
 * open_transport, ...). */
#define IM_ADAPTER_PLUGIN_SIZE(callback) \
    (offsetof(imcore_plugin, callback) + sizeof(((imcore_plugin *)0)->callback))

/* The server, as every adapter keeps it: the first member of its state. */
typedef struct im_adapter {
    const imcore_host_api *api;
    imcore_host *host;
} im_adapter;

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

/* Every key is one of known (NULL-terminated; an entry ending in ".*"
 * stands for every key it begins): options.* belong to other
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
        for (const char *const *k = known; *k && !ok; k++) {
            size_t n = strlen(*k);
            ok = n >= 2 && strcmp(*k + n - 2, ".*") == 0 ? strncmp(*k, key, n - 1) == 0
                                                         : strcmp(*k, key) == 0;
        }
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

static inline void im_adapter_free(void *state)
{
    free(state);
}

/* The start of every adapter's init: names the plugin, checks that the
 * server knows the adapter's callback (plugin_size, from
 * IM_ADAPTER_PLUGIN_SIZE) and that every key is known, then allocates
 * size zeroed bytes of state beginning with an im_adapter, which the
 * plugin's shutdown frees. Returns the state, or NULL with out->error set:
 * init then returns non-zero. */
static inline void *im_adapter_new(const imcore_host_api *api, imcore_host *host,
                                   imcore_plugin *out, const char *name, size_t plugin_size,
                                   const char *const *known, const char *options_name,
                                   size_t size)
{
    out->name = name;
    out->version = "1";
    if (!im_adapter_api_ok(api, out, plugin_size) ||
        !im_adapter_keys_ok(api, host, known, options_name, out))
        return NULL;
    im_adapter *a = calloc(1, size);
    if (!a) {
        snprintf(out->error, sizeof out->error, "out of memory");
        return NULL;
    }
    a->api = api;
    a->host = host;
    out->state = a;
    out->shutdown = im_adapter_free;
    return a;
}

/* A number the server's config reader has already checked. */
static inline unsigned im_adapter_uint(const imcore_host_api *api, imcore_host *host,
                                       const char *key, unsigned fallback)
{
    const char *v = api->config_get(host, key);
    return v && v[0] ? (unsigned)strtoul(v, NULL, 10) : fallback;
}

#endif
