/*
** rt_data_subset.c: subsets of a loaded dataset (rt_data_opts): the images
** of some classes (--classes, for transfer between class splits), and a
** class-balanced fraction of the labelled train split (--labels, the
** semi-supervised protocols). Both keep the images in dataset order.
*/
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rt_data_internal.h"
#include "rt_rng.h"

/* Keeps the images i with keep[i], in order (pixels and labels). */
static void compact(rt_dataset *d, const bool *keep) {
    size_t sz = (size_t)d->h * (size_t)d->w * (size_t)d->c;
    int64_t k = 0;
    for (int64_t i = 0; i < d->n; i++) {
        if (!keep[i]) continue;
        if (k != i) {
            memmove(d->pixels + (size_t)k * sz, d->pixels + (size_t)i * sz, sz);
            d->labels[k] = d->labels[i];
        }
        k++;
    }
    d->n = k;
}

/* An integer in [0, hi) at *p (advanced past it); -1 if none. */
static long class_at(const char **p, int hi) {
    char *end;
    errno = 0;
    long v = strtol(*p, &end, 10);
    if (end == *p || errno || v < 0 || v >= hi || (**p < '0' || **p > '9')) return -1;
    *p = end;
    return v;
}

int rtd_filter_classes(rt_dataset *d, const char *spec, char *err, size_t errlen) {
    if (!d->labels) {
        rtd_err(err, errlen, "%s: --classes needs labels, and this split has none", d->name);
        return -1;
    }
    int nc = d->nclasses;
    int *map = malloc((size_t)nc * sizeof *map);   /* old class -> new, or -1 */
    bool *keep = malloc((size_t)(d->n ? d->n : 1) * sizeof *keep);
    if (!map || !keep) {
        free(map), free(keep);
        rtd_err(err, errlen, "%s: out of memory", d->name);
        return -1;
    }
    for (int c = 0; c < nc; c++) map[c] = -1;
    int m = 0;
    const char *p = spec;
    for (;;) {
        long a = class_at(&p, nc), b = a;
        if (a >= 0 && *p == '-') {
            p++;
            b = class_at(&p, nc);
        }
        if (a < 0 || b < a || (*p && *p != ',')) {
            rtd_err(err, errlen, "--classes must list classes in [0, %d] as A,B or A-B (got \"%s\")", nc - 1, spec);
            goto fail;
        }
        for (long c = a; c <= b; c++) {
            if (map[c] >= 0) {
                rtd_err(err, errlen, "--classes names class %ld twice (\"%s\")", c, spec);
                goto fail;
            }
            map[c] = m++;
        }
        if (!*p) break;
        p++;
    }
    for (int64_t i = 0; i < d->n; i++) {
        keep[i] = map[d->labels[i]] >= 0;
        if (keep[i]) d->labels[i] = map[d->labels[i]];
    }
    compact(d, keep);
    d->nclasses = m;
    free(map);
    free(keep);
    return 0;
fail:
    free(map);
    free(keep);
    return -1;
}

int rtd_label_subset(rt_dataset *d, const char *spec, uint64_t seed, char *err, size_t errlen) {
    if (!d->labels || d->nclasses <= 0) {
        rtd_err(err, errlen, "%s: --labels needs labels, and this split has none", d->name);
        return -1;
    }
    char *end;
    errno = 0;
    double v = strtod(spec, &end);
    bool pct = !errno && end != spec && strcmp(end, "%") == 0 && v > 0 && v <= 100;
    bool per = !errno && end != spec && strcmp(end, "-per-class") == 0 && v >= 1 && v <= 1e9 && v == (double)(int64_t)v;
    if (!pct && !per) {
        rtd_err(err, errlen, "--labels must be P%% (0 < P <= 100) or N-per-class (got \"%s\")", spec);
        return -1;
    }
    int nc = d->nclasses;
    int64_t *idx = malloc((size_t)(d->n ? d->n : 1) * sizeof *idx);
    bool *keep = calloc((size_t)(d->n ? d->n : 1), sizeof *keep);
    if (!idx || !keep) {
        free(idx), free(keep);
        rtd_err(err, errlen, "%s: out of memory", d->name);
        return -1;
    }
    int rc = 0;
    for (int c = 0; c < nc && rc == 0; c++) {
        int64_t n = 0;
        for (int64_t i = 0; i < d->n; i++)
            if (d->labels[i] == c) idx[n++] = i;
        /* each class's share: floor(P% of it) (BASELINES.md's semi-
           supervised subsets), or N of it */
        int64_t want = pct ? (int64_t)floor(v / 100.0 * (double)n + 1e-9) : (int64_t)v;
        if (want == 0 && n > 0) {
            rtd_err(err, errlen, "--labels %s: class %d (%lld images) would keep none", spec, c, (long long)n);
            rc = -1;
            break;
        }
        if (want > n) {
            rtd_err(err, errlen, "--labels %s: class %d has only %lld images", spec, c, (long long)n);
            rc = -1;
            break;
        }
        /* the first `want` of a seeded shuffle of the class (a stream per class) */
        rt_stream s;
        rt_stream_init(&s, seed, RT_DOMAIN_SUBSET, (uint32_t)c, 0);
        for (int64_t i = 0; i < want; i++) {
            int64_t j = i + (int64_t)rt_stream_below(&s, (uint32_t)(n - i));
            int64_t t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
            keep[idx[i]] = true;
        }
    }
    if (rc == 0) compact(d, keep);
    free(idx);
    free(keep);
    return rc;
}
