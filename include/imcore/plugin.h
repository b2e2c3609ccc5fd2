/* imcore/plugin.h: the plugin ABI of imcore-server. The only header a
 * plugin includes.
 *
 * A plugin is a shared object that exports one symbol:
 *
 *     int imcore_plugin_init(const imcore_host_api *api, imcore_host *host,
 *                            imcore_plugin *out);
 *
 * The server loads it with dlopen(RTLD_NOW | RTLD_LOCAL) when the YAML config
 * lists it, and calls imcore_plugin_init once. The plugin checks
 * api->api_version (and api->size before using a function added after
 * version 1), fills *out and returns 0, or returns non-zero after writing a
 * sentence to out->error, which the server prints and then refuses to start.
 * A plugin reaches the server only through api and host, never through the
 * server's own symbols: build it with -fvisibility=hidden and export only
 * imcore_plugin_init.
 *
 * Versioning: IMCORE_PLUGIN_API_VERSION changes only when something is
 * removed or changes meaning. Functions are only ever appended to
 * imcore_host_api, callbacks to imcore_plugin, fields to imcore_message;
 * each struct starts with its size so both sides can tell what the other
 * knows.
 *
 * Threads: on_message runs on the sending session's network thread,
 * several at once, so it must be thread-safe; init and shutdown run on the
 * server's main thread, alone. No callback may block (no disk, no network,
 * no sleep): a blocking callback stalls every session on that thread.
 *
 * Ownership: every pointer the server passes to a callback is borrowed for
 * the duration of that call only; copy what you keep. Every pointer a
 * plugin passes to the server is borrowed for the call; the server copies
 * what it keeps. */
#ifndef IMCORE_PLUGIN_H
#define IMCORE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IMCORE_PLUGIN_API_VERSION 1

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

/* One message. All pointers borrowed for the callback. */
typedef struct imcore_message {
    size_t size;                 /* sizeof(imcore_message) as the server knows it */
    imcore_message_kind kind;
    const char *from;            /* the sender's user id */
    const char *to;              /* the receiver's user id (PRIVATE) or the group id (GROUP) */
    const uint8_t *body;         /* body_len bytes, not NUL-terminated; text is UTF-8 */
    size_t body_len;
    const char *client_msg_id;   /* the sender's id for the message; may be "" */
    uint64_t seq;                /* 0 in on_message: not yet stored */
    uint64_t server_time_ms;     /* Unix time, milliseconds */
} imcore_message;

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

/* The server's functions for a plugin. Every one takes the host handle the
 * plugin was given, and may be called from any thread. */
typedef struct imcore_host_api {
    size_t size;                 /* sizeof(imcore_host_api) as the server knows it */
    unsigned api_version;        /* IMCORE_PLUGIN_API_VERSION of the server */

    /* A line in the server's log, tagged with the plugin's name. */
    void (*log)(imcore_host *h, imcore_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

    /* The plugin's own config subtree (the `config:` mapping of its entry
     * in the YAML), flattened to dotted keys: "words", "limits.max". Returns
     * the scalar as text, or NULL if absent. Borrowed until shutdown. */
    const char *(*config_get)(imcore_host *h, const char *key);
    /* Where key is written, "FILE:LINE", for the plugin's own error
     * messages; NULL if absent. Borrowed until shutdown. */
    const char *(*config_where)(imcore_host *h, const char *key);

    /* Functions are appended here in later versions: check size first. */
} imcore_host_api;

/* The plugin's description of itself, filled by imcore_plugin_init. The
 * server zeroes it and sets size before the call. Every callback is
 * optional (NULL). state is handed back to every callback. */
typedef struct imcore_plugin {
    size_t size;                 /* set by the server: sizeof(imcore_plugin) as it knows it */
    unsigned api_version;        /* set by the plugin: IMCORE_PLUGIN_API_VERSION it was built for */
    const char *name;            /* static strings, for logs */
    const char *version;
    void *state;                 /* the plugin's own */
    char error[200];             /* why init failed, for people */

    /* Every message a user sends, before it is stored: pass, drop or
     * rewrite. On the sender's network thread, several at once: must be
     * thread-safe, and must not block. Plugins are asked in config order;
     * the first DROP wins; a REWRITE's body is what the next plugin sees. */
    imcore_verdict (*on_message)(void *state, const imcore_message *m, imcore_rewrite *out);

    /* The server is stopping: free everything. No host call but log. */
    void (*shutdown)(void *state);

    void *reserved[8];           /* for callbacks of later versions: leave NULL */
} imcore_plugin;

/* The one symbol a plugin exports. */
typedef int (*imcore_plugin_init_fn)(const imcore_host_api *api, imcore_host *host,
                                     imcore_plugin *out);

#define IMCORE_PLUGIN_INIT_SYMBOL "imcore_plugin_init"

#ifdef __cplusplus
}
#endif
#endif
