"""tests/integration/frames.py: helpers for the tests of frame sizes and
paged results (50-*): the size of what the server sent, the messages nested
in a result, and a listing followed through its cursor to the end.

Field numbers (imcore.proto):
  GroupList: after 1, limit 2          GroupListResult: groups 1, total 2, next_after 3
  GroupInfo: group 1, owner 2, members 3, max_members 4, member 5
  OnlineUsers: limit 1, after 2        OnlineUsersResult: users 1, total 2, next_after 3
  UserInfo: user_id 1, display_name 2
  History: peer 1, group 2, before_seq 3, limit 4
  HistoryResult: messages 1, truncated 2
"""
from imcore_harness import check, decode_fields, varint

MAX_FRAME = 65536   # limits.max_frame_bytes, the default
RESERVE = 512       # what a frame keeps besides one body: max_body_bytes <= MAX_FRAME - RESERVE


def long_id(prefix, i=None):
    """An id of the longest length allowed (32 bytes): prefix, a number, x's."""
    s = prefix if i is None else "%s%05d" % (prefix, i)
    return s.ljust(32, "x")


def check_size(f, max_frame, what):
    """f came in a frame of at most max_frame bytes (the length prefix's N)."""
    check(len(f.payload) <= max_frame,
          "%s: a frame of %d bytes, over max_frame_bytes %d" % (what, len(f.payload), max_frame))


def nested(f, num):
    """The messages of repeated field num of f's body, each decoded."""
    return [decode_fields(b) for b in f.body.get(num, [])]


def text(fields, num):
    v = fields.get(num)
    return v[-1].decode("utf-8") if v else ""


def number(fields, num):
    return fields.get(num, [0])[-1]


def entry_bytes(raw):
    """What one more entry (raw: its encoded message) adds to a repeated
    field of field number below 16."""
    return 1 + len(varint(len(raw))) + len(raw)


LIST_DEFAULT = 1000  # a listing's limit when the request says 0


def follow(c, request, result, build, item_field, key_of, limit=0, max_frame=MAX_FRAME):
    """Follows a listing (GroupList or OnlineUsers) from the start to its
    end, each request with after = the previous page's next_after, and
    checks every page: its frame within max_frame; ids in strictly
    increasing order, all after the cursor; next_after the page's last id
    while more follow, "" on the last page; and a page cut short of its
    limit only when the next entry would not have fitted in its frame.
    Returns (entries as decoded fields, in order; frame sizes; last total)."""
    items, sizes, after, total = [], [], "", None
    cut_at = None  # the frame size of the page before, if it was cut short of its limit
    while True:
        rid = c.request(request, build(after, limit))
        f = c.expect_frame(result)
        n = len(sizes) + 1
        check(f.request_id == rid, "%s answers request %d, not %d" % (result, f.request_id, rid))
        check_size(f, max_frame, "%s page %d" % (result, n))
        raw = f.body.get(item_field, [])
        page = [decode_fields(b) for b in raw]
        keys = [key_of(i) for i in page]
        check(keys == sorted(keys) and len(set(keys)) == len(keys),
              "%s page %d is not in id order: %r" % (result, n, keys[:5]))
        check(not keys or keys[0] > after,
              "%s page %d starts at %r, not after %r" % (result, n, keys[0], after))
        check(len(page) <= (limit or LIST_DEFAULT),
              "%s page %d: %d entries for limit %d" % (result, n, len(page), limit))
        if cut_at is not None and raw:
            check(cut_at + entry_bytes(raw[0]) > max_frame - 40,
                  "%s page %d: a frame of %d bytes was cut short although the next "
                  "entry fitted" % (result, n - 1, cut_at))
        items.extend(page)
        sizes.append(len(f.payload))
        total = f.int(2)
        nxt = f.str(3)
        if nxt == "":
            return items, sizes, total
        check(page and nxt == keys[-1],
              "%s page %d: next_after %r is not its last id" % (result, n, nxt))
        cut_at = len(f.payload) if len(page) < (limit or LIST_DEFAULT) else None
        after = nxt
        check(n < 10000, "%s: no end after %d pages" % (result, n))
