/* tests/infrastructure/test_memory_groups.c: the memory group repository:
 * listings in id order from a cursor, private groups listed only for those
 * who may see them, every index kept in step through changes and deletion,
 * the creator quota, and what a page of a listing costs (tree nodes
 * touched, counted by the repository: O(log n) plus the page, however many
 * groups exist or are hidden from the lister). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "im_memory_store.h"

static int setup(void **state)
{
    im_group_repo *r = NULL;
    if (im_memory_group_repo_new(&r, NULL) != IM_OK)
        return -1;
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    im_group_repo *r = *state;
    r->ops->destroy(r);
    return 0;
}

/* ---- helpers ---- */

static int add(im_group_repo *r, const char *id, const char *owner, unsigned flags,
               size_t max_created)
{
    im_group *g = NULL;
    assert_int_equal(im_group_new_flags(id, owner, 100, flags, &g, NULL), IM_OK);
    return r->ops->insert(r, g, max_created, NULL);
}

typedef struct listing {
    char ids[64][IM_USER_ID_MAX + 1];
    size_t n, stop_after;      /* stop_after 0: take everything */
    size_t total;
} listing;

static bool take(void *arg, const im_group *g)
{
    listing *l = arg;
    if (l->stop_after && l->n == l->stop_after)
        return false;
    assert_true(l->n < 64);
    snprintf(l->ids[l->n++], sizeof l->ids[0], "%s", im_group_id(g));
    return true;
}

static listing list(im_group_repo *r, const char *user, const char *after, size_t stop_after)
{
    listing l = { .stop_after = stop_after };
    l.total = r->ops->visit(r, user, after, take, &l);
    return l;
}

#define ASSERT_LISTED(l, ...)                                                      \
    do {                                                                           \
        const char *const want_[] = { __VA_ARGS__ };                               \
        size_t n_ = sizeof want_ / sizeof want_[0];                                \
        assert_int_equal((l).n, n_);                                               \
        for (size_t i_ = 0; i_ < n_; i_++)                                         \
            assert_string_equal((l).ids[i_], want_[i_]);                           \
    } while (0)

static int invite_fn(void *arg, im_group *g, im_error *err)
{
    return im_group_add_invite(g, arg, err);
}

static int join_fn(void *arg, im_group *g, im_error *err)
{
    return im_group_add_member(g, arg, err);
}

static int leave_fn(void *arg, im_group *g, im_error *err)
{
    return im_group_remove_member(g, arg, err);
}

static int uninvite_fn(void *arg, im_group *g, im_error *err)
{
    return im_group_remove_invite(g, arg, err);
}

static int refuse_fn(void *arg, im_group *g, im_error *err)
{
    (void)arg, (void)g;
    return im_error_set(err, IM_EPERM, "no");
}

static int ok_fn(void *arg, im_group *g, im_error *err)
{
    (void)arg, (void)g, (void)err;
    return IM_OK;
}

/* ---- listings ---- */

static void test_visit_in_id_order_from_a_cursor(void **state)
{
    im_group_repo *r = *state;
    const char *ids[] = { "echo", "alpha", "delta", "bravo", "charlie", "Zulu" };
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(add(r, ids[i], "alice", 0, 0), IM_OK);
    assert_int_equal(add(r, "alpha", "bob", 0, 0), IM_EEXIST);
    listing l = list(r, "bob", NULL, 0);
    ASSERT_LISTED(l, "Zulu", "alpha", "bravo", "charlie", "delta", "echo"); /* bytewise */
    assert_int_equal(l.total, 6);
    l = list(r, "bob", "bravo", 0);
    ASSERT_LISTED(l, "charlie", "delta", "echo");
    l = list(r, "bob", "c", 2);
    ASSERT_LISTED(l, "charlie", "delta");
    assert_int_equal(l.total, 6);
    l = list(r, "bob", "echo", 0);
    assert_int_equal(l.n, 0);
    l = list(r, "bob", "", 1);
    ASSERT_LISTED(l, "Zulu");
}

static void test_private_groups_listed_for_those_who_see_them(void **state)
{
    im_group_repo *r = *state;
    assert_int_equal(add(r, "pub-b", "alice", 0, 0), IM_OK);
    assert_int_equal(add(r, "priv-a", "alice", IM_GROUP_PRIVATE, 0), IM_OK);
    assert_int_equal(add(r, "priv-c", "carol", IM_GROUP_PRIVATE, 0), IM_OK);
    listing l = list(r, "alice", NULL, 0);
    ASSERT_LISTED(l, "priv-a", "pub-b");
    assert_int_equal(l.total, 2);
    l = list(r, "bob", NULL, 0);
    ASSERT_LISTED(l, "pub-b");
    assert_int_equal(l.total, 1); /* the count hides them too */

    /* Invited, bob sees it; a member, still; removed, no more. */
    assert_int_equal(r->ops->update(r, "priv-c", "bob", invite_fn, "bob", NULL), IM_OK);
    l = list(r, "bob", NULL, 0);
    ASSERT_LISTED(l, "priv-c", "pub-b");
    assert_int_equal(r->ops->update(r, "priv-c", "bob", join_fn, "bob", NULL), IM_OK);
    l = list(r, "bob", "priv-a", 0);
    ASSERT_LISTED(l, "priv-c", "pub-b");
    assert_int_equal(l.total, 2);
    assert_int_equal(r->ops->update(r, "priv-c", "bob", leave_fn, "bob", NULL), IM_OK);
    l = list(r, "bob", NULL, 0);
    ASSERT_LISTED(l, "pub-b");
    /* A refused change changes no listing. */
    assert_int_equal(r->ops->update(r, "priv-c", "bob", leave_fn, "bob", NULL), IM_ENOTMEMBER);
    assert_int_equal(r->ops->update(r, "priv-c", "bob", invite_fn, "bob", NULL), IM_OK);
    assert_int_equal(r->ops->update(r, "priv-c", "bob", uninvite_fn, "bob", NULL), IM_OK);
    l = list(r, "bob", NULL, 0);
    ASSERT_LISTED(l, "pub-b");
    l = list(r, "carol", NULL, 0);
    ASSERT_LISTED(l, "priv-c", "pub-b");
}

/* A deleted private group leaves the listings of everyone who saw it,
 * members and invited alike (the sanitizer build catches a set that kept a
 * pointer to it). */
static void test_deleted_group_leaves_every_listing(void **state)
{
    im_group_repo *r = *state;
    assert_int_equal(add(r, "club", "alice", IM_GROUP_PRIVATE, 0), IM_OK);
    assert_int_equal(r->ops->update(r, "club", "bob", invite_fn, "bob", NULL), IM_OK);
    assert_int_equal(r->ops->update(r, "club", "bob", join_fn, "bob", NULL), IM_OK);
    assert_int_equal(r->ops->update(r, "club", "dave", invite_fn, "dave", NULL), IM_OK);
    assert_int_equal(r->ops->update(r, "club", "bob", leave_fn, "bob", NULL), IM_OK);
    /* The last member out empties it: deleted, with dave still invited. */
    assert_int_equal(r->ops->update(r, "club", "alice", leave_fn, "alice", NULL), IM_OK);
    assert_int_equal(r->ops->read(r, "club", NULL, NULL, NULL), IM_ENOGROUP);
    assert_int_equal(list(r, "dave", NULL, 0).total, 0);
    assert_int_equal(list(r, "alice", NULL, 0).total, 0);
    /* The id is free again, and the new group is listed afresh. */
    assert_int_equal(add(r, "club", "erin", IM_GROUP_PRIVATE, 0), IM_OK);
    assert_int_equal(list(r, "dave", NULL, 0).total, 0);
    listing l = list(r, "erin", NULL, 0);
    ASSERT_LISTED(l, "club");
}

static void test_remove_hands_the_group_back(void **state)
{
    im_group_repo *r = *state;
    assert_int_equal(add(r, "club", "alice", IM_GROUP_PRIVATE, 1), IM_OK);
    assert_int_equal(r->ops->update(r, "club", "bob", invite_fn, "bob", NULL), IM_OK);
    im_group *g = (im_group *)&g;
    assert_int_equal(r->ops->remove(r, "club", refuse_fn, NULL, &g, NULL), IM_EPERM);
    assert_null(g);
    assert_int_equal(list(r, "bob", NULL, 0).total, 1);
    assert_int_equal(r->ops->remove(r, "nope", ok_fn, NULL, &g, NULL), IM_ENOGROUP);
    assert_int_equal(r->ops->remove(r, "club", ok_fn, NULL, &g, NULL), IM_OK);
    assert_non_null(g);
    assert_int_equal(list(r, "bob", NULL, 0).total, 0);
    assert_int_equal(list(r, "alice", NULL, 0).total, 0);
    /* Put back (a delete the store refused), it is listed as before. */
    assert_int_equal(r->ops->insert(r, g, 0, NULL), IM_OK);
    assert_int_equal(list(r, "bob", NULL, 0).total, 1); /* still invited */
    /* Out, its creator's quota is free again; putting it back counts. */
    assert_int_equal(r->ops->remove(r, "club", ok_fn, NULL, &g, NULL), IM_OK);
    assert_int_equal(add(r, "other", "alice", 0, 1), IM_OK);
    assert_int_equal(r->ops->insert(r, g, 1, NULL), IM_EQUOTA); /* freed on failure */
    assert_int_equal(r->ops->read(r, "club", NULL, NULL, NULL), IM_ENOGROUP);
    assert_int_equal(list(r, "bob", NULL, 0).total, 1); /* "other" */
}

static void test_creator_quota(void **state)
{
    im_group_repo *r = *state;
    char id[16];
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof id, "g%d", i);
        assert_int_equal(add(r, id, "alice", i == 1 ? IM_GROUP_PRIVATE : 0, 3), IM_OK);
    }
    im_error err = { 0 };
    im_group *g = NULL;
    assert_int_equal(im_group_new("g3", "alice", 10, &g, NULL), IM_OK);
    assert_int_equal(r->ops->insert(r, g, 3, &err), IM_EQUOTA);
    assert_non_null(strstr(err.msg, "alice"));
    assert_int_equal(add(r, "b0", "bob", 0, 3), IM_OK); /* each creator counts alone */
    assert_int_equal(add(r, "g3", "alice", 0, 0), IM_OK); /* no quota: loading */
    assert_int_equal(add(r, "g4", "alice", 0, 4), IM_EQUOTA);
    /* Ownership passing on keeps the creator's count: the creator pays. */
    assert_int_equal(r->ops->update(r, "g0", "bob", join_fn, "bob", NULL), IM_OK);
    assert_int_equal(r->ops->update(r, "g0", "alice", leave_fn, "alice", NULL), IM_OK);
    assert_int_equal(add(r, "g4", "alice", 0, 4), IM_EQUOTA);
    /* A group deleted frees a place. */
    assert_int_equal(r->ops->update(r, "g2", "alice", leave_fn, "alice", NULL), IM_OK);
    assert_int_equal(add(r, "g4", "alice", 0, 4), IM_OK);
}

/* ---- what a page costs ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 100,000 public groups and 100,000 private ones of someone else: a page
 * of 10 from the middle touches a few dozen tree nodes, not 200,000. */
static void test_a_page_costs_the_page(void **state)
{
    im_group_repo *r = *state;
    enum { N = 100000 };
    char id[16];
    for (unsigned i = 0; i < N; i++) {
        snprintf(id, sizeof id, "g%06u", (i * 7919u) % N); /* not in order */
        assert_int_equal(add(r, id, "owner", 0, 0), IM_OK);
        snprintf(id, sizeof id, "h%06u", i);
        assert_int_equal(add(r, id, "hider", IM_GROUP_PRIVATE, 0), IM_OK);
        snprintf(id, sizeof id, "f%06u", i);
        if (i % 1000 == 0) /* a few private ones the lister is in */
            assert_int_equal(add(r, id, "lister", IM_GROUP_PRIVATE, 0), IM_OK);
    }
    size_t before = im_memory_group_repo_steps(r);
    listing l = list(r, "lister", "g050000", 10);
    size_t steps = im_memory_group_repo_steps(r) - before;
    assert_int_equal(l.n, 10);
    assert_string_equal(l.ids[0], "g050001");
    assert_string_equal(l.ids[9], "g050010");
    assert_int_equal(l.total, N + N / 1000);
    /* Two trees: the start costs their heights (under 1.44 log2 n each),
     * each entry taken one step amortized, a few more for the spines. */
    printf("# a page of 10 after g050000 of %u groups: %zu tree nodes touched\n",
           2 * N + N / 1000, steps);
    assert_true(steps <= 120);

    /* The private groups the lister is in are merged in at their place. */
    l = list(r, "lister", "f049999", 3);
    ASSERT_LISTED(l, "f050000", "f051000", "f052000");
    l = list(r, "hider", "g099998", 3);
    ASSERT_LISTED(l, "g099999", "h000000", "h000001");
    assert_int_equal(l.total, 2 * N);

    /* The time of a page of 1000, for the record (not checked: timing). */
    before = im_memory_group_repo_steps(r);
    double t0 = now_s();
    listing big = { .stop_after = 0 };
    size_t pages = 0;
    for (unsigned k = 0; k < 100; k++) {
        big.n = 0;
        big.stop_after = 64;
        r->ops->visit(r, "lister", "g030000", take, &big);
        pages++;
    }
    double dt = (now_s() - t0) / (double)pages;
    printf("# a page of 64 of %u groups: %.1f us, %zu nodes\n", 2 * N + N / 1000, dt * 1e6,
           (im_memory_group_repo_steps(r) - before) / pages);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_visit_in_id_order_from_a_cursor),
        T(test_private_groups_listed_for_those_who_see_them),
        T(test_deleted_group_leaves_every_listing),
        T(test_remove_hands_the_group_back),
        T(test_creator_quota),
        T(test_a_page_costs_the_page),
    };
    return cmocka_run_group_tests_name("memory_groups", tests, NULL, NULL);
}
