/* tests/cluster/test_zk_nodes.c: the node list in a real ZooKeeper (started
 * by tests/services/run_with.py, address in IMCORE_TEST_ZOOKEEPER). Nodes
 * register, are seen by a watcher with what they announce, leave when they
 * stop, leave by themselves within the session timeout when their process
 * is killed, and register again after their session expired. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "im_log.h"
#include "im_zk_nodes.h"

#define SESSION_MS 1000
#define DEADLINE_MS 15000

static char root[128];

/* What a watcher saw last. */
typedef struct seen {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    im_cluster_node nodes[16];
    size_t n;
    unsigned calls;
} seen;

static void on_list(void *arg, const im_cluster_node *nodes, size_t n)
{
    seen *s = arg;
    pthread_mutex_lock(&s->lock);
    s->n = n < 16 ? n : 16;
    memcpy(s->nodes, nodes, s->n * sizeof *nodes);
    s->calls++;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

static const im_cluster_node *find(const seen *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->nodes[i].id, id) == 0)
            return &s->nodes[i];
    return NULL;
}

typedef bool (*seen_pred)(const seen *s, const void *arg);

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Waits until pred holds for what the watcher saw, at most DEADLINE_MS;
 * returns the milliseconds it took, or fails naming what. */
static uint64_t wait_seen(seen *s, seen_pred pred, const void *arg, const char *what)
{
    uint64_t start = now_ms();
    pthread_mutex_lock(&s->lock);
    while (!pred(s, arg)) {
        if (now_ms() - start > DEADLINE_MS) {
            pthread_mutex_unlock(&s->lock);
            fail_msg("not seen within %d ms: %s", DEADLINE_MS, what);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&s->changed, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return now_ms() - start;
}

static bool has(const seen *s, const void *id) { return find(s, id) != NULL; }
static bool lacks(const seen *s, const void *id) { return find(s, id) == NULL; }
static bool has_load7(const seen *s, const void *id)
{
    const im_cluster_node *n = find(s, id);
    return n && n->load == 7;
}

static bool wait_registered(im_zk_nodes *z)
{
    uint64_t start = now_ms();
    while (!im_zk_nodes_registered(z)) {
        if (now_ms() - start > DEADLINE_MS)
            return false;
        struct timespec ts = { 0, 20 * 1000000L };
        nanosleep(&ts, NULL); /* polling a flag that has no condition to wait on */
    }
    return true;
}

static im_zk_config config(void)
{
    const char *hosts = getenv("IMCORE_TEST_ZOOKEEPER");
    return (im_zk_config){ .hosts = hosts, .root = root, .session_timeout_ms = SESSION_MS };
}

static im_cluster_node node(const char *id, const char *client)
{
    im_cluster_node n = { .epoch = 1234567, .load = 0 };
    snprintf(n.id, sizeof n.id, "%s", id);
    snprintf(n.client, sizeof n.client, "%s", client);
    snprintf(n.internal, sizeof n.internal, "127.0.0.1:9%s", client + strlen(client) - 3);
    return n;
}

static int setup_seen(void **state)
{
    seen *s = calloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->changed, NULL);
    *state = s;
    return 0;
}

static int teardown_seen(void **state)
{
    seen *s = *state;
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return 0;
}

static void test_format_parse(void **state)
{
    (void)state;
    im_cluster_node a = node("node-1", "127.0.0.1:5555"), b;
    a.load = 42;
    char buf[512];
    size_t len = im_zk_node_format(&a, buf, sizeof buf);
    assert_true(len > 0);
    assert_true(im_zk_node_parse(buf, len, &b));
    assert_string_equal(b.id, "node-1");
    assert_string_equal(b.client, "127.0.0.1:5555");
    assert_string_equal(b.internal, a.internal);
    assert_int_equal(b.epoch, 1234567);
    assert_int_equal(b.load, 42);
    /* Unknown keys are ignored; a missing client, a bad id are not nodes. */
    const char *newer = "zone=eu\nid=n2\nclient=h:1\n";
    assert_true(im_zk_node_parse(newer, strlen(newer), &b));
    const char *noclient = "id=n3\n";
    assert_false(im_zk_node_parse(noclient, strlen(noclient), &b));
    const char *badid = "id=a b\nclient=h:1\n";
    assert_false(im_zk_node_parse(badid, strlen(badid), &b));
    assert_int_equal(im_zk_node_format(&a, buf, 10), 0);
}

static void test_register_watch_leave(void **state)
{
    seen *s = *state;
    im_zk_config cfg = config();
    im_zk_nodes *w = NULL, *a = NULL, *b = NULL;
    im_error err = { 0 };
    assert_int_equal(im_zk_nodes_new(&cfg, on_list, s, &w, &err), 0);
    assert_int_equal(im_zk_nodes_new(&cfg, NULL, NULL, &a, &err), 0);
    assert_int_equal(im_zk_nodes_new(&cfg, NULL, NULL, &b, &err), 0);
    im_cluster_node na = node("node-a", "127.0.0.1:5001"), nb = node("node-b", "127.0.0.1:5002");
    assert_int_equal(im_zk_nodes_register(a, &na, &err), 0);
    assert_int_equal(im_zk_nodes_register(b, &nb, &err), 0);
    wait_seen(s, has, "node-a", "node-a registered");
    wait_seen(s, has, "node-b", "node-b registered");
    pthread_mutex_lock(&s->lock);
    assert_string_equal(find(s, "node-b")->client, "127.0.0.1:5002");
    assert_int_equal(find(s, "node-a")->epoch, 1234567);
    assert_true(strcmp(s->nodes[0].id, s->nodes[1].id) < 0); /* sorted by id */
    pthread_mutex_unlock(&s->lock);

    /* The load is written (at most once a second). */
    im_zk_nodes_set_load(a, 7);
    wait_seen(s, has_load7, "node-a", "node-a's load of 7");

    /* A node that stops leaves at once. */
    im_zk_nodes_destroy(b);
    wait_seen(s, lacks, "node-b", "node-b gone after it stopped");
    pthread_mutex_lock(&s->lock);
    bool a_listed = find(s, "node-a") != NULL;
    pthread_mutex_unlock(&s->lock);
    assert_true(a_listed);
    im_zk_nodes_destroy(a);
    wait_seen(s, lacks, "node-a", "node-a gone after it stopped");
    im_zk_nodes_destroy(w);
}

static void test_expired_session_registers_again(void **state)
{
    seen *s = *state;
    im_zk_config cfg = config();
    im_zk_nodes *w = NULL, *a = NULL;
    im_error err = { 0 };
    assert_int_equal(im_zk_nodes_new(&cfg, on_list, s, &w, &err), 0);
    assert_int_equal(im_zk_nodes_new(&cfg, NULL, NULL, &a, &err), 0);
    im_cluster_node na = node("node-x", "127.0.0.1:5003");
    assert_int_equal(im_zk_nodes_register(a, &na, &err), 0);
    wait_seen(s, has, "node-x", "node-x registered");
    assert_true(wait_registered(a));
    char before[512], after[512];
    im_zk_nodes_znode(a, before, sizeof before);
    assert_true(before[0] != '\0');
    /* Its znode goes with the session; the node registers again under a
     * new one (the watcher may see the two changes as one). Ending a
     * session from a second handle races with the first handle's
     * reconnect, which can take the session back before the close: so the
     * expiry is asked again until it happens. */
    uint64_t start = now_ms(), asked = 0;
    for (;;) {
        if (now_ms() - asked > 3000) {
            int rc = im_zk_nodes_expire_session(a, &err);
            if (rc != IM_OK && rc != IM_ESTATE) /* ESTATE: reconnecting; ask again later */
                fail_msg("expire_session: %s", err.msg);
            asked = now_ms();
        }
        im_zk_nodes_znode(a, after, sizeof after);
        if (after[0] && strcmp(after, before) != 0)
            break;
        if (now_ms() - start > DEADLINE_MS)
            fail_msg("no new registration after the session expired (znode %s)", before);
        struct timespec ts = { 0, 20 * 1000000L };
        nanosleep(&ts, NULL); /* polling a flag that has no condition to wait on */
    }
    wait_seen(s, has, "node-x", "node-x listed after registering again");
    im_zk_nodes_destroy(a);
    im_zk_nodes_destroy(w);
}

/* A node whose process dies leaves the list by itself, within about the
 * session timeout. The child is forked before it has any thread. */
static void test_killed_node_leaves(void **state)
{
    seen *s = *state;
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        im_zk_config cfg = config();
        im_zk_nodes *k = NULL;
        im_cluster_node nk = node("node-killed", "127.0.0.1:5004");
        if (im_zk_nodes_new(&cfg, NULL, NULL, &k, NULL) != 0 ||
            im_zk_nodes_register(k, &nk, NULL) != 0 || !wait_registered(k))
            _exit(1);
        (void)!write(ready[1], "r", 1);
        for (;;)
            pause();
    }
    close(ready[1]);
    char c;
    ssize_t got = read(ready[0], &c, 1);
    close(ready[0]);
    im_zk_config cfg = config();
    im_zk_nodes *w = NULL;
    if (got != 1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("the child did not register");
    }
    assert_int_equal(im_zk_nodes_new(&cfg, on_list, s, &w, NULL), 0);
    wait_seen(s, has, "node-killed", "the child's node");
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    uint64_t took = wait_seen(s, lacks, "node-killed", "the killed node gone");
    print_message("killed node left the list after %llu ms (session timeout %d ms)\n",
                  (unsigned long long)took, SESSION_MS);
    assert_true(took < 3u * SESSION_MS + 2000u);
    im_zk_nodes_destroy(w);
}

static void test_bad_config(void **state)
{
    (void)state;
    im_zk_nodes *z = NULL;
    im_error err = { 0 };
    im_zk_config cfg = { .hosts = "127.0.0.1:1", .root = "imcore/nodes" };
    assert_int_equal(im_zk_nodes_new(&cfg, NULL, NULL, &z, &err), IM_EINVAL);
    assert_null(z);
    cfg.root = "/imcore/nodes/";
    assert_int_equal(im_zk_nodes_new(&cfg, NULL, NULL, &z, &err), IM_EINVAL);
    cfg.hosts = "";
    cfg.root = "/imcore/nodes";
    assert_int_equal(im_zk_nodes_new(&cfg, NULL, NULL, &z, &err), IM_EINVAL);
    /* An unreachable ZooKeeper is not an error: it is retried. */
    cfg.hosts = "127.0.0.1:1";
    assert_int_equal(im_zk_nodes_new(&cfg, NULL, NULL, &z, &err), IM_OK);
    im_cluster_node bad = node("a b", "127.0.0.1:5005");
    assert_int_equal(im_zk_nodes_register(z, &bad, &err), IM_EINVAL);
    assert_false(im_zk_nodes_registered(z));
    im_zk_nodes_destroy(z);
}

int main(void)
{
    if (!getenv("IMCORE_TEST_ZOOKEEPER")) {
        fprintf(stderr, "IMCORE_TEST_ZOOKEEPER is not set: run through "
                        "tests/services/run_with.py zookeeper -- %s\n", "test_zk_nodes");
        return 1;
    }
    snprintf(root, sizeof root, "/imcore-test-%ld/nodes", (long)getpid());
    im_log_set_level(IM_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_parse),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test_setup_teardown(test_killed_node_leaves, setup_seen, teardown_seen),
        cmocka_unit_test_setup_teardown(test_register_watch_leave, setup_seen, teardown_seen),
        cmocka_unit_test_setup_teardown(test_expired_session_registers_again, setup_seen,
                                        teardown_seen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
