/* The Pod mutating webhook (/admission/mutate-pod, DESIGN §6.2): tolerations, pool annotation, scheduler routing. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/admission.h"
#include "stratos/jsonpatch.h"
#include "stratos/jsonscan.h"
#include "stratos/log.h"
#include "stratos/metrics.h"
#include "stratos/mutate_pod.h"

#define MUTATE_POD_DEFAULT_SCHEDULER "default-scheduler"

struct mutate_pod {
	struct pools *pools;
	char *scheduler_name;
	bool managed_resource;
	struct metrics_family *pods_total;
};

const char *
mutate_pod_result_name(enum mutate_pod_result r)
{
	switch (r) {
	case MUTATE_POD_MUTATED:
		return "mutated";
	case MUTATE_POD_AMBIGUOUS:
		return "ambiguous";
	case MUTATE_POD_ERROR:
		return "error";
	default:
		return "skipped";
	}
}

struct mutate_pod *
mutate_pod_new(struct pools *pools, const struct mutate_pod_options *opt)
{
	static const char *const labels[] = { "pool", "result", NULL };
	struct mutate_pod *mp = calloc(1, sizeof(*mp));

	if (mp == NULL)
		return NULL;
	mp->pools = pools;
	mp->managed_resource = opt != NULL && opt->managed_resource;
	if (opt != NULL && opt->scheduler_name != NULL && opt->scheduler_name[0] != '\0') {
		mp->scheduler_name = strdup(opt->scheduler_name);
		if (mp->scheduler_name == NULL) {
			free(mp);
			return NULL;
		}
	}
	mp->pods_total = metrics_register(METRICS_COUNTER, "stratos_admission_pods_total",
	    "Pods seen by the mutating webhook, by pool and result "
	    "(mutated, skipped, ambiguous, error).", labels, NULL, 0);
	return mp;
}

void
mutate_pod_free(struct mutate_pod *mp)
{
	if (mp == NULL)
		return;
	free(mp->scheduler_name);
	free(mp);
}

void
mutate_pod_outcome_free(struct mutate_pod_outcome *out)
{
	if (out == NULL)
		return;
	buf_free(&out->patch);
}

static void
mutate_pod__warn(struct mutate_pod_outcome *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
mutate_pod__warn(struct mutate_pod_outcome *out, const char *fmt, ...)
{
	va_list ap;

	if (out->nwarnings == LIMITS_ADMISSION_WARNINGS)
		return;
	va_start(ap, fmt);
	vsnprintf(out->warnings[out->nwarnings++], sizeof(out->warnings[0]), fmt, ap);
	va_end(ap);
}

/* Most tolerations one pod can be given: the standard ones and the startup taints of its pools. */
#define MUTATE_POD_TOLERATIONS_MAX 128

/* The tolerations being added: each {key, Exists, effect}. */
struct mutate_pod__added {
	size_t n;
	const char *key[MUTATE_POD_TOLERATIONS_MAX];
	enum kube_taint_effect effect[MUTATE_POD_TOLERATIONS_MAX];
};

/* The pod's own tolerations, read once (all of them when they fit, else json is scanned). */
struct mutate_pod__existing {
	const json_t *json;
	size_t n;
	bool all;
	struct kube_toleration t[MUTATE_POD_TOLERATIONS_MAX];
};

static void
mutate_pod__existing_read(struct mutate_pod__existing *ex, const json_t *tolerations)
{
	size_t i;
	json_t *item;

	ex->json = tolerations;
	ex->n = 0;
	ex->all = json_array_size(tolerations) <= MUTATE_POD_TOLERATIONS_MAX;
	if (!ex->all)
		return;
	/* One the API server would refuse tolerates nothing: skipped. */
	json_array_foreach(tolerations, i, item)
		if (kube_toleration_read(item, &ex->t[ex->n]) == 0)
			ex->n++;
}

/* Queues a toleration for the taint unless the pod, or one queued already, tolerates it. */
static int
mutate_pod__tolerate(const struct mutate_pod__existing *ex, struct mutate_pod__added *added,
    const char *key, const char *value, enum kube_taint_effect effect)
{
	bool tolerated = ex->all ? kube_tolerations_tolerate(ex->t, ex->n, key, value, effect) :
	    kube_tolerations_json_tolerate(ex->json, key, value, effect);

	if (tolerated)
		return 0;
	for (size_t i = 0; i < added->n; i++)
		if (strcmp(added->key[i], key) == 0 && added->effect[i] == effect)
			return 0;
	if (added->n == MUTATE_POD_TOLERATIONS_MAX)
		return -E2BIG;
	added->key[added->n] = key;
	added->effect[added->n++] = effect;
	return 0;
}

/* {"key":K,"operator":"Exists","effect":E} */
static int
mutate_pod__toleration_json(struct buf *out, const char *key, enum kube_taint_effect effect)
{
	int rc = buf_append_str(out, "{\"key\":");

	if (rc == 0)
		rc = jsonpatch_text_string(out, key);
	if (rc == 0)
		rc = buf_append_str(out, ",\"operator\":\"Exists\",\"effect\":");
	if (rc == 0)
		rc = jsonpatch_text_string(out, kube_effect_name(effect));
	if (rc == 0)
		rc = buf_append_str(out, "}");
	return rc;
}

static int
mutate_pod__tolerations(const struct poolpod_match *m, const json_t *spec, struct buf *patch,
    struct buf *val)
{
	const json_t *existing = json_object_get(spec, "tolerations");
	struct mutate_pod__added added;
	struct mutate_pod__existing ex;
	size_t i;
	int rc = 0;

	added.n = 0;
	if (json_is_null(existing))
		existing = NULL;
	if (existing != NULL && !json_is_array(existing))
		return -EINVAL;
	mutate_pod__existing_read(&ex, existing);
	for (i = 0; i < POOLPOD_STANDARD_TAINTS && rc == 0; i++)
		rc = mutate_pod__tolerate(&ex, &added, POOLPOD_TAINTS[i].key,
		    POOLPOD_TAINTS[i].value, POOLPOD_TAINTS[i].effect);
	for (size_t p = 0; p < m->npools && rc == 0; p++) {
		const struct nodepool *np = m->pools[p];
		for (i = 0; np != NULL && i < np->nstartup_taints && rc == 0; i++)
			rc = mutate_pod__tolerate(&ex, &added, np->startup_taints[i].key,
			    np->startup_taints[i].value, np->startup_taints[i].effect);
	}
	if (rc < 0 || added.n == 0)
		return rc;
	/* No tolerations yet: the whole array in one op; else one "/-" append each. */
	if (existing == NULL) {
		buf_reset(val);
		rc = buf_append_str(val, "[");
		for (i = 0; i < added.n && rc == 0; i++) {
			if (i > 0)
				rc = buf_append_str(val, ",");
			if (rc == 0)
				rc = mutate_pod__toleration_json(val, added.key[i], added.effect[i]);
		}
		if (rc == 0)
			rc = buf_append_str(val, "]");
		if (rc == 0)
			rc = jsonpatch_text_op(patch, "add", val->data, "spec", "tolerations", NULL);
		return rc;
	}
	for (i = 0; i < added.n && rc == 0; i++) {
		buf_reset(val);
		rc = mutate_pod__toleration_json(val, added.key[i], added.effect[i]);
		if (rc == 0)
			rc = jsonpatch_text_op(patch, "add", val->data, "spec", "tolerations", "-", NULL);
	}
	return rc;
}

/* {"<key>":"<value>"} */
static int
mutate_pod__map1(struct buf *val, const char *key, const char *value)
{
	int rc;

	buf_reset(val);
	rc = buf_append_str(val, "{");
	if (rc == 0)
		rc = jsonpatch_text_string(val, key);
	if (rc == 0)
		rc = buf_append_str(val, ":");
	if (rc == 0)
		rc = jsonpatch_text_string(val, value);
	if (rc == 0)
		rc = buf_append_str(val, "}");
	return rc;
}

static int
mutate_pod__string(struct buf *val, const char *value)
{
	buf_reset(val);
	return jsonpatch_text_string(val, value);
}

static int
mutate_pod__annotation(const json_t *pod, const char *value, struct buf *patch, struct buf *val)
{
	const json_t *md = json_object_get(pod, "metadata");
	const json_t *ann = json_object_get(md, "annotations");
	const char *cur;
	int rc;

	if (md == NULL || json_is_null(md)) {
		rc = mutate_pod__map1(val, NODESTATE_POD_ANN_POOL, value);
		/* {"annotations":{...}} around it */
		if (rc == 0) {
			struct buf wrap;
			buf_init(&wrap, LIMITS_ADMISSION_PATCH);
			rc = buf_append_str(&wrap, "{\"annotations\":");
			if (rc == 0)
				rc = buf_append(&wrap, val->data, val->len);
			if (rc == 0)
				rc = buf_append_str(&wrap, "}");
			if (rc == 0)
				rc = jsonpatch_text_op(patch, "add", wrap.data, "metadata", NULL);
			buf_free(&wrap);
		}
		return rc;
	}
	if (!json_is_object(md))
		return -EINVAL;
	if (ann == NULL || json_is_null(ann)) {
		rc = mutate_pod__map1(val, NODESTATE_POD_ANN_POOL, value);
		return rc == 0 ? jsonpatch_text_op(patch, "add", val->data, "metadata", "annotations",
		    NULL) : rc;
	}
	if (!json_is_object(ann))
		return -EINVAL;
	cur = json_string_value(json_object_get(ann, NODESTATE_POD_ANN_POOL));
	if (cur != NULL && strcmp(cur, value) == 0)
		return 0;
	rc = mutate_pod__string(val, value);
	return rc == 0 ? jsonpatch_text_op(patch, "add", val->data, "metadata", "annotations",
	    NODESTATE_POD_ANN_POOL, NULL) : rc;
}

/* requests / limits of the first container: NODESTATE_POOL_POD_RESOURCE: "1", creating what is absent. */
static int
mutate_pod__resource(const json_t *spec, struct buf *patch, struct buf *val)
{
	static const char *const lists[] = { "requests", "limits" };
	const json_t *containers = json_object_get(spec, "containers");
	const json_t *c0 = json_array_get(containers, 0);
	const json_t *res = json_object_get(c0, "resources");
	int rc;

	if (!json_is_object(c0))
		return -EINVAL;
	if (res == NULL || json_is_null(res))
		return jsonpatch_text_op(patch, "add", "{\"requests\":{\"" NODESTATE_POOL_POD_RESOURCE "\":\"1\"},"
		    "\"limits\":{\"" NODESTATE_POOL_POD_RESOURCE "\":\"1\"}}", "spec", "containers", "0",
		    "resources", NULL);
	if (!json_is_object(res))
		return -EINVAL;
	(void)val;
	for (size_t i = 0; i < 2; i++) {
		const json_t *l = json_object_get(res, lists[i]);
		const char *cur;

		if (l == NULL || json_is_null(l)) {
			rc = jsonpatch_text_op(patch, "add", "{\"" NODESTATE_POOL_POD_RESOURCE "\":\"1\"}", "spec",
			    "containers", "0", "resources", lists[i], NULL);
		} else if (!json_is_object(l)) {
			return -EINVAL;
		} else {
			cur = json_string_value(json_object_get(l, NODESTATE_POOL_POD_RESOURCE));
			if (cur != NULL && strcmp(cur, "1") == 0)
				continue;
			rc = jsonpatch_text_op(patch, "add", "\"1\"", "spec", "containers", "0",
			    "resources", lists[i], NODESTATE_POOL_POD_RESOURCE, NULL);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void
mutate_pod__error(struct mutate_pod_outcome *out, const char *why)
{
	buf_reset(&out->patch);
	out->result = MUTATE_POD_ERROR;
	snprintf(out->error, sizeof(out->error), "%s", why);
}

void
mutate_pod_review(const struct mutate_pod *mp, const struct pools_snapshot *snap,
    const json_t *pod, struct mutate_pod_outcome *out)
{
	const json_t *spec = json_object_get(pod, "spec");
	const char *sched, *target;
	struct buf val;
	size_t len = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	buf_init(&out->patch, LIMITS_ADMISSION_PATCH);
	out->result = MUTATE_POD_SKIPPED;
	if (!json_is_object(pod) || !json_is_object(spec)) {
		mutate_pod__error(out, "the pod has no spec");
		return;
	}
	/* A pod with nodeName set bypasses the scheduler and so the whole mechanism. */
	if (json_string_value(json_object_get(spec, "nodeName")) != NULL &&
	    json_string_length(json_object_get(spec, "nodeName")) > 0)
		return;
	poolpod_detect(snap, pod, &out->match);
	if (out->match.rule == POOLPOD_NONE)
		return;
	if (out->match.rule == POOLPOD_AMBIGUOUS) {
		out->result = MUTATE_POD_AMBIGUOUS;
		mutate_pod__warn(out, "stratos: nodeSelector matches NodePools %s, %s%s; "
		    "not treated as a pool pod", out->match.names[0], out->match.names[1],
		    out->match.nambiguous > 2 ? " and more" : "");
		return;
	}
	for (size_t i = 0; i < out->match.npools; i++) {
		int n = snprintf(out->pools + len, sizeof(out->pools) - len, "%s%s", i > 0 ? "," : "",
		    out->match.names[i]);
		if (n < 0 || (size_t)n >= sizeof(out->pools) - len) {
			mutate_pod__error(out, "too many pools for the annotation");
			return;
		}
		len += (size_t)n;
		if (out->match.pools[i] == NULL)
			mutate_pod__warn(out, "stratos: NodePool %s not found; its startup taints "
			    "are not tolerated", out->match.names[i]);
	}
	if (out->match.truncated)
		mutate_pod__warn(out, "stratos: only the first %u pools of the node affinity are used",
		    LIMITS_POOLPOD_POOLS);
	/*
	 * A pool pod is only safe on a scheduler that calls the extender: the
	 * tolerations make stopped nodes feasible. A pod that chose another
	 * scheduler keeps its choice and gets nothing.
	 */
	target = mp->scheduler_name != NULL ? mp->scheduler_name : MUTATE_POD_DEFAULT_SCHEDULER;
	sched = json_string_value(json_object_get(spec, "schedulerName"));
	if (sched != NULL && sched[0] != '\0' && strcmp(sched, target) != 0 &&
	    strcmp(sched, MUTATE_POD_DEFAULT_SCHEDULER) != 0) {
		out->nwarnings = 0;
		mutate_pod__warn(out, "stratos: schedulerName %s kept; the pod will not use "
		    "standby nodes of %s", sched, out->pools);
		out->pools[0] = '\0';
		return;
	}
	/* One scratch buffer for every value: a handful of allocations per pod, not a tree. */
	buf_init(&val, LIMITS_ADMISSION_PATCH);
	rc = mutate_pod__tolerations(&out->match, spec, &out->patch, &val);
	if (rc == 0)
		rc = mutate_pod__annotation(pod, out->pools, &out->patch, &val);
	if (rc == 0 && mp->scheduler_name != NULL && (sched == NULL || strcmp(sched, target) != 0)) {
		rc = mutate_pod__string(&val, mp->scheduler_name);
		if (rc == 0)
			rc = jsonpatch_text_op(&out->patch, "add", val.data, "spec", "schedulerName", NULL);
	}
	if (rc == 0 && mp->managed_resource)
		rc = mutate_pod__resource(spec, &out->patch, &val);
	/* Nothing to add (a re-admitted pod) leaves the patch empty: no patch is sent. */
	if (rc == 0 && out->patch.len > 0)
		rc = jsonpatch_text_end(&out->patch);
	buf_free(&val);
	if (rc < 0) {
		mutate_pod__error(out, rc == -EINVAL ? "the pod has a field of the wrong type" :
		    rc == -E2BIG ? "the patch would be too large" : "out of memory");
		return;
	}
	out->result = MUTATE_POD_MUTATED;
}

/* "namespace/name", or "namespace/generateName*" for pods that have no name yet. */
static void
mutate_pod__pod_name(const struct admission_request *ar, const json_t *pod, char *out, size_t len)
{
	const json_t *md = json_object_get(pod, "metadata");
	const char *gen = json_string_value(json_object_get(md, "generateName"));

	if (ar->name[0] != '\0')
		snprintf(out, len, "%s/%s", ar->namespace, ar->name);
	else
		snprintf(out, len, "%s/%s*", ar->namespace, gen != NULL ? gen : "");
}

/* obj[key] = the tree of v, unless v is ABSENT; *oom when memory ran out (or obj is NULL). */
static void
mutate_pod__put(json_t *obj, const char *key, struct jsonscan_value v, bool *oom)
{
	json_t *j;

	if (v.type == JSONSCAN_ABSENT)
		return;
	j = obj != NULL ? jsonscan_json(v) : NULL;
	if (j == NULL || json_object_set_new(obj, key, j) < 0)
		*oom = true;
}

/* obj[key] = child (taken); returns child, or NULL with *oom (child is then freed). */
static json_t *
mutate_pod__child(json_t *obj, const char *key, json_t *child, bool *oom)
{
	if (obj == NULL || child == NULL || json_object_set_new(obj, key, json_incref(child)) < 0) {
		json_decref(child);
		*oom = true;
		return NULL;
	}
	json_decref(child);     /* obj holds it now */
	return child;
}

/*
 * The parts of a Pod that mutate_pod_review(), poolpod_detect() and the log
 * line read (containers[0].resources only with --managed-resource), as a
 * small tree: the rest of the object (images, env, probes,
 * volumes, managedFields...) is never parsed. A field of the wrong type is
 * kept as it is, so the review reports it as it would on the whole pod.
 * Keep in step with what those read: test_mutate_pod checks that the
 * handler's answers equal the review of the whole pod. NULL on ENOMEM.
 */
static json_t *
mutate_pod__essentials(const struct mutate_pod *mp, struct jsonscan_value pod)
{
	static const char *const pod_keys[] = { "metadata", "spec" };
	static const char *const spec_keys[] = { "nodeName", "nodeSelector", "schedulerName",
		"tolerations", "affinity", "containers" };
	static const char *const md_keys[] = { "annotations", "generateName" };
	struct jsonscan_value top[2], sp[6], md[2], v;
	json_t *out, *t;
	bool oom = false;

	if (pod.type != JSONSCAN_OBJECT)
		return jsonscan_json(pod);
	if ((out = json_object()) == NULL)
		return NULL;
	jsonscan_get_many(pod, pod_keys, 2, top);
	if (top[0].type == JSONSCAN_OBJECT) {
		jsonscan_get_many(top[0], md_keys, 2, md);
		t = mutate_pod__child(out, "metadata", json_object(), &oom);
		mutate_pod__put(t, "generateName", md[1], &oom);
		if (md[0].type == JSONSCAN_OBJECT) {
			/* Only the pool annotation is read: whether it is there, and its value. */
			json_t *ann = mutate_pod__child(t, "annotations", json_object(), &oom);
			mutate_pod__put(ann, NODESTATE_POD_ANN_POOL, jsonscan_get(md[0], NODESTATE_POD_ANN_POOL), &oom);
		} else {
			mutate_pod__put(t, "annotations", md[0], &oom);
		}
	} else {
		mutate_pod__put(out, "metadata", top[0], &oom);
	}
	if (top[1].type != JSONSCAN_OBJECT) {
		mutate_pod__put(out, "spec", top[1], &oom);
		goto out;
	}
	jsonscan_get_many(top[1], spec_keys, 6, sp);
	t = mutate_pod__child(out, "spec", json_object(), &oom);
	for (size_t i = 0; i < 4; i++)
		mutate_pod__put(t, spec_keys[i], sp[i], &oom);
	/* affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution, nothing else. */
	v = jsonscan_path(sp[4], "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
	    NULL);
	if (v.type != JSONSCAN_ABSENT) {
		json_t *aff = mutate_pod__child(t, "affinity", json_object(), &oom);
		json_t *na = mutate_pod__child(aff, "nodeAffinity", json_object(), &oom);
		mutate_pod__put(na, "requiredDuringSchedulingIgnoredDuringExecution", v, &oom);
	}
	/* containers[0].resources, nothing else, and only when the review adds to it. */
	if (mp->managed_resource && sp[5].type == JSONSCAN_ARRAY) {
		json_t *list = mutate_pod__child(t, "containers", json_array(), &oom), *c0 = NULL;

		v = jsonscan_index(sp[5], 0);
		if (v.type == JSONSCAN_OBJECT) {
			if ((c0 = json_object()) != NULL)
				mutate_pod__put(c0, "resources", jsonscan_get(v, "resources"), &oom);
		} else if (v.type != JSONSCAN_ABSENT) {
			c0 = jsonscan_json(v);
		}
		/* (appending to a NULL list frees c0) */
		if (v.type != JSONSCAN_ABSENT && (c0 == NULL || json_array_append_new(list, c0) < 0))
			oom = true;
	}
out:
	if (oom) {
		json_decref(out);
		return NULL;
	}
	return out;
}

void
mutate_pod_handle(void *ctx, const struct server_request *req, struct server_response *resp)
{
	const struct mutate_pod *mp = ctx;
	struct admission_request ar;
	struct admission_verdict v = { .allowed = true };
	struct mutate_pod_outcome out;
	const struct pools_snapshot *snap;
	const char *warnings[LIMITS_ADMISSION_WARNINGS];
	const char *pool_label = "";
	char err[256], podname[320];
	json_t *pod;
	int status;

	if (admission_request_scan(req, &ar, &status, err, sizeof(err)) < 0) {
		log_msg(LOG_LEVEL_WARN, json_pack("{s:s}", "handler", "mutate-pod"),
		    "bad admission request: %s", err);
		admission_respond_error(resp, status, err);
		metrics_counter_add(mp->pods_total, 1, "", "error");
		admission_request_free(&ar);
		return;
	}
	if (strcmp(ar.group, "") != 0 || strcmp(ar.kind, "Pod") != 0 ||
	    strcmp(ar.operation, "CREATE") != 0 || ar.sub_resource[0] != '\0' ||
	    ar.object_text.type == JSONSCAN_ABSENT) {
		/* Not ours to look at (a webhook configuration broader than it should be). */
		(void)admission_respond(resp, ar.uid, &v);
		admission_request_free(&ar);
		return;
	}
	if ((pod = mutate_pod__essentials(mp, ar.object_text)) == NULL) {
		struct admission_verdict plain = { .allowed = true };
		log_warn("mutate-pod: out of memory, pod admitted unchanged");
		metrics_counter_add(mp->pods_total, 1, "", "error");
		(void)admission_respond(resp, ar.uid, &plain);
		admission_request_free(&ar);
		return;
	}
	snap = pools_acquire(mp->pools);
	mutate_pod_review(mp, snap, pod, &out);
	if (out.match.npools > 0 && out.match.pools[0] != NULL && out.result == MUTATE_POD_MUTATED)
		pool_label = out.match.pools[0]->name;
	metrics_counter_add(mp->pods_total, 1, pool_label, mutate_pod_result_name(out.result));
	pools_release(snap);
	if (out.result == MUTATE_POD_MUTATED && out.patch.len > 0) {
		v.patch = out.patch.data;
		v.patch_len = out.patch.len;
	}
	for (size_t i = 0; i < out.nwarnings; i++)
		warnings[i] = out.warnings[i];
	v.warnings = warnings;
	v.nwarnings = out.nwarnings;
	/* No I/O on the hot path: decisions are counted; only our own failures are logged. */
	if (out.result == MUTATE_POD_ERROR || log_enabled(LOG_LEVEL_DEBUG)) {
		mutate_pod__pod_name(&ar, pod, podname, sizeof(podname));
		log_msg(out.result == MUTATE_POD_ERROR ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG,
		    json_pack("{s:s, s:s, s:s, s:s, s:b}", "pod", podname, "pool", out.pools,
		    "rule", poolpod_rule_name(out.match.rule),
		    "result", mutate_pod_result_name(out.result), "dryRun", ar.dry_run),
		    "%s%s", out.result == MUTATE_POD_ERROR ? "pod admitted unchanged: " : "pod admission",
		    out.result == MUTATE_POD_ERROR ? out.error : "");
	}
	if (admission_respond(resp, ar.uid, &v) < 0) {
		/* Never fail a pod for our own trouble: answer allowed without the patch. */
		struct admission_verdict plain = { .allowed = true };
		log_warn("mutate-pod: cannot send the patch, pod admitted unchanged");
		(void)admission_respond(resp, ar.uid, &plain);
	}
	mutate_pod_outcome_free(&out);
	json_decref(pod);
	admission_request_free(&ar);
}
