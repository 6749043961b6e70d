/*
** test_golden_math.c: the math ops (compiler/ir/ops_math.c) against PyTorch
** (tests/golden/math/, made by tests/golden/make_math_goldens.py from
** torch.mul, exp, log, F.softplus, F.normalize and matmul with autograd).
** Each file's op is built with the IR's builders on its inputs; the
** reference interpreter runs the forward and the op's backward rule on the
** file's dy, and y and every input gradient must match by the f32 rule of
** tolerance.h. The compiled code is checked against the interpreter in
** test_fuse.c and test_kernels.c.
*/
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "golden_util.h"
#include "test.h"

static int64_t meta_i(const rt_st_file *f, const char *k) {
    const char *v = rt_st_meta(f, k);
    return v ? strtoll(v, NULL, 10) : 0;
}

/* One golden file: true if it was checked. */
static bool check_file(const char *path) {
    rt_st_file f;
    if (!golden_read(path, &f)) return false;
    const char *op = rt_st_meta(&f, "op");
    const rt_tensor *ta = rt_st_find(&f, "a"), *tb = rt_st_find(&f, "b"), *ty = rt_st_find(&f, "y");
    if (!op || !ta || !ty) {
        test_fail(__FILE__, __LINE__, "%s: needs metadata 'op' and tensors a, y", path);
        rt_st_free(&f);
        return false;
    }
    Arena ar = {0};
    Graph *g = graph_new(&ar);
    int64_t ad[4], bd[4];
    for (int k = 0; k < ta->rank; k++) ad[k] = ta->shape[k];
    Node *a = ir_param(g, "a", ta->rank, ad, (rt_init){RT_INIT_CONST, 0});
    Node *b = NULL;
    if (tb) {
        for (int k = 0; k < tb->rank; k++) bd[k] = tb->shape[k];
        b = ir_param(g, "b", tb->rank, bd, (rt_init){RT_INIT_CONST, 0});
    }
    const char *eps = rt_st_meta(&f, "eps");
    Node *y = NULL;
    if (!strcmp(op, "mul") && b) y = ir_mul(g, a, b);
    else if (!strcmp(op, "exp")) y = ir_exp(g, a);
    else if (!strcmp(op, "log")) y = ir_log(g, a);
    else if (!strcmp(op, "softplus")) y = ir_softplus(g, a);
    else if (!strcmp(op, "l2_normalize") && eps) y = ir_l2_normalize(g, a, strtod(eps, NULL));
    else if (!strcmp(op, "matmul") && b) y = ir_matmul(g, a, b, meta_i(&f, "ta"), meta_i(&f, "tb"));
    else if (!strcmp(op, "matmul_self")) y = ir_matmul(g, a, a, 0, 1);   /* a a^T: both gradients add up */
    if (!y) {
        test_fail(__FILE__, __LINE__, "%s: unknown op '%s' (or its inputs or attributes are missing)", path, op);
        rt_st_free(&f);
        arena_free(&ar);
        return false;
    }
    Node *dy = ir_input(g, "dy", y->rank, y->dim);
    Node *dx[IR_MAX_IN] = {0};
    op_table[y->op].bwd(g, y, dy, op_table[y->op].diffmask, dx);
    Node *ga = y->in[0] == y->in[1] && y->nin == 2 ? ir_add(g, dx[0], dx[1]) : dx[0], *gb = b ? dx[1] : NULL;
    graph_add_output(g, "y", y);
    graph_add_output(g, "grad_a", ga);
    if (gb) graph_add_output(g, "grad_b", gb);
    Interp it;
    interp_init(&it, g);
    int unbound = golden_bind(&it, g, &f, path);
    CHECKF(unbound == 0, "%s: %d leaves without a tensor", path, unbound);
    interp_run(&it);
    struct { const char *name; const Node *n; } outs[] = {{"y", y}, {"grad_a", ga}, {"grad_b", gb}};
    for (int i = 0; i < 3; i++) {
        if (!outs[i].n) continue;
        int64_t n = node_numel(outs[i].n);
        double *ref = golden_tensor(&f, path, outs[i].name, n);
        if (!ref) continue;
        char what[900];
        snprintf(what, sizeof what, "%s: %s", path, outs[i].name);
        golden_compare(what, interp_value(&it, outs[i].n), ref, n);
        free(ref);
    }
    interp_free(&it);
    rt_st_free(&f);
    arena_free(&ar);
    return true;
}

TEST(golden_math_ops) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/math", golden_dir());
    DIR *d = opendir(dir);
    REQUIREF(d, "no %s (make goldens)", dir);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        if (!strstr(de->d_name, ".safetensors")) continue;
        char path[800];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        n += check_file(path);
    }
    closedir(d);
    CHECKF(n >= 11, "only %d math goldens checked", n);
}
