/* tests/fakes/fault_store.c: see fault_store.h. */
#include "fault_store.h"

#include <stdio.h>
#include <string.h>

#include "domain/message.h"

/* An append on its way through the wrapped store, to keep what it stored. */
struct tap {
    fault_store *fs;
    im_store_append_fn done;
    void *arg;
};

static void tapped(void *arg, int rc, const im_message *m, bool duplicate, const im_error *err)
{
    struct tap *t = arg;
    fault_store *fs = t->fs;
    if (rc == IM_OK && !duplicate && fs->nkept < sizeof fs->kept / sizeof fs->kept[0]) {
        size_t k = fs->nkept++;
        im_message_conversation_id(m, fs->kept[k].conv, sizeof fs->kept[k].conv);
        snprintf(fs->kept[k].sender, sizeof fs->kept[k].sender, "%s", m->sender);
        snprintf(fs->kept[k].target, sizeof fs->kept[k].target, "%s", m->target);
        snprintf(fs->kept[k].body, sizeof fs->kept[k].body, "%.*s", (int)m->body_len,
                 (const char *)m->body);
        fs->kept[k].kind = m->kind;
        fs->kept[k].seq = m->seq;
    }
    t->done(t->arg, rc, m, duplicate, err);
}

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
    if (fs->keep_history) {
        struct tap t = { fs, done, arg }; /* the wrapped store completes at once */
        return fs->inner->ops->append(fs->inner, m, tapped, &t, err);
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
    if (!fs->keep_history)
        return fs->inner->ops->history(fs->inner, conv, before, limit, each, arg, err);
    /* The limit messages before `before`, oldest first. */
    size_t match[64], n = 0;
    for (size_t i = 0; i < fs->nkept; i++)
        if (strcmp(fs->kept[i].conv, conv) == 0 && (before == 0 || fs->kept[i].seq < before))
            match[n++] = i;
    for (size_t k = n > limit ? n - limit : 0; k < n; k++) {
        size_t i = match[k];
        im_message m = { .kind = fs->kept[i].kind, .sender = fs->kept[i].sender,
                         .target = fs->kept[i].target, .client_msg_id = "",
                         .body = (const uint8_t *)fs->kept[i].body,
                         .body_len = strlen(fs->kept[i].body), .seq = fs->kept[i].seq };
        if (!each(arg, &m))
            break;
    }
    return IM_OK;
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

static int fault_group_member(im_store *s, const char *group, const char *user,
                              im_store_done_fn done, void *arg, im_error *err)
{
    (void)group, (void)user;
    return fault_membership((fault_store *)s, done, arg, err);
}

/* Group changes fail from the same counter too; one let through goes to
 * the wrapped store (which tells a join its seq). */
static int fault_group_change(im_store *s, const im_group_change *c, im_store_group_fn done,
                              void *arg, im_error *err)
{
    fault_store *fs = (fault_store *)s;
    unsigned k = fs->nchanges++ % 16;
    fs->changes[k] = c->kind;
    snprintf(fs->change_users[k], sizeof fs->change_users[k], "%s", c->user ? c->user : "");
    if (fs->fail_from && fs->at_once && ++fs->calls >= fs->fail_from)
        return im_error_set(err, fs->code, "injected refusal");
    if (fs->fail_from && ++fs->calls >= fs->fail_from) {
        im_error e;
        im_error_set(&e, fs->code, "injected store failure");
        done(arg, fs->code, 0, &e);
        return IM_OK;
    }
    return fs->inner->ops->group_change(fs->inner, c, done, arg, err);
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
    for (size_t i = 0; i < fs->nrecords; i++) {
        int rc = fn(arg, &fs->records[i]);
        if (rc != 0)
            return rc;
    }
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
    .group_join = fault_group_member, .group_leave = fault_group_member,
    .load_groups = fault_load_groups, .kv_put = fault_kv_put, .kv_each = fault_kv_each,
    .destroy = fault_destroy, .group_change = fault_group_change,
};

/* The same table as an adapter built before group_change fills it: it
 * ends at kv_each. */
static const struct im_store_ops fault_store_ops_before_group_change = {
    .size = offsetof(struct im_store_ops, group_change), .name = "fault-old",
    .append = fault_append, .pending = fault_pending, .ack = fault_ack,
    .history = fault_history, .barrier = fault_barrier, .group_create = fault_group_create,
    .group_join = fault_group_member, .group_leave = fault_group_member,
    .load_groups = fault_load_groups, .kv_put = fault_kv_put, .kv_each = fault_kv_each,
    .destroy = fault_destroy,
};

void fault_store_without_group_change(fault_store *fs)
{
    fs->base.ops = &fault_store_ops_before_group_change;
}

void fault_store_init(fault_store *fs, im_store *inner, unsigned fail_from, int code)
{
    fs->base.ops = &fault_store_ops;
    fs->inner = inner;
    fs->calls = 0;
    fs->fail_from = fail_from;
    fs->code = code;
    fs->at_once = false;
    fs->nchanges = 0;
    fs->keep_history = false;
    fs->nkept = 0;
    fs->records = NULL;
    fs->nrecords = 0;
}
