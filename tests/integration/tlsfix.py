"""What the TLS tests share: a throwaway CA and certificates made with the
openssl command line in the test's temporary directory, a server with a
plain TCP and a TLS listener, and a raw client that speaks frames over TLS
(Python's ssl module)."""
import os
import re
import socket
import ssl
import subprocess

from imcore_harness import (DEFAULT_TIMEOUT, SKIP, RawClient, TestFailure, check)


def openssl(h, *args):
    try:
        p = subprocess.run(["openssl"] + list(args), cwd=h.tmp, capture_output=True,
                           timeout=DEFAULT_TIMEOUT)
    except FileNotFoundError:
        print("SKIP: no openssl command")
        raise SystemExit(SKIP)
    if p.returncode != 0:
        raise TestFailure("openssl %s: %s" % (" ".join(args), p.stderr.decode()))


class Pki:
    """A CA (name.ca.pem) and certificates it signs, in h.tmp."""

    def __init__(self, h, name="ca"):
        self.h = h
        self.name = name
        self.ca = self.path(name + ".pem")
        self.ca_key = self.path(name + ".key")
        openssl(h, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", self.ca_key, "-out", self.ca, "-days", "2",
                "-subj", "/CN=imcore test CA %s" % name)
        # For `openssl ca`, which alone sets any validity dates (expired).
        self.db = self.path(name + ".index")
        open(self.db, "w").close()
        with open(self.path(name + ".serial"), "w") as f:
            f.write("1000\n")
        self.cnf = h.write(name + ".cnf", "\n".join([
            "[ca]", "default_ca = d", "[d]",
            "database = %s" % self.db, "new_certs_dir = %s" % h.tmp,
            "serial = %s" % self.path(name + ".serial"), "default_md = sha256",
            "policy = p", "copy_extensions = copy", "unique_subject = no",
            "[p]", "commonName = supplied", ""]))

    def path(self, f):
        return os.path.join(self.h.tmp, f)

    def issue(self, name, sans=("DNS:localhost", "IP:127.0.0.1"), start=None, end=None,
              days=2):
        """name.pem (the chain: the certificate) and name.key, signed by this CA."""
        key, csr, pem = self.path(name + ".key"), self.path(name + ".csr"), self.path(name + ".pem")
        openssl(self.h, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", "/CN=%s" % name,
                "-addext", "subjectAltName=" + ",".join(sans))
        args = ["ca", "-batch", "-notext", "-config", self.cnf, "-cert", self.ca,
                "-keyfile", self.ca_key, "-in", csr, "-out", pem]
        args += ["-startdate", start, "-enddate", end] if start else ["-days", str(days)]
        openssl(self.h, *args)
        return pem, key


def der_of(h, pem):
    out = os.path.join(h.tmp, os.path.basename(pem) + ".der")
    openssl(h, "x509", "-in", pem, "-outform", "DER", "-out", out)
    with open(out, "rb") as f:
        return f.read()


def tls_listener(cert, key, **more):
    entry = {"transport": "tls", "host": "127.0.0.1", "port": 0, "cert": cert, "key": key}
    entry.update(more)
    return entry


def two_listeners(cert, key, **more):
    return [{"transport": "tcp", "host": "127.0.0.1", "port": 0}, tls_listener(cert, key, **more)]


def tls_port(srv, timeout=DEFAULT_TIMEOUT):
    """The TLS listener's port, from the server's log line."""
    m = srv.err.expect(r"listening on tls 127\.0\.0\.1:(\d+)$", timeout)
    return int(m.group(1))


def client_context(cafile=None, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if verify:
        if cafile:
            ctx.load_verify_locations(cafile)
        else:
            ctx.load_default_certs()
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class TlsClient(RawClient):
    """RawClient over TLS: the same frames, another carrier."""

    def __init__(self, h, port, name, ctx, server_hostname="localhost", session=None):
        raw = socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock = ctx.wrap_socket(raw, server_hostname=server_hostname, session=session)
        except Exception:
            raw.close()
            raise
        # RawClient's fields, on the wrapped socket.
        self.sock = sock
        self.name = name
        self.buf = bytearray()
        self.eof = False
        self.received = []
        self.next_rid = 1
        h.sockets.append(self)


def eof_within(sock, timeout):
    """True if the peer closes sock (FIN or RST) within timeout; what came
    before the end is read and dropped."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def expect_start_failure(h, name, config_path):
    """Runs the server on config_path to its end: (exit status, stderr)."""
    rc, _, err = h.run([h.server_path, "--config", config_path])
    return rc, err


def line_of(path, needle):
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if needle in line:
                return i
    raise TestFailure("%s: no line with %r" % (path, needle))


__all__ = ["Pki", "der_of", "tls_listener", "two_listeners", "tls_port", "client_context",
           "TlsClient", "eof_within", "expect_start_failure", "line_of", "check", "re"]
