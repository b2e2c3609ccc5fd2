/* A plugin whose init refuses, with its own reason. */
#include <stdio.h>

#include "imcore/plugin.h"

IMCORE_PLUGIN_INFO("init_fails", "1");

int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    const char *answer = api->config_get(host, "answer");
    snprintf(out->error, sizeof out->error, "the answer is %s, not 42",
             answer ? answer : "missing");
    return 1;
}
