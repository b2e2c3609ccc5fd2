#!/usr/bin/env python3
"""41-token-user: a Login that names a user and brings another user's
token is refused like a wrong password (BAD_CREDENTIALS), leaves the
connection open and not logged in, and counts as a failed login against the
address's limit. A token with an empty user_id, or with its own user's id,
logs in, and its LoginAck carries that same token."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, envelope, main  # noqa: E402

PASSWORD = "correct horse battery"


def login_body(user, password=None, token=None, create=False):
    return encode_fields([(1, user), (3, "it"), (4, password), (5, token),
                          (6, True if create else None)])


def register(h, srv, user):
    """A new account, logged in on its own connection: its token."""
    c = h.raw(srv, "register-" + user)
    c.request("LOGIN", login_body(user, password=PASSWORD, create=True))
    ack = c.expect_frame("LOGIN_ACK")
    check(ack.str(1) == user and ack.str(9), "%s's registration: %r" % (user, ack))
    return ack.str(9)


def attempt(h, srv, name, user, token):
    """One token Login on a new connection: the answer frame."""
    c = h.raw(srv, name)
    rid = c.request("LOGIN", login_body(user, token=token))
    f = c.recv_frame()
    check(f is not None and f.request_id == rid, "%s: no answer to Login: %r" % (name, f))
    return f


def test(h):
    srv = h.server(storage={"engine": "sqlite", "path": os.path.join(h.tmp, "db", "t.db")},
                   accounts={"mode": "password", "password_hash": "min",
                             "max_login_failures": 3, "login_failure_window_s": 60})
    alice_token = register(h, srv, "alice")
    bob_token = register(h, srv, "bob")
    check(alice_token != bob_token, "two accounts got one token")

    # In one write: bob's name with alice's token, then the same token with
    # no name. The first is refused and leaves the connection open and
    # logged out; the second logs in as alice, with her token.
    c = h.raw(srv, "mixed")
    c.send(envelope("LOGIN", 1, login_body("bob", token=alice_token)) +
           envelope("LOGIN", 2, login_body("", token=alice_token)))
    f = c.recv_frame()
    check(f is not None and f.request_id == 1 and f.error_code == "BAD_CREDENTIALS",
          "bob's name with alice's token: %r" % f)
    f = c.expect_frame("LOGIN_ACK")
    check(f.request_id == 2 and f.str(1) == "alice",
          "the token alone logs in as its own user: %r" % f)
    check(f.str(9) == alice_token, "a token login answers with that token: %r" % f.str(9))

    # The token with its own user's name logs in too.
    f = attempt(h, srv, "alice-named", "alice", alice_token)
    check(f.type == "LOGIN_ACK" and f.str(1) == "alice", "alice's name and token: %r" % f)

    # Two more mismatches (either way round) make three failed logins from
    # this address: the limit. Then even a good token is refused for now.
    f = attempt(h, srv, "bob-with-alice", "bob", alice_token)
    check(f.error_code == "BAD_CREDENTIALS", "bob's name, alice's token again: %r" % f)
    f = attempt(h, srv, "alice-with-bob", "alice", bob_token)
    check(f.error_code == "BAD_CREDENTIALS", "alice's name, bob's token: %r" % f)
    f = attempt(h, srv, "after-three", "", bob_token)
    check(f.error_code == "RATE_LIMITED",
          "the mismatches count as failed logins: the fourth try should be limited, got %r" % f)
    check(srv.terminate() == 0, "the server did not stop cleanly")


if __name__ == "__main__":
    main(test)
