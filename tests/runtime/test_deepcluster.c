/*
** test_deepcluster.c: DeepCluster's runtime: the to_pil_image conversion of
** the reference's reassigned dataset, the training views built on it, and
** a short run (clustering, reset, pseudolabel steps) end to end.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rt_deepcluster.h"
#include "rt_pool.h"
#include "test.h"

TEST(deepcluster_to_pil_byte) {
    /* mul(255).byte() on x86: toward zero, then mod 256 (BASELINES.md 3.6) */
    static const struct { float v; uint8_t want; } cases[] = {
        {0.0f, 0}, {0.5f, 127}, {1.0f, 255}, {1.2f, 50}, {-0.001f, 0}, {-0.01f, 254}, {-1.7f, 79}, {2.0f, 254},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECKF(rt_to_pil_byte(cases[i].v) == cases[i].want, "%g -> %d, want %d", (double)cases[i].v, rt_to_pil_byte(cases[i].v),
               cases[i].want);
}

TEST(deepcluster_views_are_the_pipeline_twice) {
    /* crop-flip + normalise, then the same from the 8-bit view: the rows
       rt_dc_views makes equal that composition, for any thread count */
    rt_aug_op ops[] = {
        {.kind = RT_AUG_RANDOM_CROP, .size = 8, .padding = 2},
        {.kind = RT_AUG_HFLIP, .p = 0.5},
        {.kind = RT_AUG_NORMALIZE, .mean = {0.5, 0.5, 0.5}, .std = {0.25, 0.25, 0.25}},
    };
    rt_aug_pipeline p = {ops, 3, 8, 8, 0};
    enum { N = 5, H = 8, C = 3, IMG = C * H * H };
    uint8_t pixels[N * H * H * C];
    for (int i = 0; i < N * H * H * C; i++) pixels[i] = (uint8_t)(i * 37 + 11);
    rt_dataset d = {.n = N, .h = H, .w = H, .c = C, .pixels = pixels};
    int64_t idx[3] = {4, 0, 2};
    float x1[3 * IMG], x2[3 * IMG], first[IMG], want[IMG];
    uint8_t u8[IMG];
    rt_dc_views(&p, &d, C, idx, 3, 7, 2, 1, x1);
    rt_pool_init(2);
    rt_dc_views(&p, &d, C, idx, 3, 7, 2, 2, x2);
    rt_pool_init(1);
    CHECK(memcmp(x1, x2, sizeof x1) == 0);
    int negative = 0;
    for (int i = 0; i < 3; i++) {
        rt_augment_view(&p, pixels + idx[i] * H * H * C, H, H, C, C, 7, 2, (uint32_t)idx[i], 1, first);
        for (int c = 0; c < C; c++)
            for (int k = 0; k < H * H; k++) {
                u8[k * C + c] = rt_to_pil_byte(first[c * H * H + k]);
                negative += first[c * H * H + k] < 0;
            }
        rt_augment_view(&p, u8, H, H, C, C, 7, 2, (uint32_t)idx[i], 2, want);
        CHECKF(memcmp(x1 + i * IMG, want, sizeof want) == 0, "row %d differs", i);
    }
    CHECK(negative > 0);   /* the wrap was exercised */
}
