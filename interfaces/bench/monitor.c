/* interfaces/bench/monitor.c: see monitor.h. */
#include "monitor.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"

int bench_proc_sample_read(int pid, bench_proc_sample *s)
{
    memset(s, 0, sizeof *s);
    s->at_ns = bench_now_ns();
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long long v;
        if (sscanf(line, "VmRSS: %llu", &v) == 1)
            s->rss_kb = v;
        else if (sscanf(line, "VmHWM: %llu", &v) == 1)
            s->hwm_kb = v;
        else if (sscanf(line, "Threads: %llu", &v) == 1)
            s->threads = v;
    }
    fclose(f);

    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields are counted
     * from the last ')'. utime and stime are fields 14 and 15. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut, st;
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    s->cpu_ns = (ut + st) * (BENCH_NS_PER_S / (uint64_t)(hz > 0 ? hz : 100));
    s->ok = true;
    return 0;
}

double bench_proc_cpu_pct(const bench_proc_sample *a, const bench_proc_sample *b)
{
    if (!a->ok || !b->ok || b->at_ns <= a->at_ns)
        return -1;
    return 100.0 * (double)(b->cpu_ns - a->cpu_ns) / (double)(b->at_ns - a->at_ns);
}
