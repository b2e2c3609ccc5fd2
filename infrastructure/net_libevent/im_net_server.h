/* infrastructure/net_libevent/im_net_server.h: the TCP transport of
 * imcore-server, on libevent.
 *
 * One acceptor loop (the caller's thread) hands connections round-robin to
 * `workers` loops, each on its own thread and owning its connections: a
 * connection is only ever touched by its worker. The server also fills the
 * route port's three tables: presence (who is online and on which worker),
 * delivery (across workers through a per-worker queue and a wake-up) and
 * the replies to one session.
 *
 * It reaches the application only through the core table of
 * imcore/transport.h, given at run: it is built into the plugin
 * transport_tcp.so (infrastructure/adapters/transport_tcp.c), which the
 * server loads by the config's `transport: tcp`.
 *
 * Lifecycle: im_net_server_new() binds the socket, im_net_server_presence(),
 * _delivery() and _replies() give the port to build the application with,
 * im_net_server_run() serves
 * until SIGINT/SIGTERM or im_net_server_stop(), then im_net_server_free().
 * While it runs, SIGHUP reloads the TLS listeners' certificates. */
#ifndef IM_NET_SERVER_H
#define IM_NET_SERVER_H

#include <stdint.h>
#include "imcore/errors.h"
#include "imcore/transport.h"
/* The session is embedded in each connection: this transport is built
 * from the server's tree. It is read only through the core's functions. */
#include "domain/session.h"

/* One listener: its kind names the carrier of its connections (plain TCP,
 * or TLS: im_net_tls.c). Strings borrowed for im_net_server_new. */
typedef struct im_net_listener_config {
    const char *transport;         /* "tcp" or "tls" */
    const char *host;              /* an IP literal */
    uint16_t port;                 /* 0: an ephemeral port */
    uint32_t max_connections;      /* 0: only the server's max_connections */
    const char *cert, *key;        /* tls: PEM chain and key files */
    const char *client_ca;         /* tls: NULL or "", or the CAs client certificates chain to */
    /* "FILE:LINE" of each (or NULL), to begin the message when one does
     * not load. */
    const char *where, *cert_where, *key_where, *client_ca_where;
} im_net_listener_config;

#define IM_NET_MAX_LISTENERS 8u

typedef struct im_net_config {
    const char *listen_host;       /* borrowed for the call: an IP literal */
    uint16_t listen_port;          /* 0: an ephemeral port (see bound_port) */
    /* Listeners, when there are several or any is not plain TCP: then
     * listen_host and listen_port are unused. Borrowed for
     * im_net_server_new; at most IM_NET_MAX_LISTENERS. */
    const im_net_listener_config *listeners;
    unsigned nlisteners;
    unsigned workers;              /* >= 1 */
    uint32_t node;                 /* this node's number in endpoints */
    const char *node_id;           /* borrowed for the call: announced in LoginAck */
    uint32_t max_connections;
    uint32_t max_frame_bytes;
    uint32_t output_buffer_bytes;  /* unsent bytes above this close a slow consumer */
    unsigned heartbeat_s;
    unsigned idle_timeout_s;
    unsigned max_login_failures;     /* per peer address in the window; 0: no limit */
    unsigned login_failure_window_s;
    unsigned max_registrations;      /* accounts created per peer address in the window; 0: no limit */
    unsigned login_timeout_s;        /* a connection not logged in by then is closed */
    unsigned frame_timeout_s;        /* a frame begun must be complete by then */
    uint32_t max_unauthenticated;    /* connections not logged in, over all addresses */
    uint32_t max_unauth_per_address; /* ... from one address */
    uint32_t input_budget_bytes;     /* input read and not yet taken, over all connections */
} im_net_config;

typedef struct im_net_server im_net_server;

/* Creates the server and binds its listening sockets (not yet accepting),
 * loading every TLS listener's certificate and key.
 * *out is the caller's: release with im_net_server_free().
 * Errors: IM_EIO (bind/listen failed, the reason in err), IM_EINVAL (a
 * certificate or key that does not load or match: "FILE:LINE: ..."),
 * IM_ENOMEM. */
int im_net_server_new(const im_net_config *cfg, im_net_server **out, im_error *err);

/* The route port this server fills, in its three tables (imcore/route.h);
 * borrowed, valid until the server is freed. */
im_presence *im_net_server_presence(im_net_server *srv);
im_delivery *im_net_server_delivery(im_net_server *srv);
im_replies *im_net_server_replies(im_net_server *srv);

/* The port actually bound (useful when listen_port was 0): the first
 * listener's, or listener index's (0 if there is no such listener). */
uint16_t im_net_server_bound_port(const im_net_server *srv);
uint16_t im_net_server_listener_port(const im_net_server *srv, unsigned index);

/* Loads every TLS listener's certificate and key again, for connections
 * accepted from now on; connections already open keep theirs. A file that
 * does not load leaves that listener as it was (the reason in err, and in
 * the log). The running server does this itself on SIGHUP. Call from the
 * thread that runs the server (not concurrently with run's loop) or
 * through SIGHUP. */
int im_net_server_reload(im_net_server *srv, im_error *err);

/* Loads and frees the certificate, key and client CA of every tls
 * listener of l[0..n), so that a bad one is found when the config is
 * checked, before anything is bound. 0, or the first failure with err
 * naming the file and its FILE:LINE (as im_net_server_new would). */
int im_net_check_listeners(const im_net_listener_config *l, unsigned n, im_error *err);

/* Starts the workers, accepts and serves until SIGINT/SIGTERM or
 * im_net_server_stop(); then stops accepting, delivers what is queued, tells
 * every session SERVER_SHUTDOWN, closes them and returns 0. core and app
 * are borrowed and must outlive the call. Errors: IM_EIO, IM_ENOMEM. */
int im_net_server_run(im_net_server *srv, const imcore_core_api *core, im_app *app,
                      im_error *err);

/* Asks a running server to stop, from any thread or a signal-free context. */
void im_net_server_stop(im_net_server *srv);

void im_net_server_free(im_net_server *srv); /* NULL is fine; not while running */

#endif
