/* Unit tests for warmup completion, the pre-pull pod and what keeps a node busy for scale-down. */
#include <string.h>

#include "test_util.h"
#include "stratos/nodestate.h"
#include "stratos/scaledown.h"
#include "stratos/warmup.h"

static void
test_complete(void **state)
{
	struct warmup_progress p = { .ready = true, .daemon_pods = 2, .daemon_ready = 2 };

	(void)state;
	assert_true(warmup_complete(&p));
	p.daemon_ready = 1;
	assert_false(warmup_complete(&p));            /* a DaemonSet pod not Ready */
	p.daemon_ready = 2;
	p.ready = false;
	assert_false(warmup_complete(&p));
	p.ready = true;
	p.images_wanted = 2;
	assert_false(warmup_complete(&p));            /* no pre-pull pod yet */
	p.prepull_exists = true;
	p.images_pulled = 1;
	assert_false(warmup_complete(&p));
	p.images_pulled = 2;
	assert_true(warmup_complete(&p));
}

static void
test_prepull_pod(void **state)
{
	json_t *pj = J("{'apiVersion':'stratos.sh/v1alpha1','kind':'NodePool','metadata':{'name':'llm'},"
	    "'spec':{'poolSize':3,'minStandby':1,'template':{'nodeClassRef':{'kind':'AWSNodeClass',"
	    "'name':'llm'}},'preWarm':{'imagesToPull':['my-registry.com/llama-3:70b','busybox']}}}");
	struct nodepool *p = NULL;
	json_t *pod, *c;
	char name[300], longnode[260];

	(void)state;
	assert_int_equal(nodepool_parse(pj, NULL, &p), 0);
	pod = warmup_prepull_pod("stratos-system", "ip-10-0-0-4.ec2.internal", p);
	assert_non_null(pod);
	assert_string_equal(json_string_value(json_object_get(json_object_get(pod, "metadata"), "name")),
	    "stratos-prepull-ip-10-0-0-4.ec2.internal");
	assert_string_equal(json_string_value(json_object_get(json_object_get(pod, "metadata"),
	    "namespace")), "stratos-system");
	json_t *spec = json_object_get(pod, "spec");
	assert_string_equal(json_string_value(json_object_get(spec, "nodeName")),
	    "ip-10-0-0-4.ec2.internal");
	assert_string_equal(json_string_value(json_object_get(spec, "restartPolicy")), "Never");
	assert_int_equal(json_array_size(json_object_get(spec, "containers")), 2);
	c = json_array_get(json_object_get(spec, "containers"), 1);
	assert_string_equal(json_string_value(json_object_get(c, "name")), "pull-1");
	assert_string_equal(json_string_value(json_object_get(c, "image")), "busybox");
	/* Every taint tolerated: it must run on a node still tainted for warmup. */
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(spec,
	    "tolerations"), 0), "operator")), "Exists");
	assert_false(json_is_true(json_object_get(spec, "automountServiceAccountToken")));
	/* A node name that would make the pod's name too long. */
	memset(longnode, 'a', 250);
	longnode[250] = '\0';
	assert_int_not_equal(warmup_prepull_name(longnode, name, sizeof(name)), 0);
	json_decref(pod);
	nodepool_free(p);
	json_decref(pj);
}

static void
test_what_keeps_a_node_busy(void **state)
{
	struct pod_info pod;

	(void)state;
	memset(&pod, 0, sizeof(pod));
	pod.phase = POD_PHASE_RUNNING;
	assert_true(scaledown_pod_counts(&pod));
	assert_true(scaledown_pod_evictable(&pod));
	pod.flags = POD_FLAG_DAEMONSET;
	assert_false(scaledown_pod_counts(&pod));
	pod.flags = POD_FLAG_MIRROR;
	assert_false(scaledown_pod_counts(&pod));
	pod.flags = 0;
	pod.phase = POD_PHASE_SUCCEEDED;
	assert_false(scaledown_pod_counts(&pod));
	pod.phase = POD_PHASE_FAILED;
	assert_false(scaledown_pod_counts(&pod));
	pod.phase = POD_PHASE_PENDING;
	assert_true(scaledown_pod_counts(&pod));
	/* Being deleted: still busy until gone, but not evicted again. */
	pod.deleted_ms = 1;
	assert_true(scaledown_pod_counts(&pod));
	assert_false(scaledown_pod_evictable(&pod));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_complete),
		cmocka_unit_test(test_prepull_pod),
		cmocka_unit_test(test_what_keeps_a_node_busy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
