/* Seed mixing for the data pipeline, on top of graft's generator (graft/rng.h).
 * The same seed gives the same stream on every machine: data order, augmentation and the
 * synthetic world depend on it, never on rand() or thread timing. */
#ifndef GRAFT_CORE_DATA_RNG_H
#define GRAFT_CORE_DATA_RNG_H

#include <stdint.h>

#include "graft/rng.h" /* gr_rng and its draws; this header adds seed mixing */

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

#endif
