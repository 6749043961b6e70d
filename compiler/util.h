/*
** util.h: small pieces every part of the compiler uses: allocation that
** cannot fail silently, a bump arena for compile-time objects, diagnostics
** in the "file:line: message" form, and internal assertions.
** It is not a place for anything specific to specs, IR or codegen.
*/
#ifndef RRC_UTIL_H
#define RRC_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Allocation: abort with a message on exhaustion (an internal error, never
   caused by user input of plausible size). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* CLOCK_MONOTONIC seconds: for timing the compiler's phases */
double wall_seconds(void);

/* Arena: compile-time objects (spec layers, IR nodes, names) are allocated
   here and freed all at once. */
typedef struct ArenaBlock ArenaBlock;
typedef struct Arena {
    ArenaBlock *head;
} Arena;
void *arena_alloc(Arena *a, size_t n);           /* zeroed, 16-byte aligned */
char *arena_strdup(Arena *a, const char *s);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void arena_free(Arena *a);

/* A source location in a spec file: where a layer or option was written. */
typedef struct SrcLoc {
    const char *file;  /* as given on the command line, e.g. "specs/conv4.lua" */
    int line;          /* 1-based; 0 when unknown */
} SrcLoc;

/* Diagnostics. User errors are printed as "file:line: message" (or
   "file: message" without a line) and counted; the caller decides when to
   stop. */
typedef struct Diag {
    int nerrors;
    int max_errors;    /* stop printing after this many (0 = 50) */
} Diag;
void diag_error(Diag *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Internal invariants: these are bugs in rrc, never user errors. */
_Noreturn void rrc_abort(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define RRC_ABORT(...) rrc_abort(__FILE__, __LINE__, __VA_ARGS__)
#define RRC_ASSERT(x) do { if (!(x)) RRC_ABORT("assertion failed: %s", #x); } while (0)

/* Exit statuses of the rrc command. */
enum {
    EXIT_USAGE = 1,    /* bad flags or an I/O problem */
    EXIT_BADSPEC = 2,  /* the spec is wrong */
};

#endif
