/* tests/store_conformance/test_store_conformance.c: the storage port's
 * conformance suite (include/imcore/storage.h). One set of cases runs,
 * unchanged, against every storage engine, each opened by name the way the
 * server opens it: a YAML config read by the server's config reader, the
 * storage adapter loaded by the plugin host (im_plugin_host_load_storage)
 * from the plugin directory, and its table checked and shimmed as the
 * server's is (im_plugin_host_open_storage).
 *
 *     test_store_conformance ROW PLUGIN_DIR
 *
 * ROW is a row of the table below: an engine and a setting of it (the
 * SQLite engine runs plain, with a database that fills up, and on a VFS
 * that fails every write when the test says so). A row whose fixture needs
 * something from the environment (a PostgreSQL connection string) exits
 * 77, which CTest counts as skipped, when it is not set.
 *
 * What an engine may decline is in its row, and nowhere else: each case
 * that meets a declined part checks that the engine declines it the way
 * storage.h documents (the operation absent from the table, a documented
 * error, a store that is not durable keeping nothing), says so on stdout
 * ("declined: ..."), and fails when the engine neither passes nor declines
 * that way. An engine's optional operation that is present is always
 * tested, declined or not, so an operation that lands later (account) is
 * exercised from then on without a change here.
 *
 * Every id a case uses carries a prefix of its own (the run and the case),
 * so that a row whose database outlives the test (a shared PostgreSQL
 * database) sees nothing of other runs. Completions run on the engine's
 * thread, where cmocka cannot fail a test: what breaks a rule there is
 * counted and checked on the test's thread, and every wait is on a
 * condition with a deadline. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "imcore/storage.h"
#include "im_config.h"
#include "im_plugin_host.h"
#include "test_dir.h"

/* ---- the engines, and what each may decline ---- */

/* What an engine may decline, each in the one way storage.h documents. */
enum {
    /* Not durable (ops->durable false): nothing outlives the store, so
     * there is no reopen case; pending gives nothing (nothing is kept for
     * anyone) and acks move nothing; no client_msg_id is kept, so a resend
     * is stored again as a new message. */
    D_NOT_DURABLE = 1u << 0,
    /* history answers IM_EUNSUPPORTED (the memory store keeps no message). */
    D_NO_HISTORY = 1u << 1,
    /* group_change keeps no group: every change completes IM_OK (a JOIN
     * with the conversation's last seq), nothing is refused, load_groups
     * hands out none. */
    D_NO_GROUPS = 1u << 2,
    /* Completes inside the call, under a lock per conversation: the
     * completions of different conversations may run at once on different
     * threads; those of one conversation run one at a time, in seq order. */
    D_PER_CONVERSATION_ORDER = 1u << 3,
    /* Optional operations that may be absent from the table (the server
     * falls back as storage.h says for each). */
    D_ABSENT_HISTORY_READ = 1u << 8,
    D_ABSENT_PENDING_READ = 1u << 9,
    D_ABSENT_ACCOUNT = 1u << 10,
    D_ABSENT_GROUP_CHANGE = 1u << 11,
    D_ABSENT_KV = 1u << 12,
};

/* How a row makes its storage fail, for the failed-commit case. */
typedef enum fault_kind {
    FAULT_NONE = 0,
    FAULT_FULL,                   /* max_page_count: filled until a write meets IM_ENOSPC */
    FAULT_VFS,                    /* SQLite's default VFS fails every write while armed */
} fault_kind;

typedef struct engine_row {
    const char *row;              /* argv[1], and the CTest name's tail */
    const char *engine;           /* storage.engine */
    const char *storage_yaml;     /* more keys of the storage section */
    const char *options_yaml;     /* keys of storage.options */
    const char *env;              /* an environment variable the row needs */
    const char *env_yaml;         /* lines of the storage section that take its value:
                                   * one %s, given the value as a quoted YAML scalar */
    unsigned declines;            /* D_* */
    fault_kind fault;
    bool at_once;                 /* completes every request inside the call: no queue */
    unsigned max_queue;           /* the queue bound its options set; 0: none set */
} engine_row;

/* Both durable engines take the same queue bound (storage.options.max_queue). */
#define SQLITE_ROW_OPTIONS "    max_queue: 16\n"
#define SQLITE_DECLINES 0u

static const engine_row engine_rows[] = {
    { .row = "memory", .engine = "memory",
      .declines = D_NOT_DURABLE | D_NO_HISTORY | D_NO_GROUPS | D_PER_CONVERSATION_ORDER |
                  D_ABSENT_HISTORY_READ | D_ABSENT_PENDING_READ,
      .at_once = true },
    { .row = "sqlite", .engine = "sqlite", .options_yaml = SQLITE_ROW_OPTIONS,
      .declines = SQLITE_DECLINES, .max_queue = 16 },
    /* About 640 kB: every case fits, and the failed-commit case fills it. */
    { .row = "sqlite_full", .engine = "sqlite", .storage_yaml = "  max_page_count: 160\n",
      .options_yaml = SQLITE_ROW_OPTIONS, .declines = SQLITE_DECLINES, .fault = FAULT_FULL,
      .max_queue = 16 },
    { .row = "sqlite_vfs", .engine = "sqlite", .options_yaml = SQLITE_ROW_OPTIONS,
      .declines = SQLITE_DECLINES, .fault = FAULT_VFS, .max_queue = 16 },
    /* plugins/examples/storage_recent.c, built as the conformance suite's
     * plugin (tests/store_conformance/CMakeLists.txt). */
    { .row = "recent", .engine = "recent",
      .declines = D_NOT_DURABLE | D_NO_GROUPS | D_ABSENT_HISTORY_READ |
                  D_ABSENT_PENDING_READ | D_ABSENT_ACCOUNT, .at_once = true },
    /* storage_postgres.so, against the database IMCORE_PG_CONNINFO names
     * (a libpq connection string: tests/integration/pg_harness.py --run
     * starts a server and sets it), as storage.postgres.conninfo; skipped
     * without it. Ids carry a prefix per run and case, so the database may
     * be shared and is never emptied. */
    { .row = "postgres", .engine = "postgres", .env = "IMCORE_PG_CONNINFO",
      .env_yaml = "  postgres:\n    conninfo: %s\n", .options_yaml = SQLITE_ROW_OPTIONS,
      .max_queue = 16 },
};

static const engine_row *E;       /* the row under test */
static const char *plugin_dir;

static bool declines(unsigned d)
{
    return (E->declines & d) != 0;
}

static void declined(const char *what)
{
    print_message("declined (%s): %s\n", E->row, what);
}

/* An optional operation is there, or absent as the row allows; absent
 * without the row's leave fails. */
static bool has_or_declined(bool has, const char *op, unsigned bit)
{
    if (has)
        return true;
    if (!declines(bit))
        fail_msg("%s: %s is absent, and its row does not decline it", E->row, op);
    print_message("declined (%s): %s is absent from the table\n", E->row, op);
    return false;
}

#define HAS_OR_DECLINED(s, member, bit) has_or_declined(IM_STORE_HAS(s, member), #member, bit)

/* ---- the failing VFS (row sqlite_vfs) ---- */

/* Wraps SQLite's default VFS in this process, which the engine's library
 * shares (libsqlite3 is one shared library): while fault_armed is set,
 * every write, sync and truncate of every file fails with an I/O error. */
static sqlite3_vfs *real_vfs;
static atomic_bool fault_armed;

typedef struct fault_file {
    sqlite3_file base;
    sqlite3_file *real;
} fault_file;

#define REAL(f) (((fault_file *)(f))->real)

static int ff_close(sqlite3_file *f)
{
    return REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
}
static int ff_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}
static int ff_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    if (atomic_load(&fault_armed))
        return SQLITE_IOERR_WRITE;
    return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}
static int ff_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    if (atomic_load(&fault_armed))
        return SQLITE_IOERR_TRUNCATE;
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int ff_sync(sqlite3_file *f, int flags)
{
    if (atomic_load(&fault_armed))
        return SQLITE_IOERR_FSYNC;
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
    .iVersion = 2, .xClose = ff_close, .xRead = ff_read, .xWrite = ff_write,
    .xTruncate = ff_truncate, .xSync = ff_sync, .xFileSize = ff_size, .xLock = ff_lock,
    .xUnlock = ff_unlock, .xCheckReservedLock = ff_check_lock, .xFileControl = ff_control,
    .xSectorSize = ff_sector, .xDeviceCharacteristics = ff_chars, .xShmMap = ff_shm_map,
    .xShmLock = ff_shm_lock, .xShmBarrier = ff_shm_barrier, .xShmUnmap = ff_shm_unmap,
};

static int fv_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    (void)vfs;
    fault_file *ff = (fault_file *)f;
    ff->real = (sqlite3_file *)(ff + 1);
    memset(ff->real, 0, (size_t)real_vfs->szOsFile);
    int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out);
    ff->base.pMethods = rc == SQLITE_OK ? &fault_io : NULL;
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
    .iVersion = 2, .mxPathname = 512, .zName = "imcore-conformance-fault",
    .xOpen = fv_open, .xDelete = fv_delete, .xAccess = fv_access, .xFullPathname = fv_full,
    .xRandomness = fv_random, .xSleep = fv_sleep, .xCurrentTime = fv_time,
    .xGetLastError = fv_last_error, .xCurrentTimeInt64 = fv_time64,
};

static int fault_vfs_install(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    if (!real_vfs)
        return -1;
    fault_vfs.szOsFile = (int)sizeof(fault_file) + real_vfs->szOsFile;
    fault_vfs.mxPathname = real_vfs->mxPathname;
    return sqlite3_vfs_register(&fault_vfs, 1) == SQLITE_OK ? 0 : -1;
}

/* ---- completions ---- */

/* A message as a completion or a read handed it out, copied. */
typedef struct got_msg {
    im_message_kind kind;
    char sender[IM_USER_ID_MAX + 1], target[IM_USER_ID_MAX + 1];
    char cmid[IM_CLIENT_MSG_ID_MAX + 1];
    char conv[IM_CONVERSATION_ID_MAX + 1];
    char body[64];                /* the body's first bytes, NUL-terminated */
    size_t body_len;
    uint64_t seq, time_ms;
} got_msg;

/* One request of a case and what came back. */
typedef struct req {
    int calls;                    /* completions: exactly one, when the call returned 0 */
    unsigned long order;          /* when it completed, among every completion */
    int rc;
    uint64_t seq;                 /* append: the stored message's; group change: its seq */
    uint64_t time_ms;
    bool duplicate;
    got_msg *got;                 /* reads: what each handed out, in order */
    size_t ngot, cap;
    size_t stop_after;            /* reads: each returns false after this many (0: never) */
    bool has_rec;                 /* account: a record came */
    char user[IM_USER_ID_MAX + 1], display[IM_DISPLAY_NAME_MAX + 1];
    char secret[IM_STORE_SECRET_MAX + 1];
    bool has_secret;
    uint64_t count;
} req;

static pthread_mutex_t jlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jcond = PTHREAD_COND_INITIALIZER;
static unsigned long completions;
static int broken;                /* completions that broke a rule */
static char broken_why[256];
static atomic_int inside;         /* completions running now */
static atomic_int overlaps;       /* times one started while another ran */

static void conversation_of(const im_message *m, char *out, size_t size)
{
    if (m->kind == IM_MESSAGE_GROUP) {
        snprintf(out, size, "g:%s", m->target);
        return;
    }
    bool first = strcmp(m->sender, m->target) < 0;
    snprintf(out, size, "p:%s:%s", first ? m->sender : m->target,
             first ? m->target : m->sender);
}

static void copy_msg(got_msg *g, const im_message *m)
{
    memset(g, 0, sizeof *g);
    g->kind = m->kind;
    snprintf(g->sender, sizeof g->sender, "%s", m->sender ? m->sender : "");
    snprintf(g->target, sizeof g->target, "%s", m->target ? m->target : "");
    snprintf(g->cmid, sizeof g->cmid, "%s", m->client_msg_id ? m->client_msg_id : "");
    conversation_of(m, g->conv, sizeof g->conv);
    size_t n = m->body_len < sizeof g->body - 1 ? m->body_len : sizeof g->body - 1;
    if (n)
        memcpy(g->body, m->body, n);
    g->body_len = m->body_len;
    g->seq = m->seq;
    g->time_ms = m->server_time_ms;
}

/* Under jlock. */
static void breaks(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void breaks(const char *fmt, ...)
{
    if (broken++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(broken_why, sizeof broken_why, fmt, ap);
        va_end(ap);
    }
}

static void enter(void)
{
    if (atomic_fetch_add(&inside, 1) != 0)
        atomic_fetch_add(&overlaps, 1);
}

static void leave(void)
{
    atomic_fetch_sub(&inside, 1);
}

/* Under jlock: the end of r, which must come once, with a reason when it
 * is a failure. */
static void finish(req *r, int rc, const im_error *err)
{
    if (++r->calls > 1)
        breaks("a request completed %d times", r->calls);
    if (rc != IM_OK && (!err || err->code != rc || !err->msg[0]))
        breaks("a failure (%s) came without its reason", im_strerror(rc));
    r->rc = rc;
    r->order = ++completions;
    pthread_cond_broadcast(&jcond);
}

static void on_append(void *arg, int rc, const im_message *m, bool duplicate,
                      const im_error *err)
{
    enter();
    req *r = arg;
    pthread_mutex_lock(&jlock);
    if (rc == IM_OK && !m)
        breaks("an append succeeded without its message");
    if (rc == IM_OK && m) {
        r->seq = m->seq;
        r->time_ms = m->server_time_ms;
        r->duplicate = duplicate;
        if (m->seq == 0)
            breaks("an append succeeded with seq 0");
    }
    finish(r, rc, err);
    pthread_mutex_unlock(&jlock);
    leave();
}

static void on_done(void *arg, int rc, const im_error *err)
{
    enter();
    pthread_mutex_lock(&jlock);
    finish(arg, rc, err);
    pthread_mutex_unlock(&jlock);
    leave();
}

static void on_group(void *arg, int rc, uint64_t seq, const im_error *err)
{
    enter();
    req *r = arg;
    pthread_mutex_lock(&jlock);
    r->seq = seq;
    finish(r, rc, err);
    pthread_mutex_unlock(&jlock);
    leave();
}

static bool on_msg(void *arg, const im_message *m)
{
    req *r = arg;
    pthread_mutex_lock(&jlock);
    if (r->calls)
        breaks("a read handed out a message after its done");
    if (r->ngot == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        got_msg *g = realloc(r->got, cap * sizeof *g);
        if (!g) {
            breaks("out of memory");
            pthread_mutex_unlock(&jlock);
            return false;
        }
        r->got = g, r->cap = cap;
    }
    copy_msg(&r->got[r->ngot++], m);
    bool more = !r->stop_after || r->ngot < r->stop_after;
    pthread_mutex_unlock(&jlock);
    return more;
}

static void on_account(void *arg, int rc, const im_account_record *rec, const im_error *err)
{
    enter();
    req *r = arg;
    pthread_mutex_lock(&jlock);
    if (rec) {
        r->has_rec = true;
        snprintf(r->user, sizeof r->user, "%s", rec->user ? rec->user : "");
        if (!rec->display_name)
            breaks("an account record with a NULL display_name");
        snprintf(r->display, sizeof r->display, "%s",
                 rec->display_name ? rec->display_name : "");
        r->has_secret = rec->secret != NULL;
        snprintf(r->secret, sizeof r->secret, "%s", rec->secret ? rec->secret : "");
        r->count = rec->count;
    }
    finish(r, rc, err);
    pthread_mutex_unlock(&jlock);
    leave();
}

static void req_free(req *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].got);
        r[i].got = NULL;
        r[i].ngot = r[i].cap = 0;
    }
}

static struct timespec deadline(int seconds)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += seconds;
    return t;
}

/* Waits (at most 30 s) for n requests, each to complete. */
static void wait_reqs(req *r, size_t n)
{
    struct timespec until = deadline(30);
    pthread_mutex_lock(&jlock);
    size_t i = 0;
    int rc = 0;
    while (i < n && rc == 0) {
        if (r[i].calls) {
            i++;
            continue;
        }
        rc = pthread_cond_timedwait(&jcond, &jlock, &until);
    }
    while (i < n && r[i].calls)
        i++;
    int b = broken;
    pthread_mutex_unlock(&jlock);
    if (i < n)
        fail_msg("%s: request %zu of %zu never completed", E->row, i, n);
    if (b)
        fail_msg("%s: %s", E->row, broken_why);
}

#define WAIT(r) wait_reqs(&(r), 1)

/* ---- the store under test ---- */

typedef struct fx {
    char dir[PATH_MAX];
    char config[PATH_MAX + 16];
    im_plugin_host *host;
    im_store *s;
    char prefix[16];              /* every id of the case starts with it */
    uint64_t clock_ms;            /* the server_time_ms the case gives its messages */
} fx;

static fx *F;                     /* the case's, for the helpers */

static void write_config(fx *f)
{
    snprintf(f->config, sizeof f->config, "%s/imcore.yaml", f->dir);
    FILE *out = fopen(f->config, "w");
    if (!out)
        return; /* the load says the file is missing */
    /* accounts.mode open: the suite tests the account operation itself,
     * and password mode is refused at start for an engine without it. */
    fprintf(out, "plugin_dir: %s\naccounts:\n  mode: open\n"
            "storage:\n  engine: %s\n  path: %s/data/imcore.db\n",
            plugin_dir, E->engine, f->dir);
    if (E->storage_yaml)
        fputs(E->storage_yaml, out);
    const char *env = E->env ? getenv(E->env) : NULL;
    if (env && E->env_yaml) {
        /* A single-quoted YAML scalar: a quote is doubled. */
        size_t n = 3;
        for (const char *p = env; *p; p++)
            n += *p == '\'' ? 2 : 1;
        char *quoted = malloc(n), *q = quoted;
        if (quoted) {
            *q++ = '\'';
            for (const char *p = env; *p; p++)
                if ((*q++ = *p) == '\'')
                    *q++ = '\'';
            *q++ = '\'';
            *q = '\0';
            fprintf(out, E->env_yaml, quoted);
            free(quoted);
        }
    }
    if (E->options_yaml)
        fprintf(out, "  options:\n%s", E->options_yaml);
    fclose(out);
}

/* Opens the row's engine as the server does: its config read, the adapter
 * loaded by name, its table checked. */
static int try_open_engine(fx *f, im_error *err)
{
    im_config cfg;
    im_config_defaults(&cfg);
    int rc = im_config_load(f->config, &cfg, err);
    if (rc == IM_OK)
        rc = im_config_validate(&cfg, err);
    if (rc == IM_OK)
        rc = im_plugin_host_load_storage(&cfg, &f->host, err);
    if (rc == IM_OK)
        rc = im_plugin_host_open_storage(f->host, &f->s, err);
    if (rc != IM_OK) {
        im_plugin_host_free(f->host);
        f->host = NULL;
    }
    return rc;
}

static void open_engine(fx *f)
{
    im_error err = { 0 };
    if (try_open_engine(f, &err) != IM_OK)
        fail_msg("%s: %s", E->row, err.msg);
    assert_non_null(f->s);
}

static void close_engine(fx *f)
{
    im_store_destroy(f->s);
    f->s = NULL;
    im_plugin_host_free(f->host);
    f->host = NULL;
}

static void reopen(fx *f)
{
    close_engine(f);
    open_engine(f);
}

static int setup(void **state)
{
    static unsigned cases;
    fx *f = calloc(1, sizeof *f);
    if (!f || test_dir_make(f->dir, "conformance") != 0)
        return -1;
    /* The run (pid and time) and the case: unique across runs on one database. */
    unsigned run = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL);
    snprintf(f->prefix, sizeof f->prefix, "c%05x%02u", run & 0xfffffu, ++cases % 100);
    f->clock_ms = 1700000000000ull;
    atomic_store(&fault_armed, false);
    atomic_store(&overlaps, 0);
    pthread_mutex_lock(&jlock);
    broken = 0;
    broken_why[0] = '\0';
    pthread_mutex_unlock(&jlock);
    F = f;
    write_config(f);
    im_error err = { 0 };
    if (try_open_engine(f, &err) != IM_OK) {
        print_error("%s: cannot open the engine: %s\n", E->row, err.msg);
        test_dir_remove(f->dir);
        free(f);
        F = NULL;
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    atomic_store(&fault_armed, false);
    close_engine(f);
    test_dir_remove(f->dir);
    free(f);
    F = NULL;
    return 0;
}

/* An id of the case: prefix_name. A ring of buffers, so that a call may
 * use several at once. */
static const char *id(const char *name)
{
    static char ring[64][IM_USER_ID_MAX + 1];
    static unsigned next;
    char *out = ring[next++ % 64];
    int n = snprintf(out, IM_USER_ID_MAX + 1, "%s_%s", F->prefix, name);
    assert_true(n > 0 && n <= IM_USER_ID_MAX);
    return out;
}

static const char *conv_p(const char *a, const char *b)
{
    static char ring[16][IM_CONVERSATION_ID_MAX + 1];
    static unsigned next;
    char *out = ring[next++ % 16];
    bool first = strcmp(a, b) < 0;
    snprintf(out, IM_CONVERSATION_ID_MAX + 1, "p:%s:%s", first ? a : b, first ? b : a);
    return out;
}

static const char *conv_g(const char *g)
{
    static char ring[16][IM_CONVERSATION_ID_MAX + 1];
    static unsigned next;
    char *out = ring[next++ % 16];
    snprintf(out, IM_CONVERSATION_ID_MAX + 1, "g:%s", g);
    return out;
}

/* ---- requests ---- */

static int try_append_len(req *r, im_message_kind kind, const char *from, const char *to,
                          const char *cmid, const void *body, size_t len, im_error *err)
{
    im_message m = { .kind = kind, .sender = from, .target = to, .client_msg_id = cmid,
                     .body = body, .body_len = len, .server_time_ms = ++F->clock_ms };
    return F->s->ops->append(F->s, &m, on_append, r, err);
}

static void append_len(req *r, im_message_kind kind, const char *from, const char *to,
                       const char *cmid, const void *body, size_t len)
{
    im_error err = { 0 };
    int rc = try_append_len(r, kind, from, to, cmid, body, len, &err);
    if (rc != IM_OK)
        fail_msg("%s: append %s -> %s: %s", E->row, from, to, err.msg);
}

static unsigned cmid_counter;

/* A message with a fresh client_msg_id. */
static void say(req *r, im_message_kind kind, const char *from, const char *to,
                const char *body)
{
    char cmid[32];
    snprintf(cmid, sizeof cmid, "m%u", ++cmid_counter);
    append_len(r, kind, from, to, cmid, body, strlen(body));
}

static void pending(req *r, const char *user, size_t limit, size_t max_bytes)
{
    im_error err = { 0 };
    int rc = max_bytes || IM_STORE_HAS(F->s, pending_read)
                 ? F->s->ops->pending_read(F->s, user, limit, max_bytes, on_msg, on_done, r,
                                           &err)
                 : F->s->ops->pending(F->s, user, limit, on_msg, on_done, r, &err);
    if (rc != IM_OK)
        fail_msg("%s: pending %s: %s", E->row, user, err.msg);
}

static void history_read(req *r, const char *conv, uint64_t before, size_t limit,
                         size_t max_bytes)
{
    im_error err = { 0 };
    int rc = F->s->ops->history_read(F->s, conv, before, limit, max_bytes, on_msg, on_done, r,
                                     &err);
    if (rc != IM_OK)
        fail_msg("%s: history_read %s: %s", E->row, conv, err.msg);
}

/* The synchronous history, into r (no completion: r->rc is its result). */
static int history(req *r, const char *conv, uint64_t before, size_t limit)
{
    im_error err = { 0 };
    int rc = F->s->ops->history(F->s, conv, before, limit, on_msg, r, &err);
    if (rc != IM_OK && err.code != rc)
        fail_msg("%s: history failed (%s) without its reason", E->row, im_strerror(rc));
    return rc;
}

static void barrier(req *r)
{
    im_error err = { 0 };
    if (F->s->ops->barrier(F->s, on_done, r, &err) != IM_OK)
        fail_msg("%s: barrier: %s", E->row, err.msg);
}

/* Waits for everything asked before. */
static void sync_store(void)
{
    req r = { 0 };
    barrier(&r);
    WAIT(r);
    assert_int_equal(r.rc, IM_OK);
}

static void ack(const char *user, const char *conv, uint64_t seq)
{
    im_error err = { 0 };
    if (F->s->ops->ack(F->s, user, conv, seq, &err) != IM_OK)
        fail_msg("%s: ack: %s", E->row, err.msg);
}

static void change(req *r, im_group_change_kind kind, const char *group, const char *user,
                   uint32_t max_members, uint32_t flags)
{
    im_group_change c = { .size = sizeof c, .kind = kind, .group = group, .user = user,
                          .max_members = max_members, .flags = flags };
    im_error err = { 0 };
    if (F->s->ops->group_change(F->s, &c, on_group, r, &err) != IM_OK)
        fail_msg("%s: group change %d of %s: %s", E->row, (int)kind, group, err.msg);
}

/* A change, waited for: its rc. */
static int change_rc(im_group_change_kind kind, const char *group, const char *user,
                     uint32_t max_members, uint32_t flags, uint64_t *seq)
{
    req r = { 0 };
    change(&r, kind, group, user, max_members, flags);
    WAIT(r);
    if (seq)
        *seq = r.seq;
    return r.rc;
}

static int kv_put_rc(const char *ns, const char *key, const void *value, size_t len, req *r)
{
    im_error err = { 0 };
    int rc = F->s->ops->kv_put(F->s, ns, key, value, len, r ? on_done : NULL, r, &err);
    if (rc != IM_OK && err.code != rc)
        fail_msg("%s: kv_put refused (%s) without its reason", E->row, im_strerror(rc));
    return rc;
}

/* ---- assertions about what came back ---- */

static void expect_seqs(const req *r, const uint64_t *seqs, size_t n)
{
    if (r->ngot != n)
        fail_msg("%s: a read gave %zu messages, expected %zu", E->row, r->ngot, n);
    for (size_t i = 0; i < n; i++)
        if (r->got[i].seq != seqs[i])
            fail_msg("%s: message %zu of a read has seq %llu, expected %llu", E->row, i,
                     (unsigned long long)r->got[i].seq, (unsigned long long)seqs[i]);
}

#define EXPECT_SEQS(r, ...)                                                                \
    do {                                                                                   \
        const uint64_t want_[] = { __VA_ARGS__ };                                          \
        expect_seqs(&(r), want_, sizeof want_ / sizeof *want_);                            \
    } while (0)

/* The pending messages are in conversation (byte order) then seq order. */
static void expect_pending_order(const req *r)
{
    for (size_t i = 1; i < r->ngot; i++) {
        int c = strcmp(r->got[i - 1].conv, r->got[i].conv);
        if (c > 0 || (c == 0 && r->got[i - 1].seq >= r->got[i].seq))
            fail_msg("%s: pending out of order at %zu: %s/%llu then %s/%llu", E->row, i,
                     r->got[i - 1].conv, (unsigned long long)r->got[i - 1].seq,
                     r->got[i].conv, (unsigned long long)r->got[i].seq);
    }
}

static size_t count_conv(const req *r, const char *conv)
{
    size_t n = 0;
    for (size_t i = 0; i < r->ngot; i++)
        n += strcmp(r->got[i].conv, conv) == 0;
    return n;
}

/* ---- cases: order ---- */

/* Completions run in the order the requests were made, whatever their
 * kind, and a barrier's after everything before it. */
static void test_completion_order(void **state)
{
    (void)state;
    const char *a = id("a"), *b = id("b"), *g = id("g");
    req r[9] = { 0 };
    bool groups = IM_STORE_HAS(F->s, group_change);
    if (groups)
        change(&r[0], IM_GROUP_CHANGE_CREATE, g, a, 10, 0);
    else
        barrier(&r[0]);
    say(&r[1], IM_MESSAGE_PRIVATE, a, b, "one");
    pending(&r[2], b, 100, 0);
    say(&r[3], IM_MESSAGE_GROUP, a, g, "two");
    barrier(&r[4]);
    say(&r[5], IM_MESSAGE_PRIVATE, b, a, "three");
    if (IM_STORE_HAS(F->s, kv_put))
        assert_int_equal(kv_put_rc(id("ns"), "k", "v", 1, &r[6]), IM_OK);
    else
        barrier(&r[6]);
    say(&r[7], IM_MESSAGE_GROUP, a, g, "four");
    barrier(&r[8]);
    wait_reqs(r, 9);
    for (int i = 0; i < 9; i++)
        assert_int_equal(r[i].rc, IM_OK);
    for (int i = 1; i < 9; i++)
        if (r[i].order <= r[i - 1].order)
            fail_msg("%s: request %d completed before request %d", E->row, i, i - 1);
    /* Seqs per conversation: 1, 2 in p:a:b; 1, 2 in g. */
    assert_int_equal(r[1].seq, 1);
    assert_int_equal(r[5].seq, 2);
    assert_int_equal(r[3].seq, 1);
    assert_int_equal(r[7].seq, 2);
    if (!declines(D_PER_CONVERSATION_ORDER))
        assert_int_equal(atomic_load(&overlaps), 0);
    req_free(r, 9);
}

enum { THREADS = 4, PER_THREAD = 60 };

typedef struct worker {
    int n;
    const char *me, *peer, *group;
    req r[PER_THREAD * 3];
    int refused;                  /* calls refused otherwise than IM_EBUSY */
} worker;

static unsigned long completions_now(void)
{
    pthread_mutex_lock(&jlock);
    unsigned long n = completions;
    pthread_mutex_unlock(&jlock);
    return n;
}

/* A call refused with IM_EBUSY is asked again once a completion ran after
 * seen, the count before the call: the queue was full then, so one will. */
static int busy_wait(unsigned long seen)
{
    pthread_mutex_lock(&jlock);
    struct timespec until = deadline(30);
    int rc = 0;
    while (completions == seen && rc == 0)
        rc = pthread_cond_timedwait(&jcond, &jlock, &until);
    pthread_mutex_unlock(&jlock);
    return rc;
}

/* Each round: a private message, a group message, then a pending read
 * (even rounds) or a barrier (odd ones): slots 3i, 3i+1, 3i+2. */
static void *work(void *arg)
{
    worker *w = arg;
    im_error err;
    for (int i = 0; i < PER_THREAD; i++) {
        char body[32], cmid[32];
        snprintf(body, sizeof body, "%s %d", w->me, i);
        for (int k = 0; k < 3; k++) {
            req *r = &w->r[i * 3 + k];
            snprintf(cmid, sizeof cmid, "t%d-%d-%d", w->n, i, k);
            im_message m = { .kind = k ? IM_MESSAGE_GROUP : IM_MESSAGE_PRIVATE,
                             .sender = w->me, .target = k ? w->group : w->peer,
                             .client_msg_id = cmid, .body = (const uint8_t *)body,
                             .body_len = strlen(body), .server_time_ms = 1700000000000ull };
            int rc;
            unsigned long seen = completions_now();
            for (;;) {
                if (k < 2)
                    rc = F->s->ops->append(F->s, &m, on_append, r, &err);
                else if (i % 2 == 0)
                    rc = F->s->ops->pending(F->s, w->me, 4, on_msg, on_done, r, &err);
                else
                    rc = F->s->ops->barrier(F->s, on_done, r, &err);
                if (rc != IM_EBUSY || busy_wait(seen) != 0)
                    break;
                seen = completions_now();
            }
            if (rc != IM_OK) {
                w->refused++;
                return NULL;
            }
        }
    }
    return NULL;
}

static int by_seq(const void *a, const void *b)
{
    const req *x = *(const req *const *)a, *y = *(const req *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Several threads append at once, each to its own private conversation
 * and all to one group, with pending reads and barriers between: seqs are
 * gap-free and monotonic per conversation, each thread's completions come
 * in its order, and a conversation's in seq order. */
static void test_concurrent_appenders(void **state)
{
    (void)state;
    const char *g = id("g"), *peer = id("peer");
    if (IM_STORE_HAS(F->s, group_change))
        assert_int_equal(change_rc(IM_GROUP_CHANGE_CREATE, g, id("w0"), 10, 0, NULL), IM_OK);
    static worker w[THREADS];
    pthread_t t[THREADS];
    memset(w, 0, sizeof w);
    char names[THREADS][IM_USER_ID_MAX + 1];
    for (int i = 0; i < THREADS; i++) {
        char n[8];
        snprintf(n, sizeof n, "w%d", i);
        snprintf(names[i], sizeof names[i], "%s", id(n));
        w[i] = (worker){ .n = i, .me = names[i], .peer = peer, .group = g };
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    static req *group[THREADS * PER_THREAD];
    size_t ng = 0;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(w[i].refused, 0);
        wait_reqs(w[i].r, PER_THREAD * 3);
        for (int k = 0; k < PER_THREAD * 3; k++) {
            assert_int_equal(w[i].r[k].rc, IM_OK);
            if (k && w[i].r[k].order <= w[i].r[k - 1].order)
                fail_msg("%s: thread %d: request %d completed before %d", E->row, i, k, k - 1);
        }
        /* Its private conversation: 1..PER_THREAD in its order. */
        for (int k = 0; k < PER_THREAD; k++)
            assert_int_equal(w[i].r[k * 3].seq, (uint64_t)k + 1);
        for (int k = 0; k < PER_THREAD; k++)
            group[ng++] = &w[i].r[k * 3 + 1];
        req_free(w[i].r, PER_THREAD * 3);
    }
    /* The group: 1..n, each once, completed in seq order. */
    qsort(group, ng, sizeof *group, by_seq);
    for (size_t i = 0; i < ng; i++) {
        assert_int_equal(group[i]->seq, i + 1);
        if (i && group[i]->order <= group[i - 1]->order)
            fail_msg("%s: group seq %zu completed before seq %zu", E->row, i + 1, i);
    }
    if (declines(D_PER_CONVERSATION_ORDER))
        declined("completions of different conversations may run at once");
    else
        assert_int_equal(atomic_load(&overlaps), 0);
}

/* ---- cases: dedupe ---- */

static void test_dedupe(void **state)
{
    (void)state;
    const char *a = id("a"), *b = id("b"), *c = id("c");
    req r[6] = { 0 };
    append_len(&r[0], IM_MESSAGE_PRIVATE, a, b, "x1", "hello", 5);
    WAIT(r[0]);
    assert_int_equal(r[0].rc, IM_OK);
    assert_false(r[0].duplicate);
    uint64_t seq = r[0].seq, when = r[0].time_ms;
    /* The same message again (a later time, which the store must not take). */
    append_len(&r[1], IM_MESSAGE_PRIVATE, a, b, "x1", "hello", 5);
    /* The same id for another body, and for another receiver. */
    append_len(&r[2], IM_MESSAGE_PRIVATE, a, b, "x1", "other", 5);
    append_len(&r[3], IM_MESSAGE_PRIVATE, a, c, "x1", "hello", 5);
    /* Another sender's x1 is its own. */
    append_len(&r[4], IM_MESSAGE_PRIVATE, c, b, "x1", "hello", 5);
    append_len(&r[5], IM_MESSAGE_PRIVATE, a, b, "x2", "next", 4);
    wait_reqs(r, 6);
    assert_int_equal(r[4].rc, IM_OK);
    assert_int_equal(r[4].seq, 1);
    if (F->s->ops->durable) {
        assert_int_equal(r[1].rc, IM_OK);
        assert_true(r[1].duplicate);
        assert_int_equal(r[1].seq, seq);
        assert_int_equal(r[1].time_ms, when);
        assert_int_equal(r[2].rc, IM_EIDREUSED);
        assert_int_equal(r[3].rc, IM_EIDREUSED);
        /* Nothing stored, no seq spent. */
        assert_int_equal(r[5].rc, IM_OK);
        assert_int_equal(r[5].seq, seq + 1);
        req h = { 0 };
        if (IM_STORE_HAS(F->s, history_read)) {
            history_read(&h, conv_p(a, b), 0, 10, 0);
            WAIT(h);
        } else {
            assert_int_equal(history(&h, conv_p(a, b), 0, 10), IM_OK);
        }
        assert_int_equal(h.ngot, 2);
        assert_string_equal(h.got[0].body, "hello");
        assert_string_equal(h.got[0].cmid, "x1");
        assert_int_equal(h.got[0].time_ms, when);
        assert_string_equal(h.got[1].body, "next");
        req_free(&h, 1);
    } else {
        assert_true(declines(D_NOT_DURABLE));
        declined("not durable: keeps no client_msg_id, stores every message");
        for (int i = 1; i <= 3; i++) {
            assert_int_equal(r[i].rc, IM_OK);
            assert_false(r[i].duplicate);
        }
        assert_int_equal(r[1].seq, seq + 1);
        assert_int_equal(r[2].seq, seq + 2);
        assert_int_equal(r[3].seq, 1);
        assert_int_equal(r[5].seq, seq + 3);
    }
}

/* The same for group messages: the id names the kind and the target too. */
static void test_dedupe_group(void **state)
{
    (void)state;
    const char *a = id("a"), *g = id("g"), *g2 = id("g2");
    if (IM_STORE_HAS(F->s, group_change)) {
        assert_int_equal(change_rc(IM_GROUP_CHANGE_CREATE, g, a, 10, 0, NULL), IM_OK);
        assert_int_equal(change_rc(IM_GROUP_CHANGE_CREATE, g2, a, 10, 0, NULL), IM_OK);
    }
    req r[5] = { 0 };
    append_len(&r[0], IM_MESSAGE_GROUP, a, g, "gx", "hi", 2);
    append_len(&r[1], IM_MESSAGE_GROUP, a, g, "gx", "hi", 2);
    append_len(&r[2], IM_MESSAGE_GROUP, a, g2, "gx", "hi", 2);  /* another target */
    append_len(&r[3], IM_MESSAGE_PRIVATE, a, g, "gx", "hi", 2); /* another kind */
    append_len(&r[4], IM_MESSAGE_GROUP, a, g, "gy", "next", 4);
    wait_reqs(r, 5);
    assert_int_equal(r[0].rc, IM_OK);
    assert_int_equal(r[0].seq, 1);
    if (F->s->ops->durable) {
        assert_int_equal(r[1].rc, IM_OK);
        assert_true(r[1].duplicate);
        assert_int_equal(r[1].seq, 1);
        assert_int_equal(r[2].rc, IM_EIDREUSED);
        assert_int_equal(r[3].rc, IM_EIDREUSED);
        assert_int_equal(r[4].seq, 2);
    } else {
        declined("not durable: keeps no client_msg_id, stores every message");
        assert_false(r[1].duplicate);
        assert_int_equal(r[1].seq, 2);
        assert_int_equal(r[2].seq, 1);
        assert_int_equal(r[3].rc, IM_OK);
        assert_int_equal(r[4].seq, 3);
    }
}

/* ---- cases: pending, acks, group cursors ---- */

/* A store that declines pending gives nothing, and says done. */
static bool pending_declined(const char *user)
{
    if (F->s->ops->durable)
        return false;
    assert_true(declines(D_NOT_DURABLE));
    req p = { 0 };
    pending(&p, user, 100, 0);
    WAIT(p);
    assert_int_equal(p.rc, IM_OK);
    assert_int_equal(p.ngot, 0);
    declined("not durable: nothing is pending for anyone");
    return true;
}

static void test_pending_and_ack(void **state)
{
    (void)state;
    const char *a = id("a"), *b = id("b"), *c = id("c"), *g = id("g");
    bool groups = IM_STORE_HAS(F->s, group_change);
    if (groups) {
        assert_int_equal(change_rc(IM_GROUP_CHANGE_CREATE, g, a, 10, 0, NULL), IM_OK);
        assert_int_equal(change_rc(IM_GROUP_CHANGE_JOIN, g, b, 0, 0, NULL), IM_OK);
    }
    req r[7] = { 0 };
    say(&r[0], IM_MESSAGE_PRIVATE, a, b, "one-67890");   /* p:a:b 1 */
    say(&r[1], IM_MESSAGE_PRIVATE, c, b, "two-67890");   /* p:b:c 1 */
    say(&r[2], IM_MESSAGE_PRIVATE, a, b, "three-890");   /* p:a:b 2 */
    say(&r[3], IM_MESSAGE_GROUP, a, g, "four-67890");    /* g 1 */
    say(&r[4], IM_MESSAGE_GROUP, b, g, "five-67890");    /* g 2: b's own */
    say(&r[5], IM_MESSAGE_GROUP, a, g, "six-567890");    /* g 3 */
    say(&r[6], IM_MESSAGE_PRIVATE, b, a, "seven-890");   /* p:a:b 3: to a */
    wait_reqs(r, 7);
    for (int i = 0; i < 7; i++)
        assert_int_equal(r[i].rc, IM_OK);
    if (pending_declined(b))
        return;
    /* Everything unacked for b, in conversation then seq order: the group
     * (others' messages only), then p:a:b, then p:b:c. */
    req p = { 0 };
    pending(&p, b, 100, 0);
    WAIT(p);
    assert_int_equal(p.rc, IM_OK);
    expect_pending_order(&p);
    size_t want = groups ? 5 : 3;
    assert_int_equal(p.ngot, want);
    assert_int_equal(count_conv(&p, conv_p(a, b)), 2);
    assert_int_equal(count_conv(&p, conv_p(b, c)), 1);
    for (size_t i = 0; i < p.ngot; i++)
        assert_string_not_equal(p.got[i].sender, b);
    if (groups) {
        assert_string_equal(p.got[0].conv, conv_g(g));
        EXPECT_SEQS(p, 1, 3, 1, 2, 1);
    }
    req_free(&p, 1);

    /* limit, then a byte budget: stops after the body that reaches it. */
    req l = { 0 };
    pending(&l, b, 2, 0);
    WAIT(l);
    assert_int_equal(l.ngot, 2);
    req_free(&l, 1);
    if (HAS_OR_DECLINED(F->s, pending_read, D_ABSENT_PENDING_READ)) {
        req by[3] = { 0 };
        pending(&by[0], b, 100, 10);  /* 10 bytes: the first body reaches it */
        pending(&by[1], b, 100, 11);  /* the second reaches it */
        pending(&by[2], b, 1, 1000);  /* limit first */
        wait_reqs(by, 3);
        assert_int_equal(by[0].ngot, 1);
        assert_int_equal(by[1].ngot, 2);
        assert_int_equal(by[2].ngot, 1);
        req_free(by, 3);
    }

    /* Acks are cumulative, and applied before a later read. */
    ack(b, conv_p(a, b), 1);
    ack(b, conv_p(b, c), 1);
    req q = { 0 };
    pending(&q, b, 100, 0);
    WAIT(q);
    assert_int_equal(q.ngot, groups ? 3 : 1);
    assert_int_equal(count_conv(&q, conv_p(a, b)), 1);
    assert_int_equal(count_conv(&q, conv_p(b, c)), 0);
    req_free(&q, 1);
    /* An older ack moves nothing back; a later one takes the rest. */
    ack(b, conv_p(a, b), 3);
    ack(b, conv_p(a, b), 1);
    if (groups)
        ack(b, conv_g(g), 3);
    req e = { 0 };
    pending(&e, b, 100, 0);
    WAIT(e);
    assert_int_equal(e.ngot, 0);
    req_free(&e, 1);
    /* a's own: b's private message and the group's. */
    req pa = { 0 };
    pending(&pa, a, 100, 0);
    WAIT(pa);
    expect_pending_order(&pa);
    assert_int_equal(count_conv(&pa, conv_p(a, b)), 1);
    if (groups)
        assert_int_equal(count_conv(&pa, conv_g(g)), 1);
    req_free(&pa, 1);
}

/* A member's pending starts after its join: what was said before is not
 * pending for it (with or without shared history, which is for history
 * reads, judged by the server from the JOIN's seq). */
static void test_group_cursors(void **state)
{
    (void)state;
    if (!HAS_OR_DECLINED(F->s, group_change, D_ABSENT_GROUP_CHANGE))
        return;
    const char *a = id("a"), *b = id("b"), *c = id("c"), *g = id("g"), *h = id("h");
    assert_int_equal(change_rc(IM_GROUP_CHANGE_CREATE, g, a, 10, 0, NULL), IM_OK);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_CREATE, h, a, 10,
                               IM_STORE_GROUP_SHARE_HISTORY, NULL), IM_OK);
    req r[4] = { 0 };
    say(&r[0], IM_MESSAGE_GROUP, a, g, "before");
    say(&r[1], IM_MESSAGE_GROUP, a, h, "before");
    req j[2] = { 0 };
    change(&j[0], IM_GROUP_CHANGE_JOIN, g, b, 0, 0);
    change(&j[1], IM_GROUP_CHANGE_JOIN, h, b, 0, 0);
    say(&r[2], IM_MESSAGE_GROUP, a, g, "after");
    say(&r[3], IM_MESSAGE_GROUP, a, h, "after");
    wait_reqs(r, 4);
    wait_reqs(j, 2);
    /* A JOIN's seq: what was said before it. */
    assert_int_equal(j[0].seq, 1);
    assert_int_equal(j[1].seq, 1);
    if (pending_declined(b))
        return;
    req p = { 0 };
    pending(&p, b, 100, 0);
    WAIT(p);
    expect_pending_order(&p);
    assert_int_equal(p.ngot, 2);
    assert_string_equal(p.got[0].body, "after");
    assert_string_equal(p.got[1].body, "after");
    req_free(&p, 1);
    /* c, who never joined, has nothing. */
    req pc = { 0 };
    pending(&pc, c, 100, 0);
    WAIT(pc);
    assert_int_equal(pc.ngot, 0);
    req_free(&pc, 1);
}

/* ---- cases: groups ---- */

typedef struct groups_seen {
    int n;
    char owner[IM_USER_ID_MAX + 1];
    char members[8][IM_USER_ID_MAX + 1];
    uint64_t since[8];
    size_t nmembers, ninvited;
    uint32_t flags, max;
    const char *want;
} groups_seen;

static int see_group(void *arg, const im_group_record *g)
{
    groups_seen *gs = arg;
    if (strncmp(g->id, F->prefix, strlen(F->prefix)) != 0)
        return 0; /* another case's, or another run's */
    gs->n++;
    if (strcmp(g->id, gs->want) != 0)
        return 0;
    snprintf(gs->owner, sizeof gs->owner, "%s", g->owner ? g->owner : g->members[0]);
    gs->nmembers = g->nmembers;
    for (size_t i = 0; i < g->nmembers && i < 8; i++) {
        snprintf(gs->members[i], sizeof gs->members[i], "%s", g->members[i]);
        gs->since[i] = g->since ? g->since[i] : 0;
    }
    gs->ninvited = g->ninvited;
    gs->flags = g->flags;
    gs->max = g->max_members;
    return 0;
}

static groups_seen load_groups(const char *want)
{
    groups_seen gs = { .want = want };
    im_error err = { 0 };
    int rc = F->s->ops->load_groups(F->s, see_group, &gs, &err);
    if (rc != IM_OK)
        fail_msg("%s: load_groups: %s", E->row, err.msg);
    return gs;
}

static void test_group_change(void **state)
{
    (void)state;
    if (!HAS_OR_DECLINED(F->s, group_change, D_ABSENT_GROUP_CHANGE))
        return;
    const char *a = id("a"), *b = id("b"), *c = id("c"), *d = id("d");
    const char *g = id("g"), *pg = id("pg"), *none = id("none");
    uint64_t seq = 99;
    assert_int_equal(change_rc(IM_GROUP_CHANGE_CREATE, g, a, 3, 0, &seq), IM_OK);
    assert_int_equal(seq, 0);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_JOIN, g, b, 0, 0, &seq), IM_OK);
    assert_int_equal(seq, 0);
    req r[2] = { 0 };
    say(&r[0], IM_MESSAGE_GROUP, a, g, "one");
    say(&r[1], IM_MESSAGE_GROUP, b, g, "two");
    wait_reqs(r, 2);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_JOIN, g, c, 0, 0, &seq), IM_OK);
    assert_int_equal(seq, 2);

    if (declines(D_NO_GROUPS)) {
        /* Keeps nothing: nothing to contradict. */
        assert_int_equal(change_rc(IM_GROUP_CHANGE_JOIN, none, a, 0, 0, &seq), IM_OK);
        assert_int_equal(change_rc(IM_GROUP_CHANGE_JOIN, g, b, 0, 0, &seq), IM_OK);
        assert_int_equal(seq, 2);
        assert_int_equal(change_rc(IM_GROUP_CHANGE_LEAVE, g, d, 0, 0, NULL), IM_OK);
        groups_seen gs = load_groups(g);
        assert_int_equal(gs.n, 0);
        declined("keeps no groups: no change is refused, load_groups hands out none");
        return;
    }
    /* Refusals: what the store's data contradicts. */
    assert_int_equal(change_rc(IM_GROUP_CHANGE_CREATE, g, d, 3, 0, NULL), IM_EEXIST);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_JOIN, none, a, 0, 0, NULL), IM_ENOGROUP);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_LEAVE, none, a, 0, 0, NULL), IM_ENOGROUP);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_DELETE, none, NULL, 0, 0, NULL), IM_ENOGROUP);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_JOIN, g, b, 0, 0, NULL), IM_EMEMBER);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_LEAVE, g, d, 0, 0, NULL), IM_ENOTMEMBER);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_TRANSFER, g, d, 0, 0, NULL), IM_ENOTMEMBER);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_JOIN, g, d, 0, 0, NULL), IM_EFULL);
    /* A refusal spends no seq and stores nothing. */
    req r3 = { 0 };
    say(&r3, IM_MESSAGE_GROUP, a, g, "three");
    WAIT(r3);
    assert_int_equal(r3.seq, 3);

    groups_seen gs = load_groups(g);
    assert_int_equal(gs.n, 1);
    assert_string_equal(gs.owner, a);
    assert_int_equal(gs.nmembers, 3);
    assert_string_equal(gs.members[0], a);
    assert_string_equal(gs.members[1], b);
    assert_string_equal(gs.members[2], c);
    assert_int_equal(gs.since[2], 2);
    assert_int_equal(gs.max, 3);

    /* Ownership: handed over, then passed on when the owner leaves. */
    assert_int_equal(change_rc(IM_GROUP_CHANGE_TRANSFER, g, c, 0, 0, NULL), IM_OK);
    assert_string_equal(load_groups(g).owner, c);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_LEAVE, g, c, 0, 0, &seq), IM_OK);
    assert_int_equal(seq, 0);
    gs = load_groups(g);
    assert_string_equal(gs.owner, a);
    assert_int_equal(gs.nmembers, 2);

    /* A private group: joined by invitation only. */
    assert_int_equal(change_rc(IM_GROUP_CHANGE_CREATE, pg, a, 10, IM_STORE_GROUP_PRIVATE, NULL),
                     IM_OK);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_JOIN, pg, b, 0, 0, NULL), IM_ENOGROUP);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_INVITE, pg, b, 0, 0, NULL), IM_OK);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_INVITE, pg, c, 0, 0, NULL), IM_OK);
    gs = load_groups(pg);
    assert_int_equal(gs.ninvited, 2);
    assert_true(gs.flags & IM_STORE_GROUP_PRIVATE);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_UNINVITE, pg, c, 0, 0, NULL), IM_OK);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_JOIN, pg, c, 0, 0, NULL), IM_ENOGROUP);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_JOIN, pg, b, 0, 0, NULL), IM_OK);
    gs = load_groups(pg);
    assert_int_equal(gs.nmembers, 2);
    assert_int_equal(gs.ninvited, 0);

    /* DELETE takes the messages along: the same id starts empty. */
    req m = { 0 };
    say(&m, IM_MESSAGE_GROUP, a, pg, "gone with it");
    WAIT(m);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_DELETE, pg, NULL, 0, 0, NULL), IM_OK);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_JOIN, pg, b, 0, 0, NULL), IM_ENOGROUP);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_CREATE, pg, b, 10, 0, NULL), IM_OK);
    req m2 = { 0 };
    say(&m2, IM_MESSAGE_GROUP, b, pg, "new");
    WAIT(m2);
    assert_int_equal(m2.seq, 1);
    /* The last member leaving deletes the group. */
    assert_int_equal(change_rc(IM_GROUP_CHANGE_LEAVE, pg, b, 0, 0, NULL), IM_OK);
    assert_int_equal(change_rc(IM_GROUP_CHANGE_JOIN, pg, b, 0, 0, NULL), IM_ENOGROUP);
    gs = load_groups(pg);
    assert_int_equal(gs.n, 1); /* g only */
}

/* ---- cases: history ---- */

static void test_history(void **state)
{
    (void)state;
    const char *a = id("a"), *b = id("b");
    const char *conv = conv_p(a, b);
    req r[10] = { 0 };
    char body[100];
    for (int i = 0; i < 10; i++) {
        memset(body, 'a' + i, sizeof body);
        char cmid[16];
        snprintf(cmid, sizeof cmid, "h%d", i);
        append_len(&r[i], IM_MESSAGE_PRIVATE, i % 2 ? b : a, i % 2 ? a : b, cmid, body,
                   sizeof body);
    }
    wait_reqs(r, 10);
    req h = { 0 };
    int rc = history(&h, conv, 0, 3);
    if (rc == IM_EUNSUPPORTED && declines(D_NO_HISTORY)) {
        declined("history: IM_EUNSUPPORTED (keeps no message)");
        assert_int_equal(h.ngot, 0);
    } else {
        assert_int_equal(rc, IM_OK);
        EXPECT_SEQS(h, 8, 9, 10);
        assert_int_equal(h.got[0].body_len, 100);
        assert_int_equal(h.got[0].body[0], 'h');
        req_free(&h, 1);
        memset(&h, 0, sizeof h);
        assert_int_equal(history(&h, conv, 8, 3), IM_OK);
        EXPECT_SEQS(h, 5, 6, 7);
        req_free(&h, 1);
        memset(&h, 0, sizeof h);
        assert_int_equal(history(&h, conv, 3, 10), IM_OK);
        EXPECT_SEQS(h, 1, 2);
        req_free(&h, 1);
        memset(&h, 0, sizeof h);
        assert_int_equal(history(&h, conv, 1, 10), IM_OK);
        assert_int_equal(h.ngot, 0);
        /* each returning false stops it. */
        memset(&h, 0, sizeof h);
        h.stop_after = 2;
        assert_int_equal(history(&h, conv, 0, 5), IM_OK);
        EXPECT_SEQS(h, 6, 7);
    }
    req_free(&h, 1);

    if (!HAS_OR_DECLINED(F->s, history_read, D_ABSENT_HISTORY_READ))
        return;
    req hr[5] = { 0 };
    history_read(&hr[0], conv, 0, 3, 0);
    history_read(&hr[1], conv, 8, 3, 0);
    history_read(&hr[2], conv, 0, 10, 250); /* 10, 9, 8: the third reaches 250 */
    history_read(&hr[3], conv, 0, 10, 200); /* 10, 9 */
    hr[4].stop_after = 1;
    history_read(&hr[4], conv, 0, 3, 0);
    wait_reqs(hr, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(hr[i].rc, IM_OK);
    EXPECT_SEQS(hr[0], 8, 9, 10);
    EXPECT_SEQS(hr[1], 5, 6, 7);
    EXPECT_SEQS(hr[2], 8, 9, 10);
    EXPECT_SEQS(hr[3], 9, 10);
    EXPECT_SEQS(hr[4], 8);
    req_free(hr, 5);
    /* A conversation id too long: refused by the call. */
    char longconv[IM_CONVERSATION_ID_MAX + 8];
    memset(longconv, 'x', sizeof longconv - 1);
    longconv[sizeof longconv - 1] = '\0';
    memcpy(longconv, "g:", 2);
    req never = { 0 };
    im_error err = { 0 };
    assert_int_equal(F->s->ops->history_read(F->s, longconv, 0, 10, 0, on_msg, on_done, &never,
                                             &err),
                     IM_EINVAL);
    assert_int_equal(err.code, IM_EINVAL);
    /* Read-your-writes: an append asked for before is read, without
     * waiting for its completion. */
    req w = { 0 }, after = { 0 };
    say(&w, IM_MESSAGE_PRIVATE, a, b, "just now");
    history_read(&after, conv, 0, 1, 0);
    WAIT(after);
    WAIT(w);
    EXPECT_SEQS(after, 11);
    assert_string_equal(after.got[0].body, "just now");
    assert_true(after.order > w.order);
    req_free(&after, 1);
    assert_int_equal(never.calls, 0);
}

/* ---- cases: the key-value map ---- */

typedef struct kv_seen {
    int n;
    char keys[16][IM_STORE_KV_KEY_MAX + 1];
    size_t len[16];
    char first[16][8];
    int stop_after;
    const char *put_ns;           /* each key seen is put again, in this namespace */
    int put_rc;
    int null_values;
} kv_seen;

static bool see_kv(void *arg, const char *key, const void *value, size_t len)
{
    kv_seen *ks = arg;
    /* The port lets fn make requests: a put from inside the read. */
    if (ks->put_ns) {
        im_error err = { 0 };
        int rc = F->s->ops->kv_put(F->s, ks->put_ns, key, value, len, NULL, NULL, &err);
        if (rc != IM_OK)
            ks->put_rc = rc;
    }
    /* A value, even an empty one, is never NULL (NULL is a delete). */
    if (!value)
        ks->null_values++;
    if (ks->n < 16) {
        snprintf(ks->keys[ks->n], sizeof ks->keys[ks->n], "%s", key);
        ks->len[ks->n] = len;
        if (value && len)
            memcpy(ks->first[ks->n], value, len < 8 ? len : 8);
    }
    ks->n++;
    return !ks->stop_after || ks->n < ks->stop_after;
}

static kv_seen kv_each(const char *ns, const char *prefix, int stop_after)
{
    kv_seen ks = { .stop_after = stop_after };
    im_error err = { 0 };
    int n = F->s->ops->kv_each(F->s, ns, prefix, see_kv, &ks, &err);
    if (n < 0)
        fail_msg("%s: kv_each %s: %s", E->row, ns, err.msg);
    assert_int_equal(n, ks.n);
    assert_int_equal(ks.null_values, 0);
    return ks;
}

static void test_kv(void **state)
{
    (void)state;
    if (!HAS_OR_DECLINED(F->s, kv_put, D_ABSENT_KV) ||
        !HAS_OR_DECLINED(F->s, kv_each, D_ABSENT_KV))
        return;
    const char *ns = id("bot"), *other = id("other");
    req r[8] = { 0 };
    assert_int_equal(kv_put_rc(ns, "b", "two", 3, &r[0]), IM_OK);
    assert_int_equal(kv_put_rc(ns, "ab", "three", 5, &r[1]), IM_OK);
    assert_int_equal(kv_put_rc(ns, "a", "one", 3, &r[2]), IM_OK);
    assert_int_equal(kv_put_rc(ns, "B", "upper", 5, &r[3]), IM_OK);
    assert_int_equal(kv_put_rc(ns, "\xc3\xa9t\xc3\xa9", "e", 1, &r[4]), IM_OK);
    assert_int_equal(kv_put_rc(ns, "empty", "", 0, &r[5]), IM_OK);
    assert_int_equal(kv_put_rc(ns, "gone", "x", 1, NULL), IM_OK); /* no completion wanted */
    assert_int_equal(kv_put_rc(ns, "gone", NULL, 0, &r[6]), IM_OK);
    assert_int_equal(kv_put_rc(other, "a", "elsewhere", 9, &r[7]), IM_OK);
    wait_reqs(r, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(r[i].rc, IM_OK);
    /* Byte order: "B" < "a" < "ab" < "b" < "empty" < "\xc3..." */
    kv_seen ks = kv_each(ns, "", 0);
    assert_int_equal(ks.n, 6);
    assert_string_equal(ks.keys[0], "B");
    assert_string_equal(ks.keys[1], "a");
    assert_string_equal(ks.keys[2], "ab");
    assert_string_equal(ks.keys[3], "b");
    assert_string_equal(ks.keys[4], "empty");
    assert_int_equal(ks.len[4], 0);
    assert_string_equal(ks.keys[5], "\xc3\xa9t\xc3\xa9");
    assert_memory_equal(ks.first[1], "one", 3);
    ks = kv_each(ns, "a", 0);
    assert_int_equal(ks.n, 2);
    assert_string_equal(ks.keys[1], "ab");
    ks = kv_each(ns, "zz", 0);
    assert_int_equal(ks.n, 0);
    ks = kv_each(ns, "", 2);
    assert_int_equal(ks.n, 2);
    ks = kv_each(other, "", 0);
    assert_int_equal(ks.n, 1);
    assert_memory_equal(ks.first[0], "elsewhe", 7);
    /* fn may write: every key of ns copied to a third namespace. */
    const char *copy = id("copy");
    kv_seen writer = { .put_ns = copy };
    im_error werr = { 0 };
    assert_int_equal(F->s->ops->kv_each(F->s, ns, "", see_kv, &writer, &werr), 6);
    assert_int_equal(writer.put_rc, IM_OK);
    sync_store();
    ks = kv_each(copy, "", 0);
    assert_int_equal(ks.n, 6);
    assert_string_equal(ks.keys[1], "a");
    /* Replaced. */
    req rep = { 0 };
    assert_int_equal(kv_put_rc(ns, "a", "uno", 3, &rep), IM_OK);
    WAIT(rep);
    ks = kv_each(ns, "a", 0);
    assert_memory_equal(ks.first[0], "uno", 3);

    /* Limits: refused by the call, and the completion never runs. */
    static char big[IM_STORE_KV_VALUE_MAX + 1];
    char key[IM_STORE_KV_KEY_MAX + 2];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    req never = { 0 };
    assert_int_equal(kv_put_rc("", "k", "v", 1, &never), IM_EINVAL);
    assert_int_equal(kv_put_rc(ns, "", "v", 1, &never), IM_EINVAL);
    assert_int_equal(kv_put_rc(ns, key, "v", 1, &never), IM_EINVAL);
    assert_int_equal(kv_put_rc(key, "k", "v", 1, &never), IM_EINVAL);
    assert_int_equal(kv_put_rc(ns, "k", big, sizeof big, &never), IM_EINVAL);
    im_error err = { 0 };
    assert_int_equal(F->s->ops->kv_each(F->s, "", "", see_kv, &ks, &err), IM_EINVAL);
    assert_int_equal(F->s->ops->kv_each(F->s, key, "", see_kv, &ks, &err), IM_EINVAL);
    /* The largest key and value go through. */
    req most = { 0 };
    key[IM_STORE_KV_KEY_MAX] = '\0';
    assert_int_equal(kv_put_rc(ns, key, big, IM_STORE_KV_VALUE_MAX, &most), IM_OK);
    sync_store();
    assert_int_equal(never.calls, 0);
    assert_int_equal(most.rc, IM_OK);
    ks = kv_each(ns, "kkk", 0);
    assert_int_equal(ks.n, 1);
    assert_int_equal(ks.len[0], IM_STORE_KV_VALUE_MAX);
}

/* ---- cases: accounts ---- */

static int account(req *r, const im_account_request *q)
{
    im_error err = { 0 };
    int rc = F->s->ops->account(F->s, q, on_account, r, &err);
    if (rc != IM_OK && err.code != rc)
        fail_msg("%s: account refused (%s) without its reason", E->row, im_strerror(rc));
    return rc;
}

/* One account request, waited for: its rc (the record in *r). */
static int account_rc(req *r, im_account_op op, const char *user, const char *display,
                      const char *secret, const uint8_t *token, size_t token_len,
                      uint64_t now_ms, uint64_t expires_ms, unsigned keep)
{
    memset(r, 0, sizeof *r);
    im_account_request q = { .size = sizeof q, .op = op, .user = user, .display_name = display,
                             .secret = secret, .token = token, .token_len = token_len,
                             .now_ms = now_ms, .expires_ms = expires_ms, .keep = keep };
    int rc = account(r, &q);
    if (rc != IM_OK)
        fail_msg("%s: account op %d: %s", E->row, (int)op, im_strerror(rc));
    WAIT(*r);
    return r->rc;
}

/* A completion that makes a request of the store: allowed for account's. */
typedef struct chained {
    req first, then;
    int then_rc;
} chained;

static void on_account_then_barrier(void *arg, int rc, const im_account_record *rec,
                                    const im_error *err)
{
    chained *c = arg;
    im_error e = { 0 };
    int brc = F->s->ops->barrier(F->s, on_done, &c->then, &e);
    pthread_mutex_lock(&jlock);
    c->then_rc = brc; /* before first completes: the test reads it after */
    pthread_mutex_unlock(&jlock);
    on_account(&c->first, rc, rec, err);
}

/* A token hash of the case: 32 bytes from its prefix and a letter. */
static const uint8_t *token(char which)
{
    static uint8_t ring[8][32];
    static unsigned next;
    uint8_t *t = ring[next++ % 8];
    memset(t, which, 32);
    memcpy(t, F->prefix, strlen(F->prefix));
    return t;
}

#define SECRET "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"

static void test_account(void **state)
{
    (void)state;
    if (!HAS_OR_DECLINED(F->s, account, D_ABSENT_ACCOUNT))
        return;
    const char *u1 = id("u1"), *u2 = id("u2"), *u3 = id("u3"), *nobody = id("nobody");
    req r;
    assert_int_equal(account_rc(&r, IM_ACCOUNT_CREATE, u1, "Alice", SECRET, NULL, 0, 1000, 0,
                                0), IM_OK);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_CREATE, u1, "Again", "x", NULL, 0, 1000, 0, 0),
                     IM_EUSEREXISTS);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_GET, u1, NULL, NULL, NULL, 0, 0, 0, 0), IM_OK);
    assert_true(r.has_rec);
    assert_string_equal(r.user, u1);
    assert_string_equal(r.display, "Alice");
    assert_true(r.has_secret);
    assert_string_equal(r.secret, SECRET);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_GET, nobody, NULL, NULL, NULL, 0, 0, 0, 0),
                     IM_ENOTFOUND);
    /* No display name: the id stands for it (or "", the record's none). */
    assert_int_equal(account_rc(&r, IM_ACCOUNT_CREATE, u2, NULL, SECRET, NULL, 0, 1000, 0, 0),
                     IM_OK);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_GET, u2, NULL, NULL, NULL, 0, 0, 0, 0), IM_OK);
    assert_true(strcmp(r.display, u2) == 0 || r.display[0] == '\0');

    /* CREATE with a token; TOKEN_GET until it expires (now >= expires). */
    const uint8_t *t3 = token('3');
    assert_int_equal(account_rc(&r, IM_ACCOUNT_CREATE, u3, "Carol", SECRET, t3, 32, 1000, 5000,
                                0), IM_OK);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_GET, NULL, NULL, NULL, t3, 32, 4999, 0, 0),
                     IM_OK);
    assert_string_equal(r.user, u3);
    assert_string_equal(r.display, "Carol");
    assert_false(r.has_secret);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_GET, NULL, NULL, NULL, t3, 32, 5000, 0, 0),
                     IM_ENOTFOUND);

    /* TOKEN_PUT: for a user; keep trims to the newest. */
    const uint8_t *ta = token('a'), *tb = token('b'), *tc = token('c');
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_PUT, nobody, NULL, NULL, ta, 32, 0, 90000,
                                0), IM_ENOTFOUND);
    /* Put one after another, and each expiring later, so that "newest"
     * means the same whether the engine orders by issue or by expiry. */
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_PUT, u1, NULL, NULL, ta, 32, 0, 90001, 2),
                     IM_OK);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_PUT, u1, NULL, NULL, tb, 32, 0, 90002, 2),
                     IM_OK);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_PUT, u1, NULL, NULL, tc, 32, 0, 90003, 2),
                     IM_OK);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_GET, NULL, NULL, NULL, ta, 32, 1, 0, 0),
                     IM_ENOTFOUND);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_GET, NULL, NULL, NULL, tb, 32, 1, 0, 0),
                     IM_OK);
    assert_string_equal(r.user, u1);
    /* Put again: its user and expiry replaced. */
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_PUT, u2, NULL, NULL, tb, 32, 0, 90000, 0),
                     IM_OK);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_GET, NULL, NULL, NULL, tb, 32, 1, 0, 0),
                     IM_OK);
    assert_string_equal(r.user, u2);
    /* TOKEN_DELETE, of one there and one not. */
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_DELETE, NULL, NULL, NULL, tc, 32, 0, 0, 0),
                     IM_OK);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_DELETE, NULL, NULL, NULL, tc, 32, 0, 0, 0),
                     IM_OK);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_GET, NULL, NULL, NULL, tc, 32, 1, 0, 0),
                     IM_ENOTFOUND);
    /* TOKENS_DELETE_USER: u1 has d and e now. */
    const uint8_t *td = token('d'), *te = token('e');
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_PUT, u1, NULL, NULL, td, 32, 0, 90000, 0),
                     IM_OK);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_PUT, u1, NULL, NULL, te, 32, 0, 90000, 0),
                     IM_OK);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKENS_DELETE_USER, u1, NULL, NULL, NULL, 0, 0, 0,
                                0), IM_OK);
    assert_int_equal(r.count, 2);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_GET, NULL, NULL, NULL, td, 32, 1, 0, 0),
                     IM_ENOTFOUND);
    /* TOKENS_EXPIRE: at most keep, oldest first. */
    const uint8_t *t1 = token('1'), *t2 = token('2'), *t4 = token('4');
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_PUT, u2, NULL, NULL, t1, 32, 0, 100, 0),
                     IM_OK);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_PUT, u2, NULL, NULL, t2, 32, 0, 200, 0),
                     IM_OK);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_PUT, u2, NULL, NULL, t4, 32, 0, 400, 0),
                     IM_OK);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKENS_EXPIRE, NULL, NULL, NULL, NULL, 0, 300, 0,
                                1), IM_OK);
    assert_int_equal(r.count, 1);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_GET, NULL, NULL, NULL, t2, 32, 150, 0, 0),
                     IM_OK);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_GET, NULL, NULL, NULL, t1, 32, 50, 0, 0),
                     IM_ENOTFOUND);
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKENS_EXPIRE, NULL, NULL, NULL, NULL, 0, 300, 0,
                                100), IM_OK);
    assert_true(r.count >= 1); /* t2 (and any a run left behind on a shared database) */
    assert_int_equal(account_rc(&r, IM_ACCOUNT_TOKEN_GET, NULL, NULL, NULL, t4, 32, 300, 0, 0),
                     IM_OK);
    /* Its completion may make requests (a store that completes at once
     * holds none of its locks then). */
    chained ch = { 0 };
    im_account_request get = { .size = sizeof get, .op = IM_ACCOUNT_GET, .user = u1 };
    im_error cerr = { 0 };
    assert_int_equal(F->s->ops->account(F->s, &get, on_account_then_barrier, &ch, &cerr), IM_OK);
    WAIT(ch.first);
    WAIT(ch.then);
    assert_int_equal(ch.first.rc, IM_OK);
    assert_int_equal(ch.then_rc, IM_OK);
    assert_int_equal(ch.then.rc, IM_OK);
    /* Malformed: refused by the call. */
    req never = { 0 };
    im_account_request q = { .size = sizeof q, .op = IM_ACCOUNT_TOKEN_GET, .token = t4,
                             .token_len = IM_STORE_TOKEN_HASH_MAX + 1, .now_ms = 1 };
    assert_int_equal(account(&never, &q), IM_EINVAL);
    q.token_len = 0;
    assert_int_equal(account(&never, &q), IM_EINVAL);
    sync_store();
    assert_int_equal(never.calls, 0);
}

/* ---- cases: the queue, destroy ---- */

/* Holds the engine's thread inside a barrier's completion until opened. */
typedef struct gate {
    bool entered, open;
} gate;

static void gate_hold(void *arg, int rc, const im_error *err)
{
    (void)rc, (void)err;
    gate *g = arg;
    pthread_mutex_lock(&jlock);
    g->entered = true;
    pthread_cond_broadcast(&jcond);
    struct timespec until = deadline(60);
    while (!g->open && pthread_cond_timedwait(&jcond, &jlock, &until) == 0)
        ;
    pthread_mutex_unlock(&jlock);
}

static void gate_close(gate *g)
{
    im_error err = { 0 };
    assert_int_equal(F->s->ops->barrier(F->s, gate_hold, g, &err), IM_OK);
    struct timespec until = deadline(30);
    pthread_mutex_lock(&jlock);
    while (!g->entered && pthread_cond_timedwait(&jcond, &jlock, &until) == 0)
        ;
    bool in = g->entered;
    pthread_mutex_unlock(&jlock);
    assert_true(in);
}

static void gate_open(gate *g)
{
    pthread_mutex_lock(&jlock);
    g->open = true;
    pthread_cond_broadcast(&jcond);
    pthread_mutex_unlock(&jlock);
}

/* A row that completes inside the call (storage.h's "or at once, inside
 * the call"): checked, not assumed. */
static bool completes_at_once(void)
{
    if (!E->at_once)
        return false;
    req r = { 0 };
    barrier(&r);
    assert_int_equal(r.calls, 1);
    return true;
}

/* max_queue: a full queue refuses appends and reads at once with
 * IM_EBUSY, and loses nothing it accepted. */
static void test_queue_bound(void **state)
{
    (void)state;
    if (completes_at_once()) {
        declined("completes inside the call: no queue to bound");
        return;
    }
    if (!E->max_queue) {
        declined("its row sets no queue bound");
        return;
    }
    const char *a = id("a"), *b = id("b");
    enum { MAX = 256 };
    static req r[MAX];
    memset(r, 0, sizeof r);
    gate g = { 0 };
    gate_close(&g);
    int accepted = 0, rc = IM_OK;
    im_error err = { 0 };
    for (; accepted < MAX; accepted++) {
        char cmid[16];
        snprintf(cmid, sizeof cmid, "q%d", accepted);
        rc = try_append_len(&r[accepted], IM_MESSAGE_PRIVATE, a, b, cmid, "q", 1, &err);
        if (rc != IM_OK)
            break;
    }
    assert_int_equal(rc, IM_EBUSY);
    assert_int_equal(err.code, IM_EBUSY);
    assert_true(accepted >= 1 && (unsigned)accepted <= E->max_queue);
    req extra = { 0 };
    err = (im_error){ 0 };
    int prc = F->s->ops->pending(F->s, b, 10, on_msg, on_done, &extra, &err);
    assert_int_equal(prc, IM_EBUSY);
    if (IM_STORE_HAS(F->s, history_read))
        assert_int_equal(F->s->ops->history_read(F->s, conv_p(a, b), 0, 10, 0, on_msg, on_done,
                                                 &extra, &err),
                         IM_EBUSY);
    /* A barrier is never refused. */
    req after = { 0 };
    barrier(&after);
    gate_open(&g);
    WAIT(after);
    wait_reqs(r, (size_t)accepted);
    for (int i = 0; i < accepted; i++) {
        assert_int_equal(r[i].rc, IM_OK);
        assert_int_equal(r[i].seq, (uint64_t)i + 1);
        assert_true(r[i].order < after.order);
    }
    assert_int_equal(r[accepted].calls, 0);
    assert_int_equal(extra.calls, 0);
    /* It takes requests again. */
    req again = { 0 };
    say(&again, IM_MESSAGE_PRIVATE, a, b, "again");
    WAIT(again);
    assert_int_equal(again.seq, (uint64_t)accepted + 1);
}

/* destroy finishes what is queued: every accepted request completes,
 * exactly once, before it returns. */
static void test_destroy_drains(void **state)
{
    fx *f = *state;
    const char *a = id("a"), *b = id("b"), *g = id("g");
    enum { N = 12 };
    req r[N] = { 0 };
    gate gt = { 0 };
    bool held = !completes_at_once();
    if (held)
        gate_close(&gt); /* everything below queues behind it */
    int n = 0;
    for (; n < 6; n++)
        say(&r[n], IM_MESSAGE_PRIVATE, a, b, "drained");
    if (IM_STORE_HAS(f->s, group_change))
        change(&r[n++], IM_GROUP_CHANGE_CREATE, g, a, 10, 0);
    if (IM_STORE_HAS(f->s, kv_put))
        assert_int_equal(kv_put_rc(id("ns"), "k", "v", 1, &r[n++]), IM_OK);
    pending(&r[n++], b, 10, 0);
    barrier(&r[n++]);
    if (held)
        gate_open(&gt);
    im_store_destroy(f->s);
    f->s = NULL;
    pthread_mutex_lock(&jlock);
    int b_ = broken;
    pthread_mutex_unlock(&jlock);
    assert_int_equal(b_, 0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].rc, IM_OK);
    }
    req_free(r, N);
    im_plugin_host_free(f->host);
    f->host = NULL;
    open_engine(f);
    if (!F->s->ops->durable) {
        assert_true(declines(D_NOT_DURABLE));
        declined("not durable: what destroy drained is gone with it");
        return;
    }
    /* What it drained was stored. */
    req h = { 0 };
    assert_int_equal(history(&h, conv_p(a, b), 0, 10), IM_OK);
    assert_int_equal(h.ngot, 6);
    req_free(&h, 1);
}

/* ---- cases: a failed commit ---- */

/* Makes the next writes fail: the row's way. */
static void fault_arm(const char *a, const char *b)
{
    if (E->fault == FAULT_VFS) {
        atomic_store(&fault_armed, true);
        return;
    }
    /* Full: bodies of 24 kB until one does not fit. */
    static char body[24 * 1024];
    memset(body, 'f', sizeof body);
    for (int i = 0; i < 1000; i++) {
        req r = { 0 };
        char cmid[16];
        snprintf(cmid, sizeof cmid, "fill%d", i);
        append_len(&r, IM_MESSAGE_PRIVATE, a, b, cmid, body, sizeof body);
        WAIT(r);
        if (r.rc == IM_ENOSPC)
            return;
        assert_int_equal(r.rc, IM_OK);
    }
    fail_msg("%s: never full", E->row);
}

static bool is_failure(int rc)
{
    return rc == IM_ENOSPC || rc == IM_EIO;
}

/* A batch whose commit fails: every write in it is answered IM_ENOSPC or
 * IM_EIO, never success, and no read reports what was rolled back. */
static void test_failed_commit(void **state)
{
    (void)state;
    if (E->fault == FAULT_NONE) {
        declined(E->at_once ? "keeps nothing on storage that could fail"
                            : "its row sets no storage failure");
        return;
    }
    const char *a = id("a"), *b = id("b"), *c = id("c"), *g = id("g");
    req first = { 0 };
    say(&first, IM_MESSAGE_PRIVATE, c, b, "kept");
    WAIT(first);
    assert_int_equal(first.rc, IM_OK);
    fault_arm(a, c);
    gate gt = { 0 };
    gate_close(&gt);
    enum { N = 6 };
    req r[N] = { 0 }, read[2] = { 0 }, end = { 0 };
    say(&r[0], IM_MESSAGE_PRIVATE, c, b, "lost one");
    say(&r[1], IM_MESSAGE_PRIVATE, a, b, "lost two");
    change(&r[2], IM_GROUP_CHANGE_CREATE, g, a, 10, 0);
    assert_int_equal(kv_put_rc(id("ns"), "k", "v", 1, &r[3]), IM_OK);
    /* In the same batch: the one that cannot fit. */
    static char big[40 * 1024];
    memset(big, 'b', sizeof big);
    append_len(&r[4], IM_MESSAGE_PRIVATE, a, b, "big", big, sizeof big);
    say(&r[5], IM_MESSAGE_GROUP, a, g, "lost in g");
    /* An account is a write like the others. */
    bool acct = IM_STORE_HAS(F->s, account);
    req created = { 0 };
    if (acct) {
        im_account_request q = { .size = sizeof q, .op = IM_ACCOUNT_CREATE, .user = a,
                                 .display_name = "A", .secret = SECRET, .now_ms = 1 };
        assert_int_equal(account(&created, &q), IM_OK);
    }
    pending(&read[0], b, 100, 0);
    history_read(&read[1], conv_p(b, c), 0, 10, 0);
    barrier(&end);
    gate_open(&gt);
    wait_reqs(r, N);
    wait_reqs(read, 2);
    WAIT(end);
    if (acct) {
        assert_true(created.calls == 1);
        if (created.rc != (E->fault == FAULT_FULL ? IM_ENOSPC : IM_EIO))
            fail_msg("%s: an account write of a failed batch answered %s", E->row,
                     im_strerror(created.rc));
    }
    /* A full disk is ENOSPC; an I/O failure EIO. */
    int want = E->fault == FAULT_FULL ? IM_ENOSPC : IM_EIO;
    for (int i = 0; i < N; i++)
        if (!is_failure(r[i].rc) || r[i].rc != want)
            fail_msg("%s: write %d of a failed batch answered %s, not %s", E->row, i,
                     im_strerror(r[i].rc), im_strerror(want));
    /* The reads in the batch saw none of it. */
    assert_int_equal(read[0].rc, IM_OK);
    assert_int_equal(count_conv(&read[0], conv_p(b, c)), 1);
    assert_int_equal(count_conv(&read[0], conv_p(a, b)), 0);
    assert_int_equal(read[1].rc, IM_OK);
    EXPECT_SEQS(read[1], 1);
    req_free(read, 2);
    atomic_store(&fault_armed, false);
    /* Nor does a read after, nor the groups, nor the map. */
    req h = { 0 };
    history_read(&h, conv_p(b, c), 0, 10, 0);
    WAIT(h);
    EXPECT_SEQS(h, 1);
    req_free(&h, 1);
    assert_int_equal(load_groups(g).n, 0);
    assert_int_equal(kv_each(id("ns"), "", 0).n, 0);
    if (acct) {
        req got;
        assert_int_equal(account_rc(&got, IM_ACCOUNT_GET, a, NULL, NULL, NULL, 0, 0, 0, 0),
                         IM_ENOTFOUND);
    }
    if (E->fault == FAULT_VFS) {
        /* The storage back: nothing was spent, and writes go on. */
        req again = { 0 };
        say(&again, IM_MESSAGE_PRIVATE, c, b, "again");
        WAIT(again);
        assert_int_equal(again.rc, IM_OK);
        assert_int_equal(again.seq, 2);
    }
    /* What was acked is there after a restart; nothing else. */
    reopen(F);
    req p = { 0 };
    pending(&p, b, 100, 0);
    WAIT(p);
    assert_int_equal(count_conv(&p, conv_p(a, b)), 0);
    assert_int_equal(count_conv(&p, conv_p(b, c)), E->fault == FAULT_VFS ? 2 : 1);
    req_free(&p, 1);
}

/* ---- cases: durability ---- */

static void test_durable_reopen(void **state)
{
    fx *f = *state;
    if (!f->s->ops->durable) {
        assert_true(declines(D_NOT_DURABLE));
        declined("not durable: nothing to find after a reopen");
        return;
    }
    const char *a = id("a"), *b = id("b"), *g = id("g"), *ns = id("ns");
    bool groups = IM_STORE_HAS(f->s, group_change), kv = IM_STORE_HAS(f->s, kv_put),
         acct = IM_STORE_HAS(f->s, account);
    req r[3] = { 0 };
    append_len(&r[0], IM_MESSAGE_PRIVATE, a, b, "d1", "first", 5);
    append_len(&r[1], IM_MESSAGE_PRIVATE, a, b, "d2", "second", 6);
    if (groups) {
        assert_int_equal(change_rc(IM_GROUP_CHANGE_CREATE, g, a, 7,
                                   IM_STORE_GROUP_PRIVATE | IM_STORE_GROUP_SHARE_HISTORY, NULL),
                         IM_OK);
        assert_int_equal(change_rc(IM_GROUP_CHANGE_INVITE, g, b, 0, 0, NULL), IM_OK);
        say(&r[2], IM_MESSAGE_GROUP, a, g, "in g");
    } else {
        barrier(&r[2]);
    }
    if (kv) {
        assert_int_equal(kv_put_rc(ns, "k", "kept", 4, NULL), IM_OK);
        assert_int_equal(kv_put_rc(ns, "gone", "x", 1, NULL), IM_OK);
        assert_int_equal(kv_put_rc(ns, "gone", NULL, 0, NULL), IM_OK);
    }
    req t = { 0 };
    if (acct)
        assert_int_equal(account_rc(&t, IM_ACCOUNT_CREATE, a, "Ann", SECRET, token('t'), 32,
                                    1000, 90000, 0), IM_OK);
    wait_reqs(r, 3);
    ack(b, conv_p(a, b), 1);
    sync_store();
    /* Queued, not waited for: the close finishes it. */
    if (kv)
        assert_int_equal(kv_put_rc(ns, "last", "queued", 6, NULL), IM_OK);
    reopen(f);

    /* Messages, and the ack. */
    req p = { 0 };
    pending(&p, b, 100, 0);
    WAIT(p);
    assert_int_equal(p.ngot, 1);
    assert_string_equal(p.got[0].body, "second");
    req_free(&p, 1);
    /* Seqs go on; a resent id is still a duplicate. */
    req n[2] = { 0 };
    append_len(&n[0], IM_MESSAGE_PRIVATE, a, b, "d2", "second", 6);
    append_len(&n[1], IM_MESSAGE_PRIVATE, a, b, "d3", "third", 5);
    wait_reqs(n, 2);
    assert_true(n[0].duplicate);
    assert_int_equal(n[0].seq, 2);
    assert_int_equal(n[1].seq, 3);
    if (groups) {
        groups_seen gs = load_groups(g);
        assert_int_equal(gs.n, 1);
        assert_string_equal(gs.owner, a);
        assert_int_equal(gs.nmembers, 1);
        assert_int_equal(gs.ninvited, 1);
        assert_int_equal(gs.max, 7);
        assert_int_equal(gs.flags, IM_STORE_GROUP_PRIVATE | IM_STORE_GROUP_SHARE_HISTORY);
        req m = { 0 };
        say(&m, IM_MESSAGE_GROUP, a, g, "still");
        WAIT(m);
        assert_int_equal(m.seq, 2);
        uint64_t seq = 0;
        assert_int_equal(change_rc(IM_GROUP_CHANGE_JOIN, g, b, 0, 0, &seq), IM_OK);
        assert_int_equal(seq, 2);
    }
    if (kv) {
        kv_seen ks = kv_each(ns, "", 0);
        assert_int_equal(ks.n, 2);
        assert_string_equal(ks.keys[0], "k");
        assert_memory_equal(ks.first[0], "kept", 4);
        assert_string_equal(ks.keys[1], "last");
        assert_int_equal(ks.len[1], 6);
    }
    if (acct) {
        req q;
        assert_int_equal(account_rc(&q, IM_ACCOUNT_GET, a, NULL, NULL, NULL, 0, 0, 0, 0), IM_OK);
        assert_string_equal(q.secret, SECRET);
        assert_int_equal(account_rc(&q, IM_ACCOUNT_TOKEN_GET, NULL, NULL, NULL, token('t'), 32,
                                    2000, 0, 0), IM_OK);
        assert_string_equal(q.user, a);
    }
}

/* ---- the run ---- */

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(int argc, char **argv)
{
    const size_t nrows = sizeof engine_rows / sizeof *engine_rows;
    for (size_t i = 0; argc == 3 && i < nrows; i++)
        if (strcmp(engine_rows[i].row, argv[1]) == 0)
            E = &engine_rows[i];
    if (!E) {
        fprintf(stderr, "usage: %s ROW PLUGIN_DIR; ROW is one of:", argv[0]);
        for (size_t i = 0; i < nrows; i++)
            fprintf(stderr, " %s", engine_rows[i].row);
        fputc('\n', stderr);
        return 2;
    }
    plugin_dir = argv[2];
    if (E->env && !getenv(E->env)) {
        printf("%s: skipped: set %s to run it\n", E->row, E->env);
        return 77;
    }
    if (E->fault == FAULT_VFS && fault_vfs_install() != 0) {
        fprintf(stderr, "%s: cannot install the failing VFS\n", E->row);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        T(test_completion_order),
        T(test_concurrent_appenders),
        T(test_dedupe),
        T(test_dedupe_group),
        T(test_pending_and_ack),
        T(test_group_cursors),
        T(test_group_change),
        T(test_history),
        T(test_kv),
        T(test_account),
        T(test_queue_bound),
        T(test_destroy_drains),
        T(test_failed_commit),
        T(test_durable_reopen),
    };
    char name[64];
    snprintf(name, sizeof name, "store_conformance_%s", E->row);
    return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}
