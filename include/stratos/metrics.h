/* Prometheus metrics registry: counters, gauges, histograms with labels; text exposition. */
#ifndef STRATOS_METRICS_H
#define STRATOS_METRICS_H

#include <stddef.h>

#include "stratos/buf.h"

enum metrics_type {
	METRICS_COUNTER,
	METRICS_GAUGE,
	METRICS_HISTOGRAM,
};

struct metrics_family;

/* Default latency buckets in seconds (0.5 ms … 30 s). */
extern const double METRICS_BUCKETS_LATENCY[];
extern const size_t METRICS_BUCKETS_LATENCY_COUNT;

/*
 * Registers (or returns the already registered) family. labels is a
 * NULL-terminated list of at most LIMITS_METRICS_LABELS names, may be NULL.
 * buckets (sorted, without +Inf) only for histograms. The registry is
 * process-wide and owns the family. Thread-safe. Returns NULL when the
 * registry is full or the name is registered with another type.
 */
struct metrics_family *metrics_register(enum metrics_type type, const char *name,
    const char *help, const char *const *labels, const double *buckets, size_t nbuckets);

/*
 * Updates the series of the given label values (exactly as many as the
 * family has labels, as const char *). New series beyond
 * LIMITS_METRICS_SERIES are dropped (counted in
 * stratos_metrics_series_dropped_total). Thread-safe, lock held briefly.
 */
void metrics_counter_add(struct metrics_family *f, double v, ...);
void metrics_gauge_set(struct metrics_family *f, double v, ...);
void metrics_gauge_add(struct metrics_family *f, double v, ...);
void metrics_histogram_observe(struct metrics_family *f, double v, ...);

/* Removes every series of a gauge family (before republishing a fresh set). Thread-safe. */
void metrics_gauge_reset(struct metrics_family *f);

/* Reads a counter/gauge value (tests). Returns 0 when the series does not exist. */
double metrics_value(struct metrics_family *f, ...);

/* Reads a histogram's observation count (tests). */
unsigned long long metrics_histogram_count(struct metrics_family *f, ...);

/* Appends the Prometheus text format (version 0.0.4) of every family. Thread-safe. */
int metrics_render(struct buf *out);

#endif
