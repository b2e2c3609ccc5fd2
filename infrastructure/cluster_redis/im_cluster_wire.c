/* infrastructure/cluster_redis/im_cluster_wire.c: see the header. Field
 * names are short: they are written once per message that crosses nodes. */
#include "im_cluster_wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void im_cluster_node_stream(char *out, size_t size, const char *node_id)
{
    snprintf(out, size, "imcore:node:%s", node_id);
}

void im_cluster_users_key(char *out, size_t size, const char *node_id)
{
    snprintf(out, size, "imcore:users:%s", node_id);
}

static void push(im_cluster_argv *a, const char *s, size_t len)
{
    if (a->argc < IM_CLUSTER_ARGV_MAX) {
        a->argv[a->argc] = s;
        a->len[a->argc] = len;
        a->argc++;
    }
}

static void push_str(im_cluster_argv *a, const char *s)
{
    push(a, s, strlen(s));
}

static void push_pair(im_cluster_argv *a, const char *field, const char *value)
{
    push_str(a, field);
    push_str(a, value);
}

static const char *num(im_cluster_argv *a, int *used, uint64_t v)
{
    char *p = a->num[(*used)++];
    snprintf(p, sizeof a->num[0], "%" PRIu64, v);
    return p;
}

void im_cluster_xadd(im_cluster_argv *a, const char *node_id, unsigned maxlen,
                     const im_cluster_entry *e)
{
    int used = 0;
    a->argc = 0;
    im_cluster_node_stream(a->key, sizeof a->key, node_id);
    push_str(a, "XADD");
    push_str(a, a->key);
    push_str(a, "MAXLEN");
    push_str(a, "~");
    push_str(a, num(a, &used, maxlen));
    push_str(a, "*");
    push_pair(a, "t", e->type == IM_CLUSTER_KICK ? "kick" : "msg");
    push_pair(a, "epoch", num(a, &used, e->epoch));
    if (e->has_endpoint) {
        char *ep = a->num[used++];
        snprintf(ep, sizeof a->num[0], "%" PRIu32 ":%" PRIu64, e->worker, e->conn);
        push_pair(a, "ep", ep);
    }
    if (e->type == IM_CLUSTER_KICK) {
        char *code = a->num[used++];
        snprintf(code, sizeof a->num[0], "%d", e->code); /* IM_E* codes are negative */
        push_pair(a, "code", code);
        push_pair(a, "why", e->why ? e->why : "");
        return;
    }
    const im_message *m = &e->m;
    push_pair(a, "k", num(a, &used, (uint64_t)m->kind));
    push_pair(a, "from", m->sender);
    push_pair(a, "to", m->target);
    push_pair(a, "cmid", m->client_msg_id ? m->client_msg_id : "");
    push_pair(a, "seq", num(a, &used, m->seq));
    push_pair(a, "ts", num(a, &used, m->server_time_ms));
    if (e->sender_name)
        push_pair(a, "sn", e->sender_name);
    if (e->members)
        push_pair(a, "m", e->members);
    push_str(a, "body");
    push(a, (const char *)m->body, m->body_len);
}

static bool to_u64(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool to_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

bool im_cluster_entry_parse(const redisReply *fields, im_cluster_entry *out, const char **why)
{
    memset(out, 0, sizeof *out);
    const char *t = NULL, *epoch = NULL, *ep = NULL, *code = NULL, *k = NULL, *seq = NULL,
               *ts = NULL;
    bool has_body = false;
    *why = "not a list of fields";
    if (fields->type != REDIS_REPLY_ARRAY || fields->elements % 2)
        return false;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i], *v = fields->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            return false;
        const char *n = f->str;
        if (strcmp(n, "t") == 0) t = v->str;
        else if (strcmp(n, "epoch") == 0) epoch = v->str;
        else if (strcmp(n, "ep") == 0) ep = v->str;
        else if (strcmp(n, "code") == 0) code = v->str;
        else if (strcmp(n, "why") == 0) out->why = v->str;
        else if (strcmp(n, "k") == 0) k = v->str;
        else if (strcmp(n, "from") == 0) out->m.sender = v->str;
        else if (strcmp(n, "to") == 0) out->m.target = v->str;
        else if (strcmp(n, "cmid") == 0) out->m.client_msg_id = v->str;
        else if (strcmp(n, "seq") == 0) seq = v->str;
        else if (strcmp(n, "ts") == 0) ts = v->str;
        else if (strcmp(n, "sn") == 0) out->sender_name = v->str;
        else if (strcmp(n, "m") == 0) out->members = v->str;
        else if (strcmp(n, "body") == 0) {
            out->m.body = (const uint8_t *)v->str;
            out->m.body_len = v->len;
            has_body = true;
        }
        /* Unknown fields are a newer node's: ignored. */
    }
    *why = "no epoch";
    if (!to_u64(epoch, &out->epoch))
        return false;
    if (ep) {
        *why = "a bad endpoint";
        char *colon;
        errno = 0;
        unsigned long w = strtoul(ep, &colon, 10);
        uint64_t c;
        if (errno || *colon != ':' || w > UINT32_MAX || !to_u64(colon + 1, &c))
            return false;
        out->has_endpoint = true;
        out->worker = (uint32_t)w;
        out->conn = c;
    }
    if (t && strcmp(t, "kick") == 0) {
        int64_t c = 0;
        *why = "a kick without an endpoint or a code";
        if (!ep || !to_i64(code, &c))
            return false;
        out->type = IM_CLUSTER_KICK;
        out->code = (int)c;
        return true;
    }
    *why = "an unknown entry type";
    if (!t || strcmp(t, "msg") != 0)
        return false;
    out->type = IM_CLUSTER_MESSAGE;
    uint64_t kind = 0;
    *why = "a message missing a field";
    if (!to_u64(k, &kind) || kind < IM_MESSAGE_PRIVATE || kind > IM_MESSAGE_NOTICE ||
        !out->m.sender || !out->m.target || !to_u64(seq, &out->m.seq) ||
        !to_u64(ts, &out->m.server_time_ms) || !has_body)
        return false;
    out->m.kind = (im_message_kind)kind;
    if (!out->m.client_msg_id)
        out->m.client_msg_id = "";
    return true;
}

size_t im_cluster_route_format(const im_cluster_route *r, char *out, size_t size)
{
    int n = snprintf(out, size, "%" PRIu64 " %" PRIu64 " %" PRIu32 " %" PRIu64 " %" PRIu64 " %s",
                     r->epoch, r->ver, r->worker, r->conn, r->since_ms, r->name);
    return n < 0 || (size_t)n >= size ? 0 : (size_t)n;
}

bool im_cluster_route_parse(const char *value, size_t len, im_cluster_route *r)
{
    char buf[160 + IM_DISPLAY_NAME_MAX];
    if (len >= sizeof buf)
        return false;
    memcpy(buf, value, len);
    buf[len] = '\0';
    unsigned long long epoch, ver, conn, since;
    unsigned long worker;
    int name_at = -1;
    if (sscanf(buf, "%llu %llu %lu %llu %llu %n", &epoch, &ver, &worker, &conn, &since,
               &name_at) != 5 || name_at < 0 || worker > UINT32_MAX)
        return false;
    /* %n after a blank skips the blanks before the name; a name that is
     * all blanks (never: names are checked) would read as "". */
    const char *name = buf + name_at;
    if (strlen(name) > IM_DISPLAY_NAME_MAX)
        return false;
    r->epoch = epoch;
    r->ver = ver;
    r->worker = (uint32_t)worker;
    r->conn = conn;
    r->since_ms = since;
    strcpy(r->name, name);
    return true;
}

bool im_cluster_ver_parse(const char *value, uint64_t *epoch, uint64_t *ver)
{
    unsigned long long e, v;
    char extra;
    if (!value || sscanf(value, "%llu %llu%c", &e, &v, &extra) != 2)
        return false;
    *epoch = e;
    *ver = v;
    return true;
}

/* KEYS: the hash, the presence stream. ARGV: op, user, value, epoch, ver,
 * ttl_ms, maxlen, node. */
static const char change_script[] =
    "if ARGV[1] == 'bind' then redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])\n"
    "else redis.call('HDEL', KEYS[1], ARGV[2]) end\n"
    "redis.call('HSET', KEYS[1], '~ver', ARGV[4] .. ' ' .. ARGV[5])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[6])\n"
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', 'op', ARGV[1], 'node', ARGV[8],\n"
    "           'epoch', ARGV[4], 'ver', ARGV[5], 'user', ARGV[2], 'value', ARGV[3])\n"
    "return 1\n";

const char im_cluster_rewrite_script[] =
    "redis.call('DEL', KEYS[1])\n"
    "for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end\n"
    "redis.call('HSET', KEYS[1], '~ver', ARGV[1] .. ' ' .. ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'op', 'resync', 'node', ARGV[5],\n"
    "           'epoch', ARGV[1], 'ver', ARGV[2], 'user', '', 'value', '')\n"
    "return 1\n";

void im_cluster_change(im_cluster_argv *a, im_cluster_op op, const char *node_id, uint64_t epoch,
                       uint64_t ver, const char *user, const char *value, unsigned ttl_ms,
                       unsigned maxlen)
{
    int used = 0;
    a->argc = 0;
    im_cluster_users_key(a->key, sizeof a->key, node_id);
    push_str(a, "EVAL");
    push_str(a, change_script);
    push_str(a, "2");
    push_str(a, a->key);
    push_str(a, IM_CLUSTER_PRESENCE_STREAM);
    push_str(a, op == IM_CLUSTER_BIND ? "bind" : "unbind");
    push_str(a, user);
    push_str(a, value ? value : "");
    push_str(a, num(a, &used, epoch));
    push_str(a, num(a, &used, ver));
    push_str(a, num(a, &used, ttl_ms));
    push_str(a, num(a, &used, maxlen));
    push_str(a, node_id);
}

bool im_cluster_event_parse(const redisReply *fields, im_cluster_event *out)
{
    memset(out, 0, sizeof *out);
    const char *op = NULL, *epoch = NULL, *ver = NULL;
    if (fields->type != REDIS_REPLY_ARRAY || fields->elements % 2)
        return false;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i], *v = fields->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            return false;
        if (strcmp(f->str, "op") == 0) op = v->str;
        else if (strcmp(f->str, "node") == 0) out->node = v->str;
        else if (strcmp(f->str, "epoch") == 0) epoch = v->str;
        else if (strcmp(f->str, "ver") == 0) ver = v->str;
        else if (strcmp(f->str, "user") == 0) out->user = v->str;
        else if (strcmp(f->str, "value") == 0) {
            out->value = v->str;
            out->value_len = v->len;
        }
    }
    if (!op || !out->node || !out->user || !to_u64(epoch, &out->epoch) ||
        !to_u64(ver, &out->ver))
        return false;
    if (strcmp(op, "bind") == 0)
        out->op = IM_CLUSTER_BIND;
    else if (strcmp(op, "unbind") == 0)
        out->op = IM_CLUSTER_UNBIND;
    else if (strcmp(op, "resync") == 0)
        out->op = IM_CLUSTER_RESYNC;
    else
        return false;
    if (out->op == IM_CLUSTER_BIND && !out->value)
        return false;
    return true;
}
