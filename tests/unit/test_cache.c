/* Unit tests for the generic cache's tables: names chosen to collide do not make lookups walk. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test_util.h"
#include "hash_collide.h"
#include "stratos/cache.h"
#include "stratos/pod_cache.h"

#define COLLIDING_PODS  1000u   /* the table grows to 2048 slots */
#define COLLIDING_NODES 200u    /* the index table grows to 512 slots */
#define NAME_LEN        64
/*
 * Every power-of-two table up to 4096 slots puts the names on one home slot
 * under the old hash: one run of COLLIDING_PODS, each lookup a walk of it.
 */
#define OLD_HASH_MASK   4095u
/*
 * With a random hash, 1000 keys in 2048 slots have a longest probe of about
 * 13 (41 was the worst of 3000 simulated tables); the bound leaves room and
 * is still far below the 1000 of the collision set under the old hash.
 */
#define PROBE_BOUND     64u

static json_t *
pod(const char *ns, const char *name, const char *node)
{
	return json_pack("{s:{s:s,s:s,s:s,s:s},s:{s:s,s:[{s:s}]},s:{s:s}}",
	    "metadata", "name", name, "namespace", ns, "resourceVersion", "7", "uid", name,
	    "spec", "nodeName", node, "containers", "name", "c",
	    "status", "phase", "Running");
}

static void
test_colliding_names_stay_short_probes(void **state)
{
	char *keys = calloc(COLLIDING_PODS, NAME_LEN), *nodes = calloc(COLLIDING_NODES, NAME_LEN);
	struct cache *c = cache_new(&POD_CACHE_TYPE);
	size_t index_probe = 0;

	(void)state;
	assert_non_null(keys);
	assert_non_null(nodes);
	assert_non_null(c);
	/* Keys are "namespace/name", so the whole key is what collides. */
	hash_collide_names("ci/runner-", OLD_HASH_MASK, COLLIDING_PODS, keys, NAME_LEN);
	hash_collide_names("node-", OLD_HASH_MASK, COLLIDING_NODES, nodes, NAME_LEN);
	for (size_t i = 1; i < COLLIDING_PODS; i++)
		assert_int_equal(hash_collide_fnv1a(keys + i * NAME_LEN) & OLD_HASH_MASK,
		    hash_collide_fnv1a(keys) & OLD_HASH_MASK);
	for (size_t i = 0; i < COLLIDING_PODS; i++) {
		json_t *p = pod("ci", keys + i * NAME_LEN + strlen("ci/"),
		    nodes + (i % COLLIDING_NODES) * NAME_LEN);
		assert_int_equal(cache_apply(c, p), 1);
		json_decref(p);
	}
	assert_int_equal(cache_count(c), COLLIDING_PODS);

	size_t probe = cache_longest_probe(c, &index_probe);
	print_message("%u colliding pod keys: longest probe %zu; %u colliding node names: "
	    "longest index probe %zu\n", COLLIDING_PODS, probe, COLLIDING_NODES, index_probe);
	assert_true(probe >= 1 && probe <= PROBE_BOUND);
	assert_true(index_probe >= 1 && index_probe <= PROBE_BOUND);

	/* Every key and index value is still found. */
	for (size_t i = 0; i < COLLIDING_PODS; i++) {
		struct cache_obj *o = cache_get(c, keys + i * NAME_LEN);
		assert_non_null(o);
		assert_string_equal(o->key, keys + i * NAME_LEN);
		cache_obj_unref(o);
	}
	for (size_t i = 0; i < COLLIDING_NODES; i++)
		assert_int_equal(cache_index_count(c, nodes + i * NAME_LEN),
		    COLLIDING_PODS / COLLIDING_NODES);

	/* Removing half keeps the rest reachable (backward shift under the new hash). */
	for (size_t i = 0; i < COLLIDING_PODS; i += 2)
		assert_int_equal(cache_remove(c, keys + i * NAME_LEN, 0), 1);
	for (size_t i = 0; i < COLLIDING_PODS; i++) {
		struct cache_obj *o = cache_get(c, keys + i * NAME_LEN);
		assert_true((o != NULL) == (i % 2 == 1));
		cache_obj_unref(o);
	}
	assert_true(cache_longest_probe(c, NULL) <= PROBE_BOUND);
	cache_free(c);
	free(keys);
	free(nodes);
}

/* An empty cache has nothing to probe. */
static void
test_empty_cache_probe(void **state)
{
	struct cache *c = cache_new(&POD_CACHE_TYPE);
	size_t index_probe = 99;

	(void)state;
	assert_int_equal(cache_longest_probe(c, &index_probe), 0);
	assert_int_equal(index_probe, 0);
	cache_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_colliding_names_stay_short_probes),
		cmocka_unit_test(test_empty_cache_probe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
