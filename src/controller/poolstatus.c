/* NodePool status and gauges: counts, conditions that clear when their cause goes, lastScaleUpTime. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller_internal.h"
#include "stratos/nodestate.h"
#include "stratos/poolstatus.h"
#include "stratos/timeutil.h"

static const json_t *
poolstatus__old_condition(const json_t *old, const char *type)
{
	size_t i;
	json_t *cnd;

	json_array_foreach(json_object_get(old, "conditions"), i, cnd)
		if (json_is_string(json_object_get(cnd, "type")) &&
		    strcmp(json_string_value(json_object_get(cnd, "type")), type) == 0)
			return cnd;
	return NULL;
}

static json_t *
poolstatus__condition(const json_t *old, const char *type, bool status, const char *reason,
    const char *message, int64_t generation, int64_t now_ms)
{
	const json_t *prev = poolstatus__old_condition(old, type);
	const char *st = status ? "True" : "False";
	const char *since = NULL;
	char now[TIME_RFC3339_LEN];

	/* The time of the last change of status: kept while the status stays. */
	if (prev != NULL && json_is_string(json_object_get(prev, "status")) &&
	    strcmp(json_string_value(json_object_get(prev, "status")), st) == 0)
		since = json_string_value(json_object_get(prev, "lastTransitionTime"));
	time_format_rfc3339(now_ms, now);
	return json_pack("{s:s,s:s,s:I,s:s,s:s,s:s}", "type", type, "status", st,
	    "observedGeneration", (json_int_t)generation, "lastTransitionTime",
	    since != NULL ? since : now, "reason", reason, "message", message);
}

json_t *
poolstatus_build(const struct nodepool *pool, const struct poolsize_counts *c,
    const struct poolstatus_facts *f, const json_t *old, int64_t now_ms)
{
	char msg[512], when[TIME_RFC3339_LEN];
	bool degraded = f->degraded_reason != NULL && f->degraded_reason[0] != '\0';
	int64_t last = f->last_scale_up_ms, old_last = 0;
	json_t *st, *conds;
	const char *old_when = json_string_value(json_object_get(old, "lastScaleUpTime"));

	conds = json_array();
	if (conds == NULL)
		return NULL;
	if (pool->deleting)
		snprintf(msg, sizeof(msg), "the NodePool is being deleted: draining and terminating "
		    "its %u instance(s)", c->total);
	else
		snprintf(msg, sizeof(msg), "%u standby and %u warming up of minStandby %d (%u running, "
		    "%u of poolSize %d)", c->standby, c->warmup - c->warmup_failed, pool->min_standby,
		    c->running, c->total, pool->pool_size);
	json_array_append_new(conds, poolstatus__condition(old, "Ready",
	    !pool->deleting && (int)c->standby >= pool->min_standby,
	    pool->deleting ? "Deleting" : ((int)c->standby >= pool->min_standby ? "StandbyReady" :
	    "Replenishing"), msg, pool->generation, now_ms));
	json_array_append_new(conds, poolstatus__condition(old, "Degraded", degraded,
	    degraded ? f->degraded_reason : "AsExpected",
	    degraded ? (f->degraded_message != NULL ? f->degraded_message : "") :
	    "launches, warmups and starts succeed", pool->generation, now_ms));
	snprintf(msg, sizeof(msg), "%u node(s) of the pool running", c->running);
	json_array_append_new(conds, poolstatus__condition(old, "ScaledUp", c->running > 0,
	    c->running > 0 ? "NodesRunning" : "NoRunningNodes", msg, pool->generation, now_ms));
	if (json_array_size(conds) != 3) {
		json_decref(conds);
		return NULL;
	}
	st = json_pack("{s:I,s:{s:i,s:i,s:i,s:i,s:i},s:o}", "observedGeneration",
	    (json_int_t)pool->generation, "nodes", "warmup", (int)c->warmup, "standby",
	    (int)c->standby, "running", (int)c->running, "stopping", (int)c->stopping, "total",
	    (int)c->total, "conditions", conds);
	if (st == NULL)
		return NULL;
	if (old_when != NULL)
		(void)time_parse_rfc3339(old_when, &old_last);
	if (old_last > last)
		last = old_last;
	if (last > 0) {
		time_format_rfc3339(last, when);
		json_object_set_new(st, "lastScaleUpTime", json_string(when));
	}
	return st;
}

int
poolstatus_changed(const json_t *new_status, const json_t *old)
{
	return old == NULL || !json_equal((json_t *)new_status, (json_t *)old);
}

void
poolstatus_forget(struct controller *c, const char *pool)
{
	const char *states[] = { "warmup", "standby", "running", "stopping" };

	for (size_t i = 0; i < 4; i++)
		metrics_gauge_set(c->m_nodes, 0, pool, states[i]);
	metrics_gauge_set(c->m_desired, 0, pool);
	metrics_gauge_set(c->m_size, 0, pool);
}

int
poolstatus_reconcile(struct ctl_pool *cp)
{
	struct controller *c = cp->ctl;
	const struct nodepool *pool = cp->pool;
	struct poolstatus_facts f = { 0 };
	struct kube_error err = { 0 };
	char reason[64] = "", message[256] = "", path[KUBE_PATH_MAX];
	json_t *old = NULL, *st, *patch, *obj = NULL;
	struct ctl_poolmem *m;
	int rc = 0;

	metrics_gauge_set(c->m_nodes, cp->counts.warmup, pool->name, "warmup");
	metrics_gauge_set(c->m_nodes, cp->counts.standby, pool->name, "standby");
	metrics_gauge_set(c->m_nodes, cp->counts.running, pool->name, "running");
	metrics_gauge_set(c->m_nodes, cp->counts.stopping, pool->name, "stopping");
	metrics_gauge_set(c->m_desired, pool->min_standby, pool->name);
	metrics_gauge_set(c->m_size, pool->pool_size, pool->name);
	if (cp->crd == NULL)
		return 0;
	pthread_mutex_lock(&c->lock);
	if ((m = ctl_poolmem(c, pool->name)) != NULL) {
		snprintf(reason, sizeof(reason), "%s", m->degraded_reason);
		snprintf(message, sizeof(message), "%s", m->degraded_message);
	}
	pthread_mutex_unlock(&c->lock);
	f.degraded_reason = reason;
	f.degraded_message = message;
	for (size_t i = 0; i < cp->nnodes; i++)
		if (cp->nodes[i]->started_at_ms > f.last_scale_up_ms)
			f.last_scale_up_ms = cp->nodes[i]->started_at_ms;
	if (cp->crd->status != NULL)
		old = json_loads(cp->crd->status, 0, NULL);
	st = poolstatus_build(pool, &cp->counts, &f, old, cp->now);
	if (st == NULL) {
		json_decref(old);
		return -ENOMEM;
	}
	if (!poolstatus_changed(st, old) || !ctl_acting(cp->run)) {
		json_decref(st);
		json_decref(old);
		return 0;
	}
	json_decref(old);
	patch = json_pack("{s:o}", "status", st);
	rc = kube_path(path, &KUBE_NODEPOOLS, NULL, pool->name, "status");
	if (rc == 0 && patch != NULL)
		rc = kube_patch(c->ctx.kube, path, KUBE_PATCH_MERGE, patch, &obj, &err);
	json_decref(patch);
	if (rc == 0 && obj != NULL)
		cache_apply(crd_cache_base(c->ctx.nodepools), obj);
	json_decref(obj);
	if (rc < 0 && rc != -ENOENT)
		ctl_log(LOG_LEVEL_WARN, pool->name, NULL, NULL, json_pack("{s:s}", "error",
		    err.message), "NodePool status not written");
	return rc;
}
