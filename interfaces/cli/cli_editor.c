/* interfaces/cli/cli_editor.c: GNU readline's callback interface on a
 * libevent loop.
 *
 * readline reads a byte when the loop says standard input is readable
 * (rl_callback_read_char) and calls on_rl_line with each whole line. Output
 * that arrives meanwhile is written between hide() (the prompt and the
 * half-typed line are cleared from the screen, however many rows they
 * wrap over) and show() (both drawn again, the cursor where it was). The
 * logger writes into a pipe that the loop reads, so that log lines take
 * the same path instead of landing in the middle of the line.
 *
 * readline's own signal handlers are off: SIGINT and SIGTERM belong to the
 * loop (main.c), and SIGWINCH is watched here to tell readline the new
 * width. */
#include "cli_editor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>
#include <readline/history.h>
#include <readline/readline.h>

#include "cli_command.h"
#include "cli_names.h"
#include "cli_print.h"
#include "im_log.h"

#define HISTORY_MAX 1000

struct cli_editor {
    struct event *input;  /* standard input readable */
    struct event *winch;  /* the terminal was resized */
    struct event *logs;   /* the read end of the log pipe readable */
    int log_pipe[2];
    struct cli_names *names;
    cli_input_line_cb on_line;
    cli_input_eof_cb on_eof;
    void *arg;
    bool installed; /* readline's handler is in place: a prompt is on screen */
    bool in_line;   /* on_line runs: readline has moved past the line already */
    int hidden;     /* nesting of hide() */
    char prompt[80];
};

/* readline calls plain functions: they find the editor here. */
static cli_editor *the_editor;

/* ---- the screen ---------------------------------------------------------- */

static void hide(void *arg)
{
    cli_editor *e = arg;
    if (!e->installed || e->in_line || e->hidden++ > 0)
        return;
    rl_clear_visible_line();
    fflush(rl_outstream);
}

static void show(void *arg)
{
    cli_editor *e = arg;
    if (!e->installed || e->in_line || --e->hidden > 0)
        return;
    rl_forced_update_display();
    fflush(rl_outstream);
}

/* ---- completion ------------------------------------------------------------ */

enum complete_what { COMPLETE_COMMANDS, COMPLETE_USERS, COMPLETE_GROUPS, COMPLETE_NOTHING };

static struct {
    enum complete_what what;
    char prefix[2]; /* ":" before a command, "@" or "#" before a name, or "" */
    size_t next;
} completing;

static char *complete_next(const char *text, int state)
{
    if (state == 0)
        completing.next = 0;
    size_t plen = strlen(completing.prefix);
    if (strncmp(text, completing.prefix, plen) != 0)
        return NULL;
    const char *want = text + plen;
    size_t wlen = strlen(want);
    for (;;) {
        size_t i = completing.next++;
        const char *cand;
        bool fold = false;
        if (completing.what == COMPLETE_COMMANDS) {
            cand = cli_command_word(i);
            fold = true;
        } else if (completing.what == COMPLETE_USERS) {
            cand = cli_names_get(the_editor->names, CLI_NAME_USER, i);
        } else if (completing.what == COMPLETE_GROUPS) {
            cand = cli_names_get(the_editor->names, CLI_NAME_GROUP, i);
        } else {
            cand = NULL;
        }
        if (!cand)
            return NULL;
        if (fold ? strncasecmp(cand, want, wlen) != 0 : strncmp(cand, want, wlen) != 0)
            continue;
        size_t n = plen + strlen(cand) + 1;
        char *m = malloc(n); /* readline frees it */
        if (m)
            snprintf(m, n, "%s%s", completing.prefix, cand);
        return m;
    }
}

/* The n-th word (from 0) of the line before byte end, into buf. */
static void word_at(const char *line, int end, int n, char *buf, size_t len)
{
    int i = 0, k = 0;
    buf[0] = '\0';
    while (i < end) {
        while (i < end && (line[i] == ' ' || line[i] == '\t'))
            i++;
        int start = i;
        while (i < end && line[i] != ' ' && line[i] != '\t')
            i++;
        if (i > start && k++ == n) {
            snprintf(buf, len, "%.*s", i - start, line + start);
            return;
        }
    }
}

/* Which word the cursor is in decides what it completes: the first is a
 * command, or a name after '@' or '#'; after a group command its group;
 * after :invite, :kick, :owner and a group, a user. */
static char **complete(const char *text, int start, int end)
{
    (void)end;
    rl_attempted_completion_over = 1; /* never file names */
    int index = 0;
    for (int i = 0; i < start;) {
        while (i < start && (rl_line_buffer[i] == ' ' || rl_line_buffer[i] == '\t'))
            i++;
        if (i >= start)
            break;
        index++;
        while (i < start && rl_line_buffer[i] != ' ' && rl_line_buffer[i] != '\t')
            i++;
    }
    char cmd[32];
    word_at(rl_line_buffer, start, 0, cmd, sizeof cmd);
    completing.what = COMPLETE_NOTHING;
    completing.prefix[0] = '\0';
    if (index == 0) {
        if (text[0] == ':' || text[0] == '\0')
            completing.what = COMPLETE_COMMANDS, strcpy(completing.prefix, ":");
        else if (text[0] == '@')
            completing.what = COMPLETE_USERS, strcpy(completing.prefix, "@");
        else if (text[0] == '#')
            completing.what = COMPLETE_GROUPS, strcpy(completing.prefix, "#");
    } else if (index == 1 && strcasecmp(cmd, ":history") == 0) {
        if (text[0] == '@')
            completing.what = COMPLETE_USERS, strcpy(completing.prefix, "@");
        else if (text[0] == '#')
            completing.what = COMPLETE_GROUPS, strcpy(completing.prefix, "#");
    } else if (index == 1 && cmd[0] == ':' && strcasecmp(cmd, ":create") != 0) {
        completing.what = COMPLETE_GROUPS;
    } else if (index == 2 && (strcasecmp(cmd, ":invite") == 0 || strcasecmp(cmd, ":kick") == 0 ||
                              strcasecmp(cmd, ":owner") == 0)) {
        completing.what = COMPLETE_USERS;
    }
    if (completing.what == COMPLETE_NOTHING)
        return NULL;
    return rl_completion_matches(text, complete_next);
}

/* ---- input ----------------------------------------------------------------- */

static void on_rl_line(char *line)
{
    cli_editor *e = the_editor;
    if (!line) { /* Ctrl-D on an empty line */
        fputc('\n', rl_outstream);
        rl_callback_handler_remove();
        e->installed = false;
        event_del(e->input);
        e->on_eof(e->arg);
        return;
    }
    if (line[strspn(line, " \t")] != '\0') {
        HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1)
                                              : NULL;
        if (!last || strcmp(last->line, line) != 0)
            add_history(line);
    }
    e->in_line = true;
    e->on_line(line, strlen(line), e->arg);
    e->in_line = false;
    free(line);
}

static void on_input(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cli_editor *e = arg;
    if (e->installed)
        rl_callback_read_char();
}

static void on_winch(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    rl_resize_terminal();
}

/* ---- log lines ------------------------------------------------------------ */

static void copy_logs(cli_editor *e)
{
    char buf[8192];
    ssize_t n;
    while ((n = read(e->log_pipe[0], buf, sizeof buf)) > 0) {
        hide(e);
        fwrite(buf, 1, (size_t)n, stderr);
        fflush(stderr);
        show(e);
    }
}

static void on_logs(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    copy_logs(arg);
}

/* The logger writes into a pipe that the loop empties: a line is never
 * lost to a full pipe before the loop turns, since the write end does not
 * block and the logger drops what it cannot write (im_log.h). Without the
 * pipe, log lines go straight to stderr, through the half-typed line. */
static void route_logs(cli_editor *e, struct event_base *base)
{
    if (!isatty(STDERR_FILENO) || pipe2(e->log_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        e->log_pipe[0] = e->log_pipe[1] = -1;
        return;
    }
    e->logs = event_new(base, e->log_pipe[0], EV_READ | EV_PERSIST, on_logs, e);
    if (!e->logs || event_add(e->logs, NULL) != 0) {
        close(e->log_pipe[0]);
        close(e->log_pipe[1]);
        e->log_pipe[0] = e->log_pipe[1] = -1;
        return;
    }
    im_log_set_fd(e->log_pipe[1]);
}

/* ---- the editor -------------------------------------------------------------- */

cli_editor *cli_editor_new(struct event_base *base, const char *prompt, struct cli_names *names,
                           cli_input_line_cb on_line, cli_input_eof_cb on_eof, void *arg)
{
    if (the_editor)
        return NULL;
    cli_editor *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->names = names;
    e->on_line = on_line;
    e->on_eof = on_eof;
    e->arg = arg;
    e->log_pipe[0] = e->log_pipe[1] = -1;
    snprintf(e->prompt, sizeof e->prompt, "%s", prompt);
    e->input = event_new(base, STDIN_FILENO, EV_READ | EV_PERSIST, on_input, e);
    e->winch = evsignal_new(base, SIGWINCH, on_winch, e);
    if (!e->input || !e->winch || event_add(e->input, NULL) != 0 ||
        evsignal_add(e->winch, NULL) != 0) {
        if (e->input)
            event_free(e->input);
        if (e->winch)
            event_free(e->winch);
        free(e);
        return NULL;
    }
    the_editor = e;

    rl_readline_name = "imcore-cli"; /* for $if imcore-cli in ~/.inputrc */
    rl_instream = stdin;
    rl_outstream = stdout;
    rl_catch_signals = 0;
    rl_catch_sigwinch = 0;
    rl_change_environment = 0;
    rl_attempted_completion_function = complete;
    static char word_breaks[] = " \t"; /* '@', '#' and ':' belong to the word */
    rl_completer_word_break_characters = word_breaks;
    stifle_history(HISTORY_MAX);
    rl_callback_handler_install(e->prompt, on_rl_line);
    e->installed = true;
    cli_print_set_screen(hide, show, e);
    route_logs(e, base);
    return e;
}

void cli_editor_free(cli_editor *e)
{
    if (!e)
        return;
    if (e->log_pipe[1] >= 0) {
        im_log_set_fd(-1);
        copy_logs(e);
        close(e->log_pipe[0]);
        close(e->log_pipe[1]);
    }
    if (e->logs)
        event_free(e->logs);
    cli_print_set_screen(NULL, NULL, NULL);
    if (e->installed) {
        /* The half-typed line goes with the prompt: the shell's prompt
         * starts on a clean line. */
        rl_clear_visible_line();
        fflush(rl_outstream);
        rl_callback_handler_remove();
    }
    event_free(e->input);
    event_free(e->winch);
    clear_history();
    the_editor = NULL;
    free(e);
}
