/* application/ports/im_filter.h: the message filter port. Judges every
 * message a user sends before it is stored: pass it, refuse it, or replace
 * its body. Plugins fill it (infrastructure/plugin_host).
 *
 * Called on the sender's worker, from any number of workers at once: the
 * adapter must be thread-safe and must not block. */
#ifndef IM_PORT_FILTER_H
#define IM_PORT_FILTER_H

#include <stddef.h>
#include <stdint.h>
#include "imcore/errors.h"
#include "domain/message.h"

typedef struct im_filter im_filter;

struct im_filter_ops {
    const char *name;
    /* Returns 0 to pass m unchanged; 1 when the body is replaced, with
     * *new_body pointing to the adapter's buffer (valid until the next call
     * on this thread) and *new_len its length (1..max_body); IM_EREFUSED
     * with the reason for the sender in err, or IM_EBUSY when the receiver
     * cannot take more now (the sender may try again). m is borrowed for
     * the call. */
    int (*check)(im_filter *f, const im_message *m, const uint8_t **new_body, size_t *new_len,
                 im_error *err);
};

struct im_filter { const struct im_filter_ops *ops; };

#endif
