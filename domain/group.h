/* domain/group.h: a chat group, its owner, its members and their rules.
 *
 * - A group has an id (the user-id rule), an owner who is always a member,
 *   and a member limit fixed at creation (1..IM_GROUP_MAX_MEMBERS_LIMIT).
 * - A user joins at most once; a full group refuses joins.
 * - A member leaves; when the owner leaves, the longest-standing remaining
 *   member becomes the owner. The last member leaving empties the group, and
 *   an empty group is for its repository to delete.
 * Members are kept in join order. Not thread-safe: the repository that holds
 * a group serialises access to it. */
#ifndef IM_DOMAIN_GROUP_H
#define IM_DOMAIN_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "imcore/errors.h"
#include "user.h"

#define IM_GROUP_MAX_MEMBERS_LIMIT 100000u

typedef struct im_group im_group;

/* Creates group id owned by owner_id (both copied, both must pass the id
 * rule), with owner as its first member. *out is the caller's: release it
 * with im_group_free(). Errors: IM_EINVAL, IM_ENOMEM. */
int im_group_new(const char *id, const char *owner_id, uint32_t max_members,
                 im_group **out, im_error *err);
void im_group_free(im_group *g); /* NULL is fine */

/* Errors: IM_EINVAL (bad id), IM_EMEMBER (already in), IM_EFULL, IM_ENOMEM. */
int im_group_add_member(im_group *g, const char *user_id, im_error *err);

/* Errors: IM_ENOTMEMBER. Passes ownership on as described above. */
int im_group_remove_member(im_group *g, const char *user_id, im_error *err);

bool im_group_is_member(const im_group *g, const char *user_id);
bool im_group_is_full(const im_group *g);
bool im_group_is_empty(const im_group *g);

/* Borrowed strings: valid until g changes or is freed. */
const char *im_group_id(const im_group *g);
const char *im_group_owner(const im_group *g); /* "" when empty */
uint32_t im_group_max_members(const im_group *g);
size_t im_group_member_count(const im_group *g);
/* The i-th member in join order, i < im_group_member_count(g); NULL past the
 * end. The owner is always member 0. */
const char *im_group_member(const im_group *g, size_t i);

#endif
