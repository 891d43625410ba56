/* Prometheus metrics registry and text exposition. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/limits.h"
#include "stratos/metrics.h"

#define METRICS_BUCKETS_MAX 32

const double METRICS_BUCKETS_LATENCY[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};
const size_t METRICS_BUCKETS_LATENCY_COUNT =
    sizeof(METRICS_BUCKETS_LATENCY) / sizeof(METRICS_BUCKETS_LATENCY[0]);

struct metrics_series {
	struct metrics_series *next;
	char *values[LIMITS_METRICS_LABELS];
	double value;                       /* counter, gauge; histogram sum */
	unsigned long long count;           /* histogram */
	unsigned long long buckets[METRICS_BUCKETS_MAX];
};

struct metrics_family {
	enum metrics_type type;
	char *name;
	char *help;
	size_t nlabels;
	char *labels[LIMITS_METRICS_LABELS];
	double bounds[METRICS_BUCKETS_MAX];
	size_t nbounds;
	size_t nseries;
	struct metrics_series *series;
	pthread_mutex_t lock;
};

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_family *metrics_families[LIMITS_METRICS_FAMILIES];
static size_t metrics_nfamilies;
static unsigned long long metrics_dropped;

struct metrics_family *
metrics_register(enum metrics_type type, const char *name, const char *help,
    const char *const *labels, const double *buckets, size_t nbuckets)
{
	struct metrics_family *f = NULL;

	pthread_mutex_lock(&metrics_lock);
	for (size_t i = 0; i < metrics_nfamilies; i++) {
		if (strcmp(metrics_families[i]->name, name) == 0) {
			f = metrics_families[i]->type == type ? metrics_families[i] : NULL;
			goto out;
		}
	}
	if (metrics_nfamilies == LIMITS_METRICS_FAMILIES || nbuckets > METRICS_BUCKETS_MAX)
		goto out;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		goto out;
	f->type = type;
	f->name = strdup(name);
	f->help = strdup(help != NULL ? help : "");
	for (const char *const *l = labels; l != NULL && *l != NULL; l++) {
		if (f->nlabels == LIMITS_METRICS_LABELS)
			break;
		f->labels[f->nlabels++] = strdup(*l);
	}
	if (type == METRICS_HISTOGRAM) {
		memcpy(f->bounds, buckets, nbuckets * sizeof(double));
		f->nbounds = nbuckets;
	}
	pthread_mutex_init(&f->lock, NULL);
	metrics_families[metrics_nfamilies++] = f;
out:
	pthread_mutex_unlock(&metrics_lock);
	return f;
}

/* Finds or creates the series; called with f->lock held. */
static struct metrics_series *
metrics__series(struct metrics_family *f, va_list ap, bool create)
{
	const char *values[LIMITS_METRICS_LABELS];
	struct metrics_series *s;

	for (size_t i = 0; i < f->nlabels; i++) {
		values[i] = va_arg(ap, const char *);
		if (values[i] == NULL)
			values[i] = "";
	}
	for (s = f->series; s != NULL; s = s->next) {
		size_t i;
		for (i = 0; i < f->nlabels; i++)
			if (strcmp(s->values[i], values[i]) != 0)
				break;
		if (i == f->nlabels)
			return s;
	}
	if (!create)
		return NULL;
	if (f->nseries >= LIMITS_METRICS_SERIES) {
		__atomic_add_fetch(&metrics_dropped, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < f->nlabels; i++) {
		s->values[i] = strdup(values[i]);
		if (s->values[i] == NULL) {
			for (size_t j = 0; j < i; j++)
				free(s->values[j]);
			free(s);
			return NULL;
		}
	}
	s->next = f->series;
	f->series = s;
	f->nseries++;
	return s;
}

static void
metrics__update(struct metrics_family *f, enum metrics_type want, int op, double v, va_list ap)
{
	struct metrics_series *s;

	if (f == NULL || f->type != want)
		return;
	pthread_mutex_lock(&f->lock);
	s = metrics__series(f, ap, true);
	if (s != NULL) {
		if (op == 0) {
			s->value += v;
		} else if (op == 1) {
			s->value = v;
		} else {
			s->value += v;
			s->count++;
			for (size_t i = 0; i < f->nbounds; i++)
				if (v <= f->bounds[i])
					s->buckets[i]++;
		}
	}
	pthread_mutex_unlock(&f->lock);
}

void
metrics_counter_add(struct metrics_family *f, double v, ...)
{
	va_list ap;

	if (v < 0)
		return; /* counters only go up */
	va_start(ap, v);
	metrics__update(f, METRICS_COUNTER, 0, v, ap);
	va_end(ap);
}

void
metrics_gauge_set(struct metrics_family *f, double v, ...)
{
	va_list ap;

	va_start(ap, v);
	metrics__update(f, METRICS_GAUGE, 1, v, ap);
	va_end(ap);
}

void
metrics_gauge_add(struct metrics_family *f, double v, ...)
{
	va_list ap;

	va_start(ap, v);
	metrics__update(f, METRICS_GAUGE, 0, v, ap);
	va_end(ap);
}

void
metrics_histogram_observe(struct metrics_family *f, double v, ...)
{
	va_list ap;

	va_start(ap, v);
	metrics__update(f, METRICS_HISTOGRAM, 2, v, ap);
	va_end(ap);
}

static void
metrics__free_series(struct metrics_family *f, struct metrics_series *s)
{
	while (s != NULL) {
		struct metrics_series *next = s->next;
		for (size_t i = 0; i < f->nlabels; i++)
			free(s->values[i]);
		free(s);
		s = next;
	}
}

void
metrics_gauge_reset(struct metrics_family *f)
{
	struct metrics_series *s;

	if (f == NULL || f->type != METRICS_GAUGE)
		return;
	pthread_mutex_lock(&f->lock);
	s = f->series;
	f->series = NULL;
	f->nseries = 0;
	pthread_mutex_unlock(&f->lock);
	metrics__free_series(f, s);
}

double
metrics_value(struct metrics_family *f, ...)
{
	struct metrics_series *s;
	double v = 0;
	va_list ap;

	if (f == NULL)
		return 0;
	va_start(ap, f);
	pthread_mutex_lock(&f->lock);
	s = metrics__series(f, ap, false);
	if (s != NULL)
		v = s->value;
	pthread_mutex_unlock(&f->lock);
	va_end(ap);
	return v;
}

unsigned long long
metrics_histogram_count(struct metrics_family *f, ...)
{
	struct metrics_series *s;
	unsigned long long n = 0;
	va_list ap;

	if (f == NULL)
		return 0;
	va_start(ap, f);
	pthread_mutex_lock(&f->lock);
	s = metrics__series(f, ap, false);
	if (s != NULL)
		n = s->count;
	pthread_mutex_unlock(&f->lock);
	va_end(ap);
	return n;
}

/* Label values escape backslash, double quote and newline; HELP escapes backslash and newline. */
static int
metrics__escaped(struct buf *out, const char *s, bool quote)
{
	int rc = 0;

	for (; rc == 0 && *s != '\0'; s++) {
		if (*s == '\\')
			rc = buf_append(out, "\\\\", 2);
		else if (*s == '\n')
			rc = buf_append(out, "\\n", 2);
		else if (quote && *s == '"')
			rc = buf_append(out, "\\\"", 2);
		else
			rc = buf_append(out, s, 1);
	}
	return rc;
}

static int
metrics__number(struct buf *out, double v)
{
	if (isinf(v))
		return buf_append_str(out, v > 0 ? "+Inf" : "-Inf");
	if (isnan(v))
		return buf_append_str(out, "NaN");
	if (v == floor(v) && fabs(v) < 1e15)
		return buf_printf(out, "%.0f", v);
	/* Shortest form that reads back the same ("0.1", not "0.10000000000000001"). */
	char text[40];
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(text, sizeof(text), "%.*g", prec, v);
		if (strtod(text, NULL) == v)
			break;
	}
	return buf_append_str(out, text);
}

static int
metrics__labels(struct buf *out, const struct metrics_family *f, const struct metrics_series *s,
    const char *extra_name, const char *extra_value)
{
	int rc = 0;
	bool any = f->nlabels > 0 || extra_name != NULL;

	if (!any)
		return 0;
	rc |= buf_append(out, "{", 1);
	for (size_t i = 0; i < f->nlabels; i++) {
		rc |= buf_printf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
		rc |= metrics__escaped(out, s->values[i], true);
		rc |= buf_append(out, "\"", 1);
	}
	if (extra_name != NULL)
		rc |= buf_printf(out, "%s%s=\"%s\"", f->nlabels ? "," : "", extra_name, extra_value);
	rc |= buf_append(out, "}", 1);
	return rc;
}

static int
metrics__render_family(struct buf *out, struct metrics_family *f)
{
	static const char *const types[] = { "counter", "gauge", "histogram" };
	int rc = 0;

	rc |= buf_printf(out, "# HELP %s ", f->name);
	rc |= metrics__escaped(out, f->help, false);
	rc |= buf_printf(out, "\n# TYPE %s %s\n", f->name, types[f->type]);
	for (struct metrics_series *s = f->series; s != NULL && rc == 0; s = s->next) {
		if (f->type != METRICS_HISTOGRAM) {
			rc |= buf_append_str(out, f->name);
			rc |= metrics__labels(out, f, s, NULL, NULL);
			rc |= buf_append(out, " ", 1);
			rc |= metrics__number(out, s->value);
			rc |= buf_append(out, "\n", 1);
			continue;
		}
		for (size_t i = 0; i <= f->nbounds; i++) {
			char le[64];
			struct buf lb;
			buf_init(&lb, sizeof(le) - 1);
			if (i < f->nbounds)
				metrics__number(&lb, f->bounds[i]);
			snprintf(le, sizeof(le), "%s", i < f->nbounds ? lb.data : "+Inf");
			buf_free(&lb);
			rc |= buf_printf(out, "%s_bucket", f->name);
			rc |= metrics__labels(out, f, s, "le", le);
			rc |= buf_printf(out, " %llu\n", i < f->nbounds ? s->buckets[i] : s->count);
		}
		rc |= buf_printf(out, "%s_sum", f->name);
		rc |= metrics__labels(out, f, s, NULL, NULL);
		rc |= buf_append(out, " ", 1);
		rc |= metrics__number(out, s->value);
		rc |= buf_printf(out, "\n%s_count", f->name);
		rc |= metrics__labels(out, f, s, NULL, NULL);
		rc |= buf_printf(out, " %llu\n", s->count);
	}
	return rc;
}

int
metrics_render(struct buf *out)
{
	int rc = 0;

	pthread_mutex_lock(&metrics_lock);
	for (size_t i = 0; i < metrics_nfamilies && rc == 0; i++) {
		struct metrics_family *f = metrics_families[i];
		pthread_mutex_lock(&f->lock);
		rc = metrics__render_family(out, f);
		pthread_mutex_unlock(&f->lock);
	}
	pthread_mutex_unlock(&metrics_lock);
	if (rc == 0)
		rc = buf_printf(out,
		    "# HELP stratos_metrics_series_dropped_total Series not recorded because a family hit its cap.\n"
		    "# TYPE stratos_metrics_series_dropped_total counter\n"
		    "stratos_metrics_series_dropped_total %llu\n",
		    __atomic_load_n(&metrics_dropped, __ATOMIC_RELAXED));
	return rc < 0 ? rc : 0;
}
