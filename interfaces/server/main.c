/* interfaces/server/main.c: imcore-server. Reads the config, loads the
 * adapters it names (storage, transport: plugins), wires them to the
 * ports, and serves through the transport until SIGINT/SIGTERM.
 *
 * Exit codes: 0 after a clean shutdown, 1 on a runtime failure (cannot bind,
 * out of memory), 2 on bad usage or a bad config (a plugin the server
 * cannot load or serve included). */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "application/im_app.h"
#include "core_api.h"
#include "im_config.h"
#include "im_log.h"
#include "im_port_file.h"
#include "im_memory_store.h"
#include "im_plugin_host.h"
#include "im_sodium_accounts.h"

#define DEFAULT_CONFIG "config/imcore.yaml"

static void usage(FILE *to)
{
    fprintf(to,
            "usage: imcore-server [--config FILE] [--port-file FILE] [--check-config]\n"
            "\n"
            "  -c, --config FILE     the YAML config (default " DEFAULT_CONFIG ")\n"
            "  -p, --port-file FILE  once listening, write the bound port to FILE\n"
            "                        (useful with listen.port: 0)\n"
            "      --check-config    read the config, report what is wrong, and exit\n"
            "  -h, --help            this text\n"
            "  -V, --version         the version\n"
            "\n"
            "Stops cleanly on SIGINT or SIGTERM. Exit status: 0 clean stop, 1 runtime\n"
            "failure, 2 bad usage or config.\n");
}

static uint64_t wall_clock_ms(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* In "open" mode there is no accounts port: a login names any id. In
 * "password" mode the accounts live in the storage engine, through its
 * account operation: an engine without one is a bad config (*bad_config
 * set, exit 2), said with the line of accounts.mode. */
static int open_accounts(const im_config *cfg, im_store *store, im_accounts **out,
                         bool *bad_config, im_error *err)
{
    *out = NULL;
    if (cfg->accounts_mode == IM_ACCOUNTS_OPEN) {
        IM_WARN("accounts: open (no passwords: any client may use any user id)");
        return IM_OK;
    }
    if (!IM_STORE_HAS(store, account)) {
        *bad_config = true;
        const char *engine = store->ops->name ? store->ops->name : cfg->storage_engine;
        if (cfg->accounts_mode_line)
            return im_error_set(err, IM_EINVAL,
                                "%s:%u: accounts.mode: storage.engine %s keeps no accounts: use "
                                "accounts.mode open or an engine with accounts (sqlite, memory, "
                                "postgres)", cfg->source, cfg->accounts_mode_line, engine);
        return im_error_set(err, IM_EINVAL,
                            "%s: accounts.mode (password, the default): storage.engine %s keeps "
                            "no accounts: use accounts.mode open or an engine with accounts "
                            "(sqlite, memory, postgres)", cfg->source[0] ? cfg->source : "config",
                            engine);
    }
    if (!store->ops->durable)
        IM_WARN("accounts: kept by storage.engine %s, which is not durable: accounts and their "
                "tokens last until the server stops", cfg->storage_engine);
    im_sodium_accounts_config ac = {
        .store = store,
        .cost = (im_password_cost)cfg->accounts_hash_cost,
        .token_ttl_s = cfg->accounts_token_ttl_s,
        /* Password checks on a pool; token work on one thread of its own,
         * in order, so a resume after a log-out everywhere is refused. */
        .threads = cfg->accounts_hash_threads,
        .max_pending = cfg->accounts_max_pending,
        .max_tokens_per_user = cfg->accounts_max_tokens,
    };
    return im_sodium_accounts_new(&ac, out, err);
}

/* Each connection is a file descriptor: take all the kernel allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
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
        case 'V': printf("imcore-server %s\n", IMCORE_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "imcore-server: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    im_config cfg;
    im_error err = { 0 };
    im_config_defaults(&cfg);
    if (im_config_load(config_path, &cfg, &err) != IM_OK) {
        fprintf(stderr, "imcore-server: %s\n", err.msg);
        return 2;
    }
    /* Valid, but most likely not what was meant: a file truncated, or the
     * wrong one. The server still starts, on the defaults. */
    if (cfg.empty)
        IM_WARN("config %s is empty (or only comments): every key has its default",
                config_path);
    im_log_set_level((im_log_level)cfg.log_level);
    im_log_set_thread_name("main");
    if (cfg.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg.workers = n < 1 ? 1 : n > (long)IM_CONFIG_MAX_WORKERS ? IM_CONFIG_MAX_WORKERS : (unsigned)n;
    }
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    /* Messages are allocated on one thread and freed on another, so glibc's
     * per-thread heaps kept growing and being trimmed back: with durable
     * storage the profile showed a sixth of the time in page faults and
     * madvise. Keep freed memory for reuse instead. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 4 << 20);

    /* Plugins are part of the configuration, the storage adapter and the
     * transport too: one that does not load is a bad config (exit 2),
     * reported as FILE:LINE: plugin NAME: why (or storage.engine: NAME: why,
     * transport: NAME: why). */
    im_plugin_host *plugins = NULL;
    if (im_plugin_host_load(&cfg, true, &plugins, &err) != IM_OK) {
        fprintf(stderr, "imcore-server: %s\n", err.msg);
        return 2;
    }
    /* The check runs every plugin's init, adapters' included, which reads
     * and checks its own config, then unloads them: nothing is opened,
     * bound or started. */
    if (check_only) {
        im_plugin_host_free(plugins);
        printf("%s: ok\n", config_path);
        return 0;
    }

    int status = 1;
    im_store *store = NULL;
    im_group_repo *groups = NULL;
    imcore_transport *transport = NULL;
    im_app *app = NULL;
    im_accounts *accounts = NULL;
    bool bad_config = false;

    /* The transport binds its socket when opened: a port in use stops the
     * server here, before any client could be let in. */
    if (im_plugin_host_open_storage(plugins, &store, &err) != IM_OK ||
        im_memory_group_repo_new(&groups, &err) != IM_OK ||
        open_accounts(&cfg, store, &accounts, &bad_config, &err) != IM_OK)
        goto out;
    /* A transport that refuses its settings (a TLS certificate that does
     * not load or match its key: FILE:LINE) is a bad config too; a port
     * in use (IM_EIO) is not. */
    if (im_plugin_host_open_transport(plugins, &transport, &err) != IM_OK) {
        bad_config = err.code == IM_EINVAL;
        goto out;
    }
    im_app_limits limits = {
        .max_body_bytes = cfg.max_body_bytes,
        .max_group_members = cfg.max_group_members,
        .login_policy = (im_login_policy)cfg.login_policy,
        .send_rate = cfg.send_rate,
        .send_burst = cfg.send_burst,
        /* Half the slow-consumer limit: a page of unacked messages at login
         * must never be what closes the session. */
        .handover_bytes = cfg.output_buffer_bytes / 2,
        .max_groups_per_user = cfg.max_groups_per_user,
    };
    /* The route port: the transport's sessions on this node, its presence
     * and delivery wrapped by the cluster adapter (if any) to reach other
     * nodes, all three wrapped by the plugins' port (if they claim accounts
     * or watch logins). The replies stay this node's. */
    im_route_ports routes = {
        .presence = transport->ops->presence(transport),
        .delivery = transport->ops->delivery(transport),
        .replies = transport->ops->replies(transport),
    };
    if (im_plugin_host_open_cluster(plugins, &routes, &err) != IM_OK)
        goto out;
    im_plugin_host_router(plugins, &routes);
    im_app_ports ports = {
        .presence = routes.presence, .delivery = routes.delivery, .replies = routes.replies,
        .store = store, .groups = groups,
        .accounts = accounts, .filter = im_plugin_host_filter(plugins),
        .wall_clock_ms = wall_clock_ms,
    };
    if (im_app_new(&limits, &ports, &app, &err) != IM_OK ||
        im_plugin_host_start(plugins, app, store, groups, &err) != IM_OK)
        goto out;
    if (port_file && im_port_file_write(port_file, transport->ops->bound_port(transport)) != 0) {
        im_error_set(&err, IM_EIO, "cannot write port file %s: %s", port_file, strerror(errno));
        goto out;
    }
    IM_INFO("imcore-server %s, config %s, node %s", IMCORE_VERSION, config_path, cfg.node_id);
    if (transport->ops->run(transport, im_server_core_api(), app, &err) != IM_OK)
        goto out;
    status = 0;
out:
    /* An adapter whose port table the server cannot use (no size, an
     * operation it needs missing) is a bad plugin, so a bad config. */
    if (status != 0 && (err.code == IM_EUNSUPPORTED || bad_config))
        status = 2;
    if (status != 0)
        IM_ERROR("%s", err.msg[0] ? err.msg : "failed to start");
    /* Accounts and store first: they finish their queues, and their
     * completions still reach the router (their sessions are gone, so they
     * only free). */
    if (accounts)
        accounts->ops->destroy(accounts);
    /* The plugin loop's last sends still reach the store. */
    im_plugin_host_stop(plugins);
    im_store_destroy(store);
    /* The cluster adapter borrows the transport's delivery for what other
     * nodes send: it stops before the transport goes. */
    im_plugin_host_close_cluster(plugins);
    imcore_transport_destroy(transport); /* before the host unloads its code */
    im_app_free(app);
    if (groups)
        groups->ops->destroy(groups);
    im_plugin_host_free(plugins); /* last: no worker can reach a plugin any more */
    return status;
}
