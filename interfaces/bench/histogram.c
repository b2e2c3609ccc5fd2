/* interfaces/bench/histogram.c: see histogram.h. The layout is that of
 * HdrHistogram with one sub-bucket precision: bucket index
 *     v < 256:   v
 *     otherwise: shift*128 + (v >> shift), with shift = floor(log2 v) - 7,
 * which is contiguous and monotonic in v. */
#include "histogram.h"

#include <string.h>

#define SUB_HALF (1u << (BENCH_HIST_SUB_BITS - 1))
#define LINEAR_LIMIT (1ull << BENCH_HIST_SUB_BITS)
#define VALUE_LIMIT ((1ull << BENCH_HIST_MAX_BITS) - 1)

static unsigned index_of(uint64_t v)
{
    if (v < LINEAR_LIMIT)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - (BENCH_HIST_SUB_BITS - 1);
    return shift * SUB_HALF + (unsigned)(v >> shift);
}

/* The lowest value of bucket i and the bucket's width. */
static void bucket_range(unsigned i, uint64_t *low, uint64_t *width)
{
    if (i < LINEAR_LIMIT) {
        *low = i;
        *width = 1;
        return;
    }
    unsigned shift = i / SUB_HALF - 1;
    uint64_t m = i - (uint64_t)shift * SUB_HALF;
    *low = m << shift;
    *width = 1ull << shift;
}

void bench_hist_init(bench_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void bench_hist_record(bench_hist *h, uint64_t v)
{
    if (v > VALUE_LIMIT)
        v = VALUE_LIMIT;
    h->buckets[index_of(v)]++;
    h->count++;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void bench_hist_merge(bench_hist *dst, const bench_hist *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

void bench_hist_diff(bench_hist *out, const bench_hist *now, const bench_hist *before)
{
    bench_hist_init(out);
    int lo = -1, hi = -1;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        uint64_t c = now->buckets[i] - before->buckets[i];
        out->buckets[i] = c;
        if (c) {
            if (lo < 0)
                lo = (int)i;
            hi = (int)i;
        }
    }
    out->count = now->count - before->count;
    out->sum = now->sum - before->sum;
    if (lo >= 0) {
        uint64_t low, width;
        bucket_range((unsigned)lo, &low, &width);
        out->min = low;
        bucket_range((unsigned)hi, &low, &width);
        out->max = low + width - 1;
    }
}

uint64_t bench_hist_quantile(const bench_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999999);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t low, width;
            bucket_range(i, &low, &width);
            uint64_t v = low + width / 2;
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}
