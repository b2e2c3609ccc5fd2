/* tests/fakes/fault_store.c: see fault_store.h. */
#include "fault_store.h"

/* A failure is reported the way a durable store reports one: through the
 * completion, as if the commit had failed. */
static int fault_append(im_store *s, const im_message *m, im_store_append_fn done, void *arg,
                        im_error *err)
{
    fault_store *fs = (fault_store *)s;
    if (fs->fail_from && ++fs->calls >= fs->fail_from) {
        im_error e;
        im_error_set(&e, fs->code, "injected store failure");
        done(arg, fs->code, NULL, false, &e);
        return IM_OK;
    }
    return fs->inner->ops->append(fs->inner, m, done, arg, err);
}

static int fault_pending(im_store *s, const char *user, size_t limit, im_store_message_fn each,
                         im_store_done_fn done, void *arg, im_error *err)
{
    fault_store *fs = (fault_store *)s;
    return fs->inner->ops->pending(fs->inner, user, limit, each, done, arg, err);
}

static int fault_ack(im_store *s, const char *user, const char *conv, uint64_t seq, im_error *err)
{
    fault_store *fs = (fault_store *)s;
    return fs->inner->ops->ack(fs->inner, user, conv, seq, err);
}

static int fault_history(im_store *s, const char *conv, uint64_t before, size_t limit,
                         im_store_message_fn each, void *arg, im_error *err)
{
    fault_store *fs = (fault_store *)s;
    return fs->inner->ops->history(fs->inner, conv, before, limit, each, arg, err);
}

static int fault_barrier(im_store *s, im_store_done_fn done, void *arg, im_error *err)
{
    fault_store *fs = (fault_store *)s;
    return fs->inner->ops->barrier(fs->inner, done, arg, err);
}

/* Membership changes fail like appends do, from the same counter. */
static int fault_membership(fault_store *fs, im_store_done_fn done, void *arg, im_error *err)
{
    if (fs->fail_from && fs->at_once && ++fs->calls >= fs->fail_from)
        return im_error_set(err, fs->code, "injected refusal");
    if (fs->fail_from && ++fs->calls >= fs->fail_from) {
        im_error e;
        im_error_set(&e, fs->code, "injected store failure");
        done(arg, fs->code, &e);
        return IM_OK;
    }
    return fs->inner->ops->barrier(fs->inner, done, arg, err);
}

static int fault_group_create(im_store *s, const char *group, const char *owner, uint32_t max,
                              im_store_done_fn done, void *arg, im_error *err)
{
    (void)group, (void)owner, (void)max;
    return fault_membership((fault_store *)s, done, arg, err);
}

static int fault_group_change(im_store *s, const char *group, const char *user,
                              im_store_done_fn done, void *arg, im_error *err)
{
    (void)group, (void)user;
    return fault_membership((fault_store *)s, done, arg, err);
}

/* A key-value put is a write too, failed from the same counter; a put
 * that is let through goes to the wrapped store. */
static int fault_kv_put(im_store *s, const char *ns, const char *key, const void *value,
                        size_t len, im_store_done_fn done, void *arg, im_error *err)
{
    fault_store *fs = (fault_store *)s;
    if (fs->fail_from && ++fs->calls >= fs->fail_from) {
        im_error e;
        im_error_set(&e, fs->code, "injected store failure");
        if (done)
            done(arg, fs->code, &e);
        return IM_OK;
    }
    return fs->inner->ops->kv_put(fs->inner, ns, key, value, len, done, arg, err);
}

static int fault_kv_each(im_store *s, const char *ns, const char *prefix, im_store_kv_fn fn,
                         void *arg, im_error *err)
{
    fault_store *fs = (fault_store *)s;
    return fs->inner->ops->kv_each(fs->inner, ns, prefix, fn, arg, err);
}

static int fault_load_groups(im_store *s, int (*fn)(void *, const im_group_record *), void *arg, im_error *err)
{
    fault_store *fs = (fault_store *)s;
    return fs->inner->ops->load_groups(fs->inner, fn, arg, err);
}

static void fault_destroy(im_store *s)
{
    (void)s; /* the decorator lives on the caller's stack */
}

static const struct im_store_ops fault_store_ops = {
    .size = sizeof(struct im_store_ops), .name = "fault",
    .append = fault_append, .pending = fault_pending, .ack = fault_ack,
    .history = fault_history, .barrier = fault_barrier, .group_create = fault_group_create,
    .group_join = fault_group_change, .group_leave = fault_group_change,
    .load_groups = fault_load_groups, .kv_put = fault_kv_put, .kv_each = fault_kv_each,
    .destroy = fault_destroy,
};

void fault_store_init(fault_store *fs, im_store *inner, unsigned fail_from, int code)
{
    fs->base.ops = &fault_store_ops;
    fs->inner = inner;
    fs->calls = 0;
    fs->fail_from = fail_from;
    fs->code = code;
    fs->at_once = false;
}
