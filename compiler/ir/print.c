/*
** print.c: the stable text form of a graph (rrc dump-ir) and its summary.
** One node per line:
**   %12 = conv2d %10, %11 stride=1 pad=1 -> [256,8,32,32]  ; backbone.layer1.conv  specs/conv4.lua:14
** The format is tested by golden files (tests/golden/ir/); change it only
** together with them.
*/
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "ir/ir.h"

void fmt_shape(char *buf, size_t n, const Node *node) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < node->rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%" PRId64, i ? "," : "", node->dim[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static void print_attrs(FILE *f, const Node *n) {
    const char *s = op_table[n->op].attrs;
    int ki = 0, kf = 0;
    /* fill and reshape carry a shape in their attributes; it is the node's shape */
    if (n->op == OP_FILL || n->op == OP_RESHAPE) {
        if (n->op == OP_FILL) fprintf(f, " value=%g", n->fa[0]);
        return;
    }
    while (*s) {
        char kind = s[0];
        const char *name = s + 2, *end = strchr(name, ' ');
        int len = end ? (int)(end - name) : (int)strlen(name);
        if (kind == 'i') fprintf(f, " %.*s=%" PRId64, len, name, n->ia[ki++]);
        else fprintf(f, " %.*s=%g", len, name, n->fa[kf++]);
        s = end ? end + 1 : name + len;
    }
}

static const char *init_name(rt_init_kind k) {
    switch (k) {
    case RT_INIT_CONST: return "const";
    case RT_INIT_NORMAL: return "normal";
    case RT_INIT_UNIFORM: return "uniform";
    default: return "none";
    }
}

void graph_dump(FILE *f, const Graph *g) {
    char sh[64];
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        fmt_shape(sh, sizeof sh, n);
        fprintf(f, "%%%d = %s", n->id, op_table[n->op].name);
        bool leafop = op_table[n->op].fusion == FUSE_LEAF;
        if (leafop) {
            fprintf(f, " \"%s\" -> %s", n->name, sh);
            if (n->op != OP_INPUT) fprintf(f, " init=%s(%.6g)", init_name(n->init.kind), n->init.a);
        } else {
            for (int k = 0; k < n->nin; k++) fprintf(f, "%s %%%d", k ? "," : "", n->in[k]->id);
            print_attrs(f, n);
            fprintf(f, " -> %s", sh);
            /* pass_fuse's decisions, which codegen obeys */
            if (n->kernel) fprintf(f, " [%s %%%d]", kernel_kind_name(n->kernel->kind), n->kernel->members[0]->id);
            else if (n->inlined) fprintf(f, " [inlined]");
            if (node_unstored(n) && !n->inlined) {   /* applied in its readers */
                fprintf(f, " applied in");
                for (int r = n->id + 1; r < g->nnodes; r++)
                    if (g->nodes[r]->nin > 0 && g->nodes[r]->in[0] == n) fprintf(f, " %%%d", r);
            }
            if (n->direct) fprintf(f, " direct");
            if (n->gray_x) fprintf(f, " gray");
            if (n->ws) fprintf(f, " ws=%lld", (long long)n->ws);
        }
        bool label = n->name && !leafop, loc = n->loc.file && n->loc.line > 0;
        if (label || loc) fprintf(f, "  ;");
        if (label) fprintf(f, " %s", n->name);
        if (loc) fprintf(f, " %s:%d", n->loc.file, n->loc.line);
        fputc('\n', f);
    }
    fprintf(f, "outputs:\n");
    for (int i = 0; i < g->nouts; i++) fprintf(f, "  %s = %%%d\n", g->outs[i].name, g->outs[i].node->id);
}

static bool starts(const char *s, const char *p) { return s && strncmp(s, p, strlen(p)) == 0; }

GraphStats graph_stats(const Graph *g, int64_t images) {
    GraphStats st = {0};
    st.nnodes = g->nnodes;
    int64_t pairs = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        /* the pairs' rows (after the factor pass, pair_halves makes them) */
        if (n->op == OP_PAIRS || n->op == OP_PAIR_HALVES) pairs = n->dim[0];
    }
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        int64_t e = node_numel(n);
        if (n->op == OP_PARAM) {
            if (starts(n->name, "backbone.")) st.params_backbone += e;
            else st.params_relation += e;   /* the relation head's, or a baseline's head's */
        } else if (n->op == OP_STATE) {
            if (starts(n->name, "backbone.")) st.bn_stats_backbone += e;
            else st.bn_stats_relation += e;
        } else if (n->op == OP_CONV2D || n->op == OP_LINEAR) {
            /* in double, then saturated: a spec at the size limits has more
               multiply-adds than int64 counts */
            double macs = op_table[n->op].cost(n).flops / 2, cap = 1e18;
            if (starts(n->name, "backbone") && images > 0)
                st.macs_per_image = (int64_t)fmin(cap, (double)st.macs_per_image + macs / (double)images);
            else if (starts(n->name, "relation") && pairs > 0)
                st.macs_relation_per_pair = (int64_t)fmin(cap, (double)st.macs_relation_per_pair + macs / (double)pairs);
        }
    }
    return st;
}
