/* interfaces/bench/body.h: what the bench writes into a message, so that the
 * receiver alone can judge a delivery.
 *
 * A body is a 36-byte header followed by filler up to --size:
 *
 *   0  "IMB1"            magic
 *   4  u32 run           the run's random id: a message from an earlier run,
 *                        delivered again at login, is recognised as such
 *   8  u16 proc          driver process of the sender
 *  10  u8  kind          1 private, 2 group
 *  11  u8  reserved (0)
 *  12  u32 sender        the sender's index in its driver
 *  16  u32 target        private: the receiver's index; group: the group's index
 *  20  u32 counter       1, 2, 3 ... per conversation of this sender
 *  24  u64 intended_ns   CLOCK_MONOTONIC time the message was due to be sent
 *  32  u32 check         a hash of bytes 0..31
 *  36  filler            (counter * 31 + i) & 0xff, compared byte by byte
 *
 * Little-endian, fixed offsets: no allocation and no parsing library on the
 * hot path. Any change to the bytes on the way shows up as a bad check.
 *
 * The client_msg_id of a message (echoed in SendAck and Error) is
 * "<counter hex>.<intended_ns hex>": the ack alone gives the ack latency and
 * the conversation counter, with no table of messages in flight. */
#ifndef BENCH_BODY_H
#define BENCH_BODY_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_BODY_MIN 36u
#define BENCH_KIND_PRIVATE 1
#define BENCH_KIND_GROUP 2
#define BENCH_MSGID_MAX 40

typedef struct bench_body {
    uint32_t run;
    uint16_t proc;
    uint8_t kind;
    uint32_t sender;
    uint32_t target;
    uint32_t counter;
    uint64_t intended_ns;
} bench_body;

/* Writes b into buf, size bytes (>= BENCH_BODY_MIN). */
void bench_body_write(uint8_t *buf, size_t size, const bench_body *b);

/* Reads and verifies a body. Returns 0, or -1 when it is not a body the bench
 * wrote (too short, bad magic, bad check). */
int bench_body_read(const uint8_t *buf, size_t len, bench_body *b);

/* Writes the client_msg_id of (counter, intended_ns) into out
 * (BENCH_MSGID_MAX bytes) and returns its length. */
size_t bench_msgid_format(char *out, uint32_t counter, uint64_t intended_ns);

/* Reads one back. Returns 0, or -1 if s is not one of ours. */
int bench_msgid_parse(const char *s, uint32_t *counter, uint64_t *intended_ns);

#endif
