/* plugins/cs_bot: a customer-service bot. It speaks for a service account
 * (default "support"): it answers customers from a YAML FAQ, queues those
 * who want a person, hands them to the agents (the members of a group) as
 * they have room, relays the conversation both ways, asks for a rating at
 * the end, and keeps its conversations in the host's key-value map so
 * that a restart loses neither the counter nor the ratings.
 *
 *   plugins:
 *     - name: cs_bot
 *       config:
 *         service_account: support        # the account customers write to
 *         display_name: Support
 *         agents_group: agents            # its members are the agents
 *         faq: /etc/imcore/faq.yaml       # optional; see config/faq.yaml
 *         max_customers_per_agent: 3      # 1..1000
 *         reveal_ids: false               # true: user ids instead of
 *                                         # "Agent K" and "customer #N"
 *         assign_interval_ms: 1000        # 50..600000: retry the queue
 *         faq_reload_s: 0                 # 1..86400: reread an edited FAQ;
 *                                         # 0: read it at start only
 *         greeting: "Hello! ..."
 *
 * This file holds the plugin's entry, its config and the host's callbacks;
 * conv.c what the bot does, people.c whom it knows, store.c its records,
 * faq.c the FAQ, reload.c its rereading. Every callback but init and
 * shutdown runs on the plugin loop, one at a time, so nothing is locked;
 * nothing blocks but kv_each in on_start, where the host allows it (the
 * FAQ is reread on the host's blocking thread). */
/* strdup, strndup, clock_gettime: POSIX, which -std=c11 alone hides. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imcore/plugin.h"

#include "bot.h"

#define ID_MAX 100 /* longer ids (the server allows far fewer) are ignored */

#define DEFAULT_GREETING "Hello! I am the support bot. Ask me a question, or write \"agent\" " \
                         "to talk to a person."

/* ---- sending ---- */

int say_text(bot *b, const char *to, const char *text, size_t len)
{
    int rc = b->api->send_private(b->host, b->account, to, (const uint8_t *)text, len);
    if (rc < 0)
        b->api->log(b->host, rc == IM_EOFFLINE ? IMCORE_LOG_DEBUG : IMCORE_LOG_WARN,
                    "could not send to %s (error %d)", to, rc);
    return rc;
}

void say(bot *b, const char *to, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    char *text = small;
    if ((size_t)n >= sizeof small) { /* a long relay or FAQ answer */
        if (!(text = malloc((size_t)n + 1))) {
            b->api->log(b->host, IMCORE_LOG_ERROR, "out of memory for a message to %s", to);
            return;
        }
        va_start(ap, fmt);
        vsnprintf(text, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    say_text(b, to, text, (size_t)n);
    if (text != small)
        free(text);
}

/* A message's text on one line: control bytes (newlines, NULs) become
 * spaces, and the spaces at both ends go, so that commands compare
 * trimmed and every relayed line stays one line. */
static char *one_line(const uint8_t *s, size_t n)
{
    while (n > 0 && (*s <= ' ' || *s == 0x7f))
        s++, n--;
    while (n > 0 && (s[n - 1] <= ' ' || s[n - 1] == 0x7f))
        n--;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++)
        out[i] = s[i] < ' ' || s[i] == 0x7f ? ' ' : (char)s[i];
    out[n] = '\0';
    return out;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- callbacks ---- */

static void on_start(void *state)
{
    bot *b = state;
    store_load(b);
    b->timer = b->api->timer_start(b->host, b->assign_interval_ms, b->assign_interval_ms, NULL);
    if (b->timer == 0)
        b->api->log(b->host, IMCORE_LOG_ERROR, "no timer (out of memory): the queue moves "
                    "only on messages, logins and logouts");
    if (b->faq_reload_ms) {
        b->reload_timer = b->api->timer_start(b->host, b->faq_reload_ms, b->faq_reload_ms, NULL);
        if (b->reload_timer == 0)
            b->api->log(b->host, IMCORE_LOG_ERROR, "no timer (out of memory): the FAQ will "
                        "not be reread");
    }
}

static void on_delivery(void *state, const char *account, const imcore_message *m)
{
    bot *b = state;
    /* Group messages (should someone add the account to a group) are not
     * for the bot. */
    if (m->kind != IMCORE_MESSAGE_PRIVATE || strcmp(account, b->account) != 0 || !m->from ||
        strcmp(m->from, b->account) == 0 || strlen(m->from) > ID_MAX)
        return;
    char *text = one_line(m->body, m->body_len);
    if (!text) {
        b->api->log(b->host, IMCORE_LOG_ERROR, "out of memory: a message of %s is lost", m->from);
        return;
    }
    bot_on_text(b, m->from, text, m->server_time_ms ? m->server_time_ms : wall_ms());
    free(text);
}

static void on_login(void *state, const char *user_id, const char *display_name)
{
    (void)user_id;
    (void)display_name;
    /* An agent with room, or a waiting customer back online. */
    bot_assign(state);
}

static void on_logout(void *state, const char *user_id)
{
    bot_agent_left(state, user_id);
}

static void on_timer(void *state, uint64_t timer_id, void *arg)
{
    bot *b = state;
    (void)arg;
    if (timer_id == b->timer)
        bot_assign(b);
    else if (timer_id == b->reload_timer)
        faq_reload_check(b);
}

static void bot_free(bot *b)
{
    if (!b)
        return;
    bot_free_people(b);
    faq_free(b->faq);
    free(b->faq_path);
    free(b->account);
    free(b->display_name);
    free(b->group);
    free(b->greeting);
    free(b);
}

static void shutdown_bot(void *state)
{
    bot_free(state);
}

/* ---- config ---- */

static int refuse(imcore_plugin *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int refuse(imcore_plugin *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof out->error, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *where(bot *b, const char *key)
{
    const char *w = b->api->config_where(b->host, key);
    return w ? w : "config";
}

/* A text setting, on one line, not empty. */
static int cfg_text(bot *b, imcore_plugin *out, const char *key, const char *def, char **dst)
{
    const char *v = b->api->config_get(b->host, key);
    *dst = one_line((const uint8_t *)(v ? v : def), strlen(v ? v : def));
    if (!*dst)
        return refuse(out, "out of memory");
    if (!**dst)
        return refuse(out, "%s: %s: must not be empty", where(b, key), key);
    return 0;
}

/* A whole number lo..hi, in plain decimal. */
static int cfg_number(bot *b, imcore_plugin *out, const char *key, unsigned long def,
                      unsigned long lo, unsigned long hi, unsigned long *dst)
{
    const char *v = b->api->config_get(b->host, key);
    *dst = def;
    if (!v)
        return 0;
    size_t len = strlen(v);
    bool digits = len > 0 && len <= 9 && strspn(v, "0123456789") == len;
    unsigned long n = digits ? strtoul(v, NULL, 10) : 0;
    if (!digits || n < lo || n > hi)
        return refuse(out, "%s: %s: must be a whole number from %lu to %lu, not '%.40s'",
                      where(b, key), key, lo, hi, v);
    *dst = n;
    return 0;
}

static int cfg_bool(bot *b, imcore_plugin *out, const char *key, bool *dst)
{
    const char *v = b->api->config_get(b->host, key);
    if (!v || strcmp(v, "false") == 0)
        *dst = false;
    else if (strcmp(v, "true") == 0)
        *dst = true;
    else
        return refuse(out, "%s: %s: must be true or false, not '%.40s'", where(b, key), key, v);
    return 0;
}

/* A misspelt key would be ignored in silence: refuse what is not ours, on
 * a server that can list the keys (config_key came after the first
 * release). */
static int cfg_known_keys(bot *b, imcore_plugin *out)
{
    static const char *const known[] = { "service_account", "display_name", "agents_group",
                                         "greeting", "max_customers_per_agent",
                                         "assign_interval_ms", "reveal_ids", "faq",
                                         "faq_reload_s", NULL };
    const imcore_host_api *api = b->api;
    if (api->size < offsetof(imcore_host_api, config_key) + sizeof api->config_key)
        return 0;
    const char *key;
    for (unsigned i = 0; (key = api->config_key(b->host, i)) != NULL; i++) {
        const char *const *k = known;
        while (*k && strcmp(*k, key) != 0)
            k++;
        if (!*k)
            return refuse(out, "%s: %s: unknown key (cs_bot has service_account, "
                          "display_name, agents_group, greeting, max_customers_per_agent, "
                          "assign_interval_ms, reveal_ids, faq and faq_reload_s)",
                          where(b, key), key);
    }
    return 0;
}

static int configure(bot *b, imcore_plugin *out)
{
    unsigned long interval, reload_s;
    if (cfg_known_keys(b, out) != 0)
        return -1;
    if (cfg_text(b, out, "service_account", "support", &b->account) != 0 ||
        cfg_text(b, out, "display_name", "Support", &b->display_name) != 0 ||
        cfg_text(b, out, "agents_group", "agents", &b->group) != 0 ||
        cfg_text(b, out, "greeting", DEFAULT_GREETING, &b->greeting) != 0 ||
        cfg_number(b, out, "max_customers_per_agent", 3, 1, 1000, &b->max_per_agent) != 0 ||
        cfg_number(b, out, "assign_interval_ms", 1000, 50, 600000, &interval) != 0 ||
        cfg_number(b, out, "faq_reload_s", 0, 0, 86400, &reload_s) != 0 ||
        cfg_bool(b, out, "reveal_ids", &b->reveal_ids) != 0)
        return -1;
    b->assign_interval_ms = interval;
    b->faq_reload_ms = (uint64_t)reload_s * 1000;
    /* The server's message limit, where the server can tell (limits came
     * after the first release): a text over it could never be sent. */
    size_t max_body = 0;
    if (b->api->size >= offsetof(imcore_host_api, limits) + sizeof b->api->limits) {
        const imcore_limits *lim = b->api->limits(b->host);
        if (lim && lim->size >= offsetof(imcore_limits, max_body_bytes) + sizeof lim->max_body_bytes)
            max_body = lim->max_body_bytes;
    }
    b->max_body = max_body;
    if (max_body && strlen(b->greeting) > max_body)
        return refuse(out, "%s: greeting: %zu bytes, longer than a message may be (%zu)",
                      where(b, "greeting"), strlen(b->greeting), max_body);
    if (strlen(b->account) > ID_MAX)
        return refuse(out, "%s: service_account: longer than %d bytes", where(b, "service_account"),
                      ID_MAX);
    const char *path = b->api->config_get(b->host, "faq");
    if (!path && b->faq_reload_ms)
        return refuse(out, "%s: faq_reload_s: there is no faq to reread",
                      where(b, "faq_reload_s"));
    if (path) {
        char err[sizeof out->error];
        if (!*path)
            return refuse(out, "%s: faq: must be the path of a YAML file", where(b, "faq"));
        /* The stamp first: an edit made while the file is read is seen at
         * the next look, not lost. */
        if (faq_stamp_of(path, &b->faq_seen) != 0)
            b->faq_seen = (faq_stamp){ 0, 0 };
        if (!(b->faq = faq_load(path, max_body, err, sizeof err))) {
            /* "PATH:LINE: what" names the FAQ's own line; a file that
             * cannot be read is the config's mistake. */
            if (strncmp(err, "cannot read ", 12) == 0)
                return refuse(out, "%s: faq: %s", where(b, "faq"), err);
            return refuse(out, "%s", err);
        }
        if (!(b->faq_path = strdup(path)))
            return refuse(out, "out of memory");
    }
    return 0;
}

static const char *claim_error(int rc)
{
    switch (rc) {
    case IM_EINVAL: return "it is not a valid user id";
    case IM_EEXIST: return "another plugin speaks for it";
    case IM_ENOMEM: return "out of memory";
    default: return "the server refused it";
    }
}

IMCORE_PLUGIN_INFO("cs_bot", "1.0");

int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    if (api->api_version < 1 || api->size < offsetof(imcore_host_api, kv_each) + sizeof api->kv_each)
        return refuse(out, "this server's plugin API has no service accounts, timers or "
                      "key-value map (up to kv_each): cs_bot needs a newer server");
    if (out->size < offsetof(imcore_plugin, on_timer) + sizeof out->on_timer)
        return refuse(out, "this server cannot call on_delivery or on_timer: cs_bot needs a "
                      "newer server");
    bot *b = calloc(1, sizeof *b);
    if (!b)
        return refuse(out, "out of memory");
    b->api = api;
    b->host = host;
    b->next_conv = 1;
    b->next_k = 1;
    if (configure(b, out) != 0) {
        bot_free(b);
        return -1;
    }
    int rc = api->claim_user(host, b->account, b->display_name);
    if (rc < 0) {
        const char *w = api->config_where(host, "service_account");
        if (w)
            refuse(out, "%s: service_account: cannot speak for '%s': %s", w, b->account,
                   claim_error(rc));
        else
            refuse(out, "cannot speak for '%s' (the default service_account): %s", b->account,
                   claim_error(rc));
        bot_free(b);
        return -1;
    }
    out->state = b;
    out->shutdown = shutdown_bot;
    out->on_start = on_start;
    out->on_delivery = on_delivery;
    out->on_login = on_login;
    out->on_logout = on_logout;
    out->on_timer = on_timer;
    api->log(host, IMCORE_LOG_INFO, "speaking for %s: %zu FAQ entries, agents are the group %s, "
             "at most %lu customers each", b->account, faq_size(b->faq), b->group,
             b->max_per_agent);
    return 0;
}
