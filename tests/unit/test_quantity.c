/* Unit tests for Kubernetes quantity parsing. */
#include <errno.h>

#include "test_util.h"
#include "stratos/quantity.h"

static void
test_cpu_milli(void **state)
{
	int64_t v;

	(void)state;
	assert_int_equal(quantity_parse_milli("7910m", &v), 0);
	assert_int_equal(v, 7910);
	assert_int_equal(quantity_parse_milli("2", &v), 0);
	assert_int_equal(v, 2000);
	assert_int_equal(quantity_parse_milli("0.5", &v), 0);
	assert_int_equal(v, 500);
	assert_int_equal(quantity_parse_milli(".25", &v), 0);
	assert_int_equal(v, 250);
	assert_int_equal(quantity_parse_milli("100u", &v), 0);
	assert_int_equal(v, 1);                  /* rounds up like MilliValue() */
	assert_int_equal(quantity_parse_milli("1e3", &v), 0);
	assert_int_equal(v, 1000000);
	assert_int_equal(quantity_parse_milli("0", &v), 0);
	assert_int_equal(v, 0);
}

static void
test_bytes(void **state)
{
	int64_t v;

	(void)state;
	assert_int_equal(quantity_parse("31369588Ki", &v), 0);
	assert_int_equal(v, 31369588LL * 1024);
	assert_int_equal(quantity_parse("4Gi", &v), 0);
	assert_int_equal(v, 4LL << 30);
	assert_int_equal(quantity_parse("192188443124", &v), 0);
	assert_int_equal(v, 192188443124LL);
	assert_int_equal(quantity_parse("500M", &v), 0);
	assert_int_equal(v, 500000000);
	assert_int_equal(quantity_parse("1.5Gi", &v), 0);
	assert_int_equal(v, 1610612736);
	assert_int_equal(quantity_parse("100m", &v), 0);
	assert_int_equal(v, 1);                  /* Value() rounds up */
	assert_int_equal(quantity_parse("1E", &v), 0);
	assert_int_equal(v, 1000000000000000000LL);
	assert_int_equal(quantity_parse("+3k", &v), 0);
	assert_int_equal(v, 3000);
	assert_int_equal(quantity_parse("-1", &v), 0);
	assert_int_equal(v, -1);
}

static void
test_invalid(void **state)
{
	int64_t v = 42;

	(void)state;
	assert_int_equal(quantity_parse("", &v), -EINVAL);
	assert_int_equal(quantity_parse(NULL, &v), -EINVAL);
	assert_int_equal(quantity_parse("Gi", &v), -EINVAL);
	assert_int_equal(quantity_parse(".", &v), -EINVAL);
	assert_int_equal(quantity_parse("1..2", &v), -EINVAL);
	assert_int_equal(quantity_parse("4GB", &v), -EINVAL);
	assert_int_equal(quantity_parse("1e", &v), -EINVAL);
	assert_int_equal(quantity_parse(" 1", &v), -EINVAL);
	assert_int_equal(quantity_parse("16Ei", &v), -ERANGE);
	assert_int_equal(quantity_parse("1e30", &v), -ERANGE);
	assert_int_equal(v, 42);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpu_milli),
		cmocka_unit_test(test_bytes),
		cmocka_unit_test(test_invalid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
