#!/usr/bin/env python3
"""71-private-groups-durable: with the sqlite store, a member reads a
group's history, and receives its offline messages, from the join on,
unless the group was created with share_history; and everything of a
private group (its flags, owner, members with the seq each joined at,
invitations, a removal) survives a restart. A deleted group takes its
history with it: a new group of the same id starts empty."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, main  # noqa: E402
from durable import ack_body, group_body as message_body, sqlite_config  # noqa: E402
from frames import nested  # noqa: E402
from groups import (ask, create_body, expect_notice, group_body, listing,  # noqa: E402
                    pair_body)


def say(c, group, text):
    f = ask(c, "GROUP_MESSAGE", message_body(group, text, "%s-%s" % (c.name, text)), "SEND_ACK")
    return f.int(2)


def history(c, group, before=0):
    """The bodies History gives c of group."""
    f = ask(c, "HISTORY", encode_fields([(2, group), (3, before or None)]), "HISTORY_RESULT")
    return [m[5][-1].decode() for m in nested(f, 1)]


def login(h, srv, user, name=None):
    c = h.raw(srv, name or user)
    c.login(user)
    return c


def test(h):
    cfg = sqlite_config(h)
    srv = h.server(**cfg)
    port = srv.port
    alice = login(h, srv, "alice")
    ask(alice, "GROUP_CREATE", create_body("club", private=True))
    ask(alice, "GROUP_CREATE", create_body("open", shared=True))
    check(say(alice, "club", "m1") == 1 and say(alice, "club", "m2") == 2, "seq of m1, m2")
    say(alice, "open", "o1")
    for u in ("bob", "carol", "dave"):
        ask(alice, "GROUP_INVITE", pair_body("club", u))

    # bob joins after m2: he reads and receives from m3 on; of the shared
    # group, everything.
    bob = login(h, srv, "bob")
    ask(bob, "GROUP_JOIN", group_body("club"))
    ask(bob, "GROUP_JOIN", group_body("open"))
    check(say(alice, "club", "m3") == 3, "seq of m3")
    d = bob.expect_frame("DELIVERY")
    check(d.int(6) == 3 and d.body[5][-1] == b"m3", "bob got %r" % d.body)
    bob.send_frame("DELIVERY_ACK", 0, ack_body("g:club", 3))
    check(history(bob, "club") == ["m3"], "bob's history of club: %r" % history(bob, "club"))
    check(history(bob, "club", before=3) == [], "bob paged back past his join")
    check(history(bob, "open") == ["o1"], "bob's history of open: %r" % history(bob, "open"))
    check(history(alice, "club") == ["m1", "m2", "m3"], "alice's history of club")

    # carol joins, goes away; what comes while she is out is hers, what
    # came before her join is not.
    carol = login(h, srv, "carol")
    ask(carol, "GROUP_JOIN", group_body("club"))
    ask(carol, "LOGOUT", b"")
    carol.expect_eof()
    check(say(alice, "club", "m4") == 4, "seq of m4")
    carol = login(h, srv, "carol", "carol-2")
    d = carol.expect_frame("DELIVERY")
    check(d.int(6) == 4 and d.body[5][-1] == b"m4", "carol's offline message is %r" % d.body)
    carol.send_frame("DELIVERY_ACK", 0, ack_body("g:club", 4))
    ask(carol, "PING", b"", "PONG")  # nothing else was pending
    check(history(carol, "club") == ["m4"], "carol's history of club")

    ask(alice, "GROUP_KICK", pair_body("club", "bob"))
    ask(alice, "GROUP_TRANSFER", pair_body("club", "carol"))

    # A restart keeps all of it.
    for c in (alice, bob, carol):
        c.close()
    check(srv.terminate() == 0, "the server did not stop cleanly")
    srv = h.server("server-again", listen={"port": port}, **cfg)
    bob = login(h, srv, "bob", "bob-2")
    seen, total = listing(bob)
    check(set(seen) == {"open"} and total == 1 and seen["open"].shared and seen["open"].member,
          "bob, removed from club, lists %r" % seen)
    ask(bob, "GROUP_JOIN", group_body("club"), "NO_SUCH_GROUP")
    carol = login(h, srv, "carol", "carol-3")
    seen, _ = listing(carol)
    check(seen["club"].private and seen["club"].member and seen["club"].owner == "carol"
          and seen["club"].members == 2 and not seen["club"].shared,
          "carol lists %r" % seen)
    check(history(carol, "club") == ["m4"], "carol's history of club after the restart")
    dave = login(h, srv, "dave")
    seen, _ = listing(dave)
    check(seen["club"].invited and not seen["club"].member, "dave lists %r" % seen)
    ask(dave, "GROUP_JOIN", group_body("club"))
    check(history(dave, "club") == [], "dave's history of club")
    erin = login(h, srv, "erin")
    ask(erin, "GROUP_JOIN", group_body("club"), "NO_SUCH_GROUP")
    alice = login(h, srv, "alice", "alice-2")
    ask(alice, "GROUP_INVITE", pair_body("club", "erin"), "NOT_ALLOWED")  # carol owns it

    # Deleted, with its history: a new club starts empty, at seq 1.
    ask(carol, "GROUP_DELETE", group_body("club"))
    expect_notice(dave, "NOTICE_DELETED", "club", "carol")
    ask(dave, "HISTORY", encode_fields([(2, "club")]), "NO_SUCH_GROUP")
    ask(erin, "GROUP_CREATE", create_body("club", shared=True))
    check(history(erin, "club") == [], "the new club's history")
    check(say(erin, "club", "new") == 1, "the new club's first seq")


if __name__ == "__main__":
    main(test)
