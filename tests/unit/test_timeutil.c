/* Unit tests for timestamps and Go duration strings. */
#include <errno.h>
#include <string.h>

#include "test_util.h"
#include "stratos/timeutil.h"

static void
test_duration_parse(void **state)
{
	static const struct {
		const char *in;
		int64_t ms;
	} good[] = {
		{"0", 0}, {"0s", 0}, {"30s", 30000}, {"5m", 300000}, {"1h30m", 5400000},
		{"1.5h", 5400000}, {"300ms", 300}, {"2h45m10s", 9910000}, {"1500us", 1},
		{"10m0s", 600000}, {"+5s", 5000}, {".5s", 500}, {"1\xc2\xb5s", 0},
	};
	static const char *const bad[] = {
		"", "5", "15 minutes", "-5s", "5x", "1e3s", "m", "5s ", " 5s", "0x10s", "s5",
	};
	int64_t ms;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(duration_parse_ms(good[i].in, &ms), 0);
		assert_int_equal(ms, good[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_true(duration_parse_ms(bad[i], &ms) < 0);
	assert_int_equal(duration_parse_ms("3000000h", &ms), -ERANGE);
}

static void
test_duration_format(void **state)
{
	char out[64];

	(void)state;
	duration_format_ms(300000, out, sizeof(out));
	assert_string_equal(out, "5m0s");
	duration_format_ms(5400000, out, sizeof(out));
	assert_string_equal(out, "1h30m0s");
	duration_format_ms(250, out, sizeof(out));
	assert_string_equal(out, "250ms");
	duration_format_ms(1500, out, sizeof(out));
	assert_string_equal(out, "1.5s");
	duration_format_ms(0, out, sizeof(out));
	assert_string_equal(out, "0s");
}

static void
test_rfc3339_round_trip(void **state)
{
	char out[TIME_RFC3339_LEN];
	int64_t ms;

	(void)state;
	assert_int_equal(time_parse_rfc3339("2026-11-28T07:00:00Z", &ms), 0);
	assert_int_equal(ms, 1795849200000LL);
	time_format_rfc3339(ms + 999, out);
	assert_string_equal(out, "2026-11-28T07:00:00Z");
	time_format_rfc3339_micro(ms + 123, out);
	assert_string_equal(out, "2026-11-28T07:00:00.123000Z");
	assert_int_equal(time_parse_rfc3339("2026-11-28T07:00:00.123456789Z", &ms), 0);
	assert_int_equal(ms, 1795849200123LL);
	assert_int_equal(time_parse_rfc3339("2026-11-28T09:00:00+02:00", &ms), 0);
	assert_int_equal(ms, 1795849200000LL);
	assert_true(time_parse_rfc3339("2026-11-28", &ms) < 0);
	assert_true(time_parse_rfc3339("2026-13-28T07:00:00Z", &ms) < 0);
	assert_true(time_parse_rfc3339("2026-11-28T07:00:00", &ms) < 0);
	assert_true(time_parse_rfc3339("2026-11-28T07:00:00Zjunk", &ms) < 0);
}

static void
test_clocks_move_forward(void **state)
{
	int64_t a = time_mono_us(), b = time_mono_us();

	(void)state;
	assert_true(b >= a);
	assert_true(time_real_ms() > 1700000000000LL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_parse),
		cmocka_unit_test(test_duration_format),
		cmocka_unit_test(test_rfc3339_round_trip),
		cmocka_unit_test(test_clocks_move_forward),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
