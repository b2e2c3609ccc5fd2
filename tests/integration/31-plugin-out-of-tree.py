#!/usr/bin/env python3
"""31-plugin-out-of-tree: plugins written against the installed headers
only (`cmake --install --component headers`), each built outside the
project with one cc line, and loaded by the YAML:

- the tutorial's plugin (plugins/examples/shout.c): a message ending in '!'
  arrives in capitals;
- the tutorial's bot (plugins/examples/standup.c): a service account that
  greets at login, keeps notes in its key-value map (across a restart),
  sends a digest on request and on its timer, and refuses a bad config
  value with FILE:LINE;
- a storage adapter written from scratch (plugins/examples/storage_recent.c)
  replaces the built-in engine: messages are numbered by it, history comes
  from it (the last `keep` of a conversation), and a bad option of it stops
  the server with FILE:LINE."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import (BASE_CONFIG, check, decode_fields, encode_fields, main,  # noqa: E402
                             merge, to_yaml)
from durable import ack_body, next_delivery, send_private, sqlite_config  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_plugin(h, prefix, name, libs=()):
    """Copies plugins/examples/NAME.c out of the tree and builds NAME.so with
    one cc line against the installed headers; returns its path."""
    src = os.path.join(h.tmp, name + ".c")
    shutil.copy(os.path.join(ROOT, "plugins", "examples", name + ".c"), src)
    so = os.path.join(h.tmp, "out", name + ".so")
    os.makedirs(os.path.dirname(so), exist_ok=True)
    cc = os.environ.get("CC", "cc")
    rc, out, err = h.run([cc, "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra",
                          "-Werror", "-I" + os.path.join(prefix, "include"), "-o", so, src]
                         + list(libs), timeout=60)
    check(rc == 0, "the one-line build of %s failed:\n%s" % (name, err))
    return so


def test_storage_adapter(h, prefix, build):
    so = build_plugin(h, prefix, "storage_recent", ["-lpthread"])
    # plugin_dir holds every adapter the config names: ours, and the
    # server's own transport.
    plugin_dir = os.path.dirname(so)
    os.symlink(os.path.join(build, "plugins", "transport_tcp.so"),
               os.path.join(plugin_dir, "transport_tcp.so"))
    storage = {"engine": "recent", "options": {"keep": 3}}
    srv = h.server("server-recent", plugin_dir=plugin_dir, storage=storage)
    srv.err.expect(r"plugin storage_recent: keeping the last 3 messages of each conversation")
    alice, bob = h.raw(srv, "alice-r"), h.raw(srv, "bob-r")
    alice.login("alice")
    bob.login("bob")
    for i in range(1, 6):
        ack = send_private(alice, "bob", "m%d" % i, "r-%d" % i)
        check(ack.int(2) == i, "the adapter numbered message %d as %d" % (i, ack.int(2)))
        check(next_delivery(bob).body == "m%d" % i, "bob did not get m%d" % i)
    rid = alice.request("HISTORY", encode_fields([(1, "bob"), (4, 10)]))
    f = alice.expect_frame("HISTORY_RESULT")
    got = [decode_fields(m) for m in f.body.get(1, [])]
    bodies = [m[5][-1].decode() for m in got]
    check(f.request_id == rid and bodies == ["m3", "m4", "m5"],
          "history from the adapter: %r" % bodies)
    check(srv.terminate() == 0, "the server did not stop cleanly")
    # The adapter's own refusal, with the line of the key.
    cfg = merge(BASE_CONFIG, {"plugin_dir": plugin_dir,
                              "storage": {"engine": "recent", "options": {"keep": 0}}})
    path = h.write("recent-bad.yaml", to_yaml(cfg))
    line = open(path).read().split("\n").index("    keep: 0") + 1
    rc, out, err = h.run([h.server_path, "--config", path])
    check(rc == 2 and ("%s:%d: storage.options.keep: must be 1 to 1000000, not '0'"
                       % (path, line)) in err,
          "a bad option: exit %d:\n%s" % (rc, err))


class Person:
    """A raw client that talks to the standup bot and acks what it hears."""
    n = 0

    def __init__(self, h, srv, user):
        self.raw = h.raw(srv, user + "-" + srv.name)
        self.raw.login(user)

    def say(self, text):
        Person.n += 1
        return send_private(self.raw, "standup", text, "su-%d" % Person.n)

    def hear(self, timeout=10.0):
        d = next_delivery(self.raw, timeout)
        self.raw.send_frame("DELIVERY_ACK", 0, ack_body(d.conversation, d.seq))
        check(d.frm == "standup", "a message from %r: %r" % (d.frm, d))
        return d.body


def test_standup(h, prefix):
    so = build_plugin(h, prefix, "standup")
    cfg = sqlite_config(h, "standup.db")
    plugin = {"name": "standup", "path": so, "config": {"digest_every": "1h", "greet": "yes"}}
    srv = h.server("standup-1", plugins=[plugin], **cfg)
    srv.err.expect(r"plugin standup: ready: 0 notes kept, a digest every 3600000 ms")
    alice = Person(h, srv, "alice")
    check(alice.hear() == "hi alice, what did you do? tell me in a message", "no greeting")
    alice.say("fixed the build")
    check(alice.hear() == "noted (1 this round)", "alice's note")
    bob = Person(h, srv, "bob")
    check(bob.hear().startswith("hi bob"), "no greeting for bob")
    bob.say("wrote the docs")
    check(bob.hear() == "noted (2 this round)", "bob's note")
    check(srv.terminate() == 0, "the server did not stop cleanly")

    # The notes come back from the key-value map; the digest goes to both.
    plugin["config"] = {"digest_every": "300ms", "greet": "no"}
    srv = h.server("standup-2", plugins=[plugin], **cfg)
    srv.err.expect(r"plugin standup: ready: 2 notes kept, a digest every 300 ms")
    alice, bob = Person(h, srv, "alice"), Person(h, srv, "bob")
    want = "standup digest (2):\n- alice: fixed the build\n- bob: wrote the docs"
    for p in (alice, bob):
        got = p.hear()
        check(got == want, "the timer's digest: %r" % got)
    # A new round: the next digest holds only the new note, asked for now.
    alice.say("reviewed a patch")
    check(alice.hear() == "noted (1 this round)", "a new round")
    alice.say("!digest")
    got = alice.hear()
    check(got == "standup digest (1):\n- alice: reviewed a patch", "!digest: %r" % got)
    check(srv.terminate() == 0, "the server did not stop cleanly")

    # A bad value: exit 2, FILE:LINE: plugin standup: KEY: why.
    plugin["config"] = {"digest_every": "soon"}
    path = h.write("standup-bad.yaml", to_yaml(merge(BASE_CONFIG, dict(plugins=[plugin], **cfg))))
    line = next(n for n, t in enumerate(open(path), 1) if "digest_every:" in t)
    rc, out, err = h.run([h.server_path, "--config", path, "--check-config"])
    check(rc == 2 and ("%s:%d: plugin standup: digest_every: must be a duration" % (path, line))
          in err, "a bad digest_every: exit %d:\n%s" % (rc, err))


def test(h):
    build = os.environ.get("IMCORE_BUILD_DIR", "")
    check(build, "IMCORE_BUILD_DIR must be set")
    prefix = os.path.join(h.tmp, "prefix")
    rc, out, err = h.run(["cmake", "--install", build, "--component", "headers",
                          "--prefix", prefix], timeout=60)
    check(rc == 0, "installing the headers failed:\n%s%s" % (out, err))
    check(os.path.exists(os.path.join(prefix, "include", "imcore", "plugin.h")),
          "plugin.h was not installed")
    # Only the installed header is visible: the source is copied out first.
    src = os.path.join(h.tmp, "shout.c")
    shutil.copy(os.path.join(ROOT, "plugins", "examples", "shout.c"), src)
    so = os.path.join(h.tmp, "shout.so")
    cc = os.environ.get("CC", "cc")
    rc, out, err = h.run([cc, "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra",
                          "-Werror", "-I" + os.path.join(prefix, "include"), "-o", so, src],
                         timeout=60)
    check(rc == 0, "the one-line build failed:\n%s" % err)

    srv = h.server(plugins=[{"name": "shout", "path": so}])
    alice, bob = h.raw(srv, "alice"), h.raw(srv, "bob")
    alice.login("alice")
    bob.login("bob")
    send_private(alice, "bob", "hello world!", "s-1")
    send_private(alice, "bob", "calm down.", "s-2")
    check(next_delivery(bob).body == "HELLO WORLD!", "the plugin did not shout")
    check(next_delivery(bob).body == "calm down.", "a calm message was changed")
    test_standup(h, prefix)
    test_storage_adapter(h, prefix, build)


if __name__ == "__main__":
    main(test)
