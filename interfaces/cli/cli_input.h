/* interfaces/cli/cli_input.h: lines from a file descriptor, on the event loop.
 *
 * Reads a pipe, a regular file or a terminal the same way and hands over one
 * line at a time: the reader for scripts (on a terminal that is also standard
 * output, main.c uses the line editor of cli_editor.h instead). A regular
 * file (or /dev/null), which epoll cannot watch, is read in chunks from an
 * event activated by hand, so a long script never starves the connection. */
#ifndef CLI_INPUT_H
#define CLI_INPUT_H

#include <stddef.h>

struct event_base;

typedef struct cli_input cli_input;

/* line is NUL-terminated and without its end of line; borrowed for the call. */
typedef void (*cli_input_line_cb)(const char *line, size_t len, void *arg);
/* Called once, after the last line. */
typedef void (*cli_input_eof_cb)(void *arg);

/* Starts reading fd (which stays the caller's). Returns NULL when out of
 * memory. A last line without '\n' is still delivered. */
cli_input *cli_input_new(struct event_base *base, int fd, cli_input_line_cb on_line,
                         cli_input_eof_cb on_eof, void *arg);

/* Stops reading; NULL is fine. */
void cli_input_free(cli_input *in);

#endif
