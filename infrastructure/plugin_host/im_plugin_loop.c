/* infrastructure/plugin_host/im_plugin_loop.c: the plugin loop (one thread
 * with a libevent base, a FIFO of work and the plugins' timers) and the
 * blocking thread behind run_blocking.
 *
 * One loop for every plugin is the point: a plugin's callbacks never run at
 * once, so its state needs no lock, and messages for a claimed account are
 * handled in the order the store gave them.
 *
 * Nothing queued is dropped at shutdown: an item the loop never ran is
 * cancelled (im_loop_item), and a job run_blocking accepted always runs
 * its work and then its done, once. */
#include "im_plugin_internal.h"

#include <stdlib.h>
#include <string.h>

#include <event2/thread.h>

#include "im_log.h"
#include "im_strmap.h"

/* ---- the queue ---- */

static void on_wakeup(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    im_plugin_host *ph = arg;
    pthread_mutex_lock(&ph->qlock);
    im_loop_item *it = ph->qhead;
    ph->qhead = ph->qtail = NULL;
    pthread_mutex_unlock(&ph->qlock);
    /* What is pushed while these run waits for the next wake-up, which the
     * push has asked for: one batch at a time keeps timers from starving. */
    while (it) {
        im_loop_item *next = it->next;
        it->run(ph, it);
        free(it);
        it = next;
    }
}

bool im__loop_push(im_plugin_host *ph, im_loop_item *it)
{
    it->next = NULL;
    pthread_mutex_lock(&ph->qlock);
    bool taken = ph->accepting;
    if (taken) {
        bool was_empty = ph->qhead == NULL;
        if (ph->qtail)
            ph->qtail->next = it;
        else
            ph->qhead = it;
        ph->qtail = it;
        if (was_empty)
            event_active(ph->wakeup, EV_READ, 0);
    }
    pthread_mutex_unlock(&ph->qlock);
    return taken;
}

/* The host whose loop this thread runs. Set by the loop thread itself:
 * comparing with the pthread_t that pthread_create stores would race with
 * the loop's first callbacks, which can run before that store. */
static _Thread_local const im_plugin_host *loop_host;

bool im__on_loop(const im_plugin_host *ph)
{
    return loop_host == ph;
}

static void *loop_main(void *arg)
{
    im_plugin_host *ph = arg;
    loop_host = ph;
    im_log_set_thread_name("plugins");
    event_base_loop(ph->base, EVLOOP_NO_EXIT_ON_EMPTY);
    loop_host = NULL;
    return NULL;
}

/* ---- timers ---- */

/* Timers belong to the loop: touched on it, or on the main thread while no
 * loop thread runs (init, shutdown). */
static bool may_touch_timers(const im_plugin_host *ph)
{
    return im__on_loop(ph) || atomic_load(&ph->state) != LOOP_RUNNING;
}

static void timer_free(im_timer *t)
{
    if (t->ev)
        event_free(t->ev);
    free(t);
}

static void timer_unlink(im_plugin_host *ph, im_timer *t)
{
    for (im_timer **p = &ph->timers; *p; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            return;
        }
}

static struct timeval ms_to_tv(uint64_t ms)
{
    struct timeval tv = { .tv_sec = (time_t)(ms / 1000),
                          .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
    return tv;
}

/* Timers are one-shot events, re-added after each firing of a repeating
 * one: the first delay and the period may differ, and a callback that
 * cancels its own timer needs no special case in libevent. */
static void on_timer_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    im_timer *t = arg;
    imcore_host *h = t->owner;
    im_plugin_host *ph = h->ph;
    ph->firing = t;
    if (h->desc.on_timer)
        h->desc.on_timer(h->desc.state, t->id, t->arg);
    ph->firing = NULL;
    if (!t->cancelled && t->every_ms) {
        struct timeval tv = ms_to_tv(t->every_ms);
        if (event_add(t->ev, &tv) == 0)
            return;
        IM_ERROR("plugin %s: cannot re-arm timer %llu", h->name, (unsigned long long)t->id);
    }
    timer_unlink(ph, t);
    timer_free(t);
}

uint64_t im__timer_start(imcore_host *h, uint64_t after_ms, uint64_t every_ms, void *arg)
{
    im_plugin_host *ph = h->ph;
    if (atomic_load(&ph->state) == LOOP_STOPPED)
        return 0;
    if (!may_touch_timers(ph)) {
        IM_ERROR("plugin %s: timer_start off the plugin loop: refused", h->name);
        return 0;
    }
    im_timer *t = calloc(1, sizeof *t);
    if (!t)
        return 0;
    t->owner = h;
    t->id = ++ph->next_timer_id;
    t->every_ms = every_ms;
    t->arg = arg;
    struct timeval tv = ms_to_tv(after_ms);
    if (!(t->ev = event_new(ph->base, -1, 0, on_timer_event, t)) || event_add(t->ev, &tv) != 0) {
        timer_free(t);
        return 0;
    }
    t->next = ph->timers;
    ph->timers = t;
    return t->id;
}

void im__timer_cancel(imcore_host *h, uint64_t id)
{
    im_plugin_host *ph = h->ph;
    if (!may_touch_timers(ph)) {
        IM_ERROR("plugin %s: timer_cancel off the plugin loop: ignored", h->name);
        return;
    }
    for (im_timer *t = ph->timers; t; t = t->next) {
        if (t->id != id || t->owner != h)
            continue;
        if (t == ph->firing) {
            t->cancelled = true; /* freed when its callback returns */
            event_del(t->ev);
        } else {
            timer_unlink(ph, t);
            timer_free(t);
        }
        return;
    }
}

/* ---- the blocking thread ---- */

/* The job's completion: on the loop, or, if the loop stopped first, as its
 * cancel on the stopping thread. Either way once, and after the work. */
static void run_job_done(im_plugin_host *ph, im_loop_item *it)
{
    (void)ph;
    im_job *j = (im_job *)it;
    j->done(j->owner->desc.state, j->arg);
}

/* A finished job: its done goes to the loop (the job is the loop item). */
static void job_finished(im_plugin_host *ph, im_job *j)
{
    if (!j->done) {
        free(j);
        return;
    }
    j->base.run = run_job_done;
    j->base.cancel = run_job_done;
    if (!im__loop_push(ph, &j->base)) {
        /* Not while a blocking thread runs: the loop takes work until that
         * thread is joined. Only for jobs run at the stop, with no loop. */
        run_job_done(ph, &j->base);
        free(j);
    }
}

static void *blocking_main(void *arg)
{
    im_plugin_host *ph = arg;
    im_log_set_thread_name("plugins-blocking");
    pthread_mutex_lock(&ph->jlock);
    for (;;) {
        while (!ph->jhead && !ph->jstopping)
            pthread_cond_wait(&ph->jwake, &ph->jlock);
        im_job *j = ph->jhead;
        if (!j)
            break; /* stopping, and every job has run */
        ph->jhead = (im_job *)j->base.next;
        if (!ph->jhead)
            ph->jtail = NULL;
        pthread_mutex_unlock(&ph->jlock);
        j->work(j->arg);
        job_finished(ph, j);
        pthread_mutex_lock(&ph->jlock);
    }
    pthread_mutex_unlock(&ph->jlock);
    return NULL;
}

int im__run_blocking(imcore_host *h, void (*work)(void *), void (*done)(void *, void *),
                     void *arg)
{
    im_plugin_host *ph = h->ph;
    if (!work)
        return IM_EINVAL;
    im_job *j = calloc(1, sizeof *j);
    if (!j)
        return IM_ENOMEM;
    *j = (im_job){ .owner = h, .work = work, .done = done, .arg = arg };
    pthread_mutex_lock(&ph->jlock);
    bool taken = !ph->jstopping;
    if (taken) {
        if (ph->jtail)
            ph->jtail->base.next = &j->base;
        else
            ph->jhead = j;
        ph->jtail = j;
        pthread_cond_signal(&ph->jwake);
    }
    pthread_mutex_unlock(&ph->jlock);
    if (!taken) {
        free(j);
        return IM_ESHUTDOWN;
    }
    return IM_OK;
}

/* ---- life ---- */

int im__loop_init(im_plugin_host *ph, im_error *err)
{
    evthread_use_pthreads();
    pthread_mutex_init(&ph->qlock, NULL);
    pthread_mutex_init(&ph->presence_lock, NULL);
    pthread_mutex_init(&ph->jlock, NULL);
    pthread_cond_init(&ph->jwake, NULL);
    pthread_mutex_init(&ph->start_lock, NULL);
    pthread_cond_init(&ph->start_cond, NULL);
    ph->base = event_base_new();
    if (!ph->base || !(ph->wakeup = event_new(ph->base, -1, 0, on_wakeup, ph)))
        return im_error_set(err, IM_ENOMEM, "cannot create the plugin loop");
    ph->accepting = true; /* items queue up until the loop runs */
    return IM_OK;
}

int im__loop_start_threads(im_plugin_host *ph, im_error *err)
{
    if (pthread_create(&ph->thread, NULL, loop_main, ph) != 0)
        return im_error_set(err, IM_ENOMEM, "cannot start the plugin loop thread");
    ph->thread_started = true;
    /* Work queued before the thread existed needs its wake-up now. */
    pthread_mutex_lock(&ph->qlock);
    if (ph->qhead)
        event_active(ph->wakeup, EV_READ, 0);
    pthread_mutex_unlock(&ph->qlock);
    if (pthread_create(&ph->bthread, NULL, blocking_main, ph) != 0)
        return im_error_set(err, IM_ENOMEM, "cannot start the plugins' blocking thread");
    ph->bthread_started = true;
    return IM_OK;
}

static void run_stop(im_plugin_host *ph, im_loop_item *it)
{
    (void)it;
    event_base_loopbreak(ph->base);
}

void im__loop_stop(im_plugin_host *ph)
{
    /* The blocking thread first: its last completions still reach the loop.
     * From here on run_blocking refuses (IM_ESHUTDOWN), threads or not. */
    pthread_mutex_lock(&ph->jlock);
    ph->jstopping = true;
    pthread_cond_signal(&ph->jwake);
    pthread_mutex_unlock(&ph->jlock);
    if (ph->bthread_started) {
        pthread_join(ph->bthread, NULL);
        ph->bthread_started = false;
    }
    if (ph->thread_started) {
        im_loop_item *stop = calloc(1, sizeof *stop);
        if (stop) {
            stop->run = run_stop;
            if (!im__loop_push(ph, stop))
                free(stop);
        } else {
            event_base_loopbreak(ph->base);
        }
        pthread_join(ph->thread, NULL);
        ph->thread_started = false;
    }
    /* No loop any more: host calls from what runs below fail with
     * IM_ESHUTDOWN (timer_start with 0), and timers may be touched here. */
    atomic_store(&ph->state, LOOP_STOPPED);
    /* From now on pushes are refused (a refused with_session runs its fn at
     * once). The presence map points into the queue, so it goes first,
     * under its lock; the items are cancelled without any lock held, as
     * their callbacks may call the host. */
    pthread_mutex_lock(&ph->presence_lock);
    pthread_mutex_lock(&ph->qlock);
    ph->accepting = false;
    im_loop_item *it = ph->qhead;
    ph->qhead = ph->qtail = NULL;
    pthread_mutex_unlock(&ph->qlock);
    im_strmap_free(ph->presence_waiting);
    ph->presence_waiting = NULL;
    pthread_mutex_unlock(&ph->presence_lock);
    while (it) {
        im_loop_item *next = it->next;
        if (it->cancel)
            it->cancel(ph, it);
        free(it);
        it = next;
    }
    /* Jobs no blocking thread took (it never started: a failed start) run
     * here, in call order, so that each still completes once. */
    pthread_mutex_lock(&ph->jlock);
    im_job *j = ph->jhead;
    ph->jhead = ph->jtail = NULL;
    pthread_mutex_unlock(&ph->jlock);
    while (j) {
        im_job *next = (im_job *)j->base.next;
        j->work(j->arg);
        job_finished(ph, j);
        j = next;
    }
}

void im__loop_destroy(im_plugin_host *ph)
{
    im__loop_stop(ph);
    while (ph->timers) {
        im_timer *t = ph->timers;
        ph->timers = t->next;
        timer_free(t);
    }
    if (ph->wakeup)
        event_free(ph->wakeup);
    if (ph->base)
        event_base_free(ph->base);
    pthread_mutex_destroy(&ph->qlock);
    pthread_mutex_destroy(&ph->presence_lock);
    pthread_mutex_destroy(&ph->jlock);
    pthread_cond_destroy(&ph->jwake);
    pthread_mutex_destroy(&ph->start_lock);
    pthread_cond_destroy(&ph->start_cond);
}
