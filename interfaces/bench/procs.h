/* interfaces/bench/procs.h: --procs, several driver processes.
 *
 * One process may not hold enough descriptors for every connection, and one
 * event loop may not keep up; so the parent forks --procs drivers, each with
 * its share of the connections, the rate and the message budget. A driver
 * sends its records (stats.h, raw bytes: parent and children are one
 * executable) up a pipe; the parent merges them, prints the progress line,
 * samples the server, and starts every driver's measured window at the same
 * moment by writing 'G' down a second pipe once all are ready. */
#ifndef BENCH_PROCS_H
#define BENCH_PROCS_H

#include <stdint.h>
#include "agg.h"
#include "options.h"

/* This driver's share of a total, split over o->procs by connections. */
uint32_t bench_share_conns(const bench_opts *o, unsigned proc);
uint64_t bench_share_u64(const bench_opts *o, unsigned proc, uint64_t total);

/* Runs the drivers as child processes until each has sent its final record
 * or died (a->failed). Returns 0, or 1 if they could not be started. */
int bench_procs_run(const bench_opts *o, bench_agg *a, uint64_t t0_ns);

#endif
