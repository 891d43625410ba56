/* The scheduler extender (DESIGN §6.3–6.4): /scheduler/filter starts standby capacity inside the call, /scheduler/prioritize keeps the packing. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/claim.h"
#include "stratos/extender.h"
#include "stratos/jsonpatch.h"
#include "stratos/jsonscan.h"
#include "stratos/log.h"
#include "stratos/metrics.h"
#include "stratos/placed.h"
#include "stratos/placement.h"
#include "stratos/pools.h"
#include "stratos/timeutil.h"

/* A node name is a DNS subdomain: at most 253 bytes. */
#define EXTENDER_NAME_MAX 253
/* The stratos.sh/pool annotation: LIMITS_EXTENDER_POOLS names of at most 63 bytes and commas. */
#define EXTENDER_POOLS_TEXT (LIMITS_EXTENDER_POOLS * (LIMITS_NODEPOOL_NAME + 1) + 1)
/* Decide-and-act rounds of one filter call (a lost race or a changed node starts a round). */
#define EXTENDER_ROUNDS 3

struct extender {
	const struct pool_ctx *ctx;
	/*
	 * One decide-and-claim at a time in this replica, from the fresh look at
	 * the pool until a node is claimed (never across StartInstances): a
	 * second pod then sees the node starting and reserves room on it.
	 */
	pthread_mutex_t claim_lock;
	struct metrics_family *filter_seconds;
	struct metrics_family *decision_seconds;
	struct metrics_family *prioritize_seconds;
};

/* Filter latency from microseconds (pass-through) to the StartInstances budget and beyond. */
static const double EXTENDER_BUCKETS[] = {
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
	0.5, 1, 2, 2.5, 5, 10,
};

struct extender *
extender_new(const struct pool_ctx *ctx)
{
	static const char *const outcome[] = { "outcome", NULL };
	size_t nb = sizeof(EXTENDER_BUCKETS) / sizeof(EXTENDER_BUCKETS[0]);
	struct extender *ex = calloc(1, sizeof(*ex));

	if (ex == NULL)
		return NULL;
	ex->ctx = ctx;
	pthread_mutex_init(&ex->claim_lock, NULL);
	ex->filter_seconds = metrics_register(METRICS_HISTOGRAM, "stratos_extender_filter_seconds",
	    "Scheduler extender filter calls, arrival to answer, by outcome (passthrough, usable, "
	    "waiting, reserved, started, start-unknown, no-capacity, unverified, error).", outcome,
	    EXTENDER_BUCKETS, nb);
	ex->decision_seconds = metrics_register(METRICS_HISTOGRAM,
	    "stratos_scaleup_decision_seconds",
	    "Filter call arrival to StartInstances accepted, for the calls that started a node.",
	    NULL, EXTENDER_BUCKETS, nb);
	ex->prioritize_seconds = metrics_register(METRICS_HISTOGRAM,
	    "stratos_extender_prioritize_seconds", "Scheduler extender prioritize calls.", NULL,
	    EXTENDER_BUCKETS, nb);
	return ex;
}

void
extender_free(struct extender *ex)
{
	if (ex == NULL)
		return;
	pthread_mutex_destroy(&ex->claim_lock);
	free(ex);
}

/* ---- the call ---- */

/* An ExtenderArgs as scanned: spans of the caller's body, names decoded once. */
struct extender__call {
	struct jsonscan_value pod;
	struct jsonscan_value list;      /* NodeNames, or Nodes.items; ABSENT when neither */
	bool by_name;                    /* NodeNames (nodeCacheCapable: true) */
	size_t n;
	struct jsonscan_value *spans;    /* each name string, or each Node object */
	char *names;                     /* decoded names, NUL-separated */
	struct placement_node *cand;
	struct node_info **temp;         /* Nodes mode: parsed from the call when not cached */
};

static void
extender__call_free(struct extender__call *c)
{
	for (size_t i = 0; i < c->n; i++) {
		/* A temporary node is also the candidate's node: one reference for both. */
		if (c->cand != NULL && c->cand[i].node != NULL &&
		    (c->temp == NULL || c->temp[i] != c->cand[i].node))
			cache_obj_unref((struct cache_obj *)&c->cand[i].node->obj);
		if (c->temp != NULL && c->temp[i] != NULL)
			cache_obj_unref(&c->temp[i]->obj);
	}
	free(c->spans);
	free(c->names);
	free(c->cand);
	free(c->temp);
	memset(c, 0, sizeof(*c));
}

/*
 * Finds Pod and the candidate list. ExtenderArgs as kube-scheduler sends it
 * (k8s.io/kube-scheduler/extender/v1 types.go): NodeNames set and Nodes
 * null with nodeCacheCapable, the opposite without. Returns 0, or -EINVAL
 * with why (the call is answered 400).
 */
static int
extender__scan(const struct server_request *req, struct extender__call *c, char *why,
    size_t whylen)
{
	static const char *const keys[] = { "Pod", "Nodes", "NodeNames" };
	struct jsonscan_value v[3];

	memset(c, 0, sizeof(*c));
	jsonscan_get_many(req->json_root, keys, 3, v);
	c->pod = v[0];
	if (c->pod.type != JSONSCAN_OBJECT) {
		snprintf(why, whylen, "ExtenderArgs.Pod must be a Pod object");
		return -EINVAL;
	}
	if (v[2].type == JSONSCAN_ARRAY) {
		c->by_name = true;
		c->list = v[2];
	} else if (v[1].type == JSONSCAN_OBJECT) {
		c->list = jsonscan_get(v[1], "items");
		if (c->list.type != JSONSCAN_ARRAY && c->list.type != JSONSCAN_ABSENT &&
		    c->list.type != JSONSCAN_NULL) {
			snprintf(why, whylen, "ExtenderArgs.Nodes.items must be a list of Nodes");
			return -EINVAL;
		}
		if (c->list.type != JSONSCAN_ARRAY)
			c->list.type = JSONSCAN_ABSENT;
	} else if ((v[1].type != JSONSCAN_ABSENT && v[1].type != JSONSCAN_NULL) ||
	    (v[2].type != JSONSCAN_ABSENT && v[2].type != JSONSCAN_NULL)) {
		snprintf(why, whylen, "ExtenderArgs.NodeNames must be a list of names, "
		    "ExtenderArgs.Nodes a NodeList");
		return -EINVAL;
	}
	return 0;
}

/* Reads each candidate's name (pool pods only: a pass-through never looks at them). */
static int
extender__names(const struct server_request *req, struct extender__call *c, char *why,
    size_t whylen)
{
	struct jsonscan_iter it;
	struct jsonscan_value item, name;
	size_t count = jsonscan_count(c->list), used = 0;

	if (count > LIMITS_EXTENDER_NODES) {
		snprintf(why, whylen, "more than %u candidate nodes", LIMITS_EXTENDER_NODES);
		return -EINVAL;
	}
	if (count == 0)
		return 0;
	c->spans = calloc(count, sizeof(*c->spans));
	c->cand = calloc(count, sizeof(*c->cand));
	c->temp = c->by_name ? NULL : calloc(count, sizeof(*c->temp));
	/* Every decoded name is shorter than its text in the body. */
	c->names = malloc(req->body_len + 1);
	if (c->spans == NULL || c->cand == NULL || c->names == NULL || (!c->by_name && c->temp == NULL))
		return -ENOMEM;
	jsonscan_iter_init(&it, c->list);
	while (jsonscan_next(&it, NULL, &item)) {
		size_t len = 0;

		name = c->by_name ? item : jsonscan_path(item, "metadata", "name", NULL);
		if (name.type != JSONSCAN_STRING ||
		    jsonscan_string(name, c->names + used, req->body_len + 1 - used, &len) < 0 ||
		    len == 0) {
			snprintf(why, whylen, c->by_name ? "NodeNames[%zu] must be a node name" :
			    "Nodes.items[%zu] has no metadata.name", c->n);
			return -EINVAL;
		}
		c->spans[c->n] = item;
		c->cand[c->n].name = c->names + used;
		used += len + 1;
		c->n++;
	}
	return 0;
}

/* Looks every candidate up in the node cache again (after a write, or a fresh LIST). */
static void
extender__nodes(const struct pool_ctx *ctx, struct extender__call *c)
{
	for (size_t i = 0; i < c->n; i++) {
		struct placement_node *p = &c->cand[i];

		if (p->node != NULL && (c->temp == NULL || c->temp[i] != p->node))
			cache_obj_unref((struct cache_obj *)&p->node->obj);
		p->node = NULL;
		if (strlen(p->name) <= EXTENDER_NAME_MAX && ctx->nodes != NULL)
			p->node = node_cache_get(ctx->nodes, p->name);
		if (p->node != NULL && c->temp != NULL && c->temp[i] != NULL) {
			cache_obj_unref(&c->temp[i]->obj);
			c->temp[i] = NULL;
		}
		if (p->node != NULL || c->by_name)
			continue;
		/* The scheduler sent the Node itself: read the one the cache has not seen yet. */
		if (c->temp[i] == NULL) {
			json_t *obj = jsonscan_json(c->spans[i]);
			int rc;
			c->temp[i] = obj != NULL ? node_info_parse(obj, &rc) : NULL;
			json_decref(obj);
		}
		p->node = c->temp[i];
	}
}

/* ---- the pod ---- */

struct extender__pod {
	char uid[128];
	char ns[64];
	char name[EXTENDER_NAME_MAX + 1];
	char key[CACHE_KEY_MAX];
	char owner[CACHE_KEY_MAX + 64];
	char pools[EXTENDER_POOLS_TEXT];
	int64_t created_ms;
	struct resources requests;
	struct placement_pod pp;
};

/* A string member into out ("" when absent or too long). */
static void
extender__str(struct jsonscan_value obj, const char *key, char *out, size_t len)
{
	if (jsonscan_string(jsonscan_get(obj, key), out, len, NULL) < 0)
		out[0] = '\0';
}

/*
 * Reads what the decision needs from the Pod: 1 for a pod of no pool
 * (nothing else read), 0 for a pool pod, -EINVAL when its fields cannot be
 * what the API server stores (quantities that do not parse), -ENOMEM.
 */
static int
extender__pod_read(struct jsonscan_value pod, struct extender__pod *p)
{
	struct jsonscan_value md = jsonscan_get(pod, "metadata");
	struct jsonscan_value pool = jsonscan_path(md, "annotations", NODESTATE_POD_ANN_POOL, NULL);
	json_t *meta, *wrap, *spec;
	char when[64];
	int rc;

	memset(p, 0, sizeof(*p));
	if (pool.type != JSONSCAN_STRING || jsonscan_string_length(pool) == 0 ||
	    jsonscan_string(pool, p->pools, sizeof(p->pools), NULL) < 0)
		return 1;
	if (placement_split_pools(p->pools, &p->pp) == 0)
		return 1;
	extender__str(md, "uid", p->uid, sizeof(p->uid));
	extender__str(md, "namespace", p->ns, sizeof(p->ns));
	extender__str(md, "name", p->name, sizeof(p->name));
	extender__str(md, "creationTimestamp", when, sizeof(when));
	if (when[0] != '\0')
		(void)time_parse_rfc3339(when, &p->created_ms);
	snprintf(p->key, sizeof(p->key), "%s/%s", p->ns, p->name);
	/* The owner and the requests come from small trees of metadata and spec, never of the call. */
	meta = md.type == JSONSCAN_OBJECT ? jsonscan_json(md) : json_object();
	wrap = meta != NULL ? json_pack("{s:o}", "metadata", meta) : NULL;
	if (wrap == NULL)
		return -ENOMEM;
	p->pp.owner_key = pod_owner_key(wrap, p->owner, sizeof(p->owner)) == 0 ? p->owner : NULL;
	json_decref(wrap);
	spec = jsonscan_json(jsonscan_get(pod, "spec"));
	rc = resources_pod_requests(spec, &p->requests);
	json_decref(spec);
	if (rc < 0)
		return rc;
	p->pp.uid = p->uid;
	p->pp.key = p->key;
	p->pp.requests = &p->requests;
	return 0;
}

/* ---- answers ---- */

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, surrogates or > U+10FFFF), 0 if none. */
static size_t
extender__utf8_len(const unsigned char *p)
{
	size_t n = p[0] < 0x80 ? 1 : (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 :
	    (p[0] & 0xf8) == 0xf0 ? 4 : 0;
	uint32_t cp;

	if (n <= 1)
		return n;
	cp = p[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/*
 * A message as a JSON string literal. Messages are put together from the
 * call's names, the API server's words and snprintf, which may cut a
 * character in two: bytes that are not UTF-8 become U+FFFD, so the answer
 * is always JSON the scheduler can decode.
 */
static int
extender__text_json(struct buf *b, const char *s)
{
	struct buf clean;
	int rc = 0;

	buf_init(&clean, LIMITS_HTTP_BODY_MAX);
	for (const unsigned char *p = (const unsigned char *)s; rc == 0 && *p != '\0';) {
		size_t n = extender__utf8_len(p);
		if (n == 0) {
			rc = buf_append(&clean, "\xef\xbf\xbd", 3);
			p++;
		} else {
			rc = buf_append(&clean, p, n);
			p += n;
		}
	}
	if (rc == 0)
		rc = jsonpatch_text_string(b, clean.data != NULL ? clean.data : "");
	buf_free(&clean);
	return rc;
}

/* Appends the JSON string literal of a candidate's name. */
static int
extender__name_json(struct buf *b, const struct extender__call *c, size_t i)
{
	/* NodeNames' own literal is already valid JSON text. */
	if (c->by_name)
		return buf_append(b, c->spans[i].p, c->spans[i].len);
	return jsonpatch_text_string(b, c->cand[i].name);
}

/*
 * The ExtenderFilterResult in the form of the call: offered candidates
 * (reason NULL) as NodeNames or Nodes.items, every other one in
 * FailedAndUnresolvableNodes (preemption cannot make a stopped or booting
 * node usable). msg, when set, replaces the reason of the candidate named
 * target, or of every dropped candidate when target is NULL.
 */
static int
extender__reply(struct server_response *resp, const struct extender__call *c,
    const char *target, const char *msg)
{
	struct buf *b = &resp->body;
	bool first = true;
	int rc;

	buf_reset(b);
	rc = buf_append_str(b, c->by_name ? "{\"NodeNames\":[" :
	    c->list.type == JSONSCAN_ARRAY ? "{\"Nodes\":{\"metadata\":{},\"items\":[" :
	    "{\"Nodes\":null,\"NodeNames\":null");
	for (size_t i = 0; rc == 0 && i < c->n && c->list.type == JSONSCAN_ARRAY; i++) {
		if (c->cand[i].reason != NULL)
			continue;
		if (!first)
			rc = buf_append_str(b, ",");
		first = false;
		if (rc == 0)
			rc = c->by_name ? extender__name_json(b, c, i) :
			    buf_append(b, c->spans[i].p, c->spans[i].len);
	}
	if (rc == 0 && c->list.type == JSONSCAN_ARRAY)
		rc = buf_append_str(b, c->by_name ? "],\"Nodes\":null" : "]},\"NodeNames\":null");
	if (rc == 0)
		rc = buf_append_str(b, ",\"FailedNodes\":{},\"FailedAndUnresolvableNodes\":{");
	first = true;
	for (size_t i = 0; rc == 0 && i < c->n; i++) {
		const char *why = c->cand[i].reason;
		if (why == NULL)
			continue;
		if (msg != NULL && (target == NULL || strcmp(c->cand[i].name, target) == 0))
			why = msg;
		if (!first)
			rc = buf_append_str(b, ",");
		first = false;
		if (rc == 0)
			rc = extender__name_json(b, c, i);
		if (rc == 0)
			rc = buf_append_str(b, ":");
		if (rc == 0)
			rc = extender__text_json(b, why);
	}
	if (rc == 0)
		rc = buf_append_str(b, "},\"Error\":\"\"}");
	return rc;
}

/* The candidates as sent, untouched: a pod of no pool is none of Stratos' business. */
static int
extender__passthrough(struct server_response *resp, const struct extender__call *c)
{
	struct buf *b = &resp->body;
	int rc;

	buf_reset(b);
	if (c->by_name) {
		rc = buf_append_str(b, "{\"NodeNames\":");
		if (rc == 0)
			rc = buf_append(b, c->list.p, c->list.len);
		if (rc == 0)
			rc = buf_append_str(b, ",\"Nodes\":null");
	} else if (c->list.type == JSONSCAN_ARRAY) {
		rc = buf_append_str(b, "{\"Nodes\":{\"metadata\":{},\"items\":");
		if (rc == 0)
			rc = buf_append(b, c->list.p, c->list.len);
		if (rc == 0)
			rc = buf_append_str(b, "},\"NodeNames\":null");
	} else {
		rc = buf_append_str(b, "{\"Nodes\":null,\"NodeNames\":null");
	}
	if (rc == 0)
		rc = buf_append_str(b, ",\"FailedNodes\":{},\"FailedAndUnresolvableNodes\":{},"
		    "\"Error\":\"\"}");
	return rc;
}

/* ---- deciding and acting ---- */

/* What a filter call ended with (the outcome label of stratos_extender_filter_seconds). */
enum extender__outcome {
	EXTENDER_PASSTHROUGH,
	EXTENDER_USABLE,
	EXTENDER_WAITING,
	EXTENDER_RESERVED,
	EXTENDER_STARTED,
	EXTENDER_START_UNKNOWN,
	EXTENDER_NO_CAPACITY,
	EXTENDER_UNVERIFIED,
	EXTENDER_ERROR,
	EXTENDER_DEFERRED,
};

static const char *const extender__outcomes[] = {
	"passthrough", "usable", "waiting", "reserved", "started", "start-unknown", "no-capacity",
	"unverified", "error", "deferred",
};

/* One filter call being answered. */
struct extender__filter {
	struct extender *ex;
	const struct server_request *req;
	struct extender__call call;
	struct extender__pod pod;
	struct pod_info *verified;       /* claim_verify_pod's, once verified */
	const struct pools_snapshot *snap;
	struct placement pl;
	char msg[512];
	char target[EXTENDER_NAME_MAX + 1];
	bool msg_on_all;
};

static void
extender__decide(struct extender__filter *f)
{
	struct placement_in in = {
		.snap = f->snap, .nodes = f->ex->ctx->nodes, .pods = f->ex->ctx->pods,
		.now_ms = time_real_ms(),
	};

	placement_free(&f->pl);
	if (placement_decide(&in, &f->pod.pp, f->call.cand, f->call.n, &f->pl) < 0) {
		/* Out of memory: nothing can be promised, and nothing unusable offered. */
		for (size_t i = 0; i < f->call.n; i++)
			if (f->call.cand[i].reason == NULL)
				f->call.cand[i].reason = "stratos: out of memory";
		f->pl.action = PLACEMENT_NO_CAPACITY;
	}
}

static void
extender__set_msg(struct extender__filter *f, const char *target, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
extender__set_msg(struct extender__filter *f, const char *target, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
	va_end(ap);
	f->msg_on_all = target == NULL;
	snprintf(f->target, sizeof(f->target), "%s", target != NULL ? target : "");
}

/* Whether the named node is one of the candidates (a message goes on it then, else on all). */
static const char *
extender__target_or_all(const struct extender__filter *f, const char *name)
{
	for (size_t i = 0; i < f->call.n; i++)
		if (strcmp(f->call.cand[i].name, name) == 0)
			return name;
	return NULL;
}

static enum extender__outcome
extender__waiting(struct extender__filter *f, const struct node_info *n, bool reserved)
{
	int64_t ago = n->started_at_ms > 0 ? (time_real_ms() - n->started_at_ms) / 1000 : 0;

	extender__set_msg(f, extender__target_or_all(f, node_info_name(n)),
	    "stratos: waiting for node %s, started %lld s ago", node_info_name(n),
	    (long long)(ago > 0 ? ago : 0));
	return reserved ? EXTENDER_RESERVED : EXTENDER_WAITING;
}

static enum extender__outcome
extender__no_capacity(struct extender__filter *f)
{
	extender__set_msg(f, NULL, "stratos: no standby capacity in pool %s", f->pl.pool_name);
	return EXTENDER_NO_CAPACITY;
}

/* The answer when no write is needed; EXTENDER_DEFERRED when one is. */
static enum extender__outcome
extender__answer_now(struct extender__filter *f)
{
	switch (f->pl.action) {
	case PLACEMENT_USABLE:
		return EXTENDER_USABLE;
	case PLACEMENT_WAIT:
		return extender__waiting(f, f->pl.target, false);
	case PLACEMENT_NO_CAPACITY:
		return extender__no_capacity(f);
	case PLACEMENT_CLAIM:
		if (f->ex->ctx->ec2 == NULL) {
			extender__set_msg(f, NULL, "stratos: cannot start standby nodes of pool %s "
			    "(no EC2 client: --cluster-name is not set)", f->pl.pool_name);
			return EXTENDER_NO_CAPACITY;
		}
		return EXTENDER_DEFERRED;
	default:
		return EXTENDER_DEFERRED;
	}
}

/* Verifies the pod once per call (the cache, or one GET). */
static int
extender__verify(struct extender__filter *f, const char *pool)
{
	char why[400];
	int rc;

	if (f->verified != NULL) {
		if (claim_pod_in_pool(f->verified, pool))
			return 0;
		extender__set_msg(f, NULL, "stratos: pod not verified: not a pool pod of %s", pool);
		return -EPERM;
	}
	rc = claim_verify_pod(f->ex->ctx, f->pod.ns, f->pod.name, f->pod.uid, pool, &f->verified,
	    why, sizeof(why));
	if (rc < 0) {
		extender__set_msg(f, NULL, "stratos: pod not verified: %s", why);
		log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s,s:s}", "pod", f->pod.key, "uid",
		    f->pod.uid, "pool", pool), "extender: nothing started for an unverified pod: %s",
		    why);
	}
	return rc;
}

struct extender__unlock {
	pthread_mutex_t *lock;
	bool held;
};

static void
extender__unlock(void *arg, const struct node_info *claimed)
{
	struct extender__unlock *u = arg;

	(void)claimed;
	if (u->held) {
		pthread_mutex_unlock(u->lock);
		u->held = false;
	}
}

static enum extender__outcome
extender__reserve(struct extender__filter *f, bool *again)
{
	struct kube_error err = { 0 };
	struct node_info *written = NULL;
	const char *short_of = NULL;
	char name[EXTENDER_NAME_MAX + 1];
	enum extender__outcome out;
	int rc;

	snprintf(name, sizeof(name), "%s", node_info_name(f->pl.target));
	if (extender__verify(f, f->pl.pool_name) < 0)
		return EXTENDER_UNVERIFIED;
	rc = claim_reserve(f->ex->ctx, name, f->verified, &written, &short_of, &err);
	if (rc == 0) {
		out = extender__waiting(f, written != NULL ? written : f->pl.target, true);
		if (written != NULL)
			cache_obj_unref(&written->obj);
		return out;
	}
	if (rc == -ENOSPC || rc == -ESTALE || rc == -EBUSY || rc == -ENOENT) {
		/* The node changed under us: look again. */
		*again = true;
		return EXTENDER_ERROR;
	}
	extender__set_msg(f, NULL, "stratos: could not reserve room on node %s: %s", name,
	    err.message[0] != '\0' ? err.message : strerror(-rc));
	log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s,s:i}", "pod", f->pod.key, "node", name,
	    "error", rc), "extender: reservation failed: %s",
	    err.message[0] != '\0' ? err.message : strerror(-rc));
	return EXTENDER_ERROR;
}

static enum extender__outcome
extender__claim(struct extender__filter *f, bool *again)
{
	const struct pool_ctx *ctx = f->ex->ctx;
	struct extender__unlock u = { &f->ex->claim_lock, true };
	struct claim_result res;
	struct claim_start_req cr;
	const struct pod_info *pods[1];
	char pool[LIMITS_NODEPOOL_NAME + 1];
	int64_t t_worker = time_mono_us(), t_listed;
	int rc;

	if (extender__verify(f, f->pl.pool_name) < 0)
		return EXTENDER_UNVERIFIED;
	/*
	 * About to start a machine: look at the pool as the API server has it
	 * now, not as this replica's watch has it, so a node another replica
	 * claimed a moment ago is seen as starting (and its room used).
	 */
	pthread_mutex_lock(&f->ex->claim_lock);
	for (size_t i = 0; i < f->pod.pp.npools; i++) {
		struct kube_error err = { 0 };
		(void)claim_refresh_pool(ctx, f->pod.pp.pools[i], &err);
	}
	t_listed = time_mono_us();
	extender__nodes(ctx, &f->call);
	extender__decide(f);
	if (f->pl.action != PLACEMENT_CLAIM) {
		pthread_mutex_unlock(&f->ex->claim_lock);
		*again = true;
		return EXTENDER_ERROR;
	}
	snprintf(pool, sizeof(pool), "%s", f->pl.pool_name);
	if (extender__verify(f, pool) < 0) {
		pthread_mutex_unlock(&f->ex->claim_lock);
		return EXTENDER_UNVERIFIED;
	}
	pods[0] = f->verified;
	cr = (struct claim_start_req){
		.pool = pool, .pods = pods, .npods = 1,
		.candidates = f->pl.standby, .ncandidates = f->pl.nstandby,
		.start_budget_ms = ctx->start_budget_ms > 0 ? ctx->start_budget_ms : 2000,
		.path = "inline", .stop_on_conflict = true,
		.on_claimed = extender__unlock, .on_claimed_arg = &u,
	};
	rc = claim_start(ctx, &cr, &res);
	extender__unlock(&u, NULL);
	if (rc < 0) {
		extender__set_msg(f, NULL, "stratos: cannot start standby nodes of pool %s (%s)", pool,
		    strerror(-rc));
		return EXTENDER_ERROR;
	}
	switch (res.outcome) {
	case CLAIM_STARTED:
		metrics_histogram_observe(f->ex->decision_seconds,
		    (double)(res.accepted_us - f->req->received_us) / 1e6);
		extender__set_msg(f, extender__target_or_all(f, res.node),
		    "stratos: started node %s for this pod", res.node);
		/* Where the time went, arrival to accepted: queue, verify + LIST, claim, EC2. */
		log_msg(LOG_LEVEL_INFO, json_pack("{s:s,s:s,s:s,s:s,s:f,s:f,s:f,s:f,s:f,s:f,s:i}", "pod",
		    f->pod.key, "pool", pool, "node", res.node, "instance", res.instance,
		    "queue_ms", (double)(t_worker - f->req->received_us) / 1000.0,
		    "list_ms", (double)(t_listed - t_worker) / 1000.0,
		    "claim_ms", (double)(res.claimed_us - t_listed) / 1000.0,
		    "overhead_ms", (double)(res.start_sent_us - f->req->received_us) / 1000.0,
		    "start_ms", (double)res.start_ms,
		    "decision_ms", (double)(res.accepted_us - f->req->received_us) / 1000.0,
		    "rollbacks", (int)res.rollbacks), "started standby node %s for pod %s", res.node,
		    f->pod.key);
		return EXTENDER_STARTED;
	case CLAIM_START_UNKNOWN:
		extender__set_msg(f, extender__target_or_all(f, res.node),
		    "stratos: started node %s for this pod; EC2 has not confirmed it yet", res.node);
		log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s,s:s,s:s,s:I}", "pod", f->pod.key, "pool",
		    pool, "node", res.node, "instance", res.instance, "start_ms",
		    (json_int_t)res.start_ms), "StartInstances got no answer within the budget; "
		    "claim kept: %s", res.last_error.message);
		return EXTENDER_START_UNKNOWN;
	case CLAIM_LOST:
		*again = true;
		extender__set_msg(f, NULL, "stratos: standby nodes of pool %s were taken by other "
		    "pods; trying again", pool);
		return EXTENDER_NO_CAPACITY;
	default:
		if (res.starts > 0 || res.kube_error.class != KUBE_ERR_NONE)
			log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s,s:i,s:i,s:s,s:s}", "pod",
			    f->pod.key, "pool", pool, "starts", (int)res.starts, "rollbacks",
			    (int)res.rollbacks, "ec2_error", res.last_error.code, "kube_error",
			    res.kube_error.message), "no standby node of %s could be started", pool);
		return extender__no_capacity(f);
	}
}

/* On a blocking worker: decide, then write, and decide again when the cluster moved. */
static enum extender__outcome
extender__act(struct extender__filter *f)
{
	enum extender__outcome out = EXTENDER_ERROR;

	for (unsigned round = 0; round < EXTENDER_ROUNDS; round++) {
		bool again = false;

		if (round > 0)
			extender__nodes(f->ex->ctx, &f->call);
		extender__decide(f);
		out = extender__answer_now(f);
		if (out != EXTENDER_DEFERRED)
			return out;
		out = f->pl.action == PLACEMENT_RESERVE ? extender__reserve(f, &again) :
		    extender__claim(f, &again);
		if (!again)
			return out;
	}
	if (out == EXTENDER_ERROR && f->msg[0] == '\0')
		extender__set_msg(f, NULL, "stratos: the pool kept changing; trying again");
	return out;
}

static void
extender__filter_free(struct extender__filter *f)
{
	placement_free(&f->pl);
	if (f->verified != NULL)
		cache_obj_unref(&f->verified->obj);
	pools_release(f->snap);
	resources_release(&f->pod.requests);
	extender__call_free(&f->call);
}

static void
extender__observe(struct extender *ex, const struct server_request *req,
    enum extender__outcome out)
{
	metrics_histogram_observe(ex->filter_seconds,
	    (double)(time_mono_us() - req->received_us) / 1e6, extender__outcomes[out]);
}

void
extender_filter_handle(void *ctx, const struct server_request *req, struct server_response *resp)
{
	struct extender *ex = ctx;
	struct extender__filter f;
	enum extender__outcome out;
	char why[256];
	int rc;

	memset(&f, 0, sizeof(f));
	f.ex = ex;
	f.req = req;
	if (extender__scan(req, &f.call, why, sizeof(why)) < 0) {
		server_json_error(resp, 400, "%s", why);
		extender__observe(ex, req, EXTENDER_ERROR);
		return;
	}
	rc = extender__pod_read(f.call.pod, &f.pod);
	if (rc == 1) {
		if (extender__passthrough(resp, &f.call) < 0)
			server_json_error(resp, 500, "the answer does not fit in memory");
		extender__observe(ex, req, EXTENDER_PASSTHROUGH);
		return;
	}
	if (rc == 0)
		rc = extender__names(req, &f.call, why, sizeof(why));
	else
		snprintf(why, sizeof(why), "ExtenderArgs.Pod: %s", rc == -ENOMEM ? "out of memory" :
		    "resource requests that do not parse");
	if (rc < 0) {
		server_json_error(resp, rc == -ENOMEM ? 500 : 400, "%s", rc == -ENOMEM &&
		    f.call.n > 0 ? "out of memory" : why);
		extender__filter_free(&f);
		extender__observe(ex, req, EXTENDER_ERROR);
		return;
	}
	f.snap = ex->ctx->pools != NULL ? pools_acquire(ex->ctx->pools) : NULL;
	extender__nodes(ex->ctx, &f.call);
	if (!req->on_worker) {
		extender__decide(&f);
		out = extender__answer_now(&f);
		if (out == EXTENDER_DEFERRED) {
			resp->defer = true;
			extender__filter_free(&f);
			return;
		}
	} else {
		out = extender__act(&f);
	}
	if (extender__reply(resp, &f.call, f.msg_on_all ? NULL : f.target,
	    f.msg[0] != '\0' ? f.msg : NULL) < 0) {
		server_json_error(resp, 500, "the answer does not fit in memory");
		out = EXTENDER_ERROR;
	}
	placed_note(ex->ctx->placed, f.pod.uid, f.pod.pp.pools[0], f.pod.created_ms,
	    out == EXTENDER_USABLE, NULL);
	extender__filter_free(&f);
	extender__observe(ex, req, out);
}

/* ---- prioritize ---- */

void
extender_prioritize_handle(void *ctx, const struct server_request *req,
    struct server_response *resp)
{
	struct extender *ex = ctx;
	struct extender__call c;
	struct extender__pod pod;
	struct buf *b = &resp->body;
	char why[256];
	int rc;

	if (extender__scan(req, &c, why, sizeof(why)) < 0) {
		server_json_error(resp, 400, "%s", why);
		return;
	}
	rc = extender__pod_read(c.pod, &pod);
	/* A pod of no pool: no preference (nodes left out of the list score 0). */
	if (rc == 1) {
		buf_reset(b);
		if (buf_append_str(b, "[]") < 0)
			server_json_error(resp, 500, "out of memory");
		metrics_histogram_observe(ex->prioritize_seconds,
		    (double)(time_mono_us() - req->received_us) / 1e6);
		return;
	}
	if (rc == 0)
		rc = extender__names(req, &c, why, sizeof(why));
	if (rc < 0) {
		server_json_error(resp, rc == -ENOMEM ? 500 : 400, "%s", rc == -ENOMEM ?
		    "out of memory" : why);
		resources_release(&pod.requests);
		extender__call_free(&c);
		return;
	}
	extender__nodes(ex->ctx, &c);
	buf_reset(b);
	rc = buf_append_str(b, "[");
	for (size_t i = 0; rc == 0 && i < c.n; i++) {
		const struct node_info *n = c.cand[i].node;
		int score = 0;

		if (n != NULL && placement_holds(ex->ctx->pods, n, pod.uid))
			score = 10;
		else if (n != NULL && pod.pp.owner_key != NULL && n->last_workload != NULL &&
		    strcmp(n->last_workload, pod.pp.owner_key) == 0)
			score = 8;
		rc = buf_append_str(b, i > 0 ? ",{\"Host\":" : "{\"Host\":");
		if (rc == 0)
			rc = extender__name_json(b, &c, i);
		if (rc == 0)
			rc = buf_printf(b, ",\"Score\":%d}", score);
	}
	if (rc == 0)
		rc = buf_append_str(b, "]");
	if (rc < 0)
		server_json_error(resp, 500, "out of memory");
	resources_release(&pod.requests);
	extender__call_free(&c);
	metrics_histogram_observe(ex->prioritize_seconds,
	    (double)(time_mono_us() - req->received_us) / 1e6);
}
