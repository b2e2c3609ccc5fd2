#!/usr/bin/env python3
"""102-tls-bad-files: a TLS listener whose files do not do stops the start
with exit 2 and FILE:LINE of the key at fault, before anything listens,
and --check-config finds the same:

- a certificate path that does not exist (the line of cert:);
- a key path that does not exist (the line of key:);
- a key that is not the certificate's (the line of key:, "does not match");
- a certificate file that is not PEM (the line of cert:);
- a client_ca that holds no certificate (the line of client_ca:).
And the config reader's own refusals (--check-config, exit 2, FILE:LINE): a
tls listener without a key, an unknown transport, cert on a tcp listener,
a listener without a port, the same address twice."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import BASE_CONFIG, check, main, merge, to_yaml  # noqa: E402
from tlsfix import Pki, line_of, tls_listener  # noqa: E402


def config(h, name, listen):
    cfg = merge(BASE_CONFIG, {})
    cfg["listen"] = listen
    return h.write(name + ".yaml", to_yaml(cfg))


def refused_at_start(h, name, listen, needle, why):
    """Refused at start, and by --check-config too: the transport's init
    loads the files, and the check runs every init."""
    path = config(h, name, listen)
    where = "%s:%d:" % (path, line_of(path, needle))
    for extra in ([], ["--check-config"]):
        rc, out, err = h.run([h.server_path, "--config", path] + extra)
        check(rc == 2, "%s %s: exit %d, not 2: %r" % (name, extra, rc, err))
        check(where in err and why in err, "%s %s: stderr does not say %r ... %r: %r"
              % (name, extra, where, why, err))
        check("listening on" not in err, "%s: the server listened: %r" % (name, err))


def refused_by_config(h, name, listen, needle, why, nth=0):
    path = config(h, name, listen)
    rc, out, err = h.run([h.server_path, "--config", path, "--check-config"])
    with open(path) as f:
        lines = [i for i, line in enumerate(f, 1) if needle in line]
    where = "%s:%d:" % (path, lines[nth])
    check(rc == 2, "%s: exit %d, not 2: %r" % (name, rc, err))
    check(where in err and why in err, "%s: stderr does not say %r ... %r: %r"
          % (name, where, why, err))


def test(h):
    pki = Pki(h)
    cert, key = pki.issue("server")
    _, other_key = pki.issue("other")
    missing = os.path.join(h.tmp, "nowhere.pem")
    junk = h.write("junk.pem", "not a certificate\n")

    refused_at_start(h, "no-cert", [tls_listener(missing, key)], "nowhere.pem",
                     "cannot open the certificate chain '%s': No such file" % missing)
    refused_at_start(h, "no-key", [tls_listener(cert, missing)], "nowhere.pem",
                     "cannot open the private key '%s': No such file" % missing)
    refused_at_start(h, "mismatch", [tls_listener(cert, other_key)], "other.key",
                     "does not match the certificate")
    refused_at_start(h, "junk-cert", [tls_listener(junk, key)], "junk.pem",
                     "cannot load the certificate chain")
    refused_at_start(h, "junk-ca", [tls_listener(cert, key, client_ca=junk)], "junk.pem",
                     "client_ca: cannot load")

    tcp = {"transport": "tcp", "host": "127.0.0.1", "port": 0}
    refused_by_config(h, "tls-no-key", [tcp, {"transport": "tls", "host": "127.0.0.1",
                                              "port": 0, "cert": cert}],
                      '- transport: "tls"', "a tls listener needs cert and key")
    refused_by_config(h, "ws", [{"transport": "websocket", "host": "127.0.0.1", "port": 0}],
                      "websocket", "must be 'tcp' or 'tls'")
    refused_by_config(h, "tcp-cert", [dict(tcp, cert=cert)], '- transport: "tcp"',
                      "cert, key and client_ca are for a tls listener")
    refused_by_config(h, "no-port", [{"transport": "tcp", "host": "127.0.0.1"}],
                      '- transport: "tcp"', "a listener needs a port")
    refused_by_config(h, "twice", [dict(tcp, port=7999), dict(tcp, port=7999)],
                      '- transport: "tcp"', "is already listened on", nth=1)
    rc, out, err = h.run([h.server_path, "--config", config(h, "good", [tcp, tls_listener(
        cert, key)]), "--check-config"])
    check(rc == 0, "a good listen list: exit %d: %r" % (rc, err))


if __name__ == "__main__":
    main(test)
