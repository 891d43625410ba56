/* Keyed work queue with delays: a hash of keys, a FIFO of keys due now and a heap of keys due later. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/timeutil.h"
#include "stratos/workqueue.h"

struct workqueue__item {
	char key[WORKQUEUE_KEY_MAX + 1];
	uint32_t hash;
	bool queued;                 /* in the FIFO */
	bool active;                 /* a worker holds it */
	bool dirty;                  /* added while active: queue again at done */
	int64_t due;                 /* in the heap when > 0 */
	size_t heap_pos;
	struct workqueue__item *hnext;   /* hash chain */
	struct workqueue__item *qnext;   /* FIFO */
};

struct workqueue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t max, count;
	struct workqueue__item **buckets;
	size_t nbuckets;
	struct workqueue__item *head, *tail;
	size_t queued, active;
	struct workqueue__item **heap;
	size_t nheap;
	bool shutdown;
	unsigned long added, processed;
};

static uint32_t
workqueue__hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

struct workqueue *
workqueue_new(size_t max_keys)
{
	struct workqueue *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->max = max_keys > 0 ? max_keys : 1;
	q->nbuckets = 1024;
	while (q->nbuckets < q->max && q->nbuckets < (1u << 20))
		q->nbuckets *= 2;
	q->buckets = calloc(q->nbuckets, sizeof(*q->buckets));
	q->heap = calloc(q->max, sizeof(*q->heap));
	if (q->buckets == NULL || q->heap == NULL) {
		free(q->buckets);
		free(q->heap);
		free(q);
		return NULL;
	}
	pthread_mutex_init(&q->lock, NULL);
	time_cond_init(&q->cond);
	return q;
}

void
workqueue_free(struct workqueue *q)
{
	if (q == NULL)
		return;
	for (size_t i = 0; i < q->nbuckets; i++) {
		struct workqueue__item *it = q->buckets[i], *next;
		for (; it != NULL; it = next) {
			next = it->hnext;
			free(it);
		}
	}
	free(q->buckets);
	free(q->heap);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q);
}

static struct workqueue__item *
workqueue__find(struct workqueue *q, const char *key, uint32_t h)
{
	struct workqueue__item *it = q->buckets[h & (q->nbuckets - 1)];

	for (; it != NULL; it = it->hnext)
		if (it->hash == h && strcmp(it->key, key) == 0)
			return it;
	return NULL;
}

/* Drops an item that is neither queued, active nor delayed. */
static void
workqueue__drop(struct workqueue *q, struct workqueue__item *it)
{
	struct workqueue__item **pp = &q->buckets[it->hash & (q->nbuckets - 1)];

	while (*pp != it)
		pp = &(*pp)->hnext;
	*pp = it->hnext;
	q->count--;
	free(it);
}

static void
workqueue__heap_swap(struct workqueue *q, size_t a, size_t b)
{
	struct workqueue__item *t = q->heap[a];

	q->heap[a] = q->heap[b];
	q->heap[b] = t;
	q->heap[a]->heap_pos = a;
	q->heap[b]->heap_pos = b;
}

static void
workqueue__heap_up(struct workqueue *q, size_t i)
{
	while (i > 0 && q->heap[(i - 1) / 2]->due > q->heap[i]->due) {
		workqueue__heap_swap(q, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
workqueue__heap_down(struct workqueue *q, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < q->nheap && q->heap[l]->due < q->heap[m]->due)
			m = l;
		if (r < q->nheap && q->heap[r]->due < q->heap[m]->due)
			m = r;
		if (m == i)
			return;
		workqueue__heap_swap(q, i, m);
		i = m;
	}
}

static void
workqueue__heap_remove(struct workqueue *q, struct workqueue__item *it)
{
	size_t i = it->heap_pos;

	q->nheap--;
	if (i != q->nheap) {
		q->heap[i] = q->heap[q->nheap];
		q->heap[i]->heap_pos = i;
		workqueue__heap_down(q, i);
		workqueue__heap_up(q, i);
	}
	it->due = 0;
}

/* Puts an item at the FIFO's end (not active: active ones are marked dirty instead). */
static void
workqueue__enqueue(struct workqueue *q, struct workqueue__item *it)
{
	if (it->due > 0)
		workqueue__heap_remove(q, it);
	if (it->queued)
		return;
	if (it->active) {
		it->dirty = true;
		return;
	}
	it->queued = true;
	it->qnext = NULL;
	if (q->tail != NULL)
		q->tail->qnext = it;
	else
		q->head = it;
	q->tail = it;
	q->queued++;
	pthread_cond_signal(&q->cond);
}

static int
workqueue__add(struct workqueue *q, const char *key, int64_t due)
{
	size_t len = strlen(key);
	uint32_t h = workqueue__hash(key);
	struct workqueue__item *it;
	int rc = 0;

	if (len > WORKQUEUE_KEY_MAX)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&q->lock);
	if (q->shutdown) {
		rc = -ECANCELED;
		goto out;
	}
	it = workqueue__find(q, key, h);
	if (it == NULL) {
		if (q->count == q->max || (it = calloc(1, sizeof(*it))) == NULL) {
			rc = q->count == q->max ? -ENOSPC : -ENOMEM;
			goto out;
		}
		memcpy(it->key, key, len + 1);
		it->hash = h;
		it->hnext = q->buckets[h & (q->nbuckets - 1)];
		q->buckets[h & (q->nbuckets - 1)] = it;
		q->count++;
	}
	q->added++;
	if (due <= 0 || it->queued || it->dirty) {
		workqueue__enqueue(q, it);
	} else if (it->due == 0 || due < it->due) {
		if (it->due == 0) {
			it->heap_pos = q->nheap;
			q->heap[q->nheap++] = it;
		}
		it->due = due;
		workqueue__heap_up(q, it->heap_pos);
		pthread_cond_broadcast(&q->cond);
	}
out:
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int
workqueue_add(struct workqueue *q, const char *key)
{
	return workqueue__add(q, key, 0);
}

int
workqueue_add_after(struct workqueue *q, const char *key, int64_t delay_ms)
{
	return workqueue__add(q, key, delay_ms <= 0 ? 0 : time_mono_ms() + delay_ms);
}

int
workqueue_get(struct workqueue *q, char *key, int64_t deadline_ms)
{
	struct workqueue__item *it;
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		int64_t now = time_mono_ms(), wake = deadline_ms;
		if (q->shutdown) {
			rc = -ECANCELED;
			break;
		}
		while (q->nheap > 0 && q->heap[0]->due <= now)
			workqueue__enqueue(q, q->heap[0]);
		if (q->head != NULL)
			break;
		if (deadline_ms >= 0 && now >= deadline_ms) {
			rc = -ETIMEDOUT;
			break;
		}
		if (q->nheap > 0 && (wake < 0 || q->heap[0]->due < wake))
			wake = q->heap[0]->due;
		if (wake < 0)
			pthread_cond_wait(&q->cond, &q->lock);
		else
			time_cond_wait_until(&q->cond, &q->lock, wake);
	}
	if (rc == 0) {
		it = q->head;
		q->head = it->qnext;
		if (q->head == NULL)
			q->tail = NULL;
		it->queued = false;
		it->active = true;
		q->queued--;
		q->active++;
		memcpy(key, it->key, strlen(it->key) + 1);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

void
workqueue_done(struct workqueue *q, const char *key)
{
	struct workqueue__item *it;

	pthread_mutex_lock(&q->lock);
	it = workqueue__find(q, key, workqueue__hash(key));
	if (it != NULL && it->active) {
		it->active = false;
		q->active--;
		q->processed++;
		if (it->dirty && !q->shutdown) {
			it->dirty = false;
			workqueue__enqueue(q, it);
		} else if (it->due == 0) {
			workqueue__drop(q, it);
		}
	}
	pthread_mutex_unlock(&q->lock);
}

void
workqueue_shutdown(struct workqueue *q)
{
	pthread_mutex_lock(&q->lock);
	q->shutdown = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void
workqueue_stats(struct workqueue *q, struct workqueue_stats *out)
{
	pthread_mutex_lock(&q->lock);
	out->queued = q->queued;
	out->delayed = q->nheap;
	out->active = q->active;
	out->added = q->added;
	out->processed = q->processed;
	pthread_mutex_unlock(&q->lock);
}
