/* What a cached Node is to a pool: the definitions of DESIGN §6.3 (usable, starting) and §4 (states). */
#include <string.h>

#include "stratos/kube_types.h"
#include "stratos/nodestate.h"
#include "stratos/pool_node.h"
#include "stratos/poolpod.h"

static const char *const pool_node__reasons[POOL_NODE_KINDS] = {
	[POOL_NODE_USABLE] = "",
	[POOL_NODE_STARTING] = "stratos: node is starting",
	[POOL_NODE_STANDBY] = "stratos: node is standby",
	[POOL_NODE_WARMING] = "stratos: node is warming up",
	[POOL_NODE_STOPPING] = "stratos: node is stopping",
	[POOL_NODE_NOT_READY] = "stratos: node is not ready",
	[POOL_NODE_WARMUP_FAILED] = "stratos: node failed its warmup",
	[POOL_NODE_OTHER_POOL] = "stratos: node belongs to another pool",
	[POOL_NODE_UNMANAGED] = "stratos: node is not managed yet",
	[POOL_NODE_DELETING] = "stratos: node is being deleted",
};

static const char *const pool_node__names[POOL_NODE_KINDS] = {
	[POOL_NODE_USABLE] = "usable",
	[POOL_NODE_STARTING] = "starting",
	[POOL_NODE_STANDBY] = "standby",
	[POOL_NODE_WARMING] = "warmup",
	[POOL_NODE_STOPPING] = "stopping",
	[POOL_NODE_NOT_READY] = "not-ready",
	[POOL_NODE_WARMUP_FAILED] = "warmup-failed",
	[POOL_NODE_OTHER_POOL] = "other-pool",
	[POOL_NODE_UNMANAGED] = "unmanaged",
	[POOL_NODE_DELETING] = "deleting",
};

const char *
pool_node_reason(enum pool_node_kind kind)
{
	return (unsigned)kind < POOL_NODE_KINDS ? pool_node__reasons[kind] : "stratos: node is not usable";
}

const char *
pool_node_kind_name(enum pool_node_kind kind)
{
	return (unsigned)kind < POOL_NODE_KINDS ? pool_node__names[kind] : "unknown";
}

bool
pool_node_has_startup_taint(const struct node_info *n, const struct nodepool *pool)
{
	for (size_t i = 0; pool != NULL && i < pool->nstartup_taints; i++)
		if (node_info_has_taint(n, pool->startup_taints[i].key, pool->startup_taints[i].effect))
			return true;
	return false;
}

bool
pool_node_ready_since_start(const struct node_info *n)
{
	if (n->ready != KUBE_COND_TRUE)
		return false;
	/* Both times have whole seconds: a Ready of the start's own second counts. */
	return n->started_at_ms == 0 || n->ready_since_ms == 0 ||
	    n->ready_since_ms >= n->started_at_ms;
}

bool
pool_node_startup_taints_removable(const struct node_info *n, const struct nodepool *pool)
{
	if (!pool_node_ready_since_start(n))
		return false;
	switch (pool->startup_taint_removal) {
	case NODEPOOL_REMOVAL_WHEN_NETWORK_READY:
		return node_info_network_ready(n);
	case NODEPOOL_REMOVAL_WHEN_READY:
		return true;
	default:
		return false;
	}
}

/*
 * The NoSchedule taints of a node that is not really up yet (the node
 * lifecycle controller's not-ready/unreachable, the cloud's shutdown): the
 * webhook made pool pods tolerate them so that standby nodes pass the
 * scheduler's own filters, so here they must keep a node from being usable.
 * Their NoExecute twins are left out on purpose: the lifecycle controller
 * removes them only on its next 5 s pass after Ready, and every pod
 * tolerates them for 300 s (DefaultTolerationSeconds).
 */
static bool
pool_node__booting_taint(const struct node_info *n)
{
	for (size_t i = 0; i < POOLPOD_STANDARD_TAINTS; i++)
		if (node_info_has_taint(n, POOLPOD_TAINTS[i].key, POOLPOD_TAINTS[i].effect))
			return true;
	return false;
}

enum pool_node_kind
pool_node_classify(const struct node_info *n, const struct nodepool *pool, int64_t now_ms)
{
	const char *own = node_info_pool(n);
	enum nodestate state;
	bool up;

	if (n->deleted_ms != 0)
		return POOL_NODE_DELETING;
	up = n->ready == KUBE_COND_TRUE && !n->unschedulable && !pool_node__booting_taint(n);
	if (own == NULL) {
		/* Another node of the cluster: usable unless it shows what the pod was made to tolerate. */
		if (!up || pool_node_has_startup_taint(n, pool))
			return POOL_NODE_NOT_READY;
		return POOL_NODE_USABLE;
	}
	if (pool == NULL || strcmp(own, pool->name) != 0)
		return POOL_NODE_OTHER_POOL;
	up = up && pool_node_ready_since_start(n);
	if (node_info_has_taint(n, NODESTATE_TAINT_WARMUP_FAILED, KUBE_EFFECT_NO_SCHEDULE))
		return POOL_NODE_WARMUP_FAILED;
	state = nodestate_parse(n->state);
	switch (state) {
	case NODESTATE_STANDBY:
		return POOL_NODE_STANDBY;
	case NODESTATE_WARMUP:
		return POOL_NODE_WARMING;
	case NODESTATE_STOPPING:
		return POOL_NODE_STOPPING;
	case NODESTATE_NONE:
		return POOL_NODE_UNMANAGED;
	case NODESTATE_RUNNING:
		break;
	}
	if (up && node_info_network_ready(n) && !pool_node_has_startup_taint(n, pool) &&
	    !node_info_has_taint(n, NODESTATE_TAINT_STANDBY, KUBE_EFFECT_NO_EXECUTE))
		return POOL_NODE_USABLE;
	/* Claimed and started: worth waiting for until its warmup window has passed. */
	if (n->started_at_ms != 0 && now_ms - n->started_at_ms < pool->prewarm_timeout_ms)
		return POOL_NODE_STARTING;
	return POOL_NODE_NOT_READY;
}
