/* infrastructure/util/im_strmap.c: chained string hash map. The key is stored
 * in the same allocation as its entry, so one malloc per entry. */
#include "im_strmap.h"

#include <stdlib.h>
#include <string.h>

#include "imcore/errors.h"

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    void *value;
    char key[];
} entry;

struct im_strmap {
    entry **buckets;
    size_t mask;   /* bucket count - 1; the count is a power of two */
    size_t count;
};

uint64_t im_strmap_hash(const char *key)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return h;
}

im_strmap *im_strmap_new(void)
{
    im_strmap *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->mask = 15;
    m->buckets = calloc(m->mask + 1, sizeof *m->buckets);
    if (!m->buckets) {
        free(m);
        return NULL;
    }
    return m;
}

void im_strmap_free(im_strmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i <= m->mask; i++) {
        entry *e = m->buckets[i];
        while (e) {
            entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    free(m);
}

static entry **find_slot(const im_strmap *m, const char *key, uint64_t h)
{
    entry **slot = &m->buckets[h & m->mask];
    while (*slot && ((*slot)->hash != h || strcmp((*slot)->key, key) != 0))
        slot = &(*slot)->next;
    return slot;
}

void *im_strmap_get(const im_strmap *m, const char *key)
{
    entry *e = *find_slot(m, key, im_strmap_hash(key));
    return e ? e->value : NULL;
}

/* Doubles the table when it averages more than one entry per bucket. A failed
 * grow is not an error: the map only gets slower. */
static void maybe_grow(im_strmap *m)
{
    if (m->count <= m->mask)
        return;
    size_t nmask = m->mask * 2 + 1;
    entry **nb = calloc(nmask + 1, sizeof *nb);
    if (!nb)
        return;
    for (size_t i = 0; i <= m->mask; i++) {
        entry *e = m->buckets[i];
        while (e) {
            entry *next = e->next;
            e->next = nb[e->hash & nmask];
            nb[e->hash & nmask] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = nb;
    m->mask = nmask;
}

int im_strmap_put(im_strmap *m, const char *key, void *value, void **old)
{
    uint64_t h = im_strmap_hash(key);
    entry **slot = find_slot(m, key, h);
    if (*slot) {
        if (old)
            *old = (*slot)->value;
        (*slot)->value = value;
        return IM_OK;
    }
    size_t len = strlen(key);
    entry *e = malloc(sizeof *e + len + 1);
    if (!e)
        return IM_ENOMEM;
    memcpy(e->key, key, len + 1);
    e->hash = h;
    e->value = value;
    e->next = NULL;
    *slot = e;
    m->count++;
    if (old)
        *old = NULL;
    maybe_grow(m);
    return IM_OK;
}

void *im_strmap_remove(im_strmap *m, const char *key)
{
    entry **slot = find_slot(m, key, im_strmap_hash(key));
    entry *e = *slot;
    if (!e)
        return NULL;
    *slot = e->next;
    void *v = e->value;
    free(e);
    m->count--;
    return v;
}

size_t im_strmap_count(const im_strmap *m)
{
    return m->count;
}

void im_strmap_each(const im_strmap *m, im_strmap_fn fn, void *arg)
{
    for (size_t i = 0; i <= m->mask; i++)
        for (entry *e = m->buckets[i]; e; e = e->next)
            if (!fn(arg, e->key, e->value))
                return;
}
