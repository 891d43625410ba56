/* The extender's decision for a pool pod (DESIGN §6.3 steps 1–3), read from the caches only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/claim.h"
#include "stratos/placement.h"

const char *
placement_action_name(enum placement_action a)
{
	static const char *const names[] = { "usable", "wait", "reserve", "claim", "no-capacity" };

	return (unsigned)a < sizeof(names) / sizeof(names[0]) ? names[a] : "unknown";
}

size_t
placement_split_pools(char *buf, struct placement_pod *pod)
{
	char *save = NULL;

	pod->npools = 0;
	for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		if (t[0] == '\0' || pod->npools == LIMITS_EXTENDER_POOLS)
			continue;
		pod->pools[pod->npools++] = t;
	}
	return pod->npools;
}

/* ---- what is promised on a node ---- */

bool
placement_reservation_alive(struct pod_cache *pods, const struct reservation *e)
{
	char ns[CACHE_KEY_MAX];
	const char *slash = strchr(e->pod, '/');
	struct pod_info *p;
	bool alive;

	if (pods == NULL || slash == NULL || (size_t)(slash - e->pod) >= sizeof(ns))
		return true;
	memcpy(ns, e->pod, (size_t)(slash - e->pod));
	ns[slash - e->pod] = '\0';
	p = pod_cache_get(pods, ns, slash + 1);
	if (p == NULL)
		return true;            /* not seen yet: keep the promise */
	alive = strcmp(p->uid, e->uid) == 0 && pod_info_node(p) == NULL && p->deleted_ms == 0 &&
	    p->phase != POD_PHASE_SUCCEEDED && p->phase != POD_PHASE_FAILED;
	cache_obj_unref(&p->obj);
	return alive;
}

bool
placement_keep_alive(void *ctx, const struct reservation *e)
{
	return placement_reservation_alive(ctx, e);
}

int
placement_reservations(const struct node_info *n, const struct reservations **out)
{
	/* Parsed once when the node was cached (node_info.reserved), never per call. */
	*out = n->reserved;
	return n->reservations_invalid ? -EINVAL : 0;
}

bool
placement_holds(struct pod_cache *pods, const struct node_info *n, const char *uid)
{
	const struct reservations *r = NULL;
	const struct reservation *e;
	bool holds;

	/* Cheap test first: most nodes name no such uid. */
	if (n->reservations == NULL || uid == NULL || uid[0] == '\0' ||
	    strstr(n->reservations, uid) == NULL || placement_reservations(n, &r) < 0)
		return false;
	e = reservations_find(r, uid);
	holds = e != NULL && placement_reservation_alive(pods, e);
	return holds;
}

int
placement_used(struct pod_cache *pods, const struct node_info *n, const char *except_uid,
    struct resources_sum *used, struct cache_obj ***held, size_t *nheld, const char **short_of)
{
	const struct reservations *r = NULL;
	struct cache_obj **objs = NULL;
	long count = 0;
	int rc = 0;

	*held = NULL;
	*nheld = 0;
	if (short_of != NULL)
		*short_of = "reservations";
	resources_sum_init(used);
	if (placement_reservations(n, &r) < 0)
		return -EINVAL;         /* unreadable promises leave no room to promise more */
	if (pods != NULL && (count = cache_snapshot(pod_cache_base(pods), node_info_name(n),
	    &objs)) < 0)
		return (int)count;
	for (long i = 0; i < count && rc == 0; i++) {
		const struct pod_info *p = (const struct pod_info *)objs[i];
		if (p->phase != POD_PHASE_SUCCEEDED && p->phase != POD_PHASE_FAILED)
			rc = resources_sum_add(used, &p->requests);
	}
	/* The promises still alive, the pod's own aside. */
	for (size_t i = 0; rc == 0 && r != NULL && i < r->n; i++) {
		const struct reservation *e = &r->item[i];
		if ((except_uid != NULL && strcmp(e->uid, except_uid) == 0) ||
		    !placement_reservation_alive(pods, e))
			continue;
		rc = resources_sum_add(used, &e->requests);
	}
	if (rc < 0) {
		if (short_of != NULL)
			*short_of = "extended resources";
		cache_objs_free(objs, (size_t)count);
		return rc;
	}
	*held = objs;
	*nheld = (size_t)count;
	return 0;
}

bool
placement_fits(struct pod_cache *pods, const struct node_info *n, const char *uid,
    const struct resources *requests, const char **short_of)
{
	struct resources_sum used;
	struct cache_obj **held;
	size_t nheld;
	bool fits;

	if (placement_used(pods, n, uid, &used, &held, &nheld, short_of) < 0)
		return false;
	/* The scheduler's per-pod check, while the pods whose names the sum borrows are held. */
	fits = resources_sum_fits_pod(&used, requests, &n->allocatable, short_of);
	cache_objs_free(held, nheld);
	return fits;
}

/* Whether n's live reservations hold anything for pods other than uid. */
static bool
placement__others_reserved(struct pod_cache *pods, const struct node_info *n, const char *uid)
{
	const struct reservations *r = NULL;
	bool others = false;

	/* A malformed annotation counts as no reservation (reservations.h): the node stays usable. */
	if (n->reservations == NULL || placement_reservations(n, &r) < 0)
		return false;
	for (size_t i = 0; r != NULL && i < r->n && !others; i++)
		others = (uid == NULL || strcmp(r->item[i].uid, uid) != 0) &&
		    placement_reservation_alive(pods, &r->item[i]);
	return others;
}

/* ---- classification for a pod of one or several pools ---- */

static const struct nodepool *
placement__pool(const struct placement_in *in, const char *name)
{
	return in->snap != NULL ? pools_find_nodepool(in->snap, name) : NULL;
}

/* Index of name in the pod's pools, or -1. */
static int
placement__pool_index(const struct placement_pod *pod, const char *name)
{
	for (size_t i = 0; name != NULL && i < pod->npools; i++)
		if (strcmp(pod->pools[i], name) == 0)
			return (int)i;
	return -1;
}

static void
placement__classify(const struct placement_in *in, const struct placement_pod *pod,
    struct placement_node *c)
{
	const struct node_info *n = c->node;
	const char *own = node_info_pool(n);
	int idx;

	c->pool = NULL;
	if (own != NULL) {
		idx = placement__pool_index(pod, own);
		if (idx < 0) {
			c->kind = pool_node_classify(n, NULL, in->now_ms);
			return;
		}
		c->pool = placement__pool(in, own);
		/* A pool the daemon does not know: its nodes cannot be judged, so none is used. */
		c->kind = c->pool != NULL ? pool_node_classify(n, c->pool, in->now_ms) :
		    n->deleted_ms != 0 ? POOL_NODE_DELETING : POOL_NODE_UNMANAGED;
		return;
	}
	/* A node of no pool must show none of the taints any of the pod's pools made it tolerate. */
	c->kind = pool_node_classify(n, NULL, in->now_ms);
	for (size_t i = 0; i < pod->npools && c->kind == POOL_NODE_USABLE; i++) {
		const struct nodepool *np = placement__pool(in, pod->pools[i]);
		if (np != NULL)
			c->kind = pool_node_classify(n, np, in->now_ms);
	}
}

/* ---- the pod's reservation outside the candidates ---- */

struct placement__find {
	const struct placement_in *in;
	const struct nodepool *pool;
	const char *uid;
	struct node_info *found;
};

static int
placement__find_visit(void *ctx, const struct node_info *n)
{
	struct placement__find *f = ctx;

	if (n->reservations == NULL || strstr(n->reservations, f->uid) == NULL ||
	    pool_node_classify(n, f->pool, f->in->now_ms) != POOL_NODE_STARTING)
		return 0;
	/* Parsed outside the cache's lock: take a reference and stop. */
	f->found = (struct node_info *)cache_obj_ref((struct cache_obj *)&n->obj);
	return 1;
}

static struct node_info *
placement__held_elsewhere(const struct placement_in *in, const struct placement_pod *pod,
    const struct nodepool **pool)
{
	for (size_t i = 0; in->nodes != NULL && i < pod->npools; i++) {
		struct placement__find f = { in, placement__pool(in, pod->pools[i]), pod->uid, NULL };
		if (f.pool == NULL)
			continue;
		node_cache_foreach(in->nodes, pod->pools[i], placement__find_visit, &f);
		if (f.found == NULL)
			continue;
		if (placement_holds(in->pods, f.found, pod->uid)) {
			*pool = f.pool;
			return f.found;
		}
		cache_obj_unref(&f.found->obj);
	}
	return NULL;
}

/* ---- the decision ---- */

static int
placement__by_start(const void *a, const void *b)
{
	const struct placement_node *x = *(const struct placement_node *const *)a;
	const struct placement_node *y = *(const struct placement_node *const *)b;

	if (x->node->started_at_ms != y->node->started_at_ms)
		return x->node->started_at_ms < y->node->started_at_ms ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void
placement__drop_reasons(struct placement_node *cand, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (cand[i].reason == NULL)
			cand[i].reason = cand[i].node == NULL ? PLACEMENT_REASON_UNKNOWN_NODE :
			    pool_node_reason(cand[i].kind);
}

/* The zone load of every pool of the pod together. */
static void
placement__zones(const struct placement_in *in, const struct placement_pod *pod,
    struct claim_zones *z)
{
	memset(z, 0, sizeof(*z));
	for (size_t i = 0; in->nodes != NULL && i < pod->npools; i++) {
		struct claim_zones one;
		claim_zone_load(in->nodes, pod->pools[i], &one);
		for (size_t j = 0; j < one.n; j++) {
			size_t k;
			for (k = 0; k < z->n && strcmp(z->zone[k], one.zone[j]) != 0; k++)
				;
			if (k == z->n) {
				if (z->n == CLAIM_ZONES_MAX)
					continue;
				memcpy(z->zone[z->n++], one.zone[j], CLAIM_ZONE_NAME);
			}
			z->running[k] += one.running[j];
		}
	}
}

static int
placement__claim(const struct placement_in *in, const struct placement_pod *pod,
    struct placement_node *cand, size_t n, struct placement *out)
{
	struct claim_zones zones;
	size_t count = 0;

	for (size_t i = 0; i < n; i++)
		count += cand[i].node != NULL && cand[i].kind == POOL_NODE_STANDBY;
	if (count == 0)
		return 0;
	out->standby = calloc(count, sizeof(*out->standby));
	out->standby_rank = calloc(count, sizeof(*out->standby_rank));
	if (out->standby == NULL || out->standby_rank == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (cand[i].node == NULL || cand[i].kind != POOL_NODE_STANDBY)
			continue;
		out->standby[out->nstandby] = cand[i].node;
		out->standby_rank[out->nstandby++] =
		    (unsigned)placement__pool_index(pod, node_info_pool(cand[i].node));
	}
	placement__zones(in, pod, &zones);
	claim_rank_standby(out->standby, out->nstandby, out->standby_rank, pod->owner_key, &zones);
	out->pool = placement__pool(in, node_info_pool(out->standby[0]));
	out->pool_name = node_info_pool(out->standby[0]);
	out->action = PLACEMENT_CLAIM;
	return 0;
}

int
placement_decide(const struct placement_in *in, const struct placement_pod *pod,
    struct placement_node *cand, size_t n, struct placement *out)
{
	struct placement_node **starting = NULL;
	size_t nstarting = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->action = PLACEMENT_NO_CAPACITY;
	out->pool_name = pod->npools > 0 ? pod->pools[0] : "";
	for (size_t i = 0; i < pod->npools && out->pool == NULL; i++)
		if ((out->pool = placement__pool(in, pod->pools[i])) != NULL)
			out->pool_name = pod->pools[i];

	/* 1. Usable nodes, unless their room is promised to others. */
	for (size_t i = 0; i < n; i++) {
		struct placement_node *c = &cand[i];
		c->reason = NULL;
		if (c->node == NULL) {
			c->kind = POOL_NODE_NOT_READY;
			c->reason = PLACEMENT_REASON_UNKNOWN_NODE;
			continue;
		}
		placement__classify(in, pod, c);
		if (c->kind != POOL_NODE_USABLE) {
			c->reason = pool_node_reason(c->kind);
			continue;
		}
		if (placement__others_reserved(in->pods, c->node, pod->uid) &&
		    !placement_fits(in->pods, c->node, pod->uid, pod->requests, NULL)) {
			c->reason = PLACEMENT_REASON_ROOM_RESERVED;
			continue;
		}
		out->noffered++;
	}
	if (out->noffered > 0) {
		out->action = PLACEMENT_USABLE;
		return 0;
	}

	/* 2a. The pod's own promise on a starting node: capacity is coming already. */
	for (size_t i = 0; i < n; i++) {
		if (cand[i].node != NULL && cand[i].kind == POOL_NODE_STARTING &&
		    placement_holds(in->pods, cand[i].node, pod->uid)) {
			out->target = (struct node_info *)cache_obj_ref((struct cache_obj *)&cand[i].node->obj);
			out->target_is_candidate = true;
			out->pool = cand[i].pool;
			out->pool_name = node_info_pool(cand[i].node);
			out->action = PLACEMENT_WAIT;
			return 0;
		}
	}
	if ((out->target = placement__held_elsewhere(in, pod, &out->pool)) != NULL) {
		out->pool_name = node_info_pool(out->target);
		out->action = PLACEMENT_WAIT;
		return 0;
	}

	/* 2b. Room on a starting node, the earliest started first (first fit). */
	if (n > 0 && (starting = calloc(n, sizeof(*starting))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (cand[i].node != NULL && cand[i].kind == POOL_NODE_STARTING)
			starting[nstarting++] = &cand[i];
	if (nstarting > 1)
		qsort(starting, nstarting, sizeof(*starting), placement__by_start);
	for (size_t i = 0; i < nstarting; i++) {
		if (placement_fits(in->pods, starting[i]->node, pod->uid, pod->requests, NULL)) {
			out->target = (struct node_info *)cache_obj_ref(
			    (struct cache_obj *)&starting[i]->node->obj);
			out->target_is_candidate = true;
			out->pool = starting[i]->pool;
			out->pool_name = node_info_pool(starting[i]->node);
			out->action = PLACEMENT_RESERVE;
			break;
		}
	}
	free(starting);

	/* 2c. A standby node to claim. */
	if (out->action == PLACEMENT_NO_CAPACITY)
		rc = placement__claim(in, pod, cand, n, out);
	placement__drop_reasons(cand, n);
	return rc;
}

void
placement_free(struct placement *p)
{
	if (p == NULL)
		return;
	if (p->target != NULL)
		cache_obj_unref(&p->target->obj);
	free(p->standby);
	free(p->standby_rank);
	memset(p, 0, sizeof(*p));
}
