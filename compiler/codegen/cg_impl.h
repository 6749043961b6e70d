/*
** cg_impl.h: what the codegen files share. Not for use outside codegen/.
*/
#ifndef RRC_CG_IMPL_H
#define RRC_CG_IMPL_H

#include <llvm-c/Core.h>
#include <llvm-c/Orc.h>
#include <llvm-c/TargetMachine.h>

#include "codegen/cg.h"

struct CgModule {
    LLVMOrcThreadSafeContextRef tsc;
    LLVMContextRef ctx;
    LLVMModuleRef mod;        /* NULL once handed to the JIT */
    CgOptions opts;
};

typedef struct CG {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef ptr, i8, i64, f32, void_;
    LLVMValueRef base[RT_NREGIONS];   /* region base pointers, loaded at entry */
    int64_t ws_offset;                /* kernel workspace, in the scratch region */
    Graph *g;
} CG;

LLVMTargetMachineRef cg_target_machine(const CgOptions *o, LLVMCodeModel cm);
/* Address of a node's value / of the kernel workspace. */
LLVMValueRef cg_ptr(CG *cg, const Node *n);
LLVMValueRef cg_ws(CG *cg);
/* Emits `fn(args)`; fmt: p = pointer (LLVMValueRef), i = int64_t, f = double (as float). */
void cg_call(CG *cg, const char *fn, const char *fmt, ...);
/* cg_ops.c: one node; false if the op has no emitter */
bool cg_emit_node(CG *cg, const Node *n);
int64_t cg_workspace(const Node *n);   /* bytes of kernel workspace a node needs */

#endif
