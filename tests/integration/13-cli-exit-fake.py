#!/usr/bin/env python3
"""13-cli-exit-fake: how the CLI ends, against a fake server. At the end of
its input it waits for every answer, then sends Logout and exits 0 on the
Ok; :q and SIGTERM log out; SESSION_REPLACED (request id 0) and a refused
login exit 1 without reconnecting; with no server at all, the end of input
gives up after 5 s, reports what was not sent and exits 0. On a terminal
it greets, answers :help itself and logs out on :q."""
import os
import pty
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import (Process, check, delivery_body, encode_fields,  # noqa: E402
                            error_body, free_port, login_ack_body, main)


def login(fake, user, session=1):
    conn = fake.accept()
    f = conn.expect_frame("LOGIN")
    check(f.str(1) == user, "Login for %r" % f.str(1))
    conn.send_frame("LOGIN_ACK", f.request_id, login_ack_body(user, session, 5))
    return conn


def test(h):
    fake = h.fake_server()

    # End of input: answers first, then Logout, then exit 0 on the Ok.
    bob = h.cli(fake.port, "bob", login=False)
    bob.send(":create r1")
    bob.send("@alice x")
    bob.close_stdin()
    conn = login(fake, "bob")
    create = conn.expect_frame("GROUP_CREATE", skip=("PING",))
    pm = conn.expect_frame("PRIVATE_MESSAGE", skip=("PING",))
    conn.send_frame("OK", create.request_id)
    bob.expect(r"^\* created r1$")
    conn.send_frame("ERROR", pm.request_id, error_body("USER_OFFLINE", "alice is not online",
                                                       pm.str(3)))
    bob.expect(r"^! USER_OFFLINE: alice is not online$")
    out = conn.expect_frame("LOGOUT", skip=("PING",))
    check(bob.running(), "bob exited before the Ok to its Logout")
    conn.send_frame("OK", out.request_id)
    check(bob.wait_exit() == 0, "bob did not exit 0")

    # :q
    carol = h.cli(fake.port, "carol", login=False)
    conn = login(fake, "carol")
    carol.expect_login()
    carol.send(":q")
    out = conn.expect_frame("LOGOUT", skip=("PING",))
    conn.send_frame("OK", out.request_id)
    check(carol.wait_exit() == 0, ":q did not exit 0")

    # SIGTERM; the server closes instead of answering: still a clean exit.
    dave = h.cli(fake.port, "dave", login=False)
    conn = login(fake, "dave")
    dave.expect_login()
    dave.signal(signal.SIGTERM)
    conn.expect_frame("LOGOUT", skip=("PING",))
    conn.close()
    check(dave.wait_exit() == 0, "SIGTERM did not exit 0")

    # Replaced while online: exit 1, no reconnect.
    erin = h.cli(fake.port, "erin", login=False)
    conn = login(fake, "erin")
    erin.expect_login()
    conn.send_frame("ERROR", 0, error_body("SESSION_REPLACED", "erin logged in elsewhere"))
    erin.expect(r"^! SESSION_REPLACED: erin logged in elsewhere$")
    check(erin.wait_exit() == 1, "SESSION_REPLACED did not exit 1")
    check(not erin.err.matching(r"reconnecting"), "erin tried to reconnect")

    # A login refused for a reason retrying cannot change.
    fay = h.cli(fake.port, "fay", login=False)
    conn = fake.accept()
    f = conn.expect_frame("LOGIN")
    conn.send_frame("ERROR", f.request_id, error_body("INVALID_ARGUMENT", "no"))
    fay.expect(r"^! INVALID_ARGUMENT: no$")
    check(fay.wait_exit() == 1, "a refused login did not exit 1")

    # Closing errors the client recovers from: IDLE_TIMEOUT, SERVER_SHUTDOWN.
    gus = h.cli(fake.port, "gus", login=False)
    conn = login(fake, "gus", 1)
    gus.expect_login()
    conn.send_frame("ERROR", 0, error_body("SERVER_SHUTDOWN", "bye"))
    gus.expect(r"^! SERVER_SHUTDOWN: bye$")
    conn = login(fake, "gus", 2)
    gus.expect(r"^\* logged in as gus \(session 2\)$")
    gus.send(":groups")
    f = conn.expect_frame("GROUP_LIST", skip=("PING",))
    groups = encode_fields([(1, encode_fields([(1, "g1"), (2, "ann"), (3, 3), (4, 50), (5, True)])),
                            (1, encode_fields([(1, "g2"), (2, "gus"), (3, 1), (4, 9)])),
                            (2, 5)])
    conn.send_frame("GROUP_LIST_RESULT", f.request_id, groups)
    gus.expect(r"^  g1  owner=ann members=3/50 \[member\]$")
    gus.expect(r"^  g2  owner=gus members=1/9$")
    gus.expect(r"^\* 5 groups \(list cut short\)$")
    gus.send(":olu")
    f = conn.expect_frame("ONLINE_USERS", skip=("PING",))
    users = encode_fields([(1, encode_fields([(1, "gus"), (2, "Gus G")])),
                           (1, encode_fields([(1, "ann")])), (2, 2)])
    conn.send_frame("ONLINE_USERS_RESULT", f.request_id, users)
    gus.expect(r"^  gus \(Gus G\)$")
    gus.expect(r"^  ann \(ann\)$")
    gus.expect(r"^\* 2 online$")

    gus.send(":history @ann 5")
    f = conn.expect_frame("HISTORY", skip=("PING",))
    check(f.str(1) == "ann" and f.str(2) == "" and f.int(4) == 5, "History %r" % f.body)
    msgs = encode_fields([(1, delivery_body("PRIVATE", "gus", "hi ann", to="ann", seq=1)),
                          (1, delivery_body("PRIVATE", "ann", "hi gus", to="gus", seq=2))])
    conn.send_frame("HISTORY_RESULT", f.request_id, msgs)
    gus.expect(r"^  \[\d\d:\d\d:\d\d\] gus \u2192 ann: hi ann$")
    gus.expect(r"^  \[\d\d:\d\d:\d\d\] ann \u2192 you: hi gus$")
    gus.expect(r"^\* 2 messages$")
    gus.send(":history #g1")
    f = conn.expect_frame("HISTORY", skip=("PING",))
    check(f.str(1) == "" and f.str(2) == "g1" and f.int(4) == 0, "History %r" % f.body)
    conn.send_frame("ERROR", f.request_id, error_body("UNSUPPORTED", "no store"))
    gus.expect(r"^! UNSUPPORTED: no store$")
    gus.send(":history ann")
    gus.expect(r"^! usage: :history @user\|#group \[n\]$")

    # Accounts: the password (here from $IMCORE_PASSWORD) and --register go
    # in the first Login; later logins use the session token instead, and
    # the password again (without --register) once the token is refused.
    os.environ["IMCORE_PASSWORD"] = "jay's secret"
    try:
        jay = h.cli(fake.port, "jay", args=["--register"], login=False)
    finally:
        del os.environ["IMCORE_PASSWORD"]
    conn = fake.accept()
    f = conn.expect_frame("LOGIN")
    check(f.str(4) == "jay's secret" and f.int(6) == 1 and f.str(5) == "",
          "first Login: %r" % f.body)
    conn.send_frame("LOGIN_ACK", f.request_id,
                    login_ack_body("jay", 1, 5) + encode_fields([(9, "tok-1")]))
    jay.expect_login()
    conn.close()
    conn = fake.accept()
    f = conn.expect_frame("LOGIN")
    check(f.str(5) == "tok-1" and 4 not in f.body and 6 not in f.body,
          "Login after a reconnect: %r" % f.body)
    conn.send_frame("ERROR", f.request_id, error_body("BAD_CREDENTIALS", "token expired"))
    conn = fake.accept()
    f = conn.expect_frame("LOGIN")
    check(f.str(4) == "jay's secret" and 5 not in f.body and 6 not in f.body,
          "Login after the token was refused: %r" % f.body)
    conn.send_frame("LOGIN_ACK", f.request_id, login_ack_body("jay", 2, 5))
    jay.expect(r"^\* logged in as jay \(session 2\)$")
    check(not jay.out.matching(r"^! BAD_CREDENTIALS"), "a refused token was shown as an error")
    jay.send(":q")
    conn.send_frame("OK", conn.expect_frame("LOGOUT", skip=("PING",)).request_id)
    check(jay.wait_exit() == 0, "jay did not exit 0")

    # On a terminal: a hint first, :help answered locally, :q logs out.
    master, slave = pty.openpty()
    try:
        tty = Process(h, "ivy", [h.cli_path, "--port", str(fake.port), "--user", "ivy"],
                      stdin=slave)
    finally:
        os.close(slave)
    tty.out.expect(r"^\* imcore-cli \S+: type :help")
    conn = login(fake, "ivy")
    tty.out.expect(r"^\* logged in as ivy \(session 1\)$")
    os.write(master, b":help\n")
    tty.out.expect(r"^  :q +log out and exit$")
    os.write(master, b":q\n")
    out = conn.expect_frame("LOGOUT", skip=("PING",))
    conn.send_frame("OK", out.request_id)
    check(tty.wait_exit() == 0, "the terminal client did not exit 0 after :q")
    os.close(master)

    # No server at all: the end of input waits at most 5 s, then gives up.
    start = time.monotonic()
    rc, out, err = h.run([h.cli_path, "--port", str(free_port()), "--user", "hal"],
                         stdin=b"@bob hello?\n", timeout=15)
    took = time.monotonic() - start
    check(rc == 0, "no server: exit %d\n%s\n%s" % (rc, out, err))
    check("! not sent: @bob hello?" in out.splitlines(), "no 'not sent' line in:\n" + out)
    check(4 <= took <= 10, "gave up after %.1f s, not about 5" % took)
    delays = [int(d) for d in re.findall(r"\* reconnecting in (\d+) ms", err)]
    check(len(delays) >= 3, "too few attempts in 5 s: %r" % delays)
    for i, d in enumerate(delays):
        check(1 <= d <= min(5000, 100 << i), "delay %d of %r is over its ceiling" % (i, delays))


if __name__ == "__main__":
    main(test, needs_server=False)
