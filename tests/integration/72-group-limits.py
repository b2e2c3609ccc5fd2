#!/usr/bin/env python3
"""72-group-limits: what a user's groups may cost. limits.max_groups_per_user
caps the groups one user created that still exist (QUOTA_EXCEEDED past it,
a deleted one frees a place, a group handed over still counts against its
creator); group requests draw on the session's message rate
(limits.messages_per_second, message_burst): past the burst they are
answered RATE_LIMITED, in order with the others, and a Ping pipelined
behind them is answered like any request. (The bucket refills at one
token a second meanwhile, so the counts allow for the seconds the test
took; application/test_app.c checks the rule on a clock that stands
still.)"""
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import TestSkipped, check, encode_fields, main  # noqa: E402
from groups import ask, create_body, expect_notice, group_body, pair_body  # noqa: E402

BURST = 20


def test(h):
    if not h.server_accepts(limits={"max_groups_per_user": 3}):
        raise TestSkipped("the server has no limits.max_groups_per_user")
    srv = h.server(limits={"max_groups_per_user": 3, "messages_per_second": 1,
                           "message_burst": BURST})
    alice, bob = h.raw(srv, "alice"), h.raw(srv, "bob")
    alice.login("alice")
    bob.login("bob")
    start = time.monotonic()

    for g in ("g1", "g2", "g3"):
        ask(alice, "GROUP_CREATE", create_body(g))
    f = ask(alice, "GROUP_CREATE", create_body("g4"), "QUOTA_EXCEEDED")
    check("alice" in f.str(2), "the refusal says whose quota: %r" % f.str(2))
    ask(bob, "GROUP_CREATE", create_body("b1"))  # each user has a quota of their own
    # Handed over, g1 still counts against alice; deleted, g2 frees a place.
    ask(bob, "GROUP_JOIN", group_body("g1"))
    ask(alice, "GROUP_TRANSFER", pair_body("g1", "bob"))
    expect_notice(bob, "NOTICE_OWNER", "g1", "alice")
    ask(alice, "GROUP_CREATE", create_body("g4"), "QUOTA_EXCEEDED")
    ask(alice, "GROUP_DELETE", group_body("g2"))
    ask(alice, "GROUP_CREATE", create_body("g4", private=True))
    used = 8  # alice's group requests so far, each a token of her bucket

    # Pipelined group requests past the burst: answered one each, in order,
    # the first ones done and the rest RATE_LIMITED; a Ping behind them is
    # answered (it takes no token).
    n = BURST - used + 10
    rids = [alice.request("GROUP_LIST", encode_fields([(2, 1)])) for _ in range(n)]
    ping = alice.request("PING", b"")
    answers = []
    for rid in rids:
        f = alice.recv_frame()
        check(f is not None and f.request_id == rid, "GroupList %d answered by %r" % (rid, f))
        answers.append(f.error_code if f.type == "ERROR" else f.type)
    f = alice.recv_frame()
    check(f is not None and f.type == "PONG" and f.request_id == ping,
          "the Ping behind them was answered by %r" % f)
    refilled = math.ceil(time.monotonic() - start)
    done = answers.count("GROUP_LIST_RESULT")
    check(set(answers) == {"GROUP_LIST_RESULT", "RATE_LIMITED"} and
          answers[:BURST - used] == ["GROUP_LIST_RESULT"] * (BURST - used) and
          done <= BURST - used + refilled,
          "answers to %d pipelined GroupLists (%d s): %r" % (n, refilled, answers))
    # bob's bucket is his own.
    ask(bob, "GROUP_LIST", b"", "GROUP_LIST_RESULT")
    check(srv.running(), "the server stopped")


if __name__ == "__main__":
    main(test)
