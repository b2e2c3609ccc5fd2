/* infrastructure/store_postgres/im_pg_store.h: the durable store port on
 * PostgreSQL, through libpq.
 *
 * One storage thread per store owns the writing connection. Requests queue
 * up from any worker (the event loops only enqueue); the thread takes what
 * has queued (up to max_batch) and sends it as one transaction in one
 * pipeline (BEGIN, one statement per request, COMMIT, sync): one round trip
 * per batch. Completions run in request order once COMMIT has succeeded; a
 * failed commit or a lost connection answers every write of the batch with
 * IM_EIO, so nothing is acknowledged that is not committed. While the
 * server is away every request is answered IM_EIO and the thread reconnects
 * by itself, with exponential backoff and jitter. The synchronous reads
 * (history, kv_each, load_groups) use a second connection behind a lock. */
#ifndef IM_PG_STORE_H
#define IM_PG_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include "imcore/errors.h"
#include "application/ports/im_store.h"

typedef struct im_pg_store_config {
    /* A libpq connection string ("host=... dbname=..." or a postgresql://
     * URI); borrowed for the call. May hold the password, which is then
     * never logged. */
    const char *conninfo;
    /* The password, when not in conninfo; NULL: libpq's own (PGPASSWORD,
     * ~/.pgpass). Borrowed for the call; the store keeps a copy. */
    const char *password;
    unsigned connect_timeout_s;    /* 0: 5 */
    unsigned statement_timeout_ms; /* 0: none (a lost server is still found: see
                                    * io_timeout_ms) */
    unsigned io_timeout_ms;        /* longest wait for the server's answer before the
                                    * connection is taken as lost; 0: statement_timeout_ms
                                    * + 5000, or 30000 without one; never less than
                                    * statement_timeout_ms + 5000 */
    unsigned max_batch;            /* requests per transaction; 0: 512 */
    unsigned max_queue;            /* queued requests beyond this are IM_EBUSY; 0: 100000 */
    /* As im_sqlite_store_config: with receivers_need_account, a private
     * message to an id with no account that is no service account is
     * answered IM_EUNKNOWNUSER. is_service_account runs on the storage
     * thread; service_arg is borrowed and outlives the store. */
    bool receivers_need_account;
    bool (*is_service_account)(void *arg, const char *user);
    void *service_arg;
} im_pg_store_config;

/* Connects, brings the schema up to date (or refuses a foreign or newer
 * one, writing nothing), and starts the storage thread. *out is the
 * caller's: release with im_store_destroy(), which finishes what is queued
 * first. Errors: IM_EINVAL (no conninfo, a malformed one), IM_EIO (cannot
 * connect, not an imcore database, a newer schema: err says which, without
 * the password), IM_ENOMEM. */
int im_pg_store_new(const im_pg_store_config *cfg, im_store **out, im_error *err);

/* The server the store is connected to, as "host=H port=P dbname=D
 * user=U", never with the password; for logs. Writes at most size bytes. */
void im_pg_store_describe(const im_store *s, char *buf, size_t size);

#endif
