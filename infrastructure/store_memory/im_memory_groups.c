/* infrastructure/store_memory/im_memory_groups.c: groups in memory behind one
 * reader-writer lock. Group sends only read (many at once); joins, leaves and
 * creation write. The rules themselves run in the callbacks the application
 * hands in; this file only keeps and locks. */
#include "im_memory_store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "im_strmap.h"

typedef struct memory_groups {
    im_group_repo base;
    pthread_rwlock_t lock;
    im_strmap *by_id; /* group id -> im_group* (owned) */
} memory_groups;

static int groups_insert(im_group_repo *r, im_group *g, im_error *err)
{
    memory_groups *mg = (memory_groups *)r;
    int rc = IM_OK;
    pthread_rwlock_wrlock(&mg->lock);
    if (im_strmap_get(mg->by_id, im_group_id(g)))
        rc = im_error_set(err, IM_EEXIST, "group %s already exists", im_group_id(g));
    else if (im_strmap_put(mg->by_id, im_group_id(g), g, NULL) != IM_OK)
        rc = im_error_set(err, IM_ENOMEM, "out of memory");
    pthread_rwlock_unlock(&mg->lock);
    if (rc != IM_OK)
        im_group_free(g);
    return rc;
}

static int groups_update(im_group_repo *r, const char *id, im_group_update_fn fn, void *arg,
                         im_error *err)
{
    memory_groups *mg = (memory_groups *)r;
    int rc;
    pthread_rwlock_wrlock(&mg->lock);
    im_group *g = im_strmap_get(mg->by_id, id);
    if (!g) {
        rc = im_error_set(err, IM_ENOGROUP, "no group %s", id);
    } else {
        rc = fn(arg, g, err);
        if (rc == IM_OK && im_group_is_empty(g)) {
            im_strmap_remove(mg->by_id, id);
            im_group_free(g);
        }
    }
    pthread_rwlock_unlock(&mg->lock);
    return rc;
}

static int groups_read(im_group_repo *r, const char *id, im_group_read_fn fn, void *arg,
                       im_error *err)
{
    memory_groups *mg = (memory_groups *)r;
    int rc;
    pthread_rwlock_rdlock(&mg->lock);
    const im_group *g = im_strmap_get(mg->by_id, id);
    rc = g ? fn(arg, g, err) : im_error_set(err, IM_ENOGROUP, "no group %s", id);
    pthread_rwlock_unlock(&mg->lock);
    return rc;
}

struct collect { const im_group **all; size_t n; };

static bool collect_one(void *arg, const char *key, void *value)
{
    (void)key;
    struct collect *c = arg;
    c->all[c->n++] = value;
    return true;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(im_group_id(*(const im_group *const *)a), im_group_id(*(const im_group *const *)b));
}

static size_t groups_each(im_group_repo *r, im_group_each_fn fn, void *arg)
{
    memory_groups *mg = (memory_groups *)r;
    pthread_rwlock_rdlock(&mg->lock);
    size_t total = im_strmap_count(mg->by_id);
    struct collect c = { .all = malloc((total ? total : 1) * sizeof *c.all) };
    if (c.all) {
        im_strmap_each(mg->by_id, collect_one, &c);
        qsort(c.all, c.n, sizeof *c.all, by_id);
        for (size_t i = 0; i < c.n && fn(arg, c.all[i]); i++)
            ;
        free(c.all);
    }
    pthread_rwlock_unlock(&mg->lock);
    return total;
}

static bool free_group(void *arg, const char *key, void *value)
{
    (void)arg, (void)key;
    im_group_free(value);
    return true;
}

static void groups_destroy(im_group_repo *r)
{
    memory_groups *mg = (memory_groups *)r;
    if (!mg)
        return;
    if (mg->by_id) {
        im_strmap_each(mg->by_id, free_group, NULL);
        im_strmap_free(mg->by_id);
    }
    pthread_rwlock_destroy(&mg->lock);
    free(mg);
}

static const struct im_group_repo_ops memory_groups_ops = {
    .name = "memory",
    .insert = groups_insert,
    .update = groups_update,
    .read = groups_read,
    .each = groups_each,
    .destroy = groups_destroy,
};

int im_memory_group_repo_new(im_group_repo **out, im_error *err)
{
    *out = NULL;
    memory_groups *mg = calloc(1, sizeof *mg);
    if (!mg)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    mg->base.ops = &memory_groups_ops;
    pthread_rwlock_init(&mg->lock, NULL);
    if (!(mg->by_id = im_strmap_new())) {
        groups_destroy(&mg->base);
        return im_error_set(err, IM_ENOMEM, "out of memory");
    }
    *out = &mg->base;
    return IM_OK;
}
