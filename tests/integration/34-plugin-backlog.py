#!/usr/bin/env python3
"""34-plugin-backlog: back-pressure between the server and a busy plugin,
with tests/plugins/echo_bot.so (":gate PATH" blocks the plugin loop until
the test creates PATH) and limits.plugin_backlog 3:

- durable store: messages for a service account whose plugin is busy wait
  in the store once 3 wait in memory (their SendAck says delivered 0);
  when the plugin is free they all come, in order, once each, and the
  account is live again;
- more than a backlog missed while the server was down comes in several
  reads at the next start, in order, none lost, none twice;
- memory store (nowhere else to keep them): private messages past the
  backlog are refused with BUSY before they are stored; every accepted one
  is handled; group messages past it skip the account, counted in the log;
- presence events wait at most one per user: a user who logs in and out 50
  times while the plugin is busy reaches it as a few events, ending with
  the logout, not as 100."""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, main  # noqa: E402
from durable import group_body, next_delivery, private_body  # noqa: E402
from echo_chat import Chat, Gate, echo_config  # noqa: E402

BACKLOG = 3


def config(h, **over):
    return echo_config(h, limits={"messages_per_second": 0, "plugin_backlog": BACKLOG}, **over)


def expect_echoes(alice, texts):
    """echo's answers to texts, in this order, each once."""
    for t in texts:
        got = alice.hear()
        check(got.startswith("echo #") and got.split(": ", 1)[-1] == t,
              "echo said %r, expected the answer to %r" % (got, t))


def test(h):
    # A busy plugin: the backlog fills, the rest waits in the store.
    srv = h.server(**config(h))
    alice = Chat(h, srv, "alice")
    g1 = Gate(h, "g1")
    g1.block(alice)
    first = ["m%d" % i for i in range(1, 13)]
    # Each is acked (stored); "delivered" says whether it reached the plugin's
    # queue or waits in the store: the first few, then none while it is busy.
    delivered = [alice.say(t).int(4) for t in first]
    check(delivered[0] == 1 and 0 in delivered
          and delivered == sorted(delivered, reverse=True),
          "delivered flags %r: not a few 1s, then 0s" % delivered)
    srv.err.expect(r"WARN .*plugin echo_bot: echo is behind, %d messages wait" % BACKLOG)
    g1.open()
    g1.passed(alice)
    expect_echoes(alice, first)
    srv.err.expect(r"INFO .*plugin echo_bot: echo has caught up")
    alice.say("live again")
    expect_echoes(alice, ["live again"])

    # Killed with more than a backlog unhandled: it all comes at the next
    # start, over several reads.
    g2 = Gate(h, "g2")
    g2.block(alice)
    second = ["n%d" % i for i in range(1, 9)]
    for t in second:
        alice.say(t)
    srv.signal(signal.SIGKILL)
    srv.wait_exit()
    g2.open()
    srv = h.server("server-2", **config(h))
    alice = Chat(h, srv, "alice")
    g2.passed(alice, timeout=20.0)
    expect_echoes(alice, second)
    alice.say("after the restart")
    expect_echoes(alice, ["after the restart"])  # and nothing came twice before it
    check(srv.terminate() == 0, "the server did not stop cleanly")

    # The memory store: past the backlog, the sender hears BUSY.
    srv = h.server("server-memory", **config(h, storage={"engine": "memory"}))
    alice = Chat(h, srv, "alice")
    g3 = Gate(h, "g3")
    g3.block(alice)
    accepted, busy = [], 0
    for i in range(1, 11):
        text = "p%d" % i
        rid = alice.raw.request("PRIVATE_MESSAGE", private_body("echo", text,
                                                                Chat.next_cmid(alice.raw)))
        f = alice.raw.recv_frame()
        check(f is not None and f.request_id == rid and f.type in ("SEND_ACK", "ERROR"),
              "no answer to %s: %r" % (text, f))
        if f.type == "SEND_ACK":
            check(busy == 0, "%s was taken after a refusal, with the plugin still busy" % text)
            accepted.append(text)
        else:
            check(f.error_code == "BUSY" and "echo is busy" in f.str(2),
                  "%s refused with %r, not BUSY" % (text, f))
            busy += 1
    check(accepted and busy, "accepted %r, %d refused: the backlog did not push back"
          % (accepted, busy))
    g3.open()
    g3.passed(alice)
    expect_echoes(alice, accepted)
    alice.say("free again")
    expect_echoes(alice, ["free again"])

    # Group messages cannot be refused for one member: past the backlog they
    # skip the account (SendAck delivered 0), and the log says so.
    rid = alice.raw.request("GROUP_CREATE", encode_fields([(1, "room")]))
    check(alice.raw.expect_frame("OK").request_id == rid, "no Ok for the group")
    alice.say(":join room")
    alice.expect("joining room")
    g4 = Gate(h, "g4")
    g4.block(alice)
    reached = []
    for i in range(1, 7):
        rid = alice.raw.request("GROUP_MESSAGE", group_body("room", "r%d" % i,
                                                            Chat.next_cmid(alice.raw)))
        f = alice.raw.expect_frame("SEND_ACK")
        check(f.request_id == rid, "SendAck %r does not answer %d" % (f, rid))
        reached.append(f.int(4))
    check(reached[0] == 1 and reached[-1] == 0, "delivered to the bot: %r" % reached)
    srv.err.expect(r"WARN .*plugin echo_bot: echo is behind: group messages skip it")
    g4.open()
    g4.passed(alice)
    for _ in range(sum(reached)):
        d = next_delivery(alice.raw)
        check(d.group == "room" and d.body == "echo heard alice", "the bot's answer: %r" % d)
    alice.say("after the group")
    expect_echoes(alice, ["after the group"])  # nothing more from the room before it

    g5 = Gate(h, "g5")
    g5.block(alice)
    for i in range(50):
        c = h.raw(srv, "carol-%d" % i)
        c.login("carol")
        c.close()
    g5.open()
    g5.passed(alice)
    # The last logout may reach the bot after the gate: ask until it has.
    deadline = time.monotonic() + 10
    while True:
        alice.say(":seen carol")
        got = alice.hear()
        m = re.match(r"carol: (\d+) logins, (\d+) logouts$", got)
        check(m, "the bot said %r" % got)
        logins, logouts = int(m.group(1)), int(m.group(2))
        if logouts >= 1 or time.monotonic() > deadline:
            break
    check(logouts >= 1 and logins + logouts <= 3,
          "50 logins and logouts behind the gate reached the bot as %s" % got)
    alice.say(":online carol")
    alice.expect("carol is offline")
    check(srv.terminate() == 0, "the server did not stop cleanly")
    check("plugin echo_bot: %d group messages skipped echo" % reached.count(0) in srv.err.text(),
          "the count of skipped group messages is not in the log:\n%s" % srv.err.text())


if __name__ == "__main__":
    main(test)
