/* Events without waiting: a bounded queue and one thread that posts them (the fast path never waits on the API server for an Event). */
#ifndef STRATOS_KUBE_RECORDER_H
#define STRATOS_KUBE_RECORDER_H

#include "stratos/kube.h"

struct kube_recorder;

/* New recorder posting through k (which must outlive it); its thread starts at once. NULL on ENOMEM. */
struct kube_recorder *kube_recorder_new(struct kube *k);

/*
 * Posts what is queued for up to flush_ms, then stops the thread and frees.
 * NULL-safe.
 */
void kube_recorder_free(struct kube_recorder *r, long flush_ms);

/*
 * Queues a copy of ev (kube_event_create's fields) with the note formatted
 * from fmt. Never blocks on the network: when LIMITS_KUBE_EVENT_QUEUE events
 * wait already the event is dropped and counted
 * (stratos_events_dropped_total). NULL-safe on r (no cluster: nothing).
 * Thread-safe.
 */
void kube_recorder_emit(struct kube_recorder *r, const struct kube_event *ev, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Events posted and dropped so far (tests). Thread-safe. */
void kube_recorder_stats(struct kube_recorder *r, unsigned long *posted, unsigned long *dropped);

#endif
