/*
** test_reliability.c: rrc under failure (issue 18): a full disk or device
** is an error, never a silent loss; a helper process cannot hang a run;
** temporary files of killed writers are cleaned without being fooled by
** PID reuse; --resume refuses a run with other settings; flags are checked
** before anything is compiled; and a run killed with -9 at seeded random
** moments (and in the middle of checkpoint writes) resumes to exactly the
** metrics of an uninterrupted one.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rt_file.h"
#include "test.h"
#include "test_util.h"

extern char **environ;

#define SPEC "tests/specs/small_conv.lua"

/* Files in dir whose name holds ".tmp." */
static int count_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) n += strstr(de->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

TEST(write_full_device_is_an_error) {
    /* metrics.csv on a full device (/dev/full stands in for a full disk):
       the run fails naming the file, and writes no checkpoint past rows
       that were lost */
    const char *run = test_tmp_path("full_dev");
    char path[700], cmd[2048], *err = NULL;
    REQUIRE(mkdir(run, 0777) == 0);
    snprintf(path, sizeof path, "%s/metrics.csv", run);
    REQUIRE(symlink("/dev/full", path) == 0);
    snprintf(cmd, sizeof cmd, "%s train " SPEC " --data synthetic:240 --quiet --max-steps 3 --out %s", test_rrc(), run);
    int rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 1 && strstr(err, "metrics.csv: cannot write: No space left on device"), "exit %d: %s", rc, err);
    snprintf(path, sizeof path, "%s/last.safetensors", run);
    CHECK(!test_exists(path));
    free(err);
}

/* Runs `rrc ARGS` with a file size limit of 0 (every write to a regular
   file fails with EFBIG, as on a full disk); stderr goes through a pipe,
   which the limit does not touch. Returns the exit status; *text gets
   stderr. */
static int run_disk_full(const char *args, char **text) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "{ sh -c 'trap \"\" XFSZ; ulimit -f 0; exec %s %s'; echo \"rc=$?\"; } 2>&1 | cat", test_rrc(), args);
    int st = test_run(cmd, text, NULL);
    if (st != 0 || !*text) return -1;
    const char *r = strstr(*text, "rc=");
    return r ? atoi(r + 3) : -1;
}

TEST(write_full_disk_is_an_error) {
    char args[1200], *text = NULL;
    /* linear evaluation: the result file is not written, and says so */
    const char *lv = test_tmp_path("full_lv");
    snprintf(args, sizeof args, "lineval " SPEC " --data synthetic:240 --random-init --epochs 1 --out %s", lv);
    int rc = run_disk_full(args, &text);
    CHECKF(rc == 1 && strstr(text, "lineval_random.txt: cannot write") && strstr(text, "File too large") &&
               !strstr(text, "wrote"),
           "lineval on a full disk: exit %d: %s", rc, text);
    char path[700];
    snprintf(path, sizeof path, "%s/lineval_random.txt", lv);
    CHECK(!test_exists(path));
    CHECKF(count_tmp(lv) == 0, "%d temporary files left in %s", count_tmp(lv), lv);
    free(text);
    /* training: metrics.csv cannot be written */
    const char *tr = test_tmp_path("full_tr");
    snprintf(args, sizeof args, "train " SPEC " --data synthetic:240 --quiet --max-steps 2 --out %s", tr);
    rc = run_disk_full(args, &text);
    CHECKF(rc == 1 && strstr(text, "metrics.csv: cannot write: File too large"), "train on a full disk: exit %d: %s", rc, text);
    free(text);
}

TEST(helper_process_has_a_time_limit) {
    const char *sleeper[] = {"sleep", "30", NULL};
    CHECK(rt_run_bounded(sleeper, 0.2) == -2);
    const char *yes[] = {"true", NULL}, *no[] = {"false", NULL}, *none[] = {"rrc-no-such-program", NULL};
    CHECK(rt_run_bounded(yes, 10) == 0);
    CHECK(rt_run_bounded(no, 10) == 1);
    CHECK(rt_run_bounded(none, 10) == 127);
}

/* A PID that no process has now: a child that has exited and been reaped. */
static pid_t dead_pid(void) {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    waitpid(pid, NULL, 0);
    return pid;
}

static void touch(const char *dir, const char *name) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd >= 0) close(fd);
}

static bool has(const char *dir, const char *name) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return test_exists(path);
}

TEST(stale_temporary_files_are_removed) {
    const char *d = test_tmp_path("stale");
    REQUIRE(mkdir(d, 0777) == 0);
    char mine[4200], name[300];
    REQUIRE(rt_tmp_path(mine, sizeof mine, "last.safetensors"));
    const char *self_start = strrchr(mine, '-') + 1;
    touch(d, mine);                                                        /* a live writer's: kept */
    snprintf(name, sizeof name, "last.safetensors.tmp.%ld-%s", (long)dead_pid(), self_start);
    touch(d, name);                                                        /* a dead writer's: removed */
    char reused[300];
    snprintf(reused, sizeof reused, "metrics.csv.tmp.%ld-%llu", (long)getpid(), strtoull(self_start, NULL, 10) + 1);
    touch(d, reused);   /* this PID, but another start time: an earlier process that had this PID; removed */
    char legacy_dead[300], legacy_live[300];
    snprintf(legacy_dead, sizeof legacy_dead, "last.safetensors.tmp.%ld", (long)dead_pid());
    snprintf(legacy_live, sizeof legacy_live, "last.safetensors.tmp.%ld", (long)getppid());
    touch(d, legacy_dead);
    touch(d, legacy_live);
    touch(d, "notes.tmp.txt");        /* not a temporary name of rrc's */
    touch(d, "last.safetensors");
    CHECK(rt_clean_stale_tmp(d) == 3);
    CHECK(has(d, mine) && has(d, legacy_live) && has(d, "notes.tmp.txt") && has(d, "last.safetensors"));
    CHECK(!has(d, name) && !has(d, reused) && !has(d, legacy_dead));
    /* a training run cleans its run directory when it starts */
    touch(d, name);
    char cmd[2048], *err = NULL;
    snprintf(cmd, sizeof cmd, "%s train " SPEC " --data synthetic:240 --quiet --max-steps 1 --out %s", test_rrc(), d);
    int rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 0, "exit %d: %s", rc, err);
    CHECK(!has(d, name));
    CHECK(has(d, mine) && has(d, legacy_live));   /* their writers (this test, its parent) still run */
    free(err);
}

TEST(resume_refuses_other_settings) {
    const char *run = test_tmp_path("resume_settings");
    char cmd[2048], *err = NULL;
    snprintf(cmd, sizeof cmd, "%s train " SPEC " --data synthetic:240 --quiet --max-steps 5 --seed 3 --out %s", test_rrc(), run);
    int rc = test_run(cmd, NULL, &err);
    REQUIREF(rc == 0, "exit %d: %s", rc, err);
    free(err);
    struct { const char *args, *said; } cases[] = {
        {"--data synthetic:240 --seed 4", "was trained with --seed 3, this run has --seed 4"},
        {"--data synthetic:240 --seed 3 --batch 8", "was trained with --batch 12, this run has --batch 8"},
        {"--data synthetic:240 --seed 3 --K 4", "was trained with --K 3, this run has --K 4"},
        {"--data synthetic:240 --seed 3 --loss bce", "was trained with --loss focal, this run has --loss bce"},
        {"--data synthetic:480 --seed 3", "was trained with 240 training images, this run has 480 training images"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s train " SPEC " --quiet --max-steps 7 --resume %s %s", test_rrc(), run, cases[i].args);
        rc = test_run(cmd, NULL, &err);
        CHECKF(rc == 1 && strstr(err, cases[i].said) && strstr(err, "--resume-anyway"), "%s: exit %d: %s", cases[i].args, rc,
               err);
        free(err);
    }
    /* threads may change; --resume-anyway takes the new seed */
    snprintf(cmd, sizeof cmd, "%s train " SPEC " --data synthetic:240 --quiet --max-steps 2 --seed 3 --threads 1 --resume %s",
             test_rrc(), run);
    rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 0, "other --threads: exit %d: %s", rc, err);
    free(err);
    snprintf(cmd, sizeof cmd, "%s train --resume-anyway " SPEC " --data synthetic:240 --quiet --max-steps 2 --seed 4 --resume %s",
             test_rrc(), run);
    rc = test_run(cmd, NULL, &err);
    CHECKF(rc == 0, "--resume-anyway: exit %d: %s", rc, err);
    free(err);
}

TEST(flags_are_checked_before_compiling) {
    struct { const char *args, *said; } cases[] = {
        {"train " SPEC " --data synthetic:64 --max-steps 1 --bogus", "unknown flag '--bogus'"},
        {"train " SPEC " --data synthetic:64 --epochs 0", "--epochs must be an integer in [1, 100000] (got \"0\")"},
        {"train " SPEC " --data synthetic:64 --threads", "flag --threads needs a value"},
        {"train " SPEC " --data synthetic:64 --quiet=yes", "flag --quiet takes no value"},
        {"train " SPEC " --data synthetic:64 --engine interp", "--engine must be compiled, jit or aot (got \"interp\")"},
        {"lineval " SPEC " --data synthetic:64 --random-init --max-steps 3", "unknown flag '--max-steps'"},
        {"train " SPEC " --loss hinge", "--loss must be focal or bce (got \"hinge\")"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[2048], *err = NULL;
        snprintf(cmd, sizeof cmd, "%s %s", test_rrc(), cases[i].args);
        int rc = test_run(cmd, NULL, &err);
        CHECKF(rc == 1 && strstr(err, cases[i].said), "%s: exit %d: %s", cases[i].args, rc, err);
        /* nothing was compiled: rrc train says when it has compiled */
        CHECKF(!strstr(err, "rrc: compiled"), "%s: compiled before the flag error: %s", cases[i].args, err);
        free(err);
    }
}

/* ---- kill -9 ---- */

/* Starts rrc with argv (NULL-terminated, argv[0] unused), output to
   /dev/null, with RRC_TEST_KILL_IN_WRITE=kill_in_write when > 0. */
static pid_t start_rrc(const char *const *argv, int kill_in_write) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int n = 0;
    while (environ[n]) n++;
    char **env = calloc((size_t)n + 2, sizeof *env);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (strncmp(environ[i], "RRC_TEST_KILL_IN_WRITE=", 23) != 0) env[k++] = environ[i];
    char hook[64];
    if (kill_in_write > 0) {
        snprintf(hook, sizeof hook, "RRC_TEST_KILL_IN_WRITE=%d", kill_in_write);
        env[k++] = hook;
    }
    pid_t pid = -1;
    if (posix_spawn(&pid, test_rrc(), &fa, NULL, (char *const *)argv, env) != 0) pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    return pid;
}

/* metrics.csv without its timing columns (images_per_s, seconds), one
   string; NULL if unreadable. */
static char *metrics_without_times(const char *run) {
    char path[700], line[512];
    snprintf(path, sizeof path, "%s/metrics.csv", run);
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *s = malloc(cap);
    s[0] = 0;
    while (fgets(line, sizeof line, f)) {
        char *c = line;
        for (int i = 0; i < 6 && c; i++) c = strchr(c + 1, ',');   /* after neg_acc */
        if (c) *c = 0;
        size_t n = strlen(line);
        if (len + n + 2 > cap) s = realloc(s, cap *= 2);
        memcpy(s + len, line, n);
        len += n;
        s[len++] = '\n';
        s[len] = 0;
    }
    fclose(f);
    return s;
}

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

TEST(kill_9_then_resume_is_exact) {
    const char *a = test_tmp_path("kill_a"), *b = test_tmp_path("kill_b");
    const char *base[] = {"rrc", "train", SPEC, "--data", "synthetic:480", "--epochs", "6", "--quiet", "--out", NULL, NULL};
    /* uninterrupted, and how long it takes */
    const char *args[16];
    memcpy(args, base, sizeof base);
    args[9] = a;
    double t0 = seconds_now();
    pid_t pid = start_rrc(args, 0);
    REQUIRE(pid > 0);
    int st;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    REQUIREF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "uninterrupted run: status %d", st);
    double t_run = seconds_now() - t0;
    char *want = metrics_without_times(a);
    REQUIRE(want);

    /* killed again and again: at seeded random moments, and every third
       time halfway through a file write (the checkpoint's, mostly) */
    unsigned seed = 20261203;
    char ckpt[700];
    snprintf(ckpt, sizeof ckpt, "%s/last.safetensors", b);
    int kills = 0, in_write = 0, restarts = 0;
    for (int round = 0; round < 60 && (kills < 8 || in_write < 3); round++) {
        memcpy(args, base, sizeof base);
        bool resume = test_exists(ckpt);
        args[8] = resume ? "--resume" : "--out";
        args[9] = b;
        int hook = round % 3 == 2 ? 1 + (int)(rand_r(&seed) % 20) : 0;
        pid = start_rrc(args, hook);
        REQUIRE(pid > 0);
        if (!hook) {
            struct timespec nap;
            /* at most half a run: every kill lands before the run ends */
            double u = 0.5 * t_run * (double)rand_r(&seed) / RAND_MAX;
            nap.tv_sec = (time_t)u;
            nap.tv_nsec = (long)((u - (double)nap.tv_sec) * 1e9);
            nanosleep(&nap, NULL);
            kill(pid, SIGKILL);
        }
        REQUIRE(waitpid(pid, &st, 0) == pid);
        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
            kills++;
            in_write += hook > 0;
        } else {
            /* the run got to its end before the kill (late resumes are
               short): start it afresh, to be killed more */
            CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "round %d: status %d", round, st);
            unlink(ckpt);
            restarts++;
        }
    }
    /* then to its end */
    memcpy(args, base, sizeof base);
    args[8] = test_exists(ckpt) ? "--resume" : "--out";
    args[9] = b;
    pid = start_rrc(args, 0);
    REQUIRE(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "last resume: status %d", st);
    printf("    %d kills (%d inside a file write, %d runs ended first and were restarted), run of %.2f s\n", kills, in_write,
           restarts, t_run);
    CHECKF(kills >= 8 && in_write >= 3, "only %d kills, %d inside writes", kills, in_write);
    char *got = metrics_without_times(b);
    REQUIRE(got);
    if (strcmp(got, want) != 0) {
        const char *p = got, *q = want;
        int line = 1;
        while (*p && *p == *q) { if (*p == '\n') line++; p++; q++; }
        CHECKF(0, "metrics.csv differs from the uninterrupted run's at line %d: %.60s vs %.60s", line, p, q);
    }
    CHECKF(count_tmp(b) == 0, "%d temporary files left in %s", count_tmp(b), b);
    free(want);
    free(got);
}
