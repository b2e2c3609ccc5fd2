/* application/im_app.h: the use cases of imcore, driven by the network
 * adapter and carried out through ports.
 *
 * The caller (a worker loop) owns each im_session and calls in on the thread
 * that owns it; im_app holds no per-session state, so any number of workers
 * may call at once as long as the ports are thread-safe.
 *
 * Requests that touch the store are answered asynchronously: the use case
 * returns 0 ("accepted, the answer follows") and the answer goes to the
 * session's endpoint through the route port's replies once the store has completed, which
 * for a durable store means once the data is on disk. A non-zero return is a
 * refusal decided at once: the caller answers it itself.
 * No I/O here: effects go out through the ports. */
#ifndef IM_APP_H
#define IM_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "imcore/errors.h"
#include "domain/session.h"
#include "domain/group.h"
#include "domain/message.h"
#include "ports/im_accounts.h"
#include "ports/im_filter.h"
#include "ports/im_router.h"
#include "ports/im_store.h"
#include "ports/im_group_repo.h"
/* im_app (opaque there), im_app_limits, im_login_request, im_group_info:
 * the types a transport shares with the application. */
#include "imcore/transport.h"

/* A login hands over the user's unacked messages a page at a time, each at
 * most this many messages and about handover_bytes (im_app_limits) of
 * frames; the next page goes once the client has acked this one. */
#define IM_HANDOVER_MESSAGES 10000u
#define IM_HANDOVER_BYTES (1024u * 1024u) /* when im_app_limits.handover_bytes is 0 */

typedef struct im_app_ports {
    /* The route port, in its three tables (imcore/route.h), each borrowed:
     * it outlives the app. presence and delivery may be a cluster
     * adapter's, reaching other nodes; replies is always this node's
     * transport's (through the plugin host), since whoever asks is
     * connected here. */
    im_presence *presence;
    im_delivery *delivery;
    im_replies *replies;
    im_store *store;              /* borrowed; a table that ends before group_change
                                   * (store->ops->size) keeps groups public with
                                   * their history shared */
    im_group_repo *groups;        /* borrowed */
    im_accounts *accounts;        /* borrowed; NULL: "open" mode, a login names any id */
    im_filter *filter;            /* borrowed; NULL: messages are not filtered */
    /* Unix time in milliseconds; replaced in tests. */
    uint64_t (*wall_clock_ms)(void *arg);
    void *clock_arg;
} im_app_ports;

/* Copies limits and ports (the port objects themselves are borrowed), and
 * loads the store's groups into the group repository. *out is the caller's:
 * free with im_app_free(). Errors: IM_EINVAL, IM_ENOMEM, IM_EIO. */
int im_app_new(const im_app_limits *limits, const im_app_ports *ports, im_app **out,
               im_error *err);
void im_app_free(im_app *app); /* NULL is fine */

const im_app_limits *im_app_get_limits(const im_app *app);

/* Logs session s in, reachable at ep, and answers with request_id through
 * the route port's send_login_result: at once in "open" mode, after the
 * accounts port has checked the password or token otherwise. On success
 * the session is AUTHENTICATED, gets its LoginAck, then every message it
 * has not acked, then goes live (is bound in presence, replacing an older
 * session of the same user under IM_LOGIN_REPLACE; under IM_LOGIN_REJECT
 * a session that finds the user online is refused with IM_EDUPLICATE).
 * A token login may leave user_id empty; one that names a user whose token
 * it is not is answered IM_EAUTH, as a wrong password is.
 * Errors decided at once (answered by the caller): IM_ESTATE (already
 * logged in), IM_EINVAL (bad id, name or password), IM_EDUPLICATE,
 * IM_ENOMEM, IM_ESHUTDOWN. */
int im_app_login(im_app *app, im_session *s, const im_login_request *req,
                 const im_endpoint *ep, uint64_t request_id, im_error *err);

/* A Logout: revokes the session's token (if it has one; token borrowed). The
 * caller then closes the session, which ends in im_app_session_closed. */
void im_app_logout(im_app *app, const im_session *s, const char *token);

/* A Logout with everywhere set: revokes every token of the session's user
 * (none to revoke in "open" mode, or before login). The caller then closes
 * the session, as after im_app_logout. */
void im_app_logout_everywhere(im_app *app, const im_session *s);

/* The session is going away (logout, idle, error, peer closed): unbinds it
 * (ordered after its go-live) and moves it to CLOSED with reason. Safe to
 * call in any state, twice. */
void im_app_session_closed(im_app *app, im_session *s, const im_endpoint *ep, int reason);

/* Sends body to user `to`; the answer (SendAck or Error) goes to ep with
 * request_id. client_msg_id (1..IM_CLIENT_MSG_ID_MAX bytes, borrowed)
 * names the message for good: a durable store answers a resend of the
 * same message as a duplicate (the first SendAck again), and refuses the
 * id with another message (IM_EIDREUSED, answered). With a durable store
 * the receiver need not be online, but must be a user: the store refuses
 * (and the answer is) IM_EUNKNOWNUSER when logins need accounts and `to`
 * has none. Errors decided at once: IM_ENOTAUTH, IM_EINVAL (an empty
 * client_msg_id among others), IM_ETOOBIG, IM_ERATE (over send_rate),
 * IM_EOFFLINE (a store that is not durable: the receiver is not online),
 * IM_ENOMEM, IM_ESHUTDOWN. With such a store and accounts, an offline
 * receiver is looked up through the store's account operation instead,
 * and the answer is IM_EUNKNOWNUSER or IM_EOFFLINE. body is borrowed for
 * the call. */
int im_app_send_private(im_app *app, im_session *s, const im_endpoint *ep,
                        uint64_t request_id, const char *to, const uint8_t *body,
                        size_t body_len, const char *client_msg_id, im_error *err);

/* Sends body to every member of group but the sender (online ones at once,
 * others at their next login with a durable store). client_msg_id as for
 * im_app_send_private (IM_EIDREUSED answered). Errors decided at once:
 * IM_ENOTAUTH, IM_EINVAL, IM_ETOOBIG, IM_ENOGROUP, IM_ENOTMEMBER, IM_ENOMEM. */
int im_app_send_group(im_app *app, im_session *s, const im_endpoint *ep,
                      uint64_t request_id, const char *group, const uint8_t *body,
                      size_t body_len, const char *client_msg_id, im_error *err);

/* Group membership; the answer (Ok or Error) goes to ep once durable.
 * max_members 0 means the configured default; above the ceiling is IM_EINVAL.
 * Every group request (these, the listings and the owner's requests below)
 * takes one token of the session's send bucket (send_rate, send_burst),
 * as a message does. Errors decided at once: IM_ENOTAUTH, IM_ERATE,
 * IM_EINVAL, IM_EEXIST, IM_EQUOTA (the user has created
 * max_groups_per_user groups that still exist), IM_ENOGROUP, IM_EMEMBER,
 * IM_EFULL, IM_ENOTMEMBER, IM_ENOMEM. */
int im_app_group_create(im_app *app, im_session *s, const im_endpoint *ep,
                        uint64_t request_id, const char *group, uint32_t max_members,
                        im_error *err);
int im_app_group_join(im_app *app, im_session *s, const im_endpoint *ep,
                      uint64_t request_id, const char *group, im_error *err);
int im_app_group_leave(im_app *app, im_session *s, const im_endpoint *ep,
                       uint64_t request_id, const char *group, im_error *err);

/* Private groups and owners (domain/group.h has the rules). create_flags:
 * IM_GROUP_PRIVATE (joined by invitation only, hidden from outsiders),
 * IM_GROUP_SHARE_HISTORY (members read what was said before they joined);
 * im_app_group_create makes a public group with neither. A join of a
 * private group needs an invitation (else IM_ENOGROUP, as for no group);
 * to a user who may not see a private group, every request on it is
 * IM_ENOGROUP. Errors decided at once, besides those above:
 * IM_EUNSUPPORTED (with a store whose table has no group_change), IM_EPERM (only the owner invites, kicks,
 * transfers and deletes). */
int im_app_group_create_flags(im_app *app, im_session *s, const im_endpoint *ep,
                              uint64_t request_id, const char *group, uint32_t max_members,
                              unsigned flags, im_error *err);
/* The owner invites user (copied) to the private group: IM_EINVAL for a
 * public one. user is told (a notice) once the invitation is stored. */
int im_app_group_invite(im_app *app, im_session *s, const im_endpoint *ep, uint64_t request_id,
                        const char *group, const char *user, im_error *err);
/* The owner removes the member user, or withdraws user's invitation; user
 * is told. Errors besides: IM_EINVAL (user is the owner: leave instead). */
int im_app_group_kick(im_app *app, im_session *s, const im_endpoint *ep, uint64_t request_id,
                      const char *group, const char *user, im_error *err);
/* The owner hands the group to the member user, who is told. */
int im_app_group_transfer(im_app *app, im_session *s, const im_endpoint *ep,
                          uint64_t request_id, const char *group, const char *user,
                          im_error *err);
/* The owner deletes the group with its history; members and invited users
 * are told. */
int im_app_group_delete(im_app *app, im_session *s, const im_endpoint *ep, uint64_t request_id,
                        const char *group, im_error *err);

/* The receiver has everything of conversation up to seq. Errors: IM_ENOTAUTH,
 * IM_EINVAL (not a conversation of this user), IM_ERATE (more than ten
 * times send_rate acks a second, bursts of ten times send_burst: the ack
 * is dropped, as a lost one would be). */
int im_app_ack(im_app *app, im_session *s, const char *conversation, uint64_t seq,
               im_error *err);

/* Calls fn for the groups s's user may see, in id order; *total gets how
 * many there are. Errors: IM_ENOTAUTH, IM_ERATE. */
int im_app_group_list(im_app *app, im_session *s, im_group_info_fn fn, void *arg,
                      size_t *total, im_error *err);

/* Calls fn for online users; *total gets how many are online.
 * Errors: IM_ENOTAUTH. */
int im_app_online_users(im_app *app, const im_session *s, im_router_user_fn fn, void *arg,
                        size_t *total, im_error *err);

/* One page of a listing, in id order (bytewise, as strcmp), for a client
 * that asks for the rest with after = the last id it received: the groups
 * s's user may see, public ones and the private ones they are in or invited
 * to (with whether they are a member, invited, ...), or online users (with
 * their display names). Calls fn for those whose id sorts after `after`
 * (NULL or "": from the first), at most limit of them (0: IM_LIST_DEFAULT;
 * above IM_LIST_MAX: IM_LIST_MAX). fn returns false to end the page early:
 * the entry it was handed is then left for the next page. *more is set
 * when entries are left after the last one fn took (fn ended the page, or
 * the limit was reached before the end); *total counts all groups the user
 * may see, or all users online. Entries that come or go meanwhile may or may not be
 * listed; the others are listed once across the pages. Reads a snapshot
 * under the ports' locks; strings passed to fn are borrowed for the call.
 * A page of groups costs O(log n) plus the page. Errors: IM_ENOTAUTH,
 * IM_ERATE (groups), IM_ENOMEM (online users: limit entries are held). */
int im_app_group_list_page(im_app *app, im_session *s, const char *after, uint32_t limit,
                           im_group_info_fn fn, void *arg, size_t *total, bool *more,
                           im_error *err);
int im_app_online_users_page(im_app *app, const im_session *s, const char *after,
                             uint32_t limit, im_router_user_fn fn, void *arg, size_t *total,
                             bool *more, im_error *err);

/* The history of the private conversation with peer, or of group (exactly one
 * of them non-empty): up to limit (0: IM_HISTORY_DEFAULT, at most
 * IM_HISTORY_MAX) messages before before_seq (0: the newest), oldest first,
 * read synchronously. Of a group, only what was said since s's user joined
 * (the seq the store gave the join), unless the group shares its history:
 * of the limit messages before before_seq, those older are left out.
 * Errors: IM_ENOTAUTH, IM_EINVAL, IM_ENOGROUP (also a private group the
 * user is not in), IM_ENOTMEMBER, IM_EIO. */
int im_app_history(im_app *app, const im_session *s, const char *peer, const char *group,
                   uint64_t before_seq, uint32_t limit, im_store_message_fn fn, void *arg,
                   im_error *err);

/* The same read as a request answered later, off the caller's thread: the
 * page goes to the route port's send_history for ep and request_id (from
 * the store's thread, once the store has read it, in order after every
 * request s made before it), and the transport cuts it to fit its frame.
 * max_bytes is the frame's budget for the messages: the store stops
 * reading once their bodies reach it (0: no budget). A store without
 * history_read is read at once, on the caller's thread, and answered
 * before this returns. The answer comes exactly once if this returns 0,
 * never if it returns an error. Errors: as im_app_history, and IM_ENOMEM,
 * IM_EBUSY, IM_ESHUTDOWN from the store; IM_EUNSUPPORTED when the route
 * port's replies have no send_history. */
int im_app_history_request(im_app *app, const im_session *s, const im_endpoint *ep,
                           uint64_t request_id, const char *peer, const char *group,
                           uint64_t before_seq, uint32_t limit, size_t max_bytes,
                           im_error *err);

#endif
