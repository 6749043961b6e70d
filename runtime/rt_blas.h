/*
** rt_blas.h: choosing OpenBLAS's kernel set before any BLAS call.
**
** OpenBLAS 0.3.21 (Debian 12) picks its kernels from the CPU model at load
** time. On processors newer than it knows (AMD Zen 5, for one) it falls
** back to its AVX2 "Haswell" kernels although the CPU runs AVX-512 at full
** width: sgemm then runs at about half the speed of the "SkylakeX" kernels
** (docs/DECISIONS.md has the figures). The choice is read
** only in the library's constructor, so it can be changed only by
** restarting the program with OPENBLAS_CORETYPE set.
*/
#ifndef RT_BLAS_H
#define RT_BLAS_H

/* Called first thing in main(). RRC_BLAS_CORETYPE says what to do:
   - unset or "auto": when the CPU and the OS support AVX-512 (F, CD, BW, DQ,
     VL) and OpenBLAS runs a kernel set without it (its own pick, or an
     OPENBLAS_CORETYPE from the environment such as "Haswell"), re-executes
     the program (/proc/self/exe, same argv) with OPENBLAS_CORETYPE=SkylakeX;
   - "keep": leaves OpenBLAS's choice alone;
   - NAME: restarts with OPENBLAS_CORETYPE=NAME unless that already runs.
   Restarts at most once (RRC_BLAS_RESTARTED marks the restarted process);
   returns, doing nothing, also when exec fails. */
void rt_blas_select(char **argv);

/* The kernel set OpenBLAS runs ("SkylakeX", "Haswell", ...). */
const char *rt_blas_core(void);

#endif
