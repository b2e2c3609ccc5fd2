#!/usr/bin/env python3
"""50-history-frames: no HistoryResult is larger than max_frame_bytes.
Twenty messages of 8192 bytes (ids, client_msg_ids at their longest) asked
for at once come back cut to fit: each page keeps the messages nearest
before_seq, drops the oldest and says so (truncated), and paging back with
before_seq = the smallest seq received gets all twenty, each once. With
max_body_bytes at the largest the server accepts, each page holds one
message. imcore-cli's :history follows the pages and shows all n."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, main  # noqa: E402
from durable import private_body, send_private, sqlite_config  # noqa: E402
from frames import MAX_FRAME, RESERVE, check_size, long_id, nested, number, text  # noqa: E402

LARGEST_BODY = MAX_FRAME - RESERVE


def body_of(peer, i, size):
    return ("%s %d " % (peer[:3], i)).ljust(size, "~").encode()


def fill(c, peer, sizes):
    for i, size in enumerate(sizes):
        send_private(c, peer, body_of(peer, i, size), ("%s-%d" % (peer, i)).ljust(64, "-"))


def history(c, peer, before, limit):
    rid = c.request("HISTORY", encode_fields([(1, peer), (3, before or None), (4, limit)]))
    f = c.expect_frame("HISTORY_RESULT")
    check(f.request_id == rid, "HistoryResult for request %d, not %d" % (f.request_id, rid))
    check_size(f, MAX_FRAME, "HistoryResult of %s before %d" % (peer, before))
    return f


def page_back(c, peer, sizes, limit):
    """Pages back through the conversation with peer (which holds one
    message per entry of sizes, seqs 1..n) and checks every page. Returns
    the number of pages."""
    n = len(sizes)
    seen = {}
    before, pages = 0, 0
    while True:
        f = history(c, peer, before, limit)
        msgs = nested(f, 1)
        seqs = [number(m, 6) for m in msgs]
        newest = before - 1 if before else n  # the messages there are before before_seq
        if newest == 0:
            check(not msgs and not f.int(2), "before seq 1: %r, truncated %d" % (seqs, f.int(2)))
            break
        pages += 1
        check(msgs, "page %d (before %d) is empty" % (pages, before))
        check(seqs == list(range(newest - len(seqs) + 1, newest + 1)),
              "page %d (before %d): seqs %r are not the newest before it" % (pages, before, seqs))
        cut = len(msgs) < min(limit, newest)
        check(bool(f.int(2)) == cut, "page %d (before %d): %d messages of %d, truncated=%d"
              % (pages, before, len(msgs), min(limit, newest), f.int(2)))
        for m, seq in zip(msgs, seqs):
            check(seq not in seen, "seq %d came twice" % seq)
            check(m.get(5, [b""])[-1] == body_of(peer, seq - 1, sizes[seq - 1]),
                  "the body of seq %d" % seq)
            check(text(m, 8) == ("%s-%d" % (peer, seq - 1)).ljust(64, "-"),
                  "the client_msg_id of seq %d" % seq)
            seen[seq] = True
        before = seqs[0]
    check(sorted(seen) == list(range(1, n + 1)), "paging got seqs %r" % sorted(seen))
    return pages


def test(h):
    cfg = sqlite_config(h)
    cfg["limits"].update({"max_frame_bytes": MAX_FRAME, "max_body_bytes": LARGEST_BODY})
    srv = h.server(**cfg)
    me, peer, big_peer = long_id("alice"), long_id("bob"), long_id("carol")
    c = h.raw(srv, "alice")
    c.login(me, name="A" * 64)

    twenty = [8192] * 20
    fill(c, peer, twenty)
    pages = page_back(c, peer, twenty, 20)
    check(pages >= 3, "twenty bodies of 8192 bytes came in %d pages" % pages)
    # A smaller limit pages the same way, and the largest one too.
    page_back(c, peer, twenty, 6)
    page_back(c, peer, twenty, 200)

    # Bodies of max_body_bytes: one per page, none over the frame.
    three = [LARGEST_BODY] * 3
    fill(c, big_peer, three)
    check(page_back(c, big_peer, three, 20) == 3, "three largest bodies not in three pages")

    # The CLI follows the pages: :history shows all twenty, oldest first.
    cli = h.cli(srv, peer)
    cli.send(":history @%s 20" % me)
    for i in range(20):
        cli.expect(r"^  \[\d\d:\d\d:\d\d\] %s \u2192 you: bob %d ~+$" % (me, i))
    cli.expect(r"^\* 20 messages$")
    cli.send(":history @%s 3" % me)
    for i in range(17, 20):
        cli.expect(r"^  \[\d\d:\d\d:\d\d\] %s \u2192 you: bob %d ~+$" % (me, i))
    cli.expect(r"^\* 3 messages$")
    check(srv.running(), "the server stopped")


if __name__ == "__main__":
    main(test)
