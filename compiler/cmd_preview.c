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
    driver_usage(f, RRC_CMD_PREVIEW, "SPEC --out views.png [flags]",
                 "Writes a PNG grid: one row per image, the original then its K views as training\n"
                 "makes them (same seed and epoch give the same views).\n");
}

int cmd_augment_preview(int argc, char **argv) {
    rt_args a;
    int st = driver_parse(RRC_CMD_PREVIEW, argc, argv, 1, usage, &a);
    if (st >= 0) return st;
    const char *spec = a.npos ? a.pos[0] : NULL, *data = NULL, *out = NULL;
    SpecOverrides ov = {.seed = -1};
    int images = 8, epoch = 0, scale = 3;
    for (int i = 0; i < a.nopts; i++) {
        const rt_opt *o = &a.opts[i];
        switch (o->flag->id) {
        case RRC_F_DATA: data = o->value; break;
        case RRC_F_OUT: out = o->value; break;
        case RRC_F_IMAGES: images = (int)o->ival; break;
        case RRC_F_K: ov.K = (int)o->ival; break;
        case RRC_F_EPOCH: epoch = (int)o->ival; break;
        case RRC_F_SEED: ov.seed = o->ival; break;
        case RRC_F_SCALE: scale = (int)o->ival; break;
        default: break;
        }
    }
    rt_args_free(&a);   /* the values point into argv */
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
    rt_aug_pipeline p = {ops, s->naug, s->in_h, s->in_w, 0};
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
