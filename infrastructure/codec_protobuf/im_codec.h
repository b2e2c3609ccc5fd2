/* infrastructure/codec_protobuf/im_codec.h: frames on the wire.
 *
 * A frame is a 4-byte big-endian length N, then N bytes of one protobuf
 * Envelope (interfaces/protocol/imcore.proto). This module turns bytes into
 * Envelopes and back, and checks what protobuf alone does not: the length
 * against the limit before anything is allocated, and that an Envelope's type
 * agrees with the body it carries. It knows nothing of sockets or libevent,
 * so the server, the CLI and the bench share it. */
#ifndef IM_CODEC_H
#define IM_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include "imcore/errors.h"
#include "imcore.pb-c.h"

/* protobuf-c declares string fields `char *` and bytes fields `uint8_t *`,
 * even in a message that is only packed: packing reads them and nothing
 * more. An outgoing message may therefore borrow const strings, and these
 * two helpers are the one place where their const is dropped (through
 * uintptr_t, so that -Wcast-qual stays on for every other cast). Never use
 * them in a message that protobuf_c_message_free_unpacked() will free, or
 * whose fields anything writes through. */
static inline char *im_pb_str(const char *s) { return (char *)(uintptr_t)s; }
static inline uint8_t *im_pb_bytes(const void *p) { return (uint8_t *)(uintptr_t)p; }

#define IM_FRAME_HEADER_BYTES 4u
#define IM_DEFAULT_MAX_FRAME_BYTES 65536u

/* Reads the length prefix in hdr. Errors: IM_EFRAMESIZE when the length is 0
 * or above max_frame (*len is still set, for the error message). */
int im_frame_length(const uint8_t hdr[IM_FRAME_HEADER_BYTES], uint32_t max_frame,
                    uint32_t *len);

/* Decodes one Envelope from buf (the frame without its header). *out is the
 * caller's: free with im_envelope_free(). Errors: IM_EPROTO (does not decode,
 * unknown type, or type and body disagree), with the reason in err. */
int im_envelope_decode(const uint8_t *buf, size_t len, Imcore__Envelope **out, im_error *err);
void im_envelope_free(Imcore__Envelope *env); /* NULL is fine */

/* Scratch memory for decoding one frame at a time, so that the dozen small
 * allocations protobuf-c makes per Envelope are a pointer bump instead of
 * malloc and free. What does not fit spills to malloc. One per thread;
 * not thread-safe. */
typedef struct im_decode_arena {
    uint8_t *mem;
    size_t cap, used;
    unsigned spilled;            /* allocations that went to malloc */
    ProtobufCAllocator allocator;
} im_decode_arena;

/* Errors: IM_ENOMEM. */
int im_decode_arena_init(im_decode_arena *a, size_t cap);
void im_decode_arena_fini(im_decode_arena *a);

/* As im_envelope_decode, with *out in the arena: release it with
 * im_envelope_release before decoding the next. */
int im_envelope_decode_in(im_decode_arena *a, const uint8_t *buf, size_t len,
                          Imcore__Envelope **out, im_error *err);
void im_envelope_release(im_decode_arena *a, Imcore__Envelope *env); /* NULL is fine */

/* The whole frame size of env: header plus packed Envelope. */
size_t im_frame_size(const Imcore__Envelope *env);

/* An upper bound of im_frame_size(env), cheap to compute: for the frames
 * sent per message (Delivery, SendAck, Error, Ok, Pong) it adds up string
 * lengths instead of letting protobuf-c size every field, which it does
 * again while packing; for other bodies it is the exact size. Pack into a
 * buffer this big and use what im_frame_pack returns. */
size_t im_frame_size_bound(const Imcore__Envelope *env);

/* Writes header and Envelope into out (at least im_frame_size(env) bytes) and
 * returns the bytes written. env->type must already match its body. */
size_t im_frame_pack(const Imcore__Envelope *env, uint8_t *out);

/* Packs env into a new buffer: *out is the caller's to free(); *out_len gets
 * its size. Errors: IM_ENOMEM. */
int im_frame_encode(const Imcore__Envelope *env, uint8_t **out, size_t *out_len);

/* The Type that goes with body case c, or IMCORE__TYPE__TYPE_UNSPECIFIED. */
Imcore__Type im_envelope_type_for(Imcore__Envelope__BodyCase c);

/* The wire ErrorCode of an IM_E* code (they share numbers), and back. */
Imcore__ErrorCode im_wire_error_code(int im_code);
int im_error_from_wire(Imcore__ErrorCode code);

#endif
