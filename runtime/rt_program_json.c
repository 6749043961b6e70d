/*
** rt_program_json.c: a program's description as JSON, the form in which
** `rrc compile` embeds it in an AOT trainer (next to the entry functions),
** and its validated parsing back into an rt_program. The entry functions
** themselves are passed alongside, by index ("fn" in each entry).
**
** {"format": "rrc-program-1", "spec": ..., "method": "relational"|"supervised"|"rotation"|"simclr",
**  "input": [C,H,W], "feat_dim": F, "K": .., "batch": .., "epochs": .., "seed": ..,
**  "data": .., "aggregation": .., "loss": .., "classes": ..,
**  "optim": {"kind": "adam"|"sgd", "lr", "beta1", "beta2", "eps", "weight_decay",
**            "momentum", "milestones": [..], "lr_gamma"},
**  "aug": [{"kind": n, "size", "scale": [2], "ratio": [2], "p", "brightness", "contrast",
**           "saturation", "hue", "mean": [3], "std": [3], "padding"}],
**  "ranks": N (optional: compiled for data-parallel runs over N ranks),
**  "entries": {"train_full"|"train_last"|"features"|"classify"|"rank_full"|"rank_full_lo"|
**           "rank_last"|"rank_last_lo": {"name", "fn", "K", "B", "B_total" (optional),
**           "region_bytes": [5], "tensors": [{"name", "region", "offset", "dim": [..],
**           "init": [kind, a], "partial": true (optional)}]}}}
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rt_program_json.h"

static const char *slot_names[RT_PROGRAM_SLOTS] = {"train_full", "train_last", "features", "classify",
                                                    "rank_full", "rank_full_lo", "rank_last", "rank_last_lo"};

static const rt_entry **slot(rt_program *p, int i) {
    switch (i) {
    case 0: return &p->train_full;
    case 1: return &p->train_last;
    case 2: return &p->features;
    case 3: return &p->classify;
    case 4: case 5: return &p->rank_full[i - 4];
    default: return &p->rank_last[i - 6];
    }
}

static json_t *darray(const double *v, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_real(v[i]));
    return a;
}

char *rt_program_to_json(const rt_program *p, const int fn_index[RT_PROGRAM_SLOTS]) {
    json_t *o = json_object();
    json_object_set_new(o, "format", json_string("rrc-program-1"));
    json_object_set_new(o, "spec", json_string(p->spec_name));
    json_object_set_new(o, "method", json_string(rt_method_name(p->method)));
    json_object_set_new(o, "input", json_pack("[iii]", p->in_c, p->in_h, p->in_w));
    json_object_set_new(o, "feat_dim", json_integer(p->feat_dim));
    json_object_set_new(o, "K", json_integer(p->K));
    json_object_set_new(o, "batch", json_integer(p->batch));
    json_object_set_new(o, "epochs", json_integer(p->epochs));
    json_object_set_new(o, "seed", json_integer((json_int_t)p->seed));
    json_object_set_new(o, "data", json_string(p->data ? p->data : ""));
    json_object_set_new(o, "aggregation", json_string(p->aggregation ? p->aggregation : ""));
    json_object_set_new(o, "loss", json_string(p->loss ? p->loss : ""));
    json_object_set_new(o, "classes", json_integer(p->classes));
    if (p->drop_last) json_object_set_new(o, "drop_last", json_integer(p->drop_last));
    if (p->gray_input) json_object_set_new(o, "gray_input", json_integer(p->gray_input));
    if (p->ranks > 1) json_object_set_new(o, "ranks", json_integer(p->ranks));
    if (p->method == RT_METHOD_DEEPCLUSTER) {
        json_object_set_new(o, "clusters", json_integer(p->clusters));
        json_object_set_new(o, "reset_layer", json_string(p->reset_layer ? p->reset_layer : ""));
    }
    json_t *opt = json_object();
    json_object_set_new(opt, "kind", json_string(p->optim == RT_OPT_ADAM ? "adam" : "sgd"));
    json_object_set_new(opt, "lr", json_real(p->optim == RT_OPT_ADAM ? p->adam.lr : p->sgd.lr));
    json_object_set_new(opt, "beta1", json_real(p->adam.beta1));
    json_object_set_new(opt, "beta2", json_real(p->adam.beta2));
    json_object_set_new(opt, "eps", json_real(p->adam.eps));
    json_object_set_new(opt, "weight_decay", json_real(p->optim == RT_OPT_ADAM ? p->adam.weight_decay : p->sgd.weight_decay));
    json_object_set_new(opt, "momentum", json_real(p->sgd.momentum));
    json_object_set_new(opt, "milestones", darray(p->milestones, p->nmilestones));
    json_object_set_new(opt, "lr_gamma", json_real(p->lr_gamma));
    json_object_set_new(o, "optim", opt);
    json_t *aug = json_array();
    for (int i = 0; i < p->naug; i++) {
        const rt_aug_op *a = &p->aug[i];
        json_t *j = json_object();
        json_object_set_new(j, "kind", json_integer(a->kind));
        json_object_set_new(j, "size", json_integer(a->size));
        json_object_set_new(j, "scale", darray(a->scale, 2));
        json_object_set_new(j, "ratio", darray(a->ratio, 2));
        json_object_set_new(j, "p", json_real(a->p));
        json_object_set_new(j, "brightness", json_real(a->brightness));
        json_object_set_new(j, "contrast", json_real(a->contrast));
        json_object_set_new(j, "saturation", json_real(a->saturation));
        json_object_set_new(j, "hue", json_real(a->hue));
        json_object_set_new(j, "mean", darray(a->mean, 3));
        json_object_set_new(j, "std", darray(a->std, 3));
        json_object_set_new(j, "padding", json_integer(a->padding));
        json_array_append_new(aug, j);
    }
    json_object_set_new(o, "aug", aug);
    json_t *ents = json_object();
    for (int s = 0; s < RT_PROGRAM_SLOTS; s++) {
        const rt_entry *e = *slot((rt_program *)p, s);
        if (!e) continue;
        json_t *j = json_object();
        json_object_set_new(j, "name", json_string(e->name));
        json_object_set_new(j, "fn", json_integer(fn_index[s]));
        json_object_set_new(j, "K", json_integer(e->K));
        json_object_set_new(j, "B", json_integer(e->B));
        if (e->B_total != e->B) json_object_set_new(j, "B_total", json_integer(e->B_total));
        json_t *rb = json_array();
        for (int r = 0; r < RT_NREGIONS; r++) json_array_append_new(rb, json_integer(e->region_bytes[r]));
        json_object_set_new(j, "region_bytes", rb);
        json_t *ts = json_array();
        for (int i = 0; i < e->ntensors; i++) {
            const rt_step_tensor *t = &e->tensors[i];
            json_t *dim = json_array();
            for (int k = 0; k < t->rank; k++) json_array_append_new(dim, json_integer(t->dim[k]));
            json_t *tj = json_pack("{s:s, s:i, s:I, s:o, s:[i,f]}", "name", t->name, "region", t->region, "offset",
                                   (json_int_t)t->offset, "dim", dim, "init", (int)t->init.kind, t->init.a);
            if (t->flags & RT_TENSOR_PARTIAL) json_object_set_new(tj, "partial", json_true());
            json_array_append_new(ts, tj);
        }
        json_object_set_new(j, "tensors", ts);
        json_object_set_new(ents, slot_names[s], j);
    }
    json_object_set_new(o, "entries", ents);
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    return s;
}

/* ---- parsing ---- */

typedef struct Parse {
    char *err;
    size_t errlen;
    int bad;
} Parse;

static void perr(Parse *ps, const char *what) {
    if (!ps->bad) snprintf(ps->err, ps->errlen, "embedded program description: %s", what);
    ps->bad = 1;
}

static double num(Parse *ps, json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    if (!json_is_number(v)) { perr(ps, k); return 0; }
    return json_number_value(v);
}

static int64_t integer(Parse *ps, json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v)) { perr(ps, k); return 0; }
    return (int64_t)json_integer_value(v);
}

static char *str(Parse *ps, json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v)) { perr(ps, k); return strdup(""); }
    return strdup(json_string_value(v));
}

static void nums(Parse *ps, json_t *o, const char *k, double *out, int n) {
    json_t *a = json_object_get(o, k);
    if (!json_is_array(a) || (int)json_array_size(a) != n) { perr(ps, k); return; }
    for (int i = 0; i < n; i++) {
        json_t *v = json_array_get(a, (size_t)i);
        if (!json_is_number(v)) { perr(ps, k); return; }
        out[i] = json_number_value(v);
    }
}

/* n whole numbers in [lo, hi] (lo, hi at most 2^62 in size, exact as
   doubles): converting a double outside the target type's range is
   undefined behaviour, so the range is checked before the cast. */
static void ints(Parse *ps, json_t *o, const char *k, int64_t *out, int n, int64_t lo, int64_t hi) {
    double v[8] = {0};
    if (n > 8) { perr(ps, k); return; }
    nums(ps, o, k, v, n);
    for (int i = 0; i < n; i++) {
        if (!(v[i] >= (double)lo && v[i] <= (double)hi) || v[i] != (double)(int64_t)v[i]) {
            perr(ps, k);
            out[i] = 0;
            continue;
        }
        out[i] = (int64_t)v[i];
    }
}

#define INT_RANGE ((int64_t)1 << 30)   /* input sides and channels */
#define SIZE_RANGE ((int64_t)1 << 62)  /* byte counts, tensor dims */

int rt_program_from_json(const char *json, const rt_step_fn *fns, int nfns, rt_program *p, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    Parse ps = {err, errlen, 0};
    json_error_t je;
    json_t *o = json_loads(json, 0, &je);
    if (!json_is_object(o)) {
        snprintf(err, errlen, "embedded program description: invalid JSON: %s", je.text);
        json_decref(o);
        return -1;
    }
    char *fmt = str(&ps, o, "format");
    if (strcmp(fmt, "rrc-program-1") != 0) perr(&ps, "unknown format");
    free(fmt);
    p->spec_name = str(&ps, o, "spec");
    char *method = str(&ps, o, "method");
    if (!ps.bad && !rt_method_parse(method, &p->method)) perr(&ps, "unknown method");
    free(method);
    int64_t in[3] = {0, 0, 0};
    ints(&ps, o, "input", in, 3, 1, INT_RANGE);
    p->in_c = (int)in[0];
    p->in_h = (int)in[1];
    p->in_w = (int)in[2];
    p->feat_dim = integer(&ps, o, "feat_dim");
    p->K = (int)integer(&ps, o, "K");
    p->batch = (int)integer(&ps, o, "batch");
    p->epochs = (int)integer(&ps, o, "epochs");
    p->seed = (uint64_t)integer(&ps, o, "seed");
    p->data = str(&ps, o, "data");
    p->aggregation = str(&ps, o, "aggregation");
    p->loss = str(&ps, o, "loss");
    p->classes = (int)integer(&ps, o, "classes");
    p->drop_last = json_object_get(o, "drop_last") ? (int)integer(&ps, o, "drop_last") : 0;
    p->gray_input = json_object_get(o, "gray_input") ? (int)integer(&ps, o, "gray_input") : 0;
    p->ranks = json_object_get(o, "ranks") ? (int)integer(&ps, o, "ranks") : 0;
    if (p->ranks < 0 || p->ranks > 65536) perr(&ps, "ranks");
    /* DeepCluster's: required for it, absent in other programs */
    bool dc = p->method == RT_METHOD_DEEPCLUSTER;
    p->clusters = dc || json_object_get(o, "clusters") ? (int)integer(&ps, o, "clusters") : 0;
    p->reset_layer = dc || json_object_get(o, "reset_layer") ? str(&ps, o, "reset_layer") : strdup("");
    if (!ps.bad && dc && (p->clusters < 2 || !*p->reset_layer)) perr(&ps, "deepcluster's clusters or reset_layer");
    json_t *opt = json_object_get(o, "optim");
    if (json_is_object(opt)) {
        char *kind = str(&ps, opt, "kind");
        p->optim = strcmp(kind, "sgd") == 0 ? RT_OPT_SGD : RT_OPT_ADAM;
        free(kind);
        double lr = num(&ps, opt, "lr"), wd = num(&ps, opt, "weight_decay");
        p->adam = (rt_adam){lr, num(&ps, opt, "beta1"), num(&ps, opt, "beta2"), num(&ps, opt, "eps"), wd};
        p->sgd = (rt_sgd){lr, num(&ps, opt, "momentum"), wd};
        json_t *ms = json_object_get(opt, "milestones");
        p->nmilestones = json_is_array(ms) ? (int)json_array_size(ms) : 0;
        if (p->nmilestones > 8) { perr(&ps, "milestones"); p->nmilestones = 0; }
        nums(&ps, opt, "milestones", p->milestones, p->nmilestones);
        p->lr_gamma = num(&ps, opt, "lr_gamma");
    } else {
        perr(&ps, "optim");
    }
    json_t *aug = json_object_get(o, "aug");
    p->naug = json_is_array(aug) ? (int)json_array_size(aug) : 0;
    rt_aug_op *ops = calloc((size_t)(p->naug ? p->naug : 1), sizeof *ops);
    for (int i = 0; i < p->naug; i++) {
        json_t *j = json_array_get(aug, (size_t)i);
        rt_aug_op *a = &ops[i];
        a->kind = (rt_aug_kind)integer(&ps, j, "kind");
        a->size = (int)integer(&ps, j, "size");
        nums(&ps, j, "scale", a->scale, 2);
        nums(&ps, j, "ratio", a->ratio, 2);
        a->p = num(&ps, j, "p");
        a->brightness = num(&ps, j, "brightness");
        a->contrast = num(&ps, j, "contrast");
        a->saturation = num(&ps, j, "saturation");
        a->hue = num(&ps, j, "hue");
        nums(&ps, j, "mean", a->mean, 3);
        nums(&ps, j, "std", a->std, 3);
        a->padding = (int)integer(&ps, j, "padding");
    }
    p->aug = ops;
    json_t *ents = json_object_get(o, "entries");
    for (int s = 0; s < RT_PROGRAM_SLOTS && json_is_object(ents); s++) {
        json_t *j = json_object_get(ents, slot_names[s]);
        if (!j) continue;
        rt_entry *e = calloc(1, sizeof *e);
        e->name = str(&ps, j, "name");
        int64_t fi = integer(&ps, j, "fn");
        if (fi < 0 || fi >= nfns) perr(&ps, "fn index out of range");
        else e->fn = fns[fi];
        e->K = (int)integer(&ps, j, "K");
        e->B = integer(&ps, j, "B");
        e->B_total = json_object_get(j, "B_total") ? integer(&ps, j, "B_total") : e->B;
        if (e->B_total < e->B) perr(&ps, "B_total");
        ints(&ps, j, "region_bytes", e->region_bytes, RT_NREGIONS, 0, SIZE_RANGE);
        json_t *ts = json_object_get(j, "tensors");
        e->ntensors = json_is_array(ts) ? (int)json_array_size(ts) : 0;
        rt_step_tensor *t = calloc((size_t)(e->ntensors ? e->ntensors : 1), sizeof *t);
        for (int i = 0; i < e->ntensors; i++) {
            json_t *tj = json_array_get(ts, (size_t)i);
            t[i].name = str(&ps, tj, "name");
            t[i].region = (int)integer(&ps, tj, "region");
            t[i].offset = integer(&ps, tj, "offset");
            json_t *dim = json_object_get(tj, "dim");
            t[i].rank = json_is_array(dim) ? (int)json_array_size(dim) : 0;
            if (t[i].rank > 4) { perr(&ps, "tensor rank"); t[i].rank = 0; }
            int64_t dv[4] = {0};
            ints(&ps, tj, "dim", dv, t[i].rank, 0, SIZE_RANGE);
            for (int k = 0; k < t[i].rank; k++) t[i].dim[k] = dv[k];
            double init[2] = {0, 0};
            nums(&ps, tj, "init", init, 2);
            int64_t kind = 0;
            if (!(init[0] >= 0 && init[0] <= 255) || init[0] != (double)(int)init[0]) perr(&ps, "init");
            else kind = (int64_t)init[0];
            t[i].init = (rt_init){(rt_init_kind)kind, init[1]};
            json_t *pj = json_object_get(tj, "partial");
            if (pj && json_is_true(pj)) t[i].flags |= RT_TENSOR_PARTIAL;
            if (t[i].region < 0 || t[i].region >= RT_NREGIONS || t[i].offset < 0) perr(&ps, "tensor placement");
        }
        e->tensors = t;
        *slot(p, s) = e;
    }
    json_decref(o);
    if (!p->train_full || !p->features) perr(&ps, "missing entries");
    if (!ps.bad) p->layout_hash = rt_layout_hash(p->train_full);
    if (ps.bad) {
        rt_program_free_parsed(p);
        return -1;
    }
    return 0;
}

void rt_program_free_parsed(rt_program *p) {
    /* the slots, and the one-process steps a rank's replaced (each once) */
    const rt_entry *all[RT_PROGRAM_SLOTS + 2];
    for (int s = 0; s < RT_PROGRAM_SLOTS; s++) all[s] = *slot(p, s);
    all[RT_PROGRAM_SLOTS] = p->alone[0];
    all[RT_PROGRAM_SLOTS + 1] = p->alone[1];
    for (int s = 0; s < RT_PROGRAM_SLOTS + 2; s++) {
        rt_entry *e = (rt_entry *)all[s];
        bool seen = false;
        for (int k = 0; k < s; k++) seen |= all[k] == e;
        if (!e || seen) continue;
        for (int i = 0; i < e->ntensors; i++) free((char *)e->tensors[i].name);
        free((void *)e->tensors);
        free((char *)e->name);
        free(e);
    }
    free((char *)p->spec_name);
    free((char *)p->data);
    free((char *)p->aggregation);
    free((char *)p->loss);
    free((char *)p->reset_layer);
    free(p->aug);
    memset(p, 0, sizeof *p);
}
