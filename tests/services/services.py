"""tests/services/services.py: the real servers a test needs beside imcore
(ZooKeeper, Redis), each installed from Debian if missing, started on
127.0.0.1 on a free port with its data in a temporary directory, waited for
with a deadline, and stopped by PID. Python 3 standard library only.

    with ZooKeeper() as zk:          # zk.address == "127.0.0.1:PORT"
        ...
    with Redis() as r:               # r.port; r.restart() keeps the data dir
        ...

Used by the integration tests, and by run_with.py, which runs a C test with
the services it names and their addresses in the environment.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

DEBIAN = {
    "zookeeper": ["zookeeper", "default-jre-headless"],
    "redis": ["redis-server"],
}


class ServiceError(RuntimeError):
    pass


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_installed(kind, probe):
    """Installs the Debian packages of kind when probe (a path) is missing;
    only root can, and then apt-get runs once."""
    if os.path.exists(probe):
        return
    if os.geteuid() != 0:
        raise ServiceError(f"{probe} is missing and installing {kind} needs root: "
                           f"apt-get install {' '.join(DEBIAN[kind])}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"]
                   + DEBIAN[kind], check=True, env=env, stdout=subprocess.DEVNULL)
    if not os.path.exists(probe):
        raise ServiceError(f"{probe} is still missing after installing {kind}")


def _wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise ServiceError(f"{what}: not ready after {timeout:.0f} s")


def _ask(port, line, timeout=1.0):
    """Sends line to 127.0.0.1:port and returns what comes back until the
    peer closes or timeout; b"" when nothing listens."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(line)
            out = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return out
                out += chunk
                if line.startswith(b"PING") and out.endswith(b"\r\n"):
                    return out
    except OSError:
        return b""


class _Service:
    kind = ""

    def __init__(self, keep_dir=None):
        self.dir = keep_dir or tempfile.mkdtemp(prefix=f"imcore-{self.kind}-")
        self._own_dir = keep_dir is None
        self.port = free_port()
        self.proc = None
        self.log_path = os.path.join(self.dir, f"{self.kind}.log")

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _spawn(self, argv):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.dir,
                                     start_new_session=True)
        log.close()

    def _alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Stops the process by its PID (SIGKILL after timeout)."""
        if not self._alive():
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        """Stops and starts again on the same port with the same data."""
        self.stop()
        self.start()

    def log_tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


class ZooKeeper(_Service):
    """A standalone ZooKeeper; ticks of 200 ms so that session timeouts down
    to 400 ms are allowed (tests see a dead node leave quickly)."""
    kind = "zookeeper"
    JAR = "/usr/share/java/zookeeper.jar"

    def start(self):
        ensure_installed("zookeeper", self.JAR)
        data = os.path.join(self.dir, "data")
        os.makedirs(data, exist_ok=True)
        cfg = os.path.join(self.dir, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write(f"tickTime=200\ndataDir={data}\nclientPort={self.port}\n"
                    "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
                    "minSessionTimeout=400\nmaxSessionTimeout=30000\n"
                    "4lw.commands.whitelist=ruok,srvr\n")
        java = shutil.which("java") or "/usr/bin/java"
        self._spawn([java, "-Xmx256m", "-XX:+UseSerialGC", "-Dzookeeper.jmx.log4j.disable=true",
                     "-cp", f"{self.JAR}:/usr/share/java/*",
                     "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg])
        try:
            _wait(lambda: not self._alive() or _ask(self.port, b"ruok") == b"imok", 60,
                  f"ZooKeeper on port {self.port}")
            if not self._alive():
                raise ServiceError(f"ZooKeeper exited: {self.log_tail()}")
        except Exception:
            self.stop()
            raise


class Redis(_Service):
    kind = "redis"
    BIN = "/usr/bin/redis-server"

    def start(self):
        ensure_installed("redis", self.BIN)
        self._spawn([self.BIN, "--port", str(self.port), "--bind", "127.0.0.1",
                     "--dir", self.dir, "--save", "", "--appendonly", "no",
                     "--protected-mode", "no", "--daemonize", "no"])
        try:
            _wait(lambda: not self._alive() or _ask(self.port, b"PING\r\n") == b"+PONG\r\n",
                  30, f"Redis on port {self.port}")
            if not self._alive():
                raise ServiceError(f"Redis exited: {self.log_tail()}")
        except Exception:
            self.stop()
            raise


SERVICES = {"zookeeper": ZooKeeper, "redis": Redis}
