/*
** test_prof.c: `--profile` (runtime/rt_prof.c and the sites that codegen
** puts around every kernel call).
**
** The unit test drives rt_prof with sites made by hand: only calls inside
** a profiled step count, the report's shares of the kernels and "other"
** add up to the step, its shares and GFLOP/s agree with its times, names
** group by op and by module, and rt_prof_stop unlinks every site (they live
** in compiled code that may be freed next). No test bounds a time or a
** speed from above (a loaded host is slow; speed is `make bench`'s job):
** the only time checks are lower bounds that the spun time guarantees.
** The end-to-end tests run an AOT trainer's `bench --profile` (the
** conv2d kernels are there, the shares add up to 100%) and `rrc train
** --profile` (JIT): the losses equal an unprofiled run's, since profiling
** only observes, and RUN/profile.csv names both compiled entries.
*/
#include "test.h"
#include "test_util.h"

#include "rt_prof.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One row of a profile CSV. */
typedef struct CsvRow {
    char kind[16], name[256];
    long long calls;
    double ms, share, gflops;
} CsvRow;

/* The rows of a profile CSV, malloc'd; *n rows (0 and NULL if unreadable). */
static CsvRow *read_profile(const char *path, int *n) {
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char line[1024];
    CsvRow *v = NULL;
    int cap = 0;
    if (!fgets(line, sizeof line, f) || strncmp(line, "kind,name,calls,", 16) != 0) {
        fclose(f);
        return NULL;
    }
    while (fgets(line, sizeof line, f)) {
        CsvRow r;
        if (sscanf(line, "%15[^,],\"%255[^\"]\",%lld,%lf,%lf,%lf", r.kind, r.name, &r.calls, &r.ms, &r.share, &r.gflops) != 6)
            continue;
        if (*n == cap) v = realloc(v, (size_t)(cap = cap ? 2 * cap : 64) * sizeof *v);
        v[(*n)++] = r;
    }
    fclose(f);
    return v;
}

static const CsvRow *find_row(const CsvRow *r, int n, const char *kind, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(r[i].kind, kind) && !strcmp(r[i].name, name)) return &r[i];
    return NULL;
}

/* Sum of the shares of the kernels and of "other": the step, 100%. */
static double kernel_and_other_share(const CsvRow *r, int n) {
    double s = 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(r[i].kind, "kernel") || !strcmp(r[i].kind, "other")) s += r[i].share;
    return s;
}

static void spin(double seconds) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do clock_gettime(CLOCK_MONOTONIC, &t);
    while ((double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec) < seconds);
}

TEST(prof_sites_and_report) {
    static rt_prof_site conv = {"e: backbone.layer1.conv conv2d", 2e6, 4e3, 0, 0, 0, NULL, 0};
    static rt_prof_site lin = {"e: relation.linear1 linear", 1e6, 1e3, 0, 0, 0, NULL, 0};
    static rt_prof_site fused = {"e: backbone.layer1.conv conv2d [epilogue]", 1e6, 1e3, 0, 0, 0, NULL, 0};
    static rt_prof_site idle = {"e: - fill", 0, 0, 0, 0, 0, NULL, 0};
    /* off: nothing counts, even inside a step */
    rt_prof_step_begin();
    rt_prof_begin(&conv);
    rt_prof_end(&conv);
    rt_prof_step_end();
    CHECK(conv.calls == 0 && !conv.linked);
    rt_prof_start();
    /* on, but outside a step (a warm-up, evaluation): nothing counts */
    rt_prof_begin(&conv);
    rt_prof_end(&conv);
    CHECK(conv.calls == 0 && !conv.linked);
    for (int step = 0; step < 2; step++) {
        rt_prof_step_begin();
        rt_prof_begin(&conv);
        spin(0.004);
        rt_prof_end(&conv);
        rt_prof_begin(&lin);
        spin(0.001);
        rt_prof_end(&lin);
        rt_prof_begin(&fused);
        rt_prof_end(&fused);
        spin(0.001);   /* "other" */
        rt_prof_step_end();
    }
    CHECK(conv.calls == 2 && lin.calls == 2 && fused.calls == 2 && idle.calls == 0);
    /* at least the time spun inside each site is counted (a lower bound:
       it holds on any host, however slow or loaded) */
    CHECK(conv.ns >= 8000000 && lin.ns >= 2000000);
    char csv[600], txt[600];
    snprintf(csv, sizeof csv, "%s/prof_unit.csv", test_tmpdir());
    snprintf(txt, sizeof txt, "%s/prof_unit.txt", test_tmpdir());
    FILE *f = fopen(txt, "w");
    REQUIRE(f);
    char err[256] = "";
    int rc = rt_prof_report(f, 1, csv, err, sizeof err);
    fclose(f);
    rt_prof_stop();
    CHECKF(rc == 0, "report: %s", err);
    CHECK(!conv.linked && !lin.linked && conv.next == NULL && conv.calls == 0);
    int n = 0;
    CsvRow *r = read_profile(csv, &n);
    REQUIREF(r, "no readable %s", csv);
    const CsvRow *kc = find_row(r, n, "kernel", conv.name), *kl = find_row(r, n, "kernel", lin.name);
    const CsvRow *other = find_row(r, n, "other", "other (outside kernels)"), *step = find_row(r, n, "step", "step");
    CHECK(kc && kl && other && step && !find_row(r, n, "kernel", idle.name));
    if (kc && kl && other && step) {
        CHECKF(kc->calls == 2 && kl->calls == 2, "calls %lld %lld", kc->calls, kl->calls);
        CHECKF(fabs(kernel_and_other_share(r, n) - 100) < 0.01, "shares add up to %.4f%%", kernel_and_other_share(r, n));
        /* a share is the row's time over the step's (CSV rounding aside) */
        const CsvRow *rows[] = {kc, kl, other};
        for (int i = 0; i < 3; i++)
            CHECKF(fabs(rows[i]->share - 100 * rows[i]->ms / step->ms) < 0.01, "%s: share %.4f%%, %.6f of %.6f ms",
                   rows[i]->name, rows[i]->share, rows[i]->ms, step->ms);
        CHECKF(kc->ms > 3.99 && kl->ms > 0.99 && step->ms > 5.99, "%.3f, %.3f and %.3f ms per step for 4, 1 and 6 ms spun",
               kc->ms, kl->ms, step->ms);
        /* GFLOP/s = flops per call x calls / ns: 2e6 x 2 over 2 steps of ms */
        double want = 2e6 * (double)kc->calls / (kc->ms * 1e6 * 2);
        CHECKF(fabs(kc->gflops - want) <= 1e-4 + 1e-3 * want, "conv2d at %.4f GFLOP/s, its time gives %.4f", kc->gflops,
               want);
    }
    /* the op is what follows the module: a fused kernel's label sums apart */
    const CsvRow *oc = find_row(r, n, "op", "conv2d");
    CHECK(oc && oc->calls == 2 && find_row(r, n, "op", "linear") && find_row(r, n, "op", "conv2d [epilogue]"));
    const CsvRow *mb = find_row(r, n, "module", "backbone");
    CHECK(mb && mb->calls == 4 && find_row(r, n, "module", "relation"));
    free(r);
    /* the printed table: the slowest kernel, then the rest in one line */
    char *buf = test_read_file(txt, NULL);
    REQUIREF(buf, "no readable %s", txt);
    CHECKF(strstr(buf, "profile: 2 steps") && strstr(buf, conv.name) && !strstr(buf, lin.name) &&
               strstr(buf, "(2 more kernels)") && strstr(buf, "by op:") && strstr(buf, "by module:"),
           "table:\n%s", buf);
    free(buf);
}

/* An AOT trainer's bench --profile on conv4: conv2d kernels in the table,
   the shares of all kernels and "other" add up to the step. */
TEST(prof_bench_aot) {
    char dir[600], csv[700], cmd[4096], *out = NULL, *err = NULL;
    snprintf(dir, sizeof dir, "%s/prof_conv4", test_tmpdir());
    snprintf(csv, sizeof csv, "%s/profile.csv", dir);
    snprintf(cmd, sizeof cmd,
             "%s compile specs/conv4.lua --train-size 640 -o %s >/dev/null && "
             "%s/conv4-train bench --steps 3 --warmup 1 --threads 1 --profile --profile-csv %s",
             test_rrc(), dir, dir, csv);
    int rc = test_run(cmd, &out, &err);
    REQUIREF(rc == 0, "compile + bench --profile: exit %d: %s", rc, err);
    CHECKF(strstr(out, "profile: 3 steps") && strstr(out, " conv2d ") && strstr(out, " conv2d_dw ") &&
               strstr(out, "other (outside kernels)"),
           "bench --profile printed:\n%s", out);
    int n = 0, conv = 0, gflops = 0;   /* conv kernels, and those with a flop count */
    CsvRow *r = read_profile(csv, &n);
    REQUIREF(r, "no readable %s", csv);
    for (int i = 0; i < n; i++)
        if (!strcmp(r[i].kind, "kernel")) {
            CHECKF(r[i].calls == 3 && !strncmp(r[i].name, "train_b64: ", 11), "kernel row %s, %lld calls", r[i].name, r[i].calls);
            if (strstr(r[i].name, " conv2d")) {
                conv++;
                gflops += r[i].gflops > 0;
            }
        }
    CHECKF(conv == 4 + 4 + 3 && gflops == conv, "%d conv kernels (%d with a GFLOP/s figure), expected 11", conv, gflops);
    CHECKF(fabs(kernel_and_other_share(r, n) - 100) < 0.01, "shares add up to %.4f%%", kernel_and_other_share(r, n));
    const CsvRow *other = find_row(r, n, "other", "other (outside kernels)");
    CHECK(other && other->share >= 0);
    CHECK(find_row(r, n, "module", "backbone") && find_row(r, n, "module", "relation"));
    free(r);
    free(out);
    free(err);
}

/* rrc train --profile (JIT) changes no loss; the profile names both entries
   (250 = 20 x 12 + 10: step 21 runs the last batch's). */
TEST(prof_train_jit_same_losses) {
    char a[600], b[600], cmd[8192], csv[700], *out = NULL, *err = NULL;
    snprintf(a, sizeof a, "%s/prof_run_a", test_tmpdir());
    snprintf(b, sizeof b, "%s/prof_run_b", test_tmpdir());
    snprintf(cmd, sizeof cmd,
             "%s train --profile tests/specs/small_conv.lua --data synthetic:250 --max-steps 24 --quiet --out %s && "
             "%s train tests/specs/small_conv.lua --data synthetic:250 --max-steps 24 --quiet --out %s >/dev/null && "
             "cut -d, -f1-6 %s/metrics.csv > %s/m.csv && cut -d, -f1-6 %s/metrics.csv > %s/m.csv && cmp %s/m.csv %s/m.csv",
             test_rrc(), a, test_rrc(), b, a, a, b, b, a, b);
    int rc = test_run(cmd, &out, &err);
    CHECKF(rc == 0, "profiled and unprofiled runs differ or failed (exit %d): %s", rc, err);
    CHECKF(strstr(out, "profile: 24 steps") && strstr(out, "conv2d"), "train --profile printed:\n%s", out);
    snprintf(csv, sizeof csv, "%s/profile.csv", a);
    int n = 0;
    CsvRow *r = read_profile(csv, &n);
    REQUIREF(r, "no readable %s", csv);
    CHECK(find_row(r, n, "kernel", "train_b12: backbone.layer1.conv conv2d [conv_stats]") &&
          find_row(r, n, "kernel", "train_b10: backbone.layer1.conv conv2d [conv_stats]"));
    const CsvRow *k = find_row(r, n, "kernel", "train_b12: backbone.layer1.conv conv2d [conv_stats]");
    CHECK(k && k->calls == 23);
    CHECKF(fabs(kernel_and_other_share(r, n) - 100) < 0.01, "shares add up to %.4f%%", kernel_and_other_share(r, n));
    free(r);
    free(out);
    free(err);
}
