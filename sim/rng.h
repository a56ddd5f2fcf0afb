/* Randomness for the simulator: a seeded, reproducible generator for fault
 * decisions, and kernel randomness (getrandom) for identifiers. */
#ifndef SIM_RNG_H
#define SIM_RNG_H

#include <stdint.h>

/* xoshiro256** state; the same seed always gives the same sequence. */
struct sim_rng {
	uint64_t s[4];
};

void sim_rng_seed(struct sim_rng *rng, uint64_t seed);
uint64_t sim_rng_next(struct sim_rng *rng);

/* A probability draw in [0, 1): 53 random bits, used only for fault rates. */
double sim_rng_unit(struct sim_rng *rng);

/* A uniform integer in [0, n); 0 when n is 0. */
uint64_t sim_rng_below(struct sim_rng *rng, uint64_t n);

/* Writes a random version-4 UUID (lowercase, from getrandom) into out. */
void sim_uuid_random(char out[37]);

#endif
