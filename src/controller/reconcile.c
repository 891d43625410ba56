/* The tasks the workers run: a node's task by its state, a pool's reconcile, and garbage collection across pools. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller_internal.h"
#include "stratos/nodestate.h"
#include "stratos/timeutil.h"

void
ctl_node_again(struct ctl_node *cn, int64_t ms)
{
	if (ms < 1)
		ms = 1;
	if (cn->again_ms == 0 || ms < cn->again_ms)
		cn->again_ms = ms;
}

int
ctl_node_write(struct ctl_node *cn, enum transition t, const struct transition_args *args)
{
	struct node_info *written = NULL;
	int rc = ctl_transition(cn->run, cn->n, cn->pool, t, args, &written);

	if (rc == 0 && written != NULL) {
		cache_obj_unref(&cn->n->obj);
		cn->n = written;
	} else {
		if (written != NULL)
			cache_obj_unref(&written->obj);
		if (rc == -EBUSY)
			ctl_node_again(cn, 1);
		else if (rc < 0 && rc != -ECANCELED)
			ctl_node_again(cn, CONTROLLER_RETRY_MS);
	}
	return rc;
}

/* A deleting pool's node: running ones drain first, everything else goes (§5.2). */
static int
reconcile__node_of_deleted_pool(struct ctl_node *cn)
{
	enum nodestate st = nodestate_parse(cn->n->state);

	if (st == NODESTATE_STOPPING)
		return scaledown_stopping(cn);
	/* Only a machine that runs has pods to drain; a node still starting has none running. */
	if (st == NODESTATE_RUNNING && cn->has_inst && cn->inst.state_code == EC2_STATE_RUNNING)
		return ctl_node_write(cn, TRANSITION_STOPPING, NULL);
	ctl_map_set(cn->ctl->retire, node_info_name(cn->n), cn->pool->name, 0);
	return recovery_retire(cn);
}

int
reconcile_node(struct ctl_run *r, const char *name, bool urgent)
{
	struct controller *c = r->ctl;
	struct ctl_node cn = { .run = r, .ctl = c };
	const char *pool;
	int rc = 0;

	cn.n = node_cache_get(c->ctx.nodes, name);
	if (cn.n == NULL) {
		ctl_map_del(c->retire, name);
		ctl_map_del(c->seen, name);
		return 0;
	}
	cn.snap = pools_acquire(c->ctx.pools);
	cn.now = time_real_ms();
	pool = node_info_pool(cn.n);
	if (pool != NULL && (cn.pool = pools_find_nodepool(cn.snap, pool)) != NULL)
		cn.nc = pools_find_nodeclass(cn.snap, cn.pool->node_class_name);
	if (cn.n->instance_id != NULL)
		snprintf(cn.instance_id, sizeof(cn.instance_id), "%s", cn.n->instance_id);
	else
		ctl_provider_instance(cn.n->provider_id, cn.instance_id, sizeof(cn.instance_id));
	cn.has_inst = cn.instance_id[0] != '\0' &&
	    ec2view_get(c->view, cn.instance_id, &cn.inst) == 0;
	if (cn.has_inst)
		cn.inst_gone = cn.inst.state_code == EC2_STATE_TERMINATED ||
		    cn.inst.state_code == EC2_STATE_SHUTTING_DOWN ||
		    cn.inst.state_code == EC2VIEW_STATE_GONE;
	else if (cn.instance_id[0] != '\0' && ec2view_synced(c->view))
		cn.inst_gone = ec2view_full_ms(c->view) > cn.n->created_ms + CONTROLLER_ORPHAN_GRACE_MS;
	if (urgent) {
		if (cn.pool != NULL)
			rc = startup_taints_node(&cn, true);
		goto out;
	}
	if (cn.n->deleted_ms != 0)
		goto out;
	if (pool == NULL || nodestate_parse(cn.n->state) == NODESTATE_NONE) {
		rc = warmup_adopt(&cn);
		goto out;
	}
	if (cn.pool == NULL)
		goto out;               /* its NodePool is gone: garbage collection (reconcile_gc) */
	if (!ec2view_synced(c->view)) {
		ctl_node_again(&cn, CONTROLLER_RETRY_MS);
		goto out;
	}
	if (nodestate_parse(cn.n->state) != NODESTATE_WARMUP)
		warmup_prepull_delete(&cn);
	if (cn.inst_gone && !cn.has_inst) {
		/* Not even terminated: EC2 never heard of it (a Node made by hand, another account). */
		rc = recovery_orphan(&cn);
		goto out;
	}
	if (!cn.has_inst && cn.instance_id[0] != '\0') {
		/* Launched a moment ago, or never: ask, and judge again after the grace. */
		ctl_want_instance(r, cn.instance_id);
		ctl_node_again(&cn, CONTROLLER_ORPHAN_GRACE_MS);
	}
	if (cn.pool->deleting) {
		rc = reconcile__node_of_deleted_pool(&cn);
		goto out;
	}
	if (ctl_map_get(c->retire, name, NULL, 0, NULL) == 0) {
		rc = recovery_retire(&cn);
		goto out;
	}
	switch (nodestate_parse(cn.n->state)) {
	case NODESTATE_WARMUP:
		rc = warmup_node(&cn);
		break;
	case NODESTATE_STANDBY:
		rc = recovery_standby(&cn);
		break;
	case NODESTATE_RUNNING:
		if ((rc = recovery_reservations(&cn)) < 0 && rc != -EBUSY)
			break;
		if (recovery_running(&cn) != 0)
			break;
		if ((rc = startup_taints_node(&cn, false)) < 0)
			break;
		rc = scaledown_node(&cn);
		break;
	case NODESTATE_STOPPING:
		rc = scaledown_stopping(&cn);
		break;
	default:
		break;
	}
out:
	if (cn.again_ms > 0)
		ctl_enqueue_node(r, name, cn.again_ms);
	cache_obj_unref(&cn.n->obj);
	pools_release(cn.snap);
	return rc;
}

/* ---- a pool ---- */

static void
reconcile__pool_free(struct ctl_pool *cp)
{
	if (cp->crd != NULL)
		cache_obj_unref(&cp->crd->obj);
	cache_objs_free((struct cache_obj **)cp->nodes, cp->nnodes);
	free(cp->insts);
	pools_release(cp->snap);
}

/*
 * How long to wait for the registry to see the cached NodePool's version:
 * 0 when it has. A pool missing from the registry altogether waits a
 * little longer (a registry that refused it, full at LIMITS_POOLS_MAX, is
 * not spun on).
 */
static int64_t
reconcile__registry_lag(const struct nodepool *pool, const struct crd_info *crd)
{
	uint64_t rv = 0;

	if (pool == NULL)
		return 4 * CONTROLLER_REGISTRY_WAIT_MS;
	if (cache_parse_rv(pool->resource_version, &rv) < 0 || rv >= crd->obj.rv)
		return 0;
	return CONTROLLER_REGISTRY_WAIT_MS;
}

static int
reconcile__inst_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ec2view_instance *)a)->id,
	    ((const struct ec2view_instance *)b)->id);
}

static int
reconcile__node_cmp(const void *a, const void *b)
{
	const struct node_info *x = *(const struct node_info *const *)a;
	const struct node_info *y = *(const struct node_info *const *)b;

	return strcmp(x->instance_id != NULL ? x->instance_id : "",
	    y->instance_id != NULL ? y->instance_id : "");
}

int
reconcile_pool(struct ctl_run *r, const char *name)
{
	struct controller *c = r->ctl;
	struct ctl_pool cp = { .run = r, .ctl = c };
	struct cache_obj **objs = NULL;
	size_t skipped = 0;
	int64_t lag;
	long n;
	int rc = 0;

	cp.snap = pools_acquire(c->ctx.pools);
	cp.pool = pools_find_nodepool(cp.snap, name);
	cp.now = time_real_ms();
	if (c->ctx.nodepools != NULL)
		cp.crd = crd_cache_get(c->ctx.nodepools, name);
	if (cp.crd != NULL && (lag = reconcile__registry_lag(cp.pool, cp.crd)) > 0) {
		/*
		 * The cache tells its subscribers before it feeds the registry:
		 * the registry has yet to see this version. Look again in a moment.
		 */
		ctl_enqueue_pool(r, name, lag);
		reconcile__pool_free(&cp);
		return 0;
	}
	if (cp.pool == NULL) {
		/* Gone from the registry (its finalizer removed): garbage collection's. */
		poolstatus_forget(c, name);
		reconcile__pool_free(&cp);
		return 0;
	}
	if (!ec2view_synced(c->view)) {
		ctl_schedule_ec2(r);
		ctl_enqueue_pool(r, name, 200);
		reconcile__pool_free(&cp);
		return 0;
	}
	cp.nc = pools_find_nodeclass(cp.snap, cp.pool->node_class_name);
	if (cp.nc == NULL)
		cp.again_ms = CONTROLLER_RETRY_MS * 2;   /* AWSNodeClass events are not followed: look again */
	n = cache_snapshot(node_cache_base(c->ctx.nodes), name, &objs);
	if (n < 0) {
		rc = (int)n;
		goto out;
	}
	cp.nodes = (struct node_info **)objs;
	cp.nnodes = (size_t)n;
	n = ec2view_list(c->view, name, &cp.insts);
	if (n < 0) {
		rc = (int)n;
		goto out;
	}
	cp.ninsts = (size_t)n;
	/* Sorted by instance id, both: a pool's counts are lookups, not a quadratic walk. */
	if (cp.ninsts > 1)
		qsort(cp.insts, cp.ninsts, sizeof(*cp.insts), reconcile__inst_cmp);
	if (cp.nnodes > 1)
		qsort(cp.nodes, cp.nnodes, sizeof(*cp.nodes), reconcile__node_cmp);
	if (cp.crd != NULL && launch_records_parse(cp.crd->launches, &cp.launches, &skipped) == -EINVAL)
		ctl_log(LOG_LEVEL_WARN, name, NULL, NULL, NULL,
		    "annotation " NODESTATE_POOL_ANN_LAUNCHES " is not a list; ignoring it");
	if (cp.pool->deleting)
		rc = poolsize_delete(&cp);
	else
		rc = poolsize_reconcile(&cp);
	if (ctl_acting(r))
		poolstatus_reconcile(&cp);
out:
	if (cp.again_ms > 0)
		ctl_enqueue_pool(r, name, cp.again_ms);
	reconcile__pool_free(&cp);
	return rc;
}

/* ---- garbage collection across pools (§5.6) ---- */

struct reconcile__gc_nodes {
	struct ctl_run *r;
	const struct pools_snapshot *snap;
	char (*names)[256];
	size_t n, max;
};

static int
reconcile__gc_node(void *ctx, const struct node_info *n)
{
	struct reconcile__gc_nodes *g = ctx;

	if (node_info_pool(n) != NULL && pools_find_nodepool(g->snap, node_info_pool(n)) == NULL &&
	    g->n < g->max)
		snprintf(g->names[g->n++], sizeof(g->names[0]), "%s", node_info_name(n));
	return 0;
}

static bool
reconcile__alive(int state)
{
	return state == EC2_STATE_PENDING || state == EC2_STATE_RUNNING ||
	    state == EC2_STATE_STOPPING || state == EC2_STATE_STOPPED;
}

int
reconcile_gc(struct ctl_run *r)
{
	struct controller *c = r->ctl;
	struct reconcile__gc_nodes g = { .r = r };
	struct ec2view_instance *all = NULL;
	const char **ids = NULL;
	size_t nids = 0;
	long n;
	int rc = 0;

	if (!ec2view_synced(c->view))
		return 0;
	g.snap = pools_acquire(c->ctx.pools);
	if (!pools_loaded(c->ctx.pools))
		goto out;               /* an unknown pool is not a deleted pool before the first list */
	/* Instances of pools that no longer exist. */
	n = ec2view_list(c->view, NULL, &all);
	if (n > 0 && (ids = calloc((size_t)n, sizeof(*ids))) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (long i = 0; i < n; i++) {
		if (all[i].pool[0] == '\0' || !reconcile__alive(all[i].state_code) ||
		    pools_find_nodepool(g.snap, all[i].pool) != NULL)
			continue;
		if (nids < LIMITS_EC2_IDS_PER_CALL)
			ids[nids++] = all[i].id;
	}
	if (nids > 0) {
		struct ec2_error err = { 0 };
		rc = ctl_ec2_terminate(r, ids, nids, &err);
		if (rc == 0) {
			for (size_t i = 0; i < nids; i++) {
				struct ec2view_instance in;
				if (ec2view_get(c->view, ids[i], &in) == 0)
					metrics_counter_add(c->m_gc, 1, in.pool, "pool-deleted");
			}
			ctl_log(LOG_LEVEL_INFO, NULL, NULL, ids[0], json_pack("{s:i}", "count",
			    (int)nids), "instances of deleted NodePools terminated");
		}
	}
	/* Nodes of pools that no longer exist, once their instance is gone. */
	g.max = 1024;
	g.names = calloc(g.max, sizeof(*g.names));
	if (g.names == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	node_cache_foreach(c->ctx.nodes, NULL, reconcile__gc_node, &g);
	for (size_t i = 0; i < g.n; i++) {
		struct node_info *node = node_cache_get(c->ctx.nodes, g.names[i]);
		struct ec2view_instance in;
		bool gone;

		if (node == NULL)
			continue;
		gone = node->instance_id == NULL || ec2view_get(c->view, node->instance_id, &in) < 0 ||
		    !reconcile__alive(in.state_code);
		if (gone && ctl_delete_node(r, g.names[i], NULL) == 0)
			metrics_counter_add(c->m_gc, 1, node_info_pool(node), "node-of-deleted-pool");
		else if (!gone && node->instance_id != NULL)
			ctl_want_instance(r, node->instance_id);
		cache_obj_unref(&node->obj);
	}
out:
	free(g.names);
	free(ids);
	free(all);
	pools_release(g.snap);
	return rc;
}
