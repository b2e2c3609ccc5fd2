/* interfaces/bench/histogram.h: a log-bucketed latency histogram.
 *
 * Values (nanoseconds) below 256 have a bucket each; above, every power of
 * two is cut into 128 buckets, so a reported quantile is within 0.4% of the
 * true value whatever its scale, and the whole record has a fixed size
 * (about 34 KiB). Fixed size and plain integers make a histogram trivially
 * mergeable (bucket by bucket) and copyable between driver processes as raw
 * bytes. Values at or above 2^40 ns (about 18 minutes) are clamped.
 *
 * Not thread-safe; each driver process owns its own. */
#ifndef BENCH_HISTOGRAM_H
#define BENCH_HISTOGRAM_H

#include <stdint.h>

#define BENCH_HIST_SUB_BITS 8
#define BENCH_HIST_MAX_BITS 40
#define BENCH_HIST_BUCKETS \
    (((BENCH_HIST_MAX_BITS - BENCH_HIST_SUB_BITS + 1) << (BENCH_HIST_SUB_BITS - 1)) + \
     (1 << (BENCH_HIST_SUB_BITS - 1)))

typedef struct bench_hist {
    uint64_t count;
    uint64_t sum;     /* of the recorded (clamped) values, for the mean */
    uint64_t min;     /* exact; UINT64_MAX while empty */
    uint64_t max;     /* exact */
    uint64_t buckets[BENCH_HIST_BUCKETS];
} bench_hist;

void bench_hist_init(bench_hist *h);
void bench_hist_record(bench_hist *h, uint64_t value);

/* Adds every count of src to dst. */
void bench_hist_merge(bench_hist *dst, const bench_hist *src);

/* out = now - before, where before is an earlier copy of the same histogram:
 * the values recorded in between. min and max of the difference are those of
 * its lowest and highest non-empty buckets (exact min/max are not kept per
 * interval). */
void bench_hist_diff(bench_hist *out, const bench_hist *now, const bench_hist *before);

/* The value at quantile q (0..1): the middle of the bucket holding the
 * ceil(q*count)-th smallest value, never above max nor below min. 0 when the
 * histogram is empty. */
uint64_t bench_hist_quantile(const bench_hist *h, double q);

#endif
