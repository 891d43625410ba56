/* Fallback scale-up (DESIGN §5.5): waiting pool pods packed into nodes first-fit-decreasing, and how many nodes they still need. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "controller_internal.h"
#include "stratos/fallback.h"
#include "stratos/nodestate.h"
#include "stratos/pool_node.h"

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

long
fallback_pack(const struct resources *alloc, const struct resources_sum *base,
    const struct resources *const *pods, size_t n, size_t max_bins, int *assign)
{
	struct fallback__item *items = NULL;
	struct resources_sum *bins = NULL;
	size_t nbins = 0;
	long rc = 0;

	for (size_t i = 0; i < n; i++)
		assign[i] = -1;
	if (n == 0)
		return 0;
	items = calloc(n, sizeof(*items));
	bins = calloc(max_bins + 1, sizeof(*bins));
	if (items == NULL || bins == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		items[i] = (struct fallback__item){ pods[i], i };
	qsort(items, n, sizeof(*items), fallback__cmp);
	for (size_t k = 0; k < n; k++) {
		const struct resources *req = items[k].req;
		size_t b;

		for (b = 0; b < nbins; b++)
			if (resources_sum_fits_pod(&bins[b], req, alloc, NULL))
				break;
		if (b == nbins) {
			/* A new node: only if the pod fits an empty one at all. */
			if (nbins == max_bins)
				continue;
			if (base != NULL)
				bins[nbins] = *base;
			else
				resources_sum_init(&bins[nbins]);
			if (!resources_sum_fits_pod(&bins[nbins], req, alloc, NULL))
				continue;
			nbins++;
		}
		if (resources_sum_add(&bins[b], req) < 0) {
			rc = -E2BIG;
			goto out;
		}
		assign[items[k].index] = (int)b;
	}
	rc = (long)nbins;
out:
	free(items);
	free(bins);
	return rc;
}

/* ---- the pool's waiting pods (impure: the caches) ---- */

struct fallback__scan {
	struct controller *ctl;
	const struct pod_info **pods;
	size_t n, max;
};

/* A pool pod the scheduler could not place and that holds no promise of room. */
static int
fallback__pod(void *ctx, const struct pod_info *p)
{
	struct fallback__scan *s = ctx;

	if (p->scheduled != KUBE_COND_FALSE || p->sched_reason != POD_SCHED_REASON_UNSCHEDULABLE ||
	    p->deleted_ms != 0 || s->n == s->max)
		return 0;
	if (ctl_map_get(s->ctl->reserved, p->obj.key, NULL, 0, NULL) == 0)
		return 0;
	s->pods[s->n++] = (const struct pod_info *)cache_obj_ref((struct cache_obj *)&p->obj);
	return 0;
}

struct fallback__nodes {
	const struct nodepool *pool;
	int64_t now;
	unsigned starting;
	struct resources alloc;      /* of one of the pool's nodes (all share the class) */
	bool have_alloc;
};

static int
fallback__node(void *ctx, const struct node_info *n)
{
	struct fallback__nodes *f = ctx;

	if (!f->have_alloc && n->allocatable.pods > 0) {
		resources_copy(&f->alloc, &n->allocatable);
		f->have_alloc = true;
	}
	/*
	 * Capacity already on its way: a node starting, or one started for
	 * pods so recently that they may not be bound yet (a usable node's
	 * pods reach it one scheduling cycle later).
	 */
	if (pool_node_classify(n, f->pool, f->now) == POOL_NODE_STARTING ||
	    (nodestate_parse(n->state) == NODESTATE_RUNNING && n->started_at_ms != 0 &&
	    f->now - n->state_since_ms < CONTROLLER_FALLBACK_COVER_MS))
		f->starting++;
	return 0;
}

int
fallback_waiting(struct controller *c, const struct nodepool *pool, int64_t now_ms,
    struct fallback_need *out)
{
	struct fallback__scan s = { .ctl = c, .max = LIMITS_FALLBACK_PODS };
	struct fallback__nodes f = { .pool = pool, .now = now_ms };
	const struct resources **reqs = NULL;
	int *assign = NULL;
	long bins;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (pod_cache_pending_count(c->ctx.pods, pool->name) == 0)
		return 0;
	s.pods = calloc(s.max, sizeof(*s.pods));
	if (s.pods == NULL)
		return -ENOMEM;
	pod_cache_foreach_pending(c->ctx.pods, pool->name, fallback__pod, &s);
	node_cache_foreach(c->ctx.nodes, pool->name, fallback__node, &f);
	out->pods = (unsigned)s.n;
	out->starting = f.starting;
	if (s.n == 0)
		goto out;
	reqs = calloc(s.n, sizeof(*reqs));
	assign = calloc(s.n, sizeof(*assign));
	if (reqs == NULL || assign == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < s.n; i++)
		reqs[i] = &s.pods[i]->requests;
	/* No node of the pool yet to learn its size from: a node per pod, to be sure. */
	bins = f.have_alloc ? fallback_pack(&f.alloc, NULL, reqs, s.n, s.n, assign) : (long)s.n;
	if (bins < 0) {
		rc = (int)bins;
		goto out;
	}
	out->nodes = (unsigned)bins;
out:
	for (size_t i = 0; i < s.n; i++)
		cache_obj_unref((struct cache_obj *)&s.pods[i]->obj);
	if (f.have_alloc)
		resources_release(&f.alloc);
	free(s.pods);
	free(reqs);
	free(assign);
	return rc;
}
