/* interfaces/bench/agg.c: see agg.h. */
#include "agg.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "driver.h"
#include "report.h"

int bench_agg_init(bench_agg *a, const bench_opts *o, unsigned nprocs, uint64_t t0_ns)
{
    memset(a, 0, sizeof *a);
    a->o = o;
    a->nprocs = nprocs;
    a->t0_ns = t0_ns;
    a->latest = calloc(nprocs, sizeof *a->latest);
    a->kind = calloc(nprocs, sizeof *a->kind);
    a->failed = calloc(nprocs, sizeof *a->failed);
    if (!a->latest || !a->kind || !a->failed)
        return -1;
    for (unsigned i = 0; i < nprocs; i++) {
        bench_stats_init(&a->latest[i]);
        a->latest[i].procs = 1;
        a->kind[i] = -1;
    }
    if (o->server_pid) {
        bench_proc_sample_read(o->server_pid, &a->srv_start);
        a->srv_last = a->srv_prev = a->srv_start;
        a->srv_peak_kb = a->srv_start.rss_kb;
    }
    return 0;
}

void bench_agg_free(bench_agg *a)
{
    free(a->latest);
    free(a->kind);
    free(a->failed);
}

static void sample(bench_agg *a, bench_proc_sample *s)
{
    if (!a->o->server_pid)
        return;
    bench_proc_sample_read(a->o->server_pid, s);
    if (s->ok && s->rss_kb > a->srv_peak_kb)
        a->srv_peak_kb = s->rss_kb;
    if (s->ok && s->hwm_kb > a->srv_peak_kb)
        a->srv_peak_kb = s->hwm_kb;
}

bool bench_agg_all(const bench_agg *a, int kind)
{
    for (unsigned i = 0; i < a->nprocs; i++)
        if (!a->failed[i] && a->kind[i] < kind)
            return false;
    return true;
}

void bench_agg_update(bench_agg *a, unsigned proc, int kind, const bench_stats *st)
{
    if (proc >= a->nprocs)
        return;
    a->latest[proc] = *st;
    if (kind > a->kind[proc])
        a->kind[proc] = kind;
    if (!a->ready_sampled && bench_agg_all(a, BENCH_REP_READY)) {
        a->ready_sampled = true;
        sample(a, &a->srv_ready);
    }
    if (!a->mend_sampled && bench_agg_all(a, BENCH_REP_MEASURE_END)) {
        a->mend_sampled = true;
        sample(a, &a->srv_mend);
    }
}

void bench_agg_merge(const bench_agg *a, bench_stats *out)
{
    bench_stats_init(out);
    for (unsigned i = 0; i < a->nprocs; i++)
        bench_stats_merge(out, &a->latest[i]);
}

static double per_s(uint64_t now, uint64_t before, double secs)
{
    return secs > 0 && now >= before ? (double)(now - before) / secs : 0;
}

void bench_agg_progress(bench_agg *a, FILE *f)
{
    static bench_stats cur; /* large: keep it off the stack */
    static bench_hist interval;
    uint64_t now = bench_now_ns();
    bench_agg_merge(a, &cur);
    a->srv_prev = a->srv_last;
    sample(a, &a->srv_last);
    if (!a->have_prev) {
        bench_stats_init(&a->prev);
        a->prev_ns = a->t0_ns;
        a->have_prev = true;
    }
    double secs = (double)(now - a->prev_ns) / 1e9;
    if (!a->o->quiet && f) {
        char line[320], p50[16] = "-", p99[16] = "-";
        const bench_hist *h = &cur.lat_delivery, *hp = &a->prev.lat_delivery;
        const char *what = "dlv";
        if (a->o->workload == BENCH_WL_IDLE) {
            h = &cur.lat_ping, hp = &a->prev.lat_ping, what = "ping";
        } else if (a->o->workload == BENCH_WL_LOGIN_STORM) {
            h = &cur.lat_login, hp = &a->prev.lat_login, what = "login";
        }
        bench_hist_diff(&interval, h, hp);
        if (interval.count) {
            bench_format_ns(p50, sizeof p50, bench_hist_quantile(&interval, 0.5));
            bench_format_ns(p99, sizeof p99, bench_hist_quantile(&interval, 0.99));
        }
        int n = snprintf(line, sizeof line, "[%4.0fs] %-7s held %llu/%llu  login/s %.0f",
                         (double)(now - a->t0_ns) / 1e9, bench_phase_name((int)cur.phase),
                         (unsigned long long)cur.conns_held, (unsigned long long)cur.conns_target,
                         per_s(cur.logins, a->prev.logins, secs));
        if (bench_workload_sends(a->o->workload))
            n += snprintf(line + n, sizeof line - (size_t)n,
                          "  sent/s %.0f  ack/s %.0f  dlv/s %.0f",
                          per_s(cur.sent, a->prev.sent, secs), per_s(cur.acked, a->prev.acked, secs),
                          per_s(cur.delivered, a->prev.delivered, secs));
        n += snprintf(line + n, sizeof line - (size_t)n, "  %s p50 %s p99 %s  err %llu  viol %llu",
                      what, p50, p99, (unsigned long long)bench_stats_errors(&cur),
                      (unsigned long long)bench_stats_violations(&cur));
        if (a->o->server_pid && a->srv_last.ok && n < (int)sizeof line)
            snprintf(line + n, sizeof line - (size_t)n, "  srv %.0fMB %.0f%%cpu",
                     (double)a->srv_last.rss_kb / 1024.0,
                     bench_proc_cpu_pct(&a->srv_prev, &a->srv_last));
        fprintf(f, "%s\n", line);
        fflush(f);
    }
    a->prev = cur;
    a->prev_ns = now;
}
