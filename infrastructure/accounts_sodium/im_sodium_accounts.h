/* infrastructure/accounts_sodium/im_sodium_accounts.h: the accounts port
 * with libsodium, over the storage port's account operation.
 *
 * Passwords are hashed with crypto_pwhash (Argon2id) on the adapter's own
 * threads, never on an event loop; only the hash goes to the store. A login
 * issues a random 256-bit session token; the store keeps only its BLAKE2b
 * hash and expiry, so a stolen database yields no usable token. Any storage
 * engine whose table has `account` serves (sqlite, memory, postgres): the
 * adapter never learns which.
 *
 * Tokens do not pile up: a login past max_tokens_per_user drops the user's
 * oldest token in the same request (the store's keep), and the first
 * thread deletes expired tokens every sweep_interval_ms, IM_TOKEN_SWEEP_ROWS
 * at a time (one request each, the next round at once while a round comes
 * back full), alternating with requests: never on an event loop, never many
 * at once. */
#ifndef IM_SODIUM_ACCOUNTS_H
#define IM_SODIUM_ACCOUNTS_H

#include <stdint.h>
#include "imcore/errors.h"
#include "application/ports/im_accounts.h"
#include "application/ports/im_store.h"

typedef enum im_password_cost {
    IM_PASSWORD_COST_INTERACTIVE = 0, /* libsodium's interactive limits (64 MiB) */
    IM_PASSWORD_COST_MODERATE = 1,    /* moderate limits (256 MiB): slower, stronger */
    IM_PASSWORD_COST_MIN = 2,         /* the minimum: for tests only */
} im_password_cost;

/* Expired tokens deleted per request (TOKENS_EXPIRE) of the background sweep. */
#define IM_TOKEN_SWEEP_ROWS 1000u
/* Requests waiting per lane when max_pending is 0. */
#define IM_ACCOUNTS_MAX_PENDING 256u
/* How often the sweep runs when sweep_interval_ms is 0. */
#define IM_TOKEN_SWEEP_INTERVAL_MS 60000u

typedef struct im_sodium_accounts_config {
    /* Borrowed: the server's store, whose table has `account`; it must
     * outlive the accounts (destroy the accounts first). */
    im_store *store;
    im_password_cost cost;
    unsigned token_ttl_s;     /* how long a token stays valid */
    unsigned threads;         /* password-hashing threads, >= 1 (token work has one more) */
    unsigned max_pending;     /* requests waiting per lane; more are IM_EBUSY; 0: the default */
    unsigned max_tokens_per_user; /* tokens kept per user, the newest; 0: no cap */
    unsigned sweep_interval_ms;   /* 0: IM_TOKEN_SWEEP_INTERVAL_MS */
    /* Unix time in milliseconds, for expiries; NULL: the system's clock.
     * Tests replace it. Called on the adapter's threads. */
    uint64_t (*wall_clock_ms)(void *arg);
    void *clock_arg;
} im_sodium_accounts_config;

/* *out is the caller's: release with (*out)->ops->destroy(*out), before the
 * store. Errors: IM_EINVAL (no store, or one that keeps no accounts: err
 * names its engine), IM_EIO (libsodium or a thread cannot start),
 * IM_ENOMEM. */
int im_sodium_accounts_new(const im_sodium_accounts_config *cfg, im_accounts **out,
                           im_error *err);

#endif
