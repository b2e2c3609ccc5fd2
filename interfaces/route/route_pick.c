/* interfaces/route/route_pick.c: see the header. */
#include "route_pick.h"

#include <string.h>

#include "im_config.h"

/* FNV-1a over the bytes, then a 64-bit finaliser (MurmurHash3's fmix64),
 * so that ids differing in one character rank nodes independently. */
static uint64_t hash_bytes(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t route_score(const char *user, const char *node_id)
{
    uint64_t h = hash_bytes(0xcbf29ce484222325ULL, user);
    h ^= 0xff; /* a separator no id contains */
    h *= 0x100000001b3ULL;
    h = hash_bytes(h, node_id);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t load_of(const im_cluster_node *nodes, const uint32_t *extra, size_t i)
{
    return (uint64_t)nodes[i].load + (extra ? extra[i] : 0);
}

long route_pick(const im_cluster_node *nodes, const uint32_t *extra, size_t n, const char *user,
                int policy, unsigned load_factor_percent)
{
    if (n == 0)
        return -1;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += load_of(nodes, extra, i);
    if (policy == IM_ROUTE_LEAST_LOADED) {
        long best = -1;
        uint64_t best_load = 0, best_score = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t l = load_of(nodes, extra, i), sc = route_score(user, nodes[i].id);
            if (best < 0 || l < best_load || (l == best_load && sc > best_score)) {
                best = (long)i;
                best_load = l;
                best_score = sc;
            }
        }
        return best;
    }
    /* The bound counts the newcomer: ceil(factor * (total + 1) / n), at
     * least 1, so some node is always under it. */
    uint64_t cap = ((total + 1) * load_factor_percent + (uint64_t)n * 100 - 1) / ((uint64_t)n * 100);
    if (cap < 1)
        cap = 1;
    long best = -1, fallback = -1;
    uint64_t best_score = 0, fallback_score = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t sc = route_score(user, nodes[i].id);
        if (fallback < 0 || sc > fallback_score) {
            fallback = (long)i;
            fallback_score = sc;
        }
        if (load_of(nodes, extra, i) < cap && (best < 0 || sc > best_score)) {
            best = (long)i;
            best_score = sc;
        }
    }
    return best >= 0 ? best : fallback;
}
