#!/usr/bin/env python3
"""95-cli-tty-output: what imcore-cli shows a person on a terminal.
Each message sent shows its delivery state in a few words (sent, stored for
an offline user, or the server's refusal); :history is told from one side
("you → bob", "bob → you"); a body of several lines prints as lines indented
under its header, tabs as spaces; :olu names a user once when the display
name is the id; commands ignore case."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, main  # noqa: E402
from ttyscreen import TtyCli  # noqa: E402

STAMP = r"\[\d\d:\d\d:\d\d\] "


def test(h):
    srv = h.server(storage={"engine": "sqlite", "path": os.path.join(h.tmp, "chat.db")})
    bob = h.cli(srv, "bob")
    carol = h.cli(srv, "carol", args=["--name", "Carol C"])
    alice = TtyCli(h, "alice", srv, "alice")
    alice.expect(r"^\* logged in as alice \(session \d+\)$")
    alice.expect_cursor_line("alice> ")

    # Delivery states.
    alice.type("@bob hi bob\r")
    alice.expect(r"^\* sent to bob$")
    alice.type("@dave are you there?\r")  # never logged in: stored for later
    alice.expect(r"^\* stored for dave \(offline\): delivered at the next login$")
    alice.type(":Create room\r")
    alice.expect(r"^\* created room$")
    bob.send(":join room")
    bob.expect(r"^\* joined room$")
    alice.type("#room hello room\r")
    alice.expect(r"^\* sent to room \(1 online\)$")
    alice.type("#nowhere hello\r")
    alice.expect(r"^! NO_SUCH_GROUP: ")

    # :history from alice's side only.
    bob.send("@alice hi alice")
    alice.expect("^" + STAMP + "bob \u2192 you: hi alice$")
    alice.type(":HISTORY @bob\r")
    alice.expect(r"^\* 2 messages$")
    lines = alice.lines()
    check(any(l.endswith("] you \u2192 bob: hi bob") and l.startswith("  [") for l in lines),
          "no 'you \u2192 bob' in the history:\n" + "\n".join(lines))
    check(any(l.endswith("] bob \u2192 you: hi alice") and l.startswith("  [") for l in lines),
          "no 'bob \u2192 you' in the history:\n" + "\n".join(lines))
    check(not [l for l in lines if "alice \u2192 bob" in l], "the history mixes viewpoints")

    # A body with a newline and a tab, from a client of its own.
    raw = h.raw(srv, "eve")
    raw.login("eve")
    raw.request("PRIVATE_MESSAGE", encode_fields([(1, "alice"),
                                                   (2, b"first line\nsecond\tline\r\nthird"),
                                                   (3, "eve-1")]))
    raw.expect_frame("SEND_ACK")
    alice.expect("^" + STAMP + "eve \u2192 you: first line$")
    alice.expect(r"^    second  line$")
    alice.expect(r"^    third$")
    check(not [l for l in alice.lines() if "line?" in l], "a newline shown as '?'")

    # :olu: the name only when it is not the id.
    alice.type(":OLU\r")
    alice.expect(r"^\* 4 online$")
    lines = alice.lines()
    for want in ("  alice", "  bob", "  carol (Carol C)", "  eve"):
        check(want in lines, "%r not in :olu:\n%s" % (want, "\n".join(lines)))
    check(not [l for l in lines if l in ("  bob (bob)", "  alice (alice)")],
          ":olu repeats an id as its name")

    alice.type(":Q\r")
    check(alice.wait_exit() == 0, ":Q did not exit 0")
    check(carol.running(), "carol stopped")


if __name__ == "__main__":
    main(test)
