/*
** rt_eval.c: weighted kNN and retrieval on frozen features (see rt_eval.h).
**
** Both walk the queries in blocks: one cblas_sgemm makes the similarities
** of a block of queries with the whole gallery (S = Q G^T of the
** normalised rows), then each query's row of S is reduced on its own.
** Threads take whole blocks from a shared counter and write each query's
** result at its index; the sums over queries are made afterwards, in
** query order.
**
** The order of the gallery (similarity descending, ties by lower index)
** is carried by keys: the similarity's float bits mapped to an unsigned
** key that sorts ascending as the similarity descends (-0 read as +0).
**   - kNN keeps the k smallest 64-bit words key << 32 | index (no two
**     equal, so the order is total and ties go to the lower index) in a
**     max-heap, checking the float against the heap's worst first (most
**     items stop there), then sorts those k.
**   - Retrieval needs the rank of every relevant item, not a full sort:
**     rank = 1 + the number of items ranked above it. The items are
**     counted into nb = ngallery / 8 buckets linear in s between the
**     row's smallest and largest similarity (bucket 0 the largest; the
**     map s -> bucket is monotone, so every item of an earlier bucket
**     ranks above every item of a later one) and scattered into them as
**     32-bit words key31 << 1 | relevance, in gallery order (a counting
**     sort, stable). Inside a bucket (about 8 items when the similarities
**     are spread): with at most 16 relevant items, each relevant item
**     counts the items above it (key smaller, or equal and earlier) by
**     comparing with the whole bucket; with more, the bucket is sorted
**     stably by key (insertion sort up to 32 items, else an LSD radix sort
**     with 8-bit digits) and walked. Buckets after the last relevant item
**     are not visited.
**     A full radix sort of the row (3-4 scatter passes, one of them on
**     the few top digits, which serialises on a single counter) was 2x
**     slower at 10k x 60k; a comparison sort of 60,000 items per query
**     several times slower still.
*/
#include "rt_eval.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "rt_clones.h"
#include "rt_pool.h"

#define NORM_EPS 1e-12
#define BLOCK_FLOATS ((int64_t)1 << 22)   /* similarities per thread's block: 16 MiB */
#define BLOCK_MAX 256                     /* queries per block at most */

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

/* A key that sorts ascending as s descends; -0 and +0 get the same key. */
static inline uint32_t desc_key(float s) {
    s += 0.0f;   /* -0 + 0 = +0 (not folded away without -ffast-math) */
    uint32_t u;
    memcpy(&u, &s, sizeof u);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);   /* ascending with s */
    return ~u;
}

/* x / max(||x||, eps) row by row, in double, rounded to float; NULL with
   a message for a non-finite value or no memory. */
static float *normalise(const float *x, int64_t n, int64_t F, const char *what, char *err, size_t errlen) {
    float *out = malloc((size_t)n * (size_t)F * sizeof *out);
    if (!out) {
        fail(err, errlen, "out of memory for %lld %s features", (long long)n, what);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) {
        const float *r = x + (size_t)i * (size_t)F;
        double ss = 0;
        for (int64_t f = 0; f < F; f++) {
            if (!isfinite(r[f])) {
                fail(err, errlen, "%s feature row %lld has a non-finite value (column %lld)", what, (long long)i,
                     (long long)f);
                free(out);
                return NULL;
            }
            ss += (double)r[f] * (double)r[f];
        }
        double nrm = sqrt(ss);
        if (nrm < NORM_EPS) nrm = NORM_EPS;
        float *o = out + (size_t)i * (size_t)F;
        for (int64_t f = 0; f < F; f++) o[f] = (float)((double)r[f] / nrm);
    }
    return out;
}

/* ---- the blocked driver ---- */

typedef struct Job Job;
typedef void (*query_fn)(const Job *j, void *scratch, int64_t q, const float *s);

struct Job {
    const float *qn, *gn;       /* normalised queries [nq, F], gallery [ng, F] */
    int64_t nq, ng, F, qb, nblocks;
    atomic_llong next;          /* the next block to take */
    atomic_int oom;
    size_t scratch_bytes;       /* per thread, besides the block */
    query_fn fn;
    const int32_t *gy, *qy;
    /* kNN */
    int classes, k;
    double T;
    int32_t *pred;
    uint8_t *in_top5;
    /* retrieval */
    double *ap;
    int32_t *hits;              /* [nq, RT_RETRIEVAL_NK]: relevant items in the top kcut[i] */
    int32_t *nrel;              /* [nq]: relevant items in the gallery */
    int64_t kcut[RT_RETRIEVAL_NK];
    int64_t nb;                 /* buckets of a query's similarities */
};

static void block_task(void *ctx, int t) {
    (void)t;
    Job *j = ctx;
    float *s = malloc((size_t)j->qb * (size_t)j->ng * sizeof *s);
    void *scratch = malloc(j->scratch_bytes);
    if (!s || !scratch) atomic_store(&j->oom, 1);
    while (s && scratch && !atomic_load(&j->oom)) {
        int64_t b = atomic_fetch_add(&j->next, 1);
        if (b >= j->nblocks) break;
        int64_t q0 = b * j->qb, m = j->nq - q0 < j->qb ? j->nq - q0 : j->qb;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)j->ng, (int)j->F, 1.0f,
                    j->qn + (size_t)q0 * (size_t)j->F, (int)j->F, j->gn, (int)j->F, 0.0f, s, (int)j->ng);
        for (int64_t i = 0; i < m; i++) j->fn(j, scratch, q0 + i, s + (size_t)i * (size_t)j->ng);
    }
    free(s);
    free(scratch);
}

/* Runs j->fn on every query; false when memory ran out. */
static bool run_blocks(Job *j) {
    j->qb = BLOCK_FLOATS / j->ng;
    if (j->qb > BLOCK_MAX) j->qb = BLOCK_MAX;
    if (j->qb < 1) j->qb = 1;
    j->nblocks = (j->nq + j->qb - 1) / j->qb;
    atomic_init(&j->next, 0);
    atomic_init(&j->oom, 0);
    int T = rt_pool_threads();
    if (T > j->nblocks) T = (int)j->nblocks;
    if (T < 1) T = 1;
    rt_pool_run(T, block_task, j);
    return !atomic_load(&j->oom);
}

static bool labels_in(const int32_t *y, int64_t n, int classes, int64_t *bad) {
    for (int64_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= classes) {
            *bad = i;
            return false;
        }
    return true;
}

/* ---- kNN ---- */

static inline uint64_t word(float s, int64_t g) { return (uint64_t)desc_key(s) << 32 | (uint32_t)g; }

/* max-heap of n words */
static void sift_down(uint64_t *h, int n, int i) {
    uint64_t v = h[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && h[c + 1] > h[c]) c++;
        if (h[c] <= v) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
}

static void sift_up(uint64_t *h, int i) {
    uint64_t v = h[i];
    while (i > 0) {
        int p = (i - 1) / 2;
        if (h[p] >= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

RRC_HOT_KERNEL static void knn_query(const Job *j, void *scratch, int64_t q, const float *s) {
    uint64_t *h = scratch;
    double *votes = (double *)(h + j->k);
    int k = j->k, n = 0;
    float worst = 0;   /* the similarity of h[0] once the heap is full */
    for (int64_t g = 0; g < j->ng; g++) {
        if (n < k) {
            h[n] = word(s[g], g);
            sift_up(h, n++);
            if (n == k) worst = s[(uint32_t)h[0]];
        } else if (s[g] >= worst) {
            uint64_t w = word(s[g], g);
            if (w < h[0]) {
                h[0] = w;
                sift_down(h, k, 0);
                worst = s[(uint32_t)h[0]];
            }
        }
    }
    qsort(h, (size_t)k, sizeof *h, cmp_u64);
    for (int c = 0; c < j->classes; c++) votes[c] = 0;
    double s1 = s[(uint32_t)h[0]];
    for (int r = 0; r < k; r++) {
        uint32_t g = (uint32_t)h[r];
        votes[j->gy[g]] += exp(((double)s[g] - s1) / j->T);
    }
    int best = 0;
    for (int c = 1; c < j->classes; c++)
        if (votes[c] > votes[best]) best = c;
    j->pred[q] = best;
    if (j->qy) {
        int y = j->qy[q], ahead = 0;
        for (int c = 0; c < j->classes; c++) ahead += votes[c] > votes[y] || (votes[c] == votes[y] && c < y);
        j->in_top5[q] = ahead < 5;
    }
}

int rt_knn_eval(const float *train_x, const int32_t *train_y, int64_t ntrain, const float *test_x,
                const int32_t *test_y, int64_t ntest, int64_t F, int classes, int k, double temperature,
                int32_t *pred, rt_knn_result *res, char *err, size_t errlen) {
    int64_t bad;
    if (F < 1 || F > INT_MAX) return fail(err, errlen, "kNN: feature size %lld is not in [1, %d]", (long long)F, INT_MAX);
    if (ntrain < 1 || ntrain > INT_MAX)
        return fail(err, errlen, "kNN: %lld train rows (1 to %d)", (long long)ntrain, INT_MAX);
    if (ntest < 1) return fail(err, errlen, "kNN: no test rows");
    if (classes < 1) return fail(err, errlen, "kNN: %d classes", classes);
    if (k < 1) return fail(err, errlen, "kNN: k = %d (at least 1)", k);
    if (!(temperature > 0) || !isfinite(temperature))
        return fail(err, errlen, "kNN: temperature %g is not positive and finite", temperature);
    if (!train_x || !train_y || !test_x) return fail(err, errlen, "kNN: missing features or train labels");
    if (!labels_in(train_y, ntrain, classes, &bad))
        return fail(err, errlen, "kNN: train label %d (row %lld) is not in [0, %d)", train_y[bad], (long long)bad,
                    classes);
    if (test_y && !labels_in(test_y, ntest, classes, &bad))
        return fail(err, errlen, "kNN: test label %d (row %lld) is not in [0, %d)", test_y[bad], (long long)bad,
                    classes);

    Job j = {.nq = ntest, .ng = ntrain, .F = F, .fn = knn_query, .gy = train_y, .qy = test_y, .classes = classes,
             .k = (int)(k < ntrain ? k : ntrain), .T = temperature};
    j.scratch_bytes = (size_t)j.k * sizeof(uint64_t) + (size_t)classes * sizeof(double);
    float *gn = normalise(train_x, ntrain, F, "train", err, errlen);
    float *qn = gn ? normalise(test_x, ntest, F, "test", err, errlen) : NULL;
    j.gn = gn;
    j.qn = qn;
    j.pred = malloc((size_t)ntest * sizeof *j.pred);
    j.in_top5 = calloc((size_t)ntest, 1);
    int rc = -1;
    if (!gn || !qn) goto out;   /* the message is normalise's */
    if (!j.pred || !j.in_top5 || !run_blocks(&j)) {
        fail(err, errlen, "kNN: out of memory");
        goto out;
    }
    int64_t c1 = 0, c5 = 0;
    if (test_y)
        for (int64_t q = 0; q < ntest; q++) {
            c1 += j.pred[q] == test_y[q];
            c5 += j.in_top5[q];
        }
    if (pred) memcpy(pred, j.pred, (size_t)ntest * sizeof *pred);
    if (res) {
        res->correct1 = c1;
        res->correct5 = c5;
        res->queries = ntest;
        res->top1 = test_y ? (double)c1 / (double)ntest : NAN;
        res->top5 = test_y ? (double)c5 / (double)ntest : NAN;
        res->k = j.k;
    }
    rc = 0;
out:
    free(gn);
    free(qn);
    free(j.pred);
    free(j.in_top5);
    return rc;
}

/* ---- retrieval ---- */

/* The 31-bit version of desc_key for retrieval's 32-bit words (key << 1 |
   relevance): the similarity of normalised rows has |s| < 2 (|s| <= 1 up
   to rounding), so bit 30 of its float bits (the top exponent bit) is 0
   and is dropped. Ascending as s descends, injective on |s| < 2 (a larger
   |s| would be clamped; it cannot occur). */
static inline uint32_t desc_key31(float s) {
    s += 0.0f;
    uint32_t u;
    memcpy(&u, &s, sizeof u);
    uint32_t mag = u & 0x7FFFFFFFu;
    if (mag > 0x3FFFFFFFu) mag = 0x3FFFFFFFu;
    uint32_t asc = (u & 0x80000000u) ? 0x3FFFFFFFu - mag : 0x40000000u | mag;
    return 0x7FFFFFFFu - asc;
}

/* Sorts the m words of w by key (w >> 1), stably; tmp has room for m. */
static void sort_words(uint32_t *w, uint32_t *tmp, int64_t m) {
    if (m <= 32) {   /* insertion sort */
        for (int64_t i = 1; i < m; i++) {
            uint32_t v = w[i];
            int64_t k = i;
            for (; k > 0 && (w[k - 1] >> 1) > (v >> 1); k--) w[k] = w[k - 1];
            w[k] = v;
        }
        return;
    }
    /* LSD radix, 4 passes of 8 bits over key bits 0..30 (word bits 1..31);
       a pass whose digits are all equal is skipped */
    uint32_t hist[4][256];
    memset(hist, 0, sizeof hist);
    for (int64_t i = 0; i < m; i++) {
        uint32_t k = w[i] >> 1;
        hist[0][k & 255]++;
        hist[1][(k >> 8) & 255]++;
        hist[2][(k >> 16) & 255]++;
        hist[3][k >> 24]++;
    }
    uint32_t *a = w, *b = tmp;
    for (int p = 0; p < 4; p++) {
        uint32_t *h = hist[p];
        int sh = 1 + 8 * p;
        if (h[(a[0] >> sh) & 255] == (uint32_t)m) continue;
        uint32_t sum = 0;
        for (int d = 0; d < 256; d++) {
            uint32_t c = h[d];
            h[d] = sum;
            sum += c;
        }
        for (int64_t i = 0; i < m; i++) b[h[(a[i] >> sh) & 255]++] = a[i];
        uint32_t *t = a;
        a = b;
        b = t;
    }
    if (a != w) memcpy(w, a, (size_t)m * sizeof *w);
}

/* Relevant item found at rank `rank` (from 1), the `hit`-th relevant one. */
static inline void credit(double *sum, int32_t *hits, const int64_t *kcut, int64_t hit, int64_t rank) {
    *sum += (double)hit / (double)rank;
    for (int c = 0; c < RT_RETRIEVAL_NK; c++) hits[c] += rank <= kcut[c];
}

RRC_HOT_KERNEL static void retrieval_query(const Job *j, void *scratch, int64_t q, const float *s) {
    int64_t ng = j->ng, nb = j->nb;
    uint32_t *w = scratch, *tmp = w + ng, *bk = tmp + ng, *start = bk + ng, *off = start + nb + 1;
    int32_t y = j->qy[q], *hits = j->hits + (size_t)q * RT_RETRIEVAL_NK;
    const int32_t *gy = j->gy;
    for (int i = 0; i < RT_RETRIEVAL_NK; i++) hits[i] = 0;
    j->ap[q] = 0;

    /* the row's smallest and largest similarity and its relevant items, in
       RP partial lanes (a loop the vectoriser takes: min and max are exact,
       so the lanes change no value) */
    enum { RP = 16 };
    float pmin[RP], pmax[RP];
    int32_t prel[RP];
    for (int l = 0; l < RP; l++) pmin[l] = pmax[l] = s[0], prel[l] = 0;
    int64_t g = 0;
    for (; g + RP <= ng; g += RP)
        for (int l = 0; l < RP; l++) {
            float v = s[g + l];
            pmin[l] = v < pmin[l] ? v : pmin[l];
            pmax[l] = v > pmax[l] ? v : pmax[l];
            prel[l] += gy[g + l] == y;
        }
    float smin = s[0], smax = s[0];
    int64_t R = 0;
    for (int l = 0; l < RP; l++) {
        smin = pmin[l] < smin ? pmin[l] : smin;
        smax = pmax[l] > smax ? pmax[l] : smax;
        R += prel[l];
    }
    for (; g < ng; g++) {
        smin = s[g] < smin ? s[g] : smin;
        smax = s[g] > smax ? s[g] : smax;
        R += gy[g] == y;
    }
    j->nrel[q] = (int32_t)R;
    if (R == 0) return;

    /* buckets linear in s over [smin, smax], bucket 0 the largest s: each
       item's bucket and word first (vector loops), then the counting sort */
    double top = smax, scale = smax > smin ? (double)nb / (top - (double)smin) : 0, last = (double)(nb - 1);
    for (g = 0; g < ng; g++) {
        double t = (top - (double)s[g]) * scale;
        bk[g] = (uint32_t)(t < last ? t : last);
        tmp[g] = desc_key31(s[g]) << 1 | (uint32_t)(gy[g] == y);
    }
    memset(off, 0, (size_t)nb * sizeof *off);
    for (g = 0; g < ng; g++) off[bk[g]]++;
    uint32_t sum = 0;
    for (int64_t d = 0; d < nb; d++) {
        start[d] = sum;
        sum += off[d];
        off[d] = start[d];
    }
    start[nb] = sum;
    for (g = 0; g < ng; g++) w[off[bk[g]]++] = tmp[g];

    /* every item of an earlier bucket ranks above every item of a later
       one; inside a bucket, by key then by position (= gallery order) */
    double ap = 0;
    int64_t seen = 0;   /* relevant items in the buckets done */
    for (int64_t d = 0; d < nb && seen < R; d++) {
        uint32_t *b = w + start[d];
        int64_t m = start[d + 1] - start[d], r = 0;
        for (int64_t i = 0; i < m; i++) r += b[i] & 1;
        if (r == 0) continue;
        if (r <= 16) {
            /* count, for each relevant item, the items and the relevant
               items ranked above it in the bucket */
            for (int64_t i = 0; i < m; i++) {
                if (!(b[i] & 1)) continue;
                uint32_t ki = b[i] >> 1, above = 0, rel_above = 0;
                for (int64_t k = 0; k < i; k++) {   /* before i: ranked above when the key is <= */
                    uint32_t lt = (b[k] >> 1) <= ki;
                    above += lt;
                    rel_above += lt & b[k];
                }
                for (int64_t k = i + 1; k < m; k++) {   /* after i: when the key is < */
                    uint32_t lt = (b[k] >> 1) < ki;
                    above += lt;
                    rel_above += lt & b[k];
                }
                credit(&ap, hits, j->kcut, seen + (int64_t)rel_above + 1, start[d] + (int64_t)above + 1);
            }
        } else {
            sort_words(b, tmp, m);
            int64_t h = seen;
            for (int64_t i = 0; i < m; i++)
                if (b[i] & 1) credit(&ap, hits, j->kcut, ++h, start[d] + i + 1);
        }
        seen += r;
    }
    j->ap[q] = ap / (double)R;
}

int rt_retrieval_eval(const float *gallery_x, const int32_t *gallery_y, int64_t ngallery, const float *query_x,
                      const int32_t *query_y, int64_t nquery, int64_t F, double *ap, rt_retrieval_result *res,
                      char *err, size_t errlen) {
    static const int ks[RT_RETRIEVAL_NK] = RT_RETRIEVAL_KS;
    if (F < 1 || F > INT_MAX)
        return fail(err, errlen, "retrieval: feature size %lld is not in [1, %d]", (long long)F, INT_MAX);
    if (ngallery < 1 || ngallery > INT_MAX)
        return fail(err, errlen, "retrieval: %lld gallery rows (1 to %d)", (long long)ngallery, INT_MAX);
    if (nquery < 1) return fail(err, errlen, "retrieval: no queries");
    if (!gallery_x || !gallery_y || !query_x || !query_y)
        return fail(err, errlen, "retrieval: missing features or labels");

    Job j = {.nq = nquery, .ng = ngallery, .F = F, .fn = retrieval_query, .gy = gallery_y, .qy = query_y};
    for (int i = 0; i < RT_RETRIEVAL_NK; i++) j.kcut[i] = ks[i] < ngallery ? ks[i] : ngallery;
    j.nb = ngallery / 8 < 1 ? 1 : ngallery / 8 > 65536 ? 65536 : ngallery / 8;
    j.scratch_bytes = (3 * (size_t)ngallery + 2 * (size_t)j.nb + 1) * sizeof(uint32_t);
    float *gn = normalise(gallery_x, ngallery, F, "gallery", err, errlen);
    float *qn = gn ? normalise(query_x, nquery, F, "query", err, errlen) : NULL;
    j.gn = gn;
    j.qn = qn;
    j.ap = malloc((size_t)nquery * sizeof *j.ap);
    j.hits = malloc((size_t)nquery * RT_RETRIEVAL_NK * sizeof *j.hits);
    j.nrel = malloc((size_t)nquery * sizeof *j.nrel);
    int rc = -1;
    if (!gn || !qn) goto out;
    if (!j.ap || !j.hits || !j.nrel || !run_blocks(&j)) {
        fail(err, errlen, "retrieval: out of memory");
        goto out;
    }
    double sap = 0, sp[RT_RETRIEVAL_NK] = {0};
    int64_t none = 0;
    for (int64_t q = 0; q < nquery; q++) {
        sap += j.ap[q];
        none += j.nrel[q] == 0;
        for (int i = 0; i < RT_RETRIEVAL_NK; i++)
            sp[i] += (double)j.hits[(size_t)q * RT_RETRIEVAL_NK + (size_t)i] / (double)j.kcut[i];
    }
    if (ap) memcpy(ap, j.ap, (size_t)nquery * sizeof *ap);
    if (res) {
        for (int i = 0; i < RT_RETRIEVAL_NK; i++) {
            res->k[i] = ks[i];
            res->precision[i] = sp[i] / (double)nquery;
        }
        res->map = sap / (double)nquery;
        res->queries = nquery;
        res->no_relevant = none;
    }
    rc = 0;
out:
    free(gn);
    free(qn);
    free(j.ap);
    free(j.hits);
    free(j.nrel);
    return rc;
}
