/*
** test_comm.c: data-parallel ranks (runtime/rt_comm.c).
**
** In this process (no mpirun) rt_comm is one rank that never starts MPI:
** shares split n items with the first n % N ranks one larger, sums leave
** the buffer's bits alone, allgather copies, agree agrees, bcast is
** nothing, and a bad RRC_MPI_TIMEOUT is refused (in a child process, since
** rt_comm_init reads it once).
**
** The comm_mpi_ tests run BUILD/comm_selftest (tools/comm_selftest.c, next
** to this runner) under mpirun with 1, 2 and 3 ranks: sums bit-equal to a
** rank-order sum on every rank, by each of rt_comm's ways to sum, allgather
** with unequal counts, bcast, agree, share; then the hang guard (one rank
** sleeps past RRC_MPI_TIMEOUT=2, the others end the run with the "no
** answer" line) and rt_comm_abort (mpirun ends with its code). mpirun
** missing is a failure: tools/deps.sh installs openmpi-bin.
*/
#include "test.h"
#include "test_util.h"

#include "rt_comm.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The launcher's variables are not set for this process's rt_comm_init
   (in case the runner itself was started by mpirun). */
static void forget_launcher(void) {
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMIX_RANK");
    unsetenv("PMI_SIZE");
}

TEST(comm_share_splits) {
    static const struct { int64_t n; int N; int64_t count[5], offset[5]; } cases[] = {
        {10, 3, {4, 3, 3}, {0, 4, 7}},
        {11, 3, {4, 4, 3}, {0, 4, 8}},
        {2, 3, {1, 1, 0}, {0, 1, 2}},
        {0, 3, {0, 0, 0}, {0, 0, 0}},
        {7, 1, {7}, {0}},
        {5, 5, {1, 1, 1, 1, 1}, {0, 1, 2, 3, 4}},
        {9, 4, {3, 2, 2, 2}, {0, 3, 5, 7}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
        for (int r = 0; r < cases[k].N; r++) {
            int64_t off = -1, c = rt_comm_share(cases[k].n, r, cases[k].N, &off);
            CHECKF(c == cases[k].count[r] && off == cases[k].offset[r], "share(%lld, %d, %d) = %lld at %lld, expected %lld at %lld",
                   (long long)cases[k].n, r, cases[k].N, (long long)c, (long long)off, (long long)cases[k].count[r],
                   (long long)cases[k].offset[r]);
        }
    /* beyond int: counts and offsets in int64 */
    int64_t n = (int64_t)INT_MAX * 3 + 2, sum = 0;
    for (int r = 0; r < 3; r++) {
        int64_t off, c = rt_comm_share(n, r, 3, &off);
        CHECK(off == sum);
        CHECK(c == (int64_t)INT_MAX + (r < 2));
        sum += c;
    }
    CHECK(sum == n);
    /* no offset wanted; nonsense ranks get nothing */
    CHECK(rt_comm_share(10, 1, 3, NULL) == 3);
    int64_t off = -1;
    CHECK(rt_comm_share(10, 3, 3, &off) == 0 && off == 0);
    CHECK(rt_comm_share(10, 0, 0, &off) == 0 && off == 0);
    CHECK(rt_comm_share(-4, 0, 2, &off) == 0 && off == 0);
}

TEST(comm_one_rank_without_mpirun) {
    forget_launcher();
    CHECK(!rt_comm_launched());
    const rt_comm *c = rt_comm_get();
    CHECK(c->rank == 0 && c->size == 1 && c->local_size == 1 && !c->mpi);
    char err[256] = "";
    REQUIREF(rt_comm_init(err, sizeof err) == 0, "rt_comm_init: %s", err);
    REQUIREF(rt_comm_init(err, sizeof err) == 0, "rt_comm_init again: %s", err);
    c = rt_comm_get();
    CHECK(c->rank == 0 && c->size == 1 && c->local_size == 1 && !c->mpi);
}

TEST(comm_one_rank_sums_keep_the_bits) {
    forget_launcher();
    char err[256] = "";
    REQUIREF(rt_comm_init(err, sizeof err) == 0, "rt_comm_init: %s", err);
    enum { N = 5000 };   /* past the small-buffer size too */
    float *f = malloc(N * sizeof *f), *f0 = malloc(N * sizeof *f0);
    double *d = malloc(N * sizeof *d), *d0 = malloc(N * sizeof *d0);
    for (int i = 0; i < N; i++) {
        f[i] = (float)(i * 1e-3 - 1.5);
        d[i] = i * 1e-7 - 1e8;
    }
    f[0] = -0.0f;
    f[1] = nanf("0x123");
    f[2] = INFINITY;
    d[0] = -0.0;
    d[1] = nan("0x456");
    memcpy(f0, f, N * sizeof *f);
    memcpy(d0, d, N * sizeof *d);
    int64_t calls = rt_comm_calls();
    rt_comm_sum_f32(f, N);
    rt_comm_sum_f64(d, N);
    rt_comm_sum_f32(f, 3);
    rt_comm_sum_f64(d, 0);
    CHECK(memcmp(f, f0, N * sizeof *f) == 0);
    CHECK(memcmp(d, d0, N * sizeof *d) == 0);
    CHECK(rt_comm_calls() == calls + 4);
    CHECK(rt_comm_seconds() >= 0);
    free(f);
    free(f0);
    free(d);
    free(d0);
}

TEST(comm_one_rank_allgather_copies) {
    forget_launcher();
    char err[256] = "";
    REQUIREF(rt_comm_init(err, sizeof err) == 0, "rt_comm_init: %s", err);
    float s[7], r[7];
    double sd[7], rd[7];
    for (int i = 0; i < 7; i++) {
        s[i] = (float)i + 0.25f;
        sd[i] = i * 3.5;
        r[i] = -1;
        rd[i] = -1;
    }
    int64_t counts[1] = {6};
    rt_comm_allgather_f32(s, 6, r, counts);
    rt_comm_allgather_f64(sd, 6, rd, counts);
    CHECK(memcmp(s, r, 6 * sizeof *s) == 0 && r[6] == -1);
    CHECK(memcmp(sd, rd, 6 * sizeof *sd) == 0 && rd[6] == -1);
    /* in place */
    rt_comm_allgather_f32(s, 6, s, counts);
    CHECK(s[5] == 5.25f);
    int64_t zero[1] = {0};
    rt_comm_allgather_f32(s, 0, r, zero);
}

TEST(comm_one_rank_agree_and_bcast) {
    forget_launcher();
    char err[256] = "untouched";
    REQUIREF(rt_comm_init(err, sizeof err) == 0, "rt_comm_init: %s", err);
    strcpy(err, "untouched");
    CHECK(rt_comm_agree(0xfeedull, "the flags", err, sizeof err) == 0);
    CHECK(rt_comm_agree(0, "the program", err, sizeof err) == 0);
    CHECK(!strcmp(err, "untouched"));
    char b[16] = "abcdef";
    rt_comm_bcast(b, sizeof b, 0);
    CHECK(!strcmp(b, "abcdef"));
    rt_comm_set_timeout(5);   /* no watchdog without MPI: nothing to see, nothing breaks */
    rt_comm_set_timeout(60);
}

TEST_CHILD(comm_bad_timeout) {
    char err[256] = "";
    forget_launcher();
    if (rt_comm_init(err, sizeof err) != -1) return 1;
    return strstr(err, "RRC_MPI_TIMEOUT") && strstr(err, "'soon'") ? 0 : 2;
}

TEST(comm_bad_timeout_is_refused) {
    setenv("RRC_MPI_TIMEOUT", "soon", 1);
    int rc = test_child("comm_bad_timeout");
    unsetenv("RRC_MPI_TIMEOUT");
    CHECKF(rc == 0, "child: %d", rc);
}

/* ---- under mpirun ---- */

/* BUILD/comm_selftest, next to this runner (static buffer). */
static const char *selftest(void) {
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
    if (n <= 0) return NULL;
    path[n] = 0;
    char *slash = strrchr(path, '/');
    if (!slash) return NULL;
    strcpy(slash + 1, "comm_selftest");
    return path;
}

/* Whether mpirun and the self-test are there (records a failure if not). */
static bool mpi_ready(void) {
    if (test_run("command -v mpirun", NULL, NULL) != 0) {
        test_fail(__FILE__, __LINE__, "mpirun is missing (tools/deps.sh installs openmpi-bin)");
        return false;
    }
    const char *st = selftest();
    if (!st || access(st, X_OK) != 0) {
        test_fail(__FILE__, __LINE__, "%s is missing (make builds it with the tests)", st ? st : "comm_selftest");
        return false;
    }
    return true;
}

/* Runs comm_selftest MODE on np ranks with extra environment `env`;
   mpirun's exit status (-1: a signal). Open MPI refuses root without the
   two variables (CI runs as root); --oversubscribe for more ranks than
   cores; shared memory only (no network probing), without the single-copy
   mechanism (CMA, which containers forbid). LeakSanitizer is off for
   these processes: Open MPI keeps memory to the end. */
static int run_mpi(int np, const char *env, const char *mode, char **out, char **err) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "%s OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 "
             "ASAN_OPTIONS=\"$ASAN_OPTIONS:detect_leaks=0\" "
             "mpirun --oversubscribe --bind-to none --mca btl self,vader --mca btl_vader_single_copy_mechanism none "
             "-np %d '%s' %s",
             env, np, selftest(), mode);
    return test_run(cmd, out, err);
}

TEST(comm_mpi_collectives) {
    if (!mpi_ready()) return;
    for (int np = 1; np <= 3; np++) {
        char *out, *err, want[64];
        int rc = run_mpi(np, "", "check", &out, &err);
        snprintf(want, sizeof want, "comm_selftest: ok (%d ranks)", np);
        CHECKF(rc == 0 && strstr(out, want), "mpirun -np %d comm_selftest: status %d\nstdout:\n%s\nstderr:\n%s", np, rc, out, err);
        free(out);
        free(err);
    }
}

TEST(comm_mpi_hang_guard) {
    if (!mpi_ready()) return;
    char *out, *err;
    int rc = run_mpi(3, "RRC_MPI_TIMEOUT=2", "hang", &out, &err);
    CHECKF(rc != 0, "mpirun ended with status 0");
    CHECKF(strstr(err, "no answer from the other ranks for 2 s in rt_comm_sum_f32; ending the run"), "stderr:\n%s", err);
    CHECKF(!strstr(err, "did not fire"), "stderr:\n%s", err);
    free(out);
    free(err);
}

TEST(comm_mpi_abort) {
    if (!mpi_ready()) return;
    char *out, *err;
    int rc = run_mpi(3, "", "abort", &out, &err);
    CHECKF(rc == 5, "mpirun ended with status %d, expected rt_comm_abort's 5\nstderr:\n%s", rc, err);
    CHECKF(!strstr(err, "still running"), "stderr:\n%s", err);
    free(out);
    free(err);
}
