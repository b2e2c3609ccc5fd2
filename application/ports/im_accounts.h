/* application/ports/im_accounts.h: the accounts port. Checks who a user is:
 * registers accounts, verifies passwords and issues, resumes and revokes
 * session tokens (one, or all of a user's).
 *
 * Password hashing is deliberately slow, so every request is asynchronous:
 * it returns at once and its completion runs later on the adapter's own
 * thread. Passwords are borrowed for the call and never kept or logged;
 * only their hashes, and hashes of tokens, are stored. Thread-safe. */
#ifndef IM_PORT_ACCOUNTS_H
#define IM_PORT_ACCOUNTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include "imcore/errors.h"

typedef struct im_accounts im_accounts;

/* A request's end. On success user is the account's id, display_name its
 * stored name, and token a fresh (or, for resume, the same) session token;
 * all borrowed for the call. rc: 0, IM_ENOTFOUND (no such user),
 * IM_EAUTH (wrong password; unknown, expired or revoked token),
 * IM_EUSEREXISTS, IM_ENOSPC, IM_EIO. */
typedef void (*im_accounts_done_fn)(void *arg, int rc, const char *user,
                                    const char *display_name, const char *token,
                                    const im_error *err);

/* create, login and resume: done runs exactly once if the call returns 0.
 * cancelled (borrowed until done runs; NULL: never) is set by the caller
 * when nobody waits for the answer any more (the client left): the adapter
 * may then skip the work and complete with IM_ESHUTDOWN, as it does for
 * requests still waiting when it is destroyed. Errors at once: IM_ENOMEM,
 * IM_ESHUTDOWN, IM_EBUSY (too many requests waiting: try again later). */
struct im_accounts_ops {
    const char *name;
    /* Creates the account, then logs it in. */
    int (*create)(im_accounts *a, const char *user, const char *display_name,
                  const char *password, im_accounts_done_fn done, void *arg,
                  const atomic_bool *cancelled, im_error *err);
    int (*login)(im_accounts *a, const char *user, const char *password,
                 im_accounts_done_fn done, void *arg, const atomic_bool *cancelled,
                 im_error *err);
    int (*resume)(im_accounts *a, const char *token, im_accounts_done_fn done, void *arg,
                  const atomic_bool *cancelled, im_error *err);
    /* Forgets token; no completion. */
    int (*revoke)(im_accounts *a, const char *token, im_error *err);
    /* Forgets every token of user ("log out everywhere"); no completion.
     * Queued like the other requests, which are taken in order: on one
     * thread (as the server runs the adapter), a resume asked after this
     * call is checked after it, and refused. */
    int (*revoke_all)(im_accounts *a, const char *user, im_error *err);
    /* Answers what is queued without its costly part (IM_ESHUTDOWN; revokes
     * are still carried out), then frees a. NULL-safe. */
    void (*destroy)(im_accounts *a);
};

struct im_accounts { const struct im_accounts_ops *ops; };

#endif
