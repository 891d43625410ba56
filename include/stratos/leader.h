/* Leader election on a coordination.k8s.io/v1 Lease with client-go semantics. */
#ifndef STRATOS_LEADER_H
#define STRATOS_LEADER_H

#include <stdbool.h>
#include <stddef.h>

#include "stratos/kube.h"

#define LEADER_LEASE_NAME           "stratos-controller"
#define LEADER_LEASE_DURATION_MS    15000L
#define LEADER_RENEW_DEADLINE_MS    10000L
#define LEADER_RETRY_PERIOD_MS      2000L
#define LEADER_IDENTITY_MAX         128

/*
 * Called on the election thread. on_started: this replica now holds the
 * lease; start leader-only work. on_stopped: it no longer does (renewal
 * failed for the renew deadline, another holder took it, or leader_stop);
 * stop leader-only work before returning — when on_stopped returns after
 * leader_stop, the lease is released and another replica may start at once.
 */
struct leader_config {
	const char *namespace;       /* of the Lease */
	const char *name;            /* NULL = LEADER_LEASE_NAME */
	const char *identity;        /* holderIdentity; NULL = leader_identity() */
	long lease_duration_ms;      /* 0 = defaults above */
	long renew_deadline_ms;
	long retry_period_ms;
	void (*on_started)(void *ctx);
	void (*on_stopped)(void *ctx);
	void *ctx;
};

struct leader;

/*
 * "<hostname>_<16 random hex digits>" into out. Returns 0 or -errno.
 * Thread-safe.
 */
int leader_identity(char *out, size_t len);

/* New elector (config strings copied); the kube client must outlive it. NULL on ENOMEM/EINVAL. */
struct leader *leader_new(struct kube *k, const struct leader_config *cfg);

/*
 * Starts the election thread: try to acquire every retry period (the
 * record of another holder must stay unchanged for the leaseDurationSeconds
 * it states, as measured on this clock, before it is taken over); as leader,
 * renew every retry period with a PUT carrying the resourceVersion (409 =
 * lost race).
 * Sets the stratos_leader gauge. Returns 0 or -errno.
 */
int leader_start(struct leader *l);

/*
 * Stops the thread. When leading: calls on_stopped, then (release true)
 * gives the lease up as client-go's ReleaseOnCancel does (empty holder,
 * 1 s duration) so another replica takes over at once. Idempotent.
 */
void leader_stop(struct leader *l, bool release);

/* Stops (releasing) and frees. NULL-safe. */
void leader_free(struct leader *l);

/*
 * True while this replica holds the lease and renewed it less than the
 * renew deadline ago — checked against the clock at each call, so leader
 * work that asks before each action stops in time even if the election
 * thread is stuck in a request. Thread-safe.
 */
bool leader_is_leader(struct leader *l);

/* This elector's identity (borrowed). */
const char *leader_self(const struct leader *l);

/* The holder last observed in the Lease ("" when none) copied into out. Thread-safe. */
void leader_holder(struct leader *l, char *out, size_t len);

#endif
