#!/usr/bin/env python3
"""33-cs-bot: the customer-service bot (plugins/cs_bot) end to end, with
real imcore-cli clients on a real server and durable storage:

- a customer's question is answered from the YAML FAQ, after a greeting;
- two agents (members of the group "agents", one customer each) and three
  customers: the first two are assigned, one to each agent, the third is
  told its place in the queue; messages are relayed both ways, and neither
  side sees the other's user id;
- an agent who disconnects returns their customer to the head of the
  queue (the customer behind is told its new place), and gets one again
  when back;
- :transfer with nobody free is refused, and to a third agent succeeds;
- :end asks the customer for a rating, which :stats counts, and which,
  with the conversation counter, survives a restart;
- an edited FAQ file is read again without a restart."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402
from durable import sqlite_config  # noqa: E402

PLUGINS = os.environ.get("IMCORE_PLUGIN_DIR", "")

FAQ = """\
# Questions the bot answers by itself.
- keywords: [hours, open, opening]
  answer: "We are open from 9 to 17, Monday to Friday."
- keywords: [password, reset]
  answer: "To reset your password, use the link on the login page."
"""

GREETING = ('Hello! I am the support bot. Ask me a question, or write "agent" '
            'to talk to a person.')


def config(h):
    cfg = sqlite_config(h)
    cfg["plugin_dir"] = PLUGINS
    cfg["plugins"] = [{"name": "cs_bot", "config": {
        "service_account": "support",
        "agents_group": "agents",
        "faq": h.write("faq.yaml", FAQ),
        "max_customers_per_agent": 1,
        "assign_interval_ms": 200,
        "faq_reload_s": 1,
    }}]
    return cfg


def bot_says(cli, text, timeout=10.0):
    """The next line from support saying exactly text."""
    return cli.expect(r"support \u2192 you: %s$" % re.escape(text), timeout)


def test(h):
    check(PLUGINS, "IMCORE_PLUGIN_DIR must be set")
    srv = h.server(**config(h))

    ann = h.cli(srv, "ann")
    ann.send(":create agents")
    ann.expect(r"^\* created agents$")
    ben = h.cli(srv, "ben")
    ben.send(":join agents")
    ben.expect(r"^\* joined agents$")

    # The FAQ, after the greeting.
    cat = h.cli(srv, "cat")
    cat.send("@support what are your opening hours?")
    bot_says(cat, GREETING)
    bot_says(cat, "We are open from 9 to 17, Monday to Friday.")

    # Two customers ask for a person: one to each agent (ann first: both are
    # free and neither had a customer, so the lower id).
    cat.send("@support agent")
    bot_says(cat, "You are now talking to Agent 1.")
    bot_says(ann, "New customer #1 (customer #1).")
    dan = h.cli(srv, "dan")
    dan.send("@support agent")
    bot_says(dan, GREETING)
    bot_says(dan, "You are now talking to Agent 2.")
    bot_says(ben, "New customer #2 (customer #2).")

    # The third waits: no answer in the FAQ, and both agents are full.
    eve = h.cli(srv, "eve")
    eve.send("@support my invoice is wrong")
    bot_says(eve, GREETING)
    bot_says(eve, "All our agents are busy. You are number 1 in the queue.")

    # Relayed both ways, without user ids.
    cat.send("@support hello there")
    bot_says(ann, "#1: hello there")
    ann.send("@support hi, how can I help?")
    bot_says(cat, "Agent 1: hi, how can I help?")
    for cli, other in ((ann, "cat"), (cat, "ann"), (ben, "dan"), (dan, "ben")):
        seen = cli.out.matching(r"\b%s\b" % other)
        check(not seen, "%s saw %s's id: %r" % (cli.name, other, seen))

    # Nobody free to take a transfer.
    ann.send("@support :transfer")
    bot_says(ann, "No other agent can take #1 now.")

    # ben leaves: dan goes back to the head of the queue, eve moves back.
    ben.close_stdin()
    check(ben.wait_exit() == 0, "ben's client did not exit cleanly")
    bot_says(dan, "Your agent had to leave. You are number 1 in the queue.")
    bot_says(eve, "You are now number 2 in the queue.")
    # ...and when ben is back, dan is his again.
    ben = h.cli(srv, "ben", name="ben-2")
    bot_says(dan, "You are now talking to Agent 2.")
    bot_says(ben, "New customer #2 (customer #2).")
    bot_says(eve, "You are now number 1 in the queue.")

    # ann ends: cat is asked for a rating, and eve gets ann.
    ann.send("@support :end")
    bot_says(ann, "#1 ended.")
    bot_says(cat, "This conversation has ended. Please rate it from 1 (poor) to 5 (excellent).")
    bot_says(eve, "You are now talking to Agent 1.")
    bot_says(ann, "New customer #3 (customer #3).")
    bot_says(ann, "#3 wrote: my invoice is wrong")
    cat.send("@support 5")
    bot_says(cat, "Thank you for your rating!")

    # A third agent: the transfer goes to her.
    fay = h.cli(srv, "fay")
    fay.send(":join agents")
    fay.expect(r"^\* joined agents$")
    ann.send("@support :transfer")
    bot_says(ann, "#3 transferred to Agent 3.")
    bot_says(eve, "You are now talking to Agent 3.")
    bot_says(fay, "Customer #3 (customer #3) was transferred to you.")
    eve.send("@support thanks")
    bot_says(fay, "#3: thanks")

    ann.send("@support :stats")
    bot_says(ann, "3 conversations, 1 rated, average rating 5.0")

    # The ratings and the counter are kept through a restart.
    for cli in (ann, ben, cat, dan, eve, fay):
        cli.close_stdin()
        cli.wait_exit()
    check(srv.terminate() == 0, "the server did not stop cleanly")
    srv = h.server("server-2", **config(h))
    ann = h.cli(srv, "ann")
    ann.send("@support :stats")
    bot_says(ann, "3 conversations, 1 rated, average rating 5.0")
    gil = h.cli(srv, "gil")
    gil.send("@support agent")
    bot_says(gil, GREETING)
    bot_says(gil, "You are now talking to Agent 1.")
    bot_says(ann, "New customer #4 (customer #4).")

    # An edited FAQ applies without a restart (faq_reload_s: 1): the bot
    # rereads it on the host's blocking thread.
    path = h.write("faq.yaml", FAQ.replace("from 9 to 17", "from 8 to 18"))
    now = time.time()
    os.utime(path, (now, now + 10))  # an edit even within one clock tick
    srv.err.expect(r"plugin cs_bot: FAQ reloaded from .*faq.yaml: 2 entries")
    hal = h.cli(srv, "hal")
    hal.send("@support when do you open?")
    bot_says(hal, GREETING)
    bot_says(hal, "We are open from 8 to 18, Monday to Friday.")


if __name__ == "__main__":
    main(test)
