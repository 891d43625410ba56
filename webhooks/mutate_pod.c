/* The Pod mutating webhook (/admission/mutate-pod, DESIGN §6.2): tolerations, pool annotation, scheduler routing. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/admission.h"
#include "stratos/jsonpatch.h"
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
	json_decref(out->patch);
	out->patch = NULL;
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

/*
 * Adds a toleration {key, Exists, effect} for the taint unless the pod's
 * tolerations or the ones added so far tolerate it already.
 */
static int
mutate_pod__tolerate(const json_t *existing, json_t *added, const char *key, const char *value,
    const char *effect)
{
	json_t *t;

	if (poolpod_tolerates(existing, key, value, effect) ||
	    poolpod_tolerates(added, key, value, effect))
		return 0;
	t = json_pack("{s:s, s:s, s:s}", "key", key, "operator", "Exists", "effect", effect);
	if (t == NULL || json_array_append_new(added, t) < 0)
		return -ENOMEM;
	return 0;
}

static int
mutate_pod__tolerations(const struct poolpod_match *m, const json_t *spec, json_t *patch)
{
	const json_t *existing = json_object_get(spec, "tolerations");
	json_t *added = json_array();
	size_t i;
	json_t *t;
	int rc = 0;

	if (added == NULL)
		return -ENOMEM;
	if (json_is_null(existing))
		existing = NULL;
	if (existing != NULL && !json_is_array(existing)) {
		json_decref(added);
		return -EINVAL;
	}
	for (i = 0; i < POOLPOD_STANDARD_TAINTS && rc == 0; i++)
		rc = mutate_pod__tolerate(existing, added, POOLPOD_TAINTS[i].key,
		    POOLPOD_TAINTS[i].value, POOLPOD_TAINTS[i].effect);
	for (size_t p = 0; p < m->npools && rc == 0; p++) {
		const struct nodepool *np = m->pools[p];
		for (i = 0; np != NULL && i < np->nstartup_taints && rc == 0; i++)
			rc = mutate_pod__tolerate(existing, added, np->startup_taints[i].key,
			    np->startup_taints[i].value,
			    NODEPOOL_EFFECT_NAMES[np->startup_taints[i].effect]);
	}
	if (rc < 0 || json_array_size(added) == 0) {
		json_decref(added);
		return rc;
	}
	if (existing == NULL)
		return jsonpatch_append(patch, "add", added, "spec", "tolerations", NULL);
	json_array_foreach(added, i, t) {
		rc = jsonpatch_append(patch, "add", json_incref(t), "spec", "tolerations", "-", NULL);
		if (rc < 0)
			break;
	}
	json_decref(added);
	return rc;
}

static int
mutate_pod__annotation(const json_t *pod, const char *value, json_t *patch)
{
	const json_t *md = json_object_get(pod, "metadata");
	const json_t *ann = json_object_get(md, "annotations");
	const char *cur;

	if (md == NULL || json_is_null(md))
		return jsonpatch_append(patch, "add",
		    json_pack("{s:{s:s}}", "annotations", POOLPOD_ANNOTATION, value), "metadata", NULL);
	if (!json_is_object(md))
		return -EINVAL;
	if (ann == NULL || json_is_null(ann))
		return jsonpatch_append(patch, "add", json_pack("{s:s}", POOLPOD_ANNOTATION, value),
		    "metadata", "annotations", NULL);
	if (!json_is_object(ann))
		return -EINVAL;
	cur = json_string_value(json_object_get(ann, POOLPOD_ANNOTATION));
	if (cur != NULL && strcmp(cur, value) == 0)
		return 0;
	return jsonpatch_append(patch, "add", json_string(value), "metadata", "annotations",
	    POOLPOD_ANNOTATION, NULL);
}

/* requests / limits of the first container: MUTATE_POD_RESOURCE: "1", creating what is absent. */
static int
mutate_pod__resource(const json_t *spec, json_t *patch)
{
	static const char *const lists[] = { "requests", "limits" };
	const json_t *containers = json_object_get(spec, "containers");
	const json_t *c0 = json_array_get(containers, 0);
	const json_t *res = json_object_get(c0, "resources");
	int rc;

	if (!json_is_object(c0))
		return -EINVAL;
	if (res == NULL || json_is_null(res))
		return jsonpatch_append(patch, "add",
		    json_pack("{s:{s:s}, s:{s:s}}", "requests", MUTATE_POD_RESOURCE, "1",
		    "limits", MUTATE_POD_RESOURCE, "1"), "spec", "containers", "0", "resources", NULL);
	if (!json_is_object(res))
		return -EINVAL;
	for (size_t i = 0; i < 2; i++) {
		const json_t *l = json_object_get(res, lists[i]);
		const char *cur;

		if (l == NULL || json_is_null(l)) {
			rc = jsonpatch_append(patch, "add", json_pack("{s:s}", MUTATE_POD_RESOURCE, "1"),
			    "spec", "containers", "0", "resources", lists[i], NULL);
		} else if (!json_is_object(l)) {
			return -EINVAL;
		} else {
			cur = json_string_value(json_object_get(l, MUTATE_POD_RESOURCE));
			if (cur != NULL && strcmp(cur, "1") == 0)
				continue;
			rc = jsonpatch_append(patch, "add", json_string("1"), "spec", "containers", "0",
			    "resources", lists[i], MUTATE_POD_RESOURCE, NULL);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void
mutate_pod__error(struct mutate_pod_outcome *out, const char *why)
{
	json_decref(out->patch);
	out->patch = NULL;
	out->result = MUTATE_POD_ERROR;
	snprintf(out->error, sizeof(out->error), "%s", why);
}

void
mutate_pod_review(const struct mutate_pod *mp, const struct pools_snapshot *snap,
    const json_t *pod, struct mutate_pod_outcome *out)
{
	const json_t *spec = json_object_get(pod, "spec");
	const char *sched, *target;
	size_t len = 0;
	int rc;

	memset(out, 0, sizeof(*out));
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
	out->patch = jsonpatch_new();
	if (out->patch == NULL) {
		mutate_pod__error(out, "out of memory");
		return;
	}
	rc = mutate_pod__tolerations(&out->match, spec, out->patch);
	if (rc == 0)
		rc = mutate_pod__annotation(pod, out->pools, out->patch);
	if (rc == 0 && mp->scheduler_name != NULL && (sched == NULL || strcmp(sched, target) != 0))
		rc = jsonpatch_append(out->patch, "add", json_string(mp->scheduler_name), "spec",
		    "schedulerName", NULL);
	if (rc == 0 && mp->managed_resource)
		rc = mutate_pod__resource(spec, out->patch);
	if (rc < 0) {
		mutate_pod__error(out, rc == -EINVAL ? "the pod has a field of the wrong type" :
		    "out of memory");
		return;
	}
	out->result = MUTATE_POD_MUTATED;
	if (json_array_size(out->patch) == 0) {
		/* Everything was there already (a re-admitted pod). */
		json_decref(out->patch);
		out->patch = NULL;
	}
}

/* "namespace/name", or "namespace/generateName*" for pods that have no name yet. */
static void
mutate_pod__pod_name(const struct admission_request *ar, char *out, size_t len)
{
	const json_t *md = json_object_get(ar->object, "metadata");
	const char *gen = json_string_value(json_object_get(md, "generateName"));

	if (ar->name[0] != '\0')
		snprintf(out, len, "%s/%s", ar->namespace, ar->name);
	else
		snprintf(out, len, "%s/%s*", ar->namespace, gen != NULL ? gen : "");
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
	int status;

	if (admission_request_parse(req, &ar, &status, err, sizeof(err)) < 0) {
		log_msg(LOG_LEVEL_WARN, json_pack("{s:s}", "handler", "mutate-pod"),
		    "bad admission request: %s", err);
		admission_respond_error(resp, status, err);
		metrics_counter_add(mp->pods_total, 1, "", "error");
		admission_request_free(&ar);
		return;
	}
	if (strcmp(ar.group, "") != 0 || strcmp(ar.kind, "Pod") != 0 ||
	    strcmp(ar.operation, "CREATE") != 0 || ar.sub_resource[0] != '\0' || ar.object == NULL) {
		/* Not ours to look at (a webhook configuration broader than it should be). */
		(void)admission_respond(resp, ar.uid, &v);
		admission_request_free(&ar);
		return;
	}
	snap = pools_acquire(mp->pools);
	mutate_pod_review(mp, snap, ar.object, &out);
	if (out.match.npools > 0 && out.match.pools[0] != NULL && out.result == MUTATE_POD_MUTATED)
		pool_label = out.match.pools[0]->name;
	metrics_counter_add(mp->pods_total, 1, pool_label, mutate_pod_result_name(out.result));
	pools_release(snap);
	if (out.result == MUTATE_POD_MUTATED)
		v.patch = out.patch;
	for (size_t i = 0; i < out.nwarnings; i++)
		warnings[i] = out.warnings[i];
	v.warnings = warnings;
	v.nwarnings = out.nwarnings;
	if (out.result != MUTATE_POD_SKIPPED || log_enabled(LOG_LEVEL_DEBUG)) {
		mutate_pod__pod_name(&ar, podname, sizeof(podname));
		log_msg(out.result == MUTATE_POD_ERROR ? LOG_LEVEL_WARN :
		    out.result == MUTATE_POD_SKIPPED ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO,
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
	admission_request_free(&ar);
}
