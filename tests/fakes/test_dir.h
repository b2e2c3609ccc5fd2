/* tests/fakes/test_dir.h: a fresh directory for a test's files, under
 * $TMPDIR (or /tmp), and its removal with everything in it. */
#ifndef IM_TEST_DIR_H
#define IM_TEST_DIR_H

#include <limits.h>

/* Makes TMPDIR/imcore-TAG-XXXXXX and writes its path to dir. Returns 0 or -1. */
int test_dir_make(char dir[PATH_MAX], const char *tag);

/* Removes dir and everything below it. Returns 0 or -1. */
int test_dir_remove(const char *dir);

#endif
