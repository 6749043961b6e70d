/*
** rt_optim.c: Adam and SGD updates (see rt_optim.h). The arithmetic is in
** double per element and rounded once to f32, so the result does not
** depend on how a compiler contracts the expression.
*/
#include <math.h>

#include "rt_optim.h"

void rt_adam_update(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, int64_t n, int64_t t,
                    const rt_adam *o) {
    double bc1 = 1 - pow(o->beta1, (double)t), bc2 = 1 - pow(o->beta2, (double)t);
    double step = o->lr / bc1, sbc2 = sqrt(bc2);
    for (int64_t i = 0; i < n; i++) {
        double gi = (double)g[i] + o->weight_decay * (double)p[i];
        double mi = o->beta1 * (double)m[i] + (1 - o->beta1) * gi;
        double vi = o->beta2 * (double)v[i] + (1 - o->beta2) * gi * gi;
        m[i] = (float)mi;
        v[i] = (float)vi;
        p[i] = (float)((double)p[i] - step * mi / (sqrt(vi) / sbc2 + o->eps));
    }
}

void rt_sgd_update(float *restrict p, const float *restrict g, float *restrict buf, int64_t n, int64_t t, const rt_sgd *o) {
    for (int64_t i = 0; i < n; i++) {
        double gi = (double)g[i] + o->weight_decay * (double)p[i];
        double b = o->momentum != 0 && t > 1 ? o->momentum * (double)buf[i] + gi : gi;
        buf[i] = (float)b;
        p[i] = (float)((double)p[i] - o->lr * (o->momentum != 0 ? b : gi));
    }
}
