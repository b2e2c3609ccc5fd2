/* tests/fakes/test_dir.c: see the header. */
#include "test_dir.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

int test_dir_make(char dir[PATH_MAX], const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    if (snprintf(dir, PATH_MAX, "%s/imcore-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag) >=
        PATH_MAX)
        return -1;
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int test_dir_remove(const char *dir)
{
    return nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

int test_db_dir_setup(void **state)
{
    test_db_dir *fx = calloc(1, sizeof *fx);
    if (!fx || test_dir_make(fx->dir, "db") != 0 ||
        snprintf(fx->path, sizeof fx->path, "%s/data/imcore.db", fx->dir) >=
            (int)sizeof fx->path) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

int test_db_dir_teardown(void **state)
{
    test_db_dir *fx = *state;
    int rc = test_dir_remove(fx->dir);
    free(fx);
    return rc;
}
