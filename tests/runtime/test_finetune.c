/*
** test_finetune.c: fine-tuning's optimizer against torch.optim.Adam with
** two parameter groups (tests/golden/finetune/, made by
** tests/golden/make_finetune_goldens.py): rt_finetune_lr picks each
** parameter's group by its name, rt_adam_update applies the step with the
** group's lr and the coupled weight decay; after every one of the steps
** each parameter must match PyTorch's by the f32 rule.
*/
#include <stdlib.h>
#include <string.h>

#include "golden_util.h"
#include "rt_optim.h"
#include "rt_train.h"
#include "test.h"
#include "test_util.h"

#define GOLDEN "tests/golden/finetune/adam_groups.safetensors"

TEST(finetune_adam_two_groups_matches_pytorch) {
    rt_st_file f;
    REQUIRE(golden_read(GOLDEN, &f));
    rt_finetune_opts ft = {.lr_backbone = atof(rt_st_meta(&f, "lr_backbone")),
                           .lr_head = atof(rt_st_meta(&f, "lr_classifier")),
                           .weight_decay = atof(rt_st_meta(&f, "weight_decay"))};
    /* the official recipe is what the golden used */
    CHECK(ft.lr_backbone == 1e-3 && ft.lr_head == 1e-4 && ft.weight_decay == 1e-5);
    int steps = atoi(rt_st_meta(&f, "steps"));
    char names[256];
    snprintf(names, sizeof names, "%s", rt_st_meta(&f, "names"));
    int checked = 0, heads = 0;
    for (char *name = strtok(names, ","); name; name = strtok(NULL, ",")) {
        const rt_tensor *t0 = rt_st_find(&f, name);
        REQUIREF(t0, "%s: no tensor %s", GOLDEN, name);
        int64_t n = (int64_t)(t0->nbytes / sizeof(float));
        float *p = malloc((size_t)n * sizeof *p), *g = malloc((size_t)n * sizeof *g);
        float *m = calloc((size_t)n, sizeof *m), *v = calloc((size_t)n, sizeof *v);
        double *ours = malloc((size_t)n * sizeof *ours);
        double *init = golden_tensor(&f, GOLDEN, name, n);
        for (int64_t i = 0; i < n; i++) p[i] = (float)init[i];
        free(init);
        rt_adam a = {rt_finetune_lr(&ft, name), 0.9, 0.999, 1e-8, ft.weight_decay};
        heads += a.lr == ft.lr_head;
        for (int t = 1; t <= steps; t++) {
            char key[96], what[160];
            snprintf(key, sizeof key, "g%s.%d", name, t);
            double *gd = golden_tensor(&f, GOLDEN, key, n);
            for (int64_t i = 0; i < n; i++) g[i] = (float)gd[i];
            free(gd);
            rt_adam_update(p, g, m, v, n, t, &a);
            snprintf(key, sizeof key, "p%s.%d", name, t);
            double *ref = golden_tensor(&f, GOLDEN, key, n);
            for (int64_t i = 0; i < n; i++) ours[i] = p[i];
            snprintf(what, sizeof what, "%s after step %d (lr %g)", name, t, a.lr);
            golden_compare(what, ours, ref, n);
            free(ref);
            checked++;
        }
        free(p), free(g), free(m), free(v), free(ours);
    }
    CHECK(checked == 4 * steps && heads == 2);   /* conv1.weight, bn1.bias; classifier.weight, classifier.bias */
    rt_st_free(&f);
}

/* The value of KEY in a "key value" report file (static buffer). */
static const char *report_value(const char *path, const char *key) {
    static char val[256];
    char *text = test_read_file(path, NULL);
    val[0] = 0;
    if (!text) return NULL;
    size_t n = strlen(key);
    for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, key, n) == 0 && l[n] == ' ') {
            snprintf(val, sizeof val, "%.*s", (int)strcspn(l + n + 1, "\n"), l + n + 1);
            break;
        }
    free(text);
    return val[0] ? val : NULL;
}

/* rrc finetune end to end on small_conv and synthetic data: a backbone
   trained by rrc train, fine-tuned with the official recipe; the report
   names the recipe; a random backbone, a class split with a label
   fraction, and the command line's errors. */
TEST(finetune_end_to_end) {
    const char *run = test_tmp_path("ft_run");
    char cmd[2048], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "%s train tests/specs/small_conv.lua --data synthetic:96 --epochs 1 --quiet --out %s", test_rrc(),
             run);
    int rc = test_run(cmd, &out, &err);
    REQUIREF(rc == 0, "train: exit %d: %s", rc, err);
    free(out), free(err);
    char ckpt[1024], report[1100];
    snprintf(ckpt, sizeof ckpt, "%s/last.safetensors", run);
    snprintf(cmd, sizeof cmd, "%s finetune tests/specs/small_conv.lua --data synthetic:96 --checkpoint %s --epochs 2 --quiet",
             test_rrc(), ckpt);
    rc = test_run(cmd, &out, &err);
    CHECKF(rc == 0, "finetune: exit %d: %s", rc, err);
    CHECKF(out && strstr(out, "fine-tuning small_conv from ") && strstr(out, "test top-1"), "stdout: %s", out);
    free(out), free(err);
    snprintf(report, sizeof report, "%s/finetune/finetune.txt", run);   /* beside the checkpoint */
    const char *v = report_value(report, "optimizer");
    CHECKF(v && !strcmp(v, "adam"), "%s: optimizer %s", report, v ? v : "(none)");
    v = report_value(report, "lr_classifier");
    CHECK(v && !strcmp(v, "0.0001"));
    v = report_value(report, "decay_at");
    CHECK(v && !strcmp(v, "100,150"));
    v = report_value(report, "backbone");
    CHECK(v && !strcmp(v, ckpt));
    CHECK(report_value(report, "test_top1") != NULL);
    /* a random backbone, classes 5-9 with two labelled images each, the schedule it meant */
    const char *dir = test_tmp_path("ft_random");
    snprintf(cmd, sizeof cmd,
             "%s finetune tests/specs/small_conv.lua --data synthetic:400 --random-init --classes 5-9 --labels 2-per-class "
             "--decay-at 50%%,75%% --epochs 4 --quiet --out %s",
             test_rrc(), dir);
    rc = test_run(cmd, &out, &err);
    CHECKF(rc == 0, "finetune --random-init: exit %d: %s", rc, err);
    free(out), free(err);
    snprintf(report, sizeof report, "%s/finetune.txt", dir);
    v = report_value(report, "train_images");
    CHECKF(v && !strcmp(v, "10"), "train_images %s", v ? v : "(none)");
    v = report_value(report, "decay_at");
    CHECKF(v && !strcmp(v, "2,3"), "decay_at %s", v ? v : "(none)");
    /* errors: one line, exit 1, before anything is trained */
    static const struct { const char *args, *want; } bad[] = {
        {"--random-init --checkpoint x", "give exactly one of --checkpoint FILE and --random-init"},
        {"--random-init --decay-at 50%,x", "--decay-at"},
        {"--random-init --decay-at 120%", "--decay-at"},
        {"--random-init --method relational", "unknown flag '--method'"},
        {"--checkpoint /nonexistent.safetensors", "/nonexistent.safetensors"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s finetune tests/specs/small_conv.lua --data synthetic:96 --epochs 1 --quiet --out %s %s",
                 test_rrc(), dir, bad[i].args);
        rc = test_run(cmd, &out, &err);
        CHECKF(rc != 0 && err && strstr(err, bad[i].want), "'%s': exit %d, stderr %s", bad[i].args, rc, err);
        free(out), free(err);
    }
}

/* The lr milestones of the supervised recipes: int(fraction * E) as the
   official code (not rounded: for 10 epochs 5 and 7, not 5 and 8). */
TEST(milestones_truncate_as_the_official_code) {
    CHECK(milestone_epoch(0.5, 10) == 5 && milestone_epoch(0.75, 10) == 7);
    CHECK(milestone_epoch(0.5, 100) == 50 && milestone_epoch(0.75, 100) == 75);
    CHECK(milestone_epoch(0.5, 11) == 5 && milestone_epoch(0.75, 11) == 8);
    CHECK(milestone_epoch(0.29, 100) == 28);   /* Python: int(0.29 * 100) == 28 */
}
