/* tests/infrastructure/test_plugin_abi.c: infrastructure/plugin_host/
 * im_plugin_abi.c, the host's side of the plugin ABI: the version picked
 * from a plugin's description (or the refusal), and the port tables of
 * every length an adapter may hand over: complete ones used as they are,
 * short ones behind a shim that forwards what they have and falls back for
 * the rest, ones without a size or a required operation refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "im_plugin_abi.h"

/* ---- the description ---- */

static const imcore_plugin_info current = { IMCORE_PLUGIN_INFO_FIELDS("t", "1") };

static int choose(const imcore_plugin_info *about, im_abi_role role, unsigned *v, im_error *e)
{
    memset(e, 0, sizeof *e);
    return im__abi_choose(about, role, 100, v, e);
}

static void test_choose_current_and_version_1(void **state)
{
    (void)state;
    unsigned v;
    im_error e;
    assert_int_equal(choose(&current, IM_ABI_EXTENSION, &v, &e), IM_OK);
    assert_int_equal(v, IMCORE_PLUGIN_API_VERSION);
    assert_int_equal(choose(&current, IM_ABI_TRANSPORT, &v, &e), IM_OK); /* session_size 0 */
    /* No description: a plugin of version 1, served unless it is a
     * transport or a cluster adapter. */
    assert_int_equal(choose(NULL, IM_ABI_EXTENSION, &v, &e), IM_OK);
    assert_int_equal(v, 1);
    assert_int_equal(choose(NULL, IM_ABI_STORAGE, &v, &e), IM_OK);
    assert_int_equal(v, 1);
    assert_int_equal(choose(NULL, IM_ABI_TRANSPORT, &v, &e), IM_EINVAL);
    assert_int_equal(v, 0);
    assert_non_null(strstr(e.msg, "a transport of plugin API 1"));
    assert_int_equal(choose(NULL, IM_ABI_CLUSTER, &v, &e), IM_EINVAL);
    assert_non_null(strstr(e.msg, "cluster adapter of plugin API 1"));
}

static void test_choose_the_newest_in_common(void **state)
{
    (void)state;
    unsigned v;
    im_error e;
    /* Built with a header of version 5, speaking 1 to 5: the server's
     * newest. */
    imcore_plugin_info wide = current;
    wide.signature = IMCORE_PLUGIN_SIGNATURE_ABI(IMCORE_PLUGIN_SIGNATURE) | 5u << 24;
    wide.api_min = 1;
    wide.api_max = 5;
    assert_int_equal(choose(&wide, IM_ABI_EXTENSION, &v, &e), IM_OK);
    assert_int_equal(v, IMCORE_PLUGIN_API_VERSION);
    /* Speaking 1 only: 1, as an extension; a transport of 1 is refused. */
    imcore_plugin_info old = current;
    old.api_min = old.api_max = 1;
    assert_int_equal(choose(&old, IM_ABI_STORAGE, &v, &e), IM_OK);
    assert_int_equal(v, 1);
    assert_int_equal(choose(&old, IM_ABI_TRANSPORT, &v, &e), IM_EINVAL);
    /* Newer than the server. */
    imcore_plugin_info future = wide;
    future.api_min = future.api_max = 5;
    assert_int_equal(choose(&future, IM_ABI_EXTENSION, &v, &e), IM_EINVAL);
    assert_string_equal(e.msg, "built for plugin API 5, this server speaks 1 to 3: it needs a "
                               "newer server");
    future.api_min = 4;
    assert_int_equal(choose(&future, IM_ABI_EXTENSION, &v, &e), IM_EINVAL);
    assert_non_null(strstr(e.msg, "built for plugin API 4 to 5,"));
    /* Speaking 2 only (one route table): served, transports and cluster
     * adapters too, as version 2. */
    imcore_plugin_info two = current;
    two.api_min = two.api_max = 2;
    assert_int_equal(choose(&two, IM_ABI_TRANSPORT, &v, &e), IM_OK);
    assert_int_equal(v, 2);
    assert_int_equal(choose(&two, IM_ABI_CLUSTER, &v, &e), IM_OK);
    assert_int_equal(v, 2);
}

static void test_choose_refuses_bad_descriptions(void **state)
{
    (void)state;
    unsigned v;
    im_error e;
    imcore_plugin_info bad = current;
    bad.signature ^= 0xFu << 12; /* another pointer size */
    assert_int_equal(choose(&bad, IM_ABI_EXTENSION, &v, &e), IM_EINVAL);
    assert_non_null(strstr(e.msg, "built for another ABI: pointer "));
    bad = current;
    bad.size = 16;
    assert_int_equal(choose(&bad, IM_ABI_EXTENSION, &v, &e), IM_EINVAL);
    assert_non_null(strstr(e.msg, "too short"));
    bad = current;
    bad.api_min = 0;
    assert_int_equal(choose(&bad, IM_ABI_EXTENSION, &v, &e), IM_EINVAL);
    bad = current;
    bad.api_max = IMCORE_PLUGIN_API_VERSION + 1; /* newer than its own header */
    assert_int_equal(choose(&bad, IM_ABI_EXTENSION, &v, &e), IM_EINVAL);
    assert_non_null(strstr(e.msg, "with the header of"));
}

static void test_choose_checks_a_transports_sessions(void **state)
{
    (void)state;
    unsigned v;
    im_error e;
    imcore_plugin_info t = current;
    t.session_size = 100; /* the server's, in choose() */
    assert_int_equal(choose(&t, IM_ABI_TRANSPORT, &v, &e), IM_OK);
    t.session_size = 96;
    assert_int_equal(choose(&t, IM_ABI_TRANSPORT, &v, &e), IM_EINVAL);
    assert_string_equal(e.msg, "built for sessions of 96 bytes, this server's are 100: built "
                               "for another server version; rebuild it");
    /* Only a transport's sessions matter. */
    assert_int_equal(choose(&t, IM_ABI_EXTENSION, &v, &e), IM_OK);
}

/* ---- the storage port ---- */

typedef struct fake_store {
    im_store base;
    int appends, destroyed;
} fake_store;

static int fs_append(im_store *s, const im_message *m, im_store_append_fn done, void *arg,
                     im_error *err)
{
    (void)err;
    ((fake_store *)s)->appends++;
    done(arg, IM_OK, m, false, NULL);
    return IM_OK;
}

static int fs_pending(im_store *s, const char *user, size_t limit, im_store_message_fn each,
                      im_store_done_fn done, void *arg, im_error *err)
{
    (void)s, (void)user, (void)limit, (void)each, (void)err;
    done(arg, IM_OK, NULL);
    return IM_OK;
}

static int fs_ack(im_store *s, const char *u, const char *c, uint64_t seq, im_error *err)
{
    (void)s, (void)u, (void)c, (void)seq, (void)err;
    return IM_OK;
}

static int fs_history(im_store *s, const char *c, uint64_t b, size_t l, im_store_message_fn e,
                      void *arg, im_error *err)
{
    (void)s, (void)c, (void)b, (void)l, (void)e, (void)arg, (void)err;
    return IM_OK;
}

static int fs_barrier(im_store *s, im_store_done_fn done, void *arg, im_error *err)
{
    (void)s, (void)err;
    done(arg, IM_OK, NULL);
    return IM_OK;
}

static void fs_destroy(im_store *s)
{
    ((fake_store *)s)->destroyed++;
}

static int fs_kv_put(im_store *s, const char *ns, const char *k, const void *v, size_t len,
                     im_store_done_fn done, void *arg, im_error *err)
{
    (void)s, (void)ns, (void)k, (void)v, (void)len, (void)done, (void)arg, (void)err;
    return IM_OK;
}

static int fs_kv_each(im_store *s, const char *ns, const char *p, im_store_kv_fn fn, void *arg,
                      im_error *err)
{
    (void)s, (void)ns, (void)p, (void)fn, (void)arg, (void)err;
    return 7;
}

static int fs_group(im_store *s, const char *g, const char *u, im_store_done_fn done, void *arg,
                    im_error *err)
{
    (void)s, (void)g, (void)u, (void)done, (void)arg, (void)err;
    return IM_EIO; /* never a fallback's answer */
}

static int fs_group_create(im_store *s, const char *g, const char *o, uint32_t max,
                           im_store_done_fn done, void *arg, im_error *err)
{
    (void)max;
    return fs_group(s, g, o, done, arg, err);
}

static int fs_load_groups(im_store *s, int (*fn)(void *, const im_group_record *), void *arg,
                          im_error *err)
{
    (void)s, (void)fn, (void)arg, (void)err;
    return 0;
}

#define FULL_STORE_OPS                                                                        \
    .name = "fake", .durable = true, .append = fs_append, .pending = fs_pending,              \
    .ack = fs_ack, .history = fs_history, .barrier = fs_barrier, .destroy = fs_destroy,       \
    .group_create = fs_group_create, .group_join = fs_group, .group_leave = fs_group,         \
    .load_groups = fs_load_groups, .kv_put = fs_kv_put, .kv_each = fs_kv_each

static const struct im_store_ops full_store = { .size = sizeof(struct im_store_ops),
                                                FULL_STORE_OPS };
/* An adapter built before group_create was appended: the rest of the table
 * is whatever follows it in memory, which the server must not read. */
static const struct im_store_ops short_store = {
    .size = offsetof(struct im_store_ops, group_create), FULL_STORE_OPS };
static const struct im_store_ops no_destroy_store = {
    .size = offsetof(struct im_store_ops, destroy), FULL_STORE_OPS };
static const struct im_store_ops unsized_store = { FULL_STORE_OPS };

static int fs_account(im_store *s, const im_account_request *q, im_store_account_fn done,
                      void *arg, im_error *err)
{
    (void)s, (void)q, (void)err;
    done(arg, IM_ENOTFOUND, NULL, NULL);
    return IM_OK;
}

/* A table with accounts but no key-value map: shimmed for the map, and its
 * account operation still reaches the adapter through the shim. */
static const struct im_store_ops accounts_no_kv_store = {
    .size = sizeof(struct im_store_ops), .name = "fake", .durable = true, .append = fs_append,
    .pending = fs_pending, .ack = fs_ack, .history = fs_history, .barrier = fs_barrier,
    .destroy = fs_destroy, .group_create = fs_group_create, .group_join = fs_group,
    .group_leave = fs_group, .load_groups = fs_load_groups, .account = fs_account };

static int done_rc = 99;
static void record_done(void *arg, int rc, const im_error *err)
{
    (void)arg, (void)err;
    done_rc = rc;
}

static void record_append(void *arg, int rc, const im_message *m, bool dup, const im_error *err)
{
    (void)arg, (void)m, (void)dup, (void)err;
    done_rc = rc;
}

static void test_store_complete_is_used_as_it_is(void **state)
{
    (void)state;
    fake_store fs = { .base.ops = &full_store };
    im_store *out = NULL;
    char absent[128] = "x";
    im_error e = { 0 };
    assert_int_equal(im__abi_store(&fs.base, 2, &out, absent, sizeof absent, &e), IM_OK);
    assert_ptr_equal(out, &fs.base); /* no shim: calls cost what they did */
    assert_string_equal(absent, "");
}

static void test_store_short_works_for_what_it_has(void **state)
{
    (void)state;
    fake_store fs = { .base.ops = &short_store };
    im_store *out = NULL;
    char absent[128];
    im_error e = { 0 };
    assert_int_equal(im__abi_store(&fs.base, 2, &out, absent, sizeof absent, &e), IM_OK);
    assert_ptr_not_equal(out, &fs.base);
    assert_string_equal(absent,
                        "group_create, group_join, group_leave, load_groups, kv_put, kv_each");
    assert_int_equal(out->ops->size, sizeof(struct im_store_ops));
    assert_string_equal(out->ops->name, "fake");
    assert_true(out->ops->durable);
    /* What it has reaches it. */
    im_message m = { .kind = IM_MESSAGE_PRIVATE, .sender = "a", .target = "b" };
    assert_int_equal(out->ops->append(out, &m, record_append, NULL, NULL), IM_OK);
    assert_int_equal(fs.appends, 1);
    assert_int_equal(done_rc, IM_OK);
    /* What it lacks falls back, never reaching past its table. */
    done_rc = 99;
    assert_int_equal(out->ops->group_create(out, "g", "a", 10, record_done, NULL, NULL), IM_OK);
    assert_int_equal(done_rc, IM_OK);
    done_rc = 99;
    assert_int_equal(out->ops->group_join(out, "g", "b", record_done, NULL, NULL), IM_OK);
    assert_int_equal(done_rc, IM_OK);
    assert_int_equal(out->ops->load_groups(out, NULL, NULL, NULL), 0);
    e = (im_error){ 0 };
    assert_int_equal(out->ops->kv_put(out, "p", "k", "v", 1, NULL, NULL, &e), IM_EUNSUPPORTED);
    assert_int_equal(e.code, IM_EUNSUPPORTED);
    assert_int_equal(out->ops->kv_each(out, "p", "", NULL, NULL, NULL), IM_EUNSUPPORTED);
    /* Destroying the shim destroys the adapter's store. */
    im_store_destroy(out);
    assert_int_equal(fs.destroyed, 1);
}

static void record_account(void *arg, int rc, const im_account_record *rec, const im_error *err)
{
    (void)arg, (void)rec, (void)err;
    done_rc = rc;
}

static void test_store_shim_keeps_accounts(void **state)
{
    (void)state;
    fake_store fs = { .base.ops = &accounts_no_kv_store };
    im_store *out = NULL;
    char absent[128];
    assert_int_equal(im__abi_store(&fs.base, 2, &out, absent, sizeof absent, NULL), IM_OK);
    assert_ptr_not_equal(out, &fs.base);
    assert_string_equal(absent, "kv_put, kv_each");
    assert_true(IM_STORE_HAS(out, account));
    im_account_request q = { .size = sizeof q, .op = IM_ACCOUNT_GET, .user = "a" };
    done_rc = 99;
    assert_int_equal(out->ops->account(out, &q, record_account, NULL, NULL), IM_OK);
    assert_int_equal(done_rc, IM_ENOTFOUND);
    im_store_destroy(out);
    /* Without it (a table that ends before it), the shim has none either. */
    fs.base.ops = &short_store;
    assert_int_equal(im__abi_store(&fs.base, 2, &out, absent, sizeof absent, NULL), IM_OK);
    assert_false(IM_STORE_HAS(out, account));
    im_store_destroy(out);
}

static void test_store_refusals(void **state)
{
    (void)state;
    fake_store fs = { .base.ops = &no_destroy_store };
    im_store *out = (im_store *)1;
    im_error e = { 0 };
    assert_int_equal(im__abi_store(&fs.base, 2, &out, NULL, 0, &e), IM_EUNSUPPORTED);
    assert_null(out);
    assert_non_null(strstr(e.msg, "has no destroy, which the server needs"));
    fs.base.ops = &unsized_store;
    assert_int_equal(im__abi_store(&fs.base, 2, &out, NULL, 0, &e), IM_EUNSUPPORTED);
    assert_non_null(strstr(e.msg, "size of 0 bytes"));
    assert_int_equal(fs.destroyed, 0); /* an unsized table's destroy is not trusted */
    /* A required operation left NULL in a complete table: refused, and
     * the store is destroyed since the table has destroy. */
    struct im_store_ops holed = full_store;
    holed.ack = NULL;
    fs.base.ops = &holed;
    assert_int_equal(im__abi_store(&fs.base, 2, &out, NULL, 0, &e), IM_EUNSUPPORTED);
    assert_non_null(strstr(e.msg, "has no ack"));
    assert_int_equal(fs.destroyed, 1);
}

/* ---- the route port ---- */

static void fr_any(void)
{
}

#define ANY(type) ((type)(void (*)(void))fr_any)

static bool fp_yes(im_presence *p, const char *user)
{
    (void)p, (void)user;
    return true;
}

#define FULL_PRESENCE_OPS                                                                    \
    .name = "fake", .bind = ANY(int (*)(im_presence *, const char *, const char *,           \
                                        const im_endpoint *, im_login_policy,                 \
                                        im_endpoint *, im_error *)),                          \
    .unbind = ANY(bool (*)(im_presence *, const char *, const im_endpoint *)),               \
    .is_online = fp_yes, .list_online = ANY(size_t (*)(im_presence *, im_router_user_fn, void *))

#define FULL_DELIVERY_OPS                                                                    \
    .name = "fake",                                                                          \
    .deliver = ANY(int (*)(im_delivery *, const im_message *, const char *, im_error *)),    \
    .deliver_many = ANY(int (*)(im_delivery *, const char *const *, size_t, const char *,    \
                                const im_message *, const char *)),                          \
    .deliver_to = ANY(void (*)(im_delivery *, const im_endpoint *, const im_message *,       \
                               const char *)),                                               \
    .kick = ANY(void (*)(im_delivery *, const im_endpoint *, int, const char *))

#define FULL_REPLIES_OPS                                                                     \
    .name = "fake",                                                                          \
    .send_result = ANY(void (*)(im_replies *, const im_endpoint *, uint64_t, const char *,   \
                                int, const im_send_result *, const char *)),                 \
    .send_status = ANY(void (*)(im_replies *, const im_endpoint *, uint64_t, int,            \
                                const char *)),                                              \
    .send_login_result = ANY(void (*)(im_replies *, const im_endpoint *, uint64_t, int,      \
                                      const im_session *, const char *, const char *)),      \
    .with_session = ANY(void (*)(im_replies *, const im_endpoint *,                          \
                                 void (*)(void *, im_session *), void *))

/* The three tables of plugin API 3: checked, never shimmed (the
 * application asks for is_reserved and send_history itself). */
static void test_route_tables(void **state)
{
    (void)state;
    static const struct im_presence_ops presence = {
        .size = sizeof(struct im_presence_ops), FULL_PRESENCE_OPS };
    static const struct im_delivery_ops delivery = {
        .size = sizeof(struct im_delivery_ops), FULL_DELIVERY_OPS };
    static const struct im_replies_ops replies = {
        .size = sizeof(struct im_replies_ops), FULL_REPLIES_OPS };
    im_presence p = { &presence };
    im_delivery d = { &delivery };
    im_replies r = { &replies };
    im_route_ports ports = { &p, &d, &r };
    char absent[64];
    im_error e = { 0 };
    /* is_reserved and send_history NULL in complete tables: nothing absent. */
    assert_int_equal(im__abi_route(&ports, absent, sizeof absent, &e), IM_OK);
    assert_string_equal(absent, "");
    assert_false(im_presence_is_reserved(&p, "alice"));
    /* Ending before is_reserved (which is set past the size): absent, and
     * never read. */
    static const struct im_presence_ops short_presence = {
        .size = offsetof(struct im_presence_ops, is_reserved), FULL_PRESENCE_OPS,
        .is_reserved = fp_yes,
    };
    p.ops = &short_presence;
    assert_int_equal(im__abi_route(&ports, absent, sizeof absent, &e), IM_OK);
    assert_string_equal(absent, "is_reserved");
    assert_false(im_presence_is_reserved(&p, "alice"));
    assert_true(im_presence_is_online(&p, "alice"));
    /* A delivery table without kick: refused, naming it. */
    static const struct im_delivery_ops no_kick = {
        .size = offsetof(struct im_delivery_ops, kick), FULL_DELIVERY_OPS };
    d.ops = &no_kick;
    assert_int_equal(im__abi_route(&ports, NULL, 0, &e), IM_EUNSUPPORTED);
    assert_non_null(strstr(e.msg, "its delivery table"));
    assert_non_null(strstr(e.msg, "has no kick"));
    /* A NULL table (a cluster adapter gives no replies) is not looked at. */
    d.ops = &delivery;
    ports.replies = NULL;
    assert_int_equal(im__abi_route(&ports, NULL, 0, &e), IM_OK);
}

/* ---- plugin API 2: one route table ---- */

typedef struct fake_router_v2 {
    im_router_v2 base;
    int delivered, kicked, answered;
} fake_router_v2;

static int f2_deliver(im_router_v2 *r, const im_message *m, const char *name, im_error *err)
{
    (void)m, (void)name, (void)err;
    ((fake_router_v2 *)r)->delivered++;
    return IM_OK;
}

static void f2_kick(im_router_v2 *r, const im_endpoint *ep, int code, const char *why)
{
    (void)ep, (void)code, (void)why;
    ((fake_router_v2 *)r)->kicked++;
}

static void f2_send_status(im_router_v2 *r, const im_endpoint *ep, uint64_t rid, int rc,
                           const char *msg)
{
    (void)ep, (void)rid, (void)rc, (void)msg;
    ((fake_router_v2 *)r)->answered++;
}

static bool f2_yes(im_router_v2 *r, const char *user)
{
    (void)r, (void)user;
    return true;
}

#define FULL_ROUTER_V2_OPS                                                                   \
    .name = "fake", .bind = ANY(int (*)(im_router_v2 *, const char *, const char *,          \
                                        const im_endpoint *, im_login_policy,                 \
                                        im_endpoint *, im_error *)),                          \
    .unbind = ANY(bool (*)(im_router_v2 *, const char *, const im_endpoint *)),              \
    .is_online = f2_yes, .deliver = f2_deliver,                                              \
    .deliver_many = ANY(int (*)(im_router_v2 *, const char *const *, size_t, const char *,   \
                                const im_message *, const char *)),                          \
    .kick = f2_kick,                                                                         \
    .list_online = ANY(size_t (*)(im_router_v2 *, im_router_user_fn, void *)),               \
    .deliver_to = ANY(void (*)(im_router_v2 *, const im_endpoint *, const im_message *,      \
                               const char *)),                                               \
    .send_result = ANY(void (*)(im_router_v2 *, const im_endpoint *, uint64_t, const char *, \
                                int, const im_send_result *, const char *)),                 \
    .send_status = f2_send_status,                                                           \
    .with_session = ANY(void (*)(im_router_v2 *, const im_endpoint *,                        \
                                 void (*)(void *, im_session *), void *)),                   \
    .send_login_result = ANY(void (*)(im_router_v2 *, const im_endpoint *, uint64_t, int,    \
                                      const im_session *, const char *, const char *))

static void test_router_v2_split(void **state)
{
    (void)state;
    /* Complete but for the optional ones: cut in three, each forwarding. */
    static const struct im_router_ops_v2 full = { .size = sizeof(struct im_router_ops_v2),
                                                  FULL_ROUTER_V2_OPS };
    fake_router_v2 fr = { .base.ops = &full };
    im_route_ports out;
    void *shim = NULL;
    char absent[64];
    im_error e = { 0 };
    assert_int_equal(im__abi_split_v2(&fr.base, &out, &shim, absent, sizeof absent, &e), IM_OK);
    assert_non_null(shim);
    assert_string_equal(absent, "");
    assert_int_equal(im__abi_route(&out, NULL, 0, &e), IM_OK);
    im_message m = { .kind = IM_MESSAGE_PRIVATE, .sender = "a", .target = "b" };
    assert_int_equal(im_delivery_deliver(out.delivery, &m, NULL, NULL), IM_OK);
    assert_int_equal(fr.delivered, 1);
    im_endpoint ep = { .node = 2, .worker = 0, .conn_id = 9 };
    im_delivery_kick(out.delivery, &ep, IM_EREPLACED, "replaced");
    assert_int_equal(fr.kicked, 1);
    im_replies_send_status(out.replies, &ep, 1, IM_OK, NULL);
    assert_int_equal(fr.answered, 1);
    assert_true(im_presence_is_online(out.presence, "a"));
    assert_false(im_presence_is_reserved(out.presence, "a")); /* NULL: none are */
    assert_false(IM_ROUTE_HAS(out.replies, send_history));
    free(shim);
    /* Ending before is_reserved: both optional ones absent. */
    static const struct im_router_ops_v2 short_table = {
        .size = offsetof(struct im_router_ops_v2, is_reserved), FULL_ROUTER_V2_OPS,
        .is_reserved = f2_yes, /* past the size: never to be read */
    };
    fr.base.ops = &short_table;
    assert_int_equal(im__abi_split_v2(&fr.base, &out, &shim, absent, sizeof absent, &e), IM_OK);
    assert_string_equal(absent, "is_reserved, send_history");
    assert_false(im_presence_is_reserved(out.presence, "alice"));
    free(shim);
    /* Ending before with_session: refused, naming it. */
    static const struct im_router_ops_v2 shorter = {
        .size = offsetof(struct im_router_ops_v2, with_session), FULL_ROUTER_V2_OPS };
    fr.base.ops = &shorter;
    assert_int_equal(im__abi_split_v2(&fr.base, &out, &shim, NULL, 0, &e), IM_EUNSUPPORTED);
    assert_null(shim);
    assert_non_null(strstr(e.msg, "its route table"));
    assert_non_null(strstr(e.msg, "has no with_session"));
}

/* The three tables joined in one, for a cluster adapter of version 2. */
typedef struct three {
    im_presence p;
    im_delivery d;
    im_replies r;
    int delivered, statuses;
} three;

static int t3_deliver(im_delivery *d, const im_message *m, const char *name, im_error *err)
{
    (void)m, (void)name, (void)err;
    ((three *)(void *)((char *)d - offsetof(three, d)))->delivered++;
    return IM_OK;
}

static void t3_send_status(im_replies *r, const im_endpoint *ep, uint64_t rid, int rc,
                           const char *msg)
{
    (void)ep, (void)rid, (void)rc, (void)msg;
    ((three *)(void *)((char *)r - offsetof(three, r)))->statuses++;
}

static void test_router_v2_join(void **state)
{
    (void)state;
    static const struct im_presence_ops presence = {
        .size = sizeof(struct im_presence_ops), FULL_PRESENCE_OPS };
    struct im_delivery_ops delivery = { .size = sizeof(struct im_delivery_ops),
                                        FULL_DELIVERY_OPS };
    delivery.deliver = t3_deliver;
    struct im_replies_ops replies = { .size = sizeof(struct im_replies_ops), FULL_REPLIES_OPS };
    replies.send_status = t3_send_status;
    three t = { .p = { &presence }, .d = { &delivery }, .r = { &replies } };
    im_route_ports local = { &t.p, &t.d, &t.r };
    im_router_v2 *j = NULL;
    im_error e = { 0 };
    assert_int_equal(im__abi_join_v2(&local, &j, &e), IM_OK);
    assert_true(j->ops->size == sizeof(struct im_router_ops_v2));
    im_message m = { .kind = IM_MESSAGE_PRIVATE, .sender = "a", .target = "b" };
    assert_int_equal(j->ops->deliver(j, &m, NULL, NULL), IM_OK);
    assert_int_equal(t.delivered, 1);
    assert_true(j->ops->is_online(j, "a"));
    assert_false(j->ops->is_reserved(j, "a"));
    /* The transport has no send_history: the adapter calling it anyway
     * gets the request refused, as version 2's application did. */
    im_endpoint ep = { 0 };
    j->ops->send_history(j, &ep, 3, IM_OK, NULL, 0, NULL);
    assert_int_equal(t.statuses, 1);
    /* Cut in three again: the round trip forwards to the same tables. */
    im_route_ports again;
    void *shim = NULL;
    assert_int_equal(im__abi_split_v2(j, &again, &shim, NULL, 0, &e), IM_OK);
    assert_int_equal(im_delivery_deliver(again.delivery, &m, NULL, NULL), IM_OK);
    assert_int_equal(t.delivered, 2);
    free(shim);
    free(j);
}

/* ---- the transport ---- */

typedef struct fake_transport {
    imcore_transport base;
    int runs, destroyed;
    fake_router_v2 router;        /* what a transport of version 2 gives */
} fake_transport;

static im_presence *ft_presence(imcore_transport *t)
{
    (void)t;
    return NULL;
}

static im_delivery *ft_delivery(imcore_transport *t)
{
    (void)t;
    return NULL;
}

static im_replies *ft_replies(imcore_transport *t)
{
    (void)t;
    return NULL;
}

static im_router_v2 *ft_router_v2(imcore_transport *t)
{
    return &((fake_transport *)t)->router.base;
}

static int ft_run(imcore_transport *t, const imcore_core_api *core, im_app *app, im_error *err)
{
    (void)core, (void)app, (void)err;
    ((fake_transport *)t)->runs++;
    return IM_OK;
}

static void ft_destroy(imcore_transport *t)
{
    ((fake_transport *)t)->destroyed++;
}

static unsigned ft_port(const imcore_transport *t)
{
    (void)t;
    return 7000;
}

static void test_transport_tables(void **state)
{
    (void)state;
    static const struct imcore_transport_ops full = {
        .size = sizeof(struct imcore_transport_ops), .name = "fake",
        .presence = ft_presence, .delivery = ft_delivery, .replies = ft_replies,
        .run = ft_run, .destroy = ft_destroy, .bound_port = ft_port,
        .stop = (void (*)(imcore_transport *))ft_destroy,
    };
    fake_transport ft = { .base.ops = &full };
    imcore_transport *out = NULL;
    char absent[64];
    im_error e = { 0 };
    assert_int_equal(im__abi_transport(&ft.base, 3, &out, absent, sizeof absent, &e), IM_OK);
    assert_ptr_equal(out, &ft.base);
    /* Without bound_port and stop: port 0, and stop does nothing. */
    static const struct imcore_transport_ops short_table = {
        .size = offsetof(struct imcore_transport_ops, bound_port), .name = "fake",
        .presence = ft_presence, .delivery = ft_delivery, .replies = ft_replies,
        .run = ft_run, .destroy = ft_destroy, .bound_port = ft_port,
    };
    ft.base.ops = &short_table;
    assert_int_equal(im__abi_transport(&ft.base, 3, &out, absent, sizeof absent, &e), IM_OK);
    assert_ptr_not_equal(out, &ft.base);
    assert_string_equal(absent, "bound_port, stop");
    assert_int_equal(out->ops->bound_port(out), 0);
    out->ops->stop(out);
    assert_int_equal(ft.destroyed, 0);
    assert_int_equal(out->ops->run(out, NULL, NULL, NULL), IM_OK);
    assert_int_equal(ft.runs, 1);
    imcore_transport_destroy(out);
    assert_int_equal(ft.destroyed, 1);
}

/* A transport of plugin API 2: its table has one router where version 3
 * has three; the shim hands out that table cut in three. */
static void test_transport_of_version_2(void **state)
{
    (void)state;
    static const struct im_router_ops_v2 router_ops = {
        .size = sizeof(struct im_router_ops_v2), FULL_ROUTER_V2_OPS };
    static const struct imcore_transport_ops_v2 v2 = {
        .size = sizeof(struct imcore_transport_ops_v2), .name = "old",
        .router = ft_router_v2, .run = ft_run, .destroy = ft_destroy, .bound_port = ft_port,
    };
    fake_transport ft = { .base.ops = (const struct imcore_transport_ops *)(const void *)&v2,
                          .router.base.ops = &router_ops };
    imcore_transport *out = NULL;
    char absent[64];
    im_error e = { 0 };
    assert_int_equal(im__abi_transport(&ft.base, 2, &out, absent, sizeof absent, &e), IM_OK);
    assert_ptr_not_equal(out, &ft.base);
    assert_string_equal(absent, "stop");
    assert_int_equal(out->ops->bound_port(out), 7000);
    im_route_ports ports = { out->ops->presence(out), out->ops->delivery(out),
                             out->ops->replies(out) };
    assert_int_equal(im__abi_route(&ports, NULL, 0, &e), IM_OK);
    im_message m = { .kind = IM_MESSAGE_PRIVATE, .sender = "a", .target = "b" };
    assert_int_equal(im_delivery_deliver(ports.delivery, &m, NULL, NULL), IM_OK);
    assert_int_equal(ft.router.delivered, 1);
    assert_int_equal(out->ops->run(out, NULL, NULL, NULL), IM_OK);
    imcore_transport_destroy(out);
    assert_int_equal(ft.destroyed, 1);
    /* A router table of version 2 without with_session: refused, and the
     * transport destroyed. */
    static const struct im_router_ops_v2 short_router = {
        .size = offsetof(struct im_router_ops_v2, with_session), FULL_ROUTER_V2_OPS };
    ft.router.base.ops = &short_router;
    ft.destroyed = 0;
    assert_int_equal(im__abi_transport(&ft.base, 2, &out, NULL, 0, &e), IM_EUNSUPPORTED);
    assert_non_null(strstr(e.msg, "has no with_session"));
    assert_int_equal(ft.destroyed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choose_current_and_version_1),
        cmocka_unit_test(test_choose_the_newest_in_common),
        cmocka_unit_test(test_choose_refuses_bad_descriptions),
        cmocka_unit_test(test_choose_checks_a_transports_sessions),
        cmocka_unit_test(test_store_complete_is_used_as_it_is),
        cmocka_unit_test(test_store_short_works_for_what_it_has),
        cmocka_unit_test(test_store_refusals),
        cmocka_unit_test(test_route_tables),
        cmocka_unit_test(test_router_v2_split),
        cmocka_unit_test(test_router_v2_join),
        cmocka_unit_test(test_store_shim_keeps_accounts),
        cmocka_unit_test(test_transport_tables),
        cmocka_unit_test(test_transport_of_version_2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
