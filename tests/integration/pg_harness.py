"""tests/integration/pg_harness.py: a throw-away PostgreSQL server for a test.

    with PgServer() as pg:          # initdb into a temp dir, start, wait
        pg.conninfo                 # "host=127.0.0.1 port=N dbname=imcore user=imcore ..."
        pg.stop(); pg.start()       # an outage, under the test's control
        pg.psql("SELECT 1")         # as the superuser, on the test's database

initdb runs into a private temporary directory and postgres listens on
127.0.0.1 at a free port (and on a socket in that directory), run as the
unprivileged `postgres` user when the test runs as root (postgres refuses
root). Readiness is awaited with a deadline by pg_isready; the server is
stopped by its PID at the end, whether the test passed or not. When the
binaries are missing and the test runs as root, the Debian packages are
installed as .ci/deps does; otherwise PgMissing is raised (a test turns it
into a skip). Python 3 standard library only.

Run as a program, `pg_harness.py --run PROGRAM ARGS...` starts a server,
runs PROGRAM with IMCORE_PG_CONNINFO set to its connection string (password
included), stops the server and exits with PROGRAM's status (77, skipped,
when there is no PostgreSQL): the wrapper of the C tests that want a
database. Without --run it prints the export line and waits for a signal.
"""

import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

PG_PACKAGES = ["postgresql", "libpq-dev"]

# Looked up before any fork: the child only calls it.
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


class PgMissing(Exception):
    """No PostgreSQL server binaries here, and none could be installed."""


def _find_bindir():
    env = os.environ.get("IMCORE_PG_BINDIR")
    if env and os.path.exists(os.path.join(env, "initdb")):
        return env
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)
    for d in reversed(dirs):
        if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "postgres")):
            return d
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    return None


def bindir():
    """The directory of initdb and postgres, installing them as root if missing."""
    d = _find_bindir()
    if d:
        return d
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise PgMissing("PostgreSQL server binaries not found (install %s)" % " ".join(PG_PACKAGES))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + PG_PACKAGES,
                   env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    d = _find_bindir()
    if not d:
        raise PgMissing("PostgreSQL could not be installed")
    return d


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class PgServer:
    """One PostgreSQL cluster in a temporary directory, with a database and a
    role of its own (password `password`)."""

    def __init__(self, dbname="imcore", user="imcore", password="imcore-secret", base=None,
                 fsync=False):
        """fsync: PostgreSQL syncs its WAL at every commit, as in production
        (for measurements); tests leave it off."""
        self.fsync = fsync
        self.bin = bindir()
        self.dbname = dbname
        self.user = user
        self.password = password
        self.tmp = tempfile.mkdtemp(prefix="imcore-pg-", dir=base)
        self.data = os.path.join(self.tmp, "data")
        self.log = os.path.join(self.tmp, "postgres.log")
        self.port = free_port()
        self.proc = None
        self.as_root = os.geteuid() == 0
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
            os.chmod(self.tmp, 0o700)
        self._initdb()
        self.start()
        self._create_db()

    # ---- processes ----

    def _cmd(self, argv):
        return (["runuser", "-u", "postgres", "--"] + argv) if self.as_root else argv

    def _run(self, argv, **kw):
        # In the server's own directory: the postgres user may not enter
        # the caller's (a clone in a 0700 temporary directory, say), and
        # psql would say so in the output a test reads.
        kw.setdefault("cwd", self.tmp)
        return subprocess.run(self._cmd(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, **kw)

    def _initdb(self):
        pwfile = os.path.join(self.tmp, "su-pw")
        with open(pwfile, "w") as f:
            f.write("postgres-su\n")
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        r = self._run([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "postgres",
                       "--auth-local=trust", "--auth-host=scram-sha-256",
                       "--pwfile=" + pwfile, "-E", "UTF8", "--no-sync"], timeout=120)
        os.unlink(pwfile)
        if r.returncode != 0:
            raise RuntimeError("initdb failed:\n" + r.stdout)
        # Tests run on throw-away data: no fsync unless asked (the server
        # still commits with synchronous_commit on).
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            if not self.fsync:
                f.write("fsync = off\nfull_page_writes = off\n")
            f.write("max_connections = 50\nshared_buffers = 32MB\nlog_min_messages = warning\n")

    def _become_postgres(self):
        """In the child before exec: the postgres user when we are root (the
        postmaster's PID is then the child's own, for stop), and a SIGQUIT
        (immediate shutdown) if the test dies without stopping it."""
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
        if _prctl is not None:
            _prctl(1, signal.SIGQUIT)  # PR_SET_PDEATHSIG, after the uid change

    def start(self, deadline=30.0):
        """Starts postgres and waits until it accepts connections."""
        logf = open(self.log, "a")
        argv = [os.path.join(self.bin, "postgres"), "-D", self.data, "-k", self.tmp,
                "-h", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                     preexec_fn=self._become_postgres, cwd=self.tmp)
        logf.close()
        end = time.monotonic() + deadline
        while True:
            r = subprocess.run([os.path.join(self.bin, "pg_isready"), "-h", "127.0.0.1",
                                "-p", str(self.port), "-t", "1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if r.returncode == 0:
                return
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited at start:\n" + self.log_text())
            if time.monotonic() >= end:
                raise RuntimeError("postgres not ready after %.0f s:\n%s" % (deadline, self.log_text()))
            time.sleep(0.05)

    def stop(self, mode=signal.SIGINT, deadline=30.0):
        """Stops postgres by its PID: SIGINT is a fast shutdown (clients are
        disconnected), SIGQUIT an immediate one (as a crash)."""
        if not self.proc or self.proc.poll() is not None:
            self.proc = None
            return
        try:
            self.proc.send_signal(mode)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGQUIT)
            self.proc.wait(timeout=10)
        self.proc = None

    def pids(self):
        """The postmaster and its children (backends, background workers)."""
        if not self.proc:
            return []
        found = [self.proc.pid]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as f:
                    stat = f.read()
            except OSError:
                continue
            # The parent PID is the second field after the command's ')'.
            fields = stat[stat.rfind(")") + 2:].split()
            if len(fields) > 1 and int(fields[1]) == self.proc.pid:
                found.append(int(entry))
        return found

    def freeze(self):
        """SIGSTOP to postgres and its children, by PID: a server that
        holds its connections open and answers nothing."""
        self.frozen = self.pids()
        for pid in self.frozen:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self):
        for pid in getattr(self, "frozen", []):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.frozen = []

    def _create_db(self):
        self.psql_admin("CREATE ROLE %s LOGIN PASSWORD '%s'" % (self.user, self.password),
                        db="postgres")
        self.psql_admin("CREATE DATABASE %s OWNER %s" % (self.dbname, self.user), db="postgres")

    # ---- use ----

    @property
    def conninfo(self):
        """Without the password: give it through PGPASSWORD or a password file.
        gssencmode=disable: the server has no Kerberos, and libpq's attempt
        leaves libkrb5's thread data behind each storage thread (a leak of
        that library's, which LeakSanitizer would report)."""
        return "host=127.0.0.1 port=%d dbname=%s user=%s gssencmode=disable" % (
            self.port, self.dbname, self.user)

    def config(self, h, password_file=True, **storage):
        """A server config on this database for the harness h, the password
        in a file of the test's directory (or, without password_file, left
        to PGPASSWORD), with no send-rate limit."""
        pg = {"conninfo": self.conninfo, "connect_timeout_s": 3}
        if password_file:
            path = os.path.join(h.tmp, "pg-password")
            with open(path, "w") as f:
                f.write(self.password + "\n")
            os.chmod(path, 0o600)
            pg["password_file"] = path
        cfg = {"engine": "postgres", "postgres": pg}
        cfg.update(storage)
        return {"storage": cfg, "limits": {"messages_per_second": 0}}

    def psql_admin(self, sql, db=None):
        """Runs sql as the superuser over the local socket; returns the
        output rows (unaligned, tuples only)."""
        r = self._run([os.path.join(self.bin, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                       "-h", self.tmp, "-p", str(self.port), "-U", "postgres",
                       "-d", db or self.dbname, "-c", sql], timeout=60)
        if r.returncode != 0:
            raise RuntimeError("psql failed: %s\n%s" % (sql, r.stdout))
        return [line for line in r.stdout.splitlines() if line]

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def close(self):
        self.thaw()
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def main(argv):
    try:
        pg = PgServer()
    except PgMissing as e:
        print("SKIP: %s" % e)
        return 77
    try:
        conninfo = "%s password=%s" % (pg.conninfo, pg.password)
        if argv[:1] == ["--run"] and len(argv) > 1:
            env = dict(os.environ, IMCORE_PG_CONNINFO=conninfo)
            return subprocess.run(argv[1:], env=env).returncode
        print("export IMCORE_PG_CONNINFO='%s'" % conninfo, flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    finally:
        pg.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
