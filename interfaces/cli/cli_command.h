/* interfaces/cli/cli_command.h: one line typed by the user, parsed.
 *
 * Pure string work: no I/O, no protocol. The client turns a parsed command
 * into a request; main.c runs the ones that never leave the process (:help). */
#ifndef CLI_COMMAND_H
#define CLI_COMMAND_H

#include <stddef.h>
#include <stdint.h>

typedef enum cli_cmd_kind {
    CLI_CMD_PRIVATE, /* @user text */
    CLI_CMD_GROUP,   /* #group text */
    CLI_CMD_CREATE,  /* :create group [max_members] [private] [shared] */
    CLI_CMD_JOIN,    /* :join group */
    CLI_CMD_LEAVE,   /* :leave group | :leave! group (flags: CLI_LEAVE_ANYWAY) */
    CLI_CMD_GROUPS,  /* :groups */
    CLI_CMD_ONLINE,  /* :olu */
    CLI_CMD_HISTORY, /* :history @user [n] | :history #group [n] */
    CLI_CMD_INVITE,  /* :invite group user */
    CLI_CMD_KICK,    /* :kick group user */
    CLI_CMD_OWNER,   /* :owner group user */
    CLI_CMD_DELETE,  /* :delete group */
    CLI_CMD_HELP,    /* :help */
    CLI_CMD_QUIT,    /* :q */
    CLI_CMD_LOGOUT_ALL, /* :logout-all: :q, revoking every token of the user */
} cli_cmd_kind;

/* :create's words after the group. */
#define CLI_CREATE_PRIVATE 1u  /* private: joined by invitation only */
#define CLI_CREATE_SHARED 2u   /* shared: members read what was said before they joined */
/* :leave! : leave even as the last member, which deletes the group. */
#define CLI_LEAVE_ANYWAY 4u

typedef struct cli_command cli_command;
struct cli_command {
    cli_command *next;    /* the client's queues link commands through this */
    cli_cmd_kind kind;
    const char *target;   /* user or group; points into this record; "" if none */
    const char *text;     /* message text; points into this record; "" if none */
    char scope;           /* :history: '@' (target is a user) or '#' (a group) */
    uint32_t number;      /* :create: max members; :history: how many; 0 = the server's default */
    char *line;           /* the line as typed, trimmed: what "! not confirmed" shows */
    const char *user;     /* :invite, :kick, :owner: the user; points into this record; "" */
    unsigned flags;       /* :create: CLI_CREATE_PRIVATE | CLI_CREATE_SHARED; :leave!: CLI_LEAVE_ANYWAY */
    char buf[];           /* storage for line, target and text */
};

/* Parses one line (without its newline; len bytes, NUL not needed).
 * Returns 0 and a new *out (free with cli_command_free), or 0 and *out NULL
 * for a blank line. Errors: IM_EINVAL with a sentence for the user in why
 * ("unknown command ...", "usage: ..."); IM_ENOMEM. */
int cli_command_parse(const char *line, size_t len, cli_command **out, char *why, size_t why_len);

void cli_command_free(cli_command *c); /* NULL is fine */

/* The i-th word of the colon commands ("create", "join", ... without the
 * colon), or NULL past the last: for completion. Static strings. */
const char *cli_command_word(size_t i);

/* The lines :help prints, NULL-terminated; static strings. */
extern const char *const cli_help_lines[];

#endif
