/* domain/group.c: one chat group, its members in join order, its
 * invitations, who owns it and who made it.
 *
 * It owns the membership rules and the memory of the member list, nothing
 * else: not where groups are stored, not who may create one, not locking (the
 * repository serialises access). Each refused call leaves the group as it was,
 * so every check and every allocation happens before the first write.
 *
 * Members live in a dynamic array of heap copies of their ids, in join order,
 * each with its since; invitations in another. Beside the members sits an
 * index, an open-addressing hash table (linear probing, at most half full)
 * whose slots hold a member's position in the join order plus one (0: an
 * empty slot). Membership is asked on every group send and every ack, in
 * groups of up to IM_GROUP_MAX_MEMBERS_LIMIT members, so it must not walk
 * the list; a leave already shifts the list (join order decides the next
 * owner), and renumbers the index in the same pass over memory. The index
 * costs 4 bytes a slot, at most 8 bytes a member. Invitations are looked up
 * linearly: they are asked only of outsiders to a private group and of the
 * owner's invitations. The owner is kept by name, not derived from the join
 * order, since ownership can be handed to any member. */
#include <stdlib.h>
#include <string.h>

#include "domain/group.h"

typedef struct member {
    char *id;       /* the group's own copy */
    uint64_t since;
} member;

struct im_group {
    char id[IM_USER_ID_MAX + 1];
    char owner[IM_USER_ID_MAX + 1];   /* "" when empty */
    char creator[IM_USER_ID_MAX + 1];
    unsigned flags;
    uint32_t max_members;
    member *members;  /* count live entries */
    size_t count;
    size_t cap;
    uint32_t *index;  /* index_cap slots (a power of two, or 0): member position + 1 */
    size_t index_cap;
    char **invited;   /* ninvited live entries, each the group's own copy */
    size_t ninvited;
    size_t invited_cap;
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

/* ---- the member index ---- */

/* FNV-1a: ids are short (at most IM_USER_ID_MAX bytes), and this spreads
 * the "user1", "user2" ... that real groups and benches are full of. */
static size_t hash_id(const char *id)
{
    uint64_t h = 14695981039346656037u;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 1099511628211u;
    return (size_t)(h ^ (h >> 32));
}

/* The slot holding user_id, or the empty slot where it would go; *found
 * says which. The index must have a slot (index_cap > 0). */
static size_t probe(const im_group *g, const char *user_id, bool *found)
{
    size_t mask = g->index_cap - 1;
    size_t s = hash_id(user_id) & mask;
    while (g->index[s]) {
        if (strcmp(g->members[g->index[s] - 1].id, user_id) == 0) {
            *found = true;
            return s;
        }
        s = (s + 1) & mask;
    }
    *found = false;
    return s;
}

/* Returns the index of user_id, or g->count when it is not a member. */
static size_t find_member(const im_group *g, const char *user_id)
{
    bool found;
    if (g->index_cap == 0)
        return g->count;
    size_t s = probe(g, user_id, &found);
    return found ? g->index[s] - 1 : g->count;
}

/* Makes the index big enough for n members, at most half full, by building
 * a new one from the member list. The group is unchanged on failure. */
static int reserve_index(im_group *g, size_t n, im_error *err)
{
    size_t cap = g->index_cap ? g->index_cap : 16;
    while (cap < 2 * n)
        cap *= 2;
    if (cap == g->index_cap)
        return IM_OK;
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return im_error_set(err, IM_ENOMEM, "out of memory indexing group %s (%zu members)",
                            g->id, n);
    free(g->index);
    g->index = slots;
    g->index_cap = cap;
    for (size_t i = 0; i < g->count; i++) {
        bool found;
        g->index[probe(g, g->members[i].id, &found)] = (uint32_t)i + 1;
    }
    return IM_OK;
}

/* Forgets the member at position i, whose id is still valid, and renumbers
 * those after it, who are about to move down one place. */
static void unindex_member(im_group *g, size_t i)
{
    bool found;
    size_t mask = g->index_cap - 1;
    size_t hole = probe(g, g->members[i].id, &found);
    /* Backward-shift deletion: an entry after the hole moves into it
     * unless its home slot lies cyclically in (hole, j], where a search
     * for it still finds it. No tombstones, so probes stay short. */
    for (size_t j = (hole + 1) & mask; g->index[j]; j = (j + 1) & mask) {
        size_t home = hash_id(g->members[g->index[j] - 1].id) & mask;
        bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            g->index[hole] = g->index[j];
            hole = j;
        }
    }
    g->index[hole] = 0;
    for (size_t s = 0; s < g->index_cap; s++)
        if (g->index[s] > i + 1)
            g->index[s]--;
}

/* Returns the index of user_id's invitation, or g->ninvited. */
static size_t find_invited(const im_group *g, const char *user_id)
{
    size_t i;
    for (i = 0; i < g->ninvited; i++)
        if (strcmp(g->invited[i], user_id) == 0)
            break;
    return i;
}

/* Places taken: members and invitations. */
static size_t taken(const im_group *g)
{
    return g->count + g->ninvited;
}

/* The next capacity of an array of cap entries, never above the group's
 * limit: no more slots than the group can ever fill. */
static size_t grown(const im_group *g, size_t cap)
{
    cap = cap ? cap * 2 : GROUP_INITIAL_CAP;
    return cap > g->max_members ? g->max_members : cap;
}

/* Makes room for one more member. The group is unchanged on failure. */
static int reserve_member(im_group *g, im_error *err)
{
    if (g->count < g->cap)
        return IM_OK;
    size_t cap = grown(g, g->cap);
    member *m = realloc(g->members, cap * sizeof *m);
    if (!m)
        return im_error_set(err, IM_ENOMEM, "out of memory growing group %s to %zu members",
                            g->id, cap);
    g->members = m;
    g->cap = cap;
    return IM_OK;
}

static int reserve_invited(im_group *g, im_error *err)
{
    if (g->ninvited < g->invited_cap)
        return IM_OK;
    size_t cap = grown(g, g->invited_cap);
    char **p = realloc(g->invited, cap * sizeof *p);
    if (!p)
        return im_error_set(err, IM_ENOMEM, "out of memory inviting to group %s", g->id);
    g->invited = p;
    g->invited_cap = cap;
    return IM_OK;
}

static void drop_invited(im_group *g, size_t i)
{
    free(g->invited[i]);
    memmove(&g->invited[i], &g->invited[i + 1], (g->ninvited - i - 1) * sizeof *g->invited);
    g->ninvited--;
}

int im_group_new(const char *id, const char *owner_id, uint32_t max_members,
                 im_group **out, im_error *err)
{
    return im_group_new_flags(id, owner_id, max_members, 0, out, err);
}

int im_group_new_flags(const char *id, const char *owner_id, uint32_t max_members,
                       unsigned flags, im_group **out, im_error *err)
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
    if (flags & ~(unsigned)IM_GROUP_FLAGS_ALL)
        return im_error_set(err, IM_EINVAL, "unknown group flags 0x%x", flags);

    im_group *g = calloc(1, sizeof *g);
    if (!g)
        return im_error_set(err, IM_ENOMEM, "out of memory creating group %s", id);
    strcpy(g->id, id);
    strcpy(g->creator, owner_id);
    g->flags = flags;
    g->max_members = max_members;
    int rc = im_group_add_member(g, owner_id, err);
    if (rc != IM_OK) {
        im_group_free(g);
        return rc;
    }
    g->members[0].since = 0; /* the group starts with its creator */
    *out = g;
    return IM_OK;
}

void im_group_free(im_group *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->count; i++)
        free(g->members[i].id);
    free(g->members);
    free(g->index);
    for (size_t i = 0; i < g->ninvited; i++)
        free(g->invited[i]);
    free(g->invited);
    free(g);
}

/* ---- raw changes ---- */

int im_group_add_member(im_group *g, const char *user_id, im_error *err)
{
    im_error sub;
    if (im_user_id_check(user_id, &sub) != IM_OK)
        return im_error_set(err, IM_EINVAL, "bad user id: %s", sub.msg);
    if (find_member(g, user_id) < g->count)
        return im_error_set(err, IM_EMEMBER, "%s is already a member of %s", user_id, g->id);
    size_t inv = find_invited(g, user_id);
    /* An invited user has a place kept. */
    if (inv == g->ninvited && taken(g) >= g->max_members)
        return im_error_set(err, IM_EFULL, "group %s is full (%u members)", g->id,
                            g->max_members);
    int rc = reserve_member(g, err);
    if (rc == IM_OK)
        rc = reserve_index(g, g->count + 1, err);
    if (rc != IM_OK)
        return rc;
    char *copy = copy_id(user_id);
    if (!copy)
        return im_error_set(err, IM_ENOMEM, "out of memory adding %s to %s", user_id, g->id);
    if (inv < g->ninvited)
        drop_invited(g, inv);
    /* A user who joins an emptied group owns it: an empty group has no
     * owner to keep, and the repository may not have deleted it yet. */
    if (g->count == 0)
        strcpy(g->owner, user_id);
    g->members[g->count] = (member){ .id = copy, .since = IM_GROUP_SINCE_UNKNOWN };
    bool found;
    g->index[probe(g, copy, &found)] = (uint32_t)++g->count;
    return IM_OK;
}

int im_group_remove_member(im_group *g, const char *user_id, im_error *err)
{
    size_t i = user_id ? find_member(g, user_id) : g->count;
    if (i == g->count)
        return im_error_set(err, IM_ENOTMEMBER, "%s is not a member of %s",
                            user_id ? user_id : "(null)", g->id);
    bool was_owner = strcmp(g->owner, g->members[i].id) == 0;
    unindex_member(g, i);
    free(g->members[i].id);
    /* Shifting (not swapping in the last member) keeps join order, and join
     * order is what decides the next owner. */
    memmove(&g->members[i], &g->members[i + 1], (g->count - i - 1) * sizeof *g->members);
    g->count--;
    if (was_owner)
        strcpy(g->owner, g->count ? g->members[0].id : "");
    return IM_OK;
}

int im_group_add_invite(im_group *g, const char *user_id, im_error *err)
{
    im_error sub;
    if (im_user_id_check(user_id, &sub) != IM_OK)
        return im_error_set(err, IM_EINVAL, "bad user id: %s", sub.msg);
    if (find_member(g, user_id) < g->count)
        return im_error_set(err, IM_EMEMBER, "%s is already a member of %s", user_id, g->id);
    if (find_invited(g, user_id) < g->ninvited)
        return IM_OK;
    if (taken(g) >= g->max_members)
        return im_error_set(err, IM_EFULL, "group %s is full (%u members and invitations)",
                            g->id, g->max_members);
    int rc = reserve_invited(g, err);
    if (rc != IM_OK)
        return rc;
    char *copy = copy_id(user_id);
    if (!copy)
        return im_error_set(err, IM_ENOMEM, "out of memory inviting %s to %s", user_id, g->id);
    g->invited[g->ninvited++] = copy;
    return IM_OK;
}

int im_group_remove_invite(im_group *g, const char *user_id, im_error *err)
{
    size_t i = user_id ? find_invited(g, user_id) : g->ninvited;
    if (i == g->ninvited)
        return im_error_set(err, IM_ENOTMEMBER, "%s is not invited to %s",
                            user_id ? user_id : "(null)", g->id);
    drop_invited(g, i);
    return IM_OK;
}

int im_group_set_owner(im_group *g, const char *user_id, im_error *err)
{
    if (!im_group_is_member(g, user_id))
        return im_error_set(err, IM_ENOTMEMBER, "%s is not a member of %s",
                            user_id ? user_id : "(null)", g->id);
    strcpy(g->owner, user_id);
    return IM_OK;
}

int im_group_set_creator(im_group *g, const char *user_id, im_error *err)
{
    im_error sub;
    if (im_user_id_check(user_id, &sub) != IM_OK)
        return im_error_set(err, IM_EINVAL, "bad creator id: %s", sub.msg);
    strcpy(g->creator, user_id);
    return IM_OK;
}

int im_group_set_member_since(im_group *g, const char *user_id, uint64_t since, im_error *err)
{
    size_t i = user_id ? find_member(g, user_id) : g->count;
    if (i == g->count)
        return im_error_set(err, IM_ENOTMEMBER, "%s is not a member of %s",
                            user_id ? user_id : "(null)", g->id);
    g->members[i].since = since;
    return IM_OK;
}

int im_group_set_member_since_at(im_group *g, size_t i, uint64_t since, im_error *err)
{
    if (i >= g->count)
        return im_error_set(err, IM_ENOTMEMBER, "group %s has no member %zu", g->id, i);
    g->members[i].since = since;
    return IM_OK;
}

/* ---- requests ---- */

/* A private group answers those who may not see it as if it did not
 * exist, so that its name and members do not leak. */
static int check_visible(const im_group *g, const char *user_id, im_error *err)
{
    if (!im_group_may_see(g, user_id))
        return im_error_set(err, IM_ENOGROUP, "no group %s", g->id);
    return IM_OK;
}

int im_group_check_owner(const im_group *g, const char *by, im_error *err)
{
    int rc = check_visible(g, by, err);
    if (rc != IM_OK)
        return rc;
    if (!by || strcmp(g->owner, by) != 0)
        return im_error_set(err, IM_EPERM, "only the owner of %s (%s) may do this", g->id,
                            g->owner);
    return IM_OK;
}

int im_group_check_member(const im_group *g, const char *user_id, im_error *err)
{
    int rc = check_visible(g, user_id, err);
    if (rc == IM_OK && !im_group_is_member(g, user_id))
        rc = im_error_set(err, IM_ENOTMEMBER, "you are not a member of %s", g->id);
    return rc;
}

int im_group_join(im_group *g, const char *user_id, im_error *err)
{
    im_error sub;
    if (im_user_id_check(user_id, &sub) != IM_OK)
        return im_error_set(err, IM_EINVAL, "bad user id: %s", sub.msg);
    if (im_group_is_private(g) && !im_group_is_invited(g, user_id) &&
        !im_group_is_member(g, user_id))
        return im_error_set(err, IM_ENOGROUP, "no group %s", g->id);
    return im_group_add_member(g, user_id, err);
}

int im_group_leave(im_group *g, const char *user_id, im_error *err)
{
    int rc = check_visible(g, user_id, err);
    return rc == IM_OK ? im_group_remove_member(g, user_id, err) : rc;
}

int im_group_invite(im_group *g, const char *by, const char *user_id, im_error *err)
{
    int rc = im_group_check_owner(g, by, err);
    if (rc != IM_OK)
        return rc;
    if (!im_group_is_private(g))
        return im_error_set(err, IM_EINVAL, "%s is public: anyone may join it", g->id);
    return im_group_add_invite(g, user_id, err);
}

int im_group_kick(im_group *g, const char *by, const char *user_id, im_error *err)
{
    int rc = im_group_check_owner(g, by, err);
    if (rc != IM_OK)
        return rc;
    if (user_id && strcmp(user_id, by) == 0)
        return im_error_set(err, IM_EINVAL, "the owner leaves %s instead", g->id);
    if (im_group_is_member(g, user_id))
        return im_group_remove_member(g, user_id, err);
    if (im_group_is_invited(g, user_id))
        return im_group_remove_invite(g, user_id, err);
    return im_error_set(err, IM_ENOTMEMBER, "%s is neither a member of %s nor invited",
                        user_id ? user_id : "(null)", g->id);
}

int im_group_transfer(im_group *g, const char *by, const char *user_id, im_error *err)
{
    int rc = im_group_check_owner(g, by, err);
    if (rc != IM_OK)
        return rc;
    if (user_id && strcmp(user_id, by) == 0)
        return im_error_set(err, IM_EINVAL, "%s already owns %s", by, g->id);
    return im_group_set_owner(g, user_id, err);
}

/* ---- reading ---- */

bool im_group_is_member(const im_group *g, const char *user_id)
{
    return user_id && find_member(g, user_id) < g->count;
}

bool im_group_is_invited(const im_group *g, const char *user_id)
{
    return user_id && find_invited(g, user_id) < g->ninvited;
}

bool im_group_may_see(const im_group *g, const char *user_id)
{
    return !im_group_is_private(g) || im_group_is_member(g, user_id) ||
           im_group_is_invited(g, user_id);
}

bool im_group_is_full(const im_group *g)
{
    return taken(g) >= g->max_members;
}

bool im_group_is_empty(const im_group *g)
{
    return g->count == 0;
}

bool im_group_is_private(const im_group *g)
{
    return (g->flags & IM_GROUP_PRIVATE) != 0;
}

bool im_group_shares_history(const im_group *g)
{
    return (g->flags & IM_GROUP_SHARE_HISTORY) != 0;
}

const char *im_group_id(const im_group *g)
{
    return g->id;
}

const char *im_group_owner(const im_group *g)
{
    return g->owner;
}

const char *im_group_creator(const im_group *g)
{
    return g->creator;
}

unsigned im_group_flags(const im_group *g)
{
    return g->flags;
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
    return i < g->count ? g->members[i].id : NULL;
}

uint64_t im_group_member_since_at(const im_group *g, size_t i)
{
    return i < g->count ? g->members[i].since : IM_GROUP_SINCE_UNKNOWN;
}

uint64_t im_group_member_since(const im_group *g, const char *user_id)
{
    size_t i = user_id ? find_member(g, user_id) : g->count;
    return im_group_member_since_at(g, i);
}

size_t im_group_invited_count(const im_group *g)
{
    return g->ninvited;
}

const char *im_group_invited(const im_group *g, size_t i)
{
    return i < g->ninvited ? g->invited[i] : NULL;
}
