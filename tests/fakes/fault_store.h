/* tests/fakes/fault_store.h: a store decorator that fails the Nth write
 * (append, membership change or kv_put, 1-based) and every one after it while
 * fail_from is set, passing everything else to the wrapped store. The
 * failure arrives through the completion, as a failed commit would, or
 * with at_once as the call's own result, as a store that refuses a request
 * (shutting down, out of memory) returns it. */
#ifndef IM_FAULT_STORE_H
#define IM_FAULT_STORE_H

#include "application/ports/im_store.h"
#include "domain/group.h"

typedef struct fault_store {
    im_store base;
    im_store *inner;      /* borrowed */
    unsigned calls;
    unsigned fail_from;   /* 0: never fail */
    int code;             /* what a failure returns */
    bool at_once;         /* membership changes fail as the call's result */
    /* The group changes asked for (group_change), the last ones kept. */
    im_group_change_kind changes[16];
    char change_users[16][IM_USER_ID_MAX + 1];
    unsigned nchanges;
    /* keep_history: the messages appended are kept (the first 64, bodies
     * cut at 63 bytes) and history is read from them; the wrapped store
     * must complete appends at once (the memory store does). */
    bool keep_history;
    struct {
        char conv[IM_CONVERSATION_ID_MAX + 1];
        char sender[IM_USER_ID_MAX + 1], target[IM_USER_ID_MAX + 1];
        char body[64];
        im_message_kind kind;
        uint64_t seq;
    } kept[64];
    size_t nkept;
    /* load_groups hands out these records (borrowed), when set. */
    const im_group_record *records;
    size_t nrecords;
} fault_store;

void fault_store_init(fault_store *fs, im_store *inner, unsigned fail_from, int code);
/* fs then shows the table of an adapter built before group_change. */
void fault_store_without_group_change(fault_store *fs);

#endif
