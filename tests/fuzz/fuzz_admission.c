/* libFuzzer target: AdmissionReview bodies through the three admission handlers, as the server calls them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "../unit/patch_apply.h"
#include "stratos/admission.h"
#include "stratos/jsonscan.h"
#include "stratos/limits.h"
#include "stratos/log.h"
#include "stratos/mutate_pod.h"
#include "stratos/pools.h"
#include "stratos/pools_file.h"
#include "stratos/validate_webhook.h"

#ifndef STRATOS_SOURCE_DIR
#define STRATOS_SOURCE_DIR "."
#endif

/*
 * Each body goes to every handler twice: as the server delivers it on a
 * SERVER_ROUTE_JSON route (jsonscan-checked, json_root set; a body that
 * fails the check gets 400 from the server and never reaches a handler),
 * and without the check, as a handler must also cope. Whatever the body,
 * the reply is a JSON document with a known status, and a mutation is a
 * JSON Patch that applies to the pod it was computed for.
 */
static struct pools *fuzz_pools;
static struct mutate_pod *fuzz_mutate;
static struct validate_webhook *fuzz_validate;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check_patch(const char *body, size_t len, const json_t *reply)
{
	const json_t *response = json_object_get(reply, "response");
	const char *b64 = json_string_value(json_object_get(response, "patch"));
	json_t *review, *pod, *patch;
	size_t n, failed = 0;
	unsigned char *raw;
	int rawlen;

	if (b64 == NULL)
		return;
	n = strlen(b64);
	raw = malloc(n + 1);
	if (raw == NULL)
		return;
	rawlen = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
	if (rawlen < 0) {
		fprintf(stderr, "patch is not base64\n");
		abort();
	}
	while (rawlen > 0 && n > 0 && b64[n - 1] == '=') {
		rawlen--;
		n--;
	}
	patch = json_loadb((const char *)raw, (size_t)rawlen, 0, NULL);
	free(raw);
	review = json_loadb(body, len, 0, NULL);
	pod = json_deep_copy(json_object_get(json_object_get(review, "request"), "object"));
	if (!json_is_array(patch) || pod == NULL) {
		fprintf(stderr, "patch is not a JSON array, or no pod to apply it to\n");
		abort();
	}
	if (patch_apply(pod, patch, &failed) != 0) {
		fprintf(stderr, "patch operation %zu does not apply to the pod\n", failed);
		abort();
	}
	json_decref(pod);
	json_decref(patch);
	json_decref(review);
}

static void
fuzz_call(server_handler_fn fn, void *ctx, const char *body, size_t len, bool checked,
    bool mutating)
{
	struct server_request req = { .method = "POST", .path = "/admission/fuzz", .body = body,
		.body_len = len };
	struct server_response resp = { .status = 200, .content_type = "application/json" };
	struct jsonscan_doc doc = { 0 };
	struct jsonscan_error jerr;
	json_t *reply;

	if (checked) {
		if (jsonscan_validate(body, len, &doc, &req.json_root, &jerr) < 0 ||
		    req.json_root.type != JSONSCAN_OBJECT) {
			jsonscan_doc_free(&doc);
			return;     /* the server answers 400 itself */
		}
	}
	buf_init(&resp.body, LIMITS_HTTP_RESPONSE_MIN);
	fn(ctx, &req, &resp);
	jsonscan_doc_free(&doc);
	if (resp.status != 200 && resp.status != 400 && resp.status != 500) {
		fprintf(stderr, "unexpected status %d\n", resp.status);
		abort();
	}
	reply = json_loadb(resp.body.data, resp.body.len, 0, NULL);
	if (reply == NULL) {
		fprintf(stderr, "reply is not JSON: %.*s\n", (int)resp.body.len, resp.body.data);
		abort();
	}
	if (mutating && resp.status == 200)
		fuzz_check_patch(body, len, reply);
	json_decref(reply);
	buf_free(&resp.body);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct mutate_pod_options mo = { .scheduler_name = "stratos-scheduler" };
	struct validate_webhook_options vo = { 0 };
	FILE *devnull = fopen("/dev/null", "w");

	(void)argc;
	(void)argv;
	log_set_stream(devnull);
	fuzz_pools = pools_new();
	if (fuzz_pools == NULL || pools_file_load(fuzz_pools,
	    STRATOS_SOURCE_DIR "/tests/fixtures/seed-examples.yaml", stderr) != 0)
		abort();
	fuzz_mutate = mutate_pod_new(fuzz_pools, &mo);
	fuzz_validate = validate_webhook_new(fuzz_pools, &vo);
	if (fuzz_mutate == NULL || fuzz_validate == NULL)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The server hands handlers a NUL-terminated body. */
	char *body = malloc(size + 1);

	if (body == NULL)
		return 0;
	memcpy(body, data, size);
	body[size] = '\0';
	for (int checked = 0; checked < 2; checked++) {
		fuzz_call(mutate_pod_handle, fuzz_mutate, body, size, checked, true);
		fuzz_call(validate_webhook_nodepool_handle, fuzz_validate, body, size, checked, false);
		fuzz_call(validate_webhook_nodeclass_handle, fuzz_validate, body, size, checked, false);
	}
	free(body);
	return 0;
}
