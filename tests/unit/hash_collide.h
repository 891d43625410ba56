/* Names that collide under the hash the tables used before SipHash (FNV-1a 32): for tests and bench/hash_collisions. */
#ifndef STRATOS_TEST_HASH_COLLIDE_H
#define STRATOS_TEST_HASH_COLLIDE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The old intern.c / cache.c hash, unkeyed: anyone can compute it. */
static inline uint32_t
hash_collide_fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

/*
 * Fills names[0..n-1] (each of size len) with "<prefix><counter>" strings
 * whose old hash has the same low bits under mask: they share one home
 * slot in every power-of-two table up to mask + 1 slots, which is what
 * an attacker who can name pods would send. About n * (mask + 1) hashes.
 */
static inline void
hash_collide_names(const char *prefix, uint32_t mask, size_t n, char *names, size_t len)
{
	uint32_t target = hash_collide_fnv1a(prefix) & mask;
	unsigned long counter = 0;

	for (size_t i = 0; i < n; counter++) {
		char *name = names + i * len;
		snprintf(name, len, "%s%lx", prefix, counter);
		if ((hash_collide_fnv1a(name) & mask) == target)
			i++;
	}
}

#endif
