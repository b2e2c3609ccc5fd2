/* tests/infrastructure/test_log.c: the logger's line format, filtering and
 * thread safety, read back through a pipe given to im_log_set_fd. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "im_log.h"
#include "imcore/errors.h"

struct pipe_fixture {
    int rd, wr;
};

static int setup(void **state)
{
    static struct pipe_fixture p;
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    p.rd = fds[0];
    p.wr = fds[1];
    /* Reading an empty pipe must say "nothing" rather than block the test. */
    fcntl(p.rd, F_SETFL, fcntl(p.rd, F_GETFL) | O_NONBLOCK);
    im_log_set_fd(p.wr);
    im_log_set_level(IM_LOG_INFO);
    im_log_set_thread_name(NULL);
    *state = &p;
    return 0;
}

static int teardown(void **state)
{
    struct pipe_fixture *p = *state;
    im_log_set_fd(-1);
    im_log_set_level(IM_LOG_INFO);
    im_log_set_thread_name(NULL);
    close(p->rd);
    close(p->wr);
    return 0;
}

/* Everything in the pipe so far, NUL-terminated, into buf. */
static size_t drain(const struct pipe_fixture *p, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = read(p->rd, buf + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

static void assert_matches(const char *text, const char *pattern)
{
    regex_t re;
    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    int rc = regexec(&re, text, 0, NULL, 0);
    regfree(&re);
    if (rc != 0)
        fail_msg("'%s' does not match /%s/", text, pattern);
}

#define STAMP "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "

static void test_line_format(void **state)
{
    char buf[4096];
    IM_INFO("hello %s %d", "world", 42);
    drain(*state, buf, sizeof buf);
    assert_matches(buf, STAMP "INFO  \\[main\\] hello world 42\n$");

    IM_WARN("w");
    drain(*state, buf, sizeof buf);
    assert_matches(buf, STAMP "WARN  \\[main\\] w\n$");

    IM_ERROR("e");
    drain(*state, buf, sizeof buf);
    assert_matches(buf, STAMP "ERROR \\[main\\] e\n$");

    im_log_set_level(IM_LOG_DEBUG);
    IM_DEBUG("d");
    drain(*state, buf, sizeof buf);
    assert_matches(buf, STAMP "DEBUG \\[main\\] d\n$");
}

static void test_timestamp_is_utc_now(void **state)
{
    char buf[4096];
    time_t before = time(NULL);
    IM_INFO("t");
    time_t after = time(NULL);
    drain(*state, buf, sizeof buf);
    struct tm tm = { 0 };
    char *rest = strptime(buf, "%Y-%m-%dT%H:%M:%S", &tm);
    assert_non_null(rest);
    time_t logged = timegm(&tm);
    assert_true(logged >= before && logged <= after);
}

static int evaluated;
static int count_call(void)
{
    return ++evaluated;
}

static void test_level_filtering(void **state)
{
    char buf[4096];
    im_log_set_level(IM_LOG_WARN);
    assert_int_equal(im_log_get_level(), IM_LOG_WARN);
    evaluated = 0;
    IM_DEBUG("debug %d", count_call());
    IM_INFO("info %d", count_call());
    /* A filtered event costs no formatting: its arguments are not evaluated. */
    assert_int_equal(evaluated, 0);
    assert_int_equal(drain(*state, buf, sizeof buf), 0);

    IM_WARN("warn %d", count_call());
    IM_ERROR("error %d", count_call());
    assert_int_equal(evaluated, 2);
    drain(*state, buf, sizeof buf);
    assert_null(strstr(buf, "debug"));
    assert_null(strstr(buf, "info"));
    assert_non_null(strstr(buf, "WARN  [main] warn 1\n"));
    assert_non_null(strstr(buf, "ERROR [main] error 2\n"));

    /* The function checks the level too, for callers that skip the macros. */
    im_log(IM_LOG_INFO, "direct");
    assert_int_equal(drain(*state, buf, sizeof buf), 0);
    assert_false(IM_LOG_ENABLED(IM_LOG_INFO));
    assert_true(IM_LOG_ENABLED(IM_LOG_ERROR));
}

static void test_set_level_clamps(void **state)
{
    (void)state;
    im_log_set_level((im_log_level)99);
    assert_int_equal(im_log_get_level(), IM_LOG_ERROR);
    im_log_set_level((im_log_level)-5);
    assert_int_equal(im_log_get_level(), IM_LOG_DEBUG);
}

static void test_level_parse_and_name(void **state)
{
    (void)state;
    static const char *const names[] = { "debug", "info", "warn", "error" };
    for (int i = IM_LOG_DEBUG; i <= IM_LOG_ERROR; i++) {
        im_log_level lvl = (im_log_level)-1;
        assert_int_equal(im_log_level_parse(names[i], &lvl), 0);
        assert_int_equal(lvl, i);
        assert_string_equal(im_log_level_name((im_log_level)i), names[i]);
    }
    im_log_level lvl = IM_LOG_WARN;
    assert_int_equal(im_log_level_parse("ERROR", &lvl), 0);
    assert_int_equal(lvl, IM_LOG_ERROR);

    lvl = IM_LOG_WARN;
    assert_int_equal(im_log_level_parse("verbose", &lvl), IM_EINVAL);
    assert_int_equal(im_log_level_parse("", &lvl), IM_EINVAL);
    assert_int_equal(im_log_level_parse("info ", &lvl), IM_EINVAL);
    assert_int_equal(im_log_level_parse(NULL, &lvl), IM_EINVAL);
    assert_int_equal(lvl, IM_LOG_WARN); /* untouched on error */
    assert_string_equal(im_log_level_name((im_log_level)17), "unknown");
}

static void test_newlines_are_escaped(void **state)
{
    char buf[4096];
    IM_INFO("one\ntwo\r\nthree\n");
    drain(*state, buf, sizeof buf);
    assert_matches(buf, STAMP "INFO  \\[main\\] one\\\\x0atwo\\\\x0d\\\\x0athree\\\\x0a\n$");
    assert_int_equal(strchr(buf, '\n') - buf, (ptrdiff_t)strlen(buf) - 1);
}

/* What a client sends can hold anything: a terminal escape sequence, a bell,
 * bytes that are not UTF-8, C1 controls. The line holds printable ASCII
 * only, each other byte as \xNN, a backslash doubled so that an escape in
 * the line is never one the client typed. */
static void test_every_non_text_byte_is_escaped(void **state)
{
    char buf[4096];
    IM_WARN("login as '%s' refused", "evil\x1b[2J\x1b]0;owned\x07\x9b" "31m\x7f\\x1b caf\xc3\xa9");
    drain(*state, buf, sizeof buf);
    const char *msg = strstr(buf, "] ") + 2;
    assert_string_equal(msg, "login as 'evil\\x1b[2J\\x1b]0;owned\\x07\\x9b31m\\x7f\\\\x1b "
                             "caf\\xc3\\xa9' refused\n");

    /* Every byte 1..255 in one message: the line is printable ASCII and one
     * '\n', and reads back as what was logged. */
    char all[256];
    for (int i = 1; i < 256; i++)
        all[i - 1] = (char)i;
    all[255] = '\0';
    IM_INFO("%s", all);
    size_t len = drain(*state, buf, sizeof buf);
    for (size_t i = 0; i + 1 < len; i++)
        if (buf[i] < 0x20 || buf[i] > 0x7e)
            fail_msg("byte %zu of the line is 0x%02x", i, (unsigned char)buf[i]);
    assert_int_equal(buf[len - 1], '\n');
    msg = strstr(buf, "] ") + 2;
    char back[256];
    size_t n = 0;
    for (const char *p = msg; *p != '\n'; n++) {
        assert_true(n < sizeof back);
        if (p[0] == '\\' && p[1] == '\\') {
            back[n] = '\\';
            p += 2;
        } else if (p[0] == '\\' && p[1] == 'x') {
            unsigned v;
            assert_int_equal(sscanf(p + 2, "%2x", &v), 1);
            back[n] = (char)v;
            p += 4;
        } else {
            back[n] = *p++;
        }
    }
    assert_int_equal(n, 255);
    assert_memory_equal(back, all, 255);
}

static void test_long_line_is_cut(void **state)
{
    char buf[8192];
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    IM_ERROR("%s", big);
    size_t len = drain(*state, buf, sizeof buf);
    assert_int_equal(len, IM_LOG_LINE_MAX);
    assert_memory_equal(buf + len - 6, "xx...\n", 6);
    assert_int_equal(buf[len - 1], '\n');
    assert_ptr_equal(strchr(buf, '\n'), buf + len - 1);

    /* Just fitting is not cut. */
    const char *prefix_end = strstr(buf, "] ") + 2;
    size_t room = IM_LOG_LINE_MAX - 1 - (size_t)(prefix_end - buf);
    big[room] = '\0';
    IM_ERROR("%s", big);
    len = drain(*state, buf, sizeof buf);
    assert_int_equal(len, IM_LOG_LINE_MAX);
    assert_memory_equal(buf + len - 4, "xxx\n", 4);
}

static void test_cut_keeps_escapes_whole(void **state)
{
    /* "\x1b" is written as four bytes; with leads of 0 to 3 bytes, a plain
     * cut would land inside an escape in three of the four runs. */
    static const char *const leads[] = { "", "a", "ab", "abc" };
    for (size_t k = 0; k < 4; k++) {
        char buf[8192];
        char big[3000];
        snprintf(big, sizeof big, "%s", leads[k]);
        while (strlen(big) + 1 < sizeof big)
            strcat(big, "\x1b");
        IM_INFO("%s", big);
        size_t len = drain(*state, buf, sizeof buf);
        assert_true(len <= IM_LOG_LINE_MAX && len >= IM_LOG_LINE_MAX - 6);
        assert_memory_equal(buf + len - 4, "...\n", 4);
        /* The bytes before "..." end with a whole escape. */
        assert_memory_equal(buf + len - 8, "\\x1b", 4);
    }
}

static void *named_thread(void *arg)
{
    im_log_set_thread_name(arg);
    IM_INFO("from a thread");
    return NULL;
}

static void test_thread_name(void **state)
{
    char buf[4096];
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, named_thread, "worker-1"), 0);
    pthread_join(t, NULL);
    drain(*state, buf, sizeof buf);
    assert_matches(buf, STAMP "INFO  \\[worker-1\\] from a thread\n$");

    /* The name is the thread's own: this one is still "main". */
    IM_INFO("here");
    drain(*state, buf, sizeof buf);
    assert_matches(buf, STAMP "INFO  \\[main\\] here\n$");

    im_log_set_thread_name("io\nloop-with-a-name-far-longer-than-allowed");
    IM_INFO("x");
    drain(*state, buf, sizeof buf);
    assert_matches(buf, STAMP "INFO  \\[io\\?loop-with-a-name-far-longer-\\] x\n$");
    im_log_set_thread_name("w\x1b\xc3\xa9");
    IM_INFO("x");
    drain(*state, buf, sizeof buf);
    assert_matches(buf, STAMP "INFO  \\[w\\?\\?\\?\\] x\n$");
    im_log_set_thread_name("");
    IM_INFO("y");
    drain(*state, buf, sizeof buf);
    assert_matches(buf, STAMP "INFO  \\[main\\] y\n$");
}

static void test_errno_preserved(void **state)
{
    char buf[4096];
    errno = ENOENT;
    IM_INFO("errno stays");
    assert_int_equal(errno, ENOENT);
    drain(*state, buf, sizeof buf);
}

/* Many threads writing long lines at once: every line read back must be
 * whole, which only holds if each line is one write(2). */
enum { WRITERS = 4, LINES_EACH = 300 };

struct reader {
    int fd;
    size_t lines, bad;
    char pending[2 * IM_LOG_LINE_MAX];
    size_t pending_len;
};

static void check_line(struct reader *r, const char *line, size_t len)
{
    regex_t re;
    regcomp(&re, STAMP "INFO  \\[w[0-9]\\] w[0-9] n=[0-9]+ y+\\.\\.\\.$", REG_EXTENDED | REG_NOSUB);
    char copy[2 * IM_LOG_LINE_MAX];
    memcpy(copy, line, len);
    copy[len] = '\0';
    if (regexec(&re, copy, 0, NULL, 0) != 0 || len + 1 != IM_LOG_LINE_MAX)
        r->bad++;
    r->lines++;
    regfree(&re);
}

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    char chunk[8192];
    for (;;) {
        ssize_t n = read(r->fd, chunk, sizeof chunk);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (chunk[i] == '\n') {
                check_line(r, r->pending, r->pending_len);
                r->pending_len = 0;
            } else if (r->pending_len < sizeof r->pending - 1) {
                r->pending[r->pending_len++] = chunk[i];
            }
        }
    }
    return NULL;
}

static void *writer_main(void *arg)
{
    const char *name = arg;
    char pad[1200];
    memset(pad, 'y', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    im_log_set_thread_name(name);
    for (int i = 0; i < LINES_EACH; i++)
        IM_INFO("%s n=%d %s", name, i, pad);
    return NULL;
}

static void test_threads_never_interleave(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    im_log_set_fd(fds[1]);

    static struct reader r;
    memset(&r, 0, sizeof r);
    r.fd = fds[0];
    pthread_t reader, writers[WRITERS];
    static char names[WRITERS][8];
    assert_int_equal(pthread_create(&reader, NULL, reader_main, &r), 0);
    for (int i = 0; i < WRITERS; i++) {
        snprintf(names[i], sizeof names[i], "w%d", i);
        assert_int_equal(pthread_create(&writers[i], NULL, writer_main, names[i]), 0);
    }
    for (int i = 0; i < WRITERS; i++)
        pthread_join(writers[i], NULL);
    close(fds[1]);
    pthread_join(reader, NULL);
    close(fds[0]);

    assert_int_equal(r.lines, WRITERS * LINES_EACH);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.pending_len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_line_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timestamp_is_utc_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_filtering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_level_clamps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_parse_and_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newlines_are_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_non_text_byte_is_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_is_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_keeps_escapes_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errno_preserved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_never_interleave, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
