#!/usr/bin/env python3
"""90-cli-tty-prompt: imcore-cli on a terminal, typed into as a person would.
A prompt; a message that arrives while a line is half typed is printed above
it, and the prompt and the half-typed line are drawn again below; the line
is then finished and sent whole. Tab completes a command and a user name
seen; the up arrow brings the last line back; commands ignore case."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402
from ttyscreen import TtyCli  # noqa: E402

STAMP = r"^\[\d\d:\d\d:\d\d\] "
UP = "\x1b[A"


def test(h):
    srv = h.server()
    bob = h.cli(srv, "bob")
    alice = TtyCli(h, "alice", srv, "alice")
    alice.expect(r"^\* logged in as alice \(session \d+\)$")
    alice.expect_cursor_line("alice> ")

    half = "@bob second try, typing when"
    alice.type(half)
    alice.expect_cursor_line("alice> " + half)
    bob.send("@alice interrupting you!")
    alice.expect(STAMP + r"bob \u2192 you: interrupting you!$")
    # The message has a line of its own, above the line being typed, which
    # is whole again under the cursor.
    alice.expect_cursor_line("alice> " + half)
    lines = alice.lines()
    check(not [l for l in lines if "when[" in l or "when interrupting" in l],
          "the message landed in the typed line:\n" + "\n".join(lines))
    msg = max(i for i, l in enumerate(lines) if "interrupting you!" in l)
    cur = max(i for i, l in enumerate(lines) if l == "alice> " + half)
    check(msg < cur, "the message is not above the typed line:\n" + "\n".join(lines))

    alice.type(" it came\r")
    bob.expect(STAMP + r"alice \u2192 you: second try, typing when it came$")
    alice.expect(r"^\* sent to bob$")
    alice.expect_cursor_line("alice> ")

    # Tab: ":he" completes to ":help " (any case), "@b" to "@bob " (seen).
    alice.type(":HE\t")
    alice.expect_cursor_line("alice> :help ")
    alice.type("\r")
    alice.expect(r"^  :q +log out and exit$")
    alice.expect_cursor_line("alice> ")
    alice.type("@b\t")
    alice.expect_cursor_line("alice> @bob ")
    alice.type("tabbed\r")
    bob.expect(STAMP + r"alice \u2192 you: tabbed$")
    alice.expect_cursor_line("alice> ")

    # History: the up arrow brings back the last line, then the one before.
    alice.type(UP)
    alice.expect_cursor_line("alice> @bob tabbed")
    alice.type(UP)
    alice.expect_cursor_line("alice> :help")
    alice.type("\x15")  # Ctrl-U: the line is gone
    alice.expect_cursor_line("alice> ")

    # Ctrl-D on an empty line: a clean logout, exit 0.
    alice.type("\x04")
    check(alice.wait_exit() == 0, "alice did not exit 0 after Ctrl-D")


if __name__ == "__main__":
    main(test)
