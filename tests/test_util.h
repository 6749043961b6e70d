/*
** test_util.h: the file helpers the tests share (defined in tests/test_util.c).
*/
#ifndef RRC_TEST_UTIL_H
#define RRC_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>

/* The whole file at path, malloc'd, with a NUL after the last byte (so text
   is a C string); *n (if n is not NULL) gets its length. NULL if the file
   cannot be opened or read. */
char *test_read_file(const char *path, size_t *n);

/* Writes n bytes to path (created or truncated). On an error records a test
   failure naming the path and returns false. */
bool test_write_file(const char *path, const void *data, size_t n);

/* The size of path in bytes, or -1 if it does not exist. */
long test_file_size(const char *path);

/* Whether path exists (any kind of file). */
bool test_exists(const char *path);

/* test_tmpdir()/name, in one of 8 static buffers used in turn (so up to 8
   results can be in use at once). */
const char *test_tmp_path(const char *name);

#endif
