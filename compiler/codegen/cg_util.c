/*
** cg_util.c: the bottom layer of codegen (see cg_util.h): addresses of
** planned values, loops and allocas, calls of runtime functions, the
** attributes and rows wrappers every generated kernel has, and profile
** sites. It calls no other codegen file.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cg_rtcall.h"

void cg_vector_width(CG *cg, LLVMValueRef fn) {
    /* LLVM keeps to 256-bit vectors on AVX-512 CPUs unless told: the
       kernels are written for the target's full width */
    if (cg->t->lanes * 32 <= 256) return;
    char w[16];
    int n = snprintf(w, sizeof w, "%d", cg->t->lanes * 32);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(cg->ctx, "prefer-vector-width", 19, w, (unsigned)n));
}

LLVMValueRef cg_ptr(CG *cg, const Node *n) {
    RRC_ASSERT(n->region >= 0 && n->region < RT_NREGIONS);
    LLVMValueRef off = LLVMConstInt(cg->i64, (unsigned long long)n->offset, 0);
    char name[32];
    snprintf(name, sizeof name, "v%d", n->id);
    return LLVMBuildGEP2(cg->b, cg->i8, cg->base[n->region], &off, 1, name);
}

LLVMValueRef cg_ws(CG *cg) {
    LLVMValueRef off = LLVMConstInt(cg->i64, (unsigned long long)cg->ws_offset, 0);
    return LLVMBuildGEP2(cg->b, cg->i8, cg->base[RT_REGION_SCRATCH], &off, 1, "ws");
}

LLVMValueRef cg_alloca_at_entry(CG *cg, LLVMBasicBlockRef entry, LLVMTypeRef t, const char *name) {
    LLVMBuilderRef e = LLVMCreateBuilderInContext(cg->ctx);
    LLVMValueRef first = LLVMGetFirstInstruction(entry);
    if (first) LLVMPositionBuilderBefore(e, first);
    else LLVMPositionBuilderAtEnd(e, entry);
    LLVMValueRef a = LLVMBuildAlloca(e, t, name);
    LLVMDisposeBuilder(e);
    return a;
}

LLVMValueRef cg_loop_open(CG *cg, LLVMBuilderRef b, LLVMValueRef fn, LLVMBasicBlockRef entry, CgLoop *L, LLVMValueRef lo,
                          LLVMValueRef hi, const char *name) {
    L->slot = cg_alloca_at_entry(cg, entry, cg->i64, name);
    LLVMBuildStore(b, lo, L->slot);
    L->head = LLVMAppendBasicBlockInContext(cg->ctx, fn, name);
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(cg->ctx, fn, "body");
    L->exit = LLVMAppendBasicBlockInContext(cg->ctx, fn, "exit");
    LLVMBuildBr(b, L->head);
    LLVMPositionBuilderAtEnd(b, L->head);
    L->i = LLVMBuildLoad2(b, cg->i64, L->slot, name);
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, L->i, hi, ""), body, L->exit);
    LLVMPositionBuilderAtEnd(b, body);
    return L->i;
}

void cg_loop_close(CG *cg, LLVMBuilderRef b, CgLoop *L, int64_t step) {
    LLVMBuildStore(b, LLVMBuildNSWAdd(b, L->i, LLVMConstInt(cg->i64, (unsigned long long)step, 1), ""), L->slot);
    LLVMBuildBr(b, L->head);
    LLVMPositionBuilderAtEnd(b, L->exit);
}

void cg_call_typed(CG *cg, const char *fn, int n, const char *kinds, const CgArg *a) {
    LLVMTypeRef params[24];
    LLVMValueRef args[24];
    RRC_ASSERT(n <= 24);
    for (int i = 0; i < n; i++) {
        switch (kinds[i]) {
        case 'p': params[i] = cg->ptr; args[i] = a[i].v; break;
        case 'i': params[i] = cg->i64; args[i] = LLVMConstInt(cg->i64, (unsigned long long)a[i].i, 1); break;
        case 'f': params[i] = cg->f32; args[i] = LLVMConstReal(cg->f32, a[i].f); break;
        default: RRC_ABORT("cg_call_typed: bad kind '%c'", kinds[i]);
        }
    }
    LLVMTypeRef ft = LLVMFunctionType(cg->void_, params, (unsigned)n, 0);
    LLVMValueRef f = LLVMGetNamedFunction(cg->mod, fn);
    if (!f) f = LLVMAddFunction(cg->mod, fn, ft);
    LLVMBuildCall2(cg->b, ft, f, args, (unsigned)n, "");
}

/* ---- profile sites (runtime/rt_prof.h) ---- */

const char *cg_node_label(const Node *n, char *buf, size_t len) {
    snprintf(buf, len, "%s %s", n->name ? n->name : "-", op_table[n->op].name);
    return buf;
}

/* A private constant C string. */
static LLVMValueRef global_string(CG *cg, const char *s, const char *gname) {
    LLVMValueRef str = LLVMConstStringInContext(cg->ctx, s, (unsigned)strlen(s), 0);
    LLVMValueRef g = LLVMAddGlobal(cg->mod, LLVMTypeOf(str), gname);
    LLVMSetInitializer(g, str);
    LLVMSetGlobalConstant(g, 1);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
    return g;
}

void cg_kernel_begin(CG *cg, const char *label, Cost c) {
    RRC_ASSERT(!cg->prof_site);
    if (!cg->prof_ty) {   /* LAYOUT: rt_prof_site */
        LLVMTypeRef d = LLVMDoubleTypeInContext(cg->ctx);
        LLVMTypeRef el[8] = {cg->ptr, d, d, cg->i64, cg->i64, cg->i64, cg->ptr, cg->i64};
        cg->prof_ty = LLVMStructCreateNamed(cg->ctx, "rt_prof_site");
        LLVMStructSetBody(cg->prof_ty, el, 8, 0);
    }
    size_t len = strlen(cg->entry) + strlen(label) + 3;
    char *name = xcalloc(len, 1), gname[48];
    snprintf(name, len, "%s: %s", cg->entry, label);
    snprintf(gname, sizeof gname, "rrc_prof_name.%d", cg->nsites);
    LLVMValueRef str = global_string(cg, name, gname);
    free(name);
    LLVMTypeRef d = LLVMStructGetTypeAtIndex(cg->prof_ty, 1);
    LLVMValueRef zero = LLVMConstInt(cg->i64, 0, 0);
    LLVMValueRef f[8] = {str, LLVMConstReal(d, c.flops), LLVMConstReal(d, c.bytes), zero, zero, zero, LLVMConstNull(cg->ptr), zero};
    snprintf(gname, sizeof gname, "rrc_prof_site.%d", cg->nsites++);
    LLVMValueRef site = LLVMAddGlobal(cg->mod, cg->prof_ty, gname);
    LLVMSetInitializer(site, LLVMConstNamedStruct(cg->prof_ty, f, 8));
    LLVMSetLinkage(site, LLVMInternalLinkage);
    LLVMSetAlignment(site, 8);
    call_rt_prof_begin(cg, site);
    cg->prof_site = site;
}

void cg_kernel_end(CG *cg) {
    RRC_ASSERT(cg->prof_site);
    call_rt_prof_end(cg, cg->prof_site);
    cg->prof_site = NULL;
}

void cg_fn_attrs(CG *cg, LLVMValueRef fn, int nalias) {
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
    for (unsigned i = 0; i < (unsigned)nalias; i++)
        if (LLVMGetTypeKind(LLVMTypeOf(LLVMGetParam(fn, i))) == LLVMPointerTypeKind)
            LLVMAddAttributeAtIndex(fn, i + 1, LLVMCreateEnumAttribute(cg->ctx, noalias, 0));
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(cg->ctx, LLVMGetEnumAttributeKindForName("noinline", 8), 0));
    cg_vector_width(cg, fn);
}

LLVMValueRef cg_rows_wrapper(CG *cg, LLVMBuilderRef b, LLVMValueRef body, LLVMTypeRef body_t, const char *name, int np) {
    char wname[300];
    snprintf(wname, sizeof wname, "%s.rows", name);
    LLVMTypeRef wp[3] = {cg->ptr, cg->i64, cg->i64};
    LLVMValueRef wf = LLVMAddFunction(cg->mod, wname, LLVMFunctionType(cg->void_, wp, 3, 0));
    LLVMSetLinkage(wf, LLVMInternalLinkage);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(cg->ctx, wf, "entry"));
    LLVMValueRef a[CG_MAX_ROWS_ARGS + 2];
    RRC_ASSERT(np <= CG_MAX_ROWS_ARGS);
    for (int i = 0; i < np; i++) {
        LLVMValueRef ix = LLVMConstInt(cg->i64, (unsigned long long)i, 0);
        a[i] = LLVMBuildLoad2(b, cg->ptr, LLVMBuildGEP2(b, cg->ptr, LLVMGetParam(wf, 0), &ix, 1, ""), "");
    }
    a[np] = LLVMGetParam(wf, 1);
    a[np + 1] = LLVMGetParam(wf, 2);
    LLVMBuildCall2(b, body_t, body, a, (unsigned)np + 2, "");
    LLVMBuildRetVoid(b);
    return wf;
}
