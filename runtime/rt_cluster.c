/*
** rt_cluster.c: PCA whitening, k-means, the loss weights and NMI of
** DeepCluster's clustering step (see rt_cluster.h).
**
** Whitening forms the covariance in double from blocks of centred rows
** (dsyrk), so it needs no copy of the data, and takes every eigenpair from
** LAPACK's dsyevd (divide and conquer: F is at most a few hundred in
** DeepCluster, where the full decomposition costs milliseconds). The
** whitening matrix W = V diag(1/sqrt(lambda)) is applied to the same
** blocks by dgemm.
**
** k-means follows sklearn's Lloyd step for step (rt_cluster.h), so that
** its goldens (tests/golden/make_cluster_goldens.py, checked there against
** sklearn itself) can demand the same labels, centres and iteration count.
** Where sklearn leaves something open or computes in float, this file
** decides:
**   - the E-step's products are float (cblas_sgemm), as sklearn's on
**     float32 data; the M-step's sums, the centres, the shifts, the
**     distances used for relocation and the inertia are double, so that
**     rounding enters only through the choice of a row's centre;
**   - the rows are split into blocks whose size depends on the number of
**     centres only; the pool's threads take blocks from a counter, each
**     block writes its own rows (labels, distances) and its own partial
**     sums, and the sums over blocks are made in block order afterwards:
**     the same bits for any number of threads. The M-step (n d additions)
**     runs on the calling thread in row order: it costs a small fraction
**     of the E-step's n k d multiply-adds at DeepCluster's k;
**   - sklearn's argpartition leaves unspecified which of several far rows
**     goes to which empty cluster; here it is the order of distance, the
**     lower row first on equal distances.
*/
#include "rt_cluster.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "rt_pool.h"
#include "rt_rng.h"

/* LAPACK (Fortran calling convention): eigenvalues ascending in w, the
   eigenvectors in the columns of a (column-major). */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w, double *work,
             const int *lwork, int *iwork, const int *liwork, int *info);

#define PCA_ROWS 256                   /* rows of a whitening block */
#define BLOCK_FLOATS ((int64_t)1 << 16) /* products of a k-means block: 256 KiB, about an L2 cache */
#define BLOCK_ROWS_MAX 4096            /* so that a few centres still give several blocks */
#define MAX_TRIALS 32                  /* 2 + floor(ln k) <= 23 for k <= INT_MAX */
/* k-means++ recomputes a D^2 below NEAR (||x||^2 + ||c||^2) directly: there
   the float product's error (about d * 2^-24 of the norms) would be a large
   part of it, and duplicate rows would get rounding noise instead of 0 */
#define NEAR 1e-3

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* -1 with a message naming the first non-finite value of x [n, d], or 0. */
static int check_finite(const float *x, int64_t n, int64_t d, const char *who, char *err, size_t errlen) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t f = 0; f < d; f++)
            if (!isfinite(x[i * d + f]))
                return fail(err, errlen, "%s: row %lld has a non-finite value (column %lld)", who, (long long)i,
                            (long long)f);
    return 0;
}

/* ---- PCA whitening ---- */

int64_t rt_pca_whiten_dim(int64_t F) { return F < 512 ? F : F / 2; }

/* Rows [r0, r1) of x minus mu, as doubles, into buf. */
static void centred_rows(const float *x, int64_t F, const double *mu, int64_t r0, int64_t r1, double *buf) {
    for (int64_t i = r0; i < r1; i++)
        for (int64_t f = 0; f < F; f++) buf[(i - r0) * F + f] = (double)x[i * F + f] - mu[f];
}

int rt_pca_whiten(const float *x, int64_t n, int64_t F, int64_t ncomp, bool l2, float *out, double *eigval,
                  rt_pca_result *res, char *err, size_t errlen) {
    if (!x || !out) return fail(err, errlen, "whitening: missing features or output");
    if (n < 2 || n > INT_MAX) return fail(err, errlen, "whitening: %lld rows (2 to %d)", (long long)n, INT_MAX);
    if (F < 1 || F > RT_PCA_MAX_F)
        return fail(err, errlen, "whitening: %lld features (1 to %d)", (long long)F, RT_PCA_MAX_F);
    if (ncomp == 0) ncomp = rt_pca_whiten_dim(F);
    if (ncomp < 1 || ncomp > F)
        return fail(err, errlen, "whitening: %lld components of %lld features", (long long)ncomp, (long long)F);
    if (check_finite(x, n, F, "whitening", err, errlen) != 0) return -1;

    int nF = (int)F, lwork = 1 + 6 * nF + 2 * nF * nF, liwork = 3 + 5 * nF, info = 0;
    double *mu = calloc((size_t)F, sizeof *mu), *cov = calloc((size_t)(F * F), sizeof *cov);
    double *w = malloc((size_t)F * sizeof *w), *work = malloc((size_t)lwork * sizeof *work);
    double *W = calloc((size_t)(F * ncomp), sizeof *W), *buf = malloc((size_t)(PCA_ROWS * F) * sizeof *buf);
    double *y = malloc((size_t)(PCA_ROWS * ncomp) * sizeof *y);
    int *iwork = malloc((size_t)liwork * sizeof *iwork);
    unsigned char *null = calloc((size_t)ncomp, 1);
    int rc = -1;
    if (!mu || !cov || !w || !work || !W || !buf || !y || !iwork || !null) {
        fail(err, errlen, "whitening: out of memory for %lld features", (long long)F);
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t f = 0; f < F; f++) mu[f] += x[i * F + f];
    for (int64_t f = 0; f < F; f++) mu[f] /= (double)n;

    /* the upper triangle (row-major) of sum (x - mu)^T (x - mu), block by block */
    for (int64_t r0 = 0; r0 < n; r0 += PCA_ROWS) {
        int64_t r1 = r0 + PCA_ROWS < n ? r0 + PCA_ROWS : n;
        centred_rows(x, F, mu, r0, r1, buf);
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, nF, (int)(r1 - r0), 1.0, buf, nF, r0 ? 1.0 : 0.0, cov, nF);
    }
    for (int64_t a = 0; a < F; a++)
        for (int64_t b = a; b < F; b++) cov[a * F + b] /= (double)(n - 1);
    /* row-major upper = column-major lower; eigenvector j comes back in
       column j, i.e. row j of the row-major array */
    dsyevd_("V", "L", &nF, cov, &nF, w, work, &lwork, iwork, &liwork, &info);
    if (info != 0) {
        fail(err, errlen, "whitening: the covariance's eigenvectors were not found (dsyevd info %d)", info);
        goto done;
    }
    double lmax = w[F - 1], level = (double)(n > F ? n : F) * DBL_EPSILON * lmax;
    int64_t nnull = 0;
    for (int64_t c = 0; c < ncomp; c++) {
        int64_t j = F - 1 - c;
        double lam = w[j];
        const double *v = cov + j * F;
        if (eigval) eigval[c] = lam;
        if (!(lam > level) || !(lam > 0)) {   /* no variance: the column stays 0 */
            null[c] = 1;
            nnull++;
            continue;
        }
        int64_t big = 0;
        for (int64_t f = 1; f < F; f++)
            if (fabs(v[f]) > fabs(v[big])) big = f;
        double scale = (v[big] < 0 ? -1.0 : 1.0) / sqrt(lam);
        for (int64_t f = 0; f < F; f++) W[f * ncomp + c] = v[f] * scale;
    }

    int64_t zero_rows = 0;
    for (int64_t r0 = 0; r0 < n; r0 += PCA_ROWS) {
        int64_t r1 = r0 + PCA_ROWS < n ? r0 + PCA_ROWS : n;
        centred_rows(x, F, mu, r0, r1, buf);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), (int)ncomp, nF, 1.0, buf, nF, W,
                    (int)ncomp, 0.0, y, (int)ncomp);
        for (int64_t i = r0; i < r1; i++) {
            double *yi = y + (i - r0) * ncomp;
            for (int64_t c = 0; c < ncomp; c++)
                if (null[c]) yi[c] = 0;   /* +0, whatever signs of zero dgemm summed */
            double nrm = 1;
            if (l2) {
                double ss = 0;
                for (int64_t c = 0; c < ncomp; c++) ss += yi[c] * yi[c];
                if (ss > 0)
                    nrm = sqrt(ss);
                else
                    zero_rows++;   /* every yi[c] is 0: the row stays 0 */
            }
            for (int64_t c = 0; c < ncomp; c++) out[i * ncomp + c] = (float)(yi[c] / nrm);
        }
    }
    if (res) {
        res->ncomp = ncomp;
        res->null_comps = nnull;
        res->zero_rows = zero_rows;
        res->lambda_max = lmax;
    }
    rc = 0;
done:
    free(mu), free(cov), free(w), free(work), free(W), free(buf), free(y), free(iwork), free(null);
    return rc;
}

/* ---- k-means: the data and the blocked products ---- */

typedef struct Data {
    const float *x;   /* [n, d] as given */
    float *xc;        /* [n, d] x - mu rounded to float: the products' input */
    double *xsq;      /* [n] ||xc_i||^2 */
    double *mu;       /* [d] column means */
    double var;       /* mean over features of the variance (divisor n) */
    int64_t n, d;
} Data;

static void data_free(Data *D) {
    free(D->xc), free(D->xsq), free(D->mu);
    memset(D, 0, sizeof *D);
}

static int data_init(Data *D, const float *x, int64_t n, int64_t d, char *err, size_t errlen) {
    memset(D, 0, sizeof *D);
    if (check_finite(x, n, d, "k-means", err, errlen) != 0) return -1;
    D->x = x, D->n = n, D->d = d;
    D->xc = malloc((size_t)(n * d) * sizeof *D->xc);
    D->xsq = malloc((size_t)n * sizeof *D->xsq);
    D->mu = calloc((size_t)d, sizeof *D->mu);
    if (!D->xc || !D->xsq || !D->mu) {
        data_free(D);
        return fail(err, errlen, "k-means: out of memory for %lld rows", (long long)n);
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t f = 0; f < d; f++) D->mu[f] += x[i * d + f];
    for (int64_t f = 0; f < d; f++) D->mu[f] /= (double)n;
    double ss = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = 0;
        for (int64_t f = 0; f < d; f++) {
            double v = (double)x[i * d + f] - D->mu[f];
            float vf = (float)v;
            D->xc[i * d + f] = vf;
            r += (double)vf * vf;
            ss += v * v;
        }
        D->xsq[i] = r;
    }
    D->var = ss / (double)n / (double)d;
    return 0;
}

/* Scratch of the pool's threads: one block of products each. */
typedef struct Work {
    int threads;
    float **buf;
} Work;

static void work_free(Work *w) {
    for (int t = 0; w->buf && t < w->threads; t++) free(w->buf[t]);
    free(w->buf);
    w->buf = NULL;
}

/* Room for the products of a block with up to mmax rows of centres. */
static int work_init(Work *w, int64_t mmax) {
    size_t cap = (size_t)(mmax > BLOCK_FLOATS ? mmax : BLOCK_FLOATS);
    w->threads = rt_pool_threads();
    w->buf = calloc((size_t)w->threads, sizeof *w->buf);
    if (!w->buf) return -1;
    for (int t = 0; t < w->threads; t++)
        if (!(w->buf[t] = malloc(cap * sizeof(float)))) return -1;
    return 0;
}

typedef struct Prod Prod;
/* Called for block b, rows [r0, r1), with g [r1 - r0, mrows] = xc_r . m_j. */
typedef void (*block_fn)(Prod *p, int64_t b, int64_t r0, int64_t r1, const float *g);

struct Prod {
    const Data *D;
    const float *m;        /* [mrows, d] */
    int64_t mrows, block, nblocks;
    block_fn fn;
    atomic_llong next;
    Work *w;
    /* assignment */
    const float *cn;       /* [mrows] ||m_j||^2 */
    int32_t *labels;
    /* seeding: m holds candidate rows */
    const int64_t *mid;    /* [mrows] their row indices */
    const double *closest; /* [n] D^2 so far */
    double *dist;          /* [mrows, n] min(D^2, distance to candidate j) */
    double *partial;       /* [mrows, nblocks] sums of dist over each block */
};

/* Block size for mrows centres: depends on mrows only, never on threads. */
static int64_t block_rows(int64_t mrows, int64_t n) {
    int64_t b = BLOCK_FLOATS / mrows;
    if (b > BLOCK_ROWS_MAX) b = BLOCK_ROWS_MAX;
    if (b < 1) b = 1;
    return b < n ? b : n;
}

static void prod_task(void *ctx, int t) {
    Prod *p = ctx;
    const Data *D = p->D;
    float *g = p->w->buf[t];
    for (;;) {
        int64_t b = atomic_fetch_add(&p->next, 1);
        if (b >= p->nblocks) break;
        int64_t r0 = b * p->block, r1 = r0 + p->block < D->n ? r0 + p->block : D->n;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), (int)p->mrows, (int)D->d, 1.0f,
                    D->xc + r0 * D->d, (int)D->d, p->m, (int)D->d, 0.0f, g, (int)p->mrows);
        p->fn(p, b, r0, r1, g);
    }
}

/* Sets the blocks of p for p->mrows (so that p->nblocks is known before). */
static void prod_plan(Prod *p) {
    p->block = block_rows(p->mrows, p->D->n);
    p->nblocks = (p->D->n + p->block - 1) / p->block;
}

static void prod_run(Prod *p) {
    prod_plan(p);
    atomic_init(&p->next, 0);
    int T = p->w->threads < p->nblocks ? p->w->threads : (int)p->nblocks;
    rt_pool_run(T < 1 ? 1 : T, prod_task, p);
}

/* ---- k-means++ ---- */

/* ||xc_r - xc_m||^2 summed in double: exactly 0 for equal rows. */
static double exact_sqdist(const Data *D, int64_t r, int64_t m) {
    double s = 0;
    for (int64_t f = 0; f < D->d; f++) {
        double v = (double)D->xc[r * D->d + f] - D->xc[m * D->d + f];
        s += v * v;
    }
    return s;
}

static void seed_block(Prod *p, int64_t b, int64_t r0, int64_t r1, const float *g) {
    const Data *D = p->D;
    int64_t T = p->mrows, n = D->n;
    double part[MAX_TRIALS] = {0};
    for (int64_t r = r0; r < r1; r++) {
        const float *gr = g + (r - r0) * T;
        for (int64_t t = 0; t < T; t++) {
            int64_t m = p->mid[t];
            double dd = D->xsq[r] + D->xsq[m] - 2.0 * (double)gr[t];
            if (dd < NEAR * (D->xsq[r] + D->xsq[m])) dd = exact_sqdist(D, r, m);
            if (p->closest[r] < dd) dd = p->closest[r];
            p->dist[t * n + r] = dd;
            part[t] += dd;
        }
    }
    for (int64_t t = 0; t < T; t++) p->partial[t * p->nblocks + b] = part[t];
}

typedef struct Seeder {
    double *closest, *dist, *partial, *cum;
    float *cand;
    int64_t mid[MAX_TRIALS];
    int trials;
} Seeder;

static void seeder_free(Seeder *S) { free(S->closest), free(S->dist), free(S->partial), free(S->cum), free(S->cand); }

static int seeder_init(Seeder *S, const Data *D, int k) {
    memset(S, 0, sizeof *S);
    S->trials = 2 + (int)floor(log((double)k));
    /* blocks: the most of 1 and of `trials` candidates */
    int64_t n = D->n, b1 = block_rows(1, n), bt = block_rows(S->trials, n);
    int64_t nb = (n + (b1 < bt ? b1 : bt) - 1) / (b1 < bt ? b1 : bt);
    S->closest = malloc((size_t)n * sizeof *S->closest);
    S->dist = malloc((size_t)(S->trials * n) * sizeof *S->dist);
    S->partial = malloc((size_t)(S->trials * nb) * sizeof *S->partial);
    S->cum = malloc((size_t)n * sizeof *S->cum);
    S->cand = malloc((size_t)(S->trials * D->d) * sizeof *S->cand);
    return S->closest && S->dist && S->partial && S->cum && S->cand ? 0 : -1;
}

/* D^2 of every row to the candidates S->mid[0..T) (min with closest) and
   each candidate's potential into pot[T]. */
static void seed_eval(const Data *D, Work *w, Seeder *S, int T, double *pot) {
    for (int t = 0; t < T; t++) memcpy(S->cand + t * D->d, D->xc + S->mid[t] * D->d, (size_t)D->d * sizeof(float));
    Prod p = {.D = D, .m = S->cand, .mrows = T, .fn = seed_block, .w = w, .mid = S->mid, .closest = S->closest,
              .dist = S->dist, .partial = S->partial};
    prod_run(&p);
    for (int t = 0; t < T; t++) {
        double s = 0;
        for (int64_t b = 0; b < p.nblocks; b++) s += S->partial[t * p.nblocks + b];
        pot[t] = s;
    }
}

/* Greedy k-means++ from stream s: rows[k], the final potential. */
static double seed_run(const Data *D, int k, rt_stream *s, Work *w, Seeder *S, int64_t *rows) {
    int64_t n = D->n;
    double pot[MAX_TRIALS];
    for (int64_t i = 0; i < n; i++) S->closest[i] = INFINITY;
    S->mid[0] = rows[0] = rt_stream_below(s, (uint32_t)n);
    seed_eval(D, w, S, 1, pot);
    memcpy(S->closest, S->dist, (size_t)n * sizeof *S->closest);
    double current = pot[0];
    for (int c = 1; c < k; c++) {
        double run = 0;
        for (int64_t i = 0; i < n; i++) S->cum[i] = run += S->closest[i];
        double total = S->cum[n - 1];
        for (int t = 0; t < S->trials; t++) {
            if (!(total > 0)) {   /* every row is a centre already */
                S->mid[t] = rt_stream_below(s, (uint32_t)n);
                continue;
            }
            double u = rt_stream_uniform(s) * total;
            int64_t lo = 0, hi = n;   /* the first i with cum[i] > u */
            while (lo < hi) {
                int64_t mid = lo + (hi - lo) / 2;
                if (S->cum[mid] > u) hi = mid;
                else lo = mid + 1;
            }
            if (lo == n)   /* u rounded up to total: the last row with mass */
                for (lo = n - 1; lo > 0 && !(S->closest[lo] > 0); lo--) {}
            S->mid[t] = lo;
        }
        seed_eval(D, w, S, S->trials, pot);
        int best = 0;
        for (int t = 1; t < S->trials; t++)
            if (pot[t] < pot[best]) best = t;
        memcpy(S->closest, S->dist + best * n, (size_t)n * sizeof *S->closest);
        current = pot[best];
        rows[c] = S->mid[best];
    }
    return current;
}

/* ---- Lloyd ---- */

static void assign_block(Prod *p, int64_t b, int64_t r0, int64_t r1, const float *g) {
    (void)b;
    int64_t k = p->mrows;
    for (int64_t r = r0; r < r1; r++) {
        const float *gr = g + (r - r0) * k;
        float best = p->cn[0] - 2.0f * gr[0];
        int32_t bi = 0;
        for (int64_t j = 1; j < k; j++) {
            float v = p->cn[j] - 2.0f * gr[j];
            if (v < best) best = v, bi = (int32_t)j;
        }
        p->labels[r] = bi;
    }
}

struct Far {
    double dist;
    int64_t row;
};

typedef struct Lloyd {
    float *cf, *cn;       /* [k, d], [k]: the centres in float for the products */
    double *sums;         /* [k, d] */
    int64_t *counts;      /* [k] */
    int32_t *labels_old;  /* [n] */
    struct Far *far;      /* [n] for relocation */
} Lloyd;

static void lloyd_free(Lloyd *L) {
    free(L->cf), free(L->cn), free(L->sums), free(L->counts), free(L->labels_old), free(L->far);
}

static int lloyd_init(Lloyd *L, const Data *D, int k) {
    memset(L, 0, sizeof *L);
    L->cf = malloc((size_t)(k * D->d) * sizeof *L->cf);
    L->cn = malloc((size_t)k * sizeof *L->cn);
    L->sums = malloc((size_t)(k * D->d) * sizeof *L->sums);
    L->counts = malloc((size_t)k * sizeof *L->counts);
    L->labels_old = malloc((size_t)D->n * sizeof *L->labels_old);
    L->far = malloc((size_t)D->n * sizeof *L->far);
    return L->cf && L->cn && L->sums && L->counts && L->labels_old && L->far ? 0 : -1;
}

/* labels <- the nearest of the centres c [k, d] (double, centred). */
static void assign(const Data *D, int k, const double *c, Lloyd *L, Work *w, int32_t *labels) {
    int64_t d = D->d;
    for (int64_t j = 0; j < k; j++) {
        double s = 0;
        for (int64_t f = 0; f < d; f++) {
            float v = (float)c[j * d + f];
            L->cf[j * d + f] = v;
            s += (double)v * v;
        }
        L->cn[j] = (float)s;
    }
    Prod p = {.D = D, .m = L->cf, .mrows = k, .fn = assign_block, .w = w, .cn = L->cn, .labels = labels};
    prod_run(&p);
}

/* ||x_i - mu - c||^2 in double. */
static double sqdist(const Data *D, int64_t i, const double *c) {
    double s = 0;
    for (int64_t f = 0; f < D->d; f++) {
        double v = (double)D->x[i * D->d + f] - D->mu[f] - c[f];
        s += v * v;
    }
    return s;
}

/* Distance descending, then row ascending. */
static int by_distance(const void *a, const void *b) {
    const struct Far *p = a, *q = b;
    if (p->dist != q->dist) return p->dist > q->dist ? -1 : 1;
    return (p->row > q->row) - (p->row < q->row);
}

/* sklearn's _relocate_empty_clusters_dense on the sums (rt_cluster.h);
   returns how many clusters were relocated. */
static int relocate(const Data *D, int k, const double *c, const int32_t *labels, Lloyd *L) {
    int64_t n = D->n, d = D->d;
    for (int64_t i = 0; i < n; i++) L->far[i] = (struct Far){sqdist(D, i, c + (int64_t)labels[i] * d), i};
    qsort(L->far, (size_t)n, sizeof *L->far, by_distance);
    int e = 0;
    for (int64_t j = 0; j < k; j++) {
        if (L->counts[j] != 0) continue;
        int64_t far = L->far[e++].row, old = labels[far];
        for (int64_t f = 0; f < d; f++) {
            double v = (double)D->x[far * d + f] - D->mu[f];
            L->sums[old * d + f] -= v;
            L->sums[j * d + f] = v;
        }
        L->counts[j] = 1;
        L->counts[old]--;
    }
    return e;
}

/* One run of Lloyd from the centres c [k, d] (double, centred; the final
   centres on return) into labels; fills res except restart and potential. */
static void lloyd_run(const Data *D, int k, double *c, int max_iter, double tol_abs, Lloyd *L, Work *w,
                      int32_t *labels, rt_kmeans_result *res) {
    int64_t n = D->n, d = D->d;
    int strict = 0, converged = 0, relocations = 0, iters = max_iter;
    for (int64_t i = 0; i < n; i++) L->labels_old[i] = -1;
    for (int it = 0; it < max_iter; it++) {
        assign(D, k, c, L, w, labels);
        memset(L->sums, 0, (size_t)(k * d) * sizeof *L->sums);
        memset(L->counts, 0, (size_t)k * sizeof *L->counts);
        int empty = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t j = labels[i];
            L->counts[j]++;
            for (int64_t f = 0; f < d; f++) L->sums[j * d + f] += (double)D->x[i * d + f] - D->mu[f];
        }
        for (int64_t j = 0; j < k; j++) empty += L->counts[j] == 0;
        if (empty) relocations += relocate(D, k, c, labels, L);
        double shift = 0;
        for (int64_t j = 0; j < k; j++)
            for (int64_t f = 0; f < d; f++) {
                double v = L->sums[j * d + f];
                if (L->counts[j] > 0) v /= (double)L->counts[j];
                shift += (v - c[j * d + f]) * (v - c[j * d + f]);
                c[j * d + f] = v;
            }
        if (memcmp(labels, L->labels_old, (size_t)n * sizeof *labels) == 0) {
            strict = converged = 1;
            iters = it + 1;
            break;
        }
        if (shift <= tol_abs) {
            converged = 1;
            iters = it + 1;
            break;
        }
        memcpy(L->labels_old, labels, (size_t)n * sizeof *labels);
    }
    if (!strict) assign(D, k, c, L, w, labels);   /* the labels of the final centres */
    double inertia = 0;
    memset(L->counts, 0, (size_t)k * sizeof *L->counts);
    for (int64_t i = 0; i < n; i++) {
        inertia += sqdist(D, i, c + (int64_t)labels[i] * d);
        L->counts[labels[i]]++;
    }
    int empty = 0;
    for (int64_t j = 0; j < k; j++) empty += L->counts[j] == 0;
    *res = (rt_kmeans_result){.inertia = inertia, .iterations = iters, .converged = converged,
                              .relocations = relocations, .empty = empty};
}

static int check_kmeans(const float *x, int64_t n, int64_t d, int k, const char *who, char *err, size_t errlen) {
    if (!x) return fail(err, errlen, "%s: missing features", who);
    if (n < 1 || n > INT_MAX) return fail(err, errlen, "%s: %lld rows (1 to %d)", who, (long long)n, INT_MAX);
    if (d < 1 || d > INT_MAX) return fail(err, errlen, "%s: %lld features (1 to %d)", who, (long long)d, INT_MAX);
    if (k < 1 || k > n)
        return fail(err, errlen, "%s: k = %d clusters for %lld rows (1 to the number of rows)", who, k, (long long)n);
    return 0;
}

rt_kmeans_opts rt_kmeans_defaults(int k, uint64_t seed) {
    return (rt_kmeans_opts){.k = k, .n_init = RT_KMEANS_N_INIT, .max_iter = RT_KMEANS_MAX_ITER,
                            .tol = RT_KMEANS_TOL, .seed = seed, .stream = 0};
}

/* Centres c (double, centred) back to float in the original coordinates. */
static void centres_out(const Data *D, int k, const double *c, float *centres) {
    for (int64_t j = 0; j < k; j++)
        for (int64_t f = 0; f < D->d; f++) centres[j * D->d + f] = (float)(c[j * D->d + f] + D->mu[f]);
}

int rt_kmeans(const float *x, int64_t n, int64_t d, const rt_kmeans_opts *o, int32_t *labels, float *centres,
              rt_kmeans_result *res, char *err, size_t errlen) {
    if (!o) return fail(err, errlen, "k-means: no options");
    if (check_kmeans(x, n, d, o->k, "k-means", err, errlen) != 0) return -1;
    if (!labels || !centres) return fail(err, errlen, "k-means: missing labels or centres");
    if (o->n_init < 1) return fail(err, errlen, "k-means: %d restarts (at least 1)", o->n_init);
    if (o->max_iter < 1) return fail(err, errlen, "k-means: %d iterations (at least 1)", o->max_iter);
    if (!(o->tol >= 0) || !isfinite(o->tol)) return fail(err, errlen, "k-means: tolerance %g", o->tol);
    int k = o->k;
    Data D;
    if (data_init(&D, x, n, d, err, errlen) != 0) return -1;
    Work w = {0};
    Seeder S;
    Lloyd L;
    int64_t *rows = malloc((size_t)k * sizeof *rows);
    double *c = malloc((size_t)(k * d) * sizeof *c), *best_c = malloc((size_t)(k * d) * sizeof *best_c);
    int32_t *lab = malloc((size_t)n * sizeof *lab);
    int ok = seeder_init(&S, &D, k) == 0;
    ok = lloyd_init(&L, &D, k) == 0 && ok;
    ok = work_init(&w, k > MAX_TRIALS ? k : MAX_TRIALS) == 0 && ok;
    int rc = -1;
    if (!ok || !rows || !c || !best_c || !lab) {
        fail(err, errlen, "k-means: out of memory for %lld rows and %d clusters", (long long)n, k);
        goto done;
    }
    rt_kmeans_result best = {0};
    for (int r = 0; r < o->n_init; r++) {
        rt_stream s;
        rt_stream_init(&s, o->seed, RT_CLUSTER_DOMAIN, o->stream, (uint32_t)r);
        double pot = seed_run(&D, k, &s, &w, &S, rows);
        for (int64_t j = 0; j < k; j++)
            for (int64_t f = 0; f < d; f++) c[j * d + f] = (double)x[rows[j] * d + f] - D.mu[f];
        rt_kmeans_result one;
        lloyd_run(&D, k, c, o->max_iter, o->tol * D.var, &L, &w, lab, &one);
        if (r == 0 || one.inertia < best.inertia) {
            best = one;
            best.restart = r;
            best.seed_potential = pot;
            memcpy(labels, lab, (size_t)n * sizeof *labels);
            memcpy(best_c, c, (size_t)(k * d) * sizeof *c);
        }
    }
    centres_out(&D, k, best_c, centres);
    if (res) *res = best;
    rc = 0;
done:
    seeder_free(&S);
    lloyd_free(&L);
    work_free(&w);
    data_free(&D);
    free(rows), free(c), free(best_c), free(lab);
    return rc;
}

int rt_kmeans_lloyd(const float *x, int64_t n, int64_t d, int k, const float *init, int max_iter, double tol,
                    int32_t *labels, float *centres, rt_kmeans_result *res, char *err, size_t errlen) {
    if (check_kmeans(x, n, d, k, "k-means", err, errlen) != 0) return -1;
    if (!init || !labels || !centres) return fail(err, errlen, "k-means: missing initial centres, labels or centres");
    if (max_iter < 1) return fail(err, errlen, "k-means: %d iterations (at least 1)", max_iter);
    if (!(tol >= 0) || !isfinite(tol)) return fail(err, errlen, "k-means: tolerance %g", tol);
    if (check_finite(init, k, d, "k-means: initial centres", err, errlen) != 0) return -1;
    Data D;
    if (data_init(&D, x, n, d, err, errlen) != 0) return -1;
    Work w = {0};
    Lloyd L;
    double *c = malloc((size_t)(k * d) * sizeof *c);
    int ok = lloyd_init(&L, &D, k) == 0;
    ok = work_init(&w, k) == 0 && ok;
    int rc = -1;
    if (!ok || !c) {
        fail(err, errlen, "k-means: out of memory for %lld rows and %d clusters", (long long)n, k);
        goto done;
    }
    for (int64_t j = 0; j < k; j++)
        for (int64_t f = 0; f < d; f++) c[j * d + f] = (double)init[j * d + f] - D.mu[f];
    rt_kmeans_result one;
    lloyd_run(&D, k, c, max_iter, tol * D.var, &L, &w, labels, &one);
    centres_out(&D, k, c, centres);
    if (res) *res = one;
    rc = 0;
done:
    lloyd_free(&L);
    work_free(&w);
    data_free(&D);
    free(c);
    return rc;
}

int rt_kmeans_seed(const float *x, int64_t n, int64_t d, int k, uint64_t seed, uint32_t stream, uint32_t restart,
                   int64_t *rows, double *potential, char *err, size_t errlen) {
    if (check_kmeans(x, n, d, k, "k-means++", err, errlen) != 0) return -1;
    if (!rows) return fail(err, errlen, "k-means++: missing output rows");
    Data D;
    if (data_init(&D, x, n, d, err, errlen) != 0) return -1;
    Work w = {0};
    Seeder S;
    int ok = seeder_init(&S, &D, k) == 0;
    ok = work_init(&w, MAX_TRIALS) == 0 && ok;
    int rc = -1;
    if (!ok) {
        fail(err, errlen, "k-means++: out of memory for %lld rows", (long long)n);
        goto done;
    }
    rt_stream s;
    rt_stream_init(&s, seed, RT_CLUSTER_DOMAIN, stream, restart);
    double pot = seed_run(&D, k, &s, &w, &S, rows);
    if (potential) *potential = pot;
    rc = 0;
done:
    seeder_free(&S);
    work_free(&w);
    data_free(&D);
    return rc;
}

/* ---- weights and NMI ---- */

int rt_cluster_weights(const int32_t *labels, int64_t n, int k, float *w, char *err, size_t errlen) {
    if (!labels || !w) return fail(err, errlen, "cluster weights: missing labels or weights");
    if (n < 1) return fail(err, errlen, "cluster weights: %lld rows (at least 1)", (long long)n);
    if (k < 1) return fail(err, errlen, "cluster weights: %d clusters (at least 1)", k);
    int64_t *cnt = calloc((size_t)k, sizeof *cnt);
    if (!cnt) return fail(err, errlen, "cluster weights: out of memory for %d clusters", k);
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= k) {
            free(cnt);
            return fail(err, errlen, "cluster weights: label %d (row %lld) is not in [0, %d)", labels[i],
                        (long long)i, k);
        }
        cnt[labels[i]]++;
    }
    for (int c = 0; c < k; c++) w[c] = (float)(1.0 - (double)cnt[c] / (double)n);
    free(cnt);
    return 0;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Sorts v [n] and packs its distinct values into v[0..m) and their counts
   into cnt[0..m); returns m. */
static int64_t distinct(int32_t *v, int64_t n, int64_t *cnt) {
    qsort(v, (size_t)n, sizeof *v, cmp_i32);
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (m > 0 && v[m - 1] == v[i]) {
            cnt[m - 1]++;
        } else {
            v[m] = v[i];
            cnt[m++] = 1;
        }
    }
    return m;
}

/* The count of value x among the m distinct values u (x is one of them). */
static int64_t count_of(const int32_t *u, const int64_t *cnt, int64_t m, int32_t x) {
    int64_t lo = 0, hi = m - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (u[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return cnt[lo];
}

/* -sum (c/n) log(c/n) over the m counts. */
static double entropy(const int64_t *cnt, int64_t m, double n) {
    double h = 0;
    for (int64_t i = 0; i < m; i++) h -= (double)cnt[i] / n * (log((double)cnt[i]) - log(n));
    return h;
}

int rt_nmi(const int32_t *a, const int32_t *b, int64_t n, double *nmi, char *err, size_t errlen) {
    if (!a || !b || !nmi) return fail(err, errlen, "NMI: missing labels");
    if (n < 1) return fail(err, errlen, "NMI: %lld items (at least 1)", (long long)n);
    int32_t *ua = malloc((size_t)n * sizeof *ua), *ub = malloc((size_t)n * sizeof *ub);
    int64_t *ca = malloc((size_t)n * sizeof *ca), *cb = malloc((size_t)n * sizeof *cb);
    uint64_t *pair = malloc((size_t)n * sizeof *pair);
    if (!ua || !ub || !ca || !cb || !pair) {
        free(ua), free(ub), free(ca), free(cb), free(pair);
        return fail(err, errlen, "NMI: out of memory for %lld items", (long long)n);
    }
    memcpy(ua, a, (size_t)n * sizeof *ua);
    memcpy(ub, b, (size_t)n * sizeof *ub);
    int64_t ma = distinct(ua, n, ca), mb = distinct(ub, n, cb);
    double N = (double)n, v;
    if (ma == 1 && mb == 1) {
        v = 1;   /* neither splits the items: a perfect match */
    } else if (ma == 1 || mb == 1) {
        v = 0;   /* MI <= min(H(a), H(b)) = 0 */
    } else {
        for (int64_t i = 0; i < n; i++) pair[i] = (uint64_t)(uint32_t)a[i] << 32 | (uint32_t)b[i];
        qsort(pair, (size_t)n, sizeof *pair, cmp_u64);
        double mi = 0, logn = log(N);
        for (int64_t i = 0; i < n;) {
            int64_t j = i;
            while (j < n && pair[j] == pair[i]) j++;
            double nij = (double)(j - i);
            int64_t ni = count_of(ua, ca, ma, (int32_t)(uint32_t)(pair[i] >> 32));
            int64_t nj = count_of(ub, cb, mb, (int32_t)(uint32_t)pair[i]);
            mi += nij / N * (log(nij) + logn - log((double)ni) - log((double)nj));
            i = j;
        }
        v = mi > 0 ? mi / ((entropy(ca, ma, N) + entropy(cb, mb, N)) / 2) : 0;
    }
    free(ua), free(ub), free(ca), free(cb), free(pair);
    *nmi = v;
    return 0;
}
