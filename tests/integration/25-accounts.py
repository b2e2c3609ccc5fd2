#!/usr/bin/env python3
"""25-accounts: registration and login with a password, session tokens,
logout revoking the token, a clear error for each refusal, no password or
token in clear in the logs or the database, and failed logins from one
address slowed down to max_login_failures per window."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, main, wait_until  # noqa: E402
from durable import send_private  # noqa: E402

PASSWORD = "correct horse battery"


def login_body(user, password=None, token=None, create=False, display=None):
    return encode_fields([(1, user), (2, display), (3, "it"), (4, password), (5, token),
                          (6, True if create else None)])


def attempt(h, srv, name, **kw):
    """One Login on a new connection: the answer frame."""
    c = h.raw(srv, name)
    c.request("LOGIN", login_body(**kw))
    f = c.recv_frame()
    check(f is not None, "%s: no answer to Login" % name)
    return c, f


def accounts_config(h, db, **acc):
    a = {"mode": "password", "password_hash": "min"}
    a.update(acc)
    return {"storage": {"engine": "sqlite", "path": os.path.join(h.tmp, db)}, "accounts": a}


def test_accounts(h):
    cfg = accounts_config(h, "accounts.db", max_login_failures=0)
    srv = h.server(**cfg)
    alice, ack = attempt(h, srv, "alice-register", user="alice", password=PASSWORD, create=True,
                         display="Alice")
    check(ack.type == "LOGIN_ACK", "registration answered %r" % ack)
    token = ack.str(9)
    check(re.fullmatch(r"[0-9a-f]{64}", token), "token %r" % token)

    _, f = attempt(h, srv, "again", user="alice", password="another password", create=True)
    check(f.error_code == "USER_EXISTS", "a taken id: %r" % f)
    _, f = attempt(h, srv, "nobody", user="nobody", password=PASSWORD)
    check(f.error_code == "NOT_FOUND", "an unknown user: %r" % f)
    _, f = attempt(h, srv, "wrong", user="alice", password="wrong password")
    check(f.error_code == "BAD_CREDENTIALS", "a wrong password: %r" % f)
    _, f = attempt(h, srv, "short", user="alice", password="short")
    check(f.error_code == "INVALID_ARGUMENT" and "8" in f.str(2), "a short password: %r" % f)
    _, f = attempt(h, srv, "none", user="alice")
    check(f.error_code == "INVALID_ARGUMENT", "no password at all: %r" % f)
    _, f = attempt(h, srv, "badtoken", user="", token="0" * 64)
    check(f.error_code == "BAD_CREDENTIALS", "an unknown token: %r" % f)

    # The token logs in (replacing the first session), and works for sending.
    bob, f = attempt(h, srv, "bob-register", user="bob", password=PASSWORD, create=True)
    check(f.type == "LOGIN_ACK", "bob's registration: %r" % f)
    alice2, f = attempt(h, srv, "alice-token", user="", token=token)
    check(f.type == "LOGIN_ACK" and f.str(1) == "alice", "login by token: %r" % f)
    alice.expect_error("SESSION_REPLACED")
    send_private(alice2, "bob", "hello with a token", "t-1")
    d = bob.expect_frame("DELIVERY")
    check(d.str(2) == "alice" and d.str(9) == "Alice", "bob got %r" % d)

    # Logout revokes the token of that session.
    alice3, f = attempt(h, srv, "alice-password", user="alice", password=PASSWORD)
    token3 = f.str(9)
    check(f.type == "LOGIN_ACK" and token3 and token3 != token, "a second token: %r" % f)
    alice3.request("LOGOUT")
    alice3.expect_frame("OK")
    _, f = attempt(h, srv, "alice-revoked", user="", token=token3)
    check(f.error_code == "BAD_CREDENTIALS", "a revoked token: %r" % f)

    check(srv.terminate() == 0, "the server did not stop cleanly")
    log = srv.err.text()
    check(PASSWORD not in log and token not in log and token3 not in log,
          "a password or token is in the log")
    with open(cfg["storage"]["path"], "rb") as f:
        data = f.read()
    for secret in (PASSWORD, token, token3):
        check(secret.encode() not in data, "a secret is stored in clear")


def test_rate_limit(h):
    srv = h.server("limited", **accounts_config(h, "limited.db", max_login_failures=3,
                                                 login_failure_window_s=2))
    _, f = attempt(h, srv, "reg", user="carol", password=PASSWORD, create=True)
    check(f.type == "LOGIN_ACK", "carol's registration: %r" % f)
    for i in range(3):
        _, f = attempt(h, srv, "guess-%d" % i, user="carol", password="guess %d!" % i)
        check(f.error_code == "BAD_CREDENTIALS", "guess %d: %r" % (i, f))
    _, f = attempt(h, srv, "blocked", user="carol", password=PASSWORD)
    check(f.error_code == "RATE_LIMITED", "the fourth try from the address: %r" % f)
    # The window ends and the right password works again.
    start = time.monotonic()

    def allowed():
        _, f = attempt(h, srv, "retry", user="carol", password=PASSWORD)
        return f if f.type == "LOGIN_ACK" else None
    wait_until(allowed, 10, "logins from the address to be allowed again", interval=0.2)
    check(time.monotonic() - start > 0.5, "the limit lifted too early")


def test(h):
    test_accounts(h)
    test_rate_limit(h)


if __name__ == "__main__":
    main(test)
