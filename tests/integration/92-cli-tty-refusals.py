#!/usr/bin/env python3
"""92-cli-tty-refusals: a login refused for a reason that retrying cannot
change ends imcore-cli on a terminal with the server's message and exit 1,
instead of reconnecting for ever: a plugin's service account (REFUSED), a
wrong password (BAD_CREDENTIALS). --register on a terminal asks for the
password twice, and two that differ stop it before anything is sent."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402
from ttyscreen import TtyCli  # noqa: E402

TEST_PLUGINS = os.environ.get("IMCORE_TEST_PLUGIN_DIR", "")


def refused(h, srv, user, code, env=None, args=()):
    cli = TtyCli(h, user, srv, user, args=list(args), env=env)
    cli.expect(r"^! %s: " % code)
    rc = cli.wait_exit()
    check(rc == 1, "%s: exit %d after %s, not 1" % (user, rc, code))
    check(not [l for l in cli.lines() if "retrying" in l or "logged in" in l],
          "%s: tried again after %s:\n%s" % (user, code, "\n".join(cli.lines())))


def test(h):
    check(TEST_PLUGINS, "IMCORE_TEST_PLUGIN_DIR must be set")
    # A service account: the echo_bot plugin speaks for "echo".
    srv = h.server(plugins=[{"name": "echo_bot",
                             "path": os.path.join(TEST_PLUGINS, "echo_bot.so")}])
    refused(h, srv, "echo", "REFUSED")

    # Passwords.
    cfg = {"storage": {"engine": "sqlite", "path": os.path.join(h.tmp, "accounts.db")},
           "accounts": {"mode": "password", "password_hash": "min", "max_login_failures": 0}}
    srv2 = h.server("server-accounts", **cfg)
    secret = h.write("alice.pw", "correct horse battery\n")
    alice = h.cli(srv2, "alice", args=["--register", "--password-file", secret])
    alice.send(":q")
    check(alice.wait_exit() == 0, "alice did not register and leave")
    refused(h, srv2, "alice", "BAD_CREDENTIALS", env={"IMCORE_PASSWORD": "not the password"})

    # --register asks twice on the terminal; a mismatch is bad usage.
    bob = TtyCli(h, "bob", srv2, "bob", args=["--register"])
    bob.expect(r"^New password:")
    bob.type("bob's password\r")
    bob.expect(r"Once more:")
    bob.type("bob's passwort\r")
    bob.expect(r"the two passwords differ")
    check(bob.wait_exit() == 2, "bob: a mismatch did not exit 2")
    carol = TtyCli(h, "carol", srv2, "carol", args=["--register"])
    carol.expect(r"^New password:")
    carol.type("carol's password\r")
    carol.expect(r"Once more:")
    carol.type("carol's password\r")
    carol.expect(r"^\* logged in as carol \(session \d+\)$")
    carol.expect_cursor_line("carol> ")
    carol.type(":q\r")
    check(carol.wait_exit() == 0, "carol did not exit 0 after :q")


if __name__ == "__main__":
    main(test)
