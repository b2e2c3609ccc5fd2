/* interfaces/cli/cli_client.h: one user's connection to an imcore server.
 *
 * Owns the TCP connection and everything about its life: login, the request
 * ids and their answers, heartbeats, the silence watchdog, reconnecting with
 * backoff, and the commands that wait for a session. It prints results on
 * stdout (cli_print.h) and its own events on stderr (im_log.h); it does not
 * read input: main.c hands it parsed commands. Single-threaded: every call
 * must come from the thread running the event base. */
#ifndef CLI_CLIENT_H
#define CLI_CLIENT_H

#include <stdbool.h>

#include "cli_command.h"
#include "cli_options.h"

struct event_base;

typedef struct cli_client cli_client;

/* A client for o (borrowed: it must outlive the client) on base. Nothing
 * happens until cli_client_start(). *out is the caller's: free it with
 * cli_client_free(). Errors: IM_ENOMEM; IM_EINVAL if o->host is not numeric. */
int cli_client_new(struct event_base *base, const cli_options *o, cli_client **out);
void cli_client_free(cli_client *c); /* NULL is fine */

/* The password for Login (copied; "" for none). The client wipes its copy
 * when freed. After a login it uses the server's session token instead, and
 * the password again only if the token is refused. */
void cli_client_set_password(cli_client *c, const char *password);

struct cli_names;
/* Where the names seen go, for completion (borrowed: it must outlive the
 * client; NULL: kept nowhere). */
void cli_client_set_names(cli_client *c, struct cli_names *names);

/* Connects for the first time. A failure is not final: it retries. */
void cli_client_start(cli_client *c);

/* Runs cmd (takes ownership) now if logged in, else queues it for the next
 * login. :help is not a request: main.c answers it without the client. */
void cli_client_submit(cli_client *c, cli_command *cmd);

/* The input ended: once every request has its answer (at most 5 s), log out
 * and stop. Does nothing with --stay. */
void cli_client_input_ended(cli_client *c);

/* SIGINT or SIGTERM: log out now and stop; a second call stops at once. */
void cli_client_interrupt(cli_client *c);

/* True once the client has stopped; the event loop has been told to exit. */
bool cli_client_done(const cli_client *c);

/* 0 after a clean stop; 1 when the server refused or replaced the session. */
int cli_client_exit_code(const cli_client *c);

#endif
