/* application/im_app_groups.c: the group use cases: create, join, leave,
 * list, and the owner's requests (invite, kick, transfer, delete); and the
 * groups loaded from the store at start.
 *
 * A change is made in memory first, in the repository under its lock with
 * the domain's rules, so that the requests after it see it at once; then
 * it is made durable through the store, and answered once the store has
 * completed it. A change the store fails or refuses is undone in memory,
 * exactly (a removed member comes back with its since, an ownership handed
 * over goes back, a deleted group is put back), so memory never claims
 * what the disk does not hold. The store numbers a join: the seq it came
 * at becomes the member's since, and their history starts after it unless
 * the group shares its history. Users a change by someone else affects
 * (invited, removed, made owner, their group deleted) get a notice through
 * the route port once the change is durable, if they are online; the
 * listing (GroupList) is where everyone finds the state later.
 *
 * A store whose table has no group_change (imcore/storage.h)
 * keeps groups as the first release did: they are created public with
 * their history shared, and what needs more is refused (IM_EUNSUPPORTED).
 * No I/O here: effects go out through the ports. */
#include "im_app_internal.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/user.h"

_Static_assert(IM_STORE_GROUP_PRIVATE == IM_GROUP_PRIVATE &&
                   IM_STORE_GROUP_SHARE_HISTORY == IM_GROUP_SHARE_HISTORY,
               "the store's group flags are the domain's");

static bool has_group_change(const im_app *app)
{
    const struct im_store_ops *ops = im__app_ports(app)->store->ops;
    return ops->size >= offsetof(struct im_store_ops, group_change) + sizeof ops->group_change &&
           ops->group_change != NULL;
}

/* ---- loading ---- */

struct loader {
    im_group_repo *repo;
    bool full;                    /* the record's fields after nmembers are filled */
};

/* A stored group, rebuilt through the domain's rules: a store (perhaps a
 * third party's) cannot slip in a group the domain would refuse. */
static int add_loaded_group(void *arg, const im_group_record *r)
{
    const struct loader *ld = arg;
    im_error err = { 0 };
    im_group *g = NULL;
    if (r->nmembers == 0)
        return IM_EIO;
    unsigned flags = ld->full ? r->flags : IM_GROUP_SHARE_HISTORY;
    int rc = im_group_new_flags(r->id, r->members[0], r->max_members, flags, &g, &err);
    for (size_t i = 0; rc == IM_OK && i < r->nmembers; i++) {
        if (i > 0)
            rc = im_group_add_member(g, r->members[i], &err);
        if (rc == IM_OK)
            rc = im_group_set_member_since_at(g, i, ld->full && r->since ? r->since[i] : 0,
                                              &err);
    }
    if (ld->full) {
        for (size_t i = 0; rc == IM_OK && i < r->ninvited; i++)
            rc = im_group_add_invite(g, r->invited[i], &err);
        if (rc == IM_OK && r->owner)
            rc = im_group_set_owner(g, r->owner, &err);
        if (rc == IM_OK && r->creator)
            rc = im_group_set_creator(g, r->creator, &err);
    }
    if (rc != IM_OK) {
        im_group_free(g);
        return IM_EIO;
    }
    return ld->repo->ops->insert(ld->repo, g, 0, NULL);
}

int im__app_load_groups(im_app *app, im_error *err)
{
    const im_app_ports *p = im__app_ports(app);
    struct loader ld = { .repo = p->groups, .full = has_group_change(app) };
    return p->store->ops->load_groups(p->store, add_loaded_group, &ld, err);
}

/* ---- the start of every request ---- */

static int require_login(const im_session *s, im_error *err)
{
    if (!im_session_is_authenticated(s))
        return im_error_set(err, IM_ENOTAUTH, "log in first");
    return IM_OK;
}

/* A group request draws on the session's send bucket, one token each as a
 * message does: a client makes the server change or list groups no faster
 * than it may send. */
static int take_group_request(im_app *app, im_session *s, im_error *err)
{
    const im_app_limits *l = im_app_get_limits(app);
    int rc = require_login(s, err);
    if (rc == IM_OK && !im_session_take_send(s, im__app_now_ms(app), l->send_rate, l->send_burst))
        rc = im_error_set(err, IM_ERATE, "too many requests: at most %u messages and group "
                          "requests a second", l->send_rate);
    return rc;
}

/* Logged in, within the rate, and well-formed ids (user NULL: none). */
static int begin_request(im_app *app, im_session *s, const char *group, const char *user,
                         im_error *err)
{
    im_error sub;
    int rc = take_group_request(app, s, err);
    if (rc == IM_OK && im_user_id_check(group, &sub) != IM_OK)
        rc = im_error_set(err, IM_EINVAL, "bad group id: %s", sub.msg);
    if (rc == IM_OK && user && im_user_id_check(user, &sub) != IM_OK)
        rc = im_error_set(err, IM_EINVAL, "bad user id: %s", sub.msg);
    return rc;
}

static void copy_id(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

/* ---- changes ---- */

typedef enum group_op {
    OP_CREATE,
    OP_JOIN,
    OP_LEAVE,
    OP_INVITE,
    OP_KICK,
    OP_TRANSFER,
    OP_DELETE,
} group_op;

/* A change made in memory, waiting to be made durable, with what it takes
 * to undo it exactly. */
typedef struct member_ctx {
    im_app *app;
    im_endpoint ep;
    uint64_t request_id;
    group_op op;
    char group[IM_USER_ID_MAX + 1];
    char actor[IM_USER_ID_MAX + 1];       /* who asked */
    char actor_name[IM_DISPLAY_NAME_MAX + 1];
    char user[IM_USER_ID_MAX + 1];        /* whom it is about: the actor, or the one named */
    bool was_member;                      /* KICK: a member was removed (not an invitation) */
    bool was_owner;                       /* LEAVE: the leaver owned the group */
    bool was_invited;                     /* JOIN: used up; INVITE: was invited already */
    uint64_t since;                       /* LEAVE, KICK: the member's since */
    char prev_owner[IM_USER_ID_MAX + 1];  /* TRANSFER */
    im_group *detached;                   /* DELETE: out of the repository until durable */
} member_ctx;

static member_ctx *ctx_new(im_app *app, const im_session *s, const im_endpoint *ep,
                           uint64_t rid, group_op op, const char *group, const char *user)
{
    member_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->app = app;
    c->ep = *ep;
    c->request_id = rid;
    c->op = op;
    copy_id(c->group, sizeof c->group, group);
    copy_id(c->actor, sizeof c->actor, s->user_id);
    copy_id(c->actor_name, sizeof c->actor_name, s->display_name);
    copy_id(c->user, sizeof c->user, user ? user : s->user_id);
    return c;
}

static void ctx_free(member_ctx *c)
{
    im_group_free(c->detached);
    free(c);
}

/* The domain's rule for each request, run under the repository's lock,
 * noting what the undo would need. */
static int join_locked(void *arg, im_group *g, im_error *err)
{
    member_ctx *c = arg;
    c->was_invited = im_group_is_invited(g, c->user);
    return im_group_join(g, c->user, err);
}

static int leave_locked(void *arg, im_group *g, im_error *err)
{
    member_ctx *c = arg;
    c->was_owner = strcmp(im_group_owner(g), c->user) == 0;
    c->since = im_group_member_since(g, c->user);
    return im_group_leave(g, c->user, err);
}

static int invite_locked(void *arg, im_group *g, im_error *err)
{
    member_ctx *c = arg;
    c->was_invited = im_group_is_invited(g, c->user);
    return im_group_invite(g, c->actor, c->user, err);
}

static int kick_locked(void *arg, im_group *g, im_error *err)
{
    member_ctx *c = arg;
    c->was_member = im_group_is_member(g, c->user);
    c->since = im_group_member_since(g, c->user);
    return im_group_kick(g, c->actor, c->user, err);
}

static int transfer_locked(void *arg, im_group *g, im_error *err)
{
    member_ctx *c = arg;
    copy_id(c->prev_owner, sizeof c->prev_owner, im_group_owner(g));
    return im_group_transfer(g, c->actor, c->user, err);
}

static int delete_locked(void *arg, im_group *g, im_error *err)
{
    member_ctx *c = arg;
    return im_group_check_owner(g, c->actor, err);
}

/* Puts back a member the change took out, where ownership and since are
 * concerned (the join order is not kept: the member comes back last). */
static int restore_member(member_ctx *c, im_group *g, bool owner, im_error *err)
{
    int rc = im_group_add_member(g, c->user, err);
    if (rc == IM_OK)
        rc = im_group_set_member_since(g, c->user, c->since, err);
    if (rc == IM_OK && owner)
        rc = im_group_set_owner(g, c->user, err);
    return rc;
}

static int undo_locked(void *arg, im_group *g, im_error *err)
{
    member_ctx *c = arg;
    int rc = IM_OK;
    switch (c->op) {
    case OP_CREATE: /* the creator leaving empties and deletes the group */
        return im_group_remove_member(g, c->user, err);
    case OP_JOIN:
        rc = im_group_remove_member(g, c->user, err);
        if (rc == IM_OK && c->was_invited)
            rc = im_group_add_invite(g, c->user, err);
        return rc;
    case OP_LEAVE:
        return restore_member(c, g, c->was_owner, err);
    case OP_INVITE:
        return c->was_invited ? IM_OK : im_group_remove_invite(g, c->user, err);
    case OP_KICK:
        return c->was_member ? restore_member(c, g, false, err)
                             : im_group_add_invite(g, c->user, err);
    case OP_TRANSFER: /* unless ownership has moved on since */
        if (strcmp(im_group_owner(g), c->user) == 0)
            rc = im_group_set_owner(g, c->prev_owner, err);
        return rc;
    case OP_DELETE:
        break;
    }
    return rc;
}

/* Undoes in memory a change the store did not make. A group an undone
 * leave emptied is gone from memory until the next start (as the
 * repository deletes empty groups); a deleted group is put back unless
 * its id was taken meanwhile. */
static void undo(member_ctx *c)
{
    im_group_repo *repo = im__app_ports(c->app)->groups;
    if (c->op == OP_DELETE) {
        if (c->detached)
            repo->ops->insert(repo, c->detached, 0, NULL); /* takes it, also on failure */
        c->detached = NULL;
        return;
    }
    repo->ops->update(repo, c->group, c->user, undo_locked, c, NULL);
}

static int since_locked(void *arg, im_group *g, im_error *err)
{
    const member_ctx *c = arg;
    return im_group_set_member_since(g, c->user, c->since, err);
}

/* A notice to users, online ones, about the change c made. */
static void notify(const member_ctx *c, const char *const *users, size_t n, const char *event,
                   const char *text)
{
    const im_app_ports *p = im__app_ports(c->app);
    im_message m = {
        .kind = IM_MESSAGE_NOTICE, .sender = c->actor, .target = c->group,
        .client_msg_id = event, .body = (const uint8_t *)text, .body_len = strlen(text),
        .server_time_ms = im__app_now_ms(c->app),
    };
    im_delivery_deliver_many(p->delivery, users, n, c->actor, &m, c->actor_name);
}

static void notify_one(const member_ctx *c, const char *event, const char *fmt)
{
    char text[160];
    snprintf(text, sizeof text, fmt, c->actor, c->group);
    const char *users[] = { c->user };
    notify(c, users, 1, event, text);
}

/* Everyone who could see the deleted group, but its owner. */
static void notify_deleted(const member_ctx *c)
{
    const im_group *g = c->detached;
    size_t nm = im_group_member_count(g), ni = im_group_invited_count(g);
    const char **users = malloc((nm + ni + 1) * sizeof *users);
    if (!users)
        return; /* a notice is a courtesy: the listing says the same */
    for (size_t i = 0; i < nm; i++)
        users[i] = im_group_member(g, i);
    for (size_t i = 0; i < ni; i++)
        users[nm + i] = im_group_invited(g, i);
    char text[160];
    snprintf(text, sizeof text, "%s deleted the group %s", c->actor, c->group);
    notify(c, users, nm + ni, IM_NOTICE_DELETED, text);
    free(users);
}

/* What a durable change leads to: a member's since, and the notices. */
static void after_stored(member_ctx *c, uint64_t seq)
{
    im_group_repo *repo = im__app_ports(c->app)->groups;
    switch (c->op) {
    case OP_CREATE:
    case OP_JOIN:
        c->since = seq;
        repo->ops->update(repo, c->group, NULL, since_locked, c, NULL);
        break;
    case OP_INVITE:
        if (!c->was_invited)
            notify_one(c, IM_NOTICE_INVITED, "%s invited you to the private group %s");
        break;
    case OP_KICK:
        notify_one(c, IM_NOTICE_REMOVED, c->was_member ? "%s removed you from the group %s"
                                                       : "%s withdrew your invitation to %s");
        break;
    case OP_TRANSFER:
        notify_one(c, IM_NOTICE_OWNER, "%s made you the owner of the group %s");
        break;
    case OP_DELETE:
        notify_deleted(c);
        break;
    case OP_LEAVE:
        break;
    }
}

static void change_stored(void *arg, int rc, uint64_t seq, const im_error *err)
{
    member_ctx *c = arg;
    if (rc != IM_OK)
        undo(c);
    else
        after_stored(c, seq);
    im_replies_send_status(im__app_ports(c->app)->replies, &c->ep, c->request_id, rc,
                           err && rc ? err->msg : NULL);
    ctx_free(c);
}

static void change_stored_v1(void *arg, int rc, const im_error *err)
{
    change_stored(arg, rc, 0, err);
}

/* Hands the change to the store; its completion answers. */
static int submit(member_ctx *c, im_group_change_kind kind, uint32_t max_members,
                  unsigned flags, im_error *err)
{
    im_store *st = im__app_ports(c->app)->store;
    if (has_group_change(c->app)) {
        im_group_change ch = {
            .size = sizeof ch, .kind = kind, .group = c->group,
            .user = kind == IM_GROUP_CHANGE_DELETE ? NULL : c->user,
            .max_members = max_members, .flags = flags,
        };
        return st->ops->group_change(st, &ch, change_stored, c, err);
    }
    switch (kind) {
    case IM_GROUP_CHANGE_CREATE:
        return st->ops->group_create(st, c->group, c->user, max_members, change_stored_v1, c,
                                     err);
    case IM_GROUP_CHANGE_JOIN:
        return st->ops->group_join(st, c->group, c->user, change_stored_v1, c, err);
    case IM_GROUP_CHANGE_LEAVE:
        return st->ops->group_leave(st, c->group, c->user, change_stored_v1, c, err);
    default:
        return im_error_set(err, IM_EUNSUPPORTED, "the storage engine keeps no such change");
    }
}

/* After the change is in memory: to the store, or undone if it refuses at
 * once (then the caller answers, in its place among the connection's). */
static int submit_or_undo(member_ctx *c, im_group_change_kind kind, uint32_t max_members,
                          unsigned flags, im_error *err)
{
    int rc = submit(c, kind, max_members, flags, err);
    if (rc != IM_OK) {
        undo(c);
        ctx_free(c);
    }
    return rc;
}

int im_app_group_create_flags(im_app *app, im_session *s, const im_endpoint *ep,
                              uint64_t request_id, const char *group, uint32_t max_members,
                              unsigned flags, im_error *err)
{
    const im_app_limits *l = im_app_get_limits(app);
    int rc = begin_request(app, s, group, NULL, err);
    if (rc != IM_OK)
        return rc;
    if (max_members == 0)
        max_members = l->max_group_members;
    if (max_members > l->max_group_members)
        return im_error_set(err, IM_EINVAL, "max_members %u is above the limit %u",
                            max_members, l->max_group_members);
    if (flags & ~(unsigned)IM_GROUP_FLAGS_ALL)
        return im_error_set(err, IM_EINVAL, "unknown group flags 0x%x", flags);
    if (!has_group_change(app)) {
        if (flags & IM_GROUP_PRIVATE)
            return im_error_set(err, IM_EUNSUPPORTED, "the storage engine keeps no private "
                                "groups");
        flags = IM_GROUP_SHARE_HISTORY; /* what such a store keeps */
    }
    im_group *g;
    if ((rc = im_group_new_flags(group, s->user_id, max_members, flags, &g, err)) != IM_OK)
        return rc;
    member_ctx *c = ctx_new(app, s, ep, request_id, OP_CREATE, group, NULL);
    if (!c) {
        im_group_free(g);
        return im_error_set(err, IM_ENOMEM, "out of memory");
    }
    im_group_repo *repo = im__app_ports(app)->groups;
    rc = repo->ops->insert(repo, g, l->max_groups_per_user, err);
    if (rc != IM_OK) {
        ctx_free(c);
        return rc == IM_EEXIST ? im_error_set(err, rc, "group %s already exists", group) : rc;
    }
    return submit_or_undo(c, IM_GROUP_CHANGE_CREATE, max_members, flags, err);
}

int im_app_group_create(im_app *app, im_session *s, const im_endpoint *ep,
                        uint64_t request_id, const char *group, uint32_t max_members,
                        im_error *err)
{
    return im_app_group_create_flags(app, s, ep, request_id, group, max_members, 0, err);
}

/* The requests that change one user's place in a group. user NULL: the
 * session's own. */
static int change_membership(im_app *app, im_session *s, const im_endpoint *ep, uint64_t rid,
                             group_op op, const char *group, const char *user, im_error *err)
{
    static const im_group_update_fn locked[] = {
        [OP_JOIN] = join_locked, [OP_LEAVE] = leave_locked, [OP_INVITE] = invite_locked,
        [OP_KICK] = kick_locked, [OP_TRANSFER] = transfer_locked,
    };
    int rc = begin_request(app, s, group, user, err);
    if (rc != IM_OK)
        return rc;
    if (user && !has_group_change(app))
        return im_error_set(err, IM_EUNSUPPORTED, "the storage engine keeps no such change");
    member_ctx *c = ctx_new(app, s, ep, rid, op, group, user);
    if (!c)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    im_group_repo *repo = im__app_ports(app)->groups;
    rc = repo->ops->update(repo, group, c->user, locked[op], c, err);
    if (rc != IM_OK) {
        ctx_free(c);
        return rc == IM_ENOGROUP ? im_error_set(err, rc, "no group %s", group) : rc;
    }
    im_group_change_kind kind = op == OP_JOIN     ? IM_GROUP_CHANGE_JOIN
                                : op == OP_LEAVE  ? IM_GROUP_CHANGE_LEAVE
                                : op == OP_INVITE ? IM_GROUP_CHANGE_INVITE
                                : op == OP_KICK   ? (c->was_member ? IM_GROUP_CHANGE_LEAVE
                                                                   : IM_GROUP_CHANGE_UNINVITE)
                                                  : IM_GROUP_CHANGE_TRANSFER;
    return submit_or_undo(c, kind, 0, 0, err);
}

int im_app_group_join(im_app *app, im_session *s, const im_endpoint *ep,
                      uint64_t request_id, const char *group, im_error *err)
{
    return change_membership(app, s, ep, request_id, OP_JOIN, group, NULL, err);
}

int im_app_group_leave(im_app *app, im_session *s, const im_endpoint *ep,
                       uint64_t request_id, const char *group, im_error *err)
{
    return change_membership(app, s, ep, request_id, OP_LEAVE, group, NULL, err);
}

int im_app_group_invite(im_app *app, im_session *s, const im_endpoint *ep, uint64_t request_id,
                        const char *group, const char *user, im_error *err)
{
    return change_membership(app, s, ep, request_id, OP_INVITE, group, user ? user : "", err);
}

int im_app_group_kick(im_app *app, im_session *s, const im_endpoint *ep, uint64_t request_id,
                      const char *group, const char *user, im_error *err)
{
    return change_membership(app, s, ep, request_id, OP_KICK, group, user ? user : "", err);
}

int im_app_group_transfer(im_app *app, im_session *s, const im_endpoint *ep,
                          uint64_t request_id, const char *group, const char *user,
                          im_error *err)
{
    return change_membership(app, s, ep, request_id, OP_TRANSFER, group, user ? user : "", err);
}

int im_app_group_delete(im_app *app, im_session *s, const im_endpoint *ep, uint64_t request_id,
                        const char *group, im_error *err)
{
    int rc = begin_request(app, s, group, NULL, err);
    if (rc != IM_OK)
        return rc;
    if (!has_group_change(app))
        return im_error_set(err, IM_EUNSUPPORTED, "the storage engine keeps no such change");
    member_ctx *c = ctx_new(app, s, ep, request_id, OP_DELETE, group, NULL);
    if (!c)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    im_group_repo *repo = im__app_ports(app)->groups;
    rc = repo->ops->remove(repo, group, delete_locked, c, &c->detached, err);
    if (rc != IM_OK) {
        ctx_free(c);
        return rc == IM_ENOGROUP ? im_error_set(err, rc, "no group %s", group) : rc;
    }
    return submit_or_undo(c, IM_GROUP_CHANGE_DELETE, 0, 0, err);
}

/* ---- listings ---- */

static void fill_info(im_group_info *info, const im_group *g, const char *user)
{
    *info = (im_group_info){
        .id = im_group_id(g), .owner = im_group_owner(g),
        .members = (uint32_t)im_group_member_count(g),
        .max_members = im_group_max_members(g),
        .is_member = im_group_is_member(g, user),
        .is_private = im_group_is_private(g),
        .is_invited = im_group_is_invited(g, user),
        .shares_history = im_group_shares_history(g),
    };
}

struct group_listing {
    const char *user;
    im_group_info_fn fn;
    void *arg;
};

static bool list_one_group(void *arg, const im_group *g)
{
    struct group_listing *gl = arg;
    im_group_info info;
    fill_info(&info, g, gl->user);
    return gl->fn(gl->arg, &info);
}

int im_app_group_list(im_app *app, im_session *s, im_group_info_fn fn, void *arg,
                      size_t *total, im_error *err)
{
    int rc = take_group_request(app, s, err);
    if (rc != IM_OK)
        return rc;
    struct group_listing gl = { .user = s->user_id, .fn = fn, .arg = arg };
    im_group_repo *repo = im__app_ports(app)->groups;
    *total = repo->ops->visit(repo, s->user_id, NULL, list_one_group, &gl);
    return IM_OK;
}

struct group_page {
    const char *user, *after;
    uint32_t limit, taken;
    im_group_info_fn fn;
    void *arg;
    bool more;
};

/* The repository visits, in id order from after on, the groups the user
 * may see: take limit. */
static bool page_one_group(void *arg, const im_group *g)
{
    struct group_page *gp = arg;
    im_group_info info;
    fill_info(&info, g, gp->user);
    if (gp->taken == gp->limit || !gp->fn(gp->arg, &info)) {
        gp->more = true;
        return false;
    }
    gp->taken++;
    return true;
}

int im_app_group_list_page(im_app *app, im_session *s, const char *after, uint32_t limit,
                           im_group_info_fn fn, void *arg, size_t *total, bool *more,
                           im_error *err)
{
    int rc = take_group_request(app, s, err);
    if (rc != IM_OK)
        return rc;
    if (limit == 0)
        limit = IM_LIST_DEFAULT;
    if (limit > IM_LIST_MAX)
        limit = IM_LIST_MAX;
    struct group_page gp = { .user = s->user_id, .after = after ? after : "",
                             .limit = limit, .fn = fn, .arg = arg };
    im_group_repo *repo = im__app_ports(app)->groups;
    *total = repo->ops->visit(repo, s->user_id, gp.after, page_one_group, &gp);
    *more = gp.more;
    return IM_OK;
}
