/* application/im_app.h: the use cases of imcore, driven by the network
 * adapter and carried out through ports.
 *
 * The caller (a worker loop) owns each im_session and calls in on the thread
 * that owns it; im_app itself holds no per-session state, so any number of
 * workers may call at once as long as the ports are thread-safe.
 * No I/O here: results come back as return values and out-structs, effects
 * go out through the ports. */
#ifndef IM_APP_H
#define IM_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "imcore/errors.h"
#include "domain/session.h"
#include "domain/group.h"
#include "domain/message.h"
#include "ports/im_router.h"
#include "ports/im_store.h"
#include "ports/im_group_repo.h"

typedef struct im_app_limits {
    uint32_t max_body_bytes;      /* per message body */
    uint32_t max_group_members;   /* ceiling and default for new groups */
    im_login_policy login_policy;
} im_app_limits;

typedef struct im_app_ports {
    im_router *router;            /* borrowed: outlives the app */
    im_store *store;              /* borrowed */
    im_group_repo *groups;        /* borrowed */
    /* Unix time in milliseconds; replaced in tests. */
    uint64_t (*wall_clock_ms)(void *arg);
    void *clock_arg;
} im_app_ports;

typedef struct im_app im_app;

/* Copies limits and ports (the port objects themselves are borrowed).
 * *out is the caller's: free with im_app_free(). Errors: IM_EINVAL, IM_ENOMEM. */
int im_app_new(const im_app_limits *limits, const im_app_ports *ports, im_app **out,
               im_error *err);
void im_app_free(im_app *app); /* NULL is fine */

const im_app_limits *im_app_get_limits(const im_app *app);

/* Logs session s in as user_id, reachable at ep. On success the session is
 * AUTHENTICATED and bound in the router. Under IM_LOGIN_REPLACE an older
 * session of the same user is kicked with IM_EREPLACED. Errors: IM_ESTATE
 * (already logged in), IM_EINVAL, IM_EDUPLICATE (policy reject), IM_ENOMEM. */
int im_app_login(im_app *app, im_session *s, const char *user_id, const char *display_name,
                 const im_endpoint *ep, im_error *err);

/* The session is going away (logout, idle, error, peer closed): unbinds it
 * and moves it to CLOSED with reason. Safe to call in any state, twice. */
void im_app_session_closed(im_app *app, im_session *s, const im_endpoint *ep, int reason);

/* What the sender hears back about an accepted message. */
typedef struct im_send_result {
    uint64_t seq;
    uint64_t server_time_ms;
    uint32_t delivered;           /* sessions the message was handed to */
} im_send_result;

/* Sends body to user `to`. Errors: IM_ENOTAUTH, IM_EINVAL, IM_ETOOBIG,
 * IM_EOFFLINE, IM_EBUSY, IM_EIO, IM_ENOMEM. body is borrowed for the call. */
int im_app_send_private(im_app *app, const im_session *s, const char *to,
                        const uint8_t *body, size_t body_len, const char *client_msg_id,
                        im_send_result *res, im_error *err);

/* Sends body to every online member of group but the sender. Errors:
 * IM_ENOTAUTH, IM_EINVAL, IM_ETOOBIG, IM_ENOGROUP, IM_ENOTMEMBER, IM_EIO. */
int im_app_send_group(im_app *app, const im_session *s, const char *group,
                      const uint8_t *body, size_t body_len, const char *client_msg_id,
                      im_send_result *res, im_error *err);

/* max_members 0 means the configured default; above the ceiling is IM_EINVAL.
 * Errors: IM_ENOTAUTH, IM_EINVAL, IM_EEXIST, IM_ENOMEM. */
int im_app_group_create(im_app *app, const im_session *s, const char *group,
                        uint32_t max_members, im_error *err);
/* Errors: IM_ENOTAUTH, IM_EINVAL, IM_ENOGROUP, IM_EMEMBER, IM_EFULL. */
int im_app_group_join(im_app *app, const im_session *s, const char *group, im_error *err);
/* Errors: IM_ENOTAUTH, IM_EINVAL, IM_ENOGROUP, IM_ENOTMEMBER. */
int im_app_group_leave(im_app *app, const im_session *s, const char *group, im_error *err);

/* One group as the list shows it; strings borrowed for the callback only. */
typedef struct im_group_info {
    const char *id;
    const char *owner;
    uint32_t members;
    uint32_t max_members;
    bool is_member;              /* the asking session's user is a member */
} im_group_info;
typedef bool (*im_group_info_fn)(void *arg, const im_group_info *info);

/* Calls fn for groups in id order; *total gets the number of groups.
 * Errors: IM_ENOTAUTH. */
int im_app_group_list(im_app *app, const im_session *s, im_group_info_fn fn, void *arg,
                      size_t *total, im_error *err);

/* Calls fn for online users; *total gets how many are online.
 * Errors: IM_ENOTAUTH. */
int im_app_online_users(im_app *app, const im_session *s, im_router_user_fn fn, void *arg,
                        size_t *total, im_error *err);

#endif
