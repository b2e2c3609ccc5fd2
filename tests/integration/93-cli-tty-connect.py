#!/usr/bin/env python3
"""93-cli-tty-connect: what a person at a terminal sees of connections.
A first connection to a port where no server listens says "no server at
HOST:PORT (is it running?)" after a few tries and exits 1; with --stay it
says so once and keeps trying. A server that goes away and comes back is one status line
each way ("* disconnected, retrying…", "* reconnected"), with no log lines
at the default level."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, free_port, main  # noqa: E402
from ttyscreen import TtyCli  # noqa: E402


def test(h):
    port = free_port()
    lost = TtyCli(h, "lost", port, "alice")
    lost.expect(r"^! no server at 127\.0\.0\.1:%d \(is it running\?\)$" % port)
    check(lost.wait_exit() == 1, "no server: exit is not 1")

    # --stay: tries on. The log (at info) shows the attempts; more than
    # the few after which the first connection gives up without --stay.
    stay = TtyCli(h, "stay", port, "alice", args=["--stay", "--log-level", "info"])
    stay.wait_for(lambda s: len([l for l in s.lines() if "cannot connect to" in l]) >= 6,
                  "six attempts", timeout=20)
    check(stay.running(), "--stay gave up")
    said = [l for l in stay.lines() if "no server at" in l]
    check(said == ["! no server at 127.0.0.1:%d (is it running?): still trying (--stay)" % port],
          "--stay said %r" % said)
    stay.type("\x03")  # Ctrl-C: a clean stop
    check(stay.wait_exit() == 0, "Ctrl-C did not exit 0")

    # A server that goes and comes back: one line each way.
    srv = h.server()
    port = srv.port
    alice = TtyCli(h, "alice", srv, "alice")
    alice.expect(r"^\* logged in as alice \(session \d+\)$")
    alice.type("half typed")
    alice.expect_cursor_line("alice> half typed")
    check(srv.terminate() == 0, "the server did not stop cleanly")
    alice.expect("^\\* disconnected, retrying\u2026$")
    alice.expect_cursor_line("alice> half typed")
    srv2 = h.server("server-again", listen={"port": port})
    check(srv2.port == port, "the second server listens on %d, not %d" % (srv2.port, port))
    alice.expect(r"^\* reconnected \(session \d+\)$", timeout=15)
    alice.expect_cursor_line("alice> half typed")
    lines = alice.lines()
    check(len([l for l in lines if "disconnected" in l]) == 1,
          "more than one status line:\n" + "\n".join(lines))
    noise = [l for l in lines if re.search(r"WARN|INFO|reconnecting in|cannot connect", l)]
    check(not noise, "log lines on the screen at the default level:\n" + "\n".join(noise))


if __name__ == "__main__":
    main(test, needs_server=True)
