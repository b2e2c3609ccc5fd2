/* tests/fakes/fault_store.c: see fault_store.h. */
#include "fault_store.h"

static int fault_append(im_store *s, im_message *m, im_error *err)
{
    fault_store *fs = (fault_store *)s;
    if (fs->fail_from && ++fs->calls >= fs->fail_from)
        return im_error_set(err, fs->code, "injected store failure");
    return im_store_append(fs->inner, m, err);
}

static void fault_destroy(im_store *s)
{
    (void)s; /* the decorator lives on the caller's stack */
}

static const struct im_store_ops fault_store_ops = {
    .name = "fault", .append = fault_append, .destroy = fault_destroy,
};

void fault_store_init(fault_store *fs, im_store *inner, unsigned fail_from, int code)
{
    fs->base.ops = &fault_store_ops;
    fs->inner = inner;
    fs->calls = 0;
    fs->fail_from = fail_from;
    fs->code = code;
}
