/* infrastructure/store_memory/im_memory_store.h: in-memory adapters for the
 * store and group-repository ports. Nothing survives a restart: the store
 * numbers messages without keeping them, and groups and the plugins'
 * key-value map live as long as the process. The memory store is for a
 * server that needs no offline messages or history (storage: memory), and
 * for tests. Both are thread-safe. The store also keeps accounts and their
 * login-token hashes (the account operation), until the process ends. */
#ifndef IM_MEMORY_STORE_H
#define IM_MEMORY_STORE_H

#include "imcore/errors.h"
#include "application/ports/im_store.h"
#include "application/ports/im_group_repo.h"

/* *out is the caller's: release with im_store_destroy(). Errors: IM_ENOMEM. */
int im_memory_store_new(im_store **out, im_error *err);

/* *out is the caller's: release with (*out)->ops->destroy(*out). Errors: IM_ENOMEM. */
int im_memory_group_repo_new(im_group_repo **out, im_error *err);

/* For tests of what a listing costs: the tree nodes that visit() has
 * touched, over every call since r was made. */
size_t im_memory_group_repo_steps(im_group_repo *r);

#endif
