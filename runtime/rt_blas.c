/*
** rt_blas.c: see rt_blas.h.
*/

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "rt_blas.h"

const char *rt_blas_core(void) { return openblas_get_corename(); }

static int cpu_has_avx512(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

static int core_has_avx512(const char *core) {
    static const char *const avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    for (size_t i = 0; i < sizeof avx512 / sizeof *avx512; i++)
        if (core && !strcasecmp(core, avx512[i])) return 1;
    return 0;
}

void rt_blas_select(char **argv) {
    if (getenv("RRC_BLAS_RESTARTED")) return;   /* never more than one restart */
    const char *want = getenv("RRC_BLAS_CORETYPE");
    if (want && !strcmp(want, "keep")) return;
    if (!want || !*want || !strcmp(want, "auto")) {
        /* an AVX-512 kernel set (OpenBLAS's own pick, or one the user set) stays */
        if (!cpu_has_avx512() || core_has_avx512(rt_blas_core())) return;
        want = "SkylakeX";
    }
    if (!strcasecmp(want, rt_blas_core())) return;
    if (setenv("OPENBLAS_CORETYPE", want, 1) != 0 || setenv("RRC_BLAS_RESTARTED", "1", 1) != 0) return;
    execv("/proc/self/exe", argv);
    unsetenv("RRC_BLAS_RESTARTED");   /* exec failed: go on with what is loaded */
}
