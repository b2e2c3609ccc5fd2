/* infrastructure/log/im_log.h: the process's one logger.
 *
 * One event is one line on stderr (or on the descriptor given to
 * im_log_set_fd), written with a single write(2) so that lines from different
 * threads never interleave:
 *
 *     2026-11-25T06:30:01.123Z INFO  [worker-1] message text
 *
 * UTC time with milliseconds, the level padded to five columns, the calling
 * thread's name. A line is printable ASCII and nothing else: in the message,
 * every byte outside 0x20..0x7e is written as "\xNN" (two lowercase hex
 * digits) and a backslash as "\\". So a line can always be read as one event,
 * and text a client chose (a user id, a group name, an error message quoting
 * them) can never reach a terminal or a log viewer as an escape sequence,
 * whichever site logs it. UTF-8 shows as its bytes ("caf\xc3\xa9"). A message
 * is cut to fit IM_LOG_LINE_MAX, never inside an escape, and then ends with
 * "...". The logger knows nothing of the server: no config, no sessions.
 *
 * Use the IM_DEBUG/IM_INFO/IM_WARN/IM_ERROR macros: they test the level with
 * one relaxed atomic load and, when the event is filtered out, neither format
 * the message nor evaluate the arguments. All functions are thread-safe. */
#ifndef IM_LOG_H
#define IM_LOG_H

#include <stdatomic.h>

typedef enum im_log_level {
    IM_LOG_DEBUG,
    IM_LOG_INFO,
    IM_LOG_WARN,
    IM_LOG_ERROR,
} im_log_level;

/* The longest line written, its final '\n' included. It stays below PIPE_BUF
 * so that even a pipe never splits a line. */
#define IM_LOG_LINE_MAX 1024

/* Longest thread name kept by im_log_set_thread_name; longer ones are cut. */
#define IM_LOG_THREAD_NAME_MAX 31

/* Events below this level are dropped. Set only through im_log_set_level. */
extern _Atomic int im__log_min_level;

/* Events at lvl and above are written; the default is IM_LOG_INFO. A value
 * outside the enum is clamped to IM_LOG_DEBUG or IM_LOG_ERROR. */
void im_log_set_level(im_log_level lvl);
im_log_level im_log_get_level(void);

/* Reads "debug", "info", "warn" or "error" (any case) into *out. Errors:
 * IM_EINVAL for NULL or any other text; *out is then untouched. */
int im_log_level_parse(const char *s, im_log_level *out);

/* "debug", "info", "warn" or "error" (what im_log_level_parse reads back);
 * "unknown" for a value outside the enum. A static string: never free it. */
const char *im_log_level_name(im_log_level lvl);

/* Names the calling thread in its log lines ("main", "worker-1"). Copied, cut
 * to IM_LOG_THREAD_NAME_MAX bytes, every byte outside printable ASCII
 * replaced by '?'. NULL or "" restores the default, which is "main" in every
 * thread. */
void im_log_set_thread_name(const char *name);

/* Where lines go, for tests and daemons: fd stays the caller's and is never
 * closed here. A negative fd restores stderr. */
void im_log_set_fd(int fd);

/* Writes one event if lvl passes the filter. Never changes errno, never
 * fails: a line that cannot be written is lost. */
void im_log(im_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True when an event at lvl would be written: for work done only to build a
 * log message. */
#define IM_LOG_ENABLED(lvl) \
    ((int)(lvl) >= atomic_load_explicit(&im__log_min_level, memory_order_relaxed))

#define IM__LOG_AT(lvl, ...)                  \
    do {                                      \
        if (IM_LOG_ENABLED(lvl))              \
            im_log((lvl), __VA_ARGS__);       \
    } while (0)

#define IM_DEBUG(...) IM__LOG_AT(IM_LOG_DEBUG, __VA_ARGS__)
#define IM_INFO(...)  IM__LOG_AT(IM_LOG_INFO, __VA_ARGS__)
#define IM_WARN(...)  IM__LOG_AT(IM_LOG_WARN, __VA_ARGS__)
#define IM_ERROR(...) IM__LOG_AT(IM_LOG_ERROR, __VA_ARGS__)

#endif
