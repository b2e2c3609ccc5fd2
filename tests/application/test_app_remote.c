/* tests/application/test_app_remote.c: the application served by a
 * stand-in for a cluster adapter. The stand-in wraps this node's presence
 * and delivery (the recording fake's) and keeps users "on another node"
 * itself, as a Redis route table would: it knows their endpoints and
 * nothing else, never a session. The application reaches them through it
 * alone; the replies go straight to this node's fake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "application/im_app.h"
#include "fake_router.h"
#include "im_memory_store.h"

/* ---- what a cluster adapter is given: no session anywhere ----
 * Every operation of presence and delivery has exactly this type, and the
 * tables have exactly these members (the sizes), so none of them can take
 * or return an im_session without this failing to compile. */
#define HAS_TYPE(expr, type) _Generic((expr), type: 1, default: 0)
#define PRESENCE_OP(member) (((struct im_presence_ops *)0)->member)
#define DELIVERY_OP(member) (((struct im_delivery_ops *)0)->member)
_Static_assert(HAS_TYPE(PRESENCE_OP(bind),
                        int (*)(im_presence *, const char *, const char *, const im_endpoint *,
                                im_login_policy, im_endpoint *, im_error *)), "bind");
_Static_assert(HAS_TYPE(PRESENCE_OP(unbind),
                        bool (*)(im_presence *, const char *, const im_endpoint *)), "unbind");
_Static_assert(HAS_TYPE(PRESENCE_OP(is_online), bool (*)(im_presence *, const char *)),
               "is_online");
_Static_assert(HAS_TYPE(PRESENCE_OP(list_online),
                        size_t (*)(im_presence *, im_router_user_fn, void *)), "list_online");
_Static_assert(HAS_TYPE(PRESENCE_OP(is_reserved), bool (*)(im_presence *, const char *)),
               "is_reserved");
_Static_assert(sizeof(struct im_presence_ops) == sizeof(size_t) + sizeof(const char *) +
                                                     5 * sizeof(void (*)(void)),
               "presence has a member this test does not check");
_Static_assert(HAS_TYPE(DELIVERY_OP(deliver),
                        int (*)(im_delivery *, const im_message *, const char *, im_error *)),
               "deliver");
_Static_assert(HAS_TYPE(DELIVERY_OP(deliver_many),
                        int (*)(im_delivery *, const char *const *, size_t, const char *,
                                const im_message *, const char *)), "deliver_many");
_Static_assert(HAS_TYPE(DELIVERY_OP(deliver_to),
                        void (*)(im_delivery *, const im_endpoint *, const im_message *,
                                 const char *)), "deliver_to");
_Static_assert(HAS_TYPE(DELIVERY_OP(kick),
                        void (*)(im_delivery *, const im_endpoint *, int, const char *)),
               "kick");
_Static_assert(sizeof(struct im_delivery_ops) == sizeof(size_t) + sizeof(const char *) +
                                                     4 * sizeof(void (*)(void)),
               "delivery has a member this test does not check");
/* Nor do the plain data they carry point anywhere. */
_Static_assert(sizeof(im_endpoint) == 2 * sizeof(uint32_t) + sizeof(uint64_t), "endpoint");

#define LOCAL_NODE 1u
#define REMOTE_NODE 2u
#define MAX 8

/* ---- the stand-in ---- */

typedef struct sent {
    im_endpoint ep;
    char target[IM_USER_ID_MAX + 1];
    char body[64];
} sent;

typedef struct remote {
    im_presence presence;
    im_delivery delivery;
    im_presence *local_presence;  /* this node's: borrowed */
    im_delivery *local_delivery;
    struct { char user[IM_USER_ID_MAX + 1]; char name[32]; im_endpoint ep; } users[MAX];
    size_t nusers;                /* users on the other node */
    sent sent[MAX];               /* what went to the other node, by endpoint */
    size_t nsent;
    struct { im_endpoint ep; int code; } kicked[MAX];
    size_t nkicked;
} remote;

static remote *of_presence(im_presence *p)
{
    return (remote *)(void *)((char *)p - offsetof(remote, presence));
}

static remote *of_delivery(im_delivery *d)
{
    return (remote *)(void *)((char *)d - offsetof(remote, delivery));
}

static int find(const remote *r, const char *user)
{
    for (size_t i = 0; i < r->nusers; i++)
        if (strcmp(r->users[i].user, user) == 0)
            return (int)i;
    return -1;
}

static void forget(remote *r, int i)
{
    r->users[i] = r->users[--r->nusers];
}

static int rm_bind(im_presence *p, const char *user_id, const char *name, const im_endpoint *ep,
                   im_login_policy policy, im_endpoint *replaced, im_error *err)
{
    remote *r = of_presence(p);
    int i = find(r, user_id);
    if (ep->node != LOCAL_NODE) {
        /* The other node's login, as its route entry appears here. */
        if (i >= 0 || im_presence_is_online(r->local_presence, user_id))
            return im_error_set(err, IM_EDUPLICATE, "stand-in: %s is bound", user_id);
        if (r->nusers == MAX)
            return im_error_set(err, IM_ENOMEM, "stand-in full");
        snprintf(r->users[r->nusers].user, sizeof r->users[0].user, "%s", user_id);
        snprintf(r->users[r->nusers].name, sizeof r->users[0].name, "%s", name);
        r->users[r->nusers++].ep = *ep;
        return 0;
    }
    if (i < 0)
        return im_presence_bind(r->local_presence, user_id, name, ep, policy, replaced, err);
    /* The user is on the other node: the login policy holds across nodes. */
    if (policy == IM_LOGIN_REJECT)
        return im_error_set(err, IM_EDUPLICATE, "%s is online on node %u", user_id,
                            r->users[i].ep.node);
    *replaced = r->users[i].ep;
    forget(r, i);
    int rc = im_presence_bind(r->local_presence, user_id, name, ep, policy, replaced, err);
    return rc < 0 ? rc : 1;
}

static bool rm_unbind(im_presence *p, const char *user_id, const im_endpoint *ep)
{
    remote *r = of_presence(p);
    int i = find(r, user_id);
    if (ep->node == LOCAL_NODE)
        return im_presence_unbind(r->local_presence, user_id, ep);
    if (i < 0 || r->users[i].ep.conn_id != ep->conn_id)
        return false;
    forget(r, i);
    return true;
}

static bool rm_is_online(im_presence *p, const char *user_id)
{
    remote *r = of_presence(p);
    return find(r, user_id) >= 0 || im_presence_is_online(r->local_presence, user_id);
}

static size_t rm_list_online(im_presence *p, im_router_user_fn fn, void *arg)
{
    remote *r = of_presence(p);
    size_t i = 0;
    for (; i < r->nusers; i++)
        if (!fn(arg, r->users[i].user, r->users[i].name))
            break;
    return r->nusers + (i == r->nusers ? im_presence_list_online(r->local_presence, fn, arg)
                                       : 0);
}

static void record(remote *r, const im_endpoint *ep, const char *to, const im_message *m)
{
    assert_true(r->nsent < MAX);
    sent *s = &r->sent[r->nsent++];
    s->ep = *ep;
    snprintf(s->target, sizeof s->target, "%s", to);
    snprintf(s->body, sizeof s->body, "%.*s", (int)m->body_len, (const char *)m->body);
}

static int rm_deliver(im_delivery *d, const im_message *m, const char *sender_name,
                      im_error *err)
{
    remote *r = of_delivery(d);
    int i = find(r, m->target);
    if (i < 0)
        return im_delivery_deliver(r->local_delivery, m, sender_name, err);
    record(r, &r->users[i].ep, m->target, m);
    return IM_OK;
}

static int rm_deliver_many(im_delivery *d, const char *const *members, size_t n,
                           const char *skip, const im_message *m, const char *sender_name)
{
    remote *r = of_delivery(d);
    int count = im_delivery_deliver_many(r->local_delivery, members, n, skip, m, sender_name);
    for (size_t k = 0; k < n && count >= 0; k++) {
        int i = find(r, members[k]);
        if (i >= 0 && !(skip && strcmp(skip, members[k]) == 0)) {
            record(r, &r->users[i].ep, members[k], m);
            count++;
        }
    }
    return count;
}

static void rm_deliver_to(im_delivery *d, const im_endpoint *ep, const im_message *m,
                          const char *sender_name)
{
    remote *r = of_delivery(d);
    if (ep->node == LOCAL_NODE)
        im_delivery_deliver_to(r->local_delivery, ep, m, sender_name);
    else
        record(r, ep, "", m);
}

static void rm_kick(im_delivery *d, const im_endpoint *ep, int code, const char *why)
{
    remote *r = of_delivery(d);
    if (ep->node == LOCAL_NODE) {
        im_delivery_kick(r->local_delivery, ep, code, why);
        return;
    }
    assert_true(r->nkicked < MAX);
    r->kicked[r->nkicked].ep = *ep;
    r->kicked[r->nkicked++].code = code;
}

static const struct im_presence_ops remote_presence_ops = {
    .size = sizeof(struct im_presence_ops), .name = "stand-in",
    .bind = rm_bind, .unbind = rm_unbind, .is_online = rm_is_online,
    .list_online = rm_list_online,
};

static const struct im_delivery_ops remote_delivery_ops = {
    .size = sizeof(struct im_delivery_ops), .name = "stand-in",
    .deliver = rm_deliver, .deliver_many = rm_deliver_many, .deliver_to = rm_deliver_to,
    .kick = rm_kick,
};

/* ---- the fixture: this node (the fake), the stand-in around it, the app ---- */

typedef struct fixture {
    fake_router local;
    remote cluster;
    im_store *store;
    im_group_repo *groups;
    im_app *app;
    im_session alice;
    im_endpoint alice_ep;
    im_endpoint bob_remote;       /* bob's session on the other node */
} fixture;

static uint64_t fixed_clock(void *arg)
{
    (void)arg;
    return 1700000000000ull;
}

static int login(fixture *f, im_session *s, const char *user, const im_endpoint *ep)
{
    if (ep->conn_id < FAKE_MAX)
        f->local.sessions[ep->conn_id] = s;
    im_login_request req = { .user_id = user };
    return im_app_login(f->app, s, &req, ep, 1, NULL);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fake_router_init(&f->local);
    f->cluster.presence.ops = &remote_presence_ops;
    f->cluster.delivery.ops = &remote_delivery_ops;
    f->cluster.local_presence = &f->local.presence;
    f->cluster.local_delivery = &f->local.delivery;
    assert_int_equal(im_memory_store_new(&f->store, NULL), IM_OK);
    assert_int_equal(im_memory_group_repo_new(&f->groups, NULL), IM_OK);
    im_app_limits limits = { .max_body_bytes = 64, .max_group_members = 8,
                             .login_policy = IM_LOGIN_REPLACE };
    /* Presence and delivery: the stand-in's; replies: this node's. */
    im_app_ports ports = { .presence = &f->cluster.presence, .delivery = &f->cluster.delivery,
                           .replies = &f->local.replies, .store = f->store,
                           .groups = f->groups, .wall_clock_ms = fixed_clock };
    assert_int_equal(im_app_new(&limits, &ports, &f->app, NULL), IM_OK);
    /* bob is online on the other node: his route, as the adapter sees it. */
    f->bob_remote = (im_endpoint){ .node = REMOTE_NODE, .worker = 3, .conn_id = 77 };
    im_endpoint none;
    assert_int_equal(im_presence_bind(&f->cluster.presence, "bob", "Bob", &f->bob_remote,
                                      IM_LOGIN_REPLACE, &none, NULL), 0);
    im_session_init(&f->alice, 1, 0);
    f->alice_ep = (im_endpoint){ .node = LOCAL_NODE, .worker = 0, .conn_id = 1 };
    assert_int_equal(login(f, &f->alice, "alice", &f->alice_ep), IM_OK);
    f->local.nanswers = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    im_app_free(f->app);
    f->groups->ops->destroy(f->groups);
    im_store_destroy(f->store);
    free(f);
    return 0;
}

static bool count_user(void *arg, const char *user, const char *name)
{
    (void)name;
    if (strcmp(user, "bob") == 0)
        ++*(int *)arg;
    return true;
}

/* bob, bound through the stand-in as on another node, is online to the
 * application, and listed. */
static void remote_user_is_online(void **state)
{
    fixture *f = *state;
    int seen = 0;
    size_t total = 0;
    assert_int_equal(im_app_online_users(f->app, &f->alice, count_user, &seen, &total, NULL),
                     IM_OK);
    assert_int_equal(seen, 1);
    assert_int_equal(total, 2);
    assert_false(im_presence_is_online(&f->local.presence, "bob")); /* not on this node */
}

/* A message to bob goes to the stand-in's delivery, addressed by bob's
 * endpoint on the other node; alice's SendAck goes through this node's
 * replies and counts the delivery. */
static void message_to_remote_user_goes_by_endpoint(void **state)
{
    fixture *f = *state;
    assert_int_equal(im_app_send_private(f->app, &f->alice, &f->alice_ep, 9, "bob",
                                         (const uint8_t *)"over there", 10, "m-1", NULL),
                     IM_OK);
    assert_int_equal(f->cluster.nsent, 1);
    assert_int_equal(f->cluster.sent[0].ep.node, REMOTE_NODE);
    assert_true(f->cluster.sent[0].ep.node != LOCAL_NODE);
    assert_int_equal(f->cluster.sent[0].ep.conn_id, f->bob_remote.conn_id);
    assert_string_equal(f->cluster.sent[0].target, "bob");
    assert_string_equal(f->cluster.sent[0].body, "over there");
    assert_int_equal(f->local.ndelivered, 0);   /* nothing for this node's sessions */
    assert_int_equal(f->local.nanswers, 1);
    assert_int_equal(f->local.answers[0].rc, IM_OK);
    assert_int_equal(f->local.answers[0].request_id, 9);
    assert_int_equal(f->local.answers[0].ep.conn_id, f->alice_ep.conn_id);
    assert_int_equal(f->local.answers[0].res.delivered, 1);
}

/* bob logs in here while his session lives on the other node: with the
 * replace policy, the old session is kicked through the stand-in's
 * delivery, by its endpoint, and bob is bound here. */
static void replacing_login_kicks_the_remote_endpoint(void **state)
{
    fixture *f = *state;
    im_session bob;
    im_session_init(&bob, 2, 0);
    im_endpoint bob_here = { .node = LOCAL_NODE, .worker = 1, .conn_id = 2 };
    assert_int_equal(login(f, &bob, "bob", &bob_here), IM_OK);
    assert_int_equal(f->cluster.nkicked, 1);
    assert_int_equal(f->cluster.kicked[0].ep.node, REMOTE_NODE);
    assert_int_equal(f->cluster.kicked[0].ep.conn_id, f->bob_remote.conn_id);
    assert_int_equal(f->cluster.kicked[0].code, IM_EREPLACED);
    assert_int_equal(f->local.nkicked, 0);       /* nobody here was replaced */
    assert_true(im_presence_is_online(&f->local.presence, "bob"));
    assert_int_equal(f->cluster.nusers, 0);
    /* And a message to bob now stays on this node. */
    assert_int_equal(im_app_send_private(f->app, &f->alice, &f->alice_ep, 11, "bob",
                                         (const uint8_t *)"here now", 8, "m-2", NULL),
                     IM_OK);
    assert_int_equal(f->local.ndelivered, 1);
    assert_string_equal(f->local.delivered[0].to, "bob");
    assert_int_equal(f->cluster.nsent, 0);
    im_app_session_closed(f->app, &bob, &bob_here, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(remote_user_is_online, setup, teardown),
        cmocka_unit_test_setup_teardown(message_to_remote_user_goes_by_endpoint, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(replacing_login_kicks_the_remote_endpoint, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
