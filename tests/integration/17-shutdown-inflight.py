#!/usr/bin/env python3
"""17-shutdown-inflight: a server told to stop answers every request it had
read before it says goodbye. alice writes 1,000 sends to bob and a Ping in
one write while the server is frozen (SIGSTOP); it is told to shut down
(SIGTERM) before it runs again (SIGCONT). alice gets 1,000 SendAcks in
order, then the Pong, then SERVER_SHUTDOWN; bob, online on the same
server, gets all 1,000 messages in seq order before his SERVER_SHUTDOWN.
Before, alice got the Pong and the farewell and no SendAck, and bob got
nothing, though every message had been stored. After a restart every
resend is a duplicate of what was acked."""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, envelope, main  # noqa: E402
from durable import Delivery, private_body, sqlite_config  # noqa: E402

N = 1000


def test(h):
    cfg = sqlite_config(h)
    srv = h.server(**cfg)
    alice = h.raw(srv, "alice")
    alice.login("alice")
    bob = h.raw(srv, "bob")
    bob.login("bob")

    data = bytearray()
    first = alice.next_rid
    for i in range(N):
        data += envelope("PRIVATE_MESSAGE", first + i, private_body("bob", "m%d" % i, "s-%d" % i))
    ping = first + N
    data += envelope("PING", ping)
    alice.next_rid = ping + 1

    srv.signal(signal.SIGSTOP)
    try:
        alice.send(bytes(data))
        srv.signal(signal.SIGTERM)
    finally:
        srv.signal(signal.SIGCONT)

    acked = {}
    for i in range(N):
        f = alice.expect_frame("SEND_ACK", skip=())
        check(f.request_id == first + i, "alice: SendAck %r, expected request %d" % (f, first + i))
        acked["s-%d" % i] = f.int(2)
    f = alice.expect_frame("PONG", skip=())
    check(f.request_id == ping, "alice: Pong %r does not answer %d" % (f, ping))
    alice.expect_error("SERVER_SHUTDOWN")
    alice.expect_eof()

    for i in range(N):
        d = Delivery(bob.expect_frame("DELIVERY", skip=()))
        check(d.seq == i + 1 and d.body == "m%d" % i,
              "bob: delivery %d is %r, expected seq %d" % (i, d, i + 1))
    bob.expect_error("SERVER_SHUTDOWN")
    bob.expect_eof()
    check(srv.wait_exit() == 0, "the server did not stop cleanly")

    # After a restart, resending a few gives the same seq, marked duplicate.
    srv = h.server("server-2", **cfg)
    alice = h.raw(srv, "alice-again")
    alice.login("alice")
    for i in (0, N // 2, N - 1):
        rid = alice.request("PRIVATE_MESSAGE", private_body("bob", "m%d" % i, "s-%d" % i))
        f = alice.expect_frame("SEND_ACK")
        check(f.request_id == rid and f.int(2) == acked["s-%d" % i] and f.int(5) == 1,
              "resend of s-%d: %r (fields %r)" % (i, f, f.body))


if __name__ == "__main__":
    main(test)
