/* application/ports/im_store.h: the storage port. It is public, so that
 * storage adapters can be built outside imcore: the whole contract is in
 * include/imcore/storage.h. */
#ifndef IM_PORT_STORE_H
#define IM_PORT_STORE_H

#include "imcore/storage.h"

/* The arguments of kv_put as the port's contract allows them: ns and key
 * 1..IM_STORE_KV_KEY_MAX bytes, a value (NULL deletes) of at most
 * IM_STORE_KV_VALUE_MAX; key NULL checks ns alone (for kv_each). Returns
 * 0 or IM_EINVAL saying which. For the
 * adapters built with the server, and the callers that check first. */
int im_store_kv_check(const char *ns, const char *key, const void *value, size_t len,
                      im_error *err);

#endif
