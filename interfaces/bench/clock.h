/* interfaces/bench/clock.h: the one clock of the bench.
 *
 * Every time the bench records (intended send times, receive times, phase
 * boundaries) is CLOCK_MONOTONIC in nanoseconds. The clock is system-wide,
 * so a time written into a message body by one driver process can be read by
 * another: latency across --procs needs no synchronisation. */
#ifndef BENCH_CLOCK_H
#define BENCH_CLOCK_H

#include <stdint.h>
#include <sys/time.h>
#include <time.h>

#define BENCH_NS_PER_S 1000000000ull
#define BENCH_NS_PER_MS 1000000ull

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * BENCH_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* CPU time this process has used so far (all threads), in nanoseconds. */
static inline uint64_t bench_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * BENCH_NS_PER_S + (uint64_t)ts.tv_nsec;
}

static inline struct timeval bench_tv_of_ns(uint64_t ns)
{
    struct timeval tv = { .tv_sec = (time_t)(ns / BENCH_NS_PER_S),
                          .tv_usec = (suseconds_t)(ns % BENCH_NS_PER_S / 1000) };
    return tv;
}

#endif
