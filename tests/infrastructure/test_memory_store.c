/* tests/infrastructure/test_memory_store.c: the memory store's key-value map
 * (the rest of the memory store is exercised by the application's tests):
 * order and prefixes by bytes, namespaces, completion at once, refusals, a
 * reader that writes, and workers writing at once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "im_memory_store.h"

static int setup(void **state)
{
    im_store *s = NULL;
    if (im_memory_store_new(&s, NULL) != IM_OK)
        return -1;
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    im_store_destroy(*state);
    return 0;
}

/* ---- helpers ---- */

typedef struct seen {
    char keys[64][IM_STORE_KV_KEY_MAX + 1];
    char values[64][32]; /* NUL-terminated copies of short values */
    size_t len[64];
    int n;
    int stop_at; /* 0: never */
} seen;

static bool see(void *arg, const char *key, const void *value, size_t len)
{
    seen *ks = arg;
    assert_true(ks->n < 64);
    assert_non_null(value);
    strcpy(ks->keys[ks->n], key);
    memcpy(ks->values[ks->n], value, len < 31 ? len : 31);
    ks->len[ks->n] = len;
    ks->n++;
    return !(ks->stop_at && ks->n == ks->stop_at);
}

static void each(im_store *s, const char *ns, const char *prefix, seen *ks)
{
    int stop_at = ks->stop_at;
    memset(ks, 0, sizeof *ks);
    ks->stop_at = stop_at;
    im_error err = { 0 };
    int n = s->ops->kv_each(s, ns, prefix, see, ks, &err);
    if (n < 0)
        fail_msg("kv_each %s: %s", ns, err.msg);
    assert_int_equal(n, ks->n);
}

static void on_done(void *arg, int rc, const im_error *err)
{
    (void)err;
    int *calls = arg;
    assert_int_equal(rc, IM_OK);
    (*calls)++;
}

/* Puts and checks that the completion ran once, inside the call. */
static void put(im_store *s, const char *ns, const char *key, const char *value)
{
    int calls = 0;
    im_error err = { 0 };
    int rc = s->ops->kv_put(s, ns, key, value, value ? strlen(value) : 0, on_done, &calls, &err);
    if (rc != IM_OK)
        fail_msg("kv_put %s %s: %s", ns, key, err.msg);
    assert_int_equal(calls, 1);
}

static void expect_keys(const seen *ks, const char *const *keys, int n)
{
    if (ks->n != n) {
        for (int i = 0; i < ks->n; i++)
            print_message("  got '%s'\n", ks->keys[i]);
        fail_msg("expected %d keys, got %d", n, ks->n);
    }
    for (int i = 0; i < n; i++)
        assert_string_equal(ks->keys[i], keys[i]);
}

/* ---- tests ---- */

static void test_put_replace_delete(void **state)
{
    im_store *s = *state;
    seen ks = { 0 };
    each(s, "bot", "", &ks);
    assert_int_equal(ks.n, 0);
    put(s, "bot", "b", "two");
    put(s, "bot", "a", "one");
    put(s, "bot", "b", "TWO");
    each(s, "bot", NULL, &ks);
    expect_keys(&ks, (const char *[]){ "a", "b" }, 2);
    assert_string_equal(ks.values[0], "one");
    assert_string_equal(ks.values[1], "TWO");
    /* An empty value is a value. */
    put(s, "bot", "empty", "");
    each(s, "bot", "e", &ks);
    expect_keys(&ks, (const char *[]){ "empty" }, 1);
    assert_int_equal(ks.len[0], 0);
    /* NULL deletes, whatever len says; a missing key is fine. */
    int calls = 0;
    assert_int_equal(s->ops->kv_put(s, "bot", "b", NULL, 42, on_done, &calls, NULL), IM_OK);
    assert_int_equal(calls, 1);
    put(s, "bot", "never", NULL);
    put(s, "nobody", "never", NULL);
    /* done may be NULL. */
    assert_int_equal(s->ops->kv_put(s, "bot", "c", "3", 1, NULL, NULL, NULL), IM_OK);
    each(s, "bot", "", &ks);
    expect_keys(&ks, (const char *[]){ "a", "c", "empty" }, 3);
    /* Deleting the last key of a namespace leaves nothing behind. */
    put(s, "solo", "k", "v");
    put(s, "solo", "k", NULL);
    each(s, "solo", "", &ks);
    assert_int_equal(ks.n, 0);
    put(s, "solo", "k2", "v2");
    each(s, "solo", "", &ks);
    expect_keys(&ks, (const char *[]){ "k2" }, 1);

    /* Values are bytes, up to the limit. */
    static uint8_t big[IM_STORE_KV_VALUE_MAX + 1];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    assert_int_equal(s->ops->kv_put(s, "bot", "big", big, IM_STORE_KV_VALUE_MAX, NULL, NULL,
                                    NULL),
                     IM_OK);
    each(s, "bot", "big", &ks);
    assert_int_equal(ks.n, 1);
    assert_int_equal(ks.len[0], IM_STORE_KV_VALUE_MAX);
}

static void test_prefix_and_order(void **state)
{
    im_store *s = *state;
    /* In byte order; 0x7f, 0xff and UTF-8 sort by their bytes. */
    static const char *const all[] = {
        "a", "ab", "abc", "a\x7f", "a\xc2\x80", "p", "p\xff", "p\xff" "z", "p\xff\xff", "q",
        "\xc3\xa9", "\xc3\xa9" "a", "\xc3\xaa", "\xff",
    };
    int n = (int)(sizeof all / sizeof all[0]);
    for (int i = n; i-- > 0;)
        put(s, "bot", all[i], all[i]);
    put(s, "bo", "a", "elsewhere");
    put(s, "bot2", "ab", "elsewhere");
    seen ks = { 0 };
    each(s, "bot", "", &ks);
    expect_keys(&ks, all, n);
    each(s, "bot", "a", &ks);
    expect_keys(&ks, (const char *[]){ "a", "ab", "abc", "a\x7f", "a\xc2\x80" }, 5);
    each(s, "bot", "ab", &ks);
    expect_keys(&ks, (const char *[]){ "ab", "abc" }, 2);
    each(s, "bot", "p\xff", &ks);
    expect_keys(&ks, (const char *[]){ "p\xff", "p\xff" "z", "p\xff\xff" }, 3);
    each(s, "bot", "\xc3\xa9", &ks);
    expect_keys(&ks, (const char *[]){ "\xc3\xa9", "\xc3\xa9" "a" }, 2);
    each(s, "bot", "\xff", &ks);
    expect_keys(&ks, (const char *[]){ "\xff" }, 1);
    each(s, "bot", "abcd", &ks);
    assert_int_equal(ks.n, 0);
    each(s, "bo", "", &ks);
    expect_keys(&ks, (const char *[]){ "a" }, 1);
    assert_string_equal(ks.values[0], "elsewhere");
    /* Stopping: the count includes the key it stopped at. */
    ks.stop_at = 3;
    each(s, "bot", "", &ks);
    expect_keys(&ks, (const char *[]){ "a", "ab", "abc" }, 3);
}

static void test_refusals(void **state)
{
    im_store *s = *state;
    int calls = 0;
    im_error err = { 0 };
    char long_key[IM_STORE_KV_KEY_MAX + 2];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    static char big[IM_STORE_KV_VALUE_MAX + 1];
    assert_int_equal(s->ops->kv_put(s, "", "k", "v", 1, on_done, &calls, &err), IM_EINVAL);
    assert_int_equal(err.code, IM_EINVAL);
    assert_int_equal(s->ops->kv_put(s, NULL, "k", "v", 1, on_done, &calls, &err), IM_EINVAL);
    assert_int_equal(s->ops->kv_put(s, "bot", "", "v", 1, on_done, &calls, &err), IM_EINVAL);
    assert_int_equal(s->ops->kv_put(s, "bot", long_key, "v", 1, on_done, &calls, &err),
                     IM_EINVAL);
    assert_int_equal(s->ops->kv_put(s, long_key, "k", "v", 1, on_done, &calls, &err), IM_EINVAL);
    assert_int_equal(s->ops->kv_put(s, "bot", "k", big, sizeof big, on_done, &calls, &err),
                     IM_EINVAL);
    assert_int_equal(calls, 0);
    assert_int_equal(s->ops->kv_each(s, "", "", see, NULL, &err), IM_EINVAL);
    assert_int_equal(s->ops->kv_each(s, "bot", "", NULL, NULL, &err), IM_EINVAL);
    /* The longest key is fine. */
    long_key[IM_STORE_KV_KEY_MAX] = '\0';
    put(s, long_key, long_key, "edge");
    seen ks = { 0 };
    each(s, long_key, "", &ks);
    expect_keys(&ks, (const char *[]){ long_key }, 1);
}

/* A reader that writes: the port lets fn make requests. */
struct rewriter { im_store *s; int visits; };

static bool delete_and_add(void *arg, const char *key, const void *value, size_t len)
{
    (void)value, (void)len;
    struct rewriter *rw = arg;
    rw->visits++;
    char moved[IM_STORE_KV_KEY_MAX + 1];
    snprintf(moved, sizeof moved, "moved-%s", key);
    assert_int_equal(rw->s->ops->kv_put(rw->s, "bot", key, NULL, 0, NULL, NULL, NULL), IM_OK);
    assert_int_equal(rw->s->ops->kv_put(rw->s, "bot", moved, "x", 1, NULL, NULL, NULL), IM_OK);
    return true;
}

static void test_reader_writes(void **state)
{
    im_store *s = *state;
    put(s, "bot", "a", "1");
    put(s, "bot", "b", "2");
    struct rewriter rw = { .s = s };
    /* The read is of the map as it was when it started. */
    assert_int_equal(s->ops->kv_each(s, "bot", "", delete_and_add, &rw, NULL), 2);
    assert_int_equal(rw.visits, 2);
    seen ks = { 0 };
    each(s, "bot", "", &ks);
    expect_keys(&ks, (const char *[]){ "moved-a", "moved-b" }, 2);
}

/* Workers writing and reading at once, each in its own part of the map. */
#define WORKERS 4
#define PER_WORKER 300

struct worker { im_store *s; int id; int bad; };

static bool count_one(void *arg, const char *key, const void *value, size_t len)
{
    (void)key, (void)value, (void)len;
    ++*(int *)arg;
    return true;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < PER_WORKER; i++) {
        char key[32];
        snprintf(key, sizeof key, "w%d-%04d", w->id, i);
        if (w->s->ops->kv_put(w->s, "shared", key, key, strlen(key), NULL, NULL, NULL) != IM_OK)
            w->bad++;
        /* Every other one is deleted again. */
        if (i % 2 && w->s->ops->kv_put(w->s, "shared", key, NULL, 0, NULL, NULL, NULL) != IM_OK)
            w->bad++;
        if (i % 50 == 0) {
            char prefix[8];
            snprintf(prefix, sizeof prefix, "w%d-", w->id);
            int n = 0;
            if (w->s->ops->kv_each(w->s, "shared", prefix, count_one, &n, NULL) != n ||
                n != i / 2 + 1)
                w->bad++;
        }
    }
    return NULL;
}

static void test_workers(void **state)
{
    im_store *s = *state;
    pthread_t t[WORKERS];
    struct worker w[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        w[i] = (struct worker){ .s = s, .id = i };
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].bad, 0);
    }
    int n = 0;
    assert_int_equal(s->ops->kv_each(s, "shared", "", count_one, &n, NULL),
                     WORKERS * PER_WORKER / 2);
}

/* Memory means memory: a new store starts empty. */
static void test_nothing_survives(void **state)
{
    im_store *s = *state;
    put(s, "bot", "a", "1");
    im_store *again = NULL;
    assert_int_equal(im_memory_store_new(&again, NULL), IM_OK);
    seen ks = { 0 };
    each(again, "bot", "", &ks);
    assert_int_equal(ks.n, 0);
    im_store_destroy(again);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_put_replace_delete),
        T(test_prefix_and_order),
        T(test_refusals),
        T(test_reader_writes),
        T(test_workers),
        T(test_nothing_survives),
    };
    return cmocka_run_group_tests_name("memory_store", tests, NULL, NULL);
}
