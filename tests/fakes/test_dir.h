/* tests/fakes/test_dir.h: a fresh directory for a test's files, under
 * $TMPDIR (or /tmp), and its removal with everything in it. */
#ifndef IM_TEST_DIR_H
#define IM_TEST_DIR_H

#include <limits.h>

/* Makes TMPDIR/imcore-TAG-XXXXXX and writes its path to dir. Returns 0 or -1. */
int test_dir_make(char dir[PATH_MAX], const char *tag);

/* Removes dir and everything below it. Returns 0 or -1. */
int test_dir_remove(const char *dir);

/* A cmocka fixture for database tests: a fresh directory, and the path of a
 * database file in a folder of it that does not exist yet. setup puts a
 * test_db_dir in *state (the fixture's, freed by teardown), teardown
 * removes the directory. */
typedef struct test_db_dir {
    char dir[PATH_MAX];
    char path[PATH_MAX]; /* dir/data/imcore.db */
} test_db_dir;

int test_db_dir_setup(void **state);
int test_db_dir_teardown(void **state);

#endif
