/* interfaces/route/route_pick.h: which node a user should connect to.
 *
 * Pure functions over a node list, no I/O. Two policies:
 *   bounded-hash  rendezvous hashing (each user ranks every node by a hash
 *                 of the pair and takes the first), skipping a node whose
 *                 load has reached load_factor percent of the mean (the
 *                 "consistent hashing with bounded loads" rule), so a user
 *                 keeps landing on the same node while it is up and not
 *                 overloaded, and a node that joins or leaves moves only
 *                 about 1/n of the users;
 *   least-loaded  the node with the fewest connections (ties by the hash).
 * A node's load is what it announced plus what this route service handed
 * out since (extra[], which the caller resets when fresh loads arrive). */
#ifndef ROUTE_PICK_H
#define ROUTE_PICK_H

#include <stddef.h>
#include <stdint.h>

#include "im_zk_nodes.h"

/* The pair's rank: higher comes first. */
uint64_t route_score(const char *user, const char *node_id);

/* The index in nodes[0..n) of the node for user, or -1 when n is 0.
 * extra may be NULL (no load handed out yet). policy: IM_ROUTE_*. */
long route_pick(const im_cluster_node *nodes, const uint32_t *extra, size_t n, const char *user,
                int policy, unsigned load_factor_percent);

#endif
