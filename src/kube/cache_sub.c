/* Change notifications of the caches: bounded per-subscriber event queues. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"
#include "stratos/timeutil.h"

/* ---- notifications ---- */

void
cache__publish(struct cache *c, enum cache_change change, struct cache_obj *old_obj,
    struct cache_obj *new_obj)
{
	pthread_mutex_lock(&c->notify_lock);
	c->generation++;
	pthread_cond_broadcast(&c->notify_cond);
	for (size_t i = 0; i < c->nsubs; i++) {
		struct cache_sub *s = c->subs[i];
		pthread_mutex_lock(&s->lock);
		if (!s->closed) {
			if (s->len == s->cap) {
				s->overflowed = true;
			} else if (!s->overflowed) {
				struct cache_event *ev = &s->ring[(s->head + s->len) % s->cap];
				ev->cache = c;
				ev->change = change;
				ev->old_obj = cache_obj_ref(old_obj);
				ev->new_obj = cache_obj_ref(new_obj);
				s->len++;
			}
			pthread_cond_signal(&s->cond);
		}
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&c->notify_lock);
}

/* ---- subscriptions ---- */

struct cache_sub *
cache_sub_new(size_t capacity)
{
	struct cache_sub *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->cap = capacity ? capacity : LIMITS_CACHE_SUB_QUEUE;
	if (s->cap > LIMITS_CACHE_SUB_QUEUE)
		s->cap = LIMITS_CACHE_SUB_QUEUE;
	s->ring = calloc(s->cap, sizeof(*s->ring));
	if (s->ring == NULL) {
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	time_cond_init(&s->cond);
	return s;
}

int
cache_subscribe(struct cache *c, struct cache_sub *s)
{
	int rc = 0;

	pthread_mutex_lock(&c->notify_lock);
	if (c->nsubs == LIMITS_CACHE_SUBSCRIBERS)
		rc = -ENOSPC;
	else
		c->subs[c->nsubs++] = s;
	pthread_mutex_unlock(&c->notify_lock);
	return rc;
}

void
cache_unsubscribe(struct cache *c, struct cache_sub *s)
{
	pthread_mutex_lock(&c->notify_lock);
	for (size_t i = 0; i < c->nsubs; i++) {
		if (c->subs[i] == s) {
			c->subs[i] = c->subs[--c->nsubs];
			break;
		}
	}
	pthread_mutex_unlock(&c->notify_lock);
}

int
cache_sub_next(struct cache_sub *s, struct cache_event *ev, long timeout_ms)
{
	int64_t deadline = time_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	int rc = 0;

	memset(ev, 0, sizeof(*ev));
	pthread_mutex_lock(&s->lock);
	while (s->len == 0 && !s->overflowed && !s->closed) {
		if (timeout_ms < 0) {
			pthread_cond_wait(&s->cond, &s->lock);
		} else if (time_cond_wait_until(&s->cond, &s->lock, deadline) == ETIMEDOUT) {
			rc = -ETIMEDOUT;
			break;
		}
	}
	if (s->len > 0) {
		*ev = s->ring[s->head];
		s->head = (s->head + 1) % s->cap;
		s->len--;
		rc = 0;
	} else if (s->overflowed) {
		/* The queued events were delivered first; now say what was lost. */
		ev->change = CACHE_RESYNC;
		s->overflowed = false;
		rc = 0;
	} else if (s->closed) {
		rc = -ECANCELED;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void
cache_sub_close(struct cache_sub *s)
{
	pthread_mutex_lock(&s->lock);
	s->closed = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void
cache_sub_free(struct cache_sub *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->len; i++) {
		struct cache_event *ev = &s->ring[(s->head + i) % s->cap];
		cache_event_release(ev);
	}
	free(s->ring);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}

void
cache_event_release(struct cache_event *ev)
{
	if (ev == NULL)
		return;
	cache_obj_unref(ev->old_obj);
	cache_obj_unref(ev->new_obj);
	ev->old_obj = NULL;
	ev->new_obj = NULL;
}
