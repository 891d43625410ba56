/* Unit tests for AdmissionReview answering and the NodePool/AWSNodeClass validating webhooks, in process. */
#include <stdio.h>
#include <string.h>

#include "test_util.h"
#include "stratos/admission.h"
#include "stratos/limits.h"
#include "stratos/metrics.h"
#include "stratos/pools_file.h"
#include "stratos/validate_webhook.h"
#include "stratos/yamljson.h"

static struct pools *pools;
static json_t *seed;

static int
setup(void **state)
{
	struct yamljson_error yerr;

	(void)state;
	pools = pools_new();
	assert_int_equal(pools_file_load(pools, FIXTURE("seed-examples.yaml"), stderr), 0);
	assert_int_equal(yamljson_parse_file(FIXTURE("seed-examples.yaml"), &seed, &yerr), 0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	pools_free(pools);
	json_decref(seed);
	return 0;
}

static json_t *
call(server_handler_fn fn, void *ctx, const char *body, int *status)
{
	struct server_request req = { .method = "POST", .path = "/admission/x", .body = body,
		.body_len = strlen(body) };
	struct server_response resp = { .status = 200, .content_type = "application/json" };
	json_error_t err;
	json_t *v;

	buf_init(&resp.body, LIMITS_HTTP_BODY_DEFAULT);
	fn(ctx, &req, &resp);
	*status = resp.status;
	v = json_loadb(resp.body.data, resp.body.len, 0, &err);
	if (v == NULL)
		fail_msg("response is not JSON: %s: %.*s", err.text, (int)resp.body.len, resp.body.data);
	buf_free(&resp.body);
	return v;
}

/* An AdmissionReview around object/oldObject (either may be NULL); returns the body text. */
static char *
review(const char *uid, const char *kind, const char *op, const json_t *obj, const json_t *old,
    const char *subresource)
{
	json_t *r = json_pack("{s:s, s:s, s:{s:s, s:{s:s, s:s, s:s}, s:s, s:s, s:O?, s:O?, s:b}}",
	    "apiVersion", "admission.k8s.io/v1", "kind", "AdmissionReview",
	    "request", "uid", uid, "kind", "group", "stratos.sh", "version", "v1alpha1", "kind", kind,
	    "operation", op, "name", json_string_value(json_object_get(json_object_get(
	    obj != NULL ? obj : old, "metadata"), "name")),
	    "object", obj, "oldObject", old, "dryRun", 0);
	char *text;

	if (subresource != NULL)
		json_object_set_new(json_object_get(r, "request"), "subResource", json_string(subresource));
	text = json_dumps(r, JSON_COMPACT);
	json_decref(r);
	return text;
}

static void
assert_review_response(const json_t *resp, const char *uid)
{
	assert_string_equal(json_string_value(json_object_get(resp, "apiVersion")), "admission.k8s.io/v1");
	assert_string_equal(json_string_value(json_object_get(resp, "kind")), "AdmissionReview");
	assert_string_equal(json_string_value(json_object_get(json_object_get(resp, "response"), "uid")), uid);
}

/* The fixture: denied with every violation, 422 Invalid, one cause per violation. */
static void
test_invalid_fixture_denied(void **state)
{
	struct validate_webhook *vr = validate_webhook_new(pools, NULL);
	struct metrics_family *denials;
	char *body = test_read_file(FIXTURE("admission/nodepool-create-invalid.json"), NULL);
	json_t *resp, *r, *st, *causes;
	double before;
	int status;

	(void)state;
	denials = metrics_register(METRICS_COUNTER, "stratos_admission_denials_total", "", NULL, NULL, 0);
	before = metrics_value(denials, "NodePool");
	resp = call(validate_webhook_nodepool_handle, vr, body, &status);
	assert_int_equal(status, 200);
	assert_review_response(resp, "c0ffee00-1234-4abc-8def-0123456789ab");
	r = json_object_get(resp, "response");
	assert_true(json_is_false(json_object_get(r, "allowed")));
	assert_null(json_object_get(r, "patch"));
	assert_null(json_object_get(r, "patchType"));
	st = json_object_get(r, "status");
	assert_int_equal(json_integer_value(json_object_get(st, "code")), 422);
	assert_string_equal(json_string_value(json_object_get(st, "reason")), "Invalid");
	assert_string_equal(json_string_value(json_object_get(st, "message")),
	    "NodePool \"ci-runners\" is invalid: "
	    "spec.minStandby: must not be greater than spec.poolSize (3); "
	    "spec.template.startupTaints[0].effect: must be one of NoSchedule, PreferNoSchedule, NoExecute; "
	    "spec.preWarm.timeout: must be a duration like 30s, 5m or 1h30m");
	causes = json_object_get(json_object_get(st, "details"), "causes");
	assert_int_equal(json_array_size(causes), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(causes, 1), "field")),
	    "spec.template.startupTaints[0].effect");
	assert_string_equal(json_string_value(json_object_get(json_array_get(causes, 1), "message")),
	    "must be one of NoSchedule, PreferNoSchedule, NoExecute");
	assert_true(metrics_value(denials, "NodePool") == before + 1);
	json_decref(resp);
	free(body);
	validate_webhook_free(vr);
}

/* Every seed example, as a CREATE review: allowed, no patch, no warnings. */
static void
test_seed_examples_allowed(void **state)
{
	struct validate_webhook *vr = validate_webhook_new(pools, NULL);
	size_t i;
	json_t *doc;

	(void)state;
	json_array_foreach(seed, i, doc) {
		const char *kind = json_string_value(json_object_get(doc, "kind"));
		bool pool = strcmp(kind, "NodePool") == 0;
		char *body = review("u-seed", kind, "CREATE", doc, NULL, NULL);
		json_t *resp, *r;
		int status;

		resp = call(pool ? validate_webhook_nodepool_handle :
		    validate_webhook_nodeclass_handle, vr, body, &status);
		assert_int_equal(status, 200);
		assert_review_response(resp, "u-seed");
		r = json_object_get(resp, "response");
		assert_true(json_is_true(json_object_get(r, "allowed")));
		assert_null(json_object_get(r, "patch"));
		assert_null(json_object_get(r, "status"));
		assert_null(json_object_get(r, "warnings"));
		json_decref(resp);
		free(body);
	}
	validate_webhook_free(vr);
}

static long
four_nodes(void *ctx, const char *pool)
{
	(void)ctx;
	return strcmp(pool, "ci-runners") == 0 ? 4 : 0;
}

static void
test_warnings_and_transitions(void **state)
{
	struct validate_webhook_options opt = { .pool_nodes = four_nodes };
	struct validate_webhook *vr = validate_webhook_new(pools, &opt);
	json_t *old = json_array_get(seed, 1), *obj = json_deep_copy(old), *resp, *w;
	char *body;
	int status;

	(void)state;
	/* A class that does not exist (the registry is loaded): allowed with a warning. */
	json_object_set_new(json_object_get(json_object_get(json_object_get(obj, "spec"), "template"),
	    "nodeClassRef"), "name", json_string("gpu"));
	body = review("u2", "NodePool", "CREATE", obj, NULL, NULL);
	resp = call(validate_webhook_nodepool_handle, vr, body, &status);
	w = json_object_get(json_object_get(resp, "response"), "warnings");
	assert_true(json_is_true(json_object_get(json_object_get(resp, "response"), "allowed")));
	assert_int_equal(json_array_size(w), 1);
	assert_string_equal(json_string_value(json_array_get(w, 0)),
	    "spec.template.nodeClassRef.name: AWSNodeClass gpu not found; the pool cannot launch nodes until it exists");
	json_decref(resp);
	free(body);
	/* The same change as an UPDATE of a pool with 4 nodes. */
	body = review("u3", "NodePool", "UPDATE", obj, old, NULL);
	resp = call(validate_webhook_nodepool_handle, vr, body, &status);
	w = json_object_get(json_object_get(resp, "response"), "warnings");
	assert_int_equal(json_array_size(w), 2);
	assert_string_equal(json_string_value(json_array_get(w, 1)),
	    "spec.template.nodeClassRef: changed while the pool has 4 node(s); they keep the old class until replaced");
	for (size_t i = 0; i < json_array_size(w); i++)
		assert_true(strlen(json_string_value(json_array_get(w, i))) < 120);
	json_decref(resp);
	free(body);
	/* Status writes and other kinds are not looked at. */
	json_object_set_new(json_object_get(obj, "spec"), "poolSize", json_integer(0));
	body = review("u4", "NodePool", "UPDATE", obj, old, "status");
	resp = call(validate_webhook_nodepool_handle, vr, body, &status);
	assert_true(json_is_true(json_object_get(json_object_get(resp, "response"), "allowed")));
	json_decref(resp);
	free(body);
	body = review("u5", "AWSNodeClass", "CREATE", obj, NULL, NULL);
	resp = call(validate_webhook_nodepool_handle, vr, body, &status);
	assert_true(json_is_true(json_object_get(json_object_get(resp, "response"), "allowed")));
	json_decref(resp);
	free(body);
	/* DELETE of a class in use: allowed, warned. */
	body = review("u6", "AWSNodeClass", "DELETE", NULL, json_array_get(seed, 0), NULL);
	resp = call(validate_webhook_nodeclass_handle, vr, body, &status);
	assert_review_response(resp, "u6");
	assert_true(json_is_true(json_object_get(json_object_get(resp, "response"), "allowed")));
	assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(resp,
	    "response"), "warnings"), 0)),
	    "AWSNodeClass ci-runners is used by NodePool ci-runners; they cannot launch nodes without it");
	json_decref(resp);
	free(body);
	/* CREATE without an object is a malformed review. */
	body = review("u7", "NodePool", "CREATE", NULL, old, NULL);
	resp = call(validate_webhook_nodepool_handle, vr, body, &status);
	assert_int_equal(status, 400);
	json_decref(resp);
	free(body);
	json_decref(obj);
	validate_webhook_free(vr);
}

/* Hundreds of violations: all counted, the message stays within its cap. */
static void
test_many_violations(void **state)
{
	struct validate_webhook *vr = validate_webhook_new(pools, NULL);
	json_t *obj = json_deep_copy(json_array_get(seed, 1)), *labels = json_object(), *resp, *st;
	const char *msg;
	char *body;
	int status;

	(void)state;
	for (int i = 0; i < 60; i++) {
		char key[300];
		memset(key, 'k', 80);
		snprintf(key + 80, sizeof(key) - 80, "%d", i);
		json_object_set_new(labels, key, json_string("-bad-"));
	}
	json_object_set_new(json_object_get(json_object_get(obj, "spec"), "template"), "labels", labels);
	body = review("u8", "NodePool", "CREATE", obj, NULL, NULL);
	resp = call(validate_webhook_nodepool_handle, vr, body, &status);
	st = json_object_get(json_object_get(resp, "response"), "status");
	msg = json_string_value(json_object_get(st, "message"));
	assert_true(strlen(msg) <= LIMITS_ADMISSION_MESSAGE);
	assert_int_equal(json_array_size(json_object_get(json_object_get(st, "details"), "causes")), 120);
	assert_non_null(strstr(msg, "labels[kkkkkkkk"));
	json_decref(resp);
	free(body);
	json_decref(obj);
	validate_webhook_free(vr);
}

static void
test_respond_shapes(void **state)
{
	struct server_response resp = { .status = 0 };
	const char *ws[2];
	char longw[300];
	json_t *v, *r;
	struct admission_verdict deny = { .allowed = false, .code = 200, .message = "no" };
	struct admission_verdict allow = { .allowed = true };

	(void)state;
	memset(longw, 'w', sizeof(longw) - 1);
	longw[sizeof(longw) - 1] = '\0';
	longw[5] = '\n';
	ws[0] = longw;
	ws[1] = "short";
	allow.warnings = ws;
	allow.nwarnings = 2;
	allow.patch = "[{\"op\":\"add\",\"path\":\"/metadata/annotations/a~1b\",\"value\":\"x\"}]";
	allow.patch_len = strlen(allow.patch);
	buf_init(&resp.body, 1 << 16);
	assert_int_equal(admission_respond(&resp, "uid-1", &allow), 0);
	assert_int_equal(resp.status, 200);
	v = json_loads(resp.body.data, 0, NULL);
	r = json_object_get(v, "response");
	assert_string_equal(json_string_value(json_object_get(r, "patchType")), "JSONPatch");
	/* base64 of [{"op":"add","path":"/metadata/annotations/a~1b","value":"x"}] */
	assert_string_equal(json_string_value(json_object_get(r, "patch")),
	    "W3sib3AiOiJhZGQiLCJwYXRoIjoiL21ldGFkYXRhL2Fubm90YXRpb25zL2F+MWIiLCJ2YWx1ZSI6IngifV0=");
	assert_int_equal(strlen(json_string_value(json_array_get(json_object_get(r, "warnings"), 0))),
	    LIMITS_ADMISSION_WARNING);
	assert_null(strchr(json_string_value(json_array_get(json_object_get(r, "warnings"), 0)), '\n'));
	assert_string_equal(json_string_value(json_array_get(json_object_get(r, "warnings"), 1)), "short");
	json_decref(v);
	/* A denial's code below 400 becomes 400; no patch on denials. */
	assert_int_equal(admission_respond(&resp, "uid-2", &deny), 0);
	v = json_loads(resp.body.data, 0, NULL);
	r = json_object_get(v, "response");
	assert_true(json_is_false(json_object_get(r, "allowed")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "status"), "code")), 400);
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "status"), "reason")), "Invalid");
	json_decref(v);
	buf_free(&resp.body);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_invalid_fixture_denied),
		cmocka_unit_test(test_seed_examples_allowed),
		cmocka_unit_test(test_warnings_and_transitions),
		cmocka_unit_test(test_many_violations),
		cmocka_unit_test(test_respond_shapes),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
