/*
** cg.h: code generation with the LLVM C API (LLVM 19).
**
** A planned graph (passes/memplan.c) becomes one LLVM function with the
** step ABI of rt_step.h: `void NAME(char *regions[5])`, calling generated
** kernels (fused loops, direct convolutions: cg_fuse.c, cg_conv.c) and the
** runtime's f32 kernels (runtime/rt_kernels.h) at the planned addresses.
** The module is verified, optimised for the host CPU (or the one asked
** for), then compiled: to an object file written out (rrc compile), or, for
** the JIT, cut into two modules optimised and compiled on two threads
** (cg_jit_objects) whose objects ORC LLJIT links in-process: the same bytes
** that the compile cache (../cache.h) stores and loads.
*/
#ifndef RRC_CG_H
#define RRC_CG_H

#include "ir/ir.h"

typedef struct CgOptions {
    const Target *target;     /* the CPU to generate code for (compiler/target.h); NULL: the host */
    int debug;                /* RRC_DEBUG level: 3 prints the LLVM IR */
    const char *entry;        /* prefix of the profile sites' names (the entry, "train_b64"); NULL: the function's */
} CgOptions;

typedef struct CgModule CgModule;

/* What the code generator has kernels for: the passes decide with it
   (PipelineOpts.caps), codegen then obeys the graph's decisions. */
const BackendCaps *cg_caps(void);
/* Builds and optimises a module with one step function `fn` computing g,
   planned (memplan: the kernel workspace included) with cg_caps(). Returns
   NULL after printing a message. */
CgModule *cg_build(Graph *g, const char *fn, const CgOptions *o);
/* Writes the module's textual IR / an object file. */
bool cg_write_ll(CgModule *m, const char *path);
bool cg_write_object(CgModule *m, const char *path);
/* The module's assembly for its target (malloc'd; NULL on error). */
char *cg_assembly(CgModule *m);
/* The JIT's code of g's step `fn`: its functions split into CG_JIT_PARTS
   modules, each optimised and compiled to an object on a thread of its own
   (a cold compile takes about half the time). The objects define each
   other's missing functions: link them together (jit_create). */
#define CG_JIT_PARTS 2
typedef struct CgObjects {
    int n;
    char *data[CG_JIT_PARTS];
    size_t len[CG_JIT_PARTS];
} CgObjects;
bool cg_jit_objects(Graph *g, const char *fn, const CgOptions *o, CgObjects *out);
void cg_objects_free(CgObjects *objs);
void cg_free(CgModule *m);
/* An object holding `rrc_program_json` (the program's description),
   `rrc_program_fns` (pointers to the named entry functions, defined in
   other objects) and `rrc_program_nfns`: what an AOT trainer's main reads. */
bool cg_write_program_object(const char *path, const char *json, const char *const *fns, int nfns, const CgOptions *o);

/* The JIT: links objects made by cg_jit_objects for target o (the bytes are copied) and returns its step functions by
   name. */
typedef struct Jit Jit;
Jit *jit_create(const CgObjects *objs, const CgOptions *o);
rt_step_fn jit_lookup(Jit *j, const char *fn);
void jit_free(Jit *j);

#endif
