/*
** test_check.c: `rrc check` (issue 19) passes a bundled spec and a test
** spec, and names the op whose backward rule is wrong when one is planted
** (RRC_TEST_WRONG_BACKWARD doubles the gradients a rule makes); `rrc plan`
** predicts the compiled program's memory.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "test_util.h"

/* Part 1's row of the views x ("  x  <elements> ... ok|FAIL"), or NULL */
static const char *views_row(const char *out, char *row, size_t cap) {
    const char *p = out ? strstr(out, "\n  x ") : NULL;
    if (!p) return NULL;
    size_t n = strcspn(p + 1, "\n");
    snprintf(row, cap, "%.*s", (int)n, p + 1);
    return row;
}

TEST(check_passes_specs) {
    /* and two baselines: their losses, DeepCluster's label and weight inputs */
    static const char *const specs[] = {"conv4", "tests/specs/small_conv.lua", "simclr_conv4", "deepcluster_conv4"};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        char cmd[1024], *out = NULL, *err = NULL;
        snprintf(cmd, sizeof cmd, "%s check %s", test_rrc(), specs[i]);
        int rc = test_run(cmd, &out, &err);
        CHECKF(rc == 0 && strstr(out, ": passed (") && strstr(out, "worst error"), "%s: exit %d: %s%s", specs[i], rc, out, err);
        char row[256];
        const char *r = views_row(out, row, sizeof row);
        CHECKF(r && strlen(r) > 2 && !strcmp(r + strlen(r) - 2, "ok"), "%s: the views' gradient not checked: %s", specs[i], out);
        free(out);
        free(err);
    }
}

TEST(check_names_a_wrong_backward_rule) {
    /* {op, spec and flags, where}: ResNet-34's stem for max pooling, whose
       ties at ReLU's zeros must not hide a wrong rule */
    static const char *const ops[][3] = {{"relu", "tests/specs/small_conv.lua", "small_conv.lua:"},
                                         {"bn_train", "tests/specs/small_conv.lua", "small_conv.lua:"},
                                         {"linear", "tests/specs/small_conv.lua", "small_conv.lua:"},
                                         {"conv2d", "tests/specs/small_conv.lua", "small_conv.lua:"},
                                         /* the factor pass's op: part 2 checks the forward the step computes */
                                         {"pair_halves", "conv4", "conv4.lua:"},
                                         {"maxpool2d", "resnet34 --input-shape 3x16x16 --K 2 --batch 2 --elements 2", "resnet.lua:"}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        char cmd[1024], *out = NULL, *err = NULL, want[128], at[64];
        snprintf(cmd, sizeof cmd, "RRC_TEST_WRONG_BACKWARD=%s %s check %s --engine interp", ops[i][0], test_rrc(), ops[i][1]);
        int rc = test_run(cmd, &out, &err);
        snprintf(want, sizeof want, "the backward rule of op %s gives a wrong gradient", ops[i][0]);
        snprintf(at, sizeof at, "(%s) at ", ops[i][0]);
        CHECKF(rc == 1 && strstr(out, ": FAILED (") && strstr(out, want) && strstr(out, at) && strstr(out, ops[i][2]),
               "planted %s: exit %d: %s%s", ops[i][0], rc, out, err);
        if (!strcmp(ops[i][0], "conv2d")) {   /* the first convolution's gradient of the views, whole-step */
            char row[256];
            const char *r = views_row(out, row, sizeof row);
            CHECKF(r && strstr(r, "FAIL"), "planted conv2d: the views' gradient not failed: %s", out);
        }
        free(out);
        free(err);
    }
}

/* The finite differences' threads change nothing but the time: the points
   and their draws are made before any runs. */
TEST(check_is_the_same_on_any_threads) {
    char cmd[1024], *out[2] = {NULL, NULL}, *err = NULL;
    for (int t = 0; t < 2; t++) {
        snprintf(cmd, sizeof cmd, "%s check conv4 --engine interp --threads %d --input-shape 3x24x24", test_rrc(), t ? 3 : 1);
        int rc = test_run(cmd, &out[t], &err);
        CHECKF(rc == 0 && strstr(out[t], "input 3x24x24"), "threads %d: exit %d: %s%s", t ? 3 : 1, rc, out[t], err);
        free(err);
        err = NULL;
    }
    /* the same lines but the one naming the threads */
    const char *a = out[0] ? strstr(out[0], "elements, 1 thread):") : NULL, *b = out[1] ? strstr(out[1], "elements, 3 threads):") : NULL;
    CHECKF(a && b && !strcmp(strchr(a, '\n'), strchr(b, '\n')), "the outputs differ:\n%s\n---\n%s", out[0], out[1]);
    free(out[0]);
    free(out[1]);
}

/* A wrong rule of a baseline's loss is named too (SimCLR's, whose backward
   is written by hand). */
TEST(check_names_a_wrong_baseline_rule) {
    char cmd[1024], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "RRC_TEST_WRONG_BACKWARD=simclr_loss %s check simclr_conv4 --engine interp", test_rrc());
    int rc = test_run(cmd, &out, &err);
    CHECKF(rc == 1 && strstr(out, "the backward rule of op simclr_loss gives a wrong gradient") && strstr(out, "simclr_conv4.lua:"),
           "planted simclr_loss: exit %d: %s%s", rc, out, err);
    free(out);
    free(err);
}

/* `rrc plan` (issue 19): the planned memory is the compiled program's (what
   `rrc compile` reports), FLOPs grow with K (the relation head as K^2), a
   sweep prints a row per K, and the rates are calibrated once and kept. */
TEST(plan_predicts_memory_and_flops) {
    char cmd[1024], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "%s plan conv4 --sweep K=2,4,8", test_rrc());
    int rc = test_run(cmd, &out, &err);
    REQUIREF(rc == 0, "exit %d: %s%s", rc, out, err);
    CHECKF(strstr(out, "calibrating this machine") && strstr(out, "points of kernel classes"), "no calibration on first use: %s", out);
    double gf[3] = {0}, rel[3] = {0}, peak[3] = {0};
    int rows = 0;
    for (const char *p = strstr(out, "images/s\n"); p && rows < 3; rows++) {
        p = strchr(p, '\n');
        if (!p) break;
        int K;
        double bb, gb, opt, scr, ms, ips;
        if (sscanf(p + 1, "%d %lf %lf %lf %lf %lf %lf %lf %lf %lf", &K, &gf[rows], &bb, &rel[rows], &gb, &peak[rows], &opt, &scr, &ms,
                   &ips) != 10)
            break;
        p++;
    }
    CHECKF(rows == 3, "%d rows in: %s", rows, out);
    CHECK(gf[0] < gf[1] && gf[1] < gf[2]);
    /* the relation head grows faster than the views (its pairs grow as K^2; its
       first layer, factored per view, as K): more than 1.5x per doubling of K */
    CHECKF(rel[1] > 1.5 * rel[0] && rel[2] > 1.5 * rel[1], "relation GFLOP %g %g %g", rel[0], rel[1], rel[2]);
    free(out);
    free(err);
    /* the same planned memory as the compiled program */
    snprintf(cmd, sizeof cmd, "%s compile conv4 --data synthetic:640 -o %s/plan_c4", test_rrc(), test_tmpdir());
    rc = test_run(cmd, &out, &err);
    REQUIREF(rc == 0, "compile: exit %d: %s", rc, err);
    const char *m = strstr(out, "peak step memory ");
    REQUIRE(m);
    CHECKF(fabs(atof(m + 17) - peak[1]) < 0.051, "plan %.1f MiB, compile: %s", peak[1], m);
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "%s plan conv4", test_rrc());
    rc = test_run(cmd, &out, NULL);
    CHECKF(rc == 0 && !strstr(out, "calibrating"), "the rates were not kept: %s", out);
    free(out);
    /* rates in an older format (the first `rrc plan`'s) are measured again */
    char rates[700];
    snprintf(rates, sizeof rates, "%s/compile-cache/plan-rates.txt", test_tmpdir());
    FILE *f = fopen(rates, "w");
    REQUIRE(f);
    fputs("gflops 57.1\ngbytes 34.1\n", f);
    fclose(f);
    rc = test_run(cmd, &out, NULL);
    CHECKF(rc == 0 && strstr(out, "calibrating this machine"), "stale rates used: %s", out);
    free(out);
}

/* rrc plan --plot draws the rows (with gnuplot, when the machine has it)
   and keeps the script; a name that is not a PNG, and --sweep on a
   baseline's spec, are refused. */
TEST(plan_plot_and_baselines) {
    char cmd[1024], png[600], gp[600], *out = NULL, *err = NULL;
    snprintf(png, sizeof png, "%s/plan.png", test_tmpdir());
    snprintf(gp, sizeof gp, "%s/plan.gp", test_tmpdir());
    snprintf(cmd, sizeof cmd, "%s plan conv4 --sweep K=2,4 --plot %s", test_rrc(), png);
    int rc = test_run(cmd, &out, &err);
    bool have_gnuplot = system("command -v gnuplot > /dev/null 2>&1") == 0;
    if (have_gnuplot) CHECKF(rc == 0 && test_exists(png) && test_exists(gp), "plot: exit %d: %s%s", rc, out, err);
    else CHECKF(rc != 0 && strstr(err, "gnuplot not found") && test_exists(gp), "no gnuplot: exit %d: %s", rc, err);
    free(out);
    free(err);
    static const struct { const char *args, *want; } bad[] = {
        {"plan conv4 --plot plan.svg", "--plot needs a FILE.png"},
        {"plan rotation_conv4 --sweep K=2,4", "--sweep varies relational reasoning's K, but rotation_conv4 trains rotation"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s %s", test_rrc(), bad[i].args);
        rc = test_run(cmd, &out, &err);
        CHECKF(rc == 1 && strstr(err, bad[i].want), "%s: exit %d: %s", bad[i].args, rc, err);
        free(out);
        free(err);
    }
    /* a baseline's row counts the images through its backbone: 4B for RotationNet */
    snprintf(cmd, sizeof cmd, "%s plan rotation_conv4 --batch 8", test_rrc());
    rc = test_run(cmd, &out, &err);
    double ms = 0, ips = 0;
    const char *row = strstr(out ? out : "", "images/s\n");
    CHECKF(rc == 0 && row && sscanf(strchr(row, '\n') + 1, "%*d %*f %*f %*f %*f %*f %*f %*f %lf %lf", &ms, &ips) == 2 &&
               fabs(ips - 32 / (ms / 1e3)) < (0.01 + 0.05 / ms) * ips,   /* ms is printed to 0.1 */
           "rotation plan: exit %d: %s%s", rc, out, err);
    free(out);
    free(err);
}
