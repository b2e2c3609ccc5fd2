/* infrastructure/cluster_redis/im_cluster_wire.h: what the cluster adapter
 * writes to Redis and reads back, in one place: the keys, the fields of a
 * node's delivery stream, the route values of a node's user hash, and the
 * events of the presence stream with the Lua scripts that write them.
 *
 *   imcore:node:<id>      stream: messages and kicks for node <id>'s sessions
 *   imcore:users:<id>     hash: user -> route value, "~ver" -> "EPOCH VER";
 *                         expires unless node <id> refreshes it
 *   imcore:presence       stream: bind, unbind and resync events of every node
 *
 * Builders fill an argv of borrowed pointers (into the message, the
 * caller's strings and the builder's own number buffers), for
 * im_redis_command; parsers read a redisReply and point into it (valid for
 * the reply's life). No allocation, no Redis connection: pure data. */
#ifndef IM_CLUSTER_WIRE_H
#define IM_CLUSTER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>

#include "im_cluster_map.h"
#include "imcore/message.h"

#define IM_CLUSTER_PRESENCE_STREAM "imcore:presence"
#define IM_CLUSTER_KEY_MAX (16 + IM_NODE_ID_MAX)

/* "imcore:node:<id>" and "imcore:users:<id>" into out (IM_CLUSTER_KEY_MAX + 1). */
void im_cluster_node_stream(char *out, size_t size, const char *node_id);
void im_cluster_users_key(char *out, size_t size, const char *node_id);

/* ---- a node's delivery stream ---- */

typedef enum im_cluster_entry_type {
    IM_CLUSTER_MESSAGE = 1,       /* hand m to a session */
    IM_CLUSTER_KICK = 2,          /* close the session at (worker, conn) */
} im_cluster_entry_type;

/* Where an entry goes on its node: to the session at an endpoint, to the
 * listed members (a group's), or to m.target (a private message). */
typedef struct im_cluster_entry {
    im_cluster_entry_type type;
    uint64_t epoch;               /* the receiving node's, as the sender knew it */
    im_message m;                 /* IM_CLUSTER_MESSAGE */
    const char *sender_name;      /* NULL: none */
    bool has_endpoint;
    uint32_t worker;
    uint64_t conn;
    const char *members;          /* NULL, or user ids separated by ',' */
    int code;                     /* IM_CLUSTER_KICK */
    const char *why;
} im_cluster_entry;

#define IM_CLUSTER_ARGV_MAX 40

typedef struct im_cluster_argv {
    int argc;
    const char *argv[IM_CLUSTER_ARGV_MAX];
    size_t len[IM_CLUSTER_ARGV_MAX];
    char num[10][24];             /* the numbers argv points at */
    char key[IM_CLUSTER_KEY_MAX + 1];
} im_cluster_argv;

/* XADD imcore:node:<node_id> MAXLEN ~ maxlen * ... for e (its strings
 * borrowed until the command is sent: im_redis_command copies them). */
void im_cluster_xadd(im_cluster_argv *a, const char *node_id, unsigned maxlen,
                     const im_cluster_entry *e);

/* Reads an entry's field/value list; false (and why) for one this code
 * cannot use (a missing field, a number that is not one). */
bool im_cluster_entry_parse(const redisReply *fields, im_cluster_entry *out, const char **why);

/* ---- routes in a node's user hash, and presence events ---- */

typedef enum im_cluster_op {
    IM_CLUSTER_BIND = 1,
    IM_CLUSTER_UNBIND = 2,
    IM_CLUSTER_RESYNC = 3,        /* the node rewrote its hash: read it again */
} im_cluster_op;

/* A route as a hash value: "EPOCH VER WORKER CONN SINCE NAME". Returns the
 * length, or 0 if it does not fit. */
size_t im_cluster_route_format(const im_cluster_route *r, char *out, size_t size);
/* Parses one into *r (node left as it is); false if malformed. */
bool im_cluster_route_parse(const char *value, size_t len, im_cluster_route *r);
/* Parses the hash's "~ver" value, "EPOCH VER". */
bool im_cluster_ver_parse(const char *value, uint64_t *epoch, uint64_t *ver);

/* One change of this node's routes (bind or unbind of user, whose route
 * value is value, "" for an unbind), as one EVAL: the hash updated, its
 * "~ver" set, its expiry pushed back to ttl_ms, and the event added to the
 * presence stream, atomically, so that a snapshot holds exactly the events
 * up to its "~ver". */
void im_cluster_change(im_cluster_argv *a, im_cluster_op op, const char *node_id, uint64_t epoch,
                       uint64_t ver, const char *user, const char *value, unsigned ttl_ms,
                       unsigned maxlen);

/* The script of a rewrite: the hash replaced by pairs (user, value) and a
 * RESYNC event added. Its argv: EVAL, the script, 2, the hash, the
 * presence stream, EPOCH, VER, TTL_MS, MAXLEN, NODE, "", then the pairs. */
extern const char im_cluster_rewrite_script[];

/* A presence event. */
typedef struct im_cluster_event {
    im_cluster_op op;
    const char *node;
    uint64_t epoch, ver;
    const char *user;             /* "" for RESYNC */
    const char *value;            /* the route, for BIND */
    size_t value_len;
} im_cluster_event;

bool im_cluster_event_parse(const redisReply *fields, im_cluster_event *out);

#endif
