/* interfaces/server/core_api.h: the core table (imcore/transport.h) the
 * server hands its transport, filled from the application and the domain. */
#ifndef IM_SERVER_CORE_API_H
#define IM_SERVER_CORE_API_H

#include "application/im_app.h"

/* Static: never free. */
const imcore_core_api *im_server_core_api(void);

#endif
