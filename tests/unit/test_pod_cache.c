/* Unit tests for Pod parsing into compact pod_info: requests, owners, tolerations, selection. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test_util.h"
#include "stratos/intern.h"
#include "stratos/jsonprune.h"
#include "stratos/pod_cache.h"

/* An admission pod as the API server stores it: named, with a resourceVersion. */
static json_t *
admission_pod(const char *fixture, const char *name)
{
	json_t *review = test_load_json(fixture);
	json_t *pod = json_incref(json_object_get(json_object_get(review, "request"), "object"));
	json_t *meta = json_object_get(pod, "metadata");

	json_object_set_new(meta, "name", json_string(name));
	json_object_set_new(meta, "resourceVersion", json_string("77"));
	json_object_set_new(meta, "uid", json_string("uid-1"));
	if (json_object_get(meta, "namespace") == NULL)
		json_object_set_new(meta, "namespace", json_string(json_string_value(json_object_get(
		    json_object_get(review, "request"), "namespace"))));
	json_decref(review);
	return pod;
}

static void
test_extender_pod(void **state)
{
	json_t *args = test_load_json(FIXTURE("extender/filter-args-nodenames.json"));
	struct pod_info *p;
	int rc;

	(void)state;
	p = pod_info_parse(json_object_get(args, "Pod"), &rc);
	assert_non_null(p);
	assert_string_equal(p->obj.key, "ci/runner-7d9f8c6b5-x2kqp");
	assert_string_equal(p->name, "runner-7d9f8c6b5-x2kqp");
	assert_string_equal(p->namespace, "ci");
	assert_string_equal(p->uid, "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a");
	assert_int_equal(p->obj.rv, 918273);
	assert_string_equal(p->owner_key, "ci/Deployment/runner");
	assert_string_equal(p->pool, "ci-runners");
	assert_null(pod_info_node(p));
	assert_int_equal(p->phase, POD_PHASE_PENDING);
	assert_int_equal(p->flags, 0);
	assert_int_equal(p->requests.cpu_milli, 2000);
	assert_int_equal(p->requests.memory, 4LL << 30);
	assert_int_equal(p->requests.pods, 1);
	assert_int_equal(p->requests.next, 0);
	assert_int_equal(p->created_ms, 1795849200000LL);
	assert_int_equal(p->tolerations->n, 7);
	/* stratos.sh/standby is tolerated for every effect, shutdown only for NoSchedule. */
	assert_true(pod_info_tolerates(p, "stratos.sh/standby", "true", KUBE_EFFECT_NO_EXECUTE));
	assert_true(pod_info_tolerates(p, "node.cloudprovider.kubernetes.io/shutdown", NULL,
	    KUBE_EFFECT_NO_SCHEDULE));
	assert_false(pod_info_tolerates(p, "node.cloudprovider.kubernetes.io/shutdown", NULL,
	    KUBE_EFFECT_NO_EXECUTE));
	assert_false(pod_info_tolerates(p, "stratos.sh/warmup-failed", "true",
	    KUBE_EFFECT_NO_SCHEDULE));
	assert_non_null(p->selection);
	assert_int_equal(p->selection->nselector, 1);
	assert_string_equal(pod_selection_pairs(p->selection)[0], "stratos.sh/pool");
	assert_string_equal(pod_selection_pairs(p->selection)[1], "ci-runners");
	assert_true(pod_info_size(p) < 300);
	cache_obj_unref(&p->obj);
	json_decref(args);
}

static void
test_admission_pods_share_interned_parts(void **state)
{
	json_t *a = admission_pod(FIXTURE("admission/pod-create-pool.json"), "runner-a");
	json_t *b = admission_pod(FIXTURE("admission/pod-create-pool.json"), "runner-b");
	json_t *o = admission_pod(FIXTURE("admission/pod-create-other.json"), "web-1");
	struct pod_info *pa, *pb, *po;
	int rc;

	(void)state;
	pa = pod_info_parse(a, &rc);
	pb = pod_info_parse(b, &rc);
	po = pod_info_parse(o, &rc);
	assert_non_null(pa);
	assert_non_null(pb);
	assert_non_null(po);
	/* Same deployment: one copy of the owner key, the tolerations and the selection. */
	assert_ptr_equal(pa->owner_key, pb->owner_key);
	assert_ptr_equal(pa->tolerations, pb->tolerations);
	assert_ptr_equal(pa->selection, pb->selection);
	assert_ptr_equal(pa->namespace, pb->namespace);
	assert_string_equal(pa->owner_key, "ci/Deployment/runner");
	/* No pod-template-hash label: the suffix shape decides. */
	assert_string_equal(po->owner_key, "default/Deployment/web");
	assert_null(po->selection);
	assert_null(po->pool);
	assert_int_equal(po->tolerations->n, 0);
	assert_int_equal(po->phase, POD_PHASE_UNKNOWN);
	cache_obj_unref(&pa->obj);
	cache_obj_unref(&pb->obj);
	cache_obj_unref(&po->obj);
	json_decref(a);
	json_decref(b);
	json_decref(o);
}

static struct pod_info *
parse_text(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);
	struct pod_info *p;
	int rc;

	if (j == NULL)
		fail_msg("bad test JSON: %s", err.text);
	p = pod_info_parse(j, &rc);
	json_decref(j);
	return p;
}

#define META(extra) "\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\",\"resourceVersion\":\"5\"" extra "}"

static void
test_requests_arithmetic(void **state)
{
	struct pod_info *p;

	(void)state;
	/* Containers sum; a request defaults to its limit; pool-pod is ignored. */
	p = parse_text("{" META("") ",\"spec\":{\"containers\":["
	    "{\"resources\":{\"requests\":{\"cpu\":\"250m\",\"memory\":\"64Mi\"}}},"
	    "{\"resources\":{\"requests\":{\"cpu\":\"1\",\"nvidia.com/gpu\":\"1\","
	    "\"stratos.sh/pool-pod\":\"1\"},\"limits\":{\"memory\":\"1Gi\",\"nvidia.com/gpu\":\"1\","
	    "\"ephemeral-storage\":\"2Gi\"}}}]}}");
	assert_non_null(p);
	assert_int_equal(p->requests.cpu_milli, 1250);
	assert_int_equal(p->requests.memory, (64LL << 20) + (1LL << 30));
	assert_int_equal(p->requests.ephemeral, 2LL << 30);
	assert_int_equal(resources_ext_get(&p->requests, "nvidia.com/gpu"), 1);
	assert_int_equal(resources_ext_get(&p->requests, NODESTATE_POOL_POD_RESOURCE), 0);
	assert_int_equal(p->requests.next, 1);
	assert_int_equal(p->containers, 2);
	cache_obj_unref(&p->obj);

	/* Init containers: the max of each one's need and the containers' sum; overhead added. */
	p = parse_text("{" META("") ",\"spec\":{"
	    "\"initContainers\":[{\"resources\":{\"requests\":{\"cpu\":\"3\",\"memory\":\"1Gi\"}}},"
	    "{\"resources\":{\"requests\":{\"cpu\":\"500m\",\"memory\":\"4Gi\"}}}],"
	    "\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"1\",\"memory\":\"2Gi\"}}},"
	    "{\"resources\":{\"requests\":{\"cpu\":\"1\",\"memory\":\"1Gi\"}}}],"
	    "\"overhead\":{\"cpu\":\"100m\",\"memory\":\"10Mi\"}}}");
	assert_non_null(p);
	assert_int_equal(p->requests.cpu_milli, 3000 + 100);
	assert_int_equal(p->requests.memory, (4LL << 30) + (10LL << 20));
	cache_obj_unref(&p->obj);

	/* A sidecar (init container with restartPolicy Always) runs beside everything after it. */
	p = parse_text("{" META("") ",\"spec\":{"
	    "\"initContainers\":[{\"restartPolicy\":\"Always\",\"resources\":{\"requests\":"
	    "{\"cpu\":\"200m\"}}},{\"resources\":{\"requests\":{\"cpu\":\"2\"}}}],"
	    "\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"1\"}}}]}}");
	assert_non_null(p);
	/* containers 1 + sidecar 0.2 = 1.2; second init needs 2 + 0.2 = 2.2 → max 2.2 */
	assert_int_equal(p->requests.cpu_milli, 2200);
	cache_obj_unref(&p->obj);

	/* A bad quantity makes the pod uncacheable rather than silently zero. */
	assert_null(parse_text("{" META("") ",\"spec\":{\"containers\":[{\"resources\":"
	    "{\"requests\":{\"cpu\":\"lots\"}}}]}}"));
}

static void
test_flags_conditions_and_owners(void **state)
{
	struct pod_info *p;

	(void)state;
	p = parse_text("{" META(",\"ownerReferences\":[{\"kind\":\"DaemonSet\",\"name\":\"cni\","
	    "\"controller\":true}],\"deletionTimestamp\":\"2026-11-28T07:00:05Z\","
	    "\"annotations\":{\"kubernetes.io/config.mirror\":\"x\"}")
	    ",\"spec\":{\"nodeName\":\"node-a\",\"containers\":[{},{}]},"
	    "\"status\":{\"phase\":\"Running\",\"conditions\":["
	    "{\"type\":\"PodScheduled\",\"status\":\"True\"},{\"type\":\"Ready\",\"status\":\"False\"}],"
	    "\"containerStatuses\":[{\"imageID\":\"sha256:1\"},{\"imageID\":\"\"}]}}");
	assert_non_null(p);
	assert_int_equal(p->flags, POD_FLAG_DAEMONSET | POD_FLAG_MIRROR);
	assert_string_equal(p->owner_key, "ns/DaemonSet/cni");
	assert_string_equal(pod_info_node(p), "node-a");
	assert_int_equal(p->phase, POD_PHASE_RUNNING);
	assert_int_equal(p->scheduled, KUBE_COND_TRUE);
	assert_int_equal(p->ready, KUBE_COND_FALSE);
	assert_int_equal(p->deleted_ms, 1795849205000LL);
	assert_int_equal(p->containers, 2);
	assert_int_equal(p->images_pulled, 1);
	cache_obj_unref(&p->obj);

	p = parse_text("{" META(",\"ownerReferences\":[{\"kind\":\"ReplicaSet\",\"name\":"
	    "\"api-canary\",\"controller\":true}]") ",\"spec\":{},\"status\":{\"phase\":\"Pending\","
	    "\"conditions\":[{\"type\":\"PodScheduled\",\"status\":\"False\",\"reason\":"
	    "\"Unschedulable\"}]}}");
	assert_non_null(p);
	assert_string_equal(p->owner_key, "ns/ReplicaSet/api-canary");
	assert_int_equal(p->scheduled, KUBE_COND_FALSE);
	assert_int_equal(p->sched_reason, POD_SCHED_REASON_UNSCHEDULABLE);
	cache_obj_unref(&p->obj);

	/* Non-controller owners do not count. */
	p = parse_text("{" META(",\"ownerReferences\":[{\"kind\":\"Job\",\"name\":\"j\"}]")
	    ",\"spec\":{}}");
	assert_non_null(p);
	assert_null(p->owner_key);
	cache_obj_unref(&p->obj);

	/* No resourceVersion or no name: not cacheable. */
	assert_null(parse_text("{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\"},\"spec\":{}}"));
	assert_null(parse_text("{\"metadata\":{\"namespace\":\"n\",\"resourceVersion\":\"1\"}}"));
}

static const char *
labels_fn(void *ctx, const char *key)
{
	const char *const *kv = ctx;

	for (; kv[0] != NULL; kv += 2)
		if (strcmp(kv[0], key) == 0)
			return kv[1];
	return NULL;
}

static void
test_tolerations_and_selection(void **state)
{
	const char *node_a[] = { "stratos.sh/pool", "gpu", "zone", "a", "gen", "5",
		"metadata.name", "n1", NULL, NULL };
	const char *node_b[] = { "stratos.sh/pool", "gpu", "zone", "c", "gen", "3",
		"metadata.name", "n2", NULL, NULL };
	const char *node_c[] = { "stratos.sh/pool", "ci", "metadata.name", "n3", NULL, NULL };
	struct pod_info *p;

	(void)state;
	p = parse_text("{" META("") ",\"spec\":{"
	    "\"tolerations\":[{\"operator\":\"Exists\"}],"
	    "\"nodeSelector\":{\"stratos.sh/pool\":\"gpu\"},"
	    "\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":"
	    "{\"nodeSelectorTerms\":["
	    "{\"matchExpressions\":[{\"key\":\"zone\",\"operator\":\"In\",\"values\":[\"a\",\"b\"]},"
	    "{\"key\":\"gen\",\"operator\":\"Gt\",\"values\":[\"4\"]}]},"
	    "{\"matchFields\":[{\"key\":\"metadata.name\",\"operator\":\"In\",\"values\":[\"n9\"]}]}"
	    "]}}}}}");
	assert_non_null(p);
	/* The empty-key Exists toleration tolerates everything. */
	assert_true(pod_info_tolerates(p, "anything", "x", KUBE_EFFECT_NO_EXECUTE));
	assert_int_equal(p->selection->nterms, 2);
	assert_int_equal(p->selection->nreqs, 3);
	assert_int_equal(p->selection->nvalues, 4);
	assert_true(pod_info_selects(p, labels_fn, node_a));
	assert_false(pod_info_selects(p, labels_fn, node_b));       /* zone c, gen 3 */
	assert_false(pod_info_selects(p, labels_fn, node_c));       /* nodeSelector */
	node_b[7] = "n9";                                           /* second term, by name */
	assert_true(pod_info_selects(p, labels_fn, node_b));
	cache_obj_unref(&p->obj);

	p = parse_text("{" META("") ",\"spec\":{\"tolerations\":["
	    "{\"key\":\"k\",\"operator\":\"Equal\",\"value\":\"v\",\"effect\":\"NoSchedule\"},"
	    "{\"key\":\"e\",\"value\":\"\"}],"
	    "\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":"
	    "{\"nodeSelectorTerms\":[{\"matchExpressions\":[{\"key\":\"zone\",\"operator\":"
	    "\"DoesNotExist\"}]}]}}}}}");
	assert_non_null(p);
	assert_true(pod_info_tolerates(p, "k", "v", KUBE_EFFECT_NO_SCHEDULE));
	assert_false(pod_info_tolerates(p, "k", "w", KUBE_EFFECT_NO_SCHEDULE));
	assert_false(pod_info_tolerates(p, "k", "v", KUBE_EFFECT_NO_EXECUTE));
	assert_true(pod_info_tolerates(p, "e", NULL, KUBE_EFFECT_PREFER_NO_SCHEDULE));
	assert_false(pod_info_selects(p, labels_fn, node_a));
	assert_true(pod_info_selects(p, labels_fn, node_c));
	cache_obj_unref(&p->obj);

	/* A bad operator or effect is refused. */
	assert_null(parse_text("{" META("") ",\"spec\":{\"tolerations\":[{\"effect\":\"Never\"}]}}"));
	assert_null(parse_text("{" META("") ",\"spec\":{\"affinity\":{\"nodeAffinity\":{"
	    "\"requiredDuringSchedulingIgnoredDuringExecution\":{\"nodeSelectorTerms\":["
	    "{\"matchExpressions\":[{\"key\":\"z\",\"operator\":\"Near\"}]}]}}}}}"));
}

static void
test_owner_key_function(void **state)
{
	char out[64];
	json_t *pod = json_loads("{\"metadata\":{\"namespace\":\"ml\",\"labels\":"
	    "{\"pod-template-hash\":\"abc12\"},\"ownerReferences\":[{\"kind\":\"ReplicaSet\","
	    "\"name\":\"llm-serve-abc12\",\"controller\":true}]}}", 0, NULL);

	(void)state;
	assert_int_equal(pod_owner_key(pod, out, sizeof(out)), 0);
	assert_string_equal(out, "ml/Deployment/llm-serve");
	/* The label wins over the shape: a mismatching hash keeps the ReplicaSet. */
	json_object_set_new(json_object_get(json_object_get(pod, "metadata"), "labels"),
	    "pod-template-hash", json_string("zzz99"));
	assert_int_equal(pod_owner_key(pod, out, sizeof(out)), 0);
	assert_string_equal(out, "ml/ReplicaSet/llm-serve-abc12");
	assert_int_equal(pod_owner_key(pod, out, 8), -ENAMETOOLONG);
	json_decref(pod);
	pod = json_loads("{\"metadata\":{\"namespace\":\"x\"}}", 0, NULL);
	assert_int_equal(pod_owner_key(pod, out, sizeof(out)), -ENOENT);
	json_decref(pod);
}

static void
test_interned_memory_returns(void **state)
{
	json_t *args = test_load_json(FIXTURE("extender/filter-args-nodenames.json"));
	size_t e0, e1;
	int rc;

	(void)state;
	intern_stats(&e0, NULL);
	for (int i = 0; i < 100; i++) {
		struct pod_info *p = pod_info_parse(json_object_get(args, "Pod"), &rc);
		assert_non_null(p);
		cache_obj_unref(&p->obj);
	}
	intern_stats(&e1, NULL);
	assert_int_equal(e0, e1);
	json_decref(args);
}

/* Every field of a pod_info as text, to compare two parses. */
static void
describe(const struct pod_info *p, char *out, size_t len)
{
	const struct pod_selection *s = p->selection;
	int n = snprintf(out, len, "%s|%s|%s|%s|%s|%s|%llu|%lld|%lld|cpu=%lld mem=%lld eph=%lld "
	    "pods=%lld|ph=%d fl=%d sch=%d rsn=%d rdy=%d ctr=%d img=%d|",
	    p->obj.key, p->name, p->namespace, p->uid, p->owner_key ? p->owner_key : "-",
	    p->pool ? p->pool : "-", (unsigned long long)p->obj.rv, (long long)p->created_ms,
	    (long long)p->deleted_ms, (long long)p->requests.cpu_milli,
	    (long long)p->requests.memory, (long long)p->requests.ephemeral,
	    (long long)p->requests.pods, p->phase, p->flags, p->scheduled, p->sched_reason,
	    p->ready, p->containers, p->images_pulled);
	for (uint32_t i = 0; i < p->requests.next && n < (int)len; i++)
		n += snprintf(out + n, len - (size_t)n, "%s=%lld,", p->requests.ext[i].name,
		    (long long)p->requests.ext[i].value);
	for (uint32_t i = 0; i < p->tolerations->n && n < (int)len; i++) {
		const struct kube_toleration *t = &p->tolerations->items[i];
		n += snprintf(out + n, len - (size_t)n, "T%s/%s/%d/%d/%lld,", t->key ? t->key : "",
		    t->value ? t->value : "", t->exists, t->effect, (long long)t->seconds);
	}
	if (s != NULL && n < (int)len) {
		const struct kube_selector_req *r = pod_selection_reqs(s);
		n += snprintf(out + n, len - (size_t)n, "S%d/%d/%d/%d:", s->nselector, s->nterms,
		    s->nreqs, s->nvalues);
		for (uint16_t i = 0; i < 2 * s->nselector && n < (int)len; i++)
			n += snprintf(out + n, len - (size_t)n, "%s,", pod_selection_pairs(s)[i]);
		for (uint16_t i = 0; i <= s->nterms && n < (int)len; i++)
			n += snprintf(out + n, len - (size_t)n, "t%d,", pod_selection_term_first(s)[i]);
		for (uint16_t i = 0; i < s->nreqs && n < (int)len; i++)
			n += snprintf(out + n, len - (size_t)n, "%s/%d/%d/%d,", r[i].key, r[i].op,
			    r[i].first, r[i].n);
		for (uint16_t i = 0; i < s->nvalues && n < (int)len; i++)
			n += snprintf(out + n, len - (size_t)n, "%s,", pod_selection_values(s)[i]);
	}
}

/* The cache parses pruned text: it must give exactly what the whole object gives. */
static int
count_pod(void *ctx, const struct pod_info *p)
{
	(void)p;
	(*(int *)ctx)++;
	return 0;
}

/* A pod JSON for the pending index: its pool annotation, node, phase, deletion. */
static json_t *
pending_pod(const char *name, const char *pool, const char *node, const char *phase,
    bool deleting)
{
	json_t *pod = json_pack("{s:{s:s,s:s,s:s,s:s,s:{}},s:{s:[{s:s,s:s}]},s:{s:s}}",
	    "metadata", "name", name, "namespace", "ns", "uid", name, "resourceVersion", "9",
	    "annotations", "spec", "containers", "name", "c", "image", "busybox",
	    "status", "phase", phase);
	json_t *meta = json_object_get(pod, "metadata");

	if (pool != NULL)
		json_object_set_new(json_object_get(meta, "annotations"), "stratos.sh/pool",
		    json_string(pool));
	if (node != NULL)
		json_object_set_new(json_object_get(pod, "spec"), "nodeName", json_string(node));
	if (deleting)
		json_object_set_new(meta, "deletionTimestamp", json_string("2026-12-06T10:00:00Z"));
	return pod;
}

/* The controller finds a pool's waiting pods by one lookup (pod_cache_foreach_pending). */
static void
test_pending_index(void **state)
{
	struct pod_cache *pc = pod_cache_new();
	struct cache *c = pod_cache_base(pc);
	json_t *pods[] = {
		pending_pod("a", "ci", NULL, "Pending", false),        /* counted under ci */
		pending_pod("b", "ci", NULL, "Pending", false),        /* counted under ci */
		pending_pod("c", "ci", "node-1", "Pending", false),    /* bound: not waiting */
		pending_pod("d", "ci", NULL, "Succeeded", false),      /* finished */
		pending_pod("e", "ci", NULL, "Pending", true),         /* being deleted */
		pending_pod("f", NULL, NULL, "Pending", false),        /* not a pool pod */
		pending_pod("g", "gpu,ci", NULL, "Pending", false),    /* several pools: the first */
	};
	int n = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(pods) / sizeof(pods[0]); i++) {
		assert_int_equal(cache_apply(c, pods[i]), 1);
		json_decref(pods[i]);
	}
	assert_int_equal(pod_cache_pending_count(pc, "ci"), 2);
	assert_int_equal(pod_cache_foreach_pending(pc, "ci", count_pod, &n), 2);
	assert_int_equal(n, 2);
	assert_int_equal(pod_cache_pending_count(pc, "gpu"), 1);
	assert_int_equal(pod_cache_pending_count(pc, "gpu,ci"), 0);
	/* The node index still holds the bound pod. */
	n = 0;
	assert_int_equal(pod_cache_foreach_on_node(pc, "node-1", count_pod, &n), 1);

	/* Bound by the scheduler: it leaves the pending index at once. */
	json_t *bound = pending_pod("a", "ci", "node-2", "Pending", false);
	json_object_set_new(json_object_get(bound, "metadata"), "resourceVersion", json_string("10"));
	assert_int_equal(cache_apply(c, bound), 1);
	json_decref(bound);
	assert_int_equal(pod_cache_pending_count(pc, "ci"), 1);
	assert_int_equal(cache_remove(c, "ns/b", 0), 1);
	assert_int_equal(pod_cache_pending_count(pc, "ci"), 0);
	pod_cache_free(pc);
}

static void
test_pruned_parse_is_identical(void **state)
{
	static const char *const fixtures[] = {
		FIXTURE("kube/pod-full.json"), FIXTURE("extender/filter-args-nodenames.json"),
		FIXTURE("extender/filter-args-nodes.json"),
	};
	struct jsonprune *pr = jsonprune_new(POD_CACHE_FIELDS, NULL);

	(void)state;
	assert_non_null(pr);
	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		json_t *doc = test_load_json(fixtures[i]);
		json_t *pod = json_object_get(doc, "Pod") != NULL ? json_object_get(doc, "Pod") : doc;
		char *text = json_dumps(pod, JSON_COMPACT), whole[4096], cut[4096];
		struct buf out;
		struct pod_info *a, *b;
		int rc;

		buf_init(&out, 1 << 20);
		assert_int_equal(jsonprune_apply(pr, text, strlen(text), &out), 0);
		assert_true(out.len < strlen(text));
		json_t *pruned = json_loadb(out.data, out.len, 0, NULL);
		assert_non_null(pruned);
		a = pod_info_parse(pod, &rc);
		b = pod_info_parse(pruned, &rc);
		assert_non_null(a);
		assert_non_null(b);
		describe(a, whole, sizeof(whole));
		describe(b, cut, sizeof(cut));
		assert_string_equal(whole, cut);
		if (i == 0) {
			/* The rich fixture exercises every field. */
			assert_null(strstr(out.data, "managedFields"));
			assert_null(strstr(out.data, "HF_HOME"));
			assert_string_equal(a->owner_key, "ml/Deployment/llm-serve");
			assert_int_equal(a->flags, POD_FLAG_MIRROR);
			/* containers 4.1 cpu + sidecar 0.25 vs init 2 + 0.25 → 4.35, + overhead 0.25 */
			assert_int_equal(a->requests.cpu_milli, 4600);
			assert_int_equal(resources_ext_get(&a->requests, "nvidia.com/gpu"), 1);
			assert_int_equal(a->requests.ephemeral, 10LL << 30);
			assert_int_equal(a->containers, 2);
			assert_int_equal(a->images_pulled, 1);
			assert_int_equal(a->selection->nterms, 2);
			assert_int_equal(a->tolerations->n, 4);
		}
		cache_obj_unref(&a->obj);
		cache_obj_unref(&b->obj);
		json_decref(pruned);
		buf_free(&out);
		free(text);
		json_decref(doc);
	}
	jsonprune_free(pr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_extender_pod),
		cmocka_unit_test(test_admission_pods_share_interned_parts),
		cmocka_unit_test(test_requests_arithmetic),
		cmocka_unit_test(test_flags_conditions_and_owners),
		cmocka_unit_test(test_tolerations_and_selection),
		cmocka_unit_test(test_owner_key_function),
		cmocka_unit_test(test_interned_memory_returns),
		cmocka_unit_test(test_pruned_parse_is_identical),
		cmocka_unit_test(test_pending_index),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
