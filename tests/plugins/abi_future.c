/* A plugin built for a plugin API no server speaks yet: its description
 * asks for version 99 and nothing older, as if built with the header of
 * version 99. The server must refuse it from the description alone: its
 * init aborts, so a server that ran it would die instead of exiting 2. */
#include <stdlib.h>

#include "imcore/plugin.h"

const imcore_plugin_info imcore_plugin_about = {
    .signature = IMCORE_PLUGIN_SIGNATURE_ABI(IMCORE_PLUGIN_SIGNATURE) | 99u << 24,
    .size = sizeof(imcore_plugin_info),
    .api_min = 99,
    .api_max = 99,
    .name = "abi_future",
    .version = "1",
};

int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    (void)api, (void)host, (void)out;
    abort();
}
