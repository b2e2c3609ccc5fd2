/* interfaces/bench/driver.c: the life of one driver process.
 *
 * Connections are opened at --login-rate through a queue and a token bucket,
 * held with heartbeats, set up (groups), measured, drained and closed. The
 * phases run in order: ramp, setup, ready, measure, drain, done; each has a
 * deadline, so a driver always ends. What is sent and how deliveries are
 * judged is traffic.c's; the wire is the transport's. */
#include "driver.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "body.h"
#include "clock.h"
#include "im_log.h"

#define MAX_CONNECTING 1024u                      /* logins under way at once */
#define LOGIN_TIMEOUT_NS (10 * BENCH_NS_PER_S)
#define LOGOUT_TIMEOUT_NS (5 * BENCH_NS_PER_S)
#define BACKOFF_NS (500 * BENCH_NS_PER_MS)
#define LOGIN_PUMP_NS (2 * BENCH_NS_PER_MS)
#define DRAIN_POLL_NS (10 * BENCH_NS_PER_MS)

static void enter_phase(bench_driver *d, int phase);
static void finish(bench_driver *d);

static bool is_storm(const bench_driver *d) { return d->o->workload == BENCH_WL_LOGIN_STORM; }

static void arm(struct event *ev, uint64_t delay_ns)
{
    struct timeval tv = bench_tv_of_ns(delay_ns + 999); /* never early */
    evtimer_add(ev, &tv);
}

const char *bench__user_name(const bench_driver *d, uint32_t index, char *buf, size_t len)
{
    snprintf(buf, len, "%s%u-%u", d->o->prefix, d->proc, index);
    return buf;
}

void bench__error(bench_driver *d, int code)
{
    int slot = code;
    if (slot < 0 || slot >= BENCH_ERR_SLOTS)
        slot = 0;
    d->st.errors[slot]++;
}

static void report(bench_driver *d, int kind)
{
    d->st.phase = (uint32_t)d->phase;
    d->st.conns_held = d->held;
    d->report(d->report_arg, kind, &d->st);
}

/* ---- logins ---------------------------------------------------------------- */

static void enqueue(bench_driver *d, bench_conn *c)
{
    c->state = BENCH_CS_QUEUED;
    d->queue[(d->qhead + d->qlen) % d->n] = c->index;
    d->qlen++;
}

/* A connection that failed to log in: retried after a pause while logins
 * are still wanted, else left alone. */
static void after_failure(bench_driver *d, bench_conn *c)
{
    bool retry = d->phase == BENCH_PH_RAMP ||
                 (is_storm(d) && (d->phase == BENCH_PH_MEASURE || d->phase == BENCH_PH_DRAIN));
    if (!retry) {
        c->state = BENCH_CS_IDLE;
        return;
    }
    c->state = BENCH_CS_BACKOFF;
    arm(&c->timer, BACKOFF_NS + (uint64_t)(rand() % 500) * BENCH_NS_PER_MS);
}

static void start_login(bench_driver *d, bench_conn *c)
{
    c->state = BENCH_CS_CONNECTING;
    c->op_start_ns = bench_now_ns();
    d->connecting++;
    d->st.connects++;
    int rc = d->tp->open(c);
    if (rc != 0) {
        d->connecting--;
        bench__error(d, BENCH_ERR_CONNECT);
        if ((rc == EMFILE || rc == ENFILE || rc == EADDRNOTAVAIL) && !d->told_fds) {
            IM_WARN("driver %u: cannot open connection %u: %s", d->proc, c->index, strerror(rc));
            d->told_fds = true;
        }
        after_failure(d, c);
        return;
    }
    arm(&c->timer, LOGIN_TIMEOUT_NS);
}

/* Starts queued logins as far as the token bucket and the cap on logins
 * under way allow. */
static void login_pump(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    bench_driver *d = arg;
    double rate = d->o->login_rate * d->n / d->o->connections;
    if (rate > 0) {
        uint64_t now = bench_now_ns();
        d->tokens += (double)(now - d->tokens_ns) * 1e-9 * rate;
        d->tokens_ns = now;
        double burst = rate * 0.01 > 1 ? rate * 0.01 : 1;
        if (d->tokens > burst)
            d->tokens = burst;
    }
    while (d->qlen > 0 && d->connecting < MAX_CONNECTING && (rate <= 0 || d->tokens >= 1)) {
        bench_conn *c = &d->conns[d->queue[d->qhead]];
        d->qhead = (d->qhead + 1) % d->n;
        d->qlen--;
        if (rate > 0)
            d->tokens -= 1;
        start_login(d, c);
    }
}

static void arm_heartbeat(bench_conn *c, bool first)
{
    if (!c->d->tp->ping || c->heartbeat_s == 0)
        return;
    uint64_t period = (uint64_t)c->heartbeat_s * BENCH_NS_PER_S;
    /* Spread the first pings over a whole period, so that a ramp does not
     * turn into a ping storm one heartbeat later. */
    uint64_t delay = first ? period / 2 + (uint64_t)rand() % (period / 2 + 1) : period;
    arm(&c->timer, delay);
}

static void storm_logout(bench_driver *d, bench_conn *c)
{
    c->state = BENCH_CS_LOGGING_OUT;
    d->held--;
    if (d->tp->logout(c) != 0) {
        d->tp->close(c);
        d->st.logouts++;
        enqueue(d, c);
        return;
    }
    if (c->state == BENCH_CS_LOGGING_OUT) /* transports never close synchronously, but */
        arm(&c->timer, LOGOUT_TIMEOUT_NS);
}

void bench_on_login(bench_conn *c, unsigned heartbeat_s)
{
    bench_driver *d = c->d;
    if (c->state != BENCH_CS_CONNECTING)
        return;
    uint64_t now = bench_now_ns();
    evtimer_del(&c->timer);
    d->connecting--;
    c->state = BENCH_CS_ONLINE;
    d->held++;
    d->st.logins++;
    bench_hist_record(&d->st.lat_login, now - c->op_start_ns);
    c->heartbeat_s = d->o->heartbeat_s ? d->o->heartbeat_s : heartbeat_s;
    c->rx_seq = 0;
    arm_heartbeat(c, true);
    if (is_storm(d) && d->phase == BENCH_PH_MEASURE)
        storm_logout(d, c); /* sends Logout: allowed from a callback */
    else if (d->phase == BENCH_PH_RAMP && d->held == d->n)
        enter_phase(d, BENCH_PH_SETUP);
}

void bench_on_closed(bench_conn *c, int code)
{
    bench_driver *d = c->d;
    evtimer_del(&c->timer);
    switch (c->state) {
    case BENCH_CS_CONNECTING:
        /* A reason the server gave came as an Error and is counted already. */
        d->connecting--;
        if (code == BENCH_ERR_CLOSED || code == BENCH_ERR_CONNECT)
            bench__error(d, BENCH_ERR_CONNECT);
        after_failure(d, c);
        break;
    case BENCH_CS_LOGGING_OUT:
        d->st.logouts++;
        if (d->phase <= BENCH_PH_DRAIN)
            enqueue(d, c);
        else
            c->state = BENCH_CS_IDLE;
        break;
    case BENCH_CS_ONLINE:
        d->held--;
        d->st.disconnects++;
        if (code == BENCH_ERR_CLOSED || code == BENCH_ERR_CONNECT || code == 0)
            bench__error(d, BENCH_ERR_CLOSED);
        /* Its messages in flight can no longer be acked: count them now, so
         * the drain does not wait for them. */
        d->inflight -= c->inflight;
        d->st.violations[BENCH_V_UNACKED] += c->inflight;
        c->inflight = 0;
        if (d->phase == BENCH_PH_MEASURE && !is_storm(d) && d->held < d->st.conns_min_held)
            d->st.conns_min_held = d->held;
        if (d->phase == BENCH_PH_RAMP || (is_storm(d) && d->phase <= BENCH_PH_DRAIN))
            enqueue(d, c);
        else
            c->state = BENCH_CS_IDLE;
        break;
    default:
        break;
    }
}

void bench_on_pong(bench_conn *c, uint64_t ping_ns)
{
    uint64_t now = bench_now_ns();
    c->d->st.pongs++;
    if (ping_ns && ping_ns <= now)
        bench_hist_record(&c->d->st.lat_ping, now - ping_ns);
}

/* One timer per connection; what it means depends on the state. */
static void conn_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    bench_conn *c = arg;
    bench_driver *d = c->d;
    switch (c->state) {
    case BENCH_CS_CONNECTING:
        d->tp->close(c);
        d->connecting--;
        bench__error(d, BENCH_ERR_TIMEOUT);
        after_failure(d, c);
        break;
    case BENCH_CS_ONLINE:
        if (d->tp->ping(c, bench_now_ns()) == 0)
            d->st.pings++;
        arm_heartbeat(c, false);
        break;
    case BENCH_CS_LOGGING_OUT: /* the server never closed after Logout */
        d->tp->close(c);
        bench__error(d, BENCH_ERR_TIMEOUT);
        d->st.logouts++;
        enqueue(d, c);
        break;
    case BENCH_CS_BACKOFF:
        enqueue(d, c);
        break;
    default:
        break;
    }
}

/* ---- phases ------------------------------------------------------------- */

static void snapshot_window(bench_driver *d)
{
    bench_stats *s = &d->st;
    s->measure_ns = d->measure_end_ns - d->measure_start_ns;
    s->w_sent = s->sent - d->w0.sent;
    s->w_acked = s->acked - d->w0.acked;
    s->w_delivered = s->delivered - d->w0.delivered;
    s->w_logins = s->logins - d->w0.logins;
    s->cpu_ns = bench_cpu_ns() - d->cpu_start_ns;
}

void bench__measure_end(bench_driver *d)
{
    if (d->phase != BENCH_PH_MEASURE)
        return;
    bench__traffic_stop(d);
    d->measure_end_ns = bench_now_ns();
    snapshot_window(d);
    report(d, BENCH_REP_MEASURE_END);
    enter_phase(d, BENCH_PH_DRAIN);
}

static bool drained(const bench_driver *d)
{
    if (d->inflight > 0 || d->st.delivered < d->st.expected)
        return false;
    if (is_storm(d) && (d->qlen > 0 || d->connecting > 0 || d->held < d->n))
        return false;
    return true;
}

/* Gives up on logins still under way, so that nothing changes the set of
 * connections after the ramp (login-storm excepted). */
static void cancel_logins(bench_driver *d)
{
    for (uint32_t i = 0; i < d->n; i++) {
        bench_conn *c = &d->conns[i];
        if (c->state == BENCH_CS_CONNECTING) {
            d->tp->close(c);
            d->connecting--;
            bench__error(d, BENCH_ERR_TIMEOUT);
        }
        if (c->state != BENCH_CS_ONLINE && c->state != BENCH_CS_LOGGING_OUT) {
            evtimer_del(&c->timer);
            c->state = BENCH_CS_IDLE;
        }
    }
    d->qlen = 0;
}

static void phase_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    bench_driver *d = arg;
    switch (d->phase) {
    case BENCH_PH_RAMP:
        enter_phase(d, BENCH_PH_SETUP);
        break;
    case BENCH_PH_SETUP:
        enter_phase(d, BENCH_PH_READY);
        break;
    case BENCH_PH_MEASURE:
        bench__measure_end(d);
        break;
    case BENCH_PH_DRAIN:
        if (drained(d) || bench_now_ns() >= d->drain_deadline_ns)
            finish(d);
        else
            arm(d->phase_ev, DRAIN_POLL_NS);
        break;
    default:
        break;
    }
}

void bench__phase_next(bench_driver *d)
{
    enter_phase(d, d->phase + 1);
}

static void enter_phase(bench_driver *d, int phase)
{
    const bench_opts *o = d->o;
    if (phase <= d->phase)
        return;
    evtimer_del(d->phase_ev);
    d->phase = phase;
    d->phase_start_ns = bench_now_ns();
    switch (phase) {
    case BENCH_PH_SETUP:
        if (!is_storm(d))
            cancel_logins(d);
        if (d->held == 0) { /* nothing to measure: say so now */
            cancel_logins(d);
            finish(d);
            return;
        }
        if (d->ngroups == 0) {
            enter_phase(d, BENCH_PH_READY);
            return;
        }
        arm(d->phase_ev, o->ramp_timeout_ns);
        bench__setup_start(d);
        break;
    case BENCH_PH_READY:
        report(d, BENCH_REP_READY);
        if (d->ctl_fd < 0)
            enter_phase(d, BENCH_PH_MEASURE);
        break;
    case BENCH_PH_MEASURE:
        d->measure_start_ns = d->phase_start_ns;
        d->w0 = d->st;
        d->cpu_start_ns = bench_cpu_ns();
        d->st.conns_min_held = d->held;
        arm(d->phase_ev, o->duration_ns);
        if (is_storm(d)) {
            for (uint32_t i = 0; i < d->n; i++)
                if (d->conns[i].state == BENCH_CS_ONLINE)
                    storm_logout(d, &d->conns[i]);
        } else {
            bench__traffic_start(d);
        }
        break;
    case BENCH_PH_DRAIN:
        d->drain_deadline_ns = d->phase_start_ns + o->drain_timeout_ns;
        arm(d->phase_ev, 0);
        break;
    default:
        break;
    }
}

/* Counts what never came, reports, and leaves the loop. */
static void finish(bench_driver *d)
{
    if (d->phase == BENCH_PH_DONE)
        return;
    if (d->phase == BENCH_PH_MEASURE) {
        bench__traffic_stop(d);
        d->measure_end_ns = bench_now_ns();
        snapshot_window(d);
    }
    d->phase = BENCH_PH_DONE;
    evtimer_del(d->phase_ev);
    d->st.violations[BENCH_V_UNACKED] += d->inflight;
    d->inflight = 0;
    if (d->st.expected > d->st.delivered)
        d->st.violations[BENCH_V_LOST] += d->st.expected - d->st.delivered;
    d->st.interrupted = d->interrupted;
    report(d, BENCH_REP_FINAL);
    event_base_loopexit(d->base, NULL);
}

/* ---- ticks, signals, the parent -------------------------------------------- */

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    bench_driver *d = arg;
    report(d, BENCH_REP_TICK);
    uint64_t now = bench_now_ns();
    d->next_tick += BENCH_NS_PER_S; /* the timer may fire a hair early */
    while (d->next_tick <= now)
        d->next_tick += BENCH_NS_PER_S;
    arm(d->tick_ev, d->next_tick - now);
}

static void stop_now(bench_driver *d)
{
    d->interrupted = true;
    if (d->phase == BENCH_PH_MEASURE)
        bench__measure_end(d);
    else
        finish(d);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig, (void)what;
    bench_driver *d = arg;
    if (d->interrupted) /* a second signal: stop waiting for the drain */
        finish(d);
    else
        stop_now(d);
}

static void on_ctl(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    bench_driver *d = arg;
    char ch;
    ssize_t r = read(fd, &ch, 1);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (r <= 0) { /* the parent is gone: nobody to report to */
        event_del(d->ctl_ev);
        d->interrupted = true;
        finish(d);
        return;
    }
    if (ch == 'G' && d->phase == BENCH_PH_READY)
        enter_phase(d, BENCH_PH_MEASURE);
    else if (ch == 'S' && !d->interrupted) /* a terminal's SIGINT may have come first */
        stop_now(d);
}

/* ---- the run -------------------------------------------------------------- */

static const bench_transport_ops *transport_for(bench_protocol p)
{
#ifdef BENCH_HAVE_MQTT
    if (p == BENCH_PROTO_MQTT)
        return &bench_mqtt_transport;
#endif
    return p == BENCH_PROTO_IMCORE ? &bench_imcore_transport : NULL;
}

int bench_driver_run(const bench_opts *o, unsigned proc, uint32_t n, uint64_t budget,
                     double rate, uint64_t t0_ns, int ctl_fd, bench_report_fn fn, void *arg)
{
    int rc = 1;
    bench_driver *d = calloc(1, sizeof *d);
    struct event_config *cfg = event_config_new();
    if (!d || !cfg)
        goto out;
    d->o = o;
    d->proc = proc;
    d->n = n;
    d->budget = budget;
    d->rate = rate;
    d->t0_ns = t0_ns;
    d->ctl_fd = ctl_fd;
    d->report = fn;
    d->report_arg = arg;
    d->phase = BENCH_PH_RAMP;
    srand((unsigned)(t0_ns ^ (proc * 2654435761u)));
    bench_stats_init(&d->st);
    d->st.procs = 1;
    d->st.conns_target = n;

    d->tp = transport_for(o->protocol);
    if (!d->tp) {
        IM_ERROR("this build has no MQTT support (libmosquitto was not found)");
        goto out;
    }
    /* Precise timers: the open loop sends on a timetable with microsecond
     * intentions, and epoll's millisecond timeouts would add up to a
     * millisecond of latency that the server did not cause. */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER | EVENT_BASE_FLAG_NOLOCK);
    d->base = event_base_new_with_config(cfg);
    d->conns = calloc(n, sizeof *d->conns);
    d->queue = calloc(n, sizeof *d->queue);
    d->body_buf = calloc(1, o->size);
    if (!d->base || !d->conns || !d->queue || !d->body_buf) {
        IM_ERROR("driver %u: out of memory for %u connections", proc, n);
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        bench_conn *c = &d->conns[i];
        c->d = d;
        c->index = i;
        bench__user_name(d, i, c->user, sizeof c->user);
        evtimer_assign(&c->timer, d->base, conn_timer, c);
    }
    bench__workload_assign(d);
    if (bench__workload_alloc_checks(d) != 0) {
        IM_ERROR("driver %u: out of memory for the order checks", proc);
        goto out;
    }
    if (d->tp->init(d) != 0)
        goto out;

    d->login_ev = event_new(d->base, -1, EV_PERSIST, login_pump, d);
    d->tick_ev = evtimer_new(d->base, tick, d);
    d->phase_ev = evtimer_new(d->base, phase_timer, d);
    d->sigint_ev = evsignal_new(d->base, SIGINT, on_signal, d);
    d->sigterm_ev = evsignal_new(d->base, SIGTERM, on_signal, d);
    if (ctl_fd >= 0) {
        d->ctl_ev = event_new(d->base, ctl_fd, EV_READ | EV_PERSIST, on_ctl, d);
        event_add(d->ctl_ev, NULL);
    }
    struct timeval pump = bench_tv_of_ns(LOGIN_PUMP_NS);
    event_add(d->login_ev, &pump);
    event_add(d->sigint_ev, NULL);
    event_add(d->sigterm_ev, NULL);
    uint64_t now = bench_now_ns();
    d->next_tick = t0_ns + BENCH_NS_PER_S;
    while (d->next_tick <= now)
        d->next_tick += BENCH_NS_PER_S;
    arm(d->tick_ev, d->next_tick - now);
    arm(d->phase_ev, o->ramp_timeout_ns);
    d->tokens_ns = now;
    d->tokens = 1;
    for (uint32_t i = 0; i < n; i++)
        enqueue(d, &d->conns[i]);

    event_base_dispatch(d->base);
    if (d->phase != BENCH_PH_DONE) { /* the loop ran dry: should not happen */
        d->interrupted = true;
        finish(d);
    }
    rc = 0;

    for (uint32_t i = 0; i < n; i++) {
        bench_conn *c = &d->conns[i];
        evtimer_del(&c->timer);
        if (c->tp)
            d->tp->close(c);
    }
    d->tp->fini(d);
out:
    if (d) {
        if (d->login_ev) event_free(d->login_ev);
        if (d->tick_ev) event_free(d->tick_ev);
        if (d->phase_ev) event_free(d->phase_ev);
        if (d->send_ev) event_free(d->send_ev);
        if (d->ctl_ev) event_free(d->ctl_ev);
        if (d->sigint_ev) event_free(d->sigint_ev);
        if (d->sigterm_ev) event_free(d->sigterm_ev);
        for (uint32_t i = 0; i < d->ngroups; i++)
            free(d->groups[i].rx);
        free(d->groups);
        free(d->senders);
        free(d->conns);
        free(d->queue);
        free(d->body_buf);
        if (d->base)
            event_base_free(d->base);
        free(d);
    }
    if (cfg)
        event_config_free(cfg);
    return rc;
}
