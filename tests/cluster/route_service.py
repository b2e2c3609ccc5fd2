#!/usr/bin/env python3
"""tests/cluster/route_service.py: imcore-route against a real ZooKeeper.

Stand-in nodes (zk_node_tool) register as imcore nodes would. The route
service lists them, names one per user (the same one each time while loads
are even), stops naming a node that was killed within about the session
timeout and one that stopped at once, refuses bad requests with a JSON
error, and refuses a config without ZooKeeper with exit 2."""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "services"))
import services  # noqa: E402

SESSION_MS = 1000
DEADLINE = 20.0


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def get(port, path, method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        body = e.read()
        return e.code, (json.loads(body) if body else None)


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def start_node(procs, tool, zk, root, node_id, addr, load):
    p = procs.start([tool, zk.address, root, str(SESSION_MS), node_id, addr, str(load)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()  # the tool exits (EOF) if it cannot register
    assert line.strip() == "registered", f"{node_id} did not register: {line!r}"
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--route", required=True)
    ap.add_argument("--node-tool", required=True)
    a = ap.parse_args()

    for flag in ("--help", "--version"):
        r = subprocess.run([a.route, flag], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0 and "imcore-route" in r.stdout, (flag, r)

    tmp = tempfile.mkdtemp(prefix="imcore-route-test-")
    procs = Procs()
    route_log = open(os.path.join(tmp, "route.log"), "w+")
    try:
        bad = os.path.join(tmp, "bad.yaml")
        with open(bad, "w") as f:
            f.write("route:\n  port: 0\n")
        r = subprocess.run([a.route, "--config", bad], capture_output=True, text=True, timeout=10)
        assert r.returncode == 2 and "zookeeper.hosts" in r.stderr, r

        with services.ZooKeeper() as zk:
            root = "/imcore-route-test/nodes"
            cfg = os.path.join(tmp, "route.yaml")
            with open(cfg, "w") as f:
                f.write(f"zookeeper:\n  hosts: \"{zk.address}\"\n  root: {root}\n"
                        f"  session_timeout_ms: {SESSION_MS}\nroute:\n  host: 127.0.0.1\n"
                        "  port: 0\n")
            port_file = os.path.join(tmp, "port")
            route = procs.start([a.route, "--config", cfg, "--port-file", port_file],
                                stdout=route_log, stderr=subprocess.STDOUT)
            port = int(wait_until(lambda: os.path.exists(port_file) and open(port_file).read(),
                                  DEADLINE, "the route's port file"))

            st, body = get(port, "/health")
            assert st == 200 and body["status"] == "ok", (st, body)
            st, body = wait_until(lambda: (lambda r: r if r[1] and r[1]["node_list"] else None)(
                get(port, "/ready")), DEADLINE, "a node list (empty)")
            assert st == 503 and body["nodes"] == 0, (st, body)
            st, body = get(port, "/v1/node?user=alice")
            assert st == 503 and "no node" in body["error"], (st, body)

            nodes = {}
            for i in range(1, 4):
                nodes[f"node-{i}"] = start_node(procs, a.node_tool, zk, root, f"node-{i}",
                                                f"127.0.0.1:{7000 + i}", 1000)
            wait_until(lambda: get(port, "/v1/nodes")[1]["count"] == 3, DEADLINE,
                       "three nodes listed")
            st, body = get(port, "/v1/nodes")
            assert [n["id"] for n in body["nodes"]] == ["node-1", "node-2", "node-3"], body
            assert body["nodes"][1]["address"] == "127.0.0.1:7002", body
            assert get(port, "/ready")[0] == 200

            # Each user gets a node, the same one while loads are even.
            users = [f"user{i}" for i in range(60)]
            first = {}
            for u in users:
                st, body = get(port, f"/v1/node?user={u}")
                assert st == 200 and body["node"] in nodes and body["user"] == u, body
                first[u] = body["node"]
            assert len(set(first.values())) == 3, f"all users on one node: {first}"
            for u in users[:10]:
                assert get(port, f"/v1/node?user={u}")[1]["node"] == first[u]

            # Bad requests.
            assert get(port, "/v1/node")[0] == 400
            st, body = get(port, "/v1/node?user=a%20b")
            assert st == 400 and body["error"], body
            assert get(port, "/v1/nope")[0] == 404
            assert get(port, "/v1/nodes", method="POST")[0] == 405

            # A killed node leaves by itself within about the session timeout.
            victim = first[users[0]]
            t0 = time.monotonic()
            nodes[victim].send_signal(signal.SIGKILL)
            nodes[victim].wait()
            wait_until(lambda: get(port, "/v1/nodes")[1]["count"] == 2, DEADLINE,
                       f"{victim} gone after SIGKILL")
            took = time.monotonic() - t0
            print(f"killed node left the route's list after {took * 1000:.0f} ms "
                  f"(session timeout {SESSION_MS} ms)")
            assert took < 3 * SESSION_MS / 1000 + 2, took
            for u in users:
                st, body = get(port, f"/v1/node?user={u}")
                assert st == 200 and body["node"] != victim, (u, body)
                if first[u] != victim:
                    assert body["node"] == first[u], (u, first[u], body)

            # A node that stops cleanly leaves at once.
            other = next(n for n in nodes if n != victim)
            nodes[other].send_signal(signal.SIGTERM)
            assert nodes[other].wait(10) == 0
            wait_until(lambda: get(port, "/v1/nodes")[1]["count"] == 1, 5.0,
                       f"{other} gone after SIGTERM")

            route.send_signal(signal.SIGTERM)
            assert route.wait(15) == 0, "imcore-route did not stop cleanly"
    except Exception:
        route_log.seek(0)
        sys.stderr.write("---- imcore-route log ----\n" + route_log.read())
        raise
    finally:
        procs.stop_all()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
