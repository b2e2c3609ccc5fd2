/* interfaces/route/route_http.h: imcore-route's HTTP API over the node list
 * (docs/cluster.md lists the requests and their answers).
 *
 *   GET /v1/node?user=ID   the node ID should connect to
 *   GET /v1/nodes          every node, with its load
 *   GET /health            alive (always 200), with ZooKeeper's view
 *   GET /ready             200 once a list with at least one node is known
 *
 * Answers are JSON. The list comes from the "zk" thread through
 * route_http_set_nodes; the requests run on the event loop. */
#ifndef ROUTE_HTTP_H
#define ROUTE_HTTP_H

#include <event2/event.h>
#include <stdint.h>

#include "im_zk_nodes.h"
#include "imcore/errors.h"

typedef struct route_http route_http;

/* Listens on host:port (0: an ephemeral port) on base. *out is the
 * caller's: route_http_free. Errors: IM_EIO (cannot bind), IM_ENOMEM. */
int route_http_new(struct event_base *base, const char *host, uint16_t port, int policy,
                   unsigned load_factor_percent, route_http **out, im_error *err);

/* The bound port. */
uint16_t route_http_port(const route_http *r);

/* An im_zk_nodes_fn: replaces the list (copied), from any thread. */
void route_http_set_nodes(void *arg, const im_cluster_node *nodes, size_t n);

void route_http_free(route_http *r);

#endif
