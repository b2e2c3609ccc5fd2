/* tests/domain/test_group.c: group creation, membership, ownership hand-over,
 * private groups (invitations, what only the owner may do, what outsiders
 * see), members' since, and (where the linker allows) allocation-failure
 * sweeps in the style of SQLite's and libuv's: fail the Nth allocation,
 * check the call reports IM_ENOMEM and leaves the group as it was, until the
 * operation succeeds. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "domain/group.h"

/* ---- allocation faults (GNU ld --wrap; see tests/domain/CMakeLists.txt) ---- */

#ifdef IMCORE_TEST_ALLOC_FAULTS
/* 0: allocations succeed. n > 0: the nth allocation from now fails, and every
 * later one succeeds again, so exactly one failure is injected per run. */
static unsigned long fail_countdown;
static unsigned long alloc_calls;
/* Nonzero: the next allocation of exactly this many bytes fails (once). */
static size_t fail_size;

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);

static int should_fail(void)
{
    alloc_calls++;
    return fail_countdown != 0 && --fail_countdown == 0;
}

static int size_fails(size_t n)
{
    if (fail_size == 0 || n != fail_size)
        return 0;
    fail_size = 0;
    return 1;
}

void *__wrap_malloc(size_t n)
{
    return should_fail() || size_fails(n) ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t k, size_t n)
{
    return should_fail() || size_fails(k * n) ? NULL : __real_calloc(k, n);
}

void *__wrap_realloc(void *p, size_t n)
{
    return should_fail() || size_fails(n) ? NULL : __real_realloc(p, n);
}
#endif

/* ---- helpers ---- */

static im_group *new_group(const char *id, const char *owner, uint32_t max)
{
    im_group *g = NULL;
    im_error err = { 0 };
    int rc = im_group_new(id, owner, max, &g, &err);
    if (rc != IM_OK)
        fail_msg("im_group_new(%s, %s, %u): %s", id, owner, max, err.msg);
    assert_non_null(g);
    return g;
}

/* Asserts that g's members are exactly ids, in that order, and that the
 * owner is the first of them. */
static void assert_members(const im_group *g, const char *const *ids, size_t n)
{
    assert_int_equal(im_group_member_count(g), n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(im_group_member(g, i), ids[i]);
        assert_true(im_group_is_member(g, ids[i]));
    }
    assert_null(im_group_member(g, n));
    assert_string_equal(im_group_owner(g), n ? ids[0] : "");
    assert_int_equal(im_group_is_empty(g), n == 0);
}

#define ASSERT_MEMBERS(g, ...)                                                     \
    do {                                                                           \
        const char *const ids_[] = { __VA_ARGS__ };                                \
        assert_members((g), ids_, sizeof ids_ / sizeof ids_[0]);                   \
    } while (0)

static void user_name(char *buf, size_t size, unsigned i)
{
    snprintf(buf, size, "user%u", i);
}

/* ---- creation ---- */

static void create_owner_is_first_member(void **state)
{
    (void)state;
    im_group *g = new_group("friends", "alice", 10);
    assert_string_equal(im_group_id(g), "friends");
    assert_string_equal(im_group_owner(g), "alice");
    assert_int_equal(im_group_max_members(g), 10);
    assert_true(im_group_is_member(g, "alice"));
    assert_false(im_group_is_full(g));
    ASSERT_MEMBERS(g, "alice");
    im_group_free(g);
}

static void create_copies_its_strings(void **state)
{
    (void)state;
    char id[] = "grp", owner[] = "own";
    im_group *g = new_group(id, owner, 5);
    id[0] = 'X';
    owner[0] = 'X';
    assert_string_equal(im_group_id(g), "grp");
    assert_string_equal(im_group_owner(g), "own");
    im_group_free(g);
}

static void create_validates_ids(void **state)
{
    (void)state;
    char too_long[IM_USER_ID_MAX + 2];
    memset(too_long, 'x', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    const char *bad[] = { "", NULL, ".g", "-g", "g h", "g:h", too_long };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        im_group *g = (im_group *)&g; /* any non-NULL value: it must be reset */
        im_error err = { 0 };
        assert_int_equal(im_group_new(bad[i], "alice", 10, &g, &err), IM_EINVAL);
        assert_int_equal(err.code, IM_EINVAL);
        assert_null(g);

        g = (im_group *)&g;
        memset(&err, 0, sizeof err);
        assert_int_equal(im_group_new("grp", bad[i], 10, &g, &err), IM_EINVAL);
        assert_int_equal(err.code, IM_EINVAL);
        assert_null(g);
    }
}

static void create_id_of_32_ok(void **state)
{
    (void)state;
    char id[IM_USER_ID_MAX + 1];
    memset(id, 'g', IM_USER_ID_MAX);
    id[IM_USER_ID_MAX] = '\0';
    im_group *g = new_group(id, id, 1);
    assert_string_equal(im_group_id(g), id);
    assert_string_equal(im_group_owner(g), id);
    im_group_free(g);
}

static void create_max_members_bounds(void **state)
{
    (void)state;
    im_group *g = NULL;
    im_error err = { 0 };
    assert_int_equal(im_group_new("g", "alice", 0, &g, &err), IM_EINVAL);
    assert_int_equal(err.code, IM_EINVAL);
    assert_null(g);
    assert_int_equal(im_group_new("g", "alice", IM_GROUP_MAX_MEMBERS_LIMIT + 1, &g, NULL),
                     IM_EINVAL);
    assert_null(g);
    assert_int_equal(im_group_new("g", "alice", UINT32_MAX, &g, NULL), IM_EINVAL);
    assert_null(g);

    g = new_group("g", "alice", IM_GROUP_MAX_MEMBERS_LIMIT);
    assert_int_equal(im_group_max_members(g), IM_GROUP_MAX_MEMBERS_LIMIT);
    im_group_free(g);

    /* A group of one is full from the start. */
    g = new_group("g", "alice", 1);
    assert_true(im_group_is_full(g));
    im_group_free(g);
}

static void create_without_out_refused(void **state)
{
    (void)state;
    assert_int_equal(im_group_new("g", "alice", 3, NULL, NULL), IM_EINVAL);
}

static void free_null_is_fine(void **state)
{
    (void)state;
    im_group_free(NULL);
}

/* ---- joining ---- */

static void join_keeps_order(void **state)
{
    (void)state;
    im_group *g = new_group("g", "alice", 10);
    assert_int_equal(im_group_add_member(g, "bob", NULL), IM_OK);
    assert_int_equal(im_group_add_member(g, "carol", NULL), IM_OK);
    assert_int_equal(im_group_add_member(g, "Alice", NULL), IM_OK); /* case matters */
    ASSERT_MEMBERS(g, "alice", "bob", "carol", "Alice");
    assert_false(im_group_is_member(g, "dave"));
    assert_false(im_group_is_member(g, ""));
    assert_false(im_group_is_member(g, NULL));
    assert_false(im_group_is_member(g, "ALICE"));
    assert_false(im_group_is_member(g, "al"));
    assert_false(im_group_is_member(g, "alicex"));
    im_group_free(g);
}

static void join_copies_the_id(void **state)
{
    (void)state;
    im_group *g = new_group("g", "alice", 10);
    char id[] = "bob";
    assert_int_equal(im_group_add_member(g, id, NULL), IM_OK);
    id[0] = 'X';
    assert_true(im_group_is_member(g, "bob"));
    assert_false(im_group_is_member(g, "Xob"));
    im_group_free(g);
}

static void join_twice_refused_unchanged(void **state)
{
    (void)state;
    im_group *g = new_group("g", "alice", 10);
    assert_int_equal(im_group_add_member(g, "bob", NULL), IM_OK);
    im_error err = { 0 };
    assert_int_equal(im_group_add_member(g, "bob", &err), IM_EMEMBER);
    assert_int_equal(err.code, IM_EMEMBER);
    assert_int_equal(im_group_add_member(g, "alice", NULL), IM_EMEMBER);
    ASSERT_MEMBERS(g, "alice", "bob");
    im_group_free(g);
}

static void join_bad_id_refused_unchanged(void **state)
{
    (void)state;
    im_group *g = new_group("g", "alice", 10);
    const char *bad[] = { "", NULL, ".x", "-x", "a b", "\xc3\xa9" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        im_error err = { 0 };
        assert_int_equal(im_group_add_member(g, bad[i], &err), IM_EINVAL);
        assert_int_equal(err.code, IM_EINVAL);
        ASSERT_MEMBERS(g, "alice");
    }
    im_group_free(g);
}

static void join_full_refused_unchanged(void **state)
{
    (void)state;
    im_group *g = new_group("g", "alice", 3);
    assert_int_equal(im_group_add_member(g, "bob", NULL), IM_OK);
    assert_false(im_group_is_full(g));
    assert_int_equal(im_group_add_member(g, "carol", NULL), IM_OK);
    assert_true(im_group_is_full(g));
    im_error err = { 0 };
    assert_int_equal(im_group_add_member(g, "dave", &err), IM_EFULL);
    assert_int_equal(err.code, IM_EFULL);
    ASSERT_MEMBERS(g, "alice", "bob", "carol");
    /* A member re-joining a full group is told it is a member, not that the
     * group is full: that is the more useful answer. */
    assert_int_equal(im_group_add_member(g, "bob", NULL), IM_EMEMBER);
    /* A leave makes room again. */
    assert_int_equal(im_group_remove_member(g, "bob", NULL), IM_OK);
    assert_false(im_group_is_full(g));
    assert_int_equal(im_group_add_member(g, "dave", NULL), IM_OK);
    ASSERT_MEMBERS(g, "alice", "carol", "dave");
    im_group_free(g);
}

/* ---- leaving ---- */

static void leave_by_non_member_refused_unchanged(void **state)
{
    (void)state;
    im_group *g = new_group("g", "alice", 10);
    assert_int_equal(im_group_add_member(g, "bob", NULL), IM_OK);
    const char *outsiders[] = { "carol", "", NULL, "Bob", "bo", "bobb", ".bad", "a b" };
    for (size_t i = 0; i < sizeof outsiders / sizeof outsiders[0]; i++) {
        im_error err = { 0 };
        assert_int_equal(im_group_remove_member(g, outsiders[i], &err), IM_ENOTMEMBER);
        assert_int_equal(err.code, IM_ENOTMEMBER);
        ASSERT_MEMBERS(g, "alice", "bob");
    }
    im_group_free(g);
}

static void leave_twice_refused(void **state)
{
    (void)state;
    im_group *g = new_group("g", "alice", 10);
    assert_int_equal(im_group_add_member(g, "bob", NULL), IM_OK);
    assert_int_equal(im_group_remove_member(g, "bob", NULL), IM_OK);
    assert_int_equal(im_group_remove_member(g, "bob", NULL), IM_ENOTMEMBER);
    ASSERT_MEMBERS(g, "alice");
    im_group_free(g);
}

static void non_owner_leaving_keeps_owner_and_order(void **state)
{
    (void)state;
    im_group *g = new_group("g", "alice", 10);
    assert_int_equal(im_group_add_member(g, "bob", NULL), IM_OK);
    assert_int_equal(im_group_add_member(g, "carol", NULL), IM_OK);
    assert_int_equal(im_group_add_member(g, "dave", NULL), IM_OK);
    assert_int_equal(im_group_remove_member(g, "carol", NULL), IM_OK);
    ASSERT_MEMBERS(g, "alice", "bob", "dave");
    assert_int_equal(im_group_remove_member(g, "dave", NULL), IM_OK); /* the last one */
    ASSERT_MEMBERS(g, "alice", "bob");
    im_group_free(g);
}

static void owner_leaving_passes_to_earliest_remaining(void **state)
{
    (void)state;
    im_group *g = new_group("g", "alice", 10);
    assert_int_equal(im_group_add_member(g, "bob", NULL), IM_OK);
    assert_int_equal(im_group_add_member(g, "carol", NULL), IM_OK);
    assert_int_equal(im_group_add_member(g, "dave", NULL), IM_OK);
    /* bob, the next in line, leaves first: he must not inherit later. */
    assert_int_equal(im_group_remove_member(g, "bob", NULL), IM_OK);
    assert_string_equal(im_group_owner(g), "alice");
    assert_int_equal(im_group_remove_member(g, "alice", NULL), IM_OK);
    assert_string_equal(im_group_owner(g), "carol");
    ASSERT_MEMBERS(g, "carol", "dave");
    /* alice re-joins: she is now the newest member, not the owner. */
    assert_int_equal(im_group_add_member(g, "alice", NULL), IM_OK);
    ASSERT_MEMBERS(g, "carol", "dave", "alice");
    assert_int_equal(im_group_remove_member(g, "carol", NULL), IM_OK);
    assert_string_equal(im_group_owner(g), "dave");
    assert_int_equal(im_group_remove_member(g, "dave", NULL), IM_OK);
    assert_string_equal(im_group_owner(g), "alice");
    ASSERT_MEMBERS(g, "alice");
    im_group_free(g);
}

static void last_leave_empties(void **state)
{
    (void)state;
    im_group *g = new_group("g", "alice", 10);
    assert_int_equal(im_group_add_member(g, "bob", NULL), IM_OK);
    assert_int_equal(im_group_remove_member(g, "alice", NULL), IM_OK);
    assert_false(im_group_is_empty(g));
    assert_int_equal(im_group_remove_member(g, "bob", NULL), IM_OK);
    assert_true(im_group_is_empty(g));
    assert_int_equal(im_group_member_count(g), 0);
    assert_string_equal(im_group_owner(g), "");
    assert_null(im_group_member(g, 0));
    assert_false(im_group_is_full(g));
    assert_false(im_group_is_member(g, "alice"));
    assert_int_equal(im_group_remove_member(g, "alice", NULL), IM_ENOTMEMBER);
    /* The id and the limit outlive the members. */
    assert_string_equal(im_group_id(g), "g");
    assert_int_equal(im_group_max_members(g), 10);
    im_group_free(g);
}

static void free_with_members_releases_all(void **state)
{
    (void)state;
    /* LeakSanitizer checks this one: every member copy must be freed. */
    im_group *g = new_group("g", "alice", 100);
    char name[16];
    for (unsigned i = 0; i < 37; i++) {
        user_name(name, sizeof name, i);
        assert_int_equal(im_group_add_member(g, name, NULL), IM_OK);
    }
    im_group_free(g);
}

/* ---- scale ---- */

static void thousand_members(void **state)
{
    (void)state;
    const unsigned n = 1000;
    im_group *g = new_group("big", "user0", n);
    char name[16];
    for (unsigned i = 1; i < n; i++) {
        user_name(name, sizeof name, i);
        assert_int_equal(im_group_add_member(g, name, NULL), IM_OK);
    }
    assert_int_equal(im_group_member_count(g), n);
    assert_true(im_group_is_full(g));
    assert_int_equal(im_group_add_member(g, "late", NULL), IM_EFULL);
    for (unsigned i = 0; i < n; i++) {
        user_name(name, sizeof name, i);
        assert_string_equal(im_group_member(g, i), name);
        assert_true(im_group_is_member(g, name));
    }
    /* Remove every even member, then check order and ownership of the rest. */
    for (unsigned i = 0; i < n; i += 2) {
        user_name(name, sizeof name, i);
        assert_int_equal(im_group_remove_member(g, name, NULL), IM_OK);
    }
    assert_int_equal(im_group_member_count(g), n / 2);
    assert_string_equal(im_group_owner(g), "user1");
    for (unsigned i = 0; i < n / 2; i++) {
        user_name(name, sizeof name, 2 * i + 1);
        assert_string_equal(im_group_member(g, i), name);
    }
    for (unsigned i = 0; i < n; i += 2) {
        user_name(name, sizeof name, i);
        assert_false(im_group_is_member(g, name));
    }
    /* Empty it from the front: ownership walks down the join order. */
    for (unsigned i = 1; i < n; i += 2) {
        user_name(name, sizeof name, i);
        assert_string_equal(im_group_owner(g), name);
        assert_int_equal(im_group_remove_member(g, name, NULL), IM_OK);
    }
    assert_true(im_group_is_empty(g));
    im_group_free(g);
}

/* Lookups by name go through the member index: after leaves in an
 * unordered pattern (clusters in the hash table broken up, positions
 * shifted down) every remaining member is found at its own place (its
 * since says which), every one who left is not, and they can join again. */
static void index_follows_leaves_and_joins(void **state)
{
    (void)state;
    const unsigned n = 5000;
    im_group *g = new_group("big", "user0", n);
    char name[16];
    for (unsigned i = 1; i < n; i++) {
        user_name(name, sizeof name, i);
        assert_int_equal(im_group_add_member(g, name, NULL), IM_OK);
    }
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(im_group_set_member_since_at(g, i, i, NULL), IM_OK);
    static bool gone[5000];
    memset(gone, 0, sizeof gone);
    /* 3001 is prime to n: i * 3001 % n visits members in a scattered order. */
    for (unsigned k = 0; k < n * 2 / 3; k++) {
        unsigned i = (unsigned)((k * 3001ul) % n);
        user_name(name, sizeof name, i);
        assert_int_equal(im_group_remove_member(g, name, NULL), IM_OK);
        gone[i] = true;
        if (k % 500 == 0) {
            for (unsigned j = 0; j < n; j++) {
                user_name(name, sizeof name, j);
                assert_int_equal(im_group_is_member(g, name), !gone[j]);
            }
        }
    }
    size_t pos = 0;
    for (unsigned i = 0; i < n; i++) {
        user_name(name, sizeof name, i);
        assert_int_equal(im_group_is_member(g, name), !gone[i]);
        if (gone[i]) {
            assert_int_equal(im_group_member_since(g, name), IM_GROUP_SINCE_UNKNOWN);
            continue;
        }
        assert_int_equal(im_group_member_since(g, name), i);
        assert_string_equal(im_group_member(g, pos++), name);
    }
    assert_int_equal(im_group_member_count(g), pos);
    /* Those who left join again, at the end of the join order. */
    for (unsigned i = 0; i < n; i++) {
        if (!gone[i])
            continue;
        user_name(name, sizeof name, i);
        assert_int_equal(im_group_add_member(g, name, NULL), IM_OK);
        assert_int_equal(im_group_set_member_since(g, name, 100000u + i, NULL), IM_OK);
        assert_string_equal(im_group_member(g, im_group_member_count(g) - 1), name);
    }
    assert_true(im_group_is_full(g));
    for (unsigned i = 0; i < n; i++) {
        user_name(name, sizeof name, i);
        assert_true(im_group_is_member(g, name));
        assert_int_equal(im_group_member_since(g, name), gone[i] ? 100000u + i : i);
    }
    assert_false(im_group_is_member(g, "user5000"));
    assert_false(im_group_is_member(g, "nobody"));
    im_group_free(g);
}

/* A group at the largest size imcore allows: built one join at a time
 * (each join asks whether the user is in already), then asked once for
 * every member and as many outsiders. */
static void largest_group_lookups(void **state)
{
    (void)state;
    const unsigned n = IM_GROUP_MAX_MEMBERS_LIMIT;
    im_group *g = new_group("huge", "user0", n);
    char name[16];
    for (unsigned i = 1; i < n; i++) {
        user_name(name, sizeof name, i);
        assert_int_equal(im_group_join(g, name, NULL), IM_OK);
    }
    assert_true(im_group_is_full(g));
    for (unsigned i = 0; i < n; i++) {
        user_name(name, sizeof name, i);
        assert_true(im_group_is_member(g, name));
        snprintf(name, sizeof name, "other%u", i);
        assert_false(im_group_is_member(g, name));
    }
    im_group_free(g);
}

static void rejoin_after_empty(void **state)
{
    (void)state;
    /* The repository deletes empty groups, but until it does a join works
     * and the joiner owns the group. */
    im_group *g = new_group("g", "alice", 2);
    assert_int_equal(im_group_remove_member(g, "alice", NULL), IM_OK);
    assert_true(im_group_is_empty(g));
    assert_int_equal(im_group_add_member(g, "bob", NULL), IM_OK);
    ASSERT_MEMBERS(g, "bob");
    im_group_free(g);
}


/* ---- private groups, owners and invitations ---- */

static im_group *private_group(const char *id, const char *owner, uint32_t max)
{
    im_group *g = NULL;
    im_error err = { 0 };
    if (im_group_new_flags(id, owner, max, IM_GROUP_PRIVATE, &g, &err) != IM_OK)
        fail_msg("im_group_new_flags(%s): %s", id, err.msg);
    return g;
}

static void flags_are_fixed_at_creation(void **state)
{
    (void)state;
    im_group *g = NULL;
    assert_int_equal(im_group_new_flags("g", "alice", 5, 4u, &g, NULL), IM_EINVAL);
    assert_null(g);
    g = new_group("pub", "alice", 5);
    assert_false(im_group_is_private(g));
    assert_false(im_group_shares_history(g));
    assert_int_equal(im_group_flags(g), 0);
    im_group_free(g);
    assert_int_equal(im_group_new_flags("g", "alice", 5, IM_GROUP_FLAGS_ALL, &g, NULL), IM_OK);
    assert_true(im_group_is_private(g));
    assert_true(im_group_shares_history(g));
    assert_string_equal(im_group_creator(g), "alice");
    im_group_free(g);
}

static void private_join_needs_an_invitation(void **state)
{
    (void)state;
    im_group *g = private_group("club", "alice", 10);
    im_error err = { 0 };
    /* Not invited: as if the group did not exist. */
    assert_int_equal(im_group_join(g, "bob", &err), IM_ENOGROUP);
    assert_null(strstr(err.msg, "alice")); /* nothing about who is in it */
    assert_false(im_group_may_see(g, "bob"));
    assert_int_equal(im_group_invite(g, "alice", "bob", NULL), IM_OK);
    assert_true(im_group_is_invited(g, "bob"));
    assert_true(im_group_may_see(g, "bob"));
    assert_int_equal(im_group_invite(g, "alice", "bob", NULL), IM_OK); /* again: no change */
    assert_int_equal(im_group_invited_count(g), 1);
    assert_int_equal(im_group_join(g, "bob", NULL), IM_OK);
    assert_false(im_group_is_invited(g, "bob")); /* used up */
    assert_int_equal(im_group_invited_count(g), 0);
    ASSERT_MEMBERS(g, "alice", "bob");
    assert_int_equal(im_group_join(g, "bob", NULL), IM_EMEMBER);
    assert_int_equal(im_group_join(g, "carol", NULL), IM_ENOGROUP);
    assert_int_equal(im_group_join(g, "b d", NULL), IM_EINVAL);
    /* A public group takes anyone. */
    im_group *p = new_group("pub", "alice", 10);
    assert_int_equal(im_group_join(p, "carol", NULL), IM_OK);
    assert_true(im_group_may_see(p, "dave"));
    im_group_free(p);
    im_group_free(g);
}

/* Whoever may not see a private group gets IM_ENOGROUP for everything, and
 * the group is unchanged. */
static void private_group_is_hidden_from_outsiders(void **state)
{
    (void)state;
    im_group *g = private_group("club", "alice", 10);
    assert_int_equal(im_group_invite(g, "alice", "bob", NULL), IM_OK);
    assert_int_equal(im_group_join(g, "bob", NULL), IM_OK);
    assert_int_equal(im_group_invite(g, "alice", "dave", NULL), IM_OK);
    const char *carol = "carol";
    assert_int_equal(im_group_leave(g, carol, NULL), IM_ENOGROUP);
    assert_int_equal(im_group_check_member(g, carol, NULL), IM_ENOGROUP);
    assert_int_equal(im_group_check_owner(g, carol, NULL), IM_ENOGROUP);
    assert_int_equal(im_group_invite(g, carol, "erin", NULL), IM_ENOGROUP);
    assert_int_equal(im_group_kick(g, carol, "bob", NULL), IM_ENOGROUP);
    assert_int_equal(im_group_transfer(g, carol, "bob", NULL), IM_ENOGROUP);
    assert_int_equal(im_group_check_member(g, NULL, NULL), IM_ENOGROUP);
    /* Someone invited sees it, and is told what they are not. */
    assert_int_equal(im_group_check_member(g, "dave", NULL), IM_ENOTMEMBER);
    assert_int_equal(im_group_leave(g, "dave", NULL), IM_ENOTMEMBER);
    assert_int_equal(im_group_invite(g, "dave", "erin", NULL), IM_EPERM);
    assert_int_equal(im_group_check_member(g, "bob", NULL), IM_OK);
    ASSERT_MEMBERS(g, "alice", "bob");
    assert_int_equal(im_group_invited_count(g), 1);
    im_group_free(g);
}

static void only_the_owner_administers(void **state)
{
    (void)state;
    im_group *g = private_group("club", "alice", 10);
    assert_int_equal(im_group_invite(g, "alice", "bob", NULL), IM_OK);
    assert_int_equal(im_group_join(g, "bob", NULL), IM_OK);
    assert_int_equal(im_group_invite(g, "alice", "carol", NULL), IM_OK);
    assert_int_equal(im_group_join(g, "carol", NULL), IM_OK);
    im_error err = { 0 };
    assert_int_equal(im_group_invite(g, "bob", "dave", &err), IM_EPERM);
    assert_non_null(strstr(err.msg, "alice"));
    assert_int_equal(im_group_kick(g, "bob", "carol", NULL), IM_EPERM);
    assert_int_equal(im_group_transfer(g, "bob", "bob", NULL), IM_EPERM);
    assert_int_equal(im_group_check_owner(g, "bob", NULL), IM_EPERM);
    assert_int_equal(im_group_check_owner(g, "alice", NULL), IM_OK);
    /* The owner's own mistakes. */
    assert_int_equal(im_group_kick(g, "alice", "alice", NULL), IM_EINVAL);
    assert_int_equal(im_group_transfer(g, "alice", "alice", NULL), IM_EINVAL);
    assert_int_equal(im_group_kick(g, "alice", "dave", NULL), IM_ENOTMEMBER);
    assert_int_equal(im_group_transfer(g, "alice", "dave", NULL), IM_ENOTMEMBER);
    assert_int_equal(im_group_invite(g, "alice", "bob", NULL), IM_EMEMBER);
    assert_int_equal(im_group_invite(g, "alice", "b d", NULL), IM_EINVAL);
    ASSERT_MEMBERS(g, "alice", "bob", "carol");
    assert_int_equal(im_group_invited_count(g), 0);
    /* A public group has no invitations: anyone may join it. */
    im_group *p = new_group("pub", "alice", 10);
    assert_int_equal(im_group_invite(p, "alice", "bob", NULL), IM_EINVAL);
    assert_int_equal(im_group_invite(p, "carol", "bob", NULL), IM_EPERM);
    assert_int_equal(im_group_invited_count(p), 0);
    im_group_free(p);
    im_group_free(g);
}

static void kick_removes_a_member_or_an_invitation(void **state)
{
    (void)state;
    im_group *g = private_group("club", "alice", 10);
    assert_int_equal(im_group_invite(g, "alice", "bob", NULL), IM_OK);
    assert_int_equal(im_group_join(g, "bob", NULL), IM_OK);
    assert_int_equal(im_group_invite(g, "alice", "carol", NULL), IM_OK);
    assert_int_equal(im_group_kick(g, "alice", "bob", NULL), IM_OK);
    ASSERT_MEMBERS(g, "alice");
    /* Removed from a private group, bob cannot come back by himself. */
    assert_int_equal(im_group_join(g, "bob", NULL), IM_ENOGROUP);
    assert_false(im_group_may_see(g, "bob"));
    assert_int_equal(im_group_kick(g, "alice", "carol", NULL), IM_OK); /* withdrawn */
    assert_false(im_group_is_invited(g, "carol"));
    assert_int_equal(im_group_join(g, "carol", NULL), IM_ENOGROUP);
    assert_int_equal(im_group_kick(g, "alice", "carol", NULL), IM_ENOTMEMBER);
    im_group_free(g);
}

static void transfer_hands_ownership_over(void **state)
{
    (void)state;
    im_group *g = new_group("g", "alice", 10);
    assert_int_equal(im_group_join(g, "bob", NULL), IM_OK);
    assert_int_equal(im_group_join(g, "carol", NULL), IM_OK);
    assert_int_equal(im_group_transfer(g, "alice", "carol", NULL), IM_OK);
    assert_string_equal(im_group_owner(g), "carol");
    assert_string_equal(im_group_creator(g), "alice"); /* a transfer keeps the creator */
    assert_int_equal(im_group_check_owner(g, "alice", NULL), IM_EPERM);
    assert_int_equal(im_group_kick(g, "carol", "alice", NULL), IM_OK);
    assert_int_equal(im_group_member_count(g), 2);
    /* The owner leaving still passes to the longest-standing member. */
    assert_int_equal(im_group_leave(g, "carol", NULL), IM_OK);
    assert_string_equal(im_group_owner(g), "bob");
    /* A member who is not the owner leaving changes no owner. */
    assert_int_equal(im_group_join(g, "dave", NULL), IM_OK);
    assert_int_equal(im_group_transfer(g, "bob", "dave", NULL), IM_OK);
    assert_int_equal(im_group_leave(g, "bob", NULL), IM_OK);
    assert_string_equal(im_group_owner(g), "dave");
    assert_int_equal(im_group_set_owner(g, "bob", NULL), IM_ENOTMEMBER);
    assert_int_equal(im_group_set_creator(g, "", NULL), IM_EINVAL);
    assert_int_equal(im_group_set_creator(g, "zed", NULL), IM_OK);
    assert_string_equal(im_group_creator(g), "zed");
    im_group_free(g);
}

static void invitations_keep_a_place(void **state)
{
    (void)state;
    im_group *g = private_group("club", "alice", 3);
    assert_int_equal(im_group_invite(g, "alice", "bob", NULL), IM_OK);
    assert_int_equal(im_group_invite(g, "alice", "carol", NULL), IM_OK);
    assert_true(im_group_is_full(g));
    im_error err = { 0 };
    assert_int_equal(im_group_invite(g, "alice", "dave", &err), IM_EFULL);
    assert_int_equal(im_group_add_member(g, "dave", NULL), IM_EFULL);
    /* The invited still find their place. */
    assert_int_equal(im_group_join(g, "carol", NULL), IM_OK);
    assert_int_equal(im_group_join(g, "bob", NULL), IM_OK);
    ASSERT_MEMBERS(g, "alice", "carol", "bob");
    assert_int_equal(im_group_remove_invite(g, "bob", NULL), IM_ENOTMEMBER);
    im_group_free(g);
}

static void members_have_a_since(void **state)
{
    (void)state;
    im_group *g = new_group("g", "alice", 10);
    assert_int_equal(im_group_member_since(g, "alice"), 0);
    assert_int_equal(im_group_join(g, "bob", NULL), IM_OK);
    assert_int_equal(im_group_join(g, "carol", NULL), IM_OK);
    assert_true(im_group_member_since(g, "bob") == IM_GROUP_SINCE_UNKNOWN);
    assert_int_equal(im_group_set_member_since(g, "bob", 7, NULL), IM_OK);
    assert_int_equal(im_group_set_member_since(g, "carol", 9, NULL), IM_OK);
    assert_int_equal(im_group_set_member_since(g, "dave", 1, NULL), IM_ENOTMEMBER);
    assert_true(im_group_member_since(g, "dave") == IM_GROUP_SINCE_UNKNOWN);
    assert_true(im_group_member_since(g, NULL) == IM_GROUP_SINCE_UNKNOWN);
    /* Each keeps its own when others leave. */
    assert_int_equal(im_group_leave(g, "alice", NULL), IM_OK);
    assert_int_equal(im_group_member_since(g, "bob"), 7);
    assert_int_equal(im_group_member_since_at(g, 1), 9);
    assert_true(im_group_member_since_at(g, 2) == IM_GROUP_SINCE_UNKNOWN);
    assert_int_equal(im_group_set_member_since_at(g, 1, 11, NULL), IM_OK);
    assert_int_equal(im_group_member_since(g, "carol"), 11);
    assert_int_equal(im_group_set_member_since_at(g, 2, 1, NULL), IM_ENOTMEMBER);
    im_group_free(g);
}

/* ---- allocation failures ---- */

#ifdef IMCORE_TEST_ALLOC_FAULTS
/* Builds a group of 20 members (the member array grows several times) with
 * the nth allocation failing. Returns true once no failure was injected, that
 * is once n is past the number of allocations the whole build needs. */
static bool build_with_failure_at(unsigned long n)
{
    im_group *g = NULL;
    im_error err = { 0 };
    fail_countdown = n;
    int rc = im_group_new("g", "user0", 20, &g, &err);
    if (rc != IM_OK) {
        fail_countdown = 0;
        assert_int_equal(rc, IM_ENOMEM);
        assert_int_equal(err.code, IM_ENOMEM);
        assert_null(g);
        return false;
    }
    bool injected = false;
    char name[16];
    for (unsigned i = 1; i < 20; i++) {
        user_name(name, sizeof name, i);
        size_t before = im_group_member_count(g);
        rc = im_group_add_member(g, name, &err);
        if (rc != IM_OK) {
            /* The failed join changed nothing; the retry (with the fault
             * spent) succeeds. */
            assert_int_equal(rc, IM_ENOMEM);
            assert_int_equal(err.code, IM_ENOMEM);
            assert_int_equal(im_group_member_count(g), before);
            assert_false(im_group_is_member(g, name));
            assert_string_equal(im_group_owner(g), "user0");
            injected = true;
            assert_int_equal(im_group_add_member(g, name, NULL), IM_OK);
        }
    }
    fail_countdown = 0;
    assert_int_equal(im_group_member_count(g), 20);
    for (unsigned i = 0; i < 20; i++) {
        user_name(name, sizeof name, i);
        assert_string_equal(im_group_member(g, i), name);
    }
    im_group_free(g);
    return !injected;
}

static void allocation_failure_sweep(void **state)
{
    (void)state;
    unsigned long n;
    for (n = 1; n < 1000; n++)
        if (build_with_failure_at(n))
            break;
    /* At least the group, its array and one id copy were tried. */
    assert_true(n > 3);
    assert_true(n < 1000);
    assert_int_equal(fail_countdown, 0);
}

/* Invites 5 users into a private group with the nth allocation failing:
 * a failed invitation changes nothing. True once nothing was injected. */
static bool invite_with_failure_at(unsigned long n)
{
    im_group *g = private_group("g", "owner", 20);
    bool injected = false;
    char name[16];
    fail_countdown = n;
    for (unsigned i = 1; i <= 5; i++) {
        user_name(name, sizeof name, i);
        size_t before = im_group_invited_count(g);
        im_error err = { 0 };
        int rc = im_group_invite(g, "owner", name, &err);
        if (rc != IM_OK) {
            assert_int_equal(rc, IM_ENOMEM);
            assert_int_equal(im_group_invited_count(g), before);
            assert_false(im_group_is_invited(g, name));
            injected = true;
            assert_int_equal(im_group_invite(g, "owner", name, NULL), IM_OK);
        }
    }
    fail_countdown = 0;
    assert_int_equal(im_group_invited_count(g), 5);
    im_group_free(g);
    return !injected;
}

/* The index grows (from 16 to 32 slots) when the 9th member joins, at most
 * half full. Failing exactly that allocation refuses the join with
 * IM_ENOMEM and leaves the group as it was, index included; the retry
 * succeeds. */
static void index_growth_failure_changes_nothing(void **state)
{
    (void)state;
    im_group *g = new_group("g", "user0", 100);
    char name[16];
    for (unsigned i = 1; i < 8; i++) {
        user_name(name, sizeof name, i);
        assert_int_equal(im_group_add_member(g, name, NULL), IM_OK);
    }
    im_error err = { 0 };
    fail_size = 32 * sizeof(uint32_t);
    int rc = im_group_add_member(g, "user8", &err);
    bool spent = fail_size == 0;
    fail_size = 0;
    assert_true(spent);
    assert_int_equal(rc, IM_ENOMEM);
    assert_int_equal(err.code, IM_ENOMEM);
    assert_int_equal(im_group_member_count(g), 8);
    assert_false(im_group_is_member(g, "user8"));
    for (unsigned i = 0; i < 8; i++) {
        user_name(name, sizeof name, i);
        assert_true(im_group_is_member(g, name));
        assert_string_equal(im_group_member(g, i), name);
    }
    assert_int_equal(im_group_add_member(g, "user8", NULL), IM_OK);
    for (unsigned i = 0; i < 9; i++) {
        user_name(name, sizeof name, i);
        assert_true(im_group_is_member(g, name));
    }
    im_group_free(g);
}

static void invite_allocation_failure_sweep(void **state)
{
    (void)state;
    unsigned long n;
    for (n = 1; n < 100; n++)
        if (invite_with_failure_at(n))
            break;
    assert_true(n > 2);
    assert_true(n < 100);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_owner_is_first_member),
        cmocka_unit_test(create_copies_its_strings),
        cmocka_unit_test(create_validates_ids),
        cmocka_unit_test(create_id_of_32_ok),
        cmocka_unit_test(create_max_members_bounds),
        cmocka_unit_test(create_without_out_refused),
        cmocka_unit_test(free_null_is_fine),
        cmocka_unit_test(join_keeps_order),
        cmocka_unit_test(join_copies_the_id),
        cmocka_unit_test(join_twice_refused_unchanged),
        cmocka_unit_test(join_bad_id_refused_unchanged),
        cmocka_unit_test(join_full_refused_unchanged),
        cmocka_unit_test(leave_by_non_member_refused_unchanged),
        cmocka_unit_test(leave_twice_refused),
        cmocka_unit_test(non_owner_leaving_keeps_owner_and_order),
        cmocka_unit_test(owner_leaving_passes_to_earliest_remaining),
        cmocka_unit_test(last_leave_empties),
        cmocka_unit_test(free_with_members_releases_all),
        cmocka_unit_test(thousand_members),
        cmocka_unit_test(index_follows_leaves_and_joins),
        cmocka_unit_test(largest_group_lookups),
        cmocka_unit_test(rejoin_after_empty),
        cmocka_unit_test(flags_are_fixed_at_creation),
        cmocka_unit_test(private_join_needs_an_invitation),
        cmocka_unit_test(private_group_is_hidden_from_outsiders),
        cmocka_unit_test(only_the_owner_administers),
        cmocka_unit_test(kick_removes_a_member_or_an_invitation),
        cmocka_unit_test(transfer_hands_ownership_over),
        cmocka_unit_test(invitations_keep_a_place),
        cmocka_unit_test(members_have_a_since),
#ifdef IMCORE_TEST_ALLOC_FAULTS
        cmocka_unit_test(allocation_failure_sweep),
        cmocka_unit_test(invite_allocation_failure_sweep),
        cmocka_unit_test(index_growth_failure_changes_nothing),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
