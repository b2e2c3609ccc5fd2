#!/usr/bin/env python3
"""30-plugins: plugins listed in the YAML are loaded with dlopen. The
word_filter plugin masks listed words (mode mask) or refuses the message
(mode drop: REFUSED, the connection stays); and each way a plugin can fail
to load stops the server with exit 2 and FILE:LINE: plugin NAME: why. The
storage and transport adapters are plugins too, with their own labels."""
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import BASE_CONFIG, check, main, merge, to_yaml  # noqa: E402
from durable import next_delivery, private_body, send_private  # noqa: E402

PLUGINS = os.environ.get("IMCORE_PLUGIN_DIR", "")
TEST_PLUGINS = os.environ.get("IMCORE_TEST_PLUGIN_DIR", "")


def with_plugins(plugins):
    return {"plugin_dir": PLUGINS, "plugins": plugins}


def test_mask(h):
    srv = h.server(**with_plugins([{"name": "word_filter",
                                    "config": {"words": ["heck", "darn"], "mode": "mask"}}]))
    alice, bob = h.raw(srv, "alice"), h.raw(srv, "bob")
    alice.login("alice")
    bob.login("bob")
    send_private(alice, "bob", "oh Heck, darn it (checkers are fine)", "w-1")
    d = next_delivery(bob)
    check(d.body == "oh ****, **** it (checkers are fine)", "bob got %r" % d.body)
    send_private(alice, "bob", "all clean", "w-2")
    check(next_delivery(bob).body == "all clean", "a clean message was changed")
    check(srv.terminate() == 0, "the server did not stop cleanly")
    check("plugin word_filter: 2 words, mode mask" in srv.err.text(), "the plugin did not log")


def test_drop(h):
    srv = h.server("server-drop", **with_plugins([{"name": "word_filter",
                                                  "config": {"words": "heck", "mode": "drop"}}]))
    alice, bob = h.raw(srv, "alice-d"), h.raw(srv, "bob-d")
    alice.login("alice")
    bob.login("bob")
    rid = alice.request("PRIVATE_MESSAGE", private_body("bob", "what the heck", "d-1"))
    e = alice.expect_error("REFUSED")
    check(e.request_id == rid and e.str(3) == "d-1" and "not allowed" in e.str(2),
          "the refusal %r" % e)
    send_private(alice, "bob", "sorry", "d-2")  # the connection stays
    check(next_delivery(bob).body == "sorry", "bob did not get the next message")


def refused(h, name, plugins, pattern):
    """The server must refuse to start: exit 2, FILE:LINE: plugin ...: why."""
    cfg = merge(BASE_CONFIG, with_plugins(plugins))
    path = h.write(name + ".yaml", to_yaml(cfg))
    text = open(path).read()
    line = text.split("\n").index("plugins:") + 2  # the entry's first line
    rc, out, err = h.run([h.server_path, "--config", path])
    check(rc == 2, "%s: exit %d, not 2:\n%s" % (name, rc, err))
    want = r"%s:%d: plugin [a-z_]+: %s" % (re.escape(path), line, pattern)
    check(re.search(want, err), "%s: no %r in:\n%s" % (name, want, err))


def test_refusals(h):
    refused(h, "unknown", [{"name": "nosuch"}], "cannot load it:")
    refused(h, "no-entry", [{"name": "no_entry", "path": os.path.join(TEST_PLUGINS, "no_entry.so")}],
            ".*no_entry.so has no imcore_plugin_init: not an imcore plugin")
    refused(h, "future", [{"name": "abi_future",
                           "path": os.path.join(TEST_PLUGINS, "abi_future.so")}],
            "built for plugin API 99, this server speaks 1 to 3: it needs a newer server")
    refused(h, "init", [{"name": "init_fails", "path": os.path.join(TEST_PLUGINS, "init_fails.so"),
                         "config": {"answer": "41"}}], "init failed: the answer is 41, not 42")
    refused(h, "bad-config", [{"name": "word_filter", "config": {"words": "x", "mode": "loud"}}],
            r"init failed: .*:\d+: mode must be mask or drop, not 'loud'")
    # A mistake in the list itself is a config error like any other.
    path = h.write("bad-entry.yaml", "plugins:\n  - name: word_filter\n    colour: red\n")
    rc, out, err = h.run([h.server_path, "--config", path])
    check(rc == 2 and "%s:3: plugins[0].colour: unknown key" % path in err,
          "an unknown key in a plugin entry: exit %d:\n%s" % (rc, err))


def refused_storage(h, name, storage, pattern, plugin_dir=PLUGINS):
    """The storage adapter is a plugin too: one that does not load stops the
    server with exit 2 and FILE:LINE: storage.engine: NAME: why."""
    cfg = merge(BASE_CONFIG, {"plugin_dir": plugin_dir, "storage": storage})
    path = h.write(name + ".yaml", to_yaml(cfg))
    lines = open(path).read().split("\n")
    line = next(i for i, l in enumerate(lines) if l.strip().startswith("engine:")) + 1
    rc, out, err = h.run([h.server_path, "--config", path])
    check(rc == 2, "%s: exit %d, not 2:\n%s" % (name, rc, err))
    want = r"%s:%d: storage\.engine: [a-z_]+: %s" % (re.escape(path), line, pattern)
    check(re.search(want, err), "%s: no %r in:\n%s" % (name, want, err))


def test_storage_adapters(h):
    # The built-in engines are plugins found by name in plugin_dir.
    for engine in ("memory", "sqlite"):
        check(os.path.exists(os.path.join(PLUGINS, "storage_%s.so" % engine)),
              "storage_%s.so is not in %s" % (engine, PLUGINS))
    srv = h.server("server-mem", plugin_dir=PLUGINS)
    check(re.search(r"plugin storage_memory 1 loaded from .*/storage_memory\.so",
                    srv.err.expect(r"storage_memory").string), "the memory adapter's log")
    refused_storage(h, "no-engine", {"engine": "nosuch"}, "cannot load it:.*storage_nosuch\\.so")
    refused_storage(h, "engine-option", {"engine": "memory", "options": {"colour": "red"}},
                    r"init failed: .*:\d+: storage\.options\.colour: unknown key for storage_memory")
    # A plugin that is not a storage adapter cannot be one.
    fake_dir = os.path.join(h.tmp, "fake-plugins")
    os.makedirs(fake_dir, exist_ok=True)
    shutil.copy(os.path.join(TEST_PLUGINS, "echo_bot.so"),
                os.path.join(fake_dir, "storage_fake.so"))
    refused_storage(h, "not-storage", {"engine": "fake"},
                    ".*storage_fake.so is a plugin but not a storage adapter", plugin_dir=fake_dir)


def refused_transport(h, name, extra, pattern, plugin_dir=PLUGINS):
    """The transport is a plugin too: one that does not load stops the
    server with exit 2 and FILE:LINE: transport: NAME: why."""
    cfg = merge(BASE_CONFIG, dict({"plugin_dir": plugin_dir}, **extra))
    path = h.write(name + ".yaml", to_yaml(cfg))
    lines = open(path).read().split("\n")
    line = next(i for i, l in enumerate(lines) if l.startswith("transport:")) + 1
    rc, out, err = h.run([h.server_path, "--config", path])
    check(rc == 2, "%s: exit %d, not 2:\n%s" % (name, rc, err))
    want = r"%s:%d: transport: %s" % (re.escape(path), line, pattern)
    check(re.search(want, err), "%s: no %r in:\n%s" % (name, want, err))


def test_transport_adapters(h):
    # Every other test already runs through transport_tcp.so, the default.
    check(os.path.exists(os.path.join(PLUGINS, "transport_tcp.so")),
          "transport_tcp.so is not in %s" % PLUGINS)
    srv = h.server("server-tcp", plugin_dir=PLUGINS, transport="tcp")
    check(re.search(r"plugin transport_tcp 1 loaded from .*/transport_tcp\.so",
                    srv.err.expect(r"transport_tcp").string), "the tcp adapter's log")
    alice, bob = h.raw(srv, "alice-t"), h.raw(srv, "bob-t")
    alice.login("alice")
    bob.login("bob")
    send_private(alice, "bob", "over the plugin", "t-1")
    check(next_delivery(bob).body == "over the plugin", "bob did not get it")
    check(srv.terminate() == 0, "the server did not stop cleanly on SIGTERM")
    refused_transport(h, "no-transport", {"transport": "nosuch"},
                      "nosuch: cannot load it:.*transport_nosuch\\.so")
    refused_transport(h, "transport-option", {"transport": "tcp",
                                              "transport_options": {"colour": "red"}},
                      r"tcp: init failed: .*:\d+: transport_options\.colour: unknown key for "
                      r"transport_tcp")
    # A plugin that is not a transport cannot be one (the storage adapter,
    # loaded first, must be found in the same directory).
    fake_dir = os.path.join(h.tmp, "fake-transports")
    os.makedirs(fake_dir, exist_ok=True)
    shutil.copy(os.path.join(PLUGINS, "storage_memory.so"), fake_dir)
    shutil.copy(os.path.join(TEST_PLUGINS, "echo_bot.so"),
                os.path.join(fake_dir, "transport_fake.so"))
    refused_transport(h, "not-transport", {"transport": "fake"},
                      "fake: .*transport_fake.so is a plugin but not a transport",
                      plugin_dir=fake_dir)


def test_cluster_adapter(h):
    """cluster: trace loads cluster_trace.so from plugin_dir, which wraps the
    route port: messages still arrive, and each delivery is logged."""
    cluster_dir = os.path.join(h.tmp, "cluster-plugins")
    os.makedirs(cluster_dir, exist_ok=True)
    for name in ("storage_memory.so", "transport_tcp.so"):
        shutil.copy(os.path.join(PLUGINS, name), cluster_dir)
    shutil.copy(os.path.join(TEST_PLUGINS, "cluster_trace.so"), cluster_dir)
    srv = h.server("server-cluster", plugin_dir=cluster_dir, cluster="trace")
    srv.err.expect(r"plugin cluster_trace: node it-1: wrapping the local route port")
    alice, bob = h.raw(srv, "alice-c"), h.raw(srv, "bob-c")
    alice.login("alice")
    bob.login("bob")
    send_private(alice, "bob", "across the cluster seam", "c-1")
    check(next_delivery(bob).body == "across the cluster seam", "bob did not get it")
    srv.err.expect(r"cluster_trace: deliver alice -> bob")
    check(srv.terminate() == 0, "the server did not stop cleanly")
    # A cluster adapter that does not load stops the server like any other.
    cfg = merge(BASE_CONFIG, {"plugin_dir": cluster_dir, "cluster": "nosuch"})
    path = h.write("no-cluster.yaml", to_yaml(cfg))
    lines = open(path).read().split("\n")
    line = next(i for i, l in enumerate(lines) if l.startswith("cluster:")) + 1
    rc, out, err = h.run([h.server_path, "--config", path])
    check(rc == 2 and "%s:%d: cluster: nosuch: cannot load it" % (path, line) in err,
          "an unknown cluster adapter: exit %d:\n%s" % (rc, err))
    # A plugin that is not a cluster adapter cannot be one.
    shutil.copy(os.path.join(TEST_PLUGINS, "echo_bot.so"),
                os.path.join(cluster_dir, "cluster_fake.so"))
    cfg = merge(BASE_CONFIG, {"plugin_dir": cluster_dir, "cluster": "fake"})
    path = h.write("not-cluster.yaml", to_yaml(cfg))
    rc, out, err = h.run([h.server_path, "--config", path])
    check(rc == 2 and re.search(r"cluster: fake: .*cluster_fake\.so is a plugin but not a "
                                r"cluster adapter", err),
          "a plugin that is not a cluster adapter: exit %d:\n%s" % (rc, err))


def test(h):
    check(PLUGINS and TEST_PLUGINS, "IMCORE_PLUGIN_DIR and IMCORE_TEST_PLUGIN_DIR must be set")
    test_cluster_adapter(h)
    test_transport_adapters(h)
    test_storage_adapters(h)
    test_mask(h)
    test_drop(h)
    test_refusals(h)


if __name__ == "__main__":
    main(test)
