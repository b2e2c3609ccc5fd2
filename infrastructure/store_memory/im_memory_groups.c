/* infrastructure/store_memory/im_memory_groups.c: groups in memory behind one
 * reader-writer lock. Group sends only read (many at once); joins, leaves and
 * creation write. The rules themselves run in the callbacks the application
 * hands in; this file only keeps, locks and indexes.
 *
 * Indexes, all kept in step under the write lock:
 * - by_id: id -> group, for every lookup by name;
 * - public: the public groups in id order (an AVL tree), and seen: for each
 *   user, the private groups they are a member of or invited to, in id
 *   order. A listing merges the two from its cursor on, so a page costs
 *   O(log n) plus the page, and private groups of others cost a listing
 *   nothing, however many there are;
 * - created: how many groups each creator has, for the quota.
 * Trees borrow their keys from the groups (im_group_id), so a group leaves
 * every index before it is freed.
 *
 * Out of memory while indexing a change already made (a user's first
 * private group) leaves that group out of the user's listings; the group
 * itself, its membership and every request on it are unaffected. */
#include "im_memory_store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "im_ordset.h"
#include "im_strmap.h"

typedef struct memory_groups {
    im_group_repo base;
    pthread_rwlock_t lock;
    im_strmap *by_id;    /* group id -> im_group* (owned) */
    im_ordset *public_;  /* public groups by id (borrowed) */
    im_strmap *seen;     /* user -> im_ordset* of private groups (owned sets) */
    im_strmap *created;  /* creator -> count, stored as a pointer-sized number */
    atomic_size_t steps; /* tree nodes the listings touched, for tests */
} memory_groups;

/* ---- indexes ---- */

static size_t created_count(memory_groups *mg, const char *creator)
{
    return (size_t)(uintptr_t)im_strmap_get(mg->created, creator);
}

static int created_add(memory_groups *mg, const char *creator, int delta)
{
    size_t n = created_count(mg, creator) + (size_t)(ptrdiff_t)delta;
    if (n == 0) {
        im_strmap_remove(mg->created, creator);
        return IM_OK;
    }
    return im_strmap_put(mg->created, creator, (void *)(uintptr_t)n, NULL);
}

static int seen_add(memory_groups *mg, const char *user, const im_group *g)
{
    im_ordset *set = im_strmap_get(mg->seen, user);
    if (!set) {
        if (!(set = im_ordset_new()))
            return IM_ENOMEM;
        if (im_strmap_put(mg->seen, user, set, NULL) != IM_OK) {
            im_ordset_free(set);
            return IM_ENOMEM;
        }
    }
    int rc = im_ordset_insert(set, im_group_id(g), g);
    if (rc == IM_EEXIST)
        rc = IM_OK;
    if (rc != IM_OK && im_ordset_count(set) == 0) {
        im_strmap_remove(mg->seen, user);
        im_ordset_free(set);
    }
    return rc;
}

static void seen_remove(memory_groups *mg, const char *user, const im_group *g)
{
    im_ordset *set = im_strmap_get(mg->seen, user);
    if (!set)
        return;
    im_ordset_remove(set, im_group_id(g));
    if (im_ordset_count(set) == 0) {
        im_strmap_remove(mg->seen, user);
        im_ordset_free(set);
    }
}

/* Takes g out of the listings. Removing what is not there is harmless, so
 * this also undoes a half-done index_listings. */
static void unindex_listings(memory_groups *mg, const im_group *g)
{
    if (!im_group_is_private(g)) {
        im_ordset_remove(mg->public_, im_group_id(g));
        return;
    }
    for (size_t i = 0; i < im_group_member_count(g); i++)
        seen_remove(mg, im_group_member(g, i), g);
    for (size_t i = 0; i < im_group_invited_count(g); i++)
        seen_remove(mg, im_group_invited(g, i), g);
}

static int index_listings(memory_groups *mg, const im_group *g)
{
    int rc = IM_OK;
    if (!im_group_is_private(g))
        return im_ordset_insert(mg->public_, im_group_id(g), g);
    for (size_t i = 0; rc == IM_OK && i < im_group_member_count(g); i++)
        rc = seen_add(mg, im_group_member(g, i), g);
    for (size_t i = 0; rc == IM_OK && i < im_group_invited_count(g); i++)
        rc = seen_add(mg, im_group_invited(g, i), g);
    if (rc != IM_OK)
        unindex_listings(mg, g);
    return rc;
}

/* Takes g out of every index; the caller frees it or hands it on. */
static void unlink_group(memory_groups *mg, im_group *g)
{
    unindex_listings(mg, g);
    created_add(mg, im_group_creator(g), -1);
    im_strmap_remove(mg->by_id, im_group_id(g));
}

/* ---- the port ---- */

static int groups_insert(im_group_repo *r, im_group *g, size_t max_created, im_error *err)
{
    memory_groups *mg = (memory_groups *)r;
    int rc = IM_OK;
    const char *creator = im_group_creator(g);
    pthread_rwlock_wrlock(&mg->lock);
    size_t n = created_count(mg, creator);
    if (im_strmap_get(mg->by_id, im_group_id(g))) {
        rc = im_error_set(err, IM_EEXIST, "group %s already exists", im_group_id(g));
    } else if (max_created && n >= max_created) {
        rc = im_error_set(err, IM_EQUOTA, "%s has created %zu groups, the most allowed: "
                          "delete one first", creator, n);
    } else if (im_strmap_put(mg->by_id, im_group_id(g), g, NULL) != IM_OK) {
        rc = im_error_set(err, IM_ENOMEM, "out of memory");
    } else if (index_listings(mg, g) != IM_OK) {
        im_strmap_remove(mg->by_id, im_group_id(g));
        rc = im_error_set(err, IM_ENOMEM, "out of memory");
    } else if (created_add(mg, creator, 1) != IM_OK) {
        unindex_listings(mg, g);
        im_strmap_remove(mg->by_id, im_group_id(g));
        rc = im_error_set(err, IM_ENOMEM, "out of memory");
    }
    pthread_rwlock_unlock(&mg->lock);
    if (rc != IM_OK)
        im_group_free(g);
    return rc;
}

static int groups_update(im_group_repo *r, const char *id, const char *touched,
                         im_group_update_fn fn, void *arg, im_error *err)
{
    memory_groups *mg = (memory_groups *)r;
    int rc;
    pthread_rwlock_wrlock(&mg->lock);
    im_group *g = im_strmap_get(mg->by_id, id);
    if (!g) {
        rc = im_error_set(err, IM_ENOGROUP, "no group %s", id);
    } else {
        /* Anyone touched leaves the listings first: an emptied group is
         * deleted below, and a group must not be freed while still in a
         * user's set (touched may no longer be a member by then). */
        bool indexed = touched && im_group_is_private(g) && im_group_may_see(g, touched);
        rc = fn(arg, g, err);
        if (rc == IM_OK && im_group_is_empty(g)) {
            if (indexed)
                seen_remove(mg, touched, g);
            unlink_group(mg, g);
            im_group_free(g);
        } else if (rc == IM_OK && touched && im_group_is_private(g)) {
            bool sees = im_group_may_see(g, touched);
            if (sees && !indexed)
                (void)seen_add(mg, touched, g); /* out of memory: see the top */
            else if (!sees && indexed)
                seen_remove(mg, touched, g);
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

static int groups_remove(im_group_repo *r, const char *id, im_group_update_fn fn, void *arg,
                         im_group **out, im_error *err)
{
    memory_groups *mg = (memory_groups *)r;
    int rc;
    *out = NULL;
    pthread_rwlock_wrlock(&mg->lock);
    im_group *g = im_strmap_get(mg->by_id, id);
    if (!g) {
        rc = im_error_set(err, IM_ENOGROUP, "no group %s", id);
    } else if ((rc = fn(arg, g, err)) == IM_OK) {
        unlink_group(mg, g);
        *out = g;
    }
    pthread_rwlock_unlock(&mg->lock);
    return rc;
}

/* The next entry of a walk, or NULL at its end. */
static const im_group *walk_next(im_ordset_iter *it, bool live)
{
    const void *g = NULL;
    return live && im_ordset_next(it, NULL, &g) ? g : NULL;
}

static size_t groups_visit(im_group_repo *r, const char *user, const char *after,
                           im_group_each_fn fn, void *arg)
{
    memory_groups *mg = (memory_groups *)r;
    im_ordset_iter pub, mine;
    pthread_rwlock_rdlock(&mg->lock);
    const im_ordset *own = user ? im_strmap_get(mg->seen, user) : NULL;
    size_t total = im_ordset_count(mg->public_) + (own ? im_ordset_count(own) : 0);
    im_ordset_iter_after(mg->public_, after, &pub);
    if (own)
        im_ordset_iter_after(own, after, &mine);
    else
        mine.depth = mine.steps = 0;
    /* Two runs in id order, merged: an id is in at most one of them. */
    const im_group *a = walk_next(&pub, true), *b = walk_next(&mine, own != NULL);
    while (a || b) {
        bool take_a = a && (!b || strcmp(im_group_id(a), im_group_id(b)) < 0);
        if (!fn(arg, take_a ? a : b))
            break;
        if (take_a)
            a = walk_next(&pub, true);
        else
            b = walk_next(&mine, own != NULL);
    }
    pthread_rwlock_unlock(&mg->lock);
    atomic_fetch_add_explicit(&mg->steps, pub.steps + mine.steps, memory_order_relaxed);
    return total;
}

static bool free_group(void *arg, const char *key, void *value)
{
    (void)arg, (void)key;
    im_group_free(value);
    return true;
}

static bool free_set(void *arg, const char *key, void *value)
{
    (void)arg, (void)key;
    im_ordset_free(value);
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
    if (mg->seen) {
        im_strmap_each(mg->seen, free_set, NULL);
        im_strmap_free(mg->seen);
    }
    im_ordset_free(mg->public_);
    im_strmap_free(mg->created);
    pthread_rwlock_destroy(&mg->lock);
    free(mg);
}

static const struct im_group_repo_ops memory_groups_ops = {
    .name = "memory",
    .insert = groups_insert,
    .update = groups_update,
    .read = groups_read,
    .remove = groups_remove,
    .visit = groups_visit,
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
    atomic_init(&mg->steps, 0);
    if (!(mg->by_id = im_strmap_new()) || !(mg->public_ = im_ordset_new()) ||
        !(mg->seen = im_strmap_new()) || !(mg->created = im_strmap_new())) {
        groups_destroy(&mg->base);
        return im_error_set(err, IM_ENOMEM, "out of memory");
    }
    *out = &mg->base;
    return IM_OK;
}

size_t im_memory_group_repo_steps(im_group_repo *r)
{
    memory_groups *mg = (memory_groups *)r;
    return atomic_load_explicit(&mg->steps, memory_order_relaxed);
}
