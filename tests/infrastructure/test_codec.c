/* tests/infrastructure/test_codec.c: framing, the type/body rule, and the
 * size bound used to pack without sizing twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "im_codec.h"
#include "imcore/message.h"

static void test_length_prefix(void **state)
{
    (void)state;
    uint8_t hdr[4] = { 0, 0, 1, 0 };
    uint32_t len;
    assert_int_equal(im_frame_length(hdr, 256, &len), IM_OK);
    assert_int_equal(len, 256);
    assert_int_equal(im_frame_length(hdr, 255, &len), IM_EFRAMESIZE);
    uint8_t zero[4] = { 0 };
    assert_int_equal(im_frame_length(zero, 256, &len), IM_EFRAMESIZE);
    uint8_t huge[4] = { 0x7f, 0xff, 0xff, 0xff };
    assert_int_equal(im_frame_length(huge, 65536, &len), IM_EFRAMESIZE);
    assert_int_equal(len, 0x7fffffffu);
}

static void test_round_trip_and_type_rule(void **state)
{
    (void)state;
    Imcore__Ping ping = IMCORE__PING__INIT;
    ping.client_time_ms = 42;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.type = IMCORE__TYPE__PING;
    env.request_id = 7;
    env.body_case = IMCORE__ENVELOPE__BODY_PING;
    env.ping = &ping;
    uint8_t *frame;
    size_t n;
    assert_int_equal(im_frame_encode(&env, &frame, &n), IM_OK);
    uint32_t len;
    assert_int_equal(im_frame_length(frame, 1024, &len), IM_OK);
    assert_int_equal(len + 4, n);
    Imcore__Envelope *out;
    assert_int_equal(im_envelope_decode(frame + 4, len, &out, NULL), IM_OK);
    assert_int_equal(out->request_id, 7);
    assert_int_equal(out->ping->client_time_ms, 42);
    im_envelope_free(out);
    free(frame);

    /* A type that names another body is refused. */
    env.type = IMCORE__TYPE__PONG;
    assert_int_equal(im_frame_encode(&env, &frame, &n), IM_OK);
    im_error err;
    assert_int_equal(im_envelope_decode(frame + 4, n - 4, &out, &err), IM_EPROTO);
    assert_null(out);
    assert_non_null(strstr(err.msg, "does not match"));
    free(frame);

    /* No body at all, and bytes that are not protobuf. */
    Imcore__Envelope empty = IMCORE__ENVELOPE__INIT;
    empty.type = IMCORE__TYPE__PING;
    assert_int_equal(im_frame_encode(&empty, &frame, &n), IM_OK);
    assert_int_equal(im_envelope_decode(frame + 4, n - 4, &out, NULL), IM_EPROTO);
    free(frame);
    const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0xff };
    assert_int_equal(im_envelope_decode(junk, sizeof junk, &out, NULL), IM_EPROTO);
}

static char *repeat(char ch, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, ch, n);
    s[n] = '\0';
    return s;
}

/* The bound must never be below the real size, whatever the lengths. */
static void test_size_bound(void **state)
{
    (void)state;
    static const size_t lens[] = { 0, 1, 15, 16, 127, 128, 200, 16383, 16384, 70000 };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char *s = repeat('a', lens[i] > 64 ? 64 : lens[i]);
        uint8_t *body = calloc(1, lens[i] + 1);
        Imcore__Delivery d = IMCORE__DELIVERY__INIT;
        d.kind = IMCORE__DELIVERY__KIND__GROUP;
        d.from = d.to = d.group = d.client_msg_id = d.from_name = d.conversation = s;
        d.body.data = body;
        d.body.len = lens[i];
        d.seq = UINT64_MAX;
        d.server_time_ms = UINT64_MAX;
        Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
        env.type = IMCORE__TYPE__DELIVERY;
        env.request_id = UINT64_MAX;
        env.body_case = IMCORE__ENVELOPE__BODY_DELIVERY;
        env.delivery = &d;
        assert_true(im_frame_size_bound(&env) >= im_frame_size(&env));

        Imcore__SendAck ack = IMCORE__SEND_ACK__INIT;
        ack.client_msg_id = s;
        ack.seq = ack.server_time_ms = UINT64_MAX;
        ack.delivered = UINT32_MAX;
        ack.duplicate = 1;
        env.body_case = IMCORE__ENVELOPE__BODY_SEND_ACK;
        env.type = IMCORE__TYPE__SEND_ACK;
        env.send_ack = &ack;
        assert_true(im_frame_size_bound(&env) >= im_frame_size(&env));

        Imcore__Error e = IMCORE__ERROR__INIT;
        e.code = IMCORE__ERROR_CODE__USER_EXISTS;
        e.message = e.client_msg_id = s;
        env.body_case = IMCORE__ENVELOPE__BODY_ERROR;
        env.type = IMCORE__TYPE__ERROR;
        env.error = &e;
        assert_true(im_frame_size_bound(&env) >= im_frame_size(&env));
        free(s);
        free(body);
    }
    /* Bodies without a cheap bound get the exact size. */
    Imcore__GroupList gl = IMCORE__GROUP_LIST__INIT;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.type = IMCORE__TYPE__GROUP_LIST;
    env.body_case = IMCORE__ENVELOPE__BODY_GROUP_LIST;
    env.group_list = &gl;
    assert_int_equal(im_frame_size_bound(&env), im_frame_size(&env));
}

/* IM_FRAME_RESERVE covers what a frame carries besides one body at its
 * largest: every id, name and number of a Delivery, and of a HistoryResult
 * holding it, at the longest the server lets through (imcore/message.h),
 * with the body as long as the largest frame allows, so that every length
 * prefix is as long as it gets. */
static void test_reserve_covers_worst_case(void **state)
{
    (void)state;
    size_t n = 16777216 - IM_FRAME_RESERVE; /* max_body_bytes at the top of its range */
    uint8_t *body = calloc(1, n);
    char *id = repeat('i', IM_USER_ID_MAX), *name = repeat('n', IM_DISPLAY_NAME_MAX);
    char *cmid = repeat('c', IM_CLIENT_MSG_ID_MAX), *conv = repeat('p', IM_CONVERSATION_ID_MAX);
    assert_non_null(body);
    Imcore__Delivery d = IMCORE__DELIVERY__INIT;
    d.kind = IMCORE__DELIVERY__KIND__GROUP;
    d.from = d.to = d.group = id; /* never both to and group: more than the worst */
    d.from_name = name;
    d.client_msg_id = cmid;
    d.conversation = conv;
    d.body.data = body;
    d.body.len = n;
    d.seq = d.server_time_ms = UINT64_MAX;
    Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
    env.type = IMCORE__TYPE__DELIVERY;
    env.request_id = UINT64_MAX;
    env.body_case = IMCORE__ENVELOPE__BODY_DELIVERY;
    env.delivery = &d;
    assert_true(imcore__envelope__get_packed_size(&env) <= n + IM_FRAME_RESERVE);

    Imcore__Delivery *one[] = { &d };
    Imcore__HistoryResult hr = IMCORE__HISTORY_RESULT__INIT;
    hr.n_messages = 1;
    hr.messages = one;
    hr.truncated = 1;
    env.type = IMCORE__TYPE__HISTORY_RESULT;
    env.body_case = IMCORE__ENVELOPE__BODY_HISTORY_RESULT;
    env.history_result = &hr;
    assert_true(imcore__envelope__get_packed_size(&env) <= n + IM_FRAME_RESERVE);
    free(body), free(id), free(name), free(cmid), free(conv);
}

static void test_error_codes_match(void **state)
{
    (void)state;
    assert_int_equal(im_wire_error_code(IM_EFRAMESIZE), IMCORE__ERROR_CODE__FRAME_TOO_LARGE);
    assert_int_equal(im_wire_error_code(IM_EUSEREXISTS), IMCORE__ERROR_CODE__USER_EXISTS);
    assert_int_equal(im_wire_error_code(IM_EPERM), IMCORE__ERROR_CODE__NOT_ALLOWED);
    assert_int_equal(im_wire_error_code(IM_EQUOTA), IMCORE__ERROR_CODE__QUOTA_EXCEEDED);
    assert_int_equal(im_wire_error_code(-1000), IMCORE__ERROR_CODE__INTERNAL);
    assert_int_equal(im_error_from_wire(IMCORE__ERROR_CODE__GROUP_FULL), IM_EFULL);
}

/* Decoding in an arena: small frames fit, a big one spills to malloc and
 * is freed at release (the sanitizer build checks that nothing leaks). */
static void test_arena_decode(void **state)
{
    (void)state;
    im_decode_arena a;
    assert_int_equal(im_decode_arena_init(&a, 512), IM_OK);
    static const size_t sizes[] = { 10, 4000 };
    for (size_t k = 0; k < 2; k++) {
        size_t body_len = sizes[k];
        uint8_t *body = calloc(1, body_len);
        Imcore__PrivateMessage pm = IMCORE__PRIVATE_MESSAGE__INIT;
        pm.to = "bob";
        pm.client_msg_id = "m-1";
        pm.body.data = body;
        pm.body.len = body_len;
        Imcore__Envelope env = IMCORE__ENVELOPE__INIT;
        env.type = IMCORE__TYPE__PRIVATE_MESSAGE;
        env.body_case = IMCORE__ENVELOPE__BODY_PRIVATE_MESSAGE;
        env.private_message = &pm;
        uint8_t *frame;
        size_t n;
        assert_int_equal(im_frame_encode(&env, &frame, &n), IM_OK);
        Imcore__Envelope *out;
        assert_int_equal(im_envelope_decode_in(&a, frame + 4, n - 4, &out, NULL), IM_OK);
        assert_string_equal(out->private_message->to, "bob");
        assert_int_equal(out->private_message->body.len, body_len);
        assert_true(body_len < 100 ? a.spilled == 0 : a.spilled > 0);
        im_envelope_release(&a, out);
        assert_int_equal(a.used, 0);
        free(frame);
        free(body);
    }
    const uint8_t junk[] = { 0x0a, 0xff, 0x01 };
    Imcore__Envelope *out;
    assert_int_equal(im_envelope_decode_in(&a, junk, sizeof junk, &out, NULL), IM_EPROTO);
    assert_int_equal(a.used, 0);
    im_decode_arena_fini(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length_prefix),
        cmocka_unit_test(test_round_trip_and_type_rule),
        cmocka_unit_test(test_size_bound),
        cmocka_unit_test(test_reserve_covers_worst_case),
        cmocka_unit_test(test_error_codes_match),
        cmocka_unit_test(test_arena_decode),
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
