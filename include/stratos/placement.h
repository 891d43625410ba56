/* Where a pool pod can go now (DESIGN §6.3): usable nodes, the reservation it holds, room on a starting node, or a standby node to claim — a pure decision over the caches. */
#ifndef STRATOS_PLACEMENT_H
#define STRATOS_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stratos/limits.h"
#include "stratos/node_cache.h"
#include "stratos/pod_cache.h"
#include "stratos/pool_node.h"
#include "stratos/pools.h"
#include "stratos/reservations.h"
#include "stratos/resources.h"

/*
 * No I/O: the decision reads the node and pod caches and the pools
 * snapshot and nothing else, so the extender can answer from the event
 * loop whenever no write is needed, and the tests can drive it over tables
 * of node sets without HTTP. Acting on the decision (reserving, claiming,
 * starting) is claim.h's.
 */

/* Drop reasons of placement itself (stable; pool_node_reason gives the others). */
#define PLACEMENT_REASON_ROOM_RESERVED "stratos: room reserved for other pods"
#define PLACEMENT_REASON_UNKNOWN_NODE  "stratos: node is not known yet"

/* The pod being placed: facts the caller read from the request (or the pod cache). Borrowed. */
struct placement_pod {
	const char *uid;
	const char *key;                          /* "namespace/name" */
	const char *owner_key;                    /* NULL when the pod has no controller */
	const struct resources *requests;
	const char *pools[LIMITS_EXTENDER_POOLS]; /* its stratos.sh/pool annotation, split */
	size_t npools;
};

/*
 * Splits a stratos.sh/pool annotation value ("a" or "a,b") into pod->pools,
 * pointing into buf (a copy the caller keeps alive). Returns the number of
 * pools (0 for an empty value); names beyond LIMITS_EXTENDER_POOLS are
 * dropped.
 */
size_t placement_split_pools(char *buf, struct placement_pod *pod);

/* One candidate node of the scheduler's call. */
struct placement_node {
	const char *name;                /* as the scheduler sent it (borrowed) */
	const struct node_info *node;    /* the cached node (borrowed), NULL when unknown */
	/* filled by placement_decide */
	enum pool_node_kind kind;
	const struct nodepool *pool;     /* which of the pod's pools the node counts for, or NULL */
	const char *reason;              /* NULL when offered; else the stable drop reason */
};

enum placement_action {
	PLACEMENT_USABLE,       /* offer the usable nodes (reason NULL) */
	PLACEMENT_WAIT,         /* the pod holds a reservation on starting node `target` */
	PLACEMENT_RESERVE,      /* reserve room on starting candidate `target` (it fits there) */
	PLACEMENT_CLAIM,        /* claim one of `standby` (ranked) */
	PLACEMENT_NO_CAPACITY,  /* nothing usable, starting with room, or standby: wait for the controller */
};

/* "usable", "wait", "reserve", "claim", "no-capacity". */
const char *placement_action_name(enum placement_action a);

struct placement {
	enum placement_action action;
	size_t noffered;                 /* USABLE: candidates with reason NULL */
	struct node_info *target;        /* WAIT, RESERVE: a reference (placement_free drops it) */
	bool target_is_candidate;        /* target is one of the candidates */
	const struct nodepool *pool;     /* pool of target / standby; NO_CAPACITY: the pod's first known pool */
	const char *pool_name;           /* its name (the pod's first pool when unknown) */
	const struct node_info **standby;  /* CLAIM: ranked, borrowed from the candidates */
	unsigned *standby_rank;          /* pool preference of each (index in the pod's pools) */
	size_t nstandby;
};

/* What the decision reads. Borrowed; the snapshot must be held. */
struct placement_in {
	const struct pools_snapshot *snap;
	struct node_cache *nodes;        /* the pod's reservation on nodes outside the candidates; zone loads */
	struct pod_cache *pods;          /* pods bound to a node; whether a reserved pod is still pending */
	int64_t now_ms;                  /* wall clock, Unix ms */
};

/*
 * The decision of DESIGN §6.3 for pod over the candidates cand[0..n):
 *  1. usable nodes (pool_node_classify against the pod's pool; a node of
 *     no pool must be usable for every pool of the pod), minus those whose
 *     room is promised to other pods' live reservations → USABLE;
 *  2. else the pod's own live reservation on a node that is starting →
 *     WAIT; else the first starting candidate (earliest started) where it
 *     fits → RESERVE; else the standby candidates of its pools, ranked →
 *     CLAIM; else NO_CAPACITY.
 * Every candidate not offered gets a reason. Returns 0 or -ENOMEM; free
 * out with placement_free. Thread-safe (reads only).
 */
int placement_decide(const struct placement_in *in, const struct placement_pod *pod,
    struct placement_node *cand, size_t n, struct placement *out);

void placement_free(struct placement *p);

/*
 * Whether a pod (uid, requests) fits node n beside what is promised there:
 * the pods bound to it (not finished) and the node's live reservations of
 * other pods — a reservation is dead once its pod is bound, being deleted,
 * finished, or replaced by another uid under the name; a pod the cache has
 * not seen counts as alive. A reservation list that does not parse leaves
 * no room. *short_of as reservations_fit (the same NodeResourcesFit check,
 * resources_sum_fits_pod). Thread-safe.
 */
bool placement_fits(struct pod_cache *pods, const struct node_info *n, const char *uid,
    const struct resources *requests, const char **short_of);

/*
 * What node n already holds, as placement_fits counts it: the requests of
 * the pods bound to it (not finished) and of its live reservations but
 * except_uid's (may be NULL), one pod slot each, into *used. The sum
 * borrows extended-resource names from those pods and from n: *held (and
 * *nheld) get references to the pods, to free with cache_objs_free once
 * the sum is no longer used; keep n referenced as long. Returns 0, -EINVAL
 * (the reservations annotation does not parse: no room to promise),
 * -E2BIG (too many distinct extended resources), -ENOMEM; *short_of (may
 * be NULL) names why. Thread-safe.
 */
int placement_used(struct pod_cache *pods, const struct node_info *n, const char *except_uid,
    struct resources_sum *used, struct cache_obj ***held, size_t *nheld, const char **short_of);

/* Whether reservation e still promises room (see placement_fits). Thread-safe. */
bool placement_reservation_alive(struct pod_cache *pods, const struct reservation *e);

/* placement_reservation_alive as a reservations_keep_fn (ctx: the pod cache). */
bool placement_keep_alive(void *ctx, const struct reservation *e);

/*
 * n's reservations as the node cache parsed them once (*out borrowed from n,
 * valid while n is referenced; NULL when it has none). Returns 0, or -EINVAL
 * when the annotation does not parse.
 * A malformed annotation counts as no reservation for a usable node (it is
 * offered), and as no room on a starting node (nothing more is promised on
 * promises that cannot be read; its pods are served elsewhere).
 */
int placement_reservations(const struct node_info *n, const struct reservations **out);

/* Whether n carries a live reservation for pod uid. Thread-safe. */
bool placement_holds(struct pod_cache *pods, const struct node_info *n, const char *uid);

#endif
