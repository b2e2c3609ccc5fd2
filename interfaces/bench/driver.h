/* interfaces/bench/driver.h: one driver process: its connections, its
 * groups, its phases, and the transports it drives them with.
 *
 * A driver runs one libevent loop. It knows the workload (who talks to whom),
 * the schedule (open or closed loop) and the checks; it does not know the
 * wire. The wire is a transport (imcore_client.c, mqtt.c) that fills
 * bench_transport_ops and reports back through the bench_on_* calls below.
 *
 * Rules between the two, which keep every free outside a callback:
 * - A transport calls bench_on_* from its own I/O callbacks. The driver may
 *   send on any connection from there, but never closes one: closing happens
 *   from the driver's own timers.
 * - After bench_on_closed(c) the transport has let go of c (c->tp is NULL);
 *   nothing more comes for it until the driver opens it again.
 *
 * Each driver process is self-contained: its users are <prefix><proc>-<i>,
 * its private ring and its groups are among its own users, so it checks
 * every delivery it receives without asking anyone. */
#ifndef BENCH_DRIVER_H
#define BENCH_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "options.h"
#include "seqcheck.h"
#include "stats.h"

typedef struct bench_conn bench_conn;
typedef struct bench_driver bench_driver;

/* ---- what a transport offers ---------------------------------------- */

typedef struct bench_delivery {
    int kind;              /* BENCH_KIND_PRIVATE or BENCH_KIND_GROUP; 0 unknown */
    const char *from;      /* sender's user id, "" when the protocol has none (MQTT) */
    const char *to;        /* private: receiver's user id as the server says, or "" */
    const char *group;     /* group: the group's name */
    const uint8_t *body;
    size_t len;
    uint64_t seq;          /* server's per-conversation seq, 0 when there is none */
} bench_delivery;

typedef struct bench_transport_ops {
    const char *name;
    /* Per driver. init may keep state in d->tp_state. */
    int (*init)(bench_driver *d);
    void (*fini)(bench_driver *d);
    /* Starts connecting and logging in as c->user. Later comes exactly one of
     * bench_on_login or bench_on_closed. Returns 0, or an errno value when
     * not even a socket could be had (no callback then). */
    int (*open)(bench_conn *c);
    /* Closes at once, with no callback; c->tp becomes NULL. */
    void (*close)(bench_conn *c);
    /* Logs out politely; bench_on_closed follows when the server has closed. */
    int (*logout)(bench_conn *c);
    /* Sends a ping; bench_on_pong(c, now_ns) follows. NULL when the transport
     * pings on its own (MQTT keepalive). */
    int (*ping)(bench_conn *c, uint64_t now_ns);
    /* Sends one message; bench_on_ack or bench_on_refused follows with the
     * same counter and intended_ns. */
    int (*send_private)(bench_conn *c, const char *to, const uint8_t *body, size_t len,
                        uint32_t counter, uint64_t intended_ns);
    int (*send_group)(bench_conn *c, const char *group, const uint8_t *body, size_t len,
                      uint32_t counter, uint64_t intended_ns);
    /* Setup requests: bench_on_ok or bench_on_error follows. */
    int (*group_create)(bench_conn *c, const char *group, uint32_t max_members);
    int (*group_join)(bench_conn *c, const char *group);
    /* Bytes written by the bench but not yet by the kernel. */
    size_t (*backlog)(bench_conn *c);
} bench_transport_ops;

extern const bench_transport_ops bench_imcore_transport;
#ifdef BENCH_HAVE_MQTT
extern const bench_transport_ops bench_mqtt_transport;
#endif

/* ---- what the driver hears ---------------------------------------------- */

void bench_on_login(bench_conn *c, unsigned heartbeat_s);
void bench_on_ok(bench_conn *c);
/* An Error that names no message: the pending request failed, or the server
 * is about to close (code is the wire ErrorCode). */
void bench_on_error(bench_conn *c, int code);
/* delivered: SendAck.delivered, or UINT32_MAX when the protocol has none. */
void bench_on_ack(bench_conn *c, uint32_t counter, uint64_t intended_ns, uint64_t seq,
                  uint32_t delivered);
void bench_on_refused(bench_conn *c, int code, uint32_t counter, uint64_t intended_ns);
void bench_on_delivery(bench_conn *c, const bench_delivery *dl);
void bench_on_pong(bench_conn *c, uint64_t ping_ns);
/* The connection is gone. code: the wire ErrorCode the server gave (already
 * counted by bench_on_error), or BENCH_ERR_CONNECT (never connected), or
 * BENCH_ERR_CLOSED (closed with no reason given, which is the expected end
 * after a logout). */
void bench_on_closed(bench_conn *c, int code);

/* ---- the driver's records ------------------------------------------------ */

enum bench_conn_state {
    BENCH_CS_IDLE,        /* no connection, not queued */
    BENCH_CS_QUEUED,      /* waiting for a login slot (--login-rate) */
    BENCH_CS_BACKOFF,     /* failed; the timer re-queues it */
    BENCH_CS_CONNECTING,  /* connect + login under way; the timer is the timeout */
    BENCH_CS_ONLINE,      /* logged in; the timer is the heartbeat */
    BENCH_CS_LOGGING_OUT, /* login-storm: logout sent; the timer is a timeout */
};

enum bench_role { BENCH_ROLE_NONE, BENCH_ROLE_PRIVATE, BENCH_ROLE_GROUP };
enum bench_op { BENCH_OP_NONE, BENCH_OP_CREATE, BENCH_OP_JOIN };

struct bench_conn {
    bench_driver *d;
    void *tp;               /* the transport's state; NULL when not connected */
    uint32_t index;
    uint8_t state;          /* enum bench_conn_state */
    uint8_t role;           /* enum bench_role */
    uint8_t op;             /* enum bench_op: the setup request pending */
    bool sender;
    bool joined;            /* group: a member for the measured phase */
    uint32_t peer;          /* private: the index it sends to */
    uint32_t group;         /* group: the group's index */
    uint32_t slot;          /* group: its place among the members */
    uint32_t counter;       /* the last conversation counter sent */
    uint32_t inflight;      /* sent, neither acked nor refused */
    uint32_t ack_counter;   /* the highest counter acked, with its seq: */
    uint64_t ack_seq;       /* seqs must grow with counters */
    uint64_t rx_seq;        /* the last server seq received */
    bench_seqcheck rx;      /* private: messages from the one peer that sends here */
    uint64_t op_start_ns;   /* connect start, or setup request start */
    unsigned heartbeat_s;
    struct event timer;
    char user[32];
};

typedef struct bench_group {
    char name[40];
    uint32_t first;         /* members are conns[first .. first + size) */
    uint32_t size;
    uint32_t joined;        /* members ready for the measured phase */
    uint32_t pending;       /* join answers still to come */
    uint32_t nsenders;      /* 1 (the owner, slot 0) or size */
    bool created;
    bench_seqcheck *rx;     /* [receiver slot * nsenders + sender slot] */
} bench_group;

/* Report kinds, in the order a driver sends them. */
enum bench_report_kind {
    BENCH_REP_TICK,        /* every second of the run */
    BENCH_REP_READY,       /* logged in and set up; waiting for go */
    BENCH_REP_MEASURE_END, /* the measured window closed */
    BENCH_REP_FINAL,       /* everything is counted */
};
typedef void (*bench_report_fn)(void *arg, int kind, const bench_stats *st);

struct bench_driver {
    const bench_opts *o;
    unsigned proc;
    uint32_t n;
    bench_conn *conns;
    struct event_base *base;
    const bench_transport_ops *tp;
    void *tp_state;
    uint64_t t0_ns;          /* the run's start, common to all drivers */

    /* workload */
    uint32_t nprivate;       /* conns[0 .. nprivate) form the private ring */
    bench_group *groups;
    uint32_t ngroups;
    uint32_t *senders;       /* indexes of the conns that send */
    uint32_t nsenders;
    double rate;             /* this driver's share of --rate; 0: closed loop */
    uint64_t budget;         /* this driver's share of --messages; 0: none */

    /* phases */
    int phase;
    uint64_t phase_start_ns;
    uint64_t measure_start_ns, measure_end_ns, drain_deadline_ns;
    uint64_t cpu_start_ns;
    bench_stats w0;          /* counters when the window opened */
    bool interrupted;
    bool told_fds;           /* a failed open was logged once */

    /* logins: a queue of conns waiting for a slot, and a token bucket */
    uint32_t *queue;
    uint32_t qhead, qlen;
    double tokens;
    uint64_t tokens_ns;
    uint32_t connecting;     /* conns in BENCH_CS_CONNECTING */
    uint32_t held;           /* conns in BENCH_CS_ONLINE */
    uint32_t setup_pending;

    /* sending */
    uint64_t next_j;         /* open loop: the next message of the timetable */
    uint64_t inflight;       /* over all conns */
    uint32_t closed_next;    /* closed loop: round-robin start */

    struct event *login_ev, *tick_ev, *phase_ev, *send_ev, *ctl_ev, *sigint_ev, *sigterm_ev;
    uint64_t next_tick;
    int ctl_fd;
    bench_report_fn report;
    void *report_arg;
    bench_stats st;

    uint8_t *body_buf;       /* one message body, --size bytes */
    char group_buf[40];
};

/* Runs driver proc with n connections to the end and reports through fn.
 * ctl_fd: -1 to start the measured phase as soon as this driver is ready, or
 * a descriptor on which the parent writes 'G' (go) or 'S' (stop).
 * Returns 0, or 1 if the driver could not start at all (message on stderr). */
int bench_driver_run(const bench_opts *o, unsigned proc, uint32_t n, uint64_t budget,
                     double rate, uint64_t t0_ns, int ctl_fd, bench_report_fn fn, void *arg);

/* ---- shared between driver.c and traffic.c --------------------------------- */

void bench__workload_assign(bench_driver *d);     /* roles, groups, senders */
int bench__workload_alloc_checks(bench_driver *d); /* the receivers' seqcheck tables */
void bench__setup_start(bench_driver *d);         /* group create/join */
void bench__traffic_start(bench_driver *d);       /* the measured window opens */
void bench__traffic_stop(bench_driver *d);
void bench__measure_end(bench_driver *d);         /* driver.c: close the window */
void bench__phase_next(bench_driver *d);          /* driver.c: leave the current phase */
void bench__error(bench_driver *d, int code);     /* counts an error by wire code */
const char *bench__user_name(const bench_driver *d, uint32_t index, char *buf, size_t len);

#endif
