#!/usr/bin/env python3
"""105-listener-limits: a listener's own max_connections bounds that
listener only.

- A TLS listener with max_connections 2 takes two clients; the third is
  closed at once (no frame: it could not read one), the log says why.
- Meanwhile the TCP listener beside it takes more than two.
- Once a TLS client leaves, its slot is free again."""
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main, wait_until  # noqa: E402
from tlsfix import Pki, TlsClient, client_context, eof_within, tls_port, two_listeners  # noqa: E402


def test(h):
    pki = Pki(h)
    cert, key = pki.issue("server")
    srv = h.server(listen=two_listeners(cert, key, max_connections=2))
    port = tls_port(srv)
    ctx = client_context(pki.ca)

    a = TlsClient(h, port, "a", ctx)
    a.login("a")
    b = TlsClient(h, port, "b", ctx)
    b.login("b")
    third = socket.create_connection(("127.0.0.1", port), timeout=5)
    check(eof_within(third, 3), "a third TLS connection was not closed")
    third.close()
    srv.err.expect(r"refused: the tls listener's max_connections \(2\) reached")

    tcp = [h.raw(srv, "tcp-%d" % i) for i in range(3)]
    for i, r in enumerate(tcp):
        r.login("t%d" % i)

    a.close()

    def again():
        try:
            c = TlsClient(h, port, "c", ctx)
            c.login("c")
            return c
        except Exception:
            return None
    check(wait_until(again, 5, "a TLS slot to be free again") is not None, "no slot came back")


if __name__ == "__main__":
    main(test)
