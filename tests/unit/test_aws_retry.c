/* Unit tests for the AWS standard retry rules: jitter bounds, quota, retryable codes. */
#include <stdbool.h>
#include <string.h>

#include "test_util.h"
#include "stratos/aws_retry.h"

static void
test_backoff_bounds(void **state)
{
	(void)state;
	/* r = 0 gives 0; r just under 1 gives just under the ceiling. */
	assert_int_equal(aws_retry_backoff_ms(1, false, 0.0), 0);
	assert_int_equal(aws_retry_backoff_ms(1, false, 0.5), 50);
	assert_int_equal(aws_retry_backoff_ms(2, false, 0.5), 100);
	assert_int_equal(aws_retry_backoff_ms(1, true, 0.5), 500);
	assert_int_equal(aws_retry_backoff_ms(2, true, 0.5), 1000);
	assert_int_equal(aws_retry_backoff_ms(3, true, 0.5), 2000);
	/* Capped at 20 s however many attempts. */
	assert_int_equal(aws_retry_backoff_ms(6, true, 0.5), 10000);
	assert_int_equal(aws_retry_backoff_ms(40, true, 0.5), 10000);
	assert_true(aws_retry_backoff_ms(40, true, 0.9999) < 20000);
	assert_true(aws_retry_backoff_ms(40, true, 0.9999) >= 19990);
	/* Out-of-range r is clamped, never negative or over the cap. */
	assert_int_equal(aws_retry_backoff_ms(1, false, -3), 0);
	assert_true(aws_retry_backoff_ms(1, false, 7) < 100);
}

/* Full jitter: samples spread over the whole [0, ceiling) range. */
static void
test_backoff_jitter_distribution(void **state)
{
	int64_t lo = 1 << 30, hi = -1;
	int buckets[4] = { 0 };

	(void)state;
	for (int i = 0; i < 4000; i++) {
		double r = aws_retry_random();
		assert_true(r >= 0 && r < 1);
		int64_t d = aws_retry_backoff_ms(2, true, r);
		assert_true(d >= 0 && d < 2000);
		if (d < lo)
			lo = d;
		if (d > hi)
			hi = d;
		buckets[d / 500]++;
	}
	assert_true(lo < 50);
	assert_true(hi > 1950);
	for (int i = 0; i < 4; i++)
		assert_true(buckets[i] > 800);
}

static void
test_quota_exhaustion_and_refill(void **state)
{
	struct aws_retry_quota q;
	unsigned taken = 0, n = 0;

	(void)state;
	aws_retry_quota_init(&q, AWS_RETRY_QUOTA);
	/* 500 tokens pay for exactly 100 retries after errors... */
	while (aws_retry_quota_acquire(&q, false) == AWS_RETRY_COST)
		n++;
	assert_int_equal(n, 100);
	assert_int_equal(aws_retry_quota_available(&q), 0);
	/* ...then no retry at all until successes refill it. */
	assert_int_equal(aws_retry_quota_acquire(&q, true), 0);
	for (int i = 0; i < 9; i++)
		aws_retry_quota_success(&q, 0);
	assert_int_equal(aws_retry_quota_acquire(&q, true), 0);   /* 9 < 10 */
	assert_int_equal(aws_retry_quota_acquire(&q, false), AWS_RETRY_COST);
	taken = aws_retry_quota_acquire(&q, false);
	assert_int_equal(taken, 0);                                /* 4 left */
	aws_retry_quota_success(&q, AWS_RETRY_TIMEOUT_COST);       /* a retried call succeeded */
	assert_int_equal(aws_retry_quota_available(&q), 14);
	/* Never above capacity. */
	for (int i = 0; i < 1000; i++)
		aws_retry_quota_success(&q, AWS_RETRY_TIMEOUT_COST);
	assert_int_equal(aws_retry_quota_available(&q), AWS_RETRY_QUOTA);
	aws_retry_quota_destroy(&q);
}

static void
test_retryable_codes(void **state)
{
	(void)state;
	assert_true(aws_retry_is_throttle_code("RequestLimitExceeded"));
	assert_true(aws_retry_is_throttle_code("Throttling"));
	assert_false(aws_retry_is_throttle_code("InsufficientInstanceCapacity"));
	assert_false(aws_retry_is_throttle_code(NULL));
	assert_true(aws_retry_is_retryable("RequestLimitExceeded", 503));
	assert_true(aws_retry_is_retryable("InternalError", 500));
	assert_true(aws_retry_is_retryable("Unavailable", 503));
	assert_true(aws_retry_is_retryable(NULL, 502));
	assert_true(aws_retry_is_retryable("", 504));
	assert_false(aws_retry_is_retryable("InsufficientInstanceCapacity", 500));
	assert_false(aws_retry_is_retryable("IncorrectInstanceState", 400));
	assert_false(aws_retry_is_retryable("InvalidInstanceID.NotFound", 400));
	assert_false(aws_retry_is_retryable("UnauthorizedOperation", 403));
	assert_false(aws_retry_is_retryable(NULL, 400));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_bounds),
		cmocka_unit_test(test_backoff_jitter_distribution),
		cmocka_unit_test(test_quota_exhaustion_and_refill),
		cmocka_unit_test(test_retryable_codes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
