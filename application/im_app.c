/* application/im_app.c: the use cases. Each one checks the session, lets the
 * domain judge the request, then carries the effect out through a port.
 *
 * Anything stored is finished in a completion that the store calls once the
 * data is durable, in commit order, on its own thread: that is where
 * messages are delivered and senders answered, so receivers see each
 * conversation in seq order and an ack never runs ahead of the disk.
 * No locks here: ports that are shared between workers lock themselves, and
 * what a login hands over is kept on the store's thread (see handover).
 * The group use cases (changes, listings, loading) are im_app_groups.c's. */
#include "im_app.h"
#include "im_app_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/handover.h"
#include "domain/user.h"

struct im_app {
    im_app_limits limits;
    im_app_ports ports;
};

int im_app_new(const im_app_limits *limits, const im_app_ports *ports, im_app **out,
               im_error *err)
{
    *out = NULL;
    if (!ports->presence || !ports->delivery || !ports->replies || !ports->store ||
        !ports->groups || !ports->wall_clock_ms)
        return im_error_set(err, IM_EINVAL, "every port must be given");
    if (limits->max_body_bytes == 0 || limits->max_group_members == 0 ||
        limits->max_group_members > IM_GROUP_MAX_MEMBERS_LIMIT)
        return im_error_set(err, IM_EINVAL, "limits out of range");
    im_app *app = calloc(1, sizeof *app);
    if (!app)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    app->limits = *limits;
    app->ports = *ports;
    int rc = im__app_load_groups(app, err);
    if (rc != IM_OK) {
        if (err && err->code == IM_OK)
            im_error_set(err, rc, "the store holds a group the server refuses");
        free(app);
        return rc;
    }
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

const im_app_ports *im__app_ports(const im_app *app)
{
    return &app->ports;
}

uint64_t im__app_now_ms(const im_app *app)
{
    return app->ports.wall_clock_ms(app->ports.clock_arg);
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

/* Copies src into dst[size], cut if longer: snprintf("%s") without the
 * format parsing, which showed in the per-message profile. */
static void copy_str(char *dst, size_t size, const char *src)
{
    size_t n = src ? strnlen(src, size - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

static bool durable(const im_app *app)
{
    return app->ports.store->ops->durable;
}

/* ---- sessions ---- */

/* A session on its way from LoginAck to live, or from live to gone. */
typedef struct session_ref {
    im_app *app;
    im_endpoint ep;
    char user[IM_USER_ID_MAX + 1];
    char name[IM_DISPLAY_NAME_MAX + 1];
} session_ref;

/* ---- the hand-over: a login's unacked messages, page by page ---- */

/* A login handing over what its user has not acked, one page at a time
 * (domain/handover.h), then going live. Its state is touched only on the
 * store's thread, whose completions run one at a time and in request order;
 * the session points at it (session thread) until it goes live or closes.
 * refs counts the session's pointer, the flow (until the phase is OVER) and
 * each request in flight that names it. */
typedef enum handover_phase {
    HANDOVER_READING,             /* a page read is under way */
    HANDOVER_WAITING,             /* a full page went out: the next waits for its acks */
    HANDOVER_OVER,                /* live, failed or closed: the flow's reference is gone */
} handover_phase;

typedef struct handover {
    im_app *app;
    im_endpoint ep;
    char user[IM_USER_ID_MAX + 1];
    char name[IM_DISPLAY_NAME_MAX + 1];
    atomic_uint refs;
    im_handover_page page;
    handover_phase phase;
    bool closed;                  /* the session has gone */
    bool failed;                  /* the page could not be recorded (out of memory) */
} handover;

/* Frame bytes a message costs beyond its body, for the page's byte budget. */
#define HANDOVER_FRAME_OVERHEAD 160u

static void handover_release(handover *h)
{
    if (atomic_fetch_sub(&h->refs, 1) == 1) {
        im_handover_clear(&h->page);
        free(h);
    }
}

static void handover_flow_end(handover *h)
{
    if (h->phase != HANDOVER_OVER) {
        h->phase = HANDOVER_OVER;
        handover_release(h);
    }
}

static size_t handover_bytes(const im_app *app)
{
    return app->limits.handover_bytes ? app->limits.handover_bytes : IM_HANDOVER_BYTES;
}

/* A page stops at a number of messages or of bytes, whichever comes first;
 * a page that stopped short of both was the last. */
static bool handover_page_full(const handover *h)
{
    return h->page.messages >= IM_HANDOVER_MESSAGES || h->page.bytes >= handover_bytes(h->app);
}

static bool deliver_pending(void *arg, const im_message *m)
{
    handover *h = arg;
    if (h->closed || h->failed)
        return false;
    char conv[IM_CONVERSATION_ID_MAX + 1];
    if (im_message_conversation_id(m, conv, sizeof conv) < 0 ||
        im_handover_sent(&h->page, conv, m->seq, m->body_len + HANDOVER_FRAME_OVERHEAD,
                         NULL) != IM_OK) {
        h->failed = true;
        return false;
    }
    im_delivery_deliver_to(h->app->ports.delivery, &h->ep, m, NULL);
    return !handover_page_full(h);
}

/* Clears the session's pointer once the hand-over is over (session thread). */
static void handover_detach(void *arg, im_session *s)
{
    handover *h = arg;
    if (s && s->handover == h) {
        s->handover = NULL;
        handover_release(h); /* the session's */
    }
    handover_release(h);     /* this request's */
}

/* Binding here, in the store's order, means every message stored before
 * went out in the pages and every message stored after is delivered live,
 * none twice. */
static void handover_go_live(handover *h)
{
    const im_app_ports *p = &h->app->ports;
    im_endpoint replaced;
    im_error bind_err = { 0 };
    int rc = im_presence_bind(p->presence, h->user, h->name, &h->ep,
                              h->app->limits.login_policy, &replaced, &bind_err);
    /* The replaced session may be on another node: delivery reaches it by
     * its endpoint alone. */
    if (rc == 1)
        im_delivery_kick(p->delivery, &replaced, IM_EREPLACED,
                         "logged in from another connection");
    else if (rc < 0)
        im_delivery_kick(p->delivery, &h->ep, rc, bind_err.msg[0] ? bind_err.msg
                                                  : rc == IM_EDUPLICATE ? "already online"
                                                                        : "cannot go online");
    atomic_fetch_add(&h->refs, 1);
    im_replies_with_session(p->replies, &h->ep, handover_detach, h);
}

static void handover_page_read(void *arg, int rc, const im_error *err);

/* Asks the store for a page: what the user has not acked, which the acks
 * of the page before (if any) have moved past everything sent. A store
 * with pending_read stops reading at the page's byte budget: it counts
 * bodies only, the page counts each message's frame too, so the page is
 * full no later than the read ends, and a read that stopped at the budget
 * is never taken for the last page. */
static int handover_request_page(handover *h, im_error *err)
{
    im_store *st = h->app->ports.store;
    im_handover_reset(&h->page);
    h->phase = HANDOVER_READING;
    if (IM_STORE_HAS(st, pending_read))
        return st->ops->pending_read(st, h->user, IM_HANDOVER_MESSAGES, handover_bytes(h->app),
                                     deliver_pending, handover_page_read, h, err);
    return st->ops->pending(st, h->user, IM_HANDOVER_MESSAGES, deliver_pending,
                            handover_page_read, h, err);
}

/* The next page, from a completion: a failure ends the session. */
static void handover_next_page(handover *h)
{
    im_error err = { 0 };
    int rc = handover_request_page(h, &err);
    if (rc != IM_OK) {
        im_delivery_kick(h->app->ports.delivery, &h->ep, rc,
                         err.msg[0] ? err.msg : "cannot read messages");
        handover_flow_end(h);
    }
}

static void handover_page_read(void *arg, int rc, const im_error *err)
{
    handover *h = arg;
    im_delivery *d = h->app->ports.delivery;
    if (h->closed) {
        handover_flow_end(h);
    } else if (rc != IM_OK || h->failed) {
        im_delivery_kick(d, &h->ep, rc != IM_OK ? rc : IM_ENOMEM,
                         rc != IM_OK && err && err->msg[0] ? err->msg : "cannot read messages");
        handover_flow_end(h);
    } else if (!handover_page_full(h)) {
        handover_go_live(h);    /* the last page */
        handover_flow_end(h);
    } else if (im_handover_done(&h->page)) {
        handover_next_page(h);  /* acked while it was still being read */
    } else {
        h->phase = HANDOVER_WAITING;
    }
}

/* An ack of the session, once the store has applied it. */
typedef struct handover_ack {
    handover *h;
    uint64_t seq;
    char conversation[IM_CONVERSATION_ID_MAX + 1];
} handover_ack;

static void handover_acked(void *arg, int rc, const im_error *err)
{
    (void)rc, (void)err;
    handover_ack *a = arg;
    handover *h = a->h;
    /* Recorded during a read too: the page's read checks it at its end. */
    if (h->phase != HANDOVER_OVER && !h->closed &&
        im_handover_acked(&h->page, a->conversation, a->seq) && h->phase == HANDOVER_WAITING)
        handover_next_page(h);
    handover_release(h);
    free(a);
}

static void handover_note_ack(im_app *app, const im_session *s, const char *conversation,
                              uint64_t seq)
{
    handover *h = s->handover;
    handover_ack *a = malloc(sizeof *a);
    if (!a)
        return; /* the page then waits for a later ack */
    a->h = h;
    a->seq = seq;
    copy_str(a->conversation, sizeof a->conversation, conversation);
    atomic_fetch_add(&h->refs, 1);
    im_store *st = app->ports.store;
    if (st->ops->barrier(st, handover_acked, a, NULL) != IM_OK) {
        handover_release(h);
        free(a);
    }
}

static void handover_session_gone(void *arg, int rc, const im_error *err)
{
    (void)rc, (void)err;
    handover *h = arg;
    h->closed = true;
    if (h->phase == HANDOVER_WAITING)
        handover_flow_end(h); /* for acks that will not come; a read ends by itself */
    handover_release(h);      /* the session's */
}

/* Hands over what the session missed, then makes it live. */
static int start_handover(im_app *app, im_session *s, const im_endpoint *ep, im_error *err)
{
    handover *h = calloc(1, sizeof *h);
    if (!h)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    h->app = app;
    h->ep = *ep;
    copy_str(h->user, sizeof h->user, s->user_id);
    copy_str(h->name, sizeof h->name, s->display_name);
    atomic_init(&h->refs, 2); /* the session's and the flow's */
    s->handover = h;
    int rc = handover_request_page(h, err);
    if (rc != IM_OK) {
        s->handover = NULL;
        im_handover_clear(&h->page);
        free(h);
    }
    return rc;
}

/* The last step of every login, on the session's own thread. */
static int finish_login(im_app *app, im_session *s, const im_endpoint *ep, uint64_t rid,
                        const char *user, const char *name, const char *token, im_error *err)
{
    const im_app_ports *p = &app->ports;
    if (im_session_is_authenticated(s))
        return im_error_set(err, IM_ESTATE, "already logged in as %s", s->user_id);
    if (im_presence_is_reserved(p->presence, user))
        return im_error_set(err, IM_EREFUSED, "%s is a service account of this server", user);
    if (app->limits.login_policy == IM_LOGIN_REJECT && im_presence_is_online(p->presence, user))
        return im_error_set(err, IM_EDUPLICATE, "%s is already online", user);
    int rc = im_session_authenticate(s, user, name, err);
    if (rc != IM_OK)
        return rc;
    im_replies_send_login_result(p->replies, ep, rid, IM_OK, s, token, NULL);
    if ((rc = start_handover(app, s, ep, err)) != IM_OK) {
        im_delivery_kick(p->delivery, ep, rc, err->msg);
        return IM_OK; /* answered: the LoginAck is out, the kick explains */
    }
    return IM_OK;
}

/* A login waiting for the accounts port, then for the session's thread. */
typedef struct login_ctx {
    im_app *app;
    im_endpoint ep;
    uint64_t request_id;
    int rc;
    im_error err;
    char user[IM_USER_ID_MAX + 1];
    char name[IM_DISPLAY_NAME_MAX + 1];     /* asked for in the Login, or "" */
    char named[IM_USER_ID_MAX + 1];         /* a token login's user_id, or "" */
    char token[128];
    /* Set on the session's thread when it goes before the answer: the
     * accounts port may then skip the password check (im_accounts.h). */
    atomic_bool cancelled;
} login_ctx;

static void login_on_session(void *arg, im_session *s)
{
    login_ctx *c = arg;
    if (s && s->login == c)
        s->login = NULL;
    if (s) {
        const im_app_ports *p = &c->app->ports;
        int rc = c->rc;
        if (rc == IM_OK)
            rc = finish_login(c->app, s, &c->ep, c->request_id, c->user, c->name, c->token,
                              &c->err);
        if (rc != IM_OK)
            im_replies_send_login_result(p->replies, &c->ep, c->request_id, rc, NULL, NULL,
                                         c->err.msg);
        if (rc == IM_EDUPLICATE)
            im_delivery_kick(p->delivery, &c->ep, 0, "login refused: already online");
    }
    free(c);
}

static void login_verified(void *arg, int rc, const char *user, const char *display_name,
                           const char *token, const im_error *err)
{
    login_ctx *c = arg;
    c->rc = rc;
    /* A token names its own user: one that is not the user the Login
     * named is refused as a wrong password would be (and counted so). */
    if (rc == IM_OK && c->named[0] && strcmp(c->named, user) != 0)
        c->rc = im_error_set(&c->err, IM_EAUTH, "this token is not %s's", c->named);
    else if (rc != IM_OK)
        c->err = err ? *err : (im_error){ .code = rc };
    if (c->rc == IM_OK) {
        copy_str(c->user, sizeof c->user, user);
        if (!c->name[0])
            copy_str(c->name, sizeof c->name,
                     display_name && display_name[0] ? display_name : user);
        copy_str(c->token, sizeof c->token, token ? token : "");
    }
    im_replies_with_session(c->app->ports.replies, &c->ep, login_on_session, c);
}

int im_app_login(im_app *app, im_session *s, const im_login_request *req,
                 const im_endpoint *ep, uint64_t request_id, im_error *err)
{
    if (im_session_is_authenticated(s))
        return im_error_set(err, IM_ESTATE, "already logged in as %s", s->user_id);
    im_accounts *acc = app->ports.accounts;
    bool by_token = acc && req->token && req->token[0];
    /* A token login may leave user_id empty; one it names must be an id. */
    bool named = req->user_id && req->user_id[0];
    int rc = by_token && !named ? IM_OK : im_user_id_check(req->user_id, err);
    if (rc == IM_OK)
        rc = im_display_name_check(req->display_name, err);
    if (rc == IM_OK && acc && !by_token)
        rc = im_password_check(req->password, err);
    if (rc != IM_OK)
        return rc;

    if (!acc) {
        const char *name = req->display_name && req->display_name[0] ? req->display_name
                                                                      : req->user_id;
        return finish_login(app, s, ep, request_id, req->user_id, name, "", err);
    }
    if (app->limits.login_policy == IM_LOGIN_REJECT && !by_token &&
        im_presence_is_online(app->ports.presence, req->user_id))
        return im_error_set(err, IM_EDUPLICATE, "%s is already online", req->user_id);
    login_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    c->app = app;
    c->ep = *ep;
    c->request_id = request_id;
    atomic_init(&c->cancelled, false);
    copy_str(c->name, sizeof c->name, req->display_name ? req->display_name : "");
    if (by_token && named)
        copy_str(c->named, sizeof c->named, req->user_id);
    s->login = c; /* cleared by login_on_session, or by the session's close */
    if (by_token)
        rc = acc->ops->resume(acc, req->token, login_verified, c, &c->cancelled, err);
    else if (req->create_account)
        rc = acc->ops->create(acc, req->user_id, c->name[0] ? c->name : req->user_id,
                              req->password, login_verified, c, &c->cancelled, err);
    else
        rc = acc->ops->login(acc, req->user_id, req->password, login_verified, c,
                             &c->cancelled, err);
    if (rc != IM_OK) {
        s->login = NULL;
        free(c);
    }
    return rc;
}

void im_app_logout(im_app *app, const im_session *s, const char *token)
{
    im_accounts *acc = app->ports.accounts;
    if (acc && im_session_is_authenticated(s) && token && token[0])
        acc->ops->revoke(acc, token, NULL);
}

void im_app_logout_everywhere(im_app *app, const im_session *s)
{
    im_accounts *acc = app->ports.accounts;
    if (acc && im_session_is_authenticated(s))
        acc->ops->revoke_all(acc, s->user_id, NULL);
}

static void unbind_after(void *arg, int rc, const im_error *err)
{
    (void)rc, (void)err;
    session_ref *ref = arg;
    im_presence_unbind(ref->app->ports.presence, ref->user, &ref->ep);
    free(ref);
}

void im_app_session_closed(im_app *app, im_session *s, const im_endpoint *ep, int reason)
{
    if (s->login) {
        /* Nobody waits for this login's answer: its password need not be
         * checked. The context itself is freed where the answer lands. */
        login_ctx *c = s->login;
        atomic_store(&c->cancelled, true);
        s->login = NULL;
    }
    if (s->handover) {
        handover *h = s->handover;
        s->handover = NULL;
        im_store *st = app->ports.store;
        /* The session's reference goes with the request. Should the store
         * refuse it (out of memory), a flow waiting for acks is never told
         * and stays until shutdown: a leak, not a fault. */
        if (st->ops->barrier(st, handover_session_gone, h, NULL) != IM_OK)
            handover_release(h);
    }
    if (im_session_is_authenticated(s)) {
        /* Through the store, so the unbind cannot overtake this session's
         * go-live and leave a dead session bound. */
        session_ref *ref = calloc(1, sizeof *ref);
        im_store *st = app->ports.store;
        if (ref) {
            ref->app = app;
            ref->ep = *ep;
            copy_str(ref->user, sizeof ref->user, s->user_id);
        }
        if (!ref || st->ops->barrier(st, unbind_after, ref, NULL) != IM_OK) {
            free(ref);
            im_presence_unbind(app->ports.presence, s->user_id, ep);
        }
    }
    if (!im_session_is_closed(s))
        im_session_close(s, reason);
}

/* ---- messages ---- */

/* What a completion needs to answer the sender. */
typedef struct send_ctx {
    im_app *app;
    im_endpoint ep;
    uint64_t request_id;
    char client_msg_id[IM_CLIENT_MSG_ID_MAX + 1];
    char sender_name[IM_DISPLAY_NAME_MAX + 1];
} send_ctx;

static send_ctx *send_ctx_new(im_app *app, const im_session *s, const im_endpoint *ep,
                              uint64_t rid, const char *client_msg_id)
{
    send_ctx *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    c->app = app;
    c->ep = *ep;
    c->request_id = rid;
    copy_str(c->client_msg_id, sizeof c->client_msg_id, client_msg_id);
    copy_str(c->sender_name, sizeof c->sender_name, s->display_name);
    return c;
}

static void answer(send_ctx *c, int rc, const im_send_result *res, const char *msg)
{
    im_replies_send_result(c->app->ports.replies, &c->ep, c->request_id, c->client_msg_id, rc,
                           res, msg);
}

/* The common start of a send's completion: a failed store is answered
 * (and c freed) here; otherwise res is filled for the SendAck. */
static bool stored_ok(send_ctx *c, int rc, const im_message *m, bool duplicate,
                      const im_error *err, im_send_result *res)
{
    if (rc != IM_OK) {
        answer(c, rc, NULL, err ? err->msg : NULL);
        free(c);
        return false;
    }
    *res = (im_send_result){ .seq = m->seq, .server_time_ms = m->server_time_ms,
                             .duplicate = duplicate };
    return true;
}

static void private_stored(void *arg, int rc, const im_message *m, bool duplicate,
                           const im_error *err)
{
    send_ctx *c = arg;
    im_send_result res;
    if (!stored_ok(c, rc, m, duplicate, err, &res))
        return;
    /* A duplicate was delivered (or kept for the receiver) the first time. */
    if (!duplicate) {
        int drc = im_delivery_deliver(c->app->ports.delivery, m, c->sender_name, NULL);
        res.delivered = drc == IM_OK;
        if (drc != IM_OK && !durable(c->app)) {
            answer(c, drc, NULL, drc == IM_EOFFLINE ? "the receiver is not online" : NULL);
            free(c);
            return;
        }
    }
    answer(c, IM_OK, &res, NULL);
    free(c);
}

/* A replaced body lives in the filter's buffer until the next message on
 * this thread, long enough: the store copies the message in append. */
static int apply_filter(im_app *app, im_message *m, im_error *err)
{
    im_filter *f = app->ports.filter;
    if (!f)
        return IM_OK;
    const uint8_t *body = NULL;
    size_t len = 0;
    int rc = f->ops->check(f, m, &body, &len, err);
    if (rc == 1 && body && len >= 1 && len <= app->limits.max_body_bytes) {
        m->body = body;
        m->body_len = len;
        return IM_OK;
    }
    if (rc == 1) /* an adapter bug: refuse rather than store garbage */
        return im_error_set(err, IM_EREFUSED, "a filter returned a body of %zu bytes", len);
    return rc;
}

/* Fills in and checks what every message needs. */
static int prepare_message(im_app *app, im_session *s, im_message *m, im_error *err)
{
    int rc = require_login(s, err);
    if (rc != IM_OK)
        return rc;
    m->sender = s->user_id;
    m->server_time_ms = now_ms(app);
    if ((rc = im_message_validate(m, app->limits.max_body_bytes, err)) != IM_OK)
        return rc;
    if (!im_session_take_send(s, m->server_time_ms, app->limits.send_rate, app->limits.send_burst))
        return im_error_set(err, IM_ERATE, "sending too fast: at most %u messages per second",
                            app->limits.send_rate);
    return apply_filter(app, m, err);
}

static int submit(im_app *app, const im_session *s, const im_endpoint *ep, uint64_t rid,
                  const im_message *m, im_store_append_fn done, im_error *err)
{
    send_ctx *c = send_ctx_new(app, s, ep, rid, m->client_msg_id);
    if (!c)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    im_store *st = app->ports.store;
    int rc = st->ops->append(st, m, done, c, err);
    if (rc != IM_OK)
        free(c);
    return rc;
}

static void receiver_looked_up(void *arg, int rc, const im_account_record *rec,
                               const im_error *err)
{
    (void)rec;
    send_ctx *c = arg;
    if (rc == IM_OK)
        answer(c, IM_EOFFLINE, NULL, "the receiver is not online");
    else if (rc == IM_ENOTFOUND)
        answer(c, IM_EUNKNOWNUSER, NULL, "the receiver has no account");
    else
        answer(c, rc, NULL, err ? err->msg : NULL);
    free(c);
}

/* A private message to an offline user, with a store that keeps nothing
 * for later. When logins need accounts and the store keeps them, the
 * store says whether the receiver is a user at all: one that is not gets
 * UNKNOWN_USER, as from a durable store, and one that is gets
 * USER_OFFLINE; either way nothing is stored and no seq is taken. The
 * lookup is a request of the store, so its answer comes in order with the
 * sender's other messages. */
static int offline_or_unknown(im_app *app, const im_session *s, const im_endpoint *ep,
                              uint64_t rid, const im_message *m, im_error *err)
{
    im_store *st = app->ports.store;
    if (!app->ports.accounts || !IM_STORE_HAS(st, account))
        return im_error_set(err, IM_EOFFLINE, "%s is not online", m->target);
    if (!im_user_id_is_valid(m->target))
        return im_error_set(err, IM_EUNKNOWNUSER, "%s has no account", m->target);
    send_ctx *c = send_ctx_new(app, s, ep, rid, m->client_msg_id);
    if (!c)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    im_account_request q = { .size = sizeof q, .op = IM_ACCOUNT_GET, .user = m->target };
    int rc = st->ops->account(st, &q, receiver_looked_up, c, err);
    if (rc != IM_OK)
        free(c);
    return rc;
}

int im_app_send_private(im_app *app, im_session *s, const im_endpoint *ep,
                        uint64_t request_id, const char *to, const uint8_t *body,
                        size_t body_len, const char *client_msg_id, im_error *err)
{
    im_message m = {
        .kind = IM_MESSAGE_PRIVATE, .target = to ? to : "",
        .client_msg_id = client_msg_id ? client_msg_id : "",
        .body = body, .body_len = body_len,
    };
    int rc = prepare_message(app, s, &m, err);
    if (rc != IM_OK)
        return rc;
    /* Without durable storage a message for an offline user could never be
     * delivered: refuse it before it takes a seq. */
    if (!durable(app) && !im_presence_is_online(app->ports.presence, m.target))
        return offline_or_unknown(app, s, ep, request_id, &m, err);
    return submit(app, s, ep, request_id, &m, private_stored, err);
}

struct fan_out {
    im_delivery *delivery;
    const im_message *msg;
    const char *sender_name;
    int delivered;
};

static int fan_out_locked(void *arg, const im_group *g, im_error *err)
{
    (void)err;
    struct fan_out *fo = arg;
    size_t n = im_group_member_count(g);
    const char *stack_ids[64];
    const char **ids = n <= 64 ? stack_ids : malloc(n * sizeof *ids);
    if (!ids)
        return IM_ENOMEM;
    for (size_t i = 0; i < n; i++)
        ids[i] = im_group_member(g, i);
    fo->delivered = im_delivery_deliver_many(fo->delivery, ids, n, fo->msg->sender, fo->msg,
                                             fo->sender_name);
    if (ids != stack_ids)
        free(ids);
    return IM_OK;
}

static void group_stored(void *arg, int rc, const im_message *m, bool duplicate,
                         const im_error *err)
{
    send_ctx *c = arg;
    im_send_result res;
    if (!stored_ok(c, rc, m, duplicate, err, &res))
        return;
    if (!duplicate) {
        /* The members as they are now, at commit: one who joined meanwhile
         * gets it, one who left does not. */
        struct fan_out fo = { .delivery = c->app->ports.delivery, .msg = m,
                              .sender_name = c->sender_name };
        im_group_repo *repo = c->app->ports.groups;
        if (repo->ops->read(repo, m->target, fan_out_locked, &fo, NULL) == IM_OK &&
            fo.delivered > 0)
            res.delivered = (uint32_t)fo.delivered;
    }
    answer(c, IM_OK, &res, NULL);
    free(c);
}

/* A private group is, to whoever may not see it, no group (IM_ENOGROUP). */
static int check_member(void *arg, const im_group *g, im_error *err)
{
    const char *const *user = arg;
    return im_group_check_member(g, *user, err);
}

static int require_member(im_app *app, const char *group, const char *user, im_error *err)
{
    im_group_repo *repo = app->ports.groups;
    int rc = repo->ops->read(repo, group, check_member, &user, err);
    if (rc == IM_ENOGROUP)
        return im_error_set(err, rc, "no group %s", group);
    return rc;
}

int im_app_send_group(im_app *app, im_session *s, const im_endpoint *ep,
                      uint64_t request_id, const char *group, const uint8_t *body,
                      size_t body_len, const char *client_msg_id, im_error *err)
{
    im_message m = {
        .kind = IM_MESSAGE_GROUP, .target = group ? group : "",
        .client_msg_id = client_msg_id ? client_msg_id : "",
        .body = body, .body_len = body_len,
    };
    int rc = prepare_message(app, s, &m, err);
    if (rc == IM_OK)
        rc = require_member(app, m.target, s->user_id, err);
    if (rc != IM_OK)
        return rc;
    return submit(app, s, ep, request_id, &m, group_stored, err);
}

/* ---- acks, history, listings ---- */

/* Checks that conversation belongs to user: "p:a:b" with user a or b, or
 * "g:group" of a group user is in. */
static int check_conversation(im_app *app, const char *user, const char *conv, im_error *err)
{
    if (strncmp(conv, "g:", 2) == 0)
        return require_member(app, conv + 2, user, err);
    if (strncmp(conv, "p:", 2) == 0) {
        const char *a = conv + 2, *colon = strchr(a, ':');
        size_t ulen = strlen(user);
        if (colon && (((size_t)(colon - a) == ulen && strncmp(a, user, ulen) == 0) ||
                      strcmp(colon + 1, user) == 0))
            return IM_OK;
    }
    return im_error_set(err, IM_EINVAL, "'%.80s' is not one of your conversations", conv);
}

/* Acks per second a session may send, beside its messages: a receiver acks
 * what it gets, so this is a multiple of the message rate. */
#define ACKS_PER_MESSAGE 10u

int im_app_ack(im_app *app, im_session *s, const char *conversation, uint64_t seq,
               im_error *err)
{
    int rc = require_login(s, err);
    if (rc == IM_OK)
        rc = check_conversation(app, s->user_id, conversation, err);
    if (rc != IM_OK)
        return rc;
    /* Past the rate an ack is dropped: acks are cumulative, so a dropped
     * one costs a re-delivery at most, and a flood costs nothing more. */
    if (!im_session_take_ack(s, now_ms(app), app->limits.send_rate * ACKS_PER_MESSAGE,
                             (app->limits.send_burst ? app->limits.send_burst
                                                     : app->limits.send_rate) * ACKS_PER_MESSAGE))
        return im_error_set(err, IM_ERATE, "acking too fast: at most %u acks per second",
                            app->limits.send_rate * ACKS_PER_MESSAGE);
    im_store *st = app->ports.store;
    rc = st->ops->ack(st, s->user_id, conversation, seq, err);
    if (rc == IM_OK && s->handover)
        handover_note_ack(app, s, conversation, seq);
    return rc;
}

/* What of a group's history a member reads: messages after floor, the seq
 * the member joined at, unless the group shares its history (floor 0). */
struct history_floor {
    const char *user;
    uint64_t floor;
    im_store_message_fn fn;
    void *arg;
};

static int read_floor(void *arg, const im_group *g, im_error *err)
{
    struct history_floor *hf = arg;
    int rc = im_group_check_member(g, hf->user, err);
    if (rc == IM_OK)
        hf->floor = im_group_shares_history(g) ? 0 : im_group_member_since(g, hf->user);
    return rc;
}

/* The store reads the page oldest first: those at or below the floor come
 * first and are passed over. */
static bool above_floor(void *arg, const im_message *m)
{
    const struct history_floor *hf = arg;
    return m->seq <= hf->floor || hf->fn(hf->arg, m);
}

/* What a history read asks the store for, once the request is checked:
 * skip says there is nothing to read (a page that ends before the join). */
struct history_plan {
    char conv[IM_CONVERSATION_ID_MAX + 1];
    uint64_t floor;
    uint32_t limit;
    bool skip;
};

static int plan_history(im_app *app, const im_session *s, const char *peer, const char *group,
                        uint64_t before_seq, uint32_t limit, struct history_plan *hp,
                        im_error *err)
{
    *hp = (struct history_plan){ .limit = limit };
    int rc = require_login(s, err);
    if (rc != IM_OK)
        return rc;
    bool has_peer = peer && peer[0], has_group = group && group[0];
    if (has_peer == has_group)
        return im_error_set(err, IM_EINVAL, "name either a peer or a group");
    im_message probe = {
        .kind = has_peer ? IM_MESSAGE_PRIVATE : IM_MESSAGE_GROUP,
        .sender = s->user_id, .target = has_peer ? peer : group,
    };
    if (im_message_conversation_id(&probe, hp->conv, sizeof hp->conv) < 0)
        return im_error_set(err, IM_EINVAL, "'%.40s' is not a valid id", probe.target);
    if (has_group) {
        struct history_floor hf = { .user = s->user_id };
        im_group_repo *repo = app->ports.groups;
        rc = repo->ops->read(repo, group, read_floor, &hf, err);
        if (rc == IM_ENOGROUP)
            rc = im_error_set(err, rc, "no group %s", group);
        if (rc != IM_OK)
            return rc;
        hp->floor = hf.floor;
        /* Nothing before the join is theirs: no read at all for a page
         * that ends there. */
        if (hf.floor == IM_GROUP_SINCE_UNKNOWN || (before_seq && before_seq <= hf.floor + 1))
            hp->skip = true;
    }
    if (hp->limit == 0)
        hp->limit = IM_HISTORY_DEFAULT;
    if (hp->limit > IM_HISTORY_MAX)
        hp->limit = IM_HISTORY_MAX;
    return IM_OK;
}

int im_app_history(im_app *app, const im_session *s, const char *peer, const char *group,
                   uint64_t before_seq, uint32_t limit, im_store_message_fn fn, void *arg,
                   im_error *err)
{
    struct history_plan hp;
    int rc = plan_history(app, s, peer, group, before_seq, limit, &hp, err);
    if (rc != IM_OK || hp.skip)
        return rc;
    struct history_floor hf = { .user = s->user_id, .floor = hp.floor, .fn = fn, .arg = arg };
    im_store *st = app->ports.store;
    return st->ops->history(st, hp.conv, before_seq, hp.limit, hf.floor ? above_floor : fn,
                            hf.floor ? (void *)&hf : arg, err);
}

/* A History answered later: the page the store reads is kept here (the
 * store's messages are borrowed for each call), then handed to the route
 * port in one answer. */
typedef struct history_req {
    im_app *app;
    im_endpoint ep;
    uint64_t request_id;
    uint64_t floor;
    size_t n, cap;
    bool failed;
    im_message *msgs;             /* n copies, each in one allocation with its strings */
    char **blocks;                /* blocks[i]: msgs[i]'s allocation (its sender) */
} history_req;

static void history_req_free(history_req *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->blocks[i]);
    free(h->blocks);
    free(h->msgs);
    free(h);
}

static bool keep_history(void *arg, const im_message *m)
{
    history_req *h = arg;
    if (m->seq <= h->floor)
        return true; /* before the reader joined: the store hands the oldest first */
    if (h->n == h->cap)
        return false;
    const char *cmid = m->client_msg_id ? m->client_msg_id : "";
    size_t ls = strlen(m->sender) + 1, lt = strlen(m->target) + 1, lc = strlen(cmid) + 1;
    char *p = malloc(ls + lt + lc + m->body_len);
    if (!p) {
        h->failed = true;
        return false;
    }
    h->blocks[h->n] = p;
    im_message *c = &h->msgs[h->n++];
    *c = *m;
    c->sender = memcpy(p, m->sender, ls), p += ls;
    c->target = memcpy(p, m->target, lt), p += lt;
    c->client_msg_id = memcpy(p, cmid, lc), p += lc;
    c->body = m->body_len ? memcpy(p, m->body, m->body_len) : (const uint8_t *)p;
    return true;
}

static void history_answer(void *arg, int rc, const im_error *err)
{
    history_req *h = arg;
    im_replies *r = h->app->ports.replies;
    if (rc == IM_OK && h->failed)
        im_replies_send_history(r, &h->ep, h->request_id, IM_ENOMEM, NULL, 0, "out of memory");
    else if (rc != IM_OK)
        im_replies_send_history(r, &h->ep, h->request_id, rc, NULL, 0,
                                err && err->msg[0] ? err->msg : NULL);
    else
        im_replies_send_history(r, &h->ep, h->request_id, IM_OK, h->msgs, h->n, NULL);
    history_req_free(h);
}

int im_app_history_request(im_app *app, const im_session *s, const im_endpoint *ep,
                           uint64_t request_id, const char *peer, const char *group,
                           uint64_t before_seq, uint32_t limit, size_t max_bytes,
                           im_error *err)
{
    im_replies *r = app->ports.replies;
    if (!IM_ROUTE_HAS(r, send_history))
        return im_error_set(err, IM_EUNSUPPORTED, "the route port cannot answer a history");
    struct history_plan hp;
    int rc = plan_history(app, s, peer, group, before_seq, limit, &hp, err);
    if (rc != IM_OK)
        return rc;
    if (hp.skip) {
        im_replies_send_history(r, ep, request_id, IM_OK, NULL, 0, NULL);
        return IM_OK;
    }
    history_req *h = calloc(1, sizeof *h);
    if (!h || !(h->msgs = calloc(hp.limit, sizeof *h->msgs))
           || !(h->blocks = calloc(hp.limit, sizeof *h->blocks))) {
        if (h)
            free(h->msgs);
        free(h);
        return im_error_set(err, IM_ENOMEM, "out of memory");
    }
    h->app = app;
    h->ep = *ep;
    h->request_id = request_id;
    h->floor = hp.floor;
    h->cap = hp.limit;
    im_store *st = app->ports.store;
    if (IM_STORE_HAS(st, history_read)) {
        rc = st->ops->history_read(st, hp.conv, before_seq, hp.limit, max_bytes, keep_history,
                                   history_answer, h, err);
        if (rc != IM_OK)
            history_req_free(h);
        return rc;
    }
    /* A store without history_read: read here, on the caller's thread. */
    im_error rerr = { 0 };
    rc = st->ops->history(st, hp.conv, before_seq, hp.limit, keep_history, h, &rerr);
    history_answer(h, rc, &rerr);
    return IM_OK;
}

int im_app_online_users(im_app *app, const im_session *s, im_router_user_fn fn, void *arg,
                        size_t *total, im_error *err)
{
    int rc = require_login(s, err);
    if (rc != IM_OK)
        return rc;
    *total = im_presence_list_online(app->ports.presence, fn, arg);
    return IM_OK;
}

/* ---- listings a page at a time ---- */

static uint32_t list_limit(uint32_t limit)
{
    return limit == 0 ? IM_LIST_DEFAULT : limit > IM_LIST_MAX ? IM_LIST_MAX : limit;
}

/* The router lists online users in no set order, so a page is chosen in
 * one pass: a max-heap on id keeps the limit + 1 smallest ids after
 * `after` (the one past the limit says whether more follow), then they go
 * out sorted. Memory is one entry per place on the page, whoever is online. */
typedef struct user_pick {
    char id[IM_USER_ID_MAX + 1];
    char name[IM_DISPLAY_NAME_MAX + 1];
} user_pick;

struct user_page {
    const char *after;
    user_pick *heap;
    size_t n, cap;
};

static void pick_swap(user_pick *a, user_pick *b)
{
    user_pick t = *a;
    *a = *b;
    *b = t;
}

static void heap_sift_down(user_pick *h, size_t n, size_t i)
{
    for (;;) {
        size_t big = i, l = 2 * i + 1, r = l + 1;
        if (l < n && strcmp(h[l].id, h[big].id) > 0)
            big = l;
        if (r < n && strcmp(h[r].id, h[big].id) > 0)
            big = r;
        if (big == i)
            return;
        pick_swap(&h[i], &h[big]);
        i = big;
    }
}

static bool pick_user(void *arg, const char *user_id, const char *display_name)
{
    struct user_page *up = arg;
    /* An id too long to be one cannot be copied whole: its place in the
     * order would be wrong. Registered ids never are. */
    if (strcmp(user_id, up->after) <= 0 || strlen(user_id) > IM_USER_ID_MAX)
        return true;
    user_pick *slot;
    if (up->n < up->cap) {
        size_t i = up->n++;
        slot = &up->heap[i];
        snprintf(slot->id, sizeof slot->id, "%s", user_id);
        snprintf(slot->name, sizeof slot->name, "%s", display_name ? display_name : "");
        while (i > 0 && strcmp(up->heap[(i - 1) / 2].id, up->heap[i].id) < 0) {
            pick_swap(&up->heap[(i - 1) / 2], &up->heap[i]);
            i = (i - 1) / 2;
        }
        return true;
    }
    if (strcmp(user_id, up->heap[0].id) >= 0)
        return true; /* not among the smallest */
    slot = &up->heap[0];
    snprintf(slot->id, sizeof slot->id, "%s", user_id);
    snprintf(slot->name, sizeof slot->name, "%s", display_name ? display_name : "");
    heap_sift_down(up->heap, up->n, 0);
    return true;
}

static int pick_order(const void *a, const void *b)
{
    return strcmp(((const user_pick *)a)->id, ((const user_pick *)b)->id);
}

int im_app_online_users_page(im_app *app, const im_session *s, const char *after,
                             uint32_t limit, im_router_user_fn fn, void *arg, size_t *total,
                             bool *more, im_error *err)
{
    int rc = require_login(s, err);
    if (rc != IM_OK)
        return rc;
    limit = list_limit(limit);
    struct user_page up = { .after = after ? after : "", .cap = (size_t)limit + 1 };
    if (!(up.heap = malloc(up.cap * sizeof *up.heap)))
        return im_error_set(err, IM_ENOMEM, "out of memory");
    *total = im_presence_list_online(app->ports.presence, pick_user, &up);
    qsort(up.heap, up.n, sizeof *up.heap, pick_order);
    *more = up.n > limit;
    for (size_t i = 0; i < up.n && i < limit; i++) {
        if (!fn(arg, up.heap[i].id, up.heap[i].name)) {
            *more = true;
            break;
        }
    }
    free(up.heap);
    return IM_OK;
}
