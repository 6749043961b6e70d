/*
** cg_llvm.h: the module layer (cg_llvm.c), for cg_jit.c: the module a
** build makes, and the target machine.
*/
#ifndef RRC_CG_LLVM_H
#define RRC_CG_LLVM_H

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

/* o's target, or the host's */
const Target *cg_target(const CgOptions *o);
LLVMTargetMachineRef cg_target_machine(const CgOptions *o, LLVMCodeModel cm);

#endif
