/* tests/plugins/test_cs_bot.c: the customer-service bot (plugins/cs_bot),
 * loaded with dlopen as the server loads it, and driven by a fake host: a
 * table of host functions that records what the bot sends, keeps its
 * key-value map in memory (so that a second init over the same map is a
 * restart), answers is_online and group_members from sets the test
 * controls, and records timers, which the test fires by hand.
 *
 * The fake also holds the bot to the rules of imcore/plugin.h: claim_user
 * only in init, no kv_put before on_start or inside kv_each, kv_each only
 * in on_start, one line per message, sent only as the claimed account. A
 * broken rule fails the test that broke it.
 *
 * The plugin's path comes from CS_BOT_SO (set by tests/plugins/CMakeLists.txt
 * to the built cs_bot.so), or from the environment variable of that name. */
#include <dlfcn.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "imcore/plugin.h"

#ifndef CS_BOT_SO
#define CS_BOT_SO "cs_bot.so"
#endif

#define GREETING "Hello! I am the support bot. Ask me a question, or write \"agent\" to talk " \
                 "to a person."
#define RATE_IT "This conversation has ended. Please rate it from 1 (poor) to 5 (excellent)."
#define COMMANDS ":list, :end [#N], :transfer [#N] [AGENT_ID], :stats, :help"

/* ---- the fake host ---- */

enum phase { PH_OFF, PH_INIT, PH_START, PH_LOOP };

typedef struct sent {
    char *to, *text;
    bool read;
} sent;

typedef struct kvrec {
    char *key;
    char *val;
    size_t len;
} kvrec;

typedef struct ftimer {
    uint64_t id, after, every;
    bool live;
} ftimer;

#define MAX_SET 32

static struct fake {
    /* set by the test */
    struct { char key[48], value[256], where[32]; } cfg[16];
    size_t ncfg;
    const char *online[MAX_SET];
    size_t nonline;
    const char *members[MAX_SET];
    size_t nmembers;
    int claim_rc;
    bool kv_each_fails;
    uint32_t max_body;       /* limits: 0 means 8192 */
    char faq_path[64];

    /* recorded */
    enum phase phase;
    bool in_each;
    char claimed[64];
    sent *msgs;
    size_t nmsgs, cap;
    kvrec kv[256];
    size_t nkv;
    unsigned kv_puts;
    ftimer timers[16];
    size_t ntimers;
    struct { void (*work)(void *); void (*done)(void *, void *); void *arg; } jobs[4];
    size_t njobs;            /* run_blocking jobs not run yet: run_jobs() runs them */
    char log[512];           /* the last line the bot logged */
    uint64_t next_timer_id;
    char broken[256]; /* the first rule the bot broke */
} F;

#define HOST ((imcore_host *)&F)

static void broke(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void broke(const char *fmt, ...)
{
    if (F.broken[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(F.broken, sizeof F.broken, fmt, ap);
    va_end(ap);
}

static void fake_log(imcore_host *h, imcore_log_level level, const char *fmt, ...)
{
    (void)h;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(F.log, sizeof F.log, fmt, ap);
    va_end(ap);
    if (getenv("CS_BOT_TEST_LOG"))
        fprintf(stderr, "[cs_bot %d] %s\n", (int)level, F.log);
}

static int find_cfg(const char *key)
{
    for (size_t i = 0; i < F.ncfg; i++)
        if (strcmp(F.cfg[i].key, key) == 0)
            return (int)i;
    return -1;
}

static const char *fake_config_get(imcore_host *h, const char *key)
{
    (void)h;
    int i = find_cfg(key);
    return i < 0 ? NULL : F.cfg[i].value;
}

static const char *fake_config_where(imcore_host *h, const char *key)
{
    (void)h;
    int i = find_cfg(key);
    return i < 0 ? NULL : F.cfg[i].where;
}

static const char *fake_config_key(imcore_host *h, unsigned index)
{
    (void)h;
    return index < F.ncfg ? F.cfg[index].key : NULL;
}

static const imcore_limits *fake_limits(imcore_host *h)
{
    (void)h;
    static imcore_limits lim;
    lim = (imcore_limits){ .size = sizeof lim, .max_body_bytes = F.max_body ? F.max_body : 8192,
                           .max_group_members = 1000, .plugin_backlog = 10000 };
    return &lim;
}

static int fake_claim_user(imcore_host *h, const char *user_id, const char *display_name)
{
    (void)h;
    (void)display_name;
    if (F.phase != PH_INIT) {
        broke("claim_user outside init");
        return IM_ESTATE;
    }
    if (F.claim_rc)
        return F.claim_rc;
    snprintf(F.claimed, sizeof F.claimed, "%s", user_id);
    return 0;
}

static int fake_send_private(imcore_host *h, const char *from, const char *to,
                             const uint8_t *body, size_t len)
{
    (void)h;
    if (F.phase == PH_INIT || F.phase == PH_OFF)
        broke("send_private to %s outside the plugin loop", to);
    if (strcmp(from, F.claimed) != 0)
        broke("send_private from '%s', not the claimed account", from);
    if (len == 0)
        return IM_EINVAL;
    if (memchr(body, '\n', len) || memchr(body, '\0', len))
        broke("a message to %s on more than one line: %.*s", to, (int)len, (const char *)body);
    if (F.nmsgs == F.cap) {
        F.cap = F.cap ? 2 * F.cap : 64;
        F.msgs = realloc(F.msgs, F.cap * sizeof *F.msgs);
        assert_non_null(F.msgs);
    }
    F.msgs[F.nmsgs++] = (sent){.to = strdup(to), .text = strndup((const char *)body, len)};
    return 0;
}

static int fake_send_group(imcore_host *h, const char *from, const char *group,
                           const uint8_t *body, size_t len)
{
    (void)h, (void)from, (void)group, (void)body, (void)len;
    broke("send_group");
    return IM_EINVAL;
}

static int fake_group_join(imcore_host *h, const char *account, const char *group)
{
    (void)h, (void)account, (void)group;
    broke("group_join");
    return IM_EINVAL;
}

static bool in_set(const char *const *set, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(set[i], id) == 0)
            return true;
    return false;
}

static int fake_is_online(imcore_host *h, const char *user_id)
{
    (void)h;
    return in_set(F.online, F.nonline, user_id) || strcmp(user_id, F.claimed) == 0;
}

static int fake_group_members(imcore_host *h, const char *group, imcore_member_fn fn, void *arg)
{
    (void)h;
    int i = find_cfg("agents_group");
    if (strcmp(group, i < 0 ? "agents" : F.cfg[i].value) != 0)
        return IM_ENOGROUP;
    for (size_t k = 0; k < F.nmembers; k++)
        if (fn(arg, F.members[k]))
            break;
    return (int)F.nmembers;
}

static uint64_t fake_timer_start(imcore_host *h, uint64_t after_ms, uint64_t every_ms, void *arg)
{
    (void)h;
    (void)arg;
    if (F.phase == PH_OFF)
        broke("timer_start outside init and the plugin loop");
    assert_true(F.ntimers < 16);
    F.timers[F.ntimers++] = (ftimer){++F.next_timer_id, after_ms, every_ms, true};
    return F.next_timer_id;
}

static void fake_timer_cancel(imcore_host *h, uint64_t id)
{
    (void)h;
    for (size_t i = 0; i < F.ntimers; i++)
        if (F.timers[i].id == id)
            F.timers[i].live = false;
}

/* Jobs wait for run_jobs(), which plays the blocking thread (work) and
 * then the loop (done), so a test decides when slow work finishes. */
static int fake_run_blocking(imcore_host *h, void (*work)(void *), void (*done)(void *, void *),
                             void *arg)
{
    (void)h;
    if (F.phase != PH_LOOP && F.phase != PH_START)
        broke("run_blocking outside the plugin loop");
    assert_true(F.njobs < 4);
    F.jobs[F.njobs].work = work;
    F.jobs[F.njobs].done = done;
    F.jobs[F.njobs].arg = arg;
    F.njobs++;
    return 0;
}

static kvrec *kv_find(const char *key)
{
    for (size_t i = 0; i < F.nkv; i++)
        if (strcmp(F.kv[i].key, key) == 0)
            return &F.kv[i];
    return NULL;
}

static int fake_kv_put(imcore_host *h, const char *key, const void *value, size_t len)
{
    (void)h;
    if (F.phase == PH_INIT || F.phase == PH_OFF) {
        broke("kv_put of %s before on_start", key);
        return IM_ESTATE;
    }
    if (F.in_each)
        broke("kv_put of %s inside kv_each", key);
    if (strlen(key) == 0 || strlen(key) > 200 || len > 65536)
        return IM_EINVAL;
    F.kv_puts++;
    kvrec *r = kv_find(key);
    if (!value) {
        if (r) {
            free(r->key);
            free(r->val);
            *r = F.kv[--F.nkv];
        }
        return 0;
    }
    if (!r) {
        assert_true(F.nkv < 256);
        r = &F.kv[F.nkv++];
        r->key = strdup(key);
    } else {
        free(r->val);
    }
    r->val = malloc(len + 1);
    memcpy(r->val, value, len);
    r->val[len] = '\0';
    r->len = len;
    return 0;
}

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const kvrec *)a)->key, ((const kvrec *)b)->key);
}

static int fake_kv_each(imcore_host *h, const char *prefix, imcore_kv_fn fn, void *arg)
{
    (void)h;
    if (F.phase != PH_START)
        broke("kv_each outside on_start (it reads the disk)");
    if (F.kv_each_fails)
        return IM_EIO;
    qsort(F.kv, F.nkv, sizeof *F.kv, kv_cmp);
    int n = 0;
    F.in_each = true;
    for (size_t i = 0; i < F.nkv; i++) {
        if (strncmp(F.kv[i].key, prefix, strlen(prefix)) != 0)
            continue;
        n++;
        if (fn(arg, F.kv[i].key, F.kv[i].val, F.kv[i].len))
            break;
    }
    F.in_each = false;
    return n;
}

static imcore_host_api API = {
    .size = sizeof(imcore_host_api),
    .api_version = IMCORE_PLUGIN_API_VERSION,
    .log = fake_log,
    .config_get = fake_config_get,
    .config_where = fake_config_where,
    .claim_user = fake_claim_user,
    .send_private = fake_send_private,
    .send_group = fake_send_group,
    .group_join = fake_group_join,
    .is_online = fake_is_online,
    .group_members = fake_group_members,
    .timer_start = fake_timer_start,
    .timer_cancel = fake_timer_cancel,
    .run_blocking = fake_run_blocking,
    .kv_put = fake_kv_put,
    .kv_each = fake_kv_each,
    .config_key = fake_config_key,
    .limits = fake_limits,
};

/* ---- driving the plugin ---- */

static imcore_plugin_init_fn entry;
static const imcore_plugin_info *about;
static imcore_plugin P;
static bool running;
static uint64_t seq;

static void cfg(const char *key, const char *value)
{
    int i = find_cfg(key);
    if (i < 0) {
        assert_true(F.ncfg < 16);
        i = (int)F.ncfg++;
    }
    snprintf(F.cfg[i].key, sizeof F.cfg[i].key, "%s", key);
    snprintf(F.cfg[i].value, sizeof F.cfg[i].value, "%s", value);
    snprintf(F.cfg[i].where, sizeof F.cfg[i].where, "bot.yaml:%d", 20 + i);
}

/* init, then on_start if init succeeded; init's result. */
static int boot(void)
{
    /* As the server does: zeroed, then size, the version picked from the
     * plugin's description, and its name and version. */
    memset(&P, 0, sizeof P);
    P.size = sizeof P;
    P.api_version = IMCORE_PLUGIN_API_VERSION;
    P.name = about->name;
    P.version = about->version;
    F.phase = PH_INIT;
    F.claimed[0] = '\0';
    int rc = entry(&API, HOST, &P);
    F.phase = PH_OFF;
    if (rc != 0)
        return rc;
    running = true;
    assert_string_equal(P.name, "cs_bot");
    assert_int_equal(P.api_version, IMCORE_PLUGIN_API_VERSION);
    assert_null(P.on_message); /* nothing on the network threads */
    F.phase = PH_START;
    P.on_start(P.state);
    F.phase = PH_LOOP;
    return 0;
}

static void run_jobs(void)
{
    while (F.njobs > 0) {
        F.njobs--;
        F.jobs[0].work(F.jobs[0].arg);
        if (F.jobs[0].done)
            F.jobs[0].done(P.state, F.jobs[0].arg);
        memmove(&F.jobs[0], &F.jobs[1], F.njobs * sizeof F.jobs[0]);
    }
}

static void stop(void)
{
    if (!running)
        return;
    run_jobs(); /* the host finishes the blocking thread's jobs before shutdown */
    F.phase = PH_OFF;
    P.shutdown(P.state);
    running = false;
    F.ntimers = 0;
}

static void set_online(const char *id, bool on)
{
    for (size_t i = 0; i < F.nonline; i++) {
        if (strcmp(F.online[i], id) == 0) {
            if (!on)
                F.online[i] = F.online[--F.nonline];
            return;
        }
    }
    if (on) {
        assert_true(F.nonline < MAX_SET);
        F.online[F.nonline++] = id;
    }
}

static void login(const char *id)
{
    set_online(id, true);
    P.on_login(P.state, id, id);
}

static void logout(const char *id)
{
    set_online(id, false);
    P.on_logout(P.state, id);
}

static void member(const char *id)
{
    assert_true(F.nmembers < MAX_SET);
    F.members[F.nmembers++] = id;
}

/* A private message from `from` to the bot; the sender is online. */
static void to_bot(const char *from, const char *text)
{
    set_online(from, true);
    imcore_message m = {
        .size = sizeof m,
        .kind = IMCORE_MESSAGE_PRIVATE,
        .from = from,
        .to = F.claimed,
        .body = (const uint8_t *)text,
        .body_len = strlen(text),
        .client_msg_id = "",
        .seq = ++seq,
        .server_time_ms = 1700000000000u + seq,
        .from_name = "",
    };
    P.on_delivery(P.state, F.claimed, &m);
}

static void tick(void)
{
    size_t n = F.ntimers;
    for (size_t i = 0; i < n; i++) {
        if (!F.timers[i].live)
            continue;
        if (F.timers[i].every == 0)
            F.timers[i].live = false;
        P.on_timer(P.state, F.timers[i].id, NULL);
    }
}

/* The next message to `to` not yet checked must be text. */
#define expect(to, text) expect_at(__FILE__, __LINE__, to, text)
static void expect_at(const char *file, int line, const char *to, const char *text)
{
    for (size_t i = 0; i < F.nmsgs; i++) {
        if (F.msgs[i].read || strcmp(F.msgs[i].to, to) != 0)
            continue;
        F.msgs[i].read = true;
        if (strcmp(F.msgs[i].text, text) != 0)
            fail_msg("%s:%d: %s got \"%s\"\n    wanted \"%s\"", file, line, to, F.msgs[i].text,
                     text);
        return;
    }
    fail_msg("%s:%d: nothing more for %s; wanted \"%s\"", file, line, to, text);
}

/* Every message has been checked, and no rule was broken. */
#define quiet() quiet_at(__FILE__, __LINE__)
static void quiet_at(const char *file, int line)
{
    if (F.broken[0])
        fail_msg("%s:%d: the bot broke a rule of the host: %s", file, line, F.broken);
    for (size_t i = 0; i < F.nmsgs; i++)
        if (!F.msgs[i].read)
            fail_msg("%s:%d: unexpected message to %s: \"%s\"", file, line, F.msgs[i].to,
                     F.msgs[i].text);
}

static const char *kv_value(const char *key)
{
    kvrec *r = kv_find(key);
    return r ? r->val : NULL;
}

static bool has_word(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = strstr(text, word); p; p = strstr(p + 1, word)) {
        bool start = p == text || !(p[-1] == '_' || p[-1] == '.' || p[-1] == '-' ||
                                    (p[-1] >= 'a' && p[-1] <= 'z'));
        char e = p[n];
        if (start && !(e == '_' || e == '.' || e == '-' || (e >= 'a' && e <= 'z')))
            return true;
    }
    return false;
}

static const char FAQ[] =
    "# The test FAQ.\n"
    "- keywords: [hours, open, opening]\n"
    "  answer: \"We are open from 9 to 17, Monday to Friday.\"\n"
    "- keywords: \"password, reset\"\n"
    "  answer: >\n"
    "    To reset your password,\n"
    "    use the link on the login page.\n"
    "- keywords: [credit card, refund]\n"
    "  answer: Refunds go back to your credit card.\n"
    "- keywords: [caf\xc3\xa9]\n"
    "  answer: \"There is a caf\xc3\xa9 on the ground floor.\"\n"
    "- keywords: [open, password]\n"
    "  answer: \"Never: a tie goes to the earlier entry.\"\n";

static void write_faq(const char *text)
{
    FILE *fp = fopen(F.faq_path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof F);
    API.size = sizeof API;
    seq = 0;
    snprintf(F.faq_path, sizeof F.faq_path, "/tmp/cs_bot_faq_XXXXXX");
    int fd = mkstemp(F.faq_path);
    assert_true(fd >= 0);
    close(fd);
    write_faq(FAQ);
    cfg("faq", F.faq_path);
    cfg("max_customers_per_agent", "1");
    cfg("assign_interval_ms", "200");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    stop();
    unlink(F.faq_path);
    for (size_t i = 0; i < F.nmsgs; i++) {
        free(F.msgs[i].to);
        free(F.msgs[i].text);
    }
    free(F.msgs);
    for (size_t i = 0; i < F.nkv; i++) {
        free(F.kv[i].key);
        free(F.kv[i].val);
    }
    memset(&F, 0, sizeof F);
    return 0;
}

/* A customer's first message asks for a person: the greeting, then an
 * agent at once, who is told too. */
#define first_assigned(cust, ask, told, agent, agent_told) \
    first_assigned_at(__FILE__, __LINE__, cust, ask, told, agent, agent_told)
static void first_assigned_at(const char *file, int line, const char *cust, const char *ask,
                              const char *told, const char *agent, const char *agent_told)
{
    to_bot(cust, ask);
    expect_at(file, line, cust, GREETING);
    expect_at(file, line, cust, told);
    expect_at(file, line, agent, agent_told);
}

/* ann and ben, agents, online; `max` customers each. */
static void two_agents(const char *max)
{
    cfg("max_customers_per_agent", max);
    member("ann");
    member("ben");
    set_online("ann", true);
    set_online("ben", true);
    assert_int_equal(boot(), 0);
}

/* ann and ben, one customer each and no room for more: cat (#1) with ann,
 * dan (#2) with ben. */
static void both_agents_busy(void)
{
    two_agents("1");
    first_assigned("cat", "agent", "You are now talking to Agent 1.", "ann", "New customer #1 (customer #1).");
    first_assigned("dan", "agent", "You are now talking to Agent 2.", "ben", "New customer #2 (customer #2).");
}

/* eve asks a question nobody answers while both agents are busy: queued
 * first, with her line kept for the agent. */
#define eve_waits() eve_waits_at(__FILE__, __LINE__)
static void eve_waits_at(const char *file, int line)
{
    to_bot("eve", "my invoice is wrong");
    expect_at(file, line, "eve", GREETING);
    expect_at(file, line, "eve", "All our agents are busy. You are number 1 in the queue.");
}

/* eve (#3, who wrote two lines while she waited) goes to ann, who reads
 * the lines first. */
#define eve_to_ann() eve_to_ann_at(__FILE__, __LINE__)
static void eve_to_ann_at(const char *file, int line)
{
    expect_at(file, line, "eve", "You are now talking to Agent 1.");
    expect_at(file, line, "ann", "New customer #3 (customer #3).");
    expect_at(file, line, "ann", "#3 wrote: my invoice is wrong");
    expect_at(file, line, "ann", "#3 wrote: hello?");
}

/* ---- the tests ---- */

static void test_faq(void **state)
{
    (void)state;
    assert_int_equal(boot(), 0);
    assert_string_equal(F.claimed, "support");
    assert_int_equal(F.ntimers, 1);
    assert_int_equal(F.timers[0].every, 200);

    to_bot("cat", "What are your opening HOURS?");
    expect("cat", GREETING);
    expect("cat", "We are open from 9 to 17, Monday to Friday.");
    quiet();
    to_bot("cat", "I forgot my password, please reset it");
    expect("cat", "To reset your password, use the link on the login page.");
    to_bot("cat", "is it open"); /* one each for the first and the last: the first */
    expect("cat", "We are open from 9 to 17, Monday to Friday.");
    to_bot("cat", "password?!");
    expect("cat", "To reset your password, use the link on the login page.");
    to_bot("cat", "open, with my password");
    expect("cat", "Never: a tie goes to the earlier entry.");
    to_bot("cat", "My CREDIT card was charged twice");
    expect("cat", "Refunds go back to your credit card.");
    to_bot("cat", "my credit\ncard");
    expect("cat", "Refunds go back to your credit card.");
    to_bot("cat", "is there a caf\xc3\xa9 here");
    expect("cat", "There is a caf\xc3\xa9 on the ground floor.");
    quiet();

    /* Whole words only, and no agent: queued. */
    to_bot("cat", "we are reopening the account");
    expect("cat", "All our agents are busy. You are number 1 in the queue.");
    quiet();
    assert_non_null(strstr(kv_value("conv/0000000001"), "customer=cat agent= state=waiting"));
    assert_string_equal(kv_value("next"), "2");

    /* Without a faq key nothing is answered from it. */
    stop();
    F.ncfg = 0;
    cfg("max_customers_per_agent", "1");
    assert_int_equal(boot(), 0);
    to_bot("dan", "what are your opening hours?");
    expect("dan", GREETING);
    expect("dan", "All our agents are busy. You are number 2 in the queue.");
    quiet();
}

static void test_queue_and_assignment(void **state)
{
    (void)state;
    two_agents("1");
    /* both free: the lower id */
    first_assigned("cat", "agent", "You are now talking to Agent 1.", "ann", "New customer #1 (customer #1).");
    first_assigned("dan", "  HUMAN ", "You are now talking to Agent 2.", "ben", "New customer #2 (customer #2).");
    eve_waits();
    to_bot("eve", "hello?");
    expect("eve", "You are number 1 in the queue. An agent will be with you soon.");
    to_bot("fay", ":agent");
    expect("fay", GREETING);
    expect("fay", "All our agents are busy. You are number 2 in the queue.");
    quiet();
    tick(); /* nobody has room: nothing */
    quiet();

    to_bot("ann", ":end");
    expect("cat", RATE_IT);
    expect("ann", "#1 ended.");
    eve_to_ann();
    expect("fay", "You are now number 1 in the queue.");
    quiet();
    assert_non_null(strstr(kv_value("conv/0000000003"), "customer=eve agent=ann state=chatting"));
    assert_string_equal(kv_value("agent/ann"), "1");
    assert_string_equal(kv_value("agent/ben"), "2");
}

static void test_fewest_then_oldest(void **state)
{
    (void)state;
    two_agents("2");
    first_assigned("cat", "agent", "You are now talking to Agent 1.", "ann", "New customer #1 (customer #1).");
    /* ann has one, ben none */
    first_assigned("dan", "agent", "You are now talking to Agent 2.", "ben", "New customer #2 (customer #2).");
    /* one each: ann's last assignment is the older */
    first_assigned("eve", "agent", "You are now talking to Agent 1.", "ann", "New customer #3 (customer #3).");
    quiet();
}

static void test_offline_customers_keep_their_place(void **state)
{
    (void)state;
    member("ann");
    set_online("ann", true);
    assert_int_equal(boot(), 0);
    first_assigned("cat", "agent", "You are now talking to Agent 1.", "ann", "New customer #1 (customer #1).");
    to_bot("dan", "agent");
    expect("dan", GREETING);
    expect("dan", "All our agents are busy. You are number 1 in the queue.");
    to_bot("eve", "agent");
    expect("eve", GREETING);
    expect("eve", "All our agents are busy. You are number 2 in the queue.");
    logout("dan");
    quiet();

    to_bot("ann", ":end");
    expect("cat", RATE_IT);
    expect("ann", "#1 ended.");
    expect("eve", "You are now talking to Agent 1."); /* dan is passed over */
    expect("ann", "New customer #3 (customer #3).");
    quiet(); /* dan is still number 1: not told again */

    to_bot("ann", ":end");
    expect("eve", RATE_IT);
    expect("ann", "#3 ended.");
    quiet();
    set_online("dan", true); /* no on_login: the timer finds him */
    tick();
    expect("dan", "You are now talking to Agent 1.");
    expect("ann", "New customer #2 (customer #2).");
    quiet();
}

static void test_relay_without_ids(void **state)
{
    (void)state;
    member("ann");
    set_online("ann", true);
    cfg("max_customers_per_agent", "2");
    assert_int_equal(boot(), 0);
    first_assigned("cat", "agent", "You are now talking to Agent 1.", "ann", "New customer #1 (customer #1).");
    to_bot("cat", "hello there");
    expect("ann", "#1: hello there");
    to_bot("ann", "hi, how can I help?");
    expect("cat", "Agent 1: hi, how can I help?");
    to_bot("ann", "#1 with a #1 in front");
    expect("cat", "Agent 1: with a #1 in front");
    to_bot("ann", "#7 is not a conversation");
    expect("cat", "Agent 1: #7 is not a conversation");
    first_assigned("dan", "agent", "You are now talking to Agent 1.", "ann", "New customer #2 (customer #2).");
    quiet();

    to_bot("ann", "for whom?");
    expect("ann", "You have several customers: #1, #2. Start your message with #N.");
    to_bot("ann", "#7 hi");
    expect("ann", "You have several customers: #1, #2. Start your message with #N.");
    to_bot("ann", "#2 hello dan");
    expect("dan", "Agent 1: hello dan");
    to_bot("ann", "#2");
    expect("ann", "Nothing to send: write your message after #2.");
    to_bot("ann", ":list");
    expect("ann", "Your customers: #1 customer #1, #2 customer #2. Waiting in the queue: 0.");
    to_bot("ann", ":end");
    expect("ann", "You have several customers: #1, #2. Name one, as in :end #1.");
    to_bot("ann", ":end #5");
    expect("ann", "#5 is not one of your customers.");
    to_bot("dan", ":end");
    expect("dan", RATE_IT);
    expect("ann", "#2 ended.");
    to_bot("ann", "line one\nline two");
    expect("cat", "Agent 1: line one line two");
    to_bot("cat", "  :END ");
    expect("cat", RATE_IT);
    expect("ann", "#1 ended.");
    quiet();

    to_bot("ann", "anyone?");
    expect("ann", "You have no customers right now (0 waiting).");
    to_bot("ann", ":end");
    expect("ann", "You have no customers right now (0 waiting).");
    to_bot("ann", ":list");
    expect("ann", "You have no customers. Waiting in the queue: 0.");
    to_bot("ann", ":help");
    expect("ann", "Commands: " COMMANDS ". Anything else goes to your customer; with several, "
                  "start it with #N.");
    to_bot("ann", ":frobnicate now");
    expect("ann", "Unknown command :frobnicate. Commands: " COMMANDS ".");
    to_bot("ann", ":end #1 please");
    expect("ann", "Usage: :end [#N]. Commands: " COMMANDS ".");
    quiet();

    for (size_t i = 0; i < F.nmsgs; i++) {
        const sent *m = &F.msgs[i];
        if (strcmp(m->to, "ann") == 0) {
            assert_false(has_word(m->text, "cat"));
            assert_false(has_word(m->text, "dan"));
        } else {
            assert_false(has_word(m->text, "ann"));
        }
    }
}

static void test_reveal_ids(void **state)
{
    (void)state;
    cfg("reveal_ids", "true");
    member("ann");
    set_online("ann", true);
    assert_int_equal(boot(), 0);
    first_assigned("cat", "agent", "You are now talking to ann.", "ann", "New customer #1 (cat).");
    to_bot("cat", "hi");
    expect("ann", "#1: hi");
    to_bot("ann", "hello");
    expect("cat", "ann: hello");
    to_bot("ann", ":list");
    expect("ann", "Your customers: #1 cat. Waiting in the queue: 0.");
    quiet();
}

static void test_agent_logout(void **state)
{
    (void)state;
    both_agents_busy();
    eve_waits();
    quiet();

    logout("ben");
    expect("dan", "Your agent had to leave. You are number 1 in the queue.");
    expect("eve", "You are now number 2 in the queue.");
    quiet();
    assert_non_null(strstr(kv_value("conv/0000000002"), "customer=dan agent= state=waiting"));
    login("ben");
    expect("dan", "You are now talking to Agent 2.");
    expect("ben", "New customer #2 (customer #2).");
    expect("eve", "You are now number 1 in the queue.");
    quiet();
}

static void test_agent_logout_several(void **state)
{
    (void)state;
    cfg("max_customers_per_agent", "2");
    member("ann");
    member("ben"); /* offline for now */
    set_online("ann", true);
    assert_int_equal(boot(), 0);
    first_assigned("cat", "agent", "You are now talking to Agent 1.", "ann", "New customer #1 (customer #1).");
    first_assigned("dan", "agent", "You are now talking to Agent 1.", "ann", "New customer #2 (customer #2).");
    to_bot("eve", "agent");
    expect("eve", GREETING);
    expect("eve", "All our agents are busy. You are number 1 in the queue.");
    quiet();

    logout("ann");
    expect("cat", "Your agent had to leave. You are number 1 in the queue.");
    expect("dan", "Your agent had to leave. You are number 2 in the queue.");
    expect("eve", "You are now number 3 in the queue.");
    to_bot("dan", "still there?");
    expect("dan", "You are number 2 in the queue. An agent will be with you soon.");
    quiet();
    login("ben");
    expect("cat", "You are now talking to Agent 2.");
    expect("ben", "New customer #1 (customer #1).");
    expect("dan", "You are now talking to Agent 2.");
    expect("ben", "New customer #2 (customer #2).");
    expect("ben", "#2 wrote: still there?");
    expect("eve", "You are now number 1 in the queue.");
    quiet();
}

static void test_transfer(void **state)
{
    (void)state;
    member("fay"); /* offline for now */
    two_agents("1");
    first_assigned("cat", "agent", "You are now talking to Agent 1.", "ann", "New customer #1 (customer #1).");
    first_assigned("dan", "agent", "You are now talking to Agent 2.", "ben", "New customer #2 (customer #2).");
    to_bot("ann", ":transfer");
    expect("ann", "No other agent can take #1 now.");
    quiet();

    login("fay");
    quiet();
    to_bot("ann", ":transfer #1 ben"); /* ben is full: the least busy other */
    expect("cat", "You are now talking to Agent 3.");
    expect("fay", "Customer #1 (customer #1) was transferred to you.");
    expect("ann", "#1 transferred to Agent 3.");
    to_bot("ben", ":transfer ann");
    expect("dan", "You are now talking to Agent 1.");
    expect("ann", "Customer #2 (customer #2) was transferred to you.");
    expect("ben", "#2 transferred to Agent 1.");
    quiet();

    first_assigned("eve", "my invoice is wrong", "You are now talking to Agent 2.", "ben", "New customer #3 (customer #3).");
    expect("ben", "#3 wrote: my invoice is wrong");
    to_bot("ben", ":transfer #3 fay");
    expect("ben", "No other agent can take #3 now.");
    to_bot("fay", ":end");
    expect("cat", RATE_IT);
    expect("fay", "#1 ended.");
    to_bot("ben", ":transfer #3 fay");
    expect("eve", "You are now talking to Agent 3.");
    expect("fay", "Customer #3 (customer #3) was transferred to you.");
    expect("fay", "#3 wrote: my invoice is wrong");
    expect("ben", "#3 transferred to Agent 3.");
    to_bot("eve", "thanks");
    expect("fay", "#3: thanks");
    to_bot("ann", ":transfer #7");
    expect("ann", "#7 is not one of your customers.");
    quiet();
    assert_non_null(strstr(kv_value("conv/0000000003"), "customer=eve agent=fay state=chatting"));
    assert_string_equal(kv_value("agent/fay"), "3");
}

static void test_end_rating_stats(void **state)
{
    (void)state;
    cfg("max_customers_per_agent", "3");
    member("ann");
    set_online("ann", true);
    assert_int_equal(boot(), 0);
    to_bot("ann", ":stats");
    expect("ann", "0 conversations, 0 rated, average rating -");

    first_assigned("cat", "agent", "You are now talking to Agent 1.", "ann", "New customer #1 (customer #1).");
    to_bot("ann", ":end");
    expect("cat", RATE_IT);
    expect("ann", "#1 ended.");
    assert_non_null(strstr(kv_value("conv/0000000001"), "state=rating"));
    to_bot("cat", " 5 ");
    expect("cat", "Thank you for your rating!");
    const char *rec = kv_value("conv/0000000001");
    assert_non_null(strstr(rec, "customer=cat agent=ann state=closed started_ms="));
    assert_non_null(strstr(rec, " rating=5"));
    to_bot("ann", ":stats");
    expect("ann", "1 conversation, 1 rated, average rating 5.0");

    first_assigned("dan", "agent", "You are now talking to Agent 1.", "ann", "New customer #2 (customer #2).");
    to_bot("ann", ":end #2");
    expect("dan", RATE_IT);
    expect("ann", "#2 ended.");
    to_bot("dan", "4");
    expect("dan", "Thank you for your rating!");

    /* Anything but 1..5 skips the rating and goes to the bot. */
    first_assigned("eve", "agent", "You are now talking to Agent 1.", "ann", "New customer #3 (customer #3).");
    to_bot("ann", ":end");
    expect("eve", RATE_IT);
    expect("ann", "#3 ended.");
    to_bot("eve", "what are your hours?");
    expect("eve", "We are open from 9 to 17, Monday to Friday.");
    to_bot("eve", "5"); /* no longer a rating: not in the FAQ, so for an agent */
    expect("eve", "You are now talking to Agent 1.");
    expect("ann", "New customer #4 (customer #4).");
    expect("ann", "#4 wrote: 5");
    to_bot("ann", ":stats");
    expect("ann", "4 conversations, 2 rated, average rating 4.5");
    quiet();
}

static void test_restart(void **state)
{
    (void)state;
    two_agents("1");
    first_assigned("cat", "agent", "You are now talking to Agent 1.", "ann", "New customer #1 (customer #1).");
    to_bot("ann", ":end");
    expect("cat", RATE_IT);
    expect("ann", "#1 ended.");
    to_bot("cat", "5");
    expect("cat", "Thank you for your rating!");
    to_bot("cat", "agent"); /* both free: ben's last assignment is the older (never) */
    expect("cat", "You are now talking to Agent 2.");
    expect("ben", "New customer #2 (customer #2).");
    first_assigned("dan", "agent", "You are now talking to Agent 1.", "ann", "New customer #3 (customer #3).");
    to_bot("ben", ":end");
    expect("cat", RATE_IT);
    expect("ben", "#2 ended.");
    logout("ben");
    to_bot("eve", "a question");
    expect("eve", GREETING);
    expect("eve", "All our agents are busy. You are number 1 in the queue.");
    quiet();
    /* #1 closed and rated, #2 waiting for its rating, #3 chatting, #4 waiting. */

    stop();
    F.nonline = 0;
    unsigned puts = F.kv_puts;
    assert_int_equal(boot(), 0);
    quiet(); /* nothing is said at start */
    assert_int_equal(F.kv_puts, puts + 1); /* #3 is waiting again: its record says so */
    assert_non_null(strstr(kv_value("conv/0000000003"), "customer=dan agent= state=waiting"));
    assert_non_null(strstr(kv_value("conv/0000000002"), "customer=cat agent=ben state=rating"));

    login("ann"); /* #3 and #4 wait, but dan and eve are offline */
    quiet();
    to_bot("ann", ":stats");
    expect("ann", "4 conversations, 1 rated, average rating 5.0");
    login("dan");
    expect("dan", "You are now talking to Agent 1.");
    expect("ann", "New customer #3 (customer #3).");
    to_bot("cat", "4"); /* the rating asked for before the restart; no greeting again */
    expect("cat", "Thank you for your rating!");
    to_bot("ann", ":stats");
    expect("ann", "4 conversations, 2 rated, average rating 4.5");
    to_bot("gil", "agent");
    expect("gil", GREETING);
    expect("gil", "All our agents are busy. You are number 2 in the queue.");
    login("ben"); /* eve, number 1, is offline: gil first */
    expect("gil", "You are now talking to Agent 2.");
    expect("ben", "New customer #5 (customer #5).");
    quiet();
    assert_string_equal(kv_value("next"), "6");

    /* A storage that cannot be read: the bot works, and writes nothing
     * over the records it could not see. */
    stop();
    F.kv_each_fails = true;
    puts = F.kv_puts;
    assert_int_equal(boot(), 0);
    first_assigned("hal", "agent", "You are now talking to Agent 1.", "ann", "New customer #1 (customer #1).");
    quiet();
    assert_int_equal(F.kv_puts, puts);
}

static void test_restart_keeps_waiting_lines(void **state)
{
    (void)state;
    both_agents_busy();
    eve_waits();
    to_bot("eve", "hello?");
    expect("eve", "You are number 1 in the queue. An agent will be with you soon.");
    quiet();
    assert_string_equal(kv_value("kept/0000000003/00"), "my invoice is wrong");
    assert_string_equal(kv_value("kept/0000000003/01"), "hello?");
    /* A line of a conversation that is over, left by a crash between two
     * writes, and a key the bot cannot read: neither goes to anyone. */
    F.phase = PH_LOOP;
    API.kv_put(HOST, "kept/0000000001/05", "stale", 5);
    API.kv_put(HOST, "kept/x", "junk", 4);
    to_bot("ann", ":end");
    expect("cat", RATE_IT);
    expect("ann", "#1 ended.");
    eve_to_ann();
    quiet();
    assert_string_equal(kv_value("kept/0000000001/05"), "stale");

    /* Restart: everyone offline; dan's #2 and eve's #3 wait again, with
     * what eve wrote, kept until the conversation ends. */
    stop();
    F.nonline = 0;
    assert_int_equal(boot(), 0);
    quiet();
    assert_null(kv_value("kept/0000000001/05"));
    assert_string_equal(kv_value("kept/x"), "junk");
    login("eve");
    login("ann");
    eve_to_ann();
    quiet();
    /* Still the agent's at a transfer, gone at the end. */
    login("ben");
    to_bot("ann", ":transfer");
    expect("eve", "You are now talking to Agent 2.");
    expect("ben", "Customer #3 (customer #3) was transferred to you.");
    expect("ben", "#3 wrote: my invoice is wrong");
    expect("ben", "#3 wrote: hello?");
    expect("ann", "#3 transferred to Agent 2.");
    quiet();
    to_bot("ben", ":end");
    expect("eve", RATE_IT);
    expect("ben", "#3 ended.");
    quiet();
    assert_null(kv_value("kept/0000000003/00"));
    assert_null(kv_value("kept/0000000003/01"));
}

#define expect_init_error(text) expect_init_error_at(__FILE__, __LINE__, text)
static void expect_init_error_at(const char *file, int line, const char *text)
{
    if (boot() == 0)
        fail_msg("%s:%d: init succeeded; wanted \"%s\"", file, line, text);
    if (strcmp(P.error, text) != 0)
        fail_msg("%s:%d: init said \"%s\"\n    wanted \"%s\"", file, line, P.error, text);
    assert_string_equal(F.claimed, "");
}

/* Gives the FAQ file a modification time of its own, so that a rewrite
 * within the same clock tick still reads as an edit. */
static void touch_faq(long seconds_ahead)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct timespec times[2] = { now, { now.tv_sec + seconds_ahead, 0 } };
    assert_int_equal(utimensat(AT_FDCWD, F.faq_path, times, 0), 0);
}

/* Fires the timers, as the loop would when faq_reload_s has passed, and
 * lets the blocking thread's reread finish. */
static void reload_tick(void)
{
    tick();
    run_jobs();
}

static void test_faq_reload(void **state)
{
    (void)state;
    cfg("faq_reload_s", "5");
    assert_int_equal(boot(), 0);
    to_bot("cat", "what are your opening hours?");
    expect("cat", GREETING);
    expect("cat", "We are open from 9 to 17, Monday to Friday.");
    quiet();

    /* Unchanged: looked at, not read again. */
    F.log[0] = '\0';
    reload_tick();
    assert_string_equal(F.log, "");

    /* Edited: the new answers apply from the next message on. */
    write_faq("- keywords: [hours]\n  answer: Open around the clock now.\n");
    touch_faq(10);
    reload_tick();
    assert_non_null(strstr(F.log, "FAQ reloaded from"));
    assert_non_null(strstr(F.log, ": 1 entries"));
    to_bot("cat", "and your hours?");
    expect("cat", "Open around the clock now.");
    quiet();

    /* A mistake in the file: said once, with its line; the last good FAQ
     * stays. */
    write_faq("- keywords: [hours]\n  answer: x\n  colour: red\n");
    touch_faq(20);
    reload_tick();
    char want[512];
    snprintf(want, sizeof want, "FAQ not reloaded, the one read before stays: %s:3: unknown "
             "key 'colour' (an entry has keywords and answer)", F.faq_path);
    assert_string_equal(F.log, want);
    F.log[0] = '\0';
    reload_tick();
    assert_string_equal(F.log, "");
    to_bot("cat", "hours?");
    expect("cat", "Open around the clock now.");

    /* Gone: said once too. */
    unlink(F.faq_path);
    reload_tick();
    assert_non_null(strstr(F.log, "cannot read"));
    F.log[0] = '\0';
    reload_tick();
    assert_string_equal(F.log, "");
    to_bot("cat", "hours?");
    expect("cat", "Open around the clock now.");
    quiet();
    write_faq(FAQ); /* for teardown */

    /* Off by default, and it needs an FAQ. */
    stop();
    F.ncfg = 0;
    cfg("faq_reload_s", "5");
    expect_init_error("bot.yaml:20: faq_reload_s: there is no faq to reread");
    cfg("faq_reload_s", "86401");
    expect_init_error("bot.yaml:20: faq_reload_s: must be a whole number from 0 to 86400, not "
                      "'86401'");
}

static void test_unknown_key(void **state)
{
    (void)state;
    char want[512];
    cfg("max_customers_per_agent", "2");
    cfg("max_customer_per_agent", "2"); /* misspelt */
    snprintf(want, sizeof want, "%s: max_customer_per_agent: unknown key (cs_bot has "
             "service_account, display_name, agents_group, greeting, "
             "max_customers_per_agent, assign_interval_ms, reveal_ids, faq and faq_reload_s)",
             F.cfg[find_cfg("max_customer_per_agent")].where);
    expect_init_error(want);
    /* A server without config_key cannot list them: the bot starts. */
    API.size = offsetof(imcore_host_api, config_key);
    assert_int_equal(boot(), 0);
    API.size = sizeof API;
}

static void test_bad_config(void **state)
{
    (void)state;
    char want[512], faq_where[32];
    cfg("max_customers_per_agent", "0");
    expect_init_error("bot.yaml:21: max_customers_per_agent: must be a whole number from 1 to "
                      "1000, not '0'");
    cfg("max_customers_per_agent", "1001");
    expect_init_error("bot.yaml:21: max_customers_per_agent: must be a whole number from 1 to "
                      "1000, not '1001'");
    cfg("max_customers_per_agent", "2");
    cfg("assign_interval_ms", "49");
    expect_init_error("bot.yaml:22: assign_interval_ms: must be a whole number from 50 to "
                      "600000, not '49'");
    cfg("assign_interval_ms", "1s");
    expect_init_error("bot.yaml:22: assign_interval_ms: must be a whole number from 50 to "
                      "600000, not '1s'");
    cfg("assign_interval_ms", "600000");
    cfg("reveal_ids", "yes");
    expect_init_error("bot.yaml:23: reveal_ids: must be true or false, not 'yes'");
    cfg("reveal_ids", "false");
    cfg("agents_group", " ");
    expect_init_error("bot.yaml:24: agents_group: must not be empty");
    cfg("agents_group", "agents");

    snprintf(faq_where, sizeof faq_where, "%s", F.cfg[find_cfg("faq")].where);
    write_faq("- keywords: [a]\n  answer: x\n- keywords: [b]\n  colour: red\n");
    snprintf(want, sizeof want, "%s:4: unknown key 'colour' (an entry has keywords and answer)",
             F.faq_path);
    expect_init_error(want);
    write_faq("- keywords: [a]\n  answer: x\n- keywords: [b]\n");
    snprintf(want, sizeof want, "%s:3: this entry has no answer", F.faq_path);
    expect_init_error(want);
    write_faq("keywords: [a]\nanswer: x\n");
    snprintf(want, sizeof want, "%s:1: the FAQ must be a list of entries, each \"- keywords: "
             "[...]\" with an \"answer: ...\"", F.faq_path);
    expect_init_error(want);
    write_faq("- keywords: [a, b\n  answer: x\n"); /* libyaml's own words */
    assert_int_not_equal(boot(), 0);
    snprintf(want, sizeof want, "%s:2: did not find expected ',' or ']', while parsing a flow "
             "sequence", F.faq_path);
    assert_string_equal(P.error, want);
    write_faq("- keywords: [a]\n  answer: \"caf\xe9\"\n"); /* Latin-1, not UTF-8 */
    snprintf(want, sizeof want, "%s:2: invalid trailing UTF-8 octet", F.faq_path);
    expect_init_error(want);
    write_faq("- keywords: []\n  answer: x\n");
    snprintf(want, sizeof want, "%s:1: keywords is an empty list", F.faq_path);
    expect_init_error(want);
    cfg("faq", "/nonexistent/faq.yaml");
    snprintf(want, sizeof want, "%s: faq: cannot read /nonexistent/faq.yaml: No such file or "
             "directory", faq_where);
    expect_init_error(want);

    /* A server without the functions the bot needs. */
    cfg("faq", F.faq_path);
    write_faq(FAQ);
    API.size = offsetof(imcore_host_api, kv_put);
    expect_init_error("this server's plugin API has no service accounts, timers or key-value "
                      "map (up to kv_each): cs_bot needs a newer server");
    API.size = sizeof API;

    F.claim_rc = IM_EEXIST;
    expect_init_error("cannot speak for 'support' (the default service_account): another "
                      "plugin speaks for it");
    cfg("service_account", "help");
    expect_init_error("bot.yaml:25: service_account: cannot speak for 'help': another plugin "
                      "speaks for it");
    F.claim_rc = 0;
    assert_int_equal(boot(), 0);
    assert_string_equal(F.claimed, "help");
    quiet();
    stop();

    /* Texts the server could never send. */
    F.max_body = 10;
    write_faq("- keywords: [a]\n  answer: short\n- keywords: [b]\n  answer: >\n"
              "    a bit too long\n");
    cfg("greeting", "Hi there.");
    snprintf(want, sizeof want, "%s:4: answer is 14 bytes, longer than a message may be (10)",
             F.faq_path);
    expect_init_error(want);
    cfg("greeting", "Hello, and welcome!");
    expect_init_error("bot.yaml:26: greeting: 19 bytes, longer than a message may be (10)");
    F.max_body = 0;
    assert_int_equal(boot(), 0);
}

int main(void)
{
    const char *path = getenv("CS_BOT_SO");
    if (!path || !*path)
        path = CS_BOT_SO;
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        fprintf(stderr, "cannot load %s: %s\n", path, dlerror());
        return 1;
    }
    entry = (imcore_plugin_init_fn)(uintptr_t)dlsym(dl, IMCORE_PLUGIN_INIT_SYMBOL);
    about = dlsym(dl, IMCORE_PLUGIN_ABOUT_SYMBOL);
    if (!entry || !about) {
        fprintf(stderr, "%s has no %s or no %s\n", path, IMCORE_PLUGIN_INIT_SYMBOL,
                IMCORE_PLUGIN_ABOUT_SYMBOL);
        dlclose(dl);
        return 1;
    }
    /* What the server checks before it calls init. */
    if (about->signature != IMCORE_PLUGIN_SIGNATURE || about->api_min > IMCORE_PLUGIN_API_VERSION ||
        about->api_max < IMCORE_PLUGIN_API_VERSION) {
        fprintf(stderr, "%s: its %s does not fit this header\n", path,
                IMCORE_PLUGIN_ABOUT_SYMBOL);
        dlclose(dl);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_faq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_and_assignment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fewest_then_oldest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_customers_keep_their_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_without_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reveal_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_logout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_logout_several, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_rating_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_waiting_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faq_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dlclose(dl);
    return failed;
}
