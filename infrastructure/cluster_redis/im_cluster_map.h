/* infrastructure/cluster_redis/im_cluster_map.h: every online user of the
 * cluster, as one node knows them, so that "is bob online, and where?" is
 * answered from memory, without a round trip to Redis.
 *
 * A route says where a user's session lives: which node (an index into
 * the map's table of node ids; 0 is this node), that node's epoch (its
 * start time in ms, which tells a restarted node from its previous life),
 * the session's worker and connection there, and the user's display name.
 *
 * Trust. A route of another node is used only while that node is in the
 * live list (set_live, from ZooKeeper) under the same epoch: the routes of
 * a node that left the list, or of an older life of it, are dropped, and
 * routes of a node not (yet) in the list are kept but not trusted until it
 * appears there.
 *
 * Order. Each node numbers its changes (ver, per epoch): events carry the
 * number of their change and a node's snapshot (its hash in Redis) the
 * number of the last change it holds. An event at or below what the map
 * already has from that node is stale and ignored; a snapshot older than
 * the events already applied is ignored, and applying one sets the
 * node's number to the snapshot's. So events and snapshots, read on two
 * connections in any interleaving, converge on the node's state.
 *
 * Not thread-safe: the caller locks (the cluster adapter holds one rwlock
 * around the map). Knows nothing of Redis or ZooKeeper. */
#ifndef IM_CLUSTER_MAP_H
#define IM_CLUSTER_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imcore/message.h"
#include "im_zk_nodes.h"

#define IM_CLUSTER_SELF 0u
#define IM_CLUSTER_MAX_NODES 1024u
#define IM_CLUSTER_NO_NODE UINT32_MAX

typedef struct im_cluster_route {
    uint32_t node;                /* index in the node table; IM_CLUSTER_SELF: this node */
    uint64_t epoch;               /* that node's epoch */
    uint64_t ver;                 /* the node's change that made this route */
    uint32_t worker;              /* the session's endpoint on that node */
    uint64_t conn;
    uint64_t since_ms;            /* wall clock of the bind */
    char name[IM_DISPLAY_NAME_MAX + 1];
} im_cluster_route;

typedef struct im_cluster_map im_cluster_map;

/* self_id is copied. *out is the caller's: im_cluster_map_free. Returns 0
 * or IM_ENOMEM. */
int im_cluster_map_new(const char *self_id, uint64_t self_epoch, im_cluster_map **out);
void im_cluster_map_free(im_cluster_map *m); /* NULL is fine */

/* The index of node id (added if new), or IM_CLUSTER_NO_NODE when the
 * table is full or out of memory. The id of this node is IM_CLUSTER_SELF. */
uint32_t im_cluster_map_node(im_cluster_map *m, const char *id);
/* The id of node index, or NULL; borrowed until the map is freed. */
const char *im_cluster_map_node_id(const im_cluster_map *m, uint32_t node);
/* The epoch node is live under, 0 when it is not in the live list.
 * IM_CLUSTER_SELF is always live, under this node's epoch. */
uint64_t im_cluster_map_live_epoch(const im_cluster_map *m, uint32_t node);
uint64_t im_cluster_map_self_epoch(const im_cluster_map *m);

/* Takes the live list (ZooKeeper's: this node in it or not, a node listed
 * twice under two epochs counted under the newer) and drops every route
 * that is no longer trusted. Writes into fresh[0..*nfresh) (at most cap)
 * the nodes that became live, or live under another epoch: their
 * snapshots are due. Returns how many routes it dropped. */
size_t im_cluster_map_set_live(im_cluster_map *m, const im_cluster_node *nodes, size_t n,
                               uint32_t *fresh, size_t cap, size_t *nfresh);

/* The trusted route of user, copied to *out (may be NULL); false if none. */
bool im_cluster_map_lookup(const im_cluster_map *m, const char *user, im_cluster_route *out);

/* Sets user's route to *r, whatever was there (the caller decided): the
 * one it replaced, if any, is copied to *old and true returned. Errors
 * (IM_ENOMEM) leave the map as it was and return a negative code. */
int im_cluster_map_put(im_cluster_map *m, const char *user, const im_cluster_route *r,
                       im_cluster_route *old);
/* Removes user's route if it is node's, under epoch, for the connection
 * conn (0: any of that node's). Returns true if it did. */
bool im_cluster_map_remove(im_cluster_map *m, const char *user, uint32_t node, uint64_t epoch,
                           uint64_t conn);

/* Called for each trusted route, in no set order; user and r borrowed for
 * the call; return false to stop. The map must not change meanwhile. */
typedef bool (*im_cluster_map_fn)(void *arg, const char *user, const im_cluster_route *r);
/* Returns how many routes it visited. */
size_t im_cluster_map_each(const im_cluster_map *m, im_cluster_map_fn fn, void *arg);

/* Routes of this node (IM_CLUSTER_SELF), and all trusted ones. */
size_t im_cluster_map_local_count(const im_cluster_map *m);
size_t im_cluster_map_count(const im_cluster_map *m);

/* The next number of this node's changes (1, 2, ...). */
uint64_t im_cluster_map_next_ver(im_cluster_map *m);

/* An event of node (epoch, ver): true if it is new and must be applied
 * (the map then counts it as seen), false if stale. */
bool im_cluster_map_event_fresh(im_cluster_map *m, uint32_t node, uint64_t epoch, uint64_t ver);

/* A snapshot of node holding its changes up to (epoch, ver): true if it is
 * no older than the events already applied; then every route of node is
 * dropped, the caller puts the snapshot's, and the node's number becomes
 * the snapshot's. False: ignore it. */
bool im_cluster_map_snapshot_begin(im_cluster_map *m, uint32_t node, uint64_t epoch,
                                   uint64_t ver);

#endif
