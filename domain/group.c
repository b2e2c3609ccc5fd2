/* domain/group.c: one chat group, its members in join order, and who owns it.
 *
 * It owns the membership rules and the memory of the member list, nothing
 * else: not where groups are stored, not who may create one, not locking (the
 * repository serialises access). Each refused call leaves the group as it was,
 * so every check and every allocation happens before the first write.
 *
 * Members live in a dynamic array of heap copies of their ids, in join order.
 * Lookup is linear: fine for the group sizes imcore serves today; an index can
 * come later without changing the header. */
#include <stdlib.h>
#include <string.h>

#include "domain/group.h"

struct im_group {
    char id[IM_USER_ID_MAX + 1];
    uint32_t max_members;
    char **members;  /* count live entries, each the group's own copy */
    size_t count;
    size_t cap;
};

/* The first allocation holds this many members, or max_members if smaller:
 * most groups are small, and the array doubles when it fills. */
#define GROUP_INITIAL_CAP 8u

/* strdup() is POSIX, not C11; the domain builds with -std=c11 on its own. */
static char *copy_id(const char *id)
{
    size_t n = strlen(id) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, id, n);
    return p;
}

/* Returns the index of user_id, or g->count when it is not a member. */
static size_t find_member(const im_group *g, const char *user_id)
{
    size_t i;
    for (i = 0; i < g->count; i++)
        if (strcmp(g->members[i], user_id) == 0)
            break;
    return i;
}

/* Makes room for one more member. The group is unchanged on failure. */
static int reserve_one(im_group *g, im_error *err)
{
    if (g->count < g->cap)
        return IM_OK;
    size_t cap = g->cap ? g->cap * 2 : GROUP_INITIAL_CAP;
    /* Never hold more slots than the group can ever fill. */
    if (cap > g->max_members)
        cap = g->max_members;
    char **m = realloc(g->members, cap * sizeof *m);
    if (!m)
        return im_error_set(err, IM_ENOMEM, "out of memory growing group %s to %zu members",
                            g->id, cap);
    g->members = m;
    g->cap = cap;
    return IM_OK;
}

int im_group_new(const char *id, const char *owner_id, uint32_t max_members,
                 im_group **out, im_error *err)
{
    if (!out)
        return im_error_set(err, IM_EINVAL, "no place to put the new group");
    *out = NULL;
    im_error sub;
    if (im_user_id_check(id, &sub) != IM_OK)
        return im_error_set(err, IM_EINVAL, "bad group id: %s", sub.msg);
    if (im_user_id_check(owner_id, &sub) != IM_OK)
        return im_error_set(err, IM_EINVAL, "bad owner id: %s", sub.msg);
    if (max_members == 0 || max_members > IM_GROUP_MAX_MEMBERS_LIMIT)
        return im_error_set(err, IM_EINVAL, "max_members %u is outside 1..%u", max_members,
                            IM_GROUP_MAX_MEMBERS_LIMIT);

    im_group *g = malloc(sizeof *g);
    if (!g)
        return im_error_set(err, IM_ENOMEM, "out of memory creating group %s", id);
    strcpy(g->id, id);
    g->max_members = max_members;
    g->members = NULL;
    g->count = 0;
    g->cap = 0;
    int rc = im_group_add_member(g, owner_id, err);
    if (rc != IM_OK) {
        im_group_free(g);
        return rc;
    }
    *out = g;
    return IM_OK;
}

void im_group_free(im_group *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->count; i++)
        free(g->members[i]);
    free(g->members);
    free(g);
}

int im_group_add_member(im_group *g, const char *user_id, im_error *err)
{
    im_error sub;
    if (im_user_id_check(user_id, &sub) != IM_OK)
        return im_error_set(err, IM_EINVAL, "bad user id: %s", sub.msg);
    if (find_member(g, user_id) < g->count)
        return im_error_set(err, IM_EMEMBER, "%s is already a member of %s", user_id, g->id);
    if (im_group_is_full(g))
        return im_error_set(err, IM_EFULL, "group %s is full (%u members)", g->id,
                            g->max_members);
    int rc = reserve_one(g, err);
    if (rc != IM_OK)
        return rc;
    char *copy = copy_id(user_id);
    if (!copy)
        return im_error_set(err, IM_ENOMEM, "out of memory adding %s to %s", user_id, g->id);
    /* A user who joins an emptied group lands at index 0 and so owns it: an
     * empty group has no owner to keep, and the repository may not have
     * deleted it yet. */
    g->members[g->count++] = copy;
    return IM_OK;
}

int im_group_remove_member(im_group *g, const char *user_id, im_error *err)
{
    size_t i = user_id ? find_member(g, user_id) : g->count;
    if (i == g->count)
        return im_error_set(err, IM_ENOTMEMBER, "%s is not a member of %s",
                            user_id ? user_id : "(null)", g->id);
    free(g->members[i]);
    /* Shifting (not swapping in the last member) keeps join order, and join
     * order is what decides the next owner. */
    memmove(&g->members[i], &g->members[i + 1], (g->count - i - 1) * sizeof *g->members);
    g->count--;
    return IM_OK;
}

bool im_group_is_member(const im_group *g, const char *user_id)
{
    return user_id && find_member(g, user_id) < g->count;
}

bool im_group_is_full(const im_group *g)
{
    return g->count >= g->max_members;
}

bool im_group_is_empty(const im_group *g)
{
    return g->count == 0;
}

const char *im_group_id(const im_group *g)
{
    return g->id;
}

const char *im_group_owner(const im_group *g)
{
    /* The owner is always members[0]: the creator joins first, and when the
     * owner leaves, the longest-standing remaining member (the new index 0)
     * takes over. Deriving it keeps the two from ever disagreeing; a future
     * "hand over ownership" call would need a stored owner instead. */
    return g->count ? g->members[0] : "";
}

uint32_t im_group_max_members(const im_group *g)
{
    return g->max_members;
}

size_t im_group_member_count(const im_group *g)
{
    return g->count;
}

const char *im_group_member(const im_group *g, size_t i)
{
    return i < g->count ? g->members[i] : NULL;
}
