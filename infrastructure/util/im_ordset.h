/* infrastructure/util/im_ordset.h: entries kept in the order of their string
 * keys (bytewise, as strcmp), in an AVL tree.
 *
 * Insert, remove and find cost O(log n); a walk from any key costs O(log n)
 * to start and then O(1) amortized per entry, so a page of a listing costs
 * what the page holds, not what the set holds. Keys are borrowed: the caller
 * keeps each key's string alive and unchanged while its entry is in the set
 * (a group's id, which the group holds). Values are the caller's; the set
 * never frees them. Not thread-safe: callers lock. */
#ifndef IM_ORDSET_H
#define IM_ORDSET_H

#include <stdbool.h>
#include <stddef.h>

typedef struct im_ordset im_ordset;
typedef struct im_ordset_node im_ordset_node;

/* Returns NULL when out of memory. */
im_ordset *im_ordset_new(void);
void im_ordset_free(im_ordset *s); /* NULL is fine; values are not freed */

/* Adds key (borrowed) with value (borrowed, never written through). Returns 0, IM_EEXIST (key is in the set:
 * nothing changed) or IM_ENOMEM (nothing changed). */
int im_ordset_insert(im_ordset *s, const char *key, const void *value);
/* Removes key; returns its value, or NULL if it was not in the set. */
const void *im_ordset_remove(im_ordset *s, const char *key);
/* The value of key, or NULL. */
const void *im_ordset_get(const im_ordset *s, const char *key);
size_t im_ordset_count(const im_ordset *s);

/* An AVL tree of 2^32 entries is at most 46 levels deep. */
#define IM_ORDSET_MAX_DEPTH 64

/* A walk in key order. The set must not change while a walk is under way. */
typedef struct im_ordset_iter {
    const im_ordset_node *stack[IM_ORDSET_MAX_DEPTH];
    unsigned depth;
    size_t steps;              /* nodes touched so far: the walk's cost */
} im_ordset_iter;

/* Starts a walk at the first entry whose key sorts after `after` (NULL or
 * "": at the first entry). */
void im_ordset_iter_after(const im_ordset *s, const char *after, im_ordset_iter *it);
/* The walk's next entry: sets *key and *value and returns true, or returns
 * false at the end. Either pointer may be NULL. */
bool im_ordset_next(im_ordset_iter *it, const char **key, const void **value);

#endif
