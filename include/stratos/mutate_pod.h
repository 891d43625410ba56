/* The Pod mutating webhook (/admission/mutate-pod, DESIGN §6.2): tolerations, pool annotation, scheduler routing. */
#ifndef STRATOS_MUTATE_POD_H
#define STRATOS_MUTATE_POD_H

#include <stdbool.h>
#include <jansson.h>

#include "stratos/buf.h"
#include "stratos/limits.h"
#include "stratos/nodestate.h"
#include "stratos/poolpod.h"
#include "stratos/pools.h"
#include "stratos/server.h"

/*
 * Registration in `stratosd serve`:
 *
 *   struct mutate_pod_options mo = {
 *       .scheduler_name = cfg.scheduler_name,      // NULL when unset
 *       .managed_resource = cfg.managed_resource,
 *   };
 *   struct mutate_pod *mp = mutate_pod_new(pools, &mo);
 *   route "/admission/mutate-pod" → mutate_pod_handle, ctx mp, SERVER_ROUTE_JSON
 *   (the body is checked by the server; without the flag the handler checks it)
 *   ... after the server stopped: mutate_pod_free(mp)
 */


struct mutate_pod_options {
	const char *scheduler_name;     /* --scheduler-name: set spec.schedulerName of pool pods; NULL: leave it */
	bool managed_resource;          /* --managed-resource: add NODESTATE_POOL_POD_RESOURCE: "1" to the first container */
};

enum mutate_pod_result {
	MUTATE_POD_SKIPPED,             /* not a pool pod (or not a pod CREATE): allowed, no patch */
	MUTATE_POD_MUTATED,             /* pool pod: allowed with a patch */
	MUTATE_POD_AMBIGUOUS,           /* nodeSelector matches several pools: allowed, no patch, warning */
	MUTATE_POD_ERROR,               /* our own failure: allowed, no patch, logged */
};

/* "skipped", "mutated", "ambiguous", "error" (the metric's result label). */
const char *mutate_pod_result_name(enum mutate_pod_result r);

/* What the webhook decided for one pod. */
struct mutate_pod_outcome {
	enum mutate_pod_result result;
	struct poolpod_match match;
	struct buf patch;               /* MUTATED: the JSON Patch as text (len 0: nothing to patch) */
	char pools[256];                /* the stratos.sh/pool annotation value ("" when none) */
	size_t nwarnings;
	char warnings[LIMITS_ADMISSION_WARNINGS][LIMITS_ADMISSION_WARNING + 1];
	char error[128];                /* ERROR: why */
};

struct mutate_pod;

/*
 * A handler context. pools is borrowed (must outlive it); options are
 * copied. Registers the metrics stratos_admission_pods_total{pool,result}.
 * NULL on ENOMEM.
 */
struct mutate_pod *mutate_pod_new(struct pools *pools, const struct mutate_pod_options *opt);
void mutate_pod_free(struct mutate_pod *mp);

/*
 * The decision and the patch for one Pod object (the request's object),
 * against a held snapshot. Used by the handler, the tests and the
 * benchmark. The patch is built against exactly this object: whole arrays
 * or maps where the parent is absent, "/-" appends where it exists, RFC 6901
 * escaping. Never fails the pod: problems give MUTATE_POD_ERROR. Free the
 * outcome with mutate_pod_outcome_free(). Thread-safe.
 */
void mutate_pod_review(const struct mutate_pod *mp, const struct pools_snapshot *snap,
    const json_t *pod, struct mutate_pod_outcome *out);
void mutate_pod_outcome_free(struct mutate_pod_outcome *out);

/*
 * server_handler_fn for /admission/mutate-pod (ctx: struct mutate_pod *).
 * Only pod CREATEs are looked at; any other request is allowed unchanged.
 * A malformed review gets 400 (the API server then applies the webhook's
 * failurePolicy: Ignore); our own errors answer allowed:true with a log line.
 */
void mutate_pod_handle(void *ctx, const struct server_request *req, struct server_response *resp);

#endif
