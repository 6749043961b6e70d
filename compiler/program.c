/*
** program.c: building a runtime program with the JIT (see program.h).
*/
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "driver.h"
#include "frontend/lower.h"
#include "program.h"
#include "rt_comm.h"

rt_step_tensor *program_tensor_table(Graph *g, Arena *a, int *n) {
    rt_step_tensor *t = arena_alloc(a, (size_t)(g->nnodes + g->nouts) * sizeof *t);
    int k = 0;
    for (int i = 0; i < g->nnodes; i++) {
        Node *x = g->nodes[i];
        if (op_table[x->op].fusion != FUSE_LEAF) continue;
        t[k] = (rt_step_tensor){x->name, x->region, x->offset, x->rank, {0}, x->init, 0};
        memcpy(t[k].dim, x->dim, sizeof t[k].dim);
        k++;
    }
    for (int i = 0; i < g->nouts; i++) {
        Node *x = g->outs[i].node;
        t[k] = (rt_step_tensor){g->outs[i].name, x->region, x->offset, x->rank, {0}, {0}, 0};
        const char *gp = !strncmp(g->outs[i].name, "grad.", 5) ? g->outs[i].name + 5 : NULL;
        Node *p = gp ? graph_find_leaf(g, OP_PARAM, gp) : NULL;
        if (p && (p->flags & NF_RANK_PARTIAL)) t[k].flags |= RT_TENSOR_PARTIAL;
        memcpy(t[k].dim, x->dim, sizeof t[k].dim);
        k++;
    }
    *n = k;
    return t;
}

rt_aug_op convert_aug(const AugOp *a) {
    static const rt_aug_kind kinds[] = {
        [AUG_RANDOM_RESIZED_CROP] = RT_AUG_RANDOM_RESIZED_CROP, [AUG_HFLIP] = RT_AUG_HFLIP,
        [AUG_COLOR_JITTER] = RT_AUG_COLOR_JITTER, [AUG_GRAYSCALE] = RT_AUG_GRAYSCALE,
        [AUG_NORMALIZE] = RT_AUG_NORMALIZE, [AUG_RANDOM_CROP] = RT_AUG_RANDOM_CROP,
    };
    rt_aug_op o = {.kind = kinds[a->kind], .size = a->size, .p = a->p, .brightness = a->brightness,
                   .contrast = a->contrast, .saturation = a->saturation, .hue = a->hue, .padding = a->padding};
    memcpy(o.scale, a->scale, sizeof o.scale);
    memcpy(o.ratio, a->ratio, sizeof o.ratio);
    memcpy(o.mean, a->mean, sizeof o.mean);
    memcpy(o.std, a->std, sizeof o.std);
    return o;
}

const char *const program_fn_names[PROGRAM_SLOTS] = {"rrc_train_full", "rrc_train_last", "rrc_features", "rrc_classify",
                                                     "rrc_rank_full",  "rrc_rank_full_lo", "rrc_rank_last", "rrc_rank_last_lo"};

static bool build_entry_of(Program *pr, int i, Graph *g, const char *name, int K, int64_t B, int64_t B_total,
                           const CgOptions *co) {
    Diag d = {0};
    PipelineOpts po = pr->pipe;
    po.debug = co ? co->debug : 0;
    po.gray_input &= i != 2 && i != 3;   /* the training steps: the evaluations keep whole convolutions */
    po.caps = cg_caps();
    if (!g || !pipeline_run(g, &d, &po)) return false;
    double bytes = 0;
    for (int r = 0; r < RT_NREGIONS; r++) bytes += (double)g->region_bytes[r];
    char what[160], err[320];
    snprintf(what, sizeof what, "the step of %s (entry %s, K=%d, B=%lld)", pr->p.spec_name ? pr->p.spec_name : "the spec", name,
             K, (long long)B);
    if (!rt_fits_memory(what, bytes, err, sizeof err)) {
        fprintf(stderr, "rrc: %s\n", err);
        return false;
    }
    CgOptions eo = co ? *co : (CgOptions){0};
    eo.entry = name;   /* profile sites say "train_b64: ...", not the function's name */
    if (pr->aot) {
        pr->aot_opts[i] = eo;   /* built by aot_modules once every entry is planned */
    } else {
        if (!engine_init(&pr->eng[i], g, ENGINE_JIT, &eo)) return false;
        pr->compile_seconds += pr->eng[i].compile_seconds;
        if (po.debug >= 1)
            fprintf(stderr, "rrc: entry %s compiled in %.3f s%s, %d kernels\n", name, pr->eng[i].compile_seconds,
                    pr->eng[i].cached ? " (cached)" : "", graph_kernel_count(g));
        pr->ncompiled++;
        pr->ncached += pr->eng[i].cached;
    }
    pr->graph[i] = g;
    rt_entry *e = &pr->entry[i];
    e->name = arena_strdup(&pr->arena, name);
    pr->aot_opts[i].entry = e->name;
    e->fn = pr->eng[i].fn;
    memcpy(e->region_bytes, g->region_bytes, sizeof e->region_bytes);
    e->tensors = program_tensor_table(g, &pr->arena, &e->ntensors);
    e->K = K;
    e->B = B;
    e->B_total = B_total;
    return true;
}

static bool build_entry(Program *pr, int i, Graph *g, const char *name, int K, int64_t B, const CgOptions *co) {
    return build_entry_of(pr, i, g, name, K, B, B, co);
}

/* Every PARAM and STATE tensor of `e` sits where train_full has it. */
static bool same_layout(const rt_entry *e, const rt_entry *full) {
    for (int i = 0; i < e->ntensors; i++) {
        const rt_step_tensor *t = &e->tensors[i];
        if (t->region != RT_REGION_PARAM && t->region != RT_REGION_STATE) continue;
        const rt_step_tensor *u = rt_entry_tensor(full, t->name);
        if (!u || u->region != t->region || u->offset != t->offset) {
            fprintf(stderr, "rrc: internal error: entry %s places %s differently from %s\n", e->name, t->name, full->name);
            return false;
        }
    }
    return true;
}

/* Clears pr but for the build options (aot, pipe, ranks, rank). */
static void program_reset(Program *pr) {
    bool aot = pr->aot;
    PipelineOpts pipe = pr->pipe;
    int ranks = pr->ranks, rank = pr->rank;
    memset(pr, 0, sizeof *pr);
    pr->aot = aot;
    pr->pipe = pipe;
    pr->ranks = ranks;
    pr->rank = rank;
}

/* AOT: the entries' LLVM modules, built and optimised on two threads (the
   full-batch training step, the largest, on its own; the others after each
   other on the calling thread). Each module has its own LLVM context. */
typedef struct ModJob {
    Program *pr;
    unsigned slots;    /* bit i: entry i */
    bool ok;
} ModJob;

static void *build_modules(void *arg) {
    ModJob *j = arg;
    j->ok = true;
    for (int i = 0; i < PROGRAM_SLOTS && j->ok; i++) {
        if (!(j->slots & (1u << i))) continue;
        if (!j->pr->graph[i]) continue;
        j->pr->cgm[i] = cg_build(j->pr->graph[i], program_fn_names[i], &j->pr->aot_opts[i]);
        j->ok = j->pr->cgm[i] != NULL;
    }
    return NULL;
}

static bool aot_modules(Program *pr) {
    if (!pr->aot) return true;
    /* the full-batch steps (of one process, of a rank's larger share) on one
       thread, the rest on the other */
    ModJob a = {pr, 0x11, false}, b = {pr, 0xEE, false};
    pthread_t th;
    bool threaded = pthread_create(&th, NULL, build_modules, &a) == 0;
    if (!threaded) build_modules(&a);
    build_modules(&b);
    if (threaded) pthread_join(th, NULL);
    /* code generation adds the kernels' workspace to the scratch region */
    for (int i = 0; i < PROGRAM_SLOTS; i++)
        if (pr->graph[i]) memcpy(pr->entry[i].region_bytes, pr->graph[i]->region_bytes, sizeof pr->entry[i].region_bytes);
    return a.ok && b.ok;
}

/* The steps of one rank's share of a full batch of B images (slot 4, and 5
   for the smaller share when B % ranks != 0) and of the last batch of
   Blast (slots 6, 7; Blast 0: none): of every share, or of pr->rank's. */
static bool build_rank_entries(Program *pr, Spec *s, int64_t B, int64_t Blast, const CgOptions *co) {
    int N = pr->ranks;
    if (B < N || (Blast && Blast < N)) {
        fprintf(stderr, "rrc: %s: a batch of %lld images cannot be split over %d ranks (each needs one); use fewer ranks\n",
                s->name, (long long)(B < N ? B : Blast), N);
        return false;
    }
    int64_t totals[2] = {B, Blast};
    for (int t = 0; t < 2; t++) {
        if (!totals[t]) continue;
        int64_t o, hi = rt_comm_share(totals[t], 0, N, &o), lo = rt_comm_share(totals[t], N - 1, N, &o);
        for (int k = 0; k < 2; k++) {
            int64_t b = k ? lo : hi;
            if ((k && lo == hi) || (pr->rank >= 0 && rt_comm_share(totals[t], pr->rank, N, &o) != b)) continue;
            Diag d = {0};
            char name[64];
            snprintf(name, sizeof name, "train_b%lld_of_%lld", (long long)b, (long long)totals[t]);
            /* a single rank's program puts its step in slot [0] */
            int slot = 4 + 2 * t + (pr->rank >= 0 ? 0 : k);
            Graph *g = lower_train_rank(s, totals[t], b, s->in_c, s->in_h, s->in_w, &pr->arena, &d);
            if (!build_entry_of(pr, slot, g, name, s->K, b, totals[t], co)) return false;
        }
    }
    return true;
}

/* What the spec says, for every kind of program; the entries are set. */
static bool program_fill(Program *pr, const Spec *s) {
    rt_program *p = &pr->p;
    p->spec_name = s->name;
    const rt_entry *others[] = {p->train_last, p->features, p->classify, p->rank_full[0], p->rank_full[1], p->rank_last[0],
                                p->rank_last[1]};
    for (int i = 0; i < 7; i++)
        if (others[i] && !same_layout(others[i], p->train_full)) return false;
    p->layout_hash = rt_layout_hash(p->train_full);
    p->in_c = s->in_c;
    p->in_h = s->in_h;
    p->in_w = s->in_w;
    const rt_step_tensor *f = rt_entry_tensor(p->features, "features");
    p->feat_dim = f ? f->dim[1] : 0;
    p->batch = s->batch;
    p->epochs = s->epochs;
    p->seed = s->seed;
    p->data = s->data;
    /* the relational options only where they mean something: a checkpoint
       and --resume compare them */
    p->aggregation = s->method.kind == METHOD_RELATIONAL ? aggregation_name(s->head.aggregation) : "";
    /* a step that reads channel 0 alone makes the program one of gray images */
    for (int i = 0; i < PROGRAM_SLOTS; i++)
        for (int k = 0; pr->graph[i] && k < pr->graph[i]->nnodes; k++) p->gray_input |= pr->graph[i]->nodes[k]->gray_x;
    p->naug = s->naug;
    p->aug = arena_alloc(&pr->arena, (size_t)(s->naug ? s->naug : 1) * sizeof *p->aug);
    for (int i = 0; i < s->naug; i++) p->aug[i] = convert_aug(&s->aug[i]);
    return true;
}

bool program_build(Program *pr, Spec *s, int64_t n_train, int64_t features_rows, const CgOptions *co) {
    program_reset(pr);
    pr->p.spec_name = s->name;   /* for messages while the entries are built */
    Diag d = {0};
    /* Deep InfoMax's loader drops the last partial batch (drop_last=True) */
    bool drop_last = s->method.kind == METHOD_DIM;
    int64_t B = s->batch, Blast = n_train && !drop_last ? n_train % B : 0;
    char name[64];
    bool alone = pr->ranks <= 1 || pr->rank < 0;   /* the one-process steps too */
    snprintf(name, sizeof name, "train_b%lld", (long long)B);
    if (alone && !build_entry(pr, 0, lower_train(s, B, s->in_c, s->in_h, s->in_w, &pr->arena, &d), name, s->K, B, co))
        return false;
    if (alone && Blast >= 2) {
        snprintf(name, sizeof name, "train_b%lld", (long long)Blast);
        if (!build_entry(pr, 1, lower_train(s, Blast, s->in_c, s->in_h, s->in_w, &pr->arena, &d), name, s->K, Blast, co))
            return false;
    }
    if (pr->ranks > 1 && !build_rank_entries(pr, s, B, Blast >= 2 ? Blast : 0, co)) return false;
    if (!build_entry(pr, 2, lower_features(s, features_rows, s->in_c, s->in_h, s->in_w, &pr->arena, &d), "features", 0,
                     features_rows, co))
        return false;
    if (!aot_modules(pr)) return false;
    rt_program *p = &pr->p;
    p->train_full = &pr->entry[0];
    p->train_last = Blast >= 2 ? &pr->entry[1] : NULL;
    p->features = &pr->entry[2];
    if (pr->ranks > 1) {
        p->ranks = pr->ranks;
        for (int k = 0; k < 2; k++) {
            p->rank_full[k] = pr->graph[4 + k] ? &pr->entry[4 + k] : NULL;
            p->rank_last[k] = pr->graph[6 + k] ? &pr->entry[6 + k] : NULL;
        }
        if (!alone) {   /* one rank's program: its steps are the training steps */
            p->train_full = p->rank_full[0];
            p->train_last = p->rank_last[0];
        }
    }
    if (!program_fill(pr, s)) return false;
    p->K = s->K;
    switch (s->method.kind) {
    case METHOD_RELATIONAL: p->method = RT_METHOD_RELATIONAL; p->loss = loss_name(s->loss.kind); break;
    case METHOD_ROTATION: p->method = RT_METHOD_ROTATION; p->loss = "cross-entropy"; break;
    case METHOD_SIMCLR: p->method = RT_METHOD_SIMCLR; p->loss = "simclr"; break;
    case METHOD_DIM: p->method = RT_METHOD_DIM; p->loss = "dim"; p->drop_last = 1; break;
    case METHOD_DEEPCLUSTER:
        p->method = RT_METHOD_DEEPCLUSTER;
        p->loss = "weighted-cross-entropy";
        p->clusters = s->method.clusters;
        p->reset_layer = s->method.reset;
        break;
    }
    p->optim = s->optim.kind == OPT_ADAM ? RT_OPT_ADAM : RT_OPT_SGD;
    p->adam = (rt_adam){s->optim.lr, s->optim.beta1, s->optim.beta2, s->optim.eps, s->optim.weight_decay};
    p->sgd = (rt_sgd){s->optim.lr, s->optim.momentum, s->optim.weight_decay};
    p->nmilestones = s->optim.nmilestones;
    memcpy(p->milestones, s->optim.milestones, sizeof p->milestones);
    p->lr_gamma = s->optim.lr_gamma;
    return true;
}

bool program_build_supervised(Program *pr, Spec *s, int classes, int64_t n_train, int64_t rows, const CgOptions *co) {
    program_reset(pr);
    pr->p.spec_name = s->name;   /* for messages while the entries are built */
    Diag d = {0};
    int64_t B = s->batch, Blast = n_train ? n_train % B : 0;
    char name[64];
    snprintf(name, sizeof name, "supervised_b%lld", (long long)B);
    if (!build_entry(pr, 0, lower_supervised(s, B, classes, s->in_c, s->in_h, s->in_w, true, &pr->arena, &d), name, 1, B, co))
        return false;
    if (Blast >= 2) {
        snprintf(name, sizeof name, "supervised_b%lld", (long long)Blast);
        if (!build_entry(pr, 1, lower_supervised(s, Blast, classes, s->in_c, s->in_h, s->in_w, true, &pr->arena, &d), name, 1,
                         Blast, co))
            return false;
    }
    if (!build_entry(pr, 2, lower_features(s, rows, s->in_c, s->in_h, s->in_w, &pr->arena, &d), "features", 0, rows, co) ||
        !build_entry(pr, 3, lower_supervised(s, rows, classes, s->in_c, s->in_h, s->in_w, false, &pr->arena, &d), "classify", 0,
                     rows, co))
        return false;
    if (!aot_modules(pr)) return false;
    rt_program *p = &pr->p;
    p->method = RT_METHOD_SUPERVISED;
    p->train_full = &pr->entry[0];
    p->train_last = Blast >= 2 ? &pr->entry[1] : NULL;
    p->features = &pr->entry[2];
    p->classify = &pr->entry[3];
    p->classes = classes;
    if (!program_fill(pr, s)) return false;
    p->K = 1;
    p->loss = "cross-entropy";
    /* METHOD.md's supervised schedule, whatever the spec's relational optimizer */
    p->optim = RT_OPT_SGD;
    p->sgd = (rt_sgd){0.1, 0.9, 0.0};
    p->nmilestones = 2;
    p->milestones[0] = 0.5;
    p->milestones[1] = 0.75;
    p->lr_gamma = 0.1;
    return true;
}

void program_free(Program *pr) {
    for (int i = 0; i < PROGRAM_SLOTS; i++) {
        engine_free(&pr->eng[i]);
        cg_free(pr->cgm[i]);
    }
    arena_free(&pr->arena);
    memset(pr, 0, sizeof *pr);
}
