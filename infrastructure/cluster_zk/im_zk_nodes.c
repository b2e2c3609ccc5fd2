/* infrastructure/cluster_zk/im_zk_nodes.c: see the header.
 *
 * The ZooKeeper client runs its own I/O and completion threads and calls
 * the watchers below from the completion thread; they only record what
 * happened and wake the "zk" thread, which makes every call. So a slow or
 * absent ZooKeeper holds up that one thread and nothing else, and the
 * handle is closed only from the thread that owns it (closing it from a
 * watcher would deadlock the client). */
#include "im_zk_nodes.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zookeeper/zookeeper.h>

#include "im_log.h"

#define LOAD_INTERVAL_MS 1000
#define MAX_NODES 4096
#define ZNODE_DATA_MAX 1024

enum zk_state { ZK_DOWN, ZK_CONNECTING, ZK_CONNECTED };

struct im_zk_nodes {
    char *hosts, *root, *prefix;          /* prefix: root + "/n-" */
    unsigned session_timeout_ms;
    im_zk_nodes_fn watch;
    void *watch_arg;

    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool stopping;
    /* Set by the watchers and the API, read by the thread (under lock). */
    zhandle_t *zh;
    enum zk_state state;
    bool expired;
    bool children_dirty;
    bool want_register;
    bool registered;
    im_cluster_node self;
    uint32_t load;
    bool load_dirty;
    char znode[512];                      /* this node's znode, when registered */
    /* For im_zk_nodes_expire_session: a second handle on the same session. */
    bool twin_connected;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool good_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > IM_NODE_ID_MAX)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return false;
    return true;
}

static bool good_addr(const char *s, bool may_be_empty)
{
    size_t n = strlen(s);
    if (n == 0)
        return may_be_empty;
    if (n > IM_NODE_ADDR_MAX || !strchr(s, ':'))
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s > '~' || *s == '=')
            return false;
    return true;
}

size_t im_zk_node_format(const im_cluster_node *n, char *out, size_t size)
{
    int len = snprintf(out, size, "id=%s\nclient=%s\ninternal=%s\nepoch=%llu\nload=%u\n", n->id,
                       n->client, n->internal, (unsigned long long)n->epoch, n->load);
    return len < 0 || (size_t)len >= size ? 0 : (size_t)len;
}

bool im_zk_node_parse(const char *data, size_t len, im_cluster_node *n)
{
    memset(n, 0, sizeof *n);
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *eq = memchr(p, '=', (size_t)(le - p));
        if (eq) {
            size_t klen = (size_t)(eq - p), vlen = (size_t)(le - eq - 1);
            char v[IM_NODE_ADDR_MAX + 1];
            if (vlen < sizeof v) {
                memcpy(v, eq + 1, vlen);
                v[vlen] = '\0';
                if (klen == 2 && !memcmp(p, "id", 2) && vlen <= IM_NODE_ID_MAX)
                    memcpy(n->id, v, vlen + 1);
                else if (klen == 6 && !memcmp(p, "client", 6))
                    memcpy(n->client, v, vlen + 1);
                else if (klen == 8 && !memcmp(p, "internal", 8))
                    memcpy(n->internal, v, vlen + 1);
                else if (klen == 5 && !memcmp(p, "epoch", 5))
                    n->epoch = strtoull(v, NULL, 10);
                else if (klen == 4 && !memcmp(p, "load", 4))
                    n->load = (uint32_t)strtoul(v, NULL, 10);
            }
        }
        p = le + 1;
    }
    return good_id(n->id) && good_addr(n->client, false) && good_addr(n->internal, true);
}

/* ---- watchers: on the client's completion thread ---- */

static void on_session(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)path;
    im_zk_nodes *z = ctx;
    if (type != ZOO_SESSION_EVENT)
        return;
    pthread_mutex_lock(&z->lock);
    if (zh == z->zh) {
        if (state == ZOO_CONNECTED_STATE) {
            z->state = ZK_CONNECTED;
            z->children_dirty = z->watch != NULL; /* a watch may have been missed */
        } else if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE) {
            z->expired = true;
        } else if (state == ZOO_CONNECTING_STATE || state == ZOO_ASSOCIATING_STATE) {
            z->state = ZK_CONNECTING;
        }
        pthread_cond_broadcast(&z->wake);
    }
    pthread_mutex_unlock(&z->lock);
}

static void on_children(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh; (void)state; (void)path;
    im_zk_nodes *z = ctx;
    if (type != ZOO_CHILD_EVENT && type != ZOO_DELETED_EVENT && type != ZOO_CREATED_EVENT &&
        type != ZOO_CHANGED_EVENT)
        return;
    pthread_mutex_lock(&z->lock);
    z->children_dirty = true;
    pthread_cond_broadcast(&z->wake);
    pthread_mutex_unlock(&z->lock);
}

static void on_twin(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh; (void)path;
    im_zk_nodes *z = ctx;
    if (type == ZOO_SESSION_EVENT && state == ZOO_CONNECTED_STATE) {
        pthread_mutex_lock(&z->lock);
        z->twin_connected = true;
        pthread_cond_broadcast(&z->wake);
        pthread_mutex_unlock(&z->lock);
    }
}

/* ---- the "zk" thread ---- */

/* Creates each missing component of z->root (persistent, empty). */
static int ensure_root(zhandle_t *zh, const char *root)
{
    char path[512];
    for (const char *p = strchr(root + 1, '/');; p = strchr(p + 1, '/')) {
        size_t n = p ? (size_t)(p - root) : strlen(root);
        memcpy(path, root, n);
        path[n] = '\0';
        int rc = zoo_create(zh, path, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
        if (rc != ZOK && rc != ZNODEEXISTS)
            return rc;
        if (!p)
            return ZOK;
    }
}

static int compare_nodes(const void *a, const void *b)
{
    return strcmp(((const im_cluster_node *)a)->id, ((const im_cluster_node *)b)->id);
}

/* Reads the children and each one's data, setting watches on both, and hands the
 * list to watch. A child that vanished meanwhile, or holds what is not a
 * node, is left out. */
static int read_list(im_zk_nodes *z, zhandle_t *zh)
{
    struct String_vector kids = { 0 };
    int rc = zoo_wget_children(zh, z->root, on_children, z, &kids);
    if (rc == ZNONODE && (rc = ensure_root(zh, z->root)) == ZOK) /* no node yet: an empty list */
        rc = zoo_wget_children(zh, z->root, on_children, z, &kids);
    if (rc != ZOK)
        return rc;
    size_t cap = kids.count < MAX_NODES ? (size_t)kids.count : MAX_NODES;
    im_cluster_node *nodes = calloc(cap ? cap : 1, sizeof *nodes);
    size_t n = 0;
    for (size_t i = 0; nodes && i < cap; i++) {
        char path[512], data[ZNODE_DATA_MAX];
        int len = sizeof data;
        snprintf(path, sizeof path, "%s/%s", z->root, kids.data[i]);
        /* A watch on the data too: a node's load changes its data. */
        rc = zoo_wget(zh, path, on_children, z, data, &len, NULL);
        if (rc == ZNONODE)
            continue;
        if (rc != ZOK)
            break;
        if (len > 0 && im_zk_node_parse(data, (size_t)len, &nodes[n]))
            n++;
    }
    deallocate_String_vector(&kids);
    if (!nodes)
        return ZSYSTEMERROR;
    if (rc == ZOK || rc == ZNONODE) {
        qsort(nodes, n, sizeof *nodes, compare_nodes);
        if (z->watch)
            z->watch(z->watch_arg, nodes, n);
        rc = ZOK;
    }
    free(nodes);
    return rc;
}

static int do_register(im_zk_nodes *z, zhandle_t *zh, const im_cluster_node *self)
{
    char data[ZNODE_DATA_MAX], created[512];
    size_t len = im_zk_node_format(self, data, sizeof data);
    int rc = ensure_root(zh, z->root);
    if (rc == ZOK)
        rc = zoo_create(zh, z->prefix, data, (int)len, &ZOO_OPEN_ACL_UNSAFE,
                        ZOO_EPHEMERAL_SEQUENTIAL, created, sizeof created);
    if (rc == ZOK) {
        pthread_mutex_lock(&z->lock);
        snprintf(z->znode, sizeof z->znode, "%s", created);
        z->registered = true;
        pthread_mutex_unlock(&z->lock);
        IM_INFO("cluster: node %s registered in ZooKeeper as %s", self->id, created);
    }
    return rc;
}

static void close_handle(im_zk_nodes *z)
{
    pthread_mutex_lock(&z->lock);
    zhandle_t *zh = z->zh;
    z->zh = NULL;
    z->state = ZK_DOWN;
    z->registered = false;
    z->znode[0] = '\0';
    pthread_mutex_unlock(&z->lock);
    if (zh)
        zookeeper_close(zh);
}

static void *zk_main(void *arg)
{
    im_zk_nodes *z = arg;
    im_log_set_thread_name("zk");
    enum zk_state said = ZK_DOWN;
    uint64_t next_load = 0, retry_at = 0;
    pthread_mutex_lock(&z->lock);
    while (!z->stopping) {
        if (!z->zh) {
            pthread_mutex_unlock(&z->lock);
            zhandle_t *zh = zookeeper_init(z->hosts, on_session, (int)z->session_timeout_ms,
                                           NULL, z, 0);
            pthread_mutex_lock(&z->lock);
            if (!zh) {
                IM_ERROR("cluster: cannot start the ZooKeeper client for %s: %s", z->hosts,
                         strerror(errno));
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&z->wake, &z->lock, &ts);
                continue;
            }
            z->zh = zh;
            z->state = ZK_CONNECTING;
            z->expired = false;
            /* The watcher ignores events of a handle not yet stored: read
             * what it may have missed. */
            if (zoo_state(zh) == ZOO_CONNECTED_STATE) {
                z->state = ZK_CONNECTED;
                z->children_dirty = z->watch != NULL;
            }
        }
        if (z->expired) {
            pthread_mutex_unlock(&z->lock);
            IM_WARN("cluster: the ZooKeeper session expired: opening a new one");
            close_handle(z);
            pthread_mutex_lock(&z->lock);
            said = ZK_DOWN;
            continue;
        }
        if (z->state != said) {
            if (z->state == ZK_CONNECTED)
                IM_INFO("cluster: connected to ZooKeeper at %s", z->hosts);
            else if (said == ZK_CONNECTED)
                IM_WARN("cluster: lost ZooKeeper at %s; reconnecting", z->hosts);
            said = z->state;
        }
        uint64_t now = now_ms();
        if (z->state == ZK_CONNECTED && now >= retry_at) {
            zhandle_t *zh = z->zh;
            int rc = ZOK;
            if (z->want_register && !z->registered) {
                im_cluster_node self = z->self;
                self.load = z->load;
                z->load_dirty = false;
                pthread_mutex_unlock(&z->lock);
                rc = do_register(z, zh, &self);
                pthread_mutex_lock(&z->lock);
            } else if (z->children_dirty) {
                z->children_dirty = false;
                pthread_mutex_unlock(&z->lock);
                rc = read_list(z, zh);
                pthread_mutex_lock(&z->lock);
                if (rc != ZOK)
                    z->children_dirty = true;
            } else if (z->registered && z->load_dirty && now >= next_load) {
                char data[ZNODE_DATA_MAX], path[512];
                im_cluster_node self = z->self;
                self.load = z->load;
                z->load_dirty = false;
                snprintf(path, sizeof path, "%s", z->znode);
                size_t len = im_zk_node_format(&self, data, sizeof data);
                pthread_mutex_unlock(&z->lock);
                rc = zoo_set(zh, path, data, (int)len, -1);
                pthread_mutex_lock(&z->lock);
                next_load = now + LOAD_INTERVAL_MS;
                if (rc != ZOK)
                    z->load_dirty = true;
            } else {
                goto wait;
            }
            if (rc != ZOK) {
                /* Lost the connection mid-way (the session event follows),
                 * or ZooKeeper refused: try again shortly. */
                IM_DEBUG("cluster: ZooKeeper call failed: %s", zerror(rc));
                retry_at = now + 200;
            }
            continue;
        }
    wait:;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ms = z->load_dirty ? (next_load > now ? next_load - now : 1) : 1000;
        if (retry_at > now && retry_at - now < ms)
            ms = retry_at - now;
        ts.tv_sec += (time_t)(ms / 1000);
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&z->wake, &z->lock, &ts);
    }
    pthread_mutex_unlock(&z->lock);
    close_handle(z);
    return NULL;
}

/* ---- API ---- */

int im_zk_nodes_new(const im_zk_config *cfg, im_zk_nodes_fn watch, void *arg,
                    im_zk_nodes **out, im_error *err)
{
    *out = NULL;
    if (!cfg->hosts || !*cfg->hosts)
        return im_error_set(err, IM_EINVAL, "cluster: no ZooKeeper hosts");
    size_t rl = cfg->root ? strlen(cfg->root) : 0;
    if (rl < 2 || cfg->root[0] != '/' || cfg->root[rl - 1] == '/' || rl > 400)
        return im_error_set(err, IM_EINVAL, "cluster: the ZooKeeper root must be an absolute "
                                            "path like /imcore/nodes");
    im_zk_nodes *z = calloc(1, sizeof *z);
    if (!z)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    z->hosts = strdup(cfg->hosts);
    z->root = strdup(cfg->root);
    z->prefix = malloc(rl + 4);
    if (!z->hosts || !z->root || !z->prefix) {
        free(z->hosts); free(z->root); free(z->prefix); free(z);
        return im_error_set(err, IM_ENOMEM, "out of memory");
    }
    snprintf(z->prefix, rl + 4, "%s/n-", cfg->root);
    z->session_timeout_ms = cfg->session_timeout_ms ? cfg->session_timeout_ms : 10000;
    z->watch = watch;
    z->watch_arg = arg;
    z->children_dirty = watch != NULL;
    pthread_mutex_init(&z->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&z->wake, &ca);
    pthread_condattr_destroy(&ca);
    /* The client's own log is multi-line and in its own format: off (0),
     * the changes of state are logged here instead. */
    zoo_set_debug_level((ZooLogLevel)0);
    if (pthread_create(&z->thread, NULL, zk_main, z) != 0) {
        pthread_cond_destroy(&z->wake);
        pthread_mutex_destroy(&z->lock);
        free(z->hosts); free(z->root); free(z->prefix); free(z);
        return im_error_set(err, IM_EIO, "cluster: cannot start the zk thread");
    }
    *out = z;
    return IM_OK;
}

int im_zk_nodes_register(im_zk_nodes *z, const im_cluster_node *self, im_error *err)
{
    if (!good_id(self->id))
        return im_error_set(err, IM_EINVAL, "cluster: a node id is 1..%d of [A-Za-z0-9._-]",
                            IM_NODE_ID_MAX);
    if (!good_addr(self->client, false) || !good_addr(self->internal, true))
        return im_error_set(err, IM_EINVAL, "cluster: a node address is host:port");
    pthread_mutex_lock(&z->lock);
    z->self = *self;
    z->load = self->load;
    z->want_register = true;
    pthread_cond_broadcast(&z->wake);
    pthread_mutex_unlock(&z->lock);
    return IM_OK;
}

void im_zk_nodes_set_load(im_zk_nodes *z, uint32_t load)
{
    pthread_mutex_lock(&z->lock);
    if (z->load != load) {
        z->load = load;
        z->load_dirty = true;
    }
    pthread_mutex_unlock(&z->lock);
}

bool im_zk_nodes_registered(im_zk_nodes *z)
{
    pthread_mutex_lock(&z->lock);
    bool r = z->registered;
    pthread_mutex_unlock(&z->lock);
    return r;
}

void im_zk_nodes_znode(im_zk_nodes *z, char *out, size_t size)
{
    pthread_mutex_lock(&z->lock);
    snprintf(out, size, "%s", z->registered ? z->znode : "");
    pthread_mutex_unlock(&z->lock);
}

int im_zk_nodes_expire_session(im_zk_nodes *z, im_error *err)
{
    pthread_mutex_lock(&z->lock);
    if (!z->zh || z->state != ZK_CONNECTED) {
        pthread_mutex_unlock(&z->lock);
        return im_error_set(err, IM_ESTATE, "not connected to ZooKeeper");
    }
    clientid_t id = *zoo_client_id(z->zh);
    z->twin_connected = false;
    pthread_mutex_unlock(&z->lock);
    /* A second handle on the same session, closed once connected: the
     * close ends the session, and the first handle hears it has expired. */
    zhandle_t *twin = zookeeper_init(z->hosts, on_twin, (int)z->session_timeout_ms, &id, z, 0);
    if (!twin)
        return im_error_set(err, IM_EIO, "cannot open a second ZooKeeper handle");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&z->lock);
    while (!z->twin_connected)
        if (pthread_cond_timedwait(&z->wake, &z->lock, &ts) == ETIMEDOUT)
            break;
    bool ok = z->twin_connected;
    pthread_mutex_unlock(&z->lock);
    zookeeper_close(twin);
    return ok ? IM_OK : im_error_set(err, IM_EIO, "the second handle did not connect");
}

void im_zk_nodes_destroy(im_zk_nodes *z)
{
    if (!z)
        return;
    pthread_mutex_lock(&z->lock);
    z->stopping = true;
    pthread_cond_broadcast(&z->wake);
    pthread_mutex_unlock(&z->lock);
    pthread_join(z->thread, NULL);
    pthread_cond_destroy(&z->wake);
    pthread_mutex_destroy(&z->lock);
    free(z->hosts);
    free(z->root);
    free(z->prefix);
    free(z);
}
