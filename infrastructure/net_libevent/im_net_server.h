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
 * until SIGINT/SIGTERM or im_net_server_stop(), then im_net_server_free(). */
#ifndef IM_NET_SERVER_H
#define IM_NET_SERVER_H

#include <stdint.h>
#include "imcore/errors.h"
#include "imcore/transport.h"
/* The session is embedded in each connection: this transport is built
 * from the server's tree. It is read only through the core's functions. */
#include "domain/session.h"

typedef struct im_net_config {
    const char *listen_host;       /* borrowed for the call: an IP literal */
    uint16_t listen_port;          /* 0: an ephemeral port (see bound_port) */
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

/* Creates the server and binds its listening socket (not yet accepting).
 * *out is the caller's: release with im_net_server_free().
 * Errors: IM_EIO (bind/listen failed, the reason in err), IM_ENOMEM. */
int im_net_server_new(const im_net_config *cfg, im_net_server **out, im_error *err);

/* The route port this server fills, in its three tables (imcore/route.h);
 * borrowed, valid until the server is freed. */
im_presence *im_net_server_presence(im_net_server *srv);
im_delivery *im_net_server_delivery(im_net_server *srv);
im_replies *im_net_server_replies(im_net_server *srv);

/* The port actually bound (useful when listen_port was 0). */
uint16_t im_net_server_bound_port(const im_net_server *srv);

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
