/* plugins/cs_bot/bot.h: the bot's state, shared by its files: cs_bot.c
 * (the plugin entry, config and callbacks), conv.c (the conversations),
 * people.c (customers, agents and the queue), store.c (the records in the
 * host's key-value map) and reload.c (rereading an edited FAQ). faq.h
 * stands apart: it knows none of this.
 *
 * Everything here is touched only on the plugin loop (or in init and
 * shutdown, alone), so nothing is locked. */
#ifndef CS_BOT_BOT_H
#define CS_BOT_BOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imcore/plugin.h"

#include "faq.h"

#define KEPT_MAX 20         /* lines kept for the agent while a customer waits */
#define KEPT_LINE_MAX 1000  /* bytes of one kept line; the rest is cut */

typedef enum cstate {
    ST_BOT = 0,  /* talking to the bot; no open conversation */
    ST_WAITING,  /* in the queue */
    ST_CHATTING, /* with an agent */
    ST_RATING,   /* the conversation ended; asked for a rating */
} cstate;

typedef struct agent agent;

typedef struct customer {
    char *id;
    cstate state;
    bool greeted;           /* has had the greeting in this run */
    unsigned long conv;     /* the open conversation's number; 0 in ST_BOT */
    uint64_t started_ms, ended_ms;
    agent *agent;           /* CHATTING: theirs; RATING: the last one (may be NULL) */
    char *kept[KEPT_MAX];   /* what they wrote while waiting, for the agent */
    unsigned nkept;
    unsigned told_pos;      /* WAITING: the place they were last told; 0: none yet */
    struct customer *prev, *next; /* the queue, while WAITING */
} customer;

struct agent {
    char *id;
    unsigned long k;        /* "Agent K"; 0 until the first assignment */
    customer **custs;       /* their customers, by conversation number */
    size_t n, cap;
    uint64_t last_assigned; /* a sequence number; 0: never */
};

/* An open-addressing map from a user id to a customer or an agent, whose
 * own id is the key. Entries are only added, never removed before
 * shutdown. */
typedef struct idmap {
    void **slots;
    size_t cap, n;
    const char *(*key)(const void *val);
} idmap;

/* What the FAQ file looked like when it was last read: a change of either
 * means it was edited. */
typedef struct faq_stamp {
    long long mtime_ns;
    long long size;
} faq_stamp;

typedef struct bot {
    const imcore_host_api *api;
    imcore_host *host;

    /* config */
    char *account, *display_name, *group, *greeting;
    faq *faq;
    char *faq_path;         /* NULL without an FAQ */
    size_t max_body;        /* the server's limit for one message; 0: unknown */
    unsigned long max_per_agent;
    bool reveal_ids;
    uint64_t assign_interval_ms;
    uint64_t faq_reload_ms; /* 0: the FAQ is read at start only */

    uint64_t timer;
    uint64_t reload_timer;
    bool reloading;         /* a reread is on the blocking thread */
    faq_stamp faq_seen;     /* the file as last read (or last refused) */
    bool kv_ok;             /* the records were read: writing cannot clobber them */
    idmap customers, agents;
    customer *qhead, *qtail;
    size_t qlen;
    unsigned long next_conv, next_k;
    uint64_t assign_seq;
    unsigned long total, rated, rating_sum; /* for :stats, over all time */
} bot;

/* people.c */
customer *customer_get(bot *b, const char *id); /* adds it; NULL when out of memory */
agent *agent_get(bot *b, const char *id);       /* adds it; NULL when out of memory */
agent *agent_find(bot *b, const char *id);      /* NULL if unknown */
void customer_clear_kept(customer *c);
void bot_free_people(bot *b);
void queue_append(bot *b, customer *c);
void queue_push_front(bot *b, customer *c);
void queue_remove(bot *b, customer *c);
unsigned queue_pos(const bot *b, const customer *c); /* 1 for the head */
bool agent_add_customer(agent *a, customer *c); /* keeps number order; false when out of memory */
void agent_remove_customer(agent *a, const customer *c);
customer *agent_conv(const agent *a, unsigned long num); /* their conversation #num, or NULL */

/* conv.c */
void bot_on_text(bot *b, const char *from, const char *text, uint64_t now_ms);
void bot_agent_left(bot *b, const char *id);
void bot_assign(bot *b);

/* store.c: each write is logged when it fails, and skipped when the records
 * could not be read at start. */
void store_conv(bot *b, const customer *c);           /* the open conversation of c */
void store_closed(bot *b, const customer *c, int rating); /* c's conversation, closed */
void store_next(bot *b);
void store_agent(bot *b, const agent *a);
void store_kept(bot *b, const customer *c, unsigned i); /* c->kept[i], just added */
void store_drop_kept(bot *b, const customer *c);      /* before c's kept lines are cleared */
void store_load(bot *b);                              /* in on_start */

/* reload.c: rereads the FAQ when its file changes, off the loop. */
int faq_stamp_of(const char *path, faq_stamp *out); /* 0, or -1 with errno */
void faq_reload_check(bot *b);                      /* on the reload timer */

/* cs_bot.c */
void say(bot *b, const char *to, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int say_text(bot *b, const char *to, const char *text, size_t len); /* the host's result */

#endif
