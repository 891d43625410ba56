/* AWS "standard" retry mode: full-jitter backoff and the retry quota that stops retry storms. */
#ifndef STRATOS_AWS_RETRY_H
#define STRATOS_AWS_RETRY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define AWS_RETRY_MAX_ATTEMPTS     3        /* first try + 2 retries */
#define AWS_RETRY_QUOTA            500u     /* tokens a client starts with */
#define AWS_RETRY_COST             5u       /* taken by a retry after an error reply */
#define AWS_RETRY_TIMEOUT_COST     10u      /* taken by a retry after a timeout / dropped connection */
#define AWS_RETRY_NO_RETRY_REFUND  1u       /* given back by a call that succeeded first time */
#define AWS_RETRY_BASE_MS          100      /* backoff base for transient errors */
#define AWS_RETRY_THROTTLE_BASE_MS 1000     /* backoff base after throttling */
#define AWS_RETRY_MAX_BACKOFF_MS   20000    /* cap on one backoff */

/*
 * The retry quota of one client (shared by every thread using it). A retry
 * takes tokens; an empty quota means "no retries" until successes refill it,
 * so an outage makes each call fail after one attempt instead of tripling
 * the load. Thread-safe.
 */
struct aws_retry_quota {
	pthread_mutex_t lock;
	unsigned tokens;
	unsigned capacity;
};

/* Starts full (AWS_RETRY_QUOTA for a client). destroy() only when nobody uses it any more. */
void aws_retry_quota_init(struct aws_retry_quota *q, unsigned capacity);
void aws_retry_quota_destroy(struct aws_retry_quota *q);

/*
 * Takes the cost of one retry (AWS_RETRY_TIMEOUT_COST when the failed
 * attempt timed out or lost its connection, else AWS_RETRY_COST). Returns
 * the number of tokens taken, or 0 when the quota cannot pay: do not retry.
 */
unsigned aws_retry_quota_acquire(struct aws_retry_quota *q, bool timeout);

/*
 * Records a successful call: gives back `last_cost` (what its last retry
 * took; 0 when the call was not retried, in which case
 * AWS_RETRY_NO_RETRY_REFUND is added). Never exceeds the capacity.
 */
void aws_retry_quota_success(struct aws_retry_quota *q, unsigned last_cost);

/* Tokens currently available (tests, metrics). */
unsigned aws_retry_quota_available(struct aws_retry_quota *q);

/*
 * Full-jitter backoff before retrying after attempt `attempt` (1-based)
 * failed: r * min(base * 2^(attempt-1), AWS_RETRY_MAX_BACKOFF_MS), base
 * AWS_RETRY_THROTTLE_BASE_MS when throttled, else AWS_RETRY_BASE_MS. r is a
 * uniform random number in [0, 1). Pure.
 */
int64_t aws_retry_backoff_ms(unsigned attempt, bool throttled, double r);

/* Uniform random number in [0, 1), seeded per thread from the OS. Thread-safe. */
double aws_retry_random(void);

/* True when an AWS error code means throttling (RequestLimitExceeded, Throttling...). */
bool aws_retry_is_throttle_code(const char *code);

/*
 * True when an error reply is transient and worth another attempt:
 * throttling, InternalError / ServiceUnavailable / Unavailable /
 * RequestTimeout, and HTTP 500, 502, 503, 504 or 429 — except the capacity
 * codes (InsufficientInstanceCapacity is an HTTP 500 that retrying at once
 * does not fix; the caller picks another node or subnet instead).
 */
bool aws_retry_is_retryable(const char *code, long http_status);

#endif
