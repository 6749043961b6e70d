/*
** test_fuzz_regress.c: the libFuzzer targets' inputs as tests (README.md,
** "Fuzzing"). Every committed seed of fuzz/corpus/TARGET/ and every
** reproducer of a past finding in tests/fuzz_regress/TARGET/ goes once
** through the target's own harness code (fuzz/fuzz_TARGET.c, included
** here with RRC_FUZZ_NO_MAIN so that it stays compiling), i.e. through the
** real parser with the harness's checks (a refusal must come with a
** one-line message; an accepted input must be consistent). Seeds named
** "bad_*" must be refused, other seeds accepted, so the corpora stay
** meaningful; reproducers must be refused cleanly (with a message, no
** crash: `make asan` runs them under ASan and UBSan).
** Unlike the fuzz build, the spec front end runs with its real caps here.
*/
#include "test.h"

#define RRC_FUZZ_NO_MAIN 1
#include "../../fuzz/fuzz_cache_manifest.c"
#include "../../fuzz/fuzz_cifar.c"
#include "../../fuzz/fuzz_tiny.c"
#include "../../fuzz/fuzz_idx.c"
#include "../../fuzz/fuzz_image.c"
#include "../../fuzz/fuzz_program_json.c"
#include "../../fuzz/fuzz_safetensors.c"
#include "../../fuzz/fuzz_spec.c"

#include <fcntl.h>

/* One input through one harness: 0 accepted, nonzero refused. */
typedef int (*fuzz_one_fn)(const uint8_t *data, size_t size, char *err, size_t errlen);

static int one_spec(const uint8_t *data, size_t size, char *err, size_t errlen) {
    /* the front end prints a refused spec's errors on stderr: keep them
       out of the test log */
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    if (saved >= 0 && null >= 0) dup2(null, 2);
    int nerr = 0;
    int rc = fuzz_spec_one(data, size, &nerr);
    fflush(stderr);
    if (saved >= 0) {
        dup2(saved, 2);
        close(saved);
    }
    if (null >= 0) close(null);
    snprintf(err, errlen, "%d spec error(s)", nerr);
    return rc;
}

static int one_cache(const uint8_t *data, size_t size, char *err, size_t errlen) {
    snprintf(err, errlen, "manifest refused");
    return fuzz_cache_manifest_one(data, size);
}

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0, k;
    uint8_t *buf = malloc(cap);
    while (buf && (k = fread(buf + len, 1, cap - len, f)) > 0) {
        len += k;
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    fclose(f);
    *n = len;
    return buf;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every file of dir through one: expect 1 (seeds): "bad_*" files
   must be refused and the others accepted; expect 2 (reproducers): every
   file must be refused with a message. Returns the number of files (-1 if
   the folder is missing). */
static int run_dir(const char *dir, fuzz_one_fn one, int expect) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, name_cmp);
    for (int i = 0; i < n; i++) {
        char path[1024], err[1024] = "";
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t len = 0;
        uint8_t *data = read_all(path, &len);
        CHECKF(data != NULL, "%s: cannot read", path);
        if (data) {
            int rc = one(data, len, err, sizeof err);
            if (expect == 2)
                CHECKF(rc != 0 && err[0], "%s: not refused with a message", path);
            else if (strncmp(names[i], "bad_", 4) == 0)
                CHECKF(rc != 0, "%s: accepted, but a bad_ seed must be refused", path);
            else
                CHECKF(rc == 0, "%s: refused (%s), but a seed must load", path, err);
            free(data);
        }
        free(names[i]);
    }
    return n;
}

static void run_target(const char *target, fuzz_one_fn one) {
    char dir[256];
    snprintf(dir, sizeof dir, "fuzz/corpus/%s", target);
    int n = run_dir(dir, one, 1);
    CHECKF(n > 0, "%s: no seed corpus (run the tests from the repository root)", dir);
    snprintf(dir, sizeof dir, "tests/fuzz_regress/%s", target);
    run_dir(dir, one, 2);   /* may not exist: no findings for this target */
}

TEST(fuzz_seeds_spec) { run_target("fuzz_spec", one_spec); }
TEST(fuzz_seeds_idx) { run_target("fuzz_idx", fuzz_idx_one); }
TEST(fuzz_seeds_cifar) { run_target("fuzz_cifar", fuzz_cifar_one); }
TEST(fuzz_seeds_image) { run_target("fuzz_image", fuzz_image_one); }
TEST(fuzz_seeds_tiny) { run_target("fuzz_tiny", fuzz_tiny_one); }
TEST(fuzz_seeds_safetensors) { run_target("fuzz_safetensors", fuzz_safetensors_one); }
TEST(fuzz_seeds_program_json) { run_target("fuzz_program_json", fuzz_program_json_one); }
TEST(fuzz_seeds_cache_manifest) { run_target("fuzz_cache_manifest", one_cache); }
