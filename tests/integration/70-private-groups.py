#!/usr/bin/env python3
"""70-private-groups: private groups and their owner over real sockets
(memory store). A private group is hidden from whoever is neither in it nor
invited: not listed, not counted, and every request on it answered
NO_SUCH_GROUP, as for an id no group has. Only the owner invites, removes,
hands over and deletes (NOT_ALLOWED for the others); the users a change
affects get a notice (a Delivery of kind NOTICE). Pipelined requests, new
and old, refused at once or stored, are answered one each, in order.
imcore-cli drives the same: :invite, :kick, :owner, :delete, the notices
and :groups' marks."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, main  # noqa: E402
from groups import (ask, create_body, expect_notice, group_body, listing,  # noqa: E402
                    pair_body)


def test(h):
    srv = h.server()
    alice, bob, carol = h.raw(srv, "alice"), h.raw(srv, "bob"), h.raw(srv, "carol")
    alice.login("alice")
    bob.login("bob")
    carol.login("carol")
    ask(alice, "GROUP_CREATE", create_body("club", private=True))
    ask(alice, "GROUP_CREATE", create_body("pub"))

    # To bob, club does not exist.
    seen, total = listing(bob)
    check(set(seen) == {"pub"} and total == 1, "bob lists %r (total %d)" % (seen, total))
    for t, body in (("GROUP_JOIN", group_body("club")), ("GROUP_LEAVE", group_body("club")),
                    ("GROUP_INVITE", pair_body("club", "carol")),
                    ("GROUP_KICK", pair_body("club", "alice")),
                    ("GROUP_TRANSFER", pair_body("club", "bob")),
                    ("GROUP_DELETE", group_body("club")),
                    ("GROUP_MESSAGE", encode_fields([(1, "club"), (2, b"hi"), (3, "b-1")])),
                    ("HISTORY", encode_fields([(2, "club")]))):
        ask(bob, t, body, "NO_SUCH_GROUP")
    ask(bob, "GROUP_JOIN", group_body("nosuch"), "NO_SUCH_GROUP")  # the same answer
    ask(bob, "GROUP_CREATE", create_body("club"), "GROUP_EXISTS")  # the id is taken

    # Invited, bob is told, sees it, and may join; he may not invite.
    ask(alice, "GROUP_INVITE", pair_body("club", "bob"))
    expect_notice(bob, "NOTICE_INVITED", "club", "alice")
    seen, total = listing(bob)
    check(total == 2 and seen["club"].private and seen["club"].invited
          and not seen["club"].member and seen["club"].owner == "alice",
          "bob, invited, lists %r" % seen)
    ask(bob, "GROUP_INVITE", pair_body("club", "carol"), "NOT_ALLOWED")
    ask(alice, "GROUP_INVITE", pair_body("pub", "carol"), "INVALID_ARGUMENT")
    ask(bob, "GROUP_JOIN", group_body("club"))
    ask(carol, "GROUP_JOIN", group_body("club"), "NO_SUCH_GROUP")
    ask(alice, "GROUP_MESSAGE", encode_fields([(1, "club"), (2, b"members only"), (3, "a-1")]),
        "SEND_ACK")
    d = bob.expect_frame("DELIVERY")
    check(d.int(1) == 2 and d.body[5][-1] == b"members only", "bob got %r" % d)

    # Removed, bob is told and the group is gone for him again.
    ask(bob, "GROUP_KICK", pair_body("club", "alice"), "NOT_ALLOWED")
    ask(alice, "GROUP_KICK", pair_body("club", "alice"), "INVALID_ARGUMENT")
    ask(alice, "GROUP_KICK", pair_body("club", "bob"))
    expect_notice(bob, "NOTICE_REMOVED", "club", "alice")
    ask(bob, "GROUP_MESSAGE", encode_fields([(1, "club"), (2, b"x"), (3, "b-2")]),
        "NO_SUCH_GROUP")
    ask(bob, "GROUP_JOIN", group_body("club"), "NO_SUCH_GROUP")

    # Pipelined: refusals decided at once, stored changes and a Ping are
    # answered one each, in the order sent.
    batch = [("GROUP_INVITE", pair_body("club", "carol"), "OK"),
             ("GROUP_INVITE", pair_body("club", "b d"), "INVALID_ARGUMENT"),
             ("GROUP_KICK", pair_body("club", "nobody"), "NOT_A_MEMBER"),
             ("GROUP_TRANSFER", pair_body("club", "carol"), "NOT_A_MEMBER"),
             ("PING", b"", "PONG"),
             ("GROUP_KICK", pair_body("club", "carol"), "OK"),
             ("GROUP_INVITE", pair_body("club", "carol"), "OK"),
             ("GROUP_DELETE", group_body("pub"), "OK"),
             ("GROUP_LIST", b"", "GROUP_LIST_RESULT")]
    rids = [alice.request(t, body) for t, body, _ in batch]
    for rid, (t, _, want) in zip(rids, batch):
        f = alice.recv_frame()
        check(f is not None and f.request_id == rid,
              "alice: %s (request %d) was answered by %r" % (t, rid, f))
        got = f.error_code if f.type == "ERROR" else f.type
        check(got == want, "alice: %s answered %s, %s wanted" % (t, got, want))
    expect_notice(carol, "NOTICE_INVITED", "club", "alice")
    expect_notice(carol, "NOTICE_REMOVED", "club", "alice")  # the invitation withdrawn
    expect_notice(carol, "NOTICE_INVITED", "club", "alice")

    # The same through imcore-cli: carol joins and is made the owner; alice
    # may no longer invite; carol deletes it and alice is told.
    ca = h.cli(srv, "alice", name="alice-cli")
    cc = h.cli(srv, "carol", name="carol-cli")
    cc.send(":groups")
    cc.expect(r"^  club  owner=alice members=1/\d+ \[private\] \[invited\]$")
    cc.expect(r"^\* 1 group$")
    cc.send(":join club")
    cc.expect(r"^\* joined club$")
    ca.send(":owner club carol")
    ca.expect(r"^\* club is carol's now$")
    cc.expect(r"^\[\d\d:\d\d:\d\d\] notice @ club: alice made you the owner of the group club$")
    ca.send(":invite club bob")
    ca.expect(r"^! NOT_ALLOWED: only the owner of club \(carol\) may do this$")
    cc.send(":invite club bob")
    cc.expect(r"^\* invited bob to club$")
    expect_notice(bob, "NOTICE_INVITED", "club", "carol")
    cc.send(":kick club alice")
    cc.expect(r"^\* removed alice from club$")
    ca.expect(r"^\[\d\d:\d\d:\d\d\] notice @ club: carol removed you from the group club$")
    ca.send(":join club")
    ca.expect(r"^! NO_SUCH_GROUP: no group club$")
    ca.send(":delete club")
    ca.expect(r"^! NO_SUCH_GROUP: no group club$")
    cc.send(":delete club")
    cc.expect(r"^\* deleted club$")
    expect_notice(bob, "NOTICE_DELETED", "club", "carol")  # invited: told too
    seen, total = listing(bob)
    check(total == 0 and not seen, "bob lists %r after the deletion" % seen)
    ca.send(":create club private shared")
    ca.expect(r"^\* created club$")
    ca.send(":groups")
    ca.expect(r"^  club  owner=alice members=1/\d+ \[member\] \[private\] \[shared history\]$")
    check(srv.running(), "the server stopped")


if __name__ == "__main__":
    main(test)
