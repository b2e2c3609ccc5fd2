#!/usr/bin/env python3
"""27-durable-handover: a user comes back to more unacked messages than one
connection may have unsent (limits.output_buffer_bytes). They are handed
over a page at a time, each page once the client has acked the one before:
all of them arrive, in seq order per conversation, once each, and then the
session goes live; imcore-cli, which acks after each read, gets it all too. A client
that acks nothing gets one page and is not live."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402
from durable import ack_body, next_delivery, private_body, send_private, sqlite_config  # noqa: E402

BODY = 8000
PER_SENDER = 300   # 2 x 300 x 8 kB: 4.8 MB, over the 1 MiB output limit below
OUTPUT_LIMIT = 1024 * 1024


def fill(h, srv, sender, to):
    """PER_SENDER messages from sender to `to`, pipelined, each acked."""
    c = h.raw(srv, sender)
    c.login(sender)
    for i in range(PER_SENDER):
        c.request("PRIVATE_MESSAGE", private_body(to, ("%s %d " % (sender, i)).ljust(BODY, "."),
                                                  "%s-%s-%d" % (sender, to, i)))
    for i in range(PER_SENDER):
        f = c.expect_frame("SEND_ACK")
        check(f.int(4) == 0 and f.int(2) == i + 1 and not f.int(5),
              "%s: SendAck %d to %s: %r" % (sender, i, to, f))
    c.close()


def test(h):
    cfg = sqlite_config(h)
    cfg["limits"].update({"max_body_bytes": BODY, "output_buffer_bytes": OUTPUT_LIMIT})
    srv = h.server(**cfg)
    for to in ("bob", "bea", "cid"):
        fill(h, srv, "alice", to)
        fill(h, srv, "carol", to)

    # bob acks each message as it comes: everything arrives, in order, once.
    bob = h.raw(srv, "bob")
    bob.login("bob")
    last = {"p:alice:bob": 0, "p:bob:carol": 0}
    for _ in range(2 * PER_SENDER):
        d = next_delivery(bob)
        check(d.conversation in last and d.seq == last[d.conversation] + 1,
              "bob got %r after %r" % (d, last))
        check(d.body.startswith("%s %d " % (d.frm, d.seq - 1)), "body of %r" % d)
        last[d.conversation] = d.seq
        bob.send_frame("DELIVERY_ACK", 0, ack_body(d.conversation, d.seq))
    # Then live: a new message comes straight through.
    alice = h.raw(srv, "alice-live")
    alice.login("alice")
    ack = send_private(alice, "bob", "live", "live-1")
    check(ack.int(4) == 1, "bob is not live after the hand-over: %r" % ack)
    d = next_delivery(bob)
    check(d.body == "live" and d.seq == PER_SENDER + 1, "bob got %r, not the live message" % d)

    # The CLI acks what it reads: it shows the whole backlog, in order.
    cid = h.cli(srv, "cid")
    for frm in ("alice", "carol"):
        for i in range(PER_SENDER):
            cid.expect(r"%s \u2192 you: %s %d \.+$" % (frm, frm, i), timeout=20)
    check(srv.running(), "the server stopped")

    # bea acks nothing: one page (well under the limit, not a slow consumer
    # closed) and not live; her messages wait for her next login.
    bea = h.raw(srv, "bea")
    bea.login("bea")
    first = next_delivery(bea)
    check(first.conversation == "p:alice:bea" and first.seq == 1, "bea got %r first" % first)
    ack = send_private(alice, "bea", "while handed over", "live-2")
    check(ack.int(4) == 0, "bea went live without acking: %r" % ack)
    bea.request("PING")
    bea.expect_frame("PONG", skip=("DELIVERY",))
    got = sum(1 for f in bea.received if f.type == "DELIVERY")
    check(got * BODY < OUTPUT_LIMIT, "bea was handed %d messages at once" % got)
    check(srv.running(), "the server stopped")
    check(not any(f.type == "ERROR" for f in bea.received), "bea got an error: %r" % bea.received)


if __name__ == "__main__":
    main(test)
