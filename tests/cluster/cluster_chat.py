#!/usr/bin/env python3
"""cluster_chat: three imcore-server nodes with `cluster: redis`, one
ZooKeeper, one Redis and one imcore-route, all real processes.

- six users spread over the nodes (each asks the route service which node
  to use); every pair exchanges private messages both ways;
- a group with members on every node: each message reaches each member once,
  in the order of its seq;
- login policy across nodes: bob logging in on another node replaces the
  first session (replace), or is refused (reject, a second cluster);
- Redis restarted without its data: the nodes recover by themselves;
- Redis down: a message for another node is stored and acked, and reaches
  the receiver from the store at its next login on the storing node;
- a node killed with SIGKILL leaves the route within the session timeout,
  and its users reconnect through the route to another node and chat on;
- a node stopped cleanly leaves the list at once;
- bad cluster settings stop a node at start (exit 2, FILE:LINE).

The route service's path comes in IMCORE_ROUTE (or --route before the
harness's own options)."""
import json
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "services"))
import services  # noqa: E402
from imcore_harness import (Process, TestFailure, check, login_body, main, to_yaml,  # noqa: E402
                            wait_until)

SESSION_MS = 1500
STAMP = r"^\[\d\d:\d\d:\d\d\] "
ROUTE = os.environ.get("IMCORE_ROUTE", "")
if len(sys.argv) > 2 and sys.argv[1] == "--route":
    ROUTE = os.path.abspath(sys.argv[2])
    del sys.argv[1:3]


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        body = e.read()
        return e.code, (json.loads(body) if body else None)


class Cluster:
    """The services, the nodes and the route service of one test."""

    def __init__(self, h, zk, redis, policy="replace", root="/imcore/nodes"):
        self.h, self.zk, self.redis, self.policy, self.root = h, zk, redis, policy, root
        self.nodes = {}
        cfg = h.write("route-%s.yaml" % policy, to_yaml({
            "zookeeper": {"hosts": zk.address, "root": root, "session_timeout_ms": SESSION_MS},
            "route": {"host": "127.0.0.1", "port": 0, "policy": "least-loaded"},
        }))
        port_file = os.path.join(h.tmp, "route-%s.port" % policy)
        self.route = Process(h, "route-" + policy, [ROUTE, "--config", cfg, "--port-file",
                                                     port_file], stdin=False)
        self.route_port = int(wait_until(
            lambda: os.path.exists(port_file) and open(port_file).read().strip(), 10,
            "imcore-route's port file"))

    def start_node(self, node_id):
        srv = self.h.server(
            node_id, node_id=node_id, cluster="redis",
            storage={"engine": "sqlite", "path": os.path.join(self.h.tmp, node_id + ".db")},
            session={"heartbeat_s": 5, "idle_timeout_s": 15, "login_policy": self.policy},
            zookeeper={"hosts": self.zk.address, "root": self.root,
                       "session_timeout_ms": SESSION_MS},
            cluster_options={"redis": {"host": "127.0.0.1", "port": self.redis.port}})
        srv.err.expect(r"cluster: node %s .* at 127\.0\.0\.1:%d" % (node_id, srv.port))
        self.nodes[node_id] = srv
        return srv

    def listed(self):
        st, body = http_get(self.route_port, "/v1/nodes")
        return sorted(n["id"] for n in body["nodes"]) if st == 200 else []

    def node_for(self, user):
        st, body = http_get(self.route_port, "/v1/node?user=" + user)
        check(st == 200, "the route service named no node for %s: %r" % (user, body))
        return body["node"], int(body["address"].rsplit(":", 1)[1])



def wait_olu(cli, n, timeout=15):
    """cli's node counts n users online (its presence map)."""
    deadline = time.monotonic() + timeout
    while True:
        cli.send(":olu")
        m = cli.expect(r"^\* (\d+) online$")
        if int(m.group(1)) == n:
            return
        if time.monotonic() > deadline:
            raise TestFailure("%s: %s online, not %d" % (cli.name, m.group(1), n))
        time.sleep(0.05)


def expect_all(cli, patterns, timeout=10):
    """Every pattern matches a line of cli's output, in any order."""
    wait_until(lambda: all(cli.out.matching(p) for p in patterns), timeout,
               "%s to print %r" % (cli.name, patterns))


def bad_configs(h):
    """Bad cluster settings stop the server at start: exit 2, FILE:LINE."""
    cases = [
        ({"cluster_options": {"redis": {"port": 0}}}, r":\d+: cluster_options\.redis\.port: "),
        ({"cluster_options": {"advertise": "nowhere"}}, r":\d+: cluster_options\.advertise: "),
        ({"cluster_options": {"colour": "blue"}}, r":\d+: cluster_options\.colour: unknown"),
        ({"cluster_options": {"redis": {"password_file": "/nonexistent/pw"}}},
         r":\d+: cluster_options\.redis\.password_file: cannot open"),
        ({"zookeeper": {"hosts": ""}}, r":\d+: .*zookeeper\.hosts"),
    ]
    for i, (over, pattern) in enumerate(cases):
        cfg = {"listen": {"host": "127.0.0.1", "port": 0}, "storage": {"engine": "memory"},
               "accounts": {"mode": "open"}, "cluster": "redis",
               "zookeeper": {"hosts": "127.0.0.1:1"}}
        cfg.update(over)
        path = h.write("bad-%d.yaml" % i, to_yaml(cfg))
        rc, _, err = h.run([h.server_path, "--config", path], timeout=10)
        check(rc == 2 and re.search(re.escape(path) + pattern, err),
              "bad config %r: exit %d, %r" % (over, rc, err))


def test(h):
    if not ROUTE or not os.access(ROUTE, os.X_OK):
        raise TestFailure("imcore-route not given (IMCORE_ROUTE or --route)")
    bad_configs(h)
    with services.ZooKeeper() as zk, services.Redis() as redis:
        c = Cluster(h, zk, redis)
        for i in (1, 2, 3):
            c.start_node("node-%d" % i)
        wait_until(lambda: c.listed() == ["node-1", "node-2", "node-3"], 15,
                   "three nodes in the route service's list")

        # Six users, placed by the route service (least-loaded, counting
        # what it hands out: two on each node).
        users = ["alice", "bob", "carol", "dave", "erin", "frank"]
        home, port_of = {}, {}
        for u in users:
            node, port = c.node_for(u)
            check(c.nodes[node].port == port, "route: %s at port %d, not %d"
                  % (node, port, c.nodes[node].port))
            home[u], port_of[u] = node, port
        check(len(set(home.values())) == 3, "users not spread over the nodes: %r" % home)

        # A group with members on every node. Groups live on the node they
        # were created on (docs/cluster.md): everyone joins there first.
        owner = "alice"
        gport = port_of[owner]
        for u in users:
            j = h.cli(gport, u, name=u + "-join")
            j.send(":create room" if u == owner else ":join room")
            j.expect(r"^\* (created|joined) room$")
            j.close_stdin()
            j.wait_exit()

        clis = {u: h.cli(port_of[u], u, args=["--show-acks"]) for u in users}
        for u in ("alice", "bob", "carol"):
            wait_olu(clis[u], len(users))

        # Every pair talks both ways.
        for u in users:
            for v in users:
                if u != v:
                    clis[u].send("@%s hi %s from %s" % (v, v, u))
        for v in users:
            expect_all(clis[v], [STAMP + r"%s \u2192 you: hi %s from %s$" % (u, v, u)
                                 for u in users if u != v])
        for u in users:  # the acks of those, so that the next ones read are the group's
            for _ in range(len(users) - 1):
                clis[u].expect(r"^\* sent \S+ seq=\d+ delivered=1$")
        for v in users:
            got = clis[v].out.matching(r"\u2192 you: hi ")
            check(len(got) == len(users) - 1, "%s got %d private messages, not %d: %r"
                  % (v, len(got), len(users) - 1, got))

        # The group: one copy per node, each member gets each message once,
        # in seq order.
        members = [u for u in users if u != owner]
        for i in range(1, 11):
            clis[owner].send("#room g%d" % i)
        seqs = []
        for i in range(1, 11):
            m = clis[owner].expect(r"^\* sent \S+ seq=(\d+) delivered=(\d+)$")
            seqs.append(int(m.group(1)))
            check(int(m.group(2)) == len(members), "group message delivered to %s of %d"
                  % (m.group(2), len(members)))
        check(seqs == sorted(seqs) and len(set(seqs)) == 10, "sender's seqs: %r" % seqs)
        for u in members:
            clis[u].expect(STAMP + r"%s @ room: g10$" % owner)
            got = [re.search(r"g(\d+)$", line).group(1)
                   for line in clis[u].out.matching(r"%s @ room: g\d+$" % owner)]
            check(got == [str(i) for i in range(1, 11)], "%s (on %s) got %r"
                  % (u, home[u], got))

        # Redis restarted, without its data: every node reconnects, writes
        # its routes again and reads the others'; its inbox's consumer group
        # is made again. A login after it is seen on every node, and
        # messages cross nodes again.
        redis.restart()
        for srv in c.nodes.values():
            wait_until(lambda: len(srv.err.matching(r"writing this node's routes")) >= 2, 20,
                       "%s to write its routes again" % srv.name)
        gnode = next(n for n in sorted(c.nodes) if n != home["alice"])
        gina = h.cli(c.nodes[gnode].port, "gina", args=["--show-acks"])
        wait_olu(clis["alice"], len(users) + 1)
        clis["alice"].send("@gina after the restart")
        gina.expect(STAMP + r"alice \u2192 you: after the restart$")
        gina.send("@alice got it")
        clis["alice"].expect(STAMP + r"gina \u2192 you: got it$")
        gina.stop()
        wait_olu(clis["alice"], len(users))

        # Redis down: a message to a user on another node cannot take the
        # fast path; it is stored all the same (acked, delivered=0), and
        # reaches the receiver from the store at its next login on the node
        # that stored it (each node has its own store: docs/cluster.md).
        anode, bnode = c.nodes[home["alice"]], c.nodes[home["bob"]]
        check(anode is not bnode, "alice and bob on one node")
        redis.stop()
        wait_until(lambda: anode.err.matching(r"redis: lost "), 10, "node to see Redis go")
        clis["alice"].send("@bob while redis is down")
        clis["alice"].expect(r"^\* sent \S+ seq=\d+ delivered=0$")
        redis.start()
        for srv in c.nodes.values():
            wait_until(lambda: len(srv.err.matching(r"writing this node's routes")) >= 3, 20,
                       "%s to write its routes again" % srv.name)
        check(not clis["bob"].out.matching(r"while redis is down"),
              "bob got the message while Redis was down")
        clis["bob"].stop()
        wait_olu(clis["alice"], len(users) - 1)
        clis["bob"] = h.cli(anode.port, "bob", name="bob-at-alices", args=["--show-acks"])
        clis["bob"].expect(STAMP + r"alice \u2192 you: while redis is down$")
        home["bob"] = home["alice"]

        # Replace across nodes: bob logs in on another node; his first
        # session is closed by its own node, and messages find the new one.
        other = next(n for n in sorted(c.nodes) if n != home["bob"])
        bob2 = h.cli(c.nodes[other].port, "bob", name="bob-elsewhere")
        clis["bob"].expect(r"^! SESSION_REPLACED")
        check(clis["bob"].wait_exit() == 1, "the replaced client did not exit 1")
        wait_olu(clis["alice"], len(users))
        clis["alice"].send("@bob where are you")
        bob2.expect(STAMP + r"alice \u2192 you: where are you$")
        clis["bob"], home["bob"] = bob2, other

        # A node killed: it leaves the route's list within the session
        # timeout; its users come back through the route elsewhere.
        victim = home["carol"]
        stranded = [u for u in users if home[u] == victim]
        t0 = time.monotonic()
        c.nodes[victim].signal(signal.SIGKILL)
        c.nodes[victim].wait_exit()
        wait_until(lambda: victim not in c.listed(), SESSION_MS / 1000 * 4,
                   "%s to leave the route's list" % victim)
        left_after = time.monotonic() - t0
        for u in stranded:
            clis[u].stop()
            node, port = c.node_for(u)
            check(node != victim, "the route still names %s" % victim)
            clis[u] = h.cli(port, u, name=u + "-back", args=["--show-acks"])
            home[u] = node
        survivor = next(u for u in users if u not in stranded)
        wait_olu(clis[survivor], len(users))
        for u in stranded:
            clis[u].send("@%s back from %s" % (survivor, u))
            clis[survivor].expect(STAMP + r"%s \u2192 you: back from %s$" % (u, u))
            clis[survivor].send("@%s welcome %s" % (u, u))
            clis[u].expect(STAMP + r"%s \u2192 you: welcome %s$" % (survivor, u))
        print("a killed node left the list after %.2f s (session timeout %d ms)"
              % (left_after, SESSION_MS))
        for cli in clis.values():
            cli.stop()
        for srv in c.nodes.values():
            if srv.running():
                check(srv.terminate() == 0, "%s did not stop cleanly" % srv.name)
            bad = srv.err.matching(r"stream entry .* skipped|refused by Redis")
            check(not bad, "%s: %r" % (srv.name, bad))

    # Reject across nodes: a second cluster, on fresh services.
    with services.ZooKeeper() as zk, services.Redis() as redis:
        c = Cluster(h, zk, redis, policy="reject")
        n1, n2 = c.start_node("r-1"), c.start_node("r-2")
        wait_until(lambda: c.listed() == ["r-1", "r-2"], 15, "two nodes listed")
        bob = h.cli(n1, "bob", name="bob-r1")
        carol = h.cli(n2, "carol", name="carol-r2")
        wait_olu(carol, 2)
        raw = h.raw(n2, "bob-r2")
        rid = raw.request("LOGIN", login_body("bob"))
        f = raw.recv_frame()
        check(f.type == "ERROR" and f.request_id == rid and f.error_code == "ALREADY_ONLINE",
              "a second bob on r-2 got %r" % f)
        carol.send("@bob still you")
        bob.expect(STAMP + r"carol \u2192 you: still you$")
        # A clean stop leaves the list at once, not after the session timeout.
        t0 = time.monotonic()
        check(n2.terminate() == 0, "r-2 did not stop cleanly")
        wait_until(lambda: c.listed() == ["r-1"], 10, "r-2 to leave the list")
        gone = time.monotonic() - t0
        check(gone < SESSION_MS / 1000 / 2, "a stopped node left the list after %.2f s" % gone)
        check(n1.terminate() == 0, "r-1 did not stop cleanly")


if __name__ == "__main__":
    main(test)
