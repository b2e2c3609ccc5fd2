/* infrastructure/store_postgres/im_pg_store.c: the storage thread, its
 * queue and group commit over PostgreSQL, in pipeline mode.
 *
 * A batch is one transaction sent as one pipeline: BEGIN, one prepared
 * statement per request (the per-message work is in the server-side
 * functions of im_pg_schema.c, which answer logical refusals with a status
 * instead of an error), COMMIT, then a sync: one round trip. The answers
 * are read in the order sent and kept in the requests; the completions run
 * in request order once COMMIT has succeeded.
 *
 * When the batch fails:
 * - a deadlock or serialization failure between two servers (40P01,
 *   40001) rolls it back and runs it again, a few times;
 * - any other failure of the database answers every write with its error
 *   (IM_ENOSPC for a full disk, IM_EIO otherwise) and runs the reads again
 *   on their own, so they never report a rolled-back row;
 * - a lost connection (a closed socket, or no answer within io_timeout_ms)
 *   answers every write with IM_EIO, whether or not the COMMIT reached the
 *   server: a client resends, and the stored (sender, client_msg_id) makes
 *   the resend a duplicate. The reads run again if the connection comes
 *   back at once, and are answered IM_EIO otherwise.
 * While the server is away, every request taken is answered IM_EIO (barriers
 * still complete in order), and the thread reconnects by itself with
 * exponential backoff and jitter, saying once that it lost the server and
 * once that it is back.
 *
 * The connection is non-blocking: the whole batch is buffered and flushed
 * while the answers are read as they come, so a large batch cannot stall
 * with both sides writing. */
#include "im_pg_store.h"

#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "domain/group.h"
#include "domain/message.h"
#include "domain/user.h"
#include "im_log.h"
#include "im_pg_schema.h"
#include "im_strmap.h"

/* A deadlock or serialization failure is run again this many times. */
#define MAX_RETRIES 4
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 10000u
/* PostgreSQL's bytea holds up to 1 GB. */
#define MAX_BODY (1000u * 1000u * 1000u)

typedef enum req_kind {
    REQ_APPEND,
    REQ_PENDING,
    REQ_HISTORY,
    REQ_ACK,
    REQ_BARRIER,
    REQ_GROUP,
    REQ_KV_PUT,
    REQ_ACCOUNT,
} req_kind;

typedef struct owned_msg {
    struct owned_msg *next;
    im_message m;
    char data[]; /* sender, target, client_msg_id, body */
} owned_msg;

typedef struct req {
    struct req *next;
    req_kind kind;
    bool sent;                      /* in the pipeline being read */
    im_message msg;                 /* APPEND: points into buf */
    char conv[IM_CONVERSATION_ID_MAX + 1]; /* APPEND, ACK, HISTORY */
    char user[IM_USER_ID_MAX + 1];  /* PENDING, ACK, GROUP, ACCOUNT */
    char group[IM_USER_ID_MAX + 1]; /* GROUP */
    uint64_t seq;                   /* ACK; HISTORY: before_seq */
    bool group_conv;                /* ACK: a group's conversation */
    bool need_account;              /* APPEND: the receiver must have an account */
    im_group_change_kind change;    /* GROUP */
    uint32_t max_members, flags;    /* GROUP */
    uint64_t now_ms;                /* GROUP, ACCOUNT */
    size_t limit, max_bytes;        /* PENDING, HISTORY */
    const char *ns, *key;           /* KV_PUT: into buf */
    const void *value;              /* KV_PUT: into buf; NULL deletes */
    size_t value_len;
    /* ACCOUNT */
    im_account_op op;
    char name[IM_DISPLAY_NAME_MAX + 1];
    char secret[IM_STORE_SECRET_MAX + 1];
    uint8_t token[IM_STORE_TOKEN_HASH_MAX];
    size_t token_len;
    uint64_t expires_ms;
    unsigned keep;
    /* callbacks */
    im_store_append_fn append_done;
    im_store_message_fn each;
    im_store_done_fn done;
    im_store_group_fn group_done;   /* GROUP through group_change; else done */
    im_store_account_fn account_done;
    void *arg;
    /* results */
    int rc;
    bool duplicate;
    uint64_t since;
    im_error err;
    owned_msg *first, **tail;
    bool has_rec;
    char r_user[IM_USER_ID_MAX + 1];
    char r_name[IM_DISPLAY_NAME_MAX + 1];
    char r_secret[IM_STORE_SECRET_MAX + 1];
    bool r_has_secret;
    uint64_t r_count;
    char buf[];
} req;

typedef struct pg_store {
    im_store base;
    im_pg_store_config cfg;
    char *conninfo, *password;      /* the store's copies */
    char desc[256];                 /* the server, without the password */

    PGconn *conn;                   /* the storage thread's only */
    bool connected;                 /* the storage thread's */
    atomic_bool away;               /* connected's negation, for the readers: a synchronous
                                     * read fails at once instead of waiting to connect */
    uint64_t next_attempt_ms, lost_at_ms;
    unsigned backoff_ms;
    unsigned rng;

    PGconn *reader;                 /* history, kv_each, load_groups: under read_lock */
    pthread_mutex_t read_lock;

    pthread_mutex_t lock;
    pthread_cond_t wake;
    req *head, *tail_req;
    unsigned queued;
    im_strmap *acks;                /* queued acks by user and conversation, as SQLite's */
    bool stopping;
    pthread_t thread;
    bool thread_started;
} pg_store;

/* ---- clock ---- */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

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
}

static void req_free(req *r)
{
    free_results(r);
    free(r);
}

static bool is_write(req_kind k)
{
    return k == REQ_APPEND || k == REQ_ACK || k == REQ_GROUP || k == REQ_KV_PUT ||
           k == REQ_ACCOUNT;
}

static bool is_read(req_kind k)
{
    return k == REQ_PENDING || k == REQ_HISTORY;
}

#define ACK_KEY_MAX (IM_USER_ID_MAX + 1 + IM_CONVERSATION_ID_MAX + 1)

static void ack_key(const char *user, const char *conv, char *key, size_t size)
{
    snprintf(key, size, "%s\x1f%s", user, conv);
}

static int enqueue(pg_store *st, req *r, im_error *err)
{
    pthread_mutex_lock(&st->lock);
    if (st->stopping) {
        pthread_mutex_unlock(&st->lock);
        req_free(r);
        return im_error_set(err, IM_ESHUTDOWN, "the store is shutting down");
    }
    /* As SQLite's: barriers, acks, group changes and key-value puts are
     * never refused (their ports promise no IM_EBUSY). */
    if (st->queued >= st->cfg.max_queue &&
        (r->kind == REQ_APPEND || is_read(r->kind) || r->kind == REQ_ACCOUNT)) {
        pthread_mutex_unlock(&st->lock);
        req_free(r);
        return im_error_set(err, IM_EBUSY, "the store is behind (%u requests queued)",
                            st->cfg.max_queue);
    }
    if (r->kind == REQ_ACK) {
        char key[ACK_KEY_MAX];
        ack_key(r->user, r->conv, key, sizeof key);
        req *queued = im_strmap_get(st->acks, key);
        if (queued) {
            if (r->seq > queued->seq)
                queued->seq = r->seq;
            pthread_mutex_unlock(&st->lock);
            req_free(r);
            return IM_OK;
        }
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

/* ---- connections ---- */

static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* The first line of libpq's message for conn (or res), for an im_error. */
static void pq_message(PGconn *conn, const PGresult *res, char *buf, size_t size)
{
    const char *m = res ? PQresultErrorMessage(res) : NULL;
    if (!m || !m[0])
        m = conn ? PQerrorMessage(conn) : "out of memory";
    snprintf(buf, size, "%s", m && m[0] ? m : "unknown error");
    buf[strcspn(buf, "\n")] = '\0';
}

static int exec_simple(PGconn *c, const char *sql, im_error *err, const char *desc)
{
    PGresult *res = PQexec(c, sql);
    int rc = IM_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[160];
        pq_message(c, res, msg, sizeof msg);
        rc = im_error_set(err, IM_EIO, "postgres %s: %s: %s", desc, sql, msg);
    }
    PQclear(res);
    return rc;
}

/* A new connection with the session settings every connection of the store
 * has: durable commits, the statement timeout. */
static PGconn *connect_db(pg_store *st, im_error *err)
{
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%u", st->cfg.connect_timeout_s);
    const char *keys[6], *vals[6];
    int n = 0;
    keys[n] = "dbname", vals[n++] = st->conninfo;
    keys[n] = "connect_timeout", vals[n++] = timeout;
    keys[n] = "fallback_application_name", vals[n++] = "imcore";
    if (st->password)
        keys[n] = "password", vals[n++] = st->password;
    keys[n] = NULL, vals[n] = NULL;
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c) {
        im_error_set(err, IM_ENOMEM, "out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[160];
        pq_message(c, NULL, msg, sizeof msg);
        im_error_set(err, IM_EIO, "postgres %s: cannot connect: %s", st->desc, msg);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    char sql[96];
    snprintf(sql, sizeof sql, "SET statement_timeout = %u", st->cfg.statement_timeout_ms);
    if (exec_simple(c, "SET synchronous_commit = on", err, st->desc) != IM_OK ||
        exec_simple(c, sql, err, st->desc) != IM_OK ||
        exec_simple(c, "SET client_encoding = 'UTF8'", err, st->desc) != IM_OK) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* ---- the writer's statements ---- */

enum stmt_id { S_BEGIN, S_COMMIT, S_ROLLBACK, S_APPEND, S_ACK, S_GROUP, S_KV_PUT, S_KV_DELETE,
               S_ACCOUNT, S_PENDING, S_HISTORY, S_LOCK, S_COUNT };

static const char *const stmt_name[S_COUNT] = {
    "im_begin", "im_commit", "im_rollback", "im_append", "im_ack", "im_group", "im_kv_put",
    "im_kv_delete", "im_account", "im_pending", "im_history", "im_lock",
};

#define MSG_COLUMNS "conv, seq, kind, sender, target, client_msg_id, server_time_ms, body"

/* The reads stop after the message whose body brings the bodies read to
 * the budget ($3, 0: none): the window sums the bodies before each row
 * (octet_length reads a stored value's length without its bytes). */
static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN",
    /* The batch's conversations locked first, in id order (imcore_lock):
     * two servers' batches then take them in one order and cannot
     * deadlock on them. */
    [S_LOCK] = "SELECT imcore_lock($1::text[])",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_APPEND] = "SELECT o_status, o_seq, o_time FROM imcore_append($1::text, $2::smallint,"
                 " $3::text, $4::text, $5::bytea, $6::bigint, $7::bytea, $8::boolean)",
    [S_ACK] = "SELECT imcore_ack($1::text, $2::text, $3::bigint, $4::boolean)",
    [S_GROUP] = "SELECT o_status, o_since FROM imcore_group_change($1::integer, $2::text,"
                " $3::text, $4::integer, $5::integer, $6::bigint)",
    [S_KV_PUT] = "INSERT INTO kv (ns, key, value) VALUES ($1::bytea, $2::bytea, $3::bytea)"
                 " ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
    [S_KV_DELETE] = "DELETE FROM kv WHERE ns = $1::bytea AND key = $2::bytea",
    [S_ACCOUNT] = "SELECT o_status, o_user, o_name, o_secret, o_count FROM imcore_account("
                  "$1::integer, $2::text, $3::text, $4::text, $5::bytea, $6::bigint,"
                  " $7::bigint, $8::bigint)",
    [S_PENDING] = "SELECT " MSG_COLUMNS " FROM (SELECT q.*, coalesce(sum(octet_length(q.body))"
                  " OVER (ORDER BY q.conv, q.seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),"
                  " 0) AS before FROM (SELECT m.conv, m.seq, m.kind, m.sender, m.target,"
                  " m.client_msg_id, m.server_time_ms, m.body FROM cursors c JOIN messages m"
                  " ON m.conv = c.conv AND m.seq > c.seq WHERE c.user_id = $1::text"
                  " AND ((m.kind = 1 AND m.target = $1::text) OR (m.kind = 2 AND m.sender <> $1::text))"
                  " ORDER BY c.conv, m.seq LIMIT $2::bigint) q) r"
                  " WHERE $3::bigint = 0 OR r.before < $3::bigint ORDER BY conv, seq",
    [S_HISTORY] = "SELECT " MSG_COLUMNS " FROM (SELECT q.*, coalesce(sum(octet_length(q.body))"
                  " OVER (ORDER BY q.seq DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),"
                  " 0) AS before FROM (SELECT " MSG_COLUMNS " FROM messages WHERE conv = $1::text"
                  " AND seq < $2::bigint ORDER BY seq DESC LIMIT $3::bigint) q) r"
                  " WHERE $4::bigint = 0 OR r.before < $4::bigint ORDER BY seq DESC",
};

static int prepare_all(pg_store *st, PGconn *c, im_error *err)
{
    for (int i = 0; i < S_COUNT; i++) {
        PGresult *res = PQprepare(c, stmt_name[i], stmt_sql[i], 0, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            char msg[160];
            pq_message(c, res, msg, sizeof msg);
            PQclear(res);
            return im_error_set(err, IM_EIO, "postgres %s: preparing %s: %s", st->desc,
                                stmt_name[i], msg);
        }
        PQclear(res);
    }
    return IM_OK;
}

/* The writer: connected, prepared, non-blocking, in pipeline mode. */
static int writer_open(pg_store *st, im_error *err)
{
    PGconn *c = connect_db(st, err);
    if (!c)
        return err && err->code ? err->code : IM_EIO;
    int rc = prepare_all(st, c, err);
    if (rc == IM_OK && (PQsetnonblocking(c, 1) != 0 || PQenterPipelineMode(c) != 1))
        rc = im_error_set(err, IM_EIO, "postgres %s: cannot enter pipeline mode", st->desc);
    if (rc != IM_OK) {
        PQfinish(c);
        return rc;
    }
    st->conn = c;
    st->connected = true;
    atomic_store(&st->away, false);
    return IM_OK;
}

static void writer_lost(pg_store *st, const char *why)
{
    if (st->conn)
        PQfinish(st->conn);
    st->conn = NULL;
    if (!st->connected)
        return;
    st->connected = false;
    atomic_store(&st->away, true);
    st->lost_at_ms = mono_ms();
    st->backoff_ms = BACKOFF_MIN_MS;
    st->next_attempt_ms = st->lost_at_ms; /* the first attempt at once */
    IM_ERROR("storage: lost PostgreSQL (%s); requests are answered EIO until it is back", why);
}

/* Connected, or reconnects if an attempt is due. */
static bool ensure_connected(pg_store *st)
{
    if (st->connected)
        return true;
    uint64_t now = mono_ms();
    if (now < st->next_attempt_ms)
        return false;
    im_error err = { 0 };
    if (writer_open(st, &err) == IM_OK) {
        IM_WARN("storage: PostgreSQL %s is back after %.1f s", st->desc,
                (double)(mono_ms() - st->lost_at_ms) / 1000.0);
        return true;
    }
    /* Full jitter over the upper half: servers that lost one database at
     * once do not all come back in step. */
    unsigned half = st->backoff_ms / 2;
    unsigned delay = half + (unsigned)(rand_r(&st->rng) % (half + 1));
    st->next_attempt_ms = mono_ms() + delay;
    IM_DEBUG("storage: PostgreSQL %s still away (%s); next attempt in %u ms", st->desc, err.msg,
             delay);
    st->backoff_ms = st->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : st->backoff_ms * 2;
    return false;
}

/* ---- parameters and results ---- */

typedef struct params {
    int n;
    const char *v[8];
    int len[8];
    int fmt[8];
    char num[8][24];
} params;

static void p_text(params *p, const char *s)
{
    p->v[p->n] = s;
    p->len[p->n] = 0;
    p->fmt[p->n++] = 0;
}

static void p_null(params *p)
{
    p_text(p, NULL);
}

static void p_bytes(params *p, const void *b, size_t len)
{
    /* A zero-length value still needs a pointer that is not NULL (NULL is SQL NULL). */
    p->v[p->n] = len ? b : "";
    p->len[p->n] = (int)len;
    p->fmt[p->n++] = 1;
}

static void p_int(params *p, int64_t v)
{
    snprintf(p->num[p->n], sizeof p->num[0], "%lld", (long long)v);
    p_text(p, p->num[p->n]);
}

static void p_u64(params *p, uint64_t v)
{
    p_int(p, v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v);
}

static void p_bool(params *p, bool v)
{
    p_text(p, v ? "t" : "f");
}

/* An integer column of a binary result, whatever its width. */
static int64_t col_int(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return 0;
    const char *v = PQgetvalue(res, row, col);
    switch (PQgetlength(res, row, col)) {
    case 2: { uint16_t x; memcpy(&x, v, 2); return (int16_t)be16toh(x); }
    case 4: { uint32_t x; memcpy(&x, v, 4); return (int32_t)be32toh(x); }
    case 8: { uint64_t x; memcpy(&x, v, 8); return (int64_t)be64toh(x); }
    default: return 0;
    }
}

static void col_copy(const PGresult *res, int row, int col, char *buf, size_t size)
{
    size_t n = PQgetisnull(res, row, col) ? 0 : (size_t)PQgetlength(res, row, col);
    if (n >= size)
        n = size - 1;
    memcpy(buf, PQgetvalue(res, row, col), n);
    buf[n] = '\0';
}

/* Copies row of a MSG_COLUMNS result into a new owned_msg. */
static owned_msg *row_message(const PGresult *res, int row)
{
    size_t ls = (size_t)PQgetlength(res, row, 3) + 1, lt = (size_t)PQgetlength(res, row, 4) + 1;
    size_t lc = (size_t)PQgetlength(res, row, 5) + 1, lb = (size_t)PQgetlength(res, row, 7);
    owned_msg *o = malloc(sizeof *o + ls + lt + lc + lb);
    if (!o)
        return NULL;
    char *p = o->data;
    memset(&o->m, 0, sizeof o->m);
    o->next = NULL;
    o->m.seq = (uint64_t)col_int(res, row, 1);
    o->m.kind = (im_message_kind)col_int(res, row, 2);
    o->m.sender = p;
    col_copy(res, row, 3, p, ls), p += ls;
    o->m.target = p;
    col_copy(res, row, 4, p, lt), p += lt;
    o->m.client_msg_id = p;
    col_copy(res, row, 5, p, lc), p += lc;
    o->m.server_time_ms = (uint64_t)col_int(res, row, 6);
    memcpy(p, PQgetvalue(res, row, 7), lb);
    o->m.body = (const uint8_t *)p;
    o->m.body_len = lb;
    return o;
}

/* ---- one batch through the pipeline ---- */

typedef enum outcome { RUN_OK, RUN_FAILED, RUN_RETRY, RUN_LOST } outcome;

static unsigned io_timeout(const pg_store *st)
{
    return st->cfg.io_timeout_ms;
}

/* Waits until conn is readable (and, with out, writable), consuming input.
 * false: the connection is gone or silent past the I/O timeout. */
static bool wait_io(pg_store *st, bool out)
{
    struct pollfd p = { .fd = PQsocket(st->conn), .events = POLLIN | (out ? POLLOUT : 0) };
    if (p.fd < 0)
        return false;
    int n;
    do
        n = poll(&p, 1, (int)io_timeout(st));
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return false;
    if ((p.revents & (POLLIN | POLLERR | POLLHUP)) && !PQconsumeInput(st->conn))
        return false;
    return true;
}

static bool flush_all(pg_store *st)
{
    for (;;) {
        int f = PQflush(st->conn);
        if (f == 0)
            return true;
        if (f < 0 || !wait_io(st, true))
            return false;
    }
}

/* The next result, waiting for it; *lost on a dead or silent connection. */
static PGresult *next_result(pg_store *st, bool *lost)
{
    while (PQisBusy(st->conn)) {
        if (!wait_io(st, false)) {
            *lost = true;
            return NULL;
        }
    }
    return PQgetResult(st->conn);
}

/* One query's result and the NULL after it. */
static PGresult *take(pg_store *st, bool *lost)
{
    PGresult *res = next_result(st, lost);
    if (*lost)
        return NULL;
    if (!res) {
        *lost = true; /* out of step with the pipeline: start over on a new connection */
        return NULL;
    }
    if (PQresultStatus(res) == PGRES_PIPELINE_SYNC)
        return res;
    PGresult *end = next_result(st, lost);
    if (end) {
        PQclear(end);
        PQclear(res);
        *lost = true;
        return NULL;
    }
    return res;
}

static bool send_prepared(pg_store *st, enum stmt_id id, const params *p)
{
    return PQsendQueryPrepared(st->conn, stmt_name[id], p ? p->n : 0, p ? p->v : NULL,
                               p ? p->len : NULL, p ? p->fmt : NULL, 1) == 1;
}

/* Queues r's statement. false: the connection is gone. */
static bool send_req(pg_store *st, req *r)
{
    params p = { 0 };
    switch (r->kind) {
    case REQ_APPEND: {
        bool check = false;
        if (r->need_account) {
            check = !(st->cfg.is_service_account &&
                      st->cfg.is_service_account(st->cfg.service_arg, r->msg.target));
        }
        p_text(&p, r->conv);
        p_int(&p, (int)r->msg.kind);
        p_text(&p, r->msg.sender);
        p_text(&p, r->msg.target);
        p_bytes(&p, r->msg.client_msg_id, strlen(r->msg.client_msg_id));
        p_u64(&p, r->msg.server_time_ms ? r->msg.server_time_ms : wall_ms());
        p_bytes(&p, r->msg.body, r->msg.body_len);
        p_bool(&p, check);
        return send_prepared(st, S_APPEND, &p);
    }
    case REQ_ACK:
        p_text(&p, r->user);
        p_text(&p, r->conv);
        p_u64(&p, r->seq);
        p_bool(&p, r->group_conv);
        return send_prepared(st, S_ACK, &p);
    case REQ_GROUP:
        p_int(&p, (int)r->change);
        p_text(&p, r->group);
        p_text(&p, r->user);
        p_int(&p, r->max_members);
        p_int(&p, r->flags);
        p_u64(&p, r->now_ms);
        return send_prepared(st, S_GROUP, &p);
    case REQ_KV_PUT:
        p_bytes(&p, r->ns, strlen(r->ns));
        p_bytes(&p, r->key, strlen(r->key));
        if (!r->value)
            return send_prepared(st, S_KV_DELETE, &p);
        p_bytes(&p, r->value, r->value_len);
        return send_prepared(st, S_KV_PUT, &p);
    case REQ_ACCOUNT:
        p_int(&p, (int)r->op);
        p_text(&p, r->user);
        p_text(&p, r->name);
        p_text(&p, r->secret);
        if (r->token_len)
            p_bytes(&p, r->token, r->token_len);
        else
            p_null(&p);
        p_u64(&p, r->now_ms);
        p_u64(&p, r->expires_ms);
        p_int(&p, r->keep);
        return send_prepared(st, S_ACCOUNT, &p);
    case REQ_PENDING:
        p_text(&p, r->user);
        p_u64(&p, r->limit);
        p_u64(&p, r->max_bytes);
        return send_prepared(st, S_PENDING, &p);
    case REQ_HISTORY:
        p_text(&p, r->conv);
        p_u64(&p, r->seq ? r->seq : UINT64_MAX);
        p_u64(&p, r->limit);
        p_u64(&p, r->max_bytes);
        return send_prepared(st, S_HISTORY, &p);
    case REQ_BARRIER:
        break;
    }
    return true;
}

static int group_refusal(req *r, int status)
{
    switch (status) {
    case 0:
        return IM_OK;
    case IM_ENOGROUP:
        return im_error_set(&r->err, status, "no group %s", r->group);
    case IM_EEXIST:
        return im_error_set(&r->err, status, "group %s already exists", r->group);
    case IM_EFULL:
        return im_error_set(&r->err, status, "group %s is full (%u members)", r->group,
                            r->max_members);
    case IM_ENOTMEMBER:
        return im_error_set(&r->err, status, "%s is not %s group %s", r->user,
                            r->change == IM_GROUP_CHANGE_UNINVITE ? "invited to" : "in",
                            r->group);
    case IM_EMEMBER:
        return im_error_set(&r->err, status, "%s is already in group %s", r->user, r->group);
    default:
        return im_error_set(&r->err, IM_EIO, "group %s: unexpected status %d", r->group, status);
    }
}

/* Takes r's answer from a successful statement. false: not the shape
 * expected (taken as a failure of the batch). */
static bool take_answer(req *r, const PGresult *res)
{
    int rows = PQntuples(res);
    switch (r->kind) {
    case REQ_APPEND: {
        if (rows != 1 || PQnfields(res) != 3)
            return false;
        int status = (int)col_int(res, 0, 0);
        r->duplicate = false;
        if (status == 0 || status == 1) {
            r->rc = IM_OK;
            r->duplicate = status == 1;
            r->msg.seq = (uint64_t)col_int(res, 0, 1);
            r->msg.server_time_ms = (uint64_t)col_int(res, 0, 2);
        } else if (status == IM_EIDREUSED) {
            r->rc = im_error_set(&r->err, status,
                                 "this client_msg_id was used for another message");
        } else if (status == IM_EUNKNOWNUSER) {
            r->rc = im_error_set(&r->err, status, "%s is not a user of this server",
                                 r->msg.target);
        } else {
            return false;
        }
        return true;
    }
    case REQ_GROUP:
        if (rows != 1 || PQnfields(res) != 2)
            return false;
        r->rc = group_refusal(r, (int)col_int(res, 0, 0));
        r->since = r->rc == IM_OK ? (uint64_t)col_int(res, 0, 1) : 0;
        return true;
    case REQ_ACCOUNT: {
        if (rows != 1 || PQnfields(res) != 5)
            return false;
        int status = (int)col_int(res, 0, 0);
        r->has_rec = false;
        if (status == IM_EUSEREXISTS) {
            r->rc = im_error_set(&r->err, status, "user %s already exists", r->user);
            return true;
        }
        if (status == IM_ENOTFOUND) {
            r->rc = im_error_set(&r->err, status, r->op == IM_ACCOUNT_TOKEN_GET
                                                      ? "unknown or expired token"
                                                      : "no user %s", r->user);
            return true;
        }
        if (status != 0)
            return false;
        r->rc = IM_OK;
        col_copy(res, 0, 1, r->r_user, sizeof r->r_user);
        col_copy(res, 0, 2, r->r_name, sizeof r->r_name);
        r->r_has_secret = !PQgetisnull(res, 0, 3);
        col_copy(res, 0, 3, r->r_secret, sizeof r->r_secret);
        r->r_count = (uint64_t)col_int(res, 0, 4);
        r->has_rec = r->op == IM_ACCOUNT_GET || r->op == IM_ACCOUNT_TOKEN_GET ||
                     r->op == IM_ACCOUNT_TOKENS_DELETE_USER ||
                     r->op == IM_ACCOUNT_TOKENS_EXPIRE;
        return true;
    }
    case REQ_PENDING:
    case REQ_HISTORY:
        if (rows > 0 && PQnfields(res) != 8)
            return false;
        free_results(r);
        for (int i = 0; i < rows; i++) {
            owned_msg *o = row_message(res, i);
            if (!o) {
                free_results(r);
                r->rc = im_error_set(&r->err, IM_ENOMEM, "out of memory");
                return true;
            }
            if (r->kind == REQ_HISTORY) { /* read newest first, handed out oldest first */
                o->next = r->first;
                r->first = o;
            } else {
                *r->tail = o;
                r->tail = &o->next;
            }
        }
        r->rc = IM_OK;
        return true;
    default:
        r->rc = IM_OK;
        return true;
    }
}

/* What a SQLSTATE means for the batch and for its writes. */
static int code_of_state(const char *state)
{
    if (state && strcmp(state, "53100") == 0)
        return IM_ENOSPC;
    return IM_EIO;
}

static int compare_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The conversations the batch appends to, sorted and unique, as a text
 * array literal ("{\"p:a:b\",\"g:x\"}": ids hold no quote or backslash),
 * or NULL when it appends nothing (or memory is short: the lock is only
 * an optimisation). The caller frees it. */
static char *lock_list(const req *batch)
{
    size_t n = 0;
    for (const req *r = batch; r; r = r->next)
        n += r->kind == REQ_APPEND;
    if (n == 0)
        return NULL;
    const char **ids = malloc(n * sizeof *ids);
    char *out = ids ? malloc(n * (IM_CONVERSATION_ID_MAX + 3) + 3) : NULL;
    if (!out) {
        free(ids);
        return NULL;
    }
    n = 0;
    for (const req *r = batch; r; r = r->next)
        if (r->kind == REQ_APPEND)
            ids[n++] = r->conv;
    qsort(ids, n, sizeof *ids, compare_str);
    char *p = out;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(ids[i], ids[i - 1]) == 0)
            continue;
        if (p > out + 1)
            *p++ = ',';
        size_t len = strlen(ids[i]);
        *p++ = '"';
        memcpy(p, ids[i], len);
        p += len;
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    free(ids);
    return out;
}

/* Sends the batch (only its reads when reads_only) as one transaction and
 * reads the answers. On RUN_FAILED and RUN_RETRY the transaction is rolled
 * back and *fail holds the reason; RUN_LOST: the connection is gone. */
static outcome run_pipeline(pg_store *st, req *batch, bool reads_only, im_error *fail)
{
    bool lost = false, ok = send_prepared(st, S_BEGIN, NULL);
    char *locks = reads_only ? NULL : lock_list(batch);
    bool lock_sent = false;
    if (locks && ok) {
        params p = { 0 };
        p_text(&p, locks);
        ok = lock_sent = send_prepared(st, S_LOCK, &p);
    }
    free(locks);
    for (req *r = batch; r && ok; r = r->next) {
        r->sent = false;
        if (r->kind == REQ_BARRIER || (reads_only && !is_read(r->kind)))
            continue;
        ok = send_req(st, r);
        r->sent = ok;
    }
    ok = ok && send_prepared(st, S_COMMIT, NULL) && PQpipelineSync(st->conn) == 1 &&
         flush_all(st);
    if (!ok) {
        char msg[160];
        pq_message(st->conn, NULL, msg, sizeof msg);
        im_error_set(fail, IM_EIO, "postgres %s: sending a batch: %s", st->desc, msg);
        return RUN_LOST;
    }
    char state[6] = "";
    bool failed = false;
    /* BEGIN, the requests, COMMIT: each one result, in the order sent. */
    PGresult *res = take(st, &lost);
    if (lock_sent && !lost) { /* BEGIN's result, then the lock's in its place */
        if (PQresultStatus(res) != PGRES_COMMAND_OK && !failed) {
            failed = true;
            char msg[160];
            pq_message(st->conn, res, msg, sizeof msg);
            im_error_set(fail, IM_EIO, "postgres %s: begin: %s", st->desc, msg);
        }
        PQclear(res);
        res = take(st, &lost);
    }
    for (req *r = batch, *cur = NULL; !lost; r = r ? r->next : NULL) {
        if (res) {
            ExecStatusType s = PQresultStatus(res);
            if (s == PGRES_FATAL_ERROR && !failed) {
                failed = true;
                const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
                snprintf(state, sizeof state, "%s", code ? code : "");
                char msg[160];
                pq_message(st->conn, res, msg, sizeof msg);
                im_error_set(fail, code_of_state(state), "postgres %s: %s", st->desc, msg);
            } else if (s == PGRES_TUPLES_OK && cur && !failed && !take_answer(cur, res)) {
                failed = true;
                im_error_set(fail, IM_EIO, "postgres %s: an answer of an unexpected shape",
                             st->desc);
            } else if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK && !failed) {
                failed = true;
                im_error_set(fail, IM_EIO, "postgres %s: %s", st->desc, PQresStatus(s));
            }
            PQclear(res);
            res = NULL;
        }
        while (r && !r->sent)
            r = r->next;
        if (!r) { /* then COMMIT, then the sync */
            res = take(st, &lost);
            if (lost)
                break;
            ExecStatusType s = PQresultStatus(res);
            if (s == PGRES_FATAL_ERROR && !failed) {
                failed = true;
                const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
                snprintf(state, sizeof state, "%s", code ? code : "");
                char msg[160];
                pq_message(st->conn, res, msg, sizeof msg);
                im_error_set(fail, code_of_state(state), "postgres %s: commit: %s", st->desc,
                             msg);
            } else if (s != PGRES_COMMAND_OK && !failed) {
                failed = true;
                im_error_set(fail, IM_EIO, "postgres %s: commit: %s", st->desc, PQresStatus(s));
            }
            PQclear(res);
            res = take(st, &lost);
            if (!lost && PQresultStatus(res) != PGRES_PIPELINE_SYNC)
                lost = true;
            PQclear(res);
            break;
        }
        cur = r;
        res = take(st, &lost);
    }
    if (lost) {
        if (!fail->code)
            im_error_set(fail, IM_EIO, "postgres %s: the connection was lost or went silent"
                         " (no answer in %u ms)", st->desc, io_timeout(st));
        return RUN_LOST;
    }
    if (!failed)
        return RUN_OK;
    /* An error leaves the transaction open and failed: roll it back. */
    if (PQtransactionStatus(st->conn) != PQTRANS_IDLE) {
        bool rl = send_prepared(st, S_ROLLBACK, NULL) && PQpipelineSync(st->conn) == 1 &&
                  flush_all(st);
        PGresult *r1 = rl ? take(st, &lost) : NULL;
        PQclear(r1);
        PGresult *r2 = rl && !lost ? take(st, &lost) : NULL;
        if (!rl || lost || PQresultStatus(r2) != PGRES_PIPELINE_SYNC)
            lost = true;
        PQclear(r2);
        if (lost)
            return RUN_LOST;
    }
    if (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0)
        return RUN_RETRY;
    return RUN_FAILED;
}

/* The answer a failed request carries to its client: the server's log says
 * why (the database's address and messages stay there). */
static void client_error(im_error *err, int code, bool lost)
{
    im_error_set(err, code, code == IM_ENOSPC
                                ? "the database is full: not stored"
                                : lost ? "the database is unreachable: not stored, or not known"
                                         " to be (send again with the same client_msg_id)"
                                       : "the database failed: not stored");
}

static void fail_writes(req *batch, const im_error *why, bool lost)
{
    for (req *r = batch; r; r = r->next) {
        if (is_write(r->kind)) {
            r->rc = why->code;
            client_error(&r->err, why->code, lost);
            r->duplicate = false;
            r->has_rec = false;
        }
    }
}

static void fail_reads(req *batch)
{
    for (req *r = batch; r; r = r->next) {
        if (is_read(r->kind)) {
            free_results(r);
            r->rc = IM_EIO;
            client_error(&r->err, IM_EIO, true);
        }
    }
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
    case REQ_GROUP:
        if (r->group_done)
            r->group_done(r->arg, r->rc, r->rc == IM_OK ? r->since : 0, &r->err);
        else
            r->done(r->arg, r->rc, &r->err);
        break;
    case REQ_KV_PUT:
        if (r->done)
            r->done(r->arg, r->rc, &r->err);
        break;
    case REQ_ACCOUNT: {
        im_account_record rec = { .user = r->r_user[0] ? r->r_user : NULL,
                                  .display_name = r->r_name,
                                  .secret = r->op == IM_ACCOUNT_GET && r->r_has_secret
                                                ? r->r_secret : NULL,
                                  .count = r->r_count };
        r->account_done(r->arg, r->rc, r->rc == IM_OK && r->has_rec ? &rec : NULL, &r->err);
        break;
    }
    case REQ_BARRIER:
        r->done(r->arg, IM_OK, NULL);
        break;
    }
}

static void run_batch(pg_store *st, req *batch)
{
    im_error why = { 0 };
    outcome o = RUN_LOST;
    for (int attempt = 0;; attempt++) {
        if (!ensure_connected(st)) {
            im_error_set(&why, IM_EIO, "PostgreSQL %s is unreachable: nothing was stored",
                         st->desc);
            o = RUN_LOST;
            break;
        }
        memset(&why, 0, sizeof why);
        o = run_pipeline(st, batch, false, &why);
        if (o == RUN_LOST)
            writer_lost(st, why.msg);
        if (o != RUN_RETRY || attempt + 1 >= MAX_RETRIES)
            break;
        IM_DEBUG("storage: %s; running the batch again", why.msg);
    }
    if (o != RUN_OK) {
        if (o != RUN_LOST || st->connected)
            IM_WARN("storage: a batch failed and was rolled back: %s", why.msg);
        fail_writes(batch, &why, o == RUN_LOST);
        /* The reads again, on their own: they must not report what was
         * rolled back. After a lost connection, only if it is back at once. */
        bool any = false;
        for (req *r = batch; r && !any; r = r->next)
            any = is_read(r->kind);
        im_error rwhy = why;
        outcome ro = RUN_LOST;
        if (any && ensure_connected(st)) {
            memset(&rwhy, 0, sizeof rwhy);
            ro = run_pipeline(st, batch, true, &rwhy);
            if (ro == RUN_LOST)
                writer_lost(st, rwhy.msg);
        }
        if (any && ro != RUN_OK)
            fail_reads(batch);
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
    pg_store *st = arg;
    for (;;) {
        pthread_mutex_lock(&st->lock);
        while (!st->head && !st->stopping) {
            if (st->connected) {
                pthread_cond_wait(&st->wake, &st->lock);
                continue;
            }
            /* Away: wake for the next attempt even when nothing is asked. */
            uint64_t now = mono_ms();
            if (now >= st->next_attempt_ms) {
                pthread_mutex_unlock(&st->lock);
                ensure_connected(st);
                pthread_mutex_lock(&st->lock);
                continue;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t wait = st->next_attempt_ms - now;
            ts.tv_sec += (time_t)(wait / 1000u);
            ts.tv_nsec += (long)(wait % 1000u) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&st->wake, &st->lock, &ts);
        }
        if (!st->head) {
            pthread_mutex_unlock(&st->lock);
            break;
        }
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
                ack_key(r->user, r->conv, key, sizeof key);
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

static int pg_append(im_store *s, const im_message *m, im_store_append_fn done, void *arg,
                     im_error *err)
{
    pg_store *st = (pg_store *)s;
    if (!m || !done)
        return im_error_set(err, IM_EINVAL, "no message or no callback");
    /* Checked here: a value the database refuses would fail the whole batch. */
    int rc = im_message_validate(m, SIZE_MAX, err);
    if (rc != IM_OK)
        return rc;
    if (m->body_len > MAX_BODY)
        return im_error_set(err, IM_EINVAL, "the message body is %zu bytes, over %u",
                            m->body_len, MAX_BODY);
    const char *cmid = m->client_msg_id ? m->client_msg_id : "";
    size_t ls = strlen(m->sender) + 1, lt = strlen(m->target) + 1, lc = strlen(cmid) + 1;
    req *r = req_new(REQ_APPEND, ls + lt + lc + m->body_len);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    if (im_message_conversation_id(m, r->conv, sizeof r->conv) < 0) {
        req_free(r);
        return im_error_set(err, IM_EINVAL, "the message has no valid conversation");
    }
    char *p = r->buf;
    r->msg = *m;
    r->msg.sender = memcpy(p, m->sender, ls), p += ls;
    r->msg.target = memcpy(p, m->target, lt), p += lt;
    r->msg.client_msg_id = memcpy(p, cmid, lc), p += lc;
    r->msg.body = m->body_len ? memcpy(p, m->body, m->body_len) : (const uint8_t *)p;
    r->need_account = st->cfg.receivers_need_account && m->kind == IM_MESSAGE_PRIVATE;
    r->append_done = done;
    r->arg = arg;
    return enqueue(st, r, err);
}

static int pg_pending_read(im_store *s, const char *user, size_t limit, size_t max_bytes,
                           im_store_message_fn each, im_store_done_fn done, void *arg,
                           im_error *err)
{
    int rc = im_user_id_check(user, err);
    if (rc != IM_OK)
        return rc;
    req *r = req_new(REQ_PENDING, 0);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    snprintf(r->user, sizeof r->user, "%s", user);
    r->limit = limit;
    r->max_bytes = max_bytes;
    r->each = each;
    r->done = done;
    r->arg = arg;
    return enqueue((pg_store *)s, r, err);
}

static int pg_pending(im_store *s, const char *user, size_t limit, im_store_message_fn each,
                      im_store_done_fn done, void *arg, im_error *err)
{
    return pg_pending_read(s, user, limit, 0, each, done, arg, err);
}

static int pg_history_read(im_store *s, const char *conversation, uint64_t before_seq,
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
    return enqueue((pg_store *)s, r, err);
}

static int pg_ack(im_store *s, const char *user, const char *conversation, uint64_t seq,
                  im_error *err)
{
    bool group = false;
    int rc = im_user_id_check(user, err);
    if (rc == IM_OK)
        rc = conversation ? im_conversation_check(user, conversation, &group, err)
                          : im_error_set(err, IM_EINVAL, "no conversation");
    if (rc != IM_OK)
        return rc;
    pg_store *st = (pg_store *)s;
    char key[ACK_KEY_MAX];
    ack_key(user, conversation, key, sizeof key);
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
    r->group_conv = group;
    return enqueue(st, r, err);
}

static int pg_barrier(im_store *s, im_store_done_fn done, void *arg, im_error *err)
{
    req *r = req_new(REQ_BARRIER, 0);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    r->done = done;
    r->arg = arg;
    return enqueue((pg_store *)s, r, err);
}

static int group_request(pg_store *st, im_group_change_kind kind, const char *group,
                         const char *user, uint32_t max_members, uint32_t flags,
                         im_store_group_fn group_done, im_store_done_fn done, void *arg,
                         im_error *err)
{
    im_error sub;
    if (!group || im_user_id_check(group, &sub) != IM_OK)
        return im_error_set(err, IM_EINVAL, "bad group id");
    if (kind != IM_GROUP_CHANGE_DELETE && (!user || im_user_id_check(user, &sub) != IM_OK))
        return im_error_set(err, IM_EINVAL, "bad user id");
    if (kind == IM_GROUP_CHANGE_CREATE &&
        (max_members < 1 || max_members > IM_GROUP_MAX_MEMBERS_LIMIT))
        return im_error_set(err, IM_EINVAL, "max_members %u is not in 1..%u", max_members,
                            IM_GROUP_MAX_MEMBERS_LIMIT);
    if (kind == IM_GROUP_CHANGE_CREATE && (flags & ~(uint32_t)IM_GROUP_FLAGS_ALL))
        return im_error_set(err, IM_EINVAL, "unknown group flags 0x%x", flags);
    req *r = req_new(REQ_GROUP, 0);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    snprintf(r->group, sizeof r->group, "%s", group);
    snprintf(r->user, sizeof r->user, "%s", user ? user : "");
    r->change = kind;
    r->max_members = max_members;
    r->flags = flags;
    r->now_ms = wall_ms();
    r->group_done = group_done;
    r->done = done;
    r->arg = arg;
    return enqueue(st, r, err);
}

static int pg_group_change(im_store *s, const im_group_change *c, im_store_group_fn done,
                           void *arg, im_error *err)
{
    if (!c || c->size < offsetof(im_group_change, flags) + sizeof c->flags ||
        c->kind < IM_GROUP_CHANGE_CREATE || c->kind > IM_GROUP_CHANGE_DELETE || !done)
        return im_error_set(err, IM_EINVAL, "a malformed group change");
    return group_request((pg_store *)s, c->kind, c->group, c->user, c->max_members, c->flags,
                         done, NULL, arg, err);
}

static int pg_group_create(im_store *s, const char *group, const char *owner,
                           uint32_t max_members, im_store_done_fn done, void *arg, im_error *err)
{
    return group_request((pg_store *)s, IM_GROUP_CHANGE_CREATE, group, owner, max_members,
                         IM_STORE_GROUP_SHARE_HISTORY, NULL, done, arg, err);
}

static int pg_group_join(im_store *s, const char *group, const char *user,
                         im_store_done_fn done, void *arg, im_error *err)
{
    return group_request((pg_store *)s, IM_GROUP_CHANGE_JOIN, group, user, 0, 0, NULL, done,
                         arg, err);
}

static int pg_group_leave(im_store *s, const char *group, const char *user,
                          im_store_done_fn done, void *arg, im_error *err)
{
    return group_request((pg_store *)s, IM_GROUP_CHANGE_LEAVE, group, user, 0, 0, NULL, done,
                         arg, err);
}

static int pg_kv_put(im_store *s, const char *ns, const char *key, const void *value,
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
    r->value = value ? (len ? memcpy(p, value, len) : p) : NULL;
    r->value_len = len;
    r->done = done;
    r->arg = arg;
    return enqueue((pg_store *)s, r, err);
}

/* A password hash string: printable ASCII (crypto_pwhash_str's alphabet). */
static bool secret_ok(const char *s)
{
    size_t n = strnlen(s, IM_STORE_SECRET_MAX + 1);
    if (n == 0 || n > IM_STORE_SECRET_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return false;
    return true;
}

static int pg_account(im_store *s, const im_account_request *q, im_store_account_fn done,
                      void *arg, im_error *err)
{
    if (!q || !done || q->size < offsetof(im_account_request, keep) + sizeof q->keep ||
        q->op < IM_ACCOUNT_CREATE || q->op > IM_ACCOUNT_TOKENS_EXPIRE)
        return im_error_set(err, IM_EINVAL, "a malformed account request");
    bool needs_user = q->op == IM_ACCOUNT_CREATE || q->op == IM_ACCOUNT_GET ||
                      q->op == IM_ACCOUNT_TOKEN_PUT || q->op == IM_ACCOUNT_TOKENS_DELETE_USER;
    bool needs_token = q->op == IM_ACCOUNT_TOKEN_PUT || q->op == IM_ACCOUNT_TOKEN_GET ||
                       q->op == IM_ACCOUNT_TOKEN_DELETE ||
                       (q->op == IM_ACCOUNT_CREATE && q->token);
    int rc = needs_user ? im_user_id_check(q->user, err) : IM_OK;
    if (rc != IM_OK)
        return rc;
    if (needs_token && (!q->token || q->token_len == 0 || q->token_len > IM_STORE_TOKEN_HASH_MAX))
        return im_error_set(err, IM_EINVAL, "a token hash is 1..%d bytes",
                            IM_STORE_TOKEN_HASH_MAX);
    if (q->op == IM_ACCOUNT_CREATE) {
        if ((rc = im_display_name_check(q->display_name, err)) != IM_OK)
            return rc;
        if (!q->secret || !secret_ok(q->secret))
            return im_error_set(err, IM_EINVAL, "a password hash is 1..%d printable bytes",
                                IM_STORE_SECRET_MAX);
    }
    req *r = req_new(REQ_ACCOUNT, 0);
    if (!r)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    r->op = q->op;
    if (needs_user)
        snprintf(r->user, sizeof r->user, "%s", q->user);
    if (q->op == IM_ACCOUNT_CREATE) {
        snprintf(r->name, sizeof r->name, "%s", q->display_name ? q->display_name : "");
        snprintf(r->secret, sizeof r->secret, "%s", q->secret);
    }
    if (needs_token) {
        memcpy(r->token, q->token, q->token_len);
        r->token_len = q->token_len;
    }
    r->now_ms = q->now_ms;
    r->expires_ms = q->expires_ms;
    r->keep = q->keep;
    r->account_done = done;
    r->arg = arg;
    return enqueue((pg_store *)s, r, err);
}

/* ---- the synchronous reads, on the reader connection ---- */

/* Runs a read on the reader (connecting it if need be; once more on a new
 * connection if it was lost). The caller holds read_lock. */
static PGresult *reader_exec(pg_store *st, const char *sql, const params *p, im_error *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!st->reader && atomic_load(&st->away)) {
            im_error_set(err, IM_EIO, "PostgreSQL %s is unreachable", st->desc);
            return NULL;
        }
        if (!st->reader && !(st->reader = connect_db(st, err)))
            return NULL;
        PGresult *res = PQexecParams(st->reader, sql, p ? p->n : 0, NULL, p ? p->v : NULL,
                                     p ? p->len : NULL, p ? p->fmt : NULL, 1);
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            return res;
        char msg[160];
        pq_message(st->reader, res, msg, sizeof msg);
        PQclear(res);
        if (PQstatus(st->reader) == CONNECTION_OK) {
            im_error_set(err, IM_EIO, "postgres %s: %s", st->desc, msg);
            return NULL;
        }
        PQfinish(st->reader);
        st->reader = NULL;
        im_error_set(err, IM_EIO, "postgres %s: %s", st->desc, msg);
    }
    return NULL;
}

static int pg_history(im_store *s, const char *conversation, uint64_t before_seq, size_t limit,
                      im_store_message_fn each, void *arg, im_error *err)
{
    if (!conversation || strlen(conversation) > IM_CONVERSATION_ID_MAX)
        return im_error_set(err, IM_EINVAL, "no conversation, or one too long");
    if (limit == 0)
        return IM_OK;
    pg_store *st = (pg_store *)s;
    params p = { 0 };
    p_text(&p, conversation);
    p_u64(&p, before_seq ? before_seq : UINT64_MAX);
    p_u64(&p, limit);
    pthread_mutex_lock(&st->read_lock);
    PGresult *res = reader_exec(st, "SELECT " MSG_COLUMNS " FROM messages WHERE conv = $1::text"
                                " AND seq < $2::bigint ORDER BY seq DESC LIMIT $3::bigint",
                                &p, err);
    pthread_mutex_unlock(&st->read_lock);
    if (!res)
        return IM_EIO;
    int rc = IM_OK;
    for (int i = PQntuples(res) - 1; i >= 0; i--) {
        owned_msg *o = row_message(res, i);
        if (!o) {
            rc = im_error_set(err, IM_ENOMEM, "out of memory");
            break;
        }
        bool go_on = each(arg, &o->m);
        free(o);
        if (!go_on)
            break;
    }
    PQclear(res);
    return rc;
}

/* The smallest string above every string that starts with prefix (see the
 * SQLite store); false when there is none. */
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

static int pg_kv_each(im_store *s, const char *ns, const char *prefix, im_store_kv_fn fn,
                      void *arg, im_error *err)
{
    int rc = im_store_kv_check(ns, NULL, NULL, 0, err);
    if (rc != IM_OK)
        return rc;
    if (!fn)
        return im_error_set(err, IM_EINVAL, "no callback");
    if (!prefix)
        prefix = "";
    if (strnlen(prefix, IM_STORE_KV_KEY_MAX + 1) > IM_STORE_KV_KEY_MAX)
        return 0;
    char upper[IM_STORE_KV_KEY_MAX + 1];
    bool bounded = prefix_successor(prefix, upper, sizeof upper);
    params p = { 0 };
    p_bytes(&p, ns, strlen(ns));
    p_bytes(&p, prefix, strlen(prefix));
    if (bounded)
        p_bytes(&p, upper, strlen(upper));
    pg_store *st = (pg_store *)s;
    pthread_mutex_lock(&st->read_lock);
    PGresult *res = reader_exec(st, bounded
                                        ? "SELECT key, value FROM kv WHERE ns = $1::bytea AND"
                                          " key >= $2::bytea AND key < $3::bytea ORDER BY key"
                                        : "SELECT key, value FROM kv WHERE ns = $1::bytea AND"
                                          " key >= $2::bytea ORDER BY key",
                                &p, err);
    pthread_mutex_unlock(&st->read_lock);
    if (!res)
        return IM_EIO;
    /* fn may put (enqueue): the lock is not held while it runs. */
    int visited = 0, rows = PQntuples(res);
    for (int i = 0; i < rows; i++) {
        char key[IM_STORE_KV_KEY_MAX + 1];
        col_copy(res, i, 0, key, sizeof key);
        visited++;
        if (!fn(arg, key, PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1)))
            break;
    }
    PQclear(res);
    return visited;
}

static int pg_load_groups(im_store *s, int (*fn)(void *arg, const im_group_record *g), void *arg,
                          im_error *err)
{
    pg_store *st = (pg_store *)s;
    pthread_mutex_lock(&st->read_lock);
    PGresult *groups = reader_exec(st, "SELECT id, max_members, flags, owner, creator"
                                       " FROM chat_groups ORDER BY id", NULL, err);
    PGresult *members = groups ? reader_exec(st, "SELECT group_id, user_id, since_seq FROM"
                                                 " group_members ORDER BY group_id, join_order",
                                             NULL, err) : NULL;
    PGresult *invites = members ? reader_exec(st, "SELECT group_id, user_id FROM group_invites"
                                                  " ORDER BY group_id, invited_ms, user_id",
                                              NULL, err) : NULL;
    pthread_mutex_unlock(&st->read_lock);
    int rc = invites ? IM_OK : IM_EIO;
    int ng = groups ? PQntuples(groups) : 0, nm = members ? PQntuples(members) : 0;
    int ni = invites ? PQntuples(invites) : 0;
    const char **names = rc == IM_OK ? malloc((size_t)(nm + ni + 1) * sizeof *names) : NULL;
    uint64_t *since = rc == IM_OK ? malloc((size_t)(nm + 1) * sizeof *since) : NULL;
    if (rc == IM_OK && (!names || !since))
        rc = im_error_set(err, IM_ENOMEM, "out of memory");
    /* Both lists are in group id order: walk them beside the groups. */
    int mi = 0, ii = 0;
    for (int g = 0; g < ng && rc == IM_OK; g++) {
        const char *id = PQgetvalue(groups, g, 0);
        size_t n = 0, k = 0;
        while (mi < nm && strcmp(PQgetvalue(members, mi, 0), id) < 0)
            mi++;
        for (; mi < nm && strcmp(PQgetvalue(members, mi, 0), id) == 0; mi++, n++) {
            names[n] = PQgetvalue(members, mi, 1);
            since[n] = (uint64_t)col_int(members, mi, 2);
        }
        while (ii < ni && strcmp(PQgetvalue(invites, ii, 0), id) < 0)
            ii++;
        for (; ii < ni && strcmp(PQgetvalue(invites, ii, 0), id) == 0; ii++, k++)
            names[n + k] = PQgetvalue(invites, ii, 1);
        if (n == 0) {
            rc = im_error_set(err, IM_EIO, "postgres %s: stored group %s has no members",
                              st->desc, id);
            break;
        }
        const char *owner = PQgetvalue(groups, g, 3), *creator = PQgetvalue(groups, g, 4);
        im_group_record rec = { .id = id, .max_members = (uint32_t)col_int(groups, g, 1),
                                .members = names, .nmembers = n,
                                .owner = owner[0] ? owner : NULL,
                                .creator = creator[0] ? creator : NULL,
                                .flags = (uint32_t)col_int(groups, g, 2), .since = since,
                                .invited = names + n, .ninvited = k };
        int r = fn(arg, &rec);
        if (r != 0) {
            if (r < 0)
                im_error_set(err, r, "loading groups: stopped by the caller (%s)",
                             im_strerror(r));
            rc = r;
        }
    }
    free(names);
    free(since);
    PQclear(groups);
    PQclear(members);
    PQclear(invites);
    return rc;
}

static void pg_destroy(im_store *s)
{
    pg_store *st = (pg_store *)s;
    if (!st)
        return;
    if (st->thread_started) {
        pthread_mutex_lock(&st->lock);
        st->stopping = true;
        pthread_cond_signal(&st->wake);
        pthread_mutex_unlock(&st->lock);
        pthread_join(st->thread, NULL); /* it drains the queue first */
    }
    if (st->conn)
        PQfinish(st->conn);
    if (st->reader)
        PQfinish(st->reader);
    im_strmap_free(st->acks);
    pthread_mutex_destroy(&st->lock);
    pthread_mutex_destroy(&st->read_lock);
    pthread_cond_destroy(&st->wake);
    if (st->password) {
        /* Not left in freed memory. */
        volatile char *p = st->password;
        while (*p)
            *p++ = '\0';
    }
    free(st->password);
    free(st->conninfo);
    free(st);
}

static const struct im_store_ops pg_store_ops = {
    .size = sizeof(struct im_store_ops),
    .name = "postgres",
    .durable = true,
    .append = pg_append,
    .pending = pg_pending,
    .ack = pg_ack,
    .history = pg_history,
    .barrier = pg_barrier,
    .destroy = pg_destroy,
    .group_create = pg_group_create,
    .group_join = pg_group_join,
    .group_leave = pg_group_leave,
    .load_groups = pg_load_groups,
    .kv_put = pg_kv_put,
    .kv_each = pg_kv_each,
    .group_change = pg_group_change,
    .history_read = pg_history_read,
    .pending_read = pg_pending_read,
    .account = pg_account,
};

/* "host=H port=P dbname=D user=U" from conninfo, never its password. */
static int describe(const char *conninfo, char *buf, size_t size, im_error *err)
{
    char *why = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &why);
    if (!opts) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s", why ? why : "out of memory");
        msg[strcspn(msg, "\n")] = '\0';
        PQfreemem(why);
        return im_error_set(err, IM_EINVAL, "postgres: a malformed connection string: %s", msg);
    }
    static const char *const shown[] = { "host", "hostaddr", "port", "dbname", "user", NULL };
    buf[0] = '\0';
    size_t len = 0;
    for (const char *const *k = shown; *k; k++) {
        for (PQconninfoOption *o = opts; o->keyword; o++) {
            if (strcmp(o->keyword, *k) != 0 || !o->val || !o->val[0])
                continue;
            int n = snprintf(buf + len, size - len, "%s%s=%s", len ? " " : "", *k, o->val);
            if (n > 0 && (size_t)n < size - len)
                len += (size_t)n;
        }
    }
    if (!buf[0])
        snprintf(buf, size, "(libpq defaults)");
    PQconninfoFree(opts);
    return IM_OK;
}

void im_pg_store_describe(const im_store *s, char *buf, size_t size)
{
    snprintf(buf, size, "%s", ((const pg_store *)s)->desc);
}

int im_pg_store_new(const im_pg_store_config *cfg, im_store **out, im_error *err)
{
    *out = NULL;
    if (!cfg || !cfg->conninfo)
        return im_error_set(err, IM_EINVAL, "postgres: no connection string");
    pg_store *st = calloc(1, sizeof *st);
    if (!st)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    st->base.ops = &pg_store_ops;
    st->cfg = *cfg;
    st->cfg.conninfo = NULL;
    st->cfg.password = NULL;
    if (!st->cfg.connect_timeout_s)
        st->cfg.connect_timeout_s = 5;
    if (!st->cfg.max_batch)
        st->cfg.max_batch = 512;
    if (!st->cfg.max_queue)
        st->cfg.max_queue = 100000;
    /* A statement the server would cancel anyway bounds the wait; without
     * one, 30 s. Never shorter than a statement may take. */
    if (!st->cfg.io_timeout_ms)
        st->cfg.io_timeout_ms = st->cfg.statement_timeout_ms ? st->cfg.statement_timeout_ms + 5000u
                                                             : 30000u;
    if (st->cfg.statement_timeout_ms &&
        st->cfg.io_timeout_ms < st->cfg.statement_timeout_ms + 5000u)
        st->cfg.io_timeout_ms = st->cfg.statement_timeout_ms + 5000u;
    st->rng = (unsigned)wall_ms() ^ (unsigned)(uintptr_t)st;
    pthread_mutex_init(&st->lock, NULL);
    pthread_mutex_init(&st->read_lock, NULL);
    pthread_cond_init(&st->wake, NULL);
    st->conninfo = strdup(cfg->conninfo);
    st->password = cfg->password ? strdup(cfg->password) : NULL;
    st->acks = im_strmap_new();
    int rc = IM_OK;
    if (!st->conninfo || (cfg->password && !st->password) || !st->acks)
        rc = im_error_set(err, IM_ENOMEM, "out of memory");
    if (rc == IM_OK)
        rc = describe(st->conninfo, st->desc, sizeof st->desc, err);
    /* The schema first, on a plain connection; then the writer proper. */
    PGconn *c = rc == IM_OK ? connect_db(st, err) : NULL;
    if (rc == IM_OK && !c)
        rc = err && err->code ? err->code : IM_EIO;
    bool created = false;
    if (rc == IM_OK)
        rc = im_pg_schema_migrate(c, &created, err);
    if (c)
        PQfinish(c);
    if (rc == IM_OK)
        rc = writer_open(st, err);
    if (rc == IM_OK && created)
        IM_WARN("storage: PostgreSQL %s held no imcore schema: created version %d (if this server"
                " has run before, its messages and accounts are not in this database)", st->desc,
                im_pg_schema_version());
    if (rc == IM_OK && pthread_create(&st->thread, NULL, storage_main, st) != 0)
        rc = im_error_set(err, IM_EIO, "cannot start the storage thread");
    if (rc != IM_OK) {
        pg_destroy(&st->base);
        return rc;
    }
    st->thread_started = true;
    *out = &st->base;
    return IM_OK;
}
