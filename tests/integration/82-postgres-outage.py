#!/usr/bin/env python3
"""82-postgres-outage: PostgreSQL stops and starts again under traffic.
While it is away every message is answered with an error (INTERNAL), never
acked; the server says once that it lost the database and once that it is
back, reconnects by itself, and messages flow again. Every message that was
acked, before, during or after, is in the database with its acked seq, and
reaches bob, who was offline: nothing acknowledged is lost."""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import TestSkipped, check, main, wait_until  # noqa: E402
from durable import ack_body, next_delivery, private_body  # noqa: E402
import pg_harness  # noqa: E402


class Sender:
    def __init__(self, raw):
        self.raw = raw
        self.n = 0
        self.acked = {}   # cmid -> seq
        self.refused = []

    def send(self):
        """One message, waited for: True if acked."""
        self.n += 1
        cmid = "m-%d" % self.n
        rid = self.raw.request("PRIVATE_MESSAGE", private_body("bob", "text %d" % self.n, cmid))
        f = self.raw.recv_frame(timeout=40)
        check(f.request_id == rid, "an answer to another request: %r" % f)
        if f.type == "SEND_ACK":
            self.acked[cmid] = f.int(2)
            return True
        check(f.type == "ERROR" and f.error_code in ("INTERNAL", "BUSY"),
              "a message was answered %r" % f)
        self.refused.append(cmid)
        return False


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
    srv = h.server(**pg.config(h))
    alice = h.raw(srv, "alice")
    alice.login("alice")
    s = Sender(alice)
    for _ in range(20):
        check(s.send(), "a message was refused while PostgreSQL was up")

    pg.stop(signal.SIGINT)  # a fast shutdown: every connection is closed
    during = [s.send() for _ in range(20)]
    check(not any(during), "a message was acked while PostgreSQL was stopped")
    srv.err.expect(r"lost PostgreSQL", timeout=10)

    pg.start()
    # Back by itself: the first attempts come within the backoff's bound.
    wait_until(lambda: s.send(), 30, "a message acked after PostgreSQL came back",
               interval=0.1)
    for _ in range(20):
        check(s.send(), "a message was refused once PostgreSQL was back")
    srv.err.expect(r"PostgreSQL .* is back after", timeout=5)
    check(len(srv.err.matching(r"lost PostgreSQL")) == 1,
          "the loss was logged %d times" % len(srv.err.matching(r"lost PostgreSQL")))

    # Every ack is stored, with its seq, and the seqs have no gap.
    rows = pg.psql_admin("SELECT convert_from(client_msg_id, 'UTF8'), seq FROM messages"
                         " WHERE conv = 'p:alice:bob' ORDER BY seq")
    stored = dict(r.split("|") for r in rows)
    for cmid, seq in s.acked.items():
        check(stored.get(cmid) == str(seq), "%s acked with seq %d is stored as %r"
              % (cmid, seq, stored.get(cmid)))
    check([int(r.split("|")[1]) for r in rows] == list(range(1, len(rows) + 1)),
          "the stored seqs have a gap: %r" % rows)
    # bob gets them all.
    bob = h.raw(srv, "bob")
    bob.login("bob")
    got = {}
    while len(got) < len(rows):
        d = next_delivery(bob)
        got[d.cmid] = d.seq
    for cmid, seq in s.acked.items():
        check(got.get(cmid) == seq, "bob did not get %s (seq %d)" % (cmid, seq))
    bob.send_frame("DELIVERY_ACK", 0, ack_body("p:alice:bob", max(got.values())))


if __name__ == "__main__":
    main(test)
