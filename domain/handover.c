/* domain/handover.c: see handover.h. */
#include "handover.h"

#include <stdlib.h>
#include <string.h>

/* The index of conversation, or where it would go (*found false). */
static size_t find(const im_handover_page *p, const char *conversation, bool *found)
{
    size_t lo = 0, hi = p->n;
    /* Pages arrive in conversation order: the last entry is the usual answer. */
    if (hi > 0) {
        int c = strcmp(conversation, p->entries[hi - 1].conversation);
        if (c == 0) {
            *found = true;
            return hi - 1;
        }
        if (c > 0) {
            *found = false;
            return hi;
        }
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(conversation, p->entries[mid].conversation);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    *found = false;
    return lo;
}

int im_handover_sent(im_handover_page *p, const char *conversation, uint64_t seq,
                     size_t bytes, im_error *err)
{
    if (!conversation || !conversation[0] || seq == 0)
        return im_error_set(err, IM_EINVAL, "a handed-over message needs a conversation and a seq");
    bool found;
    size_t i = find(p, conversation, &found);
    if (found) {
        im_handover_entry *e = &p->entries[i];
        bool was_done = e->acked >= e->sent;
        if (seq > e->sent)
            e->sent = seq;
        if (was_done && e->acked < e->sent)
            p->outstanding++;
    } else {
        if (p->n == p->cap) {
            size_t cap = p->cap ? p->cap * 2 : 16;
            im_handover_entry *grown = realloc(p->entries, cap * sizeof *grown);
            if (!grown)
                return im_error_set(err, IM_ENOMEM, "out of memory");
            p->entries = grown;
            p->cap = cap;
        }
        size_t len = strlen(conversation);
        char *copy = malloc(len + 1);
        if (!copy)
            return im_error_set(err, IM_ENOMEM, "out of memory");
        memcpy(copy, conversation, len + 1);
        memmove(&p->entries[i + 1], &p->entries[i], (p->n - i) * sizeof p->entries[0]);
        p->entries[i] = (im_handover_entry){ .conversation = copy, .sent = seq, .acked = 0 };
        p->n++;
        p->outstanding++;
    }
    p->messages++;
    p->bytes += bytes;
    return IM_OK;
}

bool im_handover_acked(im_handover_page *p, const char *conversation, uint64_t seq)
{
    bool found;
    size_t i = conversation ? find(p, conversation, &found) : 0;
    if (conversation && found) {
        im_handover_entry *e = &p->entries[i];
        bool was_done = e->acked >= e->sent;
        if (seq > e->acked)
            e->acked = seq;
        if (!was_done && e->acked >= e->sent)
            p->outstanding--;
    }
    return p->outstanding == 0;
}

bool im_handover_done(const im_handover_page *p)
{
    return p->outstanding == 0;
}

void im_handover_reset(im_handover_page *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->entries[i].conversation);
    p->n = 0;
    p->outstanding = 0;
    p->messages = 0;
    p->bytes = 0;
}

void im_handover_clear(im_handover_page *p)
{
    im_handover_reset(p);
    free(p->entries);
    p->entries = NULL;
    p->cap = 0;
}
