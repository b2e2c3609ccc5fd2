#!/usr/bin/env python3
"""11-cli-queue-eof: the CLI as a script runs against the real server. Lines
typed before the server even listens are queued and sent after the login;
a piped script runs to its end, waits for its answers and exits 0; --stay
keeps a receiver online after its input ends; SIGINT and SIGTERM log out
cleanly with status 0."""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, free_port, main  # noqa: E402

STAMP = r"^\[\d\d:\d\d:\d\d\] "


def test(h):
    port = free_port()
    early = h.cli(port, "alice", login=False)
    early.send(":create early")
    early.err.expect(r"cannot connect to 127\.0\.0\.1:%d" % port)
    early.err.expect(r"\* reconnecting in \d+ ms")
    srv = h.server(listen={"port": port})
    early.expect_login(timeout=15)
    early.expect(r"^\* created early$")

    # A receiver that outlives its (empty) input.
    carol = h.cli(srv, "carol", args=["--stay"])
    carol.close_stdin()

    script = (":join early\n"
              "#early from a script\n"
              "@carol also from the script\n"
              ":groups\n"
              "@nobody lost\n").encode()
    rc, out, err = h.run([h.cli_path, "--port", str(port), "--user", "bob"], stdin=script)
    check(rc == 0, "the script client exited %d\n%s\n%s" % (rc, out, err))
    lines = out.splitlines()
    for want in ["* joined early", "  early  owner=alice members=2/1000 [member]"]:
        check(any(l.startswith(want.split(" [")[0]) for l in lines),
              "%r not in the script's output:\n%s" % (want, out))
    check(any(l.startswith("! USER_OFFLINE") for l in lines),
          "no USER_OFFLINE in the script's output:\n%s" % out)
    check(lines[0].startswith("* logged in as bob"), "the script did not log in first:\n" + out)
    early.expect(STAMP + r"bob @ early: from a script$")
    carol.expect(STAMP + r"bob \u2192 you: also from the script$")

    # carol's input ended long ago; she is still there, until SIGTERM.
    early.send("@carol still with us?")
    carol.expect(STAMP + r"alice \u2192 you: still with us\?$")
    carol.signal(signal.SIGTERM)
    check(carol.wait_exit() == 0, "SIGTERM did not exit 0")
    early.send("@carol gone?")
    early.expect(r"^! USER_OFFLINE")

    early.signal(signal.SIGINT)
    check(early.wait_exit() == 0, "SIGINT did not exit 0")


if __name__ == "__main__":
    main(test)
