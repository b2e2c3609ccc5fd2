/* interfaces/cli/cli_inbox.h: what the client has received, for acks and
 * duplicates.
 *
 * The server sends again, at the next login, every message whose DeliveryAck
 * it did not get. The inbox keeps, per conversation, the highest seq received
 * in the current session (what to ack), and a ring of the last deliveries
 * seen, so a message redelivered because its ack was lost with the old
 * connection is acked again but printed only once. A delivery without a
 * conversation comes from a server that predates acks: it is neither acked
 * nor remembered. No I/O: the client sends what flush hands it. */
#ifndef CLI_INBOX_H
#define CLI_INBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "imcore.pb-c.h"

typedef struct cli_inbox cli_inbox;

/* NULL when out of memory. Free with cli_inbox_free (NULL is fine). */
cli_inbox *cli_inbox_new(void);
void cli_inbox_free(cli_inbox *in);

/* Records d for the next ack; returns false if d was already seen (do not
 * show it again). Out of memory only costs the ack: it returns true. */
bool cli_inbox_accept(cli_inbox *in, const Imcore__Delivery *d);

/* Hands each conversation received into since the last flush, with its
 * highest seq, to send(); conversation is borrowed for the call. */
void cli_inbox_flush(cli_inbox *in,
                     void (*send)(void *arg, const char *conversation, uint64_t seq), void *arg);

/* A new session starts: nothing is owed to it yet. The ring of seen
 * deliveries is kept, since redeliveries come precisely after a new login. */
void cli_inbox_new_session(cli_inbox *in);

#endif
