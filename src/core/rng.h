/* rng.h — the project's deterministic random numbers (PCG32 + Box-Muller).
 * Same seed, same stream on every machine: used for initialisation, shuffling
 * and dropout so that runs and resumes are reproducible. The state is a plain
 * struct so checkpoints can store it. */
#ifndef TUNA_CORE_RNG_H
#define TUNA_CORE_RNG_H
#include <stdint.h>

typedef struct { uint64_t state, inc; } tuna_rng;

void rng_seed(tuna_rng *r, uint64_t seed, uint64_t stream);
uint32_t rng_u32(tuna_rng *r);
/* uniform in [0,1) with 24 random bits */
float rng_uniform(tuna_rng *r);
/* standard normal */
float rng_normal(tuna_rng *r);
#endif
