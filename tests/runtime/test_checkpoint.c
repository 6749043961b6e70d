/*
** test_checkpoint.c: checkpoints (rt_checkpoint) and the program helpers
** they rely on (rt_program.c).
**
** The programs here are built by hand: a fake backbone (a conv weight, a
** BatchNorm weight and bias, its two running statistics) and a relation
** head (one linear layer), laid out in byte arrays like the regions a
** compiled program uses, with tensors of other regions in the table that a
** checkpoint must not pick up. Every refusal is checked for its message
** (the name of the tensor at fault) and for leaving the regions exactly as
** they were. The crash test kills a child in the middle of a save with
** SIGXFSZ (a file size limit), which works even when the tests run as
** root, where making a directory read-only would not stop the writer.
*/
#include "test.h"
#include "test_util.h"

#include "rt_checkpoint.h"
#include "rt_file.h"
#include "rt_safetensors.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the fake programs ------------------------------------------------- */

#define PARAM_BYTES 576
#define STATE_BYTES 128

/* "tiny": conv [4,2,3,3], bn [4], relation linear [2,4] + [2]. */
static const rt_step_tensor tiny_tensors[] = {
    {"x", RT_REGION_INPUT, 0, 4, {2, 2, 4, 4}, {0}, 0},
    {"backbone.layer1.conv.weight", RT_REGION_PARAM, 0, 4, {4, 2, 3, 3}, {RT_INIT_NORMAL, 0.1}, 0},
    {"backbone.layer1.bn.weight", RT_REGION_PARAM, 320, 1, {4}, {RT_INIT_CONST, 1}, 0},
    {"backbone.layer1.bn.bias", RT_REGION_PARAM, 384, 1, {4}, {RT_INIT_CONST, 0}, 0},
    {"backbone.layer1.bn.running_mean", RT_REGION_STATE, 0, 1, {4}, {RT_INIT_CONST, 0}, 0},
    {"backbone.layer1.bn.running_var", RT_REGION_STATE, 64, 1, {4}, {RT_INIT_CONST, 1}, 0},
    {"relation.linear1.weight", RT_REGION_PARAM, 448, 2, {2, 4}, {RT_INIT_UNIFORM, 0.5}, 0},
    {"relation.linear1.bias", RT_REGION_PARAM, 512, 1, {2}, {RT_INIT_UNIFORM, 0.5}, 0},
    {"loss", RT_REGION_OUTPUT, 0, 0, {0}, {0}, 0},
    {"grad.relation.linear1.bias", RT_REGION_OUTPUT, 64, 1, {2}, {0}, 0},
};

/* "other": the same names, but a BatchNorm of 8 channels (a conv of 8
   output channels) at other offsets: a checkpoint of another layout. */
static const rt_step_tensor other_tensors[] = {
    {"backbone.layer1.conv.weight", RT_REGION_PARAM, 0, 4, {4, 2, 3, 3}, {RT_INIT_NORMAL, 0.1}, 0},
    {"backbone.layer1.bn.weight", RT_REGION_PARAM, 320, 1, {8}, {RT_INIT_CONST, 1}, 0},
    {"backbone.layer1.bn.bias", RT_REGION_PARAM, 384, 1, {8}, {RT_INIT_CONST, 0}, 0},
    {"backbone.layer1.bn.running_mean", RT_REGION_STATE, 0, 1, {8}, {RT_INIT_CONST, 0}, 0},
    {"backbone.layer1.bn.running_var", RT_REGION_STATE, 64, 1, {8}, {RT_INIT_CONST, 1}, 0},
    {"relation.linear1.weight", RT_REGION_PARAM, 448, 2, {2, 8}, {RT_INIT_UNIFORM, 0.5}, 0},
    {"relation.linear1.bias", RT_REGION_PARAM, 512, 1, {2}, {RT_INIT_UNIFORM, 0.5}, 0},
};

#define NT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const rt_entry tiny_entry = {
    .name = "train_b2", .region_bytes = {PARAM_BYTES, STATE_BYTES, 1024, 128, 0},
    .tensors = tiny_tensors, .ntensors = NT(tiny_tensors), .K = 2, .B = 2,
};
static const rt_entry other_entry = {
    .name = "train_b2", .region_bytes = {PARAM_BYTES, STATE_BYTES, 0, 0, 0},
    .tensors = other_tensors, .ntensors = NT(other_tensors), .K = 2, .B = 2,
};

static rt_program make_prog(const rt_entry *e, const char *spec, rt_optim_kind opt) {
    rt_program p;
    memset(&p, 0, sizeof p);
    p.spec_name = spec;
    p.train_full = e;
    p.layout_hash = rt_layout_hash(e);
    p.seed = 7;
    p.optim = opt;
    return p;
}

/* A model's memory: the two regions and the two optimizer buffers. */
typedef struct Mem {
    _Alignas(64) char params[PARAM_BYTES];
    _Alignas(64) char state[STATE_BYTES];
    _Alignas(64) float m[PARAM_BYTES / 4];
    _Alignas(64) float v[PARAM_BYTES / 4];
} Mem;

/* Every float of every buffer gets a value that tells which buffer and
   element it is, offset by `salt`; the padding between tensors too. */
static void fill(Mem *x, float salt) {
    float *pp = (float *)(void *)x->params, *ss = (float *)(void *)x->state;
    for (int i = 0; i < PARAM_BYTES / 4; i++) {
        pp[i] = salt + 0.001f * (float)i;
        x->m[i] = salt + 1000 + 0.001f * (float)i;
        x->v[i] = salt + 2000 + 0.001f * (float)i;
    }
    for (int i = 0; i < STATE_BYTES / 4; i++) ss[i] = salt + 3000 + 0.001f * (float)i;
}

static const float *tensor_of(const Mem *x, const rt_program *p, const char *name) {
    static const float none[128];
    const rt_step_tensor *t = rt_entry_tensor(p->train_full, name);
    if (!t) {
        test_fail(__FILE__, __LINE__, "no tensor %s", name);
        return none;
    }
    const char *base = t->region == RT_REGION_PARAM ? x->params : x->state;
    return (const float *)(const void *)(base + t->offset);
}

/* DIR/NAME.tmp.PID-START, the temporary file of process pid, into buf. */
static bool find_tmp(const char *dir, const char *name, pid_t pid, char *buf, size_t n) {
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s.tmp.%ld-", name, (long)pid);
    DIR *d = opendir(dir);
    if (!d) return false;
    struct dirent *de;
    bool found = false;
    while (!found && (de = readdir(d)))
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) found = snprintf(buf, n, "%s/%s", dir, de->d_name) < (int)n;
    closedir(d);
    return found;
}

static int load_all(const char *path, const rt_program *p, Mem *x, int64_t *step, int64_t *epoch, int flags,
                    char *err, size_t errlen) {
    rt_ckpt_run got;
    int rc = rt_checkpoint_load(path, p, x->params, x->state, x->m, x->v, NULL, &got, flags, err, errlen);
    if (rc == 0 && step) *step = got.step;
    if (rc == 0 && epoch) *epoch = got.epoch;
    return rc;
}

/* Writes a safetensors file of F32 tensors by name and shape; the data of
   each is filled with `val`. For hand-made files (PyTorch-like names). */
typedef struct Spec { const char *name; int rank; int64_t shape[4]; } Spec;
static int write_named(const char *path, const Spec *s, int n, float val, const char *const *mk, const char *const *mv,
                       int nmeta) {
    rt_tensor ts[16];
    float data[16][128];
    for (int i = 0; i < n; i++) {
        memset(&ts[i], 0, sizeof ts[i]);
        ts[i].name = s[i].name;
        ts[i].dtype = RT_F32;
        ts[i].rank = s[i].rank;
        int64_t numel = 1;
        for (int d = 0; d < s[i].rank; d++) { ts[i].shape[d] = s[i].shape[d]; numel *= s[i].shape[d]; }
        for (int64_t j = 0; j < numel; j++) data[i][j] = val + (float)j;
        ts[i].data = data[i];
        ts[i].nbytes = (size_t)numel * 4;
    }
    char err[512];
    int rc = rt_st_write(path, ts, n, mk, mv, nmeta, err, sizeof err);
    if (rc) printf("    write_named: %s\n", err);
    return rc;
}

/* ---- rt_program.c ------------------------------------------------------ */

TEST(program_entry_tensor_and_layout_hash) {
    CHECK(rt_entry_tensor(&tiny_entry, "backbone.layer1.bn.bias") == &tiny_tensors[3]);
    CHECK(rt_entry_tensor(&tiny_entry, "backbone.layer1.bn") == NULL);
    uint64_t h = rt_layout_hash(&tiny_entry);
    CHECK(h == rt_layout_hash(&tiny_entry));
    CHECK(h != rt_layout_hash(&other_entry));
    /* tensors of other regions do not count, an offset does */
    rt_step_tensor t2[NT(tiny_tensors)];
    memcpy(t2, tiny_tensors, sizeof t2);
    rt_entry e2 = tiny_entry;
    e2.tensors = t2;
    t2[0].offset = 512;   /* "x" moves: same layout */
    t2[8].dim[0] = 3;     /* "loss" changes: same layout */
    CHECK(rt_layout_hash(&e2) == h);
    t2[7].offset = 0;     /* relation.linear1.bias moves */
    CHECK(rt_layout_hash(&e2) != h);
}

/* ---- round trip -------------------------------------------------------- */

TEST(checkpoint_round_trip) {
    rt_program p = make_prog(&tiny_entry, "tiny", RT_OPT_ADAM);
    p.seed = 12345678901ULL;
    static Mem a, b;
    fill(&a, 1);
    const char *path = test_tmp_path("rt.safetensors");
    char err[512] = "";
    REQUIREF(rt_checkpoint_save(path, &p, a.params, a.state, a.m, a.v, &(rt_ckpt_run){4242, 17, 12345678901ULL, 0}, err, sizeof err) == 0, "%s", err);

    /* what is in the file: names, shapes, metadata; nothing of INPUT/OUTPUT */
    rt_st_file f;
    REQUIREF(rt_st_read(path, &f, err, sizeof err) == 0, "%s", err);
    CHECK(f.ntensors == 7 + 2 * 5);
    CHECK(rt_st_find(&f, "x") == NULL && rt_st_find(&f, "loss") == NULL);
    CHECK(rt_st_find(&f, "grad.relation.linear1.bias") == NULL);
    const rt_tensor *cw = rt_st_find(&f, "backbone.layer1.conv.weight");
    CHECK(cw && cw->dtype == RT_F32 && cw->rank == 4 && cw->shape[0] == 4 && cw->shape[3] == 3);
    CHECK(rt_st_find(&f, "backbone.layer1.bn.running_var") != NULL);
    const rt_tensor *om = rt_st_find(&f, "optim.m.relation.linear1.weight");
    CHECK(om && om->rank == 2 && om->shape[0] == 2 && om->shape[1] == 4);
    CHECK(rt_st_find(&f, "optim.v.backbone.layer1.bn.bias") != NULL);
    CHECK(rt_st_find(&f, "optim.m.backbone.layer1.bn.running_mean") == NULL);   /* stats have no moments */
    CHECK(rt_st_find(&f, "optim.momentum.relation.linear1.bias") == NULL);
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)p.layout_hash);
    const char *meta_want[][2] = {{"format", "rrc-checkpoint-1"}, {"spec", "tiny"}, {"step", "4242"}, {"epoch", "17"},
                                  {"seed", "12345678901"}, {"layout_hash", hash}, {"optimizer", "adam"},
                                  {"method", "relational"}};
    for (int i = 0; i < 8; i++) {
        const char *got = rt_st_meta(&f, meta_want[i][0]);
        CHECKF(got && strcmp(got, meta_want[i][1]) == 0, "metadata %s: '%s', want '%s'", meta_want[i][0],
               got ? got : "(none)", meta_want[i][1]);
    }
    CHECK(rt_st_meta(&f, "images") == NULL);   /* not known: not recorded, never compared */
    rt_st_free(&f);

    /* back into zeroed memory: every tensor byte for byte */
    memset(&b, 0, sizeof b);
    int64_t step = -1, epoch = -1;
    REQUIREF(load_all(path, &p, &b, &step, &epoch, RT_CKPT_REQUIRE_OPTIM, err, sizeof err) == 0, "%s", err);
    CHECK(step == 4242 && epoch == 17);
    for (int i = 0; i < tiny_entry.ntensors; i++) {
        const rt_step_tensor *t = &tiny_tensors[i];
        if (t->region != RT_REGION_PARAM && t->region != RT_REGION_STATE) continue;
        size_t nb = 4;
        for (int d = 0; d < t->rank; d++) nb *= (size_t)t->dim[d];
        const char *ba = t->region == RT_REGION_PARAM ? a.params : a.state;
        const char *bb = t->region == RT_REGION_PARAM ? b.params : b.state;
        CHECKF(memcmp(ba + t->offset, bb + t->offset, nb) == 0, "tensor %s differs", t->name);
        if (t->region == RT_REGION_PARAM) {
            CHECKF(memcmp((char *)a.m + t->offset, (char *)b.m + t->offset, nb) == 0, "m of %s differs", t->name);
            CHECKF(memcmp((char *)a.v + t->offset, (char *)b.v + t->offset, nb) == 0, "v of %s differs", t->name);
        }
    }
    /* the padding between tensors is not the checkpoint's business */
    CHECK(((float *)(void *)b.params)[300 / 4] == 0);

    /* step and epoch may be skipped; optimizer buffers may be NULL */
    memset(&b, 0, sizeof b);
    REQUIREF(rt_checkpoint_load(path, &p, b.params, b.state, NULL, NULL, NULL, NULL, 0, err, sizeof err) == 0, "%s", err);
    CHECK(memcmp(tensor_of(&a, &p, "relation.linear1.bias"), tensor_of(&b, &p, "relation.linear1.bias"), 8) == 0);
    CHECK(b.m[0] == 0 && b.v[0] == 0);

    /* saving without optimizer state: loads, but not for a resume */
    const char *path2 = test_tmp_path("rt_noopt.safetensors");
    REQUIREF(rt_checkpoint_save(path2, &p, a.params, a.state, NULL, NULL, &(rt_ckpt_run){1, 1, 1, 0}, err, sizeof err) == 0, "%s", err);
    memset(&b, 0, sizeof b);
    REQUIREF(load_all(path2, &p, &b, NULL, NULL, 0, err, sizeof err) == 0, "%s", err);
    CHECK(b.m[0] == 0);   /* absent optimizer state: buffers left as they were */
    memset(&b, 0, sizeof b);
    CHECK(load_all(path2, &p, &b, NULL, NULL, RT_CKPT_REQUIRE_OPTIM, err, sizeof err) == -1);
    CHECKF(strstr(err, "has no optimizer state; cannot resume") && strncmp(err, path2, strlen(path2)) == 0, "%s", err);
    const float *pb = (const float *)(const void *)b.params;
    CHECK(pb[0] == 0 && pb[100] == 0);
}

TEST(checkpoint_sgd_momentum) {
    rt_program p = make_prog(&tiny_entry, "tiny", RT_OPT_SGD);
    static Mem a, b;
    fill(&a, 5);
    const char *path = test_tmp_path("sgd.safetensors");
    char err[512] = "";
    /* a stray opt_v is not written for SGD */
    REQUIREF(rt_checkpoint_save(path, &p, a.params, a.state, a.m, a.v, &(rt_ckpt_run){10, 2, 1, 0}, err, sizeof err) == 0, "%s", err);
    rt_st_file f;
    REQUIREF(rt_st_read(path, &f, err, sizeof err) == 0, "%s", err);
    CHECK(rt_st_find(&f, "optim.momentum.backbone.layer1.conv.weight") != NULL);
    CHECK(rt_st_find(&f, "optim.m.backbone.layer1.conv.weight") == NULL);
    CHECK(rt_st_find(&f, "optim.v.backbone.layer1.conv.weight") == NULL);
    CHECK(rt_st_meta(&f, "optimizer") && strcmp(rt_st_meta(&f, "optimizer"), "sgd") == 0);
    rt_st_free(&f);

    memset(&b, 0, sizeof b);
    REQUIREF(load_all(path, &p, &b, NULL, NULL, RT_CKPT_REQUIRE_OPTIM, err, sizeof err) == 0, "%s", err);
    CHECK(memcmp(a.m, b.m, 72 * 4) == 0);
    CHECK(b.v[0] == 0);   /* SGD has no second buffer: untouched */

    /* an Adam program cannot resume from SGD state */
    rt_program pa = make_prog(&tiny_entry, "tiny", RT_OPT_ADAM);
    memset(&b, 0, sizeof b);
    CHECK(load_all(path, &pa, &b, NULL, NULL, RT_CKPT_REQUIRE_OPTIM, err, sizeof err) == -1);
    CHECKF(strstr(err, "optimizer state for sgd, this spec trains with adam; cannot resume"), "%s", err);
    CHECK(b.m[0] == 0 && ((float *)(void *)b.params)[0] == 0);
    /* but it can take the weights (the momentum is not an unknown tensor) */
    REQUIREF(load_all(path, &pa, &b, NULL, NULL, 0, err, sizeof err) == 0, "%s", err);
    CHECK(memcmp(a.params, b.params, 72 * 4) == 0 && b.m[0] == 0);
}

/* ---- refusals ---------------------------------------------------------- */

TEST(checkpoint_other_layout_refused) {
    rt_program po = make_prog(&other_entry, "other", RT_OPT_ADAM);
    rt_program p = make_prog(&tiny_entry, "tiny", RT_OPT_ADAM);
    static Mem a, b, snap;
    fill(&a, 2);
    fill(&b, 9);
    snap = b;
    const char *path = test_tmp_path("other.safetensors");
    char err[512] = "";
    REQUIREF(rt_checkpoint_save(path, &po, a.params, a.state, a.m, a.v, &(rt_ckpt_run){1, 1, 1, 0}, err, sizeof err) == 0, "%s", err);
    CHECK(load_all(path, &p, &b, NULL, NULL, 0, err, sizeof err) == -1);
    /* the conv weight matches; the first mismatch in model order is named */
    char want[600];
    snprintf(want, sizeof want,
             "%s: tensor 'backbone.layer1.bn.weight' has shape [8], this spec needs [4] (a checkpoint of another spec? "
             "it says spec 'other')", path);
    CHECKF(strcmp(err, want) == 0, "got  %s\n    want %s", err, want);
    CHECK(memcmp(&b, &snap, sizeof b) == 0);
    /* backbone-only loading refuses it too */
    CHECK(load_all(path, &p, &b, NULL, NULL, RT_CKPT_BACKBONE_ONLY, err, sizeof err) == -1);
    CHECKF(strstr(err, "'backbone.layer1.bn.weight' has shape [8], this spec needs [4]"), "%s", err);
    CHECK(memcmp(&b, &snap, sizeof b) == 0);
}

TEST(checkpoint_missing_and_unknown_tensors) {
    rt_program p = make_prog(&tiny_entry, "tiny", RT_OPT_ADAM);
    static Mem b, snap;
    fill(&b, 4);
    snap = b;
    char err[512] = "";
    const char *mk[] = {"format", "spec"}, *mv[] = {"rrc-checkpoint-1", "resnet8"};
    Spec all[] = {
        {"backbone.layer1.conv.weight", 4, {4, 2, 3, 3}}, {"backbone.layer1.bn.weight", 1, {4}},
        {"backbone.layer1.bn.bias", 1, {4}}, {"backbone.layer1.bn.running_mean", 1, {4}},
        {"backbone.layer1.bn.running_var", 1, {4}}, {"relation.linear1.weight", 2, {2, 4}},
        {"relation.linear1.bias", 1, {2}}, {"backbone.layer9.conv.weight", 1, {3}},
    };

    /* a missing parameter, named, with the spec the file claims */
    const char *path = test_tmp_path("missing.safetensors");
    REQUIRE(write_named(path, all, 6, 1, mk, mv, 2) == 0);
    CHECK(load_all(path, &p, &b, NULL, NULL, 0, err, sizeof err) == -1);
    char want[600];
    snprintf(want, sizeof want,
             "%s: missing tensor 'relation.linear1.bias' (a checkpoint of another spec? it says spec 'resnet8')", path);
    CHECKF(strcmp(err, want) == 0, "got  %s\n    want %s", err, want);
    CHECK(memcmp(&b, &snap, sizeof b) == 0);

    /* running statistics may be absent: the current ones stay */
    Spec nostats[] = {all[0], all[1], all[2], all[5], all[6]};
    path = test_tmp_path("nostats.safetensors");
    REQUIRE(write_named(path, nostats, 5, 100, NULL, NULL, 0) == 0);
    REQUIREF(load_all(path, &p, &b, NULL, NULL, 0, err, sizeof err) == 0, "%s", err);
    CHECK(memcmp(b.state, snap.state, sizeof b.state) == 0);
    CHECK(tensor_of(&b, &p, "relation.linear1.bias")[1] == 101);
    CHECK(tensor_of(&b, &p, "backbone.layer1.conv.weight")[71] == 171);
    CHECK(memcmp(b.m, snap.m, sizeof b.m) == 0);   /* no optimizer state in the file */
    b = snap;

    /* an unknown tensor is refused (it means the wrong file or spec) */
    path = test_tmp_path("unknown.safetensors");
    REQUIRE(write_named(path, all, 8, 1, NULL, NULL, 0) == 0);
    CHECK(load_all(path, &p, &b, NULL, NULL, 0, err, sizeof err) == -1);
    CHECKF(strstr(err, "unknown tensor 'backbone.layer9.conv.weight'"), "%s", err);
    CHECK(memcmp(&b, &snap, sizeof b) == 0);
    /* also when only the backbone is wanted: it is a backbone tensor */
    CHECK(load_all(path, &p, &b, NULL, NULL, RT_CKPT_BACKBONE_ONLY, err, sizeof err) == -1);
    CHECKF(strstr(err, "'backbone.layer9.conv.weight'"), "%s", err);
    CHECK(memcmp(&b, &snap, sizeof b) == 0);

    /* num_batches_tracked (I64, as PyTorch stores it) is accepted */
    path = test_tmp_path("nbt.safetensors");
    {
        rt_tensor ts[8];
        float data[7][72];
        int64_t nbt = 5;
        for (int i = 0; i < 7; i++) {
            memset(&ts[i], 0, sizeof ts[i]);
            ts[i].name = all[i].name;
            ts[i].dtype = RT_F32;
            ts[i].rank = all[i].rank;
            int64_t n = 1;
            for (int d = 0; d < all[i].rank; d++) n *= ts[i].shape[d] = all[i].shape[d];
            for (int j = 0; j < n; j++) data[i][j] = 0.5f;
            ts[i].data = data[i];
            ts[i].nbytes = (size_t)n * 4;
        }
        ts[7] = (rt_tensor){.name = "backbone.layer1.bn.num_batches_tracked", .dtype = RT_I64, .rank = 0,
                            .data = &nbt, .nbytes = 8};
        REQUIREF(rt_st_write(path, ts, 8, NULL, NULL, 0, err, sizeof err) == 0, "%s", err);
    }
    REQUIREF(load_all(path, &p, &b, NULL, NULL, 0, err, sizeof err) == 0, "%s", err);
    CHECK(tensor_of(&b, &p, "backbone.layer1.bn.running_var")[3] == 0.5f);
    b = snap;

    /* a parameter of the wrong dtype */
    path = test_tmp_path("dtype.safetensors");
    {
        int32_t ints[2] = {1, 2};
        rt_tensor t = {.name = "relation.linear1.bias", .dtype = RT_I32, .rank = 1, .shape = {2}, .data = ints,
                       .nbytes = 8};
        rt_tensor ts[7];
        float data[6][72] = {{0}};
        for (int i = 0; i < 6; i++) {
            memset(&ts[i], 0, sizeof ts[i]);
            ts[i].name = all[i].name;
            ts[i].dtype = RT_F32;
            ts[i].rank = all[i].rank;
            int64_t n = 1;
            for (int d = 0; d < all[i].rank; d++) n *= ts[i].shape[d] = all[i].shape[d];
            ts[i].data = data[i];
            ts[i].nbytes = (size_t)n * 4;
        }
        ts[6] = t;
        REQUIREF(rt_st_write(path, ts, 7, NULL, NULL, 0, err, sizeof err) == 0, "%s", err);
    }
    CHECK(load_all(path, &p, &b, NULL, NULL, 0, err, sizeof err) == -1);
    CHECKF(strstr(err, "tensor 'relation.linear1.bias' has dtype I32"), "%s", err);
    CHECK(memcmp(&b, &snap, sizeof b) == 0);

    /* another rrc checkpoint format is refused; PyTorch's "pt" is not */
    const char *mk2[] = {"format"}, *mv2[] = {"rrc-checkpoint-2"}, *mv3[] = {"pt"};
    path = test_tmp_path("fmt2.safetensors");
    REQUIRE(write_named(path, all, 7, 1, mk2, mv2, 1) == 0);
    CHECK(load_all(path, &p, &b, NULL, NULL, 0, err, sizeof err) == -1);
    CHECKF(strstr(err, "format 'rrc-checkpoint-2'"), "%s", err);
    CHECK(memcmp(&b, &snap, sizeof b) == 0);
    path = test_tmp_path("fmtpt.safetensors");
    REQUIRE(write_named(path, all, 7, 1, mk2, mv3, 1) == 0);
    CHECKF(load_all(path, &p, &b, NULL, NULL, 0, err, sizeof err) == 0, "%s", err);
}

TEST(checkpoint_backbone_only) {
    rt_program p = make_prog(&tiny_entry, "tiny", RT_OPT_ADAM);
    static Mem a, b, snap;
    char err[512] = "";

    /* a full rrc checkpoint: only backbone.* is taken */
    fill(&a, 3);
    fill(&b, 8);
    snap = b;
    const char *path = test_tmp_path("full.safetensors");
    REQUIREF(rt_checkpoint_save(path, &p, a.params, a.state, a.m, a.v, &(rt_ckpt_run){1, 1, 1, 0}, err, sizeof err) == 0, "%s", err);
    REQUIREF(load_all(path, &p, &b, NULL, NULL, RT_CKPT_BACKBONE_ONLY, err, sizeof err) == 0, "%s", err);
    CHECK(memcmp(tensor_of(&b, &p, "backbone.layer1.conv.weight"), tensor_of(&a, &p, "backbone.layer1.conv.weight"),
                 72 * 4) == 0);
    CHECK(memcmp(tensor_of(&b, &p, "backbone.layer1.bn.running_var"), tensor_of(&a, &p, "backbone.layer1.bn.running_var"),
                 16) == 0);
    CHECK(memcmp(tensor_of(&b, &p, "relation.linear1.weight"), tensor_of(&snap, &p, "relation.linear1.weight"), 32) == 0);
    CHECK(memcmp(b.m, snap.m, sizeof b.m) == 0 && memcmp(b.v, snap.v, sizeof b.v) == 0);

    /* a backbone saved from PyTorch: bare names, num_batches_tracked */
    b = snap;
    path = test_tmp_path("bare.safetensors");
    Spec bare[] = {
        {"layer1.conv.weight", 4, {4, 2, 3, 3}}, {"layer1.bn.weight", 1, {4}}, {"layer1.bn.bias", 1, {4}},
        {"layer1.bn.running_mean", 1, {4}}, {"layer1.bn.running_var", 1, {4}},
        {"layer1.bn.num_batches_tracked", 0, {0}}, {"fc.weight", 2, {10, 4}},
    };
    REQUIRE(write_named(path, bare, 6, 50, NULL, NULL, 0) == 0);
    REQUIREF(load_all(path, &p, &b, NULL, NULL, RT_CKPT_BACKBONE_ONLY, err, sizeof err) == 0, "%s", err);
    CHECK(tensor_of(&b, &p, "backbone.layer1.conv.weight")[0] == 50 &&
          tensor_of(&b, &p, "backbone.layer1.conv.weight")[71] == 121);
    CHECK(tensor_of(&b, &p, "backbone.layer1.bn.running_var")[2] == 52);
    CHECK(memcmp(tensor_of(&b, &p, "relation.linear1.weight"), tensor_of(&snap, &p, "relation.linear1.weight"), 32) == 0);
    CHECK(memcmp(tensor_of(&b, &p, "relation.linear1.bias"), tensor_of(&snap, &p, "relation.linear1.bias"), 8) == 0);

    /* without the flag the same file is not a checkpoint of this spec */
    b = snap;
    CHECK(load_all(path, &p, &b, NULL, NULL, 0, err, sizeof err) == -1);
    CHECKF(strstr(err, "missing tensor 'backbone.layer1.conv.weight'"), "%s", err);
    CHECK(memcmp(&b, &snap, sizeof b) == 0);

    /* a classifier in the file is not part of the backbone: refused, named */
    path = test_tmp_path("bare_fc.safetensors");
    REQUIRE(write_named(path, bare, 7, 50, NULL, NULL, 0) == 0);
    CHECK(load_all(path, &p, &b, NULL, NULL, RT_CKPT_BACKBONE_ONLY, err, sizeof err) == -1);
    CHECKF(strstr(err, "tensor 'fc.weight' is not a backbone tensor of spec 'tiny'"), "%s", err);
    CHECK(memcmp(&b, &snap, sizeof b) == 0);

    /* a bare file missing a parameter names it as the file would */
    Spec bare2[] = {bare[0], bare[2]};
    path = test_tmp_path("bare_missing.safetensors");
    REQUIRE(write_named(path, bare2, 2, 50, NULL, NULL, 0) == 0);
    CHECK(load_all(path, &p, &b, NULL, NULL, RT_CKPT_BACKBONE_ONLY, err, sizeof err) == -1);
    CHECKF(strstr(err, "missing tensor 'layer1.bn.weight' (backbone.layer1.bn.weight of this spec)"), "%s", err);
    CHECK(memcmp(&b, &snap, sizeof b) == 0);
}

TEST(checkpoint_failed_load_leaves_regions) {
    /* Every check fails late: the file is right up to its last optimizer
       tensor, so a loader that copied as it went would have written most
       of the model already. */
    rt_program p = make_prog(&tiny_entry, "tiny", RT_OPT_ADAM);
    static Mem a, b, snap;
    fill(&a, 6);
    fill(&b, 7);
    snap = b;
    char err[512] = "";
    const char *good = test_tmp_path("late_good.safetensors");
    REQUIREF(rt_checkpoint_save(good, &p, a.params, a.state, a.m, a.v, &(rt_ckpt_run){3, 1, 1, 0}, err, sizeof err) == 0, "%s", err);
    rt_st_file f;
    REQUIREF(rt_st_read(good, &f, err, sizeof err) == 0, "%s", err);
    rt_tensor ts[20];
    const char *keys[16], *vals[16];
    REQUIRE(f.ntensors <= 20 && f.nmeta <= 16);
    memcpy(ts, f.tensors, (size_t)f.ntensors * sizeof *ts);
    for (int i = 0; i < f.nmeta; i++) { keys[i] = f.meta_keys[i]; vals[i] = f.meta_vals[i]; }
    /* the last tensor (optim.v.relation.linear1.bias) gets a wrong shape */
    rt_tensor *last = &ts[f.ntensors - 1];
    CHECK(strcmp(last->name, "optim.v.relation.linear1.bias") == 0);
    last->shape[0] = 1;
    last->nbytes = 4;
    const char *bad = test_tmp_path("late_bad.safetensors");
    REQUIREF(rt_st_write(bad, ts, f.ntensors, keys, vals, f.nmeta, err, sizeof err) == 0, "%s", err);
    rt_st_free(&f);
    CHECK(load_all(bad, &p, &b, NULL, NULL, RT_CKPT_REQUIRE_OPTIM, err, sizeof err) == -1);
    CHECKF(strstr(err, "tensor 'optim.v.relation.linear1.bias' has shape [1], this spec needs [2]"), "%s", err);
    CHECK(memcmp(&b, &snap, sizeof b) == 0);
    /* a bad step in the metadata, also found before anything is written */
    const char *bad2 = test_tmp_path("late_step.safetensors");
    REQUIREF(rt_st_read(good, &f, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < f.nmeta; i++) {
        keys[i] = f.meta_keys[i];
        vals[i] = strcmp(keys[i], "step") == 0 ? "12x" : f.meta_vals[i];
    }
    REQUIREF(rt_st_write(bad2, f.tensors, f.ntensors, keys, vals, f.nmeta, err, sizeof err) == 0, "%s", err);
    rt_st_free(&f);
    int64_t step = -1;
    CHECK(load_all(bad2, &p, &b, &step, NULL, 0, err, sizeof err) == -1);
    CHECKF(strstr(err, "metadata 'step' is '12x'"), "%s", err);
    CHECK(step == -1);
    CHECK(memcmp(&b, &snap, sizeof b) == 0);
}

/* A checkpoint of a diverged run (NaN or infinite weights, a negative
   running variance) is refused before anything is copied, naming the
   tensor and element. */
TEST(checkpoint_non_finite_refused) {
    rt_program p = make_prog(&tiny_entry, "tiny", RT_OPT_ADAM);
    static Mem a, b, snap;
    fill(&b, 7);
    snap = b;
    char err[512] = "";
    struct { const char *tensor; int elem; float value; const char *says; } cases[] = {
        {"backbone.layer1.conv.weight", 5, NAN, "tensor 'backbone.layer1.conv.weight' holds a non-finite value (nan at element 5)"},
        {"relation.linear1.bias", 1, INFINITY, "tensor 'relation.linear1.bias' holds a non-finite value (inf at element 1)"},
        {"backbone.layer1.bn.running_var", 2, -0.5f, "tensor 'backbone.layer1.bn.running_var' holds a negative variance (-0.5 at element 2)"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        fill(&a, 6);
        float *t = (float *)(void *)tensor_of(&a, &p, cases[c].tensor);
        t[cases[c].elem] = cases[c].value;
        const char *path = test_tmp_path("nonfinite.safetensors");
        REQUIREF(rt_checkpoint_save(path, &p, a.params, a.state, a.m, a.v, &(rt_ckpt_run){3, 1, 1, 0}, err, sizeof err) == 0, "%s", err);
        CHECK(load_all(path, &p, &b, NULL, NULL, 0, err, sizeof err) == -1);
        CHECKF(strstr(err, cases[c].says), "case %zu: %s", c, err);
        CHECK(memcmp(&b, &snap, sizeof b) == 0);
        /* the backbone alone (lineval) is refused the same way */
        if (strstr(cases[c].tensor, "backbone")) {
            int rc = rt_checkpoint_load(path, &p, b.params, b.state, NULL, NULL, NULL, NULL, RT_CKPT_BACKBONE_ONLY, err, sizeof err);
            CHECKF(rc == -1 && strstr(err, cases[c].says), "case %zu, backbone only: rc %d: %s", c, rc, err);
        }
    }
}

/* ---- damaged files and crashes ----------------------------------------- */

TEST(checkpoint_truncated_file) {
    rt_program p = make_prog(&tiny_entry, "tiny", RT_OPT_ADAM);
    static Mem a, b, snap;
    fill(&a, 1);
    fill(&b, 2);
    snap = b;
    char err[512] = "";
    const char *path = test_tmp_path("trunc_src.safetensors");
    REQUIREF(rt_checkpoint_save(path, &p, a.params, a.state, a.m, a.v, &(rt_ckpt_run){1, 1, 1, 0}, err, sizeof err) == 0, "%s", err);
    size_t got;
    char *buf = test_read_file(path, &got);
    REQUIRE(buf);
    long size = (long)got;
    REQUIRE(size > 100);
    const long cuts[] = {0, 5, 8, 60, size / 2, size - 4, size - 1};
    const char *cut = test_tmp_path("trunc.safetensors");
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        REQUIRE(test_write_file(cut, buf, (size_t)cuts[i]));
        err[0] = 0;
        CHECKF(load_all(cut, &p, &b, NULL, NULL, 0, err, sizeof err) == -1, "cut at %ld loaded", cuts[i]);
        CHECKF(strncmp(err, cut, strlen(cut)) == 0 && !strchr(err, '\n'), "cut at %ld: '%s'", cuts[i], err);
        CHECK(memcmp(&b, &snap, sizeof b) == 0);
    }
    free(buf);
    CHECK(load_all(test_tmp_path("no_such_file"), &p, &b, NULL, NULL, 0, err, sizeof err) == -1);
    CHECKF(strstr(err, "cannot open"), "%s", err);
}

TEST(checkpoint_failed_save_keeps_previous) {
    rt_program p = make_prog(&tiny_entry, "tiny", RT_OPT_ADAM);
    static Mem a, a2, b;
    fill(&a, 1);
    fill(&a2, 2);
    char err[512] = "";
    char dir[512];
    snprintf(dir, sizeof dir, "%s/crash", test_tmpdir());
    REQUIRE(mkdir(dir, 0777) == 0);
    char path[600];
    snprintf(path, sizeof path, "%s/last.safetensors", dir);
    REQUIREF(rt_checkpoint_save(path, &p, a.params, a.state, a.m, a.v, &(rt_ckpt_run){100, 5, 1, 0}, err, sizeof err) == 0, "%s", err);
    long size = test_file_size(path);

    /* 1. The save fails cleanly: its temporary file cannot be created (a
       directory is in the way, which stops root too). */
    char tmp[4200];
    REQUIRE(rt_tmp_path(tmp, sizeof tmp, path));
    REQUIRE(mkdir(tmp, 0777) == 0);
    CHECK(rt_checkpoint_save(path, &p, a2.params, a2.state, a2.m, a2.v, &(rt_ckpt_run){200, 6, 1, 0}, err, sizeof err) == -1);
    CHECKF(strncmp(err, path, strlen(path)) == 0 && strstr(err, "cannot create"), "%s", err);
    rmdir(tmp);
    int64_t step = 0, epoch = 0;
    memset(&b, 0, sizeof b);
    REQUIREF(load_all(path, &p, &b, &step, &epoch, RT_CKPT_REQUIRE_OPTIM, err, sizeof err) == 0, "%s", err);
    CHECK(step == 100 && epoch == 5);
    CHECK(memcmp(b.params, a.params, 72 * 4) == 0 && memcmp(b.v, a.v, 72 * 4) == 0);

    /* 2. The process dies in the middle of writing: a child with a file
       size limit is killed by SIGXFSZ after part of the data. */
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {1000, 1000};
        setrlimit(RLIMIT_FSIZE, &rl);
        char e2[512];
        rt_checkpoint_save(path, &p, a2.params, a2.state, a2.m, a2.v, &(rt_ckpt_run){200, 6, 1, 0}, e2, sizeof e2);
        _exit(0);   /* not reached: the write past 1000 bytes kills the child */
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ, "child status %d", status);
    /* the half-written file is the temporary, never the checkpoint */
    REQUIREF(find_tmp(dir, "last.safetensors", pid, tmp, sizeof tmp), "no temporary file of child %ld in %s", (long)pid, dir);
    CHECK(test_file_size(tmp) == 1000);
    CHECK(test_file_size(path) == size);
    memset(&b, 0, sizeof b);
    REQUIREF(load_all(path, &p, &b, &step, &epoch, RT_CKPT_REQUIRE_OPTIM, err, sizeof err) == 0, "%s", err);
    CHECK(step == 100 && epoch == 5);
    CHECK(memcmp(b.params, a.params, 72 * 4) == 0);
    CHECK(memcmp(tensor_of(&b, &p, "relation.linear1.bias"), tensor_of(&a, &p, "relation.linear1.bias"), 8) == 0);
    CHECK(memcmp(b.m, a.m, 72 * 4) == 0);
    /* and the torn temporary is refused if someone tries it */
    Mem *c = calloc(1, sizeof *c);
    REQUIRE(c);
    CHECK(load_all(tmp, &p, c, NULL, NULL, 0, err, sizeof err) == -1);
    free(c);
    unlink(tmp);

    /* a later save replaces it */
    REQUIREF(rt_checkpoint_save(path, &p, a2.params, a2.state, a2.m, a2.v, &(rt_ckpt_run){200, 6, 1, 0}, err, sizeof err) == 0, "%s", err);
    REQUIREF(load_all(path, &p, &b, &step, &epoch, RT_CKPT_REQUIRE_OPTIM, err, sizeof err) == 0, "%s", err);
    CHECK(step == 200 && epoch == 6);
    CHECK(memcmp(tensor_of(&b, &p, "relation.linear1.bias"), tensor_of(&a2, &p, "relation.linear1.bias"), 8) == 0);
}
