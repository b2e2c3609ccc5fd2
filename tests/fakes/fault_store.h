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
} fault_store;

void fault_store_init(fault_store *fs, im_store *inner, unsigned fail_from, int code);

#endif
