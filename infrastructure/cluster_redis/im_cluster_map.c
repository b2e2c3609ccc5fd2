/* infrastructure/cluster_redis/im_cluster_map.c: see the header. A string
 * map from user to a route of its own allocation, and a small table of the
 * node ids seen, indexed so that a route (and an endpoint) names its node
 * by a number. */
#include "im_cluster_map.h"

#include <stdlib.h>
#include <string.h>

#include "im_strmap.h"
#include "imcore/errors.h"

typedef struct node_slot {
    char id[IM_NODE_ID_MAX + 1];
    uint64_t live_epoch;          /* 0: not in the live list */
    bool seen_live;               /* it has been in the live list */
    uint64_t ev_epoch, ev_ver;    /* the newest change applied from this node */
} node_slot;

struct im_cluster_map {
    im_strmap *users;             /* user -> im_cluster_route (the map's) */
    node_slot *nodes;
    uint32_t nnodes;
    uint64_t self_epoch;
    uint64_t self_ver;
    size_t local;                 /* routes of IM_CLUSTER_SELF */
};

int im_cluster_map_new(const char *self_id, uint64_t self_epoch, im_cluster_map **out)
{
    *out = NULL;
    im_cluster_map *m = calloc(1, sizeof *m);
    if (!m)
        return IM_ENOMEM;
    m->users = im_strmap_new();
    m->nodes = calloc(IM_CLUSTER_MAX_NODES, sizeof *m->nodes);
    if (!m->users || !m->nodes) {
        im_strmap_free(m->users);
        free(m->nodes);
        free(m);
        return IM_ENOMEM;
    }
    strncpy(m->nodes[0].id, self_id, IM_NODE_ID_MAX);
    m->nodes[0].live_epoch = self_epoch;
    m->nnodes = 1;
    m->self_epoch = self_epoch;
    *out = m;
    return IM_OK;
}

static bool free_route(void *arg, const char *key, void *value)
{
    (void)arg, (void)key;
    free(value);
    return true;
}

void im_cluster_map_free(im_cluster_map *m)
{
    if (!m)
        return;
    im_strmap_each(m->users, free_route, NULL);
    im_strmap_free(m->users);
    free(m->nodes);
    free(m);
}

uint32_t im_cluster_map_node(im_cluster_map *m, const char *id)
{
    if (!id || !id[0] || strlen(id) > IM_NODE_ID_MAX)
        return IM_CLUSTER_NO_NODE;
    for (uint32_t i = 0; i < m->nnodes; i++)
        if (strcmp(m->nodes[i].id, id) == 0)
            return i;
    if (m->nnodes == IM_CLUSTER_MAX_NODES)
        return IM_CLUSTER_NO_NODE;
    node_slot *s = &m->nodes[m->nnodes];
    memset(s, 0, sizeof *s);
    strcpy(s->id, id);
    return m->nnodes++;
}

const char *im_cluster_map_node_id(const im_cluster_map *m, uint32_t node)
{
    return node < m->nnodes ? m->nodes[node].id : NULL;
}

uint64_t im_cluster_map_live_epoch(const im_cluster_map *m, uint32_t node)
{
    return node < m->nnodes ? m->nodes[node].live_epoch : 0;
}

uint64_t im_cluster_map_self_epoch(const im_cluster_map *m)
{
    return m->self_epoch;
}

static bool trusted(const im_cluster_map *m, const im_cluster_route *r)
{
    return r->node < m->nnodes && m->nodes[r->node].live_epoch != 0 &&
           m->nodes[r->node].live_epoch == r->epoch;
}

/* ---- dropping what is no longer trusted ---- */

typedef struct doomed {
    const im_cluster_map *m;
    char **keys;
    size_t n, cap;
    bool failed;
} doomed;

static bool collect_untrusted(void *arg, const char *key, void *value)
{
    doomed *d = arg;
    const im_cluster_route *r = value;
    if (r->node == IM_CLUSTER_SELF || trusted(d->m, r))
        return true;
    /* A node not in the live list keeps its routes only if it has never
     * been seen live (it has just started, and its znode is not seen yet):
     * a node that left loses them. A live node keeps those of a newer
     * epoch than the list's (likewise), and loses those of an older one. */
    const node_slot *s = &d->m->nodes[r->node];
    if (s->live_epoch == 0 ? !s->seen_live : r->epoch > s->live_epoch)
        return true;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        char **k = realloc(d->keys, cap * sizeof *k);
        if (!k) {
            d->failed = true;
            return false;
        }
        d->keys = k;
        d->cap = cap;
    }
    if (!(d->keys[d->n] = strdup(key))) {
        d->failed = true;
        return false;
    }
    d->n++;
    return true;
}

size_t im_cluster_map_set_live(im_cluster_map *m, const im_cluster_node *nodes, size_t n,
                               uint32_t *fresh, size_t cap, size_t *nfresh)
{
    *nfresh = 0;
    uint64_t *now = calloc(IM_CLUSTER_MAX_NODES, sizeof *now);
    if (!now)
        return 0; /* the old list stays: the next change tries again */
    for (size_t i = 0; i < n; i++) {
        uint32_t k = im_cluster_map_node(m, nodes[i].id);
        if (k == IM_CLUSTER_NO_NODE || k == IM_CLUSTER_SELF)
            continue;
        if (nodes[i].epoch > now[k])
            now[k] = nodes[i].epoch;
    }
    bool changed = false;
    for (uint32_t k = 1; k < m->nnodes; k++) {
        if (m->nodes[k].live_epoch == now[k])
            continue;
        changed = true;
        m->nodes[k].live_epoch = now[k];
        if (now[k])
            m->nodes[k].seen_live = true;
        if (now[k] && *nfresh < cap)
            fresh[(*nfresh)++] = k;
    }
    free(now);
    if (!changed)
        return 0;
    doomed d = { .m = m };
    im_strmap_each(m->users, collect_untrusted, &d);
    size_t dropped = 0;
    for (size_t i = 0; i < d.n; i++) {
        im_cluster_route *r = im_strmap_remove(m->users, d.keys[i]);
        free(r);
        free(d.keys[i]);
        dropped++;
    }
    free(d.keys);
    return dropped;
}

bool im_cluster_map_lookup(const im_cluster_map *m, const char *user, im_cluster_route *out)
{
    const im_cluster_route *r = im_strmap_get(m->users, user);
    if (!r || !trusted(m, r))
        return false;
    if (out)
        *out = *r;
    return true;
}

int im_cluster_map_put(im_cluster_map *m, const char *user, const im_cluster_route *r,
                       im_cluster_route *old)
{
    im_cluster_route *cur = im_strmap_get(m->users, user);
    if (cur) {
        if (old)
            *old = *cur;
        if (cur->node == IM_CLUSTER_SELF)
            m->local--;
        *cur = *r;
        if (r->node == IM_CLUSTER_SELF)
            m->local++;
        return 1;
    }
    im_cluster_route *mine = malloc(sizeof *mine);
    if (!mine)
        return IM_ENOMEM;
    *mine = *r;
    void *prev = NULL;
    if (im_strmap_put(m->users, user, mine, &prev) != IM_OK) {
        free(mine);
        return IM_ENOMEM;
    }
    if (r->node == IM_CLUSTER_SELF)
        m->local++;
    return 0;
}

bool im_cluster_map_remove(im_cluster_map *m, const char *user, uint32_t node, uint64_t epoch,
                           uint64_t conn)
{
    im_cluster_route *cur = im_strmap_get(m->users, user);
    if (!cur || cur->node != node || cur->epoch != epoch || (conn && cur->conn != conn))
        return false;
    im_strmap_remove(m->users, user);
    if (cur->node == IM_CLUSTER_SELF)
        m->local--;
    free(cur);
    return true;
}

typedef struct walk {
    const im_cluster_map *m;
    im_cluster_map_fn fn;
    void *arg;
    size_t n;
} walk;

static bool visit(void *arg, const char *key, void *value)
{
    walk *w = arg;
    const im_cluster_route *r = value;
    if (!trusted(w->m, r))
        return true;
    w->n++;
    return w->fn ? w->fn(w->arg, key, r) : true;
}

size_t im_cluster_map_each(const im_cluster_map *m, im_cluster_map_fn fn, void *arg)
{
    walk w = { m, fn, arg, 0 };
    im_strmap_each(m->users, visit, &w);
    return w.n;
}

size_t im_cluster_map_local_count(const im_cluster_map *m)
{
    return m->local;
}

size_t im_cluster_map_count(const im_cluster_map *m)
{
    return im_cluster_map_each(m, NULL, NULL);
}

uint64_t im_cluster_map_next_ver(im_cluster_map *m)
{
    return ++m->self_ver;
}

bool im_cluster_map_event_fresh(im_cluster_map *m, uint32_t node, uint64_t epoch, uint64_t ver)
{
    if (node == IM_CLUSTER_SELF || node >= m->nnodes)
        return false;
    node_slot *s = &m->nodes[node];
    if (epoch < s->ev_epoch || (epoch == s->ev_epoch && ver <= s->ev_ver))
        return false;
    s->ev_epoch = epoch;
    s->ev_ver = ver;
    return true;
}

typedef struct of_node {
    uint32_t node;
    char **keys;
    size_t n, cap;
    bool failed;
} of_node;

static bool collect_node(void *arg, const char *key, void *value)
{
    of_node *o = arg;
    const im_cluster_route *r = value;
    if (r->node != o->node)
        return true;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        char **k = realloc(o->keys, cap * sizeof *k);
        if (!k) {
            o->failed = true;
            return false;
        }
        o->keys = k;
        o->cap = cap;
    }
    if (!(o->keys[o->n] = strdup(key))) {
        o->failed = true;
        return false;
    }
    o->n++;
    return true;
}

bool im_cluster_map_snapshot_begin(im_cluster_map *m, uint32_t node, uint64_t epoch,
                                   uint64_t ver)
{
    if (node == IM_CLUSTER_SELF || node >= m->nnodes)
        return false;
    node_slot *s = &m->nodes[node];
    if (epoch < s->ev_epoch || (epoch == s->ev_epoch && ver < s->ev_ver))
        return false;
    of_node o = { .node = node };
    im_strmap_each(m->users, collect_node, &o);
    if (o.failed) {
        for (size_t i = 0; i < o.n; i++)
            free(o.keys[i]);
        free(o.keys);
        return false;
    }
    for (size_t i = 0; i < o.n; i++) {
        free(im_strmap_remove(m->users, o.keys[i]));
        free(o.keys[i]);
    }
    free(o.keys);
    s->ev_epoch = epoch;
    s->ev_ver = ver;
    return true;
}
