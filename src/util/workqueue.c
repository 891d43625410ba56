/* Keyed work queue: dedup, one run per key at a time, delays by a min-heap, worker threads. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/timeutil.h"
#include "stratos/workqueue.h"

#define WORKQUEUE__BUCKETS_MIN 64u
#define WORKQUEUE__HEAP_MIN    64u
#define WORKQUEUE__NOT_QUEUED  SIZE_MAX
/* Delays are clamped so due times never overflow (about 290 million years is plenty). */
#define WORKQUEUE__DELAY_MAX   (INT64_MAX / 4)

/*
 * One key, from its first add until its last run returns. It is either
 * waiting in the heap (heap_index set) or running (running); a run asked
 * for while it runs is remembered in again/again_due.
 */
struct workqueue__item {
	struct workqueue__item *next;      /* hash chain */
	int64_t due_ms;
	uint64_t seq;                      /* queue order among equal due times */
	size_t heap_index;
	bool running;
	bool again;
	int64_t again_due;
	char key[];
};

struct workqueue {
	pthread_mutex_t lock;
	pthread_cond_t wake;               /* a new earliest key, or stop */
	workqueue_fn fn;
	void *ctx;
	size_t max_items;
	size_t count;                      /* items: waiting + running */
	size_t reruns;                     /* running items with again set */
	struct workqueue__item **buckets;
	size_t nbuckets;                   /* a power of two */
	struct workqueue__item **heap;
	size_t heap_len, heap_cap;
	uint64_t seq;
	bool stopping;
	unsigned nthreads;
	pthread_t *threads;
};

/* The queue whose callback this thread is running, to refuse a stop that would join itself. */
static _Thread_local struct workqueue *workqueue__current;

static uint64_t
workqueue__hash(const char *key)
{
	uint64_t h = 1469598103934665603ULL;          /* FNV-1a */

	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 1099511628211ULL;
	return h;
}

static struct workqueue__item *
workqueue__find(struct workqueue *q, const char *key)
{
	struct workqueue__item *it = q->buckets[workqueue__hash(key) & (q->nbuckets - 1)];

	while (it != NULL && strcmp(it->key, key) != 0)
		it = it->next;
	return it;
}

/* Doubles the buckets once there are as many keys as buckets; failure only costs speed. */
static void
workqueue__grow_buckets(struct workqueue *q)
{
	size_t n = q->nbuckets * 2;
	struct workqueue__item **b;

	if (q->count < q->nbuckets || (b = calloc(n, sizeof(*b))) == NULL)
		return;
	for (size_t i = 0; i < q->nbuckets; i++) {
		struct workqueue__item *it = q->buckets[i], *next;
		for (; it != NULL; it = next) {
			size_t h = workqueue__hash(it->key) & (n - 1);
			next = it->next;
			it->next = b[h];
			b[h] = it;
		}
	}
	free(q->buckets);
	q->buckets = b;
	q->nbuckets = n;
}

static void
workqueue__unlink(struct workqueue *q, struct workqueue__item *it)
{
	struct workqueue__item **p = &q->buckets[workqueue__hash(it->key) & (q->nbuckets - 1)];

	while (*p != it)
		p = &(*p)->next;
	*p = it->next;
	q->count--;
}

/* ---- the heap of waiting keys, earliest (due, seq) first ---- */

static bool
workqueue__before(const struct workqueue__item *a, const struct workqueue__item *b)
{
	return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->seq < b->seq);
}

static void
workqueue__heap_set(struct workqueue *q, size_t i, struct workqueue__item *it)
{
	q->heap[i] = it;
	it->heap_index = i;
}

static void
workqueue__sift_up(struct workqueue *q, size_t i)
{
	struct workqueue__item *it = q->heap[i];

	while (i > 0 && workqueue__before(it, q->heap[(i - 1) / 2])) {
		workqueue__heap_set(q, i, q->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	workqueue__heap_set(q, i, it);
}

static void
workqueue__sift_down(struct workqueue *q, size_t i)
{
	struct workqueue__item *it = q->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= q->heap_len)
			break;
		if (c + 1 < q->heap_len && workqueue__before(q->heap[c + 1], q->heap[c]))
			c++;
		if (!workqueue__before(q->heap[c], it))
			break;
		workqueue__heap_set(q, i, q->heap[c]);
		i = c;
	}
	workqueue__heap_set(q, i, it);
}

/* Room for one more waiting key; the heap never holds more than max_items. */
static int
workqueue__heap_reserve(struct workqueue *q)
{
	struct workqueue__item **h;
	size_t cap;

	if (q->heap_len < q->heap_cap)
		return 0;
	cap = q->heap_cap * 2 < q->max_items ? q->heap_cap * 2 : q->max_items;
	if (cap <= q->heap_len || (h = realloc(q->heap, cap * sizeof(*h))) == NULL)
		return -ENOMEM;
	q->heap = h;
	q->heap_cap = cap;
	return 0;
}

/*
 * Puts it in the heap due at due_ms (room reserved). Idle workers sleep
 * until the earliest due time they saw, so a new earliest key wakes them
 * all to look again; any later key is seen when they wake anyway.
 */
static void
workqueue__push(struct workqueue *q, struct workqueue__item *it, int64_t due_ms)
{
	it->due_ms = due_ms;
	it->seq = q->seq++;
	q->heap_len++;
	workqueue__heap_set(q, q->heap_len - 1, it);
	workqueue__sift_up(q, q->heap_len - 1);
	if (it->heap_index == 0)
		pthread_cond_broadcast(&q->wake);
}

static struct workqueue__item *
workqueue__pop(struct workqueue *q)
{
	struct workqueue__item *top = q->heap[0];

	q->heap_len--;
	if (q->heap_len > 0) {
		workqueue__heap_set(q, 0, q->heap[q->heap_len]);
		workqueue__sift_down(q, 0);
	}
	top->heap_index = WORKQUEUE__NOT_QUEUED;
	return top;
}

static int64_t
workqueue__due(int64_t delay_ms)
{
	if (delay_ms < 0)
		delay_ms = 0;
	if (delay_ms > WORKQUEUE__DELAY_MAX)
		delay_ms = WORKQUEUE__DELAY_MAX;
	return time_mono_ms() + delay_ms;
}

/* ---- workers ---- */

/* After a run: queue it again (its own requeue or an add meanwhile, earliest first) or forget it. */
static void
workqueue__finish(struct workqueue *q, struct workqueue__item *it, int64_t requeue_ms)
{
	int64_t due = requeue_ms > 0 ? workqueue__due(requeue_ms) : INT64_MAX;

	it->running = false;
	if (it->again) {
		if (it->again_due < due)
			due = it->again_due;
		it->again = false;
		q->reruns--;
	}
	/* The heap has room: this key left it to run and counts toward max_items. */
	if (due != INT64_MAX && !q->stopping && workqueue__heap_reserve(q) == 0) {
		workqueue__push(q, it, due);
		return;
	}
	workqueue__unlink(q, it);
	free(it);
}

static void *
workqueue__worker(void *arg)
{
	struct workqueue *q = arg;

	pthread_mutex_lock(&q->lock);
	while (!q->stopping) {
		struct workqueue__item *it;
		int64_t requeue_ms;

		if (q->heap_len == 0) {
			pthread_cond_wait(&q->wake, &q->lock);
			continue;
		}
		if (q->heap[0]->due_ms > time_mono_ms()) {
			(void)time_cond_wait_until(&q->wake, &q->lock, q->heap[0]->due_ms);
			continue;
		}
		it = workqueue__pop(q);
		it->running = true;
		pthread_mutex_unlock(&q->lock);
		workqueue__current = q;
		requeue_ms = q->fn(q->ctx, it->key);
		workqueue__current = NULL;
		pthread_mutex_lock(&q->lock);
		workqueue__finish(q, it, requeue_ms);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* ---- the API ---- */

int
workqueue_add_after(struct workqueue *q, const char *key, int64_t delay_ms)
{
	struct workqueue__item *it;
	size_t len;
	int64_t due;
	int rc = 0;

	if (key == NULL || key[0] == '\0')
		return -EINVAL;
	if ((len = strnlen(key, LIMITS_WORKQUEUE_KEY + 1)) > LIMITS_WORKQUEUE_KEY)
		return -ENAMETOOLONG;
	due = workqueue__due(delay_ms);
	pthread_mutex_lock(&q->lock);
	if (q->stopping) {
		rc = -ESHUTDOWN;
	} else if ((it = workqueue__find(q, key)) != NULL) {
		if (it->running) {
			/* Runs again once this run returns; never beside it. */
			if (!it->again) {
				it->again = true;
				it->again_due = due;
				q->reruns++;
			} else if (due < it->again_due) {
				it->again_due = due;
			}
		} else if (due < it->due_ms) {
			it->due_ms = due;
			workqueue__sift_up(q, it->heap_index);
			if (it->heap_index == 0)
				pthread_cond_broadcast(&q->wake);
		}
	} else if (q->count >= q->max_items) {
		rc = -ENOSPC;
	} else if (workqueue__heap_reserve(q) < 0 ||
	    (it = calloc(1, sizeof(*it) + len + 1)) == NULL) {
		rc = -ENOMEM;
	} else {
		size_t h;

		memcpy(it->key, key, len + 1);
		q->count++;
		workqueue__grow_buckets(q);
		h = workqueue__hash(key) & (q->nbuckets - 1);
		it->next = q->buckets[h];
		q->buckets[h] = it;
		workqueue__push(q, it, due);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int
workqueue_add(struct workqueue *q, const char *key)
{
	return workqueue_add_after(q, key, 0);
}

size_t
workqueue_len(struct workqueue *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->heap_len + q->reruns;
	pthread_mutex_unlock(&q->lock);
	return n;
}

int
workqueue_stop(struct workqueue *q, size_t *cancelled)
{
	size_t dropped;

	if (cancelled != NULL)
		*cancelled = 0;
	if (workqueue__current == q)
		return -EDEADLK;
	pthread_mutex_lock(&q->lock);
	if (q->stopping) {
		/* Stopped already (or another thread is joining: see the header). */
		pthread_mutex_unlock(&q->lock);
		return 0;
	}
	q->stopping = true;
	dropped = q->heap_len + q->reruns;
	while (q->heap_len > 0) {
		struct workqueue__item *it = workqueue__pop(q);
		workqueue__unlink(q, it);
		free(it);
	}
	pthread_cond_broadcast(&q->wake);
	pthread_mutex_unlock(&q->lock);
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	if (cancelled != NULL)
		*cancelled = dropped;
	return 0;
}

void
workqueue_free(struct workqueue *q)
{
	if (q == NULL)
		return;
	/* Freeing the queue under a running callback would be a use after free. */
	if (workqueue__current == q)
		abort();
	(void)workqueue_stop(q, NULL);
	/* Running items free themselves before their worker exits; nothing is left. */
	free(q->heap);
	free(q->buckets);
	free(q->threads);
	pthread_cond_destroy(&q->wake);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

int
workqueue_new(unsigned workers, size_t max_items, workqueue_fn fn, void *ctx,
    struct workqueue **out)
{
	struct workqueue *q;
	int rc = ENOMEM;

	*out = NULL;
	if (workers == 0 || workers > LIMITS_WORKQUEUE_WORKERS || fn == NULL ||
	    max_items > LIMITS_WORKQUEUE_ITEMS)
		return -EINVAL;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return -ENOMEM;
	q->fn = fn;
	q->ctx = ctx;
	q->max_items = max_items != 0 ? max_items : LIMITS_WORKQUEUE_ITEMS;
	q->nbuckets = WORKQUEUE__BUCKETS_MIN;
	q->heap_cap = q->max_items < WORKQUEUE__HEAP_MIN ? q->max_items : WORKQUEUE__HEAP_MIN;
	q->buckets = calloc(q->nbuckets, sizeof(*q->buckets));
	q->heap = malloc(q->heap_cap * sizeof(*q->heap));
	q->threads = calloc(workers, sizeof(*q->threads));
	if (q->buckets == NULL || q->heap == NULL || q->threads == NULL ||
	    (rc = pthread_mutex_init(&q->lock, NULL)) != 0)
		goto fail;
	if ((rc = time_cond_init(&q->wake)) != 0) {
		pthread_mutex_destroy(&q->lock);
		goto fail;
	}
	for (; q->nthreads < workers; q->nthreads++) {
		if ((rc = pthread_create(&q->threads[q->nthreads], NULL, workqueue__worker, q)) != 0) {
			/* Stops and joins the workers started so far. */
			workqueue_free(q);
			return -rc;
		}
	}
	*out = q;
	return 0;
fail:
	free(q->buckets);
	free(q->heap);
	free(q->threads);
	free(q);
	return -rc;
}
