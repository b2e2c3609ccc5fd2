/* interfaces/bench/options.c: parsing and checking the command line.
 *
 * Every check that can be made from the text alone is made here, so that a
 * mistake is exit 2 with a sentence before any connection is opened. */
#include "options.h"
#include "im_tls_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "body.h"
#include "clock.h"

static const char *const workload_names[] = { "idle", "login-storm", "private", "group", "mixed" };

const char *bench_workload_name(bench_workload w)
{
    return (unsigned)w < sizeof workload_names / sizeof workload_names[0] ? workload_names[w] : "?";
}

bool bench_workload_sends(bench_workload w)
{
    return w == BENCH_WL_PRIVATE || w == BENCH_WL_GROUP || w == BENCH_WL_MIXED;
}

static void usage(FILE *f)
{
    fputs(
"Usage: imcore-bench [OPTION]...\n"
"Load generator for imcore-server (and, with --protocol mqtt, for an MQTT broker),\n"
"on this machine only. Every run ends by itself and checks every delivery.\n"
"\n"
"Workload:\n"
"  -w, --workload W        idle | login-storm | private | group | mixed (default private)\n"
"  -c, --connections N     connections over all driver processes (default 100)\n"
"  -d, --duration T        measured window, e.g. 10s, 500ms, 2m (default 10s;\n"
"                          with --messages the default is a 300s cap)\n"
"  -m, --messages M        stop after M messages in all (private, group, mixed)\n"
"  -r, --rate R            open loop: R messages/s in all, on a fixed timetable;\n"
"                          latency counts from the intended send time\n"
"                          (default: closed loop, as fast as acks come back)\n"
"  -W, --window K          closed loop: messages in flight per sender (default 1)\n"
"  -s, --size B            message body bytes, at least 36 (default 64)\n"
"  -g, --group-size G      members per group (default 10)\n"
"      --senders one|all   group: the owner sends, or every member (default one)\n"
"      --to USER           private: every connection sends to USER, a plugin's service\n"
"                          account that sends each message back (plugins/bench_echo);\n"
"                          the reply is the delivery checked and timed\n"
"      --heartbeat S       ping every S seconds (default: what the server's LoginAck says;\n"
"                          MQTT: the keepalive, default 30)\n"
"\n"
"Connections:\n"
"  -H, --host ADDR         server address: 127.0.0.0/8 or ::1 only (default 127.0.0.1)\n"
"  -p, --port N            server port (default 7000; 1883 with --protocol mqtt)\n"
"      --protocol P        imcore | mqtt (default imcore)\n"
"  -l, --login-rate R      logins per second in all, 0 for no limit (default 5000;\n"
"                          login-storm: no limit)\n"
"  -P, --procs P           driver processes, each with its own event loop (default 1)\n"
"      --source-addrs K    spread connections over 127.0.0.2 .. 127.0.0.(K+1)\n"
"                          (default: one address per 10000 connections, per 2000 for\n"
"                          mqtt; login-storm 4, or 64 for mqtt; 0: the kernel's choice)\n"
"      --prefix S          user names are S<proc>-<index> (default b)\n"
"      --password P        for a server in accounts.mode password: log every user in\n"
"                          with P, registering it first when the server says NOT_FOUND\n"
"                          (default: none, for accounts.mode open)\n"
"      --tls               imcore over TLS; the server's certificate is checked against\n"
"                          the system's CAs and must name the host (or --servername)\n"
"      --ca FILE           trust the CAs in FILE (PEM) instead of the system's\n"
"      --servername NAME   the name the server's certificate must carry\n"
"      --insecure          with --tls, do not check the certificate (warns)\n"
"      --ramp-timeout T    give up logging everyone in after T (default 10s + twice the\n"
"                          time --login-rate needs)\n"
"      --drain-timeout T   after sending stops, wait at most T for acks and deliveries\n"
"                          (default 5s)\n"
"\n"
"Report:\n"
"      --server-pid PID    report the server's RSS and CPU from /proc/PID\n"
"      --json              print the summary as one JSON object on stdout\n"
"  -q, --quiet             no progress line every second (on stderr)\n"
"  -h, --help              show this help and exit\n"
"  -V, --version           show the version and exit\n"
"\n"
"Exit status: 0 success; 1 runtime failure (a correctness violation, a connection\n"
"not held, no progress); 2 bad usage. See docs/bench.md.\n",
          f);
}

/* "10", "10s", "250ms", "2m", "1.5s" -> ns. */
static int parse_duration(const char *s, uint64_t *ns)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v > 0) || !isfinite(v))
        return -1;
    double mul = 1e9;
    if (*end == '\0' || strcmp(end, "s") == 0)
        mul = 1e9;
    else if (strcmp(end, "ms") == 0)
        mul = 1e6;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mul = 60e9;
    else
        return -1;
    double r = v * mul;
    if (r < 1e6 || r > 3600e9) /* 1 ms .. 1 hour: every run is bounded */
        return -1;
    *ns = (uint64_t)r;
    return 0;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s == '-' || *s == '\0')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_rate(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v) || v < 0 || v > 1e8)
        return -1;
    *out = v;
    return 0;
}

/* Accepts only loopback: this tool opens thousands of connections and must
 * never be pointed at someone else's machine. */
static int resolve_loopback(bench_opts *o)
{
    const char *h = strcmp(o->host, "localhost") == 0 ? "127.0.0.1" : o->host;
    memset(&o->server, 0, sizeof o->server);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&o->server;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&o->server;
    if (inet_pton(AF_INET, h, &v4->sin_addr) == 1) {
        if ((ntohl(v4->sin_addr.s_addr) >> 24) != 127)
            return -1;
        v4->sin_family = AF_INET;
        v4->sin_port = htons(o->port);
        o->server_len = sizeof *v4;
        return 0;
    }
    if (inet_pton(AF_INET6, h, &v6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr))
            return -1;
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(o->port);
        o->server_len = sizeof *v6;
        return 0;
    }
    return -1;
}

/* A user id the server takes: 1..64 of letters, digits, _ . - */
static bool user_ok(const char *u)
{
    size_t n = strlen(u);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = u[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return false;
    }
    return true;
}

static bool prefix_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > BENCH_PREFIX_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && !(i > 0 && ch == '_'))
            return false;
    }
    return true;
}

enum {
    OPT_SENDERS = 256, OPT_HEARTBEAT, OPT_PROTOCOL, OPT_SOURCE_ADDRS, OPT_PREFIX,
    OPT_RAMP_TIMEOUT, OPT_DRAIN_TIMEOUT, OPT_SERVER_PID, OPT_JSON, OPT_PASSWORD, OPT_TO,
    OPT_TLS, OPT_CA, OPT_SERVERNAME, OPT_INSECURE,
};

static const struct option long_opts[] = {
    { "workload", required_argument, NULL, 'w' },
    { "connections", required_argument, NULL, 'c' },
    { "duration", required_argument, NULL, 'd' },
    { "messages", required_argument, NULL, 'm' },
    { "rate", required_argument, NULL, 'r' },
    { "window", required_argument, NULL, 'W' },
    { "size", required_argument, NULL, 's' },
    { "group-size", required_argument, NULL, 'g' },
    { "senders", required_argument, NULL, OPT_SENDERS },
    { "to", required_argument, NULL, OPT_TO },
    { "heartbeat", required_argument, NULL, OPT_HEARTBEAT },
    { "host", required_argument, NULL, 'H' },
    { "port", required_argument, NULL, 'p' },
    { "protocol", required_argument, NULL, OPT_PROTOCOL },
    { "login-rate", required_argument, NULL, 'l' },
    { "procs", required_argument, NULL, 'P' },
    { "source-addrs", required_argument, NULL, OPT_SOURCE_ADDRS },
    { "prefix", required_argument, NULL, OPT_PREFIX },
    { "password", required_argument, NULL, OPT_PASSWORD },
    { "tls", no_argument, NULL, OPT_TLS },
    { "ca", required_argument, NULL, OPT_CA },
    { "servername", required_argument, NULL, OPT_SERVERNAME },
    { "insecure", no_argument, NULL, OPT_INSECURE },
    { "ramp-timeout", required_argument, NULL, OPT_RAMP_TIMEOUT },
    { "drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT },
    { "server-pid", required_argument, NULL, OPT_SERVER_PID },
    { "json", no_argument, NULL, OPT_JSON },
    { "quiet", no_argument, NULL, 'q' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

#define BAD(...)                                              \
    do {                                                      \
        fprintf(err, "imcore-bench: " __VA_ARGS__);           \
        fputs("\nTry 'imcore-bench --help'.\n", err);         \
        return 2;                                             \
    } while (0)

int bench_opts_parse(int argc, char **argv, bench_opts *o, FILE *out, FILE *err)
{
    memset(o, 0, sizeof *o);
    o->workload = BENCH_WL_PRIVATE;
    o->protocol = BENCH_PROTO_IMCORE;
    snprintf(o->host, sizeof o->host, "127.0.0.1");
    o->connections = 100;
    o->login_rate = 5000;
    o->procs = 1;
    o->duration_ns = 10 * BENCH_NS_PER_S;
    o->window = 1;
    o->size = 64;
    o->group_size = 10;
    o->drain_timeout_ns = 5 * BENCH_NS_PER_S;
    snprintf(o->prefix, sizeof o->prefix, "b");

    bool port_set = false, duration_set = false, rate_set = false, window_set = false;
    bool source_set = false, ramp_set = false, senders_set = false, group_size_set = false;
    bool login_rate_set = false;
    long source_addrs = 0;
    uint64_t u;
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":w:c:d:m:r:W:s:g:H:p:l:P:qhV", long_opts, NULL)) != -1) {
        switch (ch) {
        case 'w': {
            bool found = false;
            for (unsigned i = 0; i < sizeof workload_names / sizeof workload_names[0]; i++)
                if (strcmp(optarg, workload_names[i]) == 0) {
                    o->workload = (bench_workload)i;
                    found = true;
                }
            if (!found)
                BAD("unknown workload '%s' (idle, login-storm, private, group, mixed)", optarg);
            break;
        }
        case 'c':
            if (parse_u64(optarg, 1, 1000000, &u))
                BAD("--connections wants an integer 1..1000000, not '%s'", optarg);
            o->connections = (uint32_t)u;
            break;
        case 'd':
            if (parse_duration(optarg, &o->duration_ns))
                BAD("--duration wants a time between 1ms and 1h such as 10s or 500ms, not '%s'", optarg);
            duration_set = true;
            break;
        case 'm':
            if (parse_u64(optarg, 1, UINT64_MAX / 2, &o->messages))
                BAD("--messages wants a positive integer, not '%s'", optarg);
            break;
        case 'r':
            if (parse_rate(optarg, &o->rate) || o->rate <= 0)
                BAD("--rate wants messages per second above 0, not '%s'", optarg);
            rate_set = true;
            break;
        case 'W':
            if (parse_u64(optarg, 1, 65536, &u))
                BAD("--window wants an integer 1..65536, not '%s'", optarg);
            o->window = (unsigned)u;
            window_set = true;
            break;
        case 's':
            if (parse_u64(optarg, BENCH_BODY_MIN, 16u << 20, &u))
                BAD("--size wants bytes %u..%u, not '%s'", BENCH_BODY_MIN, 16u << 20, optarg);
            o->size = (uint32_t)u;
            break;
        case 'g':
            if (parse_u64(optarg, 2, 100000, &u))
                BAD("--group-size wants an integer 2..100000, not '%s'", optarg);
            o->group_size = (uint32_t)u;
            group_size_set = true;
            break;
        case OPT_SENDERS:
            if (strcmp(optarg, "one") == 0)
                o->all_senders = false;
            else if (strcmp(optarg, "all") == 0)
                o->all_senders = true;
            else
                BAD("--senders wants one or all, not '%s'", optarg);
            senders_set = true;
            break;
        case OPT_TO:
            if (!user_ok(optarg))
                BAD("--to wants a user id (1..64 letters, digits, _ . -), not '%s'", optarg);
            snprintf(o->to, sizeof o->to, "%s", optarg);
            break;
        case OPT_HEARTBEAT:
            if (parse_u64(optarg, 1, 3600, &u))
                BAD("--heartbeat wants seconds 1..3600, not '%s'", optarg);
            o->heartbeat_s = (unsigned)u;
            break;
        case 'H':
            if (strlen(optarg) >= sizeof o->host)
                BAD("--host '%s' is too long", optarg);
            snprintf(o->host, sizeof o->host, "%s", optarg);
            break;
        case 'p':
            if (parse_u64(optarg, 1, 65535, &u))
                BAD("--port wants 1..65535, not '%s'", optarg);
            o->port = (uint16_t)u;
            port_set = true;
            break;
        case OPT_PROTOCOL:
            if (strcmp(optarg, "imcore") == 0)
                o->protocol = BENCH_PROTO_IMCORE;
            else if (strcmp(optarg, "mqtt") == 0)
                o->protocol = BENCH_PROTO_MQTT;
            else
                BAD("--protocol wants imcore or mqtt, not '%s'", optarg);
            break;
        case 'l':
            login_rate_set = true;
            if (parse_rate(optarg, &o->login_rate))
                BAD("--login-rate wants logins per second (0: no limit), not '%s'", optarg);
            break;
        case 'P':
            if (parse_u64(optarg, 1, BENCH_MAX_PROCS, &u))
                BAD("--procs wants 1..%d, not '%s'", BENCH_MAX_PROCS, optarg);
            o->procs = (unsigned)u;
            break;
        case OPT_SOURCE_ADDRS:
            if (parse_u64(optarg, 0, 254, &u))
                BAD("--source-addrs wants 0..254, not '%s'", optarg);
            source_addrs = (long)u;
            source_set = true;
            break;
        case OPT_PREFIX:
            if (!prefix_ok(optarg))
                BAD("--prefix wants 1..%d letters, digits or _ (not first), not '%s'",
                    BENCH_PREFIX_MAX, optarg);
            snprintf(o->prefix, sizeof o->prefix, "%s", optarg);
            break;
        case OPT_PASSWORD:
            if (strlen(optarg) < 8 || strlen(optarg) >= sizeof o->password)
                BAD("--password wants 8..%zu bytes", sizeof o->password - 1);
            snprintf(o->password, sizeof o->password, "%s", optarg);
            break;
        case OPT_RAMP_TIMEOUT:
            if (parse_duration(optarg, &o->ramp_timeout_ns))
                BAD("--ramp-timeout wants a time such as 30s, not '%s'", optarg);
            ramp_set = true;
            break;
        case OPT_DRAIN_TIMEOUT:
            if (parse_duration(optarg, &o->drain_timeout_ns))
                BAD("--drain-timeout wants a time such as 5s, not '%s'", optarg);
            break;
        case OPT_SERVER_PID:
            if (parse_u64(optarg, 1, 1u << 30, &u))
                BAD("--server-pid wants a process id, not '%s'", optarg);
            o->server_pid = (int)u;
            break;
        case OPT_JSON: o->json = true; break;
        case OPT_TLS: o->tls = true; break;
        case OPT_INSECURE: o->insecure = true; break;
        case OPT_CA:
            if (strlen(optarg) >= sizeof o->ca_file)
                BAD("--ca: a path of at most %zu bytes", sizeof o->ca_file - 1);
            snprintf(o->ca_file, sizeof o->ca_file, "%s", optarg);
            break;
        case OPT_SERVERNAME:
            if (!optarg[0] || strlen(optarg) >= sizeof o->servername)
                BAD("--servername: 1 to %zu bytes", sizeof o->servername - 1);
            snprintf(o->servername, sizeof o->servername, "%s", optarg);
            break;
        case 'q': o->quiet = true; break;
        case 'h': usage(out); return 1;
        case 'V': fprintf(out, "imcore-bench %s\n", BENCH_VERSION); return 1;
        case ':': BAD("option '%s' needs a value", argv[optind - 1]);
        default: BAD("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        BAD("unexpected argument '%s'", argv[optind]);

    if (!port_set)
        o->port = o->protocol == BENCH_PROTO_MQTT ? 1883 : 7000;
    if (resolve_loopback(o))
        BAD("--host '%s' is not a loopback address (127.0.0.0/8 or ::1): "
            "this tool only loads this machine", o->host);

    bool sends = bench_workload_sends(o->workload);
    if (!sends && (rate_set || o->messages || window_set))
        BAD("--rate, --messages and --window apply to private, group and mixed, not %s",
            bench_workload_name(o->workload));
    if (rate_set && window_set)
        BAD("--window is for the closed loop; with --rate the loop is open");
    if ((senders_set || group_size_set) && o->workload != BENCH_WL_GROUP &&
        o->workload != BENCH_WL_MIXED)
        BAD("--group-size and --senders apply to group and mixed");
    if (o->to[0] && o->workload != BENCH_WL_PRIVATE)
        BAD("--to applies to private");
    if (o->to[0] && o->protocol != BENCH_PROTO_IMCORE)
        BAD("--to needs an imcore server: it talks to a plugin's service account");
    if (o->procs > o->connections)
        BAD("--procs %u is more than --connections %u", o->procs, o->connections);

    /* Each driver process runs its conversations among its own users, so
     * each must have enough of them. */
    uint32_t per_proc = o->connections / o->procs;
    if (o->workload == BENCH_WL_PRIVATE && per_proc < 2 && !o->to[0])
        BAD("private needs at least 2 connections per driver process");
    if (o->workload == BENCH_WL_GROUP && per_proc < o->group_size)
        BAD("group needs at least --group-size (%u) connections per driver process, has %u",
            o->group_size, per_proc);
    if (o->workload == BENCH_WL_MIXED && (per_proc / 2 < 2 || per_proc - per_proc / 2 < o->group_size))
        BAD("mixed gives half the connections to private and half to groups: it needs at "
            "least 2*--group-size (%u) connections per driver process, has %u",
            2 * o->group_size, per_proc);
    if (!o->tls && (o->ca_file[0] || o->servername[0] || o->insecure))
        BAD("--ca, --servername and --insecure need --tls");
    if (o->insecure)
        fprintf(err, "imcore-bench: %s\n", IM_TLS_INSECURE_WARNING);
    if (o->tls && o->protocol == BENCH_PROTO_MQTT)
        BAD("--tls is for imcore");
    if (o->protocol == BENCH_PROTO_MQTT && o->password[0])
        BAD("--password is for imcore; the MQTT side connects anonymously");
    if (o->protocol == BENCH_PROTO_MQTT && o->heartbeat_s && o->heartbeat_s < 5)
        BAD("--heartbeat for MQTT is the keepalive and must be at least 5 s");

    if (o->server.ss_family == AF_INET6) {
        if (source_set && source_addrs > 0)
            BAD("--source-addrs needs an IPv4 --host: ::1 is the only IPv6 loopback address");
        o->source_addrs = 0;
    } else if (source_set) {
        o->source_addrs = (unsigned)source_addrs;
    } else {
        o->source_addrs = (o->connections + 9999) / 10000;
        if (o->workload == BENCH_WL_LOGIN_STORM && o->source_addrs < 4)
            o->source_addrs = 4; /* churn leaves TIME_WAIT tuples behind */
        /* libmosquitto binds without IP_BIND_ADDRESS_NO_PORT: each client
         * holds a port of its address exclusively, TIME_WAIT included, so a
         * few runs in a row exhaust an address long before 28,000. */
        if (o->protocol == BENCH_PROTO_MQTT && o->source_addrs < (o->connections + 1999) / 2000)
            o->source_addrs = (o->connections + 1999) / 2000;
        /* An MQTT login storm burns a port per login for a minute (the
         * client closes first): thousands of logins a second need dozens of
         * addresses. */
        if (o->protocol == BENCH_PROTO_MQTT && o->workload == BENCH_WL_LOGIN_STORM)
            o->source_addrs = 64;
        if (o->source_addrs > 254)
            o->source_addrs = 254;
    }

    /* A login storm measures how fast the server takes logins: no cap unless
     * one is asked for. */
    if (o->workload == BENCH_WL_LOGIN_STORM && !login_rate_set)
        o->login_rate = 0;
    if (o->messages && !duration_set)
        o->duration_ns = 300 * BENCH_NS_PER_S;
    if (!ramp_set) {
        double need = o->login_rate > 0 ? o->connections / o->login_rate : 0;
        o->ramp_timeout_ns = (uint64_t)((10.0 + 2 * need) * 1e9);
    }
    unsigned seed = (unsigned)(getpid() ^ (unsigned)bench_now_ns() ^ (unsigned)time(NULL));
    o->run_id = ((unsigned)rand_r(&seed) ^ ((unsigned)rand_r(&seed) << 12)) & 0xffffffu;
    snprintf(o->run_tag, sizeof o->run_tag, "%06x", o->run_id);
    return 0;
}
