/* Unit tests for pool size decisions: replenish, re-warm, shrink and the order of what a shrink retires. */
#include <string.h>

#include "test_util.h"
#include "stratos/poolsize.h"

struct row {
	const char *what;
	int size, min;
	struct poolsize_counts c;
	unsigned rewarmable;
	struct poolsize_plan want;
};

static const struct row rows[] = {
	{ "empty pool: launch minStandby", 5, 2, { 0 }, 0, { 0, 2, 0 } },
	{ "warming counts toward minStandby", 5, 2, { .warmup = 1, .total = 1 }, 0, { 0, 1, 0 } },
	{ "running nodes do not count", 5, 2, { .standby = 1, .running = 3, .total = 4 }, 0, { 0, 1, 0 } },
	{ "poolSize caps the launches", 4, 3, { .standby = 1, .running = 2, .total = 3 }, 0, { 0, 1, 0 } },
	{ "full pool: nothing", 3, 2, { .standby = 1, .running = 2, .total = 3 }, 0, { 0, 0, 0 } },
	{ "stopping takes a slot", 3, 3, { .standby = 2, .stopping = 1, .total = 3 }, 0, { 0, 0, 0 } },
	{ "failed warmups do not count as ready", 5, 2,
	  { .warmup = 2, .warmup_failed = 2, .total = 2 }, 0, { 0, 2, 0 } },
	{ "re-warm before launching", 3, 2, { .warmup = 2, .warmup_failed = 2, .total = 2 }, 1,
	  { 1, 1, 0 } },
	{ "re-warm when full", 2, 2, { .warmup = 2, .warmup_failed = 2, .total = 2 }, 2, { 2, 0, 0 } },
	{ "over minStandby: no shrink below poolSize", 10, 1, { .standby = 5, .total = 5 }, 0,
	  { 0, 0, 0 } },
	{ "poolSize lowered: shrink", 2, 1, { .standby = 3, .running = 1, .total = 4 }, 0, { 0, 0, 2 } },
	{ "shrink never takes running nodes", 1, 0, { .standby = 1, .running = 3, .total = 4 }, 0,
	  { 0, 0, 1 } },
	{ "the launch cap", 1000, 100, { 0 }, 0, { 0, 10, 0 } },
};

static void
test_plan_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct poolsize_plan got;
		poolsize_plan(rows[i].size, rows[i].min, &rows[i].c, rows[i].rewarmable, 10, &got);
		if (got.rewarm != rows[i].want.rewarm || got.launch != rows[i].want.launch ||
		    got.shrink != rows[i].want.shrink)
			fail_msg("%s: got rewarm %u launch %u shrink %u, want %u %u %u", rows[i].what,
			    got.rewarm, got.launch, got.shrink, rows[i].want.rewarm, rows[i].want.launch,
			    rows[i].want.shrink);
	}
}

static void
test_shrink_order(void **state)
{
	struct poolsize_victim v[] = {
		{ POOLSIZE_VICTIM_WARMUP, 500, 0 },
		{ POOLSIZE_VICTIM_STANDBY, 300, 1 },     /* used most recently */
		{ POOLSIZE_VICTIM_UNREGISTERED, 100, 2 },
		{ POOLSIZE_VICTIM_STANDBY, 100, 3 },     /* least recently used */
		{ POOLSIZE_VICTIM_FAILED, 900, 4 },
		{ POOLSIZE_VICTIM_WARMUP, 700, 5 },      /* newest warmup: least progress */
		{ POOLSIZE_VICTIM_UNREGISTERED, 200, 6 },
	};
	const size_t want[] = { 4, 3, 1, 6, 2, 5, 0 };

	(void)state;
	poolsize_shrink_order(v, 7);
	for (size_t i = 0; i < 7; i++)
		assert_int_equal(v[i].index, want[i]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_table),
		cmocka_unit_test(test_shrink_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
