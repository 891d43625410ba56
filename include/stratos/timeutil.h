/* Clocks, RFC 3339 timestamps and Go/Kubernetes duration strings. */
#ifndef STRATOS_TIMEUTIL_H
#define STRATOS_TIMEUTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* Buffer size that fits every timestamp this module formats. */
#define TIME_RFC3339_LEN 40

/* Monotonic clock, for intervals and deadlines. Thread-safe. */
int64_t time_mono_ms(void);
int64_t time_mono_us(void);

/*
 * Initialises cond so that its timed waits run on CLOCK_MONOTONIC, the clock
 * of time_mono_ms(): a wall-clock step (NTP) neither stretches nor cuts them.
 * Returns 0 or a positive pthread error.
 */
int time_cond_init(pthread_cond_t *cond);

/*
 * Waits on cond (made by time_cond_init, lock held) until it is signalled or
 * the time_mono_ms() deadline passes. Returns 0 or ETIMEDOUT; spurious
 * wake-ups return 0, so callers loop on their condition.
 */
int time_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t deadline_ms);

/* Wall clock, Unix epoch milliseconds. Thread-safe. */
int64_t time_real_ms(void);

/* "2006-01-02T15:04:05Z" (seconds precision, Kubernetes metav1.Time). */
void time_format_rfc3339(int64_t unix_ms, char out[TIME_RFC3339_LEN]);

/* "2006-01-02T15:04:05.000000Z" (Kubernetes MicroTime: Leases, Events). */
void time_format_rfc3339_micro(int64_t unix_ms, char out[TIME_RFC3339_LEN]);

/*
 * Parses RFC 3339 / ISO 8601 as found in Kubernetes and AWS replies:
 * "2026-11-28T07:00:00Z", fractional seconds of any length, "+02:00" offsets.
 * Returns 0 or -EINVAL.
 */
int time_parse_rfc3339(const char *s, int64_t *unix_ms);

/*
 * Parses a Go duration ("30s", "5m", "1h30m", "1.5h", "300ms", "0") into
 * milliseconds (sub-millisecond parts are truncated). Negative durations and
 * values beyond ~292 years are rejected. Returns 0 or -EINVAL / -ERANGE.
 */
int duration_parse_ms(const char *s, int64_t *out_ms);

/* Formats like Go's Duration.String() for whole milliseconds ("5m0s", "1h30m0s", "250ms"). */
void duration_format_ms(int64_t ms, char *out, size_t len);

#endif
