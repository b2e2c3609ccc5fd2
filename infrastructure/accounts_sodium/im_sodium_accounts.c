/* infrastructure/accounts_sodium/im_sodium_accounts.c: see the header.
 *
 * Requests queue up from any worker; each thread takes one, does the slow
 * part (hashing) and the quick database part on its own connection, and
 * calls the completion. Passwords live in the request only until hashed or
 * verified, and are wiped then. The first thread also deletes a round of
 * expired tokens every sweep_interval_ms, between two requests: the event
 * loops never wait for that. */
#include "im_sodium_accounts.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "domain/user.h"
#include "im_log.h"
#include "im_sqlite_db.h"

#define TOKEN_BYTES 32
#define TOKEN_HEX (TOKEN_BYTES * 2)

typedef enum { REQ_CREATE, REQ_LOGIN, REQ_RESUME, REQ_REVOKE, REQ_REVOKE_ALL } req_kind;

typedef struct req {
    struct req *next;
    req_kind kind;
    const atomic_bool *cancelled; /* the requester's: set when nobody waits for the answer */
    char user[IM_USER_ID_MAX + 1];
    char name[IM_DISPLAY_NAME_MAX + 1];
    char password[IM_PASSWORD_MAX + 1];
    char token[TOKEN_HEX + 1];
    im_accounts_done_fn done;
    void *arg;
} req;

typedef struct sodium_accounts sodium_accounts;

typedef struct worker {
    sodium_accounts *owner;
    pthread_t thread;
    bool started;
    im_sqlite_db *db;
    bool sweeps;                /* this thread deletes expired tokens */
    uint64_t next_sweep_ms;     /* monotonic */
    struct lane *lane;          /* the queue it serves */
} worker;

/* Requests wait in one of two lanes. Password checks (create, login) are
 * slow on purpose and go to the hashing threads; token work (resume,
 * revoke, revoke_all) is a quick database lookup and goes, in order, to
 * one thread of its own, which also sweeps expired tokens. So a reconnect
 * by token never waits behind password hashing, and a resume asked after a
 * log-out everywhere is still checked after it. */
typedef struct lane {
    req *head, **tail;
    unsigned queued;            /* requests with a completion, waiting */
    unsigned max_queued;        /* more are refused with IM_EBUSY */
    pthread_cond_t wake;
} lane;

struct sodium_accounts {
    im_accounts base;
    im_sodium_accounts_config cfg;
    unsigned long long opslimit;
    size_t memlimit;
    pthread_mutex_t lock;       /* both lanes */
    lane token_lane, hash_lane;
    bool stopping;
    worker *workers;
    unsigned nworkers;
    atomic_bool moved_logged;   /* the database file was lost, and that was said */
};

static uint64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t wall_ms(const sodium_accounts *a)
{
    return a->cfg.wall_clock_ms ? a->cfg.wall_clock_ms(a->cfg.clock_arg)
                                : clock_ms(CLOCK_REALTIME);
}

static void req_free(req *r)
{
    sodium_memzero(r->password, sizeof r->password);
    sodium_memzero(r->token, sizeof r->token);
    free(r);
}

/* The stored form of a token: its BLAKE2b hash. false if token is not 64
 * hex digits (then it cannot be one of ours). */
static bool token_hash(const char *token, uint8_t out[crypto_generichash_BYTES])
{
    uint8_t raw[TOKEN_BYTES];
    size_t len = 0;
    if (strlen(token) != TOKEN_HEX ||
        sodium_hex2bin(raw, sizeof raw, token, TOKEN_HEX, NULL, &len, NULL) != 0 ||
        len != TOKEN_BYTES)
        return false;
    crypto_generichash(out, crypto_generichash_BYTES, raw, sizeof raw, NULL, 0);
    sodium_memzero(raw, sizeof raw);
    return true;
}

/* A new token for user, stored by hash in the caller's transaction, and
 * the user's oldest dropped past max_tokens_per_user; its text goes to
 * out. */
static int issue_token(sodium_accounts *a, im_sqlite_db *db, const char *user,
                       char out[TOKEN_HEX + 1], im_error *err)
{
    uint8_t raw[TOKEN_BYTES], hash[crypto_generichash_BYTES];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(out, TOKEN_HEX + 1, raw, sizeof raw);
    crypto_generichash(hash, sizeof hash, raw, sizeof raw, NULL, 0);
    sodium_memzero(raw, sizeof raw);
    uint64_t expires = wall_ms(a) + (uint64_t)a->cfg.token_ttl_s * 1000u;
    int rc = im_sqlite_db_token_put(db, hash, sizeof hash, user, expires, err);
    if (rc == IM_OK && a->cfg.max_tokens_per_user > 0) {
        int n = im_sqlite_db_tokens_trim(db, user, a->cfg.max_tokens_per_user, err);
        rc = n < 0 ? n : IM_OK;
    }
    return rc;
}

static int do_create(sodium_accounts *a, im_sqlite_db *db, req *r, im_error *err)
{
    /* A taken name is refused before the costly hash. */
    int rc = im_sqlite_db_user_get(db, r->user, NULL, 0, NULL, 0, err);
    if (rc == IM_OK)
        return im_error_set(err, IM_EUSEREXISTS, "the user id %s is taken", r->user);
    if (rc != IM_ENOTFOUND)
        return rc;
    char hash[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str(hash, r->password, strlen(r->password), a->opslimit, a->memlimit) != 0)
        return im_error_set(err, IM_ENOMEM, "out of memory while hashing the password");
    if ((rc = im_sqlite_db_begin(db, err)) != IM_OK)
        return rc;
    rc = im_sqlite_db_user_create(db, r->user, r->name, hash, wall_ms(a), err);
    if (rc == IM_EEXIST) /* registered meanwhile by another thread */
        rc = im_error_set(err, IM_EUSEREXISTS, "the user id %s is taken", r->user);
    if (rc == IM_OK)
        rc = issue_token(a, db, r->user, r->token, err);
    if (rc == IM_OK)
        return im_sqlite_db_commit(db, err);
    im_sqlite_db_rollback(db);
    return rc;
}

static int do_login(sodium_accounts *a, im_sqlite_db *db, req *r, im_error *err)
{
    char hash[crypto_pwhash_STRBYTES + 1];
    int rc = im_sqlite_db_user_get(db, r->user, r->name, sizeof r->name, hash, sizeof hash, err);
    if (rc == IM_ENOTFOUND)
        return im_error_set(err, IM_ENOTFOUND, "no user %s: register first", r->user);
    if (rc != IM_OK)
        return rc;
    if (crypto_pwhash_str_verify(hash, r->password, strlen(r->password)) != 0)
        return im_error_set(err, IM_EAUTH, "wrong password for %s", r->user);
    /* The new token and the cap on the user's tokens, together. */
    if ((rc = im_sqlite_db_begin(db, err)) != IM_OK)
        return rc;
    rc = issue_token(a, db, r->user, r->token, err);
    if (rc == IM_OK)
        return im_sqlite_db_commit(db, err);
    im_sqlite_db_rollback(db);
    return rc;
}

static int do_resume(sodium_accounts *a, im_sqlite_db *db, req *r, im_error *err)
{
    uint8_t hash[crypto_generichash_BYTES];
    if (!token_hash(r->token, hash))
        return im_error_set(err, IM_EAUTH, "not a session token");
    int rc = im_sqlite_db_token_get(db, hash, sizeof hash, wall_ms(a), r->user, err);
    if (rc == IM_ENOTFOUND)
        return im_error_set(err, IM_EAUTH, "the token has expired or was revoked");
    if (rc != IM_OK)
        return rc;
    return im_sqlite_db_user_get(db, r->user, r->name, sizeof r->name, NULL, 0, err);
}

/* A request whose answer nobody waits for (its client left), or one still
 * queued when the adapter stops, ends without its costly part. */
static bool skippable(const sodium_accounts *a, const req *r)
{
    return (r->cancelled && atomic_load(r->cancelled)) ||
           (a->stopping && r->kind != REQ_REVOKE && r->kind != REQ_REVOKE_ALL);
}

static void run(sodium_accounts *a, im_sqlite_db *db, req *r, bool skip)
{
    im_error err = { 0 };
    int rc;
    if (skip && r->done) {
        im_error_set(&err, IM_ESHUTDOWN, a->stopping ? "the server is shutting down"
                                                     : "the client has gone");
        r->done(r->arg, IM_ESHUTDOWN, NULL, NULL, NULL, &err);
        return;
    }
    switch (r->kind) {
    case REQ_CREATE: rc = do_create(a, db, r, &err); break;
    case REQ_LOGIN: rc = do_login(a, db, r, &err); break;
    case REQ_RESUME: rc = do_resume(a, db, r, &err); break;
    case REQ_REVOKE: {
        uint8_t hash[crypto_generichash_BYTES];
        if (token_hash(r->token, hash))
            im_sqlite_db_token_delete(db, hash, sizeof hash, &err);
        return; /* no completion */
    }
    case REQ_REVOKE_ALL:
        im_sqlite_db_tokens_delete_user(db, r->user, &err);
        return; /* no completion */
    default: return;
    }
    sodium_memzero(r->password, sizeof r->password);
    if (rc == IM_EIO && im_sqlite_db_moved(db) && !atomic_exchange(&a->moved_logged, true))
        IM_ERROR("accounts: %s; registrations and logins by password are refused from now on",
                 err.msg);
    if (rc != IM_OK)
        r->done(r->arg, rc, NULL, NULL, NULL, &err);
    else
        r->done(r->arg, IM_OK, r->user, r->name, r->token, NULL);
}

/* One round of the sweep: a bounded DELETE of expired tokens. A full round
 * leaves more to do, so the next one is due at once (after one waiting
 * request, if any: see worker_main); otherwise in sweep_interval_ms. A
 * failure (a full disk) is tried again at the next interval. */
static void sweep(sodium_accounts *a, worker *w)
{
    int n = im_sqlite_db_tokens_expire(w->db, wall_ms(a), IM_TOKEN_SWEEP_ROWS, NULL);
    uint64_t now = clock_ms(CLOCK_MONOTONIC);
    w->next_sweep_ms = n == (int)IM_TOKEN_SWEEP_ROWS ? now : now + a->cfg.sweep_interval_ms;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    sodium_accounts *a = w->owner;
    lane *l = w->lane;
    /* A round that is due goes before the waiting requests, so a steady
     * flow of logins cannot put it off for ever; but rounds and requests
     * alternate, so a long sweep delays a login by one round at most. */
    bool swept_last = false;
    for (;;) {
        pthread_mutex_lock(&a->lock);
        bool sweep_due = false;
        for (;;) {
            if (w->sweeps && !(swept_last && l->head) && !a->stopping &&
                clock_ms(CLOCK_MONOTONIC) >= w->next_sweep_ms) {
                sweep_due = true;
                break;
            }
            if (l->head || a->stopping)
                break;
            if (!w->sweeps) {
                pthread_cond_wait(&l->wake, &a->lock);
                continue;
            }
            struct timespec until = { .tv_sec = (time_t)(w->next_sweep_ms / 1000u),
                                      .tv_nsec = (long)(w->next_sweep_ms % 1000u) * 1000000L };
            pthread_cond_timedwait(&l->wake, &a->lock, &until);
        }
        req *r = NULL;
        bool skip = false;
        if (!sweep_due && (r = l->head) != NULL) {
            l->head = r->next;
            if (!l->head)
                l->tail = &l->head;
            if (r->done)
                l->queued--;
            skip = skippable(a, r);
        }
        pthread_mutex_unlock(&a->lock);
        swept_last = sweep_due;
        if (sweep_due) {
            sweep(a, w);
        } else if (r) {
            run(a, w->db, r, skip);
            req_free(r);
        } else {
            break; /* stopping and drained */
        }
    }
    return NULL;
}

static int enqueue(sodium_accounts *a, req *r, im_error *err)
{
    lane *l = r->kind == REQ_CREATE || r->kind == REQ_LOGIN ? &a->hash_lane : &a->token_lane;
    pthread_mutex_lock(&a->lock);
    if (a->stopping) {
        pthread_mutex_unlock(&a->lock);
        req_free(r);
        return im_error_set(err, IM_ESHUTDOWN, "the server is shutting down");
    }
    /* A bound on what clients can queue: revokes (a Logout's) always go. */
    if (r->done && l->queued >= l->max_queued) {
        pthread_mutex_unlock(&a->lock);
        req_free(r);
        return im_error_set(err, IM_EBUSY, "too many logins are being checked: try again soon");
    }
    r->next = NULL;
    *l->tail = r;
    l->tail = &r->next;
    if (r->done)
        l->queued++;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&a->lock);
    return IM_OK;
}

static req *new_req(req_kind kind, im_accounts_done_fn done, void *arg,
                    const atomic_bool *cancelled)
{
    req *r = calloc(1, sizeof *r);
    if (r) {
        r->kind = kind;
        r->done = done;
        r->arg = arg;
        r->cancelled = cancelled;
    }
    return r;
}

static int acc_create(im_accounts *acc, const char *user, const char *display_name,
                      const char *password, im_accounts_done_fn done, void *arg,
                      const atomic_bool *cancelled, im_error *err)
{
    req *r = new_req(REQ_CREATE, done, arg, cancelled);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    snprintf(r->user, sizeof r->user, "%s", user);
    snprintf(r->name, sizeof r->name, "%s", display_name ? display_name : "");
    snprintf(r->password, sizeof r->password, "%s", password);
    return enqueue((sodium_accounts *)acc, r, err);
}

static int acc_login(im_accounts *acc, const char *user, const char *password,
                     im_accounts_done_fn done, void *arg, const atomic_bool *cancelled,
                     im_error *err)
{
    req *r = new_req(REQ_LOGIN, done, arg, cancelled);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    snprintf(r->user, sizeof r->user, "%s", user);
    snprintf(r->password, sizeof r->password, "%s", password);
    return enqueue((sodium_accounts *)acc, r, err);
}

static int acc_resume(im_accounts *acc, const char *token, im_accounts_done_fn done, void *arg,
                      const atomic_bool *cancelled, im_error *err)
{
    req *r = new_req(REQ_RESUME, done, arg, cancelled);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    /* Anything but 64 characters stays empty, and token_hash refuses it on
     * the thread, so every refusal takes the same path. */
    if (strlen(token) == TOKEN_HEX)
        memcpy(r->token, token, TOKEN_HEX + 1);
    return enqueue((sodium_accounts *)acc, r, err);
}

static int acc_revoke(im_accounts *acc, const char *token, im_error *err)
{
    req *r = new_req(REQ_REVOKE, NULL, NULL, NULL);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    if (strlen(token) == TOKEN_HEX)
        memcpy(r->token, token, TOKEN_HEX + 1);
    return enqueue((sodium_accounts *)acc, r, err);
}

static int acc_revoke_all(im_accounts *acc, const char *user, im_error *err)
{
    req *r = new_req(REQ_REVOKE_ALL, NULL, NULL, NULL);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    snprintf(r->user, sizeof r->user, "%s", user);
    return enqueue((sodium_accounts *)acc, r, err);
}

static void acc_destroy(im_accounts *acc)
{
    sodium_accounts *a = (sodium_accounts *)acc;
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    a->stopping = true;
    pthread_cond_broadcast(&a->token_lane.wake);
    pthread_cond_broadcast(&a->hash_lane.wake);
    pthread_mutex_unlock(&a->lock);
    for (unsigned i = 0; i < a->nworkers; i++) {
        if (a->workers[i].started)
            pthread_join(a->workers[i].thread, NULL);
        im_sqlite_db_close(a->workers[i].db);
    }
    free(a->workers);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->token_lane.wake);
    pthread_cond_destroy(&a->hash_lane.wake);
    free(a);
}

static const struct im_accounts_ops sodium_accounts_ops = {
    .name = "sodium",
    .create = acc_create,
    .login = acc_login,
    .resume = acc_resume,
    .revoke = acc_revoke,
    .revoke_all = acc_revoke_all,
    .destroy = acc_destroy,
};

int im_sodium_accounts_new(const im_sodium_accounts_config *cfg, im_accounts **out,
                           im_error *err)
{
    *out = NULL;
    if (sodium_init() < 0)
        return im_error_set(err, IM_EIO, "libsodium cannot start");
    sodium_accounts *a = calloc(1, sizeof *a);
    if (!a)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    a->base.ops = &sodium_accounts_ops;
    a->cfg = *cfg;
    a->cfg.db_path = NULL; /* borrowed for the call only */
    a->token_lane.tail = &a->token_lane.head;
    a->hash_lane.tail = &a->hash_lane.head;
    unsigned max_pending = cfg->max_pending ? cfg->max_pending : IM_ACCOUNTS_MAX_PENDING;
    a->token_lane.max_queued = a->hash_lane.max_queued = max_pending;
    switch (cfg->cost) {
    case IM_PASSWORD_COST_MODERATE:
        a->opslimit = crypto_pwhash_OPSLIMIT_MODERATE;
        a->memlimit = crypto_pwhash_MEMLIMIT_MODERATE;
        break;
    case IM_PASSWORD_COST_MIN:
        a->opslimit = crypto_pwhash_OPSLIMIT_MIN;
        a->memlimit = crypto_pwhash_MEMLIMIT_MIN;
        break;
    default:
        a->opslimit = crypto_pwhash_OPSLIMIT_INTERACTIVE;
        a->memlimit = crypto_pwhash_MEMLIMIT_INTERACTIVE;
        break;
    }
    if (a->cfg.sweep_interval_ms == 0)
        a->cfg.sweep_interval_ms = IM_TOKEN_SWEEP_INTERVAL_MS;
    pthread_mutex_init(&a->lock, NULL);
    /* The sweep's deadline is on the monotonic clock. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->token_lane.wake, &ca);
    pthread_cond_init(&a->hash_lane.wake, &ca);
    pthread_condattr_destroy(&ca);
    /* One thread for the token lane, the rest hash passwords. */
    unsigned n = 1 + (cfg->threads ? cfg->threads : 1);
    a->workers = calloc(n, sizeof *a->workers);
    if (!a->workers) {
        acc_destroy(&a->base);
        return im_error_set(err, IM_ENOMEM, "out of memory");
    }
    a->nworkers = n;
    /* The store opened and checked the file first. */
    im_sqlite_options o = { .path = cfg->db_path, .synchronous_full = true, .skip_check = true };
    for (unsigned i = 0; i < n; i++) {
        worker *w = &a->workers[i];
        w->owner = a;
        w->sweeps = i == 0; /* the first round at once: what expired while stopped */
        w->lane = i == 0 ? &a->token_lane : &a->hash_lane;
        int rc = im_sqlite_db_open(&o, &w->db, err);
        if (rc == IM_OK && pthread_create(&w->thread, NULL, worker_main, w) != 0)
            rc = im_error_set(err, IM_EIO, "cannot start an accounts thread");
        if (rc != IM_OK) {
            acc_destroy(&a->base);
            return rc;
        }
        w->started = true;
    }
    *out = &a->base;
    return IM_OK;
}
