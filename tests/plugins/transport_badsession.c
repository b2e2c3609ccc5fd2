/* A transport that says it keeps sessions of 16 bytes by value, as a
 * transport built from another version of the server would (the server's
 * im_session is far larger): the server must refuse it, not load it. Its
 * init aborts, so a server that ran it would die instead of exiting 2. */
#include <stdlib.h>

#include "imcore/plugin.h"
#include "imcore/transport.h"

const imcore_plugin_info imcore_plugin_about = {
    IMCORE_PLUGIN_INFO_FIELDS("transport_badsession", "1"),
    .session_size = 16,
};

int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    (void)api, (void)host, (void)out;
    abort();
}
