/*
** rt_loss.h: the per-pair terms of the relation losses (focal and BCE with
** logits), in double, shared by the runtime's kernels (rt_kernels_rel.c)
** and the interpreter (compiler/ir/ops_rel.c) so that the oracle and the
** trainer compute one formula.
**
** One exp per pair: e = exp(-|z|) gives both the sigmoid (1 / (1 + e) for
** z >= 0, e / (1 + e) below: no overflow either way) and the stable BCE
** max(z, 0) - z y + log1p(e). The modulating factor (1 - p_t)^gamma is a
** product for gamma 2 (the paper's), as PyTorch's pow with exponent 2 is,
** and pow() otherwise.
*/
#ifndef RT_LOSS_H
#define RT_LOSS_H

#include <math.h>

typedef struct {
    double p;     /* sigmoid(z) */
    double bce;   /* binary cross-entropy with logits */
} RtLogit;

/* the sigmoid from e = exp(-|z|) */
static inline double rt_sigmoid_e(double z, double e) { return z >= 0 ? 1 / (1 + e) : e / (1 + e); }

static inline RtLogit rt_logit(double z, double y) {
    double e = exp(-fabs(z));
    return (RtLogit){rt_sigmoid_e(z, e), fmax(z, 0) - z * y + log1p(e)};
}

static inline double rt_pow_gamma(double q, double g) { return g == 2 ? q * q : g == 1 ? q : pow(q, g); }

/* a_t (1 - p_t)^gamma bce: the focal loss of one pair */
static inline double rt_focal_term(double z, double y, double gamma, double alpha) {
    RtLogit l = rt_logit(z, y);
    double pt = y * l.p + (1 - y) * (1 - l.p), at = y * alpha + (1 - y) * (1 - alpha);
    return at * rt_pow_gamma(1 - pt, gamma) * l.bce;
}

/* d/dz of the focal term, times scale; dp_t/dz = (2y-1) p (1-p),
   dbce/dz = p - y, and (1-p_t)^gamma is not detached (as in the reference
   code) */
static inline double rt_focal_grad(double z, double y, double gamma, double alpha, double scale) {
    RtLogit l = rt_logit(z, y);
    double p = l.p, pt = y * p + (1 - y) * (1 - p), at = y * alpha + (1 - y) * (1 - alpha), q = 1 - pt;
    double dq = -(2 * y - 1) * p * (1 - p);   /* d(1-p_t)/dz */
    double dmod = (gamma == 0 || q == 0) ? 0 : gamma * rt_pow_gamma(q, gamma - 1) * dq;
    return scale * at * (dmod * l.bce + rt_pow_gamma(q, gamma) * (p - y));
}

/* scale * (sigmoid(z) - y): no BCE value needed */
static inline double rt_bce_grad(double z, double y, double scale) { return scale * (rt_sigmoid_e(z, exp(-fabs(z))) - y); }

#endif
