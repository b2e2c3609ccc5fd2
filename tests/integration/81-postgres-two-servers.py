#!/usr/bin/env python3
"""81-postgres-two-servers: two server processes on one PostgreSQL database.
alice, logged in on both, pipelines messages to bob and to carol through
both at once, the two servers' batches touching the two conversations in
opposite orders: every message is acked, and each conversation's seqs are
1..n with no gap and no repeat, rising in each sender's order. Then each of
a set of (sender, client_msg_id) pairs is sent to both servers at once: the
two acks carry one seq, and the database stores each pair once, with no
seq spent for the loser."""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import TestSkipped, check, main  # noqa: E402
from durable import private_body  # noqa: E402
import pg_harness  # noqa: E402

N = 300   # messages per server per receiver
M = 100   # pairs sent to both servers at once


def pipeline(raw, sends):
    """Sends every (to, text, cmid) without waiting, then reads the acks:
    {cmid: (seq, duplicate)}."""
    for to, text, cmid in sends:
        raw.request("PRIVATE_MESSAGE", private_body(to, text, cmid))
    acks = {}
    for _ in sends:
        f = raw.expect_frame("SEND_ACK", timeout=20)
        acks[f.str(1)] = (f.int(2), f.int(5))
    return acks


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
    a = h.server("server-a", **cfg)
    b = h.server("server-b", node_id="it-2", **cfg)
    ra, rb = h.raw(a, "alice@a"), h.raw(b, "alice@b")
    ra.login("alice")
    rb.login("alice")

    sends_a, sends_b = [], []
    for i in range(N):
        for to in ("bob", "carol"):
            sends_a.append((to, "a %d" % i, "a-%s-%d" % (to, i)))
        for to in ("carol", "bob"):
            sends_b.append((to, "b %d" % i, "b-%s-%d" % (to, i)))
    results = {}

    def run_one(name, raw, sends):
        results[name] = pipeline(raw, sends)

    ta = threading.Thread(target=run_one, args=("a", ra, sends_a))
    tb = threading.Thread(target=run_one, args=("b", rb, sends_b))
    ta.start()
    tb.start()
    ta.join(40)
    tb.join(40)
    check("a" in results and "b" in results, "not every message was acked")
    for to in ("bob", "carol"):
        seqs = []
        for name, sends in (("a", sends_a), ("b", sends_b)):
            mine = [results[name][cmid][0] for t, _, cmid in sends if t == to]
            check(mine == sorted(mine) and len(set(mine)) == len(mine),
                  "server %s's seqs to %s do not rise: %r" % (name, to, mine[:20]))
            seqs += mine
        check(sorted(seqs) == list(range(1, 2 * N + 1)),
              "the seqs to %s are not 1..%d: %d of them, max %d"
              % (to, 2 * N, len(set(seqs)), max(seqs)))
        conv = "p:alice:%s" % to
        rows = pg.psql_admin("SELECT count(*), count(DISTINCT seq), max(seq) FROM messages"
                             " WHERE conv = '%s'" % conv)
        check(rows == ["%d|%d|%d" % (2 * N, 2 * N, 2 * N)], "%s holds %r" % (conv, rows))

    # The same pairs through both servers at once.
    dup = [("dave", "same %d" % i, "d-%d" % i) for i in range(M)]
    results.clear()
    ta = threading.Thread(target=run_one, args=("a", ra, dup))
    tb = threading.Thread(target=run_one, args=("b", rb, dup))
    ta.start()
    tb.start()
    ta.join(40)
    tb.join(40)
    check("a" in results and "b" in results, "not every duplicate was answered")
    for _, _, cmid in dup:
        (sa, da), (sb, db) = results["a"][cmid], results["b"][cmid]
        check(sa == sb and sa > 0, "%s was acked with seq %d and %d" % (cmid, sa, sb))
        check(da + db == 1, "%s: duplicate on %d of the two servers, not 1" % (cmid, da + db))
    rows = pg.psql_admin("SELECT count(*), count(DISTINCT client_msg_id), max(seq) FROM messages"
                         " WHERE conv = 'p:alice:dave'")
    check(rows == ["%d|%d|%d" % (M, M, M)], "p:alice:dave holds %r, not %d once each" % (rows, M))
    last = pg.psql_admin("SELECT last_seq FROM conversations WHERE id = 'p:alice:dave'")
    check(last == [str(M)], "the conversation's last seq is %r, not %d: a seq was spent" % (last, M))


if __name__ == "__main__":
    main(test)
