/* interfaces/cli/main.c: imcore-cli, an interactive terminal client.
 *
 * Wires the pieces together and owns the process: options, the logger, the
 * event loop, the signals, standard input. The protocol lives in
 * cli_client.c, the command language in cli_command.c, output formats in
 * cli_print.c; docs/cli.md describes them for users.
 *
 * When standard input and output are both a terminal, a person is typing:
 * lines come from the line editor (cli_editor.c) and the client speaks to a
 * person. Otherwise lines come from cli_input.c and every output keeps the
 * format scripts rely on. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli_client.h"
#include "cli_command.h"
#include "cli_editor.h"
#include "cli_input.h"
#include "cli_names.h"
#include "cli_options.h"
#include "cli_print.h"
#include "cli_secret.h"
#include "im_log.h"
#include "imcore/errors.h"

static void on_line(const char *line, size_t len, void *arg)
{
    cli_client *client = arg;
    cli_command *cmd = NULL;
    char why[256];
    int rc = cli_command_parse(line, len, &cmd, why, sizeof why);
    if (rc != 0) {
        cli_print("! %s", rc == IM_ENOMEM ? "out of memory" : why);
        return;
    }
    if (!cmd)
        return;
    if (cmd->kind == CLI_CMD_HELP) {
        for (size_t i = 0; cli_help_lines[i]; i++)
            cli_print("%s", cli_help_lines[i]);
        cli_command_free(cmd);
        return;
    }
    cli_client_submit(client, cmd);
}

static void on_input_end(void *arg)
{
    IM_INFO("standard input ended");
    cli_client_input_ended(arg);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    IM_INFO("signal %d: logging out", (int)sig);
    cli_client_interrupt(arg);
}

int main(int argc, char **argv)
{
    cli_options opts;
    switch (cli_options_parse(argc, argv, &opts, stdout, stderr)) {
    case CLI_OPTIONS_EXIT:
        return 0;
    case CLI_OPTIONS_USAGE:
        return 2;
    default:
        break;
    }
    im_log_set_level(opts.log_level);
    im_log_set_thread_name("cli");
    /* A server that vanishes mid-write must be an error code, not a death. */
    signal(SIGPIPE, SIG_IGN);

    opts.interactive = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    cli_print_set_interactive(opts.interactive);

    /* A new account's password is asked on the terminal, twice, unless it
     * comes from a file or the environment. */
    bool ask = opts.ask_password || (opts.register_account && opts.interactive &&
                                     !opts.password_file && !getenv("IMCORE_PASSWORD"));
    char password[CLI_SECRET_MAX];
    char why[300];
    if (cli_secret_read(opts.password_file, ask, opts.register_account, password, why,
                        sizeof why) != 0) {
        fprintf(stderr, "imcore-cli: %s\n", why);
        return 2;
    }

    int code = 1;
    struct event_base *base = event_base_new();
    cli_client *client = NULL;
    cli_input *input = NULL;
    cli_editor *editor = NULL;
    cli_names *names = cli_names_new();
    struct event *sigint = NULL, *sigterm = NULL;
    int crc = base && names ? cli_client_new(base, &opts, &client) : IM_ENOMEM;
    if (crc != 0) {
        if (crc != IM_EINVAL) /* EINVAL: the client said why (--tls, --ca) */
            IM_ERROR("cannot set up the event loop: out of memory");
        goto out;
    }
    cli_client_set_password(client, password);
    cli_client_set_names(client, names);
    cli_secret_wipe(password, sizeof password);
    sigint = evsignal_new(base, SIGINT, on_signal, client);
    sigterm = evsignal_new(base, SIGTERM, on_signal, client);
    if (opts.interactive) {
        char prompt[64];
        snprintf(prompt, sizeof prompt, "%s> ", opts.user);
        editor = cli_editor_new(base, prompt, names, on_line, on_input_end, client);
    } else {
        input = cli_input_new(base, STDIN_FILENO, on_line, on_input_end, client);
    }
    if (!sigint || !sigterm || (!input && !editor) || evsignal_add(sigint, NULL) != 0 ||
        evsignal_add(sigterm, NULL) != 0) {
        IM_ERROR("cannot set up signals and input: out of memory");
        goto out;
    }
    if (isatty(STDIN_FILENO))
        cli_print("* imcore-cli %s: type :help for the commands, :q to quit",
                  IMCORE_CLI_VERSION);

    cli_client_start(client);
    if (event_base_dispatch(base) < 0) {
        IM_ERROR("the event loop failed");
        goto out;
    }
    code = cli_client_done(client) ? cli_client_exit_code(client) : 1;
out:
    cli_secret_wipe(password, sizeof password);
    cli_editor_free(editor); /* first: it gives the terminal back */
    cli_input_free(input);
    if (sigint)
        event_free(sigint);
    if (sigterm)
        event_free(sigterm);
    cli_client_free(client);
    cli_names_free(names);
    if (base)
        event_base_free(base);
    return code;
}
