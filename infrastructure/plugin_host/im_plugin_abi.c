/* infrastructure/plugin_host/im_plugin_abi.c: see the header. */
#include "im_plugin_abi.h"

#include <stdio.h>

/* ---- versions ---- */

/* How the compiler ABI of theirs differs from ours, for people: only what
 * differs ("big-endian (here little-endian), pointer 4 (here 8)"). */
static void abi_differences(uint32_t theirs, uint32_t ours, char *buf, size_t size)
{
    static const char *const field[] = { "int", "long", "size_t", "pointer", "enum" };
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < 6 && used < size; i++) {
        unsigned a = (theirs >> (4 * i)) & 0xF, b = (ours >> (4 * i)) & 0xF;
        if (a == b)
            continue;
        int w;
        if (i == 5)
            w = snprintf(buf + used, size - used, "%s%s (here %s)", used ? ", " : "",
                         a == 2 ? "big-endian" : a == 1 ? "little-endian" : "no byte order",
                         b == 2 ? "big-endian" : "little-endian");
        else
            w = snprintf(buf + used, size - used, "%s%s %u (here %u)", used ? ", " : "",
                         field[i], a, b);
        used += w > 0 ? (size_t)w : 0;
    }
}

/* What a description must reach: every field of the first one. */
#define ABOUT_MIN (offsetof(imcore_plugin_info, session_size) + sizeof(size_t))

int im__abi_choose(const imcore_plugin_info *about, im_abi_role role, size_t session_size,
                   unsigned *version, im_error *err)
{
    *version = 0;
    if (!about) {
        /* Version 1's first plugins had no description: an init alone
         * says version 1. */
        *version = 1;
        return IM_OK;
    }
    uint32_t mine = IMCORE_PLUGIN_SIGNATURE;
    if (IMCORE_PLUGIN_SIGNATURE_ABI(about->signature) != IMCORE_PLUGIN_SIGNATURE_ABI(mine)) {
        char diff[128];
        abi_differences(about->signature, mine, diff, sizeof diff);
        return im_error_set(err, IM_EINVAL, "built for another ABI: %s; rebuild it here", diff);
    }
    if (about->size < ABOUT_MIN)
        return im_error_set(err, IM_EINVAL, "its %s is %u bytes, too short (%zu)",
                            IMCORE_PLUGIN_ABOUT_SYMBOL, (unsigned)about->size, ABOUT_MIN);
    unsigned lo = about->api_min, hi = about->api_max;
    unsigned built = IMCORE_PLUGIN_SIGNATURE_API(about->signature);
    if (lo == 0 || lo > hi || hi > built)
        return im_error_set(err, IM_EINVAL, "its %s claims plugin API %u to %u, with the "
                            "header of %u", IMCORE_PLUGIN_ABOUT_SYMBOL, lo, hi, built);
    char range[32];
    if (lo == hi)
        snprintf(range, sizeof range, "%u", lo);
    else
        snprintf(range, sizeof range, "%u to %u", lo, hi);
    if (lo > IMCORE_PLUGIN_API_VERSION)
        return im_error_set(err, IM_EINVAL,
                            "built for plugin API %s, this server speaks %u to %u: it needs a "
                            "newer server", range, IM_PLUGIN_API_OLDEST,
                            IMCORE_PLUGIN_API_VERSION);
    if (hi < IM_PLUGIN_API_OLDEST)
        return im_error_set(err, IM_EINVAL,
                            "built for plugin API %s, this server speaks %u to %u: rebuild it",
                            range, IM_PLUGIN_API_OLDEST, IMCORE_PLUGIN_API_VERSION);
    unsigned v = hi < IMCORE_PLUGIN_API_VERSION ? hi : IMCORE_PLUGIN_API_VERSION;
    if (role == IM_ABI_TRANSPORT && about->session_size != 0 &&
        about->session_size != session_size)
        return im_error_set(err, IM_EINVAL,
                            "built for sessions of %zu bytes, this server's are %zu: built "
                            "for another server version; rebuild it",
                            about->session_size, session_size);
    *version = v;
    return IM_OK;
}
