/*
** cmd_preview.c: `rrc augment-preview SPEC --data D --out views.png`: a
** grid of images and their K augmented views (the spec's pipeline, without
** normalisation), for a person to check what training sees.
*/
#include <stdio.h>
#include <stdlib.h>

#include "driver.h"
#include "program.h"
#include "rt_preview.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: rrc augment-preview SPEC --out views.png [flags]\n"
            "\n"
            "Writes a PNG grid: one row per image, the original then its K views as training\n"
            "makes them (same seed and epoch give the same views).\n"
            "\n"
            "  --data NAME[:PATH]  dataset (default: the spec's)\n"
            "  --out FILE          the PNG to write (required)\n"
            "  --images N          rows (default 8): the first N training images\n"
            "  --K K               views per image (default: the spec's)\n"
            "  --epoch E           epoch whose views to show (default 0)\n"
            "  --seed S            seed (default: the spec's)\n"
            "  --scale X           magnification (default 3)\n");
}

int cmd_augment_preview(int argc, char **argv) {
    const char *spec = NULL, *data = NULL, *out = NULL;
    SpecOverrides ov = {.seed = -1};
    int images = 8, epoch = 0, scale = 3;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (flag_is(a, "--help") || flag_is(a, "-h")) { usage(stdout); return 0; }
        else if (flag_is(a, "--data")) data = flag_value("augment-preview", argc, argv, &i, "--data");
        else if (flag_is(a, "--out")) out = flag_value("augment-preview", argc, argv, &i, "--out");
        else if (flag_is(a, "--images")) images = (int)flag_int("augment-preview", "--images", flag_value("augment-preview", argc, argv, &i, "--images"), 1, 256);
        else if (flag_is(a, "--K")) ov.K = (int)flag_int("augment-preview", "--K", flag_value("augment-preview", argc, argv, &i, "--K"), 1, 64);
        else if (flag_is(a, "--epoch")) epoch = (int)flag_int("augment-preview", "--epoch", flag_value("augment-preview", argc, argv, &i, "--epoch"), 0, 1000000);
        else if (flag_is(a, "--seed")) ov.seed = flag_int("augment-preview", "--seed", flag_value("augment-preview", argc, argv, &i, "--seed"), 0, 0x7fffffffL);
        else if (flag_is(a, "--scale")) scale = (int)flag_int("augment-preview", "--scale", flag_value("augment-preview", argc, argv, &i, "--scale"), 1, 16);
        else if (a[0] == '-') { fprintf(stderr, "rrc augment-preview: unknown flag '%s' (see --help)\n", a); return EXIT_USAGE; }
        else if (!spec) spec = a;
        else { fprintf(stderr, "rrc augment-preview: more than one spec given\n"); return EXIT_USAGE; }
    }
    if (!spec || !out) { usage(stderr); return EXIT_USAGE; }
    Arena arena = {0};
    Spec *s = driver_load_spec("augment-preview", spec, &ov, &arena);
    if (!data) data = s->data;
    rt_dataset d = {0};
    rt_data_opts o = {s->in_h, s->in_w, s->in_c, s->seed};
    char err[1024];
    int rc = EXIT_USAGE;
    rt_aug_op *ops = arena_alloc(&arena, (size_t)(s->naug ? s->naug : 1) * sizeof *ops);
    for (int i = 0; i < s->naug; i++) ops[i] = convert_aug(&s->aug[i]);
    rt_aug_pipeline p = {ops, s->naug, s->in_h, s->in_w};
    if (rt_dataset_load(data, RT_SPLIT_TRAIN, &o, &d, err, sizeof err) != 0 ||
        rt_aug_check(&p, d.h, d.w, d.c, 3, err, sizeof err) != 0) {
        fprintf(stderr, "rrc augment-preview: %s\n", err);
        goto done;
    }
    if (images > d.n) images = (int)d.n;
    int64_t *idx = arena_alloc(&arena, (size_t)images * sizeof *idx);
    for (int i = 0; i < images; i++) idx[i] = i;
    if (rt_augment_preview(out, &p, &d, idx, images, s->K, s->seed, (uint32_t)epoch, scale, err, sizeof err) != 0) {
        fprintf(stderr, "rrc augment-preview: %s\n", err);
        goto done;
    }
    printf("rrc: wrote %s: %d images x (original + %d views) of %s, epoch %d, seed %llu\n", out, images, s->K, data, epoch,
           (unsigned long long)s->seed);
    rc = 0;
done:
    rt_dataset_free(&d);
    arena_free(&arena);
    return rc;
}
