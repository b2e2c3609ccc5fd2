/* tests/domain/test_handover.c: the page of unacked messages a login hands
 * over, and when the next one may go. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "domain/handover.h"

static void test_empty_page_is_done(void **state)
{
    (void)state;
    im_handover_page p = { 0 };
    assert_true(im_handover_done(&p));
    assert_true(im_handover_acked(&p, "p:a:b", 3)); /* not in the page: passed over */
    im_handover_clear(&p);
}

static void test_every_conversation_must_be_acked_up_to_what_was_sent(void **state)
{
    (void)state;
    im_handover_page p = { 0 };
    im_error err = { 0 };
    assert_int_equal(im_handover_sent(&p, "g:team", 7, 10, &err), IM_OK);
    assert_int_equal(im_handover_sent(&p, "p:alice:bob", 1, 5, &err), IM_OK);
    assert_int_equal(im_handover_sent(&p, "p:alice:bob", 2, 5, &err), IM_OK);
    assert_int_equal(im_handover_sent(&p, "p:bob:carol", 4, 1, &err), IM_OK);
    assert_int_equal(p.n, 3);
    assert_int_equal(p.outstanding, 3);
    assert_int_equal(p.messages, 4);
    assert_int_equal(p.bytes, 21);
    assert_false(im_handover_done(&p));

    /* An ack short of what was sent completes nothing. */
    assert_false(im_handover_acked(&p, "p:alice:bob", 1));
    assert_int_equal(p.outstanding, 3);
    /* Acks come in any order; one past what was sent counts too (the
     * client may ack a later message of the conversation). */
    assert_false(im_handover_acked(&p, "p:bob:carol", 9));
    assert_false(im_handover_acked(&p, "p:alice:bob", 2));
    assert_false(im_handover_acked(&p, "p:alice:bob", 2)); /* again: no double count */
    assert_int_equal(p.outstanding, 1);
    assert_false(im_handover_acked(&p, "p:zed:zoe", 100)); /* not in the page */
    assert_false(im_handover_acked(&p, NULL, 100));
    assert_true(im_handover_acked(&p, "g:team", 7));
    assert_true(im_handover_done(&p));
    im_handover_clear(&p);
    assert_null(p.entries);
    assert_int_equal(p.n, 0);
}

static void test_a_later_message_reopens_an_acked_conversation(void **state)
{
    (void)state;
    im_handover_page p = { 0 };
    assert_int_equal(im_handover_sent(&p, "p:a:b", 1, 0, NULL), IM_OK);
    assert_true(im_handover_acked(&p, "p:a:b", 1));
    assert_int_equal(im_handover_sent(&p, "p:a:b", 2, 0, NULL), IM_OK);
    assert_false(im_handover_done(&p));
    assert_int_equal(p.outstanding, 1);
    /* An older seq sent again does not lower what must be acked. */
    assert_int_equal(im_handover_sent(&p, "p:a:b", 1, 0, NULL), IM_OK);
    assert_false(im_handover_acked(&p, "p:a:b", 1));
    assert_true(im_handover_acked(&p, "p:a:b", 2));
    im_handover_clear(&p);
}

static void test_bad_messages_are_refused(void **state)
{
    (void)state;
    im_handover_page p = { 0 };
    im_error err = { 0 };
    assert_int_equal(im_handover_sent(&p, "", 1, 0, &err), IM_EINVAL);
    assert_int_equal(im_handover_sent(&p, NULL, 1, 0, &err), IM_EINVAL);
    assert_int_equal(im_handover_sent(&p, "p:a:b", 0, 0, &err), IM_EINVAL);
    assert_int_equal(p.n, 0);
    assert_int_equal(p.messages, 0);
    assert_true(im_handover_done(&p));
    im_handover_clear(&p);
}

static void test_reset_starts_the_next_page(void **state)
{
    (void)state;
    im_handover_page p = { 0 };
    assert_int_equal(im_handover_sent(&p, "p:a:b", 5, 3, NULL), IM_OK);
    im_handover_reset(&p);
    assert_int_equal(p.n, 0);
    assert_int_equal(p.messages, 0);
    assert_int_equal(p.bytes, 0);
    assert_true(im_handover_done(&p));
    assert_int_equal(im_handover_sent(&p, "p:a:b", 6, 3, NULL), IM_OK);
    assert_false(im_handover_acked(&p, "p:a:b", 5)); /* the old page's seq is gone */
    assert_true(im_handover_acked(&p, "p:a:b", 6));
    im_handover_clear(&p);
}

/* Conversations in any order (a store need not sort them) are still found:
 * checked against a plain list. */
static void test_any_order_of_conversations(void **state)
{
    (void)state;
    enum { N = 2000 };
    im_handover_page p = { 0 };
    static char names[N][32];
    static uint64_t last[N];
    unsigned x = 12345;
    for (int i = 0; i < N; i++)
        snprintf(names[i], sizeof names[i], "p:u%d:v%d", i, i);
    for (int k = 0; k < 3 * N; k++) {
        x = x * 1103515245u + 12345u;
        int i = (int)((x >> 8) % N);
        last[i]++;
        assert_int_equal(im_handover_sent(&p, names[i], last[i], 1, NULL), IM_OK);
    }
    size_t used = 0;
    for (int i = 0; i < N; i++)
        used += last[i] > 0;
    assert_int_equal(p.n, used);
    for (size_t i = 1; i < p.n; i++)
        assert_true(strcmp(p.entries[i - 1].conversation, p.entries[i].conversation) < 0);
    for (int i = 0; i < N; i++) {
        if (!last[i])
            continue;
        assert_false(im_handover_done(&p));
        im_handover_acked(&p, names[i], last[i]);
    }
    assert_true(im_handover_done(&p));
    im_handover_clear(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_page_is_done),
        cmocka_unit_test(test_every_conversation_must_be_acked_up_to_what_was_sent),
        cmocka_unit_test(test_a_later_message_reopens_an_acked_conversation),
        cmocka_unit_test(test_bad_messages_are_refused),
        cmocka_unit_test(test_reset_starts_the_next_page),
        cmocka_unit_test(test_any_order_of_conversations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
