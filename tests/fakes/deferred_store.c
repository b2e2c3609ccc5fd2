/* tests/fakes/deferred_store.c: see deferred_store.h. */
#include "deferred_store.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/message.h"

enum op_kind { OP_APPEND, OP_PENDING, OP_BARRIER, OP_KV_PUT, OP_GROUP, OP_HISTORY };

typedef struct op {
    struct op *next;
    enum op_kind kind;
    im_message m;
    char sender[IM_USER_ID_MAX + 1], target[IM_USER_ID_MAX + 1];
    char cmid[IM_CLIENT_MSG_ID_MAX + 1];
    uint8_t body[256];
    char *kv;             /* KV_PUT: ns, key and value, malloc'ed */
    const char *ns, *key; /* KV_PUT: into kv */
    const void *value;    /* KV_PUT: into kv; NULL deletes */
    size_t value_len;
    size_t limit;         /* PENDING: at most this many; target is the user */
    size_t max_bytes;     /* PENDING, HISTORY: the bodies' budget (0: none) */
    uint64_t before;      /* HISTORY: target is the conversation */
    im_group_change change; /* GROUP: group and user point into sender and target */
    im_store_group_fn group_done;
    im_store_append_fn append_done;
    im_store_message_fn each;
    im_store_done_fn done;
    void *arg;
} op;

typedef struct stored {
    char from[IM_USER_ID_MAX + 1], to[IM_USER_ID_MAX + 1], text[64];
    char conv[IM_CONVERSATION_ID_MAX + 1];
    uint64_t seq;
    bool acked;
} stored;

struct deferred_store {
    im_store base;
    im_store *inner;
    op *head, **tail;
    size_t queued;
    stored pending[64];
    size_t npending;
    size_t last_budget;
};

static void push(deferred_store *ds, op *o)
{
    o->next = NULL;
    *ds->tail = o;
    ds->tail = &o->next;
    ds->queued++;
}

static int ds_append(im_store *s, const im_message *m, im_store_append_fn done, void *arg,
                     im_error *err)
{
    deferred_store *ds = (deferred_store *)s;
    op *o = calloc(1, sizeof *o);
    if (!o || m->body_len > sizeof o->body) {
        free(o);
        return im_error_set(err, IM_ENOMEM, "fake store: no room");
    }
    o->kind = OP_APPEND;
    o->m = *m;
    snprintf(o->sender, sizeof o->sender, "%s", m->sender);
    snprintf(o->target, sizeof o->target, "%s", m->target);
    snprintf(o->cmid, sizeof o->cmid, "%s", m->client_msg_id);
    memcpy(o->body, m->body, m->body_len);
    o->m.sender = o->sender, o->m.target = o->target, o->m.client_msg_id = o->cmid;
    o->m.body = o->body;
    o->append_done = done;
    o->arg = arg;
    push(ds, o);
    return IM_OK;
}

static int ds_pending_read(im_store *s, const char *user, size_t limit, size_t max_bytes,
                           im_store_message_fn each, im_store_done_fn done, void *arg,
                           im_error *err)
{
    op *o = calloc(1, sizeof *o);
    if (!o)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    o->kind = OP_PENDING;
    snprintf(o->target, sizeof o->target, "%s", user);
    o->limit = limit;
    o->max_bytes = max_bytes;
    o->each = each;
    o->done = done;
    o->arg = arg;
    ((deferred_store *)s)->last_budget = max_bytes;
    push((deferred_store *)s, o);
    return IM_OK;
}

static int ds_history_read(im_store *s, const char *conv, uint64_t before, size_t limit,
                           size_t max_bytes, im_store_message_fn each, im_store_done_fn done,
                           void *arg, im_error *err)
{
    op *o = calloc(1, sizeof *o);
    if (!o)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    o->kind = OP_HISTORY;
    snprintf(o->target, sizeof o->target, "%s", conv);
    o->before = before ? before : UINT64_MAX;
    o->limit = limit;
    o->max_bytes = max_bytes;
    o->each = each;
    o->done = done;
    o->arg = arg;
    push((deferred_store *)s, o);
    return IM_OK;
}

static int ds_pending(im_store *s, const char *user, size_t limit, im_store_message_fn each,
                      im_store_done_fn done, void *arg, im_error *err)
{
    ((deferred_store *)s)->last_budget = SIZE_MAX;
    op *o = calloc(1, sizeof *o);
    if (!o)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    o->kind = OP_PENDING;
    snprintf(o->target, sizeof o->target, "%s", user);
    o->limit = limit;
    o->each = each;
    o->done = done;
    o->arg = arg;
    push((deferred_store *)s, o);
    return IM_OK;
}

static int ds_barrier(im_store *s, im_store_done_fn done, void *arg, im_error *err)
{
    op *o = calloc(1, sizeof *o);
    if (!o)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    o->kind = OP_BARRIER;
    o->done = done;
    o->arg = arg;
    push((deferred_store *)s, o);
    return IM_OK;
}

/* At once, not queued: the tests make the request after it, as a worker
 * would, and the store applies requests in order. */
static int ds_ack(im_store *s, const char *user, const char *conv, uint64_t seq, im_error *err)
{
    (void)err;
    deferred_store *ds = (deferred_store *)s;
    for (size_t i = 0; i < ds->npending; i++) {
        stored *p = &ds->pending[i];
        if (strcmp(p->to, user) == 0 && strcmp(p->conv, conv) == 0 && p->seq <= seq)
            p->acked = true;
    }
    return IM_OK;
}

static int ds_history(im_store *s, const char *conv, uint64_t before, size_t limit,
                      im_store_message_fn each, void *arg, im_error *err)
{
    (void)s, (void)conv, (void)before, (void)limit, (void)each, (void)arg;
    return im_error_set(err, IM_EUNSUPPORTED, "no history here");
}

static int ds_group_create(im_store *s, const char *g, const char *o, uint32_t max,
                           im_store_done_fn done, void *arg, im_error *err)
{
    (void)g, (void)o, (void)max;
    return ds_barrier(s, done, arg, err);
}

static int ds_group_member(im_store *s, const char *g, const char *u, im_store_done_fn done,
                           void *arg, im_error *err)
{
    (void)g, (void)u;
    return ds_barrier(s, done, arg, err);
}

/* Queued; run by the wrapped store, which tells a join its seq. */
static int ds_group_change(im_store *s, const im_group_change *c, im_store_group_fn done,
                           void *arg, im_error *err)
{
    op *o = calloc(1, sizeof *o);
    if (!o)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    o->kind = OP_GROUP;
    o->change = *c;
    snprintf(o->sender, sizeof o->sender, "%s", c->group);
    snprintf(o->target, sizeof o->target, "%s", c->user ? c->user : "");
    o->change.group = o->sender;
    o->change.user = c->user ? o->target : NULL;
    o->group_done = done;
    o->arg = arg;
    push((deferred_store *)s, o);
    return IM_OK;
}

/* Queued like any write and put into the wrapped store when it runs, so a
 * read (kv_each, straight from the wrapped store) sees only what has run. */
static int ds_kv_put(im_store *s, const char *ns, const char *key, const void *value, size_t len,
                     im_store_done_fn done, void *arg, im_error *err)
{
    size_t ln = ns ? strlen(ns) : 0, lk = key ? strlen(key) : 0;
    if (ln == 0 || ln > IM_STORE_KV_KEY_MAX || lk == 0 || lk > IM_STORE_KV_KEY_MAX ||
        (value && len > IM_STORE_KV_VALUE_MAX))
        return im_error_set(err, IM_EINVAL, "fake store: bad key-value put");
    if (!value)
        len = 0;
    op *o = calloc(1, sizeof *o);
    char *kv = malloc(ln + 1 + lk + 1 + len);
    if (!o || !kv) {
        free(o);
        free(kv);
        return im_error_set(err, IM_ENOMEM, "out of memory");
    }
    o->kind = OP_KV_PUT;
    o->kv = kv;
    o->ns = memcpy(kv, ns, ln + 1);
    o->key = memcpy(kv + ln + 1, key, lk + 1);
    o->value = value ? memcpy(kv + ln + 1 + lk + 1, value, len) : NULL;
    o->value_len = len;
    o->done = done;
    o->arg = arg;
    push((deferred_store *)s, o);
    return IM_OK;
}

static int ds_kv_each(im_store *s, const char *ns, const char *prefix, im_store_kv_fn fn,
                      void *arg, im_error *err)
{
    deferred_store *ds = (deferred_store *)s;
    return ds->inner->ops->kv_each(ds->inner, ns, prefix, fn, arg, err);
}

static int ds_load_groups(im_store *s, int (*fn)(void *, const im_group_record *), void *arg, im_error *err)
{
    (void)s, (void)fn, (void)arg, (void)err;
    return IM_OK;
}

static void ds_destroy(im_store *s)
{
    (void)s; /* freed by deferred_store_free */
}

static const struct im_store_ops deferred_ops = {
    .size = sizeof(struct im_store_ops), .name = "deferred", .durable = true,
    .append = ds_append, .pending = ds_pending,
    .ack = ds_ack, .history = ds_history, .barrier = ds_barrier,
    .group_create = ds_group_create, .group_join = ds_group_member,
    .group_leave = ds_group_member, .load_groups = ds_load_groups, .kv_put = ds_kv_put,
    .kv_each = ds_kv_each, .destroy = ds_destroy, .group_change = ds_group_change,
    .history_read = ds_history_read, .pending_read = ds_pending_read,
};

deferred_store *deferred_store_new(im_store *inner)
{
    deferred_store *ds = calloc(1, sizeof *ds);
    if (!ds)
        return NULL;
    ds->base.ops = &deferred_ops;
    ds->inner = inner;
    ds->tail = &ds->head;
    return ds;
}

im_store *deferred_store_port(deferred_store *ds)
{
    return &ds->base;
}

void deferred_store_add_pending(deferred_store *ds, const char *from, const char *to,
                                const char *text, uint64_t seq)
{
    if (ds->npending == sizeof ds->pending / sizeof ds->pending[0])
        return;
    stored *p = &ds->pending[ds->npending++];
    snprintf(p->from, sizeof p->from, "%s", from);
    snprintf(p->to, sizeof p->to, "%s", to);
    snprintf(p->text, sizeof p->text, "%s", text);
    p->seq = seq;
    im_message m = { .kind = IM_MESSAGE_PRIVATE, .sender = from, .target = to };
    im_message_conversation_id(&m, p->conv, sizeof p->conv);
}

int deferred_store_run(deferred_store *ds)
{
    int n = 0;
    while (ds->head) {
        op *o = ds->head;
        ds->head = o->next;
        if (!ds->head)
            ds->tail = &ds->head;
        ds->queued--;
        switch (o->kind) {
        case OP_APPEND:
            ds->inner->ops->append(ds->inner, &o->m, o->append_done, o->arg, NULL);
            break;
        case OP_HISTORY: {
            size_t pick[64], k = 0, bytes = 0;
            for (size_t i = ds->npending; i-- > 0 && k < o->limit;) {
                stored *p = &ds->pending[i];
                if (strcmp(p->conv, o->target) != 0 || p->seq >= o->before)
                    continue;
                pick[k++] = i;
                bytes += strlen(p->text);
                if (o->max_bytes && bytes >= o->max_bytes)
                    break;
            }
            while (k-- > 0) {
                stored *p = &ds->pending[pick[k]];
                im_message m = { .kind = IM_MESSAGE_PRIVATE, .sender = p->from, .target = p->to,
                                 .client_msg_id = "", .body = (const uint8_t *)p->text,
                                 .body_len = strlen(p->text), .seq = p->seq };
                if (!o->each(o->arg, &m))
                    break;
            }
            o->done(o->arg, IM_OK, NULL);
            break;
        }
        case OP_PENDING:
            for (size_t i = 0, sent = 0, bytes = 0; i < ds->npending && sent < o->limit &&
                                                    !(o->max_bytes && bytes >= o->max_bytes);
                 i++) {
                stored *p = &ds->pending[i];
                if (p->acked || strcmp(p->to, o->target) != 0)
                    continue;
                sent++;
                bytes += strlen(p->text);
                im_message m = { .kind = IM_MESSAGE_PRIVATE, .sender = p->from, .target = p->to,
                                 .client_msg_id = "", .body = (const uint8_t *)p->text,
                                 .body_len = strlen(p->text), .seq = p->seq };
                if (!o->each(o->arg, &m))
                    break;
            }
            o->done(o->arg, IM_OK, NULL);
            break;
        case OP_BARRIER:
            o->done(o->arg, IM_OK, NULL);
            break;
        case OP_GROUP:
            if (ds->inner->ops->group_change(ds->inner, &o->change, o->group_done, o->arg,
                                             NULL) != IM_OK)
                o->group_done(o->arg, IM_EIO, 0, NULL);
            break;
        case OP_KV_PUT: {
            im_error e = { 0 };
            int rc = ds->inner->ops->kv_put(ds->inner, o->ns, o->key, o->value, o->value_len,
                                            o->done, o->arg, &e);
            /* Refused by the wrapped store: answered as a failed commit. */
            if (rc != IM_OK && o->done) {
                e.code = IM_EIO;
                o->done(o->arg, IM_EIO, &e);
            }
            break;
        }
        }
        free(o->kv);
        free(o);
        n++;
    }
    return n;
}

size_t deferred_store_last_budget(const deferred_store *ds)
{
    return ds->last_budget;
}

size_t deferred_store_queued(const deferred_store *ds)
{
    return ds->queued;
}

void deferred_store_free(deferred_store *ds)
{
    while (ds && ds->head) {
        op *o = ds->head;
        ds->head = o->next;
        free(o->kv);
        free(o);
    }
    free(ds);
}
