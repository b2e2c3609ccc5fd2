/* interfaces/cli/cli_inbox.c: acks owed per conversation, and a ring of the
 * deliveries seen lately.
 *
 * An interactive client talks in few conversations, so a list searched
 * linearly is enough for the acks. The ring holds 64-bit hashes of
 * (conversation, seq, from, client_msg_id): seq alone would not do, because
 * a server that keeps messages only in memory numbers them from 1 again
 * after a restart, and those new messages must be shown. */
#include "cli_inbox.h"

#include <stdlib.h>
#include <string.h>

#define SEEN_RING 4096

typedef struct owed {
    struct owed *next;
    uint64_t seq;
    bool dirty;
    char conversation[];
} owed;

struct cli_inbox {
    owed *owed;
    uint64_t seen[SEEN_RING];
    size_t seen_next;
    size_t seen_count;
};

cli_inbox *cli_inbox_new(void)
{
    return calloc(1, sizeof(cli_inbox));
}

void cli_inbox_free(cli_inbox *in)
{
    if (!in)
        return;
    owed *o;
    while ((o = in->owed) != NULL) {
        in->owed = o->next;
        free(o);
    }
    free(in);
}

/* FNV-1a over the fields, each followed by a separator byte. */
static uint64_t hash_add(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ULL;
    return (h ^ 0xff) * 0x100000001b3ULL;
}

static uint64_t delivery_key(const Imcore__Delivery *d)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = hash_add(h, d->conversation, strlen(d->conversation));
    h = hash_add(h, &d->seq, sizeof d->seq);
    h = hash_add(h, d->from, strlen(d->from));
    return hash_add(h, d->client_msg_id, strlen(d->client_msg_id));
}

static bool seen_before(cli_inbox *in, uint64_t key)
{
    for (size_t i = 0; i < in->seen_count; i++)
        if (in->seen[i] == key)
            return true;
    in->seen[in->seen_next] = key;
    in->seen_next = (in->seen_next + 1) % SEEN_RING;
    if (in->seen_count < SEEN_RING)
        in->seen_count++;
    return false;
}

bool cli_inbox_accept(cli_inbox *in, const Imcore__Delivery *d)
{
    if (!d->conversation || !d->conversation[0] || d->seq == 0)
        return true;
    owed *o = in->owed;
    while (o && strcmp(o->conversation, d->conversation) != 0)
        o = o->next;
    if (!o) {
        size_t n = strlen(d->conversation) + 1;
        o = malloc(sizeof *o + n);
        if (o) {
            memcpy(o->conversation, d->conversation, n);
            o->seq = 0;
            o->dirty = false;
            o->next = in->owed;
            in->owed = o;
        }
    }
    if (o && d->seq > o->seq) {
        o->seq = d->seq;
        o->dirty = true;
    }
    return !seen_before(in, delivery_key(d));
}

void cli_inbox_flush(cli_inbox *in,
                     void (*send)(void *arg, const char *conversation, uint64_t seq), void *arg)
{
    for (owed *o = in->owed; o; o = o->next) {
        if (o->dirty) {
            o->dirty = false;
            send(arg, o->conversation, o->seq);
        }
    }
}

void cli_inbox_new_session(cli_inbox *in)
{
    owed *o;
    while ((o = in->owed) != NULL) {
        in->owed = o->next;
        free(o);
    }
}
