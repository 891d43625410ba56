/* Clocks, RFC 3339 timestamps and Go duration strings. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stratos/timeutil.h"

int64_t
time_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
time_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int
time_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	int rc;

	if ((rc = pthread_condattr_init(&attr)) != 0)
		return rc;
	rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (rc == 0)
		rc = pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
	return rc;
}

int
time_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t deadline_ms)
{
	struct timespec ts;

	if (deadline_ms < 0)
		deadline_ms = 0;
	ts.tv_sec = (time_t)(deadline_ms / 1000);
	ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
	return pthread_cond_timedwait(cond, lock, &ts) == ETIMEDOUT ? ETIMEDOUT : 0;
}

int64_t
time_real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
time__split(int64_t unix_ms, struct tm *tm, int *ms)
{
	time_t secs = (time_t)(unix_ms / 1000);
	int rem = (int)(unix_ms % 1000);

	if (rem < 0) {
		rem += 1000;
		secs -= 1;
	}
	gmtime_r(&secs, tm);
	*ms = rem;
}

void
time_format_rfc3339(int64_t unix_ms, char out[TIME_RFC3339_LEN])
{
	struct tm tm;
	int ms;

	time__split(unix_ms, &tm, &ms);
	snprintf(out, TIME_RFC3339_LEN, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void
time_format_rfc3339_micro(int64_t unix_ms, char out[TIME_RFC3339_LEN])
{
	struct tm tm;
	int ms;

	time__split(unix_ms, &tm, &ms);
	snprintf(out, TIME_RFC3339_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    ms * 1000);
}

static int
time__digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -EINVAL;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

int
time_parse_rfc3339(const char *s, int64_t *unix_ms)
{
	int year, mon, day, hour, min, sec, frac_ms = 0, offset_min = 0;
	const char *p = s;
	struct tm tm;

	if (s == NULL)
		return -EINVAL;
	if (time__digits(&p, 4, &year) || *p++ != '-' || time__digits(&p, 2, &mon) ||
	    *p++ != '-' || time__digits(&p, 2, &day) || (*p != 'T' && *p != 't' && *p != ' '))
		return -EINVAL;
	p++;
	if (time__digits(&p, 2, &hour) || *p++ != ':' || time__digits(&p, 2, &min) ||
	    *p++ != ':' || time__digits(&p, 2, &sec))
		return -EINVAL;
	if (*p == '.') {
		int scale = 100;
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		while (isdigit((unsigned char)*p)) {
			frac_ms += (*p - '0') * scale;
			scale /= 10;
			p++;
		}
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1, oh, om;
		p++;
		if (time__digits(&p, 2, &oh) || *p++ != ':' || time__digits(&p, 2, &om))
			return -EINVAL;
		offset_min = sign * (oh * 60 + om);
	} else {
		return -EINVAL;
	}
	if (*p != '\0' || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 ||
	    min > 59 || sec > 60)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	*unix_ms = ((int64_t)timegm(&tm) - (int64_t)offset_min * 60) * 1000 + frac_ms;
	return 0;
}

int
duration_parse_ms(const char *s, int64_t *out_ms)
{
	static const struct {
		const char *unit;
		double ns;
	} units[] = {
		{"ns", 1}, {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"\xce\xbcs", 1e3},
		{"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9},
	};
	const char *p = s;
	double total_ns = 0;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	if (*p == '+')
		p++;
	if (strcmp(p, "0") == 0) {
		*out_ms = 0;
		return 0;
	}
	if (*p == '\0')
		return -EINVAL;
	while (*p != '\0') {
		char *end;
		double v;
		size_t best = 0, best_len = 0;

		if (!isdigit((unsigned char)*p) && *p != '.')
			return -EINVAL;
		errno = 0;
		v = strtod(p, &end);
		if (end == p || errno != 0 || v < 0)
			return -EINVAL;
		/* strtod accepts exponents and hex; Go durations do not. */
		for (const char *q = p; q < end; q++)
			if (!isdigit((unsigned char)*q) && *q != '.')
				return -EINVAL;
		p = end;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t n = strlen(units[i].unit);
			if (strncmp(p, units[i].unit, n) == 0 && n > best_len) {
				best = i;
				best_len = n;
			}
		}
		if (best_len == 0)
			return -EINVAL; /* a number without a unit */
		total_ns += v * units[best].ns;
		p += best_len;
		if (total_ns > 9.2e18)
			return -ERANGE;
	}
	*out_ms = (int64_t)(total_ns / 1e6);
	return 0;
}

void
duration_format_ms(int64_t ms, char *out, size_t len)
{
	int64_t h, m, s, rem;

	if (ms < 0)
		ms = 0;
	if (ms < 1000) {
		snprintf(out, len, ms == 0 ? "0s" : "%lldms", (long long)ms);
		return;
	}
	h = ms / 3600000;
	m = (ms / 60000) % 60;
	s = (ms / 1000) % 60;
	rem = ms % 1000;
	char secs[32];
	if (rem != 0) {
		char frac[8];
		snprintf(frac, sizeof(frac), "%03lld", (long long)rem);
		for (int i = 2; i > 0 && frac[i] == '0'; i--)
			frac[i] = '\0';
		snprintf(secs, sizeof(secs), "%lld.%ss", (long long)s, frac);
	} else {
		snprintf(secs, sizeof(secs), "%llds", (long long)s);
	}
	if (h > 0)
		snprintf(out, len, "%lldh%lldm%s", (long long)h, (long long)m, secs);
	else if (m > 0)
		snprintf(out, len, "%lldm%s", (long long)m, secs);
	else
		snprintf(out, len, "%s", secs);
}
