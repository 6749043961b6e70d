/*
** comm_selftest.c: the MPI collectives of runtime/rt_comm.c on real ranks.
** Built by the Makefile as BUILD/comm_selftest; run by tests/runtime/test_comm.c:
**
**   mpirun -np 3 BUILD/comm_selftest         the checks; rank 0 prints
**                                            "comm_selftest: ok (N ranks)", exit 0
**   mpirun -np 3 BUILD/comm_selftest hang    the last rank sleeps 8 s before a
**                                            sum: with RRC_MPI_TIMEOUT=2 the
**                                            others' hang guard ends the run
**   mpirun -np 3 BUILD/comm_selftest abort   the last rank calls
**                                            rt_comm_abort(5) while the others
**                                            wait in a sum
**
** The sums are checked bit for bit against a rank-order sum made locally
** from every rank's known data (values such as 1e8, 1, -1e8, where the
** order changes the result), through each way rt_comm sums (one allgather,
** reduce-scatter + allgather, in short segments), and must agree on every
** rank. Also: allgather with unequal counts (one rank sends nothing),
** bcast, agree (equal and unequal values, the message), share.
*/
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_comm.h"

static int failures;
static int rank, nranks;

/* A failed check: one line on stderr (one write, so that the ranks' lines
   do not interleave). */
static void fail(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(int line, const char *fmt, ...) {
    char msg[1024];
    int n = snprintf(msg, sizeof msg, "comm_selftest: rank %d: line %d: ", rank, line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n - 1, fmt, ap);
    va_end(ap);
    strcat(msg, "\n");
    failures++;
    fputs(msg, stderr);
}

#define CHECK(c, ...)                              \
    do {                                           \
        if (!(c)) fail(__LINE__, __VA_ARGS__);     \
    } while (0)

/* Rank r's element i: terms of very different sizes, so that adding them in
   another order than 0, 1, ..., N-1 changes the result. */
static const double T32[8] = {1e8, 1, -1e8, 3.5, -2.25e-3, 7e7, 0.1, -1};
static const double T64[8] = {1e17, 1, -1e17, 3.5, -2.25e-3, 7e16, 0.1, -1};
static float v32(int r, int64_t i) { return (float)(T32[(i * 5 + r * 3) % 8] * (1 + (double)(i % 7) * 0.125)); }
static double v64(int r, int64_t i) { return T64[(i * 5 + r * 3) % 8] * (1 + (double)(i % 7) * 0.125); }

static uint64_t fnv(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static void check_sums(const char *how) {
    static const int64_t sizes[] = {0, 1, 2, 5, 1000, 1024, 1025, 4099, 100003};
    int order_sensitive = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        int64_t n = sizes[k];
        float *a = malloc((size_t)(n + 1) * sizeof *a), *ref = malloc((size_t)(n + 1) * sizeof *ref);
        double *d = malloc((size_t)(n + 1) * sizeof *d), *refd = malloc((size_t)(n + 1) * sizeof *refd);
        for (int64_t i = 0; i < n; i++) {
            a[i] = v32(rank, i);
            d[i] = v64(rank, i);
            ref[i] = v32(0, i);
            refd[i] = v64(0, i);
            for (int r = 1; r < nranks; r++) {
                ref[i] += v32(r, i);
                refd[i] += v64(r, i);
            }
            float rev = v32(nranks - 1, i);
            for (int r = nranks - 2; r >= 0; r--) rev += v32(r, i);
            order_sensitive += memcmp(&rev, &ref[i], sizeof rev) != 0;
        }
        rt_comm_sum_f32(a, n);
        rt_comm_sum_f64(d, n);
        for (int64_t i = 0; i < n; i++) {
            if (memcmp(&a[i], &ref[i], sizeof *a) != 0) {
                CHECK(0, "%s: sum_f32 of %" PRId64 ": element %" PRId64 " is %.9g, the rank-order sum %.9g", how, n, i,
                      (double)a[i], (double)ref[i]);
                break;
            }
        }
        for (int64_t i = 0; i < n; i++) {
            if (memcmp(&d[i], &refd[i], sizeof *d) != 0) {
                CHECK(0, "%s: sum_f64 of %" PRId64 ": element %" PRId64 " is %.17g, the rank-order sum %.17g", how, n, i,
                      d[i], refd[i]);
                break;
            }
        }
        char err[256] = "";
        CHECK(rt_comm_agree(fnv(a, (size_t)n * sizeof *a) ^ fnv(d, (size_t)n * sizeof *d), "the sums", err, sizeof err) == 0,
              "%s: %s", how, err);
        free(a);
        free(ref);
        free(d);
        free(refd);
    }
    if (nranks >= 3) CHECK(order_sensitive > 0, "the data does not tell the orders apart");
}

static void check_allgather(void) {
    int64_t *counts = malloc((size_t)nranks * sizeof *counts), total = 0;
    for (int r = 0; r < nranks; r++) {
        counts[r] = r == 1 ? 0 : r == 2 ? 5003 : 3 * r + 2;
        total += counts[r];
    }
    int64_t n = counts[rank];
    float *s = malloc((size_t)(n + 1) * sizeof *s), *g = malloc((size_t)(total + 1) * sizeof *g);
    double *sd = malloc((size_t)(n + 1) * sizeof *sd), *gd = malloc((size_t)(total + 1) * sizeof *gd);
    for (int64_t j = 0; j < n; j++) {
        s[j] = (float)(rank * 10000 + j) + 0.5f;
        sd[j] = rank * 1e6 + (double)j + 0.25;
    }
    rt_comm_allgather_f32(s, n, g, counts);
    rt_comm_allgather_f64(sd, n, gd, counts);
    int64_t at = 0;
    int bad = 0;
    for (int r = 0; r < nranks; r++)
        for (int64_t j = 0; j < counts[r]; j++, at++) {
            bad += g[at] != (float)(r * 10000 + j) + 0.5f;
            bad += gd[at] != r * 1e6 + (double)j + 0.25;
        }
    CHECK(bad == 0, "allgather: %d elements wrong of %" PRId64, bad, total);
    free(counts);
    free(s);
    free(g);
    free(sd);
    free(gd);
}

static void check_bcast(void) {
    int root = nranks - 1;
    enum { BIG = 100003 };
    unsigned char *b = malloc(BIG);
    for (int i = 0; i < BIG; i++) b[i] = (unsigned char)(rank == root ? i * 7 + 3 : 0xee);
    rt_comm_bcast(b, BIG, root);
    int bad = 0;
    for (int i = 0; i < BIG; i++) bad += b[i] != (unsigned char)(i * 7 + 3);
    CHECK(bad == 0, "bcast from rank %d: %d bytes wrong", root, bad);
    rt_comm_bcast(b, 0, 0);
    free(b);
}

static void check_agree(void) {
    char err[256] = "unchanged";
    CHECK(rt_comm_agree(0x1234abcdull, "the flags", err, sizeof err) == 0, "agree on equal values: %s", err);
    CHECK(!strcmp(err, "unchanged"), "agree on equal values wrote \"%s\"", err);
    uint64_t v = rank >= 1 ? 0xabcull + (uint64_t)rank : 0x123ull;
    int rc = rt_comm_agree(v, "the program", err, sizeof err);
    if (nranks == 1) {
        CHECK(rc == 0, "agree with one rank: %d", rc);
        return;
    }
    CHECK(rc == -1, "agree on unequal values: %d", rc);
    const char *want = "the program differs between ranks: rank 0 has 0x0000000000000123, rank 1 has 0x0000000000000abd";
    CHECK(!strcmp(err, want), "agree's message \"%s\", expected \"%s\"", err, want);
}

static void check_share(void) {
    static const int64_t ns[] = {0, 1, 2, 3, 10, 11, 100003, 10000000007};
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
        int64_t sum = 0, lo = ns[k], hi = 0;
        for (int r = 0; r < nranks; r++) {
            int64_t off, c = rt_comm_share(ns[k], r, nranks, &off);
            CHECK(off == sum, "share(%" PRId64 ", %d, %d): offset %" PRId64 ", expected %" PRId64, ns[k], r, nranks, off, sum);
            sum += c;
            lo = c < lo ? c : lo;
            hi = c > hi ? c : hi;
        }
        CHECK(sum == ns[k] && hi - lo <= 1, "share(%" PRId64 ") over %d ranks: %" PRId64 " in all, %" PRId64 "..%" PRId64,
              ns[k], nranks, sum, lo, hi);
    }
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "check";
    char err[256];
    if (!rt_comm_launched()) {
        fprintf(stderr, "comm_selftest: run me under mpirun\n");
        return 2;
    }
    if (rt_comm_init(err, sizeof err) != 0) {
        fprintf(stderr, "comm_selftest: %s\n", err);
        return 2;
    }
    const rt_comm *c = rt_comm_get();
    rank = c->rank;
    nranks = c->size;
    if (!strcmp(mode, "hang")) {
        float x[4] = {1, 2, 3, 4};
        if (rank == nranks - 1) sleep(8);
        rt_comm_sum_f32(x, 4);
        fprintf(stderr, "comm_selftest: rank %d: the hang guard did not fire\n", rank);
        rt_comm_finalize();
        return 1;
    }
    if (!strcmp(mode, "abort")) {
        float x[4] = {1, 2, 3, 4};
        rt_comm_sum_f32(x, 4);
        if (rank == nranks - 1) rt_comm_abort(5);
        rt_comm_sum_f32(x, 4);
        fprintf(stderr, "comm_selftest: rank %d: still running after rt_comm_abort\n", rank);
        rt_comm_finalize();
        return 1;
    }
    if (strcmp(mode, "check") != 0) {
        fprintf(stderr, "comm_selftest: unknown mode %s (check, hang, abort)\n", mode);
        rt_comm_abort(2);
    }
    CHECK(c->mpi, "rt_comm_get()->mpi is false under mpirun");
    const char *ws = getenv("OMPI_COMM_WORLD_SIZE"), *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (ws) CHECK(nranks == atoi(ws), "size %d, OMPI_COMM_WORLD_SIZE %s", nranks, ws);
    if (ls) CHECK(c->local_size == atoi(ls), "local_size %d, OMPI_COMM_WORLD_LOCAL_SIZE %s", c->local_size, ls);
    int64_t calls0 = rt_comm_calls();

    rt_comm_set_limits_for_tests(-1, 0);
    check_sums("default");
    rt_comm_set_limits_for_tests(0, 0);
    check_sums("reduce-scatter");
    rt_comm_set_limits_for_tests(0, 7);
    check_sums("segments of 7");
    rt_comm_set_limits_for_tests((int64_t)1 << 30, 0);
    check_sums("allgather");
    rt_comm_set_limits_for_tests(-1, 0);
    check_allgather();
    check_bcast();
    check_agree();
    check_share();
    CHECK(rt_comm_calls() > calls0, "rt_comm_calls did not grow");
    CHECK(rt_comm_seconds() > 0, "rt_comm_seconds is %g", rt_comm_seconds());

    /* every rank's verdict */
    double bad = failures;
    rt_comm_sum_f64(&bad, 1);
    if (rank == 0 && bad == 0) printf("comm_selftest: ok (%d ranks)\n", nranks);
    if (rank == 0 && bad != 0) printf("comm_selftest: %g failures\n", bad);
    fflush(stdout);
    rt_comm_finalize();
    return bad == 0 ? 0 : 1;
}
