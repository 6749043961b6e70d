/*
** target.c: the table of targets, the host's description, and choosing
** one (see target.h). The only place where vector widths, register counts
** and cache sizes are written down.
*/
#include "target.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

#include "util.h"

/* The vector units of an ISA: f32 lanes, registers, FMA. FMA figures are
   those of the cores of its table entries (two pipes of latency 4 on
   Haswell to Zen 4 and Neoverse); they only size the register tiles. */
typedef struct Isa {
    const char *name, *arch;
    int lanes, vregs;
    bool fma;
    int fma_units, fma_latency;
    const char *needs;   /* host features code of this ISA executes */
} Isa;

static const Isa isas[] = {
    {"avx512", "x86_64", 16, 32, true, 2, 4, "+avx512f,+fma"},
    {"avx2", "x86_64", 8, 16, true, 2, 4, "+avx2,+fma"},
    {"avx", "x86_64", 8, 16, false, 2, 4, "+avx"},
    {"sse4.2", "x86_64", 4, 16, false, 2, 4, "+sse4.2"},
    {"sse2", "x86_64", 4, 16, false, 2, 4, ""},
    {"neon", "aarch64", 4, 32, true, 2, 4, "+neon"},
};

/* CPUs by LLVM name: ISA and cache sizes in KiB (0: unknown, the host's
   are used). */
typedef struct Cpu {
    const char *name, *isa;
    int l1d_k, l2_k, l3_k;
} Cpu;

static const Cpu cpus[] = {
    {"x86-64", "sse2", 0, 0, 0},
    {"x86-64-v2", "sse4.2", 0, 0, 0},
    {"x86-64-v3", "avx2", 0, 0, 0},
    {"x86-64-v4", "avx512", 0, 0, 0},
    {"haswell", "avx2", 32, 256, 0},
    {"skylake", "avx2", 32, 256, 0},
    {"skylake-avx512", "avx512", 32, 1024, 0},
    {"cascadelake", "avx512", 32, 1024, 0},
    {"icelake-server", "avx512", 48, 1280, 0},
    {"sapphirerapids", "avx512", 48, 2048, 0},
    {"znver2", "avx2", 32, 512, 0},
    {"znver3", "avx2", 32, 512, 0},
    {"znver4", "avx512", 32, 1024, 0},
    {"neoverse-n1", "neon", 64, 1024, 0},
    {"neoverse-v1", "neon", 64, 1024, 0},
    {"neoverse-n2", "neon", 64, 1024, 0},
    {"generic", "neon", 0, 0, 0},   /* aarch64's baseline */
};

/* The ISA of a name the tables hold (a bug in the tables otherwise). */
static const Isa *isa_named(const char *name) {
    for (size_t i = 0; i < sizeof isas / sizeof *isas; i++)
        if (!strcmp(isas[i].name, name)) return &isas[i];
    RRC_ABORT("no ISA named %s", name);
}

/* Whether feature string f has feature "+x" (exactly, not "+x2"). */
static bool has_feature(const char *f, const char *x) {
    size_t n = strlen(x);
    for (const char *p = f; p && (p = strstr(p, x)); p += n)
        if ((p == f || p[-1] == ',') && (p[n] == ',' || p[n] == 0)) return true;
    return false;
}

static bool has_all(const char *f, const char *needs) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", needs);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if (!has_feature(f, tok)) return false;
    return true;
}

static bool triple_arch(const char *triple, char *arch, size_t n) {
    const char *dash = strchr(triple, '-');
    size_t len = dash ? (size_t)(dash - triple) : strlen(triple);
    if (len + 1 > n) return false;
    memcpy(arch, triple, len);
    arch[len] = 0;
    if (!strcmp(arch, "arm64")) snprintf(arch, n, "aarch64");
    return true;
}

/* The best ISA of the table that a feature string provides on arch. */
static const Isa *isa_of_features(const char *arch, const char *f) {
    for (size_t i = 0; i < sizeof isas / sizeof *isas; i++)
        if (!strcmp(isas[i].arch, arch) && has_all(f, isas[i].needs)) return &isas[i];
    return NULL;
}

static void set_isa(Target *t, const Isa *isa) {
    snprintf(t->isa, sizeof t->isa, "%s", isa->name);
    t->lanes = isa->lanes;
    t->vregs = isa->vregs;
    t->fma = isa->fma;
    t->fma_units = isa->fma_units;
    t->fma_latency = isa->fma_latency;
}

/* Cache sizes of cpu0 from sysfs; false if there are none. */
static bool sysfs_caches(Target *t) {
    bool any = false;
    for (int i = 0; i < 8; i++) {
        char path[128], type[32] = "", size[32] = "", level[8] = "", line[16] = "";
        const char *fields[4] = {"type", "size", "level", "coherency_line_size"};
        char *out[4] = {type, size, level, line};
        size_t lens[4] = {sizeof type, sizeof size, sizeof level, sizeof line};
        bool ok = true;
        for (int f = 0; f < 4 && ok; f++) {
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/%s", i, fields[f]);
            FILE *fp = fopen(path, "r");
            ok = fp && fgets(out[f], (int)lens[f], fp);
            if (fp) fclose(fp);
        }
        if (!ok) break;
        char *end;
        long long v = strtoll(size, &end, 10);
        if (*end == 'K') v *= 1024;
        else if (*end == 'M') v *= 1024 * 1024;
        if (v <= 0 || !strncmp(type, "Instruction", 11)) continue;
        int lv = atoi(level);
        if (lv == 1) t->l1d = v;
        else if (lv == 2) t->l2 = v;
        else if (lv == 3) t->l3 = v;
        long ls = atol(line);
        if (ls > 0) t->line = ls;
        any = true;
    }
    return any;
}

static Target host;
static void init_host(void) {
    char *triple = LLVMGetDefaultTargetTriple(), *cpu = LLVMGetHostCPUName(), *feat = LLVMGetHostCPUFeatures();
    snprintf(host.triple, sizeof host.triple, "%s", triple);
    snprintf(host.cpu, sizeof host.cpu, "%s", cpu);
    snprintf(host.features, sizeof host.features, "%s", feat);
    LLVMDisposeMessage(triple);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(feat);
    char arch[32];
    const Isa *isa = triple_arch(host.triple, arch, sizeof arch) ? isa_of_features(arch, host.features) : NULL;
    set_isa(&host, isa ? isa : isa_named("sse2"));
    /* without sysfs: an unassuming default */
    host.line = 64, host.l1d = 32 << 10, host.l2 = 512 << 10, host.l3 = 8 << 20;
    sysfs_caches(&host);
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    host.cores = nc > 0 ? (int)nc : 1;
    host.host = true;
}

const Target *target_host(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_host);
    return &host;
}

static char names[512];
static void init_names(void) {
    size_t n = 0;
    for (size_t i = 0; i < sizeof cpus / sizeof *cpus; i++)
        n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "", cpus[i].name);
}

const char *target_names(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_names);
    return names;
}

bool target_named(const char *cpu, const char *triple, const char *features, Target *t, char *err, size_t errlen) {
    const Target *h = target_host();
    if (!cpu || !*cpu || !strcmp(cpu, "native")) {
        if (triple && *triple && strcmp(triple, h->triple)) {
            snprintf(err, errlen, "name a CPU for target %s (--cpu; known: %s)", triple, target_names());
            return false;
        }
        *t = *h;
        return true;
    }
    const Cpu *c = NULL;
    for (size_t i = 0; i < sizeof cpus / sizeof *cpus && !c; i++)
        if (!strcmp(cpus[i].name, cpu)) c = &cpus[i];
    if (!c) {
        snprintf(err, errlen, "unknown CPU '%s' (known: %s)", cpu, target_names());
        return false;
    }
    const Isa *isa = isa_named(c->isa);
    char arch[32];
    const char *tr = triple && *triple ? triple : h->triple;
    if (strlen(tr) >= sizeof t->triple || (features && strlen(features) >= sizeof t->features)) {
        snprintf(err, errlen, "target triple or features too long");
        return false;
    }
    if (!triple_arch(tr, arch, sizeof arch) || strcmp(arch, isa->arch)) {
        snprintf(err, errlen, "CPU '%s' is an %s CPU, not one for target %s", cpu, isa->arch, tr);
        return false;
    }
    memset(t, 0, sizeof *t);
    snprintf(t->triple, sizeof t->triple, "%s", tr);
    snprintf(t->cpu, sizeof t->cpu, "%s", cpu);
    snprintf(t->features, sizeof t->features, "%s", features ? features : "");
    /* extra features may widen the ISA ("+avx512f" on x86-64-v3) */
    const Isa *fi = features && *features ? isa_of_features(arch, features) : NULL;
    set_isa(t, fi && fi->lanes > isa->lanes ? fi : isa);
    t->line = h->line;
    t->l1d = c->l1d_k ? (int64_t)c->l1d_k << 10 : h->l1d;
    t->l2 = c->l2_k ? (int64_t)c->l2_k << 10 : h->l2;
    t->l3 = c->l3_k ? (int64_t)c->l3_k << 10 : h->l3;
    t->caches_from_host = !c->l1d_k || !c->l2_k;
    t->cores = h->cores;
    t->host = false;
    return true;
}

bool target_from_env(Target *t, char *err, size_t errlen) {
    const char *e = getenv("RRC_CPU");
    if (!target_named(e, NULL, NULL, t, err, errlen)) {
        char why[300];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "RRC_CPU: %s", why);
        return false;
    }
    return true;
}

bool target_foreign(const Target *t) {
    char a[32], b[32];
    return !triple_arch(t->triple, a, sizeof a) || !triple_arch(target_host()->triple, b, sizeof b) || strcmp(a, b);
}

bool target_runs_here(const Target *t, char *err, size_t errlen) {
    const Target *h = target_host();
    if (t->host) return true;
    if (target_foreign(t)) {
        snprintf(err, errlen, "code for %s (%s) cannot run on this %s host", t->cpu, t->triple, h->triple);
        return false;
    }
    const Isa *isa = isa_named(t->isa);
    if (!has_all(h->features, isa->needs)) {
        snprintf(err, errlen, "code for %s needs %s, which this CPU (%s, %s) lacks", t->cpu, isa->needs, h->cpu, h->isa);
        return false;
    }
    return true;
}

void target_describe(const Target *t, char *buf, size_t len) {
    snprintf(buf, len,
             "%s (%s: %d lanes, %d registers, %s; L1d %lld KiB, L2 %lld KiB, L3 %lld KiB, line %lld B%s; %d cores)",
             t->cpu, t->isa, t->lanes, t->vregs, t->fma ? "FMA" : "no FMA", (long long)(t->l1d >> 10),
             (long long)(t->l2 >> 10), (long long)(t->l3 >> 10), (long long)t->line,
             t->caches_from_host ? ", caches of the host" : "", t->cores);
}
