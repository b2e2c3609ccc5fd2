/* tests/store_sqlite/test_sqlite_store.c: the durable store port on SQLite,
 * through its storage thread, against real files in a fresh temporary
 * directory per test: what a completion says was stored is there after the
 * store is destroyed and opened again, and nothing else is.
 *
 * Completions run on the storage thread; the test waits for them with a
 * condition variable, or lets destroy (which drains the queue) wait.
 *
 * What every engine must do (the key-value map, order, dedupe, a failed
 * commit, durability) is tested by tests/store_conformance against this
 * store as the server opens it; this file keeps what is SQLite's own. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "im_sqlite_db.h"
#include "im_sqlite_store.h"
#include "test_dir.h"

/* ---- files ---- */

/* The files: tests/fakes/test_dir.h. */
typedef test_db_dir fixture;

static im_store *open_store(const char *path, uint32_t max_page_count, unsigned max_batch)
{
    im_sqlite_store_config cfg = { .path = path, .max_batch = max_batch,
                                   .max_page_count = max_page_count };
    im_store *s = NULL;
    im_error err = { 0 };
    int rc = im_sqlite_store_new(&cfg, &s, &err);
    if (rc != IM_OK)
        fail_msg("open %s: %s", path, err.msg);
    assert_non_null(s);
    return s;
}

/* ---- completions, from the storage thread ---- */

#define MAX_CALLS 128

/* Every completion the test asked for, in the order they ran. */
typedef struct journal {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int n;
    int tag[MAX_CALLS]; /* which request, in completion order */
    int rc[MAX_CALLS];
    uint64_t seq[MAX_CALLS]; /* appends: the stored message's */
    int bad; /* completions that broke a rule; checked on the test's thread */
} journal;

typedef struct call {
    journal *j;
    int tag;
} call;

static void journal_init(journal *j)
{
    memset(j, 0, sizeof *j);
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->changed, NULL);
}

static void journal_destroy(journal *j)
{
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->changed);
}

/* Runs on the storage thread, where cmocka cannot fail a test: what is
 * wrong is counted, and wait_for fails on the test's thread. */
static void record(call *c, int rc, const im_error *err, uint64_t seq)
{
    journal *j = c->j;
    pthread_mutex_lock(&j->lock);
    /* A failure carries its reason, with the same code. */
    if (rc != IM_OK && (!err || err->code != rc || !err->msg[0]))
        j->bad++;
    if (j->n < MAX_CALLS) {
        j->tag[j->n] = c->tag;
        j->rc[j->n] = rc;
        j->seq[j->n] = seq;
    } else {
        j->bad++;
    }
    j->n++;
    pthread_cond_broadcast(&j->changed);
    pthread_mutex_unlock(&j->lock);
}

static void on_done(void *arg, int rc, const im_error *err)
{
    record(arg, rc, err, 0);
}

static void on_append(void *arg, int rc, const im_message *m, bool duplicate,
                      const im_error *err)
{
    (void)duplicate;
    record(arg, rc, err, rc == IM_OK && m ? m->seq : 0);
}

/* Waits (at most 10 s) until n completions have run. */
static void wait_for(journal *j, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&j->lock);
    int rc = 0;
    while (j->n < n && rc == 0)
        rc = pthread_cond_timedwait(&j->changed, &j->lock, &until);
    int got = j->n, bad = j->bad;
    pthread_mutex_unlock(&j->lock);
    if (got < n)
        fail_msg("waited for %d completions, %d ran", n, got);
    assert_int_equal(bad, 0);
}

static void put(im_store *s, const char *ns, const char *key, const void *value, size_t len,
                call *c)
{
    im_error err = { 0 };
    int rc = s->ops->kv_put(s, ns, key, value, len, c ? on_done : NULL, c, &err);
    if (rc != IM_OK)
        fail_msg("kv_put %s %s: %s", ns, key, err.msg);
}

/* ---- acks: a flood costs one queued request per conversation ---- */

/* Holds the storage thread inside a barrier's completion until opened. */
typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    bool entered, open;
} gate;

static void gate_hold(void *arg, int rc, const im_error *err)
{
    (void)rc, (void)err;
    gate *g = arg;
    pthread_mutex_lock(&g->lock);
    g->entered = true;
    pthread_cond_broadcast(&g->changed);
    while (!g->open)
        pthread_cond_wait(&g->changed, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

/* A pending read: how many messages it gave, and its completion. */
typedef struct pending_read {
    call c;
    int n;
} pending_read;

static bool count_pending(void *arg, const im_message *m)
{
    (void)m;
    ((pending_read *)arg)->n++;
    return true;
}

static void pending_done(void *arg, int rc, const im_error *err)
{
    record(&((pending_read *)arg)->c, rc, err, 0);
}

static void test_acks_coalesce(void **state)
{
    fixture *fx = *state;
    im_sqlite_store_config cfg = { .path = fx->path, .max_batch = 64, .max_queue = 16 };
    im_store *s = NULL;
    im_error err = { 0 };
    assert_int_equal(im_sqlite_store_new(&cfg, &s, &err), IM_OK);
    journal j;
    journal_init(&j);
    call calls[8];
    for (int i = 0; i < 8; i++)
        calls[i] = (call){ .j = &j, .tag = i };
    im_message m = { .kind = IM_MESSAGE_PRIVATE, .sender = "alice", .target = "bob",
                     .body = (const uint8_t *)"hi", .body_len = 2 };
    const char *cmids[] = { "m1", "m2", "m3" };
    for (int i = 0; i < 3; i++) {
        m.client_msg_id = cmids[i];
        assert_int_equal(s->ops->append(s, &m, on_append, &calls[i], &err), IM_OK);
    }
    wait_for(&j, 3);

    gate g = { .entered = false, .open = false };
    pthread_mutex_init(&g.lock, NULL);
    pthread_cond_init(&g.changed, NULL);
    assert_int_equal(s->ops->barrier(s, gate_hold, &g, &err), IM_OK);
    pthread_mutex_lock(&g.lock);
    while (!g.entered)
        pthread_cond_wait(&g.changed, &g.lock);
    pthread_mutex_unlock(&g.lock);

    /* The thread is held and the queue empty: 10,000 acks, out of order,
     * queue one request, so max_queue (16) still has room for a message. */
    for (int i = 0; i < 10000; i++)
        assert_int_equal(s->ops->ack(s, "bob", "p:alice:bob", (uint64_t)(i % 3) + 1, &err),
                         IM_OK);
    m.client_msg_id = "m4";
    int rc = s->ops->append(s, &m, on_append, &calls[3], &err);
    pthread_mutex_lock(&g.lock);
    g.open = true;
    pthread_cond_broadcast(&g.changed);
    pthread_mutex_unlock(&g.lock);
    if (rc != IM_OK)
        fail_msg("an append after 10,000 acks was refused: %s", err.msg);
    wait_for(&j, 4);

    /* The acks kept the highest seq: only m4 is pending for bob. */
    pending_read pr = { .c = calls[4], .n = 0 };
    assert_int_equal(s->ops->pending(s, "bob", 100, count_pending, pending_done, &pr, &err),
                     IM_OK);
    wait_for(&j, 5);
    assert_int_equal(pr.n, 1);
    im_store_destroy(s);
    pthread_mutex_destroy(&g.lock);
    pthread_cond_destroy(&g.changed);
    journal_destroy(&j);
}

static bool is_svc(void *arg, const char *user)
{
    (void)arg;
    return strcmp(user, "svc") == 0;
}

/* Logins need accounts: a private message to an id without one is refused
 * by its completion, in order with the others of its batch, which are
 * stored; a service account needs none. */
static void test_unknown_receiver(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = NULL;
    im_error err = { 0 };
    im_sqlite_options o = { .path = fx->path };
    assert_int_equal(im_sqlite_db_open(&o, &db, &err), IM_OK);
    assert_int_equal(im_sqlite_db_user_create(db, "bob", NULL, "$argon2id$x", 1, &err), IM_OK);
    im_sqlite_db_close(db);

    im_sqlite_store_config cfg = { .path = fx->path, .max_batch = 64,
                                   .receivers_need_account = true,
                                   .is_service_account = is_svc };
    im_store *s = NULL;
    assert_int_equal(im_sqlite_store_new(&cfg, &s, &err), IM_OK);
    journal j;
    journal_init(&j);
    const char *to[] = { "bob", "ghost", "svc", "bob", "ghost" };
    const uint64_t seq[] = { 1, 0, 1, 2, 0 };
    call c[5];
    for (int i = 0; i < 5; i++) {
        c[i] = (call){ &j, i };
        char cmid[8];
        snprintf(cmid, sizeof cmid, "m-%d", i);
        im_message m = { .kind = IM_MESSAGE_PRIVATE, .sender = "alice", .target = to[i],
                         .client_msg_id = cmid, .body = (const uint8_t *)"hi",
                         .body_len = 2 };
        assert_int_equal(s->ops->append(s, &m, on_append, &c[i], &err), IM_OK);
    }
    wait_for(&j, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(j.tag[i], i);
        assert_int_equal(j.rc[i], seq[i] ? IM_OK : IM_EUNKNOWNUSER);
        assert_int_equal(j.seq[i], seq[i]);
    }
    im_store_destroy(s);
    journal_destroy(&j);
}

/* ---- group changes ---- */

typedef struct change_call {
    call c;
    uint64_t seq;   /* written before the completion is recorded, read after */
} change_call;

static void on_change(void *arg, int rc, uint64_t seq, const im_error *err)
{
    change_call *cc = arg;
    cc->seq = seq;
    record(&cc->c, rc, err, seq);
}

static void change(im_store *s, im_group_change_kind kind, const char *group, const char *user,
                   uint32_t flags, change_call *cc)
{
    im_group_change ch = { .size = sizeof ch, .kind = kind, .group = group, .user = user,
                           .max_members = 10, .flags = flags };
    im_error err = { 0 };
    int rc = s->ops->group_change(s, &ch, on_change, cc, &err);
    if (rc != IM_OK)
        fail_msg("group_change %d %s: %s", (int)kind, group, err.msg);
}

static void say_to(im_store *s, const char *group, call *c)
{
    char cmid[16];
    snprintf(cmid, sizeof cmid, "g-%d", c->tag);
    im_message m = { .kind = IM_MESSAGE_GROUP, .sender = "alice", .target = group,
                     .client_msg_id = cmid, .body = (const uint8_t *)"hi", .body_len = 2 };
    im_error err = { 0 };
    assert_int_equal(s->ops->append(s, &m, on_append, c, &err), IM_OK);
}

typedef struct group_seen {
    char owner[IM_USER_ID_MAX + 1], creator[IM_USER_ID_MAX + 1];
    char members[4][IM_USER_ID_MAX + 1], invited[4][IM_USER_ID_MAX + 1];
    uint64_t since[4];
    size_t nmembers, ninvited, ngroups;
    uint32_t flags;
} group_seen;

static int see_group(void *arg, const im_group_record *r)
{
    group_seen *gs = arg;
    gs->ngroups++;
    snprintf(gs->owner, sizeof gs->owner, "%s", r->owner ? r->owner : "(null)");
    snprintf(gs->creator, sizeof gs->creator, "%s", r->creator ? r->creator : "(null)");
    gs->flags = r->flags;
    gs->nmembers = r->nmembers;
    gs->ninvited = r->ninvited;
    for (size_t i = 0; i < r->nmembers && i < 4; i++) {
        snprintf(gs->members[i], sizeof gs->members[i], "%s", r->members[i]);
        gs->since[i] = r->since ? r->since[i] : 99;
    }
    for (size_t i = 0; i < r->ninvited && i < 4; i++)
        snprintf(gs->invited[i], sizeof gs->invited[i], "%s", r->invited[i]);
    return 0;
}

/* Group changes go through the storage thread in order with appends: a
 * join's seq is the last of the messages appended before it; refusals of
 * the data come back through the completion; and what was stored is what
 * load_groups hands out after a restart. */
static void test_group_changes(void **state)
{
    fixture *fx = *state;
    im_store *s = open_store(fx->path, 0, 64);
    journal j;
    journal_init(&j);
    change_call cc[8];
    call msg[2] = { { &j, 100 }, { &j, 101 } };
    for (int i = 0; i < 8; i++)
        cc[i] = (change_call){ .c = { &j, i }, .seq = 77 };
    change(s, IM_GROUP_CHANGE_CREATE, "club", "alice", IM_STORE_GROUP_PRIVATE, &cc[0]);
    say_to(s, "club", &msg[0]);
    say_to(s, "club", &msg[1]);
    change(s, IM_GROUP_CHANGE_JOIN, "club", "bob", 0, &cc[1]);    /* not invited */
    change(s, IM_GROUP_CHANGE_INVITE, "club", "bob", 0, &cc[2]);
    change(s, IM_GROUP_CHANGE_INVITE, "club", "carol", 0, &cc[3]);
    change(s, IM_GROUP_CHANGE_JOIN, "club", "bob", 0, &cc[4]);
    change(s, IM_GROUP_CHANGE_TRANSFER, "club", "bob", 0, &cc[5]);
    change(s, IM_GROUP_CHANGE_CREATE, "gone", "alice", 0, &cc[6]);
    change(s, IM_GROUP_CHANGE_DELETE, "gone", NULL, 0, &cc[7]);
    wait_for(&j, 10);
    static const int order[] = { 0, 100, 101, 1, 2, 3, 4, 5, 6, 7 };
    for (int i = 0; i < 10; i++)
        assert_int_equal(j.tag[i], order[i]);
    assert_int_equal(cc[0].seq, 0);
    assert_int_equal(j.rc[3], IM_ENOGROUP);
    assert_int_equal(cc[1].seq, 0);
    assert_int_equal(j.rc[6], IM_OK);
    assert_int_equal(cc[4].seq, 2);
    for (int i = 7; i < 10; i++)
        assert_int_equal(j.rc[i], IM_OK);
    im_group_change bad = { .size = sizeof bad, .kind = IM_GROUP_CHANGE_JOIN, .group = "club" };
    im_error err = { 0 };
    assert_int_equal(s->ops->group_change(s, &bad, on_change, &cc[0], &err), IM_EINVAL);
    im_store_destroy(s);

    s = open_store(fx->path, 0, 64);
    group_seen gs = { 0 };
    assert_int_equal(s->ops->load_groups(s, see_group, &gs, &err), IM_OK);
    assert_int_equal(gs.ngroups, 1);
    assert_int_equal(gs.flags, IM_STORE_GROUP_PRIVATE);
    assert_string_equal(gs.owner, "bob");
    assert_string_equal(gs.creator, "alice");
    assert_int_equal(gs.nmembers, 2);
    assert_string_equal(gs.members[1], "bob");
    assert_int_equal(gs.since[0], 0);
    assert_int_equal(gs.since[1], 2);
    assert_int_equal(gs.ninvited, 1);
    assert_string_equal(gs.invited[0], "carol");
    im_store_destroy(s);
    journal_destroy(&j);
}


/* ---- reads as requests: history_read and pending_read ---- */

/* What a read handed out: seqs and body sizes in order, and whether each
 * ran on a thread other than the test's (the storage thread). */
typedef struct read_seen {
    call c;
    pthread_t test_thread;
    int n;
    uint64_t seq[32];
    size_t len[32];
    int on_test_thread;
} read_seen;

static bool see_read(void *arg, const im_message *m)
{
    read_seen *rs = arg;
    if (pthread_equal(pthread_self(), rs->test_thread))
        rs->on_test_thread++;
    if (rs->n < 32) {
        rs->seq[rs->n] = m->seq;
        rs->len[rs->n] = m->body_len;
    }
    rs->n++;
    return true;
}

static void read_done(void *arg, int rc, const im_error *err)
{
    record(&((read_seen *)arg)->c, rc, err, 0);
}

static void gate_wait_entered(gate *g)
{
    pthread_mutex_lock(&g->lock);
    while (!g->entered)
        pthread_cond_wait(&g->changed, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->open = true;
    pthread_cond_broadcast(&g->changed);
    pthread_mutex_unlock(&g->lock);
}

/* A history read asked for right after an append, before the append has
 * completed or been committed, reads it: the store runs it on its own
 * thread, after the append, and completes it after the append's
 * completion. */
static void test_history_read_in_order(void **state)
{
    fixture *fx = *state;
    im_store *s = open_store(fx->path, 0, 64);
    assert_true(IM_STORE_HAS(s, history_read));
    journal j;
    journal_init(&j);
    call append_call = { .j = &j, .tag = 1 };
    read_seen rs = { .c = { .j = &j, .tag = 2 }, .test_thread = pthread_self() };
    im_error err = { 0 };

    /* Held, so that the append and the read wait in the queue together
     * and go into one batch: the read must see the uncommitted append. */
    gate g = { .entered = false, .open = false };
    pthread_mutex_init(&g.lock, NULL);
    pthread_cond_init(&g.changed, NULL);
    assert_int_equal(s->ops->barrier(s, gate_hold, &g, &err), IM_OK);
    gate_wait_entered(&g);
    im_message m = { .kind = IM_MESSAGE_PRIVATE, .sender = "alice", .target = "bob",
                     .client_msg_id = "m1", .body = (const uint8_t *)"hello", .body_len = 5 };
    assert_int_equal(s->ops->append(s, &m, on_append, &append_call, &err), IM_OK);
    assert_int_equal(s->ops->history_read(s, "p:alice:bob", 0, 10, 0, see_read, read_done, &rs,
                                          &err), IM_OK);
    assert_int_equal(rs.n, 0); /* nothing read on the caller's thread */
    gate_open(&g);
    wait_for(&j, 2);
    assert_int_equal(j.tag[0], 1);
    assert_int_equal(j.tag[1], 2);
    assert_int_equal(j.rc[1], IM_OK);
    assert_int_equal(rs.n, 1);
    assert_int_equal(rs.seq[0], 1);
    assert_int_equal(rs.len[0], 5);
    assert_int_equal(rs.on_test_thread, 0);

    /* A bad conversation is refused by the call, and done never runs. */
    assert_int_equal(s->ops->history_read(s, NULL, 0, 10, 0, see_read, read_done, &rs, &err),
                     IM_EINVAL);
    im_store_destroy(s);
    assert_int_equal(j.n, 2);
    pthread_mutex_destroy(&g.lock);
    pthread_cond_destroy(&g.changed);
    journal_destroy(&j);
}

/* Both reads stop after the message whose body brings the bodies read to
 * their byte budget: the newest for history (handed out oldest first),
 * the oldest for pending. */
static void test_reads_stop_at_budget(void **state)
{
    fixture *fx = *state;
    im_store *s = open_store(fx->path, 0, 64);
    assert_true(IM_STORE_HAS(s, pending_read));
    journal j;
    journal_init(&j);
    call calls[10];
    static uint8_t body[1000];
    memset(body, 'x', sizeof body);
    im_error err = { 0 };
    char cmid[10][8];
    for (int i = 0; i < 10; i++) {
        calls[i] = (call){ .j = &j, .tag = i };
        snprintf(cmid[i], sizeof cmid[i], "m%d", i);
        im_message m = { .kind = IM_MESSAGE_PRIVATE, .sender = "alice", .target = "bob",
                         .client_msg_id = cmid[i], .body = body, .body_len = sizeof body };
        assert_int_equal(s->ops->append(s, &m, on_append, &calls[i], &err), IM_OK);
    }
    wait_for(&j, 10);

    read_seen h = { .c = { .j = &j, .tag = 20 }, .test_thread = pthread_self() };
    assert_int_equal(s->ops->history_read(s, "p:alice:bob", 0, 10, 2500, see_read, read_done,
                                          &h, &err), IM_OK);
    wait_for(&j, 11);
    assert_int_equal(h.n, 3);
    assert_int_equal(h.seq[0], 8);
    assert_int_equal(h.seq[2], 10);

    read_seen older = { .c = { .j = &j, .tag = 21 }, .test_thread = pthread_self() };
    assert_int_equal(s->ops->history_read(s, "p:alice:bob", 8, 10, 1000, see_read, read_done,
                                          &older, &err), IM_OK);
    wait_for(&j, 12);
    assert_int_equal(older.n, 1);
    assert_int_equal(older.seq[0], 7);

    read_seen all = { .c = { .j = &j, .tag = 22 }, .test_thread = pthread_self() };
    assert_int_equal(s->ops->history_read(s, "p:alice:bob", 0, 10, 0, see_read, read_done,
                                          &all, &err), IM_OK);
    wait_for(&j, 13);
    assert_int_equal(all.n, 10);
    assert_int_equal(all.seq[0], 1);

    read_seen p = { .c = { .j = &j, .tag = 23 }, .test_thread = pthread_self() };
    assert_int_equal(s->ops->pending_read(s, "bob", 100, 2500, see_read, read_done, &p, &err),
                     IM_OK);
    wait_for(&j, 14);
    assert_int_equal(p.n, 3);
    assert_int_equal(p.seq[0], 1);
    assert_int_equal(p.seq[2], 3);
    assert_int_equal(p.on_test_thread, 0);

    read_seen whole = { .c = { .j = &j, .tag = 24 }, .test_thread = pthread_self() };
    assert_int_equal(s->ops->pending(s, "bob", 100, see_read, read_done, &whole, &err), IM_OK);
    wait_for(&j, 15);
    assert_int_equal(whole.n, 10);
    im_store_destroy(s);
    journal_destroy(&j);
}

/* ---- accounts ---- */

/* Holds the storage thread (gate_hold, above) until the test has queued
 * what it wants in the next batch, so that those requests share one
 * transaction whatever the timing. */
static void gate_close(im_store *s, gate *g)
{
    *g = (gate){ .lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER };
    assert_int_equal(s->ops->barrier(s, gate_hold, g, NULL), IM_OK);
    pthread_mutex_lock(&g->lock);
    while (!g->entered)
        pthread_cond_wait(&g->changed, &g->lock);
    pthread_mutex_unlock(&g->lock);
}


typedef struct account_call {
    call c;
    char user[IM_USER_ID_MAX + 1]; /* written before the completion is recorded */
    bool secret;
} account_call;

static void on_account(void *arg, int rc, const im_account_record *rec, const im_error *err)
{
    account_call *ac = arg;
    if (rec) {
        snprintf(ac->user, sizeof ac->user, "%s", rec->user ? rec->user : "");
        ac->secret = rec->secret && rec->secret[0];
    }
    record(&ac->c, rc, err, 0);
}

static const uint8_t TOKEN_A[32] = { 0xaa, 1 }, TOKEN_B[32] = { 0xbb, 2 };

static void account(im_store *s, im_account_op op, const char *user, const uint8_t *token,
                    account_call *ac)
{
    im_account_request q = { .size = sizeof q, .op = op, .user = user,
                             .secret = "$argon2id$v=19$stand-in", .token = token,
                             .token_len = token ? 32 : 0, .now_ms = 10,
                             .expires_ms = 1000, .keep = 5 };
    im_error err = { 0 };
    int rc = s->ops->account(s, &q, on_account, ac, &err);
    if (rc != IM_OK)
        fail_msg("account %d %s: %s", (int)op, user ? user : "", err.msg);
}

static void private_to(im_store *s, const char *to, call *c)
{
    char cmid[16];
    snprintf(cmid, sizeof cmid, "p-%d", c->tag);
    im_message m = { .kind = IM_MESSAGE_PRIVATE, .sender = "alice", .target = to,
                     .client_msg_id = cmid, .body = (const uint8_t *)"hi", .body_len = 2 };
    assert_int_equal(s->ops->append(s, &m, on_append, c, NULL), IM_OK);
}

/* Account requests in one batch with messages: an account created in it is
 * seen by the receiver check of the messages after it, not before; a
 * refusal (the id taken, no such token) is that request's answer alone, and
 * the batch's other writes are kept. */
static void test_accounts_in_batch(void **state)
{
    fixture *fx = *state;
    im_sqlite_store_config cfg = { .path = fx->path, .max_batch = 64,
                                   .receivers_need_account = true };
    im_store *s = NULL;
    assert_int_equal(im_sqlite_store_new(&cfg, &s, NULL), IM_OK);
    journal j;
    journal_init(&j);
    gate g;
    gate_close(s, &g);
    call m1 = { &j, 1 }, m3 = { &j, 3 }, m5 = { &j, 5 };
    account_call a2 = { { &j, 2 }, "", false }, a4 = { { &j, 4 }, "", false },
                 a6 = { { &j, 6 }, "", false }, a7 = { { &j, 7 }, "", false },
                 a8 = { { &j, 8 }, "", false };
    private_to(s, "carol", &m1);
    account(s, IM_ACCOUNT_CREATE, "carol", TOKEN_A, &a2);
    private_to(s, "carol", &m3);
    account(s, IM_ACCOUNT_CREATE, "carol", NULL, &a4);
    private_to(s, "carol", &m5);
    account(s, IM_ACCOUNT_GET, "carol", NULL, &a6);
    account(s, IM_ACCOUNT_TOKEN_GET, NULL, TOKEN_A, &a7);
    account(s, IM_ACCOUNT_TOKEN_GET, NULL, TOKEN_B, &a8);
    gate_open(&g);
    wait_for(&j, 8);
    const int want[] = { IM_EUNKNOWNUSER, IM_OK, IM_OK, IM_EUSEREXISTS, IM_OK, IM_OK, IM_OK,
                         IM_ENOTFOUND };
    for (int i = 0; i < 8; i++) {
        assert_int_equal(j.tag[i], i + 1);
        assert_int_equal(j.rc[i], want[i]);
    }
    assert_int_equal(j.seq[2], 1);
    assert_int_equal(j.seq[4], 2);
    assert_string_equal(a6.user, "carol");
    assert_true(a6.secret);
    assert_string_equal(a7.user, "carol");
    assert_false(a7.secret);
    im_store_destroy(s);

    /* All of it was committed. */
    s = open_store(fx->path, 0, 8);
    account_call b1 = { { &j, 9 }, "", false }, b2 = { { &j, 10 }, "", false };
    account(s, IM_ACCOUNT_GET, "carol", NULL, &b1);
    account(s, IM_ACCOUNT_TOKEN_GET, NULL, TOKEN_A, &b2);
    wait_for(&j, 10);
    assert_int_equal(j.rc[8], IM_OK);
    assert_int_equal(j.rc[9], IM_OK);
    assert_string_equal(b2.user, "carol");
    im_store_destroy(s);
    journal_destroy(&j);
}

/* A batch the disk cannot take: its account writes are answered IM_ENOSPC
 * and are not there after a restart; its account reads are read again
 * after the rollback and answered. */
static void test_accounts_disk_full(void **state)
{
    fixture *fx = *state;
    im_store *s = open_store(fx->path, 100, 64);
    journal j;
    journal_init(&j);
    account_call made = { { &j, 0 }, "", false };
    account(s, IM_ACCOUNT_CREATE, "dave", TOKEN_A, &made);
    wait_for(&j, 1);
    assert_int_equal(j.rc[0], IM_OK);
    gate g;
    gate_close(s, &g);
    /* More than the file may grow by, in the same batch. */
    static char value[IM_STORE_KV_VALUE_MAX];
    memset(value, 'v', sizeof value);
    call puts[8];
    for (int i = 0; i < 8; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%d", i);
        puts[i] = (call){ &j, 1 + i };
        put(s, "bot", key, value, sizeof value, &puts[i]);
    }
    account_call erin = { { &j, 9 }, "", false }, dave = { { &j, 10 }, "", false },
                 tok = { { &j, 11 }, "", false };
    account(s, IM_ACCOUNT_CREATE, "erin", TOKEN_B, &erin);
    account(s, IM_ACCOUNT_GET, "dave", NULL, &dave);
    account(s, IM_ACCOUNT_TOKEN_GET, NULL, TOKEN_A, &tok);
    gate_open(&g);
    wait_for(&j, 12);
    assert_int_equal(j.rc[8], IM_ENOSPC);  /* the last put */
    assert_int_equal(j.rc[9], IM_ENOSPC);  /* erin */
    assert_int_equal(j.rc[10], IM_OK);     /* dave, read again */
    assert_string_equal(dave.user, "dave");
    assert_int_equal(j.rc[11], IM_OK);
    assert_string_equal(tok.user, "dave");
    im_store_destroy(s);

    s = open_store(fx->path, 0, 8);
    account_call again = { { &j, 12 }, "", false };
    account(s, IM_ACCOUNT_GET, "erin", NULL, &again);
    wait_for(&j, 13);
    assert_int_equal(j.rc[12], IM_ENOTFOUND);
    im_store_destroy(s);
    journal_destroy(&j);
}

#define T(f) cmocka_unit_test_setup_teardown(f, test_db_dir_setup, test_db_dir_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_acks_coalesce),
        T(test_unknown_receiver),
        T(test_group_changes),
        T(test_history_read_in_order),
        T(test_reads_stop_at_budget),
        T(test_accounts_in_batch),
        T(test_accounts_disk_full),
    };
    return cmocka_run_group_tests_name("sqlite_store", tests, NULL, NULL);
}
