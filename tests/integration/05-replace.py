#!/usr/bin/env python3
"""05-replace: with login_policy replace, a second login as alice replaces the
first, which prints SESSION_REPLACED and exits 1 without reconnecting; the new
session chats. With login_policy reject, the second login gets ALREADY_ONLINE
and exits 1, and the first session goes on."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402

STAMP = r"^\[\d\d:\d\d:\d\d\] "


def test(h):
    srv = h.server(session={"login_policy": "replace"})
    bob = h.cli(srv, "bob")
    first = h.cli(srv, "alice", name="alice-first")
    second = h.cli(srv, "alice", name="alice-second")
    first.expect(r"^! SESSION_REPLACED")
    check(first.wait_exit() == 1, "the replaced client did not exit 1")
    check(not first.err.matching(r"reconnecting"), "the replaced client tried to reconnect")

    bob.send("@alice to the new one")
    second.expect(STAMP + r"bob \u2192 you: to the new one$")
    second.send("@bob got it")
    bob.expect(STAMP + r"alice \u2192 you: got it$")
    check(not first.out.matching(r"to the new one"), "the replaced session got a message")
    srv.terminate()

    srv = h.server("server-reject", session={"login_policy": "reject"})
    bob = h.cli(srv, "bob", name="bob-2")
    first = h.cli(srv, "alice", name="alice-kept")
    second = h.cli(srv, "alice", name="alice-refused", login=False)
    second.expect(r"^! ALREADY_ONLINE")
    check(second.wait_exit() == 1, "the refused client did not exit 1")
    check(not second.out.matching(r"logged in"), "the refused client printed a login")

    bob.send("@alice still yours")
    first.expect(STAMP + r"bob \u2192 you: still yours$")
    check(not first.out.matching(r"^!"), "the first session printed an error")


if __name__ == "__main__":
    main(test)
