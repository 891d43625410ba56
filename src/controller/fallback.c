/* Fallback scale-up (DESIGN §5.5): waiting pool pods packed into nodes first-fit-decreasing, and how many nodes they still need. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller_internal.h"
#include "stratos/claim.h"
#include "stratos/fallback.h"
#include "stratos/placed.h"
#include "stratos/placement.h"
#include "stratos/nodestate.h"
#include "stratos/pool_node.h"
#include "stratos/timeutil.h"

struct fallback__item {
	const struct resources *req;
	size_t index;
};

static int
fallback__cmp(const void *a, const void *b)
{
	const struct fallback__item *x = a, *y = b;

	if (x->req->cpu_milli != y->req->cpu_milli)
		return x->req->cpu_milli > y->req->cpu_milli ? -1 : 1;
	if (x->req->memory != y->req->memory)
		return x->req->memory > y->req->memory ? -1 : 1;
	if (x->req->ephemeral != y->req->ephemeral)
		return x->req->ephemeral > y->req->ephemeral ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* Whether req fits bin b (alloc: the bin's, else the default; none known: only an empty bin). */
static bool
fallback__fits(const struct fallback_bin *b, const struct resources *alloc,
    const struct resources_sum *base, const struct resources *req)
{
	const struct resources *a = b->alloc != NULL ? b->alloc : alloc;

	if (a == NULL)
		return b->used.pods == (base != NULL ? base->pods : 0);
	return resources_sum_fits_pod(&b->used, req, a, NULL);
}

long
fallback_pack_onto(const struct resources *alloc, const struct resources_sum *base,
    struct fallback_bin *bins, size_t *nbins, size_t max_bins,
    const struct resources *const *pods, size_t n, int *assign)
{
	struct fallback__item *items;
	size_t nitems = 0, first = *nbins;

	if (n == 0)
		return 0;
	if ((items = calloc(n, sizeof(*items))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (pods[i] != NULL)
			items[nitems++] = (struct fallback__item){ pods[i], i };
	if (nitems > 1)
		qsort(items, nitems, sizeof(*items), fallback__cmp);
	for (size_t k = 0; k < nitems; k++) {
		const struct resources *req = items[k].req;
		size_t b;

		for (b = 0; b < *nbins; b++)
			if (fallback__fits(&bins[b], alloc, base, req))
				break;
		if (b == *nbins) {
			/* A new node: only if the pod fits an empty one at all. */
			if (*nbins >= max_bins)
				continue;
			bins[b].alloc = NULL;
			if (base != NULL)
				bins[b].used = *base;
			else
				resources_sum_init(&bins[b].used);
			if (!fallback__fits(&bins[b], alloc, base, req))
				continue;
			(*nbins)++;
		}
		if (resources_sum_add(&bins[b].used, req) < 0) {
			free(items);
			return -E2BIG;
		}
		assign[items[k].index] = (int)b;
	}
	free(items);
	return (long)(*nbins - first);
}

long
fallback_pack(const struct resources *alloc, const struct resources_sum *base,
    const struct resources *const *pods, size_t n, size_t max_bins, int *assign)
{
	struct fallback_bin *bins;
	size_t nbins = 0;
	long rc;

	for (size_t i = 0; i < n; i++)
		assign[i] = -1;
	if (n == 0)
		return 0;
	if ((bins = calloc(max_bins + 1, sizeof(*bins))) == NULL)
		return -ENOMEM;
	rc = fallback_pack_onto(alloc, base, bins, &nbins, max_bins, pods, n, assign);
	free(bins);
	return rc;
}

void
fallback_plan_free(struct fallback_plan *plan)
{
	if (plan == NULL)
		return;
	free(plan->where);
	memset(plan, 0, sizeof(*plan));
}

int
fallback_decide(const struct fallback_in *in, struct fallback_plan *plan)
{
	size_t n = in->npods, nbins = in->ncoming, cap;
	size_t standby = in->room > 0 ? ((size_t)in->room < in->standby ? (size_t)in->room :
	    in->standby) : 0;
	const struct resources **reqs = NULL;
	struct fallback_bin *bins = NULL;
	int *assign = NULL, *fresh = NULL;
	long opened;
	int rc = 0;

	memset(plan, 0, sizeof(*plan));
	cap = in->ncoming + standby;
	plan->npods = n;
	plan->where = calloc(n + 1, sizeof(*plan->where));
	reqs = calloc(n + 1, sizeof(*reqs));
	assign = calloc(n + 1, sizeof(*assign));
	fresh = calloc(n + 1, sizeof(*fresh));
	bins = calloc(cap + 1, sizeof(*bins));
	if (plan->where == NULL || reqs == NULL || assign == NULL || fresh == NULL || bins == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < in->ncoming; i++)
		bins[i] = in->coming[i];
	for (size_t i = 0; i < n; i++)
		assign[i] = -1;
	/* The pods that may have a node started now: coming nodes first, then standby ones. */
	for (size_t i = 0; i < n; i++)
		reqs[i] = in->pods[i].act ? in->pods[i].requests : NULL;
	if ((opened = fallback_pack_onto(in->alloc, in->base, bins, &nbins, cap, reqs, n,
	    assign)) < 0) {
		rc = (int)opened;
		goto out;
	}
	plan->start = (unsigned)opened;
	/* The pods the extender is to serve: the room left, then the standby nodes not started. */
	for (size_t i = 0; i < n; i++)
		reqs[i] = in->pods[i].act ? NULL : in->pods[i].requests;
	if ((opened = fallback_pack_onto(in->alloc, in->base, bins, &nbins, cap, reqs, n,
	    assign)) < 0) {
		rc = (int)opened;
		goto out;
	}
	plan->standby_held = (unsigned)opened;
	/* Everything else needs nodes beyond the standby. */
	for (size_t i = 0; i < n; i++)
		reqs[i] = assign[i] < 0 ? in->pods[i].requests : NULL;
	if ((opened = fallback_pack(in->alloc, in->base, reqs, n, n, fresh)) < 0) {
		rc = (int)opened;
		goto out;
	}
	plan->launch = (unsigned)opened;
	for (size_t i = 0; i < n; i++) {
		int a = assign[i];

		if (a < 0) {
			plan->where[i] = fresh[i] >= 0 ? FALLBACK_LAUNCH : FALLBACK_NO_FIT;
			plan->no_fit += fresh[i] < 0;
		} else if (!in->pods[i].act || (size_t)a >= in->ncoming + plan->start ||
		    ((size_t)a < in->ncoming && (size_t)a >= in->nreservable)) {
			/* The extender's, or a usable node's to bind: nothing to write for it. */
			plan->where[i] = FALLBACK_COVERED;
		} else {
			plan->where[i] = a;
			plan->reserve += (size_t)a < in->ncoming;
		}
	}
out:
	free(reqs);
	free(assign);
	free(fresh);
	free(bins);
	if (rc < 0)
		fallback_plan_free(plan);
	return rc;
}

/* ---- the pool as the caches show it (impure) ---- */

/* What one pass reads: the waiting pods, the nodes coming, the standby ones. References held. */
struct fallback__view {
	struct controller *ctl;
	const struct nodepool *pool;
	int64_t now;
	/* pods */
	struct pod_info **pods;
	size_t npods, maxpods;
	struct fallback_pod *fp;
	int64_t grace_left_ms;           /* the soonest a pod in its grace may act (0: none waits so) */
	/* nodes (all of the pool's, referenced), sorted into the lists below */
	struct node_info **nodes;
	size_t nnodes, maxnodes;
	const struct node_info **coming; /* reservable (earliest started first), then usable */
	size_t ncoming, nreservable;
	struct fallback_bin *bins;       /* of coming */
	struct cache_obj ***held;        /* pods whose names the bins' sums borrow */
	size_t *nheld;
	const struct node_info **standby;
	size_t nstandby;
	unsigned running;
	struct resources alloc;          /* a pool node's allocatable (all share the class) */
	bool have_alloc;
	struct resources_sum base;       /* what the best standby node runs already (DaemonSets) */
	bool have_base;
	struct cache_obj **base_held;
	size_t nbase_held;
	struct fallback_plan plan;
};

static void
fallback__view_free(struct fallback__view *v)
{
	for (size_t i = 0; i < v->npods; i++)
		cache_obj_unref(&v->pods[i]->obj);
	for (size_t i = 0; v->held != NULL && i < v->ncoming; i++)
		cache_objs_free(v->held[i], v->nheld[i]);
	cache_objs_free(v->base_held, v->nbase_held);
	for (size_t i = 0; i < v->nnodes; i++)
		cache_obj_unref(&v->nodes[i]->obj);
	if (v->have_alloc)
		resources_release(&v->alloc);
	fallback_plan_free(&v->plan);
	free(v->pods);
	free(v->fp);
	free(v->nodes);
	free(v->coming);
	free(v->bins);
	free(v->held);
	free(v->nheld);
	free(v->standby);
	v->pods = NULL;
	v->nodes = NULL;
	v->coming = v->standby = NULL;
	v->fp = NULL;
	v->bins = NULL;
	v->held = NULL;
	v->nheld = NULL;
	v->base_held = NULL;
	v->npods = v->nnodes = v->ncoming = v->nreservable = v->nstandby = v->nbase_held = 0;
	v->running = 0;
	v->have_alloc = v->have_base = false;
	v->grace_left_ms = 0;
}

/* A pool pod the scheduler could not place (whether it holds a promise is looked at later). */
static int
fallback__pod(void *ctx, const struct pod_info *p)
{
	struct fallback__view *v = ctx;

	if (p->scheduled != KUBE_COND_FALSE || p->sched_reason != POD_SCHED_REASON_UNSCHEDULABLE ||
	    p->deleted_ms != 0 || v->npods == v->maxpods)
		return 0;
	v->pods[v->npods++] = (struct pod_info *)cache_obj_ref((struct cache_obj *)&p->obj);
	return 0;
}

static int
fallback__node(void *ctx, const struct node_info *n)
{
	struct fallback__view *v = ctx;

	if (v->nnodes < v->maxnodes)
		v->nodes[v->nnodes++] = (struct node_info *)cache_obj_ref((struct cache_obj *)&n->obj);
	return 0;
}

/*
 * Whether pod holds a live reservation (on the node the reservation index
 * names) that still has room for it. A scheduler without the extender
 * knows nothing of reservations and may have bound other pods into the
 * room promised to this one: such a promise no longer brings it a node,
 * so the pod counts as waiting (the promise goes once the pod binds).
 */
static bool
fallback__reserved(struct fallback__view *v, const struct pod_info *p)
{
	char node[256];
	struct node_info *n;
	bool holds;

	if (ctl_map_get(v->ctl->reserved, p->obj.key, node, sizeof(node), NULL) < 0)
		return false;
	if ((n = node_cache_get(v->ctl->ctx.nodes, node)) == NULL)
		return false;
	holds = n->deleted_ms == 0 && placement_holds(v->ctl->ctx.pods, n, p->uid) &&
	    placement_fits(v->ctl->ctx.pods, n, p->uid, &p->requests, NULL);
	cache_obj_unref(&n->obj);
	return holds;
}

/*
 * Whether the fallback may start a node for p now. A pod that tolerates
 * the standby taint was made so by the webhook (§6.1): the scheduler sends
 * it to the extender with the standby nodes feasible, and the extender
 * starts one inside its next filter call; it is left that long (the grace,
 * from the PodScheduled=False transition) before the controller steps in.
 * A pod that does not tolerate it never reaches the extender with a
 * standby node: nothing but the controller will ever start one for it.
 */
static bool
fallback__acts(struct fallback__view *v, const struct pod_info *p)
{
	int64_t since = p->sched_since_ms != 0 ? p->sched_since_ms : p->created_ms;
	int64_t left;

	if (!pod_info_tolerates(p, NODESTATE_TAINT_STANDBY, NODESTATE_TAINT_STANDBY_VALUE,
	    KUBE_EFFECT_NO_EXECUTE))
		return true;
	left = since + CONTROLLER_FALLBACK_GRACE_MS - v->now;
	if (since == 0 || left <= 0)
		return true;
	if (v->grace_left_ms == 0 || left < v->grace_left_ms)
		v->grace_left_ms = left;
	return false;
}

static int
fallback__starting_cmp(const void *a, const void *b)
{
	const struct node_info *x = *(const struct node_info *const *)a;
	const struct node_info *y = *(const struct node_info *const *)b;

	if (x->started_at_ms != y->started_at_ms)
		return x->started_at_ms < y->started_at_ms ? -1 : 1;
	return strcmp(node_info_name(x), node_info_name(y));
}

/* Reads the pool from the caches and decides (fallback_decide). Returns 0 or -errno. */
static int
fallback__read(struct fallback__view *v)
{
	struct controller *c = v->ctl;
	size_t nusable = 0, kept = 0;
	const struct node_info **usable;
	struct fallback_in in;
	long count;
	int rc;

	v->maxpods = LIMITS_FALLBACK_PODS;
	v->pods = calloc(v->maxpods, sizeof(*v->pods));
	if (v->pods == NULL)
		return -ENOMEM;
	pod_cache_foreach_pending(c->ctx.pods, v->pool->name, fallback__pod, v);
	/* The pods that hold a promise of room are on their way already. */
	for (size_t i = 0; i < v->npods; i++) {
		if (fallback__reserved(v, v->pods[i]))
			cache_obj_unref(&v->pods[i]->obj);
		else
			v->pods[kept++] = v->pods[i];
	}
	v->npods = kept;
	if (v->npods == 0)
		return 0;
	/* Room for the nodes counted now and a few that register meanwhile. */
	count = node_cache_pool_size(c->ctx.nodes, v->pool->name);
	v->maxnodes = (size_t)(count > 0 ? count : 0) + 64;
	if ((v->nodes = calloc(v->maxnodes, sizeof(*v->nodes))) == NULL)
		return -ENOMEM;
	node_cache_foreach(c->ctx.nodes, v->pool->name, fallback__node, v);
	v->coming = calloc(v->nnodes + 1, sizeof(*v->coming));
	v->standby = calloc(v->nnodes + 1, sizeof(*v->standby));
	usable = calloc(v->nnodes + 1, sizeof(*usable));
	v->fp = calloc(v->npods, sizeof(*v->fp));
	if (v->coming == NULL || v->standby == NULL || usable == NULL || v->fp == NULL) {
		free(usable);
		return -ENOMEM;
	}
	for (size_t i = 0; i < v->nnodes; i++) {
		const struct node_info *n = v->nodes[i];
		enum pool_node_kind kind = pool_node_classify(n, v->pool, v->now);
		bool running = nodestate_parse(n->state) == NODESTATE_RUNNING && n->deleted_ms == 0;

		if (!v->have_alloc && n->allocatable.pods > 0) {
			resources_copy(&v->alloc, &n->allocatable);
			v->have_alloc = true;
		}
		v->running += running;
		if (kind == POOL_NODE_STARTING)
			v->coming[v->nreservable++] = n;
		else if (kind == POOL_NODE_STANDBY)
			v->standby[v->nstandby++] = n;
		/*
		 * Made usable for pods so recently that they may not be bound
		 * yet (a usable node's pods reach it one scheduling cycle later).
		 */
		else if (kind == POOL_NODE_USABLE && running && n->started_at_ms != 0 &&
		    v->now - n->state_since_ms < CONTROLLER_FALLBACK_COVER_MS)
			usable[nusable++] = n;
	}
	if (v->nreservable > 1)
		qsort(v->coming, v->nreservable, sizeof(*v->coming), fallback__starting_cmp);
	for (size_t i = 0; i < nusable; i++)
		v->coming[v->nreservable + i] = usable[i];
	free(usable);
	v->ncoming = v->nreservable + nusable;
	v->bins = calloc(v->ncoming + 1, sizeof(*v->bins));
	v->held = calloc(v->ncoming + 1, sizeof(*v->held));
	v->nheld = calloc(v->ncoming + 1, sizeof(*v->nheld));
	if (v->bins == NULL || v->held == NULL || v->nheld == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < v->ncoming; i++) {
		v->bins[i].alloc = &v->coming[i]->allocatable;
		if (placement_used(c->ctx.pods, v->coming[i], NULL, &v->bins[i].used, &v->held[i],
		    &v->nheld[i], NULL) < 0) {
			/* Promises that cannot be read or counted: no room to promise there. */
			resources_sum_init(&v->bins[i].used);
			v->bins[i].used.pods = v->coming[i]->allocatable.pods;
		}
	}
	/* The standby nodes in the order they would be claimed; a new node runs what the first runs. */
	if (v->nstandby > 0) {
		struct claim_zones zones;
		claim_zone_load(c->ctx.nodes, v->pool->name, &zones);
		claim_rank_standby(v->standby, v->nstandby, NULL, v->pods[0]->owner_key, &zones);
		v->have_base = placement_used(c->ctx.pods, v->standby[0], NULL, &v->base,
		    &v->base_held, &v->nbase_held, NULL) == 0;
	}
	for (size_t i = 0; i < v->npods; i++)
		v->fp[i] = (struct fallback_pod){ &v->pods[i]->requests, fallback__acts(v, v->pods[i]) };
	in = (struct fallback_in){
		.alloc = v->have_alloc ? &v->alloc : NULL,
		.base = v->have_base ? &v->base : NULL,
		.pods = v->fp, .npods = v->npods,
		.coming = v->bins, .ncoming = v->ncoming, .nreservable = v->nreservable,
		.standby = (unsigned)v->nstandby,
		.room = (long)v->pool->pool_size - (long)v->running,
	};
	rc = fallback_decide(&in, &v->plan);
	return rc;
}

int
fallback_waiting(struct controller *c, const struct nodepool *pool, int64_t now_ms,
    struct fallback_need *out)
{
	struct fallback__view v = { .ctl = c, .pool = pool, .now = now_ms };
	int rc;

	memset(out, 0, sizeof(*out));
	if (pod_cache_pending_count(c->ctx.pods, pool->name) == 0)
		return 0;
	rc = fallback__read(&v);
	if (rc == 0) {
		out->pods = (unsigned)v.npods;
		out->start = v.plan.start;
		out->reserve = v.plan.reserve;
		out->launch = v.plan.launch;
		out->grace_left_ms = v.grace_left_ms;
	}
	fallback__view_free(&v);
	return rc;
}

/* ---- acting on the plan ---- */

static void
fallback__again(struct ctl_pool *cp, int64_t ms)
{
	if (ms < 1)
		ms = 1;
	if (cp->again_ms == 0 || ms < cp->again_ms)
		cp->again_ms = ms;
}

/* Promises room on starting nodes to the pods packed there. Returns the number reserved. */
static unsigned
fallback__reserve(struct ctl_pool *cp, struct fallback__view *v)
{
	const struct pool_ctx *ctx = &cp->ctl->ctx;
	unsigned done = 0;

	for (size_t i = 0; i < v->npods && ctl_acting(cp->run); i++) {
		int w = v->plan.where[i];
		struct kube_error err = { 0 };
		const char *short_of = NULL;
		int rc;

		if (w < 0 || (size_t)w >= v->nreservable)
			continue;
		rc = claim_reserve(ctx, node_info_name(v->coming[w]), v->pods[i], NULL, &short_of,
		    &err);
		if (rc == 0) {
			done++;
			placed_note(ctx->placed, v->pods[i]->uid, cp->pool->name, v->pods[i]->created_ms,
			    true, node_info_name(v->coming[w]));
			continue;
		}
		/* The node moved on (or filled up) meanwhile: the pool looks again at once. */
		fallback__again(cp, rc == -ENOSPC || rc == -ESTALE || rc == -EBUSY || rc == -ENOENT ?
		    1 : CONTROLLER_RETRY_MS);
		ctl_log(rc == -ENOSPC || rc == -ESTALE ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN,
		    cp->pool->name, node_info_name(v->coming[w]), NULL, json_pack("{s:s,s:s,s:s}",
		    "pod", v->pods[i]->obj.key, "short_of", short_of != NULL ? short_of : "",
		    "error", err.message[0] != '\0' ? err.message : strerror(-rc)),
		    "fallback: no reservation on a starting node");
	}
	return done;
}

/*
 * Starts a standby node for each new node of the plan, its pods reserved
 * on it, through the claim module. Returns the number started (or whose
 * start is unconfirmed and kept); stops at the first lost race (another
 * writer changed a standby node: the pool looks again at once).
 */
static unsigned
fallback__start(struct ctl_pool *cp, struct fallback__view *v, unsigned *npods)
{
	const struct pool_ctx *ctx = &cp->ctl->ctx;
	const struct pod_info **pods = NULL;
	const struct node_info **cand = NULL;
	size_t ncand = v->nstandby;
	unsigned started = 0;

	*npods = 0;
	pods = calloc(v->npods + 1, sizeof(*pods));
	cand = calloc(v->nstandby + 1, sizeof(*cand));
	if (pods == NULL || cand == NULL)
		goto out;
	memcpy(cand, v->standby, v->nstandby * sizeof(*cand));
	for (unsigned k = 0; k < v->plan.start && ncand > 0 && ctl_acting(cp->run); k++) {
		struct claim_result res;
		struct claim_start_req req;
		size_t np = 0;
		int rc;

		for (size_t i = 0; i < v->npods; i++)
			if (v->plan.where[i] == (int)(v->ncoming + k) && np < LIMITS_RESERVATIONS_PER_NODE)
				pods[np++] = v->pods[i];
		if (np == 0)
			continue;
		req = (struct claim_start_req){
			.pool = cp->pool->name, .pods = pods, .npods = np,
			.candidates = cand, .ncandidates = ncand,
			.start_budget_ms = CONTROLLER_FALLBACK_START_BUDGET_MS,
			.path = "fallback",
			/* A race lost is another writer's claim (an extender's, maybe for these pods). */
			.stop_on_conflict = true,
		};
		rc = claim_start(ctx, &req, &res);
		if (rc < 0) {
			ctl_log(LOG_LEVEL_WARN, cp->pool->name, NULL, NULL, json_pack("{s:s}", "error",
			    strerror(-rc)), "fallback: cannot start standby nodes");
			fallback__again(cp, CONTROLLER_RETRY_MS);
			break;
		}
		if (res.outcome == CLAIM_LOST) {
			fallback__again(cp, 1);
			break;
		}
		if (res.outcome == CLAIM_NONE) {
			ctl_log(LOG_LEVEL_WARN, cp->pool->name, NULL, NULL, json_pack("{s:i,s:i,s:s,s:s}",
			    "starts", (int)res.starts, "rollbacks", (int)res.rollbacks, "ec2_error",
			    res.last_error.code, "kube_error", res.kube_error.message),
			    "fallback: no standby node could be started");
			fallback__again(cp, CONTROLLER_RETRY_MS);
			break;
		}
		started++;
		*npods += (unsigned)np;
		for (size_t i = 0; i < np; i++)
			placed_note(ctx->placed, pods[i]->uid, cp->pool->name, pods[i]->created_ms, true,
			    res.node);
		ctl_log(res.outcome == CLAIM_STARTED ? LOG_LEVEL_INFO : LOG_LEVEL_WARN, cp->pool->name,
		    res.node, res.instance, json_pack("{s:s,s:i,s:I,s:s}", "pod", pods[0]->obj.key,
		    "pods", (int)np, "start_ms", (json_int_t)res.start_ms, "outcome",
		    claim_outcome_name(res.outcome)),
		    "fallback: standby node started for pods the scheduler could not place");
		/* Ours now: the next node is claimed among the others. */
		for (size_t j = 0; j < ncand; j++) {
			if (strcmp(node_info_name(cand[j]), res.node) == 0) {
				memmove(&cand[j], &cand[j + 1], (ncand - j - 1) * sizeof(*cand));
				ncand--;
				break;
			}
		}
	}
out:
	free(pods);
	free(cand);
	return started;
}

/* "ns/pod→where ..." for the log: a node's name, +k (the k-th standby start), or a word. */
static void
fallback__plan_text(const struct fallback__view *v, char *out, size_t len)
{
	size_t off = 0;

	out[0] = '\0';
	for (size_t i = 0; i < v->npods && off + 1 < len; i++) {
		int w = v->plan.where[i];
		char where[280];
		int n;

		if (w >= 0 && (size_t)w < v->ncoming)
			snprintf(where, sizeof(where), "%s", node_info_name(v->coming[w]));
		else if (w >= 0)
			snprintf(where, sizeof(where), "+%zu", (size_t)w - v->ncoming);
		else
			snprintf(where, sizeof(where), "%s", w == FALLBACK_COVERED ? "covered" :
			    w == FALLBACK_LAUNCH ? "launch" : "no-fit");
		n = snprintf(out + off, len - off, "%s%s→%s", off > 0 ? " " : "", v->pods[i]->obj.key,
		    where);
		if (n < 0 || (size_t)n >= len - off) {
			out[off] = '\0';
			break;
		}
		off += (size_t)n;
	}
}

int
fallback_reconcile(struct ctl_pool *cp, unsigned *launch)
{
	struct controller *c = cp->ctl;
	struct fallback__view v = { .ctl = c, .pool = cp->pool, .now = cp->now };
	unsigned reserved = 0, started = 0, for_pods = 0;
	struct ctl_poolmem *serve;
	int rc;

	*launch = 0;
	if (pod_cache_pending_count(c->ctx.pods, cp->pool->name) == 0)
		return 0;
	serve = ctl_serve_lock(c, cp->pool->name);
	if ((rc = fallback__read(&v)) < 0)
		goto out;
	if ((v.plan.reserve > 0 || v.plan.start > 0) && ctl_acting(cp->run)) {
		struct kube_error err = { 0 };
		/*
		 * About to write promises and start machines: look at the pool as
		 * the API server has it now (another replica's extender may have
		 * claimed a node for these pods a moment ago), and decide again.
		 */
		if (claim_refresh_pool(&c->ctx, cp->pool->name, &err) >= 0) {
			fallback__view_free(&v);
			v.now = time_real_ms();
			if ((rc = fallback__read(&v)) < 0)
				goto out;
		}
		reserved = fallback__reserve(cp, &v);
		started = fallback__start(cp, &v, &for_pods);
	}
	*launch = v.plan.launch;
	if (v.grace_left_ms > 0)
		fallback__again(cp, v.grace_left_ms);
	if (started > 0)
		ctl_event_pool(cp->run, cp->pool, "Normal", CTL_EV_SCALED_UP, "Start",
		    "Started %u standby node(s) for %u pending pod(s) the scheduler could not place "
		    "(fallback path)", started, for_pods);
	if (v.npods > 0 && log_enabled(reserved > 0 || started > 0 ? LOG_LEVEL_INFO :
	    LOG_LEVEL_DEBUG)) {
		char plan[512];

		fallback__plan_text(&v, plan, sizeof(plan));
		ctl_log(reserved > 0 || started > 0 ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG, cp->pool->name, NULL, NULL,
		    json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:s}", "pending_pods", (int)v.npods,
		    "reserved", (int)reserved, "started", (int)started, "standby_held",
		    (int)v.plan.standby_held, "launch", (int)v.plan.launch, "no_fit",
		    (int)v.plan.no_fit, "coming", (int)v.ncoming, "plan", plan), "fallback pass");
	}
out:
	ctl_serve_unlock(serve);
	fallback__view_free(&v);
	return rc;
}
