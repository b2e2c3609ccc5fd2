/* tests/fakes/fake_router.h: an in-memory route port, in its three tables
 * (presence, delivery, replies), that records what the application asked
 * of it, for application tests. Single-threaded. */
#ifndef IM_FAKE_ROUTER_H
#define IM_FAKE_ROUTER_H

#include "application/ports/im_router.h"

#define FAKE_MAX 64

typedef struct fake_delivery {
    char to[IM_USER_ID_MAX + 1];
    char from[IM_USER_ID_MAX + 1];
    char target[IM_USER_ID_MAX + 1];
    char body[256];
    uint64_t seq;
    im_message_kind kind;
    char event[IM_CLIENT_MSG_ID_MAX + 1]; /* the client_msg_id: a notice's IM_NOTICE_* */
} fake_delivery;

typedef struct fake_router {
    im_presence presence;
    im_delivery delivery;
    im_replies replies;
    struct { char user[IM_USER_ID_MAX + 1]; char name[IM_DISPLAY_NAME_MAX + 1]; im_endpoint ep; } bound[FAKE_MAX];
    size_t nbound;
    fake_delivery delivered[FAKE_MAX];
    size_t ndelivered;
    struct { im_endpoint ep; int code; } kicked[FAKE_MAX];
    size_t nkicked;
    int fail_deliver;      /* if non-zero, deliver returns this */
    /* Answers sent to sessions, in order. */
    struct {
        im_endpoint ep;
        uint64_t request_id;
        int rc;
        bool is_send;      /* send_result (true) or send_status (false) */
        bool is_history;   /* send_history; nhistory: how many messages */
        size_t nhistory;
        uint64_t history_last_seq; /* the newest message's, 0 for none */
        im_send_result res;
        char client_msg_id[IM_CLIENT_MSG_ID_MAX + 1];
    } answers[FAKE_MAX];
    size_t nanswers;
    fake_delivery direct[FAKE_MAX]; /* deliver_to */
    size_t ndirect;
    im_session *sessions[FAKE_MAX]; /* by conn_id, for with_session; the test's */
} fake_router;

void fake_router_init(fake_router *fr);

/* The three tables, for an im_app_ports initializer. */
#define FAKE_ROUTER_PORTS(fr) \
    .presence = &(fr)->presence, .delivery = &(fr)->delivery, .replies = &(fr)->replies

#endif
