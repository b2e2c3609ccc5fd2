#!/usr/bin/env python3
"""104-tls-client-cert: a TLS listener with client_ca asks every client for
a certificate that chains to those CAs.

- A client with a certificate from that CA logs in and chats.
- A client without a certificate, and one whose certificate another CA
  signed, are refused in the handshake; the first client is undisturbed.
- On the same server, the listener without client_ca asks for nothing."""
import os
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, main  # noqa: E402
from tlsfix import Pki, TlsClient, client_context, tls_listener  # noqa: E402


def refused(h, port, ctx, name):
    try:
        c = TlsClient(h, port, name, ctx)
        # TLS 1.3: the server's verdict on the client's certificate comes
        # after the client's handshake is done; the first read gets it.
        c.login(name)
    except (ssl.SSLError, OSError, AssertionError):
        return True
    return False


def test(h):
    server_pki = Pki(h, "server-ca")
    clients = Pki(h, "client-ca")
    strangers = Pki(h, "stranger-ca")
    cert, key = server_pki.issue("server")
    alice_pem, alice_key = clients.issue("alice", sans=("DNS:alice",))
    eve_pem, eve_key = strangers.issue("eve", sans=("DNS:eve",))

    srv = h.server(listen=[tls_listener(cert, key, client_ca=clients.ca),
                           tls_listener(cert, key)])
    ports = [int(m) for m in
             [srv.err.expect(r"listening on tls 127\.0\.0\.1:(\d+)$").group(1),
              srv.err.expect(r"listening on tls 127\.0\.0\.1:(\d+)$").group(1)]]

    ctx = client_context(server_pki.ca)
    ctx.load_cert_chain(alice_pem, alice_key)
    alice = TlsClient(h, ports[0], "alice", ctx)
    alice.login("alice")

    check(refused(h, ports[0], client_context(server_pki.ca), "nocert"),
          "a client without a certificate was let in")
    ctx_eve = client_context(server_pki.ca)
    ctx_eve.load_cert_chain(eve_pem, eve_key)
    check(refused(h, ports[0], ctx_eve, "eve"), "a certificate from another CA was let in")

    bob = TlsClient(h, ports[1], "bob", client_context(server_pki.ca))
    bob.login("bob")
    rid = alice.request("PRIVATE_MESSAGE", encode_fields([(1, "bob"), (2, b"hi"), (3, "a-1")]))
    check(alice.expect_frame("SEND_ACK").request_id == rid, "alice's send was not acked")
    check(b"hi" in bob.expect_frame("DELIVERY").payload, "bob did not get alice's message")


if __name__ == "__main__":
    main(test)
