/*
** rt_data_folder.c: `folder:PATH`, image folders in torchvision's
** ImageFolder layout: one sub-folder per class, classes numbered in the
** byte order of their names, the images of a class found recursively and
** ordered as ImageFolder orders them (by directory path, then file name),
** so image i and its label are the same as in PyTorch.
**
** Splits: if PATH has a train/ sub-folder, TRAIN reads PATH/train and TEST
** reads PATH/test (or, without it, PATH/val), whose class folders must have
** the same names as train's. Otherwise PATH itself is the class folder of
** TRAIN and there is no TEST split (an error, rather than silently testing
** on the training images). There is never an UNLABELED split.
**
** Files: *.png, *.jpg, *.jpeg (any case) are decoded (rt_data_image.c);
** other image formats ImageFolder would accept (.bmp .gif .ppm .pgm .tif
** .tiff .webp) are an error rather than silently dropped; every other file
** is ignored. Unlike ImageFolder, names starting with '.' (hidden folders
** such as .ipynb_checkpoints, macOS "._x.jpg" files) are skipped. All
** images must have one size (no resizing here: that is the augmentation's
** job); the first file of another size is named in the error. No
** normalisation constants are known (has_norm = 0).
**
** The same reader, rtd_load_image_folder, serves the named image-folder
** datasets (slimagenet64 in rt_data_tiny.c): they require the train/ +
** test/|val/ layout and one fixed image size, and set their own constants.
** The helpers rtd_list_names and rtd_image_kind are shared with
** tiny-imagenet's reader, so every folder reader skips and refuses the same
** files.
*/
#include "rt_data_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define WALK_MAX_DEPTH 32

typedef struct fent {
    char *dir, *name;
    int cls;
} fent;

typedef struct flist {
    fent *v;
    size_t n, cap;
} flist;

static void flist_free(flist *l) {
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].dir);
        free(l->v[i].name);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

void rtd_names_free(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int rtd_list_names(const char *dir, char ***out, size_t *nout, char *err, size_t errlen) {
    *out = NULL;
    *nout = 0;
    DIR *d = opendir(dir);
    if (!d) {
        rtd_err(err, errlen, "%s: cannot open folder: %s", dir, strerror(errno));
        return -1;
    }
    char **v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    for (;;) {
        errno = 0;
        e = readdir(d);
        if (!e) break;
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 64;
            char **nv = realloc(v, ncap * sizeof *nv);
            if (!nv) goto oom;
            v = nv;
            cap = ncap;
        }
        if (!(v[n] = strdup(e->d_name))) goto oom;
        n++;
    }
    if (errno) {
        rtd_err(err, errlen, "%s: cannot read folder: %s", dir, strerror(errno));
        rtd_names_free(v, n);
        closedir(d);
        return -1;
    }
    closedir(d);
    if (n) qsort(v, n, sizeof *v, cmp_str);
    *out = v;
    *nout = n;
    return 0;
oom:
    rtd_err(err, errlen, "%s: out of memory", dir);
    rtd_names_free(v, n);
    closedir(d);
    return -1;
}

int rtd_image_kind(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    static const char *const ok[] = {".png", ".jpg", ".jpeg"};
    static const char *const other[] = {".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strcasecmp(dot, ok[i])) return 1;
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        if (!strcasecmp(dot, other[i])) return 2;
    return 0;
}

static int walk(const char *dir, int depth, int cls, flist *l, char *err, size_t errlen) {
    if (depth > WALK_MAX_DEPTH) {
        rtd_err(err, errlen, "%s: folders nested more than %d deep (a symbolic link loop?)", dir, WALK_MAX_DEPTH);
        return -1;
    }
    char **names;
    size_t n;
    if (rtd_list_names(dir, &names, &n, err, errlen)) return -1;
    char *path = malloc(RTD_PATH_MAX);
    int rc = -1;
    if (!path) {
        rtd_err(err, errlen, "%s: out of memory", dir);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (rtd_join(path, RTD_PATH_MAX, dir, names[i], err, errlen)) goto done;
        struct stat st;
        if (stat(path, &st) != 0) continue;   /* a dangling link: nothing to read */
        if (S_ISDIR(st.st_mode)) {
            if (walk(path, depth + 1, cls, l, err, errlen)) goto done;
            continue;
        }
        if (!S_ISREG(st.st_mode)) continue;
        int kind = rtd_image_kind(names[i]);
        if (kind == 2) {
            rtd_err(err, errlen, "%s: unsupported image format (rrc reads PNG and JPEG)", path);
            goto done;
        }
        if (kind == 0) continue;
        if (l->n == l->cap) {
            size_t ncap = l->cap ? 2 * l->cap : 256;
            fent *nv = realloc(l->v, ncap * sizeof *nv);
            if (!nv) {
                rtd_err(err, errlen, "%s: out of memory", dir);
                goto done;
            }
            l->v = nv;
            l->cap = ncap;
        }
        fent *f = &l->v[l->n];
        f->dir = strdup(dir);
        f->name = strdup(names[i]);
        f->cls = cls;
        if (!f->dir || !f->name) {
            free(f->dir);
            free(f->name);
            rtd_err(err, errlen, "%s: out of memory", dir);
            goto done;
        }
        l->n++;
    }
    rc = 0;
done:
    free(path);
    rtd_names_free(names, n);
    return rc;
}

/* ImageFolder's order: class, then directory path, then file name. */
static int cmp_fent(const void *pa, const void *pb) {
    const fent *a = pa, *b = pb;
    if (a->cls != b->cls) return a->cls < b->cls ? -1 : 1;
    int c = strcmp(a->dir, b->dir);
    return c ? c : strcmp(a->name, b->name);
}

/* The sorted names of root's sub-folders (the classes). */
static int class_names(const char *root, char ***out, size_t *nout, char *err, size_t errlen) {
    char **names;
    size_t n, k = 0;
    if (rtd_list_names(root, &names, &n, err, errlen)) return -1;
    char *path = malloc(RTD_PATH_MAX);
    if (!path) {
        rtd_names_free(names, n);
        rtd_err(err, errlen, "%s: out of memory", root);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (rtd_join(path, RTD_PATH_MAX, root, names[i], err, errlen)) {
            /* names[k..i) are freed already */
            for (size_t j = 0; j < k; j++) free(names[j]);
            for (size_t j = i; j < n; j++) free(names[j]);
            free(names);
            free(path);
            return -1;
        }
        if (rtd_is_dir(path))
            names[k++] = names[i];   /* keeps the order: names is sorted */
        else
            free(names[i]);
    }
    free(path);
    *out = names;
    *nout = k;
    return 0;
}

int rtd_load_image_folder(const char *name, const char *dir, rt_split split, int need_split, int side,
                          rt_dataset *out, char *err, size_t errlen) {
    if (split == RT_SPLIT_UNLABELED) {
        rtd_err(err, errlen, "%s has no unlabeled split", name);
        return -1;
    }
    if (!rtd_is_dir(dir)) {
        rtd_err(err, errlen, "%s: no such folder", dir);
        return -1;
    }
    char trainp[RTD_PATH_MAX], root[RTD_PATH_MAX];
    if (rtd_join(trainp, sizeof trainp, dir, "train", err, errlen)) return -1;
    int layout = rtd_is_dir(trainp);
    if (!layout && need_split) {
        rtd_err(err, errlen, "%s: no train/ folder (%s wants PATH/train and PATH/test or PATH/val)", dir, name);
        return -1;
    }
    if (!layout) {
        if (split == RT_SPLIT_TEST) {
            rtd_err(err, errlen, "%s: no test split (give a folder with train/ and test/ or val/ sub-folders)", dir);
            return -1;
        }
        memcpy(root, dir, strlen(dir) + 1);   /* fits: checked by rtd_join above */
    } else if (split == RT_SPLIT_TRAIN) {
        memcpy(root, trainp, sizeof root);
    } else {
        if (rtd_join(root, sizeof root, dir, "test", err, errlen)) return -1;
        if (!rtd_is_dir(root)) {
            if (rtd_join(root, sizeof root, dir, "val", err, errlen)) return -1;
            if (!rtd_is_dir(root)) {
                rtd_err(err, errlen, "%s: has train/ but no test/ or val/ folder", dir);
                return -1;
            }
        }
    }

    char **cls = NULL, **tcls = NULL;
    size_t ncls = 0, ntcls = 0;
    flist l = {0};
    uint8_t *rgb = NULL;
    char *path = NULL, *first = NULL;
    int64_t *count = NULL;
    int rc = -1;
    if (class_names(root, &cls, &ncls, err, errlen)) goto done;
    if (ncls == 0) {
        rtd_err(err, errlen, "%s: no class sub-folders", root);
        goto done;
    }
    if (layout && split == RT_SPLIT_TEST) {
        /* Labels are class indices, so they only mean the same thing in
           both splits if the class folders are the same. */
        if (class_names(trainp, &tcls, &ntcls, err, errlen)) goto done;
        int same = ntcls == ncls;
        for (size_t i = 0; same && i < ncls; i++) same = !strcmp(cls[i], tcls[i]);
        if (!same) {
            rtd_err(err, errlen, "%s: class folders differ from those of %s (%zu vs %zu classes)", root, trainp, ncls,
                    ntcls);
            goto done;
        }
    }
    path = malloc(RTD_PATH_MAX);
    first = malloc(RTD_PATH_MAX);
    count = calloc(ncls, sizeof *count);
    if (!path || !first || !count) {
        rtd_err(err, errlen, "%s: out of memory", root);
        goto done;
    }
    for (size_t k = 0; k < ncls; k++) {
        if (rtd_join(path, RTD_PATH_MAX, root, cls[k], err, errlen)) goto done;
        size_t before = l.n;
        if (walk(path, 0, (int)k, &l, err, errlen)) goto done;
        count[k] = (int64_t)(l.n - before);
        if (!count[k]) {
            rtd_err(err, errlen, "%s: no PNG or JPEG images in this class folder", path);
            goto done;
        }
    }
    qsort(l.v, l.n, sizeof *l.v, cmp_fent);

    int h0 = side, w0 = side;
    for (size_t i = 0; i < l.n; i++) {
        if (rtd_join(path, RTD_PATH_MAX, l.v[i].dir, l.v[i].name, err, errlen)) goto done;
        int h, w;
        int r = rtd_decode_image(path, h0, w0, &rgb, &h, &w, err, errlen);
        if (r == -2 && side) {
            rtd_err(err, errlen, "%s: image is %dx%d, %s images must be %dx%d", path, w, h, name, side, side);
            goto done;
        }
        if (r == -2) {
            rtd_err(err, errlen, "%s: image is %dx%d, but %s is %dx%d (all images must have one size)", path, w, h,
                    first, w0, h0);
            goto done;
        }
        if (r) goto done;
        if (i == 0) {
            h0 = h;
            w0 = w;
            memcpy(first, path, strlen(path) + 1);
            if (rtd_alloc(out, (int64_t)l.n, h0, w0, 3, 1, root, err, errlen)) goto done;
            out->nclasses = (int)ncls;
        }
        size_t per = (size_t)h0 * (size_t)w0 * 3;
        memcpy(out->pixels + i * per, rgb, per);
        out->labels[i] = l.v[i].cls;
        free(rgb);
        rgb = NULL;
    }
    rc = 0;
done:
    free(rgb);
    free(path);
    free(first);
    free(count);
    flist_free(&l);
    rtd_names_free(cls, ncls);
    rtd_names_free(tcls, ntcls);
    return rc;
}

int rtd_load_folder(const char *dir, rt_split split, rt_dataset *out, char *err, size_t errlen) {
    return rtd_load_image_folder("folder", dir, split, 0, 0, out, err, errlen);
}
