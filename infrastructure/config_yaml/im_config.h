/* infrastructure/config_yaml/im_config.h: the server's settings, read from
 * one YAML file (config/imcore.yaml documents every key).
 *
 * The record is plain data of fixed size, so it can be copied, compared and
 * handed to threads without owning anything. This module knows the keys,
 * their defaults and their ranges, and nothing of what they are used for:
 * main.c copies the values into the services and adapters. */
#ifndef IM_CONFIG_H
#define IM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include "imcore/errors.h"

#define IM_CONFIG_MAX_WORKERS 64u
#define IM_CONFIG_MAX_PLUGINS 8u
#define IM_CONFIG_MAX_PLUGIN_KEYS 32u
/* Mappings and lists nest at most this deep, the top-level mapping counted:
 * the schema's deepest key is a plugin's config (plugins: [ {config: {...}} ]
 * is 4 levels), which leaves a plugin 12 levels of its own. */
#define IM_CONFIG_MAX_DEPTH 16u
/* Entries of a `listen:` list (each takes four of the transport's
 * IM_CONFIG_MAX_PLUGIN_KEYS settings). */
#define IM_CONFIG_MAX_LISTENERS 4u

/* One scalar of a plugin's `config:` subtree, its key flattened with dots. */
typedef struct im_plugin_setting {
    char key[64];
    char value[256];
    unsigned line;
} im_plugin_setting;

/* One entry of `plugins:`. */
typedef struct im_plugin_config {
    char name[64];                /* 1..63 of [A-Za-z0-9_-] */
    char path[256];               /* "": plugin_dir/<name>.so */
    unsigned line;                /* of the entry, for messages */
    im_plugin_setting settings[IM_CONFIG_MAX_PLUGIN_KEYS];
    unsigned nsettings;
} im_plugin_config;

enum { IM_ROUTE_BOUNDED_HASH = 0, IM_ROUTE_LEAST_LOADED = 1 };

/* One entry of a `listen:` list: a listener of the transport, named by its
 * kind (docs/architecture.md, "Listeners and carriers"). */
typedef struct im_listen_config {
    char transport[16];           /* "tcp" or "tls" */
    char host[64];                /* an IPv4 or IPv6 literal, default "127.0.0.1" */
    uint16_t port;                /* 0 = an ephemeral port */
    uint32_t max_connections;     /* 0: only limits.max_connections */
    char cert[256];               /* tls: the certificate chain (PEM), required */
    char key[256];                /* tls: its private key (PEM), required */
    char client_ca[256];          /* tls: "" or the CAs a client certificate must chain to */
    unsigned line, cert_line, key_line, client_ca_line; /* in source, for messages */
} im_listen_config;

typedef struct im_config {
    char listen_host[64];         /* listen.host, default "127.0.0.1"; an IPv4 or IPv6 literal */
    uint16_t listen_port;         /* listen.port, default 7000; 0 = an ephemeral port */
    /* listen as a list: nlisteners entries (the first also in listen_host
     * and listen_port); 0 for the mapping form, one tcp listener. */
    im_listen_config listeners[IM_CONFIG_MAX_LISTENERS];
    unsigned nlisteners;
    unsigned workers;             /* workers, default 0 = number of online CPUs; max 64 */
    char node_id[64];             /* node_id, default "node-1"; 1..63 chars [A-Za-z0-9_.-] */
    uint32_t max_connections;     /* limits.max_connections, default 19000, 1..1000000 */
    uint32_t max_frame_bytes;     /* limits.max_frame_bytes, default 65536, 64..16777216 */
    uint32_t max_body_bytes;      /* limits.max_body_bytes, default 8192, 1..max_frame_bytes-512
                                   * (IM_FRAME_RESERVE, imcore/message.h) */
    uint32_t max_group_members;   /* limits.max_group_members, default 1000, 1..100000 */
    uint32_t max_groups_per_user; /* limits.max_groups_per_user, default 100, 0..1000000; 0 = no
                                   * limit: groups one user created that still exist */
    uint32_t output_buffer_bytes; /* limits.output_buffer_bytes, default 4194304, 4096..1073741824:
                                   * a session whose unsent output exceeds this is closed as a
                                   * slow consumer */
    uint32_t send_rate;           /* limits.messages_per_second, default 200, 0..1000000; 0 = unlimited */
    uint32_t send_burst;          /* limits.message_burst, default 400, 1..1000000 */
    uint32_t plugin_backlog;      /* limits.plugin_backlog, default 10000, 1..1000000: deliveries
                                   * to one service account held in memory for its plugin */
    unsigned heartbeat_s;         /* session.heartbeat_s, default 30, 1..3600 */
    unsigned idle_timeout_s;      /* session.idle_timeout_s, default 90, 1..86400; > heartbeat_s */
    unsigned login_timeout_s;     /* session.login_timeout_s, default 10, 1..3600: a connection
                                   * not logged in by then is closed */
    unsigned frame_timeout_s;     /* session.frame_timeout_s, default 30, 1..3600: a frame begun
                                   * must be complete by then */
    uint32_t max_unauthenticated; /* limits.max_unauthenticated, default 0 = half of
                                   * max_connections, 0..1000000: connections not logged in */
    uint32_t max_unauth_per_address; /* limits.max_unauthenticated_per_address, default 1000,
                                   * 1..1000000 */
    uint32_t input_budget_bytes;  /* limits.input_buffer_bytes, default 67108864 (64 MiB),
                                   * 65536..4294967295: input read but not yet taken as
                                   * frames, over all connections */
    int login_policy;             /* session.login_policy: "replace" (0, default) or "reject" (1),
                                   * the values of im_login_policy (imcore/route.h) */
    int log_level;                /* log_level: debug|info|warn|error, default info (an im_log_level) */
    char storage_engine[64];      /* storage.engine, default "sqlite": the storage adapter, the plugin
                                   * storage_<engine>.so in plugin_dir ("sqlite", "memory" are built
                                   * in); 1..63 of [A-Za-z0-9_.-] */
    unsigned storage_engine_line; /* its line in source, 0 if not there */
    char storage_path[256];       /* storage.path, default "data/imcore.db"; its directory is created */
    uint32_t storage_max_batch;   /* storage.max_batch, default 512, 1..100000; 1 = no group commit */
    int storage_synchronous;      /* storage.synchronous: "full" (IM_STORAGE_SYNC_FULL, default) or "normal" */
    uint32_t storage_max_pages;   /* storage.max_page_count, default 0 = no limit, 0..4294967295 */
    int storage_check;            /* storage.check_on_start: "quick" (IM_STORAGE_CHECK_QUICK, default)
                                   * or "none" */
    im_plugin_config storage_options; /* storage.options: the adapter's own keys, flattened
                                   * (name and path unused) */
    char transport[64];           /* transport, default "tcp": the transport adapter, the plugin
                                   * transport_<name>.so in plugin_dir ("tcp" is built in);
                                   * 1..63 of [A-Za-z0-9_.-] */
    unsigned transport_line;      /* its line in source, 0 if not there */
    im_plugin_config transport_options; /* transport_options: the adapter's own keys, flattened
                                   * as options.* (name and path unused) */
    char cluster[64];             /* cluster, default "none": no cluster adapter; any other name
                                   * is the plugin cluster_<name>.so in plugin_dir, which wraps
                                   * the route port to reach other nodes; 1..63 of [A-Za-z0-9_.-] */
    unsigned cluster_line;        /* its line in source, 0 if not there */
    im_plugin_config cluster_options; /* cluster_options: the cluster adapter's own keys
                                   * (redis.host, redis.port, advertise...), flattened as
                                   * options.* (name and path unused); the adapter checks them */
    int accounts_mode;            /* accounts.mode: "password" (IM_ACCOUNTS_PASSWORD, default) or "open";
                                   * password needs a storage engine with accounts (the
                                   * storage port's account operation), checked at start */
    unsigned accounts_mode_line;  /* its line in source, 0 if not there */
    int accounts_hash_cost;       /* accounts.password_hash: interactive (0, default) | moderate | min */
    uint32_t accounts_token_ttl_s;/* accounts.token_ttl_s, default 2592000 (30 days), 60..31536000 */
    uint32_t accounts_max_failures; /* accounts.max_login_failures, default 5, 0..1000000; 0 = no limit */
    uint32_t accounts_failure_window_s; /* accounts.login_failure_window_s, default 60, 1..86400 */
    uint32_t accounts_hash_threads; /* accounts.hash_threads, default 2, 1..64: threads that
                                   * check passwords (token work has one more of its own) */
    uint32_t accounts_max_pending; /* accounts.max_pending, default 256, 1..100000: password
                                   * checks (and, apart, token logins) waiting; more: BUSY */
    uint32_t accounts_max_registrations; /* accounts.max_registrations, default 100, 0..1000000;
                                   * per address in the same window; 0 = no limit */
    uint32_t accounts_max_tokens; /* accounts.max_tokens_per_user, default 10, 1..1000: a login past
                                   * it drops the user's oldest token */
    /* The cluster's shared settings: one file can serve every node and
     * the route service (imcore-route), each reading what it uses. */
    char zookeeper_hosts[256];    /* zookeeper.hosts, default "": "host:port[,host:port...]" */
    char zookeeper_root[128];     /* zookeeper.root, default "/imcore/nodes": the nodes' znodes */
    uint32_t zookeeper_session_ms;/* zookeeper.session_timeout_ms, default 10000, 400..120000:
                                   * a node that dies leaves the list after about this */
    char route_host[64];          /* route.host, default "127.0.0.1": imcore-route's HTTP listener */
    uint16_t route_port;          /* route.port, default 8480; 0 = an ephemeral port */
    int route_policy;             /* route.policy: "bounded-hash" (IM_ROUTE_BOUNDED_HASH, default)
                                   * or "least-loaded" */
    uint32_t route_load_factor;   /* route.load_factor_percent, default 125, 100..1000: with
                                   * bounded-hash, no node is given more than this percent of
                                   * the mean load */
    char plugin_dir[256];         /* plugin_dir: where plugins are found by name, default
                                   * IMCORE_PLUGIN_DIR (set at build time: the build's plugins) */
    im_plugin_config plugins[IM_CONFIG_MAX_PLUGINS]; /* plugins: loaded in this order */
    unsigned nplugins;
    char source[256];             /* the file this was loaded from ("" for defaults) */
    bool empty;                   /* the file set nothing (empty, or only comments): every key
                                   * has its default, which the server says at start */
} im_config;

enum { IM_STORAGE_SYNC_FULL = 0, IM_STORAGE_SYNC_NORMAL = 1 };
enum { IM_STORAGE_CHECK_QUICK = 0, IM_STORAGE_CHECK_NONE = 1 };
enum { IM_ACCOUNTS_PASSWORD = 0, IM_ACCOUNTS_OPEN = 1 };

/* Fills c with the defaults above. workers stays 0: whoever starts the
 * workers asks the system for the number of online CPUs. */
void im_config_defaults(im_config *c);

/* Reads the YAML file at path over the defaults and, only when the whole file
 * is valid, stores the result in *c; on error *c is untouched.
 *
 * The file holds one mapping (an empty file, or a section left empty, means
 * the defaults; c->empty tells the first case). Numbers are plain decimal
 * integers; unknown keys, duplicate keys, values out of range and a mapping
 * where a value is expected (or the reverse) are all errors. The file is
 * read once; mappings and lists nested deeper than IM_CONFIG_MAX_DEPTH are
 * refused while it is read, before the rest of it is parsed.
 *
 * Errors:
 *   IM_EINVAL  the content is wrong; err->msg is "FILE:LINE: KEY: what is
 *              wrong", KEY dotted ("limits.max_frame_bytes"), LINE 1-based
 *              and the line of the key. A YAML syntax error is
 *              "FILE:LINE: libyaml's problem text (its context)"; bytes that
 *              are not UTF-8 text (a binary file) "FILE:LINE: what (byte N):
 *              ..."; too deep a nesting "FILE:LINE: nested more than 16
 *              levels deep: ...", LINE where the level too many starts.
 *   IM_EIO     the file cannot be opened or read ("FILE: cannot open: why").
 *   IM_ENOMEM  libyaml ran out of memory. */
int im_config_load(const char *path, im_config *c, im_error *err);

/* Checks every field of c, which may have been changed after loading
 * (command-line overrides): the ranges above and the rules between fields
 * (idle_timeout_s > heartbeat_s, max_body_bytes <= max_frame_bytes - 512).
 * Errors: IM_EINVAL with err->msg "KEY: what is wrong". */
int im_config_validate(const im_config *c, im_error *err);

#endif
