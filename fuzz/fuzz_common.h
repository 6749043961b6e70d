/*
** fuzz_common.h: what the libFuzzer targets of fuzz/ share: a private
** temporary folder per process and target (/dev/shm/rrc-fuzz-PID/TARGET,
** else under /tmp, or $RRC_FUZZ_TMPDIR; removed at exit) for the parsers that take a path, writing a fuzz input
** there, and the check of a refusal's message.
** Header-only (static functions): each target is one C file plus this.
*/
#ifndef RRC_FUZZ_COMMON_H
#define RRC_FUZZ_COMMON_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char fuzz_dir_buf[256];

/* Removes dir and what it holds, down to depth levels of sub-folders. */
__attribute__((unused)) static void fuzz_rm_tree(const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (depth > 0) fuzz_rm_tree(p, depth - 1);
        } else {
            unlink(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

__attribute__((unused)) static void fuzz_cleanup(void) {
    if (fuzz_dir_buf[0]) fuzz_rm_tree(fuzz_dir_buf, 6);   /* fuzz_tiny's TARGET/train/WNID/images/FILE */
}

/* The target's own folder, created on first use: TARGET under the
   process's folder (several targets share a process in the tests). */
__attribute__((unused)) static const char *fuzz_dir(const char *target) {
    static char dirs[8][320];
    static int ndirs;
    if (!fuzz_dir_buf[0]) {
        /* tmpfs when there is one: on the ext4 root (mounted with
           `discard`) rewriting a file costs ~0.5 ms, on /dev/shm ~10 us */
        const char *base = getenv("RRC_FUZZ_TMPDIR");
        if (!base || !*base) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fuzz_dir_buf, sizeof fuzz_dir_buf, "%s/rrc-fuzz-%ld", base, (long)getpid());
        fuzz_rm_tree(fuzz_dir_buf, 6);   /* a stale one from a recycled pid */
        if (mkdir(fuzz_dir_buf, 0700) != 0) {
            perror(fuzz_dir_buf);
            abort();
        }
        atexit(fuzz_cleanup);
    }
    char want[320];
    snprintf(want, sizeof want, "%s/%s", fuzz_dir_buf, target);
    for (int i = 0; i < ndirs; i++)
        if (!strcmp(dirs[i], want)) return dirs[i];
    if (ndirs == 8) abort();
    if (mkdir(want, 0700) != 0) {
        perror(want);
        abort();
    }
    memcpy(dirs[ndirs], want, sizeof want);
    return dirs[ndirs++];
}

/* dir/name into a static buffer (one of 8, reused in turn). */
__attribute__((unused)) static const char *fuzz_path(const char *dir, const char *name) {
    static char buf[8][1400];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

__attribute__((unused)) static void fuzz_write(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        abort();
    }
    if (n && fwrite(data, 1, n, f) != n) abort();
    if (fclose(f) != 0) abort();
}

/* A parser that failed must have said why, on one line: a failure with an
   empty or multi-line message is a finding too (abort). */
__attribute__((unused)) static void fuzz_check_err(int rc, const char *err) {
    if (rc == 0) return;
    if (!err[0] || strchr(err, '\n')) {
        fprintf(stderr, "fuzz: parser failed with a bad message: \"%s\"\n", err);
        abort();
    }
}

#endif
