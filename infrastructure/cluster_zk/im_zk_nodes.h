/* infrastructure/cluster_zk/im_zk_nodes.h: the cluster's node list in
 * ZooKeeper. A node announces itself with an ephemeral sequential znode
 * under a root (/imcore/nodes/n-0000000007) holding what clients and other
 * nodes need to reach it; a node that dies leaves the list by itself when
 * its ZooKeeper session times out. Anyone (a node, the route service)
 * watches the list and is told the whole list each time it changes.
 *
 * One thread of its own ("zk") does every ZooKeeper call, synchronously
 * with the multi-threaded C client: no event loop ever waits for
 * ZooKeeper. It connects, creates the root if missing, registers, re-reads
 * the list on each change, and, when the session expires (ZooKeeper was
 * unreachable for longer than the session timeout, so the znode is gone),
 * opens a new session and registers again. It logs once per change of
 * state (connected, lost, expired, registered).
 *
 * A znode's data is text, one "key=value" line each, in any order; unknown
 * keys are ignored, so a newer node can add some:
 *     id=node-1
 *     client=127.0.0.1:5555
 *     internal=127.0.0.1:5556
 *     epoch=1765161234567
 *     load=42
 * All functions are thread-safe. */
#ifndef IM_ZK_NODES_H
#define IM_ZK_NODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "imcore/errors.h"

#define IM_NODE_ID_MAX 63
#define IM_NODE_ADDR_MAX 127

/* One node as announced. */
typedef struct im_cluster_node {
    char id[IM_NODE_ID_MAX + 1];            /* unique in the cluster, [A-Za-z0-9._-] */
    char client[IM_NODE_ADDR_MAX + 1];      /* host:port clients connect to */
    char internal[IM_NODE_ADDR_MAX + 1];    /* host:port other nodes use; may be "" */
    uint64_t epoch;                         /* the node's start (ms): routes it left
                                             * under another epoch are stale */
    uint32_t load;                          /* connections, as last written */
} im_cluster_node;

typedef struct im_zk_nodes im_zk_nodes;

typedef struct im_zk_config {
    const char *hosts;              /* "host:port[,host:port...]"; borrowed for the call */
    const char *root;               /* e.g. "/imcore/nodes": created if missing */
    unsigned session_timeout_ms;    /* a dead node leaves the list after about this */
} im_zk_config;

/* The whole list after a change, sorted by id; nodes[] and the array are
 * borrowed for the call. Runs on the "zk" thread: do not block there, and
 * do not call im_zk_nodes_destroy from it. */
typedef void (*im_zk_nodes_fn)(void *arg, const im_cluster_node *nodes, size_t n);

/* Starts the "zk" thread, which connects in the background (an unreachable
 * ZooKeeper is retried, never an error here). watch (may be NULL) is
 * called with the list each time it changes, also after a reconnect, with
 * arg (borrowed until destroy). *out is the caller's: im_zk_nodes_destroy.
 * Errors: IM_EINVAL (no hosts, a root that is not an absolute path),
 * IM_ENOMEM, IM_EIO (the thread or the client could not start). */
int im_zk_nodes_new(const im_zk_config *cfg, im_zk_nodes_fn watch, void *arg,
                    im_zk_nodes **out, im_error *err);

/* Announces self (copied) from now on, and again after each new session.
 * Errors: IM_EINVAL (a bad id or address). */
int im_zk_nodes_register(im_zk_nodes *z, const im_cluster_node *self, im_error *err);

/* Sets the load to announce; written to the znode by the "zk" thread at
 * most once a second, so calling it per connection costs nothing. */
void im_zk_nodes_set_load(im_zk_nodes *z, uint32_t load);

/* True once the node's znode exists in the current session. */
bool im_zk_nodes_registered(im_zk_nodes *z);

/* Copies this node's znode path ("" when not registered) into out. */
void im_zk_nodes_znode(im_zk_nodes *z, char *out, size_t size);

/* Stops the thread and closes the session, which removes this node's
 * znode at once. NULL-safe. */
void im_zk_nodes_destroy(im_zk_nodes *z);

/* Parses a znode's data into *n; false when id or client is missing or bad. */
bool im_zk_node_parse(const char *data, size_t len, im_cluster_node *n);
/* Writes n as a znode's data; returns the length, or 0 if it does not fit. */
size_t im_zk_node_format(const im_cluster_node *n, char *out, size_t size);

/* For tests: ends the current session from outside, as ZooKeeper does when
 * it has not heard from the node for the session timeout. The thread then
 * sees the expiry and registers again in a new session. */
int im_zk_nodes_expire_session(im_zk_nodes *z, im_error *err);

#endif
