/* interfaces/bench/main.c: imcore-bench, the load generator.
 *
 * Parses the command line, checks what only the system can tell (the file
 * limit, the server's pid), runs the drivers (in this process, or forked with
 * --procs), and turns the merged result into a summary and an exit status:
 * 0 success, 1 a failed run (correctness violations, connections not held,
 * no progress), 2 bad usage. docs/bench.md is the manual. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "agg.h"
#include "clock.h"
#include "driver.h"
#include "im_log.h"
#include "options.h"
#include "procs.h"
#include "report.h"

/* Descriptors a driver needs besides its connections: the loop, pipes,
 * stdio, and some slack for libevent's signal pipe and /proc reads. */
#define FD_SLACK 64

static void single_report(void *arg, int kind, const bench_stats *st)
{
    bench_agg *a = arg;
    bench_agg_update(a, 0, kind, st);
    if (kind == BENCH_REP_TICK)
        bench_agg_progress(a, stderr);
}

/* Raises the soft descriptor limit to the hard one and checks that each
 * driver fits under it. Returns 0, or 2 after saying what to do. */
static int fit_descriptors(const bench_opts *o)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    /* libmosquitto adds a socket pair to every client. */
    uint64_t per_conn = o->protocol == BENCH_PROTO_MQTT ? 3 : 1;
    uint64_t need = (uint64_t)bench_share_conns(o, 0) * per_conn + FD_SLACK;
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur) {
        uint64_t usable = rl.rlim_cur > FD_SLACK ? (rl.rlim_cur - FD_SLACK) / per_conn : 1;
        uint64_t procs = (o->connections + usable - 1) / (usable ? usable : 1);
        fprintf(stderr,
                "imcore-bench: %u connections per driver need %llu descriptors, but the limit "
                "is %llu: use --procs %llu or more\n",
                bench_share_conns(o, 0), (unsigned long long)need,
                (unsigned long long)rl.rlim_cur, (unsigned long long)procs);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts o;
    int rc = bench_opts_parse(argc, argv, &o, stdout, stderr);
    if (rc == 1)
        return 0;
    if (rc != 0)
        return 2;
#ifndef BENCH_HAVE_MQTT
    if (o.protocol == BENCH_PROTO_MQTT) {
        fprintf(stderr, "imcore-bench: this build has no MQTT support (libmosquitto was not "
                        "found when it was built)\n");
        return 2;
    }
#endif
    if (o.server_pid) {
        char path[32];
        snprintf(path, sizeof path, "/proc/%d/status", o.server_pid);
        if (access(path, R_OK) != 0) {
            fprintf(stderr, "imcore-bench: --server-pid %d: cannot read %s: %s\n", o.server_pid,
                    path, strerror(errno));
            return 2;
        }
    }
    if ((rc = fit_descriptors(&o)) != 0)
        return rc;
    im_log_set_level(IM_LOG_WARN);
    /* A peer that closes while we write must be an error code, not a death. */
    signal(SIGPIPE, SIG_IGN);

    uint64_t t0 = bench_now_ns();
    bench_agg agg;
    if (bench_agg_init(&agg, &o, o.procs, t0) != 0) {
        fprintf(stderr, "imcore-bench: out of memory\n");
        return 1;
    }
    if (o.procs == 1) {
        if (bench_driver_run(&o, 0, o.connections, o.messages, o.rate, t0, -1, single_report,
                             &agg) != 0)
            agg.failed[0] = true;
    } else if (bench_procs_run(&o, &agg, t0) != 0) {
        bench_agg_free(&agg);
        return 1;
    }

    static bench_stats total; /* large: keep it off the stack */
    bench_agg_merge(&agg, &total);
    bench_verdict v;
    bench_judge(&o, &agg, &total, &v);
    if (o.json)
        bench_report_json(stdout, &o, &agg, &total, &v);
    else
        bench_report_text(stdout, &o, &agg, &total, &v);
    fflush(stdout);
    bench_agg_free(&agg);
    return v.n ? 1 : 0;
}
