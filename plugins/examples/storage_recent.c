/* storage_recent.c: a storage adapter written from scratch against the
 * installed headers (imcore/plugin.h and the storage port it brings), the
 * way a third party would write one. Load it with
 *
 *     storage:
 *       engine: recent          # plugin_dir/storage_recent.so
 *       options:
 *         keep: 100             # messages kept per conversation
 *
 * It keeps nothing across a restart (durable = false, like the built-in
 * memory engine: messages to offline users are refused), but it numbers
 * messages and remembers the last `keep` of each conversation, so history
 * works. Not being durable, it remembers no client_msg_ids (a resend is a
 * new message, as with the memory engine) and has no receivers to check
 * (the server's `receivers` key): those are rules for durable stores
 * (imcore/storage.h, append; imcore/plugin.h, open_storage). Build: cc -shared -fPIC -fvisibility=hidden -I PREFIX/include
 *               -o storage_recent.so storage_recent.c -lpthread
 *
 * The one rule of the port that shapes it: completions run one at a time,
 * in the order messages are numbered. Everything here completes inside the
 * call, under one lock, so that holds.
 *
 * It fills the whole table of the storage.h it is built with, group_change
 * included, and says so (the table's size): a join learns the seq it came
 * at, so members of a group read its history from their join on, and a
 * group created or deleted starts with no history, so that a new group of
 * an old name never shows the old one's messages. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imcore/plugin.h"
#include "imcore/storage.h"

typedef struct stored {
    im_message m;                 /* points into text */
    char *text;                   /* sender, target, client_msg_id, body */
} stored;

typedef struct conversation {
    struct conversation *next;
    char id[IM_CONVERSATION_ID_MAX + 1];
    uint64_t last_seq;
    stored *ring;                 /* keep entries; seq s is at (s - 1) % keep */
} conversation;

typedef struct kv_entry {
    struct kv_entry *next;
    char *ns, *key;
    void *value;
    size_t len;
} kv_entry;

typedef struct recent_store {
    im_store base;                /* first: the port is the store */
    pthread_mutex_t lock;
    size_t keep;
    conversation *convs;
    kv_entry *kv;
} recent_store;

static int fail(im_error *err, int code, const char *what)
{
    if (err) {
        err->code = code;
        snprintf(err->msg, sizeof err->msg, "%s", what);
    }
    return code;
}

/* The port's conversation ids: "p:<a>:<b>" with a < b, or "g:<group>". */
static void conversation_id(const im_message *m, char *out, size_t size)
{
    if (m->kind == IM_MESSAGE_GROUP) {
        snprintf(out, size, "g:%s", m->target);
        return;
    }
    bool sender_first = strcmp(m->sender, m->target) < 0;
    snprintf(out, size, "p:%s:%s", sender_first ? m->sender : m->target,
             sender_first ? m->target : m->sender);
}

static conversation *find(recent_store *rs, const char *id, bool create)
{
    for (conversation *c = rs->convs; c; c = c->next)
        if (strcmp(c->id, id) == 0)
            return c;
    if (!create)
        return NULL;
    conversation *c = calloc(1, sizeof *c);
    if (!c || !(c->ring = calloc(rs->keep, sizeof *c->ring))) {
        free(c);
        return NULL;
    }
    snprintf(c->id, sizeof c->id, "%s", id);
    c->next = rs->convs;
    rs->convs = c;
    return c;
}

static int recent_append(im_store *s, const im_message *m, im_store_append_fn done, void *arg,
                         im_error *err)
{
    recent_store *rs = (recent_store *)s;
    const char *cmid = m->client_msg_id ? m->client_msg_id : "";
    size_t ls = strlen(m->sender) + 1, lt = strlen(m->target) + 1, lc = strlen(cmid) + 1;
    char *text = malloc(ls + lt + lc + m->body_len + 1);
    char id[IM_CONVERSATION_ID_MAX + 1];
    if (!text)
        return fail(err, IM_ENOMEM, "out of memory");
    conversation_id(m, id, sizeof id);
    pthread_mutex_lock(&rs->lock);
    conversation *c = find(rs, id, true);
    if (!c) {
        pthread_mutex_unlock(&rs->lock);
        free(text);
        return fail(err, IM_ENOMEM, "out of memory");
    }
    stored *slot = &c->ring[c->last_seq % rs->keep];
    free(slot->text); /* the oldest one goes */
    slot->text = text;
    slot->m = *m;
    slot->m.sender = memcpy(text, m->sender, ls);
    slot->m.target = memcpy(text + ls, m->target, lt);
    slot->m.client_msg_id = memcpy(text + ls + lt, cmid, lc);
    slot->m.body = memcpy(text + ls + lt + lc, m->body, m->body_len);
    slot->m.seq = ++c->last_seq;
    done(arg, IM_OK, &slot->m, false, NULL); /* in seq order: under the lock */
    pthread_mutex_unlock(&rs->lock);
    return IM_OK;
}

static int recent_history(im_store *s, const char *conv, uint64_t before_seq, size_t limit,
                          im_store_message_fn each, void *arg, im_error *err)
{
    (void)err;
    recent_store *rs = (recent_store *)s;
    pthread_mutex_lock(&rs->lock);
    conversation *c = find(rs, conv, false);
    if (c) {
        uint64_t end = before_seq == 0 || before_seq > c->last_seq + 1 ? c->last_seq + 1
                                                                       : before_seq;
        uint64_t oldest_kept = c->last_seq > rs->keep ? c->last_seq - rs->keep + 1 : 1;
        uint64_t first = end > limit ? end - limit : 1;
        if (first < oldest_kept)
            first = oldest_kept;
        for (uint64_t seq = first; seq < end; seq++)
            if (!each(arg, &c->ring[(seq - 1) % rs->keep].m))
                break;
    }
    pthread_mutex_unlock(&rs->lock);
    return IM_OK;
}

/* Requests complete at once, so a barrier is one; its completion runs
 * under the lock like every other, so completions never run two at once. */
static int recent_barrier(im_store *s, im_store_done_fn done, void *arg, im_error *err)
{
    (void)err;
    recent_store *rs = (recent_store *)s;
    pthread_mutex_lock(&rs->lock);
    done(arg, IM_OK, NULL);
    pthread_mutex_unlock(&rs->lock);
    return IM_OK;
}

/* Nothing outlives the process, so nothing is pending at a login, and acks
 * have nothing to move. */
static int recent_pending(im_store *s, const char *user, size_t limit, im_store_message_fn each,
                          im_store_done_fn done, void *arg, im_error *err)
{
    (void)user, (void)limit, (void)each;
    return recent_barrier(s, done, arg, err);
}

static int recent_ack(im_store *s, const char *user, const char *conv, uint64_t seq,
                      im_error *err)
{
    (void)s, (void)user, (void)conv, (void)seq, (void)err;
    return IM_OK;
}

static int recent_group_create(im_store *s, const char *group, const char *owner,
                               uint32_t max_members, im_store_done_fn done, void *arg,
                               im_error *err)
{
    (void)group, (void)owner, (void)max_members;
    return recent_barrier(s, done, arg, err);
}

static int recent_group_change(im_store *s, const char *group, const char *user,
                               im_store_done_fn done, void *arg, im_error *err)
{
    (void)group, (void)user;
    return recent_barrier(s, done, arg, err);
}

/* Forgets conversation id and its messages (the lock is held). */
static void forget(recent_store *rs, const char *id)
{
    for (conversation **p = &rs->convs; *p; p = &(*p)->next) {
        if (strcmp((*p)->id, id) != 0)
            continue;
        conversation *c = *p;
        *p = c->next;
        for (size_t i = 0; i < rs->keep; i++)
            free(c->ring[i].text);
        free(c->ring);
        free(c);
        return;
    }
}

static int recent_group_change_v2(im_store *s, const im_group_change *c, im_store_group_fn done,
                                  void *arg, im_error *err)
{
    recent_store *rs = (recent_store *)s;
    if (!c || !c->group || strlen(c->group) > IM_USER_ID_MAX)
        return fail(err, IM_EINVAL, "a malformed group change");
    char id[IM_CONVERSATION_ID_MAX + 1];
    snprintf(id, sizeof id, "g:%s", c->group);
    uint64_t seq = 0;
    pthread_mutex_lock(&rs->lock);
    if (c->kind == IM_GROUP_CHANGE_CREATE || c->kind == IM_GROUP_CHANGE_DELETE) {
        forget(rs, id);
    } else if (c->kind == IM_GROUP_CHANGE_JOIN) {
        conversation *conv = find(rs, id, false);
        seq = conv ? conv->last_seq : 0;
    }
    done(arg, IM_OK, seq, NULL); /* in order with the appends: under the lock */
    pthread_mutex_unlock(&rs->lock);
    return IM_OK;
}

static int recent_load_groups(im_store *s, int (*fn)(void *arg, const im_group_record *g),
                              void *arg, im_error *err)
{
    (void)s, (void)fn, (void)arg, (void)err;
    return IM_OK;
}

static int recent_kv_put(im_store *s, const char *ns, const char *key, const void *value,
                         size_t len, im_store_done_fn done, void *arg, im_error *err)
{
    recent_store *rs = (recent_store *)s;
    if (!ns || !key || !ns[0] || !key[0] || strlen(ns) > IM_STORE_KV_KEY_MAX ||
        strlen(key) > IM_STORE_KV_KEY_MAX || len > IM_STORE_KV_VALUE_MAX || (!value && len))
        return fail(err, IM_EINVAL, "bad namespace, key or value");
    pthread_mutex_lock(&rs->lock);
    kv_entry **p = &rs->kv;
    while (*p && !(strcmp((*p)->ns, ns) == 0 && strcmp((*p)->key, key) == 0))
        p = &(*p)->next;
    kv_entry *e = *p;
    if (e) { /* replaced or deleted: the old one goes */
        *p = e->next;
        free(e->ns), free(e->key), free(e->value), free(e);
    }
    int rc = IM_OK;
    if (value) {
        e = calloc(1, sizeof *e);
        if (e && (e->ns = strdup(ns)) && (e->key = strdup(key)) &&
            (e->value = malloc(len ? len : 1))) {
            memcpy(e->value, value, len);
            e->len = len;
            e->next = rs->kv;
            rs->kv = e;
        } else {
            if (e)
                free(e->ns), free(e->key), free(e);
            rc = IM_ENOMEM;
        }
    }
    pthread_mutex_unlock(&rs->lock);
    if (rc != IM_OK)
        return fail(err, rc, "out of memory");
    if (done)
        done(arg, IM_OK, NULL);
    return IM_OK;
}

static int by_key(const void *a, const void *b)
{
    return strcmp((*(kv_entry *const *)a)->key, (*(kv_entry *const *)b)->key);
}

static void free_entries(kv_entry **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]->key), free(v[i]->value), free(v[i]);
    free(v);
}

/* The matching entries are copied under the lock and handed out after it:
 * fn may make requests of the store (kv_put), as the port allows. */
static int recent_kv_each(im_store *s, const char *ns, const char *prefix, im_store_kv_fn fn,
                          void *arg, im_error *err)
{
    recent_store *rs = (recent_store *)s;
    if (!ns || !ns[0] || strlen(ns) > IM_STORE_KV_KEY_MAX || !prefix || !fn)
        return fail(err, IM_EINVAL, "bad namespace, prefix or callback");
    size_t n = 0, k = 0, plen = strlen(prefix);
    bool nomem = false;
    pthread_mutex_lock(&rs->lock);
    for (kv_entry *e = rs->kv; e; e = e->next)
        n += strcmp(e->ns, ns) == 0 && strncmp(e->key, prefix, plen) == 0;
    kv_entry **match = calloc(n ? n : 1, sizeof *match);
    for (kv_entry *e = rs->kv; match && !nomem && e; e = e->next) {
        if (strcmp(e->ns, ns) != 0 || strncmp(e->key, prefix, plen) != 0)
            continue;
        kv_entry *c = calloc(1, sizeof *c);
        if (c && (c->key = strdup(e->key)) && (c->value = malloc(e->len ? e->len : 1))) {
            memcpy(c->value, e->value, e->len);
            c->len = e->len;
            match[k++] = c;
        } else {
            if (c)
                free(c->key), free(c);
            nomem = true;
        }
    }
    pthread_mutex_unlock(&rs->lock);
    if (!match || nomem) {
        if (match)
            free_entries(match, k);
        return fail(err, IM_ENOMEM, "out of memory");
    }
    qsort(match, k, sizeof *match, by_key);
    int visited = 0;
    for (size_t i = 0; i < k; i++) {
        visited++;
        if (!fn(arg, match[i]->key, match[i]->value, match[i]->len))
            break;
    }
    free_entries(match, k);
    return visited;
}

static void recent_destroy(im_store *s)
{
    recent_store *rs = (recent_store *)s;
    if (!rs)
        return;
    while (rs->convs) {
        conversation *c = rs->convs;
        rs->convs = c->next;
        for (size_t i = 0; i < rs->keep; i++)
            free(c->ring[i].text);
        free(c->ring);
        free(c);
    }
    while (rs->kv) {
        kv_entry *e = rs->kv;
        rs->kv = e->next;
        free(e->ns), free(e->key), free(e->value), free(e);
    }
    pthread_mutex_destroy(&rs->lock);
    free(rs);
}

static const struct im_store_ops recent_ops = {
    .size = sizeof(struct im_store_ops),
    .name = "recent",
    .durable = false,
    .append = recent_append,
    .pending = recent_pending,
    .ack = recent_ack,
    .history = recent_history,
    .barrier = recent_barrier,
    .group_create = recent_group_create,
    .group_join = recent_group_change,
    .group_leave = recent_group_change,
    .load_groups = recent_load_groups,
    .kv_put = recent_kv_put,
    .kv_each = recent_kv_each,
    .destroy = recent_destroy,
    .group_change = recent_group_change_v2,
};

/* The plugin: read the config in init, make the store in open_storage. */
static size_t keep_setting = 100;

static int open_storage(void *state, im_store **out, im_error *err)
{
    (void)state;
    recent_store *rs = calloc(1, sizeof *rs);
    if (!rs)
        return fail(err, IM_ENOMEM, "out of memory");
    rs->base.ops = &recent_ops;
    rs->keep = keep_setting;
    pthread_mutex_init(&rs->lock, NULL);
    *out = &rs->base;
    return IM_OK;
}

IMCORE_PLUGIN_INFO("storage_recent", "1.0");

int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    if (api->size < offsetof(imcore_host_api, config_key) + sizeof api->config_key ||
        out->size < offsetof(imcore_plugin, open_storage) + sizeof out->open_storage) {
        snprintf(out->error, sizeof out->error, "this server is too old for storage_recent");
        return 1;
    }
    /* The server's generic storage keys mean nothing here; our own is
     * options.keep. Anything else is a mistake worth stopping for. */
    const char *key;
    for (unsigned i = 0; (key = api->config_key(host, i)) != NULL; i++) {
        if (strcmp(key, "options.keep") == 0 || strncmp(key, "options.", 8) != 0)
            continue;
        const char *where = api->config_where(host, key);
        snprintf(out->error, sizeof out->error, "%s: storage.%s: unknown key (storage_recent "
                 "has options.keep)", where ? where : "config", key);
        return 1;
    }
    const char *keep = api->config_get(host, "options.keep");
    if (keep) {
        char *end;
        unsigned long n = strtoul(keep, &end, 10);
        if (*end || n < 1 || n > 1000000) {
            snprintf(out->error, sizeof out->error, "%s: storage.options.keep: must be 1 to "
                     "1000000, not '%.40s'", api->config_where(host, "options.keep"), keep);
            return 1;
        }
        keep_setting = n;
    }
    out->open_storage = open_storage;
    api->log(host, IMCORE_LOG_INFO, "keeping the last %zu messages of each conversation",
             keep_setting);
    return 0;
}
