/* graft's small deterministic random generator (xoshiro256** seeded through SplitMix64).
 * The same seed gives the same stream on every machine: data order, augmentation and the
 * synthetic world depend on it, never on rand() or thread timing. */
#ifndef GRAFT_CORE_DATA_RNG_H
#define GRAFT_CORE_DATA_RNG_H

#include <stdint.h>

typedef struct gr_rng { uint64_t s[4]; } gr_rng;

static inline uint64_t gr_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Mixes several words into one seed (e.g. seed, epoch, sample index): streams for different
 * tuples are independent for all practical purposes. */
static inline uint64_t gr_seed_mix(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t x = a;
    uint64_t h = gr_splitmix64(&x);
    x = h ^ b;
    h = gr_splitmix64(&x);
    x = h ^ c;
    return gr_splitmix64(&x);
}

static inline void gr_rng_seed(gr_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = gr_splitmix64(&seed);
}

static inline uint64_t gr_rng_next(gr_rng *r)
{
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5;
    uint64_t result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double gr_rng_uniform(gr_rng *r) { return (double)(gr_rng_next(r) >> 11) * 0x1.0p-53; }

/* Uniform integer in [0, n), unbiased (rejection); n > 0. */
static inline uint64_t gr_rng_below(gr_rng *r, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = gr_rng_next(r); while (x >= limit);
    return x % n;
}

#endif
