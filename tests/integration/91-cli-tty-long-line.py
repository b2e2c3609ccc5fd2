#!/usr/bin/env python3
"""91-cli-tty-long-line: on a terminal a line is not cut at the 4,095 bytes
of the terminal's canonical mode: a 9,000-byte message typed (pasted) into
imcore-cli arrives whole. A line over the server's max_body_bytes is refused
by the client, with its size, and never sent: the server's own refusal
(MESSAGE_TOO_LARGE) does not come, and the receiver gets nothing."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402
from ttyscreen import TtyCli  # noqa: E402

STAMP = r"^\[\d\d:\d\d:\d\d\] "
MAX_BODY = 10000


def test(h):
    srv = h.server(limits={"max_body_bytes": MAX_BODY})
    bob = h.cli(srv, "bob")
    alice = TtyCli(h, "alice", srv, "alice")
    alice.expect(r"^\* logged in as alice \(session \d+\)$")
    alice.expect_cursor_line("alice> ")

    body = "".join("%08d " % i for i in range(1000))[:8999] + "."
    check(len(body) == 9000, "the body is %d bytes" % len(body))
    alice.type("@bob " + body + "\r")
    got = bob.expect(STAMP + r"alice \u2192 you: (\S.*)$", timeout=30).group(1)
    check(got == body, "bob got %d bytes of 9000 (ends %r)" % (len(got), got[-20:]))
    alice.expect(r"^\* sent to bob$")

    over = "y" * (MAX_BODY + 1)
    alice.type("@bob " + over + "\r")
    alice.expect(r"^! not sent: the message is %d bytes, over the limit of %d "
                 r"\(max_body_bytes\)$" % (MAX_BODY + 1, MAX_BODY), timeout=30)
    alice.type("@bob barrier\r")
    bob.expect(STAMP + r"alice \u2192 you: barrier$")
    check(not bob.out.matching(r"yyyyyyyyyy"), "the line over max_body_bytes was delivered")
    check(not [l for l in alice.lines() if "MESSAGE_TOO_LARGE" in l],
          "the line over max_body_bytes was sent to the server")


if __name__ == "__main__":
    main(test)
