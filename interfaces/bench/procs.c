/* interfaces/bench/procs.c: see procs.h. */
#include "procs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "driver.h"
#include "im_log.h"

#define MSG_MAGIC 0x484e4542u /* "BENH" */

typedef struct msg_hdr {
    uint32_t magic;
    uint32_t kind;
    uint32_t proc;
    uint32_t size;
} msg_hdr;

uint32_t bench_share_conns(const bench_opts *o, unsigned proc)
{
    return o->connections / o->procs + (proc < o->connections % o->procs ? 1 : 0);
}

/* Splits total in proportion to the connections, without losing a unit. */
uint64_t bench_share_u64(const bench_opts *o, unsigned proc, uint64_t total)
{
    uint64_t before = 0;
    for (unsigned p = 0; p < proc; p++)
        before += bench_share_conns(o, p);
    uint64_t upto = before + bench_share_conns(o, proc);
    /* floor(total * k / N) without overflow: total = q*N + r, r*k < 2^40. */
    uint64_t q = total / o->connections, r = total % o->connections;
    uint64_t a = q * before + r * before / o->connections;
    uint64_t b = q * upto + r * upto / o->connections;
    return b - a;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

struct child_sink {
    int fd;
    unsigned proc;
};

static void child_report(void *arg, int kind, const bench_stats *st)
{
    struct child_sink *s = arg;
    msg_hdr h = { MSG_MAGIC, (uint32_t)kind, s->proc, (uint32_t)sizeof *st };
    if (s->fd >= 0 && (write_all(s->fd, &h, sizeof h) != 0 || write_all(s->fd, st, sizeof *st) != 0)) {
        close(s->fd); /* the parent is gone; the driver notices on its ctl pipe */
        s->fd = -1;
    }
}

static volatile sig_atomic_t stop_requested;
static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

int bench_procs_run(const bench_opts *o, bench_agg *a, uint64_t t0_ns)
{
    unsigned np = o->procs;
    int *rep = calloc(np, sizeof *rep), *ctl = calloc(np, sizeof *ctl);
    pid_t *pids = calloc(np, sizeof *pids);
    bench_stats *buf = malloc(sizeof *buf);
    struct pollfd *pfd = calloc(np, sizeof *pfd);
    int rc = 1;
    if (!rep || !ctl || !pids || !buf || !pfd)
        goto out;
    for (unsigned p = 0; p < np; p++)
        rep[p] = ctl[p] = -1;

    fflush(stdout);
    fflush(stderr);
    unsigned started = 0;
    for (unsigned p = 0; p < np; p++) {
        int up[2], down[2];
        if (pipe2(up, O_CLOEXEC) != 0)
            break;
        if (pipe2(down, O_CLOEXEC) != 0) {
            close(up[0]);
            close(up[1]);
            break;
        }
        pid_t pid = fork();
        if (pid < 0) {
            close(up[0]); close(up[1]); close(down[0]); close(down[1]);
            break;
        }
        if (pid == 0) {
            /* The child keeps only its own two ends: the parent's ends of the
             * other children's pipes would keep those children from seeing
             * the parent go away. */
            for (unsigned q = 0; q < p; q++) {
                close(rep[q]);
                close(ctl[q]);
            }
            close(up[0]);
            close(down[1]);
            char name[24];
            snprintf(name, sizeof name, "driver-%u", p);
            im_log_set_thread_name(name);
            struct child_sink sink = { up[1], p };
            int r = bench_driver_run(o, p, bench_share_conns(o, p),
                                     bench_share_u64(o, p, o->messages),
                                     o->rate * bench_share_conns(o, p) / o->connections, t0_ns,
                                     down[0], child_report, &sink);
            _exit(r);
        }
        close(up[1]);
        close(down[0]);
        rep[p] = up[0];
        ctl[p] = down[1];
        pids[p] = pid;
        started++;
    }
    if (started < np) {
        IM_ERROR("could not start driver process %u: %s", started, strerror(errno));
        for (unsigned p = 0; p < started; p++)
            kill(pids[p], SIGTERM);
        goto reap;
    }

    /* The drivers handle SIGINT themselves (a terminal sends it to all);
     * the parent passes a stop on to them, once. */
    struct sigaction sa = { .sa_handler = on_stop };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    unsigned alive = np;
    bool go_sent = false, stop_sent = false;
    uint64_t next_tick = t0_ns + BENCH_NS_PER_S;
    while (alive > 0) {
        uint64_t now = bench_now_ns();
        int timeout = next_tick > now ? (int)((next_tick - now) / BENCH_NS_PER_MS) + 1 : 0;
        for (unsigned p = 0; p < np; p++) {
            pfd[p].fd = rep[p];
            pfd[p].events = POLLIN;
            pfd[p].revents = 0;
        }
        int n = poll(pfd, np, timeout);
        if (n < 0 && errno != EINTR)
            break;
        if (stop_requested && !stop_sent) {
            for (unsigned p = 0; p < np; p++)
                if (ctl[p] >= 0)
                    (void)!write(ctl[p], "S", 1);
            stop_sent = true;
        }
        for (unsigned p = 0; n > 0 && p < np; p++) {
            if (rep[p] < 0 || !(pfd[p].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            msg_hdr h;
            if (read_all(rep[p], &h, sizeof h) != 0 || h.magic != MSG_MAGIC ||
                h.size != sizeof *buf || read_all(rep[p], buf, sizeof *buf) != 0) {
                if (a->kind[p] < BENCH_REP_FINAL)
                    a->failed[p] = true;
                close(rep[p]);
                rep[p] = -1;
                alive--;
                continue;
            }
            bench_agg_update(a, p, (int)h.kind, buf);
            if (h.kind == BENCH_REP_FINAL) {
                close(rep[p]);
                rep[p] = -1;
                alive--;
            }
        }
        if (!go_sent && bench_agg_all(a, BENCH_REP_READY)) {
            for (unsigned p = 0; p < np; p++)
                if (ctl[p] >= 0)
                    (void)!write(ctl[p], "G", 1);
            go_sent = true;
        }
        now = bench_now_ns();
        if (now >= next_tick) {
            if (alive > 0)
                bench_agg_progress(a, stderr);
            while (next_tick <= now)
                next_tick += BENCH_NS_PER_S;
        }
    }
    rc = 0;
reap:
    for (unsigned p = 0; p < np; p++) {
        if (ctl[p] >= 0)
            close(ctl[p]);
        if (rep[p] >= 0)
            close(rep[p]);
    }
    for (unsigned p = 0; p < started; p++) {
        int status;
        while (waitpid(pids[p], &status, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            if (WIFSIGNALED(status))
                IM_ERROR("driver process %u (pid %d) died of signal %d", p, (int)pids[p],
                         WTERMSIG(status));
            if (a->kind[p] < BENCH_REP_FINAL)
                a->failed[p] = true;
        }
    }
out:
    free(rep);
    free(ctl);
    free(pids);
    free(buf);
    free(pfd);
    return rc;
}
