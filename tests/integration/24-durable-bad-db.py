#!/usr/bin/env python3
"""24-durable-bad-db: a corrupt file or another program's SQLite database at
storage.path stops the server at start (exit 1) with a message naming the
file, and the file is left exactly as it was. A database with one damaged
page inside is found by the check at start; with storage.check_on_start:
none the server starts anyway, and only a request that reads the page
fails."""
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402
from durable import send_private, sqlite_config  # noqa: E402

PAGE = 4096


def refused(h, path, what):
    before = open(path, "rb").read()
    cfg = h.write("bad-%s.yaml" % what, "listen: {host: 127.0.0.1, port: 0}\n"
                  "storage: {engine: sqlite, path: \"%s\"}\n" % path)
    rc, out, err = h.run([h.server_path, "--config", cfg])
    check(rc == 1, "%s: the server exited %d, not 1:\n%s" % (what, rc, err))
    check(path in err, "%s: the error does not name the file:\n%s" % (what, err))
    check(open(path, "rb").read() == before, "%s: the file was changed" % what)


def quick_check(path):
    con = sqlite3.connect("file:%s?immutable=1" % path, uri=True)
    try:
        return con.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.DatabaseError as e:
        return str(e)
    finally:
        con.close()


def damage_one_page(path):
    """Overwrites one page in the middle of the file, one that quick_check
    then reports (a free page would go unnoticed): the header and the
    schema, at the start of the file, stay sound."""
    with open(path, "r+b") as f:
        pages = os.path.getsize(path) // PAGE
        for page in range(pages // 2, pages):
            f.seek(page * PAGE)
            before = f.read(PAGE)
            f.seek(page * PAGE)
            f.write(b"\xff" * PAGE)
            f.flush()
            if quick_check(path) != "ok":
                return page
            f.seek(page * PAGE)
            f.write(before)
            f.flush()
    raise AssertionError("no page of %s is checked by quick_check" % path)


def damaged(h):
    cfg = sqlite_config(h, "damaged.db")
    path = cfg["storage"]["path"]
    srv = h.server("server-fill", **cfg)
    alice = h.raw(srv, "alice")
    alice.login("alice")
    for i in range(200):
        send_private(alice, "bob", "x" * 1000, "a-%d" % i)
    alice.close()
    check(srv.terminate() == 0, "the server did not stop cleanly")
    check(quick_check(path) == "ok", "the database is not sound before the damage")
    page = damage_one_page(path)

    refused(h, path, "damaged")
    srv = h.server("server-unchecked", storage=dict(cfg["storage"], check_on_start="none"),
                   limits=cfg["limits"])
    srv.err.expect(r"sqlite %s \(.*, not checked at start\)" % path)
    # bob's messages are what was written; reading them meets the damage.
    bob = h.raw(srv, "bob")
    bob.login("bob")
    f = bob.recv_frame()
    check(f is not None and f.type in ("ERROR", "DELIVERY"),
          "bob got %r after the login" % f)
    alice = h.raw(srv, "alice")
    alice.login("alice")
    check(srv.running(), "the server stopped after reading damaged page %d" % page)
    check(srv.terminate() == 0, "the server did not stop cleanly")


def test(h):
    garbage = os.path.join(h.tmp, "garbage.db")
    with open(garbage, "wb") as f:
        f.write(bytes((i * 7919) % 251 for i in range(64 * 1024)))
    refused(h, garbage, "garbage")

    foreign = os.path.join(h.tmp, "foreign.db")
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE foo (a INTEGER, b TEXT)")
    con.execute("INSERT INTO foo VALUES (1, 'keep me')")
    con.commit()
    con.close()
    refused(h, foreign, "foreign")

    damaged(h)


if __name__ == "__main__":
    main(test)
