/* Pod cache: parses Pods into compact interned pod_info objects, indexed by node. */
#include <errno.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/intern.h"
#include "stratos/kube.h"
#include "stratos/limits.h"
#include "stratos/nodestate.h"
#include "stratos/pod_cache.h"
#include "stratos/poolpod.h"
#include "stratos/timeutil.h"

#define POD_SEL_FIELD 0x100u         /* op flag: a matchFields requirement (metadata.name) */

/* ---- selection blob layout ---- */

static size_t
pod__align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static size_t
pod__off_pairs(void)
{
	return 0;
}

static size_t
pod__off_terms(const struct pod_selection *s)
{
	return pod__off_pairs() + 2 * (size_t)s->nselector * sizeof(const char *);
}

static size_t
pod__off_reqs(const struct pod_selection *s)
{
	return pod__align8(pod__off_terms(s) + ((size_t)s->nterms + 1) * sizeof(uint16_t));
}

static size_t
pod__off_values(const struct pod_selection *s)
{
	return pod__off_reqs(s) + (size_t)s->nreqs * sizeof(struct kube_selector_req);
}

static size_t
pod__selection_len(const struct pod_selection *s)
{
	return sizeof(*s) + pod__off_values(s) + (size_t)s->nvalues * sizeof(const char *);
}

const char *const *
pod_selection_pairs(const struct pod_selection *s)
{
	return (const char *const *)(const void *)(s->data + pod__off_pairs());
}

const uint16_t *
pod_selection_term_first(const struct pod_selection *s)
{
	return (const uint16_t *)(const void *)(s->data + pod__off_terms(s));
}

const struct kube_selector_req *
pod_selection_reqs(const struct pod_selection *s)
{
	return (const struct kube_selector_req *)(const void *)(s->data + pod__off_reqs(s));
}

const char *const *
pod_selection_values(const struct pod_selection *s)
{
	return (const char *const *)(const void *)(s->data + pod__off_values(s));
}

static void
pod__selection_release(const void *data, size_t len)
{
	const struct pod_selection *s = data;
	const char *const *pairs = pod_selection_pairs(s), *const *values = pod_selection_values(s);
	const struct kube_selector_req *reqs = pod_selection_reqs(s);

	(void)len;
	for (size_t i = 0; i < 2 * (size_t)s->nselector; i++)
		intern_release(pairs[i]);
	for (size_t i = 0; i < s->nreqs; i++)
		intern_release(reqs[i].key);
	for (size_t i = 0; i < s->nvalues; i++)
		intern_release(values[i]);
}

/* Counts what a selection needs so it can be built in one zeroed allocation. */
static int
pod__selection_count(json_t *selector, json_t *terms, struct pod_selection *hdr)
{
	size_t nreqs = 0, nvalues = 0, t, r;
	json_t *term, *req;

	memset(hdr, 0, sizeof(*hdr));
	if (json_object_size(selector) > LIMITS_POD_SELECTOR_EXPRS ||
	    json_array_size(terms) > LIMITS_POD_SELECTOR_TERMS)
		return -EINVAL;
	json_array_foreach(terms, t, term) {
		const char *lists[] = { "matchExpressions", "matchFields" };
		for (size_t l = 0; l < 2; l++) {
			json_array_foreach(json_object_get(term, lists[l]), r, req) {
				nreqs++;
				nvalues += json_array_size(json_object_get(req, "values"));
			}
		}
	}
	if (nreqs > LIMITS_POD_SELECTOR_EXPRS || nvalues > UINT16_MAX)
		return -EINVAL;
	hdr->nselector = (uint16_t)json_object_size(selector);
	hdr->nterms = (uint16_t)json_array_size(terms);
	hdr->nreqs = (uint16_t)nreqs;
	hdr->nvalues = (uint16_t)nvalues;
	return 0;
}

/* Builds and interns the selection; *out NULL when the pod selects nothing. */
static int
pod__selection(json_t *spec, const struct pod_selection **out)
{
	json_t *selector = json_object_get(spec, "nodeSelector");
	json_t *terms = json_object_get(json_object_get(json_object_get(json_object_get(spec,
	    "affinity"), "nodeAffinity"), "requiredDuringSchedulingIgnoredDuringExecution"),
	    "nodeSelectorTerms");
	struct pod_selection hdr, *s;
	const char **pairs, **values;
	struct kube_selector_req *reqs;
	uint16_t *term_first;
	size_t len, ri = 0, vi = 0, pi = 0, t, r;
	const char *key;
	json_t *val, *term, *req;
	int rc, matched = 0;

	*out = NULL;
	if ((rc = pod__selection_count(selector, terms, &hdr)) < 0)
		return rc;
	if (hdr.nselector == 0 && hdr.nterms == 0)
		return 0;
	len = pod__selection_len(&hdr);
	s = calloc(1, len);
	if (s == NULL)
		return -ENOMEM;
	*s = hdr;
	pairs = (const char **)(void *)(s->data + pod__off_pairs());
	term_first = (uint16_t *)(void *)(s->data + pod__off_terms(s));
	reqs = (struct kube_selector_req *)(void *)(s->data + pod__off_reqs(s));
	values = (const char **)(void *)(s->data + pod__off_values(s));
	rc = -ENOMEM;
	json_object_foreach(selector, key, val) {
		if (!json_is_string(val)) {
			rc = -EINVAL;
			goto fail;
		}
		pairs[pi++] = intern_str(key);
		pairs[pi++] = intern_str(json_string_value(val));
		if (pairs[pi - 1] == NULL || pairs[pi - 2] == NULL)
			goto fail;
	}
	json_array_foreach(terms, t, term) {
		const char *lists[] = { "matchExpressions", "matchFields" };
		term_first[t] = (uint16_t)ri;
		for (size_t l = 0; l < 2; l++) {
			json_array_foreach(json_object_get(term, lists[l]), r, req) {
				struct kube_selector_req *q = &reqs[ri++];
				enum kube_selector_op op;
				json_t *v;
				size_t k;

				q->key = intern_str(json_string_value(json_object_get(req, "key")));
				if (q->key == NULL) {
					rc = json_string_value(json_object_get(req, "key")) == NULL ?
					    -EINVAL : -ENOMEM;
					goto fail;
				}
				if (kube_selector_op_parse(json_string_value(json_object_get(req,
				    "operator")), &op) < 0) {
					rc = -EINVAL;
					goto fail;
				}
				q->op = (uint16_t)op;
				if (l == 1)
					q->op |= POD_SEL_FIELD;
				q->first = (uint16_t)vi;
				json_array_foreach(json_object_get(req, "values"), k, v) {
					values[vi] = intern_str(json_string_value(v));
					if (values[vi] == NULL) {
						rc = json_is_string(v) ? -ENOMEM : -EINVAL;
						goto fail;
					}
					vi++;
					q->n++;
				}
			}
		}
	}
	term_first[hdr.nterms] = (uint16_t)ri;
	*out = intern_blob(s, len, pod__selection_release, &matched);
	if (*out == NULL || matched)
		pod__selection_release(s, len);
	free(s);
	return *out != NULL ? 0 : -ENOMEM;
fail:
	pod__selection_release(s, len);
	free(s);
	return rc;
}

/* ---- tolerations blob ---- */

static void
pod__tolerations_release(const void *data, size_t len)
{
	const struct kube_tolerations *t = data;

	(void)len;
	for (uint32_t i = 0; i < t->n; i++) {
		intern_release(t->items[i].key);
		intern_release(t->items[i].value);
	}
}

static int
pod__tolerations(json_t *list, const struct kube_tolerations **out)
{
	size_t n = json_array_size(list), len, i;
	struct kube_tolerations *t;
	json_t *item;
	int rc = -ENOMEM, matched = 0;

	*out = NULL;
	if (n > LIMITS_POD_TOLERATIONS)
		return -EINVAL;
	len = sizeof(*t) + n * sizeof(t->items[0]);
	t = calloc(1, len);
	if (t == NULL)
		return -ENOMEM;
	json_array_foreach(list, i, item) {
		struct kube_toleration *to = &t->items[t->n];
		struct kube_toleration read;

		if (kube_toleration_read(item, &read) < 0) {
			rc = -EINVAL;
			goto fail;
		}
		*to = read;
		to->key = to->value = NULL;
		t->n++;
		if (read.key != NULL && (to->key = intern_str(read.key)) == NULL)
			goto fail;
		if (read.value != NULL && (to->value = intern_str(read.value)) == NULL)
			goto fail;
	}
	*out = intern_blob(t, len, pod__tolerations_release, &matched);
	if (*out == NULL || matched)
		pod__tolerations_release(t, len);
	free(t);
	return *out != NULL ? 0 : -ENOMEM;
fail:
	pod__tolerations_release(t, len);
	free(t);
	return rc;
}

/* ---- owner key ---- */

/*
 * Without the pod-template-hash label, a suffix of 5–10 lower-case letters
 * and digits with at least one digit is taken for a template hash (hashes
 * are made that way; words such as "canary" are not).
 */
static bool
pod__looks_like_hash(const char *s)
{
	size_t n = strlen(s);
	bool digit = false;

	if (n < 5 || n > 10)
		return false;
	for (; *s != '\0'; s++) {
		if (*s >= '0' && *s <= '9')
			digit = true;
		else if (*s < 'a' || *s > 'z')
			return false;
	}
	return digit;
}

int
pod_owner_key(json_t *pod, char *out, size_t len)
{
	json_t *meta = json_object_get(pod, "metadata"), *ref, *owner = NULL;
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *kind, *name, *hash;
	size_t i;
	int n;

	json_array_foreach(json_object_get(meta, "ownerReferences"), i, ref) {
		if (json_is_true(json_object_get(ref, "controller"))) {
			owner = ref;
			break;
		}
	}
	kind = json_string_value(json_object_get(owner, "kind"));
	name = json_string_value(json_object_get(owner, "name"));
	if (kind == NULL || name == NULL)
		return -ENOENT;
	if (ns == NULL)
		ns = "";
	if (strcmp(kind, "ReplicaSet") == 0) {
		const char *dash = strrchr(name, '-');
		hash = json_string_value(json_object_get(json_object_get(meta, "labels"),
		    "pod-template-hash"));
		/* <deployment>-<pod-template-hash>: the label says so exactly; else the shape does. */
		if (dash != NULL && dash != name &&
		    (hash != NULL ? strcmp(dash + 1, hash) == 0 : pod__looks_like_hash(dash + 1))) {
			n = snprintf(out, len, "%s/Deployment/%.*s", ns, (int)(dash - name), name);
			return n >= 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
		}
	}
	n = snprintf(out, len, "%s/%s/%s", ns, kind, name);
	return n >= 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

/* ---- the object ---- */

static enum pod_phase
pod__phase(const char *s)
{
	static const char *const names[] = { "Unknown", "Pending", "Running", "Succeeded",
		"Failed" };

	for (size_t i = 0; s != NULL && i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return (enum pod_phase)i;
	return POD_PHASE_UNKNOWN;
}

static void
pod__destroy(struct cache_obj *o)
{
	struct pod_info *p = (struct pod_info *)o;

	intern_release(p->obj.index[0]);
	intern_release(p->obj.index[POD_CACHE_INDEX_PENDING]);
	intern_release(p->namespace);
	intern_release(p->owner_key);
	intern_release(p->pool);
	intern_release(p->tolerations);
	intern_release(p->selection);
	resources_release(&p->requests);
	free(p);
}

size_t
pod_info_size(const struct pod_info *p)
{
	return sizeof(*p) + strlen(p->obj.key) + 1 + strlen(p->uid) + 1;
}

static size_t
pod__size(const struct cache_obj *o)
{
	return pod_info_size((const struct pod_info *)o);
}

static struct cache_obj *
pod__parse(json_t *obj, int *rc)
{
	struct pod_info *p = pod_info_parse(obj, rc);

	return p != NULL ? &p->obj : NULL;
}

/*
 * Exactly what pod_info_parse reads (an allow-list for jsonprune): the rest
 * of a Pod (env, volumes, probes, managedFields...) is cut from the text
 * before it is parsed. test_pod_cache checks parsing with and without it
 * gives the same pod_info.
 */
const char *const POD_CACHE_FIELDS[] = {
	"+metadata.name", "+metadata.namespace", "+metadata.uid", "+metadata.resourceVersion",
	"+metadata.creationTimestamp", "+metadata.deletionTimestamp",
	"+metadata.ownerReferences", "+metadata.labels.pod-template-hash",
	"+metadata.annotations",
	"+spec.nodeName", "+spec.resources", "+spec.containers[].resources", "+spec.initContainers[].resources",
	"+spec.initContainers[].restartPolicy", "+spec.overhead", "+spec.tolerations",
	"+spec.nodeSelector", "+spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
	"+status.phase", "+status.conditions", "+status.containerStatuses[].imageID",
	NULL,
};

const struct cache_type POD_CACHE_TYPE = {
	.resource = "pods",
	.prune = POD_CACHE_FIELDS,
	.parse = pod__parse,
	.destroy = pod__destroy,
	.size = pod__size,
};

static int64_t
pod__time(json_t *v)
{
	int64_t ms = 0;

	if (json_is_string(v))
		(void)time_parse_rfc3339(json_string_value(v), &ms);
	return ms;
}

/*
 * The pools a pod names by itself (DESIGN §6.2 rules 1 and 2), as the
 * webhook's annotation would say them ("a" or "a,b"): a pod created while
 * the webhook was bypassed is still its pool's (the fallback, §5.5, serves
 * it). *out stays NULL for a pod that names none. Returns 0 or -ENOMEM.
 */
static int
pod__own_pools(json_t *pod, const char **out)
{
	struct poolpod_match m;
	char text[LIMITS_POOLPOD_POOLS * (LIMITS_NODEPOOL_NAME + 1)];
	size_t off = 0;

	poolpod_detect_own(pod, &m);
	for (size_t i = 0; i < m.npools; i++) {
		size_t len = strlen(m.names[i]);
		if (len == 0 || len > LIMITS_NODEPOOL_NAME || off + len + 2 > sizeof(text))
			continue;
		if (off > 0)
			text[off++] = ',';
		memcpy(text + off, m.names[i], len);
		off += len;
	}
	if (off == 0)
		return 0;
	text[off] = '\0';
	*out = intern_str(text);
	return *out != NULL ? 0 : -ENOMEM;
}

struct pod_info *
pod_info_parse(json_t *pod, int *rc)
{
	json_t *meta = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec");
	json_t *status = json_object_get(pod, "status"), *annotations, *item, *ref;
	const char *name = json_string_value(json_object_get(meta, "name"));
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *uid = json_string_value(json_object_get(meta, "uid"));
	const char *node = json_string_value(json_object_get(spec, "nodeName"));
	const char *pool;
	char key[CACHE_KEY_MAX], owner[CACHE_KEY_MAX + 64];
	struct pod_info *p;
	size_t klen, ulen, i;
	int r;

	*rc = -EINVAL;
	if (cache_key_of(pod, key) < 0 || name == NULL || ns == NULL)
		return NULL;
	if (uid == NULL)
		uid = "";
	klen = strlen(key);
	ulen = strlen(uid);
	p = calloc(1, sizeof(*p) + klen + 1 + ulen + 1);
	if (p == NULL) {
		*rc = -ENOMEM;
		return NULL;
	}
	memcpy(p->storage, key, klen + 1);
	memcpy(p->storage + klen + 1, uid, ulen + 1);
	p->obj.key = p->storage;
	p->name = p->storage + (strlen(ns) + 1);
	p->uid = p->storage + klen + 1;
	cache_obj_init(&p->obj, &POD_CACHE_TYPE);
	if (cache_parse_rv(json_string_value(json_object_get(meta, "resourceVersion")),
	    &p->obj.rv) < 0)
		goto fail;
	*rc = -ENOMEM;
	p->namespace = intern_str(ns);
	if (p->namespace == NULL)
		goto fail;
	if (node != NULL && node[0] != '\0' && (p->obj.index[0] = intern_str(node)) == NULL)
		goto fail;
	if (pod_owner_key(pod, owner, sizeof(owner)) == 0 &&
	    (p->owner_key = intern_str(owner)) == NULL)
		goto fail;
	annotations = json_object_get(meta, "annotations");
	pool = json_string_value(json_object_get(annotations, NODESTATE_POD_ANN_POOL));
	if (pool != NULL && pool[0] != '\0' && (p->pool = intern_str(pool)) == NULL)
		goto fail;
	if (p->pool == NULL && (r = pod__own_pools(pod, &p->pool)) < 0) {
		*rc = r;
		goto fail;
	}
	if (json_object_get(annotations, "kubernetes.io/config.mirror") != NULL)
		p->flags |= POD_FLAG_MIRROR;
	json_array_foreach(json_object_get(meta, "ownerReferences"), i, ref) {
		const char *kind = json_string_value(json_object_get(ref, "kind"));
		if (json_is_true(json_object_get(ref, "controller")) && kind != NULL &&
		    strcmp(kind, "DaemonSet") == 0)
			p->flags |= POD_FLAG_DAEMONSET;
	}
	p->created_ms = pod__time(json_object_get(meta, "creationTimestamp"));
	p->deleted_ms = pod__time(json_object_get(meta, "deletionTimestamp"));
	if ((r = resources_pod_requests(spec, &p->requests)) < 0 ||
	    (r = pod__tolerations(json_object_get(spec, "tolerations"), &p->tolerations)) < 0 ||
	    (r = pod__selection(spec, &p->selection)) < 0) {
		*rc = r;
		goto fail;
	}
	p->phase = (uint8_t)pod__phase(json_string_value(json_object_get(status, "phase")));
	/* The pending index: what the controller's fallback scale-up looks for (§5.5). */
	if (p->pool != NULL && p->obj.index[0] == NULL && p->deleted_ms == 0 &&
	    p->phase == POD_PHASE_PENDING) {
		const char *comma = strchr(p->pool, ',');
		char first[LIMITS_NODEPOOL_NAME + 1];

		if (comma == NULL) {
			p->obj.index[POD_CACHE_INDEX_PENDING] = intern_ref(p->pool);
		} else if ((size_t)(comma - p->pool) <= LIMITS_NODEPOOL_NAME) {
			memcpy(first, p->pool, (size_t)(comma - p->pool));
			first[comma - p->pool] = '\0';
			if ((p->obj.index[POD_CACHE_INDEX_PENDING] = intern_str(first)) == NULL) {
				*rc = -ENOMEM;
				goto fail;
			}
		}
	}
	p->scheduled = KUBE_COND_ABSENT;
	p->ready = KUBE_COND_ABSENT;
	json_array_foreach(json_object_get(status, "conditions"), i, item) {
		const char *type = json_string_value(json_object_get(item, "type"));
		enum kube_cond st = kube_cond_parse(json_string_value(json_object_get(item,
		    "status")));
		if (type == NULL)
			continue;
		if (strcmp(type, "PodScheduled") == 0) {
			const char *reason = json_string_value(json_object_get(item, "reason"));
			p->scheduled = (uint8_t)st;
			if (st == KUBE_COND_FALSE)
				p->sched_since_ms = pod__time(json_object_get(item,
				    "lastTransitionTime"));
			if (st == KUBE_COND_FALSE)
				p->sched_reason = reason == NULL ? POD_SCHED_REASON_OTHER :
				    strcmp(reason, "Unschedulable") == 0 ?
				    POD_SCHED_REASON_UNSCHEDULABLE :
				    strcmp(reason, "SchedulerError") == 0 ?
				    POD_SCHED_REASON_SCHEDULER_ERROR : POD_SCHED_REASON_OTHER;
		} else if (strcmp(type, "Ready") == 0) {
			p->ready = (uint8_t)st;
		}
	}
	i = json_array_size(json_object_get(spec, "containers"));
	p->containers = (uint8_t)(i > 255 ? 255 : i);
	json_array_foreach(json_object_get(status, "containerStatuses"), i, item) {
		const char *image_id = json_string_value(json_object_get(item, "imageID"));
		if (image_id != NULL && image_id[0] != '\0' && p->images_pulled < 255)
			p->images_pulled++;
	}
	*rc = 0;
	return p;
fail:
	pod__destroy(&p->obj);
	return NULL;
}

bool
pod_info_tolerates(const struct pod_info *p, const char *key, const char *value,
    enum kube_taint_effect effect)
{
	const struct kube_tolerations *t = p->tolerations;

	return t != NULL && kube_tolerations_tolerate(t->items, t->n, key, value, effect);
}

/* One requirement against the node's value (have); the values live in the selection. */
static bool
pod__req_matches(const struct pod_selection *s, const struct kube_selector_req *q,
    const char *have)
{
	return kube_selector_matches((enum kube_selector_op)(q->op & ~POD_SEL_FIELD), have,
	    pod_selection_values(s) + q->first, q->n);
}

bool
pod_info_selects(const struct pod_info *p, const char *(*label)(void *ctx, const char *key),
    void *ctx)
{
	const struct pod_selection *s = p->selection;
	const char *const *pairs;
	const uint16_t *first;
	const struct kube_selector_req *reqs;

	if (s == NULL)
		return true;
	pairs = pod_selection_pairs(s);
	for (uint16_t i = 0; i < s->nselector; i++) {
		const char *v = label(ctx, pairs[2 * i]);
		if (v == NULL || strcmp(v, pairs[2 * i + 1]) != 0)
			return false;
	}
	if (s->nterms == 0)
		return true;
	first = pod_selection_term_first(s);
	reqs = pod_selection_reqs(s);
	for (uint16_t t = 0; t < s->nterms; t++) {
		bool ok = first[t] < first[t + 1];      /* an empty term matches nothing */
		for (uint16_t r = first[t]; ok && r < first[t + 1]; r++) {
			/* matchFields: the node's name, asked for as "metadata.name". */
			const char *have = label(ctx, (reqs[r].op & POD_SEL_FIELD) ?
			    "metadata.name" : reqs[r].key);
			if ((reqs[r].op & POD_SEL_FIELD) && strcmp(reqs[r].key, "metadata.name") != 0)
				ok = false;
			else
				ok = pod__req_matches(s, &reqs[r], have);
		}
		if (ok)
			return true;
	}
	return false;
}

/* ---- the cache ---- */

/* A struct pod_cache is the struct cache itself, under a type of its own. */
struct cache *
pod_cache_base(struct pod_cache *pc)
{
	return (struct cache *)pc;
}

struct pod_cache *
pod_cache_new(void)
{
	return (struct pod_cache *)cache_new(&POD_CACHE_TYPE);
}

void
pod_cache_free(struct pod_cache *pc)
{
	cache_free(pod_cache_base(pc));
}

int
pod_cache_start(struct pod_cache *pc, struct kube *k)
{
	char path[KUBE_PATH_MAX];
	int rc = kube_path(path, &KUBE_PODS, NULL, NULL, NULL);

	return rc < 0 ? rc : cache_start(pod_cache_base(pc), k, path, NULL, NULL, 0);
}

struct pod_info *
pod_cache_get(struct pod_cache *pc, const char *ns, const char *name)
{
	char key[CACHE_KEY_MAX];

	if (snprintf(key, sizeof(key), "%s/%s", ns, name) >= (int)sizeof(key))
		return NULL;
	return (struct pod_info *)cache_get(pod_cache_base(pc), key);
}

struct pod__visit {
	int (*fn)(void *ctx, const struct pod_info *p);
	void *ctx;
};

static int
pod__visit(void *ctx, struct cache_obj *o)
{
	struct pod__visit *v = ctx;

	return v->fn(v->ctx, (const struct pod_info *)o);
}

size_t
pod_cache_foreach_on_node(struct pod_cache *pc, const char *node,
    int (*fn)(void *ctx, const struct pod_info *p), void *ctx)
{
	struct pod__visit v = { fn, ctx };

	return cache_foreach(pod_cache_base(pc), node, pod__visit, &v);
}

size_t
pod_cache_foreach_pending(struct pod_cache *pc, const char *pool,
    int (*fn)(void *ctx, const struct pod_info *p), void *ctx)
{
	struct pod__visit v = { fn, ctx };

	return cache_foreach_in(pod_cache_base(pc), POD_CACHE_INDEX_PENDING, pool, pod__visit, &v);
}

size_t
pod_cache_pending_count(struct pod_cache *pc, const char *pool)
{
	return cache_index_count_in(pod_cache_base(pc), POD_CACHE_INDEX_PENDING, pool);
}
