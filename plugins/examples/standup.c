/* standup: the bot of the tutorial in docs/plugins.md ("Writing a bot").
 * It speaks for the service account "standup": people send it what they
 * did, and every digest_every it sends each of them the team's notes and
 * starts a new round. Notes live in the plugin's key-value map, so they
 * survive a restart. Build it against the installed header only:
 *
 *     cc -shared -fPIC -fvisibility=hidden -I/usr/local/include -o standup.so standup.c
 *
 * Config (the plugin entry's `config:`):
 *     digest_every: 1h     a duration: 250ms, 30s, 5m, 2h (default 1h)
 *     greet: yes           greet people when they come online (default yes)
 *
 * Commands, as a private message to standup: "!digest" sends the digest
 * now; anything else is your note for this round (a newer one replaces it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imcore/plugin.h"

IMCORE_PLUGIN_INFO("standup", "1.0");

#define ACCOUNT "standup"
#define MAX_NOTES 64
#define NOTE_MAX 400

typedef struct note {
    char user[65];
    char text[NOTE_MAX + 1];
} note;

typedef struct bot {
    const imcore_host_api *api;
    imcore_host *host;
    uint64_t every_ms;
    int greet;
    note notes[MAX_NOTES];  /* this round's, mirrored from the key-value map */
    unsigned n;
} bot;

static void say(bot *b, const char *to, const char *text)
{
    b->api->send_private(b->host, ACCOUNT, to, (const uint8_t *)text, strlen(text));
}

static note *find(bot *b, const char *user)
{
    for (unsigned i = 0; i < b->n; i++)
        if (strcmp(b->notes[i].user, user) == 0)
            return &b->notes[i];
    return NULL;
}

/* Keeps user's note, in memory and in the map ("note/USER"). */
static int keep(bot *b, const char *user, const char *text, size_t len)
{
    note *n = find(b, user);
    if (!n) {
        if (b->n == MAX_NOTES)
            return -1;
        n = &b->notes[b->n++];
        snprintf(n->user, sizeof n->user, "%s", user);
    }
    if (len > NOTE_MAX)
        len = NOTE_MAX;
    memcpy(n->text, text, len);
    n->text[len] = '\0';
    char key[80];
    snprintf(key, sizeof key, "note/%s", user);
    return b->api->kv_put(b->host, key, n->text, strlen(n->text));
}

/* The digest to everyone who wrote, then a new round. */
static void digest(bot *b)
{
    if (b->n == 0)
        return;
    char text[MAX_NOTES * 80 + 64];
    size_t len = (size_t)snprintf(text, sizeof text, "standup digest (%u):", b->n);
    for (unsigned i = 0; i < b->n && len < sizeof text; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "\n- %s: %.60s", b->notes[i].user,
                                b->notes[i].text);
    for (unsigned i = 0; i < b->n; i++)
        say(b, b->notes[i].user, text);
    for (unsigned i = 0; i < b->n; i++) {
        char key[80];
        snprintf(key, sizeof key, "note/%s", b->notes[i].user);
        b->api->kv_put(b->host, key, NULL, 0); /* deleted */
    }
    b->n = 0;
}

/* At start, last round's notes back from the map. */
static int load_note(void *arg, const char *key, const void *value, size_t len)
{
    bot *b = arg;
    if (strncmp(key, "note/", 5) == 0 && b->n < MAX_NOTES && len <= NOTE_MAX) {
        note *n = &b->notes[b->n++];
        snprintf(n->user, sizeof n->user, "%s", key + 5);
        memcpy(n->text, value, len);
        n->text[len] = '\0';
    }
    return 0;
}

static void on_start(void *state)
{
    bot *b = state;
    b->api->kv_each(b->host, "note/", load_note, b); /* on_start may read the disk */
    b->api->timer_start(b->host, b->every_ms, b->every_ms, NULL);
    b->api->log(b->host, IMCORE_LOG_INFO, "ready: %u notes kept, a digest every %llu ms", b->n,
                (unsigned long long)b->every_ms);
}

static void on_delivery(void *state, const char *account, const imcore_message *m)
{
    (void)account;
    bot *b = state;
    if (m->kind != IMCORE_MESSAGE_PRIVATE)
        return;
    if (m->body_len == 7 && memcmp(m->body, "!digest", 7) == 0) {
        digest(b);
        return;
    }
    char text[64];
    if (keep(b, m->from, (const char *)m->body, m->body_len) != 0)
        snprintf(text, sizeof text, "sorry, the round is full");
    else
        snprintf(text, sizeof text, "noted (%u this round)", b->n);
    say(b, m->from, text);
}

static void on_login(void *state, const char *user, const char *display_name)
{
    (void)display_name;
    bot *b = state;
    if (b->greet && !find(b, user)) {
        char text[128];
        snprintf(text, sizeof text, "hi %s, what did you do? tell me in a message", user);
        say(b, user, text);
    }
}

static void on_timer(void *state, uint64_t id, void *arg)
{
    (void)id, (void)arg;
    digest(state);
}

static void shutdown_bot(void *state)
{
    free(state);
}

int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    /* The newest host function this bot calls: an older server lacks it. */
    if (!IMCORE_HAS(api, config_duration_ms)) {
        snprintf(out->error, sizeof out->error, "this server is too old for standup");
        return 1;
    }
    bot *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(out->error, sizeof out->error, "out of memory");
        return 1;
    }
    b->api = api;
    b->host = host;
    /* A bad value refuses the start with FILE:LINE: plugin standup: KEY: why;
     * a refused init is not shut down, so free here. */
    if (api->config_duration_ms(host, "digest_every", 100, 86400000, 3600000, &b->every_ms,
                                out->error, sizeof out->error) != 0 ||
        api->config_bool(host, "greet", 1, &b->greet, out->error, sizeof out->error) != 0 ||
        api->claim_user(host, ACCOUNT, "Standup") != 0) {
        if (!out->error[0])
            snprintf(out->error, sizeof out->error, "cannot speak for %s", ACCOUNT);
        free(b);
        return 1;
    }
    out->state = b;
    out->on_start = on_start;
    out->on_delivery = on_delivery;
    out->on_login = on_login;
    out->on_timer = on_timer;
    out->shutdown = shutdown_bot;
    return 0;
}
