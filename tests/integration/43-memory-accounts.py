#!/usr/bin/env python3
"""43-memory-accounts: password accounts on the memory store. Accounts go
through the storage port's account operation, so `storage.engine: memory`
serves `accounts.mode: password`: registration, login by password, resume
by token, a wrong password refused, a message to an id without an account
refused with UNKNOWN_USER (and to an offline user with USER_OFFLINE), and a
WARN at start that the accounts last until the server stops. An engine
whose table has no account operation is refused at start: exit 2, the line
of accounts.mode, the engine's name and the way out."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import BASE_CONFIG, check, encode_fields, main, merge, to_yaml  # noqa: E402
from durable import next_delivery, private_body, send_private  # noqa: E402

PASSWORD = "correct horse battery"
PLUGINS = os.environ.get("IMCORE_PLUGIN_DIR", "")
TEST_PLUGINS = os.environ.get("IMCORE_TEST_PLUGIN_DIR", "")


def login_body(user, password=None, token=None, create=False):
    return encode_fields([(1, user), (3, "it"), (4, password), (5, token),
                          (6, True if create else None)])


def attempt(h, srv, name, **kw):
    """One Login on a new connection: the connection and the answer."""
    c = h.raw(srv, name)
    c.request("LOGIN", login_body(**kw))
    f = c.recv_frame()
    check(f is not None, "%s: no answer to Login" % name)
    return c, f


def test_memory(h):
    srv = h.server(storage={"engine": "memory"},
                   accounts={"mode": "password", "password_hash": "min"},
                   limits={"messages_per_second": 0})
    srv.err.expect(r"WARN .*accounts: kept by storage\.engine memory, which is not durable: "
                   r"accounts and their tokens last until the server stops")

    alice, f = attempt(h, srv, "alice", user="alice", password=PASSWORD, create=True)
    check(f.type == "LOGIN_ACK" and f.str(1) == "alice", "alice's registration: %r" % f)
    token = f.str(9)
    check(re.fullmatch(r"[0-9a-f]{64}", token), "token %r" % token)
    _, f = attempt(h, srv, "again", user="alice", password="another password", create=True)
    check(f.error_code == "USER_EXISTS", "a taken id: %r" % f)

    bob, f = attempt(h, srv, "bob", user="bob", password=PASSWORD, create=True)
    check(f.type == "LOGIN_ACK", "bob's registration: %r" % f)
    _, f = attempt(h, srv, "bob-wrong", user="bob", password="not his password")
    check(f.error_code == "BAD_CREDENTIALS", "a wrong password: %r" % f)
    _, f = attempt(h, srv, "nobody", user="nobody", password=PASSWORD)
    check(f.error_code == "NOT_FOUND", "an unknown user: %r" % f)

    # Log in by password (a new token), then resume by the first token.
    bob2, f = attempt(h, srv, "bob-password", user="bob", password=PASSWORD)
    check(f.type == "LOGIN_ACK" and f.str(1) == "bob" and f.str(9), "bob's login: %r" % f)
    bob.expect_error("SESSION_REPLACED")
    alice2, f = attempt(h, srv, "alice-token", user="", token=token)
    check(f.type == "LOGIN_ACK" and f.str(1) == "alice", "login by token: %r" % f)
    alice.expect_error("SESSION_REPLACED")

    send_private(alice2, "bob", "hello bob", "m-1")
    check(next_delivery(bob2).body == "hello bob", "bob did not get alice's message")

    # No account: UNKNOWN_USER. An account, offline: USER_OFFLINE.
    rid = alice2.request("PRIVATE_MESSAGE", private_body("ghost", "anyone?", "m-2"))
    e = alice2.expect_error("UNKNOWN_USER")
    check(e.request_id == rid and e.str(3) == "m-2", "the refusal %r" % e)
    carol, f = attempt(h, srv, "carol", user="carol", password=PASSWORD, create=True)
    check(f.type == "LOGIN_ACK", "carol's registration: %r" % f)
    carol.request("LOGOUT")
    carol.expect_frame("OK")
    rid = alice2.request("PRIVATE_MESSAGE", private_body("carol", "there?", "m-3"))
    e = alice2.expect_error("USER_OFFLINE")
    check(e.request_id == rid, "the refusal %r" % e)
    # The connection stays, and messages go on in order.
    send_private(alice2, "bob", "still here", "m-4")
    check(next_delivery(bob2).body == "still here", "bob did not get the last message")

    # Log out revokes that token.
    alice2.request("LOGOUT")
    alice2.expect_frame("OK")
    _, f = attempt(h, srv, "alice-revoked", user="", token=token)
    check(f.error_code == "BAD_CREDENTIALS", "a revoked token: %r" % f)

    check(srv.terminate() == 0, "the server did not stop cleanly")
    check(PASSWORD not in srv.err.text() and token not in srv.err.text(),
          "a password or token is in the log")


def test_engine_without_accounts(h):
    d = os.path.join(h.tmp, "short-plugins")
    os.makedirs(d, exist_ok=True)
    for name, src in (("storage_short.so", os.path.join(TEST_PLUGINS, "storage_short.so")),
                      ("transport_tcp.so", os.path.join(PLUGINS, "transport_tcp.so"))):
        check(os.path.exists(src), "%s was not built" % src)
        os.symlink(src, os.path.join(d, name))
    cfg = merge(BASE_CONFIG, {"plugin_dir": d, "storage": {"engine": "short"},
                              "accounts": {"mode": "password", "password_hash": "min"}})
    path = h.write("short.yaml", to_yaml(cfg))
    lines = open(path).read().split("\n")
    line = next(i for i, l in enumerate(lines) if re.match(r"\s*mode:", l)) + 1
    rc, _, err = h.run([h.server_path, "--config", path])
    check(rc == 2, "exit %d, not 2:\n%s" % (rc, err))
    want = (r"%s:%d: accounts\.mode: storage\.engine short keeps no accounts: use "
            r"accounts\.mode open or an engine with accounts \(sqlite, memory, postgres\)"
            % (re.escape(path), line))
    check(re.search(want, err), "no %r in:\n%s" % (want, err))


def test(h):
    check(PLUGINS and TEST_PLUGINS, "IMCORE_PLUGIN_DIR and IMCORE_TEST_PLUGIN_DIR must be set")
    test_memory(h)
    test_engine_without_accounts(h)


if __name__ == "__main__":
    main(test)
