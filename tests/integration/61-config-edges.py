#!/usr/bin/env python3
"""61-config-edges: imcore-server --check-config on files that are not what
a config should be.

- An empty file (or only comments) is valid, the defaults apply, and the
  server says so on stderr: exit 0.
- A binary file, or text that is not UTF-8: FILE:LINE of the bad byte, exit 2.
- 200,000 nested '[' (libyaml's scanner takes quadratic time over them: about
  a minute and a half in full): refused with FILE:LINE once the nesting
  passes the limit, exit 2, well within the harness's 10 s."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import check, main  # noqa: E402


def check_config(h, name, data):
    path = os.path.join(h.tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    rc, out, err = h.run([h.server_path, "--config", path, "--check-config"])
    return path, rc, out, err


def test(h):
    for i, text in enumerate((b"", b"# nothing here yet\n\n")):
        path, rc, out, err = check_config(h, "empty-%d.yaml" % i, text)
        check(rc == 0, "an empty config: exit %d (%s)" % (rc, err))
        check(out.strip() == "%s: ok" % path, "stdout %r" % out)
        check("WARN" in err and "%s is empty" % path in err and "default" in err,
              "an empty config is not reported: stderr %r" % err)

    # A config with keys says nothing of the kind.
    path, rc, out, err = check_config(h, "set.yaml", b"workers: 2\n")
    check(rc == 0 and "empty" not in err, "a config with a key: exit %d, %r" % (rc, err))

    with open(h.server_path, "rb") as f:
        binary = f.read(4096)
    path, rc, out, err = check_config(h, "binary.yaml", binary)
    check(rc == 2, "a binary file: exit %d" % rc)
    check(err.startswith("imcore-server: %s:1: " % path), "a binary file: %r" % err)

    path, rc, out, err = check_config(h, "latin1.yaml",
                                      b"workers: 2\n# r\xe9sum\xe9 of the settings\n")
    check(rc == 2, "latin-1 text: exit %d" % rc)
    check(err.startswith("imcore-server: %s:2: " % path), "latin-1 text: %r" % err)

    depth = 200000
    path, rc, out, err = check_config(h, "deep.yaml", b"workers: 2\n\nplugins: " +
                                      b"[" * depth + b"]" * depth + b"\n")
    check(rc == 2, "deep nesting: exit %d" % rc)
    check(err.startswith("imcore-server: %s:3: nested more than" % path),
          "deep nesting: %r" % err)


if __name__ == "__main__":
    main(test)
