/*
** rt_file.c: checked and atomic writes, stale temporary files, bounded
** helper processes (see rt_file.h).
*/
#include "rt_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---- temporary names ---- */

/* Field 22 of /proc/PID/stat: the process's start time in clock ticks
   since boot; 0 when the process does not exist (or /proc is absent). */
static unsigned long long proc_start(long pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    /* the command name (field 2) may hold spaces and ')': fields are
       counted from its last ')' */
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    p++;
    for (int field = 3; field < 22 && p; field++) p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

bool rt_tmp_path(char *buf, size_t n, const char *path) {
    /* per process: a forked child has a start time of its own */
    static long self_pid;
    static unsigned long long self_start;
    if (self_pid != (long)getpid()) {
        self_pid = (long)getpid();
        self_start = proc_start(self_pid);
    }
    int k = snprintf(buf, n, "%s.tmp.%ld-%llu", path, (long)getpid(), self_start);
    return k > 0 && (size_t)k < n;
}

/* Parses the suffix after ".tmp.": "PID-START" or "PID". */
static bool parse_tmp_suffix(const char *s, long *pid, unsigned long long *start, bool *has_start) {
    char *end;
    errno = 0;
    long p = strtol(s, &end, 10);
    if (errno || end == s || p <= 0 || *s == '-' || *s == '+') return false;
    *pid = p;
    *has_start = false;
    if (*end == 0) return true;
    if (*end != '-' || end[1] < '0' || end[1] > '9') return false;
    const char *t = end + 1;
    *start = strtoull(t, &end, 10);
    if (errno || *end) return false;
    *has_start = true;
    return true;
}

int rt_clean_stale_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *tag = NULL;
        for (const char *p = strstr(de->d_name, ".tmp."); p; p = strstr(p + 1, ".tmp.")) tag = p;
        if (!tag || tag == de->d_name) continue;
        long pid;
        unsigned long long start = 0;
        bool has_start;
        if (!parse_tmp_suffix(tag + 5, &pid, &start, &has_start)) continue;
        bool alive;
        if (has_start) {
            alive = proc_start(pid) == start;
        } else {
            alive = kill((pid_t)pid, 0) == 0 || errno == EPERM;
        }
        if (alive) continue;
        char path[4400];
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) continue;
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && unlink(path) == 0) removed++;
    }
    closedir(d);
    return removed;
}

/* ---- atomic files ---- */

static int fail_errno(char *err, size_t errlen, const char *path, const char *what, const char *tmp) {
    int e = errno;
    if (err && errlen) snprintf(err, errlen, "%s: cannot %s %s: %s", path, what, tmp, strerror(e));
    errno = e;
    return -1;
}

void rt_sync_parent_dir(const char *path) {
    char dir[4200];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int rt_atomic_open(rt_atomic *a, const char *path, char *err, size_t errlen) {
    a->path = path;
    a->fd = -1;
    if (!rt_tmp_path(a->tmp, sizeof a->tmp, path)) {
        if (err && errlen) snprintf(err, errlen, "%s: the file name is too long", path);
        return -1;
    }
    a->fd = open(a->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (a->fd < 0) return fail_errno(err, errlen, path, "create", a->tmp);
    return 0;
}

void rt_atomic_abort(rt_atomic *a) {
    if (a->fd >= 0) close(a->fd);
    if (a->fd != -2) unlink(a->tmp);
    a->fd = -2;
}

/* RRC_TEST_KILL_IN_WRITE=N (tests only): the process kills itself with
   SIGKILL in its Nth rt_atomic_write, after half of the data, as a crash
   in the middle of a checkpoint would. */
static void test_kill_hook(rt_atomic *a, const void *data, size_t len) {
    static int calls, at = -1;
    if (at < 0) {
        const char *e = getenv("RRC_TEST_KILL_IN_WRITE");
        at = e ? atoi(e) : 0;
    }
    if (at <= 0 || ++calls != at) return;
    if (write(a->fd, data, len / 2) < 0) {}
    raise(SIGKILL);
}

int rt_atomic_write(rt_atomic *a, const void *data, size_t len, char *err, size_t errlen) {
    test_kill_hook(a, data, len);
    const unsigned char *p = data;
    while (len > 0) {
        size_t chunk = len > ((size_t)1 << 30) ? ((size_t)1 << 30) : len;
        ssize_t w = write(a->fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = ENOSPC;
            fail_errno(err, errlen, a->path, "write", a->tmp);
            int e = errno;
            rt_atomic_abort(a);
            errno = e;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int rt_atomic_commit(rt_atomic *a, char *err, size_t errlen) {
    const char *what = NULL;
    if (fsync(a->fd) != 0) what = "sync";
    /* close can report a deferred write error (NFS) */
    int fd = a->fd;
    a->fd = -1;
    if (close(fd) != 0 && !what) what = "write";
    if (!what && rename(a->tmp, a->path) != 0) what = "rename into place";
    if (what) {
        fail_errno(err, errlen, a->path, what, a->tmp);
        int e = errno;
        rt_atomic_abort(a);
        errno = e;
        return -1;
    }
    a->fd = -2;
    rt_sync_parent_dir(a->path);
    return 0;
}

int rt_write_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen) {
    rt_atomic a;
    if (rt_atomic_open(&a, path, err, errlen) != 0 || rt_atomic_write(&a, data, len, err, errlen) != 0) return -1;
    return rt_atomic_commit(&a, err, errlen);
}

/* ---- checked streams ---- */

int rt_flush_checked(FILE *f, const char *path, char *err, size_t errlen) {
    if (fflush(f) == 0 && !ferror(f)) return 0;
    int e = errno ? errno : EIO;
    if (err && errlen) snprintf(err, errlen, "%s: cannot write: %s", path, strerror(e));
    return -1;
}

int rt_close_checked(FILE *f, const char *path, char *err, size_t errlen) {
    errno = 0;
    int rc = rt_flush_checked(f, path, err, errlen);
    if (fclose(f) != 0 && rc == 0) {
        int e = errno ? errno : EIO;
        if (err && errlen) snprintf(err, errlen, "%s: cannot write: %s", path, strerror(e));
        rc = -1;
    }
    return rc;
}

/* ---- helper processes ---- */

int rt_run_bounded(const char *const argv[], double seconds) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    /* its own process group, so that the time limit also ends whatever it
       started */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, &at, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) return 127;
    struct timespec t0, t, nap = {0, 5 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int status;
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        if (w < 0 && errno != EINTR) return 127;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec) > seconds) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
            return -2;
        }
        nanosleep(&nap, NULL);
    }
}
