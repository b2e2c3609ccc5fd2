/* infrastructure/plugin_host/im_plugin_internal.h: what the files of the
 * plugin host share. Not a public header.
 *
 * Ownership: the host owns every imcore_host (one per loaded plugin), the
 * claimed accounts, the loop and its queued items, the timers and the
 * blocking jobs. A queued item owns its payload. */
#ifndef IM_PLUGIN_INTERNAL_H
#define IM_PLUGIN_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "imcore/plugin.h"
#include "imcore/route.h"
#include "imcore/storage.h"
#include "imcore/transport.h"
#include "im_plugin_host.h"
#include "im_config.h"

/* Endpoints of claimed accounts carry this worker number, which no network
 * worker has: the route port sends what is addressed to them to the loop. */
#define IM_PLUGIN_WORKER 0xFFFFFFFFu

struct imcore_host {
    im_plugin_host *ph;
    char name[64];
    void *dl;
    imcore_plugin desc;
    unsigned api_version;         /* the plugin API version spoken with it */
    const im_plugin_config *cfg;  /* a copy owned by the host */
    char (*where)[300];           /* "FILE:LINE" per setting */
    /* What messages about it start with: "FILE:LINE: plugin NAME" (or
     * "FILE:LINE: storage.engine: NAME" for an adapter). */
    char at[300];
    char label[128];
};

/* A service account a plugin speaks for. Its session is touched only on the
 * loop thread (sends) or before the loop starts.
 *
 * Back-pressure: at most limits.plugin_backlog deliveries for it wait on the loop.
 * Past that it is "behind": with a durable store, live deliveries are left
 * in the store and a catch-up reads them back once the loop has handled
 * what it holds; without one, private messages to it are refused (BUSY)
 * before they are stored and group messages skip it. */
typedef struct im_claim {
    imcore_host *owner;
    char user[IM_USER_ID_MAX + 1];
    char name[IM_DISPLAY_NAME_MAX + 1];
    im_session session;           /* authenticated and unmetered */
    im_endpoint ep;               /* { 0, IM_PLUGIN_WORKER, index + 1 } */
    uint64_t next_request;

    atomic_uint queued;           /* deliveries on the loop, not yet handled */
    atomic_bool behind;           /* set and cleared in the store's completion order */
    atomic_ulong skipped;         /* group messages not delivered (no durable store) */
    bool announced;               /* store order: "behind" was logged */
    bool fetching;                /* loop: a catch-up read is under way */
    bool retry_later;             /* loop: an ack or a read failed: the next catch-up waits */
    struct event *retry;          /* loop: a catch-up after a failure, a little later */
} im_claim;

/* Work for the loop thread: run(item) then free(item). An item still
 * queued when the loop stops is never run: cancel(item) is called instead,
 * then free(item), on the thread that stops the loop once the loop thread
 * has ended, so that the item still keeps its promise (with_session's fn
 * with a NULL session, run_blocking's done) or says what is lost. cancel
 * NULL: the item promised nothing (a presence event, a check). */
typedef struct im_loop_item {
    struct im_loop_item *next;
    void (*run)(im_plugin_host *ph, struct im_loop_item *it);
    void (*cancel)(im_plugin_host *ph, struct im_loop_item *it);
} im_loop_item;

typedef struct im_timer {
    struct im_timer *next;
    imcore_host *owner;
    uint64_t id;
    uint64_t every_ms;
    void *arg;
    struct event *ev;
    bool cancelled;               /* while its callback runs */
} im_timer;

/* A run_blocking job. base.next links it in the blocking thread's list,
 * then, once work has run, in the loop's queue, where base ends it with
 * done: no allocation stands between the work and its completion. */
typedef struct im_job {
    im_loop_item base;
    imcore_host *owner;
    void (*work)(void *arg);
    void (*done)(void *state, void *arg);
    void *arg;
} im_job;

/* The server's adapters, loaded after the extensions in this order. */
enum { IM_ADAPTER_STORAGE, IM_ADAPTER_TRANSPORT, IM_ADAPTER_CLUSTER, IM_ADAPTER_KINDS };

typedef enum loop_state {
    LOOP_LOADING = 0,   /* plugins' init: claims allowed, no store yet */
    LOOP_RUNNING,
    LOOP_STOPPED,
} loop_state;

struct im_plugin_host {
    im_filter filter;             /* the filter port; first, so the port is the host */
    /* The route port around the one below (im_plugin_router.c), in its
     * three tables, and that one's. */
    im_presence presence;
    im_delivery delivery;
    im_replies replies;
    im_route_ports inner;
    im_app *app;
    im_store *store;
    im_group_repo *groups;

    imcore_host *plugins;
    im_plugin_config *configs;
    unsigned n;
    unsigned adapter[IM_ADAPTER_KINDS]; /* each adapter's entry, or UINT_MAX */
    bool filters;                 /* some plugin has on_message */
    bool wants_presence;          /* some plugin has on_login or on_logout */
    imcore_limits limits;         /* the server's, as host_limits hands them out */
    /* For a cluster adapter of plugin API 2 (im_plugin_abi.h), freed with
     * the host: the one table it wraps, joined from the transport's three,
     * and its own table, cut in three. */
    void *cluster_join;
    void *cluster_split;
    bool durable_store;           /* known from open_storage (or start) on */
    unsigned bound_port;          /* the transport's, known from open_transport on */
    char source[256];

    pthread_mutex_t scratch_lock;
    struct scratch *scratches;
    pthread_key_t scratch_key;

    /* Group requests of claimed accounts waiting for their answers
     * (im_plugin_groups.c). */
    pthread_mutex_t calls_lock;
    struct im_group_call *calls;

    /* Claimed accounts: fixed once the plugins are loaded, read without a
     * lock after that. */
    im_claim *claims;
    unsigned nclaims;
    /* The client_msg_id of the claims' messages, which the plugin API does
     * not take: "<prefix>-<n>", a random prefix per start and a count
     * (loop thread), so that no two are ever the same for one sender. */
    char send_id_prefix[24];
    uint64_t sends;

    /* The loop. */
    atomic_int state;             /* a loop_state; changes on the main thread only */
    imcore_host *initialising;    /* the plugin whose init is running */
    struct event_base *base;
    struct event *wakeup;
    pthread_t thread;
    bool thread_started;          /* main thread only: for the join */
    pthread_mutex_t qlock;
    im_loop_item *qhead, *qtail;  /* under qlock */
    /* Presence events waiting in the queue, at most one per user (user id
     * -> its item); taken before qlock. NULL until the first event, and
     * again once the loop has stopped. */
    pthread_mutex_t presence_lock;
    struct im_strmap *presence_waiting;
    bool accepting;               /* under qlock: pushes are taken */
    im_timer *timers;             /* loop thread (or main before start) */
    uint64_t next_timer_id;
    im_timer *firing;

    /* The blocking thread. */
    pthread_t bthread;
    bool bthread_started;
    pthread_mutex_t jlock;
    pthread_cond_t jwake;
    im_job *jhead, *jtail;        /* under jlock */
    bool jstopping;

    /* Start-up: pending fetches and the first barrier, waited for on main. */
    pthread_mutex_t start_lock;
    pthread_cond_t start_cond;
    unsigned start_waiting;
};

/* im_plugin_loop.c */
int im__loop_init(im_plugin_host *ph, im_error *err);
/* Starts the loop and blocking threads: at im_plugin_host_start. */
int im__loop_start_threads(im_plugin_host *ph, im_error *err);
/* Lets the blocking thread finish its jobs and the loop what is queued,
 * then joins both and sets the state to LOOP_STOPPED; later pushes are
 * refused. What the loop did not run is cancelled (see im_loop_item), and
 * jobs that no blocking thread took (it never started) run here, work then
 * done, so that every accepted job completes once. Main thread; idempotent. */
void im__loop_stop(im_plugin_host *ph);
void im__loop_destroy(im_plugin_host *ph);
/* Queues it for the loop thread (takes ownership). Returns false, freeing
 * nothing, when the loop takes no more work: the caller disposes of it. */
bool im__loop_push(im_plugin_host *ph, im_loop_item *it);

/* A plugin's group requests (im_plugin_groups.c). im__group_call is
 * imcore_host_api.group_call. im__group_call_answer takes the answer to
 * request_id of claim c, if it is a group_call's, carries it to the loop
 * and returns true. im__group_calls_end answers what is still waiting with
 * IM_ESHUTDOWN, once the loop has stopped, before the plugins' shutdown. */
typedef struct im_group_call im_group_call;
int im__group_call(imcore_host *h, const char *account, imcore_group_op op, const char *group,
                   void (*done)(void *state, int rc, void *arg), void *arg);
bool im__group_call_answer(im_plugin_host *ph, im_claim *c, uint64_t request_id, int rc);
void im__group_calls_end(im_plugin_host *ph);
bool im__on_loop(const im_plugin_host *ph);
uint64_t im__timer_start(imcore_host *h, uint64_t after_ms, uint64_t every_ms, void *arg);
void im__timer_cancel(imcore_host *h, uint64_t id);
int im__run_blocking(imcore_host *h, void (*work)(void *), void (*done)(void *, void *),
                     void *arg);

/* im_plugin_router.c */
void im__plugin_router_init(im_plugin_host *ph);
/* The claim for user, or NULL: a lock-free lookup. */
im_claim *im__claim_find(im_plugin_host *ph, const char *user);
/* A message routed to the claim, live: queued for its on_delivery (acked
 * once handled), unless the claim is behind (see im_claim). Called in the
 * store's completion order. IM_OK when queued; IM_EBUSY when it is left in
 * the store (or, without one, skipped); IM_ENOMEM, IM_ESHUTDOWN. */
int im__deliver_to_claim(im_plugin_host *ph, im_claim *c, const im_message *m,
                         const char *sender_name);
/* IM_EBUSY when the claim's backlog is full, else IM_OK: asked, without a
 * durable store, before a private message to it is stored. */
int im__claim_admits_private(im_plugin_host *ph, im_claim *c, im_error *err);

/* What the claim missed, read from the store: every message it has not
 * acked, at most limits.plugin_backlog of them, queued for the plugin; fewer than
 * that and the claim is live again. At start (start not NULL) the read's
 * result goes to *start and the start-up waiter is signalled. */
typedef struct im_start_wait {
    int rc;
    im_error err;
} im_start_wait;
int im__claim_catch_up(im_plugin_host *ph, im_claim *c, im_start_wait *start, im_error *err);
/* Frees the claims' loop resources (retry timers): at host free. */
void im__claims_free(im_plugin_host *ph);

#endif
