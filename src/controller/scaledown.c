/* Scale-down (DESIGN §5.4): empty-since, the TTL, cordon and drain through evictions, stop, standby; a drain that times out goes back to running. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller_internal.h"
#include "stratos/nodestate.h"
#include "stratos/pool_node.h"
#include "stratos/scaledown.h"
#include "stratos/timeutil.h"

bool
scaledown_pod_counts(const struct pod_info *pod)
{
	if (pod->flags & (POD_FLAG_DAEMONSET | POD_FLAG_MIRROR))
		return false;
	return pod->phase != POD_PHASE_SUCCEEDED && pod->phase != POD_PHASE_FAILED;
}

bool
scaledown_pod_evictable(const struct pod_info *pod)
{
	return scaledown_pod_counts(pod) && pod->deleted_ms == 0;
}

/* The busy pods of a node: how many, the newest one's owner, the evictable ones' keys. */
struct scaledown__scan {
	unsigned busy;
	unsigned terminating;
	int64_t newest_ms;
	char newest_owner[CACHE_KEY_MAX + 64];
	char (*evict)[CACHE_KEY_MAX];
	unsigned nevict, maxevict;
};

static int
scaledown__visit(void *ctx, const struct pod_info *pod)
{
	struct scaledown__scan *s = ctx;

	if (!scaledown_pod_counts(pod))
		return 0;
	s->busy++;
	if (pod->deleted_ms != 0) {
		s->terminating++;
	} else if (s->evict != NULL && s->nevict < s->maxevict) {
		snprintf(s->evict[s->nevict++], CACHE_KEY_MAX, "%s", pod->obj.key);
	}
	if (pod->owner_key != NULL && pod->created_ms >= s->newest_ms) {
		s->newest_ms = pod->created_ms;
		snprintf(s->newest_owner, sizeof(s->newest_owner), "%s", pod->owner_key);
	}
	return 0;
}

static int64_t
scaledown__poll(const struct ctl_node *cn)
{
	return cn->ctl->opts.ec2_poll_ms > 0 ? cn->ctl->opts.ec2_poll_ms : EC2VIEW_POLL_MS_DEFAULT;
}

/* Running: empty-since, last-workload, and the TTL that starts the drain. */
int
scaledown_node(struct ctl_node *cn)
{
	const struct nodepool *pool = cn->pool;
	struct scaledown__scan scan = { 0 };
	struct transition_args args = { 0 };
	bool usable;
	int rc;

	pod_cache_foreach_on_node(cn->ctl->ctx.pods, node_info_name(cn->n), scaledown__visit, &scan);
	/* Cache affinity (§6.3): the workload whose caches this node's disk now holds. */
	if (scan.newest_owner[0] != '\0' && (cn->n->last_workload == NULL ||
	    strcmp(cn->n->last_workload, scan.newest_owner) != 0)) {
		args.workload = scan.newest_owner;
		if ((rc = ctl_node_write(cn, TRANSITION_LAST_WORKLOAD, &args)) < 0)
			return rc;
	}
	usable = pool_node_classify(cn->n, pool, cn->now) == POOL_NODE_USABLE;
	/* Busy, still promised to pods, or never scaled down: not empty. */
	if (scan.busy > 0 || cn->n->reservations != NULL || !pool->scale_down_enabled ||
	    pool->deleting) {
		if (cn->n->empty_since_ms != 0) {
			args.since_ms = 0;
			return ctl_node_write(cn, TRANSITION_EMPTY_SINCE, &args);
		}
		return 0;
	}
	/*
	 * Empty but not usable (still booting, or a lifecycle taint that comes
	 * and goes): the clock neither starts nor resets; events bring it back.
	 */
	if (!usable)
		return 0;
	if (cn->n->empty_since_ms == 0) {
		args.since_ms = cn->now;
		rc = ctl_node_write(cn, TRANSITION_EMPTY_SINCE, &args);
		if (rc == 0)
			ctl_node_again(cn, pool->empty_node_ttl_ms > 0 ? pool->empty_node_ttl_ms : 1);
		return rc;
	}
	if (cn->now - cn->n->empty_since_ms < pool->empty_node_ttl_ms) {
		ctl_node_again(cn, pool->empty_node_ttl_ms - (cn->now - cn->n->empty_since_ms));
		return 0;
	}
	rc = ctl_node_write(cn, TRANSITION_STOPPING, NULL);
	if (rc == 0) {
		char ttl[32];
		duration_format_ms(pool->empty_node_ttl_ms, ttl, sizeof(ttl));
		ctl_event_node(cn->run, cn->n, "Normal", CTL_EV_SCALE_DOWN, "Drain",
		    "Empty for %s (emptyNodeTTL): cordoned and draining, then back to standby", ttl);
		ctl_enqueue_pool(cn->run, pool->name, 0);
		ctl_node_again(cn, 1);
	}
	return rc;
}

/* Evicts what is left; 429 (a PodDisruptionBudget) is retried on the next pass. */
static unsigned
scaledown__evict(struct ctl_node *cn, struct scaledown__scan *scan, char *blocked, size_t len)
{
	unsigned refused = 0;
	size_t off = 0;

	blocked[0] = '\0';
	for (unsigned i = 0; i < scan->nevict && ctl_acting(cn->run); i++) {
		struct kube_error err = { 0 };
		char *slash = strchr(scan->evict[i], '/');
		int rc;

		if (slash == NULL)
			continue;
		*slash = '\0';
		rc = kube_evict(cn->ctl->ctx.kube, scan->evict[i], slash + 1, &err);
		*slash = '/';
		if (rc == 0 || rc == -ENOENT) {
			ctl_log(LOG_LEVEL_INFO, cn->pool->name, node_info_name(cn->n), cn->instance_id,
			    json_pack("{s:s}", "pod", scan->evict[i]), "pod evicted");
			continue;
		}
		refused++;
		if (off < len)
			off += (size_t)snprintf(blocked + off, len - off, "%s%s", off ? ", " : "",
			    scan->evict[i]);
		ctl_log(rc == -EAGAIN ? LOG_LEVEL_INFO : LOG_LEVEL_WARN, cn->pool->name,
		    node_info_name(cn->n), cn->instance_id, json_pack("{s:s,s:i,s:s}", "pod",
		    scan->evict[i], "code", (int)err.code, "error", err.message),
		    rc == -EAGAIN ? "eviction refused by a PodDisruptionBudget; retrying" :
		    "eviction failed; retrying");
	}
	return refused;
}

/*
 * Stopping: drain until nothing evictable is left or drainTimeout; then
 * StopInstances, wait for stopped, standby. A deleted pool's node is
 * terminated instead of stopped.
 */
int
scaledown_stopping(struct ctl_node *cn)
{
	const struct nodepool *pool = cn->pool;
	struct scaledown__scan scan = { 0 };
	struct ec2_error err = { 0 };
	int64_t deadline = cn->n->state_since_ms + pool->drain_timeout_ms;
	char blocked[512];
	int rc;

	/*
	 * Cordoned a moment ago: a pod the scheduler bound just before the
	 * cordon reaches the cache a watch delay later. Wait that out before
	 * evicting (and before calling the node drained), as kubectl drain
	 * lists the pods after cordoning.
	 */
	if (cn->now - cn->n->state_since_ms < CONTROLLER_DRAIN_SETTLE_MS) {
		ctl_node_again(cn, CONTROLLER_DRAIN_SETTLE_MS - (cn->now - cn->n->state_since_ms));
		return 0;
	}
	scan.maxevict = LIMITS_DRAIN_PODS;
	scan.evict = calloc(scan.maxevict, sizeof(*scan.evict));
	if (scan.evict == NULL)
		return -ENOMEM;
	pod_cache_foreach_on_node(cn->ctl->ctx.pods, node_info_name(cn->n), scaledown__visit, &scan);
	if (scan.busy > 0 && cn->now < deadline) {
		unsigned refused = scaledown__evict(cn, &scan, blocked, sizeof(blocked));
		int64_t wait = refused > 0 ? CONTROLLER_EVICT_BACKOFF_MIN_MS * 2 : 500;
		if (wait > deadline - cn->now)
			wait = deadline - cn->now;
		ctl_node_again(cn, wait > 0 ? wait : 1);
		free(scan.evict);
		return 0;
	}
	if (scan.busy > 0) {
		char to[32];
		duration_format_ms(pool->drain_timeout_ms, to, sizeof(to));
		blocked[0] = '\0';
		for (unsigned i = 0, off = 0; i < scan.nevict && off < sizeof(blocked); i++)
			off += (unsigned)snprintf(blocked + off, sizeof(blocked) - off, "%s%s",
			    off ? ", " : "", scan.evict[i]);
		free(scan.evict);
		if (pool->deleting) {
			ctl_event_node(cn->run, cn->n, "Warning", CTL_EV_DRAIN_TIMEOUT, "Terminate",
			    "Drain did not finish within %s (%u pod(s) left: %s); the NodePool is being "
			    "deleted, so the instance is terminated", to, scan.busy, blocked);
			ctl_map_set(cn->ctl->retire, node_info_name(cn->n), pool->name, 0);
			return recovery_retire(cn);
		}
		rc = ctl_node_write(cn, TRANSITION_DRAIN_TIMEOUT, NULL);
		if (rc == 0) {
			ctl_event_node(cn->run, cn->n, "Warning", CTL_EV_DRAIN_TIMEOUT, "Uncordon",
			    "Drain did not finish within %s (drainTimeout): %u pod(s) could not be "
			    "evicted (%s); the node is running again and nothing was force-deleted",
			    to, scan.busy, blocked);
			ctl_enqueue_pool(cn->run, pool->name, 0);
		}
		return rc;
	}
	free(scan.evict);
	/* Drained. */
	if (pool->deleting) {
		ctl_map_set(cn->ctl->retire, node_info_name(cn->n), pool->name, 0);
		return recovery_retire(cn);
	}
	if (!cn->has_inst) {
		if (cn->instance_id[0] != '\0')
			ctl_want_instance(cn->run, cn->instance_id);
		ctl_node_again(cn, scaledown__poll(cn));
		return 0;
	}
	switch (cn->inst.state_code) {
	case EC2_STATE_RUNNING:
	case EC2_STATE_PENDING:
		rc = ctl_ec2_stop(cn->run, cn->instance_id, &err);
		if (rc == 0)
			metrics_histogram_observe(cn->ctl->m_drain_seconds,
			    (double)(cn->now - cn->n->state_since_ms) / 1000.0, pool->name);
		ctl_node_again(cn, scaledown__poll(cn));
		return rc == -EBUSY ? 0 : rc;
	case EC2_STATE_STOPPING:
		ctl_node_again(cn, scaledown__poll(cn));
		return 0;
	case EC2_STATE_STOPPED:
		rc = ctl_to_standby(cn);
		if (rc == 0) {
			metrics_counter_add(cn->ctl->m_scaledown, 1, pool->name);
			ctl_event_node(cn->run, cn->n, "Normal", CTL_EV_SCALE_DOWN, "Standby",
			    "Drained and stopped (instance %s); the node is standby", cn->instance_id);
			ctl_enqueue_pool(cn->run, pool->name, 0);
		}
		return rc;
	default:
		return 0;               /* gone: recovery deletes the Node */
	}
}
