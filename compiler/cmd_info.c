/*
** cmd_info.c: `rrc specs` (the bundled specs with their sizes) and
** `rrc --version` (rrc's, LLVM's and OpenBLAS's versions and the host
** target the JIT would use).
*/
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <llvm-c/Core.h>

#include "driver.h"
#include "frontend/lower.h"
#include "target.h"
#include "version.h"

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void specs_usage(FILE *f) {
    char summary[PATH_MAX + 256];
    snprintf(summary, sizeof summary,
             "Lists the bundled specs (%s), which every command takes by name\n"
             "(rrc compile resnet32), with their input, parameter counts and multiply-adds per image.\n",
             driver_installed_specs());
    driver_usage(f, RRC_CMD_SPECS, "", summary);
}

int cmd_specs(int argc, char **argv) {
    rt_args a;
    int status = driver_parse(RRC_CMD_SPECS, argc, argv, 0, specs_usage, &a);
    if (status >= 0) return status;
    rt_args_free(&a);   /* no flags, no arguments */
    /* the first directory of the search path that is rrc's own: installed, else the source tree's */
    char dir[4200], path[4400];
    if (!driver_find_spec("specs", "conv4", path, sizeof path)) return EXIT_USAGE;
    char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "rrc specs: cannot list %s\n", dir);
        return EXIT_USAGE;
    }
    char *names[256];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 256) {
        size_t len = strlen(de->d_name);
        if (len > 4 && !strcmp(de->d_name + len - 4, ".lua")) names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name);
    printf("bundled specs in %s:\n", dir);
    printf("  %-18s %-10s %-10s %14s %12s %16s\n", "spec", "method", "input", "backbone", "head", "MACs per image");
    int rc = 0;
    for (int i = 0; i < n; i++) {
        Arena arena = {0};
        Diag dg = {0};
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        Spec *s = spec_load(path, &arena, &dg);
        Graph *g = s ? lower_train(s, 2, s->in_c, s->in_h, s->in_w, &arena, &dg) : NULL;
        if (!g) {
            rc = EXIT_BADSPEC;   /* spec_load / lower_train printed why */
        } else {
            GraphStats st = graph_stats(g, (int64_t)spec_backbone_views(s) * 2);
            char in[32];
            snprintf(in, sizeof in, "%dx%dx%d", s->in_c, s->in_h, s->in_w);
            printf("  %-18s %-10s %-10s %14lld %12lld %14.2f M\n", s->name, method_name(s->method.kind), in, (long long)st.params_backbone,
                   (long long)st.params_relation, (double)st.macs_per_image / 1e6);
        }
        arena_free(&arena);
        free(names[i]);
    }
    return rc;
}

int cmd_version(void) {
    unsigned maj, min, patch;
    LLVMGetVersion(&maj, &min, &patch);
    char tdesc[512];
    target_describe(target_host(), tdesc, sizeof tdesc);
    printf("rrc %s%s%s\n", RRC_VERSION, RRC_GIT_DESCRIBE[0] ? " (git " : "", RRC_GIT_DESCRIBE[0] ? RRC_GIT_DESCRIBE ")" : "");
    printf("LLVM %u.%u.%u\n", maj, min, patch);
    printf("OpenBLAS %s (kernels: %s)\n", openblas_get_config(), openblas_get_corename());
    printf("JIT target: %s\n", tdesc);
    return 0;
}
