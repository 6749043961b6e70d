/*
** rt_file.h: files written so that no failure is silent and no reader ever
** sees half a file.
**
** Every file rrc writes goes through one of two ways:
**  - whole files (checkpoints, result files, plots' scripts, cache
**    entries) are written under a temporary name in the same directory,
**    checked, synced and renamed into place: rt_write_atomic(), or
**    rt_tmp_path() + rename for writers that stream (safetensors, PNG);
**  - append-only logs (metrics.csv) are checked at every row and flush:
**    rt_close_checked().
**
** Temporary names are PATH.tmp.PID-START, START being the writer's start
** time in clock ticks since boot (/proc/PID/stat). A writer killed with -9
** leaves its temporary file behind; rt_clean_stale_tmp() removes those of
** processes that no longer run. A PID alone would not do: after a reboot
** or a wrap-around another process may hold the same PID, and the file
** would be kept forever (or a live writer's file removed).
**
** rt_run_bounded() runs a helper program (gnuplot) with a time limit: a
** plot is never worth a hang.
*/
#ifndef RT_FILE_H
#define RT_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* "PATH.tmp.PID-START" into buf (n bytes). Returns false when it does not
   fit. */
bool rt_tmp_path(char *buf, size_t n, const char *path);

/* A file being written atomically: created under its temporary name by
   rt_atomic_open, filled by rt_atomic_write, then either renamed into place
   by rt_atomic_commit (after fsync and a checked close) or removed by
   rt_atomic_abort. Every failure leaves PATH as it was and puts
   "PATH: problem" in err; after one, the file is already aborted. */
typedef struct rt_atomic {
    const char *path;
    int fd;
    char tmp[4200];
} rt_atomic;

int rt_atomic_open(rt_atomic *a, const char *path, char *err, size_t errlen);
int rt_atomic_write(rt_atomic *a, const void *data, size_t len, char *err, size_t errlen);
int rt_atomic_commit(rt_atomic *a, char *err, size_t errlen);
void rt_atomic_abort(rt_atomic *a);

/* The three in one: len bytes of data as PATH. Returns 0 or -1. */
int rt_write_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen);

/* Makes a rename in PATH's directory durable (best effort: not every file
   system lets a directory be opened or synced). */
void rt_sync_parent_dir(const char *path);

/* Flushes and closes f (never NULL), reporting any write error that
   happened on it since it was opened (fprintf's are buffered: a full disk
   shows at the flush, or only in ferror). Returns 0, or -1 with
   "PATH: cannot write: reason" in err. f is closed either way. */
int rt_close_checked(FILE *f, const char *path, char *err, size_t errlen);

/* Flushes f and reports an error on it so far, without closing it. */
int rt_flush_checked(FILE *f, const char *path, char *err, size_t errlen);

/* Removes DIR's temporary files (NAME.tmp.PID-START, and the older
   NAME.tmp.PID) whose writer no longer runs. Returns how many it removed. */
int rt_clean_stale_tmp(const char *dir);

/* Tests only: RRC_TEST_KILL_IN_WRITE=N in the environment makes the process
   kill itself (SIGKILL) halfway through its Nth rt_atomic_write. */

/* Runs argv[0] (looked up in PATH) with argv, stdin from /dev/null and
   stdout/stderr to /dev/null, killing its process group after `seconds`.
   Returns its exit status, 127 when it cannot be started, or -2 on the
   time limit. */
int rt_run_bounded(const char *const argv[], double seconds);

#endif
