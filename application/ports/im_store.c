/* application/ports/im_store.c: the checks the storage port's contract
 * asks of every adapter's arguments, in one place. */
#include "im_store.h"

#include <string.h>

static int check_name(const char *what, const char *s, im_error *err)
{
    size_t n = s ? strnlen(s, IM_STORE_KV_KEY_MAX + 1) : 0;
    if (n == 0 || n > IM_STORE_KV_KEY_MAX)
        return im_error_set(err, IM_EINVAL, "a %s is 1..%d bytes", what, IM_STORE_KV_KEY_MAX);
    return IM_OK;
}

int im_store_kv_check(const char *ns, const char *key, const void *value, size_t len,
                      im_error *err)
{
    int rc = check_name("namespace", ns, err);
    if (rc == IM_OK && key)
        rc = check_name("key", key, err);
    if (rc == IM_OK && value && len > IM_STORE_KV_VALUE_MAX)
        rc = im_error_set(err, IM_EINVAL, "a value is at most %d bytes, not %zu",
                          IM_STORE_KV_VALUE_MAX, len);
    return rc;
}
