#!/usr/bin/env python3
"""36-plugin-config: a plugin's typed config values (config_uint,
config_bool, config_duration_ms) through tests/plugins/echo_bot.so.

- Good values reach the plugin: 2m is 120000 ms, yes is true.
- Each bad value stops the server with exit 2 and FILE:LINE: plugin NAME:
  KEY: why; and --check-config finds it too, since the check runs every
  plugin's init (it used to answer ok for a config a plugin then refused).
- A list (config_list) reaches the plugin item by item, and an item the
  plugin refuses is named.
- A good config passes --check-config without starting anything."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imcore_harness import BASE_CONFIG, check, main, merge, to_yaml  # noqa: E402
from echo_chat import Chat, echo_config  # noqa: E402


def with_values(h, **values):
    cfg = echo_config(h)
    cfg["plugins"][0]["config"] = values
    return cfg


def test(h):
    srv = h.server(**with_values(h, delay="2m", limit=7, loud="yes", words=["heck", "darn"]))
    alice = Chat(h, srv, "alice")
    alice.say(":config")
    alice.expect("config delay_ms 120000 limit 7 loud 1 words heck+darn")
    srv.stop()

    bad = [
        ({"limit": "ten"}, "limit: must be a whole number between 1 and 1000, not 'ten'"),
        ({"limit": 0}, "limit: must be a whole number between 1 and 1000, not '0'"),
        ({"loud": "perhaps"}, "loud: must be true or false"),
        ({"delay": "5 minutes"}, "delay: must be a duration"),
        ({"delay": "2d"}, "delay: must be a duration"),
        ({"words": ["fine", "b4d"]}, "words: item 2, 'b4d', is not allowed here"),
    ]
    for i, (values, why) in enumerate(bad):
        path = h.write("bad-%d.yaml" % i, to_yaml(merge(BASE_CONFIG, with_values(h, **values))))
        key = next(iter(values))
        with open(path) as f:
            line = next(n for n, text in enumerate(f, 1) if text.strip().startswith(key + ":"))
        for extra in (["--check-config"], []):
            rc, out, err = h.run([h.server_path, "--config", path] + extra)
            check(rc == 2, "%s %s: exit %d, want 2 (%s)" % (values, extra, rc, err))
            want = "%s:%d: plugin echo_bot: %s" % (path, line, why)
            check(want in err, "%s %s: stderr %r lacks %r" % (values, extra, err, want))

    path = h.write("good.yaml", to_yaml(merge(BASE_CONFIG, with_values(h, limit=3))))
    rc, out, err = h.run([h.server_path, "--config", path, "--check-config"])
    check(rc == 0 and out.strip() == "%s: ok" % path, "a good config: %d %r %r" % (rc, out, err))


if __name__ == "__main__":
    main(test)
