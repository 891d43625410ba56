/* Token bucket: a steady request rate with bounded bursts, waited on with a deadline. */
#ifndef STRATOS_RATELIMIT_H
#define STRATOS_RATELIMIT_H

#include <pthread.h>
#include <stdint.h>

/*
 * One bucket. Tokens refill continuously at `rate` per second up to
 * `burst`. A caller that finds the bucket empty reserves the next token
 * (the level goes negative) and sleeps until it is due, so waiters are
 * served in arrival order and no token is handed out twice. Thread-safe.
 */
struct ratelimit {
	pthread_mutex_t lock;
	double rate;        /* tokens per second; 0 = unlimited */
	double burst;       /* bucket size (≥ 1) */
	double tokens;      /* may be negative: tokens already promised to waiters */
	int64_t last_us;    /* monotonic time of the last refill */
};

/* Starts full. rate 0 disables the limit. Returns 0 or -EINVAL (negative rate, burst < 1). */
int ratelimit_init(struct ratelimit *rl, double rate, double burst);

/* Releases the lock of a bucket nobody waits on any more. */
void ratelimit_destroy(struct ratelimit *rl);

/*
 * Reserves one token at monotonic time now_us. Returns how long the caller
 * must wait (µs, 0 = go now), or -1 when that wait would exceed max_wait_us
 * (nothing is reserved then). Pure apart from the bucket state; used by
 * ratelimit_acquire() and by tests with a fake clock.
 */
int64_t ratelimit_reserve(struct ratelimit *rl, int64_t now_us, int64_t max_wait_us);

/*
 * Takes one token, sleeping until it is due if that is before
 * deadline_ms (monotonic ms, time_mono_ms() clock). Returns 0, or
 * -ETIMEDOUT at once when the token would come too late.
 */
int ratelimit_acquire(struct ratelimit *rl, int64_t deadline_ms);

/* Parses "rate/burst" ("10/20", "0.5/5") or "rate" (burst = max(1, rate)). 0 or -EINVAL. */
int ratelimit_parse(const char *spec, double *rate, double *burst);

#endif
