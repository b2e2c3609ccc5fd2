#!/usr/bin/env python3
"""64-login-queue: password checks cannot pile up on the server. With one
hashing thread at the real cost (Argon2id, 64 MiB, tens of milliseconds a
check) and accounts.max_pending 2, ten logins from ten addresses at once
find at most one check running and two waiting: the others are refused
BUSY at once instead of queueing (before, all ten waited their turn, and a
hundred thousand of them held the server for minutes). A login by token,
which has a thread of its own, is answered meanwhile, and once the checks
are done a password login goes through again."""
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import FrameSocket, check, encode_fields, main  # noqa: E402

PASSWORD = "correct horse battery"


def login_body(user, password=None, token=None, create=False):
    return encode_fields([(1, user), (3, "it"), (4, password), (5, token),
                          (6, True if create else None)])


def raw_from(h, srv, source, name):
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10,
                                    source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = FrameSocket(sock, name)
    h.sockets.append(c)
    return c


def test(h):
    srv = h.server(storage={"engine": "sqlite", "path": os.path.join(h.tmp, "q.db")},
                   accounts={"mode": "password", "password_hash": "interactive",
                             "hash_threads": 1, "max_pending": 2})
    reg = h.raw(srv, "register")
    reg.send_frame("LOGIN", 1, login_body("alice", PASSWORD, create=True))
    ack = reg.expect_frame("LOGIN_ACK")
    token = ack.str(9)

    guessers = [raw_from(h, srv, "127.0.0.%d" % (i + 2), "g%d" % i) for i in range(10)]
    for g in guessers:
        g.send_frame("LOGIN", 1, login_body("alice", "a wrong password"))
    # A token login while the checks run: its own thread, not the queue's.
    again = h.raw(srv, "token")
    again.send_frame("LOGIN", 1, login_body("", token=token))
    check(again.expect_frame("LOGIN_ACK").str(1) == "alice", "the token login")

    codes = []
    for g in guessers:
        f = g.recv_frame(timeout=30)
        check(f is not None, "%s: no answer" % g.name)
        codes.append(f.error_code)
    checked = codes.count("BAD_CREDENTIALS")
    check(codes.count("BUSY") >= 5 and checked <= 5 and checked + codes.count("BUSY") == 10,
          "ten logins at once with 1 thread and 2 waiting: %s" % codes)
    ok = h.raw(srv, "after")
    ok.send_frame("LOGIN", 2, login_body("alice", PASSWORD))
    check(ok.expect_frame("LOGIN_ACK", timeout=30).request_id == 2, "a login after the flood")


if __name__ == "__main__":
    main(test)
