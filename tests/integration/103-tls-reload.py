#!/usr/bin/env python3
"""103-tls-reload: SIGHUP loads a TLS listener's certificate and key again,
for new connections; connections already open are not dropped.

- A TLS client logged in with the first certificate keeps chatting with a
  TCP client across two reloads.
- After the files are replaced and SIGHUP sent, a new connection is served
  the new certificate.
- A reload that finds a broken file keeps the certificate the listener had
  (an ERROR line says so) and the server runs on."""
import os
import shutil
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, main  # noqa: E402
from tlsfix import Pki, TlsClient, client_context, der_of, tls_port, two_listeners  # noqa: E402


def chat(a, b, text):
    rid = a.request("PRIVATE_MESSAGE", encode_fields([(1, b.user), (2, text.encode()),
                                                       (3, "%s-%d" % (a.user, a.next_rid))]))
    ack = a.expect_frame("SEND_ACK")
    check(ack.request_id == rid, "%s: SendAck for %d, sent %d" % (a.name, ack.request_id, rid))
    d = b.expect_frame("DELIVERY")
    check(text.encode() in d.payload, "%s: expected %r, got %r" % (b.name, text, d))


def served_cert(h, port, ctx, user):
    c = TlsClient(h, port, "probe-" + user, ctx)
    der = c.sock.getpeercert(binary_form=True)
    c.login(user)
    c.close()
    return der


def test(h):
    pki = Pki(h)
    first_pem, first_key = pki.issue("first")
    second_pem, second_key = pki.issue("second")
    live_pem, live_key = os.path.join(h.tmp, "live.pem"), os.path.join(h.tmp, "live.key")
    shutil.copy(first_pem, live_pem)
    shutil.copy(first_key, live_key)

    srv = h.server(listen=two_listeners(live_pem, live_key))
    port = tls_port(srv)
    ctx = client_context(pki.ca)
    check(served_cert(h, port, ctx, "p1") == der_of(h, first_pem), "not the first certificate")

    alice = TlsClient(h, port, "alice-tls", ctx)
    alice.user = "alice"
    alice.login("alice")
    bob = h.raw(srv, "bob-tcp")
    bob.user = "bob"
    bob.login("bob")
    chat(alice, bob, "before the reload")

    shutil.copy(second_pem, live_pem)
    shutil.copy(second_key, live_key)
    srv.signal(signal.SIGHUP)
    srv.err.expect(r"tls listener 127\.0\.0\.1:%d: certificate reloaded" % port)
    check(served_cert(h, port, ctx, "p2") == der_of(h, second_pem),
          "a new connection after SIGHUP was not served the new certificate")
    chat(alice, bob, "after the reload")
    chat(bob, alice, "and back")

    # A broken file: the listener keeps what it had.
    with open(live_pem, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nbroken\n")
    srv.signal(signal.SIGHUP)
    srv.err.expect(r"ERROR .*reload failed, keeping the certificate it had: .*live\.pem")
    check(srv.running(), "the server stopped on a bad reload")
    check(served_cert(h, port, ctx, "p3") == der_of(h, second_pem),
          "a failed reload changed the certificate served")
    chat(alice, bob, "after a failed reload")


if __name__ == "__main__":
    main(test)
