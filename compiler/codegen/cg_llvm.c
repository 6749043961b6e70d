/*
** cg_llvm.c: builds the LLVM module of a planned graph (see cg.h), the
** target machine, the optimisation pipeline and object emission.
*/
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/BitWriter.h>
#include <llvm-c/Core.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "codegen/cg_llvm.h"
#include "codegen/cg_step.h"
#include "codegen/cg_util.h"
#include "target.h"
#include "rt_kernels.h"

/* LLVM's target registry is process state without a lock: registering the
   native target from two threads at once (rrc compile's two build threads)
   can list it twice, after which every lookup fails, or spin forever. */
static void init_llvm_once(void) {
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    LLVMInitializeNativeAsmParser();
}

static void init_llvm(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_llvm_once);
}

/* Every target LLVM was built with: for objects of another architecture
   (rrc compile --target aarch64-linux-gnu). Only then: it costs start-up
   time. */
static void init_all_once(void) {
    LLVMInitializeAllTargetInfos();
    LLVMInitializeAllTargets();
    LLVMInitializeAllTargetMCs();
    LLVMInitializeAllAsmPrinters();
}

const Target *cg_target(const CgOptions *o) { return o && o->target ? o->target : target_host(); }

LLVMTargetMachineRef cg_target_machine(const CgOptions *o, LLVMCodeModel cm) {
    init_llvm();
    const Target *tg = cg_target(o);
    if (strcmp(tg->triple, target_host()->triple)) {
        static pthread_once_t all = PTHREAD_ONCE_INIT;
        pthread_once(&all, init_all_once);
    }
    char *msg = NULL;
    LLVMTargetRef t;
    LLVMTargetMachineRef tm = NULL;
    if (LLVMGetTargetFromTriple(tg->triple, &t, &msg)) {
        fprintf(stderr, "rrc: LLVM has no target for %s: %s\n", tg->triple, msg);
    } else {
        tm = LLVMCreateTargetMachine(t, tg->triple, tg->cpu, tg->features, LLVMCodeGenLevelAggressive, LLVMRelocPIC, cm);
    }
    LLVMDisposeMessage(msg);
    return tm;
}

/* The target's data layout and triple, then the O3 pipeline. */
static bool optimise(LLVMModuleRef mod, LLVMTargetMachineRef tm) {
    char *triple = LLVMGetTargetMachineTriple(tm);
    LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(mod, dl);
    LLVMSetTarget(mod, triple);
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(po, 1);
    LLVMPassBuilderOptionsSetSLPVectorization(po, 1);
    /* no loop unrolling: the generated kernels are already blocked (the
       direct convolutions unroll their taps themselves), and unrolling them
       again doubled resnet32's compile time for no speed (docs/DECISIONS.md) */
    LLVMPassBuilderOptionsSetLoopUnrolling(po, 0);
    LLVMErrorRef e = LLVMRunPasses(mod, "default<O3>", tm, po);
    bool ok = true;
    if (e) {
        char *em = LLVMGetErrorMessage(e);
        fprintf(stderr, "rrc: LLVM optimisation failed: %s\n", em);
        LLVMDisposeErrorMessage(em);
        ok = false;
    }
    LLVMDisposePassBuilderOptions(po);
    LLVMDisposeTargetData(dl);
    LLVMDisposeMessage(triple);
    return ok;
}

/* The module of g's step, verified but not optimised (NULL after a message). */
static CgModule *build_ir(Graph *g, const char *fn, const CgOptions *o) {
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
    cg.t = cg_target(o);
    /* the passes laid out the direct convolutions for the graph's target
       (its lanes); code for another width would misread those layouts */
    RRC_ASSERT(g->target && g->target->lanes == cg.t->lanes);

    /* the decisions codegen obeys were made for its own kernels */
    RRC_ASSERT(g->caps == cg_caps());
    cg.ws_offset = g->ws_offset;

    LLVMTypeRef ft = LLVMFunctionType(cg.void_, &cg.ptr, 1, 0);
    LLVMValueRef f = LLVMAddFunction(m->mod, fn, ft);
    /* The step only fills argument arrays and calls the kernels: optimising
       its few thousand instructions is a visible share of a JIT compile
       and gains nothing (the kernels are optimised on their own;
       docs/DECISIONS.md) */
    static const char *const plain[] = {"optnone", "noinline"};
    for (int i = 0; i < 2; i++)
        LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                                LLVMCreateEnumAttribute(m->ctx, LLVMGetEnumAttributeKindForName(plain[i], strlen(plain[i])), 0));
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(m->ctx, f, "entry");
    LLVMPositionBuilderAtEnd(cg.b, entry);
    LLVMValueRef regions = LLVMGetParam(f, 0);
    LLVMSetValueName2(regions, "regions", 7);
    for (int r = 0; r < RT_NREGIONS; r++) {
        LLVMValueRef idx = LLVMConstInt(cg.i64, (unsigned long long)r, 0);
        LLVMValueRef slot = LLVMBuildGEP2(cg.b, cg.ptr, regions, &idx, 1, "");
        cg.base[r] = LLVMBuildLoad2(cg.b, cg.ptr, slot, rt_region_name(r));
    }
    bool ok = cg_emit_step(&cg);
    LLVMBuildRetVoid(cg.b);
    LLVMDisposeBuilder(cg.b);
    char *msg = NULL;
    if (ok && LLVMVerifyModule(m->mod, LLVMReturnStatusAction, &msg)) {
        fprintf(stderr, "rrc: internal error: generated LLVM module does not verify:\n%s\n", msg);
        ok = false;
    }
    LLVMDisposeMessage(msg);
    if (!ok) {
        cg_free(m);
        return NULL;
    }
    return m;
}

static void print_ir(LLVMModuleRef mod) {
    char *ir = LLVMPrintModuleToString(mod);
    fprintf(stderr, "%s", ir);
    LLVMDisposeMessage(ir);
}

CgModule *cg_build(Graph *g, const char *fn, const CgOptions *o) {
    CgModule *m = build_ir(g, fn, o);
    if (!m) return NULL;
    LLVMTargetMachineRef tm = cg_target_machine(o, LLVMCodeModelDefault);
    bool ok = tm && optimise(m->mod, tm);
    if (tm) LLVMDisposeTargetMachine(tm);
    if (ok && m->opts.debug >= 3) print_ir(m->mod);
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

/* ---- the JIT's objects: the step's functions in CG_JIT_PARTS modules,
   optimised and compiled on as many threads ----

   Optimisation and code generation take about equal shares of a cold JIT
   compile and both run function by function, so the module is cut in two
   by function. Functions joined by direct calls (a kernel's body and its
   rows wrapper, a direct convolution's variants and their core) stay
   together; the step function goes to part 0 and the groups, largest
   first, to the part with fewer instructions. A function used from the
   other part is given external linkage, and that part keeps a declaration
   of it; each part is a module in its own LLVM context (parsed from the
   bitcode of the whole), so the threads share nothing. */

typedef struct Part {
    LLVMContextRef ctx;       /* NULL: the module's own (part 0) */
    LLVMModuleRef mod;
    const CgOptions *o;
    char *data;
    size_t len;
    bool ok;
    int64_t insns;            /* its functions' instructions before optimisation */
    double seconds;           /* optimising and compiling it */
} Part;

static int uf_find(int *parent, int i) {
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
}

static int fn_index(LLVMValueRef *fns, int n, LLVMValueRef f) {
    for (int i = 0; i < n; i++)
        if (fns[i] == f) return i;
    return -1;
}

/* The function holding instruction-or-constant user u, or NULL. */
static LLVMValueRef user_function(LLVMValueRef u) {
    if (!LLVMIsAInstruction(u)) return NULL;
    return LLVMGetBasicBlockParent(LLVMGetInstructionParent(u));
}

static int64_t fn_insns(LLVMValueRef f) {
    int64_t k = 0;
    for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(f); bb; bb = LLVMGetNextBasicBlock(bb))
        for (LLVMValueRef in = LLVMGetFirstInstruction(bb); in; in = LLVMGetNextInstruction(in)) k++;
    return k;
}

/* part[i] for the defined functions fns[0..n): 0 or 1. */
static void assign_parts(LLVMValueRef *fns, int n, LLVMValueRef step, int *part) {
    int *parent = xmalloc((size_t)n * sizeof *parent);
    int64_t *size = xcalloc((size_t)n, sizeof *size);
    for (int i = 0; i < n; i++) parent[i] = i;
    for (int i = 0; i < n; i++)
        for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(fns[i]); bb; bb = LLVMGetNextBasicBlock(bb))
            for (LLVMValueRef in = LLVMGetFirstInstruction(bb); in; in = LLVMGetNextInstruction(in)) {
                size[i]++;
                if (fns[i] == step || LLVMGetInstructionOpcode(in) != LLVMCall) continue;
                int j = fn_index(fns, n, LLVMGetCalledValue(in));
                if (j >= 0 && fns[j] != step) parent[uf_find(parent, i)] = uf_find(parent, j);
            }
    /* group sizes at their roots; the groups by size, largest first */
    int64_t *gsize = xcalloc((size_t)n, sizeof *gsize);
    for (int i = 0; i < n; i++) gsize[uf_find(parent, i)] += size[i];
    int *order = xmalloc((size_t)n * sizeof *order), nroots = 0;
    for (int i = 0; i < n; i++)
        if (uf_find(parent, i) == i && fns[i] != step) order[nroots++] = i;
    for (int a = 1; a < nroots; a++)   /* insertion sort: a few hundred groups */
        for (int b = a; b > 0 && gsize[order[b]] > gsize[order[b - 1]]; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    int64_t load[2] = {0, 0};
    int *root_part = xmalloc((size_t)n * sizeof *root_part);
    int si = fn_index(fns, n, step);
    load[0] = si >= 0 ? gsize[uf_find(parent, si)] : 0;
    if (si >= 0) root_part[uf_find(parent, si)] = 0;
    for (int a = 0; a < nroots; a++) {
        int p = load[1] < load[0];
        root_part[order[a]] = p;
        load[p] += gsize[order[a]];
    }
    for (int i = 0; i < n; i++) part[i] = root_part[uf_find(parent, i)];
    free(parent);
    free(size);
    free(gsize);
    free(order);
    free(root_part);
}

/* Keeps part k's functions in mod (whose functions are named as in the
   whole): the others become declarations where still used, and go. */
static void keep_part(LLVMModuleRef mod, char **names, const int *part, int n, int k) {
    for (int i = 0; i < n; i++) {
        if (part[i] == k) continue;
        LLVMValueRef f = LLVMGetNamedFunction(mod, names[i]);
        if (!f) continue;
        if (LLVMGetFirstUse(f)) {
            LLVMValueRef decl = LLVMAddFunction(mod, "rrc.part.decl", LLVMGlobalGetValueType(f));
            LLVMReplaceAllUsesWith(f, decl);
            LLVMDeleteFunction(f);
            LLVMSetValueName2(decl, names[i], strlen(names[i]));
        } else {
            LLVMDeleteFunction(f);
        }
    }
}

static void *compile_part(void *arg) {
    Part *p = arg;
    double t0 = wall_seconds();
    LLVMTargetMachineRef tm = cg_target_machine(p->o, LLVMCodeModelJITDefault);
    p->ok = tm && optimise(p->mod, tm);
    if (p->ok && p->o->debug >= 3) {   /* one part's IR after the other's */
        static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;
        pthread_mutex_lock(&print_lock);
        print_ir(p->mod);
        pthread_mutex_unlock(&print_lock);
    }
    char *msg = NULL;
    LLVMMemoryBufferRef buf = NULL;
    if (p->ok) {
        p->ok = !LLVMTargetMachineEmitToMemoryBuffer(tm, p->mod, LLVMObjectFile, &msg, &buf);
        if (p->ok) {
            p->len = LLVMGetBufferSize(buf);
            p->data = xmalloc(p->len ? p->len : 1);
            memcpy(p->data, LLVMGetBufferStart(buf), p->len);
            LLVMDisposeMemoryBuffer(buf);
        } else {
            fprintf(stderr, "rrc: cannot emit the JIT's object: %s\n", msg);
        }
        LLVMDisposeMessage(msg);
    }
    if (tm) LLVMDisposeTargetMachine(tm);
    p->seconds = wall_seconds() - t0;
    return NULL;
}

bool cg_jit_objects(Graph *g, const char *fn, const CgOptions *o, CgObjects *out) {
    memset(out, 0, sizeof *out);
    double t0 = wall_seconds();
    CgModule *m = build_ir(g, fn, o);
    if (!m) return false;
    CgOptions opts = m->opts;
    /* the defined functions and their parts */
    int n = 0, cap = 64;
    LLVMValueRef *fns = xmalloc((size_t)cap * sizeof *fns);
    for (LLVMValueRef f = LLVMGetFirstFunction(m->mod); f; f = LLVMGetNextFunction(f)) {
        if (LLVMIsDeclaration(f)) continue;
        if (n == cap) fns = xrealloc(fns, (size_t)(cap *= 2) * sizeof *fns);
        fns[n++] = f;
    }
    int *part = xmalloc((size_t)(n ? n : 1) * sizeof *part);
    char **names = xmalloc((size_t)(n ? n : 1) * sizeof *names);
    assign_parts(fns, n, LLVMGetNamedFunction(m->mod, fn), part);
    for (int i = 0; i < n; i++) {
        size_t len;
        names[i] = xstrdup(LLVMGetValueName2(fns[i], &len));
        for (LLVMUseRef u = LLVMGetFirstUse(fns[i]); u; u = LLVMGetNextUse(u)) {
            LLVMValueRef uf = user_function(LLVMGetUser(u));
            int j = uf ? fn_index(fns, n, uf) : -1;
            if (j < 0 || part[j] != part[i]) {   /* used from the other part */
                LLVMSetLinkage(fns[i], LLVMExternalLinkage);
                LLVMSetVisibility(fns[i], LLVMDefaultVisibility);
                break;
            }
        }
    }
    /* part 1 in a context of its own, from the whole module's bitcode */
    Part parts[CG_JIT_PARTS] = {{.mod = m->mod, .o = &opts}, {.o = &opts}};
    for (int i = 0; i < n && opts.debug >= 2; i++) parts[part[i]].insns += fn_insns(fns[i]);
    double t1 = wall_seconds();
    LLVMMemoryBufferRef bc = LLVMWriteBitcodeToMemoryBuffer(m->mod);
    parts[1].ctx = LLVMContextCreate();
    bool ok = !LLVMParseBitcodeInContext2(parts[1].ctx, bc, &parts[1].mod);
    LLVMDisposeMemoryBuffer(bc);
    if (ok) {
        keep_part(parts[0].mod, names, part, n, 0);
        keep_part(parts[1].mod, names, part, n, 1);
        pthread_t th;
        bool threaded = pthread_create(&th, NULL, compile_part, &parts[1]) == 0;
        compile_part(&parts[0]);
        if (threaded) pthread_join(th, NULL);
        else compile_part(&parts[1]);
        ok = parts[0].ok && parts[1].ok;
    } else {
        fprintf(stderr, "rrc: internal error: cannot reparse the step's bitcode\n");
    }
    for (int k = 0; k < CG_JIT_PARTS; k++) {
        out->data[k] = parts[k].data;
        out->len[k] = parts[k].len;
    }
    if (opts.debug >= 2) {
        fprintf(stderr, "rrc: JIT %s: IR built in %.3f s; parts of %lld / %lld instructions compiled in %.3f / %.3f s\n", fn,
                t1 - t0, (long long)parts[0].insns, (long long)parts[1].insns, parts[0].seconds, parts[1].seconds);
    }
    out->n = CG_JIT_PARTS;
    if (parts[1].mod) LLVMDisposeModule(parts[1].mod);
    if (parts[1].ctx) LLVMContextDispose(parts[1].ctx);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(part);
    free(fns);
    cg_free(m);
    if (!ok) cg_objects_free(out);
    return ok;
}

void cg_objects_free(CgObjects *objs) {
    for (int k = 0; k < CG_JIT_PARTS; k++) free(objs->data[k]);
    memset(objs, 0, sizeof *objs);
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
