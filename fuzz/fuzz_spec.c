/*
** fuzz_spec.c: libFuzzer target of the spec front end: the input is a spec
** file, loaded by spec_load (compiler/frontend/lf_spec.c) in the Lua
** sandbox of lf_sandbox.c with the rr prelude, then lowered to the
** training graph (lower_train), which is what `rrc dump-ir` does before
** its passes. The spec's folder holds copies of the bundled helpers
** (the .lua files of specs/lib), so rr.include("resnet.lua") works as for the bundled
** specs. The fuzz build compiles the sandbox with small caps
** (-DLF_INSTR_CAP, -DLF_MEM_CAP: fuzz/fuzz.mk) so that a looping or
** allocating input costs milliseconds.
**
** Oracle: a spec that fails has printed at least one error (Diag counted);
** a crash, leak, sanitizer report or timeout is a finding.
*/
#include "fuzz_common.h"

#include "frontend/spec.h"
#include "frontend/lower.h"

#ifndef RRC_FUZZ_SRCDIR
#define RRC_FUZZ_SRCDIR "."
#endif

static const char *const fuzz_spec_libs[] = {"augment.lua", "resnet.lua"};

/* The spec folder, with lib/ holding the bundled helpers. */
static const char *fuzz_spec_dir(void) {
    static int ready;
    const char *dir = fuzz_dir("spec");
    if (!ready) {
        ready = 1;
        mkdir(fuzz_path(dir, "lib"), 0700);
        for (size_t i = 0; i < sizeof fuzz_spec_libs / sizeof *fuzz_spec_libs; i++) {
            char src[512], dst[512];
            snprintf(src, sizeof src, "%s/specs/lib/%s", RRC_FUZZ_SRCDIR, fuzz_spec_libs[i]);
            snprintf(dst, sizeof dst, "%s/lib/%s", dir, fuzz_spec_libs[i]);
            FILE *f = fopen(src, "rb");
            if (!f) continue;   /* run from elsewhere: specs that include helpers fail cleanly */
            char buf[1 << 15];
            size_t n = fread(buf, 1, sizeof buf, f);
            fclose(f);
            fuzz_write(dst, buf, n);
        }
    }
    return dir;
}

/* Returns 0 if the spec loaded and lowered, -1 if it was refused (with
   nerrors errors printed). */
static int fuzz_spec_one(const uint8_t *data, size_t size, int *nerrors) {
    const char *path = fuzz_path(fuzz_spec_dir(), "spec.lua");
    fuzz_write(path, data, size);
    Arena a = {0};
    Diag d = {0};
    int rc = -1;
    Spec *s = spec_load(path, &a, &d);
    if (s) {
        Graph *g = lower_train(s, s->batch, s->in_c, s->in_h, s->in_w, &a, &d);
        if (g) rc = 0;
    }
    if (rc != 0 && d.nerrors == 0) {
        fprintf(stderr, "fuzz: the spec was refused without an error message\n");
        abort();
    }
    arena_free(&a);
    if (nerrors) *nerrors = d.nerrors;
    return rc;
}

#ifndef RRC_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_spec_one(data, size, NULL);
    return 0;
}
#endif
