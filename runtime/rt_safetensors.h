/*
** rt_safetensors.h: reading and writing safetensors files
** (https://github.com/huggingface/safetensors: 8-byte little-endian header
** length N, N bytes of JSON header {"name": {"dtype", "shape",
** "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the raw
** little-endian data). Used for goldens, checkpoints and `rrc grad` I/O.
**
** Reading validates everything before allocating or trusting anything:
** header length against the file size, JSON syntax, each entry's dtype,
** shape and offsets (inside the data area, matching dtype x shape, no
** overlap). Writing goes to "PATH.tmp.<pid>", is fsynced and renamed, so a
** crash never leaves a half-written file under the final name.
** Errors are one line, "PATH: problem", stored in the caller's buffer.
*/
#ifndef RT_SAFETENSORS_H
#define RT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define RT_MAX_RANK 8

typedef enum rt_dtype {
    RT_F32, RT_F64, RT_F16, RT_BF16, RT_I64, RT_I32, RT_I16, RT_I8, RT_U8, RT_BOOL,
} rt_dtype;

const char *rt_dtype_name(rt_dtype t);   /* "F32", ... as in the format */
size_t rt_dtype_size(rt_dtype t);

typedef struct rt_tensor {
    const char *name;
    rt_dtype dtype;
    int rank;
    int64_t shape[RT_MAX_RANK];
    const void *data;      /* nbytes of little-endian data */
    size_t nbytes;
} rt_tensor;

typedef struct rt_st_file {
    rt_tensor *tensors;    /* in file order of their data offsets */
    int ntensors;
    char **meta_keys, **meta_vals;
    int nmeta;
    void *blob_;           /* owned storage */
} rt_st_file;

/* Reads and validates PATH. Returns 0, or -1 with a one-line message in err. */
int rt_st_read(const char *path, rt_st_file *out, char *err, size_t errlen);
void rt_st_free(rt_st_file *f);
const rt_tensor *rt_st_find(const rt_st_file *f, const char *name);
const char *rt_st_meta(const rt_st_file *f, const char *key);   /* NULL if absent */
int64_t rt_tensor_numel(const rt_tensor *t);

/* Copies a F32 or F64 tensor into dst (n elements), converting. Returns 0,
   or -1 with "PATH: tensor 'name': problem" in err when the dtype is not a
   float type or the element count differs. `path` is only for the message. */
int rt_tensor_to_f32(const rt_tensor *t, float *dst, int64_t n, const char *path, char *err, size_t errlen);
int rt_tensor_to_f64(const rt_tensor *t, double *dst, int64_t n, const char *path, char *err, size_t errlen);

/* A name from a file made printable for a one-line message: control
   characters become '?', names longer than 96 characters are cut ("..."). */
typedef struct rt_shown { char s[104]; } rt_shown;
rt_shown rt_shown_name(const char *name);

/* Writes the tensors (in the given order) and metadata pairs atomically.
   Names must be unique. Returns 0, or -1 with a message in err. */
int rt_st_write(const char *path, const rt_tensor *tensors, int n,
                const char *const *meta_keys, const char *const *meta_vals, int nmeta,
                char *err, size_t errlen);

#endif
