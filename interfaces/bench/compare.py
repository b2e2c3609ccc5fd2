#!/usr/bin/env python3
"""interfaces/bench/compare.py: one change, measured before and after in one run.

Runs imcore-server from two build directories (the build before a change and
the build after it) one after the other, alternating, each run on a fresh
server with the same imcore-bench and the same config, and prints the median
of each case for each build, with every run's figure beside it. On a shared
machine the two builds see the same noise, which a comparison of numbers
taken at different times would not.

    interfaces/bench/compare.py --before ../old/build --after build \\
        [--cases memory-closed sqlite-closed memory-open-10k] [--reps 3] [--out runs.jsonl]

Python 3 standard library only; Linux only.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

BASE = ("listen: {host: 127.0.0.1, port: 0}\nworkers: 2\nlog_level: warn\n"
        "accounts: {mode: open}\nlimits: {messages_per_second: 0}\n")
STORES = {
    "memory": "storage: {engine: memory}\n",
    "sqlite": "storage: {engine: sqlite, path: %(dir)s/imcore.db}\n",
}
PRIVATE = ["-w", "private", "-c", "100"]
CASES = {
    "memory-closed": ("memory", PRIVATE + ["-W", "8", "-d", "5s"]),
    "memory-open-10k": ("memory", PRIVATE + ["-r", "10000", "-d", "5s"]),
    "sqlite-closed": ("sqlite", PRIVATE + ["-W", "8", "-d", "5s"]),
}


def run_once(build, bench, store, args):
    tmp = tempfile.mkdtemp(prefix="imcore-compare-")
    try:
        cfg = os.path.join(tmp, "server.yaml")
        with open(cfg, "w") as f:
            f.write(BASE + STORES[store] % {"dir": tmp}
                    + "plugin_dir: %s\n" % os.path.join(build, "plugins"))
        port_file = os.path.join(tmp, "port")
        server = subprocess.Popen([os.path.join(build, "interfaces", "server", "imcore-server"),
                                   "--config", cfg, "--port-file", port_file],
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while not (os.path.exists(port_file) and os.path.getsize(port_file)):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server of %s did not start" % build)
                time.sleep(0.05)
            with open(port_file) as f:
                port = f.read().strip()
            out = subprocess.run([bench, "-p", port, "-q", "--json", "--server-pid",
                                  str(server.pid)] + args,
                                 capture_output=True, text=True, timeout=120)
            return json.loads(out.stdout)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", required=True, help="the build directory before the change")
    ap.add_argument("--after", default="build", help="the build directory after it")
    ap.add_argument("--bench", help="imcore-bench (default: AFTER/interfaces/bench/imcore-bench)")
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", help="append every run's JSON summary here")
    a = ap.parse_args()
    bench = a.bench or os.path.join(a.after, "interfaces", "bench", "imcore-bench")
    runs = {}
    for case in a.cases:
        store, args = CASES[case]
        for rep in range(a.reps):
            for label, build in (("before", a.before), ("after", a.after)):
                r = run_once(build, bench, store, args)
                runs.setdefault((case, label), []).append(r)
                if a.out:
                    with open(a.out, "a") as f:
                        f.write(json.dumps({"case": case, "build": label, "rep": rep,
                                            "summary": r}) + "\n")
    for (case, label), rs in sorted(runs.items()):
        rate = [r["messages"]["delivered_per_s"] for r in rs]
        lat = [r["latency_us"]["delivery"] for r in rs]
        ok = all(r["ok"] and r["violations"]["total"] == 0 for r in rs)
        print("%-16s %-6s ok=%-5s delivered/s %9.0f  p50 %8.0f us  p99 %8.0f us  "
              "server CPU %5.1f%%  runs %s"
              % (case, label, ok, statistics.median(rate),
                 statistics.median(x["p50"] for x in lat), statistics.median(x["p99"] for x in lat),
                 statistics.median(r["server"]["cpu_pct"] for r in rs),
                 " / ".join("%.0f" % x for x in rate)))


if __name__ == "__main__":
    main()
