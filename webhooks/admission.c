/* AdmissionReview (admission.k8s.io/v1) parsing and answering, shared by the admission webhooks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "stratos/admission.h"
#include "stratos/jsonpatch.h"
#include "stratos/limits.h"

static const char *
admission__str(const json_t *obj, const char *key, const char *def)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s != NULL ? s : def;
}

static int
admission__fail(int *http_status, int status, char *err, size_t errlen, const char *msg)
{
	*http_status = status;
	snprintf(err, errlen, "%s", msg);
	return -EINVAL;
}

int
admission_request_parse(const struct server_request *req, struct admission_request *ar,
    int *http_status, char *err, size_t errlen)
{
	json_error_t jerr;
	const json_t *request, *kind, *v;

	memset(ar, 0, sizeof(*ar));
	if (req->method != NULL && strcmp(req->method, "POST") != 0)
		return admission__fail(http_status, 405, err, errlen,
		    "admission reviews must be POSTed");
	/* A SERVER_ROUTE_JSON route has parsed the body already. */
	if (req->json != NULL) {
		ar->root = json_incref(req->json);
	} else if (req->body == NULL || req->body_len == 0) {
		return admission__fail(http_status, 400, err, errlen, "empty body");
	} else {
		ar->root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	}
	if (ar->root == NULL) {
		*http_status = 400;
		snprintf(err, errlen, "body is not JSON: %s (line %d, column %d)", jerr.text,
		    jerr.line, jerr.column);
		return -EINVAL;
	}
	if (!json_is_object(ar->root))
		return admission__fail(http_status, 400, err, errlen, "body must be a JSON object");
	if (strcmp(admission__str(ar->root, "apiVersion", ""), ADMISSION_API_VERSION) != 0)
		return admission__fail(http_status, 400, err, errlen,
		    "apiVersion must be " ADMISSION_API_VERSION);
	if (strcmp(admission__str(ar->root, "kind", ""), ADMISSION_KIND) != 0)
		return admission__fail(http_status, 400, err, errlen, "kind must be " ADMISSION_KIND);
	request = json_object_get(ar->root, "request");
	if (!json_is_object(request))
		return admission__fail(http_status, 400, err, errlen, "request must be an object");
	ar->uid = admission__str(request, "uid", NULL);
	if (ar->uid == NULL || ar->uid[0] == '\0')
		return admission__fail(http_status, 400, err, errlen, "request.uid is required");
	kind = json_object_get(request, "kind");
	if (!json_is_object(kind) || admission__str(kind, "kind", NULL) == NULL)
		return admission__fail(http_status, 400, err, errlen, "request.kind.kind is required");
	ar->group = admission__str(kind, "group", "");
	ar->version = admission__str(kind, "version", "");
	ar->kind = admission__str(kind, "kind", "");
	ar->operation = admission__str(request, "operation", NULL);
	if (ar->operation == NULL)
		return admission__fail(http_status, 400, err, errlen, "request.operation is required");
	ar->name = admission__str(request, "name", "");
	ar->namespace = admission__str(request, "namespace", "");
	ar->sub_resource = admission__str(request, "subResource", "");
	v = json_object_get(request, "object");
	ar->object = json_is_null(v) ? NULL : v;
	v = json_object_get(request, "oldObject");
	ar->old_object = json_is_null(v) ? NULL : v;
	ar->dry_run = json_is_true(json_object_get(request, "dryRun"));
	return 0;
}

void
admission_request_free(struct admission_request *ar)
{
	if (ar == NULL)
		return;
	json_decref(ar->root);
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
