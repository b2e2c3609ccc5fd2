/* application/im_app.c: the use cases. Each one checks the session, lets the
 * domain judge the request, then carries the effect out through a port.
 * No locks here: ports that are shared between workers lock themselves. */
#include "im_app.h"

#include <stdlib.h>
#include <string.h>

#include "domain/user.h"

struct im_app {
    im_app_limits limits;
    im_app_ports ports;
};

int im_app_new(const im_app_limits *limits, const im_app_ports *ports, im_app **out,
               im_error *err)
{
    *out = NULL;
    if (!ports->router || !ports->store || !ports->groups || !ports->wall_clock_ms)
        return im_error_set(err, IM_EINVAL, "every port must be given");
    if (limits->max_body_bytes == 0 || limits->max_group_members == 0 ||
        limits->max_group_members > IM_GROUP_MAX_MEMBERS_LIMIT)
        return im_error_set(err, IM_EINVAL, "limits out of range");
    im_app *app = calloc(1, sizeof *app);
    if (!app)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    app->limits = *limits;
    app->ports = *ports;
    *out = app;
    return IM_OK;
}

void im_app_free(im_app *app)
{
    free(app);
}

const im_app_limits *im_app_get_limits(const im_app *app)
{
    return &app->limits;
}

static int require_login(const im_session *s, im_error *err)
{
    if (!im_session_is_authenticated(s))
        return im_error_set(err, IM_ENOTAUTH, "log in first");
    return IM_OK;
}

static uint64_t now_ms(const im_app *app)
{
    return app->ports.wall_clock_ms(app->ports.clock_arg);
}

int im_app_login(im_app *app, im_session *s, const char *user_id, const char *display_name,
                 const im_endpoint *ep, im_error *err)
{
    if (im_session_is_authenticated(s))
        return im_error_set(err, IM_ESTATE, "already logged in as %s", s->user_id);
    /* Check before binding: a refused name must not touch the router. */
    int rc = im_user_id_check(user_id, err);
    if (rc == IM_OK)
        rc = im_display_name_check(display_name, err);
    if (rc != IM_OK)
        return rc;

    im_router *r = app->ports.router;
    im_endpoint replaced;
    const char *name = display_name && display_name[0] ? display_name : user_id;
    rc = r->ops->bind(r, user_id, name, ep, app->limits.login_policy, &replaced, err);
    if (rc == IM_EDUPLICATE)
        return im_error_set(err, rc, "%s is already online", user_id);
    if (rc < 0)
        return rc;
    if (rc == 1)
        r->ops->kick(r, &replaced, IM_EREPLACED, "logged in from another connection");

    rc = im_session_authenticate(s, user_id, name, err);
    if (rc != IM_OK) /* unreachable after the checks above, but never leave a stray binding */
        r->ops->unbind(r, user_id, ep);
    return rc;
}

void im_app_session_closed(im_app *app, im_session *s, const im_endpoint *ep, int reason)
{
    if (im_session_is_authenticated(s))
        app->ports.router->ops->unbind(app->ports.router, s->user_id, ep);
    if (!im_session_is_closed(s))
        im_session_close(s, reason);
}

/* Builds, validates and numbers one message; the caller delivers it. */
static int accept_message(im_app *app, const im_session *s, im_message *m, im_error *err)
{
    int rc = require_login(s, err);
    if (rc != IM_OK)
        return rc;
    m->sender = s->user_id;
    m->server_time_ms = now_ms(app);
    rc = im_message_validate(m, app->limits.max_body_bytes, err);
    if (rc != IM_OK)
        return rc;
    return im_store_append(app->ports.store, m, err);
}

int im_app_send_private(im_app *app, const im_session *s, const char *to,
                        const uint8_t *body, size_t body_len, const char *client_msg_id,
                        im_send_result *res, im_error *err)
{
    im_message m = {
        .kind = IM_MESSAGE_PRIVATE, .target = to ? to : "",
        .client_msg_id = client_msg_id ? client_msg_id : "",
        .body = body, .body_len = body_len,
    };
    im_router *r = app->ports.router;
    /* Check presence first so that a message to an offline user does not
     * take a seq: without offline storage it would never be delivered. */
    int rc = require_login(s, err);
    if (rc == IM_OK && im_user_id_is_valid(m.target) && !r->ops->is_online(r, m.target))
        return im_error_set(err, IM_EOFFLINE, "%s is not online", m.target);
    rc = accept_message(app, s, &m, err);
    if (rc != IM_OK)
        return rc;
    rc = r->ops->deliver(r, &m, s->display_name, err);
    if (rc == IM_EOFFLINE)
        return im_error_set(err, rc, "%s is not online", m.target);
    if (rc < 0)
        return rc;
    *res = (im_send_result){ .seq = m.seq, .server_time_ms = m.server_time_ms, .delivered = 1 };
    return IM_OK;
}

struct group_send {
    im_app *app;
    const im_session *sender;
    im_message *msg;
    int delivered;
};

/* Runs with the group read-locked, so membership cannot change between the
 * check and the fan-out, and seq order matches delivery order. */
static int group_send_locked(void *arg, const im_group *g, im_error *err)
{
    struct group_send *gs = arg;
    if (!im_group_is_member(g, gs->sender->user_id))
        return im_error_set(err, IM_ENOTMEMBER, "you are not a member of %s", im_group_id(g));
    int rc = accept_message(gs->app, gs->sender, gs->msg, err);
    if (rc != IM_OK)
        return rc;
    size_t n = im_group_member_count(g);
    const char *stack_ids[64];
    const char **ids = n <= 64 ? stack_ids : malloc(n * sizeof *ids);
    if (!ids)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        ids[i] = im_group_member(g, i);
    im_router *r = gs->app->ports.router;
    rc = r->ops->deliver_many(r, ids, n, gs->sender->user_id, gs->msg,
                              gs->sender->display_name);
    if (ids != stack_ids)
        free(ids);
    if (rc < 0)
        return im_error_set(err, rc, "fan-out failed");
    gs->delivered = rc;
    return IM_OK;
}

int im_app_send_group(im_app *app, const im_session *s, const char *group,
                      const uint8_t *body, size_t body_len, const char *client_msg_id,
                      im_send_result *res, im_error *err)
{
    int rc = require_login(s, err);
    if (rc != IM_OK)
        return rc;
    if ((rc = im_user_id_check(group, err)) != IM_OK)
        return rc;
    im_message m = {
        .kind = IM_MESSAGE_GROUP, .target = group,
        .client_msg_id = client_msg_id ? client_msg_id : "",
        .body = body, .body_len = body_len,
    };
    struct group_send gs = { .app = app, .sender = s, .msg = &m };
    im_group_repo *repo = app->ports.groups;
    rc = repo->ops->read(repo, group, group_send_locked, &gs, err);
    if (rc == IM_ENOGROUP)
        return im_error_set(err, rc, "no group %s", group);
    if (rc != IM_OK)
        return rc;
    *res = (im_send_result){ .seq = m.seq, .server_time_ms = m.server_time_ms,
                             .delivered = (uint32_t)gs.delivered };
    return IM_OK;
}

int im_app_group_create(im_app *app, const im_session *s, const char *group,
                        uint32_t max_members, im_error *err)
{
    int rc = require_login(s, err);
    if (rc != IM_OK)
        return rc;
    if (max_members == 0)
        max_members = app->limits.max_group_members;
    if (max_members > app->limits.max_group_members)
        return im_error_set(err, IM_EINVAL, "max_members %u is above the limit %u",
                            max_members, app->limits.max_group_members);
    im_group *g;
    if ((rc = im_group_new(group, s->user_id, max_members, &g, err)) != IM_OK)
        return rc;
    im_group_repo *repo = app->ports.groups;
    rc = repo->ops->insert(repo, g, err);
    if (rc == IM_EEXIST)
        return im_error_set(err, rc, "group %s already exists", group);
    return rc;
}

struct member_change { const char *user; };

static int join_locked(void *arg, im_group *g, im_error *err)
{
    return im_group_add_member(g, ((struct member_change *)arg)->user, err);
}

static int leave_locked(void *arg, im_group *g, im_error *err)
{
    return im_group_remove_member(g, ((struct member_change *)arg)->user, err);
}

static int change_membership(im_app *app, const im_session *s, const char *group,
                             im_group_update_fn fn, im_error *err)
{
    int rc = require_login(s, err);
    if (rc != IM_OK)
        return rc;
    if ((rc = im_user_id_check(group, err)) != IM_OK)
        return rc;
    struct member_change mc = { .user = s->user_id };
    im_group_repo *repo = app->ports.groups;
    rc = repo->ops->update(repo, group, fn, &mc, err);
    if (rc == IM_ENOGROUP)
        return im_error_set(err, rc, "no group %s", group);
    return rc;
}

int im_app_group_join(im_app *app, const im_session *s, const char *group, im_error *err)
{
    return change_membership(app, s, group, join_locked, err);
}

int im_app_group_leave(im_app *app, const im_session *s, const char *group, im_error *err)
{
    return change_membership(app, s, group, leave_locked, err);
}

struct group_listing {
    const char *user;
    im_group_info_fn fn;
    void *arg;
};

static bool list_one_group(void *arg, const im_group *g)
{
    struct group_listing *gl = arg;
    im_group_info info = {
        .id = im_group_id(g), .owner = im_group_owner(g),
        .members = (uint32_t)im_group_member_count(g),
        .max_members = im_group_max_members(g),
        .is_member = im_group_is_member(g, gl->user),
    };
    return gl->fn(gl->arg, &info);
}

int im_app_group_list(im_app *app, const im_session *s, im_group_info_fn fn, void *arg,
                      size_t *total, im_error *err)
{
    int rc = require_login(s, err);
    if (rc != IM_OK)
        return rc;
    struct group_listing gl = { .user = s->user_id, .fn = fn, .arg = arg };
    *total = app->ports.groups->ops->each(app->ports.groups, list_one_group, &gl);
    return IM_OK;
}

int im_app_online_users(im_app *app, const im_session *s, im_router_user_fn fn, void *arg,
                        size_t *total, im_error *err)
{
    int rc = require_login(s, err);
    if (rc != IM_OK)
        return rc;
    *total = app->ports.router->ops->list_online(app->ports.router, fn, arg);
    return IM_OK;
}
