/* tests/infrastructure/test_config.c: im_config_load and im_config_validate.
 *
 * Each case writes a small YAML file under /tmp, loads it and checks either
 * the values or the exact start of the error, "FILE:LINE: KEY: ", since that
 * is what a person editing the file relies on. A failed load must leave the
 * caller's record as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "im_config.h"
#include "im_log.h"
#include "imcore/errors.h"

#ifndef IMCORE_SOURCE_DIR
#error "IMCORE_SOURCE_DIR must name the source tree (it holds config/imcore.yaml)"
#endif

/* Writes text to a new file under /tmp, loads it into *c and removes it.
 * path gets the file's name, for checking messages. */
static int load_text(const char *text, im_config *c, im_error *err, char path[64])
{
    char tmpl[] = "/tmp/imcore-config-XXXXXX.yaml";
    int fd = mkstemps(tmpl, 5);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    int rc = im_config_load(tmpl, c, err);
    assert_int_equal(unlink(tmpl), 0);
    snprintf(path, 64, "%s", tmpl);
    return rc;
}

static void assert_config_equal(const im_config *a, const im_config *b)
{
    assert_string_equal(a->listen_host, b->listen_host);
    assert_int_equal(a->listen_port, b->listen_port);
    assert_int_equal(a->workers, b->workers);
    assert_string_equal(a->node_id, b->node_id);
    assert_int_equal(a->max_connections, b->max_connections);
    assert_int_equal(a->max_frame_bytes, b->max_frame_bytes);
    assert_int_equal(a->max_body_bytes, b->max_body_bytes);
    assert_int_equal(a->max_group_members, b->max_group_members);
    assert_int_equal(a->max_groups_per_user, b->max_groups_per_user);
    assert_int_equal(a->output_buffer_bytes, b->output_buffer_bytes);
    assert_int_equal(a->plugin_backlog, b->plugin_backlog);
    assert_int_equal(a->heartbeat_s, b->heartbeat_s);
    assert_int_equal(a->idle_timeout_s, b->idle_timeout_s);
    assert_int_equal(a->login_policy, b->login_policy);
    assert_int_equal(a->log_level, b->log_level);
    assert_string_equal(a->transport, b->transport);
    assert_string_equal(a->cluster, b->cluster);
}

/* Loads text, which must fail with IM_EINVAL and a message that starts with
 * "FILE:line: key: " and contains what. */
static void expect_error(const char *text, unsigned line, const char *key, const char *what)
{
    im_config c, before;
    im_config_defaults(&c);
    c.listen_port = 4242; /* a value no case writes: shows c was not touched */
    snprintf(c.node_id, sizeof c.node_id, "untouched");
    before = c;
    im_error err = { 0 };
    char path[64];
    int rc = load_text(text, &c, &err, path);
    if (rc != IM_EINVAL)
        fail_msg("load of <<%s>> returned %d (%s), not IM_EINVAL", text, rc, err.msg);
    assert_int_equal(err.code, IM_EINVAL);

    char want[160];
    snprintf(want, sizeof want, "%s:%u: %s: ", path, line, key);
    if (strncmp(err.msg, want, strlen(want)) != 0)
        fail_msg("message '%s' does not start with '%s'", err.msg, want);
    if (what != NULL && strstr(err.msg + strlen(want), what) == NULL)
        fail_msg("message '%s' does not say '%s'", err.msg, what);
    assert_config_equal(&c, &before);
}

/* Loads text, which must succeed; *c gets the result. */
static void expect_ok(const char *text, im_config *c)
{
    im_error err = { 0 };
    char path[64];
    im_config_defaults(c);
    int rc = load_text(text, c, &err, path);
    if (rc != 0)
        fail_msg("load of <<%s>> failed: %d %s", text, rc, err.msg);
}

/* listen as a list: each entry checked, the first also in listen_host and
 * listen_port; the mapping form leaves the list empty. */
static void test_listen_list(void **state)
{
    (void)state;
    im_config c;
    expect_ok("listen:\n"
              "  - transport: tcp\n"
              "    host: 127.0.0.1\n"
              "    port: 7000\n"
              "  - transport: tls\n"
              "    host: \"::\"\n"
              "    port: 7443\n"
              "    cert: /etc/chain.pem\n"
              "    key: /etc/key.pem\n"
              "    client_ca: /etc/ca.pem\n"
              "    max_connections: 50\n",
              &c);
    assert_int_equal(c.nlisteners, 2);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 7000);
    assert_string_equal(c.listeners[0].transport, "tcp");
    assert_int_equal(c.listeners[0].line, 2);
    assert_string_equal(c.listeners[1].transport, "tls");
    assert_string_equal(c.listeners[1].host, "::");
    assert_int_equal(c.listeners[1].port, 7443);
    assert_int_equal(c.listeners[1].max_connections, 50);
    assert_string_equal(c.listeners[1].cert, "/etc/chain.pem");
    assert_int_equal(c.listeners[1].cert_line, 8);
    assert_string_equal(c.listeners[1].key, "/etc/key.pem");
    assert_int_equal(c.listeners[1].key_line, 9);
    assert_string_equal(c.listeners[1].client_ca, "/etc/ca.pem");
    expect_ok("listen: {host: 127.0.0.1, port: 7001}\n", &c);
    assert_int_equal(c.nlisteners, 0);
    assert_int_equal(c.listen_port, 7001);

    expect_error("listen:\n  - {transport: ws, port: 1}\n", 2, "listen[0].transport",
                 "must be 'tcp' or 'tls'");
    expect_error("listen:\n  - {transport: tls, port: 1, cert: a.pem}\n", 2, "listen[0]",
                 "needs cert and key");
    expect_error("listen:\n  - {port: 1, key: k.pem}\n", 2, "listen[0]",
                 "cert, key and client_ca are for a tls listener");
    expect_error("listen:\n  - {host: 127.0.0.1}\n", 2, "listen[0]", "needs a port");
    expect_error("listen:\n  - {port: 70000}\n", 2, "listen[0].port", "0 to 65535");
    expect_error("listen:\n  - {port: 1, host: example.com}\n", 2, "listen[0].host",
                 "address literal");
    expect_error("listen:\n  - {port: 1, bogus: 2}\n", 2, "listen[0].bogus", "unknown key");
    expect_error("listen:\n  - {port: 9}\n  - {port: 9}\n", 3, "listen[1]",
                 "127.0.0.1:9 is already listened on (line 2)");
    expect_error("listen: []\n", 1, "listen", "an empty list");
    expect_error("listen:\n  - {port: 1}\n  - {port: 2}\n  - {port: 3}\n  - {port: 4}\n"
                 "  - {port: 5}\n", 6, "listen[4]", "at most 4 listeners");
}

static void test_defaults(void **state)
{
    (void)state;
    im_config c;
    memset(&c, 0xAB, sizeof c);
    im_config_defaults(&c);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 7000);
    assert_int_equal(c.workers, 0);
    assert_string_equal(c.node_id, "node-1");
    assert_int_equal(c.max_connections, 19000);
    assert_int_equal(c.max_frame_bytes, 65536);
    assert_int_equal(c.max_body_bytes, 8192);
    assert_int_equal(c.max_group_members, 1000);
    assert_int_equal(c.max_groups_per_user, 100);
    assert_int_equal(c.output_buffer_bytes, 4194304);
    assert_int_equal(c.plugin_backlog, 10000);
    assert_int_equal(c.heartbeat_s, 30);
    assert_int_equal(c.idle_timeout_s, 90);
    assert_int_equal(c.login_policy, 0);
    assert_int_equal(c.log_level, IM_LOG_INFO);

    im_error err = { 0 };
    assert_int_equal(im_config_validate(&c, &err), 0);
}

static void test_shipped_file_equals_defaults(void **state)
{
    (void)state;
    im_config loaded, defaults;
    im_error err = { 0 };
    im_config_defaults(&defaults);
    memset(&loaded, 0, sizeof loaded);
    int rc = im_config_load(IMCORE_SOURCE_DIR "/config/imcore.yaml", &loaded, &err);
    if (rc != 0)
        fail_msg("config/imcore.yaml: %s", err.msg);
    assert_config_equal(&loaded, &defaults);
}

static void test_every_key(void **state)
{
    (void)state;
    im_config c;
    expect_ok("listen:\n"
              "  host: \"::1\"\n"
              "  port: 0\n"
              "workers: 64\n"
              "node_id: eu-west_1.b\n"
              "limits: {max_connections: 1000000, max_frame_bytes: 16777216,\n"
              "         max_body_bytes: 16776704, max_group_members: 100000,\n"
              "         output_buffer_bytes: 4096, plugin_backlog: 1000000,\n"
              "         max_groups_per_user: 1000000}\n"
              "session:\n"
              "  heartbeat_s: 3600\n"
              "  idle_timeout_s: 86400\n"
              "  login_policy: 'reject'\n"
              "log_level: debug\n",
              &c);
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 0);
    assert_int_equal(c.workers, 64);
    assert_string_equal(c.node_id, "eu-west_1.b");
    assert_int_equal(c.max_connections, 1000000);
    assert_int_equal(c.max_frame_bytes, 16777216);
    assert_int_equal(c.max_body_bytes, 16776704);
    assert_int_equal(c.max_group_members, 100000);
    assert_int_equal(c.max_groups_per_user, 1000000);
    assert_int_equal(c.output_buffer_bytes, 4096);
    assert_int_equal(c.plugin_backlog, 1000000);
    assert_int_equal(c.heartbeat_s, 3600);
    assert_int_equal(c.idle_timeout_s, 86400);
    assert_int_equal(c.login_policy, 1);
    assert_int_equal(c.log_level, IM_LOG_DEBUG);

    /* The low ends of the ranges. */
    expect_ok("listen: {host: 0.0.0.0, port: 65535}\n"
              "limits: {max_connections: 1, max_frame_bytes: 513, max_body_bytes: 1,\n"
              "         max_group_members: 1, max_groups_per_user: 0}\n"
              "session: {heartbeat_s: 1, idle_timeout_s: 2}\n",
              &c);
    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_int_equal(c.listen_port, 65535);
    assert_int_equal(c.max_frame_bytes, 513);
    assert_int_equal(c.max_groups_per_user, 0);
    assert_int_equal(c.idle_timeout_s, 2);
}

static void test_partial_file_keeps_other_defaults(void **state)
{
    (void)state;
    im_config c, want;
    expect_ok("session:\n  login_policy: reject\nlog_level: WARN\n", &c);
    im_config_defaults(&want);
    want.login_policy = 1;
    want.log_level = IM_LOG_WARN;
    assert_config_equal(&c, &want);
}

static void test_empty_files_mean_defaults(void **state)
{
    (void)state;
    static const char *const empties[] = {
        "",
        "# only a comment\n\n",
        "---\n",
        "---\n...\n",
        "listen:\nlimits:\nsession: ~\n",
    };
    im_config c, want;
    im_config_defaults(&want);
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        memset(&c, 0, sizeof c);
        expect_ok(empties[i], &c);
        assert_config_equal(&c, &want);
        /* The server says so when nothing at all was set: the last one
         * names sections, so someone meant something. */
        if (c.empty != (i < 4))
            fail_msg("<<%s>>: empty is %d", empties[i], (int)c.empty);
    }
    expect_ok("workers: 2\n", &c);
    assert_false(c.empty);
}

static void test_unknown_keys(void **state)
{
    (void)state;
    expect_error("listen:\n  port: 7001\nbogus: 1\n", 3, "bogus", "unknown key");
    expect_error("limits:\n  max_connections: 5\n  max_frames: 9\n", 3, "limits.max_frames",
                 "unknown key");
    /* A nested key at the top level is not found by its last part. */
    expect_error("\n\nport: 7000\n", 3, "port", "unknown key");
    expect_error("session:\n  workers: 2\n", 2, "session.workers", "unknown key");
}

static void test_wrong_types(void **state)
{
    (void)state;
    expect_error("workers:\n  a: 1\n", 1, "workers", "expected a number, found a mapping");
    expect_error("node_id: [a, b]\n", 1, "node_id", "expected a string, found a sequence");
    expect_error("log_level: {x: 1}\n", 1, "log_level", "expected a string");
    expect_error("limits: 5\n", 1, "limits", "expected a mapping, found a scalar");
    /* listen may be a list of listeners, each a mapping. */
    expect_error("workers: 1\nlisten:\n  - host\n", 3, "listen[0]",
                 "expected a mapping with transport, host and port, found a scalar");
    expect_error("session:\n  heartbeat_s: {a: 1}\n", 2, "session.heartbeat_s", "expected a number");
    expect_error("? [a, b]\n: 1\n", 1, "top level", "a key must be a scalar");
}

static void test_out_of_range(void **state)
{
    (void)state;
    expect_error("session:\n  heartbeat_s: 0\n", 2, "session.heartbeat_s", "must be between 1 and 3600");
    expect_error("session:\n  heartbeat_s: 3601\n", 2, "session.heartbeat_s",
                 "must be between 1 and 3600");
    expect_error("limits:\n  max_frame_bytes: 63\n", 2, "limits.max_frame_bytes",
                 "must be between 64 and 16777216");
    expect_error("limits:\n  max_frame_bytes: 16777217\n", 2, "limits.max_frame_bytes",
                 "must be between 64 and 16777216");
    expect_error("limits:\n  max_connections: 0\n", 2, "limits.max_connections",
                 "must be between 1 and 1000000");
    expect_error("limits:\n  max_connections: 1000001\n", 2, "limits.max_connections",
                 "must be between 1 and 1000000");
    expect_error("limits:\n  output_buffer_bytes: 4095\n", 2, "limits.output_buffer_bytes",
                 "must be between 4096 and 1073741824");
    expect_error("limits:\n  max_group_members: 100001\n", 2, "limits.max_group_members",
                 "must be between 1 and 100000");
    expect_error("limits:\n  max_groups_per_user: 1000001\n", 2,
                 "limits.max_groups_per_user", "must be between 0 and 1000000");
    expect_error("limits:\n  plugin_backlog: 0\n", 2, "limits.plugin_backlog",
                 "must be between 1 and 1000000");
    expect_error("session:\n  idle_timeout_s: 86401\n", 2, "session.idle_timeout_s",
                 "must be between 1 and 86400");
    expect_error("listen:\n  port: 65536\n", 2, "listen.port", "must be between 0 and 65535");
    expect_error("workers: 65\n", 1, "workers", "must be between 0 and 64");
    expect_error("workers: -1\n", 1, "workers", "must be between 0 and 64");
    /* Far past 64 bits: still a range error, not a wrapped value. */
    expect_error("listen:\n  port: 184467440737095516160000\n", 2, "listen.port",
                 "must be between 0 and 65535");
}

static void test_not_a_number(void **state)
{
    (void)state;
    expect_error("workers: abc\n", 1, "workers", "not a number: 'abc'");
    expect_error("workers: 12abc\n", 1, "workers", "not a number: '12abc'");
    expect_error("workers: 0x10\n", 1, "workers", "not a number: '0x10'");
    expect_error("workers: 1.5\n", 1, "workers", "not a number: '1.5'");
    expect_error("workers: +3\n", 1, "workers", "not a number: '+3'");
    expect_error("listen:\n  port:\n", 2, "listen.port", "not a number: ''");
    expect_error("listen:\n  port: \"7000\"\n", 2, "listen.port", "expected a number");
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    expect_error("workers: 1\nnode_id: a\nworkers: 2\n", 3, "workers", "duplicate key (first on line 1)");
    expect_error("session:\n  heartbeat_s: 5\n  heartbeat_s: 6\n", 3, "session.heartbeat_s",
                 "duplicate key (first on line 2)");
    expect_error("limits:\n  max_connections: 5\nlimits:\n  max_group_members: 6\n", 3, "limits",
                 "duplicate key (first on line 1)");
}

static void test_bad_login_policy(void **state)
{
    (void)state;
    expect_error("session:\n  login_policy: kick\n", 2, "session.login_policy",
                 "must be 'replace' or 'reject', not 'kick'");
    expect_error("session:\n  login_policy: Replace\n", 2, "session.login_policy", "'replace' or 'reject'");
}

static void test_bad_log_level(void **state)
{
    (void)state;
    expect_error("log_level: loud\n", 1, "log_level", "must be debug, info, warn or error, not 'loud'");
    expect_error("log_level: 2\n", 1, "log_level", "not '2'");
}

static void test_bad_host(void **state)
{
    (void)state;
    expect_error("listen:\n  host: localhost\n", 2, "listen.host", "IPv4 or IPv6 address literal");
    expect_error("listen:\n  host: 256.0.0.1\n", 2, "listen.host", "IPv4 or IPv6");
    expect_error("listen:\n  host: ''\n", 2, "listen.host", "IPv4 or IPv6");
    expect_error("listen:\n  host: \"fe80::1%eth0\"\n", 2, "listen.host", "IPv4 or IPv6");
    expect_error("listen:\n  host: 1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd\n", 2,
                 "listen.host", "IPv4 or IPv6");
    expect_error("listen:\n  host: \"127.0.0.1\\0junk\"\n", 2, "listen.host", "NUL");
}

static void test_bad_node_id(void **state)
{
    (void)state;
    expect_error("node_id: 'a b'\n", 1, "node_id", "1 to 63 characters");
    expect_error("node_id: node/1\n", 1, "node_id", "1 to 63 characters");
    expect_error("node_id: ''\n", 1, "node_id", "1 to 63 characters");
    expect_error("node_id: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", 1, "node_id",
                 "1 to 63 characters");
    im_config c;
    expect_ok("node_id: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", &c);
    assert_int_equal(strlen(c.node_id), 63);
}

static void test_idle_must_exceed_heartbeat(void **state)
{
    (void)state;
    /* Both in the file: the message points at idle_timeout_s. */
    expect_error("session:\n  heartbeat_s: 60\n  idle_timeout_s: 60\n", 3, "session.idle_timeout_s",
                 "must be greater than session.heartbeat_s (60)");
    /* Only idle_timeout_s in the file, below the default heartbeat. */
    expect_error("session:\n  idle_timeout_s: 20\n", 2, "session.idle_timeout_s",
                 "must be greater than session.heartbeat_s (30)");
    /* Only heartbeat_s in the file: the message points at the line written. */
    expect_error("workers: 2\nsession:\n  heartbeat_s: 90\n", 3, "session.heartbeat_s",
                 "must be less than session.idle_timeout_s (90)");
}

/* Limits on clients that have not logged in: ranges, defaults, and no
 * more unauthenticated slots than slots. */
static void test_limits_before_login(void **state)
{
    (void)state;
    im_config c;
    im_config_defaults(&c);
    assert_int_equal(c.login_timeout_s, 10);
    assert_int_equal(c.frame_timeout_s, 30);
    assert_int_equal(c.max_unauthenticated, 0);
    assert_int_equal(c.max_unauth_per_address, 1000);
    assert_int_equal(c.input_budget_bytes, 67108864);
    assert_int_equal(c.accounts_max_registrations, 100);
    expect_ok("session: {login_timeout_s: 3600, frame_timeout_s: 1}\n"
              "limits: {max_connections: 10, max_unauthenticated: 10,\n"
              "         max_unauthenticated_per_address: 1, input_buffer_bytes: 65536}\n"
              "accounts: {max_registrations: 0}\n",
              &c);
    assert_int_equal(c.login_timeout_s, 3600);
    assert_int_equal(c.frame_timeout_s, 1);
    assert_int_equal(c.max_unauthenticated, 10);
    assert_int_equal(c.max_unauth_per_address, 1);
    assert_int_equal(c.input_budget_bytes, 65536);
    assert_int_equal(c.accounts_max_registrations, 0);
    expect_error("session:\n  login_timeout_s: 0\n", 2, "session.login_timeout_s",
                 "must be between 1 and 3600");
    expect_error("session:\n  frame_timeout_s: 3601\n", 2, "session.frame_timeout_s",
                 "must be between 1 and 3600");
    expect_error("limits:\n  input_buffer_bytes: 65535\n", 2, "limits.input_buffer_bytes",
                 "must be between 65536 and 4294967295");
    expect_error("limits:\n  max_unauthenticated_per_address: 0\n", 2,
                 "limits.max_unauthenticated_per_address", "must be between 1 and 1000000");
    expect_error("limits:\n  max_connections: 10\n  max_unauthenticated: 11\n", 3,
                 "limits.max_unauthenticated", "must be at most limits.max_connections (10)");
    /* 0, the default, is half of max_connections: any max_connections fits. */
    expect_ok("limits:\n  max_connections: 1\n", &c);
}

static void test_body_must_fit_frame(void **state)
{
    (void)state;
    /* A Delivery of a 65280-byte body with ids, names and numbers at their
     * largest does not fit a 65536-byte frame: the margin is 512. */
    expect_error("limits:\n  max_body_bytes: 65280\n", 2, "limits.max_body_bytes",
                 "must be at most limits.max_frame_bytes - 512 (65024)");
    expect_error("limits:\n  max_body_bytes: 65025\n", 2, "limits.max_body_bytes",
                 "must be at most limits.max_frame_bytes - 512 (65024)");
    expect_error("limits:\n  max_frame_bytes: 8448\n", 2, "limits.max_frame_bytes",
                 "must be at least limits.max_body_bytes + 512 (8704)");
    im_config c;
    expect_ok("limits:\n  max_body_bytes: 65024\n", &c);
    assert_int_equal(c.max_body_bytes, 65024);
    expect_ok("limits:\n  max_frame_bytes: 8704\n", &c);
    assert_int_equal(c.max_frame_bytes, 8704);
}

/* A syntax error: the line and the text are libyaml's. */
static void test_syntax_error(void **state)
{
    (void)state;
    const struct {
        const char *text;
        unsigned line;
        const char *problem;
    } cases[] = {
        { "workers: 1\nlog_level: info\n  bad: indent\n", 3, "mapping values are not allowed" },
        { "workers: 1\nnode_id: 'open\n", 3, "found unexpected end of stream" },
        { "listen:\n  host: 127.0.0.1\n port: 1\n", 3, "did not find expected key" },
        { "limits: {max_connections: 5\n", 2, "did not find expected ',' or '}'" },
        { "workers: *nowhere\n", 1, "found undefined alias" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        im_config c;
        im_error err = { 0 };
        char path[64], want[128];
        im_config_defaults(&c);
        assert_int_equal(load_text(cases[i].text, &c, &err, path), IM_EINVAL);
        snprintf(want, sizeof want, "%s:%u: %s", path, cases[i].line, cases[i].problem);
        if (strncmp(err.msg, want, strlen(want)) != 0)
            fail_msg("case %zu: message '%s' does not start with '%s'", i, err.msg, want);
    }
}

/* Loads text, which must fail with IM_EINVAL and a message that starts
 * with "FILE:line: " and contains what. */
static void expect_line_error(const char *text, unsigned line, const char *what)
{
    im_config c;
    im_error err = { 0 };
    char path[64], want[128];
    im_config_defaults(&c);
    int rc = load_text(text, &c, &err, path);
    if (rc != IM_EINVAL)
        fail_msg("load returned %d (%s), not IM_EINVAL", rc, err.msg);
    snprintf(want, sizeof want, "%s:%u: ", path, line);
    if (strncmp(err.msg, want, strlen(want)) != 0)
        fail_msg("message '%s' does not start with '%s'", err.msg, want);
    if (strstr(err.msg, what) == NULL)
        fail_msg("message '%s' does not say '%s'", err.msg, what);
}

/* A binary file, or text that is not UTF-8: the line of the bad byte, as
 * for any other mistake, and the byte. */
static void test_not_text_names_its_line(void **state)
{
    (void)state;
    expect_line_error("\x7f" "ELF\x02\x01\x01\x03", 1, "control characters are not allowed");
    expect_line_error("workers: 1\nlog_level: info\nnode_id: caf\xe9\n", 3,
                      "(byte 39)");
    expect_line_error("listen:\n  port: 1\n\n\n  host: \x01\n", 5, "control characters");
}

/* Tens of thousands of nested '[' took quadratic time in libyaml's scanner
 * (seconds at 20,000, minutes at 200,000). The nesting is refused once it
 * passes IM_CONFIG_MAX_DEPTH, where it starts, before the rest is read: the
 * file below never closes its brackets, and the message is about depth, not
 * about the end of the stream that a full parse would have reached. */
static void test_deep_nesting_refused_early(void **state)
{
    (void)state;
    size_t depth = 20000;
    const char *head = "workers: 1\nlog_level: info\nplugins: ";
    char *text = malloc(strlen(head) + depth + 1);
    assert_non_null(text);
    strcpy(text, head);
    memset(text + strlen(head), '[', depth);
    text[strlen(head) + depth] = '\0';
    expect_line_error(text, 3, "nested more than 16 levels deep");
    /* Blocks nest too: a mapping per line, the level too many on line 17. */
    char *p = text;
    for (unsigned i = 0; i < 40; i++)
        p += sprintf(p, "%*sk%u:\n", (int)(2 * i), "", i);
    expect_line_error(text, 17, "nested more than 16 levels deep");
    free(text);

    /* The deepest a valid file goes: a plugin's config (level 4) with 12
     * levels of its own is 16 in all, and loads. */
    char ok[1024];
    p = ok;
    p += sprintf(p, "plugins:\n  - name: deep\n    config:\n");
    for (unsigned i = 0; i < 12; i++)
        p += sprintf(p, "%*sa:\n", (int)(6 + 2 * i), "");
    p += sprintf(p, "%*sa: 1\n", 6 + 2 * 12, "");
    im_config c;
    expect_ok(ok, &c);
    assert_int_equal(c.nplugins, 1);
    assert_string_equal(c.plugins[0].settings[0].key, "a.a.a.a.a.a.a.a.a.a.a.a.a");
    /* One more level is refused, on the line where it starts. */
    p = ok + strlen(ok) - strlen("a: 1\n");
    sprintf(p, "a:\n%*sa: 1\n", 6 + 2 * 13, "");
    expect_line_error(ok, 17, "nested more than 16 levels deep");
}

static void test_top_level_must_be_mapping(void **state)
{
    (void)state;
    static const char *const texts[] = { "- a\n- b\n", "just words\n", "\n\n'quoted'\n" };
    static const unsigned lines[] = { 1, 1, 3 };
    for (size_t i = 0; i < 3; i++) {
        im_config c;
        im_error err = { 0 };
        char path[64], want[128];
        assert_int_equal(load_text(texts[i], &c, &err, path), IM_EINVAL);
        snprintf(want, sizeof want, "%s:%u: expected a mapping at the top level", path, lines[i]);
        if (strncmp(err.msg, want, strlen(want)) != 0)
            fail_msg("message '%s' does not start with '%s'", err.msg, want);
    }
}

static void test_one_document_only(void **state)
{
    (void)state;
    im_config c;
    im_error err = { 0 };
    char path[64], want[128];
    assert_int_equal(load_text("workers: 1\n---\nworkers: 2\n", &c, &err, path), IM_EINVAL);
    snprintf(want, sizeof want, "%s:3: only one YAML document is allowed", path);
    assert_string_equal(err.msg, want);
    /* A syntax error in a second document is still a syntax error. */
    assert_int_equal(load_text("workers: 1\n---\n[\n", &c, &err, path), IM_EINVAL);
}

static void test_cannot_open(void **state)
{
    (void)state;
    im_config c, before;
    im_config_defaults(&c);
    before = c;
    im_error err = { 0 };
    assert_int_equal(im_config_load("/tmp/imcore-no-such-dir/x.yaml", &c, &err), IM_EIO);
    assert_int_equal(err.code, IM_EIO);
    assert_string_equal(err.msg, "/tmp/imcore-no-such-dir/x.yaml: cannot open: No such file or directory");
    assert_int_equal(im_config_load("/tmp", &c, &err), IM_EIO);
    assert_string_equal(err.msg, "/tmp: cannot open: Is a directory");
    assert_config_equal(&c, &before);
    /* err is optional. */
    assert_int_equal(im_config_load("/tmp/imcore-no-such-dir/x.yaml", &c, NULL), IM_EIO);
    char path[64];
    assert_int_equal(load_text("workers: x\n", &c, NULL, path), IM_EINVAL);
}

/* validate: the same rules for values set after loading, without FILE:LINE. */
static void expect_invalid(const im_config *c, const char *msg)
{
    im_error err = { 0 };
    assert_int_equal(im_config_validate(c, &err), IM_EINVAL);
    assert_int_equal(err.code, IM_EINVAL);
    assert_string_equal(err.msg, msg);
}

static void test_validate(void **state)
{
    (void)state;
    im_config c;

    im_config_defaults(&c);
    c.idle_timeout_s = 30;
    expect_invalid(&c, "session.idle_timeout_s: must be greater than session.heartbeat_s (30)");

    im_config_defaults(&c);
    c.max_frame_bytes = 1024;
    expect_invalid(&c, "limits.max_body_bytes: must be at most limits.max_frame_bytes - 512 (512)");

    im_config_defaults(&c);
    c.heartbeat_s = 0;
    expect_invalid(&c, "session.heartbeat_s: must be between 1 and 3600");

    im_config_defaults(&c);
    c.max_frame_bytes = 16777217;
    expect_invalid(&c, "limits.max_frame_bytes: must be between 64 and 16777216");

    im_config_defaults(&c);
    c.workers = 65;
    expect_invalid(&c, "workers: must be between 0 and 64");

    im_config_defaults(&c);
    snprintf(c.listen_host, sizeof c.listen_host, "example.com");
    expect_invalid(&c, "listen.host: must be an IPv4 or IPv6 address literal (names are not resolved), "
                       "not 'example.com'");

    im_config_defaults(&c);
    memset(c.node_id, 'a', sizeof c.node_id);
    expect_invalid(&c, "node_id: is not NUL-terminated");

    im_config_defaults(&c);
    c.node_id[0] = '\0';
    expect_invalid(&c, "node_id: must be 1 to 63 characters of A-Z a-z 0-9 _ . -, not ''");

    im_config_defaults(&c);
    c.login_policy = 2;
    expect_invalid(&c, "session.login_policy: must be 0 (replace) or 1 (reject), not 2");

    im_config_defaults(&c);
    c.log_level = 7;
    expect_invalid(&c, "log_level: must be an im_log_level (0 to 3), not 7");

    im_config_defaults(&c);
    c.listen_port = 0;
    c.max_frame_bytes = 1024;
    c.max_body_bytes = 512;
    c.login_policy = 1;
    c.log_level = IM_LOG_ERROR;
    snprintf(c.listen_host, sizeof c.listen_host, "::");
    assert_int_equal(im_config_validate(&c, NULL), 0);
    c.heartbeat_s = 100;
    assert_int_equal(im_config_validate(&c, NULL), IM_EINVAL);
}

static void test_storage_and_accounts(void **state)
{
    (void)state;
    im_config c;
    im_error err;
    char path[64];
    assert_int_equal(load_text("storage:\n  engine: memory\n  max_batch: 1\n"
                               "accounts:\n  mode: open\n  password_hash: min\n"
                               "limits:\n  messages_per_second: 0\n", &c, &err, path), IM_OK);
    assert_string_equal(c.storage_engine, "memory");
    assert_int_equal(c.storage_engine_line, 2);
    assert_int_equal(c.storage_max_batch, 1);
    assert_int_equal(c.accounts_mode, IM_ACCOUNTS_OPEN);
    assert_int_equal(c.accounts_hash_cost, 2);
    assert_int_equal(c.send_rate, 0);
    assert_int_equal(load_text("storage:\n  path: /var/lib/imcore/im.db\n"
                               "  synchronous: normal\n", &c, &err, path), IM_OK);
    assert_string_equal(c.storage_path, "/var/lib/imcore/im.db");
    assert_int_equal(c.storage_synchronous, IM_STORAGE_SYNC_NORMAL);
    assert_int_equal(c.storage_check, IM_STORAGE_CHECK_QUICK);
    assert_int_equal(load_text("storage:\n  check_on_start: none\n", &c, &err, path), IM_OK);
    assert_int_equal(c.storage_check, IM_STORAGE_CHECK_NONE);
    expect_error("storage:\n  engine: sqlite\n  check_on_start: full\n", 3,
                 "storage.check_on_start", "must be 'quick' or 'none'");
    /* Any engine may be named (its adapter is looked for at start), and its
     * own keys go under options, flattened for it with their lines. */
    assert_int_equal(load_text("accounts:\n  mode: open\nstorage:\n  engine: postgres\n"
                               "  options:\n    dsn: host=db\n    pool:\n      size: 8\n",
                               &c, &err, path), IM_OK);
    assert_string_equal(c.storage_engine, "postgres");
    assert_int_equal(c.storage_engine_line, 4);
    assert_int_equal(c.storage_options.nsettings, 2);
    assert_string_equal(c.storage_options.settings[0].key, "options.dsn");
    assert_string_equal(c.storage_options.settings[0].value, "host=db");
    assert_int_equal(c.storage_options.settings[0].line, 6);
    assert_string_equal(c.storage_options.settings[1].key, "options.pool.size");
    /* The postgres engine's keys: storage.postgres, handed over as
     * postgres.*, their names and numbers checked here too. */
    assert_int_equal(load_text("accounts:\n  mode: open\nstorage:\n  engine: postgres\n"
                               "  postgres:\n    host: db\n    port: 5433\n"
                               "    connect_timeout_s: 2\n", &c, &err, path), IM_OK);
    assert_int_equal(c.storage_options.nsettings, 3);
    assert_string_equal(c.storage_options.settings[1].key, "postgres.port");
    assert_string_equal(c.storage_options.settings[1].value, "5433");
    assert_int_equal(c.storage_options.settings[1].line, 7);
    expect_error("accounts:\n  mode: open\nstorage:\n  engine: postgres\n  postgres:\n"
                 "    port: 70000\n", 6, "storage.postgres.port", "between 1 and 65535");
    expect_error("accounts:\n  mode: open\nstorage:\n  engine: postgres\n  postgres:\n"
                 "    statement_timeout_ms: -1\n", 6, "storage.postgres.statement_timeout_ms",
                 "must be a number");
    expect_error("accounts:\n  mode: open\nstorage:\n  engine: postgres\n  postgres:\n"
                 "    dsn: x\n", 6, "storage.postgres.dsn", "unknown key");
    expect_error("storage:\n  engine: sqlite\n  postgres:\n    host: db\n", 3,
                 "storage.postgres", "is for storage.engine postgres");
    expect_error("storage:\n  engine: ../evil\n", 2, "storage.engine",
                 "must be 1 to 63 characters");
    expect_error("storage:\n  options: 3\n", 2, "storage.options", "expected a mapping");
    expect_error("storage:\n  options:\n    - a\n", 2, "storage.options",
                 "expected a mapping");
    expect_error("storage:\n  path: \"\"\n", 2, "storage.path", "must be a path");
    expect_error("storage:\n  max_batch: 0\n", 2, "storage.max_batch", "must be between 1");
    expect_error("accounts:\n  password_hash: weak\n", 2, "accounts.password_hash",
                 "must be 'interactive' or 'moderate' or 'min'");
    /* Tokens kept per user: 10 unless set, at least 1. */
    assert_int_equal(load_text("workers: 1\n", &c, &err, path), IM_OK);
    assert_int_equal(c.accounts_max_tokens, 10);
    assert_int_equal(load_text("accounts:\n  max_tokens_per_user: 1\n", &c, &err, path), IM_OK);
    assert_int_equal(c.accounts_max_tokens, 1);
    expect_error("accounts:\n  max_tokens_per_user: 0\n", 2, "accounts.max_tokens_per_user",
                 "must be between 1 and 1000");
    /* Accounts live in the storage engine, which says whether it keeps
     * them once open (the server's start): the config takes any engine,
     * and keeps the line of accounts.mode for that message. */
    assert_int_equal(load_text("storage:\n  engine: memory\n", &c, &err, path), IM_OK);
    assert_int_equal(c.accounts_mode, IM_ACCOUNTS_PASSWORD);
    assert_int_equal(c.accounts_mode_line, 0);
    assert_int_equal(load_text("storage:\n  engine: memory\naccounts:\n  mode: password\n", &c,
                               &err, path), IM_OK);
    assert_int_equal(c.accounts_mode_line, 4);
}

/* cluster_options: the cluster adapter's own keys, flattened as options.*
 * with their lines (the adapter checks their values: cluster_chat.py). */
static void test_cluster_options(void **state)
{
    (void)state;
    im_config c;
    im_error err;
    char path[64];
    im_config_defaults(&c);
    assert_int_equal(c.cluster_options.nsettings, 0);
    assert_int_equal(load_text("cluster: redis\ncluster_options:\n  redis:\n    host: 10.0.0.9\n"
                               "    port: 6380\n  advertise: 203.0.113.7:7000\n",
                               &c, &err, path), IM_OK);
    assert_string_equal(c.cluster, "redis");
    assert_int_equal(c.cluster_options.nsettings, 3);
    assert_string_equal(c.cluster_options.settings[0].key, "options.redis.host");
    assert_string_equal(c.cluster_options.settings[0].value, "10.0.0.9");
    assert_int_equal(c.cluster_options.settings[0].line, 4);
    assert_string_equal(c.cluster_options.settings[1].key, "options.redis.port");
    assert_int_equal(c.cluster_options.settings[1].line, 5);
    assert_string_equal(c.cluster_options.settings[2].key, "options.advertise");
    assert_int_equal(c.transport_options.nsettings, 0);
    expect_error("cluster_options: 3\n", 1, "cluster_options", "expected a mapping");
    expect_error("cluster_options:\n  a: 1\ncluster_options:\n  b: 2\n", 3,
                 "cluster_options", "duplicate key");
    expect_error("cluster_options:\n  a: 1\n  a: 2\n", 3, "cluster_options.a",
                 "duplicate key");
}

static void test_transport(void **state)
{
    (void)state;
    im_config c;
    im_error err;
    char path[64];
    /* The default: the built-in TCP transport, not written in the file. */
    im_config_defaults(&c);
    assert_string_equal(c.transport, "tcp");
    assert_int_equal(c.transport_line, 0);
    assert_int_equal(c.transport_options.nsettings, 0);
    assert_int_equal(load_text("workers: 2\n", &c, &err, path), IM_OK);
    assert_string_equal(c.transport, "tcp");
    assert_int_equal(c.transport_line, 0);
    /* Any name may be given (its adapter is looked for at start), with its
     * line; its own keys are flattened as options.* with their lines. */
    assert_int_equal(load_text("workers: 2\ntransport: quic.v1-x_2\n"
                               "transport_options:\n  cert: /etc/im.pem\n"
                               "  tls:\n    min_version: 1.3\n", &c, &err, path), IM_OK);
    assert_string_equal(c.transport, "quic.v1-x_2");
    assert_int_equal(c.transport_line, 2);
    assert_int_equal(c.transport_options.nsettings, 2);
    assert_string_equal(c.transport_options.settings[0].key, "options.cert");
    assert_string_equal(c.transport_options.settings[0].value, "/etc/im.pem");
    assert_int_equal(c.transport_options.settings[0].line, 4);
    assert_string_equal(c.transport_options.settings[1].key, "options.tls.min_version");
    assert_string_equal(c.transport_options.settings[1].value, "1.3");
    assert_int_equal(c.transport_options.settings[1].line, 6);
    /* Storage's options stay storage's. */
    assert_int_equal(c.storage_options.nsettings, 0);
    expect_error("transport: ../evil\n", 1, "transport", "must be 1 to 63 characters");
    expect_error("transport: \"\"\n", 1, "transport", "must be 1 to 63 characters");
    expect_error("transport:\n  name: tcp\n", 1, "transport", "expected a string");
    expect_error("transport: tcp\ntransport: tcp\n", 2, "transport", "duplicate key");
    expect_error("transport_options: 3\n", 1, "transport_options", "expected a mapping");
    expect_error("transport_options:\n  a: 1\ntransport_options:\n  b: 2\n", 3,
                 "transport_options", "duplicate key");
    expect_error("transport_options:\n  a: 1\n  a: 2\n", 3, "transport_options.a",
                 "duplicate key");
    expect_error("transport_options:\n  ports: [1, {a: 2}]\n", 2, "transport_options.ports",
                 "a list item must be a scalar, not a mapping");
}

static void test_cluster(void **state)
{
    (void)state;
    im_config c;
    im_error err;
    char path[64];
    im_config_defaults(&c);
    assert_string_equal(c.cluster, "none");
    assert_int_equal(c.cluster_line, 0);
    assert_int_equal(load_text("workers: 2\ncluster: redis\n", &c, &err, path), IM_OK);
    assert_string_equal(c.cluster, "redis");
    assert_int_equal(c.cluster_line, 2);
    expect_error("cluster: a/b\n", 1, "cluster", "must be 1 to 63 characters");
    expect_error("cluster:\n  - redis\n", 1, "cluster", "expected a string");
}

static void test_plugins_list(void **state)
{
    (void)state;
    im_config c;
    im_error err;
    char path[64];
    assert_int_equal(load_text("plugin_dir: /opt/imcore/plugins\n"
                               "plugins:\n"
                               "  - name: word_filter\n"
                               "    config:\n"
                               "      words: \"a, b\"\n"
                               "      limits:\n"
                               "        max: 3\n"
                               "  - name: echo\n"
                               "    path: /tmp/echo.so\n", &c, &err, path), IM_OK);
    assert_string_equal(c.plugin_dir, "/opt/imcore/plugins");
    assert_int_equal(c.nplugins, 2);
    assert_string_equal(c.plugins[0].name, "word_filter");
    assert_int_equal(c.plugins[0].line, 3);
    assert_int_equal(c.plugins[0].nsettings, 2);
    assert_string_equal(c.plugins[0].settings[0].key, "words");
    assert_string_equal(c.plugins[0].settings[0].value, "a, b");
    assert_string_equal(c.plugins[0].settings[1].key, "limits.max");
    assert_int_equal(c.plugins[0].settings[1].line, 7);
    assert_string_equal(c.plugins[1].path, "/tmp/echo.so");
    expect_error("plugins:\n  - path: /x.so\n", 2, "plugins[0]", "a plugin entry needs a name");
    expect_error("plugins:\n  - name: a\n  - name: a\n", 3, "plugins[1]", "listed twice");
    expect_error("plugins:\n  - name: a\n    colour: red\n", 3, "plugins[0].colour",
                 "unknown key");
    expect_error("plugins:\n  - name: bad/name\n", 2, "plugins[0].name", "must be 1 to 63");
    expect_error("plugins:\n  - name: a\n    config:\n      words: [a, \"b,c\"]\n", 4,
                 "plugins[0].config.words", "the item 'b,c' holds a comma");
    expect_error("plugins:\n  - name: a\n    config:\n      words:\n        - a\n"
                 "        - [b]\n", 6, "plugins[0].config.words",
                 "a list item must be a scalar, not a sequence");

    /* A list is the one comma-separated string the plugin reads. */
    assert_int_equal(load_text("plugins:\n"
                               "  - name: word_filter\n"
                               "    config:\n"
                               "      words: [heck, darn]\n"
                               "      more:\n"
                               "        - oh no\n"
                               "        - 3\n"
                               "      none: []\n", &c, &err, path), IM_OK);
    assert_int_equal(c.plugins[0].nsettings, 3);
    assert_string_equal(c.plugins[0].settings[0].value, "heck, darn");
    assert_string_equal(c.plugins[0].settings[1].value, "oh no, 3");
    assert_int_equal(c.plugins[0].settings[1].line, 5);
    assert_string_equal(c.plugins[0].settings[2].value, "");
    char long_list[600] = "plugins:\n  - name: a\n    config:\n      words: [";
    for (int i = 0; i < 60; i++)
        strcat(long_list, i ? ", word" : "word");
    strcat(long_list, "]\n");
    expect_error(long_list, 4, "plugins[0].config.words", "the list is longer than 255 bytes");
    expect_error("plugins: yes\n", 1, "plugins", "expected a list of plugins");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plugins_list),
        cmocka_unit_test(test_transport),
        cmocka_unit_test(test_cluster_options),
        cmocka_unit_test(test_listen_list),
        cmocka_unit_test(test_cluster),
        cmocka_unit_test(test_storage_and_accounts),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_limits_before_login),
        cmocka_unit_test(test_shipped_file_equals_defaults),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_partial_file_keeps_other_defaults),
        cmocka_unit_test(test_empty_files_mean_defaults),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_not_a_number),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_bad_login_policy),
        cmocka_unit_test(test_bad_log_level),
        cmocka_unit_test(test_bad_host),
        cmocka_unit_test(test_bad_node_id),
        cmocka_unit_test(test_idle_must_exceed_heartbeat),
        cmocka_unit_test(test_body_must_fit_frame),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_not_text_names_its_line),
        cmocka_unit_test(test_deep_nesting_refused_early),
        cmocka_unit_test(test_top_level_must_be_mapping),
        cmocka_unit_test(test_one_document_only),
        cmocka_unit_test(test_cannot_open),
        cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
