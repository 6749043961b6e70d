/*
** rt_eval.h: evaluation of frozen features without training (issue 16):
** the weighted kNN classifier of InstDisc (Wu et al. 2018, the "kNN
** monitor") and retrieval (precision@k and mAP, BASELINES.md section 9).
** Both take features already computed (row-major float [n, F]); the
** command-line wiring is elsewhere.
**
** Common to both:
**   - Normalisation. Every row x becomes x / max(||x||_2, 1e-12), the norm
**     and the division in double, the result rounded to float (PyTorch's
**     F.normalize with eps = 1e-12, more exactly rounded). A zero row stays
**     zero: its cosine similarity with everything is 0.
**   - Similarity. s(q, g) = <q', g'> of the normalised rows, computed in
**     float by OpenBLAS (cblas_sgemm), -0 read as +0.
**   - Order. The gallery (train rows) is ranked for each query by
**     similarity, largest first; equal similarities (exactly equal floats)
**     are ranked by gallery index, the lower index first. This is the only
**     tie rule, used by kNN and retrieval alike. Near-equal similarities
**     are ranked as sgemm rounds them, so a metric on features with many
**     near-ties can differ from an exact computation by a few swaps.
**   - Blocking. The similarities are made for a block of queries at a time
**     against the whole gallery: a block has min(256, max(1, 2^22 / ngallery))
**     queries (16 MiB of floats per thread; 69 queries for a gallery of
**     60,000), so memory stays bounded for any number of queries. The
**     block boundaries do not depend on the thread count.
**   - Threads. Blocks are shared out over runtime/rt_pool.h's threads
**     (rt_pool_init; without it everything runs on the calling thread),
**     each thread calling cblas_sgemm on its own block, as the convolution
**     kernels do: give OpenBLAS one thread (openblas_set_num_threads(1), as
**     the CLI does) when the pool has several. Per-query results are
**     written by query index and summed in query order in double, so the
**     results are the same for every thread count.
**   - Memory. Normalised copies of both feature sets ((nq + ng) * F floats)
**     plus, per thread, one block of similarities (at most 16 MiB, or one
**     row when a row is larger) and, for retrieval, about 9 bytes per
**     gallery item (kNN: 8 bytes per neighbour).
**   - Errors. Functions return 0, or -1 with a one-line message in err
**     (err may be NULL) and nothing in the outputs: F, a count or k below
**     1, F or the train/gallery count above INT_MAX (cblas takes int), a
**     NULL array that is required, a label out of range, a non-finite feature (the message
**     names the row), a temperature not positive and finite, or memory
**     running out.
*/
#ifndef RT_EVAL_H
#define RT_EVAL_H

#include <stddef.h>
#include <stdint.h>

/* InstDisc's parameters: the 200 nearest train images, weight exp(s / 0.07). */
#define RT_KNN_K 200
#define RT_KNN_T 0.07

typedef struct rt_knn_result {
    double top1;        /* correct1 / queries; NaN when test_y is NULL */
    double top5;        /* correct5 / queries; NaN when test_y is NULL */
    int64_t correct1;   /* test rows whose predicted class is their label */
    int64_t correct5;   /* test rows whose label is among the 5 first classes of the vote order */
    int64_t queries;    /* ntest */
    int k;              /* the neighbours that voted: min(k, ntrain) */
} rt_knn_result;

/* Weighted kNN classification of each test row by the train rows.
   For test row q: the k' = min(k, ntrain) first train rows of q's order
   (see above: similarity descending, ties by lower train index) vote, the
   neighbour j for its class train_y[j] with weight exp(s(q, j) / T); the
   score of a class is the sum of its neighbours' weights (summed in double,
   in rank order) and classes with no neighbour score 0. Classes are put in
   the vote order: score descending, equal scores by lower class index.
   The prediction is the first class of the vote order (InstDisc's argmax);
   top-5 counts q when test_y[q] is among the min(5, classes) first.
   The weights are computed as exp((s - s_1) / T), s_1 the similarity of
   q's nearest neighbour: the same scores up to the factor exp(s_1 / T)
   common to all of q's classes, which changes no order, and no overflow
   for any T.
   train_x [ntrain, F] with train_y in [0, classes); test_x [ntest, F];
   test_y (may be NULL: predictions only) in [0, classes); pred (may be
   NULL) receives the ntest predicted classes; res (may be NULL). */
int rt_knn_eval(const float *train_x, const int32_t *train_y, int64_t ntrain, const float *test_x,
                const int32_t *test_y, int64_t ntest, int64_t F, int classes, int k, double temperature,
                int32_t *pred, rt_knn_result *res, char *err, size_t errlen);

/* The cut-offs of precision@k, in rt_retrieval_result's order. */
#define RT_RETRIEVAL_NK 4
#define RT_RETRIEVAL_KS {1, 5, 10, 100}

typedef struct rt_retrieval_result {
    int k[RT_RETRIEVAL_NK];              /* 1, 5, 10, 100 */
    double precision[RT_RETRIEVAL_NK];   /* precision@k[i], the mean over queries */
    double map;                          /* mean average precision over queries */
    int64_t queries;                     /* nquery */
    int64_t no_relevant;                 /* queries whose label no gallery item has */
} rt_retrieval_result;

/* Retrieval: each query row ranks the whole gallery in its order (see
   above); gallery item g is relevant to query q when
   gallery_y[g] == query_y[q] (labels are any int32 values). For query q,
   with rel(r) the relevance of the item at rank r = 1..ng and
   R = the number of relevant items in the gallery:
     precision@k = (1/k') * sum_{r <= k'} rel(r),  k' = min(k, ng)
       (the fraction of the top-k gallery items that are relevant; all ng
       items when the gallery has fewer than k);
     AP = (1/R) * sum_{r: rel(r) = 1} (sum_{r' <= r} rel(r')) / r
       (the precision at the rank of each relevant item, averaged over all
       R relevant items: average precision over the whole ranking);
       AP = 0 when R = 0 (and every precision@k is then 0 too).
   The result holds the means over all queries, those with R = 0 included
   (counted in no_relevant). ap (may be NULL) receives the nquery APs; res
   (may be NULL). The ranks are exact (the order above, on the float
   similarities): rt_eval.c counts items into buckets and sorts only
   inside buckets that hold many relevant items. 10k queries x 60k gallery
   x 64-d take about 3.5 s on 2 cores (tools/bench_eval.c). */
int rt_retrieval_eval(const float *gallery_x, const int32_t *gallery_y, int64_t ngallery, const float *query_x,
                      const int32_t *query_y, int64_t nquery, int64_t F, double *ap, rt_retrieval_result *res,
                      char *err, size_t errlen);

/* The two principal components of rows x [n, F] (F in [2, 4096], n >= 2):
   out [n, 2] gets each centred row's projections on the covariance's two
   largest eigenvectors (in double; LAPACK dsyevd), explained (may be NULL)
   their shares of the total variance. Returns 0, or -1 with a message. */
int rt_pca2(const float *x, int64_t n, int64_t F, double *out, double *explained, char *err, size_t errlen);

/* A PNG map of rows x [n, F] with labels in [0, classes): the two
   principal components, a colour per class, drawn by gnuplot (within 60 s)
   into PNG (atomically), with the data (PNG minus .png plus .dat) and the
   gnuplot script (.gp) beside it. Returns 0, or -1 with a message (no
   gnuplot, a name gnuplot cannot quote, ...). */
int rt_feature_map(const float *x, const int32_t *labels, int64_t n, int64_t F, int classes, const char *title,
                   const char *png, char *err, size_t errlen);

#endif
