/*
** test_install.c: rrc as an installed tool (issue 20). `make install` into
** a temporary prefix; then, from an empty directory, the installed rrc
** compiles a bundled spec by name (resnet32.lua), trains another by name
** (conv4) and runs the trainer it generated, under strace: not one file
** of the source tree is opened or executed. Also: a spec name nobody has
** is one line naming every place looked in; `rrc specs` lists the bundled
** specs; `rrc --version` names rrc, LLVM and OpenBLAS; the man page
** renders.
*/
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "test_util.h"

/* The build directory and binary of the rrc under test (./rrc: build;
   build-asan/rrc: build-asan). */
static void under_test(char *build, size_t n) {
    const char *exe = test_rrc();
    const char *slash = strrchr(exe, '/');
    if (!slash || (slash - exe == 1 && exe[0] == '.')) snprintf(build, n, "build");
    else snprintf(build, n, "%.*s", (int)(slash - exe), exe);
}

TEST(install_and_run_from_anywhere) {
    char repo[PATH_MAX], prefix[600], empty[600], build[256], cmd[4096], *out = NULL, *err = NULL;
    REQUIRE(getcwd(repo, sizeof repo));
    snprintf(prefix, sizeof prefix, "%s/prefix", test_tmpdir());
    snprintf(empty, sizeof empty, "%s/empty", test_tmpdir());
    under_test(build, sizeof build);
    /* the build under test as it is (-o: never rebuilt here, where the
       sanitizer flags of a `make asan` build are not known) */
    snprintf(cmd, sizeof cmd,
             "make -s --no-print-directory install PREFIX='%s' BUILD='%s' RRC_EXE='%s' MAKEFLAGS= -o '%s' -o '%s/librrt.a' "
             "-o '%s/rrc_trainer_main.o' && mkdir '%s'",
             prefix, build, test_rrc(), test_rrc(), build, build, empty);
    int rc = test_run(cmd, NULL, &err);
    REQUIREF(rc == 0, "make install: exit %d: %s", rc, err);
    free(err);

    /* by name, from an empty directory, with every file opened or run logged */
    bool traced = system("strace -V >/dev/null 2>&1") == 0;
    char trace[700];
    snprintf(trace, sizeof trace, "%s/trace", test_tmpdir());
    char tr[900] = "";
    /* LeakSanitizer cannot run under ptrace: a sanitizer build is traced
       without it (ASAN_OPTIONS means nothing to other builds) */
    if (traced)
        snprintf(tr, sizeof tr, "ASAN_OPTIONS=\"$ASAN_OPTIONS:detect_leaks=0\" strace -f -qq -e trace=open,openat,execve,stat,newfstatat -o '%s' ",
                 trace);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && %s sh -c '\"%s/bin/rrc\" compile resnet32.lua && \"%s/bin/rrc\" train conv4 --data synthetic:128 "
             "--max-steps 2 --quiet && generated/resnet32/resnet32-train train --data synthetic:128 --max-steps 1 --quiet'",
             empty, tr, prefix, prefix);
    rc = test_run(cmd, &out, &err);
    REQUIREF(rc == 0, "installed rrc: exit %d: %s%s", rc, out, err);
    CHECKF(strstr(out, "generated/resnet32/resnet32-train"), "compile by name: %s", out);
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "%s/generated/resnet32/resnet32-train", empty);
    CHECK(test_exists(cmd));
    snprintf(cmd, sizeof cmd, "%s/runs/conv4/last.safetensors", empty);
    CHECK(test_exists(cmd));
    if (traced) {
        /* every path the processes touched; none inside the source tree */
        char *log = test_read_file(trace, NULL);
        REQUIRE(log);
        char needle[PATH_MAX + 4];
        snprintf(needle, sizeof needle, "\"%s/", repo);
        const char *hit = strstr(log, needle);
        if (hit) {
            const char *end = strchr(hit + 1, '"');
            CHECKF(0, "the installed rrc touched the source tree: %.*s", end ? (int)(end - hit + 1) : 80, hit);
        }
        free(log);
    }

    /* a name nobody has: every place looked in, one line */
    snprintf(cmd, sizeof cmd, "cd '%s' && RRC_SPEC_PATH=/nonexistent '%s/bin/rrc' dump-ir resnet99", empty, prefix);
    rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 2 && strstr(err, "no spec 'resnet99'") && strstr(err, "/nonexistent/resnet99.lua") &&
               strstr(err, "share/rrc/specs/resnet99.lua") && !strchr(err, '\n')[1],
           "unknown spec: exit %d: %s", rc, err);
    free(err);
    /* RRC_SPEC_PATH comes first, and include falls back to the bundled lib/ */
    char own[700];
    snprintf(own, sizeof own, "%s/own", test_tmpdir());
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && sed 's/name = \"conv4\"/name = \"mine\"/' specs/conv4.lua > '%s/mine.lua' && cd '%s' && "
             "RRC_SPEC_PATH='%s' '%s/bin/rrc' dump-ir mine",
             own, own, empty, own, prefix);
    rc = test_run(cmd, &out, &err);
    CHECKF(rc == 0 && strstr(out, "mine.lua"), "RRC_SPEC_PATH: exit %d: %s", rc, err);
    free(out);
    free(err);

    snprintf(cmd, sizeof cmd, "'%s/bin/rrc' specs", prefix);
    rc = test_run(cmd, &out, NULL);
    CHECKF(rc == 0 && strstr(out, "resnet32") && strstr(out, "69.12 M") && strstr(out, "share/rrc/specs"), "rrc specs: %s",
           out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s/bin/rrc' --version", prefix);
    rc = test_run(cmd, &out, NULL);
    CHECKF(rc == 0 && strstr(out, "rrc 0.") && strstr(out, "LLVM 19.") && strstr(out, "OpenBLAS") && strstr(out, "JIT target"),
           "rrc --version: %s", out);
    free(out);
    if (system("man -V >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd, "MANWIDTH=80 man -l '%s/share/man/man1/rrc.1'", prefix);
        rc = test_run(cmd, &out, &err);
        CHECKF(rc == 0 && strstr(out, "RRC(1)") && strstr(out, "RRC_SPEC_PATH"), "man -l: exit %d: %s", rc, err);
        free(out);
        free(err);
    }
    if (!traced) SKIP("strace is not installed: the source-tree check did not run");
}
