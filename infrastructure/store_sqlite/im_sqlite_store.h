/* infrastructure/store_sqlite/im_sqlite_store.h: the durable store port on
 * SQLite.
 *
 * One storage thread owns the writing connection. Requests queue up from
 * any worker; the thread takes what has queued (up to max_batch), runs it in
 * one transaction, commits, and only then runs the completions, in order:
 * group commit, so one fsync covers a whole batch and an ack never runs
 * ahead of the disk. History reads use a second connection (WAL lets it read
 * while the writer writes). */
#ifndef IM_SQLITE_STORE_H
#define IM_SQLITE_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include "imcore/errors.h"
#include "application/ports/im_store.h"

typedef struct im_sqlite_store_config {
    const char *path;          /* borrowed for the call */
    unsigned max_batch;        /* requests per transaction; 1 turns group commit off */
    unsigned max_queue;        /* queued requests beyond this are refused with IM_EBUSY */
    uint32_t max_page_count;   /* 0: no limit (tests use a limit to fill the "disk") */
    bool synchronous_full;     /* fsync the WAL at every commit (FULL) or at checkpoints (NORMAL) */
    bool skip_check;           /* no PRAGMA quick_check at open: it reads the whole file */
    /* Logins need accounts: a private message to an id without one that is
     * no service account is answered IM_EUNKNOWNUSER by its append's
     * completion (see im_sqlite_options). is_service_account runs on the
     * storage thread; service_arg is borrowed and outlives the store. */
    bool receivers_need_account;
    bool (*is_service_account)(void *arg, const char *user);
    void *service_arg;
} im_sqlite_store_config;

/* Opens (or creates) the database and starts the storage thread. *out is
 * the caller's: release with im_store_destroy(), which finishes what is
 * queued first. Errors: IM_EIO (cannot open, corrupt, foreign or newer
 * database: err names the file), IM_ENOMEM. */
int im_sqlite_store_new(const im_sqlite_store_config *cfg, im_store **out, im_error *err);

#endif
