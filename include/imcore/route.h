/* imcore/route.h: the route port, cut by concern into three tables.
 *
 *   - presence (im_presence): who is online and where their session lives:
 *     bind, unbind, is_online, list_online, is_reserved;
 *   - delivery (im_delivery): carries a message to a user, or to the
 *     session at an endpoint, and closes a session: deliver, deliver_many,
 *     deliver_to, kick;
 *   - replies (im_replies): answers to one session of this node, the one
 *     that asked (send_result, send_status, send_login_result,
 *     send_history), and with_session, which runs a function on that
 *     session's thread with the session itself.
 *
 * On one node the transport fills all three (sessions on its worker loops:
 * see imcore/transport.h). A cluster adapter wraps presence and delivery to
 * reach users on other nodes; an endpoint there is an address and nothing
 * more, so neither table takes or returns an im_session. The replies never
 * leave the node: whoever asks is connected here, so they always go to this
 * node's transport (through the plugin host, which answers its service
 * accounts itself), never through a cluster adapter.
 *
 * Every function may be called from any worker thread at once: the adapter
 * does its own locking. No function blocks on I/O. */
#ifndef IMCORE_ROUTE_H
#define IMCORE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "errors.h"
#include "message.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One client connection's state, owned by the transport and defined by the
 * server (domain/session.h). Only the replies table passes pointers to it. */
typedef struct im_session im_session;

/* The address of one session: which node, which worker loop on it, and the
 * connection's id there. Plain data, copied freely. */
typedef struct im_endpoint {
    uint32_t node;
    uint32_t worker;
    uint64_t conn_id;
} im_endpoint;

typedef enum im_login_policy {
    IM_LOGIN_REPLACE = 0, /* a new login replaces the old session, which is closed */
    IM_LOGIN_REJECT = 1,  /* a new login is refused while the user is online */
} im_login_policy;

/* What the sender hears back about an accepted message. */
typedef struct im_send_result {
    uint64_t seq;
    uint64_t server_time_ms;
    uint32_t delivered;           /* sessions the message was handed to */
    bool duplicate;               /* accepted before: same seq, not stored again */
} im_send_result;

/* Called by list_online for each online user; strings are borrowed for the
 * call only. Return false to stop early. */
typedef bool (*im_router_user_fn)(void *arg, const char *user_id, const char *display_name);

/* Each table below starts with its size and only grows by appending: the
 * server reads only what the adapter's table has. Every operation before
 * the "optional" line is required (a table that ends before one, or leaves
 * one NULL, is refused at start); those after it may be absent (past the
 * table's size, or NULL), with the fallback their comment gives. */

/* ---- presence: who is online, and where ---- */

typedef struct im_presence im_presence;

struct im_presence_ops {
    size_t size;                  /* sizeof(struct im_presence_ops) as the adapter knows it */
    const char *name;
    /* Makes user_id's session the one at ep (strings copied). If another
     * session holds the user: with IM_LOGIN_REPLACE it is unbound and its
     * endpoint written to *replaced (the caller closes it, through
     * delivery's kick) and 1 returned; with IM_LOGIN_REJECT nothing changes
     * and IM_EDUPLICATE is returned. Returns 0 when the user was not
     * online. Errors: IM_ENOMEM. */
    int (*bind)(im_presence *p, const char *user_id, const char *display_name,
                const im_endpoint *ep, im_login_policy policy, im_endpoint *replaced,
                im_error *err);
    /* Forgets user_id, but only if it is still bound to ep (a replaced session
     * closing late must not unbind its successor). Returns true if it did:
     * the user has gone offline. */
    bool (*unbind)(im_presence *p, const char *user_id, const im_endpoint *ep);
    bool (*is_online)(im_presence *p, const char *user_id);
    /* Calls fn for online users, in no set order; returns how many are online. */
    size_t (*list_online)(im_presence *p, im_router_user_fn fn, void *arg);

    /* ---- optional from here on ---- */

    /* True if user_id is spoken for by the server itself (a plugin's
     * service account): no client may log in as it. Absent: none are. */
    bool (*is_reserved)(im_presence *p, const char *user_id);

    /* Operations appended in later versions come here, each with the
     * server's fallback for a table without it. */
};

struct im_presence { const struct im_presence_ops *ops; };

/* ---- delivery: to a user, or to the session at an endpoint ---- */

typedef struct im_delivery im_delivery;

struct im_delivery_ops {
    size_t size;                  /* sizeof(struct im_delivery_ops) as the adapter knows it */
    const char *name;
    /* Hands m to the receiver's session: to m->target for a private message.
     * Errors: IM_EOFFLINE, IM_EBUSY (the receiver is not reading), IM_ENOMEM. */
    int (*deliver)(im_delivery *d, const im_message *m, const char *sender_name, im_error *err);
    /* Hands the group message m to each online user of members[0..n) except
     * skip (may be NULL). Offline members are passed over. Returns how many
     * sessions it was handed to, or a negative code. */
    int (*deliver_many)(im_delivery *d, const char *const *members, size_t n,
                        const char *skip, const im_message *m, const char *sender_name);
    /* Hands m (private or group) to the session at ep, whether or not it is
     * bound; sender_name may be NULL. It may be called from the store's
     * thread after the session has gone, and then does nothing. */
    void (*deliver_to)(im_delivery *d, const im_endpoint *ep, const im_message *m,
                       const char *sender_name);
    /* Closes the session at ep after telling it code and why. Harmless if it
     * has already gone. */
    void (*kick)(im_delivery *d, const im_endpoint *ep, int code, const char *why);

    /* Operations appended in later versions come here, each with the
     * server's fallback for a table without it. */
};

struct im_delivery { const struct im_delivery_ops *ops; };

/* ---- replies: to the session of this node that asked ---- */

typedef struct im_replies im_replies;

/* The answers below go to one session of this node, named by endpoint,
 * whether or not it is bound: they may be called from the store's thread
 * after the session has gone, and then do nothing. */
struct im_replies_ops {
    size_t size;                  /* sizeof(struct im_replies_ops) as the adapter knows it */
    const char *name;
    /* Answers a message send: a SendAck when rc is 0 (res set), otherwise an
     * Error with rc and msg. client_msg_id is echoed. */
    void (*send_result)(im_replies *r, const im_endpoint *ep, uint64_t request_id,
                        const char *client_msg_id, int rc, const im_send_result *res,
                        const char *msg);
    /* Answers a plain request: Ok when rc is 0, otherwise an Error. */
    void (*send_status)(im_replies *r, const im_endpoint *ep, uint64_t request_id, int rc,
                        const char *msg);
    /* Answers a Login, on the session's own thread (in with_session, or in
     * the call that handed the Login in): a LoginAck for s carrying token
     * ("" for none) when rc is 0, otherwise an Error with rc and msg. A
     * refusal for IM_EAUTH or IM_ENOTFOUND counts against the peer's limit
     * of failed logins. */
    void (*send_login_result)(im_replies *r, const im_endpoint *ep, uint64_t request_id, int rc,
                              const im_session *s, const char *token, const char *msg);
    /* Runs fn on the thread that owns the session at ep, with that session,
     * or with s NULL if the session has gone (fn then only frees arg). fn
     * runs exactly once and must not block, also when the owner stops with
     * the call still queued (s NULL then). It may run inside the call: on
     * the owner's thread, or with s NULL when the session is known gone or
     * its owner takes no more work; a caller is ready for both. */
    void (*with_session)(im_replies *r, const im_endpoint *ep,
                         void (*fn)(void *arg, im_session *s), void *arg);

    /* ---- optional from here on ---- */

    /* Answers a History (im_app_history_request): when rc is 0, a
     * HistoryResult of msgs[0..n), oldest first, which the adapter cuts to
     * fit its frames by dropping the oldest first (and then says the result
     * was truncated). The store stops reading after the body that reaches
     * the byte budget the transport gave (im_app_history_request), so a
     * page that reached it is always cut here and said truncated.
     * Otherwise an Error with rc and msg. msgs, their strings and msg are
     * borrowed for the call. Like the answers above, it may be called from
     * the store's thread. Absent: the application refuses
     * im_app_history_request with IM_EUNSUPPORTED, and a transport reads
     * with im_app_history instead. */
    void (*send_history)(im_replies *r, const im_endpoint *ep, uint64_t request_id, int rc,
                         const im_message *msgs, size_t n, const char *msg);

    /* Operations appended in later versions come here, each with the
     * server's fallback for a table without it. */
};

struct im_replies { const struct im_replies_ops *ops; };

/* True when the table of port (an im_presence, im_delivery or im_replies
 * pointer), of the size it says, has the operation member, one of the
 * optional ones, and sets it. */
#define IM_ROUTE_HAS(port, member)                                                         \
    ((port)->ops->size >= offsetof(__typeof__(*(port)->ops), member) +                      \
                              sizeof((port)->ops->member) &&                               \
     (port)->ops->member != NULL)

/* ---- calling through the ports: one wrapper per operation ---- */

static inline int im_presence_bind(im_presence *p, const char *user_id, const char *name,
                                   const im_endpoint *ep, im_login_policy policy,
                                   im_endpoint *replaced, im_error *err)
{ return p->ops->bind(p, user_id, name, ep, policy, replaced, err); }
static inline bool im_presence_unbind(im_presence *p, const char *user_id, const im_endpoint *ep)
{ return p->ops->unbind(p, user_id, ep); }
static inline bool im_presence_is_online(im_presence *p, const char *user_id)
{ return p->ops->is_online(p, user_id); }
static inline size_t im_presence_list_online(im_presence *p, im_router_user_fn fn, void *arg)
{ return p->ops->list_online(p, fn, arg); }
/* Absent or NULL: false. */
static inline bool im_presence_is_reserved(im_presence *p, const char *user_id)
{ return IM_ROUTE_HAS(p, is_reserved) && p->ops->is_reserved(p, user_id); }

static inline int im_delivery_deliver(im_delivery *d, const im_message *m,
                                      const char *sender_name, im_error *err)
{ return d->ops->deliver(d, m, sender_name, err); }
static inline int im_delivery_deliver_many(im_delivery *d, const char *const *members, size_t n,
                                           const char *skip, const im_message *m,
                                           const char *sender_name)
{ return d->ops->deliver_many(d, members, n, skip, m, sender_name); }
static inline void im_delivery_deliver_to(im_delivery *d, const im_endpoint *ep,
                                          const im_message *m, const char *sender_name)
{ d->ops->deliver_to(d, ep, m, sender_name); }
static inline void im_delivery_kick(im_delivery *d, const im_endpoint *ep, int code,
                                    const char *why)
{ d->ops->kick(d, ep, code, why); }

static inline void im_replies_send_result(im_replies *r, const im_endpoint *ep, uint64_t rid,
                                          const char *client_msg_id, int rc,
                                          const im_send_result *res, const char *msg)
{ r->ops->send_result(r, ep, rid, client_msg_id, rc, res, msg); }
static inline void im_replies_send_status(im_replies *r, const im_endpoint *ep, uint64_t rid,
                                          int rc, const char *msg)
{ r->ops->send_status(r, ep, rid, rc, msg); }
static inline void im_replies_send_login_result(im_replies *r, const im_endpoint *ep,
                                                uint64_t rid, int rc, const im_session *s,
                                                const char *token, const char *msg)
{ r->ops->send_login_result(r, ep, rid, rc, s, token, msg); }
static inline void im_replies_with_session(im_replies *r, const im_endpoint *ep,
                                           void (*fn)(void *arg, im_session *s), void *arg)
{ r->ops->with_session(r, ep, fn, arg); }
/* Only when IM_ROUTE_HAS(r, send_history). */
static inline void im_replies_send_history(im_replies *r, const im_endpoint *ep, uint64_t rid,
                                           int rc, const im_message *msgs, size_t n,
                                           const char *msg)
{ r->ops->send_history(r, ep, rid, rc, msgs, n, msg); }

#ifdef __cplusplus
}
#endif
#endif
