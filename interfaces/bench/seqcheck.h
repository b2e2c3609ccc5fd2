/* interfaces/bench/seqcheck.h: the order check of one conversation at one
 * receiver.
 *
 * A sender numbers its messages of a conversation 1, 2, 3 ...; the receiver
 * keeps the next number it expects and a 32-bit window of which of the 32
 * numbers below it have arrived. A number at or above the expected one is in
 * order (skipping numbers is a gap: a refused send, or a loss that the final
 * count catches); a number below it is a duplicate if its bit is set and out
 * of order otherwise. Eight bytes per conversation, so that even every member
 * of a 500-member group checking every other member costs 2 MB. */
#ifndef BENCH_SEQCHECK_H
#define BENCH_SEQCHECK_H

#include <stdint.h>

typedef struct bench_seqcheck {
    uint32_t next;   /* the next counter expected; 0 means 1 (nothing seen yet) */
    uint32_t window; /* bit i: counter next-1-i has arrived */
} bench_seqcheck;

enum bench_seq_result {
    BENCH_SEQ_OK,
    BENCH_SEQ_GAP,        /* in order, but numbers were skipped */
    BENCH_SEQ_DUPLICATE,
    BENCH_SEQ_LATE,       /* below a number already received, not seen before */
};

/* Records counter (>= 1) and says how it fits. gap_out gets the numbers
 * skipped, for BENCH_SEQ_GAP. */
int bench_seqcheck_accept(bench_seqcheck *s, uint32_t counter, uint32_t *gap_out);

#endif
