#!/usr/bin/env python3
"""60-log-injection: text a client chooses reaches the server's log escaped.

A refused Login's user_id and the conversation named in a refused
DeliveryAck are logged with what the client sent.
Here that text holds terminal escape sequences (clear the screen, set the
window title), a bell, a raw C1 CSI byte and a newline: every line of the
server's stderr must be printable ASCII, each of those bytes written as
\\xNN, and the refused id still readable in the line."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, main  # noqa: E402

EVIL = b"evil\x1b[2J\x1b]0;owned\x07\x9b31m\nFAKE ERROR line"
ESCAPED = r"evil\x1b[2J\x1b]0;owned\x07\x9b31m\x0aFAKE ERROR line"


def login_body(user):
    return encode_fields([(1, user), (3, "it")])


def test(h):
    srv = h.server(log_level="debug")

    # A user id the domain refuses at once: logged with the id.
    c = h.raw(srv, "evil-login")
    c.request("LOGIN", login_body(EVIL))
    c.expect_error("INVALID_ARGUMENT")
    srv.err.expect(r"login as '.*' refused")

    # A conversation that is not the user's: the refusal is logged (debug).
    bob = h.raw(srv, "bob")
    bob.login("bob")
    bob.request("DELIVERY_ACK", encode_fields([(1, b"p:" + EVIL), (2, 1)]))
    # A Ping after it: once answered, the ack before it has been handled.
    bob.request("PING", encode_fields([(1, 1)]))
    bob.expect_frame("PONG")
    srv.err.expect(r"ack refused")

    check(srv.terminate() == 0, "the server did not stop cleanly")
    lines = srv.err.lines
    bad = [l for l in lines if any(ch < " " or ch > "~" for ch in l)]
    check(not bad, "log lines with bytes outside printable ASCII: %r" % bad)
    check(not [l for l in lines if l.startswith("FAKE ERROR")],
          "a client's newline started a log line of its own")
    login = [l for l in lines if "login as" in l and "refused" in l]
    check(login and ESCAPED[:32] in login[0],
          "the refused id is not in the log, escaped: %r" % login)
    ack = [l for l in lines if "ack refused" in l]
    check(ack and ("p:" + ESCAPED) in ack[0],
          "the refused conversation is not in the log, escaped: %r" % ack)


if __name__ == "__main__":
    main(test)
