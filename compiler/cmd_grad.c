/*
** cmd_grad.c: `rrc grad`: one training-mode step on given views, without
** an update, written as safetensors: loss [1], logits [P], grad.<name> for
** every trainable parameter, state.<name> for every updated running
** statistic, and param.<name> when the parameters were initialised here.
** The engine for now is the reference interpreter.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "driver.h"
#include "engine.h"
#include "frontend/lower.h"

static void grad_usage(FILE *f) {
    driver_usage(f, RRC_CMD_GRAD, "SPEC --input X.safetensors --out G.safetensors [flags]",
                 "Runs one training-mode step of SPEC (BatchNorm with batch statistics) on the views in\n"
                 "tensor 'x' of X (F32 [K*B,C,H,W], view k of image i in row k*B+i; a baseline's other\n"
                 "inputs too: DeepCluster's y and w, Deep InfoMax's u), without updating,\n"
                 "and writes loss, logits, grad.<param>, state.<running stat> (and param.<name> when\n"
                 "the parameters were initialised here) as F32 safetensors.\n");
}

static int write_results(const char *cmd, const char *out, Graph *g, const Engine *en, bool with_params) {
    int cap = g->nouts + g->nnodes, n = 0;
    rt_tensor *ts = xcalloc((size_t)cap, sizeof *ts);
    float **bufs = xcalloc((size_t)cap, sizeof *bufs);
    char **names = xcalloc((size_t)cap, sizeof *names);
    for (int i = 0; i < g->nouts; i++) {
        const char *name = g->outs[i].name;
        if (!strcmp(name, "targets")) continue;
        const Node *node = g->outs[i].node;
        names[n] = xstrdup(name);
        ts[n].name = names[n];
        ts[n].dtype = RT_F32;
        ts[n].rank = node->rank;
        for (int k = 0; k < node->rank; k++) ts[n].shape[k] = node->dim[k];
        int64_t e = node_numel(node);
        bufs[n] = xmalloc((size_t)e * sizeof(float));
        engine_get(en, node, bufs[n]);
        ts[n].data = bufs[n];
        ts[n].nbytes = (size_t)e * sizeof(float);
        n++;
    }
    for (int i = 0; with_params && i < g->nnodes; i++) {
        const Node *node = g->nodes[i];
        if (node->op != OP_PARAM && node->op != OP_STATE) continue;
        size_t len = strlen(node->name) + 7;
        names[n] = xmalloc(len);
        snprintf(names[n], len, "param.%s", node->name);
        ts[n].name = names[n];
        ts[n].dtype = RT_F32;
        ts[n].rank = node->rank;
        for (int k = 0; k < node->rank; k++) ts[n].shape[k] = node->dim[k];
        int64_t e = node_numel(node);
        bufs[n] = xmalloc((size_t)e * sizeof(float));
        engine_get(en, node, bufs[n]);
        ts[n].data = bufs[n];
        ts[n].nbytes = (size_t)e * sizeof(float);
        n++;
    }
    const char *mk[] = {"format", "engine"}, *mv[] = {"rrc-grad-1", engine_name(en->kind)};
    char err[512];
    int rc = rt_st_write(out, ts, n, mk, mv, 2, err, sizeof err);
    if (rc != 0) fprintf(stderr, "rrc %s: %s\n", cmd, err);
    for (int i = 0; i < n; i++) {
        free(bufs[i]);
        free(names[i]);
    }
    free(bufs);
    free(names);
    free(ts);
    return rc == 0 ? 0 : EXIT_USAGE;
}

/* ---- --engine aot: a cached AOT trainer runs the step ---- */

static int grad_aot(const char *spec, const Spec *s, Graph *g, int64_t B, const char *input, const char *params, const char *out) {
    char trainer[1600], name[300];
    CacheEntry ce;
    if (!cache_entry(&ce, g, "aot", NULL, NULL)) {
        fprintf(stderr, "rrc grad: --engine aot builds its trainer in the compile cache, which is off (RRC_CACHE_DIR=off) or unusable\n");
        return EXIT_USAGE;
    }
    snprintf(name, sizeof name, "%s-train", s->name);
    snprintf(trainer, sizeof trainer, "%s/%s", ce.dir, name);
    /* a cache entry is used only if its manifest names this key and the
       trainer's exact size and hash; anything else is rebuilt */
    CacheLookup r = cache_check(&ce, name);
    if (r == CACHE_BAD) fprintf(stderr, "rrc grad: cache entry %s does not match its manifest; rebuilding\n", ce.dir);
    if (r != CACHE_HIT) {
        if (!cache_mkdirs(ce.dir)) {
            fprintf(stderr, "rrc grad: cannot create %s: %s\n", ce.dir, strerror(errno));
            return EXIT_USAGE;
        }
        char manifest[1400];
        snprintf(manifest, sizeof manifest, "%s/manifest", ce.dir);
        remove(manifest);
        char kbuf[16], bbuf[32], nbuf[32];
        snprintf(kbuf, sizeof kbuf, "%d", s->K);
        snprintf(bbuf, sizeof bbuf, "%lld", (long long)B);
        snprintf(nbuf, sizeof nbuf, "%lld", (long long)(4 * B));
        char a_o[] = "-o", a_k[] = "--K", a_b[] = "--batch", a_a[] = "--aggregation", a_l[] = "--loss",
             a_n[] = "--train-size", agg[16], loss[16], sp[1024];
        snprintf(agg, sizeof agg, "%s", aggregation_name(s->head.aggregation));
        snprintf(loss, sizeof loss, "%s", loss_name(s->loss.kind));
        snprintf(sp, sizeof sp, "%s", spec);
        char *av[] = {sp, a_o, ce.dir, a_b, bbuf, a_n, nbuf, a_k, kbuf, a_a, agg, a_l, loss, NULL};
        /* K, aggregation and loss are relational reasoning's (a baseline's
           spec fixes its views) */
        int ac = s->method.kind == METHOD_RELATIONAL ? 13 : 7;
        av[ac] = NULL;
        if (cmd_compile(ac, av) != 0) return EXIT_USAGE;
        if (!cache_commit(&ce, name)) fprintf(stderr, "rrc grad: note: cannot write the manifest of %s: %s\n", ce.dir, strerror(errno));
    }
    char cmd[6000];
    snprintf(cmd, sizeof cmd, "'%s' grad --input '%s' --out '%s' --seed %llu%s%s%s", trainer, input, out,
             (unsigned long long)s->seed, params ? " --params '" : "", params ? params : "", params ? "'" : "");
    int st = system(cmd);
    return st == 0 ? 0 : EXIT_USAGE;
}

int cmd_grad(int argc, char **argv) {
    rt_args a;
    int st = driver_parse(RRC_CMD_GRAD, argc, argv, 1, grad_usage, &a);
    if (st >= 0) return st;
    const char *spec = a.npos ? a.pos[0] : NULL, *input = NULL, *params = NULL, *out = NULL, *engine = "interp", *cpu = NULL;
    SpecOverrides ov = {.seed = -1};
    for (int i = 0; i < a.nopts; i++) {
        const rt_opt *o = &a.opts[i];
        switch (o->flag->id) {
        case RRC_F_INPUT: input = o->value; break;
        case RRC_F_PARAMS: params = o->value; break;
        case RRC_F_OUT: out = o->value; break;
        case RRC_F_K: ov.K = (int)o->ival; break;
        case RRC_F_AGGREGATION: ov.aggregation = o->value; break;
        case RRC_F_LOSS: ov.loss = o->value; break;
        case RRC_F_SEED: ov.seed = o->ival; break;
        case RRC_F_ENGINE: engine = o->value; break;   /* interp, jit or aot: the row's choices */
        case RRC_F_CPU: cpu = o->value; break;
        default: break;
        }
    }
    rt_args_free(&a);   /* the values point into argv */
    if (!spec || !input || !out) {
        fprintf(stderr, "rrc grad: %s is required (see rrc grad --help)\n", !spec ? "a SPEC" : !input ? "--input" : "--out");
        return EXIT_USAGE;
    }
    EngineKind ek = ENGINE_INTERP;
    bool aot = !strcmp(engine, "aot");
    if (!aot && !engine_parse(engine, &ek)) RRC_ABORT("engine '%s' is among --engine's choices but has no engine", engine);
    Arena arena = {0};
    Spec *s = driver_load_spec("grad", spec, &ov, &arena);

    rt_st_file xf = {0};
    char err[512];
    if (rt_st_read(input, &xf, err, sizeof err) != 0) {
        fprintf(stderr, "rrc grad: %s\n", err);
        arena_free(&arena);
        return EXIT_USAGE;
    }
    int rc = EXIT_USAGE;
    Engine en = {0};
    float *xv = NULL, **pv = NULL;
    Graph *g = NULL;
    const rt_tensor *x = rt_st_find(&xf, "x");
    if (!x) { fprintf(stderr, "rrc grad: %s: no tensor 'x'\n", input); goto done; }
    if (x->rank != 4 || x->shape[0] % s->K != 0 || x->shape[0] / s->K < 1) {
        fprintf(stderr, "rrc grad: %s: 'x' must be F32 [K*B,C,H,W] with K=%d views of each image", input, s->K);
        if (x->rank == 4) fprintf(stderr, " (%lld rows are not a multiple of %d)", (long long)x->shape[0], s->K);
        fputc('\n', stderr);
        goto done;
    }
    if (x->shape[1] != s->in_c) {
        fprintf(stderr, "rrc grad: %s: 'x' has %lld channels, the spec's input has %d\n", input, (long long)x->shape[1], s->in_c);
        goto done;
    }
    int64_t B = x->shape[0] / s->K;
    Diag d = {0};
    g = lower_train(s, B, x->shape[1], x->shape[2], x->shape[3], &arena, &d);
    if (!g) { rc = EXIT_BADSPEC; goto done; }
    Target target;
    PipelineOpts po = {.debug = rrc_env_debug(), .target = driver_target("grad", cpu, NULL, NULL, true, &target),
                       .caps = cg_caps()};
    if (!pipeline_run(g, &d, &po)) { rc = EXIT_BADSPEC; goto done; }
    if (aot) {
        rc = grad_aot(spec, s, g, B, input, params, out);
        goto done;
    }
    int64_t xe = rt_tensor_numel(x);
    xv = xmalloc((size_t)xe * sizeof *xv);
    if (rt_tensor_to_f32(x, xv, xe, input, err, sizeof err) != 0) { fprintf(stderr, "rrc grad: %s\n", err); goto done; }
    bool initialised;
    pv = driver_load_params("grad", g, params, s->seed, &initialised);
    if (!pv) goto done;
    CgOptions co = {.debug = rrc_env_debug(), .target = po.target};
    if (!engine_init(&en, g, ek, &co)) { rc = EXIT_USAGE; goto done; }
    engine_set(&en, graph_find_leaf(g, OP_INPUT, "x"), xv);
    for (int i = 0; i < g->nnodes; i++)
        if (pv[i]) engine_set(&en, g->nodes[i], pv[i]);
    /* a method's other inputs (DeepCluster's y and w, Deep InfoMax's u) */
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        if (n->op != OP_INPUT || !strcmp(n->name, "x")) continue;
        const rt_tensor *v = rt_st_find(&xf, n->name);
        bool fits = v && v->rank == n->rank;
        for (int k = 0; fits && k < n->rank; k++) fits = v->shape[k] == n->dim[k];
        char sh[64];
        fmt_shape(sh, sizeof sh, n);
        if (!fits) {
            fprintf(stderr, "rrc grad: %s: %s tensor '%s' of shape %s (an input of %s's step)\n", input, v ? "the" : "no", n->name, sh,
                    s->name);
            rc = EXIT_USAGE;
            goto done;
        }
        float *iv = xmalloc((size_t)node_numel(n) * sizeof *iv);
        int bad = rt_tensor_to_f32(v, iv, node_numel(n), input, err, sizeof err);
        if (!bad) engine_set(&en, n, iv);
        free(iv);
        if (bad) { fprintf(stderr, "rrc grad: %s\n", err); goto done; }
    }
    engine_run(&en);
    rc = write_results("grad", out, g, &en, initialised);
done:
    free(xv);
    if (g) driver_free_params(g, pv);
    engine_free(&en);
    rt_st_free(&xf);
    arena_free(&arena);
    return rc;
}
