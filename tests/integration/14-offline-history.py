#!/usr/bin/env python3
"""14-offline-history: with the durable store (storage.engine: sqlite), a
message to a user who is offline is stored and delivered at their next
login, exactly once: the CLI acks it, so the login after that does not get
it again. :history shows the conversation, also after a server restart on
the same database. Skipped by servers without storage.engine."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import TestSkipped, check, main  # noqa: E402

STAMP = r"\[\d\d:\d\d:\d\d\] "


def test(h):
    storage = {"engine": "sqlite", "path": os.path.join(h.tmp, "imcore.db")}
    if not h.server_accepts(storage=storage):
        raise TestSkipped("the server has no storage.engine: sqlite")
    srv = h.server(storage=storage)
    port = srv.port
    alice = h.cli(srv, "alice", args=["--show-acks"])
    bob = h.cli(srv, "bob", name="bob-1")
    bob.send(":q")
    check(bob.wait_exit() == 0, "bob :q did not exit 0")

    alice.send("@bob while you were out")
    alice.expect(r"^\* sent alice-\d+-1 seq=\d+ delivered=0$")

    bob = h.cli(srv, "bob", name="bob-2")
    bob.expect("^" + STAMP + r"alice \u2192 you: while you were out$")
    bob.send(":q")
    check(bob.wait_exit() == 0, "bob-2 :q did not exit 0")

    # bob-2 acked it: bob-3 does not get it again. alice's next message is
    # the barrier that shows nothing older is still on its way.
    bob = h.cli(srv, "bob", name="bob-3")
    alice.send("@bob barrier")
    bob.expect("^" + STAMP + r"alice \u2192 you: barrier$")
    again = bob.out.matching(r"^\[.*while you were out")  # live, not :history
    check(not again, "a message acked by the previous session came again: %r" % again)

    bob.send(":history @alice")
    bob.expect("^  " + STAMP + r"alice \u2192 you: while you were out$")
    bob.expect("^  " + STAMP + r"alice \u2192 you: barrier$")
    bob.expect(r"^\* 2 messages$")
    alice.send(":history @bob 1")
    alice.expect("^  " + STAMP + r"alice \u2192 bob: barrier$")
    alice.expect(r"^\* 1 message$")
    alice.send(":create kept")
    alice.expect(r"^\* created kept$")

    # A restart on the same database keeps messages and groups.
    check(srv.terminate() == 0, "the server did not exit 0 on SIGTERM")
    srv = h.server("server-again", storage=storage, listen={"port": port})
    alice.expect_login(timeout=15)
    bob.expect_login(timeout=15)
    since = bob.out.mark()
    bob.send(":history @alice")
    bob.expect(r"^\* 2 messages$")
    check(len(bob.out.matching(r"^  " + STAMP + r"alice \u2192 you: ", since)) == 2,
          "history after the restart: %r" % bob.out.matching(r"^  ", since))
    bob.send(":groups")
    bob.expect(r"^  kept  owner=alice members=1/\d+$")
    check(not bob.out.matching(r"^\[.*while you were out$", since),
          "the restart redelivered an acked message")


if __name__ == "__main__":
    main(test)
