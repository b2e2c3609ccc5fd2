/* infrastructure/codec_protobuf/im_codec.c: length-prefixed protobuf frames.
 *
 * protobuf-c checks the encoding; this file checks the rest of the contract:
 * the length limit before any allocation, and that an Envelope's type names
 * the body it carries, so the server can dispatch on either without doubt. */
#include "im_codec.h"

#include <stdlib.h>
#include <string.h>

/* Type <-> body case: one row per message kind. */
static const struct {
    Imcore__Envelope__BodyCase body;
    Imcore__Type type;
} type_of_body[] = {
    { IMCORE__ENVELOPE__BODY_LOGIN, IMCORE__TYPE__LOGIN },
    { IMCORE__ENVELOPE__BODY_LOGIN_ACK, IMCORE__TYPE__LOGIN_ACK },
    { IMCORE__ENVELOPE__BODY_LOGOUT, IMCORE__TYPE__LOGOUT },
    { IMCORE__ENVELOPE__BODY_PING, IMCORE__TYPE__PING },
    { IMCORE__ENVELOPE__BODY_PONG, IMCORE__TYPE__PONG },
    { IMCORE__ENVELOPE__BODY_PRIVATE_MESSAGE, IMCORE__TYPE__PRIVATE_MESSAGE },
    { IMCORE__ENVELOPE__BODY_GROUP_MESSAGE, IMCORE__TYPE__GROUP_MESSAGE },
    { IMCORE__ENVELOPE__BODY_DELIVERY, IMCORE__TYPE__DELIVERY },
    { IMCORE__ENVELOPE__BODY_SEND_ACK, IMCORE__TYPE__SEND_ACK },
    { IMCORE__ENVELOPE__BODY_GROUP_CREATE, IMCORE__TYPE__GROUP_CREATE },
    { IMCORE__ENVELOPE__BODY_GROUP_JOIN, IMCORE__TYPE__GROUP_JOIN },
    { IMCORE__ENVELOPE__BODY_GROUP_LEAVE, IMCORE__TYPE__GROUP_LEAVE },
    { IMCORE__ENVELOPE__BODY_GROUP_LIST, IMCORE__TYPE__GROUP_LIST },
    { IMCORE__ENVELOPE__BODY_GROUP_LIST_RESULT, IMCORE__TYPE__GROUP_LIST_RESULT },
    { IMCORE__ENVELOPE__BODY_ONLINE_USERS, IMCORE__TYPE__ONLINE_USERS },
    { IMCORE__ENVELOPE__BODY_ONLINE_USERS_RESULT, IMCORE__TYPE__ONLINE_USERS_RESULT },
    { IMCORE__ENVELOPE__BODY_ERROR, IMCORE__TYPE__ERROR },
    { IMCORE__ENVELOPE__BODY_OK, IMCORE__TYPE__OK },
    { IMCORE__ENVELOPE__BODY_DELIVERY_ACK, IMCORE__TYPE__DELIVERY_ACK },
    { IMCORE__ENVELOPE__BODY_HISTORY, IMCORE__TYPE__HISTORY },
    { IMCORE__ENVELOPE__BODY_HISTORY_RESULT, IMCORE__TYPE__HISTORY_RESULT },
    { IMCORE__ENVELOPE__BODY_GROUP_INVITE, IMCORE__TYPE__GROUP_INVITE },
    { IMCORE__ENVELOPE__BODY_GROUP_KICK, IMCORE__TYPE__GROUP_KICK },
    { IMCORE__ENVELOPE__BODY_GROUP_TRANSFER, IMCORE__TYPE__GROUP_TRANSFER },
    { IMCORE__ENVELOPE__BODY_GROUP_DELETE, IMCORE__TYPE__GROUP_DELETE },
};

Imcore__Type im_envelope_type_for(Imcore__Envelope__BodyCase c)
{
    for (size_t i = 0; i < sizeof type_of_body / sizeof type_of_body[0]; i++)
        if (type_of_body[i].body == c)
            return type_of_body[i].type;
    return IMCORE__TYPE__TYPE_UNSPECIFIED;
}

int im_frame_length(const uint8_t hdr[IM_FRAME_HEADER_BYTES], uint32_t max_frame, uint32_t *len)
{
    uint32_t n = ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) |
                 ((uint32_t)hdr[2] << 8) | (uint32_t)hdr[3];
    *len = n;
    if (n == 0 || n > max_frame)
        return IM_EFRAMESIZE;
    return IM_OK;
}

static int decode_with(ProtobufCAllocator *pa, const uint8_t *buf, size_t len,
                       Imcore__Envelope **out, im_error *err)
{
    *out = NULL;
    Imcore__Envelope *env = imcore__envelope__unpack(pa, len, buf);
    if (!env)
        return im_error_set(err, IM_EPROTO, "frame of %zu bytes is not an Envelope", len);
    if (env->body_case == IMCORE__ENVELOPE__BODY__NOT_SET) {
        imcore__envelope__free_unpacked(env, pa);
        return im_error_set(err, IM_EPROTO, "Envelope has no body");
    }
    Imcore__Type want = im_envelope_type_for(env->body_case);
    if (env->type != want) {
        int got = (int)env->type;
        imcore__envelope__free_unpacked(env, pa);
        return im_error_set(err, IM_EPROTO, "Envelope type %d does not match its body (%d)",
                            got, (int)want);
    }
    *out = env;
    return IM_OK;
}

int im_envelope_decode(const uint8_t *buf, size_t len, Imcore__Envelope **out, im_error *err)
{
    return decode_with(NULL, buf, len, out, err);
}

static void *arena_alloc(void *data, size_t size)
{
    im_decode_arena *a = data;
    size = (size + 15) & ~(size_t)15;
    if (size <= a->cap - a->used) {
        void *p = a->mem + a->used;
        a->used += size;
        return p;
    }
    a->spilled++;
    return malloc(size);
}

static void arena_free(void *data, void *p)
{
    im_decode_arena *a = data;
    uint8_t *b = p;
    if (b && (b < a->mem || b >= a->mem + a->cap))
        free(p);
}

int im_decode_arena_init(im_decode_arena *a, size_t cap)
{
    a->mem = malloc(cap);
    if (!a->mem)
        return IM_ENOMEM;
    a->cap = cap;
    a->used = 0;
    a->spilled = 0;
    a->allocator = (ProtobufCAllocator){ .alloc = arena_alloc, .free = arena_free,
                                         .allocator_data = a };
    return IM_OK;
}

void im_decode_arena_fini(im_decode_arena *a)
{
    free(a->mem);
    a->mem = NULL;
    a->cap = a->used = 0;
}

int im_envelope_decode_in(im_decode_arena *a, const uint8_t *buf, size_t len,
                          Imcore__Envelope **out, im_error *err)
{
    int rc = decode_with(&a->allocator, buf, len, out, err);
    if (rc != IM_OK) {
        a->used = 0; /* a failed decode freed what it spilled */
        a->spilled = 0;
    }
    return rc;
}

void im_envelope_release(im_decode_arena *a, Imcore__Envelope *env)
{
    /* Only spilled pieces need freeing; the rest goes with the reset. */
    if (env && a->spilled)
        imcore__envelope__free_unpacked(env, &a->allocator);
    a->used = 0;
    a->spilled = 0;
}

void im_envelope_free(Imcore__Envelope *env)
{
    if (env)
        imcore__envelope__free_unpacked(env, NULL);
}

size_t im_frame_size(const Imcore__Envelope *env)
{
    return IM_FRAME_HEADER_BYTES + imcore__envelope__get_packed_size(env);
}

/* Per field at most: a 2-byte tag and a 5-byte length, or a 2-byte tag and
 * a 10-byte varint. */
#define STR_BOUND(s) ((s) ? strlen(s) + 7 : 0)
#define INT_BOUND 12u

size_t im_frame_size_bound(const Imcore__Envelope *env)
{
    size_t body;
    switch (env->body_case) {
    case IMCORE__ENVELOPE__BODY_DELIVERY: {
        const Imcore__Delivery *d = env->delivery;
        body = STR_BOUND(d->from) + STR_BOUND(d->to) + STR_BOUND(d->group) +
               d->body.len + 7 + STR_BOUND(d->client_msg_id) + STR_BOUND(d->from_name) +
               STR_BOUND(d->conversation) + 4 * INT_BOUND;
        break;
    }
    case IMCORE__ENVELOPE__BODY_SEND_ACK:
        body = STR_BOUND(env->send_ack->client_msg_id) + 4 * INT_BOUND;
        break;
    case IMCORE__ENVELOPE__BODY_ERROR:
        body = STR_BOUND(env->error->message) + STR_BOUND(env->error->client_msg_id) + INT_BOUND;
        break;
    case IMCORE__ENVELOPE__BODY_PONG:
        body = 2 * INT_BOUND;
        break;
    case IMCORE__ENVELOPE__BODY_OK:
        body = 0;
        break;
    default:
        return im_frame_size(env);
    }
    /* type and request_id, the body's own tag and length, the header */
    return 2 * INT_BOUND + 7 + body + IM_FRAME_HEADER_BYTES;
}

size_t im_frame_pack(const Imcore__Envelope *env, uint8_t *out)
{
    size_t n = imcore__envelope__pack(env, out + IM_FRAME_HEADER_BYTES);
    out[0] = (uint8_t)(n >> 24);
    out[1] = (uint8_t)(n >> 16);
    out[2] = (uint8_t)(n >> 8);
    out[3] = (uint8_t)n;
    return n + IM_FRAME_HEADER_BYTES;
}

int im_frame_encode(const Imcore__Envelope *env, uint8_t **out, size_t *out_len)
{
    size_t size = im_frame_size(env);
    uint8_t *buf = malloc(size);
    if (!buf)
        return IM_ENOMEM;
    *out_len = im_frame_pack(env, buf);
    *out = buf;
    return IM_OK;
}

Imcore__ErrorCode im_wire_error_code(int im_code)
{
    int c = -im_code;
    if (c <= 0 || c > -IM_ERROR_CODE_LAST)
        return IMCORE__ERROR_CODE__INTERNAL;
    return (Imcore__ErrorCode)c;
}

int im_error_from_wire(Imcore__ErrorCode code)
{
    return code <= 0 ? IM_EIO : -(int)code;
}

/* The two enumerations must stay in step; a mismatch fails the build. */
_Static_assert(-IM_EBUSY == IMCORE__ERROR_CODE__BUSY, "errors.h and imcore.proto disagree");
_Static_assert(-IM_ENOSPC == IMCORE__ERROR_CODE__STORAGE_FULL, "errors.h and imcore.proto disagree");
_Static_assert(-IM_ENOTFOUND == IMCORE__ERROR_CODE__NOT_FOUND, "errors.h and imcore.proto disagree");
_Static_assert(-IM_EUSEREXISTS == IMCORE__ERROR_CODE__USER_EXISTS, "errors.h and imcore.proto disagree");
_Static_assert(-IM_EREFUSED == IMCORE__ERROR_CODE__REFUSED, "errors.h and imcore.proto disagree");
_Static_assert(-IM_EUNKNOWNUSER == IMCORE__ERROR_CODE__UNKNOWN_USER, "errors.h and imcore.proto disagree");
_Static_assert(-IM_EIDREUSED == IMCORE__ERROR_CODE__CLIENT_MSG_ID_REUSED, "errors.h and imcore.proto disagree");
_Static_assert(-IM_EPERM == IMCORE__ERROR_CODE__NOT_ALLOWED, "errors.h and imcore.proto disagree");
_Static_assert(-IM_ERROR_CODE_LAST == IMCORE__ERROR_CODE__QUOTA_EXCEEDED, "errors.h and imcore.proto disagree");
_Static_assert(-IM_EFRAMESIZE == IMCORE__ERROR_CODE__FRAME_TOO_LARGE, "errors.h and imcore.proto disagree");
_Static_assert(-IM_EDUPLICATE == IMCORE__ERROR_CODE__ALREADY_ONLINE, "errors.h and imcore.proto disagree");
