/* imcore/transport.h: the transport port, which a transport adapter fills,
 * and the table of the server's functions a transport calls.
 *
 * A transport is what clients connect to: it owns their connections and
 * sessions, turns bytes into requests for the application, and fills the
 * route port (imcore/route.h) through which the application answers and
 * delivers. The built-in one (transport_tcp, libevent, the framing of
 * docs/protocol.md) and any third party's are loaded by name from the
 * config (`transport: NAME` -> plugin_dir/transport_NAME.so) as plugins:
 * see imcore/plugin.h, open_transport.
 *
 * The two directions:
 *   - server -> transport: imcore_transport_ops (router, bound_port, run,
 *     stop, destroy), on the transport the plugin opened;
 *   - transport -> server: imcore_core_api, the use cases of the
 *     application and the session rules of the domain, handed to run. A
 *     transport reaches the application through it alone, never through the
 *     server's symbols.
 *
 * Sessions: a transport keeps one im_session per connection and never
 * reads it but through the core's session_* functions. Either it allocates
 * a block of core->session_size bytes for each (aligned for any type), and
 * its imcore_plugin_about says session_size 0; or, built from the server's
 * own tree as the built-in one is, it embeds the struct by value and its
 * imcore_plugin_about says the sizeof(im_session) it was built with, which
 * the server compares with its own before it loads the plugin: a transport
 * built for sessions of another size is refused, never run. A session is
 * touched only on the thread that owns its connection. */
#ifndef IMCORE_TRANSPORT_H
#define IMCORE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "errors.h"
#include "message.h"
#include "route.h"
#include "storage.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The application, as a transport sees it: an opaque handle it passes
 * back to the core's functions. */
typedef struct im_app im_app;

/* The application's limits, as the transport announces them (LoginAck). */
typedef struct im_app_limits {
    uint32_t max_body_bytes;      /* per message body */
    uint32_t max_group_members;   /* ceiling and default for new groups */
    im_login_policy login_policy;
    uint32_t send_rate;           /* messages per second per session; 0: unlimited */
    uint32_t send_burst;          /* bucket size; 0: send_rate */
    /* Bytes of unacked messages handed over to a session at once when it
     * logs in (a page; the next goes once the client has acked it). Keep it
     * well under what a session may have unsent before it counts as a slow
     * consumer. 0: 1 MiB. */
    uint32_t handover_bytes;
    /* Appended later (the server fills the whole struct; a transport reads
     * only what it knows): the groups one user may have created that still
     * exist; 0: no limit. */
    uint32_t max_groups_per_user;
} im_app_limits;

/* What a Login carries; every string borrowed for the call. */
typedef struct im_login_request {
    const char *user_id;
    const char *display_name;     /* "" or NULL: the account's name, or the id */
    const char *password;         /* with accounts: the password, or */
    const char *token;            /* a token from an earlier login */
    bool create_account;          /* register user_id with password first */
} im_login_request;

/* history's limit: 0 means IM_HISTORY_DEFAULT, and at most IM_HISTORY_MAX
 * messages come back. */
#define IM_HISTORY_DEFAULT 20u
#define IM_HISTORY_MAX 200u

/* A listing's page (group_list_page, online_users_page): limit 0 means
 * IM_LIST_DEFAULT entries, and at most IM_LIST_MAX come back. */
#define IM_LIST_DEFAULT 1000u
#define IM_LIST_MAX 10000u

/* One group as the list shows it; strings borrowed for the callback only. */
typedef struct im_group_info {
    const char *id;
    const char *owner;
    uint32_t members;
    uint32_t max_members;
    bool is_member;              /* the asking session's user is a member */
    /* Appended later (the server fills the whole struct; a transport reads
     * only what it knows). */
    bool is_private;             /* joined by invitation only */
    bool is_invited;             /* the asking session's user is invited */
    bool shares_history;         /* members read what was said before they joined */
} im_group_info;
typedef bool (*im_group_info_fn)(void *arg, const im_group_info *info);

/* The server's functions for a transport, given to run and valid until run
 * returns. Each is the application's function of the same name
 * (im_app_login, ...; application/im_app.h documents them: contract, error
 * codes, threads), or the domain's session rule (domain/session.h).
 * Functions are only ever appended: check size before calling one a newer
 * version added. */
typedef struct imcore_core_api {
    size_t size;                  /* sizeof(imcore_core_api) as the server knows it */

    /* ---- the use cases (application/im_app.h) ---- */
    int (*login)(im_app *app, im_session *s, const im_login_request *req,
                 const im_endpoint *ep, uint64_t request_id, im_error *err);
    void (*logout)(im_app *app, const im_session *s, const char *token);
    void (*session_closed)(im_app *app, im_session *s, const im_endpoint *ep, int reason);
    int (*send_private)(im_app *app, im_session *s, const im_endpoint *ep, uint64_t request_id,
                        const char *to, const uint8_t *body, size_t body_len,
                        const char *client_msg_id, im_error *err);
    int (*send_group)(im_app *app, im_session *s, const im_endpoint *ep, uint64_t request_id,
                      const char *group, const uint8_t *body, size_t body_len,
                      const char *client_msg_id, im_error *err);
    int (*group_create)(im_app *app, im_session *s, const im_endpoint *ep,
                        uint64_t request_id, const char *group, uint32_t max_members,
                        im_error *err);
    int (*group_join)(im_app *app, im_session *s, const im_endpoint *ep,
                      uint64_t request_id, const char *group, im_error *err);
    int (*group_leave)(im_app *app, im_session *s, const im_endpoint *ep,
                       uint64_t request_id, const char *group, im_error *err);
    int (*ack)(im_app *app, im_session *s, const char *conversation, uint64_t seq,
               im_error *err);
    int (*group_list)(im_app *app, im_session *s, im_group_info_fn fn, void *arg,
                      size_t *total, im_error *err);
    int (*online_users)(im_app *app, const im_session *s, im_router_user_fn fn, void *arg,
                        size_t *total, im_error *err);
    int (*history)(im_app *app, const im_session *s, const char *peer, const char *group,
                   uint64_t before_seq, uint32_t limit, im_store_message_fn fn, void *arg,
                   im_error *err);
    /* Borrowed: valid as long as app. */
    const im_app_limits *(*get_limits)(const im_app *app);

    /* ---- sessions (domain/session.h) ---- */
    size_t session_size;          /* bytes of one im_session */
    /* Starts s (session_size bytes of the transport's) in CONNECTED, seen
     * at now_ms (a monotonic clock in milliseconds); id unique in the
     * process. Nothing to free later. */
    void (*session_init)(im_session *s, uint64_t id, uint64_t now_ms);
    bool (*session_is_authenticated)(const im_session *s);
    /* True when nothing was heard for timeout_ms (0: never idle). */
    bool (*session_is_idle)(const im_session *s, uint64_t now_ms, uint64_t timeout_ms);
    /* The client was heard from at now_ms. */
    void (*session_touch)(im_session *s, uint64_t now_ms);
    /* The id given at init, and the user ("" until authenticated; borrowed
     * while s lives). */
    uint64_t (*session_id)(const im_session *s);
    const char *(*session_user_id)(const im_session *s);

    /* Names the calling thread in the server's log lines ("worker-0"), so
     * that what the application logs on a transport's thread says where.
     * Copied. */
    void (*log_thread_name)(const char *name);

    /* ---- listings a page at a time (appended after log_thread_name) ---- */
    /* im_app_group_list_page and im_app_online_users_page: groups, or
     * online users, in id order from the first after `after`, at most
     * limit of them; *more says whether any are left for the next page. */
    int (*group_list_page)(im_app *app, im_session *s, const char *after, uint32_t limit,
                           im_group_info_fn fn, void *arg, size_t *total, bool *more,
                           im_error *err);
    int (*online_users_page)(im_app *app, const im_session *s, const char *after,
                             uint32_t limit, im_router_user_fn fn, void *arg, size_t *total,
                             bool *more, im_error *err);

    /* ---- private groups and owners (appended after online_users_page) ----
     * im_app_group_create_flags (flags: IM_GROUP_PRIVATE 1,
     * IM_GROUP_SHARE_HISTORY 2 of domain/group.h), im_app_group_invite,
     * im_app_group_kick, im_app_group_transfer, im_app_group_delete:
     * answered like group_join, through the route port once stored. */
    int (*group_create_flags)(im_app *app, im_session *s, const im_endpoint *ep,
                              uint64_t request_id, const char *group, uint32_t max_members,
                              unsigned flags, im_error *err);
    int (*group_invite)(im_app *app, im_session *s, const im_endpoint *ep, uint64_t request_id,
                        const char *group, const char *user, im_error *err);
    int (*group_kick)(im_app *app, im_session *s, const im_endpoint *ep, uint64_t request_id,
                      const char *group, const char *user, im_error *err);
    int (*group_transfer)(im_app *app, im_session *s, const im_endpoint *ep, uint64_t request_id,
                          const char *group, const char *user, im_error *err);
    int (*group_delete)(im_app *app, im_session *s, const im_endpoint *ep, uint64_t request_id,
                        const char *group, im_error *err);
    /* ---- appended (check size: IMCORE_CORE_HAS) ---- */
    /* A Logout with everywhere set: every token of the session's user is
     * revoked (im_app_logout_everywhere). */
    void (*logout_everywhere)(im_app *app, const im_session *s);

    /* ---- appended after logout_everywhere ----
     * im_app_history_request: a History answered later, through the route
     * port's send_history, like a send (count it before the call, and
     * answer a refusal in its place). max_bytes: what the transport's
     * frame has room for, for the messages; the store stops reading once
     * their bodies reach it. Absent: history, read on the calling thread. */
    int (*history_request)(im_app *app, const im_session *s, const im_endpoint *ep,
                           uint64_t request_id, const char *peer, const char *group,
                           uint64_t before_seq, uint32_t limit, size_t max_bytes,
                           im_error *err);

    /* Functions are appended here in later versions: check size first. */
} imcore_core_api;

/* True when core (of the size it says) has the function member: a
 * transport built against a newer header than its server asks this before
 * calling a function appended later. */
#define IMCORE_CORE_HAS(core, member)                                   \
    ((core)->size >= offsetof(imcore_core_api, member) + sizeof((core)->member) && \
     (core)->member != NULL)

/* A transport: the adapter's state, with the port first. */
typedef struct imcore_transport imcore_transport;

/* The table a transport fills. It starts with its size and only grows by
 * appending: the server reads only what the transport's table has.
 * router, run and destroy are required (a table that ends before one, or
 * leaves one NULL, is refused at start); the operations after them may be
 * absent (past the table's size, or NULL), with the fallback their comment
 * gives. */
struct imcore_transport_ops {
    size_t size;                  /* sizeof(struct imcore_transport_ops) as the transport knows it */
    const char *name;

    /* The route port this transport fills: sessions on this node. Borrowed:
     * valid until destroy. Available from open on, before run, because the
     * application is built with it. */
    im_router *(*router)(imcore_transport *t);

    /* Serves clients until SIGINT/SIGTERM or stop, on the calling thread
     * (the server's main thread), reaching the application through core
     * with app (both borrowed: valid until run returns). Installs its own
     * handlers for SIGINT and SIGTERM for the duration. Before it returns
     * it stops accepting, delivers what is queued, tells every session the
     * server is shutting down and closes them; it returns 0 then. Called
     * once. Errors: IM_EIO, IM_ENOMEM. */
    int (*run)(imcore_transport *t, const imcore_core_api *core, im_app *app, im_error *err);

    /* Frees t: not while run is running. The server destroys it before it
     * unloads the plugin, whose code it is. */
    void (*destroy)(imcore_transport *t);

    /* ---- optional from here on ---- */

    /* The port it listens on (useful with listen.port: 0), or 0 if it has
     * none. Available from open on: the listening socket is bound there.
     * Absent: 0. */
    unsigned (*bound_port)(const imcore_transport *t);

    /* Asks a running transport to stop; from any thread. Absent: it stops
     * on SIGINT and SIGTERM only. */
    void (*stop)(imcore_transport *t);

    /* Operations appended in later versions come here, each with the
     * server's fallback for a table without it. */
};

struct imcore_transport { const struct imcore_transport_ops *ops; };

static inline void imcore_transport_destroy(imcore_transport *t)
{ if (t) t->ops->destroy(t); }

#ifdef __cplusplus
}
#endif
#endif
