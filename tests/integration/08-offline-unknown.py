#!/usr/bin/env python3
"""08-offline-unknown: a message to a user who is not online is refused with
USER_OFFLINE (and the client goes on); requests sent before Login are refused
with NOT_LOGGED_IN, their request id echoed, and Login still works after."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, main  # noqa: E402

STAMP = r"^\[\d\d:\d\d:\d\d\] "


def test(h):
    srv = h.server()
    alice = h.cli(srv, "alice")
    alice.send("@nobody are you there?")
    alice.expect(r"^! USER_OFFLINE: .*nobody")
    alice.send(":join nosuchgroup")
    alice.expect(r"^! NO_SUCH_GROUP")
    alice.send("#nosuchgroup hello")
    alice.expect(r"^! (NO_SUCH_GROUP|NOT_A_MEMBER)")
    # The client's own refusals: nothing goes to the server.
    alice.send(":frobnicate")
    alice.expect(r'^! unknown command ":frobnicate"')
    alice.send("plain text")
    alice.expect(r'^! unknown command "plain text"')
    alice.send("@bob")
    alice.expect(r"^! usage: @user text$")

    raw = h.raw(srv, "early")
    rid = raw.request("PRIVATE_MESSAGE", encode_fields([(1, "alice"), (2, b"hi"), (3, "early-1")]))
    err = raw.expect_error("NOT_LOGGED_IN")
    check(err.request_id == rid, "NOT_LOGGED_IN for request %d, sent %d" % (err.request_id, rid))
    rid = raw.request("GROUP_LIST")
    err = raw.expect_error("NOT_LOGGED_IN")
    check(err.request_id == rid, "NOT_LOGGED_IN for request %d, sent %d" % (err.request_id, rid))
    rid = raw.request("ONLINE_USERS")
    raw.expect_error("NOT_LOGGED_IN")

    # Refusals do not close the connection: the same socket logs in and sends.
    raw.login("early")
    rid = raw.request("PRIVATE_MESSAGE", encode_fields([(1, "alice"), (2, b"now logged in"),
                                                         (3, "early-2")]))
    ack = raw.expect_frame("SEND_ACK")
    check(ack.request_id == rid and ack.str(1) == "early-2",
          "SendAck %r does not answer request %d" % (ack, rid))
    alice.expect(STAMP + r"early \u2192 you: now logged in$")
    check(not alice.out.matching(r"hi$"), "a message sent before login was delivered")


if __name__ == "__main__":
    main(test)
