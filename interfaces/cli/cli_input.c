/* interfaces/cli/cli_input.c: splits what read(2) returns into lines. */
#include "cli_input.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "im_log.h"

/* A "line" this long without a newline is handed over as it is, so that input
 * without newlines cannot grow the buffer without limit. */
#define LINE_MAX_BYTES (256 * 1024)
#define CHUNK_BYTES 4096

struct cli_input {
    int fd;
    bool polled; /* fd is watched by the backend; otherwise ev is activated by hand */
    bool done;
    struct event *ev;
    struct evbuffer *buf;
    cli_input_line_cb on_line;
    cli_input_eof_cb on_eof;
    void *arg;
};

static void deliver_lines(cli_input *in, bool at_eof)
{
    for (;;) {
        size_t n = 0;
        char *line = evbuffer_readln(in->buf, &n, EVBUFFER_EOL_LF);
        if (!line) {
            size_t left = evbuffer_get_length(in->buf);
            if (left == 0 || (!at_eof && left < LINE_MAX_BYTES))
                return;
            n = left;
            line = malloc(n + 1);
            if (!line)
                return;
            evbuffer_remove(in->buf, line, n);
            line[n] = '\0';
        }
        if (n > 0 && line[n - 1] == '\r')
            line[--n] = '\0';
        in->on_line(line, n, in->arg);
        free(line);
        /* on_line may have ended the loop; the rest waits for the next turn. */
        if (in->done)
            return;
    }
}

static void finish(cli_input *in)
{
    deliver_lines(in, true);
    in->done = true;
    event_del(in->ev);
    in->on_eof(in->arg);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cli_input *in = arg;
    if (in->done)
        return;
    char chunk[CHUNK_BYTES];
    ssize_t n = read(in->fd, chunk, sizeof chunk);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!in->polled)
            event_active(in->ev, EV_READ, 0);
        return;
    }
    if (n <= 0) {
        if (n < 0)
            IM_WARN("reading standard input: %s", strerror(errno));
        finish(in);
        return;
    }
    evbuffer_add(in->buf, chunk, (size_t)n);
    deliver_lines(in, false);
    if (!in->polled && !in->done)
        event_active(in->ev, EV_READ, 0);
}

cli_input *cli_input_new(struct event_base *base, int fd, cli_input_line_cb on_line,
                         cli_input_eof_cb on_eof, void *arg)
{
    cli_input *in = calloc(1, sizeof *in);
    if (!in)
        return NULL;
    *in = (cli_input){ .fd = fd, .on_line = on_line, .on_eof = on_eof, .arg = arg };
    in->buf = evbuffer_new();
    in->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, in);
    if (!in->buf || !in->ev)
        goto fail;
    if (event_add(in->ev, NULL) == 0) {
        in->polled = true;
        return in;
    }
    /* epoll refuses regular files and /dev/null: they never block, so read
     * them from an event with no descriptor that we activate ourselves. */
    event_free(in->ev);
    in->ev = event_new(base, -1, 0, on_readable, in);
    if (!in->ev)
        goto fail;
    event_active(in->ev, EV_READ, 0);
    return in;
fail:
    cli_input_free(in);
    return NULL;
}

void cli_input_free(cli_input *in)
{
    if (!in)
        return;
    if (in->ev)
        event_free(in->ev);
    if (in->buf)
        evbuffer_free(in->buf);
    free(in);
}
