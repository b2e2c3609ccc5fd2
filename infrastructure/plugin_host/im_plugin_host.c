/* infrastructure/plugin_host/im_plugin_host.c: see the header.
 *
 * A plugin reaches the server only through the table below; the server
 * reaches it through the callbacks it filled in. Loading follows the
 * contract in plugin.h: dlopen with RTLD_NOW | RTLD_LOCAL (a missing symbol
 * fails now, not at the first message; plugins cannot see each other),
 * check the one entry symbol, call it, check the version it answers. */
#include "im_plugin_host.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imcore/plugin.h"
#include "im_log.h"

struct imcore_host {
    char name[64];
    void *dl;
    imcore_plugin desc;
    const im_plugin_config *cfg;  /* a copy owned by the host */
    char (*where)[300];           /* "FILE:LINE" per setting */
};

/* Per-thread scratch for rewritten bodies, two so that one plugin's output
 * can be the next one's input. Registered, so they are freed with the host
 * (a thread's buffers outlive nothing: workers stop before the host does). */
typedef struct scratch {
    struct scratch *next;
    uint8_t *buf[2];
} scratch;

struct im_plugin_host {
    im_filter filter;             /* the port; first, so the port is the host */
    imcore_host *plugins;
    im_plugin_config *configs;
    unsigned n;
    bool filters;                 /* some plugin has on_message */
    uint32_t max_body;
    char source[256];
    pthread_mutex_t scratch_lock;
    scratch *scratches;
    pthread_key_t scratch_key;
};

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

static const imcore_host_api host_api = {
    .size = sizeof(imcore_host_api),
    .api_version = IMCORE_PLUGIN_API_VERSION,
    .log = host_log,
    .config_get = host_config_get,
    .config_where = host_config_where,
};

/* ---- the filter port ---- */

static scratch *thread_scratch(im_plugin_host *ph)
{
    scratch *s = pthread_getspecific(ph->scratch_key);
    if (s)
        return s;
    s = calloc(1, sizeof *s);
    if (!s || !(s->buf[0] = malloc(ph->max_body)) || !(s->buf[1] = malloc(ph->max_body))) {
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
        imcore_rewrite out = { .body = s->buf[which], .capacity = ph->max_body };
        imcore_verdict v = h->desc.on_message(h->desc.state, &im, &out);
        if (v == IMCORE_DROP) {
            out.reason[sizeof out.reason - 1] = '\0';
            return im_error_set(err, IM_EREFUSED, "%s",
                                out.reason[0] ? out.reason : "refused by the server");
        }
        if (v == IMCORE_REWRITE) {
            if (out.body_len < 1 || out.body_len > ph->max_body) {
                IM_ERROR("plugin %s: rewrote a message to %zu bytes (1..%u allowed)", h->name,
                         out.body_len, ph->max_body);
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

static int load_one(im_plugin_host *ph, const im_config *cfg, unsigned i, im_error *err)
{
    const im_plugin_config *pc = &ph->configs[i];
    imcore_host *h = &ph->plugins[i];
    snprintf(h->name, sizeof h->name, "%s", pc->name);
    h->cfg = pc;
    h->where = calloc(pc->nsettings ? pc->nsettings : 1, sizeof *h->where);
    if (!h->where)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    for (unsigned k = 0; k < pc->nsettings; k++)
        snprintf(h->where[k], sizeof h->where[k], "%s:%u", ph->source, pc->settings[k].line);

    char path[600];
    if (pc->path[0])
        snprintf(path, sizeof path, "%s", pc->path);
    else
        snprintf(path, sizeof path, "%s/%s.so", cfg->plugin_dir, pc->name);
#define FAIL(...)                                                                           \
    do {                                                                                    \
        char what_[1024];                                                                   \
        snprintf(what_, sizeof what_, __VA_ARGS__);                                         \
        return im_error_set(err, IM_EINVAL, "%s:%u: plugin %s: %s", ph->source, pc->line,   \
                            pc->name, what_);                                               \
    } while (0)
    dlerror();
    h->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h->dl)
        FAIL("cannot load it: %s", dlerror());
    imcore_plugin_init_fn init;
    *(void **)&init = dlsym(h->dl, IMCORE_PLUGIN_INIT_SYMBOL);
    if (!init)
        FAIL("%s has no %s: not an imcore plugin", path, IMCORE_PLUGIN_INIT_SYMBOL);
    memset(&h->desc, 0, sizeof h->desc);
    h->desc.size = sizeof h->desc;
    int rc = init(&host_api, h, &h->desc);
    h->desc.error[sizeof h->desc.error - 1] = '\0';
    if (rc != 0) {
        h->desc.shutdown = NULL; /* a refused init has nothing to shut down */
        FAIL("init failed: %s", h->desc.error[0] ? h->desc.error : "(no reason given)");
    }
    if (h->desc.api_version != IMCORE_PLUGIN_API_VERSION) {
        unsigned got = h->desc.api_version;
        if (h->desc.shutdown)
            h->desc.shutdown(h->desc.state);
        h->desc.shutdown = NULL;
        FAIL("built for plugin API version %u, this server speaks %u", got,
             IMCORE_PLUGIN_API_VERSION);
    }
#undef FAIL
    if (h->desc.on_message)
        ph->filters = true;
    IM_INFO("plugin %s %s loaded from %s", pc->name, h->desc.version ? h->desc.version : "",
            path);
    return IM_OK;
}

int im_plugin_host_load(const im_config *cfg, uint32_t max_body_bytes, im_plugin_host **out,
                        im_error *err)
{
    *out = NULL;
    im_plugin_host *ph = calloc(1, sizeof *ph);
    if (!ph)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    ph->filter.ops = &plugin_filter_ops;
    ph->max_body = max_body_bytes;
    snprintf(ph->source, sizeof ph->source, "%s", cfg->source[0] ? cfg->source : "config");
    pthread_mutex_init(&ph->scratch_lock, NULL);
    if (pthread_key_create(&ph->scratch_key, NULL) != 0) {
        free(ph);
        return im_error_set(err, IM_ENOMEM, "out of thread keys");
    }
    unsigned n = cfg->nplugins;
    ph->plugins = calloc(n ? n : 1, sizeof *ph->plugins);
    ph->configs = calloc(n ? n : 1, sizeof *ph->configs);
    if (!ph->plugins || !ph->configs) {
        im_plugin_host_free(ph);
        return im_error_set(err, IM_ENOMEM, "out of memory");
    }
    memcpy(ph->configs, cfg->plugins, n * sizeof *ph->configs);
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
    return h && h->filters ? &h->filter : NULL;
}

void im_plugin_host_free(im_plugin_host *ph)
{
    if (!ph)
        return;
    for (unsigned i = ph->n; i-- > 0;) {
        imcore_host *h = &ph->plugins[i];
        if (h->desc.shutdown)
            h->desc.shutdown(h->desc.state);
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
    free(ph->plugins);
    free(ph->configs);
    free(ph);
}
