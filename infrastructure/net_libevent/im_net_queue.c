/* infrastructure/net_libevent/im_net_queue.c: a worker's inbox.
 *
 * Anything that must happen on a worker (a new connection, a message for one
 * of its sessions, a kick, shutdown) arrives as an item in its FIFO queue.
 * The pusher wakes the worker only when the queue goes from empty to
 * non-empty, so a burst costs one wake-up; the worker then takes the whole
 * queue in one swap and runs it without holding the lock. */
#include "im_net_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "im_log.h"

static _Thread_local im_worker *current_worker;

im_worker *im__current_worker(void)
{
    return current_worker;
}

uint64_t im__monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

im_frame *im__frame_new(size_t len)
{
    im_frame *f = malloc(sizeof *f + len);
    if (!f)
        return NULL;
    atomic_init(&f->refs, 1);
    f->len = len;
    return f;
}

void im__frame_ref(im_frame *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

void im__frame_unref(im_frame *f)
{
    if (f && atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        free(f);
}

im_item *im__item_new(item_kind kind, size_t nids)
{
    im_item *it = calloc(1, sizeof *it + nids * sizeof it->ids[0]);
    if (it) {
        it->kind = kind;
        it->fd = -1;
    }
    return it;
}

void im__item_free(im_item *it)
{
    if (!it)
        return;
    if (it->kind == ITEM_ACCEPT && it->ssl)
        im__tls_free(it->ssl, false);
    if (it->kind == ITEM_ACCEPT && it->fd >= 0)
        close(it->fd);
    if (it->kind == ITEM_CALL && it->call) /* never ran: let it free its argument */
        it->call(it->call_arg, NULL);
    im__frame_unref(it->frame);
    free(it);
}

void im__worker_push(im_worker *w, im_item *item)
{
    item->next = NULL;
    pthread_mutex_lock(&w->qlock);
    if (w->qtail)
        w->qtail->next = item;
    else
        w->qhead = item;
    w->qtail = item;
    bool wake = !w->qsignalled;
    w->qsignalled = true;
    pthread_mutex_unlock(&w->qlock);
    if (wake)
        event_active(w->wakeup, EV_READ, 0);
}

bool im__worker_queue_empty(im_worker *w)
{
    pthread_mutex_lock(&w->qlock);
    bool empty = w->qhead == NULL;
    pthread_mutex_unlock(&w->qlock);
    return empty;
}

static void run_item(im_worker *w, im_item *it)
{
    switch (it->kind) {
    case ITEM_ACCEPT:
        if (w->shutting_down)
            break; /* the item's free closes the fd */
        im__conn_accept(w, it->fd, it->peer, it->lis, it->ssl);
        it->fd = -1; /* the connection owns both now */
        it->ssl = NULL;
        break;
    case ITEM_DELIVER:
        for (size_t i = 0; i < it->n; i++) {
            im_conn *c = im__conn_find(w, it->ids[i]);
            if (c) /* gone meanwhile: nothing to deliver to */
                im__conn_send(c, it->frame->data, it->frame->len);
        }
        break;
    case ITEM_ANSWER: {
        im_conn *c = im__conn_find(w, it->ids[0]);
        if (c)
            im__conn_answer_frame(c, it->frame->data, it->frame->len);
        break;
    }
    case ITEM_DRAIN:
        im__worker_drain(w);
        break;
    case ITEM_KICK: {
        im_conn *c = im__conn_find(w, it->ids[0]);
        if (c)
            im__conn_close(c, it->code, it->why);
        break;
    }
    case ITEM_SHUTDOWN:
        w->shutting_down = true;
        im__worker_close_all(w);
        break;
    case ITEM_CALL: {
        im_conn *c = im__conn_find(w, it->ids[0]);
        it->call(it->call_arg, c ? &c->session : NULL);
        it->call = NULL;
        break;
    }
    }
}

static void on_wakeup(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    im_worker *w = arg;
    pthread_mutex_lock(&w->qlock);
    im_item *it = w->qhead;
    w->qhead = w->qtail = NULL;
    w->qsignalled = false;
    pthread_mutex_unlock(&w->qlock);
    while (it) {
        im_item *next = it->next;
        run_item(w, it);
        im__item_free(it);
        it = next;
    }
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    im__conn_sweep_idle(arg);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    im__conn_reap(arg);
}

int im__worker_init(im_worker *w, struct im_net_server *srv, unsigned index)
{
    memset(w, 0, sizeof *w);
    w->srv = srv;
    w->index = index;
    pthread_mutex_init(&w->qlock, NULL);
    struct event_config *ec = event_config_new();
    if (!ec)
        return IM_ENOMEM;
    /* One thread per base: no locking inside libevent for the loop itself;
     * cross-thread wake-ups go through event_active, which needs the
     * pthreads support switched on in main. */
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (!w->base)
        return IM_ENOMEM;
    /* Room for any Envelope of a typical frame; bigger ones spill to malloc. */
    if (im_decode_arena_init(&w->arena, 2 * 65536) != IM_OK)
        return IM_ENOMEM;
    w->wakeup = event_new(w->base, -1, 0, on_wakeup, w);
    w->sweep = event_new(w->base, -1, EV_PERSIST, on_sweep, w);
    w->reap = event_new(w->base, -1, 0, on_reap, w);
    if (!w->wakeup || !w->sweep || !w->reap)
        return IM_ENOMEM;
    /* Idle sessions are found by a sweep, not one timer each: a timer per
     * connection costs memory and churn at every frame received. */
    unsigned idle_ms = srv->cfg.idle_timeout_s * 1000u;
    unsigned period_ms = idle_ms / 4 < 1000 ? (idle_ms / 4 ? idle_ms / 4 : 1) : 1000;
    struct timeval tv = { .tv_sec = period_ms / 1000, .tv_usec = (period_ms % 1000) * 1000 };
    event_add(w->sweep, &tv);
    return IM_OK;
}

static void *worker_main(void *arg)
{
    im_worker *w = arg;
    char name[32];
    snprintf(name, sizeof name, "worker-%u", w->index);
    im_log_set_thread_name(name);       /* this transport's own log lines */
    w->srv->core->log_thread_name(name); /* the application's, on this thread */
    current_worker = w;
    /* One iteration at a time, so that the output of everything that ran
     * in it is written in one go before the loop waits again. */
    while (!event_base_got_exit(w->base) && !event_base_got_break(w->base)) {
        if (event_base_loop(w->base, EVLOOP_ONCE) < 0)
            break;
        im__worker_flush(w);
        im__worker_check_drained(w);
    }
    current_worker = NULL;
    return NULL;
}

int im__worker_start(im_worker *w)
{
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? IM_OK : IM_EIO;
}

void im__worker_destroy(im_worker *w)
{
    im_item *it = w->qhead;
    while (it) {
        im_item *next = it->next;
        im__item_free(it);
        it = next;
    }
    w->qhead = w->qtail = NULL;
    if (w->wakeup)
        event_free(w->wakeup);
    if (w->sweep)
        event_free(w->sweep);
    if (w->reap)
        event_free(w->reap);
    if (w->base)
        event_base_free(w->base);
    free(w->slots);
    free(w->free_slots);
    im_decode_arena_fini(&w->arena);
    pthread_mutex_destroy(&w->qlock);
}
