#!/usr/bin/env python3
"""interfaces/bench/baselines.py: reproduces the figures of docs/performance.md.

Runs each baseline case three times, each time on a fresh server (imcore-server
with the config below, or mosquitto), and prints the median of the accepted
runs. The machine may be shared: before each run the script waits until the
machine is quiet, and it measures the CPU that other processes used during the
run (all CPU time minus the server's and the bench's); a run disturbed by more
than 25% of a core, or one that failed, is repeated (at most 8 tries).

    interfaces/bench/baselines.py --build build [--cases private-closed-imcore ...]
                                  [--out results.jsonl] [--reps 3]

Every run's JSON summary, with the command, the server and the disturbance, is
appended to --out. Python 3 standard library only; Linux only (/proc).
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time

BASE = ("listen: {host: 127.0.0.1, port: 0}\nworkers: 2\nlog_level: warn\n"
        "accounts: {mode: open}\n")
CONFIGS = {
    # The network path: nothing on disk, no per-session rate limit.
    "memory": BASE + "storage: {engine: memory}\nlimits: {messages_per_second: 0}\n",
    # The default, durable store (SQLite, synchronous: full) in a temp dir.
    "sqlite": BASE + "limits: {messages_per_second: 0}\n",
}
MOSQUITTO = ("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
             "max_inflight_messages 0\nmax_queued_messages 0\n")

PRIVATE = ["-w", "private", "-c", "100"]
GROUP = ["-w", "group", "-c", "1000", "-g", "500"]
CASES = {
    "idle-imcore": ("memory", ["-w", "idle", "-c", "19000", "-l", "10000", "-d", "8s"]),
    "idle-mosquitto": ("mosquitto", ["-w", "idle", "-c", "19000", "-l", "10000", "-d", "8s", "-P", "3"]),
    "private-closed-imcore": ("memory", PRIVATE + ["-W", "8", "-d", "10s"]),
    "private-closed-imcore-P2": ("memory", PRIVATE + ["-W", "8", "-d", "10s", "-P", "2"]),
    "private-closed-sqlite": ("sqlite", PRIVATE + ["-W", "8", "-d", "10s"]),
    "private-closed-mosquitto": ("mosquitto", PRIVATE + ["-W", "8", "-d", "10s"]),
    "private-closed-mosquitto-P2": ("mosquitto", PRIVATE + ["-W", "8", "-d", "10s", "-P", "2"]),
    "private-open-imcore-150k": ("memory", PRIVATE + ["-r", "150000", "-d", "10s"]),
    "private-open-imcore-10k": ("memory", PRIVATE + ["-r", "10000", "-d", "10s"]),
    "private-open-mosquitto-10k": ("mosquitto", PRIVATE + ["-r", "10000", "-d", "10s"]),
    "private-open-sqlite-17k": ("sqlite", PRIVATE + ["-r", "17000", "-d", "10s"]),
    "group500-imcore": ("memory", GROUP + ["-d", "10s"]),
    "group500-mosquitto": ("mosquitto", GROUP + ["-d", "10s"]),
    "group500-open-imcore-80": ("memory", GROUP + ["-r", "80", "-d", "10s"]),
    "group500-open-mosquitto-80": ("mosquitto", GROUP + ["-r", "80", "-d", "10s"]),
    "group500-open-imcore-40": ("memory", GROUP + ["-r", "40", "-d", "10s"]),
    "group500-open-mosquitto-40": ("mosquitto", GROUP + ["-r", "40", "-d", "10s"]),
    "storm-imcore": ("memory", ["-w", "login-storm", "-c", "1000", "-d", "10s"]),
    "storm-mosquitto": ("mosquitto", ["-w", "login-storm", "-c", "1000", "-d", "10s"]),
}

# What the median table shows, as paths into the bench's JSON.
FIELDS = ["messages.sent_per_s", "messages.delivered_per_s", "logins.per_s",
          "latency_us.delivery.p50", "latency_us.delivery.p90", "latency_us.delivery.p99",
          "latency_us.delivery.p999", "latency_us.delivery.max", "latency_us.ack.p50",
          "latency_us.ack.p99", "latency_us.login.p50", "latency_us.login.p99",
          "connections.held", "server.rss_start_kb", "server.rss_end_kb",
          "server.rss_per_conn_bytes", "server.cpu_pct", "bench.cpu_pct"]


def cpu_ticks():
    """(busy, total) jiffies of the whole machine."""
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def proc_cpu_s(pid):
    try:
        text = open("/proc/%d/stat" % pid).read()
        f = text[text.rindex(")") + 2:].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return 0.0


def machine_busy_pct(secs=2.0):
    a = cpu_ticks()
    time.sleep(secs)
    b = cpu_ticks()
    return 100.0 * (b[0] - a[0]) / max(1, b[1] - a[1]) * os.cpu_count()


def wait_quiet(limit=15.0, max_wait=900):
    end = time.monotonic() + max_wait
    while time.monotonic() < end:
        busy = machine_busy_pct()
        if busy < limit:
            return busy
    return None


def wait_listening(port, proc, secs=15):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("the server exited (%s)" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server does not listen on %d" % port)


def start_server(kind, tmp, args):
    if kind == "mosquitto":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        cfg = os.path.join(tmp, "mosquitto.conf")
        open(cfg, "w").write(MOSQUITTO % port)
        p = subprocess.Popen([args.mosquitto, "-c", cfg], cwd=tmp,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(port, p)
        return p, port
    cfg = os.path.join(tmp, "imcore.yaml")
    open(cfg, "w").write(CONFIGS[kind])
    port_file = os.path.join(tmp, "port")
    p = subprocess.Popen([args.server, "--config", cfg, "--port-file", port_file], cwd=tmp,
                         stdout=open(os.path.join(tmp, "server.log"), "w"),
                         stderr=subprocess.STDOUT)
    end = time.monotonic() + 15
    while time.monotonic() < end:
        try:
            text = open(port_file).read().strip()
            if text:
                wait_listening(int(text), p)
                return p, int(text)
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("imcore-server wrote no port")


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_once(label, kind, bench_args, args):
    tmp = tempfile.mkdtemp(prefix="imcore-baseline-")
    p = None
    try:
        p, port = start_server(kind, tmp, args)
        time.sleep(0.3)
        proto = ["--protocol", "mqtt"] if kind == "mosquitto" else []
        cmd = [args.bench] + proto + ["-p", str(port), "--server-pid", str(p.pid), "--json", "-q"]
        cmd += bench_args
        t0, m0 = time.monotonic(), cpu_ticks()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        s0 = proc_cpu_s(p.pid)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        s1 = proc_cpu_s(p.pid)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall, m1 = time.monotonic() - t0, cpu_ticks()
    finally:
        if p:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = {"error": (r.stdout + r.stderr)[-2000:]}
    bench_s = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    machine_s = (m1[0] - m0[0]) / os.sysconf("SC_CLK_TCK")
    j.update({"_label": label, "_server": kind, "_rc": r.returncode, "_wall_s": round(wall, 1),
              "_cmd": "imcore-bench " + " ".join(proto + ["-p", "PORT", "--server-pid", "PID",
                                                          "--json", "-q"] + bench_args),
              "_external_pct": round(100.0 * (machine_s - (s1 - s0) - bench_s) / wall, 1)})
    return j


def get(j, path):
    for k in path.split("."):
        j = j.get(k) if isinstance(j, dict) else None
    return j


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build", help="the CMake build directory")
    ap.add_argument("--server", help="imcore-server (default: BUILD/interfaces/server/imcore-server)")
    ap.add_argument("--bench", help="imcore-bench (default: BUILD/interfaces/bench/imcore-bench)")
    ap.add_argument("--mosquitto", default=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="baselines.jsonl")
    args = ap.parse_args()
    args.server = args.server or os.path.join(args.build, "interfaces/server/imcore-server")
    args.bench = args.bench or os.path.join(args.build, "interfaces/bench/imcore-bench")

    for label in args.cases:
        kind, bench_args = CASES[label]
        good = []
        for attempt in range(8):
            if len(good) >= args.reps:
                break
            wait_quiet()
            j = run_once(label, kind, bench_args, args)
            with open(args.out, "a") as f:
                f.write(json.dumps(j) + "\n")
            ok = "error" not in j and j["_rc"] == 0 and j["_external_pct"] < 25
            print("%-28s try %d: %s (rc %s, disturbed %.0f%%)" % (
                label, attempt, "accepted" if ok else "rejected", j["_rc"], j["_external_pct"]),
                flush=True)
            if ok:
                good.append(j)
        if not good:
            print("%s: no accepted run" % label)
            continue
        print("%s (%d runs): %s" % (label, len(good), good[0]["_cmd"]))
        for f in FIELDS:
            vals = [get(j, f) for j in good]
            if all(v in (None, 0) for v in vals):
                continue
            print("    %-30s median %-12s runs %s" % (
                f, statistics.median(v for v in vals if v is not None), vals))


if __name__ == "__main__":
    main()
