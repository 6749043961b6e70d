/*
** pipeline.c: the pass manager.
*/
#include <stdio.h>
#include <string.h>

#include "passes/pipeline.h"
#include "target.h"

typedef struct Pass {
    const char *name, *what;
    bool (*run)(Graph *, Diag *);
} Pass;

static const Pass passes[] = {
#define PASS(name, what) {#name, what, pass_##name},
#include "passes/passes.def"
#undef PASS
};
enum { NPASSES = sizeof passes / sizeof passes[0] };

bool pipeline_has_pass(const char *name) {
    if (strcmp(name, "lower") == 0) return true;
    for (int i = 0; i < NPASSES; i++)
        if (strcmp(passes[i].name, name) == 0) return true;
    return false;
}

const char *pipeline_pass_names(void) {
    static char buf[256];
    if (!buf[0]) {
        strcpy(buf, "lower");
        for (int i = 0; i < NPASSES; i++) {
            strcat(buf, ", ");
            strcat(buf, passes[i].name);
        }
    }
    return buf;
}

bool pipeline_run(Graph *g, Diag *d, const PipelineOpts *o) {
    if (o->dump_after && strcmp(o->dump_after, "all") != 0 && !pipeline_has_pass(o->dump_after)) {
        fprintf(stderr, "rrc: unknown pass '%s' (passes: %s)\n", o->dump_after, pipeline_pass_names());
        return false;
    }
    if (o->stop_after && !pipeline_has_pass(o->stop_after)) {
        fprintf(stderr, "rrc: unknown pass '%s' (passes: %s)\n", o->stop_after, pipeline_pass_names());
        return false;
    }
    g->target = o->target ? o->target : target_host();
    g->caps = o->caps;
    g->gray_input |= o->gray_input;
    if (o->verify_each && !graph_verify(g, "after lower")) return false;
    if (o->stop_after && strcmp(o->stop_after, "lower") == 0) return true;
    for (int i = 0; i < NPASSES; i++) {
        double t0 = wall_seconds();
        int before = g->nnodes;
        if (!passes[i].run(g, d)) return false;
        if (o->debug >= 1) {
            fprintf(stderr, "rrc: pass %-10s %8.3f ms  nodes %d -> %d", passes[i].name, 1e3 * (wall_seconds() - t0), before,
                    g->nnodes);
            if (g->fused) {   /* what a step runs: fused kernels and runtime calls */
                int inl = 0;
                for (int k = 0; k < g->nnodes; k++) inl += g->nodes[k]->inlined;
                fprintf(stderr, "  kernels %d (%d fused, %d values inlined)", graph_kernel_count(g), g->nkernels, inl);
            }
            if (g->planned)
                fprintf(stderr, "  scratch %.1f MiB (live peak %.1f MiB)", g->region_bytes[RT_REGION_SCRATCH] / 1048576.0,
                        g->scratch_live_peak / 1048576.0);
            fputc('\n', stderr);
        }
        if (o->debug >= 2 || (o->dump_after && (!strcmp(o->dump_after, "all") || !strcmp(o->dump_after, passes[i].name)))) {
            fprintf(stderr, "# IR after %s\n", passes[i].name);
            graph_dump(stderr, g);
        }
        if (o->verify_each) {
            char when[64];
            snprintf(when, sizeof when, "after %s", passes[i].name);
            if (!graph_verify(g, when)) return false;
        }
        if (o->stop_after && strcmp(o->stop_after, passes[i].name) == 0) return true;
    }
    return true;
}
