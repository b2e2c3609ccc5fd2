/* infrastructure/store_sqlite/im_sqlite_db.h: the synchronous SQLite data
 * layer of the durable store: messages and their per-conversation seq,
 * per-user delivery cursors, groups, accounts and login tokens, and the
 * plugins' key-value map, in one file.
 *
 * One im_sqlite_db is one SQLite connection. It is not thread-safe: one
 * thread at a time uses it (the storage thread for the writer; a reader
 * connection behind a lock for history). Nothing here logs, sleeps beyond
 * SQLite's busy timeout, or aborts: every failure comes back as an IM_E*
 * code with a sentence in err, and SQLite's own codes never leave this file.
 *
 * Transactions. The caller groups writes with begin/commit (group commit).
 * Every write below also works outside an explicit transaction: it then runs
 * in a transaction of its own and is durable when it returns 0. Every commit
 * checks that the file is still at its path (im_sqlite_db_moved): a
 * database deleted while the server runs refuses writes with IM_EIO
 * instead of acknowledging what the next start will not find. Inside the
 * caller's transaction, a write that fails with IM_ENOSPC, IM_EIO or IM_ENOMEM
 * may have done part of its work (or SQLite may already have rolled the whole
 * transaction back), so the transaction is then only good for rolling back:
 * later writes and the commit refuse with that same code until
 * im_sqlite_db_rollback(). A refusal for a reason of the data (IM_EINVAL,
 * IM_EEXIST, IM_ENOGROUP, IM_EMEMBER, IM_ENOTMEMBER, IM_EFULL, IM_ENOTFOUND,
 * IM_EUNKNOWNUSER, IM_EIDREUSED) writes nothing, and the transaction goes on as if the call had not been
 * made.
 *
 * Callbacks (im_sqlite_msg_fn, the groups_load callback, im_sqlite_kv_fn)
 * run while a statement of db is being stepped: they must not call into the
 * same db. */
#ifndef IM_SQLITE_DB_H
#define IM_SQLITE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "imcore/errors.h"
#include "domain/group.h"
#include "domain/message.h"

/* The PRAGMA application_id that marks a file as imcore's ("imco"). */
#define IM_SQLITE_APPLICATION_ID 0x696d636f
/* Longest token hash accepted, in bytes (BLAKE2b's largest output). */
#define IM_SQLITE_TOKEN_HASH_MAX 64

typedef struct im_sqlite_db im_sqlite_db;

typedef struct im_sqlite_options {
    /* The database file; borrowed for the call. Missing parent directories
     * are created (mode 0700), and a new file is created with mode 0600:
     * it holds password hashes. */
    const char *path;
    /* 0: no limit. Otherwise PRAGMA max_page_count, applied once the schema
     * is in place: a write that would grow the file past it fails with
     * IM_ENOSPC, as on a full disk (tests use it for that). */
    uint32_t max_page_count;
    /* Both in WAL mode. true: PRAGMA synchronous=FULL, every commit is
     * fsynced and survives a power cut. false: NORMAL, a commit survives a
     * crash of the process but the last ones may be lost on power loss. */
    bool synchronous_full;
    /* true: skip PRAGMA quick_check at open. quick_check reads the whole
     * database (about 5 s for 2 million messages not in the page cache):
     * for the second and later connections of one process, once the first
     * has checked the file, and for storage.check_on_start: none. */
    bool skip_check;
    /* true: im_sqlite_db_append refuses a private message whose receiver
     * has no account (no row in users), unless is_service_account (if not
     * NULL) says the receiver is a service account, with IM_EUNKNOWNUSER.
     * For the connection that stores messages when logins need accounts;
     * the check is an index probe in the write's own transaction, so an
     * account registered before the message is seen and none after.
     * is_service_account is called on the thread that appends, with
     * service_arg (borrowed: it must outlive the connection). */
    bool receivers_need_account;
    bool (*is_service_account)(void *arg, const char *user);
    void *service_arg;
} im_sqlite_options;

/* The schema version this build writes (PRAGMA user_version after open). */
int im_sqlite_db_schema_version(void);

/* Opens or creates the database at o->path: WAL mode, foreign keys on, a
 * busy timeout of 5 s, PRAGMA application_id IM_SQLITE_APPLICATION_ID, and the
 * schema brought up to im_sqlite_db_schema_version() by applying the missing
 * migrations in order, one transaction each. PRAGMA quick_check runs on every
 * open unless o->skip_check, so opening costs a read of the whole file.
 *
 * These are refused, with nothing written to the file, err naming it:
 *   "PATH: not an SQLite database"            (another kind of file)
 *   "PATH: database is corrupt: WHAT"          (SQLite or quick_check says so)
 *   "PATH: not an imcore database"             (another application's SQLite
 *       file: an application_id that is not ours, or none but tables or a
 *       user_version present)
 *   "PATH: schema version N is newer than this server (M)"
 * (The one write SQLite makes before anything can be checked is the roll-back
 * of a hot journal a crashed program left beside the file, as every SQLite
 * reader does.)
 *
 * *out is the caller's: release it with im_sqlite_db_close(). On failure
 * *out is NULL. Errors: IM_EINVAL (no path), IM_EIO (the cases above, a file
 * that cannot be created or opened or is read-only, a failed migration),
 * IM_ENOSPC (the disk filled during a migration), IM_ENOMEM. */
int im_sqlite_db_open(const im_sqlite_options *o, im_sqlite_db **out, im_error *err);

/* Rolls back an open transaction and closes. NULL is fine. */
void im_sqlite_db_close(im_sqlite_db *db);

/* True when open found no imcore schema in the file (it was missing and was
 * created, or was empty) and wrote a new one: a first start, or a database
 * that is not where it was. */
bool im_sqlite_db_is_new(const im_sqlite_db *db);

/* True once a commit has found that the file at the path is no longer the
 * one db has open (deleted, or replaced by another file). SQLite would go on
 * writing to the open file, which nobody will ever open again; from then on
 * db refuses every write (IM_EIO, err naming the file and what happened).
 * Reads still answer, from the file as it was. */
bool im_sqlite_db_moved(const im_sqlite_db *db);

/* Starts the caller's transaction (BEGIN IMMEDIATE: the write lock is taken
 * now, so a commit never waits for another writer). Errors: IM_EINVAL (one is
 * already open), IM_EIO (the lock could not be taken within the busy timeout,
 * the file was deleted or replaced, or another failure), IM_ENOMEM. */
int im_sqlite_db_begin(im_sqlite_db *db, im_error *err);

/* Commits the caller's transaction: when this returns 0 every write in it is
 * on disk (as far as synchronous allows), in the file at the path. On failure
 * the transaction is rolled back and nothing of it was stored, or (IM_EIO,
 * im_sqlite_db_moved) it went to a file that was deleted or replaced and is
 * lost with it. Errors: IM_EINVAL (no transaction is open), IM_ENOSPC, IM_EIO
 * (including: a write in the transaction failed before, see above; the code
 * is that write's; the file was deleted or replaced), IM_ENOMEM. */
int im_sqlite_db_commit(im_sqlite_db *db, im_error *err);

/* Rolls back the caller's transaction; nothing when none is open. */
void im_sqlite_db_rollback(im_sqlite_db *db);

/* Stores m (private or group, its conversation from
 * im_message_conversation_id) with seq = the conversation's last seq + 1, and
 * sets m->seq. If m->server_time_ms is 0 it is set to the wall clock now;
 * otherwise it is stored as given. *duplicate is set to false.
 *
 * (sender, client_msg_id) names one message for good. If the sender stored
 * a message with m->client_msg_id before, nothing is stored: when it was
 * the same message (kind, target and body bytes), *duplicate is set to true
 * and m->seq and m->server_time_ms are those of the stored message, so the
 * caller can send the same ack again; when it was another, the call fails
 * with IM_EIDREUSED. The duplicate check comes first, before any other
 * refusal of the data.
 *
 * With receivers_need_account (im_sqlite_options), a private message to a
 * receiver with no account that is no service account is refused with
 * IM_EUNKNOWNUSER, after the duplicate check and before anything is
 * written: no seq is spent.
 *
 * m's strings and body are borrowed for the call and copied. Group messages
 * are stored without asking whether the group exists or the sender is in it:
 * the application decides that. Errors: IM_EINVAL (m fails
 * im_message_validate, which wants a client_msg_id), IM_EIDREUSED,
 * IM_EUNKNOWNUSER, IM_ETOOBIG (a body over SQLite's 1 GB limit), IM_ENOSPC (disk or max_page_count full), IM_EIO (anything
 * else, with SQLite's message), IM_ENOMEM. */
int im_sqlite_db_append(im_sqlite_db *db, im_message *m, bool *duplicate, im_error *err);

/* A stored message as read back. m, its strings and body, and conversation are
 * borrowed for the duration of the call only. Return 0 to go on; anything
 * else stops the read, and the function that called fn returns that value. */
typedef int (*im_sqlite_msg_fn)(void *arg, const im_message *m, const char *conversation);

/* Calls fn for every message user has not acked, in order of conversation id
 * (bytewise) then seq, at most limit of them (0: none):
 *   - private messages whose target is user, with seq above user's cursor in
 *     that conversation;
 *   - messages of every group user is a member of, not sent by user, with
 *     seq above user's cursor in the group's conversation. A member's cursor
 *     starts at the group's last seq when they join (or create it): what was
 *     said before is history, not pending. Leaving forgets the cursor.
 * Cost: one index probe per conversation user has a cursor in, plus the
 * unacked tail of each; acked messages are never scanned. A sender's cursor
 * follows their own messages when they have acked everything before, so
 * one's own messages do not pile up unacked.
 * Returns 0 when all were delivered, fn's non-zero value if it stopped, or an
 * error: IM_EINVAL (bad user id), IM_EIO, IM_ENOMEM. */
int im_sqlite_db_pending(im_sqlite_db *db, const char *user, size_t limit, im_sqlite_msg_fn fn,
                         void *arg, im_error *err);

/* Moves user's cursor in conversation up to seq: never down, and a seq past
 * the conversation's last one is taken as the last one. Nothing happens (and
 * 0 is returned) for a conversation with no message yet, or a group user is
 * not a member of (an ack arriving after a leave). Errors: IM_EINVAL (a
 * malformed conversation id or user id, or a private conversation between
 * two others), IM_ENOSPC, IM_EIO, IM_ENOMEM. */
int im_sqlite_db_ack(im_sqlite_db *db, const char *user, const char *conversation, uint64_t seq,
                     im_error *err);

/* The limit messages of conversation just before before_seq (0: the newest
 * ones), delivered to fn in ascending seq. Returns 0, fn's non-zero value if
 * it stopped, or an error: IM_EINVAL (no conversation, or one longer than
 * IM_CONVERSATION_ID_MAX), IM_EIO, IM_ENOMEM. An unknown conversation simply
 * has no messages. */
int im_sqlite_db_history(im_sqlite_db *db, const char *conversation, uint64_t before_seq,
                         size_t limit, im_sqlite_msg_fn fn, void *arg, im_error *err);
/* The same messages in descending seq, newest first, so that a reader
 * with a byte budget stops (fn returning non-zero) before reading older
 * rows at all. Returns and errors as im_sqlite_db_history. */
int im_sqlite_db_history_newest(im_sqlite_db *db, const char *conversation,
                                uint64_t before_seq, size_t limit, im_sqlite_msg_fn fn,
                                void *arg, im_error *err);

/* ---- groups, durable ----
 * Members are kept in join order, each with the seq it joined at (since);
 * the owner is kept by name, and when the owner leaves the earliest
 * remaining member takes over, as in domain/group.h. Invitations are kept
 * until used by a join, withdrawn, or the group goes. The rules that need
 * no one's say (a member limit, a private group's invitation) are kept
 * here too; who may ask for a change is the domain's to judge. now_ms is
 * recorded as the creation, join or invitation time. */

/* Creates group with owner as its first member and as its creator, with
 * flags (IM_GROUP_* of domain/group.h). *since (if not NULL) gets the
 * conversation's last seq as the owner joins: 0, since a new group starts
 * empty. im_sqlite_db_group_create: flags 0. Errors: IM_EINVAL (a bad id,
 * max_members outside 1..IM_GROUP_MAX_MEMBERS_LIMIT, an unknown flag),
 * IM_EEXIST, IM_ENOSPC, IM_EIO, IM_ENOMEM. */
int im_sqlite_db_group_create_flags(im_sqlite_db *db, const char *group, const char *owner,
                                    uint32_t max_members, unsigned flags, uint64_t now_ms,
                                    uint64_t *since, im_error *err);
int im_sqlite_db_group_create(im_sqlite_db *db, const char *group, const char *owner,
                              uint32_t max_members, uint64_t now_ms, im_error *err);

/* Adds user, using up their invitation if they have one; *since (if not
 * NULL) gets the conversation's last seq, which is also where their cursor
 * starts. Errors: IM_EINVAL, IM_ENOGROUP (no such group; or a private one
 * and user is not invited), IM_EMEMBER (already in), IM_EFULL (members and
 * others' invitations reach the limit: the domain checks it first, this is
 * the same rule kept by the store), IM_ENOSPC, IM_EIO, IM_ENOMEM.
 * im_sqlite_db_group_add_member: since not wanted. */
int im_sqlite_db_group_join(im_sqlite_db *db, const char *group, const char *user,
                            uint64_t now_ms, uint64_t *since, im_error *err);
int im_sqlite_db_group_add_member(im_sqlite_db *db, const char *group, const char *user,
                                  uint64_t now_ms, im_error *err);

/* Removes user (a leave or a kick); the next member in join order becomes
 * the owner if user was it. The last member leaving deletes the group
 * together with its messages, cursors and invitations, so that a group
 * later created under the same id starts empty and at seq 1 (group_create
 * also clears messages stored under its id while no group had it). Errors:
 * IM_EINVAL, IM_ENOGROUP, IM_ENOTMEMBER, IM_ENOSPC, IM_EIO, IM_ENOMEM. */
int im_sqlite_db_group_remove_member(im_sqlite_db *db, const char *group, const char *user,
                                     im_error *err);

/* Invites user; an invitation that exists is no error and changes nothing.
 * Errors: IM_EINVAL, IM_ENOGROUP, IM_EMEMBER, IM_EFULL (members and
 * invitations reach the limit), IM_ENOSPC, IM_EIO, IM_ENOMEM. */
int im_sqlite_db_group_invite(im_sqlite_db *db, const char *group, const char *user,
                              uint64_t now_ms, im_error *err);
/* Withdraws user's invitation. Errors: IM_EINVAL, IM_ENOGROUP,
 * IM_ENOTMEMBER (not invited), IM_ENOSPC, IM_EIO, IM_ENOMEM. */
int im_sqlite_db_group_uninvite(im_sqlite_db *db, const char *group, const char *user,
                                im_error *err);
/* Makes the member user the owner. Errors: IM_EINVAL, IM_ENOGROUP,
 * IM_ENOTMEMBER, IM_ENOSPC, IM_EIO, IM_ENOMEM. */
int im_sqlite_db_group_set_owner(im_sqlite_db *db, const char *group, const char *user,
                                 im_error *err);
/* Deletes the group with its messages, cursors, members and invitations.
 * Errors: IM_EINVAL, IM_ENOGROUP, IM_ENOSPC, IM_EIO, IM_ENOMEM. */
int im_sqlite_db_group_delete(im_sqlite_db *db, const char *group, im_error *err);

/* Rebuilds every stored group, in id order, with the domain's constructors
 * (im_group_new_flags with the first member, then im_group_add_member in
 * join order, each member's since, the invitations, the owner and the
 * creator) and hands each to fn, which takes ownership of it whatever it
 * returns. fn returning non-zero stops, and that value is returned. Errors:
 * IM_EIO (including a stored group the domain refuses), IM_ENOMEM. */
int im_sqlite_db_groups_load(im_sqlite_db *db, int (*fn)(void *arg, im_group *g), void *arg,
                             im_error *err);

/* ---- accounts ----
 * The password hashing is done elsewhere (libsodium); this layer keeps
 * strings and opaque blobs. */

/* display_name may be NULL or "" ("use the id"); password_hash is the
 * encoded hash string, not empty. All borrowed for the call. Errors:
 * IM_EINVAL (bad user id or display name, no hash), IM_EEXIST, IM_ENOSPC,
 * IM_EIO, IM_ENOMEM. */
int im_sqlite_db_user_create(im_sqlite_db *db, const char *user, const char *display_name,
                             const char *password_hash, uint64_t now_ms, im_error *err);

/* Copies user's display name and password hash, NUL-terminated, into the
 * caller's buffers (IM_DISPLAY_NAME_MAX + 1 bytes is always enough for the
 * name). Either buffer may be NULL (with its size 0) when not wanted.
 * Errors: IM_EINVAL (bad id, a buffer too small: nothing is copied),
 * IM_ENOTFOUND (no such user), IM_EIO, IM_ENOMEM. */
int im_sqlite_db_user_get(im_sqlite_db *db, const char *user, char *display_name,
                          size_t name_size, char *password_hash, size_t hash_size, im_error *err);

/* Stores a login token by its hash (1..IM_SQLITE_TOKEN_HASH_MAX bytes,
 * borrowed; the token itself is never stored) for user until expires_ms (wall
 * clock), as the user's newest (see im_sqlite_db_tokens_trim). Putting a hash
 * again replaces its user and expiry and makes it the newest. Errors:
 * IM_EINVAL, IM_ENOTFOUND (no such user), IM_ENOSPC, IM_EIO, IM_ENOMEM. */
int im_sqlite_db_token_put(im_sqlite_db *db, const uint8_t *token_hash, size_t hash_len,
                           const char *user, uint64_t expires_ms, im_error *err);

/* Copies the user id of the token into user (IM_USER_ID_MAX + 1 bytes). A
 * token is expired when now_ms >= its expires_ms; an expired one is deleted.
 * Errors: IM_EINVAL, IM_ENOTFOUND (missing or expired), IM_ENOSPC, IM_EIO,
 * IM_ENOMEM. */
int im_sqlite_db_token_get(im_sqlite_db *db, const uint8_t *token_hash, size_t hash_len,
                           uint64_t now_ms, char *user, im_error *err);

/* Deletes the token; a missing one is not an error (logging out twice is
 * fine). Errors: IM_EINVAL, IM_ENOSPC, IM_EIO, IM_ENOMEM. */
int im_sqlite_db_token_delete(im_sqlite_db *db, const uint8_t *token_hash, size_t hash_len,
                              im_error *err);

/* Deletes tokens expired at now_ms (expires_ms <= now_ms), the oldest
 * first, at most max_rows of them: a bounded amount of work, for a thread
 * that does it now and then. Returns how many were deleted (max_rows: there
 * may be more), or an error: IM_EINVAL, IM_ENOSPC, IM_EIO, IM_ENOMEM. */
int im_sqlite_db_tokens_expire(im_sqlite_db *db, uint64_t now_ms, unsigned max_rows,
                               im_error *err);

/* Keeps the keep tokens of user put last (token_put numbers each user's
 * tokens in order) and deletes the others. Returns how many were deleted, or
 * an error: IM_EINVAL (a bad id), IM_ENOSPC, IM_EIO, IM_ENOMEM. */
int im_sqlite_db_tokens_trim(im_sqlite_db *db, const char *user, unsigned keep, im_error *err);

/* Deletes every token of user ("log out everywhere"). Returns how many, or
 * an error: IM_EINVAL (a bad id), IM_ENOSPC, IM_EIO, IM_ENOMEM. */
int im_sqlite_db_tokens_delete_user(im_sqlite_db *db, const char *user, im_error *err);

/* ---- the plugins' key-value map ----
 * One map per namespace. Keys are text compared byte by byte (memcmp, not
 * by character), values opaque bytes. The limits are the store port's
 * (IM_STORE_KV_KEY_MAX, IM_STORE_KV_VALUE_MAX), which this layer does not
 * include. */
#define IM_SQLITE_KV_KEY_MAX 200
#define IM_SQLITE_KV_VALUE_MAX 65536

/* Sets key of ns to value (len bytes; a zero-length value is a value) or,
 * when value is NULL, deletes it (a missing key is no error). All borrowed
 * for the call. Errors: IM_EINVAL (ns or key empty or over
 * IM_SQLITE_KV_KEY_MAX bytes, value over IM_SQLITE_KV_VALUE_MAX), IM_ENOSPC,
 * IM_EIO, IM_ENOMEM. */
int im_sqlite_db_kv_put(im_sqlite_db *db, const char *ns, const char *key, const void *value,
                        size_t len, im_error *err);

/* A key read back; key and value (len bytes, never NULL) are borrowed for
 * the call. Return false to stop. */
typedef bool (*im_sqlite_kv_fn)(void *arg, const char *key, const void *value, size_t len);

/* Calls fn for every key of ns that starts with prefix (NULL or "": every
 * key), in byte order, from one snapshot of the file. Returns how many calls
 * of fn there were (the one that stopped included), or an error: IM_EINVAL
 * (a bad ns, no fn), IM_EIO, IM_ENOMEM. */
int im_sqlite_db_kv_each(im_sqlite_db *db, const char *ns, const char *prefix,
                         im_sqlite_kv_fn fn, void *arg, im_error *err);

#endif
