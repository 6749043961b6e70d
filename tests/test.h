/*
** test.h: the small test runner of rrc.
**
** Each test file (tests/AREA/test_NAME.c) defines tests with TEST(name) { ... };
** they register themselves at load time and tests/main.c runs them all (or those whose
** name contains one of the arguments) and ends with the line
** "N passed, N failed, N skipped" (the exit status is 1 only on failures).
** CHECK(cond) records a failure and goes on; REQUIRE(cond) records a
** failure and leaves the test; SKIP("reason", ...) leaves a test that cannot
** run here (a missing data set, CPU feature or target) and reports it as
** "skip NAME (reason)": a skipped test never counts as passed. Tests run in
** one process, in file order.
*/
#ifndef RRC_TEST_H
#define RRC_TEST_H

#include <stdbool.h>
#include <stdio.h>

typedef void (*test_fn)(void);
void test_register(const char *name, const char *file, test_fn fn);
void test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool test_failed_now(void);
void test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define TEST(name)                                                         \
    static void test_##name(void);                                         \
    __attribute__((constructor)) static void test_reg_##name(void) {       \
        test_register(#name, __FILE__, test_##name);                       \
    }                                                                      \
    static void test_##name(void)

#define CHECK(c) do { if (!(c)) test_fail(__FILE__, __LINE__, "CHECK(%s)", #c); } while (0)
#define CHECKF(c, ...) do { if (!(c)) test_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)
#define REQUIRE(c) do { if (!(c)) { test_fail(__FILE__, __LINE__, "REQUIRE(%s)", #c); return; } } while (0)
#define REQUIREF(c, ...) do { if (!(c)) { test_fail(__FILE__, __LINE__, __VA_ARGS__); return; } } while (0)
/* Records that the current test was skipped, with the reason, and leaves it
   (use it in the TEST function itself, or in a helper that returns void). A
   failure recorded before or after still makes the test fail. */
#define SKIP(...) do { test_skip(__VA_ARGS__); return; } while (0)

/* A child routine: code that must run in a fresh process (state that a
   process sets up once, such as LLVM's target registry). A test runs it with
   test_child("name", ...): the runner executes itself as `rrc_tests --child
   NAME`, and the child's exit status is its result. */
typedef int (*test_child_fn)(void);
void test_register_child(const char *name, test_child_fn fn);
#define TEST_CHILD(name)                                                   \
    static int child_##name(void);                                         \
    __attribute__((constructor)) static void child_reg_##name(void) {      \
        test_register_child(#name, child_##name);                          \
    }                                                                      \
    static int child_##name(void)
/* Runs child routine `name` in a fresh process of this runner; its exit
   status, or -1 if it died of a signal (SIGALRM after 60 s: a hang). */
int test_child(const char *name);

/* Runs a shell command line, capturing stdout and stderr (malloc'd, NUL
   terminated; free them). Returns the exit status, or -1 if it was killed
   by a signal (a crash). */
int test_run(const char *cmdline, char **out, char **err);

/* The rrc binary under test: $RRC_BIN or ./rrc. */
const char *test_rrc(void);

/* A fresh temporary directory for this process (created once). */
const char *test_tmpdir(void);

#endif
