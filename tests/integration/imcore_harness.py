"""tests/integration/imcore_harness.py: what every integration test shares.

Starts the real programs (imcore-server, imcore-cli) as child processes in a
private temporary directory, talks to them the way users and other clients do
(stdin/stdout lines, raw TCP frames), and stops every process it started,
by PID, whether the test passed or not. Python 3 standard library only.

Rules the tests follow, and this module makes easy:
- No sleep stands in for a condition: every wait is on a condition, with a
  deadline (wait_until, Cli.expect, FrameSocket.recv_frame).
- A test is one script: main(test) parses --server/--cli, runs test(h) with a
  Harness h, prints the logs of every process when it fails, and exits 0 on
  success, 1 on failure, 77 (skipped) when a program it needs is missing.

The wire format (4-byte big-endian length + protobuf Envelope) is encoded and
decoded here by hand, with the enum numbers read from imcore.proto itself so
the two can never disagree.
"""

import argparse
import ctypes
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROTO = os.path.join(ROOT, "interfaces", "protocol", "imcore.proto")

DEFAULT_TIMEOUT = 10.0  # seconds for one expected event
TEST_DEADLINE = 55.0    # the whole script; CTest's TIMEOUT is 60
SKIP = 77               # CTest SKIP_RETURN_CODE


class TestFailure(AssertionError):
    """A check failed; the message says what was expected and what came."""


class TestSkipped(Exception):
    """The test cannot run here (a feature the server lacks): exit 77."""


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def wait_until(cond, timeout, what, interval=0.01):
    """Polls cond() until it returns something true, which is returned; fails
    after timeout seconds with a message naming what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TestFailure("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---- protocol: enum numbers from imcore.proto ------------------------------

def _read_enum(text, name):
    m = re.search(r"enum\s+%s\s*\{(.*?)\}" % name, text, re.S)
    if not m:
        raise RuntimeError("enum %s not found in %s" % (name, PROTO))
    body = re.sub(r"//[^\n]*", "", m.group(1))
    return {k: int(v) for k, v in re.findall(r"(\w+)\s*=\s*(\d+)\s*;", body)}


with open(PROTO, encoding="utf-8") as _f:
    _PROTO_TEXT = _f.read()
TYPE = _read_enum(_PROTO_TEXT, "Type")            # "LOGIN" -> 1
ERROR = _read_enum(_PROTO_TEXT, "ErrorCode")      # "BAD_FRAME" -> 3
TYPE_NAME = {v: k for k, v in TYPE.items()}
ERROR_NAME = {v: k for k, v in ERROR.items()}


def _body_field(type_name):
    """The Envelope field number of a type's body: the oneof lists the bodies
    in the order of the Type enum, from field 10 (login = 10 for LOGIN = 1)."""
    return TYPE[type_name] + 9


# ---- protocol: a minimal protobuf encoder and decoder ------------------------

def varint(n):
    if n < 0:
        n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_fields(fields):
    """fields: [(number, value)]; int/bool -> varint, str/bytes -> bytes field,
    None is skipped. Repeated fields are simply listed more than once."""
    out = bytearray()
    for num, value in fields:
        if value is None:
            continue
        if isinstance(value, bool) or isinstance(value, int):
            out += varint(num << 3 | 0) + varint(int(value))
        else:
            if isinstance(value, str):
                value = value.encode("utf-8")
            out += varint(num << 3 | 2) + varint(len(value)) + value
    return bytes(out)


def read_varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def decode_fields(buf):
    """Returns {field number: [values]}: ints for varints and fixed fields,
    bytes for length-delimited ones (nested messages stay bytes)."""
    fields = {}
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 2:
            n, pos = read_varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("truncated bytes field")
            value, pos = bytes(buf[pos:pos + n]), pos + n
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError("wire type %d" % wire)
        fields.setdefault(num, []).append(value)
    return fields


class Frame:
    """One decoded Envelope: type (a name when known), request_id, and the
    body's fields as decode_fields returns them."""

    def __init__(self, payload):
        self.payload = payload
        env = decode_fields(payload)
        self.type_num = env.get(1, [0])[-1]
        self.type = TYPE_NAME.get(self.type_num, str(self.type_num))
        self.request_id = env.get(2, [0])[-1]
        self.body_field = None
        self.body = {}
        for num in env:
            if num >= 10:
                self.body_field = num
                self.body = decode_fields(env[num][-1])

    def int(self, num, default=0):
        return self.body.get(num, [default])[-1]

    def str(self, num, default=""):
        v = self.body.get(num)
        return v[-1].decode("utf-8", "replace") if v else default

    @property
    def error_code(self):
        return ERROR_NAME.get(self.int(1), str(self.int(1))) if self.type == "ERROR" else None

    def __repr__(self):
        extra = ""
        if self.type == "ERROR":
            extra = " %s %r" % (self.error_code, self.str(2))
        return "<Frame %s rid=%d%s>" % (self.type, self.request_id, extra)


def envelope(type_name, request_id=0, body=b""):
    """A whole frame: length prefix and Envelope with its body."""
    payload = encode_fields([(1, TYPE[type_name]), (2, request_id or None),
                             (_body_field(type_name), body)])
    return struct.pack(">I", len(payload)) + payload


def login_body(user, name="", version="imcore-harness"):
    return encode_fields([(1, user), (2, name or None), (3, version)])


def login_ack_body(user, session_id, heartbeat_s, idle_timeout_s=None,
                   max_frame=65536, max_body=8192, node="fake"):
    return encode_fields([(1, user), (2, session_id), (3, heartbeat_s),
                          (4, idle_timeout_s if idle_timeout_s is not None else 3 * heartbeat_s),
                          (5, int(time.time() * 1000)), (6, max_frame), (7, max_body), (8, node)])


def error_body(code_name, message="", client_msg_id=None):
    return encode_fields([(1, ERROR[code_name]), (2, message or None), (3, client_msg_id)])


def delivery_body(kind, frm, text, to=None, group=None, seq=1, cmid="x-1", ts_ms=None):
    kinds = {"PRIVATE": 1, "GROUP": 2}
    return encode_fields([(1, kinds[kind]), (2, frm), (3, to), (4, group),
                          (5, text.encode("utf-8") if isinstance(text, str) else text),
                          (6, seq), (7, ts_ms if ts_ms is not None else int(time.time() * 1000)),
                          (8, cmid)])


# ---- raw sockets -------------------------------------------------------------

class FrameSocket:
    """A TCP socket that sends bytes and reads whole frames, each read with a
    deadline. Used as a client (RawClient) and as the server side of
    FakeServer connections."""

    def __init__(self, sock, name):
        self.sock = sock
        self.name = name
        self.buf = bytearray()
        self.eof = False
        self.received = []  # every Frame, for diagnostics

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, type_name, request_id=0, body=b""):
        self.send(envelope(type_name, request_id, body))

    def _fill(self, deadline):
        """Reads more bytes; returns False at EOF. A reset counts as EOF: a
        peer that closes with unread input sends RST instead of FIN."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure("%s: timed out waiting for data" % self.name)
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TestFailure("%s: timed out waiting for data" % self.name)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def recv_frame(self, timeout=DEFAULT_TIMEOUT):
        """The next Frame, or None at EOF; fails after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if n > 16 * 1024 * 1024:
                    raise TestFailure("%s: frame length %d" % (self.name, n))
                if len(self.buf) >= 4 + n:
                    payload = bytes(self.buf[4:4 + n])
                    del self.buf[:4 + n]
                    f = Frame(payload)
                    self.received.append(f)
                    return f
            if self.eof or not self._fill(deadline):
                if self.buf:
                    raise TestFailure("%s: EOF inside a frame (%d bytes left)"
                                      % (self.name, len(self.buf)))
                return None

    def expect_frame(self, type_name, timeout=DEFAULT_TIMEOUT, skip=("PONG",)):
        """The next frame, which must be of type_name; frames of the types in
        skip (Pong by default) are passed over."""
        while True:
            f = self.recv_frame(timeout)
            if f is None:
                raise TestFailure("%s: EOF while expecting %s" % (self.name, type_name))
            if f.type in skip and f.type != type_name:
                continue
            check(f.type == type_name, "%s: expected %s, got %r" % (self.name, type_name, f))
            return f

    def expect_error(self, code_name, timeout=DEFAULT_TIMEOUT):
        f = self.expect_frame("ERROR", timeout)
        check(f.error_code == code_name,
              "%s: expected Error %s, got %r" % (self.name, code_name, f))
        return f

    def expect_eof(self, timeout=DEFAULT_TIMEOUT):
        f = self.recv_frame(timeout)
        check(f is None, "%s: expected the connection to close, got %r" % (self.name, f))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class RawClient(FrameSocket):
    """A client that speaks frames directly, to send what the CLI never would."""

    def __init__(self, port, name="raw", host="127.0.0.1"):
        super().__init__(socket.create_connection((host, port), timeout=DEFAULT_TIMEOUT), name)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.next_rid = 1

    def request(self, type_name, body=b""):
        rid = self.next_rid
        self.next_rid += 1
        self.send_frame(type_name, rid, body)
        return rid

    def login(self, user, name="", timeout=DEFAULT_TIMEOUT):
        rid = self.request("LOGIN", login_body(user, name))
        ack = self.expect_frame("LOGIN_ACK", timeout)
        check(ack.request_id == rid, "%s: LoginAck for request %d, sent %d"
              % (self.name, ack.request_id, rid))
        return ack


class FakeServer:
    """A listening socket that stands in for imcore-server, so a test can play
    the server's part frame by frame (and misbehave on purpose)."""

    def __init__(self, name="fake"):
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []

    def accept(self, timeout=DEFAULT_TIMEOUT):
        self.sock.settimeout(timeout)
        try:
            s, _ = self.sock.accept()
        except socket.timeout:
            raise TestFailure("%s: no connection within %.1f s" % (self.name, timeout))
        conn = FrameSocket(s, "%s-conn%d" % (self.name, len(self.conns) + 1))
        self.conns.append(conn)
        return conn

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


def free_port():
    """A port nothing listens on right now (bound, then released)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- child processes -----------------------------------------------------------

try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent():
    """Runs in the child before exec: if the test script is killed (CTest's
    timeout), the kernel kills its children too, so none is left behind.
    The function was looked up before forking: the child only calls it."""
    if _prctl is not None:
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class LineReader:
    """Collects the lines of one pipe in a thread; waits on them with a
    deadline. A cursor remembers how far expect() has read, so lines are
    matched in order, and all lines stay available for later checks."""

    def __init__(self, pipe, name):
        self.name = name
        self.lines = []
        self.cursor = 0
        self.closed = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self.thread.start()

    def _run(self, pipe):
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def expect(self, pattern, timeout=DEFAULT_TIMEOUT):
        """The re.Match of the first line after the cursor that matches
        pattern (re.search); the cursor moves past it."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                while self.cursor < len(self.lines):
                    m = rx.search(self.lines[self.cursor])
                    self.cursor += 1
                    if m:
                        return m
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    why = "output ended" if self.closed else "timed out after %.1f s" % timeout
                    raise TestFailure("%s: %s waiting for /%s/; last lines:\n    %s"
                                      % (self.name, why, pattern,
                                         "\n    ".join(self.lines[-15:]) or "(none)"))
                self.cond.wait(left)

    def matching(self, pattern, since=0):
        """Every line so far (from line number since on) that matches pattern."""
        rx = re.compile(pattern)
        with self.cond:
            return [l for l in self.lines[since:] if rx.search(l)]

    def mark(self):
        """The number of lines so far: a since for matching()."""
        with self.cond:
            return len(self.lines)

    def wait_closed(self, timeout):
        with self.cond:
            self.cond.wait_for(lambda: self.closed, timeout)
            return self.closed

    def text(self):
        with self.cond:
            return "\n".join(self.lines)


class Process:
    """A child process with its stdout and stderr read by LineReaders."""

    def __init__(self, harness, name, argv, stdin=True):
        """stdin: True for a pipe (see Cli.send), False for /dev/null, or a
        descriptor such as a pty's slave end."""
        self.name = name
        self.argv = argv
        if stdin is True:
            stdin = subprocess.PIPE
        elif stdin is False:
            stdin = subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, stdin=stdin,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=harness.tmp, preexec_fn=_die_with_parent)
        self.pid = self.proc.pid
        self.out = LineReader(self.proc.stdout, name + " stdout")
        self.err = LineReader(self.proc.stderr, name + " stderr")
        harness.processes.append(self)

    def running(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.running():
            os.kill(self.pid, sig)

    def wait_exit(self, timeout=DEFAULT_TIMEOUT):
        """The exit status; fails if the process is still running after timeout."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s (pid %d) still running after %.1f s" % (self.name, self.pid, timeout))
        # Let the readers take the last lines, so checks after exit see them.
        self.out.wait_closed(2.0)
        self.err.wait_closed(2.0)
        return rc

    def stop(self, timeout=5.0):
        """SIGTERM, wait, then SIGKILL: for cleanup, whatever state it is in."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout)
            except ProcessLookupError:
                pass
        # The readers see EOF now that the process is gone; closing a pipe
        # under a reader that is still in readline() would raise there.
        self.out.wait_closed(timeout)
        self.err.wait_closed(timeout)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                if pipe:
                    pipe.close()
            except OSError:
                pass

    def describe(self):
        rc = self.proc.poll()
        state = "running" if rc is None else "exit %d" % rc
        return ("==== %s (pid %d, %s): %s\n-- stdout:\n%s\n-- stderr:\n%s"
                % (self.name, self.pid, state, " ".join(self.argv),
                   self.out.text(), self.err.text()))


class Server(Process):
    """imcore-server with its own config file; .port once it listens."""

    def __init__(self, harness, name, config):
        self.config_path = os.path.join(harness.tmp, name + ".yaml")
        self.port_file = os.path.join(harness.tmp, name + ".port")
        with open(self.config_path, "w") as f:
            f.write(to_yaml(config))
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        super().__init__(harness, name, [harness.server_path, "--config", self.config_path,
                                         "--port-file", self.port_file], stdin=False)
        self.port = wait_until(self._read_port, DEFAULT_TIMEOUT,
                               "%s to write its port to %s" % (name, self.port_file))

    def _read_port(self):
        if not self.running():
            raise TestFailure("%s exited with %d before listening:\n%s"
                              % (self.name, self.proc.returncode, self.err.text()))
        try:
            with open(self.port_file) as f:
                text = f.read().strip()
            port = int(text)
            return port if 0 < port < 65536 else None
        except (OSError, ValueError):
            return None

    def terminate(self, timeout=DEFAULT_TIMEOUT):
        """SIGTERM and the exit status."""
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)


class Cli(Process):
    """imcore-cli driven through its stdin; its stdout lines are the events."""

    def __init__(self, harness, name, port, user, args=(), log_level="info"):
        argv = [harness.cli_path, "--host", "127.0.0.1", "--port", str(port), "--user", user,
                "--log-level", log_level] + list(args)
        super().__init__(harness, name, argv)
        self.user = user

    def send(self, line):
        self.proc.stdin.write((line + "\n").encode("utf-8"))
        self.proc.stdin.flush()

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def expect(self, pattern, timeout=DEFAULT_TIMEOUT):
        return self.out.expect(pattern, timeout)

    def expect_login(self, timeout=DEFAULT_TIMEOUT):
        """The session id of the next '* logged in as USER (session N)'."""
        m = self.expect(r"^\* logged in as %s \(session (\d+)\)$" % re.escape(self.user), timeout)
        return int(m.group(1))


def _yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return "%d" % v
    return "\"%s\"" % str(v).replace("\\", "\\\\").replace('"', '\\"')


def to_yaml(value, indent=0):
    """A nested dict of scalars, lists of scalars and lists of such dicts
    as block YAML, in insertion order."""
    lines = []
    for key, v in value.items():
        pad = "  " * indent
        if isinstance(v, dict):
            lines.append("%s%s:" % (pad, key))
            lines.append(to_yaml(v, indent + 1))
        elif isinstance(v, list):
            lines.append("%s%s:" % (pad, key))
            for item in v:
                if not isinstance(item, dict):
                    lines.append("%s  - %s" % (pad, _yaml_scalar(item)))
                    continue
                body = to_yaml(item, indent + 2).rstrip("\n").split("\n")
                lines.append("%s  - %s" % (pad, body[0].lstrip()))
                lines.extend(body[1:])
        else:
            lines.append("%s%s: %s" % (pad, key, _yaml_scalar(v)))
    return "\n".join(lines) + ("\n" if indent == 0 else "")


def merge(base, over):
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


BASE_CONFIG = {
    "listen": {"host": "127.0.0.1", "port": 0},
    "workers": 2,
    "node_id": "it-1",
    "log_level": "info",
    "session": {"heartbeat_s": 5, "idle_timeout_s": 15},
    # The chat tests run without accounts or storage; the durable and
    # accounts tests override these.
    "storage": {"engine": "memory"},
    "accounts": {"mode": "open"},
}


class Harness:
    """The processes and sockets of one test, and their cleanup."""

    def __init__(self, server_path, cli_path):
        self.server_path = server_path
        self.cli_path = cli_path
        self.tmp = tempfile.mkdtemp(prefix="imcore-it-")
        self.processes = []
        self.sockets = []
        self.lock = threading.Lock()
        self.cleaned = False

    def server(self, name="server", **config):
        """Starts imcore-server on BASE_CONFIG merged with config and waits
        until it listens."""
        return Server(self, name, merge(BASE_CONFIG, config))

    def server_accepts(self, **config):
        """True if the server accepts BASE_CONFIG merged with config (asked
        once with --check-config), so a test can skip itself on a server
        without the feature it tests."""
        cache = self.__dict__.setdefault("_accepted", {})
        key = repr(sorted(config.items()))
        if key not in cache:
            path = self.write("probe-%d.yaml" % len(cache), to_yaml(merge(BASE_CONFIG, config)))
            rc, _, _ = self.run([self.server_path, "--config", path, "--check-config"])
            cache[key] = rc == 0
        return cache[key]

    def cli(self, port, user, name=None, args=(), login=True, timeout=DEFAULT_TIMEOUT):
        """Starts imcore-cli as user; with login, waits for its login line."""
        port = port.port if isinstance(port, Server) else port
        c = Cli(self, name or user, port, user, args)
        if login:
            c.expect_login(timeout)
        return c

    def run(self, argv, timeout=DEFAULT_TIMEOUT, stdin=b""):
        """Runs a program to its end: (exit status, stdout, stderr)."""
        try:
            p = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout,
                               cwd=self.tmp, preexec_fn=_die_with_parent)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s did not finish within %.1f s" % (" ".join(argv), timeout))
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def raw(self, port, name="raw"):
        port = port.port if isinstance(port, Server) else port
        r = RawClient(port, name)
        self.sockets.append(r)
        return r

    def fake_server(self, name="fake"):
        f = FakeServer(name)
        self.sockets.append(f)
        return f

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def dump(self):
        for p in self.processes:
            sys.stderr.write(p.describe() + "\n")
        for s in self.sockets:
            if isinstance(s, FrameSocket):
                tail = s.received[-10:]
                sys.stderr.write("==== %s received %d frames%s: %r\n"
                                 % (s.name, len(s.received),
                                    ", the last %d" % len(tail) if len(tail) < len(s.received)
                                    else "", tail))

    def cleanup(self, keep_tmp=False):
        with self.lock:
            if self.cleaned:
                return
            self.cleaned = True
        for s in self.sockets:
            s.close()
        for p in reversed(self.processes):
            try:
                p.stop()
            except Exception as e:  # cleanup goes on for the others
                sys.stderr.write("cleanup of %s: %r\n" % (p.name, e))
        if keep_tmp:
            sys.stderr.write("files kept in %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _default_path(*parts):
    return os.path.join(ROOT, "build", *parts)


def main(test, needs_server=True):
    """Runs test(h) as a script: see the module's docstring."""
    ap = argparse.ArgumentParser(description=test.__doc__)
    ap.add_argument("--server", default=os.environ.get(
        "IMCORE_SERVER", _default_path("interfaces", "server", "imcore-server")))
    ap.add_argument("--cli", default=os.environ.get(
        "IMCORE_CLI", _default_path("interfaces", "cli", "imcore-cli")))
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--verbose", action="store_true",
                    help="print the output of every process, even on success")
    opts = ap.parse_args()
    needed = [opts.cli] + ([opts.server] if needs_server else [])
    missing = [p for p in needed if not os.access(p, os.X_OK)]
    if missing:
        print("SKIP: not built: %s" % ", ".join(missing))
        sys.exit(SKIP)

    h = Harness(os.path.abspath(opts.server), os.path.abspath(opts.cli))
    name = os.path.basename(sys.argv[0])

    def overtime():
        sys.stderr.write("FAIL %s: still running after %.0f s\n" % (name, TEST_DEADLINE))
        h.dump()
        h.cleanup(keep_tmp=True)
        os._exit(1)

    watchdog = threading.Timer(TEST_DEADLINE, overtime)
    watchdog.daemon = True
    watchdog.start()
    rc = 1
    try:
        test(h)
        rc = 0
        if opts.verbose:
            h.dump()
    except TestSkipped as e:
        rc = SKIP
        print("SKIP %s: %s" % (name, e))
    except Exception:
        traceback.print_exc()
        h.dump()
    finally:
        watchdog.cancel()
        h.cleanup(keep_tmp=opts.keep or rc not in (0, SKIP))
    if rc != SKIP:
        print("%s %s" % ("PASS" if rc == 0 else "FAIL", name))
    sys.exit(rc)
