/* interfaces/bench/stats.h: what one driver process has counted.
 *
 * The record is plain data of fixed size with no pointers, so a child driver
 * sends it to the parent as raw bytes through a pipe (both are the same
 * executable) and the parent merges the records of all drivers with
 * bench_stats_merge(). Counters are cumulative since the start of the run;
 * the w_* fields hold what happened inside the measured window only, which is
 * what rates are computed from. */
#ifndef BENCH_STATS_H
#define BENCH_STATS_H

#include <stdint.h>
#include "histogram.h"

/* Phases of a driver, in the order they run. */
enum bench_phase {
    BENCH_PH_RAMP,    /* connecting and logging in at --login-rate */
    BENCH_PH_SETUP,   /* creating and joining groups */
    BENCH_PH_READY,   /* waiting for the other drivers */
    BENCH_PH_MEASURE, /* the measured window */
    BENCH_PH_DRAIN,   /* sending stopped; waiting for acks and deliveries */
    BENCH_PH_DONE,
};
const char *bench_phase_name(int phase);

/* Correctness violations: each delivery is counted in at most one. */
enum bench_violation {
    BENCH_V_MISROUTED,    /* wrong receiver, wrong sender, wrong group, to self */
    BENCH_V_DUPLICATE,    /* the same message twice to one receiver */
    BENCH_V_OUT_OF_ORDER, /* a sender's message older than one of its own already received */
    BENCH_V_SEQ_ORDER,    /* the server's seq did not increase at a receiver (or in acks) */
    BENCH_V_CORRUPT,      /* a body the bench did not write, or altered */
    BENCH_V_LOST,         /* accepted (acked) but never delivered by the end of the drain */
    BENCH_V_UNACKED,      /* sent but neither acked nor refused by the end of the drain */
    BENCH_V_COUNT,
};
const char *bench_violation_name(int v);

/* Error codes by wire number (imcore.proto ErrorCode); index 0 collects
 * codes outside the table. Local failures have their own slots above the
 * protocol's numbers. */
#define BENCH_ERR_SLOTS 32
enum {
    BENCH_ERR_CONNECT = 28,  /* connect() failed or timed out */
    BENCH_ERR_CLOSED = 29,   /* the server closed a logged-in connection */
    BENCH_ERR_TIMEOUT = 30,  /* login or a setup request got no answer */
    BENCH_ERR_BACKLOG = 31,  /* open loop: a send skipped, because the sender's backlog
                                was full, it was not connected, or the bench fell
                                behind its timetable */
};
const char *bench_error_name(int slot);

typedef struct bench_stats {
    uint32_t phase;          /* the lowest phase among merged drivers */
    uint32_t procs;          /* drivers merged into this record */
    uint32_t interrupted;    /* drivers stopped early by a signal */

    uint64_t conns_target;   /* connections this driver should hold */
    uint64_t conns_held;     /* logged in right now */
    uint64_t conns_min_held; /* the fewest held during the measured window */

    uint64_t connects;       /* connection attempts */
    uint64_t logins;         /* LoginAcks (MQTT: CONNACK + own subscription) */
    uint64_t logouts;        /* login-storm: logouts completed */
    uint64_t disconnects;    /* logged-in connections the server closed */
    uint64_t setup_failed;   /* group create/join that did not succeed */

    uint64_t sent;           /* messages written */
    uint64_t acked;          /* SendAck (MQTT: PUBACK) */
    uint64_t refused;        /* answered by an Error instead of an ack */
    uint64_t delivered;      /* distinct valid deliveries */
    uint64_t expected;       /* deliveries owed for the acked messages */
    uint64_t ack_delivered;  /* sum of SendAck.delivered, as the server counts */
    uint64_t gaps;           /* counters skipped in a conversation (refused sends) */
    uint64_t stale;          /* deliveries left over from an earlier run, sent again at login */
    uint64_t pings, pongs;
    uint64_t errors[BENCH_ERR_SLOTS];
    uint64_t violations[BENCH_V_COUNT];

    /* The measured window. */
    uint64_t measure_ns;     /* its length */
    uint64_t w_sent, w_acked, w_delivered, w_logins;
    uint64_t cpu_ns;         /* CPU this driver used inside the window */

    bench_hist lat_delivery; /* receive time - intended send time */
    bench_hist lat_ack;      /* ack time - intended send time */
    bench_hist lat_login;    /* LoginAck time - connect start */
    bench_hist lat_ping;     /* Pong time - Ping time */
} bench_stats;

void bench_stats_init(bench_stats *s);
/* Adds src into dst: counters add up, measure_ns is the longest, phase the
 * lowest, histograms merge. */
void bench_stats_merge(bench_stats *dst, const bench_stats *src);
uint64_t bench_stats_violations(const bench_stats *s);
uint64_t bench_stats_errors(const bench_stats *s);
/* How many errors of the protocol's code called name ("NOT_FOUND") s counts. */
uint64_t bench_errors_named(const bench_stats *s, const char *name);

#endif
