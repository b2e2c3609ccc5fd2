#!/usr/bin/env python3
"""interfaces/bench/handover.py: how fast a login hands over a backlog.

Starts imcore-server (SQLite, synchronous: normal) in a temporary directory,
has ten senders store N messages of 64 bytes for bob while he is offline,
then logs bob in and times the hand-over: the LoginAck to the Nth delivery,
acking what arrived after each read as the CLI does. Prints one line.

    interfaces/bench/handover.py --server build/interfaces/server/imcore-server -n 100000

Loopback only; Python 3 standard library and tests/integration's harness.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))
from imcore_harness import Harness, TestFailure, envelope  # noqa: E402
from durable import ack_body, private_body, sqlite_config  # noqa: E402

SENDERS = 10
BATCH = 2000


def fill(h, srv, n):
    for s in range(SENDERS):
        c = h.raw(srv, "s%d" % s)
        c.login("s%d" % s)
        per = n // SENDERS
        for base in range(0, per, BATCH):
            k = min(BATCH, per - base)
            c.send(b"".join(envelope("PRIVATE_MESSAGE", base + i + 1,
                                     private_body("bob", ("m%06d" % (base + i)).ljust(64, "x"),
                                                  "s%d-%d" % (s, base + i)))
                            for i in range(k)))
            for _ in range(k):
                c.expect_frame("SEND_ACK", 60)
        c.close()
    return (n // SENDERS) * SENDERS


def receive(h, srv, n, quiet_s):
    bob = h.raw(srv, "bob")
    t0 = time.monotonic()
    bob.login("bob")
    got, last, first_page, end = 0, {}, None, t0
    while got < n:
        try:
            f = bob.recv_frame(quiet_s)
        except TestFailure:  # quiet for quiet_s: the hand-over stopped
            break
        if f is None:
            break
        bob.received.clear()  # the harness keeps every frame for diagnostics
        if f.type == "DELIVERY":
            got += 1
            last[f.str(10)] = f.int(6)
            end = time.monotonic()
            if got == 10000:
                first_page = end - t0
        if len(bob.buf) < 4:  # what this read brought is taken: ack it
            bob.send(b"".join(envelope("DELIVERY_ACK", 0, ack_body(c, s))
                              for c, s in last.items()))
    return got, end - t0, first_page


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("-n", type=int, default=100000, help="messages waiting for bob")
    ap.add_argument("--quiet", type=float, default=3.0,
                    help="seconds without data after which the hand-over counts as over")
    a = ap.parse_args()
    h = Harness(os.path.abspath(a.server), "")
    try:
        srv = h.server(**sqlite_config(h, synchronous="normal"))
        n = fill(h, srv, a.n)
        got, took, first = receive(h, srv, n, a.quiet)
        print("waiting %d, handed over %d in %.3f s (%.0f msg/s); the first 10,000 in %s"
              % (n, got, took, got / took if took else 0,
                 "%.3f s" % first if first else "-"))
        return 0 if got == n else 1
    finally:
        h.cleanup()


if __name__ == "__main__":
    sys.exit(main())
