#!/usr/bin/env python3
"""22-durable-crash: four senders pipeline 10,000 messages to four offline
receivers; once a third of them are acked the server is killed with SIGKILL.
After a restart on the same database every sender re-sends what it has no
ack for, with the same client_msg_id, as a real client would. Then each
receiver logs in and must get its 2,500 messages exactly once, in seq order
1..2500, and every ack a sender saw before the kill must name the seq its
message was delivered with: nothing acked was lost, nothing was stored twice."""
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import TestFailure, check, main, wait_until  # noqa: E402
from durable import next_delivery, private_body, sqlite_config  # noqa: E402

SENDERS = 4
PER_SENDER = 2500
WINDOW = 64


class Sender(threading.Thread):
    """Sends cmids [start..PER_SENDER) with WINDOW in flight; records acks."""

    def __init__(self, raw, index, todo, acked):
        super().__init__(daemon=True)
        self.raw, self.index, self.todo, self.acked = raw, index, list(todo), acked
        self.error = None
        self.lock = threading.Lock()

    def cmid(self, i):
        return "s%d-%d" % (self.index, i)

    def run(self):
        try:
            pending = {}
            nxt = 0
            while nxt < len(self.todo) or pending:
                while nxt < len(self.todo) and len(pending) < WINDOW:
                    i = self.todo[nxt]
                    nxt += 1
                    rid = self.raw.request("PRIVATE_MESSAGE", private_body(
                        "r%d" % self.index, "body %d" % i, self.cmid(i)))
                    pending[rid] = i
                f = self.raw.recv_frame(20.0)
                if f is None:
                    return  # the server went away
                if f.type != "SEND_ACK":
                    raise TestFailure("sender %d got %r" % (self.index, f))
                i = pending.pop(f.request_id)
                with self.lock:
                    self.acked[i] = (f.int(2), bool(f.int(5)))
        except (OSError, TestFailure) as e:
            if not isinstance(e, OSError):
                self.error = e


def count(acks):
    return sum(len(a) for a in acks)


def test(h):
    cfg = sqlite_config(h)
    srv = h.server(**cfg)
    acks = [dict() for _ in range(SENDERS)]
    senders = []
    for s in range(SENDERS):
        raw = h.raw(srv, "s%d" % s)
        raw.login("s%d" % s)
        senders.append(Sender(raw, s, range(PER_SENDER), acks[s]))
    for t in senders:
        t.start()
    wait_until(lambda: count(acks) >= SENDERS * PER_SENDER // 3, 30,
               "a third of the messages to be acked")
    os.kill(srv.pid, signal.SIGKILL)
    srv.wait_exit()
    for t in senders:
        t.join(20)
        check(t.error is None, "sender failed: %s" % t.error)
    before = [dict(a) for a in acks]
    total_before = count(before)
    check(total_before < SENDERS * PER_SENDER, "the kill came after every ack (%d)" % total_before)

    srv = h.server("server2", **cfg)
    retry = []
    for s in range(SENDERS):
        raw = h.raw(srv, "s%d-again" % s)
        raw.login("s%d" % s)
        todo = [i for i in range(PER_SENDER) if i not in before[s]]
        retry.append(Sender(raw, s, todo, acks[s]))
    for t in retry:
        t.start()
    for t in retry:
        t.join(40)
        check(not t.is_alive() and t.error is None, "resending failed: %s" % t.error)
    check(count(acks) == SENDERS * PER_SENDER, "acked %d of %d" % (count(acks), SENDERS * PER_SENDER))

    dups = 0
    for s in range(SENDERS):
        r = h.raw(srv, "r%d" % s)
        r.login("r%d" % s)
        seen = {}
        for n in range(1, PER_SENDER + 1):
            d = next_delivery(r, 20.0)
            check(d.seq == n, "r%d: delivery %d has seq %d (%r)" % (s, n, d.seq, d))
            check(d.cmid not in seen, "r%d: %s delivered twice" % (s, d.cmid))
            i = int(d.cmid.split("-")[1])
            check(d.body == "body %d" % i, "r%d: %s carries %r" % (s, d.cmid, d.body))
            check(acks[s][i][0] == d.seq, "r%d: %s acked as seq %d, delivered as %d"
                  % (s, d.cmid, acks[s][i][0], d.seq))
            seen[d.cmid] = d.seq
        dups += sum(1 for i in range(PER_SENDER) if acks[s][i][1])
    print("acked before the kill: %d; stored but unacked, re-sent as duplicates: %d"
          % (total_before, dups))


if __name__ == "__main__":
    main(test)
