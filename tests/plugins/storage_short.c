/* A storage adapter whose im_store_ops ends before group_create, as one
 * built before group membership and the key-value map were in the port
 * would: the server must run it for what it has (messages are numbered
 * and delivered by it) and fall back for the rest (groups kept in the
 * server's memory, plugins' key-value maps refused with IM_EUNSUPPORTED).
 *
 * Built a second time with -DSTORE_WITHOUT_SIZE as storage_nosize.so,
 * whose table says nothing of its size: the server must refuse that one,
 * with exit 2 and the line of storage.engine.
 *
 * It keeps nothing (durable = false): a number per conversation, that is
 * all. Every request completes inside the call, under one lock, so
 * completions run in the order messages are numbered. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imcore/plugin.h"
#include "imcore/storage.h"

IMCORE_PLUGIN_INFO("storage_short", "1");

typedef struct conversation {
    struct conversation *next;
    char id[IM_CONVERSATION_ID_MAX + 1];
    uint64_t last_seq;
} conversation;

typedef struct short_store {
    im_store base;                /* first: the port is the store */
    pthread_mutex_t lock;
    conversation *convs;
} short_store;

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

static int short_append(im_store *s, const im_message *m, im_store_append_fn done, void *arg,
                        im_error *err)
{
    short_store *ss = (short_store *)s;
    char id[IM_CONVERSATION_ID_MAX + 1];
    conversation_id(m, id, sizeof id);
    pthread_mutex_lock(&ss->lock);
    conversation *c = ss->convs;
    while (c && strcmp(c->id, id) != 0)
        c = c->next;
    if (!c && (c = calloc(1, sizeof *c)) != NULL) {
        snprintf(c->id, sizeof c->id, "%s", id);
        c->next = ss->convs;
        ss->convs = c;
    }
    if (!c) {
        pthread_mutex_unlock(&ss->lock);
        if (err) {
            err->code = IM_ENOMEM;
            snprintf(err->msg, sizeof err->msg, "out of memory");
        }
        return IM_ENOMEM;
    }
    im_message stored = *m;
    stored.seq = ++c->last_seq;
    done(arg, IM_OK, &stored, false, NULL);
    pthread_mutex_unlock(&ss->lock);
    return IM_OK;
}

/* Nothing is kept, so nothing is pending and there is no history. */
static int short_pending(im_store *s, const char *user, size_t limit, im_store_message_fn each,
                         im_store_done_fn done, void *arg, im_error *err)
{
    (void)user, (void)limit, (void)each, (void)err;
    short_store *ss = (short_store *)s;
    pthread_mutex_lock(&ss->lock);
    done(arg, IM_OK, NULL);
    pthread_mutex_unlock(&ss->lock);
    return IM_OK;
}

static int short_ack(im_store *s, const char *user, const char *conv, uint64_t seq,
                     im_error *err)
{
    (void)s, (void)user, (void)conv, (void)seq, (void)err;
    return IM_OK;
}

static int short_history(im_store *s, const char *conv, uint64_t before_seq, size_t limit,
                         im_store_message_fn each, void *arg, im_error *err)
{
    (void)s, (void)conv, (void)before_seq, (void)limit, (void)each, (void)arg, (void)err;
    return IM_OK;
}

static int short_barrier(im_store *s, im_store_done_fn done, void *arg, im_error *err)
{
    (void)err;
    short_store *ss = (short_store *)s;
    pthread_mutex_lock(&ss->lock);
    done(arg, IM_OK, NULL);
    pthread_mutex_unlock(&ss->lock);
    return IM_OK;
}

static void short_destroy(im_store *s)
{
    short_store *ss = (short_store *)s;
    if (!ss)
        return;
    while (ss->convs) {
        conversation *c = ss->convs;
        ss->convs = c->next;
        free(c);
    }
    pthread_mutex_destroy(&ss->lock);
    free(ss);
}

static const struct im_store_ops short_ops = {
#ifndef STORE_WITHOUT_SIZE
    /* The table as it would be without the operations after destroy. */
    .size = offsetof(struct im_store_ops, group_create),
#endif
    .name = "short",
    .durable = false,
    .append = short_append,
    .pending = short_pending,
    .ack = short_ack,
    .history = short_history,
    .barrier = short_barrier,
    .destroy = short_destroy,
};

#ifdef STORE_WITHOUT_SIZE
/* The server refuses this table without calling anything in it, destroy
 * included (it cannot know where destroy is): so nothing is allocated that
 * only destroy would free, and the leak checker stays quiet. */
static short_store the_store;
#endif

static int open_storage(void *state, im_store **out, im_error *err)
{
    (void)state;
#ifdef STORE_WITHOUT_SIZE
    the_store.base.ops = &short_ops;
    *out = &the_store.base;
    (void)err;
    return IM_OK;
#endif
    short_store *ss = calloc(1, sizeof *ss);
    if (!ss) {
        if (err) {
            err->code = IM_ENOMEM;
            snprintf(err->msg, sizeof err->msg, "out of memory");
        }
        return IM_ENOMEM;
    }
    pthread_mutex_init(&ss->lock, NULL);
    ss->base.ops = &short_ops;
    *out = &ss->base;
    return IM_OK;
}

int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    (void)api, (void)host;
    out->open_storage = open_storage;
    return 0;
}
