#!/usr/bin/env python3
"""02-group: alice creates a group that bob and carol join; a message from
alice reaches bob and carol exactly once and never comes back to alice."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402

STAMP = r"^\[\d\d:\d\d:\d\d\] "


def test(h):
    srv = h.server()
    alice = h.cli(srv, "alice", args=["--show-acks"])
    bob = h.cli(srv, "bob")
    carol = h.cli(srv, "carol")

    alice.send(":create room")
    alice.expect(r"^\* created room$")
    bob.send(":join room")
    bob.expect(r"^\* joined room$")
    carol.send(":join room")
    carol.expect(r"^\* joined room$")

    alice.send("#room hello all")
    alice.expect(r"^\* sent alice-\d+-1 seq=\d+ delivered=2$")
    bob.expect(STAMP + r"alice @ room: hello all$")
    carol.expect(STAMP + r"alice @ room: hello all$")

    # A second message is a barrier: a duplicate of the first would have been
    # queued to each member before it.
    alice.send("#room second")
    alice.expect(r"^\* sent alice-\d+-2 seq=\d+ delivered=2$")
    bob.expect(STAMP + r"alice @ room: second$")
    carol.expect(STAMP + r"alice @ room: second$")
    for c in (bob, carol):
        n = len(c.out.matching(r"alice @ room: hello all$"))
        check(n == 1, "%s got the first group message %d times" % (c.name, n))

    # And alice got neither: a private message to her after both acks is
    # delivered after anything the group send could have queued for her.
    bob.send("@alice barrier")
    alice.expect(STAMP + r"bob \u2192 you: barrier$")
    got = alice.out.matching(r" @ room: ")
    check(not got, "the sender received her own group message: %r" % got)

    # A member of nothing cannot send to the group.
    dave = h.cli(srv, "dave")
    dave.send("#room intruder")
    dave.expect(r"^! NOT_A_MEMBER")
    bob.send(":create room")
    bob.expect(r"^! GROUP_EXISTS")


if __name__ == "__main__":
    main(test)
