/* imcore/storage.h: the storage port, which a storage adapter fills. The
 * application reaches every stored thing through it; the built-in adapters
 * (storage_sqlite, storage_memory) and any third party's are loaded by
 * name from the config (storage.engine) as plugins: see imcore/plugin.h,
 * open_storage.
 *
 * The store numbers messages (seq per conversation), keeps them if it is
 * durable, and is the one place where a stored message's fate is decided, so
 * it also orders what follows from it. Its requests are asynchronous: a
 * request returns at once, and its completion callback runs later on the
 * store's own thread (or at once, inside the call, for a store that
 * completes synchronously, like the memory store).
 *
 * Ordering, which delivery relies on: completions run one at a time, in the
 * order the requests were made durable, and a barrier's callback runs after
 * the completions of every request made before it. So the application can
 * deliver from completions and know that messages of one conversation leave
 * in seq order, and that a session's go-live is ordered against deliveries.
 *
 * Every function may be called from any worker thread at once. */
#ifndef IMCORE_STORAGE_H
#define IMCORE_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "errors.h"
#include "message.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct im_store im_store;

/* A stored group's flags (group_change's CREATE, im_group_record). */
#define IM_STORE_GROUP_PRIVATE 1u       /* joined by invitation only */
#define IM_STORE_GROUP_SHARE_HISTORY 2u /* members read what was said before they joined */

/* One stored group for load_groups: every pointer borrowed for the call.
 * Members in join order. */
typedef struct im_group_record {
    const char *id;
    uint32_t max_members;
    const char *const *members;
    size_t nmembers;
    /* Filled by a store that has group_change, and read only from one; a
     * store without it keeps groups as the first release did: public,
     * history shared, owned by members[0]. */
    const char *owner;            /* a member; NULL: members[0] */
    const char *creator;          /* NULL: the owner */
    uint32_t flags;               /* IM_STORE_GROUP_* */
    const uint64_t *since;        /* nmembers entries (group_change's seq at each join);
                                   * NULL: 0 for all */
    const char *const *invited;   /* ninvited users, invited and not yet joined */
    size_t ninvited;
} im_group_record;

/* What a group change does (group_change). user is, for CREATE, the owner
 * and creator; JOIN, LEAVE: who joins (using up an invitation) or leaves
 * (or is removed); INVITE, UNINVITE: who is invited, or no more;
 * TRANSFER: the member who becomes the owner; DELETE: NULL. When the owner
 * leaves, the earliest remaining member in join order becomes the owner;
 * the last member leaving deletes the group. DELETE and that last leave
 * take the group's messages with it, so that a group created later under
 * the same id starts empty. */
typedef enum im_group_change_kind {
    IM_GROUP_CHANGE_CREATE = 1,
    IM_GROUP_CHANGE_JOIN = 2,
    IM_GROUP_CHANGE_LEAVE = 3,
    IM_GROUP_CHANGE_INVITE = 4,
    IM_GROUP_CHANGE_UNINVITE = 5,
    IM_GROUP_CHANGE_TRANSFER = 6,
    IM_GROUP_CHANGE_DELETE = 7,
} im_group_change_kind;

/* One group change; strings borrowed for the call (the store copies what
 * it keeps). */
typedef struct im_group_change {
    size_t size;                  /* sizeof(im_group_change) as the server knows it */
    im_group_change_kind kind;
    const char *group;
    const char *user;
    uint32_t max_members;         /* CREATE */
    uint32_t flags;               /* CREATE: IM_STORE_GROUP_* */
} im_group_change;

/* A request's end. rc is 0 or an IM_E* code (err says why). On success m is
 * the stored message with seq and server_time_ms set; duplicate says that
 * (sender, client_msg_id) was stored before for this same message (kind,
 * target and body) and m is that earlier message, with its seq and time.
 * m and its strings are borrowed for the call. */
typedef void (*im_store_append_fn)(void *arg, int rc, const im_message *m, bool duplicate,
                                   const im_error *err);
/* One stored message for a reader; borrowed for the call. Return false to stop. */
typedef bool (*im_store_message_fn)(void *arg, const im_message *m);
/* The end of a read or a barrier; rc as above. */
typedef void (*im_store_done_fn)(void *arg, int rc, const im_error *err);
/* The end of a group change; rc as above. seq: for CREATE and JOIN, the
 * last seq of the group's conversation as user joined, in the order of
 * the store's requests (what was said up to it was said before the join);
 * 0 for the other kinds. */
typedef void (*im_store_group_fn)(void *arg, int rc, uint64_t seq, const im_error *err);
/* One key of a plugin's key-value map for a reader; key and value (len
 * bytes) are borrowed for the call. Return false to stop. */
typedef bool (*im_store_kv_fn)(void *arg, const char *key, const void *value, size_t len);

/* What an account request does (the account operation). Only hashes are
 * ever stored: a password's encoded hash string (libsodium's
 * crypto_pwhash_str) and a token's hash bytes; the store never sees a
 * password or a token itself. */
typedef enum im_account_op {
    /* user, display_name (NULL or "": the id), secret (the password hash),
     * now_ms (created). With token set, also stores that token as in
     * TOKEN_PUT, in the same transaction. IM_EUSEREXISTS: the id is taken
     * (nothing stored). */
    IM_ACCOUNT_CREATE = 1,
    /* user → record (user, display_name, secret). IM_ENOTFOUND. */
    IM_ACCOUNT_GET = 2,
    /* token (hash bytes) for user until expires_ms (wall clock), as the
     * user's newest; then, if keep > 0, only the keep newest tokens of the
     * user are kept. Putting a hash again replaces its user and expiry.
     * IM_ENOTFOUND: no such user. */
    IM_ACCOUNT_TOKEN_PUT = 3,
    /* token, now_ms → record (user, display_name; secret NULL). A token is
     * expired when now_ms >= its expires_ms (and may be deleted then).
     * IM_ENOTFOUND: missing or expired. */
    IM_ACCOUNT_TOKEN_GET = 4,
    /* Deletes token; a missing one is fine. */
    IM_ACCOUNT_TOKEN_DELETE = 5,
    /* Deletes every token of user ("log out everywhere"); record.count: how many. */
    IM_ACCOUNT_TOKENS_DELETE_USER = 6,
    /* Deletes at most keep tokens expired at now_ms, the soonest expired
     * first (bounded work for a sweeper; keep 0 deletes none);
     * record.count: how many (keep: there may be more). */
    IM_ACCOUNT_TOKENS_EXPIRE = 7,
} im_account_op;

/* Longest token hash, in bytes (BLAKE2b's largest output). */
#define IM_STORE_TOKEN_HASH_MAX 64
/* Longest password hash string, in bytes, without its NUL. */
#define IM_STORE_SECRET_MAX 255

/* One account request; every pointer borrowed for the call. */
typedef struct im_account_request {
    size_t size;                  /* sizeof(im_account_request) as the server knows it */
    im_account_op op;
    const char *user;             /* CREATE, GET, TOKEN_PUT, TOKENS_DELETE_USER */
    const char *display_name;     /* CREATE */
    const char *secret;           /* CREATE: the password's hash string */
    const uint8_t *token;         /* CREATE (optional), TOKEN_*: a token's hash */
    size_t token_len;             /* 1..IM_STORE_TOKEN_HASH_MAX */
    uint64_t now_ms;              /* CREATE, TOKEN_GET, TOKENS_EXPIRE */
    uint64_t expires_ms;          /* CREATE with a token, TOKEN_PUT */
    unsigned keep;                /* CREATE with a token, TOKEN_PUT: tokens kept per user
                                   * (0: all); TOKENS_EXPIRE: most deleted */
} im_account_request;

/* What an account request found; borrowed for the call. */
typedef struct im_account_record {
    const char *user;
    const char *display_name;     /* the stored name, never NULL ("" for none) */
    const char *secret;           /* GET only; NULL otherwise */
    uint64_t count;               /* TOKENS_DELETE_USER, TOKENS_EXPIRE */
} im_account_record;

/* The end of an account request: rc 0 with rec (NULL for the requests
 * that return nothing), or an IM_E* code (err says why): IM_EUSEREXISTS,
 * IM_ENOTFOUND, and, as for every write, IM_ENOSPC or IM_EIO. */
typedef void (*im_store_account_fn)(void *arg, int rc, const im_account_record *rec,
                                    const im_error *err);

/* The key-value map's limits, in bytes: a namespace or a key is
 * 1..IM_STORE_KV_KEY_MAX, a value 0..IM_STORE_KV_VALUE_MAX. */
#define IM_STORE_KV_KEY_MAX 200
#define IM_STORE_KV_VALUE_MAX 65536

/* The table a storage adapter fills. It starts with its size and only
 * grows by appending: the server reads only what the adapter's table has.
 * Operations up to destroy are required (a table that ends before one, or
 * leaves one NULL, is refused at start); each one after it may be absent
 * (past the table's size, or NULL), and then the server falls back to what
 * its comment says. */
struct im_store_ops {
    size_t size;                  /* sizeof(struct im_store_ops) as the adapter knows it */
    const char *name;
    /* True if messages outlive the process: offline delivery and history work. */
    bool durable;

    /* Stores a copy of m (its seq and server_time_ms are the store's to set;
     * server_time_ms is kept if non-zero). done runs exactly once if this
     * returns 0, never if it returns an error. Errors: IM_EINVAL, IM_ENOMEM,
     * IM_ESHUTDOWN.
     * A durable store keeps (sender, client_msg_id) for good: the same pair
     * again is answered duplicate (see im_store_append_fn) when it names
     * the same message, and IM_EIDREUSED through done when the message
     * differs in kind, target or body; either way nothing is stored. A
     * store that is not durable keeps no ids and stores every message.
     * Other refusals that come through done, with nothing stored and no
     * seq spent: IM_EUNKNOWNUSER (opened with `receivers: accounts`, see
     * open_storage in plugin.h: a private message to an id with no account
     * that is no service account); and, as for every write, IM_ENOSPC or
     * IM_EIO when the store fails. */
    int (*append)(im_store *s, const im_message *m, im_store_append_fn done, void *arg,
                  im_error *err);

    /* The messages user has not acked (private ones to user, and messages of
     * user's groups sent by others), in conversation then seq order, at most
     * limit; then done. Runs in order with the requests made before it:
     * every message whose append completed before this request is
     * included, and every ack made before it is applied (so a reader that
     * acks what it handled, then asks again, gets what follows). */
    int (*pending)(im_store *s, const char *user, size_t limit, im_store_message_fn each,
                   im_store_done_fn done, void *arg, im_error *err);

    /* user has every message of conversation up to seq. No completion: acks
     * are cumulative, so a lost one costs a re-delivery, never a message.
     * The store may take the ack on over user's own messages right after
     * seq (they are never pending for user); the SQLite store does, so that
     * a bot which answers before it acks leaves nothing for its next
     * pending read to step over. */
    int (*ack)(im_store *s, const char *user, const char *conversation, uint64_t seq,
               im_error *err);

    /* Synchronous read, from any thread: the limit messages of conversation
     * before before_seq (0: the newest), oldest first. Errors: IM_EIO. The
     * server reads with history_read (below) when the table has it, and
     * with this only as the fallback. */
    int (*history)(im_store *s, const char *conversation, uint64_t before_seq, size_t limit,
                   im_store_message_fn each, void *arg, im_error *err);

    /* Runs done after the completions of every request made before it. */
    int (*barrier)(im_store *s, im_store_done_fn done, void *arg, im_error *err);

    /* Finishes what is queued (completions included), then frees s. NULL-safe. */
    void (*destroy)(im_store *s);

    /* ---- optional from here on ---- */

    /* Group membership, durable in a durable store (a memory store completes
     * at once and keeps nothing). done gets IM_ENOSPC or IM_EIO on failure.
     * Absent: the server completes each at once and keeps nothing, as a
     * memory store does (groups then last until the server stops). */
    int (*group_create)(im_store *s, const char *group, const char *owner, uint32_t max_members,
                        im_store_done_fn done, void *arg, im_error *err);
    int (*group_join)(im_store *s, const char *group, const char *user, im_store_done_fn done,
                      void *arg, im_error *err);
    int (*group_leave)(im_store *s, const char *group, const char *user, im_store_done_fn done,
                       void *arg, im_error *err);

    /* At start-up, before any request: hands every stored group to fn, in
     * id order. fn returning non-zero stops, and that value is returned. A
     * memory store has none. Errors: IM_EIO. Absent: there are none. */
    int (*load_groups)(im_store *s, int (*fn)(void *arg, const im_group_record *g), void *arg,
                       im_error *err);

    /* A key-value map per namespace (a plugin's name), for plugins that
     * keep state of their own. Absent (either): plugins' kv_put and kv_each
     * fail with IM_EUNSUPPORTED. */

    /* Sets key of namespace ns to value (len bytes), or deletes it when
     * value is NULL; in order with every other write, and as durable as the
     * store. done may be NULL; otherwise it runs exactly once if this
     * returns 0 (IM_ENOSPC or IM_EIO on failure). Limits: ns and key 1..200
     * bytes, value at most IM_STORE_KV_VALUE_MAX bytes. Strings and value
     * are copied. Errors: IM_EINVAL, IM_ENOMEM, IM_ESHUTDOWN. */
    int (*kv_put)(im_store *s, const char *ns, const char *key, const void *value, size_t len,
                  im_store_done_fn done, void *arg, im_error *err);
    /* Synchronous read, from any thread: every key of ns starting with prefix
     * ("" for all), in key (byte) order, with what has been made durable.
     * Returns how many it visited (the calls of fn), or a negative code
     * (IM_EIO; IM_EINVAL for a bad ns, IM_ENOMEM). fn's arguments are
     * borrowed for the call; return false to stop. fn may make requests
     * (kv_put) but, as for history, no synchronous read of s. */
    int (*kv_each)(im_store *s, const char *ns, const char *prefix, im_store_kv_fn fn,
                   void *arg, im_error *err);


    /* ---- appended in plugin API 2, after kv_each ---- */

    /* A change of a group (see im_group_change_kind), durable in a durable
     * store (a memory store keeps nothing), in order with every other
     * request: a JOIN's seq is the last seq of the messages appended
     * before it. The store may refuse a change its data contradicts
     * (IM_ENOGROUP, IM_EEXIST, IM_EMEMBER, IM_ENOTMEMBER, IM_EFULL; a JOIN
     * of a private group without an invitation: IM_ENOGROUP); who may ask
     * for it is the server's to judge. done runs exactly once if this
     * returns 0, never if it returns an error; it gets IM_ENOSPC or IM_EIO
     * when storage failed. c is borrowed for the call. Errors: IM_EINVAL,
     * IM_ENOMEM, IM_ESHUTDOWN. Absent (a table that ends before it, or
     * NULL): the server uses group_create, group_join and group_leave
     * (CREATE with IM_STORE_GROUP_SHARE_HISTORY, JOIN and LEAVE without
     * the seq); groups are then public with shared history, and the
     * owner's requests (invite, kick, transfer, delete) are answered
     * UNSUPPORTED. */
    int (*group_change)(im_store *s, const im_group_change *c, im_store_group_fn done,
                        void *arg, im_error *err);

    /* ---- appended after group_change: reads that run on the store's
     * thread, bounded by bytes as well as by count ---- */

    /* The history read of a conversation, as a request: the at most limit
     * messages of conversation before before_seq (0: the newest), read
     * newest first and stopping after the message whose body brings the
     * bodies read to max_bytes or more (0: no byte budget), so that no more
     * than max_bytes and one body is ever held, and a reader that gets
     * max_bytes or more knows older messages may have been left; then
     * handed to each oldest first, then done. Runs in order with the requests made
     * before it, like pending: every message whose append was requested
     * before it is read (read-your-writes without waiting for the append's
     * completion), and on the store's thread, never the caller's. each
     * returning false stops the handing out; done runs exactly once if this
     * returns 0, never if it returns an error (IM_EIO through done when the
     * read fails). conversation is copied. Errors: IM_EINVAL, IM_ENOMEM,
     * IM_EBUSY (the store is behind), IM_ESHUTDOWN.
     * Absent: the server reads with history, synchronously on the calling
     * thread, and cuts to max_bytes after the read. */
    int (*history_read)(im_store *s, const char *conversation, uint64_t before_seq,
                        size_t limit, size_t max_bytes, im_store_message_fn each,
                        im_store_done_fn done, void *arg, im_error *err);

    /* pending with a byte budget: as pending, and the read also stops after
     * the message whose body brings the bodies read to max_bytes or more
     * (0: no byte budget), so a page of large messages is not read whole
     * before the reader's budget applies. Absent: the server uses pending,
     * which reads up to limit messages whatever their size. */
    int (*pending_read)(im_store *s, const char *user, size_t limit, size_t max_bytes,
                        im_store_message_fn each, im_store_done_fn done, void *arg,
                        im_error *err);

    /* ---- appended after pending_read: accounts and their login tokens ---- */

    /* One account request (see im_account_request), in order with every
     * other request and, for the writes, as durable as the store: so an
     * account created before a message to it is seen by that message's
     * receiver check (IM_EUNKNOWNUSER), and none created after. Runs on the
     * store's thread; done runs exactly once if this returns 0, never if it
     * returns an error; a store that completes at once calls it inside
     * the call, holding none of its locks (done may make requests). A
     * refusal of the data (IM_EUSEREXISTS, IM_ENOTFOUND) is that request's
     * answer alone: the requests around it are carried out as if it had
     * not been made. q is borrowed for the call (the store copies what it
     * needs). Errors: IM_EINVAL, IM_ENOMEM, IM_EBUSY, IM_ESHUTDOWN.
     * Absent (a table that ends before it, or NULL): the engine keeps no
     * accounts, and `accounts.mode: password` is refused at start with
     * the engine's name. */
    int (*account)(im_store *s, const im_account_request *q, im_store_account_fn done,
                   void *arg, im_error *err);

    /* Operations appended in later versions come here, after account,
     * each with the server's fallback for a table without it. */
};

struct im_store { const struct im_store_ops *ops; };

/* True when s's table (of the size it says) has the operation member, one
 * appended after destroy, and sets it. */
#define IM_STORE_HAS(s, member)                                                    \
    ((s)->ops->size >= offsetof(struct im_store_ops, member) + sizeof((s)->ops->member) && \
     (s)->ops->member != NULL)

static inline void im_store_destroy(im_store *s)
{ if (s) s->ops->destroy(s); }

#ifdef __cplusplus
}
#endif
#endif
