/* Unit tests for the Pod mutating webhook: pool-pod detection, the JSON Patch for every pod shape, the handler. */
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>

#include "test_util.h"
#include "patch_apply.h"
#include "stratos/admission.h"
#include "stratos/mutate_pod.h"
#include "stratos/pools.h"
#include "stratos/pools_file.h"

static struct pools *pools;
static json_t *last_patch;      /* the patch of the last review(), parsed; NULL when none */

static void
assert_json_equal(const json_t *got, const json_t *want)
{
	if (!json_equal(got, want)) {
		char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
		char *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
		print_error("got:  %s\nwant: %s\n", g, w);
		free(g);
		free(w);
		fail();
	}
}

static const char *gpu_pools =
    "[{'apiVersion':'stratos.sh/v1alpha1','kind':'NodePool','metadata':{'name':'gpu'},"
    "  'spec':{'poolSize':4,'minStandby':1,'template':{'nodeClassRef':{'name':'inference'},"
    "  'labels':{'team':'ml','accelerator':'a10g'},"
    "  'startupTaints':[{'key':'nvidia.com/gpu','value':'present','effect':'NoSchedule'},"
    "                   {'key':'example.com/booting','effect':'NoExecute'},"
    "                   {'key':'node.eks.amazonaws.com/not-ready','value':'true','effect':'NoSchedule'}]}}},"
    " {'apiVersion':'stratos.sh/v1alpha1','kind':'NodePool','metadata':{'name':'gpu-spot'},"
    "  'spec':{'poolSize':4,'minStandby':0,'template':{'nodeClassRef':{'name':'inference'},"
    "  'labels':{'team':'ml'}}}}]";

static int
setup(void **state)
{
	json_t *extra = J(gpu_pools);
	size_t i;
	json_t *p;

	(void)state;
	pools = pools_new();
	assert_non_null(pools);
	assert_int_equal(pools_file_load(pools, FIXTURE("seed-examples.yaml"), stderr), 0);
	json_array_foreach(extra, i, p)
		assert_int_equal(pools_upsert_nodepool(pools, p, NULL), 0);
	json_decref(extra);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	pools_free(pools);
	json_decref(last_patch);
	return 0;
}

static json_t *call(server_handler_fn fn, void *ctx, const char *method, const char *body,
    int *status);
static json_t *decode_patch(const char *b64);

/*
 * The handler reads only a few fields of the pod's text (jsonscan), the
 * review gets the whole tree: both must answer the same for every pod.
 */
static void
assert_handler_agrees(struct mutate_pod *mp, const json_t *pod, const struct mutate_pod_outcome *out)
{
	json_t *doc = json_pack("{s:s, s:s, s:{s:s, s:{s:s, s:s, s:s}, s:s, s:s, s:O}}",
	    "apiVersion", "admission.k8s.io/v1", "kind", "AdmissionReview", "request", "uid", "u-1",
	    "kind", "group", "", "version", "v1", "kind", "Pod", "operation", "CREATE",
	    "namespace", "ns", "object", pod);
	char *text = json_dumps(doc, JSON_COMPACT);
	const json_t *r, *warnings;
	json_t *resp, *got = NULL, *want = NULL;
	int status;

	assert_non_null(text);
	resp = call(mutate_pod_handle, mp, "POST", text, &status);
	assert_int_equal(status, 200);
	r = json_object_get(resp, "response");
	if (json_string_value(json_object_get(r, "patch")) != NULL)
		got = decode_patch(json_string_value(json_object_get(r, "patch")));
	if (out->result == MUTATE_POD_MUTATED && out->patch.len > 0)
		want = json_loadb(out->patch.data, out->patch.len, 0, NULL);
	if ((got == NULL) != (want == NULL) || (got != NULL && !json_equal(got, want)))
		fail_msg("handler and review disagree on the patch for %s", text);
	warnings = json_object_get(r, "warnings");
	assert_int_equal(json_array_size(warnings), out->nwarnings);
	for (size_t i = 0; i < out->nwarnings; i++)
		assert_string_equal(json_string_value(json_array_get(warnings, i)), out->warnings[i]);
	json_decref(got);
	json_decref(want);
	json_decref(resp);
	json_decref(doc);
	free(text);
}

/*
 * Reviews pod, checks the result and, when there is a patch, that it
 * applies, and that the handler answers the same; returns the patched pod.
 */
static json_t *
review(const struct mutate_pod_options *opt, const json_t *pod, enum mutate_pod_result want,
    struct mutate_pod_outcome *out)
{
	struct mutate_pod *mp = mutate_pod_new(pools, opt);
	const struct pools_snapshot *snap = pools_acquire(pools);
	json_t *copy = json_deep_copy(pod);
	json_error_t err;
	size_t failed = 0;

	mutate_pod_review(mp, snap, pod, out);
	pools_release(snap);
	assert_handler_agrees(mp, pod, out);
	mutate_pod_free(mp);
	if (out->result != want)
		fail_msg("result %s, want %s (%s)", mutate_pod_result_name(out->result),
		    mutate_pod_result_name(want), out->error);
	json_decref(last_patch);
	last_patch = NULL;
	if (out->patch.len > 0) {
		last_patch = json_loadb(out->patch.data, out->patch.len, 0, &err);
		if (last_patch == NULL)
			fail_msg("the patch is not JSON: %s: %s", err.text, out->patch.data);
		if (patch_apply(copy, last_patch, &failed) < 0)
			fail_msg("patch op %zu does not apply: %s", failed, out->patch.data);
	}
	mutate_pod_outcome_free(out);
	return copy;
}

static json_t *
fixture_pod(const char *name)
{
	json_error_t err;
	json_t *review_json = json_load_file(name, 0, &err);
	json_t *pod;

	assert_non_null(review_json);
	pod = json_incref(json_object_get(json_object_get(review_json, "request"), "object"));
	json_decref(review_json);
	return pod;
}

#define STD_TOLERATIONS \
	"{'key':'stratos.sh/standby','operator':'Exists','effect':'NoExecute'}," \
	"{'key':'node.kubernetes.io/unreachable','operator':'Exists','effect':'NoSchedule'}," \
	"{'key':'node.kubernetes.io/not-ready','operator':'Exists','effect':'NoSchedule'}," \
	"{'key':'node.cloudprovider.kubernetes.io/shutdown','operator':'Exists','effect':'NoSchedule'}"
#define EKS_TOLERATION \
	"{'key':'node.eks.amazonaws.com/not-ready','operator':'Exists','effect':'NoSchedule'}"

/* The fixture pool pod: default NoExecute tolerations present, no annotations. */
static void
test_fixture_pool_pod(void **state)
{
	struct mutate_pod_outcome out;
	json_t *pod = fixture_pod(FIXTURE("admission/pod-create-pool.json"));
	json_t *got, *want, *patch;

	(void)state;
	got = review(NULL, pod, MUTATE_POD_MUTATED, &out);
	assert_int_equal(out.match.rule, POOLPOD_NODE_SELECTOR);
	assert_string_equal(out.pools, "ci-runners");
	patch = J("["
	    "{'op':'add','path':'/spec/tolerations/-','value':{'key':'stratos.sh/standby','operator':'Exists','effect':'NoExecute'}},"
	    "{'op':'add','path':'/spec/tolerations/-','value':{'key':'node.kubernetes.io/unreachable','operator':'Exists','effect':'NoSchedule'}},"
	    "{'op':'add','path':'/spec/tolerations/-','value':{'key':'node.kubernetes.io/not-ready','operator':'Exists','effect':'NoSchedule'}},"
	    "{'op':'add','path':'/spec/tolerations/-','value':{'key':'node.cloudprovider.kubernetes.io/shutdown','operator':'Exists','effect':'NoSchedule'}},"
	    "{'op':'add','path':'/spec/tolerations/-','value':" EKS_TOLERATION "},"
	    "{'op':'add','path':'/metadata/annotations','value':{'stratos.sh/pool':'ci-runners'}}]");
	assert_json_equal(last_patch, patch);
	want = json_deep_copy(pod);
	json_object_set_new(json_object_get(want, "metadata"), "annotations",
	    J("{'stratos.sh/pool':'ci-runners'}"));
	json_object_set_new(json_object_get(want, "spec"), "tolerations", J("["
	    "{'key':'node.kubernetes.io/not-ready','operator':'Exists','effect':'NoExecute','tolerationSeconds':300},"
	    "{'key':'node.kubernetes.io/unreachable','operator':'Exists','effect':'NoExecute','tolerationSeconds':300},"
	    STD_TOLERATIONS "," EKS_TOLERATION "]"));
	assert_json_equal(got, want);
	assert_int_equal(out.nwarnings, 0);
	mutate_pod_outcome_free(&out);
	json_decref(patch);
	json_decref(want);
	json_decref(got);
	json_decref(pod);
}

static void
test_fixture_other_pod(void **state)
{
	struct mutate_pod_outcome out;
	json_t *pod = fixture_pod(FIXTURE("admission/pod-create-other.json"));
	json_t *got;

	(void)state;
	got = review(NULL, pod, MUTATE_POD_SKIPPED, &out);
	assert_null(last_patch);
	assert_int_equal(out.nwarnings, 0);
	assert_json_equal(got, pod);
	json_decref(got);
	json_decref(pod);
}

/* No tolerations and no annotations: whole array and whole map. */
static void
test_no_tolerations_no_annotations(void **state)
{
	struct mutate_pod_outcome out;
	json_t *pod = J("{'metadata':{'name':'p','labels':{'a':'b'}},'spec':{'nodeSelector':"
	    "{'stratos.sh/pool':'on-demand'},'containers':[{'name':'c','image':'x'}]}}");
	json_t *got, *want;

	(void)state;
	got = review(NULL, pod, MUTATE_POD_MUTATED, &out);
	assert_int_equal(json_array_size(last_patch), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(last_patch, 0), "path")),
	    "/spec/tolerations");
	assert_string_equal(json_string_value(json_object_get(json_array_get(last_patch, 1), "path")),
	    "/metadata/annotations");
	want = J("{'metadata':{'name':'p','labels':{'a':'b'},'annotations':{'stratos.sh/pool':'on-demand'}},"
	    "'spec':{'nodeSelector':{'stratos.sh/pool':'on-demand'},'containers':[{'name':'c','image':'x'}],"
	    "'tolerations':[" STD_TOLERATIONS "," EKS_TOLERATION "]}}");
	assert_json_equal(got, want);
	mutate_pod_outcome_free(&out);
	json_decref(want);
	json_decref(got);
	json_decref(pod);
}

/* tolerations: null and no metadata at all. */
static void
test_null_tolerations_no_metadata(void **state)
{
	struct mutate_pod_outcome out;
	json_t *pod = J("{'spec':{'tolerations':null,'nodeSelector':{'stratos.sh/pool':'on-demand'},"
	    "'containers':[{'name':'c'}]}}");
	json_t *got, *want;

	(void)state;
	got = review(NULL, pod, MUTATE_POD_MUTATED, &out);
	want = J("{'metadata':{'annotations':{'stratos.sh/pool':'on-demand'}},"
	    "'spec':{'nodeSelector':{'stratos.sh/pool':'on-demand'},'containers':[{'name':'c'}],"
	    "'tolerations':[" STD_TOLERATIONS "," EKS_TOLERATION "]}}");
	assert_json_equal(got, want);
	mutate_pod_outcome_free(&out);
	json_decref(want);
	json_decref(got);
	json_decref(pod);
}

/* Tolerations already present in every form Kubernetes matches are not added twice. */
static void
test_existing_tolerations(void **state)
{
	struct mutate_pod_outcome out;
	json_t *pod = J("{'metadata':{'annotations':{'x':'y'}},'spec':{'nodeSelector':"
	    "{'stratos.sh/pool':'ci-runners'},'containers':[{'name':'c'}],'tolerations':["
	    "{'key':'stratos.sh/standby','operator':'Exists'},"                   /* any effect */
	    "{'key':'node.kubernetes.io/unreachable','operator':'Exists','effect':'NoSchedule'},"
	    "{'key':'node.eks.amazonaws.com/not-ready','operator':'Equal','value':'true','effect':'NoSchedule'},"
	    "{'key':'node.kubernetes.io/not-ready','operator':'Exists','effect':'NoExecute','tolerationSeconds':300}]}}");
	json_t *got, *want;

	(void)state;
	got = review(NULL, pod, MUTATE_POD_MUTATED, &out);
	want = J("[{'op':'add','path':'/spec/tolerations/-','value':{'key':'node.kubernetes.io/not-ready','operator':'Exists','effect':'NoSchedule'}},"
	    "{'op':'add','path':'/spec/tolerations/-','value':{'key':'node.cloudprovider.kubernetes.io/shutdown','operator':'Exists','effect':'NoSchedule'}},"
	    "{'op':'add','path':'/metadata/annotations/stratos.sh~1pool','value':'ci-runners'}]");
	assert_json_equal(last_patch, want);
	assert_int_equal(json_array_size(json_object_get(json_object_get(got, "spec"), "tolerations")), 6);
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(got,
	    "metadata"), "annotations"), "stratos.sh/pool")), "ci-runners");
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(got,
	    "metadata"), "annotations"), "x")), "y");
	mutate_pod_outcome_free(&out);
	json_decref(want);
	json_decref(got);
	json_decref(pod);
}

/* An empty key with Exists tolerates every taint: only the annotation is added. */
static void
test_wildcard_toleration(void **state)
{
	struct mutate_pod_outcome out;
	json_t *pod = J("{'metadata':{},'spec':{'nodeSelector':{'stratos.sh/pool':'ci-runners'},"
	    "'containers':[{'name':'c'}],'tolerations':[{'operator':'Exists'}]}}");
	json_t *got, *want;

	(void)state;
	got = review(NULL, pod, MUTATE_POD_MUTATED, &out);
	want = J("[{'op':'add','path':'/metadata/annotations','value':{'stratos.sh/pool':'ci-runners'}}]");
	assert_json_equal(last_patch, want);
	mutate_pod_outcome_free(&out);
	json_decref(want);
	json_decref(got);
	json_decref(pod);
}

/* Near misses: wrong value with Equal, wrong effect, other key: the toleration is still added. */
static void
test_near_miss_tolerations(void **state)
{
	struct mutate_pod_outcome out;
	json_t *pod = J("{'metadata':{},'spec':{'nodeSelector':{'stratos.sh/pool':'ci-runners'},"
	    "'containers':[{'name':'c'}],'tolerations':["
	    "{'key':'node.eks.amazonaws.com/not-ready','operator':'Equal','value':'false','effect':'NoSchedule'},"
	    "{'key':'stratos.sh/standby','operator':'Exists','effect':'NoSchedule'},"
	    "{'key':'node.kubernetes.io/unreachable','operator':'Equal','effect':'NoSchedule'},"
	    "{'key':'other','operator':'Exists'}]}}");
	json_t *got;

	(void)state;
	got = review(NULL, pod, MUTATE_POD_MUTATED, &out);
	/* unreachable with Equal and no value tolerates the value-less taint; the rest are added. */
	assert_int_equal(json_array_size(last_patch), 5);
	assert_int_equal(json_array_size(json_object_get(json_object_get(got, "spec"), "tolerations")), 8);
	mutate_pod_outcome_free(&out);
	json_decref(got);
	json_decref(pod);
}

/* A pod already carrying everything (re-admission) gets no patch at all. */
static void
test_already_mutated(void **state)
{
	struct mutate_pod_outcome out;
	json_t *pod = J("{'metadata':{'annotations':{'stratos.sh/pool':'on-demand'}},'spec':{"
	    "'nodeSelector':{'stratos.sh/pool':'on-demand'},'containers':[{'name':'c'}],"
	    "'tolerations':[" STD_TOLERATIONS "," EKS_TOLERATION "]}}");
	json_t *got;

	(void)state;
	got = review(NULL, pod, MUTATE_POD_MUTATED, &out);
	assert_null(last_patch);
	json_decref(got);
	json_decref(pod);
}

/* An annotation with another value is overwritten. */
static void
test_annotation_overwritten(void **state)
{
	struct mutate_pod_outcome out;
	json_t *pod = J("{'metadata':{'annotations':{'stratos.sh/pool':'wrong'}},'spec':{"
	    "'nodeSelector':{'stratos.sh/pool':'on-demand'},'containers':[{'name':'c'}],"
	    "'tolerations':[{'operator':'Exists'}]}}");
	json_t *got;

	(void)state;
	got = review(NULL, pod, MUTATE_POD_MUTATED, &out);
	assert_int_equal(json_array_size(last_patch), 1);
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(got,
	    "metadata"), "annotations"), "stratos.sh/pool")), "on-demand");
	mutate_pod_outcome_free(&out);
	json_decref(got);
	json_decref(pod);
}

static void
test_scheduler_name(void **state)
{
	struct mutate_pod_options opt = { .scheduler_name = "stratos-scheduler" };
	struct mutate_pod_outcome out;
	const char *shapes[] = {
		"{'spec':{'schedulerName':'default-scheduler','nodeSelector':{'stratos.sh/pool':'on-demand'},'containers':[{}],'tolerations':[{'operator':'Exists'}]}}",
		"{'spec':{'nodeSelector':{'stratos.sh/pool':'on-demand'},'containers':[{}],'tolerations':[{'operator':'Exists'}]}}",
	};
	json_t *pod, *got;

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		pod = J(shapes[i]);
		got = review(&opt, pod, MUTATE_POD_MUTATED, &out);
		assert_string_equal(json_string_value(json_object_get(json_object_get(got, "spec"),
		    "schedulerName")), "stratos-scheduler");
		assert_string_equal(json_string_value(json_object_get(json_array_get(last_patch, 1),
		    "path")), "/spec/schedulerName");
		mutate_pod_outcome_free(&out);
		json_decref(got);
		json_decref(pod);
	}
	/* Already ours: no op. */
	pod = J("{'metadata':{'annotations':{'stratos.sh/pool':'on-demand'}},'spec':{'schedulerName':'stratos-scheduler',"
	    "'nodeSelector':{'stratos.sh/pool':'on-demand'},'containers':[{}],'tolerations':[{'operator':'Exists'}]}}");
	got = review(&opt, pod, MUTATE_POD_MUTATED, &out);
	assert_null(last_patch);
	json_decref(got);
	json_decref(pod);
	/* Another scheduler chosen on purpose: untouched, and told why. */
	pod = J("{'spec':{'schedulerName':'volcano','nodeSelector':{'stratos.sh/pool':'on-demand'},'containers':[{}]}}");
	got = review(&opt, pod, MUTATE_POD_SKIPPED, &out);
	assert_null(last_patch);
	assert_int_equal(out.nwarnings, 1);
	assert_non_null(strstr(out.warnings[0], "volcano"));
	json_decref(got);
	json_decref(pod);
	/* Without --scheduler-name the pod's scheduler is never set. */
	pod = J("{'spec':{'nodeSelector':{'stratos.sh/pool':'on-demand'},'containers':[{}]}}");
	got = review(NULL, pod, MUTATE_POD_MUTATED, &out);
	assert_null(json_object_get(json_object_get(got, "spec"), "schedulerName"));
	mutate_pod_outcome_free(&out);
	json_decref(got);
	json_decref(pod);
}

static void
test_managed_resource(void **state)
{
	struct mutate_pod_options opt = { .managed_resource = true };
	struct mutate_pod_outcome out;
	const char *shapes[][2] = {
		/* no resources at all */
		{ "{'name':'a'}",
		  "{'name':'a','resources':{'requests':{'stratos.sh/pool-pod':'1'},'limits':{'stratos.sh/pool-pod':'1'}}}" },
		/* requests only */
		{ "{'name':'a','resources':{'requests':{'cpu':'2'}}}",
		  "{'name':'a','resources':{'requests':{'cpu':'2','stratos.sh/pool-pod':'1'},'limits':{'stratos.sh/pool-pod':'1'}}}" },
		/* both */
		{ "{'name':'a','resources':{'requests':{'cpu':'2'},'limits':{'memory':'1Gi'}}}",
		  "{'name':'a','resources':{'requests':{'cpu':'2','stratos.sh/pool-pod':'1'},'limits':{'memory':'1Gi','stratos.sh/pool-pod':'1'}}}" },
		/* empty resources object */
		{ "{'name':'a','resources':{}}",
		  "{'name':'a','resources':{'requests':{'stratos.sh/pool-pod':'1'},'limits':{'stratos.sh/pool-pod':'1'}}}" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		char text[1024];
		json_t *pod, *got, *want;

		snprintf(text, sizeof(text), "{'spec':{'nodeSelector':{'stratos.sh/pool':'on-demand'},"
		    "'tolerations':[{'operator':'Exists'}],'containers':[%s,{'name':'b'}]}}", shapes[i][0]);
		pod = J(text);
		got = review(&opt, pod, MUTATE_POD_MUTATED, &out);
		want = J(shapes[i][1]);
		assert_json_equal(json_array_get(json_object_get(json_object_get(got, "spec"),
		    "containers"), 0), want);
		/* Only the first container, and the JSON Pointer escapes the '/'. */
		assert_json_equal(json_array_get(json_object_get(json_object_get(got, "spec"),
		    "containers"), 1), json_array_get(json_object_get(json_object_get(pod, "spec"),
		    "containers"), 1));
		if (i == 2)
			assert_string_equal(json_string_value(json_object_get(json_array_get(last_patch, 1),
			    "path")), "/spec/containers/0/resources/requests/stratos.sh~1pool-pod");
		mutate_pod_outcome_free(&out);
		json_decref(want);
		json_decref(got);
		json_decref(pod);
	}
}

#define AFFINITY_POD "{'spec':{'containers':[{}],'affinity':{'nodeAffinity':{" \
	"'requiredDuringSchedulingIgnoredDuringExecution':{'nodeSelectorTerms':%s}}}}}"

/* Required node affinity: In lists, several terms, NotIn, and terms that do not confine. */
static void
test_affinity_detection(void **state)
{
	struct mutate_pod_outcome out;
	json_t *pod, *got;
	char text[2048];

	(void)state;
	/* One term, two pools: both pools' startup taints, one annotation with both names. */
	snprintf(text, sizeof(text), AFFINITY_POD, "[{'matchExpressions':[{'key':'stratos.sh/pool',"
	    "'operator':'In','values':['gpu','ci-runners']},{'key':'zone','operator':'In','values':['a']}]}]");
	pod = J(text);
	got = review(NULL, pod, MUTATE_POD_MUTATED, &out);
	assert_int_equal(out.match.rule, POOLPOD_AFFINITY);
	assert_string_equal(out.pools, "gpu,ci-runners");
	/* 4 standard + nvidia.com/gpu + example.com/booting + eks not-ready (shared, once) */
	assert_int_equal(json_array_size(json_object_get(json_object_get(got, "spec"), "tolerations")), 7);
	assert_true(kube_tolerations_json_tolerate(json_object_get(json_object_get(got, "spec"),
	    "tolerations"), "example.com/booting", "", KUBE_EFFECT_NO_EXECUTE));
	assert_true(kube_tolerations_json_tolerate(json_object_get(json_object_get(got, "spec"),
	    "tolerations"), "nvidia.com/gpu", "present", KUBE_EFFECT_NO_SCHEDULE));
	mutate_pod_outcome_free(&out);
	json_decref(got);
	json_decref(pod);

	/* Two terms, each confined: the union. Intersection and NotIn inside a term. */
	snprintf(text, sizeof(text), AFFINITY_POD, "["
	    "{'matchExpressions':[{'key':'stratos.sh/pool','operator':'In','values':['inference','on-demand']},"
	    "                     {'key':'stratos.sh/pool','operator':'In','values':['on-demand','ci-runners']}]},"
	    "{'matchExpressions':[{'key':'stratos.sh/pool','operator':'In','values':['gpu','gpu-spot']},"
	    "                     {'key':'stratos.sh/pool','operator':'NotIn','values':['gpu-spot']}]}]");
	pod = J(text);
	got = review(NULL, pod, MUTATE_POD_MUTATED, &out);
	assert_string_equal(out.pools, "on-demand,gpu");
	mutate_pod_outcome_free(&out);
	json_decref(got);
	json_decref(pod);

	/* A term without the pool key lets the pod run anywhere: not a pool pod. */
	snprintf(text, sizeof(text), AFFINITY_POD, "["
	    "{'matchExpressions':[{'key':'stratos.sh/pool','operator':'In','values':['gpu']}]},"
	    "{'matchExpressions':[{'key':'zone','operator':'In','values':['a']}]}]");
	pod = J(text);
	got = review(NULL, pod, MUTATE_POD_SKIPPED, &out);
	assert_null(last_patch);
	json_decref(got);
	json_decref(pod);

	/* Exists on the key does not name a pool. */
	snprintf(text, sizeof(text), AFFINITY_POD, "[{'matchExpressions':[{'key':'stratos.sh/pool','operator':'Exists'}]}]");
	pod = J(text);
	got = review(NULL, pod, MUTATE_POD_SKIPPED, &out);
	json_decref(got);
	json_decref(pod);
}

/* A nodeSelector inside exactly one pool's template labels; several pools: ambiguous. */
static void
test_label_subset_detection(void **state)
{
	struct mutate_pod_outcome out;
	json_t *pod, *got;

	(void)state;
	pod = J("{'spec':{'containers':[{}],'nodeSelector':{'node-role.kubernetes.io/ci':''}}}");
	got = review(NULL, pod, MUTATE_POD_MUTATED, &out);
	assert_int_equal(out.match.rule, POOLPOD_LABELS);
	assert_string_equal(out.pools, "ci-runners");
	mutate_pod_outcome_free(&out);
	json_decref(got);
	json_decref(pod);

	pod = J("{'spec':{'containers':[{}],'nodeSelector':{'team':'ml','accelerator':'a10g'}}}");
	got = review(NULL, pod, MUTATE_POD_MUTATED, &out);
	assert_string_equal(out.pools, "gpu");
	assert_int_equal(json_array_size(json_object_get(json_object_get(got, "spec"), "tolerations")), 7);
	mutate_pod_outcome_free(&out);
	json_decref(got);
	json_decref(pod);

	pod = J("{'spec':{'containers':[{}],'nodeSelector':{'team':'ml'}}}");
	got = review(NULL, pod, MUTATE_POD_AMBIGUOUS, &out);
	assert_null(last_patch);
	assert_int_equal(out.nwarnings, 1);
	assert_string_equal(out.warnings[0], "stratos: nodeSelector matches NodePools gpu, gpu-spot; "
	    "not treated as a pool pod");
	assert_true(strlen(out.warnings[0]) < 120);
	json_decref(got);
	json_decref(pod);

	/* A label no pool has, or one key more than the pool has: not a pool pod. */
	pod = J("{'spec':{'containers':[{}],'nodeSelector':{'kubernetes.io/os':'linux'}}}");
	got = review(NULL, pod, MUTATE_POD_SKIPPED, &out);
	json_decref(got);
	json_decref(pod);
	pod = J("{'spec':{'containers':[{}],'nodeSelector':{'team':'ml','kubernetes.io/os':'linux'}}}");
	got = review(NULL, pod, MUTATE_POD_SKIPPED, &out);
	json_decref(got);
	json_decref(pod);
	/* Same key, other value. */
	pod = J("{'spec':{'containers':[{}],'nodeSelector':{'team':'web'}}}");
	got = review(NULL, pod, MUTATE_POD_SKIPPED, &out);
	json_decref(got);
	json_decref(pod);
}

static void
test_unknown_pool_and_bypass(void **state)
{
	struct mutate_pod_outcome out;
	json_t *pod, *got;

	(void)state;
	/* Explicitly asked for: mutated with the standard tolerations, and a warning. */
	pod = J("{'spec':{'containers':[{}],'nodeSelector':{'stratos.sh/pool':'nope'}}}");
	got = review(NULL, pod, MUTATE_POD_MUTATED, &out);
	assert_int_equal(json_array_size(json_object_get(json_object_get(got, "spec"), "tolerations")), 4);
	assert_int_equal(out.nwarnings, 1);
	assert_non_null(strstr(out.warnings[0], "nope"));
	mutate_pod_outcome_free(&out);
	json_decref(got);
	json_decref(pod);
	/* nodeName set: the scheduler (and so Stratos) is not involved. */
	pod = J("{'spec':{'nodeName':'n1','containers':[{}],'nodeSelector':{'stratos.sh/pool':'ci-runners'}}}");
	got = review(NULL, pod, MUTATE_POD_SKIPPED, &out);
	json_decref(got);
	json_decref(pod);
	/* Wrong types never crash; they admit the pod unchanged. */
	pod = J("{'spec':{'containers':[{}],'tolerations':5,'nodeSelector':{'stratos.sh/pool':'ci-runners'}}}");
	got = review(NULL, pod, MUTATE_POD_ERROR, &out);
	assert_null(last_patch);
	json_decref(got);
	json_decref(pod);
	pod = J("{'spec':5}");
	got = review(NULL, pod, MUTATE_POD_ERROR, &out);
	json_decref(got);
	json_decref(pod);
	pod = J("{'metadata':[],'spec':{'containers':[{}],'nodeSelector':{'stratos.sh/pool':'ci-runners'}}}");
	got = review(NULL, pod, MUTATE_POD_ERROR, &out);
	json_decref(got);
	json_decref(pod);
}

/*
 * Fields of the wrong type, at every level the webhook reads: the review's
 * verdict, and the handler (which reads only those fields) agrees on each.
 */
static void
test_wrong_types(void **state)
{
	static const struct {
		const char *pod;
		enum mutate_pod_result want;
	} cases[] = {
		{ "{'spec':{'nodeSelector':{'stratos.sh/pool':'ci-runners'},'tolerations':'x'}}", MUTATE_POD_ERROR },
		{ "{'metadata':'x','spec':{'nodeSelector':{'stratos.sh/pool':'ci-runners'}}}", MUTATE_POD_ERROR },
		{ "{'metadata':{'annotations':[1]},'spec':{'nodeSelector':{'stratos.sh/pool':'ci-runners'}}}", MUTATE_POD_ERROR },
		{ "{'metadata':{'annotations':{'stratos.sh/pool':5}},'spec':{'nodeSelector':{'stratos.sh/pool':'ci-runners'}}}", MUTATE_POD_MUTATED },
		{ "{'metadata':null,'spec':{'nodeSelector':{'stratos.sh/pool':'ci-runners'}}}", MUTATE_POD_MUTATED },
		{ "{'spec':'x'}", MUTATE_POD_ERROR },
		{ "{'spec':{'nodeSelector':{'stratos.sh/pool':'ci-runners'},'affinity':'x'}}", MUTATE_POD_MUTATED },
		{ "{'spec':{'nodeSelector':'x','affinity':{'nodeAffinity':5}}}", MUTATE_POD_SKIPPED },
		{ "{'spec':{'nodeSelector':{'stratos.sh/pool':7}}}", MUTATE_POD_SKIPPED },
		{ "{'spec':{'nodeName':5,'schedulerName':5,'nodeSelector':{'stratos.sh/pool':'ci-runners'}}}", MUTATE_POD_MUTATED },
		{ "{'spec':{'affinity':{'nodeAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':"
		  "{'nodeSelectorTerms':[{'matchExpressions':[{'key':'stratos.sh/pool','operator':'In','values':['gpu',3]}]}]}}}}}",
		  MUTATE_POD_MUTATED },
	};
	static const struct {
		const char *spec;
		enum mutate_pod_result want;
	} managed[] = {
		{ "'containers':[1]", MUTATE_POD_ERROR },
		{ "'containers':'x'", MUTATE_POD_ERROR },
		{ "'containers':[]", MUTATE_POD_ERROR },
		{ "'containers':[{'resources':'x'}]", MUTATE_POD_ERROR },
		{ "'containers':[{'resources':{'requests':5}}]", MUTATE_POD_ERROR },
		{ "'containers':[{'resources':{'requests':{'stratos.sh/pool-pod':1}}},{'resources':'x'}]", MUTATE_POD_MUTATED },
		{ "'containers':[{'resources':null}]", MUTATE_POD_MUTATED },
	};
	struct mutate_pod_options opt = { .scheduler_name = "stratos-scheduler" };
	struct mutate_pod_options mopt = { .managed_resource = true };
	struct mutate_pod_outcome out;
	char text[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *pod = J(cases[i].pod);
		json_decref(review(&opt, pod, cases[i].want, &out));
		json_decref(pod);
	}
	for (size_t i = 0; i < sizeof(managed) / sizeof(managed[0]); i++) {
		json_t *pod;

		snprintf(text, sizeof(text), "{'spec':{'nodeSelector':{'stratos.sh/pool':'ci-runners'},%s}}",
		    managed[i].spec);
		pod = J(text);
		json_decref(review(&mopt, pod, managed[i].want, &out));
		json_decref(pod);
	}
}

/* Decodes standard base64 (the patch field). */
static json_t *
decode_patch(const char *b64)
{
	size_t n = strlen(b64);
	unsigned char *raw = malloc(n + 1);
	int len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
	json_t *v;

	assert_true(len >= 0);
	/* EVP_DecodeBlock counts padding bytes as zeros; strip them. */
	while (len > 0 && n > 0 && b64[n - 1] == '=') {
		len--;
		n--;
	}
	v = json_loadb((const char *)raw, (size_t)len, 0, NULL);
	free(raw);
	return v;
}

static json_t *
call(server_handler_fn fn, void *ctx, const char *method, const char *body, int *status)
{
	struct server_request req = { .method = method, .path = "/admission/mutate-pod",
		.body = body, .body_len = body != NULL ? strlen(body) : 0 };
	struct server_response resp = { .status = 200, .content_type = "application/json" };
	json_t *v;

	buf_init(&resp.body, 1 << 20);
	fn(ctx, &req, &resp);
	*status = resp.status;
	assert_string_equal(resp.content_type, "application/json");
	v = json_loadb(resp.body.data, resp.body.len, 0, NULL);
	assert_non_null(v);
	buf_free(&resp.body);
	return v;
}

static void
test_handler(void **state)
{
	struct mutate_pod_options opt = { .scheduler_name = "stratos-scheduler" };
	struct mutate_pod *mp = mutate_pod_new(pools, &opt);
	char *body = test_read_file(FIXTURE("admission/pod-create-pool.json"), NULL);
	json_t *resp, *r, *patch, *pod;
	int status;

	(void)state;
	resp = call(mutate_pod_handle, mp, "POST", body, &status);
	assert_int_equal(status, 200);
	assert_string_equal(json_string_value(json_object_get(resp, "apiVersion")), "admission.k8s.io/v1");
	assert_string_equal(json_string_value(json_object_get(resp, "kind")), "AdmissionReview");
	r = json_object_get(resp, "response");
	assert_string_equal(json_string_value(json_object_get(r, "uid")),
	    "3f2a9c1e-5b7d-4e8a-9c0f-1d2e3f4a5b6c");
	assert_true(json_is_true(json_object_get(r, "allowed")));
	assert_string_equal(json_string_value(json_object_get(r, "patchType")), "JSONPatch");
	patch = decode_patch(json_string_value(json_object_get(r, "patch")));
	assert_non_null(patch);
	pod = fixture_pod(FIXTURE("admission/pod-create-pool.json"));
	assert_int_equal(patch_apply(pod, patch, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(pod, "spec"),
	    "schedulerName")), "stratos-scheduler");
	json_decref(pod);
	json_decref(patch);
	json_decref(resp);
	free(body);

	/* Other pods: allowed, neither patch nor patchType. */
	body = test_read_file(FIXTURE("admission/pod-create-other.json"), NULL);
	resp = call(mutate_pod_handle, mp, "POST", body, &status);
	r = json_object_get(resp, "response");
	assert_true(json_is_true(json_object_get(r, "allowed")));
	assert_null(json_object_get(r, "patch"));
	assert_null(json_object_get(r, "patchType"));
	assert_string_equal(json_string_value(json_object_get(r, "uid")),
	    "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a");
	json_decref(resp);
	free(body);

	/* Malformed bodies: 400 with a JSON reason; GET: 405. */
	resp = call(mutate_pod_handle, mp, "POST", "{not json", &status);
	assert_int_equal(status, 400);
	assert_string_equal(json_string_value(json_object_get(resp, "kind")), "Status");
	assert_non_null(strstr(json_string_value(json_object_get(resp, "message")), "not JSON"));
	json_decref(resp);
	resp = call(mutate_pod_handle, mp, "POST",
	    "{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"x\"}}",
	    &status);
	assert_int_equal(status, 400);
	json_decref(resp);
	resp = call(mutate_pod_handle, mp, "POST",
	    "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{}}", &status);
	assert_int_equal(status, 400);
	assert_string_equal(json_string_value(json_object_get(resp, "message")), "request.uid is required");
	json_decref(resp);
	resp = call(mutate_pod_handle, mp, "GET", NULL, &status);
	assert_int_equal(status, 405);
	json_decref(resp);
	mutate_pod_free(mp);
}

/* A request that is not a pod CREATE is allowed untouched, whatever it holds. */
static void
test_handler_not_pod_create(void **state)
{
	struct mutate_pod *mp = mutate_pod_new(pools, NULL);
	const char *body = "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
	    "\"request\":{\"uid\":\"u1\",\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"},"
	    "\"operation\":\"UPDATE\",\"object\":{\"spec\":{\"nodeSelector\":{\"stratos.sh/pool\":\"ci-runners\"}}}}}";
	json_t *resp;
	int status;

	(void)state;
	resp = call(mutate_pod_handle, mp, "POST", body, &status);
	assert_int_equal(status, 200);
	assert_true(json_is_true(json_object_get(json_object_get(resp, "response"), "allowed")));
	assert_null(json_object_get(json_object_get(resp, "response"), "patch"));
	json_decref(resp);
	mutate_pod_free(mp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture_pool_pod),
		cmocka_unit_test(test_fixture_other_pod),
		cmocka_unit_test(test_no_tolerations_no_annotations),
		cmocka_unit_test(test_null_tolerations_no_metadata),
		cmocka_unit_test(test_existing_tolerations),
		cmocka_unit_test(test_wildcard_toleration),
		cmocka_unit_test(test_near_miss_tolerations),
		cmocka_unit_test(test_already_mutated),
		cmocka_unit_test(test_annotation_overwritten),
		cmocka_unit_test(test_scheduler_name),
		cmocka_unit_test(test_managed_resource),
		cmocka_unit_test(test_affinity_detection),
		cmocka_unit_test(test_label_subset_detection),
		cmocka_unit_test(test_unknown_pool_and_bypass),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_handler),
		cmocka_unit_test(test_handler_not_pod_create),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
