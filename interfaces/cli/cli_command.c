/* interfaces/cli/cli_command.c: the little command language of imcore-cli.
 *
 * A line is copied twice into one allocation: once as typed (for messages
 * about it) and once cut into NUL-terminated words, so the record frees in
 * one call and its fields can never outlive each other. */
#include "cli_command.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imcore/errors.h"

const char *const cli_help_lines[] = {
    "  @user text             send text to user",
    "  #group text            send text to every member of group",
    "  :create group [max]    create group (max members; default: the server's)",
    "  :join group            join group",
    "  :leave group           leave group",
    "  :groups                list groups (owner, members/max, [member] if you are one)",
    "  :olu                   list online users",
    "  :history @user [n]     the last n messages with user (default: the server's)",
    "  :history #group [n]    the last n messages of group",
    "  :help                  this list",
    "  :q                     log out and exit",
    "  :logout-all            log out everywhere (every device logs in again) and exit",
    NULL,
};

static const struct {
    const char *word;
    cli_cmd_kind kind;
    int args; /* 0: none; 1: a name; 2: a name and an optional number */
} colon_commands[] = {
    { "create", CLI_CMD_CREATE, 2 }, { "join", CLI_CMD_JOIN, 1 },
    { "leave", CLI_CMD_LEAVE, 1 },   { "groups", CLI_CMD_GROUPS, 0 },
    { "olu", CLI_CMD_ONLINE, 0 },    { "help", CLI_CMD_HELP, 0 },
    { "q", CLI_CMD_QUIT, 0 },        { "quit", CLI_CMD_QUIT, 0 },
    { "history", CLI_CMD_HISTORY, 2 }, { "logout-all", CLI_CMD_LOGOUT_ALL, 0 },
};

static const char *usage_of(cli_cmd_kind k)
{
    switch (k) {
    case CLI_CMD_PRIVATE: return "@user text";
    case CLI_CMD_GROUP: return "#group text";
    case CLI_CMD_CREATE: return ":create group [max_members]";
    case CLI_CMD_JOIN: return ":join group";
    case CLI_CMD_LEAVE: return ":leave group";
    case CLI_CMD_GROUPS: return ":groups";
    case CLI_CMD_ONLINE: return ":olu";
    case CLI_CMD_QUIT: return ":q";
    case CLI_CMD_LOGOUT_ALL: return ":logout-all";
    case CLI_CMD_HISTORY: return ":history @user|#group [n]";
    default: return ":help";
    }
}

/* Cuts the next whitespace-separated word out of *p (writing a NUL after it)
 * and returns it, or "" at the end of the line. */
static char *next_word(char **p)
{
    char *s = *p;
    while (*s && isspace((unsigned char)*s))
        s++;
    char *w = s;
    while (*s && !isspace((unsigned char)*s))
        s++;
    if (*s)
        *s++ = '\0';
    *p = s;
    return w;
}

static int fail(char *why, size_t why_len, cli_command *c, const char *fmt, const char *arg)
{
    snprintf(why, why_len, fmt, arg);
    free(c);
    return IM_EINVAL;
}

int cli_command_parse(const char *line, size_t len, cli_command **out, char *why, size_t why_len)
{
    *out = NULL;
    while (len > 0 && isspace((unsigned char)*line))
        line++, len--;
    while (len > 0 && isspace((unsigned char)line[len - 1]))
        len--;
    if (len == 0)
        return 0;

    cli_command *c = malloc(sizeof *c + 2 * (len + 1));
    if (!c)
        return IM_ENOMEM;
    *c = (cli_command){ .target = "", .text = "" };
    c->line = c->buf;
    memcpy(c->line, line, len);
    c->line[len] = '\0';
    char *work = c->buf + len + 1;
    memcpy(work, line, len); /* cut into words below */
    work[len] = '\0';

    if (work[0] == '@' || work[0] == '#') {
        c->kind = work[0] == '@' ? CLI_CMD_PRIVATE : CLI_CMD_GROUP;
        char *p = work + 1;
        if (*p == '\0' || isspace((unsigned char)*p))
            return fail(why, why_len, c, "usage: %s", usage_of(c->kind));
        c->target = next_word(&p);
        while (*p && isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            return fail(why, why_len, c, "usage: %s", usage_of(c->kind));
        c->text = p;
        *out = c;
        return 0;
    }
    if (work[0] != ':')
        return fail(why, why_len, c, "unknown command \"%s\" (:help lists the commands)",
                    c->line);

    char *p = work + 1;
    const char *word = next_word(&p);
    for (size_t i = 0; i < sizeof colon_commands / sizeof colon_commands[0]; i++) {
        if (strcmp(word, colon_commands[i].word) != 0)
            continue;
        c->kind = colon_commands[i].kind;
        int args = colon_commands[i].args;
        if (args >= 1) {
            c->target = next_word(&p);
            if (c->target[0] == '\0')
                return fail(why, why_len, c, "usage: %s", usage_of(c->kind));
            if (c->kind == CLI_CMD_HISTORY) {
                c->scope = c->target[0];
                if ((c->scope != '@' && c->scope != '#') || c->target[1] == '\0')
                    return fail(why, why_len, c, "usage: %s", usage_of(c->kind));
                c->target++;
            }
        }
        if (args == 2) {
            const char *num = next_word(&p);
            if (num[0] != '\0') {
                char *end = NULL;
                errno = 0;
                unsigned long v = strtoul(num, &end, 10);
                if (*end != '\0' || errno != 0 || v > UINT32_MAX || num[0] == '-')
                    return fail(why, why_len, c, "usage: %s", usage_of(c->kind));
                c->number = (uint32_t)v;
            }
        }
        if (next_word(&p)[0] != '\0')
            return fail(why, why_len, c, "usage: %s", usage_of(c->kind));
        *out = c;
        return 0;
    }
    return fail(why, why_len, c, "unknown command \"%s\" (:help lists the commands)", c->line);
}

void cli_command_free(cli_command *c)
{
    free(c);
}
