/* imcore/errors.h: the one error-code space of imcore, and the error record
 * that carries a code together with a sentence for people.
 *
 * Functions return 0 or a negative IM_E* code. The wire protocol's ErrorCode
 * enum (interfaces/protocol/imcore.proto) uses the same numbers, positive, so a
 * code crosses from the domain to a client without a translation table.
 * Numbers are part of the protocol: never renumber, only append.
 *
 * libc only: the domain includes this header. */
#ifndef IMCORE_ERRORS_H
#define IMCORE_ERRORS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    IM_OK = 0,
    IM_ENOMEM = -1,        /* out of memory */
    IM_EINVAL = -2,        /* a malformed argument: empty id, bad characters */
    IM_EPROTO = -3,        /* a frame that does not decode, or a body of the wrong type */
    IM_EFRAMESIZE = -4,    /* a frame longer than max_frame_bytes */
    IM_ENOTAUTH = -5,      /* the session has not logged in */
    IM_ESTATE = -6,        /* the session is in the wrong state for this */
    IM_EOFFLINE = -7,      /* the receiver is not online */
    IM_ENOGROUP = -8,      /* no such group */
    IM_EEXIST = -9,        /* the group already exists */
    IM_EFULL = -10,        /* the group has reached its member limit */
    IM_ENOTMEMBER = -11,   /* the user is not a member of the group */
    IM_EMEMBER = -12,      /* the user is already a member of the group */
    IM_ETOOBIG = -13,      /* a message body over max_body_bytes */
    IM_EREPLACED = -14,    /* the session was replaced by a newer login */
    IM_EIDLE = -15,        /* the session was silent for idle_timeout_s */
    IM_ESHUTDOWN = -16,    /* the server is shutting down */
    IM_EIO = -17,          /* an internal or storage failure */
    IM_ERATE = -18,        /* too many requests */
    IM_EDUPLICATE = -19,   /* login refused: the user is online elsewhere */
    IM_EUNSUPPORTED = -20, /* a request this server does not implement */
    IM_EBUSY = -21,        /* the receiver cannot take more right now (slow consumer, full server) */
    IM_ENOSPC = -22,       /* storage is full: the message was not stored */
    IM_ENOTFOUND = -23,    /* no such user, token or record */
    IM_EAUTH = -24,        /* wrong password, or a token that is unknown, expired or revoked */
    IM_EUSEREXISTS = -25,  /* registration refused: the user id is taken */
    IM_EREFUSED = -26,     /* a plugin refused the message (the reason says why) */
    IM_EUNKNOWNUSER = -27, /* a private message to an id that is no user (no account) */
    IM_EIDREUSED = -28,    /* a client_msg_id the sender used for another message */
    IM_EPERM = -29,        /* not allowed: only the group's owner may do this */
    IM_EQUOTA = -30,       /* a per-user quota is used up (groups created) */
};

#define IM_ERROR_CODE_LAST IM_EQUOTA

/* The caller's record of one failure. Functions that take an im_error* accept
 * NULL when the caller wants only the code. */
typedef struct im_error {
    int code;       /* 0 or an IM_E* code */
    char msg[200];  /* NUL-terminated, for people; may be cut short */
} im_error;

/* Fills err (if not NULL) and returns code, so that a failure is one line:
 *     return im_error_set(err, IM_EFULL, "group %s is full", id);          */
int im_error_set(im_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears err (if not NULL) to IM_OK and an empty message. */
void im_error_clear(im_error *err);

/* A short constant name for code ("EFULL"); "EUNKNOWN" for an unknown one.
 * Returns a static string: never free it. */
const char *im_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
