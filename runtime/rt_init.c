/*
** rt_init.c: fills a parameter tensor with its initial values (see
** rt_init.h). Only the drawing is here; which scheme and scale a parameter
** gets (He-normal std, 1/sqrt(fan_in), BN constants) is decided by the
** caller from the spec.
**
** Each parameter has its own stream, rt_stream_init(seed, RT_DOMAIN_INIT,
** rt_hash32(name), 0), and element i takes the i-th draw of it, so adding,
** removing or reordering other parameters never changes this one.
*/
#include "rt_init.h"

#include "rt_rng.h"

void rt_init_fill(float *dst, int64_t n, rt_init init, uint64_t seed, const char *name) {
    if (n <= 0 || init.kind == RT_INIT_NONE) return;
    if (init.kind == RT_INIT_CONST) {
        float v = (float)init.a;
        for (int64_t i = 0; i < n; i++) dst[i] = v;
        return;
    }
    rt_stream s;
    rt_stream_init(&s, seed, RT_DOMAIN_INIT, rt_hash32(name), 0);
    if (init.kind == RT_INIT_NORMAL) {
        for (int64_t i = 0; i < n; i++) dst[i] = (float)(init.a * rt_stream_normal(&s));
    } else if (init.kind == RT_INIT_UNIFORM) {
        /* 2u - 1 is in [-1, 1): computed in double, rounded once. */
        for (int64_t i = 0; i < n; i++) dst[i] = (float)(init.a * (2.0 * rt_stream_uniform(&s) - 1.0));
    }
}
