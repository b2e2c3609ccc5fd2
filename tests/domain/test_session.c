/* tests/domain/test_session.c: the session state machine and the idle rule.
 * Every transition, legal and illegal, and that a refusal changes nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "domain/session.h"

static void assert_same_session(const im_session *a, const im_session *b)
{
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->state, b->state);
    assert_string_equal(a->user_id, b->user_id);
    assert_string_equal(a->display_name, b->display_name);
    assert_int_equal(a->connected_ms, b->connected_ms);
    assert_int_equal(a->last_seen_ms, b->last_seen_ms);
    assert_int_equal(a->close_reason, b->close_reason);
}

static void init_starts_connected(void **state)
{
    (void)state;
    im_session s;
    memset(&s, 0xAB, sizeof s);
    im_session_init(&s, 42, 1000);
    assert_int_equal(s.id, 42);
    assert_int_equal(s.state, IM_SESSION_CONNECTED);
    assert_string_equal(s.user_id, "");
    assert_string_equal(s.display_name, "");
    assert_int_equal(s.connected_ms, 1000);
    assert_int_equal(s.last_seen_ms, 1000);
    assert_int_equal(s.close_reason, 0);
    assert_false(im_session_is_authenticated(&s));
    assert_false(im_session_is_closed(&s));
}

static void connected_to_authenticated(void **state)
{
    (void)state;
    im_session s;
    im_session_init(&s, 1, 0);
    im_error err = { 0 };
    assert_int_equal(im_session_authenticate(&s, "alice", "Alice A.", &err), IM_OK);
    assert_int_equal(s.state, IM_SESSION_AUTHENTICATED);
    assert_true(im_session_is_authenticated(&s));
    assert_false(im_session_is_closed(&s));
    assert_string_equal(s.user_id, "alice");
    assert_string_equal(s.display_name, "Alice A.");
}

static void authenticate_copies_its_strings(void **state)
{
    (void)state;
    im_session s;
    im_session_init(&s, 1, 0);
    char id[] = "carol", name[] = "Carol";
    assert_int_equal(im_session_authenticate(&s, id, name, NULL), IM_OK);
    id[0] = 'X';
    name[0] = 'X';
    assert_string_equal(s.user_id, "carol");
    assert_string_equal(s.display_name, "Carol");
}

static void empty_or_null_display_name_takes_the_id(void **state)
{
    (void)state;
    im_session s;
    im_session_init(&s, 1, 0);
    assert_int_equal(im_session_authenticate(&s, "bob", "", NULL), IM_OK);
    assert_string_equal(s.display_name, "bob");

    im_session_init(&s, 2, 0);
    assert_int_equal(im_session_authenticate(&s, "bob", NULL, NULL), IM_OK);
    assert_string_equal(s.display_name, "bob");
}

static void longest_id_and_name_fit(void **state)
{
    (void)state;
    char id[IM_USER_ID_MAX + 1], name[IM_DISPLAY_NAME_MAX + 1];
    memset(id, 'i', IM_USER_ID_MAX);
    id[IM_USER_ID_MAX] = '\0';
    memset(name, 'n', IM_DISPLAY_NAME_MAX);
    name[IM_DISPLAY_NAME_MAX] = '\0';
    im_session s;
    im_session_init(&s, 1, 0);
    assert_int_equal(im_session_authenticate(&s, id, name, NULL), IM_OK);
    assert_string_equal(s.user_id, id);
    assert_string_equal(s.display_name, name);

    im_session_init(&s, 2, 0);
    assert_int_equal(im_session_authenticate(&s, id, "", NULL), IM_OK);
    assert_string_equal(s.display_name, id);
}

static void authenticate_bad_id_refused_state_unchanged(void **state)
{
    (void)state;
    char too_long[IM_USER_ID_MAX + 2];
    memset(too_long, 'x', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    const char *bad[] = { "", NULL, ".a", "-a", "a b", too_long };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        im_session s, before;
        im_session_init(&s, 7, 100);
        before = s;
        im_error err = { 0 };
        assert_int_equal(im_session_authenticate(&s, bad[i], "Name", &err), IM_EINVAL);
        assert_int_equal(err.code, IM_EINVAL);
        assert_same_session(&s, &before);
        /* And the session can still authenticate properly afterwards. */
        assert_int_equal(im_session_authenticate(&s, "good", "Name", NULL), IM_OK);
    }
}

static void authenticate_bad_name_refused_state_unchanged(void **state)
{
    (void)state;
    char too_long[IM_DISPLAY_NAME_MAX + 2];
    memset(too_long, 'x', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    const char *bad[] = { "a\nb", "\x7f", "\xc0\x80", "\xed\xa0\x80", "\xff", too_long };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        im_session s, before;
        im_session_init(&s, 7, 100);
        before = s;
        im_error err = { 0 };
        assert_int_equal(im_session_authenticate(&s, "alice", bad[i], &err), IM_EINVAL);
        assert_int_equal(err.code, IM_EINVAL);
        assert_same_session(&s, &before);
    }
}

static void authenticated_cannot_authenticate_again(void **state)
{
    (void)state;
    im_session s, before;
    im_session_init(&s, 1, 0);
    assert_int_equal(im_session_authenticate(&s, "alice", "Alice", NULL), IM_OK);
    before = s;
    im_error err = { 0 };
    assert_int_equal(im_session_authenticate(&s, "mallory", "M", &err), IM_ESTATE);
    assert_int_equal(err.code, IM_ESTATE);
    assert_same_session(&s, &before);
    /* Not even as the same user. */
    assert_int_equal(im_session_authenticate(&s, "alice", "Alice", NULL), IM_ESTATE);
    assert_same_session(&s, &before);
}

static void state_is_checked_before_arguments(void **state)
{
    (void)state;
    /* A closed session says ESTATE even to bad arguments: the state is the
     * first thing wrong with the call. */
    im_session s;
    im_session_init(&s, 1, 0);
    im_session_close(&s, 0);
    assert_int_equal(im_session_authenticate(&s, "", "\xff", NULL), IM_ESTATE);
}

static void closed_cannot_authenticate(void **state)
{
    (void)state;
    im_session s, before;
    im_session_init(&s, 1, 0);
    assert_int_equal(im_session_close(&s, IM_EIDLE), IM_OK);
    before = s;
    im_error err = { 0 };
    assert_int_equal(im_session_authenticate(&s, "alice", "Alice", &err), IM_ESTATE);
    assert_int_equal(err.code, IM_ESTATE);
    assert_same_session(&s, &before);
    assert_false(im_session_is_authenticated(&s));
}

static void connected_to_closed(void **state)
{
    (void)state;
    im_session s;
    im_session_init(&s, 1, 0);
    assert_int_equal(im_session_close(&s, IM_EPROTO), IM_OK);
    assert_int_equal(s.state, IM_SESSION_CLOSED);
    assert_true(im_session_is_closed(&s));
    assert_false(im_session_is_authenticated(&s));
    assert_int_equal(s.close_reason, IM_EPROTO);
}

static void authenticated_to_closed(void **state)
{
    (void)state;
    im_session s;
    im_session_init(&s, 1, 0);
    assert_int_equal(im_session_authenticate(&s, "alice", "", NULL), IM_OK);
    assert_int_equal(im_session_close(&s, IM_EREPLACED), IM_OK);
    assert_true(im_session_is_closed(&s));
    assert_false(im_session_is_authenticated(&s));
    assert_int_equal(s.close_reason, IM_EREPLACED);
    /* Who it was is still known after the close, for the goodbye path. */
    assert_string_equal(s.user_id, "alice");
}

static void clean_close_reason_zero(void **state)
{
    (void)state;
    im_session s;
    im_session_init(&s, 1, 0);
    assert_int_equal(im_session_close(&s, 0), IM_OK);
    assert_true(im_session_is_closed(&s));
    assert_int_equal(s.close_reason, 0);
}

static void closed_to_closed_refused_first_reason_kept(void **state)
{
    (void)state;
    im_session s, before;
    im_session_init(&s, 1, 0);
    assert_int_equal(im_session_close(&s, IM_EREPLACED), IM_OK);
    before = s;
    assert_int_equal(im_session_close(&s, IM_EIO), IM_ESTATE);
    assert_int_equal(im_session_close(&s, 0), IM_ESTATE);
    assert_int_equal(s.close_reason, IM_EREPLACED);
    assert_same_session(&s, &before);
}

static void touch_moves_forward_only(void **state)
{
    (void)state;
    im_session s;
    im_session_init(&s, 1, 1000);
    im_session_touch(&s, 1500);
    assert_int_equal(s.last_seen_ms, 1500);
    im_session_touch(&s, 1200);
    assert_int_equal(s.last_seen_ms, 1500);
    im_session_touch(&s, 0);
    assert_int_equal(s.last_seen_ms, 1500);
    im_session_touch(&s, 1500);
    assert_int_equal(s.last_seen_ms, 1500);
    im_session_touch(&s, 1501);
    assert_int_equal(s.last_seen_ms, 1501);
    im_session_touch(&s, UINT64_MAX);
    assert_int_equal(s.last_seen_ms, UINT64_MAX);
    im_session_touch(&s, 5);
    assert_int_equal(s.last_seen_ms, UINT64_MAX);
    /* connected_ms is when it started, not when it was last heard. */
    assert_int_equal(s.connected_ms, 1000);
}

static void idle_timeout_zero_never_idle(void **state)
{
    (void)state;
    im_session s;
    im_session_init(&s, 1, 0);
    assert_false(im_session_is_idle(&s, 0, 0));
    assert_false(im_session_is_idle(&s, 1000000, 0));
    assert_false(im_session_is_idle(&s, UINT64_MAX, 0));
}

static void idle_boundary_at_exactly_timeout(void **state)
{
    (void)state;
    im_session s;
    im_session_init(&s, 1, 1000);
    assert_false(im_session_is_idle(&s, 1000, 500));
    assert_false(im_session_is_idle(&s, 1499, 500));
    assert_true(im_session_is_idle(&s, 1500, 500));
    assert_true(im_session_is_idle(&s, 1501, 500));
    /* A touch restarts the count. */
    im_session_touch(&s, 1400);
    assert_false(im_session_is_idle(&s, 1500, 500));
    assert_false(im_session_is_idle(&s, 1899, 500));
    assert_true(im_session_is_idle(&s, 1900, 500));
}

static void idle_with_clock_behind_last_seen(void **state)
{
    (void)state;
    im_session s;
    im_session_init(&s, 1, 5000);
    /* A clock read before the last touch must not wrap into "idle". */
    assert_false(im_session_is_idle(&s, 4000, 1));
    assert_false(im_session_is_idle(&s, 0, 1));
}

static void idle_at_the_ends_of_the_clock(void **state)
{
    (void)state;
    im_session s;
    im_session_init(&s, 1, 0);
    assert_true(im_session_is_idle(&s, UINT64_MAX, UINT64_MAX));
    assert_false(im_session_is_idle(&s, UINT64_MAX - 1, UINT64_MAX));
    assert_true(im_session_is_idle(&s, 1, 1));
}

static void state_names(void **state)
{
    (void)state;
    assert_string_equal(im_session_state_name(IM_SESSION_CONNECTED), "CONNECTED");
    assert_string_equal(im_session_state_name(IM_SESSION_AUTHENTICATED), "AUTHENTICATED");
    assert_string_equal(im_session_state_name(IM_SESSION_CLOSED), "CLOSED");
    assert_string_equal(im_session_state_name((im_session_state)99), "UNKNOWN");
}

static void send_bucket_limits_rate_and_burst(void **state)
{
    (void)state;
    im_session s;
    im_session_init(&s, 1, 1000);
    for (int i = 0; i < 3; i++)
        assert_true(im_session_take_send(&s, 1000, 10, 3)); /* the burst */
    assert_false(im_session_take_send(&s, 1000, 10, 3));
    assert_false(im_session_take_send(&s, 1099, 10, 3)); /* 0.99 of a token */
    assert_true(im_session_take_send(&s, 1100, 10, 3));  /* 10/s: one per 100 ms */
    assert_false(im_session_take_send(&s, 1100, 10, 3));
    /* A long pause refills only up to the burst. */
    for (int i = 0; i < 3; i++)
        assert_true(im_session_take_send(&s, 60000, 10, 3));
    assert_false(im_session_take_send(&s, 60000, 10, 3));
    /* Time going backwards adds nothing. */
    assert_false(im_session_take_send(&s, 50000, 10, 3));
}

/* Acks have a bucket of their own: a session that has used its sends can
 * still ack, and the other way round. */
static void ack_bucket_is_apart_from_sends(void **state)
{
    (void)state;
    im_session s;
    im_session_init(&s, 1, 1000);
    for (int i = 0; i < 3; i++)
        assert_true(im_session_take_send(&s, 1000, 10, 3));
    assert_false(im_session_take_send(&s, 1000, 10, 3));
    for (int i = 0; i < 30; i++)
        assert_true(im_session_take_ack(&s, 1000, 100, 30));
    assert_false(im_session_take_ack(&s, 1000, 100, 30));
    assert_true(im_session_take_ack(&s, 1010, 100, 30)); /* 100/s: one per 10 ms */
    assert_false(im_session_take_send(&s, 1010, 10, 3));  /* sends still empty */
    assert_true(im_session_take_ack(&s, 1010, 0, 0));     /* rate 0: unlimited */
}

static void unmetered_session_is_never_limited(void **state)
{
    (void)state;
    im_session s, metered;
    im_session_init(&s, 1, 1000);
    im_session_init(&metered, 2, 1000);
    im_session_set_unmetered(&s);
    for (int i = 0; i < 1000; i++)
        assert_true(im_session_take_send(&s, 1000, 10, 3));
    for (int i = 0; i < 3; i++)
        assert_true(im_session_take_send(&metered, 1000, 10, 3));
    assert_false(im_session_take_send(&metered, 1000, 10, 3)); /* only the one it was set on */
}

static void send_bucket_zero_rate_is_unlimited(void **state)
{
    (void)state;
    im_session s;
    im_session_init(&s, 1, 0);
    for (int i = 0; i < 100000; i++)
        assert_true(im_session_take_send(&s, 0, 0, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(send_bucket_limits_rate_and_burst),
        cmocka_unit_test(send_bucket_zero_rate_is_unlimited),
        cmocka_unit_test(init_starts_connected),
        cmocka_unit_test(connected_to_authenticated),
        cmocka_unit_test(authenticate_copies_its_strings),
        cmocka_unit_test(empty_or_null_display_name_takes_the_id),
        cmocka_unit_test(longest_id_and_name_fit),
        cmocka_unit_test(authenticate_bad_id_refused_state_unchanged),
        cmocka_unit_test(authenticate_bad_name_refused_state_unchanged),
        cmocka_unit_test(authenticated_cannot_authenticate_again),
        cmocka_unit_test(state_is_checked_before_arguments),
        cmocka_unit_test(closed_cannot_authenticate),
        cmocka_unit_test(connected_to_closed),
        cmocka_unit_test(authenticated_to_closed),
        cmocka_unit_test(clean_close_reason_zero),
        cmocka_unit_test(closed_to_closed_refused_first_reason_kept),
        cmocka_unit_test(touch_moves_forward_only),
        cmocka_unit_test(idle_timeout_zero_never_idle),
        cmocka_unit_test(idle_boundary_at_exactly_timeout),
        cmocka_unit_test(idle_with_clock_behind_last_seen),
        cmocka_unit_test(idle_at_the_ends_of_the_clock),
        cmocka_unit_test(state_names),
        cmocka_unit_test(unmetered_session_is_never_limited),
        cmocka_unit_test(ack_bucket_is_apart_from_sends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
