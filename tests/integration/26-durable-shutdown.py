#!/usr/bin/env python3
"""26-durable-shutdown: what a client sent before the server began to stop
still counts. Twenty users each get one message; their acks, each followed
by a Ping, reach the server while it is frozen (SIGSTOP), and it is told to
shut down (SIGTERM) before it runs again (SIGCONT). So shutdown begins with
every ack unread in its socket. Every Ping is answered before the farewell,
and after a restart nobody gets their message again: the first delivery
each user sees is a new one."""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402
from durable import ack_body, next_delivery, send_private, sqlite_config  # noqa: E402

N = 20


def test(h):
    cfg = sqlite_config(h)
    srv = h.server(**cfg)
    alice = h.raw(srv, "alice")
    alice.login("alice")
    users = []
    for i in range(N):
        u = h.raw(srv, "u%d" % i)
        u.login("u%d" % i)
        users.append(u)
    for i, u in enumerate(users):
        send_private(alice, "u%d" % i, "before the stop", "b-%d" % i)
        d = next_delivery(u)
        check(d.seq == 1 and d.body == "before the stop", "u%d got %r" % (i, d))

    pings = []
    srv.signal(signal.SIGSTOP)
    try:
        for u in users:
            conversation = "p:alice:%s" % u.name
            u.send_frame("DELIVERY_ACK", 0, ack_body(conversation, 1))
            pings.append(u.request("PING"))
        srv.signal(signal.SIGTERM)
    finally:
        srv.signal(signal.SIGCONT)
    for u, rid in zip(users, pings):
        f = u.expect_frame("PONG", skip=())
        check(f.request_id == rid, "%s: Pong %r does not answer %d" % (u.name, f, rid))
        u.expect_error("SERVER_SHUTDOWN")
        u.expect_eof()
    check(srv.wait_exit() == 0, "the server did not stop cleanly")

    srv = h.server("server-2", **cfg)
    users = []
    for i in range(N):
        u = h.raw(srv, "u%d-again" % i)
        u.login("u%d" % i)
        users.append(u)
    alice = h.raw(srv, "alice-again")
    alice.login("alice")
    for i, u in enumerate(users):
        send_private(alice, "u%d" % i, "after the restart", "a-%d" % i)
        d = next_delivery(u)
        check(d.seq == 2 and d.body == "after the restart",
              "u%d got %r first: an acked message came again" % (i, d))


if __name__ == "__main__":
    main(test)
