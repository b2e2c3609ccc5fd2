/* domain/session.c: the life of one client connection as a state machine,
 * and the idle rule.
 *
 * It owns the transitions and nothing else: it does not know about sockets,
 * timers or the router. Time comes in from the caller, so the rules can be
 * tested without a clock. Every refused call leaves the session untouched,
 * which is why each function checks everything before it writes anything. */
#include <string.h>

#include "domain/session.h"

void im_session_init(im_session *s, uint64_t id, uint64_t now_ms)
{
    memset(s, 0, sizeof *s);
    s->id = id;
    s->state = IM_SESSION_CONNECTED;
    s->connected_ms = now_ms;
    s->last_seen_ms = now_ms;
    s->send_tokens_milli = UINT64_MAX; /* full: set to burst at the first send */
    s->send_refill_ms = now_ms;
    s->ack_tokens_milli = UINT64_MAX;
    s->ack_refill_ms = now_ms;
}

int im_session_authenticate(im_session *s, const char *user_id,
                            const char *display_name, im_error *err)
{
    if (s->state != IM_SESSION_CONNECTED)
        return im_error_set(err, IM_ESTATE, "cannot authenticate a session that is %s",
                            im_session_state_name(s->state));
    int rc = im_user_id_check(user_id, err);
    if (rc != IM_OK)
        return rc;
    if ((rc = im_display_name_check(display_name, err)) != IM_OK)
        return rc;
    if (!display_name || display_name[0] == '\0')
        display_name = user_id;
    /* Both fit: the checks above bound them by the array sizes, and an id is
     * never longer than a display name may be. */
    strcpy(s->user_id, user_id);
    strcpy(s->display_name, display_name);
    s->state = IM_SESSION_AUTHENTICATED;
    return IM_OK;
}

int im_session_close(im_session *s, int reason)
{
    /* The first reason is the true one; a later close (say, the socket error
     * that follows a kick) must not overwrite it. */
    if (s->state == IM_SESSION_CLOSED)
        return IM_ESTATE;
    s->state = IM_SESSION_CLOSED;
    s->close_reason = reason;
    return IM_OK;
}

bool im_session_is_authenticated(const im_session *s)
{
    return s->state == IM_SESSION_AUTHENTICATED;
}

bool im_session_is_closed(const im_session *s)
{
    return s->state == IM_SESSION_CLOSED;
}

void im_session_touch(im_session *s, uint64_t now_ms)
{
    /* Callers on different paths may read the clock in a different order
     * than they report; keeping the maximum makes the idle rule monotonic. */
    if (now_ms > s->last_seen_ms)
        s->last_seen_ms = now_ms;
}

bool im_session_is_idle(const im_session *s, uint64_t now_ms, uint64_t timeout_ms)
{
    if (timeout_ms == 0)
        return false;
    /* A now_ms older than the last touch would wrap the subtraction into a
     * huge silence; it means "just heard from", not "idle for ages". */
    if (now_ms < s->last_seen_ms)
        return false;
    return now_ms - s->last_seen_ms >= timeout_ms;
}

const char *im_session_state_name(im_session_state st)
{
    switch (st) {
    case IM_SESSION_CONNECTED:     return "CONNECTED";
    case IM_SESSION_AUTHENTICATED: return "AUTHENTICATED";
    case IM_SESSION_CLOSED:        return "CLOSED";
    }
    /* Not a default label, so that -Wswitch flags a state added later. */
    return "UNKNOWN";
}

void im_session_set_unmetered(im_session *s)
{
    s->unmetered = true;
}

/* One token from a bucket of rate per second, bursts of burst. */
static bool take_token(uint64_t *tokens_milli, uint64_t *refill_ms, uint64_t now_ms,
                       uint32_t rate, uint32_t burst)
{
    uint64_t cap = (uint64_t)(burst ? burst : rate) * 1000u;
    if (*tokens_milli > cap)
        *tokens_milli = cap;
    /* rate tokens per second is rate thousandths of a token per ms. */
    if (now_ms > *refill_ms) {
        uint64_t add = (now_ms - *refill_ms) * rate;
        *tokens_milli = cap - *tokens_milli < add ? cap : *tokens_milli + add;
        *refill_ms = now_ms;
    }
    if (*tokens_milli < 1000)
        return false;
    *tokens_milli -= 1000;
    return true;
}

bool im_session_take_send(im_session *s, uint64_t now_ms, uint32_t rate, uint32_t burst)
{
    if (rate == 0 || s->unmetered)
        return true;
    return take_token(&s->send_tokens_milli, &s->send_refill_ms, now_ms, rate, burst);
}

bool im_session_take_ack(im_session *s, uint64_t now_ms, uint32_t rate, uint32_t burst)
{
    if (rate == 0 || s->unmetered)
        return true;
    return take_token(&s->ack_tokens_milli, &s->ack_refill_ms, now_ms, rate, burst);
}
