/*
** rt_rng.h: the one random number generator of rrc: Philox4x32-10
** (Salmon et al., SC'11), a counter-based generator. A draw is a pure
** function of (key, counter), so every consumer (initialisation of a named
** parameter, the shuffle of an epoch, the views of an image) gets its own
** stream keyed by what it is, independent of order and thread timing.
*/
#ifndef RT_RNG_H
#define RT_RNG_H

#include <stdint.h>

/* One Philox4x32-10 block: out = philox(key, ctr). */
void rt_philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]);

/* A stream: consecutive counters under one key. The key is derived from
   (seed, domain); the first two counter words are (a, b), the last two
   count blocks. */
typedef struct rt_stream {
    uint32_t key[2];
    uint32_t ctr[4];
    uint32_t buf[4];
    int pos;              /* next unused word of buf; 4 = empty */
} rt_stream;

/* Domains keep independent uses apart. */
enum {
    RT_DOMAIN_INIT = 1,      /* a = hash of the parameter name */
    RT_DOMAIN_SHUFFLE = 2,   /* a = epoch */
    RT_DOMAIN_AUGMENT = 3,   /* a = epoch, b = image index; view in the counter */
    RT_DOMAIN_DATA = 4,      /* synthetic data */
    RT_DOMAIN_TEST = 5,
    RT_DOMAIN_SUBSET = 6,    /* a = class: the --labels subset */
    RT_DOMAIN_CLUSTER = 7,   /* a = stream (the epoch), b = restart: k-means++ (rt_cluster.c) */
    RT_DOMAIN_PRIOR = 8,     /* a = epoch, b = step of the epoch: Deep InfoMax's uniform prior samples */
};

void rt_stream_init(rt_stream *s, uint64_t seed, uint32_t domain, uint32_t a, uint32_t b);
uint32_t rt_stream_u32(rt_stream *s);
/* uniform in [0, 1) with 53 random bits */
double rt_stream_uniform(rt_stream *s);
/* uniform integer in [0, n), n >= 1, without modulo bias */
uint32_t rt_stream_below(rt_stream *s, uint32_t n);
/* standard normal (Box-Muller on two uniforms) */
double rt_stream_normal(rt_stream *s);

/* 32-bit FNV-1a of a string, for keying streams by name. */
uint32_t rt_hash32(const char *s);

#endif
