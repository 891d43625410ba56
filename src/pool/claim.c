/* Claiming and starting standby nodes, promising room on starting ones, and giving both back. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "stratos/claim.h"
#include "stratos/jsonprune.h"
#include "stratos/kube_recorder.h"
#include "stratos/metrics.h"
#include "stratos/placement.h"
#include "stratos/pool_node.h"
#include "stratos/pools.h"
#include "stratos/reservations.h"
#include "stratos/timeutil.h"

/* ---- metrics (registered once, owned by this module) ---- */

static struct {
	pthread_once_t once;
	struct metrics_family *scaleups;
	struct metrics_family *claims;
	struct metrics_family *reservations;
} claim__m = { .once = PTHREAD_ONCE_INIT };

static void
claim__metrics_init(void)
{
	static const char *const pool_path[] = { "pool", "path", NULL };
	static const char *const pool_result[] = { "pool", "result", NULL };

	claim__m.scaleups = metrics_register(METRICS_COUNTER, "stratos_scaleup_total",
	    "Standby nodes started, by pool and path (inline: in the scheduler's filter call; "
	    "fallback: by the controller).", pool_path, NULL, 0);
	claim__m.claims = metrics_register(METRICS_COUNTER, "stratos_claims_total",
	    "Claims of standby nodes by result: started, unknown-outcome (kept), conflict (another "
	    "replica was first), rolled-back, or the class of the EC2 error that failed the start.",
	    pool_result, NULL, 0);
	claim__m.reservations = metrics_register(METRICS_COUNTER, "stratos_reservations_total",
	    "Reservation writes on starting nodes by result: reserved, released, no-room, conflict.",
	    pool_result, NULL, 0);
}

static void
claim__count(struct metrics_family **f, const char *pool, const char *what)
{
	pthread_once(&claim__m.once, claim__metrics_init);
	metrics_counter_add(*f, 1, pool != NULL ? pool : "", what);
}

const char *
claim_outcome_name(enum claim_outcome o)
{
	static const char *const names[] = { "started", "start-unknown", "lost", "none" };

	return (unsigned)o < sizeof(names) / sizeof(names[0]) ? names[o] : "unknown";
}

/* ---- verifying the pod ---- */

bool
claim_pod_in_pool(const struct pod_info *pod, const char *pool)
{
	size_t len = pool != NULL ? strlen(pool) : 0;
	const char *p = pod->pool;

	if (p == NULL || len == 0)
		return false;
	while (*p != '\0') {
		size_t n = strcspn(p, ",");
		if (n == len && strncmp(p, pool, len) == 0)
			return true;
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

/* One GET of the pod, written through to the cache; the parsed pod in *out. */
static int
claim__get_pod(const struct pool_ctx *ctx, const char *ns, const char *name,
    struct pod_info **out, struct kube_error *err)
{
	char path[KUBE_PATH_MAX];
	json_t *obj = NULL;
	int rc;

	*out = NULL;
	if ((rc = kube_path(path, &KUBE_PODS, ns, name, NULL)) < 0)
		return rc;
	if ((rc = kube_get(ctx->kube, path, &obj, err)) < 0)
		return rc;
	*out = pod_info_parse(obj, &rc);
	if (*out != NULL && ctx->pods != NULL)
		(void)cache_apply(pod_cache_base(ctx->pods), obj);
	json_decref(obj);
	return *out != NULL ? 0 : rc;
}

static void
claim__why(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
claim__why(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

int
claim_verify_pod(const struct pool_ctx *ctx, const char *ns, const char *name,
    const char *uid, const char *pool, struct pod_info **out, char *why, size_t whylen)
{
	struct kube_error err = { 0 };
	struct pod_info *p = NULL;
	int rc = 0;

	*out = NULL;
	claim__why(why, whylen, "verified");
	if (ns == NULL || name == NULL || uid == NULL || uid[0] == '\0' || pool == NULL ||
	    ns[0] == '\0' || name[0] == '\0') {
		claim__why(why, whylen, "the call names no pod (namespace, name and uid)");
		return -EINVAL;
	}
	if (ctx->pods != NULL)
		p = pod_cache_get(ctx->pods, ns, name);
	if (p == NULL || strcmp(p->uid, uid) != 0) {
		/* Not seen yet, or the cache still holds an older pod of that name: ask. */
		if (p != NULL)
			cache_obj_unref(&p->obj);
		if (ctx->kube == NULL) {
			claim__why(why, whylen, "pod %s/%s is not known", ns, name);
			return -ENOENT;
		}
		rc = claim__get_pod(ctx, ns, name, &p, &err);
		if (rc == -ENOENT) {
			claim__why(why, whylen, "pod %s/%s does not exist", ns, name);
			return rc;
		}
		if (rc < 0) {
			claim__why(why, whylen, "pod %s/%s could not be read: %s", ns, name,
			    err.message[0] != '\0' ? err.message : strerror(-rc));
			return rc;
		}
	}
	if (strcmp(p->uid, uid) != 0) {
		claim__why(why, whylen, "pod %s/%s has uid %s, not %s", ns, name, p->uid, uid);
		rc = -ENOENT;
	} else if (pod_info_node(p) != NULL) {
		claim__why(why, whylen, "pod %s/%s is bound to %s already", ns, name, pod_info_node(p));
		rc = -EALREADY;
	} else if (p->deleted_ms != 0 || p->phase == POD_PHASE_SUCCEEDED ||
	    p->phase == POD_PHASE_FAILED) {
		claim__why(why, whylen, "pod %s/%s is being deleted or has finished", ns, name);
		rc = -ECANCELED;
	} else if (!claim_pod_in_pool(p, pool)) {
		claim__why(why, whylen, "pod %s/%s is not a pool pod of %s", ns, name, pool);
		rc = -EPERM;
	}
	if (rc < 0) {
		cache_obj_unref(&p->obj);
		return rc;
	}
	*out = p;
	return 0;
}

/* ---- ranking standby nodes ---- */

struct claim__zone_visit {
	struct claim_zones *z;
};

static int
claim__zone_visit(void *ctx, const struct node_info *n)
{
	struct claim_zones *z = ctx;
	const char *zone = n->zone != NULL ? n->zone : "";
	size_t i;

	if (n->deleted_ms != 0 || nodestate_parse(n->state) != NODESTATE_RUNNING)
		return 0;
	for (i = 0; i < z->n && strcmp(z->zone[i], zone) != 0; i++)
		;
	if (i == z->n) {
		if (z->n == CLAIM_ZONES_MAX)
			return 0;
		snprintf(z->zone[z->n++], CLAIM_ZONE_NAME, "%s", zone);
	}
	z->running[i]++;
	return 0;
}

void
claim_zone_load(struct node_cache *nodes, const char *pool, struct claim_zones *out)
{
	memset(out, 0, sizeof(*out));
	if (nodes != NULL && pool != NULL)
		node_cache_foreach(nodes, pool, claim__zone_visit, out);
}

static unsigned
claim__zone_running(const struct claim_zones *z, const struct node_info *n)
{
	const char *zone = n->zone != NULL ? n->zone : "";

	for (size_t i = 0; z != NULL && i < z->n; i++)
		if (strcmp(z->zone[i], zone) == 0)
			return z->running[i];
	return 0;
}

struct claim__ranked {
	const struct node_info *node;
	unsigned rank;
	bool affinity;
	int64_t bucket;
	unsigned zone_running;
};

static int
claim__rank_cmp(const void *a, const void *b)
{
	const struct claim__ranked *x = a, *y = b;

	if (x->affinity != y->affinity)
		return x->affinity ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	if (x->bucket != y->bucket)
		return x->bucket > y->bucket ? -1 : 1;
	if (x->zone_running != y->zone_running)
		return x->zone_running < y->zone_running ? -1 : 1;
	if (x->node->state_since_ms != y->node->state_since_ms)
		return x->node->state_since_ms > y->node->state_since_ms ? -1 : 1;
	return strcmp(node_info_name(x->node), node_info_name(y->node));
}

void
claim_rank_standby(const struct node_info **nodes, size_t n, const unsigned *rank,
    const char *owner_key, const struct claim_zones *zones)
{
	struct claim__ranked *r;

	if (n < 2)
		return;
	r = calloc(n, sizeof(*r));
	if (r == NULL)
		return;                 /* unranked is still a valid order */
	for (size_t i = 0; i < n; i++) {
		r[i].node = nodes[i];
		r[i].rank = rank != NULL ? rank[i] : 0;
		r[i].affinity = owner_key != NULL && nodes[i]->last_workload != NULL &&
		    strcmp(nodes[i]->last_workload, owner_key) == 0;
		r[i].bucket = nodes[i]->state_since_ms / CLAIM_RECENCY_BUCKET_MS;
		r[i].zone_running = claim__zone_running(zones, nodes[i]);
	}
	qsort(r, n, sizeof(*r), claim__rank_cmp);
	for (size_t i = 0; i < n; i++) {
		nodes[i] = r[i].node;
		if (rank != NULL)
			((unsigned *)rank)[i] = r[i].rank;
	}
	free(r);
}

int
claim_instance_id(const struct node_info *n, char *out, size_t len)
{
	const char *id = n->instance_id;

	/* spec.providerID: aws:///<zone>/<instance-id> */
	if (id == NULL && n->provider_id != NULL && strncmp(n->provider_id, "aws://", 6) == 0) {
		const char *slash = strrchr(n->provider_id, '/');
		if (slash != NULL && strncmp(slash + 1, "i-", 2) == 0)
			id = slash + 1;
	}
	if (id == NULL || strncmp(id, "i-", 2) != 0 || strlen(id) >= len)
		return -ENOENT;
	snprintf(out, len, "%s", id);
	return 0;
}

/* ---- writes ---- */

static void
claim__rv(const struct node_info *n, char out[24])
{
	snprintf(out, 24, "%llu", (unsigned long long)n->obj.rv);
}

/* Reads the node again from the API server after a lost race; the cache gets it too. */
static struct node_info *
claim__reread(const struct pool_ctx *ctx, const char *name, struct kube_error *err, int *rc)
{
	char path[KUBE_PATH_MAX];
	json_t *obj = NULL;
	struct node_info *n;

	if ((*rc = kube_path(path, &KUBE_NODES, NULL, name, NULL)) < 0)
		return NULL;
	if ((*rc = kube_get(ctx->kube, path, &obj, err)) < 0)
		return NULL;
	(void)cache_apply(node_cache_base(ctx->nodes), obj);
	n = node_info_parse(obj, rc);
	json_decref(obj);
	return n;
}

/* The nodepool of n's pool in the current snapshot (a reference to the snapshot in *snap). */
static const struct nodepool *
claim__pool_of(const struct pool_ctx *ctx, const struct node_info *n,
    const struct pools_snapshot **snap)
{
	*snap = ctx->pools != NULL ? pools_acquire(ctx->pools) : NULL;
	return *snap != NULL && node_info_pool(n) != NULL ?
	    pools_find_nodepool(*snap, node_info_pool(n)) : NULL;
}

static enum pool_node_kind
claim__kind(const struct pool_ctx *ctx, const struct node_info *n)
{
	const struct pools_snapshot *snap;
	const struct nodepool *pool = claim__pool_of(ctx, n, &snap);
	enum pool_node_kind k = pool_node_classify(n, pool, time_real_ms());

	pools_release(snap);
	return k;
}

/* The claim PATCH: DESIGN §4's transition standby → running, with the pods' reservations. */
static json_t *
claim__claim_patch(const struct node_info *n, const struct pod_info *const *pods, size_t npods,
    int64_t now_ms, int *rc)
{
	struct reservations *acc = NULL;
	struct node_patch p;
	char when[TIME_RFC3339_LEN], *text = NULL;

	time_format_rfc3339(now_ms, when);
	/* One list for every pod, built entry by entry. */
	for (size_t i = 0; i < npods; i++) {
		struct reservation add = { .uid = pods[i]->uid, .pod = pods[i]->obj.key,
		    .requests = pods[i]->requests, .since_ms = now_ms };
		char *next = NULL;

		*rc = reservations_with(acc, &add, &next);
		reservations_free(acc);
		acc = NULL;
		if (*rc == 0)
			*rc = reservations_parse(next, &acc);
		free(text);
		text = next;
		if (*rc < 0) {
			reservations_free(acc);
			free(text);
			return NULL;
		}
	}
	reservations_free(acc);
	node_patch_init(&p, n);
	node_patch_set_label(&p, NODESTATE_LABEL_STATE, nodestate_name(NODESTATE_RUNNING));
	node_patch_set_annotation(&p, NODESTATE_ANN_STATE_SINCE, when);
	node_patch_set_annotation(&p, NODESTATE_ANN_STARTED_AT, when);
	node_patch_set_annotation(&p, NODESTATE_ANN_STARTED_FOR, pods[0]->obj.key);
	if (pods[0]->owner_key != NULL)
		node_patch_set_annotation(&p, NODESTATE_ANN_LAST_WORKLOAD, pods[0]->owner_key);
	node_patch_set_annotation(&p, NODESTATE_ANN_RESERVATIONS, text);
	node_patch_remove_annotation(&p, NODESTATE_ANN_EMPTY_SINCE);
	node_patch_remove_taint(&p, NODESTATE_TAINT_STANDBY);
	free(text);
	return node_patch_take(&p, rc);
}

/* Restores annotation key to before's value, or removes it. */
static void
claim__restore(struct node_patch *p, const struct node_info *before, const char *key)
{
	const char *v = before != NULL ? node_info_annotation(before, key) : NULL;

	if (v != NULL)
		node_patch_set_annotation(p, key, v);
	else
		node_patch_remove_annotation(p, key);
}

/* Whether cur is still the claim made as claimed (no other transition since). */
static bool
claim__still_ours(const struct node_info *cur, const struct node_info *claimed)
{
	return nodestate_parse(cur->state) == NODESTATE_RUNNING &&
	    cur->started_at_ms == claimed->started_at_ms &&
	    (cur->started_for == NULL) == (claimed->started_for == NULL) &&
	    (cur->started_for == NULL || strcmp(cur->started_for, claimed->started_for) == 0);
}

int
claim_rollback(const struct pool_ctx *ctx, const struct node_info *claimed,
    const struct node_info *before, struct kube_error *err)
{
	struct node_info *cur = node_cache_get(ctx->nodes, node_info_name(claimed));
	int rc = -EBUSY;

	if (cur == NULL)
		return -ENOENT;
	for (unsigned i = 0; i < LIMITS_CLAIM_RETRIES && rc == -EBUSY; i++) {
		struct node_patch p;
		char rv[24];
		json_t *patch;

		if (i > 0) {
			cache_obj_unref(&cur->obj);
			if ((cur = claim__reread(ctx, node_info_name(claimed), err, &rc)) == NULL)
				return rc;
		}
		if (!claim__still_ours(cur, claimed)) {
			rc = -ESTALE;
			break;
		}
		node_patch_init(&p, cur);
		node_patch_set_label(&p, NODESTATE_LABEL_STATE, nodestate_name(NODESTATE_STANDBY));
		claim__restore(&p, before, NODESTATE_ANN_STATE_SINCE);
		claim__restore(&p, before, NODESTATE_ANN_STARTED_AT);
		claim__restore(&p, before, NODESTATE_ANN_STARTED_FOR);
		claim__restore(&p, before, NODESTATE_ANN_LAST_WORKLOAD);
		node_patch_remove_annotation(&p, NODESTATE_ANN_RESERVATIONS);
		node_patch_add_taint(&p, NODESTATE_TAINT_STANDBY, NODESTATE_TAINT_STANDBY_VALUE,
		    KUBE_EFFECT_NO_EXECUTE);
		if ((patch = node_patch_take(&p, &rc)) == NULL)
			break;
		claim__rv(cur, rv);
		rc = node_cache_patch(ctx->nodes, ctx->kube, node_info_name(cur), rv, patch, NULL, err);
		json_decref(patch);
	}
	cache_obj_unref(&cur->obj);
	return rc;
}

/* ---- the start ---- */

static void
claim__event(const struct pool_ctx *ctx, const char *type, const char *reason, const char *kind,
    const char *ns, const char *name, const char *uid, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

static void
claim__event(const struct pool_ctx *ctx, const char *type, const char *reason, const char *kind,
    const char *ns, const char *name, const char *uid, const char *fmt, ...)
{
	struct kube_event ev = {
		.type = type, .reason = reason, .action = "Start", .kind = kind, .api_version = "v1",
		.namespace = ns, .name = name, .uid = uid,
	};
	char note[KUBE_EVENT_NOTE_MAX];
	va_list ap;

	if (ctx->events == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(note, sizeof(note), fmt, ap);
	va_end(ap);
	kube_recorder_emit(ctx->events, &ev, "%s", note);
}

static void
claim__started_events(const struct pool_ctx *ctx, const struct claim_start_req *req,
    const struct node_info *n, const struct claim_result *out, bool confirmed)
{
	const struct pod_info *pod = req->pods[0];

	if (confirmed) {
		claim__event(ctx, "Normal", "NodeStarted", "Pod", pod->namespace, pod->name, pod->uid,
		    "Started node %s (instance %s) for this pod; StartInstances took %lld ms",
		    out->node, out->instance, (long long)out->start_ms);
		claim__event(ctx, "Normal", "NodeStarted", "Node", NULL, out->node, n->uid,
		    "Started instance %s for pod %s (%s path); StartInstances took %lld ms",
		    out->instance, pod->obj.key, req->path, (long long)out->start_ms);
	} else {
		claim__event(ctx, "Warning", "StartUnconfirmed", "Node", NULL, out->node, n->uid,
		    "StartInstances of %s for pod %s got no answer within %lld ms; the claim is "
		    "kept and recovery checks the instance", out->instance, pod->obj.key,
		    (long long)out->start_ms);
	}
}

/* Whether a start that failed this way is worth retrying on another node. */
static bool
claim__try_next(enum ec2_error_class cls)
{
	/* Throttling and missing permissions are the account's, not the node's. */
	return cls != EC2_ERR_THROTTLED && cls != EC2_ERR_AUTH;
}

/* Next untried candidate, preferring zones that have not answered "no capacity". */
static ssize_t
claim__next(const struct claim_start_req *req, const bool *tried, const struct claim_zones *full)
{
	ssize_t any = -1;

	for (size_t i = 0; i < req->ncandidates; i++) {
		const char *zone;
		bool is_full = false;

		if (tried[i])
			continue;
		zone = req->candidates[i]->zone != NULL ? req->candidates[i]->zone : "";
		for (size_t z = 0; z < full->n && !is_full; z++)
			is_full = strcmp(full->zone[z], zone) == 0;
		if (!is_full)
			return (ssize_t)i;
		if (any < 0)
			any = (ssize_t)i;
	}
	return any;
}

/*
 * Another writer got to candidate first (the cache shows it claimed, or the
 * guarded PATCH met a newer version): counted, and the call goes on with the
 * next candidate unless the caller stops at the first conflict. Releases
 * fresh; returns as claim__one does.
 */
static int
claim__conflict(const struct claim_start_req *req, struct node_info *fresh,
    struct claim_result *out)
{
	snprintf(out->node, sizeof(out->node), "%s", node_info_name(fresh));
	cache_obj_unref(&fresh->obj);
	out->conflicts++;
	claim__count(&claim__m.claims, req->pool, "conflict");
	if (req->stop_on_conflict) {
		out->outcome = CLAIM_LOST;
		return 1;
	}
	return 0;
}

/*
 * One candidate: claim it, start it. Returns 1 when the call is over (out
 * says how), 0 to go on with the next candidate.
 */
static int
claim__one(const struct pool_ctx *ctx, const struct claim_start_req *req,
    const struct node_info *cand, int64_t *deadline, struct claim_zones *full,
    struct claim_result *out)
{
	struct node_info *fresh = node_cache_get(ctx->nodes, node_info_name(cand));
	struct node_info *claimed = NULL;
	struct ec2_state_changes changes = { 0 };
	struct ec2_error eerr;
	struct ec2_call call = { 0 };
	char id[32], rv[24];
	const char *ids[1] = { id };
	json_t *patch;
	int64_t t0;
	int rc;

	if (fresh == NULL)
		return 0;
	if (claim__kind(ctx, fresh) != POOL_NODE_STANDBY) {
		/* The cache has moved on since the caller looked: someone else got there first. */
		return claim__conflict(req, fresh, out);
	}
	if (claim_instance_id(fresh, id, sizeof(id)) < 0 ||
	    (patch = claim__claim_patch(fresh, req->pods, req->npods, time_real_ms(), &rc)) == NULL) {
		cache_obj_unref(&fresh->obj);
		return 0;
	}
	claim__rv(fresh, rv);
	rc = node_cache_patch(ctx->nodes, ctx->kube, node_info_name(fresh), rv, patch, &claimed,
	    &out->kube_error);
	json_decref(patch);
	if (rc == -EBUSY)
		return claim__conflict(req, fresh, out);
	if (rc < 0 || claimed == NULL) {
		/* The API server refused or failed: the next node would fare no better. */
		if (claimed != NULL)
			cache_obj_unref(&claimed->obj);
		cache_obj_unref(&fresh->obj);
		return 1;
	}
	out->claims++;
	out->claimed_us = time_mono_us();
	snprintf(out->node, sizeof(out->node), "%s", node_info_name(claimed));
	snprintf(out->instance, sizeof(out->instance), "%s", id);
	if (req->on_claimed != NULL)
		req->on_claimed(req->on_claimed_arg, claimed);

	if (*deadline == 0)
		*deadline = time_mono_ms() + req->start_budget_ms;
	call.deadline_ms = *deadline;
	out->start_sent_us = time_mono_us();
	t0 = time_mono_ms();
	rc = ec2_start_instances(ctx->ec2, ids, 1, &call, &changes, &eerr);
	out->start_ms = time_mono_ms() - t0;
	out->starts++;
	ec2_state_changes_free(&changes);
	if (rc == 0 || rc == -ETIMEDOUT) {
		out->outcome = rc == 0 ? CLAIM_STARTED : CLAIM_START_UNKNOWN;
		if (rc == 0) {
			out->accepted_us = time_mono_us();
			pthread_once(&claim__m.once, claim__metrics_init);
			metrics_counter_add(claim__m.scaleups, 1, req->pool, req->path);
		} else {
			out->last_error = eerr;
		}
		claim__count(&claim__m.claims, req->pool, rc == 0 ? "started" : "unknown-outcome");
		claim__started_events(ctx, req, claimed, out, rc == 0);
		cache_obj_unref(&claimed->obj);
		cache_obj_unref(&fresh->obj);
		return 1;
	}
	/* A definite failure: give the node back as it was, and look further. */
	out->last_error = eerr;
	claim__count(&claim__m.claims, req->pool, ec2_error_class_name(eerr.cls));
	claim__event(ctx, "Warning", "StartFailed", "Node", NULL, out->node, claimed->uid,
	    "StartInstances of %s for pod %s failed (%s: %s); returned to standby", id,
	    req->pods[0]->obj.key, eerr.code, eerr.message);
	if (claim_rollback(ctx, claimed, fresh, &out->kube_error) == 0) {
		out->rollbacks++;
		claim__count(&claim__m.claims, req->pool, "rolled-back");
	} else {
		claim__count(&claim__m.claims, req->pool, "rollback-failed");
	}
	if (eerr.cls == EC2_ERR_CAPACITY && full->n < CLAIM_ZONES_MAX)
		snprintf(full->zone[full->n++], CLAIM_ZONE_NAME, "%s",
		    fresh->zone != NULL ? fresh->zone : "");
	out->node[0] = '\0';
	out->instance[0] = '\0';
	cache_obj_unref(&claimed->obj);
	cache_obj_unref(&fresh->obj);
	return claim__try_next(eerr.cls) ? 0 : 1;
}

int
claim_start(const struct pool_ctx *ctx, const struct claim_start_req *req,
    struct claim_result *out)
{
	struct claim_zones full = { 0 };
	int64_t deadline = 0;
	bool *tried;

	memset(out, 0, sizeof(*out));
	out->outcome = CLAIM_NONE;
	if (req == NULL || req->npods == 0 || req->pods == NULL || req->pool == NULL ||
	    req->path == NULL || (req->ncandidates > 0 && req->candidates == NULL))
		return -EINVAL;
	if (ctx->ec2 == NULL || ctx->kube == NULL || ctx->nodes == NULL)
		return -ENOTSUP;
	if (req->ncandidates == 0)
		return 0;
	if ((tried = calloc(req->ncandidates, sizeof(*tried))) == NULL)
		return -ENOMEM;
	for (unsigned patches = 0; patches < LIMITS_CLAIM_PATCHES &&
	    out->starts < LIMITS_CLAIM_STARTS; patches++) {
		ssize_t i = claim__next(req, tried, &full);

		/* No claim that could not be started in time. */
		if (i < 0 || (deadline != 0 && time_mono_ms() >= deadline))
			break;
		tried[i] = true;
		if (claim__one(ctx, req, req->candidates[i], &deadline, &full, out) != 0)
			break;
	}
	free(tried);
	return 0;
}

/* ---- reservations on starting nodes ---- */

/* Reads the node again after a lost race; the old reference is dropped. */
static struct node_info *
claim__again(const struct pool_ctx *ctx, struct node_info *cur, struct kube_error *err, int *rc)
{
	char name[256];

	snprintf(name, sizeof(name), "%s", node_info_name(cur));
	cache_obj_unref(&cur->obj);
	return claim__reread(ctx, name, err, rc);
}

int
claim_reserve(const struct pool_ctx *ctx, const char *node, const struct pod_info *pod,
    struct node_info **out, const char **short_of, struct kube_error *err)
{
	struct node_info *cur;
	char pool[LIMITS_NODEPOOL_NAME + 1];
	int rc = -EBUSY;

	if (out != NULL)
		*out = NULL;
	if (short_of != NULL)
		*short_of = NULL;
	if (ctx->nodes == NULL || ctx->kube == NULL)
		return -ENOTSUP;
	if ((cur = node_cache_get(ctx->nodes, node)) == NULL)
		return -ENOENT;
	snprintf(pool, sizeof(pool), "%s", node_info_pool(cur) != NULL ? node_info_pool(cur) : "");
	for (unsigned i = 0; i < LIMITS_CLAIM_RETRIES && rc == -EBUSY; i++) {
		const struct reservations *r = NULL;
		struct reservations *live = NULL;
		struct reservation add = { .uid = pod->uid, .pod = pod->obj.key,
		    .requests = pod->requests, .since_ms = time_real_ms() };
		struct node_patch p;
		char rv[24], *text = NULL;
		json_t *patch;

		if (i > 0 && (cur = claim__again(ctx, cur, err, &rc)) == NULL)
			return rc;
		if (claim__kind(ctx, cur) != POOL_NODE_STARTING) {
			rc = -ESTALE;
			break;
		}
		/* The live promises (those of pods bound or gone are dropped on the way). */
		rc = placement_reservations(cur, &r);
		if (rc == 0 && reservations_filter(r, placement_keep_alive, ctx->pods, &text) < 0)
			rc = -ENOMEM;
		if (rc == 0)
			rc = reservations_parse(text, &live);
		free(text);
		text = NULL;
		if (rc < 0) {
			if (short_of != NULL)
				*short_of = "reservations";
			rc = rc == -ENOMEM ? rc : -ENOSPC;
			break;
		}
		if (reservations_find(live, pod->uid) != NULL) {
			reservations_free(live);
			rc = 0;
			break;
		}
		if (!placement_fits(ctx->pods, cur, pod->uid, &pod->requests, short_of)) {
			reservations_free(live);
			claim__count(&claim__m.reservations, pool, "no-room");
			rc = -ENOSPC;
			break;
		}
		rc = reservations_with(live, &add, &text);
		reservations_free(live);
		if (rc < 0)
			break;
		node_patch_init(&p, cur);
		node_patch_set_annotation(&p, NODESTATE_ANN_RESERVATIONS, text);
		if (pod->owner_key != NULL)
			node_patch_set_annotation(&p, NODESTATE_ANN_LAST_WORKLOAD, pod->owner_key);
		free(text);
		if ((patch = node_patch_take(&p, &rc)) == NULL)
			break;
		claim__rv(cur, rv);
		rc = node_cache_patch(ctx->nodes, ctx->kube, node_info_name(cur), rv, patch, out, err);
		json_decref(patch);
		claim__count(&claim__m.reservations, pool, rc == 0 ? "reserved" :
		    rc == -EBUSY ? "conflict" : "error");
	}
	if (cur != NULL)
		cache_obj_unref(&cur->obj);
	return rc;
}

int
claim_release(const struct pool_ctx *ctx, const char *node, const char *uid,
    struct kube_error *err)
{
	struct node_info *cur;
	int rc = -EBUSY;

	if (ctx->nodes == NULL || ctx->kube == NULL)
		return -ENOTSUP;
	if ((cur = node_cache_get(ctx->nodes, node)) == NULL)
		return 0;
	for (unsigned i = 0; i < LIMITS_CLAIM_RETRIES && rc == -EBUSY; i++) {
		const struct reservations *r = NULL;
		struct node_patch p;
		char rv[24], *text = NULL;
		json_t *patch;

		if (i > 0 && (cur = claim__again(ctx, cur, err, &rc)) == NULL)
			return rc == -ENOENT ? 0 : rc;
		if ((rc = placement_reservations(cur, &r)) < 0)
			break;
		rc = reservations_without(r, uid, &text);
		if (rc == -ENOENT) {
			rc = 0;             /* not promised there: nothing to write */
			break;
		}
		if (rc < 0)
			break;
		node_patch_init(&p, cur);
		if (text != NULL)
			node_patch_set_annotation(&p, NODESTATE_ANN_RESERVATIONS, text);
		else
			node_patch_remove_annotation(&p, NODESTATE_ANN_RESERVATIONS);
		free(text);
		if ((patch = node_patch_take(&p, &rc)) == NULL)
			break;
		claim__rv(cur, rv);
		rc = node_cache_patch(ctx->nodes, ctx->kube, node_info_name(cur), rv, patch, NULL, err);
		json_decref(patch);
		if (rc == 0)
			claim__count(&claim__m.reservations, node_info_pool(cur), "released");
	}
	if (cur != NULL)
		cache_obj_unref(&cur->obj);
	return rc;
}

/* ---- a consistent view of a pool before starting a machine ---- */

struct claim__refresh {
	struct node_cache *nodes;
	long count;
};

static int
claim__refresh_item(void *ctx, json_t *item)
{
	struct claim__refresh *r = ctx;

	(void)cache_apply(node_cache_base(r->nodes), item);
	r->count++;
	return 0;
}

long
claim_refresh_pool(const struct pool_ctx *ctx, const char *pool, struct kube_error *err)
{
	struct claim__refresh r = { ctx->nodes, 0 };
	char path[KUBE_PATH_MAX], query[256];
	struct jsonprune *prune;
	int rc;

	if (ctx->kube == NULL || ctx->nodes == NULL)
		return -ENOTSUP;
	/* Pool names are DNS-1123 labels: nothing to escape but the selector's own "/" and "=". */
	if (strspn(pool, "abcdefghijklmnopqrstuvwxyz0123456789-.") != strlen(pool))
		return -EINVAL;
	snprintf(query, sizeof(query), "labelSelector=stratos.sh%%2Fpool%%3D%s", pool);
	if ((rc = kube_path(path, &KUBE_NODES, NULL, NULL, NULL)) < 0)
		return rc;
	prune = jsonprune_new(NODE_CACHE_FIELDS, NULL);
	rc = kube_list(ctx->kube, path, query, prune, claim__refresh_item, &r, NULL, err);
	jsonprune_free(prune);
	return rc < 0 ? rc : r.count;
}
