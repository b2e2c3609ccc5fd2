/* infrastructure/adapters/cluster_redis.c: the cluster adapter chosen with
 * `cluster: redis` (cluster_redis.so). It wraps this node's presence and
 * delivery so that users on different nodes chat as if on one:
 *
 *   - the node registers in ZooKeeper (im_zk_nodes) with its epoch, its
 *     client address and its load, and watches the node list;
 *   - every node keeps the whole cluster's online users in memory
 *     (im_cluster_map), fed by the presence stream in Redis and rebuilt from
 *     the nodes' user hashes after a reconnect, so bind, is_online and
 *     list_online never wait for Redis; routes of a node that left the list,
 *     or of an older life of it, are never trusted;
 *   - a message or a kick for a session on another node goes to that
 *     node's stream (XADD ... MAXLEN ~), read here with a consumer group and
 *     handed to the local delivery, then XACKed; a group message goes once
 *     to each node with members online, with their list.
 *
 * Redis is the fast path only: the application stores every message before
 * it routes it, so what a stream loses reaches the receiver from the store
 * at its next login (docs/cluster.md).
 *
 * Threads: the ops run on any worker; Redis replies and stream entries on
 * the "redis" thread; the node list on the "zk" thread; a "cluster" thread
 * of its own refreshes the routes' expiry and rewrites them after Redis
 * came back. One rwlock guards the map; local ports are called outside it
 * except bind and unbind, which must decide and bind in one step (the local
 * ports never call back into this adapter). Commands that change routes are
 * queued under the lock, so Redis sees them in the order of their numbers. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adapter_config.h"
#include "im_cluster_map.h"
#include "im_cluster_wire.h"
#include "im_log.h"
#include "im_redis.h"
#include "im_zk_nodes.h"
#include "imcore/plugin.h"
#include "imcore/route.h"

#define MAX_FRESH 64

typedef struct cluster {
    im_adapter base;              /* first */
    /* settings */
    char node_id[IM_NODE_ID_MAX + 1];
    char advertise[IM_NODE_ADDR_MAX + 1];
    char zk_hosts[256];
    char zk_root[128];
    unsigned zk_session_ms;
    char redis_host[128];
    unsigned redis_port;
    char *password;
    unsigned ttl_ms;
    unsigned maxlen;
    im_login_policy policy;
    uint64_t epoch;
    char users_key[IM_CLUSTER_KEY_MAX + 1];
    char stream[IM_CLUSTER_KEY_MAX + 1];

    /* the ports */
    im_presence presence;
    im_delivery delivery;
    im_presence *local_p;         /* the transport's, borrowed */
    im_delivery *local_d;

    pthread_rwlock_t lock;        /* the map, and the order of route changes */
    im_cluster_map *map;
    im_redis *redis;
    bool redis_closed;            /* under lock: callbacks of the "zk" thread stop using it */
    im_zk_nodes *zk;

    /* the "cluster" thread */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t tlock;
    pthread_cond_t tcond;
    bool stopping;
    bool rewrite_due;             /* the hash was found gone: write it again */
    uint64_t redis_ups;           /* im_redis_connections when last written */
} cluster;

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#define OF(port, member) ((cluster *)(void *)((char *)(port) - offsetof(cluster, member)))

/* ---- commands to Redis ---- */

static void log_failure(void *arg, int rc, const redisReply *reply, const im_error *err)
{
    const char *what = arg;
    if (rc != IM_OK)
        IM_DEBUG("cluster: %s not written: %s", what, err ? err->msg : "");
    else if (reply && reply->type == REDIS_REPLY_ERROR)
        IM_WARN("cluster: %s refused by Redis: %s", what, reply->str);
}

static int send_argv(cluster *c, const im_cluster_argv *a, im_redis_reply_fn fn, void *arg)
{
    return im_redis_command(c->redis, fn, arg, a->argc, a->argv, a->len);
}

/* Writes one change of this node's routes; the caller holds the write
 * lock, so changes reach Redis in the order of their numbers. */
static void write_change(cluster *c, im_cluster_op op, const char *user,
                         const im_cluster_route *r)
{
    char value[160 + IM_DISPLAY_NAME_MAX];
    value[0] = '\0';
    if (op == IM_CLUSTER_BIND && !im_cluster_route_format(r, value, sizeof value))
        return;
    im_cluster_argv a;
    im_cluster_change(&a, op, c->node_id, c->epoch, r->ver, user, value, c->ttl_ms, c->maxlen);
    send_argv(c, &a, log_failure, (void *)"route change");
}

/* ---- snapshots: a node's user hash read again ---- */

typedef struct snap_req {
    cluster *c;
    uint32_t node;
} snap_req;

static void on_snapshot(void *arg, int rc, const redisReply *reply, const im_error *err)
{
    (void)err;
    snap_req *s = arg;
    cluster *c = s->c;
    if (rc != IM_OK || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements % 2) {
        free(s);
        return;
    }
    uint64_t epoch = 0, ver = 0;
    for (size_t i = 0; i + 1 < reply->elements; i += 2)
        if (strcmp(reply->element[i]->str, "~ver") == 0)
            im_cluster_ver_parse(reply->element[i + 1]->str, &epoch, &ver);
    if (epoch == 0) { /* gone (expired, or never written): nothing to add */
        free(s);
        return;
    }
    size_t added = 0;
    pthread_rwlock_wrlock(&c->lock);
    /* A hash an earlier life of the node left (not rewritten yet) is no
     * snapshot of the node as it is. */
    uint64_t live = im_cluster_map_live_epoch(c->map, s->node);
    if ((!live || live == epoch) && im_cluster_map_snapshot_begin(c->map, s->node, epoch, ver)) {
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            const redisReply *k = reply->element[i], *v = reply->element[i + 1];
            if (k->str[0] == '~')
                continue;
            im_cluster_route r = { .node = s->node };
            if (!im_cluster_route_parse(v->str, v->len, &r) || r.epoch != epoch)
                continue;
            /* A user bound here keeps this node's route (the events settle
             * which login is the later), and one bound on a third node
             * since keeps that one: a hash may lag behind the events. */
            im_cluster_route mine;
            if (im_cluster_map_lookup(c->map, k->str, &mine) &&
                (mine.node == IM_CLUSTER_SELF ||
                 (mine.node != s->node && mine.since_ms > r.since_ms)))
                continue;
            if (im_cluster_map_put(c->map, k->str, &r, NULL) >= 0)
                added++;
        }
        IM_DEBUG("cluster: node %s: %zu routes read", im_cluster_map_node_id(c->map, s->node),
                 added);
    }
    pthread_rwlock_unlock(&c->lock);
    free(s);
}

/* Asks for node's hash; the caller holds no lock it needs. */
static void request_snapshot(cluster *c, const char *node_id, uint32_t node)
{
    snap_req *s = malloc(sizeof *s);
    if (!s)
        return;
    s->c = c;
    s->node = node;
    char key[IM_CLUSTER_KEY_MAX + 1];
    im_cluster_users_key(key, sizeof key, node_id);
    const char *argv[] = { "HGETALL", key };
    pthread_rwlock_rdlock(&c->lock);
    if (c->redis_closed || im_redis_command(c->redis, on_snapshot, s, 2, argv, NULL) != IM_OK)
        free(s);
    pthread_rwlock_unlock(&c->lock);
}

/* ---- the node list, from ZooKeeper ---- */

static void snapshot_all(cluster *c);

static void on_nodes(void *arg, const im_cluster_node *nodes, size_t n)
{
    cluster *c = arg;
    uint32_t fresh[MAX_FRESH];
    char ids[MAX_FRESH][IM_NODE_ID_MAX + 1];
    size_t nfresh = 0;
    pthread_rwlock_wrlock(&c->lock);
    size_t dropped = im_cluster_map_set_live(c->map, nodes, n, fresh, MAX_FRESH, &nfresh);
    for (size_t i = 0; i < nfresh; i++)
        snprintf(ids[i], sizeof ids[i], "%s", im_cluster_map_node_id(c->map, fresh[i]));
    pthread_rwlock_unlock(&c->lock);
    IM_INFO("cluster: %zu nodes live, %zu routes dropped", n, dropped);
    if (nfresh == MAX_FRESH) { /* perhaps more than it could list: read them all */
        snapshot_all(c);
        return;
    }
    for (size_t i = 0; i < nfresh; i++)
        request_snapshot(c, ids[i], fresh[i]);
}

/* ---- the presence stream ---- */

/* True if route a (of node a_id) is a later login than b (of b_id): by the
 * nodes' clocks, then by node id, so that every node decides alike. */
static bool newer(const im_cluster_route *a, const char *a_id, const im_cluster_route *b,
                  const char *b_id)
{
    if (a->since_ms != b->since_ms)
        return a->since_ms > b->since_ms;
    return strcmp(a_id, b_id) > 0;
}

static void on_presence(void *arg, const char *id, const redisReply *fields)
{
    cluster *c = arg;
    im_cluster_event ev;
    if (!im_cluster_event_parse(fields, &ev)) {
        IM_DEBUG("cluster: presence entry %s skipped: malformed", id);
        return;
    }
    if (strcmp(ev.node, c->node_id) == 0)
        return; /* this node's own, or an older life's */
    bool resync = false, kick = false;
    im_endpoint kicked = { 0 };
    char node_id[IM_NODE_ID_MAX + 1];
    snprintf(node_id, sizeof node_id, "%s", ev.node);
    pthread_rwlock_wrlock(&c->lock);
    uint32_t node = im_cluster_map_node(c->map, ev.node);
    if (node != IM_CLUSTER_NO_NODE &&
        im_cluster_map_event_fresh(c->map, node, ev.epoch, ev.ver)) {
        uint64_t live = im_cluster_map_live_epoch(c->map, node);
        if (ev.op == IM_CLUSTER_RESYNC) {
            resync = true;
        } else if (ev.op == IM_CLUSTER_UNBIND) {
            im_cluster_map_remove(c->map, ev.user, node, ev.epoch, 0);
        } else if (!live || ev.epoch >= live) {
            im_cluster_route r = { .node = node }, mine;
            bool here = im_cluster_map_lookup(c->map, ev.user, &mine) &&
                        mine.node == IM_CLUSTER_SELF;
            if (!im_cluster_route_parse(ev.value, ev.value_len, &r) || r.epoch != ev.epoch) {
                IM_DEBUG("cluster: presence entry %s skipped: a bad route", id);
            } else if (here && newer(&mine, c->node_id, &r, ev.node)) {
                /* Two logins raced, and this node's is the later: it stays,
                 * and the other node closes its own when this node's event
                 * reaches it. */
            } else if (im_cluster_map_put(c->map, ev.user, &r, NULL) >= 0 && here) {
                /* The user logged in there after logging in here (the
                 * replace whose kick is on its way, or a race this node
                 * lost): the later login stays. */
                kick = true;
                kicked = (im_endpoint){ .node = 0, .worker = mine.worker, .conn_id = mine.conn };
            }
        }
    }
    size_t load = im_cluster_map_local_count(c->map);
    pthread_rwlock_unlock(&c->lock);
    if (kick) {
        im_delivery_kick(c->local_d, &kicked, IM_EREPLACED, "logged in on another node");
        im_zk_nodes_set_load(c->zk, (uint32_t)load);
    }
    if (resync)
        request_snapshot(c, node_id, node);
}

/* ---- this node's stream: messages and kicks from other nodes ---- */

/* Splits "a,b,c" into ids (pointers into buf, a copy); returns how many. */
static size_t split_members(char *buf, const char **ids, size_t cap)
{
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < cap;
         t = strtok_r(NULL, ",", &save))
        ids[n++] = t;
    return n;
}

static void on_entry(void *arg, const char *id, const redisReply *fields)
{
    cluster *c = arg;
    im_cluster_entry e;
    const char *why = NULL;
    if (!im_cluster_entry_parse(fields, &e, &why)) {
        IM_WARN("cluster: stream entry %s skipped: %s", id, why);
        return;
    }
    if (e.epoch != c->epoch) {
        /* For an earlier life of this node: its sessions are gone, and
         * what it carried is in the store for their next login. */
        IM_DEBUG("cluster: stream entry %s is for epoch %" PRIu64 ", not this one", id, e.epoch);
        return;
    }
    im_endpoint ep = { .node = 0, .worker = e.worker, .conn_id = e.conn };
    if (e.type == IM_CLUSTER_KICK) {
        im_delivery_kick(c->local_d, &ep, e.code, e.why ? e.why : "");
        return;
    }
    if (e.has_endpoint) {
        im_delivery_deliver_to(c->local_d, &ep, &e.m, e.sender_name);
    } else if (e.members) {
        size_t len = strlen(e.members);
        char *buf = malloc(len + 1);
        size_t cap = len / 2 + 1;
        const char **ids = malloc(cap * sizeof *ids);
        if (buf && ids) {
            memcpy(buf, e.members, len + 1);
            size_t n = split_members(buf, ids, cap);
            im_delivery_deliver_many(c->local_d, ids, n, NULL, &e.m, e.sender_name);
        }
        free(buf);
        free(ids);
    } else {
        im_delivery_deliver(c->local_d, &e.m, e.sender_name, NULL);
    }
}

/* ---- sending to another node ---- */

/* Sends e to node's stream; 0, or IM_EIO when the link cannot take it
 * (the message is in the store: the receiver gets it at its next login). */
static int send_entry(cluster *c, const char *node_id, const im_cluster_entry *e)
{
    if (!im_redis_connected(c->redis))
        return IM_EIO; /* said at once, rather than counted as delivered */
    im_cluster_argv a;
    im_cluster_xadd(&a, node_id, c->maxlen, e);
    return send_argv(c, &a, log_failure, (void *)"stream entry") == IM_OK ? IM_OK : IM_EIO;
}

/* Where a remote endpoint's node is: its id and the epoch it is live
 * under; false if it left. */
static bool remote_node(cluster *c, uint32_t node, char *id, uint64_t *epoch)
{
    pthread_rwlock_rdlock(&c->lock);
    const char *s = im_cluster_map_node_id(c->map, node);
    *epoch = im_cluster_map_live_epoch(c->map, node);
    if (s)
        snprintf(id, IM_NODE_ID_MAX + 1, "%s", s);
    pthread_rwlock_unlock(&c->lock);
    return s && *epoch;
}

/* ---- presence ---- */

static int cl_bind(im_presence *p, const char *user_id, const char *display_name,
                   const im_endpoint *ep, im_login_policy policy, im_endpoint *replaced,
                   im_error *err)
{
    cluster *c = OF(p, presence);
    pthread_rwlock_wrlock(&c->lock);
    im_cluster_route cur;
    bool elsewhere = im_cluster_map_lookup(c->map, user_id, &cur) && cur.node != IM_CLUSTER_SELF;
    if (elsewhere && policy == IM_LOGIN_REJECT) {
        const char *where = im_cluster_map_node_id(c->map, cur.node);
        pthread_rwlock_unlock(&c->lock);
        return im_error_set(err, IM_EDUPLICATE, "%s is already online on %s", user_id,
                            where ? where : "another node");
    }
    int rc = im_presence_bind(c->local_p, user_id, display_name, ep, policy, replaced, err);
    if (rc < 0) {
        pthread_rwlock_unlock(&c->lock);
        return rc;
    }
    if (elsewhere && rc == 0) {
        /* The session there is closed by its node, told through its
         * stream (the caller kicks *replaced). */
        *replaced = (im_endpoint){ .node = cur.node, .worker = cur.worker, .conn_id = cur.conn };
        rc = 1;
    }
    im_cluster_route r = {
        .node = IM_CLUSTER_SELF, .epoch = c->epoch, .ver = im_cluster_map_next_ver(c->map),
        .worker = ep->worker, .conn = ep->conn_id, .since_ms = wall_ms(),
    };
    snprintf(r.name, sizeof r.name, "%s", display_name ? display_name : "");
    if (im_cluster_map_put(c->map, user_id, &r, NULL) >= 0)
        write_change(c, IM_CLUSTER_BIND, user_id, &r);
    size_t load = im_cluster_map_local_count(c->map);
    pthread_rwlock_unlock(&c->lock);
    im_zk_nodes_set_load(c->zk, (uint32_t)load);
    return rc;
}

static bool cl_unbind(im_presence *p, const char *user_id, const im_endpoint *ep)
{
    cluster *c = OF(p, presence);
    pthread_rwlock_wrlock(&c->lock);
    bool did = im_presence_unbind(c->local_p, user_id, ep);
    if (did) {
        /* Written also when the map already names another node (the user
         * logged in there and this session was closed for it): the route
         * must leave this node's hash, or a snapshot would bring it back. */
        im_cluster_map_remove(c->map, user_id, IM_CLUSTER_SELF, c->epoch, ep->conn_id);
        im_cluster_route r = { .ver = im_cluster_map_next_ver(c->map) };
        write_change(c, IM_CLUSTER_UNBIND, user_id, &r);
    }
    bool still = im_cluster_map_lookup(c->map, user_id, NULL);
    size_t load = im_cluster_map_local_count(c->map);
    pthread_rwlock_unlock(&c->lock);
    im_zk_nodes_set_load(c->zk, (uint32_t)load);
    return did && !still;
}

static bool cl_is_online(im_presence *p, const char *user_id)
{
    cluster *c = OF(p, presence);
    pthread_rwlock_rdlock(&c->lock);
    bool on = im_cluster_map_lookup(c->map, user_id, NULL);
    pthread_rwlock_unlock(&c->lock);
    return on || im_presence_is_online(c->local_p, user_id);
}

typedef struct online_copy {
    char (*users)[IM_USER_ID_MAX + 1];
    char (*names)[IM_DISPLAY_NAME_MAX + 1];
    size_t n, cap;
} online_copy;

static bool copy_online(void *arg, const char *user, const im_cluster_route *r)
{
    online_copy *o = arg;
    if (o->n == o->cap)
        return false;
    snprintf(o->users[o->n], sizeof o->users[0], "%s", user);
    snprintf(o->names[o->n], sizeof o->names[0], "%s", r->name[0] ? r->name : user);
    o->n++;
    return true;
}

/* Copies the routes under the lock and calls fn outside it: fn may take
 * its time, or call the presence again. */
static size_t cl_list_online(im_presence *p, im_router_user_fn fn, void *arg)
{
    cluster *c = OF(p, presence);
    online_copy o = { 0 };
    pthread_rwlock_rdlock(&c->lock);
    o.cap = im_cluster_map_count(c->map);
    if (fn && o.cap) {
        o.users = malloc(o.cap * sizeof *o.users);
        o.names = malloc(o.cap * sizeof *o.names);
        if (o.users && o.names)
            im_cluster_map_each(c->map, copy_online, &o);
    }
    pthread_rwlock_unlock(&c->lock);
    for (size_t i = 0; i < o.n; i++)
        if (!fn(arg, o.users[i], o.names[i]))
            break;
    free(o.users);
    free(o.names);
    return o.cap;
}

static bool cl_is_reserved(im_presence *p, const char *user_id)
{
    cluster *c = OF(p, presence);
    return im_presence_is_reserved(c->local_p, user_id);
}

/* ---- delivery ---- */

static int cl_deliver(im_delivery *d, const im_message *m, const char *sender_name, im_error *err)
{
    cluster *c = OF(d, delivery);
    im_cluster_route r;
    char node_id[IM_NODE_ID_MAX + 1];
    pthread_rwlock_rdlock(&c->lock);
    bool remote = im_cluster_map_lookup(c->map, m->target, &r) && r.node != IM_CLUSTER_SELF;
    if (remote)
        snprintf(node_id, sizeof node_id, "%s", im_cluster_map_node_id(c->map, r.node));
    pthread_rwlock_unlock(&c->lock);
    if (!remote)
        return im_delivery_deliver(c->local_d, m, sender_name, err);
    im_cluster_entry e = { .type = IM_CLUSTER_MESSAGE, .epoch = r.epoch, .m = *m,
                           .sender_name = sender_name };
    int rc = send_entry(c, node_id, &e);
    if (rc != IM_OK)
        return im_error_set(err, IM_EOFFLINE, "%s is on %s, which cannot be reached now",
                            m->target, node_id);
    return IM_OK;
}

/* The members of a group message that are on one other node. */
typedef struct per_node {
    uint32_t node;
    uint64_t epoch;
    char id[IM_NODE_ID_MAX + 1];
    char *list;                   /* "a,b,c" */
    size_t len, cap, count;
} per_node;

static per_node *node_bucket(per_node **v, size_t *n, const im_cluster_route *r,
                             const char *id)
{
    for (size_t i = 0; i < *n; i++)
        if ((*v)[i].node == r->node)
            return &(*v)[i];
    per_node *nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (!nv)
        return NULL;
    *v = nv;
    per_node *b = &nv[(*n)++];
    memset(b, 0, sizeof *b);
    b->node = r->node;
    b->epoch = r->epoch;
    snprintf(b->id, sizeof b->id, "%s", id);
    return b;
}

static bool bucket_add(per_node *b, const char *user)
{
    size_t ul = strlen(user);
    if (b->len + ul + 2 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 256) + ul;
        char *l = realloc(b->list, cap);
        if (!l)
            return false;
        b->list = l;
        b->cap = cap;
    }
    if (b->len)
        b->list[b->len++] = ',';
    memcpy(b->list + b->len, user, ul + 1);
    b->len += ul;
    b->count++;
    return true;
}

static int cl_deliver_many(im_delivery *d, const char *const *members, size_t n,
                           const char *skip, const im_message *m, const char *sender_name)
{
    cluster *c = OF(d, delivery);
    const char *stack[64];
    const char **local = n <= 64 ? stack : malloc(n * sizeof *local);
    if (!local)
        return IM_ENOMEM;
    size_t nlocal = 0, nnodes = 0;
    per_node *nodes = NULL;
    pthread_rwlock_rdlock(&c->lock);
    for (size_t i = 0; i < n; i++) {
        if (skip && strcmp(members[i], skip) == 0)
            continue;
        im_cluster_route r;
        per_node *b = NULL;
        if (im_cluster_map_lookup(c->map, members[i], &r) && r.node != IM_CLUSTER_SELF)
            b = node_bucket(&nodes, &nnodes, &r, im_cluster_map_node_id(c->map, r.node));
        if (!b || !bucket_add(b, members[i]))
            local[nlocal++] = members[i]; /* here, offline, or out of memory: local */
    }
    pthread_rwlock_unlock(&c->lock);
    int delivered = nlocal ? im_delivery_deliver_many(c->local_d, local, nlocal, skip, m,
                                                      sender_name)
                           : 0;
    if (delivered < 0)
        delivered = 0;
    for (size_t i = 0; i < nnodes; i++) {
        im_cluster_entry e = { .type = IM_CLUSTER_MESSAGE, .epoch = nodes[i].epoch, .m = *m,
                               .sender_name = sender_name, .members = nodes[i].list };
        if (send_entry(c, nodes[i].id, &e) == IM_OK)
            delivered += (int)nodes[i].count;
        free(nodes[i].list);
    }
    free(nodes);
    if (local != stack)
        free(local);
    return delivered;
}

static void cl_deliver_to(im_delivery *d, const im_endpoint *ep, const im_message *m,
                          const char *sender_name)
{
    cluster *c = OF(d, delivery);
    if (ep->node == IM_CLUSTER_SELF) {
        im_delivery_deliver_to(c->local_d, ep, m, sender_name);
        return;
    }
    char id[IM_NODE_ID_MAX + 1];
    uint64_t epoch;
    if (!remote_node(c, ep->node, id, &epoch))
        return; /* that node left: the session has gone */
    im_cluster_entry e = { .type = IM_CLUSTER_MESSAGE, .epoch = epoch, .m = *m,
                           .sender_name = sender_name, .has_endpoint = true,
                           .worker = ep->worker, .conn = ep->conn_id };
    send_entry(c, id, &e);
}

static void cl_kick(im_delivery *d, const im_endpoint *ep, int code, const char *why)
{
    cluster *c = OF(d, delivery);
    if (ep->node == IM_CLUSTER_SELF) {
        im_delivery_kick(c->local_d, ep, code, why);
        return;
    }
    char id[IM_NODE_ID_MAX + 1];
    uint64_t epoch;
    if (!remote_node(c, ep->node, id, &epoch))
        return;
    im_cluster_entry e = { .type = IM_CLUSTER_KICK, .epoch = epoch, .has_endpoint = true,
                           .worker = ep->worker, .conn = ep->conn_id, .code = code, .why = why };
    if (send_entry(c, id, &e) != IM_OK)
        IM_WARN("cluster: cannot tell node %s to close a session (Redis is unreachable)", id);
}

static const struct im_presence_ops cluster_presence_ops = {
    .size = sizeof(struct im_presence_ops),
    .name = "cluster_redis",
    .bind = cl_bind,
    .unbind = cl_unbind,
    .is_online = cl_is_online,
    .list_online = cl_list_online,
    .is_reserved = cl_is_reserved,
};

static const struct im_delivery_ops cluster_delivery_ops = {
    .size = sizeof(struct im_delivery_ops),
    .name = "cluster_redis",
    .deliver = cl_deliver,
    .deliver_many = cl_deliver_many,
    .deliver_to = cl_deliver_to,
    .kick = cl_kick,
};

/* ---- the "cluster" thread: expiry and rewrites ---- */

/* Writes every route of this node again, as one script: the hash replaced,
 * a RESYNC event for the other nodes. Under the write lock, so that no
 * change is numbered between the copy and the write. */
typedef struct rewrite {
    const char **argv;
    size_t *len;
    char (*values)[160 + IM_DISPLAY_NAME_MAX];
    size_t n, cap;
} rewrite;

static bool add_own(void *arg, const char *user, const im_cluster_route *r)
{
    rewrite *w = arg;
    if (r->node != IM_CLUSTER_SELF || w->n == w->cap)
        return true;
    size_t i = w->n++;
    size_t vl = im_cluster_route_format(r, w->values[i], sizeof w->values[0]);
    /* user is the map's key: it stays put while the lock is held. */
    w->argv[11 + 2 * i] = user;
    w->len[11 + 2 * i] = strlen(user);
    w->argv[12 + 2 * i] = w->values[i];
    w->len[12 + 2 * i] = vl;
    return true;
}

static void hash_checked(void *arg, int rc, const redisReply *reply, const im_error *err)
{
    (void)err;
    cluster *c = arg;
    if (rc == IM_OK && reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        pthread_mutex_lock(&c->tlock);
        c->rewrite_due = true; /* the hash is gone, though the link stayed up */
        pthread_mutex_unlock(&c->tlock);
    }
}

static void write_all(cluster *c)
{
    pthread_rwlock_wrlock(&c->lock);
    size_t own = im_cluster_map_local_count(c->map);
    rewrite w = { .cap = own };
    size_t argc = 11 + 2 * own;
    w.argv = calloc(argc, sizeof *w.argv);
    w.len = calloc(argc, sizeof *w.len);
    w.values = own ? calloc(own, sizeof *w.values) : NULL;
    if (!w.argv || !w.len || (own && !w.values)) {
        pthread_rwlock_unlock(&c->lock);
        free(w.argv); free(w.len); free(w.values);
        pthread_mutex_lock(&c->tlock);
        c->rewrite_due = true;
        pthread_mutex_unlock(&c->tlock);
        return;
    }
    im_cluster_map_each(c->map, add_own, &w);
    char epoch[24], ver[24], ttl[24], maxlen[24];
    snprintf(epoch, sizeof epoch, "%" PRIu64, c->epoch);
    snprintf(ver, sizeof ver, "%" PRIu64, im_cluster_map_next_ver(c->map));
    snprintf(ttl, sizeof ttl, "%u", c->ttl_ms);
    snprintf(maxlen, sizeof maxlen, "%u", c->maxlen);
    const char *head[] = { "EVAL", im_cluster_rewrite_script, "2", c->users_key,
                           IM_CLUSTER_PRESENCE_STREAM, epoch, ver, ttl, maxlen, c->node_id, "" };
    for (size_t i = 0; i < 11; i++) {
        w.argv[i] = head[i];
        w.len[i] = strlen(head[i]);
    }
    /* The group first, made or moved to the stream's end, so that no event
     * after the snapshots below is missed and none before them is read
     * (a group this node's id left in an earlier life, or from before a
     * short outage, is behind); then this node's routes; then the others'
     * hashes. One connection: Redis runs them in this order. */
    const char *group[] = { "XGROUP", "CREATE", IM_CLUSTER_PRESENCE_STREAM, c->node_id, "$",
                            "MKSTREAM" };
    const char *setid[] = { "XGROUP", "SETID", IM_CLUSTER_PRESENCE_STREAM, c->node_id, "$" };
    im_redis_command(c->redis, NULL, NULL, 6, group, NULL);
    im_redis_command(c->redis, NULL, NULL, 5, setid, NULL);
    im_redis_command(c->redis, log_failure, (void *)"routes of this node",
                     (int)(11 + 2 * w.n), w.argv, w.len);
    pthread_rwlock_unlock(&c->lock);
    free(w.argv);
    free(w.len);
    free(w.values);
}

static void snapshot_all(cluster *c)
{
    pthread_rwlock_rdlock(&c->lock);
    uint32_t live[IM_CLUSTER_MAX_NODES];
    char (*ids)[IM_NODE_ID_MAX + 1] = malloc(IM_CLUSTER_MAX_NODES * sizeof *ids);
    size_t n = 0;
    for (uint32_t k = 1; ids && im_cluster_map_node_id(c->map, k); k++)
        if (im_cluster_map_live_epoch(c->map, k)) {
            live[n] = k;
            snprintf(ids[n], sizeof ids[n], "%s", im_cluster_map_node_id(c->map, k));
            n++;
        }
    pthread_rwlock_unlock(&c->lock);
    for (size_t i = 0; i < n; i++)
        request_snapshot(c, ids[i], live[i]);
    free(ids);
}

static void *cluster_main(void *arg)
{
    cluster *c = arg;
    im_log_set_thread_name("cluster");
    unsigned refresh_ms = c->ttl_ms / 3;
    uint64_t next_refresh = 0;
    pthread_mutex_lock(&c->tlock);
    while (!c->stopping) {
        uint64_t ups = im_redis_connections(c->redis);
        bool rewrite = c->rewrite_due || (ups != c->redis_ups && im_redis_connected(c->redis));
        c->rewrite_due = false;
        pthread_mutex_unlock(&c->tlock);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t now_ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
        if (rewrite) {
            IM_INFO("cluster: writing this node's routes to Redis and reading the others'");
            write_all(c);
            snapshot_all(c);
            next_refresh = now_ms + refresh_ms;
        } else if (now_ms >= next_refresh) {
            const char *argv[3];
            char ttl[24];
            snprintf(ttl, sizeof ttl, "%u", c->ttl_ms);
            argv[0] = "PEXPIRE";
            argv[1] = c->users_key;
            argv[2] = ttl;
            if (im_redis_connected(c->redis))
                im_redis_command(c->redis, hash_checked, c, 3, argv, NULL);
            next_refresh = now_ms + refresh_ms;
        }
        pthread_mutex_lock(&c->tlock);
        if (rewrite)
            c->redis_ups = ups;
        if (c->stopping)
            break;
        /* Wake every 100 ms: a reconnect is noticed within that. */
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += 100 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->tcond, &c->tlock, &until);
    }
    pthread_mutex_unlock(&c->tlock);
    return NULL;
}

/* ---- open and shut down ---- */

typedef struct done_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
} done_wait;

static void on_done(void *arg, int rc, const redisReply *reply, const im_error *err)
{
    (void)rc, (void)reply, (void)err;
    done_wait *w = arg;
    pthread_mutex_lock(&w->lock);
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void cluster_shutdown(void *state)
{
    cluster *c = state;
    if (c->thread_started) {
        pthread_mutex_lock(&c->tlock);
        c->stopping = true;
        pthread_cond_signal(&c->tcond);
        pthread_mutex_unlock(&c->tlock);
        pthread_join(c->thread, NULL);
    }
    /* Take this node's routes out of Redis, waiting a moment for it, then
     * leave the node list (the other nodes drop whatever routes of this
     * node they still have). The link goes first: the "zk" thread's
     * callbacks stop using it once redis_closed is set, and the "redis"
     * thread's use the node list, which outlives it. */
    pthread_rwlock_wrlock(&c->lock);
    c->redis_closed = true;
    pthread_rwlock_unlock(&c->lock);
    if (c->redis && im_redis_connected(c->redis)) {
        done_wait w = { .done = false };
        pthread_mutex_init(&w.lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&w.cond, &ca);
        pthread_condattr_destroy(&ca);
        /* The presence group stays: destroying it under the consumer's
         * blocked read would have the consumer make it again. A node that
         * comes back under this id moves it to the stream's end. */
        const char *del[] = { "DEL", c->users_key };
        if (im_redis_command(c->redis, on_done, &w, 2, del, NULL) == IM_OK) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += 1;
            pthread_mutex_lock(&w.lock);
            while (!w.done)
                if (pthread_cond_timedwait(&w.cond, &w.lock, &until) == ETIMEDOUT)
                    break;
            pthread_mutex_unlock(&w.lock);
        }
        /* Destroying the link answers the command if it is still out, so
         * w outlives every use of it. */
        im_redis_destroy(c->redis);
        c->redis = NULL;
        pthread_cond_destroy(&w.cond);
        pthread_mutex_destroy(&w.lock);
    }
    im_redis_destroy(c->redis);
    im_zk_nodes_destroy(c->zk);
    if (c->thread_started) {
        pthread_cond_destroy(&c->tcond);
        pthread_mutex_destroy(&c->tlock);
    }
    pthread_rwlock_destroy(&c->lock);
    if (c->password) {
        memset(c->password, 0, strlen(c->password));
        free(c->password);
    }
    if (c->map)
        IM_INFO("cluster: node %s left the cluster", c->node_id);
    im_cluster_map_free(c->map);
    free(c);
}

static int open_cluster(void *state, im_presence *local_presence, im_delivery *local_delivery,
                        im_presence **presence, im_delivery **delivery, im_error *err)
{
    cluster *c = state;
    *presence = NULL;
    *delivery = NULL;
    c->local_p = local_presence;
    c->local_d = local_delivery;
    c->presence.ops = &cluster_presence_ops;
    c->delivery.ops = &cluster_delivery_ops;
    c->epoch = wall_ms();
    if (!c->advertise[0]) {
        /* listen.port is the bound port by now (the server sets it before
         * this call), also when the config asked for an ephemeral one. */
        const imcore_host_api *api = c->base.api;
        const char *h = api->config_get(c->base.host, "listen.host");
        const char *p = api->config_get(c->base.host, "listen.port");
        h = h && h[0] ? h : "127.0.0.1";
        bool v6 = strchr(h, ':') != NULL;
        snprintf(c->advertise, sizeof c->advertise, "%s%s%s:%s", v6 ? "[" : "", h,
                 v6 ? "]" : "", p && p[0] ? p : "7000");
    }
    im_cluster_users_key(c->users_key, sizeof c->users_key, c->node_id);
    im_cluster_node_stream(c->stream, sizeof c->stream, c->node_id);
    if (im_cluster_map_new(c->node_id, c->epoch, &c->map) != IM_OK)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    im_redis_config rc = { .host = c->redis_host, .port = (uint16_t)c->redis_port,
                           .password = c->password };
    /* The link, then the node list (whose callbacks use the link), then
     * the streams (whose callbacks use both). */
    int r = im_redis_new(&rc, &c->redis, err);
    if (r != IM_OK)
        return r;
    im_zk_config zc = { .hosts = c->zk_hosts, .root = c->zk_root,
                        .session_timeout_ms = c->zk_session_ms };
    if ((r = im_zk_nodes_new(&zc, on_nodes, c, &c->zk, err)) != IM_OK)
        return r;
    im_cluster_node self = { .epoch = c->epoch, .load = 0 };
    snprintf(self.id, sizeof self.id, "%s", c->node_id);
    snprintf(self.client, sizeof self.client, "%s", c->advertise);
    if ((r = im_zk_nodes_register(c->zk, &self, err)) != IM_OK)
        return r;
    /* This node's inbox: a group made again after Redis lost it reads
     * from the start, so entries added before it came back are not lost;
     * entries for an earlier epoch are passed over (on_entry). */
    if ((r = im_redis_consume_all(c->redis, c->stream, "imcore", c->node_id, 256, on_entry,
                                  c)) !=
            IM_OK ||
        (r = im_redis_consume(c->redis, IM_CLUSTER_PRESENCE_STREAM, c->node_id, c->node_id, 512,
                              on_presence, c)) != IM_OK)
        return im_error_set(err, r, "cluster: cannot read the streams");
    pthread_mutex_init(&c->tlock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->tcond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&c->thread, NULL, cluster_main, c) != 0) {
        pthread_cond_destroy(&c->tcond);
        pthread_mutex_destroy(&c->tlock);
        return im_error_set(err, IM_ENOMEM, "cluster: cannot start its thread");
    }
    c->thread_started = true;
    IM_INFO("cluster: node %s (epoch %" PRIu64 ") at %s, Redis %s:%u, ZooKeeper %s", c->node_id,
            c->epoch, c->advertise, c->redis_host, c->redis_port, c->zk_hosts);
    *presence = &c->presence;
    *delivery = &c->delivery;
    return IM_OK;
}

/* ---- settings ---- */

static bool fail_key(const imcore_host_api *api, imcore_host *host, imcore_plugin *out,
                     const char *key, const char *fmt, const char *value)
{
    const char *where = api->config_where(host, key);
    const char *shown = strncmp(key, "options.", 8) == 0 ? key + 8 : key;
    char what[120];
    snprintf(what, sizeof what, fmt, value ? value : "");
    snprintf(out->error, sizeof out->error, "%s%scluster_options.%s: %s", where ? where : "",
             where ? ": " : "", shown, what);
    return false;
}

/* A number in lo..hi, or the fallback when absent. */
static bool read_uint(const imcore_host_api *api, imcore_host *host, imcore_plugin *out,
                      const char *key, unsigned lo, unsigned hi, unsigned fallback,
                      unsigned *v)
{
    const char *s = api->config_get(host, key);
    if (!s) {
        *v = fallback;
        return true;
    }
    char *end;
    errno = 0;
    unsigned long n = strtoul(s, &end, 10);
    if (errno || !*s || *end || s[0] == '-' || n < lo || n > hi) {
        char fmt[80];
        snprintf(fmt, sizeof fmt, "must be a number from %u to %u, not '%%.40s'", lo, hi);
        return fail_key(api, host, out, key, fmt, s);
    }
    *v = (unsigned)n;
    return true;
}

static bool read_password(const imcore_host_api *api, imcore_host *host, imcore_plugin *out,
                          cluster *c)
{
    const char *key = "options.redis.password_file";
    const char *path = api->config_get(host, key);
    if (!path || !path[0])
        return true;
    FILE *f = fopen(path, "r");
    if (!f)
        return fail_key(api, host, out, key, "cannot open %s", path);
    char buf[256];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    if (!n)
        return fail_key(api, host, out, key, "%s is empty", path);
    c->password = strdup(buf);
    memset(buf, 0, sizeof buf);
    if (!c->password)
        return fail_key(api, host, out, key, "out of memory", NULL);
    return true;
}

/* host:port with a port in 1..65535; IPv6 as [addr]:port. */
static bool address_ok(const char *a)
{
    const char *colon = strrchr(a, ':');
    if (!colon || colon == a || strlen(a) > IM_NODE_ADDR_MAX)
        return false;
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    return colon[1] && !*end && port >= 1 && port <= 65535;
}

/* A refused init: the server calls no shutdown then, so free here. */
static int refuse(cluster *c)
{
    pthread_rwlock_destroy(&c->lock);
    if (c->password) {
        memset(c->password, 0, strlen(c->password));
        free(c->password);
    }
    free(c);
    return 1;
}

const imcore_plugin_info imcore_plugin_about = {
    IMCORE_PLUGIN_INFO_FIELDS("cluster_redis", "1"),
};

int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    static const char *const known[] = {
        "node_id", "listen.host", "listen.port", "zookeeper.hosts", "zookeeper.root",
        "zookeeper.session_timeout_ms", "session.login_policy", "options.redis.host",
        "options.redis.port", "options.redis.password_file", "options.advertise",
        "options.route_ttl_ms", "options.stream_maxlen", NULL,
    };
    cluster *c = im_adapter_new(api, host, out, "cluster_redis",
                                IM_ADAPTER_PLUGIN_SIZE(open_cluster), known, "cluster_options",
                                sizeof *c);
    if (!c)
        return 1;
    out->shutdown = cluster_shutdown;
    pthread_rwlock_init(&c->lock, NULL);
    const char *s = api->config_get(host, "node_id");
    snprintf(c->node_id, sizeof c->node_id, "%s", s && s[0] ? s : "node-1");
    s = api->config_get(host, "zookeeper.hosts");
    if (!s || !s[0]) {
        snprintf(out->error, sizeof out->error,
                 "cluster: redis needs zookeeper.hosts, where the nodes find each other");
        return refuse(c);
    }
    snprintf(c->zk_hosts, sizeof c->zk_hosts, "%s", s);
    s = api->config_get(host, "zookeeper.root");
    snprintf(c->zk_root, sizeof c->zk_root, "%s", s && s[0] ? s : "/imcore/nodes");
    c->zk_session_ms = im_adapter_uint(api, host, "zookeeper.session_timeout_ms", 10000);
    s = api->config_get(host, "session.login_policy");
    c->policy = s && strcmp(s, "reject") == 0 ? IM_LOGIN_REJECT : IM_LOGIN_REPLACE;
    s = api->config_get(host, "options.redis.host");
    if (s && (!s[0] || strlen(s) >= sizeof c->redis_host)) {
        fail_key(api, host, out, "options.redis.host", "must be a host name or address, not "
                 "'%.60s'", s);
        return refuse(c);
    }
    snprintf(c->redis_host, sizeof c->redis_host, "%s", s ? s : "127.0.0.1");
    if (!read_uint(api, host, out, "options.redis.port", 1, 65535, 6379, &c->redis_port) ||
        !read_uint(api, host, out, "options.route_ttl_ms", 3000, 600000, 15000, &c->ttl_ms) ||
        !read_uint(api, host, out, "options.stream_maxlen", 1000, 10000000, 100000,
                   &c->maxlen) ||
        !read_password(api, host, out, c))
        return refuse(c);
    s = api->config_get(host, "options.advertise");
    if (s) {
        if (!address_ok(s)) {
            fail_key(api, host, out, "options.advertise",
                     "must be host:port (the address clients connect to), not '%.60s'", s);
            return refuse(c);
        }
        snprintf(c->advertise, sizeof c->advertise, "%s", s);
    }
    out->open_cluster = open_cluster;
    return 0;
}
