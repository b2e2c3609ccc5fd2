#!/usr/bin/env python3
"""03-leave: a member who left a group gets none of its later messages, while
the member who stayed gets all of them. A private message to the leaver,
sent after the group messages, is the barrier that proves nothing came."""
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
    for c in (bob, carol):
        c.send(":join room")
        c.expect(r"^\* joined room$")

    carol.send(":leave room")
    carol.expect(r"^\* left room$")

    alice.send("#room one")
    alice.expect(r"^\* sent alice-\d+-1 seq=\d+ delivered=1$")
    alice.send("#room two")
    alice.expect(r"^\* sent alice-\d+-2 seq=\d+ delivered=1$")
    alice.send("@carol barrier")

    bob.expect(STAMP + r"alice @ room: one$")
    bob.expect(STAMP + r"alice @ room: two$")
    carol.expect(STAMP + r"alice \u2192 you: barrier$")
    got = carol.out.matching(r" @ room: ")
    check(not got, "carol left the group but received %r" % got)

    # Leaving again is an error; so is sending to the group after leaving.
    carol.send(":leave room")
    carol.expect(r"^! NOT_A_MEMBER")
    carol.send("#room let me back")
    carol.expect(r"^! NOT_A_MEMBER")


if __name__ == "__main__":
    main(test)
