/*
** test_cluster.c: DeepCluster's clustering (runtime/rt_cluster) against the
** NumPy float64 goldens of tests/golden/cluster/ (made by
** tests/golden/make_cluster_goldens.py, whose NumPy code was checked there
** against scikit-learn 1.2.1: PCA(whiten=True), KMeans with the same initial
** centres and with n_init=5, random_state=0, normalized_mutual_info_score),
** and hand-made cases with known answers.
**
** Goldens (two Gaussian mixtures, 600 x 32 with 10 clusters and 400 x 16
** with 5, anisotropic, feature scales 0.2-5; one case built to empty two
** clusters; one of 3,000 rows that the shift rule stops while labels still
** change, the others stopping on unchanged labels; labelings for NMI):
**   - whitening, before and after the L2 step, compared column by column
**     after flipping each column to the golden's sign (a component's sign is
**     arbitrary): every value within WHITEN_REL * |ref| + WHITEN_ABS. rrc
**     computes in double and rounds once to float (error <= 2^-24 |ref|);
**     the golden comes from an SVD instead of the covariance's eigenvectors,
**     which differ by at most 2.6e-13 here (eigenvalue gaps >= 2.7%,
**     covariances of condition 1.5e3 and 5e2). Measured: 0.49 of the
**     allowance, the float rounding itself. The eigenvalues (the N - 1
**     divisor) within 1e-11 relative (measured 5e-14);
**   - Lloyd from the golden's initial centres: the same labels and number
**     of iterations exactly (the golden checks that every row's best and
**     second-best centre differ by > 1e-4 of the mean squared norm at every
**     iteration, far above the float products' error, and that no stop
**     decision is near its threshold), the same relocations, centres within 2^-23 |ref| + 1e-6
**     (double centres rounded to float once), inertia within 1e-9 relative
**     (the same terms summed in another order);
**   - k-means++ with 5 restarts (rrc's own Philox streams, so not the
**     golden's draws): the best inertia at most 1% above the golden's
**     best-of-5 and the NMI with the mixture's labels at most 0.05 below
**     the golden's (a single golden run lands within 1% of that best 65% /
**     77.5% of the time, so 5 restarts that all miss it have odds of about
**     0.5% / 0.06% for a correct k-means: these seeds do not);
**   - the seeding alone: the mean potential of 400 seedings against the
**     golden's 400 (two-sample z, |z| <= 4.5). A plain D^2 seeding (one
**     candidate, no greedy choice) is 21 above on the 32-d case, z ~ 40;
**   - NMI to 1e-12 of the golden's values.
** Hand-made: NMI's definition on small cases, weights, empty clusters
** relocated (the tie rule, and a cluster that loses its only row), rank-
** deficient and constant features, the whitened covariance is the identity
** (also at F = 512, where half the components are kept), pool sizes giving
** the same bits, bad arguments.
*/
#include "test.h"

#include "golden_util.h"
#include "rt_cluster.h"
#include "rt_pool.h"
#include "rt_rng.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#define WHITEN_REL 0x1p-23   /* twice float's rounding unit */
#define WHITEN_ABS 1e-9      /* SVD against eigenvectors, in double */
#define CENTRE_REL 0x1p-23
#define CENTRE_ABS 1e-6      /* centres near 0: their float rounding of the double mean */
#define INERTIA_REL 1e-9
#define PP_INERTIA_SLACK 1.01
#define PP_NMI_MARGIN 0.05
#define SEED_Z 4.5
#define SEEDINGS 400

/* ---- golden files ---- */

typedef struct Golden {
    rt_st_file f;
    char path[512];
    bool ok;
} Golden;

static bool golden_open(Golden *g, const char *name) {
    snprintf(g->path, sizeof g->path, "%s/cluster/%s.safetensors", golden_dir(), name);
    g->ok = golden_read(g->path, &g->f);
    return g->ok;
}

static void golden_close(Golden *g) {
    if (g->ok) rt_st_free(&g->f);
}

static int64_t meta_int(const Golden *g, const char *key) {
    const char *v = rt_st_meta(&g->f, key);
    if (!v) test_fail(__FILE__, __LINE__, "%s: no metadata %s", g->path, key);
    return v ? atoll(v) : -1;
}

/* A float tensor of n values as float (malloc'd), or NULL with a failure. */
static float *golden_f32(const Golden *g, const char *name, int64_t n) {
    double *v = golden_tensor(&g->f, g->path, name, n);
    if (!v) return NULL;
    float *out = malloc((size_t)n * sizeof *out);
    for (int64_t i = 0; i < n; i++) out[i] = (float)v[i];   /* F32 in the file: exact */
    free(v);
    return out;
}

/* An I64 tensor of n values as int32 (malloc'd), or NULL with a failure. */
static int32_t *golden_i32(const Golden *g, const char *name, int64_t n) {
    const rt_tensor *t = rt_st_find(&g->f, name);
    if (!t || t->dtype != RT_I64 || t->nbytes != (size_t)n * 8) {
        test_fail(__FILE__, __LINE__, "%s: no I64 tensor %s of %lld values", g->path, name, (long long)n);
        return NULL;
    }
    int32_t *out = malloc((size_t)n * sizeof *out);
    for (int64_t i = 0; i < n; i++) {
        int64_t v;
        memcpy(&v, (const char *)t->data + 8 * i, 8);
        out[i] = (int32_t)v;
    }
    return out;
}

static double golden_scalar(const Golden *g, const char *name) {
    double *v = golden_tensor(&g->f, g->path, name, 1);
    double s = v ? v[0] : NAN;
    free(v);
    return s;
}

/* ---- whitening against the goldens ---- */

/* Compares ours [n, m] with ref [n, m] column by column after giving each
   column of ours the sign of ref's; returns the largest error divided by
   its allowance (<= 1 passes) and records a failure naming `what`. */
static double compare_signed(const char *what, const float *ours, const double *ref, int64_t n, int64_t m) {
    double worst = 0;
    int64_t wi = 0, wc = 0;
    for (int64_t c = 0; c < m; c++) {
        double dot = 0;
        for (int64_t i = 0; i < n; i++) dot += (double)ours[i * m + c] * ref[i * m + c];
        double s = dot < 0 ? -1 : 1;
        for (int64_t i = 0; i < n; i++) {
            double r = ref[i * m + c], e = fabs(s * ours[i * m + c] - r) / (WHITEN_REL * fabs(r) + WHITEN_ABS);
            if (!(e <= worst)) worst = e, wi = i, wc = c;
        }
    }
    CHECKF(worst <= 1, "%s: [%lld, %lld] ours %.9g ref %.9g (%.2f of the allowance)", what, (long long)wi,
           (long long)wc, (double)ours[wi * m + wc], ref[wi * m + wc], worst);
    return worst;
}

static void whiten_case(const char *name) {
    Golden g;
    if (!golden_open(&g, name)) return;
    int64_t N = meta_int(&g, "N"), F = meta_int(&g, "F"), n = meta_int(&g, "n");
    float *x = golden_f32(&g, "x", N * F);
    double *w = golden_tensor(&g.f, g.path, "whitened", N * n), *lam = golden_tensor(&g.f, g.path, "eigval", n);
    float *out = malloc((size_t)(N * n) * sizeof *out);
    double *eig = malloc((size_t)n * sizeof *eig), *wl2 = malloc((size_t)(N * n) * sizeof *wl2);
    char err[256] = "", what[128];
    rt_pca_result res;
    if (x && w && lam) {
        CHECK(rt_pca_whiten_dim(F) == n);
        REQUIREF(rt_pca_whiten(x, N, F, 0, false, out, eig, &res, err, sizeof err) == 0, "%s: %s", name, err);
        CHECK(res.ncomp == n && res.null_comps == 0 && res.zero_rows == 0);
        double e = 0;
        for (int64_t c = 0; c < n; c++) e = fmax(e, fabs(eig[c] - lam[c]) / lam[c]);
        CHECKF(e <= 1e-11, "%s: eigenvalues off by %.3g relative", name, e);
        snprintf(what, sizeof what, "%s whitened", name);
        compare_signed(what, out, w, N, n);

        for (int64_t i = 0; i < N; i++) {
            double ss = 0;
            for (int64_t c = 0; c < n; c++) ss += w[i * n + c] * w[i * n + c];
            for (int64_t c = 0; c < n; c++) wl2[i * n + c] = w[i * n + c] / sqrt(ss);
        }
        REQUIREF(rt_pca_whiten(x, N, F, 0, true, out, NULL, NULL, err, sizeof err) == 0, "%s: %s", name, err);
        snprintf(what, sizeof what, "%s whitened + L2", name);
        compare_signed(what, out, wl2, N, n);
    }
    free(x), free(w), free(lam), free(out), free(eig), free(wl2);
    golden_close(&g);
}

TEST(cluster_whiten_matches_numpy) {
    whiten_case("mix_F32_k10");
    whiten_case("mix_F16_k5");
}

/* ---- Lloyd against the goldens ---- */

static void lloyd_case(const char *name, const char *xname, int64_t N, int64_t d, int k) {
    Golden g;
    if (!golden_open(&g, name)) return;
    float *x = golden_f32(&g, xname, N * d), *init = golden_f32(&g, "init", k * d);
    int32_t *ref_labels = golden_i32(&g, "lloyd_labels", N);
    double *ref_c = golden_tensor(&g.f, g.path, "lloyd_centres", k * d);
    int64_t iters = 0;
    const rt_tensor *it = rt_st_find(&g.f, "lloyd_iter");
    if (it && it->dtype == RT_I64) memcpy(&iters, it->data, 8);
    double ref_inertia = golden_scalar(&g, "lloyd_inertia");
    int32_t *labels = malloc((size_t)N * sizeof *labels);
    float *c = malloc((size_t)(k * d) * sizeof *c);
    char err[256] = "";
    rt_kmeans_result res;
    if (x && init && ref_labels && ref_c) {
        int rc = rt_kmeans_lloyd(x, N, d, k, init, RT_KMEANS_MAX_ITER, RT_KMEANS_TOL, labels, c, &res, err, sizeof err);
        CHECKF(rc == 0, "%s: %s", name, err);
        int64_t wrong = 0, first = -1;
        for (int64_t i = 0; i < N; i++)
            if (labels[i] != ref_labels[i]) wrong++, first = first < 0 ? i : first;
        CHECKF(wrong == 0, "%s: %lld labels differ (first row %lld: %d, golden %d)", name, (long long)wrong,
               (long long)first, first >= 0 ? labels[first] : 0, first >= 0 ? ref_labels[first] : 0);
        CHECKF(res.iterations == iters, "%s: %d iterations, golden %lld", name, res.iterations, (long long)iters);
        CHECKF(res.relocations == meta_int(&g, "relocations"), "%s: %d relocations, golden %lld", name,
               res.relocations, (long long)meta_int(&g, "relocations"));
        CHECKF(fabs(res.inertia - ref_inertia) <= INERTIA_REL * ref_inertia, "%s: inertia %.12g, golden %.12g", name,
               res.inertia, ref_inertia);
        double worst = 0;
        for (int64_t i = 0; i < k * d; i++)
            worst = fmax(worst, fabs(c[i] - ref_c[i]) / (CENTRE_REL * fabs(ref_c[i]) + CENTRE_ABS));
        CHECKF(worst <= 1, "%s: centres off by %.2f of the allowance", name, worst);
        CHECK(res.converged && res.empty == 0 && res.restart == 0);
    }
    free(x), free(init), free(ref_labels), free(ref_c), free(labels), free(c);
    golden_close(&g);
}

TEST(cluster_lloyd_matches_numpy) {
    lloyd_case("mix_F32_k10", "feat", 600, 32, 10);
    lloyd_case("mix_F16_k5", "feat", 400, 16, 5);
    lloyd_case("lloyd_empty", "x", 200, 8, 6);   /* two clusters emptied and relocated */
    lloyd_case("lloyd_tol", "x", 3000, 4, 3);    /* stopped by the shift rule */
}

/* ---- k-means++ with restarts against the goldens ---- */

static void kmeans_case(const char *name) {
    Golden g;
    if (!golden_open(&g, name)) return;
    int64_t N = meta_int(&g, "N"), n = meta_int(&g, "n");
    int k = (int)meta_int(&g, "k");
    float *feat = golden_f32(&g, "feat", N * n);
    int32_t *y = golden_i32(&g, "y", N);
    double ref_inertia = golden_scalar(&g, "pp_inertia"), ref_nmi = golden_scalar(&g, "pp_nmi");
    int32_t *labels = malloc((size_t)N * sizeof *labels);
    float *c = malloc((size_t)(k * n) * sizeof *c);
    char err[256] = "";
    rt_kmeans_result res;
    if (feat && y) {
        rt_kmeans_opts o = rt_kmeans_defaults(k, 1);
        REQUIREF(rt_kmeans(feat, N, n, &o, labels, c, &res, err, sizeof err) == 0, "%s: %s", name, err);
        double nmi = -1;
        CHECK(rt_nmi(labels, y, N, &nmi, err, sizeof err) == 0);
        CHECKF(res.inertia <= PP_INERTIA_SLACK * ref_inertia, "%s: best inertia %.6f, golden best-of-5 %.6f", name,
               res.inertia, ref_inertia);
        CHECKF(nmi >= ref_nmi - PP_NMI_MARGIN, "%s: NMI %.4f with the classes, golden %.4f", name, nmi, ref_nmi);
        CHECK(res.empty == 0 && res.restart >= 0 && res.restart < RT_KMEANS_N_INIT && res.iterations >= 1);
        /* the returned inertia is that of the returned labels and centres */
        double in = 0;
        for (int64_t i = 0; i < N; i++)
            for (int64_t f = 0; f < n; f++) {
                double v = (double)feat[i * n + f] - c[labels[i] * n + f];
                in += v * v;
            }
        CHECKF(fabs(in - res.inertia) <= 1e-5 * res.inertia, "%s: inertia %.9g, recomputed %.9g", name, res.inertia,
               in);
    }
    free(feat), free(y), free(labels), free(c);
    golden_close(&g);
}

TEST(cluster_kmeans_pp_vs_numpy) {
    kmeans_case("mix_F32_k10");
    kmeans_case("mix_F16_k5");
}

static void seeding_case(const char *name) {
    Golden g;
    if (!golden_open(&g, name)) return;
    int64_t N = meta_int(&g, "N"), n = meta_int(&g, "n");
    int k = (int)meta_int(&g, "k");
    float *feat = golden_f32(&g, "feat", N * n);
    double *ref = golden_tensor(&g.f, g.path, "seed_potentials", SEEDINGS);
    int64_t rows[64];
    char err[256] = "";
    if (feat && ref && k <= 64) {
        double s1 = 0, s2 = 0, r1 = 0, r2 = 0;
        for (int r = 0; r < SEEDINGS; r++) {
            double pot = 0;
            REQUIREF(rt_kmeans_seed(feat, N, n, k, 7, 0, (uint32_t)r, rows, &pot, err, sizeof err) == 0, "%s", err);
            s1 += pot, s2 += pot * pot, r1 += ref[r], r2 += ref[r] * ref[r];
        }
        double m = s1 / SEEDINGS, v = s2 / SEEDINGS - m * m, rm = r1 / SEEDINGS, rv = r2 / SEEDINGS - rm * rm;
        double z = (m - rm) / sqrt((v + rv) / SEEDINGS);
        CHECKF(fabs(z) <= SEED_Z, "%s: mean seeding potential %.3f (sd %.3f), golden %.3f (sd %.3f): z = %.2f", name,
               m, sqrt(v), rm, sqrt(rv), z);
    }
    free(feat), free(ref);
    golden_close(&g);
}

TEST(cluster_seeding_potential_vs_numpy) {
    seeding_case("mix_F32_k10");
    seeding_case("mix_F16_k5");
}

/* ---- NMI ---- */

TEST(cluster_nmi_matches_numpy) {
    Golden g;
    if (!golden_open(&g, "nmi")) return;
    const char *pairs[][3] = {{"a", "b", "nmi_ab"}, {"a", "c", "nmi_ac"}, {"b", "d", "nmi_bd"}};
    int64_t N = meta_int(&g, "N");
    for (int p = 0; p < 3; p++) {
        int32_t *u = golden_i32(&g, pairs[p][0], N), *v = golden_i32(&g, pairs[p][1], N);
        double ref = golden_scalar(&g, pairs[p][2]), ours = -1, back = -1;
        if (u && v) {
            CHECK(rt_nmi(u, v, N, &ours, NULL, 0) == 0 && rt_nmi(v, u, N, &back, NULL, 0) == 0);
            CHECKF(fabs(ours - ref) <= 1e-12 && fabs(back - ref) <= 1e-12, "%s: NMI %.15f / %.15f, golden %.15f",
                   pairs[p][2], ours, back, ref);
        }
        free(u), free(v);
    }
    golden_close(&g);
    const char *mix[] = {"mix_F32_k10", "mix_F16_k5"};
    for (int m = 0; m < 2; m++) {
        if (!golden_open(&g, mix[m])) continue;
        N = meta_int(&g, "N");
        int32_t *y = golden_i32(&g, "y", N), *l = golden_i32(&g, "lloyd_labels", N);
        double ref = golden_scalar(&g, "lloyd_nmi"), ours = -1;
        if (y && l) {
            CHECK(rt_nmi(y, l, N, &ours, NULL, 0) == 0);
            CHECKF(fabs(ours - ref) <= 1e-12, "%s: NMI %.15f, golden %.15f", mix[m], ours, ref);
        }
        free(y), free(l);
        golden_close(&g);
    }
}

static double nmi_of(const int32_t *a, const int32_t *b, int64_t n) {
    double v = NAN;
    if (rt_nmi(a, b, n, &v, NULL, 0) != 0) return NAN;
    return v;
}

TEST(cluster_nmi_by_hand) {
    const int32_t a[] = {0, 0, 1, 1}, same[] = {0, 0, 1, 1}, swapped[] = {1, 1, 0, 0}, indep[] = {0, 1, 0, 1};
    CHECK(fabs(nmi_of(a, same, 4) - 1) <= 1e-15);
    CHECK(fabs(nmi_of(a, swapped, 4) - 1) <= 1e-15);   /* renaming the clusters */
    CHECK(nmi_of(a, indep, 4) == 0);                    /* every cell n/4: MI exactly 0 */
    /* a = 0,0,0,1 and b = 0,0,1,1: cells (0,0) 2, (0,1) 1, (1,1) 1; rows 3, 1; columns 2, 2 */
    const int32_t p[] = {0, 0, 0, 1}, q[] = {0, 0, 1, 1};
    double mi = 0.5 * log(4.0 * 2 / (3 * 2)) + 0.25 * log(4.0 * 1 / (3 * 2)) + 0.25 * log(4.0 * 1 / (1 * 2));
    double hp = -(0.75 * log(0.75) + 0.25 * log(0.25)), hq = log(2.0);
    CHECK(fabs(nmi_of(p, q, 4) - mi / ((hp + hq) / 2)) <= 1e-15);
    CHECK(fabs(nmi_of(p, q, 4) - nmi_of(q, p, 4)) <= 1e-15);
    /* any int32 values: the same partition under other names */
    const int32_t p2[] = {INT32_MIN, INT32_MIN, INT32_MIN, INT32_MAX}, q2[] = {-7, -7, 12, 12};
    CHECK(fabs(nmi_of(p2, q2, 4) - nmi_of(p, q, 4)) <= 1e-15);
    /* constant labelings: both 1, one 0; a single item */
    const int32_t k0[] = {5, 5, 5, 5}, k1[] = {-1, -1, -1, -1};
    CHECK(nmi_of(k0, k1, 4) == 1 && nmi_of(k0, a, 4) == 0 && nmi_of(a, k0, 4) == 0 && nmi_of(a, a + 1, 1) == 1);
    /* independent random labelings of 100,000 items in 10 and 7 classes:
       the plug-in MI is biased up by about (10-1)(7-1)/(2n) = 2.7e-4 nats */
    enum { NR = 100000 };
    int32_t *u = malloc(NR * sizeof *u), *v = malloc(NR * sizeof *v), *w = malloc(NR * sizeof *w);
    rt_stream s;
    rt_stream_init(&s, 3, RT_DOMAIN_TEST, 77, 0);
    for (int i = 0; i < NR; i++) u[i] = (int32_t)rt_stream_below(&s, 10), v[i] = (int32_t)rt_stream_below(&s, 7);
    double iv = nmi_of(u, v, NR);
    CHECKF(iv >= 0 && iv < 1e-3, "independent labelings: NMI %.3g", iv);
    /* a permutation of the names (not monotone) changes only the order of the sums */
    for (int i = 0; i < NR; i++) w[i] = (u[i] * 7 + 3) % 10;
    double uv = nmi_of(u, v, NR), wv = nmi_of(w, v, NR);
    CHECK(fabs(uv - wv) <= 1e-12 && fabs(nmi_of(u, w, NR) - 1) <= 1e-12);
    free(u), free(v), free(w);
    double out = 0;
    char err[128] = "";
    CHECK(rt_nmi(a, same, 0, &out, err, sizeof err) == -1 && strstr(err, "0 items"));
    CHECK(rt_nmi(NULL, same, 4, &out, err, sizeof err) == -1);
}

/* ---- weights ---- */

TEST(cluster_weights) {
    const int32_t labels[] = {0, 0, 1, 2, 2, 2};
    float w[4];
    char err[128] = "";
    REQUIRE(rt_cluster_weights(labels, 6, 4, w, err, sizeof err) == 0);
    CHECK(w[0] == (float)(1.0 - 2.0 / 6) && w[1] == (float)(1.0 - 1.0 / 6) && w[2] == 0.5f && w[3] == 1.0f);
    const int32_t bad[] = {0, 4};
    CHECK(rt_cluster_weights(bad, 2, 4, w, err, sizeof err) == -1 && strstr(err, "label 4 (row 1)"));
    CHECK(rt_cluster_weights(labels, 6, 0, w, err, sizeof err) == -1);
    CHECK(rt_cluster_weights(labels, 0, 4, w, err, sizeof err) == -1);
}

/* ---- Lloyd by hand: empty clusters ---- */

TEST(cluster_lloyd_relocates_empty_clusters) {
    char err[128] = "";
    rt_kmeans_result res;
    /* 1-d rows 0 1 2 10 11, centres 0.5 10.5 100: centre 2 is empty after
       the first assignment and takes row 2 (x = 2, the farthest from its
       centre 0.5), whose sum leaves cluster 0 (centre 0.5 again); the next
       assignment moves row 2's label and no centre: stop by the shift */
    const float x1[] = {0, 1, 2, 10, 11}, i1[] = {0.5f, 10.5f, 100};
    int32_t l1[5];
    float c1[3];
    REQUIRE(rt_kmeans_lloyd(x1, 5, 1, 3, i1, 30, 1e-4, l1, c1, &res, err, sizeof err) == 0);
    CHECK(l1[0] == 0 && l1[1] == 0 && l1[2] == 2 && l1[3] == 1 && l1[4] == 1);
    CHECK(c1[0] == 0.5f && c1[1] == 10.5f && c1[2] == 2.0f);
    CHECK(res.iterations == 2 && res.relocations == 1 && res.converged && res.empty == 0);
    CHECK(fabs(res.inertia - 1.0) <= 1e-12);
    /* rows -1 1 10 11, centres 0 10.5 100 200: clusters 2 and 3 are empty
       and rows 0 and 1 are equally far (1) from centre 0: the lower row goes
       to the lower cluster (-1 to 2, 1 to 3). Cluster 0 loses both rows: its
       sum is 0, so its centre is the data mean 5.25 (sklearn's rule), which
       then draws no row: relocated again, to row 2 (10; rows 2 and 3 tie at
       0.25). Three iterations, three relocations, inertia 0. */
    const float x2[] = {-1, 1, 10, 11}, i2[] = {0, 10.5f, 100, 200};
    int32_t l2[4];
    float c2[4];
    REQUIRE(rt_kmeans_lloyd(x2, 4, 1, 4, i2, 30, 1e-4, l2, c2, &res, err, sizeof err) == 0);
    CHECK(l2[0] == 2 && l2[1] == 3 && l2[2] == 0 && l2[3] == 1);
    CHECK(c2[0] == 10 && c2[1] == 11 && c2[2] == -1 && c2[3] == 1);
    CHECK(res.iterations == 3 && res.relocations == 3 && res.converged && res.empty == 0 && res.inertia == 0);
    /* one iteration allowed: stopped by max_iter, labels of the final centres */
    REQUIRE(rt_kmeans_lloyd(x1, 5, 1, 3, i1, 1, 1e-4, l1, c1, &res, err, sizeof err) == 0);
    CHECK(res.iterations == 1 && !res.converged && l1[2] == 2 && c1[2] == 2.0f);
}

/* Fewer distinct rows than clusters: k-means++ runs out of distance (then
   draws uniformly), clusters stay empty, nothing is NaN. */
TEST(cluster_kmeans_fewer_distinct_rows_than_k) {
    enum { N = 40, D = 3, K = 7 };
    float x[N * D], c[K * D];
    int32_t labels[N];
    for (int i = 0; i < N; i++)
        for (int f = 0; f < D; f++) x[i * D + f] = (float)((i % 5) * (f + 1));
    rt_kmeans_opts o = rt_kmeans_defaults(K, 3);
    rt_kmeans_result res;
    char err[128] = "";
    REQUIREF(rt_kmeans(x, N, D, &o, labels, c, &res, err, sizeof err) == 0, "%s", err);
    CHECK(res.inertia == 0 && res.empty == 2 && res.seed_potential == 0);
    for (int i = 0; i < N; i++) CHECK(labels[i] >= 0 && labels[i] < K);
    for (int i = 0; i < K * D; i++) CHECK(isfinite(c[i]));
    int64_t rows[K];
    double pot = -1;
    REQUIRE(rt_kmeans_seed(x, N, D, K, 3, 0, 0, rows, &pot, err, sizeof err) == 0);
    int seen[5] = {0};
    for (int j = 0; j < 5; j++) seen[rows[j] % 5]++;   /* the first 5 seeds: the 5 distinct rows */
    CHECK(pot == 0 && seen[0] == 1 && seen[1] == 1 && seen[2] == 1 && seen[3] == 1 && seen[4] == 1);
}

/* D^2 sampling: 1000 rows at 0 and one far row. The first seed is uniform
   (a zero row, but for 1 in 1001), after which all of D^2 is on the far row
   (or, when the far row came first, on the zeros): uniform seeding would
   pick the far row second 1 time in 1000. */
TEST(cluster_seeding_draws_by_distance) {
    enum { N = 1001, D = 4 };
    float *x = calloc(N * D, sizeof *x);
    for (int f = 0; f < D; f++) x[1000 * D + f] = 10;
    int far_first = 0, ok = 0;
    for (uint32_t r = 0; r < 30; r++) {
        int64_t rows[2];
        double pot = -1;
        REQUIRE(rt_kmeans_seed(x, N, D, 2, 5, 9, r, rows, &pot, NULL, 0) == 0);
        far_first += rows[0] == 1000;
        ok += (rows[0] == 1000) != (rows[1] == 1000) && pot == 0;
    }
    CHECK(ok == 30 && far_first <= 2);
    free(x);
}

/* ---- whitening by hand ---- */

static float *gaussian(int64_t n, int64_t F, uint32_t seed) {
    float *x = malloc((size_t)(n * F) * sizeof *x);
    rt_stream s;
    rt_stream_init(&s, 11, RT_DOMAIN_TEST, seed, 0);
    for (int64_t i = 0; i < n * F; i++) x[i] = (float)(rt_stream_normal(&s) * (1 + (double)(i % F) / 4));
    for (int64_t i = 0; i < n; i++) x[i * F] += x[i * F + F - 1];   /* correlated */
    return x;
}

/* max |(1/(n-1)) Y^T Y - I| and max |column mean| of y [n, m] */
static void whitened_moments(const float *y, int64_t n, int64_t m, double *cov_err, double *mean_err) {
    *cov_err = *mean_err = 0;
    for (int64_t a = 0; a < m; a++) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += y[i * m + a];
        *mean_err = fmax(*mean_err, fabs(s / (double)n));
        for (int64_t b = a; b < m; b++) {
            double ab = 0;
            for (int64_t i = 0; i < n; i++) ab += (double)y[i * m + a] * y[i * m + b];
            *cov_err = fmax(*cov_err, fabs(ab / (double)(n - 1) - (a == b)));
        }
    }
}

/* The whitened columns have mean 0 and covariance (divisor n - 1) exactly
   I, up to the float rounding of the output (about 1e-7 relative): a
   divisor n instead would give 1 + 1/n on the diagonal. At F = 512 half
   the components are kept. */
TEST(cluster_whiten_identity_covariance) {
    const int64_t cases[][2] = {{700, 40}, {600, 512}};
    for (int t = 0; t < 2; t++) {
        int64_t n = cases[t][0], F = cases[t][1], m = rt_pca_whiten_dim(F);
        float *x = gaussian(n, F, (uint32_t)t), *y = malloc((size_t)(n * m) * sizeof *y);
        rt_pca_result res;
        char err[128] = "";
        REQUIREF(rt_pca_whiten(x, n, F, 0, false, y, NULL, &res, err, sizeof err) == 0, "%s", err);
        CHECK(res.ncomp == (F < 512 ? F : F / 2) && res.null_comps == 0);
        double ce, me;
        whitened_moments(y, n, m, &ce, &me);
        CHECKF(ce <= 1e-6 && me <= 1e-6, "n %lld F %lld: covariance off I by %.3g, means %.3g", (long long)n,
               (long long)F, ce, me);
        REQUIRE(rt_pca_whiten(x, n, F, 0, true, y, NULL, &res, err, sizeof err) == 0);
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            double ss = 0;
            for (int64_t c = 0; c < m; c++) ss += (double)y[i * m + c] * y[i * m + c];
            worst = fmax(worst, fabs(sqrt(ss) - 1));
        }
        CHECKF(worst <= 1e-6 && res.zero_rows == 0, "rows off unit norm by %.3g", worst);
        free(x), free(y);
    }
}

/* Rank-deficient features and zero rows. With n = 10 rows of 32 features the centred
   data have rank 9: 23 components have no variance and are 0, and the 9
   others whiten the rows to Y with Y Y^T = (n - 1)(I - 11^T/n), so after
   the L2 step every pair of rows has cosine -1/(n - 1). A constant (dead)
   feature costs one component, and the rest is the whitening of the other
   features (compared by the Gram matrix, which signs do not change). */
TEST(cluster_whiten_rank_deficient) {
    char err[128] = "";
    rt_pca_result res;
    {
        enum { N = 10, F = 32 };
        float *x = gaussian(N, F, 5), y[N * F], z[N * F];
        REQUIREF(rt_pca_whiten(x, N, F, 0, false, y, NULL, &res, err, sizeof err) == 0, "%s", err);
        CHECK(res.ncomp == F && res.null_comps == F - (N - 1) && res.zero_rows == 0);
        REQUIRE(rt_pca_whiten(x, N, F, 0, true, z, NULL, &res, err, sizeof err) == 0);
        double g_err = 0, c_err = 0;
        int nonzero_null = 0;
        for (int i = 0; i < N; i++) {
            for (int c = N - 1; c < F; c++) nonzero_null += y[i * F + c] != 0 || z[i * F + c] != 0 || signbit(z[i * F + c]);
            for (int j = 0; j < N; j++) {
                double g = 0, h = 0;
                for (int c = 0; c < F; c++) g += (double)y[i * F + c] * y[j * F + c], h += (double)z[i * F + c] * z[j * F + c];
                g_err = fmax(g_err, fabs(g - (N - 1) * ((i == j) - 1.0 / N)));
                c_err = fmax(c_err, fabs(h - (i == j ? 1 : -1.0 / (N - 1))));
            }
        }
        CHECK(nonzero_null == 0);
        CHECKF(g_err <= 1e-5 && c_err <= 1e-6, "Gram off by %.3g, cosines by %.3g", g_err, c_err);
        free(x);
    }
    {
        enum { N = 300, F = 8 };
        float *x = gaussian(N, F, 6), x7[N * (F - 1)], y[N * F], y7[N * (F - 1)];
        for (int i = 0; i < N; i++) {
            x[i * F + 3] = 0.7f;   /* a dead feature */
            for (int f = 0, g = 0; f < F; f++)
                if (f != 3) x7[i * (F - 1) + g++] = x[i * F + f];
        }
        REQUIRE(rt_pca_whiten(x, N, F, 0, true, y, NULL, &res, err, sizeof err) == 0);
        CHECK(res.null_comps == 1);
        REQUIRE(rt_pca_whiten(x7, N, F - 1, 0, true, y7, NULL, &res, err, sizeof err) == 0);
        CHECK(res.null_comps == 0);
        double worst = 0;
        int nonzero = 0;
        for (int i = 0; i < N; i++) {
            nonzero += y[i * F + F - 1] != 0;   /* the smallest component is the null one */
            for (int j = 0; j < N; j += 7) {
                double g = 0, h = 0;
                for (int c = 0; c < F; c++) g += (double)y[i * F + c] * y[j * F + c];
                for (int c = 0; c < F - 1; c++) h += (double)y7[i * (F - 1) + c] * y7[j * (F - 1) + c];
                worst = fmax(worst, fabs(g - h));
            }
        }
        CHECK(nonzero == 0);
        CHECKF(worst <= 1e-6, "dead feature: Gram off by %.3g", worst);
        free(x);
    }
    {
        /* a row equal to the mean whitens to 0 and stays 0 after the L2 step */
        const float x[] = {-1, 2, 0, 0, 1, -2, 2, 1, -2, -1};
        float y[10];
        REQUIRE(rt_pca_whiten(x, 5, 2, 0, true, y, NULL, &res, err, sizeof err) == 0);
        CHECK(res.null_comps == 0 && res.zero_rows == 1 && y[2] == 0 && y[3] == 0 && !signbit(y[2]) && !signbit(y[3]));
        for (int i = 0; i < 5; i++)
            if (i != 1) CHECK(fabs(hypot(y[2 * i], y[2 * i + 1]) - 1) <= 1e-7);
    }
    {
        /* constant rows: no variance at all; every row is the mean */
        enum { N = 5, F = 3 };
        float x[N * F], y[N * F];
        for (int i = 0; i < N * F; i++) x[i] = (float)(i % F) - 1.5f;
        double eig[F];
        REQUIRE(rt_pca_whiten(x, N, F, 0, true, y, eig, &res, err, sizeof err) == 0);
        CHECK(res.null_comps == F && res.zero_rows == N && res.lambda_max == 0 && eig[0] == 0);
        for (int i = 0; i < N * F; i++) CHECK(y[i] == 0 && !signbit(y[i]));
    }
}

/* ---- threads, streams, arguments ---- */

static float *blobs(int64_t n, int64_t d, int centres, uint32_t seed) {
    float *x = malloc((size_t)(n * d) * sizeof *x);
    rt_stream s;
    rt_stream_init(&s, 21, RT_DOMAIN_TEST, seed, 0);
    for (int64_t i = 0; i < n; i++) {
        int c = (int)rt_stream_below(&s, (uint32_t)centres);
        for (int64_t f = 0; f < d; f++) x[i * d + f] = (float)(3.0 * ((c * 7 + f * 3) % 5) + rt_stream_normal(&s));
    }
    return x;
}

/* 5000 rows and 50 centres: 4 blocks of products (1310 rows), on 1 and 2
   pool threads: the same bits. */
TEST(cluster_kmeans_same_on_pool_threads) {
    enum { N = 5000, D = 16, K = 50 };
    float *x = blobs(N, D, 12, 1);
    int threads = rt_pool_threads(), blas = openblas_get_num_threads();   /* restored after */
    openblas_set_num_threads(1);
    int32_t *labels[2] = {malloc(N * sizeof(int32_t)), malloc(N * sizeof(int32_t))};
    float c[2][K * D];
    rt_kmeans_result res[2];
    bool ok = true;
    rt_kmeans_opts o = rt_kmeans_defaults(K, 4);
    o.n_init = 2;
    for (int t = 0; t < 2 && ok; t++) {
        rt_pool_init(t + 1);
        ok = rt_kmeans(x, N, D, &o, labels[t], c[t], &res[t], NULL, 0) == 0;
    }
    rt_pool_init(threads);
    openblas_set_num_threads(blas);
    CHECK(ok);
    CHECK(memcmp(labels[0], labels[1], N * sizeof(int32_t)) == 0 && memcmp(c[0], c[1], sizeof c[0]) == 0);
    CHECK(res[0].inertia == res[1].inertia && res[0].iterations == res[1].iterations &&
          res[0].restart == res[1].restart && res[0].seed_potential == res[1].seed_potential &&
          res[0].relocations == res[1].relocations);
    free(x), free(labels[0]), free(labels[1]);
}

/* The seed and the stream key the draws; the same ones give the same bits. */
TEST(cluster_kmeans_streams) {
    enum { N = 500, D = 8, K = 6 };
    float *x = blobs(N, D, 6, 2);
    int64_t a[K], b[K], c[K];
    REQUIRE(rt_kmeans_seed(x, N, D, K, 1, 0, 0, a, NULL, NULL, 0) == 0);
    REQUIRE(rt_kmeans_seed(x, N, D, K, 1, 0, 0, b, NULL, NULL, 0) == 0);
    CHECK(memcmp(a, b, sizeof a) == 0);
    REQUIRE(rt_kmeans_seed(x, N, D, K, 1, 1, 0, b, NULL, NULL, 0) == 0);   /* another stream (epoch) */
    REQUIRE(rt_kmeans_seed(x, N, D, K, 2, 0, 0, c, NULL, NULL, 0) == 0);   /* another seed */
    CHECK(memcmp(a, b, sizeof a) != 0 && memcmp(a, c, sizeof a) != 0);
    /* rt_kmeans's restart r is rt_kmeans_seed's restart r */
    int32_t labels[N];
    float cen[K * D];
    rt_kmeans_opts o = rt_kmeans_defaults(K, 1);
    o.n_init = 1;
    rt_kmeans_result res;
    double pot = 0;
    REQUIRE(rt_kmeans(x, N, D, &o, labels, cen, &res, NULL, 0) == 0);
    REQUIRE(rt_kmeans_seed(x, N, D, K, 1, 0, 0, a, &pot, NULL, 0) == 0);
    CHECK(res.seed_potential == pot && res.restart == 0);
    free(x);
}

static bool one_line(const char *err) { return err[0] && !strchr(err, '\n'); }

TEST(cluster_bad_arguments) {
    float x[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, c[12], y[12];
    int32_t l[6];
    char err[256];
    rt_kmeans_opts o = rt_kmeans_defaults(2, 1);
#define FAILS(call, text)                                                                  \
    do {                                                                                   \
        err[0] = 0;                                                                        \
        CHECKF((call) == -1 && one_line(err) && strstr(err, text), "%s: \"%s\"", #call, err); \
    } while (0)
    o.k = 7;
    FAILS(rt_kmeans(x, 6, 2, &o, l, c, NULL, err, sizeof err), "k = 7 clusters for 6 rows");
    o.k = 0;
    FAILS(rt_kmeans(x, 6, 2, &o, l, c, NULL, err, sizeof err), "k = 0");
    o = rt_kmeans_defaults(2, 1);
    o.n_init = 0;
    FAILS(rt_kmeans(x, 6, 2, &o, l, c, NULL, err, sizeof err), "0 restarts");
    o = rt_kmeans_defaults(2, 1);
    o.max_iter = 0;
    FAILS(rt_kmeans(x, 6, 2, &o, l, c, NULL, err, sizeof err), "0 iterations");
    o = rt_kmeans_defaults(2, 1);
    o.tol = NAN;
    FAILS(rt_kmeans(x, 6, 2, &o, l, c, NULL, err, sizeof err), "tolerance");
    o.tol = -1;
    FAILS(rt_kmeans(x, 6, 2, &o, l, c, NULL, err, sizeof err), "tolerance");
    o = rt_kmeans_defaults(2, 1);
    FAILS(rt_kmeans(x, 0, 2, &o, l, c, NULL, err, sizeof err), "0 rows");
    FAILS(rt_kmeans(x, 6, 0, &o, l, c, NULL, err, sizeof err), "0 features");
    FAILS(rt_kmeans(NULL, 6, 2, &o, l, c, NULL, err, sizeof err), "missing");
    FAILS(rt_kmeans(x, 6, 2, &o, NULL, c, NULL, err, sizeof err), "missing");
    FAILS(rt_kmeans(x, 6, 2, NULL, l, c, NULL, err, sizeof err), "no options");
    x[7] = NAN;
    FAILS(rt_kmeans(x, 6, 2, &o, l, c, NULL, err, sizeof err), "row 3 has a non-finite value (column 1)");
    FAILS(rt_pca_whiten(x, 6, 2, 0, true, y, NULL, NULL, err, sizeof err), "row 3");
    x[7] = 7;
    c[0] = INFINITY;
    FAILS(rt_kmeans_lloyd(x, 6, 2, 2, c, 30, 1e-4, l, y, NULL, err, sizeof err), "initial centres");
    FAILS(rt_kmeans_lloyd(x, 6, 2, 9, c, 30, 1e-4, l, y, NULL, err, sizeof err), "k = 9");
    int64_t rows[6];
    FAILS(rt_kmeans_seed(x, 6, 2, -1, 1, 0, 0, rows, NULL, err, sizeof err), "k = -1");
    FAILS(rt_pca_whiten(x, 1, 2, 0, true, y, NULL, NULL, err, sizeof err), "1 rows");
    FAILS(rt_pca_whiten(x, 6, 2, 3, true, y, NULL, NULL, err, sizeof err), "3 components of 2 features");
    FAILS(rt_pca_whiten(x, 2, RT_PCA_MAX_F + 1, 0, true, y, NULL, NULL, err, sizeof err), "features (1 to 4096)");
    FAILS(rt_pca_whiten(x, 6, 2, 0, true, NULL, NULL, NULL, err, sizeof err), "missing");
    /* err may be NULL */
    CHECK(rt_kmeans(x, 0, 2, &o, l, c, NULL, NULL, 0) == -1);
#undef FAILS
}
