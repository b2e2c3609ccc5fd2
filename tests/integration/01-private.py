#!/usr/bin/env python3
"""01-private: alice and bob exchange private messages through imcore-server;
each sees the other's text once, with the sender's name and the arrow, and
the sender's SendAck reports one delivery."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402

STAMP = r"^\[\d\d:\d\d:\d\d\] "


def test(h):
    srv = h.server()
    alice = h.cli(srv, "alice", args=["--name", "Alice", "--show-acks"])
    bob = h.cli(srv, "bob")

    alice.send("@bob hello")
    bob.expect(STAMP + r"alice \u2192 you: hello$")
    alice.expect(r"^\* sent alice-\d+-1 seq=\d+ delivered=1$")

    bob.send("@alice hi back, with spaces  and UTF-8: h\u00e9")
    alice.expect(STAMP + r"bob \u2192 you: hi back, with spaces  and UTF-8: h\u00e9$")

    # Exactly once each: the barrier above ordered everything before it.
    check(len(bob.out.matching(r"alice \u2192 you: hello$")) == 1, "bob got hello more than once")
    check(not bob.out.matching(r"^\* sent"), "bob printed acks without --show-acks")
    check(not alice.out.matching(r"^!"), "alice printed an error")

    alice.send(":q")
    check(alice.wait_exit() == 0, "alice :q did not exit 0")
    bob.close_stdin()
    check(bob.wait_exit() == 0, "bob did not exit 0 at the end of its input")


if __name__ == "__main__":
    main(test)
