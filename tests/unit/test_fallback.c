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

/* ---- the decision (fallback_decide) over a table ---- */

#define W_COV FALLBACK_COVERED
#define W_LAUNCH FALLBACK_LAUNCH
#define W_NOFIT FALLBACK_NO_FIT
#define MAXP 8

struct decide_row {
	const char *name;
	size_t npods;
	int64_t cpu[MAXP];           /* each pod's cpu request, millicores (256 MiB of memory each) */
	bool act[MAXP];              /* may have a node started now */
	size_t ncoming, nreservable;
	int64_t coming_used[4];      /* cpu already held on each coming node */
	unsigned standby;
	long room;                   /* poolSize - running */
	bool unknown_size;           /* no node of the pool to learn its allocatable from */
	/* expected */
	unsigned start, reserve, held, launch, no_fit;
	int where[MAXP];             /* coming index, ncoming + k for the k-th start, or W_* */
};

static const struct decide_row DECIDE_ROWS[] = {
	{ "webhook bypassed: four 900m pods take two of three standby nodes",
	  4, { 900, 900, 900, 900 }, { true, true, true, true }, 0, 0, { 0 }, 3, 3, false,
	  2, 0, 0, 0, 0, { 0, 0, 1, 1 } },
	{ "room on a starting node first, then a standby start for what does not fit there",
	  2, { 600, 900 }, { true, true }, 1, 1, { 1200 }, 2, 2, false,
	  1, 1, 0, 0, 0, { 0, 1 } },
	{ "poolSize - running caps the starts; the rest is launched",
	  4, { 1200, 1200, 1200, 1200 }, { true, true, true, true }, 0, 0, { 0 }, 3, 1, false,
	  1, 0, 0, 3, 0, { 0, W_LAUNCH, W_LAUNCH, W_LAUNCH } },
	{ "a pool over its size starts nothing",
	  1, { 1200 }, { true }, 0, 0, { 0 }, 2, -1, false,
	  0, 0, 0, 1, 0, { W_LAUNCH } },
	{ "no standby node: everything is launched, packed",
	  3, { 1200, 600, 1200 }, { true, true, true }, 0, 0, { 0 }, 0, 5, false,
	  0, 0, 0, 2, 0, { W_LAUNCH, W_LAUNCH, W_LAUNCH } },
	{ "pods in the extender's grace hold standby nodes for it, and count for launches",
	  2, { 1200, 1200 }, { false, false }, 0, 0, { 0 }, 1, 4, false,
	  0, 0, 1, 1, 0, { W_COV, W_LAUNCH } },
	{ "a pod in its grace rides in the room left on a node started for another",
	  2, { 1200, 600 }, { true, false }, 0, 0, { 0 }, 2, 4, false,
	  1, 0, 0, 0, 0, { 0, W_COV } },
	{ "a node made usable for pods a moment ago takes them without a reservation",
	  1, { 1200 }, { true }, 1, 0, { 0 }, 1, 1, false,
	  0, 0, 0, 0, 0, { W_COV } },
	{ "a full starting node takes nothing more",
	  1, { 100 }, { true }, 1, 1, { 1930 }, 1, 1, false,
	  1, 0, 0, 0, 0, { 1 } },
	{ "starting nodes in order: the earliest one with room",
	  2, { 1000, 800 }, { true, true }, 2, 2, { 1000, 0 }, 0, 0, false,
	  0, 2, 0, 0, 0, { 1, 0 } },
	{ "a pod bigger than a node fits none",
	  2, { 3000, 500 }, { true, true }, 0, 0, { 0 }, 1, 1, false,
	  1, 0, 0, 0, 1, { W_NOFIT, 0 } },
	{ "node size unknown: a node per pod",
	  3, { 100, 100, 100 }, { true, true, true }, 0, 0, { 0 }, 2, 5, true,
	  2, 0, 0, 1, 0, { 0, 1, W_LAUNCH } },
	{ "nothing waits", 0, { 0 }, { false }, 0, 0, { 0 }, 3, 3, false, 0, 0, 0, 0, 0, { 0 } },
};

static void
test_decide_table(void **state)
{
	struct resources alloc = req(1930, 7 * 1024);

	(void)state;
	alloc.pods = 29;
	for (size_t r = 0; r < sizeof(DECIDE_ROWS) / sizeof(DECIDE_ROWS[0]); r++) {
		const struct decide_row *row = &DECIDE_ROWS[r];
		struct resources reqs[MAXP], held[4];
		struct fallback_pod pods[MAXP];
		struct fallback_bin coming[4];
		struct fallback_plan plan;
		struct fallback_in in = {
			.alloc = row->unknown_size ? NULL : &alloc, .pods = pods, .npods = row->npods,
			.coming = coming, .ncoming = row->ncoming, .nreservable = row->nreservable,
			.standby = row->standby, .room = row->room,
		};

		for (size_t i = 0; i < row->npods; i++) {
			reqs[i] = req(row->cpu[i], 256);
			pods[i] = (struct fallback_pod){ &reqs[i], row->act[i] };
		}
		for (size_t i = 0; i < row->ncoming; i++) {
			coming[i].alloc = &alloc;
			resources_sum_init(&coming[i].used);
			held[i] = req(row->coming_used[i], 0);
			held[i].pods = 0;
			assert_int_equal(resources_sum_add(&coming[i].used, &held[i]), 0);
		}
		print_message("row %zu: %s\n", r, row->name);
		assert_int_equal(fallback_decide(&in, &plan), 0);
		assert_int_equal(plan.start, row->start);
		assert_int_equal(plan.reserve, row->reserve);
		assert_int_equal(plan.standby_held, row->held);
		assert_int_equal(plan.launch, row->launch);
		assert_int_equal(plan.no_fit, row->no_fit);
		for (size_t i = 0; i < row->npods; i++)
			assert_int_equal(plan.where[i], row->where[i]);
		fallback_plan_free(&plan);
	}
}

/* The starts never exceed the standby nodes nor poolSize - running, whatever the pods. */
static void
test_decide_never_over(void **state)
{
	struct resources alloc = req(1930, 7 * 1024);
	struct resources reqs[40];
	struct fallback_pod pods[40];
	struct fallback_plan plan;

	(void)state;
	alloc.pods = 29;
	for (size_t i = 0; i < 40; i++) {
		reqs[i] = req(100 + (int64_t)(i * 37 % 1800), 64);
		pods[i] = (struct fallback_pod){ &reqs[i], i % 3 != 0 };
	}
	for (unsigned standby = 0; standby < 6; standby++) {
		for (long room = -2; room < 8; room++) {
			struct fallback_in in = { .alloc = &alloc, .pods = pods, .npods = 40,
			    .standby = standby, .room = room };
			unsigned placed = 0;

			assert_int_equal(fallback_decide(&in, &plan), 0);
			assert_true(plan.start + plan.standby_held <= standby);
			assert_true((long)plan.start <= (room > 0 ? room : 0));
			for (size_t i = 0; i < 40; i++) {
				/* Only acting pods get a node started; every pod has a place. */
				if (plan.where[i] >= 0) {
					assert_true(pods[i].act);
					assert_true((unsigned)plan.where[i] < plan.start);
				}
				placed += plan.where[i] != W_NOFIT;
			}
			assert_int_equal(placed, 40);
			fallback_plan_free(&plan);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_packs_like_the_design_says),
		cmocka_unit_test(test_decreasing_order_packs_tighter),
		cmocka_unit_test(test_daemonsets_and_pod_slots),
		cmocka_unit_test(test_decide_table),
		cmocka_unit_test(test_decide_never_over),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
