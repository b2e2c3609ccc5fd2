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

/* An account request as the port's contract allows it (see im_account_op):
 * a table size that reaches keep, a known op, and for that op a valid user
 * id, display name (CREATE, NULL or "" allowed), password hash
 * (1..IM_STORE_SECRET_MAX bytes) and token hash (1..IM_STORE_TOKEN_HASH_MAX
 * bytes; CREATE's is optional). Returns 0 or IM_EINVAL saying what is
 * wrong. For the adapters built with the server. */
int im_store_account_check(const im_account_request *q, im_error *err);

#endif
