/*
** test_spec.c: tests of the Lua front end (spec_load): the bundled specs
** load with the structure and PyTorch parameter names of METHOD.md, every
** option reaches the C structs, and every bad spec in tests/specs/ fails
** with exactly the messages its "-- expect:" header lines give (file:line
** included). Runs from the repository root (spec paths are relative).
**
** It does not test lowering or shapes; those tests live with the IR.
*/
#include "test.h"
#include "test_util.h"

#include "frontend/spec.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------- */

/* spec_load with stderr captured into *err (malloc'd). */
static Spec *load_capture(const char *path, Arena *a, Diag *d, char **err) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/spec-stderr.txt", test_tmpdir());
    fflush(stderr);
    int saved = dup(2);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
    Spec *s = spec_load(path, a, d);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    *err = test_read_file(tmp, NULL);
    if (!*err) *err = calloc(1, 1);
    return s;
}

/* Loads a spec that must be valid; prints its errors if it is not. */
static Spec *load_ok(const char *path, Arena *a) {
    Diag d = {0};
    char *err;
    Spec *s = load_capture(path, a, &d, &err);
    CHECKF(s != NULL && d.nerrors == 0, "%s did not load: %s", path, err);
    CHECKF(err[0] == 0, "%s printed: %s", path, err);
    free(err);
    return s;
}

/* Parameter names (backbone.*) and the number of trainable values, found
   by walking the layers with the naming rule of spec.h (a named module
   adds "name.", an unnamed one nothing) and tracking channel counts. */
typedef struct Params {
    char names[512][128];  /* longer than any prefix (96) + leaf, so never cut */
    int n;
    long count;
} Params;

static void add_name(Params *p, const char *prefix, const char *leaf) {
    if (p->n < 512) snprintf(p->names[p->n++], sizeof p->names[0], "%s%s", prefix, leaf);
}

static int walk(const Layer *l, const char *prefix, int c, Params *p) {
    char pre[96];
    if (l->name) snprintf(pre, sizeof pre, "%s%s.", prefix, l->name);
    else snprintf(pre, sizeof pre, "%s", prefix);
    switch (l->kind) {
    case LK_CONV2D:
        add_name(p, pre, "weight");
        p->count += (long)l->out * c * l->kernel * l->kernel;
        if (l->bias) { add_name(p, pre, "bias"); p->count += l->out; }
        return l->out;
    case LK_LINEAR:
        add_name(p, pre, "weight");
        p->count += (long)l->out * c;
        if (l->bias) { add_name(p, pre, "bias"); p->count += l->out; }
        return l->out;
    case LK_BATCHNORM:
        add_name(p, pre, "weight");
        add_name(p, pre, "bias");
        add_name(p, pre, "running_mean");
        add_name(p, pre, "running_var");
        p->count += 2L * c;
        return c;
    case LK_SEQUENTIAL:
        for (int i = 0; i < l->nchildren; i++) c = walk(l->children[i], pre, c, p);
        return c;
    case LK_RESIDUAL: {
        int out = walk(l->body, pre, c, p);
        if (l->shortcut) walk(l->shortcut, pre, c, p);
        return out;
    }
    default:
        return c;
    }
}

static bool has_name(const Params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->names[i], name) == 0) return true;
    return false;
}

static int count_prefix(const Params *p, const char *sub) {
    int n = 0;
    for (int i = 0; i < p->n; i++) n += strstr(p->names[i], sub) != NULL;
    return n;
}

/* The child of a sequential with this name, or NULL. */
static const Layer *child(const Layer *seq, const char *name) {
    for (int i = 0; seq && i < seq->nchildren; i++)
        if (seq->children[i]->name && strcmp(seq->children[i]->name, name) == 0) return seq->children[i];
    return NULL;
}

/* The defaults every bundled spec shares (METHOD.md, reduced K/epochs). */
static void check_common(const Spec *s) {
    CHECK(s->K == 4);
    CHECK(s->batch == 64);
    CHECK(s->epochs == 100);
    CHECK(s->seed == 1);
    CHECK(s->head.aggregation == AGG_CAT);
    CHECK(s->head.hidden == 256);
    CHECK(s->head.slope == 0.01);
    CHECK(s->head.bn_eps == 1e-5 && s->head.bn_momentum == 0.1);
    CHECK(s->loss.kind == LOSS_FOCAL && s->loss.gamma == 2 && s->loss.alpha == 0.5);
    CHECK(s->optim.kind == OPT_ADAM && s->optim.lr == 1e-3);
    CHECK(s->optim.beta1 == 0.9 && s->optim.beta2 == 0.999 && s->optim.eps == 1e-8);
    CHECK(s->optim.weight_decay == 0);
    REQUIRE(s->naug == 5);
    CHECK(s->aug[0].kind == AUG_RANDOM_RESIZED_CROP && s->aug[0].size == s->in_h);
    CHECK(s->aug[0].scale[0] == 0.08 && s->aug[0].scale[1] == 1.0);
    CHECK(s->aug[0].ratio[0] == 3.0 / 4 && s->aug[0].ratio[1] == 4.0 / 3);
    CHECK(s->aug[1].kind == AUG_HFLIP && s->aug[1].p == 0.5);
    CHECK(s->aug[2].kind == AUG_COLOR_JITTER && s->aug[2].p == 0.8);
    CHECK(s->aug[2].brightness == 0.8 && s->aug[2].contrast == 0.8);
    CHECK(s->aug[2].saturation == 0.8 && s->aug[2].hue == 0.2);
    CHECK(s->aug[3].kind == AUG_GRAYSCALE && s->aug[3].p == 0.2);
    CHECK(s->aug[4].kind == AUG_NORMALIZE);
    CHECK(s->backbone->kind == LK_SEQUENTIAL && s->backbone->name == NULL);
}

/* ---- bundled specs ---------------------------------------------------- */

TEST(spec_conv4) {
    Arena a = {0};
    Spec *s = load_ok("specs/conv4.lua", &a);
    if (!s) { arena_free(&a); return; }
    CHECK(strcmp(s->name, "conv4") == 0 && strcmp(s->path, "specs/conv4.lua") == 0);
    CHECK(s->in_c == 3 && s->in_h == 32 && s->in_w == 32);
    CHECK(strcmp(s->data, "cifar10") == 0);
    check_common(s);
    CHECK(s->aug[4].mean[0] == 0.491 && s->aug[4].mean[2] == 0.447 && s->aug[4].std[1] == 0.243);
    Params *p = calloc(1, sizeof *p);
    walk(s->backbone, "backbone.", 3, p);
    static const char *const leaves[] = {"conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"};
    CHECK(p->n == 20);
    for (int i = 0; i < 20 && i < p->n; i++) {
        char want[96];
        snprintf(want, sizeof want, "backbone.layer%d.%s", i / 5 + 1, leaves[i % 5]);
        CHECKF(strcmp(p->names[i], want) == 0, "name %d: %s, want %s", i, p->names[i], want);
    }
    CHECKF(p->count == 24648, "conv4 has %ld parameters", p->count);
    REQUIRE(s->backbone->nchildren == 4);
    const Layer *l1 = s->backbone->children[0];
    REQUIRE(l1->nchildren == 4);
    const Layer *conv = l1->children[0];
    CHECK(conv->kind == LK_CONV2D && conv->kernel == 3 && conv->stride == 1 && conv->padding == 1 && !conv->bias);
    /* built in the lib file: the location is the line that made it */
    CHECK(strcmp(conv->loc.file, "specs/lib/conv4_backbone.lua") == 0 && conv->loc.line == 14);
    CHECK(l1->children[1]->kind == LK_BATCHNORM && l1->children[1]->dims == 2);
    CHECK(l1->children[1]->eps == 1e-5 && l1->children[1]->momentum == 0.1);
    CHECK(l1->children[2]->kind == LK_RELU);
    CHECK(l1->children[3]->kind == LK_AVGPOOL2D && l1->children[3]->kernel == 2 && l1->children[3]->stride == 2);
    CHECK(s->backbone->children[3]->children[3]->kind == LK_GLOBAL_AVGPOOL);
    /* the augmentations were built in the lib file; they say so */
    CHECK(strcmp(s->aug[0].loc.file, "specs/lib/augment.lua") == 0 && s->aug[0].loc.line > 0);
    free(p);
    arena_free(&a);
}

/* Parameters of the CIFAR ResNet with projection shortcuts, from n. */
static long cifar_resnet_params(int n) {
    long stem = 3 * 16 * 9 + 2 * 16;
    long s1 = n * 2L * (16 * 16 * 9 + 2 * 16);
    long s2 = (16 * 32 * 9 + 64) + (32 * 32 * 9 + 64) + (16 * 32 + 64) + (n - 1) * 2L * (32 * 32 * 9 + 64);
    long s3 = (32 * 64 * 9 + 128) + (64 * 64 * 9 + 128) + (32 * 64 + 128) + (n - 1) * 2L * (64 * 64 * 9 + 128);
    return stem + s1 + s2 + s3;
}

static void check_cifar_resnet(const char *path, const char *name, int n) {
    Arena a = {0};
    Spec *s = load_ok(path, &a);
    if (!s) { arena_free(&a); return; }
    CHECK(strcmp(s->name, name) == 0);
    CHECK(s->in_c == 3 && s->in_h == 32 && s->in_w == 32 && strcmp(s->data, "cifar10") == 0);
    check_common(s);
    const Layer *b = s->backbone;
    REQUIRE(b->nchildren == 7);
    CHECK(b->children[0]->kind == LK_CONV2D && strcmp(b->children[0]->name, "conv1") == 0);
    CHECK(b->children[1]->kind == LK_BATCHNORM && strcmp(b->children[1]->name, "bn1") == 0);
    CHECK(b->children[2]->kind == LK_RELU);
    CHECK(b->children[6]->kind == LK_GLOBAL_AVGPOOL);
    for (int st = 1; st <= 3; st++) {
        char nm[32];
        snprintf(nm, sizeof nm, "layer%d", st);
        const Layer *stage = child(b, nm);
        REQUIRE(stage && stage->kind == LK_SEQUENTIAL);
        CHECKF(stage->nchildren == n, "%s has %d blocks", nm, stage->nchildren);
        const Layer *blk = stage->children[0];
        REQUIRE(blk->nchildren == 2 && blk->children[0]->kind == LK_RESIDUAL && blk->children[1]->kind == LK_RELU);
        const Layer *res = blk->children[0];
        CHECK((res->shortcut != NULL) == (st > 1));
        REQUIRE(res->body->nchildren == 5);
        CHECK(res->body->children[0]->stride == (st > 1 ? 2 : 1));
        if (res->shortcut) {
            CHECK(strcmp(res->shortcut->name, "downsample") == 0 && res->shortcut->nchildren == 2);
            CHECK(res->shortcut->children[0]->kernel == 1 && res->shortcut->children[0]->stride == 2);
            CHECK(!res->shortcut->children[0]->bias);
        }
    }
    Params *p = calloc(1, sizeof *p);
    walk(b, "backbone.", 3, p);
    CHECKF(p->count == cifar_resnet_params(n), "%s: %ld parameters, want %ld", path, p->count, cifar_resnet_params(n));
    CHECK(has_name(p, "backbone.conv1.weight") && has_name(p, "backbone.bn1.running_var"));
    CHECK(has_name(p, "backbone.layer1.0.conv1.weight") && has_name(p, "backbone.layer1.0.bn1.bias"));
    CHECK(has_name(p, "backbone.layer1.0.conv2.weight") && has_name(p, "backbone.layer1.0.bn2.running_mean"));
    CHECK(has_name(p, "backbone.layer2.0.downsample.0.weight"));
    CHECK(has_name(p, "backbone.layer3.0.downsample.1.running_var"));
    CHECK(count_prefix(p, "downsample.0.weight") == 2);
    CHECK(count_prefix(p, ".bias") == count_prefix(p, ".running_mean"));  /* only BNs have a bias */
    char last[96];
    snprintf(last, sizeof last, "backbone.layer3.%d.bn2.weight", n - 1);
    CHECK(has_name(p, last));
    /* 1 + 6n convs + 2 downsample convs, each with a BN: 5 names per pair */
    CHECK(p->n == 5 * (6 * n + 3));
    free(p);
    arena_free(&a);
}

TEST(spec_resnet8) { check_cifar_resnet("specs/resnet8.lua", "resnet8", 1); }
TEST(spec_resnet32) {
    CHECK(cifar_resnet_params(5) == 466256);  /* METHOD.md's count checks the formula */
    check_cifar_resnet("specs/resnet32.lua", "resnet32", 5);
}
TEST(spec_resnet56) { check_cifar_resnet("specs/resnet56.lua", "resnet56", 9); }

TEST(spec_resnet34) {
    Arena a = {0};
    Spec *s = load_ok("specs/resnet34.lua", &a);
    if (!s) { arena_free(&a); return; }
    CHECK(s->in_c == 3 && s->in_h == 96 && s->in_w == 96 && strcmp(s->data, "stl10") == 0);
    check_common(s);
    CHECK(s->aug[4].mean[0] == 0.5 && s->aug[4].std[2] == 0.5);
    const Layer *b = s->backbone;
    REQUIRE(b->nchildren == 9);
    CHECK(b->children[0]->kernel == 7 && b->children[0]->stride == 2 && b->children[0]->padding == 3);
    CHECK(b->children[3]->kind == LK_MAXPOOL2D && b->children[3]->kernel == 3);
    CHECK(b->children[3]->stride == 2 && b->children[3]->padding == 1);
    static const int blocks[4] = {3, 4, 6, 3};
    for (int st = 0; st < 4; st++) {
        char nm[32];
        snprintf(nm, sizeof nm, "layer%d", st + 1);
        const Layer *stage = child(b, nm);
        REQUIRE(stage != NULL);
        CHECK(stage->nchildren == blocks[st]);
        CHECK((stage->children[0]->children[0]->shortcut != NULL) == (st > 0));
    }
    Params *p = calloc(1, sizeof *p);
    walk(b, "backbone.", 3, p);
    CHECKF(p->count == 21284672, "resnet34 has %ld parameters", p->count);
    CHECK(has_name(p, "backbone.layer4.2.bn2.running_var"));
    CHECK(has_name(p, "backbone.layer2.0.downsample.0.weight") && !has_name(p, "backbone.layer1.0.downsample.0.weight"));
    CHECK(count_prefix(p, "downsample.0.weight") == 3);
    free(p);
    arena_free(&a);
}

/* ---- every option ------------------------------------------------------ */

TEST(spec_tiny_defaults) {
    Arena a = {0};
    Spec *s = load_ok("tests/specs/tiny.lua", &a);
    if (!s) { arena_free(&a); return; }
    CHECK(strcmp(s->name, "tiny") == 0 && s->K == 2 && s->batch == 4);
    CHECK(s->in_c == 3 && s->in_h == 8 && s->in_w == 8);
    CHECK(s->naug == 0 && s->epochs == 100 && s->seed == 1 && strcmp(s->data, "cifar10") == 0);
    CHECK(s->head.aggregation == AGG_CAT && s->head.hidden == 256 && s->loss.kind == LOSS_FOCAL);
    CHECK(s->optim.kind == OPT_ADAM && s->optim.lr == 1e-3);
    /* defaults made by rr.model carry its line */
    CHECK(s->head.loc.line == 2 && s->loss.loc.line == 2 && s->optim.loc.line == 2);
    Params *p = calloc(1, sizeof *p);
    walk(s->backbone, "backbone.", 3, p);
    CHECK(p->n == 10 && has_name(p, "backbone.layer2.bn.running_mean"));
    free(p);
    arena_free(&a);
}

TEST(spec_every_option) {
    Arena a = {0};
    Spec *s = load_ok("tests/specs/tiny_all.lua", &a);
    if (!s) { arena_free(&a); return; }
    CHECK(s->in_c == 1 && s->in_h == 16 && s->K == 3 && s->batch == 16 && s->epochs == 7);
    CHECK(s->seed == 1234567890123ULL && strcmp(s->data, "fashion-mnist") == 0);
    const Layer *b = s->backbone;
    REQUIRE(b->nchildren == 7);
    const Layer *res = b->children[0];
    REQUIRE(res->kind == LK_RESIDUAL && strcmp(res->name, "block") == 0 && res->shortcut && res->body);
    const Layer *c1 = res->body->children[0], *bn1 = res->body->children[1], *lr = res->body->children[2];
    CHECK(c1->out == 6 && c1->kernel == 3 && c1->stride == 2 && c1->padding == 1 && c1->bias);
    CHECK(bn1->dims == 2 && bn1->eps == 1e-3 && bn1->momentum == 0.2);
    CHECK(lr->kind == LK_LEAKY_RELU && lr->slope == 0.1);
    CHECK(res->shortcut->kind == LK_CONV2D && !res->shortcut->bias && strcmp(res->shortcut->name, "proj") == 0);
    CHECK(b->children[1]->kind == LK_MAXPOOL2D && b->children[1]->padding == 1);
    CHECK(b->children[2]->kind == LK_AVGPOOL2D && b->children[2]->stride == 2 && b->children[2]->padding == 0);
    CHECK(b->children[3]->kind == LK_FLATTEN);
    CHECK(b->children[4]->kind == LK_LINEAR && b->children[4]->out == 5 && !b->children[4]->bias);
    CHECK(b->children[5]->kind == LK_BATCHNORM && b->children[5]->dims == 1 && b->children[5]->eps == 2e-5);
    CHECK(b->children[6]->kind == LK_RELU);
    REQUIRE(s->naug == 6);
    CHECK(s->aug[0].kind == AUG_RANDOM_CROP && s->aug[0].size == 16 && s->aug[0].padding == 2);
    CHECK(s->aug[1].scale[0] == 0.5 && s->aug[1].scale[1] == 0.9 && s->aug[1].ratio[1] == 2);
    CHECK(s->aug[2].p == 0.25);
    CHECK(s->aug[3].brightness == 0.1 && s->aug[3].contrast == 0.2 && s->aug[3].saturation == 0.3);
    CHECK(s->aug[3].hue == 0.4 && s->aug[3].p == 0.5);
    CHECK(s->aug[4].p == 0.125);
    CHECK(s->aug[5].mean[0] == 0.25 && s->aug[5].mean[2] == 0.25 && s->aug[5].std[1] == 0.5);
    CHECK(s->head.aggregation == AGG_MAX && s->head.hidden == 32 && s->head.slope == 0.2);
    CHECK(s->head.bn_eps == 1e-4 && s->head.bn_momentum == 0.3);
    CHECK(s->loss.kind == LOSS_BCE && s->loss.gamma == 2 && s->loss.alpha == 0.5);
    CHECK(s->optim.kind == OPT_SGD && s->optim.lr == 0.05 && s->optim.momentum == 0.8);
    CHECK(s->optim.weight_decay == 5e-4 && s->optim.lr_gamma == 0.2 && s->optim.nmilestones == 3);
    CHECK(s->optim.milestones[0] == 0.3 && s->optim.milestones[2] == 0.9);
    Params *p = calloc(1, sizeof *p);
    walk(b, "backbone.", 1, p);
    CHECK(has_name(p, "backbone.block.conv1.bias") && has_name(p, "backbone.block.proj.weight"));
    CHECK(has_name(p, "backbone.fc.weight") && !has_name(p, "backbone.fc.bias"));
    free(p);
    arena_free(&a);
}

TEST(spec_lib_helpers) {
    Arena a = {0};
    Spec *s = load_ok("tests/specs/with_lib.lua", &a);
    if (s) {
        CHECK(strcmp(s->name, "with_lib") == 0);  /* the default name is the file's */
        REQUIRE(s->backbone->nchildren == 3);
        const Layer *conv = s->backbone->children[1]->children[0];
        CHECK(conv->out == 8 && strcmp(conv->loc.file, "tests/specs/lib/blocks.lua") == 0 && conv->loc.line == 5);
    }
    arena_free(&a);
}

/* The example in specs/README.md loads (it sits in a temporary directory
   with a copy of specs/lib/augment.lua, which it includes). */
TEST(spec_readme_example) {
    char *readme = test_read_file("specs/README.md", NULL);
    REQUIRE(readme != NULL);
    char *start = strstr(readme, "```lua\n");
    char *end = start ? strstr(start + 7, "```") : NULL;
    REQUIREF(start && end, "no ```lua block in specs/README.md");
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/readme", test_tmpdir());
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/lib", dir);
    mkdir(path, 0700);
    char *lib = test_read_file("specs/lib/augment.lua", NULL);
    REQUIRE(lib != NULL);
    snprintf(path, sizeof path, "%s/lib/augment.lua", dir);
    test_write_file(path, lib, strlen(lib));
    snprintf(path, sizeof path, "%s/mini.lua", dir);
    test_write_file(path, start + 7, (size_t)(end - start - 7));
    Arena a = {0};
    Spec *s = load_ok(path, &a);
    CHECK(s && strcmp(s->name, "mini") == 0 && s->naug == 5 && s->backbone->nchildren == 2);
    arena_free(&a);
    free(lib);
    free(readme);
}

/* ---- bad specs ---------------------------------------------------------- */

/* The leading "-- expect: " lines of a spec, joined with newlines. */
static char *expected_errors(const char *path) {
    char *src = test_read_file(path, NULL);
    if (!src) return NULL;
    size_t cap = strlen(src) + 1, n = 0;
    char *out = calloc(1, cap);
    const char *line = src;
    while (strncmp(line, "-- expect: ", 11) == 0) {
        const char *e = strchr(line, '\n');
        size_t len = e ? (size_t)(e - line) : strlen(line);
        memcpy(out + n, line + 11, len - 11);
        n += len - 11;
        out[n++] = '\n';
        line += len + (e ? 1 : 0);
    }
    free(src);
    return out;
}

static void check_bad(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "tests/specs/%s.lua", name);
    char *want = expected_errors(path);
    REQUIREF(want && want[0], "%s has no '-- expect:' first line", path);
    Arena a = {0};
    Diag d = {0};
    char *err;
    Spec *s = load_capture(path, &a, &d, &err);
    CHECKF(s == NULL, "%s loaded", path);
    CHECKF(strcmp(err, want) == 0, "%s:\n  got:\n%s  want:\n%s", path, err, want);
    int lines = 0;
    for (const char *c = want; *c; c++) lines += *c == '\n';
    CHECKF(d.nerrors == lines, "%s: %d errors counted, %d printed", path, d.nerrors, lines);
    free(err);
    free(want);
    arena_free(&a);
}

/* One test per bad spec, so a failure names it. */
#define BAD(name) TEST(spec_##name) { check_bad(#name); }
BAD(bad_syntax)
BAD(bad_type)
BAD(bad_unknown_key)
BAD(bad_negative)
BAD(bad_io)
BAD(bad_os)
BAD(bad_require)
BAD(bad_dump)
BAD(bad_binary)
BAD(bad_loop)
BAD(bad_pcall_loop)
BAD(bad_memory)
BAD(bad_stack)
BAD(bad_no_backbone)
BAD(bad_aggregation)
BAD(bad_method)
BAD(bad_many)
BAD(bad_then_crash)
BAD(bad_include)
BAD(bad_global)
BAD(bad_return)
BAD(bad_dupname)
BAD(bad_view_size)
BAD(bad_lib)
BAD(bad_readonly)
BAD(bad_hole)
BAD(bad_random)
BAD(bad_rr_typo)

/* ---- files made on the fly --------------------------------------------- */

/* Writes `src` to tmpdir/name, loads it, and compares stderr with want
   (where "@" stands for the file's path). */
static void check_generated(const char *name, const char *src, size_t len, const char *want) {
    char path[512], expect[2048];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    test_write_file(path, src, len);
    size_t n = 0;
    for (const char *w = want; *w && n < sizeof expect - 512; w++) {
        if (*w == '@') n += (size_t)snprintf(expect + n, sizeof expect - n, "%s", path);
        else expect[n++] = *w;
    }
    expect[n] = 0;
    Arena a = {0};
    Diag d = {0};
    char *err;
    Spec *s = load_capture(path, &a, &d, &err);
    CHECKF(s == NULL, "%s loaded", name);
    CHECKF(strcmp(err, expect) == 0, "%s:\n  got:  %s  want: %s", name, err, expect);
    free(err);
    arena_free(&a);
}

TEST(spec_binary_chunks_refused) {
    static const char bin[] = "\x1bLuaT\x00\x19\x93\r\n\x1a\n";
    check_generated("binary.lua", bin, sizeof bin - 1,
                    "@: is a precompiled (binary) chunk; specs must be Lua source\n");
    /* an included binary file too (it sits next to the spec) */
    static const char inc[] = "-- includes a binary file\nlocal m = rr.include(\"binary.lua\")\n";
    char want[600];
    snprintf(want, sizeof want, "@:2: %s/binary.lua: is a precompiled (binary) chunk; specs must be Lua source\n",
             test_tmpdir());
    check_generated("incbin.lua", inc, sizeof inc - 1, want);
}

TEST(spec_missing_file) {
    Arena a = {0};
    Diag d = {0};
    char *err;
    CHECK(load_capture("tests/specs/no_such_spec.lua", &a, &d, &err) == NULL);
    CHECKF(strcmp(err, "tests/specs/no_such_spec.lua: cannot open: No such file or directory\n") == 0, "%s", err);
    free(err);
    CHECK(load_capture("tests/specs", &a, &d, &err) == NULL);
    CHECKF(strcmp(err, "tests/specs: not a regular file (a directory)\n") == 0, "%s", err);
    free(err);
    arena_free(&a);
}

/* Lua shortens chunk names over 60 characters to "...tail"; the messages
   must still carry the whole path. */
TEST(spec_long_path) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/a_directory_name_long_enough_to_make_lua_shorten_the_chunk_name", test_tmpdir());
    mkdir(dir, 0700);
    static const char src[] = "local x = 1\nlocal y = x .. {}\n";
    check_generated("a_directory_name_long_enough_to_make_lua_shorten_the_chunk_name/runtime.lua", src,
                    sizeof src - 1, "@:2: attempt to concatenate a table value\n");
    static const char syn[] = "local x = 1\nlocal y = = 2\n";
    check_generated("a_directory_name_long_enough_to_make_lua_shorten_the_chunk_name/syntax.lua", syn,
                    sizeof syn - 1, "@:2: unexpected symbol near '='\n");
}

TEST(spec_include_cycle) {
    char p[512];
    snprintf(p, sizeof p, "%s/cyc_b.lua", test_tmpdir());
    static const char b[] = "return rr.include(\"cyc_a.lua\")\n";
    test_write_file(p, b, sizeof b - 1);
    static const char a[] = "local b = rr.include(\"cyc_b.lua\")\n";
    char want[600];
    snprintf(want, sizeof want, "%s/cyc_b.lua:1: include: '@' includes itself (directly or through other files)\n",
             test_tmpdir());
    check_generated("cyc_a.lua", a, sizeof a - 1, want);
}

TEST(spec_print_goes_to_stderr) {
    static const char src[] = "print('hello', 1, nil, rr.relu{})\nreturn 1\n";
    check_generated("print.lua", src, sizeof src - 1,
                    "hello\t1\tnil\trr.relu{...} (@:1)\n@: spec must return rr.model{...} (got a number)\n");
}

TEST(spec_error_values) {
    static const char tbl[] = "\nerror({code = 1})\n";
    check_generated("errtable.lua", tbl, sizeof tbl - 1, "@:2: error object is a table value\n");
    static const char lvl0[] = "\n\nerror('no position', 0)\n";
    check_generated("errlevel0.lua", lvl0, sizeof lvl0 - 1, "@:3: no position\n");
    static const char args[] = "local a = rr.conv2d()\nlocal b = rr.relu({}, {})\nreturn rr.model{input = {3, 8, 8}, "
                               "backbone = rr.sequential{a, b}}\n";
    check_generated("args.lua", args, sizeof args - 1,
                    "@:1: conv2d: expects a table of options, e.g. rr.conv2d{out=16, kernel=3} (got nil)\n"
                    "@:2: relu: expects one table of options, e.g. rr.relu{...} (got 2 arguments)\n");
}

/* The prelude captured what it uses: a spec that reassigns globals and
   library fields cannot change how its options are checked. */
TEST(spec_prelude_is_robust) {
    static const char src[] =
        "ipairs, next, type = nil, nil, nil\nstring.match, string.format = nil, nil\n"
        "math.type, table.sort = nil, nil\n"
        "local c = rr.conv2d{out = 4, kernel = 3, stride = \"2\", zz = 1, aa = 2}\n";
    check_generated("override.lua", src, sizeof src - 1,
                    "@:4: conv2d: 'stride' must be a positive integer (got \"2\")\n"
                    "@:4: conv2d: unknown key 'aa'\n@:4: conv2d: unknown key 'zz'\n"
                    "@: spec must return rr.model{...} (got nothing)\n");
}

/* Finalizers run with hooks off, so they would escape the instruction cap. */
TEST(spec_no_finalizers) {
    static const char src[] = "local t = {}\nsetmetatable(t, {__gc = function() while true do end end})\n";
    check_generated("gc.lua", src, sizeof src - 1, "@:2: '__gc' metamethods are not available in a spec (sandbox)\n");
    static const char ok[] = "local t = setmetatable({}, {__index = function() return 1 end})\nassert(t.x == 1)\n"
                             "getmetatable(t).__gc = function() while true do end end\nt = nil\nreturn 1\n";
    check_generated("gc_late.lua", ok, sizeof ok - 1, "@: spec must return rr.model{...} (got a number)\n");
}

TEST(spec_shebang_line) {
    static const char src[] = "#!/usr/bin/env lua\n\nlocal x = nil .. 1\n";
    check_generated("shebang.lua", src, sizeof src - 1, "@:3: attempt to concatenate a nil value\n");
}

/* An error without a position, raised inside an included file, is placed
   at the included file's line (where it happened), not at the include. */
TEST(spec_error_in_include) {
    char p[512];
    snprintf(p, sizeof p, "%s/raises.lua", test_tmpdir());
    static const char lib[] = "local M = {}\n\nerror({}) \nreturn M\n";
    test_write_file(p, lib, sizeof lib - 1);
    static const char src[] = "local x = 1\nlocal m = rr.include(\"raises.lua\")\n";
    char want[600];
    snprintf(want, sizeof want, "%s:3: error object is a table value\n", p);
    check_generated("includes_raises.lua", src, sizeof src - 1, want);
}

TEST(spec_deep_nesting) {
    static const char src[] = "local x = rr.relu{}\nfor i = 1, 1000 do x = rr.sequential{x} end\n"
                              "return rr.model{input = {3, 8, 8}, backbone = x}\n";
    check_generated("deep.lua", src, sizeof src - 1, "@:2: sequential: layers are nested more than 64 deep\n");
    /* far deeper: the time must grow with the depth, not its square (the
       weak-keyed object table made it quadratic: docs/DECISIONS.md) */
    static const char deep[] = "local x = rr.relu{}\nfor i = 1, 30000 do x = rr.sequential{x} end\n"
                               "return rr.model{input = {3, 8, 8}, backbone = x}\n";
    check_generated("deeper.lua", deep, sizeof deep - 1, "@:2: sequential: layers are nested more than 64 deep\n");
}

/* ---- names -------------------------------------------------------------- */

TEST(spec_name_helpers) {
    for (int g = AGG_CAT; g <= AGG_MAX; g++) {
        Aggregation back;
        CHECK(aggregation_parse(aggregation_name((Aggregation)g), &back) && back == (Aggregation)g);
    }
    LossKind k;
    CHECK(loss_parse("focal", &k) && k == LOSS_FOCAL);
    CHECK(loss_parse("bce", &k) && k == LOSS_BCE);
    CHECK(!loss_parse("mse", &k) && !aggregation_parse("concat", &(Aggregation){0}));
    CHECK(strcmp(layer_kind_name(LK_CONV2D), "conv2d") == 0);
    CHECK(strcmp(layer_kind_name(LK_RESIDUAL), "residual") == 0);
}

/* ---- the baselines' specs (BASELINES.md) ------------------------------ */

/* What every baseline spec shares with the reference: batch 128, Adam, one
   Conv-4 or ResNet-32 backbone, and its method's pipeline. */
TEST(spec_baselines) {
    static const struct {
        const char *path;
        MethodKind kind;
        int K, naug;
        AugKind first;
        double lr;
        const char *head;
    } c[] = {
        {"specs/rotation_conv4.lua", METHOD_ROTATION, 1, 3, AUG_RANDOM_CROP, 1e-3, "classifier"},
        {"specs/rotation_resnet32.lua", METHOD_ROTATION, 1, 3, AUG_RANDOM_CROP, 1e-3, "classifier"},
        {"specs/simclr_conv4.lua", METHOD_SIMCLR, 2, 5, AUG_RANDOM_RESIZED_CROP, 1e-3, "head"},
        {"specs/simclr_resnet32.lua", METHOD_SIMCLR, 2, 5, AUG_RANDOM_RESIZED_CROP, 1e-3, "head"},
        {"specs/deepcluster_conv4.lua", METHOD_DEEPCLUSTER, 1, 3, AUG_RANDOM_CROP, 1e-3, "classifier"},
        {"specs/deepcluster_resnet32.lua", METHOD_DEEPCLUSTER, 1, 3, AUG_RANDOM_CROP, 1e-3, "classifier"},
        {"specs/dim_conv4.lua", METHOD_DIM, 1, 2, AUG_HFLIP, 1e-4, "local_d"},
        {"specs/dim_resnet32.lua", METHOD_DIM, 1, 2, AUG_HFLIP, 1e-4, "local_d"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        Arena a = {0};
        Spec *s = load_ok(c[i].path, &a);
        if (s) {
            const Method *m = &s->method;
            CHECKF(m->kind == c[i].kind && s->K == c[i].K, "%s: method %s, K %d", c[i].path, method_name(m->kind), s->K);
            CHECKF(s->batch == 128 && s->optim.kind == OPT_ADAM && s->optim.lr == c[i].lr, "%s: batch %d, lr %g", c[i].path,
                   s->batch, s->optim.lr);
            CHECKF(s->naug == c[i].naug && s->aug[0].kind == c[i].first && s->aug[s->naug - 1].kind == AUG_NORMALIZE,
                   "%s: pipeline", c[i].path);
            if (c[i].first == AUG_RANDOM_CROP) CHECK(s->aug[0].size == 32 && s->aug[0].padding == 4);
            CHECKF(m->head && m->head->name && !strcmp(m->head->name, c[i].head), "%s: head %s", c[i].path,
                   m->head && m->head->name ? m->head->name : "(none)");
            if (c[i].kind == METHOD_SIMCLR) CHECK(m->temperature == 0.5);
            if (c[i].kind == METHOD_DEEPCLUSTER)
                CHECKF(m->clusters == 100 && m->reset && !strcmp(m->reset, "classifier.linear2"), "%s: reset %s", c[i].path,
                       m->reset ? m->reset : "(none)");
            if (c[i].kind == METHOD_DIM)
                CHECK(m->beta == 1 && m->gamma == 0.1 && m->prior && m->prior->name && !strcmp(m->prior->name, "prior_d"));
        }
        arena_free(&a);
    }
}
