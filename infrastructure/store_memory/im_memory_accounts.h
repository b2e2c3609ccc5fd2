/* infrastructure/store_memory/im_memory_accounts.h: the memory store's
 * accounts and login-token hashes (the storage port's account operation),
 * as long as the process. Internal to store_memory. */
#ifndef IM_MEMORY_ACCOUNTS_H
#define IM_MEMORY_ACCOUNTS_H

#include "application/ports/im_store.h"

typedef struct im__memory_accounts im__memory_accounts;

/* NULL when out of memory. Free with im__memory_accounts_free (NULL is fine). */
im__memory_accounts *im__memory_accounts_new(void);
void im__memory_accounts_free(im__memory_accounts *a);

/* The account operation (see im_account_op), completed at once: done runs
 * on the caller's thread before this returns 0, after every lock is let
 * go, so it may make requests again; never when this returns an error.
 * Thread-safe. Errors: IM_EINVAL (im_store_account_check), IM_ENOMEM. */
int im__memory_accounts_run(im__memory_accounts *a, const im_account_request *q,
                            im_store_account_fn done, void *arg, im_error *err);

#endif
