/*
** main.c: the test runner (see test.h).
*/
#include "test.h"
#include "test_util.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct { const char *name, *file; test_fn fn; } TestCase;
static TestCase *cases;
static int ncases, capcases;
static int cur_failures;
static char cur_skip[256];   /* the reason the running test was skipped, or "" */
static const TestCase *running;

/* A test that crashes names itself before the process dies of the signal
   (the exit status still tells the shell). Under AddressSanitizer its own
   report does that, so no handler is installed there. */
static void put(const char *s) {
    ssize_t r = write(1, s, strlen(s));
    (void)r;
}

static void on_crash(int sig) {
    if (running) {
        char num[16];
        int n = 0, v = sig;
        do num[n++] = (char)('0' + v % 10); while ((v /= 10) && n < 15);
        char rev[16];
        for (int i = 0; i < n; i++) rev[i] = num[n - 1 - i];
        rev[n] = 0;
        put("CRASH ");
        put(running->name);
        put(" (");
        put(running->file);
        put("): signal ");
        put(rev);
        put("\n");
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void catch_crashes(void) {
#ifndef __SANITIZE_ADDRESS__
    int sigs[] = {SIGSEGV, SIGFPE, SIGILL, SIGBUS, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) signal(sigs[i], on_crash);
#endif
}

void test_register(const char *name, const char *file, test_fn fn) {
    if (ncases == capcases) {
        capcases = capcases ? 2 * capcases : 64;
        cases = realloc(cases, (size_t)capcases * sizeof *cases);
        if (!cases) abort();
    }
    cases[ncases++] = (TestCase){name, file, fn};
}

typedef struct { const char *name; test_child_fn fn; } ChildCase;
static ChildCase children[16];
static int nchildren;

void test_register_child(const char *name, test_child_fn fn) {
    if (nchildren == (int)(sizeof children / sizeof *children)) abort();
    children[nchildren++] = (ChildCase){name, fn};
}

int test_child(const char *name) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        alarm(60);   /* a hang guard: the timer survives exec, SIGALRM ends a stuck child */
        execl("/proc/self/exe", "rrc_tests", "--child", name, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void test_fail(const char *file, int line, const char *fmt, ...) {
    cur_failures++;
    if (cur_failures > 20) return;
    fprintf(stdout, "    %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

bool test_failed_now(void) { return cur_failures > 0; }

void test_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cur_skip, sizeof cur_skip, fmt, ap);
    va_end(ap);
    if (!cur_skip[0]) snprintf(cur_skip, sizeof cur_skip, "no reason given");
}

/* The text of path, or "" if unreadable (malloc'd either way). */
static char *slurp(const char *path) {
    char *s = test_read_file(path, NULL);
    return s ? s : strdup("");
}

int test_run(const char *cmdline, char **out, char **err) {
    char o[512], e[512], *cmd;
    snprintf(o, sizeof o, "%s/cmd.out", test_tmpdir());
    snprintf(e, sizeof e, "%s/cmd.err", test_tmpdir());
    size_t n = strlen(cmdline) + 2 * sizeof o + 32;
    cmd = malloc(n);
    snprintf(cmd, n, "(%s) >%s 2>%s </dev/null", cmdline, o, e);
    int st = system(cmd);
    free(cmd);
    if (out) *out = slurp(o);
    if (err) *err = slurp(e);
    if (st == -1) return -1;
    if (WIFEXITED(st)) {
        int code = WEXITSTATUS(st);
        /* the shell reports a child killed by a signal as 128+sig */
        return code > 128 ? -1 : code;
    }
    return -1;
}

const char *test_rrc(void) {
    const char *b = getenv("RRC_BIN");
    return b && *b ? b : "./rrc";
}

static char tmpdir[256];
const char *test_tmpdir(void) {
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/rrc-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) { perror("mkdtemp"); exit(2); }
    }
    return tmpdir;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--child")) {
        for (int i = 0; i < nchildren; i++)
            if (!strcmp(children[i].name, argv[2])) return children[i].fn();
        fprintf(stderr, "rrc_tests: no child routine %s\n", argv[2]);
        return 127;
    }
    /* rrc_tests [FILTER...]: the tests whose names contain any FILTER */
    int nfilters = argc - 1;
    char **filters = argv + 1;
    int passed = 0, failed = 0, skipped = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    catch_crashes();
    /* the compile cache of the JIT (and of every rrc the tests run) lives in
       the temporary directory, never in the user's ~/.cache */
    char cache[512];
    snprintf(cache, sizeof cache, "%s/compile-cache", test_tmpdir());
    setenv("RRC_CACHE_DIR", cache, 1);
    /* the rrc and trainer processes the tests start keep the OpenBLAS kernel
       set the environment gives them (runtime/rt_blas.h): the suite changes
       no OpenBLAS setting */
    setenv("RRC_BLAS_CORETYPE", "keep", 1);
    for (int i = 0; i < ncases; i++) {
        bool chosen = nfilters == 0;
        for (int f = 0; f < nfilters && !chosen; f++) chosen = strstr(cases[i].name, filters[f]) != NULL;
        if (!chosen) continue;
        cur_failures = 0;
        cur_skip[0] = 0;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        running = &cases[i];
        cases[i].fn();
        running = NULL;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (cur_failures) { failed++; printf("FAIL %s (%s, %.2fs)\n", cases[i].name, cases[i].file, s); }
        else if (cur_skip[0]) { skipped++; printf("skip %s (%s)\n", cases[i].name, cur_skip); }
        else { passed++; printf("ok   %s (%.2fs)\n", cases[i].name, s); }
    }
    if (tmpdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
