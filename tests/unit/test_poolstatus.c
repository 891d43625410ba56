/* Unit tests for the NodePool status: counts, conditions that keep their transition time, Degraded that clears, lastScaleUpTime. */
#include <string.h>

#include "test_util.h"
#include "stratos/poolstatus.h"
#include "stratos/timeutil.h"

#define T0 1796000000000LL

static struct nodepool *
pool(int size, int min)
{
	json_t *j = json_pack("{s:s,s:s,s:{s:s,s:i},s:{s:i,s:i,s:{s:{s:s,s:s}}}}", "apiVersion",
	    "stratos.sh/v1alpha1", "kind", "NodePool", "metadata", "name", "ci", "generation", 3,
	    "spec", "poolSize", size, "minStandby", min, "template", "nodeClassRef", "kind",
	    "AWSNodeClass", "name", "ci");
	struct nodepool *p = NULL;

	assert_int_equal(nodepool_parse(j, NULL, &p), 0);
	json_decref(j);
	return p;
}

static const json_t *
cond(const json_t *st, const char *type)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(st, "conditions"), i, c)
		if (strcmp(json_string_value(json_object_get(c, "type")), type) == 0)
			return c;
	fail_msg("no condition %s", type);
	return NULL;
}

static const char *
field(const json_t *st, const char *type, const char *key)
{
	return json_string_value(json_object_get(cond(st, type), key));
}

static void
test_counts_and_conditions(void **state)
{
	struct nodepool *p = pool(5, 2);
	struct poolsize_counts c = { .warmup = 1, .standby = 1, .running = 2, .total = 4 };
	struct poolstatus_facts f = { 0 };
	json_t *st, *st2, *st3;
	char t0[TIME_RFC3339_LEN], t1[TIME_RFC3339_LEN];

	(void)state;
	time_format_rfc3339(T0, t0);
	time_format_rfc3339(T0 + 60000, t1);
	st = poolstatus_build(p, &c, &f, NULL, T0);
	assert_int_equal(json_integer_value(json_object_get(st, "observedGeneration")), 3);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "nodes"), "total")), 4);
	assert_string_equal(field(st, "Ready", "status"), "False");
	assert_string_equal(field(st, "Ready", "reason"), "Replenishing");
	assert_string_equal(field(st, "Degraded", "status"), "False");
	assert_string_equal(field(st, "ScaledUp", "status"), "True");
	assert_string_equal(field(st, "Ready", "lastTransitionTime"), t0);
	assert_null(json_object_get(st, "lastScaleUpTime"));
	/* Unchanged a minute later: the same object, no write. */
	st2 = poolstatus_build(p, &c, &f, st, T0 + 60000);
	assert_false(poolstatus_changed(st2, st));
	/* The standby comes: Ready turns True at that time; ScaledUp keeps its time. */
	c.warmup = 0;
	c.standby = 2;
	f.last_scale_up_ms = T0 + 30000;
	st3 = poolstatus_build(p, &c, &f, st2, T0 + 60000);
	assert_true(poolstatus_changed(st3, st2));
	assert_string_equal(field(st3, "Ready", "status"), "True");
	assert_string_equal(field(st3, "Ready", "lastTransitionTime"), t1);
	assert_string_equal(field(st3, "ScaledUp", "lastTransitionTime"), t0);
	assert_non_null(json_object_get(st3, "lastScaleUpTime"));
	json_decref(st);
	json_decref(st2);
	json_decref(st3);
	nodepool_free(p);
}

static void
test_degraded_clears_and_last_scale_up_stays(void **state)
{
	struct nodepool *p = pool(5, 1);
	struct poolsize_counts c = { .standby = 1, .total = 1 };
	struct poolstatus_facts f = { "InsufficientCapacity", "no m5.2xlarge in us-east-1a",
	    T0 - 3600000 };
	json_t *bad, *good;
	char last[TIME_RFC3339_LEN];

	(void)state;
	bad = poolstatus_build(p, &c, &f, NULL, T0);
	assert_string_equal(field(bad, "Degraded", "status"), "True");
	assert_string_equal(field(bad, "Degraded", "reason"), "InsufficientCapacity");
	/* The cause is gone (a launch succeeded): False, AsExpected. */
	f.degraded_reason = NULL;
	f.last_scale_up_ms = 0;      /* the node that had started-at is gone */
	good = poolstatus_build(p, &c, &f, bad, T0 + 1000);
	assert_string_equal(field(good, "Degraded", "status"), "False");
	assert_string_equal(field(good, "Degraded", "reason"), "AsExpected");
	time_format_rfc3339(T0 - 3600000, last);
	assert_string_equal(json_string_value(json_object_get(good, "lastScaleUpTime")), last);
	json_decref(bad);
	json_decref(good);
	nodepool_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts_and_conditions),
		cmocka_unit_test(test_degraded_clears_and_last_scale_up_stays),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
