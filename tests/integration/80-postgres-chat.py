#!/usr/bin/env python3
"""80-postgres-chat: a server on the postgres store: private and group chat,
offline delivery and history (the password from storage.postgres.password_file);
then the server restarts (the password from PGPASSWORD) and nothing is lost:
bob, offline throughout, gets every private message once and in seq order,
the group and its history are still there, and the seqs go on."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import TestSkipped, check, decode_fields, encode_fields, main  # noqa: E402
from durable import ack_body, group_body, next_delivery, send_private  # noqa: E402
import pg_harness  # noqa: E402

N = 50


def send_group(raw, group, text, cmid):
    rid = raw.request("GROUP_MESSAGE", group_body(group, text, cmid))
    f = raw.expect_frame("SEND_ACK")
    check(f.request_id == rid and f.str(1) == cmid, "SendAck %r does not answer %s" % (f, cmid))
    return f


def group_history(raw, group, limit=100):
    """The seqs of a group's history (History: peer 1, group 2, limit 4)."""
    raw.request("HISTORY", encode_fields([(2, group), (4, limit)]))
    f = raw.expect_frame("HISTORY_RESULT")
    return [decode_fields(m).get(6, [0])[-1] for m in f.body.get(1, [])]


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
    srv = h.server(**cfg)
    alice = h.raw(srv, "alice")
    alice.login("alice")
    carol = h.raw(srv, "carol")
    carol.login("carol")
    # Online delivery.
    ack = send_private(alice, "carol", "hi carol", "a-c-1")
    check(ack.int(2) == 1 and ack.int(4) == 1, "online message acked as %r" % ack)
    d = next_delivery(carol)
    check(d.body == "hi carol" and d.seq == 1 and d.conversation == "p:alice:carol",
          "carol got %r" % d)
    carol.send_frame("DELIVERY_ACK", 0, ack_body("p:alice:carol", 1))
    # Offline: bob is away.
    for i in range(1, N + 1):
        ack = send_private(alice, "bob", "message %d" % i, "a-%d" % i)
        check(ack.int(2) == i, "message %d got seq %d" % (i, ack.int(2)))
    # A resend is a duplicate, with the same seq.
    ack = send_private(alice, "bob", "message 3", "a-3")
    check(ack.int(2) == 3 and ack.int(5) == 1, "the resend was acked as %r" % ack)
    # A group: alice creates, carol joins, both talk.
    alice.request("GROUP_CREATE", encode_fields([(1, "pgroup")]))
    alice.expect_frame("OK")
    carol.request("GROUP_JOIN", encode_fields([(1, "pgroup")]))
    carol.expect_frame("OK")
    for i in range(1, 6):
        ack = send_group(alice, "pgroup", "group %d" % i, "g-%d" % i)
        check(ack.int(2) == i, "group message %d got seq %d" % (i, ack.int(2)))
    for i in range(1, 6):
        d = next_delivery(carol)
        check(d.group == "pgroup" and d.seq == i, "carol got %r as group message %d" % (d, i))
    carol.send_frame("DELIVERY_ACK", 0, ack_body("g:pgroup", 4))
    carol.request("PING")
    carol.expect_frame("PONG", skip=())
    check(srv.terminate() == 0, "the server did not stop cleanly")

    env_cfg = pg.config(h, password_file=False)
    os.environ["PGPASSWORD"] = pg.password  # the server inherits the test's environment
    srv = h.server("server2", **env_cfg)
    check(srv.err.expect("password from libpq's environment"), "the password's source")
    bob = h.raw(srv, "bob")
    bob.login("bob")
    got = [next_delivery(bob) for _ in range(N)]
    for i, d in enumerate(got, 1):
        check(d.seq == i and d.body == "message %d" % i and d.frm == "alice"
              and d.conversation == "p:alice:bob", "delivery %d is %r" % (i, d))
    bob.send_frame("DELIVERY_ACK", 0, ack_body("p:alice:bob", N))
    carol = h.raw(srv, "carol2")
    carol.login("carol")
    # Acked up to 4 before the restart: 5 is pending, and only 5.
    d = next_delivery(carol)
    check(d.group == "pgroup" and d.seq == 5, "carol got %r at login, not group seq 5" % d)
    seqs = group_history(carol, "pgroup")
    check(seqs == [1, 2, 3, 4, 5], "the group's history after the restart is %r" % seqs)
    alice = h.raw(srv, "alice2")
    alice.login("alice")
    ack = send_group(alice, "pgroup", "after restart", "g-after")
    check(ack.int(2) == 6, "the group's seq went on at %d" % ack.int(2))
    d = next_delivery(carol)
    check(d.seq == 6 and d.body == "after restart", "carol got %r" % d)
    ack = send_private(alice, "bob", "after", "a-after")
    check(ack.int(2) == N + 1 and ack.int(4) == 1, "the new message was acked as %r" % ack)
    d = next_delivery(bob)
    check(d.body == "after" and d.seq == N + 1, "bob got %r first: an old one came again" % d)
    # Stored once: the database agrees.
    rows = pg.psql_admin("SELECT count(*), max(seq) FROM messages WHERE conv = 'p:alice:bob'")
    check(rows == ["%d|%d" % (N + 1, N + 1)], "the database holds %r" % rows)


if __name__ == "__main__":
    main(test)
