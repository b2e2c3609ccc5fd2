#!/usr/bin/env python3
"""09-help-version: both programs answer --help and --version with status 0,
refuse bad options with status 2, and the server refuses a config with an
unknown key with status 2 and a FILE:LINE: KEY: message."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402


def expect_run(h, argv, status, out=None, err=None):
    rc, stdout, stderr = h.run(argv)
    what = "%s: exit %d\n-- stdout:\n%s-- stderr:\n%s" % (" ".join(argv), rc, stdout, stderr)
    check(rc == status, "expected exit %d; %s" % (status, what))
    if out:
        check(re.search(out, stdout, re.M), "stdout does not match /%s/; %s" % (out, what))
    if err:
        check(re.search(err, stderr, re.M), "stderr does not match /%s/; %s" % (err, what))
    return stdout, stderr


def test(h):
    cli, server = h.cli_path, h.server_path

    expect_run(h, [cli, "--help"], 0, out=r"^Usage: imcore-cli")
    expect_run(h, [cli, "--version"], 0, out=r"^imcore-cli 0\.1\.0$")
    expect_run(h, [cli, "--bogus"], 2, err=r"unknown option --bogus")
    expect_run(h, [cli], 2, err=r"--user is required")
    expect_run(h, [cli, "--user", "alice", "--port", "70000"], 2, err=r"--port")
    expect_run(h, [cli, "--user", "alice", "--host", "localhost"], 2, err=r"--host")
    expect_run(h, [cli, "--user", "bad user"], 2, err=r"--user")
    expect_run(h, [cli, "--user", "alice", "--log-level", "loud"], 2, err=r"--log-level")
    expect_run(h, [cli, "--user", "alice", "extra"], 2, err=r"unexpected argument")

    expect_run(h, [server, "--help"], 0, out=r"imcore-server")
    expect_run(h, [server, "--version"], 0, out=r"^imcore-server \d+\.\d+\.\d+")
    expect_run(h, [server, "--bogus"], 2)

    path = h.write("unknown-key.yaml", "listen:\n  host: \"127.0.0.1\"\n  port: 0\n"
                                       "workers: 1\nbogus_key: 3\n")
    _, stderr = expect_run(h, [server, "--config", path], 2)
    check(re.search(r"%s:5: bogus_key: " % re.escape(path), stderr),
          "no '%s:5: bogus_key: ...' in:\n%s" % (path, stderr))

    path = h.write("unknown-nested.yaml", "listen:\n  host: \"127.0.0.1\"\n  prot: 0\n")
    _, stderr = expect_run(h, [server, "--config", path], 2)
    check(re.search(r"%s:3: listen\.prot: " % re.escape(path), stderr),
          "no '%s:3: listen.prot: ...' in:\n%s" % (path, stderr))

    path = os.path.join(h.tmp, "does-not-exist.yaml")
    expect_run(h, [server, "--config", path], 2, err=re.escape(path))


if __name__ == "__main__":
    main(test)
