#!/usr/bin/env python3
"""tests/bench/bench_smoke.py: one short, bounded run of imcore-bench against a
real server, asserting correctness under a little load and never speed.

Starts imcore-server (or, for the mqtt cases, Debian's mosquitto) on an
ephemeral port with a temporary config, runs one workload for about three
seconds with a few hundred connections, and checks the exit status and the
JSON summary: zero violations, every connection held through the window,
progress made. The server is stopped by its pid whatever happens.

Exit status: 0 pass, 1 fail, 77 skip (no MQTT support or no broker).
Python 3 standard library only.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77

# name -> (protocol, bench arguments, what the JSON must also show)
CASES = {
    # Pings every second against a 3 s idle timeout: the connections survive
    # the 4 s window only if heartbeats work.
    "idle": ("imcore", ["-w", "idle", "-c", "300", "-d", "4s"], "pings"),
    "login-storm": ("imcore", ["-w", "login-storm", "-c", "200", "-d", "3s"], "logins"),
    "private-closed": ("imcore", ["-w", "private", "-c", "300", "-d", "3s", "-W", "4"], "messages"),
    "private-open": ("imcore", ["-w", "private", "-c", "300", "-d", "3s", "-r", "3000"], "messages"),
    "group": ("imcore", ["-w", "group", "-c", "300", "-g", "30", "-d", "3s"], "messages"),
    "group-all": ("imcore", ["-w", "group", "-c", "300", "-g", "10", "--senders", "all",
                             "-d", "3s", "-r", "2000"], "messages"),
    # The same on the in-memory store: every member's deliveries must come
    # in seq order whichever storage engine numbers them.
    "group-all-memory": ("imcore", ["-w", "group", "-c", "300", "-g", "10", "--senders", "all",
                                    "-d", "3s", "-r", "2000"], "messages"),
    # Bounded by --messages: it must stop by itself long before the cap.
    "mixed": ("imcore", ["-w", "mixed", "-c", "300", "-g", "10", "-m", "6000", "-d", "60s"],
              "budget"),
    "procs": ("imcore", ["-w", "private", "-c", "300", "-P", "2", "-d", "3s"], "messages"),
    # Through a plugin: every message goes to the service account of
    # plugins/bench_echo, which sends it back; the reply is the delivery.
    "service": ("imcore", ["-w", "private", "--to", "echo", "-c", "100", "-d", "3s", "-W", "2"],
                "messages"),
    # accounts.mode password: every user registers (NOT_FOUND, then
    # create_account) and logs in with the password.
    "password": ("imcore", ["-w", "private", "-c", "50", "-d", "2s", "--password", "smoke-pass-1"],
                 "messages"),
    # accounts.mode password without --password: the run fails, and says why.
    "password-missing": ("imcore", ["-w", "private", "-c", "10", "-d", "1s",
                                    "--ramp-timeout", "3s"], "hint"),
    # A server that limits each session's send rate: the run passes, and
    # its summary says the limit, not the server, set the pace.
    "rate-limited": ("imcore", ["-w", "private", "-c", "10", "-d", "2s", "-W", "4"], "note"),
    # --tls against the server's tls listener (a CA made here with the
    # openssl command line, pinned with --ca); without --ca the system's
    # CAs do not know it: every connect fails, and the first says why.
    "private-tls": ("imcore", ["-w", "private", "-c", "100", "-d", "3s", "-W", "4", "--tls"],
                    "messages"),
    "tls-untrusted": ("imcore", ["-w", "private", "-c", "4", "-d", "1s", "--ramp-timeout", "3s",
                                 "--tls"], "untrusted"),
    "mqtt-private": ("mqtt", ["-w", "private", "-c", "200", "-d", "3s"], "messages"),
    "mqtt-group": ("mqtt", ["-w", "group", "-c", "200", "-g", "10", "--senders", "all",
                            "-d", "3s", "-r", "1000"], "messages"),
}

# SQLite storage (the default, in the temporary directory) unless the case
# ends in -memory, no per-session rate limit (the bench sends as fast as it
# can) unless the case is about it, and logins without passwords unless the
# case gives one.
SERVER_CONFIG = """\
listen: %s
workers: 2
log_level: warn
limits:
  messages_per_second: %s
session:
  heartbeat_s: 1
  idle_timeout_s: 3
accounts:
  mode: %s
  password_hash: min
storage:
  engine: %s
%s"""

# The cases that talk to a plugin's service account load its plugin.
PLUGINS = {"service": "plugins:\n  - name: bench_echo\n"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, deadline):
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def make_tls(tmp):
    """A CA and a certificate for 127.0.0.1 and localhost in tmp: the
    listen value of a tls listener, and the CA's path."""
    def openssl(*args):
        subprocess.run(["openssl"] + list(args), cwd=tmp, check=True, capture_output=True,
                       timeout=30)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=bench smoke CA")
    openssl("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost")
    with open(os.path.join(tmp, "ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext")
    listen = ("[{transport: tls, host: 127.0.0.1, port: 0, cert: %s, key: %s}]"
              % (os.path.join(tmp, "srv.pem"), os.path.join(tmp, "srv.key")))
    return listen, os.path.join(tmp, "ca.pem")


def start_imcore(server, tmp, accounts, engine, plugins="", rate=0,
                 listen="{host: 127.0.0.1, port: 0}"):
    cfg = os.path.join(tmp, "imcore.yaml")
    port_file = os.path.join(tmp, "port")
    with open(cfg, "w") as f:
        f.write(SERVER_CONFIG % (listen, rate, accounts, engine, plugins))
    log = open(os.path.join(tmp, "server.log"), "w")
    proc = subprocess.Popen([server, "--config", cfg, "--port-file", port_file],
                            cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("imcore-server exited with %s" % proc.returncode)
        try:
            with open(port_file) as f:
                text = f.read().strip()
            if text:
                port = int(text)
                if wait_listening(port, proc, deadline):
                    return proc, port
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise RuntimeError("imcore-server did not write its port within 15 s")


def start_mosquitto(broker, tmp):
    port = free_port()
    cfg = os.path.join(tmp, "mosquitto.conf")
    with open(cfg, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                "max_inflight_messages 0\nmax_queued_messages 0\n" % port)
    log = open(os.path.join(tmp, "mosquitto.log"), "w")
    proc = subprocess.Popen([broker, "-c", cfg], cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    if not wait_listening(port, proc, time.monotonic() + 10):
        raise RuntimeError("mosquitto did not listen on %d" % port)
    return proc, port


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def check(case, kind, rc, out, err):
    """Returns a list of what is wrong."""
    bad = []
    try:
        j = json.loads(out)
    except ValueError:
        return ["the summary is not JSON: %r" % out[:300]]
    if kind == "note":
        want = "limits.messages_per_second holds each session back"
        if rc != 0 or not j.get("ok") or not any(want in n for n in j.get("notes", [])):
            bad.append("exit %d, ok %s, notes %s: want 0, true and a note saying %r"
                       % (rc, j.get("ok"), j.get("notes"), want))
        if j["errors"].get("RATE_LIMITED", 0) == 0 or j["messages"]["refused"] == 0:
            bad.append("no send was refused with RATE_LIMITED: %s %s"
                       % (j["errors"], j["messages"]))
        return bad
    if kind == "untrusted":
        want = "the server's certificate is not trusted: unable to get local issuer certificate"
        if rc != 1 or want not in err:
            bad.append("exit %d, stderr %r: want 1 and %r" % (rc, err[-300:], want))
        return bad
    if kind == "hint":
        want = "every login was refused: a server in accounts.mode password needs --password"
        if rc != 1 or want not in j.get("failures", []):
            bad.append("exit %d, failures %s: want 1 and %r" % (rc, j.get("failures"), want))
        return bad
    if rc != 0:
        bad.append("exit status %d (failures: %s)" % (rc, j.get("failures")))
    if not j.get("ok"):
        bad.append("ok is false: %s" % j.get("failures"))
    v = j["violations"]
    if v["total"] != 0:
        bad.append("violations: %s" % v)
    c = j["connections"]
    if c["held"] != c["target"] or c["min_held"] != c["target"]:
        bad.append("connections: %s" % c)
    m = j["messages"]
    if kind in ("messages", "budget"):
        if m["sent"] == 0 or m["delivered"] == 0:
            bad.append("no traffic: %s" % m)
        if m["delivered"] != m["expected"] or m["acked"] + m["refused"] != m["sent"]:
            bad.append("messages do not add up: %s" % m)
        if j["latency_us"]["delivery"]["count"] == 0:
            bad.append("no delivery latency recorded")
    if kind == "budget":
        if m["sent"] != 6000:
            bad.append("--messages 6000 sent %d" % m["sent"])
        if j["duration_s"] > 50:
            bad.append("did not stop by itself after its messages (%.1f s)" % j["duration_s"])
    if kind == "logins" and j["logins"]["in_window"] == 0:
        bad.append("no login in the window")
    if kind == "pings" and j["pongs"] == 0:
        bad.append("no Pong came back")
    return bad


def usage_case(bench):
    """The command-line contract: --help/--version exit 0, bad usage exits 2,
    and a host outside loopback is refused before anything is opened."""
    def run(*args):
        return subprocess.run([bench] + list(args), capture_output=True, text=True, timeout=30)
    bad = []
    r = run("--help")
    if r.returncode != 0 or "Usage" not in r.stdout:
        bad.append("--help: %d %r" % (r.returncode, r.stdout[:80]))
    r = run("--version")
    if r.returncode != 0 or r.stdout.strip() != "imcore-bench 0.1.0":
        bad.append("--version: %d %r" % (r.returncode, r.stdout))
    for args in (["--bogus"], ["-c"], ["-c", "0"], ["-w", "nope"], ["--host", "10.1.2.3"],
                 ["--host", "example.com"], ["--host", "::2"], ["-w", "idle", "-r", "10"],
                 ["-d", "0s"], ["-s", "8"], ["-w", "group", "-c", "5", "-g", "10"], ["extra"],
                 ["--to", "not an id"], ["-w", "group", "--to", "echo"],
                 ["--protocol", "mqtt", "--to", "echo"], ["--ca", "ca.pem"], ["--insecure"],
                 ["--servername", "x"], ["--tls", "--protocol", "mqtt"]):
        r = run(*args)
        if r.returncode != 2 or not r.stderr:
            bad.append("%s: exit %d, stderr %r (want 2 and a message)" % (args, r.returncode, r.stderr))
    # Loopback in all its spellings is accepted (the run itself then fails to
    # connect to port 1: exit 1, not 2).
    for host in ("127.0.0.1", "127.5.6.7", "localhost", "::1"):
        r = run("--host", host, "-p", "1", "-c", "2", "--ramp-timeout", "200ms", "-q")
        if r.returncode != 1:
            bad.append("--host %s: exit %d, want 1 (accepted, nothing to connect to)" % (host, r.returncode))
    if bad:
        print("FAIL usage:\n  " + "\n  ".join(bad))
        return 1
    print("PASS usage")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--server", help="imcore-server (imcore cases)")
    ap.add_argument("--mosquitto", help="the broker (mqtt cases)")
    ap.add_argument("--case", required=True, choices=sorted(CASES) + ["usage"])
    a = ap.parse_args()
    if a.case == "usage":
        return usage_case(a.bench)
    protocol, args, kind = CASES[a.case]

    tmp = tempfile.mkdtemp(prefix="bench-smoke-")
    proc = None
    ca = None
    try:
        if protocol == "mqtt":
            broker = a.mosquitto or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
            if not os.access(broker, os.X_OK):
                print("SKIP: no mosquitto broker")
                return SKIP
            probe = subprocess.run([a.bench, "--protocol", "mqtt", "-c", "2", "-d", "1ms",
                                    "-p", "1", "--ramp-timeout", "1ms", "-q"],
                                   capture_output=True, text=True, timeout=30)
            if "no MQTT support" in probe.stderr:
                print("SKIP: imcore-bench was built without libmosquitto")
                return SKIP
            proc, port = start_mosquitto(broker, tmp)
        else:
            listen = "{host: 127.0.0.1, port: 0}"
            if "--tls" in args:
                if not shutil.which("openssl"):
                    print("SKIP: no openssl command")
                    return SKIP
                listen, ca = make_tls(tmp)
            proc, port = start_imcore(a.server, tmp,
                                      "password" if "--password" in args or
                                      a.case == "password-missing" else "open",
                                      "memory" if a.case.endswith("-memory") else "sqlite",
                                      PLUGINS.get(a.case, ""),
                                      50 if a.case == "rate-limited" else 0, listen)

        cmd = [a.bench, "--protocol", protocol, "-p", str(port), "--json", "-q",
               "--server-pid", str(proc.pid), "--prefix", "s" + a.case.replace("-", "_")[:7]]
        cmd += args
        if ca and kind != "untrusted":
            cmd += ["--ca", ca]
        print("$ " + " ".join(cmd))
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=100)
        sys.stderr.write(r.stderr)
        bad = check(a.case, kind, r.returncode, r.stdout, r.stderr)
        if proc.poll() is not None:
            bad.append("the server died during the run (exit %s)" % proc.returncode)
        if bad:
            print("FAIL %s:\n  %s" % (a.case, "\n  ".join(bad)))
            print(r.stdout)
            for name in ("server.log", "mosquitto.log"):
                path = os.path.join(tmp, name)
                if os.path.exists(path):
                    with open(path) as f:
                        print("--- %s (tail)\n%s" % (name, "".join(f.readlines()[-30:])))
            return 1
        j = json.loads(r.stdout)
        print("PASS %s: held %d/%d, sent %d, delivered %d, logins %d, violations 0"
              % (a.case, j["connections"]["held"], j["connections"]["target"],
                 j["messages"]["sent"], j["messages"]["delivered"], j["logins"]["count"]))
        return 0
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        print("FAIL %s: %s" % (a.case, e))
        return 1
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the finally: stop the server
    sys.exit(main())
