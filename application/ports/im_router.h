/* application/ports/im_router.h: the route port, in its three tables
 * (presence, delivery, replies). It is public, so that transports and
 * cluster adapters can be built outside imcore: the whole contract is in
 * include/imcore/route.h. */
#ifndef IM_PORT_ROUTER_H
#define IM_PORT_ROUTER_H

#include "imcore/route.h"
#include "domain/session.h"

#endif
