#!/usr/bin/env python3
"""83-postgres-refusals: what the postgres engine refuses at start, and how.
A database whose imcore_schema says a newer version, and one that holds
another application's tables, are refused with a clear error and nothing
written to them. Bad storage.postgres values stop the server with FILE:LINE
and exit 2. A wrong password is refused without the password in any
output."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import BASE_CONFIG, TestSkipped, check, main, merge, to_yaml  # noqa: E402
import pg_harness  # noqa: E402


def start(h, name, cfg, timeout=20):
    """Runs the server with cfg until it exits (these all must fail)."""
    path = h.write(name + ".yaml", to_yaml(merge(BASE_CONFIG, cfg)))
    rc, out, err = h.run([h.server_path, "--config", path], timeout=timeout)
    return rc, out + err, path


def line_of(path, key):
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip().startswith(key + ":"):
                return n
    raise AssertionError("%s not in %s" % (key, path))


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
    # A schema made by a first start, then claimed by a newer server.
    srv = h.server(**cfg)
    check(srv.terminate() == 0, "the first server did not stop cleanly")
    pg.psql_admin("UPDATE imcore_schema SET version = 99")
    before = pg.psql_admin("SELECT count(*) FROM pg_class WHERE relnamespace ="
                           " 'public'::regnamespace")
    rc, text, _ = start(h, "newer", cfg)
    check(rc != 0 and "version 99 is newer than this server" in text,
          "a newer schema was not refused (exit %d):\n%s" % (rc, text))
    check(pg.psql_admin("SELECT version FROM imcore_schema") == ["99"], "the version changed")
    after = pg.psql_admin("SELECT count(*) FROM pg_class WHERE relnamespace ="
                          " 'public'::regnamespace")
    check(before == after, "relations changed: %r -> %r" % (before, after))

    # Another application's database.
    pg.psql_admin("CREATE DATABASE shop OWNER imcore", db="postgres")
    pg.psql_admin("CREATE TABLE customers (id int PRIMARY KEY, name text)", db="shop")
    pg.psql_admin("ALTER TABLE customers OWNER TO imcore", db="shop")
    foreign = pg.config(h)
    foreign["storage"]["postgres"]["conninfo"] = pg.conninfo.replace("dbname=imcore",
                                                                      "dbname=shop")
    rc, text, _ = start(h, "foreign", foreign)
    check(rc != 0 and "not an imcore database" in text,
          "a foreign database was not refused (exit %d):\n%s" % (rc, text))
    tables = pg.psql_admin("SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class"
                           " WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'",
                           db="shop")
    check(tables == ["customers"], "the foreign database now holds %r" % tables)

    # Bad values: FILE:LINE, exit 2.
    cases = [
        ({"connect_timeout_s": 0}, "connect_timeout_s", "between 1 and 3600"),
        ({"statement_timeout_ms": "soon"}, "statement_timeout_ms", "must be a number"),
        ({"host": "127.0.0.1"}, "conninfo", "not both"),
        ({"password_file": os.path.join(h.tmp, "missing")}, "password_file", "cannot read"),
        ({"conninfo": "host=127.0.0.1 nonsense"}, "conninfo", "malformed connection string"),
    ]
    for i, (over, key, what) in enumerate(cases):
        c = pg.config(h)
        c["storage"]["postgres"].update(over)
        rc, text, path = start(h, "bad-%d" % i, c)
        check(rc == 2 and what in text, "%r: exit %d, not 2 with '%s':\n%s" % (over, rc, what, text))
        if key:
            where = "%s:%d: storage.postgres.%s" % (path, line_of(path, key), key)
            check(where in text, "%r: the message does not say %s:\n%s" % (over, where, text))
    # --check-config finds the bad numbers and names too.
    c = pg.config(h)
    c["storage"]["postgres"]["port"] = 70000
    path = h.write("check.yaml", to_yaml(merge(BASE_CONFIG, c)))
    rc, out, err = h.run([h.server_path, "--config", path, "--check-config"])
    check(rc == 2 and "storage.postgres.port: must be a number between 1 and 65535" in err,
          "--check-config of a bad port: exit %d:\n%s%s" % (rc, out, err))
    c = merge(cfg, {"storage": {"engine": "sqlite", "path": os.path.join(h.tmp, "x.db")}})
    rc, text, path = start(h, "not-postgres", c)
    check(rc == 2 and "storage.postgres: is for storage.engine postgres" in text,
          "storage.postgres with sqlite: exit %d:\n%s" % (rc, text))

    # A wrong password: refused, and never shown.
    wrong = "Wr0ng-Pa55word"
    h.write("wrong-pw", wrong + "\n")
    c = pg.config(h)
    c["storage"]["postgres"]["password_file"] = os.path.join(h.tmp, "wrong-pw")
    rc, text, _ = start(h, "wrong-password", c)
    check(rc != 0 and "password authentication failed" in text,
          "a wrong password was not refused (exit %d):\n%s" % (rc, text))
    check(wrong not in text and pg.password not in text, "a password was shown:\n%s" % text)
    c = pg.config(h)
    c["storage"]["postgres"]["conninfo"] = pg.conninfo + " password=" + wrong
    del c["storage"]["postgres"]["password_file"]
    rc, text, _ = start(h, "wrong-password-2", c)
    check(rc != 0 and wrong not in text, "a password in conninfo was shown:\n%s" % text)


if __name__ == "__main__":
    main(test)
