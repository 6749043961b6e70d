/*
** engine.h: one interface over the executors of a graph: the reference
** interpreter (the oracle, in double) and LLVM-compiled code (JIT). Values
** go in and out as f32, by node.
*/
#ifndef RRC_ENGINE_H
#define RRC_ENGINE_H

#include "codegen/cg.h"
#include "ir/ir.h"

typedef enum EngineKind { ENGINE_INTERP, ENGINE_JIT } EngineKind;

typedef struct Engine {
    EngineKind kind;
    Graph *g;
    Interp it;                       /* interp */
    Jit *jit;                        /* jit */
    rt_step_fn fn;
    char *regions[RT_NREGIONS];
    double compile_seconds;
    bool cached;                     /* jit: the object came from the compile cache */
} Engine;

bool engine_parse(const char *s, EngineKind *k);
const char *engine_name(EngineKind k);
/* g must have been through the pass pipeline (planned for the JIT).
   The JIT's object comes from the compile cache (cache.h) when it holds
   this graph's; otherwise it is built and stored there. Returns false
   after printing a message. */
bool engine_init(Engine *e, Graph *g, EngineKind k, const CgOptions *o);
void engine_set(Engine *e, const Node *leaf, const float *data);
void engine_run(Engine *e);
void engine_get(const Engine *e, const Node *n, float *out);
void engine_free(Engine *e);

#endif
