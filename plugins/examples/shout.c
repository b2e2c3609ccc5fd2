/* shout: the plugin of the tutorial in docs/plugins.md. A message that ends
 * with '!' is sent on in capitals. Build it, against the installed header
 * only:
 *
 *     cc -shared -fPIC -fvisibility=hidden -I/usr/local/include -o shout.so shout.c
 */
#include <ctype.h>
#include <stdio.h>

#include "imcore/plugin.h"

IMCORE_PLUGIN_INFO("shout", "1.0");

static imcore_verdict shout(void *state, const imcore_message *m, imcore_rewrite *out)
{
    (void)state;
    if (m->body_len == 0 || m->body[m->body_len - 1] != '!' || m->body_len > out->capacity)
        return IMCORE_PASS;
    for (size_t i = 0; i < m->body_len; i++)
        out->body[i] = (uint8_t)toupper(m->body[i]);
    out->body_len = m->body_len;
    return IMCORE_REWRITE;
}

int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    /* IMCORE_PLUGIN_INFO says which API versions this plugin speaks; the
     * server picked one of them (api->api_version). A filter needs nothing
     * newer than log. */
    if (api->api_version < 1) {
        snprintf(out->error, sizeof out->error, "plugin API %u is too old", api->api_version);
        return 1;
    }
    out->on_message = shout;
    api->log(host, IMCORE_LOG_INFO, "ready to shout");
    return 0;
}
