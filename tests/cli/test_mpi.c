/*
** test_mpi.c: data-parallel training over MPI (issue 14), through mpirun
** as a user runs it.
**
** N ranks train the model that one process trains with the whole batch,
** up to the order of float sums. That order changes with the thread count
** too (the step's convolutions split over images), so the yardstick is
** measured here: the divergence between one process at --threads 1 and at
** --threads 2 over the same steps. Two ranks must stay within twice that
** of the nearer one-process run, in every step's loss and in the final
** parameters. Also: an odd split of the batch (and of the last batch) with
** the AOT trainer, a run of 2 ranks resumed by one process, disagreeing
** command lines refused, and a rank killed with -9 ending the whole run
** with a message naming it, no process left behind, the last checkpoint
** intact.
*/
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rt_safetensors.h"
#include "test.h"
#include "test_util.h"

/* The mpirun command line's start: Open MPI refuses root without the two
   variables (CI runs as root); shared memory only, without the
   single-copy mechanism (CMA, which containers forbid); no binding, so a
   rank's threads are its own business; LeakSanitizer off (Open MPI keeps
   memory to the end). */
#define MPIRUN                                                                                                       \
    "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=\"$ASAN_OPTIONS:detect_leaks=0\" "       \
    "mpirun --oversubscribe --bind-to none --mca btl self,vader --mca btl_vader_single_copy_mechanism none "

static bool have_mpirun(void) {
    if (test_run("command -v mpirun", NULL, NULL) == 0) return true;
    test_fail(__FILE__, __LINE__, "mpirun is missing (tools/deps.sh installs openmpi-bin)");
    return false;
}

/* The loss column of metrics.csv: up to cap values; returns how many. */
static int read_losses(const char *run, double *loss, int cap) {
    char path[700];
    snprintf(path, sizeof path, "%s/metrics.csv", run);
    char *text = test_read_file(path, NULL);
    if (!text) return 0;
    int n = 0;
    char *line = strchr(text, '\n');   /* past the header */
    while (line && *++line && n < cap) {
        const char *c = line;
        for (int k = 0; k < 2 && c; k++) c = strchr(c + 1, ',');
        if (!c) break;
        loss[n++] = atof(c + 1);
        line = strchr(line, '\n');
    }
    free(text);
    return n;
}

/* The largest difference between two runs: of the losses of every step
   (*dloss) and of any trainable parameter at the end (*dparam). */
static bool distance(const char *a, const char *b, double *dloss, double *dparam, double *dfirst) {
    double la[64], lb[64];
    int na = read_losses(a, la, 64), nb = read_losses(b, lb, 64);
    if (na == 0 || na != nb) {
        test_fail(__FILE__, __LINE__, "%s has %d steps, %s %d", a, na, b, nb);
        return false;
    }
    *dloss = 0;
    for (int i = 0; i < na; i++) *dloss = fmax(*dloss, fabs(la[i] - lb[i]));
    *dfirst = fabs(la[0] - lb[0]);
    char pa[700], pb[700], err[512];
    snprintf(pa, sizeof pa, "%s/last.safetensors", a);
    snprintf(pb, sizeof pb, "%s/last.safetensors", b);
    rt_st_file fa = {0}, fb = {0};
    if (rt_st_read(pa, &fa, err, sizeof err) != 0 || rt_st_read(pb, &fb, err, sizeof err) != 0) {
        test_fail(__FILE__, __LINE__, "%s", err);
        rt_st_free(&fa);
        return false;
    }
    *dparam = 0;
    int compared = 0;
    for (int i = 0; i < fa.ntensors; i++) {
        const rt_tensor *t = &fa.tensors[i];
        /* the model's tensors (optimizer moments and running statistics
           follow them) */
        if (strncmp(t->name, "backbone.", 9) && strncmp(t->name, "relation.", 9)) continue;
        if (strstr(t->name, "running_") || strstr(t->name, "num_batches")) continue;
        const rt_tensor *u = rt_st_find(&fb, t->name);
        if (!u || u->nbytes != t->nbytes || t->dtype != RT_F32) continue;
        const float *x = (const float *)t->data, *y = (const float *)u->data;
        for (size_t k = 0; k < t->nbytes / 4; k++) *dparam = fmax(*dparam, fabs((double)x[k] - (double)y[k]));
        compared++;
    }
    rt_st_free(&fa);
    rt_st_free(&fb);
    if (!compared) test_fail(__FILE__, __LINE__, "%s and %s share no parameter", a, b);
    return compared > 0;
}

/* `rrc train SPEC ARGS --out RUN`: alone with THREADS threads (np 0), or
   under mpirun with np ranks of one thread. */
static int train(int np, int threads, const char *spec, const char *args, const char *run, char **err) {
    char cmd[4096];
    if (np)
        snprintf(cmd, sizeof cmd, MPIRUN "-np %d %s train %s %s --threads 1 --quiet --out %s", np, test_rrc(), spec, args, run);
    else
        snprintf(cmd, sizeof cmd, "%s train %s %s --threads %d --quiet --out %s", test_rrc(), spec, args, threads, run);
    return test_run(cmd, NULL, err);
}

/* 20 steps of SPEC on 2 ranks against one process with the whole batch,
   at each of nseeds seeds: the largest divergence of 2 ranks from the
   nearer one-process run within twice the largest between threads 1 and 2.
   One rounding-level difference (the weight gradients' sums, grouped by
   thread or by rank) is all either run starts from, and whether it grows
   is chance: a max-pooling tie or a ReLU kink that flips sends a gradient
   elsewhere, and from then on the runs differ in the 3rd digit. Conv-4
   at seed 3 never flips between thread counts in 20 steps (parameters
   within 1e-6) but does between ranks at step 4; at seeds 4 and 5 the
   thread counts flip too (1.3e-3, 5.2e-3). So the yardstick is taken over
   seeds, not from one lucky run. */
static void two_ranks_equal_one(const char *spec, const char *tag, const int *seeds, int nseeds) {
    if (!have_mpirun()) return;
    double tl = 0, tp = 0, rl = 0, rp = 0;
    for (int s = 0; s < nseeds; s++) {
        char args[128], t1[600], t2[610], r2[610];
        snprintf(args, sizeof args, "--data synthetic:1280 --max-steps 20 --seed %d", seeds[s]);
        snprintf(t1, sizeof t1, "%s_s%d", test_tmp_path(tag), seeds[s]);
        snprintf(t2, sizeof t2, "%s_t2", t1);
        snprintf(r2, sizeof r2, "%s_r2", t1);
        char *err = NULL;
        int rc = train(0, 1, spec, args, t1, &err);
        CHECKF(rc == 0, "one process, 1 thread: %s", err);
        free(err), err = NULL;
        rc = train(0, 2, spec, args, t2, &err);
        CHECKF(rc == 0, "one process, 2 threads: %s", err);
        free(err), err = NULL;
        rc = train(2, 1, spec, args, r2, &err);
        CHECKF(rc == 0, "mpirun -np 2: %s", err);
        free(err);
        if (rc != 0) return;
        double l, p, al, ap, bl, bp, f, af, bf;
        if (!distance(t1, t2, &l, &p, &f) || !distance(r2, t1, &al, &ap, &af) || !distance(r2, t2, &bl, &bp, &bf)) return;
        /* the first step's loss, before any rounding difference has grown:
           equal to the digits metrics.csv prints */
        CHECKF(fmin(af, bf) <= 1e-6, "%s seed %d: 2 ranks' first loss differs by %g from one process's", spec, seeds[s],
               fmin(af, bf));
        tl = fmax(tl, l), tp = fmax(tp, p);
        rl = fmax(rl, fmin(al, bl)), rp = fmax(rp, fmin(ap, bp));
        /* the figures, for the record */
        fprintf(stderr, "  %s seed %d: 20 steps: 2 ranks vs one process: loss %.3g, params %.3g; threads 1 vs 2: loss %.3g, params %.3g\n",
                spec, seeds[s], fmin(al, bl), fmin(ap, bp), l, p);
    }
    /* a yardstick of zero would make the test one of bitwise equality,
       which thread counts do not give here: it must be measured */
    CHECKF(tl > 0 && tp > 0, "threads 1 and 2 agree bitwise (%g, %g): the yardstick is gone", tl, tp);
    /* metrics.csv prints the loss to 6 decimals, and in 20 steps one
       rounding difference grows to dozens of units of the last: the loss's
       yardstick has a floor of a hundred (docs/DECISIONS.md: the factor
       pass, and Winograd's measurement) */
    CHECKF(rl <= fmax(2 * tl, 1e-4), "%s: 2 ranks' losses differ by %g from one process's, threads 1 vs 2 by %g", spec, rl, tl);
    CHECKF(rp <= 2 * tp, "%s: 2 ranks' parameters differ by %g from one process's, threads 1 vs 2 by %g", spec, rp, tp);
}

TEST(mpi_conv4_two_ranks_equal_one) {
    static const int seeds[] = {3, 4, 5};
    two_ranks_equal_one("specs/conv4.lua", "mpi_conv4", seeds, 3);
}

TEST(mpi_resnet8_two_ranks_equal_one) {
    static const int seeds[] = {3};
    two_ranks_equal_one("specs/resnet8.lua", "mpi_resnet8", seeds, 1);
}

/* An AOT trainer compiled for 2 ranks, a batch of 7 (shares 4 and 3) and a
   last batch of 2 (1 and 1): mpirun trains an epoch; one process (the
   same trainer, alone) resumes it for a second; both epochs agree with an
   uninterrupted one-process run of the trainer. */
TEST(mpi_odd_split_aot_and_resume_on_one_rank) {
    if (!have_mpirun()) return;
    const char *dir = test_tmp_path("mpi_aot");
    char cmd[4096], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "%s compile tests/specs/small_conv.lua --batch 7 --ranks 2 --data synthetic:100 -o %s", test_rrc(),
             dir);
    int rc = test_run(cmd, &out, &err);
    REQUIREF(rc == 0, "%s\n%s", out, err);
    CHECKF(strstr(out, "+ 2 ranks"), "%s", out);
    free(out), free(err), out = err = NULL;
    char ranks[700], alone[700];
    snprintf(ranks, sizeof ranks, "%s/run_ranks", dir);
    snprintf(alone, sizeof alone, "%s/run_alone", dir);
    snprintf(cmd, sizeof cmd, MPIRUN "-np 2 %s/small_conv-train train --data synthetic:100 --epochs 1 --threads 1 --out %s", dir,
             ranks);
    rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 0 && strstr(err, "data-parallel over 2 ranks: 3-4 of each batch's 7 images a rank"), "mpirun: status %d: %s", rc, err);
    free(err), err = NULL;
    snprintf(cmd, sizeof cmd, "%s/small_conv-train train --data synthetic:100 --epochs 2 --threads 1 --quiet --resume %s", dir,
             ranks);
    rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 0, "resumed alone: %s", err);
    free(err), err = NULL;
    snprintf(cmd, sizeof cmd, "%s/small_conv-train train --data synthetic:100 --epochs 2 --threads 1 --quiet --out %s", dir, alone);
    rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 0, "alone: %s", err);
    free(err);
    double a[64], b[64];
    int na = read_losses(ranks, a, 64), nb = read_losses(alone, b, 64);
    /* 100 images: 14 full batches and one of 2, twice */
    CHECKF(na == 30 && nb == 30, "%d and %d steps", na, nb);
    double worst = 0;
    for (int i = 0; i < na && i < nb; i++) worst = fmax(worst, fabs(a[i] - b[i]) / fmax(1e-3, fabs(b[i])));
    CHECKF(worst < 1e-3, "losses of 2 ranks + resumed alone vs alone differ by %g (relative)", worst);
}

TEST(mpi_disagreeing_ranks_are_refused) {
    if (!have_mpirun()) return;
    const char *run = test_tmp_path("mpi_disagree");
    char cmd[4096], *err = NULL;
    snprintf(cmd, sizeof cmd,
             MPIRUN "-np 1 %s train tests/specs/small_conv.lua --data synthetic:48 --seed 1 --max-steps 1 --out %s : "
                    "-np 1 %s train tests/specs/small_conv.lua --data synthetic:48 --seed 2 --max-steps 1 --out %s",
             test_rrc(), run, test_rrc(), run);
    int rc = test_run(cmd, NULL, &err);
    CHECKF(rc != 0 && strstr(err, "the command line differs between ranks"), "status %d: %s", rc, err);
    free(err);
}

/* The pids of the processes whose command line holds `needle` and whose
   environment says rank `rank` of an Open MPI run. */
static int find_rank(const char *needle, int rank, pid_t *pids, int cap) {
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "for p in $(pgrep -f '%s'); do tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | "
             "grep -qx 'OMPI_COMM_WORLD_RANK=%d' && echo $p; done; true",
             needle, rank);
    if (test_run(cmd, &out, NULL) != 0 || !out) return 0;
    int n = 0;
    for (char *s = out; *s && n < cap;) {
        long v = strtol(s, &s, 10);
        if (v > 0) pids[n++] = (pid_t)v;
        while (*s == '\n') s++;
        if (v <= 0) break;
    }
    free(out);
    return n;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

TEST(mpi_killed_rank_ends_the_run) {
    if (!have_mpirun()) return;
    const char *run = test_tmp_path("mpi_killed");
    char errpath[700], cmd[4096], ckpt[700];
    snprintf(errpath, sizeof errpath, "%s.err", run);
    snprintf(ckpt, sizeof ckpt, "%s/last.safetensors", run);
    /* many short epochs, a checkpoint after each */
    snprintf(cmd, sizeof cmd,
             MPIRUN "-np 2 %s train tests/specs/small_conv.lua --data synthetic:120 --epochs 100000 --threads 1 --quiet "
                    "--out %s 2> %s",
             test_rrc(), run, errpath);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    /* wait for a checkpoint, then kill rank 1 */
    double t0 = now_s();
    while (!test_exists(ckpt) && now_s() - t0 < 60) usleep(50000);
    CHECK(test_exists(ckpt));
    usleep(300000);
    pid_t victim[4];
    int nv = find_rank(run, 1, victim, 4);
    CHECKF(nv == 1, "found %d processes of rank 1", nv);
    if (nv >= 1) kill(victim[0], SIGKILL);
    /* the hang guard of this test: mpirun must end by itself well before */
    int st = 0;
    pid_t done = 0;
    t0 = now_s();
    while ((done = waitpid(pid, &st, WNOHANG)) == 0 && now_s() - t0 < 30) usleep(50000);
    double took = now_s() - t0;
    if (done == 0) {
        kill(-pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    CHECKF(done == pid, "mpirun still running %.0f s after rank 1 was killed", took);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) != 0, "mpirun ended with status %d", st);
    char *err = test_read_file(errpath, NULL);
    CHECKF(err && strstr(err, "rank 1"), "no message names rank 1: %s", err ? err : "(none)");
    free(err);
    /* no rank of the run remains */
    usleep(200000);
    pid_t left[4];
    CHECKF(find_rank(run, 0, left, 4) == 0 && find_rank(run, 1, left, 4) == 0, "processes of the run remain");
    /* the last checkpoint is whole: one process resumes from it */
    char *e2 = NULL;
    snprintf(cmd, sizeof cmd, "%s train tests/specs/small_conv.lua --data synthetic:120 --epochs 100000 --max-steps 1 --quiet --resume %s",
             test_rrc(), run);
    int rc = test_run(cmd, NULL, &e2);
    CHECKF(rc == 0, "resuming from the last checkpoint: %s", e2);
    free(e2);
}
