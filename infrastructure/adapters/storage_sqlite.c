/* infrastructure/adapters/storage_sqlite.c: the SQLite store as a storage
 * adapter plugin (storage_sqlite.so), chosen with storage.engine: sqlite.
 *
 * It is built like any plugin, against include/imcore only at its boundary,
 * and carries its own copy of the store and data layer inside the .so; the
 * server reaches it through imcore_plugin_init and open_storage alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imcore/plugin.h"
#include "imcore/storage.h"
#include "adapter_config.h"
#include "im_log.h"
#include "im_sqlite_store.h"

typedef struct adapter {
    im_adapter base;              /* first */
    char path[256];
    im_sqlite_store_config cfg;
} adapter;

/* On the storage thread: the host's claims are fixed by then. */
static bool is_service_account(void *arg, const char *user)
{
    adapter *a = arg;
    return a->base.api->is_service_account(a->base.host, user) == 1;
}

static int open_storage(void *state, im_store **out, im_error *err)
{
    adapter *a = state;
    int rc = im_sqlite_store_new(&a->cfg, out, err);
    if (rc == IM_OK)
        a->base.api->log(a->base.host, IMCORE_LOG_INFO,
                         "sqlite %s (max_batch %u, synchronous %s, %s)", a->path,
                         a->cfg.max_batch, a->cfg.synchronous_full ? "full" : "normal",
                         a->cfg.skip_check ? "not checked at start" : "checked at start");
    return rc;
}

IMCORE_PLUGIN_INFO("storage_sqlite", "1");

int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    static const char *const known[] = { "path", "max_batch", "synchronous", "max_page_count",
                                         "check_on_start", "receivers", "options.max_queue",
                                         NULL };
    adapter *a = im_adapter_new(api, host, out, "storage_sqlite",
                                IM_ADAPTER_PLUGIN_SIZE(open_storage), known, "storage.options",
                                sizeof *a);
    if (!a)
        return 1;
    const char *path = api->config_get(host, "path");
    snprintf(a->path, sizeof a->path, "%s", path && path[0] ? path : "data/imcore.db");
    const char *sync = api->config_get(host, "synchronous");
    const char *check = api->config_get(host, "check_on_start");
    const char *receivers = api->config_get(host, "receivers");
    a->cfg = (im_sqlite_store_config){
        .path = a->path,
        .max_batch = im_adapter_uint(api, host, "max_batch", 512),
        .max_page_count = im_adapter_uint(api, host, "max_page_count", 0),
        .synchronous_full = !sync || strcmp(sync, "normal") != 0,
        .skip_check = check && strcmp(check, "none") == 0,
        .receivers_need_account = receivers && strcmp(receivers, "accounts") == 0,
    };
    /* options.max_queue: requests queued before appends and reads are
     * refused with IM_EBUSY (im_sqlite_store_config; 0 or absent: its
     * default). */
    const char *max_queue = api->config_get(host, "options.max_queue");
    if (max_queue) {
        char *end;
        unsigned long n = strtoul(max_queue, &end, 10);
        if (!max_queue[0] || *end || n < 1 || n > 10000000) {
            const char *where = api->config_where(host, "options.max_queue");
            snprintf(out->error, sizeof out->error,
                     "%s%sstorage.options.max_queue: must be 1 to 10000000, not '%.40s'",
                     where ? where : "", where ? ": " : "", max_queue);
            out->state = NULL; /* a refused init is not shut down: its state goes here */
            im_adapter_free(a);
            return 1;
        }
        a->cfg.max_queue = (unsigned)n;
    }
    /* A server without is_service_account has no service accounts to
     * spare from the check. */
    if (api->size >= offsetof(imcore_host_api, is_service_account) +
                         sizeof api->is_service_account) {
        a->cfg.is_service_account = is_service_account;
        a->cfg.service_arg = a;
    }
    out->open_storage = open_storage;
    return 0;
}
