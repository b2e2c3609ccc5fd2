/* interfaces/bench/agg.h: the parent's view of a run: the latest record of
 * every driver, the server samples taken at the phase boundaries, and the
 * one-line progress display.
 *
 * With one driver the driver's reports arrive here by a direct call; with
 * --procs they arrive through pipes (procs.c). Either way the record of a
 * driver replaces its previous one (counters are cumulative), and the merge
 * of the latest records is the state of the whole run. */
#ifndef BENCH_AGG_H
#define BENCH_AGG_H

#include <stdbool.h>
#include <stdio.h>

#include "monitor.h"
#include "options.h"
#include "stats.h"

typedef struct bench_agg {
    const bench_opts *o;
    unsigned nprocs;
    uint64_t t0_ns;
    bench_stats *latest;       /* [nprocs] */
    int *kind;                 /* [nprocs]: the latest report kind, -1 none yet */
    bool *failed;              /* [nprocs]: the driver ended without FINAL */
    bench_stats prev;          /* the merge shown by the previous progress line */
    uint64_t prev_ns;
    bool have_prev;

    /* --server-pid samples */
    bench_proc_sample srv_start, srv_ready, srv_mend, srv_last, srv_prev;
    uint64_t srv_peak_kb;
    bool ready_sampled, mend_sampled;
} bench_agg;

int bench_agg_init(bench_agg *a, const bench_opts *o, unsigned nprocs, uint64_t t0_ns);
void bench_agg_free(bench_agg *a);

/* A report from driver proc. Samples the server when the last driver
 * becomes ready or closes its window. */
void bench_agg_update(bench_agg *a, unsigned proc, int kind, const bench_stats *st);

/* True when every driver still alive has reported kind (or later). */
bool bench_agg_all(const bench_agg *a, int kind);

/* The merge of the latest records into out. */
void bench_agg_merge(const bench_agg *a, bench_stats *out);

/* Samples the server and prints one progress line on f (unless --quiet). */
void bench_agg_progress(bench_agg *a, FILE *f);

#endif
