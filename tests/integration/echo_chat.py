"""tests/integration/echo_chat.py: a raw client talking to the test plugin
tests/plugins/echo_bot.so, which speaks for the account "echo"."""
import os

from imcore_harness import check
from durable import ack_body, next_delivery, send_private, sqlite_config

TEST_PLUGINS = os.environ.get("IMCORE_TEST_PLUGIN_DIR", "")


def echo_config(h, **over):
    """The sqlite store in the test's directory, with echo_bot loaded."""
    check(TEST_PLUGINS, "IMCORE_TEST_PLUGIN_DIR must be set")
    cfg = sqlite_config(h)
    cfg["plugins"] = [{"name": "echo_bot", "path": os.path.join(TEST_PLUGINS, "echo_bot.so")}]
    cfg.update(over)
    return cfg


class Chat:
    """One raw client talking to echo: says a line, reads echo's answers
    (and acks each)."""

    sent = 0  # over every Chat: a client_msg_id is never used twice

    def __init__(self, h, srv, user):
        self.raw = h.raw(srv, user)
        self.raw.login(user)

    @staticmethod
    def next_cmid(raw):
        Chat.sent += 1
        return "%s-%d" % (raw.name, Chat.sent)

    def say(self, text, to="echo"):
        """Sends and waits for the SendAck, which it returns."""
        return send_private(self.raw, to, text, Chat.next_cmid(self.raw))

    def hear(self, timeout=10.0):
        d = next_delivery(self.raw, timeout)
        self.raw.send_frame("DELIVERY_ACK", 0, ack_body(d.conversation, d.seq))
        check(d.frm == "echo", "a message from %r, not echo: %r" % (d.frm, d))
        return d.body

    def expect(self, text, timeout=10.0):
        got = self.hear(timeout)
        check(got == text, "echo said %r, expected %r" % (got, text))

    def sync(self):
        """A Ping round trip: the server has read everything sent before it
        (acks have no answer of their own)."""
        rid = self.raw.request("PING")
        f = self.raw.expect_frame("PONG", skip=())
        check(f.request_id == rid, "Pong %r does not answer %d" % (f, rid))


class Gate:
    """A file echo_bot's ":gate PATH" waits for: from block() on, the plugin
    loop is stuck in that command until the test calls open()."""

    def __init__(self, h, name):
        self.path = os.path.join(h.tmp, name)

    def block(self, chat):
        chat.say(":gate %s" % self.path)

    def open(self):
        with open(self.path, "w"):
            pass

    def passed(self, chat, timeout=10.0):
        """The bot's word that it went through."""
        chat.expect("gate %s open" % self.path, timeout)
