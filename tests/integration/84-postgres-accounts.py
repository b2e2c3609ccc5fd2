#!/usr/bin/env python3
"""84-postgres-accounts: accounts.mode password on the postgres store.
alice and bob register; a private message to an id without an account is
refused (UNKNOWN_USER) and one to bob is stored; after a restart bob logs
in with his token and gets it, and alice with her password. The database
holds password hashes and token hashes, never the password or the token."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import TestSkipped, check, encode_fields, main  # noqa: E402
from durable import next_delivery, private_body, send_private  # noqa: E402
import pg_harness  # noqa: E402

PASSWORD = "correct horse battery"


def login_body(user, password=None, token=None, create=False):
    return encode_fields([(1, user), (3, "it"), (4, password), (5, token),
                          (6, True if create else None)])


def login(h, srv, name, **kw):
    c = h.raw(srv, name)
    c.request("LOGIN", login_body(**kw))
    f = c.recv_frame()
    check(f is not None and f.type == "LOGIN_ACK", "%s: login answered %r" % (name, f))
    return c, f.str(9)


def test(h):
    try:
        pg = pg_harness.PgServer()
    except pg_harness.PgMissing as e:
        raise TestSkipped(str(e))
    try:
        run(h, pg)
    finally:
        pg.close()


def run(h, pg):
    cfg = pg.config(h)
    cfg["accounts"] = {"mode": "password", "password_hash": "min"}
    srv = h.server(**cfg)
    alice, _ = login(h, srv, "alice", user="alice", password=PASSWORD, create=True)
    bob, bob_token = login(h, srv, "bob", user="bob", password=PASSWORD, create=True)
    bob.close()
    rid = alice.request("PRIVATE_MESSAGE", private_body("nobody", "hello?", "a-0"))
    f = alice.expect_frame("ERROR")
    check(f.request_id == rid and f.error_code == "UNKNOWN_USER", "to nobody: %r" % f)
    ack = send_private(alice, "bob", "hello bob", "a-1")
    check(ack.int(2) == 1, "the message to bob was acked as %r" % ack)
    check(srv.terminate() == 0, "the server did not stop cleanly")

    srv = h.server("server2", **cfg)
    bob, _ = login(h, srv, "bob-token", user="", token=bob_token)
    d = next_delivery(bob)
    check(d.body == "hello bob" and d.seq == 1, "bob got %r" % d)
    login(h, srv, "alice-again", user="alice", password=PASSWORD)
    rows = pg.psql_admin("SELECT count(*) FROM users WHERE password_hash LIKE '$argon2id$%'")
    check(rows == ["2"], "the users table holds %r password hashes" % rows)
    dump = "\n".join(pg.psql_admin("SELECT password_hash FROM users")
                     + pg.psql_admin("SELECT encode(hash, 'hex') FROM tokens"))
    check(PASSWORD not in dump and bob_token not in dump, "a secret is stored in clear")


if __name__ == "__main__":
    main(test)
