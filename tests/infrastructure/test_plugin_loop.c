/* tests/infrastructure/test_plugin_loop.c: infrastructure/plugin_host/
 * im_plugin_loop.c, the plugin loop and the blocking thread, at shutdown.
 *
 * What the loop holds when it stops is never dropped: a with_session call
 * for a service account runs its fn exactly once (with the session on the
 * loop, with NULL once the loop is gone), and a job run_blocking accepted
 * runs its work and then its done exactly once, whether the threads ran or
 * never started. Timers never fire once the loop has stopped. The host here
 * is built by hand around one claimed account, with no plugin loaded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "im_plugin_internal.h"

#define CALLS 4

typedef struct fixture {
    im_plugin_host *ph;
    imcore_host h;
    im_endpoint ep;               /* the claimed account's */

    /* with_session calls, by index: how often fn ran, with which session,
     * and whether on the loop thread. */
    int ran[CALLS];
    bool had_session[CALLS];
    bool on_loop[CALLS];
    /* Jobs, by index: work then done. */
    int worked[CALLS];
    int done[CALLS];
    bool done_after_work[CALLS];
    void *done_state[CALLS];
    int timer_fired;

    /* Shutdown while the loop is busy: the first call blocks until let go. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool in_first, let_go;
    int rb_during_stop;           /* what run_blocking answered from a late callback */
    int ran_inside;               /* calls whose fn ran inside with_session */
} fixture;

typedef struct call_arg {
    fixture *f;
    int i;
} call_arg;

static call_arg args[CALLS];

static void with_session(fixture *f, void (*fn)(void *, im_session *), int i)
{
    args[i] = (call_arg){ f, i };
    im_replies_with_session(&f->ph->replies, &f->ep, fn, &args[i]);
}

static void count_call(void *arg, im_session *s)
{
    call_arg *a = arg;
    fixture *f = a->f;
    f->ran[a->i]++;
    f->had_session[a->i] = s != NULL;
    f->on_loop[a->i] = im__on_loop(f->ph);
}

static void work(void *arg)
{
    call_arg *a = arg;
    a->f->worked[a->i]++;
}

static void done(void *state, void *arg)
{
    call_arg *a = arg;
    fixture *f = a->f;
    pthread_mutex_lock(&f->lock);
    f->done[a->i]++;
    f->done_after_work[a->i] = f->worked[a->i] == 1;
    f->done_state[a->i] = state;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

/* Waits (10 s at most) until job i's done has run. */
static void wait_done(fixture *f, int i)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&f->lock);
    int rc = 0;
    while (f->done[i] == 0 && rc == 0)
        rc = pthread_cond_timedwait(&f->cond, &f->lock, &until);
    int ran = f->done[i];
    pthread_mutex_unlock(&f->lock);
    if (ran == 0)
        fail_msg("job %d's done did not run within 10 s", i);
}

static void on_timer(void *state, uint64_t id, void *arg)
{
    (void)id, (void)arg;
    ((fixture *)state)->timer_fired++;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    im_plugin_host *ph = calloc(1, sizeof *ph);
    assert_non_null(f);
    assert_non_null(ph);
    im_error err = { 0 };
    assert_int_equal(im__loop_init(ph, &err), IM_OK);
    im__plugin_router_init(ph);
    ph->limits = (imcore_limits){ .size = sizeof ph->limits, .plugin_backlog = 16 };
    f->ph = ph;
    f->h.ph = ph;
    snprintf(f->h.name, sizeof f->h.name, "t");
    f->h.desc.state = f;
    f->h.desc.on_timer = on_timer;
    ph->claims = calloc(1, sizeof *ph->claims);
    assert_non_null(ph->claims);
    ph->nclaims = 1;
    ph->claims[0].owner = &f->h;
    snprintf(ph->claims[0].user, sizeof ph->claims[0].user, "bot");
    f->ep = (im_endpoint){ .node = 0, .worker = IM_PLUGIN_WORKER, .conn_id = 1 };
    ph->claims[0].ep = f->ep;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    im__loop_destroy(f->ph);
    free(f->ph->claims);
    free(f->ph);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cond);
    free(f);
    return 0;
}

/* The server stopped before the loop ever ran (a failed start): what was
 * queued at init still completes, on the stopping thread. */
static void test_stop_before_start(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < CALLS; i++)
        with_session(f, count_call, i);
    for (int i = 0; i < CALLS; i++)
        assert_int_equal(im__run_blocking(&f->h, work, i == 3 ? NULL : done, &args[i]), IM_OK);
    assert_int_not_equal(im__timer_start(&f->h, 0, 0, NULL), 0);
    for (int i = 0; i < CALLS; i++)
        assert_int_equal(f->ran[i], 0); /* queued: nothing runs inside the call */

    im__loop_stop(f->ph);
    for (int i = 0; i < CALLS; i++) {
        assert_int_equal(f->ran[i], 1);
        assert_false(f->had_session[i]);
        assert_int_equal(f->worked[i], 1);
        assert_int_equal(f->done[i], i == 3 ? 0 : 1);
        if (i != 3) {
            assert_true(f->done_after_work[i]);
            assert_ptr_equal(f->done_state[i], f);
        }
    }
    assert_int_equal(atomic_load(&f->ph->state), LOOP_STOPPED);
    /* Stopped: later work is refused, and a refused call runs at once. */
    assert_int_equal(im__run_blocking(&f->h, work, done, &args[0]), IM_ESHUTDOWN);
    with_session(f, count_call, 0);
    assert_int_equal(f->ran[0], 2);
    assert_false(f->had_session[0]);
    im__loop_stop(f->ph); /* idempotent */
    assert_int_equal(f->timer_fired, 0);
}

/* ---- stopped while the loop is busy ---- */

static void late_call(void *arg, im_session *s);

/* The first call: holds the loop until the test lets it go. */
static void blocking_call(void *arg, im_session *s)
{
    count_call(arg, s);
    fixture *f = ((call_arg *)arg)->f;
    pthread_mutex_lock(&f->lock);
    f->in_first = true;
    pthread_cond_broadcast(&f->cond);
    while (!f->let_go)
        pthread_cond_wait(&f->cond, &f->lock);
    pthread_mutex_unlock(&f->lock);
}

/* Queued behind the loop's stop: runs in the stop's batch and asks for
 * more, which the loop, broken, never runs itself. */
static void late_call(void *arg, im_session *s)
{
    count_call(arg, s);
    fixture *f = ((call_arg *)arg)->f;
    with_session(f, count_call, 3);
    if (f->ran[3])
        f->ran_inside++;
    f->rb_during_stop = im__run_blocking(&f->h, work, done, &args[3]);
}

static void *stopper(void *arg)
{
    im__loop_stop(arg);
    return NULL;
}

static void test_stop_while_busy(void **state)
{
    fixture *f = *state;
    im_error err = { 0 };
    atomic_store(&f->ph->state, LOOP_RUNNING);
    assert_int_equal(im__loop_start_threads(f->ph, &err), IM_OK);

    /* A job, finished before the stop: its done comes on the loop. */
    args[1] = (call_arg){ f, 1 };
    assert_int_equal(im__run_blocking(&f->h, work, done, &args[1]), IM_OK);
    wait_done(f, 1);
    with_session(f, blocking_call, 0);
    pthread_mutex_lock(&f->lock);
    while (!f->in_first)
        pthread_cond_wait(&f->cond, &f->lock);
    pthread_mutex_unlock(&f->lock);

    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stopper, f->ph), 0);
    /* The stopper joins the blocking thread, then queues the loop's stop:
     * the first item queued from now on. */
    /* Polled, with a deadline: the loop has no signal for "queued". */
    for (int tries = 0;; tries++) {
        pthread_mutex_lock(&f->ph->qlock);
        bool queued = f->ph->qhead != NULL;
        pthread_mutex_unlock(&f->ph->qlock);
        if (queued)
            break;
        if (tries == 10000)
            fail_msg("the stop was not queued within 10 s");
        usleep(1000);
    }
    with_session(f, late_call, 2);
    pthread_mutex_lock(&f->lock);
    f->let_go = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    assert_int_equal(pthread_join(t, NULL), 0);

    assert_int_equal(f->ran[0], 1);
    assert_true(f->had_session[0] && f->on_loop[0]);
    assert_int_equal(f->worked[1], 1);
    assert_int_equal(f->done[1], 1);
    assert_true(f->done_after_work[1]);
    assert_int_equal(f->ran[2], 1);
    assert_true(f->had_session[2] && f->on_loop[2]);
    /* Asked for on the loop, so queued, not run inside the call; the loop
     * had stopped by then, so it ran once, with no session, off the loop. */
    assert_int_equal(f->ran_inside, 0);
    assert_int_equal(f->ran[3], 1);
    assert_false(f->had_session[3]);
    assert_false(f->on_loop[3]);
    /* The blocking thread was gone: refused, so no work and no done. */
    assert_int_equal(f->rb_during_stop, IM_ESHUTDOWN);
    assert_int_equal(f->worked[3], 0);
    assert_int_equal(f->done[3], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stop_before_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_while_busy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
