/* application/ports/im_store.c: the checks the storage port's contract
 * asks of every adapter's arguments, in one place. */
#include "im_store.h"

#include <string.h>

#include "domain/user.h"

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

static int check_token(const im_account_request *q, im_error *err)
{
    if (!q->token || q->token_len == 0 || q->token_len > IM_STORE_TOKEN_HASH_MAX)
        return im_error_set(err, IM_EINVAL, "a token hash is 1..%d bytes",
                            IM_STORE_TOKEN_HASH_MAX);
    return IM_OK;
}

int im_store_account_check(const im_account_request *q, im_error *err)
{
    if (!q || q->size < offsetof(im_account_request, keep) + sizeof q->keep)
        return im_error_set(err, IM_EINVAL, "an account request from an older or unknown table");
    switch (q->op) {
    case IM_ACCOUNT_CREATE: {
        int rc = im_user_id_check(q->user, err);
        if (rc == IM_OK)
            rc = im_display_name_check(q->display_name, err);
        if (rc != IM_OK)
            return rc;
        size_t n = q->secret ? strnlen(q->secret, IM_STORE_SECRET_MAX + 1) : 0;
        if (n == 0 || n > IM_STORE_SECRET_MAX)
            return im_error_set(err, IM_EINVAL, "a password hash is 1..%d bytes",
                                IM_STORE_SECRET_MAX);
        return q->token ? check_token(q, err) : IM_OK;
    }
    case IM_ACCOUNT_GET:
    case IM_ACCOUNT_TOKENS_DELETE_USER:
        return im_user_id_check(q->user, err);
    case IM_ACCOUNT_TOKEN_PUT: {
        int rc = im_user_id_check(q->user, err);
        return rc == IM_OK ? check_token(q, err) : rc;
    }
    case IM_ACCOUNT_TOKEN_GET:
    case IM_ACCOUNT_TOKEN_DELETE:
        return check_token(q, err);
    case IM_ACCOUNT_TOKENS_EXPIRE:
        return IM_OK;
    }
    return im_error_set(err, IM_EINVAL, "unknown account request %d", (int)q->op);
}
