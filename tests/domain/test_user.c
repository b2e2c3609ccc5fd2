/* tests/domain/test_user.c: the user-id and display-name rules, and the
 * error record they report through (domain/error.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "domain/user.h"
#include "imcore/errors.h"

/* Checks an id refused with IM_EINVAL and a message for people. */
static void assert_id_refused(const char *id)
{
    im_error err = { 0 };
    assert_false(im_user_id_is_valid(id));
    assert_int_equal(im_user_id_check(id, &err), IM_EINVAL);
    assert_int_equal(err.code, IM_EINVAL);
    assert_true(err.msg[0] != '\0');
    assert_int_equal(im_user_id_check(id, NULL), IM_EINVAL);
}

static void assert_id_ok(const char *id)
{
    im_error err = { .code = 12345 };
    assert_true(im_user_id_is_valid(id));
    assert_int_equal(im_user_id_check(id, &err), IM_OK);
    /* Success does not write the record: callers clear it themselves. */
    assert_int_equal(err.code, 12345);
}

static void assert_name_refused(const char *name)
{
    im_error err = { 0 };
    assert_int_equal(im_display_name_check(name, &err), IM_EINVAL);
    assert_int_equal(err.code, IM_EINVAL);
    assert_true(err.msg[0] != '\0');
    assert_int_equal(im_display_name_check(name, NULL), IM_EINVAL);
}

static void assert_name_ok(const char *name)
{
    im_error err = { 0 };
    assert_int_equal(im_display_name_check(name, &err), IM_OK);
    assert_int_equal(im_display_name_check(name, NULL), IM_OK);
}

/* ---- user ids ---- */

static void id_simple_ok(void **state)
{
    (void)state;
    assert_id_ok("a");
    assert_id_ok("alice");
    assert_id_ok("Alice_99");
    assert_id_ok("a.b-c_d");
    assert_id_ok("0");
    assert_id_ok("_x");
    assert_id_ok("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    assert_id_ok("abcdefghijklmnopqrstuvwxyz");
    assert_id_ok("0123456789");
    assert_id_ok("a.");
    assert_id_ok("a-");
    assert_id_ok("a..b");
}

static void id_empty_and_null_refused(void **state)
{
    (void)state;
    assert_id_refused("");
    assert_id_refused(NULL);
}

static void id_length_boundary(void **state)
{
    (void)state;
    char id[IM_USER_ID_MAX + 2];
    memset(id, 'x', IM_USER_ID_MAX);
    id[IM_USER_ID_MAX] = '\0';
    assert_int_equal(strlen(id), 32);
    assert_id_ok(id);

    memset(id, 'x', IM_USER_ID_MAX + 1);
    id[IM_USER_ID_MAX + 1] = '\0';
    assert_int_equal(strlen(id), 33);
    assert_id_refused(id);
}

static void id_very_long_refused(void **state)
{
    (void)state;
    static char id[100000];
    memset(id, 'y', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    assert_id_refused(id);
}

static void id_bad_chars_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "a b", " a", "a ", "a:b", "a/b", "a\\b", "a@b", "a+b", "a\tb", "a\nb",
        "a\x7f", "caf\xc3\xa9", "\xff", "a*", "a,b", "a;b", "a'b", "a\"b", "p:x",
        "a%b", "a#b", "a~b", "a=b", "(a)", "a!",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_id_refused(bad[i]);
}

static void id_every_byte_outside_the_set_refused(void **state)
{
    (void)state;
    for (int c = 1; c < 256; c++) {
        char id[3] = { 'a', (char)c, '\0' };
        bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
        assert_int_equal(im_user_id_is_valid(id), allowed);
    }
}

static void id_leading_dot_or_dash_refused(void **state)
{
    (void)state;
    assert_id_refused(".");
    assert_id_refused("-");
    assert_id_refused(".alice");
    assert_id_refused("-alice");
    assert_id_refused("..");
    assert_id_refused("-rf");
    assert_id_ok("_alice");
}

static void id_case_sensitive_and_check_agree(void **state)
{
    (void)state;
    /* The rule itself does not fold case; both spellings are distinct ids. */
    assert_id_ok("Bob");
    assert_id_ok("bob");
    assert_int_not_equal(strcmp("Bob", "bob"), 0);
}

/* ---- display names ---- */

static void name_empty_and_null_ok(void **state)
{
    (void)state;
    assert_name_ok("");
    assert_name_ok(NULL);
}

static void name_ascii_and_utf8_ok(void **state)
{
    (void)state;
    assert_name_ok("Alice");
    assert_name_ok("Alice Smith ~ the 1st!");
    assert_name_ok("caf\xc3\xa9");                 /* U+00E9 */
    assert_name_ok("\xc2\xa0");                    /* U+00A0, first after C1 */
    assert_name_ok("\xe2\x82\xac");                /* U+20AC */
    assert_name_ok("\xe6\x97\xa5\xe6\x9c\xac");    /* Japanese */
    assert_name_ok("\xf0\x9f\x98\x80");            /* U+1F600 */
    assert_name_ok("\xed\x9f\xbf");                /* U+D7FF, just below surrogates */
    assert_name_ok("\xee\x80\x80");                /* U+E000, just above surrogates */
    assert_name_ok("\xef\xbf\xbf");                /* U+FFFF */
    assert_name_ok("\xf0\x90\x80\x80");            /* U+10000 */
    assert_name_ok("\xf4\x8f\xbf\xbf");            /* U+10FFFF, the last */
    assert_name_ok("\xdf\xbf");                    /* U+07FF, last 2-byte */
    assert_name_ok("\xe0\xa0\x80");                /* U+0800, first 3-byte */
}

static void name_length_boundary(void **state)
{
    (void)state;
    char name[IM_DISPLAY_NAME_MAX + 2];
    memset(name, 'n', IM_DISPLAY_NAME_MAX);
    name[IM_DISPLAY_NAME_MAX] = '\0';
    assert_name_ok(name);

    memset(name, 'n', IM_DISPLAY_NAME_MAX + 1);
    name[IM_DISPLAY_NAME_MAX + 1] = '\0';
    assert_name_refused(name);
}

static void name_length_counts_bytes_not_characters(void **state)
{
    (void)state;
    /* 32 two-byte characters are exactly 64 bytes; one more byte is too many. */
    char name[IM_DISPLAY_NAME_MAX + 8] = { 0 };
    for (int i = 0; i < 32; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2);
    assert_int_equal(strlen(name), 64);
    assert_name_ok(name);
    name[64] = 'x';
    assert_name_refused(name);

    /* A 4-byte character that would straddle the limit is refused. */
    memset(name, 0, sizeof name);
    memset(name, 'a', 62);
    memcpy(name + 62, "\xf0\x9f\x98\x80", 4);
    assert_int_equal(strlen(name), 66);
    assert_name_refused(name);
}

static void name_very_long_refused(void **state)
{
    (void)state;
    static char name[1 << 20];
    memset(name, 'z', sizeof name - 1);
    assert_name_refused(name);
}

static void name_invalid_utf8_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "\x80",                     /* lone continuation */
        "a\xbf",                    /* lone continuation after ASCII */
        "\xc3",                     /* truncated 2-byte */
        "\xc3" "a",                 /* 2-byte with a non-continuation */
        "\xe2\x82",                 /* truncated 3-byte */
        "\xf0\x9f\x98",             /* truncated 4-byte */
        "\xc0\x80",                 /* overlong NUL */
        "\xc0\xaf",                 /* overlong '/' */
        "\xc1\xbf",                 /* overlong U+007F */
        "\xe0\x80\xaf",             /* overlong '/' in 3 bytes */
        "\xe0\x9f\xbf",             /* overlong U+07FF */
        "\xf0\x80\x80\xaf",         /* overlong '/' in 4 bytes */
        "\xf0\x8f\xbf\xbf",         /* overlong U+FFFF */
        "\xed\xa0\x80",             /* U+D800, first surrogate */
        "\xed\xbf\xbf",             /* U+DFFF, last surrogate */
        "\xed\xa0\xbd\xed\xb8\x80", /* a CESU-8 surrogate pair */
        "\xf4\x90\x80\x80",         /* U+110000 */
        "\xf5\x80\x80\x80",         /* lead byte F5 */
        "\xf7\xbf\xbf\xbf",         /* lead byte F7 */
        "\xf8\x88\x80\x80\x80",     /* 5-byte form */
        "\xfc\x84\x80\x80\x80\x80", /* 6-byte form */
        "\xfe",
        "\xff",
        "ok\xe2\x82\xac" "\xe2",    /* good then truncated */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_name_refused(bad[i]);
}

static void name_control_chars_refused(void **state)
{
    (void)state;
    for (int c = 1; c < 0x20; c++) {
        char name[4] = { 'a', (char)c, 'b', '\0' };
        assert_name_refused(name);
    }
    assert_name_refused("a\x7f");
    assert_name_refused("\x7f");
    /* C1 controls are control characters too, encoded in two bytes. */
    assert_name_refused("\xc2\x80");   /* U+0080 */
    assert_name_refused("a\xc2\x85");  /* U+0085, NEL: a line break in logs */
    assert_name_refused("\xc2\x9f");   /* U+009F */
    /* The printable neighbours are fine. */
    assert_name_ok(" ");
    assert_name_ok("~");
}

/* ---- the error record ---- */

static void error_set_fills_and_returns_code(void **state)
{
    (void)state;
    im_error err = { 0 };
    assert_int_equal(im_error_set(&err, IM_EFULL, "group %s is full (%u)", "g1", 3u), IM_EFULL);
    assert_int_equal(err.code, IM_EFULL);
    assert_string_equal(err.msg, "group g1 is full (3)");
}

static void error_set_null_record_returns_code(void **state)
{
    (void)state;
    assert_int_equal(im_error_set(NULL, IM_EINVAL, "ignored %d", 1), IM_EINVAL);
}

static void error_set_truncates_long_message(void **state)
{
    (void)state;
    char longs[500];
    memset(longs, 'm', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    im_error err;
    memset(&err, 0x55, sizeof err);
    assert_int_equal(im_error_set(&err, IM_EIO, "%s", longs), IM_EIO);
    assert_int_equal(err.code, IM_EIO);
    assert_int_equal(strlen(err.msg), sizeof err.msg - 1);
}

static void error_clear_resets(void **state)
{
    (void)state;
    im_error err;
    im_error_set(&err, IM_EBUSY, "busy");
    im_error_clear(&err);
    assert_int_equal(err.code, IM_OK);
    assert_string_equal(err.msg, "");
    im_error_clear(NULL);
}

static void strerror_names_every_code(void **state)
{
    (void)state;
    static const struct { int code; const char *name; } names[] = {
        { IM_OK, "OK" },
        { IM_ENOMEM, "ENOMEM" },
        { IM_EINVAL, "EINVAL" },
        { IM_EPROTO, "EPROTO" },
        { IM_EFRAMESIZE, "EFRAMESIZE" },
        { IM_ENOTAUTH, "ENOTAUTH" },
        { IM_ESTATE, "ESTATE" },
        { IM_EOFFLINE, "EOFFLINE" },
        { IM_ENOGROUP, "ENOGROUP" },
        { IM_EEXIST, "EEXIST" },
        { IM_EFULL, "EFULL" },
        { IM_ENOTMEMBER, "ENOTMEMBER" },
        { IM_EMEMBER, "EMEMBER" },
        { IM_ETOOBIG, "ETOOBIG" },
        { IM_EREPLACED, "EREPLACED" },
        { IM_EIDLE, "EIDLE" },
        { IM_ESHUTDOWN, "ESHUTDOWN" },
        { IM_EIO, "EIO" },
        { IM_ERATE, "ERATE" },
        { IM_EDUPLICATE, "EDUPLICATE" },
        { IM_EUNSUPPORTED, "EUNSUPPORTED" },
        { IM_EBUSY, "EBUSY" },
        { IM_ENOSPC, "ENOSPC" },
        { IM_ENOTFOUND, "ENOTFOUND" },
        { IM_EAUTH, "EAUTH" },
        { IM_EUSEREXISTS, "EUSEREXISTS" },
        { IM_EREFUSED, "EREFUSED" },
        { IM_EUNKNOWNUSER, "EUNKNOWNUSER" },
        { IM_EIDREUSED, "EIDREUSED" },
        { IM_EPERM, "EPERM" },
        { IM_EQUOTA, "EQUOTA" },
    };
    size_t n = sizeof names / sizeof names[0];
    /* Every number from 0 down to the last code has a name, so a code added
     * to errors.h without one here shows up as a gap. */
    assert_int_equal(n, (size_t)(-IM_ERROR_CODE_LAST + 1));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(names[i].code, -(int)i);
        assert_string_equal(im_strerror(names[i].code), names[i].name);
    }
    assert_string_equal(im_strerror(IM_ERROR_CODE_LAST - 1), "EUNKNOWN");
    assert_string_equal(im_strerror(1), "EUNKNOWN");
    assert_string_equal(im_strerror(-1000), "EUNKNOWN");
}

static void password_bounds(void **state)
{
    (void)state;
    char pw[IM_PASSWORD_MAX + 2];
    im_error err;
    memset(pw, 'p', sizeof pw);
    pw[IM_PASSWORD_MIN - 1] = '\0';
    assert_int_equal(im_password_check(pw, &err), IM_EINVAL);
    assert_null(strstr(err.msg, pw)); /* the message never repeats the password */
    pw[IM_PASSWORD_MIN - 1] = 'p';
    pw[IM_PASSWORD_MIN] = '\0';
    assert_int_equal(im_password_check(pw, NULL), IM_OK);
    memset(pw, 'p', sizeof pw);
    pw[IM_PASSWORD_MAX] = '\0';
    assert_int_equal(im_password_check(pw, NULL), IM_OK);
    pw[IM_PASSWORD_MAX] = 'p';
    pw[IM_PASSWORD_MAX + 1] = '\0';
    assert_int_equal(im_password_check(pw, NULL), IM_EINVAL);
    assert_int_equal(im_password_check(NULL, NULL), IM_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(id_simple_ok),
        cmocka_unit_test(id_empty_and_null_refused),
        cmocka_unit_test(id_length_boundary),
        cmocka_unit_test(id_very_long_refused),
        cmocka_unit_test(id_bad_chars_refused),
        cmocka_unit_test(id_every_byte_outside_the_set_refused),
        cmocka_unit_test(id_leading_dot_or_dash_refused),
        cmocka_unit_test(id_case_sensitive_and_check_agree),
        cmocka_unit_test(name_empty_and_null_ok),
        cmocka_unit_test(name_ascii_and_utf8_ok),
        cmocka_unit_test(name_length_boundary),
        cmocka_unit_test(name_length_counts_bytes_not_characters),
        cmocka_unit_test(name_very_long_refused),
        cmocka_unit_test(name_invalid_utf8_refused),
        cmocka_unit_test(name_control_chars_refused),
        cmocka_unit_test(error_set_fills_and_returns_code),
        cmocka_unit_test(error_set_null_record_returns_code),
        cmocka_unit_test(error_set_truncates_long_message),
        cmocka_unit_test(error_clear_resets),
        cmocka_unit_test(strerror_names_every_code),
        cmocka_unit_test(password_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
