/* infrastructure/store_memory/im_memory_store.c: per-conversation sequence
 * numbers in memory. Conversations are spread over shards by hash so that
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

static int memory_append(im_store *s, im_message *m, im_error *err)
{
    memory_store *ms = (memory_store *)s;
    char conv[IM_CONVERSATION_ID_MAX + 1];
    if (im_message_conversation_id(m, conv, sizeof conv) < 0)
        return im_error_set(err, IM_EINVAL, "message has no valid conversation");
    struct shard *sh = &ms->shards[im_strmap_hash(conv) % SHARDS];
    int rc = IM_OK;
    pthread_mutex_lock(&sh->lock);
    uint64_t *last = im_strmap_get(sh->next_seq, conv);
    if (!last) {
        last = calloc(1, sizeof *last);
        if (!last || im_strmap_put(sh->next_seq, conv, last, NULL) != IM_OK) {
            free(last);
            rc = im_error_set(err, IM_ENOMEM, "out of memory");
            goto out;
        }
    }
    m->seq = ++*last;
out:
    pthread_mutex_unlock(&sh->lock);
    return rc;
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
    .append = memory_append,
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
