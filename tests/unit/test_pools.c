/* Unit tests for the pools registry: snapshots, copy-on-write writers, lookups, concurrent readers and writers. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "test_util.h"
#include "stratos/pools.h"

static json_t *
pool_json(const char *name, const char *team, int pool_size)
{
	return json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:i, s:i, s:{s:{s:s}, s:{s:s, s:s, s:s}}}}",
	    "apiVersion", "stratos.sh/v1alpha1", "kind", "NodePool",
	    "metadata", "name", name, "resourceVersion", "7",
	    "spec", "poolSize", pool_size, "minStandby", 0, "template", "nodeClassRef", "name", "c1",
	    "labels", "stratos.sh/pool", name, "team", team, "idx", name + 5);
}

static json_t *
class_json(const char *name)
{
	return json_pack("{s:s, s:s, s:{s:s}, s:{s:s, s:s, s:[s], s:[s], s:s, s:s}}",
	    "apiVersion", "stratos.sh/v1alpha1", "kind", "AWSNodeClass", "metadata", "name", name,
	    "spec", "instanceType", "m5.large", "ami", "ami-01234567", "subnetIds", "subnet-01234567",
	    "securityGroupIds", "sg-01234567", "iamInstanceProfile", "node", "userData", "x");
}

static void
upsert_pool(struct pools *p, const char *name, const char *team, int size)
{
	json_t *j = pool_json(name, team, size);

	assert_int_equal(pools_upsert_nodepool(p, j, NULL), 0);
	json_decref(j);
}

static void
test_empty(void **state)
{
	struct pools *p = pools_new();
	const struct pools_snapshot *s = pools_acquire(p);
	const char *k = "team", *v = "a";
	const struct nodepool *out[1];

	(void)state;
	assert_int_equal(s->generation, 0);
	assert_false(s->loaded);
	assert_int_equal(s->nnodepools, 0);
	assert_null(pools_find_nodepool(s, "x"));
	assert_null(pools_find_nodeclass(s, "x"));
	assert_int_equal(pools_match_labels(s, &k, &v, 1, out, 1), 0);
	pools_release(s);
	assert_false(pools_loaded(p));
	pools_free(p);
	pools_free(NULL);
	pools_release(NULL);
}

static void
test_upsert_delete(void **state)
{
	struct pools *p = pools_new();
	const struct pools_snapshot *s;
	struct fieldcheck_report rep;
	json_t *j;

	(void)state;
	upsert_pool(p, "pool-b", "x", 3);
	upsert_pool(p, "pool-c", "x", 3);
	upsert_pool(p, "pool-a", "y", 3);
	j = class_json("c1");
	assert_int_equal(pools_upsert_nodeclass(p, j, NULL), 0);
	json_decref(j);
	assert_int_equal(pools_generation(p), 4);
	s = pools_acquire(p);
	assert_int_equal(s->nnodepools, 3);
	assert_string_equal(s->nodepools[0]->name, "pool-a");
	assert_string_equal(s->nodepools[1]->name, "pool-b");
	assert_string_equal(s->nodepools[2]->name, "pool-c");
	assert_string_equal(s->nodepools[1]->resource_version, "7");
	assert_string_equal(pools_find_nodeclass(s, "c1")->instance_type, "m5.large");
	pools_release(s);

	/* Replace by name. */
	upsert_pool(p, "pool-b", "x", 9);
	s = pools_acquire(p);
	assert_int_equal(s->nnodepools, 3);
	assert_int_equal(pools_find_nodepool(s, "pool-b")->pool_size, 9);
	pools_release(s);

	assert_int_equal(pools_delete_nodepool(p, "pool-b"), 0);
	assert_int_equal(pools_delete_nodepool(p, "pool-b"), -ENOENT);
	assert_int_equal(pools_delete_nodeclass(p, "c1"), 0);
	assert_int_equal(pools_delete_nodeclass(p, "c1"), -ENOENT);
	s = pools_acquire(p);
	assert_int_equal(s->nnodepools, 2);
	assert_null(pools_find_nodepool(s, "pool-b"));
	assert_int_equal(s->nnodeclasses, 0);
	assert_int_equal(s->generation, 7);
	pools_release(s);

	/* Unusable objects are refused; invalid but named ones are kept, marked. */
	j = json_pack("{s:{}}", "spec");
	assert_int_equal(pools_upsert_nodepool(p, j, NULL), -EINVAL);
	json_decref(j);
	j = json_integer(5);
	assert_int_equal(pools_upsert_nodepool(p, j, NULL), -EINVAL);
	json_decref(j);
	j = pool_json("pool-z", "z", 5000);
	fieldcheck_report_init(&rep);
	assert_int_equal(pools_upsert_nodepool(p, j, &rep), 0);
	assert_int_equal(rep.nviolations, 1);
	assert_string_equal(rep.violations[0].field, "spec.poolSize");
	fieldcheck_report_free(&rep);
	json_decref(j);
	s = pools_acquire(p);
	assert_int_equal(pools_find_nodepool(s, "pool-z")->nviolations, 1);
	pools_release(s);
	pools_free(p);
}

/* A held snapshot never changes; unchanged objects are shared between snapshots. */
static void
test_snapshot_isolation(void **state)
{
	struct pools *p = pools_new();
	const struct pools_snapshot *s1, *s2;

	(void)state;
	upsert_pool(p, "pool-a", "x", 3);
	upsert_pool(p, "pool-b", "x", 3);
	s1 = pools_acquire(p);
	upsert_pool(p, "pool-b", "x", 4);
	assert_int_equal(pools_delete_nodepool(p, "pool-a"), 0);
	s2 = pools_acquire(p);
	assert_int_equal(s1->nnodepools, 2);
	assert_int_equal(pools_find_nodepool(s1, "pool-b")->pool_size, 3);
	assert_string_equal(pools_find_nodepool(s1, "pool-a")->name, "pool-a");
	assert_int_equal(s2->nnodepools, 1);
	assert_int_equal(pools_find_nodepool(s2, "pool-b")->pool_size, 4);
	assert_true(s2->generation == s1->generation + 2);
	pools_release(s1);
	/* The registry may go away while a reader still holds a snapshot. */
	pools_free(p);
	assert_int_equal(pools_find_nodepool(s2, "pool-b")->pool_size, 4);
	pools_release(s2);
}

static void
test_replace_and_loaded(void **state)
{
	struct pools *p = pools_new();
	json_t *items = json_array(), *classes = json_array(), *mixed;
	const struct pools_snapshot *s;
	size_t skipped = 0;

	(void)state;
	upsert_pool(p, "pool-old", "x", 3);
	json_array_append_new(items, pool_json("pool-b", "x", 1));
	json_array_append_new(items, pool_json("pool-a", "x", 1));
	json_array_append_new(items, pool_json("pool-b", "x", 2));  /* the later one wins */
	json_array_append_new(items, json_pack("{s:{}}", "spec"));  /* no name */
	json_array_append_new(items, json_string("junk"));
	assert_int_equal(pools_replace_nodepools(p, items, &skipped), 0);
	assert_int_equal(skipped, 2);
	assert_false(pools_loaded(p));          /* classes not synced yet */
	s = pools_acquire(p);
	assert_int_equal(s->nnodepools, 2);
	assert_null(pools_find_nodepool(s, "pool-old"));
	assert_int_equal(pools_find_nodepool(s, "pool-b")->pool_size, 2);
	pools_release(s);
	assert_int_equal(pools_replace_nodeclasses(p, classes, NULL), 0);
	assert_true(pools_loaded(p));

	/* replace_all refuses other kinds and changes nothing. */
	mixed = json_pack("[o, {s:s}]", class_json("c9"), "kind", "ConfigMap");
	assert_int_equal(pools_replace_all(p, mixed), -EINVAL);
	s = pools_acquire(p);
	assert_int_equal(s->nnodepools, 2);
	assert_int_equal(s->nnodeclasses, 0);
	pools_release(s);
	json_array_remove(mixed, 1);
	assert_int_equal(pools_replace_all(p, mixed), 0);
	s = pools_acquire(p);
	assert_int_equal(s->nnodepools, 0);
	assert_int_equal(s->nnodeclasses, 1);
	pools_release(s);

	/* An empty list still counts as synced. */
	pools_free(p);
	p = pools_new();
	assert_int_equal(pools_mark_synced(p, POOLS_SYNCED_NODEPOOLS), 0);
	assert_false(pools_loaded(p));
	assert_int_equal(pools_mark_synced(p, POOLS_SYNCED_NODECLASSES), 0);
	assert_true(pools_loaded(p));
	pools_free(p);
	json_decref(items);
	json_decref(classes);
	json_decref(mixed);
}

static void
test_limit(void **state)
{
	struct pools *p = pools_new();
	json_t *items = json_array();
	char name[32];

	(void)state;
	for (unsigned i = 0; i <= LIMITS_POOLS_MAX; i++) {
		snprintf(name, sizeof(name), "pool-%u", i);
		json_array_append_new(items, pool_json(name, "x", 1));
	}
	assert_int_equal(pools_replace_nodepools(p, items, NULL), -ENOSPC);
	json_array_remove(items, 0);
	assert_int_equal(pools_replace_nodepools(p, items, NULL), 0);
	assert_int_equal(pools_upsert_nodepool(p, json_array_get(items, 5), NULL), 0);
	{
		json_t *extra = pool_json("pool-extra", "x", 1);
		assert_int_equal(pools_upsert_nodepool(p, extra, NULL), -ENOSPC);
		json_decref(extra);
	}
	json_decref(items);
	pools_free(p);
}

/* 150 pools: the label-subset lookup finds exactly the pools containing the selector. */
static void
test_match_labels(void **state)
{
	struct pools *p = pools_new();
	const struct pools_snapshot *s;
	const struct nodepool *out[20];
	char name[32], team[8];
	const char *k[3], *v[3];

	(void)state;
	for (int i = 0; i < 150; i++) {
		snprintf(name, sizeof(name), "pool-%03d", i);
		snprintf(team, sizeof(team), "t%d", i % 10);
		upsert_pool(p, name, team, 1);
	}
	s = pools_acquire(p);
	k[0] = "idx";
	v[0] = "137";
	assert_int_equal(pools_match_labels(s, k, v, 1, out, 20), 1);
	assert_string_equal(out[0]->name, "pool-137");
	k[0] = "team";
	v[0] = "t3";
	assert_int_equal(pools_match_labels(s, k, v, 1, out, 20), 15);
	for (int i = 0; i < 15; i++) {
		snprintf(name, sizeof(name), "pool-%03d", 3 + 10 * i);
		assert_string_equal(out[i]->name, name);
	}
	assert_int_equal(pools_match_labels(s, k, v, 1, out, 2), 15);   /* count beyond max */
	k[1] = "idx";
	v[1] = "013";
	assert_int_equal(pools_match_labels(s, k, v, 2, out, 20), 1);
	assert_string_equal(out[0]->name, "pool-013");
	v[1] = "014";
	assert_int_equal(pools_match_labels(s, k, v, 2, out, 20), 0);
	k[2] = "stratos.sh/pool";
	v[1] = "013";
	v[2] = "pool-013";
	assert_int_equal(pools_match_labels(s, k, v, 3, out, 20), 1);
	k[0] = "team";
	v[0] = "t99";
	assert_int_equal(pools_match_labels(s, k, v, 1, out, 20), 0);
	assert_int_equal(pools_match_labels(s, k, v, 0, out, 20), 0);
	pools_release(s);
	/* The index follows changes. */
	assert_int_equal(pools_delete_nodepool(p, "pool-013"), 0);
	upsert_pool(p, "pool-003", "t4", 1);
	s = pools_acquire(p);
	k[0] = "team";
	v[0] = "t3";
	assert_int_equal(pools_match_labels(s, k, v, 1, out, 20), 13);
	pools_release(s);
	pools_free(p);
}

/* Concurrency smoke test: one writer, three readers checking invariants of every snapshot they see. */
struct race {
	struct pools *pools;
	volatile int stop;
	unsigned long reads;
	int errors;
};

static void *
race_reader(void *arg)
{
	struct race *r = arg;
	uint64_t last = 0;

	while (!r->stop) {
		const struct pools_snapshot *s = pools_acquire(r->pools);
		if (s->generation < last)
			r->errors++;
		last = s->generation;
		for (size_t i = 0; i < s->nnodepools; i++) {
			const struct nodepool *np = s->nodepools[i];
			const char *k = "stratos.sh/pool";
			const struct nodepool *out[1];
			if (i > 0 && strcmp(s->nodepools[i - 1]->name, np->name) >= 0)
				r->errors++;
			if (pools_match_labels(s, &k, (const char *const *)&np->name, 1, out, 1) != 1 ||
			    out[0] != np)
				r->errors++;
			if (pools_find_nodepool(s, np->name) != np)
				r->errors++;
		}
		pools_release(s);
		__atomic_add_fetch(&r->reads, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void
test_concurrency(void **state)
{
	struct race r = { .pools = pools_new() };
	pthread_t readers[3];
	uint64_t published = 0;
	char name[32];

	(void)state;
	for (int i = 0; i < 3; i++)
		pthread_create(&readers[i], NULL, race_reader, &r);
	for (int i = 0; i < 600; i++) {
		snprintf(name, sizeof(name), "pool-%02d", (i * 7) % 40);
		if (i % 3 == 2) {
			if (pools_delete_nodepool(r.pools, name) == 0)
				published++;
		} else {
			upsert_pool(r.pools, name, i % 2 ? "a" : "b", 1 + i % 10);
			published++;
		}
	}
	/* Under valgrind the threads run one at a time: let the readers see at least one snapshot each
	 * before stopping them, so the check below is about the readers, not about scheduling. */
	while (__atomic_load_n(&r.reads, __ATOMIC_RELAXED) < 3)
		sched_yield();
	r.stop = 1;
	for (int i = 0; i < 3; i++)
		pthread_join(readers[i], NULL);
	assert_int_equal(r.errors, 0);
	assert_true(r.reads > 0);
	/* Every successful write published exactly one snapshot; a failed delete none. */
	assert_int_equal(pools_generation(r.pools), published);
	pools_free(r.pools);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_upsert_delete),
		cmocka_unit_test(test_snapshot_isolation),
		cmocka_unit_test(test_replace_and_loaded),
		cmocka_unit_test(test_limit),
		cmocka_unit_test(test_match_labels),
		cmocka_unit_test(test_concurrency),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
