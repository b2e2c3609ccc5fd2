#!/usr/bin/env python3
"""100-tls-chat: one server, two listeners (plain TCP and TLS), one
application. A client over TLS (Python's ssl module, frames through the
harness), imcore-cli --tls and a plain TCP client chat with each other.

- Every pair exchanges a private message, both ways across the carriers.
- TLS 1.2 and 1.3 are spoken; TLS 1.1 is refused.
- A second TLS connection offering the first one's session resumes it
  (tickets), and chats.
- The old mapping form (`listen: {host, port}`) still serves one TCP
  listener: BASE_CONFIG uses it for every other test."""
import os
import ssl
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, main  # noqa: E402
from tlsfix import Pki, TlsClient, client_context, tls_port, two_listeners  # noqa: E402

STAMP = r"^\[\d\d:\d\d:\d\d\] "


def send_private(c, to, text, cmid):
    rid = c.request("PRIVATE_MESSAGE", encode_fields([(1, to), (2, text.encode()), (3, cmid)]))
    ack = c.expect_frame("SEND_ACK", skip=("PONG", "DELIVERY"))
    check(ack.request_id == rid, "%s: SendAck for %d, sent %d" % (c.name, ack.request_id, rid))


def expect_delivery(c, frm, text):
    d = c.expect_frame("DELIVERY")
    check(text.encode() in d.payload and frm.encode() in d.payload,
          "%s: expected %s's %r, got %r" % (c.name, frm, text, d))


def test(h):
    pki = Pki(h)
    cert, key = pki.issue("server")
    srv = h.server(listen=two_listeners(cert, key))
    port = tls_port(srv)
    check(port != srv.port, "the TLS and TCP listeners share port %d" % port)

    ctx = client_context(pki.ca)
    alice = TlsClient(h, port, "alice-tls", ctx)
    check(alice.sock.version() == "TLSv1.3", "alice speaks %s" % alice.sock.version())
    alice.login("alice")
    bob = h.raw(srv, "bob-tcp")
    bob.login("bob")
    carol = h.cli(port, "carol", args=["--tls", "--ca", pki.ca])

    send_private(alice, "bob", "over tls to tcp", "a-1")
    expect_delivery(bob, "alice", "over tls to tcp")
    send_private(bob, "alice", "over tcp to tls", "b-1")
    expect_delivery(alice, "bob", "over tcp to tls")
    carol.send("@bob from the cli over tls")
    expect_delivery(bob, "carol", "from the cli over tls")
    send_private(bob, "carol", "tcp to the cli", "b-2")
    carol.expect(STAMP + r"bob \u2192 you: tcp to the cli$")
    send_private(alice, "carol", "tls to tls", "a-2")
    carol.expect(STAMP + r"alice \u2192 you: tls to tls$")

    # TLS 1.2 is served; 1.1 is not.
    ctx12 = client_context(pki.ca)
    ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
    dave = TlsClient(h, port, "dave-tls12", ctx12)
    check(dave.sock.version() == "TLSv1.2", "dave speaks %s" % dave.sock.version())
    dave.login("dave")
    send_private(dave, "bob", "over tls 1.2", "d-1")
    expect_delivery(bob, "dave", "over tls 1.2")
    ctx11 = client_context(pki.ca)
    ctx11.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that this client offers TLS 1.1 at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx11.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx11.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        TlsClient(h, port, "old", ctx11)
        refused = False
    except (ssl.SSLError, OSError):
        refused = True
    check(refused, "a TLS 1.1 client was served")
    srv.err.expect(r"TLS handshake failed: unsupported protocol")

    # Resumption: the session of a first connection (its ticket arrives
    # with the first data, read by the login) resumes on a second.
    first = TlsClient(h, port, "erin-1", ctx)
    first.login("erin")
    session = first.sock.session
    first.close()
    again = TlsClient(h, port, "erin-2", ctx, session=session)
    check(again.sock.session_reused, "a session offered again was not resumed")
    again.login("erin")
    send_private(again, "alice", "resumed", "e-1")
    expect_delivery(alice, "erin", "resumed")


if __name__ == "__main__":
    main(test)
