/* Fallback scale-up (DESIGN §5.5): which waiting pool pods go where — room on nodes already coming, standby nodes to start, instances to launch — packed first-fit-decreasing. */
#ifndef STRATOS_FALLBACK_H
#define STRATOS_FALLBACK_H

#include <stdbool.h>
#include <stddef.h>

#include "stratos/resources.h"

/*
 * Everything here is pure: the controller (src/controller/fallback.c)
 * gathers the pods and nodes from the caches, decides with
 * fallback_decide, and acts on the plan through the claim module (the one
 * home of claiming, shared with the extender).
 */

/* A node a pod may be packed onto: its allocatable and what it already holds. */
struct fallback_bin {
	const struct resources *alloc;   /* borrowed; NULL: the caller's default (a new node's) */
	struct resources_sum used;       /* DaemonSet pods, bound pods, live reservations */
};

/*
 * Packs n pod requests first-fit-decreasing: the pods in decreasing order
 * of their request (cpu, then memory, then ephemeral-storage; ties in the
 * caller's order), each into the first bin where it fits with the
 * scheduler's arithmetic (resources_sum_fits_pod: one pod slot each) —
 * bins[0 .. *nbins) first, as they are (nodes already on their way, in the
 * caller's order of preference) — else into a new bin while fewer than
 * max_bins are open: bins[*nbins] starts as base (what every new node runs
 * before any pod, the DaemonSets; may be NULL) on alloc. bins must have
 * room for max_bins entries; the bins used (old and new) get the pods'
 * requests added and *nbins grows by the bins opened. assign[i] is set to
 * the bin of pods[i], or left as it is when it fits none (too big for an
 * empty node, or max_bins reached): set it to -1 first. A NULL pods[i] is
 * skipped. Returns the number of bins opened, or -E2BIG (too many distinct
 * extended resources). The sums borrow the pods' extended-resource names.
 */
long fallback_pack_onto(const struct resources *alloc, const struct resources_sum *base,
    struct fallback_bin *bins, size_t *nbins, size_t max_bins,
    const struct resources *const *pods, size_t n, int *assign);

/*
 * fallback_pack_onto with no bin open yet: assign[i] is the node index of
 * pods[i], or -1. Returns the number of nodes used, or -ENOMEM / -E2BIG.
 */
long fallback_pack(const struct resources *alloc, const struct resources_sum *base,
    const struct resources *const *pods, size_t n, size_t max_bins, int *assign);

/* One pod that waits: no node could take it, and it holds no reservation. */
struct fallback_pod {
	const struct resources *requests;    /* borrowed */
	/*
	 * A standby node may be started for it now: it was never the
	 * extender's (nothing made it tolerate the standby taint), or the
	 * extender has had its grace. Otherwise it counts for the launches
	 * only (the extender is expected to start a standby node for it).
	 */
	bool act;
};

/* What the pool has that can take pods. Everything is borrowed. */
struct fallback_in {
	const struct resources *alloc;       /* a new node's allocatable; NULL: unknown (a node per pod) */
	const struct resources_sum *base;    /* what a new node runs before any pod; may be NULL */
	const struct fallback_pod *pods;
	size_t npods;
	/*
	 * Nodes already on their way, in order of preference: the first
	 * nreservable are starting (a reservation can be written there), the
	 * rest were made usable for pods so recently that those may not be
	 * bound yet (pods packed there are simply expected to bind).
	 */
	const struct fallback_bin *coming;
	size_t ncoming;
	size_t nreservable;
	unsigned standby;                    /* standby nodes that can be claimed */
	long room;                           /* poolSize − running nodes (starting ones included) */
};

/* Where a pod of fallback_in.pods goes (fallback_plan.where[i]). */
#define FALLBACK_COVERED  (-1)   /* waits for the extender, or for a coming node it is not reserved on */
#define FALLBACK_LAUNCH   (-2)   /* needs a node beyond the standby */
#define FALLBACK_NO_FIT   (-3)   /* fits no empty node of the pool */

struct fallback_plan {
	/*
	 * Per pod: 0 .. ncoming-1 its coming node (a reservation is to be
	 * written when that node is reservable and the pod acts); ncoming + k
	 * the k-th standby node to start now (k < start); or FALLBACK_*.
	 * Allocated by fallback_decide; free with fallback_plan_free.
	 */
	int *where;
	size_t npods;
	unsigned reserve;       /* pods to reserve room for on starting nodes */
	unsigned start;         /* standby nodes to start now, each for the pods of its index */
	unsigned standby_held;  /* standby nodes left for pods still in the extender's grace */
	unsigned launch;        /* nodes to launch for the pods that nothing else takes */
	unsigned no_fit;        /* pods too big for an empty node */
};

/*
 * The decision of DESIGN §5.5 for one pool. Acting pods are packed
 * first-fit-decreasing onto the coming nodes, then into at most
 * min(standby, room) new nodes: those are the standby nodes to start.
 * The pods still in the extender's grace then go where room is left on
 * those same nodes, then into the standby nodes still unclaimed (held for
 * the extender). Whatever fits none of them is packed into fresh nodes
 * (with no cap: poolSize is applied where the launches are planned), the
 * nodes to launch — so a launch never serves pods a standby start covers,
 * and no standby node is started for pods a coming node takes.
 * Returns 0, -ENOMEM or -E2BIG; on error plan is empty.
 */
int fallback_decide(const struct fallback_in *in, struct fallback_plan *plan);

void fallback_plan_free(struct fallback_plan *plan);

#endif
