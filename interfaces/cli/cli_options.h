/* interfaces/cli/cli_options.h: the command line of imcore-cli.
 *
 * Turns argv into a plain record and answers --help and --version. It knows
 * nothing of sockets or the protocol beyond the limits a user id must meet,
 * so a typo is caught before any connection is tried. */
#ifndef CLI_OPTIONS_H
#define CLI_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "im_log.h"

#ifndef IMCORE_CLI_VERSION
#define IMCORE_CLI_VERSION "0.1.0"
#endif

typedef struct cli_options {
    const char *host;       /* borrowed from argv: a numeric IPv4 or IPv6 address */
    uint16_t port;
    const char *user;       /* borrowed from argv: 1..32 of [A-Za-z0-9_.-] */
    const char *name;       /* borrowed from argv, or "" for "the user id" */
    im_log_level log_level; /* the client's own log lines on stderr */
    const char *password_file; /* borrowed from argv, or NULL (see cli_secret.h) */
    bool ask_password;      /* read the password from the terminal */
    bool register_account;  /* create the account at the first login */
    bool show_acks;         /* print "* sent ..." for every SendAck */
    bool stay;              /* keep running after stdin ends */
    bool tls;               /* --tls: TLS to the server, its certificate checked */
    const char *ca_file;    /* --ca: borrowed from argv, or NULL for the system's CAs */
    const char *servername; /* --servername: borrowed, or NULL: the certificate must name host */
    bool insecure;          /* --insecure: no certificate check (a warning says so) */
    /* Not an option: main.c sets it when standard input and output are a
     * terminal. The client then talks to a person (status lines instead of
     * log lines, delivery states, a first connection that gives up); off,
     * its output is the stable one scripts read. */
    bool interactive;
} cli_options;

/* What cli_options_parse asks the caller to do. */
enum {
    CLI_OPTIONS_RUN = 0,   /* *out is filled: run the client */
    CLI_OPTIONS_EXIT = 1,  /* --help or --version was printed to out: exit 0 */
    CLI_OPTIONS_USAGE = 2, /* a message went to err: exit 2 */
};

/* Reads argv into *o. Help and version text go to out, complaints to err. */
int cli_options_parse(int argc, char **argv, cli_options *o, FILE *out, FILE *err);

#endif
