#!/usr/bin/env python3
"""52-groups-frames: no GroupListResult is larger than max_frame_bytes. With
1000 groups whose ids and owners are as long as allowed (more than one
frame's worth), GroupList pages through them in id order with after /
next_after: every page within the limit, cut only where the next group
would not fit, every group listed once with its owner, member count and
the asker's membership; a limit pages the same way. imcore-cli's :groups
follows the cursor and shows them all."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, main  # noqa: E402
from frames import follow, long_id, number, text  # noqa: E402

GROUPS = 1000


def group_list(after, limit):
    return encode_fields([(1, after or None), (2, limit or None)])


def test(h):
    srv = h.server(session={"heartbeat_s": 30, "idle_timeout_s": 300},
                   limits={"messages_per_second": 0, "max_groups_per_user": 0})
    owner, lister = long_id("owner"), long_id("lister")
    groups = [long_id("group", i) for i in range(GROUPS)]
    o = h.raw(srv, "owner")
    o.login(owner)
    for g in groups:
        o.request("GROUP_CREATE", encode_fields([(1, g)]))
    for g in groups:
        o.expect_frame("OK")
    c = h.raw(srv, "lister")
    c.login(lister)
    joined = set(groups[::7])
    for g in sorted(joined):
        c.request("GROUP_JOIN", encode_fields([(1, g)]))
    for g in joined:
        c.expect_frame("OK")

    for limit in (0, 100):
        items, sizes, total = follow(c, "GROUP_LIST", "GROUP_LIST_RESULT", group_list,
                                     1, lambda g: text(g, 1), limit=limit)
        got = [text(g, 1) for g in items]
        check(got == groups, "limit %d: listed %d groups, %d wanted (first missing: %r)"
              % (limit, len(got), len(groups), sorted(set(groups) - set(got))[:3]))
        for g in items:
            gid = text(g, 1)
            member = gid in joined
            check(text(g, 2) == owner and number(g, 3) == 1 + member and number(g, 4) == 1000
                  and bool(number(g, 5)) == member, "limit %d: group %r" % (limit, g))
        check(total == GROUPS, "limit %d: total %d" % (limit, total))
        check(len(sizes) > 1, "limit %d: %d groups in one frame of %d bytes"
              % (limit, len(got), sizes[0]))

    cli = h.cli(srv, lister, name="lister-cli")
    cli.send(":groups")
    cli.expect(r"^\* %d groups$" % GROUPS)
    listed = cli.out.matching(r"^  \S+  owner=")
    check(len(listed) == GROUPS, ":groups showed %d groups of %d" % (len(listed), GROUPS))
    check("  %s  owner=%s members=2/1000 [member]" % (groups[0], owner) in listed,
          ":groups: %r" % listed[:2])
    check(not cli.out.matching(r"cut short"), ":groups says the list was cut short")
    check(srv.running(), "the server stopped")


if __name__ == "__main__":
    main(test)
