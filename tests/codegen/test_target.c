/*
** test_target.c: the target model (compiler/target.c): the table's
** facts, choosing a CPU by name or RRC_CPU, refusing code this host cannot
** run, and objects for another architecture (NEON kernels from the
** aarch64 entry).
*/
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "target.h"
#include "test.h"

TEST(target_table_facts) {
    Target t;
    char err[256];
    REQUIRE(target_named("x86-64-v3", NULL, NULL, &t, err, sizeof err));
    CHECK(t.lanes == 8 && t.vregs == 16 && t.fma && !strcmp(t.isa, "avx2") && !t.host && t.caches_from_host);
    REQUIRE(target_named("x86-64-v4", NULL, NULL, &t, err, sizeof err));
    CHECK(t.lanes == 16 && t.vregs == 32 && !strcmp(t.isa, "avx512"));
    REQUIRE(target_named("x86-64-v2", NULL, NULL, &t, err, sizeof err));
    CHECK(t.lanes == 4 && t.vregs == 16 && !t.fma);
    REQUIRE(target_named("znver3", NULL, NULL, &t, err, sizeof err));
    CHECK(t.l2 == 512 << 10 && !t.caches_from_host);
    /* extra features widen the ISA */
    REQUIRE(target_named("x86-64-v3", NULL, "+avx512f,+fma", &t, err, sizeof err));
    CHECK(t.lanes == 16);
    REQUIRE(target_named("neoverse-n1", "aarch64-linux-gnu", NULL, &t, err, sizeof err));
    CHECK(t.lanes == 4 && t.vregs == 32 && !strcmp(t.isa, "neon") && !strcmp(t.triple, "aarch64-linux-gnu"));
    CHECK(!target_runs_here(&t, err, sizeof err) || !strncmp(target_host()->triple, "aarch64", 7));
    /* refusals name the problem */
    CHECK(!target_named("pentium-pro-max", NULL, NULL, &t, err, sizeof err) && strstr(err, "unknown CPU 'pentium-pro-max'") &&
          strstr(err, "x86-64-v3"));
    CHECK(!target_named("znver3", "aarch64-linux-gnu", NULL, &t, err, sizeof err) && strstr(err, "x86_64 CPU"));
    CHECK(!target_named(NULL, "aarch64-linux-gnu", NULL, &t, err, sizeof err) && strstr(err, "name a CPU"));
    /* the host: whatever it is, a complete description */
    const Target *h = target_host();
    CHECK(h->host && h->lanes >= 4 && h->lanes <= 16 && h->vregs >= 16 && h->l1d > 0 && h->l2 > 0 && h->line > 0 &&
          h->cores >= 1);
    char d[512];
    target_describe(h, d, sizeof d);
    CHECKF(strstr(d, h->cpu) && strstr(d, "lanes") && strstr(d, "registers"), "describe: %s", d);
}

/* Commands refuse an unknown CPU, one of another architecture, and (when
   they run the code) one whose instructions this host lacks; RRC_DEBUG=1
   and rrc compile print the target chosen. */
TEST(target_cli_choices) {
    char cmd[1024], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "%s train specs/conv4.lua --data synthetic:64 --max-steps 1 --cpu bogus --out %s/t1", test_rrc(),
             test_tmpdir());
    int rc = test_run(cmd, &out, &err);
    CHECKF(rc == 1 && strstr(err, "rrc train: unknown CPU 'bogus'"), "rc %d: %s", rc, err);
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "RRC_CPU=neoverse-n1 %s train specs/conv4.lua --data synthetic:64 --max-steps 1 --out %s/t1",
             test_rrc(), test_tmpdir());
    rc = test_run(cmd, &out, &err);
    CHECKF(rc == 1 && strstr(err, "RRC_CPU: CPU 'neoverse-n1' is an aarch64 CPU"), "rc %d: %s", rc, err);
    free(out), free(err);
    Target v4;
    char e[256];
    REQUIRE(target_named("x86-64-v4", NULL, NULL, &v4, e, sizeof e));
    if (!target_runs_here(&v4, e, sizeof e)) {   /* a host without AVX-512: the JIT refuses, compile does not */
        snprintf(cmd, sizeof cmd, "%s train specs/conv4.lua --data synthetic:64 --max-steps 1 --cpu x86-64-v4 --out %s/t1",
                 test_rrc(), test_tmpdir());
        rc = test_run(cmd, &out, &err);
        CHECKF(rc == 1 && strstr(err, "code for x86-64-v4 needs +avx512f") && !strchr(strchr(err, '\n') + 1, '\n'),
               "rc %d: %s", rc, err);
        free(out), free(err);
    }
    snprintf(cmd, sizeof cmd, "RRC_DEBUG=1 RRC_CPU=x86-64-v2 %s train specs/conv4.lua --data synthetic:64 --max-steps 1 --out %s/t2",
             test_rrc(), test_tmpdir());
    rc = test_run(cmd, &out, &err);
    CHECKF(rc == 0 && strstr(err, "rrc: target x86-64-v2 (sse4.2: 4 lanes, 16 registers, no FMA;"), "rc %d: %s", rc, err);
    free(out), free(err);
}

/* An aarch64 object from the aarch64 entry of the table: NEON multiply-adds
   in the kernels (running it is out of reach here); no trainer is linked
   without --emit-obj. */
TEST(target_aarch64_object_uses_neon) {
    char cmd[1024], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "%s compile specs/conv4.lua --train-size 640 -o %s/neon --target aarch64-linux-gnu --cpu neoverse-n1",
             test_rrc(), test_tmpdir());
    int rc = test_run(cmd, &out, &err);
    CHECKF(rc == 1 && strstr(err, "add --emit-obj"), "without --emit-obj: rc %d: %s", rc, err);
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "%s compile specs/conv4.lua --train-size 640 -o %s/neon --target aarch64-linux-gnu --cpu neoverse-n1 --emit-obj",
             test_rrc(), test_tmpdir());
    rc = test_run(cmd, &out, &err);
    CHECKF(rc == 0 && strstr(out, "rrc: target neoverse-n1 (neon: 4 lanes, 32 registers"), "rc %d: %s %s", rc, out, err);
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "llvm-objdump-19 -d %s/neon/conv4.train_full.o | grep -c 'fmla\tv'",
             test_tmpdir());
    rc = test_run(cmd, &out, &err);
    CHECKF(rc == 0 && atoi(out) > 100, "fmla count: %s %s", out, err);
    free(out), free(err);
}
