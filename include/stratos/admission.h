/* AdmissionReview (admission.k8s.io/v1) parsing and answering, shared by the admission webhooks. */
#ifndef STRATOS_ADMISSION_H
#define STRATOS_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "stratos/jsonscan.h"
#include "stratos/server.h"

/*
 * The admission handlers and how `stratosd serve` registers them
 * (every handler is a server_handler_fn; ctx is the object named here):
 *
 *   path                               handler                               ctx
 *   /admission/mutate-pod              mutate_pod_handle                     struct mutate_pod *        (mutate_pod.h)
 *   /admission/validate-nodepool       validate_webhook_nodepool_handle    struct validate_webhook * (validate_webhook.h)
 *   /admission/validate-awsnodeclass   validate_webhook_nodeclass_handle   struct validate_webhook *
 *
 * None of them needs SERVER_ROUTE_CLIENT_CERT (the API server calls them).
 * They answer 405 to anything but POST and 400 with a JSON Status to a body
 * that is not an AdmissionReview; everything else is 200 with a review.
 */

#define ADMISSION_API_VERSION "admission.k8s.io/v1"
#define ADMISSION_KIND        "AdmissionReview"

/*
 * One parsed request. The strings are decoded copies the struct owns; the
 * *_text values are spans of the request body (borrowed: valid for the
 * handler call, like the body and the server's json_root); the trees exist
 * only after admission_request_parse().
 */
struct admission_request {
	const char *uid;
	const char *operation;          /* CREATE, UPDATE, DELETE, CONNECT */
	const char *group;              /* request.kind: "" for core */
	const char *version;
	const char *kind;
	const char *name;               /* "" on CREATE from generateName */
	const char *namespace;          /* "" for cluster-scoped objects */
	const char *sub_resource;       /* "" for the main resource */
	struct jsonscan_value object_text;      /* request.object; ABSENT when absent or null */
	struct jsonscan_value old_object_text;  /* request.oldObject; ABSENT when absent or null */
	json_t *object;                 /* admission_request_parse(): request.object, NULL when absent or null */
	json_t *old_object;             /* likewise request.oldObject */
	bool dry_run;
	char *strings;                  /* owns the text of the strings above */
	struct jsonscan_doc doc;        /* the body's containers, when the server had not checked it */
};

/*
 * Reads a request body without building a tree of it: the body is checked
 * in full with jsonscan (unless the server did: req->json_root) and the
 * fields above are read from it; object and old_object stay NULL (read
 * object_text with jsonscan). Returns 0, or a negative code with
 * *http_status (400 for a body that is not an AdmissionReview v1 with
 * request.uid, 405 for a method other than POST, 500 for ENOMEM) and err
 * filled with a one-line reason. Thread-safe. Free with
 * admission_request_free() in every case.
 */
int admission_request_scan(const struct server_request *req, struct admission_request *ar,
    int *http_status, char *err, size_t errlen);

/*
 * admission_request_scan(), plus object and old_object as jansson trees
 * (taken from req->json on a SERVER_ROUTE_JSON_TREE route, else parsed from
 * their spans alone). Same errors.
 */
int admission_request_parse(const struct server_request *req, struct admission_request *ar,
    int *http_status, char *err, size_t errlen);

void admission_request_free(struct admission_request *ar);

/* What to answer. */
struct admission_verdict {
	bool allowed;
	int code;                       /* denials: 4xx (below 400 becomes 400) */
	const char *reason;             /* denials: "Invalid", "Forbidden", ... */
	const char *message;            /* denials */
	const json_t *details;          /* denials: metav1.StatusDetails, or NULL */
	const char *patch;              /* allowed: a JSON Patch array as JSON text, or NULL for none */
	size_t patch_len;
	const char *const *warnings;    /* each cut to LIMITS_ADMISSION_WARNING bytes */
	size_t nwarnings;               /* at most LIMITS_ADMISSION_WARNINGS are sent */
};

/*
 * Writes the AdmissionReview response for request uid into resp (status
 * 200): apiVersion/kind as received, response.uid, allowed, status on
 * denial, patchType "JSONPatch" + base64 patch when there is one, warnings.
 * Written as text (no JSON tree) except a denial's status. Returns 0, or
 * -ENOMEM / -E2BIG (resp then holds a 500 JSON Status).
 */
int admission_respond(struct server_response *resp, const char *uid,
    const struct admission_verdict *v);

/* Writes a JSON metav1.Status with the given HTTP status and message (400 for bad reviews). */
void admission_respond_error(struct server_response *resp, int http_status, const char *message);

#endif
