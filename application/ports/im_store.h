/* application/ports/im_store.h: the storage port. It is public, so that
 * storage adapters can be built outside imcore: the whole contract is in
 * include/imcore/storage.h. */
#ifndef IM_PORT_STORE_H
#define IM_PORT_STORE_H

#include "imcore/storage.h"

#endif
