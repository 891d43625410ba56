/* What a cached Node is to a pool (DESIGN §4, §6.3): usable, starting, standby, ... — one reading for the extender and the controller. */
#ifndef STRATOS_POOL_NODE_H
#define STRATOS_POOL_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include "stratos/node_cache.h"
#include "stratos/nodepool.h"

/*
 * The kinds a node falls into for a pool P, in the order the extender
 * prefers them. Every kind but USABLE has a stable reason string the
 * extender puts in FailedAndUnresolvableNodes (pool_node_reason).
 */
enum pool_node_kind {
	POOL_NODE_USABLE,            /* P's, running, Ready (since its start: pool_node_ready_since_start),
	                                network ready, no startup taint of P left;
	                                or no pool's, Ready, none of the taints the pod was made to tolerate */
	POOL_NODE_STARTING,          /* P's, claimed (running) less than preWarm.timeout ago, not usable yet */
	POOL_NODE_STANDBY,           /* P's, standby (stopped, warm) */
	POOL_NODE_WARMING,           /* P's, warmup */
	POOL_NODE_STOPPING,          /* P's, stopping (draining or stopping) */
	POOL_NODE_NOT_READY,         /* not Ready, or running but started too long ago to wait for */
	POOL_NODE_WARMUP_FAILED,     /* carries stratos.sh/warmup-failed: never used for scale-up */
	POOL_NODE_OTHER_POOL,        /* another pool's node */
	POOL_NODE_UNMANAGED,         /* P's label but no state label: not adopted yet */
	POOL_NODE_DELETING,          /* deletionTimestamp set */
};

#define POOL_NODE_KINDS 10

/* "stratos: node is standby", ...; "" for USABLE. Stable: tests and users match them. */
const char *pool_node_reason(enum pool_node_kind kind);

/* "usable", "starting", "standby", ... for logs and metrics. */
const char *pool_node_kind_name(enum pool_node_kind kind);

/*
 * What n is to pool (the pool's parsed spec; NULL for a pod of no known
 * pool, when only "usable or not" matters), at now_ms (Unix ms). Pure;
 * thread-safe on a referenced node and a held pools snapshot.
 */
enum pool_node_kind pool_node_classify(const struct node_info *n, const struct nodepool *pool,
    int64_t now_ms);

/*
 * Whether the node is Ready for this run of its machine: Ready True and,
 * for a node claimed and started (stratos.sh/started-at), Ready since that
 * start. A Ready left over from before the stop is not readiness: the node
 * lifecycle controller marks a silent kubelet Unknown only after its grace
 * period (~40 s), so a node claimed right after it stopped still shows the
 * old Ready while its machine boots; a restarted kubelet reports Ready
 * False, then True, so a real Ready has a lastTransitionTime after the
 * start. Pure.
 */
bool pool_node_ready_since_start(const struct node_info *n);

/*
 * Whether the node's readiness lets the pool's startup taints go
 * (startupTaintRemoval, DESIGN §3.2): WhenNetworkReady needs Ready and
 * network ready, WhenReady only Ready, Never never.
 */
bool pool_node_startup_taints_removable(const struct node_info *n, const struct nodepool *pool);

/* Whether n still carries one of pool's startup taints (key and effect). */
bool pool_node_has_startup_taint(const struct node_info *n, const struct nodepool *pool);

#endif
