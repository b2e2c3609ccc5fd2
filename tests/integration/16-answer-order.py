#!/usr/bin/env python3
"""16-answer-order: the server answers the requests of one connection in the
order it read them, whatever each costs, and a read sees the writes whose
answers came before it. Every case is sent as one write.

- Send, Ping, Send-to-self (refused at once), Send, GroupList, OnlineUsers:
  the answers come in that order (before, the Pong and the refusals
  overtook the SendAcks, which wait for the disk);
- 1,000 sends over a rate limit: SendAcks and RATE_LIMITED errors
  interleaved exactly as the requests were;
- 20 sends and a Logout: 20 SendAcks, then Ok, then the connection closes
  (before, the Ok came and the SendAcks never did);
- a Send and a History: the SendAck, then a HistoryResult that holds the
  message (read your own writes);
- with password accounts, a Login (checked on another thread) and a
  GroupCreate behind it: the LoginAck, then Ok (one login at a time: the
  request waits for it instead of being refused NOT_LOGGED_IN)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, decode_fields, encode_fields, envelope, main  # noqa: E402
from durable import group_body, private_body, sqlite_config  # noqa: E402


class Batch:
    """Requests packed into one write, each with its own request id."""

    def __init__(self, raw):
        self.raw = raw
        self.data = bytearray()
        self.sent = []  # (request_id, what the answer must be)

    def add(self, type_name, body=b"", expect=None):
        rid = self.raw.next_rid
        self.raw.next_rid += 1
        self.data += envelope(type_name, rid, body)
        self.sent.append((rid, expect))
        return rid

    def send(self):
        self.raw.send(bytes(self.data))


def answers(raw, n, skip=("DELIVERY",)):
    """The next n frames that answer requests (Deliveries passed over)."""
    out = []
    while len(out) < n:
        f = raw.recv_frame()
        check(f is not None, "%s: EOF after %d of %d answers: %r" % (raw.name, len(out), n, out[-3:]))
        if f.type not in skip:
            out.append(f)
    return out


def check_order(raw, batch):
    got = answers(raw, len(batch.sent))
    for (rid, want), f in zip(batch.sent, got):
        check(f.request_id == rid,
              "%s: answers out of order: expected request %d (%s) next, got %r"
              % (raw.name, rid, want, f))
        if want:
            kind = f.error_code if f.type == "ERROR" else f.type
            check(kind == want, "%s: request %d answered %r, expected %s" % (raw.name, rid, f, want))
    return got


def mixed(h, srv):
    alice = h.raw(srv, "alice")
    alice.login("alice")
    bob = h.raw(srv, "bob")
    bob.login("bob")
    b = Batch(alice)
    b.add("PRIVATE_MESSAGE", private_body("bob", "one", "m-1"), "SEND_ACK")
    b.add("PING", b"", "PONG")
    b.add("PRIVATE_MESSAGE", private_body("alice", "to myself", "m-2"), "INVALID_ARGUMENT")
    b.add("PRIVATE_MESSAGE", private_body("bob", "two", "m-3"), "SEND_ACK")
    b.add("GROUP_LIST", b"", "GROUP_LIST_RESULT")
    b.add("ONLINE_USERS", b"", "ONLINE_USERS_RESULT")
    b.send()
    check_order(alice, b)


def rate_limited(h, srv):
    """1,000 sends at a limit of 200 a second: some acked, some refused, all
    answered in request order."""
    carol = h.raw(srv, "carol")
    carol.login("carol")
    dave = h.raw(srv, "dave")
    dave.login("dave")
    b = Batch(carol)
    for i in range(1000):
        b.add("PRIVATE_MESSAGE", private_body("dave", "n%d" % i, "r-%d" % i))
    b.send()
    got = check_order(carol, b)
    kinds = [f.error_code if f.type == "ERROR" else f.type for f in got]
    check("SEND_ACK" in kinds and "RATE_LIMITED" in kinds,
          "expected both SendAcks and RATE_LIMITED, got %s" % sorted(set(kinds)))
    check(set(kinds) <= {"SEND_ACK", "RATE_LIMITED"}, "unexpected answers: %s" % sorted(set(kinds)))


def logout_after_sends(h, srv):
    erin = h.raw(srv, "erin")
    erin.login("erin")
    b = Batch(erin)
    for i in range(20):
        b.add("PRIVATE_MESSAGE", private_body("frank", "bye %d" % i, "l-%d" % i), "SEND_ACK")
    b.add("LOGOUT", b"", "OK")
    b.send()
    check_order(erin, b)
    erin.expect_eof()


def history_after_send(h, srv):
    gina = h.raw(srv, "gina")
    gina.login("gina")
    b = Batch(gina)
    b.add("PRIVATE_MESSAGE", private_body("hank", "read me back", "h-1"), "SEND_ACK")
    # History{peer: 1, group: 2, before_seq: 3, limit: 4}
    b.add("HISTORY", encode_fields([(1, "hank")]), "HISTORY_RESULT")
    b.send()
    got = check_order(gina, b)
    bodies = [decode_fields(m).get(5, [b""])[-1] for m in got[1].body.get(1, [])]
    check(b"read me back" in bodies, "History did not see the acked message: %r" % bodies)


def group_ops(h, srv):
    """Membership changes are stored too: their Ok keeps its place."""
    ivy = h.raw(srv, "ivy")
    ivy.login("ivy")
    b = Batch(ivy)
    b.add("GROUP_CREATE", encode_fields([(1, "order-room")]), "OK")
    b.add("PING", b"", "PONG")
    b.add("GROUP_MESSAGE", group_body("order-room", "hello room", "g-1"), "SEND_ACK")
    b.add("GROUP_JOIN", encode_fields([(1, "no-such-room")]), "NO_SUCH_GROUP")
    b.add("GROUP_LEAVE", encode_fields([(1, "order-room")]), "OK")
    b.add("GROUP_LIST", b"", "GROUP_LIST_RESULT")
    b.send()
    got = check_order(ivy, b)
    check(got[-1].body.get(1) is None, "the group left and deleted is still listed: %r" % got[-1].body)


def login_then_send(h):
    cfg = sqlite_config(h, "accounts.db")
    cfg["accounts"] = {"mode": "password", "password_hash": "min"}
    srv = h.server("server-accounts", **cfg)
    jack = h.raw(srv, "jack")
    b = Batch(jack)
    # Login{user_id 1, display 2, version 3, password 4, token 5, create 6}
    b.add("LOGIN", encode_fields([(1, "jack"), (3, "it"), (4, "password of jack"), (6, True)]),
          "LOGIN_ACK")
    b.add("GROUP_CREATE", encode_fields([(1, "jacks-room")]), "OK")
    b.add("PING", b"", "PONG")
    b.send()
    check_order(jack, b)


def test(h):
    cfg = sqlite_config(h)
    srv = h.server(**cfg)
    mixed(h, srv)
    logout_after_sends(h, srv)
    history_after_send(h, srv)
    group_ops(h, srv)
    srv.terminate()
    cfg["limits"] = {"messages_per_second": 200}
    srv = h.server("server-rate", **cfg)
    rate_limited(h, srv)
    srv.terminate()
    login_then_send(h)


if __name__ == "__main__":
    main(test)
