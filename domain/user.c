/* domain/user.c: the rules for user ids (which also name groups) and for
 * display names.
 *
 * Pure functions on strings. They must not know where a name comes from or
 * whether the user exists: that is the application's business. The scans are
 * bounded by the maximum lengths, so a hostile multi-megabyte string costs no
 * more than a legal one. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "domain/user.h"

/* The id alphabet as a table: ids are checked several times per message,
 * and a lookup beats six comparisons. Spelled out rather than isalnum():
 * the rule is ASCII, and <ctype.h> answers differently under other locales. */
#define ID_RANGE(a, b) [a ... b] = true
static const bool id_chars[256] = {
    ID_RANGE('a', 'z'), ID_RANGE('A', 'Z'), ID_RANGE('0', '9'),
    ['_'] = true, ['.'] = true, ['-'] = true,
};

static bool is_id_char(unsigned char c)
{
    return id_chars[c];
}

int im_user_id_check(const char *id, im_error *err)
{
    if (!id || id[0] == '\0')
        return im_error_set(err, IM_EINVAL, "id is empty");
    /* Leading '.' and '-' are refused so that an id can never pass for a
     * relative path or a command-line option wherever it ends up. */
    if (id[0] == '.' || id[0] == '-')
        return im_error_set(err, IM_EINVAL, "id must not start with '%c'", id[0]);
    size_t i;
    for (i = 0; id[i] != '\0'; i++) {
        if (i == IM_USER_ID_MAX)
            return im_error_set(err, IM_EINVAL, "id is longer than %d bytes", IM_USER_ID_MAX);
        if (!is_id_char((unsigned char)id[i]))
            return im_error_set(err, IM_EINVAL,
                                "id has a character outside [A-Za-z0-9_.-] at byte %zu", i);
    }
    return IM_OK;
}

bool im_user_id_is_valid(const char *id)
{
    return im_user_id_check(id, NULL) == IM_OK;
}

/* Decodes the UTF-8 sequence at s into *cp and returns its length (1..4), or
 * 0 if it is not well-formed: a stray continuation byte, a truncated sequence,
 * an overlong form, a surrogate, or a code point above U+10FFFF (RFC 3629).
 * Reads past s[0] only while the bytes are continuations, so the terminating
 * NUL stops it. */
static size_t utf8_decode(const unsigned char *s, uint32_t *cp)
{
    size_t len;
    uint32_t min, c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2, min = 0x80, c &= 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, min = 0x800, c &= 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, min = 0x10000, c &= 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    /* Overlongs would let one character have several spellings, so that
     * "admin" and a disguised "admin" compare unequal; surrogates are not
     * characters at all in UTF-8. */
    if (c < min || (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF)
        return 0;
    *cp = c;
    return len;
}

int im_display_name_check(const char *name, im_error *err)
{
    /* NULL is the caller saying "no name", which is the same as "". */
    if (!name)
        return IM_OK;
    const unsigned char *s = (const unsigned char *)name;
    size_t i = 0;
    while (s[i] != '\0') {
        uint32_t cp;
        size_t n = utf8_decode(s + i, &cp);
        if (n == 0)
            return im_error_set(err, IM_EINVAL, "display name is not valid UTF-8 at byte %zu", i);
        /* C0, DEL and the C1 range (U+0080..U+009F) are all Unicode control
         * characters; any of them could move a terminal's cursor or break a
         * line in a log that shows the name. */
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
            return im_error_set(err, IM_EINVAL,
                                "display name has a control character at byte %zu", i);
        i += n;
        if (i > IM_DISPLAY_NAME_MAX)
            return im_error_set(err, IM_EINVAL, "display name is longer than %d bytes",
                                IM_DISPLAY_NAME_MAX);
    }
    return IM_OK;
}

int im_password_check(const char *password, im_error *err)
{
    size_t n = password ? strlen(password) : 0;
    if (n < IM_PASSWORD_MIN)
        return im_error_set(err, IM_EINVAL, "a password needs at least %d bytes",
                            IM_PASSWORD_MIN);
    if (n > IM_PASSWORD_MAX)
        return im_error_set(err, IM_EINVAL, "a password has at most %d bytes", IM_PASSWORD_MAX);
    return IM_OK;
}
