/*
** test_kernels.c: the runtime's f32 kernels (runtime/rt_kernels*.c) against
** the IR's double-precision reference kernels (compiler/ir/ops_*.c), op by
** op. Each case builds the reference node with the compiler's own builders
** (so shapes and attributes mean what the code generator will pass), runs
** the reference in double on random data that is exactly representable in
** f32, runs the f32 kernel on the same data, and requires per tensor the
** f32 rule of tolerance.h: max |ours - ref| <= 1e-6 + 1e-4 * max |ref|.
** Outputs are prefilled with NaN so an element a kernel forgets to write
** fails the comparison; scratch is sized exactly by rt_k_conv2d_ws so
** ASan catches a kernel that overruns it.
**
** Shapes cover the real ResNet/Conv-4 layers at small N (C 3/16/32/64, H
** 32/16/8, 3x3 s1/s2, 1x1 s2 projections, the 7x7 s2 p3 stem), odd sizes
** (7x9, strides that leave pixels uncovered, non-square kernels), [N, C]
** BatchNorm with channel counts around the kernels' channel block, pairs for
** every aggregation with K/B that make the roll shift wrap, and max pooling
** and max aggregation on data full of ties.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "rt_kernels.h"
#include "rt_pool.h"
#include "rt_rng.h"
#include "test.h"
#include "tolerance.h"

/* ---- helpers ---- */

/* A tensor held in both precisions: f is what the kernel reads, d (the
   same values) what the reference reads. */
typedef struct { int64_t n; float *f; double *d; } T;

static T t_new(int64_t n) {
    T t = {n, calloc((size_t)(n ? n : 1), sizeof(float)), calloc((size_t)(n ? n : 1), sizeof(double))};
    if (!t.f || !t.d) abort();
    return t;
}

/* uniform in [lo, hi), rounded to f32; quant > 0 rounds to multiples of
   quant instead (to make ties) */
static T t_rand(int64_t n, uint32_t seed, double lo, double hi, double quant) {
    T t = t_new(n);
    rt_stream s;
    rt_stream_init(&s, 1234, RT_DOMAIN_TEST, seed, (uint32_t)n);
    for (int64_t i = 0; i < n; i++) {
        double v = lo + (hi - lo) * rt_stream_uniform(&s);
        if (quant > 0) v = quant * floor(v / quant);
        t.f[i] = (float)v;
        t.d[i] = (double)t.f[i];
    }
    return t;
}

static void t_set(T *t, int64_t i, float v) {
    t->f[i] = v;
    t->d[i] = (double)v;
}

static void t_free(T *t) {
    free(t->f);
    free(t->d);
    t->f = NULL;
    t->d = NULL;
}

static float *out_f32(int64_t n) {
    float *o = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!o) abort();
    for (int64_t i = 0; i < n; i++) o[i] = NAN;
    return o;
}

/* The reference kernel of node n on inputs in (malloc'd result). */
static double *ref_run(const Node *n, const double *const *in) {
    int64_t e = node_numel(n);
    double *out = malloc(sizeof(double) * (size_t)(e ? e : 1));
    if (!out) abort();
    op_table[n->op].fwd(n, in, out);
    return out;
}

/* The f32 rule (tolerance.h) over the finite elements; a NaN matches only
   a NaN. Returns true if close. */
static bool close_to(const char *what, const float *ours, const double *ref, int64_t n) {
    double maxref = 0, maxerr = 0;
    int64_t at = -1, nanbad = -1;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(ref[i]) && fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
    for (int64_t i = 0; i < n; i++) {
        if (isnan(ref[i]) || isnan(ours[i])) {
            if (isnan(ref[i]) != isnan(ours[i]) && nanbad < 0) nanbad = i;
            continue;
        }
        double e = fabs((double)ours[i] - ref[i]);
        if (e > maxerr) maxerr = e, at = i;
    }
    double tol = tol_f32(maxref);
    if (nanbad >= 0) {
        test_fail(__FILE__, __LINE__, "%s: element %lld is %g, reference %g", what, (long long)nanbad,
                  (double)ours[nanbad], ref[nanbad]);
        return false;
    }
    if (maxerr > tol) {
        test_fail(__FILE__, __LINE__, "%s: max error %.3g at %lld (ours %.9g, ref %.9g) > tol %.3g", what, maxerr,
                  (long long)at, (double)ours[at], ref[at], tol);
        return false;
    }
    return true;
}

/* Runs the reference of n on the given inputs and compares with ours. */
static bool check_op(const char *what, const Node *n, const T *const *in, int nin, const float *ours) {
    const double *din[IR_MAX_IN] = {0};
    for (int i = 0; i < nin; i++) din[i] = in[i]->d;
    double *ref = ref_run(n, din);
    bool ok = close_to(what, ours, ref, node_numel(n));
    free(ref);
    return ok;
}

/* ---- convolution ---- */

typedef struct { int64_t N, C, H, W, O, KH, KW, S, P; } ConvCase;

static void conv_case(const ConvCase *k, uint32_t seed) {
    Arena a = {0};
    Graph *g = graph_new(&a);
    int64_t xd[] = {k->N, k->C, k->H, k->W}, wd[] = {k->O, k->C, k->KH, k->KW};
    Node *x = ir_input(g, "x", 4, xd), *w = ir_input(g, "w", 4, wd);
    Node *y = ir_conv2d(g, x, w, (int)k->S, (int)k->P);
    int64_t OH = y->dim[2], OW = y->dim[3];
    Node *dy = ir_input(g, "dy", 4, y->dim);
    Node *dxn = ir_conv2d_dx(g, dy, w, (int)k->S, (int)k->P, k->H, k->W);
    Node *dwn = ir_conv2d_dw(g, dy, x, (int)k->S, (int)k->P, k->KH, k->KW);

    T tx = t_rand(node_numel(x), seed, -1, 1, 0), tw = t_rand(node_numel(w), seed + 1, -0.5, 0.5, 0);
    T tdy = t_rand(node_numel(y), seed + 2, -1, 1, 0);
    int64_t wsn = rt_k_conv2d_ws(k->N, k->C, k->H, k->W, k->O, k->KH, k->KW, k->S, k->P, OH, OW);
    float *ws = wsn ? out_f32(wsn) : NULL;
    char what[160];
    snprintf(what, sizeof what, "conv N%lld C%lld %lldx%lld O%lld k%lldx%lld s%lld p%lld",
             (long long)k->N, (long long)k->C, (long long)k->H, (long long)k->W, (long long)k->O,
             (long long)k->KH, (long long)k->KW, (long long)k->S, (long long)k->P);
    size_t wl = strlen(what);

    float *oy = out_f32(node_numel(y));
    rt_k_conv2d(oy, tx.f, tw.f, k->N, k->C, k->H, k->W, k->O, k->KH, k->KW, k->S, k->P, OH, OW, ws);
    snprintf(what + wl, sizeof what - wl, " fwd");
    check_op(what, y, (const T *[]){&tx, &tw}, 2, oy);

    float *odx = out_f32(node_numel(x));
    rt_k_conv2d_dx(odx, tdy.f, tw.f, k->N, k->C, k->H, k->W, k->O, k->KH, k->KW, k->S, k->P, OH, OW, ws);
    snprintf(what + wl, sizeof what - wl, " dx");
    check_op(what, dxn, (const T *[]){&tdy, &tw}, 2, odx);

    float *odw = out_f32(node_numel(w));
    rt_k_conv2d_dw(odw, tdy.f, tx.f, k->N, k->C, k->H, k->W, k->O, k->KH, k->KW, k->S, k->P, OH, OW, ws);
    snprintf(what + wl, sizeof what - wl, " dw");
    check_op(what, dwn, (const T *[]){&tdy, &tx}, 2, odw);

    free(oy); free(odx); free(odw); free(ws);
    t_free(&tx); t_free(&tw); t_free(&tdy);
    arena_free(&a);
}

static const ConvCase conv_cases[] = {
    /* ResNet-32 (CIFAR): stem, the three stages, the stride-2 entries and
       their 1x1 stride-2 projections */
    {2, 3, 32, 32, 16, 3, 3, 1, 1},
    {2, 16, 32, 32, 16, 3, 3, 1, 1},
    {2, 16, 32, 32, 32, 3, 3, 2, 1},
    {2, 16, 32, 32, 32, 1, 1, 2, 0},
    {2, 32, 16, 16, 32, 3, 3, 1, 1},
    {2, 32, 16, 16, 64, 3, 3, 2, 1},
    {2, 32, 16, 16, 64, 1, 1, 2, 0},
    {2, 64, 8, 8, 64, 3, 3, 1, 1},
    /* 1x1 stride 1: the no-im2col path */
    {2, 64, 8, 8, 32, 1, 1, 1, 0},
    {3, 5, 7, 9, 4, 1, 1, 1, 0},
    {2, 4, 7, 9, 8, 1, 1, 1, 0},
    /* Conv-4 blocks (3x3 s1 p1, 32 -> 16 -> 8 -> 4) */
    {2, 3, 32, 32, 32, 3, 3, 1, 1},
    {2, 32, 8, 8, 32, 3, 3, 1, 1},
    {2, 32, 4, 4, 32, 3, 3, 1, 1},
    /* ImageNet-style 7x7 s2 p3 stem */
    {2, 3, 32, 32, 16, 7, 7, 2, 3},
    /* odd sizes: 7x9, strides leaving right/bottom pixels uncovered,
       stride larger than the kernel, non-square kernels, padding 2 */
    {3, 5, 7, 9, 6, 3, 3, 1, 1},
    {3, 5, 7, 9, 4, 3, 3, 2, 0},
    {2, 4, 9, 7, 3, 2, 2, 3, 1},
    {2, 3, 7, 9, 5, 3, 1, 1, 0},
    {2, 3, 7, 9, 5, 1, 3, 2, 1},
    {1, 2, 5, 6, 3, 5, 5, 1, 2},
    {1, 1, 1, 1, 1, 1, 1, 1, 0},
};

TEST(kernel_conv2d) {
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) conv_case(&conv_cases[i], (uint32_t)(10 * i));
}

/* The *_part entry points split over images give the whole-batch result
   (dw_part: partial sums that add up). */
TEST(kernel_conv2d_parts) {
    const int64_t N = 5, C = 6, H = 9, W = 7, O = 4, KH = 3, KW = 3, S = 2, P = 1;
    const int64_t OH = (H + 2 * P - KH) / S + 1, OW = (W + 2 * P - KW) / S + 1;
    T x = t_rand(N * C * H * W, 1, -1, 1, 0), w = t_rand(O * C * KH * KW, 2, -1, 1, 0);
    T dy = t_rand(N * O * OH * OW, 3, -1, 1, 0);
    int64_t wsn = rt_k_conv2d_ws(N, C, H, W, O, KH, KW, S, P, OH, OW);
    float *ws = out_f32(wsn);
    float *y1 = out_f32(N * O * OH * OW), *y2 = out_f32(N * O * OH * OW);
    float *dx1 = out_f32(N * C * H * W), *dx2 = out_f32(N * C * H * W);
    float *dw1 = out_f32(O * C * KH * KW), *dwa = out_f32(O * C * KH * KW), *dwb = out_f32(O * C * KH * KW);
    rt_k_conv2d(y1, x.f, w.f, N, C, H, W, O, KH, KW, S, P, OH, OW, ws);
    rt_k_conv2d_part(y2, x.f, w.f, N, C, H, W, O, KH, KW, S, P, OH, OW, 0, 2, ws);
    rt_k_conv2d_part(y2, x.f, w.f, N, C, H, W, O, KH, KW, S, P, OH, OW, 2, N, ws);
    CHECK(memcmp(y1, y2, sizeof(float) * (size_t)(N * O * OH * OW)) == 0);
    rt_k_conv2d_dx(dx1, dy.f, w.f, N, C, H, W, O, KH, KW, S, P, OH, OW, ws);
    rt_k_conv2d_dx_part(dx2, dy.f, w.f, N, C, H, W, O, KH, KW, S, P, OH, OW, 3, N, ws);
    rt_k_conv2d_dx_part(dx2, dy.f, w.f, N, C, H, W, O, KH, KW, S, P, OH, OW, 0, 3, ws);
    CHECK(memcmp(dx1, dx2, sizeof(float) * (size_t)(N * C * H * W)) == 0);
    rt_k_conv2d_dw(dw1, dy.f, x.f, N, C, H, W, O, KH, KW, S, P, OH, OW, ws);
    rt_k_conv2d_dw_part(dwa, dy.f, x.f, N, C, H, W, O, KH, KW, S, P, OH, OW, 0, 2, ws);
    rt_k_conv2d_dw_part(dwb, dy.f, x.f, N, C, H, W, O, KH, KW, S, P, OH, OW, 2, N, ws);
    double worst = 0, maxref = 0;   /* the f32 rule, the whole dw as the reference */
    for (int64_t i = 0; i < O * C * KH * KW; i++) {
        double e = fabs((double)dwa[i] + dwb[i] - dw1[i]);
        if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        maxref = fmax(maxref, fabs((double)dw1[i]));
    }
    CHECKF(worst <= tol_f32(maxref), "dw parts differ from the whole by %g (allowed %.3g)", worst, tol_f32(maxref));
    /* an empty range gives a zero partial sum */
    rt_k_conv2d_dw_part(dwa, dy.f, x.f, N, C, H, W, O, KH, KW, S, P, OH, OW, 2, 2, ws);
    CHECK(dwa[0] == 0 && dwa[O * C * KH * KW - 1] == 0);
    free(ws); free(y1); free(y2); free(dx1); free(dx2); free(dw1); free(dwa); free(dwb);
    t_free(&x); t_free(&w); t_free(&dy);
}

TEST(kernel_conv2d_ws) {
    /* one image's column matrix (none for a pointwise convolution), plus
       dw's transposed accumulator when C*KH*KW >= O, plus with stride 2
       one channel's two half-width planes; independent of N */
    CHECK(rt_k_conv2d_ws(256, 16, 32, 32, 16, 3, 3, 1, 1, 32, 32) == 144 * 1024 + 144 * 16);
    CHECK(rt_k_conv2d_ws(1, 16, 32, 32, 16, 3, 3, 1, 1, 32, 32) == 144 * 1024 + 144 * 16);
    CHECK(rt_k_conv2d_ws(256, 16, 32, 32, 32, 1, 1, 2, 0, 16, 16) == 16 * 256 + 32 * 32);
    CHECK(rt_k_conv2d_ws(256, 16, 32, 32, 32, 3, 3, 2, 1, 16, 16) == 144 * 256 + 144 * 32 + 32 * 32);
    CHECK(rt_k_conv2d_ws(256, 3, 7, 7, 8, 3, 3, 2, 1, 4, 4) == 27 * 16 + 27 * 8 + 2 * 7 * 4);
    CHECK(rt_k_conv2d_ws(256, 64, 8, 8, 64, 1, 1, 1, 0, 8, 8) == 64 * 64);
    CHECK(rt_k_conv2d_ws(256, 16, 8, 8, 64, 1, 1, 1, 0, 8, 8) == 0);
}

/* ---- linear ---- */

/* On one thread and on two: the GEMMs split C's rows over the pool (the
   relation head's first layer and score at K=8, and an uneven split, are split). */
TEST(kernel_linear) {
    static const int64_t cases[][3] = {{4, 64, 10}, {5, 7, 3}, {96, 256, 1}, {96, 128, 256}, {1, 1, 1}, {3, 1, 5},
                                       {512, 64, 512}, {333, 100, 130}, {3584, 256, 1}};
    for (size_t c = 0; c < 2 * sizeof cases / sizeof cases[0]; c++) {
        int threads = (int)(c / (sizeof cases / sizeof cases[0])) + 1;
        rt_pool_init(threads);
        int64_t N = cases[c % (sizeof cases / sizeof cases[0])][0], I = cases[c % (sizeof cases / sizeof cases[0])][1];
        int64_t O = cases[c % (sizeof cases / sizeof cases[0])][2];
        Arena a = {0};
        Graph *g = graph_new(&a);
        int64_t xd[] = {N, I}, wd[] = {O, I}, yd[] = {N, O};
        Node *x = ir_input(g, "x", 2, xd), *w = ir_input(g, "w", 2, wd), *dy = ir_input(g, "dy", 2, yd);
        Node *y = ir_linear(g, x, w), *dxn = ir_linear_dx(g, dy, w), *dwn = ir_linear_dw(g, dy, x);
        T tx = t_rand(N * I, (uint32_t)c, -1, 1, 0), tw = t_rand(O * I, 100 + (uint32_t)c, -1, 1, 0);
        T tdy = t_rand(N * O, 200 + (uint32_t)c, -1, 1, 0);
        float *oy = out_f32(N * O), *odx = out_f32(N * I), *odw = out_f32(O * I);
        char what[96];
        rt_k_linear(oy, tx.f, tw.f, N, I, O);
        snprintf(what, sizeof what, "linear %lldx%lld->%lld fwd, %d thread(s)", (long long)N, (long long)I, (long long)O, threads);
        check_op(what, y, (const T *[]){&tx, &tw}, 2, oy);
        rt_k_linear_dx(odx, tdy.f, tw.f, N, I, O);
        snprintf(what, sizeof what, "linear %lldx%lld->%lld dx, %d thread(s)", (long long)N, (long long)I, (long long)O, threads);
        check_op(what, dxn, (const T *[]){&tdy, &tw}, 2, odx);
        rt_k_linear_dw(odw, tdy.f, tx.f, N, I, O);
        snprintf(what, sizeof what, "linear %lldx%lld->%lld dw, %d thread(s)", (long long)N, (long long)I, (long long)O, threads);
        check_op(what, dwn, (const T *[]){&tdy, &tx}, 2, odw);
        free(oy); free(odx); free(odw);
        t_free(&tx); t_free(&tw); t_free(&tdy);
        arena_free(&a);
    }
    rt_pool_init(1);
}

/* ---- elementwise and broadcast ---- */

TEST(kernel_bias_add_chan_sum) {
    /* [N, C, S] views: S == 1 is the [N, C] path; C 70 crosses the channel block */
    static const int64_t cases[][4] = {{4, 16, 32, 32}, {3, 5, 7, 9}, {33, 70, 1, 1}, {2, 130, 1, 1}, {1, 1, 1, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t N = cases[c][0], C = cases[c][1], S = cases[c][2] * cases[c][3];
        Arena a = {0};
        Graph *g = graph_new(&a);
        int64_t xd[] = {N, C, cases[c][2], cases[c][3]}, bd[] = {C};
        int rank = cases[c][2] == 1 && cases[c][3] == 1 ? 2 : 4;
        Node *x = ir_input(g, "x", rank, xd), *b = ir_input(g, "b", 1, bd);
        Node *y = ir_bias_add(g, x, b), *cs = ir_chan_sum(g, x);
        T tx = t_rand(N * C * S, (uint32_t)c, -1, 1, 0), tb = t_rand(C, 50 + (uint32_t)c, -1, 1, 0);
        float *oy = out_f32(N * C * S), *ocs = out_f32(C);
        rt_k_bias_add(oy, tx.f, tb.f, N, C, S);
        check_op("bias_add", y, (const T *[]){&tx, &tb}, 2, oy);
        rt_k_chan_sum(ocs, tx.f, N, C, S);
        check_op("chan_sum", cs, (const T *[]){&tx}, 1, ocs);
        free(oy); free(ocs);
        t_free(&tx); t_free(&tb);
        arena_free(&a);
    }
}

TEST(kernel_elementwise) {
    const int64_t n = 1037;   /* not a multiple of any vector width */
    Arena a = {0};
    Graph *g = graph_new(&a);
    int64_t d[] = {n};
    Node *x = ir_input(g, "x", 1, d), *x2 = ir_input(g, "x2", 1, d), *dy = ir_input(g, "dy", 1, d);
    /* quantised data has exact zeros: relu's and leaky relu's masks at 0 */
    T tx = t_rand(n, 1, -2, 2, 0.25), tx2 = t_rand(n, 2, -1, 1, 0), tdy = t_rand(n, 3, -1, 1, 0);
    float *o = out_f32(n);
    const double slope = 0.01f;   /* the value the kernel gets, as f32 */

    Node *r = ir_relu(g, x);
    rt_k_relu(o, tx.f, n);
    check_op("relu", r, (const T *[]){&tx}, 1, o);
    /* relu_back is masked by the relu's output: feed it y = relu(x) */
    T ty = t_new(n);
    for (int64_t i = 0; i < n; i++) t_set(&ty, i, tx.f[i] > 0 ? tx.f[i] : 0);
    Node *yn = ir_input(g, "y", 1, d);
    rt_k_relu_back(o, tdy.f, ty.f, n);
    check_op("relu_back", ir_relu_back(g, dy, yn), (const T *[]){&tdy, &ty}, 2, o);

    rt_k_leaky_relu(o, tx.f, n, (float)slope);
    check_op("leaky_relu", ir_leaky_relu(g, x, slope), (const T *[]){&tx}, 1, o);
    rt_k_leaky_relu_back(o, tdy.f, tx.f, n, (float)slope);
    check_op("leaky_relu_back", ir_leaky_relu_back(g, dy, x, slope), (const T *[]){&tdy, &tx}, 2, o);

    rt_k_add(o, tx.f, tx2.f, n);
    check_op("add", ir_add(g, x, x2), (const T *[]){&tx, &tx2}, 2, o);

    int64_t rd[] = {1, 17, 61};
    Node *rs = ir_reshape(g, x, 3, rd);
    for (int64_t i = 0; i < n; i++) o[i] = NAN;
    rt_k_copy(o, tx.f, n);
    check_op("reshape (copy)", rs, (const T *[]){&tx}, 1, o);

    int64_t fd[] = {n};
    rt_k_fill(o, n, -0.375f);
    check_op("fill", ir_fill(g, 1, fd, -0.375), NULL, 0, o);

    free(o);
    t_free(&tx); t_free(&tx2); t_free(&tdy); t_free(&ty);
    arena_free(&a);
}

/* ---- pooling ---- */

typedef struct { int64_t N, C, H, W, K, S, P; } PoolCase;

static void pool_case(const PoolCase *k, uint32_t seed, bool nan) {
    Arena a = {0};
    Graph *g = graph_new(&a);
    int64_t xd[] = {k->N, k->C, k->H, k->W};
    Node *x = ir_input(g, "x", 4, xd);
    Node *av = ir_avgpool2d(g, x, (int)k->K, (int)k->S, (int)k->P);
    Node *mx = ir_maxpool2d(g, x, (int)k->K, (int)k->S, (int)k->P);
    int64_t NC = k->N * k->C, OH = av->dim[2], OW = av->dim[3];
    Node *dy = ir_input(g, "dy", 4, av->dim);
    Node *avb = ir_avgpool2d_back(g, dy, x, (int)k->K, (int)k->S, (int)k->P);
    Node *mxb = ir_maxpool2d_back(g, dy, x, (int)k->K, (int)k->S, (int)k->P);
    /* values on a coarse grid: most windows hold ties for the maximum, and
       all-negative windows check that padding is never the maximum */
    T tx = t_rand(node_numel(x), seed, -3, 1, 1.0), tdy = t_rand(node_numel(av), seed + 1, -1, 1, 0);
    if (nan) {
        t_set(&tx, 3, NAN);
        t_set(&tx, k->W + 1, NAN);
        t_set(&tx, 2 * k->W, -INFINITY);
    }
    char what[128];
    snprintf(what, sizeof what, "pool %lldx%lld k%lld s%lld p%lld%s", (long long)k->H, (long long)k->W,
             (long long)k->K, (long long)k->S, (long long)k->P, nan ? " nan" : "");
    size_t wl = strlen(what);
    float *oy = out_f32(node_numel(av)), *odx = out_f32(node_numel(x));
    if (!nan) {
        rt_k_avgpool2d(oy, tx.f, NC, k->H, k->W, k->K, k->S, k->P, OH, OW);
        snprintf(what + wl, sizeof what - wl, " avg");
        check_op(what, av, (const T *[]){&tx}, 1, oy);
        rt_k_avgpool2d_back(odx, tdy.f, NC, k->H, k->W, k->K, k->S, k->P, OH, OW);
        snprintf(what + wl, sizeof what - wl, " avg back");
        check_op(what, avb, (const T *[]){&tdy}, 1, odx);
    }
    rt_k_maxpool2d(oy, tx.f, NC, k->H, k->W, k->K, k->S, k->P, OH, OW);
    snprintf(what + wl, sizeof what - wl, " max");
    check_op(what, mx, (const T *[]){&tx}, 1, oy);
    rt_k_maxpool2d_back(odx, tdy.f, tx.f, NC, k->H, k->W, k->K, k->S, k->P, OH, OW);
    snprintf(what + wl, sizeof what - wl, " max back");
    check_op(what, mxb, (const T *[]){&tdy, &tx}, 2, odx);
    free(oy); free(odx);
    t_free(&tx); t_free(&tdy);
    arena_free(&a);
}

TEST(kernel_pool) {
    static const PoolCase cases[] = {
        {2, 16, 32, 32, 2, 2, 0}, {2, 3, 7, 9, 2, 2, 0}, {2, 4, 8, 8, 3, 2, 1}, {1, 3, 7, 9, 3, 1, 1},
        {1, 2, 9, 7, 3, 3, 0},    {1, 2, 6, 6, 4, 2, 2}, {2, 2, 5, 5, 1, 2, 0}, {1, 1, 4, 4, 4, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) pool_case(&cases[i], (uint32_t)(7 * i), false);
    pool_case(&cases[2], 99, true);
    pool_case(&cases[0], 98, true);
}

TEST(kernel_global_avgpool) {
    static const int64_t cases[][4] = {{4, 64, 8, 8}, {3, 5, 7, 9}, {2, 3, 1, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        Arena a = {0};
        Graph *g = graph_new(&a);
        Node *x = ir_input(g, "x", 4, cases[c]);
        Node *y = ir_global_avgpool(g, x);
        Node *dy = ir_input(g, "dy", 2, y->dim);
        Node *b = ir_global_avgpool_back(g, dy, cases[c][2], cases[c][3]);
        int64_t NC = cases[c][0] * cases[c][1], S = cases[c][2] * cases[c][3];
        T tx = t_rand(NC * S, (uint32_t)c, -1, 3, 0), tdy = t_rand(NC, 10 + (uint32_t)c, -1, 1, 0);
        float *oy = out_f32(NC), *odx = out_f32(NC * S);
        rt_k_global_avgpool(oy, tx.f, NC, S);
        check_op("global_avgpool", y, (const T *[]){&tx}, 1, oy);
        rt_k_global_avgpool_back(odx, tdy.f, NC, S);
        check_op("global_avgpool_back", b, (const T *[]){&tdy}, 1, odx);
        free(oy); free(odx);
        t_free(&tx); t_free(&tdy);
        arena_free(&a);
    }
}

/* ---- batch normalisation ---- */

TEST(kernel_batchnorm) {
    /* N, C, H, W (H = W = 0: a [N, C] input); offset shifts the data's mean */
    static const struct { int64_t N, C, H, W; double offset; } cases[] = {
        {4, 16, 32, 32, 0}, {2, 64, 8, 8, 0.5}, {7, 3, 7, 9, 0}, {3, 5, 1, 1, 0},
        {33, 70, 0, 0, 0},  {5, 130, 0, 0, 1}, {2, 5, 0, 0, 0},  {4, 8, 4, 4, 100},
    };
    const double eps = 1e-5f, momentum = 0.1f;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t N = cases[c].N, C = cases[c].C, S = cases[c].H ? cases[c].H * cases[c].W : 1;
        Arena a = {0};
        Graph *g = graph_new(&a);
        int64_t xd[] = {N, C, cases[c].H, cases[c].W}, cd[] = {C}, sd[] = {2, C};
        int rank = cases[c].H ? 4 : 2;
        Node *x = ir_input(g, "x", rank, xd), *dy = ir_input(g, "dy", rank, xd);
        Node *gam = ir_input(g, "gamma", 1, cd), *bet = ir_input(g, "beta", 1, cd), *old = ir_input(g, "old", 1, cd);
        Node *mean = ir_input(g, "mean", 1, cd), *var = ir_input(g, "var", 1, cd);
        Node *stn = ir_bn_stats(g, x);
        /* the reference's other kernels read the stats as an input; a leaf
           of the same shape stands for them */
        Node *st = ir_input(g, "st", 2, sd);
        Node *tr = ir_bn_train(g, x, st, gam, bet, eps);
        Node *trdx = ir_bn_train_dx(g, dy, x, st, gam, eps);
        Node *dg = ir_bn_dgamma(g, dy, x, st, eps);
        Node *ev = ir_bn_eval(g, x, mean, var, gam, bet, eps);
        Node *run0 = ir_bn_running(g, old, stn, 0, momentum), *run1 = ir_bn_running(g, old, stn, 1, momentum);
        uint32_t s0 = 20 * (uint32_t)c;
        double o = cases[c].offset;
        T tx = t_rand(N * C * S, s0, o - 1, o + 2, 0), tdy = t_rand(N * C * S, s0 + 1, -1, 1, 0);
        T tg = t_rand(C, s0 + 2, 0.5, 1.5, 0), tb = t_rand(C, s0 + 3, -0.5, 0.5, 0);
        T tmean = t_rand(C, s0 + 4, -0.5, 0.5, 0), tvar = t_rand(C, s0 + 5, 0.2, 2, 0);
        T told = t_rand(C, s0 + 6, 0, 1, 0);
        char what[96];
        snprintf(what, sizeof what, "bn N%lld C%lld S%lld", (long long)N, (long long)C, (long long)S);
        size_t wl = strlen(what);

        float *ost = out_f32(2 * C);
        rt_k_bn_stats(ost, tx.f, N, C, S);
        snprintf(what + wl, sizeof what - wl, " stats");
        check_op(what, stn, (const T *[]){&tx}, 1, ost);
        /* the f32 kernels below all read the same stats: ours, rounded */
        T tst = t_new(2 * C);
        for (int64_t i = 0; i < 2 * C; i++) t_set(&tst, i, ost[i]);

        float *oy = out_f32(N * C * S), *oc = out_f32(C);
        rt_k_bn_train(oy, tx.f, tst.f, tg.f, tb.f, N, C, S, (float)eps);
        snprintf(what + wl, sizeof what - wl, " train");
        check_op(what, tr, (const T *[]){&tx, &tst, &tg, &tb}, 4, oy);
        rt_k_bn_train_dx(oy, tdy.f, tx.f, tst.f, tg.f, N, C, S, (float)eps);
        snprintf(what + wl, sizeof what - wl, " train_dx");
        check_op(what, trdx, (const T *[]){&tdy, &tx, &tst, &tg}, 4, oy);
        rt_k_bn_dgamma(oc, tdy.f, tx.f, tst.f, N, C, S, (float)eps);
        snprintf(what + wl, sizeof what - wl, " dgamma");
        check_op(what, dg, (const T *[]){&tdy, &tx, &tst}, 3, oc);
        rt_k_bn_eval(oy, tx.f, tmean.f, tvar.f, tg.f, tb.f, N, C, S, (float)eps);
        snprintf(what + wl, sizeof what - wl, " eval");
        check_op(what, ev, (const T *[]){&tx, &tmean, &tvar, &tg, &tb}, 5, oy);
        rt_k_bn_running(oc, told.f, tst.f, C, 0, N * S, (float)momentum);
        snprintf(what + wl, sizeof what - wl, " running mean");
        check_op(what, run0, (const T *[]){&told, &tst}, 2, oc);
        /* in place, as a state update */
        float *inplace = out_f32(C);
        memcpy(inplace, told.f, sizeof(float) * (size_t)C);
        rt_k_bn_running(inplace, inplace, tst.f, C, 1, N * S, (float)momentum);
        snprintf(what + wl, sizeof what - wl, " running var (in place)");
        check_op(what, run1, (const T *[]){&told, &tst}, 2, inplace);

        free(ost); free(oy); free(oc); free(inplace);
        t_free(&tx); t_free(&tdy); t_free(&tg); t_free(&tb); t_free(&tmean); t_free(&tvar); t_free(&told);
        t_free(&tst);
        arena_free(&a);
    }
}

/* The runtime kernels the pool splits, on two threads: bn_stats of [N, C]
   values by its 16 parts of rows (a thread takes at least 64K values:
   these sizes give both threads parts),
   across the 512-channel segment, with a mean far from 0; focal_back by
   ranges of pairs */
TEST(kernel_pool_split_bn_stats_focal_back) {
    static const struct { int64_t N, C; double offset; } cases[] = {{1000, 300, 0}, {700, 600, 50}, {3584, 256, 0}};
    rt_pool_init(2);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t N = cases[c].N, C = cases[c].C;
        Arena a = {0};
        Graph *g = graph_new(&a);
        int64_t xd[] = {N, C};
        Node *stn = ir_bn_stats(g, ir_input(g, "x", 2, xd));
        T tx = t_rand(N * C, 900 + (uint32_t)c, cases[c].offset - 1, cases[c].offset + 2, 0);
        float *ost = out_f32(2 * C);
        rt_k_bn_stats(ost, tx.f, N, C, 1);
        char what[64];
        snprintf(what, sizeof what, "bn_stats N%lld C%lld, 2 threads", (long long)N, (long long)C);
        check_op(what, stn, (const T *[]){&tx}, 1, ost);
        free(ost);
        t_free(&tx);
        arena_free(&a);
    }
    /* focal_back over pairs: parts of at least 1024 */
    {
        const int64_t P = 5000;
        Arena a = {0};
        Graph *g = graph_new(&a);
        int64_t one = 1, pd = P;
        Node *dl = ir_input(g, "dl", 1, &one), *z = ir_input(g, "z", 1, &pd), *y = ir_input(g, "y", 1, &pd);
        Node *fb = ir_focal_back(g, dl, z, y, 2.0, 0.5);
        T tdl = t_rand(1, 950, 0.5, 1.5, 0), tz = t_rand(P, 951, -4, 4, 0), ty = t_rand(P, 952, 0, 2, 1);
        float *o = out_f32(P);
        rt_k_focal_back(o, tdl.f, tz.f, ty.f, P, 2.0f, 0.5f);
        check_op("focal_back P5000, 2 threads", fb, (const T *[]){&tdl, &tz, &ty}, 3, o);
        free(o);
        t_free(&tdl), t_free(&tz), t_free(&ty);
        arena_free(&a);
    }
    rt_pool_init(1);
}

/* ---- relational reasoning ---- */

TEST(kernel_pairs) {
    /* K, B: B = 1, 2, 3 with K = 4 or 5 make the roll shift s wrap back to
       1 (it would reach B); K = 2 has a single (k1, k2) */
    static const int64_t kb[][2] = {{2, 4}, {3, 3}, {4, 2}, {4, 3}, {5, 3}, {4, 1}, {4, 8}, {5, 4}};
    static const int64_t dims[] = {1, 5, 16};
    for (size_t i = 0; i < sizeof kb / sizeof kb[0]; i++)
        for (size_t j = 0; j < sizeof dims / sizeof dims[0]; j++)
            for (int agg = 0; agg < 4; agg++) {
                int64_t K = kb[i][0], B = kb[i][1], D = dims[j];
                Arena a = {0};
                Graph *g = graph_new(&a);
                int64_t fd[] = {K * B, D};
                Node *f = ir_input(g, "F", 2, fd);
                Node *p = ir_pairs(g, f, (int)K, agg);
                Node *dp = ir_input(g, "dP", 2, p->dim);
                Node *pb = ir_pairs_back(g, dp, f, (int)K, agg);
                /* coarse values: max aggregation meets many ties */
                uint32_t s = (uint32_t)(100 * i + 10 * j) + (uint32_t)agg;
                T tf = t_rand(K * B * D, s, -2, 2, 0.5), tdp = t_rand(node_numel(p), s + 7, -1, 1, 0);
                float *op = out_f32(node_numel(p)), *odf = out_f32(K * B * D);
                char what[96];
                snprintf(what, sizeof what, "pairs K%lld B%lld D%lld agg%d", (long long)K, (long long)B,
                         (long long)D, agg);
                rt_k_pairs(op, tf.f, K, B, D, agg);
                check_op(what, p, (const T *[]){&tf}, 1, op);
                rt_k_pairs_back(odf, tdp.f, tf.f, K, B, D, agg);
                snprintf(what, sizeof what, "pairs_back K%lld B%lld D%lld agg%d", (long long)K, (long long)B,
                         (long long)D, agg);
                check_op(what, pb, (const T *[]){&tdp, &tf}, 2, odf);
                free(op); free(odf);
                t_free(&tf); t_free(&tdp);
                arena_free(&a);
            }
}

/* pair_halves and its backward (passes/factor.c's pairs), H = 1, 5, 16 */
/* pair_halves on one thread and on two (the pool splits views and blocks
   of pairs): each against the interpreter, and the two bit for bit equal */
TEST(kernel_pair_halves) {
    static const int64_t kb[][2] = {{2, 4}, {3, 3}, {4, 2}, {4, 3}, {5, 3}, {4, 1}, {4, 8}, {5, 4}, {8, 64}};
    static const int64_t dims[] = {1, 5, 16};
    for (size_t i = 0; i < sizeof kb / sizeof kb[0]; i++)
        for (size_t j = 0; j < sizeof dims / sizeof dims[0]; j++) {
            int64_t K = kb[i][0], B = kb[i][1], H = dims[j];
            Arena a = {0};
            Graph *g = graph_new(&a);
            int64_t xd[] = {K * B, 2 * H};
            Node *x = ir_input(g, "X", 2, xd);
            Node *p = ir_pair_halves(g, x, (int)K);
            Node *dp = ir_input(g, "dY", 2, p->dim);
            int64_t ia[] = {K};
            Node *pb = ir_make(g, OP_PAIR_HALVES_BACK, &dp, 1, ia, 1, NULL, 0);
            uint32_t s = (uint32_t)(100 * i + 10 * j) + 500;
            T tx = t_rand(K * B * 2 * H, s, -2, 2, 0), tdp = t_rand(node_numel(p), s + 7, -1, 1, 0);
            float *op[2], *odx[2], *ws = out_f32(K * B * 2 * H);
            for (int t = 0; t < 2; t++) {
                rt_pool_init(t + 1);
                op[t] = out_f32(node_numel(p)), odx[t] = out_f32(K * B * 2 * H);
                char what[96];
                snprintf(what, sizeof what, "pair_halves K%lld B%lld H%lld, %d thread(s)", (long long)K, (long long)B, (long long)H, t + 1);
                rt_k_pair_halves(op[t], tx.f, K, B, H, ws, NULL);
                check_op(what, p, (const T *[]){&tx}, 1, op[t]);
                rt_k_pair_halves_back(odx[t], tdp.f, K, B, H, ws);
                snprintf(what, sizeof what, "pair_halves_back K%lld B%lld H%lld, %d thread(s)", (long long)K, (long long)B, (long long)H, t + 1);
                check_op(what, pb, (const T *[]){&tdp}, 1, odx[t]);
            }
            CHECK(memcmp(op[0], op[1], sizeof(float) * (size_t)node_numel(p)) == 0);
            CHECK(memcmp(odx[0], odx[1], sizeof(float) * (size_t)(K * B * 2 * H)) == 0);
            for (int t = 0; t < 2; t++) free(op[t]), free(odx[t]);
            free(ws);
            t_free(&tx); t_free(&tdp);
            arena_free(&a);
        }
    rt_pool_init(1);
}

/* max aggregation with NaN features: the forward takes b unless a >= b,
   the backward splits the gradient when neither is greater */
TEST(kernel_pairs_nan) {
    const int64_t K = 3, B = 4, D = 9;
    Arena a = {0};
    Graph *g = graph_new(&a);
    int64_t fd[] = {K * B, D};
    Node *f = ir_input(g, "F", 2, fd);
    Node *p = ir_pairs(g, f, (int)K, RT_AGG_MAX);
    Node *dp = ir_input(g, "dP", 2, p->dim);
    Node *pb = ir_pairs_back(g, dp, f, (int)K, RT_AGG_MAX);
    T tf = t_rand(K * B * D, 5, -2, 2, 0.5), tdp = t_rand(node_numel(p), 6, -1, 1, 0);
    for (int64_t i = 0; i < K * B * D; i += 5) t_set(&tf, i, NAN);
    float *op = out_f32(node_numel(p)), *odf = out_f32(K * B * D);
    rt_k_pairs(op, tf.f, K, B, D, RT_AGG_MAX);
    check_op("pairs max nan", p, (const T *[]){&tf}, 1, op);
    rt_k_pairs_back(odf, tdp.f, tf.f, K, B, D, RT_AGG_MAX);
    check_op("pairs_back max nan", pb, (const T *[]){&tdp, &tf}, 2, odf);
    free(op); free(odf);
    t_free(&tf); t_free(&tdp);
    arena_free(&a);
}

TEST(kernel_pair_targets) {
    static const int64_t kb[][2] = {{2, 1}, {4, 3}, {5, 7}};
    for (size_t i = 0; i < sizeof kb / sizeof kb[0]; i++) {
        Arena a = {0};
        Graph *g = graph_new(&a);
        Node *t = ir_pair_targets(g, (int)kb[i][0], kb[i][1]);
        float *o = out_f32(node_numel(t));
        rt_k_pair_targets(o, kb[i][0], kb[i][1]);
        check_op("pair_targets", t, NULL, 0, o);
        free(o);
        arena_free(&a);
    }
}

TEST(kernel_losses) {
    const int64_t P = 4 * 3 * 64;
    static const float ga[][2] = {{2, 0.25f}, {0, 0.5f}, {0.5f, 0.75f}, {1, 0.25f}, {3, 1}};
    Arena a = {0};
    Graph *g = graph_new(&a);
    int64_t pd[] = {P}, one[] = {1};
    Node *z = ir_input(g, "z", 1, pd), *y = ir_input(g, "y", 1, pd), *dl = ir_input(g, "dl", 1, one);
    T tz = t_rand(P, 1, -8, 8, 0), ty = t_new(P), tdl = t_new(1);
    /* extreme logits, and exact zeros (q = 0 never happens in double, but
       p = 1/2 does) */
    t_set(&tz, 0, 40);
    t_set(&tz, 1, -40);
    t_set(&tz, 2, 0);
    t_set(&tz, 3, 1e-3f);
    rt_k_pair_targets(ty.f, 4, 64);
    for (int64_t i = 0; i < P; i++) ty.d[i] = (double)ty.f[i];
    t_set(&tdl, 0, 0.375f);
    float o[1], *odz = out_f32(P);
    for (size_t k = 0; k < sizeof ga / sizeof ga[0]; k++) {
        char what[64];
        snprintf(what, sizeof what, "focal gamma %g alpha %g", (double)ga[k][0], (double)ga[k][1]);
        rt_k_focal_loss(o, tz.f, ty.f, P, ga[k][0], ga[k][1]);
        check_op(what, ir_focal_loss(g, z, y, ga[k][0], ga[k][1]), (const T *[]){&tz, &ty}, 2, o);
        rt_k_focal_back(odz, tdl.f, tz.f, ty.f, P, ga[k][0], ga[k][1]);
        snprintf(what, sizeof what, "focal_back gamma %g alpha %g", (double)ga[k][0], (double)ga[k][1]);
        check_op(what, ir_focal_back(g, dl, z, y, ga[k][0], ga[k][1]), (const T *[]){&tdl, &tz, &ty}, 3, odz);
    }
    rt_k_bce_loss(o, tz.f, ty.f, P);
    check_op("bce", ir_bce_loss(g, z, y), (const T *[]){&tz, &ty}, 2, o);
    rt_k_bce_back(odz, tdl.f, tz.f, ty.f, P);
    check_op("bce_back", ir_bce_back(g, dl, z, y), (const T *[]){&tdl, &tz, &ty}, 3, odz);
    free(odz);
    t_free(&tz); t_free(&ty); t_free(&tdl);
    arena_free(&a);
}

/* ---- math: product, exp, log, softplus, L2 normalisation, matmul ---- */

TEST(kernel_math_elementwise) {
    const int64_t n = 1037;
    Arena a = {0};
    Graph *g = graph_new(&a);
    int64_t d[] = {n};
    Node *x = ir_input(g, "x", 1, d), *x2 = ir_input(g, "x2", 1, d), *dy = ir_input(g, "dy", 1, d);
    /* x spans both sides of softplus's threshold (20); pos is log's domain */
    T tx = t_rand(n, 11, -30, 30, 0), tx2 = t_rand(n, 12, -1, 1, 0), tdy = t_rand(n, 13, -1, 1, 0);
    T tpos = t_rand(n, 14, 1e-3, 50, 0), tsmall = t_rand(n, 15, -8, 8, 0);
    float *o = out_f32(n);
    rt_k_mul(o, tx.f, tx2.f, n);
    check_op("mul", ir_mul(g, x, x2), (const T *[]){&tx, &tx2}, 2, o);
    rt_k_exp(o, tsmall.f, n);
    check_op("exp", ir_exp(g, x), (const T *[]){&tsmall}, 1, o);
    rt_k_log(o, tpos.f, n);
    check_op("log", ir_log(g, x), (const T *[]){&tpos}, 1, o);
    rt_k_log_back(o, tdy.f, tpos.f, n);
    check_op("log_back", ir_log_back(g, dy, x), (const T *[]){&tdy, &tpos}, 2, o);
    rt_k_softplus(o, tx.f, n);
    check_op("softplus", ir_softplus(g, x), (const T *[]){&tx}, 1, o);
    rt_k_softplus_back(o, tdy.f, tx.f, n);
    check_op("softplus_back", ir_softplus_back(g, dy, x), (const T *[]){&tdy, &tx}, 2, o);
    free(o);
    t_free(&tx); t_free(&tx2); t_free(&tdy); t_free(&tpos); t_free(&tsmall);
    arena_free(&a);
}

TEST(kernel_l2_normalize) {
    /* SimCLR's projections (128-d), odd widths, one row of zeros (the eps
       branch) */
    static const int64_t cases[][2] = {{512, 128}, {7, 13}, {3, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t N = cases[c][0], D = cases[c][1];
        Arena a = {0};
        Graph *g = graph_new(&a);
        int64_t xd[] = {N, D};
        Node *x = ir_input(g, "x", 2, xd), *dy = ir_input(g, "dy", 2, xd);
        T tx = t_rand(N * D, 20 + (uint32_t)c, -1, 1, 0), tdy = t_rand(N * D, 30 + (uint32_t)c, -1, 1, 0);
        for (int64_t k = 0; k < D; k++) t_set(&tx, k, 0.0f);   /* row 0: |x| = 0 < eps */
        float *o = out_f32(N * D);
        char what[64];
        const float eps = 1e-12f;
        rt_k_l2_normalize(o, tx.f, N, D, eps);
        snprintf(what, sizeof what, "l2_normalize %lldx%lld", (long long)N, (long long)D);
        check_op(what, ir_l2_normalize(g, x, (double)eps), (const T *[]){&tx}, 1, o);
        rt_k_l2_normalize_back(o, tdy.f, tx.f, N, D, eps);
        snprintf(what, sizeof what, "l2_normalize_back %lldx%lld", (long long)N, (long long)D);
        /* the zero row's gradient is dy / eps (1e12): compare the others */
        double *ref = NULL;
        {
            const double *din[] = {tdy.d, tx.d};
            Node *bn = ir_l2_normalize_back(g, dy, x, (double)eps);
            ref = malloc(sizeof(double) * (size_t)(N * D));
            op_table[bn->op].fwd(bn, din, ref);
        }
        if (N > 1) close_to(what, o + D, ref + D, (N - 1) * D);
        for (int64_t k = 0; k < D; k++)
            CHECKF(fabs((double)o[k] - ref[k]) <= 1e-6 * fabs(ref[k]), "%s: zero row [%lld] %g vs %g", what, (long long)k,
                   (double)o[k], ref[k]);
        free(ref);
        free(o);
        t_free(&tx); t_free(&tdy);
        arena_free(&a);
    }
}

TEST(kernel_matmul) {
    /* [M, K] x [K, N]: SimCLR's 2B x 2B similarity of 128-d projections,
       small odd shapes, vectors, every transpose */
    static const int64_t cases[][3] = {{512, 512, 128}, {5, 7, 3}, {1, 9, 4}, {6, 1, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int t = 0; t < 4; t++) {
            int64_t M = cases[c][0], N = cases[c][1], K = cases[c][2], ta = t & 1, tb = t >> 1;
            Arena a = {0};
            Graph *g = graph_new(&a);
            int64_t ad[] = {ta ? K : M, ta ? M : K}, bd[] = {tb ? N : K, tb ? K : N};
            Node *an = ir_input(g, "a", 2, ad), *bn = ir_input(g, "b", 2, bd);
            T tA = t_rand(M * K, 40 + (uint32_t)c, -1, 1, 0), tB = t_rand(K * N, 50 + (uint32_t)c, -1, 1, 0);
            float *o = out_f32(M * N);
            rt_k_matmul(o, tA.f, tB.f, M, N, K, ta, tb);
            char what[80];
            snprintf(what, sizeof what, "matmul %lldx%lldx%lld ta=%lld tb=%lld", (long long)M, (long long)N, (long long)K,
                     (long long)ta, (long long)tb);
            check_op(what, ir_matmul(g, an, bn, ta, tb), (const T *[]){&tA, &tB}, 2, o);
            free(o);
            t_free(&tA); t_free(&tB);
            arena_free(&a);
        }
}

/* ---- the baselines: rotations, block targets, SimCLR's loss ---- */

TEST(kernel_rotations) {
    /* RotationNet's 32x32 views and a small odd side */
    static const int64_t cases[][3] = {{3, 3, 32}, {2, 1, 5}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t N = cases[c][0], C = cases[c][1], S = cases[c][2], n = N * C * S * S;
        Arena a = {0};
        Graph *g = graph_new(&a);
        int64_t xd[] = {N, C, S, S}, yd[] = {4 * N, C, S, S};
        Node *x = ir_input(g, "x", 4, xd), *dy = ir_input(g, "dy", 4, yd);
        T tx = t_rand(n, 60 + (uint32_t)c, -1, 1, 0), tdy = t_rand(4 * n, 70 + (uint32_t)c, -1, 1, 0);
        float *o = out_f32(4 * n);
        rt_k_rotations(o, tx.f, N * C, S);
        check_op("rotations", ir_rotations(g, x), (const T *[]){&tx}, 1, o);
        rt_k_rotations_back(o, tdy.f, N * C, S);
        check_op("rotations_back", ir_make(g, OP_ROTATIONS_BACK, &dy, 1, NULL, 0, NULL, 0), (const T *[]){&tdy}, 1, o);
        free(o);
        t_free(&tx); t_free(&tdy);
        arena_free(&a);
    }
    /* rot90 by hand on a 2x2 plane [[a, b], [c, d]]: counter-clockwise is
       [[b, d], [a, c]], then [[d, c], [b, a]], then [[c, a], [d, b]] */
    float x[4] = {1, 2, 3, 4}, y[16];
    static const float want[16] = {1, 2, 3, 4, 2, 4, 1, 3, 4, 3, 2, 1, 3, 1, 4, 2};
    rt_k_rotations(y, x, 1, 2);
    CHECK(memcmp(y, want, sizeof y) == 0);
}

TEST(kernel_block_targets) {
    float y[12];
    rt_k_block_targets(y, 12, 3);
    for (int i = 0; i < 12; i++) CHECKF(y[i] == (float)(i / 3), "y[%d] = %g", i, (double)y[i]);
}

TEST(kernel_simclr) {
    /* the paper's batch (2B = 256 rows of 64) and small ones; t = 0.5 and
       another temperature. Not B = 1: there every ratio is 1 up to the
       rounding of |z|^2 / |z|^2, the gradient is zero and float gives its
       rounding noise (as PyTorch's float32 does). */
    static const int64_t cases[][2] = {{256, 64}, {6, 5}, {4, 3}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int k = 0; k < 2; k++) {
            int64_t N = cases[c][0], D = cases[c][1];
            float t = k ? 0.2f : 0.5f, eps = 1e-8f;
            Arena a = {0};
            Graph *g = graph_new(&a);
            int64_t zd[] = {N, D}, one = 1;
            Node *z = ir_input(g, "z", 2, zd), *dl = ir_input(g, "dl", 1, &one);
            T tz = t_rand(N * D, 80 + (uint32_t)c, -1, 1, 0), tdl = t_rand(1, 90, 0.5, 2, 0);
            float *o = out_f32(N * D), *ws = malloc(sizeof(float) * (size_t)rt_k_simclr_ws(N, D));
            char what[80];
            rt_k_simclr_loss(o, tz.f, N, D, t, eps, ws);
            snprintf(what, sizeof what, "simclr_loss %lldx%lld t=%g", (long long)N, (long long)D, (double)t);
            check_op(what, ir_simclr_loss(g, z, (double)t, (double)eps), (const T *[]){&tz}, 1, o);
            rt_k_simclr_back(o, tdl.f, tz.f, N, D, t, eps, ws);
            snprintf(what, sizeof what, "simclr_back %lldx%lld t=%g", (long long)N, (long long)D, (double)t);
            Node *in[] = {dl, z};
            double fa[] = {(double)t, (double)eps};
            check_op(what, ir_make(g, OP_SIMCLR_BACK, in, 2, NULL, 0, fa, 2), (const T *[]){&tdl, &tz}, 2, o);
            free(o);
            free(ws);
            t_free(&tz); t_free(&tdl);
            arena_free(&a);
        }
}

TEST(kernel_weighted_ce) {
    /* DeepCluster's batch (128 rows, 100 clusters) and a small one */
    static const int64_t cases[][2] = {{128, 100}, {5, 3}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t N = cases[c][0], C = cases[c][1];
        Arena a = {0};
        Graph *g = graph_new(&a);
        int64_t zd[] = {N, C}, one = 1;
        Node *z = ir_input(g, "z", 2, zd), *y = ir_input(g, "y", 1, &N), *w = ir_input(g, "w", 1, &C),
             *dl = ir_input(g, "dl", 1, &one);
        T tz = t_rand(N * C, 100 + (uint32_t)c, -3, 3, 0), ty = t_rand(N, 110 + (uint32_t)c, 0, (double)C - 0.5, 1),
          tw = t_rand(C, 120 + (uint32_t)c, 0.5, 1, 0), tdl = t_rand(1, 130, 0.5, 2, 0);
        float *o = out_f32(N * C);
        rt_k_weighted_ce(o, tz.f, ty.f, tw.f, N, C);
        check_op("weighted_ce", ir_weighted_ce(g, z, y, w), (const T *[]){&tz, &ty, &tw}, 3, o);
        rt_k_weighted_ce_back(o, tdl.f, tz.f, ty.f, tw.f, N, C);
        Node *in[] = {dl, z, y, w};
        check_op("weighted_ce_back", ir_make(g, OP_WEIGHTED_CE_BACK, in, 4, NULL, 0, NULL, 0),
                 (const T *[]){&tdl, &tz, &ty, &tw}, 4, o);
        free(o);
        t_free(&tz); t_free(&ty); t_free(&tw); t_free(&tdl);
        arena_free(&a);
    }
}

/* ---- Deep InfoMax ---- */

TEST(kernel_dim) {
    /* conv4's map (8 channels, 32x32) and features, and a small odd case */
    static const int64_t cases[][4] = {{4, 8, 64, 32 * 32}, {3, 2, 5, 3}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t B = cases[c][0], C = cases[c][1], F = cases[c][2], S = cases[c][3], Z = 2 * B * (C + F) * S;
        Arena a = {0};
        Graph *g = graph_new(&a);
        int64_t md[] = {B, C, S, 1}, yd[] = {B, F}, zd[] = {2 * B, C + F, S, 1}, one = 1, pd[] = {2 * B, 1};
        Node *M = ir_input(g, "M", 4, md), *y = ir_input(g, "y", 2, yd), *dz = ir_input(g, "dz", 4, zd),
             *dl = ir_input(g, "dl", 1, &one), *p = ir_input(g, "p", 2, pd);
        T tM = t_rand(B * C * S, 140 + (uint32_t)c, -1, 1, 0), ty = t_rand(B * F, 150 + (uint32_t)c, -1, 1, 0),
          tdz = t_rand(Z, 160 + (uint32_t)c, -1, 1, 0), tdl = t_rand(1, 170, 0.5, 2, 0),
          tp = t_rand(2 * B, 180 + (uint32_t)c, -25, 25, 0);   /* both sides of softplus's threshold */
        float *o = out_f32(Z);
        rt_k_local_pairs(o, tM.f, ty.f, B, C, F, S);
        check_op("local_pairs", ir_local_pairs(g, M, y), (const T *[]){&tM, &ty}, 2, o);
        for (int w = 0; w < 2; w++) {
            Node *in[] = {dz, w ? y : M};
            int64_t which = w;
            if (w) rt_k_local_pairs_dy(o, tdz.f, B, C, F, S);
            else rt_k_local_pairs_dm(o, tdz.f, B, C, F, S);
            check_op(w ? "local_pairs dy" : "local_pairs dM", ir_make(g, OP_LOCAL_PAIRS_BACK, in, 2, &which, 1, NULL, 0),
                     (const T *[]){&tdz, w ? &ty : &tM}, 2, o);
        }
        rt_k_concat_rows(o, ty.f, ty.f, B * F, B * F);
        check_op("concat_rows", ir_concat_rows(g, y, y), (const T *[]){&ty, &ty}, 2, o);
        rt_k_jsd_loss(o, tp.f, B, 0.5f);
        check_op("jsd_loss", ir_jsd_loss(g, p, 0.5), (const T *[]){&tp}, 1, o);
        double fa = 0.5;
        Node *jin[] = {dl, p};
        rt_k_jsd_back(o, tdl.f, tp.f, B, 0.5f);
        check_op("jsd_back", ir_make(g, OP_JSD_BACK, jin, 2, NULL, 0, &fa, 1), (const T *[]){&tdl, &tp}, 2, o);
        rt_k_prior_loss(o, tp.f, B, 0.5f);
        check_op("prior_loss", ir_prior_loss(g, p, 0.5), (const T *[]){&tp}, 1, o);
        rt_k_prior_back(o, tdl.f, tp.f, B, 0.5f);
        check_op("prior_back", ir_make(g, OP_PRIOR_BACK, jin, 2, NULL, 0, &fa, 1), (const T *[]){&tdl, &tp}, 2, o);
        free(o);
        t_free(&tM); t_free(&ty); t_free(&tdz); t_free(&tdl); t_free(&tp);
        arena_free(&a);
    }
}
