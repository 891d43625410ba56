/* A keyed work queue: each key waits once, is worked on by one thread at a time, and may come back after a delay. */
#ifndef STRATOS_WORKQUEUE_H
#define STRATOS_WORKQUEUE_H

#include <stddef.h>
#include <stdint.h>

/*
 * The semantics of client-go's workqueue, which controllers rely on:
 * - adding a key that is already waiting does nothing (a burst of events
 *   about one node is one task);
 * - a key being worked on is never handed to a second worker; if it is
 *   added meanwhile, it waits and is handed out again after
 *   workqueue_done (so the change that arrived during the work is seen);
 * - workqueue_add_after makes a key wait until a time (the earliest of
 *   several such times wins), then behaves like workqueue_add.
 * Keys are strings of at most WORKQUEUE_KEY_MAX bytes; at most max_keys
 * distinct keys are held. Every function is thread-safe.
 */

#define WORKQUEUE_KEY_MAX 320

struct workqueue;

/* New queue of at most max_keys keys. NULL on ENOMEM. */
struct workqueue *workqueue_new(size_t max_keys);

/* Frees the queue; no thread may use it any more. NULL-safe. */
void workqueue_free(struct workqueue *q);

/* Queues key. Returns 0, -ENOSPC (full), -ENAMETOOLONG, -ECANCELED (shut down). */
int workqueue_add(struct workqueue *q, const char *key);

/*
 * Queues key in delay_ms (≤ 0: now). A key already waiting (now or
 * sooner) is left as it is. Returns as workqueue_add.
 */
int workqueue_add_after(struct workqueue *q, const char *key, int64_t delay_ms);

/*
 * Takes the next key into key[WORKQUEUE_KEY_MAX + 1], waiting until one is
 * due, until deadline_ms (time_mono_ms(); -1 = no deadline) or shutdown.
 * Returns 0 (call workqueue_done(key) after the work), -ETIMEDOUT or
 * -ECANCELED (shut down: stop working).
 */
int workqueue_get(struct workqueue *q, char *key, int64_t deadline_ms);

/* Ends the work on key; a key added meanwhile is queued again. */
void workqueue_done(struct workqueue *q, const char *key);

/* Wakes every waiter; later gets return -ECANCELED and adds are refused. */
void workqueue_shutdown(struct workqueue *q);

/* Keys waiting (due now), waiting for a time, and being worked on. */
struct workqueue_stats {
	size_t queued, delayed, active;
	unsigned long added, processed;
};
void workqueue_stats(struct workqueue *q, struct workqueue_stats *out);

#endif
