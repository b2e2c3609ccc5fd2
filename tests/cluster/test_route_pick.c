/* tests/cluster/test_route_pick.c: the route service's choice of node
 * (interfaces/route/route_pick.c): stable per user, spread evenly, moving
 * only about 1/n of the users when a node joins or leaves, and never
 * letting a node pass the load bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "im_config.h"
#include "route_pick.h"

#define USERS 20000

static void make_nodes(im_cluster_node *nodes, size_t n)
{
    memset(nodes, 0, n * sizeof *nodes);
    for (size_t i = 0; i < n; i++) {
        snprintf(nodes[i].id, sizeof nodes[i].id, "node-%zu", i + 1);
        snprintf(nodes[i].client, sizeof nodes[i].client, "10.0.0.%zu:7000", i + 1);
    }
}

static void user_name(char *out, size_t size, unsigned i)
{
    snprintf(out, size, "user%u", i);
}

static void test_empty_and_stable(void **state)
{
    (void)state;
    im_cluster_node nodes[3];
    make_nodes(nodes, 3);
    assert_int_equal(route_pick(nodes, NULL, 0, "alice", IM_ROUTE_BOUNDED_HASH, 125), -1);
    long a = route_pick(nodes, NULL, 3, "alice", IM_ROUTE_BOUNDED_HASH, 125);
    assert_true(a >= 0 && a < 3);
    for (int i = 0; i < 10; i++)
        assert_int_equal(route_pick(nodes, NULL, 3, "alice", IM_ROUTE_BOUNDED_HASH, 125), a);
}

static void test_spread_and_moves(void **state)
{
    (void)state;
    static long before[USERS];
    im_cluster_node nodes[5];
    make_nodes(nodes, 5);
    unsigned count[5] = { 0 };
    char user[32];
    for (unsigned u = 0; u < USERS; u++) {
        user_name(user, sizeof user, u);
        before[u] = route_pick(nodes, NULL, 4, user, IM_ROUTE_BOUNDED_HASH, 125);
        count[before[u]]++;
    }
    for (int i = 0; i < 4; i++) /* a quarter each, within 3 points */
        assert_in_range(count[i], USERS / 4 - USERS * 3 / 100, USERS / 4 + USERS * 3 / 100);
    /* A fifth node joins: about a fifth of the users move, all to it. */
    unsigned moved = 0;
    for (unsigned u = 0; u < USERS; u++) {
        user_name(user, sizeof user, u);
        long now = route_pick(nodes, NULL, 5, user, IM_ROUTE_BOUNDED_HASH, 125);
        if (now != before[u]) {
            moved++;
            assert_int_equal(now, 4);
        }
    }
    assert_in_range(moved, USERS * 15 / 100, USERS * 25 / 100);
    /* Node 2 (index 1) leaves: only its users move. */
    im_cluster_node three[3] = { nodes[0], nodes[2], nodes[3] };
    for (unsigned u = 0; u < USERS; u++) {
        user_name(user, sizeof user, u);
        long now = route_pick(three, NULL, 3, user, IM_ROUTE_BOUNDED_HASH, 125);
        if (before[u] != 1)
            assert_string_equal(three[now].id, nodes[before[u]].id);
    }
}

/* A reconnect storm: every answer adds to the node's load, as the service
 * counts what it hands out; no node passes 125% of the mean (plus the one
 * the bound lets in). */
static void test_bounded_load(void **state)
{
    (void)state;
    im_cluster_node nodes[4];
    make_nodes(nodes, 4);
    nodes[0].load = 3000; /* one node already busy */
    uint32_t extra[4] = { 0 };
    char user[32];
    for (unsigned u = 0; u < USERS; u++) {
        user_name(user, sizeof user, u);
        long i = route_pick(nodes, extra, 4, user, IM_ROUTE_BOUNDED_HASH, 125);
        extra[i]++;
        uint64_t total = 3000 + u + 1, max = 0;
        for (int k = 0; k < 4; k++) {
            uint64_t l = nodes[k].load + extra[k];
            if (l > max)
                max = l;
        }
        uint64_t cap = (total * 125 + 399) / 400 + 1;
        if (max > cap && max != 3000)
            fail_msg("after %u users a node holds %llu, over the bound %llu", u + 1,
                     (unsigned long long)max, (unsigned long long)cap);
    }
    assert_int_equal(extra[0] + 3000 <= (3000 + USERS) * 125 / 400 + 1, 1);
}

static void test_least_loaded(void **state)
{
    (void)state;
    im_cluster_node nodes[3];
    make_nodes(nodes, 3);
    nodes[0].load = 10;
    nodes[1].load = 3;
    nodes[2].load = 7;
    assert_int_equal(route_pick(nodes, NULL, 3, "bob", IM_ROUTE_LEAST_LOADED, 125), 1);
    uint32_t extra[3] = { 0, 5, 0 };
    assert_int_equal(route_pick(nodes, extra, 3, "bob", IM_ROUTE_LEAST_LOADED, 125), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_stable),
        cmocka_unit_test(test_spread_and_moves),
        cmocka_unit_test(test_bounded_load),
        cmocka_unit_test(test_least_loaded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
