/* interfaces/cli/cli_print.c: formats what the server said for people. */
#include "cli_print.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static struct {
    void (*hide)(void *);
    void (*show)(void *);
    void *arg;
    bool interactive;
} screen;

void cli_print_set_screen(void (*hide)(void *arg), void (*show)(void *arg), void *arg)
{
    screen.hide = hide;
    screen.show = show;
    screen.arg = arg;
}

void cli_print_set_interactive(bool on)
{
    screen.interactive = on;
}

/* Around every write: the editor's line goes away, our lines are written
 * and flushed, the editor's line comes back below them. */
static void begin(void)
{
    if (screen.hide)
        screen.hide(screen.arg);
}

static void end(void)
{
    fflush(stdout);
    if (screen.show)
        screen.show(screen.arg);
}

void cli_print(const char *fmt, ...)
{
    begin();
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    end();
}

/* Writes s (n bytes, not NUL-terminated) with control characters replaced:
 * a message body must not move the cursor, clear the screen or start a line
 * that a reader would take for an event of its own. UTF-8 passes as is. */
static void put_sanitized(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = s[i];
        fputc(ch < 0x20 || ch == 0x7f ? '?' : ch, stdout);
    }
}

static void put_str(const char *s)
{
    put_sanitized((const uint8_t *)s, strlen(s));
}

/* A message body: its lines one below the other, each after the first
 * indented by indent; a tab becomes the spaces to the next multiple of 8 of
 * its line; CR LF ends a line like LF; every other control character is
 * '?'. Line ends at the very end are dropped. */
static void put_body(const uint8_t *s, size_t n, const char *indent)
{
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = s[i];
        if (ch == '\r' && i + 1 < n && s[i + 1] == '\n')
            continue;
        if (ch == '\n') {
            fputc('\n', stdout);
            fputs(indent, stdout);
            col = 0;
        } else if (ch == '\t') {
            do
                fputc(' ', stdout);
            while (++col % 8 != 0);
        } else {
            fputc(ch < 0x20 || ch == 0x7f ? '?' : ch, stdout);
            col++;
        }
    }
}

/* prefix: "" for a live delivery, "  " for an item of a history. me: NULL
 * for a live delivery, which is always to "you"; in a history, the user
 * whose own messages show their receiver. */
static void put_delivery(const Imcore__Delivery *d, const char *prefix, const char *me)
{
    time_t t = d->server_time_ms ? (time_t)(d->server_time_ms / 1000) : time(NULL);
    struct tm tm;
    char stamp[16] = "??:??:??";
    if (localtime_r(&t, &tm))
        strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);

    const char *from = d->from ? d->from : "";
    printf("%s[%s] ", prefix, stamp);
    if (d->kind == IMCORE__DELIVERY__KIND__NOTICE) {
        /* The server speaking, about a group: its sentence says who did what. */
        fputs("notice @ ", stdout);
        put_str(d->group ? d->group : "");
        fputs(": ", stdout);
        put_body(d->body.data, d->body.len, me ? "      " : "    ");
        fputc('\n', stdout);
        return;
    }
    /* On a terminal a history is told from your side: you wrote, you read. */
    bool mine = me && strcmp(from, me) == 0;
    if (mine && screen.interactive)
        fputs("you", stdout);
    else
        put_str(from);
    if (d->kind == IMCORE__DELIVERY__KIND__GROUP) {
        fputs(" @ ", stdout);
        put_str(d->group ? d->group : "");
    } else {
        fputs(" \xe2\x86\x92 ", stdout); /* U+2192 RIGHTWARDS ARROW */
        if (mine && d->to && d->to[0])
            put_str(d->to);
        else
            fputs("you", stdout);
    }
    fputs(": ", stdout);
    put_body(d->body.data, d->body.len, me ? "      " : "    ");
    fputc('\n', stdout);
}

void cli_print_delivery(const Imcore__Delivery *d)
{
    begin();
    put_delivery(d, "", NULL);
    end();
}

void cli_print_history(const Imcore__HistoryResult *r, const char *me)
{
    begin();
    for (size_t i = 0; i < r->n_messages; i++)
        put_delivery(r->messages[i], "  ", me);
    printf("* %zu message%s\n", r->n_messages, r->n_messages == 1 ? "" : "s");
    end();
}

const char *cli_error_name(int wire_code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&imcore__error_code__descriptor, wire_code);
    if (v)
        return v->name;
    static _Thread_local char unknown[24];
    snprintf(unknown, sizeof unknown, "ERROR_%d", wire_code);
    return unknown;
}

void cli_print_error(const Imcore__Error *e)
{
    begin();
    fputs("! ", stdout);
    fputs(cli_error_name((int)e->code), stdout);
    if (e->message && e->message[0]) {
        fputs(": ", stdout);
        put_str(e->message);
    }
    fputc('\n', stdout);
    end();
}

void cli_print_groups(const Imcore__GroupListResult *r)
{
    begin();
    for (size_t i = 0; i < r->n_groups; i++) {
        const Imcore__GroupInfo *g = r->groups[i];
        fputs("  ", stdout);
        put_str(g->group ? g->group : "");
        fputs("  owner=", stdout);
        put_str(g->owner ? g->owner : "");
        printf(" members=%u/%u%s%s%s%s\n", g->members, g->max_members,
               g->member ? " [member]" : "", g->is_private ? " [private]" : "",
               g->invited ? " [invited]" : "", g->share_history ? " [shared history]" : "");
    }
    end();
}

void cli_print_groups_end(uint32_t total, size_t shown)
{
    size_t n = total > shown ? total : shown;
    begin();
    printf("* %zu group%s%s\n", n, n == 1 ? "" : "s", total > shown ? " (list cut short)" : "");
    end();
}

void cli_print_users(const Imcore__OnlineUsersResult *r)
{
    begin();
    for (size_t i = 0; i < r->n_users; i++) {
        const Imcore__UserInfo *u = r->users[i];
        const char *id = u->user_id ? u->user_id : "";
        const char *name = u->display_name && u->display_name[0] ? u->display_name : id;
        fputs("  ", stdout);
        put_str(id);
        /* To a person the id said twice says nothing; scripts keep the
         * pair in every line. */
        if (!screen.interactive || strcmp(name, id) != 0) {
            fputs(" (", stdout);
            put_str(name);
            fputc(')', stdout);
        }
        fputc('\n', stdout);
    }
    end();
}

void cli_print_users_end(uint32_t total, size_t shown)
{
    size_t n = total > shown ? total : shown;
    begin();
    printf("* %zu online%s\n", n, total > shown ? " (list cut short)" : "");
    end();
}
