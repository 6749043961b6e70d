/*
** lf_internal.h: what the two halves of the Lua front end share.
**
** lf_sandbox.c owns the lua_State: the memory-capped allocator, the allowed
** libraries, the instruction cap, rr.include/require, the rr prelude, and
** running the spec. lf_spec.c (spec_load) drives it, prints the errors and
** converts the returned rr.model object into the structs of spec.h.
** Nothing outside compiler/frontend includes this header.
*/
#ifndef RRC_LF_INTERNAL_H
#define RRC_LF_INTERNAL_H

#include "frontend/spec.h"

#include <lua.h>

/* Limits on what a spec may use (README: "Sandbox"). The fuzz build
   (fuzz/fuzz.mk) lowers the first two with -D so that a looping or
   allocating input costs milliseconds; keep LF_INSTR_CAP a power of ten
   (the error message prints it as 10^N). */
#ifndef LF_MEM_CAP
#define LF_MEM_CAP ((size_t)256 << 20)    /* bytes of Lua heap */
#endif
#ifndef LF_INSTR_CAP
#define LF_INSTR_CAP 100000000            /* VM instructions (10^8) */
#endif
#define LF_FILE_CAP ((size_t)4 << 20)     /* bytes of one spec or included file */

/* Registry key of the prelude's internal table {rr, objs, errors, nerrors}. */
#define LF_INTERNAL "rrc.internal"

typedef struct LfSandbox {
    lua_State *L;
    size_t mem_used, mem_cap;
    const char *spec_path;   /* as given */
    char *dir;               /* the spec's directory with a trailing '/', or "" */
    char **files;            /* every chunk loaded ("@" names minus '@'), spec first */
    int nfiles;
    /* why the run stopped, when it was a limit */
    bool mem_exceeded, instr_exceeded;
    SrcLoc limit_loc;        /* where the limit was hit (file interned in files) */
    bool querying;           /* inside lf_user_where (the allocator must not recurse) */
} LfSandbox;

/* Creates a state with the allowed libraries and the rr prelude loaded.
   On failure prints why (counted in d) and returns NULL. */
LfSandbox *lf_sandbox_new(const char *spec_path, Diag *d);
void lf_sandbox_free(LfSandbox *sb);

/* Runs the spec under the caps. Returns LUA_OK with the spec's result on
   the stack top, or an error status with the message there. */
int lf_sandbox_run(LfSandbox *sb);

/* The innermost frame that runs spec code (not C, not the prelude):
   its file (interned in sb->files) and line. {spec_path, 0} if none. */
SrcLoc lf_user_where(LfSandbox *sb);

/* Interns a file name; the pointer lives as long as the sandbox. */
const char *lf_intern_file(LfSandbox *sb, const char *path);

/* Splits a Lua error message "file:line: text" when file is one of the
   loaded chunks (also in the "...tail" form Lua uses for long names).
   Returns the text after the prefix and sets *loc; NULL if no prefix. */
/* Pushes a list of the layer constructors layers.def names (lf_spec.c). */
void lf_push_layer_ctors(lua_State *L);

const char *lf_split_message(LfSandbox *sb, const char *msg, SrcLoc *loc);

#endif
