/* infrastructure/store_sqlite/im_sqlite_store.c: the storage thread, its
 * queue and group commit, over the synchronous data layer im_sqlite_db.
 *
 * A batch is one transaction. Logical refusals (a duplicate, a member who
 * is already in, a receiver without an account) are answers to one request
 * and leave the transaction alone; a failure of the database itself (disk full, I/O error) rolls the
 * batch back and every write in it is answered with that error, so nothing
 * is acked that is not on disk. Reads (pending) in a failed batch are run
 * again after the rollback, so they never report a rolled-back message.
 * A database file deleted or replaced while the server runs is found at the
 * next commit (im_sqlite_db_moved): that batch and every write after it are
 * answered IM_EIO, said once at ERROR, since what they would store is lost
 * with the file. A start that creates a new database says so at WARN.
 *
 * The plugins' key-value puts are writes like the others: queued, batched
 * and answered after the commit. Their reads, and the synchronous history
 * (kept for callers of the first table), go to the reader connection, which
 * sees only what has been committed. The server's history reads
 * (history_read) and pending reads are requests like the others: read on
 * this thread in the batch, in order after the writes before them, and
 * read again after a rollback, like pending. Both stop at their byte
 * budget, so a page of large messages is never read whole first.
 *
 * Accounts and their token hashes (the account operation) are requests
 * too: a write (a new account, a token put or deleted, the sweep of
 * expired tokens) runs in the batch's transaction and is answered after
 * the commit, so an account created before a message to it is seen by that
 * message's receiver check; a read (an account, a token's owner) is
 * answered in order, and read again after a rollback. A refusal of the
 * data (the id is taken, no such user or token) is an answer to that
 * request alone and leaves the batch alone. */
#include "im_sqlite_store.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "domain/user.h"
#include "im_log.h"
#include "im_strmap.h"
#include "im_sqlite_db.h"

typedef enum req_kind {
    REQ_APPEND,
    REQ_PENDING,
    REQ_HISTORY,
    REQ_ACK,
    REQ_BARRIER,
    REQ_GROUP_CREATE,
    REQ_GROUP_JOIN,
    REQ_GROUP_LEAVE,
    REQ_GROUP_CHANGE,
    REQ_KV_PUT,
    REQ_ACCOUNT,
} req_kind;

/* An account request's copy of its inputs and room for its answer, kept
 * apart so that the other requests do not carry it. */
typedef struct account_io {
    im_account_op op;
    char user[IM_USER_ID_MAX + 1];
    char name[IM_DISPLAY_NAME_MAX + 1];
    char secret[IM_STORE_SECRET_MAX + 1];
    uint8_t token[IM_STORE_TOKEN_HASH_MAX];
    size_t token_len;               /* 0: none (a CREATE without a token) */
    uint64_t now_ms, expires_ms;
    unsigned keep;
    im_store_account_fn done;
    /* the answer */
    char out_user[IM_USER_ID_MAX + 1];
    char out_name[IM_DISPLAY_NAME_MAX + 1];
    char out_secret[IM_STORE_SECRET_MAX + 1];
    uint64_t count;
} account_io;

/* A stored message read back for a pending request, in one allocation. */
typedef struct owned_msg {
    struct owned_msg *next;
    im_message m;
    char data[]; /* sender, target, client_msg_id, body */
} owned_msg;

typedef struct req {
    struct req *next;
    req_kind kind;
    /* inputs */
    im_message msg;                 /* APPEND: points into buf */
    char user[IM_USER_ID_MAX + 1];  /* PENDING, ACK, GROUP_* */
    char group[IM_USER_ID_MAX + 1]; /* GROUP_* */
    char conv[IM_CONVERSATION_ID_MAX + 1]; /* ACK, HISTORY */
    uint64_t seq;                   /* ACK; HISTORY: before_seq */
    uint32_t max_members;           /* GROUP_CREATE, GROUP_CHANGE */
    im_group_change_kind change;    /* GROUP_CHANGE */
    uint32_t flags;                 /* GROUP_CREATE, GROUP_CHANGE */
    im_store_group_fn group_done;   /* GROUP_CHANGE */
    size_t limit;                   /* PENDING, HISTORY */
    size_t max_bytes;               /* PENDING, HISTORY: the bodies' budget (0: none) */
    size_t bytes;                   /* PENDING, HISTORY: the bodies read so far */
    const char *ns, *key;           /* KV_PUT: point into buf */
    const void *value;              /* KV_PUT: into buf; NULL deletes */
    size_t value_len;               /* KV_PUT */
    im_store_append_fn append_done;
    im_store_message_fn each;
    im_store_done_fn done;
    void *arg;
    /* results */
    int rc;
    bool duplicate;
    uint64_t since;                 /* GROUP_CHANGE: the seq a join came at */
    im_error err;
    owned_msg *first, **tail;       /* PENDING, HISTORY results, in the order handed out */
    account_io *acct;               /* ACCOUNT: owned */
    char buf[];                     /* APPEND: the message's strings and body; KV_PUT: ns,
                                     * key and value */
} req;

typedef struct sqlite_store {
    im_store base;
    im_sqlite_store_config cfg;
    im_sqlite_db *writer;           /* the storage thread's only */
    im_sqlite_db *reader;           /* history, under read_lock */
    pthread_mutex_t read_lock;

    pthread_mutex_t lock;
    pthread_cond_t wake;
    req *head, *tail_req;
    unsigned queued;
    /* Acks queued and not yet taken, by ack_key: a newer ack of the same
     * user and conversation raises the queued one's seq instead of
     * queueing another (acks are cumulative), so a flood of acks costs one
     * write per conversation, not one per ack. */
    im_strmap *acks;
    bool stopping;
    pthread_t thread;
    bool thread_started;
    bool moved_logged;              /* the storage thread's: the file was lost, and said so */
} sqlite_store;

/* ---- requests ---- */

static req *req_new(req_kind kind, size_t extra)
{
    req *r = calloc(1, sizeof *r + extra);
    if (r) {
        r->kind = kind;
        r->tail = &r->first;
    }
    return r;
}

static void free_results(req *r);

static void req_free(req *r)
{
    free_results(r);
    free(r->acct);
    free(r);
}

/* "user\x1fconversation": ids never hold the separator. */
static void ack_key(const req *r, char *key, size_t size)
{
    snprintf(key, size, "%s\x1f%s", r->user, r->conv);
}

#define ACK_KEY_MAX (IM_USER_ID_MAX + 1 + IM_CONVERSATION_ID_MAX + 1)

/* What a full queue refuses: messages, reads, and the account requests a
 * client is waiting for. Deletes of tokens (a logout, the sweep) always
 * go, like acks. */
static bool refusable(const req *r)
{
    if (r->kind == REQ_ACCOUNT)
        return r->acct->op == IM_ACCOUNT_CREATE || r->acct->op == IM_ACCOUNT_GET ||
               r->acct->op == IM_ACCOUNT_TOKEN_PUT || r->acct->op == IM_ACCOUNT_TOKEN_GET;
    return r->kind == REQ_APPEND || r->kind == REQ_PENDING || r->kind == REQ_HISTORY;
}

static int enqueue(sqlite_store *st, req *r, im_error *err)
{
    pthread_mutex_lock(&st->lock);
    if (st->stopping) {
        pthread_mutex_unlock(&st->lock);
        req_free(r);
        return im_error_set(err, IM_ESHUTDOWN, "the store is shutting down");
    }
    /* Barriers and acks are never refused: refusing an unbind or a cursor
     * move would be worse than a longer queue. Nor are key-value puts, whose
     * port promises no IM_EBUSY. */
    if (st->queued >= st->cfg.max_queue && refusable(r)) {
        pthread_mutex_unlock(&st->lock);
        req_free(r);
        return im_error_set(err, IM_EBUSY, "the store is behind (%u requests queued)",
                            st->cfg.max_queue);
    }
    if (r->kind == REQ_ACK) {
        char key[ACK_KEY_MAX];
        ack_key(r, key, sizeof key);
        req *queued = im_strmap_get(st->acks, key);
        if (queued) {
            if (r->seq > queued->seq)
                queued->seq = r->seq;
            pthread_mutex_unlock(&st->lock);
            req_free(r);
            return IM_OK;
        }
        /* Out of memory: queued on its own, as before. */
        (void)im_strmap_put(st->acks, key, r, NULL);
    }
    if (st->tail_req)
        st->tail_req->next = r;
    else
        st->head = r;
    st->tail_req = r;
    st->queued++;
    pthread_cond_signal(&st->wake);
    pthread_mutex_unlock(&st->lock);
    return IM_OK;
}

/* ---- the storage thread ---- */

static bool account_reads(const req *r)
{
    return r->acct->op == IM_ACCOUNT_GET || r->acct->op == IM_ACCOUNT_TOKEN_GET;
}

/* A write is answered with the batch's error when the batch fails; a read
 * is run again after the rollback. */
static bool is_write(const req *r)
{
    req_kind k = r->kind;
    if (k == REQ_ACCOUNT)
        return !account_reads(r);
    return k == REQ_APPEND || k == REQ_ACK || k == REQ_GROUP_CREATE || k == REQ_GROUP_JOIN ||
           k == REQ_GROUP_LEAVE || k == REQ_GROUP_CHANGE || k == REQ_KV_PUT;
}

static bool is_read(const req *r)
{
    return r->kind == REQ_PENDING || r->kind == REQ_HISTORY ||
           (r->kind == REQ_ACCOUNT && account_reads(r));
}

/* Keeps a copy of m for the completion: at the tail for a pending read
 * (read in the order handed out), at the head for history (read newest
 * first, handed out oldest first). Returns 1, which stops the read, once
 * the bodies kept reach the budget. */
static int collect(void *arg, const im_message *m, const char *conversation)
{
    (void)conversation;
    req *r = arg;
    size_t ls = strlen(m->sender) + 1, lt = strlen(m->target) + 1;
    size_t lc = strlen(m->client_msg_id ? m->client_msg_id : "") + 1;
    owned_msg *o = malloc(sizeof *o + ls + lt + lc + m->body_len);
    if (!o)
        return IM_ENOMEM;
    char *p = o->data;
    o->m = *m;
    o->m.sender = memcpy(p, m->sender, ls), p += ls;
    o->m.target = memcpy(p, m->target, lt), p += lt;
    o->m.client_msg_id = memcpy(p, m->client_msg_id ? m->client_msg_id : "", lc), p += lc;
    o->m.body = memcpy(p, m->body, m->body_len);
    if (r->kind == REQ_HISTORY) {
        o->next = r->first;
        r->first = o;
    } else {
        o->next = NULL;
        *r->tail = o;
        r->tail = &o->next;
    }
    r->bytes += m->body_len;
    return r->max_bytes && r->bytes >= r->max_bytes ? 1 : 0;
}

static void free_results(req *r)
{
    owned_msg *o = r->first;
    while (o) {
        owned_msg *next = o->next;
        free(o);
        o = next;
    }
    r->first = NULL;
    r->tail = &r->first;
    r->bytes = 0;
}

/* A read in the batch, on the writer: it sees the writes before it in the
 * batch, and is run again if the batch rolls back. 1 from the reader is
 * the budget reached, not an error. */
static void run_read(sqlite_store *st, req *r)
{
    free_results(r);
    if (r->kind == REQ_HISTORY)
        r->rc = im_sqlite_db_history_newest(st->writer, r->conv, r->seq, r->limit, collect, r,
                                            &r->err);
    else
        r->rc = im_sqlite_db_pending(st->writer, r->user, r->limit, collect, r, &r->err);
    if (r->rc == 1)
        r->rc = IM_OK;
    if (r->rc != IM_OK)
        free_results(r);
}

/* The new token of a CREATE or a TOKEN_PUT, and the user's oldest dropped
 * past keep. */
static int put_token(im_sqlite_db *db, account_io *a, im_error *err)
{
    int rc = im_sqlite_db_token_put(db, a->token, a->token_len, a->user, a->expires_ms, err);
    if (rc == IM_OK && a->keep > 0) {
        int n = im_sqlite_db_tokens_trim(db, a->user, a->keep, err);
        rc = n < 0 ? n : IM_OK;
    }
    return rc;
}

/* One account request in the open transaction (or, for a read run again
 * after a rollback, outside one). A refusal of the data writes nothing, so
 * the transaction goes on. */
static int run_account(im_sqlite_db *db, req *r)
{
    account_io *a = r->acct;
    im_error *err = &r->err;
    int rc, n;
    a->count = 0;
    switch (a->op) {
    case IM_ACCOUNT_CREATE:
        rc = im_sqlite_db_user_create(db, a->user, a->name, a->secret, a->now_ms, err);
        if (rc == IM_EEXIST)
            return im_error_set(err, IM_EUSEREXISTS, "the user id %s is taken", a->user);
        /* The request was checked when it was made: with the user just
         * created, the token can only fail with the database. */
        return rc == IM_OK && a->token_len ? put_token(db, a, err) : rc;
    case IM_ACCOUNT_GET:
        rc = im_sqlite_db_user_get(db, a->user, a->out_name, sizeof a->out_name, a->out_secret,
                                   sizeof a->out_secret, err);
        if (rc == IM_OK)
            memcpy(a->out_user, a->user, sizeof a->user);
        return rc;
    case IM_ACCOUNT_TOKEN_PUT:
        return put_token(db, a, err);
    case IM_ACCOUNT_TOKEN_GET:
        rc = im_sqlite_db_token_get(db, a->token, a->token_len, a->now_ms, a->out_user, err);
        if (rc == IM_OK)
            rc = im_sqlite_db_user_get(db, a->out_user, a->out_name, sizeof a->out_name, NULL, 0,
                                       err);
        return rc;
    case IM_ACCOUNT_TOKEN_DELETE:
        return im_sqlite_db_token_delete(db, a->token, a->token_len, err);
    case IM_ACCOUNT_TOKENS_DELETE_USER:
        n = im_sqlite_db_tokens_delete_user(db, a->user, err);
        break;
    case IM_ACCOUNT_TOKENS_EXPIRE:
        n = im_sqlite_db_tokens_expire(db, a->now_ms, a->keep, err);
        break;
    default:
        return im_error_set(err, IM_EINVAL, "unknown account request %d", (int)a->op);
    }
    if (n < 0)
        return n;
    a->count = (uint64_t)n;
    return IM_OK;
}

static int run_group_change(im_sqlite_db *db, req *r)
{
    uint64_t now = r->msg.server_time_ms;
    switch (r->change) {
    case IM_GROUP_CHANGE_CREATE:
        return im_sqlite_db_group_create_flags(db, r->group, r->user, r->max_members, r->flags,
                                               now, &r->since, &r->err);
    case IM_GROUP_CHANGE_JOIN:
        return im_sqlite_db_group_join(db, r->group, r->user, now, &r->since, &r->err);
    case IM_GROUP_CHANGE_LEAVE:
        return im_sqlite_db_group_remove_member(db, r->group, r->user, &r->err);
    case IM_GROUP_CHANGE_INVITE:
        return im_sqlite_db_group_invite(db, r->group, r->user, now, &r->err);
    case IM_GROUP_CHANGE_UNINVITE:
        return im_sqlite_db_group_uninvite(db, r->group, r->user, &r->err);
    case IM_GROUP_CHANGE_TRANSFER:
        return im_sqlite_db_group_set_owner(db, r->group, r->user, &r->err);
    case IM_GROUP_CHANGE_DELETE:
        return im_sqlite_db_group_delete(db, r->group, &r->err);
    }
    return im_error_set(&r->err, IM_EINVAL, "unknown group change %d", (int)r->change);
}

/* Runs one request inside the open transaction. Returns a fatal code (the
 * batch must roll back) or 0; the request's own answer is in r->rc. */
static int run_one(sqlite_store *st, req *r)
{
    im_sqlite_db *db = st->writer;
    switch (r->kind) {
    case REQ_APPEND:
        r->rc = im_sqlite_db_append(db, &r->msg, &r->duplicate, &r->err);
        break;
    case REQ_ACK:
        r->rc = im_sqlite_db_ack(db, r->user, r->conv, r->seq, &r->err);
        break;
    case REQ_GROUP_CREATE:
        r->rc = im_sqlite_db_group_create_flags(db, r->group, r->user, r->max_members,
                                                r->flags, r->msg.server_time_ms, NULL, &r->err);
        break;
    case REQ_GROUP_CHANGE:
        r->since = 0;
        r->rc = run_group_change(db, r);
        break;
    case REQ_GROUP_JOIN:
        r->rc = im_sqlite_db_group_add_member(db, r->group, r->user, r->msg.server_time_ms,
                                              &r->err);
        break;
    case REQ_GROUP_LEAVE:
        r->rc = im_sqlite_db_group_remove_member(db, r->group, r->user, &r->err);
        break;
    case REQ_KV_PUT:
        r->rc = im_sqlite_db_kv_put(db, r->ns, r->key, r->value, r->value_len, &r->err);
        break;
    case REQ_PENDING:
    case REQ_HISTORY:
        run_read(st, r);
        break;
    case REQ_ACCOUNT:
        r->rc = run_account(db, r);
        break;
    case REQ_BARRIER:
        r->rc = IM_OK;
        break;
    }
    bool failed = r->rc == IM_ENOSPC || r->rc == IM_EIO || r->rc == IM_ENOMEM;
    /* A token read deletes the token it finds expired: when that fails, the
     * transaction is only good for rolling back, as after a failed write. */
    bool writes = is_write(r) ||
                  (r->kind == REQ_ACCOUNT && r->acct->op == IM_ACCOUNT_TOKEN_GET);
    return writes && failed ? r->rc : 0;
}

static void complete_account(req *r)
{
    account_io *a = r->acct;
    if (r->rc != IM_OK) {
        a->done(r->arg, r->rc, NULL, &r->err);
        return;
    }
    im_account_record rec = { .user = a->out_user, .display_name = a->out_name };
    switch (a->op) {
    case IM_ACCOUNT_GET:
        rec.secret = a->out_secret;
        break;
    case IM_ACCOUNT_TOKEN_GET:
        break;
    case IM_ACCOUNT_TOKENS_DELETE_USER:
    case IM_ACCOUNT_TOKENS_EXPIRE:
        rec.user = a->op == IM_ACCOUNT_TOKENS_DELETE_USER ? a->user : "";
        rec.count = a->count;
        break;
    default: /* CREATE, TOKEN_PUT, TOKEN_DELETE: nothing to return */
        a->done(r->arg, IM_OK, NULL, NULL);
        return;
    }
    a->done(r->arg, IM_OK, &rec, NULL);
}

static void complete(req *r)
{
    switch (r->kind) {
    case REQ_APPEND:
        r->append_done(r->arg, r->rc, r->rc == IM_OK ? &r->msg : NULL, r->duplicate, &r->err);
        break;
    case REQ_PENDING:
    case REQ_HISTORY:
        if (r->rc == IM_OK)
            for (owned_msg *o = r->first; o; o = o->next)
                if (!r->each(r->arg, &o->m))
                    break;
        r->done(r->arg, r->rc, &r->err);
        break;
    case REQ_ACK:
        break;
    case REQ_ACCOUNT:
        complete_account(r);
        break;
    case REQ_GROUP_CHANGE:
        r->group_done(r->arg, r->rc, r->rc == IM_OK ? r->since : 0, &r->err);
        break;
    case REQ_KV_PUT:
        if (!r->done)
            break;
        /* The port promises IM_ENOSPC or IM_EIO: a batch that ran out of
         * memory is, to a plugin, storage that failed. */
        if (r->rc != IM_OK && r->rc != IM_ENOSPC) {
            r->rc = IM_EIO;
            r->err.code = IM_EIO;
        }
        r->done(r->arg, r->rc, &r->err);
        break;
    default:
        r->done(r->arg, r->rc, &r->err);
        break;
    }
}

static void run_batch(sqlite_store *st, req *batch)
{
    im_error err = { 0 };
    int fatal = im_sqlite_db_begin(st->writer, &err);
    for (req *r = batch; r && !fatal; r = r->next)
        fatal = run_one(st, r);
    if (!fatal)
        fatal = im_sqlite_db_commit(st->writer, &err);
    else
        im_sqlite_db_rollback(st->writer);
    if (fatal) {
        unsigned n = 0;
        for (req *r = batch; r; r = r->next)
            n++;
        /* The request that failed says best why (a commit failure already did). */
        for (req *r = batch; r && !err.msg[0]; r = r->next)
            if (r->rc == fatal && r->err.msg[0])
                err = r->err;
        if (!im_sqlite_db_moved(st->writer))
            IM_WARN("storage: a batch of %u requests failed and was rolled back: %s", n,
                    err.msg[0] ? err.msg : im_strerror(fatal));
        else if (!st->moved_logged) {
            /* Once, loudly: every later write is refused the same way, and
             * only the operator can put the file back. */
            st->moved_logged = true;
            IM_ERROR("storage: %s; every write is refused from now on", err.msg);
        }
        for (req *r = batch; r; r = r->next) {
            if (is_write(r)) {
                r->rc = fatal;
                r->err = err;
                r->err.code = fatal;
            } else if (r->kind == REQ_ACCOUNT) {
                r->err = (im_error){ 0 };
                r->rc = run_account(st->writer, r); /* read again, as below */
            } else if (is_read(r)) {
                run_read(st, r); /* read again: the rolled-back rows are gone */
            }
        }
    }
    for (req *r = batch; r;) {
        req *next = r->next;
        complete(r);
        req_free(r);
        r = next;
    }
}

static void *storage_main(void *arg)
{
    sqlite_store *st = arg;
    for (;;) {
        pthread_mutex_lock(&st->lock);
        while (!st->head && !st->stopping)
            pthread_cond_wait(&st->wake, &st->lock);
        if (!st->head) {
            pthread_mutex_unlock(&st->lock);
            break;
        }
        /* Take up to max_batch: everything that queued while the last
         * batch was on disk shares the next fsync. */
        req *batch = st->head, *last = batch;
        unsigned n = 1;
        while (last->next && n < st->cfg.max_batch)
            last = last->next, n++;
        st->head = last->next;
        if (!st->head)
            st->tail_req = NULL;
        last->next = NULL;
        st->queued -= n;
        for (req *r = batch; r; r = r->next) {
            if (r->kind == REQ_ACK) {
                char key[ACK_KEY_MAX];
                ack_key(r, key, sizeof key);
                if (im_strmap_get(st->acks, key) == r)
                    im_strmap_remove(st->acks, key);
            }
        }
        pthread_mutex_unlock(&st->lock);
        run_batch(st, batch);
    }
    return NULL;
}

/* ---- the port ---- */

static int sqlite_append(im_store *s, const im_message *m, im_store_append_fn done, void *arg,
                         im_error *err)
{
    sqlite_store *st = (sqlite_store *)s;
    const char *cmid = m->client_msg_id ? m->client_msg_id : "";
    size_t ls = strlen(m->sender) + 1, lt = strlen(m->target) + 1, lc = strlen(cmid) + 1;
    req *r = req_new(REQ_APPEND, ls + lt + lc + m->body_len);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    char *p = r->buf;
    r->msg = *m;
    r->msg.sender = memcpy(p, m->sender, ls), p += ls;
    r->msg.target = memcpy(p, m->target, lt), p += lt;
    r->msg.client_msg_id = memcpy(p, cmid, lc), p += lc;
    r->msg.body = memcpy(p, m->body, m->body_len);
    r->append_done = done;
    r->arg = arg;
    return enqueue(st, r, err);
}

static int sqlite_pending_read(im_store *s, const char *user, size_t limit, size_t max_bytes,
                               im_store_message_fn each, im_store_done_fn done, void *arg,
                               im_error *err)
{
    req *r = req_new(REQ_PENDING, 0);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    snprintf(r->user, sizeof r->user, "%s", user);
    r->limit = limit;
    r->max_bytes = max_bytes;
    r->each = each;
    r->done = done;
    r->arg = arg;
    return enqueue((sqlite_store *)s, r, err);
}

static int sqlite_pending(im_store *s, const char *user, size_t limit, im_store_message_fn each,
                          im_store_done_fn done, void *arg, im_error *err)
{
    return sqlite_pending_read(s, user, limit, 0, each, done, arg, err);
}

static int sqlite_history_read(im_store *s, const char *conversation, uint64_t before_seq,
                               size_t limit, size_t max_bytes, im_store_message_fn each,
                               im_store_done_fn done, void *arg, im_error *err)
{
    if (!conversation || strlen(conversation) > IM_CONVERSATION_ID_MAX)
        return im_error_set(err, IM_EINVAL, "no conversation, or one too long");
    req *r = req_new(REQ_HISTORY, 0);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    snprintf(r->conv, sizeof r->conv, "%s", conversation);
    r->seq = before_seq;
    r->limit = limit;
    r->max_bytes = max_bytes;
    r->each = each;
    r->done = done;
    r->arg = arg;
    return enqueue((sqlite_store *)s, r, err);
}

static int sqlite_ack(im_store *s, const char *user, const char *conversation, uint64_t seq,
                      im_error *err)
{
    if (strlen(conversation) > IM_CONVERSATION_ID_MAX)
        return im_error_set(err, IM_EINVAL, "conversation id too long");
    sqlite_store *st = (sqlite_store *)s;
    /* An ack already waiting for this conversation takes the seq: no new
     * request (enqueue checks again, for one queued meanwhile). */
    char key[ACK_KEY_MAX];
    snprintf(key, sizeof key, "%s\x1f%s", user, conversation);
    pthread_mutex_lock(&st->lock);
    req *queued = im_strmap_get(st->acks, key);
    if (queued && seq > queued->seq)
        queued->seq = seq;
    pthread_mutex_unlock(&st->lock);
    if (queued)
        return IM_OK;
    req *r = req_new(REQ_ACK, 0);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    snprintf(r->user, sizeof r->user, "%s", user);
    snprintf(r->conv, sizeof r->conv, "%s", conversation);
    r->seq = seq;
    return enqueue(st, r, err);
}

static int sqlite_history(im_store *s, const char *conversation, uint64_t before_seq,
                          size_t limit, im_store_message_fn each, void *arg, im_error *err);

static int sqlite_barrier(im_store *s, im_store_done_fn done, void *arg, im_error *err)
{
    req *r = req_new(REQ_BARRIER, 0);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    r->done = done;
    r->arg = arg;
    return enqueue((sqlite_store *)s, r, err);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int membership(sqlite_store *st, req_kind kind, const char *group, const char *user,
                      uint32_t max_members, im_store_done_fn done, void *arg, im_error *err)
{
    req *r = req_new(kind, 0);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    snprintf(r->group, sizeof r->group, "%s", group);
    snprintf(r->user, sizeof r->user, "%s", user);
    r->max_members = max_members;
    r->flags = IM_STORE_GROUP_SHARE_HISTORY;
    r->msg.server_time_ms = wall_ms();
    r->done = done;
    r->arg = arg;
    return enqueue(st, r, err);
}

/* The first release's create: a public group whose history is shared, as
 * groups were then. */
static int sqlite_group_create(im_store *s, const char *group, const char *owner,
                               uint32_t max_members, im_store_done_fn done, void *arg,
                               im_error *err)
{
    return membership((sqlite_store *)s, REQ_GROUP_CREATE, group, owner, max_members, done, arg,
                      err);
}

static int sqlite_group_change(im_store *s, const im_group_change *c, im_store_group_fn done,
                               void *arg, im_error *err)
{
    if (!c || c->size < offsetof(im_group_change, flags) + sizeof c->flags || !c->group ||
        (c->kind != IM_GROUP_CHANGE_DELETE && !c->user) || c->kind < IM_GROUP_CHANGE_CREATE ||
        c->kind > IM_GROUP_CHANGE_DELETE)
        return im_error_set(err, IM_EINVAL, "a malformed group change");
    req *r = req_new(REQ_GROUP_CHANGE, 0);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    snprintf(r->group, sizeof r->group, "%s", c->group);
    snprintf(r->user, sizeof r->user, "%s", c->user ? c->user : "");
    r->change = c->kind;
    r->max_members = c->max_members;
    r->flags = c->flags;
    r->msg.server_time_ms = wall_ms();
    r->group_done = done;
    r->arg = arg;
    return enqueue((sqlite_store *)s, r, err);
}

static int sqlite_group_join(im_store *s, const char *group, const char *user,
                             im_store_done_fn done, void *arg, im_error *err)
{
    return membership((sqlite_store *)s, REQ_GROUP_JOIN, group, user, 0, done, arg, err);
}

static int sqlite_group_leave(im_store *s, const char *group, const char *user,
                              im_store_done_fn done, void *arg, im_error *err)
{
    return membership((sqlite_store *)s, REQ_GROUP_LEAVE, group, user, 0, done, arg, err);
}

struct group_export {
    int (*fn)(void *arg, const im_group_record *g);
    void *arg;
};

_Static_assert(IM_STORE_GROUP_PRIVATE == IM_GROUP_PRIVATE &&
                   IM_STORE_GROUP_SHARE_HISTORY == IM_GROUP_SHARE_HISTORY,
               "the port's group flags are the domain's");

/* The data layer rebuilds groups with the domain's rules; the port hands
 * out plain records, so each is turned into one and freed. */
static int export_group(void *arg, im_group *g)
{
    struct group_export *ex = arg;
    size_t n = im_group_member_count(g), ni = im_group_invited_count(g);
    const char **members = malloc((n + ni + 1) * sizeof *members);
    uint64_t *since = malloc((n ? n : 1) * sizeof *since);
    int rc = IM_ENOMEM;
    if (members && since) {
        for (size_t i = 0; i < n; i++) {
            members[i] = im_group_member(g, i);
            since[i] = im_group_member_since_at(g, i);
        }
        for (size_t i = 0; i < ni; i++)
            members[n + i] = im_group_invited(g, i);
        im_group_record r = { .id = im_group_id(g), .max_members = im_group_max_members(g),
                              .members = members, .nmembers = n,
                              .owner = im_group_owner(g), .creator = im_group_creator(g),
                              .flags = im_group_flags(g), .since = since,
                              .invited = members + n, .ninvited = ni };
        rc = ex->fn(ex->arg, &r);
    }
    free(members);
    free(since);
    im_group_free(g);
    return rc;
}

static int sqlite_load_groups(im_store *s, int (*fn)(void *arg, const im_group_record *g),
                              void *arg, im_error *err)
{
    sqlite_store *st = (sqlite_store *)s;
    struct group_export ex = { fn, arg };
    pthread_mutex_lock(&st->read_lock);
    int rc = im_sqlite_db_groups_load(st->reader, export_group, &ex, err);
    pthread_mutex_unlock(&st->read_lock);
    return rc;
}

/* Checked here as well as in the data layer, so that a bad request is
 * refused by the call instead of answered later. */
_Static_assert(IM_SQLITE_KV_KEY_MAX == IM_STORE_KV_KEY_MAX &&
                   IM_SQLITE_KV_VALUE_MAX == IM_STORE_KV_VALUE_MAX,
               "the data layer keeps the port's limits");

static int sqlite_kv_put(im_store *s, const char *ns, const char *key, const void *value,
                         size_t len, im_store_done_fn done, void *arg, im_error *err)
{
    int rc = im_store_kv_check(ns, key, value, len, err);
    if (rc != IM_OK)
        return rc;
    if (!value)
        len = 0;
    size_t ln = strlen(ns) + 1, lk = strlen(key) + 1;
    req *r = req_new(REQ_KV_PUT, ln + lk + len);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    char *p = r->buf;
    r->ns = memcpy(p, ns, ln), p += ln;
    r->key = memcpy(p, key, lk), p += lk;
    /* p is a valid pointer even for an empty value, which stays a value. */
    r->value = value ? memcpy(p, value, len) : NULL;
    r->value_len = len;
    r->done = done;
    r->arg = arg;
    return enqueue((sqlite_store *)s, r, err);
}

static int sqlite_kv_each(im_store *s, const char *ns, const char *prefix, im_store_kv_fn fn,
                          void *arg, im_error *err)
{
    sqlite_store *st = (sqlite_store *)s;
    pthread_mutex_lock(&st->read_lock);
    int rc = im_sqlite_db_kv_each(st->reader, ns, prefix, fn, arg, err);
    pthread_mutex_unlock(&st->read_lock);
    return rc;
}

struct history_call { im_store_message_fn each; void *arg; };

static int history_one(void *arg, const im_message *m, const char *conversation)
{
    (void)conversation;
    struct history_call *hc = arg;
    return hc->each(hc->arg, m) ? 0 : 1;
}

static int sqlite_history(im_store *s, const char *conversation, uint64_t before_seq,
                          size_t limit, im_store_message_fn each, void *arg, im_error *err)
{
    sqlite_store *st = (sqlite_store *)s;
    struct history_call hc = { .each = each, .arg = arg };
    pthread_mutex_lock(&st->read_lock);
    int rc = im_sqlite_db_history(st->reader, conversation, before_seq, limit, history_one, &hc,
                                  err);
    pthread_mutex_unlock(&st->read_lock);
    return rc == 1 ? IM_OK : rc; /* 1: the reader stopped early */
}

static int sqlite_account(im_store *s, const im_account_request *q, im_store_account_fn done,
                          void *arg, im_error *err)
{
    int rc = im_store_account_check(q, err);
    if (rc != IM_OK)
        return rc;
    if (!done)
        return im_error_set(err, IM_EINVAL, "an account request without a completion");
    req *r = req_new(REQ_ACCOUNT, 0);
    account_io *a = r ? calloc(1, sizeof *a) : NULL;
    if (!a) {
        free(r);
        return im_error_set(err, IM_ENOMEM, "out of memory");
    }
    r->acct = a;
    a->op = q->op;
    snprintf(a->user, sizeof a->user, "%s", q->user ? q->user : "");
    snprintf(a->name, sizeof a->name, "%s", q->display_name ? q->display_name : "");
    snprintf(a->secret, sizeof a->secret, "%s", q->secret ? q->secret : "");
    if (q->token) {
        memcpy(a->token, q->token, q->token_len);
        a->token_len = q->token_len;
    }
    a->now_ms = q->now_ms;
    a->expires_ms = q->expires_ms;
    a->keep = q->keep;
    a->done = done;
    r->arg = arg;
    return enqueue((sqlite_store *)s, r, err);
}

static void sqlite_destroy(im_store *s)
{
    sqlite_store *st = (sqlite_store *)s;
    if (!st)
        return;
    if (st->thread_started) {
        pthread_mutex_lock(&st->lock);
        st->stopping = true;
        pthread_cond_signal(&st->wake);
        pthread_mutex_unlock(&st->lock);
        pthread_join(st->thread, NULL); /* it drains the queue first */
    }
    im_sqlite_db_close(st->reader);
    im_sqlite_db_close(st->writer);
    im_strmap_free(st->acks);
    pthread_mutex_destroy(&st->lock);
    pthread_mutex_destroy(&st->read_lock);
    pthread_cond_destroy(&st->wake);
    free(st);
}

static const struct im_store_ops sqlite_store_ops = {
    .size = sizeof(struct im_store_ops),
    .name = "sqlite",
    .durable = true,
    .append = sqlite_append,
    .pending = sqlite_pending,
    .ack = sqlite_ack,
    .history = sqlite_history,
    .barrier = sqlite_barrier,
    .group_create = sqlite_group_create,
    .group_join = sqlite_group_join,
    .group_leave = sqlite_group_leave,
    .load_groups = sqlite_load_groups,
    .kv_put = sqlite_kv_put,
    .kv_each = sqlite_kv_each,
    .destroy = sqlite_destroy,
    .group_change = sqlite_group_change,
    .history_read = sqlite_history_read,
    .pending_read = sqlite_pending_read,
    .account = sqlite_account,
};

int im_sqlite_store_new(const im_sqlite_store_config *cfg, im_store **out, im_error *err)
{
    *out = NULL;
    sqlite_store *st = calloc(1, sizeof *st);
    if (!st)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    st->base.ops = &sqlite_store_ops;
    st->cfg = *cfg;
    st->cfg.path = NULL; /* borrowed for the call only */
    if (st->cfg.max_batch == 0)
        st->cfg.max_batch = 1;
    if (st->cfg.max_queue == 0)
        st->cfg.max_queue = 100000;
    pthread_mutex_init(&st->lock, NULL);
    pthread_mutex_init(&st->read_lock, NULL);
    pthread_cond_init(&st->wake, NULL);
    im_sqlite_options o = { .path = cfg->path, .max_page_count = cfg->max_page_count,
                            .synchronous_full = cfg->synchronous_full,
                            .skip_check = cfg->skip_check,
                            .receivers_need_account = cfg->receivers_need_account,
                            .is_service_account = cfg->is_service_account,
                            .service_arg = cfg->service_arg };
    st->acks = im_strmap_new();
    int rc = st->acks ? im_sqlite_db_open(&o, &st->writer, err)
                      : im_error_set(err, IM_ENOMEM, "out of memory");
    o.skip_check = true; /* the writer has just checked the file */
    o.receivers_need_account = false; /* the reader stores nothing */
    if (rc == IM_OK)
        rc = im_sqlite_db_open(&o, &st->reader, err);
    /* A first start, or a database that is no longer where it was: only the
     * operator knows which, so say it where they look. */
    if (rc == IM_OK && im_sqlite_db_is_new(st->writer))
        IM_WARN("storage: %s held no database: started a new, empty one (if this server"
                " has run here before, its messages and accounts are not in this file)",
                cfg->path);
    if (rc == IM_OK && pthread_create(&st->thread, NULL, storage_main, st) != 0)
        rc = im_error_set(err, IM_EIO, "cannot start the storage thread");
    if (rc != IM_OK) {
        sqlite_destroy(&st->base);
        return rc;
    }
    st->thread_started = true;
    *out = &st->base;
    return IM_OK;
}
