/* shout: the plugin of the tutorial in docs/plugins.md. A message that ends
 * with '!' is sent on in capitals. Build it, against the installed header
 * only:
 *
 *     cc -shared -fPIC -fvisibility=hidden -I/usr/local/include -o shout.so shout.c
 */
#include <ctype.h>

#include "imcore/plugin.h"

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

/* Version 1's header declares only the type of the entry point. */
int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out);

__attribute__((visibility("default")))
int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    out->api_version = IMCORE_PLUGIN_API_VERSION;
    out->name = "shout";
    out->version = "1.0";
    out->on_message = shout;
    api->log(host, IMCORE_LOG_INFO, "ready to shout");
    return 0;
}
