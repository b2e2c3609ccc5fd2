/* interfaces/route/main.c: imcore-route, the route service. Watches the
 * cluster's node list in ZooKeeper and answers, over HTTP, which node a
 * user should connect to (route_http.h). Stateless: several can run behind
 * a load balancer, each with the same config.
 *
 * Exit codes: 0 after a clean stop (SIGINT, SIGTERM), 1 on a runtime
 * failure (cannot listen), 2 on bad usage or a bad config. */
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "im_config.h"
#include "im_log.h"
#include "im_port_file.h"
#include "im_zk_nodes.h"
#include "route_http.h"

#define DEFAULT_CONFIG "config/imcore.yaml"

static void usage(FILE *to)
{
    fprintf(to,
            "usage: imcore-route [--config FILE] [--port-file FILE] [--check-config]\n"
            "\n"
            "Answers which imcore node a user should connect to, from the node list in\n"
            "ZooKeeper (zookeeper.* and route.* in the config; docs/cluster.md).\n"
            "\n"
            "  -c, --config FILE     the YAML config (default " DEFAULT_CONFIG ")\n"
            "  -p, --port-file FILE  once listening, write the bound port to FILE\n"
            "                        (useful with route.port: 0)\n"
            "      --check-config    read the config, report what is wrong, and exit\n"
            "  -h, --help            this text\n"
            "  -V, --version         the version\n"
            "\n"
            "HTTP: GET /v1/node?user=ID, GET /v1/nodes, GET /health, GET /ready.\n"
            "Exit status: 0 clean stop, 1 runtime failure, 2 bad usage or config.\n");
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    IM_INFO("route: stopping");
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    const char *config_path = DEFAULT_CONFIG, *port_file = NULL;
    bool check_only = false;
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "port-file", required_argument, NULL, 'p' },
        { "check-config", no_argument, NULL, 'C' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "c:p:hV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'p': port_file = optarg; break;
        case 'C': check_only = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("imcore-route %s\n", IMCORE_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "imcore-route: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    im_config cfg;
    im_error err = { 0 };
    im_config_defaults(&cfg);
    if (im_config_load(config_path, &cfg, &err) != IM_OK) {
        fprintf(stderr, "imcore-route: %s\n", err.msg);
        return 2;
    }
    if (cfg.zookeeper_hosts[0] == '\0') {
        fprintf(stderr, "imcore-route: %s: zookeeper.hosts is not set: the route service reads "
                        "the node list from ZooKeeper\n", config_path);
        return 2;
    }
    if (check_only) {
        printf("%s: ok\n", config_path);
        return 0;
    }
    im_log_set_level((im_log_level)cfg.log_level);
    im_log_set_thread_name("main");
    signal(SIGPIPE, SIG_IGN);

    int status = 1;
    struct event_base *base = event_base_new();
    struct event *sigint = NULL, *sigterm = NULL;
    route_http *http = NULL;
    im_zk_nodes *zk = NULL;
    if (!base) {
        IM_ERROR("route: cannot create the event loop");
        return 1;
    }
    if (route_http_new(base, cfg.route_host, cfg.route_port, cfg.route_policy,
                       cfg.route_load_factor, &http, &err) != IM_OK) {
        IM_ERROR("%s", err.msg);
        goto out;
    }
    im_zk_config zc = { .hosts = cfg.zookeeper_hosts, .root = cfg.zookeeper_root,
                        .session_timeout_ms = cfg.zookeeper_session_ms };
    if (im_zk_nodes_new(&zc, route_http_set_nodes, http, &zk, &err) != IM_OK) {
        IM_ERROR("%s", err.msg);
        goto out;
    }
    sigint = evsignal_new(base, SIGINT, on_signal, base);
    sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    if (!sigint || !sigterm || event_add(sigint, NULL) != 0 || event_add(sigterm, NULL) != 0) {
        IM_ERROR("route: cannot watch signals");
        goto out;
    }
    IM_INFO("route: listening on %s:%u (policy %s), nodes from ZooKeeper %s under %s",
            cfg.route_host, route_http_port(http),
            cfg.route_policy == IM_ROUTE_LEAST_LOADED ? "least-loaded" : "bounded-hash",
            cfg.zookeeper_hosts, cfg.zookeeper_root);
    if (port_file && im_port_file_write(port_file, route_http_port(http)) != 0) {
        IM_ERROR("route: cannot write the port file %s", port_file);
        goto out;
    }
    if (event_base_dispatch(base) == 0 || event_base_got_break(base))
        status = 0;
out:
    im_zk_nodes_destroy(zk); /* before the HTTP side its callback writes to */
    route_http_free(http);
    if (sigint)
        event_free(sigint);
    if (sigterm)
        event_free(sigterm);
    event_base_free(base);
    return status;
}
