/* Warmup (DESIGN §5.1): adoption of a registered instance, completion, the pre-pull pod, stop to standby, self-poweroff, timeout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller_internal.h"
#include "stratos/nodestate.h"
#include "stratos/pools.h"
#include "stratos/timeutil.h"
#include "stratos/warmup.h"

/* ---- pure parts ---- */

struct warmup__scan {
	struct warmup_progress *p;
};

static int
warmup__pod(void *ctx, const struct pod_info *pod)
{
	struct warmup_progress *p = ctx;

	if ((pod->flags & POD_FLAG_DAEMONSET) == 0 || pod->deleted_ms != 0 ||
	    pod->phase == POD_PHASE_SUCCEEDED || pod->phase == POD_PHASE_FAILED)
		return 0;
	p->daemon_pods++;
	if (pod->ready == KUBE_COND_TRUE)
		p->daemon_ready++;
	return 0;
}

void
warmup_progress_read(const struct node_info *n, const struct nodepool *pool,
    struct pod_cache *pods, const char *prepull_key, int64_t now_ms, struct warmup_progress *out)
{
	memset(out, 0, sizeof(*out));
	out->ready = n->ready == KUBE_COND_TRUE &&
	    (n->ready_since_ms == 0 || now_ms - n->ready_since_ms >= WARMUP_READY_SETTLE_MS);
	pod_cache_foreach_on_node(pods, node_info_name(n), warmup__pod, out);
	out->images_wanted = (unsigned)pool->nimages_to_pull;
	if (out->images_wanted > 0 && prepull_key != NULL) {
		const char *slash = strchr(prepull_key, '/');
		char ns[64];
		struct pod_info *pp;

		if (slash != NULL && (size_t)(slash - prepull_key) < sizeof(ns)) {
			memcpy(ns, prepull_key, (size_t)(slash - prepull_key));
			ns[slash - prepull_key] = '\0';
			pp = pod_cache_get(pods, ns, slash + 1);
			if (pp != NULL && pp->deleted_ms == 0 && pod_info_node(pp) != NULL &&
			    strcmp(pod_info_node(pp), node_info_name(n)) == 0) {
				out->prepull_exists = true;
				out->prepull_finished = pp->phase == POD_PHASE_SUCCEEDED ||
				    pp->phase == POD_PHASE_FAILED;
				out->images_pulled = pp->images_pulled;
			}
			if (pp != NULL)
				cache_obj_unref(&pp->obj);
		}
	}
}

bool
warmup_complete(const struct warmup_progress *p)
{
	return p->ready && p->daemon_ready == p->daemon_pods &&
	    (p->images_wanted == 0 || (p->prepull_exists && p->images_pulled >= p->images_wanted));
}

int
warmup_prepull_name(const char *node, char *out, size_t len)
{
	int n = snprintf(out, len, NODESTATE_PREPULL_PREFIX "%s", node);

	return n < 0 || (size_t)n >= len || (size_t)n > LIMITS_PREPULL_POD_NAME ? -ENAMETOOLONG : 0;
}

json_t *
warmup_prepull_pod(const char *namespace, const char *node, const struct nodepool *pool)
{
	char name[LIMITS_PREPULL_POD_NAME + 1];
	json_t *pod, *containers;

	if (warmup_prepull_name(node, name, sizeof(name)) < 0)
		return NULL;
	containers = json_array();
	for (size_t i = 0; containers != NULL && i < pool->nimages_to_pull; i++) {
		char cname[16];
		snprintf(cname, sizeof(cname), "pull-%zu", i);
		/* The command never matters: the kubelet pulls the image before it runs anything. */
		if (json_array_append_new(containers, json_pack("{s:s,s:s,s:s,s:[s],s:{}}",
		    "name", cname, "image", pool->images_to_pull[i], "imagePullPolicy", "IfNotPresent",
		    "command", "true", "resources")) < 0) {
			json_decref(containers);
			return NULL;
		}
	}
	if (containers == NULL)
		return NULL;
	pod = json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s,s:s}},s:{s:s,s:s,s:i,s:b,s:b,s:[{s:s}],s:o}}",
	    "apiVersion", "v1", "kind", "Pod",
	    "metadata", "name", name, "namespace", namespace,
	    "labels", "app.kubernetes.io/managed-by", "stratos", NODESTATE_LABEL_POOL, pool->name,
	    "spec", "nodeName", node, "restartPolicy", "Never", "terminationGracePeriodSeconds", 0,
	    "automountServiceAccountToken", 0, "enableServiceLinks", 0,
	    "tolerations", "operator", "Exists", "containers", containers);
	return pod;
}

/* ---- the node's task ---- */

static void
warmup__prepull_key(const struct ctl_node *cn, char *key, size_t len)
{
	char name[LIMITS_PREPULL_POD_NAME + 1];

	key[0] = '\0';
	if (warmup_prepull_name(node_info_name(cn->n), name, sizeof(name)) == 0)
		snprintf(key, len, "%s/%s", cn->ctl->ctx.namespace, name);
}

/* Deletes the node's pre-pull pod when it exists (after warmup, on any other state). */
int
warmup_prepull_delete(struct ctl_node *cn)
{
	char name[LIMITS_PREPULL_POD_NAME + 1], path[KUBE_PATH_MAX];
	struct kube_error err = { 0 };
	struct pod_info *pp;
	json_t *opts;
	int rc;

	if (cn->ctl->ctx.namespace == NULL ||
	    warmup_prepull_name(node_info_name(cn->n), name, sizeof(name)) < 0)
		return 0;
	pp = pod_cache_get(cn->ctl->ctx.pods, cn->ctl->ctx.namespace, name);
	if (pp == NULL)
		return 0;
	rc = pp->deleted_ms != 0 ? 1 : 0;
	cache_obj_unref(&pp->obj);
	if (rc == 1 || !ctl_acting(cn->run))
		return 0;
	if ((rc = kube_path(path, &KUBE_PODS, cn->ctl->ctx.namespace, name, NULL)) < 0)
		return rc;
	opts = json_pack("{s:s,s:s,s:i}", "apiVersion", "v1", "kind", "DeleteOptions",
	    "gracePeriodSeconds", 0);
	rc = kube_delete(cn->ctl->ctx.kube, path, opts, &err);
	json_decref(opts);
	if (rc == -ENOENT)
		rc = 0;
	ctl_log(rc == 0 ? LOG_LEVEL_INFO : LOG_LEVEL_WARN, cn->pool != NULL ? cn->pool->name : NULL,
	    node_info_name(cn->n), cn->instance_id, rc == 0 ? NULL : json_pack("{s:s}", "error",
	    err.message), rc == 0 ? "pre-pull pod deleted" : "pre-pull pod delete failed");
	return rc;
}

static int
warmup__prepull_create(struct ctl_node *cn)
{
	struct kube_error err = { 0 };
	char path[KUBE_PATH_MAX];
	json_t *pod;
	int rc;

	if (cn->ctl->ctx.namespace == NULL)
		return -EINVAL;
	if (!ctl_acting(cn->run))
		return -ECANCELED;
	pod = warmup_prepull_pod(cn->ctl->ctx.namespace, node_info_name(cn->n), cn->pool);
	if (pod == NULL)
		return -ENOMEM;
	rc = kube_path(path, &KUBE_PODS, cn->ctl->ctx.namespace, NULL, NULL);
	if (rc == 0)
		rc = kube_create(cn->ctl->ctx.kube, path, pod, NULL, &err);
	json_decref(pod);
	if (rc == -EBUSY) {
		/* AlreadyExists: made by an earlier pass (or term) and not in the cache yet. */
		ctl_node_again(cn, 200);
		return 0;
	}
	ctl_log(rc == 0 ? LOG_LEVEL_INFO : LOG_LEVEL_WARN, cn->pool->name, node_info_name(cn->n),
	    cn->instance_id, json_pack("{s:i,s:s}", "images", (int)cn->pool->nimages_to_pull,
	    "error", rc == 0 ? "" : err.message),
	    rc == 0 ? "pre-pull pod created" : "pre-pull pod create failed");
	return rc;
}

int
warmup_adopt(struct ctl_node *cn)
{
	const struct nodepool *pool;
	struct transition_args args = { 0 };
	char id[32];
	int rc;

	if (ctl_provider_instance(cn->n->provider_id, id, sizeof(id)) < 0)
		return 0;
	if (!cn->has_inst) {
		/* Not in the view: launched a moment ago, or not ours at all. One look. */
		if (!ec2view_synced(cn->ctl->view))
			ctl_node_again(cn, CONTROLLER_RETRY_MS);
		else
			ctl_want_instance(cn->run, id);
		return 0;
	}
	if (cn->inst.pool[0] == '\0')
		return 0;
	pool = pools_find_nodepool(cn->snap, cn->inst.pool);
	if (pool == NULL || pool->deleting)
		return 0;               /* its pool is gone: garbage collection terminates it */
	if (node_info_pool(cn->n) != NULL && strcmp(node_info_pool(cn->n), pool->name) != 0)
		return 0;               /* labelled for another pool by someone else: not ours to take */
	if (cn->inst.state_code != EC2_STATE_PENDING && cn->inst.state_code != EC2_STATE_RUNNING)
		return 0;
	cn->pool = pool;
	args.instance_id = id;
	args.since_ms = cn->inst.launch_ms;
	rc = ctl_node_write(cn, TRANSITION_ADOPT, &args);
	if (rc == 0) {
		ctl_event_node(cn->run, cn->n, "Normal", CTL_EV_WARMUP_STARTED, "Warmup",
		    "Instance %s of NodePool %s registered; warming up (timeout %llds)", id,
		    pool->name, (long long)(pool->prewarm_timeout_ms / 1000));
		ctl_node_again(cn, 1);
	} else if (rc == -EBUSY) {
		ctl_node_again(cn, 1);
	}
	return rc;
}

int
ctl_to_standby(struct ctl_node *cn)
{
	struct ec2_error err = { 0 };
	const char *id = cn->instance_id;
	int rc;

	/*
	 * The tag mirrors the label; it goes first so that whoever sees the
	 * label standby finds the instance tagged so too. A label write that
	 * then fails is retried; meanwhile the pool reconcile may set the tag
	 * back to the label (and repairs a tag this call misses).
	 */
	if (id[0] != '\0' && strcmp(cn->inst.state_tag, nodestate_name(NODESTATE_STANDBY)) != 0)
		ctl_ec2_tag_state(cn->run, &id, 1, nodestate_name(NODESTATE_STANDBY), &err);
	rc = ctl_node_write(cn, TRANSITION_STANDBY, NULL);
	if (rc < 0) {
		if (rc == -EBUSY)
			ctl_node_again(cn, 1);
		return rc;
	}
	warmup_prepull_delete(cn);
	return 0;
}

/* A warmup that completes clears a Degraded condition that a warmup timeout set. */
static void
warmup__clear_degraded(struct ctl_node *cn)
{
	struct ctl_poolmem *m;
	bool clear;

	pthread_mutex_lock(&cn->ctl->lock);
	m = ctl_poolmem(cn->ctl, cn->pool->name);
	clear = m != NULL && strcmp(m->degraded_reason, "WarmupTimeout") == 0;
	pthread_mutex_unlock(&cn->ctl->lock);
	if (clear)
		ctl_degraded(cn->ctl, cn->pool->name, NULL, "%s", "");
}

/*
 * Whether pool pods wait for capacity that neither a starting node nor a
 * standby one will give them (§5.5): then this warm node goes straight to
 * running rather than through a stop and a start. The fallback's plan, so
 * a burst of pods turns as many warm nodes to running as their requests
 * need beyond the standby, not all; and a node launched for pods that a
 * standby node started since then serves goes to standby.
 */
static bool
warmup__pods_waiting(struct ctl_node *cn)
{
	struct fallback_need need;

	if (fallback_waiting(cn->ctl, cn->pool, cn->now, &need) < 0)
		return false;
	return need.launch > 0;
}

/* Warmup complete, instance running: straight to running when pods wait, else stop it. */
static int
warmup__finish(struct ctl_node *cn)
{
	struct ec2_error err = { 0 };
	int64_t since = cn->n->state_since_ms;     /* the launch; the write below resets it */
	struct ctl_poolmem *serve = ctl_serve_lock(cn->ctl, cn->pool->name);
	int rc;

	if (warmup__pods_waiting(cn)) {
		struct transition_args launched = { .since_ms = since };
		const char *id = cn->instance_id;

		/* Tag before label, as ctl_to_standby does. */
		ctl_ec2_tag_state(cn->run, &id, 1, nodestate_name(NODESTATE_RUNNING), &err);
		rc = ctl_node_write(cn, TRANSITION_RUN_AFTER_WARMUP, &launched);
		ctl_serve_unlock(serve);
		if (rc == 0) {
			metrics_counter_add(cn->ctl->m_scaleup, 1, cn->pool->name, "fallback");
			metrics_histogram_observe(cn->ctl->m_warmup_seconds,
			    (double)(cn->now - since) / 1000.0, cn->pool->name);
			ctl_event_node(cn->run, cn->n, "Normal", CTL_EV_WARMUP_COMPLETED, "Warmup",
			    "Warmup complete while pods of NodePool %s wait: running instead of stopping",
			    cn->pool->name);
			warmup_prepull_delete(cn);
		}
		return rc;
	}
	ctl_serve_unlock(serve);
	rc = ctl_ec2_stop(cn->run, cn->instance_id, &err);
	if (rc == -EBUSY)
		rc = 0;                 /* already stopping (it powered itself off) */
	ctl_node_again(cn, cn->ctl->opts.ec2_poll_ms > 0 ? cn->ctl->opts.ec2_poll_ms :
	    EC2VIEW_POLL_MS_DEFAULT);
	return rc;
}

static int
warmup__timeout(struct ctl_node *cn, const struct warmup_progress *pg)
{
	struct ec2_error err = { 0 };
	char why[256];
	int rc;

	snprintf(why, sizeof(why), "ready %s, DaemonSet pods %u/%u ready, images %u/%u pulled",
	    pg->ready ? "yes" : "no", pg->daemon_ready, pg->daemon_pods, pg->images_pulled,
	    pg->images_wanted);
	metrics_counter_add(cn->ctl->m_warmup_failures, 1, cn->pool->name, "timeout");
	ctl_degraded(cn->ctl, cn->pool->name, "WarmupTimeout", "node %s did not finish warmup "
	    "within %llds (%s)", node_info_name(cn->n),
	    (long long)(cn->pool->prewarm_timeout_ms / 1000), why);
	if (cn->pool->prewarm_timeout_action == NODEPOOL_TIMEOUT_TERMINATE) {
		ctl_event_node(cn->run, cn->n, "Warning", CTL_EV_WARMUP_TIMEOUT, "Terminate",
		    "Warmup did not complete within %llds (%s); terminating instance %s",
		    (long long)(cn->pool->prewarm_timeout_ms / 1000), why, cn->instance_id);
		ctl_map_set(cn->ctl->retire, node_info_name(cn->n), cn->pool->name, 0);
		return recovery_retire(cn);
	}
	rc = ctl_node_write(cn, TRANSITION_WARMUP_FAILED, NULL);
	if (rc < 0)
		return rc;
	ctl_event_node(cn->run, cn->n, "Warning", CTL_EV_WARMUP_TIMEOUT, "Stop",
	    "Warmup did not complete within %llds (%s); stopping instance %s, marked %s, to be "
	    "re-warmed later", (long long)(cn->pool->prewarm_timeout_ms / 1000), why,
	    cn->instance_id, NODESTATE_TAINT_WARMUP_FAILED);
	warmup_prepull_delete(cn);
	if (cn->inst.state_code == EC2_STATE_RUNNING)
		ctl_ec2_stop(cn->run, cn->instance_id, &err);
	return 0;
}

/*
 * The instance went away (terminated, shutting down) before warmup was
 * complete, and not through Stratos (a retired node's task deletes its
 * Node itself): the warmup failed; its Node goes (§5.6), and the pool
 * launches another if it needs one.
 */
static int
warmup__gone(struct ctl_node *cn, const struct warmup_progress *pg)
{
	const char *state = ec2view_state_name(cn->inst.state_code);
	int rc = recovery_orphan(cn);

	if (rc == 0) {
		metrics_counter_add(cn->ctl->m_warmup_failures, 1, cn->pool->name, "terminated");
		ctl_event_node(cn->run, cn->n, "Warning", CTL_EV_WARMUP_FAILED, "Delete",
		    "Instance %s is %s before warmup completed (ready %s, DaemonSet pods %u/%u ready, "
		    "images %u/%u pulled); its Node is deleted", cn->instance_id, state,
		    pg->ready ? "yes" : "no", pg->daemon_ready, pg->daemon_pods, pg->images_pulled,
		    pg->images_wanted);
		ctl_enqueue_pool(cn->run, cn->pool->name, 0);
	}
	return rc;
}

int
warmup_node(struct ctl_node *cn)
{
	const struct nodepool *pool = cn->pool;
	struct warmup_progress pg;
	struct ec2_error err = { 0 };
	char key[KUBE_PATH_MAX];
	int64_t poll = cn->ctl->opts.ec2_poll_ms > 0 ? cn->ctl->opts.ec2_poll_ms :
	    EC2VIEW_POLL_MS_DEFAULT;
	int64_t deadline = (cn->n->state_since_ms > 0 ? cn->n->state_since_ms : cn->now) +
	    pool->prewarm_timeout_ms;
	int state;
	int rc;

	if (!cn->has_inst) {
		if (cn->instance_id[0] != '\0')
			ctl_want_instance(cn->run, cn->instance_id);
		ctl_node_again(cn, poll);
		return 0;
	}
	state = cn->inst.state_code;
	if (node_info_has_taint(cn->n, NODESTATE_TAINT_WARMUP_FAILED, KUBE_EFFECT_NO_SCHEDULE)) {
		/* Waits, stopped, for the pool to re-warm it (poolsize.c). */
		if (state == EC2_STATE_RUNNING)
			ctl_ec2_stop(cn->run, cn->instance_id, &err);
		else if (ec2view_state_transitional(state))
			ctl_node_again(cn, poll);
		return 0;
	}
	if (node_info_annotation(cn->n, NODESTATE_ANN_WARMUP_DONE) != NULL) {
		switch (state) {
		case EC2_STATE_RUNNING:
			return warmup__finish(cn);
		case EC2_STATE_STOPPED: {
			int64_t since = cn->n->state_since_ms;   /* the launch; standby resets it */
			rc = ctl_to_standby(cn);
			if (rc == 0) {
				metrics_histogram_observe(cn->ctl->m_warmup_seconds,
				    (double)(cn->now - since) / 1000.0, pool->name);
				ctl_event_node(cn->run, cn->n, "Normal", CTL_EV_WARMUP_COMPLETED, "Standby",
				    "Warmup complete in %llds; instance %s stopped, node is standby",
				    (long long)((cn->now - since) / 1000), cn->instance_id);
				warmup__clear_degraded(cn);
				ctl_enqueue_pool(cn->run, pool->name, 0);
			}
			return rc;
		}
		default:
			ctl_node_again(cn, poll);
			return 0;
		}
	}
	warmup__prepull_key(cn, key, sizeof(key));
	warmup_progress_read(cn->n, pool, cn->ctl->ctx.pods, key, cn->now, &pg);
	if (cn->now >= deadline)
		return warmup__timeout(cn, &pg);
	switch (state) {
	case EC2_STATE_PENDING:
	case EC2_STATE_STOPPING:
		ctl_node_again(cn, poll);
		return 0;
	case EC2_STATE_STOPPED:
		/* It powered itself off (user data) before warmup was complete: finish it. */
		rc = ctl_ec2_start(cn->run, cn->instance_id, &err);
		if (rc == 0)
			ctl_event_node(cn->run, cn->n, "Warning", CTL_EV_WARMUP_RESTARTED, "Start",
			    "Instance %s stopped before warmup was complete (ready %s, DaemonSet pods "
			    "%u/%u ready, images %u/%u pulled); started again to finish it",
			    cn->instance_id, pg.ready ? "yes" : "no", pg.daemon_ready, pg.daemon_pods,
			    pg.images_pulled, pg.images_wanted);
		ctl_node_again(cn, poll);
		return rc;
	case EC2_STATE_RUNNING:
		break;
	default:
		return warmup__gone(cn, &pg);
	}
	if (pg.prepull_exists && pg.prepull_finished && pg.images_pulled < pg.images_wanted) {
		/* It ended short (the instance stopped under it): a new one pulls the rest. */
		rc = warmup_prepull_delete(cn);
		ctl_node_again(cn, 200);
		return rc;
	}
	if (pg.images_wanted > 0 && !pg.prepull_exists && cn->n->ready == KUBE_COND_TRUE) {
		rc = warmup__prepull_create(cn);
		if (rc < 0)
			ctl_node_again(cn, CONTROLLER_RETRY_MS);
		return rc;
	}
	if (!warmup_complete(&pg)) {
		ctl_log(LOG_LEVEL_DEBUG, pool->name, node_info_name(cn->n), cn->instance_id,
		    json_pack("{s:b,s:i,s:i,s:i,s:i}", "ready", pg.ready, "daemon_pods",
		    (int)pg.daemon_pods, "daemon_ready", (int)pg.daemon_ready, "images_wanted",
		    (int)pg.images_wanted, "images_pulled", (int)pg.images_pulled), "warming up");
		/* Events bring progress; the deadline and the settle time come by the clock. */
		ctl_node_again(cn, pg.ready || cn->n->ready != KUBE_COND_TRUE ? deadline - cn->now :
		    WARMUP_READY_SETTLE_MS);
		return 0;
	}
	rc = ctl_node_write(cn, TRANSITION_WARMUP_DONE, NULL);
	if (rc < 0) {
		if (rc == -EBUSY)
			ctl_node_again(cn, 1);
		return rc;
	}
	/* warmup-done leaves state-since alone: it is still the launch. */
	ctl_log(LOG_LEVEL_INFO, pool->name, node_info_name(cn->n), cn->instance_id,
	    json_pack("{s:i,s:i,s:I}", "daemon_pods", (int)pg.daemon_pods, "images",
	    (int)pg.images_pulled, "warmup_ms", (json_int_t)(cn->now - cn->n->state_since_ms)),
	    "warmup complete");
	warmup_prepull_delete(cn);
	return warmup__finish(cn);
}
