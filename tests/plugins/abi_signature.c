/* A plugin whose build signature says another byte order than the
 * server's, as if built for another machine: the server must refuse it
 * from its description alone, before anything of the plugin runs (its init
 * aborts, so a server that ran it would die instead of exiting 2). */
#include <stdlib.h>

#include "imcore/plugin.h"

const imcore_plugin_info imcore_plugin_about = {
    /* Bits 20-23 hold the byte order: 1 little-endian, 2 big-endian. */
    .signature = IMCORE_PLUGIN_SIGNATURE ^ 3u << 20,
    .size = sizeof(imcore_plugin_info),
    .api_min = IMCORE_PLUGIN_API_VERSION,
    .api_max = IMCORE_PLUGIN_API_VERSION,
    .name = "abi_signature",
    .version = "1",
};

int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    (void)api, (void)host, (void)out;
    abort();
}
