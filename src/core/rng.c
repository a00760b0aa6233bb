/* rng.c — PCG32 (O'Neill) and a Box-Muller normal; see rng.h. */
#include "core/rng.h"
#include <math.h>

void rng_seed(tuna_rng *r, uint64_t seed, uint64_t stream) {
    r->state = 0;
    r->inc = (stream << 1u) | 1u;
    rng_u32(r);
    r->state += seed;
    rng_u32(r);
}

uint32_t rng_u32(tuna_rng *r) {
    uint64_t old = r->state;
    r->state = old * 6364136223846793005ULL + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

float rng_uniform(tuna_rng *r) { return (float)(rng_u32(r) >> 8) / 16777216.0f; }

float rng_normal(tuna_rng *r) {
    /* one draw per call (the sine half is discarded) keeps the state simple */
    double u1 = ((double)(rng_u32(r) >> 8) + 1.0) / 16777217.0;
    double u2 = (double)(rng_u32(r) >> 8) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}
