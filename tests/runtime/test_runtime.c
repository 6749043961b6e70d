/*
** test_runtime.c: unit tests of the runtime's generator (rt_rng), parameter
** initialisation (rt_init) and safetensors I/O (rt_safetensors).
**
** The generator is pinned by the Random123 known-answer vectors and by the
** documented stream layout, since every golden value that involves
** initialisation, shuffling or augmentation depends on them. Statistical
** checks use tolerances of many standard errors: they catch a broken
** conversion, not an unlucky seed. The safetensors tests build damaged
** files byte by byte and check that each is refused with a one-line
** "PATH: problem" message (and, under ASan, without a leak or a crash).
** The thread pool (rt_pool) runs a job posted right after it starts.
*/
#include "test.h"
#include "test_util.h"

#include "rt_init.h"
#include "rt_pool.h"
#include "rt_rng.h"
#include "rt_safetensors.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- rt_rng ------------------------------------------------------------ */

TEST(rng_philox_known_answers) {
    /* Random123's kat_vectors for philox4x32_10. */
    static const struct { uint32_t key[2], ctr[4], out[4]; } kat[] = {
        {{0, 0}, {0, 0, 0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0xa4093822, 0x299f31d0}, {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        uint32_t out[4];
        rt_philox4x32(kat[i].key, kat[i].ctr, out);
        for (int j = 0; j < 4; j++)
            CHECKF(out[j] == kat[i].out[j], "vector %zu word %d: got %08x, want %08x",
                   i, j, (unsigned)out[j], (unsigned)kat[i].out[j]);
    }
}

/* MurmurHash3's finaliser, restated to pin the documented key derivation. */
static uint32_t fmix32_ref(uint32_t h) {
    h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; h ^= h >> 16;
    return h;
}

TEST(rng_stream_layout) {
    /* key = {lo32(seed) ^ fmix32(domain), hi32(seed)}, ctr = {a, b, block
       (64-bit, low word first)}, words in block order. */
    uint64_t seed = 0x0123456789abcdefULL;
    rt_stream s;
    rt_stream_init(&s, seed, RT_DOMAIN_AUGMENT, 7, 9);
    uint32_t key[2] = {(uint32_t)seed ^ fmix32_ref(RT_DOMAIN_AUGMENT), (uint32_t)(seed >> 32)};
    for (uint32_t blk = 0; blk < 3; blk++) {
        uint32_t ctr[4] = {7, 9, blk, 0}, want[4];
        rt_philox4x32(key, ctr, want);
        for (int j = 0; j < 4; j++) CHECK(rt_stream_u32(&s) == want[j]);
    }
    /* The block counter carries into ctr[3]. */
    s.ctr[2] = 0xffffffffu;
    s.ctr[3] = 0;
    s.pos = 4;
    (void)rt_stream_u32(&s);
    CHECK(s.ctr[2] == 0 && s.ctr[3] == 1);
}

TEST(rng_stream_determinism_and_independence) {
    enum { N = 1000 };
    static uint32_t ref[N];
    rt_stream s;
    rt_stream_init(&s, 42, RT_DOMAIN_TEST, 1, 2);
    for (int i = 0; i < N; i++) ref[i] = rt_stream_u32(&s);

    rt_stream_init(&s, 42, RT_DOMAIN_TEST, 1, 2);
    int same = 0;
    for (int i = 0; i < N; i++) same += rt_stream_u32(&s) == ref[i];
    CHECK(same == N);

    /* Changing any one input gives an unrelated sequence. */
    const struct { uint64_t seed; uint32_t domain, a, b; } other[] = {
        {43, RT_DOMAIN_TEST, 1, 2}, {42, RT_DOMAIN_DATA, 1, 2},
        {42, RT_DOMAIN_TEST, 2, 2}, {42, RT_DOMAIN_TEST, 1, 3},
        {42 + (1ULL << 32), RT_DOMAIN_TEST, 1, 2},
    };
    for (size_t k = 0; k < sizeof other / sizeof other[0]; k++) {
        rt_stream_init(&s, other[k].seed, other[k].domain, other[k].a, other[k].b);
        int eq = 0;
        for (int i = 0; i < N; i++) eq += rt_stream_u32(&s) == ref[i];
        CHECKF(eq <= 2, "variant %zu: %d of %d words equal the reference stream", k, eq, N);
    }
}

TEST(rng_uniform_statistics) {
    enum { N = 100000 };
    rt_stream s;
    rt_stream_init(&s, 1, RT_DOMAIN_TEST, 0, 0);
    double sum = 0, sum2 = 0, lo = 1, hi = 0;
    int bad = 0, bins[10] = {0};
    for (int i = 0; i < N; i++) {
        double u = rt_stream_uniform(&s);
        bad += !(u >= 0.0 && u < 1.0);
        /* 53-bit values: u * 2^53 is an integer. */
        bad += ldexp(u, 53) != floor(ldexp(u, 53));
        sum += u;
        sum2 += u * u;
        if (u < lo) lo = u;
        if (u > hi) hi = u;
        bins[(int)(u * 10)]++;
    }
    CHECK(bad == 0);
    double mean = sum / N, var = sum2 / N - mean * mean;
    CHECKF(fabs(mean - 0.5) < 0.005, "mean %g", mean);          /* ~5.5 standard errors */
    CHECKF(fabs(var - 1.0 / 12) < 0.002, "variance %g", var);
    CHECK(lo < 1e-3 && hi > 1 - 1e-3);
    for (int b = 0; b < 10; b++) CHECKF(abs(bins[b] - N / 10) < 600, "bin %d has %d", b, bins[b]);
}

TEST(rng_normal_statistics) {
    enum { N = 100000 };
    rt_stream s;
    rt_stream_init(&s, 2, RT_DOMAIN_TEST, 0, 0);
    double sum = 0, sum2 = 0, sum4 = 0;
    int bad = 0, beyond2 = 0;
    for (int i = 0; i < N; i++) {
        double z = rt_stream_normal(&s);
        bad += !isfinite(z);
        sum += z;
        sum2 += z * z;
        sum4 += z * z * z * z;
        beyond2 += fabs(z) > 2;
    }
    CHECK(bad == 0);
    double mean = sum / N, var = sum2 / N - mean * mean;
    CHECKF(fabs(mean) < 0.02, "mean %g", mean);
    CHECKF(fabs(var - 1) < 0.03, "variance %g", var);
    CHECKF(fabs(sum4 / N - 3) < 0.15, "fourth moment %g (3 for a normal)", sum4 / N);
    /* P(|z| > 2) = 0.0455 */
    CHECKF(abs(beyond2 - 4550) < 400, "%d of %d beyond 2 sigma", beyond2, N);
}

TEST(rng_below_range_and_balance) {
    rt_stream s;
    rt_stream_init(&s, 3, RT_DOMAIN_TEST, 0, 0);
    for (int i = 0; i < 100; i++) CHECK(rt_stream_below(&s, 1) == 0);

    enum { N = 70000 };
    int counts[7] = {0}, bad = 0;
    for (int i = 0; i < N; i++) {
        uint32_t v = rt_stream_below(&s, 7);
        if (v >= 7) bad++;
        else counts[v]++;
    }
    CHECK(bad == 0);
    for (int k = 0; k < 7; k++) CHECKF(abs(counts[k] - N / 7) < 500, "value %d drawn %d times", k, counts[k]);

    /* Large n, where almost half the raw words are rejected. */
    uint32_t n = 0x80000001u;
    int upper = 0;
    for (int i = 0; i < 10000; i++) {
        uint32_t v = rt_stream_below(&s, n);
        bad += v >= n;
        upper += v >= n / 2;
    }
    CHECK(bad == 0);
    CHECKF(abs(upper - 5000) < 300, "%d of 10000 in the upper half", upper);
    for (int i = 0; i < 1000; i++) bad += rt_stream_below(&s, UINT32_MAX) >= UINT32_MAX;
    CHECK(bad == 0);
}

TEST(rng_hash32_fnv1a) {
    /* Published FNV-1a 32-bit test vectors. */
    CHECK(rt_hash32("") == 0x811c9dc5u);
    CHECK(rt_hash32("a") == 0xe40c292cu);
    CHECK(rt_hash32("foobar") == 0xbf9cf968u);
    CHECK(rt_hash32("conv1.weight") != rt_hash32("conv2.weight"));
}

/* ---- rt_init ----------------------------------------------------------- */

static void moments(const float *x, int n, double *mean, double *var, double *lo, double *hi) {
    double s = 0, s2 = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
        if (x[i] < *lo) *lo = x[i];
        if (x[i] > *hi) *hi = x[i];
    }
    *mean = s / n;
    *var = s2 / n - *mean * *mean;
}

TEST(init_const) {
    float x[37];
    rt_init_fill(x, 37, (rt_init){RT_INIT_CONST, 1.0}, 1, "bn1.weight");
    int ok = 0;
    for (int i = 0; i < 37; i++) ok += x[i] == 1.0f;
    CHECK(ok == 37);
    rt_init_fill(x, 37, (rt_init){RT_INIT_CONST, 0.0}, 1, "bn1.bias");
    ok = 0;
    for (int i = 0; i < 37; i++) ok += x[i] == 0.0f;
    CHECK(ok == 37);
    /* NONE leaves the buffer alone. */
    x[0] = 5.0f;
    rt_init_fill(x, 37, (rt_init){RT_INIT_NONE, 3.0}, 1, "x");
    CHECK(x[0] == 5.0f);
}

TEST(init_normal_statistics) {
    enum { N = 100000 };
    float *x = malloc(N * sizeof *x);
    REQUIRE(x);
    double std = sqrt(2.0 / (3 * 3 * 64));   /* He fan_out for a 3x3, 64-channel conv */
    rt_init_fill(x, N, (rt_init){RT_INIT_NORMAL, std}, 1, "layer1.0.conv1.weight");
    double mean, var, lo, hi;
    moments(x, N, &mean, &var, &lo, &hi);
    CHECKF(fabs(mean) < 0.02 * std, "mean %g", mean);
    CHECKF(fabs(sqrt(var) / std - 1) < 0.015, "std %g, want %g", sqrt(var), std);
    CHECK(lo < -3 * std && hi > 3 * std);
    free(x);
}

TEST(init_uniform_statistics) {
    enum { N = 100000 };
    float *x = malloc(N * sizeof *x);
    REQUIRE(x);
    double a = 1 / sqrt(256.0);
    rt_init_fill(x, N, (rt_init){RT_INIT_UNIFORM, a}, 1, "relation.linear2.weight");
    double mean, var, lo, hi;
    moments(x, N, &mean, &var, &lo, &hi);
    CHECKF(lo >= -a && hi <= a, "range [%g, %g] outside [-%g, %g]", lo, hi, a, a);
    CHECK(lo < -0.99 * a && hi > 0.99 * a);
    CHECKF(fabs(mean) < 0.01 * a, "mean %g", mean);
    CHECKF(fabs(var / (a * a / 3) - 1) < 0.02, "variance %g, want %g", var, a * a / 3);
    free(x);
}

TEST(init_keyed_by_seed_and_name) {
    enum { N = 256 };
    float a[N], b[N], c[N], d[N], e[16];
    rt_init kind = {RT_INIT_NORMAL, 0.1};
    rt_init_fill(a, N, kind, 7, "backbone.conv1.weight");
    rt_init_fill(b, N, kind, 7, "backbone.conv1.weight");
    rt_init_fill(c, N, kind, 7, "backbone.conv2.weight");
    rt_init_fill(d, N, kind, 8, "backbone.conv1.weight");
    CHECK(memcmp(a, b, sizeof a) == 0);
    int eq_c = 0, eq_d = 0;
    for (int i = 0; i < N; i++) { eq_c += a[i] == c[i]; eq_d += a[i] == d[i]; }
    CHECKF(eq_c == 0, "%d equal values for a different name", eq_c);
    CHECKF(eq_d == 0, "%d equal values for a different seed", eq_d);
    /* Element i is the i-th draw: a shorter fill is a prefix. */
    rt_init_fill(e, 16, kind, 7, "backbone.conv1.weight");
    CHECK(memcmp(a, e, sizeof e) == 0);
    /* The same stream for UNIFORM and NORMAL, but different values. */
    rt_init_fill(c, N, (rt_init){RT_INIT_UNIFORM, 0.1}, 7, "backbone.conv1.weight");
    CHECK(memcmp(a, c, sizeof a) != 0);
}

/* ---- rt_safetensors: helpers ------------------------------------------- */

/* A file of 8-byte length hlen, then the header text, then ndata bytes. */
static int write_st_raw(const char *path, uint64_t hlen, const char *header, size_t ndata) {
    size_t h = strlen(header), total = 8 + h + ndata;
    unsigned char *b = calloc(total, 1);
    if (!b) return -1;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + 8, header, h);
    for (size_t i = 0; i < ndata; i++) b[8 + h + i] = (unsigned char)i;
    int rc = test_write_file(path, b, total) ? 0 : -1;
    free(b);
    return rc;
}

static int write_st(const char *path, const char *header, size_t ndata) {
    return write_st_raw(path, strlen(header), header, ndata);
}

/* Reading PATH fails with one line that starts "PATH: " and contains each
   of the given substrings. */
static void expect_reject(const char *file, int line, const char *path, const char *want1, const char *want2) {
    rt_st_file f;
    char err[512] = "";
    int rc = rt_st_read(path, &f, err, sizeof err);
    if (rc == 0) {
        test_fail(file, line, "%s was accepted", path);
        rt_st_free(&f);
        return;
    }
    if (f.tensors || f.ntensors || f.blob_) test_fail(file, line, "output not cleared after an error");
    size_t pl = strlen(path);
    if (strncmp(err, path, pl) != 0 || strncmp(err + pl, ": ", 2) != 0)
        test_fail(file, line, "message does not start with the path: %s", err);
    if (strchr(err, '\n')) test_fail(file, line, "message is not one line: %s", err);
    if (want1 && !strstr(err, want1)) test_fail(file, line, "message lacks '%s': %s", want1, err);
    if (want2 && !strstr(err, want2)) test_fail(file, line, "message lacks '%s': %s", want2, err);
}
#define EXPECT_REJECT(path, w1, w2) expect_reject(__FILE__, __LINE__, path, w1, w2)

static int count_tmp_files(void) {
    DIR *d = opendir(test_tmpdir());
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* ---- rt_safetensors: round trip ---------------------------------------- */

TEST(st_round_trip) {
    float w[6] = {1, -2, 3.5f, 0, 1e-30f, -7};
    double v[4] = {0.1, -1e300, 3, 4};
    int64_t ix[3] = {-1, 0, INT64_MAX};
    float scalar = 2.5f;
    rt_tensor ts[] = {
        {.name = "backbone.conv1.weight", .dtype = RT_F32, .rank = 2, .shape = {2, 3}, .data = w, .nbytes = sizeof w},
        {.name = "v", .dtype = RT_F64, .rank = 1, .shape = {4}, .data = v, .nbytes = sizeof v},
        {.name = "empty", .dtype = RT_F32, .rank = 2, .shape = {0, 5}, .data = NULL, .nbytes = 0},
        {.name = "idx", .dtype = RT_I64, .rank = 1, .shape = {3}, .data = ix, .nbytes = sizeof ix},
        {.name = "loss", .dtype = RT_F32, .rank = 0, .data = &scalar, .nbytes = sizeof scalar},
    };
    const char *mk[] = {"format", "spec"}, *mv[] = {"rrc-1", "specs/conv4.lua"};
    const char *path = test_tmp_path("rt.safetensors");
    char err[512] = "";
    int rc = rt_st_write(path, ts, 5, mk, mv, 2, err, sizeof err);
    REQUIREF(rc == 0, "write failed: %s", err);

    rt_st_file f;
    rc = rt_st_read(path, &f, err, sizeof err);
    REQUIREF(rc == 0, "read failed: %s", err);
    CHECK(f.ntensors == 5);
    CHECK(f.nmeta == 2);
    CHECK(f.nmeta == 2 && strcmp(f.meta_keys[0], "format") == 0 && strcmp(f.meta_vals[1], "specs/conv4.lua") == 0);
    CHECK(rt_st_meta(&f, "spec") && strcmp(rt_st_meta(&f, "spec"), "specs/conv4.lua") == 0);
    CHECK(rt_st_meta(&f, "nope") == NULL);
    CHECK(rt_st_find(&f, "nope") == NULL);
    for (int i = 0; i < 5 && i < f.ntensors; i++) {
        const rt_tensor *t = rt_st_find(&f, ts[i].name);
        REQUIREF(t, "tensor %s missing", ts[i].name);
        CHECK(t->dtype == ts[i].dtype && t->rank == ts[i].rank && t->nbytes == ts[i].nbytes);
        CHECK(memcmp(t->shape, ts[i].shape, (size_t)t->rank * sizeof t->shape[0]) == 0);
        CHECK(t->nbytes == 0 || memcmp(t->data, ts[i].data, t->nbytes) == 0);
        CHECK(t->nbytes == 0 || ((uintptr_t)t->data & 7) == 0);
    }
    /* Written contiguously in the given order, so read back in it. Empty
       tensors sort among the others by offset, before a tensor beginning
       at the same place. */
    CHECK(strcmp(f.tensors[0].name, "backbone.conv1.weight") == 0);
    CHECK(strcmp(f.tensors[4].name, "loss") == 0);

    const rt_tensor *sc = rt_st_find(&f, "loss");
    REQUIRE(sc);
    CHECK(rt_tensor_numel(sc) == 1);
    float s1 = 0;
    CHECK(rt_tensor_to_f32(sc, &s1, 1, path, err, sizeof err) == 0 && s1 == 2.5f);
    CHECK(rt_tensor_numel(rt_st_find(&f, "empty")) == 0);

    /* Conversions both ways. */
    double wd[6];
    float vf[4];
    CHECK(rt_tensor_to_f64(rt_st_find(&f, "backbone.conv1.weight"), wd, 6, path, err, sizeof err) == 0);
    CHECK(wd[2] == 3.5 && wd[5] == -7 && wd[4] == (double)1e-30f);
    CHECK(rt_tensor_to_f32(rt_st_find(&f, "v"), vf, 4, path, err, sizeof err) == 0);
    CHECK(vf[0] == 0.1f && isinf(vf[1]) && vf[3] == 4.0f);

    /* Wrong dtype and wrong count give messages naming both sides. */
    CHECK(rt_tensor_to_f32(rt_st_find(&f, "idx"), vf, 3, path, err, sizeof err) == -1);
    CHECKF(strstr(err, "tensor 'idx' has dtype I64, expected F32 or F64") && strncmp(err, path, strlen(path)) == 0,
           "message: %s", err);
    CHECK(rt_tensor_to_f64(rt_st_find(&f, "backbone.conv1.weight"), wd, 5, path, err, sizeof err) == -1);
    CHECKF(strstr(err, "[2, 3]") && strstr(err, "6 elements") && strstr(err, "expected 5"), "message: %s", err);
    rt_st_free(&f);
    CHECK(f.blob_ == NULL && f.ntensors == 0);
    rt_st_free(&f);   /* freeing twice is harmless */
}

TEST(st_header_bytes_match_reference) {
    /* What huggingface/safetensors writes for {"w": zeros(2)} with
       metadata {"k": "v"}: compact JSON, __metadata__ first, fields in
       the order dtype, shape, data_offsets, spaces up to a multiple of 8. */
    float w[2] = {0, 0};
    rt_tensor t = {.name = "w", .dtype = RT_F32, .rank = 1, .shape = {2}, .data = w, .nbytes = sizeof w};
    const char *k = "k", *v = "v";
    const char *path = test_tmp_path("ref.safetensors");
    char err[256];
    REQUIREF(rt_st_write(path, &t, 1, &k, &v, 1, err, sizeof err) == 0, "%s", err);
    size_t n;
    unsigned char *b = (unsigned char *)test_read_file(path, &n);
    REQUIRE(b);
    const char *want = "{\"__metadata__\":{\"k\":\"v\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t wl = strlen(want), padded = (wl + 7) / 8 * 8;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    CHECKF(hlen == padded, "header length %llu, want %zu", (unsigned long long)hlen, padded);
    CHECK(n == 8 + padded + 8);
    CHECK(n >= 8 + wl && memcmp(b + 8, want, wl) == 0);
    int spaces = 0;
    for (size_t i = 8 + wl; i < 8 + padded && i < n; i++) spaces += b[i] == ' ';
    CHECK((size_t)spaces == padded - wl);
    free(b);

    /* Without metadata there is no __metadata__ key at all. */
    REQUIREF(rt_st_write(path, &t, 1, NULL, NULL, 0, err, sizeof err) == 0, "%s", err);
    b = (unsigned char *)test_read_file(path, &n);
    REQUIRE(b);
    const char *want2 = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  ";
    CHECK(n == 8 + strlen(want2) + 8 && memcmp(b + 8, want2, strlen(want2)) == 0);
    free(b);
}

TEST(st_read_sorts_by_offset) {
    /* Header order b, a; data order a, b. Gaps between tensors are allowed. */
    const char *path = test_tmp_path("order.safetensors");
    REQUIRE(write_st(path,
                     "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8]},"
                     "\"a\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
                     10) == 0);
    rt_st_file f;
    char err[256];
    REQUIREF(rt_st_read(path, &f, err, sizeof err) == 0, "%s", err);
    REQUIRE(f.ntensors == 2);
    CHECK(strcmp(f.tensors[0].name, "a") == 0 && strcmp(f.tensors[1].name, "b") == 0);
    const unsigned char *bd = f.tensors[1].data;
    CHECK(bd[0] == 6 && bd[1] == 7);
    CHECK(f.nmeta == 0 && rt_st_meta(&f, "x") == NULL);
    rt_st_free(&f);
}

/* ---- rt_safetensors: rejection ----------------------------------------- */

TEST(st_reject_short_and_truncated) {
    const char *p = test_tmp_path("bad.safetensors");
    REQUIRE(test_write_file(p, "", 0));
    EXPECT_REJECT(p, "truncated", "0 bytes");
    REQUIRE(test_write_file(p, "abc", 3));
    EXPECT_REJECT(p, "truncated", "3 bytes");
    /* header length larger than the file */
    REQUIRE(write_st_raw(p, 800, "{\"a\":1}     ", 0) == 0);
    EXPECT_REJECT(p, "truncated: header says 800 bytes", "has 12");
    /* an absurd header length is not called a truncation */
    REQUIRE(write_st_raw(p, 0x7fffffffffffffffULL, "{}", 0) == 0);
    EXPECT_REJECT(p, "100 MiB", NULL);
    /* data cut short: offsets beyond the data area */
    REQUIRE(write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 10) == 0);
    EXPECT_REJECT(p, "tensor 'w'", "run past the end of the data (10 bytes");
    EXPECT_REJECT(test_tmp_path("does-not-exist.safetensors"), "cannot open", "No such file");
    EXPECT_REJECT(test_tmpdir(), "not a regular file", NULL);
}

TEST(st_reject_every_truncation_of_a_valid_file) {
    float w[6] = {1, 2, 3, 4, 5, 6};
    double v[2] = {7, 8};
    rt_tensor ts[] = {
        {.name = "w", .dtype = RT_F32, .rank = 2, .shape = {3, 2}, .data = w, .nbytes = sizeof w},
        {.name = "v", .dtype = RT_F64, .rank = 1, .shape = {2}, .data = v, .nbytes = sizeof v},
    };
    const char *mk = "m", *mv = "x";
    const char *path = test_tmp_path("full.safetensors"), *cut = test_tmp_path("cut.safetensors");
    char err[256];
    REQUIREF(rt_st_write(path, ts, 2, &mk, &mv, 1, err, sizeof err) == 0, "%s", err);
    size_t n;
    unsigned char *b = (unsigned char *)test_read_file(path, &n);
    REQUIRE(b);
    int accepted = 0;
    for (size_t len = 0; len < n; len++) {
        if (!test_write_file(cut, b, len)) break;
        rt_st_file f;
        if (rt_st_read(cut, &f, err, sizeof err) == 0) { accepted++; rt_st_free(&f); }
    }
    CHECKF(accepted == 0, "%d truncated copies accepted", accepted);
    /* Corrupting single header bytes never crashes or leaks (the result
       may be valid or not). */
    for (size_t i = 8; i < n - 24; i++) {
        unsigned char save = b[i];
        b[i] = (unsigned char)(save ^ 0x5a);
        if (test_write_file(cut, b, n)) {
            rt_st_file f;
            if (rt_st_read(cut, &f, err, sizeof err) == 0) rt_st_free(&f);
            else CHECKF(!strchr(err, '\n'), "multi-line message: %s", err);
        }
        b[i] = save;
    }
    free(b);
}

TEST(st_reject_bad_json) {
    const char *p = test_tmp_path("bad.safetensors");
    REQUIRE(write_st(p, "{\"w\": {\"dtype\": ", 0) == 0);
    EXPECT_REJECT(p, "header is not valid JSON", NULL);
    REQUIRE(write_st(p, "[1, 2]  ", 0) == 0);
    EXPECT_REJECT(p, "not a JSON object", NULL);
    REQUIRE(write_st(p, "", 0) == 0);
    EXPECT_REJECT(p, "not valid JSON", NULL);
    REQUIRE(write_st(p,
                     "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                     "\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2) == 0);
    EXPECT_REJECT(p, "not valid JSON", "duplicate");
    /* a raw control character inside a string: still a one-line message */
    REQUIRE(write_st(p, "{\"a\tb\n\": 5}", 0) == 0);
    EXPECT_REJECT(p, "not valid JSON", NULL);
    REQUIRE(write_st(p, "{\"w\": 5}", 0) == 0);
    EXPECT_REJECT(p, "tensor 'w': entry is not an object", NULL);
    REQUIRE(write_st(p, "{\"__metadata__\": [\"a\"]}", 0) == 0);
    EXPECT_REJECT(p, "__metadata__ is not an object", NULL);
    REQUIRE(write_st(p, "{\"__metadata__\": {\"epoch\": 3}}", 0) == 0);
    EXPECT_REJECT(p, "__metadata__ 'epoch' is not a string", NULL);
}

TEST(st_reject_bad_entries) {
    const char *p = test_tmp_path("bad.safetensors");
    REQUIRE(write_st(p, "{\"w\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4) == 0);
    EXPECT_REJECT(p, "tensor 'w': unknown dtype 'F33'", NULL);
    REQUIRE(write_st(p, "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4) == 0);
    EXPECT_REJECT(p, "tensor 'w': dtype is not a string", NULL);
    REQUIRE(write_st(p, "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4) == 0);
    EXPECT_REJECT(p, "no \"dtype\"", NULL);
    REQUIRE(write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,-1],\"data_offsets\":[0,4]}}", 4) == 0);
    EXPECT_REJECT(p, "shape[1] is not a non-negative integer", NULL);
    REQUIRE(write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4) == 0);
    EXPECT_REJECT(p, "shape[0]", NULL);
    REQUIRE(write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":{},\"data_offsets\":[0,4]}}", 4) == 0);
    EXPECT_REJECT(p, "shape is not an array", NULL);
    REQUIRE(write_st(p, "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1) == 0);
    EXPECT_REJECT(p, "rank 9", NULL);
    REQUIRE(write_st(p, "{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,4294967296],"
                        "\"data_offsets\":[0,1]}}", 1) == 0);
    EXPECT_REJECT(p, "too large", NULL);
    REQUIRE(write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4) == 0);
    EXPECT_REJECT(p, "data_offsets is not [begin, end]", NULL);
    REQUIRE(write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4) == 0);
    EXPECT_REJECT(p, "no \"data_offsets\"", NULL);
    REQUIRE(write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8) == 0);
    EXPECT_REJECT(p, "[8, 4] end before they begin", NULL);
    /* the message from the brief, exactly */
    REQUIRE(write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 16) == 0);
    {
        rt_st_file f;
        char err[256], want[512];
        CHECK(rt_st_read(p, &f, err, sizeof err) == -1);
        snprintf(want, sizeof want, "%s: tensor 'w': data_offsets [0, 12] do not match F32 [2, 2] (16 bytes)", p);
        CHECKF(strcmp(err, want) == 0, "got: %s", err);
    }
    /* offsets that fit dtype x shape but lie outside the data */
    REQUIRE(write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 12) == 0);
    EXPECT_REJECT(p, "data_offsets [8, 16] run past the end of the data", NULL);
    /* a control character in a name is not printed as is */
    REQUIRE(write_st(p, "{\"a\\nb\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,9]}}", 12) == 0);
    EXPECT_REJECT(p, "tensor 'a?b'", NULL);
}

TEST(st_reject_overlap) {
    const char *p = test_tmp_path("bad.safetensors");
    REQUIRE(write_st(p,
                     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12) == 0);
    EXPECT_REJECT(p, "tensors 'a' [0, 8] and 'b' [4, 12] overlap", NULL);
    /* one tensor inside another, listed first */
    REQUIRE(write_st(p,
                     "{\"in\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
                     "\"out\":{\"dtype\":\"U8\",\"shape\":[12],\"data_offsets\":[0,12]}}", 12) == 0);
    EXPECT_REJECT(p, "'out' [0, 12] and 'in' [4, 6] overlap", NULL);
    /* the same bytes twice */
    REQUIRE(write_st(p,
                     "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                     "\"b\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4) == 0);
    EXPECT_REJECT(p, "overlap", NULL);
    /* empty tensors occupy no bytes, so they overlap nothing */
    REQUIRE(write_st(p,
                     "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                     "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[2,2]}}", 4) == 0);
    rt_st_file f;
    char err[256];
    CHECKF(rt_st_read(p, &f, err, sizeof err) == 0, "%s", err);
    rt_st_free(&f);
}

/* ---- rt_safetensors: writing ------------------------------------------- */

TEST(st_write_atomic_and_errors) {
    float w[4] = {1, 2, 3, 4};
    rt_tensor t = {.name = "w", .dtype = RT_F32, .rank = 1, .shape = {4}, .data = w, .nbytes = sizeof w};
    const char *path = test_tmp_path("ckpt.safetensors");
    char err[512];
    REQUIREF(rt_st_write(path, &t, 1, NULL, NULL, 0, err, sizeof err) == 0, "%s", err);
    CHECK(count_tmp_files() == 0);
    /* Overwriting replaces the file. */
    w[0] = 9;
    REQUIREF(rt_st_write(path, &t, 1, NULL, NULL, 0, err, sizeof err) == 0, "%s", err);
    CHECK(count_tmp_files() == 0);
    rt_st_file f;
    REQUIREF(rt_st_read(path, &f, err, sizeof err) == 0, "%s", err);
    float back[4];
    CHECK(rt_tensor_to_f32(rt_st_find(&f, "w"), back, 4, path, err, sizeof err) == 0 && back[0] == 9);
    rt_st_free(&f);

    /* A missing directory: error naming the path, nothing left behind. */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.safetensors", test_tmpdir());
    CHECK(rt_st_write(bad, &t, 1, NULL, NULL, 0, err, sizeof err) == -1);
    CHECKF(strncmp(err, bad, strlen(bad)) == 0 && strstr(err, "No such file or directory") && !strchr(err, '\n'),
           "message: %s", err);

    /* The final name is a directory: the rename fails and the temporary
       file is removed. */
    char dir[600];
    snprintf(dir, sizeof dir, "%s/adir", test_tmpdir());
    REQUIRE(mkdir(dir, 0777) == 0);
    CHECK(rt_st_write(dir, &t, 1, NULL, NULL, 0, err, sizeof err) == -1);
    CHECKF(strstr(err, "cannot rename"), "message: %s", err);
    CHECK(count_tmp_files() == 0);

    /* Bad arguments are refused before anything is written, so the old
       file stays as it was. */
    rt_tensor two[2] = {t, t};
    CHECK(rt_st_write(path, two, 2, NULL, NULL, 0, err, sizeof err) == -1);
    CHECKF(strstr(err, "tensor name 'w' appears twice"), "message: %s", err);
    rt_tensor short_data = t;
    short_data.nbytes = 12;
    CHECK(rt_st_write(path, &short_data, 1, NULL, NULL, 0, err, sizeof err) == -1);
    CHECKF(strstr(err, "tensor 'w': 12 bytes of data, but F32 [4] is 16 bytes"), "message: %s", err);
    const char *mk[] = {"a", "a"}, *mv[] = {"1", "2"};
    CHECK(rt_st_write(path, &t, 1, mk, mv, 2, err, sizeof err) == -1);
    CHECKF(strstr(err, "metadata key 'a' appears twice"), "message: %s", err);
    rt_tensor meta_name = t;
    meta_name.name = "__metadata__";
    CHECK(rt_st_write(path, &meta_name, 1, NULL, NULL, 0, err, sizeof err) == -1);
    rt_tensor bad_utf8 = t;
    bad_utf8.name = "w\xff";
    CHECK(rt_st_write(path, &bad_utf8, 1, NULL, NULL, 0, err, sizeof err) == -1);
    CHECKF(strstr(err, "not valid UTF-8"), "message: %s", err);
    CHECK(count_tmp_files() == 0);
    REQUIREF(rt_st_read(path, &f, err, sizeof err) == 0, "%s", err);
    CHECK(f.ntensors == 1 && rt_tensor_to_f32(&f.tensors[0], back, 4, path, err, sizeof err) == 0 && back[0] == 9);
    rt_st_free(&f);

    /* No tensors at all is a valid file. */
    REQUIREF(rt_st_write(path, NULL, 0, NULL, NULL, 0, err, sizeof err) == 0, "%s", err);
    REQUIREF(rt_st_read(path, &f, err, sizeof err) == 0, "%s", err);
    CHECK(f.ntensors == 0 && f.nmeta == 0);
    rt_st_free(&f);
}

/* A job posted right after rt_pool_init, before the new workers have first
   run, is still done by each of them (it used to be missed, and the caller
   waited forever). */
static void pool_mark(void *ctx, int t) { ((int *)ctx)[t]++; }

static void pool_watchdog(int sig) {
    (void)sig;
    static const char m[] = "    rt_pool: a job posted right after rt_pool_init never finished\n";
    if (write(1, m, sizeof m - 1) < 0) _exit(2);
    _exit(1);
}

TEST(pool_job_right_after_init) {
    signal(SIGALRM, pool_watchdog);
    alarm(60);
    for (int i = 0; i < 300; i++) {
        int done[3] = {0};
        rt_pool_init(3);
        rt_pool_run(3, pool_mark, done);
        CHECKF(done[0] == 1 && done[1] == 1 && done[2] == 1, "round %d: tasks ran %d %d %d times", i, done[0], done[1], done[2]);
        rt_pool_init(1);
    }
    alarm(0);
    signal(SIGALRM, SIG_DFL);
}

/* Jobs back to back (workers still spinning), after pauses longer than the
   spin (workers asleep, woken by the condition variable), and with fewer
   tasks than threads: every task runs once per job, the others not at all. */
TEST(pool_jobs_spinning_and_sleeping) {
    signal(SIGALRM, pool_watchdog);
    alarm(60);
    rt_pool_init(3);
    for (int i = 0; i < 2000; i++) {
        int done[3] = {0}, tasks = 2 + i % 2;
        rt_pool_run(tasks, pool_mark, done);
        CHECKF(done[0] == 1 && done[1] == 1 && done[2] == (tasks == 3), "job %d (%d tasks): tasks ran %d %d %d times", i,
               tasks, done[0], done[1], done[2]);
        if (i % 200 == 0) {
            struct timespec pause = {0, 2000000};   /* 2 ms: past the spin */
            nanosleep(&pause, NULL);
        }
    }
    rt_pool_init(1);
    alarm(0);
    signal(SIGALRM, SIG_DFL);
}
