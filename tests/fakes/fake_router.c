/* tests/fakes/fake_router.c: see fake_router.h. */
#include "fake_router.h"

#include <stdio.h>
#include <string.h>

#define FR(port, member) \
    ((fake_router *)(void *)((char *)(port) - offsetof(fake_router, member)))

static int find(fake_router *fr, const char *user)
{
    for (size_t i = 0; i < fr->nbound; i++)
        if (strcmp(fr->bound[i].user, user) == 0)
            return (int)i;
    return -1;
}

static int fr_bind(im_presence *r, const char *user, const char *name, const im_endpoint *ep,
                   im_login_policy policy, im_endpoint *replaced, im_error *err)
{
    fake_router *fr = FR(r, presence);
    int i = find(fr, user);
    if (i >= 0) {
        if (policy == IM_LOGIN_REJECT)
            return IM_EDUPLICATE;
        *replaced = fr->bound[i].ep;
        fr->bound[i].ep = *ep;
        return 1;
    }
    if (fr->nbound == FAKE_MAX)
        return im_error_set(err, IM_ENOMEM, "fake router full");
    snprintf(fr->bound[fr->nbound].user, sizeof fr->bound[0].user, "%s", user);
    snprintf(fr->bound[fr->nbound].name, sizeof fr->bound[0].name, "%s", name);
    fr->bound[fr->nbound++].ep = *ep;
    return 0;
}

static bool fr_unbind(im_presence *r, const char *user, const im_endpoint *ep)
{
    fake_router *fr = FR(r, presence);
    int i = find(fr, user);
    if (i < 0 || fr->bound[i].ep.conn_id != ep->conn_id)
        return false;
    fr->bound[i] = fr->bound[--fr->nbound];
    return true;
}

static bool fr_is_online(im_presence *r, const char *user)
{
    return find(FR(r, presence), user) >= 0;
}

static void record(fake_router *fr, const char *to, const im_message *m)
{
    if (fr->ndelivered == FAKE_MAX)
        return;
    fake_delivery *d = &fr->delivered[fr->ndelivered++];
    snprintf(d->to, sizeof d->to, "%s", to);
    snprintf(d->from, sizeof d->from, "%s", m->sender);
    snprintf(d->target, sizeof d->target, "%s", m->target);
    snprintf(d->body, sizeof d->body, "%.*s", (int)m->body_len, (const char *)m->body);
    d->seq = m->seq;
    d->kind = m->kind;
    snprintf(d->event, sizeof d->event, "%s", m->client_msg_id ? m->client_msg_id : "");
}

static int fr_deliver(im_delivery *r, const im_message *m, const char *sender_name, im_error *err)
{
    (void)sender_name;
    fake_router *fr = FR(r, delivery);
    if (fr->fail_deliver)
        return im_error_set(err, fr->fail_deliver, "injected");
    if (find(fr, m->target) < 0)
        return im_error_set(err, IM_EOFFLINE, "offline");
    record(fr, m->target, m);
    return IM_OK;
}

static int fr_deliver_many(im_delivery *r, const char *const *members, size_t n, const char *skip,
                           const im_message *m, const char *sender_name)
{
    (void)sender_name;
    fake_router *fr = FR(r, delivery);
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        if ((skip && strcmp(skip, members[i]) == 0) || find(fr, members[i]) < 0)
            continue;
        record(fr, members[i], m);
        count++;
    }
    return count;
}

static void fr_kick(im_delivery *r, const im_endpoint *ep, int code, const char *why)
{
    (void)why;
    fake_router *fr = FR(r, delivery);
    if (fr->nkicked < FAKE_MAX) {
        fr->kicked[fr->nkicked].ep = *ep;
        fr->kicked[fr->nkicked++].code = code;
    }
}

static size_t fr_list(im_presence *r, im_router_user_fn fn, void *arg)
{
    fake_router *fr = FR(r, presence);
    for (size_t i = 0; i < fr->nbound; i++)
        if (!fn(arg, fr->bound[i].user, fr->bound[i].name))
            break;
    return fr->nbound;
}

static void fr_deliver_to(im_delivery *r, const im_endpoint *ep, const im_message *m,
                          const char *sender_name)
{
    (void)sender_name;
    fake_router *fr = FR(r, delivery);
    if (fr->ndirect == FAKE_MAX)
        return;
    fake_delivery *d = &fr->direct[fr->ndirect++];
    snprintf(d->to, sizeof d->to, "conn-%llu", (unsigned long long)ep->conn_id);
    snprintf(d->from, sizeof d->from, "%s", m->sender);
    snprintf(d->target, sizeof d->target, "%s", m->target);
    snprintf(d->body, sizeof d->body, "%.*s", (int)m->body_len, (const char *)m->body);
    d->seq = m->seq;
}

static void add_answer(fake_router *fr, const im_endpoint *ep, uint64_t rid, int rc,
                       bool is_send, const im_send_result *res, const char *cmid)
{
    if (fr->nanswers == FAKE_MAX)
        return;
    fr->answers[fr->nanswers].ep = *ep;
    fr->answers[fr->nanswers].request_id = rid;
    fr->answers[fr->nanswers].rc = rc;
    fr->answers[fr->nanswers].is_send = is_send;
    if (res)
        fr->answers[fr->nanswers].res = *res;
    snprintf(fr->answers[fr->nanswers].client_msg_id, sizeof fr->answers[0].client_msg_id, "%s",
             cmid ? cmid : "");
    fr->nanswers++;
}

static void fr_send_result(im_replies *r, const im_endpoint *ep, uint64_t rid, const char *cmid,
                           int rc, const im_send_result *res, const char *msg)
{
    (void)msg;
    add_answer(FR(r, replies), ep, rid, rc, true, rc == IM_OK ? res : NULL, cmid);
}

static void fr_send_status(im_replies *r, const im_endpoint *ep, uint64_t rid, int rc,
                           const char *msg)
{
    (void)msg;
    add_answer(FR(r, replies), ep, rid, rc, false, NULL, NULL);
}

static void fr_send_history(im_replies *r, const im_endpoint *ep, uint64_t rid, int rc,
                            const im_message *msgs, size_t n, const char *msg)
{
    (void)msg;
    fake_router *fr = FR(r, replies);
    if (fr->nanswers == FAKE_MAX)
        return;
    add_answer(fr, ep, rid, rc, false, NULL, NULL);
    fr->answers[fr->nanswers - 1].is_history = true;
    fr->answers[fr->nanswers - 1].nhistory = n;
    fr->answers[fr->nanswers - 1].history_last_seq = n ? msgs[n - 1].seq : 0;
}

static void fr_with_session(im_replies *r, const im_endpoint *ep,
                            void (*fn)(void *arg, im_session *s), void *arg)
{
    fake_router *fr = FR(r, replies);
    fn(arg, ep->conn_id < FAKE_MAX ? fr->sessions[ep->conn_id] : NULL);
}

static void fr_send_login_result(im_replies *r, const im_endpoint *ep, uint64_t rid, int rc,
                                 const im_session *s, const char *token, const char *msg)
{
    (void)s, (void)msg;
    add_answer(FR(r, replies), ep, rid, rc, false, NULL, token);
}

static const struct im_presence_ops fake_presence_ops = {
    .size = sizeof(struct im_presence_ops), .name = "fake",
    .bind = fr_bind, .unbind = fr_unbind, .is_online = fr_is_online, .list_online = fr_list,
};

static const struct im_delivery_ops fake_delivery_ops = {
    .size = sizeof(struct im_delivery_ops), .name = "fake",
    .deliver = fr_deliver, .deliver_many = fr_deliver_many, .deliver_to = fr_deliver_to,
    .kick = fr_kick,
};

static const struct im_replies_ops fake_replies_ops = {
    .size = sizeof(struct im_replies_ops), .name = "fake",
    .send_result = fr_send_result, .send_status = fr_send_status,
    .send_login_result = fr_send_login_result, .with_session = fr_with_session,
    .send_history = fr_send_history,
};

void fake_router_init(fake_router *fr)
{
    memset(fr, 0, sizeof *fr);
    fr->presence.ops = &fake_presence_ops;
    fr->delivery.ops = &fake_delivery_ops;
    fr->replies.ops = &fake_replies_ops;
}
