/* interfaces/bench/report.c: see report.h. Rates are computed over the
 * measured window only (the w_* counters); latency histograms hold
 * everything sent in the window, including what arrived during the drain, so
 * that a slow tail is never cut off by the end of the window. */
#include "report.h"

#include <stdarg.h>
#include <string.h>

#include "driver.h"

void bench_format_ns(char *buf, size_t len, uint64_t ns)
{
    if (ns < 1000)
        snprintf(buf, len, "%lluns", (unsigned long long)ns);
    else if (ns < 1000000)
        snprintf(buf, len, "%.1fus", (double)ns / 1e3);
    else if (ns < 1000000000)
        snprintf(buf, len, "%.2fms", (double)ns / 1e6);
    else
        snprintf(buf, len, "%.2fs", (double)ns / 1e9);
}

/* Appends a line to lines[*n] unless max are there already. */
static void add_line(char (*lines)[BENCH_LINE], int *n, int max, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add_line(char (*lines)[BENCH_LINE], int *n, int max, const char *fmt, ...)
{
    if (*n >= max)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lines[(*n)++], BENCH_LINE, fmt, ap);
    va_end(ap);
}

#define fail(v, ...) add_line((v)->why, &(v)->n, BENCH_MAX_FAILURES, __VA_ARGS__)
#define note(v, ...) add_line((v)->note, &(v)->nnotes, BENCH_MAX_NOTES, __VA_ARGS__)

void bench_judge(const bench_opts *o, const bench_agg *a, const bench_stats *st, bench_verdict *v)
{
    memset(v, 0, sizeof *v);
    for (unsigned i = 0; i < a->nprocs; i++)
        if (a->failed[i])
            fail(v, "driver process %u ended without its final report", i);
    uint64_t viol = bench_stats_violations(st);
    if (viol)
        fail(v, "%llu correctness violations", (unsigned long long)viol);
    if (st->conns_held < st->conns_target)
        fail(v, "held %llu of %llu connections at the end", (unsigned long long)st->conns_held,
             (unsigned long long)st->conns_target);
    else if (o->workload != BENCH_WL_LOGIN_STORM && st->conns_min_held != UINT64_MAX &&
             st->conns_min_held < st->conns_target)
        fail(v, "only %llu of %llu connections were held through the window",
             (unsigned long long)st->conns_min_held, (unsigned long long)st->conns_target);
    if (st->setup_failed)
        fail(v, "%llu group members could not be set up", (unsigned long long)st->setup_failed);
    if (bench_workload_sends(o->workload) && st->w_sent == 0)
        fail(v, "no message was sent in the window");
    if (o->workload == BENCH_WL_LOGIN_STORM && st->w_logins == 0)
        fail(v, "no login completed in the window");
    if (st->interrupted)
        fail(v, "interrupted");
    /* The commonest reason for no login at all, in words. */
    if (o->protocol == BENCH_PROTO_IMCORE && !o->password[0] && st->logins == 0 &&
        bench_errors_named(st, "INVALID_ARGUMENT") + bench_errors_named(st, "NOT_FOUND") +
                bench_errors_named(st, "BAD_CREDENTIALS") > 0)
        fail(v, "every login was refused: a server in accounts.mode password needs --password");
    /* The default config limits each session to a few hundred messages a
     * second: a run against it measures that limit, not the server. */
    uint64_t limited = bench_errors_named(st, "RATE_LIMITED");
    if (limited && st->refused)
        note(v, "the server refused sends with RATE_LIMITED (%llu errors): its "
                "limits.messages_per_second holds each session back (0 turns it off)",
             (unsigned long long)limited);
}

/* ---- text ---------------------------------------------------------------- */

static void hist_line(FILE *f, const char *name, const bench_hist *h)
{
    if (h->count == 0)
        return;
    static const double qs[] = { 0.5, 0.9, 0.99, 0.999 };
    fprintf(f, "    %-9s", name);
    for (unsigned i = 0; i < 4; i++) {
        char b[16];
        bench_format_ns(b, sizeof b, bench_hist_quantile(h, qs[i]));
        fprintf(f, " %9s", b);
    }
    char b[16];
    bench_format_ns(b, sizeof b, h->max);
    fprintf(f, " %9s  %llu\n", b, (unsigned long long)h->count);
}

static double rate(uint64_t n, uint64_t ns)
{
    return ns ? (double)n * 1e9 / (double)ns : 0;
}

static void loop_desc(char *buf, size_t len, const bench_opts *o)
{
    if (!bench_workload_sends(o->workload))
        snprintf(buf, len, "no messages");
    else if (o->rate > 0)
        snprintf(buf, len, "open loop at %.0f msg/s", o->rate);
    else
        snprintf(buf, len, "closed loop, window %u", o->window);
}

void bench_report_text(FILE *f, const bench_opts *o, const bench_agg *a, const bench_stats *st,
                       const bench_verdict *v)
{
    char loop[64];
    loop_desc(loop, sizeof loop, o);
    fprintf(f, "imcore-bench %s: %s over %s, %s, %u connections, %u driver process%s\n",
            BENCH_VERSION, bench_workload_name(o->workload),
            o->protocol == BENCH_PROTO_MQTT ? "mqtt" : "imcore", loop, o->connections, o->procs,
            o->procs == 1 ? "" : "es");
    if (o->workload == BENCH_WL_GROUP || o->workload == BENCH_WL_MIXED)
        fprintf(f, "  groups       of %u, %s sends, body %u bytes\n", o->group_size,
                o->all_senders ? "every member" : "the owner", o->size);
    if (o->to[0])
        fprintf(f, "  to           %s, which sends each message back\n", o->to);
    fprintf(f, "  connections  held %llu/%llu", (unsigned long long)st->conns_held,
            (unsigned long long)st->conns_target);
    if (st->conns_min_held != UINT64_MAX && o->workload != BENCH_WL_LOGIN_STORM)
        fprintf(f, " (fewest in the window %llu)", (unsigned long long)st->conns_min_held);
    fprintf(f, ", attempts %llu, logins %llu, disconnects %llu\n", (unsigned long long)st->connects,
            (unsigned long long)st->logins, (unsigned long long)st->disconnects);
    fprintf(f, "  window       %.2f s\n", (double)st->measure_ns / 1e9);
    if (o->workload == BENCH_WL_LOGIN_STORM)
        fprintf(f, "  logins       %llu in the window, %.1f/s; logouts %llu\n",
                (unsigned long long)st->w_logins, rate(st->w_logins, st->measure_ns),
                (unsigned long long)st->logouts);
    if (bench_workload_sends(o->workload)) {
        fprintf(f, "  messages     sent %.1f/s  acked %.1f/s  delivered %.1f/s (in the window)\n",
                rate(st->w_sent, st->measure_ns), rate(st->w_acked, st->measure_ns),
                rate(st->w_delivered, st->measure_ns));
        fprintf(f, "               sent %llu  acked %llu  refused %llu  delivered %llu of %llu owed"
                   " (in all)\n",
                (unsigned long long)st->sent, (unsigned long long)st->acked,
                (unsigned long long)st->refused, (unsigned long long)st->delivered,
                (unsigned long long)st->expected);
        if (st->stale)
            fprintf(f, "               %llu left over from earlier runs, sent again at login "
                       "(not counted)\n", (unsigned long long)st->stale);
    }
    fprintf(f, "  latency           p50       p90       p99     p99.9       max  count\n");
    hist_line(f, "delivery", &st->lat_delivery);
    hist_line(f, "ack", &st->lat_ack);
    hist_line(f, "login", &st->lat_login);
    hist_line(f, "ping", &st->lat_ping);

    fprintf(f, "  errors      ");
    bool any = false;
    for (int i = 0; i < BENCH_ERR_SLOTS; i++)
        if (st->errors[i]) {
            fprintf(f, " %s %llu", bench_error_name(i), (unsigned long long)st->errors[i]);
            any = true;
        }
    fprintf(f, "%s\n", any ? "" : " none");
    fprintf(f, "  violations   %llu", (unsigned long long)bench_stats_violations(st));
    for (int i = 0; i < BENCH_V_COUNT; i++)
        fprintf(f, "%s%s %llu", i ? ", " : " (", bench_violation_name(i),
                (unsigned long long)st->violations[i]);
    fprintf(f, ")\n");
    if (o->server_pid) {
        const bench_proc_sample *end = a->srv_mend.ok ? &a->srv_mend : &a->srv_last;
        if (end->ok && a->srv_start.ok) {
            fprintf(f, "  server       pid %d: RSS %.1f MB (%.1f MB before, peak %.1f MB)",
                    o->server_pid, (double)end->rss_kb / 1024, (double)a->srv_start.rss_kb / 1024,
                    (double)a->srv_peak_kb / 1024);
            if (st->conns_held && end->rss_kb >= a->srv_start.rss_kb)
                fprintf(f, ", %.0f bytes per connection",
                        (double)(end->rss_kb - a->srv_start.rss_kb) * 1024 / (double)st->conns_held);
            double cpu = bench_proc_cpu_pct(&a->srv_ready, &a->srv_mend);
            if (cpu >= 0)
                fprintf(f, ", CPU %.0f%% of a core in the window", cpu);
            fprintf(f, "\n");
        } else {
            fprintf(f, "  server       pid %d could not be read\n", o->server_pid);
        }
    }
    if (st->measure_ns)
        fprintf(f, "  bench        CPU %.0f%% of a core in the window\n",
                100.0 * (double)st->cpu_ns / (double)st->measure_ns);
    for (int i = 0; i < v->nnotes; i++)
        fprintf(f, "  note         %s\n", v->note[i]);
    if (v->n == 0) {
        fprintf(f, "  result       OK\n");
    } else {
        fprintf(f, "  result       FAILED\n");
        for (int i = 0; i < v->n; i++)
            fprintf(f, "               - %s\n", v->why[i]);
    }
}

/* ---- JSON ------------------------------------------------------------------ */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_hist(FILE *f, const char *name, const bench_hist *h, bool last)
{
    fprintf(f, "\"%s\":{\"count\":%llu", name, (unsigned long long)h->count);
    if (h->count) {
        fprintf(f, ",\"mean\":%.1f,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
                   "\"min\":%.1f,\"max\":%.1f",
                (double)h->sum / (double)h->count / 1e3, bench_hist_quantile(h, 0.5) / 1e3,
                bench_hist_quantile(h, 0.9) / 1e3, bench_hist_quantile(h, 0.99) / 1e3,
                bench_hist_quantile(h, 0.999) / 1e3, (double)h->min / 1e3, (double)h->max / 1e3);
    }
    fprintf(f, "}%s", last ? "" : ",");
}

void bench_report_json(FILE *f, const bench_opts *o, const bench_agg *a, const bench_stats *st,
                       const bench_verdict *v)
{
    fprintf(f, "{\"tool\":\"imcore-bench\",\"version\":\"%s\",\"ok\":%s,\"failures\":[", BENCH_VERSION,
            v->n ? "false" : "true");
    for (int i = 0; i < v->n; i++) {
        if (i)
            fputc(',', f);
        json_str(f, v->why[i]);
    }
    fprintf(f, "],\"notes\":[");
    for (int i = 0; i < v->nnotes; i++) {
        if (i)
            fputc(',', f);
        json_str(f, v->note[i]);
    }
    fprintf(f, "],\"workload\":\"%s\",\"protocol\":\"%s\",\"loop\":\"%s\",\"rate\":%.1f,"
               "\"window\":%u,\"size\":%u,\"group_size\":%u,\"senders\":\"%s\",\"procs\":%u,"
               "\"duration_s\":%.3f,\"interrupted\":%s,\"to\":\"%s\",",
            bench_workload_name(o->workload), o->protocol == BENCH_PROTO_MQTT ? "mqtt" : "imcore",
            !bench_workload_sends(o->workload) ? "none" : o->rate > 0 ? "open" : "closed", o->rate,
            o->window, o->size, o->group_size, o->all_senders ? "all" : "one", o->procs,
            (double)st->measure_ns / 1e9, st->interrupted ? "true" : "false", o->to);
    fprintf(f, "\"connections\":{\"target\":%llu,\"held\":%llu,\"min_held\":%llu,\"connects\":%llu,"
               "\"logins\":%llu,\"logouts\":%llu,\"disconnects\":%llu,\"setup_failed\":%llu},",
            (unsigned long long)st->conns_target, (unsigned long long)st->conns_held,
            (unsigned long long)(st->conns_min_held == UINT64_MAX ? st->conns_held : st->conns_min_held),
            (unsigned long long)st->connects, (unsigned long long)st->logins,
            (unsigned long long)st->logouts, (unsigned long long)st->disconnects,
            (unsigned long long)st->setup_failed);
    fprintf(f, "\"logins\":{\"count\":%llu,\"in_window\":%llu,\"per_s\":%.1f},",
            (unsigned long long)st->logins, (unsigned long long)st->w_logins,
            rate(st->w_logins, st->measure_ns));
    fprintf(f, "\"messages\":{\"sent\":%llu,\"acked\":%llu,\"refused\":%llu,\"delivered\":%llu,"
               "\"expected\":%llu,\"ack_delivered\":%llu,\"gaps\":%llu,\"stale\":%llu,"
               "\"sent_per_s\":%.1f,"
               "\"acked_per_s\":%.1f,\"delivered_per_s\":%.1f},",
            (unsigned long long)st->sent, (unsigned long long)st->acked,
            (unsigned long long)st->refused, (unsigned long long)st->delivered,
            (unsigned long long)st->expected, (unsigned long long)st->ack_delivered,
            (unsigned long long)st->gaps, (unsigned long long)st->stale,
            rate(st->w_sent, st->measure_ns),
            rate(st->w_acked, st->measure_ns), rate(st->w_delivered, st->measure_ns));
    fprintf(f, "\"latency_us\":{");
    json_hist(f, "delivery", &st->lat_delivery, false);
    json_hist(f, "ack", &st->lat_ack, false);
    json_hist(f, "login", &st->lat_login, false);
    json_hist(f, "ping", &st->lat_ping, true);
    fprintf(f, "},\"pings\":%llu,\"pongs\":%llu,\"errors\":{", (unsigned long long)st->pings,
            (unsigned long long)st->pongs);
    bool first = true;
    for (int i = 0; i < BENCH_ERR_SLOTS; i++)
        if (st->errors[i]) {
            fprintf(f, "%s\"%s\":%llu", first ? "" : ",", bench_error_name(i),
                    (unsigned long long)st->errors[i]);
            first = false;
        }
    fprintf(f, "},\"violations\":{\"total\":%llu", (unsigned long long)bench_stats_violations(st));
    for (int i = 0; i < BENCH_V_COUNT; i++)
        fprintf(f, ",\"%s\":%llu", bench_violation_name(i), (unsigned long long)st->violations[i]);
    fprintf(f, "},\"server\":");
    const bench_proc_sample *end = a->srv_mend.ok ? &a->srv_mend : &a->srv_last;
    if (o->server_pid && end->ok && a->srv_start.ok) {
        double per_conn = st->conns_held && end->rss_kb >= a->srv_start.rss_kb
                              ? (double)(end->rss_kb - a->srv_start.rss_kb) * 1024 /
                                    (double)st->conns_held
                              : 0;
        fprintf(f, "{\"pid\":%d,\"rss_start_kb\":%llu,\"rss_ready_kb\":%llu,\"rss_end_kb\":%llu,"
                   "\"rss_peak_kb\":%llu,\"rss_per_conn_bytes\":%.0f,\"cpu_pct\":%.1f,\"threads\":%llu},",
                o->server_pid, (unsigned long long)a->srv_start.rss_kb,
                (unsigned long long)a->srv_ready.rss_kb, (unsigned long long)end->rss_kb,
                (unsigned long long)a->srv_peak_kb, per_conn,
                bench_proc_cpu_pct(&a->srv_ready, &a->srv_mend), (unsigned long long)end->threads);
    } else {
        fprintf(f, "null,");
    }
    fprintf(f, "\"bench\":{\"cpu_pct\":%.1f}}\n",
            st->measure_ns ? 100.0 * (double)st->cpu_ns / (double)st->measure_ns : 0.0);
}
