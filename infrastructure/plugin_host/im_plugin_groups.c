/* infrastructure/plugin_host/im_plugin_groups.c: a plugin's group requests
 * (imcore_host_api.group_call) and their completions.
 *
 * The request is the application's, made for the claimed account's
 * session; its answer comes back through the replies port as a client's
 * would (pr_send_status in im_plugin_router.c), on whatever thread
 * completed it. Each call waiting for its answer is kept here by (account,
 * request id); the answer is carried to the plugin loop, where done runs. */
#include "im_plugin_internal.h"

#include <stdlib.h>

#include "application/im_app.h"
#include "im_log.h"

struct im_group_call {
    im_group_call *next;
    im_claim *claim;
    uint64_t request_id;
    void (*done)(void *state, int rc, void *arg);
    void *arg;
};

typedef struct answer_item {
    im_loop_item base;
    im_group_call *call;
    int rc;
} answer_item;

static void run_answer(im_plugin_host *ph, im_loop_item *it)
{
    (void)ph;
    answer_item *a = (answer_item *)it;
    im_group_call *call = a->call;
    call->done(call->claim->owner->desc.state, a->rc, call->arg);
    free(call);
}

/* The loop stopped first: done still runs once (before the shutdown). */
static void cancel_answer(im_plugin_host *ph, im_loop_item *it)
{
    (void)ph;
    answer_item *a = (answer_item *)it;
    im_group_call *call = a->call;
    call->done(call->claim->owner->desc.state, IM_ESHUTDOWN, call->arg);
    free(call);
}

static im_group_call *take(im_plugin_host *ph, const im_claim *c, uint64_t request_id)
{
    pthread_mutex_lock(&ph->calls_lock);
    im_group_call **p = &ph->calls;
    while (*p && !((*p)->claim == c && (*p)->request_id == request_id))
        p = &(*p)->next;
    im_group_call *call = *p;
    if (call)
        *p = call->next;
    pthread_mutex_unlock(&ph->calls_lock);
    return call;
}

int im__group_call(imcore_host *h, const char *account, imcore_group_op op, const char *group,
                   void (*done)(void *state, int rc, void *arg), void *arg)
{
    im_plugin_host *ph = h->ph;
    im_claim *c = account ? im__claim_find(ph, account) : NULL;
    if (!c || c->owner != h || !group || !done ||
        (op != IMCORE_GROUP_CREATE && op != IMCORE_GROUP_JOIN && op != IMCORE_GROUP_LEAVE))
        return IM_EINVAL;
    if (atomic_load(&ph->state) != LOOP_RUNNING || !im__on_loop(ph) || !ph->app)
        return IM_ESTATE;
    im_group_call *call = calloc(1, sizeof *call);
    if (!call)
        return IM_ENOMEM;
    call->claim = c;
    call->request_id = ++c->next_request;
    call->done = done;
    call->arg = arg;
    /* Listed before the request: its answer may come inside the call. */
    pthread_mutex_lock(&ph->calls_lock);
    call->next = ph->calls;
    ph->calls = call;
    pthread_mutex_unlock(&ph->calls_lock);
    im_error err = { 0 };
    int rc = op == IMCORE_GROUP_CREATE
                 ? im_app_group_create(ph->app, &c->session, &c->ep, call->request_id, group,
                                       ph->limits.max_group_members, &err)
             : op == IMCORE_GROUP_JOIN
                 ? im_app_group_join(ph->app, &c->session, &c->ep, call->request_id, group, &err)
                 : im_app_group_leave(ph->app, &c->session, &c->ep, call->request_id, group,
                                      &err);
    if (rc != IM_OK) {
        /* Refused before it was made: no answer will come. */
        if (take(ph, c, call->request_id) == call)
            free(call);
        return rc;
    }
    return IM_OK;
}

bool im__group_call_answer(im_plugin_host *ph, im_claim *c, uint64_t request_id, int rc)
{
    im_group_call *call = take(ph, c, request_id);
    if (!call)
        return false;
    answer_item *a = calloc(1, sizeof *a);
    if (!a) {
        /* Cannot carry it: the plugin still hears, as at a stop. */
        IM_ERROR("plugin %s: out of memory for a group answer", c->owner->name);
        free(call);
        return true;
    }
    a->base.run = run_answer;
    a->base.cancel = cancel_answer;
    a->call = call;
    a->rc = rc;
    if (!im__loop_push(ph, &a->base)) {
        cancel_answer(ph, &a->base);
        free(a);
    }
    return true;
}

void im__group_calls_end(im_plugin_host *ph)
{
    pthread_mutex_lock(&ph->calls_lock);
    im_group_call *list = ph->calls;
    ph->calls = NULL;
    pthread_mutex_unlock(&ph->calls_lock);
    while (list) {
        im_group_call *call = list;
        list = call->next;
        call->done(call->claim->owner->desc.state, IM_ESHUTDOWN, call->arg);
        free(call);
    }
}
