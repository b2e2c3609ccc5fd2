#!/usr/bin/env python3
"""07-reconnect: the server stops (SIGTERM) and starts again on the same port;
the CLI clients notice, reconnect with backoff, log in again by themselves,
and chat. A line typed while disconnected is sent after the new login."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402

STAMP = r"^\[\d\d:\d\d:\d\d\] "


def test(h):
    srv = h.server()
    port = srv.port
    alice = h.cli(srv, "alice")
    bob = h.cli(srv, "bob")

    rc = srv.terminate()
    check(rc == 0, "the server exited %d on SIGTERM" % rc)
    alice.err.expect(r"\* reconnecting in \d+ ms")
    bob.err.expect(r"\* reconnecting in \d+ ms")

    # At least one attempt finds no server and is retried later.
    alice.err.expect(r"cannot connect to 127\.0\.0\.1:%d: .*refused" % port)
    alice.err.expect(r"\* reconnecting in \d+ ms")

    # Typed while there is no server: queued for the next session. (Not a
    # message to bob: he may log in again after alice's queue is sent.)
    alice.send(":create typed-while-away")

    srv2 = h.server("server-again", listen={"port": port})
    check(srv2.port == port, "the second server listens on %d, not %d" % (srv2.port, port))
    alice.expect_login(timeout=15)
    bob.expect_login(timeout=15)
    alice.expect(r"^\* created typed-while-away$")
    alice.send("@bob hello again")
    bob.expect(STAMP + r"alice \u2192 you: hello again$")
    bob.send("@alice welcome back")
    alice.expect(STAMP + r"bob \u2192 you: welcome back$")
    # Nothing was in flight, so nothing is reported lost; the server said why
    # it closed the connections.
    check(not alice.out.matching(r"not confirmed"), "alice reported a request lost")
    check(alice.out.matching(r"^! SERVER_SHUTDOWN"), "alice was not told of the shutdown")


if __name__ == "__main__":
    main(test)
