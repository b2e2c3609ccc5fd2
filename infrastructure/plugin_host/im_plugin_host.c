/* infrastructure/plugin_host/im_plugin_host.c: see the header.
 *
 * A plugin reaches the server only through the table below; the server
 * reaches it through the callbacks it filled in. Loading follows the
 * contract in plugin.h: dlopen with RTLD_NOW | RTLD_LOCAL (a missing symbol
 * fails now, not at the first message; plugins cannot see each other),
 * read the plugin's description and pick the version to speak with it
 * (im_plugin_abi.c) before any of its code runs, call its entry point,
 * check the version it answers. The port tables adapters hand over are
 * checked once, when they are opened. */
#include "im_plugin_internal.h"

#include <dlfcn.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "im_log.h"
#include "im_plugin_abi.h"

/* Per-thread scratch for rewritten bodies, two so that one plugin's output
 * can be the next one's input. Registered, so they are freed with the host
 * (a thread's buffers outlive nothing: workers stop before the host does). */
typedef struct scratch {
    struct scratch *next;
    uint8_t *buf[2];
} scratch;

/* ---- the table a plugin gets ---- */

static void host_log(imcore_host *h, imcore_log_level level, const char *fmt, ...)
{
    im_log_level lvl = level <= IMCORE_LOG_DEBUG ? IM_LOG_DEBUG
                       : level == IMCORE_LOG_INFO ? IM_LOG_INFO
                       : level == IMCORE_LOG_WARN ? IM_LOG_WARN : IM_LOG_ERROR;
    if (!IM_LOG_ENABLED(lvl))
        return;
    char text[IM_LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    im_log(lvl, "plugin %s: %s", h->name, text);
}

static int find_setting(const imcore_host *h, const char *key)
{
    for (unsigned i = 0; key && i < h->cfg->nsettings; i++)
        if (strcmp(h->cfg->settings[i].key, key) == 0)
            return (int)i;
    return -1;
}

static const char *host_config_get(imcore_host *h, const char *key)
{
    int i = find_setting(h, key);
    return i < 0 ? NULL : h->cfg->settings[i].value;
}

static const char *host_config_where(imcore_host *h, const char *key)
{
    int i = find_setting(h, key);
    return i < 0 ? NULL : h->where[i];
}

/* ---- typed config values (imcore_host_api.config_uint ...) ---- */

static int config_refuse(imcore_host *h, const char *key, char *error, size_t size,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int config_refuse(imcore_host *h, const char *key, char *error, size_t size,
                         const char *fmt, ...)
{
    if (error && size) {
        const char *where = host_config_where(h, key);
        int n = snprintf(error, size, "%s%splugin %s: %s: ", where ? where : "",
                         where ? ": " : "", h->name, key);
        if (n >= 0 && (size_t)n < size) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(error + n, size - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return IM_EINVAL;
}

/* A decimal number of 1..20 digits that fits in 64 bits; *end after it. */
static bool parse_u64(const char *s, uint64_t *out, const char **end)
{
    uint64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    *end = p;
    return p != s;
}

static int host_config_uint(imcore_host *h, const char *key, uint64_t lo, uint64_t hi,
                            uint64_t fallback, uint64_t *out, char *error, size_t size)
{
    const char *v = host_config_get(h, key);
    if (!v) {
        *out = fallback;
        return IM_OK;
    }
    uint64_t n;
    const char *end;
    if (!parse_u64(v, &n, &end) || *end || n < lo || n > hi)
        return config_refuse(h, key, error, size,
                             "must be a whole number between %llu and %llu, not '%.40s'",
                             (unsigned long long)lo, (unsigned long long)hi, v);
    *out = n;
    return IM_OK;
}

static int host_config_bool(imcore_host *h, const char *key, int fallback, int *out,
                            char *error, size_t size)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    const char *v = host_config_get(h, key);
    if (!v) {
        *out = fallback;
        return IM_OK;
    }
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return IM_OK;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return IM_OK;
        }
    }
    return config_refuse(h, key, error, size, "must be true or false (yes/no, on/off), not "
                                              "'%.40s'", v);
}

static int host_config_duration_ms(imcore_host *h, const char *key, uint64_t lo, uint64_t hi,
                                   uint64_t fallback, uint64_t *out, char *error, size_t size)
{
    const char *v = host_config_get(h, key);
    if (!v) {
        *out = fallback;
        return IM_OK;
    }
    static const struct { const char *unit; uint64_t ms; } units[] = {
        { "ms", 1 }, { "s", 1000 }, { "", 1000 }, { "m", 60000 }, { "h", 3600000 },
    };
    uint64_t n;
    const char *end;
    if (parse_u64(v, &n, &end)) {
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            if (strcmp(end, units[i].unit) != 0)
                continue;
            if (n > UINT64_MAX / units[i].ms)
                break;
            uint64_t ms = n * units[i].ms;
            if (ms < lo || ms > hi)
                break;
            *out = ms;
            return IM_OK;
        }
    }
    return config_refuse(h, key, error, size,
                         "must be a duration between %llu ms and %llu ms, such as 250ms, 30s, "
                         "5m or 2h, not '%.40s'",
                         (unsigned long long)lo, (unsigned long long)hi, v);
}

/* A list of scalars is kept as one string, its items joined with ", "
 * (im_config refuses an item holding a comma), so it splits back here. */
static int host_config_list(imcore_host *h, const char *key, int (*fn)(void *arg, const char *item),
                            void *arg, char *error, size_t size)
{
    const char *v = host_config_get(h, key);
    if (!v || !fn)
        return 0;
    char item[256];
    int n = 0;
    for (const char *p = v;;) {
        const char *comma = strstr(p, ", ");
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        snprintf(item, sizeof item, "%.*s", (int)len, p);
        n++;
        int rc = fn(arg, item);
        if (rc == IM_EINVAL)
            return config_refuse(h, key, error, size, "item %d, '%.60s', is not allowed here",
                                 n, item);
        if (rc != 0 || !comma)
            return n;
        p = comma + 2;
    }
}

#define MAX_CLAIMS 64

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int host_claim_user(imcore_host *h, const char *user_id, const char *display_name)
{
    im_plugin_host *ph = h->ph;
    im_error err = { 0 };
    if (atomic_load(&ph->state) != LOOP_LOADING || ph->initialising != h) {
        IM_ERROR("plugin %s: claim_user outside init: refused", h->name);
        return IM_ESTATE;
    }
    if (im_user_id_check(user_id, &err) != IM_OK ||
        im_display_name_check(display_name, &err) != IM_OK) {
        IM_ERROR("plugin %s: cannot claim '%s': %s", h->name, user_id ? user_id : "", err.msg);
        return IM_EINVAL;
    }
    im_claim *other = im__claim_find(ph, user_id);
    if (other) {
        IM_ERROR("plugin %s: cannot claim %s: plugin %s has it", h->name, user_id,
                 other->owner->name);
        return IM_EEXIST;
    }
    if (ph->nclaims == MAX_CLAIMS)
        return IM_ENOMEM;
    im_claim *grown = realloc(ph->claims, (ph->nclaims + 1) * sizeof *grown);
    if (!grown)
        return IM_ENOMEM;
    ph->claims = grown;
    unsigned i = ph->nclaims;
    im_claim *c = &ph->claims[i];
    memset(c, 0, sizeof *c);
    c->owner = h;
    snprintf(c->user, sizeof c->user, "%s", user_id);
    snprintf(c->name, sizeof c->name, "%s",
             display_name && display_name[0] ? display_name : user_id);
    /* Session ids of the network count up from 1: these stay clear of them. */
    im_session_init(&c->session, (UINT64_C(1) << 62) + i, now_ms());
    if (im_session_authenticate(&c->session, c->user, c->name, &err) != IM_OK)
        return IM_EINVAL;
    im_session_set_unmetered(&c->session);
    atomic_init(&c->behind, true); /* until the first catch-up, at start */
    c->ep = (im_endpoint){ .node = 0, .worker = IM_PLUGIN_WORKER, .conn_id = i + 1 };
    ph->nclaims++;
    IM_INFO("plugin %s speaks for %s (%s)", h->name, c->user, c->name);
    return IM_OK;
}

/* The random part of the ids of the claims' messages: 64 bits, from the
 * kernel, or (without getrandom) from the clocks and the pid, which still
 * differ from one start to the next. */
static void make_send_id_prefix(im_plugin_host *ph)
{
    uint64_t r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec a, b;
        clock_gettime(CLOCK_REALTIME, &a);
        clock_gettime(CLOCK_MONOTONIC, &b);
        r = ((uint64_t)a.tv_sec << 32) ^ (uint64_t)a.tv_nsec ^ ((uint64_t)b.tv_nsec << 20) ^
            (uint64_t)getpid();
    }
    snprintf(ph->send_id_prefix, sizeof ph->send_id_prefix, "srv-%016" PRIx64, r);
}

/* On the loop: the claim's session is the loop's. */
static int send_now(im_plugin_host *ph, im_claim *c, bool group, const char *to,
                    const uint8_t *body, size_t len)
{
    im_error err = { 0 };
    uint64_t rid = ++c->next_request;
    /* Every message needs its own id; a plugin's are the server's to make. */
    char cmid[IM_CLIENT_MSG_ID_MAX + 1];
    if (body)
        snprintf(cmid, sizeof cmid, "%s-%" PRIu64, ph->send_id_prefix, ++ph->sends);
    int rc = !body  ? im_app_group_join(ph->app, &c->session, &c->ep, rid, to, &err)
             : group ? im_app_send_group(ph->app, &c->session, &c->ep, rid, to, body, len, cmid,
                                         &err)
                     : im_app_send_private(ph->app, &c->session, &c->ep, rid, to, body, len,
                                           cmid, &err);
    if (rc != IM_OK)
        IM_DEBUG("plugin %s: %s to %s refused: %s", c->owner->name, c->user, to, err.msg);
    return rc;
}

typedef struct send_item {
    im_loop_item base;
    im_claim *claim;
    bool group;
    bool join;                    /* a group_join: no body */
    char to[IM_USER_ID_MAX + 1];
    size_t len;
    uint8_t body[];
} send_item;

static void run_send(im_plugin_host *ph, im_loop_item *it)
{
    send_item *si = (send_item *)it;
    int rc = send_now(ph, si->claim, si->group, si->to, si->join ? NULL : si->body, si->len);
    if (rc != IM_OK)
        IM_WARN("plugin %s: a message from %s to %s was refused: %s", si->claim->owner->name,
                si->claim->user, si->to, im_strerror(rc));
}

/* Accepted, but the loop stopped before it went out: said, as a refusal
 * after acceptance is. */
static void cancel_send(im_plugin_host *ph, im_loop_item *it)
{
    (void)ph;
    send_item *si = (send_item *)it;
    IM_WARN("plugin %s: a %s from %s to %s was not sent: the server is stopping",
            si->claim->owner->name, si->join ? "join" : "message", si->claim->user, si->to);
}

static int host_send(imcore_host *h, bool group, const char *from, const char *to,
                     const uint8_t *body, size_t len)
{
    im_plugin_host *ph = h->ph;
    im_claim *c = from ? im__claim_find(ph, from) : NULL;
    if (!c || c->owner != h || !to || (!body && len))
        return IM_EINVAL;
    int state = atomic_load(&ph->state);
    if (state != LOOP_RUNNING)
        return state == LOOP_STOPPED ? IM_ESHUTDOWN : IM_ESTATE;
    if (im__on_loop(ph))
        return send_now(ph, c, group, to, body, len);
    /* From another thread: carried to the loop, which owns the session. */
    if (strlen(to) > IM_USER_ID_MAX)
        return IM_EINVAL;
    if (len > ph->limits.max_body_bytes)
        return IM_ETOOBIG;
    send_item *si = calloc(1, sizeof *si + len);
    if (!si)
        return IM_ENOMEM;
    si->base.run = run_send;
    si->base.cancel = cancel_send;
    si->claim = c;
    si->group = group;
    si->join = body == NULL;
    snprintf(si->to, sizeof si->to, "%s", to);
    si->len = len;
    if (len)
        memcpy(si->body, body, len);
    if (!im__loop_push(ph, &si->base)) {
        free(si);
        return IM_ESHUTDOWN;
    }
    return IM_OK;
}

static int host_send_private(imcore_host *h, const char *from, const char *to,
                             const uint8_t *body, size_t len)
{
    return body ? host_send(h, false, from, to, body, len) : IM_EINVAL;
}

static int host_send_group(imcore_host *h, const char *from, const char *group,
                           const uint8_t *body, size_t len)
{
    return body ? host_send(h, true, from, group, body, len) : IM_EINVAL;
}

/* A join is a send without a body: the same path to the loop. */
static int host_group_join(imcore_host *h, const char *account, const char *group)
{
    return host_send(h, true, account, group, NULL, 0);
}

/* The claims are fixed once the plugins are loaded: any thread may ask. */
static int host_is_service_account(imcore_host *h, const char *user_id)
{
    return user_id && im__claim_find(h->ph, user_id) ? 1 : 0;
}

static int host_is_online(imcore_host *h, const char *user_id)
{
    im_plugin_host *ph = h->ph;
    if (!user_id)
        return 0;
    if (im__claim_find(ph, user_id))
        return 1;
    return ph->inner.presence && im_presence_is_online(ph->inner.presence, user_id) ? 1 : 0;
}

struct member_walk { imcore_member_fn fn; void *arg; };

static int walk_members(void *arg, const im_group *g, im_error *err)
{
    (void)err;
    struct member_walk *w = arg;
    size_t n = im_group_member_count(g);
    for (size_t i = 0; i < n; i++)
        if (w->fn && w->fn(w->arg, im_group_member(g, i)) != 0)
            break;
    return (int)n;
}

static int host_group_members(imcore_host *h, const char *group, imcore_member_fn fn, void *arg)
{
    im_plugin_host *ph = h->ph;
    if (!group)
        return IM_EINVAL;
    if (!ph->groups)
        return IM_ESTATE;
    struct member_walk w = { fn, arg };
    return ph->groups->ops->read(ph->groups, group, walk_members, &w, NULL);
}

static uint64_t host_timer_start(imcore_host *h, uint64_t after_ms, uint64_t every_ms,
                                 void *arg)
{
    return im__timer_start(h, after_ms, every_ms, arg);
}

static void host_timer_cancel(imcore_host *h, uint64_t timer_id)
{
    im__timer_cancel(h, timer_id);
}

static int host_run_blocking(imcore_host *h, void (*work)(void *arg),
                             void (*done)(void *state, void *arg), void *arg)
{
    return im__run_blocking(h, work, done, arg);
}

static int host_kv_put(imcore_host *h, const char *key, const void *value, size_t len)
{
    im_plugin_host *ph = h->ph;
    if ((!value && len) || im_store_kv_check(h->name, key, value, len, NULL) != IM_OK)
        return IM_EINVAL;
    int state = atomic_load(&ph->state);
    if (state == LOOP_STOPPED)
        return IM_ESHUTDOWN;
    if (state != LOOP_RUNNING || !ph->store)
        return IM_ESTATE;
    im_error err = { 0 };
    int rc = ph->store->ops->kv_put(ph->store, h->name, key, value, value ? len : 0, NULL, NULL,
                                    &err);
    /* A store without a map was named once, at open: not at every put. */
    if (rc != IM_OK && rc != IM_EUNSUPPORTED)
        IM_WARN("plugin %s: kv_put %s: %s", h->name, key, err.msg);
    return rc;
}

struct kv_walk { imcore_kv_fn fn; void *arg; };

/* True on the plugin loop while a plugin's on_start runs (run_start). */
static _Thread_local bool in_on_start;

static bool kv_through(void *arg, const char *key, const void *value, size_t len)
{
    struct kv_walk *w = arg;
    return w->fn(w->arg, key, value, len) == 0;
}

static int host_kv_each(imcore_host *h, const char *prefix, imcore_kv_fn fn, void *arg)
{
    im_plugin_host *ph = h->ph;
    if (!fn)
        return IM_EINVAL;
    if (atomic_load(&ph->state) != LOOP_RUNNING || !ph->store)
        return IM_ESTATE;
    /* A read of the disk on the plugin loop would hold up every plugin's
     * callbacks: it is allowed there only in on_start, before the server
     * serves anyone; elsewhere it belongs in run_blocking's work. */
    if (im__on_loop(ph) && !in_on_start) {
        IM_WARN("plugin %s: kv_each refused on the plugin loop outside on_start (it reads "
                "the disk): call it in on_start or in run_blocking's work", h->name);
        return IM_ESTATE;
    }
    struct kv_walk w = { fn, arg };
    im_error err = { 0 };
    int rc = ph->store->ops->kv_each(ph->store, h->name, prefix ? prefix : "", kv_through, &w,
                                     &err);
    if (rc < 0 && rc != IM_EUNSUPPORTED)
        IM_WARN("plugin %s: kv_each: %s", h->name, err.msg);
    return rc;
}

/* ---- kv_get: a read on the blocking thread, after the plugin's puts ---- */

typedef struct kv_get_job {
    imcore_host *h;
    char key[IM_STORE_KV_KEY_MAX + 1];
    void (*done)(void *state, int rc, const void *value, size_t len, void *arg);
    void *arg;
    int rc;
    size_t len;
    uint8_t *value;
    /* the barrier's end, waited for on the blocking thread */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool barrier_done;
} kv_get_job;

static void kv_get_barrier_done(void *arg, int rc, const im_error *err)
{
    (void)rc, (void)err;
    kv_get_job *j = arg;
    pthread_mutex_lock(&j->lock);
    j->barrier_done = true;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->lock);
}

static bool kv_get_one(void *arg, const char *key, const void *value, size_t len)
{
    kv_get_job *j = arg;
    if (strcmp(key, j->key) != 0)
        return true; /* a longer key with this one as its prefix */
    j->value = malloc(len ? len : 1);
    if (!j->value) {
        j->rc = IM_ENOMEM;
        return false;
    }
    memcpy(j->value, value, len);
    j->len = len;
    j->rc = IM_OK;
    return false;
}

static void kv_get_work(void *arg)
{
    kv_get_job *j = arg;
    im_store *st = j->h->ph->store;
    /* Every put made before the get is committed once a barrier asked now
     * has run: puts are requests in order like the others. */
    im_error err = { 0 };
    if (st->ops->barrier(st, kv_get_barrier_done, j, &err) == IM_OK) {
        pthread_mutex_lock(&j->lock);
        while (!j->barrier_done)
            pthread_cond_wait(&j->cond, &j->lock);
        pthread_mutex_unlock(&j->lock);
    }
    j->rc = IM_ENOTFOUND;
    int rc = st->ops->kv_each(st, j->h->name, j->key, kv_get_one, j, &err);
    if (rc < 0) {
        j->rc = rc;
        IM_WARN("plugin %s: kv_get: %s", j->h->name, err.msg);
    }
}

static void kv_get_done(void *state, void *arg)
{
    kv_get_job *j = arg;
    int rc = j->rc;
    /* run_blocking's done also runs, with the job unrun, when the server
     * stops first: then the work never read. */
    j->done(state, rc, rc == IM_OK ? j->value : NULL, rc == IM_OK ? j->len : 0, j->arg);
    free(j->value);
    pthread_cond_destroy(&j->cond);
    pthread_mutex_destroy(&j->lock);
    free(j);
}

static int host_kv_get(imcore_host *h, const char *key,
                       void (*done)(void *state, int rc, const void *value, size_t len,
                                    void *arg),
                       void *arg)
{
    im_plugin_host *ph = h->ph;
    if (!key || !key[0] || strlen(key) > IM_STORE_KV_KEY_MAX || !done)
        return IM_EINVAL;
    if (atomic_load(&ph->state) != LOOP_RUNNING || !ph->store)
        return IM_ESTATE;
    if (!IM_STORE_HAS(ph->store, kv_each))
        return IM_EUNSUPPORTED;
    kv_get_job *j = calloc(1, sizeof *j);
    if (!j)
        return IM_ENOMEM;
    j->h = h;
    snprintf(j->key, sizeof j->key, "%s", key);
    j->done = done;
    j->arg = arg;
    j->rc = IM_ESHUTDOWN; /* what done says if the work never runs */
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    int rc = im__run_blocking(h, kv_get_work, kv_get_done, j);
    if (rc != IM_OK) {
        pthread_cond_destroy(&j->cond);
        pthread_mutex_destroy(&j->lock);
        free(j);
    }
    return rc;
}

static imcore_log_level host_log_level(imcore_host *h)
{
    (void)h;
    return IM_LOG_ENABLED(IM_LOG_DEBUG)  ? IMCORE_LOG_DEBUG
           : IM_LOG_ENABLED(IM_LOG_INFO) ? IMCORE_LOG_INFO
           : IM_LOG_ENABLED(IM_LOG_WARN) ? IMCORE_LOG_WARN
                                         : IMCORE_LOG_ERROR;
}

static const char *host_config_key(imcore_host *h, unsigned index)
{
    return index < h->cfg->nsettings ? h->cfg->settings[index].key : NULL;
}

static const imcore_limits *host_limits(imcore_host *h)
{
    return &h->ph->limits;
}

/* One table per version spoken, the same functions in each: a plugin of
 * version 1 may check that api_version is 1. (Versions 2 and 3 changed the
 * port tables, not this one.) */
#define HOST_API_FUNCTIONS                                                                  \
    .log = host_log,                                                                        \
    .config_get = host_config_get,                                                          \
    .config_where = host_config_where,                                                      \
    .claim_user = host_claim_user,                                                          \
    .send_private = host_send_private,                                                      \
    .send_group = host_send_group,                                                          \
    .group_join = host_group_join,                                                          \
    .is_online = host_is_online,                                                            \
    .group_members = host_group_members,                                                    \
    .timer_start = host_timer_start,                                                        \
    .timer_cancel = host_timer_cancel,                                                      \
    .run_blocking = host_run_blocking,                                                      \
    .kv_put = host_kv_put,                                                                  \
    .kv_each = host_kv_each,                                                                \
    .log_level = host_log_level,                                                            \
    .config_key = host_config_key,                                                          \
    .limits = host_limits,                                                                  \
    .is_service_account = host_is_service_account,                                          \
    .config_uint = host_config_uint,                                                        \
    .config_bool = host_config_bool,                                                        \
    .config_duration_ms = host_config_duration_ms,                                          \
    .config_list = host_config_list,                                                        \
    .group_call = im__group_call,                                                           \
    .kv_get = host_kv_get

static const imcore_host_api host_api = {
    .size = sizeof(imcore_host_api),
    .api_version = IMCORE_PLUGIN_API_VERSION,
    HOST_API_FUNCTIONS,
};

static const imcore_host_api host_api_v1 = {
    .size = sizeof(imcore_host_api),
    .api_version = 1,
    HOST_API_FUNCTIONS,
};

static const imcore_host_api host_api_v2 = {
    .size = sizeof(imcore_host_api),
    .api_version = 2,
    HOST_API_FUNCTIONS,
};

_Static_assert(IMCORE_PLUGIN_API_VERSION == 3, "a new plugin API version: give it a host table "
                                               "here, and im__abi_choose its rules");

/* ---- the filter port ---- */

static scratch *thread_scratch(im_plugin_host *ph)
{
    scratch *s = pthread_getspecific(ph->scratch_key);
    if (s)
        return s;
    s = calloc(1, sizeof *s);
    if (!s || !(s->buf[0] = malloc(ph->limits.max_body_bytes)) || !(s->buf[1] = malloc(ph->limits.max_body_bytes))) {
        if (s)
            free(s->buf[0]);
        free(s);
        return NULL;
    }
    pthread_mutex_lock(&ph->scratch_lock);
    s->next = ph->scratches;
    ph->scratches = s;
    pthread_mutex_unlock(&ph->scratch_lock);
    pthread_setspecific(ph->scratch_key, s);
    return s;
}

static int filter_check(im_filter *f, const im_message *m, const uint8_t **new_body,
                        size_t *new_len, im_error *err)
{
    im_plugin_host *ph = (im_plugin_host *)f;
    if (!ph->durable_store && m->kind == IM_MESSAGE_PRIVATE) {
        im_claim *c = im__claim_find(ph, m->target);
        int rc = c ? im__claim_admits_private(ph, c, err) : IM_OK;
        if (rc != IM_OK)
            return rc;
    }
    if (!ph->filters)
        return 0;
    imcore_message im = {
        .size = sizeof im,
        .kind = m->kind == IM_MESSAGE_GROUP ? IMCORE_MESSAGE_GROUP : IMCORE_MESSAGE_PRIVATE,
        .from = m->sender, .to = m->target, .body = m->body, .body_len = m->body_len,
        .client_msg_id = m->client_msg_id ? m->client_msg_id : "",
        .seq = 0, .server_time_ms = m->server_time_ms,
    };
    scratch *s = NULL;
    int which = 0;
    bool rewritten = false;
    for (unsigned i = 0; i < ph->n; i++) {
        imcore_host *h = &ph->plugins[i];
        if (!h->desc.on_message)
            continue;
        if (!s && !(s = thread_scratch(ph)))
            return im_error_set(err, IM_ENOMEM, "out of memory");
        imcore_rewrite out = { .body = s->buf[which], .capacity = ph->limits.max_body_bytes };
        imcore_verdict v = h->desc.on_message(h->desc.state, &im, &out);
        if (v == IMCORE_DROP) {
            out.reason[sizeof out.reason - 1] = '\0';
            return im_error_set(err, IM_EREFUSED, "%s",
                                out.reason[0] ? out.reason : "refused by the server");
        }
        if (v == IMCORE_REWRITE) {
            if (out.body_len < 1 || out.body_len > ph->limits.max_body_bytes) {
                IM_ERROR("plugin %s: rewrote a message to %zu bytes (1..%u allowed)", h->name,
                         out.body_len, ph->limits.max_body_bytes);
                return im_error_set(err, IM_EREFUSED, "refused: a server plugin failed");
            }
            im.body = s->buf[which];
            im.body_len = out.body_len;
            which ^= 1;
            rewritten = true;
        }
    }
    if (!rewritten)
        return 0;
    *new_body = im.body;
    *new_len = im.body_len;
    return 1;
}

static const struct im_filter_ops plugin_filter_ops = {
    .name = "plugins",
    .check = filter_check,
};

/* ---- loading ---- */

/* The server's adapters: plugins named by a config key, each filling one
 * open_* callback. ph->adapter[k] is the entry of kind k, or UINT_MAX. */
static const struct adapter_kind {
    const char *key;              /* the config key that names it, for messages */
    const char *prefix;           /* of its file name: storage_NAME.so */
    const char *what;
    const char *callback;
    size_t offset;                /* of the callback in imcore_plugin */
    im_abi_role role;
} adapter_kinds[IM_ADAPTER_KINDS] = {
    [IM_ADAPTER_STORAGE] = { "storage.engine", "storage_", "storage adapter", "open_storage",
                             offsetof(imcore_plugin, open_storage), IM_ABI_STORAGE },
    [IM_ADAPTER_TRANSPORT] = { "transport", "transport_", "transport", "open_transport",
                               offsetof(imcore_plugin, open_transport), IM_ABI_TRANSPORT },
    [IM_ADAPTER_CLUSTER] = { "cluster", "cluster_", "cluster adapter", "open_cluster",
                             offsetof(imcore_plugin, open_cluster), IM_ABI_CLUSTER },
};

/* The kind of adapter entry i is, or -1 for an extension. */
static int adapter_kind_of(const im_plugin_host *ph, unsigned i)
{
    for (int k = 0; k < IM_ADAPTER_KINDS; k++)
        if (ph->adapter[k] == i)
            return k;
    return -1;
}

/* Whether the plugin filled the callback at offset (and knows of it). */
static bool has_callback(const imcore_plugin *desc, size_t offset)
{
    void (*fn)(void);
    if (desc->size < offset + sizeof fn)
        return false;
    memcpy(&fn, (const char *)desc + offset, sizeof fn);
    return fn != NULL;
}

static int load_one(im_plugin_host *ph, const im_config *cfg, unsigned i, im_error *err)
{
    const im_plugin_config *pc = &ph->configs[i];
    imcore_host *h = &ph->plugins[i];
    snprintf(h->name, sizeof h->name, "%s", pc->name);
    h->cfg = pc;
    h->ph = ph;
    h->where = calloc(pc->nsettings ? pc->nsettings : 1, sizeof *h->where);
    if (!h->where)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    for (unsigned k = 0; k < pc->nsettings; k++) {
        unsigned line = pc->settings[k].line;
        if (line)
            snprintf(h->where[k], sizeof h->where[k], "%s:%u", ph->source, line);
        else /* a default, or a key the config reader has already checked */
            snprintf(h->where[k], sizeof h->where[k], "%s", ph->source);
    }
    /* Messages name the entry: "FILE:LINE: plugin NAME: ..." for a plugin,
     * "FILE:LINE: storage.engine: NAME: ..." for an adapter. */
    int kind = adapter_kind_of(ph, i);
    if (kind >= 0)
        snprintf(h->label, sizeof h->label, "%s: %s", adapter_kinds[kind].key,
                 pc->name + strlen(adapter_kinds[kind].prefix));
    else
        snprintf(h->label, sizeof h->label, "plugin %s", pc->name);
    if (pc->line)
        snprintf(h->at, sizeof h->at, "%s:%u", ph->source, pc->line);
    else
        snprintf(h->at, sizeof h->at, "%s", ph->source);

    char path[600];
    if (pc->path[0])
        snprintf(path, sizeof path, "%s", pc->path);
    else
        snprintf(path, sizeof path, "%s/%s.so", cfg->plugin_dir, pc->name);
#define FAIL(...)                                                                           \
    do {                                                                                    \
        char what_[1024];                                                                   \
        snprintf(what_, sizeof what_, __VA_ARGS__);                                         \
        return im_error_set(err, IM_EINVAL, "%s: %s: %s", h->at, h->label, what_);            \
    } while (0)
    dlerror();
    h->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h->dl)
        FAIL("cannot load it: %s", dlerror());
    imcore_plugin_init_fn init;
    *(void **)&init = dlsym(h->dl, IMCORE_PLUGIN_INIT_SYMBOL);
    if (!init)
        FAIL("%s has no %s: not an imcore plugin", path, IMCORE_PLUGIN_INIT_SYMBOL);
    /* What the plugin is and speaks, before any of its code runs. */
    const imcore_plugin_info *about = dlsym(h->dl, IMCORE_PLUGIN_ABOUT_SYMBOL);
    im_error why = { 0 };
    if (im__abi_choose(about, kind >= 0 ? adapter_kinds[kind].role : IM_ABI_EXTENSION,
                       sizeof(im_session), &h->api_version, &why) != IM_OK)
        FAIL("%s", why.msg);
    memset(&h->desc, 0, sizeof h->desc);
    h->desc.size = sizeof h->desc;
    h->desc.api_version = h->api_version;
    if (about) {
        h->desc.name = about->name;
        h->desc.version = about->version;
    }
    ph->initialising = h;
    int rc = init(h->api_version == 1   ? &host_api_v1
                  : h->api_version == 2 ? &host_api_v2
                                        : &host_api,
                  h, &h->desc);
    ph->initialising = NULL;
    h->desc.error[sizeof h->desc.error - 1] = '\0';
    if (rc != 0) {
        h->desc.shutdown = NULL; /* a refused init has nothing to shut down */
        FAIL("init failed: %s", h->desc.error[0] ? h->desc.error : "(no reason given)");
    }
    if (h->desc.api_version != h->api_version) {
        unsigned got = h->desc.api_version;
        if (h->desc.shutdown)
            h->desc.shutdown(h->desc.state);
        h->desc.shutdown = NULL;
        if (!about)
            FAIL("built for plugin API version %u, but without the %s of every version after "
                 "1", got, IMCORE_PLUGIN_ABOUT_SYMBOL);
        FAIL("its init answered plugin API %u, the server picked %u from its %s (%u to %u)",
             got, h->api_version, IMCORE_PLUGIN_ABOUT_SYMBOL, (unsigned)about->api_min,
             (unsigned)about->api_max);
    }
    if (kind >= 0 && !has_callback(&h->desc, adapter_kinds[kind].offset)) {
        if (h->desc.shutdown)
            h->desc.shutdown(h->desc.state);
        h->desc.shutdown = NULL;
        FAIL("%s is a plugin but not a %s (it has no %s)", path, adapter_kinds[kind].what,
             adapter_kinds[kind].callback);
    }
#undef FAIL
    if (h->desc.on_message)
        ph->filters = true;
    if (h->desc.on_login || h->desc.on_logout)
        ph->wants_presence = true;
    IM_INFO("plugin %s %s loaded from %s (plugin API %u)", pc->name,
            h->desc.version ? h->desc.version : "", path, h->api_version);
    return IM_OK;
}

static void add_setting(im_plugin_config *pc, const char *key, const char *value, unsigned line)
{
    if (pc->nsettings == IM_CONFIG_MAX_PLUGIN_KEYS)
        return;
    im_plugin_setting *st = &pc->settings[pc->nsettings++];
    snprintf(st->key, sizeof st->key, "%s", key);
    snprintf(st->value, sizeof st->value, "%s", value);
    st->line = line;
}

static void add_number(im_plugin_config *pc, const char *key, unsigned long value)
{
    char num[32];
    snprintf(num, sizeof num, "%lu", value);
    add_setting(pc, key, num, 0);
}

/* An adapter's entry: the plugin PREFIX_NAME, found at the config line of
 * the key that names it. */
static void adapter_entry(im_plugin_config *pc, const char *prefix, const char *name,
                          unsigned line)
{
    memset(pc, 0, sizeof *pc);
    snprintf(pc->name, sizeof pc->name, "%s_%.50s", prefix, name);
    pc->line = line;
}

/* The adapter's own keys, options.*, after the server's. */
static void add_options(im_plugin_config *pc, const im_plugin_config *opt)
{
    for (unsigned i = 0; i < opt->nsettings; i++)
        add_setting(pc, opt->settings[i].key, opt->settings[i].value, opt->settings[i].line);
}

/* The storage adapter's entry: plugin storage_<engine>, whose config is
 * the storage section (already checked by the config reader), what the
 * accounts mode asks of it (receivers: accounts, when logins need an
 * account, so a private message needs a receiver that has one) and its
 * options. */
static void storage_entry(const im_config *cfg, im_plugin_config *pc)
{
    adapter_entry(pc, "storage", cfg->storage_engine, cfg->storage_engine_line);
    add_setting(pc, "path", cfg->storage_path, 0);
    add_number(pc, "max_batch", cfg->storage_max_batch);
    add_setting(pc, "synchronous",
                cfg->storage_synchronous == IM_STORAGE_SYNC_NORMAL ? "normal" : "full", 0);
    add_number(pc, "max_page_count", cfg->storage_max_pages);
    add_setting(pc, "check_on_start",
                cfg->storage_check == IM_STORAGE_CHECK_NONE ? "none" : "quick", 0);
    add_setting(pc, "receivers", cfg->accounts_mode == IM_ACCOUNTS_PASSWORD ? "accounts" : "any",
                0);
    add_options(pc, &cfg->storage_options);
}

/* The transport adapter's entry: plugin transport_<name>, whose config is
 * the server's network settings (already checked by the config reader) and
 * transport_options as options.*. */
static void transport_entry(const im_config *cfg, im_plugin_config *pc)
{
    adapter_entry(pc, "transport", cfg->transport, cfg->transport_line);
    if (cfg->nlisteners == 0) {
        add_setting(pc, "listen.host", cfg->listen_host, 0);
        add_number(pc, "listen.port", cfg->listen_port);
    }
    /* A listen list: listener.N is "KIND HOST PORT MAX_CONNECTIONS" at the
     * entry's line; a tls one's files follow at their own lines, so that
     * the transport says FILE:LINE when one does not load. */
    for (unsigned i = 0; i < cfg->nlisteners; i++) {
        const im_listen_config *l = &cfg->listeners[i];
        char key[32], value[128];
        snprintf(key, sizeof key, "listener.%u", i);
        snprintf(value, sizeof value, "%s %s %u %u", l->transport, l->host, l->port,
                 l->max_connections);
        add_setting(pc, key, value, l->line);
        if (l->cert[0]) {
            snprintf(key, sizeof key, "listener.%u.cert", i);
            add_setting(pc, key, l->cert, l->cert_line);
            snprintf(key, sizeof key, "listener.%u.key", i);
            add_setting(pc, key, l->key, l->key_line);
        }
        if (l->client_ca[0]) {
            snprintf(key, sizeof key, "listener.%u.client_ca", i);
            add_setting(pc, key, l->client_ca, l->client_ca_line);
        }
    }
    add_number(pc, "workers", cfg->workers);
    add_setting(pc, "node_id", cfg->node_id, 0);
    add_number(pc, "limits.max_connections", cfg->max_connections);
    add_number(pc, "limits.max_frame_bytes", cfg->max_frame_bytes);
    add_number(pc, "limits.output_buffer_bytes", cfg->output_buffer_bytes);
    add_number(pc, "session.heartbeat_s", cfg->heartbeat_s);
    add_number(pc, "session.idle_timeout_s", cfg->idle_timeout_s);
    add_number(pc, "accounts.max_login_failures", cfg->accounts_max_failures);
    add_number(pc, "accounts.login_failure_window_s", cfg->accounts_failure_window_s);
    add_number(pc, "accounts.max_registrations", cfg->accounts_max_registrations);
    add_number(pc, "session.login_timeout_s", cfg->login_timeout_s);
    add_number(pc, "session.frame_timeout_s", cfg->frame_timeout_s);
    /* 0 in the config: half of max_connections, so that clients not yet
     * logged in can never hold every slot. */
    add_number(pc, "limits.max_unauthenticated",
               cfg->max_unauthenticated ? cfg->max_unauthenticated
                                        : (cfg->max_connections + 1) / 2);
    add_number(pc, "limits.max_unauthenticated_per_address", cfg->max_unauth_per_address);
    add_number(pc, "limits.input_buffer_bytes", cfg->input_budget_bytes);
    add_options(pc, &cfg->transport_options);
}

/* The cluster adapter's entry: plugin cluster_<name>; its config is this
 * node's id, where clients reach it (listen.port is set to the port the
 * transport bound once it has: im_plugin_host_open_cluster), the
 * ZooKeeper settings, the login policy, and cluster_options as options.*. */
static void cluster_entry(const im_config *cfg, im_plugin_config *pc)
{
    adapter_entry(pc, "cluster", cfg->cluster, cfg->cluster_line);
    add_setting(pc, "node_id", cfg->node_id, 0);
    add_setting(pc, "listen.host", cfg->listen_host, 0);
    add_number(pc, "listen.port", cfg->listen_port);
    add_setting(pc, "zookeeper.hosts", cfg->zookeeper_hosts, 0);
    add_setting(pc, "zookeeper.root", cfg->zookeeper_root, 0);
    add_number(pc, "zookeeper.session_timeout_ms", cfg->zookeeper_session_ms);
    add_setting(pc, "session.login_policy",
                cfg->login_policy == IM_LOGIN_REJECT ? "reject" : "replace", 0);
    add_options(pc, &cfg->cluster_options);
}

/* What a host loads: the extensions cfg lists, the adapters. */
typedef enum load_what {
    LOAD_PLUGINS = 1,
    LOAD_STORAGE = 2,
    LOAD_NETWORK = 4,             /* the transport, and the cluster adapter unless "none" */
} load_what;

static int host_load(const im_config *cfg, unsigned what, im_plugin_host **out, im_error *err);

int im_plugin_host_load(const im_config *cfg, bool with_adapters, im_plugin_host **out,
                        im_error *err)
{
    return host_load(cfg, LOAD_PLUGINS | (with_adapters ? LOAD_STORAGE | LOAD_NETWORK : 0u),
                     out, err);
}

int im_plugin_host_load_storage(const im_config *cfg, im_plugin_host **out, im_error *err)
{
    return host_load(cfg, LOAD_STORAGE, out, err);
}

static int host_load(const im_config *cfg, unsigned what, im_plugin_host **out, im_error *err)
{
    *out = NULL;
    im_plugin_host *ph = calloc(1, sizeof *ph);
    if (!ph)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    ph->filter.ops = &plugin_filter_ops;
    pthread_mutex_init(&ph->calls_lock, NULL);
    make_send_id_prefix(ph);
    ph->limits = (imcore_limits){
        .size = sizeof ph->limits, .max_body_bytes = cfg->max_body_bytes,
        .max_group_members = cfg->max_group_members,
        .plugin_backlog = cfg->plugin_backlog ? cfg->plugin_backlog : 1,
    };
    snprintf(ph->source, sizeof ph->source, "%s", cfg->source[0] ? cfg->source : "config");
    pthread_mutex_init(&ph->scratch_lock, NULL);
    if (pthread_key_create(&ph->scratch_key, NULL) != 0) {
        free(ph);
        return im_error_set(err, IM_ENOMEM, "out of thread keys");
    }
    if (im__loop_init(ph, err) != IM_OK) {
        im_plugin_host_free(ph);
        return err ? err->code : IM_ENOMEM;
    }
    im__plugin_router_init(ph);
    /* The extensions in config order, then the storage adapter, the
     * transport and the cluster adapter, as asked. */
    unsigned nplugins = what & LOAD_PLUGINS ? cfg->nplugins : 0, n = nplugins;
    bool with_cluster = (what & LOAD_NETWORK) && strcmp(cfg->cluster, "none") != 0;
    ph->adapter[IM_ADAPTER_STORAGE] = what & LOAD_STORAGE ? n++ : UINT_MAX;
    ph->adapter[IM_ADAPTER_TRANSPORT] = what & LOAD_NETWORK ? n++ : UINT_MAX;
    ph->adapter[IM_ADAPTER_CLUSTER] = with_cluster ? n++ : UINT_MAX;
    ph->plugins = calloc(n ? n : 1, sizeof *ph->plugins);
    ph->configs = calloc(n ? n : 1, sizeof *ph->configs);
    if (!ph->plugins || !ph->configs) {
        im_plugin_host_free(ph);
        return im_error_set(err, IM_ENOMEM, "out of memory");
    }
    memcpy(ph->configs, cfg->plugins, nplugins * sizeof *ph->configs);
    if (what & LOAD_STORAGE)
        storage_entry(cfg, &ph->configs[ph->adapter[IM_ADAPTER_STORAGE]]);
    if (what & LOAD_NETWORK)
        transport_entry(cfg, &ph->configs[ph->adapter[IM_ADAPTER_TRANSPORT]]);
    if (with_cluster)
        cluster_entry(cfg, &ph->configs[ph->adapter[IM_ADAPTER_CLUSTER]]);
    for (unsigned i = 0; i < n; i++) {
        ph->n = i + 1; /* so that free unloads the ones before, and this one's dl */
        int rc = load_one(ph, cfg, i, err);
        if (rc != IM_OK) {
            im_plugin_host_free(ph);
            return rc;
        }
    }
    *out = ph;
    return IM_OK;
}

im_filter *im_plugin_host_filter(im_plugin_host *h)
{
    /* Service accounts need it too without a durable store: a full backlog
     * refuses messages to them before they are stored. */
    return h && (h->filters || (h->nclaims && !h->durable_store)) ? &h->filter : NULL;
}

/* The loaded adapter of kind k, or NULL. */
static imcore_host *adapter_of(im_plugin_host *ph, int k)
{
    return ph && ph->adapter[k] != UINT_MAX ? &ph->plugins[ph->adapter[k]] : NULL;
}

/* What an open_* call gave: rc, and whether it filled its out pointer. */
static int opened(const imcore_host *h, int rc, bool filled, const im_error *e, im_error *err)
{
    if (rc == IM_OK && filled)
        return IM_OK;
    return im_error_set(err, rc != IM_OK ? rc : IM_EIO, "%s: %s", h->name,
                        e->msg[0] ? e->msg : "it opened nothing");
}

/* A table the server cannot use: a bad plugin, named like one that does
 * not load (IM_EUNSUPPORTED, so that the server exits as for a bad config). */
static int refused(const imcore_host *h, int rc, const im_error *e, im_error *err)
{
    return im_error_set(err, rc, "%s: %s: %s", h->at, h->label, e->msg);
}

/* What an adapter's table lacks and the server does without: said once. */
static void log_absent(const imcore_host *h, const char *port, const char *header,
                       const char *absent)
{
    if (absent[0])
        IM_WARN("%s: %s: its %s table has no %s: the server falls back for them as "
                "imcore/%s says", h->at, h->label, port, absent, header);
}

int im_plugin_host_open_storage(im_plugin_host *ph, im_store **out, im_error *err)
{
    *out = NULL;
    imcore_host *h = adapter_of(ph, IM_ADAPTER_STORAGE);
    if (!h)
        return im_error_set(err, IM_EINVAL, "no storage adapter was loaded");
    im_error e = { 0 };
    im_store *s = NULL;
    int rc = h->desc.open_storage(h->desc.state, &s, &e);
    rc = opened(h, rc, s != NULL, &e, err);
    if (rc != IM_OK)
        return rc;
    char absent[256];
    rc = im__abi_store(s, h->api_version, out, absent, sizeof absent, &e);
    if (rc != IM_OK)
        return refused(h, rc, &e, err);
    log_absent(h, "store", "storage.h", absent);
    ph->durable_store = (*out)->ops->durable;
    return IM_OK;
}

int im_plugin_host_open_transport(im_plugin_host *ph, imcore_transport **out, im_error *err)
{
    *out = NULL;
    imcore_host *h = adapter_of(ph, IM_ADAPTER_TRANSPORT);
    if (!h)
        return im_error_set(err, IM_EINVAL, "no transport adapter was loaded");
    im_error e = { 0 };
    imcore_transport *t = NULL;
    int rc = h->desc.open_transport(h->desc.state, &t, &e);
    rc = opened(h, rc, t != NULL, &e, err);
    if (rc != IM_OK)
        return rc;
    char absent[256];
    rc = im__abi_transport(t, h->api_version, out, absent, sizeof absent, &e);
    if (rc != IM_OK)
        return refused(h, rc, &e, err);
    log_absent(h, "transport", "transport.h", absent);
    ph->bound_port = (*out)->ops->bound_port(*out);
    return IM_OK;
}

/* The tables of *routes, of the adapter h (NULL: not a plugin's), checked
 * once as im__abi_route does. */
static int check_routes(const imcore_host *h, const im_route_ports *routes, im_error *err)
{
    im_error e = { 0 };
    char absent[256];
    int rc = im__abi_route(routes, absent, sizeof absent, &e);
    if (rc != IM_OK)
        return h ? refused(h, rc, &e, err) : im_error_set(err, rc, "route port: %s", e.msg);
    if (h)
        log_absent(h, "route", "route.h", absent);
    return IM_OK;
}

/* A cluster adapter of plugin API 2 wraps one table: the transport's
 * three joined, and what it gives back cut in three again, of which the
 * server keeps presence and delivery. */
static int open_cluster_v2(im_plugin_host *ph, imcore_host *h, im_route_ports *routes,
                           im_error *err)
{
    im_router_v2 *local = NULL, *r = NULL;
    int rc = im__abi_join_v2(routes, &local, err);
    if (rc != IM_OK)
        return rc;
    ph->cluster_join = local;
    im_open_cluster_v2_fn open_v2;
    void (*any)(void) = (void (*)(void))h->desc.open_cluster;
    memcpy(&open_v2, &any, sizeof open_v2);
    im_error e = { 0 };
    rc = open_v2(h->desc.state, local, &r, &e);
    rc = opened(h, rc, r && r->ops, &e, err);
    if (rc != IM_OK)
        return rc;
    im_route_ports split;
    char absent[256];
    rc = im__abi_split_v2(r, &split, &ph->cluster_split, absent, sizeof absent, &e);
    if (rc != IM_OK)
        return refused(h, rc, &e, err);
    log_absent(h, "route", "route.h", absent);
    routes->presence = split.presence;
    routes->delivery = split.delivery;
    return IM_OK;
}

int im_plugin_host_open_cluster(im_plugin_host *ph, im_route_ports *routes, im_error *err)
{
    int rc = check_routes(adapter_of(ph, IM_ADAPTER_TRANSPORT), routes, err);
    if (rc != IM_OK)
        return rc;
    imcore_host *h = adapter_of(ph, IM_ADAPTER_CLUSTER);
    if (!h)
        return IM_OK; /* cluster: none */
    /* The port clients reach this node on, now that the transport has
     * bound it (listen.port 0 takes an ephemeral one). */
    im_plugin_config *pc = &ph->configs[ph->adapter[IM_ADAPTER_CLUSTER]];
    for (unsigned i = 0; i < pc->nsettings && ph->bound_port; i++)
        if (strcmp(pc->settings[i].key, "listen.port") == 0)
            snprintf(pc->settings[i].value, sizeof pc->settings[i].value, "%u", ph->bound_port);
    if (h->api_version < 3)
        return open_cluster_v2(ph, h, routes, err);
    im_error e = { 0 };
    im_route_ports mine = { .replies = NULL };
    rc = h->desc.open_cluster(h->desc.state, routes->presence, routes->delivery, &mine.presence,
                              &mine.delivery, &e);
    rc = opened(h, rc, mine.presence && mine.presence->ops && mine.delivery &&
                       mine.delivery->ops, &e, err);
    if (rc != IM_OK)
        return rc;
    if ((rc = check_routes(h, &mine, err)) != IM_OK)
        return rc;
    routes->presence = mine.presence;
    routes->delivery = mine.delivery;
    return IM_OK;
}

/* ---- start and stop ---- */

void im_plugin_host_router(im_plugin_host *ph, im_route_ports *routes)
{
    if (!ph)
        return;
    ph->inner = *routes;
    /* Without claims or presence hooks, plugins take no part in routing:
     * the application gets the port below, with nothing in between. */
    if (ph->nclaims || ph->wants_presence)
        *routes = (im_route_ports){ &ph->presence, &ph->delivery, &ph->replies };
}

typedef struct start_item {
    im_loop_item base;
    imcore_host *h;               /* NULL: the start-up barrier */
} start_item;

static void run_start(im_plugin_host *ph, im_loop_item *it)
{
    imcore_host *h = ((start_item *)it)->h;
    if (h) {
        in_on_start = true;
        h->desc.on_start(h->desc.state);
        in_on_start = false;
        return;
    }
    pthread_mutex_lock(&ph->start_lock);
    ph->start_waiting--;
    pthread_cond_signal(&ph->start_cond);
    pthread_mutex_unlock(&ph->start_lock);
}

static bool push_start(im_plugin_host *ph, imcore_host *h)
{
    start_item *si = calloc(1, sizeof *si);
    if (!si)
        return false;
    si->base.run = run_start;
    si->h = h;
    if (im__loop_push(ph, &si->base))
        return true;
    free(si);
    return false;
}

static void wait_start(im_plugin_host *ph)
{
    pthread_mutex_lock(&ph->start_lock);
    while (ph->start_waiting > 0)
        pthread_cond_wait(&ph->start_cond, &ph->start_lock);
    pthread_mutex_unlock(&ph->start_lock);
}

int im_plugin_host_start(im_plugin_host *ph, im_app *app, im_store *store,
                         im_group_repo *groups, im_error *err)
{
    if (!ph || ph->n == 0)
        return IM_OK;
    ph->app = app;
    ph->store = store;
    ph->durable_store = store && store->ops->durable;
    ph->groups = groups;
    atomic_store(&ph->state, LOOP_RUNNING);
    /* on_start first, in config order; then what claimed accounts missed. */
    for (unsigned i = 0; i < ph->n; i++)
        if (ph->plugins[i].desc.on_start && !push_start(ph, &ph->plugins[i]))
            return im_error_set(err, IM_ENOMEM, "out of memory");
    int rc = im__loop_start_threads(ph, err);
    if (rc != IM_OK)
        return rc;
    /* Every claim starts behind: its first catch-up reads what it missed
     * while the server was down. */
    im_start_wait sw = { .rc = IM_OK };
    for (unsigned i = 0; i < ph->nclaims; i++) {
        pthread_mutex_lock(&ph->start_lock);
        ph->start_waiting++;
        pthread_mutex_unlock(&ph->start_lock);
        rc = im__claim_catch_up(ph, &ph->claims[i], &sw, err);
        if (rc != IM_OK) {
            pthread_mutex_lock(&ph->start_lock);
            ph->start_waiting--;
            pthread_mutex_unlock(&ph->start_lock);
            wait_start(ph);
            return rc;
        }
    }
    wait_start(ph);
    if (sw.rc != IM_OK) {
        if (err)
            *err = sw.err;
        return sw.rc;
    }
    /* Clients are let in once the plugins have seen all of that. */
    pthread_mutex_lock(&ph->start_lock);
    ph->start_waiting++;
    pthread_mutex_unlock(&ph->start_lock);
    if (!push_start(ph, NULL))
        return im_error_set(err, IM_ENOMEM, "out of memory");
    wait_start(ph);
    return IM_OK;
}

void im_plugin_host_stop(im_plugin_host *ph)
{
    if (!ph)
        return;
    im__loop_stop(ph);
    atomic_store(&ph->state, LOOP_STOPPED);
}

void im_plugin_host_close_cluster(im_plugin_host *ph)
{
    imcore_host *h = adapter_of(ph, IM_ADAPTER_CLUSTER);
    if (h && h->desc.shutdown) {
        h->desc.shutdown(h->desc.state);
        h->desc.shutdown = NULL; /* not again in im_plugin_host_free */
    }
}

void im_plugin_host_free(im_plugin_host *ph)
{
    if (!ph)
        return;
    im_plugin_host_stop(ph);
    im__group_calls_end(ph); /* their done, before the plugins' shutdown */
    for (unsigned i = ph->n; i-- > 0;) {
        imcore_host *h = &ph->plugins[i];
        if (h->desc.shutdown)
            h->desc.shutdown(h->desc.state);
        h->desc.shutdown = NULL;
    }
    im__claims_free(ph);
    im__loop_destroy(ph); /* timers, before the code they belong to goes */
    for (unsigned i = ph->n; i-- > 0;) {
        imcore_host *h = &ph->plugins[i];
        if (h->dl)
            dlclose(h->dl);
        free(h->where);
    }
    while (ph->scratches) {
        scratch *s = ph->scratches;
        ph->scratches = s->next;
        free(s->buf[0]);
        free(s->buf[1]);
        free(s);
    }
    pthread_key_delete(ph->scratch_key);
    pthread_mutex_destroy(&ph->scratch_lock);
    pthread_mutex_destroy(&ph->calls_lock);
    free(ph->cluster_join);
    free(ph->cluster_split);
    free(ph->claims);
    free(ph->plugins);
    free(ph->configs);
    free(ph);
}
