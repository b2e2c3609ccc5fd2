#!/usr/bin/env python3
"""62-durable-db-deleted: the database deleted under a running server.

After rm of the SQLite file and its -wal and -shm, SQLite goes on writing to
the files it has open, which no later start will see. The server must stop
acknowledging: every message sent after the rm is answered INTERNAL with a
message that says the file was deleted (never a SendAck), a registration
too, and the log says so once at ERROR (once for the store, once for the
accounts). At the next start, a new database is created, and the log says
that too (WARN), as it does at the very first start."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, main  # noqa: E402
from durable import private_body, send_private  # noqa: E402

PASSWORD = "correct horse battery"
NEW_DB = r"WARN .*storage: .*imcore\.db held no database: started a new, empty one"


def login_body(user, create=False):
    return encode_fields([(1, user), (3, "it"), (4, PASSWORD), (6, True if create else None)])


def register(h, srv, user):
    c = h.raw(srv, user)
    c.request("LOGIN", login_body(user, create=True))
    return c, c.recv_frame()


def test(h):
    path = os.path.join(h.tmp, "db", "imcore.db")
    cfg = {"storage": {"engine": "sqlite", "path": path},
           "accounts": {"mode": "password", "password_hash": "min"},
           "limits": {"messages_per_second": 0}}
    srv = h.server(**cfg)
    srv.err.expect(NEW_DB)

    alice, f = register(h, srv, "alice")
    check(f.type == "LOGIN_ACK", "alice's registration: %r" % f)
    _, f = register(h, srv, "bob")
    check(f.type == "LOGIN_ACK", "bob's registration: %r" % f)
    for i in range(3):
        send_private(alice, "bob", "before %d" % i, "b-%d" % i)

    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)

    for i in range(20):
        rid = alice.request("PRIVATE_MESSAGE", private_body("bob", "after %d" % i, "a-%d" % i))
        f = alice.recv_frame()
        check(f is not None and f.request_id == rid, "no answer to message %d: %r" % (i, f))
        check(f.type == "ERROR" and f.error_code == "INTERNAL",
              "message %d after the rm was answered %r, not INTERNAL" % (i, f))
        check("was deleted while the server ran" in f.str(2), "the error says %r" % f.str(2))

    _, f = register(h, srv, "carol")
    check(f.type == "ERROR" and f.error_code == "INTERNAL",
          "a registration after the rm was answered %r" % f)
    check("was deleted" in f.str(2), "the error says %r" % f.str(2))

    check(srv.terminate() == 0, "the server did not stop cleanly")
    store = srv.err.matching(r"ERROR .*storage: .*imcore\.db: the database file was deleted")
    check(len(store) == 1, "the store's ERROR lines: %r" % store)
    accounts = srv.err.matching(r"ERROR .*accounts: .*imcore\.db: the database file was deleted")
    check(len(accounts) == 1, "the accounts' ERROR lines: %r" % accounts)
    check(not srv.err.matching(r"storage: a batch of"),
          "a WARN per batch after the ERROR: %r" % srv.err.matching(r"storage: a batch of"))

    # The next start finds no database, and says it made a new one.
    srv = h.server("server-again", **cfg)
    srv.err.expect(NEW_DB)
    check(srv.terminate() == 0, "the second server did not stop cleanly")
    # A start on an existing database does not.
    srv = h.server("server-third", **cfg)
    check(srv.terminate() == 0, "the third server did not stop cleanly")
    check(not srv.err.matching(r"held no database"), "a known database was called new")


if __name__ == "__main__":
    main(test)
