/*
** rt_cluster.h: DeepCluster's per-epoch clustering (BASELINES.md section 3,
** steps 3-5): PCA whitening of the features then an L2 normalisation of each
** row (sklearn's PCA(n, whiten=True) as the repo calls it), k-means
** (sklearn's KMeans: greedy k-means++, Lloyd with its stop rule and
** empty-cluster relocation, restarts kept by inertia), the loss weights
** w_c = 1 - n_c/N, and the normalised mutual information that reports how
** pseudolabels relate to classes. The command-line wiring is elsewhere.
**
** Common to all:
**   - Arrays are row-major: features [n, F] float, centres [k, d] float,
**     labels int32.
**   - Errors. Functions return 0, or -1 with a one-line message in err
**     (err may be NULL) and the outputs unspecified: a count out of range
**     (the message says which), a NULL array that is required, a
**     non-finite feature (the message names the row and column), a label
**     out of range, LAPACK failing, or memory running out.
**   - Threads. k-means shares its products out over runtime/rt_pool.h's
**     threads in blocks of rows whose boundaries do not depend on the
**     thread count, and makes every sum in a fixed order, so its results
**     are the same bits for every pool size (as rt_eval.h: give OpenBLAS
**     one thread when the pool has several). Whitening leaves its two
**     products (dsyrk, dgemm) to OpenBLAS's own threads.
*/
#ifndef RT_CLUSTER_H
#define RT_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_rng.h"

/* ---- PCA whitening ---- */

/* The most features whitening takes: the covariance and LAPACK's workspace
   are about 3 F^2 doubles (400 MB at 4096). */
#define RT_PCA_MAX_F 4096

/* The repo's number of components: F if F < 512, else F / 2. */
int64_t rt_pca_whiten_dim(int64_t F);

typedef struct rt_pca_result {
    int64_t ncomp;       /* columns of out */
    int64_t null_comps;  /* kept components without variance, output 0 (below) */
    int64_t zero_rows;   /* rows left 0 by the L2 step (below) */
    double lambda_max;   /* the covariance's largest eigenvalue */
} rt_pca_result;

/* Whitens rows x [n, F] (n >= 2, 1 <= F <= RT_PCA_MAX_F) into out
   [n, ncomp] (ncomp in [1, F], or 0 for rt_pca_whiten_dim(F)):
     1. mu = the column means (in double);
     2. C = sum_i (x_i - mu)(x_i - mu)^T / (n - 1), in double (OpenBLAS
        dsyrk over blocks of 256 rows, so the memory is the input plus
        O(F^2));
     3. C's eigenpairs (LAPACK dsyevd); the ncomp largest eigenvalues
        lambda_1 >= ... >= lambda_ncomp (the variances with the n - 1
        divisor, sklearn's explained_variance_, = s_c^2 / (n - 1) for the
        singular values s_c of the centred data) and their unit
        eigenvectors v_c, each with the sign that makes its entry of
        largest magnitude (the first of equals) positive;
     4. y_ic = (x_i - mu) . v_c / sqrt(lambda_c), in double: no epsilon;
     5. when l2: y_i / ||y_i||_2 (no epsilon);
     6. rounded to float.
   Without the L2 step this is sklearn's PCA(ncomp, whiten=True)
   .fit_transform up to the sign of each component; with it, BASELINES.md's
   preprocess_features. A component's sign is arbitrary (any eigensolver
   may return -v_c); it flips column c of the output, and k-means, whose
   distances are unchanged by flipping a coordinate of every row, gives the
   same clusters (the L2 step does not change that either).
   Components without variance: a kept component whose eigenvalue is at or
   below the rounding level of the covariance, lambda_c <= max(n, F) *
   DBL_EPSILON * lambda_1, is a direction in which the features do not vary
   (n <= F, a dead feature, features that are linear combinations of
   others): its exact eigenvalue is 0 and the computed one is rounding
   noise of either sign. Dividing by its square root would turn that noise
   into a coordinate as large as the real ones (sklearn's output: noise, or
   inf/NaN when the value is exactly 0), so column c is set to 0 for every
   row instead (the projection of the centred data on such a direction is
   0 in exact arithmetic; 0/0 is taken as 0), and counted in
   res->null_comps; the caller decides whether that is worth a warning or
   an error. Full-rank features (every kept lambda_c above that level: the
   usual case) are whitened exactly as sklearn does.
   A zero row: when y_i is exactly 0 (x_i equals the mean, or all
   components are null) the L2 step leaves it 0 (the repo's NumPy division
   gives NaN and then sklearn's KMeans stops on it) and counts it in
   res->zero_rows. Constant features (lambda_1 = 0) give all-zero output.
   eigval (may be NULL) receives lambda_1..lambda_ncomp as computed (also
   for null components); res may be NULL. */
int rt_pca_whiten(const float *x, int64_t n, int64_t F, int64_t ncomp, bool l2, float *out, double *eigval,
                  rt_pca_result *res, char *err, size_t errlen);

/* ---- k-means ---- */

/* BASELINES.md 3.4: KMeans(k, n_init=5, max_iter=30, tol=1e-4). */
#define RT_KMEANS_N_INIT 5
#define RT_KMEANS_MAX_ITER 30
#define RT_KMEANS_TOL 1e-4
/* k-means++'s streams: restart r draws from rt_stream_init(seed,
   RT_CLUSTER_DOMAIN, stream, r). */
#define RT_CLUSTER_DOMAIN RT_DOMAIN_CLUSTER

typedef struct rt_kmeans_opts {
    int k;              /* clusters, 1 <= k <= n */
    int n_init;         /* restarts (>= 1) */
    int max_iter;       /* Lloyd iterations per restart at most (>= 1) */
    double tol;         /* relative stop tolerance (>= 0) */
    uint64_t seed;
    uint32_t stream;    /* keys the streams with the seed: e.g. the epoch */
} rt_kmeans_opts;

/* k clusters with the defaults above, stream 0. */
rt_kmeans_opts rt_kmeans_defaults(int k, uint64_t seed);

typedef struct rt_kmeans_result {
    double inertia;         /* sum over rows of ||x_i - c_label(i)||^2 (exact, in double) */
    int iterations;         /* Lloyd iterations of the kept run */
    int converged;          /* the run stopped by the rule, not by max_iter */
    int relocations;        /* empty clusters relocated during the kept run */
    int empty;              /* clusters that no label names (rare; certain with fewer distinct rows than k) */
    int restart;            /* which restart was kept (0 for rt_kmeans_lloyd) */
    double seed_potential;  /* the kept restart's k-means++ potential (0 for rt_kmeans_lloyd) */
} rt_kmeans_result;

/* k-means of rows x [n, d] (1 <= d, n <= INT_MAX) into labels [n] (in
   [0, k)) and centres [k, d]; res may be NULL. sklearn's algorithm:
   - The data are centred on their column means (computed in double) as
     sklearn does, for precise distances; a float copy of the centred rows
     (n d floats) feeds the products. Centres are kept in double and
     returned in the original coordinates, rounded to float.
   - Seeding (restart r, stream (seed, RT_CLUSTER_DOMAIN, o->stream, r)):
     greedy k-means++. The first centre is a row drawn uniformly
     (rt_stream_below(n)); each next one draws 2 + floor(ln k) candidate
     rows with probability proportional to D^2, the squared distance to the
     nearest centre so far (u = rt_stream_uniform * sum D^2, the first row
     whose running sum of D^2, in row order, exceeds u: a row with D^2 = 0
     is never drawn), and keeps the candidate that gives the lowest
     potential sum_i min(D_i^2, ||x_i - candidate||^2), the first of equals
     (D^2 from the products below). When every D^2 is 0 (no more distinct
     rows) candidates are drawn uniformly.
   - Lloyd, at most max_iter iterations, as sklearn's _kmeans_single_lloyd:
     assign each row to the centre minimising ||c||^2 - 2 x.c (the lower
     index on equal values), then every centre becomes the mean of its rows
     (summed in row order, in double). A cluster left empty is first
     relocated: with E empty clusters, the i-th (in index order) takes the
     row that is i-th farthest from its assigned centre (exact distances,
     largest first, the lower row on equal distances); the row's sum moves
     from its cluster to the empty one and its label stays (a cluster that
     loses its only row keeps a zero sum: its centre becomes the data mean).
     Stop when the labels are those of the previous iteration, or when the
     sum over centres of the squared shift is <= tol * (the mean over
     features of the feature's variance, divisor n); after a stop by the
     shift or by max_iter, the rows are assigned once more to the final
     centres. The inertia is then computed exactly, in double.
   - Restarts: the run with the lowest inertia is kept (the first of
     equals).
   Memory besides the outputs: about 4 n d + (48 + 8 T) n bytes (T = 2 +
   floor(ln k): 21 MB for 60,000 x 64 and k = 100), plus 256 KiB of products
   per pool thread.
   Products: ||c||^2 - 2 x.c from cblas_sgemm on blocks of rows (at most
   64Ki floats of products a block), compared in float; D^2 = ||x||^2 +
   ||c||^2 - 2 x.c with the norms in double, clamped at 0, and summed
   directly in double instead when it is below 1e-3 (||x||^2 + ||c||^2)
   (so a row equal to a centre has D^2 exactly 0). Rows whose best two
   centres are within float rounding (about d 2^-24 of the squared norms)
   of each other may be assigned differently than an exact computation
   would. */
int rt_kmeans(const float *x, int64_t n, int64_t d, const rt_kmeans_opts *o, int32_t *labels, float *centres,
              rt_kmeans_result *res, char *err, size_t errlen);

/* Lloyd alone (as above) from the given initial centres init [k, d]
   (original coordinates), tol relative as above. */
int rt_kmeans_lloyd(const float *x, int64_t n, int64_t d, int k, const float *init, int max_iter, double tol,
                    int32_t *labels, float *centres, rt_kmeans_result *res, char *err, size_t errlen);

/* The k-means++ seeding of restart `restart` alone (as above): rows [k]
   receives the chosen row indices in order, potential (may be NULL) the
   sum over rows of the squared distance to the nearest chosen row. */
int rt_kmeans_seed(const float *x, int64_t n, int64_t d, int k, uint64_t seed, uint32_t stream, uint32_t restart,
                   int64_t *rows, double *potential, char *err, size_t errlen);

/* ---- weights and NMI ---- */

/* DeepCluster's loss weights (BASELINES.md 3.5): w_c = 1 - n_c / n as
   float (computed in double, rounded once), n_c the rows labelled c;
   labels in [0, k), n >= 1. An empty cluster gets 1. */
int rt_cluster_weights(const int32_t *labels, int64_t n, int k, float *w, char *err, size_t errlen);

/* The normalised mutual information of two labelings of n >= 1 items
   (any int32 values), sklearn's normalized_mutual_info_score with the
   arithmetic mean: NMI = MI / ((H(a) + H(b)) / 2), natural logarithms,
   MI = sum_ij (n_ij / n) log(n n_ij / (n_i n_j)) clipped at 0. It is 1 when
   both labelings are constant (one value each), 0 when only one is, and 0
   when MI is 0. Invariant to renaming the labels; symmetric. */
int rt_nmi(const int32_t *a, const int32_t *b, int64_t n, double *nmi, char *err, size_t errlen);

#endif
