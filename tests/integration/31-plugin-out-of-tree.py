#!/usr/bin/env python3
"""31-plugin-out-of-tree: the tutorial's plugin (plugins/examples/shout.c)
is built outside the project, with one cc line, against the headers that
`cmake --install --component headers` installs, and loaded by the YAML:
a message ending in '!' arrives in capitals."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402
from durable import next_delivery, send_private  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


if __name__ == "__main__":
    main(test)
