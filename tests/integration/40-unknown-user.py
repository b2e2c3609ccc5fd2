#!/usr/bin/env python3
"""40-unknown-user: with password accounts, a private message to a
well-formed id that has no account is refused with UNKNOWN_USER, in order
with the SendAcks around it, and is stored nowhere: it takes no seq, and
whoever registers that id later receives nothing of it. A plugin's service
account (echo_bot's "echo") has no account and still receives. In open mode
any well-formed id is a user: the message waits for whoever logs in as it."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, envelope, main  # noqa: E402
from durable import ack_body, next_delivery, private_body, send_private  # noqa: E402

PASSWORD = "correct horse battery"
TEST_PLUGINS = os.environ.get("IMCORE_TEST_PLUGIN_DIR", "")


def login_body(user, password=None, create=False):
    return encode_fields([(1, user), (3, "it"), (4, password), (6, True if create else None)])


def register(h, srv, user):
    c = h.raw(srv, user)
    c.request("LOGIN", login_body(user, PASSWORD, create=True))
    ack = c.expect_frame("LOGIN_ACK")
    check(ack.str(1) == user, "%s's registration: %r" % (user, ack))
    return c


def answers(raw, n):
    """The next n answers (SendAck or Error), passing over Deliveries, which
    are returned apart."""
    got, deliveries = [], []
    while len(got) < n:
        f = raw.recv_frame()
        check(f is not None, "%s: the connection closed" % raw.name)
        if f.type == "DELIVERY":
            deliveries.append(f)
        else:
            got.append(f)
    return got, deliveries


def test_password(h):
    check(TEST_PLUGINS, "IMCORE_TEST_PLUGIN_DIR must be set")
    srv = h.server(storage={"engine": "sqlite", "path": os.path.join(h.tmp, "db", "pw.db")},
                   accounts={"mode": "password", "password_hash": "min"},
                   limits={"messages_per_second": 0},
                   plugins=[{"name": "echo_bot",
                             "path": os.path.join(TEST_PLUGINS, "echo_bot.so")}])
    alice = register(h, srv, "alice")
    bob = register(h, srv, "bob")

    # One write: to bob, to a stranger, to bob, to the service account, to
    # the stranger again, to bob.
    sends = [("bob", "b-1"), ("ghost", "g-1"), ("bob", "b-2"), ("echo", "e-1"),
             ("ghost", "g-2"), ("bob", "b-3")]
    alice.send(b"".join(envelope("PRIVATE_MESSAGE", i + 1, private_body(to, "hi " + cmid, cmid))
                        for i, (to, cmid) in enumerate(sends)))
    got, deliveries = answers(alice, len(sends))
    for i, ((to, cmid), f) in enumerate(zip(sends, got)):
        check(f.request_id == i + 1, "answer %d is for request %d: %r" % (i + 1, f.request_id, f))
        if to == "ghost":
            check(f.error_code == "UNKNOWN_USER" and f.str(3) == cmid and "ghost" in f.str(2),
                  "a message to an id with no account: %r" % f)
        else:
            check(f.type == "SEND_ACK" and f.str(1) == cmid, "the message to %s: %r" % (to, f))
    check([f.int(2) for f in (got[0], got[2], got[5])] == [1, 2, 3],
          "bob's conversation is numbered 1, 2, 3: %r" % got)
    for cmid in ("b-1", "b-2", "b-3"):
        d = next_delivery(bob)
        check(d.cmid == cmid, "bob got %r, expected %s" % (d, cmid))

    # The service account answered (a Delivery from echo), account or not.
    if not deliveries:
        deliveries.append(alice.expect_frame("DELIVERY"))
    check(deliveries[0].str(2) == "echo" and "hi e-1" in deliveries[0].str(5),
          "echo's answer: %r" % deliveries[0])

    # ghost registers: nothing was kept for it. A message now is the first
    # of the conversation, and the first thing ghost receives.
    ghost = register(h, srv, "ghost")
    ack = send_private(alice, "ghost", "welcome", "w-1")
    check(ack.int(2) == 1, "the refused messages took no seq: %r" % ack)
    d = next_delivery(ghost)
    check(d.frm == "alice" and d.cmid == "w-1" and d.seq == 1,
          "ghost received %r before the message sent after it registered" % d)
    ghost.send_frame("DELIVERY_ACK", 0, ack_body(d.conversation, d.seq))
    rid = ghost.request("HISTORY", encode_fields([(1, "alice")]))
    f = ghost.expect_frame("HISTORY_RESULT")
    check(f.request_id == rid and len(f.body.get(1, [])) == 1,
          "the conversation holds the one message: %r" % f)
    check(srv.terminate() == 0, "the server did not stop cleanly")


def test_open(h):
    srv = h.server("open", storage={"engine": "sqlite",
                                    "path": os.path.join(h.tmp, "db", "open.db")},
                   accounts={"mode": "open"})
    alice = h.raw(srv, "open-alice")
    alice.login("alice")
    ack = send_private(alice, "newcomer", "waiting for you", "n-1")
    check(ack.int(2) == 1 and ack.int(4) == 0, "open mode stores for any id: %r" % ack)
    newcomer = h.raw(srv, "newcomer")
    newcomer.login("newcomer")
    d = next_delivery(newcomer)
    check(d.frm == "alice" and d.cmid == "n-1", "newcomer got %r" % d)
    check(srv.terminate() == 0, "the open server did not stop cleanly")


def test(h):
    test_password(h)
    test_open(h)


if __name__ == "__main__":
    main(test)
