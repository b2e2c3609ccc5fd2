/* A transport of plugin API 1 (built against the frozen headers of
 * version 1). The server must refuse it before its init runs: a transport
 * of version 1 may keep sessions of another size than the server's. Its
 * init aborts, so a server that ran it would die instead of exiting 2. */
#include <stdlib.h>

#include "imcore/plugin.h"

/* Version 1's header declares only the type of the entry point. */
int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out);

__attribute__((visibility("default")))
int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    (void)api, (void)host, (void)out;
    abort();
}
