/* interfaces/cli/cli_print.h: everything imcore-cli prints on stdout.
 *
 * One function per kind of line, so that the formats documented in
 * docs/cli.md live in one file. Every line is flushed at once: a script or a
 * test reading the pipe sees each event as it happens. Lines starting with
 * '*' report success, '!' a failure, '[' a received message, two spaces an
 * item of a list. Log lines go to stderr through im_log instead. */
#ifndef CLI_PRINT_H
#define CLI_PRINT_H

#include <stdbool.h>
#include <stdint.h>

#include "imcore.pb-c.h"

/* The screen's owner (the line editor on a terminal) is told before and
 * after every line written, so it can take its prompt and the half-typed
 * line away and draw them again below. hide and show may be NULL (the
 * default: nothing to do); arg is passed back, borrowed. */
void cli_print_set_screen(void (*hide)(void *arg), void (*show)(void *arg), void *arg);

/* On a terminal the lines are written for a person: a :history is told from
 * your side ("you → bob", "bob → you") and :olu names a user once when the
 * display name is the id. Off (the default), for scripts, the formats stay
 * as they were: "alice → bob" for your own messages, "bob (bob)". */
void cli_print_set_interactive(bool on);

/* One line of the caller's text, then '\n' and a flush. */
void cli_print(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "[HH:MM:SS] bob → you: text" or "[HH:MM:SS] bob @ room: text", in local
 * time; a notice about a group: "[HH:MM:SS] notice @ room: text".
 * A body of several lines continues on lines indented by four spaces; tabs
 * become spaces; other control characters are shown as '?', so a message
 * can neither move the cursor nor pass for an event of its own. */
void cli_print_delivery(const Imcore__Delivery *d);

/* One line per message, oldest first, as for deliveries but indented by two
 * spaces (continuation lines by six); private messages of me's own show
 * "me → peer" (interactive: "you → peer", and "you @ room" in a group).
 * Then "* N messages". */
void cli_print_history(const Imcore__HistoryResult *r, const char *me);

/* "! CODE_NAME: message" with the name from imcore.proto's ErrorCode. */
void cli_print_error(const Imcore__Error *e);

/* "  room  owner=alice members=3/1000 [member]" per group of one page, with
 * " [private]", " [invited]" and " [shared history]" where they apply. */
void cli_print_groups(const Imcore__GroupListResult *r);
/* After the last page: "* N groups", N the larger of total and shown, with
 * " (list cut short)" when fewer than total were shown. */
void cli_print_groups_end(uint32_t total, size_t shown);

/* "  alice (Alice)" per user of one page; interactive, "  alice" when the
 * display name is the id or empty. */
void cli_print_users(const Imcore__OnlineUsersResult *r);
/* After the last page: "* N online", as cli_print_groups_end. */
void cli_print_users_end(uint32_t total, size_t shown);

/* The ErrorCode's name ("USER_OFFLINE"), or "ERROR_<n>" for a number this
 * build does not know. Static or thread-local storage: do not free. */
const char *cli_error_name(int wire_code);

#endif
