/* interfaces/cli/cli_secret.h: where the password comes from.
 *
 * A password never goes on the command line, where every user of the
 * machine can read it in the process list: it comes from a file, from the
 * environment, or from the terminal with echo off. This module only reads
 * it; the client sends it in Login and wipes it when it is done. */
#ifndef CLI_SECRET_H
#define CLI_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#define CLI_SECRET_MAX 1025 /* the protocol allows 8..1024 bytes, and a NUL */

/* Fills out (NUL-terminated, at most CLI_SECRET_MAX - 1 bytes) from the
 * first line of file if file is not NULL, else from the terminal (prompting
 * on /dev/tty) if ask, else from $IMCORE_PASSWORD if set; otherwise leaves
 * it empty. With ask and confirm (a new account's password), the terminal
 * asks twice and the two must match. Returns 0, or -1 with a sentence for
 * the user in why. */
int cli_secret_read(const char *file, bool ask, bool confirm, char out[CLI_SECRET_MAX],
                    char *why, size_t why_len);

/* Overwrites the n bytes at p in a way the compiler cannot drop. */
void cli_secret_wipe(void *p, size_t n);

#endif
