/* interfaces/cli/cli_command.c: the little command language of imcore-cli.
 *
 * A line is copied twice into one allocation: once as typed (for messages
 * about it) and once cut into NUL-terminated words, so the record frees in
 * one call and its fields can never outlive each other. */
#include "cli_command.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imcore/errors.h"

const char *const cli_help_lines[] = {
    "  @user text             send text to user",
    "  #group text            send text to every member of group",
    "  :create group [max]    create group (max members; default: the server's)",
    "  :create group [max] private [shared]",
    "                         a private group, joined by invitation only; shared: its",
    "                         members read what was said before they joined",
    "  :join group            join group",
    "  :leave group           leave group; its last member types :leave! group",
    "                         (the group is then deleted, with its history)",
    "  :invite group user     invite user to your private group",
    "  :kick group user       remove user from your group, or withdraw the invitation",
    "  :owner group user      hand your group over to user, a member",
    "  :delete group          delete your group and its history",
    "  :groups                list groups (owner, members/max, [member] if you are one,",
    "                         [private], [invited], [shared history])",
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
    int args; /* 0: none; 1: a name; 2: a name and an optional number; 3: two names;
               * 4: :create's name, optional number and words */
} colon_commands[] = {
    { "create", CLI_CMD_CREATE, 4 }, { "join", CLI_CMD_JOIN, 1 },
    { "leave", CLI_CMD_LEAVE, 1 },   { "groups", CLI_CMD_GROUPS, 0 },
    { "olu", CLI_CMD_ONLINE, 0 },    { "help", CLI_CMD_HELP, 0 },
    { "q", CLI_CMD_QUIT, 0 },        { "quit", CLI_CMD_QUIT, 0 },
    { "history", CLI_CMD_HISTORY, 2 }, { "invite", CLI_CMD_INVITE, 3 },
    { "kick", CLI_CMD_KICK, 3 },     { "owner", CLI_CMD_OWNER, 3 },
    { "delete", CLI_CMD_DELETE, 1 }, { "logout-all", CLI_CMD_LOGOUT_ALL, 0 },
    { "leave!", CLI_CMD_LEAVE, 1 },
};

static const char *usage_of(cli_cmd_kind k)
{
    switch (k) {
    case CLI_CMD_PRIVATE: return "@user text";
    case CLI_CMD_GROUP: return "#group text";
    case CLI_CMD_CREATE: return ":create group [max_members] [private] [shared]";
    case CLI_CMD_INVITE: return ":invite group user";
    case CLI_CMD_KICK: return ":kick group user";
    case CLI_CMD_OWNER: return ":owner group user";
    case CLI_CMD_DELETE: return ":delete group";
    case CLI_CMD_JOIN: return ":join group";
    case CLI_CMD_LEAVE: return ":leave group (or :leave! group)";
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

/* An optional number ("" is none) into c->number. */
static bool parse_number(const char *num, cli_command *c)
{
    if (num[0] == '\0')
        return true;
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(num, &end, 10);
    if (*end != '\0' || errno != 0 || v > UINT32_MAX || num[0] == '-')
        return false;
    c->number = (uint32_t)v;
    return true;
}

/* :create's words after the group, in any order, each at most once: a
 * number (the member limit), "private", "shared". */
static bool parse_create_words(char **p, cli_command *c)
{
    bool number = false;
    for (const char *w = next_word(p); w[0] != '\0'; w = next_word(p)) {
        unsigned flag = strcmp(w, "private") == 0  ? CLI_CREATE_PRIVATE
                        : strcmp(w, "shared") == 0 ? CLI_CREATE_SHARED
                                                   : 0;
        if (flag ? (c->flags & flag) != 0 : number || !parse_number(w, c))
            return false;
        number = number || !flag;
        c->flags |= flag;
    }
    return true;
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
    *c = (cli_command){ .target = "", .text = "", .user = "" };
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
        /* Commands are words, not identifiers: ":HELP" is ":help". */
        if (strcasecmp(word, colon_commands[i].word) != 0)
            continue;
        c->kind = colon_commands[i].kind;
        if (c->kind == CLI_CMD_LEAVE && word[strlen(word) - 1] == '!')
            c->flags |= CLI_LEAVE_ANYWAY;
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
        if (args == 2 && !parse_number(next_word(&p), c))
            return fail(why, why_len, c, "usage: %s", usage_of(c->kind));
        if (args == 3 && (c->user = next_word(&p))[0] == '\0')
            return fail(why, why_len, c, "usage: %s", usage_of(c->kind));
        if (args == 4 && !parse_create_words(&p, c))
            return fail(why, why_len, c, "usage: %s", usage_of(c->kind));
        if (next_word(&p)[0] != '\0')
            return fail(why, why_len, c, "usage: %s", usage_of(c->kind));
        *out = c;
        return 0;
    }
    return fail(why, why_len, c, "unknown command \"%s\" (:help lists the commands)", c->line);
}

const char *cli_command_word(size_t i)
{
    return i < sizeof colon_commands / sizeof colon_commands[0] ? colon_commands[i].word : NULL;
}

void cli_command_free(cli_command *c)
{
    free(c);
}
