/* domain/message.h: one chat message and the rules it must pass before the
 * server accepts it.
 *
 * A message goes from a sender to one user (PRIVATE) or to a group (GROUP).
 * Its conversation is the pair of users or the group; seq orders messages
 * within one conversation and is given by the store, never by the client.
 * The client's client_msg_id names the message for acks and de-duplication.
 *
 * The record itself (im_message) and the id limits are plain data in the
 * public imcore/message.h, which storage adapters share; the rules are
 * here. */
#ifndef IM_DOMAIN_MESSAGE_H
#define IM_DOMAIN_MESSAGE_H

#include <stddef.h>
#include <stdint.h>
#include "imcore/errors.h"
#include "imcore/message.h"
#include "user.h"

/* Checks every rule: a known kind, valid sender and target ids, a private
 * message not addressed to its own sender, a client_msg_id of 1 to
 * IM_CLIENT_MSG_ID_MAX bytes, a non-empty body of at most max_body bytes.
 * Errors: IM_EINVAL, IM_ETOOBIG. */
int im_message_validate(const im_message *m, size_t max_body, im_error *err);

/* Writes m's conversation id into buf (size >= IM_CONVERSATION_ID_MAX + 1):
 * "p:<a>:<b>" with a < b bytewise for a private message, so both directions
 * share one conversation; "g:<group>" for a group message. Returns the length
 * or IM_EINVAL if m's ids are invalid or buf is too small. */
int im_message_conversation_id(const im_message *m, char *buf, size_t size);

/* Checks a conversation id that user names (an ack): "g:<group>", or
 * "p:<a>:<b>" with valid ids, a < b bytewise and user one of them. Sets
 * *group to whether it is a group's. Errors: IM_EINVAL (too long,
 * malformed, or a private conversation user is not in). */
int im_conversation_check(const char *user, const char *conv, bool *group, im_error *err);

#endif
