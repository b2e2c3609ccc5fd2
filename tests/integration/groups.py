"""tests/integration/groups.py: helpers for the tests of private groups and
owners (7N-*): the requests' bodies, the listing followed to its end, and
the notices the server sends.

Field numbers (imcore.proto):
  GroupCreate: group 1, max_members 2, is_private 3, share_history 4
  GroupInvite, GroupKick, GroupTransfer: group 1, user 2   GroupDelete: group 1
  GroupList: after 1, limit 2     GroupListResult: groups 1, total 2, next_after 3
  GroupInfo: group 1, owner 2, members 3, max_members 4, member 5, is_private 6,
             invited 7, share_history 8
  Delivery: kind 1, from 2, to 3, group 4, body 5, seq 6, ..., conversation 10,
            notice 11
"""
import re

from imcore_harness import TYPE, _PROTO_TEXT, _read_enum, check, decode_fields, encode_fields

# Enum numbers read from imcore.proto, as the harness does for Type.
KIND = _read_enum(_PROTO_TEXT, "Kind")       # "NOTICE" -> 3
NOTICE = _read_enum(_PROTO_TEXT, "Notice")   # "NOTICE_INVITED" -> 1


def create_body(group, private=False, shared=False, max_members=0):
    return encode_fields([(1, group), (2, max_members or None), (3, private or None),
                          (4, shared or None)])


def pair_body(group, user):
    """GroupInvite, GroupKick, GroupTransfer."""
    return encode_fields([(1, group), (2, user)])


def group_body(group):
    """GroupJoin, GroupLeave, GroupDelete."""
    return encode_fields([(1, group)])


def ask(c, type_name, body, answer="OK"):
    """Sends one request and checks its answer: a frame of type answer, or
    an Error whose code is answer; returns the frame."""
    rid = c.request(type_name, body)
    f = c.expect_frame(answer if answer in TYPE else "ERROR")
    check(f.request_id == rid, "%s: the answer %r is not to request %d" % (c.name, f, rid))
    if f.type == "ERROR":
        check(f.error_code == answer, "%s: %s answered %r, %s wanted" % (c.name, type_name, f,
                                                                          answer))
    return f


class Listed:
    """One GroupInfo."""

    def __init__(self, raw):
        g = decode_fields(raw)
        self.group = g.get(1, [b""])[-1].decode()
        self.owner = g.get(2, [b""])[-1].decode()
        self.members = g.get(3, [0])[-1]
        self.member = bool(g.get(5, [0])[-1])
        self.private = bool(g.get(6, [0])[-1])
        self.invited = bool(g.get(7, [0])[-1])
        self.shared = bool(g.get(8, [0])[-1])

    def __repr__(self):
        return "<%s owner=%s members=%d%s%s%s%s>" % (
            self.group, self.owner, self.members, " member" if self.member else "",
            " private" if self.private else "", " invited" if self.invited else "",
            " shared" if self.shared else "")


def listing(c):
    """Every group c may see, following next_after: ({id: Listed}, total)."""
    seen, after, total = {}, "", None
    while True:
        f = ask(c, "GROUP_LIST", encode_fields([(1, after or None)]), "GROUP_LIST_RESULT")
        for raw in f.body.get(1, []):
            g = Listed(raw)
            seen[g.group] = g
        total = f.int(2)
        after = f.str(3)
        if not after:
            return seen, total


def expect_notice(c, notice, group, frm):
    """The next frame (Pongs passed over) is a notice of this kind."""
    f = c.expect_frame("DELIVERY")
    check(f.int(1) == KIND["NOTICE"] and f.int(11) == NOTICE[notice] and f.str(4) == group
          and f.str(2) == frm and f.int(6) == 0 and f.str(10) == "",
          "%s: expected %s about %s from %s, got %r %r" % (c.name, notice, group, frm, f,
                                                           f.body))
    check(re.search(frm, f.body.get(5, [b""])[-1].decode()),
          "%s: the notice's sentence does not name %s" % (c.name, frm))
    return f
