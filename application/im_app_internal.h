/* application/im_app_internal.h: what the application's files share and
 * nobody else sees. im_app.c owns struct im_app; the group use cases live
 * in im_app_groups.c and reach the app through these. */
#ifndef IM_APP_INTERNAL_H
#define IM_APP_INTERNAL_H

#include "im_app.h"

/* Borrowed: valid as long as app. */
const im_app_ports *im__app_ports(const im_app *app);

/* The wall clock, Unix milliseconds. */
uint64_t im__app_now_ms(const im_app *app);

/* At start: every group of the store into the group repository, each
 * rebuilt through the domain's rules. Errors: the store's, or IM_EIO for
 * a stored group the domain refuses. */
int im__app_load_groups(im_app *app, im_error *err);

#endif
