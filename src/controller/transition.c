/* Node transitions of the pool controller as single JSON Patches built on the cached node. */
#include <errno.h>
#include <string.h>

#include "stratos/nodestate.h"
#include "stratos/timeutil.h"
#include "stratos/transition.h"

static const char *const transition__names[] = {
	[TRANSITION_ADOPT] = "adopt",
	[TRANSITION_WARMUP_DONE] = "warmup-done",
	[TRANSITION_STANDBY] = "standby",
	[TRANSITION_WARMUP_FAILED] = "warmup-failed",
	[TRANSITION_REWARM] = "rewarm",
	[TRANSITION_RUN_AFTER_WARMUP] = "run-after-warmup",
	[TRANSITION_STOPPING] = "stopping",
	[TRANSITION_DRAIN_TIMEOUT] = "drain-timeout",
	[TRANSITION_CONVERGE_RUNNING] = "converge-running",
	[TRANSITION_EMPTY_SINCE] = "empty-since",
	[TRANSITION_REMOVE_STARTUP_TAINTS] = "remove-startup-taints",
	[TRANSITION_LAST_WORKLOAD] = "last-workload",
};

const char *
transition_name(enum transition t)
{
	return (unsigned)t < sizeof(transition__names) / sizeof(transition__names[0]) ?
	    transition__names[t] : "unknown";
}

static void
transition__time(struct node_patch *p, const char *key, int64_t ms)
{
	char when[TIME_RFC3339_LEN];

	time_format_rfc3339(ms, when);
	node_patch_set_annotation(p, key, when);
}

/* A new state label with its state-since; empty-since goes on every transition (§4). */
static void
transition__state(struct node_patch *p, enum nodestate to, int64_t now_ms)
{
	node_patch_set_label(p, NODESTATE_LABEL_STATE, nodestate_name(to));
	transition__time(p, NODESTATE_ANN_STATE_SINCE, now_ms);
	node_patch_remove_annotation(p, NODESTATE_ANN_EMPTY_SINCE);
}

static void
transition__startup_taints(struct node_patch *p, const struct nodepool *pool, bool add)
{
	for (size_t i = 0; i < pool->nstartup_taints; i++) {
		const struct nodepool_taint *t = &pool->startup_taints[i];
		if (add) {
			node_patch_add_taint(p, t->key, t->value, t->effect);
		} else {
			/* Only this key and effect: another taint of the same key is not ours. */
			node_patch_remove_taint_effect(p, t->key, t->effect);
		}
	}
}

json_t *
transition_build(const struct node_info *n, const struct nodepool *pool,
    enum transition t, int64_t now_ms, const struct transition_args *args, int *rc)
{
	struct node_patch p;

	*rc = -EINVAL;
	if (pool == NULL && t != TRANSITION_EMPTY_SINCE && t != TRANSITION_LAST_WORKLOAD &&
	    t != TRANSITION_WARMUP_DONE && t != TRANSITION_STOPPING &&
	    t != TRANSITION_DRAIN_TIMEOUT)
		return NULL;
	node_patch_init(&p, n);
	switch (t) {
	case TRANSITION_ADOPT:
		if (args == NULL || args->instance_id == NULL) {
			node_patch_free(&p);
			return NULL;
		}
		for (size_t i = 0; i < pool->nlabels; i++)
			node_patch_set_label(&p, pool->labels[i].key, pool->labels[i].value);
		node_patch_set_label(&p, NODESTATE_LABEL_POOL, pool->name);
		node_patch_set_label(&p, NODESTATE_LABEL_INSTANCE_ID, args->instance_id);
		transition__state(&p, NODESTATE_WARMUP, args->since_ms > 0 ? args->since_ms : now_ms);
		transition__startup_taints(&p, pool, true);
		break;
	case TRANSITION_WARMUP_DONE:
		transition__time(&p, NODESTATE_ANN_WARMUP_DONE, now_ms);
		break;
	case TRANSITION_STANDBY:
		transition__state(&p, NODESTATE_STANDBY, now_ms);
		node_patch_add_taint(&p, NODESTATE_TAINT_STANDBY, NODESTATE_TAINT_STANDBY_VALUE,
		    KUBE_EFFECT_NO_EXECUTE);
		node_patch_remove_taint(&p, NODESTATE_TAINT_WARMUP_FAILED);
		transition__startup_taints(&p, pool, true);
		node_patch_set_unschedulable(&p, false);
		node_patch_remove_annotation(&p, NODESTATE_ANN_WARMUP_DONE);
		node_patch_remove_annotation(&p, NODESTATE_ANN_STARTED_FOR);
		node_patch_remove_annotation(&p, NODESTATE_ANN_RESERVATIONS);
		break;
	case TRANSITION_WARMUP_FAILED:
		transition__state(&p, NODESTATE_WARMUP, now_ms);
		node_patch_add_taint(&p, NODESTATE_TAINT_WARMUP_FAILED, "true", KUBE_EFFECT_NO_SCHEDULE);
		node_patch_remove_annotation(&p, NODESTATE_ANN_WARMUP_DONE);
		break;
	case TRANSITION_REWARM:
		transition__state(&p, NODESTATE_WARMUP, now_ms);
		node_patch_remove_taint(&p, NODESTATE_TAINT_WARMUP_FAILED);
		node_patch_remove_taint(&p, NODESTATE_TAINT_STANDBY);
		node_patch_remove_annotation(&p, NODESTATE_ANN_WARMUP_DONE);
		transition__startup_taints(&p, pool, true);
		break;
	case TRANSITION_RUN_AFTER_WARMUP:
		/*
		 * Made running for waiting pods: started-at (the machine's last
		 * start: its launch, args->since_ms) makes it a starting node
		 * (§6.3), so the extender promises its room to those pods, and
		 * its Ready, which came after the launch, counts.
		 */
		transition__state(&p, NODESTATE_RUNNING, now_ms);
		if (args != NULL && args->since_ms > 0)
			transition__time(&p, NODESTATE_ANN_STARTED_AT, args->since_ms);
		node_patch_remove_annotation(&p, NODESTATE_ANN_WARMUP_DONE);
		break;
	case TRANSITION_STOPPING:
		transition__state(&p, NODESTATE_STOPPING, now_ms);
		node_patch_set_unschedulable(&p, true);
		break;
	case TRANSITION_DRAIN_TIMEOUT:
		transition__state(&p, NODESTATE_RUNNING, now_ms);
		node_patch_set_unschedulable(&p, false);
		break;
	case TRANSITION_CONVERGE_RUNNING:
		transition__state(&p, NODESTATE_RUNNING, now_ms);
		node_patch_remove_taint(&p, NODESTATE_TAINT_STANDBY);
		break;
	case TRANSITION_EMPTY_SINCE:
		if (args != NULL && args->since_ms > 0)
			transition__time(&p, NODESTATE_ANN_EMPTY_SINCE, args->since_ms);
		else
			node_patch_remove_annotation(&p, NODESTATE_ANN_EMPTY_SINCE);
		break;
	case TRANSITION_REMOVE_STARTUP_TAINTS:
		transition__startup_taints(&p, pool, false);
		break;
	case TRANSITION_LAST_WORKLOAD:
		if (args == NULL || args->workload == NULL) {
			node_patch_free(&p);
			return NULL;
		}
		node_patch_set_annotation(&p, NODESTATE_ANN_LAST_WORKLOAD, args->workload);
		break;
	default:
		node_patch_free(&p);
		return NULL;
	}
	return node_patch_take(&p, rc);
}
