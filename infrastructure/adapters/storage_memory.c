/* infrastructure/adapters/storage_memory.c: the memory store as a storage
 * adapter plugin (storage_memory.so), chosen with storage.engine: memory.
 * Nothing survives a restart, and messages to offline users are refused.
 * So `receivers: accounts` needs no check here: only a user with an
 * account can be online, and nothing waits for anyone else. */
#include <stdio.h>

#include "imcore/plugin.h"
#include "imcore/storage.h"
#include "adapter_config.h"
#include "im_memory_store.h"

static int open_storage(void *state, im_store **out, im_error *err)
{
    im_adapter *a = state;
    int rc = im_memory_store_new(out, err);
    if (rc == IM_OK)
        a->api->log(a->host, IMCORE_LOG_INFO, "memory (nothing survives a restart)");
    return rc;
}

IMCORE_PLUGIN_INFO("storage_memory", "1");

int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    /* The section's generic keys mean nothing here and are passed over;
     * options would be a mistake. */
    static const char *const known[] = { "path", "max_batch", "synchronous", "max_page_count",
                                         "check_on_start", "receivers", NULL };
    if (!im_adapter_new(api, host, out, "storage_memory", IM_ADAPTER_PLUGIN_SIZE(open_storage),
                        known, "storage.options", sizeof(im_adapter)))
        return 1;
    out->open_storage = open_storage;
    return 0;
}
