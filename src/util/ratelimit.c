/* Token bucket rate limiter with reservation, so a burst of callers queues instead of spinning. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stratos/ratelimit.h"
#include "stratos/timeutil.h"

int
ratelimit_init(struct ratelimit *rl, double rate, double burst)
{
	if (!(rate >= 0) || !(burst >= 1) || !isfinite(rate) || !isfinite(burst))
		return -EINVAL;
	pthread_mutex_init(&rl->lock, NULL);
	rl->rate = rate;
	rl->burst = burst;
	rl->tokens = burst;
	rl->last_us = time_mono_us();
	return 0;
}

void
ratelimit_destroy(struct ratelimit *rl)
{
	pthread_mutex_destroy(&rl->lock);
}

int64_t
ratelimit_reserve(struct ratelimit *rl, int64_t now_us, int64_t max_wait_us)
{
	int64_t wait = 0;

	pthread_mutex_lock(&rl->lock);
	if (rl->rate <= 0)
		goto out;
	if (now_us > rl->last_us) {
		rl->tokens += (double)(now_us - rl->last_us) * rl->rate / 1e6;
		if (rl->tokens > rl->burst)
			rl->tokens = rl->burst;
		rl->last_us = now_us;
	}
	if (rl->tokens < 1) {
		wait = (int64_t)ceil((1 - rl->tokens) * 1e6 / rl->rate);
		if (wait > max_wait_us) {
			wait = -1;
			goto out;
		}
	}
	rl->tokens -= 1;
out:
	pthread_mutex_unlock(&rl->lock);
	return wait;
}

int
ratelimit_acquire(struct ratelimit *rl, int64_t deadline_ms)
{
	int64_t now = time_mono_us();
	int64_t wait = ratelimit_reserve(rl, now, deadline_ms * 1000 - now);
	struct timespec ts;

	if (wait < 0)
		return -ETIMEDOUT;
	if (wait == 0)
		return 0;
	ts.tv_sec = wait / 1000000;
	ts.tv_nsec = (long)(wait % 1000000) * 1000;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return 0;
}

int
ratelimit_parse(const char *spec, double *rate, double *burst)
{
	char *end;

	if (spec == NULL || *spec == '\0')
		return -EINVAL;
	errno = 0;
	*rate = strtod(spec, &end);
	if (errno != 0 || end == spec || !(*rate >= 0) || !isfinite(*rate))
		return -EINVAL;
	if (*end == '\0') {
		*burst = *rate > 1 ? *rate : 1;
		return 0;
	}
	if (*end != '/')
		return -EINVAL;
	spec = end + 1;
	*burst = strtod(spec, &end);
	if (errno != 0 || end == spec || *end != '\0' || !(*burst >= 1) || !isfinite(*burst))
		return -EINVAL;
	return 0;
}
