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
    assert_string_equal(e.msg, "built for plugin API 5, this server speaks 1 to 2: it needs a "
                               "newer server");
    future.api_min = 3;
    assert_int_equal(choose(&future, IM_ABI_EXTENSION, &v, &e), IM_EINVAL);
    assert_non_null(strstr(e.msg, "built for plugin API 3 to 5,"));
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

static int fs_account(im_store *s, const im_account_request *q, im_store_account_fn done,
                      void *arg, im_error *err)
{
    (void)s, (void)q, (void)err;
    done(arg, IM_ENOTFOUND, NULL, NULL);
    return IM_OK;
}

static void record_account(void *arg, int rc, const im_account_record *rec, const im_error *err)
{
    (void)arg, (void)rec, (void)err;
    done_rc = rc;
}

/* A table of this server's size that lacks an operation the shim falls
 * back for: the operations appended after it still reach the adapter. */
static void test_store_shim_keeps_appended_ops(void **state)
{
    (void)state;
    struct im_store_ops no_kv = full_store;
    no_kv.kv_put = NULL;
    no_kv.kv_each = NULL;
    no_kv.account = fs_account;
    fake_store fs = { .base.ops = &no_kv };
    im_store *out = NULL;
    char absent[128];
    im_error e = { 0 };
    assert_int_equal(im__abi_store(&fs.base, 2, &out, absent, sizeof absent, &e), IM_OK);
    assert_ptr_not_equal(out, &fs.base);
    assert_string_equal(absent, "kv_put, kv_each");
    assert_true(IM_STORE_HAS(out, account));
    im_account_request q = { .size = sizeof q, .op = IM_ACCOUNT_GET, .user = "a" };
    done_rc = 99;
    assert_int_equal(out->ops->account(out, &q, record_account, NULL, NULL), IM_OK);
    assert_int_equal(done_rc, IM_ENOTFOUND);
    assert_false(IM_STORE_HAS(out, history_read));
    im_store_destroy(out);
    assert_int_equal(fs.destroyed, 1);
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

typedef struct fake_router {
    im_router base;
    int delivered;
} fake_router;

static int fr_deliver(im_router *r, const im_message *m, const char *name, im_error *err)
{
    (void)m, (void)name, (void)err;
    ((fake_router *)r)->delivered++;
    return IM_OK;
}

static bool fr_yes(im_router *r, const char *user)
{
    (void)r, (void)user;
    return true;
}

static void fr_any(void)
{
}

#define ANY(type) ((type)(void (*)(void))fr_any)
#define FULL_ROUTER_OPS                                                                      \
    .name = "fake", .bind = ANY(int (*)(im_router *, const char *, const char *,             \
                                        const im_endpoint *, im_login_policy,                 \
                                        im_endpoint *, im_error *)),                          \
    .unbind = ANY(bool (*)(im_router *, const char *, const im_endpoint *)),                 \
    .is_online = fr_yes, .deliver = fr_deliver,                                              \
    .deliver_many = ANY(int (*)(im_router *, const char *const *, size_t, const char *,      \
                                const im_message *, const char *)),                          \
    .kick = ANY(void (*)(im_router *, const im_endpoint *, int, const char *)),              \
    .list_online = ANY(size_t (*)(im_router *, im_router_user_fn, void *)),                  \
    .deliver_to = ANY(void (*)(im_router *, const im_endpoint *, const im_message *,         \
                               const char *)),                                               \
    .send_result = ANY(void (*)(im_router *, const im_endpoint *, uint64_t, const char *,    \
                                int, const im_send_result *, const char *)),                 \
    .send_status = ANY(void (*)(im_router *, const im_endpoint *, uint64_t, int,             \
                                const char *)),                                              \
    .with_session = ANY(void (*)(im_router *, const im_endpoint *,                           \
                                 void (*)(void *, im_session *), void *)),                   \
    .send_login_result = ANY(void (*)(im_router *, const im_endpoint *, uint64_t, int,       \
                                      const im_session *, const char *, const char *))

static void test_router_tables(void **state)
{
    (void)state;
    /* Complete, is_reserved NULL: "none are", which the application
     * checks itself: used as it is. */
    static const struct im_router_ops full = { .size = sizeof(struct im_router_ops),
                                               FULL_ROUTER_OPS };
    fake_router fr = { .base.ops = &full };
    im_router *out = NULL;
    void *shim = (void *)1;
    char absent[64];
    im_error e = { 0 };
    assert_int_equal(im__abi_router(&fr.base, &out, &shim, absent, sizeof absent, &e), IM_OK);
    assert_ptr_equal(out, &fr.base);
    assert_null(shim);
    assert_string_equal(absent, "");
    /* Ending before is_reserved: a shim, with is_reserved answering no. */
    static const struct im_router_ops short_table = {
        .size = offsetof(struct im_router_ops, is_reserved), FULL_ROUTER_OPS,
        .is_reserved = fr_yes, /* past the size: never to be read */
    };
    fr.base.ops = &short_table;
    assert_int_equal(im__abi_router(&fr.base, &out, &shim, absent, sizeof absent, &e), IM_OK);
    assert_ptr_not_equal(out, &fr.base);
    assert_ptr_equal(shim, out);
    assert_string_equal(absent, "is_reserved");
    assert_false(out->ops->is_reserved(out, "alice"));
    assert_true(out->ops->is_online(out, "alice"));
    im_message m = { .kind = IM_MESSAGE_PRIVATE, .sender = "a", .target = "b" };
    assert_int_equal(out->ops->deliver(out, &m, NULL, NULL), IM_OK);
    assert_int_equal(fr.delivered, 1);
    free(shim);
    /* Ending before with_session: refused, naming it. */
    static const struct im_router_ops shorter = {
        .size = offsetof(struct im_router_ops, with_session), FULL_ROUTER_OPS };
    fr.base.ops = &shorter;
    assert_int_equal(im__abi_router(&fr.base, &out, &shim, NULL, 0, &e), IM_EUNSUPPORTED);
    assert_non_null(strstr(e.msg, "its route table"));
    assert_non_null(strstr(e.msg, "has no with_session"));
}

/* ---- the transport ---- */

typedef struct fake_transport {
    imcore_transport base;
    int runs, destroyed;
} fake_transport;

static im_router *ft_router(imcore_transport *t)
{
    (void)t;
    return NULL;
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
        .size = sizeof(struct imcore_transport_ops), .name = "fake", .router = ft_router,
        .run = ft_run, .destroy = ft_destroy, .bound_port = ft_port,
        .stop = (void (*)(imcore_transport *))ft_destroy,
    };
    fake_transport ft = { .base.ops = &full };
    imcore_transport *out = NULL;
    char absent[64];
    im_error e = { 0 };
    assert_int_equal(im__abi_transport(&ft.base, &out, absent, sizeof absent, &e), IM_OK);
    assert_ptr_equal(out, &ft.base);
    /* Without bound_port and stop: port 0, and stop does nothing. */
    static const struct imcore_transport_ops short_table = {
        .size = offsetof(struct imcore_transport_ops, bound_port), .name = "fake",
        .router = ft_router, .run = ft_run, .destroy = ft_destroy, .bound_port = ft_port,
    };
    ft.base.ops = &short_table;
    assert_int_equal(im__abi_transport(&ft.base, &out, absent, sizeof absent, &e), IM_OK);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choose_current_and_version_1),
        cmocka_unit_test(test_choose_the_newest_in_common),
        cmocka_unit_test(test_choose_refuses_bad_descriptions),
        cmocka_unit_test(test_choose_checks_a_transports_sessions),
        cmocka_unit_test(test_store_complete_is_used_as_it_is),
        cmocka_unit_test(test_store_short_works_for_what_it_has),
        cmocka_unit_test(test_store_shim_keeps_appended_ops),
        cmocka_unit_test(test_store_refusals),
        cmocka_unit_test(test_router_tables),
        cmocka_unit_test(test_transport_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
