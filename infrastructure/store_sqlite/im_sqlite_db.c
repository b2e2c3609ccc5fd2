/* infrastructure/store_sqlite/im_sqlite_db.c: the SQL behind the durable
 * store: the schema and its migrations, the checks that keep this server
 * away from files that are not its own, and one prepared statement per thing
 * the store does.
 *
 * It owns one SQLite connection and nothing else: not threads, not queues,
 * not batching (the storage thread around it decides when to begin and
 * commit), not logging (every failure goes back in an im_error). SQLite's
 * result codes are turned into IM_E* codes here and go no further.
 *
 * Shape of the data, and why:
 * - conversations(id, last_seq) hands out seq: one upsert ... RETURNING per
 *   message, inside the write transaction, so seqs have no gaps and no races.
 * - messages is a rowid table with UNIQUE(conv, seq), not a WITHOUT ROWID
 *   table keyed on (conv, seq): a row carries the body (up to
 *   max_body_bytes, often more than a page), and SQLite's guidance is that
 *   WITHOUT ROWID suits rows under ~1/20 of a page, since their interior
 *   pages hold whole rows. New rows also land at the end of the rowid tree
 *   instead of all over it. Reads go (conv, seq) index -> row.
 * - cursors(user, conv, seq) is what a user has acked. pending starts from
 *   the user's cursors, so it costs one probe per conversation plus the
 *   unacked tail, never the acked past: a private conversation gets its
 *   receiver's cursor with its first message to them, a group's members get
 *   theirs when they join and lose it when they leave. That makes a separate
 *   messages(target, conv, seq) index unnecessary (it would also have to
 *   skip every acked message of the user at each pending).
 * - group_members keeps join order explicitly, and each member's since_seq
 *   (the conversation's last seq at the join: their history starts after
 *   it). chat_groups keeps the owner by name, since ownership can be handed
 *   to any member; when the owner leaves, the earliest remaining member
 *   takes over, as in the domain. group_invites holds the invitations.
 * - kv(ns, key) is the plugins' map, read by prefix as a range of the
 *   primary key. Its values are mostly small; a large one (up to 64 kB)
 *   spills to overflow pages, which costs that row only.
 * Everything with a composite primary key and small rows is WITHOUT ROWID. */
#include "im_sqlite_db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "domain/user.h"

/* ---- the schema ----
 * Migration i (from 1) takes user_version from i - 1 to i, in one transaction
 * with the user_version change. Never edit a migration that has shipped:
 * append a new one. */
static const char *const migrations[] = {
    /* 1: everything. */
    "CREATE TABLE conversations ("
    "  id TEXT NOT NULL PRIMARY KEY,"
    "  last_seq INTEGER NOT NULL CHECK (last_seq >= 0)"
    ") WITHOUT ROWID;"

    "CREATE TABLE messages ("
    "  id INTEGER PRIMARY KEY,"
    "  conv TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL CHECK (seq > 0),"
    "  kind INTEGER NOT NULL CHECK (kind IN (1, 2)),"
    "  sender TEXT NOT NULL,"
    "  target TEXT NOT NULL,"
    "  client_msg_id TEXT," /* NULL only in rows stored when an id was optional */
    "  server_time_ms INTEGER NOT NULL,"
    "  body BLOB NOT NULL,"
    "  UNIQUE (conv, seq)"
    ");"
    /* De-duplication, and only of messages that have a client id. */
    "CREATE UNIQUE INDEX messages_by_client_id ON messages(sender, client_msg_id)"
    "  WHERE client_msg_id IS NOT NULL;"

    "CREATE TABLE cursors ("
    "  user_id TEXT NOT NULL,"
    "  conv TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL CHECK (seq >= 0),"
    "  PRIMARY KEY (user_id, conv)"
    ") WITHOUT ROWID;"
    /* For the cascade when a group's conversation is deleted. */
    "CREATE INDEX cursors_by_conv ON cursors(conv);"

    "CREATE TABLE chat_groups ("
    "  id TEXT NOT NULL PRIMARY KEY,"
    "  max_members INTEGER NOT NULL CHECK (max_members > 0),"
    "  member_count INTEGER NOT NULL CHECK (member_count >= 0),"
    "  created_ms INTEGER NOT NULL"
    ") WITHOUT ROWID;"

    "CREATE TABLE group_members ("
    "  group_id TEXT NOT NULL REFERENCES chat_groups(id) ON DELETE CASCADE,"
    "  user_id TEXT NOT NULL,"
    "  join_order INTEGER NOT NULL,"
    "  joined_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (group_id, user_id)"
    ") WITHOUT ROWID;"
    "CREATE UNIQUE INDEX group_members_by_order ON group_members(group_id, join_order);"

    "CREATE TABLE users ("
    "  id TEXT NOT NULL PRIMARY KEY,"
    "  display_name TEXT NOT NULL,"
    "  password_hash TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL"
    ") WITHOUT ROWID;"

    "CREATE TABLE tokens ("
    "  hash BLOB NOT NULL PRIMARY KEY,"
    "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  expires_ms INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX tokens_by_user ON tokens(user_id);",

    /* 2: the plugins' key-value map. */
    "CREATE TABLE kv ("
    "  ns TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  value BLOB NOT NULL,"
    "  PRIMARY KEY (ns, key)"
    ") WITHOUT ROWID;",

    /* 3: private groups. A group's flags (domain/group.h: 1 private, 2
     * history shared), its owner by name (ownership can be handed over)
     * and its creator (whose quota it counts against); each member's
     * since_seq (their history starts after it); invitations. Groups made
     * before are what they were: public, history shared, owned by their
     * earliest member, who is taken as their creator. */
    "ALTER TABLE chat_groups ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE chat_groups ADD COLUMN owner TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE chat_groups ADD COLUMN creator TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE group_members ADD COLUMN since_seq INTEGER NOT NULL DEFAULT 0"
    "  CHECK (since_seq >= 0);"
    "UPDATE chat_groups SET flags = 2, owner = coalesce((SELECT user_id FROM group_members"
    "  WHERE group_id = chat_groups.id ORDER BY join_order LIMIT 1), '');"
    "UPDATE chat_groups SET creator = owner;"
    "CREATE TABLE group_invites ("
    "  group_id TEXT NOT NULL REFERENCES chat_groups(id) ON DELETE CASCADE,"
    "  user_id TEXT NOT NULL,"
    "  invited_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (group_id, user_id)"
    ") WITHOUT ROWID;",
    /* 4: tokens are capped per user, the oldest dropped: issued numbers a
     * user's tokens in order (expiries tie within a millisecond; tokens
     * from before this are 0, older than any). Expired tokens are deleted
     * in the background, a bounded number at a time, oldest first: without
     * the index each round would scan them all. */
    "ALTER TABLE tokens ADD COLUMN issued INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX tokens_by_expiry ON tokens(expires_ms);",
};

#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* ---- the statements, prepared once at open ---- */

enum stmt_id {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_DEDUP_FIND,
    S_CONV_NEXT,
    S_MSG_INSERT,
    S_CURSOR_SEED,
    S_CURSOR_FOLLOW,
    S_CONV_LAST,
    S_CURSOR_ACK_UPSERT,
    S_CURSOR_ACK_UPDATE,
    S_ACK_OTHERS_NEXT,
    S_PENDING,
    S_HISTORY,
    S_HISTORY_NEWEST,
    S_GROUP_GET,
    S_GROUP_INSERT,
    S_GROUP_COUNT,
    S_GROUP_DELETE,
    S_GROUPS_ALL,
    S_MEMBER_GET,
    S_MEMBER_INSERT,
    S_MEMBER_DELETE,
    S_MEMBERS_ORDERED,
    S_CONV_CREATE,
    S_CONV_DELETE,
    S_CURSOR_JOIN,
    S_CURSOR_DELETE,
    S_GROUP_OWNER_SET,
    S_GROUP_OWNER_NEXT,
    S_INVITE_GET,
    S_INVITE_COUNT,
    S_INVITE_INSERT,
    S_INVITE_DELETE,
    S_INVITES_ORDERED,
    S_USER_INSERT,
    S_USER_GET,
    S_USER_EXISTS,
    S_TOKEN_PUT,
    S_TOKEN_GET,
    S_TOKEN_DELETE,
    S_TOKENS_EXPIRE,
    S_TOKENS_TRIM,
    S_TOKENS_OF_USER,
    S_KV_PUT,
    S_KV_DELETE,
    S_KV_RANGE,
    S_KV_FROM,
    S_COUNT
};

/* The columns of a message as pending and history read it back. */
#define MSG_COLUMNS "conv, seq, kind, sender, target, client_msg_id, server_time_ms, body"

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    /* The partial index is usable: "client_msg_id = ?" implies IS NOT NULL.
     * The rest of the row is read only when there is one: a resend. */
    [S_DEDUP_FIND] = "SELECT seq, server_time_ms, kind, target, body FROM messages"
                     " WHERE sender = ?1 AND client_msg_id = ?2",
    [S_CONV_NEXT] = "INSERT INTO conversations(id, last_seq) VALUES (?1, 1)"
                    " ON CONFLICT(id) DO UPDATE SET last_seq = last_seq + 1"
                    " RETURNING last_seq",
    [S_MSG_INSERT] = "INSERT INTO messages(conv, seq, kind, sender, target, client_msg_id,"
                     " server_time_ms, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    /* A receiver's first message in a private conversation: everything before
     * it there was theirs, so nothing before it is pending for them. */
    [S_CURSOR_SEED] = "INSERT INTO cursors(user_id, conv, seq) VALUES (?1, ?2, ?3 - 1)"
                      " ON CONFLICT(user_id, conv) DO NOTHING",
    /* A sender who has acked everything before their own message has acked
     * it too: keeps their unacked tail (which pending scans) empty. */
    [S_CURSOR_FOLLOW] = "UPDATE cursors SET seq = ?3"
                        " WHERE user_id = ?1 AND conv = ?2 AND seq = ?3 - 1",
    [S_CONV_LAST] = "SELECT last_seq FROM conversations WHERE id = ?1",
    [S_CURSOR_ACK_UPSERT] = "INSERT INTO cursors(user_id, conv, seq) VALUES (?1, ?2, ?3)"
                            " ON CONFLICT(user_id, conv) DO UPDATE SET seq = excluded.seq"
                            " WHERE excluded.seq > cursors.seq",
    [S_CURSOR_ACK_UPDATE] = "UPDATE cursors SET seq = ?3"
                            " WHERE user_id = ?1 AND conv = ?2 AND seq < ?3",
    /* The first message after an ack that the acker did not send: the ack
     * covers the acker's own messages up to it (see im_sqlite_db_ack). */
    [S_ACK_OTHERS_NEXT] = "SELECT seq FROM messages WHERE conv = ?1 AND seq > ?2"
                          " AND sender <> ?3 ORDER BY seq LIMIT 1",
    /* CROSS JOIN keeps cursors outside: one probe per conversation of the
     * user, then the (conv, seq) index from the cursor on; both loops come
     * out in ORDER BY order, so there is no sort. */
    [S_PENDING] = "SELECT m.conv, m.seq, m.kind, m.sender, m.target, m.client_msg_id,"
                  " m.server_time_ms, m.body"
                  " FROM cursors AS c CROSS JOIN messages AS m"
                  " WHERE c.user_id = ?1 AND m.conv = c.conv AND m.seq > c.seq"
                  "   AND ((m.kind = 1 AND m.target = ?1) OR (m.kind = 2 AND m.sender <> ?1))"
                  " ORDER BY c.conv, m.seq LIMIT ?2",
    [S_HISTORY] = "SELECT " MSG_COLUMNS " FROM ("
                  "  SELECT " MSG_COLUMNS " FROM messages"
                  "  WHERE conv = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
                  ") ORDER BY seq",
    [S_HISTORY_NEWEST] = "SELECT " MSG_COLUMNS " FROM messages"
                         " WHERE conv = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
    [S_GROUP_GET] = "SELECT max_members, member_count, flags, owner FROM chat_groups"
                    " WHERE id = ?1",
    [S_GROUP_INSERT] = "INSERT INTO chat_groups(id, max_members, member_count, created_ms,"
                       " flags, owner, creator) VALUES (?1, ?2, 1, ?3, ?4, ?5, ?5)",
    [S_GROUP_COUNT] = "UPDATE chat_groups SET member_count = member_count + ?2 WHERE id = ?1",
    [S_GROUP_DELETE] = "DELETE FROM chat_groups WHERE id = ?1",
    [S_GROUPS_ALL] = "SELECT id, max_members, flags, owner, creator FROM chat_groups"
                     " ORDER BY id",
    [S_MEMBER_GET] = "SELECT 1 FROM group_members WHERE group_id = ?1 AND user_id = ?2",
    [S_MEMBER_INSERT] = "INSERT INTO group_members(group_id, user_id, join_order, joined_ms,"
                        " since_seq) VALUES (?1, ?2, (SELECT coalesce(max(join_order), 0) + 1"
                        "                  FROM group_members WHERE group_id = ?1), ?3, ?4)",
    [S_MEMBER_DELETE] = "DELETE FROM group_members WHERE group_id = ?1 AND user_id = ?2",
    [S_MEMBERS_ORDERED] = "SELECT user_id, since_seq FROM group_members WHERE group_id = ?1"
                          " ORDER BY join_order",
    [S_CONV_CREATE] = "INSERT INTO conversations(id, last_seq) VALUES (?1, 0)"
                      " ON CONFLICT(id) DO NOTHING",
    /* Cascades to the conversation's messages and cursors. */
    [S_CONV_DELETE] = "DELETE FROM conversations WHERE id = ?1",
    [S_CURSOR_JOIN] = "INSERT OR REPLACE INTO cursors(user_id, conv, seq)"
                      " VALUES (?1, ?2, (SELECT last_seq FROM conversations WHERE id = ?2))",
    [S_CURSOR_DELETE] = "DELETE FROM cursors WHERE user_id = ?1 AND conv = ?2",
    [S_GROUP_OWNER_SET] = "UPDATE chat_groups SET owner = ?2 WHERE id = ?1",
    /* The owner gone: the earliest remaining member owns the group. */
    [S_GROUP_OWNER_NEXT] = "UPDATE chat_groups SET owner = coalesce((SELECT user_id"
                           " FROM group_members WHERE group_id = ?1 ORDER BY join_order"
                           " LIMIT 1), '') WHERE id = ?1 AND owner = ?2",
    [S_INVITE_GET] = "SELECT 1 FROM group_invites WHERE group_id = ?1 AND user_id = ?2",
    [S_INVITE_COUNT] = "SELECT count(*) FROM group_invites WHERE group_id = ?1",
    [S_INVITE_INSERT] = "INSERT INTO group_invites(group_id, user_id, invited_ms)"
                        " VALUES (?1, ?2, ?3)",
    [S_INVITE_DELETE] = "DELETE FROM group_invites WHERE group_id = ?1 AND user_id = ?2",
    [S_INVITES_ORDERED] = "SELECT user_id FROM group_invites WHERE group_id = ?1"
                          " ORDER BY invited_ms, user_id",
    [S_USER_INSERT] = "INSERT INTO users(id, display_name, password_hash, created_ms)"
                      " VALUES (?1, ?2, ?3, ?4)",
    [S_USER_GET] = "SELECT display_name, password_hash FROM users WHERE id = ?1",
    /* users is keyed by id (WITHOUT ROWID): one probe of its b-tree. */
    [S_USER_EXISTS] = "SELECT 1 FROM users WHERE id = ?1",
    [S_TOKEN_PUT] = "INSERT INTO tokens(hash, user_id, expires_ms, issued) VALUES (?1, ?2, ?3,"
                    " (SELECT coalesce(max(issued), 0) + 1 FROM tokens WHERE user_id = ?2))"
                    " ON CONFLICT(hash) DO UPDATE SET user_id = excluded.user_id,"
                    " expires_ms = excluded.expires_ms, issued = excluded.issued",
    [S_TOKEN_GET] = "SELECT user_id, expires_ms FROM tokens WHERE hash = ?1",
    [S_TOKEN_DELETE] = "DELETE FROM tokens WHERE hash = ?1",
    /* Oldest first, by the expiry index, at most ?2 of them. */
    [S_TOKENS_EXPIRE] = "DELETE FROM tokens WHERE hash IN (SELECT hash FROM tokens"
                        " WHERE expires_ms <= ?1 ORDER BY expires_ms LIMIT ?2)",
    /* All of a user's tokens but the ?2 issued last. */
    [S_TOKENS_TRIM] = "DELETE FROM tokens WHERE hash IN (SELECT hash FROM tokens"
                      " WHERE user_id = ?1 ORDER BY issued DESC, expires_ms DESC"
                      " LIMIT -1 OFFSET ?2)",
    [S_TOKENS_OF_USER] = "DELETE FROM tokens WHERE user_id = ?1",
    [S_KV_PUT] = "INSERT OR REPLACE INTO kv(ns, key, value) VALUES (?1, ?2, ?3)",
    [S_KV_DELETE] = "DELETE FROM kv WHERE ns = ?1 AND key = ?2",
    /* A prefix is the range [prefix, the prefix's successor): text compares
     * with memcmp, so this is exact for any bytes. S_KV_FROM is for a prefix
     * with no successor ("" or all 0xff bytes). */
    [S_KV_RANGE] = "SELECT key, value FROM kv WHERE ns = ?1 AND key >= ?2 AND key < ?3"
                   " ORDER BY key",
    [S_KV_FROM] = "SELECT key, value FROM kv WHERE ns = ?1 AND key >= ?2 ORDER BY key",
};

#define BUSY_TIMEOUT_MS 5000
/* Receivers remembered as users: the probe of the accounts table costs
 * about as much as a twentieth of the rest of an append (callgrind), the
 * lookup here a few dozen instructions. 4096 ids of 33 bytes: 135 kB. */
#define KNOWN_SLOTS 4096u
/* The WAL is truncated back to this after a checkpoint, so one burst does
 * not leave a large file behind for ever. */
#define JOURNAL_SIZE_LIMIT (64 * 1024 * 1024)

struct im_sqlite_db {
    sqlite3 *h;
    char *path;
    size_t max_body;    /* bodies above this would pass SQLite's length limit */
    bool txn;           /* the caller's transaction is open */
    bool receivers_need_account;
    bool (*is_service_account)(void *arg, const char *user);
    void *service_arg;
    /* Receivers found to be users, by a hash of the id (KNOWN_SLOTS, one id
     * each; NULL unless receivers_need_account). A yes can be remembered:
     * accounts are never deleted and service accounts are fixed, so only a
     * rolled-back transaction (one that created the account on this
     * connection) can take one back, and a rollback forgets them all. */
    char (*known)[IM_USER_ID_MAX + 1];
    bool is_new;        /* open found no schema: the file was missing, empty or new */
    bool moved;         /* the file at path is no longer the one open here: see file_gone */
    int broken;         /* 0, or the code of the write that spoiled the caller's transaction */
    char broken_msg[sizeof ((im_error *)0)->msg];
    sqlite3_stmt *st[S_COUNT];
};

/* ---- errors ---- */

static int code_of(sqlite3 *h, int rc)
{
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return IM_ENOSPC;
    case SQLITE_NOMEM:
        return IM_ENOMEM;
    case SQLITE_IOERR: {
        if (rc == SQLITE_IOERR_NOMEM)
            return IM_ENOMEM;
        /* The unix VFS reports ENOSPC on write as SQLITE_FULL, but an fsync
         * or a truncate that runs out of space comes back as an I/O error. */
        int e = sqlite3_system_errno(h);
        return e == ENOSPC || e == EDQUOT ? IM_ENOSPC : IM_EIO;
    }
    default:
        return IM_EIO;
    }
}

/* Fills err with "WHAT: SQLite's message" and the IM_E* code for rc. The
 * message must be taken before the statement is reset or another runs. */
__attribute__((format(printf, 4, 5)))
static int sql_fail(im_sqlite_db *db, int rc, im_error *err, const char *fmt, ...)
{
    char what[120];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return im_error_set(err, code_of(db->h, rc), "%s: %s", what, sqlite3_errmsg(db->h));
}

/* ---- statements ---- */

static sqlite3_stmt *stmt(im_sqlite_db *db, enum stmt_id id)
{
    return db->st[id];
}

/* Text and integer binds cannot fail but for a wrong index (a bug the tests
 * would show) and leave the parameter NULL if they did, which every NOT NULL
 * column then refuses; so only blob binds, which can be too big, are checked. */
static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static void bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
    /* seq and times are far below 2^63; clamping keeps a hostile value from
     * turning negative. */
    sqlite3_bind_int64(st, i, v > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)v);
}

/* Runs a statement that returns no row to its end. */
__attribute__((format(printf, 4, 5)))
static int run(im_sqlite_db *db, sqlite3_stmt *st, im_error *err, const char *fmt, ...)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
        sqlite3_reset(st);
        return IM_OK;
    }
    char what[120];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int code = sql_fail(db, rc, err, "%s", what);
    sqlite3_reset(st);
    return code;
}

/* Steps once: 1 with a row (the caller resets), 0 without (reset here), or
 * an IM_E* code (reset here). */
__attribute__((format(printf, 4, 5)))
static int row(im_sqlite_db *db, sqlite3_stmt *st, im_error *err, const char *fmt, ...)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return 0;
    }
    char what[120];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int code = sql_fail(db, rc, err, "%s", what);
    sqlite3_reset(st);
    return code;
}

/* ---- transactions ---- */

static bool is_failure(int code)
{
    return code == IM_ENOSPC || code == IM_EIO || code == IM_ENOMEM;
}

static void spoil(im_sqlite_db *db, int code, const char *msg)
{
    if (db->broken)
        return; /* the first failure is the one worth reporting */
    db->broken = code;
    snprintf(db->broken_msg, sizeof db->broken_msg, "%s", msg);
}

static void forget_known(im_sqlite_db *db)
{
    if (db->known)
        for (unsigned i = 0; i < KNOWN_SLOTS; i++)
            db->known[i][0] = '\0';
}

static void rollback_now(im_sqlite_db *db)
{
    forget_known(db);
    /* ROLLBACK can only fail when there is nothing left to roll back. */
    if (!sqlite3_get_autocommit(db->h)) {
        sqlite3_step(stmt(db, S_ROLLBACK));
        sqlite3_reset(stmt(db, S_ROLLBACK));
    }
}

static int moved_error(im_sqlite_db *db, im_error *err)
{
    struct stat sb;
    bool deleted = stat(db->path, &sb) != 0 && errno == ENOENT;
    return im_error_set(err, IM_EIO, "%s: the database file was %s while the server ran:"
                        " nothing more is stored (restore the file and restart the server)",
                        db->path, deleted ? "deleted" : "replaced");
}

/* Whether the file at db->path is still the one this connection writes to.
 * Once deleted (rm) or replaced (mv, a restore under the same name), SQLite
 * goes on writing to the file it has open, which is gone at the next start
 * with everything written since: so every commit asks, and once the answer
 * is no it stays no. The cost is one stat(2) per commit, beside a commit's
 * write and fsync. A VFS that cannot tell (SQLITE_NOTFOUND: tests' in-memory
 * ones) is taken at its word. */
static int file_gone(im_sqlite_db *db, im_error *err)
{
    if (!db->moved) {
        int moved = 0;
        if (sqlite3_file_control(db->h, "main", SQLITE_FCNTL_HAS_MOVED, &moved) != SQLITE_OK ||
            !moved)
            return IM_OK;
        db->moved = true;
    }
    return moved_error(db, err);
}

static int commit_now(im_sqlite_db *db, im_error *err)
{
    int rc = sqlite3_step(stmt(db, S_COMMIT));
    if (rc == SQLITE_DONE) {
        sqlite3_reset(stmt(db, S_COMMIT));
        /* Committed, but to a file no longer at the path: not durable. */
        return file_gone(db, err);
    }
    int code = sql_fail(db, rc, err, "%s: commit", db->path);
    sqlite3_reset(stmt(db, S_COMMIT));
    /* A commit that failed with BUSY or some I/O errors leaves the
     * transaction open; the promise is that a failed commit stored nothing. */
    rollback_now(db);
    return code;
}

/* Every write runs in a transaction: the caller's if one is open, else one
 * of its own (*own), committed by write_end. */
static int write_begin(im_sqlite_db *db, bool *own, im_error *err)
{
    *own = false;
    if (db->txn) {
        /* SQLite rolls a whole transaction back by itself after some errors
         * (SQLITE_FULL, NOMEM, some I/O errors). Writing on in autocommit
         * mode would then store half a batch. */
        if (sqlite3_get_autocommit(db->h))
            spoil(db, IM_EIO, "SQLite rolled the transaction back after an error");
        if (db->broken)
            return im_error_set(err, db->broken, "the transaction failed and must be rolled back"
                                                 " (%s)", db->broken_msg);
        return IM_OK;
    }
    if (db->moved)
        return moved_error(db, err);
    int rc = run(db, stmt(db, S_BEGIN), err, "%s: begin", db->path);
    *own = rc == IM_OK;
    return rc;
}

/* Ends a write: rc is the write's result so far, err its message. In its
 * own transaction, commits on success and rolls back otherwise; in the
 * caller's, a failure of the database spoils the transaction. */
static int write_end(im_sqlite_db *db, bool own, int rc, im_error *err)
{
    if (!own) {
        if (is_failure(rc))
            spoil(db, rc, err->msg);
        return rc;
    }
    if (rc == IM_OK)
        return commit_now(db, err);
    rollback_now(db);
    return rc;
}

int im_sqlite_db_begin(im_sqlite_db *db, im_error *err)
{
    if (!db)
        return im_error_set(err, IM_EINVAL, "no database");
    if (db->txn)
        return im_error_set(err, IM_EINVAL, "%s: a transaction is already open", db->path);
    if (db->moved)
        return moved_error(db, err);
    int rc = run(db, stmt(db, S_BEGIN), err, "%s: begin", db->path);
    if (rc == IM_OK) {
        db->txn = true;
        db->broken = 0;
        db->broken_msg[0] = '\0';
    }
    return rc;
}

int im_sqlite_db_commit(im_sqlite_db *db, im_error *err)
{
    if (!db)
        return im_error_set(err, IM_EINVAL, "no database");
    if (!db->txn)
        return im_error_set(err, IM_EINVAL, "%s: no transaction to commit", db->path);
    db->txn = false;
    if (!db->broken && sqlite3_get_autocommit(db->h))
        spoil(db, IM_EIO, "SQLite rolled the transaction back after an error");
    if (db->broken) {
        int code = db->broken;
        rollback_now(db);
        db->broken = 0;
        return im_error_set(err, code, "%s: not committed, an earlier write failed (%s)",
                            db->path, db->broken_msg);
    }
    return commit_now(db, err);
}

void im_sqlite_db_rollback(im_sqlite_db *db)
{
    if (!db)
        return;
    rollback_now(db);
    db->txn = false;
    db->broken = 0;
}

/* ---- opening ---- */

int im_sqlite_db_schema_version(void)
{
    return SCHEMA_VERSION;
}

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* mkdir -p of path's parent directory. */
static int make_parents(const char *path, im_error *err)
{
    char *dir = copy_string(path);
    if (!dir)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    char *slash = strrchr(dir, '/');
    int rc = IM_OK;
    if (slash && slash != dir) {
        *slash = '\0';
        /* Each prefix in turn; a leading '/' is skipped, so "/a/b" makes
         * "/a" and then "/a/b". */
        for (char *p = dir + 1;; p++) {
            if (*p != '/' && *p != '\0')
                continue;
            char c = *p;
            *p = '\0';
            if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
                rc = im_error_set(err, IM_EIO, "%s: cannot create directory %s: %s", path, dir,
                                  strerror(errno));
                break;
            }
            *p = c;
            if (c == '\0')
                break;
        }
        struct stat sb;
        if (rc == IM_OK && (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)))
            rc = im_error_set(err, IM_EIO, "%s: %s is not a directory", path, dir);
    }
    free(dir);
    return rc;
}

/* Looks at the file before SQLite does: creates a missing one (mode 0600),
 * and refuses one that does not start like an SQLite database, so that SQLite
 * never opens a stranger's file for writing. *had_wal tells whether a
 * non-empty write-ahead log lies beside it. */
static int prepare_file(const char *path, bool *had_wal, im_error *err)
{
    *had_wal = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            return im_error_set(err, IM_EIO, "%s: cannot create: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            return IM_OK;
        }
        fd = open(path, O_RDONLY | O_CLOEXEC); /* someone else just made it */
    }
    if (fd < 0)
        return im_error_set(err, IM_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return im_error_set(err, IM_EIO, "%s: not a regular file", path);
    }
    static const char magic[16] = "SQLite format 3"; /* and its NUL */
    char head[sizeof magic];
    ssize_t n = sb.st_size > 0 ? read(fd, head, sizeof head) : 0;
    close(fd);
    /* An empty file is an empty database to SQLite, and to us. */
    if (sb.st_size > 0 && (n != (ssize_t)sizeof head || memcmp(head, magic, sizeof magic) != 0))
        return im_error_set(err, IM_EIO, "%s: not an SQLite database", path);

    size_t len = strlen(path);
    char *wal = malloc(len + 5);
    if (!wal)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    memcpy(wal, path, len);
    memcpy(wal + len, "-wal", 5);
    *had_wal = stat(wal, &sb) == 0 && sb.st_size > 0;
    free(wal);
    return IM_OK;
}

/* An error while reading a file not yet known to be ours, worded for the
 * operator who has to decide what to do with the file. */
static int open_fail(im_sqlite_db *db, int rc, im_error *err, const char *what)
{
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
        return im_error_set(err, IM_EIO, "%s: not an SQLite database", db->path);
    case SQLITE_CORRUPT:
        return im_error_set(err, IM_EIO, "%s: database is corrupt: %s", db->path,
                            sqlite3_errmsg(db->h));
    default:
        return sql_fail(db, rc, err, "%s: %s", db->path, what);
    }
}

/* Runs a one-row PRAGMA (or query) and takes its first column as an integer. */
static int query_int(im_sqlite_db *db, const char *sql, sqlite3_int64 *out, im_error *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_ERROR;
        }
    }
    int code = rc == SQLITE_OK ? IM_OK : open_fail(db, rc, err, sql);
    sqlite3_finalize(st);
    return code;
}

/* Reads, and only reads, what tells whose file this is. Sets *version. */
static int check_identity(im_sqlite_db *db, int *version, im_error *err)
{
    sqlite3_int64 app_id, user_version, objects;
    int rc = query_int(db, "PRAGMA application_id", &app_id, err);
    if (rc == IM_OK)
        rc = query_int(db, "PRAGMA user_version", &user_version, err);
    if (rc == IM_OK)
        rc = query_int(db, "SELECT count(*) FROM sqlite_master"
                           " WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'", &objects, err);
    if (rc != IM_OK)
        return rc;
    /* application_id is a signed 32-bit field in the header. */
    bool ours = (uint32_t)app_id == (uint32_t)IM_SQLITE_APPLICATION_ID;
    if (!ours && (app_id != 0 || objects > 0 || user_version != 0))
        return im_error_set(err, IM_EIO, "%s: not an imcore database", db->path);
    if (user_version > SCHEMA_VERSION)
        return im_error_set(err, IM_EIO, "%s: schema version %lld is newer than this server (%d)",
                            db->path, (long long)user_version, SCHEMA_VERSION);
    if (user_version < 0)
        return im_error_set(err, IM_EIO, "%s: not an imcore database", db->path);
    *version = (int)user_version;
    return IM_OK;
}

static int quick_check(im_sqlite_db *db, im_error *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h, "PRAGMA quick_check(1)", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return open_fail(db, rc, err, "quick_check");
    rc = sqlite3_step(st);
    int code = IM_OK;
    if (rc == SQLITE_ROW) {
        const char *res = (const char *)sqlite3_column_text(st, 0);
        if (!res) {
            code = im_error_set(err, IM_ENOMEM, "out of memory");
        } else if (strcmp(res, "ok") != 0) {
            char what[160];
            snprintf(what, sizeof what, "%s", res);
            for (char *p = what; *p; p++)
                if (*p == '\n')
                    *p = ' ';
            code = im_error_set(err, IM_EIO, "%s: database is corrupt: %s", db->path, what);
        }
    } else {
        code = open_fail(db, rc, err, "quick_check");
    }
    sqlite3_finalize(st);
    return code;
}

__attribute__((format(printf, 3, 4)))
static int exec(im_sqlite_db *db, im_error *err, const char *fmt, ...)
{
    char sql[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    int rc = sqlite3_exec(db->h, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? IM_OK : sql_fail(db, rc, err, "%s: %s", db->path, sql);
}

/* WAL, durability, foreign keys: per connection, and outside any
 * transaction (journal_mode and foreign_keys are no-ops inside one). */
static int configure(im_sqlite_db *db, const im_sqlite_options *o, im_error *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        int code = sql_fail(db, rc, err, "%s: journal_mode = WAL", db->path);
        sqlite3_finalize(st);
        return code;
    }
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    bool wal = mode && strcmp(mode, "wal") == 0;
    int code = wal ? IM_OK
                   : im_error_set(err, IM_EIO, "%s: cannot use write-ahead logging"
                                               " (journal_mode stays %s)",
                                  db->path, mode ? mode : "?");
    sqlite3_finalize(st);
    if (code != IM_OK)
        return code;
    code = exec(db, err, "PRAGMA synchronous = %s", o->synchronous_full ? "FULL" : "NORMAL");
    if (code == IM_OK)
        code = exec(db, err, "PRAGMA journal_size_limit = %d", JOURNAL_SIZE_LIMIT);
    if (code == IM_OK)
        code = exec(db, err, "PRAGMA foreign_keys = ON");
    sqlite3_int64 fk = 0;
    if (code == IM_OK)
        code = query_int(db, "PRAGMA foreign_keys", &fk, err);
    /* Group deletion relies on ON DELETE CASCADE. */
    if (code == IM_OK && fk != 1)
        code = im_error_set(err, IM_EIO, "%s: this SQLite has no foreign key support", db->path);
    return code;
}

/* Applies the migrations after version, one transaction each. The version is
 * read again under the write lock, so two servers opening one new file at
 * once do not both create the schema. */
static int migrate(im_sqlite_db *db, int version, im_error *err)
{
    for (int v = version; v < SCHEMA_VERSION; v++) {
        int code = exec(db, err, "BEGIN IMMEDIATE");
        sqlite3_int64 now = 0;
        if (code == IM_OK)
            code = query_int(db, "PRAGMA user_version", &now, err);
        if (code == IM_OK && now > v) {
            exec(db, NULL, "COMMIT");
            v = (int)now - 1;
            continue;
        }
        if (code == IM_OK) {
            int rc = sqlite3_exec(db->h, migrations[v], NULL, NULL, NULL);
            if (rc != SQLITE_OK)
                code = sql_fail(db, rc, err, "%s: migration to schema version %d", db->path,
                                v + 1);
        }
        if (code == IM_OK)
            code = exec(db, err, "PRAGMA application_id = %d", IM_SQLITE_APPLICATION_ID);
        if (code == IM_OK)
            code = exec(db, err, "PRAGMA user_version = %d", v + 1);
        if (code == IM_OK)
            code = exec(db, err, "COMMIT");
        if (code != IM_OK) {
            if (!sqlite3_get_autocommit(db->h))
                sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
            return code;
        }
    }
    return IM_OK;
}

static int prepare_all(im_sqlite_db *db, im_error *err)
{
    for (int i = 0; i < S_COUNT; i++) {
        int rc = sqlite3_prepare_v3(db->h, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &db->st[i], NULL);
        if (rc != SQLITE_OK)
            return sql_fail(db, rc, err, "%s: preparing statement %d", db->path, i);
    }
    return IM_OK;
}

int im_sqlite_db_open(const im_sqlite_options *o, im_sqlite_db **out, im_error *err)
{
    if (out)
        *out = NULL;
    if (!o || !o->path || !o->path[0] || !out)
        return im_error_set(err, IM_EINVAL, "no database path");
    im_sqlite_db *db = calloc(1, sizeof *db);
    if (!db)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    db->receivers_need_account = o->receivers_need_account;
    db->is_service_account = o->is_service_account;
    db->service_arg = o->service_arg;
    if (db->receivers_need_account && !(db->known = calloc(KNOWN_SLOTS, sizeof *db->known))) {
        free(db);
        return im_error_set(err, IM_ENOMEM, "out of memory");
    }
    db->path = copy_string(o->path);
    if (!db->path) {
        free(db->known);
        free(db);
        return im_error_set(err, IM_ENOMEM, "out of memory");
    }
    bool had_wal = false;
    int code = make_parents(db->path, err);
    if (code == IM_OK)
        code = prepare_file(db->path, &had_wal, err);
    if (code != IM_OK)
        goto fail;

    /* NOMUTEX: a connection is used by one thread at a time (see the header). */
    int rc = sqlite3_open_v2(db->path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        code = db->h ? open_fail(db, rc, err, "cannot open")
                     : im_error_set(err, IM_ENOMEM, "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes(db->h, 1);
    sqlite3_busy_timeout(db->h, BUSY_TIMEOUT_MS);
    /* Until the file is known to be ours and sound, closing must not
     * checkpoint a log someone else left into their file. */
    if (had_wal)
        sqlite3_db_config(db->h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    /* The schema is ours alone: no writable_schema tricks, no functions run
     * from a schema someone else could have edited. */
    sqlite3_db_config(db->h, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(db->h, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    if (sqlite3_db_readonly(db->h, "main") == 1) {
        code = im_error_set(err, IM_EIO, "%s: the file is read-only", db->path);
        goto fail;
    }

    int version = 0;
    code = check_identity(db, &version, err);
    db->is_new = version == 0;
    if (code == IM_OK && !o->skip_check)
        code = quick_check(db, err);
    if (code != IM_OK)
        goto fail;
    /* From here on the file is ours and writing to it is fine. */
    if (had_wal)
        sqlite3_db_config(db->h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, (int *)NULL);
    code = configure(db, o, err);
    if (code == IM_OK)
        code = migrate(db, version, err);
    /* After the migrations, so that the limit can only ever refuse data. */
    if (code == IM_OK && o->max_page_count)
        code = exec(db, err, "PRAGMA max_page_count = %u", (unsigned)o->max_page_count);
    if (code == IM_OK)
        code = prepare_all(db, err);
    if (code != IM_OK)
        goto fail;
    int limit = sqlite3_limit(db->h, SQLITE_LIMIT_LENGTH, -1);
    /* Room for the rest of the row beside the body. */
    db->max_body = limit > 4096 ? (size_t)limit - 4096 : 0;
    *out = db;
    return IM_OK;

fail:
    im_sqlite_db_close(db);
    return code;
}

bool im_sqlite_db_is_new(const im_sqlite_db *db)
{
    return db && db->is_new;
}

bool im_sqlite_db_moved(const im_sqlite_db *db)
{
    return db && db->moved;
}

void im_sqlite_db_close(im_sqlite_db *db)
{
    if (!db)
        return;
    if (db->h && !sqlite3_get_autocommit(db->h))
        sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(db->st[i]);
    /* Every statement is finalized, so this closes for real (and, in WAL
     * mode, checkpoints and removes the log). */
    if (sqlite3_close(db->h) != SQLITE_OK)
        sqlite3_close_v2(db->h);
    free(db->path);
    free(db->known);
    free(db);
}

/* ---- messages ---- */

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Whether the row S_DEDUP_FIND found is m: same kind, receiver or group,
 * and body. */
static bool same_message(sqlite3_stmt *st, const im_message *m)
{
    const char *target = (const char *)sqlite3_column_text(st, 3);
    const void *body = sqlite3_column_blob(st, 4);
    size_t len = (size_t)sqlite3_column_bytes(st, 4);
    return sqlite3_column_int(st, 2) == (int)m->kind && target &&
           strcmp(target, m->target) == 0 && len == m->body_len && body &&
           memcmp(body, m->body, len) == 0;
}

/* A private message's receiver is a user: it has an account, or it is a
 * service account (asked only when it has none). 1 yes, 0 no, or a code. */
static int receiver_exists(im_sqlite_db *db, const char *user, im_error *err)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = user; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    char *slot = db->known[h % KNOWN_SLOTS];
    if (slot[0] == user[0] && strcmp(slot, user) == 0)
        return 1;
    sqlite3_stmt *st = stmt(db, S_USER_EXISTS);
    bind_text(st, 1, user);
    int r = row(db, st, err, "looking up the account of %s", user);
    if (r == 1)
        sqlite3_reset(st);
    if (r == 0 && db->is_service_account && db->is_service_account(db->service_arg, user))
        r = 1;
    if (r == 1)
        snprintf(slot, IM_USER_ID_MAX + 1, "%s", user);
    return r;
}

int im_sqlite_db_append(im_sqlite_db *db, im_message *m, bool *duplicate, im_error *err)
{
    im_error local;
    if (!err)
        err = &local;
    if (duplicate)
        *duplicate = false;
    if (!db || !m)
        return im_error_set(err, IM_EINVAL, "no database or no message");
    int code = im_message_validate(m, SIZE_MAX, err);
    if (code != IM_OK)
        return code;
    /* Checked before anything is written: a row SQLite refuses as too big
     * halfway through would leave a seq taken and no message. */
    if (m->body_len > db->max_body)
        return im_error_set(err, IM_ETOOBIG, "the message body is %zu bytes, over %zu",
                            m->body_len, db->max_body);
    char conv[IM_CONVERSATION_ID_MAX + 1];
    if (im_message_conversation_id(m, conv, sizeof conv) < 0)
        return im_error_set(err, IM_EINVAL, "the message has no valid conversation");
    /* im_message_validate has made sure there is one. */
    const char *cmid = m->client_msg_id;
    uint64_t seq = 0, time_ms = m->server_time_ms ? m->server_time_ms : wall_ms();
    bool dup = false, own;

    code = write_begin(db, &own, err);
    if (code != IM_OK)
        return code;
    sqlite3_stmt *find = stmt(db, S_DEDUP_FIND);
    bind_text(find, 1, m->sender);
    bind_text(find, 2, cmid);
    int r = row(db, find, err, "looking up client_msg_id of %s", m->sender);
    if (r == 1) {
        bool same = same_message(find, m);
        seq = (uint64_t)sqlite3_column_int64(find, 0);
        time_ms = (uint64_t)sqlite3_column_int64(find, 1);
        sqlite3_reset(find);
        if (same)
            dup = true;
        else
            code = im_error_set(err, IM_EIDREUSED,
                                "this client_msg_id was used for another message");
        goto out;
    }
    if ((code = r) != IM_OK)
        goto out;
    if (m->kind == IM_MESSAGE_PRIVATE && db->receivers_need_account) {
        r = receiver_exists(db, m->target, err);
        if (r == 0)
            code = im_error_set(err, IM_EUNKNOWNUSER, "%s is not a user of this server",
                                m->target);
        else if (r < 0)
            code = r;
        if (code != IM_OK)
            goto out;
    }

    /* The message's own values are bound first: they can be refused (a body
     * SQLite will not take) before a seq is spent. */
    sqlite3_stmt *ins = stmt(db, S_MSG_INSERT);
    bind_text(ins, 1, conv);
    sqlite3_bind_int(ins, 3, (int)m->kind);
    bind_text(ins, 4, m->sender);
    bind_text(ins, 5, m->target);
    bind_text(ins, 6, cmid);
    bind_u64(ins, 7, time_ms);
    int rc = sqlite3_bind_blob64(ins, 8, m->body, m->body_len, SQLITE_STATIC);
    if (rc != SQLITE_OK) {
        code = im_error_set(err, rc == SQLITE_TOOBIG ? IM_ETOOBIG : code_of(db->h, rc),
                            "append to %s: %s", conv, sqlite3_errstr(rc));
        goto out;
    }

    sqlite3_stmt *next = stmt(db, S_CONV_NEXT);
    bind_text(next, 1, conv);
    r = row(db, next, err, "append to %s", conv);
    if (r != 1) {
        code = r == 0 ? im_error_set(err, IM_EIO, "append to %s: no seq returned", conv) : r;
        goto out;
    }
    seq = (uint64_t)sqlite3_column_int64(next, 0);
    sqlite3_reset(next);

    bind_u64(ins, 2, seq);
    if ((code = run(db, ins, err, "append to %s", conv)) != IM_OK)
        goto out;
    if (m->kind == IM_MESSAGE_PRIVATE) {
        sqlite3_stmt *st = stmt(db, S_CURSOR_SEED);
        bind_text(st, 1, m->target);
        bind_text(st, 2, conv);
        bind_u64(st, 3, seq);
        if ((code = run(db, st, err, "append to %s", conv)) != IM_OK)
            goto out;
    }
    sqlite3_stmt *st = stmt(db, S_CURSOR_FOLLOW);
    bind_text(st, 1, m->sender);
    bind_text(st, 2, conv);
    bind_u64(st, 3, seq);
    code = run(db, st, err, "append to %s", conv);

out:
    code = write_end(db, own, code, err);
    if (code == IM_OK) {
        m->seq = seq;
        m->server_time_ms = time_ms;
        if (duplicate)
            *duplicate = dup;
    }
    return code;
}

/* Fills m from a row of MSG_COLUMNS. Pointers are SQLite's, valid until the
 * statement moves. IM_ENOMEM if SQLite could not produce a value. */
static int read_message(sqlite3_stmt *st, im_message *m, const char **conv)
{
    memset(m, 0, sizeof *m);
    *conv = (const char *)sqlite3_column_text(st, 0);
    m->seq = (uint64_t)sqlite3_column_int64(st, 1);
    m->kind = (im_message_kind)sqlite3_column_int(st, 2);
    m->sender = (const char *)sqlite3_column_text(st, 3);
    m->target = (const char *)sqlite3_column_text(st, 4);
    m->client_msg_id = sqlite3_column_type(st, 5) == SQLITE_NULL
                           ? ""
                           : (const char *)sqlite3_column_text(st, 5);
    m->server_time_ms = (uint64_t)sqlite3_column_int64(st, 6);
    m->body = sqlite3_column_blob(st, 7);
    m->body_len = (size_t)sqlite3_column_bytes(st, 7);
    if (!*conv || !m->sender || !m->target || !m->client_msg_id || (m->body_len && !m->body))
        return IM_ENOMEM;
    return IM_OK;
}

/* Steps st to its end, handing each row to fn. */
static int read_messages(im_sqlite_db *db, sqlite3_stmt *st, im_sqlite_msg_fn fn, void *arg,
                         im_error *err, const char *what)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        im_message m;
        const char *conv;
        if (read_message(st, &m, &conv) != IM_OK) {
            sqlite3_reset(st);
            return im_error_set(err, IM_ENOMEM, "%s: out of memory", what);
        }
        int r = fn(arg, &m, conv);
        if (r != 0) {
            sqlite3_reset(st);
            if (r < 0)
                im_error_set(err, r, "%s: stopped by its reader (%s)", what, im_strerror(r));
            return r;
        }
    }
    int code = rc == SQLITE_DONE ? IM_OK : sql_fail(db, rc, err, "%s", what);
    sqlite3_reset(st);
    return code;
}

static sqlite3_int64 clamp_limit(size_t limit)
{
    return limit > (size_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)limit;
}

int im_sqlite_db_pending(im_sqlite_db *db, const char *user, size_t limit, im_sqlite_msg_fn fn,
                         void *arg, im_error *err)
{
    if (!db || !fn)
        return im_error_set(err, IM_EINVAL, "no database or no callback");
    int code = im_user_id_check(user, err);
    if (code != IM_OK || limit == 0)
        return code;
    sqlite3_stmt *st = stmt(db, S_PENDING);
    bind_text(st, 1, user);
    sqlite3_bind_int64(st, 2, clamp_limit(limit));
    char what[80];
    snprintf(what, sizeof what, "pending for %s", user);
    return read_messages(db, st, fn, arg, err, what);
}

int im_sqlite_db_history(im_sqlite_db *db, const char *conversation, uint64_t before_seq,
                         size_t limit, im_sqlite_msg_fn fn, void *arg, im_error *err)
{
    if (!db || !fn || !conversation)
        return im_error_set(err, IM_EINVAL, "no database, conversation or callback");
    if (strnlen(conversation, IM_CONVERSATION_ID_MAX + 1) > IM_CONVERSATION_ID_MAX)
        return im_error_set(err, IM_EINVAL, "conversation id longer than %d bytes",
                            IM_CONVERSATION_ID_MAX);
    if (limit == 0)
        return IM_OK;
    sqlite3_stmt *st = stmt(db, S_HISTORY);
    bind_text(st, 1, conversation);
    bind_u64(st, 2, before_seq ? before_seq : UINT64_MAX);
    sqlite3_bind_int64(st, 3, clamp_limit(limit));
    char what[120];
    snprintf(what, sizeof what, "history of %s", conversation);
    return read_messages(db, st, fn, arg, err, what);
}

int im_sqlite_db_history_newest(im_sqlite_db *db, const char *conversation,
                                uint64_t before_seq, size_t limit, im_sqlite_msg_fn fn,
                                void *arg, im_error *err)
{
    if (!db || !fn || !conversation)
        return im_error_set(err, IM_EINVAL, "no database, conversation or callback");
    if (strnlen(conversation, IM_CONVERSATION_ID_MAX + 1) > IM_CONVERSATION_ID_MAX)
        return im_error_set(err, IM_EINVAL, "conversation id longer than %d bytes",
                            IM_CONVERSATION_ID_MAX);
    if (limit == 0)
        return IM_OK;
    sqlite3_stmt *st = stmt(db, S_HISTORY_NEWEST);
    bind_text(st, 1, conversation);
    bind_u64(st, 2, before_seq ? before_seq : UINT64_MAX);
    sqlite3_bind_int64(st, 3, clamp_limit(limit));
    char what[120];
    snprintf(what, sizeof what, "history of %s", conversation);
    return read_messages(db, st, fn, arg, err, what);
}

int im_sqlite_db_ack(im_sqlite_db *db, const char *user, const char *conversation, uint64_t seq,
                     im_error *err)
{
    im_error local;
    if (!err)
        err = &local;
    if (!db || !conversation)
        return im_error_set(err, IM_EINVAL, "no database or no conversation");
    int code = im_user_id_check(user, err);
    bool group = false;
    if (code == IM_OK)
        code = im_conversation_check(user, conversation, &group, err);
    bool own;
    if (code == IM_OK)
        code = write_begin(db, &own, err);
    if (code != IM_OK)
        return code;

    sqlite3_stmt *st = stmt(db, S_CONV_LAST);
    bind_text(st, 1, conversation);
    int r = row(db, st, err, "ack in %s", conversation);
    if (r == 1) {
        uint64_t last = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        if (seq > last)
            seq = last;
        /* The acker's own messages right after seq are acked with it, as
         * an append does when the cursor is just before it. Otherwise a bot
         * that answers before it acks leaves its answers past its cursor,
         * and every pending read of its steps over them again. */
        if (seq < last) {
            st = stmt(db, S_ACK_OTHERS_NEXT);
            bind_text(st, 1, conversation);
            bind_u64(st, 2, seq);
            bind_text(st, 3, user);
            r = row(db, st, err, "ack in %s", conversation);
            if (r < 0)
                return write_end(db, own, r, err);
            seq = r == 1 ? (uint64_t)sqlite3_column_int64(st, 0) - 1 : last;
            sqlite3_reset(st);
        }
        /* A group cursor is only ever moved, never made: its existence is
         * the membership pending relies on. */
        st = stmt(db, group ? S_CURSOR_ACK_UPDATE : S_CURSOR_ACK_UPSERT);
        bind_text(st, 1, user);
        bind_text(st, 2, conversation);
        bind_u64(st, 3, seq);
        code = run(db, st, err, "ack in %s", conversation);
    } else {
        code = r; /* 0: no such conversation, nothing to ack */
    }
    return write_end(db, own, code, err);
}

/* ---- groups ---- */

static void group_conv(char *buf, size_t size, const char *group)
{
    snprintf(buf, size, "g:%s", group);
}

/* A group's row, as the checks before a change need it. */
typedef struct group_row {
    uint32_t max;
    int64_t count;
    unsigned flags;
    char owner[IM_USER_ID_MAX + 1];
} group_row;

/* Reads the group's row: 1 (gr set), 0 (no such group) or an error code. */
static int group_get(im_sqlite_db *db, const char *group, group_row *gr, im_error *err)
{
    sqlite3_stmt *st = stmt(db, S_GROUP_GET);
    bind_text(st, 1, group);
    int r = row(db, st, err, "reading group %s", group);
    if (r == 1) {
        gr->max = (uint32_t)sqlite3_column_int64(st, 0);
        gr->count = sqlite3_column_int64(st, 1);
        gr->flags = (unsigned)sqlite3_column_int64(st, 2);
        const char *owner = (const char *)sqlite3_column_text(st, 3);
        snprintf(gr->owner, sizeof gr->owner, "%s", owner ? owner : "");
        sqlite3_reset(st);
    }
    return r;
}

/* 1 if the (group, user) row of statement id exists, 0 if not, or an
 * error code. */
static int pair_get(im_sqlite_db *db, enum stmt_id id, const char *group, const char *user,
                    im_error *err)
{
    sqlite3_stmt *st = stmt(db, id);
    bind_text(st, 1, group);
    bind_text(st, 2, user);
    int r = row(db, st, err, "reading group %s", group);
    if (r == 1)
        sqlite3_reset(st);
    return r;
}

static int member_get(im_sqlite_db *db, const char *group, const char *user, im_error *err)
{
    return pair_get(db, S_MEMBER_GET, group, user, err);
}

static int invite_get(im_sqlite_db *db, const char *group, const char *user, im_error *err)
{
    return pair_get(db, S_INVITE_GET, group, user, err);
}

/* The group's invitations: a count, or an error code (negative). */
static int64_t invite_count(im_sqlite_db *db, const char *group, im_error *err)
{
    sqlite3_stmt *st = stmt(db, S_INVITE_COUNT);
    bind_text(st, 1, group);
    int r = row(db, st, err, "reading group %s", group);
    if (r != 1)
        return r < 0 ? r : 0;
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return n;
}

/* A (group, user) statement that returns no row. */
static int pair_run(im_sqlite_db *db, enum stmt_id id, const char *group, const char *user,
                    im_error *err)
{
    sqlite3_stmt *st = stmt(db, id);
    bind_text(st, 1, group);
    bind_text(st, 2, user);
    return run(db, st, err, "group %s, %s", group, user);
}

/* The writes of a join: the member row, with since the group's last seq,
 * and a cursor there (so what was said before is not pending for them). */
static int add_member(im_sqlite_db *db, const char *group, const char *conv, const char *user,
                      uint64_t now_ms, uint64_t *since, im_error *err)
{
    sqlite3_stmt *st = stmt(db, S_CONV_CREATE);
    bind_text(st, 1, conv);
    int code = run(db, st, err, "group %s", group);
    uint64_t last = 0;
    if (code == IM_OK) {
        st = stmt(db, S_CONV_LAST);
        bind_text(st, 1, conv);
        int r = row(db, st, err, "group %s", group);
        if (r == 1) {
            last = (uint64_t)sqlite3_column_int64(st, 0);
            sqlite3_reset(st);
        } else if (r < 0) {
            code = r;
        }
    }
    if (code == IM_OK) {
        st = stmt(db, S_MEMBER_INSERT);
        bind_text(st, 1, group);
        bind_text(st, 2, user);
        bind_u64(st, 3, now_ms);
        bind_u64(st, 4, last);
        code = run(db, st, err, "adding %s to group %s", user, group);
    }
    if (code == IM_OK) {
        st = stmt(db, S_CURSOR_JOIN);
        bind_text(st, 1, user);
        bind_text(st, 2, conv);
        code = run(db, st, err, "adding %s to group %s", user, group);
    }
    if (code == IM_OK && since)
        *since = last;
    return code;
}

static int check_ids(const char *group, const char *user, im_error *err)
{
    im_error sub;
    if (im_user_id_check(group, &sub) != IM_OK)
        return im_error_set(err, IM_EINVAL, "bad group id: %s", sub.msg);
    if (im_user_id_check(user, &sub) != IM_OK)
        return im_error_set(err, IM_EINVAL, "bad user id: %s", sub.msg);
    return IM_OK;
}

/* The start every group change shares: the ids checked, the conversation's
 * id made, and the write begun. */
static int group_write_begin(im_sqlite_db *db, const char *group, const char *user, char *conv,
                             bool *own, im_error *err)
{
    if (!db)
        return im_error_set(err, IM_EINVAL, "no database");
    int code = check_ids(group, user, err);
    if (code != IM_OK)
        return code;
    group_conv(conv, IM_CONVERSATION_ID_MAX + 1, group);
    return write_begin(db, own, err);
}

/* Reads the group into gr: IM_OK, IM_ENOGROUP or an error code. */
static int group_must_exist(im_sqlite_db *db, const char *group, group_row *gr, im_error *err)
{
    int r = group_get(db, group, gr, err);
    if (r == 0)
        return im_error_set(err, IM_ENOGROUP, "no group %s", group);
    return r < 0 ? r : IM_OK;
}

int im_sqlite_db_group_create_flags(im_sqlite_db *db, const char *group, const char *owner,
                                    uint32_t max_members, unsigned flags, uint64_t now_ms,
                                    uint64_t *since, im_error *err)
{
    im_error local;
    if (!err)
        err = &local;
    if (max_members < 1 || max_members > IM_GROUP_MAX_MEMBERS_LIMIT)
        return im_error_set(err, IM_EINVAL, "max_members %u is not in 1..%u", max_members,
                            IM_GROUP_MAX_MEMBERS_LIMIT);
    if (flags & ~(unsigned)IM_GROUP_FLAGS_ALL)
        return im_error_set(err, IM_EINVAL, "unknown group flags 0x%x", flags);
    char conv[IM_CONVERSATION_ID_MAX + 1];
    bool own;
    int code = group_write_begin(db, group, owner, conv, &own, err);
    if (code != IM_OK)
        return code;
    group_row gr;
    int r = group_get(db, group, &gr, err);
    if (r == 1) {
        code = im_error_set(err, IM_EEXIST, "group %s already exists", group);
    } else if (r < 0) {
        code = r;
    } else {
        /* Messages under this id without a group (an append queued behind
         * the last member's leave) belong to no one: the new group starts
         * empty, at seq 1. */
        sqlite3_stmt *st = stmt(db, S_CONV_DELETE);
        bind_text(st, 1, conv);
        code = run(db, st, err, "creating group %s", group);
        if (code == IM_OK) {
            st = stmt(db, S_GROUP_INSERT);
            bind_text(st, 1, group);
            sqlite3_bind_int64(st, 2, max_members);
            bind_u64(st, 3, now_ms);
            sqlite3_bind_int64(st, 4, flags);
            bind_text(st, 5, owner);
            code = run(db, st, err, "creating group %s", group);
        }
        if (code == IM_OK)
            code = add_member(db, group, conv, owner, now_ms, since, err);
    }
    return write_end(db, own, code, err);
}

int im_sqlite_db_group_create(im_sqlite_db *db, const char *group, const char *owner,
                              uint32_t max_members, uint64_t now_ms, im_error *err)
{
    return im_sqlite_db_group_create_flags(db, group, owner, max_members, 0, now_ms, NULL, err);
}

int im_sqlite_db_group_join(im_sqlite_db *db, const char *group, const char *user,
                            uint64_t now_ms, uint64_t *since, im_error *err)
{
    im_error local;
    if (!err)
        err = &local;
    char conv[IM_CONVERSATION_ID_MAX + 1];
    bool own;
    int code = group_write_begin(db, group, user, conv, &own, err);
    if (code != IM_OK)
        return code;
    group_row gr;
    int r = 0;
    int64_t invited = 0;
    code = group_must_exist(db, group, &gr, err);
    if (code != IM_OK)
        r = 0;
    else if ((r = member_get(db, group, user, err)) != 0)
        code = r == 1 ? im_error_set(err, IM_EMEMBER, "%s is already in group %s", user, group)
                      : r;
    else if ((r = invite_get(db, group, user, err)) < 0)
        code = r;
    else if ((gr.flags & IM_GROUP_PRIVATE) && r == 0)
        code = im_error_set(err, IM_ENOGROUP, "no group %s", group);
    else if ((invited = invite_count(db, group, err)) < 0)
        code = (int)invited;
    /* An invitation keeps its place: only others' count against a join. */
    else if (gr.count + invited - r >= (int64_t)gr.max)
        code = im_error_set(err, IM_EFULL, "group %s is full (%u members)", group, gr.max);
    /* Every check is made: from here on, only writes. */
    if (code == IM_OK && r == 1)
        code = pair_run(db, S_INVITE_DELETE, group, user, err);
    if (code == IM_OK)
        code = add_member(db, group, conv, user, now_ms, since, err);
    if (code == IM_OK) {
        sqlite3_stmt *st = stmt(db, S_GROUP_COUNT);
        bind_text(st, 1, group);
        sqlite3_bind_int(st, 2, 1);
        code = run(db, st, err, "adding %s to group %s", user, group);
    }
    return write_end(db, own, code, err);
}

int im_sqlite_db_group_add_member(im_sqlite_db *db, const char *group, const char *user,
                                  uint64_t now_ms, im_error *err)
{
    return im_sqlite_db_group_join(db, group, user, now_ms, NULL, err);
}

/* The writes that take the last one out: the group goes, and its
 * conversation with it (messages, cursors, members and invitations by
 * cascade). */
static int delete_group(im_sqlite_db *db, const char *group, const char *conv, im_error *err)
{
    sqlite3_stmt *st = stmt(db, S_GROUP_DELETE);
    bind_text(st, 1, group);
    int code = run(db, st, err, "deleting group %s", group);
    if (code == IM_OK) {
        st = stmt(db, S_CONV_DELETE);
        bind_text(st, 1, conv);
        code = run(db, st, err, "deleting group %s", group);
    }
    return code;
}

/* The group exists (its row in *gr) and user is a member of it: IM_OK, or
 * IM_ENOGROUP, IM_ENOTMEMBER, or the database's error. */
static int group_member_must_exist(im_sqlite_db *db, const char *group, const char *user,
                                   group_row *gr, im_error *err)
{
    int code = group_must_exist(db, group, gr, err);
    if (code != IM_OK)
        return code;
    int r = member_get(db, group, user, err);
    if (r == 1)
        return IM_OK;
    return r == 0 ? im_error_set(err, IM_ENOTMEMBER, "%s is not in group %s", user, group) : r;
}

int im_sqlite_db_group_remove_member(im_sqlite_db *db, const char *group, const char *user,
                                     im_error *err)
{
    im_error local;
    if (!err)
        err = &local;
    char conv[IM_CONVERSATION_ID_MAX + 1];
    bool own;
    int code = group_write_begin(db, group, user, conv, &own, err);
    if (code != IM_OK)
        return code;
    group_row gr;
    code = group_member_must_exist(db, group, user, &gr, err);
    if (code == IM_OK)
        code = pair_run(db, S_MEMBER_DELETE, group, user, err);
    if (code == IM_OK) {
        sqlite3_stmt *st = stmt(db, S_CURSOR_DELETE);
        bind_text(st, 1, user);
        bind_text(st, 2, conv);
        code = run(db, st, err, "removing %s from group %s", user, group);
    }
    if (code == IM_OK && gr.count <= 1) {
        code = delete_group(db, group, conv, err);
    } else if (code == IM_OK) {
        sqlite3_stmt *st = stmt(db, S_GROUP_COUNT);
        bind_text(st, 1, group);
        sqlite3_bind_int(st, 2, -1);
        code = run(db, st, err, "removing %s from group %s", user, group);
        if (code == IM_OK && strcmp(gr.owner, user) == 0)
            code = pair_run(db, S_GROUP_OWNER_NEXT, group, user, err);
    }
    return write_end(db, own, code, err);
}

int im_sqlite_db_group_invite(im_sqlite_db *db, const char *group, const char *user,
                              uint64_t now_ms, im_error *err)
{
    im_error local;
    if (!err)
        err = &local;
    char conv[IM_CONVERSATION_ID_MAX + 1];
    bool own;
    int code = group_write_begin(db, group, user, conv, &own, err);
    if (code != IM_OK)
        return code;
    group_row gr;
    int r = 0;
    int64_t invited = 0;
    code = group_must_exist(db, group, &gr, err);
    if (code != IM_OK)
        r = 0;
    else if ((r = member_get(db, group, user, err)) != 0)
        code = r == 1 ? im_error_set(err, IM_EMEMBER, "%s is already in group %s", user, group)
                      : r;
    else if ((r = invite_get(db, group, user, err)) < 0)
        code = r;
    else if (r == 0 && (invited = invite_count(db, group, err)) < 0)
        code = (int)invited;
    else if (r == 0 && gr.count + invited >= (int64_t)gr.max)
        code = im_error_set(err, IM_EFULL, "group %s is full (%u members and invitations)",
                            group, gr.max);
    if (code == IM_OK && r == 0) { /* invited before: nothing to write */
        sqlite3_stmt *st = stmt(db, S_INVITE_INSERT);
        bind_text(st, 1, group);
        bind_text(st, 2, user);
        bind_u64(st, 3, now_ms);
        code = run(db, st, err, "inviting %s to group %s", user, group);
    }
    return write_end(db, own, code, err);
}

int im_sqlite_db_group_uninvite(im_sqlite_db *db, const char *group, const char *user,
                                im_error *err)
{
    im_error local;
    if (!err)
        err = &local;
    char conv[IM_CONVERSATION_ID_MAX + 1];
    bool own;
    int code = group_write_begin(db, group, user, conv, &own, err);
    if (code != IM_OK)
        return code;
    group_row gr;
    int r = 0;
    if ((code = group_must_exist(db, group, &gr, err)) == IM_OK &&
        (r = invite_get(db, group, user, err)) != 1)
        code = r == 0 ? im_error_set(err, IM_ENOTMEMBER, "%s is not invited to %s", user, group)
                      : r;
    if (code == IM_OK)
        code = pair_run(db, S_INVITE_DELETE, group, user, err);
    return write_end(db, own, code, err);
}

int im_sqlite_db_group_set_owner(im_sqlite_db *db, const char *group, const char *user,
                                 im_error *err)
{
    im_error local;
    if (!err)
        err = &local;
    char conv[IM_CONVERSATION_ID_MAX + 1];
    bool own;
    int code = group_write_begin(db, group, user, conv, &own, err);
    if (code != IM_OK)
        return code;
    group_row gr;
    code = group_member_must_exist(db, group, user, &gr, err);
    if (code == IM_OK)
        code = pair_run(db, S_GROUP_OWNER_SET, group, user, err);
    return write_end(db, own, code, err);
}

int im_sqlite_db_group_delete(im_sqlite_db *db, const char *group, im_error *err)
{
    im_error local;
    if (!err)
        err = &local;
    char conv[IM_CONVERSATION_ID_MAX + 1];
    bool own;
    /* The group's own id stands in for the user the shared checks want. */
    int code = group_write_begin(db, group, group, conv, &own, err);
    if (code != IM_OK)
        return code;
    group_row gr;
    if ((code = group_must_exist(db, group, &gr, err)) == IM_OK)
        code = delete_group(db, group, conv, err);
    return write_end(db, own, code, err);
}

/* The domain refusing what the store holds means the file was changed
 * behind the server's back. */
static int refused(im_sqlite_db *db, const char *id, int r, const im_error *sub, im_error *err)
{
    return im_error_set(err, r == IM_ENOMEM ? IM_ENOMEM : IM_EIO, "%s: stored group %s: %s",
                        db->path, id, sub->msg);
}

/* Builds one group from its rows: members in join order with their since,
 * then invitations, owner and creator. */
static int load_one(im_sqlite_db *db, const char *id, uint32_t max, unsigned flags,
                    const char *owner, const char *creator, im_group **out, im_error *err)
{
    *out = NULL;
    sqlite3_stmt *st = stmt(db, S_MEMBERS_ORDERED);
    bind_text(st, 1, id);
    im_group *g = NULL;
    int code = IM_OK, rc;
    im_error sub = { 0 };
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *user = (const char *)sqlite3_column_text(st, 0);
        uint64_t since = (uint64_t)sqlite3_column_int64(st, 1);
        if (!user) {
            code = im_error_set(err, IM_ENOMEM, "out of memory");
            break;
        }
        int r = g ? im_group_add_member(g, user, &sub)
                  : im_group_new_flags(id, user, max, flags, &g, &sub);
        if (r == IM_OK)
            r = im_group_set_member_since_at(g, im_group_member_count(g) - 1, since, &sub);
        if (r != IM_OK) {
            code = refused(db, id, r, &sub, err);
            break;
        }
    }
    if (code == IM_OK && rc != SQLITE_DONE)
        code = sql_fail(db, rc, err, "%s: reading group %s", db->path, id);
    sqlite3_reset(st);
    if (code == IM_OK && !g)
        code = im_error_set(err, IM_EIO, "%s: stored group %s has no members", db->path, id);
    if (code == IM_OK) {
        st = stmt(db, S_INVITES_ORDERED);
        bind_text(st, 1, id);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *user = (const char *)sqlite3_column_text(st, 0);
            int r = user ? im_group_add_invite(g, user, &sub) : IM_ENOMEM;
            if (r != IM_OK) {
                code = user ? refused(db, id, r, &sub, err)
                            : im_error_set(err, IM_ENOMEM, "out of memory");
                break;
            }
        }
        if (code == IM_OK && rc != SQLITE_DONE)
            code = sql_fail(db, rc, err, "%s: reading group %s", db->path, id);
        sqlite3_reset(st);
    }
    int r;
    if (code == IM_OK && owner[0] && (r = im_group_set_owner(g, owner, &sub)) != IM_OK)
        code = refused(db, id, r, &sub, err);
    if (code == IM_OK && creator[0] && (r = im_group_set_creator(g, creator, &sub)) != IM_OK)
        code = refused(db, id, r, &sub, err);
    if (code != IM_OK) {
        im_group_free(g);
        return code;
    }
    *out = g;
    return IM_OK;
}

int im_sqlite_db_groups_load(im_sqlite_db *db, int (*fn)(void *arg, im_group *g), void *arg,
                             im_error *err)
{
    if (!db || !fn)
        return im_error_set(err, IM_EINVAL, "no database or no callback");
    sqlite3_stmt *st = stmt(db, S_GROUPS_ALL);
    int code = IM_OK, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        uint32_t max = (uint32_t)sqlite3_column_int64(st, 1);
        unsigned flags = (unsigned)sqlite3_column_int64(st, 2);
        const char *owner = (const char *)sqlite3_column_text(st, 3);
        const char *creator = (const char *)sqlite3_column_text(st, 4);
        if (!id || !owner || !creator) {
            code = im_error_set(err, IM_ENOMEM, "out of memory");
            break;
        }
        /* The row's texts live until the next step: load_one steps other
         * statements only. */
        im_group *g;
        if ((code = load_one(db, id, max, flags, owner, creator, &g, err)) != IM_OK)
            break;
        int r = fn(arg, g);
        if (r != 0) {
            if (r < 0)
                im_error_set(err, r, "loading groups: stopped by the caller (%s)",
                             im_strerror(r));
            code = r;
            break;
        }
    }
    if (code == IM_OK && rc != SQLITE_DONE)
        code = sql_fail(db, rc, err, "%s: reading groups", db->path);
    sqlite3_reset(st);
    return code;
}

/* ---- accounts ---- */

int im_sqlite_db_user_create(im_sqlite_db *db, const char *user, const char *display_name,
                             const char *password_hash, uint64_t now_ms, im_error *err)
{
    im_error local;
    if (!err)
        err = &local;
    if (!db)
        return im_error_set(err, IM_EINVAL, "no database");
    int code = im_user_id_check(user, err);
    if (code == IM_OK)
        code = im_display_name_check(display_name, err);
    if (code != IM_OK)
        return code;
    if (!password_hash || !password_hash[0])
        return im_error_set(err, IM_EINVAL, "no password hash for %s", user);
    bool own;
    if ((code = write_begin(db, &own, err)) != IM_OK)
        return code;
    sqlite3_stmt *st = stmt(db, S_USER_INSERT);
    bind_text(st, 1, user);
    bind_text(st, 2, display_name ? display_name : "");
    bind_text(st, 3, password_hash);
    bind_u64(st, 4, now_ms);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        code = im_error_set(err, IM_EEXIST, "user %s already exists", user);
    else if (rc != SQLITE_DONE)
        code = sql_fail(db, rc, err, "creating user %s", user);
    sqlite3_reset(st);
    return write_end(db, own, code, err);
}

/* Copies s into buf; false if it does not fit. */
static bool copy_out(char *buf, size_t size, const char *s)
{
    size_t n = strlen(s) + 1;
    if (n > size)
        return false;
    memcpy(buf, s, n);
    return true;
}

int im_sqlite_db_user_get(im_sqlite_db *db, const char *user, char *display_name,
                          size_t name_size, char *password_hash, size_t hash_size, im_error *err)
{
    if (!db)
        return im_error_set(err, IM_EINVAL, "no database");
    int code = im_user_id_check(user, err);
    if (code != IM_OK)
        return code;
    sqlite3_stmt *st = stmt(db, S_USER_GET);
    bind_text(st, 1, user);
    int r = row(db, st, err, "reading user %s", user);
    if (r == 0)
        return im_error_set(err, IM_ENOTFOUND, "no user %s", user);
    if (r < 0)
        return r;
    const char *name = (const char *)sqlite3_column_text(st, 0);
    const char *hash = (const char *)sqlite3_column_text(st, 1);
    if (!name || !hash)
        code = im_error_set(err, IM_ENOMEM, "out of memory");
    else if ((display_name && strlen(name) >= name_size) ||
             (password_hash && strlen(hash) >= hash_size))
        code = im_error_set(err, IM_EINVAL, "a buffer for user %s is too small", user);
    else {
        if (display_name)
            copy_out(display_name, name_size, name);
        if (password_hash)
            copy_out(password_hash, hash_size, hash);
    }
    sqlite3_reset(st);
    return code;
}

static int check_token(const uint8_t *hash, size_t len, im_error *err)
{
    if (!hash || len == 0 || len > IM_SQLITE_TOKEN_HASH_MAX)
        return im_error_set(err, IM_EINVAL, "a token hash is 1..%d bytes, not %zu",
                            IM_SQLITE_TOKEN_HASH_MAX, hash ? len : 0);
    return IM_OK;
}

int im_sqlite_db_token_put(im_sqlite_db *db, const uint8_t *token_hash, size_t hash_len,
                           const char *user, uint64_t expires_ms, im_error *err)
{
    im_error local;
    if (!err)
        err = &local;
    if (!db)
        return im_error_set(err, IM_EINVAL, "no database");
    int code = check_token(token_hash, hash_len, err);
    if (code == IM_OK)
        code = im_user_id_check(user, err);
    bool own;
    if (code == IM_OK)
        code = write_begin(db, &own, err);
    if (code != IM_OK)
        return code;
    sqlite3_stmt *st = stmt(db, S_TOKEN_PUT);
    sqlite3_bind_blob(st, 1, token_hash, (int)hash_len, SQLITE_STATIC);
    bind_text(st, 2, user);
    bind_u64(st, 3, expires_ms);
    int rc = sqlite3_step(st);
    /* Immediate foreign keys: the statement is undone, the transaction goes on. */
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        code = im_error_set(err, IM_ENOTFOUND, "no user %s", user);
    else if (rc != SQLITE_DONE)
        code = sql_fail(db, rc, err, "storing a token of %s", user);
    sqlite3_reset(st);
    return write_end(db, own, code, err);
}

static int token_delete(im_sqlite_db *db, const uint8_t *hash, size_t len, im_error *err)
{
    bool own;
    int code = write_begin(db, &own, err);
    if (code != IM_OK)
        return code;
    sqlite3_stmt *st = stmt(db, S_TOKEN_DELETE);
    sqlite3_bind_blob(st, 1, hash, (int)len, SQLITE_STATIC);
    code = run(db, st, err, "deleting a token");
    return write_end(db, own, code, err);
}

int im_sqlite_db_token_get(im_sqlite_db *db, const uint8_t *token_hash, size_t hash_len,
                           uint64_t now_ms, char *user, im_error *err)
{
    im_error local;
    if (!err)
        err = &local;
    if (!db || !user)
        return im_error_set(err, IM_EINVAL, "no database or no buffer");
    int code = check_token(token_hash, hash_len, err);
    if (code != IM_OK)
        return code;
    sqlite3_stmt *st = stmt(db, S_TOKEN_GET);
    sqlite3_bind_blob(st, 1, token_hash, (int)hash_len, SQLITE_STATIC);
    int r = row(db, st, err, "reading a token");
    if (r == 0)
        return im_error_set(err, IM_ENOTFOUND, "unknown token");
    if (r < 0)
        return r;
    const char *owner = (const char *)sqlite3_column_text(st, 0);
    uint64_t expires = (uint64_t)sqlite3_column_int64(st, 1);
    if (!owner)
        code = im_error_set(err, IM_ENOMEM, "out of memory");
    else if (now_ms < expires && !copy_out(user, IM_USER_ID_MAX + 1, owner))
        code = im_error_set(err, IM_EIO, "%s: a token names a malformed user id", db->path);
    sqlite3_reset(st);
    if (code != IM_OK || now_ms < expires)
        return code;
    /* Expired: forget it now, then say it is unknown. */
    code = token_delete(db, token_hash, hash_len, err);
    return code != IM_OK ? code : im_error_set(err, IM_ENOTFOUND, "the token has expired");
}

int im_sqlite_db_token_delete(im_sqlite_db *db, const uint8_t *token_hash, size_t hash_len,
                              im_error *err)
{
    im_error local;
    if (!err)
        err = &local;
    if (!db)
        return im_error_set(err, IM_EINVAL, "no database");
    int code = check_token(token_hash, hash_len, err);
    return code != IM_OK ? code : token_delete(db, token_hash, hash_len, err);
}

/* Runs one of the token DELETEs (bound by the caller) in a write; returns
 * how many rows went, or an error. */
static int tokens_delete_run(im_sqlite_db *db, sqlite3_stmt *st, const char *what,
                             im_error *err)
{
    bool own;
    int code = write_begin(db, &own, err);
    if (code != IM_OK)
        return code;
    code = run(db, st, err, "%s", what);
    int n = code == IM_OK ? sqlite3_changes(db->h) : 0;
    code = write_end(db, own, code, err);
    return code != IM_OK ? code : n;
}

int im_sqlite_db_tokens_expire(im_sqlite_db *db, uint64_t now_ms, unsigned max_rows,
                               im_error *err)
{
    im_error local;
    if (!err)
        err = &local;
    if (!db)
        return im_error_set(err, IM_EINVAL, "no database");
    if (max_rows == 0)
        return 0;
    sqlite3_stmt *st = stmt(db, S_TOKENS_EXPIRE);
    bind_u64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, max_rows > INT32_MAX ? INT32_MAX : (sqlite3_int64)max_rows);
    return tokens_delete_run(db, st, "deleting expired tokens", err);
}

int im_sqlite_db_tokens_trim(im_sqlite_db *db, const char *user, unsigned keep, im_error *err)
{
    im_error local;
    if (!err)
        err = &local;
    if (!db)
        return im_error_set(err, IM_EINVAL, "no database");
    int code = im_user_id_check(user, err);
    if (code != IM_OK)
        return code;
    sqlite3_stmt *st = stmt(db, S_TOKENS_TRIM);
    bind_text(st, 1, user);
    sqlite3_bind_int64(st, 2, keep > INT32_MAX ? INT32_MAX : (sqlite3_int64)keep);
    return tokens_delete_run(db, st, "dropping the oldest tokens of a user", err);
}

int im_sqlite_db_tokens_delete_user(im_sqlite_db *db, const char *user, im_error *err)
{
    im_error local;
    if (!err)
        err = &local;
    if (!db)
        return im_error_set(err, IM_EINVAL, "no database");
    int code = im_user_id_check(user, err);
    if (code != IM_OK)
        return code;
    sqlite3_stmt *st = stmt(db, S_TOKENS_OF_USER);
    bind_text(st, 1, user);
    return tokens_delete_run(db, st, "revoking the tokens of a user", err);
}

/* ---- the plugins' key-value map ---- */

static int check_kv_name(const char *what, const char *s, im_error *err)
{
    size_t n = s ? strnlen(s, IM_SQLITE_KV_KEY_MAX + 1) : 0;
    if (n == 0 || n > IM_SQLITE_KV_KEY_MAX)
        return im_error_set(err, IM_EINVAL, "a %s is 1..%d bytes", what, IM_SQLITE_KV_KEY_MAX);
    return IM_OK;
}

int im_sqlite_db_kv_put(im_sqlite_db *db, const char *ns, const char *key, const void *value,
                        size_t len, im_error *err)
{
    im_error local;
    if (!err)
        err = &local;
    if (!db)
        return im_error_set(err, IM_EINVAL, "no database");
    int code = check_kv_name("namespace", ns, err);
    if (code == IM_OK)
        code = check_kv_name("key", key, err);
    if (code == IM_OK && value && len > IM_SQLITE_KV_VALUE_MAX)
        code = im_error_set(err, IM_EINVAL, "a value is at most %d bytes, not %zu",
                            IM_SQLITE_KV_VALUE_MAX, len);
    bool own;
    if (code == IM_OK)
        code = write_begin(db, &own, err);
    if (code != IM_OK)
        return code;
    sqlite3_stmt *st = stmt(db, value ? S_KV_PUT : S_KV_DELETE);
    bind_text(st, 1, ns);
    bind_text(st, 2, key);
    if (value) {
        /* A NULL pointer would bind NULL, which the column refuses: an empty
         * value is a zero-length blob. */
        int rc = len ? sqlite3_bind_blob(st, 3, value, (int)len, SQLITE_STATIC)
                     : sqlite3_bind_zeroblob(st, 3, 0);
        if (rc != SQLITE_OK) {
            code = im_error_set(err, code_of(db->h, rc), "storing %s/%s: %s", ns, key,
                                sqlite3_errstr(rc));
            sqlite3_reset(st);
            return write_end(db, own, code, err);
        }
    }
    code = run(db, st, err, "%s %.80s/%.80s", value ? "storing" : "deleting", ns, key);
    return write_end(db, own, code, err);
}

/* The smallest string above every string that starts with prefix: prefix
 * with its trailing 0xff bytes dropped and its last byte then raised by one.
 * false when there is none (prefix is "" or all 0xff). */
static bool prefix_successor(const char *prefix, char *out, size_t size)
{
    size_t n = strlen(prefix);
    while (n > 0 && (unsigned char)prefix[n - 1] == 0xff)
        n--;
    if (n == 0 || n >= size)
        return false;
    memcpy(out, prefix, n);
    out[n - 1] = (char)((unsigned char)out[n - 1] + 1);
    out[n] = '\0';
    return true;
}

int im_sqlite_db_kv_each(im_sqlite_db *db, const char *ns, const char *prefix,
                         im_sqlite_kv_fn fn, void *arg, im_error *err)
{
    if (!db || !fn)
        return im_error_set(err, IM_EINVAL, "no database or no callback");
    int code = check_kv_name("namespace", ns, err);
    if (code != IM_OK)
        return code;
    if (!prefix)
        prefix = "";
    /* No key is longer than the limit, so neither is a prefix that matches. */
    if (strnlen(prefix, IM_SQLITE_KV_KEY_MAX + 1) > IM_SQLITE_KV_KEY_MAX)
        return 0;
    char upper[IM_SQLITE_KV_KEY_MAX + 1];
    bool bounded = prefix_successor(prefix, upper, sizeof upper);
    sqlite3_stmt *st = stmt(db, bounded ? S_KV_RANGE : S_KV_FROM);
    bind_text(st, 1, ns);
    bind_text(st, 2, prefix);
    if (bounded)
        bind_text(st, 3, upper);
    int visited = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        const void *value = sqlite3_column_blob(st, 1);
        int len = sqlite3_column_bytes(st, 1);
        if (!key || (len > 0 && !value)) {
            sqlite3_reset(st);
            return im_error_set(err, IM_ENOMEM, "reading %.80s: out of memory", ns);
        }
        visited++;
        if (!fn(arg, key, value ? value : "", (size_t)len)) {
            sqlite3_reset(st);
            return visited;
        }
    }
    code = rc == SQLITE_DONE ? visited : sql_fail(db, rc, err, "reading %.80s", ns);
    sqlite3_reset(st);
    return code;
}
