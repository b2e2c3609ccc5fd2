/* tests/cluster/zk_node_tool.c: stands in for an imcore node in ZooKeeper,
 * for tests of what reads the node list (imcore-route):
 *     zk_node_tool HOSTS ROOT SESSION_MS ID CLIENT_ADDR LOAD
 * registers, prints "registered" on stdout once its znode exists, and
 * stays until SIGTERM (leaves at once) or SIGKILL (leaves when its session
 * times out). A line "load N" on stdin announces a new load. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "im_log.h"
#include "im_zk_nodes.h"

static volatile sig_atomic_t stop;

static void on_term(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: zk_node_tool HOSTS ROOT SESSION_MS ID CLIENT_ADDR LOAD\n");
        return 2;
    }
    im_log_set_thread_name("node-tool");
    im_zk_config cfg = { .hosts = argv[1], .root = argv[2],
                         .session_timeout_ms = (unsigned)strtoul(argv[3], NULL, 10) };
    im_cluster_node self = { .epoch = (uint64_t)time(NULL) * 1000u,
                             .load = (uint32_t)strtoul(argv[6], NULL, 10) };
    snprintf(self.id, sizeof self.id, "%s", argv[4]);
    snprintf(self.client, sizeof self.client, "%s", argv[5]);
    im_zk_nodes *z = NULL;
    im_error err = { 0 };
    if (im_zk_nodes_new(&cfg, NULL, NULL, &z, &err) != 0 ||
        im_zk_nodes_register(z, &self, &err) != 0) {
        fprintf(stderr, "zk_node_tool: %s\n", err.msg);
        return 1;
    }
    struct sigaction sa = { .sa_handler = on_term };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    bool said = false;
    while (!stop) {
        if (!said && im_zk_nodes_registered(z)) {
            printf("registered\n");
            fflush(stdout);
            said = true;
        }
        fd_set in;
        FD_ZERO(&in);
        FD_SET(0, &in);
        struct timeval tv = { 0, 20000 };
        if (select(1, &in, NULL, NULL, &tv) > 0) {
            char line[64];
            if (!fgets(line, sizeof line, stdin))
                break;
            unsigned load;
            if (sscanf(line, "load %u", &load) == 1)
                im_zk_nodes_set_load(z, load);
        }
    }
    im_zk_nodes_destroy(z);
    return 0;
}
