/*
** rt_data.c: the front door of the dataset readers (see rt_data.h): parsing
** of "NAME[:PATH]", dispatch to the format readers (rt_data_idx.c,
** rt_data_bin.c, rt_data_folder.c, rt_data_tiny.c), the helpers they share, and the
** synthetic dataset.
**
** What it is not: a data pipeline. Nothing here shuffles, augments,
** normalises or streams; a split is read whole into one uint8 HWC array,
** and the normalisation constants are only reported (has_norm/mean/std)
** for the augmentation code to use.
**
** The synthetic dataset (synthetic[:N], default N = 1024 per split) exists
** so that every path of rrc can run without downloading anything, and so
** that a smoke run can show learning: image i has label i % 10 (balanced)
** and is
**     pixel(y, x, ch) = colour[k][ch] + shift
**                       + amp * sin(2*pi*(x*cos(t_k) + y*sin(t_k)) / 8 + phase)
**                       + 16 * N(0, 1)        rounded and clipped to 0..255
** with k = i % 10, a per-class colour (uniform in 64..191 per channel,
** drawn once per seed) and a per-class grating orientation t_k = k*pi/10,
** and per-image random phase (uniform), amplitude (uniform 30..60) and
** brightness shift (normal, sd 12). The mean colour makes the classes
** linearly separable on raw pixels (a linear probe learns something); the
** orientation survives the colour jitter and grayscale augmentations, so a
** self-supervised objective has something besides colour to latch on to.
** Randomness comes from rt_rng with domain RT_DOMAIN_DATA: class colours
** from stream (a = 0xFFFFFFFF, b = class), image i of split s from stream
** (a = s, b = i) (TRAIN = 0, TEST = 1), so image i does not depend on N and
** the two splits differ. No normalisation constants (has_norm = 0).
*/
#include "rt_data_internal.h"

#include "rt_rng.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- shared helpers ---------------------------------------------------- */

void rtd_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    /* One line, whatever a library message or a file name contained. */
    for (char *p = err; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

int rtd_join(char *buf, size_t n, const char *dir, const char *name, char *err, size_t errlen) {
    size_t dl = strlen(dir);
    /* "DIR/" + name, without doubling a trailing slash the user typed */
    int slash = dl > 0 && dir[dl - 1] == '/';
    int k = snprintf(buf, n, "%s%s%s", dir, slash ? "" : "/", name);
    if (k < 0 || (size_t)k >= n) {
        rtd_err(err, errlen, "%s: path too long", dir);
        return -1;
    }
    return 0;
}

int rtd_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int rtd_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int rtd_open_sized(const char *path, FILE **f, int64_t *size, char *err, size_t errlen) {
    *f = fopen(path, "rb");
    if (!*f) {
        rtd_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(*f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rtd_err(err, errlen, "%s: not a regular file", path);
        fclose(*f);
        *f = NULL;
        return -1;
    }
    *size = (int64_t)st.st_size;
    return 0;
}

int rtd_alloc(rt_dataset *d, int64_t n, int h, int w, int c, int labeled, const char *what, char *err,
              size_t errlen) {
    if (n < 0 || h <= 0 || w <= 0 || c <= 0) {
        rtd_err(err, errlen, "%s: bad shape %lld x %d x %d x %d", what, (long long)n, h, w, c);
        return -1;
    }
    uint64_t per = (uint64_t)h * (uint64_t)w * (uint64_t)c;
    /* 2^46 bytes is far beyond any machine rrc runs on; the check keeps
       the product below from wrapping. */
    if ((uint64_t)n > ((uint64_t)1 << 46) / per) {
        rtd_err(err, errlen, "%s: %lld images of %dx%dx%d is too much data", what, (long long)n, h, w, c);
        return -1;
    }
    size_t bytes = (size_t)((uint64_t)n * per);
    /* calloc: the IDX reader relies on zeroed padding */
    d->pixels = calloc(bytes ? bytes : 1, 1);
    if (labeled) d->labels = calloc(n ? (size_t)n : 1, sizeof *d->labels);
    if (!d->pixels || (labeled && !d->labels)) {
        free(d->pixels);
        free(d->labels);
        d->pixels = NULL;
        d->labels = NULL;
        rtd_err(err, errlen, "%s: out of memory (%zu bytes of pixels)", what, bytes);
        return -1;
    }
    d->n = n;
    d->h = h;
    d->w = w;
    d->c = c;
    return 0;
}

void rtd_set_norm(rt_dataset *d, const double mean[3], const double std[3]) {
    d->has_norm = 1;
    for (int i = 0; i < 3; i++) {
        d->mean[i] = mean[i];
        d->std[i] = std[i];
    }
}

/* ---- synthetic --------------------------------------------------------- */

#define SYN_DEFAULT_N 1024
#define SYN_MAX_N 10000000
#define SYN_MAX_SIDE 4096
#define SYN_CLASSES 10
#define SYN_MAX_C 4
#define SYN_PERIOD 8.0   /* grating period in pixels */
#define SYN_NOISE 16.0

static int load_synthetic(const char *arg, rt_split split, const rt_data_opts *opts, rt_dataset *out,
                          char *err, size_t errlen) {
    int64_t n = SYN_DEFAULT_N;
    if (arg) {
        char *end;
        errno = 0;
        long long v = strtoll(arg, &end, 10);
        if (end == arg || *end || errno || v < 1 || v > SYN_MAX_N) {
            rtd_err(err, errlen, "synthetic: bad image count '%s' (want 1..%d)", arg, SYN_MAX_N);
            return -1;
        }
        n = v;
    }
    if (split == RT_SPLIT_UNLABELED) {
        rtd_err(err, errlen, "synthetic has no unlabeled split");
        return -1;
    }
    int h = opts && opts->h ? opts->h : 32, w = opts && opts->w ? opts->w : 32;
    int c = opts && opts->c ? opts->c : 3;
    uint64_t seed = opts ? opts->seed : 0;
    if (h < 1 || h > SYN_MAX_SIDE || w < 1 || w > SYN_MAX_SIDE || c < 1 || c > SYN_MAX_C) {
        rtd_err(err, errlen, "synthetic: bad image shape %dx%dx%d (want sides 1..%d, 1..%d channels)", h, w,
                c, SYN_MAX_SIDE, SYN_MAX_C);
        return -1;
    }
    if (rtd_alloc(out, n, h, w, c, 1, "synthetic", err, errlen)) return -1;
    out->nclasses = SYN_CLASSES;

    double colour[SYN_CLASSES][SYN_MAX_C], ct[SYN_CLASSES], st[SYN_CLASSES];
    for (int k = 0; k < SYN_CLASSES; k++) {
        rt_stream s;
        rt_stream_init(&s, seed, RT_DOMAIN_DATA, 0xFFFFFFFFu, (uint32_t)k);
        for (int ch = 0; ch < SYN_MAX_C; ch++) colour[k][ch] = 64.0 + (double)rt_stream_below(&s, 128);
        ct[k] = cos(M_PI * k / SYN_CLASSES);
        st[k] = sin(M_PI * k / SYN_CLASSES);
    }
    size_t per = (size_t)h * (size_t)w * (size_t)c;
    for (int64_t i = 0; i < n; i++) {
        int k = (int)(i % SYN_CLASSES);
        rt_stream s;
        rt_stream_init(&s, seed, RT_DOMAIN_DATA, split == RT_SPLIT_TEST ? 1u : 0u, (uint32_t)i);
        double phase = 2.0 * M_PI * rt_stream_uniform(&s);
        double amp = 30.0 + 30.0 * rt_stream_uniform(&s);
        double shift = 12.0 * rt_stream_normal(&s);
        uint8_t *img = out->pixels + (size_t)i * per;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double g = amp * sin(2.0 * M_PI * (x * ct[k] + y * st[k]) / SYN_PERIOD + phase);
                for (int ch = 0; ch < c; ch++) {
                    double v = colour[k][ch] + shift + g + SYN_NOISE * rt_stream_normal(&s);
                    v = floor(v + 0.5);
                    img[((size_t)y * (size_t)w + (size_t)x) * (size_t)c + (size_t)ch] =
                        (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            }
        out->labels[i] = k;
    }
    return 0;
}

/* ---- front door -------------------------------------------------------- */

/* the names the IDX loader takes (rt_dataset_load below) */
static bool idx_name(const char *name, size_t len) {
    return (len == 13 && !strncmp(name, "fashion-mnist", len)) || (len == 5 && !strncmp(name, "mnist", len));
}

bool rt_dataset_gray_name(const char *spec) { return idx_name(spec, strcspn(spec, ":")); }

const char *rt_dataset_names(void) {
    return "fashion-mnist[:PATH], mnist:PATH, cifar10:PATH, cifar100:PATH, cifar100-20:PATH, stl10:PATH, "
           "tiny-imagenet:PATH, slimagenet64:PATH, folder:PATH, synthetic[:N]";
}

int rt_dataset_load_subset(const char *spec, rt_split split, const rt_data_opts *opts, const rt_data_subset *sub,
                           rt_dataset *out, char *err, size_t errlen) {
    if (rt_dataset_load(spec, split, opts, out, err, errlen) != 0) return -1;
    int rc = 0;
    if (sub && sub->classes) rc = rtd_filter_classes(out, sub->classes, err, errlen);
    if (rc == 0 && sub && sub->labels && split == RT_SPLIT_TRAIN) rc = rtd_label_subset(out, sub->labels, sub->seed, err, errlen);
    if (rc) rt_dataset_free(out);
    return rc;
}

void rt_dataset_free(rt_dataset *d) {
    if (!d) return;
    free(d->pixels);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

int rt_dataset_load(const char *spec, rt_split split, const rt_data_opts *opts, rt_dataset *out, char *err,
                    size_t errlen) {
    memset(out, 0, sizeof *out);
    if (err && errlen) err[0] = 0;
    if (!spec || !*spec) {
        rtd_err(err, errlen, "data: empty dataset name (known: %s)", rt_dataset_names());
        return -1;
    }
    if (split != RT_SPLIT_TRAIN && split != RT_SPLIT_TEST && split != RT_SPLIT_UNLABELED) {
        rtd_err(err, errlen, "%s: bad split %d", spec, (int)split);
        return -1;
    }
    /* NAME is everything before the first ':'; PATH may contain more. */
    const char *colon = strchr(spec, ':');
    size_t nl = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *arg = colon ? colon + 1 : NULL;
    char name[64];
    if (nl >= sizeof name) {
        rtd_err(err, errlen, "%.40s...: unknown dataset (known: %s)", spec, rt_dataset_names());
        return -1;
    }
    memcpy(name, spec, nl);
    name[nl] = 0;
    if (arg && !*arg) {
        rtd_err(err, errlen, "%s: empty PATH after ':'", name);
        return -1;
    }
    memcpy(out->name, name, nl + 1);

    int rc;
    if (idx_name(name, nl))
        rc = rtd_load_idx(name, arg, split, out, err, errlen);
    else if (!strcmp(name, "cifar10") || !strcmp(name, "cifar100") || !strcmp(name, "cifar100-20"))
        rc = rtd_load_cifar(name, arg, split, out, err, errlen);
    else if (!strcmp(name, "stl10"))
        rc = rtd_load_stl10(name, arg, split, out, err, errlen);
    else if (!strcmp(name, "folder") || !strcmp(name, "tiny-imagenet") || !strcmp(name, "slimagenet64")) {
        if (!arg) {
            rtd_err(err, errlen, "%s: give the folder as --data %s:PATH", name, name);
            rc = -1;
        } else if (!strcmp(name, "folder"))
            rc = rtd_load_folder(arg, split, out, err, errlen);
        else if (!strcmp(name, "tiny-imagenet"))
            rc = rtd_load_tiny_imagenet(arg, split, out, err, errlen);
        else
            rc = rtd_load_slimagenet64(arg, split, out, err, errlen);
    } else if (!strcmp(name, "synthetic"))
        rc = load_synthetic(arg, split, opts, out, err, errlen);
    else {
        rtd_err(err, errlen, "%s: unknown dataset (known: %s)", name, rt_dataset_names());
        rc = -1;
    }
    if (rc) {
        rt_dataset_free(out);
        if (err && errlen && !err[0]) rtd_err(err, errlen, "%s: cannot load", spec);
        return -1;
    }
    return 0;
}
