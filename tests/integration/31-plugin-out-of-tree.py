#!/usr/bin/env python3
"""31-plugin-out-of-tree: plugins written against the installed headers
only (`cmake --install --component headers`), each built outside the
project with one cc line, and loaded by the YAML:

- the tutorial's plugin (plugins/examples/shout.c): a message ending in '!'
  arrives in capitals;
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
from durable import next_delivery, send_private  # noqa: E402

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
    test_storage_adapter(h, prefix, build)


if __name__ == "__main__":
    main(test)
