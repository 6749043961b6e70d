/*
** cg_jit.c: in-process linking with ORC LLJIT. The JIT is given objects, not
** IR modules: a freshly built step (cg_jit_objects: two objects compiled in
** parallel) and one loaded from the compile cache then go through the same
** path, and run the same code. The generated code
** calls the runtime's kernels, which are linked into rrc and exported
** (-rdynamic), so LLJIT resolves them as process symbols.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>

#include "codegen/cg_llvm.h"

struct Jit {
    LLVMOrcLLJITRef lljit;
};

static bool jit_error(LLVMErrorRef e, const char *what) {
    if (!e) return false;
    char *m = LLVMGetErrorMessage(e);
    fprintf(stderr, "rrc: JIT %s: %s\n", what, m);
    LLVMDisposeErrorMessage(m);
    return true;
}

Jit *jit_create(const CgObjects *objs, const CgOptions *o) {
    /* the target machine the objects were emitted with (cg_jit_objects) */
    LLVMTargetMachineRef tm = cg_target_machine(o, LLVMCodeModelJITDefault);
    if (!tm) return NULL;
    LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm));
    Jit *j = xcalloc(1, sizeof *j);
    if (jit_error(LLVMOrcCreateLLJIT(&j->lljit, jb), "creation")) {
        free(j);
        return NULL;
    }
    for (int k = 0; k < objs->n; k++) {
        /* the buffer now belongs to the JIT, even on error */
        LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRangeCopy(objs->data[k], objs->len[k], "rrc_step.o");
        if (jit_error(LLVMOrcLLJITAddObjectFile(j->lljit, LLVMOrcLLJITGetMainJITDylib(j->lljit), buf), "adding an object")) {
            jit_free(j);
            return NULL;
        }
    }
    return j;
}

rt_step_fn jit_lookup(Jit *j, const char *fn) {
    LLVMOrcExecutorAddress a = 0;
    if (jit_error(LLVMOrcLLJITLookup(j->lljit, &a, fn), "lookup")) return NULL;
    rt_step_fn f;
    _Static_assert(sizeof f == sizeof(void *), "function pointers are data pointers here");
    void *p = (void *)(uintptr_t)a;
    memcpy(&f, &p, sizeof f);
    return f;
}

void jit_free(Jit *j) {
    if (!j) return;
    if (j->lljit) jit_error(LLVMOrcDisposeLLJIT(j->lljit), "disposal");
    free(j);
}
