/* interfaces/bench/seqcheck.c: see seqcheck.h. */
#include "seqcheck.h"

int bench_seqcheck_accept(bench_seqcheck *s, uint32_t c, uint32_t *gap_out)
{
    uint32_t next = s->next ? s->next : 1;
    *gap_out = 0;
    if (c == 0)
        return BENCH_SEQ_LATE;
    if (c >= next) {
        uint32_t shift = c - next + 1;
        s->window = (shift >= 32 ? 0 : s->window << shift) | 1u;
        s->next = c + 1;
        *gap_out = c - next;
        return c == next ? BENCH_SEQ_OK : BENCH_SEQ_GAP;
    }
    uint32_t age = next - 1 - c;
    if (age < 32) {
        uint32_t bit = 1u << age;
        if (s->window & bit)
            return BENCH_SEQ_DUPLICATE;
        s->window |= bit;
    }
    return BENCH_SEQ_LATE;
}
