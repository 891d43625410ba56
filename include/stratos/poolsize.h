/* Pool size (DESIGN §5.2): the counts of a pool, how many instances to launch, re-warm or retire, and in which order. */
#ifndef STRATOS_POOLSIZE_H
#define STRATOS_POOLSIZE_H

#include <stddef.h>
#include <stdint.h>

/*
 * A pool's instances by state. warmup counts warming nodes, nodes that
 * failed warmup (also in warmup_failed), instances that have not
 * registered a Node yet and launches recorded but not seen yet; every
 * instance counts once in total (poolSize bounds warmup + standby + running
 * + stopping).
 */
struct poolsize_counts {
	unsigned warmup;
	unsigned warmup_failed;
	unsigned standby;
	unsigned running;
	unsigned stopping;
	unsigned total;
};

struct poolsize_plan {
	unsigned rewarm;             /* warmup-failed nodes to warm again */
	unsigned launch;             /* new instances */
	unsigned shrink;             /* instances to retire (never running or stopping ones) */
};

/*
 * Replenish while warmup (not failed) + standby < minStandby and total <
 * poolSize, re-warming up to rewarmable failed nodes before launching (they
 * hold a slot of poolSize already), at most max_launch launches; shrink by
 * total - poolSize when the pool is over its size, bounded by what may be
 * retired (warmup and standby). Pure.
 */
void poolsize_plan(int pool_size, int min_standby, const struct poolsize_counts *c,
    unsigned rewarmable, unsigned max_launch, struct poolsize_plan *out);

/* What a shrink may retire, in the order it retires them. */
enum poolsize_victim_kind {
	POOLSIZE_VICTIM_FAILED,      /* failed warmup: useless as it is */
	POOLSIZE_VICTIM_STANDBY,     /* least recently used first (oldest state-since) */
	POOLSIZE_VICTIM_UNREGISTERED,/* launched, no Node yet: newest first */
	POOLSIZE_VICTIM_WARMUP,      /* warming: newest first (least progress lost) */
};

struct poolsize_victim {
	enum poolsize_victim_kind kind;
	int64_t since_ms;            /* state-since, or the launch time */
	size_t index;                /* the caller's */
};

/* Sorts v into the retire order above (ties: the caller's index). Pure. */
void poolsize_shrink_order(struct poolsize_victim *v, size_t n);

#endif
