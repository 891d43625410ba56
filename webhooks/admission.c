/* AdmissionReview (admission.k8s.io/v1) parsing and answering, shared by the admission webhooks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "stratos/admission.h"
#include "stratos/jsonpatch.h"
#include "stratos/limits.h"

static int
admission__fail(int *http_status, int status, char *err, size_t errlen, const char *msg)
{
	*http_status = status;
	snprintf(err, errlen, "%s", msg);
	return status == 500 ? -ENOMEM : -EINVAL;
}

/* The string fields of a request, in the order they are decoded. */
enum {
	ADMISSION__UID, ADMISSION__OPERATION, ADMISSION__GROUP, ADMISSION__VERSION, ADMISSION__KIND,
	ADMISSION__NAME, ADMISSION__NAMESPACE, ADMISSION__SUB_RESOURCE, ADMISSION__NSTRINGS
};

/* Decodes each string value (ABSENT or not a string: "") into one allocation owned by ar. */
static int
admission__strings(struct admission_request *ar, const struct jsonscan_value *v)
{
	const char **out[ADMISSION__NSTRINGS] = { &ar->uid, &ar->operation, &ar->group,
		&ar->version, &ar->kind, &ar->name, &ar->namespace, &ar->sub_resource };
	size_t total = 0, at = 0, n;

	for (size_t i = 0; i < ADMISSION__NSTRINGS; i++)
		total += (v[i].type == JSONSCAN_STRING ? v[i].len : 0) + 1;
	/* Decoded text is never longer than its JSON. */
	if ((ar->strings = malloc(total)) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < ADMISSION__NSTRINGS; i++) {
		*out[i] = ar->strings + at;
		if (jsonscan_string(v[i], ar->strings + at, total - at, &n) < 0) {
			ar->strings[at] = '\0';
			n = 0;
		}
		at += n + 1;
	}
	return 0;
}

int
admission_request_scan(const struct server_request *req, struct admission_request *ar,
    int *http_status, char *err, size_t errlen)
{
	static const char *const top_keys[] = { "apiVersion", "kind", "request" };
	static const char *const request_keys[] = { "uid", "kind", "operation", "name",
		"namespace", "subResource", "object", "oldObject", "dryRun" };
	static const char *const kind_keys[] = { "group", "version", "kind" };
	struct jsonscan_value root, top[3], r[9], k[3], strings[ADMISSION__NSTRINGS];
	struct jsonscan_error jerr;

	memset(ar, 0, sizeof(*ar));
	if (req->method != NULL && strcmp(req->method, "POST") != 0)
		return admission__fail(http_status, 405, err, errlen,
		    "admission reviews must be POSTed");
	if (req->body == NULL || req->body_len == 0)
		return admission__fail(http_status, 400, err, errlen, "empty body");
	if (req->json_root.type != JSONSCAN_ABSENT) {
		root = req->json_root;
	} else if (jsonscan_validate(req->body, req->body_len, &ar->doc, &root, &jerr) < 0) {
		*http_status = 400;
		snprintf(err, errlen, "body is not JSON: %s (line %d, column %d)", jerr.text,
		    jerr.line, jerr.column);
		return -EINVAL;
	}
	if (root.type != JSONSCAN_OBJECT)
		return admission__fail(http_status, 400, err, errlen, "body must be a JSON object");
	jsonscan_get_many(root, top_keys, 3, top);
	if (!jsonscan_string_equal(top[0], ADMISSION_API_VERSION))
		return admission__fail(http_status, 400, err, errlen,
		    "apiVersion must be " ADMISSION_API_VERSION);
	if (!jsonscan_string_equal(top[1], ADMISSION_KIND))
		return admission__fail(http_status, 400, err, errlen, "kind must be " ADMISSION_KIND);
	if (top[2].type != JSONSCAN_OBJECT)
		return admission__fail(http_status, 400, err, errlen, "request must be an object");
	jsonscan_get_many(top[2], request_keys, 9, r);
	if (r[0].type != JSONSCAN_STRING || jsonscan_string_length(r[0]) == 0)
		return admission__fail(http_status, 400, err, errlen, "request.uid is required");
	jsonscan_get_many(r[1], kind_keys, 3, k);
	if (r[1].type != JSONSCAN_OBJECT || k[2].type != JSONSCAN_STRING)
		return admission__fail(http_status, 400, err, errlen, "request.kind.kind is required");
	if (r[2].type != JSONSCAN_STRING)
		return admission__fail(http_status, 400, err, errlen, "request.operation is required");
	strings[ADMISSION__UID] = r[0];
	strings[ADMISSION__OPERATION] = r[2];
	strings[ADMISSION__GROUP] = k[0];
	strings[ADMISSION__VERSION] = k[1];
	strings[ADMISSION__KIND] = k[2];
	strings[ADMISSION__NAME] = r[3];
	strings[ADMISSION__NAMESPACE] = r[4];
	strings[ADMISSION__SUB_RESOURCE] = r[5];
	if (admission__strings(ar, strings) < 0)
		return admission__fail(http_status, 500, err, errlen, "out of memory");
	if (r[6].type != JSONSCAN_NULL)
		ar->object_text = r[6];
	if (r[7].type != JSONSCAN_NULL)
		ar->old_object_text = r[7];
	ar->dry_run = r[8].type == JSONSCAN_TRUE;
	return 0;
}

int
admission_request_parse(const struct server_request *req, struct admission_request *ar,
    int *http_status, char *err, size_t errlen)
{
	const json_t *request = json_object_get(req->json, "request");
	int rc = admission_request_scan(req, ar, http_status, err, errlen);

	if (rc < 0)
		return rc;
	if (req->json != NULL) {
		ar->object = json_incref(json_object_get(request, "object"));
		ar->old_object = json_incref(json_object_get(request, "oldObject"));
	} else {
		ar->object = jsonscan_json(ar->object_text);
		ar->old_object = jsonscan_json(ar->old_object_text);
		if ((ar->object == NULL && ar->object_text.type != JSONSCAN_ABSENT) ||
		    (ar->old_object == NULL && ar->old_object_text.type != JSONSCAN_ABSENT))
			return admission__fail(http_status, 500, err, errlen, "out of memory");
	}
	if (json_is_null(ar->object)) {
		json_decref(ar->object);
		ar->object = NULL;
	}
	if (json_is_null(ar->old_object)) {
		json_decref(ar->old_object);
		ar->old_object = NULL;
	}
	return 0;
}

void
admission_request_free(struct admission_request *ar)
{
	if (ar == NULL)
		return;
	json_decref(ar->object);
	json_decref(ar->old_object);
	free(ar->strings);
	jsonscan_doc_free(&ar->doc);
	memset(ar, 0, sizeof(*ar));
}

/* A warning cut to LIMITS_ADMISSION_WARNING bytes on a UTF-8 boundary, control bytes blanked, as a JSON string. */
static int
admission__warning(struct buf *out, const char *w)
{
	char text[LIMITS_ADMISSION_WARNING + 1];
	size_t n = strlen(w);

	if (n > LIMITS_ADMISSION_WARNING) {
		n = LIMITS_ADMISSION_WARNING;
		while (n > 0 && ((unsigned char)w[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(text, w, n);
	text[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
			text[i] = ' ';
	return jsonpatch_text_string(out, text);
}

/* Appends base64 (standard alphabet, padded) of n bytes. */
static int
admission__base64(struct buf *out, const char *data, size_t n)
{
	unsigned char stack[8192], *b64 = stack;
	size_t len = 4 * ((n + 2) / 3);
	int rc;

	if (n > LIMITS_ADMISSION_PATCH)
		return -E2BIG;
	if (len + 1 > sizeof(stack) && (b64 = malloc(len + 1)) == NULL)
		return -ENOMEM;
	EVP_EncodeBlock(b64, (const unsigned char *)data, (int)n);
	rc = buf_append(out, b64, len);
	if (b64 != stack)
		free(b64);
	return rc;
}

/* Appends the compact JSON of root to body; 0 or the buf error. */
static int
admission__write(struct buf *body, const json_t *root)
{
	char stack[4096];
	size_t n = json_dumpb(root, stack, sizeof(stack), JSON_COMPACT);
	char *heap;
	int rc;

	if (n == 0)
		return -ENOMEM;
	if (n <= sizeof(stack))
		return buf_append(body, stack, n);
	heap = malloc(n);
	if (heap == NULL)
		return -ENOMEM;
	rc = json_dumpb(root, heap, n, JSON_COMPACT) == n ? buf_append(body, heap, n) : -ENOMEM;
	free(heap);
	return rc;
}

static int
admission__status(struct buf *b, const struct admission_verdict *v)
{
	json_t *status = json_pack("{s:s, s:i, s:s, s:s}", "status", "Failure",
	    "code", v->code >= 400 && v->code < 600 ? v->code : 400,
	    "reason", v->reason != NULL ? v->reason : "Invalid",
	    "message", v->message != NULL ? v->message : "denied");
	int rc = -ENOMEM;

	if (status != NULL && (v->details == NULL ||
	    json_object_set_new(status, "details", json_deep_copy(v->details)) == 0))
		rc = admission__write(b, status);
	json_decref(status);
	return rc;
}

int
admission_respond(struct server_response *resp, const char *uid,
    const struct admission_verdict *v)
{
	struct buf *b = &resp->body;
	int rc;

	buf_reset(b);
	rc = buf_append_str(b, "{\"apiVersion\":\"" ADMISSION_API_VERSION "\",\"kind\":\""
	    ADMISSION_KIND "\",\"response\":{\"uid\":");
	if (rc == 0)
		rc = jsonpatch_text_string(b, uid);
	if (rc == 0)
		rc = buf_append_str(b, v->allowed ? ",\"allowed\":true" : ",\"allowed\":false");
	if (rc == 0 && !v->allowed) {
		rc = buf_append_str(b, ",\"status\":");
		if (rc == 0)
			rc = admission__status(b, v);
	} else if (rc == 0 && v->patch != NULL && v->patch_len > 0) {
		rc = buf_append_str(b, ",\"patchType\":\"JSONPatch\",\"patch\":\"");
		if (rc == 0)
			rc = admission__base64(b, v->patch, v->patch_len);
		if (rc == 0)
			rc = buf_append_str(b, "\"");
	}
	if (rc == 0 && v->nwarnings > 0) {
		rc = buf_append_str(b, ",\"warnings\":[");
		for (size_t i = 0; rc == 0 && i < v->nwarnings && i < LIMITS_ADMISSION_WARNINGS; i++) {
			if (i > 0)
				rc = buf_append_str(b, ",");
			if (rc == 0)
				rc = admission__warning(b, v->warnings[i]);
		}
		if (rc == 0)
			rc = buf_append_str(b, "]");
	}
	if (rc == 0)
		rc = buf_append_str(b, "}}");
	if (rc < 0) {
		admission_respond_error(resp, 500, rc == -E2BIG ? "response too large" :
		    "out of memory");
		return rc;
	}
	resp->status = 200;
	resp->content_type = "application/json";
	return 0;
}

void
admission_respond_error(struct server_response *resp, int http_status, const char *message)
{
	const char *reason = http_status == 405 ? "MethodNotAllowed" :
	    http_status >= 500 ? "InternalError" : "BadRequest";
	json_t *st = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "apiVersion", "v1",
	    "kind", "Status", "status", "Failure", "message", message, "reason", reason,
	    "code", http_status);

	resp->status = http_status;
	resp->content_type = "application/json";
	buf_reset(&resp->body);
	if (st == NULL || admission__write(&resp->body, st) < 0) {
		buf_reset(&resp->body);
		(void)buf_append_str(&resp->body, "{\"kind\":\"Status\",\"status\":\"Failure\"}");
	}
	json_decref(st);
}
