/* interfaces/route/route_http.c: see the header.
 *
 * The list is replaced whole under a mutex each time ZooKeeper reports a
 * change, and read under it by each request: requests are a few
 * microseconds, changes at most a few a second. Between two reports, what
 * this service hands out is counted per node (extra) and added to the
 * node's announced load, so a burst of logins is spread before the nodes
 * have announced their new loads; a fresh report starts the count again. */
#include "route_http.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "domain/user.h"
#include "im_log.h"
#include "route_pick.h"

struct route_http {
    struct evhttp *http;
    uint16_t port;
    int policy;
    unsigned load_factor;
    pthread_mutex_t lock;
    im_cluster_node *nodes;
    uint32_t *extra;
    size_t n;
    bool have_list;
};

/* Appends s as a JSON string. */
static void json_str(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            evbuffer_add_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            evbuffer_add_printf(b, "\\u%04x", c);
        else
            evbuffer_add(b, s, 1);
    }
    evbuffer_add(b, "\"", 1);
}

static void node_json(struct evbuffer *b, const im_cluster_node *n, uint32_t extra)
{
    evbuffer_add_printf(b, "{\"id\":");
    json_str(b, n->id);
    evbuffer_add_printf(b, ",\"address\":");
    json_str(b, n->client);
    evbuffer_add_printf(b, ",\"internal\":");
    json_str(b, n->internal);
    evbuffer_add_printf(b, ",\"epoch\":%llu,\"load\":%u,\"assigned\":%u}",
                        (unsigned long long)n->epoch, n->load, extra);
}

static void reply(struct evhttp_request *req, int code, const char *reason, struct evbuffer *b)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evbuffer_add(b, "\n", 1);
    evhttp_send_reply(req, code, reason, b);
}

static void reply_error(struct evhttp_request *req, int code, const char *reason,
                        const char *text)
{
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"error\":");
    json_str(b, text);
    evbuffer_add(b, "}", 1);
    reply(req, code, reason, b);
    evbuffer_free(b);
}

static void get_node(route_http *r, struct evhttp_request *req, const struct evhttp_uri *uri)
{
    struct evkeyvalq q;
    const char *query = evhttp_uri_get_query(uri);
    if (!query || evhttp_parse_query_str(query, &q) != 0) {
        reply_error(req, HTTP_BADREQUEST, "Bad Request", "usage: /v1/node?user=ID");
        return;
    }
    const char *user = evhttp_find_header(&q, "user");
    im_error err = { 0 };
    if (!user || im_user_id_check(user, &err) != IM_OK) {
        reply_error(req, HTTP_BADREQUEST, "Bad Request",
                    user ? err.msg : "usage: /v1/node?user=ID");
        evhttp_clear_headers(&q);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    pthread_mutex_lock(&r->lock);
    long i = route_pick(r->nodes, r->extra, r->n, user, r->policy, r->load_factor);
    if (i >= 0 && b) {
        r->extra[i]++;
        evbuffer_add_printf(b, "{\"user\":");
        json_str(b, user);
        evbuffer_add_printf(b, ",\"node\":");
        json_str(b, r->nodes[i].id);
        evbuffer_add_printf(b, ",\"address\":");
        json_str(b, r->nodes[i].client);
        evbuffer_add(b, "}", 1);
    }
    pthread_mutex_unlock(&r->lock);
    evhttp_clear_headers(&q);
    if (!b)
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
    else if (i < 0)
        reply_error(req, 503, "Service Unavailable", "no node is up");
    else
        reply(req, HTTP_OK, "OK", b);
    if (b)
        evbuffer_free(b);
}

static void get_nodes(route_http *r, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    pthread_mutex_lock(&r->lock);
    evbuffer_add_printf(b, "{\"count\":%zu,\"nodes\":[", r->n);
    for (size_t i = 0; i < r->n; i++) {
        if (i)
            evbuffer_add(b, ",", 1);
        node_json(b, &r->nodes[i], r->extra[i]);
    }
    pthread_mutex_unlock(&r->lock);
    evbuffer_add(b, "]}", 2);
    reply(req, HTTP_OK, "OK", b);
    evbuffer_free(b);
}

static void get_health(route_http *r, struct evhttp_request *req, bool ready_check)
{
    pthread_mutex_lock(&r->lock);
    bool have = r->have_list;
    size_t n = r->n;
    pthread_mutex_unlock(&r->lock);
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    bool ready = have && n > 0;
    evbuffer_add_printf(b, "{\"status\":\"%s\",\"node_list\":%s,\"nodes\":%zu}",
                        ready_check ? (ready ? "ready" : "not ready") : "ok",
                        have ? "true" : "false", n);
    if (ready_check && !ready)
        reply(req, 503, "Service Unavailable", b);
    else
        reply(req, HTTP_OK, "OK", b);
    evbuffer_free(b);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    route_http *r = arg;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
        reply_error(req, 405, "Method Not Allowed", "only GET");
        return;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path)
        reply_error(req, HTTP_BADREQUEST, "Bad Request", "no path");
    else if (strcmp(path, "/v1/node") == 0)
        get_node(r, req, uri);
    else if (strcmp(path, "/v1/nodes") == 0)
        get_nodes(r, req);
    else if (strcmp(path, "/health") == 0)
        get_health(r, req, false);
    else if (strcmp(path, "/ready") == 0)
        get_health(r, req, true);
    else
        reply_error(req, HTTP_NOTFOUND, "Not Found", "no such resource");
}

void route_http_set_nodes(void *arg, const im_cluster_node *nodes, size_t n)
{
    route_http *r = arg;
    im_cluster_node *copy = n ? malloc(n * sizeof *copy) : NULL;
    uint32_t *extra = calloc(n ? n : 1, sizeof *extra);
    if ((n && !copy) || !extra) {
        free(copy);
        free(extra);
        IM_ERROR("route: out of memory for a node list of %zu; keeping the old one", n);
        return;
    }
    if (n)
        memcpy(copy, nodes, n * sizeof *copy);
    pthread_mutex_lock(&r->lock);
    /* Say which nodes came and went: the list is sorted by id. */
    size_t i = 0, j = 0;
    while (i < r->n || j < n) {
        int c = i == r->n ? 1 : j == n ? -1 : strcmp(r->nodes[i].id, copy[j].id);
        if (c < 0)
            IM_INFO("route: node %s (%s) left", r->nodes[i].id, r->nodes[i].client);
        else if (c > 0)
            IM_INFO("route: node %s (%s) joined", copy[j].id, copy[j].client);
        i += c <= 0;
        j += c >= 0;
    }
    free(r->nodes);
    free(r->extra);
    r->nodes = copy;
    r->extra = extra;
    r->n = n;
    r->have_list = true;
    pthread_mutex_unlock(&r->lock);
}

int route_http_new(struct event_base *base, const char *host, uint16_t port, int policy,
                   unsigned load_factor_percent, route_http **out, im_error *err)
{
    *out = NULL;
    route_http *r = calloc(1, sizeof *r);
    if (!r || !(r->extra = calloc(1, sizeof *r->extra)) || !(r->http = evhttp_new(base))) {
        if (r)
            free(r->extra);
        free(r);
        return im_error_set(err, IM_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&r->lock, NULL);
    r->policy = policy;
    r->load_factor = load_factor_percent;
    /* Small requests only: a query with a user id. */
    evhttp_set_max_headers_size(r->http, 8192);
    evhttp_set_max_body_size(r->http, 0);
    evhttp_set_timeout(r->http, 10);
    evhttp_set_allowed_methods(r->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(r->http, on_request, r);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(r->http, host, port);
    if (!bs) {
        route_http_free(r);
        return im_error_set(err, IM_EIO, "route: cannot listen on %s:%u", host, port);
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &len) == 0)
        r->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    *out = r;
    return IM_OK;
}

uint16_t route_http_port(const route_http *r) { return r->port; }

void route_http_free(route_http *r)
{
    if (!r)
        return;
    if (r->http)
        evhttp_free(r->http);
    pthread_mutex_destroy(&r->lock);
    free(r->nodes);
    free(r->extra);
    free(r);
}
