#!/usr/bin/env python3
"""85-postgres-silent: PostgreSQL stops answering without closing anything
(every process of it SIGSTOPped). A message sent then is answered with an
error once the store gives up waiting (statement_timeout_ms + 5 s), never
acked; requests after it fail at once while the database stays silent; when
it answers again the store reconnects by itself and messages flow, and
nothing acked is lost."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import TestSkipped, check, main, wait_until  # noqa: E402
from durable import private_body, send_private  # noqa: E402
import pg_harness  # noqa: E402


def test(h):
    try:
        pg = pg_harness.PgServer()
    except pg_harness.PgMissing as e:
        raise TestSkipped(str(e))
    try:
        run(h, pg)
    finally:
        pg.close()


def answer(raw, to, text, cmid, timeout):
    rid = raw.request("PRIVATE_MESSAGE", private_body(to, text, cmid))
    f = raw.recv_frame(timeout=timeout)
    check(f is not None and f.request_id == rid, "no answer to %s: %r" % (cmid, f))
    return f


def run(h, pg):
    cfg = pg.config(h)
    cfg["storage"]["postgres"].update({"statement_timeout_ms": 1000, "connect_timeout_s": 2})
    srv = h.server(**cfg)
    alice = h.raw(srv, "alice")
    alice.login("alice")
    acked = {}
    for i in range(1, 6):
        acked["m-%d" % i] = send_private(alice, "bob", "before %d" % i, "m-%d" % i).int(2)

    pg.freeze()
    t0 = time.monotonic()
    f = answer(alice, "bob", "silent", "s-1", timeout=20)
    waited = time.monotonic() - t0
    check(f.type == "ERROR" and f.error_code == "INTERNAL", "sent to a silent database: %r" % f)
    check(5.0 <= waited < 15.0, "the error came after %.1f s, not after about 6 s" % waited)
    srv.err.expect(r"lost PostgreSQL", timeout=5)
    f = answer(alice, "bob", "silent 2", "s-2", timeout=10)
    check(f.type == "ERROR", "a second message to a silent database: %r" % f)

    pg.thaw()
    n = [0]

    def flows():
        n[0] += 1
        cmid = "a-%d" % n[0]
        f = answer(alice, "bob", "after", cmid, timeout=15)
        if f.type == "SEND_ACK":
            acked[cmid] = f.int(2)
            return True
        return False
    wait_until(flows, 30, "a message acked once PostgreSQL answers again", interval=0.2)
    srv.err.expect(r"PostgreSQL .* is back after", timeout=5)
    rows = pg.psql_admin("SELECT convert_from(client_msg_id, 'UTF8'), seq FROM messages"
                         " WHERE conv = 'p:alice:bob' ORDER BY seq")
    stored = dict(r.split("|") for r in rows)
    for cmid, seq in acked.items():
        check(stored.get(cmid) == str(seq), "%s acked with seq %d is stored as %r"
              % (cmid, seq, stored.get(cmid)))
    check([int(r.split("|")[1]) for r in rows] == list(range(1, len(rows) + 1)),
          "the stored seqs have a gap: %r" % rows)


if __name__ == "__main__":
    main(test)
