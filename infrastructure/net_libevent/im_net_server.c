/* infrastructure/net_libevent/im_net_server.c: the listening socket, the
 * acceptor loop, the worker threads and an orderly shutdown.
 *
 * The acceptor only accepts: it counts the connection against
 * max_connections and passes the socket to the next worker's queue. All
 * reading, writing and session state happen on the workers. */
#include "im_net_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/listener.h>
#include <event2/thread.h>

#include "im_codec.h"
#include "im_log.h"

/* How long shutdown waits for the answers to requests already read (the
 * store finishing what it was given) before it closes sessions anyway. */
#define IM_SHUTDOWN_DRAIN_S 10

static int bind_listener(im_listener *lis, im_error *err)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, lis->host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(lis->port);
        sslen = sizeof *sin;
    } else if (inet_pton(AF_INET6, lis->host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(lis->port);
        sslen = sizeof *sin6;
    } else {
        return im_error_set(err, IM_EINVAL, "%slisten.host '%s' is not an IP address",
                            lis->where, lis->host);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return im_error_set(err, IM_EIO, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, 4096) != 0) {
        int e = errno;
        close(fd);
        return im_error_set(err, IM_EIO, "%scannot listen on %s:%u: %s", lis->where, lis->host,
                            lis->port, strerror(e));
    }
    socklen_t len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    lis->bound_port = ntohs(ss.ss_family == AF_INET ? sin->sin_port : sin6->sin6_port);
    lis->fd = fd;
    return IM_OK;
}

/* The listeners of cfg (one plain TCP listener on listen_host:listen_port
 * when it lists none), bound, and the TLS ones' certificates loaded. */
static int make_listeners(im_net_server *srv, const im_net_config *cfg, im_error *err)
{
    im_net_listener_config single = {
        .transport = "tcp", .host = cfg->listen_host, .port = cfg->listen_port,
    };
    const im_net_listener_config *lcs = cfg->nlisteners ? cfg->listeners : &single;
    unsigned n = cfg->nlisteners ? cfg->nlisteners : 1;
    if (n > IM_NET_MAX_LISTENERS)
        return im_error_set(err, IM_EINVAL, "at most %u listeners", IM_NET_MAX_LISTENERS);
    srv->listeners = calloc(n, sizeof *srv->listeners);
    if (!srv->listeners)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    for (unsigned i = 0; i < n; i++, srv->nlisteners++) {
        const im_net_listener_config *lc = &lcs[i];
        im_listener *lis = &srv->listeners[i];
        lis->srv = srv;
        lis->fd = -1;
        atomic_init(&lis->connections, 0);
        snprintf(lis->kind, sizeof lis->kind, "%s", lc->transport ? lc->transport : "tcp");
        snprintf(lis->host, sizeof lis->host, "%s", lc->host ? lc->host : "127.0.0.1");
        snprintf(lis->where, sizeof lis->where, "%s%s", lc->where ? lc->where : "",
                 lc->where ? ": " : "");
        lis->port = lc->port;
        lis->max_connections = lc->max_connections;
        int rc;
        if (strcmp(lis->kind, "tls") == 0) {
            if ((rc = im__tls_server_new(lc, &lis->tls, err)) != IM_OK) {
                srv->nlisteners++;
                return rc;
            }
        } else if (strcmp(lis->kind, "tcp") != 0) {
            srv->nlisteners++;
            return im_error_set(err, IM_EINVAL, "%slisteners of kind '%s' are not served by "
                                "this transport (tcp, tls)", lis->where, lis->kind);
        }
        if ((rc = bind_listener(lis, err)) != IM_OK) {
            srv->nlisteners++;
            return rc;
        }
    }
    return IM_OK;
}

int im_net_server_new(const im_net_config *cfg, im_net_server **out, im_error *err)
{
    *out = NULL;
    if (cfg->workers == 0 || cfg->max_frame_bytes == 0 || cfg->idle_timeout_s == 0)
        return im_error_set(err, IM_EINVAL, "workers, max_frame_bytes and idle_timeout_s must be > 0");
    /* Cross-thread event_active needs libevent's locking; switch it on before
     * any event_base exists. */
    static int threads_on = -1;
    if (threads_on < 0)
        threads_on = evthread_use_pthreads();
    if (threads_on != 0)
        return im_error_set(err, IM_EIO, "libevent has no pthreads support");

    im_net_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    srv->cfg = *cfg;
    snprintf(srv->node_id, sizeof srv->node_id, "%s", cfg->node_id ? cfg->node_id : "");
    srv->cfg.listen_host = NULL; /* borrowed for new only: the listeners keep copies */
    srv->cfg.listeners = NULL;
    srv->cfg.node_id = srv->node_id;
    srv->reserve_fd = -1;
    atomic_init(&srv->connections, 0);
    atomic_init(&srv->next_session_id, 1);
    pthread_mutex_init(&srv->drain_lock, NULL);
    pthread_cond_init(&srv->drain_cond, NULL);
    int rc;
    if ((rc = im__router_init(srv)) != IM_OK || (rc = im__limiter_init(srv)) != IM_OK) {
        im_error_set(err, rc, "out of memory");
        goto fail;
    }
    srv->workers = calloc(cfg->workers, sizeof *srv->workers);
    if (!srv->workers) {
        rc = im_error_set(err, IM_ENOMEM, "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < cfg->workers; i++, srv->nworkers++) {
        if ((rc = im__worker_init(&srv->workers[i], srv, i)) != IM_OK) {
            srv->nworkers++; /* so that free destroys the half-made one */
            im_error_set(err, rc, "cannot set up worker %u", i);
            goto fail;
        }
    }
    if ((rc = make_listeners(srv, cfg, err)) != IM_OK)
        goto fail;
    srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    *out = srv;
    return IM_OK;
fail:
    im_net_server_free(srv);
    return rc;
}

im_presence *im_net_server_presence(im_net_server *srv)
{
    return &srv->presence;
}

im_delivery *im_net_server_delivery(im_net_server *srv)
{
    return &srv->delivery;
}

im_replies *im_net_server_replies(im_net_server *srv)
{
    return &srv->replies;
}

uint16_t im_net_server_bound_port(const im_net_server *srv)
{
    return srv->nlisteners ? srv->listeners[0].bound_port : 0;
}

uint16_t im_net_server_listener_port(const im_net_server *srv, unsigned index)
{
    return index < srv->nlisteners ? srv->listeners[index].bound_port : 0;
}

int im_net_server_reload(im_net_server *srv, im_error *err)
{
    int result = IM_OK;
    for (unsigned i = 0; i < srv->nlisteners; i++) {
        im_listener *lis = &srv->listeners[i];
        if (!lis->tls)
            continue;
        im_error e = { 0 };
        if (im__tls_server_reload(lis->tls, &e) != IM_OK) {
            IM_ERROR("tls listener %s:%u: reload failed, keeping the certificate it had: %s",
                     lis->host, lis->bound_port, e.msg);
            if (result == IM_OK)
                result = im_error_set(err, e.code, "%s", e.msg);
        } else {
            IM_INFO("tls listener %s:%u: certificate reloaded for new connections", lis->host,
                    lis->bound_port);
        }
    }
    return result;
}

static void format_peer(const struct sockaddr *sa, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
        port = ntohs(s->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
        port = ntohs(s->sin6_port);
    }
    snprintf(buf, size, "%s:%u", host, port);
}

/* A connection over max_connections hears why before it is closed; the
 * frame is tiny, so one non-blocking send either takes it or drops it. */
static void refuse_busy(int fd, const char *why)
{
    Imcore__Error e = IMCORE__ERROR__INIT;
    e.code = IMCORE__ERROR_CODE__BUSY;
    e.message = im_pb_str(why);
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.type = IMCORE__TYPE__ERROR;
    env.body_case = IMCORE__ENVELOPE__BODY_ERROR;
    env.error = &e;
    uint8_t buf[128];
    if (im_frame_size(&env) <= sizeof buf) {
        size_t n = im_frame_pack(&env, buf);
        (void)!send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    close(fd);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)l, (void)salen;
    im_listener *lis = arg;
    im_net_server *srv = lis->srv;
    char peer[64];
    format_peer(sa, peer, sizeof peer);
    /* A TLS peer cannot read a plain frame: it is just closed. */
    bool plain = lis->tls == NULL;
    if (atomic_fetch_add(&srv->connections, 1) >= srv->cfg.max_connections) {
        atomic_fetch_sub(&srv->connections, 1);
        IM_WARN("peer=%s refused: max_connections (%u) reached", peer, srv->cfg.max_connections);
        plain ? refuse_busy(fd, "the server is at max_connections") : (void)close(fd);
        return;
    }
    if (atomic_fetch_add(&lis->connections, 1) >= lis->max_connections &&
        lis->max_connections != 0) {
        atomic_fetch_sub(&lis->connections, 1);
        atomic_fetch_sub(&srv->connections, 1);
        IM_WARN("peer=%s refused: the %s listener's max_connections (%u) reached", peer,
                lis->kind, lis->max_connections);
        plain ? refuse_busy(fd, "the listener is at max_connections") : (void)close(fd);
        return;
    }
    /* Counted until it logs in (or closes): slots for clients without
     * credentials are bounded, in all and per address. */
    if (!im__limiter_open_unauthenticated(srv, peer)) {
        atomic_fetch_sub(&lis->connections, 1);
        atomic_fetch_sub(&srv->connections, 1);
        IM_WARN("peer=%s refused: too many connections not logged in", peer);
        plain ? refuse_busy(fd, "too many connections not logged in: log in on the ones you have")
              : (void)close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    im_item *it = im__item_new(ITEM_ACCEPT, 0);
    struct ssl_st *ssl = NULL;
    if (!it || (!plain && !(ssl = im__tls_accept(lis->tls, fd)))) {
        IM_ERROR("peer=%s out of memory accepting a connection", peer);
        im__item_free(it);
        atomic_fetch_sub(&lis->connections, 1);
        atomic_fetch_sub(&srv->connections, 1);
        im__limiter_close_unauthenticated(srv, peer);
        close(fd);
        return;
    }
    it->fd = fd;
    it->lis = lis;
    it->ssl = ssl;
    snprintf(it->peer, sizeof it->peer, "%s", peer);
    im_worker *w = &srv->workers[srv->next_worker++ % srv->nworkers];
    im__worker_push(w, it);
}

/* Out of file descriptors: the pending connection would make the listener
 * fire again at once, forever. Give up the spare fd, take the connection and
 * close it, so the peer hears a close instead of hanging. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    im_net_server *srv = ((im_listener *)arg)->srv;
    int e = EVUTIL_SOCKET_ERROR();
    IM_WARN("accept failed: %s", strerror(e));
    if ((e == EMFILE || e == ENFILE) && srv->reserve_fd >= 0) {
        close(srv->reserve_fd);
        int fd = accept(evconnlistener_get_fd(l), NULL, NULL);
        if (fd >= 0)
            close(fd);
        srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    im_net_server *srv = arg;
    if (sig == SIGHUP) {
        IM_INFO("SIGHUP received: reloading TLS certificates");
        (void)im_net_server_reload(srv, NULL);
        return;
    }
    IM_INFO("%s received: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    event_base_loopbreak(srv->base);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    im_net_server *srv = arg;
    event_base_loopbreak(srv->base);
}

void im_net_server_stop(im_net_server *srv)
{
    if (srv->stop_event)
        event_active(srv->stop_event, 0, 0);
}

/* Each worker runs an item of kind after what is already queued for it;
 * one that cannot be told (out of memory) just leaves its loop. */
static void push_to_workers(im_net_server *srv, unsigned n, item_kind kind)
{
    for (unsigned i = 0; i < n; i++) {
        im_item *it = im__item_new(kind, 0);
        if (!it) {
            event_base_loopbreak(srv->workers[i].base);
            continue;
        }
        im__worker_push(&srv->workers[i], it);
    }
}

static void wait_drained(im_net_server *srv, unsigned n)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += IM_SHUTDOWN_DRAIN_S;
    pthread_mutex_lock(&srv->drain_lock);
    int rc = 0;
    while (srv->drained < n && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&srv->drain_cond, &srv->drain_lock, &deadline);
    unsigned drained = srv->drained;
    pthread_mutex_unlock(&srv->drain_lock);
    if (drained < n)
        IM_WARN("%u of %u workers still owed answers after %d s: closing their sessions anyway",
                n - drained, n, IM_SHUTDOWN_DRAIN_S);
}

int im_net_server_run(im_net_server *srv, const imcore_core_api *core, im_app *app,
                      im_error *err)
{
    srv->core = core;
    srv->app = app;
    srv->base = event_base_new();
    if (!srv->base)
        return im_error_set(err, IM_ENOMEM, "cannot make the acceptor's event base");
    srv->sigint = evsignal_new(srv->base, SIGINT, on_signal, srv);
    srv->sigterm = evsignal_new(srv->base, SIGTERM, on_signal, srv);
    /* SIGHUP reloads certificates on this thread, the one that makes the
     * SSLs (im_net_tls.c). */
    srv->sighup = evsignal_new(srv->base, SIGHUP, on_signal, srv);
    srv->stop_event = event_new(srv->base, -1, 0, on_stop, srv);
    if (!srv->sigint || !srv->sigterm || !srv->sighup || !srv->stop_event)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    evsignal_add(srv->sigint, NULL);
    evsignal_add(srv->sigterm, NULL);
    evsignal_add(srv->sighup, NULL);

    unsigned started = 0;
    for (; started < srv->nworkers; started++)
        if (im__worker_start(&srv->workers[started]) != IM_OK)
            break;
    int rc = IM_OK;
    if (started < srv->nworkers) {
        rc = im_error_set(err, IM_EIO, "cannot start worker thread %u", started);
    } else {
        /* Backlog 0: the socket already listens with 4096; -1 would make
         * libevent call listen() again with 128, and a login storm would
         * overflow the accept queue (SYN retransmits, a p99 of one second). */
        for (unsigned i = 0; i < srv->nlisteners && rc == IM_OK; i++) {
            im_listener *lis = &srv->listeners[i];
            lis->evl = evconnlistener_new(srv->base, on_accept, lis, LEV_OPT_CLOSE_ON_FREE, 0,
                                          lis->fd);
            if (!lis->evl) {
                rc = im_error_set(err, IM_EIO, "cannot accept on %s:%u", lis->host,
                                  lis->bound_port);
                break;
            }
            lis->fd = -1; /* the listener owns it now */
            evconnlistener_set_error_cb(lis->evl, on_accept_error);
            IM_INFO("listening on %s %s:%u", lis->kind, lis->host, lis->bound_port);
        }
        if (rc == IM_OK) {
            IM_INFO("serving %u listener%s with %u workers", srv->nlisteners,
                    srv->nlisteners == 1 ? "" : "s", srv->nworkers);
            event_base_dispatch(srv->base);
        }
        for (unsigned i = 0; i < srv->nlisteners; i++) { /* stop accepting first */
            if (srv->listeners[i].evl)
                evconnlistener_free(srv->listeners[i].evl);
            srv->listeners[i].evl = NULL;
        }
    }
    /* Shutdown in two steps. First each worker takes what its clients had
     * sent and answers all of it: the messages stored, acked, and handed
     * to receivers online here. Only once every worker has (or the drain
     * deadline has passed) is any session closed, so a delivery queued for
     * a session on another worker still reaches it: it was queued before
     * the answer that let its sender's worker report. */
    push_to_workers(srv, started, ITEM_DRAIN);
    wait_drained(srv, started);
    push_to_workers(srv, started, ITEM_SHUTDOWN);
    for (unsigned i = 0; i < started; i++)
        pthread_join(srv->workers[i].thread, NULL);
    if (rc == IM_OK)
        IM_INFO("all sessions closed");
    return rc;
}

void im_net_server_free(im_net_server *srv)
{
    if (!srv)
        return;
    for (unsigned i = 0; i < srv->nlisteners; i++) {
        im_listener *lis = &srv->listeners[i];
        if (lis->evl)
            evconnlistener_free(lis->evl);
        if (lis->fd >= 0)
            close(lis->fd);
        im__tls_server_free(lis->tls);
    }
    free(srv->listeners);
    for (unsigned i = 0; i < srv->nworkers; i++) {
        im_worker *w = &srv->workers[i];
        /* Connections left after the loop ended (none after a clean run). */
        for (uint32_t s = 0; s < w->nslots; s++) {
            im_conn *c = w->slots[s];
            if (c)
                im__conn_destroy(c);
        }
        im__worker_destroy(w);
    }
    free(srv->workers);
    if (srv->sigint)
        event_free(srv->sigint);
    if (srv->sigterm)
        event_free(srv->sigterm);
    if (srv->sighup)
        event_free(srv->sighup);
    if (srv->stop_event)
        event_free(srv->stop_event);
    if (srv->base)
        event_base_free(srv->base);
    if (srv->reserve_fd >= 0)
        close(srv->reserve_fd);
    im__router_destroy(srv);
    im__limiter_destroy(srv);
    pthread_mutex_destroy(&srv->drain_lock);
    pthread_cond_destroy(&srv->drain_cond);
    free(srv);
}
