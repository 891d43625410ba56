/* Pods this replica's extender answered for, followed until they are bound: reservations released, bind latency measured. */
#ifndef STRATOS_PLACED_H
#define STRATOS_PLACED_H

#include <stdbool.h>
#include <stdint.h>

#include "stratos/pool_ctx.h"

/*
 * When a pool pod that this replica last answered with nodes is bound, the
 * reservations it still holds (on the node it got, or on a node it no
 * longer needs) are dropped (claim_release), and two histograms are
 * observed: stratos_pod_pending_to_bound_seconds (pod created → bound) and,
 * when it was bound to a node it held a reservation on,
 * stratos_bind_after_ready_seconds (that node became usable → bound). Only
 * the replica whose answer led to the binding records them, so several
 * replicas do not count one pod twice. Usable-since times come from this
 * replica's node watch.
 */

struct placed;

/* A tracker over ctx (borrowed). Registers its metrics. NULL on ENOMEM. */
struct placed *placed_new(const struct pool_ctx *ctx);

/*
 * Subscribes to the node and pod caches and starts the thread that follows
 * them. Returns 0, -ENOTSUP without caches, or -errno.
 */
int placed_start(struct placed *p);

/* Stops the thread and frees. NULL-safe. */
void placed_free(struct placed *p);

/*
 * Notes this replica's answer for pod uid: offered says whether its
 * binding is this replica's to measure (the extender offered it nodes, or
 * the controller's fallback promised it room). created_ms is the pod's
 * creationTimestamp (Unix ms, 0 unknown); node (may be NULL) the node its
 * room was promised on, so a binding there counts as bind-after-ready even
 * when the promise is dropped before this tracker sees the binding. Keeps
 * at most LIMITS_PLACED_PODS pods (older answers are forgotten first).
 * Quick, never waits on I/O; thread-safe. NULL-safe on p.
 */
void placed_note(struct placed *p, const char *uid, const char *pool, int64_t created_ms,
    bool offered, const char *node);

/* Pods followed now (tests). Thread-safe. */
size_t placed_count(struct placed *p);

#endif
