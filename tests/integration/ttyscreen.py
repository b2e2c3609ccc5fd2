"""ttyscreen.py: imcore-cli on a pseudo-terminal, as a person uses it.

TtyCli starts the client with a pty as its controlling terminal (standard
input, output and error), types into it, and keeps what the client draws in
Screen, a small terminal emulator (the subset of xterm that readline uses:
cursor moves, erasing, insert and delete, auto-margins with xterm's deferred
wrap). Tests assert on the screen, waiting for a condition with a deadline.
Standard library only; used by tests 90-95."""
import codecs
import fcntl
import os
import re
import signal
import struct
import subprocess
import termios
import threading
import time

from imcore_harness import DEFAULT_TIMEOUT, TestFailure, _die_with_parent

ROWS, COLS = 24, 80


class Screen:
    """Rows of characters and a cursor; lines scrolled off the top are kept
    in scrollback, so a test can still find them."""

    def __init__(self, rows=ROWS, cols=COLS):
        self.rows, self.cols = rows, cols
        self.grid = [[" "] * cols for _ in range(rows)]
        self.scrollback = []
        self.r = self.c = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.esc = None  # the escape sequence being read, or None

    def _line_feed(self):
        if self.r == self.rows - 1:
            self.scrollback.append("".join(self.grid.pop(0)).rstrip())
            self.grid.append([" "] * self.cols)
        else:
            self.r += 1

    def _put(self, ch):
        if self.c >= self.cols:  # xterm's deferred wrap
            self.c = 0
            self._line_feed()
        self.grid[self.r][self.c] = ch
        self.c += 1

    def _csi(self, seq):
        final, body = seq[-1], seq[:-1]
        private = body.startswith("?")
        nums = [int(x) if x.isdigit() else 0 for x in body.lstrip("?>").split(";")] if body else []
        n = nums[0] if nums and nums[0] > 0 else 1
        row = self.grid[self.r]
        c = min(self.c, self.cols - 1)
        if private or final in "mhlrtsn":
            return
        if final == "A":
            self.r = max(0, self.r - n)
        elif final == "B":
            self.r = min(self.rows - 1, self.r + n)
        elif final == "C":
            self.c = min(self.cols - 1, c + n)
        elif final == "D":
            self.c = max(0, c - n)
        elif final == "G":
            self.c = min(self.cols - 1, n - 1)
        elif final == "d":
            self.r = min(self.rows - 1, n - 1)
        elif final in "Hf":
            self.r = min(self.rows - 1, (nums[0] if nums and nums[0] else 1) - 1)
            self.c = min(self.cols - 1, (nums[1] if len(nums) > 1 and nums[1] else 1) - 1)
        elif final == "K":
            mode = nums[0] if nums else 0
            lo, hi = {0: (c, self.cols), 1: (0, c + 1), 2: (0, self.cols)}.get(mode, (c, self.cols))
            for i in range(lo, hi):
                row[i] = " "
        elif final == "J":
            mode = nums[0] if nums else 0
            if mode == 0:
                for i in range(c, self.cols):
                    row[i] = " "
                for r in range(self.r + 1, self.rows):
                    self.grid[r] = [" "] * self.cols
            elif mode == 2:
                self.grid = [[" "] * self.cols for _ in range(self.rows)]
        elif final == "P":
            del row[c:c + n]
            row.extend([" "] * (self.cols - len(row)))
        elif final == "@":
            row[c:c] = [" "] * n
            del row[self.cols:]
        elif final == "X":
            for i in range(c, min(self.cols, c + n)):
                row[i] = " "

    def feed(self, data):
        for ch in self.decoder.decode(data):
            if self.esc is not None:
                self.esc += ch
                e = self.esc
                if e.startswith("["):
                    if len(e) > 1 and "\x40" <= ch <= "\x7e":
                        self.esc = None
                        self._csi(e[1:])
                elif e.startswith("]"):
                    if ch == "\x07" or e.endswith("\x1b\\"):
                        self.esc = None
                elif e in ("(", ")", "#"):
                    continue  # one more byte follows
                else:
                    self.esc = None
                    if e == "M":
                        self.r = max(0, self.r - 1)
                continue
            if ch == "\x1b":
                self.esc = ""
            elif ch == "\r":
                self.c = 0
            elif ch == "\n":
                self._line_feed()
            elif ch == "\b":
                self.c = max(0, min(self.c, self.cols - 1) - 1)
            elif ch == "\t":
                self.c = min(self.cols - 1, (self.c // 8 + 1) * 8)
            elif ch >= " " and ch != "\x7f":
                self._put(ch)

    def lines(self):
        """Every line, scrollback first, without trailing spaces."""
        return self.scrollback + ["".join(r).rstrip() for r in self.grid]

    def cursor_line(self):
        return "".join(self.grid[self.r]).rstrip()

    def text(self):
        return "\n".join(self.lines()).rstrip("\n")


class TtyCli:
    """imcore-cli on a pty. Registered with the harness like a Process, so
    its cleanup stops it by PID."""

    def __init__(self, h, name, port, user, args=(), env=None):
        self.name = name
        port = port.port if hasattr(port, "port") else port
        self.argv = [h.cli_path, "--port", str(port), "--user", user] + list(args)
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        full_env = dict(os.environ, TERM="xterm", INPUTRC="/dev/null", LANG="C.UTF-8")
        full_env.pop("IMCORE_PASSWORD", None)
        full_env.update(env or {})

        def child_setup():
            # A session of its own with the pty as controlling terminal, so
            # /dev/tty (the password prompt) and job control are the pty's.
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            _die_with_parent()

        try:
            self.proc = subprocess.Popen(self.argv, stdin=slave, stdout=slave, stderr=slave,
                                         cwd=h.tmp, env=full_env, start_new_session=True,
                                         preexec_fn=child_setup)
        finally:
            os.close(slave)
        self.pid = self.proc.pid
        self.master = master
        self.screen = Screen()
        self.raw = bytearray()
        self.closed = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        h.processes.append(self)

    def _read(self):
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                data = b""
            with self.cond:
                if not data:
                    self.closed = True
                    self.cond.notify_all()
                    return
                self.raw += data
                self.screen.feed(data)
                self.cond.notify_all()

    # ---- typing --------------------------------------------------------
    def type(self, text):
        """Writes text (str or bytes) as keystrokes. The reader thread keeps
        draining the echo meanwhile, so a long paste cannot deadlock."""
        data = text.encode() if isinstance(text, str) else text
        while data:
            n = os.write(self.master, data[:1024])
            data = data[n:]

    # ---- waiting on the screen -------------------------------------------
    def wait_for(self, cond, what, timeout=DEFAULT_TIMEOUT):
        """Waits until cond(screen) is true; returns its value."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = cond(self.screen)
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    why = "the terminal closed" if self.closed else "timed out after %.1f s" % timeout
                    raise TestFailure("%s: %s waiting for %s; screen:\n%s"
                                      % (self.name, why, what, self._tail()))
                self.cond.wait(left)

    def expect(self, pattern, timeout=DEFAULT_TIMEOUT):
        """The first screen line (scrollback included) matching pattern."""
        rx = re.compile(pattern)
        return self.wait_for(lambda s: next((l for l in s.lines() if rx.search(l)), None),
                             "/%s/" % pattern, timeout)

    def expect_cursor_line(self, text, timeout=DEFAULT_TIMEOUT):
        """Waits until the line under the cursor is text (trailing spaces
        aside: the screen does not keep them)."""
        want = text.rstrip()
        return self.wait_for(lambda s: s.cursor_line() == want, "the cursor line %r" % text,
                             timeout)

    def lines(self):
        with self.cond:
            return self.screen.lines()

    def cursor_line(self):
        with self.cond:
            return self.screen.cursor_line()

    def _tail(self):
        return "\n".join("    |" + l for l in self.screen.lines()[-24:])

    # ---- the process -------------------------------------------------------
    def running(self):
        return self.proc.poll() is None

    def wait_exit(self, timeout=DEFAULT_TIMEOUT):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s (pid %d) still running after %.1f s; screen:\n%s"
                              % (self.name, self.pid, timeout, self._tail()))
        with self.cond:
            self.cond.wait_for(lambda: self.closed, 2.0)
        return rc

    def stop(self, timeout=5.0):
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout)
            except ProcessLookupError:
                pass
        with self.cond:
            self.cond.wait_for(lambda: self.closed, timeout)
        try:
            os.close(self.master)
        except OSError:
            pass

    def describe(self):
        rc = self.proc.poll()
        state = "running" if rc is None else "exit %d" % rc
        with self.cond:
            return ("==== %s (pid %d, %s, on a pty): %s\n-- screen:\n%s"
                    % (self.name, self.pid, state, " ".join(self.argv), self._tail()))
