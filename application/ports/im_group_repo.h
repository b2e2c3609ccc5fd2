/* application/ports/im_group_repo.h: where groups are kept.
 *
 * The repository owns every im_group and serialises access to each: the
 * application never holds a group pointer past a callback. Rules stay in the
 * domain and the application; the repository only stores and locks. */
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
/* Called by each() for every group; return false to stop. */
typedef bool (*im_group_each_fn)(void *arg, const im_group *g);

struct im_group_repo_ops {
    const char *name;
    /* Takes ownership of g, also on failure. Errors: IM_EEXIST, IM_ENOMEM. */
    int (*insert)(im_group_repo *r, im_group *g, im_error *err);
    /* Runs fn on the group named id; deletes the group if fn leaves it empty.
     * Errors: IM_ENOGROUP, or fn's code. */
    int (*update)(im_group_repo *r, const char *id, im_group_update_fn fn, void *arg,
                  im_error *err);
    /* Errors: IM_ENOGROUP, or fn's code. */
    int (*read)(im_group_repo *r, const char *id, im_group_read_fn fn, void *arg,
                im_error *err);
    /* Visits groups in id order; returns how many groups exist. */
    size_t (*each)(im_group_repo *r, im_group_each_fn fn, void *arg);
    void (*destroy)(im_group_repo *r);
};

struct im_group_repo { const struct im_group_repo_ops *ops; };

#endif
