/*
** rt_prof.c: per-kernel profile of training steps (see rt_prof.h).
**
** Times are CLOCK_MONOTONIC nanoseconds (vDSO: ~20 ns a read, against
** kernels of microseconds to milliseconds), accumulated as integers so a
** long run loses nothing to rounding. The report derives everything from
** the sites' names ("ENTRY: MODULE OP"): the op summary is keyed by all
** that follows the module path, the module summary by the path's first
** component (backbone, pairs, relation, loss), so a fused kernel labelled
** "MODULE conv2d [epilogue]" groups apart from plain conv2d without this
** file knowing about fusion.
*/
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rt_file.h"
#include "rt_prof.h"

_Static_assert(sizeof(rt_prof_site) == 64, "rt_prof_site must match the LLVM struct of cg_llvm.c");

static bool on, active;
static rt_prof_site *list;
static int64_t step_t0, step_ns, nsteps;

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

void rt_prof_begin(rt_prof_site *s) {
    if (!active) return;
    s->t0 = now_ns();
}

void rt_prof_end(rt_prof_site *s) {
    if (!active) return;
    s->ns += now_ns() - s->t0;
    s->calls++;
    if (!s->linked) {
        s->linked = 1;
        s->next = list;
        list = s;
    }
}

static void unlink_all(void) {
    for (rt_prof_site *s = list, *nx; s; s = nx) {
        nx = s->next;
        s->next = NULL;
        s->linked = 0;
        s->calls = s->ns = s->t0 = 0;
    }
    list = NULL;
    step_ns = nsteps = 0;
}

void rt_prof_start(void) {
    unlink_all();
    on = true;
    active = false;
}

void rt_prof_stop(void) {
    unlink_all();
    on = active = false;
}

const rt_prof_site *rt_prof_sites(void) { return list; }

void rt_prof_step_begin(void) {
    if (!on) return;
    active = true;
    step_t0 = now_ns();
}

void rt_prof_step_end(void) {
    if (!on || !active) return;
    active = false;
    step_ns += now_ns() - step_t0;
    nsteps++;
}

/* ---- the report ---- */

typedef struct Row {
    char name[128];
    int64_t calls, ns;
    double flops, bytes;        /* in all calls */
    const rt_prof_site *site;   /* kernels; NULL for summaries */
} Row;

static int cmp_rows(const void *a, const void *b) {
    const Row *x = a, *y = b;
    if (x->ns != y->ns) return x->ns > y->ns ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The op (what follows the module path) or the top-level module (the
   path's first component) of a site name "ENTRY: MODULE OP". */
static void group_key(const char *name, bool by_op, char *out, size_t n) {
    const char *colon = strstr(name, ": "), *body = colon ? colon + 2 : name;
    const char *sp = strchr(body, ' ');
    const char *b, *e;
    if (by_op) {
        b = sp ? sp + 1 : body;
        e = b + strlen(b);
    } else {
        b = body;
        e = sp ? sp : body + strlen(body);
        const char *dot = memchr(b, '.', (size_t)(e - b));
        if (dot) e = dot;
    }
    snprintf(out, n, "%.*s", (int)(e - b), b);
}

/* Adds k to the group of its key in g[*ng] (linear search: a few dozen groups). */
static void add_group(Row *g, int *ng, const Row *k, bool by_op) {
    char key[128];
    group_key(k->name, by_op, key, sizeof key);
    int i = 0;
    while (i < *ng && strcmp(g[i].name, key) != 0) i++;
    if (i == *ng) {
        memset(&g[i], 0, sizeof g[i]);
        snprintf(g[i].name, sizeof g[i].name, "%s", key);
        (*ng)++;
    }
    g[i].calls += k->calls;
    g[i].ns += k->ns;
    g[i].flops += k->flops;
    g[i].bytes += k->bytes;
}

static double per_step_ms(int64_t ns) { return nsteps ? 1e-6 * (double)ns / (double)nsteps : 0; }
static double share(int64_t ns) { return step_ns ? 100.0 * (double)ns / (double)step_ns : 0; }

static void print_row(FILE *f, int w, const Row *r) {
    if (r->calls) fprintf(f, "%-*s %8lld", w, r->name, (long long)r->calls);
    else fprintf(f, "%-*s %8s", w, r->name, "");
    fprintf(f, " %10.3f %7.2f%%", per_step_ms(r->ns), share(r->ns));
    if (r->flops > 0 && r->ns > 0) fprintf(f, " %8.2f", r->flops / (double)r->ns);
    else fprintf(f, " %8s", "-");
    if (r->bytes > 0 && r->ns > 0) fprintf(f, " %7.2f", r->bytes / (double)r->ns);
    else fprintf(f, " %7s", "-");
    fputc('\n', f);
}

static void csv_row(FILE *f, const char *kind, const Row *r) {
    fprintf(f, "%s,\"", kind);
    for (const char *c = r->name; *c; c++) {
        if (*c == '"') fputc('"', f);
        fputc(*c, f);
    }
    fprintf(f, "\",%lld,%.6f,%.4f,%.4f,%.4f,", (long long)r->calls, per_step_ms(r->ns), share(r->ns),
            r->ns > 0 ? r->flops / (double)r->ns : 0.0, r->ns > 0 ? r->bytes / (double)r->ns : 0.0);
    if (r->site) fprintf(f, "%.0f,%.0f\n", r->site->flops, r->site->bytes);
    else fprintf(f, ",\n");
}

int rt_prof_report(FILE *f, int top, const char *csv_path, char *err, size_t errlen) {
    int n = 0;
    for (rt_prof_site *s = list; s; s = s->next) n++;
    Row *k = calloc((size_t)n + 1, sizeof *k), *ops = calloc((size_t)n + 1, sizeof *ops), *mods = calloc((size_t)n + 1, sizeof *mods);
    if (!k || !ops || !mods) {
        free(k);
        free(ops);
        free(mods);
        snprintf(err, errlen, "out of memory for the profile");
        return -1;
    }
    int i = 0, nops = 0, nmods = 0;
    Row all = {.name = "all kernels"};
    for (rt_prof_site *s = list; s; s = s->next, i++) {
        snprintf(k[i].name, sizeof k[i].name, "%s", s->name ? s->name : "?");
        k[i].calls = s->calls;
        k[i].ns = s->ns;
        k[i].flops = s->flops * (double)s->calls;
        k[i].bytes = s->bytes * (double)s->calls;
        k[i].site = s;
        all.calls += k[i].calls;
        all.ns += k[i].ns;
        all.flops += k[i].flops;
        all.bytes += k[i].bytes;
        add_group(ops, &nops, &k[i], true);
        add_group(mods, &nmods, &k[i], false);
    }
    qsort(k, (size_t)n, sizeof *k, cmp_rows);
    qsort(ops, (size_t)nops, sizeof *ops, cmp_rows);
    qsort(mods, (size_t)nmods, sizeof *mods, cmp_rows);
    int shown = top > 0 && top < n ? top : n;
    Row rest = {0}, other = {.name = "other (outside kernels)"}, step = {.name = "step"};
    for (i = shown; i < n; i++) {
        rest.calls += k[i].calls;
        rest.ns += k[i].ns;
        rest.flops += k[i].flops;
        rest.bytes += k[i].bytes;
    }
    snprintf(rest.name, sizeof rest.name, "(%d more kernels)", n - shown);
    other.ns = step_ns - all.ns;
    step.ns = step_ns;
    step.flops = all.flops;
    step.bytes = all.bytes;
    int w = 24;
    for (i = 0; i < shown; i++) w = (int)strlen(k[i].name) > w ? (int)strlen(k[i].name) : w;

    fprintf(f, "profile: %lld steps, %.3f ms per step, %d kernels\n", (long long)nsteps, per_step_ms(step_ns), n);
    fprintf(f, "%-*s %8s %10s %8s %8s %7s\n", w, "kernel", "calls", "ms/step", "share", "GFLOP/s", "GB/s");
    for (i = 0; i < shown; i++) print_row(f, w, &k[i]);
    if (shown < n) print_row(f, w, &rest);
    print_row(f, w, &all);
    print_row(f, w, &other);
    print_row(f, w, &step);
    fprintf(f, "\nby op:\n");
    for (i = 0; i < nops; i++) print_row(f, w, &ops[i]);
    fprintf(f, "\nby module:\n");
    for (i = 0; i < nmods; i++) print_row(f, w, &mods[i]);

    int rc = 0;
    if (csv_path) {
        FILE *c = fopen(csv_path, "w");
        if (!c) {
            snprintf(err, errlen, "%s: cannot write the profile: %s", csv_path, strerror(errno));
            rc = -1;
        } else {
            fprintf(c, "kind,name,calls,ms_per_step,share_pct,gflop_per_s,gb_per_s,flops_per_call,bytes_per_call\n");
            for (i = 0; i < n; i++) csv_row(c, "kernel", &k[i]);
            csv_row(c, "total", &all);
            csv_row(c, "other", &other);
            csv_row(c, "step", &step);
            for (i = 0; i < nops; i++) csv_row(c, "op", &ops[i]);
            for (i = 0; i < nmods; i++) csv_row(c, "module", &mods[i]);
            if (rt_close_checked(c, csv_path, err, errlen) != 0) rc = -1;
        }
    }
    free(k);
    free(ops);
    free(mods);
    return rc;
}

int64_t rt_prof_rss(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long long size, resident;
    int ok = f && fscanf(f, "%lld %lld", &size, &resident) == 2;
    if (f) fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return ok && page > 0 ? (int64_t)resident * page : -1;
}

int64_t rt_prof_peak_rss(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lld kB", &kb) == 1) break;
    fclose(f);
    return kb >= 0 ? (int64_t)kb * 1024 : -1;
}
