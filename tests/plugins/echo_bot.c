/* A test plugin that speaks for the account "echo" and uses every host
 * function of the plugin API, so that a test can check each one through a
 * real server with real clients. Commands, as private messages to echo:
 *
 *   TEXT                 -> "echo #N: TEXT" (N counts messages, kept in kv)
 *   :later MS TEXT       -> after MS ms (a one-shot timer): "later: TEXT"
 *   :tick N              -> "tick 1" .. "tick N" every 20 ms, then the timer
 *                           cancels itself from its own callback
 *   :slow TEXT           -> run_blocking: "slow: TEXT" in capitals
 *   :thread TEXT         -> sent from the blocking thread: "from-thread: TEXT"
 *   :stopwork MS TEXT    -> run_blocking work that takes MS ms; its done logs
 *                           whether run_blocking still takes work ("running")
 *                           or refuses it ("stopping"): to stop the server
 *                           under it (the shutdown callback logs "shutdown")
 *   :online USER         -> "USER is online" / "USER is offline"
 *   :members GROUP       -> "members of GROUP: a,b" / "no group GROUP"
 *   :join GROUP          -> echo joins GROUP; "joining GROUP"
 *   :seen USER           -> "USER: N logins, M logouts" (this run)
 *   :limits              -> the server's limits, as limits() gives them
 *   :keys                -> kv_each on the loop (refused: "keys here: -N"),
 *                           then in run_blocking's work ("keys blocking: N")
 *   :create GROUP, :part GROUP -> group_call (create, leave); its done says
 *                           "group GROUP create: RC" / "group GROUP leave: RC"
 *   :putget KEY VALUE    -> kv_put then, at once, kv_get of KEY: "got KEY: RC VALUE"
 *   :get KEY             -> kv_get: "got KEY: RC VALUE" (RC -23: absent)
 *   :config              -> "config delay_ms D limit L loud B", its config
 *                           (keys delay, a duration; limit, 1..1000; loud, a
 *                           boolean), read with the typed getters
 *   :gate PATH           -> blocks the plugin loop until PATH exists (at
 *                           most 20 s), then "gate PATH open": to test what
 *                           piles up behind a busy plugin, and that a
 *                           message being handled at a crash comes again
 * A group message in a group echo is in gets "echo heard FROM" in the group.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "imcore/plugin.h"

#define ACCOUNT "echo"

typedef struct seen {
    struct seen *next;
    char user[65];
    unsigned logins, logouts;
} seen;

typedef struct bot {
    const imcore_host_api *api;
    imcore_host *host;
    unsigned long count;
    uint64_t tick_timer;
    unsigned ticks, tick_limit;
    char tick_to[65];
    seen *seen;
    /* Its config (typed getters): delay (duration), limit (number), loud (bool). */
    uint64_t delay_ms, limit;
    int loud;
    char words[128];              /* config_list: "words", items joined with '+' */
} bot;

typedef struct later {
    bot *b;
    char to[65];
    char text[256];
    unsigned long ms;             /* :stopwork */
} later;

static void say(bot *b, const char *to, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(bot *b, const char *to, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (n > 0)
        b->api->send_private(b->host, ACCOUNT, to, (const uint8_t *)text,
                             (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
}

static seen *seen_of(bot *b, const char *user)
{
    for (seen *s = b->seen; s; s = s->next)
        if (strcmp(s->user, user) == 0)
            return s;
    seen *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    snprintf(s->user, sizeof s->user, "%s", user);
    s->next = b->seen;
    b->seen = s;
    return s;
}

static int load_count(void *arg, const char *key, const void *value, size_t len)
{
    bot *b = arg;
    char text[32];
    if (strcmp(key, "count") == 0 && len < sizeof text) {
        memcpy(text, value, len);
        text[len] = '\0';
        b->count = strtoul(text, NULL, 10);
    }
    return 0;
}

static void on_start(void *state)
{
    bot *b = state;
    int n = b->api->kv_each(b->host, "", load_count, b);
    b->api->log(b->host, IMCORE_LOG_INFO, "started: %d keys, count %lu", n, b->count);
}

static void on_timer(void *state, uint64_t id, void *arg)
{
    bot *b = state;
    if (id == b->tick_timer) {
        say(b, b->tick_to, "tick %u", ++b->ticks);
        if (b->ticks == b->tick_limit)
            b->api->timer_cancel(b->host, id);
        return;
    }
    later *l = arg;
    say(b, l->to, "later: %s", l->text);
    free(l);
}

static void slow_work(void *arg)
{
    later *l = arg;
    for (char *p = l->text; *p; p++)
        *p = (char)toupper((unsigned char)*p);
}

static void slow_done(void *state, void *arg)
{
    later *l = arg;
    say(state, l->to, "slow: %s", l->text);
    free(l);
}

static later *later_new(bot *b, const char *to, const char *text);

static void got_value(void *state, int rc, const void *value, size_t len, void *arg)
{
    later *l = arg;
    say(state, l->to, "got %s: %d %.*s", l->text, rc, (int)len, value ? (const char *)value : "");
    free(l);
}

static void get_value(bot *b, const char *from, const char *key)
{
    later *l = later_new(b, from, key);
    if (l && b->api->kv_get(b->host, key, got_value, l) != 0) {
        say(b, from, "get %s refused at once", key);
        free(l);
    }
}

typedef struct group_ask {
    char to[65];
    char group[65];
    const char *what;
} group_ask;

static void group_done(void *state, int rc, void *arg)
{
    group_ask *g = arg;
    char text[200];
    snprintf(text, sizeof text, "group %s %s: %d", g->group, g->what, rc);
    say(state, g->to, "%s", text);
    free(g);
}

static void group_ask_for(bot *b, const char *from, const char *group, imcore_group_op op)
{
    group_ask *g = calloc(1, sizeof *g);
    if (!g)
        return;
    snprintf(g->to, sizeof g->to, "%s", from);
    snprintf(g->group, sizeof g->group, "%s", group);
    g->what = op == IMCORE_GROUP_CREATE ? "create" : op == IMCORE_GROUP_JOIN ? "join" : "leave";
    int rc = b->api->group_call(b->host, ACCOUNT, op, group, group_done, g);
    if (rc != 0) {
        say(b, from, "group %s %s refused at once: %d", group, g->what, rc);
        free(g);
    }
}

static int count_key(void *arg, const char *key, const void *value, size_t len)
{
    (void)key, (void)value, (void)len;
    ++*(int *)arg;
    return 0;
}

static void keys_work(void *arg)
{
    later *l = arg;
    int seen = 0;
    int n = l->b->api->kv_each(l->b->host, "", count_key, &seen);
    snprintf(l->text, sizeof l->text, "%d", n);
}

static void keys_done(void *state, void *arg)
{
    later *l = arg;
    say(state, l->to, "keys blocking: %s", l->text);
    free(l);
}

static void thread_work(void *arg)
{
    later *l = arg;
    char text[300];
    int n = snprintf(text, sizeof text, "from-thread: %s", l->text);
    l->b->api->send_private(l->b->host, ACCOUNT, l->to, (const uint8_t *)text, (size_t)n);
    free(l);
}

static void stop_work(void *arg)
{
    later *l = arg;
    l->b->api->log(l->b->host, IMCORE_LOG_INFO, "stopwork %s: working", l->text);
    struct timespec ms = { .tv_sec = (time_t)(l->ms / 1000),
                           .tv_nsec = (long)(l->ms % 1000) * 1000000 };
    nanosleep(&ms, NULL);
}

static void noop(void *arg)
{
    (void)arg;
}

static void stop_done(void *state, void *arg)
{
    bot *b = state;
    later *l = arg;
    int rc = b->api->run_blocking(b->host, noop, NULL, NULL);
    b->api->log(b->host, IMCORE_LOG_INFO, "stopwork %s: done, %s", l->text,
                rc == IM_ESHUTDOWN ? "stopping" : rc == 0 ? "running" : "failing");
    free(l);
}

static int add_member(void *arg, const char *user)
{
    char *list = arg;
    size_t n = strlen(list);
    snprintf(list + n, 400 - n, "%s%s", n ? "," : "", user);
    return 0;
}

static later *later_new(bot *b, const char *to, const char *text)
{
    later *l = calloc(1, sizeof *l);
    if (l) {
        l->b = b;
        snprintf(l->to, sizeof l->to, "%s", to);
        snprintf(l->text, sizeof l->text, "%s", text);
    }
    return l;
}

static void command(bot *b, const char *from, const char *text)
{
    char arg[256] = "", key[65] = "";
    unsigned long n = 0;
    if (sscanf(text, ":later %lu %255[^\n]", &n, arg) == 2) {
        later *l = later_new(b, from, arg);
        if (l && !b->api->timer_start(b->host, n, 0, l))
            free(l);
    } else if (sscanf(text, ":tick %lu", &n) == 1) {
        snprintf(b->tick_to, sizeof b->tick_to, "%s", from);
        b->ticks = 0;
        b->tick_limit = (unsigned)n;
        b->tick_timer = b->api->timer_start(b->host, 20, 20, NULL);
    } else if (sscanf(text, ":slow %255[^\n]", arg) == 1) {
        later *l = later_new(b, from, arg);
        if (l && b->api->run_blocking(b->host, slow_work, slow_done, l) != 0)
            free(l);
    } else if (sscanf(text, ":stopwork %lu %255[^\n]", &n, arg) == 2) {
        later *l = later_new(b, from, arg);
        if (l)
            l->ms = n;
        if (l && b->api->run_blocking(b->host, stop_work, stop_done, l) != 0)
            free(l);
    } else if (sscanf(text, ":thread %255[^\n]", arg) == 1) {
        later *l = later_new(b, from, arg);
        if (l && b->api->run_blocking(b->host, thread_work, NULL, l) != 0)
            free(l);
    } else if (sscanf(text, ":putget %64s %255[^\n]", key, arg) == 2) {
        b->api->kv_put(b->host, key, arg, strlen(arg));
        get_value(b, from, key);
    } else if (sscanf(text, ":get %64s", key) == 1) {
        get_value(b, from, key);
    } else if (sscanf(text, ":create %64s", arg) == 1) {
        group_ask_for(b, from, arg, IMCORE_GROUP_CREATE);
    } else if (sscanf(text, ":part %64s", arg) == 1) {
        group_ask_for(b, from, arg, IMCORE_GROUP_LEAVE);
    } else if (strcmp(text, ":config") == 0) {
        say(b, from, "config delay_ms %llu limit %llu loud %d words %s",
            (unsigned long long)b->delay_ms, (unsigned long long)b->limit, b->loud, b->words);
    } else if (strcmp(text, ":keys") == 0) {
        int seen = 0;
        say(b, from, "keys here: %d", b->api->kv_each(b->host, "", count_key, &seen));
        later *l = later_new(b, from, "");
        if (l && b->api->run_blocking(b->host, keys_work, keys_done, l) != 0)
            free(l);
    } else if (sscanf(text, ":online %64s", arg) == 1) {
        say(b, from, "%s is %s", arg, b->api->is_online(b->host, arg) ? "online" : "offline");
    } else if (sscanf(text, ":members %64s", arg) == 1) {
        char list[400] = "";
        if (b->api->group_members(b->host, arg, add_member, list) < 0)
            say(b, from, "no group %s", arg);
        else
            say(b, from, "members of %s: %s", arg, list);
    } else if (sscanf(text, ":join %64s", arg) == 1) {
        int rc = b->api->group_join(b->host, ACCOUNT, arg);
        say(b, from, rc == 0 ? "joining %s" : "cannot join %s", arg);
    } else if (sscanf(text, ":seen %64s", arg) == 1) {
        seen *s = seen_of(b, arg);
        say(b, from, "%s: %u logins, %u logouts", arg, s ? s->logins : 0, s ? s->logouts : 0);
    } else if (strcmp(text, ":limits") == 0) {
        const imcore_limits *lim = b->api->limits(b->host);
        say(b, from, "max_body_bytes %u, max_group_members %u, plugin_backlog %u",
            lim->max_body_bytes, lim->max_group_members, lim->plugin_backlog);
    } else if (sscanf(text, ":gate %255s", arg) == 1) {
        /* Blocks the loop until the file exists (at most 20 s): the test
         * decides when the bot is free again. */
        struct timespec tick = { .tv_sec = 0, .tv_nsec = 5 * 1000000 };
        for (int i = 0; i < 4000 && access(arg, F_OK) != 0; i++)
            nanosleep(&tick, NULL);
        say(b, from, "gate %s open", arg);
    } else {
        char count[32];
        int len = snprintf(count, sizeof count, "%lu", ++b->count);
        b->api->kv_put(b->host, "count", count, (size_t)len);
        say(b, from, "echo #%lu: %s", b->count, text);
    }
}

static void on_delivery(void *state, const char *account, const imcore_message *m)
{
    bot *b = state;
    char text[1024];
    size_t n = m->body_len < sizeof text - 1 ? m->body_len : sizeof text - 1;
    memcpy(text, m->body, n);
    text[n] = '\0';
    if (strcmp(account, ACCOUNT) != 0)
        return;
    if (m->kind == IMCORE_MESSAGE_GROUP) {
        char reply[128];
        int len = snprintf(reply, sizeof reply, "echo heard %s", m->from);
        b->api->send_group(b->host, ACCOUNT, m->to, (const uint8_t *)reply, (size_t)len);
        return;
    }
    command(b, m->from, text);
}

static void on_login(void *state, const char *user, const char *name)
{
    (void)name;
    seen *s = seen_of(state, user);
    if (s)
        s->logins++;
}

static void on_logout(void *state, const char *user)
{
    seen *s = seen_of(state, user);
    if (s)
        s->logouts++;
}

static void shutdown_bot(void *state)
{
    bot *b = state;
    b->api->log(b->host, IMCORE_LOG_INFO, "shutdown");
    while (b->seen) {
        seen *s = b->seen;
        b->seen = s->next;
        free(s);
    }
    free(b);
}

IMCORE_PLUGIN_INFO("echo_bot", "1");

/* A word of the words list: letters only. */
static int add_word(void *arg, const char *item)
{
    bot *b = arg;
    for (const char *p = item; *p; p++)
        if (!isalpha((unsigned char)*p))
            return -2; /* IM_EINVAL: the host names the item */
    size_t len = strlen(b->words);
    snprintf(b->words + len, sizeof b->words - len, "%s%s", len ? "+" : "", item);
    return 0;
}

int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    if (api->size < offsetof(imcore_host_api, limits) + sizeof api->limits) {
        snprintf(out->error, sizeof out->error, "this server's plugin API is too old");
        return 1;
    }
    bot *b = calloc(1, sizeof *b);
    if (!b)
        return 1;
    b->api = api;
    b->host = host;
    if (IMCORE_HAS(api, config_duration_ms) &&
        (api->config_duration_ms(host, "delay", 0, 3600000, 0, &b->delay_ms, out->error,
                                 sizeof out->error) != 0 ||
         api->config_uint(host, "limit", 1, 1000, 1000, &b->limit, out->error,
                          sizeof out->error) != 0 ||
         api->config_bool(host, "loud", 0, &b->loud, out->error, sizeof out->error) != 0 ||
         api->config_list(host, "words", add_word, b, out->error, sizeof out->error) < 0)) {
        free(b);
        return 1;
    }
    if (api->claim_user(host, ACCOUNT, "Echo") != 0) {
        snprintf(out->error, sizeof out->error, "cannot speak for %s", ACCOUNT);
        free(b);
        return 1;
    }
    out->state = b;
    out->on_start = on_start;
    out->on_delivery = on_delivery;
    out->on_login = on_login;
    out->on_logout = on_logout;
    out->on_timer = on_timer;
    out->shutdown = shutdown_bot;
    return 0;
}
