#!/usr/bin/env python3
"""15-accounts: against a server with accounts.mode password, the CLI
registers (--register) and logs in with a password from a file or from
$IMCORE_PASSWORD; a wrong password, an unknown user, a taken id and a
missing password each print the server's error and exit 1; after a server
restart the CLI logs in again by itself with its session token. Skipped by
servers without accounts."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import TestSkipped, check, main  # noqa: E402

STAMP = r"^\[\d\d:\d\d:\d\d\] "


def test(h):
    cfg = {"storage": {"engine": "sqlite", "path": os.path.join(h.tmp, "accounts.db")},
           "accounts": {"mode": "password", "password_hash": "min",
                        "max_login_failures": 0}}
    if not h.server_accepts(**cfg):
        raise TestSkipped("the server has no accounts.mode: password")
    srv = h.server(**cfg)
    port = srv.port
    secret = h.write("alice.pw", "correct horse battery\n")
    wrong = h.write("wrong.pw", "not the password\n")

    alice = h.cli(srv, "alice", args=["--register", "--password-file", secret])
    os.environ["IMCORE_PASSWORD"] = "bob's password"
    try:
        bob = h.cli(srv, "bob", args=["--register"])
    finally:
        del os.environ["IMCORE_PASSWORD"]
    alice.send("@bob with accounts")
    bob.expect(STAMP + r"alice \u2192 you: with accounts$")

    def refused(user, args, code):
        c = h.cli(srv, user, name="%s-refused-%s" % (user, code), args=args, login=False)
        c.expect(r"^! %s" % code)
        check(c.wait_exit() == 1, "%s: %s did not exit 1" % (user, code))
        check(not c.out.matching(r"logged in"), "%s: logged in despite %s" % (user, code))
        check(not c.err.matching(r"reconnecting"), "%s: retried after %s" % (user, code))

    refused("alice", ["--password-file", wrong], "BAD_CREDENTIALS")
    refused("nobody", ["--password-file", secret], "NOT_FOUND")
    refused("alice", ["--register", "--password-file", secret], "USER_EXISTS")
    refused("carol", [], "INVALID_ARGUMENT")

    rc, _, err = h.run([h.cli_path, "--port", str(port), "--user", "x", "--password-file",
                        os.path.join(h.tmp, "missing.pw")])
    check(rc == 2 and "missing.pw" in err, "a missing password file: exit %d, %r" % (rc, err))

    # A restart: both log in again by themselves (with their tokens, which
    # the server keeps in its database), then chat.
    check(srv.terminate() == 0, "the server did not exit 0 on SIGTERM")
    srv = h.server("server-again", listen={"port": port}, **cfg)
    alice.expect_login(timeout=15)
    bob.expect_login(timeout=15)
    bob.send("@alice still me")
    alice.expect(STAMP + r"bob \u2192 you: still me$")
    check(not alice.out.matching(r"^! BAD_CREDENTIALS"), "alice's token was refused")


if __name__ == "__main__":
    main(test)
