/* domain/session.h: one client connection's life, as a state machine.
 *
 *     CONNECTED --authenticate--> AUTHENTICATED --close--> CLOSED
 *         \______________________close___________________/
 *
 * Nothing else: no re-authentication, no way back from CLOSED. The session
 * also remembers when it last heard from its client, so the idle rule lives
 * here and not in the network code. Times are milliseconds on a monotonic
 * clock the caller reads. Not thread-safe: a session belongs to one loop. */
#ifndef IM_DOMAIN_SESSION_H
#define IM_DOMAIN_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include "imcore/errors.h"
#include "user.h"

typedef enum im_session_state {
    IM_SESSION_CONNECTED = 0,
    IM_SESSION_AUTHENTICATED = 1,
    IM_SESSION_CLOSED = 2,
} im_session_state;

/* Embedded by value in the connection that owns it, so it has no _new/_free.
 * Fields are read through the accessors below; write them only through the
 * functions here. */
typedef struct im_session {
    uint64_t id;                  /* unique per server process, given at init */
    im_session_state state;
    char user_id[IM_USER_ID_MAX + 1];           /* "" until authenticated */
    char display_name[IM_DISPLAY_NAME_MAX + 1]; /* "" until authenticated */
    uint64_t connected_ms;
    uint64_t last_seen_ms;
    int close_reason;             /* 0 or the IM_E* code that closed it */
    /* The send-rate bucket: tokens in thousandths, refilled at rate per
     * second up to burst (see im_session_take_send). */
    uint64_t send_tokens_milli;
    uint64_t send_refill_ms;
    /* The same for DeliveryAcks (see im_session_take_ack). */
    uint64_t ack_tokens_milli;
    uint64_t ack_refill_ms;
    bool unmetered;               /* a service account: no send-rate limit */
    /* The application's, opaque here: a login still handing over the
     * user's unacked messages (domain/handover.h); NULL once live. Only the
     * session's own thread reads or writes it. */
    void *handover;
    /* The application's, opaque here: a login being checked by the
     * accounts port, told when the session goes; NULL otherwise. Only the
     * session's own thread reads or writes it. */
    void *login;
} im_session;

/* Starts a session in CONNECTED, seen at now_ms. */
void im_session_init(im_session *s, uint64_t id, uint64_t now_ms);

/* CONNECTED -> AUTHENTICATED as user_id (copied). An empty or NULL display_name
 * takes the id. Errors: IM_ESTATE (not CONNECTED; the state is unchanged),
 * IM_EINVAL (bad id or name; the state is unchanged). */
int im_session_authenticate(im_session *s, const char *user_id,
                            const char *display_name, im_error *err);

/* Any state but CLOSED -> CLOSED, remembering reason (0 for a clean close).
 * Returns IM_ESTATE if already closed (the first reason is kept). */
int im_session_close(im_session *s, int reason);

bool im_session_is_authenticated(const im_session *s);
bool im_session_is_closed(const im_session *s);

/* The client was heard from at now_ms. Time never runs backwards here: an
 * older now_ms is ignored. */
void im_session_touch(im_session *s, uint64_t now_ms);

/* True when nothing was heard for at least timeout_ms. A timeout of 0 means
 * never idle. */
bool im_session_is_idle(const im_session *s, uint64_t now_ms, uint64_t timeout_ms);

/* A token bucket on what the session sends: rate messages per second on
 * average, bursts of up to burst. Takes one token and returns true if the
 * send may go; returns false (and takes nothing) if the session is sending
 * too fast. rate 0 means unlimited. The bucket starts full. */
bool im_session_take_send(im_session *s, uint64_t now_ms, uint32_t rate, uint32_t burst);

/* The same bucket, kept apart, for the acks the session sends: a receiver
 * acks what it gets, so its acks may outnumber its own messages. */
bool im_session_take_ack(im_session *s, uint64_t now_ms, uint32_t rate, uint32_t burst);

/* Exempts the session from the send-rate limit: for a service account the
 * server itself speaks for (a plugin's bot), which answers many users at
 * once and is trusted. Never for a client's session. */
void im_session_set_unmetered(im_session *s);

/* "CONNECTED", "AUTHENTICATED", "CLOSED". Static: never free. */
const char *im_session_state_name(im_session_state st);

#endif
