/* interfaces/bench/traffic.c: who talks to whom, when they send, and how
 * each delivery is judged.
 *
 * Workloads are laid out over the driver's own connections:
 *   private  conns[0..n) form a ring: i sends to i+1, so each receiver has
 *            exactly one sender and one conversation to check; with --to,
 *            each sends to that service account instead, and the message
 *            it sends back is checked as a delivery to the sender itself;
 *   group    conns are cut into groups of --group-size; the owner (slot 0)
 *            or every member sends, and every other member receives;
 *   mixed    the first half is a private ring, the second half groups.
 *
 * The open loop sends message j of the driver at measure_start + j/rate from
 * sender j mod nsenders, whatever happened to earlier messages, and latency
 * counts from that intended time: a stalled server (or a stalled bench)
 * shows up as latency instead of silently lowering the offered load. The
 * closed loop keeps --window messages in flight per sender and sends the next
 * one when an answer comes back. */
#include "driver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "clock.h"

/* A sender whose unwritten output exceeds this skips its open-loop sends:
 * the bench must not eat all memory when the server stops reading. */
#define MAX_BACKLOG_BYTES (8u << 20)
/* The open loop yields to the event loop after this many sends, so that acks
 * and deliveries are read even when it is far behind its timetable. */
#define OPEN_LOOP_BATCH 4096

/* ---- layout ----------------------------------------------------------------- */

void bench__workload_assign(bench_driver *d)
{
    const bench_opts *o = d->o;
    uint32_t group_first = d->n;
    switch (o->workload) {
    case BENCH_WL_PRIVATE: d->nprivate = d->n; break;
    case BENCH_WL_GROUP: group_first = 0; break;
    case BENCH_WL_MIXED:
        d->nprivate = d->n / 2;
        group_first = d->nprivate;
        break;
    default: break;
    }
    for (uint32_t i = 0; i < d->nprivate; i++) {
        bench_conn *c = &d->conns[i];
        c->role = BENCH_ROLE_PRIVATE;
        c->peer = o->to[0] ? i : (i + 1) % d->nprivate;
        c->sender = true;
    }
    if (group_first < d->n) {
        uint32_t m = d->n - group_first, g = o->group_size;
        uint32_t full = m / g, rest = m % g;
        d->ngroups = full + (rest >= 2 ? 1 : 0); /* one member left over stays idle */
        d->groups = calloc(d->ngroups ? d->ngroups : 1, sizeof *d->groups);
        for (uint32_t k = 0; k < d->ngroups && d->groups; k++) {
            bench_group *gr = &d->groups[k];
            gr->first = group_first + k * g;
            gr->size = k < full ? g : rest;
            gr->nsenders = o->all_senders ? gr->size : 1;
            snprintf(gr->name, sizeof gr->name, "%sg%s-%u-%u", o->prefix, o->run_tag, d->proc, k);
            for (uint32_t s = 0; s < gr->size; s++) {
                bench_conn *c = &d->conns[gr->first + s];
                c->role = BENCH_ROLE_GROUP;
                c->group = k;
                c->slot = s;
                c->sender = o->all_senders || s == 0;
            }
        }
    }
    d->senders = calloc(d->n, sizeof *d->senders);
}

int bench__workload_alloc_checks(bench_driver *d)
{
    if (!d->senders || (d->ngroups && !d->groups))
        return -1;
    for (uint32_t k = 0; k < d->ngroups; k++) {
        bench_group *g = &d->groups[k];
        g->rx = calloc((size_t)g->size * g->nsenders, sizeof *g->rx);
        if (!g->rx)
            return -1;
    }
    return 0;
}

/* ---- setup: groups are created by their owner, then joined ----------------- */

static void group_settled(bench_driver *d)
{
    if (d->setup_pending > 0 && --d->setup_pending == 0 && d->phase == BENCH_PH_SETUP)
        bench__phase_next(d);
}

static void joins_start(bench_driver *d, bench_group *g)
{
    uint32_t asked = 0;
    for (uint32_t s = 1; s < g->size; s++) {
        bench_conn *c = &d->conns[g->first + s];
        if (c->state != BENCH_CS_ONLINE) {
            d->st.setup_failed++;
            continue;
        }
        c->op = BENCH_OP_JOIN;
        c->op_start_ns = bench_now_ns();
        if (d->tp->group_join(c, g->name) != 0) {
            c->op = BENCH_OP_NONE;
            d->st.setup_failed++;
            continue;
        }
        asked++;
    }
    g->created = true;
    g->pending = asked;
    if (asked == 0)
        group_settled(d);
}

void bench__setup_start(bench_driver *d)
{
    d->setup_pending = d->ngroups;
    for (uint32_t k = 0; k < d->ngroups; k++) {
        bench_group *g = &d->groups[k];
        bench_conn *owner = &d->conns[g->first];
        if (owner->state != BENCH_CS_ONLINE) {
            d->st.setup_failed += g->size;
            group_settled(d);
            continue;
        }
        owner->op = BENCH_OP_CREATE;
        owner->op_start_ns = bench_now_ns();
        if (d->tp->group_create(owner, g->name, g->size) != 0) {
            owner->op = BENCH_OP_NONE;
            d->st.setup_failed += g->size;
            group_settled(d);
        }
    }
}

static void setup_answer(bench_conn *c, bool ok)
{
    bench_driver *d = c->d;
    bench_group *g = &d->groups[c->group];
    int op = c->op;
    c->op = BENCH_OP_NONE;
    if (!ok)
        d->st.setup_failed++;
    if (op == BENCH_OP_CREATE) {
        if (!ok) { /* no group: nobody joins */
            d->st.setup_failed += g->size - 1;
            group_settled(d);
            return;
        }
        c->joined = true;
        g->joined = 1;
        joins_start(d, g);
        return;
    }
    c->joined = ok;
    if (ok)
        g->joined++;
    if (g->pending > 0 && --g->pending == 0)
        group_settled(d);
}

void bench_on_ok(bench_conn *c)
{
    if (c->op != BENCH_OP_NONE)
        setup_answer(c, true);
}

void bench_on_error(bench_conn *c, int code)
{
    bench__error(c->d, code);
    if (c->op != BENCH_OP_NONE)
        setup_answer(c, false);
}

/* ---- sending -------------------------------------------------------------- */

static uint32_t fanout(const bench_driver *d, const bench_conn *c)
{
    if (c->role == BENCH_ROLE_PRIVATE)
        return 1;
    uint32_t joined = d->groups[c->group].joined;
    return joined > 0 ? joined - 1 : 0;
}

static bool budget_left(const bench_driver *d)
{
    return d->budget == 0 || d->st.sent < d->budget;
}

/* Sends one message from c due at intended_ns. Returns false when it was
 * skipped (the sender is gone or its backlog is full). */
static bool send_one(bench_driver *d, bench_conn *c, uint64_t intended_ns)
{
    if (c->state != BENCH_CS_ONLINE || !c->tp ||
        d->tp->backlog(c) > MAX_BACKLOG_BYTES) {
        bench__error(d, BENCH_ERR_BACKLOG);
        return false;
    }
    bench_body b = {
        .run = d->o->run_id, .proc = (uint16_t)d->proc, .sender = c->index, .counter = c->counter + 1,
        .intended_ns = intended_ns,
    };
    int rc;
    if (c->role == BENCH_ROLE_PRIVATE) {
        b.kind = BENCH_KIND_PRIVATE;
        b.target = c->peer;
        bench_body_write(d->body_buf, d->o->size, &b);
        const char *to = d->o->to[0] ? d->o->to : d->conns[c->peer].user;
        rc = d->tp->send_private(c, to, d->body_buf, d->o->size, b.counter, intended_ns);
    } else {
        b.kind = BENCH_KIND_GROUP;
        b.target = c->group;
        bench_body_write(d->body_buf, d->o->size, &b);
        rc = d->tp->send_group(c, d->groups[c->group].name, d->body_buf, d->o->size,
                               b.counter, intended_ns);
    }
    if (rc != 0) {
        bench__error(d, BENCH_ERR_BACKLOG);
        return false;
    }
    c->counter++;
    c->inflight++;
    d->inflight++;
    d->st.sent++;
    return true;
}

static void open_loop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    bench_driver *d = arg;
    if (d->phase != BENCH_PH_MEASURE)
        return;
    uint64_t now = bench_now_ns();
    uint64_t end = d->measure_start_ns + d->o->duration_ns;
    double ns_per_msg = 1e9 / d->rate;
    uint64_t due = 0;
    for (int batch = 0;; batch++) {
        if (d->budget && d->next_j >= d->budget) {
            bench__measure_end(d);
            return;
        }
        due = d->measure_start_ns + (uint64_t)((double)d->next_j * ns_per_msg);
        if (due > now || due >= end)
            break;
        if (batch == OPEN_LOOP_BATCH) {
            due = now;
            break;
        }
        bench_conn *c = &d->conns[d->senders[d->next_j % d->nsenders]];
        d->next_j++;
        send_one(d, c, due);
    }
    if (due >= end)
        return; /* the phase timer closes the window */
    struct timeval tv = bench_tv_of_ns(due > now ? due - now : 0);
    evtimer_add(d->send_ev, &tv);
}

static void closed_loop_next(bench_driver *d, bench_conn *c)
{
    if (d->rate > 0 || d->phase != BENCH_PH_MEASURE)
        return;
    if (!budget_left(d)) {
        bench__measure_end(d);
        return;
    }
    send_one(d, c, bench_now_ns());
    if (!budget_left(d))
        bench__measure_end(d);
}

void bench__traffic_start(bench_driver *d)
{
    d->nsenders = 0;
    for (uint32_t i = 0; i < d->n; i++) {
        bench_conn *c = &d->conns[i];
        if (c->sender && c->state == BENCH_CS_ONLINE &&
            (c->role == BENCH_ROLE_PRIVATE || c->joined))
            d->senders[d->nsenders++] = i;
    }
    if (d->nsenders == 0)
        return; /* nothing to do: the summary says no messages were sent */
    if (d->rate > 0) {
        d->send_ev = evtimer_new(d->base, open_loop, d);
        d->next_j = 0;
        open_loop(-1, 0, d);
        return;
    }
    uint64_t now = bench_now_ns();
    for (unsigned w = 0; w < d->o->window; w++)
        for (uint32_t k = 0; k < d->nsenders && budget_left(d); k++)
            send_one(d, &d->conns[d->senders[k]], now);
    if (!budget_left(d))
        bench__measure_end(d);
}

void bench__traffic_stop(bench_driver *d)
{
    if (!d->send_ev)
        return;
    evtimer_del(d->send_ev);
    if (d->rate <= 0 || d->nsenders == 0)
        return;
    /* Messages due before the window closed are sent now, late, with their
     * latency still counted from the timetable. If the bench fell so far
     * behind that even this cannot catch up, the rest are counted as
     * skipped: the offered load was lower than asked, and the summary says
     * so instead of hiding it. */
    uint64_t now = bench_now_ns();
    uint64_t end = d->measure_start_ns + d->o->duration_ns;
    if (now < end)
        end = now; /* stopped early (a signal) */
    double ns_per_msg = 1e9 / d->rate;
    for (int k = 0; k < 4 * OPEN_LOOP_BATCH; k++) {
        uint64_t due = d->measure_start_ns + (uint64_t)((double)d->next_j * ns_per_msg);
        if (due >= end || (d->budget && d->next_j >= d->budget))
            return;
        bench_conn *c = &d->conns[d->senders[d->next_j % d->nsenders]];
        d->next_j++;
        send_one(d, c, due);
    }
    uint64_t want = (uint64_t)((double)(end - d->measure_start_ns) / ns_per_msg) + 1;
    if (d->budget && want > d->budget)
        want = d->budget;
    if (want > d->next_j)
        d->st.errors[BENCH_ERR_BACKLOG] += want - d->next_j;
}

/* ---- answers --------------------------------------------------------------- */

void bench_on_ack(bench_conn *c, uint32_t counter, uint64_t intended_ns, uint64_t seq,
                  uint32_t delivered)
{
    bench_driver *d = c->d;
    if (c->inflight == 0 || counter == 0 || counter > c->counter) {
        bench__error(d, 0); /* an ack for nothing we have in flight */
        return;
    }
    uint64_t now = bench_now_ns();
    c->inflight--;
    d->inflight--;
    d->st.acked++;
    if (now > intended_ns)
        bench_hist_record(&d->st.lat_ack, now - intended_ns);
    d->st.expected += fanout(d, c);
    if (delivered != UINT32_MAX)
        d->st.ack_delivered += delivered;
    /* The server numbers a conversation in the order it accepts messages, and
     * it reads one connection in order: seqs must grow with counters. */
    if (counter > c->ack_counter) {
        if (seq && c->ack_seq && seq <= c->ack_seq)
            d->st.violations[BENCH_V_SEQ_ORDER]++;
        c->ack_counter = counter;
        if (seq)
            c->ack_seq = seq;
    }
    closed_loop_next(d, c);
}

void bench_on_refused(bench_conn *c, int code, uint32_t counter, uint64_t intended_ns)
{
    (void)intended_ns;
    bench_driver *d = c->d;
    bench__error(d, code);
    if (c->inflight == 0 || counter == 0 || counter > c->counter)
        return;
    c->inflight--;
    d->inflight--;
    d->st.refused++;
    closed_loop_next(d, c);
}

static bool same(const char *got, const char *want)
{
    return !got || !*got || strcmp(got, want) == 0; /* "" means the protocol does not say */
}

void bench_on_delivery(bench_conn *c, const bench_delivery *dl)
{
    bench_driver *d = c->d;
    bench_stats *st = &d->st;
    uint64_t now = bench_now_ns();
    bench_body b;
    if (bench_body_read(dl->body, dl->len, &b) != 0) {
        st->violations[BENCH_V_CORRUPT]++;
        return;
    }
    if (b.run != d->o->run_id) { /* an earlier run's, never acked by its receiver */
        st->stale++;
        return;
    }
    if (b.proc != d->proc || b.sender >= d->n || (dl->kind && dl->kind != b.kind)) {
        st->violations[BENCH_V_MISROUTED]++;
        return;
    }
    const bench_conn *s = &d->conns[b.sender];
    bench_seqcheck *chk;
    bool ok;
    if (b.kind == BENCH_KIND_PRIVATE) {
        /* With --to the message comes back from the service account. */
        const char *from = d->o->to[0] ? d->o->to : s->user;
        ok = c->role == BENCH_ROLE_PRIVATE && s->role == BENCH_ROLE_PRIVATE &&
             s->peer == c->index && b.target == c->index && same(dl->to, c->user) &&
             same(dl->from, from);
        chk = &c->rx;
    } else {
        bench_group *g = b.target < d->ngroups ? &d->groups[b.target] : NULL;
        ok = g && c->role == BENCH_ROLE_GROUP && c->joined && c->group == b.target &&
             s->role == BENCH_ROLE_GROUP && s->group == b.target && s != c && s->sender &&
             same(dl->group, g->name) && same(dl->from, s->user);
        chk = ok ? &g->rx[(size_t)c->slot * g->nsenders + (g->nsenders == 1 ? 0 : s->slot)]
                 : NULL;
    }
    if (!ok) {
        st->violations[BENCH_V_MISROUTED]++;
        return;
    }
    uint32_t gap;
    int r = bench_seqcheck_accept(chk, b.counter, &gap);
    if (r == BENCH_SEQ_DUPLICATE) {
        st->violations[BENCH_V_DUPLICATE]++;
        return;
    }
    /* The server's seq orders the whole conversation as this receiver sees
     * it (both directions of a private pair, every sender of a group). */
    bool seq_bad = dl->seq && dl->seq <= c->rx_seq;
    if (dl->seq > c->rx_seq)
        c->rx_seq = dl->seq;
    if (r == BENCH_SEQ_LATE)
        st->violations[BENCH_V_OUT_OF_ORDER]++;
    else if (seq_bad)
        st->violations[BENCH_V_SEQ_ORDER]++;
    if (r == BENCH_SEQ_GAP)
        st->gaps += gap;
    st->delivered++;
    if (now > b.intended_ns)
        bench_hist_record(&st->lat_delivery, now - b.intended_ns);
    else
        bench_hist_record(&st->lat_delivery, 0);
}
