/* Kubernetes REST client: typed errors, pooled keep-alive connections, token rotation. */
#ifndef STRATOS_KUBE_H
#define STRATOS_KUBE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "stratos/httpc.h"
#include "stratos/kubeconfig.h"

#define KUBE_PATH_MAX 1024
#define KUBE_REQUEST_TIMEOUT_MS 30000L   /* default for one request (not streams) */
#define KUBE_REPORTING_CONTROLLER "stratos.sh/stratosd"
#define KUBE_EVENT_NOTE_MAX 1024

/* What went wrong, in the classes callers act on. */
enum kube_err_class {
	KUBE_ERR_NONE = 0,
	KUBE_ERR_NOT_FOUND,          /* 404                                 → -ENOENT */
	KUBE_ERR_CONFLICT,           /* 409 (stale resourceVersion, AlreadyExists), and a
	                                guarded patch that lost its race     → -EBUSY */
	KUBE_ERR_GONE,               /* 410: resourceVersion too old; relist → -ESTALE */
	KUBE_ERR_TOO_MANY_REQUESTS,  /* 429: throttled, or a PodDisruptionBudget forbids an
	                                eviction now; see retry_after_s      → -EAGAIN */
	KUBE_ERR_UNAUTHORIZED,       /* 401 even after re-reading the token → -EACCES */
	KUBE_ERR_FORBIDDEN,          /* 403 (RBAC)                          → -EPERM */
	KUBE_ERR_INVALID,            /* 400, 415, 422                       → -EINVAL */
	KUBE_ERR_TRANSPORT,          /* no HTTP response                    → httpc's code */
	KUBE_ERR_OTHER,              /* 5xx and the rest                    → -EIO */
};

struct kube_error {
	enum kube_err_class class;
	long code;                   /* HTTP status; 0 when no response */
	char reason[64];             /* Status.reason, e.g. "AlreadyExists" */
	char message[512];           /* Status.message or the transport error */
	long retry_after_s;          /* Retry-After, -1 when absent */
};

/* "not_found", "conflict", ... for logs and metrics. */
const char *kube_err_class_name(enum kube_err_class c);

/* The API paths of a resource kind. */
struct kube_resource {
	const char *group;           /* "" for the core group */
	const char *version;
	const char *plural;
	bool namespaced;
};

extern const struct kube_resource KUBE_NODES;
extern const struct kube_resource KUBE_PODS;
extern const struct kube_resource KUBE_NODEPOOLS;
extern const struct kube_resource KUBE_AWSNODECLASSES;
extern const struct kube_resource KUBE_LEASES;
extern const struct kube_resource KUBE_EVENTS;

/*
 * Writes "/api/v1/namespaces/NS/pods/NAME/SUB" (ns only for namespaced
 * kinds; name and sub optional) into out[KUBE_PATH_MAX]. Names are
 * percent-escaped. Returns 0 or -ENAMETOOLONG / -EINVAL.
 */
int kube_path(char out[KUBE_PATH_MAX], const struct kube_resource *r, const char *ns,
    const char *name, const char *sub);

struct kube;

/*
 * New client for cfg (copied). Thread-safe after creation: every call may
 * come from any thread; each call checks a keep-alive handle out of a pool
 * of at most LIMITS_KUBE_CONNECTIONS. identity names this replica in Events
 * (reportingInstance) and may be NULL. Returns NULL on ENOMEM.
 */
struct kube *kube_new(const struct kube_config *cfg, const char *identity);

/* Frees the client; no call may be running. NULL-safe. */
void kube_free(struct kube *k);

/*
 * The timeout of each request that names none (0 = KUBE_REQUEST_TIMEOUT_MS).
 * Set once after kube_new, before the client is shared: a client for a
 * latency-bound caller (the extender inside the scheduler's httpTimeout)
 * gets a short one. Not thread-safe.
 */
void kube_set_timeout(struct kube *k, long timeout_ms);

/* The API server URL (borrowed). */
const char *kube_server(const struct kube *k);

/* One request; body and out are JSON. */
struct kube_req {
	const char *method;          /* "GET", "POST", "PUT", "PATCH", "DELETE" */
	const char *path;            /* path and query, e.g. "/api/v1/nodes?limit=500" */
	const char *content_type;    /* of body; default application/json */
	const char *body;
	size_t body_len;
	long timeout_ms;             /* 0 = KUBE_REQUEST_TIMEOUT_MS */
};

/*
 * Performs req. On 2xx returns 0 and, when out is non-NULL, the decoded body
 * (caller's reference; NULL for an empty body). Otherwise returns the
 * negative code of err->class (see enum kube_err_class) with err filled.
 * A 401 with a token file re-reads the token and retries once. Counts
 * stratos_kube_requests_total{verb,resource,code}. Thread-safe.
 */
int kube_request(struct kube *k, const struct kube_req *req, json_t **out,
    struct kube_error *err);

/* GET path → object. Errors as kube_request. */
int kube_get(struct kube *k, const char *path, json_t **out, struct kube_error *err);

/* Called with each item of a LIST (borrowed: take a reference to keep it). Non-zero stops. */
typedef int (*kube_list_fn)(void *ctx, json_t *item);

struct jsonprune;

/*
 * Lists a collection path (no query) page by page (limit=LIMITS_KUBE_LIST_PAGE,
 * continue=...), query being extra parameters ("labelSelector=a%3Db") or
 * NULL. Items are parsed one at a time, after prune (may be NULL) cut the
 * members the caller never reads, so a page never becomes one big JSON
 * tree. *rv_out (caller frees; may be NULL) is the list's resourceVersion:
 * the first page's, the snapshot every page is served from, to start a
 * watch from. A continue token that expired mid-list is KUBE_ERR_GONE. fn's non-zero
 * return ends the list with that value. Thread-safe.
 */
int kube_list(struct kube *k, const char *path, const char *query,
    const struct jsonprune *prune, kube_list_fn fn, void *ctx, char **rv_out,
    struct kube_error *err);

/* POST obj (borrowed) to a collection path. out as kube_request. */
int kube_create(struct kube *k, const char *path, json_t *obj, json_t **out,
    struct kube_error *err);

/* PUT obj (borrowed); a stale metadata.resourceVersion → KUBE_ERR_CONFLICT. */
int kube_replace(struct kube *k, const char *path, json_t *obj, json_t **out,
    struct kube_error *err);

enum kube_patch_type {
	KUBE_PATCH_JSON,             /* application/json-patch+json (RFC 6902) */
	KUBE_PATCH_MERGE,            /* application/merge-patch+json (RFC 7386) */
};

/*
 * PATCH path (an object, or its "/status") with patch (borrowed). For the
 * status subresource of the CRDs pass the path from
 * kube_path(..., name, "status"). Thread-safe.
 */
int kube_patch(struct kube *k, const char *path, enum kube_patch_type type, json_t *patch,
    json_t **out, struct kube_error *err);

/*
 * JSON Patch guarded by {"op":"replace","path":"/metadata/resourceVersion",
 * "value":resource_version} (placed first): the optimistic-concurrency write
 * every claim and state transition uses. Another writer in between →
 * KUBE_ERR_CONFLICT (-EBUSY): the server's 409, or a 422 after which a GET
 * shows the object moved on (an operation built for the older object no
 * longer applied). A 422 on an unchanged object is KUBE_ERR_INVALID. out is
 * the updated object.
 */
int kube_patch_guarded(struct kube *k, const char *path, const char *resource_version,
    json_t *patch, json_t **out, struct kube_error *err);

/* DELETE path; opts (borrowed, may be NULL) is a DeleteOptions body. */
int kube_delete(struct kube *k, const char *path, json_t *opts, struct kube_error *err);

/*
 * Evicts a pod through policy/v1 Eviction. 0 when accepted; a pod already
 * gone is KUBE_ERR_NOT_FOUND; a PodDisruptionBudget that forbids it now is
 * KUBE_ERR_TOO_MANY_REQUESTS (retry later).
 */
int kube_evict(struct kube *k, const char *ns, const char *name, struct kube_error *err);

/* Binds a pod to a node (the binding subresource). */
int kube_bind(struct kube *k, const char *ns, const char *name, const char *node,
    struct kube_error *err);

/* An events.k8s.io/v1 Event about one object. */
struct kube_event {
	const char *type;            /* "Normal" or "Warning" */
	const char *reason;          /* "NodeStarted" */
	const char *action;          /* "Start" */
	const char *note;            /* human text; cut to KUBE_EVENT_NOTE_MAX bytes */
	const char *kind;            /* of the regarding object: "Node", "Pod", "NodePool" */
	const char *api_version;     /* "v1", "stratos.sh/v1alpha1" */
	const char *namespace;       /* NULL for cluster-scoped objects (event goes to "default") */
	const char *name;
	const char *uid;             /* may be NULL */
};

/* Creates the Event (reportingController stratos.sh/stratosd). Thread-safe. */
int kube_event_create(struct kube *k, const struct kube_event *ev, struct kube_error *err);

/*
 * Asks the API server (SelfSubjectAccessReview) whether this client may do
 * verb on group/resource in namespace (NULL = cluster-wide). resource may
 * name a subresource ("pods/eviction"); name (NULL = any) limits the check to
 * one object, as RBAC resourceNames do. Thread-safe.
 */
int kube_check_access(struct kube *k, const char *verb, const char *group,
    const char *resource, const char *namespace, const char *name, bool *allowed,
    struct kube_error *err);

/*
 * Streaming GET for watches on a handle the caller owns (kube_stream_handle):
 * chunks of a 200 body go to fn; any other status is read (capped) and
 * returned as an error like kube_request. Ends when the server closes the
 * stream (returns 0), cancel becomes true (-ECANCELED), no byte arrives for
 * idle_timeout_ms, or fn returns non-zero (that value). Thread-safe per handle.
 */
int kube_stream(struct kube *k, struct httpc *h, const char *path, httpc_data_fn fn,
    void *ctx, const atomic_bool *cancel, long idle_timeout_ms, struct kube_error *err);

/* A dedicated connection for one long-lived stream; free with httpc_free. */
struct httpc *kube_stream_handle(struct kube *k);

#endif
