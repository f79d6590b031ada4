/* graft — the one random number generator (xoshiro256**, seeded through splitmix64).
 *
 * Everything random in graft (initialisation, shuffling, augmentation, prefix-LM splits) draws
 * from a gr_rng whose 32-byte state is saved in checkpoints, so a resumed run continues the
 * exact stream. Same seed, same numbers, on every machine. */
#ifndef GRAFT_RNG_H
#define GRAFT_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gr_rng {
    uint64_t s[4];
} gr_rng;

void gr_rng_seed(gr_rng *rng, uint64_t seed);
/* An independent stream derived from (seed, stream id): e.g. per epoch, per rank, per tensor. */
void gr_rng_seed_stream(gr_rng *rng, uint64_t seed, uint64_t stream);
uint64_t gr_rng_next(gr_rng *rng);
/* Uniform in [0, 1) with 53 random bits. */
double gr_rng_uniform(gr_rng *rng);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint64_t gr_rng_below(gr_rng *rng, uint64_t n);
/* Standard normal (Box-Muller on two uniforms; no cached second value, so the state alone
 * determines the stream). */
double gr_rng_normal(gr_rng *rng);
/* Fisher-Yates shuffle of n int64 indices. */
void gr_rng_shuffle(gr_rng *rng, int64_t *items, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
