/*
** cg_llvm.c: builds the LLVM module of a planned graph (see cg.h), the
** target machine, the optimisation pipeline and object emission.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "codegen/cg_impl.h"
#include "rt_kernels.h"

static void init_llvm(void) {
    static bool done;
    if (done) return;
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    LLVMInitializeNativeAsmParser();
    done = true;
}

LLVMTargetMachineRef cg_target_machine(const CgOptions *o, LLVMCodeModel cm) {
    init_llvm();
    char *triple = LLVMGetDefaultTargetTriple(), *msg = NULL;
    char *host_cpu = LLVMGetHostCPUName(), *host_feat = LLVMGetHostCPUFeatures();
    LLVMTargetRef t;
    LLVMTargetMachineRef tm = NULL;
    if (LLVMGetTargetFromTriple(triple, &t, &msg)) {
        fprintf(stderr, "rrc: LLVM has no target for %s: %s\n", triple, msg);
    } else {
        tm = LLVMCreateTargetMachine(t, triple, o && o->cpu ? o->cpu : host_cpu,
                                     o && o->features ? o->features : host_feat, LLVMCodeGenLevelAggressive,
                                     LLVMRelocPIC, cm);
    }
    LLVMDisposeMessage(msg);
    LLVMDisposeMessage(triple);
    LLVMDisposeMessage(host_cpu);
    LLVMDisposeMessage(host_feat);
    return tm;
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

void cg_call(CG *cg, const char *fn, const char *fmt, ...) {
    LLVMTypeRef params[24];
    LLVMValueRef args[24];
    int n = 0;
    va_list ap;
    va_start(ap, fmt);
    for (const char *f = fmt; *f; f++, n++) {
        RRC_ASSERT(n < 24);
        switch (*f) {
        case 'p': params[n] = cg->ptr; args[n] = va_arg(ap, LLVMValueRef); break;
        case 'i': params[n] = cg->i64; args[n] = LLVMConstInt(cg->i64, (unsigned long long)va_arg(ap, int64_t), 1); break;
        case 'f': params[n] = cg->f32; args[n] = LLVMConstReal(cg->f32, va_arg(ap, double)); break;
        default: RRC_ABORT("cg_call: bad format '%c'", *f);
        }
    }
    va_end(ap);
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
    cg_call(cg, "rt_prof_begin", "p", site);
    cg->prof_site = site;
}

void cg_kernel_end(CG *cg) {
    RRC_ASSERT(cg->prof_site);
    cg_call(cg, "rt_prof_end", "p", cg->prof_site);
    cg->prof_site = NULL;
}

int64_t cg_plan_workspace(Graph *g) {
    /* kernel workspace: after the planned scratch values */
    int64_t ws = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        int64_t w = n->kernel ? cg_kernel_workspace(n->kernel) : cg_workspace(n);
        ws = ws > w ? ws : w;
    }
    int64_t offset = g->region_bytes[RT_REGION_SCRATCH];
    g->region_bytes[RT_REGION_SCRATCH] += (ws + RT_ALIGN - 1) / RT_ALIGN * RT_ALIGN;
    return offset;
}

CgModule *cg_build(Graph *g, const char *fn, const CgOptions *o) {
    RRC_ASSERT(g->planned);
    init_llvm();
    CgModule *m = xcalloc(1, sizeof *m);
    m->tsc = LLVMOrcCreateNewThreadSafeContext();
    m->ctx = LLVMOrcThreadSafeContextGetContext(m->tsc);
    m->mod = LLVMModuleCreateWithNameInContext(fn, m->ctx);
    m->opts = o ? *o : (CgOptions){0};
    m->opts.entry = NULL;   /* read during the build only; it may not outlive it */
    CG cg = {.ctx = m->ctx, .mod = m->mod, .g = g, .entry = o && o->entry ? o->entry : fn};
    cg.b = LLVMCreateBuilderInContext(m->ctx);
    cg.ptr = LLVMPointerTypeInContext(m->ctx, 0);
    cg.i8 = LLVMInt8TypeInContext(m->ctx);
    cg.i64 = LLVMInt64TypeInContext(m->ctx);
    cg.f32 = LLVMFloatTypeInContext(m->ctx);
    cg.void_ = LLVMVoidTypeInContext(m->ctx);
    char *host_feat = LLVMGetHostCPUFeatures();
    cg.features = o && o->features ? o->features : host_feat;

    cg.ws_offset = cg_plan_workspace(g);

    LLVMTypeRef ft = LLVMFunctionType(cg.void_, &cg.ptr, 1, 0);
    LLVMValueRef f = LLVMAddFunction(m->mod, fn, ft);
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(m->ctx, f, "entry");
    LLVMPositionBuilderAtEnd(cg.b, entry);
    LLVMValueRef regions = LLVMGetParam(f, 0);
    LLVMSetValueName2(regions, "regions", 7);
    for (int r = 0; r < RT_NREGIONS; r++) {
        LLVMValueRef idx = LLVMConstInt(cg.i64, (unsigned long long)r, 0);
        LLVMValueRef slot = LLVMBuildGEP2(cg.b, cg.ptr, regions, &idx, 1, "");
        cg.base[r] = LLVMBuildLoad2(cg.b, cg.ptr, slot, rt_region_name(r));
    }
    bool ok = true;
    char label[256];
    for (int i = 0; i < g->nnodes && ok; i++) {
        const Node *n = g->nodes[i];
        if (!node_emits(n)) continue;   /* leaves, inlined values, members emitted with their kernel's last */
        if (n->kernel) {
            const Kernel *k = n->kernel;
            Cost c = {0, 0};
            for (int j = 0; j < k->nmembers; j++) {
                Cost cj = op_table[k->members[j]->op].cost(k->members[j]);
                c.flops += cj.flops;
                c.bytes += cj.bytes;
            }
            size_t len = strlen(cg_node_label(k->members[0], label, sizeof label));
            snprintf(label + len, sizeof label - len, " [%s]", kernel_kind_name(k->kind));
            cg_kernel_begin(&cg, label, c);
            cg_emit_kernel(&cg, k);
            cg_kernel_end(&cg);
            continue;
        }
        cg_kernel_begin(&cg, cg_node_label(n, label, sizeof label), op_table[n->op].cost(n));
        ok = cg_emit_node(&cg, n);
        cg_kernel_end(&cg);
        if (!ok) fprintf(stderr, "rrc: codegen: no emitter for op %s\n", op_table[n->op].name);
    }
    LLVMBuildRetVoid(cg.b);
    LLVMDisposeBuilder(cg.b);
    LLVMDisposeMessage(host_feat);
    cg_fuse_done(&cg);
    char *msg = NULL;
    if (ok && LLVMVerifyModule(m->mod, LLVMReturnStatusAction, &msg)) {
        fprintf(stderr, "rrc: internal error: generated LLVM module does not verify:\n%s\n", msg);
        ok = false;
    }
    LLVMDisposeMessage(msg);
    if (ok) {
        LLVMTargetMachineRef tm = cg_target_machine(o, LLVMCodeModelDefault);
        ok = tm != NULL;
        if (ok) {
            char *triple = LLVMGetTargetMachineTriple(tm);
            LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
            LLVMSetModuleDataLayout(m->mod, dl);
            LLVMSetTarget(m->mod, triple);
            LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
            LLVMPassBuilderOptionsSetLoopVectorization(po, 1);
            LLVMPassBuilderOptionsSetSLPVectorization(po, 1);
            /* no loop unrolling: the generated kernels are already blocked
               (the direct convolutions unroll their taps themselves), and
               unrolling them again doubled resnet32's compile time
               (3.16 -> 1.49 s of CPU for `rrc compile`) for no speed */
            LLVMPassBuilderOptionsSetLoopUnrolling(po, 0);
            LLVMErrorRef e = LLVMRunPasses(m->mod, "default<O3>", tm, po);
            if (e) {
                char *em = LLVMGetErrorMessage(e);
                fprintf(stderr, "rrc: LLVM optimisation failed: %s\n", em);
                LLVMDisposeErrorMessage(em);
                ok = false;
            }
            LLVMDisposePassBuilderOptions(po);
            LLVMDisposeTargetData(dl);
            LLVMDisposeMessage(triple);
            LLVMDisposeTargetMachine(tm);
        }
    }
    if (ok && m->opts.debug >= 3) {
        char *ir = LLVMPrintModuleToString(m->mod);
        fprintf(stderr, "%s", ir);
        LLVMDisposeMessage(ir);
    }
    if (!ok) {
        cg_free(m);
        return NULL;
    }
    return m;
}

bool cg_write_ll(CgModule *m, const char *path) {
    char *msg = NULL;
    if (LLVMPrintModuleToFile(m->mod, path, &msg)) {
        fprintf(stderr, "rrc: cannot write %s: %s\n", path, msg);
        LLVMDisposeMessage(msg);
        return false;
    }
    return true;
}

bool cg_write_object(CgModule *m, const char *path) {
    LLVMTargetMachineRef tm = cg_target_machine(&m->opts, LLVMCodeModelDefault);
    if (!tm) return false;
    /* codegen changes the IR it is given (CodeGenPrepare): emit from a clone */
    LLVMModuleRef clone = LLVMCloneModule(m->mod);
    char *msg = NULL;
    bool ok = !LLVMTargetMachineEmitToFile(tm, clone, path, LLVMObjectFile, &msg);
    if (!ok) fprintf(stderr, "rrc: cannot write %s: %s\n", path, msg);
    LLVMDisposeMessage(msg);
    LLVMDisposeModule(clone);
    LLVMDisposeTargetMachine(tm);
    return ok;
}

char *cg_assembly(CgModule *m) {
    LLVMTargetMachineRef tm = cg_target_machine(&m->opts, LLVMCodeModelDefault);
    if (!tm) return NULL;
    LLVMModuleRef clone = LLVMCloneModule(m->mod);
    char *msg = NULL, *out = NULL;
    LLVMMemoryBufferRef buf = NULL;
    if (!LLVMTargetMachineEmitToMemoryBuffer(tm, clone, LLVMAssemblyFile, &msg, &buf)) {
        size_t n = LLVMGetBufferSize(buf);
        out = xmalloc(n + 1);
        memcpy(out, LLVMGetBufferStart(buf), n);
        out[n] = 0;
        LLVMDisposeMemoryBuffer(buf);
    } else {
        fprintf(stderr, "rrc: cannot emit assembly: %s\n", msg);
    }
    LLVMDisposeMessage(msg);
    LLVMDisposeModule(clone);
    LLVMDisposeTargetMachine(tm);
    return out;
}

bool cg_emit_jit_object(CgModule *m, char **data, size_t *len) {
    LLVMTargetMachineRef tm = cg_target_machine(&m->opts, LLVMCodeModelJITDefault);
    if (!tm) return false;
    char *msg = NULL;
    LLVMMemoryBufferRef buf = NULL;
    bool ok = !LLVMTargetMachineEmitToMemoryBuffer(tm, m->mod, LLVMObjectFile, &msg, &buf);
    if (ok) {
        *len = LLVMGetBufferSize(buf);
        *data = xmalloc(*len ? *len : 1);
        memcpy(*data, LLVMGetBufferStart(buf), *len);
        LLVMDisposeMemoryBuffer(buf);
    } else {
        fprintf(stderr, "rrc: cannot emit the JIT's object: %s\n", msg);
    }
    LLVMDisposeMessage(msg);
    LLVMDisposeTargetMachine(tm);
    return ok;
}

void cg_free(CgModule *m) {
    if (!m) return;
    if (m->mod) LLVMDisposeModule(m->mod);
    if (m->tsc) LLVMOrcDisposeThreadSafeContext(m->tsc);
    free(m);
}

bool cg_write_program_object(const char *path, const char *json, const char *const *fns, int nfns, const CgOptions *o) {
    init_llvm();
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod = LLVMModuleCreateWithNameInContext("rrc_program", ctx);
    LLVMTypeRef ptr = LLVMPointerTypeInContext(ctx, 0), i32 = LLVMInt32TypeInContext(ctx);
    LLVMTypeRef ft = LLVMFunctionType(LLVMVoidTypeInContext(ctx), &ptr, 1, 0);
    /* the description, NUL-terminated */
    LLVMValueRef str = LLVMConstStringInContext(ctx, json, (unsigned)strlen(json), 0);
    LLVMValueRef g = LLVMAddGlobal(mod, LLVMTypeOf(str), "rrc_program_json");
    LLVMSetInitializer(g, str);
    LLVMSetGlobalConstant(g, 1);
    /* the entry functions, by index */
    LLVMValueRef *fv = xcalloc((size_t)(nfns ? nfns : 1), sizeof *fv);
    for (int i = 0; i < nfns; i++) fv[i] = LLVMAddFunction(mod, fns[i], ft);
    LLVMValueRef arr = LLVMConstArray2(ptr, fv, (uint64_t)nfns);
    LLVMValueRef ga = LLVMAddGlobal(mod, LLVMTypeOf(arr), "rrc_program_fns");
    LLVMSetInitializer(ga, arr);
    LLVMSetGlobalConstant(ga, 1);
    LLVMValueRef gn = LLVMAddGlobal(mod, i32, "rrc_program_nfns");
    LLVMSetInitializer(gn, LLVMConstInt(i32, (unsigned long long)nfns, 0));
    LLVMSetGlobalConstant(gn, 1);
    free(fv);
    bool ok = false;
    char *msg = NULL;
    LLVMTargetMachineRef tm = cg_target_machine(o, LLVMCodeModelDefault);
    if (tm) {
        char *triple = LLVMGetTargetMachineTriple(tm);
        LLVMSetTarget(mod, triple);
        LLVMDisposeMessage(triple);
        ok = !LLVMTargetMachineEmitToFile(tm, mod, path, LLVMObjectFile, &msg);
        if (!ok) fprintf(stderr, "rrc: cannot write %s: %s\n", path, msg);
        LLVMDisposeMessage(msg);
        LLVMDisposeTargetMachine(tm);
    }
    LLVMDisposeModule(mod);
    LLVMContextDispose(ctx);
    return ok;
}
