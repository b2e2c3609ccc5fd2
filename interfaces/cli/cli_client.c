/* interfaces/cli/cli_client.c: the client's side of the imcore protocol.
 *
 * States: IDLE (waiting to reconnect) -> CONNECTING -> LOGGING_IN -> ONLINE
 * -> LOGGING_OUT -> DONE. Any loss of the connection before DONE goes back to
 * IDLE with a backoff timer, unless the user asked to quit or the server said
 * the session must not come back (SESSION_REPLACED, ALREADY_ONLINE).
 *
 * Commands wait in `queue` until a session exists; once sent they wait in
 * `pending` for their answer, matched by request_id. A request in flight when
 * the connection drops is reported as not confirmed and not sent again: the
 * user decides, since the server may or may not have acted on it.
 *
 * What arrives is acked (DeliveryAck, cumulative per conversation) once per
 * batch of frames read, so a burst costs one ack per conversation.
 *
 * On a terminal (o->interactive) the client talks to a person: a lost
 * connection is one status line and its details go to the log at info; a
 * first connection that finds no server gives up; each message sent shows
 * its delivery state. Off a terminal every output stays what scripts read.
 *
 * :leave first looks the group up (GroupList), since the last member leaving
 * deletes the group with its history: it then asks for :leave! instead.
 * Commands typed meanwhile wait in the queue, so they still go out in the
 * order typed. */
#include "cli_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "cli_inbox.h"
#include "cli_names.h"
#include "cli_print.h"
#include "cli_secret.h"
#include "im_codec.h"
#include "im_log.h"
#include "im_tls_client.h"

/* The largest frame accepted from a server, whatever it announces: the
 * length is checked against it before anything is allocated. */
#define CLI_MAX_FRAME_BYTES (16u * 1024u * 1024u)
/* Connecting and logging in must each finish within this. */
#define CLI_LOGIN_TIMEOUT_S 10
/* Used when a server announces no heartbeat period. */
#define CLI_DEFAULT_HEARTBEAT_S 30u
/* Reconnect delays: full jitter over min(cap, first << attempt). */
#define CLI_BACKOFF_FIRST_MS 100u
#define CLI_BACKOFF_CAP_MS 5000u
/* After the input ends, answers are awaited this long; after Logout, its Ok. */
#define CLI_DRAIN_TIMEOUT_S 5
#define CLI_LOGOUT_TIMEOUT_S 2
/* Commands kept while there is no session; more are refused, not buffered. */
#define CLI_QUEUE_MAX 10000u
/* The largest body before a server has told its own (docs/protocol.md:
 * limits.max_body_bytes defaults to 8192). */
#define CLI_DEFAULT_MAX_BODY 8192u
/* On a terminal, the first connection gives up after this many attempts
 * that found no server, unless --stay. */
#define CLI_FIRST_CONNECT_TRIES 4u

/* Log lines that a person at a terminal need not see: at warn for scripts
 * (whose stderr is a log), at info on a terminal, where a status line on
 * stdout says the same in a few words. */
#define CLI_DETAIL(c, ...)                                        \
    do {                                                          \
        im_log_level lvl_ = (c)->o->interactive ? IM_LOG_INFO : IM_LOG_WARN; \
        if (IM_LOG_ENABLED(lvl_))                                 \
            im_log(lvl_, __VA_ARGS__);                            \
    } while (0)

enum state { ST_IDLE, ST_CONNECTING, ST_LOGGING_IN, ST_ONLINE, ST_LOGGING_OUT, ST_DONE };

/* A command sent and not yet answered. A :history whose answer comes in
 * pages waits under the request id of its latest page. */
typedef struct pending {
    struct pending *next;
    uint64_t request_id;
    cli_command *cmd;
    char client_msg_id[96]; /* messages only */
    Imcore__Delivery **msgs; /* :history: the pages so far, oldest first (owned) */
    size_t nmsgs;
    size_t shown;            /* :groups, :olu: entries printed so far */
    char after[128];         /* :groups, :olu, a :leave's look-up: the cursor asked for */
    bool leave_check;        /* :leave: GroupList asked for, the GroupLeave not yet sent */
} pending;

struct cli_client {
    struct event_base *base;
    const cli_options *o;
    struct sockaddr_storage addr;
    int addr_len;

    enum state state;
    struct bufferevent *bev;
    SSL_CTX *tls;        /* --tls: the context every connection is made from */
    SSL_SESSION *tls_session; /* the last connection's, offered again to resume */
    struct event *ping_timer;
    struct event *reconnect_timer;
    struct event *drain_timer;
    struct event *logout_timer;

    uint64_t next_request_id;
    uint64_t msg_counter;
    /* The middle of this run's client_msg_ids, USER-NONCE-COUNTER: random
     * (48 bits), since the server refuses an id used before for another
     * message, and a pid comes round again. */
    uint64_t id_nonce;
    uint64_t login_rid;
    uint64_t logout_rid;
    unsigned heartbeat_s;
    unsigned attempt; /* connections lost since the last healthy session */
    uint64_t rng;

    cli_command *queue_head, **queue_tail;
    size_t queued;
    bool held;           /* a :leave is being looked up: later commands wait in the queue */
    pending *pend_head, **pend_tail;
    cli_inbox *inbox;
    cli_names *names;    /* borrowed, may be NULL: what completion offers */
    uint32_t max_body;   /* the server's max_body_bytes, or the default before a login */
    unsigned first_failures; /* connections that found no server before any login */
    bool said_down;      /* "* disconnected" was printed and no session since */

    char password[CLI_SECRET_MAX];
    char token[256];     /* from the last LoginAck: how to log in again */
    bool login_by_token; /* the Login in flight used token */
    bool logged_in_once; /* --register applies to the first login only */

    bool draining;       /* input ended or :q before login: log out once all is answered */
    bool quit_requested; /* no new commands are taken */
    bool logout_everywhere; /* :logout-all: the Logout revokes every token */
    int exit_code;
};

static void start_connect(cli_client *c);

/* ---- small helpers ---------------------------------------------------- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* xorshift64*: jitter needs spread, not secrecy. */
static uint32_t next_random(cli_client *c)
{
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return (uint32_t)((c->rng * 0x2545F4914F6CDD1DULL) >> 32);
}

static const char *server_name(const cli_client *c, char *buf, size_t n)
{
    snprintf(buf, n, "%s:%u", c->o->host, c->o->port);
    return buf;
}

static void arm_timer(struct event *ev, unsigned ms)
{
    struct timeval tv = { .tv_sec = ms / 1000u, .tv_usec = (ms % 1000u) * 1000u };
    evtimer_add(ev, &tv);
}

static void queue_push(cli_client *c, cli_command *cmd)
{
    cmd->next = NULL;
    *c->queue_tail = cmd;
    c->queue_tail = &cmd->next;
    c->queued++;
}

static cli_command *queue_pop(cli_client *c)
{
    cli_command *cmd = c->queue_head;
    if (cmd) {
        c->queue_head = cmd->next;
        if (!c->queue_head)
            c->queue_tail = &c->queue_head;
        c->queued--;
        cmd->next = NULL;
    }
    return cmd;
}

static void pending_push(cli_client *c, pending *p)
{
    p->next = NULL;
    *c->pend_tail = p;
    c->pend_tail = &p->next;
}

/* Removes and returns the request with this id, or NULL. */
static pending *pending_take(cli_client *c, uint64_t rid)
{
    for (pending **pp = &c->pend_head; *pp; pp = &(*pp)->next) {
        pending *p = *pp;
        if (p->request_id != rid)
            continue;
        *pp = p->next;
        if (c->pend_tail == &p->next)
            c->pend_tail = pp;
        return p;
    }
    return NULL;
}

static void pending_free(pending *p)
{
    for (size_t i = 0; i < p->nmsgs; i++)
        imcore__delivery__free_unpacked(p->msgs[i], NULL);
    free(p->msgs);
    cli_command_free(p->cmd);
    free(p);
}

/* Every request in flight is lost with its connection: say which. */
static void report_unconfirmed(cli_client *c)
{
    pending *p;
    c->held = false; /* a :leave being looked up is lost too */
    while ((p = c->pend_head) != NULL) {
        c->pend_head = p->next;
        cli_print("! not confirmed: %s", p->cmd->line);
        pending_free(p);
    }
    c->pend_tail = &c->pend_head;
}

static void report_unsent(cli_client *c)
{
    cli_command *cmd;
    while ((cmd = queue_pop(c)) != NULL) {
        cli_print("! not sent: %s", cmd->line);
        cli_command_free(cmd);
    }
}

/* ---- the connection ----------------------------------------------------- */

static void drop_connection(cli_client *c)
{
    if (c->bev && c->tls) {
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        SSL_SESSION *sess = ssl ? SSL_get1_session(ssl) : NULL;
        if (sess) {
            SSL_SESSION_free(c->tls_session);
            c->tls_session = sess;
        }
    }
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    evtimer_del(c->ping_timer);
}

static void finish(cli_client *c, int code)
{
    if (c->state == ST_DONE)
        return;
    c->state = ST_DONE;
    c->exit_code = code;
    report_unconfirmed(c);
    report_unsent(c);
    drop_connection(c);
    evtimer_del(c->reconnect_timer);
    evtimer_del(c->drain_timer);
    evtimer_del(c->logout_timer);
    event_base_loopexit(c->base, NULL);
}

static void schedule_reconnect(cli_client *c)
{
    unsigned shift = c->attempt < 16 ? c->attempt : 16;
    uint64_t ceiling = (uint64_t)CLI_BACKOFF_FIRST_MS << shift;
    if (ceiling > CLI_BACKOFF_CAP_MS)
        ceiling = CLI_BACKOFF_CAP_MS;
    unsigned delay = 1u + next_random(c) % (unsigned)ceiling;
    c->attempt++;
    c->state = ST_IDLE;
    CLI_DETAIL(c, "* reconnecting in %u ms", delay);
    arm_timer(c->reconnect_timer, delay);
}

/* The connection is gone (or unusable): report what it took with it and,
 * unless we are leaving, try again later. */
static void connection_lost(cli_client *c, const char *why)
{
    enum state was = c->state;
    char name[80];
    drop_connection(c);
    if (was == ST_DONE)
        return;
    if (was == ST_LOGGING_OUT) {
        finish(c, 0);
        return;
    }
    if (was == ST_ONLINE)
        CLI_DETAIL(c, "connection to %s lost: %s", server_name(c, name, sizeof name), why);
    else if (was == ST_LOGGING_IN)
        CLI_DETAIL(c, "login at %s failed: %s", server_name(c, name, sizeof name), why);
    else
        CLI_DETAIL(c, "cannot connect to %s: %s", server_name(c, name, sizeof name), why);
    report_unconfirmed(c);
    if (c->o->interactive && c->logged_in_once && !c->said_down) {
        cli_print("* disconnected, retrying\xe2\x80\xa6"); /* U+2026 */
        c->said_down = true;
    }
    /* A person who typed a wrong host or port is told so, not kept waiting;
     * a script (or --stay) waits for a server that may be starting. */
    if (c->o->interactive && !c->logged_in_once && was == ST_CONNECTING &&
        ++c->first_failures == CLI_FIRST_CONNECT_TRIES) {
        cli_print("! no server at %s (is it running?)%s", server_name(c, name, sizeof name),
                  c->o->stay ? ": still trying (--stay)" : "");
        if (!c->o->stay) {
            finish(c, 1);
            return;
        }
    }
    schedule_reconnect(c);
}

/* Frames one Envelope onto the connection; env->type is set from its body. */
static int send_envelope(cli_client *c, Imcore__Envelope *env)
{
    env->type = im_envelope_type_for(env->body_case);
    uint8_t *frame = NULL;
    size_t len = 0;
    int rc = im_frame_encode(env, &frame, &len);
    if (rc != 0) {
        IM_ERROR("cannot encode a request: out of memory");
        return rc;
    }
    rc = bufferevent_write(c->bev, frame, len) == 0 ? 0 : IM_ENOMEM;
    free(frame);
    if (rc != 0)
        IM_ERROR("cannot queue %zu bytes for the server", len);
    return rc;
}

static void send_login(cli_client *c)
{
    Imcore__Login login = IMCORE__LOGIN__INIT;
    login.user_id = im_pb_str(c->o->user);
    login.display_name = im_pb_str(c->o->name);
    login.client_version = "imcore-cli " IMCORE_CLI_VERSION;
    c->login_by_token = c->token[0] != '\0';
    if (c->login_by_token) {
        login.token = c->token;
    } else {
        login.password = c->password;
        login.create_account = c->o->register_account && !c->logged_in_once;
    }
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.request_id = c->login_rid = c->next_request_id++;
    env.body_case = IMCORE__ENVELOPE__BODY_LOGIN;
    env.login = &login;
    if (send_envelope(c, &env) != 0)
        connection_lost(c, "cannot send Login");
}

static void logout(cli_client *c)
{
    if (c->state != ST_ONLINE) {
        finish(c, 0);
        return;
    }
    c->quit_requested = true;
    Imcore__Logout body = IMCORE__LOGOUT__INIT;
    body.everywhere = c->logout_everywhere;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.request_id = c->logout_rid = c->next_request_id++;
    env.body_case = IMCORE__ENVELOPE__BODY_LOGOUT;
    env.logout = &body;
    c->state = ST_LOGGING_OUT;
    evtimer_del(c->ping_timer);
    if (send_envelope(c, &env) != 0) {
        finish(c, 0);
        return;
    }
    arm_timer(c->logout_timer, CLI_LOGOUT_TIMEOUT_S * 1000u);
}

/* Draining ends, with a logout, once nothing is left to send or to hear. */
static void check_drained(cli_client *c)
{
    if (c->draining && c->state == ST_ONLINE && !c->queue_head && !c->pend_head)
        logout(c);
}

/* The History request of a :history command, for the messages before
 * before_seq (0: the newest). */
static void fill_history(Imcore__History *h, const cli_command *cmd, uint64_t before_seq,
                         uint32_t limit)
{
    if (cmd->scope == '@')
        h->peer = im_pb_str(cmd->target);
    else
        h->group = im_pb_str(cmd->target);
    h->before_seq = before_seq;
    h->limit = limit;
}

/* A message over the server's max_body_bytes is refused here, with its
 * size, rather than sent for the server to refuse. */
static bool too_long(const cli_client *c, const cli_command *cmd)
{
    if (cmd->kind != CLI_CMD_PRIVATE && cmd->kind != CLI_CMD_GROUP)
        return false;
    size_t n = strlen(cmd->text);
    if (n <= c->max_body)
        return false;
    cli_print("! not sent: the message is %zu bytes, over the limit of %u (max_body_bytes)", n,
              c->max_body);
    return true;
}

/* The GroupList that looks a :leave's group up: from the id just before it
 * (the group's id without its last byte sorts before it, and few ids sort
 * between the two). */
static void fill_leave_check(Imcore__GroupList *gl, pending *p)
{
    size_t n = strlen(p->cmd->target);
    if (n >= sizeof p->after)
        n = sizeof p->after - 1;
    memcpy(p->after, p->cmd->target, n ? n - 1 : 0);
    p->after[n ? n - 1 : 0] = '\0';
    gl->after = p->after;
}

/* Sends cmd as its request and keeps it until the answer comes. */
static void send_command(cli_client *c, cli_command *cmd)
{
    if (too_long(c, cmd)) {
        cli_command_free(cmd);
        return;
    }
    if (cmd->kind == CLI_CMD_QUIT || cmd->kind == CLI_CMD_LOGOUT_ALL) {
        c->logout_everywhere = cmd->kind == CLI_CMD_LOGOUT_ALL;
        cli_command_free(cmd);
        logout(c);
        return;
    }
    if (cmd->kind == CLI_CMD_HELP) { /* main.c answers it; harmless here */
        cli_command_free(cmd);
        return;
    }
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        cli_print("! not sent (out of memory): %s", cmd->line);
        cli_command_free(cmd);
        return;
    }
    p->cmd = cmd;
    p->request_id = c->next_request_id++;

    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.request_id = p->request_id;
    Imcore__PrivateMessage pm = IMCORE__PRIVATE_MESSAGE__INIT;
    Imcore__GroupMessage gm = IMCORE__GROUP_MESSAGE__INIT;
    Imcore__GroupCreate gc = IMCORE__GROUP_CREATE__INIT;
    Imcore__GroupJoin gj = IMCORE__GROUP_JOIN__INIT;
    Imcore__GroupLeave gl = IMCORE__GROUP_LEAVE__INIT;
    Imcore__GroupList glist = IMCORE__GROUP_LIST__INIT;
    Imcore__OnlineUsers ou = IMCORE__ONLINE_USERS__INIT;
    Imcore__History hist = IMCORE__HISTORY__INIT;
    Imcore__GroupInvite gi = IMCORE__GROUP_INVITE__INIT;
    Imcore__GroupKick gk = IMCORE__GROUP_KICK__INIT;
    Imcore__GroupTransfer gt = IMCORE__GROUP_TRANSFER__INIT;
    Imcore__GroupDelete gd = IMCORE__GROUP_DELETE__INIT;
    ProtobufCBinaryData body = { strlen(cmd->text), im_pb_bytes(cmd->text) };

    switch (cmd->kind) {
    case CLI_CMD_PRIVATE:
    case CLI_CMD_GROUP:
        snprintf(p->client_msg_id, sizeof p->client_msg_id, "%s-%llu-%llu", c->o->user,
                 (unsigned long long)c->id_nonce, (unsigned long long)++c->msg_counter);
        if (cmd->kind == CLI_CMD_PRIVATE) {
            pm.to = im_pb_str(cmd->target);
            pm.body = body;
            pm.client_msg_id = p->client_msg_id;
            env.body_case = IMCORE__ENVELOPE__BODY_PRIVATE_MESSAGE;
            env.private_message = &pm;
        } else {
            gm.group = im_pb_str(cmd->target);
            gm.body = body;
            gm.client_msg_id = p->client_msg_id;
            env.body_case = IMCORE__ENVELOPE__BODY_GROUP_MESSAGE;
            env.group_message = &gm;
        }
        break;
    case CLI_CMD_CREATE:
        gc.group = im_pb_str(cmd->target);
        gc.max_members = cmd->number;
        gc.is_private = (cmd->flags & CLI_CREATE_PRIVATE) != 0;
        gc.share_history = (cmd->flags & CLI_CREATE_SHARED) != 0;
        env.body_case = IMCORE__ENVELOPE__BODY_GROUP_CREATE;
        env.group_create = &gc;
        break;
    case CLI_CMD_JOIN:
        gj.group = im_pb_str(cmd->target);
        env.body_case = IMCORE__ENVELOPE__BODY_GROUP_JOIN;
        env.group_join = &gj;
        break;
    case CLI_CMD_LEAVE:
        if (!(cmd->flags & CLI_LEAVE_ANYWAY)) {
            fill_leave_check(&glist, p);
            p->leave_check = true;
            c->held = true;
            env.body_case = IMCORE__ENVELOPE__BODY_GROUP_LIST;
            env.group_list = &glist;
            break;
        }
        gl.group = im_pb_str(cmd->target);
        env.body_case = IMCORE__ENVELOPE__BODY_GROUP_LEAVE;
        env.group_leave = &gl;
        break;
    case CLI_CMD_GROUPS:
        env.body_case = IMCORE__ENVELOPE__BODY_GROUP_LIST;
        env.group_list = &glist;
        break;
    case CLI_CMD_INVITE:
        gi.group = im_pb_str(cmd->target);
        gi.user = im_pb_str(cmd->user);
        env.body_case = IMCORE__ENVELOPE__BODY_GROUP_INVITE;
        env.group_invite = &gi;
        break;
    case CLI_CMD_KICK:
        gk.group = im_pb_str(cmd->target);
        gk.user = im_pb_str(cmd->user);
        env.body_case = IMCORE__ENVELOPE__BODY_GROUP_KICK;
        env.group_kick = &gk;
        break;
    case CLI_CMD_OWNER:
        gt.group = im_pb_str(cmd->target);
        gt.user = im_pb_str(cmd->user);
        env.body_case = IMCORE__ENVELOPE__BODY_GROUP_TRANSFER;
        env.group_transfer = &gt;
        break;
    case CLI_CMD_DELETE:
        gd.group = im_pb_str(cmd->target);
        env.body_case = IMCORE__ENVELOPE__BODY_GROUP_DELETE;
        env.group_delete = &gd;
        break;
    case CLI_CMD_ONLINE:
        env.body_case = IMCORE__ENVELOPE__BODY_ONLINE_USERS;
        env.online_users = &ou;
        break;
    case CLI_CMD_HISTORY:
        fill_history(&hist, cmd, 0, cmd->number);
        env.body_case = IMCORE__ENVELOPE__BODY_HISTORY;
        env.history = &hist;
        break;
    default:
        pending_free(p);
        return;
    }
    if (send_envelope(c, &env) != 0) {
        cli_print("! not sent: %s", cmd->line);
        c->held = false;
        pending_free(p);
        return;
    }
    pending_push(c, p);
}

static void flush_queue(cli_client *c)
{
    cli_command *cmd;
    while (c->state == ST_ONLINE && !c->held && (cmd = queue_pop(c)) != NULL)
        send_command(c, cmd);
}

/* ---- answers from the server ------------------------------------------ */

/* Errors after which logging in again cannot help. */
static bool is_final_error(Imcore__ErrorCode code)
{
    return code == IMCORE__ERROR_CODE__SESSION_REPLACED ||
           code == IMCORE__ERROR_CODE__ALREADY_ONLINE;
}

/* Errors that a Login can get and that retrying would only repeat. */
static bool is_login_refusal(Imcore__ErrorCode code)
{
    switch (code) {
    case IMCORE__ERROR_CODE__SESSION_REPLACED:
    case IMCORE__ERROR_CODE__ALREADY_ONLINE:
    case IMCORE__ERROR_CODE__INVALID_ARGUMENT:
    case IMCORE__ERROR_CODE__UNSUPPORTED:
    case IMCORE__ERROR_CODE__BAD_CREDENTIALS:
    case IMCORE__ERROR_CODE__NOT_FOUND:
    case IMCORE__ERROR_CODE__USER_EXISTS:
    case IMCORE__ERROR_CODE__REFUSED:     /* e.g. a plugin's service account */
    case IMCORE__ERROR_CODE__NOT_ALLOWED:
        return true;
    default:
        return false;
    }
}

/* Errors the server sends just before it closes the connection. */
static bool closes_connection(Imcore__ErrorCode code)
{
    switch (code) {
    case IMCORE__ERROR_CODE__BAD_FRAME:
    case IMCORE__ERROR_CODE__FRAME_TOO_LARGE:
    case IMCORE__ERROR_CODE__SESSION_REPLACED:
    case IMCORE__ERROR_CODE__IDLE_TIMEOUT:
    case IMCORE__ERROR_CODE__SERVER_SHUTDOWN:
    case IMCORE__ERROR_CODE__ALREADY_ONLINE:
        return true;
    default:
        return false;
    }
}

static void on_login_ack(cli_client *c, uint64_t rid, const Imcore__LoginAck *ack)
{
    if (c->state != ST_LOGGING_IN || rid != c->login_rid) {
        IM_WARN("unexpected LoginAck (request %llu): ignored", (unsigned long long)rid);
        return;
    }
    c->state = ST_ONLINE;
    cli_inbox_new_session(c->inbox);
    c->heartbeat_s = ack->heartbeat_s ? ack->heartbeat_s : CLI_DEFAULT_HEARTBEAT_S;
    /* Silence for three heartbeats means the connection is dead even if TCP
     * has not noticed: the server answers every Ping. */
    struct timeval watchdog = { .tv_sec = 3 * (time_t)c->heartbeat_s };
    bufferevent_set_timeouts(c->bev, &watchdog, &watchdog);
    arm_timer(c->ping_timer, c->heartbeat_s * 1000u);
    c->logged_in_once = true;
    if (ack->token && ack->token[0] && strlen(ack->token) < sizeof c->token)
        snprintf(c->token, sizeof c->token, "%s", ack->token);
    c->max_body = ack->max_body_bytes ? ack->max_body_bytes : CLI_DEFAULT_MAX_BODY;
    c->first_failures = 0;
    const char *user = ack->user_id && ack->user_id[0] ? ack->user_id : c->o->user;
    if (c->o->interactive && c->said_down)
        cli_print("* reconnected (session %llu)", (unsigned long long)ack->session_id);
    else
        cli_print("* logged in as %s (session %llu)", user, (unsigned long long)ack->session_id);
    c->said_down = false;
    IM_INFO("session %llu on node %s: heartbeat %u s, frames up to %u bytes, bodies up to %u",
            (unsigned long long)ack->session_id, ack->node_id ? ack->node_id : "?",
            c->heartbeat_s, ack->max_frame_bytes, ack->max_body_bytes);
    flush_queue(c);
    check_drained(c);
}

static void on_error(cli_client *c, uint64_t rid, const Imcore__Error *e)
{
    if (rid != 0 && rid == c->login_rid && c->state == ST_LOGGING_IN) {
        if (c->login_by_token && (e->code == IMCORE__ERROR_CODE__BAD_CREDENTIALS ||
                                  e->code == IMCORE__ERROR_CODE__NOT_FOUND)) {
            /* The token expired or the server forgot it: the password is
             * the way back in, on a new connection. */
            IM_WARN("session token refused (%s): logging in with the password",
                    cli_error_name((int)e->code));
            cli_secret_wipe(c->token, sizeof c->token);
            connection_lost(c, "token refused");
            return;
        }
        cli_print_error(e);
        if (is_login_refusal(e->code))
            finish(c, 1);
        else
            connection_lost(c, "login failed");
        return;
    }
    if (rid != 0 && rid == c->logout_rid && c->state == ST_LOGGING_OUT) {
        cli_print_error(e);
        finish(c, 0);
        return;
    }
    if (rid != 0) {
        pending *p = pending_take(c, rid);
        cli_print_error(e);
        if (p) {
            if (p->leave_check) {
                cli_print("! not left (the group could not be looked up): %s", p->cmd->line);
                c->held = false;
            }
            pending_free(p);
            flush_queue(c);
        }
        check_drained(c);
        return;
    }
    /* Request id 0: about the connection itself. */
    cli_print_error(e);
    if (is_final_error(e->code))
        finish(c, 1);
    else if (closes_connection(e->code))
        connection_lost(c, cli_error_name((int)e->code));
}

/* Asks for the next page of p's answer with env (its body set): p waits
 * again, under a new request id. Returns false, having said so, if the
 * request could not be sent; p is then the caller's to free. */
static bool request_next_page(cli_client *c, pending *p, Imcore__Envelope *env)
{
    p->request_id = c->next_request_id++;
    env->request_id = p->request_id;
    if (send_envelope(c, env) != 0) {
        cli_print("! not sent (the rest of): %s", p->cmd->line);
        return false;
    }
    pending_push(c, p);
    return true;
}

/* A copy of d that the client owns: free with imcore__delivery__free_unpacked. */
static Imcore__Delivery *delivery_copy(const Imcore__Delivery *d)
{
    size_t n = imcore__delivery__get_packed_size(d);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return NULL;
    imcore__delivery__pack(d, buf);
    Imcore__Delivery *copy = imcore__delivery__unpack(NULL, n, buf);
    free(buf);
    return copy;
}

/* One page of a :history. A page the server cut to fit its frame
 * (truncated) holds the newest of the messages asked for; the older ones
 * are asked for before its smallest seq, and the whole is printed, oldest
 * first, once it is complete. Returns true if p waits for another page. */
static bool on_history_page(cli_client *c, pending *p, const Imcore__HistoryResult *r)
{
    uint32_t wanted = p->cmd->number ? p->cmd->number : 20; /* the protocol's default */
    /* This page is older than those before it: it goes first. */
    Imcore__Delivery **all = malloc((r->n_messages + p->nmsgs + 1) * sizeof *all);
    size_t k = 0;
    while (all && k < r->n_messages && (all[k] = delivery_copy(r->messages[k])) != NULL)
        k++;
    if (!all || k < r->n_messages) {
        while (all && k > 0)
            imcore__delivery__free_unpacked(all[--k], NULL);
        free(all);
        cli_print("! out of memory: %s", p->cmd->line);
        return false;
    }
    if (p->nmsgs)
        memcpy(all + k, p->msgs, p->nmsgs * sizeof *all);
    free(p->msgs);
    p->msgs = all;
    p->nmsgs += k;
    if (r->truncated && r->n_messages > 0 && p->nmsgs < wanted) {
        Imcore__History hist = IMCORE__HISTORY__INIT;
        fill_history(&hist, p->cmd, r->messages[0]->seq, wanted - (uint32_t)p->nmsgs);
        Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
        env.body_case = IMCORE__ENVELOPE__BODY_HISTORY;
        env.history = &hist;
        return request_next_page(c, p, &env);
    }
    Imcore__HistoryResult whole = IMCORE__HISTORY_RESULT__INIT;
    whole.n_messages = p->nmsgs;
    whole.messages = p->msgs;
    cli_print_history(&whole, c->o->user);
    return false;
}

/* A listing's page has been printed (n entries, then next_after): asks for
 * the next one if the server says there is one, and returns true if p
 * waits for it. A cursor that does not move forward, or does not fit,
 * ends the listing as it is. */
static bool want_next_list_page(cli_client *c, pending *p, size_t n, const char *next_after)
{
    p->shown += n;
    if (!next_after || !next_after[0] || n == 0 || strcmp(next_after, p->after) <= 0 ||
        strlen(next_after) >= sizeof p->after)
        return false;
    snprintf(p->after, sizeof p->after, "%s", next_after);
    Imcore__GroupList glist = IMCORE__GROUP_LIST__INIT;
    Imcore__OnlineUsers ou = IMCORE__ONLINE_USERS__INIT;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    if (p->cmd->kind == CLI_CMD_GROUPS) {
        glist.after = p->after;
        env.body_case = IMCORE__ENVELOPE__BODY_GROUP_LIST;
        env.group_list = &glist;
    } else {
        ou.after = p->after;
        env.body_case = IMCORE__ENVELOPE__BODY_ONLINE_USERS;
        env.online_users = &ou;
    }
    return request_next_page(c, p, &env);
}

/* A page of the GroupList that looks up a :leave's group. Returns true if
 * p waits again (for another page, or for the GroupLeave's Ok); false if p
 * is done with and the caller frees it. */
static bool on_leave_check(cli_client *c, pending *p, const Imcore__GroupListResult *r)
{
    const char *target = p->cmd->target;
    const Imcore__GroupInfo *found = NULL;
    bool passed = false;
    for (size_t i = 0; i < r->n_groups && !found && !passed; i++) {
        int cmp = strcmp(r->groups[i]->group ? r->groups[i]->group : "", target);
        if (cmp == 0)
            found = r->groups[i];
        passed = cmp > 0;
    }
    if (!found && !passed && r->n_groups > 0 && r->next_after && r->next_after[0] &&
        strcmp(r->next_after, p->after) > 0 && strlen(r->next_after) < sizeof p->after) {
        snprintf(p->after, sizeof p->after, "%s", r->next_after);
        Imcore__GroupList gl = IMCORE__GROUP_LIST__INIT;
        gl.after = p->after;
        Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
        env.body_case = IMCORE__ENVELOPE__BODY_GROUP_LIST;
        env.group_list = &gl;
        if (request_next_page(c, p, &env))
            return true;
        c->held = false;
        return false;
    }
    c->held = false;
    if (found && found->member && found->members <= 1) {
        cli_print("! you are the last member of %s: leaving deletes it, with its history; "
                  "to leave anyway, type :leave! %s",
                  target, target);
        return false;
    }
    /* Found, or not (the server then says why): leave now, in its turn. */
    p->leave_check = false;
    Imcore__GroupLeave gl = IMCORE__GROUP_LEAVE__INIT;
    gl.group = im_pb_str(target);
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.body_case = IMCORE__ENVELOPE__BODY_GROUP_LEAVE;
    env.group_leave = &gl;
    return request_next_page(c, p, &env);
}

/* On a terminal, what became of a message, in a few words. */
static void print_delivery_state(const pending *p, const Imcore__SendAck *a)
{
    const cli_command *cmd = p->cmd;
    if (a->duplicate)
        cli_print("* sent (already stored earlier)");
    else if (cmd->kind == CLI_CMD_GROUP)
        cli_print("* sent to %s (%u online)", cmd->target, a->delivered);
    else if (a->delivered > 0)
        cli_print("* sent to %s", cmd->target);
    else
        cli_print("* stored for %s (offline): delivered at the next login", cmd->target);
}

/* The names a successful command proves exist, for completion. */
static void remember_names(cli_client *c, const cli_command *cmd)
{
    switch (cmd->kind) {
    case CLI_CMD_PRIVATE:
        cli_names_add(c->names, CLI_NAME_USER, cmd->target);
        break;
    case CLI_CMD_INVITE:
    case CLI_CMD_KICK:
    case CLI_CMD_OWNER:
        cli_names_add(c->names, CLI_NAME_USER, cmd->user);
        cli_names_add(c->names, CLI_NAME_GROUP, cmd->target);
        break;
    case CLI_CMD_GROUP:
    case CLI_CMD_CREATE:
    case CLI_CMD_JOIN:
        cli_names_add(c->names, CLI_NAME_GROUP, cmd->target);
        break;
    default:
        break;
    }
}

/* The answer to a command: Ok, SendAck or a list. */
static void on_answer(cli_client *c, const Imcore__Envelope *env)
{
    pending *p = pending_take(c, env->request_id);
    if (!p) {
        IM_WARN("answer of type %d to unknown request %llu: ignored", (int)env->type,
                (unsigned long long)env->request_id);
        return;
    }
    const cli_command *cmd = p->cmd;
    if (p->leave_check) {
        bool waits = env->body_case == IMCORE__ENVELOPE__BODY_GROUP_LIST_RESULT &&
                     on_leave_check(c, p, env->group_list_result);
        if (!waits) {
            c->held = false;
            pending_free(p);
        }
        flush_queue(c);
        check_drained(c);
        return;
    }
    if (env->body_case == IMCORE__ENVELOPE__BODY_SEND_ACK ||
        env->body_case == IMCORE__ENVELOPE__BODY_OK)
        remember_names(c, cmd);
    switch (env->body_case) {
    case IMCORE__ENVELOPE__BODY_SEND_ACK:
        if (!c->o->show_acks && c->o->interactive)
            print_delivery_state(p, env->send_ack);
        if (c->o->show_acks) {
            const Imcore__SendAck *a = env->send_ack;
            cli_print("* sent %s seq=%llu delivered=%u%s",
                      a->client_msg_id && a->client_msg_id[0] ? a->client_msg_id
                                                              : p->client_msg_id,
                      (unsigned long long)a->seq, a->delivered,
                      a->duplicate ? " (duplicate)" : "");
        }
        break;
    case IMCORE__ENVELOPE__BODY_OK:
        if (cmd->kind == CLI_CMD_CREATE)
            cli_print("* created %s", cmd->target);
        else if (cmd->kind == CLI_CMD_JOIN)
            cli_print("* joined %s", cmd->target);
        else if (cmd->kind == CLI_CMD_LEAVE)
            cli_print("* left %s", cmd->target);
        else if (cmd->kind == CLI_CMD_INVITE)
            cli_print("* invited %s to %s", cmd->user, cmd->target);
        else if (cmd->kind == CLI_CMD_KICK)
            cli_print("* removed %s from %s", cmd->user, cmd->target);
        else if (cmd->kind == CLI_CMD_OWNER)
            cli_print("* %s is %s's now", cmd->target, cmd->user);
        else if (cmd->kind == CLI_CMD_DELETE)
            cli_print("* deleted %s", cmd->target);
        else
            cli_print("* ok: %s", cmd->line);
        break;
    case IMCORE__ENVELOPE__BODY_GROUP_LIST_RESULT: {
        const Imcore__GroupListResult *r = env->group_list_result;
        for (size_t i = 0; i < r->n_groups; i++)
            cli_names_add(c->names, CLI_NAME_GROUP, r->groups[i]->group);
        cli_print_groups(r);
        if (cmd->kind == CLI_CMD_GROUPS && want_next_list_page(c, p, r->n_groups, r->next_after))
            return; /* p waits for the next page */
        cli_print_groups_end(r->total, cmd->kind == CLI_CMD_GROUPS ? p->shown : r->n_groups);
        break;
    }
    case IMCORE__ENVELOPE__BODY_ONLINE_USERS_RESULT: {
        const Imcore__OnlineUsersResult *r = env->online_users_result;
        for (size_t i = 0; i < r->n_users; i++)
            cli_names_add(c->names, CLI_NAME_USER, r->users[i]->user_id);
        cli_print_users(r);
        if (cmd->kind == CLI_CMD_ONLINE && want_next_list_page(c, p, r->n_users, r->next_after))
            return;
        cli_print_users_end(r->total, cmd->kind == CLI_CMD_ONLINE ? p->shown : r->n_users);
        break;
    }
    case IMCORE__ENVELOPE__BODY_HISTORY_RESULT:
        if (cmd->kind == CLI_CMD_HISTORY && on_history_page(c, p, env->history_result))
            return; /* p waits for the next page */
        break;
    default:
        break;
    }
    pending_free(p);
    check_drained(c);
}

static void handle_envelope(cli_client *c, const Imcore__Envelope *env)
{
    switch (env->body_case) {
    case IMCORE__ENVELOPE__BODY_LOGIN_ACK:
        on_login_ack(c, env->request_id, env->login_ack);
        break;
    case IMCORE__ENVELOPE__BODY_DELIVERY:
        if (env->delivery->kind != IMCORE__DELIVERY__KIND__NOTICE)
            cli_names_add(c->names, CLI_NAME_USER, env->delivery->from);
        cli_names_add(c->names, CLI_NAME_GROUP, env->delivery->group);
        if (cli_inbox_accept(c->inbox, env->delivery))
            cli_print_delivery(env->delivery);
        else
            IM_INFO("message %llu of %s from %s received again: not shown",
                    (unsigned long long)env->delivery->seq, env->delivery->conversation,
                    env->delivery->from);
        break;
    case IMCORE__ENVELOPE__BODY_ERROR:
        on_error(c, env->request_id, env->error);
        break;
    case IMCORE__ENVELOPE__BODY_OK:
        if (env->request_id != 0 && env->request_id == c->logout_rid &&
            c->state == ST_LOGGING_OUT) {
            finish(c, 0);
            break;
        }
        on_answer(c, env);
        break;
    case IMCORE__ENVELOPE__BODY_SEND_ACK:
    case IMCORE__ENVELOPE__BODY_GROUP_LIST_RESULT:
    case IMCORE__ENVELOPE__BODY_ONLINE_USERS_RESULT:
    case IMCORE__ENVELOPE__BODY_HISTORY_RESULT:
        on_answer(c, env);
        break;
    case IMCORE__ENVELOPE__BODY_PONG:
        /* Hearing it is the point: the read reset the watchdog. A session
         * that lived to answer a Ping is healthy, so the backoff starts over;
         * resetting at LoginAck instead would let a server that accepts and
         * then crashes be hammered every 100 ms. */
        c->attempt = 0;
        break;
    default:
        IM_WARN("unexpected frame of type %d from the server: ignored", (int)env->type);
        break;
    }
}

static void send_delivery_ack(void *arg, const char *conversation, uint64_t seq)
{
    cli_client *c = arg;
    Imcore__DeliveryAck ack = IMCORE__DELIVERY_ACK__INIT;
    ack.conversation = im_pb_str(conversation);
    ack.seq = seq;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.request_id = c->next_request_id++;
    env.body_case = IMCORE__ENVELOPE__BODY_DELIVERY_ACK;
    env.delivery_ack = &ack;
    send_envelope(c, &env); /* a lost ack only means the message comes again */
}

/* Handles every whole frame in the input. Returns false when the connection
 * was dropped meanwhile: bev is then gone and must not be touched. */
static bool read_frames(cli_client *c, struct bufferevent *bev)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    while (c->bev == bev) {
        uint8_t hdr[IM_FRAME_HEADER_BYTES];
        if (evbuffer_copyout(in, hdr, sizeof hdr) < (ev_ssize_t)sizeof hdr)
            return true;
        uint32_t len = 0;
        if (im_frame_length(hdr, CLI_MAX_FRAME_BYTES, &len) != 0) {
            IM_ERROR("bad frame from the server: length %u (allowed 1..%u)", len,
                     CLI_MAX_FRAME_BYTES);
            connection_lost(c, "bad frame");
            return false;
        }
        if (evbuffer_get_length(in) < IM_FRAME_HEADER_BYTES + (size_t)len)
            return true;
        evbuffer_drain(in, IM_FRAME_HEADER_BYTES);
        const uint8_t *data = evbuffer_pullup(in, len);
        Imcore__Envelope *env = NULL;
        im_error err;
        im_error_clear(&err);
        int rc = data ? im_envelope_decode(data, len, &env, &err) : IM_ENOMEM;
        evbuffer_drain(in, len);
        if (rc != 0) {
            IM_ERROR("bad frame from the server: %s", err.msg[0] ? err.msg : "out of memory");
            connection_lost(c, "bad frame");
            return false;
        }
        handle_envelope(c, env);
        im_envelope_free(env);
    }
    return false;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    cli_client *c = arg;
    if (read_frames(c, bev) && (c->state == ST_ONLINE || c->state == ST_LOGGING_OUT))
        cli_inbox_flush(c->inbox, send_delivery_ack, c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    cli_client *c = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->state = ST_LOGGING_IN;
        IM_INFO("connected, logging in as %s", c->o->user);
        send_login(c);
        return;
    }
    char why[256];
    /* A certificate this client does not trust will not become trusted by
     * trying again: say why and stop. */
    SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(bev) : NULL;
    if (ssl && (what & BEV_EVENT_ERROR) && SSL_get_verify_result(ssl) != X509_V_OK) {
        im_tls_client_why(ssl, 0, "", why, sizeof why);
        IM_ERROR("TLS to %s:%u refused: %s", c->o->host, c->o->port, why);
        cli_print("! TLS: %s", why);
        finish(c, 1);
        return;
    }
    if (ssl && (what & BEV_EVENT_ERROR)) {
        unsigned long e = bufferevent_get_openssl_error(bev);
        if (e != 0) {
            im_tls_client_why(ssl, e, "TLS failure", why, sizeof why);
            connection_lost(c, why);
            return;
        }
    }
    if (what & BEV_EVENT_TIMEOUT) {
        if (c->state == ST_ONLINE || c->state == ST_LOGGING_OUT)
            snprintf(why, sizeof why, "nothing heard from the server for %u s",
                     3 * c->heartbeat_s);
        else
            snprintf(why, sizeof why, "no answer within %d s", CLI_LOGIN_TIMEOUT_S);
    } else if (what & BEV_EVENT_EOF) {
        snprintf(why, sizeof why, "the server closed the connection");
    } else {
        int e = EVUTIL_SOCKET_ERROR();
        snprintf(why, sizeof why, "%s", evutil_socket_error_to_string(e));
    }
    connection_lost(c, why);
}

static void start_connect(cli_client *c)
{
    char name[80];
    IM_INFO("connecting to %s", server_name(c, name, sizeof name));
    c->state = ST_CONNECTING;
    if (c->tls) {
        SSL *ssl = SSL_new(c->tls);
        if (ssl && !im_tls_client_prepare(ssl, c->o->host, c->o->servername)) {
            SSL_free(ssl);
            ssl = NULL;
        }
        if (ssl && c->tls_session)
            SSL_set_session(ssl, c->tls_session);
        /* Takes ssl, freed with the bufferevent. */
        c->bev = ssl ? bufferevent_openssl_socket_new(c->base, -1, ssl,
                                                      BUFFEREVENT_SSL_CONNECTING,
                                                      BEV_OPT_CLOSE_ON_FREE)
                     : NULL;
        if (!c->bev && ssl)
            SSL_free(ssl);
        if (c->bev)
            bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    } else {
        c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!c->bev) {
        connection_lost(c, "out of memory");
        return;
    }
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    struct timeval login_tv = { .tv_sec = CLI_LOGIN_TIMEOUT_S };
    bufferevent_set_timeouts(c->bev, &login_tv, &login_tv);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&c->addr, c->addr_len) != 0)
        connection_lost(c, strerror(errno));
}

/* ---- timers ------------------------------------------------------------ */

static void on_reconnect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cli_client *c = arg;
    if (c->state == ST_IDLE)
        start_connect(c);
}

static void on_ping_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cli_client *c = arg;
    if (c->state != ST_ONLINE)
        return;
    Imcore__Ping ping = IMCORE__PING__INIT;
    ping.client_time_ms = now_ms();
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.request_id = c->next_request_id++;
    env.body_case = IMCORE__ENVELOPE__BODY_PING;
    env.ping = &ping;
    if (send_envelope(c, &env) != 0) {
        connection_lost(c, "cannot send Ping");
        return;
    }
    arm_timer(c->ping_timer, c->heartbeat_s * 1000u);
}

static void on_drain_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cli_client *c = arg;
    IM_WARN("gave up waiting for answers after %d s", CLI_DRAIN_TIMEOUT_S);
    logout(c); /* or finish, when there is no session */
}

static void on_logout_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cli_client *c = arg;
    IM_WARN("no answer to Logout within %d s", CLI_LOGOUT_TIMEOUT_S);
    finish(c, 0);
}

/* ---- the public calls ---------------------------------------------------- */

int cli_client_new(struct event_base *base, const cli_options *o, cli_client **out)
{
    *out = NULL;
    cli_client *c = calloc(1, sizeof *c);
    if (!c)
        return IM_ENOMEM;
    c->base = base;
    c->o = o;
    c->queue_tail = &c->queue_head;
    c->pend_tail = &c->pend_head;
    c->next_request_id = 1;
    c->max_body = CLI_DEFAULT_MAX_BODY;
    c->rng = (now_ms() << 16) ^ (uint64_t)getpid() ^ 0x9E3779B97F4A7C15ULL;
    if (getrandom(&c->id_nonce, sizeof c->id_nonce, GRND_NONBLOCK) != (ssize_t)sizeof c->id_nonce)
        c->id_nonce = ((uint64_t)next_random(c) << 32) | next_random(c);
    c->id_nonce &= (UINT64_C(1) << 48) - 1; /* 15 digits at most: the id stays under 64 bytes */

    struct sockaddr_in *v4 = (struct sockaddr_in *)&c->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&c->addr;
    if (inet_pton(AF_INET, o->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(o->port);
        c->addr_len = sizeof *v4;
    } else if (inet_pton(AF_INET6, o->host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(o->port);
        c->addr_len = sizeof *v6;
    } else {
        free(c);
        return IM_EINVAL;
    }
    if (o->tls) {
        char why[256];
        c->tls = im_tls_client_ctx(o->ca_file, o->insecure, why, sizeof why);
        if (!c->tls) {
            IM_ERROR("--tls: %s", why);
            free(c);
            return IM_EINVAL;
        }
        if (o->insecure)
            fprintf(stderr, "imcore-cli: %s\n", IM_TLS_INSECURE_WARNING);
    }

    c->ping_timer = evtimer_new(base, on_ping_timer, c);
    c->reconnect_timer = evtimer_new(base, on_reconnect_timer, c);
    c->drain_timer = evtimer_new(base, on_drain_timer, c);
    c->logout_timer = evtimer_new(base, on_logout_timer, c);
    c->inbox = cli_inbox_new();
    if (!c->ping_timer || !c->reconnect_timer || !c->drain_timer || !c->logout_timer ||
        !c->inbox) {
        cli_client_free(c);
        return IM_ENOMEM;
    }
    *out = c;
    return 0;
}

void cli_client_free(cli_client *c)
{
    if (!c)
        return;
    if (c->bev)
        bufferevent_free(c->bev);
    SSL_SESSION_free(c->tls_session);
    SSL_CTX_free(c->tls);
    cli_command *cmd;
    while ((cmd = queue_pop(c)) != NULL)
        cli_command_free(cmd);
    pending *p;
    while ((p = c->pend_head) != NULL) {
        c->pend_head = p->next;
        pending_free(p);
    }
    struct event *timers[] = { c->ping_timer, c->reconnect_timer, c->drain_timer,
                               c->logout_timer };
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
        if (timers[i])
            event_free(timers[i]);
    cli_inbox_free(c->inbox);
    cli_secret_wipe(c->password, sizeof c->password);
    cli_secret_wipe(c->token, sizeof c->token);
    free(c);
}

void cli_client_set_password(cli_client *c, const char *password)
{
    snprintf(c->password, sizeof c->password, "%s", password ? password : "");
}

void cli_client_set_names(cli_client *c, cli_names *names)
{
    c->names = names;
}

void cli_client_start(cli_client *c)
{
    if (c->state == ST_IDLE && !c->bev)
        start_connect(c);
}

void cli_client_submit(cli_client *c, cli_command *cmd)
{
    if (c->state == ST_DONE || c->state == ST_LOGGING_OUT || c->quit_requested) {
        cli_print("! not sent (logging out): %s", cmd->line);
        cli_command_free(cmd);
        return;
    }
    /* Before the first login the server's limit is unknown: the check waits
     * for the send, after the login that tells it. */
    if (c->logged_in_once && too_long(c, cmd)) {
        cli_command_free(cmd);
        return;
    }
    if (c->state == ST_ONLINE && !c->held) {
        send_command(c, cmd);
        return;
    }
    if (c->state == ST_ONLINE) { /* behind a :leave being looked up */
        queue_push(c, cmd);
        return;
    }
    /* No session yet. :q with nothing waiting leaves at once; with commands
     * waiting it lets them go first, within the drain deadline. */
    if (cmd->kind == CLI_CMD_QUIT || cmd->kind == CLI_CMD_LOGOUT_ALL) {
        c->logout_everywhere = cmd->kind == CLI_CMD_LOGOUT_ALL;
        cli_command_free(cmd);
        c->quit_requested = true;
        if (!c->queue_head) {
            if (c->logout_everywhere)
                cli_print("! not logged in: no token was revoked");
            finish(c, c->logout_everywhere ? 1 : 0);
            return;
        }
        if (!c->draining) {
            c->draining = true;
            arm_timer(c->drain_timer, CLI_DRAIN_TIMEOUT_S * 1000u);
        }
        return;
    }
    if (c->queued >= CLI_QUEUE_MAX) {
        cli_print("! not sent (%u commands already wait for a session): %s", CLI_QUEUE_MAX,
                  cmd->line);
        cli_command_free(cmd);
        return;
    }
    queue_push(c, cmd);
}

void cli_client_input_ended(cli_client *c)
{
    if (c->o->stay || c->draining || c->state == ST_DONE)
        return;
    c->draining = true;
    arm_timer(c->drain_timer, CLI_DRAIN_TIMEOUT_S * 1000u);
    check_drained(c);
}

void cli_client_interrupt(cli_client *c)
{
    if (c->state == ST_ONLINE && !c->quit_requested)
        logout(c);
    else
        finish(c, 0);
}

bool cli_client_done(const cli_client *c)
{
    return c->state == ST_DONE;
}

int cli_client_exit_code(const cli_client *c)
{
    return c->exit_code;
}
