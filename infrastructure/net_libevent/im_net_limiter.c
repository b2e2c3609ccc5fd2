/* infrastructure/net_libevent/im_net_limiter.c: failed logins per peer
 * address, so that guessing passwords from one address is slowed to
 * max_login_failures per login_failure_window_s.
 *
 * A fixed window per address: the first failure opens it, each failure
 * counts, and when the count reaches the limit the address is refused until
 * the window closes. Entries live in one map under one lock: logins are
 * rare next to messages. The map is swept of closed windows when it grows,
 * so an attacker rotating addresses cannot grow it without bound. */
#include "im_net_internal.h"

#include <stdlib.h>
#include <string.h>

#define LIMITER_SWEEP_AT 65536u

typedef struct failures {
    uint64_t window_start_ms;
    uint32_t count;
} failures;

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

static bool window_open(const im_net_server *srv, const failures *f, uint64_t now)
{
    return now - f->window_start_ms < (uint64_t)srv->cfg.login_failure_window_s * 1000u;
}

bool im__limiter_allows(im_net_server *srv, const char *peer, uint32_t *wait_s)
{
    if (srv->cfg.max_login_failures == 0)
        return true;
    char addr[64];
    address_of(peer, addr, sizeof addr);
    uint64_t now = im__monotonic_ms();
    bool ok = true;
    pthread_mutex_lock(&srv->limiter_lock);
    failures *f = im_strmap_get(srv->limiter, addr);
    if (f && window_open(srv, f, now) && f->count >= srv->cfg.max_login_failures) {
        ok = false;
        uint64_t end = f->window_start_ms + (uint64_t)srv->cfg.login_failure_window_s * 1000u;
        *wait_s = (uint32_t)((end - now + 999) / 1000);
    }
    pthread_mutex_unlock(&srv->limiter_lock);
    return ok;
}

struct sweep { im_net_server *srv; uint64_t now; char (*dead)[64]; size_t n, cap; };

static bool find_closed(void *arg, const char *key, void *value)
{
    struct sweep *sw = arg;
    if (!window_open(sw->srv, value, sw->now) && sw->n < sw->cap)
        snprintf(sw->dead[sw->n++], 64, "%s", key);
    return sw->n < sw->cap;
}

void im__limiter_failed(im_net_server *srv, const char *peer)
{
    if (srv->cfg.max_login_failures == 0)
        return;
    char addr[64];
    address_of(peer, addr, sizeof addr);
    uint64_t now = im__monotonic_ms();
    pthread_mutex_lock(&srv->limiter_lock);
    if (im_strmap_count(srv->limiter) >= LIMITER_SWEEP_AT) {
        struct sweep sw = { .srv = srv, .now = now, .cap = LIMITER_SWEEP_AT };
        sw.dead = malloc(sw.cap * sizeof *sw.dead);
        if (sw.dead) {
            im_strmap_each(srv->limiter, find_closed, &sw);
            for (size_t i = 0; i < sw.n; i++)
                free(im_strmap_remove(srv->limiter, sw.dead[i]));
            free(sw.dead);
        }
    }
    failures *f = im_strmap_get(srv->limiter, addr);
    if (!f && (f = calloc(1, sizeof *f)) && im_strmap_put(srv->limiter, addr, f, NULL) != IM_OK) {
        free(f);
        f = NULL;
    }
    if (f) {
        if (!window_open(srv, f, now) || f->count == 0) {
            f->window_start_ms = now;
            f->count = 0;
        }
        f->count++;
    }
    pthread_mutex_unlock(&srv->limiter_lock);
}
