#!/usr/bin/env python3
"""35-plugin-abi: the plugin ABI grows without breaking what was built
before, and refuses what it cannot serve before running any of it:

- plugins of plugin API 1, built against that version's frozen headers
  (tests/plugins/abi_v1), still load and run: the tutorial's shout of then,
  and the example storage adapter of then, whose store table has no size;
- a transport of version 1 is refused (it may embed a session of another
  size), and so is a transport whose description says its sessions are of
  another size than the server's;
- a plugin built for another compiler ABI (its build signature) is refused
  from its description, before its init (which aborts) could run;
- a cluster adapter of plugin API 2 (tests/plugins/abi_v2), which wraps
  the one route table of then, still loads and routes: the server joins
  the transport's three tables into one for it and cuts its own in three
  again; a login that replaces a session is kicked through it;
- a storage adapter whose table ends before group_create (an older one)
  works for what it has: it numbers and delivers messages, groups fall back
  to the server's memory, and a plugin's key-value map is refused with
  UNSUPPORTED; one whose table has no size is refused.

Every refusal is exit 2 with FILE:LINE: KEY: NAME: why, as for a config
error."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import BASE_CONFIG, check, decode_fields, encode_fields, main, merge, \
    to_yaml  # noqa: E402
from durable import group_body, next_delivery, send_private  # noqa: E402

PLUGINS = os.environ.get("IMCORE_PLUGIN_DIR", "")
TEST_PLUGINS = os.environ.get("IMCORE_TEST_PLUGIN_DIR", "")
V1 = os.path.join(TEST_PLUGINS, "abi_v1")
V2 = os.path.join(TEST_PLUGINS, "abi_v2")


def plugin_dir(h, name, links):
    """A plugin_dir of its own: links maps file names in it to the .so
    they stand for."""
    d = os.path.join(h.tmp, name)
    os.makedirs(d, exist_ok=True)
    for dst, src in links.items():
        check(os.path.exists(src), "%s was not built" % src)
        os.symlink(src, os.path.join(d, dst))
    return d


def refused(h, name, config, key, pattern):
    """The server must not start: exit 2 and FILE:LINE: ...: why, where
    LINE is the line of the config key that names the plugin."""
    path = h.write(name + ".yaml", to_yaml(merge(BASE_CONFIG, config)))
    lines = open(path).read().split("\n")
    line = next(i for i, l in enumerate(lines) if re.match(key, l)) + 1
    rc, out, err = h.run([h.server_path, "--config", path])
    check(rc == 2, "%s: exit %d, not 2 (a plugin's code ran?):\n%s" % (name, rc, err))
    want = r"%s:%d: %s" % (re.escape(path), line, pattern)
    check(re.search(want, err), "%s: no %r in:\n%s" % (name, want, err))


def test_version_1(h):
    """shout and the storage adapter of version 1, on today's server."""
    d = plugin_dir(h, "v1-plugins", {
        "storage_recent_v1.so": os.path.join(V1, "storage_recent_v1.so"),
        "transport_tcp.so": os.path.join(PLUGINS, "transport_tcp.so"),
    })
    srv = h.server("server-v1", plugin_dir=d,
                   storage={"engine": "recent_v1", "options": {"keep": 3}},
                   plugins=[{"name": "shout_v1", "path": os.path.join(V1, "shout_v1.so")}])
    srv.err.expect(r"plugin shout_v1 1\.0 loaded from .*shout_v1\.so \(plugin API 1\)")
    srv.err.expect(r"plugin storage_recent_v1: keeping the last 3 messages of each "
                   r"conversation")
    srv.err.expect(r"plugin storage_recent_v1 1\.0 loaded from .* \(plugin API 1\)")
    alice, bob = h.raw(srv, "alice-1"), h.raw(srv, "bob-1")
    alice.login("alice")
    bob.login("bob")
    for i in range(1, 5):
        ack = send_private(alice, "bob", "m%d!" % i, "v1-%d" % i)
        check(ack.int(2) == i, "the v1 adapter numbered message %d as %d" % (i, ack.int(2)))
        d1 = next_delivery(bob)
        check(d1.body == "M%d!" % i, "the v1 shout: bob got %r" % d1.body)
    rid = alice.request("HISTORY", encode_fields([(1, "bob"), (4, 10)]))
    f = alice.expect_frame("HISTORY_RESULT")
    bodies = [decode_fields(m)[5][-1].decode() for m in f.body.get(1, [])]
    check(f.request_id == rid and bodies == ["M2!", "M3!", "M4!"],
          "history from the v1 adapter: %r" % bodies)
    # Group membership goes through the v1 table too.
    alice.request("GROUP_CREATE", encode_fields([(1, "room")]))
    alice.expect_frame("OK")
    bob.request("GROUP_JOIN", encode_fields([(1, "room")]))
    bob.expect_frame("OK")
    alice.request("GROUP_MESSAGE", group_body("room", "to the room", "v1-g"))
    check(alice.expect_frame("SEND_ACK").int(2) == 1, "the group's first seq")
    check(next_delivery(bob).body == "to the room", "bob did not get the group message")
    check(srv.terminate() == 0, "the server with plugins of version 1 did not stop cleanly")


def test_version_2_cluster(h):
    """cluster_trace_v2, built with the one route table of version 2."""
    d = plugin_dir(h, "v2-plugins", {
        "storage_memory.so": os.path.join(PLUGINS, "storage_memory.so"),
        "transport_tcp.so": os.path.join(PLUGINS, "transport_tcp.so"),
        "cluster_trace_v2.so": os.path.join(V2, "cluster_trace_v2.so"),
    })
    srv = h.server("server-v2", plugin_dir=d, cluster="trace_v2",
                   session={"login_policy": "replace"})
    srv.err.expect(r"plugin cluster_trace_v2 1 loaded from .* \(plugin API 2\)")
    srv.err.expect(r"plugin cluster_trace_v2: node it-1: wrapping the local route port")
    alice, bob = h.raw(srv, "alice-2"), h.raw(srv, "bob-2")
    alice.login("alice")
    bob.login("bob")
    ack = send_private(alice, "bob", "through version 2", "v2-1")
    check(ack.int(2) == 1, "the first seq")
    check(next_delivery(bob).body == "through version 2", "bob did not get it")
    srv.err.expect(r"cluster_trace_v2: deliver alice -> bob")
    # A second bob replaces the first, kicked through the adapter's table.
    bob2 = h.raw(srv, "bob-2b")
    bob2.login("bob")
    bob.expect_error("SESSION_REPLACED")
    send_private(alice, "bob", "to the new one", "v2-2")
    check(next_delivery(bob2).body == "to the new one", "the new bob did not get it")
    check(srv.terminate() == 0, "the server with a cluster adapter of version 2 did not stop "
                                "cleanly")


def test_transport_refusals(h):
    d = plugin_dir(h, "v1-transport", {
        "storage_memory.so": os.path.join(PLUGINS, "storage_memory.so"),
        "transport_v1.so": os.path.join(V1, "transport_v1.so"),
        "transport_badsession.so": os.path.join(TEST_PLUGINS, "transport_badsession.so"),
    })
    refused(h, "transport-v1", {"plugin_dir": d, "transport": "v1"}, "transport:",
            r"transport: v1: a transport of plugin API 1 \(no imcore_plugin_about\) may embed "
            r"sessions of another size: not loaded; rebuild it")
    refused(h, "transport-session", {"plugin_dir": d, "transport": "badsession"}, "transport:",
            r"transport: badsession: built for sessions of 16 bytes, this server's are \d+: "
            r"built for another server version; rebuild it")


def test_signature(h):
    refused(h, "signature", {"plugins": [{"name": "abi_signature",
                                          "path": os.path.join(TEST_PLUGINS,
                                                               "abi_signature.so")}]},
            r"\s*- name:", r"plugin abi_signature: built for another ABI: (big|little)-endian "
            r"\(here (little|big)-endian\); rebuild it here")


def test_short_store(h):
    d = plugin_dir(h, "short-plugins", {
        "storage_short.so": os.path.join(TEST_PLUGINS, "storage_short.so"),
        "storage_nosize.so": os.path.join(TEST_PLUGINS, "storage_nosize.so"),
        "transport_tcp.so": os.path.join(PLUGINS, "transport_tcp.so"),
    })
    srv = h.server("server-short", plugin_dir=d, storage={"engine": "short"},
                   plugins=[{"name": "echo_bot", "path": os.path.join(TEST_PLUGINS,
                                                                      "echo_bot.so")}])
    srv.err.expect(r":\d+: storage\.engine: short: its store table has no group_create, "
                   r"group_join, group_leave, load_groups, kv_put, kv_each: the server falls "
                   r"back for them as imcore/storage\.h says")
    # kv_each at on_start: IM_EUNSUPPORTED (-20) instead of a count.
    srv.err.expect(r"plugin echo_bot: started: -20 keys, count 0")
    alice, bob = h.raw(srv, "alice-s"), h.raw(srv, "bob-s")
    alice.login("alice")
    bob.login("bob")
    for i in range(1, 4):
        ack = send_private(alice, "bob", "s%d" % i, "short-%d" % i)
        check(ack.int(2) == i, "the short store numbered message %d as %d" % (i, ack.int(2)))
        check(next_delivery(bob).body == "s%d" % i, "bob did not get s%d" % i)
    # Groups: kept in the server's memory, their messages numbered by the store.
    alice.request("GROUP_CREATE", encode_fields([(1, "club")]))
    alice.expect_frame("OK")
    bob.request("GROUP_JOIN", encode_fields([(1, "club")]))
    bob.expect_frame("OK")
    alice.request("GROUP_MESSAGE", group_body("club", "in the club", "short-g"))
    check(alice.expect_frame("SEND_ACK").int(2) == 1, "the club's first seq")
    check(next_delivery(bob).body == "in the club", "bob did not get the club's message")
    # The plugin still answers (its kv_put refused, the rest as ever).
    send_private(alice, "echo", "ping", "short-e")
    check(next_delivery(alice).body == "echo #1: ping", "echo_bot did not answer")
    check(srv.terminate() == 0, "the server on the short store did not stop cleanly")
    refused(h, "nosize", {"plugin_dir": d, "storage": {"engine": "nosize"}}, r"\s*engine:",
            r"storage\.engine: nosize: its store table has a size of 0 bytes: not a table of "
            r"plugin API 2 or later \(is \.size set\?\)")


def test(h):
    check(PLUGINS and TEST_PLUGINS, "IMCORE_PLUGIN_DIR and IMCORE_TEST_PLUGIN_DIR must be set")
    test_version_1(h)
    test_version_2_cluster(h)
    test_transport_refusals(h)
    test_signature(h)
    test_short_store(h)


if __name__ == "__main__":
    main(test)
