/* tests/domain/test_message.c: message validation, one refusal at a time,
 * and conversation ids. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "domain/message.h"

#define MAX_BODY 16

static const uint8_t body16[MAX_BODY + 1] = "0123456789abcdefX";

/* A private message that passes every rule; each test breaks one. */
static im_message good_private(void)
{
    return (im_message){
        .kind = IM_MESSAGE_PRIVATE, .sender = "alice", .target = "bob",
        .client_msg_id = "c-1", .body = body16, .body_len = 5,
    };
}

static im_message good_group(void)
{
    return (im_message){
        .kind = IM_MESSAGE_GROUP, .sender = "alice", .target = "friends",
        .client_msg_id = "g", .body = body16, .body_len = 1,
    };
}

static void assert_refused(const im_message *m, int code)
{
    im_message copy = *m;
    im_error err = { 0 };
    assert_int_equal(im_message_validate(m, MAX_BODY, &err), code);
    assert_int_equal(err.code, code);
    assert_true(err.msg[0] != '\0');
    assert_int_equal(im_message_validate(m, MAX_BODY, NULL), code);
    /* Validation only reads. */
    assert_memory_equal(&copy, m, sizeof copy);
}

static void assert_valid(const im_message *m)
{
    im_error err = { 0 };
    assert_int_equal(im_message_validate(m, MAX_BODY, &err), IM_OK);
}

/* ---- validate ---- */

static void valid_private_and_group(void **state)
{
    (void)state;
    im_message m = good_private();
    assert_valid(&m);
    m = good_group();
    assert_valid(&m);
}

static void null_message_refused(void **state)
{
    (void)state;
    assert_int_equal(im_message_validate(NULL, MAX_BODY, NULL), IM_EINVAL);
}

static void unknown_kind_refused(void **state)
{
    (void)state;
    im_message m = good_private();
    m.kind = (im_message_kind)0;
    assert_refused(&m, IM_EINVAL);
    m.kind = (im_message_kind)3;
    assert_refused(&m, IM_EINVAL);
    m.kind = (im_message_kind)-1;
    assert_refused(&m, IM_EINVAL);
}

static void bad_sender_refused(void **state)
{
    (void)state;
    char too_long[IM_USER_ID_MAX + 2];
    memset(too_long, 's', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    const char *bad[] = { NULL, "", ".a", "-a", "a:b", "a b", too_long };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        im_message m = good_private();
        m.sender = bad[i];
        assert_refused(&m, IM_EINVAL);
        m = good_group();
        m.sender = bad[i];
        assert_refused(&m, IM_EINVAL);
    }
}

static void bad_target_refused(void **state)
{
    (void)state;
    char too_long[IM_USER_ID_MAX + 2];
    memset(too_long, 't', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    const char *bad[] = { NULL, "", ".a", "-a", "a:b", "a/b", too_long };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        im_message m = good_private();
        m.target = bad[i];
        assert_refused(&m, IM_EINVAL);
        m = good_group();
        m.target = bad[i];
        assert_refused(&m, IM_EINVAL);
    }
}

static void ids_of_32_ok(void **state)
{
    (void)state;
    char a[IM_USER_ID_MAX + 1], b[IM_USER_ID_MAX + 1];
    memset(a, 'a', IM_USER_ID_MAX);
    a[IM_USER_ID_MAX] = '\0';
    memset(b, 'b', IM_USER_ID_MAX);
    b[IM_USER_ID_MAX] = '\0';
    im_message m = good_private();
    m.sender = a;
    m.target = b;
    assert_valid(&m);
}

static void private_to_self_refused(void **state)
{
    (void)state;
    im_message m = good_private();
    m.target = "alice";
    assert_refused(&m, IM_EINVAL);
    /* Ids are case-sensitive: Alice is someone else. */
    m.target = "Alice";
    assert_valid(&m);
}

static void group_named_like_sender_ok(void **state)
{
    (void)state;
    /* The self rule is for private messages; a group may share a user's name. */
    im_message m = good_group();
    m.target = "alice";
    assert_valid(&m);
}

static void empty_body_refused(void **state)
{
    (void)state;
    im_message m = good_private();
    m.body_len = 0;
    assert_refused(&m, IM_EINVAL);
    m.body = NULL;
    assert_refused(&m, IM_EINVAL);
}

static void missing_body_refused(void **state)
{
    (void)state;
    im_message m = good_private();
    m.body = NULL;
    m.body_len = 3;
    assert_refused(&m, IM_EINVAL);
}

static void body_size_boundary(void **state)
{
    (void)state;
    im_message m = good_private();
    m.body_len = MAX_BODY;
    assert_valid(&m);
    m.body_len = MAX_BODY + 1;
    assert_refused(&m, IM_ETOOBIG);
    m.body_len = SIZE_MAX;
    assert_refused(&m, IM_ETOOBIG);
    m.body_len = 1;
    assert_valid(&m);
}

static void body_limit_is_the_callers(void **state)
{
    (void)state;
    im_message m = good_group();
    m.body_len = 1;
    assert_int_equal(im_message_validate(&m, 1, NULL), IM_OK);
    assert_int_equal(im_message_validate(&m, 0, NULL), IM_ETOOBIG);
    m.body_len = 2;
    assert_int_equal(im_message_validate(&m, 1, NULL), IM_ETOOBIG);
}

static void body_bytes_are_opaque(void **state)
{
    (void)state;
    /* The body is not text: NULs and invalid UTF-8 are the client's business. */
    static const uint8_t bin[] = { 0x00, 0xff, 0xc0, 0x80, 0x00 };
    im_message m = good_private();
    m.body = bin;
    m.body_len = sizeof bin;
    assert_valid(&m);
}

static void client_msg_id_boundary(void **state)
{
    (void)state;
    char cid[IM_CLIENT_MSG_ID_MAX + 2];
    memset(cid, 'c', IM_CLIENT_MSG_ID_MAX);
    cid[IM_CLIENT_MSG_ID_MAX] = '\0';
    im_message m = good_private();
    m.client_msg_id = cid;
    assert_valid(&m);

    memset(cid, 'c', IM_CLIENT_MSG_ID_MAX + 1);
    cid[IM_CLIENT_MSG_ID_MAX + 1] = '\0';
    assert_refused(&m, IM_EINVAL);
}

/* Every message names itself: there is nothing to de-duplicate by else. */
static void client_msg_id_empty_or_null_refused(void **state)
{
    (void)state;
    im_message m = good_private();
    m.client_msg_id = "";
    assert_refused(&m, IM_EINVAL);
    m.client_msg_id = NULL;
    assert_refused(&m, IM_EINVAL);
    m = good_group();
    m.client_msg_id = "";
    assert_refused(&m, IM_EINVAL);
    m.client_msg_id = "x"; /* one byte is enough */
    assert_valid(&m);
}

static void client_msg_id_very_long_refused(void **state)
{
    (void)state;
    static char cid[1 << 16];
    memset(cid, 'q', sizeof cid - 1);
    im_message m = good_group();
    m.client_msg_id = cid;
    assert_refused(&m, IM_EINVAL);
}

static void seq_and_time_are_not_checked(void **state)
{
    (void)state;
    /* They are the server's to set, before or after validation. */
    im_message m = good_private();
    m.seq = 99;
    m.server_time_ms = UINT64_MAX;
    assert_valid(&m);
}

/* ---- conversation ids ---- */

static void private_conversation_symmetric(void **state)
{
    (void)state;
    char ab[IM_CONVERSATION_ID_MAX + 1], ba[IM_CONVERSATION_ID_MAX + 1];
    im_message m = good_private(); /* alice -> bob */
    assert_int_equal(im_message_conversation_id(&m, ab, sizeof ab), 11);
    assert_string_equal(ab, "p:alice:bob");
    m.sender = "bob";
    m.target = "alice";
    assert_int_equal(im_message_conversation_id(&m, ba, sizeof ba), 11);
    assert_string_equal(ba, "p:alice:bob");
}

static void private_conversation_orders_bytewise(void **state)
{
    (void)state;
    char buf[IM_CONVERSATION_ID_MAX + 1];
    struct { const char *x, *y, *want; } cases[] = {
        { "Zed", "abe", "p:Zed:abe" },   /* 'Z' < 'a' in ASCII */
        { "abe", "Zed", "p:Zed:abe" },
        { "ab", "abc", "p:ab:abc" },     /* a prefix sorts first */
        { "abc", "ab", "p:ab:abc" },
        { "a.b", "a-b", "p:a-b:a.b" },   /* '-' < '.' */
        { "9", "_", "p:9:_" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        im_message m = good_private();
        m.sender = cases[i].x;
        m.target = cases[i].y;
        int n = im_message_conversation_id(&m, buf, sizeof buf);
        assert_int_equal(n, (int)strlen(cases[i].want));
        assert_string_equal(buf, cases[i].want);
    }
}

static void group_conversation(void **state)
{
    (void)state;
    char buf[IM_CONVERSATION_ID_MAX + 1];
    im_message m = good_group();
    assert_int_equal(im_message_conversation_id(&m, buf, sizeof buf), 9);
    assert_string_equal(buf, "g:friends");
    /* Every member's message lands in the same conversation. */
    m.sender = "zoe";
    assert_int_equal(im_message_conversation_id(&m, buf, sizeof buf), 9);
    assert_string_equal(buf, "g:friends");
}

static void longest_conversation_fits(void **state)
{
    (void)state;
    char a[IM_USER_ID_MAX + 1], b[IM_USER_ID_MAX + 1];
    memset(a, 'a', IM_USER_ID_MAX);
    a[IM_USER_ID_MAX] = '\0';
    memset(b, 'b', IM_USER_ID_MAX);
    b[IM_USER_ID_MAX] = '\0';
    char buf[IM_CONVERSATION_ID_MAX + 1];
    im_message m = good_private();
    m.sender = b;
    m.target = a;
    assert_int_equal(im_message_conversation_id(&m, buf, sizeof buf), IM_CONVERSATION_ID_MAX);
    assert_int_equal(strlen(buf), IM_CONVERSATION_ID_MAX);
    assert_memory_equal(buf, "p:", 2);
    assert_memory_equal(buf + 2, a, IM_USER_ID_MAX);
    assert_int_equal(buf[2 + IM_USER_ID_MAX], ':');
    assert_string_equal(buf + 3 + IM_USER_ID_MAX, b);
}

static void conversation_buffer_boundary(void **state)
{
    (void)state;
    char buf[32];
    im_message m = good_private(); /* "p:alice:bob": 11 bytes + NUL */
    memset(buf, '#', sizeof buf);
    assert_int_equal(im_message_conversation_id(&m, buf, 12), 11);
    assert_string_equal(buf, "p:alice:bob");

    memset(buf, '#', sizeof buf);
    assert_int_equal(im_message_conversation_id(&m, buf, 11), IM_EINVAL);
    assert_int_equal(im_message_conversation_id(&m, buf, 1), IM_EINVAL);
    assert_int_equal(im_message_conversation_id(&m, buf, 0), IM_EINVAL);
    /* A refusal writes nothing. */
    for (size_t i = 0; i < sizeof buf; i++)
        assert_int_equal(buf[i], '#');
    assert_int_equal(im_message_conversation_id(&m, NULL, 64), IM_EINVAL);

    m = good_group(); /* "g:friends": 9 bytes + NUL */
    assert_int_equal(im_message_conversation_id(&m, buf, 10), 9);
    assert_string_equal(buf, "g:friends");
    memset(buf, '#', sizeof buf);
    assert_int_equal(im_message_conversation_id(&m, buf, 9), IM_EINVAL);
    assert_int_equal(buf[0], '#');
}

static void conversation_refuses_bad_ids_and_kind(void **state)
{
    (void)state;
    char buf[IM_CONVERSATION_ID_MAX + 1];
    const char *bad[] = { NULL, "", "a:b", ".a", "a b" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        im_message m = good_private();
        m.target = bad[i];
        assert_int_equal(im_message_conversation_id(&m, buf, sizeof buf), IM_EINVAL);
        m = good_private();
        m.sender = bad[i];
        assert_int_equal(im_message_conversation_id(&m, buf, sizeof buf), IM_EINVAL);
        m = good_group();
        m.target = bad[i];
        assert_int_equal(im_message_conversation_id(&m, buf, sizeof buf), IM_EINVAL);
    }
    im_message m = good_private();
    m.kind = (im_message_kind)0;
    assert_int_equal(im_message_conversation_id(&m, buf, sizeof buf), IM_EINVAL);
    assert_int_equal(im_message_conversation_id(NULL, buf, sizeof buf), IM_EINVAL);
}

/* An ack's conversation: a group's, or a pair that the acking user is in. */
static void conversation_check_rules(void **state)
{
    (void)state;
    bool group = true;
    assert_int_equal(im_conversation_check("bob", "p:alice:bob", &group, NULL), IM_OK);
    assert_false(group);
    assert_int_equal(im_conversation_check("alice", "p:alice:bob", &group, NULL), IM_OK);
    assert_int_equal(im_conversation_check("bob", "g:room", &group, NULL), IM_OK);
    assert_true(group);
    im_error err = { 0 };
    assert_int_equal(im_conversation_check("carol", "p:alice:bob", &group, &err), IM_EINVAL);
    assert_non_null(strstr(err.msg, "not in conversation"));
    /* a > b, a missing half, bad ids, an unknown kind */
    assert_int_equal(im_conversation_check("bob", "p:bob:alice", &group, NULL), IM_EINVAL);
    assert_int_equal(im_conversation_check("bob", "p:bob", &group, NULL), IM_EINVAL);
    assert_int_equal(im_conversation_check("bob", "p::bob", &group, NULL), IM_EINVAL);
    assert_int_equal(im_conversation_check("bob", "g:", &group, NULL), IM_EINVAL);
    assert_int_equal(im_conversation_check("bob", "x:room", &group, NULL), IM_EINVAL);
    char longest[IM_CONVERSATION_ID_MAX + 2];
    memset(longest, 'a', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    memcpy(longest, "g:", 2);
    assert_int_equal(im_conversation_check("bob", longest, &group, &err), IM_EINVAL);
    assert_non_null(strstr(err.msg, "longer than"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_private_and_group),
        cmocka_unit_test(null_message_refused),
        cmocka_unit_test(unknown_kind_refused),
        cmocka_unit_test(bad_sender_refused),
        cmocka_unit_test(bad_target_refused),
        cmocka_unit_test(ids_of_32_ok),
        cmocka_unit_test(private_to_self_refused),
        cmocka_unit_test(group_named_like_sender_ok),
        cmocka_unit_test(empty_body_refused),
        cmocka_unit_test(missing_body_refused),
        cmocka_unit_test(body_size_boundary),
        cmocka_unit_test(body_limit_is_the_callers),
        cmocka_unit_test(body_bytes_are_opaque),
        cmocka_unit_test(client_msg_id_boundary),
        cmocka_unit_test(client_msg_id_empty_or_null_refused),
        cmocka_unit_test(client_msg_id_very_long_refused),
        cmocka_unit_test(seq_and_time_are_not_checked),
        cmocka_unit_test(private_conversation_symmetric),
        cmocka_unit_test(private_conversation_orders_bytewise),
        cmocka_unit_test(group_conversation),
        cmocka_unit_test(longest_conversation_fits),
        cmocka_unit_test(conversation_buffer_boundary),
        cmocka_unit_test(conversation_refuses_bad_ids_and_kind),
        cmocka_unit_test(conversation_check_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
