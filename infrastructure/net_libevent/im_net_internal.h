/* infrastructure/net_libevent/im_net_internal.h: what the files of the
 * libevent transport share. Not a public header.
 *
 * Ownership: the server owns the workers; a worker owns its connections and
 * its queue; a queued item owns its counted reference to a frame. */
#ifndef IM_NET_INTERNAL_H
#define IM_NET_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/buffer.h>

#include "domain/message.h"   /* conversation ids: pure rules, a copy in the .so */
#include "im_codec.h"
#include "im_net_server.h"
#include "im_strmap.h"

/* An encoded frame shared by every receiver of one message. */
typedef struct im_frame {
    atomic_uint refs;
    size_t len;
    uint8_t data[];
} im_frame;

im_frame *im__frame_new(size_t len);          /* refs = 1 */
void im__frame_ref(im_frame *f);
void im__frame_unref(im_frame *f);            /* NULL is fine */

typedef enum item_kind {
    ITEM_ACCEPT,    /* fd: a new connection for this worker */
    ITEM_DELIVER,   /* frame to conn_ids */
    ITEM_KICK,      /* close conn_ids[0] with code and why */
    ITEM_SHUTDOWN,  /* close everything and leave the loop */
    ITEM_CALL,      /* call(arg, session of ids[0] or NULL) */
} item_kind;

typedef struct im_item {
    struct im_item *next;
    item_kind kind;
    int fd;                 /* ITEM_ACCEPT */
    char peer[64];          /* ITEM_ACCEPT */
    im_frame *frame;        /* ITEM_DELIVER: one reference owned by the item */
    int code;               /* ITEM_KICK */
    char why[96];           /* ITEM_KICK */
    void (*call)(void *arg, im_session *s); /* ITEM_CALL */
    void *call_arg;         /* ITEM_CALL */
    size_t n;               /* conn ids */
    uint64_t ids[];         /* n entries */
} im_item;

typedef struct im_conn im_conn;

typedef struct im_worker {
    struct im_net_server *srv;
    unsigned index;
    pthread_t thread;
    struct event_base *base;
    struct event *wakeup;       /* activated when the queue gets work */
    struct event *sweep;        /* periodic idle check */
    struct event *reap;         /* frees closed connections outside their callbacks */

    pthread_mutex_t qlock;
    im_item *qhead, *qtail;     /* FIFO, under qlock */
    bool qsignalled;            /* a wake-up is pending, under qlock */

    /* Connections by slot: conn id = (generation << 32) | slot. Only the
     * worker's own thread touches these. */
    im_conn **slots;
    uint32_t nslots;
    uint32_t *free_slots;
    uint32_t nfree;
    uint32_t generation;
    size_t live;
    im_conn *dead;              /* closed, waiting for reap */
    im_conn *flush;             /* with output to write before the loop waits again */
    im_decode_arena arena;      /* for the frame being handled */
    bool shutting_down;
} im_worker;

struct im_conn {
    im_worker *w;
    uint64_t id;
    int fd;
    struct event *rev;          /* readable: always on while open */
    struct event *wev;          /* writable: made when first needed, on only while output waits */
    bool wev_added;
    struct evbuffer *in, *out;
    bool flush_listed;          /* on the worker's flush list */
    im_conn *next_flush;
    uint64_t close_deadline_ms; /* closing: dropped by the sweep after this */
    im_session session;         /* by value: this transport is built with the
                                 * server's domain (a third party's allocates
                                 * core->session_size bytes instead) */
    im_endpoint ep;
    char peer[64];
    bool closing;               /* no more input; output drains, then reap */
    bool reaping;               /* on the worker's dead list */
    char token[72];             /* the session token from the LoginAck, revoked at logout */
    im_conn *next_dead;
};

typedef struct im_registry_shard {
    pthread_mutex_t lock;
    im_strmap *users;           /* user id -> struct reg_entry* */
} im_registry_shard;

#define IM_REGISTRY_SHARDS 64

struct im_net_server {
    im_router router;           /* the port; first so the port casts to the server */
    im_net_config cfg;
    char listen_host[64];
    char node_id[64];
    uint16_t bound_port;
    int listen_fd;
    int reserve_fd;             /* spare fd given up to shed a connection at EMFILE */
    im_app *app;                /* from run on: reached only through core */
    const imcore_core_api *core;

    struct event_base *base;    /* the acceptor's loop */
    struct evconnlistener *listener;
    struct event *sigint, *sigterm, *stop_event;

    im_worker *workers;
    unsigned nworkers;
    unsigned next_worker;
    atomic_uint connections;
    atomic_ullong next_session_id;

    im_registry_shard shards[IM_REGISTRY_SHARDS];

    /* Failed logins by peer address (im_net_limiter.c). */
    pthread_mutex_t limiter_lock;
    im_strmap *limiter;
};

/* im_net_queue.c */
int im__worker_init(im_worker *w, struct im_net_server *srv, unsigned index);
int im__worker_start(im_worker *w);
void im__worker_destroy(im_worker *w);
/* Takes ownership of item. Wakes the worker if it was idle. */
void im__worker_push(im_worker *w, im_item *item);
im_item *im__item_new(item_kind kind, size_t nids);
/* True if nothing waits in w's queue (a snapshot: pushes may follow). */
bool im__worker_queue_empty(im_worker *w);
void im__item_free(im_item *item);
/* The worker running on this thread, or NULL. */
im_worker *im__current_worker(void);

/* im_net_conn.c */
void im__conn_accept(im_worker *w, int fd, const char *peer);
im_conn *im__conn_find(im_worker *w, uint64_t id);
/* Writes a frame to c unless c is closing; closes c as a slow consumer when
 * its unsent output passes the limit. */
void im__conn_send(im_conn *c, const uint8_t *data, size_t len);
/* Packs env (its type set from its body) straight into c's output, under
 * the same limit; an Error still goes out on a closing connection. */
void im__conn_send_envelope(im_conn *c, Imcore__Envelope *env);
/* Closes c: tells the peer code/why (code 0: nothing), unbinds it, and frees
 * it once the output is flushed or after a grace period. Idempotent. */
void im__conn_close(im_conn *c, int code, const char *why);
void im__conn_sweep_idle(im_worker *w);
/* Answers c's Login: a LoginAck with token, or an Error (counted against the
 * peer's failed logins for IM_EAUTH and IM_ENOTFOUND). On c's worker. */
void im__conn_login_result(im_conn *c, uint64_t rid, int rc, const char *token, const char *msg);
void im__conn_reap(im_worker *w);
/* Writes the output of every connection that got some this iteration. */
void im__worker_flush(im_worker *w);
/* Frees c and closes its socket, whatever its state: for reap and teardown. */
void im__conn_destroy(im_conn *c);
void im__worker_close_all(im_worker *w);
/* An Error frame for c (request_id 0 for one the server sends on its own). */
void im__conn_send_error(im_conn *c, uint64_t request_id, int code, const char *msg,
                         const char *client_msg_id);

/* im_net_requests.c: hands one decoded request of c to the application. */
void im__conn_dispatch(im_conn *c, const Imcore__Envelope *env);

/* An Error is small whatever it answers: its text is cut to fit
 * IM_ERROR_TEXT_BYTES (at a UTF-8 character boundary), and it echoes a
 * client_msg_id only when that is a valid one (at most IM_CLIENT_MSG_ID_MAX
 * bytes), so an Error never outgrows the frame it answers or
 * max_frame_bytes. Fills e (its strings borrowed from msg, client_msg_id
 * or text, the caller's buffer) for code; msg NULL or "": code's name. */
#define IM_ERROR_TEXT_BYTES 256
void im__error_fill(Imcore__Error *e, int code, const char *msg, const char *client_msg_id,
                    char text[IM_ERROR_TEXT_BYTES]);

/* The user for log lines ("-" before login), and the session's id. */
static inline const char *im__conn_who(const im_conn *c)
{
    const char *u = c->w->srv->core->session_user_id(&c->session);
    return u[0] ? u : "-";
}

static inline uint64_t im__conn_session_id(const im_conn *c)
{
    return c->w->srv->core->session_id(&c->session);
}

/* im_net_router.c */
int im__router_init(struct im_net_server *srv);
void im__router_destroy(struct im_net_server *srv);

uint64_t im__monotonic_ms(void);

/* im_net_limiter.c: failed logins per peer address (the port is ignored).
 * After max_login_failures within login_failure_window_s an address is
 * refused until the window has passed. */
int im__limiter_init(struct im_net_server *srv);
void im__limiter_destroy(struct im_net_server *srv);
bool im__limiter_allows(struct im_net_server *srv, const char *peer, uint32_t *wait_s);
void im__limiter_failed(struct im_net_server *srv, const char *peer);

#endif
