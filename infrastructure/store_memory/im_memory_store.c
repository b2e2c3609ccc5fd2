/* infrastructure/store_memory/im_memory_store.c: the store port without
 * storage: per-conversation sequence numbers in memory, every request
 * completed at once on the caller's thread. Conversations are spread over shards by hash so that
 * workers sending in different conversations rarely meet on one lock.
 *
 * The plugins' key-value map lives here too, as long as the process: one
 * hash map per namespace behind one lock. Plugins write it rarely and read it
 * by prefix, so a read copies what matches and sorts it, rather than the map
 * keeping an order every write would pay for.
 *
 * Accounts and their token hashes live here as well (im_memory_accounts.c),
 * so that `accounts.mode: password` works without a database: they last
 * until the server stops. */
#include "im_memory_store.h"

#include "domain/message.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "im_memory_accounts.h"
#include "im_strmap.h"

#define SHARDS 32

struct shard {
    pthread_mutex_t lock;
    im_strmap *next_seq; /* conversation id -> uint64_t* last seq given */
};

/* A value of the key-value map, in one allocation. */
typedef struct kv_value {
    size_t len;
    unsigned char data[];
} kv_value;

typedef struct memory_store {
    im_store base;
    struct shard shards[SHARDS];
    pthread_mutex_t kv_lock;
    im_strmap *kv; /* namespace -> im_strmap* (key -> kv_value*), all owned */
    im__memory_accounts *accounts;
} memory_store;

/* Numbers m and completes at once. The completion runs under the shard
 * lock, so two workers sending in one conversation deliver in seq order. */
static int memory_append(im_store *s, const im_message *m, im_store_append_fn done, void *arg,
                         im_error *err)
{
    memory_store *ms = (memory_store *)s;
    char conv[IM_CONVERSATION_ID_MAX + 1];
    if (im_message_conversation_id(m, conv, sizeof conv) < 0)
        return im_error_set(err, IM_EINVAL, "message has no valid conversation");
    struct shard *sh = &ms->shards[im_strmap_hash(conv) % SHARDS];
    pthread_mutex_lock(&sh->lock);
    uint64_t *last = im_strmap_get(sh->next_seq, conv);
    if (!last) {
        last = calloc(1, sizeof *last);
        if (!last || im_strmap_put(sh->next_seq, conv, last, NULL) != IM_OK) {
            pthread_mutex_unlock(&sh->lock);
            free(last);
            return im_error_set(err, IM_ENOMEM, "out of memory");
        }
    }
    im_message stored = *m;
    stored.seq = ++*last;
    done(arg, IM_OK, &stored, false, NULL);
    pthread_mutex_unlock(&sh->lock);
    return IM_OK;
}

/* Nothing is kept, so nothing is pending. */
static int memory_pending(im_store *s, const char *user, size_t limit, im_store_message_fn each,
                          im_store_done_fn done, void *arg, im_error *err)
{
    (void)s, (void)user, (void)limit, (void)each, (void)err;
    done(arg, IM_OK, NULL);
    return IM_OK;
}

static int memory_ack(im_store *s, const char *user, const char *conversation, uint64_t seq,
                      im_error *err)
{
    (void)s, (void)user, (void)conversation, (void)seq, (void)err;
    return IM_OK;
}

static int memory_history(im_store *s, const char *conversation, uint64_t before_seq,
                          size_t limit, im_store_message_fn each, void *arg, im_error *err)
{
    (void)s, (void)conversation, (void)before_seq, (void)limit, (void)each, (void)arg;
    return im_error_set(err, IM_EUNSUPPORTED, "history needs a durable store (storage: sqlite)");
}

static int memory_barrier(im_store *s, im_store_done_fn done, void *arg, im_error *err)
{
    (void)s, (void)err;
    done(arg, IM_OK, NULL);
    return IM_OK;
}

static int memory_group_create(im_store *s, const char *group, const char *owner,
                               uint32_t max_members, im_store_done_fn done, void *arg,
                               im_error *err)
{
    (void)group, (void)owner, (void)max_members;
    return memory_barrier(s, done, arg, err);
}

static int memory_group_member(im_store *s, const char *group, const char *user,
                               im_store_done_fn done, void *arg, im_error *err)
{
    (void)group, (void)user;
    return memory_barrier(s, done, arg, err);
}

/* Nothing is kept; a join learns the conversation's last seq, and a group
 * created or deleted starts its numbering again, as a durable store's
 * does. Under the shard lock, so a join is ordered against the appends. */
static int memory_group_change(im_store *s, const im_group_change *c, im_store_group_fn done,
                               void *arg, im_error *err)
{
    memory_store *ms = (memory_store *)s;
    char conv[IM_CONVERSATION_ID_MAX + 1];
    if (!c || !c->group || strlen(c->group) > IM_USER_ID_MAX)
        return im_error_set(err, IM_EINVAL, "a malformed group change");
    snprintf(conv, sizeof conv, "g:%s", c->group);
    struct shard *sh = &ms->shards[im_strmap_hash(conv) % SHARDS];
    uint64_t seq = 0;
    pthread_mutex_lock(&sh->lock);
    if (c->kind == IM_GROUP_CHANGE_CREATE || c->kind == IM_GROUP_CHANGE_DELETE) {
        free(im_strmap_remove(sh->next_seq, conv));
    } else if (c->kind == IM_GROUP_CHANGE_JOIN) {
        const uint64_t *last = im_strmap_get(sh->next_seq, conv);
        seq = last ? *last : 0;
    }
    done(arg, IM_OK, seq, NULL);
    pthread_mutex_unlock(&sh->lock);
    return IM_OK;
}

static int memory_load_groups(im_store *s, int (*fn)(void *arg, const im_group_record *g),
                              void *arg, im_error *err)
{
    (void)s, (void)fn, (void)arg, (void)err;
    return IM_OK;
}

static bool free_value(void *arg, const char *key, void *value)
{
    (void)arg, (void)key;
    free(value);
    return true;
}

static bool free_namespace(void *arg, const char *key, void *value)
{
    (void)arg, (void)key;
    im_strmap_each(value, free_value, NULL);
    im_strmap_free(value);
    return true;
}

/* Under kv_lock. Nothing is changed when it fails. */
static int kv_set(memory_store *ms, const char *ns, const char *key, const void *value,
                  size_t len)
{
    im_strmap *keys = im_strmap_get(ms->kv, ns);
    if (!value) {
        if (keys) {
            free(im_strmap_remove(keys, key));
            /* An empty namespace is forgotten, so deleted keys cost nothing. */
            if (im_strmap_count(keys) == 0)
                im_strmap_free(im_strmap_remove(ms->kv, ns));
        }
        return IM_OK;
    }
    kv_value *v = malloc(sizeof *v + len);
    if (!v)
        return IM_ENOMEM;
    v->len = len;
    if (len)
        memcpy(v->data, value, len);
    bool made = false;
    if (!keys) {
        if (!(keys = im_strmap_new()) || im_strmap_put(ms->kv, ns, keys, NULL) != IM_OK) {
            im_strmap_free(keys);
            free(v);
            return IM_ENOMEM;
        }
        made = true;
    }
    void *old = NULL;
    if (im_strmap_put(keys, key, v, &old) != IM_OK) {
        if (made)
            im_strmap_free(im_strmap_remove(ms->kv, ns));
        free(v);
        return IM_ENOMEM;
    }
    free(old);
    return IM_OK;
}

/* Completes at once. done runs after the lock is let go, so that it may use
 * the map again (a plugin reading back what it wrote). */
static int memory_kv_put(im_store *s, const char *ns, const char *key, const void *value,
                         size_t len, im_store_done_fn done, void *arg, im_error *err)
{
    memory_store *ms = (memory_store *)s;
    int rc = im_store_kv_check(ns, key, value, len, err);
    if (rc != IM_OK)
        return rc;
    pthread_mutex_lock(&ms->kv_lock);
    rc = kv_set(ms, ns, key, value, len);
    pthread_mutex_unlock(&ms->kv_lock);
    if (rc != IM_OK)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    if (done)
        done(arg, IM_OK, NULL);
    return IM_OK;
}

/* A key and its value as a read hands them out, copied. */
typedef struct kv_item {
    size_t len;
    const char *key; /* in data, after the value */
    unsigned char data[];
} kv_item;

struct kv_snapshot {
    const char *prefix;
    size_t prefix_len;
    kv_item **items;
    size_t n;
    bool nomem;
};

static bool snapshot_one(void *arg, const char *key, void *value)
{
    struct kv_snapshot *snap = arg;
    const kv_value *v = value;
    if (strncmp(key, snap->prefix, snap->prefix_len) != 0)
        return true;
    size_t lk = strlen(key) + 1;
    kv_item *it = malloc(sizeof *it + v->len + lk);
    if (!it) {
        snap->nomem = true;
        return false;
    }
    it->len = v->len;
    if (v->len)
        memcpy(it->data, v->data, v->len);
    it->key = memcpy(it->data + v->len, key, lk);
    snap->items[snap->n++] = it;
    return true;
}

/* strcmp compares as unsigned char: byte order, as the port promises. */
static int by_key(const void *a, const void *b)
{
    return strcmp((*(const kv_item *const *)a)->key, (*(const kv_item *const *)b)->key);
}

/* The matching entries are copied under the lock and handed out after it,
 * so fn may write to the map while it reads. */
static int memory_kv_each(im_store *s, const char *ns, const char *prefix, im_store_kv_fn fn,
                          void *arg, im_error *err)
{
    memory_store *ms = (memory_store *)s;
    int rc = im_store_kv_check(ns, NULL, NULL, 0, err);
    if (rc != IM_OK)
        return rc;
    if (!fn)
        return im_error_set(err, IM_EINVAL, "no callback");
    struct kv_snapshot snap = { .prefix = prefix ? prefix : "" };
    snap.prefix_len = strlen(snap.prefix);
    pthread_mutex_lock(&ms->kv_lock);
    im_strmap *keys = im_strmap_get(ms->kv, ns);
    size_t total = keys ? im_strmap_count(keys) : 0;
    if (total) {
        snap.items = malloc(total * sizeof *snap.items);
        if (snap.items)
            im_strmap_each(keys, snapshot_one, &snap);
        else
            snap.nomem = true;
    }
    pthread_mutex_unlock(&ms->kv_lock);
    int visited = 0;
    if (!snap.nomem && snap.n) {
        qsort(snap.items, snap.n, sizeof *snap.items, by_key);
        for (size_t i = 0; i < snap.n; i++) {
            visited++;
            const kv_item *it = snap.items[i];
            if (!fn(arg, it->key, it->data, it->len))
                break;
        }
    }
    for (size_t i = 0; i < snap.n; i++)
        free(snap.items[i]);
    free(snap.items);
    return snap.nomem ? im_error_set(err, IM_ENOMEM, "out of memory") : visited;
}

static int memory_account(im_store *s, const im_account_request *q, im_store_account_fn done,
                          void *arg, im_error *err)
{
    return im__memory_accounts_run(((memory_store *)s)->accounts, q, done, arg, err);
}

static void memory_destroy(im_store *s)
{
    memory_store *ms = (memory_store *)s;
    if (!ms)
        return;
    for (int i = 0; i < SHARDS; i++) {
        if (ms->shards[i].next_seq) {
            im_strmap_each(ms->shards[i].next_seq, free_value, NULL);
            im_strmap_free(ms->shards[i].next_seq);
        }
        pthread_mutex_destroy(&ms->shards[i].lock);
    }
    if (ms->kv) {
        im_strmap_each(ms->kv, free_namespace, NULL);
        im_strmap_free(ms->kv);
    }
    pthread_mutex_destroy(&ms->kv_lock);
    im__memory_accounts_free(ms->accounts);
    free(ms);
}

static const struct im_store_ops memory_store_ops = {
    .size = sizeof(struct im_store_ops),
    .name = "memory",
    .durable = false,
    .append = memory_append,
    .pending = memory_pending,
    .ack = memory_ack,
    .history = memory_history,
    .barrier = memory_barrier,
    .group_create = memory_group_create,
    .group_join = memory_group_member,
    .group_leave = memory_group_member,
    .load_groups = memory_load_groups,
    .kv_put = memory_kv_put,
    .kv_each = memory_kv_each,
    .destroy = memory_destroy,
    .group_change = memory_group_change,
    .account = memory_account,
};

int im_memory_store_new(im_store **out, im_error *err)
{
    *out = NULL;
    memory_store *ms = calloc(1, sizeof *ms);
    if (!ms)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    ms->base.ops = &memory_store_ops;
    pthread_mutex_init(&ms->kv_lock, NULL);
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&ms->shards[i].lock, NULL);
        ms->shards[i].next_seq = im_strmap_new();
        if (!ms->shards[i].next_seq) {
            memory_destroy(&ms->base);
            return im_error_set(err, IM_ENOMEM, "out of memory");
        }
    }
    if (!(ms->kv = im_strmap_new()) || !(ms->accounts = im__memory_accounts_new())) {
        memory_destroy(&ms->base);
        return im_error_set(err, IM_ENOMEM, "out of memory");
    }
    *out = &ms->base;
    return IM_OK;
}
