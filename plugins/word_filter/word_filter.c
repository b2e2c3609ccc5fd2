/* plugins/word_filter: masks or refuses messages that contain listed words.
 *
 *   plugins:
 *     - name: word_filter
 *       config:
 *         words: [darn, heck]    # compared without regard to ASCII case
 *         mode: mask             # mask: replace the word's letters with '*'
 *                                # drop: refuse the message (REFUSED)
 *
 * Whole words only: "heck" is caught in "oh heck!" but not in "checkers".
 * The word list is read once at init and never changes, so on_message,
 * which runs on several threads at once, needs no lock. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imcore/plugin.h"

#define MAX_WORDS 64
#define MAX_WORD 48

typedef struct filter {
    char words[MAX_WORDS][MAX_WORD + 1]; /* lower case */
    size_t lens[MAX_WORDS];
    unsigned n;
    int drop;
} filter;

static int is_word_byte(unsigned char c)
{
    return isalnum(c) || c >= 0x80; /* UTF-8 letters count as word bytes */
}

/* The index of a listed word at body[i..], bounded by non-word bytes, or -1. */
static int word_at(const filter *f, const unsigned char *body, size_t len, size_t i)
{
    if (i > 0 && is_word_byte(body[i - 1]))
        return -1;
    for (unsigned w = 0; w < f->n; w++) {
        size_t wl = f->lens[w];
        if (i + wl > len || (i + wl < len && is_word_byte(body[i + wl])))
            continue;
        size_t k = 0;
        while (k < wl && tolower(body[i + k]) == f->words[w][k])
            k++;
        if (k == wl)
            return (int)w;
    }
    return -1;
}

static imcore_verdict on_message(void *state, const imcore_message *m, imcore_rewrite *out)
{
    const filter *f = state;
    const unsigned char *body = m->body;
    int masked = 0;
    for (size_t i = 0; i < m->body_len; i++) {
        int w = word_at(f, body, m->body_len, i);
        if (w < 0)
            continue;
        if (f->drop) {
            snprintf(out->reason, sizeof out->reason, "the message contains a word that is "
                     "not allowed here");
            return IMCORE_DROP;
        }
        if (!masked) { /* first hit: start from a copy of the body */
            if (m->body_len > out->capacity)
                return IMCORE_PASS;
            memcpy(out->body, body, m->body_len);
            out->body_len = m->body_len;
            masked = 1;
        }
        memset(out->body + i, '*', f->lens[w]);
        i += f->lens[w] - 1;
    }
    return masked ? IMCORE_REWRITE : IMCORE_PASS;
}

static void shutdown_filter(void *state)
{
    free(state);
}

IMCORE_PLUGIN_INFO("word_filter", "1.0");

int imcore_plugin_init(const imcore_host_api *api, imcore_host *host, imcore_plugin *out)
{
    if (api->api_version < 1) {
        snprintf(out->error, sizeof out->error, "needs plugin API version 1");
        return 1;
    }
    filter *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(out->error, sizeof out->error, "out of memory");
        return 1;
    }
    const char *mode = api->config_get(host, "mode");
    if (mode && strcmp(mode, "drop") == 0) {
        f->drop = 1;
    } else if (mode && strcmp(mode, "mask") != 0) {
        snprintf(out->error, sizeof out->error, "%s: mode must be mask or drop, not '%.40s'",
                 api->config_where(host, "mode"), mode);
        free(f);
        return 1;
    }
    const char *list = api->config_get(host, "words");
    if (!list || !*list) {
        snprintf(out->error, sizeof out->error, "config.words is missing: list the words, "
                 "separated by commas");
        free(f);
        return 1;
    }
    for (const char *p = list; *p;) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t n = strcspn(p, ",");
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n > 0) {
            if (n > MAX_WORD || f->n == MAX_WORDS) {
                snprintf(out->error, sizeof out->error, "%s: at most %d words of %d bytes",
                         api->config_where(host, "words"), MAX_WORDS, MAX_WORD);
                free(f);
                return 1;
            }
            for (size_t k = 0; k < n; k++)
                f->words[f->n][k] = (char)tolower((unsigned char)p[k]);
            f->lens[f->n++] = n;
        }
        p += strcspn(p, ",");
    }
    out->state = f;
    out->on_message = on_message;
    out->shutdown = shutdown_filter;
    api->log(host, IMCORE_LOG_INFO, "%u words, mode %s", f->n, f->drop ? "drop" : "mask");
    return 0;
}
