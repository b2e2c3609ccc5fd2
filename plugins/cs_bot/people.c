/* plugins/cs_bot/people.c: the bot's bookkeeping of people: customers and
 * agents by user id, the queue, and each agent's list of customers. No
 * messages and no records here: conv.c decides, this file keeps.
 *
 * Customers and agents are added as they appear and live until shutdown:
 * a customer's struct is small, and remembers whether they were greeted. */
/* strdup, strndup, clock_gettime: POSIX, which -std=c11 alone hides. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdlib.h>
#include <string.h>

#include "bot.h"

/* ---- the id maps ---- */

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return (size_t)h;
}

static void *map_find(const idmap *m, const char *id)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = hash(id) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->slots[i])
            return NULL;
        if (strcmp(m->key(m->slots[i]), id) == 0)
            return m->slots[i];
    }
}

static bool map_add(idmap *m, void *val)
{
    if (2 * (m->n + 1) > m->cap) { /* keep it at most half full */
        size_t cap = m->cap ? 2 * m->cap : 64;
        void **slots = calloc(cap, sizeof *slots);
        if (!slots)
            return false;
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->slots[i])
                continue;
            size_t j = hash(m->key(m->slots[i])) & (cap - 1);
            while (slots[j])
                j = (j + 1) & (cap - 1);
            slots[j] = m->slots[i];
        }
        free(m->slots);
        m->slots = slots;
        m->cap = cap;
    }
    size_t j = hash(m->key(val)) & (m->cap - 1);
    while (m->slots[j])
        j = (j + 1) & (m->cap - 1);
    m->slots[j] = val;
    m->n++;
    return true;
}

static void map_free(idmap *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i])
            free_val(m->slots[i]);
    free(m->slots);
    *m = (idmap){0};
}

static const char *customer_key(const void *v)
{
    return ((const customer *)v)->id;
}

static const char *agent_key(const void *v)
{
    return ((const agent *)v)->id;
}

customer *customer_get(bot *b, const char *id)
{
    b->customers.key = customer_key;
    customer *c = map_find(&b->customers, id);
    if (c)
        return c;
    c = calloc(1, sizeof *c);
    if (c && (c->id = strdup(id)) != NULL && map_add(&b->customers, c))
        return c;
    if (c)
        free(c->id);
    free(c);
    b->api->log(b->host, IMCORE_LOG_ERROR, "out of memory for customer %s", id);
    return NULL;
}

agent *agent_find(bot *b, const char *id)
{
    b->agents.key = agent_key;
    return map_find(&b->agents, id);
}

agent *agent_get(bot *b, const char *id)
{
    agent *a = agent_find(b, id);
    if (a)
        return a;
    a = calloc(1, sizeof *a);
    if (a && (a->id = strdup(id)) != NULL && map_add(&b->agents, a))
        return a;
    if (a)
        free(a->id);
    free(a);
    b->api->log(b->host, IMCORE_LOG_ERROR, "out of memory for agent %s", id);
    return NULL;
}

void customer_clear_kept(customer *c)
{
    for (unsigned i = 0; i < c->nkept; i++)
        free(c->kept[i]);
    c->nkept = 0;
}

static void free_customer(void *v)
{
    customer *c = v;
    customer_clear_kept(c);
    free(c->id);
    free(c);
}

static void free_agent(void *v)
{
    agent *a = v;
    free(a->custs);
    free(a->id);
    free(a);
}

void bot_free_people(bot *b)
{
    map_free(&b->customers, free_customer);
    map_free(&b->agents, free_agent);
    b->qhead = b->qtail = NULL;
    b->qlen = 0;
}

/* ---- the queue and the agents' lists ---- */

void queue_append(bot *b, customer *c)
{
    c->next = NULL;
    c->prev = b->qtail;
    if (b->qtail)
        b->qtail->next = c;
    else
        b->qhead = c;
    b->qtail = c;
    b->qlen++;
}

void queue_push_front(bot *b, customer *c)
{
    c->prev = NULL;
    c->next = b->qhead;
    if (b->qhead)
        b->qhead->prev = c;
    else
        b->qtail = c;
    b->qhead = c;
    b->qlen++;
}

void queue_remove(bot *b, customer *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        b->qhead = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        b->qtail = c->prev;
    c->prev = c->next = NULL;
    b->qlen--;
}

unsigned queue_pos(const bot *b, const customer *c)
{
    unsigned pos = 1;
    for (const customer *q = b->qhead; q && q != c; q = q->next)
        pos++;
    return pos;
}

bool agent_add_customer(agent *a, customer *c)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 4;
        customer **custs = realloc(a->custs, cap * sizeof *custs);
        if (!custs)
            return false;
        a->custs = custs;
        a->cap = cap;
    }
    size_t i = a->n;
    while (i > 0 && a->custs[i - 1]->conv > c->conv) {
        a->custs[i] = a->custs[i - 1];
        i--;
    }
    a->custs[i] = c;
    a->n++;
    return true;
}

void agent_remove_customer(agent *a, const customer *c)
{
    for (size_t i = 0; i < a->n; i++) {
        if (a->custs[i] == c) {
            memmove(a->custs + i, a->custs + i + 1, (a->n - i - 1) * sizeof *a->custs);
            a->n--;
            return;
        }
    }
}

customer *agent_conv(const agent *a, unsigned long num)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->custs[i]->conv == num)
            return a->custs[i];
    return NULL;
}
