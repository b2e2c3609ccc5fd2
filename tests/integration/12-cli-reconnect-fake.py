#!/usr/bin/env python3
"""12-cli-reconnect-fake: the CLI against a fake server played frame by frame,
to make happen what a correct server never does. The CLI must log in, send
what was queued, ping every heartbeat_s, ack deliveries, report a request
lost with its connection, and reconnect by itself after the server closes,
after 3 * heartbeat_s of silence, after a frame longer than 16 MiB and after
a frame that does not decode; finally ALREADY_ONLINE makes it exit 1."""
import os
import re
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import (check, delivery_body, encode_fields, error_body,  # noqa: E402
                            login_ack_body, main)

STAMP = r"^\[\d\d:\d\d:\d\d\] "


def accept_login(fake, session, heartbeat_s=1, timeout=10):
    conn = fake.accept(timeout)
    login = conn.expect_frame("LOGIN")
    check(login.str(1) == "alice", "Login for %r" % login.str(1))
    check(login.str(3).startswith("imcore-cli "), "client_version %r" % login.str(3))
    conn.send_frame("LOGIN_ACK", login.request_id, login_ack_body("alice", session, heartbeat_s))
    return conn, login


def test(h):
    fake = h.fake_server()
    alice = h.cli(fake.port, "alice", args=["--show-acks", "--name", "Alice A"], login=False)
    alice.send("@bob queued before login")

    conn, login1 = accept_login(fake, 1)
    check(login1.str(2) == "Alice A", "display name %r" % login1.str(2))
    alice.expect_login()
    msg = conn.expect_frame("PRIVATE_MESSAGE")
    check(msg.str(1) == "bob" and msg.str(2) == "queued before login",
          "queued message sent as %r" % msg.body)
    check(msg.request_id > login1.request_id, "request ids do not increase")
    cmid = msg.str(3)
    check(cmid.startswith("alice-") and cmid.endswith("-1"), "client_msg_id %r" % cmid)
    conn.send_frame("SEND_ACK", msg.request_id, encode_fields([(1, cmid), (2, 7), (4, 1)]))
    alice.expect(r"^\* sent %s seq=7 delivered=1$" % cmid)

    # Deliveries print once, control characters neutralised; those that name
    # their conversation are acked, cumulatively.
    conn.send_frame("DELIVERY", 0, delivery_body("PRIVATE", "bob", "hi \x1b[2Jthere", to="alice",
                                                 seq=3, cmid="bob-1"))
    conn.send_frame("DELIVERY", 0, delivery_body("GROUP", "bob", "to the room", group="room",
                                                 seq=9, cmid="bob-2")
                    + b"")
    alice.expect(STAMP + r"bob \u2192 you: hi \?\[2Jthere$")
    alice.expect(STAMP + r"bob @ room: to the room$")
    with_conv = delivery_body("PRIVATE", "bob", "acked", to="alice", seq=4, cmid="bob-3") + \
        encode_fields([(10, "p:alice:bob")])
    conn.send_frame("DELIVERY", 0, with_conv)
    alice.expect(STAMP + r"bob \u2192 you: acked$")
    while True:  # pings may come first
        f = conn.recv_frame(5)
        check(f is not None, "EOF while waiting for a DeliveryAck")
        if f.type == "DELIVERY_ACK":
            break
        check(f.type == "PING", "unexpected %r" % f)
    check(f.str(1) == "p:alice:bob" and f.int(2) == 4, "DeliveryAck %r" % f.body)
    # The same message again (as after a lost ack) is acked but not shown.
    conn.send_frame("DELIVERY", 0, with_conv)

    # Heartbeat: a Ping within heartbeat_s (1 s), answered.
    ping = conn.expect_frame("PING", timeout=3, skip=("DELIVERY_ACK",))
    conn.send_frame("PONG", ping.request_id, encode_fields([(1, ping.int(1)), (2, 1)]))

    # A request in flight when the connection closes is reported.
    alice.send(":join room")
    conn.expect_frame("GROUP_JOIN", skip=("PING", "DELIVERY_ACK"))
    conn.close()
    alice.expect(r"^! not confirmed: :join room$")
    alice.err.expect(r"\* reconnecting in \d+ ms")
    check(len(alice.out.matching(r"you: acked$")) == 1, "a redelivered message was shown twice")

    # Silence: logged in, then no answer to anything. 3 * 1 s later it leaves.
    conn, login2 = accept_login(fake, 2)
    check(login2.request_id > msg.request_id, "request ids restarted on a new connection")
    alice.expect_login()
    start = time.monotonic()
    conn3, _ = accept_login(fake, 3, timeout=10)
    silent = time.monotonic() - start
    check(2.5 <= silent <= 8, "reconnected after %.1f s of silence; heartbeat is 1 s" % silent)
    alice.err.expect(r"nothing heard from the server for 3 s")
    alice.expect_login()

    # A length over 16 MiB: dropped before any allocation, then a new login.
    conn3.send(struct.pack(">I", 0x7FFFFFFF))
    conn4, _ = accept_login(fake, 4)
    alice.err.expect(r"bad frame from the server: length 2147483647")
    alice.expect_login()

    # A frame that does not decode.
    conn4.send(struct.pack(">I", 3) + b"\xff\xff\xff")
    conn5 = fake.accept()
    alice.err.expect(r"bad frame from the server")
    login5 = conn5.expect_frame("LOGIN")
    conn5.send_frame("ERROR", login5.request_id, error_body("ALREADY_ONLINE", "alice is online"))
    alice.expect(r"^! ALREADY_ONLINE: alice is online$")
    check(alice.wait_exit() == 1, "ALREADY_ONLINE did not exit 1")
    conn5.expect_eof()

    # Backoff: the Pong on the first connection made it healthy; the four
    # losses since are retried with full jitter under 100, 200, 400, 800 ms.
    delays = [int(d) for d in re.findall(r"reconnecting in (\d+) ms", alice.err.text())]
    check(len(delays) == 4, "reconnect delays %r: expected four" % delays)
    for i, d in enumerate(delays):
        check(1 <= d <= min(5000, 100 << i), "delay %d of %r is over its ceiling" % (i, delays))


if __name__ == "__main__":
    main(test, needs_server=False)
