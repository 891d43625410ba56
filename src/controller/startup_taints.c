/* Startup taints (DESIGN §5.3): removed from the Node event that shows readiness, or after two minutes anyway with a Warning. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "controller_internal.h"
#include "stratos/nodestate.h"
#include "stratos/pool_node.h"
#include "stratos/timeutil.h"

/* Attempts of the urgent path when another writer (the lifecycle controller's taints) races it. */
#define STARTUP_TAINTS_ATTEMPTS 5
/* How long the urgent path waits for the cache to show the other writer's version. */
#define STARTUP_TAINTS_CACHE_WAIT_MS 200

static void
startup_taints__done(struct ctl_node *cn, bool fallback)
{
	char names[256];
	size_t off = 0;
	int64_t seen = 0;

	names[0] = '\0';
	for (size_t i = 0; i < cn->pool->nstartup_taints && off < sizeof(names); i++)
		off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s:%s", i ? ", " : "",
		    cn->pool->startup_taints[i].key,
		    kube_effect_name(cn->pool->startup_taints[i].effect));
	{
		double s;

		if (ctl_map_get(cn->ctl->seen, node_info_name(cn->n), NULL, 0, &seen) == 0) {
			s = (double)(time_mono_us() - seen) / 1e6;
			ctl_map_del(cn->ctl->seen, node_info_name(cn->n));
		} else {
			/*
			 * Removable before any watch event said so (the node went
			 * running in this very task, readiness already there): from the
			 * later of Ready and the transition, as the Node records them.
			 */
			int64_t from = cn->n->ready_since_ms > cn->n->state_since_ms ?
			    cn->n->ready_since_ms : cn->n->state_since_ms;
			s = from > 0 && cn->now > from ? (double)(cn->now - from) / 1e3 : 0.0;
		}
		metrics_histogram_observe(cn->ctl->m_taint_seconds, s, cn->pool->name);
		ctl_log(LOG_LEVEL_INFO, cn->pool->name, node_info_name(cn->n), cn->instance_id,
		    json_pack("{s:f,s:b}", "latency_s", s, "fallback", fallback),
		    "startup taints removed");
	}
	if (fallback)
		ctl_event_node(cn->run, cn->n, "Warning", CTL_EV_TAINT_TIMEOUT, "RemoveTaints",
		    "Node Ready for %llds without network readiness; startup taints %s removed anyway",
		    (long long)(CONTROLLER_TAINT_FALLBACK_MS / 1000), names);
	else
		ctl_event_node(cn->run, cn->n, "Normal", CTL_EV_TAINTS_REMOVED, "RemoveTaints",
		    "Node ready (%s): startup taints %s removed",
		    cn->pool->startup_taint_removal == NODEPOOL_REMOVAL_WHEN_READY ? "Ready" :
		    "Ready and network ready", names);
}

/* One removal; after a lost race the node is read again (the cache may need a moment). */
static int
startup_taints__remove(struct ctl_node *cn, bool fallback)
{
	for (int attempt = 0; attempt < STARTUP_TAINTS_ATTEMPTS; attempt++) {
		uint64_t gen = cache_generation(node_cache_base(cn->ctl->ctx.nodes));
		uint64_t rv = cn->n->obj.rv;
		struct node_info *fresh;
		int rc = ctl_transition(cn->run, cn->n, cn->pool, TRANSITION_REMOVE_STARTUP_TAINTS,
		    NULL, NULL);

		if (rc == 0) {
			startup_taints__done(cn, fallback);
			return 0;
		}
		if (rc != -EBUSY)
			return rc;
		/* Wait for the watch to bring the version that beat us, then judge it afresh. */
		for (int64_t until = time_mono_ms() + STARTUP_TAINTS_CACHE_WAIT_MS;
		    time_mono_ms() < until;) {
			fresh = node_cache_get(cn->ctl->ctx.nodes, node_info_name(cn->n));
			if (fresh == NULL)
				return 0;
			if (fresh->obj.rv != rv) {
				cache_obj_unref(&cn->n->obj);
				cn->n = fresh;
				break;
			}
			cache_obj_unref(&fresh->obj);
			gen = cache_wait(node_cache_base(cn->ctl->ctx.nodes), gen,
			    (long)(until - time_mono_ms()));
		}
		if (!pool_node_has_startup_taint(cn->n, cn->pool) ||
		    nodestate_parse(cn->n->state) != NODESTATE_RUNNING)
			return 0;
	}
	ctl_node_again(cn, CONTROLLER_RETRY_MS);
	return -EBUSY;
}

int
startup_taints_node(struct ctl_node *cn, bool urgent)
{
	const struct nodepool *pool = cn->pool;
	int64_t ready_for;

	(void)urgent;
	if (pool == NULL || nodestate_parse(cn->n->state) != NODESTATE_RUNNING ||
	    !pool_node_has_startup_taint(cn->n, pool)) {
		ctl_map_del(cn->ctl->seen, node_info_name(cn->n));
		return 0;
	}
	if (pool->startup_taint_removal == NODEPOOL_REMOVAL_NEVER)
		return 0;
	if (pool_node_startup_taints_removable(cn->n, pool))
		return startup_taints__remove(cn, false);
	/* Ready without the network: after two minutes the taints go anyway (§5.3). */
	if (cn->n->ready != KUBE_COND_TRUE || cn->n->ready_since_ms == 0)
		return 0;
	ready_for = cn->now - cn->n->ready_since_ms;
	if (ready_for >= CONTROLLER_TAINT_FALLBACK_MS)
		return startup_taints__remove(cn, true);
	ctl_node_again(cn, CONTROLLER_TAINT_FALLBACK_MS - ready_for);
	return 0;
}
