/* infrastructure/accounts_sodium/im_sodium_accounts.c: see the header.
 *
 * Requests queue up from any worker; each thread takes one, does the slow
 * part (hashing) and the quick storage part through the store's account
 * operation, and calls the completion. The store answers on its own thread
 * (or at once, inside the call); these threads are the adapter's own, not
 * event loops, so each waits for its answer on a condition variable. The
 * store sees hashes only. Passwords live in the request only until hashed
 * or verified, and are wiped then. The first thread also deletes a round
 * of expired tokens every sweep_interval_ms, between two requests: the
 * event loops never wait for that. */
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

/* One account request to the store and its answer, which a thread waits
 * for: the store's completion copies the record in and signals. */
typedef struct store_call {
    pthread_mutex_t lock;
    pthread_cond_t answered;
    bool finished;
    int rc;
    im_error err;
    char user[IM_USER_ID_MAX + 1];
    char name[IM_DISPLAY_NAME_MAX + 1];
    char secret[IM_STORE_SECRET_MAX + 1];
    uint64_t count;
} store_call;

typedef struct worker {
    sodium_accounts *owner;
    pthread_t thread;
    bool started;
    store_call call;            /* this thread's, one request at a time */
    bool sweeps;                /* this thread deletes expired tokens */
    uint64_t next_sweep_ms;     /* monotonic */
    struct lane *lane;          /* the queue it serves */
} worker;

/* Requests wait in one of two lanes. Password checks (create, login) are
 * slow on purpose and go to the hashing threads; token work (resume,
 * revoke, revoke_all) is a quick request to the store and goes, in order, to
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
    atomic_bool eio_logged;     /* the store failed (IM_EIO), and that was said */
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

static void call_done(void *arg, int rc, const im_account_record *rec, const im_error *err)
{
    store_call *c = arg;
    pthread_mutex_lock(&c->lock);
    c->rc = rc;
    if (rc != IM_OK) {
        c->err = err ? *err : (im_error){ 0 };
        if (!c->err.msg[0])
            im_error_set(&c->err, rc, "the store failed: %s", im_strerror(rc));
        c->err.code = rc;
    } else if (rec) {
        snprintf(c->user, sizeof c->user, "%s", rec->user ? rec->user : "");
        snprintf(c->name, sizeof c->name, "%s", rec->display_name ? rec->display_name : "");
        snprintf(c->secret, sizeof c->secret, "%s", rec->secret ? rec->secret : "");
        c->count = rec->count;
    }
    c->finished = true;
    pthread_cond_signal(&c->answered);
    pthread_mutex_unlock(&c->lock);
}

/* Asks the store and waits for its answer, which lands in w->call. An
 * IM_EIO (the store failed: a lost database file, a broken disk) is said
 * once at ERROR; the requests are answered with it all the same. */
static int store_ask(sodium_accounts *a, worker *w, im_account_request *q, im_error *err)
{
    store_call *c = &w->call;
    pthread_mutex_lock(&c->lock);
    c->finished = false;
    c->rc = IM_OK;
    c->err = (im_error){ 0 };
    c->user[0] = c->name[0] = c->secret[0] = '\0';
    c->count = 0;
    pthread_mutex_unlock(&c->lock);
    q->size = sizeof *q;
    im_store *st = a->cfg.store;
    int rc = st->ops->account(st, q, call_done, c, err);
    if (rc == IM_OK) {
        pthread_mutex_lock(&c->lock);
        while (!c->finished)
            pthread_cond_wait(&c->answered, &c->lock);
        rc = c->rc;
        pthread_mutex_unlock(&c->lock);
        if (rc != IM_OK)
            im_error_set(err, rc, "%s", c->err.msg);
    }
    if (rc == IM_EIO && !atomic_exchange(&a->eio_logged, true))
        IM_ERROR("accounts: %s; registrations and logins that need the store are refused "
                 "while it fails (said once)", err && err->msg[0] ? err->msg : "the store failed");
    return rc;
}

/* A new token for user, its hash for the store, and its text in out. */
static void new_token(char out[TOKEN_HEX + 1], uint8_t hash[crypto_generichash_BYTES])
{
    uint8_t raw[TOKEN_BYTES];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(out, TOKEN_HEX + 1, raw, sizeof raw);
    crypto_generichash(hash, crypto_generichash_BYTES, raw, sizeof raw, NULL, 0);
    sodium_memzero(raw, sizeof raw);
}

static uint64_t token_expiry(const sodium_accounts *a)
{
    return wall_ms(a) + (uint64_t)a->cfg.token_ttl_s * 1000u;
}

static int do_create(sodium_accounts *a, worker *w, req *r, im_error *err)
{
    /* A taken name is refused before the costly hash. */
    im_account_request q = { .op = IM_ACCOUNT_GET, .user = r->user };
    int rc = store_ask(a, w, &q, err);
    if (rc == IM_OK)
        return im_error_set(err, IM_EUSEREXISTS, "the user id %s is taken", r->user);
    if (rc != IM_ENOTFOUND)
        return rc;
    char hash[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str(hash, r->password, strlen(r->password), a->opslimit, a->memlimit) != 0)
        return im_error_set(err, IM_ENOMEM, "out of memory while hashing the password");
    /* The account and its first token, with the cap on the user's tokens,
     * in one request: the store keeps both or neither. A registration of
     * the same id meanwhile by another thread is IM_EUSEREXISTS here. */
    uint8_t th[crypto_generichash_BYTES];
    new_token(r->token, th);
    q = (im_account_request){ .op = IM_ACCOUNT_CREATE, .user = r->user, .display_name = r->name,
                              .secret = hash, .token = th, .token_len = sizeof th,
                              .now_ms = wall_ms(a), .expires_ms = token_expiry(a),
                              .keep = a->cfg.max_tokens_per_user };
    rc = store_ask(a, w, &q, err);
    if (rc == IM_EUSEREXISTS)
        return im_error_set(err, IM_EUSEREXISTS, "the user id %s is taken", r->user);
    return rc;
}

static int do_login(sodium_accounts *a, worker *w, req *r, im_error *err)
{
    im_account_request q = { .op = IM_ACCOUNT_GET, .user = r->user };
    int rc = store_ask(a, w, &q, err);
    if (rc == IM_ENOTFOUND)
        return im_error_set(err, IM_ENOTFOUND, "no user %s: register first", r->user);
    if (rc != IM_OK)
        return rc;
    snprintf(r->name, sizeof r->name, "%s", w->call.name);
    bool good = crypto_pwhash_str_verify(w->call.secret, r->password, strlen(r->password)) == 0;
    if (!good)
        return im_error_set(err, IM_EAUTH, "wrong password for %s", r->user);
    /* The new token and the cap on the user's tokens, together. */
    uint8_t th[crypto_generichash_BYTES];
    new_token(r->token, th);
    q = (im_account_request){ .op = IM_ACCOUNT_TOKEN_PUT, .user = r->user, .token = th,
                              .token_len = sizeof th, .expires_ms = token_expiry(a),
                              .keep = a->cfg.max_tokens_per_user };
    rc = store_ask(a, w, &q, err);
    if (rc == IM_ENOTFOUND) /* the account went between the two requests */
        return im_error_set(err, IM_ENOTFOUND, "no user %s: register first", r->user);
    return rc;
}

static int do_resume(sodium_accounts *a, worker *w, req *r, im_error *err)
{
    uint8_t hash[crypto_generichash_BYTES];
    if (!token_hash(r->token, hash))
        return im_error_set(err, IM_EAUTH, "not a session token");
    im_account_request q = { .op = IM_ACCOUNT_TOKEN_GET, .token = hash,
                             .token_len = sizeof hash, .now_ms = wall_ms(a) };
    int rc = store_ask(a, w, &q, err);
    if (rc == IM_ENOTFOUND)
        return im_error_set(err, IM_EAUTH, "the token has expired or was revoked");
    if (rc != IM_OK)
        return rc;
    snprintf(r->user, sizeof r->user, "%s", w->call.user);
    snprintf(r->name, sizeof r->name, "%s", w->call.name);
    return IM_OK;
}

/* A request whose answer nobody waits for (its client left), or one still
 * queued when the adapter stops, ends without its costly part. */
static bool skippable(const sodium_accounts *a, const req *r)
{
    return (r->cancelled && atomic_load(r->cancelled)) ||
           (a->stopping && r->kind != REQ_REVOKE && r->kind != REQ_REVOKE_ALL);
}

static void run(sodium_accounts *a, worker *w, req *r, bool skip)
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
    case REQ_CREATE: rc = do_create(a, w, r, &err); break;
    case REQ_LOGIN: rc = do_login(a, w, r, &err); break;
    case REQ_RESUME: rc = do_resume(a, w, r, &err); break;
    case REQ_REVOKE: {
        uint8_t hash[crypto_generichash_BYTES];
        im_account_request q = { .op = IM_ACCOUNT_TOKEN_DELETE, .token = hash,
                                 .token_len = sizeof hash };
        if (token_hash(r->token, hash))
            store_ask(a, w, &q, &err);
        return; /* no completion */
    }
    case REQ_REVOKE_ALL: {
        im_account_request q = { .op = IM_ACCOUNT_TOKENS_DELETE_USER, .user = r->user };
        store_ask(a, w, &q, &err);
        return; /* no completion */
    }
    default: return;
    }
    sodium_memzero(r->password, sizeof r->password);
    sodium_memzero(w->call.secret, sizeof w->call.secret);
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
    im_account_request q = { .op = IM_ACCOUNT_TOKENS_EXPIRE, .now_ms = wall_ms(a),
                             .keep = IM_TOKEN_SWEEP_ROWS };
    im_error err = { 0 };
    bool full = store_ask(a, w, &q, &err) == IM_OK && w->call.count >= IM_TOKEN_SWEEP_ROWS;
    uint64_t now = clock_ms(CLOCK_MONOTONIC);
    w->next_sweep_ms = full ? now : now + a->cfg.sweep_interval_ms;
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
            run(a, w, r, skip);
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
        worker *w = &a->workers[i];
        if (w->started)
            pthread_join(w->thread, NULL);
        if (w->owner) {
            pthread_mutex_destroy(&w->call.lock);
            pthread_cond_destroy(&w->call.answered);
        }
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
    if (!cfg->store)
        return im_error_set(err, IM_EINVAL, "accounts need a store");
    if (!IM_STORE_HAS(cfg->store, account))
        return im_error_set(err, IM_EINVAL, "storage.engine %s keeps no accounts",
                            cfg->store->ops->name ? cfg->store->ops->name : "(unnamed)");
    if (sodium_init() < 0)
        return im_error_set(err, IM_EIO, "libsodium cannot start");
    sodium_accounts *a = calloc(1, sizeof *a);
    if (!a)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    a->base.ops = &sodium_accounts_ops;
    a->cfg = *cfg;
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
    for (unsigned i = 0; i < n; i++) {
        worker *w = &a->workers[i];
        w->owner = a;
        pthread_mutex_init(&w->call.lock, NULL);
        pthread_cond_init(&w->call.answered, NULL);
        w->sweeps = i == 0; /* the first round at once: what expired while stopped */
        w->lane = i == 0 ? &a->token_lane : &a->hash_lane;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            acc_destroy(&a->base);
            return im_error_set(err, IM_EIO, "cannot start an accounts thread");
        }
        w->started = true;
    }
    *out = &a->base;
    return IM_OK;
}
