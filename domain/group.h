/* domain/group.h: a chat group, its owner, its members, its invitations,
 * and their rules.
 *
 * - A group has an id (the user-id rule), an owner who is always a member,
 *   a creator (the user who made it: the group counts against the
 *   creator's quota for as long as it exists, whoever owns it), and a
 *   member limit fixed at creation (1..IM_GROUP_MAX_MEMBERS_LIMIT).
 * - Flags, fixed at creation. IM_GROUP_PRIVATE: joined by invitation only,
 *   and hidden from every user who is neither a member nor invited (to
 *   them it does not exist: IM_ENOGROUP). IM_GROUP_SHARE_HISTORY: a member
 *   reads the group's whole history, not only what was said since they
 *   joined.
 * - A user joins at most once; a full group refuses joins. Members and
 *   invitations together stay within the member limit, so an invitation
 *   keeps a place. A join of an invited user uses the invitation up.
 * - Only the owner invites, removes a member or withdraws an invitation
 *   (kick), hands ownership to another member (transfer), and deletes the
 *   group (check_owner). Anyone else who can see the group gets IM_EPERM.
 * - A member leaves; when the owner leaves (or is removed), the
 *   longest-standing remaining member becomes the owner. The last member
 *   leaving empties the group, and an empty group is for its repository to
 *   delete.
 * - Each member has a "since": the seq of the group's conversation when
 *   they joined. What was said up to it is not theirs to read unless the
 *   group shares its history. A member added here has IM_GROUP_SINCE_UNKNOWN
 *   until the caller, who learns the seq from the store, sets it.
 * Members are kept in join order; a member is found by name in constant
 * expected time (a hash index beside the list), so asking about membership
 * costs the same in a group of 3 and of IM_GROUP_MAX_MEMBERS_LIMIT. A leave
 * costs time linear in the group's size. Not thread-safe: the repository that holds
 * a group serialises access to it. */
#ifndef IM_DOMAIN_GROUP_H
#define IM_DOMAIN_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "imcore/errors.h"
#include "user.h"

#define IM_GROUP_MAX_MEMBERS_LIMIT 100000u

/* A group's flags (im_group_new_flags), fixed for its life. */
enum {
    IM_GROUP_PRIVATE = 1u << 0,
    IM_GROUP_SHARE_HISTORY = 1u << 1,
};
#define IM_GROUP_FLAGS_ALL (IM_GROUP_PRIVATE | IM_GROUP_SHARE_HISTORY)

/* The since of a member whose join the store has not numbered yet: nothing
 * of the history is theirs to read. */
#define IM_GROUP_SINCE_UNKNOWN UINT64_MAX

typedef struct im_group im_group;

/* Creates group id owned and created by owner_id (both copied, both must
 * pass the id rule), with owner as its first member (since 0), and flags
 * (IM_GROUP_* bits; im_group_new: none). *out is the caller's: release it
 * with im_group_free(). Errors: IM_EINVAL (a bad id, max_members out of
 * range, an unknown flag), IM_ENOMEM. */
int im_group_new(const char *id, const char *owner_id, uint32_t max_members,
                 im_group **out, im_error *err);
int im_group_new_flags(const char *id, const char *owner_id, uint32_t max_members,
                       unsigned flags, im_group **out, im_error *err);
void im_group_free(im_group *g); /* NULL is fine */

/* ---- requests, with the rules above (by: who asks) ---- */

/* A user joins: any user a public group, only an invited one a private
 * group (the invitation is used up). Errors: IM_EINVAL (bad id),
 * IM_ENOGROUP (private, and user is not invited), IM_EMEMBER, IM_EFULL,
 * IM_ENOMEM. */
int im_group_join(im_group *g, const char *user_id, im_error *err);

/* A member leaves. Errors: IM_ENOGROUP (private, and user can not see it),
 * IM_ENOTMEMBER. */
int im_group_leave(im_group *g, const char *user_id, im_error *err);

/* The owner `by` invites user into the private group g; inviting someone
 * already invited changes nothing and is no error. Errors: IM_ENOGROUP (by
 * can not see g), IM_EPERM (by is not the owner), IM_EINVAL (bad id; g is
 * public: anyone may join it), IM_EMEMBER, IM_EFULL (members and
 * invitations fill the limit), IM_ENOMEM. */
int im_group_invite(im_group *g, const char *by, const char *user_id, im_error *err);

/* The owner `by` removes the member user, or withdraws user's invitation.
 * Errors: IM_ENOGROUP, IM_EPERM, IM_EINVAL (user is by: leave instead),
 * IM_ENOTMEMBER (neither a member nor invited). */
int im_group_kick(im_group *g, const char *by, const char *user_id, im_error *err);

/* The owner `by` hands ownership to the member user. Errors: IM_ENOGROUP,
 * IM_EPERM, IM_EINVAL (user is by), IM_ENOTMEMBER. */
int im_group_transfer(im_group *g, const char *by, const char *user_id, im_error *err);

/* IM_OK if by owns g, which is what deleting it asks. Errors: IM_ENOGROUP
 * (by can not see g), IM_EPERM. */
int im_group_check_owner(const im_group *g, const char *by, im_error *err);

/* IM_OK if user is a member, which is what sending to the group and
 * reading its history ask. Errors: IM_ENOGROUP (user can not see g),
 * IM_ENOTMEMBER. */
int im_group_check_member(const im_group *g, const char *user_id, im_error *err);

/* ---- raw changes, without asking who: for rebuilding a stored group and
 * for undoing a change the store refused ---- */

/* Adds user at the end of the join order (since IM_GROUP_SINCE_UNKNOWN),
 * using up an invitation if there is one. Errors: IM_EINVAL (bad id),
 * IM_EMEMBER (already in), IM_EFULL, IM_ENOMEM. */
int im_group_add_member(im_group *g, const char *user_id, im_error *err);

/* Errors: IM_ENOTMEMBER. Passes ownership on as described above. */
int im_group_remove_member(im_group *g, const char *user_id, im_error *err);

/* Errors: IM_EINVAL (bad id), IM_EMEMBER, IM_EFULL, IM_ENOMEM; an
 * invitation that exists is no error. Public groups take invitations here
 * too (a stored group is rebuilt as it was). */
int im_group_add_invite(im_group *g, const char *user_id, im_error *err);
/* Errors: IM_ENOTMEMBER (no such invitation). */
int im_group_remove_invite(im_group *g, const char *user_id, im_error *err);

/* Errors: IM_ENOTMEMBER (user is not a member). */
int im_group_set_owner(im_group *g, const char *user_id, im_error *err);
/* Errors: IM_EINVAL (bad id). */
int im_group_set_creator(im_group *g, const char *user_id, im_error *err);
/* Errors: IM_ENOTMEMBER. _at: of the i-th member in join order (a
 * stored group is rebuilt member by member, so the one just added is the
 * last: no search). */
int im_group_set_member_since(im_group *g, const char *user_id, uint64_t since, im_error *err);
int im_group_set_member_since_at(im_group *g, size_t i, uint64_t since, im_error *err);

/* ---- reading ---- */

bool im_group_is_member(const im_group *g, const char *user_id);
bool im_group_is_invited(const im_group *g, const char *user_id);
/* A public group, or a private one user is a member of or invited to. */
bool im_group_may_see(const im_group *g, const char *user_id);
bool im_group_is_full(const im_group *g);
bool im_group_is_empty(const im_group *g);
bool im_group_is_private(const im_group *g);
bool im_group_shares_history(const im_group *g);

/* Borrowed strings: valid until g changes or is freed. */
const char *im_group_id(const im_group *g);
const char *im_group_owner(const im_group *g);   /* "" when empty */
const char *im_group_creator(const im_group *g);
unsigned im_group_flags(const im_group *g);
uint32_t im_group_max_members(const im_group *g);
size_t im_group_member_count(const im_group *g);
/* The i-th member in join order, i < im_group_member_count(g); NULL past the
 * end. */
const char *im_group_member(const im_group *g, size_t i);
/* The since of the i-th member (IM_GROUP_SINCE_UNKNOWN past the end), or
 * of user (IM_GROUP_SINCE_UNKNOWN for one who is not a member). */
uint64_t im_group_member_since_at(const im_group *g, size_t i);
uint64_t im_group_member_since(const im_group *g, const char *user_id);
size_t im_group_invited_count(const im_group *g);
/* The i-th invitation, in the order given; NULL past the end. */
const char *im_group_invited(const im_group *g, size_t i);

#endif
