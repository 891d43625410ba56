/* Unit tests for the scheduler's resource arithmetic: pod requests and fit sums. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test_util.h"
#include "stratos/resources.h"

/* A ResourceList written with single quotes, parsed. */
static struct resources
list(const char *text)
{
	json_t *j = J(text);
	struct resources r;

	assert_int_equal(resources_parse_list(j, &r), 0);
	json_decref(j);
	return r;
}

/* A pod spec written with single quotes, and its scheduler request. */
static struct resources
pod(const char *spec_text)
{
	json_t *spec = J(spec_text);
	struct resources r;

	assert_int_equal(resources_pod_requests(spec, &r), 0);
	json_decref(spec);
	return r;
}

/* ---- resources_sum_* ---- */

static void
test_sum_fits_each_resource(void **state)
{
	struct resources alloc = list("{'cpu':'4','memory':'8Gi','ephemeral-storage':'20Gi',"
	    "'pods':'3','nvidia.com/gpu':'1','hugepages-2Mi':'0'}");
	struct resources a = pod("{'containers':[{'resources':{'requests':{'cpu':'2','memory':'4Gi'}}}]}");
	struct resources b = pod("{'containers':[{'resources':{'requests':{'cpu':'2','memory':'4Gi',"
	    "'ephemeral-storage':'20Gi','nvidia.com/gpu':'1'}}}]}");
	struct resources tiny_cpu = pod("{'containers':[{'resources':{'requests':{'cpu':'1m'}}}]}");
	struct resources byte = pod("{'containers':[{'resources':{'requests':{'memory':'1'}}}]}");
	struct resources eph = pod("{'containers':[{'resources':{'requests':{'ephemeral-storage':'1'}}}]}");
	struct resources gpu = pod("{'containers':[{'resources':{'requests':{'nvidia.com/gpu':'1'}}}]}");
	struct resources fpga = pod("{'containers':[{'resources':{'requests':{'example.com/fpga':'1'}}}]}");
	struct resources fpga0 = pod("{'containers':[{'resources':{'requests':{'example.com/fpga':'0'}}}]}");
	struct resources empty = pod("{'containers':[{}]}");
	struct resources_sum s;
	const char *why = "unset";

	(void)state;
	assert_int_equal(alloc.pods, 3);
	assert_int_equal(a.pods, 1);
	resources_sum_init(&s);
	assert_true(resources_sum_fits(&s, &alloc, &why));
	assert_null(why);
	assert_int_equal(resources_sum_add(&s, &a), 0);
	assert_int_equal(resources_sum_add(&s, &b), 0);
	/* Exactly full is a fit, as the scheduler's "request > free" test. */
	assert_true(resources_sum_fits(&s, &alloc, &why));
	assert_null(why);
	assert_int_equal(s.cpu_milli, 4000);
	assert_int_equal(s.memory, 8LL << 30);
	assert_int_equal(s.pods, 2);

	struct resources_sum t = s;
	assert_int_equal(resources_sum_add(&t, &tiny_cpu), 0);
	assert_false(resources_sum_fits(&t, &alloc, &why));
	assert_string_equal(why, "cpu");
	t = s;
	resources_sum_add(&t, &byte);
	assert_false(resources_sum_fits(&t, &alloc, &why));
	assert_string_equal(why, "memory");
	t = s;
	resources_sum_add(&t, &eph);
	assert_false(resources_sum_fits(&t, &alloc, &why));
	assert_string_equal(why, "ephemeral-storage");
	t = s;
	resources_sum_add(&t, &gpu);
	assert_false(resources_sum_fits(&t, &alloc, &why));
	assert_string_equal(why, "nvidia.com/gpu");
	t = s;
	resources_sum_add(&t, &empty);          /* third pod: fits */
	assert_true(resources_sum_fits(&t, &alloc, NULL));
	resources_sum_add(&t, &empty);          /* fourth: no slot */
	assert_false(resources_sum_fits(&t, &alloc, &why));
	assert_string_equal(why, "pods");

	/* An extended resource the node lacks counts as 0 there; asking 0 of it fits. */
	resources_sum_init(&t);
	resources_sum_add(&t, &fpga0);
	assert_true(resources_sum_fits(&t, &alloc, NULL));
	resources_sum_add(&t, &fpga);
	assert_false(resources_sum_fits(&t, &alloc, &why));
	assert_string_equal(why, "example.com/fpga");

	/* Several short: the first in the order cpu, memory, ephemeral-storage, pods, extended. */
	t = s;
	resources_sum_add(&t, &byte);
	resources_sum_add(&t, &gpu);
	resources_sum_add(&t, &tiny_cpu);
	assert_false(resources_sum_fits(&t, &alloc, &why));
	assert_string_equal(why, "cpu");
	t = s;
	resources_sum_add(&t, &gpu);
	resources_sum_add(&t, &empty);
	resources_sum_add(&t, &eph);            /* 5 pods, eph and gpu short */
	assert_false(resources_sum_fits(&t, &alloc, &why));
	assert_string_equal(why, "ephemeral-storage");

	resources_release(&alloc);
	resources_release(&a);
	resources_release(&b);
	resources_release(&tiny_cpu);
	resources_release(&byte);
	resources_release(&eph);
	resources_release(&gpu);
	resources_release(&fpga);
	resources_release(&fpga0);
	resources_release(&empty);
}

/* Distinct extended resources are bounded per list and per sum. */
static void
test_sum_extended_limit(void **state)
{
	struct resources lists[LIMITS_RESOURCES_EXTENDED + 1];
	struct resources_sum s;
	json_t *big = json_object();
	struct resources r;

	(void)state;
	resources_sum_init(&s);
	for (unsigned i = 0; i <= LIMITS_RESOURCES_EXTENDED; i++) {
		char name[64];
		json_t *one = json_object();
		snprintf(name, sizeof(name), "example.com/r%02u", i);
		json_object_set_new(one, name, json_string("1"));
		json_object_set_new(big, name, json_string("1"));
		assert_int_equal(resources_parse_list(one, &lists[i]), 0);
		json_decref(one);
		/* The 33rd name does not fit the sum; what it had stays intact. */
		assert_int_equal(resources_sum_add(&s, &lists[i]),
		    i < LIMITS_RESOURCES_EXTENDED ? 0 : -E2BIG);
	}
	assert_int_equal(s.next, LIMITS_RESOURCES_EXTENDED);
	/* Adding a name already in the sum never fails. */
	assert_int_equal(resources_sum_add(&s, &lists[0]), 0);
	assert_int_equal(s.ext_value[0], 2);
	/* One list with 33 names is refused outright. */
	assert_int_equal(resources_parse_list(big, &r), -E2BIG);
	json_decref(big);
	for (unsigned i = 0; i <= LIMITS_RESOURCES_EXTENDED; i++)
		resources_release(&lists[i]);
}

/* ---- resources_pod_requests: component-helpers resource.PodRequests ---- */

static void
test_pod_requests_containers_and_limits(void **state)
{
	/* A missing request is the limit (SetDefaults_Pod); an explicit request wins. */
	struct resources r = pod("{'containers':["
	    "{'resources':{'requests':{'cpu':'500m'},'limits':{'cpu':'1','memory':'1Gi'}}},"
	    "{'resources':{'limits':{'cpu':'250m','nvidia.com/gpu':'1'}}},"
	    "{'name':'no-resources'}]}");

	(void)state;
	assert_int_equal(r.cpu_milli, 750);
	assert_int_equal(r.memory, 1LL << 30);
	assert_int_equal(r.ephemeral, 0);
	assert_int_equal(r.pods, 1);
	assert_int_equal(resources_ext_get(&r, "nvidia.com/gpu"), 1);
	resources_release(&r);

	/* The pool-pod resource of the managed-resource deployment is never a request. */
	r = pod("{'containers':[{'resources':{'requests':{'stratos.sh/pool-pod':'1','cpu':'1'},"
	    "'limits':{'stratos.sh/pool-pod':'1'}}}]}");
	assert_int_equal(r.next, 0);
	assert_int_equal(r.cpu_milli, 1000);
	resources_release(&r);

	/* An empty spec still takes a pod slot. */
	r = pod("{}");
	assert_int_equal(r.cpu_milli, 0);
	assert_int_equal(r.pods, 1);

	/* A quantity that is not one: the pod cannot be measured. */
	json_t *bad = J("{'containers':[{'resources':{'requests':{'cpu':'lots'}}}]}");
	assert_int_equal(resources_pod_requests(bad, &r), -EINVAL);
	json_decref(bad);
}

/*
 * Init containers run one at a time, before the containers: the pod needs
 * the max of the containers' sum and each init container. A sidecar
 * (restartPolicy Always) keeps running: it adds to the sum and to every init
 * container started after it, not before (KEP-753, aggregateContainerResourcesByFn).
 */
static void
test_pod_requests_init_and_sidecars(void **state)
{
	struct resources r = pod("{'containers':[{'resources':{'requests':{'cpu':'750m','memory':'1Gi'}}}],"
	    "'initContainers':[{'resources':{'requests':{'cpu':'2','memory':'512Mi'}}}]}");

	(void)state;
	assert_int_equal(r.cpu_milli, 2000);
	assert_int_equal(r.memory, 1LL << 30);
	resources_release(&r);

	/*
	 * init0 cpu 4 runs before the sidecar: 4. The sidecar: containers 1 +
	 * sidecar 2 = 3. init1 runs beside the sidecar: 3 + 2 = 5. Counting the
	 * sidecar for init0 too would give 6; ignoring it for init1, 4.
	 */
	r = pod("{'containers':[{'resources':{'requests':{'cpu':'1','memory':'1Gi'}}}],"
	    "'initContainers':["
	    "{'name':'init0','resources':{'requests':{'cpu':'4'}}},"
	    "{'name':'sidecar','restartPolicy':'Always','resources':{'requests':{'cpu':'2','memory':'1Gi'}}},"
	    "{'name':'init1','restartPolicy':'OnFailure','resources':{'requests':{'cpu':'3','memory':'1536Mi'}}}]}");
	assert_int_equal(r.cpu_milli, 5000);
	/* memory: containers 1Gi + sidecar 1Gi = 2Gi; init1 1.5Gi + sidecar 1Gi = 2.5Gi. */
	assert_int_equal(r.memory, 2560LL << 20);
	resources_release(&r);

	/* Only sidecars: they simply add up with the containers. */
	r = pod("{'containers':[{'resources':{'requests':{'cpu':'1'}}}],"
	    "'initContainers':[{'restartPolicy':'Always','resources':{'limits':{'cpu':'500m'}}},"
	    "{'restartPolicy':'Always','resources':{'requests':{'cpu':'250m'}}}]}");
	assert_int_equal(r.cpu_milli, 1750);
	resources_release(&r);
}

/* spec.overhead (RuntimeClass) is added after the max, as PodRequests does. */
static void
test_pod_requests_overhead(void **state)
{
	struct resources r = pod("{'containers':[{'resources':{'requests':{'cpu':'1'}}}],"
	    "'initContainers':[{'resources':{'requests':{'cpu':'3'}}}],"
	    "'overhead':{'cpu':'250m','memory':'120Mi'}}");

	(void)state;
	assert_int_equal(r.cpu_milli, 3250);
	assert_int_equal(r.memory, 120LL << 20);
	resources_release(&r);
}

/*
 * Pod-level resources (KEP-2837; beta, on by default since 1.34, and
 * computePodResourceRequest passes SkipPodLevelResources =
 * !EnablePodLevelResources): spec.resources.requests replaces the
 * containers' aggregate for cpu, memory and hugepages-*, before overhead.
 */
static void
test_pod_requests_pod_level(void **state)
{
	struct resources r = pod("{'resources':{'requests':{'cpu':'3','memory':'2Gi'},"
	    "'limits':{'cpu':'4','memory':'2Gi'}},"
	    "'containers':[{'resources':{'requests':{'cpu':'1','memory':'1Gi','ephemeral-storage':'1Gi',"
	    "'nvidia.com/gpu':'1'}}},{'name':'no-requests'}],"
	    "'overhead':{'cpu':'100m'}}");

	(void)state;
	assert_int_equal(r.cpu_milli, 3100);
	assert_int_equal(r.memory, 2LL << 30);
	assert_int_equal(r.ephemeral, 1LL << 30);          /* not a pod-level resource */
	assert_int_equal(resources_ext_get(&r, "nvidia.com/gpu"), 1);
	resources_release(&r);

	/* A pod-level limit alone stands in where no container requests that resource. */
	r = pod("{'resources':{'limits':{'cpu':'2','memory':'4Gi'}},"
	    "'containers':[{'resources':{'requests':{'cpu':'500m'}}}]}");
	assert_int_equal(r.cpu_milli, 500);
	assert_int_equal(r.memory, 4LL << 30);
	resources_release(&r);

	/* hugepages are pod-level resources too; other extended resources are not. */
	r = pod("{'resources':{'requests':{'hugepages-2Mi':'8Mi','nvidia.com/gpu':'4'}},"
	    "'containers':[{'resources':{'requests':{'hugepages-2Mi':'2Mi','nvidia.com/gpu':'1'}}}]}");
	assert_int_equal(resources_ext_get(&r, "hugepages-2Mi"), 8LL << 20);
	assert_int_equal(resources_ext_get(&r, "nvidia.com/gpu"), 1);
	resources_release(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sum_fits_each_resource),
		cmocka_unit_test(test_sum_extended_limit),
		cmocka_unit_test(test_pod_requests_containers_and_limits),
		cmocka_unit_test(test_pod_requests_init_and_sidecars),
		cmocka_unit_test(test_pod_requests_overhead),
		cmocka_unit_test(test_pod_requests_pod_level),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
