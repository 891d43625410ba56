/* Unit tests for the fallback scale-up's packing: first-fit-decreasing into the pool's node size, as the scheduler counts. */
#include <errno.h>
#include <string.h>

#include "test_util.h"
#include "stratos/fallback.h"

static struct resources
req(int64_t cpu_milli, int64_t mem_mi)
{
	struct resources r;

	memset(&r, 0, sizeof(r));
	r.cpu_milli = cpu_milli;
	r.memory = mem_mi * 1024 * 1024;
	r.pods = 1;
	return r;
}

static void
test_packs_like_the_design_says(void **state)
{
	/* m5.large-ish: 1930m, 7 GiB, 29 pods. */
	struct resources alloc = req(1930, 7 * 1024);
	struct resources r[10];
	const struct resources *p[10];
	int assign[10];

	(void)state;
	alloc.pods = 29;
	/* 10 pods of 600m: 3 per node → 4 nodes (the extender test's burst). */
	for (int i = 0; i < 10; i++) {
		r[i] = req(600, 512);
		p[i] = &r[i];
	}
	assert_int_equal(fallback_pack(&alloc, NULL, p, 10, 100, assign), 4);
	for (int i = 0; i < 10; i++)
		assert_int_equal(assign[i], i / 3);
	/* Never more nodes than allowed: the rest waits (-1). */
	assert_int_equal(fallback_pack(&alloc, NULL, p, 10, 2, assign), 2);
	assert_int_equal(assign[6], -1);
	assert_int_equal(assign[9], -1);
}

static void
test_decreasing_order_packs_tighter(void **state)
{
	struct resources alloc = req(2000, 8192);
	/* First-fit in this order would need 3 nodes; decreasing needs 2. */
	struct resources r[4] = { req(500, 100), req(1500, 100), req(500, 100), req(1500, 100) };
	const struct resources *p[4] = { &r[0], &r[1], &r[2], &r[3] };
	int assign[4];

	(void)state;
	alloc.pods = 110;
	assert_int_equal(fallback_pack(&alloc, NULL, p, 4, 10, assign), 2);
	assert_int_equal(assign[1], 0);   /* the big ones open the nodes */
	assert_int_equal(assign[3], 1);
	assert_int_equal(assign[0], 0);   /* the small ones fill them */
	assert_int_equal(assign[2], 1);
}

static void
test_daemonsets_and_pod_slots(void **state)
{
	struct resources alloc = req(4000, 16384);
	struct resources ds = req(1000, 1024);
	struct resources r[3] = { req(1500, 100), req(1500, 100), req(100, 100) };
	struct resources too_big = req(5000, 100);
	const struct resources *p[3] = { &r[0], &r[1], &r[2] };
	const struct resources *big[1] = { &too_big };
	struct resources_sum base;
	int assign[3];

	(void)state;
	alloc.pods = 3;
	resources_sum_init(&base);
	assert_int_equal(resources_sum_add(&base, &ds), 0);
	/* 1000m of DaemonSets, 3 pod slots (1 taken): two pods per node at most. */
	assert_int_equal(fallback_pack(&alloc, &base, p, 3, 10, assign), 2);
	assert_int_equal(assign[0], 0);
	assert_int_equal(assign[1], 0);
	assert_int_equal(assign[2], 1);
	/* A pod no node can take opens none. */
	assert_int_equal(fallback_pack(&alloc, NULL, big, 1, 10, assign), 0);
	assert_int_equal(assign[0], -1);
	assert_int_equal(fallback_pack(&alloc, NULL, p, 0, 10, assign), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_packs_like_the_design_says),
		cmocka_unit_test(test_decreasing_order_packs_tighter),
		cmocka_unit_test(test_daemonsets_and_pod_slots),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
