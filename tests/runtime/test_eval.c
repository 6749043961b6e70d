/*
** test_eval.c: weighted kNN and retrieval (runtime/rt_eval) against an
** independent brute-force reference written here: features normalised and
** similarities computed in double with naive loops, every query's gallery
** ranked by a full qsort on (similarity descending, gallery index
** ascending), votes exp(s / T) summed in rank order, precision@k and AP
** read off the full ranking. The library ranks the float similarities of
** sgemm with radix keys and buckets; the tie rule (equal similarity: the
** lower gallery index first) is the same on both sides.
**
** Two kinds of random data (300 train/gallery x 97 test/query x 16-d, 5
** classes):
**   - "dyadic" rows: 1, 4 or 16 nonzero entries of one magnitude 2^e, or
**     integers in [-3, 3] whose squares sum to 64, times 2^e. Their norms
**     are powers of two, so the normalised entries are multiples of 1/8
**     and every similarity is a multiple of 1/64 that float computes
**     exactly (in any order of summation). So the library and the
**     reference see the same similarities, with ties everywhere (also
**     duplicated rows with other labels, zero rows, queries that copy
**     gallery rows, and a gallery crowded near the query so that the
**     library's sorts run), and must agree exactly: the same prediction
**     for every query and every AP within 1e-12 (only the order of
**     summation differs);
**   - Gaussian rows around class centres, where float rounding (at most
**     about 1.1e-6 on a similarity of 16-d unit vectors) can swap two
**     items whose similarities differ by less than that. A query is
**     "fragile" when the reference's ranking has two items of different
**     relevance closer than 4e-6 (kNN: an item among the k nearest and one
**     not, of different classes, that close, or two class scores within
**     1e-4 relative: a weight moves by at most exp(2.2e-6 / 0.07) - 1 =
**     3e-5). Every other query must match exactly (the same prediction, AP
**     within 1e-12) and each mean within 1e-12 + fragile/queries; at most
**     a quarter of the queries may be fragile (with these seeds none is).
**     Duplicated rows there keep their label.
** Hand-made cases check the definitions themselves (AP computed by hand,
** ties, -0 against +0, zero vectors, k above the gallery size, a class
** absent from the gallery); the same results must come out on 1 and 2
** pool threads bit for bit. All run in a few milliseconds.
*/
#include "test.h"

#include "rt_eval.h"
#include "rt_pool.h"
#include "rt_rng.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#define EXACT_TOL 1e-12   /* sums of the same terms in another order */
#define FRAGILE_GAP 4e-6  /* > twice the float error of a 16-d similarity */

/* ---- data ---- */

typedef struct Set {
    float *x;
    int32_t *y;
    int64_t n, F;
} Set;

static Set set_new(int64_t n, int64_t F) {
    Set s = {calloc((size_t)(n * F), sizeof(float)), calloc((size_t)n, sizeof(int32_t)), n, F};
    if (!s.x || !s.y) abort();
    return s;
}

static void set_free(Set *s) {
    free(s->x);
    free(s->y);
}

static void copy_row(Set *to, int64_t i, const Set *from, int64_t j) {
    memcpy(to->x + i * to->F, from->x + j * from->F, (size_t)to->F * sizeof(float));
}

/* A vector of 16 integers in [-3, 3] whose squares sum to 64 (norm 8), by
   rejection (about 1 draw in 30 is kept). */
static void norm8_row(rt_stream *r, float *row) {
    for (;;) {
        int ss = 0;
        for (int f = 0; f < 16; f++) {
            row[f] = (float)((int)rt_stream_below(r, 7) - 3);
            ss += (int)(row[f] * row[f]);
        }
        if (ss == 64) return;
    }
}

/* Dyadic rows (F = 16): 3% zero rows; the others with 1, 4 or 16 nonzero
   entries of magnitude 2^e, or integers of norm 8 (norm8_row) times 2^e,
   e in [-3, 3], random signs; labels in [0, classes). */
static Set dyadic(int64_t n, int classes, uint32_t seed) {
    const int64_t F = 16;
    Set s = set_new(n, F);
    rt_stream r;
    rt_stream_init(&r, 16, RT_DOMAIN_TEST, seed, 1);
    for (int64_t i = 0; i < n; i++) {
        s.y[i] = (int32_t)rt_stream_below(&r, (uint32_t)classes);
        if (rt_stream_below(&r, 100) < 3) continue;
        float mag = ldexpf(1.0f, (int)rt_stream_below(&r, 7) - 3), *row = s.x + i * F;
        int kind = (int)rt_stream_below(&r, 4);
        if (kind == 3) {
            norm8_row(&r, row);
            for (int f = 0; f < 16; f++) row[f] *= mag;
            continue;
        }
        int m = kind == 0 ? 1 : kind == 1 ? 4 : 16, pos[16];
        for (int f = 0; f < 16; f++) pos[f] = f;
        for (int f = 15; f > 0; f--) {   /* shuffle; the first m positions are nonzero */
            int g = (int)rt_stream_below(&r, (uint32_t)(f + 1)), t = pos[f];
            pos[f] = pos[g];
            pos[g] = t;
        }
        for (int f = 0; f < m; f++) row[pos[f]] = rt_stream_below(&r, 2) ? mag : -mag;
    }
    return s;
}

/* Class centres ~ N(0, 1) plus N(0, 1) noise per entry. */
static Set gaussian(int64_t n, int64_t F, int classes, uint32_t seed) {
    Set s = set_new(n, F);
    rt_stream r, c;
    rt_stream_init(&r, 16, RT_DOMAIN_TEST, seed, 2);
    for (int64_t i = 0; i < n; i++) {
        s.y[i] = (int32_t)rt_stream_below(&r, (uint32_t)classes);
        rt_stream_init(&c, 16, RT_DOMAIN_TEST, 999, (uint32_t)s.y[i]);   /* the class's centre */
        for (int64_t f = 0; f < F; f++) s.x[i * F + f] = (float)(rt_stream_normal(&c) + rt_stream_normal(&r));
    }
    return s;
}

/* The gallery and queries of the dyadic cases: duplicated gallery rows with
   another label, queries that copy gallery rows, two queries of a label
   no gallery row has (7). */
static void dyadic_case(Set *g, Set *q) {
    *g = dyadic(300, 5, 1);
    *q = dyadic(97, 5, 2);
    for (int64_t i = 0; i < 40; i++) {   /* rows 250..289 repeat rows 0..39 (3*i mod 250), label + 1 */
        copy_row(g, 250 + i, g, (3 * i) % 250);
        g->y[250 + i] = (g->y[(3 * i) % 250] + 1) % 5;
    }
    for (int64_t i = 0; i < 10; i++) copy_row(q, i, g, 7 * i + 3);
    q->y[20] = q->y[21] = 7;
}

/* ---- the reference ---- */

typedef struct Item {
    double s;
    int64_t i;
} Item;

static int item_cmp(const void *a, const void *b) {
    const Item *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static double *ref_normalise(const Set *s) {
    double *o = malloc((size_t)(s->n * s->F) * sizeof *o);
    if (!o) abort();
    for (int64_t i = 0; i < s->n; i++) {
        double ss = 0;
        for (int64_t f = 0; f < s->F; f++) ss += (double)s->x[i * s->F + f] * s->x[i * s->F + f];
        double nrm = fmax(sqrt(ss), 1e-12);
        for (int64_t f = 0; f < s->F; f++) o[i * s->F + f] = s->x[i * s->F + f] / nrm;
    }
    return o;
}

/* The gallery ranked for every query: [q->n][g->n] items, best first. */
static Item *ref_rank(const Set *g, const Set *q) {
    double *gn = ref_normalise(g), *qn = ref_normalise(q);
    Item *it = malloc((size_t)(q->n * g->n) * sizeof *it);
    if (!it) abort();
    for (int64_t a = 0; a < q->n; a++) {
        Item *row = it + a * g->n;
        for (int64_t b = 0; b < g->n; b++) {
            double d = 0;
            for (int64_t f = 0; f < g->F; f++) d += qn[a * g->F + f] * gn[b * g->F + f];
            row[b] = (Item){d, b};
        }
        qsort(row, (size_t)g->n, sizeof *row, item_cmp);
    }
    free(gn);
    free(qn);
    return it;
}

typedef struct RefKnn {
    int32_t pred;
    int in_top5;
    int fragile;
} RefKnn;

static RefKnn ref_knn_query(const Item *row, const Set *g, int classes, int k, double T, int32_t label) {
    double votes[64] = {0};
    int64_t kk = k < g->n ? k : g->n;
    for (int64_t r = 0; r < kk; r++) votes[g->y[row[r].i]] += exp(row[r].s / T);
    RefKnn o = {0, 0, 0};
    for (int c = 1; c < classes; c++)
        if (votes[c] > votes[o.pred]) o.pred = c;
    int ahead = 0;
    for (int c = 0; c < classes; c++) ahead += votes[c] > votes[label] || (votes[c] == votes[label] && c < label);
    o.in_top5 = ahead < 5;
    /* an item in and an item out of the k nearest, of different classes,
       close enough to swap */
    for (int64_t a = kk - 1; a >= 0 && kk < g->n && row[a].s - row[kk].s < FRAGILE_GAP; a--)
        for (int64_t b = kk; b < g->n && row[a].s - row[b].s < FRAGILE_GAP; b++)
            if (g->y[row[a].i] != g->y[row[b].i]) o.fragile = 1;
    for (int a = 0; a < classes; a++)
        for (int b = a + 1; b < classes; b++)
            if (votes[a] > 0 && votes[b] > 0 && fabs(votes[a] - votes[b]) <= 1e-4 * fmax(votes[a], votes[b]))
                o.fragile = 1;
    return o;
}

typedef struct RefRet {
    double ap, prec[RT_RETRIEVAL_NK];
    int64_t nrel;
    int fragile;
} RefRet;

static RefRet ref_retrieval_query(const Item *row, const Set *g, int32_t label) {
    static const int ks[RT_RETRIEVAL_NK] = RT_RETRIEVAL_KS;
    RefRet o = {0};
    int64_t hits = 0;
    for (int64_t r = 0; r < g->n; r++) {
        if (g->y[row[r].i] != label) continue;
        hits++;
        o.ap += (double)hits / (double)(r + 1);
    }
    o.nrel = hits;
    if (hits) o.ap /= (double)hits;
    for (int c = 0; c < RT_RETRIEVAL_NK; c++) {
        int64_t kk = ks[c] < g->n ? ks[c] : g->n, h = 0;
        for (int64_t r = 0; r < kk; r++) h += g->y[row[r].i] == label;
        o.prec[c] = (double)h / (double)kk;
    }
    for (int64_t r = 0; r + 1 < g->n; r++)
        if ((g->y[row[r].i] == label) != (g->y[row[r + 1].i] == label) && row[r].s - row[r + 1].s < FRAGILE_GAP)
            o.fragile = 1;
    return o;
}

/* ---- comparisons ---- */

/* kNN of q by g against the reference; exact: every query must match. */
static void check_knn(const Set *g, const Set *q, const Item *rank, int classes, int k, double T, bool exact) {
    int32_t *pred = malloc((size_t)q->n * sizeof *pred);
    REQUIRE(pred);
    rt_knn_result res;
    char err[256] = "";
    int rc = rt_knn_eval(g->x, g->y, g->n, q->x, q->y, q->n, g->F, classes, k, T, pred, &res, err, sizeof err);
    CHECKF(rc == 0, "rt_knn_eval: %s", err);
    if (rc != 0) {
        free(pred);
        return;
    }
    int64_t c1 = 0, c5 = 0, fragile = 0, bad = 0;
    for (int64_t a = 0; a < q->n; a++) {
        RefKnn o = ref_knn_query(rank + a * g->n, g, classes, k, T, q->y[a]);
        c1 += o.pred == q->y[a];
        c5 += o.in_top5;
        if (!exact && o.fragile) {
            fragile++;
            continue;
        }
        if (pred[a] != o.pred && bad++ < 5)
            test_fail(__FILE__, __LINE__, "kNN k=%d T=%g query %lld: predicted %d, reference %d", k, T, (long long)a,
                      pred[a], o.pred);
    }
    double n = (double)q->n, tol = EXACT_TOL + (double)fragile / n;
    CHECK(res.queries == q->n && res.k == (k < g->n ? k : g->n));
    CHECKF(fabs(res.top1 - (double)c1 / n) <= tol, "kNN k=%d T=%g top-1 %.6f, reference %.6f (%lld fragile)", k, T,
           res.top1, (double)c1 / n, (long long)fragile);
    CHECKF(fabs(res.top5 - (double)c5 / n) <= tol, "kNN k=%d T=%g top-5 %.6f, reference %.6f (%lld fragile)", k, T,
           res.top5, (double)c5 / n, (long long)fragile);
    if (exact) CHECK(res.correct1 == c1 && res.correct5 == c5);
    CHECKF(fragile <= q->n / 4, "%lld of %lld queries fragile: the comparison says little", (long long)fragile,
           (long long)q->n);
    free(pred);
}

static void check_retrieval(const Set *g, const Set *q, const Item *rank, bool exact) {
    double *ap = malloc((size_t)q->n * sizeof *ap);
    REQUIRE(ap);
    rt_retrieval_result res;
    char err[256] = "";
    int rc = rt_retrieval_eval(g->x, g->y, g->n, q->x, q->y, q->n, g->F, ap, &res, err, sizeof err);
    CHECKF(rc == 0, "rt_retrieval_eval: %s", err);
    if (rc != 0) {
        free(ap);
        return;
    }
    double map = 0, prec[RT_RETRIEVAL_NK] = {0};
    int64_t none = 0, fragile = 0, bad = 0;
    for (int64_t a = 0; a < q->n; a++) {
        RefRet o = ref_retrieval_query(rank + a * g->n, g, q->y[a]);
        map += o.ap;
        for (int c = 0; c < RT_RETRIEVAL_NK; c++) prec[c] += o.prec[c];
        none += o.nrel == 0;
        if (!exact && o.fragile) {
            fragile++;
            continue;
        }
        if (!(fabs(ap[a] - o.ap) <= EXACT_TOL) && bad++ < 5)
            test_fail(__FILE__, __LINE__, "query %lld: AP %.15f, reference %.15f", (long long)a, ap[a], o.ap);
    }
    double n = (double)q->n, tol = EXACT_TOL + (double)fragile / n;
    static const int ks[RT_RETRIEVAL_NK] = RT_RETRIEVAL_KS;
    for (int c = 0; c < RT_RETRIEVAL_NK; c++) {
        CHECK(res.k[c] == ks[c]);
        CHECKF(fabs(res.precision[c] - prec[c] / n) <= tol, "P@%d %.15f, reference %.15f", ks[c], res.precision[c],
               prec[c] / n);
    }
    CHECKF(fabs(res.map - map / n) <= tol, "mAP %.15f, reference %.15f (%lld fragile)", res.map, map / n,
           (long long)fragile);
    CHECK(res.queries == q->n && res.no_relevant == none);
    CHECKF(fragile <= q->n / 4, "%lld of %lld queries fragile: the comparison says little", (long long)fragile,
           (long long)q->n);
    free(ap);
}

/* ---- against the reference ---- */

TEST(eval_knn_matches_reference_dyadic) {
    Set g, q;
    dyadic_case(&g, &q);
    for (int64_t a = 0; a < q.n; a++) q.y[a] %= 5;   /* kNN labels must be classes */
    Item *rank = ref_rank(&g, &q);
    static const int ks[] = {1, 2, 7, 20, 200, 299, 300, 1000};
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++) {
        check_knn(&g, &q, rank, 5, ks[i], RT_KNN_T, true);
        check_knn(&g, &q, rank, 5, ks[i], 1.0, true);
    }
    check_knn(&g, &q, rank, 9, 20, 0.01, true);   /* classes nobody has; a temperature that overflows exp(s/T) in float */
    free(rank);
    set_free(&g);
    set_free(&q);
}

TEST(eval_retrieval_matches_reference_dyadic) {
    Set g, q;
    dyadic_case(&g, &q);
    Item *rank = ref_rank(&g, &q);
    check_retrieval(&g, &q, rank, true);
    free(rank);
    /* a gallery smaller than the cut-offs 10 and 100 */
    Set g2 = set_new(8, 16);
    for (int64_t i = 0; i < 8; i++) {
        copy_row(&g2, i, &g, 5 * i);
        g2.y[i] = g.y[5 * i];
    }
    rank = ref_rank(&g2, &q);
    check_retrieval(&g2, &q, rank, true);
    free(rank);
    set_free(&g2);
    set_free(&g);
    set_free(&q);
}

/* A gallery crowded near the query: rows that permute and flip a few
   entries of the query's norm-8 integer vector (similarities k/64 between
   about 0.4 and 1, many equal), one row opposite (-1), 90% of the rows of
   the query's label. The buckets between -1 and 1 then hold tens of items
   each with several keys and ties, and ranking them takes the sorts (the
   pairwise count is for buckets with few relevant items). Exact. */
TEST(eval_retrieval_matches_reference_crowded) {
    static const int64_t sizes[] = {60, 400, 3000};
    for (int z = 0; z < 3; z++) {
        int64_t n = sizes[z];
        Set g = set_new(n, 16), q = set_new(3, 16);
        rt_stream r;
        rt_stream_init(&r, 16, RT_DOMAIN_TEST, 77, (uint32_t)n);
        norm8_row(&r, q.x);
        memcpy(q.x + 16, q.x, 16 * sizeof(float));
        memcpy(q.x + 32, q.x, 16 * sizeof(float));
        q.y[0] = 0;
        q.y[1] = 1;
        q.y[2] = 2;   /* no gallery row */
        for (int f = 0; f < 16; f++) g.x[f] = -q.x[f];
        for (int64_t i = 1; i < n; i++) {
            float *row = g.x + i * 16;
            memcpy(row, q.x, 16 * sizeof(float));
            int swaps = 1 + (int)rt_stream_below(&r, 4);
            for (int t = 0; t < swaps; t++) {
                int a = (int)rt_stream_below(&r, 16), b = (int)rt_stream_below(&r, 16);
                float v = row[a];
                row[a] = row[b];
                row[b] = v;
            }
            if (rt_stream_below(&r, 10) < 3) row[rt_stream_below(&r, 16)] *= -1;
            g.y[i] = rt_stream_below(&r, 10) < 9 ? 0 : 1;
        }
        Item *rank = ref_rank(&g, &q);
        check_retrieval(&g, &q, rank, true);
        free(rank);
        set_free(&g);
        set_free(&q);
    }
}

TEST(eval_knn_matches_reference_float) {
    Set g = gaussian(300, 16, 5, 3), q = gaussian(97, 16, 5, 4);
    for (int64_t i = 0; i < 30; i++) {   /* duplicates with the same label */
        copy_row(&g, 270 + i, &g, 9 * i);
        g.y[270 + i] = g.y[9 * i];
    }
    Item *rank = ref_rank(&g, &q);
    check_knn(&g, &q, rank, 5, 1, RT_KNN_T, false);
    check_knn(&g, &q, rank, 5, 20, RT_KNN_T, false);
    check_knn(&g, &q, rank, 5, RT_KNN_K, RT_KNN_T, false);
    check_knn(&g, &q, rank, 5, 50, 0.5, false);
    free(rank);
    set_free(&g);
    set_free(&q);
}

TEST(eval_retrieval_matches_reference_float) {
    Set g = gaussian(300, 16, 5, 5), q = gaussian(97, 16, 5, 6);
    for (int64_t i = 0; i < 30; i++) {
        copy_row(&g, 270 + i, &g, 9 * i);
        g.y[270 + i] = g.y[9 * i];
    }
    Item *rank = ref_rank(&g, &q);
    check_retrieval(&g, &q, rank, false);
    free(rank);
    set_free(&g);
    set_free(&q);
}

/* ---- by hand ---- */

TEST(eval_retrieval_by_hand) {
    /* query (1, 0); gallery (1, 0) A, (0, 1) B, (1, 1) B, (-1, 0) A:
       similarities 1, 0, 0.707, -1, ranking g0 g2 g1 g3.
       label A: relevant at ranks 1 and 4: AP = (1/1 + 2/4) / 2 = 3/4;
       label B: ranks 2 and 3: AP = (1/2 + 2/3) / 2 = 7/12; label C: none, AP 0.
       P@1: 1, 0, 0; P@5 = P@10 = P@100 = P@4 (4 items): 2/4, 2/4, 0 */
    const float gx[] = {1, 0, 0, 1, 1, 1, -1, 0}, qx[] = {1, 0, 1, 0, 1, 0};
    const int32_t gy[] = {10, 11, 11, 10}, qy[] = {10, 11, 12};
    double ap[3];
    rt_retrieval_result r;
    char err[256] = "";
    REQUIREF(rt_retrieval_eval(gx, gy, 4, qx, qy, 3, 2, ap, &r, err, sizeof err) == 0, "%s", err);
    CHECK(fabs(ap[0] - 0.75) < 1e-15 && fabs(ap[1] - 7.0 / 12) < 1e-15 && ap[2] == 0);
    CHECK(fabs(r.map - (0.75 + 7.0 / 12) / 3) < 1e-15);
    CHECK(fabs(r.precision[0] - 1.0 / 3) < 1e-15);
    for (int c = 1; c < RT_RETRIEVAL_NK; c++) CHECK(fabs(r.precision[c] - 1.0 / 3) < 1e-15);
    CHECK(r.no_relevant == 1 && r.queries == 3);

    /* ties: all similarities 0 (orthogonal rows and a zero row), so the
       ranking is the gallery order: B A A A -> AP (1/2 + 2/3 + 3/4) / 3 =
       23/36 for A; B first -> AP 1 for B, also for a zero query */
    const float tx[] = {0, 1, 0, -1, 0, 2, 0, 0}, tq[] = {1, 0, 0, 0};
    const int32_t ty[] = {1, 0, 0, 0}, tqy[] = {0, 1};
    REQUIRE(rt_retrieval_eval(tx, ty, 4, tq, tqy, 2, 2, ap, &r, NULL, 0) == 0);
    CHECK(fabs(ap[0] - 23.0 / 36) < 1e-15 && ap[1] == 1);
    CHECK(r.precision[0] == 0.5);   /* query 0: B first (0); query 1: B first (1) */

    /* -0 and +0 are the same similarity: F = 1, rows +0 B, -0 A, -0 A,
       +0 B against queries 2 and -3: all tie, gallery order B A A B,
       AP (1/2 + 2/3) / 2 = 7/12 (-0 after +0 would give 5/12) */
    const float zx[] = {0.0f, -0.0f, -0.0f, 0.0f}, zq[] = {2.0f, -3.0f};
    const int32_t zy[] = {1, 0, 0, 1}, zqy[] = {0, 0};
    REQUIRE(rt_retrieval_eval(zx, zy, 4, zq, zqy, 2, 1, ap, &r, NULL, 0) == 0);
    CHECK(fabs(ap[0] - 7.0 / 12) < 1e-15 && fabs(ap[1] - 7.0 / 12) < 1e-15);
}

TEST(eval_knn_by_hand) {
    /* query (1, 0); train (1, 0) class 1 (s = 1) and three rows at s = 0.9
       of class 0. T = 0.07: e^(1/.07) > 3 e^(.9/.07) (ratio 3 e^-1.43 =
       0.72), class 1; T = 1: e < 3 e^0.9, class 0; k = 1: class 1; k = 3,
       T = 1: e < 2 e^0.9, class 0 */
    const float tx[] = {1, 0, 0.9f, 0.43589f, 0.9f, -0.43589f, 0.9f, 0.43589f};
    const int32_t ty[] = {1, 0, 0, 0}, qy[] = {1};
    const float qx[] = {1, 0};
    int32_t p = -1;
    rt_knn_result r;
    char err[256] = "";
    REQUIREF(rt_knn_eval(tx, ty, 4, qx, qy, 1, 2, 2, 200, 0.07, &p, &r, err, sizeof err) == 0, "%s", err);
    CHECK(p == 1 && r.k == 4 && r.top1 == 1 && r.correct1 == 1 && r.top5 == 1);
    REQUIRE(rt_knn_eval(tx, ty, 4, qx, qy, 1, 2, 2, 200, 1.0, &p, &r, NULL, 0) == 0);
    CHECK(p == 0 && r.top1 == 0 && r.top5 == 1);
    REQUIRE(rt_knn_eval(tx, ty, 4, qx, qy, 1, 2, 2, 1, 1.0, &p, NULL, NULL, 0) == 0);
    CHECK(p == 1);
    REQUIRE(rt_knn_eval(tx, ty, 4, qx, qy, 1, 2, 2, 3, 1.0, &p, NULL, NULL, 0) == 0);
    CHECK(p == 0);

    /* ties: (0, 1) class 2 and (0, -1) class 1 both at s = 0. k = 1: the
       lower index, class 2; k = 2: equal scores, the lower class, 1 */
    const float ux[] = {0, 1, 0, -1};
    const int32_t uy[] = {2, 1};
    REQUIRE(rt_knn_eval(ux, uy, 2, qx, NULL, 1, 2, 3, 1, 0.07, &p, &r, NULL, 0) == 0);
    CHECK(p == 2 && isnan(r.top1) && isnan(r.top5));
    REQUIRE(rt_knn_eval(ux, uy, 2, qx, NULL, 1, 2, 3, 2, 0.07, &p, NULL, NULL, 0) == 0);
    CHECK(p == 1);

    /* a zero query: every similarity 0, the k first train rows vote with
       weight 1: rows 0-2 are classes 2, 1, 1 -> class 1 */
    const float wx[] = {1, 0, 0, 1, 1, 1, -1, 0, 5, 5}, wq[] = {0, 0};
    const int32_t wy[] = {2, 1, 1, 2, 2};
    REQUIRE(rt_knn_eval(wx, wy, 5, wq, NULL, 1, 2, 3, 3, 0.07, &p, NULL, NULL, 0) == 0);
    CHECK(p == 1);
    REQUIRE(rt_knn_eval(wx, wy, 5, wq, NULL, 1, 2, 3, 5, 0.07, &p, NULL, NULL, 0) == 0);
    CHECK(p == 2);

    /* top-5: classes 0..6 at decreasing similarity (one row each, angle
       0.1 * c): the label ranked 5th is in the top 5, the 6th is not; a
       class with no neighbour (7) comes after them all */
    float sx[14];
    int32_t sy[7];
    for (int c = 0; c < 7; c++) {
        sx[2 * c] = (float)cos(0.1 * c);
        sx[2 * c + 1] = (float)sin(0.1 * c);
        sy[c] = c;
    }
    const float sq[] = {1, 0, 1, 0, 1, 0};
    const int32_t sqy[] = {4, 5, 7};
    REQUIRE(rt_knn_eval(sx, sy, 7, sq, sqy, 3, 2, 8, 200, 0.07, NULL, &r, NULL, 0) == 0);
    CHECK(r.correct1 == 0 && r.correct5 == 1 && fabs(r.top5 - 1.0 / 3) < 1e-15);
    /* the same with every score equal (all rows orthogonal to the query):
       the vote order is the class order, so 4 is in the top 5 and 5 is not */
    for (int c = 0; c < 7; c++) {
        sx[2 * c] = 0;
        sx[2 * c + 1] = (float)(c + 1);
    }
    REQUIRE(rt_knn_eval(sx, sy, 7, sq, sqy, 3, 2, 8, 200, 0.07, NULL, &r, NULL, 0) == 0);
    CHECK(r.correct1 == 0 && r.correct5 == 1);
}

TEST(eval_rejects_bad_input) {
    const float x[] = {1, 0, 0, 1}, bad[] = {1, NAN, 0, 1};
    const int32_t y[] = {0, 1}, ybad[] = {0, 2};
    char err[256];
    rt_knn_result kr = {.top1 = 0.5};
    rt_retrieval_result rr = {.map = 0.5};
    CHECK(rt_knn_eval(x, ybad, 2, x, y, 2, 2, 2, 1, 0.07, NULL, &kr, err, sizeof err) == -1 && strstr(err, "label 2"));
    CHECK(rt_knn_eval(x, y, 2, x, ybad, 2, 2, 2, 1, 0.07, NULL, &kr, err, sizeof err) == -1 && strstr(err, "test label"));
    CHECK(rt_knn_eval(bad, y, 2, x, y, 2, 2, 2, 1, 0.07, NULL, &kr, err, sizeof err) == -1 && strstr(err, "row 0"));
    CHECK(rt_knn_eval(x, y, 2, bad, y, 2, 2, 2, 1, 0.07, NULL, &kr, err, sizeof err) == -1 && strstr(err, "test"));
    CHECK(rt_knn_eval(x, y, 0, x, y, 2, 2, 2, 1, 0.07, NULL, &kr, err, sizeof err) == -1);
    CHECK(rt_knn_eval(x, y, 2, x, y, 2, 2, 2, 0, 0.07, NULL, &kr, err, sizeof err) == -1);
    CHECK(rt_knn_eval(x, y, 2, x, y, 2, 2, 2, 1, 0, NULL, &kr, err, sizeof err) == -1);
    CHECK(rt_knn_eval(x, y, 2, x, y, 2, 2, 2, 1, INFINITY, NULL, &kr, NULL, 0) == -1);
    CHECK(rt_knn_eval(x, y, 2, x, y, 2, 0, 2, 1, 0.07, NULL, &kr, err, sizeof err) == -1);
    CHECK(kr.top1 == 0.5);   /* untouched */
    CHECK(rt_retrieval_eval(bad, y, 2, x, y, 2, 2, NULL, &rr, err, sizeof err) == -1 && strstr(err, "gallery"));
    CHECK(rt_retrieval_eval(x, y, 2, x, y, 0, 2, NULL, &rr, err, sizeof err) == -1);
    CHECK(rt_retrieval_eval(x, NULL, 2, x, y, 2, 2, NULL, &rr, err, sizeof err) == -1);
    CHECK(rr.map == 0.5);
}

/* Several blocks (700 queries: 256 a block here) on 1 and 2 pool threads
   give the same bits. */
TEST(eval_same_on_pool_threads) {
    Set g = gaussian(300, 16, 5, 7), q = gaussian(700, 16, 5, 8);
    int threads = rt_pool_threads(), blas = openblas_get_num_threads();   /* restored after */
    openblas_set_num_threads(1);
    double ap[2][700];
    int32_t pred[2][700];
    rt_retrieval_result rr[2];
    rt_knn_result kr[2];
    memset(rr, 0, sizeof rr);   /* padding too: compared whole below */
    memset(kr, 0, sizeof kr);
    bool ok = true;
    for (int t = 0; t < 2 && ok; t++) {
        rt_pool_init(t + 1);
        ok = rt_retrieval_eval(g.x, g.y, g.n, q.x, q.y, q.n, 16, ap[t], &rr[t], NULL, 0) == 0 &&
             rt_knn_eval(g.x, g.y, g.n, q.x, q.y, q.n, 16, 5, 20, RT_KNN_T, pred[t], &kr[t], NULL, 0) == 0;
    }
    rt_pool_init(threads);
    openblas_set_num_threads(blas);
    CHECK(ok);
    CHECK(memcmp(ap[0], ap[1], sizeof ap[0]) == 0 && memcmp(pred[0], pred[1], sizeof pred[0]) == 0);
    CHECK(memcmp(&rr[0], &rr[1], sizeof rr[0]) == 0 && memcmp(&kr[0], &kr[1], sizeof kr[0]) == 0);
    set_free(&g);
    set_free(&q);
}
