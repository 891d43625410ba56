/* SipHash, the keyed hash of every hash table whose keys come from outside (names from the API server). */
#ifndef STRATOS_SIPHASH_H
#define STRATOS_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_LEN 16

/*
 * SipHash-c-d with a 64-bit result over len bytes of data, keyed by key
 * (k0 = key[0..7], k1 = key[8..15], little-endian), as in the reference
 * implementation of Aumasson and Bernstein (github.com/veorq/SipHash,
 * siphash.c; paper "SipHash: a fast short-input PRF", 2012). Pure,
 * thread-safe.
 */
uint64_t siphash24(const uint8_t key[SIPHASH_KEY_LEN], const void *data, size_t len);
uint64_t siphash13(const uint8_t key[SIPHASH_KEY_LEN], const void *data, size_t len);

/*
 * SipHash-1-3 of data under this process's secret key, drawn from
 * getrandom() on first use. For hash tables: whoever chooses the keys (a
 * pod's name, its node name, a label) cannot know which slots they land in,
 * so cannot build a set that collides and turns every lookup into a walk.
 * 1-3 rather than 2-4 as Rust's HashMap and CPython's str hash do: the
 * value never leaves the process, so no one sees an output to attack.
 * Thread-safe. Aborts only if the kernel cannot give 16 random bytes at all.
 */
uint64_t siphash_table(const void *data, size_t len);

/* siphash_table of a NUL-terminated string. */
uint64_t siphash_table_str(const char *s);

#endif
