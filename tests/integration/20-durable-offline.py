#!/usr/bin/env python3
"""20-durable-offline: with the sqlite store, bob is offline while alice sends
100 messages; each is acked (delivered=0). The server restarts in between.
When bob logs in he gets all 100, in seq order, once; he acks them, and at
his next login nothing is sent again: the first delivery he sees is a new
message."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402
from durable import ack_body, next_delivery, send_private, sqlite_config  # noqa: E402

N = 100


def test(h):
    cfg = sqlite_config(h)
    srv = h.server(**cfg)
    alice = h.raw(srv, "alice")
    alice.login("alice")
    for i in range(1, N + 1):
        ack = send_private(alice, "bob", "message %d" % i, "a-%d" % i)
        check(ack.int(2) == i, "message %d got seq %d" % (i, ack.int(2)))
        check(ack.int(4) == 0, "message %d: delivered=%d to an offline user" % (i, ack.int(4)))
    alice.close()
    check(srv.terminate() == 0, "the server did not stop cleanly")

    srv = h.server("server2", **cfg)
    bob = h.raw(srv, "bob")
    bob.login("bob")
    got = [next_delivery(bob) for _ in range(N)]
    for i, d in enumerate(got, 1):
        check(d.seq == i and d.body == "message %d" % i and d.frm == "alice"
              and d.cmid == "a-%d" % i and d.conversation == "p:alice:bob",
              "delivery %d is %r" % (i, d))
    bob.send_frame("DELIVERY_ACK", 0, ack_body("p:alice:bob", N))
    bob.request("LOGOUT")
    bob.expect_frame("OK")
    bob.expect_eof()

    # The ack is durable and ordered before bob's next login: nothing comes
    # again, and the first delivery is the new message.
    bob = h.raw(srv, "bob-again")
    bob.login("bob")
    alice = h.raw(srv, "alice-again")
    alice.login("alice")
    ack = send_private(alice, "bob", "after", "a-after")
    check(ack.int(2) == N + 1 and ack.int(4) == 1, "the new message was acked as %r" % ack)
    d = next_delivery(bob)
    check(d.body == "after" and d.seq == N + 1, "bob got %r first: an old message came again" % d)


if __name__ == "__main__":
    main(test)
