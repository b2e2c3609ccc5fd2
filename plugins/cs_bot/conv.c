/* plugins/cs_bot/conv.c: the conversations between customers and agents:
 * what the bot does with each message, login, logout and tick (people.c
 * keeps the customers, the agents and the queue it works on).
 *
 * Who is an agent is asked of the host (the members of the agents group)
 * each time it matters, so that a join counts at once. Everything here runs
 * on the plugin loop, one call at a time. Every state change of a
 * conversation is written to the key-value map (store.c) as it happens. */
/* strdup, strndup, clock_gettime: POSIX, which -std=c11 alone hides. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bot.h"

/* ---- labels and texts ---- */

typedef struct label {
    char s[128];
} label;

static label customer_label(const bot *b, const customer *c)
{
    label l;
    if (b->reveal_ids)
        snprintf(l.s, sizeof l.s, "%s", c->id);
    else
        snprintf(l.s, sizeof l.s, "customer #%lu", c->conv);
    return l;
}

static label agent_label(const bot *b, const agent *a)
{
    label l;
    if (b->reveal_ids)
        snprintf(l.s, sizeof l.s, "%s", a->id);
    else
        snprintf(l.s, sizeof l.s, "Agent %lu", a->k);
    return l;
}

/* "#3, #5": an agent's conversations, for the texts that list them. */
static label conv_list(const agent *a)
{
    label l = {{0}};
    size_t n = 0;
    for (size_t i = 0; i < a->n && n + 24 < sizeof l.s; i++)
        n += (size_t)snprintf(l.s + n, sizeof l.s - n, "%s#%lu", i ? ", " : "", a->custs[i]->conv);
    return l;
}

static void keep_line(bot *b, customer *c, const char *text)
{
    size_t len = strlen(text);
    if (len == 0 || c->nkept == KEPT_MAX)
        return;
    if (len > KEPT_LINE_MAX) {
        len = KEPT_LINE_MAX;
        while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
            len--; /* not in the middle of a UTF-8 sequence */
    }
    char *line = strndup(text, len);
    if (!line)
        return;
    c->kept[c->nkept++] = line;
    store_kept(b, c, c->nkept - 1);
}

/* The lines are the agent's now, or the conversation is over. */
static void drop_kept(bot *b, customer *c)
{
    store_drop_kept(b, c);
    customer_clear_kept(c);
}

/* "#N wrote: TEXT" for each kept line. */
static void send_kept(bot *b, const agent *a, const customer *c)
{
    for (unsigned i = 0; i < c->nkept; i++)
        say(b, a->id, "#%lu wrote: %s", c->conv, c->kept[i]);
}

/* Passes text on; tells the sender when the host refuses it as too long
 * (the prefix can push a message of max_body_bytes over). */
static void relay(bot *b, const char *from, const char *to, const char *prefix,
                  const char *text)
{
    size_t pl = strlen(prefix), tl = strlen(text);
    char *body = malloc(pl + tl + 1);
    if (!body) {
        b->api->log(b->host, IMCORE_LOG_ERROR, "out of memory relaying to %s", to);
        return;
    }
    memcpy(body, prefix, pl);
    memcpy(body + pl, text, tl + 1);
    if (say_text(b, to, body, pl + tl) == IM_ETOOBIG)
        say(b, from, "Your message is too long to pass on. Please split it.");
    free(body);
}

/* ---- agents ---- */

typedef struct members {
    char **id;
    size_t n, cap;
    const char *self;
    bool oom;
} members;

static int add_member(void *arg, const char *id)
{
    members *m = arg;
    if (strcmp(id, m->self) == 0)
        return 0; /* the service account may be in its own agents group */
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 16;
        char **ids = realloc(m->id, cap * sizeof *ids);
        if (!ids) {
            m->oom = true;
            return 1;
        }
        m->id = ids;
        m->cap = cap;
    }
    if (!(m->id[m->n] = strdup(id))) {
        m->oom = true;
        return 1;
    }
    m->n++;
    return 0;
}

static members members_of(bot *b)
{
    members m = {.self = b->account};
    b->api->group_members(b->host, b->group, add_member, &m);
    if (m.oom)
        b->api->log(b->host, IMCORE_LOG_ERROR, "out of memory reading group %s", b->group);
    return m;
}

static void members_free(members *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->id[i]);
    free(m->id);
}

static bool is_member(const members *m, const char *id)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->id[i], id) == 0)
            return true;
    return false;
}

/* An agent is a member of the agents group, or someone who still has
 * customers (left the group in the middle of a conversation). */
static bool is_agent(bot *b, const char *id)
{
    agent *a = agent_find(b, id);
    if (a && a->n > 0)
        return true;
    members m = members_of(b);
    bool yes = is_member(&m, id);
    members_free(&m);
    return yes;
}

/* The online member, not `except`, with room for a customer and the fewest
 * customers; ties go to the one whose last assignment is oldest, then to
 * the lower user id. NULL if none. */
static agent *least_busy(bot *b, const members *m, const agent *except)
{
    const char *best = NULL;
    size_t best_n = 0;
    uint64_t best_last = 0;
    for (size_t i = 0; i < m->n; i++) {
        const char *id = m->id[i];
        if (except && strcmp(id, except->id) == 0)
            continue;
        agent *a = agent_find(b, id);
        size_t n = a ? a->n : 0;
        uint64_t last = a ? a->last_assigned : 0;
        if (n >= b->max_per_agent || !b->api->is_online(b->host, id))
            continue;
        if (!best || n < best_n || (n == best_n && last < best_last) ||
            (n == best_n && last == best_last && strcmp(id, best) < 0)) {
            best = id;
            best_n = n;
            best_last = last;
        }
    }
    return best ? agent_get(b, best) : NULL;
}

/* Gives c to a: their K on the first time, the bookkeeping and the record.
 * False (nothing changed) when out of memory. */
static bool hand_over(bot *b, customer *c, agent *a)
{
    if (!agent_add_customer(a, c))
        return false;
    if (a->k == 0) {
        a->k = b->next_k++;
        store_agent(b, a);
    }
    a->last_assigned = ++b->assign_seq;
    c->agent = a;
    c->state = ST_CHATTING;
    c->told_pos = 0;
    store_conv(b, c);
    return true;
}

/* Tells every waiting customer whose place changed since they were last
 * told. Those never told (told_pos 0) are told by whoever queued them. */
static void tell_places(bot *b)
{
    unsigned pos = 1;
    for (customer *c = b->qhead; c; c = c->next, pos++) {
        if (c->told_pos != 0 && c->told_pos != pos) {
            c->told_pos = pos;
            say(b, c->id, "You are now number %u in the queue.", pos);
        }
    }
}

void bot_assign(bot *b)
{
    if (!b->qhead)
        return;
    members m = members_of(b);
    for (;;) {
        agent *a = least_busy(b, &m, NULL);
        if (!a)
            break;
        /* Offline: keeps the place, passed over. So is a customer who has
         * joined the agents since (never to be their own customer). */
        customer *c = b->qhead;
        while (c && (!b->api->is_online(b->host, c->id) || is_member(&m, c->id)))
            c = c->next;
        if (!c)
            break;
        queue_remove(b, c);
        if (!hand_over(b, c, a)) {
            queue_push_front(b, c); /* out of memory: try again at the next tick */
            break;
        }
        say(b, c->id, "You are now talking to %s.", agent_label(b, a).s);
        say(b, a->id, "New customer #%lu (%s).", c->conv, customer_label(b, c).s);
        send_kept(b, a, c);
    }
    members_free(&m);
    tell_places(b);
}

void bot_agent_left(bot *b, const char *id)
{
    agent *a = agent_find(b, id);
    if (!a || a->n == 0)
        return;
    /* Back to the head of the queue, in the order of their numbers: the
     * highest goes in front first. */
    for (size_t i = a->n; i-- > 0;) {
        customer *c = a->custs[i];
        c->state = ST_WAITING;
        c->agent = NULL;
        queue_push_front(b, c);
        store_conv(b, c);
    }
    size_t n = a->n;
    a->n = 0;
    customer *c = b->qhead;
    for (size_t i = 0; i < n; i++, c = c->next) {
        c->told_pos = (unsigned)i + 1;
        say(b, c->id, "Your agent had to leave. You are number %u in the queue.", c->told_pos);
    }
    tell_places(b);
    bot_assign(b);
}

/* ---- conversations ---- */

static void open_conversation(bot *b, customer *c, const char *first_line, uint64_t now)
{
    drop_kept(b, c); /* none in the normal course: the last conversation's went at its end */
    c->conv = b->next_conv++;
    c->started_ms = now;
    c->ended_ms = 0;
    c->agent = NULL;
    c->state = ST_WAITING;
    c->told_pos = 0;
    if (first_line)
        keep_line(b, c, first_line);
    queue_append(b, c);
    b->total++;
    store_next(b);
    store_conv(b, c);
    bot_assign(b);
    if (c->state == ST_WAITING) {
        c->told_pos = queue_pos(b, c);
        say(b, c->id, "All our agents are busy. You are number %u in the queue.", c->told_pos);
    }
}

static void end_conversation(bot *b, customer *c, uint64_t now)
{
    agent *a = c->agent;
    agent_remove_customer(a, c);
    c->state = ST_RATING;
    c->ended_ms = now;
    drop_kept(b, c);
    store_conv(b, c);
    say(b, c->id, "This conversation has ended. Please rate it from 1 (poor) to 5 (excellent).");
    say(b, a->id, "#%lu ended.", c->conv);
    bot_assign(b);
}

static void close_conversation(bot *b, customer *c, int rating)
{
    store_closed(b, c, rating);
    if (rating > 0) {
        b->rated++;
        b->rating_sum += (unsigned long)rating;
    }
    c->state = ST_BOT;
    c->conv = 0;
    c->agent = NULL;
}

static bool ascii_ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a - 'A' + 'a') : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b - 'A' + 'a') : *b;
        if (x != y)
            return false;
    }
    return *a == *b;
}

static void customer_text(bot *b, customer *c, const char *text, uint64_t now)
{
    if (!c->greeted) {
        c->greeted = true;
        say(b, c->id, "%s", b->greeting);
    }
    switch (c->state) {
    case ST_RATING:
        if (text[0] >= '1' && text[0] <= '5' && text[1] == '\0') {
            close_conversation(b, c, text[0] - '0');
            say(b, c->id, "Thank you for your rating!");
            return;
        }
        close_conversation(b, c, 0); /* no rating: the text is for the bot */
        /* fall through */
    case ST_BOT: {
        if (ascii_ieq(text, "agent") || ascii_ieq(text, "human") || ascii_ieq(text, ":agent")) {
            open_conversation(b, c, NULL, now);
            return;
        }
        const char *answer = faq_answer(b->faq, text, strlen(text));
        if (answer)
            say(b, c->id, "%s", answer);
        else
            open_conversation(b, c, text, now);
        return;
    }
    case ST_WAITING:
        keep_line(b, c, text);
        c->told_pos = queue_pos(b, c);
        say(b, c->id, "You are number %u in the queue. An agent will be with you soon.",
            c->told_pos);
        return;
    case ST_CHATTING: {
        if (ascii_ieq(text, ":end")) {
            end_conversation(b, c, now);
            return;
        }
        char prefix[32];
        snprintf(prefix, sizeof prefix, "#%lu: ", c->conv);
        relay(b, c->id, c->agent->id, prefix, text);
        return;
    }
    }
}

/* ---- agents' commands ---- */

#define COMMANDS ":list, :end [#N], :transfer [#N] [AGENT_ID], :stats, :help"

/* "#N" at *p (then spaces or the end): its number, and p moved past it. */
static unsigned long take_conv_number(const char **p)
{
    const char *s = *p;
    if (*s != '#' || s[1] < '0' || s[1] > '9')
        return 0;
    char *end;
    unsigned long n = strtoul(s + 1, &end, 10);
    if (*end != '\0' && *end != ' ')
        return 0;
    while (*end == ' ')
        end++;
    *p = end;
    return n;
}

/* The conversation a command means: #num (0: the agent's only one). NULL,
 * after telling the agent why, if there is no such one. */
static customer *command_conv(bot *b, agent *a, unsigned long num, const char *cmd)
{
    if (num) {
        customer *c = agent_conv(a, num);
        if (!c)
            say(b, a->id, "#%lu is not one of your customers.", num);
        return c;
    }
    if (a->n == 1)
        return a->custs[0];
    if (a->n == 0)
        say(b, a->id, "You have no customers right now (%zu waiting).", b->qlen);
    else
        say(b, a->id, "You have several customers: %s. Name one, as in %s #%lu.",
            conv_list(a).s, cmd, a->custs[0]->conv);
    return NULL;
}

static void cmd_list(bot *b, agent *a)
{
    if (a->n == 0) {
        say(b, a->id, "You have no customers. Waiting in the queue: %zu.", b->qlen);
        return;
    }
    char text[1024];
    size_t n = (size_t)snprintf(text, sizeof text, "Your customers:");
    for (size_t i = 0; i < a->n && n < sizeof text; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s #%lu %s", i ? "," : "",
                              a->custs[i]->conv, customer_label(b, a->custs[i]).s);
    say(b, a->id, "%s. Waiting in the queue: %zu.", text, b->qlen);
}

static void cmd_transfer(bot *b, agent *a, customer *c, const char *to)
{
    members m = members_of(b);
    agent *dest = NULL;
    if (*to && strcmp(to, a->id) != 0 && is_member(&m, to) && b->api->is_online(b->host, to)) {
        agent *t = agent_get(b, to);
        if (t && t->n < b->max_per_agent)
            dest = t;
    }
    if (!dest)
        dest = least_busy(b, &m, a);
    members_free(&m);
    if (!dest) {
        say(b, a->id, "No other agent can take #%lu now.", c->conv);
        return;
    }
    agent_remove_customer(a, c);
    if (!hand_over(b, c, dest)) {
        agent_add_customer(a, c); /* it fitted a moment ago */
        say(b, a->id, "No other agent can take #%lu now.", c->conv);
        return;
    }
    label label2 = agent_label(b, dest);
    say(b, c->id, "You are now talking to %s.", label2.s);
    say(b, dest->id, "Customer #%lu (%s) was transferred to you.", c->conv,
        customer_label(b, c).s);
    send_kept(b, dest, c);
    say(b, a->id, "#%lu transferred to %s.", c->conv, label2.s);
    bot_assign(b);
}

static void agent_command(bot *b, agent *a, const char *text, uint64_t now)
{
    size_t cl = strcspn(text, " ");
    char cmd[16];
    snprintf(cmd, sizeof cmd, "%.*s", (int)(cl < sizeof cmd ? cl : sizeof cmd - 1), text);
    const char *args = text + cl;
    while (*args == ' ')
        args++;
    unsigned long num = take_conv_number(&args);
    bool has_num = num != 0;

    if (ascii_ieq(cmd, ":list") && !*args && !has_num) {
        cmd_list(b, a);
    } else if (ascii_ieq(cmd, ":end") && !*args) {
        customer *c = command_conv(b, a, num, ":end");
        if (c)
            end_conversation(b, c, now);
    } else if (ascii_ieq(cmd, ":transfer") && !strchr(args, ' ')) {
        customer *c = command_conv(b, a, num, ":transfer");
        if (c)
            cmd_transfer(b, a, c, args);
    } else if (ascii_ieq(cmd, ":stats") && !*args && !has_num) {
        if (b->rated == 0)
            say(b, a->id, "%lu conversation%s, 0 rated, average rating -", b->total,
                b->total == 1 ? "" : "s");
        else
            say(b, a->id, "%lu conversation%s, %lu rated, average rating %.1f", b->total,
                b->total == 1 ? "" : "s", b->rated, (double)b->rating_sum / (double)b->rated);
    } else if (ascii_ieq(cmd, ":help")) {
        say(b, a->id, "Commands: " COMMANDS ". Anything else goes to your customer; "
            "with several, start it with #N.");
    } else if (ascii_ieq(cmd, ":end") || ascii_ieq(cmd, ":transfer") ||
               ascii_ieq(cmd, ":list") || ascii_ieq(cmd, ":stats")) {
        say(b, a->id, "Usage: %s. Commands: " COMMANDS ".",
            ascii_ieq(cmd, ":end") ? ":end [#N]"
            : ascii_ieq(cmd, ":transfer") ? ":transfer [#N] [AGENT_ID]" : cmd);
    } else {
        say(b, a->id, "Unknown command %.*s. Commands: " COMMANDS ".", (int)(cl > 40 ? 40 : cl),
            text);
    }
}

static void agent_text(bot *b, agent *a, const char *text, uint64_t now)
{
    if (text[0] == ':') {
        agent_command(b, a, text, now);
        return;
    }
    if (a->n == 0) {
        say(b, a->id, "You have no customers right now (%zu waiting).", b->qlen);
        return;
    }
    const char *rest = text;
    unsigned long num = take_conv_number(&rest);
    customer *c = num ? agent_conv(a, num) : NULL;
    if (c) {
        text = rest;
    } else if (a->n == 1) {
        c = a->custs[0]; /* "#7 ..." that is not theirs is just text */
    } else {
        say(b, a->id, "You have several customers: %s. Start your message with #N.",
            conv_list(a).s);
        return;
    }
    if (!*text) {
        say(b, a->id, "Nothing to send: write your message after #%lu.", c->conv);
        return;
    }
    char prefix[160];
    snprintf(prefix, sizeof prefix, "%s: ", agent_label(b, a).s);
    relay(b, a->id, c->id, prefix, text);
}

void bot_on_text(bot *b, const char *from, const char *text, uint64_t now_ms)
{
    if (is_agent(b, from)) {
        agent *a = agent_get(b, from);
        if (a)
            agent_text(b, a, text, now_ms);
        return;
    }
    customer *c = customer_get(b, from);
    if (c)
        customer_text(b, c, text, now_ms);
}
