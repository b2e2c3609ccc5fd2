/* tests/infrastructure/test_log_shared.c: the process has one logger. The
 * built-in adapters carry copies of the static libraries they wrap, but
 * not of the logger: loaded into a process, each resolves the logger's
 * functions and its level to the process's one copy (libimcore-log.so), so
 * a level set by the server holds for their lines too. */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "im_log.h"

static void check_adapter(const char *file)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", IMCORE_TEST_PLUGIN_DIR, file);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        fail_msg("dlopen %s: %s", path, dlerror());
    /* The adapter's own scope (itself and what it links): a private copy
     * would be hidden there, and its functions would set a second level. */
    void *set_level = dlsym(h, "im_log_set_level");
    if (set_level != (void *)im_log_set_level)
        fail_msg("%s does not use the process's logger (its im_log_set_level %p, the "
                 "process's %p)", file, set_level, (void *)im_log_set_level);
    /* And one level: what the adapter's logger sets, the process reads. */
    void (*adapter_set)(im_log_level) = (void (*)(im_log_level))(uintptr_t)set_level;
    im_log_set_level(IM_LOG_INFO);
    adapter_set(IM_LOG_ERROR);
    assert_int_equal(im_log_get_level(), IM_LOG_ERROR);
    im_log_set_level(IM_LOG_INFO);
    dlclose(h);
}

static void test_storage_sqlite(void **state) { (void)state; check_adapter("storage_sqlite.so"); }
static void test_transport_tcp(void **state) { (void)state; check_adapter("transport_tcp.so"); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_storage_sqlite),
        cmocka_unit_test(test_transport_tcp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
