/* Unit tests for the capped growable buffer. */
#include <errno.h>
#include <string.h>

#include "test_util.h"
#include "stratos/buf.h"

static void
test_append_and_terminate(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 100);
	assert_int_equal(buf_append_str(&b, "hello"), 0);
	assert_int_equal(buf_printf(&b, " %d", 42), 0);
	assert_string_equal(b.data, "hello 42");
	assert_int_equal(b.len, 8);
	buf_free(&b);
}

static void
test_cap_is_hard(void **state)
{
	struct buf b;
	char big[64];

	(void)state;
	memset(big, 'x', sizeof(big));
	buf_init(&b, 100);
	assert_int_equal(buf_append(&b, big, 64), 0);
	assert_int_equal(buf_append(&b, big, 36), 0);
	assert_int_equal(b.len, 100);
	assert_int_equal(buf_append(&b, "y", 1), -E2BIG);
	assert_int_equal(buf_printf(&b, "%s", "z"), -E2BIG);
	assert_int_equal(b.len, 100);       /* unchanged by the refused appends */
	assert_int_equal(b.data[100], '\0');
	buf_free(&b);
}

static void
test_take_and_reset(void **state)
{
	struct buf b;
	char *s;

	(void)state;
	buf_init(&b, 10);
	s = buf_take(&b);
	assert_string_equal(s, "");
	free(s);
	buf_append_str(&b, "abc");
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	buf_append_str(&b, "def");
	s = buf_take(&b);
	assert_string_equal(s, "def");
	assert_null(b.data);
	free(s);
	buf_free_secure(&b);
	buf_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_and_terminate),
		cmocka_unit_test(test_cap_is_hard),
		cmocka_unit_test(test_take_and_reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
