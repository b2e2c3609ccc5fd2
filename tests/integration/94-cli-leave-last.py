#!/usr/bin/env python3
"""94-cli-leave-last: the last member leaving a group deletes it with its
history, so imcore-cli asks first: ":leave room" as the last member is not
sent and says to type ":leave! room"; the group is still there. With
another member, ":leave" leaves at once. Commands typed after a :leave go
out after it, in the order typed."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402

STAMP = r"^\[\d\d:\d\d:\d\d\] "


def test(h):
    srv = h.server()
    alice = h.cli(srv, "alice")
    bob = h.cli(srv, "bob")

    alice.send(":create room")
    alice.expect(r"^\* created room$")
    alice.send(":LEAVE room")
    alice.expect(r"^! you are the last member of room: leaving deletes it, with its history; "
                 r"to leave anyway, type :leave! room$")
    alice.send(":groups")
    alice.expect(r"^  room  owner=alice members=1/\d+ \[member\]$")

    # With bob in it, alice is not the last: she leaves, and what she typed
    # next goes after the leave (bob, not she, gets the group message).
    bob.send(":join room")
    bob.expect(r"^\* joined room$")
    alice.send(":leave room")
    alice.send("#room after leaving")
    alice.expect(r"^\* left room$")
    alice.expect(r"^! NOT_A_MEMBER")
    check(not bob.out.matching(r"after leaving"), "alice's message went out before her :leave")

    # bob is the last now: :leave! deletes the group.
    bob.send(":leave room")
    bob.expect(r"^! you are the last member of room")
    bob.send(":leave! room")
    bob.expect(r"^\* left room$")
    bob.send(":groups")
    bob.expect(r"^\* 0 groups$")
    # A group that does not exist: the server says so.
    bob.send(":leave nowhere")
    bob.expect(r"^! NO_SUCH_GROUP")


if __name__ == "__main__":
    main(test)
