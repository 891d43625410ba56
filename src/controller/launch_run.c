/* Launching (DESIGN §5.1): records written to the NodePool before RunInstances, repeated after a crash, dropped once EC2 lists the instance. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller_internal.h"
#include "stratos/jsonpatch.h"
#include "stratos/nodestate.h"
#include "stratos/timeutil.h"

/*
 * Writes the records to the NodePool's annotation, guarded by the version
 * the records were read from: another writer in between (there is one
 * leader, but a previous one may still be finishing a call) makes this
 * -EBUSY and the pass ends without launching.
 */
static int
launch__write(struct ctl_pool *cp, const struct launch_records *r)
{
	struct controller *c = cp->ctl;
	struct kube_error err = { 0 };
	char path[KUBE_PATH_MAX], rv[24];
	json_t *patch, *obj = NULL;
	char *text = NULL;
	int rc;

	if (cp->crd == NULL)
		return -ENOTSUP;
	if (!ctl_acting(cp->run))
		return -ECANCELED;
	if ((rc = launch_records_format(r, &text)) < 0)
		return rc;
	if ((rc = kube_path(path, &KUBE_NODEPOOLS, NULL, cp->pool->name, NULL)) < 0) {
		free(text);
		return rc;
	}
	snprintf(rv, sizeof(rv), "%llu", (unsigned long long)cp->crd->obj.rv);
	patch = jsonpatch_new();
	if (patch == NULL) {
		free(text);
		return -ENOMEM;
	}
	if (text != NULL && cp->crd->has_annotations)
		rc = jsonpatch_append(patch, "add", json_string(text), "metadata", "annotations",
		    NODESTATE_POOL_ANN_LAUNCHES, NULL);
	else if (text != NULL)
		rc = jsonpatch_append(patch, "add", json_pack("{s:s}", NODESTATE_POOL_ANN_LAUNCHES,
		    text), "metadata", "annotations", NULL);
	else if (cp->crd->launches != NULL)
		rc = jsonpatch_append(patch, "remove", NULL, "metadata", "annotations",
		    NODESTATE_POOL_ANN_LAUNCHES, NULL);
	free(text);
	if (rc == 0 && json_array_size(patch) > 0)
		rc = kube_patch_guarded(c->ctx.kube, path, rv, patch, &obj, &err);
	json_decref(patch);
	if (rc == 0 && obj != NULL) {
		cache_apply(crd_cache_base(c->ctx.nodepools), obj);
		cache_obj_unref(&cp->crd->obj);
		cp->crd = crd_cache_get(c->ctx.nodepools, cp->pool->name);
	}
	json_decref(obj);
	if (rc < 0) {
		ctl_log(rc == -EBUSY ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, cp->pool->name, NULL, NULL,
		    json_pack("{s:s}", "error", err.message), "launch records not written");
		cp->again_ms = CONTROLLER_RETRY_MS;
	}
	return cp->crd == NULL && rc == 0 ? -ENOENT : rc;
}

int
launch_reconcile_drop_all(struct ctl_pool *cp)
{
	struct launch_records none = { 0 };

	return launch__write(cp, &none);
}

/* Subnets counted for the choice: alive instances and pending records, per subnet of the class. */
static int
launch__pick(struct ctl_pool *cp, const struct launch_records *r)
{
	const struct nodeclass *nc = cp->nc;
	unsigned counts[LIMITS_NODECLASS_SUBNETS] = { 0 };
	bool avoid[LIMITS_NODECLASS_SUBNETS] = { false };
	size_t n = nc->nsubnet_ids < LIMITS_NODECLASS_SUBNETS ? nc->nsubnet_ids :
	    LIMITS_NODECLASS_SUBNETS;
	struct ctl_poolmem *m;

	for (size_t s = 0; s < n; s++) {
		for (size_t i = 0; i < cp->ninsts; i++)
			if (cp->insts[i].state_code != EC2_STATE_TERMINATED &&
			    cp->insts[i].state_code != EC2_STATE_SHUTTING_DOWN &&
			    cp->insts[i].state_code != EC2VIEW_STATE_GONE &&
			    strcmp(cp->insts[i].subnet_id, nc->subnet_ids[s]) == 0)
				counts[s]++;
		for (size_t i = 0; i < r->n; i++)
			if (strcmp(r->v[i].subnet, nc->subnet_ids[s]) == 0)
				counts[s]++;
	}
	pthread_mutex_lock(&cp->ctl->lock);
	if ((m = ctl_poolmem(cp->ctl, cp->pool->name)) != NULL)
		for (size_t s = 0; s < n; s++)
			for (size_t k = 0; k < LIMITS_NODECLASS_SUBNETS; k++)
				if (strcmp(m->capacity_subnet[k], nc->subnet_ids[s]) == 0 &&
				    m->capacity_until_ms[k] > cp->now)
					avoid[s] = true;
	pthread_mutex_unlock(&cp->ctl->lock);
	return launch_pick_subnet(n, counts, avoid);
}

static void
launch__capacity(struct ctl_pool *cp, const char *subnet)
{
	struct ctl_poolmem *m;
	size_t slot = 0;

	pthread_mutex_lock(&cp->ctl->lock);
	if ((m = ctl_poolmem(cp->ctl, cp->pool->name)) != NULL) {
		for (size_t k = 0; k < LIMITS_NODECLASS_SUBNETS; k++) {
			if (strcmp(m->capacity_subnet[k], subnet) == 0 || m->capacity_until_ms[k] <
			    m->capacity_until_ms[slot])
				slot = k;
			if (strcmp(m->capacity_subnet[k], subnet) == 0)
				break;
		}
		snprintf(m->capacity_subnet[slot], sizeof(m->capacity_subnet[slot]), "%s", subnet);
		m->capacity_until_ms[slot] = cp->now + CONTROLLER_CAPACITY_BACKOFF_MS;
	}
	pthread_mutex_unlock(&cp->ctl->lock);
}

/*
 * One RunInstances for a record. Returns 1 when the record stays (the
 * instance exists or may exist), 0 when it goes (a definite failure).
 */
static int
launch__run(struct ctl_pool *cp, const struct launch_record *lr, bool repeat)
{
	struct launch_params lp;
	struct ec2_instance in;
	struct ec2_error err = { 0 };
	int rc;

	if (launch_params_build(cp->pool, cp->nc, cp->ctl->ctx.cluster, lr->subnet, lr->token,
	    &lp) < 0) {
		ctl_degraded(cp->ctl, cp->pool->name, "InvalidSpec",
		    "cannot launch from AWSNodeClass %s", cp->nc->name);
		return 0;
	}
	rc = ctl_ec2_run(cp->run, &lp.run, &in, &err);
	if (rc == -ECANCELED)
		return 1;
	if (rc == 0) {
		metrics_counter_add(cp->ctl->m_launches, 1, cp->pool->name, "ok");
		ctl_log(LOG_LEVEL_INFO, cp->pool->name, NULL, in.id, json_pack("{s:s,s:s,s:b,s:I}",
		    "token", lr->token, "subnet", lr->subnet, "repeat", repeat, "ms",
		    (json_int_t)err.elapsed_ms), "instance launched");
		pthread_mutex_lock(&cp->ctl->lock);
		struct ctl_poolmem *m = ctl_poolmem(cp->ctl, cp->pool->name);
		bool clear = m != NULL && (strcmp(m->degraded_reason, "InsufficientCapacity") == 0 ||
		    strcmp(m->degraded_reason, "LaunchFailed") == 0);
		pthread_mutex_unlock(&cp->ctl->lock);
		if (clear)
			ctl_degraded(cp->ctl, cp->pool->name, NULL, "%s", "");
		return 1;
	}
	metrics_counter_add(cp->ctl->m_launches, 1, cp->pool->name, ec2_error_class_name(err.cls));
	ctl_log(LOG_LEVEL_WARN, cp->pool->name, NULL, NULL, json_pack("{s:s,s:s,s:s,s:s,s:s}",
	    "token", lr->token, "subnet", lr->subnet, "class", ec2_error_class_name(err.cls), "code",
	    err.code, "error", err.message), "RunInstances failed");
	if (err.cls == EC2_ERR_UNKNOWN_OUTCOME)
		return 1;               /* maybe launched: the same token asks again next pass */
	if (strcmp(err.code, "IdempotentParameterMismatch") == 0) {
		/* The token made an instance with other parameters (the class changed): list it. */
		ec2view_want_full(cp->ctl->view);
		return cp->now - lr->at_ms < cp->pool->prewarm_timeout_ms;
	}
	if (err.cls == EC2_ERR_CAPACITY) {
		launch__capacity(cp, lr->subnet);
		ctl_degraded(cp->ctl, cp->pool->name, "InsufficientCapacity",
		    "RunInstances in %s: %s: %s", lr->subnet, err.code, err.message);
	} else {
		ctl_degraded(cp->ctl, cp->pool->name, "LaunchFailed", "RunInstances: %s: %s",
		    err.code, err.message);
	}
	metrics_counter_add(cp->ctl->m_warmup_failures, 1, cp->pool->name, "launch-failed");
	ctl_event_pool(cp->run, cp->pool, "Warning", CTL_EV_LAUNCH_FAILED, "Launch",
	    "RunInstances in %s failed: %s: %.300s", lr->subnet, err.code, err.message);
	/* The warmup this launch was for never began (the EC2 client's retries are spent). */
	ctl_event_pool(cp->run, cp->pool, "Warning", CTL_EV_WARMUP_FAILED, "Launch",
	    "Warmup failed: no instance launched (%s); the pool launches again on its next pass",
	    err.code);
	return 0;
}

int
launch_reconcile(struct ctl_pool *cp, unsigned count)
{
	struct launch_records *r = &cp->launches;
	bool dirty = false;
	size_t first_new;
	int rc = 0;

	/* What became of the recorded launches. */
	for (size_t i = r->n; i-- > 0;) {
		const struct ec2view_instance *in = NULL;
		for (size_t j = 0; j < cp->ninsts && in == NULL; j++)
			if (strcmp(cp->insts[j].client_token, r->v[i].token) == 0)
				in = &cp->insts[j];
		if (in != NULL) {
			if (in->described) {
				launch_records_remove(r, i);    /* EC2 lists it: the instance is the record */
				dirty = true;
			}
			continue;
		}
		/* Not seen: decided and maybe never sent (a crash), or no answer. Same token again. */
		if (cp->nc == NULL || !ctl_acting(cp->run)) {
			if (cp->now - r->v[i].at_ms > cp->pool->prewarm_timeout_ms) {
				launch_records_remove(r, i);
				dirty = true;
			}
			continue;
		}
		if (launch__run(cp, &r->v[i], true) == 0) {
			launch_records_remove(r, i);
			dirty = true;
		}
	}
	if (count > 0 && cp->nc != NULL && cp->crd != NULL && ctl_acting(cp->run)) {
		first_new = r->n;
		for (unsigned k = 0; k < count && r->n < LIMITS_LAUNCH_RECORDS; k++) {
			struct launch_record *lr = &r->v[r->n];
			int s = launch__pick(cp, r);
			if (s < 0 || launch_token(cp->pool->name, lr->token) < 0)
				break;
			snprintf(lr->subnet, sizeof(lr->subnet), "%s", cp->nc->subnet_ids[s]);
			lr->at_ms = cp->now;
			r->n++;
		}
		if (r->n > first_new) {
			/* Recorded before any call: a crash from here on repeats, never duplicates. */
			if ((rc = launch__write(cp, r)) < 0)
				return rc;
			dirty = false;
			ctl_event_pool(cp->run, cp->pool, "Normal", CTL_EV_REPLENISHING, "Launch",
			    "Launching %zu instance(s): %u warming up and %u standby of minStandby %d",
			    r->n - first_new, cp->counts.warmup - cp->counts.warmup_failed,
			    cp->counts.standby, cp->pool->min_standby);
			for (size_t i = r->n; i-- > first_new;) {
				if (launch__run(cp, &r->v[i], false) == 0) {
					launch_records_remove(r, i);
					dirty = true;
				}
			}
		}
	}
	if (dirty)
		rc = launch__write(cp, r);
	return rc;
}
