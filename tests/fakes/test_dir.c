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
