#!/usr/bin/env python3
"""tests/services/run_with.py SERVICE[,SERVICE...] -- COMMAND [ARG...]

Starts the named services (zookeeper, redis: see services.py), runs COMMAND
with their addresses in the environment (IMCORE_TEST_ZOOKEEPER,
IMCORE_TEST_REDIS, as HOST:PORT), stops them by PID, and exits with
COMMAND's status. For C tests that need a real server."""

import contextlib
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import services  # noqa: E402


def main(argv):
    if len(argv) < 4 or argv[2] != "--":
        print(__doc__.strip(), file=sys.stderr)
        return 2
    names = argv[1].split(",")
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        for name in names:
            cls = services.SERVICES.get(name)
            if cls is None:
                print(f"run_with.py: unknown service {name}", file=sys.stderr)
                return 2
            svc = stack.enter_context(cls())
            env[f"IMCORE_TEST_{name.upper()}"] = svc.address
        try:
            return subprocess.run(argv[3:], env=env).returncode
        except OSError as e:
            print(f"run_with.py: {argv[3]}: {e.strerror}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
