/* application/ports/im_store.h: the message store port.
 *
 * append() gives a message its place in its conversation (seq) and keeps it
 * as far as the adapter keeps anything. The "memory" adapter only numbers
 * messages; durable adapters (SQLite) keep them for offline delivery and
 * history. Thread-safe: any worker may call at once. */
#ifndef IM_PORT_STORE_H
#define IM_PORT_STORE_H

#include <stdint.h>
#include "imcore/errors.h"
#include "domain/message.h"

typedef struct im_store im_store;

struct im_store_ops {
    const char *name;
    /* Sets m->seq to the next number of m's conversation (1, 2, ...). The
     * store copies whatever it keeps; the caller still owns m.
     * Errors: IM_EINVAL (no conversation id), IM_ENOMEM, IM_EIO. */
    int (*append)(im_store *s, im_message *m, im_error *err);
    void (*destroy)(im_store *s); /* NULL-safe on s */
};

struct im_store { const struct im_store_ops *ops; };

static inline int im_store_append(im_store *s, im_message *m, im_error *err)
{ return s->ops->append(s, m, err); }

static inline void im_store_destroy(im_store *s)
{ if (s) s->ops->destroy(s); }

#endif
