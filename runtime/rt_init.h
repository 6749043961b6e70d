/*
** rt_init.h: parameter initialisation as METHOD.md describes it (He-normal
** fan_out for convolutions, PyTorch's default uniform for linear layers,
** constants for BatchNorm), drawn from the counter-based generator keyed by
** (seed, parameter name), so a parameter's initial value does not depend on
** which other parameters exist or in what order they are made.
*/
#ifndef RT_INIT_H
#define RT_INIT_H

#include <stdint.h>

typedef enum rt_init_kind {
    RT_INIT_NONE = 0,     /* not initialised by the runtime */
    RT_INIT_CONST,        /* every element = a */
    RT_INIT_NORMAL,       /* N(0, a^2) */
    RT_INIT_UNIFORM,      /* U(-a, a) */
} rt_init_kind;

typedef struct rt_init {
    rt_init_kind kind;
    double a;
} rt_init;

/* Fills dst[0..n) for the parameter `name` under `seed`. */
void rt_init_fill(float *dst, int64_t n, rt_init init, uint64_t seed, const char *name);

#endif
