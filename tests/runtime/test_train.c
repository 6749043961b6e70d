/*
** test_train.c: the training loop end to end through `rrc train` (JIT) on
** synthetic data: the loss goes down, metrics.csv has one row per step, a
** run stopped and resumed gives exactly the losses of an uninterrupted
** one, checkpoints load, and linear evaluation runs.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rt_train.h"
#include "test.h"

/* The loss column of a metrics.csv, malloc'd; *n rows. */
static double *losses(const char *path, int *n) {
    FILE *f = fopen(path, "r");
    *n = 0;
    if (!f) return NULL;
    char line[512];
    double *v = NULL;
    int cap = 0;
    if (!fgets(line, sizeof line, f)) { fclose(f); return NULL; }
    while (fgets(line, sizeof line, f)) {
        int epoch;
        long long step;
        double loss;
        if (sscanf(line, "%d,%lld,%lf", &epoch, &step, &loss) != 3) continue;
        if (*n == cap) v = realloc(v, (size_t)(cap = cap ? 2 * cap : 64) * sizeof *v);
        v[(*n)++] = loss;
    }
    fclose(f);
    return v;
}

static int train(const char *args, char **err) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s train tests/specs/small_conv.lua --data synthetic:240 --quiet %s", test_rrc(), args);
    return test_run(cmd, NULL, err);
}

TEST(train_loss_decreases_and_resume_is_exact) {
    char a[512], b[512], args[1200], path[600], *err = NULL;
    snprintf(a, sizeof a, "%s/run_a", test_tmpdir());
    snprintf(b, sizeof b, "%s/run_b", test_tmpdir());
    /* uninterrupted: 3 epochs of 20 steps */
    snprintf(args, sizeof args, "--epochs 3 --out %s", a);
    int rc = train(args, &err);
    REQUIREF(rc == 0, "rrc train: exit %d: %s", rc, err);
    free(err);
    int na = 0, nb = 0;
    snprintf(path, sizeof path, "%s/metrics.csv", a);
    double *la = losses(path, &na);
    REQUIREF(na == 60, "metrics.csv has %d rows, expected 60", na);
    double first = 0, last = 0;
    for (int i = 0; i < 10; i++) { first += la[i] / 10; last += la[na - 1 - i] / 10; }
    CHECKF(last < first * 0.9, "loss did not go down: first 10 steps %.4f, last 10 %.4f", first, last);
    /* interrupted after 27 steps (mid-epoch), then resumed */
    snprintf(args, sizeof args, "--epochs 3 --out %s --max-steps 27", b);
    rc = train(args, &err);
    CHECKF(rc == 0, "first half: exit %d: %s", rc, err);
    free(err);
    /* as if the run had been killed later: rows past its checkpoint (step
       27), which the resumed run must replace, not follow */
    snprintf(path, sizeof path, "%s/metrics.csv", b);
    FILE *mf = fopen(path, "a");
    REQUIRE(mf);
    for (int s = 28; s <= 33; s++) fprintf(mf, "2,%d,9.5,0.5,0.5,0.5,100.0,%d.000\n", s, 1000 + s);
    fclose(mf);
    snprintf(args, sizeof args, "--epochs 3 --resume %s", b);
    rc = train(args, &err);
    CHECKF(rc == 0, "resume: exit %d: %s", rc, err);
    free(err);
    snprintf(path, sizeof path, "%s/metrics.csv", b);
    double *lb = losses(path, &nb);
    CHECKF(nb == na, "resumed run has %d rows, uninterrupted %d", nb, na);
    for (int i = 0; i < na && i < nb; i++)
        CHECKF(la[i] == lb[i], "step %d: loss %.9g uninterrupted, %.9g resumed", i + 1, la[i], lb[i]);
    /* steps 1..60 once each, and `seconds` never goes back */
    mf = fopen(path, "r");
    REQUIRE(mf);
    char line[256];
    int want = 1;
    double prev = -1;
    bool header = true;
    while (fgets(line, sizeof line, mf)) {
        if (header) { header = false; continue; }
        const char *c = strchr(line, ','), *lastc = strrchr(line, ',');
        CHECKF(c && atoi(c + 1) == want, "row %d of the resumed metrics.csv: %s", want, line);
        double sec = lastc ? atof(lastc + 1) : -1;
        CHECKF(sec >= prev, "seconds go back at step %d: %.3f after %.3f", want, sec, prev);
        prev = sec;
        want++;
    }
    fclose(mf);
    CHECKF(want == 61, "the resumed metrics.csv has %d rows", want - 1);
    free(la);
    free(lb);
    /* the checkpoint evaluates */
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s lineval tests/specs/small_conv.lua --data synthetic:240 --checkpoint %s/last.safetensors --epochs 5",
             test_rrc(), a);
    rc = test_run(cmd, &out, &err);
    CHECKF(rc == 0 && strstr(out, "test top-1"), "lineval: exit %d: %s%s", rc, out, err);
    free(out);
    free(err);
}

TEST(train_errors) {
    char *err = NULL;
    int rc = train("--data nonexistent-set", &err);
    CHECKF(rc == 1 && strstr(err, "nonexistent-set"), "unknown dataset: exit %d: %s", rc, err);
    free(err);
    char args[600];
    snprintf(args, sizeof args, "--resume %s/no_such_run", test_tmpdir());
    rc = train(args, &err);
    CHECKF(rc == 1 && strstr(err, "no_such_run"), "bad resume: exit %d: %s", rc, err);
    free(err);
}

TEST(train_supervised_learns) {
    char cmd[2048], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd,
             "%s train tests/specs/small_conv.lua --method supervised --batch 24 --data synthetic:480 --epochs 4 --quiet --out %s/sup",
             test_rrc(), test_tmpdir());
    int rc = test_run(cmd, &out, &err);
    REQUIREF(rc == 0, "exit %d: %s", rc, err);
    const char *p = strstr(out, "test top-1 ");
    REQUIREF(p, "no accuracy in: %s", out);
    double acc = atof(p + 11);
    CHECKF(acc > 30.0, "supervised test accuracy %.2f%% is not above chance (10%%) by far", acc);
    free(out);
    free(err);
}

/* AOT: `rrc compile` links a standalone trainer whose training equals the
   JIT's step for step; it refuses settings it was not compiled for; its
   grad subcommand matches PyTorch's golden step. */
TEST(aot_trainer_equals_jit) {
    char cmd[8192], *out = NULL, *err = NULL, dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/aot", test_tmpdir());
    snprintf(cmd, sizeof cmd, "%s compile tests/specs/small_conv.lua --data synthetic:250 -o %s --emit-llvm", test_rrc(), dir);
    int rc = test_run(cmd, &out, &err);
    REQUIREF(rc == 0, "rrc compile: exit %d: %s", rc, err);
    free(out);
    free(err);
    const char *files[] = {"small_conv.o", "small_conv.h", "small_conv-train", "small_conv.train_full.ll", "small_conv.train_last.ll"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "r");
        CHECKF(f, "rrc compile did not write %s", path);
        if (f) fclose(f);
    }
    /* 250 = 20 x 12 + 10: the last batch of every epoch runs the second entry */
    snprintf(cmd, sizeof cmd, "%s/small_conv-train --data synthetic:250 --epochs 2 --quiet --out %s/run_aot && "
             "%s train tests/specs/small_conv.lua --data synthetic:250 --epochs 2 --quiet --out %s/run_jit && "
             "cut -d, -f1-6 %s/run_aot/metrics.csv > %s/a.csv && cut -d, -f1-6 %s/run_jit/metrics.csv > %s/b.csv && "
             "cmp %s/a.csv %s/b.csv && wc -l < %s/a.csv",
             dir, dir, test_rrc(), dir, dir, dir, dir, dir, dir, dir, dir);
    rc = test_run(cmd, &out, &err);
    CHECKF(rc == 0, "AOT and JIT runs differ or failed (exit %d): %s %s", rc, out, err);
    CHECKF(atoi(out) == 43, "expected 42 steps and a header, got %s lines", out);
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "%s/small_conv-train --data synthetic:250 --K 5 --out %s/x", dir, dir);
    rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 1 && strstr(err, "compiled with --K 3"), "K mismatch: exit %d: %s", rc, err);
    free(err);
    snprintf(cmd, sizeof cmd, "%s/small_conv-train --data synthetic:100 --out %s/y --quiet", dir, dir);
    rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 1 && strstr(err, "last batch"), "unplanned last batch: exit %d: %s", rc, err);
    free(err);
}

TEST(augment_preview_writes_png) {
    char cmd[2048], path[600], *err = NULL;
    snprintf(path, sizeof path, "%s/views.png", test_tmpdir());
    snprintf(cmd, sizeof cmd, "%s augment-preview tests/specs/small_conv.lua --data synthetic:20 --images 3 --scale 2 --out %s",
             test_rrc(), path);
    int rc = test_run(cmd, NULL, &err);
    REQUIREF(rc == 0, "exit %d: %s", rc, err);
    free(err);
    FILE *f = fopen(path, "rb");
    REQUIRE(f);
    unsigned char h[24];
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    CHECK(n == 24 && memcmp(h, "\x89PNG\r\n\x1a\n", 8) == 0);
    /* IHDR: width = 4 + 4 * (32 + 4) (original + K=3 views at 16x16, x2), height = 4 + 3 * (32 + 4) */
    unsigned w = (unsigned)h[16] << 24 | (unsigned)h[17] << 16 | (unsigned)h[18] << 8 | h[19];
    unsigned hh = (unsigned)h[20] << 24 | (unsigned)h[21] << 16 | (unsigned)h[22] << 8 | h[23];
    CHECKF(w == 148 && hh == 112, "grid is %ux%u", w, hh);
}

/* SimCLR's contrastive accuracy: row i is right when its most
   cosine-similar other row is its partner, B rows away. */
TEST(train_contrastive_metrics) {
    /* B = 3, D = 2, rows view-major: images 0 and 1 have both views along
       one direction (at different lengths), image 2's views point apart:
       row 2 (-1, .2) is nearest rows 1 and 4, row 5 (2, .1) rows 0 and 3.
       So rows 0, 1, 3, 4 are right, 2 and 5 wrong. */
    static const float z[6 * 2] = {1, 0, 0, 1, -1, 0.2f, 3, 0, 0, 2, 2, 0.1f};
    rt_step_metrics m = rt_contrastive_metrics(z, 6, 2, 0.5);
    CHECKF(fabs(m.acc - 4.0 / 6) < 1e-12, "acc %g", m.acc);
    CHECK(m.loss == 0.5 && isnan(m.pos_acc) && isnan(m.neg_acc));
}
