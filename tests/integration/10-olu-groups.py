#!/usr/bin/env python3
"""10-olu-groups: :olu lists the users online with their display names and a
count; :groups lists each group with its owner, members/max and a [member]
flag that is set only for the asking user's own groups."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402


def test(h):
    srv = h.server()
    alice = h.cli(srv, "alice", args=["--name", "Alice"])
    bob = h.cli(srv, "bob", args=["--name", "Bobby B"])

    alice.send(":olu")
    alice.expect(r"^\* 2 online$")
    users = alice.out.matching(r"^  \S+ \(.*\)$")
    check(sorted(users) == ["  alice (Alice)", "  bob (Bobby B)"], "online users: %r" % users)

    alice.send(":create room 10")
    alice.expect(r"^\* created room$")
    bob.send(":groups")
    bob.expect(r"^  room  owner=alice members=1/10$")
    bob.expect(r"^\* 1 group$")

    bob.send(":join room")
    bob.expect(r"^\* joined room$")
    bob.send(":groups")
    bob.expect(r"^  room  owner=alice members=2/10 \[member\]$")
    alice.send(":groups")
    alice.expect(r"^  room  owner=alice members=2/10 \[member\]$")

    alice.send(":create other")
    alice.expect(r"^\* created other$")
    bob.send(":groups")
    m = bob.expect(r"^  other  owner=alice members=1/(\d+)$")
    check(int(m.group(1)) > 0, "a default max_members of 0")
    bob.expect(r"^\* 2 groups$")

    bob.send(":q")
    check(bob.wait_exit() == 0, "bob :q did not exit 0")
    since = alice.out.mark()
    alice.send(":olu")
    alice.expect(r"^\* 1 online$")
    users = alice.out.matching(r"^  \S+ \(", since)
    check(users == ["  alice (Alice)"], "online after bob's :q: %r" % users)


if __name__ == "__main__":
    main(test)
