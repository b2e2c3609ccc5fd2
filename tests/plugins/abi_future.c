/* A plugin built for a plugin API the server does not speak. */
#include "imcore/plugin.h"

__attribute__((visibility("default")))
int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    (void)api, (void)host;
    out->api_version = 99;
    out->name = "abi_future";
    return 0;
}
