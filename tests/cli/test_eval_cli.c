/*
** test_eval_cli.c: rrc knn, rrc retrieval and the kNN monitor of rrc train
** as a user runs them (the numbers themselves are tested against a float64
** brute force in tests/runtime/test_eval.c): reports written with every
** figure, the monitor's last figure equal to `rrc knn` of the run's final
** checkpoint, and the command lines' errors.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "test.h"
#include "test_util.h"

#define SPEC "tests/specs/small_conv.lua"

/* The value of KEY in a "key value" report (static buffer), or NULL. */
static const char *value_of(const char *path, const char *key) {
    static char val[256];
    char *text = test_read_file(path, NULL);
    if (!text) return NULL;
    const char *hit = NULL;
    size_t n = strlen(key);
    for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, key, n) && l[n] == ' ') {
            snprintf(val, sizeof val, "%.*s", (int)strcspn(l + n + 1, "\n"), l + n + 1);
            hit = val;
            break;
        }
    free(text);
    return hit;
}

static int run(const char *args, char **out, char **err) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s", test_rrc(), args);
    return test_run(cmd, out, err);
}

TEST(cli_knn_and_retrieval_reports) {
    const char *dir = test_tmp_path("eval_random");
    char args[1024], path[1100], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "knn " SPEC " --data synthetic:200 --random-init --out %s --neighbours 20 --temperature 0.1", dir);
    int rc = run(args, &out, &err);
    CHECKF(rc == 0, "knn: exit %d: %s", rc, err);
    CHECKF(out && strstr(out, "kNN of small_conv (random init)") && strstr(out, "k 20, temperature 0.1"), "stdout: %s", out);
    free(out), free(err);
    snprintf(path, sizeof path, "%s/knn_random.txt", dir);
    const char *v = value_of(path, "neighbours");
    CHECK(v && !strcmp(v, "20"));
    CHECK(value_of(path, "test_top1") && value_of(path, "test_top5"));
    snprintf(args, sizeof args, "retrieval " SPEC " --data synthetic:200 --random-init --out %s --classes 0-4", dir);
    rc = run(args, &out, &err);
    CHECKF(rc == 0, "retrieval: exit %d: %s", rc, err);
    CHECKF(out && strstr(out, "mAP") && strstr(out, "P@100"), "stdout: %s", out);
    free(out), free(err);
    snprintf(path, sizeof path, "%s/retrieval_random.txt", dir);
    static const char *keys[] = {"precision_at_1", "precision_at_5", "precision_at_10", "precision_at_100", "map"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        v = value_of(path, keys[i]);
        CHECKF(v && atof(v) >= 0 && atof(v) <= 1, "%s: %s = %s", path, keys[i], v ? v : "(none)");
    }
    v = value_of(path, "classes");
    CHECK(v && !strcmp(v, "0-4"));
    static const struct { const char *args, *want; } bad[] = {
        {"knn " SPEC " --data synthetic:200 --random-init --temperature 0", "--temperature must be a positive number"},
        {"knn " SPEC " --data synthetic:200 --random-init --neighbours 0", "--neighbours must be an integer"},
        {"retrieval " SPEC " --data synthetic:200", "give exactly one of --checkpoint FILE and --random-init"},
        {"retrieval " SPEC " --data synthetic:200 --random-init --neighbours 5", "unknown flag '--neighbours'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = run(bad[i].args, &out, &err);
        CHECKF(rc != 0 && err && strstr(err, bad[i].want), "'%s': exit %d: %s", bad[i].args, rc, err);
        free(out), free(err);
    }
}

/* The monitor adds a row per monitored epoch; its last figure is the
   kNN of the final checkpoint, as rrc knn computes it. */
TEST(cli_train_monitor_knn) {
    const char *dir = test_tmp_path("monitor_run");
    char args[1024], path[1100], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "train " SPEC " --data synthetic:120 --epochs 3 --monitor knn --every 2 --quiet --out %s", dir);
    int rc = run(args, &out, &err);
    REQUIREF(rc == 0, "train: exit %d: %s", rc, err);
    free(out), free(err);
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    char *csv = test_read_file(path, NULL);
    REQUIRE(csv);
    static const char header[] = "epoch,step,loss,pair_acc,pos_acc,neg_acc,images_per_s,seconds,knn_top1,knn_top5\n";
    CHECKF(!strncmp(csv, header, strlen(header)), "header: %.120s", csv);
    int monitors = 0, steps = 0;
    double last = -1;
    for (char *l = strchr(csv, '\n') + 1; *l; l = strchr(l, '\n') + 1) {
        int epoch;
        long long step;
        char rest[256];
        if (sscanf(l, "%d,%lld,%255[^\n]", &epoch, &step, rest) != 3) break;
        if (rest[0] == ',') {   /* a monitor row: step columns empty */
            monitors++;
            const char *k = l;   /* column 9: knn_top1 */
            for (int i = 0; i < 8; i++) k = strchr(k, ',') + 1;
            last = atof(k);
            CHECKF(epoch == (monitors == 1 ? 2 : 3), "monitor row %d is of epoch %d", monitors, epoch);
        } else {
            steps++;
        }
    }
    CHECKF(monitors == 2 && steps == 30, "%d monitor rows, %d step rows", monitors, steps);
    free(csv);
    snprintf(args, sizeof args, "knn " SPEC " --data synthetic:120 --checkpoint %s/last.safetensors --out %s", dir, dir);
    rc = run(args, &out, &err);
    CHECKF(rc == 0, "knn: exit %d: %s", rc, err);
    free(out), free(err);
    snprintf(path, sizeof path, "%s/knn.txt", dir);
    const char *v = value_of(path, "test_top1");
    CHECKF(v && last >= 0 && fabs(atof(v) - last) < 1e-4, "monitor's last kNN top-1 %g, rrc knn's %s", last, v ? v : "(none)");
    rc = run("train " SPEC " --data synthetic:120 --every 2", &out, &err);
    CHECKF(rc != 0 && err && strstr(err, "--every goes with --monitor knn"), "exit %d: %s", rc, err);
    free(out), free(err);
}

/* rrc eval: every protocol in one report; each figure names its protocol,
   data, split, labels and seed; the kNN figure equals rrc knn's. */
TEST(cli_eval_report) {
    const char *dir = test_tmp_path("eval_all");
    char args[1024], path[1100], *out = NULL, *err = NULL;
    snprintf(args, sizeof args,
             "eval " SPEC " --data synthetic:2000 --random-init --protocols linear,finetune,knn,retrieval,fractions --epochs 1 "
             "--out %s",
             dir);
    int rc = run(args, &out, &err);
    REQUIREF(rc == 0, "eval: exit %d: %s", rc, err);
    CHECKF(out && strstr(out, "== rrc eval: small_conv, backbone random init"), "stdout: %s", out);
    free(out), free(err);
    snprintf(path, sizeof path, "%s/eval_random.json", dir);
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    REQUIREF(doc, "%s: %s", path, je.text);
    CHECK(!strcmp(json_string_value(json_object_get(doc, "format")), "rrc-eval-1"));
    json_t *figs = json_object_get(doc, "figures");
    REQUIRE(json_is_array(figs));
    /* linear 1, knn 2, retrieval 5, fractions 3, finetune 1 */
    CHECKF(json_array_size(figs) == 12, "%zu figures", json_array_size(figs));
    double knn = -1;
    size_t i;
    json_t *f;
    json_array_foreach(figs, i, f) {
        const char *protocol = json_string_value(json_object_get(f, "protocol"));
        const char *metric = json_string_value(json_object_get(f, "metric"));
        double v = json_real_value(json_object_get(f, "value"));
        CHECKF(protocol && metric && v >= 0 && v <= 1, "figure %zu", i);
        CHECK(!strcmp(json_string_value(json_object_get(f, "data")), "synthetic:2000"));
        CHECK(!strcmp(json_string_value(json_object_get(f, "split")), "test"));
        CHECK(json_integer_value(json_object_get(f, "seed")) == 1);
        if (protocol && !strcmp(protocol, "knn") && !strcmp(metric, "top1")) knn = v;
        if (protocol && !strcmp(protocol, "fractions")) {
            const char *labels = json_string_value(json_object_get(f, "labels"));
            json_int_t n = json_integer_value(json_object_get(f, "train_images"));
            CHECKF((!strcmp(labels, "1%") && n == 20) || (!strcmp(labels, "10%") && n == 200) ||
                       (!strcmp(labels, "100%") && n == 2000),
                   "fractions: labels %s, %lld images", labels, (long long)n);
        }
    }
    json_decref(doc);
    /* and the commands' own reports, as make demo reads them */
    snprintf(path, sizeof path, "%s/knn_random.txt", dir);
    const char *ek = value_of(path, "test_top1");
    CHECKF(ek && fabs(atof(ek) - knn) < 1e-4, "eval's knn_random.txt says %s, its json %g", ek ? ek : "(none)", knn);
    snprintf(path, sizeof path, "%s/lineval_random.txt", dir);
    CHECKF(value_of(path, "test_top1"), "eval wrote no %s", path);
    snprintf(path, sizeof path, "%s/retrieval_random.txt", dir);
    CHECKF(value_of(path, "map"), "eval wrote no %s", path);
    if (system("command -v gnuplot > /dev/null 2>&1") == 0) {
        snprintf(path, sizeof path, "%s/eval_map_random.png", dir);
        CHECKF(test_exists(path), "no %s", path);
    }
    snprintf(args, sizeof args, "knn " SPEC " --data synthetic:2000 --random-init --out %s", dir);
    rc = run(args, &out, &err);
    CHECKF(rc == 0, "knn: exit %d: %s", rc, err);
    free(out), free(err);
    snprintf(path, sizeof path, "%s/knn_random.txt", dir);
    const char *v = value_of(path, "test_top1");
    CHECKF(v && fabs(atof(v) - knn) < 1e-4, "eval's kNN %g, rrc knn's %s", knn, v ? v : "(none)");
    static const struct { const char *args, *want; } bad[] = {
        {"--protocols linear,bogus", "unknown protocol 'bogus'"},
        {"--protocols knn,knn", "repeated protocol 'knn'"},
        {"", "give --protocols"},
    };
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        snprintf(args, sizeof args, "eval " SPEC " --data synthetic:200 --random-init --out %s %s", dir, bad[b].args);
        rc = run(args, &out, &err);
        CHECKF(rc != 0 && err && strstr(err, bad[b].want), "'%s': exit %d: %s", bad[b].args, rc, err);
        free(out), free(err);
    }
}
