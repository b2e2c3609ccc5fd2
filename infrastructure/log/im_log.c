/* infrastructure/log/im_log.c: formats one event into a line on the stack
 * and hands it to the kernel in one write(2).
 *
 * There is no lock and no buffer shared between threads: the level and the
 * descriptor are atomics, the thread name is thread-local, and POSIX keeps a
 * write of at most PIPE_BUF bytes to a pipe in one piece (and O_APPEND files
 * and terminals do not split short writes in practice). So the logger can be
 * called from any thread, including while another thread is logging. */
#include "im_log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "imcore/errors.h"

_Static_assert(IM_LOG_LINE_MAX <= PIPE_BUF, "a log line must fit one atomic pipe write");

_Atomic int im__log_min_level = IM_LOG_INFO;
static _Atomic int log_fd = STDERR_FILENO;
static _Thread_local char thread_name[IM_LOG_THREAD_NAME_MAX + 1] = "main";

static const char *const level_names[] = { "debug", "info", "warn", "error" };
/* Padded to the widest level so that messages line up in a terminal. */
static const char *const level_tags[] = { "DEBUG", "INFO ", "WARN ", "ERROR" };

void im_log_set_level(im_log_level lvl)
{
    int v = (int)lvl;
    if (v < IM_LOG_DEBUG)
        v = IM_LOG_DEBUG;
    if (v > IM_LOG_ERROR)
        v = IM_LOG_ERROR;
    atomic_store_explicit(&im__log_min_level, v, memory_order_relaxed);
}

im_log_level im_log_get_level(void)
{
    return (im_log_level)atomic_load_explicit(&im__log_min_level, memory_order_relaxed);
}

int im_log_level_parse(const char *s, im_log_level *out)
{
    if (s == NULL || out == NULL)
        return IM_EINVAL;
    for (int i = IM_LOG_DEBUG; i <= IM_LOG_ERROR; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (im_log_level)i;
            return 0;
        }
    }
    return IM_EINVAL;
}

const char *im_log_level_name(im_log_level lvl)
{
    if ((int)lvl < IM_LOG_DEBUG || (int)lvl > IM_LOG_ERROR)
        return "unknown";
    return level_names[lvl];
}

void im_log_set_thread_name(const char *name)
{
    if (name == NULL || name[0] == '\0')
        name = "main";
    size_t i = 0;
    for (; name[i] != '\0' && i < IM_LOG_THREAD_NAME_MAX; i++) {
        unsigned char ch = (unsigned char)name[i];
        /* Printable ASCII only, like the rest of the line. */
        thread_name[i] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
    }
    thread_name[i] = '\0';
}

void im_log_set_fd(int fd)
{
    atomic_store_explicit(&log_fd, fd < 0 ? STDERR_FILENO : fd, memory_order_relaxed);
}

/* Writes all of buf, retrying after signals. A short write only happens on
 * descriptors that do not promise atomicity anyway, so finishing the line with
 * a second write is the best that can be done there. */
static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Writes "2026-11-25T06:30:01.123Z" (24 bytes and a NUL) into out. */
static void format_time(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (gmtime_r(&ts.tv_sec, &tm) == NULL) {
        memset(&tm, 0, sizeof tm);
        tm.tm_mday = 1;
        tm.tm_year = 70;
    }
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
}

/* How a byte of a message is written: itself if it is printable ASCII, "\\"
 * for a backslash (so that "\x1b" in a line can only be an escape), and
 * "\xNN" otherwise. Returns the length (1, 2 or 4) and fills out. */
static size_t escape_byte(unsigned char ch, char out[4])
{
    static const char hex[] = "0123456789abcdef";
    if (ch == '\\') {
        out[0] = out[1] = '\\';
        return 2;
    }
    if (ch >= 0x20 && ch < 0x7f) {
        out[0] = (char)ch;
        return 1;
    }
    out[0] = '\\';
    out[1] = 'x';
    out[2] = hex[ch >> 4];
    out[3] = hex[ch & 0xf];
    return 4;
}

/* Escapes src[0..len) into dst, at most cap bytes, never splitting one
 * byte's escape. Returns the bytes written; *used gets the bytes of src
 * taken. */
static size_t escape_into(char *dst, size_t cap, const char *src, size_t len, size_t *used)
{
    size_t n = 0, i = 0;
    for (; i < len; i++) {
        char e[4];
        size_t k = escape_byte((unsigned char)src[i], e);
        if (n + k > cap)
            break;
        memcpy(dst + n, e, k);
        n += k;
    }
    *used = i;
    return n;
}

void im_log(im_log_level lvl, const char *fmt, ...)
{
    if (!IM_LOG_ENABLED(lvl))
        return;
    if ((int)lvl > IM_LOG_ERROR)
        lvl = IM_LOG_ERROR;

    int saved_errno = errno;
    char line[IM_LOG_LINE_MAX];
    char when[32];
    format_time(when);
    int prefix = snprintf(line, sizeof line, "%s %s [%s] ", when, level_tags[lvl], thread_name);
    if (prefix < 0 || (size_t)prefix >= sizeof line / 2)
        prefix = 0; /* cannot happen: the prefix is at most about 70 bytes */

    /* The message is formatted first and escaped into the line after, so
     * that what a client sent (a user id, a group name, an error message
     * quoting either) can never carry a terminal escape sequence, a newline
     * or a byte that is not text into the log: every site is covered here,
     * including the ones written later. raw holds more than fits in the
     * line, so that a message that does not fit is known to be cut. */
    char raw[IM_LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = snprintf(raw, sizeof raw, "(bad log format: %s)", fmt);
    size_t raw_len = n < 0 ? 0 : (size_t)n < sizeof raw ? (size_t)n : sizeof raw - 1;
    bool cut = n >= 0 && (size_t)n >= sizeof raw;

    /* Room for the message, keeping one byte for the final '\n'. */
    size_t room = sizeof line - 1 - (size_t)prefix;
    char *msg = line + prefix;
    size_t used;
    size_t len = escape_into(msg, room, raw, raw_len, &used);
    if (cut || used < raw_len) {
        /* Cut at a whole escape, and say that it was cut. */
        len = escape_into(msg, room - 3, raw, raw_len, &used);
        memcpy(msg + len, "...", 3);
        len += 3;
    }
    msg[len] = '\n';

    write_all(atomic_load_explicit(&log_fd, memory_order_relaxed), line, (size_t)prefix + len + 1);
    errno = saved_errno;
}
