/* Hash-flooding benchmark: pod cache and intern lookups (ns/op) for random names vs names that collide under FNV-1a. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "../tests/unit/hash_collide.h"
#include "stratos/cache.h"
#include "stratos/intern.h"
#include "stratos/pod_cache.h"
#include "stratos/timeutil.h"

/*
 * The same source builds against an older tree (bench/hash_collisions.sh
 * BASELINE=rev), whose tables hashed with unkeyed FNV-1a; it names what it
 * measures by whether the keyed hash is there.
 */
#if __has_include("stratos/siphash.h")
#include "stratos/siphash.h"
#define BENCH_TABLE_HASH "SipHash-1-3, per-process key"
#define BENCH_HAS_SIPHASH 1
#else
#define BENCH_TABLE_HASH "FNV-1a (unkeyed)"
#define BENCH_HAS_SIPHASH 0
#endif

#define BENCH_NAME_LEN 64

static volatile uint64_t bench_sink;

static json_t *
bench_pod(const char *key, const char *node)
{
	char ns[BENCH_NAME_LEN];
	const char *slash = strchr(key, '/');

	snprintf(ns, sizeof(ns), "%.*s", (int)(slash - key), key);
	return json_pack("{s:{s:s,s:s,s:s,s:s},s:{s:s,s:[{s:s}]},s:{s:s}}",
	    "metadata", "name", slash + 1, "namespace", ns, "resourceVersion", "7", "uid", slash + 1,
	    "spec", "nodeName", node, "containers", "name", "c", "status", "phase", "Running");
}

/* Names with random-looking suffixes, as a ReplicaSet makes them. */
static void
bench_random_names(const char *prefix, size_t n, char *names)
{
	uint64_t x = 0x9e3779b97f4a7c15u;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		snprintf(names + i * BENCH_NAME_LEN, BENCH_NAME_LEN, "%s%llx", prefix,
		    (unsigned long long)(x & 0xffffffffffu));
	}
}

struct bench_result {
	double fill_ms;        /* cache_apply of every pod into an empty cache */
	double get_ns;         /* cache_get of a present key */
	double intern_ns;      /* intern_str of a present name (node names) */
};

/*
 * The generic cache with the Pod parser (cache_new, not pod_cache_new): the
 * same calls on this tree and on the baseline, whatever the typed wrapper.
 */
static void
bench_run(const char *keys, const char *nodes, size_t n, size_t nnodes, long rounds,
    struct bench_result *r)
{
	struct cache *c = cache_new(&POD_CACHE_TYPE);
	const char **held = calloc(nnodes, sizeof(*held));
	json_t **pods = calloc(n, sizeof(*pods));
	int64_t t0;

	if (c == NULL || held == NULL || pods == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < n; i++)
		pods[i] = bench_pod(keys + i * BENCH_NAME_LEN, nodes + (i % nnodes) * BENCH_NAME_LEN);
	t0 = time_mono_us();
	for (size_t i = 0; i < n; i++)
		if (cache_apply(c, pods[i]) != 1) {
			fprintf(stderr, "cache_apply failed\n");
			exit(1);
		}
	r->fill_ms = (double)(time_mono_us() - t0) / 1000.0;

	t0 = time_mono_us();
	for (long k = 0; k < rounds; k++) {
		for (size_t i = 0; i < n; i++) {
			struct cache_obj *o = cache_get(c, keys + i * BENCH_NAME_LEN);
			bench_sink += o->rv;
			cache_obj_unref(o);
		}
	}
	r->get_ns = (double)(time_mono_us() - t0) * 1000.0 / ((double)rounds * (double)n);

	/* The cache holds a reference to each node name; interning again is a hit. */
	t0 = time_mono_us();
	for (long k = 0; k < rounds; k++) {
		for (size_t i = 0; i < nnodes; i++) {
			const char *s = intern_str(nodes + i * BENCH_NAME_LEN);
			bench_sink += (uintptr_t)s;
			intern_release(s);
		}
	}
	r->intern_ns = (double)(time_mono_us() - t0) * 1000.0 / ((double)rounds * (double)nnodes);
	for (size_t i = 0; i < n; i++)
		json_decref(pods[i]);
	free(pods);
	free(held);
	cache_free(c);
}

/* ns per hash of the old and the new function over n keys. */
static void
bench_hash_cost(const char *keys, size_t n, long rounds)
{
	int64_t t0 = time_mono_us();
	double fnv, sip = 0;

	for (long k = 0; k < rounds; k++)
		for (size_t i = 0; i < n; i++)
			bench_sink += hash_collide_fnv1a(keys + i * BENCH_NAME_LEN);
	fnv = (double)(time_mono_us() - t0) * 1000.0 / ((double)rounds * (double)n);
#if BENCH_HAS_SIPHASH
	t0 = time_mono_us();
	for (long k = 0; k < rounds; k++)
		for (size_t i = 0; i < n; i++)
			bench_sink += siphash_table_str(keys + i * BENCH_NAME_LEN);
	sip = (double)(time_mono_us() - t0) * 1000.0 / ((double)rounds * (double)n);
#endif
	printf("hash of one key (%zu-byte average): FNV-1a %.1f ns", strlen(keys), fnv);
	if (BENCH_HAS_SIPHASH)
		printf(", SipHash-1-3 keyed %.1f ns", sip);
	printf("\n");
}

int
main(int argc, char **argv)
{
	bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	/*
	 * n pods in n / 5 node names; the table grows to the power of two above
	 * n / 0.7, and colliding names share their low 13 bits, so they share a
	 * home slot in every table up to 8192 slots.
	 */
	size_t n = quick ? 500 : 5000, nnodes = n / 5;
	long rounds = quick ? 2 : 20;
	uint32_t mask = 8191;
	char *rkeys = calloc(n, BENCH_NAME_LEN), *ckeys = calloc(n, BENCH_NAME_LEN);
	char *rnodes = calloc(nnodes, BENCH_NAME_LEN), *cnodes = calloc(nnodes, BENCH_NAME_LEN);
	struct bench_result rand_r, coll_r;

	if (rkeys == NULL || ckeys == NULL || rnodes == NULL || cnodes == NULL)
		return 1;
	bench_random_names("ci/runner-7d9f8c6b5-", n, rkeys);
	bench_random_names("ip-10-0-", nnodes, rnodes);
	hash_collide_names("ci/runner-7d9f8c6b5-", mask, n, ckeys, BENCH_NAME_LEN);
	hash_collide_names("ip-10-0-", mask, nnodes, cnodes, BENCH_NAME_LEN);

	printf("table hash: %s\n", BENCH_TABLE_HASH);
	bench_hash_cost(rkeys, n, rounds * 10);
	bench_run(rkeys, rnodes, n, nnodes, rounds, &rand_r);
	bench_run(ckeys, cnodes, n, nnodes, rounds, &coll_r);
	printf("%zu pods on %zu nodes          random names   names colliding under FNV-1a\n",
	    n, nnodes);
	printf("  fill (cache_apply each)   %9.1f ms   %9.1f ms\n", rand_r.fill_ms, coll_r.fill_ms);
	printf("  cache_get                 %9.1f ns   %9.1f ns\n", rand_r.get_ns, coll_r.get_ns);
	printf("  intern_str (node name)    %9.1f ns   %9.1f ns\n", rand_r.intern_ns,
	    coll_r.intern_ns);
	free(rkeys);
	free(ckeys);
	free(rnodes);
	free(cnodes);
	return 0;
}
