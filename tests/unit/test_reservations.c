/* Unit tests for the stratos.sh/reservations annotation: text round trips, rewrites, and NodeResourcesFit's arithmetic over promises. */
#include <errno.h>
#include <string.h>

#include "test_util.h"
#include "stratos/reservations.h"
#include "stratos/resources.h"

static struct resources
req(const char *json)
{
	struct resources r;
	json_t *j = json_loads(json, 0, NULL);

	assert_non_null(j);
	assert_int_equal(resources_parse_list(j, &r), 0);
	json_decref(j);
	r.pods = 1;
	return r;
}

static void
test_parse_empty_and_malformed(void **state)
{
	struct reservations r;

	(void)state;
	assert_int_equal(reservations_parse(NULL, &r), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(reservations_parse("", &r), 0);
	assert_int_equal(reservations_parse("[]", &r), 0);
	assert_int_equal(r.n, 0);
	reservations_free(&r);
	/* Not a list, an entry without uid, a quantity that does not parse, duplicate keys. */
	assert_int_equal(reservations_parse("{}", &r), -EINVAL);
	assert_int_equal(reservations_parse("[{\"pod\":\"a/b\"}]", &r), -EINVAL);
	assert_int_equal(reservations_parse("[{\"uid\":\"u\",\"requests\":{\"cpu\":\"x\"}}]", &r),
	    -EINVAL);
	assert_int_equal(r.n, 0);
	assert_int_equal(reservations_parse("[{\"uid\":\"u\",\"uid\":\"v\"}]", &r), -EINVAL);
	assert_int_equal(reservations_parse("[1", &r), -EINVAL);
}

static void
test_round_trip(void **state)
{
	struct resources a = req("{\"cpu\":\"1500m\",\"memory\":\"4Gi\",\"nvidia.com/gpu\":\"1\"}");
	struct resources b = req("{\"cpu\":\"2\",\"ephemeral-storage\":\"10Gi\"}");
	struct reservations r = { 0 }, back;
	char *t1 = NULL, *t2 = NULL;

	(void)state;
	assert_int_equal(reservations_with(&r, "u1", "ci/a", &a, 1796000000000LL, &t1), 0);
	assert_string_equal(t1, "[{\"uid\":\"u1\",\"pod\":\"ci/a\",\"requests\":{\"cpu\":\"1500m\","
	    "\"memory\":\"4Gi\",\"nvidia.com/gpu\":\"1\"},\"since\":\"2026-11-30T00:53:20Z\"}]");
	assert_int_equal(reservations_parse(t1, &back), 0);
	assert_int_equal(back.n, 1);
	assert_int_equal(back.v[0].requests.cpu_milli, 1500);
	assert_int_equal(back.v[0].requests.memory, 4LL << 30);
	assert_int_equal(back.v[0].requests.pods, 1);
	assert_int_equal(resources_ext_get(&back.v[0].requests, "nvidia.com/gpu"), 1);
	assert_int_equal(back.v[0].since_ms, 1796000000000LL);
	assert_string_equal(back.v[0].pod, "ci/a");
	/* Add a second, then replace the first (same uid): order kept, no duplicate. */
	assert_int_equal(reservations_with(&back, "u2", "ci/b", &b, 1796000001000LL, &t2), 0);
	reservations_free(&back);
	assert_int_equal(reservations_parse(t2, &back), 0);
	assert_int_equal(back.n, 2);
	assert_string_equal(back.v[1].uid, "u2");
	assert_int_equal(back.v[1].requests.cpu_milli, 2000);
	free(t2);
	assert_int_equal(reservations_with(&back, "u1", "ci/a", &b, 1796000002000LL, &t2), 0);
	reservations_free(&back);
	assert_int_equal(reservations_parse(t2, &back), 0);
	assert_int_equal(back.n, 2);
	assert_string_equal(back.v[0].uid, "u2");
	assert_string_equal(back.v[1].uid, "u1");
	assert_int_equal(back.v[1].requests.cpu_milli, 2000);
	assert_non_null(reservations_find(&back, "u1"));
	assert_null(reservations_find(&back, "nope"));
	free(t2);
	/* Without: one left, then none (the annotation goes). */
	assert_int_equal(reservations_without(&back, "u2", &t2), 0);
	assert_non_null(strstr(t2, "\"u1\""));
	assert_null(strstr(t2, "\"u2\""));
	free(t2);
	reservations_free(&back);
	assert_int_equal(reservations_parse(t1, &back), 0);
	assert_int_equal(reservations_without(&back, "u1", &t2), 0);
	assert_null(t2);
	assert_int_equal(reservations_without(&back, "other", &t2), 0);
	assert_string_equal(t2, t1);
	free(t2);
	reservations_free(&back);
	free(t1);
	resources_release(&a);
	resources_release(&b);
}

static bool
keep_odd(void *ctx, const struct reservation *e)
{
	(void)ctx;
	return (e->uid[1] - '0') % 2 == 1;
}

static void
test_keep(void **state)
{
	struct reservations r;

	(void)state;
	assert_int_equal(reservations_parse("[{\"uid\":\"u1\"},{\"uid\":\"u2\"},{\"uid\":\"u3\"}]", &r),
	    0);
	assert_int_equal(reservations_keep(&r, keep_odd, NULL), 1);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.v[0].uid, "u1");
	assert_string_equal(r.v[1].uid, "u3");
	reservations_free(&r);
}

/* NodeResourcesFit (noderesources/fit.go fitsRequest) over reservations. */
static void
test_fit(void **state)
{
	struct resources alloc = req("{\"cpu\":\"7910m\",\"memory\":\"29Gi\",\"nvidia.com/gpu\":\"1\"}");
	struct resources pod = req("{\"cpu\":\"2\",\"memory\":\"4Gi\"}");
	struct resources zero = req("{}");
	struct resources gpu = req("{\"nvidia.com/gpu\":\"1\"}");
	struct resources_sum used;
	struct reservations r;
	const char *short_of;
	char text[2048];

	(void)state;
	alloc.pods = 4;
	resources_sum_init(&used);
	/* Empty node: fits. */
	assert_true(reservations_fit(&alloc, &used, NULL, NULL, &pod, &short_of));
	assert_null(short_of);
	/* Three reservations of 2 CPU: 6 of 7.91 promised, a fourth does not fit (cpu). */
	snprintf(text, sizeof(text), "[%s,%s,%s]",
	    "{\"uid\":\"a\",\"requests\":{\"cpu\":\"2\",\"memory\":\"4Gi\"}}",
	    "{\"uid\":\"b\",\"requests\":{\"cpu\":\"2\",\"memory\":\"4Gi\"}}",
	    "{\"uid\":\"c\",\"requests\":{\"cpu\":\"2\",\"memory\":\"4Gi\"}}");
	assert_int_equal(reservations_parse(text, &r), 0);
	assert_false(reservations_fit(&alloc, &used, &r, NULL, &pod, &short_of));
	assert_string_equal(short_of, "cpu");
	/* One of them is the pod itself: it fits beside the other two. */
	assert_true(reservations_fit(&alloc, &used, &r, "b", &pod, NULL));
	/* A pod requesting nothing is not refused for cpu, only counted as a pod: 3 + 1 <= 4. */
	assert_true(reservations_fit(&alloc, &used, &r, NULL, &zero, NULL));
	/* DaemonSet pods bound there use the last pod slot. */
	assert_int_equal(resources_sum_add(&used, &zero), 0);
	assert_false(reservations_fit(&alloc, &used, &r, NULL, &zero, &short_of));
	assert_string_equal(short_of, "pods");
	reservations_free(&r);
	/* Extended resources: one GPU, promised once. */
	resources_sum_init(&used);
	assert_int_equal(reservations_parse("[{\"uid\":\"g\",\"requests\":{\"nvidia.com/gpu\":\"1\"}}]",
	    &r), 0);
	assert_false(reservations_fit(&alloc, &used, &r, NULL, &gpu, &short_of));
	assert_string_equal(short_of, "nvidia.com/gpu");
	assert_true(reservations_fit(&alloc, &used, &r, "g", &gpu, NULL));
	/* Memory over what is left. */
	reservations_free(&r);
	assert_int_equal(reservations_parse("[{\"uid\":\"m\",\"requests\":{\"memory\":\"26Gi\"}}]",
	    &r), 0);
	assert_false(reservations_fit(&alloc, &used, &r, NULL, &pod, &short_of));
	assert_string_equal(short_of, "memory");
	reservations_free(&r);
	resources_release(&alloc);
	resources_release(&pod);
	resources_release(&gpu);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_empty_and_malformed),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_keep),
		cmocka_unit_test(test_fit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
