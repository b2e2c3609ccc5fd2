/* domain/handover.h: the unacked messages a login hands over, one page at a
 * time, and the rule for when the next page may go.
 *
 * A user back after a long absence may have more unacked messages than one
 * connection can take at once (its output would pass the slow-consumer
 * limit and close it). So they go out a page at a time: the page records,
 * per conversation, the last seq sent, and the next page is read only when
 * the client has acked every conversation of this one up to that seq. The
 * store's cursors have then moved past everything sent, so reading "what is
 * unacked" again yields exactly what follows: nothing twice, nothing
 * skipped, without any position kept outside the store.
 *
 * Conversations are kept sorted (pages arrive in conversation order, so
 * they append; an ack is a binary search). Not thread-safe: one owner. */
#ifndef IM_DOMAIN_HANDOVER_H
#define IM_DOMAIN_HANDOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "imcore/errors.h"

typedef struct im_handover_entry {
    char *conversation;           /* owned */
    uint64_t sent;                /* the last seq sent in this page */
    uint64_t acked;               /* the client's highest ack seen during the page */
} im_handover_entry;

/* Embedded by value; zeroed (or im_handover_clear'ed) is an empty page. */
typedef struct im_handover_page {
    im_handover_entry *entries;   /* owned, sorted by conversation (strcmp) */
    size_t n, cap;
    size_t outstanding;           /* entries with acked < sent */
    size_t messages;              /* sent in this page */
    size_t bytes;                 /* what the messages of this page weigh (the caller's measure) */
} im_handover_page;

/* A message of conversation (copied) with seq, weighing bytes, went out.
 * Errors: IM_EINVAL (no conversation or seq 0), IM_ENOMEM (the page is
 * unchanged). */
int im_handover_sent(im_handover_page *p, const char *conversation, uint64_t seq,
                     size_t bytes, im_error *err);

/* The client acked conversation up to seq (cumulative). Returns true if the
 * page now has nothing outstanding. Conversations not in the page are
 * passed over. */
bool im_handover_acked(im_handover_page *p, const char *conversation, uint64_t seq);

/* True when every message of the page has been acked (an empty page too). */
bool im_handover_done(const im_handover_page *p);

/* Empties the page for the next one, keeping its array. */
void im_handover_reset(im_handover_page *p);

/* Frees what the page holds; it is then empty. */
void im_handover_clear(im_handover_page *p);

#endif
