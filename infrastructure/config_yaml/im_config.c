/* infrastructure/config_yaml/im_config.c: YAML file -> im_config.
 *
 * libyaml's document API builds the node tree and reports syntax errors with
 * their marks; this file only walks the tree against one table of keys, so
 * the keys, their types and their ranges are written down once and serve
 * both im_config_load and im_config_validate. Every message names the dotted
 * key and, when it comes from a file, the file and the key's line, because
 * the person reading it is editing that file. */
#include "im_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "im_log.h"
#include "imcore/message.h" /* IM_FRAME_RESERVE */

enum kind {
    K_U16,      /* a number stored in a uint16_t */
    K_UINT,     /* a number stored in an unsigned */
    K_U32,      /* a number stored in a uint32_t */
    K_HOST,     /* an IPv4 or IPv6 literal in a char[64] */
    K_NODE_ID,  /* 1..63 of [A-Za-z0-9_.-] in a char[64] */
    K_POLICY,   /* "replace" | "reject" in an int */
    K_LEVEL,    /* an im_log_level name in an int */
    K_CHOICE,   /* one of field.choices, stored as its index in an int */
    K_PATH,     /* a non-empty file path in a char[field.size] */
    K_TEXT,     /* printable text, possibly empty, in a char[field.size] */
};

struct field {
    const char *name; /* the dotted key */
    enum kind kind;
    size_t offset;
    uint32_t min, max; /* for numbers */
    const char *const *choices; /* K_CHOICE: NULL-terminated */
    size_t size;       /* K_PATH: the buffer's size */
};

/* Indices into fields[], for the rules that tie two fields together. */
enum {
    FI_HOST, FI_PORT, FI_WORKERS, FI_NODE_ID,
    FI_MAX_CONNECTIONS, FI_MAX_FRAME, FI_MAX_BODY, FI_MAX_GROUP, FI_OUTPUT_BUFFER,
    FI_MAX_GROUPS_PER_USER,
    FI_HEARTBEAT, FI_IDLE, FI_LOGIN_TIMEOUT, FI_FRAME_TIMEOUT, FI_POLICY, FI_LOG_LEVEL,
    FI_MAX_UNAUTH, FI_MAX_UNAUTH_ADDR, FI_INPUT_BUDGET, FI_ACC_REGISTRATIONS,
    FI_ACC_HASH_THREADS, FI_ACC_MAX_PENDING,
    FI_ENGINE, FI_PATH, FI_MAX_BATCH, FI_SYNC, FI_MAX_PAGES, FI_CHECK,
    FI_ACC_MODE, FI_ACC_HASH, FI_ACC_TTL, FI_ACC_FAILURES, FI_ACC_WINDOW, FI_ACC_MAX_TOKENS,
    FI_SEND_RATE, FI_SEND_BURST, FI_PLUGIN_BACKLOG, FI_PLUGIN_DIR, FI_TRANSPORT, FI_CLUSTER,
    FI_ZK_HOSTS, FI_ZK_ROOT, FI_ZK_SESSION, FI_ROUTE_HOST, FI_ROUTE_PORT, FI_ROUTE_POLICY,
    FI_ROUTE_LOAD,
    FI_COUNT
};

/* The frame carries an envelope around the body; this much is kept for it
 * (imcore/message.h says why it is enough). */
#define ENVELOPE_RESERVE ((uint32_t)IM_FRAME_RESERVE)

#define FIELD(idx, key, k, member, lo, hi) \
    [idx] = { .name = key, .kind = k, .offset = offsetof(im_config, member), .min = lo, .max = hi }

static const char *const sync_names[] = { "full", "normal", NULL };
static const char *const check_names[] = { "quick", "none", NULL };
static const char *const accounts_modes[] = { "password", "open", NULL };
static const char *const hash_costs[] = { "interactive", "moderate", "min", NULL };
static const char *const route_policies[] = { "bounded-hash", "least-loaded", NULL };

static const struct field fields[FI_COUNT] = {
    FIELD(FI_HOST, "listen.host", K_HOST, listen_host, 0, 0),
    FIELD(FI_PORT, "listen.port", K_U16, listen_port, 0, 65535),
    FIELD(FI_WORKERS, "workers", K_UINT, workers, 0, IM_CONFIG_MAX_WORKERS),
    FIELD(FI_NODE_ID, "node_id", K_NODE_ID, node_id, 0, 0),
    FIELD(FI_MAX_CONNECTIONS, "limits.max_connections", K_U32, max_connections, 1, 1000000),
    FIELD(FI_MAX_FRAME, "limits.max_frame_bytes", K_U32, max_frame_bytes, 64, 16777216),
    FIELD(FI_MAX_BODY, "limits.max_body_bytes", K_U32, max_body_bytes, 1,
          16777216 - ENVELOPE_RESERVE),
    FIELD(FI_MAX_GROUP, "limits.max_group_members", K_U32, max_group_members, 1, 100000),
    FIELD(FI_MAX_GROUPS_PER_USER, "limits.max_groups_per_user", K_U32, max_groups_per_user, 0,
          1000000),
    FIELD(FI_OUTPUT_BUFFER, "limits.output_buffer_bytes", K_U32, output_buffer_bytes, 4096,
          1073741824),
    FIELD(FI_HEARTBEAT, "session.heartbeat_s", K_UINT, heartbeat_s, 1, 3600),
    FIELD(FI_IDLE, "session.idle_timeout_s", K_UINT, idle_timeout_s, 1, 86400),
    FIELD(FI_LOGIN_TIMEOUT, "session.login_timeout_s", K_UINT, login_timeout_s, 1, 3600),
    FIELD(FI_FRAME_TIMEOUT, "session.frame_timeout_s", K_UINT, frame_timeout_s, 1, 3600),
    FIELD(FI_MAX_UNAUTH, "limits.max_unauthenticated", K_U32, max_unauthenticated, 0, 1000000),
    FIELD(FI_MAX_UNAUTH_ADDR, "limits.max_unauthenticated_per_address", K_U32,
          max_unauth_per_address, 1, 1000000),
    FIELD(FI_INPUT_BUDGET, "limits.input_buffer_bytes", K_U32, input_budget_bytes, 65536,
          4294967295u),
    FIELD(FI_ACC_REGISTRATIONS, "accounts.max_registrations", K_U32, accounts_max_registrations,
          0, 1000000),
    FIELD(FI_ACC_HASH_THREADS, "accounts.hash_threads", K_U32, accounts_hash_threads, 1, 64),
    FIELD(FI_ACC_MAX_PENDING, "accounts.max_pending", K_U32, accounts_max_pending, 1, 100000),
    FIELD(FI_POLICY, "session.login_policy", K_POLICY, login_policy, 0, 0),
    FIELD(FI_LOG_LEVEL, "log_level", K_LEVEL, log_level, 0, 0),
    FIELD(FI_ENGINE, "storage.engine", K_NODE_ID, storage_engine, 0, 0),
    [FI_PATH] = { .name = "storage.path", .kind = K_PATH,
                  .offset = offsetof(im_config, storage_path),
                  .size = sizeof(((im_config *)0)->storage_path) },
    FIELD(FI_MAX_BATCH, "storage.max_batch", K_U32, storage_max_batch, 1, 100000),
    [FI_SYNC] = { .name = "storage.synchronous", .kind = K_CHOICE,
                  .offset = offsetof(im_config, storage_synchronous), .choices = sync_names },
    FIELD(FI_MAX_PAGES, "storage.max_page_count", K_U32, storage_max_pages, 0, 4294967295u),
    [FI_CHECK] = { .name = "storage.check_on_start", .kind = K_CHOICE,
                   .offset = offsetof(im_config, storage_check), .choices = check_names },
    [FI_ACC_MODE] = { .name = "accounts.mode", .kind = K_CHOICE,
                      .offset = offsetof(im_config, accounts_mode), .choices = accounts_modes },
    [FI_ACC_HASH] = { .name = "accounts.password_hash", .kind = K_CHOICE,
                      .offset = offsetof(im_config, accounts_hash_cost), .choices = hash_costs },
    FIELD(FI_ACC_TTL, "accounts.token_ttl_s", K_U32, accounts_token_ttl_s, 60, 31536000),
    FIELD(FI_ACC_FAILURES, "accounts.max_login_failures", K_U32, accounts_max_failures, 0,
          1000000),
    FIELD(FI_ACC_WINDOW, "accounts.login_failure_window_s", K_U32, accounts_failure_window_s, 1,
          86400),
    FIELD(FI_ACC_MAX_TOKENS, "accounts.max_tokens_per_user", K_U32, accounts_max_tokens, 1, 1000),
    FIELD(FI_SEND_RATE, "limits.messages_per_second", K_U32, send_rate, 0, 1000000),
    FIELD(FI_SEND_BURST, "limits.message_burst", K_U32, send_burst, 1, 1000000),
    FIELD(FI_PLUGIN_BACKLOG, "limits.plugin_backlog", K_U32, plugin_backlog, 1, 1000000),
    [FI_PLUGIN_DIR] = { .name = "plugin_dir", .kind = K_PATH,
                        .offset = offsetof(im_config, plugin_dir),
                        .size = sizeof(((im_config *)0)->plugin_dir) },
    FIELD(FI_TRANSPORT, "transport", K_NODE_ID, transport, 0, 0),
    FIELD(FI_CLUSTER, "cluster", K_NODE_ID, cluster, 0, 0),
    [FI_ZK_HOSTS] = { .name = "zookeeper.hosts", .kind = K_TEXT,
                      .offset = offsetof(im_config, zookeeper_hosts),
                      .size = sizeof(((im_config *)0)->zookeeper_hosts) },
    [FI_ZK_ROOT] = { .name = "zookeeper.root", .kind = K_PATH,
                     .offset = offsetof(im_config, zookeeper_root),
                     .size = sizeof(((im_config *)0)->zookeeper_root) },
    FIELD(FI_ZK_SESSION, "zookeeper.session_timeout_ms", K_U32, zookeeper_session_ms, 400, 120000),
    FIELD(FI_ROUTE_HOST, "route.host", K_HOST, route_host, 0, 0),
    FIELD(FI_ROUTE_PORT, "route.port", K_U16, route_port, 0, 65535),
    [FI_ROUTE_POLICY] = { .name = "route.policy", .kind = K_CHOICE,
                          .offset = offsetof(im_config, route_policy),
                          .choices = route_policies },
    FIELD(FI_ROUTE_LOAD, "route.load_factor_percent", K_U32, route_load_factor, 100, 1000),
};

/* Top-level keys whose value is a mapping of more keys. */
static const char *const sections[] = { "listen", "limits", "session", "storage", "accounts",
                                        "zookeeper", "route" };
#define SECTION_COUNT (sizeof sections / sizeof sections[0])

static const char *const policy_names[] = { "replace", "reject" };

void im_config_defaults(im_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen_host, sizeof c->listen_host, "%s", "127.0.0.1");
    c->listen_port = 7000;
    c->workers = 0;
    snprintf(c->node_id, sizeof c->node_id, "%s", "node-1");
    c->max_connections = 19000;
    c->max_frame_bytes = 65536;
    c->max_body_bytes = 8192;
    c->max_group_members = 1000;
    c->max_groups_per_user = 100;
    c->output_buffer_bytes = 4194304;
    c->heartbeat_s = 30;
    c->idle_timeout_s = 90;
    c->login_timeout_s = 10;
    c->frame_timeout_s = 30;
    c->max_unauthenticated = 0;
    c->max_unauth_per_address = 1000;
    c->input_budget_bytes = 67108864;
    c->login_policy = 0;
    c->log_level = IM_LOG_INFO;
    snprintf(c->storage_engine, sizeof c->storage_engine, "%s", "sqlite");
    snprintf(c->transport, sizeof c->transport, "%s", "tcp");
    snprintf(c->cluster, sizeof c->cluster, "%s", "none");
    snprintf(c->storage_path, sizeof c->storage_path, "%s", "data/imcore.db");
    c->storage_max_batch = 512;
    c->storage_synchronous = IM_STORAGE_SYNC_FULL;
    c->storage_max_pages = 0;
    c->storage_check = IM_STORAGE_CHECK_QUICK;
    snprintf(c->plugin_dir, sizeof c->plugin_dir, "%s", IMCORE_PLUGIN_DIR);
    c->send_rate = 200;
    c->send_burst = 400;
    c->plugin_backlog = 10000;
    c->accounts_mode = IM_ACCOUNTS_PASSWORD;
    c->accounts_hash_cost = 0;
    c->accounts_token_ttl_s = 2592000;
    c->accounts_max_failures = 5;
    c->accounts_failure_window_s = 60;
    c->accounts_max_registrations = 100;
    c->accounts_hash_threads = 2;
    c->accounts_max_pending = 256;
    c->accounts_max_tokens = 10;
    snprintf(c->zookeeper_root, sizeof c->zookeeper_root, "%s", "/imcore/nodes");
    c->zookeeper_session_ms = 10000;
    snprintf(c->route_host, sizeof c->route_host, "%s", "127.0.0.1");
    c->route_port = 8480;
    c->route_policy = IM_ROUTE_BOUNDED_HASH;
    c->route_load_factor = 125;
}

/* ---- errors ---------------------------------------------------------- */

/* Where a message points: a file and a line, or nowhere (validate); and the
 * caller's error record to fill. */
struct where {
    im_error *err;
    const char *path; /* NULL: not from a file */
    unsigned line;
};

static int fail(struct where at, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct where at, const char *key, const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (at.path != NULL)
        return im_error_set(at.err, IM_EINVAL, "%s:%u: %s: %s", at.path, at.line, key, what);
    return im_error_set(at.err, IM_EINVAL, "%s: %s", key, what);
}

/* ---- values ---------------------------------------------------------- */

static uint64_t get_number(const im_config *c, const struct field *f)
{
    const char *p = (const char *)c + f->offset;
    switch (f->kind) {
    case K_U16: { uint16_t v; memcpy(&v, p, sizeof v); return v; }
    case K_UINT: { unsigned v; memcpy(&v, p, sizeof v); return v; }
    case K_U32: { uint32_t v; memcpy(&v, p, sizeof v); return v; }
    default: return 0;
    }
}

static void put_number(im_config *c, const struct field *f, uint64_t v)
{
    char *p = (char *)c + f->offset;
    switch (f->kind) {
    case K_U16: { uint16_t x = (uint16_t)v; memcpy(p, &x, sizeof x); break; }
    case K_UINT: { unsigned x = (unsigned)v; memcpy(p, &x, sizeof x); break; }
    case K_U32: { uint32_t x = (uint32_t)v; memcpy(p, &x, sizeof x); break; }
    default: break;
    }
}

static bool is_number_kind(enum kind k)
{
    return k == K_U16 || k == K_UINT || k == K_U32;
}

static int check_number(struct where at, const struct field *f, uint64_t v)
{
    if (v < f->min || v > f->max)
        return fail(at, f->name, "must be between %u and %u", (unsigned)f->min, (unsigned)f->max);
    return 0;
}

static bool node_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                  ch == '_' || ch == '.' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

static bool host_ok(const char *s)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

/* Checks the text s for the string-valued field f. For a policy or a level,
 * *as_int gets the value to store. */
static int check_text(struct where at, const struct field *f, const char *s, int *as_int)
{
    switch (f->kind) {
    case K_HOST:
        if (!host_ok(s))
            return fail(at, f->name, "must be an IPv4 or IPv6 address literal (names are not "
                        "resolved), not '%.60s'", s);
        return 0;
    case K_NODE_ID:
        if (!node_id_ok(s))
            return fail(at, f->name, "must be 1 to 63 characters of A-Z a-z 0-9 _ . -, not '%.60s'", s);
        return 0;
    case K_POLICY:
        for (int i = 0; i < 2; i++) {
            if (strcmp(s, policy_names[i]) == 0) {
                *as_int = i;
                return 0;
            }
        }
        return fail(at, f->name, "must be 'replace' or 'reject', not '%.60s'", s);
    case K_CHOICE: {
        char list[120] = "";
        for (int i = 0; f->choices[i]; i++) {
            if (strcmp(s, f->choices[i]) == 0) {
                *as_int = i;
                return 0;
            }
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s'%s'", i ? " or " : "",
                     f->choices[i]);
        }
        return fail(at, f->name, "must be %s, not '%.60s'", list, s);
    }
    case K_PATH:
        if (s[0] == '\0' || strlen(s) >= f->size)
            return fail(at, f->name, "must be a path of 1 to %zu bytes", f->size - 1);
        return 0;
    case K_TEXT:
        if (strlen(s) >= f->size)
            return fail(at, f->name, "must be at most %zu bytes", f->size - 1);
        for (const char *q = s; *q; q++)
            if ((unsigned char)*q < 0x20 || *q == 0x7f)
                return fail(at, f->name, "must be printable text");
        return 0;
    case K_LEVEL: {
        im_log_level lvl;
        if (im_log_level_parse(s, &lvl) != 0)
            return fail(at, f->name, "must be debug, info, warn or error, not '%.60s'", s);
        *as_int = (int)lvl;
        return 0;
    }
    default:
        return 0;
    }
}

/* A place in path, or nowhere when the value did not come from the file. */
static struct where at_line(im_error *err, const char *path, unsigned line)
{
    return (struct where){ err, line != 0 ? path : NULL, line };
}

/* The rules between fields. line[i] is the line of fields[i] in the file, or
 * 0 when the value did not come from it. When only the other field of a rule
 * is in the file, the message names that one, so that FILE:LINE points at
 * something the reader wrote. */
static int check_rules(const im_config *c, im_error *err, const char *path, const unsigned line[])
{
    if (c->idle_timeout_s <= c->heartbeat_s) {
        if (line[FI_IDLE] == 0 && line[FI_HEARTBEAT] != 0)
            return fail(at_line(err, path, line[FI_HEARTBEAT]), fields[FI_HEARTBEAT].name,
                        "must be less than session.idle_timeout_s (%u)", c->idle_timeout_s);
        return fail(at_line(err, path, line[FI_IDLE]), fields[FI_IDLE].name,
                    "must be greater than session.heartbeat_s (%u)", c->heartbeat_s);
    }
    /* max_frame_bytes is at least 64 only after its own check; do not wrap. */
    if ((uint64_t)c->max_body_bytes + ENVELOPE_RESERVE > c->max_frame_bytes) {
        if (line[FI_MAX_BODY] == 0 && line[FI_MAX_FRAME] != 0)
            return fail(at_line(err, path, line[FI_MAX_FRAME]), fields[FI_MAX_FRAME].name,
                        "must be at least limits.max_body_bytes + %u (%llu)", ENVELOPE_RESERVE,
                        (unsigned long long)c->max_body_bytes + ENVELOPE_RESERVE);
        return fail(at_line(err, path, line[FI_MAX_BODY]), fields[FI_MAX_BODY].name,
                    "must be at most limits.max_frame_bytes - %u (%lld)", ENVELOPE_RESERVE,
                    (long long)c->max_frame_bytes - ENVELOPE_RESERVE);
    }
    if (c->max_unauthenticated > c->max_connections)
        return fail(at_line(err, path, line[FI_MAX_UNAUTH] ? line[FI_MAX_UNAUTH]
                                                           : line[FI_MAX_CONNECTIONS]),
                    line[FI_MAX_UNAUTH] ? fields[FI_MAX_UNAUTH].name
                                        : fields[FI_MAX_CONNECTIONS].name,
                    "limits.max_unauthenticated (%u) must be at most limits.max_connections (%u)",
                    c->max_unauthenticated, c->max_connections);
    size_t rl = strlen(c->zookeeper_root);
    if (c->zookeeper_root[0] != '/' || rl < 2 || c->zookeeper_root[rl - 1] == '/')
        return fail(at_line(err, path, line[FI_ZK_ROOT]), fields[FI_ZK_ROOT].name,
                    "must be an absolute path without a trailing /, like /imcore/nodes");
    /* Whether the storage engine keeps accounts (accounts.mode password)
     * is the engine's to say: checked once it is open (main). */
    return 0;
}

int im_config_validate(const im_config *c, im_error *err)
{
    const struct where nowhere = { err, NULL, 0 };
    for (int i = 0; i < FI_COUNT; i++) {
        const struct field *f = &fields[i];
        const char *p = (const char *)c + f->offset;
        int rc = 0;
        if (is_number_kind(f->kind)) {
            rc = check_number(nowhere, f, get_number(c, f));
        } else if (f->kind == K_HOST || f->kind == K_NODE_ID || f->kind == K_PATH ||
                   f->kind == K_TEXT) {
            int unused;
            if (memchr(p, '\0', f->kind == K_PATH || f->kind == K_TEXT ? f->size
                                                                       : sizeof c->node_id) == NULL)
                rc = fail(nowhere, f->name, "is not NUL-terminated");
            else
                rc = check_text(nowhere, f, p, &unused);
        } else {
            int v;
            memcpy(&v, p, sizeof v);
            if (f->kind == K_POLICY && v != 0 && v != 1)
                rc = fail(nowhere, f->name, "must be 0 (replace) or 1 (reject), not %d", v);
            if (f->kind == K_CHOICE) {
                int n = 0;
                while (f->choices[n])
                    n++;
                if (v < 0 || v >= n)
                    rc = fail(nowhere, f->name, "must be 0 to %d, not %d", n - 1, v);
            }
            if (f->kind == K_LEVEL && (v < IM_LOG_DEBUG || v > IM_LOG_ERROR))
                rc = fail(nowhere, f->name, "must be an im_log_level (%d to %d), not %d",
                          IM_LOG_DEBUG, IM_LOG_ERROR, v);
        }
        if (rc != 0)
            return rc;
    }
    static const unsigned no_lines[FI_COUNT];
    return check_rules(c, err, NULL, no_lines);
}

/* ---- the YAML tree --------------------------------------------------- */

struct loader {
    im_error *err;
    const char *path;
    yaml_document_t *doc;
    im_config cfg;
    unsigned field_line[FI_COUNT];        /* 0: not in the file (yet) */
    unsigned section_line[SECTION_COUNT]; /* likewise, for duplicate sections */
    unsigned plugins_line;
    unsigned options_line;                /* storage.options */
    unsigned postgres_line;               /* storage.postgres */
    unsigned transport_options_line;      /* transport_options */
    unsigned cluster_options_line;        /* cluster_options */
};

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a sequence";
    default: return "a scalar";
    }
}

static unsigned line_of(const yaml_node_t *n)
{
    return (unsigned)n->start_mark.line + 1;
}

/* An empty value ("limits:" with nothing under it) is YAML's null. */
static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* Reads "-?[0-9]+" as a decimal integer; false for anything else (hex, signs
 * other than '-', blanks, fractions). Values too large for 64 bits saturate,
 * which is out of every range anyway. */
static bool parse_decimal(const char *s, uint64_t *out, bool *negative)
{
    *negative = (*s == '-');
    if (*negative)
        s++;
    if (*s == '\0')
        return false;
    uint64_t v = 0;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        v = (v > (UINT64_MAX - d) / 10) ? UINT64_MAX : v * 10 + d;
    }
    *out = v;
    return true;
}

/* Checks the scalar v for field f and stores it in L->cfg. */
static int set_scalar(struct loader *L, struct where at, const struct field *f, const yaml_node_t *v)
{
    const char *s = (const char *)v->data.scalar.value;
    char *p = (char *)&L->cfg + f->offset;
    if (strlen(s) != v->data.scalar.length)
        return fail(at, f->name, "contains a NUL character");

    if (is_number_kind(f->kind)) {
        uint64_t n;
        bool negative;
        /* In YAML "7000" is a string; asking for the plain form keeps the
         * file's meaning the same for every YAML reader. */
        if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
            return fail(at, f->name, "expected a number, found a quoted string '%.60s'", s);
        if (!parse_decimal(s, &n, &negative))
            return fail(at, f->name, "not a number: '%.60s'", s);
        if (negative && n != 0)
            return fail(at, f->name, "must be between %u and %u", (unsigned)f->min, (unsigned)f->max);
        int rc = check_number(at, f, n);
        if (rc == 0)
            put_number(&L->cfg, f, n);
        return rc;
    }

    int as_int = 0;
    int rc = check_text(at, f, s, &as_int);
    if (rc != 0)
        return rc;
    if (f->kind == K_HOST || f->kind == K_NODE_ID)
        snprintf(p, sizeof L->cfg.node_id, "%s", s); /* checked: at most 63 bytes */
    else if (f->kind == K_PATH || f->kind == K_TEXT)
        snprintf(p, f->size, "%s", s);
    else
        memcpy(p, &as_int, sizeof as_int);
    return 0;
}

static int find_field(const char *name)
{
    for (int i = 0; i < FI_COUNT; i++) {
        if (strcmp(fields[i].name, name) == 0)
            return i;
    }
    return -1;
}

static int find_section(const char *name)
{
    for (size_t i = 0; i < SECTION_COUNT; i++) {
        if (strcmp(sections[i], name) == 0)
            return (int)i;
    }
    return -1;
}

static int load_mapping(struct loader *L, const yaml_node_t *map, const char *section);

/* ---- plugins: a list of {name, path, config} ---------------------------- */

static bool plugin_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* A plugin setting's scalar, copied to out ("" for null). */
static int scalar_value(struct loader *L, const yaml_node_t *v, const char *name, char *out,
                        size_t size)
{
    struct where at = { L->err, L->path, line_of(v) };
    if (v->type != YAML_SCALAR_NODE)
        return fail(at, name, "expected a scalar, a list or a mapping, found %s", node_kind(v));
    const char *value = is_null(v) ? "" : (const char *)v->data.scalar.value;
    if (strlen(value) >= size)
        return fail(at, name, "the value is longer than %zu bytes", size - 1);
    snprintf(out, size, "%s", value);
    return 0;
}

/* A list of scalars, as the one string a plugin reads: the items joined
 * with ", ". An item that holds a comma would read as two, so it is
 * refused. */
static int join_list(struct loader *L, const yaml_node_t *seq, const char *name, char *out,
                     size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    for (const yaml_node_item_t *it = seq->data.sequence.items.start;
         it < seq->data.sequence.items.top; it++) {
        const yaml_node_t *v = yaml_document_get_node(L->doc, *it);
        struct where at = { L->err, L->path, line_of(v) };
        if (v->type != YAML_SCALAR_NODE)
            return fail(at, name, "a list item must be a scalar, not %s", node_kind(v));
        const char *item = (const char *)v->data.scalar.value;
        if (strchr(item, ','))
            return fail(at, name, "the item '%.40s' holds a comma: a plugin reads a list as "
                        "one comma-separated string", item);
        size_t len = strlen(item);
        if (n + (n ? 2 : 0) + len >= size)
            return fail(at, name, "the list is longer than %zu bytes", size - 1);
        if (n) {
            memcpy(out + n, ", ", 2);
            n += 2;
        }
        memcpy(out + n, item, len + 1);
        n += len;
    }
    return 0;
}

/* Flattens the mapping at node into p's settings, keys joined with dots;
 * a list becomes one comma-separated value. */
/* Messages name a key where.KEY, KEY without its first strip bytes (the
 * prefix a section's keys get but its YAML name already says). */
static int load_plugin_settings(struct loader *L, im_plugin_config *p, const yaml_node_t *map,
                                const char *prefix, const char *where, size_t strip)
{
    for (const yaml_node_pair_t *kv = map->data.mapping.pairs.start;
         kv < map->data.mapping.pairs.top; kv++) {
        const yaml_node_t *k = yaml_document_get_node(L->doc, kv->key);
        const yaml_node_t *v = yaml_document_get_node(L->doc, kv->value);
        struct where at = { L->err, L->path, line_of(k) };
        if (k->type != YAML_SCALAR_NODE)
            return fail(at, where, "a key must be a scalar, not %s", node_kind(k));
        char key[64];
        int n = snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "",
                         (const char *)k->data.scalar.value);
        if (n < 0 || (size_t)n >= sizeof key)
            return fail(at, where, "the key '%.40s...' is longer than 63 bytes", key);
        char name[160];
        snprintf(name, sizeof name, "%s.%s", where, strlen(key) > strip ? key + strip : key);
        if (v->type == YAML_MAPPING_NODE) {
            int rc = load_plugin_settings(L, p, v, key, where, strip);
            if (rc != 0)
                return rc;
            continue;
        }
        for (unsigned i = 0; i < p->nsettings; i++)
            if (strcmp(p->settings[i].key, key) == 0)
                return fail(at, name, "duplicate key (first on line %u)", p->settings[i].line);
        if (p->nsettings == IM_CONFIG_MAX_PLUGIN_KEYS)
            return fail(at, name, "a plugin has at most %u settings", IM_CONFIG_MAX_PLUGIN_KEYS);
        char value[sizeof p->settings[0].value];
        int rc = v->type == YAML_SEQUENCE_NODE ? join_list(L, v, name, value, sizeof value)
                                               : scalar_value(L, v, name, value, sizeof value);
        if (rc != 0)
            return rc;
        im_plugin_setting *st = &p->settings[p->nsettings++];
        snprintf(st->key, sizeof st->key, "%s", key);
        memcpy(st->value, value, sizeof st->value);
        st->line = line_of(k);
    }
    return 0;
}

static int load_plugin(struct loader *L, const yaml_node_t *entry, unsigned index)
{
    struct where at = { L->err, L->path, line_of(entry) };
    char where[32];
    snprintf(where, sizeof where, "plugins[%u]", index);
    if (entry->type != YAML_MAPPING_NODE)
        return fail(at, where, "expected a mapping with name (and path, config), found %s",
                    node_kind(entry));
    if (L->cfg.nplugins == IM_CONFIG_MAX_PLUGINS)
        return fail(at, where, "at most %u plugins", IM_CONFIG_MAX_PLUGINS);
    im_plugin_config *p = &L->cfg.plugins[L->cfg.nplugins];
    memset(p, 0, sizeof *p);
    p->line = at.line;
    for (const yaml_node_pair_t *kv = entry->data.mapping.pairs.start;
         kv < entry->data.mapping.pairs.top; kv++) {
        const yaml_node_t *k = yaml_document_get_node(L->doc, kv->key);
        const yaml_node_t *v = yaml_document_get_node(L->doc, kv->value);
        struct where kat = { L->err, L->path, line_of(k) };
        const char *key = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
        char name[64];
        snprintf(name, sizeof name, "%s.%.20s", where, key);
        if (strcmp(key, "config") == 0) {
            if (is_null(v))
                continue;
            if (v->type != YAML_MAPPING_NODE)
                return fail(kat, name, "expected a mapping, found %s", node_kind(v));
            int rc = load_plugin_settings(L, p, v, "", name, 0);
            if (rc != 0)
                return rc;
            continue;
        }
        if (strcmp(key, "name") != 0 && strcmp(key, "path") != 0)
            return fail(kat, name, "unknown key (a plugin entry has name, path and config)");
        if (v->type != YAML_SCALAR_NODE)
            return fail(kat, name, "expected a string, found %s", node_kind(v));
        const char *value = (const char *)v->data.scalar.value;
        if (strcmp(key, "name") == 0) {
            if (!plugin_name_ok(value))
                return fail(kat, name, "must be 1 to 63 characters of A-Z a-z 0-9 _ -, not "
                            "'%.60s'", value);
            snprintf(p->name, sizeof p->name, "%s", value);
        } else {
            if (!value[0] || strlen(value) >= sizeof p->path)
                return fail(kat, name, "must be a path of 1 to %zu bytes", sizeof p->path - 1);
            snprintf(p->path, sizeof p->path, "%s", value);
        }
    }
    if (!p->name[0])
        return fail(at, where, "a plugin entry needs a name");
    for (unsigned i = 0; i < L->cfg.nplugins; i++)
        if (strcmp(L->cfg.plugins[i].name, p->name) == 0)
            return fail(at, where, "plugin %s is listed twice (first on line %u)", p->name,
                        L->cfg.plugins[i].line);
    L->cfg.nplugins++;
    return 0;
}

static int load_plugins(struct loader *L, const yaml_node_t *k, const yaml_node_t *v)
{
    struct where at = { L->err, L->path, line_of(k) };
    if (L->plugins_line != 0)
        return fail(at, "plugins", "duplicate key (first on line %u)", L->plugins_line);
    L->plugins_line = at.line;
    if (is_null(v))
        return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(at, "plugins", "expected a list of plugins, found %s", node_kind(v));
    unsigned index = 0;
    for (const yaml_node_item_t *it = v->data.sequence.items.start;
         it < v->data.sequence.items.top; it++, index++) {
        int rc = load_plugin(L, yaml_document_get_node(L->doc, *it), index);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* A mapping of an adapter's own keys (name, at its line *seen), flattened
 * into dst as PREFIX.KEY; messages name where.KEY[strip..]. */
static int load_options_as(struct loader *L, struct where at, const char *name,
                           const yaml_node_t *v, unsigned *seen, im_plugin_config *dst,
                           const char *prefix, const char *where, size_t strip)
{
    if (*seen != 0)
        return fail(at, name, "duplicate key (first on line %u)", *seen);
    *seen = at.line;
    if (is_null(v))
        return 0;
    if (v->type != YAML_MAPPING_NODE)
        return fail(at, name, "expected a mapping, found %s", node_kind(v));
    return load_plugin_settings(L, dst, v, prefix, where, strip);
}

static int load_options(struct loader *L, struct where at, const char *name,
                        const yaml_node_t *v, unsigned *seen, im_plugin_config *dst,
                        const char *where, size_t strip)
{
    return load_options_as(L, at, name, v, seen, dst, "options", where, strip);
}

/* ---- listen: a list of listeners ---------------------------------------- */

static int listen_text(struct loader *L, struct where at, const char *name,
                       const yaml_node_t *v, char *out, size_t size)
{
    if (v->type != YAML_SCALAR_NODE || is_null(v))
        return fail(at, name, "expected a string, found %s", is_null(v) ? "nothing" : node_kind(v));
    const char *s = (const char *)v->data.scalar.value;
    if (!s[0] || strlen(s) >= size || strlen(s) != v->data.scalar.length)
        return fail(at, name, "must be 1 to %zu bytes", size - 1);
    (void)L;
    snprintf(out, size, "%s", s);
    return 0;
}

static int listen_number(struct where at, const char *name, const yaml_node_t *v,
                         uint64_t max, uint64_t *out)
{
    bool negative;
    if (v->type != YAML_SCALAR_NODE || v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
        !parse_decimal((const char *)v->data.scalar.value, out, &negative) || negative ||
        *out > max)
        return fail(at, name, "must be a number from 0 to %llu", (unsigned long long)max);
    return 0;
}

/* One entry of the listen list: transport, host, port, and for tls cert,
 * key, client_ca; max_connections for any. */
static int load_listener(struct loader *L, const yaml_node_t *entry, unsigned index)
{
    struct where at = { L->err, L->path, line_of(entry) };
    char where[32];
    snprintf(where, sizeof where, "listen[%u]", index);
    if (entry->type != YAML_MAPPING_NODE)
        return fail(at, where, "expected a mapping with transport, host and port, found %s",
                    node_kind(entry));
    if (index >= IM_CONFIG_MAX_LISTENERS)
        return fail(at, where, "at most %u listeners", IM_CONFIG_MAX_LISTENERS);
    im_listen_config *l = &L->cfg.listeners[index];
    memset(l, 0, sizeof *l);
    snprintf(l->transport, sizeof l->transport, "tcp");
    snprintf(l->host, sizeof l->host, "127.0.0.1");
    l->line = at.line;
    bool have_port = false;
    for (const yaml_node_pair_t *kv = entry->data.mapping.pairs.start;
         kv < entry->data.mapping.pairs.top; kv++) {
        const yaml_node_t *k = yaml_document_get_node(L->doc, kv->key);
        const yaml_node_t *v = yaml_document_get_node(L->doc, kv->value);
        struct where kat = { L->err, L->path, line_of(k) };
        const char *key = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
        char name[64];
        snprintf(name, sizeof name, "%s.%.20s", where, key);
        uint64_t n;
        int rc;
        if (strcmp(key, "transport") == 0) {
            if ((rc = listen_text(L, kat, name, v, l->transport, sizeof l->transport)) != 0)
                return rc;
            if (strcmp(l->transport, "tcp") != 0 && strcmp(l->transport, "tls") != 0)
                return fail(kat, name, "must be 'tcp' or 'tls', not '%.40s'", l->transport);
        } else if (strcmp(key, "host") == 0) {
            if ((rc = listen_text(L, kat, name, v, l->host, sizeof l->host)) != 0)
                return rc;
            if (!host_ok(l->host))
                return fail(kat, name, "must be an IPv4 or IPv6 address literal (names are not "
                            "resolved), not '%.60s'", l->host);
        } else if (strcmp(key, "port") == 0) {
            if ((rc = listen_number(kat, name, v, 65535, &n)) != 0)
                return rc;
            l->port = (uint16_t)n;
            have_port = true;
        } else if (strcmp(key, "max_connections") == 0) {
            if ((rc = listen_number(kat, name, v, 1000000, &n)) != 0)
                return rc;
            l->max_connections = (uint32_t)n;
        } else if (strcmp(key, "cert") == 0) {
            if ((rc = listen_text(L, kat, name, v, l->cert, sizeof l->cert)) != 0)
                return rc;
            l->cert_line = kat.line;
        } else if (strcmp(key, "key") == 0) {
            if ((rc = listen_text(L, kat, name, v, l->key, sizeof l->key)) != 0)
                return rc;
            l->key_line = kat.line;
        } else if (strcmp(key, "client_ca") == 0) {
            if ((rc = listen_text(L, kat, name, v, l->client_ca, sizeof l->client_ca)) != 0)
                return rc;
            l->client_ca_line = kat.line;
        } else {
            return fail(kat, name, "unknown key (a listener has transport, host, port, "
                        "max_connections, and for tls cert, key, client_ca)");
        }
    }
    if (!have_port)
        return fail(at, where, "a listener needs a port (0: an ephemeral one)");
    bool tls = strcmp(l->transport, "tls") == 0;
    if (tls && (!l->cert[0] || !l->key[0]))
        return fail(at, where, "a tls listener needs cert and key");
    if (!tls && (l->cert[0] || l->key[0] || l->client_ca[0]))
        return fail(at, where, "cert, key and client_ca are for a tls listener");
    for (unsigned i = 0; i < index; i++) {
        const im_listen_config *o = &L->cfg.listeners[i];
        if (l->port != 0 && o->port == l->port && strcmp(o->host, l->host) == 0)
            return fail(at, where, "%s:%u is already listened on (line %u)", l->host, l->port,
                        o->line);
    }
    return 0;
}

static int load_listeners(struct loader *L, const yaml_node_t *v)
{
    unsigned index = 0;
    for (const yaml_node_item_t *it = v->data.sequence.items.start;
         it < v->data.sequence.items.top; it++, index++) {
        int rc = load_listener(L, yaml_document_get_node(L->doc, *it), index);
        if (rc != 0)
            return rc;
    }
    if (index == 0)
        return fail((struct where){ L->err, L->path, line_of(v) }, "listen",
                    "an empty list: name at least one listener");
    L->cfg.nlisteners = index;
    snprintf(L->cfg.listen_host, sizeof L->cfg.listen_host, "%s", L->cfg.listeners[0].host);
    L->cfg.listen_port = L->cfg.listeners[0].port;
    return 0;
}

/* One "key: value" pair of the mapping for section (NULL at the top level). */
static int load_pair(struct loader *L, const yaml_node_pair_t *pair, const char *section)
{
    const yaml_node_t *k = yaml_document_get_node(L->doc, pair->key);
    const yaml_node_t *v = yaml_document_get_node(L->doc, pair->value);
    struct where at = { L->err, L->path, line_of(k) };
    const char *parent = section != NULL ? section : "top level";

    if (k->type != YAML_SCALAR_NODE)
        return fail(at, parent, "a key must be a scalar, not %s", node_kind(k));
    const char *key = (const char *)k->data.scalar.value;
    if (strlen(key) != k->data.scalar.length)
        return fail(at, parent, "a key contains a NUL character");

    char name[96];
    snprintf(name, sizeof name, "%s%s%.60s", section != NULL ? section : "",
             section != NULL ? "." : "", key);

    if (section == NULL && strcmp(key, "plugins") == 0)
        return load_plugins(L, k, v);

    int si = section == NULL ? find_section(key) : -1;
    if (si >= 0) {
        if (L->section_line[si] != 0)
            return fail(at, name, "duplicate key (first on line %u)", L->section_line[si]);
        L->section_line[si] = at.line;
        if (is_null(v))
            return 0; /* a section with every key commented out keeps its defaults */
        if (v->type == YAML_SEQUENCE_NODE && strcmp(key, "listen") == 0)
            return load_listeners(L, v);
        if (v->type != YAML_MAPPING_NODE)
            return fail(at, name, "expected a mapping, found %s", node_kind(v));
        return load_mapping(L, v, sections[si]);
    }

    /* An adapter's own keys, handed to it as options.*. */
    if (strcmp(name, "storage.options") == 0)
        return load_options(L, at, name, v, &L->options_line, &L->cfg.storage_options,
                            "storage", 0);
    /* The PostgreSQL engine's keys, handed to it as postgres.* (it checks
     * their values, naming this file's lines). */
    if (strcmp(name, "storage.postgres") == 0)
        return load_options_as(L, at, name, v, &L->postgres_line, &L->cfg.storage_options,
                               "postgres", "storage", 0);
    if (section == NULL && strcmp(key, "transport_options") == 0)
        return load_options(L, at, name, v, &L->transport_options_line,
                            &L->cfg.transport_options, "transport_options", strlen("options."));
    if (section == NULL && strcmp(key, "cluster_options") == 0)
        return load_options(L, at, name, v, &L->cluster_options_line,
                            &L->cfg.cluster_options, "cluster_options", strlen("options."));

    int fi = find_field(name);
    if (fi < 0)
        return fail(at, name, "unknown key");
    if (L->field_line[fi] != 0)
        return fail(at, name, "duplicate key (first on line %u)", L->field_line[fi]);
    L->field_line[fi] = at.line;
    if (v->type != YAML_SCALAR_NODE)
        return fail(at, name, "expected %s, found %s",
                    is_number_kind(fields[fi].kind) ? "a number" : "a string", node_kind(v));
    return set_scalar(L, at, &fields[fi], v);
}

static int load_mapping(struct loader *L, const yaml_node_t *map, const char *section)
{
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start;
         p < map->data.mapping.pairs.top; p++) {
        int rc = load_pair(L, p, section);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The keys of storage.postgres, checked here as well as by the engine, so
 * that --check-config finds a bad one too. */
static int check_postgres(struct loader *L)
{
    static const struct { const char *key; unsigned long lo, hi; } keys[] = {
        { "conninfo", 0, 0 }, { "host", 0, 0 }, { "port", 1, 65535 }, { "dbname", 0, 0 },
        { "user", 0, 0 }, { "password_file", 0, 0 }, { "connect_timeout_s", 1, 3600 },
        { "statement_timeout_ms", 0, 86400000 },
    };
    const im_plugin_config *o = &L->cfg.storage_options;
    for (unsigned i = 0; i < o->nsettings; i++) {
        const im_plugin_setting *st = &o->settings[i];
        if (strncmp(st->key, "postgres.", 9) != 0)
            continue;
        struct where at = { L->err, L->path, st->line };
        char name[96];
        snprintf(name, sizeof name, "storage.%.60s", st->key);
        size_t k = 0;
        while (k < sizeof keys / sizeof keys[0] && strcmp(keys[k].key, st->key + 9) != 0)
            k++;
        if (k == sizeof keys / sizeof keys[0])
            return fail(at, name, "unknown key (storage.postgres has conninfo, host, port, "
                        "dbname, user, password_file, connect_timeout_s, statement_timeout_ms)");
        if (keys[k].hi == 0)
            continue;
        uint64_t n;
        bool negative;
        if (!parse_decimal(st->value, &n, &negative) || negative || n < keys[k].lo ||
            n > keys[k].hi)
            return fail(at, name, "must be a number between %lu and %lu, not '%.40s'",
                        keys[k].lo, keys[k].hi, st->value);
    }
    return 0;
}

static int load_root(struct loader *L)
{
    const yaml_node_t *root = yaml_document_get_root_node(L->doc);
    if (root == NULL || is_null(root))
        return 0; /* an empty file, or only comments: all defaults */
    if (root->type != YAML_MAPPING_NODE)
        return im_error_set(L->err, IM_EINVAL, "%s:%u: expected a mapping at the top level, found %s",
                            L->path, line_of(root), node_kind(root));
    int rc = load_mapping(L, root, NULL);
    if (rc != 0)
        return rc;
    if (L->postgres_line && strcmp(L->cfg.storage_engine, "postgres") != 0)
        return fail((struct where){ L->err, L->path, L->postgres_line }, "storage.postgres",
                    "is for storage.engine postgres (the engine is %s)", L->cfg.storage_engine);
    rc = check_postgres(L);
    if (rc != 0)
        return rc;
    return check_rules(&L->cfg, L->err, L->path, L->field_line);
}

/* The file's bytes as the first pass read them (all of them, unless it
 * stopped at an error), for the second pass and for error lines. */
struct text {
    FILE *f;
    unsigned char *buf;
    size_t len, cap;
    bool no_memory;
};

/* libyaml's read handler for the first pass: reads from the file and keeps
 * a copy. Returns 0 (an error for libyaml) when the file cannot be read or
 * the copy cannot grow. */
static int read_and_keep(void *data, unsigned char *buffer, size_t size, size_t *size_read)
{
    struct text *t = data;
    size_t n = fread(buffer, 1, size, t->f);
    if (n == 0 && ferror(t->f))
        return 0;
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n)
            cap *= 2;
        unsigned char *p = realloc(t->buf, cap);
        if (p == NULL) {
            t->no_memory = true;
            return 0;
        }
        t->buf = p;
        t->cap = cap;
    }
    if (n > 0)
        memcpy(t->buf + t->len, buffer, n);
    t->len += n;
    *size_read = n;
    return 1;
}

/* The 1-based line of byte offset in what was read. */
static unsigned line_at(const struct text *t, size_t offset)
{
    unsigned line = 1;
    for (size_t i = 0; i < offset && i < t->len; i++)
        line += t->buf[i] == '\n';
    return line;
}

/* Turns libyaml's failure into an im_error. */
static int parse_error(const yaml_parser_t *parser, const struct text *t, const char *path,
                       im_error *err)
{
    switch (parser->error) {
    case YAML_MEMORY_ERROR:
        return im_error_set(err, IM_ENOMEM, "%s: out of memory while parsing", path);
    case YAML_READER_ERROR:
        if (t->no_memory)
            return im_error_set(err, IM_ENOMEM, "%s: out of memory while reading", path);
        if (ferror(t->f))
            return im_error_set(err, IM_EIO, "%s: cannot read: %s", path, strerror(errno));
        /* Bad encoding, a control character, a NUL: libyaml knows the
         * byte, and the bytes up to it say the line. */
        return im_error_set(err, IM_EINVAL, "%s:%u: %s (byte %zu): not a UTF-8 text file?",
                            path, line_at(t, parser->problem_offset),
                            parser->problem ? parser->problem : "unreadable text",
                            parser->problem_offset);
    default:
        break;
    }
    const char *problem = parser->problem ? parser->problem : "syntax error";
    unsigned line = (unsigned)parser->problem_mark.line + 1;
    if (parser->context != NULL)
        return im_error_set(err, IM_EINVAL, "%s:%u: %s (%s on line %u)", path, line, problem,
                            parser->context, (unsigned)parser->context_mark.line + 1);
    return im_error_set(err, IM_EINVAL, "%s:%u: %s", path, line, problem);
}

/* The first pass: reads the whole file as events, for its syntax and how
 * deeply it nests, and keeps its bytes in t. It stops at the first
 * collection deeper than IM_CONFIG_MAX_DEPTH: libyaml's scanner does work
 * in proportion to the depth for every token, so a file of tens of
 * thousands of nested '[' would take seconds to minutes to load (quadratic
 * time), and no key of the config needs more than a few levels. */
static int first_pass(struct text *t, const char *path, im_error *err)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return im_error_set(err, IM_ENOMEM, "%s: out of memory", path);
    yaml_parser_set_input(&parser, read_and_keep, t);
    unsigned depth = 0;
    int rc = 0;
    for (bool done = false; !done && rc == 0;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parse_error(&parser, t, path, err);
            break;
        }
        switch (ev.type) {
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            if (++depth > IM_CONFIG_MAX_DEPTH)
                rc = im_error_set(err, IM_EINVAL, "%s:%u: nested more than %u levels deep: "
                                  "no key of the config needs that", path,
                                  (unsigned)ev.start_mark.line + 1, IM_CONFIG_MAX_DEPTH);
            break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            depth--;
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc;
}

int im_config_load(const char *path, im_config *c, im_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return im_error_set(err, IM_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return im_error_set(err, IM_EIO, "%s: cannot open: %s", path, strerror(EISDIR));
    }

    struct text t = { .f = f };
    int rc = first_pass(&t, path, err);
    if (rc != 0) {
        free(t.buf);
        fclose(f);
        return rc;
    }

    /* The second pass builds the tree from the bytes the first one kept:
     * the file is read once, and whatever it is (a pipe too). */
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        free(t.buf);
        fclose(f);
        return im_error_set(err, IM_ENOMEM, "%s: out of memory", path);
    }
    yaml_parser_set_input_string(&parser, t.buf ? t.buf : (const unsigned char *)"", t.len);

    /* Everything is read into a copy, so that a bad file changes nothing. */
    struct loader L = { .err = err, .path = path, .doc = &doc };
    im_config_defaults(&L.cfg);

    /* yaml_parser_load frees the document itself when it fails. */
    if (!yaml_parser_load(&parser, &doc)) {
        rc = parse_error(&parser, &t, path, err);
        goto out;
    }
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    bool empty = root == NULL || is_null(root);
    rc = load_root(&L);
    yaml_document_delete(&doc);
    if (rc != 0)
        goto out;

    /* A second document would be silently ignored: refuse it. */
    if (!yaml_parser_load(&parser, &doc)) {
        rc = parse_error(&parser, &t, path, err);
        goto out;
    }
    const yaml_node_t *extra = yaml_document_get_root_node(&doc);
    if (extra != NULL)
        rc = im_error_set(err, IM_EINVAL, "%s:%u: only one YAML document is allowed", path,
                          line_of(extra));
    yaml_document_delete(&doc);
    if (rc == 0) {
        *c = L.cfg;
        c->storage_engine_line = L.field_line[FI_ENGINE];
        c->accounts_mode_line = L.field_line[FI_ACC_MODE];
        c->transport_line = L.field_line[FI_TRANSPORT];
        c->cluster_line = L.field_line[FI_CLUSTER];
        c->empty = empty;
        snprintf(c->source, sizeof c->source, "%s", path);
    }
out:
    yaml_parser_delete(&parser);
    free(t.buf);
    fclose(f);
    return rc;
}
