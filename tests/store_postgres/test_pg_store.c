/* tests/store_postgres/test_pg_store.c: the PostgreSQL store through its
 * storage thread, against a real server: tests/integration/pg_harness.py
 * starts a throw-away one and passes its connection string in
 * IMCORE_PG_CONNINFO (without it every test is skipped). Each test starts
 * from an empty schema.
 *
 * Completions run on the storage thread; the test waits for each on a
 * condition variable with a deadline, and checks on its own thread. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "im_pg_store.h"

/* ---- the database ---- */

static const char *conninfo(void)
{
    return getenv("IMCORE_PG_CONNINFO");
}

static void sql(const char *q)
{
    PGconn *c = PQconnectdb(conninfo());
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect: %s", PQerrorMessage(c));
    PGresult *res = PQexec(c, q);
    ExecStatusType s = PQresultStatus(res);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        fail_msg("%s: %s", q, PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(c);
}

static int setup(void **state)
{
    (void)state;
    if (!conninfo())
        skip();
    sql("SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    return 0;
}

static bool service(void *arg, const char *user)
{
    (void)arg;
    return strcmp(user, "helpdesk") == 0;
}

static im_store *open_store(bool need_account)
{
    im_pg_store_config cfg = { .conninfo = conninfo(), .max_batch = 64,
                               .receivers_need_account = need_account,
                               .is_service_account = service };
    im_store *s = NULL;
    im_error err = { 0 };
    if (im_pg_store_new(&cfg, &s, &err) != IM_OK)
        fail_msg("open: %s", err.msg);
    return s;
}

/* ---- waiting for completions ---- */

#define MAX_SEEN 256

typedef struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;                 /* completions so far */
    int rc;
    uint64_t seq, time_ms, count;
    bool duplicate;
    char user[64], name[80], secret[300];
    bool has_rec, has_secret;
    int nseen;                /* messages handed to each */
    uint64_t seen[MAX_SEEN];
    size_t bytes;
    int order[MAX_SEEN];      /* tags in completion order */
} waiter;

static waiter W;

static void reset(void)
{
    pthread_mutex_lock(&W.lock);
    int keep_done = 0;
    memset((char *)&W + offsetof(waiter, done), 0, sizeof W - offsetof(waiter, done));
    W.done = keep_done;
    pthread_mutex_unlock(&W.lock);
}

static void signal_done(void)
{
    W.done++;
    pthread_cond_broadcast(&W.cond);
}

static void wait_done(int n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    pthread_mutex_lock(&W.lock);
    while (W.done < n)
        if (pthread_cond_timedwait(&W.cond, &W.lock, &ts) != 0)
            break;
    int done = W.done;
    pthread_mutex_unlock(&W.lock);
    if (done < n)
        fail_msg("%d of %d completions after 20 s", done, n);
}

static void on_append(void *arg, int rc, const im_message *m, bool duplicate, const im_error *err)
{
    (void)err;
    pthread_mutex_lock(&W.lock);
    W.rc = rc;
    W.seq = m ? m->seq : 0;
    W.time_ms = m ? m->server_time_ms : 0;
    W.duplicate = duplicate;
    if (W.done < MAX_SEEN)
        W.order[W.done] = (int)(intptr_t)arg;
    signal_done();
    pthread_mutex_unlock(&W.lock);
}

static void on_done(void *arg, int rc, const im_error *err)
{
    (void)err;
    pthread_mutex_lock(&W.lock);
    W.rc = rc;
    if (W.done < MAX_SEEN)
        W.order[W.done] = (int)(intptr_t)arg;
    signal_done();
    pthread_mutex_unlock(&W.lock);
}

static void on_group(void *arg, int rc, uint64_t seq, const im_error *err)
{
    (void)arg;
    (void)err;
    pthread_mutex_lock(&W.lock);
    W.rc = rc;
    W.seq = seq;
    signal_done();
    pthread_mutex_unlock(&W.lock);
}

static bool on_message(void *arg, const im_message *m)
{
    (void)arg;
    pthread_mutex_lock(&W.lock);
    if (W.nseen < MAX_SEEN)
        W.seen[W.nseen++] = m->seq;
    W.bytes += m->body_len;
    pthread_mutex_unlock(&W.lock);
    return true;
}

static void on_account(void *arg, int rc, const im_account_record *rec, const im_error *err)
{
    (void)arg;
    (void)err;
    pthread_mutex_lock(&W.lock);
    W.rc = rc;
    W.has_rec = rec != NULL;
    if (rec) {
        snprintf(W.user, sizeof W.user, "%s", rec->user ? rec->user : "");
        snprintf(W.name, sizeof W.name, "%s", rec->display_name ? rec->display_name : "(null)");
        W.has_secret = rec->secret != NULL;
        snprintf(W.secret, sizeof W.secret, "%s", rec->secret ? rec->secret : "");
        W.count = rec->count;
    }
    signal_done();
    pthread_mutex_unlock(&W.lock);
}

/* ---- requests, each waited for ---- */

static int append(im_store *s, im_message_kind kind, const char *from, const char *to,
                  const char *cmid, const char *body)
{
    im_message m = { .kind = kind, .sender = from, .target = to, .client_msg_id = cmid,
                     .body = (const uint8_t *)body, .body_len = strlen(body) };
    im_error err = { 0 };
    int n = W.done;
    assert_int_equal(s->ops->append(s, &m, on_append, NULL, &err), IM_OK);
    wait_done(n + 1);
    return W.rc;
}

static int pending(im_store *s, const char *user, size_t limit, size_t max_bytes)
{
    im_error err = { 0 };
    int n = W.done;
    W.nseen = 0;
    W.bytes = 0;
    assert_int_equal(s->ops->pending_read(s, user, limit, max_bytes, on_message, on_done, NULL,
                                          &err), IM_OK);
    wait_done(n + 1);
    return W.nseen;
}

static int history_read(im_store *s, const char *conv, uint64_t before, size_t limit,
                        size_t max_bytes)
{
    im_error err = { 0 };
    int n = W.done;
    W.nseen = 0;
    W.bytes = 0;
    assert_int_equal(s->ops->history_read(s, conv, before, limit, max_bytes, on_message, on_done,
                                          NULL, &err), IM_OK);
    wait_done(n + 1);
    return W.nseen;
}

static void barrier(im_store *s)
{
    im_error err = { 0 };
    int n = W.done;
    assert_int_equal(s->ops->barrier(s, on_done, NULL, &err), IM_OK);
    wait_done(n + 1);
}

static int change(im_store *s, im_group_change_kind kind, const char *group, const char *user,
                  uint32_t max, uint32_t flags)
{
    im_group_change c = { .size = sizeof c, .kind = kind, .group = group, .user = user,
                          .max_members = max, .flags = flags };
    im_error err = { 0 };
    int n = W.done;
    assert_int_equal(s->ops->group_change(s, &c, on_group, NULL, &err), IM_OK);
    wait_done(n + 1);
    return W.rc;
}

static int account(im_store *s, im_account_request q)
{
    q.size = sizeof q;
    im_error err = { 0 };
    int n = W.done;
    assert_int_equal(s->ops->account(s, &q, on_account, NULL, &err), IM_OK);
    wait_done(n + 1);
    return W.rc;
}

/* ---- tests ---- */

static void test_append_seq_dedupe_order(void **state)
{
    (void)state;
    im_store *s = open_store(false);
    reset();
    assert_int_equal(append(s, IM_MESSAGE_PRIVATE, "alice", "bob", "c1", "one"), IM_OK);
    assert_int_equal(W.seq, 1);
    assert_false(W.duplicate);
    uint64_t t1 = W.time_ms;
    assert_int_equal(append(s, IM_MESSAGE_PRIVATE, "bob", "alice", "c1", "two"), IM_OK);
    assert_int_equal(W.seq, 2); /* one conversation, another sender's id space */
    assert_int_equal(append(s, IM_MESSAGE_PRIVATE, "alice", "bob", "c1", "one"), IM_OK);
    assert_true(W.duplicate);
    assert_int_equal(W.seq, 1);
    assert_int_equal(W.time_ms, t1);
    assert_int_equal(append(s, IM_MESSAGE_PRIVATE, "alice", "bob", "c1", "changed"),
                     IM_EIDREUSED);
    assert_int_equal(append(s, IM_MESSAGE_PRIVATE, "alice", "bob", "c2", "three"), IM_OK);
    assert_int_equal(W.seq, 3); /* the refusals spent no seq */

    /* Completions in request order, the barrier after them all. */
    int n0 = W.done;
    char cmid[32];
    for (int i = 0; i < 100; i++) {
        snprintf(cmid, sizeof cmid, "o-%d", i);
        im_message m = { .kind = i % 2 ? IM_MESSAGE_GROUP : IM_MESSAGE_PRIVATE,
                         .sender = "carol", .target = i % 2 ? "g1" : "dave",
                         .client_msg_id = cmid, .body = (const uint8_t *)"x", .body_len = 1 };
        assert_int_equal(s->ops->append(s, &m, on_append, (void *)(intptr_t)i, NULL), IM_OK);
    }
    assert_int_equal(s->ops->barrier(s, on_done, (void *)(intptr_t)100, NULL), IM_OK);
    wait_done(n0 + 101);
    for (int i = 0; i <= 100; i++)
        assert_int_equal(W.order[n0 + i], i);
    im_store_destroy(s);
}

static void test_receivers_need_account(void **state)
{
    (void)state;
    im_store *s = open_store(true);
    reset();
    assert_int_equal(append(s, IM_MESSAGE_PRIVATE, "alice", "nobody", "u1", "x"),
                     IM_EUNKNOWNUSER);
    assert_int_equal(append(s, IM_MESSAGE_PRIVATE, "alice", "helpdesk", "u2", "x"), IM_OK);
    assert_int_equal(W.seq, 1);
    assert_int_equal(account(s, (im_account_request){ .op = IM_ACCOUNT_CREATE, .user = "nobody",
                                                       .secret = "$argon2id$x", .now_ms = 1 }),
                     IM_OK);
    assert_int_equal(append(s, IM_MESSAGE_PRIVATE, "alice", "nobody", "u1", "x"), IM_OK);
    assert_int_equal(W.seq, 1); /* the refusal spent no seq */
    /* Group messages are not checked. */
    assert_int_equal(append(s, IM_MESSAGE_GROUP, "alice", "grp", "u3", "x"), IM_OK);
    im_store_destroy(s);
}

static void test_pending_ack_history(void **state)
{
    (void)state;
    im_store *s = open_store(false);
    reset();
    char cmid[32], body[64];
    for (int i = 1; i <= 10; i++) {
        snprintf(cmid, sizeof cmid, "p-%d", i);
        snprintf(body, sizeof body, "%0*d", i * 3, i); /* i * 3 bytes */
        assert_int_equal(append(s, IM_MESSAGE_PRIVATE, "alice", "bob", cmid, body), IM_OK);
    }
    assert_int_equal(pending(s, "bob", 100, 0), 10);
    assert_int_equal(W.seen[0], 1);
    assert_int_equal(W.seen[9], 10);
    assert_int_equal(pending(s, "alice", 100, 0), 0);
    /* A byte budget: 3 + 6 + 9 = 18 >= 15, so three. */
    assert_int_equal(pending(s, "bob", 100, 15), 3);
    assert_int_equal(pending(s, "bob", 4, 0), 4);
    im_error err = { 0 };
    assert_int_equal(s->ops->ack(s, "bob", "p:alice:bob", 6, &err), IM_OK);
    assert_int_equal(s->ops->ack(s, "bob", "p:alice:bob", 4, &err), IM_OK); /* never down */
    assert_int_equal(pending(s, "bob", 100, 0), 4);
    assert_int_equal(W.seen[0], 7);
    assert_int_not_equal(s->ops->ack(s, "eve", "p:alice:bob", 6, &err), IM_OK);

    /* History: newest first under a budget, handed out oldest first. */
    assert_int_equal(history_read(s, "p:alice:bob", 0, 3, 0), 3);
    assert_int_equal(W.seen[0], 8);
    assert_int_equal(W.seen[2], 10);
    assert_int_equal(history_read(s, "p:alice:bob", 0, 100, 40), 2); /* 30 + 27 >= 40 */
    assert_int_equal(W.seen[0], 9);
    assert_int_equal(history_read(s, "p:alice:bob", 5, 100, 0), 4);
    assert_int_equal(W.seen[0], 1);
    assert_int_equal(W.seen[3], 4);
    /* The synchronous fallback reads the same. */
    W.nseen = 0;
    assert_int_equal(s->ops->history(s, "p:alice:bob", 0, 2, on_message, NULL, &err), IM_OK);
    assert_int_equal(W.nseen, 2);
    assert_int_equal(W.seen[0], 9);
    assert_int_equal(W.seen[1], 10);
    im_store_destroy(s);
}

struct loaded {
    int n;
    char text[512];
};

static int on_group_record(void *arg, const im_group_record *g)
{
    struct loaded *l = arg;
    size_t len = strlen(l->text);
    snprintf(l->text + len, sizeof l->text - len, "%s[%s owner=%s flags=%u", g->id,
             "", g->owner ? g->owner : "-", g->flags);
    for (size_t i = 0; i < g->nmembers; i++) {
        len = strlen(l->text);
        snprintf(l->text + len, sizeof l->text - len, " %s@%llu", g->members[i],
                 (unsigned long long)g->since[i]);
    }
    for (size_t i = 0; i < g->ninvited; i++) {
        len = strlen(l->text);
        snprintf(l->text + len, sizeof l->text - len, " +%s", g->invited[i]);
    }
    len = strlen(l->text);
    snprintf(l->text + len, sizeof l->text - len, "]");
    l->n++;
    return 0;
}

static void test_groups(void **state)
{
    (void)state;
    im_store *s = open_store(false);
    reset();
    assert_int_equal(change(s, IM_GROUP_CHANGE_CREATE, "g1", "alice", 3, 2), IM_OK);
    assert_int_equal(W.seq, 0);
    assert_int_equal(change(s, IM_GROUP_CHANGE_CREATE, "g1", "bob", 3, 2), IM_EEXIST);
    assert_int_equal(append(s, IM_MESSAGE_GROUP, "alice", "g1", "m1", "hello"), IM_OK);
    assert_int_equal(change(s, IM_GROUP_CHANGE_JOIN, "g1", "bob", 0, 0), IM_OK);
    assert_int_equal(W.seq, 1); /* joined after seq 1 */
    assert_int_equal(change(s, IM_GROUP_CHANGE_JOIN, "g1", "bob", 0, 0), IM_EMEMBER);
    assert_int_equal(append(s, IM_MESSAGE_GROUP, "alice", "g1", "m2", "again"), IM_OK);
    assert_int_equal(pending(s, "bob", 100, 0), 1);
    assert_int_equal(W.seen[0], 2);
    assert_int_equal(change(s, IM_GROUP_CHANGE_INVITE, "g1", "carol", 0, 0), IM_OK);
    assert_int_equal(change(s, IM_GROUP_CHANGE_INVITE, "g1", "dave", 0, 0), IM_EFULL);
    assert_int_equal(change(s, IM_GROUP_CHANGE_JOIN, "g1", "dave", 0, 0), IM_EFULL);
    assert_int_equal(change(s, IM_GROUP_CHANGE_UNINVITE, "g1", "dave", 0, 0), IM_ENOTMEMBER);
    assert_int_equal(change(s, IM_GROUP_CHANGE_LEAVE, "g1", "alice", 0, 0), IM_OK);
    assert_int_equal(change(s, IM_GROUP_CHANGE_LEAVE, "g1", "alice", 0, 0), IM_ENOTMEMBER);
    /* A private group: an invitation is the way in. */
    assert_int_equal(change(s, IM_GROUP_CHANGE_CREATE, "g2", "erin", 10, 1), IM_OK);
    assert_int_equal(change(s, IM_GROUP_CHANGE_JOIN, "g2", "frank", 0, 0), IM_ENOGROUP);
    assert_int_equal(change(s, IM_GROUP_CHANGE_INVITE, "g2", "frank", 0, 0), IM_OK);
    assert_int_equal(change(s, IM_GROUP_CHANGE_JOIN, "g2", "frank", 0, 0), IM_OK);
    assert_int_equal(change(s, IM_GROUP_CHANGE_TRANSFER, "g2", "frank", 0, 0), IM_OK);
    assert_int_equal(change(s, IM_GROUP_CHANGE_CREATE, "g3", "zed", 10, 0), IM_OK);
    assert_int_equal(change(s, IM_GROUP_CHANGE_DELETE, "g3", NULL, 0, 0), IM_OK);
    assert_int_equal(change(s, IM_GROUP_CHANGE_DELETE, "g3", NULL, 0, 0), IM_ENOGROUP);
    barrier(s);
    struct loaded l = { 0 };
    im_error err = { 0 };
    assert_int_equal(s->ops->load_groups(s, on_group_record, &l, &err), IM_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.text, "g1[ owner=bob flags=2 bob@1 +carol]"
                                "g2[ owner=frank flags=1 erin@0 frank@0]");
    /* The last one out takes the messages with it. */
    assert_int_equal(change(s, IM_GROUP_CHANGE_LEAVE, "g1", "bob", 0, 0), IM_OK);
    assert_int_equal(history_read(s, "g:g1", 0, 100, 0), 0);
    im_store_destroy(s);
}

static bool on_kv(void *arg, const char *key, const void *value, size_t len)
{
    char *out = arg;
    size_t n = strlen(out);
    snprintf(out + n, 256 - n, "%s=%.*s;", key, (int)len, (const char *)value);
    return true;
}

static void test_kv(void **state)
{
    (void)state;
    im_store *s = open_store(false);
    reset();
    im_error err = { 0 };
    assert_int_equal(s->ops->kv_put(s, "bot", "a/2", "two", 3, NULL, NULL, &err), IM_OK);
    assert_int_equal(s->ops->kv_put(s, "bot", "a/1", "one", 3, NULL, NULL, &err), IM_OK);
    assert_int_equal(s->ops->kv_put(s, "bot", "b", "", 0, NULL, NULL, &err), IM_OK);
    assert_int_equal(s->ops->kv_put(s, "bot", "a/\xff", "hi", 2, NULL, NULL, &err), IM_OK);
    assert_int_equal(s->ops->kv_put(s, "other", "a/1", "no", 2, NULL, NULL, &err), IM_OK);
    pthread_mutex_lock(&W.lock);
    int n = W.done;
    pthread_mutex_unlock(&W.lock);
    assert_int_equal(s->ops->kv_put(s, "bot", "a/2", NULL, 0, on_done, NULL, &err), IM_OK);
    wait_done(n + 1);
    assert_int_equal(W.rc, IM_OK);
    char out[256] = "";
    assert_int_equal(s->ops->kv_each(s, "bot", "a/", on_kv, out, &err), 2);
    assert_string_equal(out, "a/1=one;a/\xff=hi;");
    out[0] = '\0';
    assert_int_equal(s->ops->kv_each(s, "bot", "", on_kv, out, &err), 3);
    assert_string_equal(out, "a/1=one;a/\xff=hi;b=;");
    im_store_destroy(s);
}

static void test_accounts(void **state)
{
    (void)state;
    im_store *s = open_store(false);
    reset();
    const uint8_t t1[] = { 1, 2, 3 }, t2[] = { 4, 5 }, t3[] = { 6 }, t4[] = { 7 };
    assert_int_equal(account(s, (im_account_request){ .op = IM_ACCOUNT_CREATE, .user = "ann",
                                                       .display_name = "Ann",
                                                       .secret = "$argon2id$h1", .now_ms = 5,
                                                       .token = t1, .token_len = sizeof t1,
                                                       .expires_ms = 1000, .keep = 2 }),
                     IM_OK);
    assert_false(W.has_rec);
    assert_int_equal(account(s, (im_account_request){ .op = IM_ACCOUNT_CREATE, .user = "ann",
                                                       .secret = "$x" }), IM_EUSEREXISTS);
    assert_int_equal(account(s, (im_account_request){ .op = IM_ACCOUNT_GET, .user = "ann" }),
                     IM_OK);
    assert_string_equal(W.user, "ann");
    assert_string_equal(W.name, "Ann");
    assert_string_equal(W.secret, "$argon2id$h1");
    assert_int_equal(account(s, (im_account_request){ .op = IM_ACCOUNT_GET, .user = "bo" }),
                     IM_ENOTFOUND);
    assert_int_equal(account(s, (im_account_request){ .op = IM_ACCOUNT_TOKEN_GET, .token = t1,
                                                       .token_len = sizeof t1, .now_ms = 999 }),
                     IM_OK);
    assert_string_equal(W.user, "ann");
    assert_false(W.has_secret);
    assert_int_equal(account(s, (im_account_request){ .op = IM_ACCOUNT_TOKEN_GET, .token = t1,
                                                       .token_len = sizeof t1, .now_ms = 1000 }),
                     IM_ENOTFOUND); /* expired, and deleted */
    assert_int_equal(account(s, (im_account_request){ .op = IM_ACCOUNT_TOKEN_PUT, .user = "zz",
                                                       .token = t2, .token_len = sizeof t2,
                                                       .expires_ms = 10 }), IM_ENOTFOUND);
    /* keep 2: the third put drops the oldest. */
    const uint8_t *toks[] = { t2, t3, t4 };
    for (int i = 0; i < 3; i++)
        assert_int_equal(account(s, (im_account_request){ .op = IM_ACCOUNT_TOKEN_PUT,
                                                           .user = "ann", .token = toks[i],
                                                           .token_len = i ? 1 : 2,
                                                           .expires_ms = 100 + (uint64_t)i,
                                                           .keep = 2 }), IM_OK);
    assert_int_equal(account(s, (im_account_request){ .op = IM_ACCOUNT_TOKEN_GET, .token = t2,
                                                       .token_len = sizeof t2, .now_ms = 1 }),
                     IM_ENOTFOUND);
    assert_int_equal(account(s, (im_account_request){ .op = IM_ACCOUNT_TOKEN_DELETE, .token = t3,
                                                       .token_len = 1 }), IM_OK);
    assert_int_equal(account(s, (im_account_request){ .op = IM_ACCOUNT_TOKEN_DELETE, .token = t3,
                                                       .token_len = 1 }), IM_OK);
    assert_int_equal(account(s, (im_account_request){ .op = IM_ACCOUNT_TOKENS_DELETE_USER,
                                                       .user = "ann" }), IM_OK);
    assert_int_equal(W.count, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(account(s, (im_account_request){ .op = IM_ACCOUNT_TOKEN_PUT,
                                                           .user = "ann", .token = toks[i],
                                                           .token_len = i ? 1 : 2,
                                                           .expires_ms = 100 + (uint64_t)i }),
                         IM_OK);
    assert_int_equal(account(s, (im_account_request){ .op = IM_ACCOUNT_TOKENS_EXPIRE,
                                                       .now_ms = 500, .keep = 2 }), IM_OK);
    assert_int_equal(W.count, 2);
    assert_int_equal(account(s, (im_account_request){ .op = IM_ACCOUNT_TOKENS_EXPIRE,
                                                       .now_ms = 500, .keep = 2 }), IM_OK);
    assert_int_equal(W.count, 1);
    im_error err = { 0 };
    im_account_request bad = { .size = sizeof bad, .op = IM_ACCOUNT_CREATE, .user = "bad id!",
                               .secret = "$x" };
    assert_int_equal(s->ops->account(s, &bad, on_account, NULL, &err), IM_EINVAL);
    im_store_destroy(s);
}

/* A barrier whose completion holds the storage thread until released:
 * what is queued meanwhile stays queued. */
static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cond = PTHREAD_COND_INITIALIZER;
static int hold_state; /* 0 free, 1 holding, 2 released */

static void on_hold(void *arg, int rc, const im_error *err)
{
    (void)arg;
    (void)rc;
    (void)err;
    pthread_mutex_lock(&hold_lock);
    hold_state = 1;
    pthread_cond_broadcast(&hold_cond);
    while (hold_state != 2)
        pthread_cond_wait(&hold_cond, &hold_lock);
    pthread_mutex_unlock(&hold_lock);
}

static void test_max_queue_busy(void **state)
{
    (void)state;
    im_pg_store_config cfg = { .conninfo = conninfo(), .max_queue = 5 };
    im_store *s = NULL;
    im_error err = { 0 };
    assert_int_equal(im_pg_store_new(&cfg, &s, &err), IM_OK);
    reset();
    hold_state = 0;
    assert_int_equal(s->ops->barrier(s, on_hold, NULL, &err), IM_OK);
    pthread_mutex_lock(&hold_lock);
    while (hold_state != 1)
        pthread_cond_wait(&hold_cond, &hold_lock);
    pthread_mutex_unlock(&hold_lock);
    int accepted = 0, busy = 0;
    char cmid[16];
    for (int i = 0; i < 8; i++) {
        snprintf(cmid, sizeof cmid, "q-%d", i);
        im_message m = { .kind = IM_MESSAGE_PRIVATE, .sender = "a", .target = "b",
                         .client_msg_id = cmid, .body = (const uint8_t *)"x", .body_len = 1 };
        int rc = s->ops->append(s, &m, on_append, NULL, &err);
        if (rc == IM_OK)
            accepted++;
        else if (rc == IM_EBUSY)
            busy++;
    }
    /* Acks and barriers are never refused. */
    assert_int_equal(s->ops->ack(s, "b", "p:a:b", 1, &err), IM_OK);
    assert_int_equal(accepted, 5);
    assert_int_equal(busy, 3);
    pthread_mutex_lock(&hold_lock);
    hold_state = 2;
    pthread_cond_broadcast(&hold_cond);
    pthread_mutex_unlock(&hold_lock);
    wait_done(accepted);
    assert_int_equal(W.seq, 5);
    im_store_destroy(s);
}

/* The store's connections killed under it (as a restart of PostgreSQL
 * does): what was answered OK is stored, what was answered EIO is not, and
 * the store reconnects by itself. */
static void test_connection_killed(void **state)
{
    (void)state;
    im_store *s = open_store(false);
    reset();
    assert_int_equal(append(s, IM_MESSAGE_PRIVATE, "alice", "bob", "k-0", "before"), IM_OK);
    im_error err = { 0 };
    char out[256] = "";
    assert_int_equal(s->ops->kv_put(s, "ns", "k", "v", 1, NULL, NULL, &err), IM_OK);
    barrier(s);
    assert_int_equal(s->ops->kv_each(s, "ns", "", on_kv, out, &err), 1); /* the reader is up */
    sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'imcore' AND pid <> pg_backend_pid()");
    int ok = 0, eio = 0;
    uint64_t last = 1;
    char cmid[16];
    for (int i = 1; ok < 5 && i < 200; i++) {
        snprintf(cmid, sizeof cmid, "k-%d", i);
        int rc = append(s, IM_MESSAGE_PRIVATE, "alice", "bob", cmid, "after");
        if (rc == IM_OK) {
            assert_int_equal(W.seq, last + 1); /* nothing refused took a seq */
            last = W.seq;
            ok++;
        } else {
            assert_int_equal(rc, IM_EIO);
            assert_int_equal(ok, 0); /* once back, it stays back */
            eio++;
        }
    }
    assert_int_equal(ok, 5);
    assert_true(eio <= 1); /* the batch sent on the dead connection, at most */
    out[0] = '\0';
    assert_int_equal(s->ops->kv_each(s, "ns", "", on_kv, out, &err), 1); /* reconnected */
    assert_int_equal(pending(s, "bob", 100, 0), 6);
    im_store_destroy(s);
}

static void test_foreign_and_newer_refused(void **state)
{
    (void)state;
    im_store *s = open_store(false);
    im_store_destroy(s);
    sql("UPDATE imcore_schema SET version = 1000");
    im_pg_store_config cfg = { .conninfo = conninfo() };
    im_error err = { 0 };
    assert_int_equal(im_pg_store_new(&cfg, &s, &err), IM_EIO);
    assert_non_null(strstr(err.msg, "newer than this server"));
    sql("SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
        " CREATE TABLE orders (id int)");
    assert_int_equal(im_pg_store_new(&cfg, &s, &err), IM_EIO);
    assert_non_null(strstr(err.msg, "not an imcore database"));
}

int main(void)
{
    pthread_mutex_init(&W.lock, NULL);
    pthread_cond_init(&W.cond, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_append_seq_dedupe_order, setup),
        cmocka_unit_test_setup(test_receivers_need_account, setup),
        cmocka_unit_test_setup(test_pending_ack_history, setup),
        cmocka_unit_test_setup(test_groups, setup),
        cmocka_unit_test_setup(test_kv, setup),
        cmocka_unit_test_setup(test_accounts, setup),
        cmocka_unit_test_setup(test_max_queue_busy, setup),
        cmocka_unit_test_setup(test_connection_killed, setup),
        cmocka_unit_test_setup(test_foreign_and_newer_refused, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
