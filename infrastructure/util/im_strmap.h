/* infrastructure/util/im_strmap.h: a hash map from strings to pointers.
 *
 * Chained buckets, grown by doubling. The map copies keys; values are the
 * caller's (the map never frees them). Not thread-safe: callers lock. */
#ifndef IM_STRMAP_H
#define IM_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct im_strmap im_strmap;

/* Returns NULL when out of memory. */
im_strmap *im_strmap_new(void);
void im_strmap_free(im_strmap *m); /* NULL is fine; values are not freed */

uint64_t im_strmap_hash(const char *key); /* FNV-1a, also for sharding */

/* The value for key, or NULL. */
void *im_strmap_get(const im_strmap *m, const char *key);
/* Sets key to value (value may not be NULL). *old gets the value it replaced
 * or NULL. Returns 0 or IM_ENOMEM (nothing changed). */
int im_strmap_put(im_strmap *m, const char *key, void *value, void **old);
/* Removes key; returns its value or NULL. */
void *im_strmap_remove(im_strmap *m, const char *key);
size_t im_strmap_count(const im_strmap *m);

/* Calls fn for every entry, in no set order, until it returns false. The map
 * must not change during the walk. key is borrowed for the call. */
typedef bool (*im_strmap_fn)(void *arg, const char *key, void *value);
void im_strmap_each(const im_strmap *m, im_strmap_fn fn, void *arg);

#endif
