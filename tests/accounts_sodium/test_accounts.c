/* tests/accounts_sodium/test_accounts.c: the libsodium accounts adapter
 * over the storage port's account operation: registration, login, tokens
 * and their revocation, and that secrets are never stored in clear. Every
 * case runs twice, against the memory store and against the SQLite store
 * on a real file, so the adapter is checked against the port and not
 * against one engine. */
#include <pthread.h>
#include <setjmp.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "test_dir.h"
#include "im_memory_store.h"
#include "im_sodium_accounts.h"
#include "im_sqlite_store.h"

/* A completion lands on the adapter's thread; the test waits for it. */
typedef struct result {
    pthread_mutex_t lock;
    pthread_cond_t done;
    bool finished;
    int rc;
    char user[64], name[80], token[80], msg[200];
} result;

static void on_done(void *arg, int rc, const char *user, const char *name, const char *token,
                    const im_error *err)
{
    result *r = arg;
    pthread_mutex_lock(&r->lock);
    r->rc = rc;
    snprintf(r->user, sizeof r->user, "%s", user ? user : "");
    snprintf(r->name, sizeof r->name, "%s", name ? name : "");
    snprintf(r->token, sizeof r->token, "%s", token ? token : "");
    snprintf(r->msg, sizeof r->msg, "%s", err ? err->msg : "");
    r->finished = true;
    pthread_cond_signal(&r->done);
    pthread_mutex_unlock(&r->lock);
}

static void wait_for(result *r)
{
    pthread_mutex_lock(&r->lock);
    while (!r->finished)
        pthread_cond_wait(&r->done, &r->lock);
    pthread_mutex_unlock(&r->lock);
}

typedef enum engine { ENGINE_MEMORY, ENGINE_SQLITE } engine;
/* Prestates: cmocka hands a mutable pointer to the setup, which only reads it. */
static engine memory_engine = ENGINE_MEMORY, sqlite_engine = ENGINE_SQLITE;

typedef struct fixture {
    char dir[PATH_MAX], path[PATH_MAX + 16];
    engine engine;
    im_store *store;
    im_accounts *acc;
    _Atomic uint64_t now_ms; /* the adapter's wall clock */
} fixture;

static uint64_t fake_clock(void *arg)
{
    fixture *f = arg;
    return atomic_load(&f->now_ms);
}

#define T0_MS 1700000000000ull

static void open_store(fixture *f)
{
    if (f->engine == ENGINE_MEMORY) {
        assert_int_equal(im_memory_store_new(&f->store, NULL), IM_OK);
        return;
    }
    im_sqlite_store_config sc = { .path = f->path, .max_batch = 64, .skip_check = true };
    assert_int_equal(im_sqlite_store_new(&sc, &f->store, NULL), IM_OK);
}

/* The adapter on a fresh store of the engine in *state (the test's
 * prestate), with a wall clock the test sets, at most cap tokens per user
 * (0: no cap) and a sweep every sweep_ms. */
static int setup_full(void **state, unsigned threads, unsigned cap, unsigned sweep_ms,
                      im_password_cost cost, unsigned max_pending)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->engine = *(const engine *)*state;
    assert_int_equal(test_dir_make(f->dir, "acc"), 0);
    snprintf(f->path, sizeof f->path, "%s/acc.db", f->dir);
    atomic_store(&f->now_ms, T0_MS);
    open_store(f);
    im_sodium_accounts_config cfg = { .store = f->store, .cost = cost,
                                      .max_pending = max_pending,
                                      .token_ttl_s = 3600, .threads = threads,
                                      .max_tokens_per_user = cap, .sweep_interval_ms = sweep_ms,
                                      .wall_clock_ms = fake_clock, .clock_arg = f };
    assert_int_equal(im_sodium_accounts_new(&cfg, &f->acc, NULL), IM_OK);
    *state = f;
    return 0;
}

static int setup_with(void **state, unsigned threads, unsigned cap, unsigned sweep_ms)
{
    return setup_full(state, threads, cap, sweep_ms, IM_PASSWORD_COST_MIN, 0);
}

static int setup(void **state)
{
    return setup_with(state, 2, 0, 0);
}

/* One hashing thread at the real cost (tens of milliseconds a check), at
 * most 4 checks waiting. */
static int setup_slow(void **state)
{
    return setup_full(state, 1, 0, 0, IM_PASSWORD_COST_INTERACTIVE, 4);
}

/* One thread, as the server runs it: requests are handled in order. */
static int setup_capped(void **state)
{
    return setup_with(state, 1, 3, 0);
}

static int setup_sweeping(void **state)
{
    return setup_with(state, 1, 0, 10);
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->acc)
        f->acc->ops->destroy(f->acc);
    im_store_destroy(f->store); /* after the accounts, which use it */
    assert_int_equal(test_dir_remove(f->dir), 0);
    free(f);
    return 0;
}

#define RESULT_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, "", "", "", "" }

static int create(fixture *f, const char *user, const char *pw, result *r)
{
    assert_int_equal(f->acc->ops->create(f->acc, user, "Name", pw, on_done, r, NULL, NULL), IM_OK);
    wait_for(r);
    return r->rc;
}

static int login(fixture *f, const char *user, const char *pw, result *r)
{
    assert_int_equal(f->acc->ops->login(f->acc, user, pw, on_done, r, NULL, NULL), IM_OK);
    wait_for(r);
    return r->rc;
}

static int resume(fixture *f, const char *token, result *r)
{
    assert_int_equal(f->acc->ops->resume(f->acc, token, on_done, r, NULL, NULL), IM_OK);
    wait_for(r);
    return r->rc;
}

#define FLOOD 20

/* Password checks waiting are bounded: behind one being hashed, at most 4
 * wait and the rest are refused at once with IM_EBUSY; a token login does
 * not wait behind them. */
static void test_queue_is_bounded(void **state)
{
    fixture *f = *state;
    result made = RESULT_INIT;
    assert_int_equal(create(f, "alice", "password one", &made), IM_OK);
    result r[FLOOD];
    bool waiting[FLOOD];
    int busy = 0, queued = 0;
    for (int i = 0; i < FLOOD; i++) {
        r[i] = (result)RESULT_INIT;
        int rc = f->acc->ops->login(f->acc, "alice", "a wrong password", on_done, &r[i], NULL,
                                    NULL);
        assert_true(rc == IM_OK || rc == IM_EBUSY);
        waiting[i] = rc == IM_OK;
        if (rc == IM_EBUSY)
            busy++;
        else
            queued++;
    }
    /* One may be taken by the thread before the next is queued, more only
     * if a 64 MiB Argon2id check ended within the loop. */
    assert_true(queued <= 4 + 2);
    assert_true(busy >= FLOOD - 6);
    result t = RESULT_INIT;
    assert_int_equal(resume(f, made.token, &t), IM_OK);
    for (int i = 0; i < FLOOD; i++)
        if (waiting[i])
            wait_for(&r[i]);
}

/* A check whose client has gone is skipped, and one still waiting when the
 * adapter stops is answered IM_ESHUTDOWN without being done. */
static void test_called_off_and_stopped(void **state)
{
    fixture *f = *state;
    result made = RESULT_INIT;
    assert_int_equal(create(f, "alice", "password one", &made), IM_OK);
    atomic_bool gone;
    atomic_init(&gone, true);
    result first = RESULT_INIT, off = RESULT_INIT, late[3];
    assert_int_equal(f->acc->ops->login(f->acc, "alice", "password one", on_done, &first, NULL,
                                        NULL), IM_OK);
    assert_int_equal(f->acc->ops->login(f->acc, "alice", "password one", on_done, &off, &gone,
                                        NULL), IM_OK);
    wait_for(&off);
    assert_int_equal(off.rc, IM_ESHUTDOWN);
    assert_non_null(strstr(off.msg, "gone"));
    for (int i = 0; i < 3; i++) {
        late[i] = (result)RESULT_INIT;
        assert_int_equal(f->acc->ops->login(f->acc, "alice", "password one", on_done, &late[i],
                                            NULL, NULL), IM_OK);
    }
    f->acc->ops->destroy(f->acc); /* the teardown's destroy then has nothing to do */
    f->acc = NULL;
    wait_for(&first);
    int stopped = 0;
    for (int i = 0; i < 3; i++) {
        wait_for(&late[i]);
        stopped += late[i].rc == IM_ESHUTDOWN;
    }
    /* The thread may have taken the first of them before the stop. */
    assert_true(stopped >= 2);
}

static void test_register_login_resume(void **state)
{
    fixture *f = *state;
    result a = RESULT_INIT, b = RESULT_INIT, c = RESULT_INIT;
    assert_int_equal(create(f, "alice", "secret password", &a), IM_OK);
    assert_string_equal(a.user, "alice");
    assert_string_equal(a.name, "Name");
    assert_int_equal(strlen(a.token), 64);
    assert_int_equal(login(f, "alice", "secret password", &b), IM_OK);
    assert_string_not_equal(a.token, b.token);
    assert_int_equal(resume(f, a.token, &c), IM_OK);
    assert_string_equal(c.user, "alice");
    assert_string_equal(c.token, a.token);
}

static void test_refusals(void **state)
{
    fixture *f = *state;
    result a = RESULT_INIT, b = RESULT_INIT, c = RESULT_INIT, d = RESULT_INIT, e = RESULT_INIT;
    assert_int_equal(create(f, "alice", "secret password", &a), IM_OK);
    assert_int_equal(create(f, "alice", "other password", &b), IM_EUSEREXISTS);
    assert_int_equal(login(f, "alice", "wrong password", &c), IM_EAUTH);
    assert_int_equal(login(f, "bob", "secret password", &d), IM_ENOTFOUND);
    assert_non_null(strstr(d.msg, "bob"));
    assert_int_equal(resume(f, "not a token", &e), IM_EAUTH);
    result g = RESULT_INIT;
    char longer[160];
    snprintf(longer, sizeof longer, "%s00", a.token); /* a valid token with more after it */
    assert_int_equal(resume(f, longer, &g), IM_EAUTH);
}

static void test_revoke(void **state)
{
    fixture *f = *state;
    result a = RESULT_INIT, b = RESULT_INIT, c = RESULT_INIT;
    assert_int_equal(create(f, "alice", "secret password", &a), IM_OK);
    assert_int_equal(f->acc->ops->revoke(f->acc, a.token, NULL), IM_OK);
    /* A revoke has no completion, and with two threads a later resume may
     * run while the other thread still has it: ask until the refusal shows,
     * for at most 10 s (a count of tries ran out on a busy machine). */
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        result r = RESULT_INIT;
        if (resume(f, a.token, &r) == IM_EAUTH) {
            b = r;
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec - start.tv_sec < 10);
    assert_int_equal(b.rc, IM_EAUTH);
    assert_int_equal(login(f, "alice", "secret password", &c), IM_OK); /* the account stays */
}

/* One account request to the fixture's store, waited for. */
typedef struct store_answer {
    pthread_mutex_t lock;
    pthread_cond_t done;
    bool finished;
    int rc;
    char user[64], secret[300];
} store_answer;

static void on_store(void *arg, int rc, const im_account_record *rec, const im_error *err)
{
    (void)err;
    store_answer *a = arg;
    pthread_mutex_lock(&a->lock);
    a->rc = rc;
    snprintf(a->user, sizeof a->user, "%s", rec && rec->user ? rec->user : "");
    snprintf(a->secret, sizeof a->secret, "%s", rec && rec->secret ? rec->secret : "");
    a->finished = true;
    pthread_cond_signal(&a->done);
    pthread_mutex_unlock(&a->lock);
}

static int store_ask(const fixture *f, im_account_request q, store_answer *a)
{
    *a = (store_answer){ .lock = PTHREAD_MUTEX_INITIALIZER, .done = PTHREAD_COND_INITIALIZER };
    q.size = sizeof q;
    assert_int_equal(f->store->ops->account(f->store, &q, on_store, a, NULL), IM_OK);
    pthread_mutex_lock(&a->lock);
    while (!a->finished)
        pthread_cond_wait(&a->done, &a->lock);
    pthread_mutex_unlock(&a->lock);
    return a->rc;
}

/* The store holds the password's Argon2id hash and the token's BLAKE2b
 * hash, never either in clear: asked through the port, and, for SQLite,
 * in the bytes of the file. */
static void test_no_secret_in_clear(void **state)
{
    fixture *f = *state;
    result a = RESULT_INIT;
    assert_int_equal(create(f, "alice", "a very secret password", &a), IM_OK);
    store_answer got;
    assert_int_equal(store_ask(f, (im_account_request){ .op = IM_ACCOUNT_GET, .user = "alice" },
                               &got), IM_OK);
    assert_int_equal(strncmp(got.secret, "$argon2id$", 10), 0);
    assert_null(strstr(got.secret, "a very secret password"));
    if (f->engine != ENGINE_SQLITE)
        return;
    f->acc->ops->destroy(f->acc); /* flush and close before reading the file */
    f->acc = NULL;
    im_store_destroy(f->store);
    f->store = NULL;
    FILE *fp = fopen(f->path, "rb");
    assert_non_null(fp);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    assert_true(n > 0);
    assert_null(memmem(buf, n, "a very secret password", 22));
    assert_null(memmem(buf, n, a.token, 64));
}

/* A login past the cap drops the user's oldest token: with a cap of 3,
 * five logins leave the last three. */
static void test_tokens_capped_per_user(void **state)
{
    fixture *f = *state;
    result r[5] = { RESULT_INIT, RESULT_INIT, RESULT_INIT, RESULT_INIT, RESULT_INIT };
    assert_int_equal(create(f, "alice", "secret password", &r[0]), IM_OK);
    for (int i = 1; i < 5; i++)
        assert_int_equal(login(f, "alice", "secret password", &r[i]), IM_OK);
    result b = RESULT_INIT;
    assert_int_equal(create(f, "bob", "secret password", &b), IM_OK); /* not alice's */
    for (int i = 0; i < 5; i++) {
        result q = RESULT_INIT;
        int rc = resume(f, r[i].token, &q);
        if (rc != (i < 2 ? IM_EAUTH : IM_OK))
            fail_msg("token %d of 5 with a cap of 3: %d (%s)", i + 1, rc, q.msg);
    }
    result q = RESULT_INIT;
    assert_int_equal(resume(f, b.token, &q), IM_OK);
}

/* Log out everywhere: every token of the user goes, nobody else's. */
static void test_revoke_all(void **state)
{
    fixture *f = *state;
    result a[3] = { RESULT_INIT, RESULT_INIT, RESULT_INIT }, b = RESULT_INIT;
    assert_int_equal(create(f, "alice", "secret password", &a[0]), IM_OK);
    assert_int_equal(login(f, "alice", "secret password", &a[1]), IM_OK);
    assert_int_equal(login(f, "alice", "secret password", &a[2]), IM_OK);
    assert_int_equal(create(f, "bob", "secret password", &b), IM_OK);
    assert_int_equal(f->acc->ops->revoke_all(f->acc, "alice", NULL), IM_OK);
    /* No completion; on one thread, a later request runs after it. */
    for (int i = 0; i < 3; i++) {
        result q = RESULT_INIT;
        assert_int_equal(resume(f, a[i].token, &q), IM_EAUTH);
    }
    result q = RESULT_INIT, c = RESULT_INIT;
    assert_int_equal(resume(f, b.token, &q), IM_OK);
    assert_int_equal(login(f, "alice", "secret password", &c), IM_OK); /* the account stays */
}

static void hash_of(const char *token, uint8_t hash[crypto_generichash_BYTES])
{
    uint8_t raw[32];
    assert_int_equal(sodium_hex2bin(raw, sizeof raw, token, 64, NULL, NULL, NULL), 0);
    crypto_generichash(hash, crypto_generichash_BYTES, raw, sizeof raw, NULL, 0);
}

/* Whether the store still holds the token hash (expired or not: asked at
 * time 0, before every expiry, so the read deletes nothing). */
static bool hash_row(const fixture *f, const uint8_t *hash, size_t len)
{
    store_answer a;
    int rc = store_ask(f, (im_account_request){ .op = IM_ACCOUNT_TOKEN_GET, .token = hash,
                                                .token_len = len, .now_ms = 0 }, &a);
    assert_true(rc == IM_OK || rc == IM_ENOTFOUND);
    return rc == IM_OK;
}

static bool token_row(const fixture *f, const char *token)
{
    uint8_t hash[crypto_generichash_BYTES];
    hash_of(token, hash);
    return hash_row(f, hash, sizeof hash);
}

/* Many puts at once, answered in any order: counted, and waited for. */
typedef struct put_count {
    pthread_mutex_t lock;
    pthread_cond_t done;
    unsigned answered, failed;
} put_count;

static void on_put(void *arg, int rc, const im_account_record *rec, const im_error *err)
{
    (void)rec, (void)err;
    put_count *c = arg;
    pthread_mutex_lock(&c->lock);
    c->answered++;
    c->failed += rc != IM_OK;
    pthread_cond_signal(&c->done);
    pthread_mutex_unlock(&c->lock);
}

static void pause_ms(long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Expired tokens are deleted without anyone presenting them: the sweep
 * runs on the adapter's thread every sweep_interval_ms, a bounded round at
 * a time, rounds following each other while they come back full. */
static void test_expired_tokens_swept(void **state)
{
    fixture *f = *state;
    result a = RESULT_INIT, b = RESULT_INIT;
    assert_int_equal(create(f, "alice", "secret password", &a), IM_OK);
    /* More expired tokens than one round deletes, put behind the adapter's
     * back through the store, and one that is still good. */
    unsigned n = 2 * IM_TOKEN_SWEEP_ROWS + 500;
    put_count puts = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
    for (unsigned i = 0; i < n; i++) {
        uint8_t h[32] = { 0xee };
        memcpy(h + 1, &i, sizeof i);
        im_account_request q = { .size = sizeof q, .op = IM_ACCOUNT_TOKEN_PUT, .user = "alice",
                                 .token = h, .token_len = sizeof h, .expires_ms = T0_MS - 1 };
        assert_int_equal(f->store->ops->account(f->store, &q, on_put, &puts, NULL), IM_OK);
    }
    pthread_mutex_lock(&puts.lock);
    while (puts.answered < n)
        pthread_cond_wait(&puts.done, &puts.lock);
    pthread_mutex_unlock(&puts.lock);
    assert_int_equal(puts.failed, 0);
    /* Time passes: alice's first token expires too; bob's is new. */
    atomic_store(&f->now_ms, T0_MS + 3600 * 1000 + 1);
    assert_int_equal(create(f, "bob", "secret password", &b), IM_OK);

    uint8_t last[32] = { 0xee };
    unsigned k = n - 1;
    memcpy(last + 1, &k, sizeof k);
    bool gone = false;
    for (int waited = 0; waited < 10000 && !gone; waited += 10) {
        gone = !hash_row(f, last, sizeof last) && !token_row(f, a.token);
        if (!gone)
            pause_ms(10);
    }
    if (!gone)
        fail_msg("expired tokens still in the store after 10 s");
    assert_true(token_row(f, b.token));
}

int main(void)
{
/* Each case twice, named after its engine, so a failure says which. */
#define BOTH(test, setup)                                                \
    { #test "/memory", test, setup, teardown, &memory_engine },          \
    { #test "/sqlite", test, setup, teardown, &sqlite_engine }
    const struct CMUnitTest tests[] = {
        BOTH(test_register_login_resume, setup),
        BOTH(test_queue_is_bounded, setup_slow),
        BOTH(test_called_off_and_stopped, setup_slow),
        BOTH(test_refusals, setup),
        BOTH(test_revoke, setup),
        BOTH(test_no_secret_in_clear, setup),
        BOTH(test_tokens_capped_per_user, setup_capped),
        BOTH(test_revoke_all, setup_capped),
        BOTH(test_expired_tokens_swept, setup_sweeping),
    };
    return cmocka_run_group_tests_name("accounts_sodium", tests, NULL, NULL);
}
