/* tests/cluster/test_cluster_map.c: the cluster adapter's presence map
 * (im_cluster_map) and what it writes to Redis (im_cluster_wire), without
 * Redis: trust by the live list and epochs, the order of events and
 * snapshots, and every entry read back as written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "im_cluster_map.h"
#include "im_cluster_wire.h"
#include "imcore/errors.h"

static im_cluster_node live(const char *id, uint64_t epoch)
{
    im_cluster_node n = { .epoch = epoch };
    strcpy(n.id, id);
    strcpy(n.client, "127.0.0.1:1");
    return n;
}

static im_cluster_route route(uint32_t node, uint64_t epoch, uint64_t ver, uint64_t conn)
{
    im_cluster_route r = { .node = node, .epoch = epoch, .ver = ver, .worker = 1, .conn = conn,
                           .since_ms = 5 };
    strcpy(r.name, "Some One");
    return r;
}

static void test_trust(void **state)
{
    (void)state;
    im_cluster_map *m;
    assert_int_equal(im_cluster_map_new("n1", 100, &m), IM_OK);
    assert_int_equal(im_cluster_map_node(m, "n1"), IM_CLUSTER_SELF);
    uint32_t n2 = im_cluster_map_node(m, "n2");
    assert_int_equal(n2, 1);
    assert_int_equal(im_cluster_map_node(m, "n2"), n2);
    assert_string_equal(im_cluster_map_node_id(m, n2), "n2");

    /* A route of this node is trusted at once; one of a node not yet in
     * the live list is kept, but not trusted. */
    im_cluster_route r = route(IM_CLUSTER_SELF, 100, 1, 7), got;
    assert_int_equal(im_cluster_map_put(m, "alice", &r, NULL), 0);
    r = route(n2, 200, 1, 9);
    assert_int_equal(im_cluster_map_put(m, "bob", &r, NULL), 0);
    assert_true(im_cluster_map_lookup(m, "alice", &got));
    assert_int_equal(got.conn, 7);
    assert_false(im_cluster_map_lookup(m, "bob", NULL));
    assert_int_equal(im_cluster_map_count(m), 1);
    assert_int_equal(im_cluster_map_local_count(m), 1);

    /* n2 appears: its route is trusted, and a snapshot of it is due. */
    im_cluster_node list[3] = { live("n1", 100), live("n2", 200) };
    uint32_t fresh[4];
    size_t nfresh;
    assert_int_equal(im_cluster_map_set_live(m, list, 2, fresh, 4, &nfresh), 0);
    assert_int_equal(nfresh, 1);
    assert_int_equal(fresh[0], n2);
    assert_true(im_cluster_map_lookup(m, "bob", &got));
    assert_int_equal(got.node, n2);
    assert_int_equal(im_cluster_map_count(m), 2);

    /* n2 restarted (a newer epoch): the route of its old life goes. */
    list[1] = live("n2", 300);
    assert_int_equal(im_cluster_map_set_live(m, list, 2, fresh, 4, &nfresh), 1);
    assert_int_equal(nfresh, 1);
    assert_false(im_cluster_map_lookup(m, "bob", NULL));
    r = route(n2, 300, 1, 11);
    assert_int_equal(im_cluster_map_put(m, "bob", &r, NULL), 0);
    assert_true(im_cluster_map_lookup(m, "bob", NULL));

    /* n2 leaves the list: its routes go, this node's stay. */
    assert_int_equal(im_cluster_map_set_live(m, list, 1, fresh, 4, &nfresh), 1);
    assert_int_equal(nfresh, 0);
    assert_false(im_cluster_map_lookup(m, "bob", NULL));
    assert_true(im_cluster_map_lookup(m, "alice", NULL));
    /* A route of it that arrives late is kept untrusted, and dropped at the
     * next change of the list, since n2 has been seen live before. */
    assert_int_equal(im_cluster_map_put(m, "bob", &r, NULL), 0);
    assert_false(im_cluster_map_lookup(m, "bob", NULL));
    list[1] = live("n3", 400);
    assert_int_equal(im_cluster_map_set_live(m, list, 2, fresh, 4, &nfresh), 1);
    im_cluster_map_free(m);
}

static void test_put_remove(void **state)
{
    (void)state;
    im_cluster_map *m;
    assert_int_equal(im_cluster_map_new("n1", 100, &m), IM_OK);
    uint32_t n2 = im_cluster_map_node(m, "n2");
    im_cluster_node list[2] = { live("n2", 200) };
    uint32_t fresh[2];
    size_t nfresh;
    im_cluster_map_set_live(m, list, 1, fresh, 2, &nfresh);

    im_cluster_route r = route(IM_CLUSTER_SELF, 100, 1, 7), old;
    assert_int_equal(im_cluster_map_put(m, "alice", &r, NULL), 0);
    /* alice logs in on n2: the route here is replaced, and said. */
    r = route(n2, 200, 4, 9);
    assert_int_equal(im_cluster_map_put(m, "alice", &r, &old), 1);
    assert_int_equal(old.node, IM_CLUSTER_SELF);
    assert_int_equal(old.conn, 7);
    assert_int_equal(im_cluster_map_local_count(m), 0);
    /* The old session's late unbind here takes nothing away. */
    assert_false(im_cluster_map_remove(m, "alice", IM_CLUSTER_SELF, 100, 7));
    assert_false(im_cluster_map_remove(m, "alice", n2, 200, 8));
    assert_true(im_cluster_map_remove(m, "alice", n2, 200, 9));
    assert_false(im_cluster_map_lookup(m, "alice", NULL));
    assert_int_equal(im_cluster_map_next_ver(m), 1);
    assert_int_equal(im_cluster_map_next_ver(m), 2);
    im_cluster_map_free(m);
}

static void test_order(void **state)
{
    (void)state;
    im_cluster_map *m;
    assert_int_equal(im_cluster_map_new("n1", 100, &m), IM_OK);
    uint32_t n2 = im_cluster_map_node(m, "n2");
    /* Events in order are fresh once; a repeat or an older one is not. */
    assert_true(im_cluster_map_event_fresh(m, n2, 200, 1));
    assert_true(im_cluster_map_event_fresh(m, n2, 200, 2));
    assert_false(im_cluster_map_event_fresh(m, n2, 200, 2));
    assert_false(im_cluster_map_event_fresh(m, n2, 200, 1));
    assert_false(im_cluster_map_event_fresh(m, n2, 150, 9));  /* an older life */
    assert_false(im_cluster_map_event_fresh(m, IM_CLUSTER_SELF, 100, 5));
    /* A snapshot older than the events applied is ignored... */
    assert_false(im_cluster_map_snapshot_begin(m, n2, 200, 1));
    /* ...one as new or newer replaces the node's routes, and the events it
     * already holds are stale after it. */
    im_cluster_route r = route(n2, 200, 2, 3);
    assert_int_equal(im_cluster_map_put(m, "bob", &r, NULL), 0);
    assert_true(im_cluster_map_snapshot_begin(m, n2, 200, 5));
    assert_false(im_cluster_map_event_fresh(m, n2, 200, 4));
    assert_true(im_cluster_map_event_fresh(m, n2, 200, 6));
    im_cluster_node list[1] = { live("n2", 200) };
    uint32_t fresh[2];
    size_t nfresh;
    im_cluster_map_set_live(m, list, 1, fresh, 2, &nfresh);
    assert_false(im_cluster_map_lookup(m, "bob", NULL)); /* dropped by the snapshot */
    /* A new life starts its numbers again. */
    assert_true(im_cluster_map_event_fresh(m, n2, 300, 1));
    im_cluster_map_free(m);
}

/* ---- the wire: what is written reads back the same ---- */

/* The field/value list of an XADD argv (from "*" on), as Redis would hand
 * it to a consumer. */
static redisReply *fields_of(const im_cluster_argv *a, int from)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_ARRAY;
    r->elements = (size_t)(a->argc - from);
    r->element = calloc(r->elements, sizeof *r->element);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = calloc(1, sizeof *e);
        e->type = REDIS_REPLY_STRING;
        e->len = a->len[from + (int)i];
        e->str = malloc(e->len + 1);
        memcpy(e->str, a->argv[from + (int)i], e->len);
        e->str[e->len] = '\0';
        r->element[i] = e;
    }
    return r;
}

static void free_fields(redisReply *r)
{
    for (size_t i = 0; i < r->elements; i++) {
        free(r->element[i]->str);
        free(r->element[i]);
    }
    free(r->element);
    free(r);
}

static void test_wire_message(void **state)
{
    (void)state;
    static const uint8_t body[] = { 'h', 0, 'i', '\n', 0xff };
    im_cluster_entry e = {
        .type = IM_CLUSTER_MESSAGE, .epoch = 1765161234567ull,
        .m = { .kind = IM_MESSAGE_GROUP, .sender = "alice", .target = "room",
               .client_msg_id = "c-1", .body = body, .body_len = sizeof body, .seq = 42,
               .server_time_ms = 99 },
        .sender_name = "Alice A", .members = "bob,carol",
    };
    im_cluster_argv a;
    im_cluster_xadd(&a, "node-2", 1000, &e);
    assert_string_equal(a.argv[0], "XADD");
    assert_string_equal(a.argv[1], "imcore:node:node-2");
    assert_string_equal(a.argv[2], "MAXLEN");
    assert_string_equal(a.argv[3], "~");
    assert_string_equal(a.argv[4], "1000");
    assert_string_equal(a.argv[5], "*");
    redisReply *f = fields_of(&a, 6);
    im_cluster_entry got;
    const char *why = NULL;
    assert_true(im_cluster_entry_parse(f, &got, &why));
    assert_int_equal(got.type, IM_CLUSTER_MESSAGE);
    assert_int_equal(got.epoch, 1765161234567ull);
    assert_int_equal(got.m.kind, IM_MESSAGE_GROUP);
    assert_string_equal(got.m.sender, "alice");
    assert_string_equal(got.m.target, "room");
    assert_string_equal(got.m.client_msg_id, "c-1");
    assert_int_equal(got.m.seq, 42);
    assert_int_equal(got.m.server_time_ms, 99);
    assert_int_equal(got.m.body_len, sizeof body);
    assert_memory_equal(got.m.body, body, sizeof body);
    assert_string_equal(got.sender_name, "Alice A");
    assert_string_equal(got.members, "bob,carol");
    assert_false(got.has_endpoint);
    free_fields(f);

    /* A damaged entry is refused with a reason, never half read. */
    f = fields_of(&a, 6);
    for (size_t i = 0; i < f->elements; i += 2)
        if (strcmp(f->element[i]->str, "seq") == 0)
            strcpy(f->element[i + 1]->str, "4x");
    assert_false(im_cluster_entry_parse(f, &got, &why));
    assert_non_null(why);
    free_fields(f);
}

static void test_wire_kick(void **state)
{
    (void)state;
    im_cluster_entry e = { .type = IM_CLUSTER_KICK, .epoch = 7, .has_endpoint = true,
                           .worker = 3, .conn = 123456789012ull, .code = IM_EREPLACED,
                           .why = "logged in from another connection" };
    im_cluster_argv a;
    im_cluster_xadd(&a, "n", 100000, &e);
    redisReply *f = fields_of(&a, 6);
    im_cluster_entry got;
    const char *why;
    assert_true(im_cluster_entry_parse(f, &got, &why));
    assert_int_equal(got.type, IM_CLUSTER_KICK);
    assert_true(got.has_endpoint);
    assert_int_equal(got.worker, 3);
    assert_int_equal(got.conn, 123456789012ull);
    assert_int_equal(got.code, IM_EREPLACED);
    assert_string_equal(got.why, "logged in from another connection");
    free_fields(f);
}

static void test_wire_routes(void **state)
{
    (void)state;
    im_cluster_route r = route(2, 1765161234567ull, 77, 99), back = { .node = 2 };
    strcpy(r.name, "Bob  the builder ");
    char v[256];
    size_t n = im_cluster_route_format(&r, v, sizeof v);
    assert_true(n > 0);
    assert_true(im_cluster_route_parse(v, n, &back));
    assert_int_equal(back.epoch, r.epoch);
    assert_int_equal(back.ver, 77);
    assert_int_equal(back.worker, 1);
    assert_int_equal(back.conn, 99);
    assert_int_equal(back.since_ms, 5);
    assert_string_equal(back.name, "Bob  the builder ");
    assert_false(im_cluster_route_parse("1 2 3", 5, &back));
    assert_false(im_cluster_route_parse("1 2 x 4 5 n", 11, &back));
    uint64_t e, ver;
    assert_true(im_cluster_ver_parse("12 34", &e, &ver));
    assert_int_equal(e, 12);
    assert_int_equal(ver, 34);
    assert_false(im_cluster_ver_parse("12", &e, &ver));
    assert_false(im_cluster_ver_parse("12 34 5", &e, &ver));

    /* A change is one EVAL over the hash and the presence stream. */
    im_cluster_argv a;
    im_cluster_change(&a, IM_CLUSTER_BIND, "n2", 5, 6, "bob", v, 15000, 1000);
    assert_string_equal(a.argv[0], "EVAL");
    assert_string_equal(a.argv[2], "2");
    assert_string_equal(a.argv[3], "imcore:users:n2");
    assert_string_equal(a.argv[4], IM_CLUSTER_PRESENCE_STREAM);
    assert_string_equal(a.argv[5], "bind");
    assert_string_equal(a.argv[6], "bob");
    assert_string_equal(a.argv[7], v);

    /* The event the script writes reads back. */
    const char *ev[] = { "op", "bind", "node", "n2", "epoch", "5", "ver", "6", "user", "bob",
                         "value", v };
    im_cluster_argv fake = { .argc = 12 };
    for (int i = 0; i < 12; i++) {
        fake.argv[i] = ev[i];
        fake.len[i] = strlen(ev[i]);
    }
    redisReply *f = fields_of(&fake, 0);
    im_cluster_event got;
    assert_true(im_cluster_event_parse(f, &got));
    assert_int_equal(got.op, IM_CLUSTER_BIND);
    assert_string_equal(got.node, "n2");
    assert_int_equal(got.epoch, 5);
    assert_int_equal(got.ver, 6);
    assert_string_equal(got.user, "bob");
    assert_int_equal(got.value_len, n);
    free_fields(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trust),
        cmocka_unit_test(test_put_remove),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_wire_message),
        cmocka_unit_test(test_wire_kick),
        cmocka_unit_test(test_wire_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
