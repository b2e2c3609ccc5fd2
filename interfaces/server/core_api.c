/* interfaces/server/core_api.c: the table of imcore/transport.h that the
 * server hands its transport: the use cases of application/im_app.h, the
 * session rules of the domain and the log's thread names, as function
 * pointers. Wiring only: it knows no transport. */
#include "core_api.h"

#include "im_log.h"

static uint64_t session_id(const im_session *s)
{
    return s->id;
}

static const char *session_user_id(const im_session *s)
{
    return s->user_id;
}

static const imcore_core_api core_api = {
    .size = sizeof(imcore_core_api),
    .login = im_app_login,
    .logout = im_app_logout,
    .session_closed = im_app_session_closed,
    .send_private = im_app_send_private,
    .send_group = im_app_send_group,
    .group_create = im_app_group_create,
    .group_join = im_app_group_join,
    .group_leave = im_app_group_leave,
    .ack = im_app_ack,
    .group_list = im_app_group_list,
    .online_users = im_app_online_users,
    .history = im_app_history,
    .get_limits = im_app_get_limits,
    .session_size = sizeof(im_session),
    .session_init = im_session_init,
    .session_is_authenticated = im_session_is_authenticated,
    .session_is_idle = im_session_is_idle,
    .session_touch = im_session_touch,
    .session_id = session_id,
    .session_user_id = session_user_id,
    .log_thread_name = im_log_set_thread_name,
    .group_list_page = im_app_group_list_page,
    .online_users_page = im_app_online_users_page,
    .group_create_flags = im_app_group_create_flags,
    .group_invite = im_app_group_invite,
    .group_kick = im_app_group_kick,
    .group_transfer = im_app_group_transfer,
    .group_delete = im_app_group_delete,
    .logout_everywhere = im_app_logout_everywhere,
    .history_request = im_app_history_request,
};

const imcore_core_api *im_server_core_api(void)
{
    return &core_api;
}
