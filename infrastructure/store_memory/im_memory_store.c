/* infrastructure/store_memory/im_memory_store.c: the store port without
 * storage: per-conversation sequence numbers in memory, every request
 * completed at once on the caller's thread. Conversations are spread over shards by hash so that
 * workers sending in different conversations rarely meet on one lock. */
#include "im_memory_store.h"

#include <pthread.h>
#include <stdlib.h>

#include "im_strmap.h"

#define SHARDS 32

struct shard {
    pthread_mutex_t lock;
    im_strmap *next_seq; /* conversation id -> uint64_t* last seq given */
};

typedef struct memory_store {
    im_store base;
    struct shard shards[SHARDS];
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

static int memory_group_change(im_store *s, const char *group, const char *user,
                               im_store_done_fn done, void *arg, im_error *err)
{
    (void)group, (void)user;
    return memory_barrier(s, done, arg, err);
}

static int memory_load_groups(im_store *s, int (*fn)(void *arg, im_group *g), void *arg,
                              im_error *err)
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
    free(ms);
}

static const struct im_store_ops memory_store_ops = {
    .name = "memory",
    .durable = false,
    .append = memory_append,
    .pending = memory_pending,
    .ack = memory_ack,
    .history = memory_history,
    .barrier = memory_barrier,
    .group_create = memory_group_create,
    .group_join = memory_group_change,
    .group_leave = memory_group_change,
    .load_groups = memory_load_groups,
    .destroy = memory_destroy,
};

int im_memory_store_new(im_store **out, im_error *err)
{
    *out = NULL;
    memory_store *ms = calloc(1, sizeof *ms);
    if (!ms)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    ms->base.ops = &memory_store_ops;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&ms->shards[i].lock, NULL);
        ms->shards[i].next_seq = im_strmap_new();
        if (!ms->shards[i].next_seq) {
            memory_destroy(&ms->base);
            return im_error_set(err, IM_ENOMEM, "out of memory");
        }
    }
    *out = &ms->base;
    return IM_OK;
}
