/* infrastructure/plugin_host/im_plugin_abi.c: see the header.
 *
 * Every table is first copied into this server's layout, with a NULL for
 * each operation the adapter's table does not reach (or reaches with
 * NULL); then the copy is checked once against a list of the operations
 * and whether each is required. Nothing missing, and the layout is this
 * server's: the adapter's own table is used, untouched. Otherwise a shim
 * holds the copy with the fallbacks filled in, and its own table of
 * forwarders, which is what the application calls. */
#include "im_plugin_abi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- versions ---- */

/* How the compiler ABI of theirs differs from ours, for people: only what
 * differs ("big-endian (here little-endian), pointer 4 (here 8)"). */
static void abi_differences(uint32_t theirs, uint32_t ours, char *buf, size_t size)
{
    static const char *const field[] = { "int", "long", "size_t", "pointer", "enum" };
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < 6 && used < size; i++) {
        unsigned a = (theirs >> (4 * i)) & 0xF, b = (ours >> (4 * i)) & 0xF;
        if (a == b)
            continue;
        int w;
        if (i == 5)
            w = snprintf(buf + used, size - used, "%s%s (here %s)", used ? ", " : "",
                         a == 2 ? "big-endian" : a == 1 ? "little-endian" : "no byte order",
                         b == 2 ? "big-endian" : "little-endian");
        else
            w = snprintf(buf + used, size - used, "%s%s %u (here %u)", used ? ", " : "",
                         field[i], a, b);
        used += w > 0 ? (size_t)w : 0;
    }
}

/* What a description must reach: every field of version 2's. */
#define ABOUT_MIN (offsetof(imcore_plugin_info, session_size) + sizeof(size_t))

int im__abi_choose(const imcore_plugin_info *about, im_abi_role role, size_t session_size,
                   unsigned *version, im_error *err)
{
    *version = 0;
    if (!about) {
        /* Version 1 had no description: an init alone says version 1. */
        if (role == IM_ABI_TRANSPORT)
            return im_error_set(err, IM_EINVAL,
                                "a transport of plugin API 1 (no %s) may embed sessions of "
                                "another size: not loaded; rebuild it",
                                IMCORE_PLUGIN_ABOUT_SYMBOL);
        if (role == IM_ABI_CLUSTER)
            return im_error_set(err, IM_EINVAL,
                                "a cluster adapter of plugin API 1 (no %s) is not served; "
                                "rebuild it", IMCORE_PLUGIN_ABOUT_SYMBOL);
        *version = 1;
        return IM_OK;
    }
    uint32_t mine = IMCORE_PLUGIN_SIGNATURE;
    if (IMCORE_PLUGIN_SIGNATURE_ABI(about->signature) != IMCORE_PLUGIN_SIGNATURE_ABI(mine)) {
        char diff[128];
        abi_differences(about->signature, mine, diff, sizeof diff);
        return im_error_set(err, IM_EINVAL, "built for another ABI: %s; rebuild it here", diff);
    }
    if (about->size < ABOUT_MIN)
        return im_error_set(err, IM_EINVAL, "its %s is %u bytes, too short (%zu)",
                            IMCORE_PLUGIN_ABOUT_SYMBOL, (unsigned)about->size, ABOUT_MIN);
    unsigned lo = about->api_min, hi = about->api_max;
    unsigned built = IMCORE_PLUGIN_SIGNATURE_API(about->signature);
    if (lo == 0 || lo > hi || hi > built)
        return im_error_set(err, IM_EINVAL, "its %s claims plugin API %u to %u, with the "
                            "header of %u", IMCORE_PLUGIN_ABOUT_SYMBOL, lo, hi, built);
    char range[32];
    if (lo == hi)
        snprintf(range, sizeof range, "%u", lo);
    else
        snprintf(range, sizeof range, "%u to %u", lo, hi);
    if (lo > IMCORE_PLUGIN_API_VERSION)
        return im_error_set(err, IM_EINVAL,
                            "built for plugin API %s, this server speaks %u to %u: it needs a "
                            "newer server", range, IM_PLUGIN_API_OLDEST,
                            IMCORE_PLUGIN_API_VERSION);
    if (hi < IM_PLUGIN_API_OLDEST)
        return im_error_set(err, IM_EINVAL,
                            "built for plugin API %s, this server speaks %u to %u: rebuild it",
                            range, IM_PLUGIN_API_OLDEST, IMCORE_PLUGIN_API_VERSION);
    unsigned v = hi < IMCORE_PLUGIN_API_VERSION ? hi : IMCORE_PLUGIN_API_VERSION;
    if (role == IM_ABI_TRANSPORT && v < 2)
        return im_error_set(err, IM_EINVAL, "a transport of plugin API 1 may embed sessions of "
                                            "another size: not loaded; rebuild it");
    if (role == IM_ABI_CLUSTER && v < 2)
        return im_error_set(err, IM_EINVAL,
                            "a cluster adapter of plugin API 1 is not served; rebuild it");
    if (role == IM_ABI_TRANSPORT && about->session_size != 0 &&
        about->session_size != session_size)
        return im_error_set(err, IM_EINVAL,
                            "built for sessions of %zu bytes, this server's are %zu: built "
                            "for another server version; rebuild it",
                            about->session_size, session_size);
    *version = v;
    return IM_OK;
}

/* ---- checking a table ---- */

typedef void (*any_fn)(void);

/* What an operation of a port's table is to the server. */
typedef enum op_need {
    REQUIRED,                     /* no fallback: a table without it is refused */
    OPTIONAL,                     /* absent: the fallback of the port's header */
    /* Optional, and the server's callers take NULL for absent (the
     * header said "NULL: ..." from the start): only a table too short to
     * hold it needs the fallback. */
    NULL_MEANS_ABSENT,
} op_need;

/* One operation of a port's table, as the checks see it. */
typedef struct op_desc {
    const char *name;
    size_t offset;
    op_need need;
} op_desc;

#define OP(type, field, need) { #field, offsetof(type, field), need }

/* Looks at every operation of the copy `have` (this server's layout, NULL
 * where absent) of a table of their_size bytes: a required one missing is
 * an error naming it; the optional ones missing go to absent. Returns how
 * many are missing (0: none, the table can be used as it is), or
 * IM_EUNSUPPORTED. */
static int check_ops(const void *have, const op_desc *ops, size_t n, const char *port,
                     size_t their_size, size_t our_size, char *absent, size_t absent_size,
                     im_error *err)
{
    int missing = 0;
    size_t used = 0;
    if (absent && absent_size)
        absent[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        any_fn fn;
        memcpy(&fn, (const char *)have + ops[i].offset, sizeof fn);
        if (fn)
            continue;
        if (ops[i].need == NULL_MEANS_ABSENT && their_size >= ops[i].offset + sizeof fn)
            continue;
        if (ops[i].need == REQUIRED)
            return im_error_set(err, IM_EUNSUPPORTED,
                                "its %s table (%zu bytes, this server's %zu) has no %s, "
                                "which the server needs", port, their_size, our_size,
                                ops[i].name);
        missing++;
        if (absent && used < absent_size) {
            int w = snprintf(absent + used, absent_size - used, "%s%s", used ? ", " : "",
                             ops[i].name);
            used += w > 0 ? (size_t)w : 0;
        }
    }
    return missing;
}

/* The size a table of version 2 or later says it has, which must at least
 * reach the first operation. */
static int sized(size_t size, size_t first_op, const char *port, im_error *err)
{
    if (size < first_op + sizeof(any_fn))
        return im_error_set(err, IM_EUNSUPPORTED,
                            "its %s table has a size of %zu bytes: not a table of plugin "
                            "API 2 or later (is .size set?)", port, size);
    return IM_OK;
}

/* ---- the storage port ---- */

/* The storage port of plugin API 1, as include/imcore/storage.h had it:
 * frozen here, for adapters built then. */
struct im_store_ops_v1 {
    const char *name;
    bool durable;
    int (*append)(im_store *s, const im_message *m, im_store_append_fn done, void *arg,
                  im_error *err);
    int (*pending)(im_store *s, const char *user, size_t limit, im_store_message_fn each,
                   im_store_done_fn done, void *arg, im_error *err);
    int (*ack)(im_store *s, const char *user, const char *conversation, uint64_t seq,
               im_error *err);
    int (*history)(im_store *s, const char *conversation, uint64_t before_seq, size_t limit,
                   im_store_message_fn each, void *arg, im_error *err);
    int (*barrier)(im_store *s, im_store_done_fn done, void *arg, im_error *err);
    int (*group_create)(im_store *s, const char *group, const char *owner, uint32_t max_members,
                        im_store_done_fn done, void *arg, im_error *err);
    int (*group_join)(im_store *s, const char *group, const char *user, im_store_done_fn done,
                      void *arg, im_error *err);
    int (*group_leave)(im_store *s, const char *group, const char *user, im_store_done_fn done,
                       void *arg, im_error *err);
    int (*load_groups)(im_store *s, int (*fn)(void *arg, const im_group_record *g), void *arg,
                       im_error *err);
    int (*kv_put)(im_store *s, const char *ns, const char *key, const void *value, size_t len,
                  im_store_done_fn done, void *arg, im_error *err);
    int (*kv_each)(im_store *s, const char *ns, const char *prefix, im_store_kv_fn fn,
                   void *arg, im_error *err);
    void (*destroy)(im_store *s);
};

static const op_desc store_ops[] = {
    OP(struct im_store_ops, append, REQUIRED),
    OP(struct im_store_ops, pending, REQUIRED),
    OP(struct im_store_ops, ack, REQUIRED),
    OP(struct im_store_ops, history, REQUIRED),
    OP(struct im_store_ops, barrier, REQUIRED),
    OP(struct im_store_ops, destroy, REQUIRED),
    OP(struct im_store_ops, group_create, OPTIONAL),
    OP(struct im_store_ops, group_join, OPTIONAL),
    OP(struct im_store_ops, group_leave, OPTIONAL),
    OP(struct im_store_ops, load_groups, OPTIONAL),
    OP(struct im_store_ops, kv_put, OPTIONAL),
    OP(struct im_store_ops, kv_each, OPTIONAL),
    /* group_change is not listed: a table without it is used as it is,
     * and the application, which reads the table for it, falls back
     * (imcore/storage.h). */
};

typedef struct store_shim {
    im_store base;                /* first: base.ops is &fwd */
    struct im_store_ops fwd;      /* the forwarders below, with the adapter's name and durable */
    struct im_store_ops have;     /* the adapter's operations, fallbacks where it has none */
    im_store *inner;
} store_shim;

#define STORE(s) ((store_shim *)(s))

static int fwd_append(im_store *s, const im_message *m, im_store_append_fn done, void *arg,
                      im_error *err)
{
    return STORE(s)->have.append(STORE(s)->inner, m, done, arg, err);
}

static int fwd_pending(im_store *s, const char *user, size_t limit, im_store_message_fn each,
                       im_store_done_fn done, void *arg, im_error *err)
{
    return STORE(s)->have.pending(STORE(s)->inner, user, limit, each, done, arg, err);
}

static int fwd_ack(im_store *s, const char *user, const char *conv, uint64_t seq, im_error *err)
{
    return STORE(s)->have.ack(STORE(s)->inner, user, conv, seq, err);
}

static int fwd_history(im_store *s, const char *conv, uint64_t before_seq, size_t limit,
                       im_store_message_fn each, void *arg, im_error *err)
{
    return STORE(s)->have.history(STORE(s)->inner, conv, before_seq, limit, each, arg, err);
}

static int fwd_history_read(im_store *s, const char *conv, uint64_t before_seq, size_t limit,
                            size_t max_bytes, im_store_message_fn each, im_store_done_fn done,
                            void *arg, im_error *err)
{
    return STORE(s)->have.history_read(STORE(s)->inner, conv, before_seq, limit, max_bytes,
                                       each, done, arg, err);
}

static int fwd_group_change(im_store *s, const im_group_change *c, im_store_group_fn done,
                            void *arg, im_error *err)
{
    return STORE(s)->have.group_change(STORE(s)->inner, c, done, arg, err);
}

static int fwd_pending_read(im_store *s, const char *user, size_t limit, size_t max_bytes,
                            im_store_message_fn each, im_store_done_fn done, void *arg,
                            im_error *err)
{
    return STORE(s)->have.pending_read(STORE(s)->inner, user, limit, max_bytes, each, done,
                                       arg, err);
}

static int fwd_account(im_store *s, const im_account_request *q, im_store_account_fn done,
                       void *arg, im_error *err)
{
    return STORE(s)->have.account(STORE(s)->inner, q, done, arg, err);
}

static int fwd_barrier(im_store *s, im_store_done_fn done, void *arg, im_error *err)
{
    return STORE(s)->have.barrier(STORE(s)->inner, done, arg, err);
}

static void fwd_destroy(im_store *s)
{
    if (!s)
        return;
    STORE(s)->have.destroy(STORE(s)->inner);
    free(s);
}

static int fwd_group_create(im_store *s, const char *group, const char *owner,
                            uint32_t max_members, im_store_done_fn done, void *arg,
                            im_error *err)
{
    return STORE(s)->have.group_create(STORE(s)->inner, group, owner, max_members, done, arg,
                                       err);
}

static int fwd_group_join(im_store *s, const char *group, const char *user,
                          im_store_done_fn done, void *arg, im_error *err)
{
    return STORE(s)->have.group_join(STORE(s)->inner, group, user, done, arg, err);
}

static int fwd_group_leave(im_store *s, const char *group, const char *user,
                           im_store_done_fn done, void *arg, im_error *err)
{
    return STORE(s)->have.group_leave(STORE(s)->inner, group, user, done, arg, err);
}

static int fwd_load_groups(im_store *s, int (*fn)(void *arg, const im_group_record *g),
                           void *arg, im_error *err)
{
    return STORE(s)->have.load_groups(STORE(s)->inner, fn, arg, err);
}

static int fwd_kv_put(im_store *s, const char *ns, const char *key, const void *value,
                      size_t len, im_store_done_fn done, void *arg, im_error *err)
{
    return STORE(s)->have.kv_put(STORE(s)->inner, ns, key, value, len, done, arg, err);
}

static int fwd_kv_each(im_store *s, const char *ns, const char *prefix, im_store_kv_fn fn,
                       void *arg, im_error *err)
{
    return STORE(s)->have.kv_each(STORE(s)->inner, ns, prefix, fn, arg, err);
}

/* The fallbacks, as include/imcore/storage.h gives them. A membership
 * change completes at once and is kept nowhere, as in a memory store. */
static int fb_group_create(im_store *s, const char *group, const char *owner,
                           uint32_t max_members, im_store_done_fn done, void *arg, im_error *err)
{
    (void)s, (void)group, (void)owner, (void)max_members, (void)err;
    done(arg, IM_OK, NULL);
    return IM_OK;
}

static int fb_group_change(im_store *s, const char *group, const char *user,
                           im_store_done_fn done, void *arg, im_error *err)
{
    (void)s, (void)group, (void)user, (void)err;
    done(arg, IM_OK, NULL);
    return IM_OK;
}

static int fb_load_groups(im_store *s, int (*fn)(void *arg, const im_group_record *g),
                          void *arg, im_error *err)
{
    (void)s, (void)fn, (void)arg, (void)err;
    return 0;
}

static int fb_kv_put(im_store *s, const char *ns, const char *key, const void *value,
                     size_t len, im_store_done_fn done, void *arg, im_error *err)
{
    (void)s, (void)ns, (void)key, (void)value, (void)len, (void)done, (void)arg;
    return im_error_set(err, IM_EUNSUPPORTED, "the storage adapter has no key-value map");
}

static int fb_kv_each(im_store *s, const char *ns, const char *prefix, im_store_kv_fn fn,
                      void *arg, im_error *err)
{
    (void)s, (void)ns, (void)prefix, (void)fn, (void)arg;
    return im_error_set(err, IM_EUNSUPPORTED, "the storage adapter has no key-value map");
}

/* Version 1's table in this server's layout: every field by name. */
static void store_from_v1(const struct im_store_ops_v1 *v1, struct im_store_ops *have)
{
    *have = (struct im_store_ops){
        .size = sizeof *have, .name = v1->name, .durable = v1->durable,
        .append = v1->append, .pending = v1->pending, .ack = v1->ack,
        .history = v1->history, .barrier = v1->barrier, .destroy = v1->destroy,
        .group_create = v1->group_create, .group_join = v1->group_join,
        .group_leave = v1->group_leave, .load_groups = v1->load_groups,
        .kv_put = v1->kv_put, .kv_each = v1->kv_each,
    };
}

/* Copies the first size bytes of a table of this server's layout (the
 * size its adapter gives, at most ours) into have, the rest NULL. */
static void copy_table(void *have, size_t ours, const void *theirs, size_t size)
{
    memset(have, 0, ours);
    memcpy(have, theirs, size < ours ? size : ours);
}

int im__abi_store(im_store *s, unsigned version, im_store **out, char *absent,
                  size_t absent_size, im_error *err)
{
    *out = NULL;
    struct im_store_ops have;
    size_t their_size;
    if (version < 2) {
        store_from_v1((const struct im_store_ops_v1 *)(const void *)s->ops, &have);
        their_size = sizeof(struct im_store_ops_v1);
    } else {
        their_size = s->ops->size;
        int rc = sized(their_size, offsetof(struct im_store_ops, append), "store", err);
        if (rc != IM_OK)
            return rc; /* not even destroy can be trusted to be there */
        copy_table(&have, sizeof have, s->ops, their_size);
    }
    int missing = check_ops(&have, store_ops, sizeof store_ops / sizeof *store_ops, "store",
                            their_size, sizeof have, absent, absent_size, err);
    if (missing < 0) {
        if (have.destroy)
            have.destroy(s);
        return missing;
    }
    if (missing == 0 && version >= 2) {
        *out = s;
        return IM_OK;
    }
    store_shim *k = calloc(1, sizeof *k);
    if (!k) {
        have.destroy(s);
        return im_error_set(err, IM_ENOMEM, "out of memory");
    }
    k->inner = s;
    k->have = have;
    if (!k->have.group_create)
        k->have.group_create = fb_group_create;
    if (!k->have.group_join)
        k->have.group_join = fb_group_change;
    if (!k->have.group_leave)
        k->have.group_leave = fb_group_change;
    if (!k->have.load_groups)
        k->have.load_groups = fb_load_groups;
    if (!k->have.kv_put)
        k->have.kv_put = fb_kv_put;
    if (!k->have.kv_each)
        k->have.kv_each = fb_kv_each;
    k->fwd = (struct im_store_ops){
        .size = sizeof k->fwd,
        .name = have.name, .durable = have.durable,
        .append = fwd_append, .pending = fwd_pending, .ack = fwd_ack, .history = fwd_history,
        .barrier = fwd_barrier, .destroy = fwd_destroy, .group_create = fwd_group_create,
        .group_join = fwd_group_join, .group_leave = fwd_group_leave,
        .load_groups = fwd_load_groups, .kv_put = fwd_kv_put, .kv_each = fwd_kv_each,
        /* Appended reads: forwarded when the adapter has them, absent
         * otherwise, so that the application falls back. */
        .group_change = have.group_change ? fwd_group_change : NULL,
        .history_read = have.history_read ? fwd_history_read : NULL,
        .pending_read = have.pending_read ? fwd_pending_read : NULL,
        .account = have.account ? fwd_account : NULL,
    };
    k->base.ops = &k->fwd;
    *out = &k->base;
    return IM_OK;
}

/* ---- the route port ---- */

static const op_desc router_ops[] = {
    OP(struct im_router_ops, bind, REQUIRED),
    OP(struct im_router_ops, unbind, REQUIRED),
    OP(struct im_router_ops, is_online, REQUIRED),
    OP(struct im_router_ops, deliver, REQUIRED),
    OP(struct im_router_ops, deliver_many, REQUIRED),
    OP(struct im_router_ops, kick, REQUIRED),
    OP(struct im_router_ops, list_online, REQUIRED),
    OP(struct im_router_ops, deliver_to, REQUIRED),
    OP(struct im_router_ops, send_result, REQUIRED),
    OP(struct im_router_ops, send_status, REQUIRED),
    OP(struct im_router_ops, with_session, REQUIRED),
    OP(struct im_router_ops, send_login_result, REQUIRED),
    OP(struct im_router_ops, is_reserved, NULL_MEANS_ABSENT), /* im_app.c checks it */
    /* send_history is not listed: the application reads the table for it
     * (imcore/route.h), and the shim forwards it when the adapter has it. */
};

typedef struct router_shim {
    im_router base;               /* first: base.ops is &fwd */
    struct im_router_ops fwd;
    struct im_router_ops have;
    im_router *inner;
} router_shim;

#define ROUTER(r) ((router_shim *)(r))

static int rfwd_bind(im_router *r, const char *user_id, const char *display_name,
                     const im_endpoint *ep, im_login_policy policy, im_endpoint *replaced,
                     im_error *err)
{
    return ROUTER(r)->have.bind(ROUTER(r)->inner, user_id, display_name, ep, policy, replaced,
                                err);
}

static bool rfwd_unbind(im_router *r, const char *user_id, const im_endpoint *ep)
{
    return ROUTER(r)->have.unbind(ROUTER(r)->inner, user_id, ep);
}

static bool rfwd_is_online(im_router *r, const char *user_id)
{
    return ROUTER(r)->have.is_online(ROUTER(r)->inner, user_id);
}

static int rfwd_deliver(im_router *r, const im_message *m, const char *sender_name,
                        im_error *err)
{
    return ROUTER(r)->have.deliver(ROUTER(r)->inner, m, sender_name, err);
}

static int rfwd_deliver_many(im_router *r, const char *const *members, size_t n,
                             const char *skip, const im_message *m, const char *sender_name)
{
    return ROUTER(r)->have.deliver_many(ROUTER(r)->inner, members, n, skip, m, sender_name);
}

static void rfwd_kick(im_router *r, const im_endpoint *ep, int code, const char *why)
{
    ROUTER(r)->have.kick(ROUTER(r)->inner, ep, code, why);
}

static size_t rfwd_list_online(im_router *r, im_router_user_fn fn, void *arg)
{
    return ROUTER(r)->have.list_online(ROUTER(r)->inner, fn, arg);
}

static void rfwd_deliver_to(im_router *r, const im_endpoint *ep, const im_message *m,
                            const char *sender_name)
{
    ROUTER(r)->have.deliver_to(ROUTER(r)->inner, ep, m, sender_name);
}

static void rfwd_send_result(im_router *r, const im_endpoint *ep, uint64_t request_id,
                             const char *client_msg_id, int rc, const im_send_result *res,
                             const char *msg)
{
    ROUTER(r)->have.send_result(ROUTER(r)->inner, ep, request_id, client_msg_id, rc, res, msg);
}

static void rfwd_send_status(im_router *r, const im_endpoint *ep, uint64_t request_id, int rc,
                             const char *msg)
{
    ROUTER(r)->have.send_status(ROUTER(r)->inner, ep, request_id, rc, msg);
}

static void rfwd_with_session(im_router *r, const im_endpoint *ep,
                              void (*fn)(void *arg, im_session *s), void *arg)
{
    ROUTER(r)->have.with_session(ROUTER(r)->inner, ep, fn, arg);
}

static void rfwd_send_login_result(im_router *r, const im_endpoint *ep, uint64_t request_id,
                                   int rc, const im_session *s, const char *token,
                                   const char *msg)
{
    ROUTER(r)->have.send_login_result(ROUTER(r)->inner, ep, request_id, rc, s, token, msg);
}

static bool rfwd_is_reserved(im_router *r, const char *user_id)
{
    return ROUTER(r)->have.is_reserved(ROUTER(r)->inner, user_id);
}

static void rfwd_send_history(im_router *r, const im_endpoint *ep, uint64_t request_id, int rc,
                              const im_message *msgs, size_t n, const char *msg)
{
    ROUTER(r)->have.send_history(ROUTER(r)->inner, ep, request_id, rc, msgs, n, msg);
}

static bool rfb_is_reserved(im_router *r, const char *user_id)
{
    (void)r, (void)user_id;
    return false;
}

int im__abi_router(im_router *r, im_router **out, void **shim, char *absent, size_t absent_size,
                   im_error *err)
{
    *out = NULL;
    *shim = NULL;
    struct im_router_ops have;
    size_t their_size = r->ops->size;
    int rc = sized(their_size, offsetof(struct im_router_ops, bind), "route", err);
    if (rc != IM_OK)
        return rc;
    copy_table(&have, sizeof have, r->ops, their_size);
    int missing = check_ops(&have, router_ops, sizeof router_ops / sizeof *router_ops, "route",
                            their_size, sizeof have, absent, absent_size, err);
    if (missing < 0)
        return missing;
    if (missing == 0) {
        *out = r;
        return IM_OK;
    }
    router_shim *k = calloc(1, sizeof *k);
    if (!k)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    k->inner = r;
    k->have = have;
    if (!k->have.is_reserved)
        k->have.is_reserved = rfb_is_reserved;
    k->fwd = (struct im_router_ops){
        .size = sizeof k->fwd, .name = have.name,
        .bind = rfwd_bind, .unbind = rfwd_unbind, .is_online = rfwd_is_online,
        .deliver = rfwd_deliver, .deliver_many = rfwd_deliver_many, .kick = rfwd_kick,
        .list_online = rfwd_list_online, .deliver_to = rfwd_deliver_to,
        .send_result = rfwd_send_result, .send_status = rfwd_send_status,
        .with_session = rfwd_with_session, .send_login_result = rfwd_send_login_result,
        .is_reserved = rfwd_is_reserved,
        .send_history = have.send_history ? rfwd_send_history : NULL,
    };
    k->base.ops = &k->fwd;
    *out = &k->base;
    *shim = k;
    return IM_OK;
}

/* ---- the transport ---- */

static const op_desc transport_ops[] = {
    OP(struct imcore_transport_ops, router, REQUIRED),
    OP(struct imcore_transport_ops, run, REQUIRED),
    OP(struct imcore_transport_ops, destroy, REQUIRED),
    OP(struct imcore_transport_ops, bound_port, OPTIONAL),
    OP(struct imcore_transport_ops, stop, OPTIONAL),
};

typedef struct transport_shim {
    imcore_transport base;        /* first: base.ops is &fwd */
    struct imcore_transport_ops fwd;
    struct imcore_transport_ops have;
    imcore_transport *inner;
} transport_shim;

#define TRANSPORT(t) ((transport_shim *)(t))

static im_router *tfwd_router(imcore_transport *t)
{
    return TRANSPORT(t)->have.router(TRANSPORT(t)->inner);
}

static int tfwd_run(imcore_transport *t, const imcore_core_api *core, im_app *app,
                    im_error *err)
{
    return TRANSPORT(t)->have.run(TRANSPORT(t)->inner, core, app, err);
}

static void tfwd_destroy(imcore_transport *t)
{
    if (!t)
        return;
    TRANSPORT(t)->have.destroy(TRANSPORT(t)->inner);
    free(t);
}

static unsigned tfwd_bound_port(const imcore_transport *t)
{
    const transport_shim *k = (const transport_shim *)t;
    return k->have.bound_port ? k->have.bound_port(k->inner) : 0;
}

static void tfwd_stop(imcore_transport *t)
{
    if (TRANSPORT(t)->have.stop)
        TRANSPORT(t)->have.stop(TRANSPORT(t)->inner);
}

int im__abi_transport(imcore_transport *t, imcore_transport **out, char *absent,
                      size_t absent_size, im_error *err)
{
    *out = NULL;
    struct imcore_transport_ops have;
    size_t their_size = t->ops->size;
    int rc = sized(their_size, offsetof(struct imcore_transport_ops, router), "transport", err);
    if (rc != IM_OK)
        return rc;
    copy_table(&have, sizeof have, t->ops, their_size);
    int missing = check_ops(&have, transport_ops, sizeof transport_ops / sizeof *transport_ops,
                            "transport", their_size, sizeof have, absent, absent_size, err);
    if (missing < 0) {
        if (have.destroy)
            have.destroy(t);
        return missing;
    }
    if (missing == 0) {
        *out = t;
        return IM_OK;
    }
    transport_shim *k = calloc(1, sizeof *k);
    if (!k) {
        have.destroy(t);
        return im_error_set(err, IM_ENOMEM, "out of memory");
    }
    k->inner = t;
    k->have = have;
    k->fwd = (struct imcore_transport_ops){
        .size = sizeof k->fwd, .name = have.name, .router = tfwd_router, .run = tfwd_run,
        .destroy = tfwd_destroy, .bound_port = tfwd_bound_port, .stop = tfwd_stop,
    };
    k->base.ops = &k->fwd;
    *out = &k->base;
    return IM_OK;
}
