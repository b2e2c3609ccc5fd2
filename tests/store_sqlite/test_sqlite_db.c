/* tests/store_sqlite/test_sqlite_db.c: the SQLite data layer of the durable
 * store, against real files in a fresh temporary directory per test.
 *
 * Run as "test_sqlite_db unit" (schema, messages, cursors, groups, accounts,
 * refusal of files that are not ours) or "test_sqlite_db fault" (a disk that
 * fills up, and a sweep that fails the Nth write or sync of SQLite's VFS until
 * the work goes through, checking after each that the file opens, passes
 * quick_check and holds everything that was acknowledged and nothing half). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "im_sqlite_db.h"
#include "test_dir.h"
#include "domain/group.h"
#include "domain/message.h"

/* ---- files ---- */

/* The files: tests/fakes/test_dir.h. */
typedef test_db_dir fixture;

static void path_in(const fixture *fx, char *buf, const char *name)
{
    assert_true(snprintf(buf, PATH_MAX, "%s/%s", fx->dir, name) < PATH_MAX);
}

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static bool side_file_exists(const char *path, const char *suffix)
{
    char p[PATH_MAX + 8];
    snprintf(p, sizeof p, "%s%s", path, suffix);
    return exists(p);
}

/* The whole file, malloc'ed; *len its size. */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void spill(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Deterministic garbage, so that a failure can be reproduced. */
static void garbage(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

/* Runs SQL on a file with SQLite directly, as another program would. */
static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(h, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
    assert_int_equal(sqlite3_close(h), SQLITE_OK);
}

static long long raw_int(const char *path, const char *sql)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_close(h), SQLITE_OK);
    return v;
}

/* ---- the database ---- */

static im_sqlite_db *open_db(const char *path, uint32_t max_page_count)
{
    im_sqlite_options o = { .path = path, .max_page_count = max_page_count,
                            .synchronous_full = true };
    im_sqlite_db *db = NULL;
    im_error err = { 0 };
    int rc = im_sqlite_db_open(&o, &db, &err);
    if (rc != IM_OK)
        fail_msg("open %s: %s (%s)", path, err.msg, im_strerror(rc));
    assert_non_null(db);
    return db;
}

/* Opens a file that must be refused; returns the code, err gets the message. */
static int open_refused(const char *path, im_error *err)
{
    im_sqlite_options o = { .path = path };
    im_sqlite_db *db = (im_sqlite_db *)&o; /* must be set to NULL */
    int rc = im_sqlite_db_open(&o, &db, err);
    assert_null(db);
    assert_int_not_equal(rc, IM_OK);
    assert_int_equal(err->code, rc);
    return rc;
}

/* cmid NULL: one of its own, never used before in this process. */
static int try_send(im_sqlite_db *db, im_message_kind kind, const char *from, const char *to,
                    const char *cmid, const char *body, uint64_t *seq, bool *dup, im_error *err)
{
    static unsigned auto_ids;
    char auto_id[32];
    if (!cmid) {
        snprintf(auto_id, sizeof auto_id, "auto-%u", ++auto_ids);
        cmid = auto_id;
    }
    im_message m = { .kind = kind, .sender = from, .target = to, .client_msg_id = cmid,
                     .body = (const uint8_t *)body, .body_len = strlen(body),
                     .server_time_ms = 1000 };
    int rc = im_sqlite_db_append(db, &m, dup, err);
    if (rc == IM_OK && seq)
        *seq = m.seq;
    return rc;
}

static uint64_t send_msg(im_sqlite_db *db, im_message_kind kind, const char *from, const char *to,
                         const char *cmid, const char *body)
{
    im_error err = { 0 };
    uint64_t seq = 0;
    bool dup = true;
    int rc = try_send(db, kind, from, to, cmid, body, &seq, &dup, &err);
    if (rc != IM_OK)
        fail_msg("append %s -> %s: %s", from, to, err.msg);
    assert_false(dup);
    assert_true(seq > 0);
    return seq;
}

static uint64_t say(im_sqlite_db *db, const char *from, const char *to, const char *body)
{
    return send_msg(db, IM_MESSAGE_PRIVATE, from, to, NULL, body);
}

static uint64_t say_group(im_sqlite_db *db, const char *from, const char *group, const char *body)
{
    return send_msg(db, IM_MESSAGE_GROUP, from, group, NULL, body);
}

/* Messages read back, copied. */
typedef struct rec {
    char conv[IM_CONVERSATION_ID_MAX + 1];
    uint64_t seq, time;
    int kind;
    char sender[IM_USER_ID_MAX + 1], target[IM_USER_ID_MAX + 1];
    char cmid[IM_CLIENT_MSG_ID_MAX + 1];
    char body[128]; /* the first bytes, NUL-terminated */
    size_t body_len;
} rec;

typedef struct recs {
    rec *r;
    size_t n, cap;
    size_t stop_at; /* 0: never; else return stop_rc at the stop_at-th message */
    int stop_rc;
} recs;

static int collect(void *arg, const im_message *m, const char *conv)
{
    recs *rs = arg;
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 16;
        rs->r = realloc(rs->r, rs->cap * sizeof *rs->r);
        assert_non_null(rs->r);
    }
    rec *r = &rs->r[rs->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->conv, sizeof r->conv, "%s", conv);
    r->seq = m->seq;
    r->time = m->server_time_ms;
    r->kind = (int)m->kind;
    snprintf(r->sender, sizeof r->sender, "%s", m->sender);
    snprintf(r->target, sizeof r->target, "%s", m->target);
    assert_non_null(m->client_msg_id);
    snprintf(r->cmid, sizeof r->cmid, "%s", m->client_msg_id);
    r->body_len = m->body_len;
    memcpy(r->body, m->body, m->body_len < sizeof r->body - 1 ? m->body_len : sizeof r->body - 1);
    if (rs->stop_at && rs->n == rs->stop_at)
        return rs->stop_rc;
    return 0;
}

static void recs_reset(recs *rs)
{
    free(rs->r);
    memset(rs, 0, sizeof *rs);
}

static void pending(im_sqlite_db *db, const char *user, size_t limit, recs *rs)
{
    recs_reset(rs);
    im_error err = { 0 };
    int rc = im_sqlite_db_pending(db, user, limit, collect, rs, &err);
    if (rc != IM_OK)
        fail_msg("pending %s: %s", user, err.msg);
}

static void history(im_sqlite_db *db, const char *conv, uint64_t before, size_t limit, recs *rs)
{
    recs_reset(rs);
    im_error err = { 0 };
    int rc = im_sqlite_db_history(db, conv, before, limit, collect, rs, &err);
    if (rc != IM_OK)
        fail_msg("history %s: %s", conv, err.msg);
}

static void expect(const recs *rs, size_t i, const char *conv, uint64_t seq, const char *body)
{
    assert_true(i < rs->n);
    assert_string_equal(rs->r[i].conv, conv);
    assert_int_equal(rs->r[i].seq, seq);
    assert_string_equal(rs->r[i].body, body);
}

static void ack(im_sqlite_db *db, const char *user, const char *conv, uint64_t seq)
{
    im_error err = { 0 };
    int rc = im_sqlite_db_ack(db, user, conv, seq, &err);
    if (rc != IM_OK)
        fail_msg("ack %s %s %llu: %s", user, conv, (unsigned long long)seq, err.msg);
}

static void group_create(im_sqlite_db *db, const char *group, const char *owner, uint32_t max)
{
    im_error err = { 0 };
    int rc = im_sqlite_db_group_create(db, group, owner, max, 5, &err);
    if (rc != IM_OK)
        fail_msg("create %s: %s", group, err.msg);
}

static void join(im_sqlite_db *db, const char *group, const char *user)
{
    im_error err = { 0 };
    int rc = im_sqlite_db_group_add_member(db, group, user, 6, &err);
    if (rc != IM_OK)
        fail_msg("join %s %s: %s", group, user, err.msg);
}

static void leave(im_sqlite_db *db, const char *group, const char *user)
{
    im_error err = { 0 };
    int rc = im_sqlite_db_group_remove_member(db, group, user, &err);
    if (rc != IM_OK)
        fail_msg("leave %s %s: %s", group, user, err.msg);
}

/* Groups read back by groups_load, owned here. */
typedef struct loaded {
    im_group *g[16];
    size_t n;
    size_t stop_at;
} loaded;

static int keep_group(void *arg, im_group *g)
{
    loaded *l = arg;
    assert_true(l->n < 16);
    l->g[l->n++] = g;
    return l->stop_at && l->n == l->stop_at ? 42 : 0;
}

static void loaded_free(loaded *l)
{
    for (size_t i = 0; i < l->n; i++)
        im_group_free(l->g[i]);
    memset(l, 0, sizeof *l);
}

static void load_groups(im_sqlite_db *db, loaded *l)
{
    loaded_free(l);
    im_error err = { 0 };
    int rc = im_sqlite_db_groups_load(db, keep_group, l, &err);
    if (rc != IM_OK)
        fail_msg("groups_load: %s", err.msg);
}

static void expect_members(const im_group *g, const char *const *members, size_t n)
{
    assert_int_equal(im_group_member_count(g), n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(im_group_member(g, i), members[i]);
    assert_string_equal(im_group_owner(g), members[0]);
}

/* Keys and values read back by kv_each, copied. */
typedef struct kv_rec {
    char key[IM_SQLITE_KV_KEY_MAX + 1];
    uint8_t *value;
    size_t len;
} kv_rec;

typedef struct kv_recs {
    kv_rec r[64];
    size_t n;
    size_t stop_at; /* 0: never; else stop at the stop_at-th key */
} kv_recs;

static bool kv_collect(void *arg, const char *key, const void *value, size_t len)
{
    kv_recs *ks = arg;
    assert_true(ks->n < 64);
    assert_non_null(value); /* even when empty */
    kv_rec *r = &ks->r[ks->n++];
    assert_true(strlen(key) <= IM_SQLITE_KV_KEY_MAX);
    strcpy(r->key, key);
    r->value = malloc(len ? len : 1);
    assert_non_null(r->value);
    memcpy(r->value, value, len);
    r->len = len;
    return !(ks->stop_at && ks->n == ks->stop_at);
}

static void kv_recs_reset(kv_recs *ks)
{
    for (size_t i = 0; i < ks->n; i++)
        free(ks->r[i].value);
    memset(ks, 0, sizeof *ks);
}

/* Reads ns by prefix into ks; the count returned must be what was read. */
static void kv_each(im_sqlite_db *db, const char *ns, const char *prefix, kv_recs *ks)
{
    size_t stop_at = ks->stop_at;
    kv_recs_reset(ks);
    ks->stop_at = stop_at;
    im_error err = { 0 };
    int n = im_sqlite_db_kv_each(db, ns, prefix, kv_collect, ks, &err);
    if (n < 0)
        fail_msg("kv_each %s '%s': %s", ns, prefix, err.msg);
    assert_int_equal((size_t)n, ks->n);
}

static void kv_put(im_sqlite_db *db, const char *ns, const char *key, const char *value)
{
    im_error err = { 0 };
    int rc = im_sqlite_db_kv_put(db, ns, key, value, value ? strlen(value) : 0, &err);
    if (rc != IM_OK)
        fail_msg("kv_put %s %s: %s", ns, key, err.msg);
}

/* ks holds exactly keys, in that order, each with its value (the key
 * itself unless values is given). */
static void expect_keys(const kv_recs *ks, const char *const *keys, size_t n,
                        const char *const *values)
{
    if (ks->n != n) {
        for (size_t i = 0; i < ks->n; i++)
            print_message("  got '%s'\n", ks->r[i].key);
        fail_msg("expected %zu keys, got %zu", n, ks->n);
    }
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(ks->r[i].key, keys[i]);
        const char *v = values ? values[i] : keys[i];
        assert_int_equal(ks->r[i].len, strlen(v));
        assert_memory_equal(ks->r[i].value, v, strlen(v));
    }
}

/* ---- opening ---- */

static void test_create_and_reopen_keeps_data(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    struct stat sb;
    assert_int_equal(stat(fx->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    say(db, "alice", "bob", "one");
    say(db, "bob", "alice", "two");
    group_create(db, "team", "alice", 10);
    join(db, "team", "bob");
    say_group(db, "bob", "team", "hi team");
    im_error err = { 0 };
    assert_int_equal(im_sqlite_db_user_create(db, "alice", "Alice", "$argon2id$x", 1, &err), IM_OK);
    im_sqlite_db_close(db);
    /* The log was checkpointed into the file and removed on close. */
    assert_false(side_file_exists(fx->path, "-wal"));

    db = open_db(fx->path, 0);
    recs rs = { 0 };
    history(db, "p:alice:bob", 0, 10, &rs);
    assert_int_equal(rs.n, 2);
    expect(&rs, 0, "p:alice:bob", 1, "one");
    expect(&rs, 1, "p:alice:bob", 2, "two");
    assert_int_equal(say(db, "alice", "bob", "three"), 3);
    history(db, "g:team", 0, 10, &rs);
    assert_int_equal(rs.n, 1);
    expect(&rs, 0, "g:team", 1, "hi team");
    loaded l = { 0 };
    load_groups(db, &l);
    assert_int_equal(l.n, 1);
    expect_members(l.g[0], (const char *[]){ "alice", "bob" }, 2);
    char name[IM_DISPLAY_NAME_MAX + 1], hash[128];
    assert_int_equal(im_sqlite_db_user_get(db, "alice", name, sizeof name, hash, sizeof hash, &err),
                     IM_OK);
    assert_string_equal(name, "Alice");
    loaded_free(&l);
    recs_reset(&rs);
    im_sqlite_db_close(db);
}

static void test_schema_version_and_identity(void **state)
{
    fixture *fx = *state;
    assert_true(im_sqlite_db_schema_version() >= 1);
    im_sqlite_db_close(open_db(fx->path, 0));
    assert_int_equal(raw_int(fx->path, "PRAGMA user_version"), im_sqlite_db_schema_version());
    assert_int_equal(raw_int(fx->path, "PRAGMA application_id"), IM_SQLITE_APPLICATION_ID);
    /* WAL is recorded in the header (bytes 18 and 19 are 2). */
    size_t len;
    uint8_t *bytes = slurp(fx->path, &len);
    assert_true(len > 100);
    assert_int_equal(bytes[18], 2);
    assert_int_equal(bytes[19], 2);
    free(bytes);

    /* A file marked as ours at version 0 and without tables is migrated. */
    char fresh[PATH_MAX];
    path_in(fx, fresh, "marked.db");
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA application_id = %d", IM_SQLITE_APPLICATION_ID);
    raw_exec(fresh, sql);
    im_sqlite_db *db = open_db(fresh, 0);
    assert_int_equal(say(db, "a", "b", "x"), 1);
    im_sqlite_db_close(db);
    assert_int_equal(raw_int(fresh, "PRAGMA user_version"), im_sqlite_db_schema_version());

    /* An existing empty file is an empty database. */
    char empty[PATH_MAX];
    path_in(fx, empty, "empty.db");
    spill(empty, (const uint8_t *)"", 0);
    im_sqlite_db_close(open_db(empty, 0));
    assert_int_equal(raw_int(empty, "PRAGMA user_version"), im_sqlite_db_schema_version());
}

/* Migrations are never edited, so a current file with what the later
 * migrations added taken away again, and its version set back, is what
 * the earlier version wrote. */
#define UNDO_MIGRATION_3                                                         \
    "DROP TABLE group_invites;"                                                  \
    "ALTER TABLE chat_groups DROP COLUMN flags;"                                 \
    "ALTER TABLE chat_groups DROP COLUMN owner;"                                 \
    "ALTER TABLE chat_groups DROP COLUMN creator;"                               \
    "ALTER TABLE group_members DROP COLUMN since_seq;"
#define UNDO_MIGRATION_4                                                         \
    "DROP INDEX tokens_by_expiry;"                                               \
    "ALTER TABLE tokens DROP COLUMN issued;"
#define TO_VERSION_3 UNDO_MIGRATION_4 "PRAGMA user_version = 3;"
#define TO_VERSION_2 UNDO_MIGRATION_4 UNDO_MIGRATION_3 "PRAGMA user_version = 2;"
#define TO_VERSION_1 UNDO_MIGRATION_4 UNDO_MIGRATION_3 "DROP TABLE kv; PRAGMA user_version = 1;"

/* A file of an early schema (version 1: no kv table, groups without
 * flags, owners or invitations), with data, is brought up to date on open
 * and keeps what it held. */
static void test_migrates_from_version_1(void **state)
{
    fixture *fx = *state;
    assert_int_equal(im_sqlite_db_schema_version(), 4);
    im_sqlite_db *db = open_db(fx->path, 0);
    say(db, "alice", "bob", "from v1");
    group_create(db, "team", "alice", 10);
    im_error err = { 0 };
    assert_int_equal(im_sqlite_db_user_create(db, "alice", "Alice", "$argon2id$x", 1, &err), IM_OK);
    im_sqlite_db_close(db);
    raw_exec(fx->path, TO_VERSION_1
             "INSERT INTO tokens(hash, user_id, expires_ms) VALUES (x'01', 'alice', 5000);");
    assert_int_equal(raw_int(fx->path, "PRAGMA user_version"), 1);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM sqlite_master WHERE name = 'kv'"), 0);

    db = open_db(fx->path, 0);
    assert_int_equal(raw_int(fx->path, "PRAGMA user_version"), im_sqlite_db_schema_version());
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM sqlite_master"
                                       " WHERE name = 'tokens_by_expiry'"), 1);
    kv_recs ks = { 0 };
    kv_each(db, "bot", "", &ks);
    assert_int_equal(ks.n, 0);
    kv_put(db, "bot", "k", "v");
    recs rs = { 0 };
    history(db, "p:alice:bob", 0, 10, &rs);
    assert_int_equal(rs.n, 1);
    expect(&rs, 0, "p:alice:bob", 1, "from v1");
    assert_int_equal(say(db, "alice", "bob", "in v2"), 2);
    loaded l = { 0 };
    load_groups(db, &l);
    assert_int_equal(l.n, 1);
    assert_int_equal(im_sqlite_db_user_get(db, "alice", NULL, 0, NULL, 0, &err), IM_OK);
    /* A token from before version 3 still logs in, and is older than any
     * token put after. */
    const uint8_t old_token[1] = { 1 }, new_token[1] = { 2 };
    char who[IM_USER_ID_MAX + 1];
    assert_int_equal(im_sqlite_db_token_get(db, old_token, 1, 10, who, &err), IM_OK);
    assert_string_equal(who, "alice");
    assert_int_equal(im_sqlite_db_token_put(db, new_token, 1, "alice", 10, &err), IM_OK);
    assert_int_equal(im_sqlite_db_tokens_trim(db, "alice", 1, &err), 1);
    assert_int_equal(im_sqlite_db_token_get(db, old_token, 1, 1, who, &err), IM_ENOTFOUND);
    assert_int_equal(im_sqlite_db_token_get(db, new_token, 1, 1, who, &err), IM_OK);
    im_sqlite_db_close(db);

    /* Opened again, nothing is migrated twice and the new table kept its row. */
    db = open_db(fx->path, 0);
    kv_each(db, "bot", "", &ks);
    expect_keys(&ks, (const char *[]){ "k" }, 1, (const char *[]){ "v" });
    kv_recs_reset(&ks);
    recs_reset(&rs);
    loaded_free(&l);
    im_sqlite_db_close(db);
}

/* Groups of version 2 come through migration 3 as they were: public,
 * history shared, owned by their earliest member (taken as their creator),
 * every member's history from the start; and they take the new changes. */
static void test_migrates_from_version_2(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    group_create(db, "team", "alice", 10);
    join(db, "team", "bob");
    say_group(db, "alice", "team", "before");
    group_create(db, "solo", "zed", 2);
    im_sqlite_db_close(db);
    raw_exec(fx->path, TO_VERSION_2);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM sqlite_master"
                                       " WHERE name = 'group_invites'"), 0);

    db = open_db(fx->path, 0);
    assert_int_equal(raw_int(fx->path, "PRAGMA user_version"), im_sqlite_db_schema_version());
    loaded l = { 0 };
    load_groups(db, &l);
    assert_int_equal(l.n, 2);
    const im_group *g = l.g[1];
    assert_string_equal(im_group_id(g), "team");
    assert_int_equal(im_group_flags(g), IM_GROUP_SHARE_HISTORY);
    expect_members(g, (const char *[]){ "alice", "bob" }, 2);
    assert_string_equal(im_group_creator(g), "alice");
    assert_int_equal(im_group_member_since(g, "bob"), 0);
    assert_string_equal(im_group_owner(l.g[0]), "zed");

    /* Ownership still passes on, the creator stays, and invitations work. */
    leave(db, "team", "alice");
    im_error err = { 0 };
    assert_int_equal(im_sqlite_db_group_invite(db, "team", "carol", 7, &err), IM_OK);
    uint64_t since = 99;
    assert_int_equal(im_sqlite_db_group_join(db, "team", "carol", 8, &since, &err), IM_OK);
    assert_int_equal(since, 1);
    load_groups(db, &l);
    expect_members(l.g[1], (const char *[]){ "bob", "carol" }, 2);
    assert_string_equal(im_group_creator(l.g[1]), "alice");
    assert_int_equal(im_group_member_since(l.g[1], "carol"), 1);
    loaded_free(&l);
    im_sqlite_db_close(db);
}

static void test_open_bad_arguments(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = NULL;
    im_error err = { 0 };
    assert_int_equal(im_sqlite_db_open(NULL, &db, &err), IM_EINVAL);
    im_sqlite_options o = { .path = "" };
    assert_int_equal(im_sqlite_db_open(&o, &db, &err), IM_EINVAL);
    assert_null(db);
    /* A directory where the file should be. */
    o.path = fx->dir;
    assert_int_equal(im_sqlite_db_open(&o, &db, &err), IM_EIO);
    assert_non_null(strstr(err.msg, fx->dir));
    assert_null(db);
    /* A parent that is a file. */
    char file[PATH_MAX], below[PATH_MAX + 16];
    path_in(fx, file, "plain");
    spill(file, (const uint8_t *)"x", 1);
    snprintf(below, sizeof below, "%s/sub/imcore.db", file);
    o.path = below;
    assert_int_equal(im_sqlite_db_open(&o, &db, &err), IM_EIO);
    assert_null(db);
    im_sqlite_db_close(NULL);
}

/* ---- messages ---- */

static void test_seq_private_both_directions(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    assert_int_equal(say(db, "alice", "bob", "a1"), 1);
    assert_int_equal(say(db, "bob", "alice", "b1"), 2);
    assert_int_equal(say(db, "alice", "bob", "a2"), 3);
    assert_int_equal(say(db, "alice", "carol", "c1"), 1);
    assert_int_equal(say(db, "carol", "alice", "c2"), 2);
    recs rs = { 0 };
    history(db, "p:alice:bob", 0, 10, &rs);
    assert_int_equal(rs.n, 3);
    expect(&rs, 0, "p:alice:bob", 1, "a1");
    assert_string_equal(rs.r[0].sender, "alice");
    assert_string_equal(rs.r[0].target, "bob");
    assert_int_equal(rs.r[0].kind, IM_MESSAGE_PRIVATE);
    assert_int_equal(rs.r[0].time, 1000);
    expect(&rs, 1, "p:alice:bob", 2, "b1");
    assert_string_equal(rs.r[1].sender, "bob");
    assert_string_equal(rs.r[1].target, "alice");
    expect(&rs, 2, "p:alice:bob", 3, "a2");
    recs_reset(&rs);
    im_sqlite_db_close(db);
}

static void test_seq_group(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    group_create(db, "team", "alice", 10);
    join(db, "team", "bob");
    group_create(db, "other", "bob", 10);
    assert_int_equal(say_group(db, "alice", "team", "t1"), 1);
    assert_int_equal(say_group(db, "bob", "team", "t2"), 2);
    assert_int_equal(say_group(db, "bob", "other", "o1"), 1);
    assert_int_equal(say(db, "alice", "bob", "p1"), 1);
    assert_int_equal(say_group(db, "alice", "team", "t3"), 3);
    recs rs = { 0 };
    history(db, "g:team", 0, 10, &rs);
    assert_int_equal(rs.n, 3);
    expect(&rs, 2, "g:team", 3, "t3");
    assert_int_equal(rs.r[2].kind, IM_MESSAGE_GROUP);
    assert_string_equal(rs.r[2].target, "team");
    recs_reset(&rs);

    /* A server_time_ms of 0 is the store's to set. */
    im_message m = { .kind = IM_MESSAGE_GROUP, .sender = "alice", .target = "team",
                     .client_msg_id = "now", .body = (const uint8_t *)"now", .body_len = 3 };
    bool dup;
    im_error err = { 0 };
    assert_int_equal(im_sqlite_db_append(db, &m, &dup, &err), IM_OK);
    assert_int_equal(m.seq, 4);
    assert_true(m.server_time_ms > 1600000000000ull);
    im_sqlite_db_close(db);
}

static void test_duplicate_client_msg_id(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    im_message m = { .kind = IM_MESSAGE_PRIVATE, .sender = "alice", .target = "bob",
                     .client_msg_id = "c-1", .body = (const uint8_t *)"first", .body_len = 5,
                     .server_time_ms = 1111 };
    bool dup = true;
    im_error err = { 0 };
    assert_int_equal(im_sqlite_db_append(db, &m, &dup, &err), IM_OK);
    assert_false(dup);
    assert_int_equal(m.seq, 1);
    send_msg(db, IM_MESSAGE_PRIVATE, "alice", "bob", "c-2", "second");

    /* The resend: the same message later (its body in another buffer), the
     * original seq and time back. */
    im_message again = m;
    again.body = (const uint8_t *)"a first" + 2;
    again.server_time_ms = 9999;
    again.seq = 0;
    assert_int_equal(im_sqlite_db_append(db, &again, &dup, &err), IM_OK);
    assert_true(dup);
    assert_int_equal(again.seq, 1);
    assert_int_equal(again.server_time_ms, 1111);

    /* Inside a transaction too, even for a message of the same transaction. */
    assert_int_equal(im_sqlite_db_begin(db, &err), IM_OK);
    uint64_t seq = send_msg(db, IM_MESSAGE_PRIVATE, "alice", "bob", "c-3", "third");
    uint64_t seq2 = 0;
    assert_int_equal(try_send(db, IM_MESSAGE_PRIVATE, "alice", "bob", "c-3", "third", &seq2, &dup,
                              &err),
                     IM_OK);
    assert_true(dup);
    assert_int_equal(seq2, seq);
    assert_int_equal(im_sqlite_db_commit(db, &err), IM_OK);

    /* Another sender with the same id is another message. */
    assert_int_equal(send_msg(db, IM_MESSAGE_PRIVATE, "bob", "alice", "c-1", "bob's"), 4);

    recs rs = { 0 };
    history(db, "p:alice:bob", 0, 10, &rs);
    assert_int_equal(rs.n, 4);
    expect(&rs, 0, "p:alice:bob", 1, "first");
    assert_string_equal(rs.r[0].cmid, "c-1");
    expect(&rs, 2, "p:alice:bob", 3, "third");
    /* Once stored, once pending. */
    pending(db, "bob", 100, &rs);
    assert_int_equal(rs.n, 3);
    recs_reset(&rs);
    im_sqlite_db_close(db);
}

/* An id names one message: used again for another one (another body,
 * receiver, group or kind), it is refused, nothing is stored and no seq is
 * spent; the same message again is still a duplicate. */
static void test_client_msg_id_reused(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    im_error err = { 0 };
    bool dup = true;
    uint64_t seq = 0;
    assert_int_equal(send_msg(db, IM_MESSAGE_PRIVATE, "alice", "bob", "c-1", "hello"), 1);
    assert_int_equal(send_msg(db, IM_MESSAGE_GROUP, "alice", "team", "g-1", "hello"), 1);
    struct { im_message_kind kind; const char *to, *cmid, *body; } other[] = {
        { IM_MESSAGE_PRIVATE, "bob", "c-1", "hello!" },  /* another body */
        { IM_MESSAGE_PRIVATE, "bob", "c-1", "hell" },    /* a prefix of it */
        { IM_MESSAGE_PRIVATE, "carol", "c-1", "hello" }, /* another receiver */
        { IM_MESSAGE_GROUP, "bob", "c-1", "hello" },     /* a group named like him */
        { IM_MESSAGE_GROUP, "crew", "g-1", "hello" },    /* another group */
        { IM_MESSAGE_PRIVATE, "team", "g-1", "hello" },  /* a user named like it */
    };
    assert_int_equal(im_sqlite_db_begin(db, &err), IM_OK);
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        err = (im_error){ 0 };
        assert_int_equal(try_send(db, other[i].kind, "alice", other[i].to, other[i].cmid,
                                  other[i].body, &seq, &dup, &err), IM_EIDREUSED);
        assert_int_equal(err.code, IM_EIDREUSED);
        assert_non_null(strstr(err.msg, "another message"));
    }
    /* The refusals leave the transaction good. */
    assert_int_equal(try_send(db, IM_MESSAGE_PRIVATE, "alice", "bob", "c-1", "hello", &seq, &dup,
                              &err), IM_OK);
    assert_true(dup);
    assert_int_equal(seq, 1);
    assert_int_equal(send_msg(db, IM_MESSAGE_PRIVATE, "alice", "bob", "c-2", "next"), 2);
    assert_int_equal(im_sqlite_db_commit(db, &err), IM_OK);
    recs rs = { 0 };
    history(db, "p:alice:carol", 0, 10, &rs);
    assert_int_equal(rs.n, 0);
    history(db, "g:crew", 0, 10, &rs);
    assert_int_equal(rs.n, 0);
    history(db, "p:alice:bob", 0, 10, &rs);
    assert_int_equal(rs.n, 2);
    recs_reset(&rs);
    /* Without an id there is nothing to tell messages apart by. */
    assert_int_equal(try_send(db, IM_MESSAGE_PRIVATE, "alice", "bob", "", "x", &seq, &dup, &err),
                     IM_EINVAL);
    im_message m = { .kind = IM_MESSAGE_PRIVATE, .sender = "alice", .target = "bob",
                     .body = (const uint8_t *)"x", .body_len = 1 };
    assert_int_equal(im_sqlite_db_append(db, &m, &dup, &err), IM_EINVAL);
    assert_int_equal(send_msg(db, IM_MESSAGE_PRIVATE, "alice", "bob", "c-3", "x"), 3);
    im_sqlite_db_close(db);
}

static void test_append_refusals(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    im_error err = { 0 };
    bool dup;
    assert_int_equal(try_send(db, IM_MESSAGE_PRIVATE, "alice", "alice", "", "me", NULL, &dup, &err),
                     IM_EINVAL);
    assert_int_equal(try_send(db, IM_MESSAGE_PRIVATE, "al:ice", "bob", "", "x", NULL, &dup, &err),
                     IM_EINVAL);
    assert_int_equal(try_send(db, IM_MESSAGE_PRIVATE, "alice", "bob", NULL, "", NULL, &dup, &err),
                     IM_EINVAL);
    im_message m = { .kind = 7, .sender = "alice", .target = "bob", .body = (const uint8_t *)"x",
                     .body_len = 1 };
    assert_int_equal(im_sqlite_db_append(db, &m, &dup, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_append(db, NULL, &dup, &err), IM_EINVAL);
    /* Nothing was spent: the first real message is seq 1. */
    assert_int_equal(say(db, "alice", "bob", "x"), 1);
    im_sqlite_db_close(db);
}

static bool only_svc(void *arg, const char *user)
{
    (*(int *)arg)++;
    return strcmp(user, "svc") == 0;
}

static void test_receivers_need_account(void **state)
{
    fixture *fx = *state;
    int asked = 0;
    im_sqlite_options o = { .path = fx->path, .receivers_need_account = true,
                            .is_service_account = only_svc, .service_arg = &asked };
    im_sqlite_db *db = NULL;
    im_error err = { 0 };
    assert_int_equal(im_sqlite_db_open(&o, &db, &err), IM_OK);
    const char *hash = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA";
    assert_int_equal(im_sqlite_db_user_create(db, "bob", NULL, hash, 10, &err), IM_OK);
    bool dup;
    uint64_t seq = 0;

    /* Inside a transaction, as the storage thread runs them: the refusal
     * writes nothing and leaves the transaction good. */
    assert_int_equal(im_sqlite_db_begin(db, &err), IM_OK);
    assert_int_equal(send_msg(db, IM_MESSAGE_PRIVATE, "alice", "bob", "a-1", "hi"), 1);
    assert_int_equal(try_send(db, IM_MESSAGE_PRIVATE, "alice", "ghost", "a-2", "boo", &seq, &dup,
                              &err), IM_EUNKNOWNUSER);
    assert_int_equal(err.code, IM_EUNKNOWNUSER);
    assert_non_null(strstr(err.msg, "ghost"));
    assert_int_equal(asked, 1); /* asked only once no account was found */
    /* A service account needs none. */
    assert_int_equal(send_msg(db, IM_MESSAGE_PRIVATE, "alice", "svc", "a-3", "help"), 1);
    assert_int_equal(send_msg(db, IM_MESSAGE_PRIVATE, "alice", "bob", "a-4", "again"), 2);
    assert_int_equal(im_sqlite_db_commit(db, &err), IM_OK);
    asked = 0;
    /* Group messages are not the store's to judge; senders need no account. */
    assert_int_equal(send_msg(db, IM_MESSAGE_GROUP, "alice", "team", "a-5", "all"), 1);
    assert_int_equal(send_msg(db, IM_MESSAGE_PRIVATE, "nobody", "bob", "n-1", "hey"), 1);
    assert_int_equal(asked, 0);

    /* Nothing was kept for ghost: registered now, the first message is seq 1. */
    recs rs = { 0 };
    history(db, "p:alice:ghost", 0, 10, &rs);
    assert_int_equal(rs.n, 0);
    assert_int_equal(im_sqlite_db_user_create(db, "ghost", NULL, hash, 10, &err), IM_OK);
    pending(db, "ghost", 10, &rs);
    assert_int_equal(rs.n, 0);
    assert_int_equal(send_msg(db, IM_MESSAGE_PRIVATE, "alice", "ghost", "a-6", "welcome"), 1);
    recs_reset(&rs);

    /* Receivers found are remembered, but not past a rollback that takes
     * their account back. */
    assert_int_equal(im_sqlite_db_begin(db, &err), IM_OK);
    assert_int_equal(im_sqlite_db_user_create(db, "brief", NULL, hash, 10, &err), IM_OK);
    assert_int_equal(send_msg(db, IM_MESSAGE_PRIVATE, "alice", "brief", "a-8", "hi"), 1);
    im_sqlite_db_rollback(db);
    assert_int_equal(try_send(db, IM_MESSAGE_PRIVATE, "alice", "brief", "a-9", "hi", &seq, &dup,
                              &err), IM_EUNKNOWNUSER);
    assert_int_equal(send_msg(db, IM_MESSAGE_PRIVATE, "alice", "bob", "a-10", "still"), 3);
    im_sqlite_db_close(db);

    /* Without the option, any well-formed id receives. */
    db = open_db(fx->path, 0);
    assert_int_equal(send_msg(db, IM_MESSAGE_PRIVATE, "alice", "anyone", "a-7", "x"), 1);
    im_sqlite_db_close(db);
}

static void test_pending_private(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    send_msg(db, IM_MESSAGE_PRIVATE, "alice", "bob", "m1", "a1");
    say(db, "alice", "bob", "a2");
    say(db, "bob", "alice", "b3");
    say(db, "alice", "bob", "a4");
    say(db, "carol", "bob", "c1");
    recs rs = { 0 };
    pending(db, "bob", 100, &rs);
    assert_int_equal(rs.n, 4);
    expect(&rs, 0, "p:alice:bob", 1, "a1");
    assert_string_equal(rs.r[0].sender, "alice");
    assert_string_equal(rs.r[0].target, "bob");
    assert_string_equal(rs.r[0].cmid, "m1");
    assert_int_equal(rs.r[0].time, 1000);
    assert_int_equal(rs.r[0].body_len, 2);
    expect(&rs, 1, "p:alice:bob", 2, "a2");
    expect(&rs, 2, "p:alice:bob", 4, "a4");
    expect(&rs, 3, "p:bob:carol", 1, "c1");
    pending(db, "alice", 100, &rs);
    assert_int_equal(rs.n, 1);
    expect(&rs, 0, "p:alice:bob", 3, "b3");
    pending(db, "carol", 100, &rs);
    assert_int_equal(rs.n, 0);
    pending(db, "nobody", 100, &rs);
    assert_int_equal(rs.n, 0);
    /* The limit, and a reader that stops. */
    pending(db, "bob", 2, &rs);
    assert_int_equal(rs.n, 2);
    expect(&rs, 1, "p:alice:bob", 2, "a2");
    pending(db, "bob", 0, &rs);
    assert_int_equal(rs.n, 0);
    recs_reset(&rs);
    rs.stop_at = 3;
    rs.stop_rc = 77;
    im_error err = { 0 };
    assert_int_equal(im_sqlite_db_pending(db, "bob", 100, collect, &rs, &err), 77);
    assert_int_equal(rs.n, 3);
    rs.n = 0;
    rs.stop_rc = IM_ENOMEM;
    assert_int_equal(im_sqlite_db_pending(db, "bob", 100, collect, &rs, &err), IM_ENOMEM);
    assert_int_equal(err.code, IM_ENOMEM);
    /* The statement was reset: the next read starts over. */
    pending(db, "bob", 100, &rs);
    assert_int_equal(rs.n, 4);
    assert_int_equal(im_sqlite_db_pending(db, "bad id", 10, collect, &rs, &err), IM_EINVAL);
    recs_reset(&rs);
    im_sqlite_db_close(db);
}

static void test_pending_group(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    group_create(db, "team", "alice", 10);
    join(db, "team", "bob");
    join(db, "team", "carol");
    say_group(db, "alice", "team", "t1");
    say_group(db, "bob", "team", "t2");
    say_group(db, "alice", "team", "t3");
    say(db, "alice", "bob", "p1");
    recs rs = { 0 };
    pending(db, "alice", 100, &rs); /* her own are not pending */
    assert_int_equal(rs.n, 1);
    expect(&rs, 0, "g:team", 2, "t2");
    pending(db, "bob", 100, &rs); /* "g:team" sorts before "p:alice:bob" */
    assert_int_equal(rs.n, 3);
    expect(&rs, 0, "g:team", 1, "t1");
    assert_int_equal(rs.r[0].kind, IM_MESSAGE_GROUP);
    assert_string_equal(rs.r[0].target, "team");
    expect(&rs, 1, "g:team", 3, "t3");
    expect(&rs, 2, "p:alice:bob", 1, "p1");
    pending(db, "carol", 100, &rs);
    assert_int_equal(rs.n, 3);
    pending(db, "carol", 2, &rs);
    assert_int_equal(rs.n, 2);
    expect(&rs, 1, "g:team", 2, "t2");
    pending(db, "dave", 100, &rs); /* not a member */
    assert_int_equal(rs.n, 0);

    /* A newcomer gets what is said after joining, not before. */
    join(db, "team", "erin");
    pending(db, "erin", 100, &rs);
    assert_int_equal(rs.n, 0);
    say_group(db, "bob", "team", "t4");
    pending(db, "erin", 100, &rs);
    assert_int_equal(rs.n, 1);
    expect(&rs, 0, "g:team", 4, "t4");
    /* One who left gets nothing more of the group. */
    leave(db, "team", "carol");
    pending(db, "carol", 100, &rs);
    assert_int_equal(rs.n, 0);
    /* Two groups come in conversation order. */
    group_create(db, "alpha", "bob", 10);
    join(db, "alpha", "erin");
    say_group(db, "bob", "alpha", "x1");
    pending(db, "erin", 100, &rs);
    assert_int_equal(rs.n, 2);
    expect(&rs, 0, "g:alpha", 1, "x1");
    expect(&rs, 1, "g:team", 4, "t4");
    recs_reset(&rs);
    im_sqlite_db_close(db);
}

static void test_ack_moves_cursor(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    say(db, "alice", "bob", "1");
    say(db, "alice", "bob", "2");
    say(db, "alice", "bob", "3");
    recs rs = { 0 };
    ack(db, "bob", "p:alice:bob", 2);
    pending(db, "bob", 100, &rs);
    assert_int_equal(rs.n, 1);
    expect(&rs, 0, "p:alice:bob", 3, "3");
    ack(db, "bob", "p:alice:bob", 1); /* never down */
    pending(db, "bob", 100, &rs);
    assert_int_equal(rs.n, 1);
    ack(db, "bob", "p:alice:bob", 1000); /* clamped to 3 */
    pending(db, "bob", 100, &rs);
    assert_int_equal(rs.n, 0);
    say(db, "alice", "bob", "4"); /* a cursor at 1000 would hide it */
    pending(db, "bob", 100, &rs);
    assert_int_equal(rs.n, 1);
    expect(&rs, 0, "p:alice:bob", 4, "4");

    /* A sender who has acked everything has also acked their own message,
     * and one who has not keeps their place. */
    ack(db, "bob", "p:alice:bob", 4);
    say(db, "bob", "alice", "5");
    say(db, "alice", "bob", "6");
    pending(db, "bob", 100, &rs);
    assert_int_equal(rs.n, 1);
    expect(&rs, 0, "p:alice:bob", 6, "6");
    pending(db, "alice", 100, &rs);
    assert_int_equal(rs.n, 1);
    expect(&rs, 0, "p:alice:bob", 5, "5");

    /* One who answers before acking (a bot) has its answers acked with
     * the ack, up to the next message of someone else: they do not sit
     * past its cursor for every pending read to step over. */
    say(db, "carol", "echo", "q1");
    say(db, "echo", "carol", "a1");
    say(db, "echo", "carol", "a1 again");
    say(db, "carol", "echo", "q2");
    say(db, "echo", "carol", "a2");
    const char *echo_cursor =
        "SELECT seq FROM cursors WHERE user_id = 'echo' AND conv = 'p:carol:echo'";
    assert_int_equal(raw_int(fx->path, echo_cursor), 0);
    ack(db, "echo", "p:carol:echo", 1);
    assert_int_equal(raw_int(fx->path, echo_cursor), 3);
    pending(db, "echo", 100, &rs);
    assert_int_equal(rs.n, 1);
    expect(&rs, 0, "p:carol:echo", 4, "q2");
    ack(db, "echo", "p:carol:echo", 4); /* nobody else after it: to the end */
    assert_int_equal(raw_int(fx->path, echo_cursor), 5);
    pending(db, "carol", 100, &rs); /* carol's cursor is hers alone */
    assert_int_equal(rs.n, 3);
    expect(&rs, 0, "p:carol:echo", 2, "a1");

    /* Groups. */
    group_create(db, "team", "alice", 10);
    join(db, "team", "bob");
    say_group(db, "alice", "team", "g1");
    say_group(db, "alice", "team", "g2");
    ack(db, "bob", "g:team", 1);
    pending(db, "bob", 100, &rs);
    assert_int_equal(rs.n, 2);
    expect(&rs, 0, "g:team", 2, "g2");
    /* A non-member's ack does nothing, and does not make them a member. */
    ack(db, "dave", "g:team", 2);
    pending(db, "dave", 100, &rs);
    assert_int_equal(rs.n, 0);
    say_group(db, "alice", "team", "g3");
    pending(db, "dave", 100, &rs);
    assert_int_equal(rs.n, 0);
    /* Nothing to ack in a conversation without messages. */
    ack(db, "bob", "p:bob:zed", 5);

    im_error err = { 0 };
    assert_int_equal(im_sqlite_db_ack(db, "carol", "p:alice:bob", 1, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_ack(db, "bob", "p:bob:alice", 1, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_ack(db, "bob", "x:team", 1, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_ack(db, "bob", "g:", 1, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_ack(db, "bob", "p:alice", 1, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_ack(db, "", "g:team", 1, &err), IM_EINVAL);
    recs_reset(&rs);
    im_sqlite_db_close(db);
}

static void test_history(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    char body[16];
    for (int i = 1; i <= 10; i++) {
        snprintf(body, sizeof body, "m%d", i);
        say(db, i % 2 ? "alice" : "bob", i % 2 ? "bob" : "alice", body);
    }
    say(db, "alice", "carol", "elsewhere");
    recs rs = { 0 };
    history(db, "p:alice:bob", 0, 3, &rs);
    assert_int_equal(rs.n, 3);
    expect(&rs, 0, "p:alice:bob", 8, "m8");
    expect(&rs, 2, "p:alice:bob", 10, "m10");
    history(db, "p:alice:bob", 8, 3, &rs);
    assert_int_equal(rs.n, 3);
    expect(&rs, 0, "p:alice:bob", 5, "m5");
    expect(&rs, 2, "p:alice:bob", 7, "m7");
    history(db, "p:alice:bob", 2, 5, &rs);
    assert_int_equal(rs.n, 1);
    expect(&rs, 0, "p:alice:bob", 1, "m1");
    history(db, "p:alice:bob", 1, 5, &rs);
    assert_int_equal(rs.n, 0);
    history(db, "p:alice:bob", 0, 0, &rs);
    assert_int_equal(rs.n, 0);
    history(db, "p:alice:bob", 0, 100, &rs);
    assert_int_equal(rs.n, 10);
    for (size_t i = 0; i < rs.n; i++)
        assert_int_equal(rs.r[i].seq, i + 1);
    history(db, "p:nobody:zed", 0, 100, &rs);
    assert_int_equal(rs.n, 0);

    recs_reset(&rs);
    rs.stop_at = 2;
    rs.stop_rc = 1;
    im_error err = { 0 };
    assert_int_equal(im_sqlite_db_history(db, "p:alice:bob", 0, 5, collect, &rs, &err), 1);
    assert_int_equal(rs.n, 2);
    char long_conv[IM_CONVERSATION_ID_MAX + 8];
    memset(long_conv, 'a', sizeof long_conv - 1);
    long_conv[sizeof long_conv - 1] = '\0';
    assert_int_equal(im_sqlite_db_history(db, long_conv, 0, 5, collect, &rs, &err), IM_EINVAL);
    recs_reset(&rs);
    im_sqlite_db_close(db);
}

/* ---- groups ---- */

static void test_groups_membership(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    im_error err = { 0 };
    group_create(db, "team", "alice", 3);
    assert_int_equal(im_sqlite_db_group_create(db, "team", "bob", 3, 1, &err), IM_EEXIST);
    assert_int_equal(im_sqlite_db_group_create(db, "x", "bob", 0, 1, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_group_create(db, "x", "bob", IM_GROUP_MAX_MEMBERS_LIMIT + 1, 1,
                                               &err),
                     IM_EINVAL);
    assert_int_equal(im_sqlite_db_group_create(db, "a:b", "bob", 3, 1, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_group_create(db, "x", "", 3, 1, &err), IM_EINVAL);
    join(db, "team", "bob");
    join(db, "team", "carol");
    assert_int_equal(im_sqlite_db_group_add_member(db, "team", "dave", 1, &err), IM_EFULL);
    assert_int_equal(im_sqlite_db_group_add_member(db, "team", "bob", 1, &err), IM_EMEMBER);
    assert_int_equal(im_sqlite_db_group_add_member(db, "nope", "bob", 1, &err), IM_ENOGROUP);
    assert_int_equal(im_sqlite_db_group_remove_member(db, "team", "dave", &err), IM_ENOTMEMBER);
    assert_int_equal(im_sqlite_db_group_remove_member(db, "nope", "bob", &err), IM_ENOGROUP);
    assert_non_null(strstr(err.msg, "nope"));

    /* The owner leaves: the next in join order owns it. */
    leave(db, "team", "alice");
    loaded l = { 0 };
    load_groups(db, &l);
    assert_int_equal(l.n, 1);
    expect_members(l.g[0], (const char *[]){ "bob", "carol" }, 2);
    /* Coming back puts one at the end. */
    join(db, "team", "alice");
    load_groups(db, &l);
    expect_members(l.g[0], (const char *[]){ "bob", "carol", "alice" }, 3);

    /* The last one out deletes the group, and its messages. */
    say_group(db, "bob", "team", "before");
    leave(db, "team", "bob");
    leave(db, "team", "carol");
    leave(db, "team", "alice");
    load_groups(db, &l);
    assert_int_equal(l.n, 0);
    assert_int_equal(im_sqlite_db_group_add_member(db, "team", "bob", 1, &err), IM_ENOGROUP);
    recs rs = { 0 };
    history(db, "g:team", 0, 10, &rs);
    assert_int_equal(rs.n, 0);
    group_create(db, "team", "dave", 3);
    assert_int_equal(say_group(db, "dave", "team", "after"), 1);
    history(db, "g:team", 0, 10, &rs);
    assert_int_equal(rs.n, 1);
    expect(&rs, 0, "g:team", 1, "after");

    /* A message stored for a group that is gone (a send queued behind the
     * last leave) is not inherited by a new group of that name. */
    assert_int_equal(say_group(db, "dave", "ghost", "orphan"), 1);
    group_create(db, "ghost", "erin", 3);
    history(db, "g:ghost", 0, 10, &rs);
    assert_int_equal(rs.n, 0);
    pending(db, "erin", 10, &rs);
    assert_int_equal(rs.n, 0);
    assert_int_equal(say_group(db, "erin", "ghost", "new"), 1);
    recs_reset(&rs);
    loaded_free(&l);
    im_sqlite_db_close(db);
}

static void test_groups_load_rebuilds_identical(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    /* The same history of changes, on disk and in the domain. */
    static const struct { char op; const char *group, *user; uint32_t max; } steps[] = {
        { 'c', "zeta", "zoe", 5 },  { 'c', "alpha", "ann", 100 }, { 'j', "alpha", "bob", 0 },
        { 'j', "zeta", "amy", 0 },  { 'j', "alpha", "cid", 0 },   { 'l', "alpha", "ann", 0 },
        { 'j', "alpha", "ann", 0 }, { 'c', "mid", "max", 1 },     { 'l', "zeta", "zoe", 0 },
        { 'c', "gone", "gus", 2 },  { 'l', "gone", "gus", 0 },
    };
    im_group *mem[8] = { 0 };
    size_t nmem = 0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        im_group *g = NULL;
        for (size_t k = 0; k < nmem; k++)
            if (mem[k] && strcmp(im_group_id(mem[k]), steps[i].group) == 0)
                g = mem[k];
        switch (steps[i].op) {
        case 'c':
            group_create(db, steps[i].group, steps[i].user, steps[i].max);
            assert_int_equal(im_group_new(steps[i].group, steps[i].user, steps[i].max,
                                          &mem[nmem++], NULL),
                             IM_OK);
            break;
        case 'j':
            join(db, steps[i].group, steps[i].user);
            assert_int_equal(im_group_add_member(g, steps[i].user, NULL), IM_OK);
            break;
        default:
            leave(db, steps[i].group, steps[i].user);
            assert_int_equal(im_group_remove_member(g, steps[i].user, NULL), IM_OK);
            break;
        }
    }
    im_sqlite_db_close(db);
    db = open_db(fx->path, 0);
    loaded l = { 0 };
    load_groups(db, &l);
    size_t live = 0;
    for (size_t k = 0; k < nmem; k++) {
        if (im_group_is_empty(mem[k]))
            continue;
        live++;
        const im_group *got = NULL;
        for (size_t i = 0; i < l.n; i++)
            if (strcmp(im_group_id(l.g[i]), im_group_id(mem[k])) == 0)
                got = l.g[i];
        assert_non_null(got);
        assert_string_equal(im_group_owner(got), im_group_owner(mem[k]));
        assert_int_equal(im_group_max_members(got), im_group_max_members(mem[k]));
        assert_int_equal(im_group_member_count(got), im_group_member_count(mem[k]));
        for (size_t i = 0; i < im_group_member_count(got); i++)
            assert_string_equal(im_group_member(got, i), im_group_member(mem[k], i));
    }
    assert_int_equal(l.n, live);
    assert_int_equal(live, 3);
    /* In id order. */
    assert_string_equal(im_group_id(l.g[0]), "alpha");
    assert_string_equal(im_group_id(l.g[2]), "zeta");
    assert_string_equal(im_group_owner(l.g[2]), "amy");
    loaded_free(&l);

    /* A loader that stops: the group it got is its own, the rest are not built. */
    l.stop_at = 1;
    im_error err = { 0 };
    assert_int_equal(im_sqlite_db_groups_load(db, keep_group, &l, &err), 42);
    assert_int_equal(l.n, 1);
    loaded_free(&l);
    for (size_t k = 0; k < nmem; k++)
        im_group_free(mem[k]);
    im_sqlite_db_close(db);
}

/* Private groups, invitations and owners, as the data layer keeps them:
 * the rules that need no one's say (an invitation to join a private group,
 * places kept by invitations), each member's since, a stored owner, and a
 * deletion that takes everything of the group with it. */
static void test_groups_private_and_owners(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    im_error err = { 0 };
    uint64_t since = 99;
    assert_int_equal(im_sqlite_db_group_create_flags(db, "club", "alice", 3, IM_GROUP_PRIVATE,
                                                     5, &since, &err),
                     IM_OK);
    assert_int_equal(since, 0);
    assert_int_equal(im_sqlite_db_group_create_flags(db, "x", "alice", 3, 4, 5, NULL, &err),
                     IM_EINVAL);
    say_group(db, "alice", "club", "m1");
    assert_int_equal(say_group(db, "alice", "club", "m2"), 2);

    /* Joined by invitation only. */
    assert_int_equal(im_sqlite_db_group_join(db, "club", "bob", 6, &since, &err), IM_ENOGROUP);
    assert_int_equal(im_sqlite_db_group_invite(db, "club", "bob", 6, &err), IM_OK);
    assert_int_equal(im_sqlite_db_group_invite(db, "club", "bob", 6, &err), IM_OK); /* again */
    assert_int_equal(im_sqlite_db_group_invite(db, "club", "alice", 6, &err), IM_EMEMBER);
    assert_int_equal(im_sqlite_db_group_invite(db, "nope", "bob", 6, &err), IM_ENOGROUP);
    assert_int_equal(im_sqlite_db_group_invite(db, "club", "b d", 6, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_group_invite(db, "club", "carol", 6, &err), IM_OK);
    /* alice and two invitations fill three places. */
    assert_int_equal(im_sqlite_db_group_invite(db, "club", "dave", 6, &err), IM_EFULL);
    assert_int_equal(im_sqlite_db_group_join(db, "club", "dave", 6, NULL, &err), IM_ENOGROUP);
    /* bob's join comes at seq 2 and uses his invitation up. */
    assert_int_equal(im_sqlite_db_group_join(db, "club", "bob", 7, &since, &err), IM_OK);
    assert_int_equal(since, 2);
    assert_int_equal(im_sqlite_db_group_uninvite(db, "club", "bob", &err), IM_ENOTMEMBER);
    recs rs = { 0 };
    pending(db, "bob", 10, &rs);
    assert_int_equal(rs.n, 0); /* what was said before is not his to receive */
    say_group(db, "alice", "club", "m3");
    pending(db, "bob", 10, &rs);
    assert_int_equal(rs.n, 1);
    expect(&rs, 0, "g:club", 3, "m3");
    assert_int_equal(im_sqlite_db_group_uninvite(db, "club", "carol", &err), IM_OK);
    assert_int_equal(im_sqlite_db_group_uninvite(db, "club", "carol", &err), IM_ENOTMEMBER);
    assert_int_equal(im_sqlite_db_group_uninvite(db, "nope", "carol", &err), IM_ENOGROUP);

    /* Ownership handed over, and kept by name. */
    assert_int_equal(im_sqlite_db_group_set_owner(db, "club", "carol", &err), IM_ENOTMEMBER);
    assert_int_equal(im_sqlite_db_group_set_owner(db, "nope", "bob", &err), IM_ENOGROUP);
    assert_int_equal(im_sqlite_db_group_set_owner(db, "club", "bob", &err), IM_OK);
    assert_int_equal(im_sqlite_db_group_invite(db, "club", "dave", 8, &err), IM_OK);
    loaded l = { 0 };
    load_groups(db, &l);
    assert_int_equal(l.n, 1);
    const im_group *g = l.g[0];
    assert_true(im_group_is_private(g));
    assert_false(im_group_shares_history(g));
    assert_string_equal(im_group_owner(g), "bob");
    assert_string_equal(im_group_creator(g), "alice");
    assert_int_equal(im_group_member_since(g, "alice"), 0);
    assert_int_equal(im_group_member_since(g, "bob"), 2);
    assert_int_equal(im_group_invited_count(g), 1);
    assert_string_equal(im_group_invited(g, 0), "dave");
    /* The owner leaving passes it to the earliest remaining member. */
    leave(db, "club", "bob");
    load_groups(db, &l);
    assert_string_equal(im_group_owner(l.g[0]), "alice");

    /* Deleted, with its messages and invitations; the id is free. */
    assert_int_equal(im_sqlite_db_group_delete(db, "club", &err), IM_OK);
    assert_int_equal(im_sqlite_db_group_delete(db, "club", &err), IM_ENOGROUP);
    load_groups(db, &l);
    assert_int_equal(l.n, 0);
    history(db, "g:club", 0, 10, &rs);
    assert_int_equal(rs.n, 0);
    pending(db, "alice", 10, &rs);
    assert_int_equal(rs.n, 0);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM group_invites"), 0);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM group_members"), 0);
    assert_int_equal(im_sqlite_db_group_create_flags(db, "club", "erin", 3, IM_GROUP_FLAGS_ALL,
                                                     9, &since, &err),
                     IM_OK);
    assert_int_equal(since, 0);
    recs_reset(&rs);
    loaded_free(&l);
    im_sqlite_db_close(db);
}

/* ---- accounts ---- */

static void test_users(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    im_error err = { 0 };
    const char *hash = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA";
    assert_int_equal(im_sqlite_db_user_create(db, "alice", "Alice Ä", hash, 10, &err), IM_OK);
    assert_int_equal(im_sqlite_db_user_create(db, "alice", "Other", hash, 10, &err), IM_EEXIST);
    assert_int_equal(im_sqlite_db_user_create(db, "bob", NULL, hash, 10, &err), IM_OK);
    assert_int_equal(im_sqlite_db_user_create(db, "b:d", NULL, hash, 10, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_user_create(db, "carl", "bad\x01", hash, 10, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_user_create(db, "carl", NULL, "", 10, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_user_create(db, "carl", NULL, NULL, 10, &err), IM_EINVAL);

    char name[IM_DISPLAY_NAME_MAX + 1], got[128];
    assert_int_equal(im_sqlite_db_user_get(db, "alice", name, sizeof name, got, sizeof got, &err),
                     IM_OK);
    assert_string_equal(name, "Alice Ä");
    assert_string_equal(got, hash);
    assert_int_equal(im_sqlite_db_user_get(db, "bob", name, sizeof name, NULL, 0, &err), IM_OK);
    assert_string_equal(name, "");
    assert_int_equal(im_sqlite_db_user_get(db, "carl", name, sizeof name, got, sizeof got, &err),
                     IM_ENOTFOUND);
    assert_non_null(strstr(err.msg, "carl"));
    strcpy(got, "untouched");
    assert_int_equal(im_sqlite_db_user_get(db, "alice", name, sizeof name, got, 10, &err),
                     IM_EINVAL);
    assert_string_equal(got, "untouched");
    assert_int_equal(im_sqlite_db_user_get(db, "", name, sizeof name, got, sizeof got, &err),
                     IM_EINVAL);
    im_sqlite_db_close(db);
}

static void test_tokens(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    im_error err = { 0 };
    uint8_t t1[32], t2[32];
    memset(t1, 0x11, sizeof t1);
    memset(t2, 0x22, sizeof t2);
    char user[IM_USER_ID_MAX + 1];
    assert_int_equal(im_sqlite_db_token_put(db, t1, sizeof t1, "alice", 1000, &err), IM_ENOTFOUND);
    assert_int_equal(im_sqlite_db_user_create(db, "alice", NULL, "h", 1, &err), IM_OK);
    assert_int_equal(im_sqlite_db_user_create(db, "bob", NULL, "h", 1, &err), IM_OK);
    assert_int_equal(im_sqlite_db_token_put(db, t1, sizeof t1, "alice", 1000, &err), IM_OK);
    assert_int_equal(im_sqlite_db_token_put(db, t2, sizeof t2, "bob", 2000, &err), IM_OK);
    assert_int_equal(im_sqlite_db_token_get(db, t1, sizeof t1, 999, user, &err), IM_OK);
    assert_string_equal(user, "alice");
    /* A prefix of a hash is another hash. */
    assert_int_equal(im_sqlite_db_token_get(db, t1, 16, 999, user, &err), IM_ENOTFOUND);
    /* Expired at its expiry time, and then gone even for an earlier clock. */
    assert_int_equal(im_sqlite_db_token_get(db, t1, sizeof t1, 1000, user, &err), IM_ENOTFOUND);
    assert_int_equal(im_sqlite_db_token_get(db, t1, sizeof t1, 1, user, &err), IM_ENOTFOUND);
    /* Put again replaces. */
    assert_int_equal(im_sqlite_db_token_put(db, t2, sizeof t2, "alice", 5000, &err), IM_OK);
    assert_int_equal(im_sqlite_db_token_get(db, t2, sizeof t2, 2500, user, &err), IM_OK);
    assert_string_equal(user, "alice");
    assert_int_equal(im_sqlite_db_token_delete(db, t2, sizeof t2, &err), IM_OK);
    assert_int_equal(im_sqlite_db_token_get(db, t2, sizeof t2, 2500, user, &err), IM_ENOTFOUND);
    assert_int_equal(im_sqlite_db_token_delete(db, t2, sizeof t2, &err), IM_OK);
    uint8_t big[IM_SQLITE_TOKEN_HASH_MAX + 1] = { 0 };
    assert_int_equal(im_sqlite_db_token_put(db, big, sizeof big, "alice", 1, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_token_put(db, big, 0, "alice", 1, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_token_get(db, NULL, 4, 1, user, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_token_delete(db, big, sizeof big, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_token_put(db, t1, sizeof t1, "no one", 1, &err), IM_EINVAL);
    im_sqlite_db_close(db);
}

/* A token hash made of one number, and whether a token is still there. */
static void token_of(uint8_t out[32], unsigned n)
{
    memset(out, 0, 32);
    out[0] = (uint8_t)(n >> 8);
    out[1] = (uint8_t)n;
    out[31] = 0x5a;
}

static bool token_alive(im_sqlite_db *db, unsigned n, uint64_t now_ms)
{
    uint8_t t[32];
    char user[IM_USER_ID_MAX + 1];
    im_error err = { 0 };
    token_of(t, n);
    int rc = im_sqlite_db_token_get(db, t, sizeof t, now_ms, user, &err);
    assert_true(rc == IM_OK || rc == IM_ENOTFOUND);
    return rc == IM_OK;
}

/* Expired tokens go in bounded rounds, oldest first, whether or not anyone
 * presents them; the per-user cap keeps the newest; revoking a user's
 * tokens leaves the others'. */
static void test_tokens_expire_trim_revoke(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    im_error err = { 0 };
    assert_int_equal(im_sqlite_db_user_create(db, "alice", NULL, "h", 1, &err), IM_OK);
    assert_int_equal(im_sqlite_db_user_create(db, "bob", NULL, "h", 1, &err), IM_OK);
    uint8_t t[32];
    /* alice: tokens 0..9 expiring at 1000..1009; bob: 100..104 at 2000.. */
    for (unsigned i = 0; i < 10; i++) {
        token_of(t, i);
        assert_int_equal(im_sqlite_db_token_put(db, t, sizeof t, "alice", 1000 + i, &err), IM_OK);
    }
    for (unsigned i = 0; i < 5; i++) {
        token_of(t, 100 + i);
        assert_int_equal(im_sqlite_db_token_put(db, t, sizeof t, "bob", 2000 + i, &err), IM_OK);
    }
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM tokens"), 15);

    /* At 1005, six are expired (1000..1005): rounds of four take them all,
     * the oldest first, and then find nothing. Nothing else goes. */
    assert_int_equal(im_sqlite_db_tokens_expire(db, 1005, 4, &err), 4);
    assert_int_equal(raw_int(fx->path, "SELECT min(expires_ms) FROM tokens"), 1004);
    assert_int_equal(im_sqlite_db_tokens_expire(db, 1005, 4, &err), 2);
    assert_int_equal(im_sqlite_db_tokens_expire(db, 1005, 4, &err), 0);
    assert_int_equal(im_sqlite_db_tokens_expire(db, 1005, 0, &err), 0);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM tokens"), 9);
    assert_true(token_alive(db, 6, 0));
    /* The round is one statement, and the index makes it one range. */
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM sqlite_master"
                                       " WHERE name = 'tokens_by_expiry'"), 1);

    /* alice has 6..9 left; keep the 2 newest. */
    assert_int_equal(im_sqlite_db_tokens_trim(db, "alice", 2, &err), 2);
    assert_false(token_alive(db, 6, 0));
    assert_false(token_alive(db, 7, 0));
    assert_true(token_alive(db, 8, 0));
    assert_true(token_alive(db, 9, 0));
    assert_int_equal(im_sqlite_db_tokens_trim(db, "alice", 2, &err), 0);
    assert_int_equal(im_sqlite_db_tokens_trim(db, "bob", 10, &err), 0);
    assert_int_equal(im_sqlite_db_tokens_trim(db, "no one", 1, &err), IM_EINVAL);

    /* In the caller's transaction, with a put: the cap holds at commit. */
    assert_int_equal(im_sqlite_db_begin(db, &err), IM_OK);
    token_of(t, 10);
    assert_int_equal(im_sqlite_db_token_put(db, t, sizeof t, "alice", 1010, &err), IM_OK);
    assert_int_equal(im_sqlite_db_tokens_trim(db, "alice", 2, &err), 1);
    assert_int_equal(im_sqlite_db_commit(db, &err), IM_OK);
    assert_false(token_alive(db, 8, 0));
    assert_true(token_alive(db, 10, 0));

    /* Log out everywhere: all of alice's, none of bob's. */
    assert_int_equal(im_sqlite_db_tokens_delete_user(db, "alice", &err), 2);
    assert_false(token_alive(db, 9, 0));
    assert_false(token_alive(db, 10, 0));
    assert_int_equal(im_sqlite_db_tokens_delete_user(db, "alice", &err), 0);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM tokens WHERE user_id = 'bob'"), 5);
    assert_int_equal(im_sqlite_db_tokens_delete_user(db, "", &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_tokens_expire(NULL, 1, 1, &err), IM_EINVAL);

    /* Newest means put last, even within one millisecond: two tokens with
     * the same expiry, and the cap keeps the second whatever their hashes. */
    for (unsigned i = 0; i < 2; i++) {
        uint8_t t1[32], t2[32];
        token_of(t1, 200 + i);
        token_of(t2, 300 - i);
        assert_int_equal(im_sqlite_db_token_put(db, i ? t2 : t1, 32, "bob", 9000, &err), IM_OK);
        assert_int_equal(im_sqlite_db_token_put(db, i ? t1 : t2, 32, "bob", 9000, &err), IM_OK);
        /* Put: 200 then 300, and then 299 then 201 (hashes the other way). */
        assert_int_equal(im_sqlite_db_tokens_trim(db, "bob", 1, &err), i ? 2 : 6);
        assert_true(token_alive(db, i ? 201 : 300, 0));
        assert_false(token_alive(db, i ? 299 : 200, 0));
    }
    im_sqlite_db_close(db);
}

/* ---- the plugins' key-value map ---- */

static void test_kv_put_replace_delete(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    im_error err = { 0 };
    kv_recs ks = { 0 };
    kv_each(db, "bot", "", &ks);
    assert_int_equal(ks.n, 0);

    kv_put(db, "bot", "b", "two");
    kv_put(db, "bot", "a", "one");
    kv_put(db, "bot", "c", "three");
    kv_each(db, "bot", NULL, &ks);
    expect_keys(&ks, (const char *[]){ "a", "b", "c" }, 3,
                (const char *[]){ "one", "two", "three" });
    /* Replacing keeps one row. */
    kv_put(db, "bot", "b", "TWO, longer");
    kv_each(db, "bot", "", &ks);
    expect_keys(&ks, (const char *[]){ "a", "b", "c" }, 3,
                (const char *[]){ "one", "TWO, longer", "three" });
    /* An empty value is a value, not a deletion. */
    assert_int_equal(im_sqlite_db_kv_put(db, "bot", "b", "", 0, &err), IM_OK);
    kv_each(db, "bot", "b", &ks);
    expect_keys(&ks, (const char *[]){ "b" }, 1, (const char *[]){ "" });
    /* NULL deletes, whatever len says; deleting what is not there is fine. */
    assert_int_equal(im_sqlite_db_kv_put(db, "bot", "b", NULL, 99, &err), IM_OK);
    assert_int_equal(im_sqlite_db_kv_put(db, "bot", "b", NULL, 0, &err), IM_OK);
    assert_int_equal(im_sqlite_db_kv_put(db, "bot", "never", NULL, 0, &err), IM_OK);
    kv_each(db, "bot", "", &ks);
    expect_keys(&ks, (const char *[]){ "a", "c" }, 2, (const char *[]){ "one", "three" });

    /* Values are bytes: zeros and 0xff survive, at the largest size. */
    uint8_t *big = malloc(IM_SQLITE_KV_VALUE_MAX + 1);
    assert_non_null(big);
    garbage(big, IM_SQLITE_KV_VALUE_MAX + 1, 3);
    big[0] = 0, big[1] = 0xff;
    assert_int_equal(im_sqlite_db_kv_put(db, "bot", "big", big, IM_SQLITE_KV_VALUE_MAX, &err),
                     IM_OK);
    kv_each(db, "bot", "big", &ks);
    assert_int_equal(ks.n, 1);
    assert_int_equal(ks.r[0].len, IM_SQLITE_KV_VALUE_MAX);
    assert_memory_equal(ks.r[0].value, big, IM_SQLITE_KV_VALUE_MAX);

    /* Refusals write nothing. */
    char long_key[IM_SQLITE_KV_KEY_MAX + 2];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    assert_int_equal(im_sqlite_db_kv_put(db, "bot", long_key, "x", 1, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_kv_put(db, long_key, "k", "x", 1, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_kv_put(db, "bot", "k", big, IM_SQLITE_KV_VALUE_MAX + 1, &err),
                     IM_EINVAL);
    assert_int_equal(im_sqlite_db_kv_put(db, "", "k", "x", 1, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_kv_put(db, "bot", "", "x", 1, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_kv_put(db, NULL, "k", "x", 1, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_kv_put(db, "bot", NULL, "x", 1, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_kv_put(NULL, "bot", "k", "x", 1, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_kv_each(db, "", "", kv_collect, &ks, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_kv_each(db, long_key, "", kv_collect, &ks, &err), IM_EINVAL);
    assert_int_equal(im_sqlite_db_kv_each(db, "bot", "", NULL, NULL, &err), IM_EINVAL);
    /* The longest key and namespace are fine. */
    long_key[IM_SQLITE_KV_KEY_MAX] = '\0';
    kv_put(db, long_key, long_key, "edge");
    kv_each(db, long_key, "", &ks);
    expect_keys(&ks, (const char *[]){ long_key }, 1, (const char *[]){ "edge" });
    /* A prefix longer than any key matches nothing. */
    char longer[IM_SQLITE_KV_KEY_MAX + 2];
    memset(longer, 'k', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    kv_each(db, long_key, longer, &ks);
    assert_int_equal(ks.n, 0);
    free(big);

    /* Kept across a close. */
    im_sqlite_db_close(db);
    db = open_db(fx->path, 0);
    kv_each(db, "bot", "", &ks);
    assert_int_equal(ks.n, 3);
    assert_string_equal(ks.r[0].key, "a");
    assert_string_equal(ks.r[1].key, "big");
    assert_int_equal(ks.r[1].len, IM_SQLITE_KV_VALUE_MAX);
    assert_string_equal(ks.r[2].key, "c");
    kv_recs_reset(&ks);
    im_sqlite_db_close(db);
}

static void test_kv_each_prefix_and_order(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    /* Every key in byte order. Some are not UTF-8 (lone 0xff bytes): a key
     * is bytes to the store, and the prefix bound must hold for all of them. */
    static const char *const all[] = {
        "a", "ab", "abc", "abd", "a\x7f", "a\x7f\x7f", "a\xc2\x80", /* "a" U+0080 */
        "b", "p", "pz", "p\xff", "p\xff" "z", "p\xff\xff", "q",
        "\xc3\xa9",           /* é */
        "\xc3\xa9" "a",       /* éa */
        "\xc3\xa9" "b",       /* éb */
        "\xc3\xaa",           /* ê */
        "\xef\xbf\xbf",       /* U+FFFF */
        "\xef\xbf\xbf" "z",
        "\xf0\x90\x80\x80",   /* U+10000, just above */
        "\xf4\x8f\xbf\xbf",   /* U+10FFFF, the largest code point */
        "\xff", "\xff\xff",
    };
    size_t n = sizeof all / sizeof all[0];
    /* Stored in reverse, so that insertion order cannot pass for key order. */
    for (size_t i = n; i-- > 0;)
        kv_put(db, "bot", all[i], all[i]);
    /* Neighbouring namespaces hold keys that would match every prefix. */
    kv_put(db, "bo", "a", "wrong namespace");
    kv_put(db, "bot2", "a", "wrong namespace");
    kv_put(db, "bot2", "ab", "wrong namespace");
    kv_put(db, "other", "\xff", "wrong namespace");

    kv_recs ks = { 0 };
    kv_each(db, "bot", "", &ks);
    expect_keys(&ks, all, n, NULL);
    static const struct { const char *prefix; const char *keys[8]; } cases[] = {
        /* A prefix that is a key and a strict prefix of others. */
        { "a", { "a", "ab", "abc", "abd", "a\x7f", "a\x7f\x7f", "a\xc2\x80" } },
        { "ab", { "ab", "abc", "abd" } },
        { "abc", { "abc" } },
        { "abcd", { NULL } },
        /* 0x7f: its successor 0x80 is not ASCII. */
        { "a\x7f", { "a\x7f", "a\x7f\x7f" } },
        { "a\xc2", { "a\xc2\x80" } },
        /* Bytes, not characters: é is two of them. */
        { "\xc3", { "\xc3\xa9", "\xc3\xa9" "a", "\xc3\xa9" "b", "\xc3\xaa" } },
        { "\xc3\xa9", { "\xc3\xa9", "\xc3\xa9" "a", "\xc3\xa9" "b" } },
        { "\xef\xbf\xbf", { "\xef\xbf\xbf", "\xef\xbf\xbf" "z" } },
        { "\xf4\x8f\xbf\xbf", { "\xf4\x8f\xbf\xbf" } },
        /* Trailing 0xff: the bound carries into the byte before. */
        { "p", { "p", "pz", "p\xff", "p\xff" "z", "p\xff\xff" } },
        { "p\xff", { "p\xff", "p\xff" "z", "p\xff\xff" } },
        { "p\xff\xff", { "p\xff\xff" } },
        /* All 0xff: no bound above at all. */
        { "\xff", { "\xff", "\xff\xff" } },
        { "\xff\xff", { "\xff\xff" } },
        { "z", { NULL } },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t want = 0;
        while (want < 8 && cases[c].keys[want])
            want++;
        kv_each(db, "bot", cases[c].prefix, &ks);
        expect_keys(&ks, cases[c].keys, want, NULL);
    }

    /* Namespaces see only their own keys, with their own values. */
    kv_each(db, "bot2", "", &ks);
    expect_keys(&ks, (const char *[]){ "a", "ab" }, 2,
                (const char *[]){ "wrong namespace", "wrong namespace" });
    kv_each(db, "bo", "a", &ks);
    expect_keys(&ks, (const char *[]){ "a" }, 1, (const char *[]){ "wrong namespace" });
    kv_each(db, "nobody", "", &ks);
    assert_int_equal(ks.n, 0);
    /* Deleting in one namespace leaves the same key in another. */
    kv_put(db, "bot2", "a", NULL);
    kv_each(db, "bo", "", &ks);
    assert_int_equal(ks.n, 1);
    kv_each(db, "bot", "a", &ks);
    assert_int_equal(ks.n, 7);

    /* The reader stops: the count includes the key it stopped at. */
    ks.stop_at = 2;
    kv_each(db, "bot", "", &ks);
    assert_int_equal(ks.n, 2);
    assert_string_equal(ks.r[1].key, "ab");
    kv_recs_reset(&ks);
    im_sqlite_db_close(db);
}

/* In the caller's transaction a put is a write like any other: rolled back
 * with it, and a refused put leaves the batch alone. */
static void test_kv_in_transaction(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    im_error err = { 0 };
    kv_put(db, "bot", "kept", "1");
    assert_int_equal(im_sqlite_db_begin(db, &err), IM_OK);
    kv_put(db, "bot", "gone", "2");
    kv_put(db, "bot", "kept", NULL);
    say(db, "alice", "bob", "gone too");
    im_sqlite_db_rollback(db);
    kv_recs ks = { 0 };
    kv_each(db, "bot", "", &ks);
    expect_keys(&ks, (const char *[]){ "kept" }, 1, (const char *[]){ "1" });

    assert_int_equal(im_sqlite_db_begin(db, &err), IM_OK);
    kv_put(db, "bot", "in batch 1", "a");
    assert_int_equal(im_sqlite_db_kv_put(db, "bot", "", "x", 1, &err), IM_EINVAL);
    kv_put(db, "bot", "in batch 2", "b");
    assert_int_equal(im_sqlite_db_commit(db, &err), IM_OK);
    kv_each(db, "bot", "in batch", &ks);
    expect_keys(&ks, (const char *[]){ "in batch 1", "in batch 2" }, 2,
                (const char *[]){ "a", "b" });
    kv_recs_reset(&ks);
    im_sqlite_db_close(db);
}

/* ---- transactions ---- */

static void test_rollback_discards(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    im_error err = { 0 };
    assert_int_equal(im_sqlite_db_commit(db, &err), IM_EINVAL);
    im_sqlite_db_rollback(db); /* nothing open: nothing happens */
    assert_int_equal(im_sqlite_db_begin(db, &err), IM_OK);
    assert_int_equal(im_sqlite_db_begin(db, &err), IM_EINVAL);
    say(db, "alice", "bob", "gone 1");
    say(db, "alice", "bob", "gone 2");
    group_create(db, "team", "alice", 5);
    assert_int_equal(im_sqlite_db_user_create(db, "alice", NULL, "h", 1, &err), IM_OK);
    im_sqlite_db_rollback(db);
    recs rs = { 0 };
    history(db, "p:alice:bob", 0, 10, &rs);
    assert_int_equal(rs.n, 0);
    pending(db, "bob", 10, &rs);
    assert_int_equal(rs.n, 0);
    loaded l = { 0 };
    load_groups(db, &l);
    assert_int_equal(l.n, 0);
    assert_int_equal(im_sqlite_db_user_get(db, "alice", NULL, 0, NULL, 0, &err), IM_ENOTFOUND);
    assert_int_equal(say(db, "alice", "bob", "kept"), 1);

    /* A refusal for a reason of the data leaves the batch alone. */
    assert_int_equal(im_sqlite_db_begin(db, &err), IM_OK);
    say(db, "alice", "bob", "in batch 1");
    assert_int_equal(im_sqlite_db_group_add_member(db, "nope", "bob", 1, &err), IM_ENOGROUP);
    assert_int_equal(im_sqlite_db_group_create(db, "team", "bob", 0, 1, &err), IM_EINVAL);
    say(db, "alice", "bob", "in batch 2");
    assert_int_equal(im_sqlite_db_commit(db, &err), IM_OK);
    history(db, "p:alice:bob", 0, 10, &rs);
    assert_int_equal(rs.n, 3);
    expect(&rs, 2, "p:alice:bob", 3, "in batch 2");
    recs_reset(&rs);
    /* Close with a transaction open: rolled back. */
    assert_int_equal(im_sqlite_db_begin(db, &err), IM_OK);
    say(db, "alice", "bob", "lost");
    im_sqlite_db_close(db);
    db = open_db(fx->path, 0);
    history(db, "p:alice:bob", 0, 10, &rs);
    assert_int_equal(rs.n, 3);
    recs_reset(&rs);
    im_sqlite_db_close(db);
}

/* ---- a file that goes away under the server ---- */

static void remove_db_files(const char *path)
{
    static const char *const suffixes[] = { "", "-wal", "-shm" };
    for (size_t i = 0; i < 3; i++) {
        char p[PATH_MAX + 8];
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        assert_true(unlink(p) == 0 || errno == ENOENT);
    }
}

/* rm of the database and its -wal and -shm while it is open: SQLite goes on
 * writing to the open (unlinked) files, which the next start never sees.
 * The first commit after it fails, and every write after that, with
 * IM_EIO; the next open starts a new database and says it is new. */
static void test_deleted_file_refuses_writes(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    assert_true(im_sqlite_db_is_new(db));
    im_error err = { 0 };
    assert_int_equal(im_sqlite_db_user_create(db, "alice", NULL, "h", 1, &err), IM_OK);
    assert_int_equal(say(db, "alice", "bob", "kept"), 1);
    assert_false(im_sqlite_db_moved(db));

    remove_db_files(fx->path);
    /* A write in a transaction of its own: done, but to a file that is gone. */
    assert_int_equal(try_send(db, IM_MESSAGE_PRIVATE, "alice", "bob", NULL, "lost", NULL, NULL,
                              &err), IM_EIO);
    assert_int_equal(err.code, IM_EIO);
    assert_non_null(strstr(err.msg, fx->path));
    assert_non_null(strstr(err.msg, "was deleted while the server ran"));
    assert_true(im_sqlite_db_moved(db));
    /* From now on every write is refused before it starts. */
    memset(&err, 0, sizeof err);
    assert_int_equal(im_sqlite_db_begin(db, &err), IM_EIO);
    assert_non_null(strstr(err.msg, "was deleted"));
    assert_int_equal(im_sqlite_db_user_create(db, "carol", NULL, "h", 1, &err), IM_EIO);
    uint8_t t[32] = { 1 };
    assert_int_equal(im_sqlite_db_token_put(db, t, sizeof t, "alice", 10, &err), IM_EIO);
    /* Reads still answer, from the file as it was. */
    recs rs = { 0 };
    history(db, "p:alice:bob", 0, 10, &rs);
    assert_true(rs.n >= 1);
    recs_reset(&rs);
    im_sqlite_db_close(db);
    assert_false(exists(fx->path)); /* nothing was written back at the path */

    db = open_db(fx->path, 0);
    assert_true(im_sqlite_db_is_new(db));
    assert_int_equal(im_sqlite_db_user_get(db, "alice", NULL, 0, NULL, 0, &err), IM_ENOTFOUND);
    im_sqlite_db_close(db);

    /* An existing database is not new. */
    db = open_db(fx->path, 0);
    assert_false(im_sqlite_db_is_new(db));

    /* Replaced: another file moved in under the same name. The caller's
     * batch fails at its commit. */
    char other[PATH_MAX];
    path_in(fx, other, "other.db");
    im_sqlite_db *odb = open_db(other, 0);
    im_sqlite_db_close(odb);
    assert_int_equal(rename(other, fx->path), 0);
    assert_int_equal(im_sqlite_db_begin(db, &err), IM_OK);
    say(db, "alice", "bob", "to the old file");
    assert_int_equal(im_sqlite_db_commit(db, &err), IM_EIO);
    assert_non_null(strstr(err.msg, "was replaced while the server ran"));
    assert_true(im_sqlite_db_moved(db));
    im_sqlite_db_close(db);
}

/* ---- files that are not ours ---- */

static void expect_refused(const char *path, const char *what)
{
    size_t before_len, after_len;
    uint8_t *before = slurp(path, &before_len);
    im_error err = { 0 };
    assert_int_equal(open_refused(path, &err), IM_EIO);
    if (!strstr(err.msg, path) || !strstr(err.msg, what))
        fail_msg("expected \"%s\" naming %s, got \"%s\"", what, path, err.msg);
    uint8_t *after = slurp(path, &after_len);
    assert_int_equal(after_len, before_len);
    assert_memory_equal(after, before, before_len);
    free(before);
    free(after);
}

static void test_refuses_not_sqlite(void **state)
{
    fixture *fx = *state;
    char path[PATH_MAX];
    uint8_t bytes[8192];

    path_in(fx, path, "random.db");
    garbage(bytes, sizeof bytes, 1);
    spill(path, bytes, sizeof bytes);
    expect_refused(path, "not an SQLite database");
    assert_false(side_file_exists(path, "-wal"));
    assert_false(side_file_exists(path, "-journal"));

    path_in(fx, path, "short.db");
    spill(path, (const uint8_t *)"SQLite", 6);
    expect_refused(path, "not an SQLite database");

    /* The right magic, then garbage: SQLite's own check. */
    path_in(fx, path, "magic.db");
    memcpy(bytes, "SQLite format 3", 16);
    spill(path, bytes, sizeof bytes);
    size_t len;
    uint8_t *before = slurp(path, &len);
    im_error err = { 0 };
    assert_int_equal(open_refused(path, &err), IM_EIO);
    assert_non_null(strstr(err.msg, path));
    assert_true(strstr(err.msg, "not an SQLite database") || strstr(err.msg, "corrupt"));
    size_t len2;
    uint8_t *after = slurp(path, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(before, after, len);
    free(before);
    free(after);
}

/* Fills an imcore database with enough to span many pages, closed. */
static void make_full_db(const char *path)
{
    im_sqlite_db *db = open_db(path, 0);
    im_error err = { 0 };
    char body[200];
    assert_int_equal(im_sqlite_db_begin(db, &err), IM_OK);
    group_create(db, "team", "alice", 100);
    for (int i = 0; i < 300; i++) {
        snprintf(body, sizeof body, "message %d %0150d", i, i);
        say(db, i % 2 ? "alice" : "bob", i % 3 ? "carol" : "dave", body);
        say_group(db, "alice", "team", body);
    }
    assert_int_equal(im_sqlite_db_commit(db, &err), IM_OK);
    im_sqlite_db_close(db);
}

static void test_refuses_corrupt_page(void **state)
{
    fixture *fx = *state;
    char path[PATH_MAX];
    path_in(fx, path, "good.db");
    make_full_db(path);
    size_t len;
    uint8_t *good = slurp(path, &len);
    size_t page = (size_t)good[16] << 8 | good[17];
    if (page == 1)
        page = 65536;
    size_t pages = len / page;
    assert_true(pages > 20);

    /* A page in the middle of the messages, then the first after the header. */
    size_t victims[] = { pages / 2, 2, pages - 1 };
    for (size_t v = 0; v < sizeof victims / sizeof victims[0]; v++) {
        char bad[PATH_MAX];
        char name[32];
        snprintf(name, sizeof name, "bad%zu.db", v);
        path_in(fx, bad, name);
        uint8_t *copy = malloc(len);
        assert_non_null(copy);
        memcpy(copy, good, len);
        garbage(copy + (victims[v] - 1) * page, page, (uint32_t)v + 7);
        spill(bad, copy, len);
        free(copy);
        expect_refused(bad, "database is corrupt");
    }
    free(good);
    /* The original still opens. */
    im_sqlite_db_close(open_db(path, 0));
}

static void test_refuses_foreign(void **state)
{
    fixture *fx = *state;
    char path[PATH_MAX];
    path_in(fx, path, "foreign.db");
    raw_exec(path, "CREATE TABLE foo(x INTEGER); INSERT INTO foo VALUES (1), (2);");
    expect_refused(path, "not an imcore database");
    assert_false(side_file_exists(path, "-wal"));
    assert_false(side_file_exists(path, "-journal"));
    assert_int_equal(raw_int(path, "SELECT count(*) FROM foo"), 2);

    /* Another application's id, and no tables at all. */
    path_in(fx, path, "other-app.db");
    raw_exec(path, "PRAGMA application_id = 305419896; CREATE TABLE t(x); DROP TABLE t;");
    expect_refused(path, "not an imcore database");

    /* No id and no tables, but a user_version someone set. */
    path_in(fx, path, "versioned.db");
    raw_exec(path, "PRAGMA user_version = 3;");
    expect_refused(path, "not an imcore database");

    /* A foreign database in WAL mode, its log not yet checkpointed: the log
     * must not be folded into its file by our refusing it. */
    path_in(fx, path, "foreign-wal.db");
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "PRAGMA journal_mode = WAL; CREATE TABLE foo(x);"
                                     "PRAGMA wal_checkpoint(TRUNCATE); INSERT INTO foo VALUES (3);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    /* Copy the files as a crash would leave them, while h holds them open. */
    char copy[PATH_MAX], wal[PATH_MAX + 8], copy_wal[PATH_MAX + 8];
    path_in(fx, copy, "crashed.db");
    size_t len;
    uint8_t *b = slurp(path, &len);
    spill(copy, b, len);
    free(b);
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(copy_wal, sizeof copy_wal, "%s-wal", copy);
    b = slurp(wal, &len);
    assert_true(len > 0);
    spill(copy_wal, b, len);
    free(b);
    assert_int_equal(sqlite3_close(h), SQLITE_OK);
    expect_refused(copy, "not an imcore database");
    assert_true(side_file_exists(copy, "-wal"));
    assert_int_equal(raw_int(copy, "SELECT count(*) FROM foo"), 1);
}

static void test_refuses_newer_schema(void **state)
{
    fixture *fx = *state;
    im_sqlite_db_close(open_db(fx->path, 0));
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", im_sqlite_db_schema_version() + 1);
    raw_exec(fx->path, sql);
    char what[96];
    snprintf(what, sizeof what, "schema version %d is newer than this server (%d)",
             im_sqlite_db_schema_version() + 1, im_sqlite_db_schema_version());
    expect_refused(fx->path, what);
}

/* ---- faults: a full disk ---- */

static void test_full_disk(void **state)
{
    fixture *fx = *state;
    im_sqlite_db *db = open_db(fx->path, 0);
    im_sqlite_db_close(db);
    long long pages = raw_int(fx->path, "PRAGMA page_count");
    /* Room for some dozens of messages of 1 kB. */
    db = open_db(fx->path, (uint32_t)pages + 24);
    im_error err = { 0 };
    char body[1024];
    uint64_t acked = 0; /* messages committed: the ones a sender got an ack for */
    int rc = IM_OK;
    int batches = 0;
    while (rc == IM_OK && batches++ < 1000) {
        assert_int_equal(im_sqlite_db_begin(db, &err), IM_OK);
        uint64_t in_batch = 0;
        for (int i = 0; i < 5 && rc == IM_OK; i++) {
            snprintf(body, sizeof body, "%llu %01000d", (unsigned long long)(acked + in_batch + 1),
                     0);
            rc = try_send(db, IM_MESSAGE_PRIVATE, "alice", "bob", NULL, body, NULL, NULL, &err);
            if (rc == IM_OK)
                in_batch++;
        }
        if (rc != IM_OK) {
            assert_int_equal(rc, IM_ENOSPC);
            assert_non_null(strstr(err.msg, "full"));
            /* The batch is spoilt: further writes and the commit refuse. */
            assert_int_equal(try_send(db, IM_MESSAGE_PRIVATE, "alice", "bob", NULL, "x", NULL, NULL,
                                      &err),
                             IM_ENOSPC);
            assert_int_equal(im_sqlite_db_commit(db, &err), IM_ENOSPC);
            im_sqlite_db_rollback(db); /* harmless after a failed commit */
            break;
        }
        rc = im_sqlite_db_commit(db, &err);
        if (rc == IM_OK)
            acked += in_batch;
        else
            assert_int_equal(rc, IM_ENOSPC);
    }
    assert_int_equal(rc, IM_ENOSPC);
    assert_true(acked >= 5);
    rc = IM_OK;

    /* Reads still work, and show exactly what was acked. */
    recs rs = { 0 };
    pending(db, "bob", 100000, &rs);
    assert_int_equal(rs.n, acked);
    history(db, "p:alice:bob", 0, 3, &rs);
    assert_int_equal(rs.n, 3);
    assert_int_equal(rs.r[2].seq, acked);
    /* Writing on its own (autocommit) fills what the rolled-back batch left
     * free, then fails cleanly too; each message that went in was acked. */
    for (int i = 0; i < 100 && rc != IM_ENOSPC; i++) {
        snprintf(body, sizeof body, "%llu %01000d", (unsigned long long)(acked + 1), 0);
        rc = try_send(db, IM_MESSAGE_PRIVATE, "alice", "bob", NULL, body, NULL, NULL, &err);
        if (rc == IM_OK)
            acked++;
    }
    assert_int_equal(rc, IM_ENOSPC);
    history(db, "p:alice:bob", 0, 1, &rs);
    assert_int_equal(rs.n, 1);
    assert_int_equal(rs.r[0].seq, acked);
    im_sqlite_db_close(db);

    /* With room again, nothing acked is lost and the seq goes on. */
    db = open_db(fx->path, 0);
    history(db, "p:alice:bob", 0, 100000, &rs);
    assert_int_equal(rs.n, acked);
    for (size_t i = 0; i < rs.n; i++) {
        assert_int_equal(rs.r[i].seq, i + 1);
        assert_int_equal(strtoull(rs.r[i].body, NULL, 10), i + 1);
        assert_int_equal(rs.r[i].body_len,
                         (size_t)snprintf(NULL, 0, "%zu %01000d", i + 1, 0));
    }
    assert_int_equal(say(db, "alice", "bob", "room again"), acked + 1);
    recs_reset(&rs);
    im_sqlite_db_close(db);
}

/* ---- faults: a VFS that fails the Nth write ---- */

/* The allocation fault sweep's counters (below); mem_fail_after_open, when
 * non-zero, is armed by the workload only once the database is open. */
static long mem_calls, mem_fail_at, mem_fail_after_open;

/* Wraps the default VFS. Counts xWrite, xSync and xTruncate of every file
 * (database, log, journal); when the count reaches fail_at, that call fails
 * with fail_rc (once). */
static sqlite3_vfs *real_vfs;
static long fault_calls, fault_at;
static int fault_rc;
static bool fault_fired;

typedef struct fault_file {
    sqlite3_file base;
    sqlite3_file *real; /* allocated right behind this struct */
} fault_file;

static bool fault_now(void)
{
    fault_calls++;
    if (fault_at && fault_calls == fault_at) {
        fault_fired = true;
        return true;
    }
    return false;
}

#define REAL(f) (((fault_file *)(f))->real)

static int ff_close(sqlite3_file *f)
{
    int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
    return rc;
}
static int ff_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}
static int ff_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    if (fault_now())
        return fault_rc;
    return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}
static int ff_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    if (fault_now())
        return fault_rc == SQLITE_FULL ? SQLITE_FULL : SQLITE_IOERR_TRUNCATE;
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int ff_sync(sqlite3_file *f, int flags)
{
    if (fault_now())
        return fault_rc == SQLITE_FULL ? SQLITE_FULL : SQLITE_IOERR_FSYNC;
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int ff_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int ff_lock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int ff_unlock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int ff_check_lock(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int ff_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int ff_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int ff_chars(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int ff_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, pp);
}
static int ff_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void ff_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int ff_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

/* Version 2: no memory-mapped I/O, so every write goes through xWrite. */
static const sqlite3_io_methods fault_io = {
    .iVersion = 2,
    .xClose = ff_close,
    .xRead = ff_read,
    .xWrite = ff_write,
    .xTruncate = ff_truncate,
    .xSync = ff_sync,
    .xFileSize = ff_size,
    .xLock = ff_lock,
    .xUnlock = ff_unlock,
    .xCheckReservedLock = ff_check_lock,
    .xFileControl = ff_control,
    .xSectorSize = ff_sector,
    .xDeviceCharacteristics = ff_chars,
    .xShmMap = ff_shm_map,
    .xShmLock = ff_shm_lock,
    .xShmBarrier = ff_shm_barrier,
    .xShmUnmap = ff_shm_unmap,
};

static int fv_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    (void)vfs;
    fault_file *ff = (fault_file *)f;
    ff->real = (sqlite3_file *)(ff + 1);
    memset(ff->real, 0, (size_t)real_vfs->szOsFile);
    int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out);
    ff->base.pMethods = rc == SQLITE_OK ? &fault_io : NULL;
    if (rc != SQLITE_OK && ff->real->pMethods)
        ff->real->pMethods->xClose(ff->real);
    return rc;
}
static int fv_delete(sqlite3_vfs *v, const char *name, int sync)
{
    (void)v;
    return real_vfs->xDelete(real_vfs, name, sync);
}
static int fv_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    (void)v;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}
static int fv_full(sqlite3_vfs *v, const char *name, int n, char *out)
{
    (void)v;
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}
static int fv_random(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return real_vfs->xRandomness(real_vfs, n, out);
}
static int fv_sleep(sqlite3_vfs *v, int us)
{
    (void)v;
    return real_vfs->xSleep(real_vfs, us);
}
static int fv_time(sqlite3_vfs *v, double *out)
{
    (void)v;
    return real_vfs->xCurrentTime(real_vfs, out);
}
static int fv_last_error(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return real_vfs->xGetLastError(real_vfs, n, out);
}
static int fv_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    (void)v;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static sqlite3_vfs fault_vfs = {
    .iVersion = 2,
    .mxPathname = 512,
    .zName = "imcore-fault",
    .xOpen = fv_open,
    .xDelete = fv_delete,
    .xAccess = fv_access,
    .xFullPathname = fv_full,
    .xRandomness = fv_random,
    .xSleep = fv_sleep,
    .xCurrentTime = fv_time,
    .xGetLastError = fv_last_error,
    .xCurrentTimeInt64 = fv_time64,
};

static void fault_vfs_install(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    assert_non_null(real_vfs);
    fault_vfs.szOsFile = (int)sizeof(fault_file) + real_vfs->szOsFile;
    fault_vfs.mxPathname = real_vfs->mxPathname;
    assert_int_equal(sqlite3_vfs_register(&fault_vfs, 1), SQLITE_OK);
}

static void fault_vfs_remove(void)
{
    sqlite3_vfs_unregister(&fault_vfs);
}

/* A failure the storage thread can act on: storage full, I/O, memory. */
static bool clean_failure(int rc)
{
    return rc == IM_EIO || rc == IM_ENOSPC || rc == IM_ENOMEM;
}

/* What a run of the workload got acknowledged. */
typedef struct outcome {
    bool opened, batch_acked, single_acked, kv_acked;
} outcome;

/* Open (migrations included), one batch of five messages, a group and a
 * key-value put, one message on its own, a key-value put on its own, an ack,
 * the reads, close. Every failure must be a clean code. */
static void workload(const char *path, outcome *out)
{
    memset(out, 0, sizeof *out);
    im_sqlite_options o = { .path = path, .synchronous_full = true };
    im_sqlite_db *db = NULL;
    im_error err = { 0 };
    int rc = im_sqlite_db_open(&o, &db, &err);
    if (rc != IM_OK) {
        assert_true(clean_failure(rc));
        assert_int_equal(err.code, rc);
        assert_null(db);
        return;
    }
    out->opened = true;
    if (mem_fail_after_open) {
        mem_calls = 0;
        mem_fail_at = mem_fail_after_open;
    }
    rc = im_sqlite_db_begin(db, &err);
    for (int i = 0; i < 5 && rc == IM_OK; i++) {
        char body[600];
        snprintf(body, sizeof body, "batch %d %0500d", i, i);
        rc = try_send(db, IM_MESSAGE_PRIVATE, "alice", "bob", NULL, body, NULL, NULL, &err);
    }
    if (rc == IM_OK)
        rc = im_sqlite_db_group_create(db, "team", "alice", 10, 1, &err);
    if (rc == IM_OK) {
        char value[1500];
        memset(value, 'v', sizeof value);
        rc = im_sqlite_db_kv_put(db, "bot", "batch", value, sizeof value, &err);
    }
    if (rc == IM_OK) {
        rc = im_sqlite_db_commit(db, &err);
        out->batch_acked = rc == IM_OK;
    } else {
        im_sqlite_db_rollback(db);
    }
    if (rc != IM_OK)
        assert_true(clean_failure(rc));
    rc = try_send(db, IM_MESSAGE_PRIVATE, "bob", "alice", "single", "single", NULL, NULL, &err);
    out->single_acked = rc == IM_OK;
    if (rc != IM_OK)
        assert_true(clean_failure(rc));
    rc = im_sqlite_db_kv_put(db, "bot", "single", "single", 6, &err);
    out->kv_acked = rc == IM_OK;
    if (rc != IM_OK)
        assert_true(clean_failure(rc));
    rc = im_sqlite_db_ack(db, "bob", "p:alice:bob", 2, &err);
    assert_true(rc == IM_OK || clean_failure(rc));
    /* Reads meet the faults too (a read has no write to fail, but memory). */
    recs rs = { 0 };
    rc = im_sqlite_db_pending(db, "bob", 100, collect, &rs, &err);
    assert_true(rc == IM_OK || clean_failure(rc));
    recs_reset(&rs);
    rc = im_sqlite_db_history(db, "p:alice:bob", 0, 100, collect, &rs, &err);
    assert_true(rc == IM_OK || clean_failure(rc));
    recs_reset(&rs);
    loaded l = { 0 };
    rc = im_sqlite_db_groups_load(db, keep_group, &l, &err);
    assert_true(rc == IM_OK || clean_failure(rc));
    loaded_free(&l);
    kv_recs ks = { 0 };
    rc = im_sqlite_db_kv_each(db, "bot", "", kv_collect, &ks, &err);
    assert_true(rc >= 0 || clean_failure(rc));
    kv_recs_reset(&ks);
    im_sqlite_db_close(db);
}

/* After a faulty run: the file opens (quick_check included) and holds what
 * was acked, whole batches or none of them. */
static void check_after(const char *path, const outcome *out)
{
    im_sqlite_db *db = open_db(path, 0);
    recs rs = { 0 };
    history(db, "p:alice:bob", 0, 100, &rs);
    size_t batch = 0, single = 0;
    for (size_t i = 0; i < rs.n; i++) {
        if (strcmp(rs.r[i].body, "single") == 0)
            single++;
        else
            batch++;
        assert_int_equal(rs.r[i].seq, i + 1);
    }
    assert_true(batch == 0 || batch == 5);
    assert_true(single <= 1);
    if (out->batch_acked)
        assert_int_equal(batch, 5);
    if (out->single_acked)
        assert_int_equal(single, 1);
    loaded l = { 0 };
    load_groups(db, &l);
    assert_int_equal(l.n, batch == 5 ? 1 : 0);
    loaded_free(&l);
    /* The batch's put went with the batch; the single one is whole or absent. */
    kv_recs ks = { 0 };
    kv_each(db, "bot", "", &ks);
    size_t k = 0;
    if (batch == 5) {
        assert_true(k < ks.n);
        assert_string_equal(ks.r[k].key, "batch");
        assert_int_equal(ks.r[k].len, 1500);
        k++;
    }
    if (k < ks.n) {
        assert_string_equal(ks.r[k].key, "single");
        assert_int_equal(ks.r[k].len, 6);
        assert_memory_equal(ks.r[k].value, "single", 6);
        k++;
    } else {
        assert_false(out->kv_acked);
    }
    assert_int_equal(k, ks.n);
    kv_recs_reset(&ks);
    /* And it takes new writes. */
    say(db, "carol", "dave", "afterwards");
    kv_put(db, "bot", "afterwards", "x");
    recs_reset(&rs);
    im_sqlite_db_close(db);
}

static void fault_sweep(fixture *fx, int rc)
{
    fault_vfs_install();
    long n, open_failed = 0, batch_failed = 0, single_failed = 0, kv_failed = 0;
    for (n = 1; n < 2000; n++) {
        char path[PATH_MAX];
        char name[48];
        snprintf(name, sizeof name, "sweep-%d-%ld/imcore.db", rc, n);
        path_in(fx, path, name);
        fault_calls = 0;
        fault_at = n;
        fault_rc = rc;
        fault_fired = false;
        outcome out;
        workload(path, &out);
        fault_at = 0;
        bool fired = fault_fired;
        open_failed += !out.opened;
        batch_failed += out.opened && !out.batch_acked;
        single_failed += out.opened && !out.single_acked;
        kv_failed += out.opened && !out.kv_acked;
        check_after(path, &out);
        if (!fired) {
            /* The whole workload went through: every fault point was tried. */
            assert_true(out.opened && out.batch_acked && out.single_acked && out.kv_acked);
            break;
        }
    }
    assert_true(n > 10 && n < 2000);
    /* Each stage met faults: the sweep reaches what it means to test. */
    assert_true(open_failed > 0 && batch_failed > 0 && single_failed > 0 && kv_failed > 0);
    print_message("%ld fault points: open failed %ld times, the batch %ld, the single append %ld,"
                  " the single put %ld\n",
                  n - 1, open_failed, batch_failed, single_failed, kv_failed);
    fault_vfs_remove();
}

/* A version 1 file (made as in test_migrates_from_version_1) opened while
 * the Nth write or sync fails: the migration is in the file whole or not at
 * all, and the next open finishes it and keeps the data. */
static void test_fault_sweep_migration(void **state)
{
    fixture *fx = *state;
    char v1[PATH_MAX];
    path_in(fx, v1, "v1.db");
    im_sqlite_db *db = open_db(v1, 0);
    say(db, "alice", "bob", "from v1");
    im_sqlite_db_close(db);
    raw_exec(v1, TO_VERSION_1);
    size_t len;
    uint8_t *bytes = slurp(v1, &len);
    fault_vfs_install();
    long n, failed = 0;
    for (n = 1; n < 500; n++) {
        char path[PATH_MAX];
        char name[48];
        snprintf(name, sizeof name, "migrate-%ld.db", n);
        path_in(fx, path, name);
        spill(path, bytes, len);
        fault_calls = 0;
        fault_at = n;
        fault_rc = SQLITE_IOERR_WRITE;
        fault_fired = false;
        im_sqlite_options o = { .path = path, .synchronous_full = true };
        im_error err = { 0 };
        db = NULL;
        int rc = im_sqlite_db_open(&o, &db, &err);
        fault_at = 0;
        bool fired = fault_fired;
        if (rc == IM_OK) {
            im_sqlite_db_close(db);
        } else {
            assert_true(clean_failure(rc));
            failed++;
        }
        long long version = raw_int(path, "PRAGMA user_version");
        long long kv = raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'kv'");
        long long inv = raw_int(path, "SELECT count(*) FROM sqlite_master"
                                      " WHERE name = 'group_invites'");
        long long ix = raw_int(path, "SELECT count(*) FROM sqlite_master"
                                     " WHERE name = 'tokens_by_expiry'");
        if (!((version == 1 && kv == 0 && inv == 0 && ix == 0) ||
              (version == 2 && kv == 1 && inv == 0 && ix == 0) ||
              (version == 3 && kv == 1 && inv == 1 && ix == 0) ||
              (version == 4 && kv == 1 && inv == 1 && ix == 1)))
            fail_msg("fault %ld: schema version %lld with %lld kv, %lld invitation tables and "
                     "%lld expiry indexes", n, version, kv, inv, ix);
        if (rc == IM_OK)
            assert_int_equal(version, im_sqlite_db_schema_version());
        db = open_db(path, 0);
        recs rs = { 0 };
        history(db, "p:alice:bob", 0, 10, &rs);
        assert_int_equal(rs.n, 1);
        recs_reset(&rs);
        kv_put(db, "bot", "k", "v");
        im_sqlite_db_close(db);
        if (!fired)
            break;
    }
    free(bytes);
    fault_vfs_remove();
    assert_true(n > 3 && n < 500 && failed > 0);
    print_message("%ld fault points in migrating a version 1 file, %ld refused the open\n",
                  n - 1, failed);
}

/* ---- faults: SQLite's allocator fails the Nth allocation ---- */

static sqlite3_mem_methods real_mem;
static bool mem_fired;

static bool mem_fault(void)
{
    mem_calls++;
    if (mem_fail_at && mem_calls == mem_fail_at) {
        mem_fired = true;
        return true;
    }
    return false;
}
static void *fm_malloc(int n)
{
    return mem_fault() ? NULL : real_mem.xMalloc(n);
}
static void fm_free(void *p)
{
    real_mem.xFree(p);
}
static void *fm_realloc(void *p, int n)
{
    return mem_fault() ? NULL : real_mem.xRealloc(p, n);
}
static int fm_size(void *p)
{
    return real_mem.xSize(p);
}
static int fm_roundup(int n)
{
    return real_mem.xRoundup(n);
}
static int fm_init(void *arg)
{
    return real_mem.xInit(arg);
}
static void fm_shutdown(void *arg)
{
    real_mem.xShutdown(arg);
}

static sqlite3_mem_methods fault_mem = {
    .xMalloc = fm_malloc, .xFree = fm_free, .xRealloc = fm_realloc, .xSize = fm_size,
    .xRoundup = fm_roundup, .xInit = fm_init, .xShutdown = fm_shutdown,
};

static void fault_mem_install(void)
{
    /* The allocator can only be swapped while SQLite is shut down, which is
     * why every test closes what it opens. */
    assert_int_equal(sqlite3_shutdown(), SQLITE_OK);
    assert_int_equal(sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem), SQLITE_OK);
    fault_mem.pAppData = real_mem.pAppData;
    assert_int_equal(sqlite3_config(SQLITE_CONFIG_MALLOC, &fault_mem), SQLITE_OK);
    assert_int_equal(sqlite3_initialize(), SQLITE_OK);
}

static void fault_mem_remove(void)
{
    assert_int_equal(sqlite3_shutdown(), SQLITE_OK);
    assert_int_equal(sqlite3_config(SQLITE_CONFIG_MALLOC, &real_mem), SQLITE_OK);
    assert_int_equal(sqlite3_initialize(), SQLITE_OK);
}

/* One pass: fail allocation n (counted from the start, or from the end of
 * open if after_open), n = first, first + step, ... until a run meets no
 * fault. Returns the number of runs. */
static long nomem_pass(fixture *fx, bool after_open, long step, long *failed)
{
    long runs = 0;
    for (long n = 1; n < 100000; n += step) {
        char path[PATH_MAX];
        char name[48];
        snprintf(name, sizeof name, "oom-%d-%ld/imcore.db", after_open, n);
        path_in(fx, path, name);
        mem_calls = 0;
        mem_fail_at = after_open ? 0 : n;
        mem_fail_after_open = after_open ? n : 0;
        mem_fired = false;
        outcome out;
        workload(path, &out);
        mem_fail_at = mem_fail_after_open = 0;
        runs++;
        *failed += !(out.opened && out.batch_acked && out.single_acked && out.kv_acked);
        check_after(path, &out);
        if (!mem_fired)
            return runs;
    }
    fail_msg("the workload never got through");
    return runs;
}

static void test_fault_sweep_nomem(void **state)
{
    fixture *fx = *state;
    fault_mem_install();
    /* Opening (checks, migrations, preparing every statement) allocates a
     * few thousand times, all in SQLite: a stride keeps the test short.
     * Everything after open, where this layer reads SQLite's results, is
     * swept allocation by allocation. */
    long failed_open = 0, failed_after = 0;
    long open_runs = nomem_pass(fx, false, 13, &failed_open);
    long after_runs = nomem_pass(fx, true, 1, &failed_after);
    assert_true(open_runs > 100 && failed_open > 0);
    assert_true(after_runs > 20 && failed_after > 0);
    print_message("%ld runs failing an allocation of open (every 13th), %ld after it (each),"
                  " %ld of them lost a write\n",
                  open_runs, after_runs, failed_after);
    fault_mem_remove();
}

static void test_fault_sweep_full(void **state)
{
    fault_sweep(*state, SQLITE_FULL);
}

static void test_fault_sweep_ioerr(void **state)
{
    fault_sweep(*state, SQLITE_IOERR_WRITE);
}

#define T(f) cmocka_unit_test_setup_teardown(f, test_db_dir_setup, test_db_dir_teardown)

int main(int argc, char **argv)
{
    const struct CMUnitTest unit[] = {
        T(test_create_and_reopen_keeps_data),
        T(test_schema_version_and_identity),
        T(test_migrates_from_version_1),
        T(test_migrates_from_version_2),
        T(test_open_bad_arguments),
        T(test_seq_private_both_directions),
        T(test_seq_group),
        T(test_duplicate_client_msg_id),
        T(test_client_msg_id_reused),
        T(test_append_refusals),
        T(test_receivers_need_account),
        T(test_pending_private),
        T(test_pending_group),
        T(test_ack_moves_cursor),
        T(test_history),
        T(test_groups_membership),
        T(test_groups_load_rebuilds_identical),
        T(test_groups_private_and_owners),
        T(test_users),
        T(test_tokens),
        T(test_tokens_expire_trim_revoke),
        T(test_kv_put_replace_delete),
        T(test_kv_each_prefix_and_order),
        T(test_kv_in_transaction),
        T(test_rollback_discards),
        T(test_deleted_file_refuses_writes),
        T(test_refuses_not_sqlite),
        T(test_refuses_corrupt_page),
        T(test_refuses_foreign),
        T(test_refuses_newer_schema),
    };
    const struct CMUnitTest fault[] = {
        T(test_full_disk),
        T(test_fault_sweep_full),
        T(test_fault_sweep_ioerr),
        T(test_fault_sweep_migration),
        T(test_fault_sweep_nomem),
    };
    const char *which = argc > 1 ? argv[1] : "unit";
    if (strcmp(which, "unit") == 0)
        return cmocka_run_group_tests_name("sqlite_db", unit, NULL, NULL);
    if (strcmp(which, "fault") == 0)
        return cmocka_run_group_tests_name("sqlite_db_fault", fault, NULL, NULL);
    fprintf(stderr, "usage: %s [unit|fault]\n", argv[0]);
    return 2;
}
