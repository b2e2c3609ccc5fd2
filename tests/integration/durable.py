"""tests/integration/durable.py: helpers for the tests of durable messaging
(the sqlite store): sending with client_msg_ids, reading deliveries and acks,
and a server config whose database lives in the test's directory."""
import os

from imcore_harness import check, encode_fields

# Delivery fields (imcore.proto): kind 1, from 2, to 3, group 4, body 5, seq 6,
# server_time_ms 7, client_msg_id 8, from_name 9, conversation 10.
# SendAck fields: client_msg_id 1, seq 2, server_time_ms 3, delivered 4, duplicate 5.


def sqlite_config(h, name="imcore.db", **storage):
    """The sqlite store in the test's directory, without a send-rate limit
    (these tests pipeline thousands of messages on purpose)."""
    cfg = {"engine": "sqlite", "path": os.path.join(h.tmp, "db", name)}
    cfg.update(storage)
    return {"storage": cfg, "limits": {"messages_per_second": 0}}


def private_body(to, text, cmid):
    return encode_fields([(1, to), (2, text.encode() if isinstance(text, str) else text),
                          (3, cmid)])


def group_body(group, text, cmid):
    return encode_fields([(1, group), (2, text.encode()), (3, cmid)])


def ack_body(conversation, seq):
    return encode_fields([(1, conversation), (2, seq)])


class Delivery:
    def __init__(self, f):
        check(f.type == "DELIVERY", "expected a Delivery, got %r" % f)
        self.frm = f.str(2)
        self.to = f.str(3)
        self.group = f.str(4)
        self.body = f.body.get(5, [b""])[-1].decode()
        self.seq = f.int(6)
        self.cmid = f.str(8)
        self.conversation = f.str(10)

    def __repr__(self):
        return "<Delivery %s seq=%d %s %r>" % (self.conversation, self.seq, self.cmid, self.body)


def next_delivery(raw, timeout=10.0):
    return Delivery(raw.expect_frame("DELIVERY", timeout))


def send_private(raw, to, text, cmid):
    """Sends and waits for the answer: the SendAck frame (or fails on Error)."""
    rid = raw.request("PRIVATE_MESSAGE", private_body(to, text, cmid))
    f = raw.expect_frame("SEND_ACK")
    check(f.request_id == rid and f.str(1) == cmid, "SendAck %r does not answer %s" % (f, cmid))
    return f
