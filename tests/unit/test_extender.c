/* Unit tests for the extender's handlers: kube-scheduler's wire format in both nodeCacheCapable modes, pass-through, what is answered on the event loop and what is deferred, and the deferred claim/reserve against a scripted API server and EC2. */
#include <errno.h>
#include <string.h>

#include "stratos/extender.h"
#include "stratos/jsonscan.h"
#include "stratos/reservations.h"
#include "stratos/server.h"
#include "stratos/timeutil.h"
/* fake_http.h's port variable would clash with server.h's server_port(). */
#define server_port fake_http_port
#include "fake_cluster.h"

#define POD_UID "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"
#define N11 "ip-10-0-1-11.ec2.internal"
#define N12 "ip-10-0-1-12.ec2.internal"

static struct extender *ex;

/* One handler call as the server makes it: the body checked by jsonscan first. */
struct answer {
	int status;
	bool deferred;
	char *body;
	json_t *json;
};

static void
answer_free(struct answer *a)
{
	free(a->body);
	json_decref(a->json);
}

static struct answer
call(server_handler_fn fn, const char *body, bool worker)
{
	struct server_request req;
	struct server_response resp;
	struct jsonscan_doc doc = { 0 };
	struct answer a;

	memset(&req, 0, sizeof(req));
	memset(&resp, 0, sizeof(resp));
	req.method = "POST";
	req.body = body;
	req.body_len = strlen(body);
	req.received_us = time_mono_us();
	req.on_worker = worker;
	assert_int_equal(jsonscan_validate(body, req.body_len, &doc, &req.json_root, NULL), 0);
	resp.status = 200;
	buf_init(&resp.body, 64u << 20);
	fn(ex, &req, &resp);
	jsonscan_doc_free(&doc);
	a.status = resp.status;
	a.deferred = resp.defer;
	a.body = buf_take(&resp.body);
	buf_free(&resp.body);
	a.json = a.deferred ? NULL : json_loads(a.body, 0, NULL);
	if (!a.deferred && a.json == NULL)
		fail_msg("reply is not JSON: %s", a.body);
	return a;
}

/* The filter call as kube-scheduler makes it: event loop first, then a worker when deferred. */
static struct answer
filter(const char *body, bool *was_deferred)
{
	struct answer a = call(extender_filter_handle, body, false);

	if (was_deferred != NULL)
		*was_deferred = a.deferred;
	if (a.deferred) {
		answer_free(&a);
		a = call(extender_filter_handle, body, true);
		assert_false(a.deferred);
	}
	return a;
}

static char *
fixture(const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/tests/fixtures/extender/%s", STRATOS_SOURCE_DIR, name);
	return test_read_file(path, NULL);
}

/* The fixture's ExtenderArgs with the pod edited (pool annotation, uid, name, cpu). */
static char *
args(const char *file, const char *pool, const char *name, const char *uid, const char *cpu)
{
	char *text = fixture(file);
	json_t *j = json_loads(text, 0, NULL), *pod = json_object_get(j, "Pod");
	json_t *md = json_object_get(pod, "metadata");
	char *out;

	free(text);
	if (pool == NULL)
		json_object_del(json_object_get(md, "annotations"), "stratos.sh/pool");
	else
		json_object_set_new(json_object_get(md, "annotations"), "stratos.sh/pool",
		    json_string(pool));
	if (name != NULL)
		json_object_set_new(md, "name", json_string(name));
	if (uid != NULL)
		json_object_set_new(md, "uid", json_string(uid));
	if (cpu != NULL)
		json_object_set_new(json_object_get(json_object_get(json_array_get(
		    json_object_get(json_object_get(pod, "spec"), "containers"), 0), "resources"),
		    "requests"), "cpu", json_string(cpu));
	out = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return out;
}

/* The pod of an ExtenderArgs into the API server and the pod cache. */
static void
put_args_pod(const char *body)
{
	json_t *j = json_loads(body, 0, NULL);

	put_pod(json_incref(json_object_get(j, "Pod")), true);
	json_decref(j);
}

static const char *
failed(struct answer *a, const char *node)
{
	return json_string_value(json_object_get(json_object_get(a->json,
	    "FailedAndUnresolvableNodes"), node));
}

static int
ext_setup(void **state)
{
	json_t *np, *nodes;
	char *text;
	size_t i;

	cluster_each_setup(state);
	np = json_pack("{s:s,s:s,s:{s:s},s:{s:i,s:i,s:{s:{s:s,s:s},s:{s:s},s:[{s:s,s:s,s:s}]},"
	    "s:{s:s}}}",
	    "apiVersion", "stratos.sh/v1alpha1", "kind", "NodePool", "metadata", "name", "ci-runners",
	    "spec", "poolSize", 20, "minStandby", 5, "template", "nodeClassRef", "kind",
	    "AWSNodeClass", "name", "ci-runners", "labels", "stratos.sh/pool", "ci-runners",
	    "startupTaints", "key", "node.eks.amazonaws.com/not-ready", "value", "true", "effect",
	    "NoSchedule", "preWarm", "timeout", "15m");
	assert_int_equal(pools_upsert_nodepool(ctx.pools, np, NULL), 0);
	json_decref(np);
	text = fixture("nodes-standby.json");
	nodes = json_loads(text, 0, NULL);
	free(text);
	for (i = 0; i < json_array_size(nodes); i++)
		put_node(json_incref(json_array_get(nodes, i)));
	json_decref(nodes);
	ex = extender_new(&ctx);
	assert_non_null(ex);
	return 0;
}

static int
ext_teardown(void **state)
{
	extender_free(ex);
	ex = NULL;
	return cluster_each_teardown(state);
}

#define EXT_TEST(t) cmocka_unit_test_setup_teardown(t, ext_setup, ext_teardown)

/* ---- pass-through ---- */

static void
test_passthrough_both_modes(void **state)
{
	char *names = args("filter-args-nodenames.json", NULL, NULL, NULL, NULL);
	char *nodes = args("filter-args-nodes.json", NULL, NULL, NULL, NULL);
	json_t *in_names = json_loads(names, 0, NULL), *in_nodes = json_loads(nodes, 0, NULL);
	struct answer a;

	(void)state;
	/* A pod of no pool: the names echoed, in the names form (nodeCacheCapable: true). */
	a = call(extender_filter_handle, names, false);
	assert_int_equal(a.status, 200);
	assert_false(a.deferred);
	assert_true(json_equal(json_object_get(a.json, "NodeNames"),
	    json_object_get(in_names, "NodeNames")));
	assert_true(json_is_null(json_object_get(a.json, "Nodes")));
	assert_int_equal(json_object_size(json_object_get(a.json, "FailedNodes")), 0);
	assert_int_equal(json_object_size(json_object_get(a.json, "FailedAndUnresolvableNodes")), 0);
	assert_string_equal(json_string_value(json_object_get(a.json, "Error")), "");
	/* Exactly the keys of ExtenderFilterResult, capitalised. */
	assert_int_equal(json_object_size(a.json), 5);
	answer_free(&a);
	/* Full Node objects: echoed as Nodes.items, byte for byte, NodeNames null. */
	a = call(extender_filter_handle, nodes, false);
	assert_int_equal(a.status, 200);
	assert_true(json_equal(json_object_get(json_object_get(a.json, "Nodes"), "items"),
	    json_object_get(json_object_get(in_nodes, "Nodes"), "items")));
	assert_true(json_is_null(json_object_get(a.json, "NodeNames")));
	answer_free(&a);
	/* Both null: zero nodes, in kind. */
	a = call(extender_filter_handle, "{\"Pod\":{},\"Nodes\":null,\"NodeNames\":null}", false);
	assert_true(json_is_null(json_object_get(a.json, "Nodes")));
	assert_true(json_is_null(json_object_get(a.json, "NodeNames")));
	answer_free(&a);
	/* No API request or start for any of it. */
	assert_int_equal(patches + gets, 0);
	json_decref(in_names);
	json_decref(in_nodes);
	free(names);
	free(nodes);
}

static void
test_bad_calls(void **state)
{
	static const char *const bodies[] = {
		"{\"Nodes\":null,\"NodeNames\":[\"a\"]}",
		"{\"Pod\":[],\"NodeNames\":[\"a\"]}",
		"{\"Pod\":{\"metadata\":{\"annotations\":{\"stratos.sh/pool\":\"ci\"}}},\"NodeNames\":[1]}",
		"{\"Pod\":{\"metadata\":{\"annotations\":{\"stratos.sh/pool\":\"ci\"}}},\"NodeNames\":[\"\"]}",
		"{\"Pod\":{},\"NodeNames\":\"a\"}",
		"{\"Pod\":{\"metadata\":{\"annotations\":{\"stratos.sh/pool\":\"ci\"}}},"
		"\"Nodes\":{\"items\":[{\"metadata\":{}}]}}",
		"{\"Pod\":{\"metadata\":{\"annotations\":{\"stratos.sh/pool\":\"ci\"}},\"spec\":"
		"{\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"lots\"}}}]}},\"NodeNames\":[\"a\"]}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct answer a = call(extender_filter_handle, bodies[i], false);
		if (a.status != 400)
			fail_msg("%s: status %d", bodies[i], a.status);
		assert_non_null(json_object_get(a.json, "error"));
		answer_free(&a);
	}
}

/* ---- pool pods ---- */

/* Standby nodes only: deferred, verified, claimed and started in the call; the message says which. */
static void
test_first_pod_starts_a_node(void **state)
{
	char *body = args("filter-args-nodenames.json", "ci-runners", NULL, NULL, NULL);
	struct reservations *r = NULL;
	struct answer a;
	bool deferred;
	json_t *n;

	(void)state;
	put_args_pod(body);
	a = filter(body, &deferred);
	assert_true(deferred);
	assert_int_equal(a.status, 200);
	/* No node is returned: the pod waits for the node started for it (N12: stopped last). */
	assert_int_equal(json_array_size(json_object_get(a.json, "NodeNames")), 0);
	assert_string_equal(failed(&a, N12), "stratos: started node " N12 " for this pod");
	assert_string_equal(failed(&a, N11), "stratos: node is standby");
	assert_string_equal(ec2_started, "i-0a1b2c3d4e5f60012,");
	n = stored(N12);
	assert_string_equal(label(n, "stratos.sh/state"), "running");
	assert_string_equal(ann(n, "stratos.sh/started-for"), "ci/runner-7d9f8c6b5-x2kqp");
	assert_string_equal(ann(n, "stratos.sh/last-workload"), "ci/Deployment/runner");
	assert_int_equal(reservations_parse(ann(n, "stratos.sh/reservations"), &r), 0);
	assert_string_equal(r->item[0].uid, POD_UID);
	reservations_free(r);
	json_decref(n);
	answer_free(&a);

	/* Its next cycle: it holds a reservation on a starting node, so it waits, from the event loop. */
	a = filter(body, &deferred);
	assert_false(deferred);
	assert_non_null(strstr(failed(&a, N12), "stratos: waiting for node " N12 ", started "));
	assert_string_equal(ec2_started, "i-0a1b2c3d4e5f60012,");
	answer_free(&a);
	free(body);
}

/* A second pod fits on the starting node: a reservation, no second start. */
static void
test_second_pod_reserves(void **state)
{
	char *first = args("filter-args-nodenames.json", "ci-runners", NULL, NULL, NULL);
	char *second = args("filter-args-nodenames.json", "ci-runners", "runner-7d9f8c6b5-zzzzz",
	    "second-uid", "3");
	char *third = args("filter-args-nodenames.json", "ci-runners", "runner-7d9f8c6b5-yyyyy",
	    "third-uid", "3");
	struct reservations *r = NULL;
	struct answer a;
	bool deferred;
	json_t *n;

	(void)state;
	put_args_pod(first);
	put_args_pod(second);
	put_args_pod(third);
	a = filter(first, NULL);
	answer_free(&a);
	a = filter(second, &deferred);
	assert_true(deferred);
	assert_non_null(strstr(failed(&a, N12), "stratos: waiting for node " N12));
	assert_string_equal(ec2_started, "i-0a1b2c3d4e5f60012,");
	answer_free(&a);
	/* 2 + 3 of 7.91 CPU promised: the third (3) does not fit and starts the other node. */
	a = filter(third, &deferred);
	assert_string_equal(failed(&a, N11), "stratos: started node " N11 " for this pod");
	assert_string_equal(ec2_started, "i-0a1b2c3d4e5f60012,i-0a1b2c3d4e5f60011,");
	answer_free(&a);
	n = stored(N12);
	assert_int_equal(reservations_parse(ann(n, "stratos.sh/reservations"), &r), 0);
	assert_int_equal(r->n, 2);
	assert_non_null(reservations_find(r, "second-uid"));
	reservations_free(r);
	json_decref(n);
	free(first);
	free(second);
	free(third);
}

/* A write that fails says why, in words that are never uninitialised (a fuzzer finding). */
static void
test_failed_write_says_why(void **state)
{
	char *first = args("filter-args-nodenames.json", "ci-runners", NULL, NULL, NULL);
	char *second = args("filter-args-nodenames.json", "ci-runners", "runner-7d9f8c6b5-zzzzz",
	    "second-uid", "1");
	struct kube *k = ctx.kube;
	struct answer a;

	(void)state;
	put_args_pod(first);
	put_args_pod(second);
	a = filter(first, NULL);
	answer_free(&a);
	/* No API client: the reservation cannot be written, and the answer says so. */
	ctx.kube = NULL;
	a = filter(second, NULL);
	ctx.kube = k;
	assert_int_equal(a.status, 200);
	assert_string_equal(failed(&a, N11), "stratos: could not reserve room on node " N12 ": "
	    "Operation not supported");
	answer_free(&a);
	free(first);
	free(second);
}

/* A forged call (no such pod) never starts a machine. */
static void
test_forged_pod_starts_nothing(void **state)
{
	char *body = args("filter-args-nodenames.json", "ci-runners", "nobody", "forged-uid", NULL);
	struct answer a;

	(void)state;
	a = filter(body, NULL);
	assert_int_equal(a.status, 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "NodeNames")), 0);
	assert_non_null(strstr(failed(&a, N11), "stratos: pod not verified"));
	assert_non_null(strstr(failed(&a, N12), "stratos: pod not verified"));
	assert_int_equal(patches, 0);
	assert_string_equal(ec2_started, "");
	answer_free(&a);
	free(body);
}

/* Full Node objects: the usable one echoed whole, the rest listed by name. */
static void
test_nodes_mode_offers_the_usable_node(void **state)
{
	char *body = args("filter-args-nodes.json", "ci-runners", NULL, NULL, NULL);
	json_t *in = json_loads(body, 0, NULL), *items = json_object_get(json_object_get(in, "Nodes"),
	    "items");
	json_t *usable = json_deep_copy(json_array_get(items, 0));
	json_t *md = json_object_get(usable, "metadata");
	struct answer a;
	char *text;

	(void)state;
	/* N11 running, Ready, network ready, no taint left: usable. */
	json_object_set_new(json_object_get(md, "labels"), "stratos.sh/state", json_string("running"));
	json_object_set_new(json_object_get(usable, "spec"), "taints", json_array());
	json_object_set_new(json_object_get(usable, "status"), "conditions", json_pack("[{s:s,s:s}]",
	    "type", "Ready", "status", "True"));
	json_object_set_new(md, "resourceVersion", json_string("2000000"));
	put_node(json_incref(usable));
	json_array_set_new(items, 0, usable);
	text = json_dumps(in, JSON_COMPACT);
	put_args_pod(text);
	a = filter(text, NULL);
	assert_int_equal(a.status, 200);
	assert_true(json_is_null(json_object_get(a.json, "NodeNames")));
	assert_int_equal(json_array_size(json_object_get(json_object_get(a.json, "Nodes"), "items")), 1);
	assert_true(json_equal(json_array_get(json_object_get(json_object_get(a.json, "Nodes"),
	    "items"), 0), usable));
	assert_string_equal(failed(&a, N12), "stratos: node is standby");
	assert_null(failed(&a, N11));
	assert_string_equal(ec2_started, "");
	answer_free(&a);
	free(text);
	free(body);
	json_decref(in);
}

/* A node the cache has never seen: in Nodes mode it is read from the call itself. */
static void
test_nodes_mode_node_not_cached(void **state)
{
	char *body = args("filter-args-nodes.json", "ci-runners", NULL, NULL, NULL);
	json_t *in = json_loads(body, 0, NULL);
	json_t *items = json_object_get(json_object_get(in, "Nodes"), "items");
	json_t *plain = json_pack("{s:{s:s,s:s,s:{s:s}},s:{},s:{s:{s:s,s:s,s:s},s:[{s:s,s:s}]}}",
	    "metadata", "name", "plain-node", "resourceVersion", "7", "labels",
	    "kubernetes.io/hostname", "plain-node", "spec", "status", "allocatable", "cpu", "4",
	    "memory", "8Gi", "pods", "110", "conditions", "type", "Ready", "status", "True");
	struct answer a;
	char *text;

	(void)state;
	json_array_append_new(items, plain);
	text = json_dumps(in, JSON_COMPACT);
	a = filter(text, NULL);
	assert_int_equal(json_array_size(json_object_get(json_object_get(a.json, "Nodes"), "items")), 1);
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(
	    json_object_get(json_object_get(a.json, "Nodes"), "items"), 0), "metadata"), "name")),
	    "plain-node");
	answer_free(&a);
	/* In the names form an unknown name is only a name: dropped, with a reason. */
	free(body);
	body = args("filter-args-nodenames.json", "ci-runners", NULL, NULL, NULL);
	json_decref(in);
	in = json_loads(body, 0, NULL);
	json_array_append_new(json_object_get(in, "NodeNames"), json_string("plain-node"));
	free(text);
	text = json_dumps(in, JSON_COMPACT);
	ec2_mode("i-0a1b2c3d4e5f60012", EC2_OK);
	put_args_pod(text);
	a = filter(text, NULL);
	assert_string_equal(failed(&a, "plain-node"), "stratos: node is not known yet");
	answer_free(&a);
	free(text);
	free(body);
	json_decref(in);
}

/* No standby left: no node, the same message on every node. */
static void
test_no_capacity(void **state)
{
	char *body = args("filter-args-nodenames.json", "ci-runners", NULL, NULL, NULL);
	struct answer a;
	bool deferred;

	(void)state;
	put_args_pod(body);
	ec2_mode("i-0a1b2c3d4e5f60011", EC2_CAPACITY);
	ec2_mode("i-0a1b2c3d4e5f60012", EC2_CAPACITY);
	a = filter(body, &deferred);
	assert_true(deferred);
	assert_string_equal(failed(&a, N11), "stratos: no standby capacity in pool ci-runners");
	assert_string_equal(failed(&a, N12), "stratos: no standby capacity in pool ci-runners");
	assert_string_equal(ec2_started, "i-0a1b2c3d4e5f60012,i-0a1b2c3d4e5f60011,");
	answer_free(&a);
	free(body);
}

static void
test_prioritize(void **state)
{
	char *pool_body = args("filter-args-nodenames.json", "ci-runners", NULL, NULL, NULL);
	char *plain_body = args("filter-args-nodenames.json", NULL, NULL, NULL, NULL);
	struct answer a;
	json_t *n;

	(void)state;
	put_args_pod(pool_body);
	/* N12 claimed for this pod (its reservation), N11 last ran this Deployment. */
	a = filter(pool_body, NULL);
	answer_free(&a);
	n = stored(N11);
	json_object_set_new(json_object_get(json_object_get(n, "metadata"), "annotations"),
	    "stratos.sh/last-workload", json_string("ci/Deployment/runner"));
	json_object_set_new(json_object_get(n, "metadata"), "resourceVersion", json_string("1000012"));
	put_node(n);
	a = call(extender_prioritize_handle, pool_body, false);
	assert_int_equal(a.status, 200);
	assert_int_equal(json_array_size(a.json), 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *hp = json_array_get(a.json, i);
		const char *host = json_string_value(json_object_get(hp, "Host"));
		assert_int_equal(json_integer_value(json_object_get(hp, "Score")),
		    strcmp(host, N12) == 0 ? 10 : 8);
	}
	answer_free(&a);
	a = call(extender_prioritize_handle, plain_body, false);
	assert_int_equal(json_array_size(a.json), 0);
	answer_free(&a);
	free(pool_body);
	free(plain_body);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		EXT_TEST(test_passthrough_both_modes),
		EXT_TEST(test_bad_calls),
		EXT_TEST(test_first_pod_starts_a_node),
		EXT_TEST(test_second_pod_reserves),
		EXT_TEST(test_failed_write_says_why),
		EXT_TEST(test_forged_pod_starts_nothing),
		EXT_TEST(test_nodes_mode_offers_the_usable_node),
		EXT_TEST(test_nodes_mode_node_not_cached),
		EXT_TEST(test_no_capacity),
		EXT_TEST(test_prioritize),
	};

	return cmocka_run_group_tests(tests, cluster_setup, cluster_teardown);
}
