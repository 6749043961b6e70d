/*
** rt_optim.h: the optimizer updates, in PyTorch's exact forms (METHOD.md
** step 6 for Adam; torch.optim.SGD with momentum). They work in place on
** f32 tensors; t counts steps from 1. Weight decay is PyTorch's L2 form
** (g += wd * p before the update).
*/
#ifndef RT_OPTIM_H
#define RT_OPTIM_H

#include <stdint.h>

typedef struct rt_adam {
    double lr, beta1, beta2, eps, weight_decay;
} rt_adam;

/* m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps) */
void rt_adam_update(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, int64_t n, int64_t t,
                    const rt_adam *o);

typedef struct rt_sgd {
    double lr, momentum, weight_decay;
} rt_sgd;

/* buf = momentum buf + g (buf = g at t = 1); p -= lr buf */
void rt_sgd_update(float *restrict p, const float *restrict g, float *restrict buf, int64_t n, int64_t t, const rt_sgd *o);

#endif
