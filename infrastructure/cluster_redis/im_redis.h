/* infrastructure/cluster_redis/im_redis.h: a link to Redis for the cluster:
 * commands from any thread, answered on the link's own thread, and stream
 * consumers that read with a consumer group (XREADGROUP ... BLOCK), hand
 * each entry over and XACK it.
 *
 * One thread of its own ("redis") runs a libevent loop with hiredis's
 * asynchronous API: one connection for commands and one per consumer (a
 * blocking read would hold up the commands behind it). No caller ever waits
 * for Redis.
 *
 * Faults. A connection that fails, or a command left unanswered for
 * command_timeout_ms, drops the connection: every command waiting on it is
 * answered IM_EIO, and the link reconnects with exponential backoff (100 ms
 * doubling to 5 s) and jitter, logging once per change of state (connected,
 * lost). Commands asked while it is down are answered IM_EIO at once:
 * Redis is not the durable path, and callers fall back (messages are in the
 * store before they are routed). A consumer whose group has gone (Redis
 * restarted without its data: NOGROUP) creates it again and reads on.
 *
 * Thread-safe: every function may be called from any thread, except that
 * im_redis_destroy must not be called from a callback. */
#ifndef IM_REDIS_H
#define IM_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>

#include "imcore/errors.h"

typedef struct im_redis im_redis;

typedef struct im_redis_config {
    const char *host;             /* an address literal or name; borrowed for the call */
    uint16_t port;
    const char *password;         /* NULL or "": no AUTH; borrowed for the call, kept
                                   * in memory for reconnects, never logged */
    unsigned connect_timeout_ms;  /* 0: 2000 */
    unsigned command_timeout_ms;  /* 0: 5000 */
} im_redis_config;

/* A command's answer, on the "redis" thread: rc 0 and the reply (borrowed
 * for the call; a Redis error reply is rc 0 with reply->type
 * REDIS_REPLY_ERROR), or rc IM_EIO (down, dropped, timed out) or
 * IM_ESHUTDOWN (destroyed first) with reply NULL and err saying why. */
typedef void (*im_redis_reply_fn)(void *arg, int rc, const redisReply *reply,
                                  const im_error *err);

/* One stream entry for a consumer: its id and its field/value pairs
 * (fields->element[0..elements), alternating), borrowed for the call. The
 * entry is XACKed after the call returns. */
typedef void (*im_redis_entry_fn)(void *arg, const char *id, const redisReply *fields);

/* Starts the thread; the first connection is made in the background (a
 * Redis that is not up yet is retried, never an error here). *out is the
 * caller's: im_redis_destroy. Errors: IM_EINVAL, IM_ENOMEM, IM_EIO. */
int im_redis_new(const im_redis_config *cfg, im_redis **out, im_error *err);

/* Sends the command argv[0..argc) (each argument len[i] bytes, or strlen
 * when len is NULL; copied). fn (may be NULL) runs exactly once, on the
 * "redis" thread, if this returns 0. Errors: IM_ENOMEM, IM_ESHUTDOWN. */
int im_redis_command(im_redis *r, im_redis_reply_fn fn, void *arg, int argc,
                     const char *const *argv, const size_t *len);

/* Reads stream with consumer group group as consumer, from entries not yet
 * delivered to the group (creating the group, and the stream, at "$" if
 * missing), handing each to fn on the "redis" thread, until destroy. At
 * most count entries per read. Strings copied; arg borrowed until destroy.
 * Errors: IM_ENOMEM, IM_EINVAL, IM_ESHUTDOWN. */
int im_redis_consume(im_redis *r, const char *stream, const char *group, const char *consumer,
                     unsigned count, im_redis_entry_fn fn, void *arg);

/* The same, but a group it has to create (the first time, or after Redis
 * lost it) starts at the stream's first entry ("0"), not at its end: what
 * others added between a Redis restart and the group's return is read too.
 * For a stream only this consumer's group reads, like a node's inbox. */
int im_redis_consume_all(im_redis *r, const char *stream, const char *group,
                         const char *consumer, unsigned count, im_redis_entry_fn fn, void *arg);

/* True while the command connection is up. */
bool im_redis_connected(im_redis *r);

/* How many times the command connection has come up (0 before the first):
 * a caller that sees it grow knows Redis may have lost what it had (a
 * restart) and writes its state again. */
uint64_t im_redis_connections(im_redis *r);

/* Stops the thread: waiting commands are answered IM_ESHUTDOWN; frees r.
 * NULL-safe. */
void im_redis_destroy(im_redis *r);

#endif
