#!/usr/bin/env python3
"""06-bad-frames: a frame that does not decode gets Error BAD_FRAME and then
EOF; a length prefix of 0x7fffffff gets Error FRAME_TOO_LARGE and then EOF,
before the server allocates anything; alice and bob chat before and after."""
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import encode_fields, check, main  # noqa: E402

STAMP = r"^\[\d\d:\d\d:\d\d\] "


def chat(alice, bob, text):
    alice.send("@bob " + text)
    bob.expect(STAMP + r"alice \u2192 you: %s$" % text)
    bob.send("@alice re: " + text)
    alice.expect(STAMP + r"bob \u2192 you: re: %s$" % text)


def test(h):
    srv = h.server()
    alice = h.cli(srv, "alice")
    bob = h.cli(srv, "bob")
    chat(alice, bob, "before")

    # Five bytes that are not a protobuf message (a varint that never ends).
    garbage = h.raw(srv, "garbage")
    garbage.send(struct.pack(">I", 5) + b"\xff\xff\xff\xff\xff")
    garbage.expect_error("BAD_FRAME")
    garbage.expect_eof()

    # A valid protobuf message whose type and body disagree (type PING,
    # body login) is a protocol error too.
    mismatch = h.raw(srv, "mismatch")
    payload = encode_fields([(1, 4), (2, 1), (10, b"\x0a\x01x")])
    mismatch.send(struct.pack(">I", len(payload)) + payload)
    mismatch.expect_error("BAD_FRAME")
    mismatch.expect_eof()

    huge = h.raw(srv, "huge")
    huge.send(b"\x7f\xff\xff\xff")
    huge.expect_error("FRAME_TOO_LARGE")
    huge.expect_eof()

    # Half a frame, then the client shuts its sending side: the server says
    # the connection ended inside a frame, then closes.
    cut = h.raw(srv, "truncated")
    cut.send(struct.pack(">I", 100) + b"\x08\x04")
    cut.sock.shutdown(socket.SHUT_WR)
    cut.expect_error("BAD_FRAME")
    cut.expect_eof()

    # The same after login: the session dies, the others feel nothing.
    late = h.raw(srv, "late")
    late.login("mallory")
    late.send(struct.pack(">I", 3) + b"\xff\xff\xff")
    late.expect_error("BAD_FRAME")
    late.expect_eof()

    chat(alice, bob, "after")
    check(not alice.out.matching(r"^!") and not bob.out.matching(r"^!"),
          "a CLI printed an error")


if __name__ == "__main__":
    main(test)
