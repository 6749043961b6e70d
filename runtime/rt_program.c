/*
** rt_program.c: small helpers over a program's entries (rt_program.h):
** finding a tensor by name and the layout hash that tells two compiled
** programs apart by what their PARAM and STATE regions hold.
*/
#include "rt_program.h"
#include "rt_comm.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

const rt_step_tensor *rt_entry_tensor(const rt_entry *e, const char *name) {
    /* Linear: tables hold at most a few hundred tensors and lookups happen
       while planning, never per step. */
    for (int i = 0; i < e->ntensors; i++)
        if (strcmp(e->tensors[i].name, name) == 0) return &e->tensors[i];
    return NULL;
}

#define FNV64_BASIS UINT64_C(14695981039346656037)
#define FNV64_PRIME UINT64_C(1099511628211)

static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= FNV64_PRIME;
    }
    return h;
}

/* Integers are hashed as 8 little-endian bytes, so the hash is the same on
   every host and for every int width the fields may have. */
static uint64_t fnv_i64(uint64_t h, int64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)v >> (8 * i));
    return fnv_bytes(h, b, 8);
}

uint64_t rt_hash_text(uint64_t h, const char *s) { return fnv_bytes(h ? h : FNV64_BASIS, s, strlen(s) + 1); }

uint64_t rt_layout_hash(const rt_entry *e) {
    uint64_t h = FNV64_BASIS;
    for (int i = 0; i < e->ntensors; i++) {
        const rt_step_tensor *t = &e->tensors[i];
        if (t->region != RT_REGION_PARAM && t->region != RT_REGION_STATE) continue;
        /* The name with its NUL, so "ab"+"c" and "a"+"bc" differ. */
        h = fnv_bytes(h, t->name, strlen(t->name) + 1);
        h = fnv_i64(h, t->rank);
        for (int d = 0; d < t->rank && d < 4; d++) h = fnv_i64(h, t->dim[d]);
        h = fnv_i64(h, t->region);
        h = fnv_i64(h, t->offset);
    }
    return h;
}

bool rt_fits_memory(const char *what, double bytes, char *err, size_t errlen) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || page <= 0) return true;   /* unknown: let the allocator decide */
    double phys = (double)pages * (double)page;
    if (bytes <= phys) return true;
    snprintf(err, errlen, "%s needs %.1f GiB, more than this machine's %.1f GiB of memory; lower --batch or --K",
             what, bytes / (1 << 30), phys / (1 << 30));
    return false;
}

static const char *const method_names[] = {"relational", "supervised", "rotation", "simclr", "deepcluster", "dim"};   /* ORDER rt_method */

const char *rt_method_name(rt_method m) {
    return (unsigned)m < sizeof method_names / sizeof method_names[0] ? method_names[m] : "?";
}

bool rt_method_parse(const char *s, rt_method *out) {
    for (unsigned i = 0; s && i < sizeof method_names / sizeof method_names[0]; i++)
        if (strcmp(s, method_names[i]) == 0) {
            *out = (rt_method)i;
            return true;
        }
    return false;
}

int rt_backbone_views(const rt_program *p) { return p->method == RT_METHOD_ROTATION ? 4 * p->K : p->K; }

int rt_program_for_rank(rt_program *p, int rank, int size, char *err, size_t errlen) {
    if (size <= 1) return 0;
    if (p->ranks != size) {
        if (p->ranks > 1)
            snprintf(err, errlen, "%s was compiled for %d ranks, not %d (rrc compile --ranks %d)", p->spec_name, p->ranks, size, size);
        else
            snprintf(err, errlen, "%s was compiled for one process; for %d ranks: rrc compile --ranks %d", p->spec_name, size, size);
        return -1;
    }
    /* the first B % N ranks have the larger share (rt_comm_share) */
    int64_t o;
    const rt_entry *full = rt_comm_share(p->batch, rank, size, &o) == p->rank_full[0]->B ? p->rank_full[0] : p->rank_full[1];
    const rt_entry *last = NULL;
    if (p->rank_last[0]) {
        int64_t blast = p->rank_last[0]->B_total;
        last = rt_comm_share(blast, rank, size, &o) == p->rank_last[0]->B ? p->rank_last[0] : p->rank_last[1];
    }
    if (!full || !full->fn || (p->rank_last[0] && !last)) {
        snprintf(err, errlen, "%s: no step for rank %d's share of the batch", p->spec_name, rank);
        return -1;
    }
    p->alone[0] = p->train_full;
    p->alone[1] = p->train_last;
    p->train_full = full;
    p->train_last = last;
    return 0;
}
