/*
** rt_data_tiny.c: the paper's two 64x64 datasets, tiny-ImageNet and
** SlimageNet64, with the normalisation constants of the official code
** (mean 0.5, std 0.25 for every channel, has_norm = 1).
**
** tiny-imagenet:PATH reads the layout of the official archive, PATH being
** the unpacked tiny-imagenet-200 folder:
**   PATH/wnids.txt                   the class ids (wnids), one a line; class
**                                    k is the k-th id (blank lines skipped,
**                                    trailing spaces and CR dropped); an id is
**                                    printable ASCII without spaces or '/',
**                                    not starting with '.', and unique
**   PATH/train/WNID/images/FILE      TRAIN: the images of class WNID, classes
**                                    in wnids.txt order, each class's files in
**                                    bytewise name order; every non-hidden
**                                    sub-folder of train/ must be a listed
**                                    wnid, and every wnid needs a non-empty
**                                    images/ folder (WNID_boxes.txt and other
**                                    non-image files are ignored)
**   PATH/val/val_annotations.txt     TEST's labels: lines of FILE, WNID and
**                                    4 box numbers (unsigned integers),
**                                    tab-separated; the boxes are checked and
**                                    not kept
**   PATH/val/images/FILE             TEST: the images in the order of the
**                                    annotation file; each annotated FILE
**                                    must be there, once, and every image in
**                                    val/images must be annotated
** TEST is the val/ split, as is usual: test/ has no labels and is not read,
** and there is no UNLABELED split. Classes are numbered in sorted wnid
** order, as torchvision's ImageFolder on train/ (what the official code
** uses) numbers them, so labels and per-class figures match its; the order
** of wnids.txt's lines (which are not sorted) does not matter.
**
** slimagenet64:PATH is an image folder (rt_data_folder.c, ImageFolder's
** order): PATH/train/CLASS/... for TRAIN and PATH/test/CLASS/... (or val/)
** for TEST, with the same class folders.
**
** Both: files are decoded by rt_data_image.c (*.png, *.jpg, *.jpeg in any
** case; gray is replicated to RGB); other image formats are an error;
** every image must be 64x64 (no resizing here). Every check is made before
** the pixels are allocated, except the images' own sizes and contents;
** whatever goes wrong is one line naming the file (and the line of a text
** file), and nothing is left allocated.
*/
#include "rt_data_internal.h"

#include <stdlib.h>
#include <string.h>

#define TINY_SIDE 64
/* The official files are 2 KB (wnids.txt) and 0.4 MB (val_annotations.txt). */
#define TINY_TEXT_MAX ((int64_t)64 << 20)
#define TINY_ID_MAX 255

static const double TINY_MEAN[3] = {0.5, 0.5, 0.5}, TINY_STD[3] = {0.25, 0.25, 0.25};

/* ---- text files -------------------------------------------------------- */

/* The whole file, with a NUL after it (the text may contain NULs: lines are
   checked for them). */
static int read_text(const char *path, char **text, size_t *len, char *err, size_t errlen) {
    FILE *f;
    int64_t size;
    *text = NULL;
    *len = 0;
    if (rtd_open_sized(path, &f, &size, err, errlen)) return -1;
    if (size > TINY_TEXT_MAX) {
        rtd_err(err, errlen, "%s: too large for a tiny-imagenet text file (%lld bytes)", path, (long long)size);
        fclose(f);
        return -1;
    }
    char *b = malloc((size_t)size + 1);
    if (!b) {
        rtd_err(err, errlen, "%s: out of memory", path);
        fclose(f);
        return -1;
    }
    if (size > 0 && fread(b, 1, (size_t)size, f) != (size_t)size) {
        rtd_err(err, errlen, "%s: read error", path);
        free(b);
        fclose(f);
        return -1;
    }
    fclose(f);
    b[size] = 0;
    *text = b;
    *len = (size_t)size;
    return 0;
}

/* The next line of [*p, end), NUL-terminated in place without its trailing
   spaces, tabs and CR; *p moves past it. 0 at the end of the text. */
static int next_line(char **p, char *end, char **line, size_t *len) {
    if (*p >= end) return 0;
    char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
    char *e = nl ? nl : end;
    *p = nl ? nl + 1 : end;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
    *e = 0;   /* e <= end, and end[0] is the NUL read_text put there */
    *line = s;
    *len = (size_t)(e - s);
    return 1;
}

/* A wnid: printable ASCII, no space or '/', not hidden, not too long. */
static int id_ok(const char *s, size_t n) {
    if (n == 0 || n > TINY_ID_MAX || s[0] == '.') return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '/') return 0;
    return 1;
}

/* A file name in val/images: no control characters or '/', not hidden. */
static int file_ok(const char *s, size_t n) {
    if (n == 0 || n > TINY_ID_MAX || s[0] == '.') return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f || s[i] == '/') return 0;
    return 1;
}

static int uint_ok(const char *s, size_t n) {
    if (n == 0 || n > 9) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

/* ---- wnids.txt --------------------------------------------------------- */

typedef struct wkey {
    const char *id;
    int32_t cls;
    int line;
} wkey;

typedef struct wnids {
    char path[RTD_PATH_MAX];
    char *text;
    wkey *cls;     /* in the file's order */
    wkey *byid;    /* the same, sorted by id: class k is byid[k] */
    size_t n;
} wnids;

static int cmp_wkey(const void *pa, const void *pb) {
    const wkey *a = pa, *b = pb;
    int c = strcmp(a->id, b->id);
    return c ? c : (a->line > b->line) - (a->line < b->line);
}

static void wnids_free(wnids *w) {
    free(w->text);
    free(w->cls);
    free(w->byid);
    w->text = NULL;
    w->cls = w->byid = NULL;
    w->n = 0;
}

static const wkey *wnids_find(const wnids *w, const char *id) {
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(w->byid[mid].id, id);
        if (c == 0) return &w->byid[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int read_wnids(const char *dir, wnids *w, char *err, size_t errlen) {
    memset(w, 0, sizeof *w);
    if (rtd_join(w->path, sizeof w->path, dir, "wnids.txt", err, errlen)) return -1;
    size_t len;
    if (read_text(w->path, &w->text, &len, err, errlen)) return -1;
    size_t cap = 0;
    char *p = w->text, *end = w->text + len, *line;
    size_t ll;
    int lineno = 0;
    while (next_line(&p, end, &line, &ll)) {
        lineno++;
        if (ll == 0) continue;
        if (!id_ok(line, ll)) {
            rtd_err(err, errlen, "%s: line %d: bad class id '%.40s' (want one wnid a line, such as n01443537)",
                    w->path, lineno, line);
            return -1;
        }
        if (w->n == cap) {
            size_t ncap = cap ? 2 * cap : 256;
            wkey *nv = realloc(w->cls, ncap * sizeof *nv);
            if (!nv) {
                rtd_err(err, errlen, "%s: out of memory", w->path);
                return -1;
            }
            w->cls = nv;
            cap = ncap;
        }
        w->cls[w->n] = (wkey){line, (int32_t)w->n, lineno};
        w->n++;
    }
    if (w->n == 0) {
        rtd_err(err, errlen, "%s: no class ids", w->path);
        return -1;
    }
    w->byid = malloc(w->n * sizeof *w->byid);
    if (!w->byid) {
        rtd_err(err, errlen, "%s: out of memory", w->path);
        return -1;
    }
    memcpy(w->byid, w->cls, w->n * sizeof *w->byid);
    qsort(w->byid, w->n, sizeof *w->byid, cmp_wkey);
    for (size_t i = 1; i < w->n; i++)
        if (!strcmp(w->byid[i].id, w->byid[i - 1].id)) {
            rtd_err(err, errlen, "%s: line %d: class id %s repeats line %d", w->path, w->byid[i].line,
                    w->byid[i].id, w->byid[i - 1].line);
            return -1;
        }
    for (size_t i = 0; i < w->n; i++) w->byid[i].cls = (int32_t)i;   /* ImageFolder's numbering */
    return 0;
}

/* ---- the list of images to decode -------------------------------------- */

typedef struct plist {
    char **path;
    int32_t *label;
    size_t n, cap;
} plist;

static void plist_free(plist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->path[i]);
    free(l->path);
    free(l->label);
    memset(l, 0, sizeof *l);
}

static int plist_add(plist *l, const char *dir, const char *name, int32_t label, char *err, size_t errlen) {
    if (l->n == l->cap) {
        size_t ncap = l->cap ? 2 * l->cap : 1024;
        char **np = realloc(l->path, ncap * sizeof *np);
        if (np) l->path = np;
        int32_t *nl = np ? realloc(l->label, ncap * sizeof *nl) : NULL;
        if (nl) l->label = nl;
        if (!np || !nl) {
            rtd_err(err, errlen, "%s: out of memory", dir);
            return -1;
        }
        l->cap = ncap;
    }
    char *p = malloc(RTD_PATH_MAX);
    if (!p) {
        rtd_err(err, errlen, "%s: out of memory", dir);
        return -1;
    }
    if (rtd_join(p, RTD_PATH_MAX, dir, name, err, errlen)) {
        free(p);
        return -1;
    }
    char *q = realloc(p, strlen(p) + 1);   /* shrinking: keeps p on failure */
    l->path[l->n] = q ? q : p;
    l->label[l->n] = label;
    l->n++;
    return 0;
}

/* Allocates the split and decodes l's images into it, each 64x64. */
static int decode_all(const char *name, const char *what, const plist *l, int nclasses, rt_dataset *out,
                      char *err, size_t errlen) {
    if (rtd_alloc(out, (int64_t)l->n, TINY_SIDE, TINY_SIDE, 3, 1, what, err, errlen)) return -1;
    out->nclasses = nclasses;
    size_t per = (size_t)TINY_SIDE * TINY_SIDE * 3;
    for (size_t i = 0; i < l->n; i++) {
        uint8_t *rgb;
        int h, w;
        int r = rtd_decode_image(l->path[i], TINY_SIDE, TINY_SIDE, &rgb, &h, &w, err, errlen);
        if (r == -2) {
            rtd_err(err, errlen, "%s: image is %dx%d, %s images must be %dx%d", l->path[i], w, h, name,
                    TINY_SIDE, TINY_SIDE);
            return -1;
        }
        if (r) return -1;
        memcpy(out->pixels + i * per, rgb, per);
        out->labels[i] = l->label[i];
        free(rgb);
    }
    rtd_set_norm(out, TINY_MEAN, TINY_STD);
    return 0;
}

/* ---- tiny-imagenet: train/ --------------------------------------------- */

static int tiny_train(const char *dir, const wnids *w, plist *l, char *root, char *err, size_t errlen) {
    if (rtd_join(root, RTD_PATH_MAX, dir, "train", err, errlen)) return -1;
    if (!rtd_is_dir(root)) {
        rtd_err(err, errlen, "%s: no such folder (tiny-imagenet's train split)", root);
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    char *path = malloc(RTD_PATH_MAX), *img = malloc(RTD_PATH_MAX);
    int rc = -1;
    if (!path || !img) {
        rtd_err(err, errlen, "%s: out of memory", root);
        goto done;
    }
    /* A class folder that wnids.txt does not list would otherwise be
       silently left out. */
    if (rtd_list_names(root, &names, &n, err, errlen)) goto done;
    for (size_t i = 0; i < n; i++) {
        if (rtd_join(path, RTD_PATH_MAX, root, names[i], err, errlen)) goto done;
        if (rtd_is_dir(path) && !wnids_find(w, names[i])) {
            rtd_err(err, errlen, "%s: class folder not listed in %s", path, w->path);
            goto done;
        }
    }
    rtd_names_free(names, n);
    names = NULL;
    n = 0;
    for (size_t k = 0; k < w->n; k++) {
        const wkey *c = &w->byid[k];   /* in class order */
        if (rtd_join(path, RTD_PATH_MAX, root, c->id, err, errlen)) goto done;
        if (!rtd_is_dir(path)) {
            rtd_err(err, errlen, "%s: no such folder (class %s, line %d of %s)", path, c->id, c->line, w->path);
            goto done;
        }
        if (rtd_join(img, RTD_PATH_MAX, path, "images", err, errlen)) goto done;
        if (!rtd_is_dir(img)) {
            rtd_err(err, errlen, "%s: no such folder (tiny-imagenet keeps a class's images in WNID/images/)", img);
            goto done;
        }
        if (rtd_list_names(img, &names, &n, err, errlen)) goto done;
        size_t before = l->n;
        for (size_t i = 0; i < n; i++) {
            int kind = rtd_image_kind(names[i]);
            if (kind == 0) continue;
            if (rtd_join(path, RTD_PATH_MAX, img, names[i], err, errlen)) goto done;
            if (!rtd_is_file(path)) continue;   /* a folder, a dangling link: as folder:PATH */
            if (kind == 2) {
                rtd_err(err, errlen, "%s: unsupported image format (rrc reads PNG and JPEG)", path);
                goto done;
            }
            if (plist_add(l, img, names[i], c->cls, err, errlen)) goto done;
        }
        if (l->n == before) {
            rtd_err(err, errlen, "%s: no JPEG or PNG images in this class folder", img);
            goto done;
        }
        rtd_names_free(names, n);
        names = NULL;
        n = 0;
    }
    rc = 0;
done:
    rtd_names_free(names, n);
    free(path);
    free(img);
    return rc;
}

/* ---- tiny-imagenet: val/ ----------------------------------------------- */

typedef struct vent {
    const char *file;
    int32_t cls;
    int line;
} vent;

static int cmp_vent(const void *pa, const void *pb) {
    const vent *a = pa, *b = pb;
    int c = strcmp(a->file, b->file);
    return c ? c : (a->line > b->line) - (a->line < b->line);
}

static const vent *vent_find(const vent *v, size_t n, const char *file) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v[mid].file, file);
        if (c == 0) return &v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int name_listed(char **names, size_t n, const char *file) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(names[mid], file);
        if (c == 0) return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static int tiny_val(const char *dir, const wnids *w, plist *l, char *root, char *err, size_t errlen) {
    char *val = malloc(RTD_PATH_MAX), *ann = malloc(RTD_PATH_MAX), *path = malloc(RTD_PATH_MAX);
    char *text = NULL, **names = NULL;
    size_t nnames = 0, nv = 0, cap = 0, len;
    vent *v = NULL, *sorted = NULL;
    int rc = -1;
    if (!val || !ann || !path) {
        rtd_err(err, errlen, "%s: out of memory", dir);
        goto done;
    }
    if (rtd_join(val, RTD_PATH_MAX, dir, "val", err, errlen)) goto done;
    if (!rtd_is_dir(val)) {
        rtd_err(err, errlen, "%s: no such folder (tiny-imagenet's test split is val/)", val);
        goto done;
    }
    if (rtd_join(ann, RTD_PATH_MAX, val, "val_annotations.txt", err, errlen)) goto done;
    if (rtd_join(root, RTD_PATH_MAX, val, "images", err, errlen)) goto done;
    if (read_text(ann, &text, &len, err, errlen)) goto done;

    char *p = text, *end = text + len, *line;
    size_t ll;
    int lineno = 0;
    while (next_line(&p, end, &line, &ll)) {
        lineno++;
        if (ll == 0) continue;
        /* FILE \t WNID \t X0 \t Y0 \t X1 \t Y1 */
        char *f[6];
        size_t fl[6];
        int nf = 0;
        char *s = line, *e = line + ll;
        for (;;) {
            char *tab = memchr(s, '\t', (size_t)(e - s));
            char *fe = tab ? tab : e;
            if (nf < 6) {
                f[nf] = s;
                fl[nf] = (size_t)(fe - s);
            }
            nf++;
            if (!tab) break;
            *tab = 0;
            s = tab + 1;
        }
        int ok = nf == 6 && file_ok(f[0], fl[0]) && id_ok(f[1], fl[1]);
        for (int i = 2; ok && i < 6; i++) ok = uint_ok(f[i], fl[i]);
        if (!ok) {
            rtd_err(err, errlen, "%s: line %d: malformed (want FILE, WNID and 4 box numbers, tab-separated)", ann,
                    lineno);
            goto done;
        }
        const wkey *c = wnids_find(w, f[1]);
        if (!c) {
            rtd_err(err, errlen, "%s: line %d: class id %s is not in %s", ann, lineno, f[1], w->path);
            goto done;
        }
        if (nv == cap) {
            size_t ncap = cap ? 2 * cap : 1024;
            vent *nvv = realloc(v, ncap * sizeof *nvv);
            if (!nvv) {
                rtd_err(err, errlen, "%s: out of memory", ann);
                goto done;
            }
            v = nvv;
            cap = ncap;
        }
        v[nv++] = (vent){f[0], c->cls, lineno};
    }
    if (nv == 0) {
        rtd_err(err, errlen, "%s: no images listed", ann);
        goto done;
    }
    sorted = malloc(nv * sizeof *sorted);
    if (!sorted) {
        rtd_err(err, errlen, "%s: out of memory", ann);
        goto done;
    }
    memcpy(sorted, v, nv * sizeof *sorted);
    qsort(sorted, nv, sizeof *sorted, cmp_vent);
    for (size_t i = 1; i < nv; i++)
        if (!strcmp(sorted[i].file, sorted[i - 1].file)) {
            rtd_err(err, errlen, "%s: line %d: %s is listed again (first on line %d)", ann, sorted[i].line,
                    sorted[i].file, sorted[i - 1].line);
            goto done;
        }

    /* The annotations and val/images must match both ways. */
    if (!rtd_is_dir(root)) {
        rtd_err(err, errlen, "%s: no such folder (tiny-imagenet's val images)", root);
        goto done;
    }
    if (rtd_list_names(root, &names, &nnames, err, errlen)) goto done;
    for (size_t i = 0; i < nnames; i++) {
        int kind = rtd_image_kind(names[i]);
        if (kind == 0) continue;
        if (rtd_join(path, RTD_PATH_MAX, root, names[i], err, errlen)) goto done;
        if (!rtd_is_file(path)) continue;
        if (kind == 2) {
            rtd_err(err, errlen, "%s: unsupported image format (rrc reads PNG and JPEG)", path);
            goto done;
        }
        if (!vent_find(sorted, nv, names[i])) {
            rtd_err(err, errlen, "%s: not listed in %s", path, ann);
            goto done;
        }
    }
    for (size_t i = 0; i < nv; i++) {
        if (rtd_join(path, RTD_PATH_MAX, root, v[i].file, err, errlen)) goto done;
        if (!name_listed(names, nnames, v[i].file) || !rtd_is_file(path)) {
            rtd_err(err, errlen, "%s: missing (listed on line %d of %s)", path, v[i].line, ann);
            goto done;
        }
        if (plist_add(l, root, v[i].file, v[i].cls, err, errlen)) goto done;
    }
    rc = 0;
done:
    rtd_names_free(names, nnames);
    free(sorted);
    free(v);
    free(text);
    free(val);
    free(ann);
    free(path);
    return rc;
}

/* ---- front doors ------------------------------------------------------- */

int rtd_load_tiny_imagenet(const char *dir, rt_split split, rt_dataset *out, char *err, size_t errlen) {
    if (split == RT_SPLIT_UNLABELED) {
        rtd_err(err, errlen, "tiny-imagenet has no unlabeled split (its test/ images have no labels; TEST is val/)");
        return -1;
    }
    if (!rtd_is_dir(dir)) {
        rtd_err(err, errlen, "%s: no such folder", dir);
        return -1;
    }
    wnids w;
    plist l = {0};
    char *root = malloc(RTD_PATH_MAX);
    int rc = -1;
    if (!root) {
        rtd_err(err, errlen, "%s: out of memory", dir);
        return -1;
    }
    if (read_wnids(dir, &w, err, errlen)) goto done;
    if (split == RT_SPLIT_TRAIN ? tiny_train(dir, &w, &l, root, err, errlen) : tiny_val(dir, &w, &l, root, err, errlen))
        goto done;
    rc = decode_all("tiny-imagenet", root, &l, (int)w.n, out, err, errlen);
done:
    plist_free(&l);
    wnids_free(&w);
    free(root);
    return rc;
}

int rtd_load_slimagenet64(const char *dir, rt_split split, rt_dataset *out, char *err, size_t errlen) {
    if (rtd_load_image_folder("slimagenet64", dir, split, 1, TINY_SIDE, out, err, errlen)) return -1;
    rtd_set_norm(out, TINY_MEAN, TINY_STD);
    return 0;
}
