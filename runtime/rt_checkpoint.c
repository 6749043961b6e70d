/*
** rt_checkpoint.c: saving and loading a program's parameters, running
** statistics and optimizer state (see rt_checkpoint.h for the format).
**
** Loading is two phases. The first matches the file against the program
** and builds a list of copies (file tensor -> destination); every check
** that can fail (a missing tensor, a shape, a dtype, an unknown name, the
** metadata) happens here. The second only copies. So a refused file
** leaves the regions as they were without staging the whole model in
** temporary buffers: the file's own buffer, already read and validated by
** rt_st_read, is the temporary.
**
** Names are the key, not offsets: layout_hash is written for people and
** tools that want to know whether two files come from the same compiled
** layout, but loading does not compare it, because a checkpoint must load
** into the same spec compiled for another batch size (other offsets) and
** into a PyTorch model.
*/
#include "rt_checkpoint.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_safetensors.h"

#define BACKBONE "backbone."
#define BACKBONE_LEN (sizeof BACKBONE - 1)

/* Writes "PATH: <fmt>" into err and returns -1. */
__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t errlen, const char *path, const char *fmt, ...) {
    if (!err || errlen == 0) return -1;
    int k = snprintf(err, errlen, "%s: ", path ? path : "(null)");
    if (k >= 0 && (size_t)k < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* "[32,16,3,3]", as PyTorch users read shapes. */
typedef struct { char s[8 + RT_MAX_RANK * 22]; } ShapeText;
static ShapeText shape_text(int rank, const int64_t *dim) {
    ShapeText r;
    size_t k = 0;
    r.s[k++] = '[';
    for (int i = 0; i < rank && i < RT_MAX_RANK; i++)
        k += (size_t)snprintf(r.s + k, sizeof r.s - k, "%s%" PRId64, i ? "," : "", dim[i]);
    r.s[k++] = ']';
    r.s[k] = 0;
    return r;
}

static bool starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static int64_t step_numel(const rt_step_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->rank; d++) n *= t->dim[d];
    return n;
}

static bool is_saved(const rt_step_tensor *t) { return t->region == RT_REGION_PARAM || t->region == RT_REGION_STATE; }

/* ---- the program's tensors --------------------------------------------- */

/* The PARAM and STATE tensors of train_full, in table order (which follows
   the model, like a PyTorch state dict), each name once, each checked to
   lie inside its region so a malformed table cannot send a copy astray. */
typedef struct Plan {
    const rt_step_tensor **t;
    int n;
} Plan;

static int plan_tensors(const char *path, const rt_program *p, Plan *pl, char *err, size_t errlen) {
    pl->t = NULL;
    pl->n = 0;
    const rt_entry *e = p ? p->train_full : NULL;
    if (!e || (e->ntensors > 0 && !e->tensors)) return fail(err, errlen, path, "the program has no training entry");
    pl->t = malloc((size_t)(e->ntensors > 0 ? e->ntensors : 1) * sizeof *pl->t);
    if (!pl->t) return fail(err, errlen, path, "out of memory");
    for (int i = 0; i < e->ntensors; i++) {
        const rt_step_tensor *t = &e->tensors[i];
        if (!is_saved(t)) continue;
        /* a table could list a tensor twice (read and written); the first
           entry stands for it */
        if (rt_entry_tensor(e, t->name) != t) continue;
        int64_t nbytes = step_numel(t) * (int64_t)sizeof(float);
        if (t->rank < 0 || t->rank > 4 || t->offset < 0 || nbytes < 0 ||
            t->offset + nbytes > e->region_bytes[t->region]) {
            free(pl->t);
            pl->t = NULL;
            return fail(err, errlen, path, "internal error: tensor '%s' lies outside the %s region of %s", t->name,
                        rt_region_name(t->region), e->name ? e->name : "the program");
        }
        pl->t[pl->n++] = t;
    }
    return 0;
}

/* ---- saving ------------------------------------------------------------ */

static const char *method_name(const rt_program *p) { return rt_method_name(p->method); }

int rt_checkpoint_save(const char *path, const rt_program *p, const char *params, const char *state,
                       const float *opt_m, const float *opt_v, const rt_ckpt_run *run, char *err, size_t errlen) {
    Plan pl;
    if (plan_tensors(path, p, &pl, err, errlen)) return -1;
    bool sgd = p->optim == RT_OPT_SGD;
    const char *pre_m = sgd ? "optim.momentum." : "optim.m.", *pre_v = "optim.v.";
    int rc = -1;
    rt_tensor *ts = calloc((size_t)(3 * pl.n + 1), sizeof *ts);
    char *names = NULL;
    size_t nameslen = 1;
    for (int i = 0; i < pl.n; i++) nameslen += 2 * (strlen(pl.t[i]->name) + 16);
    names = malloc(nameslen);
    if (!ts || !names) { fail(err, errlen, path, "out of memory"); goto out; }

    /* parameters and running statistics, then each optimizer buffer as a
       block: a reader that only wants the model finds it first */
    int n = 0;
    for (int i = 0; i < pl.n; i++) {
        const rt_step_tensor *t = pl.t[i];
        const char *base = t->region == RT_REGION_PARAM ? params : state;
        if (!base) {
            fail(err, errlen, path, "no %s region given to save '%s' from", rt_region_name(t->region), t->name);
            goto out;
        }
        rt_tensor *o = &ts[n++];
        o->name = t->name;
        o->dtype = RT_F32;
        o->rank = t->rank;
        for (int d = 0; d < t->rank; d++) o->shape[d] = t->dim[d];
        o->data = base + t->offset;
        o->nbytes = (size_t)step_numel(t) * sizeof(float);
    }
    char *np = names;
    for (int pass = 0; pass < 2; pass++) {
        /* SGD has one buffer; a stray opt_v would only confuse a reader */
        const float *buf = pass == 0 ? opt_m : sgd ? NULL : opt_v;
        const char *pre = pass == 0 ? pre_m : pre_v;
        if (!buf) continue;
        for (int i = 0; i < pl.n; i++) {
            const rt_step_tensor *t = pl.t[i];
            if (t->region != RT_REGION_PARAM) continue;
            rt_tensor *o = &ts[n++];
            int k = sprintf(np, "%s%s", pre, t->name);
            o->name = np;
            np += k + 1;
            o->dtype = RT_F32;
            o->rank = t->rank;
            for (int d = 0; d < t->rank; d++) o->shape[d] = t->dim[d];
            o->data = (const char *)buf + t->offset;
            o->nbytes = (size_t)step_numel(t) * sizeof(float);
        }
    }

    char s_step[32], s_epoch[32], s_seed[32], s_hash[32], s_k[32], s_batch[32], s_images[32];
    snprintf(s_step, sizeof s_step, "%" PRId64, run->step);
    snprintf(s_epoch, sizeof s_epoch, "%" PRId64, run->epoch);
    snprintf(s_seed, sizeof s_seed, "%" PRIu64, run->seed);
    snprintf(s_hash, sizeof s_hash, "%016" PRIx64, p->layout_hash);
    snprintf(s_k, sizeof s_k, "%d", p->K);
    snprintf(s_batch, sizeof s_batch, "%d", p->batch);
    snprintf(s_images, sizeof s_images, "%" PRId64, run->images);
    const char *keys[] = {"format", "spec",   "step", "epoch", "seed",        "layout_hash",       "optimizer",
                          "method", "K",      "batch", "loss", "aggregation", "images"};
    const char *vals[] = {RT_CKPT_FORMAT, p->spec_name ? p->spec_name : "", s_step, s_epoch, s_seed, s_hash,
                          sgd ? "sgd" : "adam", method_name(p), s_k, s_batch, p->loss ? p->loss : "",
                          p->aggregation ? p->aggregation : "", s_images};
    /* images 0 (not known) is left out, so that it is not compared */
    int nkeys = (int)(sizeof keys / sizeof keys[0]) - (run->images > 0 ? 0 : 1);
    rc = rt_st_write(path, ts, n, keys, vals, nkeys, err, errlen);

out:
    free(names);
    free(ts);
    free(pl.t);
    return rc;
}

/* ---- loading ----------------------------------------------------------- */

typedef struct Copy {
    const rt_tensor *src;
    float *dst;
    int64_t n;
} Copy;

typedef struct Loader {
    const char *path;
    const rt_program *p;
    const rt_st_file *f;
    bool bare;              /* file names lack the "backbone." prefix */
    char hint[160];         /* " (a checkpoint of another spec? ...)" or "" */
    Copy *copies;
    int ncopies;
    char *err;
    size_t errlen;
} Loader;

/* The file's tensor for program tensor `name`, or NULL. */
static const rt_tensor *file_tensor(const Loader *L, const char *name) {
    if (L->bare) return starts_with(name, BACKBONE) ? rt_st_find(L->f, name + BACKBONE_LEN) : NULL;
    return rt_st_find(L->f, name);
}

/* Checks dtype and shape of the file tensor `src` against `t` and queues
   the copy into base + t->offset. */
static int add_copy(Loader *L, const rt_tensor *src, const rt_step_tensor *t, char *base) {
    bool same = src->rank == t->rank;
    for (int d = 0; same && d < t->rank; d++) same = src->shape[d] == t->dim[d];
    if (!same)
        return fail(L->err, L->errlen, L->path, "tensor '%s' has shape %s, this spec needs %s%s", rt_shown_name(src->name).s,
                    shape_text(src->rank, src->shape).s, shape_text(t->rank, t->dim).s, L->hint);
    if (src->dtype != RT_F32 && src->dtype != RT_F64)
        return fail(L->err, L->errlen, L->path, "tensor '%s' has dtype %s, expected F32", rt_shown_name(src->name).s,
                    rt_dtype_name(src->dtype));
    L->copies[L->ncopies++] = (Copy){src, (float *)(void *)(base + t->offset), step_numel(t)};
    return 0;
}

/* Refuses values no trained model holds: NaN, infinities (also F64 values
   beyond float's range, which would become infinities) and negative
   running variances, naming the tensor and the first bad element. A
   checkpoint saved from a diverged run would otherwise evaluate to a
   plausible-looking accuracy. */
static int check_values(const Loader *L, const Copy *c) {
    const unsigned char *p = c->src->data;
    size_t len = strlen(c->src->name);
    bool var = len >= 11 && !strcmp(c->src->name + len - 11, "running_var");
    for (int64_t i = 0; i < c->n; i++) {
        double v;
        if (c->src->dtype == RT_F32) {
            float f;
            memcpy(&f, p + (size_t)i * sizeof f, sizeof f);
            v = f;
        } else {
            memcpy(&v, p + (size_t)i * sizeof v, sizeof v);
        }
        if (!isfinite(v) || fabs(v) > FLT_MAX)
            return fail(L->err, L->errlen, L->path, "tensor '%s' holds a non-finite value (%g at element %lld): a diverged run?",
                        rt_shown_name(c->src->name).s, v, (long long)i);
        if (var && v < 0)
            return fail(L->err, L->errlen, L->path, "tensor '%s' holds a negative variance (%g at element %lld)",
                        rt_shown_name(c->src->name).s, v, (long long)i);
    }
    return 0;
}

static bool is_nbt(const char *name) {
    const char *dot = strrchr(name, '.');
    return strcmp(dot ? dot + 1 : name, "num_batches_tracked") == 0;
}

/* A metadata integer: absent leaves *out at 0 and returns 0 (so a plain
   safetensors file loads), malformed is an error. */
static int meta_int(const Loader *L, const char *key, int64_t *out, bool required) {
    *out = 0;
    const char *s = rt_st_meta(L->f, key);
    if (!s) {
        if (required)
            return fail(L->err, L->errlen, L->path, "has no '%s' in its metadata; cannot resume", key);
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0)
        return fail(L->err, L->errlen, L->path, "metadata '%s' is '%s', not a non-negative integer", key, rt_shown_name(s).s);
    *out = v;
    return 0;
}

/* RT_CKPT_SAME_RUN: the first setting in which the file's run and the
   resuming one differ is an error naming both values. */
static int same_run(const Loader *L, const rt_ckpt_run *want) {
    char k[32], b[32], s[32], n[32];
    snprintf(k, sizeof k, "%d", L->p->K);
    snprintf(b, sizeof b, "%d", L->p->batch);
    snprintf(s, sizeof s, "%" PRIu64, want ? want->seed : 0);
    snprintf(n, sizeof n, "%" PRId64, want ? want->images : 0);
    /* "--K 4" for flags, "240 training images" for the data set */
    struct { const char *key, *before, *after, *now; } set[] = {
        {"method", "--method ", "", method_name(L->p)},
        {"K", "--K ", "", k},
        {"batch", "--batch ", "", b},
        {"loss", "--loss ", "", L->p->loss},
        {"aggregation", "--aggregation ", "", L->p->aggregation},
        {"seed", "--seed ", "", want ? s : NULL},
        {"images", "", " training images", want && want->images ? n : NULL},
    };
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++) {
        const char *was = rt_st_meta(L->f, set[i].key);
        if (!was || !set[i].now || strcmp(was, set[i].now) == 0) continue;
        return fail(L->err, L->errlen, L->path,
                    "was trained with %s%s%s, this run has %s%s%s (--resume-anyway continues with this run's settings)",
                    set[i].before, rt_shown_name(was).s, set[i].after, set[i].before, set[i].now, set[i].after);
    }
    return 0;
}

/* Is the file tensor `name` one the load may leave unused? Otherwise the
   file holds something this program does not have, which is refused: it
   means the wrong file or the wrong spec, and silently dropping weights
   would hide that. */
static int check_unknown(const Loader *L, const char *name, int flags) {
    const rt_entry *e = L->p->train_full;
    const char *spec = L->p->spec_name ? L->p->spec_name : "?";
    if (is_nbt(name)) return 0;   /* PyTorch's BatchNorm counter: rrc does not use it */
    if (flags & RT_CKPT_BACKBONE_ONLY) {
        if (L->bare) {
            char full[512];
            snprintf(full, sizeof full, "%s%s", BACKBONE, name);
            const rt_step_tensor *t = rt_entry_tensor(e, full);
            if (t && is_saved(t)) return 0;
            return fail(L->err, L->errlen, L->path, "tensor '%s' is not a backbone tensor of spec '%s'%s",
                        rt_shown_name(name).s, spec, L->hint);
        }
        if (!starts_with(name, BACKBONE)) return 0;   /* relation head, optimizer: not wanted here */
        const rt_step_tensor *t = rt_entry_tensor(e, name);
        if (t && is_saved(t)) return 0;
        return fail(L->err, L->errlen, L->path, "unknown tensor '%s': spec '%s' has no such backbone tensor%s",
                    rt_shown_name(name).s, spec, L->hint);
    }
    const rt_step_tensor *t = rt_entry_tensor(e, name);
    if (t && is_saved(t)) return 0;
    static const char *const opt_prefixes[] = {"optim.m.", "optim.v.", "optim.momentum."};
    for (int i = 0; i < 3; i++) {
        if (!starts_with(name, opt_prefixes[i])) continue;
        t = rt_entry_tensor(e, name + strlen(opt_prefixes[i]));
        if (t && t->region == RT_REGION_PARAM) return 0;
    }
    return fail(L->err, L->errlen, L->path, "unknown tensor '%s': spec '%s' has no such tensor%s", rt_shown_name(name).s, spec,
                L->hint);
}

/* Queues one optimizer buffer (prefix + each PARAM name) if the file has
   it; all or nothing. */
static int plan_optim(Loader *L, const Plan *pl, const char *prefix, float *buf, int flags) {
    bool any = false;
    for (int i = 0; i < L->f->ntensors && !any; i++) any = starts_with(L->f->tensors[i].name, prefix);
    if (!any) {
        if (!(flags & RT_CKPT_REQUIRE_OPTIM)) return 0;
        const char *want = L->p->optim == RT_OPT_SGD ? "sgd" : "adam", *said = rt_st_meta(L->f, "optimizer");
        if (said && strcmp(said, want) != 0)
            return fail(L->err, L->errlen, L->path,
                        "has optimizer state for %s, this spec trains with %s; cannot resume", rt_shown_name(said).s, want);
        return fail(L->err, L->errlen, L->path, "has no optimizer state; cannot resume");
    }
    char name[600];
    for (int i = 0; i < pl->n; i++) {
        const rt_step_tensor *t = pl->t[i];
        if (t->region != RT_REGION_PARAM) continue;
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        const rt_tensor *src = rt_st_find(L->f, name);
        if (!src) return fail(L->err, L->errlen, L->path, "missing tensor '%s'%s", name, L->hint);
        if (add_copy(L, src, t, (char *)buf)) return -1;
    }
    return 0;
}

int rt_checkpoint_load(const char *path, const rt_program *p, char *params, char *state, float *opt_m, float *opt_v,
                       const rt_ckpt_run *want, rt_ckpt_run *got, int flags, char *err, size_t errlen) {
    Plan pl = {0};
    rt_st_file f = {0};
    Loader L = {.path = path, .p = p, .f = &f, .err = err, .errlen = errlen};
    int rc = -1;
    if (plan_tensors(path, p, &pl, err, errlen)) return -1;
    if (rt_st_read(path, &f, err, errlen)) goto out;
    bool backbone_only = flags & RT_CKPT_BACKBONE_ONLY;

    /* Another rrc checkpoint format would need its own reader; any other
       "format" (PyTorch's save_file writes "pt") is a plain state dict. */
    const char *fmt = rt_st_meta(&f, "format");
    if (fmt && starts_with(fmt, "rrc-checkpoint-") && strcmp(fmt, RT_CKPT_FORMAT) != 0) {
        fail(err, errlen, path, "checkpoint format '%s' is not %s (written by another version of rrc?)", rt_shown_name(fmt).s,
             RT_CKPT_FORMAT);
        goto out;
    }
    const char *spec = rt_st_meta(&f, "spec");
    if (spec && p->spec_name && strcmp(spec, p->spec_name) != 0)
        snprintf(L.hint, sizeof L.hint, " (a checkpoint of another spec? it says spec '%s')", rt_shown_name(spec).s);
    if (backbone_only) {
        L.bare = true;
        for (int i = 0; i < f.ntensors && L.bare; i++) L.bare = !starts_with(f.tensors[i].name, BACKBONE);
    }

    int64_t st = 0, ep = 0, seed = 0, images = 0;
    bool resume = (flags & RT_CKPT_REQUIRE_OPTIM) && !backbone_only;
    if (meta_int(&L, "step", &st, resume) || meta_int(&L, "epoch", &ep, resume) || meta_int(&L, "seed", &seed, false) ||
        meta_int(&L, "images", &images, false))
        goto out;
    if ((flags & RT_CKPT_SAME_RUN) && same_run(&L, want)) goto out;

    L.copies = malloc((size_t)(3 * pl.n + 1) * sizeof *L.copies);
    if (!L.copies) { fail(err, errlen, path, "out of memory"); goto out; }

    /* The program's tensors in model order, so the error names the first
       one that differs, which is usually where two layouts part. */
    for (int i = 0; i < pl.n; i++) {
        const rt_step_tensor *t = pl.t[i];
        if (backbone_only && !starts_with(t->name, BACKBONE)) continue;
        const rt_tensor *src = file_tensor(&L, t->name);
        if (!src) {
            if (t->region == RT_REGION_STATE) continue;   /* keep the current running statistics */
            if (L.bare)
                fail(err, errlen, path, "missing tensor '%s' (%s of this spec)%s", t->name + BACKBONE_LEN, t->name, L.hint);
            else
                fail(err, errlen, path, "missing tensor '%s'%s", t->name, L.hint);
            goto out;
        }
        char *base = t->region == RT_REGION_PARAM ? params : state;
        if (!base) {
            fail(err, errlen, path, "no %s region given to load '%s' into", rt_region_name(t->region), t->name);
            goto out;
        }
        if (add_copy(&L, src, t, base)) goto out;
    }
    for (int i = 0; i < f.ntensors; i++)
        if (check_unknown(&L, f.tensors[i].name, flags)) goto out;
    if (!backbone_only) {
        bool sgd = p->optim == RT_OPT_SGD;
        if (opt_m && plan_optim(&L, &pl, sgd ? "optim.momentum." : "optim.m.", opt_m, flags)) goto out;
        if (opt_v && !sgd && plan_optim(&L, &pl, "optim.v.", opt_v, flags)) goto out;
    }

    for (int i = 0; i < L.ncopies; i++)
        if (check_values(&L, &L.copies[i])) goto out;
    /* Everything checked: only copying is left, and it cannot fail
       (dtype and element count were checked in add_copy). */
    for (int i = 0; i < L.ncopies; i++) {
        const Copy *c = &L.copies[i];
        if (rt_tensor_to_f32(c->src, c->dst, c->n, path, err, errlen)) goto out;
    }
    if (got) *got = (rt_ckpt_run){st, ep, (uint64_t)seed, images};
    rc = 0;

out:
    free(L.copies);
    rt_st_free(&f);
    free(pl.t);
    return rc;
}
