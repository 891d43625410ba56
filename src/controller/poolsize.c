/* Pool size (DESIGN §5.2, §5.6): counts, replenish, re-warm, shrink, instances that never registered, tags, and deletion through the finalizer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller_internal.h"
#include "stratos/jsonpatch.h"
#include "stratos/nodestate.h"
#include "stratos/poolsize.h"
#include "stratos/timeutil.h"

/* ---- pure parts ---- */

void
poolsize_plan(int pool_size, int min_standby, const struct poolsize_counts *c,
    unsigned rewarmable, unsigned max_launch, struct poolsize_plan *out)
{
	long ready = (long)c->warmup - (long)c->warmup_failed + (long)c->standby;
	long need = (long)min_standby - ready;
	long room = (long)pool_size - (long)c->total;
	long retirable = (long)c->warmup + (long)c->standby;

	memset(out, 0, sizeof(*out));
	if (need > 0) {
		out->rewarm = need < (long)rewarmable ? (unsigned)need : rewarmable;
		need -= out->rewarm;
	}
	if (need > 0 && room > 0) {
		long l = need < room ? need : room;
		out->launch = l < (long)max_launch ? (unsigned)l : max_launch;
	}
	if (room < 0) {
		long s = -room < retirable ? -room : retirable;
		out->shrink = s > 0 ? (unsigned)s : 0;
	}
}

static int
poolsize__victim_cmp(const void *a, const void *b)
{
	const struct poolsize_victim *x = a, *y = b;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->since_ms != y->since_ms) {
		bool oldest_first = x->kind == POOLSIZE_VICTIM_STANDBY ||
		    x->kind == POOLSIZE_VICTIM_FAILED;
		return (x->since_ms < y->since_ms) == oldest_first ? -1 : 1;
	}
	return x->index < y->index ? -1 : x->index > y->index;
}

void
poolsize_shrink_order(struct poolsize_victim *v, size_t n)
{
	qsort(v, n, sizeof(*v), poolsize__victim_cmp);
}

/* ---- the pool's reconcile ---- */

static bool
poolsize__alive(int state)
{
	return state == EC2_STATE_PENDING || state == EC2_STATE_RUNNING ||
	    state == EC2_STATE_STOPPING || state == EC2_STATE_STOPPED;
}

static int64_t
poolsize__poll(const struct ctl_pool *cp)
{
	return cp->ctl->opts.ec2_poll_ms > 0 ? cp->ctl->opts.ec2_poll_ms : EC2VIEW_POLL_MS_DEFAULT;
}

/* The pool's instance with this id, or NULL (reconcile_pool sorts them by id). */
static const struct ec2view_instance *
poolsize__inst(const struct ctl_pool *cp, const char *id)
{
	size_t lo = 0, hi = cp->ninsts;

	while (id != NULL && lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(cp->insts[mid].id, id);
		if (c == 0)
			return &cp->insts[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Whether id is being terminated (and EC2 does not show it going yet). */
static bool
poolsize__retiring(const struct ctl_pool *cp, const char *id)
{
	return id != NULL && ctl_map_get(cp->ctl->retiring, id, NULL, 0, NULL) == 0;
}

/* Forgets the retiring instances EC2 now shows going (or that a term-old mark left behind). */
static void
poolsize__forget_retired(struct ctl_pool *cp)
{
	for (size_t i = 0; i < cp->ninsts; i++) {
		int64_t since = 0;
		if (ctl_map_get(cp->ctl->retiring, cp->insts[i].id, NULL, 0, &since) < 0)
			continue;
		if (!poolsize__alive(cp->insts[i].state_code) ||
		    cp->now - since > 10 * CONTROLLER_START_TIMEOUT_MS)
			ctl_map_del(cp->ctl->retiring, cp->insts[i].id);
	}
}

/* Whether one of the pool's Nodes carries instance id (reconcile_pool sorts them by it). */
static bool
poolsize__has_node(const struct ctl_pool *cp, const char *id)
{
	size_t lo = 0, hi = cp->nnodes;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *have = cp->nodes[mid]->instance_id != NULL ? cp->nodes[mid]->instance_id : "";
		int c = strcmp(have, id);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Terminates instances that have no Node (never registered, or stopped without one). */
static void
poolsize__terminate(struct ctl_pool *cp, const char **ids, size_t n, const char *reason)
{
	struct ec2_error err = { 0 };

	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++)
		ctl_map_set(cp->ctl->retiring, ids[i], cp->pool->name, cp->now);
	if (ctl_ec2_terminate(cp->run, ids, n, &err) == 0) {
		bool never = strcmp(reason, "never-registered") == 0;
		bool stopped = strcmp(reason, "stopped-unregistered") == 0;

		metrics_counter_add(cp->ctl->m_gc, (double)n, cp->pool->name, reason);
		ctl_event_pool(cp->run, cp->pool, "Warning", CTL_EV_GC, "Terminate",
		    "Terminated %zu instance(s) that have no Node (%s), first %s", n, reason, ids[0]);
		if (never || stopped) {
			/* Warmups that failed before there was a Node to say so on (§5.1). */
			metrics_counter_add(cp->ctl->m_warmup_failures, (double)n, cp->pool->name,
			    "never-registered");
			ctl_event_pool(cp->run, cp->pool, "Warning", CTL_EV_WARMUP_FAILED, "Terminate",
			    "Warmup failed: %zu instance(s) %s without registering a Node (first %s); "
			    "terminated", n, never ? "ran past preWarm.timeout" : "stopped", ids[0]);
		}
	}
}

/* Re-warms a failed node: warmup again, and its instance started. */
static void
poolsize__rewarm(struct ctl_pool *cp, const struct node_info *n)
{
	struct ec2_error err = { 0 };
	int rc = ctl_transition(cp->run, n, cp->pool, TRANSITION_REWARM, NULL, NULL);

	if (rc < 0)
		return;
	rc = ctl_ec2_start(cp->run, n->instance_id, &err);
	ctl_event_node(cp->run, n, rc == 0 ? "Normal" : "Warning", CTL_EV_WARMUP_STARTED, "Rewarm",
	    "Warmup failed earlier; warming up again (instance %s%s%s)", n->instance_id,
	    rc == 0 ? "" : ": StartInstances failed: ", rc == 0 ? "" : err.code);
}

/* CreateTags for every alive instance whose state tag is not its Node's label. */
static void
poolsize__sync_tags(struct ctl_pool *cp)
{
	static const enum nodestate states[] = { NODESTATE_WARMUP, NODESTATE_STANDBY,
	    NODESTATE_RUNNING, NODESTATE_STOPPING };
	const char *ids[LIMITS_TERMINATIONS_PER_PASS];

	for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++) {
		const char *name = nodestate_name(states[s]);
		size_t n = 0;
		for (size_t i = 0; i < cp->nnodes && n < LIMITS_TERMINATIONS_PER_PASS; i++) {
			const struct node_info *node = cp->nodes[i];
			const struct ec2view_instance *in = poolsize__inst(cp, node->instance_id);
			if (in == NULL || !poolsize__alive(in->state_code) ||
			    nodestate_parse(node->state) != states[s] || strcmp(in->state_tag, name) == 0)
				continue;
			ids[n++] = in->id;
		}
		if (n > 0) {
			struct ec2_error err = { 0 };
			if (ctl_ec2_tag_state(cp->run, ids, n, name, &err) == 0)
				ctl_log(LOG_LEVEL_INFO, cp->pool->name, NULL, ids[0], json_pack("{s:i,s:s}",
				    "count", (int)n, "state", name), "instance state tags repaired");
		}
	}
}

int
poolsize_reconcile(struct ctl_pool *cp)
{
	const struct nodepool *pool = cp->pool;
	struct controller *c = cp->ctl;
	struct poolsize_counts *cnt = &cp->counts;
	struct poolsize_victim *victims = NULL;
	const struct node_info **rewarmable = NULL;
	const char **never = NULL, **stopped = NULL;
	size_t nvictims = 0, nrewarm = 0, nnever = 0, nstopped = 0;
	struct poolsize_plan plan;
	unsigned unserved = 0;
	int rc = 0;

	memset(cnt, 0, sizeof(*cnt));
	poolsize__forget_retired(cp);
	if (cp->crd != NULL && cp->crd->finalizer_index < 0)
		poolsize_finalizer(cp, true);
	victims = calloc(cp->nnodes + cp->ninsts + 1, sizeof(*victims));
	rewarmable = calloc(cp->nnodes + 1, sizeof(*rewarmable));
	never = calloc(cp->ninsts + 1, sizeof(*never));
	stopped = calloc(cp->ninsts + 1, sizeof(*stopped));
	if (victims == NULL || rewarmable == NULL || never == NULL || stopped == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < cp->nnodes; i++) {
		const struct node_info *n = cp->nodes[i];
		const struct ec2view_instance *in = poolsize__inst(cp, n->instance_id);
		enum nodestate st = nodestate_parse(n->state);
		bool failed = node_info_has_taint(n, NODESTATE_TAINT_WARMUP_FAILED,
		    KUBE_EFFECT_NO_SCHEDULE);

		if (n->deleted_ms != 0 || (in != NULL && !poolsize__alive(in->state_code)) ||
		    poolsize__retiring(cp, n->instance_id) ||
		    ctl_map_get(c->retire, node_info_name(n), NULL, 0, NULL) == 0)
			continue;       /* going away */
		cnt->total++;
		switch (st) {
		case NODESTATE_NONE:
		case NODESTATE_WARMUP:
			cnt->warmup++;
			if (failed) {
				cnt->warmup_failed++;
				victims[nvictims++] = (struct poolsize_victim){ POOLSIZE_VICTIM_FAILED,
				    n->state_since_ms, i };
				if (in != NULL && in->state_code == EC2_STATE_STOPPED &&
				    cp->now - n->state_since_ms >= CONTROLLER_REWARM_DELAY_MS)
					rewarmable[nrewarm++] = n;
			} else {
				victims[nvictims++] = (struct poolsize_victim){ POOLSIZE_VICTIM_WARMUP,
				    n->state_since_ms, i };
			}
			ctl_enqueue_node(cp->run, node_info_name(n), 0);
			break;
		case NODESTATE_STANDBY:
			cnt->standby++;
			victims[nvictims++] = (struct poolsize_victim){ POOLSIZE_VICTIM_STANDBY,
			    n->state_since_ms, i };
			break;
		case NODESTATE_RUNNING:
			cnt->running++;
			ctl_enqueue_node(cp->run, node_info_name(n), 0);
			break;
		case NODESTATE_STOPPING:
			cnt->stopping++;
			ctl_enqueue_node(cp->run, node_info_name(n), 0);
			break;
		}
	}
	/* Instances with no Node of the pool. */
	for (size_t i = 0; i < cp->ninsts; i++) {
		const struct ec2view_instance *in = &cp->insts[i];
		char node[256];

		if (!poolsize__alive(in->state_code) || poolsize__has_node(cp, in->id) ||
		    poolsize__retiring(cp, in->id))
			continue;
		cnt->total++;
		cnt->warmup++;
		if (ctl_instance_node(c, in->id, node, sizeof(node)) == 0) {
			ctl_enqueue_node(cp->run, node, 0);     /* registered, not adopted yet */
			continue;
		}
		if (in->state_code == EC2_STATE_STOPPED || in->state_code == EC2_STATE_STOPPING) {
			/* Stopped without ever registering (§5.1), or its Node deleted. */
			if (in->state_code == EC2_STATE_STOPPED && nstopped < LIMITS_TERMINATIONS_PER_PASS)
				stopped[nstopped++] = in->id;
			continue;
		}
		if (in->launch_ms > 0 && cp->now - in->launch_ms > pool->prewarm_timeout_ms &&
		    nnever < LIMITS_TERMINATIONS_PER_PASS) {
			never[nnever++] = in->id;
			continue;
		}
		victims[nvictims++] = (struct poolsize_victim){ POOLSIZE_VICTIM_UNREGISTERED,
		    in->launch_ms, cp->nnodes + i };
		cp->again_ms = poolsize__poll(cp) * 5;
	}
	/* Launches recorded whose instance is not listed yet. */
	for (size_t i = 0; i < cp->launches.n; i++) {
		bool seen = false;
		for (size_t j = 0; j < cp->ninsts && !seen; j++)
			seen = strcmp(cp->insts[j].client_token, cp->launches.v[i].token) == 0;
		if (!seen) {
			cnt->total++;
			cnt->warmup++;
		}
	}
	poolsize__terminate(cp, stopped, nstopped, "stopped-unregistered");
	poolsize__terminate(cp, never, nnever, "never-registered");
	/*
	 * Fallback scale-up and bursts beyond the standby (§5.5): pods the
	 * scheduler could not place get room on starting nodes and standby
	 * nodes started; those that neither take need new instances, and warm
	 * ones go straight to running for them.
	 */
	if (fallback_reconcile(cp, &unserved) < 0)
		unserved = 0;
	poolsize_plan(pool->pool_size, pool->min_standby + (int)unserved, cnt, (unsigned)nrewarm,
	    LIMITS_LAUNCHES_PER_PASS, &plan);
	if (unserved > 0 && plan.launch > 0)
		ctl_log(LOG_LEVEL_INFO, pool->name, NULL, NULL, json_pack("{s:i,s:i}",
		    "nodes_needed", (int)unserved, "launching", (int)plan.launch),
		    "pending pods beyond the standby: launching");
	if (cp->nc == NULL) {
		ctl_degraded(c, pool->name, "NodeClassNotFound", "AWSNodeClass %s does not exist",
		    pool->node_class_name);
		plan.launch = 0;
	} else if (pool->nviolations > 0 || cp->nc->nviolations > 0) {
		ctl_degraded(c, pool->name, "InvalidSpec", "the %s breaks %zu rule(s); nothing is "
		    "launched until it is fixed", pool->nviolations > 0 ? "NodePool" : "AWSNodeClass",
		    pool->nviolations > 0 ? pool->nviolations : cp->nc->nviolations);
		plan.launch = 0;
	} else {
		pthread_mutex_lock(&c->lock);
		struct ctl_poolmem *m = ctl_poolmem(c, pool->name);
		bool stale = m != NULL && (strcmp(m->degraded_reason, "NodeClassNotFound") == 0 ||
		    strcmp(m->degraded_reason, "InvalidSpec") == 0);
		pthread_mutex_unlock(&c->lock);
		if (stale)
			ctl_degraded(c, pool->name, NULL, "%s", "");
	}
	if (plan.shrink > 0) {
		const char *ids[LIMITS_TERMINATIONS_PER_PASS];
		size_t nids = 0;

		poolsize_shrink_order(victims, nvictims);
		for (size_t i = 0; i < nvictims && i < plan.shrink && i < LIMITS_TERMINATIONS_PER_PASS; i++) {
			if (victims[i].index < cp->nnodes) {
				const struct node_info *n = cp->nodes[victims[i].index];
				ctl_map_set(c->retire, node_info_name(n), pool->name, 0);
				ctl_enqueue_node(cp->run, node_info_name(n), 0);
			} else {
				ids[nids++] = cp->insts[victims[i].index - cp->nnodes].id;
			}
		}
		ctl_log(LOG_LEVEL_INFO, pool->name, NULL, NULL, json_pack("{s:i,s:i,s:i}", "total",
		    (int)cnt->total, "poolSize", pool->pool_size, "retiring", (int)plan.shrink),
		    "pool over its size: retiring instances");
		poolsize__terminate(cp, ids, nids, "shrink");
	}
	for (size_t i = 0; i < plan.rewarm; i++)
		poolsize__rewarm(cp, rewarmable[i]);
	rc = launch_reconcile(cp, plan.launch);
	poolsize__sync_tags(cp);
out:
	free(victims);
	free(rewarmable);
	free(never);
	free(stopped);
	return rc;
}

/* ---- the finalizer and deletion ---- */

int
poolsize_finalizer(struct ctl_pool *cp, bool add)
{
	struct kube_error err = { 0 };
	char path[KUBE_PATH_MAX], rv[24], idx[16];
	json_t *patch = NULL, *obj = NULL;
	int rc;

	if (cp->crd == NULL || (add ? cp->crd->finalizer_index >= 0 : cp->crd->finalizer_index < 0))
		return 0;
	if (!ctl_acting(cp->run))
		return -ECANCELED;
	if ((rc = kube_path(path, &KUBE_NODEPOOLS, NULL, cp->pool->name, NULL)) < 0)
		return rc;
	snprintf(rv, sizeof(rv), "%llu", (unsigned long long)cp->crd->obj.rv);
	patch = jsonpatch_new();
	if (patch == NULL)
		return -ENOMEM;
	if (!add) {
		snprintf(idx, sizeof(idx), "%d", cp->crd->finalizer_index);
		rc = jsonpatch_append(patch, "remove", NULL, "metadata", "finalizers", idx, NULL);
	} else if (cp->crd->has_finalizers) {
		rc = jsonpatch_append(patch, "add", json_string(NODESTATE_FINALIZER), "metadata",
		    "finalizers", "-", NULL);
	} else {
		rc = jsonpatch_append(patch, "add", json_pack("[s]", NODESTATE_FINALIZER), "metadata",
		    "finalizers", NULL);
	}
	if (rc == 0)
		rc = kube_patch_guarded(cp->ctl->ctx.kube, path, rv, patch, &obj, &err);
	json_decref(patch);
	if (rc == 0 && obj != NULL) {
		cache_apply(crd_cache_base(cp->ctl->ctx.nodepools), obj);
		if (cp->crd != NULL)
			cache_obj_unref(&cp->crd->obj);
		cp->crd = crd_cache_get(cp->ctl->ctx.nodepools, cp->pool->name);
	}
	json_decref(obj);
	ctl_log(rc == 0 ? LOG_LEVEL_INFO : (rc == -EBUSY ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN),
	    cp->pool->name, NULL, NULL, rc == 0 ? NULL : json_pack("{s:s}", "error", err.message),
	    "finalizer " NODESTATE_FINALIZER " %s%s", add ? "added" : "removed",
	    rc == 0 ? "" : " failed");
	if (rc < 0)
		cp->again_ms = CONTROLLER_RETRY_MS;
	return rc;
}

int
poolsize_delete(struct ctl_pool *cp)
{
	struct controller *c = cp->ctl;
	const char **ids = NULL;
	size_t nids = 0, alive = 0, records = 0;
	int64_t full = ec2view_full_ms(c->view);

	memset(&cp->counts, 0, sizeof(cp->counts));
	ids = calloc(cp->ninsts + 1, sizeof(*ids));
	if (ids == NULL)
		return -ENOMEM;
	/* The nodes' tasks drain running ones and retire everything (reconcile.c). */
	for (size_t i = 0; i < cp->nnodes; i++) {
		ctl_enqueue_node(cp->run, node_info_name(cp->nodes[i]), 0);
		alive++;
	}
	for (size_t i = 0; i < cp->ninsts; i++) {
		const struct ec2view_instance *in = &cp->insts[i];
		char node[256];
		if (!poolsize__alive(in->state_code))
			continue;
		alive++;
		if (!poolsize__has_node(cp, in->id) &&
		    ctl_instance_node(c, in->id, node, sizeof(node)) < 0 &&
		    nids < LIMITS_TERMINATIONS_PER_PASS)
			ids[nids++] = in->id;
	}
	poolsize__terminate(cp, ids, nids, "pool-deleted");
	free(ids);
	/* Launch records: done when listed, or when a listing well after them shows nothing. */
	for (size_t i = cp->launches.n; i-- > 0;) {
		const struct launch_record *lr = &cp->launches.v[i];
		bool listed = false;
		for (size_t j = 0; j < cp->ninsts && !listed; j++)
			listed = cp->insts[j].described &&
			    strcmp(cp->insts[j].client_token, lr->token) == 0;
		if (!listed && full < lr->at_ms + CONTROLLER_LAUNCH_GRACE_MS) {
			records++;
			ec2view_want_full(c->view);
			ctl_schedule_ec2(cp->run);
		}
	}
	if (alive > 0 || records > 0) {
		cp->again_ms = CONTROLLER_RETRY_MS;
		return 0;
	}
	if (cp->launches.n > 0)
		launch_reconcile_drop_all(cp);
	if (poolsize_finalizer(cp, false) == 0)
		ctl_event_pool(cp->run, cp->pool, "Normal", CTL_EV_GC, "Finalize",
		    "Every instance of the pool is terminated and its Nodes deleted; finalizer %s removed",
		    NODESTATE_FINALIZER);
	return 0;
}
