/* Recovery (DESIGN §5.6): failed starts back to standby, labels converged to instance states changed by hand, orphans, retiring nodes. */
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "controller_internal.h"
#include "stratos/nodestate.h"
#include "stratos/reservations.h"
#include "stratos/timeutil.h"

static int64_t
recovery__poll(const struct ctl_node *cn)
{
	return cn->ctl->opts.ec2_poll_ms > 0 ? cn->ctl->opts.ec2_poll_ms : EC2VIEW_POLL_MS_DEFAULT;
}

/* The instance is gone for good (see reconcile_node, which decides inst_gone). */
static bool
recovery__instance_gone(const struct ctl_node *cn)
{
	return cn->inst_gone;
}

/* A Node whose instance no longer exists: deleted (the cloud controller would, eventually). */
int
recovery_orphan(struct ctl_node *cn)
{
	char rv[24];
	int rc;

	ctl_rv(cn->n, rv);
	rc = ctl_delete_node(cn->run, node_info_name(cn->n), rv);
	if (rc == 0) {
		metrics_counter_add(cn->ctl->m_gc, 1, node_info_pool(cn->n), "node-without-instance");
		ctl_log(LOG_LEVEL_INFO, node_info_pool(cn->n), node_info_name(cn->n), cn->instance_id,
		    json_pack("{s:s}", "instance_state", ec2view_state_name(cn->inst.state_code)),
		    "Node of an instance that no longer exists deleted");
	}
	ctl_map_del(cn->ctl->retire, node_info_name(cn->n));
	return rc;
}

/*
 * A node the pool no longer wants (shrink, deletion, warmup timeout with
 * terminate): a standby one is deleted first, guarded by its version, so
 * that an extender claiming it at the same moment wins and the node stays;
 * any other is terminated first (its kubelet would re-register a deleted
 * Node) and deleted once the instance is going.
 */
int
recovery_retire(struct ctl_node *cn)
{
	struct ec2_error err = { 0 };
	const char *id = cn->instance_id;
	enum nodestate st = nodestate_parse(cn->n->state);
	char rv[24];
	int rc;

	if (recovery__instance_gone(cn) || id[0] == '\0')
		return recovery_orphan(cn);
	if (!cn->has_inst) {
		ctl_want_instance(cn->run, id);
		ctl_node_again(cn, recovery__poll(cn));
		return 0;
	}
	ctl_map_set(cn->ctl->retiring, id, cn->pool->name, cn->now);
	if (st == NODESTATE_STANDBY && cn->inst.state_code == EC2_STATE_STOPPED) {
		ctl_rv(cn->n, rv);
		rc = ctl_delete_node(cn->run, node_info_name(cn->n), rv);
		if (rc == -EBUSY) {
			/*
			 * Claimed or changed meanwhile: the pool decides again,
			 * and counts this node again (a retiring mark left on its
			 * instance would hide it, and the pool stay over its size).
			 */
			ctl_map_del(cn->ctl->retire, node_info_name(cn->n));
			ctl_map_del(cn->ctl->retiring, id);
			ctl_enqueue_pool(cn->run, cn->pool->name, 0);
			return 0;
		}
		if (rc < 0)
			return rc;
		ctl_map_del(cn->ctl->retire, node_info_name(cn->n));
		rc = ctl_ec2_terminate(cn->run, &id, 1, &err);
		ctl_event_pool(cn->run, cn->pool, "Normal", CTL_EV_SHRINK, "Terminate",
		    "Standby node %s (instance %s) deleted and terminated%s", node_info_name(cn->n), id,
		    rc == 0 ? "" : "; termination failed, garbage collection retries");
		return rc;
	}
	rc = ctl_ec2_terminate(cn->run, &id, 1, &err);
	if (rc == 0)
		ctl_log(LOG_LEVEL_INFO, cn->pool->name, node_info_name(cn->n), id, NULL,
		    "instance terminated; its Node goes once it is shutting down");
	ctl_node_again(cn, recovery__poll(cn));
	return rc;
}

/* Drops a node's reservations (its pods are served again on their next cycle). */
static int
recovery__release(struct ctl_node *cn)
{
	struct kube_error err = { 0 };
	struct node_patch p;
	json_t *patch;
	char rv[24];
	int rc;

	if (!ctl_acting(cn->run))
		return -ECANCELED;
	node_patch_init(&p, cn->n);
	node_patch_remove_annotation(&p, NODESTATE_ANN_RESERVATIONS);
	patch = node_patch_take(&p, &rc);
	if (patch == NULL)
		return rc;
	ctl_rv(cn->n, rv);
	rc = node_cache_patch(cn->ctl->ctx.nodes, cn->ctl->ctx.kube, node_info_name(cn->n), rv,
	    patch, NULL, &err);
	json_decref(patch);
	return rc;
}

/*
 * Running: a start that failed (§5.6), an instance stopped or gone behind
 * Stratos' back. Returns 1 when the node is not running in EC2 (the
 * running-node work stops there), 0 when it is.
 */
int
recovery_running(struct ctl_node *cn)
{
	struct node_info *n = cn->n;
	int64_t poll = recovery__poll(cn);
	int64_t since_start = n->started_at_ms != 0 ? cn->now - n->started_at_ms : INT64_MAX;
	bool claimed = since_start < 10 * CONTROLLER_START_TIMEOUT_MS, failed_start;
	int state, rc;

	if (!cn->has_inst) {
		if (cn->instance_id[0] != '\0')
			ctl_want_instance(cn->run, cn->instance_id);
		ctl_node_again(cn, poll);
		return 1;
	}
	if (recovery__instance_gone(cn)) {
		recovery_orphan(cn);
		return 1;
	}
	state = cn->inst.state_code;
	if (state == EC2_STATE_RUNNING)
		return 0;
	/* The view may predate the claim: ask EC2 before judging. */
	if (cn->inst.observed_ms < (n->started_at_ms > n->state_since_ms ? n->started_at_ms :
	    n->state_since_ms)) {
		ctl_want_instance(cn->run, cn->instance_id);
		ctl_node_again(cn, poll);
		return 1;
	}
	if (state == EC2_STATE_PENDING || state == EC2_STATE_STOPPING) {
		ctl_node_again(cn, poll);
		if (claimed && since_start >= CONTROLLER_START_TIMEOUT_MS && n->reservations != NULL &&
		    recovery__release(cn) == 0)
			ctl_event_node(cn->run, n, "Warning", CTL_EV_START_FAILED, "Release",
			    "Instance %s is still %s %llds after it was started; its reservations "
			    "are released so the pods are served elsewhere", cn->instance_id,
			    ec2view_state_name(state), (long long)(since_start / 1000));
		return 1;
	}
	if (state != EC2_STATE_STOPPED)
		return 1;
	/*
	 * Stopped. Right after a claim, a listing may still predate the
	 * StartInstances that followed the claim's PATCH: give the start its
	 * settle time before calling it failed.
	 */
	if (claimed && since_start < CONTROLLER_START_TIMEOUT_MS &&
	    cn->inst.observed_ms < n->started_at_ms + CONTROLLER_START_SETTLE_MS) {
		ctl_want_instance(cn->run, cn->instance_id);
		ctl_node_again(cn, poll);
		return 1;
	}
	/*
	 * Stopped within the start's window: the start failed (capacity lost,
	 * or it never ran). Later: someone stopped a running node by hand.
	 * (cn->n is replaced by the standby write: decide before it.)
	 */
	failed_start = since_start < CONTROLLER_START_TIMEOUT_MS + CONTROLLER_START_SETTLE_MS;
	rc = ctl_to_standby(cn);
	if (rc == 0 && failed_start)
		ctl_event_node(cn->run, cn->n, "Warning", CTL_EV_START_FAILED, "Standby",
		    "Instance %s did not start after its claim %llds ago (it is stopped); its "
		    "reservations are released and the node is standby again", cn->instance_id,
		    (long long)(since_start / 1000));
	else if (rc == 0)
		ctl_event_node(cn->run, cn->n, "Warning", CTL_EV_STATE_CONVERGED, "Standby",
		    "Instance %s was stopped outside Stratos; the node is standby", cn->instance_id);
	if (rc == 0)
		ctl_enqueue_pool(cn->run, cn->pool->name, 0);
	return 1;
}

/* Standby: an instance started by hand makes a running node; one gone takes its Node along. */
int
recovery_standby(struct ctl_node *cn)
{
	int rc;

	if (!cn->has_inst) {
		if (cn->instance_id[0] != '\0' && ec2view_synced(cn->ctl->view))
			ctl_want_instance(cn->run, cn->instance_id);
		return 0;
	}
	if (recovery__instance_gone(cn))
		return recovery_orphan(cn);
	if ((cn->inst.state_code == EC2_STATE_RUNNING || cn->inst.state_code == EC2_STATE_PENDING) &&
	    cn->inst.observed_ms > cn->n->state_since_ms) {
		rc = ctl_node_write(cn, TRANSITION_CONVERGE_RUNNING, NULL);
		if (rc == 0) {
			ctl_event_node(cn->run, cn->n, "Warning", CTL_EV_STATE_CONVERGED, "Running",
			    "Instance %s was started outside Stratos; the node is running",
			    cn->instance_id);
			ctl_enqueue_pool(cn->run, cn->pool->name, 0);
		}
		return rc;
	}
	return 0;
}

/* ---- reservations (§6.3, §5.6) ---- */

struct recovery__keep {
	struct ctl_node *cn;
	char dropped[512];
	size_t off;
};

/* A promise stands while its pod exists (same uid), unbound, Pending and not being deleted. */
static bool
recovery__keep(void *ctx, const struct reservation *res)
{
	struct recovery__keep *k = ctx;
	const char *slash = strchr(res->pod, '/');
	struct pod_info *pod = NULL;
	bool keep = false;
	char ns[64];

	if (slash != NULL && (size_t)(slash - res->pod) < sizeof(ns)) {
		memcpy(ns, res->pod, (size_t)(slash - res->pod));
		ns[slash - res->pod] = '\0';
		pod = pod_cache_get(k->cn->ctl->ctx.pods, ns, slash + 1);
	}
	keep = pod != NULL && strcmp(pod->uid, res->uid) == 0 && pod_info_node(pod) == NULL &&
	    pod->deleted_ms == 0 && pod->phase == POD_PHASE_PENDING;
	/*
	 * A pod this replica has not seen yet may be one another replica's
	 * extender read with a GET a moment ago: gone only once the watch has
	 * had time to bring it.
	 */
	if (pod == NULL && k->cn->now - res->since_ms < CONTROLLER_RESERVATION_GRACE_MS)
		keep = true;
	if (!keep && k->off < sizeof(k->dropped))
		k->off += (size_t)snprintf(k->dropped + k->off, sizeof(k->dropped) - k->off, "%s%s (%s)",
		    k->off ? ", " : "", res->pod, pod == NULL || strcmp(pod->uid, res->uid) != 0 ? "gone" :
		    pod_info_node(pod) != NULL ? "bound" : "not pending");
	if (pod != NULL)
		cache_obj_unref(&pod->obj);
	return keep;
}

int
recovery_reservations(struct ctl_node *cn)
{
	struct recovery__keep k = { .cn = cn };
	struct kube_error err = { 0 };
	struct node_patch p;
	char *text = NULL, rv[24];
	json_t *patch;
	int rc, removed;

	if (cn->n->reservations == NULL)
		return 0;
	if (cn->n->reservations_invalid) {
		/* Unreadable: no promise can be kept from it; the pods ask again. */
		removed = 1;
		snprintf(k.dropped, sizeof(k.dropped), "unreadable annotation");
	} else {
		/* Parsed once, when the node was cached. */
		removed = cn->n->reserved != NULL ?
		    reservations_filter(cn->n->reserved, recovery__keep, &k, &text) : 0;
		if (removed <= 0) {
			free(text);     /* the list as it stands: nothing to write */
			return removed;
		}
	}
	if (!ctl_acting(cn->run)) {
		free(text);
		return -ECANCELED;
	}
	node_patch_init(&p, cn->n);
	if (text != NULL)
		node_patch_set_annotation(&p, NODESTATE_ANN_RESERVATIONS, text);
	else
		node_patch_remove_annotation(&p, NODESTATE_ANN_RESERVATIONS);
	free(text);
	patch = node_patch_take(&p, &rc);
	if (patch == NULL)
		return rc;
	ctl_rv(cn->n, rv);
	{
		struct node_info *written = NULL;
		rc = node_cache_patch(cn->ctl->ctx.nodes, cn->ctl->ctx.kube, node_info_name(cn->n), rv,
		    patch, &written, &err);
		if (rc == 0 && written != NULL) {
			cache_obj_unref(&cn->n->obj);
			cn->n = written;
		} else if (written != NULL) {
			cache_obj_unref(&written->obj);
		}
	}
	json_decref(patch);
	if (rc == 0)
		ctl_log(LOG_LEVEL_INFO, cn->pool->name, node_info_name(cn->n), cn->instance_id,
		    json_pack("{s:i,s:s}", "dropped", removed, "pods", k.dropped),
		    "reservations of pods bound elsewhere or gone dropped");
	else if (rc == -EBUSY)
		ctl_node_again(cn, 1);
	return rc;
}
