/* tests/fakes/deferred_store.h: a store whose requests wait in a FIFO until
 * the test runs them, the way a durable store's thread completes them later.
 * Appends are numbered by a wrapped store when they run; pending requests
 * return the messages the test queued with deferred_store_add_pending for
 * that user and not acked since, in the order queued (add them in
 * conversation then seq order, as a real store returns them), at most the
 * request's limit. Acks apply at once.
 * Key-value puts reach the wrapped store when they run, and kv_each reads
 * it. Single-threaded. */
#ifndef IM_DEFERRED_STORE_H
#define IM_DEFERRED_STORE_H

#include "application/ports/im_store.h"

typedef struct deferred_store deferred_store;

/* inner: numbers appends and keeps key-value puts when they run (borrowed). */
deferred_store *deferred_store_new(im_store *inner);
im_store *deferred_store_port(deferred_store *ds);
/* A private message to user `to` that pending requests return until `to`
 * acks it (copied). */
void deferred_store_add_pending(deferred_store *ds, const char *from, const char *to,
                                const char *text, uint64_t seq);
/* Runs every queued request, in order; returns how many ran. */
int deferred_store_run(deferred_store *ds);
size_t deferred_store_queued(const deferred_store *ds);
/* The byte budget of the last pending_read (SIZE_MAX: the last read was
 * pending, without one). history_read hands out, when it runs, the
 * messages queued with deferred_store_add_pending of its conversation
 * (acked or not) before before_seq, newest first up to its limit and
 * budget as the port says, oldest first. */
size_t deferred_store_last_budget(const deferred_store *ds);
void deferred_store_free(deferred_store *ds);

#endif
