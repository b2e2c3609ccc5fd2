#!/usr/bin/env python3
"""19-ack-flood: a flood of DeliveryAcks over real sockets. bob, who has one
message, sends 300,000 acks of it (about 8 MB): the server's memory grows
by less than 30 MB, the acks are all taken (a Ping after them is
answered), the cursor is where the acks put it (the message is not sent
again at the next login), and carol's messages to dave are stored and
acked meanwhile. (That queued acks coalesce, one request per user and
conversation, is shown deterministically by test_acks_coalesce in
tests/store_sqlite: with the storage thread held, 10,000 acks leave room
in a queue of 16.)"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, envelope, main  # noqa: E402
from durable import ack_body, next_delivery, send_private, sqlite_config  # noqa: E402

ACKS = 300_000
BATCH = 20_000


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def sanitized(pid):
    """AddressSanitizer keeps freed memory in quarantine: RSS says nothing there."""
    with open("/proc/%d/maps" % pid) as f:
        return any("libasan" in line or "libtsan" in line for line in f)


def test(h):
    cfg = sqlite_config(h)
    srv = h.server(**cfg)
    alice = h.raw(srv, "alice")
    alice.login("alice")
    bob = h.raw(srv, "bob")
    bob.login("bob")
    send_private(alice, "bob", "ack me", "a-1")
    d = next_delivery(bob)
    check(d.seq == 1, "bob got %r" % d)
    carol = h.raw(srv, "carol")
    carol.login("carol")
    dave = h.raw(srv, "dave")
    dave.login("dave")

    before = rss_kb(srv.pid)
    one = envelope("DELIVERY_ACK", 0, ack_body(d.conversation, 1))
    chunk = one * BATCH
    for i in range(ACKS // BATCH):
        bob.send(chunk)
        # carol keeps talking to dave while the acks pour in.
        send_private(carol, "dave", "meanwhile %d" % i, "c-%d" % i)
    rid = bob.request("PING")
    f = bob.expect_frame("PONG", skip=())
    check(f.request_id == rid, "bob's Pong %r" % f)
    grown = rss_kb(srv.pid) - before
    check(grown < 30_000 or sanitized(srv.pid), "300,000 acks grew the server by %d kB" % grown)

    # The cursor moved: bob's next login hands nothing over again.
    bob.close()
    again = h.raw(srv, "bob-again")
    again.login("bob")
    send_private(alice, "bob", "after the flood", "a-2")
    d = next_delivery(again)
    check(d.seq == 2 and d.body == "after the flood", "bob got %r first: an acked message came again" % d)


if __name__ == "__main__":
    main(test)
