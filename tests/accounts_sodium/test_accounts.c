/* tests/accounts_sodium/test_accounts.c: the libsodium accounts adapter
 * against a real SQLite file: registration, login, tokens and their
 * revocation, and that secrets are never stored in clear. */
#include <pthread.h>
#include <setjmp.h>
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
#include "im_sodium_accounts.h"
#include "im_sqlite_db.h"

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

typedef struct fixture {
    char dir[PATH_MAX], path[PATH_MAX + 16];
    im_accounts *acc;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(test_dir_make(f->dir, "acc"), 0);
    snprintf(f->path, sizeof f->path, "%s/acc.db", f->dir);
    /* The store creates the schema; do the same with the data layer. */
    im_sqlite_options o = { .path = f->path };
    im_sqlite_db *db;
    assert_int_equal(im_sqlite_db_open(&o, &db, NULL), IM_OK);
    im_sqlite_db_close(db);
    im_sodium_accounts_config cfg = { .db_path = f->path, .cost = IM_PASSWORD_COST_MIN,
                                      .token_ttl_s = 3600, .threads = 2 };
    assert_int_equal(im_sodium_accounts_new(&cfg, &f->acc, NULL), IM_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    f->acc->ops->destroy(f->acc);
    assert_int_equal(test_dir_remove(f->dir), 0);
    free(f);
    return 0;
}

#define RESULT_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, "", "", "", "" }

static int create(fixture *f, const char *user, const char *pw, result *r)
{
    assert_int_equal(f->acc->ops->create(f->acc, user, "Name", pw, on_done, r, NULL), IM_OK);
    wait_for(r);
    return r->rc;
}

static int login(fixture *f, const char *user, const char *pw, result *r)
{
    assert_int_equal(f->acc->ops->login(f->acc, user, pw, on_done, r, NULL), IM_OK);
    wait_for(r);
    return r->rc;
}

static int resume(fixture *f, const char *token, result *r)
{
    assert_int_equal(f->acc->ops->resume(f->acc, token, on_done, r, NULL), IM_OK);
    wait_for(r);
    return r->rc;
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

static void test_no_secret_in_clear(void **state)
{
    fixture *f = *state;
    result a = RESULT_INIT;
    assert_int_equal(create(f, "alice", "a very secret password", &a), IM_OK);
    f->acc->ops->destroy(f->acc); /* flush and close before reading the file */
    im_sodium_accounts_config cfg = { .db_path = f->path, .cost = IM_PASSWORD_COST_MIN,
                                      .token_ttl_s = 3600, .threads = 1 };
    FILE *fp = fopen(f->path, "rb");
    assert_non_null(fp);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    assert_null(memmem(buf, n, "a very secret password", 22));
    assert_null(memmem(buf, n, a.token, 64));
    assert_int_equal(im_sodium_accounts_new(&cfg, &f->acc, NULL), IM_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_login_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_secret_in_clear, setup, teardown),
    };
    return cmocka_run_group_tests_name("accounts_sodium", tests, NULL, NULL);
}
