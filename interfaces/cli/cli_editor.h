/* interfaces/cli/cli_editor.h: the line editor of imcore-cli on a terminal.
 *
 * GNU readline through its callback interface, driven by the event loop: a
 * prompt, editing, history with the arrow keys, tab completion of commands
 * and of the user and group names seen (cli_names.h). Every line printed
 * (cli_print.h) and every log line goes above the line being typed, which
 * is drawn again below it. Off a terminal main.c uses cli_input.h instead.
 * readline's state is global: one editor per process. */
#ifndef CLI_EDITOR_H
#define CLI_EDITOR_H

#include "cli_input.h"

struct event_base;
struct cli_names;

typedef struct cli_editor cli_editor;

/* Starts editing standard input on base with prompt (copied). names is
 * borrowed (it must outlive the editor; NULL: commands only). on_line gets
 * each line entered, borrowed for the call; on_eof once, at Ctrl-D on an
 * empty line. Log lines are carried to stderr through the editor while it
 * lives. Returns NULL when out of memory or when an editor exists already. */
cli_editor *cli_editor_new(struct event_base *base, const char *prompt, struct cli_names *names,
                           cli_input_line_cb on_line, cli_input_eof_cb on_eof, void *arg);

/* Clears the line being typed, gives the terminal back as it was and logs
 * to stderr directly again. NULL is fine. */
void cli_editor_free(cli_editor *e);

#endif
