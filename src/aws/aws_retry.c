/* AWS standard retry mode: backoff with full jitter, retry quota, retryable-error rules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "stratos/aws_retry.h"

void
aws_retry_quota_init(struct aws_retry_quota *q, unsigned capacity)
{
	pthread_mutex_init(&q->lock, NULL);
	q->tokens = capacity;
	q->capacity = capacity;
}

void
aws_retry_quota_destroy(struct aws_retry_quota *q)
{
	pthread_mutex_destroy(&q->lock);
}

unsigned
aws_retry_quota_acquire(struct aws_retry_quota *q, bool timeout)
{
	unsigned cost = timeout ? AWS_RETRY_TIMEOUT_COST : AWS_RETRY_COST;

	pthread_mutex_lock(&q->lock);
	if (q->tokens < cost)
		cost = 0;
	else
		q->tokens -= cost;
	pthread_mutex_unlock(&q->lock);
	return cost;
}

void
aws_retry_quota_success(struct aws_retry_quota *q, unsigned last_cost)
{
	unsigned add = last_cost > 0 ? last_cost : AWS_RETRY_NO_RETRY_REFUND;

	pthread_mutex_lock(&q->lock);
	q->tokens = q->tokens + add > q->capacity ? q->capacity : q->tokens + add;
	pthread_mutex_unlock(&q->lock);
}

unsigned
aws_retry_quota_available(struct aws_retry_quota *q)
{
	unsigned n;

	pthread_mutex_lock(&q->lock);
	n = q->tokens;
	pthread_mutex_unlock(&q->lock);
	return n;
}

int64_t
aws_retry_backoff_ms(unsigned attempt, bool throttled, double r)
{
	int64_t ceiling = throttled ? AWS_RETRY_THROTTLE_BASE_MS : AWS_RETRY_BASE_MS;

	if (attempt == 0)
		attempt = 1;
	for (unsigned i = 1; i < attempt && ceiling < AWS_RETRY_MAX_BACKOFF_MS; i++)
		ceiling *= 2;
	if (ceiling > AWS_RETRY_MAX_BACKOFF_MS)
		ceiling = AWS_RETRY_MAX_BACKOFF_MS;
	if (r < 0)
		r = 0;
	if (r >= 1)
		r = 0.999999;
	return (int64_t)(r * (double)ceiling);
}

double
aws_retry_random(void)
{
	static _Thread_local unsigned short seed[3];
	static _Thread_local int seeded;

	if (!seeded) {
		if (getrandom(seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			seed[0] = (unsigned short)ts.tv_nsec;
			seed[1] = (unsigned short)(ts.tv_nsec >> 16);
			seed[2] = (unsigned short)((uintptr_t)&seed >> 4);
		}
		seeded = 1;
	}
	return erand48(seed);
}

bool
aws_retry_is_throttle_code(const char *code)
{
	static const char *const codes[] = {
		"RequestLimitExceeded", "Throttling", "ThrottlingException", "ThrottledException",
		"RequestThrottledException", "TooManyRequestsException", "RequestThrottled",
		"SlowDown", "PriorRequestNotComplete", "EC2ThrottledException",
		"ProvisionedThroughputExceededException", "TransactionInProgressException",
		"BandwidthLimitExceeded", "LimitExceededException",
	};

	if (code == NULL)
		return false;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(code, codes[i]) == 0)
			return true;
	return false;
}

bool
aws_retry_is_retryable(const char *code, long http_status)
{
	static const char *const transient[] = {
		"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable",
		"RequestTimeout", "RequestTimeoutException", "IDPCommunicationError",
	};
	static const char *const capacity[] = {
		"InsufficientInstanceCapacity", "InsufficientFreeAddressesInSubnet",
		"InstanceLimitExceeded", "VcpuLimitExceeded", "InsufficientHostCapacity",
		"InsufficientCapacity", "InsufficientReservedInstanceCapacity",
	};

	if (aws_retry_is_throttle_code(code))
		return true;
	if (code != NULL) {
		for (size_t i = 0; i < sizeof(capacity) / sizeof(capacity[0]); i++)
			if (strcmp(code, capacity[i]) == 0)
				return false;
		for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
			if (strcmp(code, transient[i]) == 0)
				return true;
	}
	return http_status == 429 || http_status == 500 || http_status == 502 ||
	    http_status == 503 || http_status == 504;
}
