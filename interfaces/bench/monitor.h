/* interfaces/bench/monitor.h: the server's resident memory and CPU time, read
 * from /proc/PID (--server-pid). Linux only, read-only, no privileges: the
 * files are readable for processes of the same user. */
#ifndef BENCH_MONITOR_H
#define BENCH_MONITOR_H

#include <stdbool.h>
#include <stdint.h>

typedef struct bench_proc_sample {
    bool ok;             /* false: the process could not be read (gone?) */
    uint64_t at_ns;      /* CLOCK_MONOTONIC when read */
    uint64_t rss_kb;     /* VmRSS */
    uint64_t hwm_kb;     /* VmHWM: the peak RSS so far */
    uint64_t cpu_ns;     /* utime + stime */
    uint64_t threads;
} bench_proc_sample;

/* Reads pid now. Returns 0, or -1 (s->ok false) if /proc/PID cannot be read. */
int bench_proc_sample_read(int pid, bench_proc_sample *s);

/* CPU used between a and b as a percentage of one core (200 = two cores
 * busy); -1 when either sample is missing. */
double bench_proc_cpu_pct(const bench_proc_sample *a, const bench_proc_sample *b);

#endif
