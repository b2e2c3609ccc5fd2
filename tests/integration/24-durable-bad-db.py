#!/usr/bin/env python3
"""24-durable-bad-db: a corrupt file or another program's SQLite database at
storage.path stops the server at start (exit 1) with a message naming the
file, and the file is left exactly as it was."""
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402


def refused(h, path, what):
    before = open(path, "rb").read()
    cfg = h.write("bad-%s.yaml" % what, "listen: {host: 127.0.0.1, port: 0}\n"
                  "storage: {engine: sqlite, path: \"%s\"}\n" % path)
    rc, out, err = h.run([h.server_path, "--config", cfg])
    check(rc == 1, "%s: the server exited %d, not 1:\n%s" % (what, rc, err))
    check(path in err, "%s: the error does not name the file:\n%s" % (what, err))
    check(open(path, "rb").read() == before, "%s: the file was changed" % what)


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


if __name__ == "__main__":
    main(test)
