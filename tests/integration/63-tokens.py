#!/usr/bin/env python3
"""63-tokens: session tokens cannot pile up, and can all be revoked.

- accounts.max_tokens_per_user: 3. Five logins with the password issue five
  tokens; the two oldest are refused (BAD_CREDENTIALS), the three newest
  resume. Another user's token is not touched.
- Logout{everywhere: true} revokes every token of the user, not only the
  session's: none of them resumes afterwards, the password still logs in,
  and bob's token still works.
- imcore-cli's :logout-all does the same and exits 0.
(Expiry in the background is tested in tests/accounts_sodium: the shortest
token_ttl_s is a minute.)"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, main  # noqa: E402

PASSWORD = "correct horse battery"


def login_body(user="", password=None, token=None, create=False):
    return encode_fields([(1, user), (3, "it"), (4, password), (5, token),
                          (6, True if create else None)])


class Logins:
    def __init__(self, h, srv):
        self.h, self.srv, self.n = h, srv, 0

    def attempt(self, **kw):
        """One Login on a new connection: (connection, answer)."""
        self.n += 1
        c = self.h.raw(self.srv, "login-%d" % self.n)
        c.request("LOGIN", login_body(**kw))
        f = c.recv_frame()
        check(f is not None, "no answer to login %d" % self.n)
        return c, f

    def token(self, user, create=False):
        c, f = self.attempt(user=user, password=PASSWORD, create=create)
        check(f.type == "LOGIN_ACK" and len(f.str(9)) == 64, "%s's login: %r" % (user, f))
        return c, f.str(9)

    def resumes(self, token):
        """The connection if token logs in, else None (it was refused)."""
        c, f = self.attempt(token=token)
        if f.type == "LOGIN_ACK":
            return c
        check(f.error_code == "BAD_CREDENTIALS", "a refused token: %r" % f)
        return None


def test(h):
    cfg = {"storage": {"engine": "sqlite", "path": os.path.join(h.tmp, "db", "imcore.db")},
           "accounts": {"mode": "password", "password_hash": "min", "max_login_failures": 0,
                        "max_tokens_per_user": 3}}
    srv = h.server(**cfg)
    L = Logins(h, srv)

    _, bob = L.token("bob", create=True)
    tokens = [L.token("alice", create=True)[1]]
    for _ in range(4):
        tokens.append(L.token("alice")[1])
    alive = [L.resumes(t) is not None for t in tokens]
    check(alive == [False, False, True, True, True],
          "tokens 1..5 of alice with a cap of 3 resume: %r" % alive)
    check(L.resumes(bob) is not None, "bob's token was dropped with alice's")

    # Log out everywhere, from a session resumed with one of the tokens.
    c = L.resumes(tokens[4])
    check(c is not None, "alice's newest token")
    c.request("LOGOUT", encode_fields([(1, True)]))
    c.expect_frame("OK")
    c.expect_eof()
    alive = [L.resumes(t) is not None for t in tokens[2:]]
    check(alive == [False, False, False], "after Logout{everywhere} alice's tokens: %r" % alive)
    check(L.resumes(bob) is not None, "bob's token went with alice's")
    _, fresh = L.token("alice")

    # A plain Logout revokes only its own token.
    c, other = L.token("alice")
    c.request("LOGOUT")
    c.expect_frame("OK")
    check(L.resumes(other) is None, "a plain Logout kept its token")
    check(L.resumes(fresh) is not None, "a plain Logout revoked another token")

    # The CLI: :logout-all revokes the tokens of every other device too.
    _, t1 = L.token("alice")
    secret = h.write("alice.pw", PASSWORD + "\n")
    cli = h.cli(srv, "alice", args=["--password-file", secret])
    cli.send(":logout-all")
    check(cli.wait_exit() == 0, "the CLI did not exit 0 after :logout-all")
    alive = [L.resumes(t) is not None for t in (fresh, t1)]
    check(alive == [False, False], "after :logout-all alice's tokens: %r" % alive)
    check(srv.terminate() == 0, "the server did not stop cleanly")


if __name__ == "__main__":
    main(test)
