/* A keyed work queue with delays and worker threads: the pool controller's per-node and per-pool tasks. */
#ifndef STRATOS_WORKQUEUE_H
#define STRATOS_WORKQUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "stratos/limits.h"

/*
 * The semantics of client-go's util/workqueue (queue.go, delaying_queue.go),
 * so slow work (a drain, a wait for an instance state) runs as a task per
 * key and no pool waits for another (DESIGN §5):
 *
 * - Keys are strings ("node/ip-10-0-1-11", "pool/ci-runners"). A key added
 *   while it waits is queued once (the "dirty" set).
 * - A key runs on one worker at a time (the "processing" set). Added while
 *   it runs, it runs again after the current run returns, never beside it.
 * - Each key waits with one due time: added again, the earliest due time
 *   wins (an immediate add overtakes a delayed one; a later one changes
 *   nothing). Unlike client-go, a pending delayed add is absorbed by an
 *   earlier one rather than kept for a second run: tasks are level-driven,
 *   and a run that still has work asks for its own requeue.
 * - Due keys run in due-time order, then in the order they were queued.
 * - Times are CLOCK_MONOTONIC (time_mono_ms): a wall-clock step changes no delay.
 *
 * Thread-safety: every function may be called from any thread, including
 * the callbacks, except workqueue_stop and workqueue_free, which wait for
 * the callbacks and so must not be called from one.
 */
struct workqueue;

/*
 * Runs key (borrowed for the call). Returns 0 when done, or a delay in
 * milliseconds after which key must run again (an instance not stopped yet,
 * a throttled call); negative counts as 0. Called without any lock held:
 * it may add keys, its own included.
 */
typedef int64_t (*workqueue_fn)(void *ctx, const char *key);

/*
 * Starts a queue with workers threads (1..LIMITS_WORKQUEUE_WORKERS) calling
 * fn(ctx, key). max_items bounds the distinct keys waiting or running at
 * once (0 = LIMITS_WORKQUEUE_ITEMS, the most allowed). *out is the queue
 * (free with workqueue_free). Returns 0, -EINVAL, -ENOMEM, or the negative
 * pthread error when a thread cannot start.
 */
int workqueue_new(unsigned workers, size_t max_items, workqueue_fn fn, void *ctx,
    struct workqueue **out);

/*
 * Queues key to run as soon as a worker is free. Returns 0 (also when key
 * is already waiting or running: see above), -EINVAL for a NULL or empty
 * key, -ENAMETOOLONG beyond LIMITS_WORKQUEUE_KEY bytes, -ENOSPC when key is
 * new and max_items keys are already waiting or running (the caller logs
 * and relies on its periodic resync to add it later; keys already in the
 * queue are never refused), -ESHUTDOWN after workqueue_stop, -ENOMEM.
 */
int workqueue_add(struct workqueue *q, const char *key);

/* Queues key to run delay_ms from now (<= 0: now). Errors as workqueue_add. */
int workqueue_add_after(struct workqueue *q, const char *key, int64_t delay_ms);

/*
 * Keys waiting to run, due or delayed, including runs queued behind a
 * current run of the same key; keys running without another run queued
 * are not counted. For metrics and tests: it may change at once.
 */
size_t workqueue_len(struct workqueue *q);

/*
 * Stops the queue by cancelling, not draining (client-go's ShutDown, not
 * ShutDownWithDrain): keys waiting are dropped without running, runs in
 * progress finish (and their requeues are dropped), the workers are
 * joined, later adds fail with -ESHUTDOWN. Draining could wait minutes for
 * delayed keys, and the queue stops when this replica loses leadership:
 * the next leader rebuilds the work from the cluster. *cancelled (may be
 * NULL) is the number of runs dropped. Returns 0, or -EDEADLK when called
 * from one of q's callbacks (nothing done). Calling it again returns 0
 * with *cancelled 0.
 */
int workqueue_stop(struct workqueue *q, size_t *cancelled);

/* Stops q (as workqueue_stop) and frees it. NULL-safe. Never from q's callbacks (aborts). */
void workqueue_free(struct workqueue *q);

#endif
