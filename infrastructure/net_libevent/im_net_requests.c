/* infrastructure/net_libevent/im_net_requests.c: the requests of one
 * connection, decoded: each is handed to the application through the core
 * table, and what is decided at once is answered here. Socket I/O, framing
 * and the connection's life are im_net_conn.c's. */
#include "im_net_internal.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "im_codec.h"
#include "im_log.h"

static void send_ok(im_conn *c, uint64_t request_id)
{
    Imcore__Ok ok = IMCORE__OK__INIT;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.request_id = request_id;
    env.body_case = IMCORE__ENVELOPE__BODY_OK;
    env.ok = &ok;
    im__conn_answer_now(c, &env);
}

void im__error_fill(Imcore__Error *e, int code, const char *msg, const char *client_msg_id,
                    char text[IM_ERROR_TEXT_BYTES])
{
    imcore__error__init(e);
    e->code = im_wire_error_code(code);
    if (!msg || !msg[0])
        msg = im_strerror(code);
    size_t n = strnlen(msg, IM_ERROR_TEXT_BYTES);
    if (n == IM_ERROR_TEXT_BYTES) {
        /* Cut before a character's continuation bytes (10xxxxxx), so the
         * text stays UTF-8, as a protobuf string must be. */
        n = IM_ERROR_TEXT_BYTES - 1;
        while (n > 0 && ((unsigned char)msg[n] & 0xC0) == 0x80)
            n--;
        memcpy(text, msg, n);
        text[n] = '\0';
        msg = text;
    }
    e->message = im_pb_str(msg);
    bool echo = client_msg_id && strnlen(client_msg_id, IM_CLIENT_MSG_ID_MAX + 1) <=
                                     IM_CLIENT_MSG_ID_MAX;
    e->client_msg_id = im_pb_str(echo ? client_msg_id : "");
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void im__conn_settle_limits(im_conn *c)
{
    im_net_server *srv = c->w->srv;
    if (c->login_guarded) {
        im__limiter_end_login(srv, c->peer, false);
        c->login_guarded = false;
    }
    if (c->unauth_counted) {
        im__limiter_close_unauthenticated(srv, c->peer);
        c->unauth_counted = false;
    }
}

static void handle_login(im_conn *c, uint64_t rid, const Imcore__Login *req)
{
    im_net_server *srv = c->w->srv;
    im_error err = { 0 };
    uint32_t wait_s = 0;
    /* A login with credentials is a guess to the limiter until it is
     * answered: counted while in flight, a failure once refused. */
    bool guarded = (req->password && req->password[0]) || (req->token && req->token[0]);
    int lrc = guarded ? im__limiter_begin_login(srv, c->peer, req->create_account, &wait_s)
                      : IM_OK;
    if (lrc != IM_OK) {
        if (lrc == IM_ENOMEM)
            im_error_set(&err, IM_ENOMEM, "out of memory");
        else if (req->create_account)
            im_error_set(&err, IM_ERATE, "too many logins or registrations from this address: "
                         "wait %u s", wait_s);
        else
            im_error_set(&err, IM_ERATE, "too many failed logins from this address: wait %u s",
                         wait_s);
        IM_WARN("peer=%s login as '%.32s' refused: %s", c->peer, req->user_id, err.msg);
        im__conn_answer_error(c, rid, lrc, err.msg, NULL);
        return;
    }
    c->login_guarded = guarded;
    im_login_request lr = {
        .user_id = req->user_id, .display_name = req->display_name,
        .password = req->password, .token = req->token,
        .create_account = req->create_account,
    };
    /* One login at a time: nothing more is taken from the connection until
     * this one is answered (im__conn_login_result). */
    im__conn_expect_answer(c);
    c->login_pending = true;
    int rc = srv->core->login(srv->app, &c->session, &lr, &c->ep, rid, &err);
    if (rc != IM_OK) {
        IM_INFO("peer=%s login as '%.32s' refused: %s", c->peer, req->user_id, err.msg);
        c->login_pending = false;
        if (c->login_guarded) {
            im__limiter_end_login(srv, c->peer, false);
            c->login_guarded = false;
        }
        im__conn_refused(c, rid, rc, err.msg, NULL);
        if (rc == IM_EDUPLICATE)
            im__conn_close(c, 0, "login refused: already online");
    }
}

void im__conn_login_result(im_conn *c, uint64_t rid, int rc, const char *token, const char *msg)
{
    im_net_server *srv = c->w->srv;
    c->login_pending = false;
    if (c->login_guarded) {
        im__limiter_end_login(srv, c->peer, rc == IM_EAUTH || rc == IM_ENOTFOUND);
        c->login_guarded = false;
    }
    if (rc == IM_OK && c->unauth_counted) {
        im__limiter_close_unauthenticated(srv, c->peer);
        c->unauth_counted = false;
    }
    if (rc != IM_OK) {
        IM_INFO("peer=%s login refused: %s", c->peer, msg && msg[0] ? msg : im_strerror(rc));
        Imcore__Error e = IMCORE__ERROR__INIT;
        e.code = im_wire_error_code(rc);
        e.message = im_pb_str(msg && msg[0] ? msg : im_strerror(rc));
        e.client_msg_id = (char *)"";
        Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
        env.request_id = rid;
        env.body_case = IMCORE__ENVELOPE__BODY_ERROR;
        env.error = &e;
        im__conn_answer_later(c, &env);
        return;
    }
    snprintf(c->token, sizeof c->token, "%s", token ? token : "");
    IM_INFO("user=%s peer=%s logged in (session %llu)", im__conn_who(c), c->peer,
            (unsigned long long)im__conn_session_id(c));
    Imcore__LoginAck ack = IMCORE__LOGIN_ACK__INIT;
    ack.user_id = im_pb_str(srv->core->session_user_id(&c->session));
    ack.session_id = im__conn_session_id(c);
    ack.heartbeat_s = srv->cfg.heartbeat_s;
    ack.idle_timeout_s = srv->cfg.idle_timeout_s;
    ack.server_time_ms = wall_ms();
    ack.max_frame_bytes = srv->cfg.max_frame_bytes;
    ack.max_body_bytes = srv->core->get_limits(srv->app)->max_body_bytes;
    ack.node_id = srv->node_id;
    ack.token = c->token;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.request_id = rid;
    env.body_case = IMCORE__ENVELOPE__BODY_LOGIN_ACK;
    env.login_ack = &ack;
    im__conn_answer_later(c, &env);
}

static void handle_ping(im_conn *c, uint64_t rid, const Imcore__Ping *req)
{
    Imcore__Pong pong = IMCORE__PONG__INIT;
    pong.client_time_ms = req->client_time_ms;
    pong.server_time_ms = wall_ms();
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.request_id = rid;
    env.body_case = IMCORE__ENVELOPE__BODY_PONG;
    env.pong = &pong;
    im__conn_answer_now(c, &env);
}

/* What one entry of a repeated message field adds to its parent: a
 * one-byte tag (fields 1 to 15), the length as a varint, the entry. */
static size_t entry_bytes(size_t len)
{
    size_t n = 1 + len;
    do {
        n++;
        len >>= 7;
    } while (len);
    return n;
}

/* Whether env, packed, fits the frames this server sends. */
static bool fits_frame(const im_conn *c, const Imcore__Envelope *env)
{
    return imcore__envelope__get_packed_size(env) <= c->w->srv->cfg.max_frame_bytes;
}

/* A listing's page (GroupListResult, OnlineUsersResult) cut to fit a
 * frame: entries are taken while they fit the budget, and the first that
 * does not ends the page; the application then leaves it for the next
 * page, and the client asks for that with after = next_after. */
typedef struct list_builder {
    size_t n, cap;
    void **items;
    size_t bytes;               /* what the items add to the result */
    size_t budget;              /* for the items: the frame less the rest of the Envelope */
    bool failed;
} list_builder;

/* type, request_id, the body's tag and length, total, next_after: at most. */
#define LIST_ENVELOPE_BYTES (2 + 11 + 2 + 5 + 6 + 2 + IM_USER_ID_MAX)

static void list_builder_init(list_builder *lb, const im_conn *c, uint32_t limit)
{
    uint32_t max_frame = c->w->srv->cfg.max_frame_bytes;
    *lb = (list_builder){
        .cap = limit == 0 ? IM_LIST_DEFAULT : limit > IM_LIST_MAX ? IM_LIST_MAX : limit,
        .budget = max_frame > LIST_ENVELOPE_BYTES ? max_frame - LIST_ENVELOPE_BYTES : 0,
    };
    lb->items = calloc(lb->cap, sizeof *lb->items);
}

/* Takes item, which adds size bytes, if there is room for it. */
static bool list_take(list_builder *lb, void *item, size_t size)
{
    if (lb->n == lb->cap || lb->bytes + size > lb->budget)
        return false;
    lb->items[lb->n++] = item;
    lb->bytes += size;
    return true;
}

static void group_info_free(Imcore__GroupInfo *info)
{
    if (info)
        free(info->group), free(info->owner), free(info);
}

static void user_info_free(Imcore__UserInfo *info)
{
    if (info)
        free(info->user_id), free(info->display_name), free(info);
}

static bool add_group_info(void *arg, const im_group_info *gi)
{
    list_builder *lb = arg;
    Imcore__GroupInfo *info = malloc(sizeof *info);
    char *id = strdup(gi->id), *owner = strdup(gi->owner);
    if (!info || !id || !owner) {
        free(info), free(id), free(owner);
        lb->failed = true;
        return false;
    }
    imcore__group_info__init(info);
    info->group = id;
    info->owner = owner;
    info->members = gi->members;
    info->max_members = gi->max_members;
    info->member = gi->is_member;
    info->is_private = gi->is_private;
    info->invited = gi->is_invited;
    info->share_history = gi->shares_history;
    if (!list_take(lb, info, entry_bytes(imcore__group_info__get_packed_size(info)))) {
        group_info_free(info);
        return false;
    }
    return true;
}

static bool add_user_info(void *arg, const char *user_id, const char *display_name)
{
    list_builder *lb = arg;
    Imcore__UserInfo *info = malloc(sizeof *info);
    char *id = strdup(user_id), *name = strdup(display_name);
    if (!info || !id || !name) {
        free(info), free(id), free(name);
        lb->failed = true;
        return false;
    }
    imcore__user_info__init(info);
    info->user_id = id;
    info->display_name = name;
    if (!list_take(lb, info, entry_bytes(imcore__user_info__get_packed_size(info)))) {
        user_info_free(info);
        return false;
    }
    return true;
}

/* Sends env, a page of lb's items whose result counts *n of them and names
 * *next_after, where more says whether entries follow the page. Should
 * the page not fit after all (the budget is an upper bound of the
 * envelope, so it does), its last items go back to the next page. */
static void send_list_page(im_conn *c, uint64_t rid, Imcore__Envelope *env, list_builder *lb,
                           size_t *n, char **next_after, bool more,
                           const char *(*id_of)(const void *item))
{
    env->request_id = rid;
    env->type = im_envelope_type_for(env->body_case);
    for (;;) {
        *n = lb->n;
        *next_after = im_pb_str(more && lb->n ? id_of(lb->items[lb->n - 1]) : "");
        if (fits_frame(c, env))
            break;
        if (lb->n <= 1) {
            im__conn_answer_error(c, rid, IM_EIO, "a list entry does not fit in a frame", NULL);
            return;
        }
        lb->n--; /* freed by the caller with the rest: items[n] stays set */
        more = true;
    }
    if (more && lb->n == 0) {
        im__conn_answer_error(c, rid, IM_EIO, "a list entry does not fit in a frame", NULL);
        return;
    }
    im__conn_answer_now(c, env);
}

static const char *group_id_of(const void *item)
{
    return ((const Imcore__GroupInfo *)item)->group;
}

static const char *user_id_of(const void *item)
{
    return ((const Imcore__UserInfo *)item)->user_id;
}

static void handle_group_list(im_conn *c, uint64_t rid, const Imcore__GroupList *req)
{
    im_error err = { 0 };
    list_builder lb;
    list_builder_init(&lb, c, req->limit);
    size_t total = 0;
    bool more = false;
    const imcore_core_api *core = c->w->srv->core;
    int rc = lb.items ? core->group_list_page(c->w->srv->app, &c->session, req->after,
                                              (uint32_t)lb.cap, add_group_info, &lb, &total,
                                              &more, &err)
                      : im_error_set(&err, IM_ENOMEM, "out of memory");
    if (rc == IM_OK && lb.failed)
        rc = im_error_set(&err, IM_ENOMEM, "out of memory");
    size_t taken = lb.n;
    if (rc != IM_OK) {
        im__conn_answer_error(c, rid, rc, err.msg, NULL);
    } else {
        Imcore__GroupListResult res = IMCORE__GROUP_LIST_RESULT__INIT;
        res.groups = (Imcore__GroupInfo **)lb.items;
        res.total = (uint32_t)total;
        Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
        env.body_case = IMCORE__ENVELOPE__BODY_GROUP_LIST_RESULT;
        env.group_list_result = &res;
        send_list_page(c, rid, &env, &lb, &res.n_groups, &res.next_after, more, group_id_of);
    }
    for (size_t i = 0; i < taken; i++)
        group_info_free(lb.items[i]);
    free(lb.items);
}

static void handle_online_users(im_conn *c, uint64_t rid, const Imcore__OnlineUsers *req)
{
    im_error err = { 0 };
    list_builder lb;
    list_builder_init(&lb, c, req->limit);
    size_t total = 0;
    bool more = false;
    const imcore_core_api *core = c->w->srv->core;
    int rc = lb.items ? core->online_users_page(c->w->srv->app, &c->session, req->after,
                                                (uint32_t)lb.cap, add_user_info, &lb, &total,
                                                &more, &err)
                      : im_error_set(&err, IM_ENOMEM, "out of memory");
    if (rc == IM_OK && lb.failed)
        rc = im_error_set(&err, IM_ENOMEM, "out of memory");
    size_t taken = lb.n;
    if (rc != IM_OK) {
        im__conn_answer_error(c, rid, rc, err.msg, NULL);
    } else {
        Imcore__OnlineUsersResult res = IMCORE__ONLINE_USERS_RESULT__INIT;
        res.users = (Imcore__UserInfo **)lb.items;
        res.total = (uint32_t)total;
        Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
        env.body_case = IMCORE__ENVELOPE__BODY_ONLINE_USERS_RESULT;
        env.online_users_result = &res;
        send_list_page(c, rid, &env, &lb, &res.n_users, &res.next_after, more, user_id_of);
    }
    for (size_t i = 0; i < taken; i++)
        user_info_free(lb.items[i]);
    free(lb.items);
}

/* A history entry: the store's row is borrowed for the callback only, so
 * each Delivery owns copies of its strings and body. */
static void history_entry_free(Imcore__Delivery *d)
{
    if (!d)
        return;
    free(d->from), free(d->to), free(d->group), free(d->client_msg_id);
    free(d->conversation), free(d->body.data), free(d);
}

/* A HistoryResult cut to fit a frame. The store hands the messages oldest
 * first, and those nearest before_seq are the ones kept, so the builder
 * appends each and drops the oldest while the rest outgrow the budget:
 * it never holds much more than a frame's worth. */
typedef struct history_builder {
    Imcore__Delivery **items;   /* items[first .. n) are kept */
    size_t *bytes;              /* what each adds to the HistoryResult */
    size_t first, n, cap;
    size_t kept_bytes;          /* the sum over the kept ones */
    size_t budget;              /* for the entries: the frame less the rest of the Envelope */
    bool truncated;             /* older messages were dropped */
    bool failed;
} history_builder;

static void history_drop_oldest(history_builder *hb)
{
    hb->kept_bytes -= hb->bytes[hb->first];
    history_entry_free(hb->items[hb->first]);
    hb->items[hb->first++] = NULL;
    hb->truncated = true;
}

static bool add_history(void *arg, const im_message *m)
{
    history_builder *hb = arg;
    if (hb->n == hb->cap)
        return false;
    char conv[IM_CONVERSATION_ID_MAX + 1] = "";
    im_message_conversation_id(m, conv, sizeof conv);
    bool group = m->kind == IM_MESSAGE_GROUP;
    Imcore__Delivery *d = malloc(sizeof *d);
    if (d) {
        imcore__delivery__init(d);
        d->kind = group ? IMCORE__DELIVERY__KIND__GROUP : IMCORE__DELIVERY__KIND__PRIVATE;
        d->from = strdup(m->sender);
        d->from_name = d->from;
        d->to = strdup(group ? "" : m->target);
        d->group = strdup(group ? m->target : "");
        d->client_msg_id = strdup(m->client_msg_id ? m->client_msg_id : "");
        d->conversation = strdup(conv);
        d->body.len = m->body_len;
        d->body.data = malloc(m->body_len ? m->body_len : 1);
        d->seq = m->seq;
        d->server_time_ms = m->server_time_ms;
    }
    if (!d || !d->from || !d->to || !d->group || !d->client_msg_id || !d->conversation ||
        !d->body.data) {
        history_entry_free(d);
        hb->failed = true;
        return false;
    }
    memcpy(d->body.data, m->body, m->body_len);
    hb->items[hb->n] = d;
    hb->bytes[hb->n] = entry_bytes(imcore__delivery__get_packed_size(d));
    hb->kept_bytes += hb->bytes[hb->n++];
    /* The newest stays even alone over the budget: the config keeps a body
     * IM_FRAME_RESERVE below the frame, and the exact check follows. */
    while (hb->kept_bytes > hb->budget && hb->n - hb->first > 1)
        history_drop_oldest(hb);
    return true;
}

/* type, request_id, the body's tag and length, truncated: at most. */
#define HISTORY_ENVELOPE_BYTES (2 + 11 + 2 + 5 + 2)

/* The budget of a HistoryResult's entries in a frame of max_frame bytes. */
static size_t history_budget(uint32_t max_frame)
{
    return max_frame > HISTORY_ENVELOPE_BYTES ? max_frame - HISTORY_ENVELOPE_BYTES : 0;
}

static bool history_builder_init(history_builder *hb, uint32_t max_frame)
{
    *hb = (history_builder){ .cap = IM_HISTORY_MAX, .budget = history_budget(max_frame) };
    hb->items = calloc(hb->cap, sizeof *hb->items);
    hb->bytes = calloc(hb->cap, sizeof *hb->bytes);
    return hb->items && hb->bytes;
}

/* Answers with what hb kept, cut to fit the frame (or the Error for rc),
 * through send, then frees hb's entries. */
static void history_finish(history_builder *hb, uint32_t max_frame, uint64_t rid, int rc,
                           im_error *errp, void (*send)(void *ctx, Imcore__Envelope *env),
                           void *ctx)
{
    im_error local = { 0 };
    im_error *e = errp ? errp : &local;
    if (rc == IM_OK && hb->failed)
        rc = im_error_set(e, IM_ENOMEM, "out of memory");
    Imcore__HistoryResult res = IMCORE__HISTORY_RESULT__INIT;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.request_id = rid;
    env.type = IMCORE__TYPE__HISTORY_RESULT;
    env.body_case = IMCORE__ENVELOPE__BODY_HISTORY_RESULT;
    env.history_result = &res;
    while (rc == IM_OK) {
        res.n_messages = hb->n - hb->first;
        res.messages = hb->items + hb->first;
        res.truncated = hb->truncated;
        if (imcore__envelope__get_packed_size(&env) <= max_frame)
            break;
        if (res.n_messages <= 1)
            rc = im_error_set(e, IM_EIO, "a message does not fit in a frame of "
                              "%u bytes", max_frame);
        else
            history_drop_oldest(hb);
    }
    if (rc != IM_OK) {
        Imcore__Error er;
        char text[IM_ERROR_TEXT_BYTES];
        im__error_fill(&er, rc, e->msg, NULL, text);
        Imcore__Envelope eenv = IMCORE__ENVELOPE__INIT;
        eenv.request_id = rid;
        eenv.body_case = IMCORE__ENVELOPE__BODY_ERROR;
        eenv.error = &er;
        send(ctx, &eenv);
    } else {
        send(ctx, &env);
    }
    for (size_t i = hb->first; i < hb->n; i++)
        history_entry_free(hb->items[i]);
    free(hb->items);
    free(hb->bytes);
}

void im__history_answer(uint32_t max_frame, uint64_t rid, int rc, const im_message *msgs,
                        size_t n, const char *msg, void (*send)(void *ctx, Imcore__Envelope *env),
                        void *ctx)
{
    history_builder hb;
    im_error err = { 0 };
    bool ready = history_builder_init(&hb, max_frame);
    if (rc != IM_OK)
        im_error_set(&err, rc, "%s", msg && msg[0] ? msg : im_strerror(rc));
    else if (!ready)
        rc = im_error_set(&err, IM_ENOMEM, "out of memory");
    for (size_t i = 0; rc == IM_OK && i < n && add_history(&hb, &msgs[i]); i++)
        ;
    history_finish(&hb, max_frame, rid, rc, &err, send, ctx);
}

static void answer_now(void *ctx, Imcore__Envelope *env)
{
    im__conn_answer_now(ctx, env);
}

/* Whether the server's core table has fn, appended after the first
 * release: a transport may run on a server older than itself. */
#define CORE_HAS(core, fn) \
    ((core)->size >= offsetof(imcore_core_api, fn) + sizeof((core)->fn) && (core)->fn)

static void handle_history(im_conn *c, uint64_t rid, const Imcore__History *req)
{
    im_error err = { 0 };
    uint32_t max_frame = c->w->srv->cfg.max_frame_bytes;
    const imcore_core_api *core = c->w->srv->core;
    /* Read on the store's thread and answered through the route port; the
     * store stops reading once the bodies reach the frame's budget. */
    if (CORE_HAS(core, history_request)) {
        im__conn_expect_answer(c);
        int rc = core->history_request(c->w->srv->app, &c->session, &c->ep, rid, req->peer,
                                       req->group, req->before_seq, req->limit,
                                       history_budget(max_frame), &err);
        if (rc != IM_OK)
            im__conn_refused(c, rid, rc, err.msg, NULL);
        return;
    }
    /* A server without it: read here, on this loop, as before. */
    history_builder hb;
    int rc = history_builder_init(&hb, max_frame)
                 ? core->history(c->w->srv->app, &c->session, req->peer, req->group,
                                 req->before_seq, req->limit, add_history, &hb, &err)
                 : im_error_set(&err, IM_ENOMEM, "out of memory");
    history_finish(&hb, max_frame, rid, rc, &err, answer_now, c);
}

/* A group request the application answers once stored (GroupCreate, Join,
 * Leave, Invite, Kick, Transfer, Delete): counted before the call, and
 * answered here, in its place, if refused at once. kind: the request's
 * argument after the group (user or NULL). */
typedef enum group_request {
    GR_CREATE, GR_JOIN, GR_LEAVE, GR_INVITE, GR_KICK, GR_TRANSFER, GR_DELETE,
} group_request;

static void handle_group(im_conn *c, uint64_t rid, group_request kind, const char *group,
                         const char *user, uint32_t max_members, unsigned flags)
{
    im_app *app = c->w->srv->app;
    const imcore_core_api *core = c->w->srv->core;
    im_session *s = &c->session;
    im_error err = { 0 };
    bool known = true;
    switch (kind) {
    case GR_CREATE: known = !flags || CORE_HAS(core, group_create_flags); break;
    case GR_INVITE: known = CORE_HAS(core, group_invite); break;
    case GR_KICK: known = CORE_HAS(core, group_kick); break;
    case GR_TRANSFER: known = CORE_HAS(core, group_transfer); break;
    case GR_DELETE: known = CORE_HAS(core, group_delete); break;
    default: break;
    }
    if (!known) {
        im__conn_answer_error(c, rid, IM_EUNSUPPORTED, "the server does not have this request",
                              NULL);
        return;
    }
    im__conn_expect_answer(c);
    int rc = IM_OK;
    switch (kind) {
    case GR_CREATE:
        rc = CORE_HAS(core, group_create_flags)
                 ? core->group_create_flags(app, s, &c->ep, rid, group, max_members, flags, &err)
                 : core->group_create(app, s, &c->ep, rid, group, max_members, &err);
        break;
    case GR_JOIN: rc = core->group_join(app, s, &c->ep, rid, group, &err); break;
    case GR_LEAVE: rc = core->group_leave(app, s, &c->ep, rid, group, &err); break;
    case GR_INVITE: rc = core->group_invite(app, s, &c->ep, rid, group, user, &err); break;
    case GR_KICK: rc = core->group_kick(app, s, &c->ep, rid, group, user, &err); break;
    case GR_TRANSFER: rc = core->group_transfer(app, s, &c->ep, rid, group, user, &err); break;
    case GR_DELETE: rc = core->group_delete(app, s, &c->ep, rid, group, &err); break;
    }
    if (rc != IM_OK)
        im__conn_refused(c, rid, rc, err.msg, NULL);
}

void im__conn_dispatch(im_conn *c, const Imcore__Envelope *env)
{
    im_app *app = c->w->srv->app;
    const imcore_core_api *core = c->w->srv->core;
    im_session *s = &c->session;
    uint64_t rid = env->request_id;
    im_error err = { 0 };
    int rc;

    switch (env->body_case) {
    case IMCORE__ENVELOPE__BODY_LOGIN:
        handle_login(c, rid, env->login);
        break;
    case IMCORE__ENVELOPE__BODY_LOGOUT:
        if (env->logout->everywhere && !IMCORE_CORE_HAS(core, logout_everywhere)) {
            im__conn_answer_error(c, rid, IM_EUNSUPPORTED,
                                  "this server cannot log out everywhere", NULL);
            break;
        }
        if (env->logout->everywhere)
            core->logout_everywhere(app, s);
        else
            core->logout(app, s, c->token);
        send_ok(c, rid);
        im__conn_close(c, 0, "logout");
        break;
    case IMCORE__ENVELOPE__BODY_PING:
        handle_ping(c, rid, env->ping);
        break;
    /* Sends and membership changes are answered by the application once
     * stored, in the order they were handed over; a refusal decided at
     * once is answered here, in its place. */
    case IMCORE__ENVELOPE__BODY_PRIVATE_MESSAGE: {
        const Imcore__PrivateMessage *pm = env->private_message;
        im__conn_expect_answer(c);
        rc = core->send_private(app, s, &c->ep, rid, pm->to, pm->body.data, pm->body.len,
                                pm->client_msg_id, &err);
        if (rc != IM_OK)
            im__conn_refused(c, rid, rc, err.msg, pm->client_msg_id);
        break;
    }
    case IMCORE__ENVELOPE__BODY_GROUP_MESSAGE: {
        const Imcore__GroupMessage *gm = env->group_message;
        im__conn_expect_answer(c);
        rc = core->send_group(app, s, &c->ep, rid, gm->group, gm->body.data, gm->body.len,
                              gm->client_msg_id, &err);
        if (rc != IM_OK)
            im__conn_refused(c, rid, rc, err.msg, gm->client_msg_id);
        break;
    }
    case IMCORE__ENVELOPE__BODY_GROUP_CREATE: {
        const Imcore__GroupCreate *gc = env->group_create;
        /* The wire's flags are the domain's: 1 private, 2 history shared. */
        unsigned flags = (gc->is_private ? 1u : 0u) | (gc->share_history ? 2u : 0u);
        handle_group(c, rid, GR_CREATE, gc->group, NULL, gc->max_members, flags);
        break;
    }
    case IMCORE__ENVELOPE__BODY_GROUP_JOIN:
        handle_group(c, rid, GR_JOIN, env->group_join->group, NULL, 0, 0);
        break;
    case IMCORE__ENVELOPE__BODY_GROUP_LEAVE:
        handle_group(c, rid, GR_LEAVE, env->group_leave->group, NULL, 0, 0);
        break;
    case IMCORE__ENVELOPE__BODY_GROUP_INVITE:
        handle_group(c, rid, GR_INVITE, env->group_invite->group, env->group_invite->user, 0, 0);
        break;
    case IMCORE__ENVELOPE__BODY_GROUP_KICK:
        handle_group(c, rid, GR_KICK, env->group_kick->group, env->group_kick->user, 0, 0);
        break;
    case IMCORE__ENVELOPE__BODY_GROUP_TRANSFER:
        handle_group(c, rid, GR_TRANSFER, env->group_transfer->group,
                     env->group_transfer->user, 0, 0);
        break;
    case IMCORE__ENVELOPE__BODY_GROUP_DELETE:
        handle_group(c, rid, GR_DELETE, env->group_delete->group, NULL, 0, 0);
        break;
    case IMCORE__ENVELOPE__BODY_DELIVERY_ACK:
        /* No answer: acks are cumulative, and a refused one is only logged. */
        rc = core->ack(app, s, env->delivery_ack->conversation, env->delivery_ack->seq, &err);
        if (rc != IM_OK)
            IM_DEBUG("user=%s peer=%s ack refused: %s", im__conn_who(c), c->peer, err.msg);
        break;
    case IMCORE__ENVELOPE__BODY_HISTORY:
        handle_history(c, rid, env->history);
        break;
    case IMCORE__ENVELOPE__BODY_GROUP_LIST:
        handle_group_list(c, rid, env->group_list);
        break;
    case IMCORE__ENVELOPE__BODY_ONLINE_USERS:
        handle_online_users(c, rid, env->online_users);
        break;
    default:
        im__conn_answer_error(c, rid, IM_EUNSUPPORTED,
                              "the server does not accept this message type", NULL);
        break;
    }
}
