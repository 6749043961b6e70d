/*
** rt_safetensors.c: the safetensors reader and writer (see rt_safetensors.h
** for the format and the contract).
**
** What it is: a strict reader that validates the whole header before it
** allocates anything sized by the file, and an atomic writer whose output
** matches what the reference implementation (huggingface/safetensors)
** writes for the same tensors in the same order: compact JSON, tensor
** entries {"dtype","shape","data_offsets"}, "__metadata__" first when
** present, header padded with spaces to a multiple of 8 bytes.
**
** What it is not: a general JSON or tensor library. There is no byte
** swapping (the format is little-endian, and so is every host rrc targets:
** a big-endian build stops at the #error below), no mmap, no lazy loading;
** a file is read into one allocation and the tensors point into it.
**
** Reading is deliberately a little more lenient than the reference in two
** places that cannot make data ambiguous: gaps between tensors' data and
** bytes after the last tensor are allowed (overlaps are not), and unknown
** fields inside a tensor entry are ignored, as the reference's own parser
** does. Every other irregularity is an error, "PATH: problem", one line.
*/
#include "rt_safetensors.h"

#include "rt_file.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rt_safetensors.c copies tensor bytes as they are: it needs a little-endian host"
#endif
#endif

/* A header longer than this is not a header but a corrupt length field
   (the reference reader uses the same limit). */
#define ST_MAX_HEADER ((uint64_t)100 << 20)

/* Tensor data in a loaded file starts at this alignment, so callers may
   point SIMD code at it (the file itself only promises 8). */
#define ST_DATA_ALIGN 64

static const struct { const char *name; size_t size; } dtypes[] = {
    [RT_F32] = {"F32", 4}, [RT_F64] = {"F64", 8}, [RT_F16] = {"F16", 2},
    [RT_BF16] = {"BF16", 2}, [RT_I64] = {"I64", 8}, [RT_I32] = {"I32", 4},
    [RT_I16] = {"I16", 2}, [RT_I8] = {"I8", 1}, [RT_U8] = {"U8", 1},
    [RT_BOOL] = {"BOOL", 1},
};
#define NDTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

const char *rt_dtype_name(rt_dtype t) {
    return (int)t >= 0 && (int)t < NDTYPES ? dtypes[t].name : "?";
}

size_t rt_dtype_size(rt_dtype t) {
    return (int)t >= 0 && (int)t < NDTYPES ? dtypes[t].size : 0;
}

static bool dtype_parse(const char *s, rt_dtype *out) {
    for (int i = 0; i < NDTYPES; i++) {
        if (strcmp(s, dtypes[i].name) == 0) { *out = (rt_dtype)i; return true; }
    }
    return false;
}

int64_t rt_tensor_numel(const rt_tensor *t) {
    int64_t n = 1;                       /* rank 0: a scalar, one element */
    for (int i = 0; i < t->rank; i++) n *= t->shape[i];
    return n;
}

/* ---- messages ---------------------------------------------------------- */

/* Writes "PATH: <fmt>" into err and returns -1, so error paths read
   `return fail(...)`. */
__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t errlen, const char *path, const char *fmt, ...) {
    if (!err || errlen == 0) return -1;
    int k = snprintf(err, errlen, "%s: ", path ? path : "(null)");
    if (k >= 0 && (size_t)k < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* A name as it may appear in a one-line message: control characters
   become '?' and long names are cut, because names come from files that
   may be hostile. Returned by value; the array lives until the end of the
   full expression that called it, which is all a message needs. */
rt_shown rt_shown_name(const char *name) {
    rt_shown r;
    size_t i = 0;
    for (; name[i] && i < 96; i++) {
        unsigned char c = (unsigned char)name[i];
        r.s[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (name[i]) { memcpy(r.s + i, "...", 3); i += 3; }
    r.s[i] = 0;
    return r;
}

/* "[2, 3]" ("[]" for a scalar). */
typedef struct { char s[8 + RT_MAX_RANK * 22]; } ShapeText;
static ShapeText shape_text(int rank, const int64_t *shape) {
    ShapeText r;
    size_t k = 0;
    r.s[k++] = '[';
    for (int i = 0; i < rank; i++) {
        k += (size_t)snprintf(r.s + k, sizeof r.s - k, "%s%" PRId64, i ? ", " : "", shape[i]);
    }
    r.s[k++] = ']';
    r.s[k] = 0;
    return r;
}

/* numel * dtype size in bytes, or false when it does not fit in 63 bits
   (a shape no file could hold; also keeps the sum of sizes from wrapping). */
static bool byte_size(int rank, const int64_t *shape, size_t elsize, uint64_t *out) {
    uint64_t n = elsize;
    for (int i = 0; i < rank; i++) if (shape[i] == 0) { *out = 0; return true; }
    for (int i = 0; i < rank; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (n > (UINT64_MAX >> 1) / d) return false;
        n *= d;
    }
    *out = n;
    return true;
}

/* ---- reading ----------------------------------------------------------- */

/* One tensor entry of the header, validated; name points into the JSON. */
typedef struct Entry {
    const char *name;
    rt_dtype dtype;
    int rank;
    int64_t shape[RT_MAX_RANK];
    uint64_t begin, end;
} Entry;

/* Reads exactly n bytes at offset off. */
static int read_at(int fd, void *buf, uint64_t n, uint64_t off, const char *path, char *err, size_t errlen) {
    unsigned char *p = buf;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : (size_t)n;
        ssize_t got = pread(fd, p, chunk, (off_t)off);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return fail(err, errlen, path, "read error: %s", strerror(errno));
        if (got == 0) return fail(err, errlen, path, "file became shorter while being read");
        p += got;
        n -= (uint64_t)got;
        off += (uint64_t)got;
    }
    return 0;
}

static bool get_uint(json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static int parse_entry(const char *path, const char *name, json_t *v, uint64_t data_size,
                       Entry *e, char *err, size_t errlen) {
    e->name = name;
    if (!json_is_object(v))
        return fail(err, errlen, path, "tensor '%s': entry is not an object {dtype, shape, data_offsets}",
                    rt_shown_name(name).s);

    json_t *dt = json_object_get(v, "dtype");
    if (!json_is_string(dt))
        return fail(err, errlen, path, "tensor '%s': %s", rt_shown_name(name).s,
                    dt ? "dtype is not a string" : "no \"dtype\"");
    if (!dtype_parse(json_string_value(dt), &e->dtype))
        return fail(err, errlen, path,
                    "tensor '%s': unknown dtype '%s' (known: F32 F64 F16 BF16 I64 I32 I16 I8 U8 BOOL)",
                    rt_shown_name(name).s, rt_shown_name(json_string_value(dt)).s);

    json_t *sh = json_object_get(v, "shape");
    if (!json_is_array(sh))
        return fail(err, errlen, path, "tensor '%s': %s", rt_shown_name(name).s,
                    sh ? "shape is not an array" : "no \"shape\"");
    size_t rank = json_array_size(sh);
    if (rank > RT_MAX_RANK)
        return fail(err, errlen, path, "tensor '%s': rank %zu is over the limit of %d",
                    rt_shown_name(name).s, rank, RT_MAX_RANK);
    e->rank = (int)rank;
    for (size_t i = 0; i < rank; i++) {
        uint64_t d;
        if (!get_uint(json_array_get(sh, i), &d))
            return fail(err, errlen, path, "tensor '%s': shape[%zu] is not a non-negative integer",
                        rt_shown_name(name).s, i);
        e->shape[i] = (int64_t)d;
    }

    json_t *off = json_object_get(v, "data_offsets");
    if (!off) return fail(err, errlen, path, "tensor '%s': no \"data_offsets\"", rt_shown_name(name).s);
    if (!json_is_array(off) || json_array_size(off) != 2 ||
        !get_uint(json_array_get(off, 0), &e->begin) || !get_uint(json_array_get(off, 1), &e->end))
        return fail(err, errlen, path, "tensor '%s': data_offsets is not [begin, end] (non-negative integers)",
                    rt_shown_name(name).s);
    if (e->begin > e->end)
        return fail(err, errlen, path, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin",
                    rt_shown_name(name).s, e->begin, e->end);

    uint64_t nbytes;
    if (!byte_size(e->rank, e->shape, dtypes[e->dtype].size, &nbytes))
        return fail(err, errlen, path, "tensor '%s': shape %s is too large",
                    rt_shown_name(name).s, shape_text(e->rank, e->shape).s);
    if (e->end - e->begin != nbytes)
        return fail(err, errlen, path,
                    "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] do not match %s %s (%" PRIu64 " bytes)",
                    rt_shown_name(name).s, e->begin, e->end, dtypes[e->dtype].name,
                    shape_text(e->rank, e->shape).s, nbytes);
    if (e->end > data_size)
        return fail(err, errlen, path,
                    "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] run past the end of the data "
                    "(%" PRIu64 " bytes; truncated file?)",
                    rt_shown_name(name).s, e->begin, e->end, data_size);
    return 0;
}

/* File order: by data offset; ties (only possible for empty tensors) by
   end, then name, so the order never depends on qsort's whims. */
static int entry_cmp(const void *pa, const void *pb) {
    const Entry *a = pa, *b = pb;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return strcmp(a->name, b->name);
}

static size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

int rt_st_read(const char *path, rt_st_file *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    int rc = -1;
    char *hdr = NULL;
    json_t *root = NULL;
    Entry *ents = NULL;
    unsigned char *blob = NULL;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(err, errlen, path, "cannot open: %s", strerror(errno));

    struct stat st;
    if (fstat(fd, &st) != 0) { fail(err, errlen, path, "cannot stat: %s", strerror(errno)); goto done; }
    if (!S_ISREG(st.st_mode)) { fail(err, errlen, path, "not a regular file"); goto done; }
    uint64_t fsize = (uint64_t)st.st_size;
    if (fsize < 8) {
        fail(err, errlen, path, "truncated: %" PRIu64 " bytes, less than the 8-byte header length", fsize);
        goto done;
    }

    unsigned char lenb[8];
    if (read_at(fd, lenb, 8, 0, path, err, errlen)) goto done;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | lenb[i];
    /* The limit first: a huge length is garbage, not a truncated file. */
    if (hlen > ST_MAX_HEADER) {
        fail(err, errlen, path, "header length %" PRIu64 " is over the 100 MiB limit (not a safetensors file?)", hlen);
        goto done;
    }
    if (hlen > fsize - 8) {
        fail(err, errlen, path, "truncated: header says %" PRIu64 " bytes, file has %" PRIu64 " after the 8-byte length",
             hlen, fsize - 8);
        goto done;
    }
    uint64_t data_size = fsize - 8 - hlen;

    hdr = malloc(hlen ? (size_t)hlen : 1);
    if (!hdr) { fail(err, errlen, path, "out of memory for a %" PRIu64 "-byte header", hlen); goto done; }
    if (read_at(fd, hdr, hlen, 8, path, err, errlen)) goto done;

    json_error_t jerr;
    root = json_loadb(hdr, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* jansson quotes the offending token, which may hold raw control
           characters from the file; the message must stay one line. */
        for (char *c = jerr.text; *c; c++) if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
        fail(err, errlen, path, "header is not valid JSON: %s (header byte %d)", jerr.text, jerr.position);
        goto done;
    }
    if (!json_is_object(root)) { fail(err, errlen, path, "header is not a JSON object"); goto done; }

    /* Validate every entry and total the sizes of the strings to keep. */
    size_t nobj = json_object_size(root);
    ents = calloc(nobj ? nobj : 1, sizeof *ents);
    if (!ents) { fail(err, errlen, path, "out of memory"); goto done; }
    int nt = 0;
    json_t *meta = NULL;
    size_t strbytes = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) { fail(err, errlen, path, "__metadata__ is not an object"); goto done; }
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) {
                if (!json_is_string(mv)) {
                    fail(err, errlen, path, "__metadata__ '%s' is not a string", rt_shown_name(mk).s);
                    goto done;
                }
                strbytes += strlen(mk) + 1 + json_string_length(mv) + 1;
            }
            meta = val;
            continue;
        }
        if (parse_entry(path, key, val, data_size, &ents[nt], err, errlen)) goto done;
        strbytes += strlen(key) + 1;
        nt++;
    }

    qsort(ents, (size_t)nt, sizeof *ents, entry_cmp);
    /* Sorted by begin, a non-empty tensor overlaps an earlier one iff it
       begins before the furthest end seen so far. Empty tensors hold no
       bytes and overlap nothing. */
    const Entry *far = NULL;
    uint64_t data_used = 0;
    for (int i = 0; i < nt; i++) {
        const Entry *e = &ents[i];
        if (e->begin == e->end) continue;
        if (far && e->begin < far->end) {
            fail(err, errlen, path,
                 "tensors '%s' [%" PRIu64 ", %" PRIu64 "] and '%s' [%" PRIu64 ", %" PRIu64 "] overlap",
                 rt_shown_name(far->name).s, far->begin, far->end, rt_shown_name(e->name).s, e->begin, e->end);
            goto done;
        }
        if (!far || e->end > far->end) far = e;
        if (e->end > data_used) data_used = e->end;
    }

    /* One allocation: tensors, metadata pointers, strings, then the data
       (only up to the last tensor's end) at ST_DATA_ALIGN. */
    int nmeta = meta ? (int)json_object_size(meta) : 0;
    size_t off_keys = align_up((size_t)nt * sizeof(rt_tensor), sizeof(char *));
    size_t off_vals = off_keys + (size_t)nmeta * sizeof(char *);
    size_t off_strs = off_vals + (size_t)nmeta * sizeof(char *);
    size_t off_data = align_up(off_strs + strbytes, ST_DATA_ALIGN);
    if (data_used > SIZE_MAX - off_data - ST_DATA_ALIGN) {
        fail(err, errlen, path, "%" PRIu64 " bytes of data do not fit in memory", data_used);
        goto done;
    }
    /* Never 0 bytes: aligned_alloc(.., 0) may return NULL (a file with no
       tensors and no metadata is valid). */
    size_t total = align_up(off_data + (size_t)data_used + 1, ST_DATA_ALIGN);
    blob = aligned_alloc(ST_DATA_ALIGN, total);
    if (!blob) { fail(err, errlen, path, "out of memory for %zu bytes", total); goto done; }
    if (read_at(fd, blob + off_data, data_used, 8 + hlen, path, err, errlen)) goto done;

    rt_tensor *ts = (rt_tensor *)(void *)blob;
    char **mkeys = (char **)(void *)(blob + off_keys);
    char **mvals = (char **)(void *)(blob + off_vals);
    char *sp = (char *)blob + off_strs;
    for (int i = 0; i < nt; i++) {
        const Entry *e = &ents[i];
        size_t len = strlen(e->name) + 1;
        memcpy(sp, e->name, len);
        rt_tensor *t = &ts[i];
        memset(t, 0, sizeof *t);
        t->name = sp;
        t->dtype = e->dtype;
        t->rank = e->rank;
        memcpy(t->shape, e->shape, sizeof e->shape);
        t->data = blob + off_data + e->begin;
        t->nbytes = (size_t)(e->end - e->begin);
        sp += len;
    }
    if (meta) {
        int i = 0;
        const char *mk;
        json_t *mv;
        json_object_foreach(meta, mk, mv) {
            size_t kl = strlen(mk) + 1, vl = json_string_length(mv) + 1;
            mkeys[i] = memcpy(sp, mk, kl);
            sp += kl;
            mvals[i] = memcpy(sp, json_string_value(mv), vl);
            sp += vl;
            i++;
        }
    }

    out->tensors = ts;
    out->ntensors = nt;
    out->meta_keys = mkeys;
    out->meta_vals = mvals;
    out->nmeta = nmeta;
    out->blob_ = blob;
    blob = NULL;
    rc = 0;

done:
    close(fd);
    free(blob);
    free(ents);
    json_decref(root);
    free(hdr);
    return rc;
}

void rt_st_free(rt_st_file *f) {
    if (!f) return;
    free(f->blob_);
    memset(f, 0, sizeof *f);
}

const rt_tensor *rt_st_find(const rt_st_file *f, const char *name) {
    for (int i = 0; i < f->ntensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *rt_st_meta(const rt_st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

/* ---- conversion -------------------------------------------------------- */

/* Checks dtype and count shared by both conversions. */
static int check_float(const rt_tensor *t, int64_t n, const char *path, char *err, size_t errlen) {
    if (t->dtype != RT_F32 && t->dtype != RT_F64)
        return fail(err, errlen, path, "tensor '%s' has dtype %s, expected F32 or F64",
                    rt_shown_name(t->name).s, rt_dtype_name(t->dtype));
    int64_t have = rt_tensor_numel(t);
    if (have != n)
        return fail(err, errlen, path, "tensor '%s' has shape %s (%" PRId64 " elements), expected %" PRId64 " elements",
                    rt_shown_name(t->name).s, shape_text(t->rank, t->shape).s, have, n);
    if (t->nbytes != (size_t)n * rt_dtype_size(t->dtype))
        return fail(err, errlen, path, "tensor '%s': %zu bytes of data for %s %s",
                    rt_shown_name(t->name).s, t->nbytes, rt_dtype_name(t->dtype), shape_text(t->rank, t->shape).s);
    return 0;
}

/* Element loads go through memcpy: file data need not be aligned for the
   caller's type (a tensor built by hand may point anywhere). */
int rt_tensor_to_f32(const rt_tensor *t, float *dst, int64_t n, const char *path, char *err, size_t errlen) {
    if (check_float(t, n, path, err, errlen)) return -1;
    const unsigned char *p = t->data;
    if (t->dtype == RT_F32) {
        if (n) memcpy(dst, p, (size_t)n * sizeof(float));
    } else {
        for (int64_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, p + (size_t)i * sizeof v, sizeof v);
            dst[i] = (float)v;
        }
    }
    return 0;
}

int rt_tensor_to_f64(const rt_tensor *t, double *dst, int64_t n, const char *path, char *err, size_t errlen) {
    if (check_float(t, n, path, err, errlen)) return -1;
    const unsigned char *p = t->data;
    if (t->dtype == RT_F64) {
        if (n) memcpy(dst, p, (size_t)n * sizeof(double));
    } else {
        for (int64_t i = 0; i < n; i++) {
            float v;
            memcpy(&v, p + (size_t)i * sizeof v, sizeof v);
            dst[i] = v;
        }
    }
    return 0;
}

/* ---- writing ----------------------------------------------------------- */

static int strp_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first name that appears twice in names[0..n), or NULL. */
static const char *find_duplicate(const char *const *names, int n) {
    if (n < 2) return NULL;
    const char **s = malloc((size_t)n * sizeof *s);
    if (!s) return NULL;   /* the JSON object would still refuse a duplicate */
    memcpy(s, names, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, strp_cmp);
    const char *dup = NULL;
    for (int i = 1; i < n && !dup; i++) if (strcmp(s[i - 1], s[i]) == 0) dup = s[i];
    free(s);
    return dup;
}

/* Checks the arguments and builds the header object (NULL after an error). */
static json_t *build_header(const char *path, const rt_tensor *tensors, int n,
                            const char *const *meta_keys, const char *const *meta_vals, int nmeta,
                            char *err, size_t errlen) {
    if (n < 0 || nmeta < 0 || (n > 0 && !tensors) || (nmeta > 0 && (!meta_keys || !meta_vals))) {
        fail(err, errlen, path, "invalid arguments to rt_st_write (%d tensors, %d metadata pairs)", n, nmeta);
        return NULL;
    }
    for (int i = 0; i < nmeta; i++) {
        if (!meta_keys[i] || !meta_vals[i]) {
            fail(err, errlen, path, "metadata pair %d has a NULL key or value", i);
            return NULL;
        }
    }
    const char *dup = find_duplicate(meta_keys, nmeta);
    if (dup) { fail(err, errlen, path, "metadata key '%s' appears twice", rt_shown_name(dup).s); return NULL; }

    const char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
    if (!names) { fail(err, errlen, path, "out of memory"); return NULL; }
    for (int i = 0; i < n; i++) names[i] = tensors[i].name ? tensors[i].name : "";
    dup = find_duplicate(names, n);
    free(names);
    if (dup) { fail(err, errlen, path, "tensor name '%s' appears twice", rt_shown_name(dup).s); return NULL; }

    json_t *root = json_object();
    if (!root) { fail(err, errlen, path, "out of memory"); return NULL; }
    /* __metadata__ first, then tensors in the caller's order: insertion
       order is dump order (JSON_PRESERVE_ORDER below). */
    if (nmeta > 0) {
        json_t *m = json_object();
        if (!m || json_object_set_new(root, "__metadata__", m)) {
            fail(err, errlen, path, "out of memory");
            goto fail;
        }
        for (int i = 0; i < nmeta; i++) {
            /* json_string and the key both refuse invalid UTF-8. */
            if (json_object_set_new(m, meta_keys[i], json_string(meta_vals[i]))) {
                fail(err, errlen, path, "metadata '%s' is not valid UTF-8", rt_shown_name(meta_keys[i]).s);
                goto fail;
            }
        }
    }

    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const rt_tensor *t = &tensors[i];
        if (!t->name) { fail(err, errlen, path, "tensor %d has no name", i); goto fail; }
        if (strcmp(t->name, "__metadata__") == 0) {
            fail(err, errlen, path, "'__metadata__' cannot be a tensor name");
            goto fail;
        }
        if (rt_dtype_size(t->dtype) == 0) {
            fail(err, errlen, path, "tensor '%s': invalid dtype %d", rt_shown_name(t->name).s, (int)t->dtype);
            goto fail;
        }
        if (t->rank < 0 || t->rank > RT_MAX_RANK) {
            fail(err, errlen, path, "tensor '%s': rank %d is not in 0..%d", rt_shown_name(t->name).s, t->rank, RT_MAX_RANK);
            goto fail;
        }
        for (int d = 0; d < t->rank; d++) {
            if (t->shape[d] < 0) {
                fail(err, errlen, path, "tensor '%s': negative dimension in shape %s",
                     rt_shown_name(t->name).s, shape_text(t->rank, t->shape).s);
                goto fail;
            }
        }
        /* The data must be exactly the dense row-major tensor: the format
           has no strides, so anything else would be misread. */
        uint64_t nbytes = 0;
        if (!byte_size(t->rank, t->shape, rt_dtype_size(t->dtype), &nbytes)) {
            fail(err, errlen, path, "tensor '%s': shape %s is too large",
                 rt_shown_name(t->name).s, shape_text(t->rank, t->shape).s);
            goto fail;
        }
        if (nbytes != t->nbytes) {
            fail(err, errlen, path, "tensor '%s': %zu bytes of data, but %s %s is %" PRIu64 " bytes",
                 rt_shown_name(t->name).s, t->nbytes, rt_dtype_name(t->dtype), shape_text(t->rank, t->shape).s, nbytes);
            goto fail;
        }
        if (nbytes > 0 && !t->data) {
            fail(err, errlen, path, "tensor '%s' has no data", rt_shown_name(t->name).s);
            goto fail;
        }
        if (nbytes > (uint64_t)INT64_MAX - offset) {
            fail(err, errlen, path, "tensors are too large in total");
            goto fail;
        }
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        int bad = !e || !shape || !offs;
        for (int d = 0; d < t->rank && !bad; d++) bad |= json_array_append_new(shape, json_integer(t->shape[d]));
        if (!bad) bad |= json_array_append_new(offs, json_integer((json_int_t)offset));
        if (!bad) bad |= json_array_append_new(offs, json_integer((json_int_t)(offset + nbytes)));
        if (!bad) bad |= json_object_set_new(e, "dtype", json_string(rt_dtype_name(t->dtype)));
        if (!bad) { bad |= json_object_set_new(e, "shape", shape); shape = NULL; }
        if (!bad) { bad |= json_object_set_new(e, "data_offsets", offs); offs = NULL; }
        json_decref(shape);
        json_decref(offs);
        if (bad) {
            json_decref(e);
            fail(err, errlen, path, "out of memory");
            goto fail;
        }
        /* set_new takes e even when it fails (e.g. a name that is not UTF-8). */
        if (json_object_set_new(root, t->name, e)) {
            fail(err, errlen, path, "tensor name '%s' is not valid UTF-8", rt_shown_name(t->name).s);
            goto fail;
        }
        offset += nbytes;
    }
    return root;

fail:
    json_decref(root);
    return NULL;
}

int rt_st_write(const char *path, const rt_tensor *tensors, int n,
                const char *const *meta_keys, const char *const *meta_vals, int nmeta,
                char *err, size_t errlen) {
    json_t *root = build_header(path, tensors, n, meta_keys, meta_vals, nmeta, err, errlen);
    if (!root) return -1;
    char *hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!hdr) return fail(err, errlen, path, "cannot encode the header");

    /* Spaces up to a multiple of 8, as the reference writer pads, so the
       data area starts 8-byte aligned in the file. */
    size_t hlen = strlen(hdr);
    size_t padded = align_up(hlen, 8);
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";

    rt_atomic a;
    int rc = -1;
    if (rt_atomic_open(&a, path, err, errlen) != 0) goto out;
    bool ok = rt_atomic_write(&a, lenb, 8, err, errlen) == 0 && rt_atomic_write(&a, hdr, hlen, err, errlen) == 0 &&
              rt_atomic_write(&a, spaces, padded - hlen, err, errlen) == 0;
    for (int i = 0; ok && i < n; i++) ok = rt_atomic_write(&a, tensors[i].data, tensors[i].nbytes, err, errlen) == 0;
    if (ok) rc = rt_atomic_commit(&a, err, errlen);

out:
    free(hdr);
    return rc;
}
