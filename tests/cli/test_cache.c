/*
** test_cache.c: the compile cache (compiler/cache.h). A second JIT build of
** a graph loads the cached object and computes bit-identical results with
** the same region sizes; a corrupted entry (flipped bytes, a truncated
** object, a garbled manifest) is reported, rebuilt and never run; the key
** changes with the graph, the target, the entry and the function; a cache
** that is off or cannot be written changes nothing but speed; and
** `rrc train` says when its step came from the cache.
*/
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "driver.h"
#include "engine.h"
#include "golden_util.h"
#include "frontend/lower.h"
#include "rt_rng.h"
#include "target.h"
#include "test.h"
#include "test_util.h"

/* The planned conv4 training step for batch B (K from the spec). */
static Graph *conv4_step(Arena *a, int B) {
    Diag d = {0};
    Spec *s = spec_load("specs/conv4.lua", a, &d);
    if (!s) return NULL;
    Graph *g = lower_train(s, B, 3, 32, 32, a, &d);
    PipelineOpts po = {.caps = cg_caps()};
    return g && pipeline_run(g, &d, &po) ? g : NULL;
}

/* Sets every leaf from a fixed stream, runs, and returns all outputs one
   after the other (malloc'd, *n floats). */
static float *run_outputs(Engine *e, Graph *g, int64_t *n) {
    rt_stream s;
    rt_stream_init(&s, 5, RT_DOMAIN_TEST, 11, 0);
    for (int i = 0; i < g->nnodes; i++) {
        Node *x = g->nodes[i];
        if (op_table[x->op].fusion != FUSE_LEAF) continue;
        int64_t k = node_numel(x);
        float *v = malloc((size_t)k * sizeof *v);
        for (int64_t j = 0; j < k; j++) {
            double u = rt_stream_uniform(&s);
            v[j] = strstr(x->name, "running_var") ? (float)(0.5 + u) : (float)(2 * u - 1);
        }
        engine_set(e, x, v);
        free(v);
    }
    engine_run(e);
    int64_t total = 0;
    for (int i = 0; i < g->nouts; i++) total += node_numel(g->outs[i].node);
    float *out = malloc((size_t)total * sizeof *out);
    int64_t at = 0;
    for (int i = 0; i < g->nouts; i++) {
        engine_get(e, g->outs[i].node, out + at);
        at += node_numel(g->outs[i].node);
    }
    *n = total;
    return out;
}

/* One JIT build of conv4's step at batch B: its outputs, whether the
   object came from the cache, and the graph's region sizes. */
typedef struct Build {
    bool ok, cached;
    float *out;
    int64_t n;
    int64_t region_bytes[RT_NREGIONS];
} Build;

static Build build_conv4(int B) {
    Build b = {0};
    Arena a = {0};
    Graph *g = conv4_step(&a, B);
    Engine e;
    CgOptions co = {0};
    if (g && engine_init(&e, g, ENGINE_JIT, &co)) {
        b.ok = true;
        b.cached = e.cached;
        memcpy(b.region_bytes, g->region_bytes, sizeof b.region_bytes);
        b.out = run_outputs(&e, g, &b.n);
        engine_free(&e);
    }
    arena_free(&a);
    return b;
}

static bool same_results(const Build *x, const Build *y) {
    return x->ok && y->ok && x->n == y->n && !memcmp(x->out, y->out, (size_t)x->n * sizeof *x->out) &&
           !memcmp(x->region_bytes, y->region_bytes, sizeof x->region_bytes);
}

/* ---- the cache directory and stderr of a test ---- */

static char saved_dir[1024];

/* Points RRC_CACHE_DIR at a fresh directory (or at `value` as given). */
static const char *use_cache(const char *name, const char *value) {
    const char *cur = getenv("RRC_CACHE_DIR");
    snprintf(saved_dir, sizeof saved_dir, "%s", cur ? cur : "");
    static char dir[1024];
    if (value) {
        snprintf(dir, sizeof dir, "%s", value);
    } else {
        snprintf(dir, sizeof dir, "%s/%s", test_tmpdir(), name);
        char cmd[1100];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) test_fail(__FILE__, __LINE__, "cannot clear %s", dir);
    }
    setenv("RRC_CACHE_DIR", dir, 1);
    return dir;
}

static void restore_cache(void) { setenv("RRC_CACHE_DIR", saved_dir, 1); }

static int saved_stderr = -1;
static char capture_path[600];

static void capture_begin(void) {
    snprintf(capture_path, sizeof capture_path, "%s/stderr.txt", test_tmpdir());
    fflush(stderr);
    saved_stderr = dup(2);
    int fd = open(capture_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
}

/* What went to stderr since capture_begin (malloc'd). */
static char *capture_end(void) {
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    char *s = test_read_file(capture_path, NULL);
    return s ? s : strdup("");
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* The entry directory of conv4's step at batch B in the current cache. */
static bool conv4_entry(int B, CacheEntry *ce) {
    Arena a = {0};
    Graph *g = conv4_step(&a, B);
    CgOptions co = {0};
    bool ok = g && cache_entry(ce, g, "jit", "rrc_step", &co);
    arena_free(&a);
    return ok;
}

/* ---- tests ---- */

TEST(jit_cache_hit_is_bit_identical) {
    const char *dir = use_cache("cache-hit", NULL);
    Build first = build_conv4(2), second = build_conv4(2);
    CHECKF(first.ok && !first.cached, "first build: ok %d, cached %d (the cache %s was empty)", first.ok, first.cached, dir);
    CHECKF(second.ok && second.cached, "second build: ok %d, cached %d", second.ok, second.cached);
    CHECKF(same_results(&first, &second), "the cached step differs from the built one (or its regions do)");
    CacheEntry ce;
    char path[1400];
    struct stat st;
    REQUIRE(conv4_entry(2, &ce));
    snprintf(path, sizeof path, "%s/rrc_step.objs", ce.dir);
    CHECKF(stat(path, &st) == 0 && st.st_size > 0, "%s: no object", path);
    CHECK(cache_check(&ce, "rrc_step.objs") == CACHE_HIT);
    /* the step was compiled in two parts: two non-empty objects */
    FILE *f = fopen(path, "rb");
    unsigned char head[32] = {0};
    size_t got = f ? fread(head, 1, sizeof head, f) : 0;
    if (f) fclose(f);
    uint64_t cnt = 0, l0 = 0, l1 = 0;
    memcpy(&cnt, head + 8, 8);
    memcpy(&l0, head + 16, 8);
    memcpy(&l1, head + 24, 8);
    CHECKF(got == sizeof head && memcmp(head, "RRCOBJS1", 8) == 0 && cnt == 2 && l0 > 0 && l1 > 0,
           "%s: not a pack of two objects (count %llu, lengths %llu %llu)", path, (unsigned long long)cnt,
           (unsigned long long)l0, (unsigned long long)l1);
    free(first.out);
    free(second.out);
    restore_cache();
}

/* Damages the cached object or manifest of conv4's B=2 step. */
static void damage(const CacheEntry *ce, int how) {
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", ce->dir, how == 2 ? "manifest" : "rrc_step.objs");
    FILE *f = fopen(path, "r+b");
    if (!f) { test_fail(__FILE__, __LINE__, "cannot open %s", path); return; }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    if (how == 0) {   /* flip bytes in the middle (code or data) */
        for (long at = size / 3; at < size / 3 + 16; at++) {
            fseek(f, at, SEEK_SET);
            int c = fgetc(f);
            fseek(f, at, SEEK_SET);
            fputc(c ^ 0x5a, f);
        }
        fclose(f);
    } else if (how == 1) {   /* truncate */
        fclose(f);
        if (truncate(path, size / 2) != 0) test_fail(__FILE__, __LINE__, "cannot truncate %s", path);
    } else {   /* a manifest naming another key */
        fseek(f, 12, SEEK_SET);   /* "rrc-cache-1 KEY ...": the key's first digit */
        int c = fgetc(f);
        fseek(f, 12, SEEK_SET);
        fputc(c == '0' ? '1' : '0', f);
        fclose(f);
    }
}

TEST(jit_cache_corrupt_entry_is_rebuilt) {
    use_cache("cache-corrupt", NULL);
    Build ref = build_conv4(2);
    REQUIRE(ref.ok && !ref.cached);
    CacheEntry ce;
    REQUIRE(conv4_entry(2, &ce));
    const char *hows[] = {"flipped bytes", "truncated object", "manifest of another key"};
    for (int how = 0; how < 3; how++) {
        damage(&ce, how);
        CHECKF(cache_check(&ce, "rrc_step.objs") == CACHE_BAD, "%s: the entry still checks", hows[how]);
        capture_begin();
        Build b = build_conv4(2);
        char *err = capture_end();
        CHECKF(b.ok && !b.cached, "%s: ok %d, cached %d", hows[how], b.ok, b.cached);
        CHECKF(count(err, "does not match its manifest; rebuilding") == 1, "%s: stderr: %s", hows[how], err);
        CHECKF(same_results(&ref, &b), "%s: the rebuilt step differs", hows[how]);
        free(err);
        free(b.out);
        /* the rebuilt entry was stored again */
        Build again = build_conv4(2);
        CHECKF(again.ok && again.cached && same_results(&ref, &again), "%s: not cached after the rebuild", hows[how]);
        free(again.out);
    }
    free(ref.out);
    restore_cache();
}

TEST(jit_cache_key_covers_graph_and_target) {
    use_cache("cache-key", NULL);
    Arena a = {0};
    Graph *g2 = conv4_step(&a, 2), *g2b = conv4_step(&a, 2), *g3 = conv4_step(&a, 3);
    REQUIRE(g2 && g2b && g3);
    Target t2, t3, tf;
    char err[256];
    REQUIRE(target_named("x86-64-v2", NULL, NULL, &t2, err, sizeof err) &&
            target_named("x86-64-v3", NULL, NULL, &t3, err, sizeof err) &&
            target_named("x86-64-v3", NULL, "+avx2", &tf, err, sizeof err));
    CgOptions host = {0}, v2 = {.target = &t2}, v3 = {.target = &t3}, feat = {.target = &tf}, entry = {.entry = "train_b2"};
    CacheEntry k[9];
    REQUIRE(cache_entry(&k[0], g2, "jit", "rrc_step", &host));
    REQUIRE(cache_entry(&k[1], g2b, "jit", "rrc_step", &host));
    REQUIRE(cache_entry(&k[2], g3, "jit", "rrc_step", &host));
    REQUIRE(cache_entry(&k[3], g2, "jit", "rrc_step", &v2));
    REQUIRE(cache_entry(&k[4], g2, "jit", "rrc_step", &v3));
    REQUIRE(cache_entry(&k[5], g2, "jit", "rrc_step", &feat));
    REQUIRE(cache_entry(&k[6], g2, "jit", "rrc_step", &entry));
    REQUIRE(cache_entry(&k[7], g2, "jit", "rrc_train_full", &host));
    REQUIRE(cache_entry(&k[8], g2, "aot", NULL, NULL));
    CHECKF(k[0].key == k[1].key && !strcmp(k[0].dir, k[1].dir), "one graph, two keys: %016llx %016llx",
           (unsigned long long)k[0].key, (unsigned long long)k[1].key);
    for (int i = 1; i < 9; i++)
        for (int j = i + 1; j < 9; j++)
            CHECKF(k[i].key != k[j].key, "keys %d and %d are equal", i, j);
    CHECKF(k[0].key != k[2].key, "B=2 and B=3 share a key");
    /* a float attribute differing below the dump's %g precision still changes the key */
    for (int i = 0; i < g2b->nnodes; i++)
        if (g2b->nodes[i]->op == OP_BN_TRAIN) {
            g2b->nodes[i]->fa[0] *= 1 + 1e-12;
            break;
        }
    CacheEntry kf;
    REQUIRE(cache_entry(&kf, g2b, "jit", "rrc_step", &host));
    CHECKF(kf.key != k[0].key, "an epsilon changed by 1e-12 keeps the key");
    arena_free(&a);
    /* and a B=3 build after a B=2 one builds */
    Build b2 = build_conv4(2), b3 = build_conv4(3);
    CHECK(b2.ok && !b2.cached && b3.ok && !b3.cached);
    free(b2.out);
    free(b3.out);
    restore_cache();
}

TEST(jit_cache_off_or_unwritable) {
    Build ref = build_conv4(2);   /* in the tests' cache */
    REQUIRE(ref.ok);
    use_cache(NULL, "off");
    char root[256];
    CHECK(!cache_root(root, sizeof root));
    Build a = build_conv4(2), b = build_conv4(2);
    CHECKF(a.ok && !a.cached && b.ok && !b.cached, "RRC_CACHE_DIR=off: cached %d %d", a.cached, b.cached);
    CHECK(same_results(&ref, &a) && same_results(&ref, &b));
    free(a.out);
    free(b.out);
    restore_cache();

    /* a cache under a regular file cannot be made: one note, and the run goes on */
    char file[600], dir[700];
    snprintf(file, sizeof file, "%s/not-a-dir", test_tmpdir());
    REQUIRE(test_write_file(file, "", 0));
    snprintf(dir, sizeof dir, "%s/cache", file);
    use_cache(NULL, dir);
    capture_begin();
    Build c = build_conv4(2), d = build_conv4(3);
    char *err = capture_end();
    CHECKF(c.ok && !c.cached && d.ok && !d.cached, "unwritable cache: ok %d %d", c.ok, d.ok);
    CHECK(same_results(&ref, &c));
    CHECKF(count(err, "cannot write the compile cache") == 1, "stderr: %s", err);
    free(err);
    free(c.out);
    free(d.out);
    free(ref.out);
    restore_cache();
}

/* The first loss of a 1-step run from metrics.csv (its second line, up to
   the seconds column), malloc'd. */
static char *first_row(const char *run) {
    char path[800], line[512] = "";
    snprintf(path, sizeof path, "%s/metrics.csv", run);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(line, sizeof line, f) || !fgets(line, sizeof line, f)) line[0] = 0;
        fclose(f);
    }
    /* epoch,step,loss,pair_acc,pos_acc,neg_acc: drop images_per_s and seconds */
    char *p = line;
    for (int commas = 0; *p && commas < 6; p++) commas += *p == ',';
    *p = 0;
    return strdup(line);
}

TEST(cli_train_uses_the_cache) {
    const char *dir = use_cache("cache-cli", NULL);
    char *rows[2], cmd[2048], *err = NULL;
    for (int run = 0; run < 2; run++) {
        char out[700];
        snprintf(out, sizeof out, "%s/cache-run%d", test_tmpdir(), run);
        snprintf(cmd, sizeof cmd, "RRC_CACHE_DIR='%s' %s train tests/specs/small_conv.lua --data synthetic:240 --max-steps 1 --quiet --out %s",
                 dir, test_rrc(), out);
        int rc = test_run(cmd, NULL, &err);
        CHECKF(rc == 0, "run %d: exit %d: %s", run, rc, err);
        CHECKF(strstr(err, "rrc: compiled small_conv") != NULL, "run %d: stderr: %s", run, err);
        CHECKF((strstr(err, "(cached)") != NULL) == (run == 1), "run %d: stderr: %s", run, err);
        free(err);
        rows[run] = first_row(out);
    }
    CHECKF(rows[0][0] && !strcmp(rows[0], rows[1]), "first steps differ: '%s' vs '%s'", rows[0], rows[1]);
    free(rows[0]);
    free(rows[1]);
    restore_cache();
}
