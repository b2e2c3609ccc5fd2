/* tests/infrastructure/test_net_fanout.c: the TCP transport's group
 * fan-out (router_deliver_many in im_net_router.c), without sockets or
 * running workers: users are bound to made-up endpoints, and what a
 * delivery queues is read from the workers' queues.
 *
 * The allocator is wrapped (GNU ld --wrap, as in tests/domain) to count the
 * bytes a fan-out asks for: a group of IM_GROUP_MAX_MEMBERS_LIMIT members
 * with a few online must cost a few entries of scratch, not one per member
 * and worker. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "domain/group.h"
#include "im_net_internal.h"
#include "im_net_server.h"

/* ---- counted allocations ---- */

static size_t alloc_bytes;   /* asked for since the last reset */
static size_t alloc_largest; /* the largest single request since then */

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);

static void count(size_t n)
{
    alloc_bytes += n;
    if (n > alloc_largest)
        alloc_largest = n;
}

void *__wrap_malloc(size_t n)
{
    count(n);
    return __real_malloc(n);
}

void *__wrap_calloc(size_t k, size_t n)
{
    count(k * n);
    return __real_calloc(k, n);
}

void *__wrap_realloc(void *p, size_t n)
{
    count(n);
    return __real_realloc(p, n);
}

/* ---- helpers ---- */

#define WORKERS 8u

static im_net_server *new_server(void)
{
    im_net_config cfg = {
        .listen_host = "127.0.0.1", .listen_port = 0, .workers = WORKERS, .node = 1,
        .node_id = "test", .max_connections = 100, .max_frame_bytes = 65536,
        .output_buffer_bytes = 1 << 20, .heartbeat_s = 30, .idle_timeout_s = 90,
        .login_timeout_s = 10, .frame_timeout_s = 10, .max_unauthenticated = 100,
        .max_unauth_per_address = 100, .input_budget_bytes = 1 << 20,
    };
    im_net_server *srv = NULL;
    im_error err = { 0 };
    if (im_net_server_new(&cfg, &srv, &err) != IM_OK)
        fail_msg("im_net_server_new: %s", err.msg);
    return srv;
}

static void bind_user(im_presence *r, const char *user, unsigned worker, uint64_t conn_id)
{
    im_endpoint ep = { .node = 1, .worker = worker, .conn_id = conn_id };
    im_endpoint replaced;
    assert_int_equal(im_presence_bind(r, user, user, &ep, IM_LOGIN_REPLACE, &replaced, NULL), 0);
}

/* The conn ids queued for worker w, in order, into ids (at most max);
 * returns how many, and checks they came in one delivery item. */
static size_t queued_for(im_net_server *srv, unsigned w, uint64_t *ids, size_t max)
{
    im_item *it = srv->workers[w].qhead;
    if (!it)
        return 0;
    assert_null(it->next);
    assert_int_equal(it->kind, ITEM_DELIVER);
    assert_true(it->n <= max);
    memcpy(ids, it->ids, it->n * sizeof ids[0]);
    return it->n;
}

/* ---- tests ---- */

/* A group of the largest size, 10 members online over the 8 workers, the
 * sender among them: 9 deliveries, one queue item on each worker that has
 * a receiver, holding exactly its receivers in the members' order; and the
 * fan-out allocates under 4 KiB (the shared frame, the items), where an
 * array of members x workers was 6.4 MB. */
static void large_group_few_online_allocates_little(void **state)
{
    (void)state;
    im_net_server *srv = new_server();
    im_presence *r = im_net_server_presence(srv);
    im_delivery *d = im_net_server_delivery(srv);
    const size_t n = IM_GROUP_MAX_MEMBERS_LIMIT;
    char (*names)[16] = malloc(n * sizeof *names);
    const char **members = malloc(n * sizeof *members);
    assert_non_null(names);
    assert_non_null(members);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "user%zu", i);
        members[i] = names[i];
    }
    /* Online: every 10,000th member, on worker i % WORKERS, conn id 1000 + i. */
    for (size_t k = 0; k < 10; k++)
        bind_user(r, members[k * 10000], (unsigned)(k % WORKERS), 1000 + k);
    im_message m = {
        .kind = IM_MESSAGE_GROUP, .sender = "user0", .target = "big",
        .client_msg_id = "c1", .body = (const uint8_t *)"hello", .body_len = 5, .seq = 7,
    };
    alloc_bytes = alloc_largest = 0;
    int delivered = im_delivery_deliver_many(d, members, n, "user0", &m, "User 0");
    size_t bytes = alloc_bytes, largest = alloc_largest;
    assert_int_equal(delivered, 9);
    if (bytes >= 4096)
        fail_msg("fan-out to 9 of %zu members allocated %zu bytes (largest %zu)", n, bytes,
                 largest);
    /* k = 1..9 online (k = 0 is the sender): worker 0 has k = 8, worker 1
     * has k = 1 and 9, the others one each. */
    uint64_t ids[16];
    assert_int_equal(queued_for(srv, 0, ids, 16), 1);
    assert_int_equal(ids[0], 1008);
    assert_int_equal(queued_for(srv, 1, ids, 16), 2);
    assert_int_equal(ids[0], 1001);
    assert_int_equal(ids[1], 1009);
    for (unsigned w = 2; w < WORKERS; w++) {
        assert_int_equal(queued_for(srv, w, ids, 16), 1);
        assert_int_equal(ids[0], 1000 + w);
    }
    im_net_server_free(srv);
    free(members);
    free(names);
}

/* More receivers online than the stack holds, all on one worker and
 * spread over all: each one gets the message once. */
static void many_online_each_delivered_once(void **state)
{
    (void)state;
    im_net_server *srv = new_server();
    im_presence *r = im_net_server_presence(srv);
    im_delivery *d = im_net_server_delivery(srv);
    const size_t n = 1000;
    char (*names)[16] = malloc(n * sizeof *names);
    const char **members = malloc(n * sizeof *members);
    assert_non_null(names);
    assert_non_null(members);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "user%zu", i);
        members[i] = names[i];
        if (i % 2 == 0) /* half online: workers 0..7 in turn, and 3 twice as often */
            bind_user(r, members[i], (unsigned)(i % 4 == 0 ? 3 : (i / 2) % WORKERS), i + 1);
    }
    im_message m = {
        .kind = IM_MESSAGE_GROUP, .sender = "x", .target = "g", .client_msg_id = "c",
        .body = (const uint8_t *)"b", .body_len = 1, .seq = 1,
    };
    assert_int_equal(im_delivery_deliver_many(d, members, n, NULL, &m, NULL), 500);
    static uint64_t ids[1000];
    size_t total = 0;
    for (unsigned w = 0; w < WORKERS; w++) {
        size_t got = queued_for(srv, w, ids, 1000);
        total += got;
        for (size_t j = 0; j < got; j++) {
            size_t i = ids[j] - 1;
            assert_int_equal(i % 2, 0);
            assert_int_equal(w, i % 4 == 0 ? 3 : (i / 2) % WORKERS);
            if (j)
                assert_true(ids[j] > ids[j - 1]); /* the members' order */
        }
    }
    assert_int_equal(total, 500);
    im_net_server_free(srv);
    free(members);
    free(names);
}

/* Nobody online: nothing queued, nothing encoded. */
static void nobody_online_delivers_nothing(void **state)
{
    (void)state;
    im_net_server *srv = new_server();
    im_delivery *d = im_net_server_delivery(srv);
    const char *members[] = { "a", "b", "c" };
    im_message m = {
        .kind = IM_MESSAGE_GROUP, .sender = "a", .target = "g", .client_msg_id = "c",
        .body = (const uint8_t *)"b", .body_len = 1, .seq = 1,
    };
    alloc_bytes = 0;
    assert_int_equal(im_delivery_deliver_many(d, members, 3, "a", &m, NULL), 0);
    assert_int_equal(alloc_bytes, 0);
    for (unsigned w = 0; w < WORKERS; w++)
        assert_null(srv->workers[w].qhead);
    im_net_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(large_group_few_online_allocates_little),
        cmocka_unit_test(many_online_each_delivered_once),
        cmocka_unit_test(nobody_online_delivers_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
