/* infrastructure/plugin_host/im_plugin_host.h: loads the plugins the config
 * lists (dlopen), gives each the host table of include/imcore/plugin.h, and
 * fills the application's message filter port with their on_message hooks.
 *
 * Every failure at load names the config file and line and the plugin:
 * "imcore.yaml:12: plugin word_filter: cannot load ...". */
#ifndef IM_PLUGIN_HOST_H
#define IM_PLUGIN_HOST_H

#include <stdint.h>
#include "imcore/errors.h"
#include "application/ports/im_filter.h"
#include "im_config.h"

typedef struct im_plugin_host im_plugin_host;

/* Loads cfg->plugins in order (cfg is only read during the call). A plugin
 * found by name is plugin_dir/<name>.so. *out is the caller's: release with
 * im_plugin_host_free(). Errors: IM_EINVAL (unknown plugin, missing symbol,
 * ABI version mismatch, init refused: err says which), IM_ENOMEM. */
int im_plugin_host_load(const im_config *cfg, uint32_t max_body_bytes, im_plugin_host **out,
                        im_error *err);

/* The filter port, or NULL when no plugin filters messages. Borrowed:
 * valid until the host is freed. */
im_filter *im_plugin_host_filter(im_plugin_host *h);

/* Calls each plugin's shutdown (in reverse order), then unloads it.
 * NULL is fine. Only once no worker can call the filter any more. */
void im_plugin_host_free(im_plugin_host *h);

#endif
