/* interfaces/bench/stats.c: names and merging of the counters in stats.h. */
#include "stats.h"

#include <string.h>
#include <protobuf-c/protobuf-c.h>
#include "imcore.pb-c.h"

const char *bench_phase_name(int phase)
{
    static const char *const names[] = { "ramp", "setup", "ready", "measure", "drain", "done" };
    if (phase < 0 || phase > BENCH_PH_DONE)
        return "?";
    return names[phase];
}

const char *bench_violation_name(int v)
{
    static const char *const names[] = { "misrouted", "duplicate", "out_of_order", "seq_order",
                                         "corrupt",   "lost",      "unacked" };
    if (v < 0 || v >= BENCH_V_COUNT)
        return "?";
    return names[v];
}

const char *bench_error_name(int slot)
{
    switch (slot) {
    case BENCH_ERR_CONNECT: return "CONNECT_FAILED";
    case BENCH_ERR_CLOSED: return "CLOSED_BY_SERVER";
    case BENCH_ERR_TIMEOUT: return "NO_ANSWER";
    case BENCH_ERR_BACKLOG: return "SEND_SKIPPED";
    case 0: return "OTHER";
    }
    /* The protocol's own names, from the generated descriptor, so a code
     * added to imcore.proto is named without touching the bench. */
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&imcore__error_code__descriptor, slot);
    return v ? v->name : "OTHER";
}

uint64_t bench_errors_named(const bench_stats *s, const char *name)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value_by_name(&imcore__error_code__descriptor, name);
    return v && v->value > 0 && v->value < BENCH_ERR_SLOTS ? s->errors[v->value] : 0;
}

void bench_stats_init(bench_stats *s)
{
    memset(s, 0, sizeof *s);
    s->conns_min_held = UINT64_MAX;
    bench_hist_init(&s->lat_delivery);
    bench_hist_init(&s->lat_ack);
    bench_hist_init(&s->lat_login);
    bench_hist_init(&s->lat_ping);
}

void bench_stats_merge(bench_stats *d, const bench_stats *s)
{
    if (d->procs == 0 || s->phase < d->phase)
        d->phase = s->phase;
    d->procs += s->procs ? s->procs : 1;
    d->interrupted += s->interrupted;
    d->conns_target += s->conns_target;
    d->conns_held += s->conns_held;
    if (s->conns_min_held != UINT64_MAX) {
        if (d->conns_min_held == UINT64_MAX)
            d->conns_min_held = 0;
        d->conns_min_held += s->conns_min_held;
    }
#define ADD(f) d->f += s->f
    ADD(connects); ADD(logins); ADD(logouts); ADD(disconnects); ADD(setup_failed);
    ADD(sent); ADD(acked); ADD(refused); ADD(delivered); ADD(expected); ADD(ack_delivered);
    ADD(gaps); ADD(stale); ADD(pings); ADD(pongs);
    ADD(w_sent); ADD(w_acked); ADD(w_delivered); ADD(w_logins); ADD(cpu_ns);
#undef ADD
    for (int i = 0; i < BENCH_ERR_SLOTS; i++)
        d->errors[i] += s->errors[i];
    for (int i = 0; i < BENCH_V_COUNT; i++)
        d->violations[i] += s->violations[i];
    if (s->measure_ns > d->measure_ns)
        d->measure_ns = s->measure_ns;
    bench_hist_merge(&d->lat_delivery, &s->lat_delivery);
    bench_hist_merge(&d->lat_ack, &s->lat_ack);
    bench_hist_merge(&d->lat_login, &s->lat_login);
    bench_hist_merge(&d->lat_ping, &s->lat_ping);
}

uint64_t bench_stats_violations(const bench_stats *s)
{
    uint64_t n = 0;
    for (int i = 0; i < BENCH_V_COUNT; i++)
        n += s->violations[i];
    return n;
}

uint64_t bench_stats_errors(const bench_stats *s)
{
    uint64_t n = 0;
    for (int i = 0; i < BENCH_ERR_SLOTS; i++)
        n += s->errors[i];
    return n;
}
