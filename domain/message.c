/* domain/message.c: the rules a message must pass before the server accepts
 * it, and the naming of its conversation.
 *
 * It owns no memory: an im_message only borrows its strings and body. It must
 * not know whether the target exists, is online or is a group the sender
 * belongs to; the application asks the router and the repository for that. */
#include <stdbool.h>
#include <string.h>

#include "domain/message.h"

/* Length of s if it is at most max bytes, or max + 1 if longer, without
 * reading further: a client-supplied string can be arbitrarily long. */
static size_t bounded_len(const char *s, size_t max)
{
    size_t n = 0;
    while (n <= max && s[n] != '\0')
        n++;
    return n;
}

static bool kind_is_known(im_message_kind kind)
{
    return kind == IM_MESSAGE_PRIVATE || kind == IM_MESSAGE_GROUP;
}

int im_message_validate(const im_message *m, size_t max_body, im_error *err)
{
    if (!m)
        return im_error_set(err, IM_EINVAL, "no message");
    if (!kind_is_known(m->kind))
        return im_error_set(err, IM_EINVAL, "unknown message kind %d", (int)m->kind);
    im_error sub;
    if (im_user_id_check(m->sender, &sub) != IM_OK)
        return im_error_set(err, IM_EINVAL, "bad sender: %s", sub.msg);
    if (im_user_id_check(m->target, &sub) != IM_OK)
        return im_error_set(err, IM_EINVAL, "bad %s: %s",
                            m->kind == IM_MESSAGE_GROUP ? "group id" : "receiver", sub.msg);
    if (m->kind == IM_MESSAGE_PRIVATE && strcmp(m->sender, m->target) == 0)
        return im_error_set(err, IM_EINVAL, "a private message cannot go to its own sender");
    /* (sender, client_msg_id) names the message for good: for acks, for a
     * resend after a lost answer, and for the store's duplicate check. */
    if (!m->client_msg_id || !m->client_msg_id[0])
        return im_error_set(err, IM_EINVAL, "client_msg_id is empty: every message needs one"
                                            " (1 to %d bytes)", IM_CLIENT_MSG_ID_MAX);
    if (bounded_len(m->client_msg_id, IM_CLIENT_MSG_ID_MAX) > IM_CLIENT_MSG_ID_MAX)
        return im_error_set(err, IM_EINVAL, "client_msg_id is longer than %d bytes",
                            IM_CLIENT_MSG_ID_MAX);
    if (m->body_len == 0)
        return im_error_set(err, IM_EINVAL, "the message body is empty");
    if (m->body_len > max_body)
        return im_error_set(err, IM_ETOOBIG, "the message body is %zu bytes, over %zu",
                            m->body_len, max_body);
    if (!m->body)
        return im_error_set(err, IM_EINVAL, "the message body is missing");
    return IM_OK;
}

int im_message_conversation_id(const im_message *m, char *buf, size_t size)
{
    if (!m || !buf || !kind_is_known(m->kind))
        return IM_EINVAL;
    /* The ids are checked here too, not only in validate: a conversation id
     * becomes a storage key, and ':' must never reach it from an id. */
    if (!im_user_id_is_valid(m->sender) || !im_user_id_is_valid(m->target))
        return IM_EINVAL;
    if (m->kind == IM_MESSAGE_GROUP) {
        size_t t = strlen(m->target);
        if (size < 2 + t + 1)
            return IM_EINVAL;
        memcpy(buf, "g:", 2);
        memcpy(buf + 2, m->target, t + 1);
        return (int)(2 + t);
    }
    /* Ordering the pair makes both directions name one conversation, so seq
     * orders the whole exchange and not each side of it separately. */
    const char *a = m->sender, *b = m->target;
    if (strcmp(a, b) > 0) {
        const char *t = a;
        a = b;
        b = t;
    }
    size_t la = strlen(a), lb = strlen(b);
    if (size < 2 + la + 1 + lb + 1)
        return IM_EINVAL;
    memcpy(buf, "p:", 2);
    memcpy(buf + 2, a, la);
    buf[2 + la] = ':';
    memcpy(buf + 3 + la, b, lb + 1);
    return (int)(3 + la + lb);
}

int im_conversation_check(const char *user, const char *conv, bool *group, im_error *err)
{
    size_t len = 0;
    while (len <= IM_CONVERSATION_ID_MAX && conv[len]) /* strnlen is POSIX, not C11 */
        len++;
    if (len > IM_CONVERSATION_ID_MAX)
        return im_error_set(err, IM_EINVAL, "conversation id longer than %d bytes",
                            IM_CONVERSATION_ID_MAX);
    if (strncmp(conv, "g:", 2) == 0 && im_user_id_is_valid(conv + 2)) {
        *group = true;
        return IM_OK;
    }
    *group = false;
    const char *colon = strncmp(conv, "p:", 2) == 0 ? strchr(conv + 2, ':') : NULL;
    if (colon) {
        char a[IM_CONVERSATION_ID_MAX + 1];
        size_t la = (size_t)(colon - (conv + 2));
        memcpy(a, conv + 2, la);
        a[la] = '\0';
        const char *b = colon + 1;
        if (im_user_id_is_valid(a) && im_user_id_is_valid(b) && strcmp(a, b) < 0) {
            if (strcmp(user, a) == 0 || strcmp(user, b) == 0)
                return IM_OK;
            return im_error_set(err, IM_EINVAL, "%s is not in conversation %s", user, conv);
        }
    }
    return im_error_set(err, IM_EINVAL, "malformed conversation id '%.80s'", conv);
}
