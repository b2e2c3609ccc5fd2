#!/usr/bin/env python3
"""04-idle: a raw client that logs in and then says nothing is closed after
idle_timeout_s with an Error IDLE_TIMEOUT frame; a CLI client connected all
that time stays logged in, because it pings every heartbeat_s."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402

STAMP = r"^\[\d\d:\d\d:\d\d\] "


def test(h):
    srv = h.server(session={"heartbeat_s": 1, "idle_timeout_s": 2})
    alice = h.cli(srv, "alice")

    silent = h.raw(srv, "silent")
    ack = silent.login("mute")
    check(ack.int(3) == 1 and ack.int(4) == 2,
          "LoginAck announces heartbeat %d s, idle timeout %d s; config says 1 and 2"
          % (ack.int(3), ack.int(4)))
    start = time.monotonic()
    err = silent.expect_error("IDLE_TIMEOUT", timeout=8)
    elapsed = time.monotonic() - start
    check(err.request_id == 0, "the IDLE_TIMEOUT error carries request id %d" % err.request_id)
    silent.expect_eof(timeout=5)
    check(elapsed >= 1.5, "closed for idleness after %.2f s; idle_timeout_s is 2" % elapsed)

    # A second silent client doubles the time alice has been connected,
    # measured by the server's own clock rather than a sleep.
    silent2 = h.raw(srv, "silent2")
    silent2.login("mute2")
    silent2.expect_error("IDLE_TIMEOUT", timeout=8)
    silent2.expect_eof(timeout=5)

    bob = h.cli(srv, "bob")
    bob.send("@alice still there?")
    alice.expect(STAMP + r"bob \u2192 you: still there\?$")
    check(not alice.out.matching(r"^!"), "alice printed errors: %r" % alice.out.matching(r"^!"))
    check(len(alice.out.matching(r"^\* logged in as")) == 1, "alice logged in more than once")
    check(not alice.err.matching(r"reconnecting"), "alice reconnected: %r"
          % alice.err.matching(r"reconnecting|lost"))


if __name__ == "__main__":
    main(test)
