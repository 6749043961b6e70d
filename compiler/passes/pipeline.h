/*
** pipeline.h: runs the passes of passes.def in order, with optional
** verification after each and a dump after a named one.
*/
#ifndef RRC_PIPELINE_H
#define RRC_PIPELINE_H

#include "ir/ir.h"

typedef struct PipelineOpts {
    bool verify_each;         /* run graph_verify after every pass */
    const char *stop_after;   /* NULL: run all; "lower": none; else a pass name */
    int debug;                /* RRC_DEBUG level: 1 = pass timings and node counts, 2 = the IR after each pass */
    const char *dump_after;   /* print the IR to stderr after this pass ("all": after each) */
    const Target *target;     /* the machine to decide for (NULL: the host) */
    const BackendCaps *caps;  /* the code generator's (cg_caps()); NULL: a graph for the interpreter only */
    bool gray_input;          /* Graph.gray_input: the inputs will be gray images (the trainer checks its data) */
} PipelineOpts;

/* Returns false (after reporting) if a pass or a verification fails, or if
   stop_after names no pass. */
bool pipeline_run(Graph *g, Diag *d, const PipelineOpts *o);
bool pipeline_has_pass(const char *name);
/* "lower, autodiff, dce" */
const char *pipeline_pass_names(void);

#endif
