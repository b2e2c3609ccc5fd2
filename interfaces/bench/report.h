/* interfaces/bench/report.h: the verdict on a run and its summary, for
 * people (text) or machines (--json, one object on stdout). */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "agg.h"
#include "options.h"
#include "stats.h"

#define BENCH_MAX_FAILURES 8
#define BENCH_MAX_NOTES 4
#define BENCH_LINE 200

/* Why a run failed; none means it succeeded. Notes explain figures that
 * are probably not what the user meant to measure, without failing. */
typedef struct bench_verdict {
    int n;
    char why[BENCH_MAX_FAILURES][BENCH_LINE];
    int nnotes;
    char note[BENCH_MAX_NOTES][BENCH_LINE];
} bench_verdict;

/* A run fails on any correctness violation, on a connection not held, when
 * the workload made no progress, when it was interrupted, or when a driver
 * died. Speed never fails a run; a server that throttled it is noted. */
void bench_judge(const bench_opts *o, const bench_agg *a, const bench_stats *st,
                 bench_verdict *v);

void bench_report_text(FILE *f, const bench_opts *o, const bench_agg *a, const bench_stats *st,
                       const bench_verdict *v);
void bench_report_json(FILE *f, const bench_opts *o, const bench_agg *a, const bench_stats *st,
                       const bench_verdict *v);

/* "812ns", "35.2us", "1.30ms", "2.05s". */
void bench_format_ns(char *buf, size_t len, uint64_t ns);

#endif
