#!/usr/bin/env python3
"""51-olu-frames: no OnlineUsersResult is larger than max_frame_bytes. With
700 users online whose ids and display names are as long as allowed (more
than one frame's worth), OnlineUsers pages through them in id order with
after / next_after: every page within the limit, cut only where the next
user would not fit, and every user listed once with their name; a small
limit pages the same way. imcore-cli's :olu follows the cursor and shows
them all."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, main  # noqa: E402
from frames import follow, long_id, text  # noqa: E402

USERS = 700


def name_of(user_id):
    return ("Name of %s " % user_id).ljust(64, "*")


def online_users(after, limit):
    return encode_fields([(1, limit or None), (2, after or None)])


def test(h):
    # Raw clients never ping: the idle timeout must outlast the test.
    srv = h.server(session={"heartbeat_s": 30, "idle_timeout_s": 300})
    ids = [long_id("user", i) for i in range(USERS)]
    clients = [h.raw(srv, "u%d" % i) for i in range(USERS)]
    # Pipelined: every Login first, then every LoginAck.
    for c, uid in zip(clients, ids):
        c.request("LOGIN", encode_fields([(1, uid), (2, name_of(uid))]))
    for c in clients:
        c.expect_frame("LOGIN_ACK")
    lister = long_id("lister")
    ids.append(lister)
    c = h.raw(srv, "lister")
    c.login(lister, name=name_of(lister))
    want = sorted(ids)

    for limit in (0, 64):
        users, sizes, total = follow(c, "ONLINE_USERS", "ONLINE_USERS_RESULT", online_users,
                                     1, lambda u: text(u, 1), limit=limit)
        got = [text(u, 1) for u in users]
        check(got == want, "limit %d: listed %d users, %d wanted (first missing: %r)"
              % (limit, len(got), len(want), sorted(set(want) - set(got))[:3]))
        check(all(text(u, 2) == name_of(text(u, 1)) for u in users),
              "limit %d: a display name is wrong" % limit)
        check(total == len(want), "limit %d: total %d, not %d" % (limit, total, len(want)))
        check(len(sizes) > 1, "limit %d: %d users in one frame of %d bytes"
              % (limit, len(got), sizes[0]))

    cli = h.cli(srv, "watcher")
    cli.send(":olu")
    cli.expect(r"^\* %d online$" % (len(want) + 1))
    listed = cli.out.matching(r"^  \S+ \(.*\)$")
    check(len(listed) == len(want) + 1 and "  %s (%s)" % (ids[0], name_of(ids[0])) in listed,
          ":olu showed %d users of %d" % (len(listed), len(want) + 1))
    check(not cli.out.matching(r"cut short"), ":olu says the list was cut short")
    check(srv.running(), "the server stopped")


if __name__ == "__main__":
    main(test)
