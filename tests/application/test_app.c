/* tests/application/test_app.c: the use cases against a recording router and
 * the in-memory store and group repository. */
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
#include "deferred_store.h"
#include "fault_store.h"
#include "im_memory_store.h"

typedef struct fixture {
    fake_router router;
    im_store *store;
    fault_store faults;
    im_group_repo *groups;
    im_app *app;
    im_session s[4];       /* alice, bob, carol, dave: logged in by setup */
    im_endpoint ep[4];
} fixture;

static uint64_t fixed_clock(void *arg)
{
    (void)arg;
    return 1700000000000ull;
}

static const char *names[] = { "alice", "bob", "carol", "dave" };

/* Logs s in at ep, which the fake router then reaches (with_session), as a
 * transport reaches its live sessions. */
static int login_as(fake_router *fr, im_app *app, im_session *s, const char *user,
                    const char *name, const im_endpoint *ep, im_error *err)
{
    if (ep->conn_id < FAKE_MAX)
        fr->sessions[ep->conn_id] = s;
    im_login_request req = { .user_id = user, .display_name = name };
    return im_app_login(app, s, &req, ep, 1, err);
}

static int make_app_with(fixture *f, const im_app_limits *limits)
{
    fake_router_init(&f->router);
    assert_int_equal(im_memory_store_new(&f->store, NULL), IM_OK);
    fault_store_init(&f->faults, f->store, 0, IM_EIO);
    assert_int_equal(im_memory_group_repo_new(&f->groups, NULL), IM_OK);
    im_app_ports ports = { FAKE_ROUTER_PORTS(&f->router), .store = &f->faults.base,
                           .groups = f->groups, .wall_clock_ms = fixed_clock };
    return im_app_new(limits, &ports, &f->app, NULL);
}

static int make_app(fixture *f, im_login_policy policy, uint32_t max_members)
{
    im_app_limits limits = { .max_body_bytes = 16, .max_group_members = max_members,
                             .login_policy = policy };
    return make_app_with(f, &limits);
}

/* alice, bob, carol and dave, logged in, with limits: made in the test
 * (cmocka takes back what test_calloc gave inside a test, so this is
 * plain calloc), freed by teardown_own. */
static fixture *fixture_with(const im_app_limits *limits)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(make_app_with(f, limits), IM_OK);
    for (int i = 0; i < 4; i++) {
        im_session_init(&f->s[i], (uint64_t)i + 1, 0);
        f->ep[i] = (im_endpoint){ .worker = 0, .conn_id = (uint64_t)i + 1 };
        assert_int_equal(login_as(&f->router, f->app, &f->s[i], names[i], "", &f->ep[i], NULL),
                         IM_OK);
    }
    f->router.nanswers = 0;
    return f;
}

static int setup(void **state)
{
    fixture *f = test_calloc(1, sizeof *f);
    assert_int_equal(make_app(f, IM_LOGIN_REPLACE, 3), IM_OK);
    for (int i = 0; i < 4; i++) {
        im_session_init(&f->s[i], (uint64_t)i + 1, 0);
        f->ep[i] = (im_endpoint){ .worker = 0, .conn_id = (uint64_t)i + 1 };
        assert_int_equal(login_as(&f->router, f->app, &f->s[i], names[i], "", &f->ep[i], NULL), IM_OK);
    }
    assert_int_equal(f->router.nanswers, 4); /* the LoginAcks */
    assert_int_equal(f->router.answers[0].rc, IM_OK);
    f->router.nanswers = 0;
    *state = f;
    return 0;
}

/* For the tests that make their own fixture with fixture_with(). */
static int setup_none(void **state)
{
    *state = NULL;
    return 0;
}


static void fixture_fini(fixture *f)
{
    im_app_free(f->app);
    f->groups->ops->destroy(f->groups);
    im_store_destroy(f->store);
}

static int teardown(void **state)
{
    fixture *f = *state;
    fixture_fini(f);
    test_free(f);
    return 0;
}

static int teardown_own(void **state)
{
    fixture *f = *state;
    if (f) {
        fixture_fini(f);
        free(f);
    }
    return 0;
}

/* The effective outcome of an asynchronous request: a refusal at once, or
 * the answer the app sent through the router. */
static int outcome(fixture *f, int rc, size_t answers_before, im_send_result *res)
{
    if (rc != IM_OK)
        return rc;
    assert_int_equal(f->router.nanswers, answers_before + 1);
    if (res && f->router.answers[answers_before].rc == IM_OK)
        *res = f->router.answers[answers_before].res;
    return f->router.answers[answers_before].rc;
}

static int send_text(fixture *f, int from, const char *to, const char *text, im_send_result *res,
                     im_error *err)
{
    size_t before = f->router.nanswers;
    int rc = im_app_send_private(f->app, &f->s[from], &f->ep[from], 7, to, (const uint8_t *)text,
                                 strlen(text), "cid", err);
    return outcome(f, rc, before, res);
}

static int create(fixture *f, int who, const char *group, uint32_t max)
{
    size_t before = f->router.nanswers;
    return outcome(f, im_app_group_create(f->app, &f->s[who], &f->ep[who], 3, group, max, NULL),
                   before, NULL);
}

static int join(fixture *f, int who, const char *group)
{
    size_t before = f->router.nanswers;
    return outcome(f, im_app_group_join(f->app, &f->s[who], &f->ep[who], 4, group, NULL), before,
                   NULL);
}

static int leave(fixture *f, int who, const char *group)
{
    size_t before = f->router.nanswers;
    return outcome(f, im_app_group_leave(f->app, &f->s[who], &f->ep[who], 5, group, NULL), before,
                   NULL);
}

static void test_new_refuses_missing_ports(void **state)
{
    (void)state;
    im_app_limits limits = { .max_body_bytes = 1, .max_group_members = 1 };
    im_app_ports ports = { 0 };
    im_app *app = (im_app *)&ports; /* must be reset to NULL */
    assert_int_equal(im_app_new(&limits, &ports, &app, NULL), IM_EINVAL);
    assert_null(app);
}

static void test_login_binds_and_names(void **state)
{
    fixture *f = *state;
    assert_int_equal(f->router.nbound, 4);
    assert_true(im_session_is_authenticated(&f->s[0]));
    assert_string_equal(f->s[0].display_name, "alice"); /* empty name takes the id */
}

static void test_login_twice_refused(void **state)
{
    fixture *f = *state;
    im_error err;
    assert_int_equal(login_as(&f->router, f->app, &f->s[0], "alice", "", &f->ep[0], &err), IM_ESTATE);
    assert_int_equal(f->router.nbound, 4);
}

static void test_login_bad_id_touches_nothing(void **state)
{
    fixture *f = *state;
    im_session s;
    im_session_init(&s, 9, 0);
    im_endpoint ep = { .conn_id = 9 };
    assert_int_equal(login_as(&f->router, f->app, &s, "bad id!", "", &ep, NULL), IM_EINVAL);
    assert_int_equal(login_as(&f->router, f->app, &s, "", "", &ep, NULL), IM_EINVAL);
    assert_int_equal(login_as(&f->router, f->app, &s, "zed", "bad\x01name", &ep, NULL), IM_EINVAL);
    assert_int_equal(f->router.nbound, 4);
    assert_false(im_session_is_authenticated(&s));
}

static void test_login_replace_kicks_old(void **state)
{
    fixture *f = *state;
    im_session s;
    im_session_init(&s, 9, 0);
    im_endpoint ep = { .conn_id = 9 };
    assert_int_equal(login_as(&f->router, f->app, &s, "alice", "A", &ep, NULL), IM_OK);
    assert_int_equal(f->router.nkicked, 1);
    assert_int_equal(f->router.kicked[0].ep.conn_id, 1);
    assert_int_equal(f->router.kicked[0].code, IM_EREPLACED);
    /* The old session closing late must not unbind the new one. */
    im_app_session_closed(f->app, &f->s[0], &f->ep[0], IM_EREPLACED);
    assert_true(im_presence_is_online(&f->router.presence, "alice"));
    assert_true(im_session_is_closed(&f->s[0]));
}

static void test_login_reject_policy(void **state)
{
    (void)state;
    fixture f;
    assert_int_equal(make_app(&f, IM_LOGIN_REJECT, 3), IM_OK);
    im_session a, b;
    im_endpoint ea = { .conn_id = 1 }, eb = { .conn_id = 2 };
    im_session_init(&a, 1, 0);
    im_session_init(&b, 2, 0);
    assert_int_equal(login_as(&f.router, f.app, &a, "alice", "", &ea, NULL), IM_OK);
    assert_int_equal(login_as(&f.router, f.app, &b, "alice", "", &eb, NULL), IM_EDUPLICATE);
    assert_false(im_session_is_authenticated(&b));
    assert_int_equal(f.router.nkicked, 0);
    im_app_free(f.app);
    f.groups->ops->destroy(f.groups);
    im_store_destroy(f.store);
}

static void test_session_closed_unbinds(void **state)
{
    fixture *f = *state;
    im_app_session_closed(f->app, &f->s[1], &f->ep[1], 0);
    assert_false(im_presence_is_online(&f->router.presence, "bob"));
    im_app_session_closed(f->app, &f->s[1], &f->ep[1], 0); /* twice is harmless */
    assert_int_equal(f->router.nbound, 3);
}

static void test_private_delivers_with_seq(void **state)
{
    fixture *f = *state;
    im_send_result r1, r2, r3;
    assert_int_equal(send_text(f, 0, "bob", "hi", &r1, NULL), IM_OK);
    assert_int_equal(send_text(f, 1, "alice", "yo", &r2, NULL), IM_OK);
    assert_int_equal(send_text(f, 0, "carol", "hey", &r3, NULL), IM_OK);
    assert_int_equal(r1.seq, 1);
    assert_int_equal(r2.seq, 2); /* same conversation, either direction */
    assert_int_equal(r3.seq, 1); /* another conversation */
    assert_int_equal(r1.server_time_ms, 1700000000000ull);
    assert_int_equal(f->router.ndelivered, 3);
    assert_string_equal(f->router.delivered[0].to, "bob");
    assert_string_equal(f->router.delivered[0].from, "alice");
    assert_string_equal(f->router.delivered[0].body, "hi");
}

static void test_private_refusals(void **state)
{
    fixture *f = *state;
    im_send_result r;
    im_error err;
    assert_int_equal(send_text(f, 0, "nobody", "hi", &r, &err), IM_EOFFLINE);
    assert_non_null(strstr(err.msg, "nobody"));
    assert_int_equal(send_text(f, 0, "alice", "hi", &r, NULL), IM_EINVAL); /* to self */
    assert_int_equal(send_text(f, 0, "bob", "", &r, NULL), IM_EINVAL);
    assert_int_equal(send_text(f, 0, "bob", "0123456789abcdefX", &r, NULL), IM_ETOOBIG);
    assert_int_equal(send_text(f, 0, "b@d", "hi", &r, NULL), IM_EINVAL);
    /* Every message needs its client_msg_id, refused before the store. */
    assert_int_equal(im_app_send_private(f->app, &f->s[0], &f->ep[0], 1, "bob",
                                         (const uint8_t *)"x", 1, "", &err), IM_EINVAL);
    assert_non_null(strstr(err.msg, "client_msg_id"));
    assert_int_equal(im_app_send_group(f->app, &f->s[0], &f->ep[0], 1, "room",
                                       (const uint8_t *)"x", 1, NULL, &err), IM_EINVAL);
    im_session anon;
    im_session_init(&anon, 9, 0);
    im_endpoint ep = { .conn_id = 9 };
    assert_int_equal(im_app_send_private(f->app, &anon, &ep, 1, "bob", (const uint8_t *)"x", 1,
                                         "", NULL), IM_ENOTAUTH);
    assert_int_equal(f->router.ndelivered, 0);
    /* Refusals take no seq: the next message is still the first. */
    assert_int_equal(send_text(f, 0, "bob", "ok", &r, NULL), IM_OK);
    assert_int_equal(r.seq, 1);
}

static void test_private_store_failure(void **state)
{
    fixture *f = *state;
    im_send_result r;
    im_error err;
    f->faults.fail_from = 2;
    assert_int_equal(send_text(f, 0, "bob", "one", &r, NULL), IM_OK);
    assert_int_equal(send_text(f, 0, "bob", "two", &r, &err), IM_EIO);
    assert_int_equal(f->router.ndelivered, 1); /* the failed one went nowhere */
    /* The sender is answered with an error that names its message. */
    assert_false(f->router.answers[1].res.seq);
    assert_string_equal(f->router.answers[1].client_msg_id, "cid");
    assert_int_equal(f->router.answers[1].request_id, 7);
}

static void test_private_delivery_failure(void **state)
{
    fixture *f = *state;
    im_send_result r;
    f->router.fail_deliver = IM_EBUSY;
    assert_int_equal(send_text(f, 0, "bob", "one", &r, NULL), IM_EBUSY);
}

static int group_send(fixture *f, int from, const char *group, const char *text,
                      im_send_result *res)
{
    size_t before = f->router.nanswers;
    int rc = im_app_send_group(f->app, &f->s[from], &f->ep[from], 8, group,
                               (const uint8_t *)text, strlen(text), "g", NULL);
    return outcome(f, rc, before, res);
}

static void test_group_lifecycle(void **state)
{
    fixture *f = *state;
    im_send_result r;
    assert_int_equal(create(f, 0, "room", 0), IM_OK);
    assert_int_equal(create(f, 1, "room", 0), IM_EEXIST);
    assert_int_equal(join(f, 1, "room"), IM_OK);
    assert_int_equal(join(f, 1, "room"), IM_EMEMBER);
    assert_int_equal(join(f, 2, "room"), IM_OK);
    assert_int_equal(join(f, 3, "room"), IM_EFULL); /* limit 3 */
    assert_int_equal(join(f, 3, "nope"), IM_ENOGROUP);

    assert_int_equal(group_send(f, 0, "room", "hello", &r), IM_OK);
    assert_int_equal(r.seq, 1);
    assert_int_equal(r.delivered, 2);
    assert_int_equal(f->router.ndelivered, 2);
    assert_string_equal(f->router.delivered[0].to, "bob");
    assert_string_equal(f->router.delivered[1].to, "carol");

    assert_int_equal(group_send(f, 3, "room", "intruder", &r), IM_ENOTMEMBER);
    assert_int_equal(group_send(f, 3, "nope", "x", &r), IM_ENOGROUP);
    assert_int_equal(leave(f, 3, "room"), IM_ENOTMEMBER);

    assert_int_equal(leave(f, 1, "room"), IM_OK);
    f->router.ndelivered = 0;
    assert_int_equal(group_send(f, 0, "room", "again", &r), IM_OK);
    assert_int_equal(r.seq, 2);
    assert_int_equal(f->router.ndelivered, 1);
    assert_string_equal(f->router.delivered[0].to, "carol");
}

static void test_group_offline_members_skipped(void **state)
{
    fixture *f = *state;
    im_send_result r;
    assert_int_equal(create(f, 0, "room", 0), IM_OK);
    assert_int_equal(join(f, 1, "room"), IM_OK);
    im_app_session_closed(f->app, &f->s[1], &f->ep[1], 0);
    assert_int_equal(group_send(f, 0, "room", "hello", &r), IM_OK);
    assert_int_equal(r.delivered, 0);
}

static void test_group_emptied_is_deleted(void **state)
{
    fixture *f = *state;
    assert_int_equal(create(f, 0, "room", 2), IM_OK);
    assert_int_equal(leave(f, 0, "room"), IM_OK);
    assert_int_equal(join(f, 1, "room"), IM_ENOGROUP);
    assert_int_equal(create(f, 1, "room", 2), IM_OK);
}

static void test_group_create_limits(void **state)
{
    fixture *f = *state;
    assert_int_equal(create(f, 0, "big", 4), IM_EINVAL);
    assert_int_equal(create(f, 0, "b d", 0), IM_EINVAL);
    im_session anon;
    im_session_init(&anon, 9, 0);
    im_endpoint ep = { .conn_id = 9 };
    assert_int_equal(im_app_group_create(f->app, &anon, &ep, 1, "room", 0, NULL), IM_ENOTAUTH);
}

struct seen { char ids[8][IM_USER_ID_MAX + 1]; int n; bool member[8]; };

static bool see_group(void *arg, const im_group_info *gi)
{
    struct seen *s = arg;
    snprintf(s->ids[s->n], sizeof s->ids[0], "%s", gi->id);
    s->member[s->n++] = gi->is_member;
    return true;
}

static bool see_user(void *arg, const char *id, const char *name)
{
    (void)name;
    struct seen *s = arg;
    snprintf(s->ids[s->n++], sizeof s->ids[0], "%s", id);
    return s->n < 2; /* stop early after two */
}

static void test_listings(void **state)
{
    fixture *f = *state;
    assert_int_equal(create(f, 0, "zeta", 0), IM_OK);
    assert_int_equal(create(f, 1, "alpha", 0), IM_OK);
    struct seen groups = { 0 };
    size_t total = 0;
    assert_int_equal(im_app_group_list(f->app, &f->s[0], see_group, &groups, &total, NULL), IM_OK);
    assert_int_equal(total, 2);
    assert_string_equal(groups.ids[0], "alpha"); /* in id order */
    assert_false(groups.member[0]);
    assert_true(groups.member[1]);

    struct seen users = { 0 };
    assert_int_equal(im_app_online_users(f->app, &f->s[0], see_user, &users, &total, NULL), IM_OK);
    assert_int_equal(total, 4);
    assert_int_equal(users.n, 2);
    im_session anon;
    im_session_init(&anon, 9, 0);
    assert_int_equal(im_app_online_users(f->app, &anon, see_user, &users, &total, NULL),
                     IM_ENOTAUTH);
}

/* A page: the ids fn was handed and took, up to stop_after of them. */
struct page { char ids[8][IM_USER_ID_MAX + 1]; char names[8][IM_DISPLAY_NAME_MAX + 1];
              int n; int stop_after; bool member[8]; };

static bool page_group(void *arg, const im_group_info *gi)
{
    struct page *p = arg;
    if (p->n == p->stop_after)
        return false;
    snprintf(p->ids[p->n], sizeof p->ids[0], "%s", gi->id);
    p->member[p->n++] = gi->is_member;
    return true;
}

static bool page_user(void *arg, const char *id, const char *name)
{
    struct page *p = arg;
    if (p->n == p->stop_after)
        return false;
    snprintf(p->names[p->n], sizeof p->names[0], "%s", name);
    snprintf(p->ids[p->n++], sizeof p->ids[0], "%s", id);
    return true;
}

static bool copy_info(void *arg, const im_group_info *gi)
{
    *(im_group_info *)arg = *gi;
    return true;
}

/* History into a page: the bodies, in order. */
static bool history_one(void *arg, const im_message *m)
{
    struct page *p = arg;
    if (p->n == p->stop_after)
        return false;
    snprintf(p->ids[p->n++], sizeof p->ids[0], "%.*s", (int)m->body_len, (const char *)m->body);
    return true;
}

static void test_group_pages(void **state)
{
    fixture *f = *state;
    static const char *ids[] = { "echo", "alpha", "delta", "bravo", "charlie" };
    for (int i = 0; i < 5; i++)
        assert_int_equal(create(f, i == 2 ? 0 : 1, ids[i], 0), IM_OK);
    size_t total = 0;
    bool more = false;
    struct page p = { .stop_after = 8 };
    assert_int_equal(im_app_group_list_page(f->app, &f->s[0], "", 2, page_group, &p, &total,
                                            &more, NULL), IM_OK);
    assert_int_equal(total, 5);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.ids[0], "alpha");
    assert_string_equal(p.ids[1], "bravo");
    assert_true(more);
    p = (struct page){ .stop_after = 8 };
    assert_int_equal(im_app_group_list_page(f->app, &f->s[0], "bravo", 2, page_group, &p, &total,
                                            &more, NULL), IM_OK);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.ids[0], "charlie");
    assert_string_equal(p.ids[1], "delta");
    assert_true(p.member[1]); /* alice created delta */
    assert_false(p.member[0]);
    assert_true(more);
    /* The last page says so, even when it is exactly full. */
    p = (struct page){ .stop_after = 8 };
    assert_int_equal(im_app_group_list_page(f->app, &f->s[0], "delta", 1, page_group, &p, &total,
                                            &more, NULL), IM_OK);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.ids[0], "echo");
    assert_false(more);
    /* fn ends the page: what it refused is left for the next, and more is set. */
    p = (struct page){ .stop_after = 3 };
    assert_int_equal(im_app_group_list_page(f->app, &f->s[0], NULL, 0, page_group, &p, &total,
                                            &more, NULL), IM_OK);
    assert_int_equal(p.n, 3);
    assert_string_equal(p.ids[2], "charlie");
    assert_true(more);
    p = (struct page){ .stop_after = 8 };
    assert_int_equal(im_app_group_list_page(f->app, &f->s[0], "echo", 0, page_group, &p, &total,
                                            &more, NULL), IM_OK);
    assert_int_equal(p.n, 0);
    assert_false(more);
    im_session anon;
    im_session_init(&anon, 9, 0);
    assert_int_equal(im_app_group_list_page(f->app, &anon, "", 0, page_group, &p, &total, &more,
                                            NULL), IM_ENOTAUTH);
}

/* A user may have created at most max_groups_per_user groups that still
 * exist; a group counts against its creator until it is deleted, whoever
 * owns it by then (ownership passes on as members leave, so counting
 * owners would let two accounts make groups without end). */
static void test_group_quota(void **state)
{
    im_app_limits limits = { .max_body_bytes = 16, .max_group_members = 10,
                             .max_groups_per_user = 2 };
    fixture *f = fixture_with(&limits);
    *state = f;
    im_error err = { 0 };
    assert_int_equal(create(f, 0, "one", 0), IM_OK);
    assert_int_equal(create(f, 0, "two", 0), IM_OK);
    size_t before = f->router.nanswers;
    assert_int_equal(im_app_group_create(f->app, &f->s[0], &f->ep[0], 3, "three", 0, &err),
                     IM_EQUOTA);
    assert_int_equal(f->router.nanswers, before); /* refused at once, for the caller */
    assert_non_null(strstr(err.msg, "alice"));
    assert_int_equal(join(f, 1, "three"), IM_ENOGROUP); /* nothing was made */
    assert_int_equal(create(f, 1, "three", 0), IM_OK);  /* bob has his own count */
    /* alice leaves "one" to bob: it still counts against her. */
    assert_int_equal(join(f, 1, "one"), IM_OK);
    assert_int_equal(leave(f, 0, "one"), IM_OK);
    assert_int_equal(create(f, 0, "four", 0), IM_EQUOTA);
    /* Deleted (its last member left), a group frees its creator's place. */
    assert_int_equal(leave(f, 0, "two"), IM_OK);
    assert_int_equal(create(f, 0, "four", 0), IM_OK);
}

/* Group requests draw on the session's send bucket, one token each, as
 * messages do; the clock here stands still, so nothing refills. */
static void test_group_requests_are_rate_limited(void **state)
{
    im_app_limits limits = { .max_body_bytes = 16, .max_group_members = 10, .send_rate = 1,
                             .send_burst = 4 };
    fixture *f = fixture_with(&limits);
    *state = f;
    im_error err = { 0 };
    size_t total = 0;
    bool more = false;
    struct page p = { .stop_after = 8 };
    assert_int_equal(create(f, 0, "room", 0), IM_OK);
    assert_int_equal(im_app_group_list_page(f->app, &f->s[0], "", 0, page_group, &p, &total,
                                            &more, NULL), IM_OK);
    assert_int_equal(join(f, 0, "room"), IM_EMEMBER); /* refused, but it was a request */
    assert_int_equal(leave(f, 0, "room"), IM_OK);
    /* The bucket is empty: every kind of group request is refused now. */
    size_t before = f->router.nanswers;
    assert_int_equal(im_app_group_create(f->app, &f->s[0], &f->ep[0], 3, "again", 0, &err),
                     IM_ERATE);
    assert_non_null(strstr(err.msg, "1"));
    assert_int_equal(im_app_group_join(f->app, &f->s[0], &f->ep[0], 4, "room", NULL), IM_ERATE);
    assert_int_equal(im_app_group_leave(f->app, &f->s[0], &f->ep[0], 5, "room", NULL), IM_ERATE);
    assert_int_equal(im_app_group_list_page(f->app, &f->s[0], "", 0, page_group, &p, &total,
                                            &more, NULL), IM_ERATE);
    assert_int_equal(im_app_group_list(f->app, &f->s[0], page_group, &p, &total, NULL),
                     IM_ERATE);
    assert_int_equal(f->router.nanswers, before);
    /* One bucket for messages and group requests alike. */
    assert_int_equal(send_text(f, 0, "bob", "hi", NULL, NULL), IM_ERATE);
    /* Another session has its own bucket. */
    assert_int_equal(create(f, 1, "bobs", 0), IM_OK);
}

/* ---- private groups and owners ---- */

static int create_flags(fixture *f, int who, const char *group, unsigned flags)
{
    size_t before = f->router.nanswers;
    return outcome(f, im_app_group_create_flags(f->app, &f->s[who], &f->ep[who], 3, group, 0,
                                                flags, NULL),
                   before, NULL);
}

static int invite(fixture *f, int who, const char *group, const char *user)
{
    size_t before = f->router.nanswers;
    return outcome(f, im_app_group_invite(f->app, &f->s[who], &f->ep[who], 6, group, user, NULL),
                   before, NULL);
}

static int kick(fixture *f, int who, const char *group, const char *user)
{
    size_t before = f->router.nanswers;
    return outcome(f, im_app_group_kick(f->app, &f->s[who], &f->ep[who], 7, group, user, NULL),
                   before, NULL);
}

static int transfer(fixture *f, int who, const char *group, const char *user)
{
    size_t before = f->router.nanswers;
    return outcome(f, im_app_group_transfer(f->app, &f->s[who], &f->ep[who], 8, group, user,
                                            NULL),
                   before, NULL);
}

static int delete_group(fixture *f, int who, const char *group)
{
    size_t before = f->router.nanswers;
    return outcome(f, im_app_group_delete(f->app, &f->s[who], &f->ep[who], 9, group, NULL),
                   before, NULL);
}

/* The groups who sees, one page, and how many there are for them. */
static size_t listed_for(fixture *f, int who, struct page *p)
{
    *p = (struct page){ .stop_after = 8 };
    size_t total = 0;
    bool more = false;
    assert_int_equal(im_app_group_list_page(f->app, &f->s[who], "", 0, page_group, p, &total,
                                            &more, NULL), IM_OK);
    return total;
}

/* The notices handed to the router since index from. */
static size_t notices_since(const fixture *f, size_t from, const fake_delivery **last)
{
    size_t n = 0;
    for (size_t i = from; i < f->router.ndelivered; i++)
        if (f->router.delivered[i].kind == IM_MESSAGE_NOTICE) {
            n++;
            *last = &f->router.delivered[i];
        }
    return n;
}

static void expect_notice(const fixture *f, size_t from, const char *to, const char *event,
                          const char *text)
{
    const fake_delivery *d = NULL;
    assert_int_equal(notices_since(f, from, &d), 1);
    assert_string_equal(d->to, to);
    assert_string_equal(d->event, event);
    assert_string_equal(d->target, "club");
    assert_int_equal(d->seq, 0);
    assert_non_null(strstr(d->body, text));
}

/* A private group from its creation to its deletion: who sees it, who may
 * join, what only the owner may do, and who is told. */
static void test_private_group(void **state)
{
    fixture *f = *state;
    struct page p;
    im_send_result r;
    assert_int_equal(create_flags(f, 0, "club", IM_GROUP_PRIVATE), IM_OK);
    assert_int_equal(create(f, 0, "pub", 0), IM_OK);
    /* To bob it does not exist. */
    assert_int_equal(join(f, 1, "club"), IM_ENOGROUP);
    assert_int_equal(listed_for(f, 1, &p), 1);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.ids[0], "pub");
    assert_int_equal(invite(f, 1, "club", "carol"), IM_ENOGROUP);
    assert_int_equal(group_send(f, 1, "club", "hi", &r), IM_ENOGROUP);
    assert_int_equal(listed_for(f, 0, &p), 2);

    /* Invited, bob sees it and is told; then he may join. */
    size_t mark = f->router.ndelivered;
    assert_int_equal(invite(f, 0, "club", "bob"), IM_OK);
    expect_notice(f, mark, "bob", IM_NOTICE_INVITED, "alice invited you");
    assert_int_equal(listed_for(f, 1, &p), 2);
    assert_string_equal(p.ids[0], "club");
    assert_int_equal(invite(f, 1, "club", "carol"), IM_EPERM);
    assert_int_equal(invite(f, 0, "pub", "carol"), IM_EINVAL); /* public: anyone joins */
    assert_false(p.member[0]);
    assert_int_equal(join(f, 1, "club"), IM_OK);
    assert_int_equal(join(f, 2, "club"), IM_ENOGROUP);
    assert_int_equal(group_send(f, 1, "club", "hi", &r), IM_OK);
    assert_int_equal(r.delivered, 1);

    /* Removed, bob is told, and the group is gone for him again. */
    mark = f->router.ndelivered;
    assert_int_equal(kick(f, 1, "club", "alice"), IM_EPERM);
    assert_int_equal(kick(f, 0, "club", "alice"), IM_EINVAL);
    assert_int_equal(kick(f, 0, "club", "bob"), IM_OK);
    expect_notice(f, mark, "bob", IM_NOTICE_REMOVED, "alice removed you");
    assert_int_equal(f->faults.changes[(f->faults.nchanges - 1) % 16], IM_GROUP_CHANGE_LEAVE);
    assert_int_equal(group_send(f, 1, "club", "hi", &r), IM_ENOGROUP);
    assert_int_equal(join(f, 1, "club"), IM_ENOGROUP);
    assert_int_equal(listed_for(f, 1, &p), 1);

    /* An invitation withdrawn is a kick too. */
    assert_int_equal(invite(f, 0, "club", "carol"), IM_OK);
    mark = f->router.ndelivered;
    assert_int_equal(kick(f, 0, "club", "carol"), IM_OK);
    expect_notice(f, mark, "carol", IM_NOTICE_REMOVED, "withdrew your invitation");
    assert_int_equal(f->faults.changes[(f->faults.nchanges - 1) % 16], IM_GROUP_CHANGE_UNINVITE);
    assert_int_equal(join(f, 2, "club"), IM_ENOGROUP);
    assert_int_equal(kick(f, 0, "club", "carol"), IM_ENOTMEMBER);

    /* Handed over: bob owns it, alice no longer may invite. */
    assert_int_equal(invite(f, 0, "club", "bob"), IM_OK);
    assert_int_equal(join(f, 1, "club"), IM_OK);
    assert_int_equal(transfer(f, 0, "club", "carol"), IM_ENOTMEMBER);
    mark = f->router.ndelivered;
    assert_int_equal(transfer(f, 0, "club", "bob"), IM_OK);
    expect_notice(f, mark, "bob", IM_NOTICE_OWNER, "made you the owner");
    assert_int_equal(invite(f, 0, "club", "dave"), IM_EPERM);
    assert_int_equal(invite(f, 1, "club", "dave"), IM_OK);
    assert_int_equal(listed_for(f, 3, &p), 2);

    /* Deleted by its owner: members and the invited are told; the id is free. */
    assert_int_equal(delete_group(f, 0, "club"), IM_EPERM);
    assert_int_equal(delete_group(f, 2, "club"), IM_ENOGROUP);
    mark = f->router.ndelivered;
    assert_int_equal(delete_group(f, 1, "club"), IM_OK);
    const fake_delivery *d = NULL;
    assert_int_equal(notices_since(f, mark, &d), 2); /* alice and dave, not bob */
    assert_string_equal(f->router.delivered[mark].to, "alice");
    assert_string_equal(f->router.delivered[mark].event, IM_NOTICE_DELETED);
    assert_string_equal(d->to, "dave");
    assert_int_equal(join(f, 3, "club"), IM_ENOGROUP);
    assert_int_equal(listed_for(f, 0, &p), 1);
    assert_int_equal(delete_group(f, 1, "club"), IM_ENOGROUP);
    assert_int_equal(create(f, 2, "club", 0), IM_OK);
}

/* What the listing says of each group, for each user. */
static void test_private_group_listing(void **state)
{
    fixture *f = *state;
    assert_int_equal(create_flags(f, 0, "club", IM_GROUP_PRIVATE | IM_GROUP_SHARE_HISTORY),
                     IM_OK);
    assert_int_equal(invite(f, 0, "club", "bob"), IM_OK);
    size_t total = 0;
    im_group_info got = { 0 };
    assert_int_equal(im_app_group_list(f->app, &f->s[1], copy_info, &got, &total, NULL), IM_OK);
    assert_true(got.is_private);
    assert_true(got.is_invited);
    assert_true(got.shares_history);
    assert_false(got.is_member);
    assert_int_equal(got.members, 1);
    assert_int_equal(im_app_group_list(f->app, &f->s[2], copy_info, &got, &total, NULL), IM_OK);
    assert_int_equal(total, 0);
}

/* A change the store fails is undone in memory exactly. */
static void test_owner_changes_undone_when_store_fails(void **state)
{
    fixture *f = *state;
    struct page p;
    assert_int_equal(create_flags(f, 0, "club", IM_GROUP_PRIVATE), IM_OK);
    assert_int_equal(invite(f, 0, "club", "bob"), IM_OK);
    assert_int_equal(join(f, 1, "club"), IM_OK);
    f->faults.code = IM_EIO;

    f->faults.fail_from = 1, f->faults.calls = 0;
    assert_int_equal(invite(f, 0, "club", "carol"), IM_EIO);
    f->faults.fail_from = 0;
    assert_int_equal(join(f, 2, "club"), IM_ENOGROUP); /* no invitation left behind */
    assert_int_equal(listed_for(f, 2, &p), 0);

    f->faults.fail_from = 1, f->faults.calls = 0;
    assert_int_equal(kick(f, 0, "club", "bob"), IM_EIO);
    f->faults.fail_from = 0;
    assert_int_equal(join(f, 1, "club"), IM_EMEMBER); /* still in */

    f->faults.fail_from = 1, f->faults.calls = 0;
    assert_int_equal(transfer(f, 0, "club", "bob"), IM_EIO);
    f->faults.fail_from = 0;
    assert_int_equal(invite(f, 1, "club", "dave"), IM_EPERM); /* alice still owns it */

    assert_int_equal(invite(f, 0, "club", "dave"), IM_OK);
    size_t mark = f->router.ndelivered;
    f->faults.fail_from = 1, f->faults.calls = 0;
    assert_int_equal(delete_group(f, 0, "club"), IM_EIO);
    f->faults.fail_from = 0;
    const fake_delivery *d = NULL;
    assert_int_equal(notices_since(f, mark, &d), 0); /* nobody told of what did not happen */
    assert_int_equal(listed_for(f, 3, &p), 1);       /* back, dave still invited */
    assert_int_equal(join(f, 1, "club"), IM_EMEMBER);

    /* A join the store fails gives the invitation back. */
    f->faults.fail_from = 1, f->faults.calls = 0;
    assert_int_equal(join(f, 3, "club"), IM_EIO);
    f->faults.fail_from = 0;
    assert_int_equal(join(f, 3, "club"), IM_OK);

    /* A store that refuses at once: undone, and the refusal is the caller's. */
    f->faults.fail_from = 1, f->faults.calls = 0, f->faults.at_once = true;
    f->faults.code = IM_ESHUTDOWN;
    size_t answers = f->router.nanswers;
    assert_int_equal(im_app_group_kick(f->app, &f->s[0], &f->ep[0], 7, "club", "bob", NULL),
                     IM_ESHUTDOWN);
    assert_int_equal(im_app_group_delete(f->app, &f->s[0], &f->ep[0], 9, "club", NULL),
                     IM_ESHUTDOWN);
    assert_int_equal(f->router.nanswers, answers);
    f->faults.fail_from = 0;
    assert_int_equal(join(f, 1, "club"), IM_EMEMBER);
    assert_int_equal(listed_for(f, 3, &p), 1);
}

/* A member reads the history from the join on, unless the group shares it. */
static void test_history_from_the_join(void **state)
{
    fixture *f = *state;
    f->faults.keep_history = true;
    im_send_result r;
    struct page hp;
    assert_int_equal(create(f, 0, "room", 0), IM_OK);
    assert_int_equal(create_flags(f, 0, "open", IM_GROUP_SHARE_HISTORY), IM_OK);
    assert_int_equal(group_send(f, 0, "room", "one", &r), IM_OK);
    assert_int_equal(group_send(f, 0, "room", "two", &r), IM_OK);
    assert_int_equal(group_send(f, 0, "open", "uno", &r), IM_OK);
    assert_int_equal(join(f, 1, "room"), IM_OK);
    assert_int_equal(join(f, 1, "open"), IM_OK);
    assert_int_equal(group_send(f, 0, "room", "three", &r), IM_OK);

    hp = (struct page){ .stop_after = 8 };
    assert_int_equal(im_app_history(f->app, &f->s[1], "", "room", 0, 0, history_one, &hp, NULL),
                     IM_OK);
    assert_int_equal(hp.n, 1);
    assert_string_equal(hp.ids[0], "three");
    /* Paging back past the join gives nothing, without a read. */
    hp = (struct page){ .stop_after = 8 };
    assert_int_equal(im_app_history(f->app, &f->s[1], "", "room", 3, 0, history_one, &hp, NULL),
                     IM_OK);
    assert_int_equal(hp.n, 0);
    /* The creator reads it all; a shared history is everyone's. */
    hp = (struct page){ .stop_after = 8 };
    assert_int_equal(im_app_history(f->app, &f->s[0], "", "room", 0, 0, history_one, &hp, NULL),
                     IM_OK);
    assert_int_equal(hp.n, 3);
    hp = (struct page){ .stop_after = 8 };
    assert_int_equal(im_app_history(f->app, &f->s[1], "", "open", 0, 0, history_one, &hp, NULL),
                     IM_OK);
    assert_int_equal(hp.n, 1);
    assert_string_equal(hp.ids[0], "uno");
    /* Leaving and joining again starts a new since. */
    assert_int_equal(leave(f, 1, "room"), IM_OK);
    assert_int_equal(group_send(f, 0, "room", "four", &r), IM_OK);
    assert_int_equal(join(f, 1, "room"), IM_OK);
    hp = (struct page){ .stop_after = 8 };
    assert_int_equal(im_app_history(f->app, &f->s[1], "", "room", 0, 0, history_one, &hp, NULL),
                     IM_OK);
    assert_int_equal(hp.n, 0);
    /* Not a member: as before, or no such group for a private one. */
    assert_int_equal(im_app_history(f->app, &f->s[2], "", "room", 0, 0, history_one, &hp, NULL),
                     IM_ENOTMEMBER);
    assert_int_equal(create_flags(f, 0, "club", IM_GROUP_PRIVATE), IM_OK);
    assert_int_equal(im_app_history(f->app, &f->s[2], "", "club", 0, 0, history_one, &hp, NULL),
                     IM_ENOGROUP);
}

/* A store built before group_change: groups as the first release kept them. */
static void test_store_without_group_change(void **state)
{
    (void)state;
    fixture f;
    memset(&f, 0, sizeof f);
    fake_router_init(&f.router);
    assert_int_equal(im_memory_store_new(&f.store, NULL), IM_OK);
    fault_store_init(&f.faults, f.store, 0, IM_EIO);
    fault_store_without_group_change(&f.faults);
    assert_int_equal(im_memory_group_repo_new(&f.groups, NULL), IM_OK);
    im_app_limits limits = { .max_body_bytes = 16, .max_group_members = 5 };
    im_app_ports ports = { FAKE_ROUTER_PORTS(&f.router), .store = &f.faults.base,
                           .groups = f.groups, .wall_clock_ms = fixed_clock };
    assert_int_equal(im_app_new(&limits, &ports, &f.app, NULL), IM_OK);
    for (int i = 0; i < 2; i++) {
        im_session_init(&f.s[i], (uint64_t)i + 1, 0);
        f.ep[i] = (im_endpoint){ .conn_id = (uint64_t)i + 1 };
        assert_int_equal(login_as(&f.router, f.app, &f.s[i], names[i], "", &f.ep[i], NULL),
                         IM_OK);
    }
    f.router.nanswers = 0;
    im_error err = { 0 };
    assert_int_equal(im_app_group_create_flags(f.app, &f.s[0], &f.ep[0], 1, "club", 0,
                                               IM_GROUP_PRIVATE, &err), IM_EUNSUPPORTED);
    assert_int_equal(create(&f, 0, "room", 0), IM_OK);
    assert_int_equal(join(&f, 1, "room"), IM_OK);
    im_group_info got = { 0 };
    size_t total = 0;
    assert_int_equal(im_app_group_list(f.app, &f.s[1], copy_info, &got, &total, NULL), IM_OK);
    assert_true(got.shares_history); /* what such a store keeps */
    assert_int_equal(invite(&f, 0, "room", "carol"), IM_EUNSUPPORTED);
    assert_int_equal(kick(&f, 0, "room", "bob"), IM_EUNSUPPORTED);
    assert_int_equal(transfer(&f, 0, "room", "bob"), IM_EUNSUPPORTED);
    assert_int_equal(delete_group(&f, 0, "room"), IM_EUNSUPPORTED);
    assert_int_equal(f.faults.nchanges, 0); /* group_change never called */
    assert_int_equal(leave(&f, 1, "room"), IM_OK);
    im_app_free(f.app);
    f.groups->ops->destroy(f.groups);
    im_store_destroy(f.store);
}

/* Stored groups come back with everything: flags, owner, creator, each
 * member's since and the invitations; and the domain judges them. */
static void test_loads_private_groups(void **state)
{
    (void)state;
    static const char *const members[] = { "alice", "bob" };
    static const uint64_t since[] = { 0, 4 };
    static const char *const invited[] = { "carol" };
    im_group_record recs[2] = {
        { .id = "club", .max_members = 5, .members = members, .nmembers = 2, .owner = "bob",
          .creator = "alice", .flags = IM_STORE_GROUP_PRIVATE, .since = since,
          .invited = invited, .ninvited = 1 },
        { .id = "pub", .max_members = 5, .members = members, .nmembers = 1 },
    };
    fixture f;
    memset(&f, 0, sizeof f);
    fake_router_init(&f.router);
    assert_int_equal(im_memory_store_new(&f.store, NULL), IM_OK);
    fault_store_init(&f.faults, f.store, 0, IM_EIO);
    f.faults.records = recs;
    f.faults.nrecords = 2;
    assert_int_equal(im_memory_group_repo_new(&f.groups, NULL), IM_OK);
    im_app_limits limits = { .max_body_bytes = 16, .max_group_members = 5 };
    im_app_ports ports = { FAKE_ROUTER_PORTS(&f.router), .store = &f.faults.base,
                           .groups = f.groups, .wall_clock_ms = fixed_clock };
    assert_int_equal(im_app_new(&limits, &ports, &f.app, NULL), IM_OK);
    for (int i = 0; i < 4; i++) {
        im_session_init(&f.s[i], (uint64_t)i + 1, 0);
        f.ep[i] = (im_endpoint){ .conn_id = (uint64_t)i + 1 };
        assert_int_equal(login_as(&f.router, f.app, &f.s[i], names[i], "", &f.ep[i], NULL),
                         IM_OK);
    }
    f.router.nanswers = 0;
    struct page p;
    assert_int_equal(listed_for(&f, 2, &p), 2);   /* carol: invited */
    assert_int_equal(listed_for(&f, 3, &p), 1);   /* dave: only the public one */
    assert_int_equal(invite(&f, 0, "club", "dave"), IM_EPERM); /* bob owns it */
    assert_int_equal(invite(&f, 1, "club", "dave"), IM_OK);
    assert_int_equal(join(&f, 2, "club"), IM_OK);
    im_app_free(f.app);
    f.groups->ops->destroy(f.groups);

    /* A record the domain refuses (an owner who is no member) stops the start. */
    recs[0].owner = "zed";
    assert_int_equal(im_memory_group_repo_new(&f.groups, NULL), IM_OK);
    ports.groups = f.groups;
    f.faults.nrecords = 1;
    im_error err = { 0 };
    assert_int_equal(im_app_new(&limits, &ports, &f.app, &err), IM_EIO);
    f.groups->ops->destroy(f.groups);
    im_store_destroy(f.store);
}

static void test_online_user_pages(void **state)
{
    fixture *f = *state;
    /* More users, bound in no order: the router lists them as bound. */
    static const char *more_ids[] = { "zed", "ann", "mia" };
    im_session extra[3];
    for (int i = 0; i < 3; i++) {
        im_session_init(&extra[i], 10 + (uint64_t)i, 0);
        im_endpoint ep = { .conn_id = 10 + (uint64_t)i };
        assert_int_equal(login_as(&f->router, f->app, &extra[i], more_ids[i], "Name", &ep, NULL),
                         IM_OK);
    }
    /* In id order: alice ann bob carol dave mia zed. */
    static const char *order[] = { "alice", "ann", "bob", "carol", "dave", "mia", "zed" };
    char after[IM_USER_ID_MAX + 1] = "";
    int seen = 0, pages = 0;
    bool more = true;
    while (more) {
        struct page p = { .stop_after = 8 };
        size_t total = 0;
        assert_int_equal(im_app_online_users_page(f->app, &f->s[0], after, 3, page_user, &p,
                                                  &total, &more, NULL), IM_OK);
        assert_int_equal(total, 7);
        assert_true(p.n <= 3);
        for (int i = 0; i < p.n; i++)
            assert_string_equal(p.ids[i], order[seen++]);
        if (p.n)
            snprintf(after, sizeof after, "%s", p.ids[p.n - 1]);
        assert_true(++pages <= 3);
    }
    assert_int_equal(seen, 7);
    assert_int_equal(pages, 3); /* 3 + 3 + 1 */

    /* fn ends the page early: more, and the next page starts at the refused one. */
    struct page p = { .stop_after = 2 };
    size_t total = 0;
    assert_int_equal(im_app_online_users_page(f->app, &f->s[0], "bob", 0, page_user, &p, &total,
                                              &more, NULL), IM_OK);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.ids[0], "carol");
    assert_string_equal(p.ids[1], "dave");
    assert_true(more);
    p = (struct page){ .stop_after = 8 };
    assert_int_equal(im_app_online_users_page(f->app, &f->s[0], "dave", 0, page_user, &p, &total,
                                              &more, NULL), IM_OK);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.ids[0], "mia");
    assert_string_equal(p.names[0], "Name");
    assert_false(more);
    im_session anon;
    im_session_init(&anon, 9, 0);
    assert_int_equal(im_app_online_users_page(f->app, &anon, "", 0, page_user, &p, &total, &more,
                                              NULL), IM_ENOTAUTH);
}

static void test_membership_undone_when_store_fails(void **state)
{
    fixture *f = *state;
    assert_int_equal(create(f, 0, "room", 0), IM_OK);
    f->faults.fail_from = 1;
    assert_int_equal(join(f, 1, "room"), IM_EIO);
    f->faults.fail_from = 0;
    /* bob is not a member: joining again works, and a message skips him before. */
    im_send_result r;
    assert_int_equal(group_send(f, 0, "room", "x", &r), IM_OK);
    assert_int_equal(r.delivered, 0);
    assert_int_equal(join(f, 1, "room"), IM_OK);
    f->faults.fail_from = 1;
    f->faults.calls = 0;
    assert_int_equal(leave(f, 1, "room"), IM_EIO);
    f->faults.fail_from = 0;
    assert_int_equal(group_send(f, 0, "room", "y", &r), IM_OK);
    assert_int_equal(r.delivered, 1); /* the failed leave left him in */
    f->faults.fail_from = 1;
    f->faults.calls = 0;
    assert_int_equal(create(f, 2, "other", 0), IM_EIO);
    f->faults.fail_from = 0;
    assert_int_equal(join(f, 1, "other"), IM_ENOGROUP); /* the failed create left nothing */
}

/* A store that refuses a change at once: the change is undone and the
 * refusal returned for the caller to answer, in its place among the
 * connection's answers; nothing is answered through the router. */
static void test_membership_refused_at_once(void **state)
{
    fixture *f = *state;
    im_error err = { 0 };
    f->faults.fail_from = 1;
    f->faults.at_once = true;
    f->faults.code = IM_ESHUTDOWN;
    assert_int_equal(im_app_group_create(f->app, &f->s[0], &f->ep[0], 3, "room", 0, &err),
                     IM_ESHUTDOWN);
    assert_int_equal(f->router.nanswers, 0);
    f->faults.fail_from = 0;
    assert_int_equal(join(f, 1, "room"), IM_ENOGROUP); /* the refused create left nothing */
    assert_int_equal(create(f, 0, "room", 0), IM_OK);
    f->faults.fail_from = 1;
    f->faults.calls = 0;
    size_t before = f->router.nanswers;
    assert_int_equal(im_app_group_join(f->app, &f->s[1], &f->ep[1], 4, "room", &err),
                     IM_ESHUTDOWN);
    assert_int_equal(f->router.nanswers, before);
    f->faults.fail_from = 0;
    assert_int_equal(join(f, 1, "room"), IM_OK); /* not a member after the refusal */
    f->faults.fail_from = 1;
    f->faults.calls = 0;
    assert_int_equal(im_app_group_leave(f->app, &f->s[1], &f->ep[1], 5, "room", &err),
                     IM_ESHUTDOWN);
    f->faults.fail_from = 0;
    assert_int_equal(join(f, 1, "room"), IM_EMEMBER); /* still a member */
}

static void test_ack_checks_conversation(void **state)
{
    fixture *f = *state;
    im_error err;
    assert_int_equal(im_app_ack(f->app, &f->s[0], "p:alice:bob", 3, NULL), IM_OK);
    assert_int_equal(im_app_ack(f->app, &f->s[1], "p:alice:bob", 3, NULL), IM_OK);
    assert_int_equal(im_app_ack(f->app, &f->s[2], "p:alice:bob", 3, &err), IM_EINVAL);
    assert_int_equal(im_app_ack(f->app, &f->s[0], "p:alicex:bob", 3, NULL), IM_EINVAL);
    assert_int_equal(im_app_ack(f->app, &f->s[0], "p:ali:bob", 3, NULL), IM_EINVAL);
    assert_int_equal(im_app_ack(f->app, &f->s[0], "x:alice", 3, NULL), IM_EINVAL);
    assert_int_equal(im_app_ack(f->app, &f->s[0], "g:room", 3, NULL), IM_ENOGROUP);
    assert_int_equal(create(f, 1, "room", 0), IM_OK);
    assert_int_equal(im_app_ack(f->app, &f->s[0], "g:room", 3, NULL), IM_ENOTMEMBER);
    assert_int_equal(im_app_ack(f->app, &f->s[1], "g:room", 3, NULL), IM_OK);
}

static void test_history_arguments(void **state)
{
    fixture *f = *state;
    assert_int_equal(im_app_history(f->app, &f->s[0], "bob", "room", 0, 0, NULL, NULL, NULL),
                     IM_EINVAL);
    assert_int_equal(im_app_history(f->app, &f->s[0], "", "", 0, 0, NULL, NULL, NULL), IM_EINVAL);
    assert_int_equal(im_app_history(f->app, &f->s[0], "", "room", 0, 0, NULL, NULL, NULL),
                     IM_ENOGROUP);
    /* The memory store keeps nothing and says so. */
    assert_int_equal(im_app_history(f->app, &f->s[0], "bob", "", 0, 0, NULL, NULL, NULL),
                     IM_EUNSUPPORTED);
}

/* ---- logins by token, against an accounts port that knows two ---- */

/* Resumes "tok-alice" and "tok-bob" at once; anything else is IM_EAUTH. */
static int fa_resume(im_accounts *a, const char *token, im_accounts_done_fn done, void *arg,
                     const atomic_bool *cancelled, im_error *err)
{
    (void)a, (void)err, (void)cancelled;
    const char *user = strcmp(token, "tok-alice") == 0 ? "alice"
                       : strcmp(token, "tok-bob") == 0 ? "bob" : NULL;
    if (user) {
        done(arg, IM_OK, user, user, token, NULL);
    } else {
        im_error e;
        im_error_set(&e, IM_EAUTH, "unknown token");
        done(arg, IM_EAUTH, NULL, NULL, NULL, &e);
    }
    return IM_OK;
}

/* A password login held until the test answers it, as a busy hashing
 * thread would hold it. */
static struct held_login {
    im_accounts_done_fn done;
    void *arg;
    const atomic_bool *cancelled;
} held;

static int fa_login(im_accounts *a, const char *user, const char *password,
                    im_accounts_done_fn done, void *arg, const atomic_bool *cancelled,
                    im_error *err)
{
    (void)a, (void)user, (void)password, (void)err;
    held = (struct held_login){ .done = done, .arg = arg, .cancelled = cancelled };
    return IM_OK;
}

static const struct im_accounts_ops fake_accounts_ops = { .name = "fake", .resume = fa_resume,
                                                          .login = fa_login };

/* An app on the memory store whose logins go to acc (borrowed: it must
 * outlive the app), no session logged in. */
static void make_app_with_accounts(fixture *f, im_accounts *acc)
{
    fake_router_init(&f->router);
    assert_int_equal(im_memory_store_new(&f->store, NULL), IM_OK);
    assert_int_equal(im_memory_group_repo_new(&f->groups, NULL), IM_OK);
    im_app_limits limits = { .max_body_bytes = 16, .max_group_members = 3 };
    im_app_ports ports = { FAKE_ROUTER_PORTS(&f->router), .store = f->store, .groups = f->groups,
                           .accounts = acc, .wall_clock_ms = fixed_clock };
    assert_int_equal(im_app_new(&limits, &ports, &f->app, NULL), IM_OK);
}

/* A session that goes while its password is being checked calls the check
 * off: the accounts port sees the flag, and the late answer finds no
 * session and frees what it carried (LeakSanitizer would say otherwise). */
static void test_login_of_a_closed_session_is_called_off(void **state)
{
    (void)state;
    fixture f;
    im_accounts acc = { .ops = &fake_accounts_ops };
    make_app_with_accounts(&f, &acc);
    im_session s;
    im_endpoint ep = { .conn_id = 7 };
    im_session_init(&s, 7, 0);
    f.router.sessions[7] = &s;
    im_login_request req = { .user_id = "alice", .password = "long enough password" };
    assert_int_equal(im_app_login(f.app, &s, &req, &ep, 1, NULL), IM_OK);
    assert_non_null(held.cancelled);
    assert_false(atomic_load(held.cancelled));
    im_app_session_closed(f.app, &s, &ep, 0);
    assert_true(atomic_load(held.cancelled));
    f.router.sessions[7] = NULL; /* the connection is gone */
    im_error e;
    im_error_set(&e, IM_ESHUTDOWN, "the client has gone");
    held.done(held.arg, IM_ESHUTDOWN, NULL, NULL, NULL, &e);
    assert_int_equal(f.router.nanswers, 0);
    im_app_free(f.app);
    f.groups->ops->destroy(f.groups);
    im_store_destroy(f.store);
}

static void test_token_login_names_its_own_user(void **state)
{
    (void)state;
    fixture f;
    im_accounts acc = { .ops = &fake_accounts_ops };
    make_app_with_accounts(&f, &acc);
    im_session s;
    im_endpoint ep = { .conn_id = 5 };
    im_session_init(&s, 5, 0);
    f.router.sessions[5] = &s;

    /* bob's name with alice's token: refused as a wrong password is. */
    im_login_request req = { .user_id = "bob", .token = "tok-alice" };
    assert_int_equal(im_app_login(f.app, &s, &req, &ep, 1, NULL), IM_OK);
    assert_int_equal(f.router.nanswers, 1);
    assert_int_equal(f.router.answers[0].rc, IM_EAUTH);
    assert_false(im_session_is_authenticated(&s));
    assert_int_equal(f.router.nbound, 0);
    /* A name that is no id is refused at once, before the token is read. */
    req.user_id = "b@d";
    assert_int_equal(im_app_login(f.app, &s, &req, &ep, 2, NULL), IM_EINVAL);
    /* No name: the token's own user, and its token back. */
    req.user_id = "";
    assert_int_equal(im_app_login(f.app, &s, &req, &ep, 3, NULL), IM_OK);
    assert_int_equal(f.router.nanswers, 2);
    assert_int_equal(f.router.answers[1].rc, IM_OK);
    assert_string_equal(f.router.answers[1].client_msg_id, "tok-alice"); /* the token */
    assert_string_equal(s.user_id, "alice");
    /* Its own user's name works too. */
    im_session s2;
    im_endpoint ep2 = { .conn_id = 6 };
    im_session_init(&s2, 6, 0);
    f.router.sessions[6] = &s2;
    req.user_id = "bob";
    req.token = "tok-bob";
    assert_int_equal(im_app_login(f.app, &s2, &req, &ep2, 4, NULL), IM_OK);
    assert_int_equal(f.router.answers[2].rc, IM_OK);
    assert_string_equal(s2.user_id, "bob");
    im_app_free(f.app);
    f.groups->ops->destroy(f.groups);
    im_store_destroy(f.store);
}

static void account_made(void *arg, int rc, const im_account_record *rec, const im_error *err)
{
    (void)rec, (void)err;
    *(int *)arg = rc;
}

/* A store that keeps nothing for offline users, with accounts: a message
 * to an offline receiver is looked up through the store's account
 * operation, and answered UNKNOWN_USER (no account) or OFFLINE (an
 * account), with nothing stored; without accounts it stays OFFLINE at
 * once (test_private_refusals). */
static void test_offline_receiver_looked_up(void **state)
{
    (void)state;
    fixture f;
    im_accounts acc = { .ops = &fake_accounts_ops };
    make_app_with_accounts(&f, &acc);
    int made = 1;
    im_account_request q = { .size = sizeof q, .op = IM_ACCOUNT_CREATE, .user = "carol",
                             .secret = "$argon2id$stand-in" };
    assert_int_equal(f.store->ops->account(f.store, &q, account_made, &made, NULL), IM_OK);
    assert_int_equal(made, IM_OK);
    im_session s;
    im_endpoint ep = { .conn_id = 5 };
    im_session_init(&s, 5, 0);
    f.router.sessions[5] = &s;
    im_login_request req = { .user_id = "", .token = "tok-alice" };
    assert_int_equal(im_app_login(f.app, &s, &req, &ep, 1, NULL), IM_OK);
    assert_true(im_session_is_authenticated(&s));
    f.router.nanswers = 0;
    assert_int_equal(im_app_send_private(f.app, &s, &ep, 2, "ghost", (const uint8_t *)"hi", 2,
                                         "c-1", NULL), IM_OK);
    assert_int_equal(im_app_send_private(f.app, &s, &ep, 3, "carol", (const uint8_t *)"hi", 2,
                                         "c-2", NULL), IM_OK);
    assert_int_equal(f.router.nanswers, 2);
    assert_int_equal(f.router.answers[0].request_id, 2);
    assert_int_equal(f.router.answers[0].rc, IM_EUNKNOWNUSER);
    assert_int_equal(f.router.answers[1].request_id, 3);
    assert_int_equal(f.router.answers[1].rc, IM_EOFFLINE);
    assert_int_equal(f.router.ndelivered, 0);
    im_app_free(f.app);
    f.groups->ops->destroy(f.groups);
    im_store_destroy(f.store);
}

/* ---- with a store that completes later, as a durable one does ---- */

typedef struct later {
    fake_router router;
    im_store *numbers;
    deferred_store *ds;
    im_group_repo *groups;
    im_app *app;
    im_session bob;
    im_endpoint bob_ep;
} later;

/* bob logs in at conn 42; his hand-over waits in the store. */
static im_session *later_login_bob(later *l)
{
    im_session_init(&l->bob, 1, 0);
    l->bob_ep = (im_endpoint){ .conn_id = 42 };
    assert_int_equal(login_as(&l->router, l->app, &l->bob, "bob", "", &l->bob_ep, NULL), IM_OK);
    return &l->bob;
}

/* handover_bytes: limits.handover_bytes (0: the default; 1: every message
 * fills a page on its own). */
static void later_init(later *l, uint32_t handover_bytes)
{
    fake_router_init(&l->router);
    assert_int_equal(im_memory_store_new(&l->numbers, NULL), IM_OK);
    l->ds = deferred_store_new(l->numbers);
    assert_non_null(l->ds);
    assert_int_equal(im_memory_group_repo_new(&l->groups, NULL), IM_OK);
    im_app_limits limits = { .max_body_bytes = 16, .max_group_members = 3,
                             .handover_bytes = handover_bytes };
    im_app_ports ports = { FAKE_ROUTER_PORTS(&l->router), .store = deferred_store_port(l->ds),
                           .groups = l->groups, .wall_clock_ms = fixed_clock };
    assert_int_equal(im_app_new(&limits, &ports, &l->app, NULL), IM_OK);
}

static void later_fini(later *l)
{
    im_app_free(l->app);
    l->groups->ops->destroy(l->groups);
    deferred_store_free(l->ds);
    im_store_destroy(l->numbers);
}

static void test_live_only_after_pending(void **state)
{
    (void)state;
    later l;
    later_init(&l, 0);
    deferred_store_add_pending(l.ds, "alice", "bob", "while away 1", 1);
    deferred_store_add_pending(l.ds, "alice", "bob", "while away 2", 2);
    im_session *bob = later_login_bob(&l);
    assert_true(im_session_is_authenticated(bob));
    /* Not live until the store has handed over what bob missed. */
    assert_false(im_presence_is_online(&l.router.presence, "bob"));
    assert_int_equal(deferred_store_run(l.ds), 1);
    assert_int_equal(l.router.ndirect, 2);
    assert_string_equal(l.router.direct[0].body, "while away 1");
    assert_string_equal(l.router.direct[1].body, "while away 2");
    assert_string_equal(l.router.direct[0].to, "conn-42");
    assert_true(im_presence_is_online(&l.router.presence, "bob"));
    assert_null(bob->handover); /* live: the hand-over is over */
    later_fini(&l);
}


/* The hand-over page is read with its byte budget: the store stops there. */
static void test_handover_reads_to_its_budget(void **state)
{
    (void)state;
    later l;
    later_init(&l, 4000);
    deferred_store_add_pending(l.ds, "alice", "bob", "while away", 1);
    later_login_bob(&l);
    assert_int_equal(deferred_store_last_budget(l.ds), 4000);
    assert_int_equal(deferred_store_run(l.ds), 1);
    assert_int_equal(l.router.ndirect, 1);
    later_fini(&l);
}

/* A History is read by the store in its order, and answered through the
 * route port once read, never on the caller's thread. */
static void test_history_answered_from_the_store(void **state)
{
    (void)state;
    later l;
    later_init(&l, 0);
    deferred_store_add_pending(l.ds, "alice", "bob", "one", 1);
    deferred_store_add_pending(l.ds, "alice", "bob", "two", 2);
    deferred_store_add_pending(l.ds, "alice", "bob", "three", 3);
    im_session *bob = later_login_bob(&l);
    deferred_store_run(l.ds); /* the hand-over: bob goes live */
    size_t before = l.router.nanswers;
    im_error err = { 0 };
    assert_int_equal(im_app_history_request(l.app, bob, &l.bob_ep, 7, "alice", "", 0, 0, 0,
                                            &err), IM_OK);
    assert_int_equal(l.router.nanswers, before); /* nothing read yet */
    assert_int_equal(deferred_store_run(l.ds), 1);
    assert_int_equal(l.router.nanswers, before + 1);
    assert_true(l.router.answers[before].is_history);
    assert_int_equal(l.router.answers[before].request_id, 7);
    assert_int_equal(l.router.answers[before].rc, IM_OK);
    assert_int_equal(l.router.answers[before].nhistory, 3);
    assert_int_equal(l.router.answers[before].history_last_seq, 3);

    /* A budget of 8 bytes of bodies: "three" then "two" reach it. */
    assert_int_equal(im_app_history_request(l.app, bob, &l.bob_ep, 8, "alice", "", 0, 0, 8,
                                            &err), IM_OK);
    deferred_store_run(l.ds);
    assert_int_equal(l.router.answers[before + 1].nhistory, 2);
    assert_int_equal(l.router.answers[before + 1].history_last_seq, 3);

    /* Refused at once: no answer comes, the caller answers. */
    assert_int_equal(im_app_history_request(l.app, bob, &l.bob_ep, 9, "", "", 0, 0, 0, &err),
                     IM_EINVAL);
    assert_int_equal(deferred_store_queued(l.ds), 0);
    assert_int_equal(l.router.nanswers, before + 2);
    later_fini(&l);
}

static void test_handover_goes_a_page_at_a_time(void **state)
{
    (void)state;
    later l;
    later_init(&l, 1);
    deferred_store_add_pending(l.ds, "alice", "bob", "a1", 1);
    deferred_store_add_pending(l.ds, "alice", "bob", "a2", 2);
    deferred_store_add_pending(l.ds, "bob", "carol", "to carol", 1); /* not bob's */
    deferred_store_add_pending(l.ds, "carol", "bob", "c1", 1);
    im_session *bob = later_login_bob(&l);
    deferred_store_run(l.ds);
    /* One page, and nothing more until bob acks it. */
    assert_int_equal(l.router.ndirect, 1);
    assert_string_equal(l.router.direct[0].body, "a1");
    assert_false(im_presence_is_online(&l.router.presence, "bob"));
    assert_int_equal(deferred_store_run(l.ds), 0);
    assert_int_equal(l.router.ndirect, 1);

    const char *want[] = { "a2", "c1" };
    const char *conv[] = { "p:alice:bob", "p:alice:bob", "p:bob:carol" };
    uint64_t seq[] = { 1, 2, 1 };
    for (int i = 0; i < 2; i++) {
        assert_int_equal(im_app_ack(l.app, bob, conv[i], seq[i], NULL), IM_OK);
        deferred_store_run(l.ds);
        assert_int_equal(l.router.ndirect, (size_t)i + 2);
        assert_string_equal(l.router.direct[i + 1].body, want[i]);
        assert_false(im_presence_is_online(&l.router.presence, "bob"));
    }
    /* The last page is empty: bob goes live, with each message sent once. */
    assert_int_equal(im_app_ack(l.app, bob, conv[2], seq[2], NULL), IM_OK);
    deferred_store_run(l.ds);
    assert_int_equal(l.router.ndirect, 3);
    assert_true(im_presence_is_online(&l.router.presence, "bob"));
    assert_null(bob->handover);
    /* Acks after that are only acks. */
    assert_int_equal(im_app_ack(l.app, bob, conv[2], seq[2], NULL), IM_OK);
    assert_int_equal(deferred_store_queued(l.ds), 0);
    later_fini(&l);
}

static void test_handover_waits_for_every_conversation_of_the_page(void **state)
{
    (void)state;
    later l;
    /* Room for two messages a page (each counts its body and a frame's
     * overhead, well under 200 bytes). */
    later_init(&l, 300);
    deferred_store_add_pending(l.ds, "alice", "bob", "a1", 1);
    deferred_store_add_pending(l.ds, "carol", "bob", "c1", 1);
    deferred_store_add_pending(l.ds, "dave", "bob", "d1", 1);
    im_session *bob = later_login_bob(&l);
    deferred_store_run(l.ds);
    assert_int_equal(l.router.ndirect, 2);
    /* An ack short of what was sent, and one conversation of two: wait. */
    assert_int_equal(im_app_ack(l.app, bob, "p:alice:bob", 0, NULL), IM_OK);
    assert_int_equal(im_app_ack(l.app, bob, "p:bob:carol", 1, NULL), IM_OK);
    deferred_store_run(l.ds);
    assert_int_equal(l.router.ndirect, 2);
    assert_int_equal(im_app_ack(l.app, bob, "p:alice:bob", 1, NULL), IM_OK);
    deferred_store_run(l.ds);
    assert_int_equal(l.router.ndirect, 3);
    assert_string_equal(l.router.direct[2].body, "d1");
    /* A short page: live at once, without waiting for its ack. */
    assert_true(im_presence_is_online(&l.router.presence, "bob"));
    later_fini(&l);
}

/* bob, with two messages waiting and a page of one: the first page has
 * gone out and the hand-over waits for its ack. */
static im_session *later_bob_waiting(later *l)
{
    later_init(l, 1);
    deferred_store_add_pending(l->ds, "alice", "bob", "a1", 1);
    deferred_store_add_pending(l->ds, "alice", "bob", "a2", 2);
    im_session *bob = later_login_bob(l);
    deferred_store_run(l->ds);
    assert_int_equal(l->router.ndirect, 1);
    assert_non_null(bob->handover);
    return bob;
}

static void test_handover_ends_when_the_session_closes(void **state)
{
    (void)state;
    later l;
    im_session *bob = later_bob_waiting(&l);
    im_endpoint ep = l.bob_ep;
    /* An ack on its way, then the close: the read the ack starts comes
     * after the close in the store's order, and hands nothing over. */
    assert_int_equal(im_app_ack(l.app, bob, "p:alice:bob", 1, NULL), IM_OK);
    im_app_session_closed(l.app, bob, &ep, 0);
    l.router.sessions[42] = NULL;
    assert_null(bob->handover);
    deferred_store_run(l.ds);
    assert_int_equal(l.router.ndirect, 1);
    assert_false(im_presence_is_online(&l.router.presence, "bob"));
    assert_int_equal(deferred_store_queued(l.ds), 0);
    later_fini(&l); /* nothing left behind: the sanitizer build checks */
}

static void test_handover_waiting_for_acks_ends_at_close(void **state)
{
    (void)state;
    later l;
    im_session *bob = later_bob_waiting(&l);
    im_endpoint ep = l.bob_ep;
    im_app_session_closed(l.app, bob, &ep, 0);
    l.router.sessions[42] = NULL;
    deferred_store_run(l.ds);
    assert_int_equal(l.router.ndirect, 1);
    assert_false(im_presence_is_online(&l.router.presence, "bob"));
    later_fini(&l); /* the flow's reference went with the close */
}

static void test_close_before_live_stays_offline(void **state)
{
    (void)state;
    later l;
    later_init(&l, 0);
    im_session *bob = later_login_bob(&l);
    im_endpoint ep = l.bob_ep;
    im_app_session_closed(l.app, bob, &ep, 0);
    /* The hand-over's read, its end, then the unbind. */
    assert_int_equal(deferred_store_queued(l.ds), 3);
    deferred_store_run(l.ds);
    assert_false(im_presence_is_online(&l.router.presence, "bob"));
    later_fini(&l);
}

static void test_answer_waits_for_store(void **state)
{
    (void)state;
    later l;
    later_init(&l, 0);
    im_session alice;
    im_session_init(&alice, 1, 0);
    im_endpoint ep = { .conn_id = 7 };
    assert_int_equal(login_as(&l.router, l.app, &alice, "alice", "", &ep, NULL), IM_OK);
    deferred_store_run(l.ds);
    assert_int_equal(l.router.nanswers, 1); /* the LoginAck, before anything stored */
    l.router.nanswers = 0;
    /* bob is offline: a durable store takes the message anyway. */
    assert_int_equal(im_app_send_private(l.app, &alice, &ep, 11, "bob", (const uint8_t *)"hi", 2,
                                         "m1", NULL), IM_OK);
    assert_int_equal(l.router.nanswers, 0); /* no ack before the store is done */
    deferred_store_run(l.ds);
    assert_int_equal(l.router.nanswers, 1);
    assert_int_equal(l.router.answers[0].rc, IM_OK);
    assert_int_equal(l.router.answers[0].request_id, 11);
    assert_int_equal(l.router.answers[0].res.seq, 1);
    assert_int_equal(l.router.answers[0].res.delivered, 0);
    assert_string_equal(l.router.answers[0].client_msg_id, "m1");
    later_fini(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_refuses_missing_ports),
        cmocka_unit_test(test_login_reject_policy),
        cmocka_unit_test(test_token_login_names_its_own_user),
        cmocka_unit_test(test_login_of_a_closed_session_is_called_off),
        cmocka_unit_test(test_live_only_after_pending),
        cmocka_unit_test(test_handover_reads_to_its_budget),
        cmocka_unit_test(test_history_answered_from_the_store),
        cmocka_unit_test(test_close_before_live_stays_offline),
        cmocka_unit_test(test_offline_receiver_looked_up),
        cmocka_unit_test(test_handover_goes_a_page_at_a_time),
        cmocka_unit_test(test_handover_waits_for_every_conversation_of_the_page),
        cmocka_unit_test(test_handover_ends_when_the_session_closes),
        cmocka_unit_test(test_handover_waiting_for_acks_ends_at_close),
        cmocka_unit_test(test_answer_waits_for_store),
        cmocka_unit_test_setup_teardown(test_login_binds_and_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_twice_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_bad_id_touches_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_replace_kicks_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_closed_unbinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_delivers_with_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_store_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_delivery_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_offline_members_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_emptied_is_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_create_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_membership_refused_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_group_listing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_changes_undone_when_store_fails, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_history_from_the_join, setup, teardown),
        cmocka_unit_test(test_store_without_group_change),
        cmocka_unit_test(test_loads_private_groups),
        cmocka_unit_test_setup_teardown(test_group_quota, setup_none, teardown_own),
        cmocka_unit_test_setup_teardown(test_group_requests_are_rate_limited, setup_none,
                                        teardown_own),
        cmocka_unit_test_setup_teardown(test_online_user_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_membership_undone_when_store_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_checks_conversation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_arguments, setup, teardown),
    };
    return cmocka_run_group_tests_name("application", tests, NULL, NULL);
}
