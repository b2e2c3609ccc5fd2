/* infrastructure/net_libevent/im_net_requests.c: the requests of one
 * connection, decoded: each is handed to the application through the core
 * table, and what is decided at once is answered here. Socket I/O, framing
 * and the connection's life are im_net_conn.c's. */
#include "im_net_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "im_codec.h"
#include "im_log.h"

#define LIST_DEFAULT 1000u
#define LIST_MAX 10000u

static void send_ok(im_conn *c, uint64_t request_id)
{
    Imcore__Ok ok = IMCORE__OK__INIT;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.request_id = request_id;
    env.body_case = IMCORE__ENVELOPE__BODY_OK;
    env.ok = &ok;
    im__conn_answer_now(c, &env);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void handle_login(im_conn *c, uint64_t rid, const Imcore__Login *req)
{
    im_net_server *srv = c->w->srv;
    im_error err = { 0 };
    uint32_t wait_s = 0;
    if (!im__limiter_allows(srv, c->peer, &wait_s)) {
        im_error_set(&err, IM_ERATE, "too many failed logins from this address: wait %u s",
                     wait_s);
        IM_WARN("peer=%s login as '%.32s' refused: %s", c->peer, req->user_id, err.msg);
        im__conn_answer_error(c, rid, IM_ERATE, err.msg, NULL);
        return;
    }
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
        im__conn_refused(c, rid, rc, err.msg, NULL);
        if (rc == IM_EDUPLICATE)
            im__conn_close(c, 0, "login refused: already online");
    }
}

void im__conn_login_result(im_conn *c, uint64_t rid, int rc, const char *token, const char *msg)
{
    im_net_server *srv = c->w->srv;
    c->login_pending = false;
    if (rc != IM_OK) {
        IM_INFO("peer=%s login refused: %s", c->peer, msg && msg[0] ? msg : im_strerror(rc));
        if (rc == IM_EAUTH || rc == IM_ENOTFOUND)
            im__limiter_failed(srv, c->peer);
        Imcore__Error e = IMCORE__ERROR__INIT;
        e.code = im_wire_error_code(rc);
        e.message = (char *)(msg && msg[0] ? msg : im_strerror(rc));
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
    ack.user_id = (char *)srv->core->session_user_id(&c->session);
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

typedef struct list_builder {
    size_t n, cap;
    void **items;
    bool failed;
} list_builder;

static bool add_group_info(void *arg, const im_group_info *gi)
{
    list_builder *lb = arg;
    if (lb->n == lb->cap)
        return false;
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
    lb->items[lb->n++] = info;
    return true;
}

static bool add_user_info(void *arg, const char *user_id, const char *display_name)
{
    list_builder *lb = arg;
    if (lb->n == lb->cap)
        return false;
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
    lb->items[lb->n++] = info;
    return true;
}

static void handle_group_list(im_conn *c, uint64_t rid)
{
    im_error err = { 0 };
    list_builder lb = { .cap = LIST_DEFAULT };
    lb.items = calloc(lb.cap, sizeof *lb.items);
    size_t total = 0;
    const imcore_core_api *core = c->w->srv->core;
    int rc = lb.items ? core->group_list(c->w->srv->app, &c->session, add_group_info, &lb,
                                         &total, &err)
                      : im_error_set(&err, IM_ENOMEM, "out of memory");
    if (rc == IM_OK && lb.failed)
        rc = im_error_set(&err, IM_ENOMEM, "out of memory");
    if (rc != IM_OK) {
        im__conn_answer_error(c, rid, rc, err.msg, NULL);
    } else {
        Imcore__GroupListResult res = IMCORE__GROUP_LIST_RESULT__INIT;
        res.n_groups = lb.n;
        res.groups = (Imcore__GroupInfo **)lb.items;
        res.total = (uint32_t)total;
        Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
        env.request_id = rid;
        env.body_case = IMCORE__ENVELOPE__BODY_GROUP_LIST_RESULT;
        env.group_list_result = &res;
        im__conn_answer_now(c, &env);
    }
    for (size_t i = 0; i < lb.n; i++) {
        Imcore__GroupInfo *info = lb.items[i];
        free(info->group), free(info->owner), free(info);
    }
    free(lb.items);
}

static void handle_online_users(im_conn *c, uint64_t rid, const Imcore__OnlineUsers *req)
{
    im_error err = { 0 };
    list_builder lb = { .cap = req->limit == 0 ? LIST_DEFAULT
                               : req->limit > LIST_MAX ? LIST_MAX : req->limit };
    lb.items = calloc(lb.cap, sizeof *lb.items);
    size_t total = 0;
    const imcore_core_api *core = c->w->srv->core;
    int rc = lb.items ? core->online_users(c->w->srv->app, &c->session, add_user_info, &lb,
                                           &total, &err)
                      : im_error_set(&err, IM_ENOMEM, "out of memory");
    if (rc == IM_OK && lb.failed)
        rc = im_error_set(&err, IM_ENOMEM, "out of memory");
    if (rc != IM_OK) {
        im__conn_answer_error(c, rid, rc, err.msg, NULL);
    } else {
        Imcore__OnlineUsersResult res = IMCORE__ONLINE_USERS_RESULT__INIT;
        res.n_users = lb.n;
        res.users = (Imcore__UserInfo **)lb.items;
        res.total = (uint32_t)total;
        Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
        env.request_id = rid;
        env.body_case = IMCORE__ENVELOPE__BODY_ONLINE_USERS_RESULT;
        env.online_users_result = &res;
        im__conn_answer_now(c, &env);
    }
    for (size_t i = 0; i < lb.n; i++) {
        Imcore__UserInfo *info = lb.items[i];
        free(info->user_id), free(info->display_name), free(info);
    }
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

static bool add_history(void *arg, const im_message *m)
{
    list_builder *lb = arg;
    if (lb->n == lb->cap)
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
        lb->failed = true;
        return false;
    }
    memcpy(d->body.data, m->body, m->body_len);
    lb->items[lb->n++] = d;
    return true;
}

static void handle_history(im_conn *c, uint64_t rid, const Imcore__History *req)
{
    im_error err = { 0 };
    list_builder lb = { .cap = IM_HISTORY_MAX };
    lb.items = calloc(lb.cap, sizeof *lb.items);
    int rc = lb.items
                 ? c->w->srv->core->history(c->w->srv->app, &c->session, req->peer,
                                            req->group, req->before_seq, req->limit,
                                            add_history, &lb, &err)
                 : im_error_set(&err, IM_ENOMEM, "out of memory");
    if (rc == IM_OK && lb.failed)
        rc = im_error_set(&err, IM_ENOMEM, "out of memory");
    if (rc != IM_OK) {
        im__conn_answer_error(c, rid, rc, err.msg, NULL);
    } else {
        Imcore__HistoryResult res = IMCORE__HISTORY_RESULT__INIT;
        res.n_messages = lb.n;
        res.messages = (Imcore__Delivery **)lb.items;
        Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
        env.request_id = rid;
        env.body_case = IMCORE__ENVELOPE__BODY_HISTORY_RESULT;
        env.history_result = &res;
        im__conn_answer_now(c, &env);
    }
    for (size_t i = 0; i < lb.n; i++)
        history_entry_free(lb.items[i]);
    free(lb.items);
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
    case IMCORE__ENVELOPE__BODY_GROUP_CREATE:
        im__conn_expect_answer(c);
        rc = core->group_create(app, s, &c->ep, rid, env->group_create->group,
                                env->group_create->max_members, &err);
        if (rc != IM_OK)
            im__conn_refused(c, rid, rc, err.msg, NULL);
        break;
    case IMCORE__ENVELOPE__BODY_GROUP_JOIN:
        im__conn_expect_answer(c);
        rc = core->group_join(app, s, &c->ep, rid, env->group_join->group, &err);
        if (rc != IM_OK)
            im__conn_refused(c, rid, rc, err.msg, NULL);
        break;
    case IMCORE__ENVELOPE__BODY_GROUP_LEAVE:
        im__conn_expect_answer(c);
        rc = core->group_leave(app, s, &c->ep, rid, env->group_leave->group, &err);
        if (rc != IM_OK)
            im__conn_refused(c, rid, rc, err.msg, NULL);
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
        handle_group_list(c, rid);
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
