/* Unit tests for the metrics registry and its text format. */
#include <string.h>

#include "test_util.h"
#include "stratos/metrics.h"

static void
test_counter_and_labels(void **state)
{
	static const char *const labels[] = { "handler", "code", NULL };
	struct metrics_family *f;
	struct buf out;

	(void)state;
	f = metrics_register(METRICS_COUNTER, "test_requests_total", "Requests.", labels, NULL, 0);
	assert_non_null(f);
	assert_ptr_equal(metrics_register(METRICS_COUNTER, "test_requests_total", "x", labels,
	    NULL, 0), f);
	assert_null(metrics_register(METRICS_GAUGE, "test_requests_total", "x", NULL, NULL, 0));
	metrics_counter_add(f, 1, "mutate-pod", "200");
	metrics_counter_add(f, 2, "mutate-pod", "200");
	metrics_counter_add(f, 1, "with\"quote", "400");
	metrics_counter_add(f, -5, "mutate-pod", "200"); /* ignored: counters only go up */
	assert_true(metrics_value(f, "mutate-pod", "200") == 3);
	assert_true(metrics_value(f, "nope", "200") == 0);

	buf_init(&out, 1 << 20);
	assert_int_equal(metrics_render(&out), 0);
	assert_non_null(strstr(out.data, "# TYPE test_requests_total counter\n"));
	assert_non_null(strstr(out.data,
	    "test_requests_total{handler=\"mutate-pod\",code=\"200\"} 3\n"));
	assert_non_null(strstr(out.data, "handler=\"with\\\"quote\""));
	buf_free(&out);
}

static void
test_histogram_buckets_are_cumulative(void **state)
{
	static const char *const labels[] = { "handler", NULL };
	static const double buckets[] = { 0.001, 0.01, 0.1 };
	struct metrics_family *h;
	struct buf out;

	(void)state;
	h = metrics_register(METRICS_HISTOGRAM, "test_seconds", "Latency.", labels, buckets, 3);
	metrics_histogram_observe(h, 0.0005, "a");
	metrics_histogram_observe(h, 0.005, "a");
	metrics_histogram_observe(h, 5, "a");
	assert_int_equal(metrics_histogram_count(h, "a"), 3);
	buf_init(&out, 1 << 20);
	metrics_render(&out);
	assert_non_null(strstr(out.data, "test_seconds_bucket{handler=\"a\",le=\"0.001\"} 1\n"));
	assert_non_null(strstr(out.data, "test_seconds_bucket{handler=\"a\",le=\"0.01\"} 2\n"));
	assert_non_null(strstr(out.data, "test_seconds_bucket{handler=\"a\",le=\"0.1\"} 2\n"));
	assert_non_null(strstr(out.data, "test_seconds_bucket{handler=\"a\",le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(out.data, "test_seconds_count{handler=\"a\"} 3\n"));
	assert_non_null(strstr(out.data, "test_seconds_sum{handler=\"a\"} 5.0055"));
	buf_free(&out);
}

static void
test_gauge_reset(void **state)
{
	static const char *const labels[] = { "pool", "state", NULL };
	struct metrics_family *g;

	(void)state;
	g = metrics_register(METRICS_GAUGE, "test_nodes", "Nodes.", labels, NULL, 0);
	metrics_gauge_set(g, 4, "ci", "standby");
	metrics_gauge_add(g, -1, "ci", "standby");
	assert_true(metrics_value(g, "ci", "standby") == 3);
	metrics_gauge_reset(g);
	assert_true(metrics_value(g, "ci", "standby") == 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_and_labels),
		cmocka_unit_test(test_histogram_buckets_are_cumulative),
		cmocka_unit_test(test_gauge_reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
