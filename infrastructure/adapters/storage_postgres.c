/* infrastructure/adapters/storage_postgres.c: the PostgreSQL store as a
 * storage adapter plugin (storage_postgres.so), chosen with
 * storage.engine: postgres.
 *
 * Its own keys come from the storage.postgres mapping of the config, as
 * postgres.*: a libpq connection string (conninfo) or its parts (host,
 * port, dbname, user), the password from password_file or the environment
 * (PGPASSWORD, read by libpq), connect_timeout_s and statement_timeout_ms.
 * A bad value stops the server at start with FILE:LINE. The password is
 * never logged, nor kept in the adapter past open. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imcore/plugin.h"
#include "imcore/storage.h"
#include "adapter_config.h"
#include "im_log.h"
#include "im_pg_store.h"

#include <libpq-fe.h>

#define CONNINFO_MAX 1024

typedef struct adapter {
    im_adapter base;              /* first */
    char conninfo[CONNINFO_MAX];
    char password[256];
    bool has_password;
    im_pg_store_config cfg;
} adapter;

static bool is_service_account(void *arg, const char *user)
{
    adapter *a = arg;
    return a->base.api->is_service_account(a->base.host, user) == 1;
}

static int open_storage(void *state, im_store **out, im_error *err)
{
    adapter *a = state;
    int rc = im_pg_store_new(&a->cfg, out, err);
    /* The store keeps its own copy: none is left here. */
    memset(a->password, 0, sizeof a->password);
    if (rc == IM_OK) {
        char desc[256];
        im_pg_store_describe(*out, desc, sizeof desc);
        a->base.api->log(a->base.host, IMCORE_LOG_INFO,
                         "postgres %s (max_batch %u, synchronous_commit on, statement_timeout"
                         " %u ms, password %s)", desc, a->cfg.max_batch,
                         a->cfg.statement_timeout_ms,
                         a->has_password ? "from password_file" : "from libpq's environment");
    }
    return rc;
}

IMCORE_PLUGIN_INFO("storage_postgres", "1");

/* Fails init with "FILE:LINE: storage.KEY: what". */
__attribute__((format(printf, 5, 6)))
static int refuse(const imcore_host_api *api, imcore_host *host, imcore_plugin *out,
                  const char *key, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const char *where = api->config_where(host, key);
    int n = snprintf(out->error, sizeof out->error, "%.100s%sstorage.%.60s: ", where ? where : "",
                     where ? ": " : "", key);
    if (n > 0 && (size_t)n < sizeof out->error)
        snprintf(out->error + n, sizeof out->error - (size_t)n, "%.*s",
                 (int)(sizeof out->error - (size_t)n - 1), what);
    return 1;
}

/* A number of key in lo..hi; *v keeps fallback when the key is absent. */
static bool number(const imcore_host_api *api, imcore_host *host, imcore_plugin *out,
                   const char *key, unsigned long lo, unsigned long hi, unsigned *v)
{
    const char *s = api->config_get(host, key);
    if (!s || !s[0])
        return true;
    char *end;
    errno = 0;
    unsigned long n = strtoul(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end || errno || n < lo || n > hi) {
        refuse(api, host, out, key, "must be a number between %lu and %lu, not '%.40s'", lo, hi,
               s);
        return false;
    }
    *v = (unsigned)n;
    return true;
}

/* Appends key='value' to the connection string, quoted as libpq wants. */
static bool add_part(char *buf, size_t size, const char *key, const char *value)
{
    size_t len = strlen(buf);
    int n = snprintf(buf + len, size - len, "%s%s='", len ? " " : "", key);
    if (n < 0 || (size_t)n >= size - len)
        return false;
    len += (size_t)n;
    for (const char *p = value; *p; p++) {
        if (len + 3 >= size)
            return false;
        if (*p == '\'' || *p == '\\')
            buf[len++] = '\\';
        buf[len++] = *p;
    }
    buf[len++] = '\'';
    buf[len] = '\0';
    return true;
}

static bool read_password(const imcore_host_api *api, imcore_host *host, imcore_plugin *out,
                          adapter *a, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        refuse(api, host, out, "postgres.password_file", "cannot read %.100s: %s", path,
               strerror(errno));
        return false;
    }
    size_t n = fread(a->password, 1, sizeof a->password - 1, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    a->password[n] = '\0';
    a->password[strcspn(a->password, "\r\n")] = '\0';
    if (!a->password[0] || more || strlen(a->password) != strcspn(a->password, "")) {
        memset(a->password, 0, sizeof a->password);
        refuse(api, host, out, "postgres.password_file",
               "%.100s must hold the password on its first line (1..255 bytes)", path);
        return false;
    }
    a->has_password = true;
    return true;
}

static int configure(adapter *a, const imcore_host_api *api, imcore_host *host,
                     imcore_plugin *out);

int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    static const char *const known[] = {
        "path", "max_batch", "synchronous", "max_page_count", "check_on_start", "receivers",
        "postgres.conninfo", "postgres.host", "postgres.port", "postgres.dbname",
        "postgres.user", "postgres.password_file", "postgres.connect_timeout_s",
        "postgres.statement_timeout_ms", "options.max_queue", NULL };
    adapter *a = im_adapter_new(api, host, out, "storage_postgres",
                                IM_ADAPTER_PLUGIN_SIZE(open_storage), known, "storage.options",
                                sizeof *a);
    if (!a)
        return 1;
    if (configure(a, api, host, out) != 0) {
        out->state = NULL; /* a refused init is not shut down: its state goes here */
        im_adapter_free(a);
        return 1;
    }
    out->open_storage = open_storage;
    return 0;
}

/* Reads the keys into a; 0, or non-zero with out->error set. */
static int configure(adapter *a, const imcore_host_api *api, imcore_host *host,
                     imcore_plugin *out)
{
    unsigned connect_timeout = 5, statement_timeout = 0, port = 0, max_queue = 0;
    /* options.max_queue: as the SQLite engine's, requests queued before
     * appends and reads are refused with IM_EBUSY (0: the store's default). */
    if (!number(api, host, out, "options.max_queue", 1, 10000000, &max_queue) ||
        !number(api, host, out, "postgres.connect_timeout_s", 1, 3600, &connect_timeout) ||
        !number(api, host, out, "postgres.statement_timeout_ms", 0, 86400000, &statement_timeout) ||
        !number(api, host, out, "postgres.port", 1, 65535, &port))
        return 1;
    const char *conninfo = api->config_get(host, "postgres.conninfo");
    static const char *const parts[] = { "host", "port", "dbname", "user", NULL };
    const char *part_key = NULL;
    for (const char *const *p = parts; *p && !part_key; p++) {
        char key[64];
        snprintf(key, sizeof key, "postgres.%s", *p);
        const char *v = api->config_get(host, key);
        if (v && v[0]) {
            if (conninfo && conninfo[0])
                return refuse(api, host, out, "postgres.conninfo",
                              "give conninfo or host/port/dbname/user, not both");
            if (!add_part(a->conninfo, sizeof a->conninfo, *p, v))
                return refuse(api, host, out, key, "too long");
        }
    }
    if (conninfo && conninfo[0]) {
        snprintf(a->conninfo, sizeof a->conninfo, "%s", conninfo);
        char *why = NULL;
        PQconninfoOption *opts = PQconninfoParse(conninfo, &why);
        if (!opts) {
            char msg[120];
            snprintf(msg, sizeof msg, "%s", why ? why : "out of memory");
            msg[strcspn(msg, "\n")] = '\0';
            PQfreemem(why);
            return refuse(api, host, out, "postgres.conninfo", "a malformed connection string: %s",
                          msg);
        }
        PQconninfoFree(opts);
    }
    const char *pwfile = api->config_get(host, "postgres.password_file");
    if (pwfile && pwfile[0] && !read_password(api, host, out, a, pwfile))
        return 1;
    const char *receivers = api->config_get(host, "receivers");
    a->cfg = (im_pg_store_config){
        .conninfo = a->conninfo,
        .password = a->has_password ? a->password : NULL,
        .connect_timeout_s = connect_timeout,
        .statement_timeout_ms = statement_timeout,
        .max_batch = im_adapter_uint(api, host, "max_batch", 512),
        .max_queue = max_queue,
        .receivers_need_account = receivers && strcmp(receivers, "accounts") == 0,
    };
    if (api->size >= offsetof(imcore_host_api, is_service_account) +
                         sizeof api->is_service_account) {
        a->cfg.is_service_account = is_service_account;
        a->cfg.service_arg = a;
    }
    return 0;
}
