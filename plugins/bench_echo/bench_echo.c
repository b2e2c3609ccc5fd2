/* plugins/bench_echo: the far end of `imcore-bench --to ACCOUNT`. It speaks
 * for one service account and sends every private message it gets straight
 * back to its sender, body unchanged, so the bench can check and time the
 * whole path through a plugin: stored, queued for the plugin loop, handed
 * to on_delivery, acked, and the answer stored and delivered.
 *
 *   plugins:
 *     - name: bench_echo
 *       config:
 *         account: echo          # the service account (default: echo)
 *
 * It keeps no state and does nothing else: what it costs is the server's. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imcore/plugin.h"

typedef struct echo {
    const imcore_host_api *api;
    imcore_host *host;
    char account[65];
    unsigned long refused;  /* answers the server did not take */
} echo;

static void on_delivery(void *state, const char *account, const imcore_message *m)
{
    echo *e = state;
    if (m->kind != IMCORE_MESSAGE_PRIVATE || strcmp(account, e->account) != 0)
        return;
    int rc = e->api->send_private(e->host, e->account, m->from, m->body, m->body_len);
    if (rc != 0 && e->refused++ == 0)
        e->api->log(e->host, IMCORE_LOG_WARN, "an answer to %s was refused (error %d); "
                    "later ones are counted at shutdown", m->from, rc);
}

static void shutdown_echo(void *state)
{
    echo *e = state;
    if (e->refused)
        e->api->log(e->host, IMCORE_LOG_WARN, "%lu answers were refused", e->refused);
    free(e);
}

static int refuse(imcore_plugin *out, const char *why)
{
    snprintf(out->error, sizeof out->error, "%s", why);
    return -1;
}

IMCORE_PLUGIN_INFO("bench_echo", "1.0");

int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    if (api->size < offsetof(imcore_host_api, config_key) + sizeof api->config_key ||
        out->size < offsetof(imcore_plugin, on_delivery) + sizeof out->on_delivery)
        return refuse(out, "this server has no service accounts: bench_echo needs a newer one");
    const char *key;
    for (unsigned i = 0; (key = api->config_key(host, i)) != NULL; i++)
        if (strcmp(key, "account") != 0) {
            char why[200];
            const char *w = api->config_where(host, key);
            snprintf(why, sizeof why, "%s: %s: unknown key (bench_echo has account)",
                     w ? w : "config", key);
            return refuse(out, why);
        }
    const char *account = api->config_get(host, "account");
    if (!account)
        account = "echo";
    if (strlen(account) >= sizeof ((echo *)0)->account)
        return refuse(out, "account: longer than 64 bytes");
    echo *e = calloc(1, sizeof *e);
    if (!e)
        return refuse(out, "out of memory");
    e->api = api;
    e->host = host;
    snprintf(e->account, sizeof e->account, "%s", account);
    if (api->claim_user(host, e->account, "Bench echo") != 0) {
        free(e);
        return refuse(out, "cannot speak for the account: see the line above");
    }
    out->state = e;
    out->on_delivery = on_delivery;
    out->shutdown = shutdown_echo;
    return 0;
}
