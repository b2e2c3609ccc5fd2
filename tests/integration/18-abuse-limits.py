#!/usr/bin/env python3
"""18-abuse-limits: what a client without credentials can cost the server
is bounded, each attack sent as one write where it is pipelined.

- 40 password guesses in one write: one login is checked at a time, so the
  limit of failed logins holds: 5 BAD_CREDENTIALS, then RATE_LIMITED for
  every other guess, the right password among them (before, all 40 were
  checked and the right one logged in);
- 20 connections guessing at once: logins still being checked count, so no
  more than 5 guesses are ever checked;
- registrations from one address are limited (accounts.max_registrations);
- connections that never log in but ping are closed at login_timeout_s,
  and one address cannot hold more than its share of slots: a user from
  another address still gets in (before, pings kept them forever);
- a frame sent a byte at a time is closed at frame_timeout_s (before, each
  byte reset the idle timer), and half frames held past the server's input
  budget are closed with BUSY while whole-frame clients carry on."""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import FrameSocket, check, encode_fields, envelope, main  # noqa: E402

PASSWORD = "correct horse battery"


def login_body(user, password=None, create=False):
    return encode_fields([(1, user), (3, "it"), (4, password), (6, True if create else None)])


def accounts_config(h, db, **acc):
    a = {"mode": "password", "password_hash": "min"}
    a.update(acc)
    return {"storage": {"engine": "sqlite", "path": os.path.join(h.tmp, db)}, "accounts": a}


def raw_from(h, srv, source, name):
    """A raw client whose connection comes from the loopback address source."""
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10,
                                    source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = FrameSocket(sock, name)
    c.next_rid = 1
    h.sockets.append(c)
    return c


def pipelined_guesses(h):
    srv = h.server("server-guess", **accounts_config(h, "guess.db"))
    reg = h.raw(srv, "register")
    reg.request("LOGIN", login_body("alice", PASSWORD, create=True))
    reg.expect_frame("LOGIN_ACK")

    guesser = h.raw(srv, "guesser")
    data = bytearray()
    for i in range(40):
        pw = PASSWORD if i == 20 else "wrong guess %d" % i
        data += envelope("LOGIN", i + 1, login_body("alice", pw))
    guesser.send(bytes(data))
    codes = []
    for i in range(40):
        f = guesser.recv_frame()
        check(f is not None, "guesser: EOF after %d answers" % i)
        check(f.request_id == i + 1, "guesser: answer %r out of order (expected %d)" % (f, i + 1))
        codes.append(f.error_code or f.type)
    check(codes[:5] == ["BAD_CREDENTIALS"] * 5, "the first five guesses: %s" % codes[:5])
    check(codes[5:] == ["RATE_LIMITED"] * 35,
          "past the limit every guess must be refused unchecked, got %s" % sorted(set(codes[5:])))
    srv.terminate()


def parallel_guesses(h):
    srv = h.server("server-parallel", **accounts_config(h, "parallel.db"))
    reg = h.raw(srv, "register2")
    reg.request("LOGIN", login_body("bob", PASSWORD, create=True))
    reg.expect_frame("LOGIN_ACK")
    conns = [h.raw(srv, "p%d" % i) for i in range(20)]
    for i, c in enumerate(conns):
        c.request("LOGIN", login_body("bob", "wrong guess %d" % i))
    codes = []
    for c in conns:
        f = c.recv_frame()
        check(f is not None, "%s: no answer" % c.name)
        codes.append(f.error_code)
    checked = codes.count("BAD_CREDENTIALS")
    check(checked <= 5, "%d guesses were checked in parallel (limit 5): %s" % (checked, codes))
    check(set(codes) <= {"BAD_CREDENTIALS", "RATE_LIMITED"}, "answers: %s" % codes)
    srv.terminate()


def registrations(h):
    srv = h.server("server-register", **accounts_config(h, "reg.db", max_registrations=3))
    codes = []
    for i in range(5):
        c = h.raw(srv, "registrar%d" % i)
        c.request("LOGIN", login_body("user%d" % i, PASSWORD, create=True))
        f = c.recv_frame()
        codes.append(f.error_code or f.type if f else "EOF")
    check(codes == ["LOGIN_ACK"] * 3 + ["RATE_LIMITED"] * 2, "five registrations: %s" % codes)
    srv.terminate()


def poll_frame(c, timeout):
    """The next frame if one comes within timeout seconds, else None; EOF
    is the string "EOF". Waiting for the server's move paces the sender."""
    deadline = time.monotonic() + timeout
    while True:
        if len(c.buf) >= 4 and len(c.buf) >= 4 + struct.unpack(">I", c.buf[:4])[0]:
            return c.recv_frame()
        if c.eof:
            return "EOF"
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        c.sock.settimeout(left)
        try:
            chunk = c.sock.recv(65536)
        except socket.timeout:
            return None
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            c.eof = True
        c.buf += chunk


def unauthenticated_slots(h):
    srv = h.server("server-slots", session={"login_timeout_s": 2},
                   limits={"max_unauthenticated_per_address": 5})
    held = []
    refused = 0
    for i in range(8):
        c = h.raw(srv, "idle%d" % i)
        c.request("PING")
        f = c.recv_frame()
        if f is not None and f.type == "PONG":
            held.append(c)
        else:
            check(f is not None and f.error_code == "BUSY", "%s: %r" % (c.name, f))
            c.expect_eof()
            refused += 1
    check(len(held) == 5 and refused == 3, "held %d, refused %d" % (len(held), refused))
    # Another address still gets in and logs in.
    user = raw_from(h, srv, "127.0.0.2", "user-elsewhere")
    user.send_frame("LOGIN", 1, encode_fields([(1, "carol")]))
    check(user.expect_frame("LOGIN_ACK").request_id == 1, "carol's login")
    # Pinging (each Ping once the last is answered) does not keep a
    # connection that never logs in.
    start = time.monotonic()
    for c in held:
        while True:
            check(time.monotonic() - start < 8, "%s: still open after 8 s" % c.name)
            c.send_frame("PING", 9)
            f = poll_frame(c, 2)
            if f is None or f == "EOF" or f.type != "PONG":
                break
            f = poll_frame(c, 0.25)  # a heartbeat's pause, ended early by the close
            if f is not None:
                break
        check(f != "EOF" and f.error_code == "IDLE_TIMEOUT", "%s: %r" % (c.name, f))
    check(time.monotonic() - start < 6, "closed only after %.1f s" % (time.monotonic() - start))
    user.send_frame("PING", 2)
    check(user.expect_frame("PONG", skip=()).request_id == 2, "carol is still served")
    srv.terminate()


def slow_frames(h):
    srv = h.server("server-slow", session={"frame_timeout_s": 2},
                   limits={"input_buffer_bytes": 65536})
    slow = h.raw(srv, "slowloris")
    slow.login("slow")
    frame = envelope("PING", 7)
    start = time.monotonic()
    f = None
    for b in frame[:-1]:  # never the last byte: the frame is never whole
        slow.send(bytes([b]))
        f = poll_frame(slow, 0.4)
        if f is not None:
            break
    if f is None:
        f = poll_frame(slow, 5)
    check(f not in (None, "EOF") and f.error_code == "IDLE_TIMEOUT",
          "a frame sent a byte at a time: %r" % (f,))
    check(time.monotonic() - start < 5, "closed only after %.1f s" % (time.monotonic() - start))

    # Half frames past the input budget (64 KiB over two workers): the
    # client that pushes a worker past its share is closed with BUSY.
    good = h.raw(srv, "good")
    good.login("good")
    halves = []
    for i in range(6):
        c = h.raw(srv, "half%d" % i)
        c.login("half%d" % i)
        c.send(struct.pack(">I", 60000) + b"\x08" * 20000)
        halves.append(c)
    codes = [poll_frame(c, 2) for c in halves]
    busy = [f for f in codes if f not in (None, "EOF") and f.error_code == "BUSY"]
    check(busy, "no half-frame client was closed: %r" % codes)
    good.send_frame("PING", 3)
    check(good.expect_frame("PONG", skip=()).request_id == 3, "a whole-frame client is served")
    srv.terminate()


def test(h):
    pipelined_guesses(h)
    parallel_guesses(h)
    registrations(h)
    unauthenticated_slots(h)
    slow_frames(h)


if __name__ == "__main__":
    main(test)
