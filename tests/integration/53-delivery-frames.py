#!/usr/bin/env python3
"""53-delivery-frames: every frame the server sends fits max_frame_bytes,
whatever the ids, names and numbers around a body. The config refuses a
limits.max_body_bytes closer than 512 bytes to limits.max_frame_bytes
(FILE:LINE, exit 2), naming the key the file sets. At the largest body it
accepts, with ids, display name, client_msg_id and request ids at their
longest, a private and a group Delivery and a HistoryResult each fit. An
Error answering a frame of max_frame_bytes whose client_msg_id is too long
fits too (the id is not echoed), and the connection stays. LoginAck is
small."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import BASE_CONFIG, check, encode_fields, envelope, main, merge, to_yaml  # noqa: E402
from durable import group_body, private_body, sqlite_config  # noqa: E402
from frames import MAX_FRAME, RESERVE, check_size, long_id, nested, text  # noqa: E402

LARGEST_BODY = MAX_FRAME - RESERVE
NAME = ("\u00e9" * 20).ljust(64 - 20, "n")  # 64 bytes of UTF-8
BIG_RID = (1 << 64) - 100                   # request ids of ten varint bytes


def refused(h, name, limits, key, pattern):
    """The server must not start: exit 2 and FILE:LINE: key: pattern."""
    path = h.write(name + ".yaml", to_yaml(merge(BASE_CONFIG, {"limits": limits})))
    lines = open(path).read().split("\n")
    line = lines.index("  %s: %d" % (key.split(".")[1], limits[key.split(".")[1]])) + 1
    rc, _, err = h.run([h.server_path, "--config", path], timeout=5)
    check(rc == 2, "%s: exit %d, not 2:\n%s" % (name, rc, err))
    want = r"%s:%d: %s: %s" % (re.escape(path), line, re.escape(key), pattern)
    check(re.search(want, err), "%s: no %r in:\n%s" % (name, want, err))


def frame_of_size(to, size, cmid_field=3):
    """A PrivateMessage frame of exactly size bytes (after the prefix), its
    client_msg_id as long as it takes."""
    n = size
    while True:
        payload = envelope("PRIVATE_MESSAGE", BIG_RID, encode_fields(
            [(1, to), (2, b"x"), (cmid_field, "c" * n)]))[4:]
        if len(payload) <= size:
            check(len(payload) == size, "cannot build a frame of %d bytes" % size)
            return len(payload), "c" * n
        n -= len(payload) - size


def test(h):
    refused(h, "body-too-close", {"max_frame_bytes": MAX_FRAME, "max_body_bytes": MAX_FRAME - 256},
            "limits.max_body_bytes", r"must be at most limits\.max_frame_bytes - %d \(%d\)"
            % (RESERVE, LARGEST_BODY))
    refused(h, "frame-too-small", {"max_frame_bytes": 8192 + 256}, "limits.max_frame_bytes",
            r"must be at least limits\.max_body_bytes \+ %d \(%d\)" % (RESERVE, 8192 + RESERVE))

    cfg = sqlite_config(h)
    cfg["limits"].update({"max_frame_bytes": MAX_FRAME, "max_body_bytes": LARGEST_BODY})
    srv = h.server(**cfg)
    sender, receiver, group = long_id("sender"), long_id("receiver"), long_id("room")
    s = h.raw(srv, "sender")
    s.next_rid = BIG_RID
    ack = s.login(sender, name=NAME)
    check(len(ack.payload) <= 512, "a LoginAck of %d bytes" % len(ack.payload))
    r = h.raw(srv, "receiver")
    r.next_rid = BIG_RID
    r.login(receiver, name=NAME)

    body = bytes(range(256)) * (LARGEST_BODY // 256)
    body += b"z" * (LARGEST_BODY - len(body))
    cmid = "m" * 64
    s.request("PRIVATE_MESSAGE", private_body(receiver, body, cmid))
    s.expect_frame("SEND_ACK")
    d = r.expect_frame("DELIVERY")
    check_size(d, MAX_FRAME, "the private Delivery")
    check(d.body[5][-1] == body and d.str(8) == cmid and d.str(9) == NAME,
          "the private Delivery is not what was sent")

    s.request("GROUP_CREATE", encode_fields([(1, group)]))
    s.expect_frame("OK")
    r.request("GROUP_JOIN", encode_fields([(1, group)]))
    r.expect_frame("OK")
    gcmid = "g" * 64  # a sender's client_msg_ids are unique across conversations
    s.request("GROUP_MESSAGE", encode_fields([(1, group), (2, body), (3, gcmid)]))
    s.expect_frame("SEND_ACK")
    d = r.expect_frame("DELIVERY")
    check_size(d, MAX_FRAME, "the group Delivery")
    check(d.body[5][-1] == body and d.str(4) == group, "the group Delivery is not what was sent")

    for peer, grp, mid in ((sender, None, cmid), (None, group, gcmid)):
        r.request("HISTORY", encode_fields([(1, peer), (2, grp), (4, 1)]))
        f = r.expect_frame("HISTORY_RESULT")
        check_size(f, MAX_FRAME, "the HistoryResult")
        m = nested(f, 1)
        check(len(m) == 1 and m[0][5][-1] == body and text(m[0], 8) == mid,
              "the HistoryResult of %s holds %d messages" % (peer or group, len(m)))

    # A refusal echoing what the client sent stays within the frame too.
    size, long_cmid = frame_of_size(receiver, MAX_FRAME)
    rid = s.request("PRIVATE_MESSAGE", private_body(receiver, "x", long_cmid))
    e = s.expect_error("INVALID_ARGUMENT")
    check(e.request_id == rid, "the Error answers request %d, not %d" % (e.request_id, rid))
    check_size(e, MAX_FRAME, "the Error answering a frame of %d bytes" % size)
    rid = s.request("GROUP_MESSAGE", group_body(group, "x", long_cmid[:-1]))
    check_size(s.expect_error("INVALID_ARGUMENT"), MAX_FRAME, "the Error to a group message")
    s.request("PING")
    s.expect_frame("PONG")
    check(srv.running(), "the server stopped")


if __name__ == "__main__":
    main(test)
