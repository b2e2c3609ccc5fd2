#!/usr/bin/env python3
"""32-plugin-host: the host functions of the plugin API, through a real
server and real clients, with tests/plugins/echo_bot.so, which speaks for
the account "echo" (durable sqlite storage):

- a claimed account is online and answers; no client can log in as it;
- its plugin's kv map survives a restart; timers (one-shot, repeating and
  cancelled from their own callback); run_blocking, and a send from the
  blocking thread; presence (is_online, on_login, on_logout); group
  membership, group_join and a group message to and from the bot;
- a message being handled when the server is killed comes again at the
  next start, and so does one stored behind it: delivery to a plugin is at
  least once, nothing acked is lost;
- a server stopped under a run_blocking job still runs the job and its
  done (which sees run_blocking refuse), before the plugin's shutdown."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, encode_fields, main  # noqa: E402
from durable import ack_body, group_body, next_delivery  # noqa: E402
from echo_chat import Chat, Gate, echo_config  # noqa: E402


def request_ok(raw, type_name, body):
    rid = raw.request(type_name, body)
    f = raw.expect_frame("OK")
    check(f.request_id == rid, "Ok %r does not answer %d" % (f, rid))


def test(h):
    srv = h.server(**echo_config(h))
    alice = Chat(h, srv, "alice")

    alice.say("hello")
    alice.expect("echo #1: hello")
    alice.say("again")
    alice.expect("echo #2: again")

    # The server's limits, as configured (the defaults here).
    alice.say(":limits")
    alice.expect("max_body_bytes 8192, max_group_members 1000, plugin_backlog 10000")

    # The key-value map is read off the plugin loop: kv_each in a callback
    # on the loop is refused (ESTATE), in run_blocking's work it reads.
    alice.say(":keys")
    alice.expect("keys here: -6")  # IM_ESTATE
    alice.expect("keys blocking: 1")

    # kv_get off the loop: a put is read back at once (the plugin reads its
    # own writes); an absent key is NOT_FOUND (-23).
    alice.say(":putget mood sunny")
    alice.expect("got mood: 0 sunny")
    alice.say(":get nothing-here")
    alice.expect("got nothing-here: -23 ")
    alice.say(":get mood")
    alice.expect("got mood: 0 sunny")

    # A bot's group requests, with their outcome (group_call's done).
    alice.say(":create botroom")
    alice.expect("group botroom create: 0")
    alice.say(":create botroom")
    got = alice.hear()
    check(got in ("group botroom create: -9", "group botroom create refused at once: -9"),
          "a second create: %r" % got)  # IM_EEXIST
    alice.say(":part botroom")
    alice.expect("group botroom leave: 0")
    alice.say(":part botroom")
    got = alice.hear()
    check(got.startswith("group botroom leave") and got.endswith(": -8"),
          "leaving a group that is gone: %r" % got)  # IM_ENOGROUP

    # Nobody logs in as a service account.
    thief = h.raw(srv, "thief")
    thief.request("LOGIN", encode_fields([(1, "echo")]))
    e = thief.expect_error("REFUSED")
    check("service account" in e.str(2), "the refusal says why: %r" % e)

    # Timers: one-shot, and repeating until it cancels itself.
    alice.say(":later 50 after a while")
    alice.expect("later: after a while")
    alice.say(":tick 3")
    for i in (1, 2, 3):
        alice.expect("tick %d" % i)
    alice.say("after ticks")  # the 4th tick would come before this answer
    alice.expect("echo #3: after ticks")

    # Slow work off the loop, and a send from that other thread.
    alice.say(":slow quiet please")
    alice.expect("slow: QUIET PLEASE")
    alice.say(":thread hi")
    alice.expect("from-thread: hi")

    # Presence.
    alice.say(":online echo")
    alice.expect("echo is online")
    bob = Chat(h, srv, "bob")
    alice.say(":online bob")
    alice.expect("bob is online")
    bob.raw.close()
    # bob's logout and alice's question reach the bot by different workers:
    # ask until the logout has arrived.
    deadline = time.monotonic() + 10
    while True:
        alice.say(":seen bob")
        got = alice.hear()
        if got == "bob: 1 logins, 1 logouts" or time.monotonic() > deadline:
            break
    check(got == "bob: 1 logins, 1 logouts", "presence: %r" % got)
    alice.say(":online bob")
    alice.expect("bob is offline")

    # Groups: members, join, and group messages both ways.
    request_ok(alice.raw, "GROUP_CREATE", encode_fields([(1, "room")]))
    alice.say(":members room")
    alice.expect("members of room: alice")
    alice.say(":members nowhere")
    alice.expect("no group nowhere")
    alice.say(":join room")
    alice.expect("joining room")
    alice.say(":members room")
    alice.expect("members of room: alice,echo")
    rid = alice.raw.request("GROUP_MESSAGE", group_body("room", "hi room", "g-1"))
    f = alice.raw.expect_frame("SEND_ACK")
    check(f.request_id == rid, "no ack for the group message")
    d = next_delivery(alice.raw)
    alice.raw.send_frame("DELIVERY_ACK", 0, ack_body(d.conversation, d.seq))
    check(d.group == "room" and d.frm == "echo" and d.body == "echo heard alice",
          "the bot's group answer: %r" % d)
    # The server must have read that ack before the stop below, or the
    # bot's answer would come again (at least once) at the next login.
    alice.sync()

    # The count lives in the plugin's kv: it survives a clean restart.
    check(srv.terminate() == 0, "the server did not stop cleanly")
    srv = h.server("server-2", **echo_config(h))
    alice = Chat(h, srv, "alice")
    alice.say("after restart")
    alice.expect("echo #4: after restart")

    # Killed while the bot handles a message (it waits at a gate the test
    # opens only after the kill), with another stored behind it: both are
    # acked to the sender, neither was acked by the bot, so both come to the
    # bot again after the restart.
    gate = Gate(h, "gate")
    gate.block(alice)
    alice.say("behind the gate")
    srv.signal(signal.SIGKILL)
    srv.wait_exit()
    gate.open()
    srv = h.server("server-3", **echo_config(h))
    alice = Chat(h, srv, "alice")
    gate.passed(alice)
    alice.expect("echo #5: behind the gate")
    # Stopped under a run_blocking job: the job finishes, its done runs
    # (and finds run_blocking refusing: the server is stopping), all before
    # the plugin's shutdown. Nothing accepted is dropped.
    alice.say(":stopwork 4000 last job")
    srv.err.expect("stopwork last job: working")
    check(srv.terminate() == 0, "the server did not stop cleanly")
    err = srv.err.text()
    done = err.find("plugin echo_bot: stopwork last job: done, stopping")
    check(done >= 0, "the job's done did not run at the stop:\n%s" % err)
    check(err.find("plugin echo_bot: shutdown") > done,
          "done did not come before shutdown:\n%s" % err)
    check("plugin echo_bot: started: 2 keys, count 4" in srv.err.text(),  # count, mood
          "the bot did not load its count at the third start:\n%s" % srv.err.text())


if __name__ == "__main__":
    main(test)
