#!/usr/bin/env python3
"""101-tls-refusals: what a TLS listener and imcore-cli --tls refuse, and
that no refusal disturbs the clients already chatting.

- --ca, --servername and --insecure without --tls (or --insecure with
  --ca) are bad usage: exit 2.
- A client that does not trust the server's CA is refused: Python's ssl
  with the system's CAs, and imcore-cli --tls without --ca (exit 1, says
  why).
- imcore-cli --tls refuses an expired server certificate and a wrong host
  name (--servername), exit 1; with --insecure it connects, and warns.
- A plaintext client on the TLS port is closed.
- A TLS handshake that stalls (a TCP connection that sends nothing, and
  one that sends half a ClientHello) is closed after session.login_timeout_s.
- Meanwhile a TLS client and a TCP client keep chatting."""
import os
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, envelope, login_body, main  # noqa: E402
from tlsfix import (Pki, TlsClient, client_context, eof_within, tls_listener, tls_port,  # noqa: E402
                    two_listeners)


def chat(a, b, text):
    rid = a.request("PRIVATE_MESSAGE", encode_fields([(1, b.user), (2, text.encode()),
                                                       (3, "%s-%d" % (a.user, a.next_rid))]))
    ack = a.expect_frame("SEND_ACK")
    check(ack.request_id == rid, "%s: SendAck for %d, sent %d" % (a.name, ack.request_id, rid))
    d = b.expect_frame("DELIVERY")
    check(text.encode() in d.payload, "%s: expected %r, got %r" % (b.name, text, d))


def cli_refused(h, port, args, why):
    rc, out, err = h.run([h.cli_path, "--host", "127.0.0.1", "--port", str(port), "--user",
                          "mallory", "--tls"] + args, stdin=b"@alice hi\n")
    check(rc == 1, "imcore-cli %s: exit %d, not 1 (stdout %r)" % (" ".join(args), rc, out))
    check(why in out and "! TLS:" in out, "imcore-cli %s: %r does not say %r"
          % (" ".join(args), out, why))
    return out, err


def test(h):
    pki = Pki(h)
    cert, key = pki.issue("server")
    expired_cert, expired_key = pki.issue("expired", start="20200101000000Z",
                                          end="20200102000000Z")
    srv = h.server(listen=two_listeners(cert, key), session={"heartbeat_s": 5,
                                                             "idle_timeout_s": 15,
                                                             "login_timeout_s": 2})
    port = tls_port(srv)

    alice = TlsClient(h, port, "alice-tls", client_context(pki.ca))
    alice.user = "alice"
    alice.login("alice")
    bob = h.raw(srv, "bob-tcp")
    bob.user = "bob"
    bob.login("bob")
    chat(alice, bob, "before")

    # The system's CAs do not include this one.
    try:
        TlsClient(h, port, "untrusting", client_context())
        check(False, "a client without the CA completed a handshake")
    except ssl.SSLCertVerificationError as e:
        check("certificate verify failed" in str(e), "refused for another reason: %s" % e)
    cli_refused(h, port, [], "unable to get local issuer certificate")
    # A wrong name: the certificate names localhost and 127.0.0.1.
    cli_refused(h, port, ["--ca", pki.ca, "--servername", "imcore.example"], "hostname mismatch")
    try:
        TlsClient(h, port, "wrong-name", client_context(pki.ca), server_hostname="imcore.example")
        check(False, "a wrong host name was accepted")
    except ssl.SSLCertVerificationError as e:
        check("Hostname mismatch" in str(e) or "hostname" in str(e).lower(), "refused: %s" % e)
    # --insecure connects, and says what it costs.
    rc, out, err = h.run([h.cli_path, "--host", "127.0.0.1", "--port", str(port), "--user",
                          "ivy", "--tls", "--insecure"], stdin=b"")
    check(rc == 0 and "logged in as ivy" in out, "--insecure: exit %d, %r %r" % (rc, out, err))
    check("warning: --insecure" in err, "--insecure did not warn: %r" % err)

    # The TLS options mean nothing without --tls: bad usage.
    for args in (["--ca", pki.ca], ["--insecure"], ["--servername", "x"],
                 ["--tls", "--insecure", "--ca", pki.ca]):
        rc, out, err = h.run([h.cli_path, "--port", str(port), "--user", "u"] + args)
        check(rc == 2 and "--" in err, "imcore-cli %s: exit %d and %r, not 2 and a message"
              % (" ".join(args), rc, err))

    # An expired certificate, on a second server.
    old = h.server("expired", listen=[tls_listener(expired_cert, expired_key)])
    old_port = tls_port(old)
    cli_refused(h, old_port, ["--ca", pki.ca], "certificate has expired")

    # Plaintext on the TLS port: closed.
    plain = socket.create_connection(("127.0.0.1", port), timeout=5)
    plain.sendall(envelope("LOGIN", 1, login_body("plain")))
    # At once: well before login_timeout_s.
    check(eof_within(plain, 1.5), "a plaintext client on the TLS port was not closed")
    plain.close()
    srv.err.expect(r"TLS handshake failed: wrong version number")

    # Stalled handshakes: nothing at all, and half a ClientHello.
    t0 = time.monotonic()
    silent = socket.create_connection(("127.0.0.1", port), timeout=5)
    half = socket.create_connection(("127.0.0.1", port), timeout=5)
    half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a record begun, never ended
    check(eof_within(silent, 6), "a silent TLS connection was not closed")
    check(eof_within(half, 6), "a half handshake was not closed")
    took = time.monotonic() - t0
    check(took >= 1.5, "stalled handshakes closed after %.1f s, before login_timeout_s" % took)
    srv.err.expect(r"TLS handshake not completed within session.login_timeout_s")
    silent.close()
    half.close()

    # Nobody else noticed (and they keep chatting after the timeouts).
    chat(bob, alice, "after")
    chat(alice, bob, "still here")


if __name__ == "__main__":
    main(test)
