/* interfaces/bench/options.h: the command line of imcore-bench.
 *
 * Parsing only: the result is a plain record that every driver process
 * reads and none changes. Checks that need the system (the file limit, a
 * server pid that exists) are main.c's. */
#ifndef BENCH_OPTIONS_H
#define BENCH_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define BENCH_VERSION "0.1.0"

typedef enum bench_workload {
    BENCH_WL_IDLE,
    BENCH_WL_LOGIN_STORM,
    BENCH_WL_PRIVATE,
    BENCH_WL_GROUP,
    BENCH_WL_MIXED,
} bench_workload;

typedef enum bench_protocol {
    BENCH_PROTO_IMCORE,
    BENCH_PROTO_MQTT,
} bench_protocol;

#define BENCH_PREFIX_MAX 8
#define BENCH_MAX_PROCS 64

typedef struct bench_opts {
    bench_workload workload;
    bench_protocol protocol;
    char host[64];
    uint16_t port;
    struct sockaddr_storage server;   /* host:port, resolved and checked to be loopback */
    socklen_t server_len;
    uint32_t connections;             /* over all driver processes */
    double login_rate;                /* logins per second over all processes; 0: no limit */
    unsigned procs;
    unsigned source_addrs;            /* 127.0.0.2 .. 127.0.0.(1+n); 0: let the kernel pick */
    uint64_t duration_ns;             /* the measured window */
    uint64_t messages;                /* 0: bounded by duration only */
    double rate;                      /* messages per second over all; 0: closed loop */
    unsigned window;                  /* closed loop: messages in flight per sender */
    uint32_t size;                    /* body bytes */
    uint32_t group_size;
    bool all_senders;                 /* group: every member sends, else the owner only */
    unsigned heartbeat_s;             /* 0: what LoginAck says */
    uint64_t ramp_timeout_ns;
    uint64_t drain_timeout_ns;
    int server_pid;                   /* 0: none */
    bool json;
    bool quiet;
    char prefix[BENCH_PREFIX_MAX + 1];
    char password[129];               /* "" : the server is in accounts.mode open */
    char to[65];                      /* private: every message goes to this service account,
                                       * which sends it back; "": the ring of connections */
    bool tls;                         /* --tls: imcore over TLS, the certificate checked */
    char ca_file[256];                /* --ca: "" for the system's CAs */
    char servername[254];             /* --servername: "" for the host */
    bool insecure;                    /* --insecure: no certificate check (warned) */
    uint32_t run_id;                  /* random, 24 bits: in every body, and naming groups */
    char run_tag[8];                  /* run_id in hex */
} bench_opts;

/* True for the workloads that send messages. */
bool bench_workload_sends(bench_workload w);
const char *bench_workload_name(bench_workload w);

/* Fills o from argv. Returns 0 to run, 1 when --help or --version was
 * answered on out (exit 0), 2 after a usage error was printed on err
 * (exit 2). */
int bench_opts_parse(int argc, char **argv, bench_opts *o, FILE *out, FILE *err);

#endif
