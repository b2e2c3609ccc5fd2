/* interfaces/cli/cli_names.h: the user and group names the client has seen.
 *
 * Fed by what the server says (the online list, senders of messages, group
 * lists, groups messages came from) and by what the user typed successfully;
 * read by tab completion. A bounded set per kind: past CLI_NAMES_MAX new
 * names are not kept, which only costs a completion. No I/O. */
#ifndef CLI_NAMES_H
#define CLI_NAMES_H

#include <stddef.h>

#define CLI_NAMES_MAX 4096

typedef enum cli_name_kind { CLI_NAME_USER, CLI_NAME_GROUP } cli_name_kind;

typedef struct cli_names cli_names;

/* NULL when out of memory. Free with cli_names_free (NULL is fine). */
cli_names *cli_names_new(void);
void cli_names_free(cli_names *n);

/* Remembers name (copied) as a user or a group; "" and NULL are ignored, as
 * are names with spaces or control characters, which no id has. n may be
 * NULL: nothing is kept. */
void cli_names_add(cli_names *n, cli_name_kind kind, const char *name);

/* The i-th name of kind (in the order first seen), or NULL past the last.
 * Borrowed: valid until the next cli_names_add or cli_names_free. */
const char *cli_names_get(const cli_names *n, cli_name_kind kind, size_t i);

#endif
