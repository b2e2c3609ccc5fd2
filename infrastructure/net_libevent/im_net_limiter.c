/* infrastructure/net_libevent/im_net_limiter.c: what one peer address may
 * cost the server before it has proved who it is.
 *
 * - Logins: failed logins are counted per address in a fixed window (the
 *   first failure opens it), and so are logins still being checked, so
 *   that neither pipelining nor many connections in parallel get more
 *   guesses than max_login_failures per login_failure_window_s.
 *   Registrations are counted in the same window.
 * - Slots: connections not yet logged in are counted per address and in
 *   all, so that clients without credentials cannot hold every slot.
 *
 * Entries live in one map under one lock: accepts and logins are rare next
 * to messages. An entry goes when nothing in it counts any more, and the
 * map is swept of such entries when it grows, so an attacker rotating
 * addresses cannot grow it without bound. */
#include "im_net_internal.h"

#include <stdlib.h>
#include <string.h>

#define LIMITER_SWEEP_AT 65536u

typedef struct peer_entry {
    uint64_t window_start_ms;
    uint32_t failures;          /* in the window */
    uint32_t registrations;     /* in the window */
    uint32_t in_flight;         /* logins being checked */
    uint32_t unauthenticated;   /* connections not logged in */
} peer_entry;

/* "1.2.3.4:5678" -> "1.2.3.4", "[::1]:5678" or "::1:5678" -> the address. */
static void address_of(const char *peer, char *out, size_t size)
{
    snprintf(out, size, "%s", peer);
    char *colon = strrchr(out, ':');
    if (colon)
        *colon = '\0';
}

int im__limiter_init(im_net_server *srv)
{
    pthread_mutex_init(&srv->limiter_lock, NULL);
    srv->limiter = im_strmap_new();
    return srv->limiter ? IM_OK : IM_ENOMEM;
}

static bool free_entry(void *arg, const char *key, void *value)
{
    (void)arg, (void)key;
    free(value);
    return true;
}

void im__limiter_destroy(im_net_server *srv)
{
    if (srv->limiter) {
        im_strmap_each(srv->limiter, free_entry, NULL);
        im_strmap_free(srv->limiter);
        srv->limiter = NULL;
    }
    pthread_mutex_destroy(&srv->limiter_lock);
}

static bool window_open(const im_net_server *srv, const peer_entry *e, uint64_t now)
{
    return now - e->window_start_ms < (uint64_t)srv->cfg.login_failure_window_s * 1000u;
}

/* Nothing in e counts any more: it may go. */
static bool idle_entry(const im_net_server *srv, const peer_entry *e, uint64_t now)
{
    return e->in_flight == 0 && e->unauthenticated == 0 &&
           ((e->failures == 0 && e->registrations == 0) || !window_open(srv, e, now));
}

struct sweep { im_net_server *srv; uint64_t now; char (*dead)[64]; size_t n, cap; };

static bool find_idle(void *arg, const char *key, void *value)
{
    struct sweep *sw = arg;
    if (idle_entry(sw->srv, value, sw->now) && sw->n < sw->cap)
        snprintf(sw->dead[sw->n++], 64, "%s", key);
    return sw->n < sw->cap;
}

/* The entry of addr, made if need be (NULL when out of memory). Under the lock. */
static peer_entry *entry_of(im_net_server *srv, const char *addr, uint64_t now)
{
    peer_entry *e = im_strmap_get(srv->limiter, addr);
    if (e)
        return e;
    if (im_strmap_count(srv->limiter) >= LIMITER_SWEEP_AT) {
        struct sweep sw = { .srv = srv, .now = now, .cap = LIMITER_SWEEP_AT };
        sw.dead = malloc(sw.cap * sizeof *sw.dead);
        if (sw.dead) {
            im_strmap_each(srv->limiter, find_idle, &sw);
            for (size_t i = 0; i < sw.n; i++)
                free(im_strmap_remove(srv->limiter, sw.dead[i]));
            free(sw.dead);
        }
    }
    if ((e = calloc(1, sizeof *e)) && im_strmap_put(srv->limiter, addr, e, NULL) != IM_OK) {
        free(e);
        e = NULL;
    }
    return e;
}

static void drop_if_idle(im_net_server *srv, const char *addr, peer_entry *e, uint64_t now)
{
    if (idle_entry(srv, e, now))
        free(im_strmap_remove(srv->limiter, addr));
}

/* A closed window starts again from nothing. */
static void roll_window(const im_net_server *srv, peer_entry *e, uint64_t now)
{
    if (!window_open(srv, e, now)) {
        e->window_start_ms = now;
        e->failures = 0;
        e->registrations = 0;
    }
}

static uint32_t seconds_left(const im_net_server *srv, const peer_entry *e, uint64_t now)
{
    uint64_t end = e->window_start_ms + (uint64_t)srv->cfg.login_failure_window_s * 1000u;
    return end > now ? (uint32_t)((end - now + 999) / 1000) : 1;
}

int im__limiter_begin_login(im_net_server *srv, const char *peer, bool registering,
                            uint32_t *wait_s)
{
    unsigned max_fail = srv->cfg.max_login_failures, max_reg = srv->cfg.max_registrations;
    char addr[64];
    address_of(peer, addr, sizeof addr);
    uint64_t now = im__monotonic_ms();
    int rc = IM_OK;
    pthread_mutex_lock(&srv->limiter_lock);
    peer_entry *e = entry_of(srv, addr, now);
    if (!e) {
        rc = IM_ENOMEM;
    } else {
        roll_window(srv, e, now);
        if (max_fail && e->failures + e->in_flight >= max_fail) {
            /* Only logins still being checked: one of them may fail and
             * count, so the address waits for its answer first. */
            *wait_s = e->failures >= max_fail ? seconds_left(srv, e, now) : 1;
            rc = IM_ERATE;
        } else if (registering && max_reg && e->registrations >= max_reg) {
            *wait_s = seconds_left(srv, e, now);
            rc = IM_ERATE;
        } else {
            e->in_flight++;
            if (registering)
                e->registrations++;
        }
        if (rc != IM_OK)
            drop_if_idle(srv, addr, e, now);
    }
    pthread_mutex_unlock(&srv->limiter_lock);
    return rc;
}

void im__limiter_end_login(im_net_server *srv, const char *peer, bool failed)
{
    char addr[64];
    address_of(peer, addr, sizeof addr);
    uint64_t now = im__monotonic_ms();
    pthread_mutex_lock(&srv->limiter_lock);
    peer_entry *e = im_strmap_get(srv->limiter, addr);
    if (e) {
        if (e->in_flight)
            e->in_flight--;
        if (failed && srv->cfg.max_login_failures) {
            roll_window(srv, e, now);
            e->failures++;
        }
        drop_if_idle(srv, addr, e, now);
    }
    pthread_mutex_unlock(&srv->limiter_lock);
}

bool im__limiter_open_unauthenticated(im_net_server *srv, const char *peer)
{
    char addr[64];
    address_of(peer, addr, sizeof addr);
    uint64_t now = im__monotonic_ms();
    bool ok = false;
    pthread_mutex_lock(&srv->limiter_lock);
    if (srv->unauthenticated < srv->cfg.max_unauthenticated) {
        peer_entry *e = entry_of(srv, addr, now);
        if (e && e->unauthenticated < srv->cfg.max_unauth_per_address) {
            e->unauthenticated++;
            srv->unauthenticated++;
            ok = true;
        } else if (e) {
            drop_if_idle(srv, addr, e, now);
        }
    }
    pthread_mutex_unlock(&srv->limiter_lock);
    return ok;
}

void im__limiter_close_unauthenticated(im_net_server *srv, const char *peer)
{
    char addr[64];
    address_of(peer, addr, sizeof addr);
    uint64_t now = im__monotonic_ms();
    pthread_mutex_lock(&srv->limiter_lock);
    peer_entry *e = im_strmap_get(srv->limiter, addr);
    if (e && e->unauthenticated) {
        e->unauthenticated--;
        srv->unauthenticated--;
        drop_if_idle(srv, addr, e, now);
    }
    pthread_mutex_unlock(&srv->limiter_lock);
}
