/* domain/user.h: what makes a user id and a display name acceptable.
 * Pure rules on strings: no storage, no I/O. */
#ifndef IM_DOMAIN_USER_H
#define IM_DOMAIN_USER_H

#include <stdbool.h>
#include <stddef.h>
#include "imcore/errors.h"
#include "imcore/message.h" /* IM_USER_ID_MAX, IM_DISPLAY_NAME_MAX */

/* A user id is 1..IM_USER_ID_MAX characters of [A-Za-z0-9_.-], not starting
 * with '.' or '-'. Ids are case-sensitive. The same rule names groups. */
bool im_user_id_is_valid(const char *id);

/* Returns 0 or IM_EINVAL with a sentence in err saying what is wrong. */
int im_user_id_check(const char *id, im_error *err);

/* A display name is 0..IM_DISPLAY_NAME_MAX bytes of valid UTF-8 without
 * control characters (C0, DEL and C1). Empty, or NULL, means "use the id".
 * Returns 0 or IM_EINVAL. */
int im_display_name_check(const char *name, im_error *err);

#define IM_PASSWORD_MIN 8     /* bytes */
#define IM_PASSWORD_MAX 1024  /* bytes: bounds the work of hashing one */

/* A password is IM_PASSWORD_MIN..IM_PASSWORD_MAX bytes; any bytes but NUL.
 * Returns 0 or IM_EINVAL saying which bound it missed (never the password). */
int im_password_check(const char *password, im_error *err);

#endif
