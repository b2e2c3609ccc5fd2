#!/usr/bin/env python3
"""42-client-msg-id: (sender, client_msg_id) names one message. An empty id
(or one over 64 bytes) is INVALID_ARGUMENT and nothing is stored; the same
id with the same message is answered duplicate: true with the first
SendAck's seq and time; the same id with another body, receiver, group or
kind is CLIENT_MSG_ID_REUSED and nothing is stored. Refusals take no seq,
and every answer comes in request order (all sent in one write). A plugin
sends without an id (the host API has none): the server gives each of its
messages one of its own."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, envelope, main  # noqa: E402
from durable import (Delivery, ack_body, group_body, next_delivery, private_body,  # noqa: E402
                     send_private, sqlite_config)

TEST_PLUGINS = os.environ.get("IMCORE_TEST_PLUGIN_DIR", "")


def test(h):
    check(TEST_PLUGINS, "IMCORE_TEST_PLUGIN_DIR must be set")
    cfg = sqlite_config(h)
    cfg["plugins"] = [{"name": "echo_bot", "path": os.path.join(TEST_PLUGINS, "echo_bot.so")}]
    srv = h.server(**cfg)
    alice = h.raw(srv, "alice")
    alice.login("alice")
    bob = h.raw(srv, "bob")
    bob.login("bob")
    carol = h.raw(srv, "carol")
    carol.login("carol")
    rid = alice.request("GROUP_CREATE", encode_fields([(1, "room")]))
    check(alice.expect_frame("OK").request_id == rid, "the group was not created")
    rid = bob.request("GROUP_JOIN", encode_fields([(1, "room")]))
    check(bob.expect_frame("OK").request_id == rid, "bob did not join")

    long_id = "y" * 64
    # (type, to, body, cmid, expected answer)
    cases = [
        ("PRIVATE_MESSAGE", "bob", "one", "", "INVALID_ARGUMENT"),
        ("PRIVATE_MESSAGE", "bob", "one", "z" * 65, "INVALID_ARGUMENT"),
        ("GROUP_MESSAGE", "room", "one", "", "INVALID_ARGUMENT"),
        ("PRIVATE_MESSAGE", "bob", "one", "c-1", "ack"),
        ("PRIVATE_MESSAGE", "bob", "one", "c-1", "duplicate"),
        ("PRIVATE_MESSAGE", "bob", "two", "c-1", "CLIENT_MSG_ID_REUSED"),    # another body
        ("PRIVATE_MESSAGE", "carol", "one", "c-1", "CLIENT_MSG_ID_REUSED"),  # another receiver
        ("GROUP_MESSAGE", "room", "one", "c-1", "CLIENT_MSG_ID_REUSED"),     # a group
        ("PRIVATE_MESSAGE", "bob", "two", "c-2", "ack"),
        ("GROUP_MESSAGE", "room", "hello", "g-1", "ack"),
        ("GROUP_MESSAGE", "room", "hello", "g-1", "duplicate"),
        ("GROUP_MESSAGE", "room", "hello!", "g-1", "CLIENT_MSG_ID_REUSED"),
        ("PRIVATE_MESSAGE", "bob", "hello", "g-1", "CLIENT_MSG_ID_REUSED"),  # a private one
        ("PRIVATE_MESSAGE", "bob", "three", long_id, "ack"),
    ]
    frames = b""
    for i, (kind, to, body, cmid, _) in enumerate(cases):
        make = private_body if kind == "PRIVATE_MESSAGE" else group_body
        frames += envelope(kind, i + 1, make(to, body, cmid))
    alice.send(frames)

    first = {}
    for i, (kind, to, body, cmid, want) in enumerate(cases):
        f = alice.recv_frame()
        check(f is not None and f.request_id == i + 1,
              "answer %d: expected the answer to request %d, got %r" % (i + 1, i + 1, f))
        what = "case %d (%s to %s, %r, id %r)" % (i + 1, kind, to, body, cmid[:8])
        if want in ("ack", "duplicate"):
            check(f.type == "SEND_ACK" and f.str(1) == cmid, "%s: %r" % (what, f))
            check(bool(f.int(5)) == (want == "duplicate"), "%s: duplicate is %d" % (what, f.int(5)))
            if want == "ack":
                first[cmid] = (f.int(2), f.int(3))
            else:
                check((f.int(2), f.int(3)) == first[cmid],
                      "%s: the first SendAck's seq and time, %r, not %r"
                      % (what, first[cmid], (f.int(2), f.int(3))))
        else:
            # An id too long to be one is not echoed (the Error stays small).
            echoed = cmid if len(cmid.encode()) <= 64 else ""
            check(f.error_code == want and f.str(3) == echoed, "%s: expected %s, got %r"
                  % (what, want, f))
    # The refusals took no seq: bob's conversation is 1, 2, 3; the group's 1.
    check([first[c][0] for c in ("c-1", "c-2", long_id)] == [1, 2, 3] and first["g-1"][0] == 1,
          "seqs %r" % first)

    # bob got each message once, and nothing refused: the next private
    # message is the fourth of the conversation and the next he receives.
    got = [next_delivery(bob) for _ in range(4)]
    private = [d for d in got if not d.group]
    group = [d for d in got if d.group]
    check([(d.cmid, d.body, d.seq) for d in private] ==
          [("c-1", "one", 1), ("c-2", "two", 2), (long_id, "three", 3)],
          "bob's private deliveries: %r" % private)
    check([(d.cmid, d.body) for d in group] == [("g-1", "hello")], "bob's group ones: %r" % group)
    ack = send_private(alice, "bob", "end", "c-end")
    check(ack.int(2) == 4, "the end message: %r" % ack)
    d = next_delivery(bob)
    check(d.cmid == "c-end" and d.seq == 4, "bob received %r, expected the end message" % d)

    # The same text to echo twice: two answers, each with an id of its own
    # that the server made up (the plugin API gives none). Its answers may
    # come before the second SendAck.
    alice.send(envelope("PRIVATE_MESSAGE", 101, private_body("echo", "same", "e-1")) +
               envelope("PRIVATE_MESSAGE", 102, private_body("echo", "same", "e-2")))
    acks, ids = [], set()
    while len(acks) < 2 or len(ids) < 2:
        f = alice.recv_frame()
        check(f is not None, "alice: the connection closed")
        if f.type == "DELIVERY":
            d = Delivery(f)
            check(d.frm == "echo" and "same" in d.body and d.cmid, "echo's answer: %r" % d)
            check(d.cmid not in ids, "echo's two answers share the id %r" % d.cmid)
            ids.add(d.cmid)
            alice.send_frame("DELIVERY_ACK", 0, ack_body(d.conversation, d.seq))
        else:
            check(f.type == "SEND_ACK" and f.request_id == 101 + len(acks),
                  "a SendAck for request %d: %r" % (101 + len(acks), f))
            acks.append(f)
    check(srv.terminate() == 0, "the server did not stop cleanly")


if __name__ == "__main__":
    main(test)
