/*
** fuzz_safetensors.c: libFuzzer target of the safetensors reader
** (rt_st_read in runtime/rt_safetensors.c).
**
** Input: the file. When it is accepted, every tensor must lie inside the
** loaded data with nbytes = numel x dtype size, be found by its name, and
** F32/F64 tensors are converted (every byte read), as goldens, checkpoints
** and `rrc grad` use them.
*/
#include "fuzz_common.h"

#include "rt_safetensors.h"

static int fuzz_safetensors_one(const uint8_t *data, size_t size, char *err, size_t errlen) {
    const char *path = fuzz_path(fuzz_dir("safetensors"), "file.safetensors");
    fuzz_write(path, data, size);
    rt_st_file f;
    memset(&f, 0, sizeof f);
    err[0] = 0;
    int rc = rt_st_read(path, &f, err, errlen);
    fuzz_check_err(rc, err);
    if (rc != 0) return rc;
    if (f.ntensors < 0 || f.nmeta < 0) abort();
    for (int i = 0; i < f.ntensors; i++) {
        const rt_tensor *t = &f.tensors[i];
        if (t->rank < 0 || t->rank > RT_MAX_RANK) abort();
        int64_t n = rt_tensor_numel(t);
        if (n < 0 || (uint64_t)n * rt_dtype_size(t->dtype) != t->nbytes) abort();
        if (rt_st_find(&f, t->name) == NULL) abort();
        (void)rt_shown_name(t->name);
        if (t->nbytes) {
            /* every byte of the data must be readable */
            const volatile uint8_t *p = t->data;
            (void)p[0];
            (void)p[t->nbytes - 1];
        }
        if ((t->dtype == RT_F32 || t->dtype == RT_F64) && n <= (1 << 16)) {
            float *fv = malloc((size_t)(n ? n : 1) * sizeof *fv);
            double *dv = malloc((size_t)(n ? n : 1) * sizeof *dv);
            if (!fv || !dv) abort();
            char e2[256];
            if (rt_tensor_to_f32(t, fv, n, path, e2, sizeof e2) != 0) abort();
            if (rt_tensor_to_f64(t, dv, n, path, e2, sizeof e2) != 0) abort();
            if (rt_tensor_to_f32(t, fv, n + 1, path, e2, sizeof e2) == 0) abort();
            free(fv);
            free(dv);
        }
    }
    for (int i = 0; i < f.nmeta; i++)
        if (rt_st_meta(&f, f.meta_keys[i]) == NULL) abort();
    rt_st_free(&f);
    return 0;
}

#ifndef RRC_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024];
    fuzz_safetensors_one(data, size, err, sizeof err);
    return 0;
}
#endif
