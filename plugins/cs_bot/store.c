/* plugins/cs_bot/store.c: the bot's records in the host's key-value map,
 * and rebuilding the bot from them at start.
 *
 *   next               the number the next conversation gets
 *   agent/ID           K of "Agent K"
 *   conv/0000000042    one conversation: "customer=cat agent=ann
 *                      state=chatting started_ms=... ended_ms=0 rating=0"
 *   kept/0000000042/07 a line the customer of #42 wrote before an agent
 *                      came (the 8th), until the conversation ends
 *
 * Conversation keys are fixed-width so that kv_each, which goes in key
 * order, goes in number order. A record is rewritten whole on every change
 * of its conversation; states are waiting, chatting, rating and closed.
 * Totals for :stats are not stored: they are counted from the records. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bot.h"

#define CONV_PREFIX "conv/"
#define AGENT_PREFIX "agent/"
#define KEPT_PREFIX "kept/"

/* value NULL deletes key. */
static void put(bot *b, const char *key, const char *value)
{
    if (!b->kv_ok)
        return;
    int rc = b->api->kv_put(b->host, key, value, value ? strlen(value) : 0);
    if (rc < 0)
        b->api->log(b->host, IMCORE_LOG_WARN, "could not save %s (error %d)", key, rc);
}

static void kept_key(char *key, size_t n, unsigned long conv, unsigned i)
{
    snprintf(key, n, KEPT_PREFIX "%010lu/%02u", conv, i);
}

static void put_conv(bot *b, const customer *c, const char *state, const agent *a, int rating)
{
    char key[32], value[256];
    snprintf(key, sizeof key, CONV_PREFIX "%010lu", c->conv);
    snprintf(value, sizeof value,
             "customer=%s agent=%s state=%s started_ms=%" PRIu64 " ended_ms=%" PRIu64 " rating=%d",
             c->id, a ? a->id : "", state, c->started_ms, c->ended_ms, rating);
    put(b, key, value);
}

void store_conv(bot *b, const customer *c)
{
    static const char *const names[] = {
        [ST_WAITING] = "waiting", [ST_CHATTING] = "chatting", [ST_RATING] = "rating"};
    if (c->state == ST_BOT || c->conv == 0)
        return;
    put_conv(b, c, names[c->state], c->state == ST_WAITING ? NULL : c->agent, 0);
}

void store_closed(bot *b, const customer *c, int rating)
{
    put_conv(b, c, "closed", c->agent, rating);
}

void store_next(bot *b)
{
    char value[32];
    snprintf(value, sizeof value, "%lu", b->next_conv);
    put(b, "next", value);
}

void store_agent(bot *b, const agent *a)
{
    char key[256], value[32];
    snprintf(key, sizeof key, AGENT_PREFIX "%s", a->id);
    snprintf(value, sizeof value, "%lu", a->k);
    put(b, key, value);
}

void store_kept(bot *b, const customer *c, unsigned i)
{
    char key[40];
    kept_key(key, sizeof key, c->conv, i);
    put(b, key, c->kept[i]);
}

void store_drop_kept(bot *b, const customer *c)
{
    char key[40];
    for (unsigned i = 0; i < c->nkept; i++) {
        kept_key(key, sizeof key, c->conv, i);
        put(b, key, NULL);
    }
}

/* ---- loading ---- */

/* An open conversation found at start, applied once kv_each is done (so
 * that the records it rewrites are not written from inside kv_each). */
typedef struct open_rec {
    unsigned long num;
    char customer[128], agent[128];
    cstate state;
    bool was_chatting;
    uint64_t started_ms, ended_ms;
} open_rec;

/* A kept line found at start: given back to its customer once the
 * conversations are open again. */
typedef struct kept_rec {
    unsigned long num;
    unsigned index;
    char *text;
} kept_rec;

typedef struct loader {
    bot *b;
    open_rec *recs;
    size_t n, cap;
    kept_rec *kept;
    size_t nkept, kept_cap;
    bool oom;
} loader;

/* Makes room for one more of an array of size-byte items; false when out
 * of memory. */
static bool grow(void **items, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t ncap = *cap ? 2 * *cap : 16;
    void *more = realloc(*items, ncap * size);
    if (!more)
        return false;
    *items = more;
    *cap = ncap;
    return true;
}

static bool parse_ul(const char *s, unsigned long long *out)
{
    if (*s < '0' || *s > '9')
        return false;
    char *end;
    *out = strtoull(s, &end, 10);
    return *end == '\0';
}

/* The value of field name in the record text, copied to buf; false if
 * absent or too long. */
static bool field(const char *text, const char *name, char *buf, size_t n)
{
    size_t nl = strlen(name);
    for (const char *p = text; *p;) {
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, " ");
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            if (len - nl - 1 >= n)
                return false;
            memcpy(buf, p + nl + 1, len - nl - 1);
            buf[len - nl - 1] = '\0';
            return true;
        }
        p += len;
    }
    return false;
}

static bool field_ul(const char *text, const char *name, unsigned long long *out)
{
    char buf[32];
    return field(text, name, buf, sizeof buf) && parse_ul(buf, out);
}

static void load_conv(loader *l, unsigned long num, const char *text)
{
    bot *b = l->b;
    open_rec r = {.num = num};
    char state[16];
    unsigned long long started, ended, rating;
    if (!field(text, "customer", r.customer, sizeof r.customer) || !r.customer[0] ||
        !field(text, "agent", r.agent, sizeof r.agent) ||
        !field(text, "state", state, sizeof state) ||
        !field_ul(text, "started_ms", &started) || !field_ul(text, "ended_ms", &ended) ||
        !field_ul(text, "rating", &rating) || rating > 5) {
        b->api->log(b->host, IMCORE_LOG_WARN, "conversation #%lu: a record I cannot read, "
                    "left out: %.100s", num, text);
        return;
    }
    r.started_ms = started;
    r.ended_ms = ended;
    b->total++;
    if (rating > 0) {
        b->rated++;
        b->rating_sum += (unsigned long)rating;
    }
    if (num >= b->next_conv)
        b->next_conv = num + 1;
    if (strcmp(state, "waiting") == 0 || strcmp(state, "chatting") == 0) {
        r.state = ST_WAITING; /* the agent is offline after a restart */
        r.was_chatting = state[0] == 'c';
    } else if (strcmp(state, "rating") == 0) {
        r.state = ST_RATING;
    } else {
        return; /* closed */
    }
    if (!grow((void **)&l->recs, &l->cap, l->n, sizeof *l->recs)) {
        l->oom = true;
        return;
    }
    l->recs[l->n++] = r;
}

/* "kept/NUM/II": text is the loader's from now on. A key it cannot read
 * is left alone. */
static void load_kept(loader *l, const char *key, char *text)
{
    const char *p = key + strlen(KEPT_PREFIX);
    char *end = NULL;
    unsigned long num = 0, index = KEPT_MAX;
    if (*p >= '0' && *p <= '9')
        num = strtoul(p, &end, 10);
    if (num > 0 && end[0] == '/' && end[1] >= '0' && end[1] <= '9')
        index = strtoul(end + 1, &end, 10);
    if (index >= KEPT_MAX || *end != '\0') {
        free(text);
        return;
    }
    if (!grow((void **)&l->kept, &l->kept_cap, l->nkept, sizeof *l->kept)) {
        l->oom = true;
        free(text);
        return;
    }
    l->kept[l->nkept++] = (kept_rec){ .num = num, .index = (unsigned)index, .text = text };
}

static int load_one(void *arg, const char *key, const void *value, size_t len)
{
    loader *l = arg;
    bot *b = l->b;
    char *text = malloc(len + 1);
    if (!text) {
        l->oom = true;
        return 1;
    }
    memcpy(text, value, len);
    text[len] = '\0';
    unsigned long long v;
    if (strcmp(key, "next") == 0) {
        if (parse_ul(text, &v) && v > b->next_conv)
            b->next_conv = (unsigned long)v;
    } else if (strncmp(key, AGENT_PREFIX, strlen(AGENT_PREFIX)) == 0) {
        agent *a = parse_ul(text, &v) && v > 0 ? agent_get(b, key + strlen(AGENT_PREFIX)) : NULL;
        if (a) {
            a->k = (unsigned long)v;
            if (a->k >= b->next_k)
                b->next_k = a->k + 1;
        }
    } else if (strncmp(key, CONV_PREFIX, strlen(CONV_PREFIX)) == 0) {
        if (parse_ul(key + strlen(CONV_PREFIX), &v) && v > 0)
            load_conv(l, (unsigned long)v, text);
    } else if (strncmp(key, KEPT_PREFIX, strlen(KEPT_PREFIX)) == 0) {
        load_kept(l, key, text);
        text = NULL;
    }
    free(text);
    return l->oom;
}

/* Reopens one conversation found at start. */
static void reopen(bot *b, const open_rec *r)
{
    customer *c = customer_get(b, r->customer);
    if (!c)
        return;
    if (c->state != ST_BOT) {
        /* Two open conversations of one customer: only the later one (this
         * one; records come in number order) can go on. */
        b->api->log(b->host, IMCORE_LOG_WARN, "%s had #%lu and #%lu open: #%lu is closed",
                    c->id, c->conv, r->num, c->conv);
        if (c->state == ST_WAITING)
            queue_remove(b, c);
        store_closed(b, c, 0);
    }
    c->greeted = true; /* the bot knows them: no greeting again */
    c->conv = r->num;
    c->started_ms = r->started_ms;
    c->ended_ms = r->ended_ms;
    c->agent = NULL;
    c->told_pos = 0;
    if (r->state == ST_RATING) {
        c->state = ST_RATING;
        c->agent = r->agent[0] ? agent_get(b, r->agent) : NULL;
        return;
    }
    c->state = ST_WAITING;
    queue_append(b, c);
    if (r->was_chatting)
        store_conv(b, c);
}

/* The kept lines go back to their customers, in key order (so in index
 * order within a conversation). One whose conversation no longer waits
 * for an agent is deleted; one whose index moved is written again. */
static void restore_kept(bot *b, loader *l)
{
    size_t r = 0;
    for (size_t i = 0; i < l->nkept; i++) {
        kept_rec *k = &l->kept[i];
        while (r < l->n && l->recs[r].num < k->num)
            r++;
        customer *c = r < l->n && l->recs[r].num == k->num
                          ? customer_get(b, l->recs[r].customer) : NULL;
        char key[40];
        kept_key(key, sizeof key, k->num, k->index);
        if (!c || c->conv != k->num || c->state != ST_WAITING || c->nkept == KEPT_MAX) {
            put(b, key, NULL);
            free(k->text);
            continue;
        }
        c->kept[c->nkept++] = k->text;
        if (k->index != c->nkept - 1) {
            put(b, key, NULL);
            store_kept(b, c, c->nkept - 1);
        }
    }
    l->nkept = 0;
}

static void loader_free(loader *l)
{
    for (size_t i = 0; i < l->nkept; i++)
        free(l->kept[i].text);
    free(l->kept);
    free(l->recs);
}

void store_load(bot *b)
{
    loader l = {.b = b};
    int n = b->api->kv_each(b->host, "", load_one, &l);
    if (n < 0 || l.oom) {
        /* Going on with the counter at 1 would overwrite old conversations:
         * the bot still answers, but writes nothing this run. */
        b->api->log(b->host, IMCORE_LOG_ERROR, "could not read my records (%s): nothing will "
                    "be saved until the next start", l.oom ? "out of memory" : "storage error");
        loader_free(&l);
        return;
    }
    b->kv_ok = true;
    for (size_t i = 0; i < l.n; i++)
        reopen(b, &l.recs[i]);
    restore_kept(b, &l);
    loader_free(&l);
    b->api->log(b->host, IMCORE_LOG_INFO, "%lu conversations so far, %zu waiting, next #%lu",
                b->total, b->qlen, b->next_conv);
}
