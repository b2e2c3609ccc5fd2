/* imcore/plugin.h: the plugin ABI of imcore-server. The only header a
 * plugin includes (it brings imcore/errors.h, for the error codes).
 *
 * A plugin is a shared object that exports two symbols: a description of
 * itself, which the server reads before it runs any of the plugin's code,
 * and its entry point. Both are declared below, so the compiler checks the
 * plugin's definitions against them:
 *
 *     IMCORE_PLUGIN_INFO("shout", "1.0");     (defines imcore_plugin_about)
 *
 *     int imcore_plugin_init(const imcore_host_api *api, imcore_host *host,
 *                            imcore_plugin *out);
 *
 * The server loads it with dlopen(RTLD_NOW | RTLD_LOCAL) when the YAML config
 * lists it and reads imcore_plugin_about: the build signature (the compiler
 * ABI the plugin was built for) must be the server's, and among the plugin
 * API versions the plugin speaks (api_min..api_max) the server picks the
 * newest it speaks too, or refuses the plugin, naming both ranges, before
 * its init ever runs. Then it calls imcore_plugin_init once, with out->
 * api_version set to the version it picked. The plugin fills *out and
 * returns 0, or returns non-zero after writing a sentence to out->error,
 * which the server prints and then refuses to start. (A shared object with
 * an init and no imcore_plugin_about is a plugin of version 1, which had
 * none: see "Versions" below.)
 *
 * A plugin reaches the server only through api and host, never through the
 * server's own symbols: build it with -fvisibility=hidden; the declarations
 * below export the two symbols, and nothing else need be.
 *
 * Adapters: a plugin that fills open_storage, open_transport or
 * open_cluster is one of the server's adapters, loaded by name from
 * storage.engine (storage_NAME.so), transport (transport_NAME.so) or
 * cluster (cluster_NAME.so); the server's own are plugins of this kind.
 *
 * Growing: every table that crosses the boundary starts with its size (or
 * the plugin's description with its signature and size) and is only ever
 * appended to: functions to imcore_host_api and imcore_core_api, callbacks
 * to imcore_plugin, fields to imcore_message, operations to the ports'
 * tables (im_store_ops, im_presence_ops, im_delivery_ops, im_replies_ops,
 * imcore_transport_ops). Each side
 * reads only what the other's table has: a plugin checks api->size (see
 * IMCORE_HAS) before calling a function a newer server added, and the
 * server treats an operation past the end of an adapter's table as absent,
 * with the fallback or the refusal its header gives for it.
 *
 * Versions: IMCORE_PLUGIN_API_VERSION changes only when something is
 * removed, moved or changes meaning; the server keeps serving the versions
 * before it that it can.
 *   1  the first release: the entry point only, and port tables without
 *      a size. Served still: extensions, and storage adapters (through a
 *      copy of the old layout of im_store_ops). Not served: transports
 *      (one may keep sessions of another size than the server's) and
 *      cluster adapters.
 *   2  imcore_plugin_about with the build signature and the versions
 *      spoken; the entry point declared here; im_store_ops, im_router_ops
 *      and imcore_transport_ops start with their size, and the operations
 *      a server can do without come last in each; a transport says the
 *      size of the sessions it was built for (session_size).
 *   3  the route port cut in three tables (imcore/route.h: presence,
 *      delivery, replies): a transport publishes them in place of its
 *      one `router`, and open_cluster wraps presence and delivery only.
 *      Served still: transports and cluster adapters of version 2, whose
 *      one route table the server cuts in three for them (the replies of
 *      a version 2 cluster adapter are not called: they go to the
 *      transport, as its own passed them on).
 *
 * Threads: on_message runs on the sending session's network thread,
 * several at once, so it must be thread-safe. Every other callback
 * (on_start, on_delivery, on_login, on_logout, on_timer, run_blocking's
 * done) runs on one thread, the plugin loop, shared by all plugins and
 * never more than one callback at a time: state touched only there needs
 * no lock (a done at a stop may run on the stopping thread instead, still
 * alone: see run_blocking). init, the open_* callbacks and shutdown run on the server's
 * main thread, alone. No
 * callback may block (no disk, no network, no sleep): a blocking callback
 * stalls every plugin, or every session of a network thread. Slow work
 * goes to run_blocking, which runs it on a thread of its own and calls
 * back on the plugin loop when it is done.
 *
 * Ownership: every pointer the server passes to a callback is borrowed for
 * the duration of that call only; copy what you keep. Every pointer a
 * plugin passes to the server is borrowed for the call; the server copies
 * what it keeps. imcore_plugin_about and the strings it points to are the
 * plugin's, static, read while the plugin is loaded. */
#ifndef IMCORE_PLUGIN_H
#define IMCORE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

/* For the IM_E* codes the host functions return. Only the codes: the
 * functions declared there live in the server, out of a plugin's reach. */
#include "errors.h"
/* A bot or a filter needs nothing more. The ports an adapter fills are
 * named here only by pointer: a storage adapter includes imcore/storage.h,
 * a transport imcore/transport.h, a cluster adapter imcore/route.h. */
typedef struct im_store im_store;
typedef struct im_presence im_presence;
typedef struct im_delivery im_delivery;
typedef struct imcore_transport imcore_transport;

#ifdef __cplusplus
extern "C" {
#endif

#define IMCORE_PLUGIN_API_VERSION 3

/* True if table (a pointer to any table of the ABI that starts with its
 * size: imcore_host_api, imcore_core_api, im_store_ops, ...) reaches field
 * and field is set: whether a function or operation is there to call.
 *     if (!IMCORE_HAS(api, kv_each)) { snprintf(out->error, ...); return 1; }  */
#define IMCORE_HAS(table, field)                                                  \
    ((table)->size >= offsetof(__typeof__(*(table)), field) + sizeof((table)->field) && \
     (table)->field != NULL)

/* The server's side of one loaded plugin. Opaque. */
typedef struct imcore_host imcore_host;

typedef enum imcore_log_level {
    IMCORE_LOG_DEBUG = 0,
    IMCORE_LOG_INFO = 1,
    IMCORE_LOG_WARN = 2,
    IMCORE_LOG_ERROR = 3,
} imcore_log_level;

typedef enum imcore_message_kind {
    IMCORE_MESSAGE_PRIVATE = 1,
    IMCORE_MESSAGE_GROUP = 2,
} imcore_message_kind;

/* A group request of a claimed account (group_call). */
typedef enum imcore_group_op {
    IMCORE_GROUP_CREATE = 1,     /* a public group, the account its owner */
    IMCORE_GROUP_JOIN = 2,
    IMCORE_GROUP_LEAVE = 3,
} imcore_group_op;

/* One message. All pointers borrowed for the callback. */
typedef struct imcore_message {
    size_t size;                 /* sizeof(imcore_message) as the server knows it */
    imcore_message_kind kind;
    const char *from;            /* the sender's user id */
    const char *to;              /* the receiver's user id (PRIVATE) or the group id (GROUP) */
    const uint8_t *body;         /* body_len bytes, not NUL-terminated; text is UTF-8 */
    size_t body_len;
    const char *client_msg_id;   /* the sender's id for the message (one the server made
                                  * for a plugin's own); "" only in one stored by an
                                  * older server */
    uint64_t seq;                /* 0 in on_message: not yet stored */
    uint64_t server_time_ms;     /* Unix time, milliseconds */
    /* Added after the first release: read only if size reaches them. */
    const char *from_name;       /* the sender's display name ("" if unknown) */
} imcore_message;

/* Called by group_members for each member; return non-zero to stop. */
typedef int (*imcore_member_fn)(void *arg, const char *user_id);
/* Called by kv_each for each key; value is len bytes, borrowed for the
 * call. Return non-zero to stop. */
typedef int (*imcore_kv_fn)(void *arg, const char *key, const void *value, size_t len);

/* What on_message decides. */
typedef enum imcore_verdict {
    IMCORE_PASS = 0,     /* no opinion: the next plugin decides, then the message goes on */
    IMCORE_DROP = 1,     /* refuse it: the sender gets Error REFUSED with the reason */
    IMCORE_REWRITE = 2,  /* go on with the body in the rewrite buffer */
} imcore_verdict;

/* Where on_message writes a new body or a reason: the server's buffer,
 * valid for the call. */
typedef struct imcore_rewrite {
    uint8_t *body;       /* capacity bytes; write the new body here for REWRITE */
    size_t capacity;     /* the server's max_body_bytes */
    size_t body_len;     /* set it for REWRITE: 1..capacity */
    char reason[128];    /* for DROP: shown to the sender, NUL-terminated */
} imcore_rewrite;

/* The server's limits that a plugin's own messages and groups keep to, as
 * configured (the limits: section). Filled by the server; read a field only
 * if size reaches it. */
typedef struct imcore_limits {
    size_t size;                 /* sizeof(imcore_limits) as the server knows it */
    uint32_t max_body_bytes;     /* a message body: send_* refuse more (IM_ETOOBIG) */
    uint32_t max_group_members;  /* members of one group */
    uint32_t plugin_backlog;     /* deliveries to one claimed account held in memory */
} imcore_limits;

/* The server's functions for a plugin. Every one takes the host handle the
 * plugin was given, and may be called from any thread. */
typedef struct imcore_host_api {
    size_t size;                 /* sizeof(imcore_host_api) as the server knows it */
    /* The plugin API version the server speaks to this plugin: the one it
     * picked from imcore_plugin_about (1 for a plugin without one). */
    unsigned api_version;

    /* A line in the server's log, tagged with the plugin's name; bytes outside
     * printable ASCII are written \xNN, as in every line of the log. */
    void (*log)(imcore_host *h, imcore_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

    /* The plugin's own config subtree (the `config:` mapping of its entry
     * in the YAML), flattened to dotted keys: "words", "limits.max"; a
     * list of scalars is one string, its items joined with ", ". Returns
     * the value as text, or NULL if absent. Borrowed until shutdown. */
    const char *(*config_get)(imcore_host *h, const char *key);
    /* Where key is written, "FILE:LINE", for the plugin's own error
     * messages; NULL if absent. Borrowed until shutdown. */
    const char *(*config_where)(imcore_host *h, const char *key);

    /* ---- added after the first release: check size before calling ----
     * Unless said otherwise, these return 0 (or a count) on success and a
     * negative IM_E* code of imcore/errors.h on failure. */

    /* Makes user_id a service account this plugin speaks for: from the
     * start of service it is online, messages to it (private, and group
     * messages of its groups) go to on_delivery, and no client can log in
     * as it. display_name NULL or "" shows the id. Only during init.
     * on_login is not called for claimed accounts, nor for users who were
     * online before on_start (there are none: clients come after it).
     * Errors: IM_EINVAL (bad id or name), IM_EEXIST (claimed by another
     * plugin), IM_ESTATE (not in init). */
    int (*claim_user)(imcore_host *h, const char *user_id, const char *display_name);

    /* Sends body (UTF-8, body_len bytes) from the claimed user `from` to the
     * user `to`, or to the group `group`, as that user's client would: the
     * message is filtered, stored and delivered like any other, with a
     * client_msg_id the server makes up (each message its own, so the same
     * text sent twice is two messages). Returns 0 once accepted; a failure
     * after that (a full disk) is logged. From any thread; messages sent
     * from one thread leave in the order sent.
     * Errors: IM_EINVAL (from is not claimed by this plugin, bad receiver,
     * empty body), IM_ETOOBIG, IM_ENOGROUP, IM_ENOTMEMBER, IM_EOFFLINE
     * (memory storage only: to is not online), IM_ENOMEM, IM_ESHUTDOWN. */
    int (*send_private)(imcore_host *h, const char *from, const char *to, const uint8_t *body,
                        size_t body_len);
    int (*send_group)(imcore_host *h, const char *from, const char *group, const uint8_t *body,
                      size_t body_len);

    /* Makes the claimed user `account` a member of group, as that user's
     * client would with a Join (the group must exist and have room); the
     * outcome is logged. Same threads and errors as send_group. */
    int (*group_join)(imcore_host *h, const char *account, const char *group);

    /* 1 if user_id has a live session on this server, else 0. Any thread. */
    int (*is_online)(imcore_host *h, const char *user_id);

    /* Calls fn for each member of group, in join order (the owner first);
     * returns how many members it has. Any thread. Errors: IM_ENOGROUP. */
    int (*group_members)(imcore_host *h, const char *group, imcore_member_fn fn, void *arg);

    /* Calls on_timer(state, id, arg) on the plugin loop after_ms from now,
     * then every every_ms (0: once). Returns the timer's id (> 0), or 0 when
     * out of memory. In init, on_start or another plugin-loop callback. */
    uint64_t (*timer_start)(imcore_host *h, uint64_t after_ms, uint64_t every_ms, void *arg);
    /* Stops the timer; unknown or finished ids are ignored. On the plugin
     * loop, or in init. A timer started in init may fire before on_start:
     * start timers in on_start when they need its state.
     * At a stop, timers fire until the plugin loop ends (it first runs what
     * is queued for it); the ones still pending then are cancelled by the
     * server: freed, with no on_timer and no other call, so on_timer never
     * runs once the loop has ended, nor during or after shutdown. A timer
     * started during the stop may never fire, and once the loop has ended
     * timer_start returns 0. Work that must happen at the end belongs in
     * shutdown. */
    void (*timer_cancel)(imcore_host *h, uint64_t timer_id);

    /* Runs work(arg) on a thread that may block (one thread, in call
     * order), then done(state, arg) on the plugin loop. done may be NULL.
     * Any thread. Errors: IM_ENOMEM, IM_ESHUTDOWN (the server has begun to
     * stop: neither work nor done will run).
     * Once it has returned 0, work runs exactly once and then done exactly
     * once, a stop included, and both before the plugin's shutdown: an
     * accepted job is never cancelled, so done has no "cancelled" result.
     * At a stop the blocking thread first finishes every job it holds, and
     * their done run on the plugin loop before it ends. What tells a done
     * (or any callback) that the server is stopping is run_blocking
     * itself: from the start of the stop it returns IM_ESHUTDOWN. If the
     * server stops before its threads ever ran (a failed start), work and
     * then done of each job run on the thread that stops it, alone; host
     * calls from them then fail (IM_ESHUTDOWN; timer_start returns 0). */
    int (*run_blocking)(imcore_host *h, void (*work)(void *arg),
                        void (*done)(void *state, void *arg), void *arg);

    /* A small durable map of the plugin's own (keys are seen by no other
     * plugin), kept by the server's storage, so it survives a restart when
     * the storage does. kv_put sets key to value (len bytes; value NULL
     * deletes the key); it returns at once, and puts are applied in call
     * order. Keys: 1..200 bytes of text; values: at most 65,536 bytes. Any
     * thread, from on_start on. Errors: IM_EINVAL, IM_ENOMEM, IM_ESHUTDOWN,
     * IM_ESTATE (before on_start, in init), IM_EUNSUPPORTED (the storage
     * adapter has no key-value map: its table ends before kv_put). */
    int (*kv_put)(imcore_host *h, const char *key, const void *value, size_t len);
    /* A put is durable once the store has committed it (milliseconds,
     * with the next messages); a clean stop commits every put made before
     * it, a crash may lose the last ones.
     * kv_each calls fn for every key that starts with prefix ("" for all),
     * in key order, with what earlier puts have made durable; returns how
     * many it visited. fn may call kv_put, not kv_each. Reads the disk: call it in on_start, or in run_blocking's
     * work (or any thread of the plugin's own); on the plugin loop outside
     * on_start it is refused (IM_ESTATE, and a WARN), since it would hold
     * up every plugin's callbacks. Errors: IM_EIO, IM_ESTATE (before
     * on_start; on the loop outside on_start), IM_EUNSUPPORTED (as for
     * kv_put). */
    int (*kv_each)(imcore_host *h, const char *prefix, imcore_kv_fn fn, void *arg);

    /* The level the server logs at: log lines below it are dropped, so a
     * plugin can skip building them. */
    imcore_log_level (*log_level)(imcore_host *h);

    /* The index-th key of the plugin's config (0, 1, ...), in file order,
     * or NULL past the end: to refuse keys the plugin does not know, which
     * are most often misspelt ones. Borrowed until shutdown. */
    const char *(*config_key)(imcore_host *h, unsigned index);

    /* The server's limits, for a plugin to check its own texts against
     * (at init, say: an answer longer than max_body_bytes could never be
     * sent). Borrowed until shutdown, and the same for the whole run. Any
     * time, init included. */
    const imcore_limits *(*limits)(imcore_host *h);

    /* 1 if user_id is a service account that a plugin has claimed
     * (claim_user), else 0. Such an account needs no registered account to
     * receive messages: a storage adapter told `receivers: accounts` asks
     * this for a receiver it finds no account for. Any thread, from the
     * end of the plugins' init on (claims are fixed then). */
    int (*is_service_account)(imcore_host *h, const char *user_id);

    /* ---- appended after is_service_account: typed config values ----
     * Each reads key of the plugin's config, or gives fallback when the
     * key is absent, and returns 0; a value it cannot take is refused with
     * IM_EINVAL and a sentence in error (error_size bytes, always
     * NUL-terminated) that names the file, line and key, ready to copy into
     * imcore_plugin.error: "FILE:LINE: plugin NAME: limit: must be a whole
     * number between 1 and 100, not 'ten'". *out is untouched then. Any
     * time, init included; check IMCORE_HAS(api, config_uint) first. */

    /* A whole number in lo..hi, decimal. */
    int (*config_uint)(imcore_host *h, const char *key, uint64_t lo, uint64_t hi,
                       uint64_t fallback, uint64_t *out, char *error, size_t error_size);
    /* true, yes, on, 1 / false, no, off, 0 (any case). */
    int (*config_bool)(imcore_host *h, const char *key, int fallback, int *out, char *error,
                       size_t error_size);
    /* A duration, in milliseconds, lo_ms..hi_ms: a number with a unit, ms,
     * s, m or h ("250ms", "30s", "5m", "2h"; a bare number is seconds). */
    int (*config_duration_ms)(imcore_host *h, const char *key, uint64_t lo_ms, uint64_t hi_ms,
                              uint64_t fallback, uint64_t *out, char *error, size_t error_size);

    /* ---- appended after config_duration_ms ---- */

    /* A list: each item of key (a YAML list, or one scalar as a list of
     * one) to fn(arg, item), in order, item borrowed for the call; fn
     * returning non-zero stops. Returns how many items fn saw (0 for an
     * absent key), or IM_EINVAL with error filled as above when fn
     * refused an item by returning IM_EINVAL (the sentence then names the
     * item). */
    int (*config_list)(imcore_host *h, const char *key, int (*fn)(void *arg, const char *item),
                       void *arg, char *error, size_t error_size);

    /* The claimed account (the plugin's own) creates, joins or leaves
     * group, as a client's request would, and done(state, rc, arg) tells
     * the outcome: rc 0, or what a client would be told (IM_EEXIST,
     * IM_ENOGROUP, IM_EFULL, IM_EMEMBER, IM_ENOTMEMBER, IM_EQUOTA,
     * IM_EINVAL, IM_ENOSPC, IM_EIO...). done runs exactly once, later, on
     * the plugin loop, if this returns 0; if the server stops first it
     * runs with IM_ESHUTDOWN before the plugin's shutdown. On the plugin
     * loop only (any callback from on_start on). Errors at once, with no
     * done: IM_EINVAL (not this plugin's account, no group or done),
     * IM_ESTATE (not on the plugin loop, or before on_start), IM_ENOMEM,
     * and what the request itself is refused with before it is made
     * (IM_EINVAL for a bad group id, IM_EMEMBER...). */
    int (*group_call)(imcore_host *h, const char *account, imcore_group_op op, const char *group,
                      void (*done)(void *state, int rc, void *arg), void *arg);

    /* ---- appended after group_call ---- */

    /* Reads key of the plugin's key-value map without blocking the loop:
     * the read runs on the blocking thread, after every kv_put the plugin
     * made before this call has been stored (so a plugin reads its own
     * writes), and done(state, rc, value, len, arg) runs on the plugin
     * loop: rc 0 with the value (len bytes, borrowed for the call; len 0
     * for an empty value), IM_ENOTFOUND with value NULL when the key is
     * absent, IM_EIO, or IM_ESHUTDOWN if the server stops first (done
     * still runs once, before shutdown). Any thread, from on_start on.
     * Errors at once, with no done: IM_EINVAL (a bad key, no done),
     * IM_ESTATE (before on_start), IM_ENOMEM, IM_ESHUTDOWN,
     * IM_EUNSUPPORTED (as for kv_put). */
    int (*kv_get)(imcore_host *h, const char *key,
                  void (*done)(void *state, int rc, const void *value, size_t len, void *arg),
                  void *arg);

    /* Functions are appended here in later versions: check size first. */
} imcore_host_api;

/* What the plugin registers, filled by imcore_plugin_init. The server
 * zeroes it and sets size, api_version, name and version before the call. Every callback is
 * optional (NULL). state is handed back to every callback. */
typedef struct imcore_plugin {
    size_t size;                 /* set by the server: sizeof(imcore_plugin) as it knows it */
    /* Set by the server before init: the version it picked from the
     * plugin's imcore_plugin_about. The plugin leaves it (or sets it to the
     * same); the server refuses a plugin that answers another. */
    unsigned api_version;
    const char *name;            /* static strings, for logs; the server sets them */
    const char *version;         /* from imcore_plugin_about before init */
    void *state;                 /* the plugin's own */
    char error[200];             /* why init failed, for people */

    /* Every message a user sends, before it is stored: pass, drop or
     * rewrite. On the sender's network thread, several at once: must be
     * thread-safe, and must not block. Plugins are asked in config order;
     * the first DROP wins; a REWRITE's body is what the next plugin sees. */
    imcore_verdict (*on_message)(void *state, const imcore_message *m, imcore_rewrite *out);

    /* The server is stopping: free everything. No host call but log. */
    void (*shutdown)(void *state);

    /* ---- added after the first release (in what were reserved slots);
     * the server calls them only if its imcore_host_api has claim_user ---- */

    /* The server is ready: storage is open, claimed users are online, and
     * no client has been let in yet. The one plugin-loop callback that may
     * read the disk (kv_each). Before any on_delivery. */
    void (*on_start)(void *state);

    /* A message for the claimed user `account`, private or from one of its
     * groups, in the order the store gave them: m->seq grows within each
     * conversation and names the message for good, so a plugin that must
     * not act twice can remember the last seq it handled. Messages stored while the
     * server was down come first. Delivery is at least once: a message
     * counts as received when on_delivery returns, so one being handled
     * when the server stopped comes again at the next start. A slow plugin
     * is not flooded: past limits.plugin_backlog messages waiting for the
     * account, new ones wait in a durable store and follow, in the same
     * order, once those are handled; with the memory store private
     * messages to it are refused with IM_EBUSY and group messages skip
     * it. */
    void (*on_delivery)(void *state, const char *account, const imcore_message *m);

    /* user_id came online (its first session went live) or went offline
     * (its last session closed). A session replaced by a newer login of the
     * same user is neither. While the plugin loop is behind, a user has at
     * most one event waiting and a newer one replaces it: the plugin learns
     * each user's latest state, not every change (it may then see a logout
     * for a user it never saw log in, or two logins in a row). */
    void (*on_login)(void *state, const char *user_id, const char *display_name);
    void (*on_logout)(void *state, const char *user_id);

    /* A timer of timer_start fired; arg is the one given there. */
    void (*on_timer)(void *state, uint64_t timer_id, void *arg);

    /* A storage adapter: opens the store the server keeps everything in,
     * from the plugin's config (the `storage:` section: path, max_batch,
     * synchronous, max_page_count, check_on_start, and options.* for the
     * adapter's own keys), and the server's key `receivers`: "accounts"
     * when logins need an account (accounts.mode: password), so a private
     * message to an id with no account, that is no service account
     * (is_service_account), must be refused by append's completion with
     * IM_EUNKNOWNUSER and stored nowhere; "any" otherwise, every
     * well-formed id being a user. A store that is not durable may ignore
     * it: the server refuses messages to offline users before they reach
     * such a store, and only a user with an account can be online. Called
     * once, on the main thread, after init; *out is the adapter's, until
     * its destroy op. Return 0, or an IM_E* code with err saying why. A
     * plugin named by storage.engine must have it; the server's own
     * adapters (storage_sqlite, storage_memory) are plugins of exactly
     * this kind. */
    int (*open_storage)(void *state, im_store **out, im_error *err);

    /* A transport: opens what clients connect to (imcore/transport.h),
     * from the plugin's config: the server's listen.host, listen.port,
     * workers (already resolved: >= 1), node_id, limits.max_connections,
     * limits.max_frame_bytes, limits.output_buffer_bytes,
     * session.heartbeat_s, session.idle_timeout_s, session.login_timeout_s,
     * session.frame_timeout_s, limits.max_unauthenticated (resolved: never
     * 0), limits.max_unauthenticated_per_address, limits.input_buffer_bytes,
     * accounts.max_login_failures, accounts.login_failure_window_s and
     * accounts.max_registrations, and options.* for the
     * `transport_options:` mapping. Called once, on the
     * main thread, after init and after open_storage; it may bind its
     * socket here (a port in use is then a start-up error). *out is the
     * adapter's until the server calls (*out)->ops->destroy, which it does
     * before it unloads the plugin. Return 0, or an IM_E* code with err
     * saying why. A plugin named by `transport:` must have it; the
     * server's own (transport_tcp) is a plugin of exactly this kind. */
    int (*open_transport)(void *state, imcore_transport **out, im_error *err);

    /* A cluster adapter: wraps this node's presence and delivery (the
     * transport's, borrowed: valid until the adapter's shutdown) into the
     * ones the application uses, which also reach users on other nodes:
     * what it cannot or need not send elsewhere it passes to the local
     * ones (the way the server's own plugin host wraps them for service
     * accounts). An endpoint whose node is not this one's is the adapter's
     * to reach; it never needs a session's pointer, and the replies to a
     * session (imcore/route.h) never pass through it: the requester is
     * always connected to this node. Every op of *presence and *delivery
     * may be called from any thread at once, and must not block (see
     * imcore/route.h). Both are the adapter's, valid until its shutdown,
     * which the server calls only once nothing can use them any more, and
     * before it destroys the transport (so before the other plugins'
     * shutdown): after it, the adapter must not use the local ones.
     * Called once, on the main thread, after open_transport; return 0, or
     * an IM_E* code with err saying why. A plugin named by `cluster:` must
     * have it. Built in: cluster_redis (docs/cluster.md); cluster: none
     * (the default) loads none. The config of the plugin: node_id,
     * listen.host, listen.port (the port the transport bound), the
     * zookeeper.* keys, session.login_policy, and options.* for the
     * `cluster_options:` mapping. (Version 2 had
     * open_cluster(state, im_router *local, im_router **out, err) here,
     * one table for all: the server still calls that for a plugin that
     * speaks version 2.) */
    int (*open_cluster)(void *state, im_presence *local_presence, im_delivery *local_delivery,
                        im_presence **presence, im_delivery **delivery, im_error *err);

    /* Callbacks are appended here in later versions (the reserved slots
     * are used up): a plugin sets one only if out->size reaches it, and the
     * server reads one only if it knows it. */
} imcore_plugin;

/* ---- what a plugin exports ---- */

/* The build signature: what a plugin and the server must agree on to
 * share structs at all, in one number that the server compares before it
 * reads anything else of the plugin. Bits 0-23 are the compiler's ABI
 * (sizes of int, long, size_t, pointers and enums, and the byte order)
 * and must be the server's; bits 24-31 are the IMCORE_PLUGIN_API_VERSION
 * of the header the plugin was built with. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define IMCORE__BYTE_ORDER 2u
#else
#define IMCORE__BYTE_ORDER 1u
#endif
#define IMCORE_PLUGIN_SIGNATURE                                                       \
    ((uint32_t)IMCORE_PLUGIN_API_VERSION << 24 | (uint32_t)IMCORE__BYTE_ORDER << 20 |  \
     (uint32_t)sizeof(imcore_log_level) << 16 | (uint32_t)sizeof(void *) << 12 |       \
     (uint32_t)sizeof(size_t) << 8 | (uint32_t)sizeof(long) << 4 | (uint32_t)sizeof(int))
#define IMCORE_PLUGIN_SIGNATURE_ABI(sig) ((uint32_t)(sig) & 0x00FFFFFFu)
#define IMCORE_PLUGIN_SIGNATURE_API(sig) ((uint32_t)(sig) >> 24)

/* The plugin's description of itself, a static constant the server reads
 * before it calls anything of the plugin (define it with IMCORE_PLUGIN_INFO,
 * or by hand with IMCORE_PLUGIN_INFO_FIELDS to set more). Fields are only
 * appended; the server reads one only if size reaches it. */
typedef struct imcore_plugin_info {
    uint32_t signature;          /* IMCORE_PLUGIN_SIGNATURE, as the plugin was built */
    uint32_t size;               /* sizeof(imcore_plugin_info) as the plugin knows it */
    /* The plugin API versions the plugin speaks: the server picks the
     * newest it speaks too and hands it to init in out->api_version. A
     * plugin speaks more than one only if it checks out->api_version and
     * uses each version's layouts; IMCORE_PLUGIN_INFO says this header's
     * version alone. */
    uint32_t api_min;
    uint32_t api_max;
    const char *name;            /* for logs: out->name until init sets another */
    const char *version;         /* for logs: out->version until init sets another */
    /* Transports only (open_transport). A transport that keeps the
     * server's im_session inside its own structs, by value, as one built
     * from the server's own tree does, sets the sizeof(im_session) it was
     * built with: the server refuses it, without calling its init, unless
     * that is its own session size (imcore_core_api.session_size), so a
     * stale build is never loaded. 0: the transport allocates
     * core->session_size bytes per session when it runs, and never reads
     * them but through the core's session_* functions. */
    size_t session_size;
    /* Fields are appended here in later versions. */
} imcore_plugin_info;

#define IMCORE_PLUGIN_INFO_FIELDS(name_, version_)                                  \
    .signature = IMCORE_PLUGIN_SIGNATURE, .size = sizeof(imcore_plugin_info),         \
    .api_min = IMCORE_PLUGIN_API_VERSION, .api_max = IMCORE_PLUGIN_API_VERSION,       \
    .name = (name_), .version = (version_)

/* Defines the plugin's description: one line at file scope,
 *     IMCORE_PLUGIN_INFO("word_filter", "1.2");
 * or, to set more fields,
 *     const imcore_plugin_info imcore_plugin_about = {
 *         IMCORE_PLUGIN_INFO_FIELDS("transport_ws", "1"), .session_size = 0,
 *     };                                                                    */
#define IMCORE_PLUGIN_INFO(name_, version_)                                         \
    const imcore_plugin_info imcore_plugin_about = { IMCORE_PLUGIN_INFO_FIELDS(name_, version_) }

/* The two symbols a plugin exports, declared so that the compiler checks
 * the plugin's own definitions against them (and exports them, even under
 * -fvisibility=hidden). The server never defines them. */
__attribute__((visibility("default"))) extern const imcore_plugin_info imcore_plugin_about;
__attribute__((visibility("default")))
int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out);

typedef int (*imcore_plugin_init_fn)(const imcore_host_api *api, imcore_host *host,
                                     imcore_plugin *out);

#define IMCORE_PLUGIN_INIT_SYMBOL "imcore_plugin_init"
#define IMCORE_PLUGIN_ABOUT_SYMBOL "imcore_plugin_about"

#ifdef __cplusplus
}
#endif
#endif
