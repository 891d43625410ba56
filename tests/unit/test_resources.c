/* Unit tests for the scheduler's resource arithmetic: pod requests, fit sums, canonical quantities. */
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

/*
 * resources_sum_fits_pod is fitsRequest of kube-scheduler's NodeResourcesFit
 * (pkg/scheduler/framework/plugins/noderesources/fit.go): the pod slot is
 * always checked, each other resource only when the pod asks for it.
 */
static void
test_sum_fits_pod_like_the_scheduler(void **state)
{
	struct resources alloc = list("{'cpu':'2','memory':'4Gi','pods':'2','nvidia.com/gpu':'1'}");
	struct resources hog = pod("{'containers':[{'resources':{'requests':{'memory':'5Gi'}}}]}");
	struct resources cpu_only = pod("{'containers':[{'resources':{'requests':{'cpu':'2'}}}]}");
	struct resources more_cpu = pod("{'containers':[{'resources':{'requests':{'cpu':'2001m'}}}]}");
	struct resources mem = pod("{'containers':[{'resources':{'requests':{'memory':'1'}}}]}");
	struct resources gpu = pod("{'containers':[{'resources':{'requests':{'nvidia.com/gpu':'1'}}}]}");
	struct resources fpga = pod("{'containers':[{'resources':{'requests':{'example.com/fpga':'1'}}}]}");
	struct resources none = pod("{'containers':[{}]}");
	struct resources_sum used, whole;
	const char *why;

	(void)state;
	/* A static pod overcommitted memory: a pod asking no memory still fits... */
	resources_sum_init(&used);
	resources_sum_add(&used, &hog);
	assert_true(resources_sum_fits_pod(&used, &cpu_only, &alloc, &why));
	assert_null(why);
	/* ...which a whole-sum test would refuse. */
	whole = used;
	resources_sum_add(&whole, &cpu_only);
	assert_false(resources_sum_fits(&whole, &alloc, &why));
	assert_string_equal(why, "memory");
	/* A pod asking any memory does not. */
	assert_false(resources_sum_fits_pod(&used, &mem, &alloc, &why));
	assert_string_equal(why, "memory");
	assert_false(resources_sum_fits_pod(&used, &more_cpu, &alloc, &why));
	assert_string_equal(why, "cpu");
	/* The pod slot comes first in fitsRequest's order. */
	resources_sum_add(&used, &none);
	assert_int_equal(used.pods, 2);
	assert_false(resources_sum_fits_pod(&used, &more_cpu, &alloc, &why));
	assert_string_equal(why, "pods");
	assert_false(resources_sum_fits_pod(&used, &none, &alloc, &why));
	assert_string_equal(why, "pods");

	/* Extended resources: what others use counts; a name the node lacks is 0. */
	resources_sum_init(&used);
	assert_true(resources_sum_fits_pod(&used, &gpu, &alloc, NULL));
	resources_sum_add(&used, &gpu);
	assert_false(resources_sum_fits_pod(&used, &gpu, &alloc, &why));
	assert_string_equal(why, "nvidia.com/gpu");
	assert_false(resources_sum_fits_pod(&used, &fpga, &alloc, &why));
	assert_string_equal(why, "example.com/fpga");
	assert_true(resources_sum_fits_pod(&used, &cpu_only, &alloc, NULL));

	resources_release(&alloc);
	resources_release(&hog);
	resources_release(&cpu_only);
	resources_release(&more_cpu);
	resources_release(&mem);
	resources_release(&gpu);
	resources_release(&fpga);
	resources_release(&none);
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

/* ---- resources_format_list ---- */

/* A value, the canonical string the API server prints for it, and the resource it is of. */
struct canon {
	const char *name;
	int64_t value;
	const char *text;
};

static const struct canon CANON[] = {
	{ "cpu", 1, "1m" },
	{ "cpu", 500, "500m" },
	{ "cpu", 1000, "1" },
	{ "cpu", 1500, "1500m" },                 /* "1.5" is printed "1500m" */
	{ "cpu", 7910, "7910m" },
	{ "cpu", 10000, "10" },
	{ "cpu", 2000000, "2k" },
	{ "cpu", 123456789, "123456789m" },
	{ "cpu", INT64_MAX, "9223372036854775807m" },
	{ "memory", 1, "1" },
	{ "memory", 999, "999" },
	{ "memory", 1000, "1k" },                 /* below 1Ki BinarySI turns DecimalSI */
	{ "memory", 1023, "1023" },
	{ "memory", 1024, "1Ki" },
	{ "memory", 1025, "1025" },
	{ "memory", 1536, "1536" },
	{ "memory", 1024000, "1000Ki" },
	{ "memory", 1000000000, "1G" },           /* "1000000000" would be printed "1G" */
	{ "memory", 1LL << 30, "1Gi" },
	{ "memory", 3LL << 29, "1536Mi" },        /* "1.5Gi" is printed "1536Mi" */
	{ "memory", 31369588LL * 1024, "31369588Ki" },
	{ "memory", 7LL << 60, "7Ei" },
	{ "memory", INT64_MAX, "9223372036854775807" },
	{ "memory", -(1LL << 20), "-1Mi" },
	{ "ephemeral-storage", 192188443124LL, "192188443124" },
	{ "ephemeral-storage", 20LL << 30, "20Gi" },
	{ "ephemeral-storage", 5000000, "5M" },
	{ "pods", 110, "110" },
	{ "pods", 1000, "1k" },
	{ "nvidia.com/gpu", 1, "1" },
	{ "nvidia.com/gpu", 0, "0" },             /* extended resources are written even at 0 */
	{ "example.com/widgets", 2048, "2048" },  /* counts: never a binary suffix */
	{ "example.com/widgets", 3000000, "3M" },
	{ "hugepages-2Mi", 2LL << 20, "2Mi" },
	{ "hugepages-1Gi", 0, "0" },
};

/* The value CANON[i] names, as a resources struct (through the parser, which is tested above). */
static int64_t
value_of(const struct resources *r, const char *name)
{
	if (strcmp(name, "cpu") == 0)
		return r->cpu_milli;
	if (strcmp(name, "memory") == 0)
		return r->memory;
	if (strcmp(name, "ephemeral-storage") == 0)
		return r->ephemeral;
	if (strcmp(name, "pods") == 0)
		return r->pods;
	return resources_ext_get(r, name);
}

static void
test_format_canonical_and_round_trip(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(CANON) / sizeof(CANON[0]); i++) {
		struct resources r, back;
		json_t *in, *out = NULL;
		const char *got;
		char *text;

		/* The struct holding just this value (parse the long decimal form). */
		memset(&r, 0, sizeof(r));
		if (strcmp(CANON[i].name, "cpu") == 0)
			r.cpu_milli = CANON[i].value;
		else if (strcmp(CANON[i].name, "memory") == 0)
			r.memory = CANON[i].value;
		else if (strcmp(CANON[i].name, "ephemeral-storage") == 0)
			r.ephemeral = CANON[i].value;
		else if (strcmp(CANON[i].name, "pods") == 0)
			r.pods = CANON[i].value;
		else {
			char v[32];
			snprintf(v, sizeof(v), "%lld", (long long)CANON[i].value);
			in = json_pack("{s:s}", CANON[i].name, v);
			assert_int_equal(resources_parse_list(in, &r), 0);
			json_decref(in);
		}
		assert_int_equal(resources_format_list(&r, &out), 0);
		text = json_dumps(out, JSON_COMPACT);
		got = json_string_value(json_object_get(out, CANON[i].name));
		if (got == NULL || strcmp(got, CANON[i].text) != 0)
			fail_msg("%s = %lld: got %s, want \"%s\"", CANON[i].name,
			    (long long)CANON[i].value, text, CANON[i].text);
		assert_int_equal(json_object_size(out), 1);
		/* parse(format(x)) == x */
		assert_int_equal(resources_parse_list(out, &back), 0);
		assert_int_equal(value_of(&back, CANON[i].name), CANON[i].value);
		free(text);
		json_decref(out);
		resources_release(&back);
		resources_release(&r);
	}
}

/* Whole lists: non-canonical input comes out canonical, and the values survive. */
static void
test_format_whole_lists(void **state)
{
	static const char *const inputs[] = {
		"{'cpu':'0.5','memory':'1.5Gi','ephemeral-storage':'1e3','nvidia.com/gpu':'2',"
		"'hugepages-2Mi':'4194304'}",
		"{'cpu':'7910m','memory':'31369588Ki','ephemeral-storage':'192188443124',"
		"'pods':'58','hugepages-1Gi':'0','hugepages-2Mi':'0'}",
		"{'cpu':'100u','memory':'100m'}",               /* rounded up on parse */
		"{}",
	};
	static const char *const canonical[] = {
		"{\"cpu\":\"500m\",\"memory\":\"1536Mi\",\"ephemeral-storage\":\"1k\","
		"\"hugepages-2Mi\":\"4Mi\",\"nvidia.com/gpu\":\"2\"}",
		"{\"cpu\":\"7910m\",\"memory\":\"31369588Ki\",\"ephemeral-storage\":\"192188443124\","
		"\"pods\":\"58\",\"hugepages-1Gi\":\"0\",\"hugepages-2Mi\":\"0\"}",
		"{\"cpu\":\"1m\",\"memory\":\"1\"}",
		"{}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		struct resources r = list(inputs[i]), back;
		json_t *out, *again;
		char *text, *text2;

		assert_int_equal(resources_format_list(&r, &out), 0);
		text = json_dumps(out, JSON_COMPACT);
		assert_string_equal(text, canonical[i]);
		assert_int_equal(resources_parse_list(out, &back), 0);
		assert_int_equal(back.cpu_milli, r.cpu_milli);
		assert_int_equal(back.memory, r.memory);
		assert_int_equal(back.ephemeral, r.ephemeral);
		assert_int_equal(back.pods, r.pods);
		assert_int_equal(back.next, r.next);
		/* Interned: an equal list shares the very same blob. */
		assert_ptr_equal(back.ext, r.ext);
		/* Formatting is a fixed point. */
		assert_int_equal(resources_format_list(&back, &again), 0);
		text2 = json_dumps(again, JSON_COMPACT);
		assert_string_equal(text2, text);
		free(text);
		free(text2);
		json_decref(out);
		json_decref(again);
		resources_release(&r);
		resources_release(&back);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sum_fits_each_resource),
		cmocka_unit_test(test_sum_extended_limit),
		cmocka_unit_test(test_sum_fits_pod_like_the_scheduler),
		cmocka_unit_test(test_pod_requests_containers_and_limits),
		cmocka_unit_test(test_pod_requests_init_and_sidecars),
		cmocka_unit_test(test_pod_requests_overhead),
		cmocka_unit_test(test_pod_requests_pod_level),
		cmocka_unit_test(test_format_canonical_and_round_trip),
		cmocka_unit_test(test_format_whole_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
