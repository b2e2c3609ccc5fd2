#!/usr/bin/env python3
"""21-durable-duplicate: the same message sent twice with its client_msg_id
is stored once and delivered once, and both sends get the same ack (the
second says duplicate). Also a group message: stored once, delivered to each
member once. (An id used again for another message: 42-client-msg-id.)"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, main  # noqa: E402
from durable import group_body, next_delivery, send_private, sqlite_config  # noqa: E402


def test(h):
    srv = h.server(**sqlite_config(h))
    alice, bob, carol = h.raw(srv, "alice"), h.raw(srv, "bob"), h.raw(srv, "carol")
    for c, u in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        c.login(u)
    first = send_private(alice, "bob", "hello", "dup-1")
    again = send_private(alice, "bob", "hello", "dup-1")
    check(first.int(2) == again.int(2) == 1, "seqs %d and %d" % (first.int(2), again.int(2)))
    check(first.int(3) == again.int(3), "server times differ")
    check(not first.int(5) and again.int(5) == 1, "duplicate flags %d, %d"
          % (first.int(5), again.int(5)))
    send_private(alice, "bob", "next", "dup-2")
    d1, d2 = next_delivery(bob), next_delivery(bob)
    check(d1.body == "hello" and d1.seq == 1, "first delivery %r" % d1)
    check(d2.body == "next" and d2.seq == 2, "a duplicate was delivered: %r" % d2)

    alice.request("GROUP_CREATE", encode_fields([(1, "room")]))
    alice.expect_frame("OK")
    for c in (bob, carol):
        c.request("GROUP_JOIN", encode_fields([(1, "room")]))
        c.expect_frame("OK")
    for _ in range(2):
        alice.request("GROUP_MESSAGE", group_body("room", "to all", "g-1"))
        ack = alice.expect_frame("SEND_ACK")
        check(ack.int(2) == 1, "group message seq %d" % ack.int(2))
    alice.request("GROUP_MESSAGE", group_body("room", "second", "g-2"))
    check(alice.expect_frame("SEND_ACK").int(2) == 2, "second group message seq")
    for c in (bob, carol):
        a, b = next_delivery(c), next_delivery(c)
        check((a.body, a.seq, b.body, b.seq) == ("to all", 1, "second", 2),
              "%s got %r then %r" % (c.name, a, b))


if __name__ == "__main__":
    main(test)
