/*
** test_cli.c: the rrc command as a user runs it: bad specs give their
** expected error lines and exit status 2 (never a crash); dump-ir output
** against golden text; the parameter and multiply-add counts of the
** bundled specs; `rrc grad` end to end against a PyTorch golden, and its
** errors for bad inputs; a trainer compiled for gray images.
*/
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data_util.h"
#include "golden_util.h"
#include "test.h"
#include "test_util.h"

/* Checks one bad spec: its "-- expect: LINE" comments are the first lines of
   stderr, in order, and the exit status is 2. */
static void check_bad_spec(const char *path) {
    char *src = test_read_file(path, NULL), *err = NULL, cmd[1024];
    REQUIREF(src, "cannot read %s", path);
    snprintf(cmd, sizeof cmd, "%s dump-ir %s", test_rrc(), path);
    int rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 2, "%s: exit status %d, expected 2 (stderr: %.300s)", path, rc, err);
    const char *e = err;
    int nexp = 0;
    for (const char *p = strstr(src, "-- expect: "); p; p = strstr(p + 1, "-- expect: ")) {
        const char *line = p + 11, *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *eend = strchr(e, '\n');
        size_t elen = eend ? (size_t)(eend - e) : strlen(e);
        CHECKF(elen == len && strncmp(e, line, len) == 0, "%s: stderr line %d is\n      %.*s\n    expected\n      %.*s", path,
               nexp + 1, (int)elen, e, (int)len, line);
        e = eend ? eend + 1 : e + elen;
        nexp++;
    }
    CHECKF(nexp > 0, "%s has no '-- expect:' line", path);
    free(src);
    free(err);
}

TEST(cli_bad_specs) {
    DIR *dp = opendir("tests/specs");
    REQUIRE(dp);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(dp))) {
        if (strncmp(de->d_name, "bad_", 4) || !strstr(de->d_name, ".lua")) continue;
        char path[512];
        snprintf(path, sizeof path, "tests/specs/%s", de->d_name);
        check_bad_spec(path);
        n++;
    }
    closedir(dp);
    CHECKF(n >= 20, "only %d bad specs", n);
}

TEST(cli_usage_errors) {
    char cmd[512], *err = NULL;
    struct { const char *args, *msg; int rc; } cases[] = {
        {"", "usage: rrc COMMAND", 1},
        {"frobnicate", "unknown command 'frobnicate'", 1},
        {"dump-ir", "usage: rrc dump-ir", 1},
        {"dump-ir specs/conv4.lua --bogus", "unknown flag '--bogus'", 1},
        {"dump-ir specs/conv4.lua --K 1", "--K must be an integer in [2, 1024] (got \"1\")", 1},
        {"dump-ir specs/conv4.lua --after nonsense", "unknown pass 'nonsense'", 1},
        {"dump-ir specs/conv4.lua --aggregation median", "--aggregation must be cat, sum, mean or max", 1},
        {"dump-ir specs/nonexistent.lua", "specs/nonexistent.lua", 2},
        {"grad specs/conv4.lua --out /tmp/x", "--input is required", 1},
        {"grad specs/conv4.lua --input /nonexistent.safetensors --out /tmp/x", "/nonexistent.safetensors", 1},
        {"train specs/conv4.lua --data synthetic:64 --max-steps 1 --engine bogus", "--engine must be compiled, jit or aot", 1},
        {"dump-ir specs/conv4.lua --input-shape 3x99999999999x32", "--input-shape must be CxHxW, each in [1, 65536]", 1},
        {"dump-ir specs/conv4.lua --input-shape 3x4294967328x32", "--input-shape must be CxHxW, each in [1, 65536]", 1},
        /* rrc's own flag table (driver.c): each command's ranges and choices */
        {"grad specs/conv4.lua --input x --out y --engine bogus", "--engine must be interp, jit or aot (got \"bogus\")", 1},
        {"check specs/conv4.lua --K 65", "--K must be an integer in [2, 64] (got \"65\")", 1},
        {"compile specs/conv4.lua specs/resnet8.lua", "more than one spec given ('specs/conv4.lua', 'specs/resnet8.lua')", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s %s", test_rrc(), cases[i].args);
        int rc = test_run(cmd, NULL, &err);
        CHECKF(rc == cases[i].rc, "'rrc %s': exit %d, expected %d", cases[i].args, rc, cases[i].rc);
        CHECKF(strstr(err, cases[i].msg), "'rrc %s': stderr lacks \"%s\":\n%s", cases[i].args, cases[i].msg, err);
        free(err);
    }
}

/* A valid spec whose step needs more memory than any machine here: one
   line before anything is allocated (it died of an internal error after
   allocating what it could), and dump-ir's counts stay positive. A tensor past
   2^40 elements is a shape error. */
TEST(cli_plan_larger_than_memory) {
    char path[512], cmd[1024], *out = NULL, *err = NULL;
    snprintf(path, sizeof path, "%s/wide.lua", test_tmpdir());
    static const char wide[] = "return rr.model{input = {3, 128, 128}, batch = 64, backbone = rr.sequential{\n"
                               "    rr.conv2d{out = 65536, kernel = 3, padding = 1}, rr.global_avgpool{}}}\n";
    REQUIRE(test_write_file(path, wide, sizeof wide - 1));
    snprintf(cmd, sizeof cmd, "%s train %s --data synthetic:64 --max-steps 1 --out %s/wide", test_rrc(), path, test_tmpdir());
    int rc = test_run(cmd, &out, &err);
    CHECKF(rc == 1 && strstr(err, "rrc: the step of wide (entry train_b64, K=4, B=64) needs ") &&
           strstr(err, "GiB of memory; lower --batch or --K") && !strchr(strchr(err, '\n') + 1, '\n'), "rc %d: %s", rc, err);
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "%s dump-ir %s | tail -6", test_rrc(), path);
    rc = test_run(cmd, &out, &err);
    CHECKF(rc == 0 && !strstr(out, ": -") && !strstr(out, " -"), "rc %d: %s", rc, out);
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "%s dump-ir %s --input-shape 3x1024x1024", test_rrc(), path);
    rc = test_run(cmd, &out, &err);
    CHECKF(rc == 2 && strstr(err, "is too large (more than 2^40 elements)"), "rc %d: %s", rc, err);
    free(out), free(err);
}

/* A spec that is a FIFO (or a directory) is refused at once: opening a
   FIFO to read waited for a writer forever. `timeout` guards the run. */
TEST(cli_spec_not_a_regular_file) {
    char fifo[512], cmd[1024], *err = NULL;
    snprintf(fifo, sizeof fifo, "%s/spec.fifo", test_tmpdir());
    REQUIRE(mkfifo(fifo, 0600) == 0);
    snprintf(cmd, sizeof cmd, "timeout 30 %s dump-ir %s", test_rrc(), fifo);
    int rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 2 && strstr(err, "spec.fifo: not a regular file (a FIFO)"), "rc %d: %s", rc, err);
    free(err);
    snprintf(cmd, sizeof cmd, "timeout 30 %s dump-ir %s", test_rrc(), test_tmpdir());
    rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 2 && strstr(err, "not a regular file (a directory)"), "rc %d: %s", rc, err);
    free(err);
}

/* The numbers of the "done when": parameters and multiply-adds. */
TEST(cli_model_counts) {
    struct { const char *spec, *shape; const char *params, *relation, *macs; } c[] = {
        {"conv4", "3x32x32", "backbone 24,648,", "relation 33,793,", "1,105,920 (1.106 M)"},
        {"resnet8", "3x32x32", "backbone 77,392,", "relation 33,793,", "(12.501 M)"},
        {"resnet32", "3x32x32", "backbone 466,256,", "relation 33,793,", "(69.124 M)"},
        {"resnet56", "3x32x32", "backbone 855,120,", "relation 33,793,", "(125.747 M)"},
        {"resnet34", "3x32x32", "backbone 21,284,672,", "relation 263,169,", "(74.760 M)"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char cmd[512], *out = NULL, *err = NULL;
        snprintf(cmd, sizeof cmd, "%s dump-ir specs/%s.lua --K 2 --batch 2 --input-shape %s --after lower", test_rrc(),
                 c[i].spec, c[i].shape);
        int rc = test_run(cmd, &out, &err);
        CHECKF(rc == 0, "%s: exit %d: %s", c[i].spec, rc, err);
        CHECKF(strstr(out, c[i].params), "%s: no \"%s\" in the summary", c[i].spec, c[i].params);
        CHECKF(strstr(out, c[i].relation), "%s: no \"%s\" in the summary", c[i].spec, c[i].relation);
        CHECKF(strstr(out, c[i].macs), "%s: no \"%s\" in the summary", c[i].spec, c[i].macs);
        free(out);
        free(err);
    }
}

/* dump-ir text against tests/golden/ir/NAME.ir; RRC_UPDATE_GOLDENS=1 rewrites them. */
TEST(cli_dump_ir_goldens) {
    struct { const char *name, *args; } c[] = {
        {"tiny_lower", "tests/specs/tiny.lua --after lower"},
        {"tiny", "tests/specs/tiny.lua"},
        {"tiny_max_bce", "tests/specs/tiny.lua --aggregation max --loss bce --K 3"},
        {"conv4_K2_B2", "specs/conv4.lua --K 2 --batch 2 --verify-each"},
        {"conv4_K3_B2", "specs/conv4.lua --K 3 --batch 2 --verify-each"},   /* linear1 factored per view */
        {"resnet8_K2_B2_lower", "specs/resnet8.lua --K 2 --batch 2 --after lower"},
    };
    bool update = getenv("RRC_UPDATE_GOLDENS") && *getenv("RRC_UPDATE_GOLDENS") == '1';
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char cmd[512], path[256], *out = NULL, *err = NULL;
        snprintf(cmd, sizeof cmd, "%s dump-ir %s", test_rrc(), c[i].args);
        snprintf(path, sizeof path, "tests/golden/ir/%s.ir", c[i].name);
        int rc = test_run(cmd, &out, &err);
        CHECKF(rc == 0, "%s: exit %d: %s", c[i].name, rc, err);
        if (update) REQUIRE(test_write_file(path, out, strlen(out)));
        char *want = test_read_file(path, NULL);
        CHECKF(want, "missing %s (make it with RRC_UPDATE_GOLDENS=1 build/rrc_tests dump_ir)", path);
        if (want && strcmp(want, out) != 0) {
            const char *a = want, *b = out;
            int line = 1;
            while (*a && *a == *b) { if (*a == '\n') line++; a++; b++; }
            test_fail(__FILE__, __LINE__, "%s differs from `rrc dump-ir %s` at line %d", path, c[i].args, line);
        }
        free(want);
        free(out);
        free(err);
    }
}

/* Writes the tensors of `src` whose names pass `keep` to `dst`. */
static bool extract(const rt_st_file *src, const char *dst, bool (*keep)(const char *, void *), void *ctx) {
    rt_tensor *ts = calloc((size_t)src->ntensors, sizeof *ts);
    int n = 0;
    for (int i = 0; i < src->ntensors; i++)
        if (keep(src->tensors[i].name, ctx)) ts[n++] = src->tensors[i];
    char err[512];
    int rc = rt_st_write(dst, ts, n, NULL, NULL, 0, err, sizeof err);
    if (rc) test_fail(__FILE__, __LINE__, "%s", err);
    free(ts);
    return rc == 0;
}

static bool is_x(const char *n, void *c) { (void)c; return strcmp(n, "x") == 0; }
static bool is_param(const char *n, void *skip) {
    if (skip && strcmp(n, (const char *)skip) == 0) return false;
    return !strncmp(n, "backbone.", 9) || !strncmp(n, "relation.", 9);
}

TEST(cli_grad_matches_pytorch) {
    char golden[512], xf[512], pf[512], of[512], cmd[2048], *err = NULL;
    snprintf(golden, sizeof golden, "%s/steps/conv4_B3_K3_cat_focal.safetensors", golden_dir());
    rt_st_file g = {0}, o = {0};
    REQUIRE(golden_read(golden, &g));
    snprintf(xf, sizeof xf, "%s/x.safetensors", test_tmpdir());
    snprintf(pf, sizeof pf, "%s/p.safetensors", test_tmpdir());
    snprintf(of, sizeof of, "%s/g.safetensors", test_tmpdir());
    REQUIRE(extract(&g, xf, is_x, NULL) && extract(&g, pf, is_param, NULL));
    snprintf(cmd, sizeof cmd, "%s grad specs/conv4.lua --input %s --params %s --K 3 --aggregation cat --loss focal --out %s",
             test_rrc(), xf, pf, of);
    int rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 0, "rrc grad: exit %d: %s", rc, err);
    free(err);
    if (rc == 0 && golden_read(of, &o)) {
        int compared = 0;
        for (int i = 0; i < o.ntensors; i++) {
            const rt_tensor *t = &o.tensors[i];
            CHECKF(t->dtype == RT_F32, "%s is not F32", t->name);
            int64_t n = rt_tensor_numel(t);
            double *ours = golden_tensor(&o, of, t->name, n), *ref = golden_tensor(&g, golden, t->name, n);
            if (ours && ref) {
                golden_compare(t->name, ours, ref, n);
                compared++;
            }
            free(ours);
            free(ref);
        }
        CHECKF(compared >= 2 + 12 + 6 + 10, "only %d tensors in the output", compared);
        CHECKF(rt_st_find(&o, "grad.backbone.layer4.conv.weight") && rt_st_find(&o, "logits"), "missing outputs");
        CHECK(!rt_st_find(&o, "param.backbone.layer1.conv.weight"));   /* params were given */
    }
    rt_st_free(&o);

    /* bad parameter files: a missing tensor, a wrong shape, an unknown tensor */
    struct { const char *skip, *msg; } bad[] = {
        {"backbone.layer2.conv.weight", "missing trainable tensor 'backbone.layer2.conv.weight'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        REQUIRE(extract(&g, pf, is_param, (void *)bad[i].skip));
        rc = test_run(cmd, NULL, &err);
        CHECKF(rc == 1 && strstr(err, bad[i].msg), "missing tensor: exit %d, stderr: %s", rc, err);
        free(err);
    }
    snprintf(cmd, sizeof cmd, "%s grad specs/conv4.lua --input %s --params %s --K 2 --out %s", test_rrc(), xf, golden, of);
    rc = test_run(cmd, NULL, &err);   /* 9 rows are not K=2 views; and the golden has extra tensors */
    CHECKF(rc == 1 && strstr(err, "9 rows are not a multiple of 2"), "bad K: exit %d, stderr: %s", rc, err);
    free(err);
    snprintf(cmd, sizeof cmd, "%s grad specs/conv4.lua --input %s --params %s --K 3 --out %s", test_rrc(), xf, golden, of);
    rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 1 && strstr(err, "unknown tensor"), "unknown tensor: exit %d, stderr: %s", rc, err);
    free(err);
    snprintf(cmd, sizeof cmd, "%s grad specs/resnet8.lua --input %s --params %s --K 3 --out %s", test_rrc(), xf, pf, of);
    rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 1 && strstr(err, "missing trainable tensor 'backbone.conv1.weight'"), "other spec: exit %d, stderr: %s", rc, err);
    free(err);
    rt_st_free(&g);
}

TEST(cli_grad_seeded_init_is_deterministic) {
    char golden[512], xf[512], a[512], b[512], cmd[2048];
    snprintf(golden, sizeof golden, "%s/steps/conv4_B2_K2_cat_focal.safetensors", golden_dir());
    snprintf(xf, sizeof xf, "%s/x2.safetensors", test_tmpdir());
    snprintf(a, sizeof a, "%s/a.safetensors", test_tmpdir());
    snprintf(b, sizeof b, "%s/b.safetensors", test_tmpdir());
    rt_st_file g = {0};
    REQUIRE(golden_read(golden, &g));
    REQUIRE(extract(&g, xf, is_x, NULL));
    rt_st_free(&g);
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "%s grad specs/conv4.lua --input %s --K 2 --seed 7 --out %s", test_rrc(), xf, i ? b : a);
        char *err = NULL;
        int rc = test_run(cmd, NULL, &err);
        CHECKF(rc == 0, "exit %d: %s", rc, err);
        free(err);
    }
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", a, b);
    CHECK(system(cmd) == 0);
    rt_st_file o = {0};
    REQUIRE(golden_read(a, &o));
    const rt_tensor *w = rt_st_find(&o, "param.backbone.layer1.conv.weight");
    CHECK(w && w->rank == 4 && w->shape[0] == 8);
    const rt_tensor *bnw = rt_st_find(&o, "param.backbone.layer1.bn.weight");
    CHECK(bnw && ((const float *)bnw->data)[0] == 1.0f);
    rt_st_free(&o);
}

/* The AOT trainer's grad subcommand against PyTorch, on a golden step. */
TEST(aot_grad_matches_pytorch) {
    char golden[512], xf[512], pf[512], of[512], dir[512], cmd[4096], *err = NULL;
    snprintf(golden, sizeof golden, "%s/steps/resnet8_B3_K3_max_bce.safetensors", golden_dir());
    rt_st_file g = {0}, o = {0};
    REQUIRE(golden_read(golden, &g));
    snprintf(xf, sizeof xf, "%s/ax.safetensors", test_tmpdir());
    snprintf(pf, sizeof pf, "%s/ap.safetensors", test_tmpdir());
    snprintf(of, sizeof of, "%s/ag.safetensors", test_tmpdir());
    snprintf(dir, sizeof dir, "%s/aot_r8", test_tmpdir());
    REQUIRE(extract(&g, xf, is_x, NULL) && extract(&g, pf, is_param, NULL));
    snprintf(cmd, sizeof cmd,
             "%s compile specs/resnet8.lua --K 3 --batch 3 --aggregation max --loss bce --train-size 300 -o %s && "
             "%s/resnet8-train grad --input %s --params %s --out %s",
             test_rrc(), dir, dir, xf, pf, of);
    int rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 0, "compile + grad: exit %d: %s", rc, err);
    free(err);
    if (rc == 0 && golden_read(of, &o)) {
        int compared = 0;
        for (int i = 0; i < o.ntensors; i++) {
            const rt_tensor *t = &o.tensors[i];
            int64_t n = rt_tensor_numel(t);
            double *ours = golden_tensor(&o, of, t->name, n), *ref = golden_tensor(&g, golden, t->name, n);
            if (ours && ref) {
                char what[300];
                snprintf(what, sizeof what, "aot %s", t->name);
                golden_compare(what, ours, ref, n);
                compared++;
            }
            free(ours);
            free(ref);
        }
        CHECKF(compared > 30, "only %d tensors compared", compared);
    }
    rt_st_free(&o);
    /* x of another shape is refused */
    snprintf(cmd, sizeof cmd, "%s/resnet8-train grad --input %s/steps/conv4_B2_K2_cat_focal.safetensors --params %s --out %s", dir,
             golden_dir(), pf, of);
    rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 1 && strstr(err, "compiled for K=3, B=3"), "wrong x: exit %d: %s", rc, err);
    free(err);
    rt_st_free(&g);
}

/* rrc grad --engine aot: builds a trainer into the cache, reuses it, and
   rebuilds (never runs) a corrupted one. */
TEST(cli_grad_engine_aot_cache) {
    char golden[512], xf[512], pf[512], of[512], cache[512], cmd[4096], *err = NULL;
    snprintf(golden, sizeof golden, "%s/steps/conv4_B2_K3_sum_focal.safetensors", golden_dir());
    rt_st_file g = {0}, o = {0};
    REQUIRE(golden_read(golden, &g));
    snprintf(xf, sizeof xf, "%s/cx.safetensors", test_tmpdir());
    snprintf(pf, sizeof pf, "%s/cp.safetensors", test_tmpdir());
    snprintf(of, sizeof of, "%s/cg.safetensors", test_tmpdir());
    snprintf(cache, sizeof cache, "%s/cache", test_tmpdir());
    REQUIRE(extract(&g, xf, is_x, NULL) && extract(&g, pf, is_param, NULL));
    for (int round = 0; round < 3; round++) {
        if (round == 2) {   /* corrupt the cached trainer: it must be rebuilt */
            snprintf(cmd, sizeof cmd, "for f in %s/*/conv4-train; do printf 'garbage' > \"$f\"; done", cache);
            CHECK(system(cmd) == 0);
        }
        snprintf(cmd, sizeof cmd,
                 "RRC_CACHE_DIR=%s %s grad specs/conv4.lua --engine aot --input %s --params %s --K 3 --aggregation sum "
                 "--loss focal --out %s",
                 cache, test_rrc(), xf, pf, of);
        int rc = test_run(cmd, NULL, &err);
        CHECKF(rc == 0, "round %d: exit %d: %s", round, rc, err);
        CHECKF((round == 2) == (strstr(err, "rebuilding") != NULL), "round %d: stderr %s", round, err);
        free(err);
        if (rc == 0 && golden_read(of, &o)) {
            for (int i = 0; i < o.ntensors; i++) {
                int64_t n = rt_tensor_numel(&o.tensors[i]);
                double *ours = golden_tensor(&o, of, o.tensors[i].name, n), *ref = golden_tensor(&g, golden, o.tensors[i].name, n);
                if (ours && ref) golden_compare(o.tensors[i].name, ours, ref, n);
                free(ours);
                free(ref);
            }
        }
        rt_st_free(&o);
    }
    rt_st_free(&g);
}

/* The baselines' PyTorch goldens through an AOT trainer: `rrc grad
   --engine aot` builds the baselines' trainers and runs one step on the
   golden's inputs and parameters (DeepCluster's from a spec with the
   golden's 10 clusters). */
static bool is_step_input(const char *n, void *c) {
    (void)c;
    return !strcmp(n, "x") || !strcmp(n, "y") || !strcmp(n, "w") || !strcmp(n, "u");
}
static bool is_input_tensor(const char *n, void *src) {
    const rt_tensor *t = rt_st_find((const rt_st_file *)src, n);
    return !is_step_input(n, NULL) && t->dtype == RT_F32;
}

TEST(cli_grad_aot_baselines) {
    static const char *const models[] = {"rotation_conv4", "simclr_conv4", "deepcluster_conv4", "dim_conv4"};
    static const char *const specs[] = {"specs/rotation_conv4.lua", "specs/simclr_conv4.lua", "tests/specs/deepcluster10_conv4.lua",
                                        "specs/dim_conv4.lua"};
    for (int m = 0; m < 4; m++) {
        char golden[512], xf[512], pf[512], of[512], cmd[4096], *err = NULL;
        snprintf(golden, sizeof golden, "%s/baselines/%s_B%d.safetensors", golden_dir(), models[m], m == 3 ? 2 : 3);
        rt_st_file g = {0}, o = {0};
        REQUIRE(golden_read(golden, &g));
        snprintf(xf, sizeof xf, "%s/bx%d.safetensors", test_tmpdir(), m);
        snprintf(pf, sizeof pf, "%s/bp%d.safetensors", test_tmpdir(), m);
        snprintf(of, sizeof of, "%s/bg%d.safetensors", test_tmpdir(), m);
        REQUIRE(extract(&g, xf, is_step_input, NULL) && extract(&g, pf, is_input_tensor, &g));
        snprintf(cmd, sizeof cmd, "RRC_CACHE_DIR=%s/bcache %s grad %s --engine aot --input %s --params %s --out %s", test_tmpdir(),
                 test_rrc(), specs[m], xf, pf, of);
        int rc = test_run(cmd, NULL, &err);
        CHECKF(rc == 0, "%s: exit %d: %s", models[m], rc, err);
        free(err);
        int compared = 0;
        if (rc == 0 && golden_read(of, &o)) {
            for (int i = 0; i < o.ntensors; i++) {
                const char *name = o.tensors[i].name;
                if (!rt_st_find(&g, name)) continue;
                int64_t n = rt_tensor_numel(&o.tensors[i]);
                double *ours = golden_tensor(&o, of, name, n), *ref = golden_tensor(&g, golden, name, n);
                char what[600];
                snprintf(what, sizeof what, "aot %s: %s", models[m], name);
                if (ours && ref) golden_compare(what, ours, ref, n);
                compared += ours && ref;
                free(ours);
                free(ref);
            }
        }
        CHECKF(compared >= 1 + 12 + 8 + 2, "%s: only %d tensors compared", models[m], compared);
        rt_st_free(&o);
        rt_st_free(&g);
    }
}

/* Every baseline trains with `rrc train` (2 epochs of 2 steps on
   synthetic images), writes its accuracy column, resumes, and its backbone
   goes to `rrc lineval`. DeepCluster clusters at each epoch's start. */
TEST(cli_train_baselines) {
    static const struct { const char *spec, *acc, *log, *data; } c[] = {
        {"rotation_conv4", "rotation_acc", NULL, "synthetic:256"},
        {"simclr_conv4", "contrastive_acc", NULL, "synthetic:256"},
        {"deepcluster_conv4", "pseudolabel_acc", "k-means of 256 features into 100 clusters", "synthetic:256"},
        /* the local discriminator is costly: fewer, smaller batches; 70
           images drop a last batch of 6 */
        {"dim_conv4", "acc", NULL, "synthetic:70 --batch 32"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char cmd[2048], run[512], csv[600], *err = NULL, *out = NULL;
        snprintf(run, sizeof run, "%s/base_%s", test_tmpdir(), c[i].spec);
        snprintf(cmd, sizeof cmd, "%s train specs/%s.lua --data %s --epochs 1 --out %s --quiet", test_rrc(), c[i].spec, c[i].data, run);
        int rc = test_run(cmd, NULL, &err);
        CHECKF(rc == 0, "%s: exit %d: %s", c[i].spec, rc, err);
        free(err);
        /* one more epoch, resumed */
        snprintf(cmd, sizeof cmd, "%s train specs/%s.lua --data %s --epochs 2 --resume %s --out %s", test_rrc(), c[i].spec, c[i].data,
                 run, run);
        rc = test_run(cmd, NULL, &err);
        CHECKF(rc == 0 && strstr(err, "resuming from"), "%s resumed: exit %d: %s", c[i].spec, rc, err);
        if (c[i].log) CHECKF(strstr(err, c[i].log) != NULL, "%s: no '%s' in: %s", c[i].spec, c[i].log, err);
        free(err);
        snprintf(csv, sizeof csv, "%s/metrics.csv", run);
        char *text = test_read_file(csv, NULL);
        CHECKF(text && strstr(text, c[i].acc), "%s: metrics.csv lacks %s", c[i].spec, c[i].acc);
        int rows = 0;
        for (const char *s = text; s && (s = strchr(s, '\n')); s++) rows++;
        CHECKF(rows == 1 + 4, "%s: %d lines in metrics.csv", c[i].spec, rows);
        free(text);
        snprintf(cmd, sizeof cmd, "%s lineval specs/%s.lua --data %s --checkpoint %s/last.safetensors --epochs 1", test_rrc(),
                 c[i].spec, c[i].data, run);
        rc = test_run(cmd, &out, &err);
        CHECKF(rc == 0 && strstr(out, "test top-1"), "%s lineval: exit %d: %s", c[i].spec, rc, err);
        free(out);
        free(err);
    }
}

/* A trainer compiled for a gray data set (Fashion-MNIST's format: its
   first convolution reads channel 0 alone, passes/fuse.c) says so, trains
   on it, and refuses colour images with one line naming the cause; the
   JIT trains on it too. */
TEST(cli_gray_trainer) {
    const char *dir = test_data_dir("gray_fmnist");
    test_idx_write_pair(dir, "train", 40, 0, 0);
    test_idx_write_pair(dir, "t10k", 10, 0, 1);
    char outdir[1024], cmd[4096], *out = NULL, *err = NULL;
    snprintf(outdir, sizeof outdir, "%s/gray_trainer", test_tmpdir());
    snprintf(cmd, sizeof cmd, "%s compile specs/conv4.lua --data fashion-mnist:%s --K 2 --batch 8 -o %s", test_rrc(), dir, outdir);
    int rc = test_run(cmd, &out, &err);
    REQUIREF(rc == 0, "compile: exit %d: %.400s", rc, err);
    CHECKF(strstr(out, "K=2, B=8, gray images"), "compile did not say gray images: %.300s", out);
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "%s/conv4-train info", outdir);
    rc = test_run(cmd, &out, NULL);
    CHECKF(rc == 0 && strstr(out, "input 3x32x32 (gray images: trains on their first channel)"), "info: %.300s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s/conv4-train train --data fashion-mnist:%s --max-steps 3 --threads 2 --quiet --out %s/run", outdir,
             dir, outdir);
    rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 0, "train on gray images: exit %d: %.400s", rc, err);
    free(err);
    snprintf(cmd, sizeof cmd, "%s/conv4-train train --data synthetic:64 --max-steps 1 --quiet --out %s/run2", outdir, outdir);
    rc = test_run(cmd, NULL, &err);
    CHECKF(rc != 0 && strstr(err, "synthetic:64: its images have colour, but this trainer was compiled for gray images") &&
               strchr(err, '\n') == strrchr(err, '\n'),
           "colour images: exit %d, stderr %.400s", rc, err);
    CHECKF(!test_exists(test_join(outdir, "run2/last.safetensors")), "a refused run wrote a checkpoint");
    free(err);
    snprintf(cmd, sizeof cmd, "%s train specs/conv4.lua --data fashion-mnist:%s --K 2 --batch 8 --max-steps 2 --quiet --out %s/jit",
             test_rrc(), dir, outdir);
    rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 0, "rrc train on gray images: exit %d: %.400s", rc, err);
    free(err);
}
