/* The pool controller's Node transitions (DESIGN §4): each one JSON Patch of labels, annotations and taints together. */
#ifndef STRATOS_TRANSITION_H
#define STRATOS_TRANSITION_H

#include <stdint.h>
#include <jansson.h>

#include "stratos/node_cache.h"
#include "stratos/nodepool.h"

/*
 * Every function builds the patch against the cached node n (which must
 * stay referenced) with node_patch, so each operation applies to that
 * version; the caller sends it with node_cache_patch guarded by n's
 * resourceVersion, so a node that changed meanwhile (another replica, the
 * extender's claim, the node lifecycle controller's taints) makes the
 * write fail with -EBUSY instead of undoing the other writer's work.
 * Returns the patch (caller's reference; an empty array when the node is
 * already that way) or NULL with *rc (-ENOMEM, -EINVAL). Pure.
 */
enum transition {
	/* none → warmup: a Node registered by one of the pool's instances. Sets the pool label,
	   the state, the instance id, the template labels, state-since = since_ms (the launch),
	   and the startup taints the node did not register with. */
	TRANSITION_ADOPT,
	/* warmup: the completion was seen (stratos.sh/warmup-done = now), before StopInstances */
	TRANSITION_WARMUP_DONE,
	/* warmup/running/stopping → standby: stopped and warm. The standby taint, the startup
	   taints back, uncordoned; warmup-done, empty-since, started-for and reservations gone */
	TRANSITION_STANDBY,
	/* warmup: timed out with timeoutAction stop (the stratos.sh/warmup-failed taint) */
	TRANSITION_WARMUP_FAILED,
	/* warmup (failed) or standby → warmup again: taints of both gone, state-since = now */
	TRANSITION_REWARM,
	/* warmup → running: warmup finished while pool pods wait (§5.5); started-at = since_ms
	   (the launch), so it is a starting node whose room the extender promises to those pods */
	TRANSITION_RUN_AFTER_WARMUP,
	/* running → stopping: empty for emptyNodeTTL; cordoned */
	TRANSITION_STOPPING,
	/* stopping → running: the drain timed out; uncordoned */
	TRANSITION_DRAIN_TIMEOUT,
	/* standby → running: the instance was started behind Stratos' back (§5.6) */
	TRANSITION_CONVERGE_RUNNING,
	/* running: stratos.sh/empty-since = now (since_ms > 0) or removed (since_ms 0) */
	TRANSITION_EMPTY_SINCE,
	/* running: the pool's startup taints removed (§5.3) */
	TRANSITION_REMOVE_STARTUP_TAINTS,
	/* running: stratos.sh/last-workload = workload */
	TRANSITION_LAST_WORKLOAD,
};

/* "adopt", "standby", ... for logs. */
const char *transition_name(enum transition t);

/* Optional inputs of some transitions. */
struct transition_args {
	const char *instance_id;     /* ADOPT */
	int64_t since_ms;            /* ADOPT: the state-since; EMPTY_SINCE: the time or 0;
	                                RUN_AFTER_WARMUP: the launch (started-at) */
	const char *workload;        /* LAST_WORKLOAD */
};

json_t *transition_build(const struct node_info *n, const struct nodepool *pool,
    enum transition t, int64_t now_ms, const struct transition_args *args, int *rc);

#endif
