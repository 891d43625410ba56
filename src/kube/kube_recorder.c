/* The event recorder: a bounded queue of Events and one thread that posts them in order. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/kube_recorder.h"
#include "stratos/limits.h"
#include "stratos/log.h"
#include "stratos/metrics.h"
#include "stratos/timeutil.h"

/* One queued Event: the strings live in text, the fields point into it. */
struct kube_recorder__item {
	struct kube_event ev;
	char *text;
};

struct kube_recorder {
	struct kube *k;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct kube_recorder__item ring[LIMITS_KUBE_EVENT_QUEUE];
	size_t head, len;
	bool stop;
	int64_t flush_until_ms;        /* monotonic: after stop, post until then */
	unsigned long posted, dropped, failed;
	pthread_t thread;
	struct metrics_family *m_dropped;
};

/* Copies the event's strings into one allocation; the fields point into it. */
static int
kube_recorder__copy(struct kube_recorder__item *it, const struct kube_event *ev, const char *note)
{
	const char *src[] = { ev->type, ev->reason, ev->action, note, ev->kind, ev->api_version,
	    ev->namespace, ev->name, ev->uid };
	const char **dst[] = { &it->ev.type, &it->ev.reason, &it->ev.action, &it->ev.note,
	    &it->ev.kind, &it->ev.api_version, &it->ev.namespace, &it->ev.name, &it->ev.uid };
	size_t n = sizeof(src) / sizeof(src[0]), total = 0, off = 0;

	for (size_t i = 0; i < n; i++)
		total += src[i] != NULL ? strlen(src[i]) + 1 : 0;
	it->text = malloc(total ? total : 1);
	if (it->text == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		*dst[i] = NULL;
		if (src[i] == NULL)
			continue;
		size_t len = strlen(src[i]) + 1;
		memcpy(it->text + off, src[i], len);
		*dst[i] = it->text + off;
		off += len;
	}
	return 0;
}

static void *
kube_recorder__main(void *arg)
{
	struct kube_recorder *r = arg;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		struct kube_recorder__item it;
		struct kube_error err;

		while (r->len == 0 && !r->stop)
			pthread_cond_wait(&r->cond, &r->lock);
		if (r->len == 0 || (r->stop && time_mono_ms() >= r->flush_until_ms))
			break;
		it = r->ring[r->head];
		r->head = (r->head + 1) % LIMITS_KUBE_EVENT_QUEUE;
		r->len--;
		pthread_mutex_unlock(&r->lock);
		if (kube_event_create(r->k, &it.ev, &err) < 0) {
			/* An Event is a courtesy: logged once, never retried. */
			log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s,s:s,s:s}", "reason", it.ev.reason,
			    "kind", it.ev.kind, "name", it.ev.name, "error", err.message),
			    "event not recorded");
			pthread_mutex_lock(&r->lock);
			r->failed++;
		} else {
			pthread_mutex_lock(&r->lock);
			r->posted++;
		}
		free(it.text);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

struct kube_recorder *
kube_recorder_new(struct kube *k)
{
	struct kube_recorder *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->k = k;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->m_dropped = metrics_register(METRICS_COUNTER, "stratos_events_dropped_total",
	    "Events not posted because the recorder's queue was full", NULL, NULL, 0);
	if (pthread_create(&r->thread, NULL, kube_recorder__main, r) != 0) {
		pthread_mutex_destroy(&r->lock);
		pthread_cond_destroy(&r->cond);
		free(r);
		return NULL;
	}
	return r;
}

void
kube_recorder_free(struct kube_recorder *r, long flush_ms)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	r->flush_until_ms = time_mono_ms() + (flush_ms > 0 ? flush_ms : 0);
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	while (r->len > 0) {
		free(r->ring[r->head].text);
		r->head = (r->head + 1) % LIMITS_KUBE_EVENT_QUEUE;
		r->len--;
	}
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}

void
kube_recorder_emit(struct kube_recorder *r, const struct kube_event *ev, const char *fmt, ...)
{
	struct kube_recorder__item it;
	char note[KUBE_EVENT_NOTE_MAX + 1];
	va_list ap;

	if (r == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(note, sizeof(note), fmt, ap);
	va_end(ap);
	memset(&it, 0, sizeof(it));
	if (kube_recorder__copy(&it, ev, note) < 0)
		return;
	pthread_mutex_lock(&r->lock);
	if (r->stop || r->len == LIMITS_KUBE_EVENT_QUEUE) {
		r->dropped++;
		pthread_mutex_unlock(&r->lock);
		if (r->m_dropped != NULL)
			metrics_counter_add(r->m_dropped, 1);
		free(it.text);
		return;
	}
	r->ring[(r->head + r->len) % LIMITS_KUBE_EVENT_QUEUE] = it;
	r->len++;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

void
kube_recorder_stats(struct kube_recorder *r, unsigned long *posted, unsigned long *dropped)
{
	pthread_mutex_lock(&r->lock);
	*posted = r->posted;
	*dropped = r->dropped;
	pthread_mutex_unlock(&r->lock);
}
