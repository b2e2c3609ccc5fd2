/* imcore/message.h: one chat message as it crosses the storage port, and
 * the limits of the ids it carries. Plain data: a storage adapter built
 * outside imcore needs nothing else to read and write messages.
 *
 * im_message only points at its strings and body: whoever fills it keeps
 * them alive for as long as the message is used (for a callback, the
 * call). */
#ifndef IMCORE_MESSAGE_H
#define IMCORE_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IM_USER_ID_MAX 32        /* bytes of a user or group id, without the NUL */
#define IM_DISPLAY_NAME_MAX 64   /* bytes of a display name, without the NUL */
#define IM_CLIENT_MSG_ID_MAX 64  /* bytes */
/* "p:<a>:<b>" (a < b bytewise) for a private conversation, "g:<group>" for a
 * group; without the NUL. */
#define IM_CONVERSATION_ID_MAX (2 + IM_USER_ID_MAX + 1 + IM_USER_ID_MAX)
/* Bytes of a frame besides one message body, at most: a Delivery, or a
 * HistoryResult holding one message, with every id, name and number at its
 * largest, in its Envelope (about 330 bytes today; the rest is room for
 * fields appended later). A server's max_body_bytes is at most its
 * max_frame_bytes minus this, so that every message it accepts can be sent
 * on, alone in a frame, and no frame it sends exceeds max_frame_bytes. */
#define IM_FRAME_RESERVE 512

typedef enum im_message_kind {
    IM_MESSAGE_PRIVATE = 1,
    IM_MESSAGE_GROUP = 2,
    /* A notice from the server to users a group change by someone else
     * affects, handed to the route port only (deliver_many): never stored,
     * never given to a store or a plugin. sender: who made the change;
     * target: the group; client_msg_id: what happened (IM_NOTICE_*); body:
     * a sentence for people; seq 0. */
    IM_MESSAGE_NOTICE = 3,
} im_message_kind;

/* What a notice (IM_MESSAGE_NOTICE) tells its receiver. */
#define IM_NOTICE_INVITED "invited"  /* you are invited to the group */
#define IM_NOTICE_REMOVED "removed"  /* you were removed, or your invitation withdrawn */
#define IM_NOTICE_OWNER "owner"      /* you own the group now */
#define IM_NOTICE_DELETED "deleted"  /* the group was deleted */

typedef struct im_message {
    im_message_kind kind;
    const char *sender;         /* borrowed: a user id */
    const char *target;         /* borrowed: the receiver's user id or the group id */
    const char *client_msg_id;  /* borrowed: 1..IM_CLIENT_MSG_ID_MAX bytes in a message to
                                 * store; "" in one read back that an older server
                                 * stored without an id */
    const uint8_t *body;        /* borrowed: body_len bytes, not NUL-terminated */
    size_t body_len;
    uint64_t seq;               /* 0 until the store assigns it */
    uint64_t server_time_ms;    /* wall clock, set by the application */
} im_message;

#ifdef __cplusplus
}
#endif
#endif
