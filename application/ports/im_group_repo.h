/* application/ports/im_group_repo.h: where groups are kept.
 *
 * The repository owns every im_group and serialises access to each: the
 * application never holds a group pointer past a callback. Rules stay in the
 * domain and the application; the repository only stores, locks and keeps
 * the orders and counts that make listings and quotas cheap: groups by id,
 * the private groups each user may see (im_group_may_see), and how many
 * groups each creator has. */
#ifndef IM_PORT_GROUP_REPO_H
#define IM_PORT_GROUP_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include "imcore/errors.h"
#include "domain/group.h"

typedef struct im_group_repo im_group_repo;

/* A change to one group, run with the group locked for writing. g is
 * borrowed for the call. Returns 0 or an IM_E* code (which update returns). */
typedef int (*im_group_update_fn)(void *arg, im_group *g, im_error *err);
/* A read of one group, run with the group locked for reading. */
typedef int (*im_group_read_fn)(void *arg, const im_group *g, im_error *err);
/* Called by visit() for each group, locked for reading; return false to stop. */
typedef bool (*im_group_each_fn)(void *arg, const im_group *g);

struct im_group_repo_ops {
    const char *name;
    /* Takes ownership of g, also on failure. With max_created > 0, refuses
     * g when its creator already has max_created groups in the repository
     * (checked and inserted under one lock, so two creations at once cannot
     * both pass). Errors: IM_EEXIST, IM_EQUOTA, IM_ENOMEM. */
    int (*insert)(im_group_repo *r, im_group *g, size_t max_created, im_error *err);
    /* Runs fn on the group named id; deletes the group if fn leaves it
     * empty. touched names the one user whose membership or invitation fn
     * may change (NULL: none), so that the repository can keep each user's
     * private groups in step. Errors: IM_ENOGROUP, or fn's code. */
    int (*update)(im_group_repo *r, const char *id, const char *touched,
                  im_group_update_fn fn, void *arg, im_error *err);
    /* Errors: IM_ENOGROUP, or fn's code. */
    int (*read)(im_group_repo *r, const char *id, im_group_read_fn fn, void *arg,
                im_error *err);
    /* Runs fn on the group named id, locked for writing; if fn returns 0,
     * takes the group out of the repository and hands it to *out: the
     * caller's, to free with im_group_free() or to insert again. fn may
     * read g; it must not change it. Errors: IM_ENOGROUP, or fn's code. */
    int (*remove)(im_group_repo *r, const char *id, im_group_update_fn fn, void *arg,
                  im_group **out, im_error *err);
    /* Visits the groups user may see, in id order (bytewise), from the
     * first whose id sorts after `after` (NULL or "": from the first) until
     * fn returns false; returns how many groups user may see. The cost is
     * O(log n) to find the start, then O(1) per group visited, however many
     * groups exist or are hidden from user. */
    size_t (*visit)(im_group_repo *r, const char *user, const char *after, im_group_each_fn fn,
                    void *arg);
    void (*destroy)(im_group_repo *r);
};

struct im_group_repo { const struct im_group_repo_ops *ops; };

#endif
