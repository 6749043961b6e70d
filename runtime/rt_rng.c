/*
** rt_rng.c: Philox4x32-10 and the streams built on it (see rt_rng.h).
**
** This file is the whole of rrc's randomness: the block function, the
** mapping (seed, domain, a, b) -> key and counter, and the conversions of
** raw 32-bit words into uniforms, bounded integers and normals. It is not
** a general-purpose RNG library: there is no global state, no seeding from
** the clock and no caching between calls, so a value depends only on the
** stream's key, counter and how many words were drawn before it.
**
** Stream layout (fixed; changing it changes every initialisation, shuffle
** and augmentation, hence every golden value that depends on them):
**   key[0] = lo32(seed) ^ fmix32(domain)   (MurmurHash3's finaliser)
**   key[1] = hi32(seed)
**   ctr    = {a, b, block_lo, block_hi}, block counter starting at 0
** Each block gives four words, consumed in order out[0], out[1], out[2],
** out[3]; then the 64-bit block counter in ctr[2] (low) / ctr[3] (high)
** is incremented.
*/
#include "rt_rng.h"

#include <math.h>

/* Philox4x32 constants (Salmon et al., Random123). */
#define PHILOX_M0 UINT32_C(0xD2511F53)
#define PHILOX_M1 UINT32_C(0xCD9E8D57)
#define PHILOX_W0 UINT32_C(0x9E3779B9)   /* golden ratio */
#define PHILOX_W1 UINT32_C(0xBB67AE85)   /* sqrt(3) - 1 */

void rt_philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]) {
    uint32_t k0 = key[0], k1 = key[1];
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    for (int r = 0; r < 10; r++) {
        /* The key is bumped between rounds, not before the first one. */
        if (r > 0) { k0 += PHILOX_W0; k1 += PHILOX_W1; }
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* MurmurHash3's 32-bit finaliser: a bijection that spreads the small
   domain numbers (1, 2, 3, ...) over all 32 bits of the key. */
static uint32_t fmix32(uint32_t h) {
    h ^= h >> 16;
    h *= UINT32_C(0x85EBCA6B);
    h ^= h >> 13;
    h *= UINT32_C(0xC2B2AE35);
    h ^= h >> 16;
    return h;
}

void rt_stream_init(rt_stream *s, uint64_t seed, uint32_t domain, uint32_t a, uint32_t b) {
    s->key[0] = (uint32_t)seed ^ fmix32(domain);
    s->key[1] = (uint32_t)(seed >> 32);
    s->ctr[0] = a;
    s->ctr[1] = b;
    s->ctr[2] = 0;
    s->ctr[3] = 0;
    s->buf[0] = s->buf[1] = s->buf[2] = s->buf[3] = 0;
    s->pos = 4;
}

uint32_t rt_stream_u32(rt_stream *s) {
    if (s->pos >= 4) {
        rt_philox4x32(s->key, s->ctr, s->buf);
        if (++s->ctr[2] == 0) s->ctr[3]++;
        s->pos = 0;
    }
    return s->buf[s->pos++];
}

double rt_stream_uniform(rt_stream *s) {
    /* 27 + 26 = 53 bits, the mantissa of a double (genrand_res53's
       recipe), so every value is exactly k / 2^53 and 1.0 never occurs. */
    uint32_t hi = rt_stream_u32(s) >> 5;
    uint32_t lo = rt_stream_u32(s) >> 6;
    return ((double)hi * 67108864.0 + (double)lo) * (1.0 / 9007199254740992.0);
}

uint32_t rt_stream_below(rt_stream *s, uint32_t n) {
    /* Lemire's multiply-and-reject: the high word of x*n is uniform on
       [0, n) once the low words that would over-represent some outputs,
       those below 2^32 mod n, are rejected. n = 0 is a caller bug; it
       returns 0 rather than looping or dividing by zero. */
    if (n <= 1) return 0;
    uint64_t m = (uint64_t)rt_stream_u32(s) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;   /* 2^32 mod n */
        while (low < threshold) {
            m = (uint64_t)rt_stream_u32(s) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

double rt_stream_normal(rt_stream *s) {
    /* Box-Muller, cosine branch only: the stream struct has no room to
       keep the sine half, and throwing it away keeps every draw a fixed
       four words. 1 - u lies in (0, 1], so the log never sees 0. */
    const double two_pi = 6.283185307179586476925286766559;
    double u1 = rt_stream_uniform(s);
    double u2 = rt_stream_uniform(s);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(two_pi * u2);
}

uint32_t rt_hash32(const char *s) {
    uint32_t h = UINT32_C(2166136261);       /* FNV offset basis */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= UINT32_C(16777619);              /* FNV prime */
    }
    return h;
}
