/*
** rt_comm.c: data-parallel ranks over MPI (see rt_comm.h).
**
** Why sums in a fixed order: every rank holds a copy of the model and
** applies the same update to it, so the copies stay identical only if
** every rank gets the same bits of the summed gradient. Float addition is
** not associative, and MPI_Allreduce promises neither an order nor that
** the ranks get equal results (Open MPI picks its algorithm by message
** size and rank count; a tree or ring adds the same terms in a different
** order on different ranks). The copies would then drift apart a last bit
** at a time. So the sums here are written out: each element is
** ((x_0 + x_1) + x_2) + ... + x_{N-1}, in the buffer's precision, on
** whichever rank adds it, and the result is then copied to every rank.
**
**   small buffers (at most SMALL_BYTES per rank): MPI_Allgather of the
**     whole buffers, every rank adds them up itself (the cost is latency);
**   larger ones: a reduce-scatter and an allgather, bandwidth-optimal: the
**     buffer is cut into N chunks (rt_comm_share), MPI_Alltoallv hands rank
**     c every rank's piece of chunk c, rank c adds them in rank order, and
**     MPI_Allgatherv gives every rank every reduced chunk. Buffers longer
**     than SEGMENT elements go segment by segment (MPI counts are ints; the
**     scratch memory stays bounded).
** Both ways add the same terms in the same order, so they give the same
** bits (comm_selftest checks both against a sum made locally).
**
** Errors: MPI_COMM_WORLD returns errors (MPI_ERRORS_RETURN) and every call
** is checked: a failed call prints the rank, the MPI function, the
** collective and MPI's reason, then MPI_Abort ends the run (exit status 3).
**
** The hang guard: a watchdog thread (started by rt_comm_init under MPI
** only) wakes at least every 0.5 s and looks at the record each collective
** sets on entry (name, monotonic time) and clears on exit, both under one
** mutex. A collective older than the timeout gets one line on stderr and
** _exit(3): the watchdog never calls MPI (MPI_THREAD_FUNNELED: only the
** thread that started MPI may), and mpirun ends the other ranks when one
** exits non-zero.
*/
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rt_comm.h"

#define SMALL_BYTES_DEFAULT 4096
#define SEGMENT_DEFAULT ((int64_t)1 << 24)   /* elements per reduce-scatter round */
#define WATCH_POLL_S 0.5

static rt_comm g = {0, 1, 1, false};
static bool inited, finalized;
static pthread_t init_thread;
static int64_t small_bytes = SMALL_BYTES_DEFAULT, segment = SEGMENT_DEFAULT;

/* MPI's per-rank count and displacement arrays, made once at init */
static int *a_scount, *a_sdispl, *a_rcount, *a_rdispl;
/* scratch for the pieces to add (grown, kept until finalize) */
static void *scratch;
static size_t scratch_cap;

/* statistics: written by the MPI thread, read by any */
static atomic_llong stat_ns, stat_calls;

/* the hang guard's state, all under wd_mu */
static pthread_mutex_t wd_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cv;
static double wd_timeout = 60.0;
static bool wd_timeout_set;       /* by rt_comm_set_timeout: the environment no longer counts */
static bool wd_stop;
static double wd_entered;         /* monotonic seconds at entry, 0 when in no collective */
static const char *wd_name;
static pthread_t wd_thread;
static bool wd_running;           /* touched by the MPI thread only */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- the hang guard ---- */

static void *watchdog(void *arg) {
    (void)arg;
    pthread_mutex_lock(&wd_mu);
    while (!wd_stop) {
        double now = now_s(), wait = WATCH_POLL_S;
        if (wd_entered > 0 && wd_timeout > 0) {
            double left = wd_entered + wd_timeout - now;
            if (left <= 0) {
                char line[320];
                int n = snprintf(line, sizeof line,
                                 "rrc: rank %d: no answer from the other ranks for %g s in %s; ending the run\n",
                                 g.rank, wd_timeout, wd_name ? wd_name : "a collective");
                if (n > 0) {
                    ssize_t w = write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
                    (void)w;
                }
                _exit(3);
            }
            if (left < wait) wait = left;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long ns = (long long)ts.tv_nsec + (long long)(wait * 1e9) + 1000000;   /* +1 ms: wake past it */
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        int rc = pthread_cond_timedwait(&wd_cv, &wd_mu, &ts);
        (void)rc;   /* a timeout, a wake-up or a spurious wake-up: look again */
    }
    pthread_mutex_unlock(&wd_mu);
    return NULL;
}

static int start_watchdog(char *err, size_t errlen) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wd_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_lock(&wd_mu);
    wd_stop = false;
    wd_entered = 0;
    pthread_mutex_unlock(&wd_mu);
    int rc = pthread_create(&wd_thread, NULL, watchdog, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the hang guard's thread: %s", strerror(rc));
        pthread_cond_destroy(&wd_cv);
        return -1;
    }
    wd_running = true;
    return 0;
}

static void stop_watchdog(void) {
    if (!wd_running) return;
    pthread_mutex_lock(&wd_mu);
    wd_stop = true;
    pthread_cond_signal(&wd_cv);
    pthread_mutex_unlock(&wd_mu);
    pthread_join(wd_thread, NULL);
    pthread_cond_destroy(&wd_cv);
    wd_running = false;
}

/* A collective begins: the record the watchdog reads. Returns the start. */
static double enter(const char *name) {
    double t = now_s();
    if (wd_running) {
        pthread_mutex_lock(&wd_mu);
        wd_entered = t;
        wd_name = name;
        pthread_mutex_unlock(&wd_mu);
    }
    return t;
}

static void leave(double t0) {
    double t1 = now_s();
    if (wd_running) {
        pthread_mutex_lock(&wd_mu);
        wd_entered = 0;
        wd_name = NULL;
        pthread_mutex_unlock(&wd_mu);
    }
    atomic_fetch_add(&stat_ns, (long long)((t1 - t0) * 1e9));
    atomic_fetch_add(&stat_calls, 1);
}

void rt_comm_set_timeout(double seconds) {
    if (!(seconds >= 0)) seconds = 0;   /* negative or NaN: off */
    pthread_mutex_lock(&wd_mu);
    wd_timeout = seconds;
    wd_timeout_set = true;
    pthread_mutex_unlock(&wd_mu);
}

/* RRC_MPI_TIMEOUT, if set and no rt_comm_set_timeout came first. */
static int timeout_from_env(char *err, size_t errlen) {
    const char *s = getenv("RRC_MPI_TIMEOUT");
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0) || isinf(v)) {
        snprintf(err, errlen, "RRC_MPI_TIMEOUT must be a number of seconds >= 0 (0: no hang guard), not '%s'", s);
        return -1;
    }
    pthread_mutex_lock(&wd_mu);
    if (!wd_timeout_set) wd_timeout = v;
    pthread_mutex_unlock(&wd_mu);
    return 0;
}

/* ---- start and end ---- */

static bool env_set(const char *name) {
    const char *v = getenv(name);
    return v && *v;
}

bool rt_comm_launched(void) {
    return env_set("OMPI_COMM_WORLD_SIZE") || env_set("PMIX_RANK") || env_set("PMI_SIZE");
}

const rt_comm *rt_comm_get(void) { return &g; }

/* A failed MPI call: says which, ends the run. */
_Noreturn static void mpi_failed(const char *fn, const char *where, int rc) {
    char reason[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    if (MPI_Error_string(rc, reason, &len) != MPI_SUCCESS) snprintf(reason, sizeof reason, "error %d", rc);
    fprintf(stderr, "rrc: rank %d: %s failed in %s: %s\n", g.rank, fn, where, reason);
    fflush(NULL);
    MPI_Abort(MPI_COMM_WORLD, 3);
    _exit(3);
}

#define MPI_CHECK(fn, args, where)                            \
    do {                                                      \
        int rc_ = fn args;                                    \
        if (rc_ != MPI_SUCCESS) mpi_failed(#fn, where, rc_);  \
    } while (0)

/* A caller's mistake that would leave the ranks out of step: ends the run. */
_Noreturn static void misuse(const char *where, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn static void misuse(const char *where, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "rrc: rank %d: %s: %s\n", g.rank, where, msg);
    rt_comm_abort(3);
}

/* Whether the ranks must talk: MPI started, more than one rank. Checks the
   calling thread and that MPI has not ended. */
static bool multi(const char *where) {
    if (!g.mpi) {
        if (finalized && g.size > 1) misuse(where, "called after rt_comm_finalize");
        return false;
    }
    if (!pthread_equal(pthread_self(), init_thread))
        misuse(where, "called from a thread other than the one that started MPI (MPI_THREAD_FUNNELED)");
    return g.size > 1;
}

static int env_int(const char *name, int dflt) {
    const char *s = getenv(name);
    if (!s || !*s) return dflt;
    char *end;
    long v = strtol(s, &end, 10);
    return *end || v < 1 || v > INT_MAX ? dflt : (int)v;
}

int rt_comm_init(char *err, size_t errlen) {
    if (inited) return 0;
    if (finalized) {
        snprintf(err, errlen, "MPI cannot start again after rt_comm_finalize");
        return -1;
    }
    if (timeout_from_env(err, errlen) != 0) return -1;
    if (!rt_comm_launched()) {
        inited = true;
        return 0;
    }
    int provided = 0, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) {
        char reason[MPI_MAX_ERROR_STRING] = "";
        int len = 0;
        MPI_Error_string(rc, reason, &len);
        snprintf(err, errlen, "MPI_Init_thread failed: %s", reason);
        return -1;
    }
    g.mpi = true;
    init_thread = pthread_self();
    inited = true;
    if (provided < MPI_THREAD_FUNNELED) {
        snprintf(err, errlen, "MPI gives thread support level %d, rrc needs MPI_THREAD_FUNNELED (%d)", provided,
                 MPI_THREAD_FUNNELED);
        return -1;
    }
    MPI_CHECK(MPI_Comm_set_errhandler, (MPI_COMM_WORLD, MPI_ERRORS_RETURN), "rt_comm_init");
    MPI_CHECK(MPI_Comm_rank, (MPI_COMM_WORLD, &g.rank), "rt_comm_init");
    MPI_CHECK(MPI_Comm_size, (MPI_COMM_WORLD, &g.size), "rt_comm_init");
    g.local_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1);
    size_t n = (size_t)g.size;
    a_scount = malloc(4 * n * sizeof(int));
    if (!a_scount) {
        snprintf(err, errlen, "out of memory for %d ranks", g.size);
        return -1;
    }
    a_sdispl = a_scount + n;
    a_rcount = a_sdispl + n;
    a_rdispl = a_rcount + n;
    return start_watchdog(err, errlen);
}

void rt_comm_finalize(void) {
    if (g.mpi) {
        if (!pthread_equal(pthread_self(), init_thread))
            misuse("rt_comm_finalize", "called from a thread other than the one that started MPI");
        /* MPI_Finalize waits for the other ranks: guarded, not counted */
        if (wd_running) {
            pthread_mutex_lock(&wd_mu);
            wd_entered = now_s();
            wd_name = "rt_comm_finalize";
            pthread_mutex_unlock(&wd_mu);
        }
        int rc = MPI_Finalize();
        stop_watchdog();
        g.mpi = false;
        if (rc != MPI_SUCCESS) fprintf(stderr, "rrc: rank %d: MPI_Finalize failed (error %d)\n", g.rank, rc);
    }
    if (inited) finalized = true;
    inited = false;
    free(a_scount);
    a_scount = a_sdispl = a_rcount = a_rdispl = NULL;
    free(scratch);
    scratch = NULL;
    scratch_cap = 0;
}

_Noreturn void rt_comm_abort(int code) {
    fflush(NULL);
    if (g.mpi) {
        MPI_Abort(MPI_COMM_WORLD, code);
        _exit(code);   /* MPI_Abort does not return; if it did, end at least this rank */
    }
    exit(code);
}

/* ---- helpers ---- */

int64_t rt_comm_share(int64_t n, int r, int N, int64_t *offset) {
    if (N < 1 || r < 0 || r >= N || n <= 0) {
        if (offset) *offset = 0;
        return 0;
    }
    int64_t base = n / N, rem = n % N;
    if (offset) *offset = (int64_t)r * base + (r < rem ? r : rem);
    return base + (r < rem ? 1 : 0);
}

void rt_comm_set_limits_for_tests(int64_t small, int64_t seg) {
    small_bytes = small >= 0 ? small : SMALL_BYTES_DEFAULT;
    segment = seg >= 1 && seg <= INT_MAX ? seg : SEGMENT_DEFAULT;
}

static void *scratch_for(size_t bytes, const char *where) {
    if (bytes > scratch_cap) {
        void *p = realloc(scratch, bytes);
        if (!p) misuse(where, "out of memory (%zu bytes of scratch)", bytes);
        scratch = p;
        scratch_cap = bytes;
    }
    return scratch;
}

/* dst[i] = ((src_0[i] + src_1[i]) + ...) + src_{N-1}[i], src_r = src + r*stride:
   one loop, made for each element type */
#define RANK_ORDER_ADD(name, T)                                                   \
    static void name(void *dst_, const void *src_, int64_t m, int N, int64_t stride) { \
        T *dst = dst_;                                                            \
        const T *src = src_;                                                      \
        memcpy(dst, src, (size_t)m * sizeof *dst);                                \
        for (int r = 1; r < N; r++) {                                             \
            const T *s = src + (int64_t)r * stride;                               \
            for (int64_t i = 0; i < m; i++) dst[i] += s[i];                       \
        }                                                                         \
    }
RANK_ORDER_ADD(add_f32, float)
RANK_ORDER_ADD(add_f64, double)

typedef void (*add_fn)(void *dst, const void *src, int64_t m, int N, int64_t stride);

/* The in-place rank-order sum of n elements of esz bytes (type t). */
static void sum_any(void *buf, int64_t n, size_t esz, MPI_Datatype t, add_fn add, const char *where) {
    if (n < 0) misuse(where, "negative count %" PRId64, n);
    if (!multi(where)) return;
    int N = g.size, me = g.rank;
    char *b = buf;
    if ((uint64_t)n * esz <= (uint64_t)small_bytes) {
        /* every rank gets every buffer and adds them itself */
        if (n == 0) return;
        char *all = scratch_for((size_t)N * (size_t)n * esz, where);
        MPI_CHECK(MPI_Allgather, (b, (int)n, t, all, (int)n, t, MPI_COMM_WORLD), where);
        add(b, all, n, N, n);
        return;
    }
    for (int64_t s0 = 0; s0 < n; s0 += segment) {
        int64_t len = n - s0 < segment ? n - s0 : segment;
        char *seg = b + (size_t)s0 * esz;
        int64_t off, mine = rt_comm_share(len, me, N, &off);
        for (int c = 0; c < N; c++) {
            int64_t o, k = rt_comm_share(len, c, N, &o);
            a_scount[c] = (int)k;          /* my piece of chunk c goes to rank c */
            a_sdispl[c] = (int)o;
            a_rcount[c] = (int)mine;       /* rank c's piece of my chunk */
            a_rdispl[c] = (int)((int64_t)c * mine);
        }
        char *pieces = scratch_for((size_t)N * (size_t)(mine > 0 ? mine : 1) * esz, where);
        MPI_CHECK(MPI_Alltoallv, (seg, a_scount, a_sdispl, t, pieces, a_rcount, a_rdispl, t, MPI_COMM_WORLD), where);
        if (mine > 0) add(seg + (size_t)off * esz, pieces, mine, N, mine);
        /* every rank's reduced chunk to every rank (counts and displacements
           of the chunks are a_scount/a_sdispl) */
        MPI_CHECK(MPI_Allgatherv, (MPI_IN_PLACE, 0, t, seg, a_scount, a_sdispl, t, MPI_COMM_WORLD), where);
    }
}

void rt_comm_sum_f32(float *buf, int64_t n) {
    double t0 = enter("rt_comm_sum_f32");
    sum_any(buf, n, sizeof *buf, MPI_FLOAT, add_f32, "rt_comm_sum_f32");
    leave(t0);
}

void rt_comm_sum_f64(double *buf, int64_t n) {
    double t0 = enter("rt_comm_sum_f64");
    sum_any(buf, n, sizeof *buf, MPI_DOUBLE, add_f64, "rt_comm_sum_f64");
    leave(t0);
}

static void allgather_any(const void *send, int64_t n, void *recv, const int64_t *counts, size_t esz,
                          MPI_Datatype t, const char *where) {
    if (!counts) misuse(where, "no counts");
    if (n != counts[g.rank]) misuse(where, "rank %d sends %" PRId64 " elements, counts[%d] is %" PRId64, g.rank, n, g.rank, counts[g.rank]);
    if (!multi(where)) {
        if (n > 0 && recv != send) memmove(recv, send, (size_t)n * esz);
        return;
    }
    int64_t total = 0;
    for (int r = 0; r < g.size; r++) {
        if (counts[r] < 0 || counts[r] > INT_MAX - total)
            misuse(where, "%" PRId64 " elements from rank %d (%" PRId64 " before it): MPI's int counts allow at most %d in all",
                   counts[r], r, total, INT_MAX);
        a_rcount[r] = (int)counts[r];
        a_rdispl[r] = (int)total;
        total += counts[r];
    }
    MPI_CHECK(MPI_Allgatherv, (send, (int)n, t, recv, a_rcount, a_rdispl, t, MPI_COMM_WORLD), where);
}

void rt_comm_allgather_f32(const float *send, int64_t n, float *recv, const int64_t *counts) {
    double t0 = enter("rt_comm_allgather_f32");
    allgather_any(send, n, recv, counts, sizeof *send, MPI_FLOAT, "rt_comm_allgather_f32");
    leave(t0);
}

void rt_comm_allgather_f64(const double *send, int64_t n, double *recv, const int64_t *counts) {
    double t0 = enter("rt_comm_allgather_f64");
    allgather_any(send, n, recv, counts, sizeof *send, MPI_DOUBLE, "rt_comm_allgather_f64");
    leave(t0);
}

void rt_comm_bcast(void *buf, size_t bytes, int root) {
    const char *where = "rt_comm_bcast";
    double t0 = enter(where);
    if (root < 0 || root >= g.size) misuse(where, "root %d is not a rank of %d", root, g.size);
    if (multi(where)) {
        char *b = buf;
        for (size_t done = 0; done < bytes;) {
            size_t k = bytes - done < (size_t)1 << 30 ? bytes - done : (size_t)1 << 30;
            MPI_CHECK(MPI_Bcast, (b + done, (int)k, MPI_BYTE, root, MPI_COMM_WORLD), where);
            done += k;
        }
    }
    leave(t0);
}

int rt_comm_agree(uint64_t value, const char *what, char *err, size_t errlen) {
    const char *where = "rt_comm_agree";
    double t0 = enter(where);
    int result = 0;
    if (multi(where)) {
        uint64_t *all = scratch_for((size_t)g.size * sizeof *all, where);
        MPI_CHECK(MPI_Allgather, (&value, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD), where);
        for (int r = 1; r < g.size; r++)
            if (all[r] != all[0]) {
                snprintf(err, errlen, "%s differs between ranks: rank 0 has 0x%016" PRIx64 ", rank %d has 0x%016" PRIx64,
                         what, all[0], r, all[r]);
                result = -1;
                break;
            }
    }
    leave(t0);
    return result;
}

double rt_comm_seconds(void) { return 1e-9 * (double)atomic_load(&stat_ns); }

int64_t rt_comm_calls(void) { return (int64_t)atomic_load(&stat_calls); }
