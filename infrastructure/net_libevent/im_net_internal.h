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
#include <sys/types.h>

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
    ITEM_ANSWER,    /* frame to conn_ids[0]: the answer to its oldest request still waiting */
    ITEM_DRAIN,     /* shutdown, first step: take what clients sent, answer it all */
    ITEM_KICK,      /* close conn_ids[0] with code and why */
    ITEM_SHUTDOWN,  /* close everything and leave the loop */
    ITEM_CALL,      /* call(arg, session of ids[0] or NULL) */
} item_kind;

/* A listening socket and the carrier of the connections it accepts. The
 * server owns its listeners; a connection points at the one that accepted
 * it, for the per-listener count. */
typedef struct im_tls_server im_tls_server; /* im_net_tls.c */
typedef struct im_listener {
    struct im_net_server *srv;
    char kind[16];              /* "tcp" or "tls" */
    char host[64];
    uint16_t port, bound_port;
    uint32_t max_connections;   /* 0: the server's limit only */
    atomic_uint connections;
    int fd;
    struct evconnlistener *evl;
    im_tls_server *tls;         /* NULL: plain TCP */
    char where[300];            /* "FILE:LINE: " of the entry, or "" */
} im_listener;

typedef struct im_item {
    struct im_item *next;
    item_kind kind;
    int fd;                 /* ITEM_ACCEPT */
    char peer[64];          /* ITEM_ACCEPT */
    im_listener *lis;       /* ITEM_ACCEPT */
    struct ssl_st *ssl;     /* ITEM_ACCEPT: owned by the item, NULL for plain TCP */
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
    /* Shutdown's first step: no more input is read; once every request
     * read has its answer the worker says so (im__worker_check_drained). */
    bool draining;
    bool drain_reported;
    uint64_t unanswered;        /* answers owed to this worker's connections */
    size_t input_bytes;         /* read from its connections, not yet taken as frames */
} im_worker;

/* An answer decided at once, held back while answers to earlier requests
 * of the same connection are still to come. */
typedef struct im_held_answer {
    struct im_held_answer *next;
    uint64_t after;             /* goes out once this many later answers have */
    size_t len;
    uint8_t data[];             /* the whole frame */
} im_held_answer;

struct im_conn {
    im_worker *w;
    uint64_t id;
    int fd;
    /* The carrier: NULL is plain TCP (read/writev on fd); otherwise TLS
     * on the same non-blocking socket (im_net_tls.c). One branch on each
     * read and write, nothing else on the plain path. */
    struct ssl_st *ssl;
    bool tls_read_wants_write;  /* SSL_read needs the socket writable first */
    bool tls_failed;            /* a fatal TLS error: no close_notify then */
    im_listener *lis;
    struct event *rev;          /* readable: always on while open */
    struct event *wev;          /* writable: made when first needed, on only while output waits */
    bool wev_added;
    struct evbuffer *in, *out;
    bool flush_listed;          /* on the worker's flush list */
    im_conn *next_flush;
    uint64_t close_deadline_ms; /* closing: dropped by the sweep after this */
    im_session session;         /* by value: this transport is built with the
                                 * server's domain, and says so in its
                                 * imcore_plugin_about (session_size), which
                                 * the server checks (a third party's
                                 * allocates core->session_size bytes instead) */
    im_endpoint ep;
    char peer[64];
    bool closing;               /* no more input; output drains, then reap */
    bool reaping;               /* on the worker's dead list */
    char token[72];             /* the session token from the LoginAck, revoked at logout */
    im_conn *next_dead;

    /* Answers in request order (docs/protocol.md, "Order of answers").
     * A request the application answers later (a send, a membership
     * change, a login) is counted in `accepted` when it is handed over;
     * its answer comes back in that order and counts in `answered`. An
     * answer decided at once waits in `held` behind those still to come.
     * A request that must see the effects of earlier ones (a read, a
     * logout), and anything after a Login, is not taken from the input
     * until every earlier answer is out: the connection is `paused`, and
     * its socket is not read meanwhile. */
    uint64_t accepted, answered;
    im_held_answer *held_head, *held_tail;
    size_t held_bytes;
    bool login_pending;         /* a Login is being checked: nothing is taken after it */
    bool paused;                /* the next frame waits for the answers before it */
    bool taking;                /* inside take_frames: a resume need not call it */
    bool input_ended;           /* the peer closed its side while paused */
    bool input_done;            /* shutdown: the socket is not read any more */

    /* What a client may cost before and between frames (docs/security.md). */
    bool unauth_counted;        /* counted by the limiter until it logs in or closes */
    bool login_guarded;         /* its Login in flight is counted by the limiter */
    uint64_t opened_ms;         /* accepted at: it must log in by login_timeout_s */
    uint64_t frame_started_ms;  /* a frame began (0: none): it must end by frame_timeout_s */
    size_t in_counted;          /* its share of the worker's input_bytes */
};

typedef struct im_registry_shard {
    pthread_mutex_t lock;
    im_strmap *users;           /* user id -> struct reg_entry* */
} im_registry_shard;

#define IM_REGISTRY_SHARDS 64

struct im_net_server {
    /* The route port's three tables (imcore/route.h); each finds the
     * server by its offset (im_net_router.c). */
    im_presence presence;
    im_delivery delivery;
    im_replies replies;
    im_net_config cfg;
    char node_id[64];
    im_listener *listeners;
    unsigned nlisteners;
    int reserve_fd;             /* spare fd given up to shed a connection at EMFILE */
    im_app *app;                /* from run on: reached only through core */
    const imcore_core_api *core;

    struct event_base *base;    /* the acceptor's loop */
    struct event *sigint, *sigterm, *sighup, *stop_event;

    im_worker *workers;
    unsigned nworkers;
    unsigned next_worker;
    atomic_uint connections;
    atomic_ullong next_session_id;

    /* Shutdown: workers that have answered every request they had read. */
    pthread_mutex_t drain_lock;
    pthread_cond_t drain_cond;
    unsigned drained;

    im_registry_shard shards[IM_REGISTRY_SHARDS];

    /* Logins and connections not logged in, by peer address
     * (im_net_limiter.c); unauthenticated counts the latter in all. */
    pthread_mutex_t limiter_lock;
    im_strmap *limiter;
    uint32_t unauthenticated;
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

/* im_net_tls.c: the TLS carrier. A server context per TLS listener, made
 * from its files (FILE:LINE messages), swapped on reload; SSLs are made on
 * the acceptor's thread only, so the swap needs no lock (each SSL holds
 * its own reference to the context it was made from). */
int im__tls_server_new(const im_net_listener_config *lc, im_tls_server **out, im_error *err);
int im__tls_server_reload(im_tls_server *t, im_error *err);
void im__tls_server_free(im_tls_server *t); /* NULL is fine */
/* A server-side SSL on fd, or NULL (out of memory). The caller's. */
struct ssl_st *im__tls_accept(im_tls_server *t, int fd);
void im__tls_free(struct ssl_st *ssl, bool polite); /* polite: a close_notify is tried */
bool im__tls_established(struct ssl_st *ssl);
/* Input read ahead into ssl and not yet returned by SSL_read. */
bool im__tls_has_pending(struct ssl_st *ssl);
/* Like read(2) on c's socket: > 0 bytes, 0 at the end, -1 with errno
 * (EAGAIN: wait; tls_read_wants_write set if for writability; EPROTO:
 * a TLS failure, logged). */
ssize_t im__tls_read(im_conn *c, void *buf, size_t len);
/* Like evbuffer_write(c->out, fd): bytes written, or -1 with errno. */
int im__tls_write(im_conn *c);

/* im_net_conn.c */
void im__conn_accept(im_worker *w, int fd, const char *peer, im_listener *lis,
                     struct ssl_st *ssl);
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

/* Answers in request order. Before a request goes to the application,
 * im__conn_expect_answer counts the answer it will send later; if the
 * application refuses it at once instead, im__conn_refused takes the count
 * back and answers the error. */
void im__conn_expect_answer(im_conn *c);
void im__conn_refused(im_conn *c, uint64_t request_id, int code, const char *msg,
                      const char *client_msg_id);
/* An answer decided now: written, or held behind answers still to come. */
void im__conn_answer_now(im_conn *c, Imcore__Envelope *env);
void im__conn_answer_error(im_conn *c, uint64_t request_id, int code, const char *msg,
                           const char *client_msg_id);
/* The application's answer to c's oldest request still waiting: env
 * packed here, or a frame packed on another thread. Releases what was
 * held behind it, and a paused connection goes on once nothing is owed. */
void im__conn_answer_later(im_conn *c, Imcore__Envelope *env);
void im__conn_answer_frame(im_conn *c, const uint8_t *data, size_t len);
/* Shutdown's first step on w: reads what each client had sent and stops
 * reading; im__worker_check_drained tells the server once all is answered. */
void im__worker_drain(im_worker *w);
void im__worker_check_drained(im_worker *w);

/* im_net_requests.c: the HistoryResult for msgs[0..n) (oldest first,
 * borrowed), cut to fit max_frame as a read on the loop would be (oldest
 * dropped first, truncated set), or the Error for rc and msg, handed to
 * send (the Envelope borrowed for the call). For the route port's
 * send_history, from any thread. */
void im__history_answer(uint32_t max_frame, uint64_t rid, int rc, const im_message *msgs,
                        size_t n, const char *msg, void (*send)(void *ctx, Imcore__Envelope *env),
                        void *ctx);

/* im_net_requests.c: hands one decoded request of c to the application. */
void im__conn_dispatch(im_conn *c, const Imcore__Envelope *env);
/* Ends what the limiter counts for c (a login in flight, a connection not
 * logged in): c is closing. */
void im__conn_settle_limits(im_conn *c);

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

/* im_net_limiter.c: what one peer address (the port is ignored) may cost.
 * Logins with credentials: begin_login counts one being checked, or
 * refuses with IM_ERATE (*wait_s: seconds to wait) when the address has
 * max_login_failures failed or in flight within login_failure_window_s,
 * or (registering) max_registrations accounts made in it; end_login ends
 * one, counting a failure if failed. IM_ENOMEM if nothing could be
 * counted. Connections not logged in: open_unauthenticated counts one,
 * or refuses (false) past max_unauthenticated in all or
 * max_unauth_per_address from this address; close_unauthenticated ends
 * one, once it logs in or closes. Any thread. */
int im__limiter_init(struct im_net_server *srv);
void im__limiter_destroy(struct im_net_server *srv);
int im__limiter_begin_login(struct im_net_server *srv, const char *peer, bool registering,
                            uint32_t *wait_s);
void im__limiter_end_login(struct im_net_server *srv, const char *peer, bool failed);
bool im__limiter_open_unauthenticated(struct im_net_server *srv, const char *peer);
void im__limiter_close_unauthenticated(struct im_net_server *srv, const char *peer);

#endif
