/* infrastructure/store_memory/im_memory_accounts.c: accounts and token
 * hashes in memory, behind one lock.
 *
 * Users by id, tokens by their hash (hex, as the map's key). Each user
 * keeps its tokens in a list in the order they were put, oldest first, so
 * that keeping the newest few drops from the head. The sweep of expired
 * tokens walks them all: the memory store is for small servers and tests,
 * and the sweep runs once a minute on the accounts' own thread.
 *
 * Answers are copied out under the lock and handed to done after it is let
 * go, so done never runs under a lock of this file. */
#include "im_memory_accounts.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "im_strmap.h"

typedef struct mem_token mem_token;

typedef struct mem_user {
    char name[IM_DISPLAY_NAME_MAX + 1];
    char secret[IM_STORE_SECRET_MAX + 1];
    char id[IM_USER_ID_MAX + 1];
    mem_token *oldest, *newest; /* the user's tokens in put order */
    size_t ntokens;
} mem_user;

struct mem_token {
    char key[2 * IM_STORE_TOKEN_HASH_MAX + 1];
    mem_user *user;
    uint64_t expires_ms;
    uint64_t put;               /* when it was put, in puts counted: the sweep's order */
    mem_token *prev, *next;     /* in user's list */
};

struct im__memory_accounts {
    pthread_mutex_t lock;
    im_strmap *users;           /* id -> mem_user (owned) */
    im_strmap *tokens;          /* hex hash -> mem_token (owned) */
    uint64_t puts;
};

/* What a request found, copied out of the maps for done. */
typedef struct answer {
    int rc;
    im_error err;
    bool has_record;
    char user[IM_USER_ID_MAX + 1];
    char name[IM_DISPLAY_NAME_MAX + 1];
    char secret[IM_STORE_SECRET_MAX + 1];
    bool with_secret;
    uint64_t count;
} answer;

static bool free_token(void *arg, const char *key, void *value)
{
    (void)arg, (void)key;
    free(value);
    return true;
}

static bool free_user(void *arg, const char *key, void *value)
{
    (void)arg, (void)key;
    free(value);
    return true;
}

void im__memory_accounts_free(im__memory_accounts *a)
{
    if (!a)
        return;
    if (a->tokens) {
        im_strmap_each(a->tokens, free_token, NULL);
        im_strmap_free(a->tokens);
    }
    if (a->users) {
        im_strmap_each(a->users, free_user, NULL);
        im_strmap_free(a->users);
    }
    pthread_mutex_destroy(&a->lock);
    free(a);
}

im__memory_accounts *im__memory_accounts_new(void)
{
    im__memory_accounts *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    pthread_mutex_init(&a->lock, NULL);
    a->users = im_strmap_new();
    a->tokens = im_strmap_new();
    if (!a->users || !a->tokens) {
        im__memory_accounts_free(a);
        return NULL;
    }
    return a;
}

static void hex_key(const uint8_t *hash, size_t len, char out[2 * IM_STORE_TOKEN_HASH_MAX + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[hash[i] >> 4];
        out[2 * i + 1] = digits[hash[i] & 15];
    }
    out[2 * len] = '\0';
}

static void unlink_token(mem_token *t)
{
    mem_user *u = t->user;
    if (t->prev)
        t->prev->next = t->next;
    else
        u->oldest = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        u->newest = t->prev;
    u->ntokens--;
    t->prev = t->next = NULL;
}

static void append_token(mem_user *u, mem_token *t)
{
    t->user = u;
    t->next = NULL;
    t->prev = u->newest;
    if (u->newest)
        u->newest->next = t;
    else
        u->oldest = t;
    u->newest = t;
    u->ntokens++;
}

/* Out of both the map and its user's list, and freed. */
static void drop_token(im__memory_accounts *a, mem_token *t)
{
    unlink_token(t);
    im_strmap_remove(a->tokens, t->key);
    free(t);
}

/* TOKEN_PUT (and CREATE's token) under the lock: the hash as u's newest,
 * then only the keep newest of u's kept (0: all). */
static int put_token(im__memory_accounts *a, mem_user *u, const im_account_request *q)
{
    char key[2 * IM_STORE_TOKEN_HASH_MAX + 1];
    hex_key(q->token, q->token_len, key);
    mem_token *t = im_strmap_get(a->tokens, key);
    if (t) {
        unlink_token(t);
    } else {
        if (!(t = calloc(1, sizeof *t)))
            return IM_ENOMEM;
        memcpy(t->key, key, sizeof key);
        if (im_strmap_put(a->tokens, t->key, t, NULL) != IM_OK) {
            free(t);
            return IM_ENOMEM;
        }
    }
    t->expires_ms = q->expires_ms;
    t->put = ++a->puts;
    append_token(u, t);
    while (q->keep > 0 && u->ntokens > q->keep)
        drop_token(a, u->oldest);
    return IM_OK;
}

static int create(im__memory_accounts *a, const im_account_request *q, answer *ans)
{
    if (im_strmap_get(a->users, q->user))
        return im_error_set(&ans->err, IM_EUSEREXISTS, "the user id %s is taken", q->user);
    mem_user *u = calloc(1, sizeof *u);
    if (!u)
        return IM_ENOMEM;
    snprintf(u->id, sizeof u->id, "%s", q->user);
    snprintf(u->name, sizeof u->name, "%s", q->display_name ? q->display_name : "");
    snprintf(u->secret, sizeof u->secret, "%s", q->secret);
    if (im_strmap_put(a->users, u->id, u, NULL) != IM_OK) {
        free(u);
        return IM_ENOMEM;
    }
    if (q->token && put_token(a, u, q) != IM_OK) {
        /* Nothing stored, as the port asks: the account goes with its token. */
        im_strmap_remove(a->users, u->id);
        free(u);
        return IM_ENOMEM;
    }
    return IM_OK;
}

static void found(answer *ans, const mem_user *u, bool with_secret)
{
    ans->has_record = true;
    memcpy(ans->user, u->id, sizeof ans->user);
    memcpy(ans->name, u->name, sizeof ans->name);
    if (with_secret) {
        memcpy(ans->secret, u->secret, sizeof ans->secret);
        ans->with_secret = true;
    }
}

struct expired {
    uint64_t now_ms;
    mem_token **list;
    size_t n;
};

static bool collect_expired(void *arg, const char *key, void *value)
{
    (void)key;
    struct expired *ex = arg;
    mem_token *t = value;
    if (ex->now_ms >= t->expires_ms)
        ex->list[ex->n++] = t;
    return true;
}

static int by_expiry(const void *x, const void *y)
{
    const mem_token *a = *(mem_token *const *)x, *b = *(mem_token *const *)y;
    if (a->expires_ms != b->expires_ms)
        return a->expires_ms < b->expires_ms ? -1 : 1;
    return a->put < b->put ? -1 : a->put > b->put;
}

/* At most keep expired tokens, the soonest expired first. */
static int expire(im__memory_accounts *a, const im_account_request *q, answer *ans)
{
    size_t total = im_strmap_count(a->tokens);
    if (q->keep == 0 || total == 0)
        return IM_OK;
    struct expired ex = { .now_ms = q->now_ms, .list = malloc(total * sizeof *ex.list) };
    if (!ex.list)
        return IM_ENOMEM;
    im_strmap_each(a->tokens, collect_expired, &ex);
    if (ex.n > q->keep)
        qsort(ex.list, ex.n, sizeof *ex.list, by_expiry);
    size_t n = ex.n < q->keep ? ex.n : q->keep;
    for (size_t i = 0; i < n; i++)
        drop_token(a, ex.list[i]);
    free(ex.list);
    ans->has_record = true;
    ans->count = n;
    return IM_OK;
}

/* Under the lock: runs q, and leaves what done will get in ans. */
static int run(im__memory_accounts *a, const im_account_request *q, answer *ans)
{
    char key[2 * IM_STORE_TOKEN_HASH_MAX + 1];
    mem_user *u;
    mem_token *t;
    switch (q->op) {
    case IM_ACCOUNT_CREATE:
        return create(a, q, ans);
    case IM_ACCOUNT_GET:
        if (!(u = im_strmap_get(a->users, q->user)))
            return im_error_set(&ans->err, IM_ENOTFOUND, "no user %s", q->user);
        found(ans, u, true);
        return IM_OK;
    case IM_ACCOUNT_TOKEN_PUT:
        if (!(u = im_strmap_get(a->users, q->user)))
            return im_error_set(&ans->err, IM_ENOTFOUND, "no user %s", q->user);
        return put_token(a, u, q);
    case IM_ACCOUNT_TOKEN_GET:
        hex_key(q->token, q->token_len, key);
        if (!(t = im_strmap_get(a->tokens, key)))
            return im_error_set(&ans->err, IM_ENOTFOUND, "unknown token");
        if (q->now_ms >= t->expires_ms) {
            drop_token(a, t); /* forgotten now, as it will never be good again */
            return im_error_set(&ans->err, IM_ENOTFOUND, "the token has expired");
        }
        found(ans, t->user, false);
        return IM_OK;
    case IM_ACCOUNT_TOKEN_DELETE:
        hex_key(q->token, q->token_len, key);
        if ((t = im_strmap_get(a->tokens, key)))
            drop_token(a, t);
        return IM_OK;
    case IM_ACCOUNT_TOKENS_DELETE_USER:
        ans->has_record = true;
        snprintf(ans->user, sizeof ans->user, "%s", q->user);
        if ((u = im_strmap_get(a->users, q->user)))
            for (; u->oldest; ans->count++)
                drop_token(a, u->oldest);
        return IM_OK;
    case IM_ACCOUNT_TOKENS_EXPIRE:
        return expire(a, q, ans);
    }
    return im_error_set(&ans->err, IM_EINVAL, "unknown account request %d", (int)q->op);
}

int im__memory_accounts_run(im__memory_accounts *a, const im_account_request *q,
                            im_store_account_fn done, void *arg, im_error *err)
{
    int rc = im_store_account_check(q, err);
    if (rc != IM_OK)
        return rc;
    if (!done)
        return im_error_set(err, IM_EINVAL, "an account request without a completion");
    answer ans = { 0 };
    pthread_mutex_lock(&a->lock);
    ans.rc = run(a, q, &ans);
    pthread_mutex_unlock(&a->lock);
    /* Out of memory changed nothing: refused by the call, as the port says. */
    if (ans.rc == IM_ENOMEM)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    if (ans.rc != IM_OK) {
        done(arg, ans.rc, NULL, &ans.err);
    } else if (ans.has_record) {
        im_account_record rec = { .user = ans.user, .display_name = ans.name,
                                  .secret = ans.with_secret ? ans.secret : NULL,
                                  .count = ans.count };
        done(arg, IM_OK, &rec, NULL);
    } else {
        done(arg, IM_OK, NULL, NULL);
    }
    return IM_OK;
}
