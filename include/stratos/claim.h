/* Claiming standby nodes and promising room on starting ones (DESIGN §6.3, §5.5): every write that makes capacity come for a pod. */
#ifndef STRATOS_CLAIM_H
#define STRATOS_CLAIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stratos/ec2.h"
#include "stratos/kube.h"
#include "stratos/node_cache.h"
#include "stratos/pod_cache.h"
#include "stratos/pool_ctx.h"

/*
 * Shared by the extender's fast path (a pod's filter call) and the pool
 * controller's fallback scale-up. Every Node write is one JSON Patch
 * guarded by the resourceVersion it was built from (node_cache_patch), so
 * two replicas can never claim the same node or both write a reservation
 * over each other's: the loser gets -EBUSY, looks again and decides anew.
 *
 * Thread-safety: every function may be called from any thread at once;
 * they share nothing but the thread-safe handles of the pool_ctx. Functions
 * that write to the API server or EC2 block for the duration of the call
 * (never call them on an HTTP event-loop thread).
 */

/* Recency buckets for ranking standby nodes: stopped within the same bucket counts as equally warm. */
#define CLAIM_RECENCY_BUCKET_MS (60 * 1000LL)

/*
 * Makes sure a pod named by a caller is real before anything is started or
 * promised for it (a forged extender call must never start a machine): the
 * pod ns/name exists with this uid, is not bound, is not being deleted and
 * is a pool pod of pool (pod_info.pool names it: the webhook's annotation,
 * else the pod's own nodeSelector or affinity). The pod
 * cache answers; only when it has not seen that pod (or holds another uid
 * under the name) is the pod read with one GET, which is also written
 * through to the cache. On 0, *out is a reference to the pod
 * (cache_obj_unref). Errors: -ENOENT (no such pod, or another uid),
 * -EALREADY (bound), -ECANCELED (being deleted), -EPERM (not a pool pod of
 * pool), -EINVAL (bad arguments), or the API error of the GET (err filled).
 * why (may be NULL) says which in words.
 */
int claim_verify_pod(const struct pool_ctx *ctx, const char *ns, const char *name,
    const char *uid, const char *pool, struct pod_info **out, char *why, size_t whylen);

/* Whether pod's pools (pod_info.pool: "a" or "a,b,c") name pool. */
bool claim_pod_in_pool(const struct pod_info *pod, const char *pool);

/* Running (claimed or usable) nodes per zone of one pool: the load that balances ties. */
#define CLAIM_ZONES_MAX 32
#define CLAIM_ZONE_NAME 64
struct claim_zones {
	size_t n;
	char zone[CLAIM_ZONES_MAX][CLAIM_ZONE_NAME];   /* "" for nodes without a zone label */
	unsigned running[CLAIM_ZONES_MAX];
};

/*
 * Counts pool's nodes in state running per zone, from the node cache, into
 * out (zones beyond CLAIM_ZONES_MAX are not counted). Thread-safe.
 */
void claim_zone_load(struct node_cache *nodes, const char *pool, struct claim_zones *out);

/*
 * Orders standby nodes, best first (in place): the one whose
 * stratos.sh/last-workload equals owner_key (its caches) first; then the
 * most recently stopped (state-since, in CLAIM_RECENCY_BUCKET_MS buckets:
 * the warmest disk); within a bucket the zone with the fewest running nodes
 * of the pool (zones may be NULL); then the later state-since, then the
 * name, so every replica ranks alike. rank[i] (may be NULL) is a
 * preference that comes right after the affinity (the index of the node's
 * pool in the pod's list). Pure.
 */
void claim_rank_standby(const struct node_info **nodes, size_t n, const unsigned *rank,
    const char *owner_key, const struct claim_zones *zones);

/* The EC2 instance id of a node: its stratos.sh/instance-id label, else spec.providerID. */
int claim_instance_id(const struct node_info *n, char *out, size_t len);

/* A claim of standby nodes for pods. Everything is borrowed for the call. */
struct claim_start_req {
	const char *pool;
	const struct pod_info *const *pods;      /* pods[0] is started-for; one reservation each */
	size_t npods;
	const struct node_info *const *candidates;   /* standby nodes, ranked (claim_rank_standby) */
	size_t ncandidates;
	int64_t start_budget_ms;                 /* every StartInstances of the call together */
	const char *path;                        /* "inline" | "fallback": the metrics' path label */
	/*
	 * true: a lost race (409) ends the call with CLAIM_LOST, so the caller
	 * can look again (the other writer may have made room it can use);
	 * false: the next candidate is taken.
	 */
	bool stop_on_conflict;
	/*
	 * Called once per successful claim PATCH, before StartInstances (may be
	 * NULL): capacity is now visibly coming (a caller may release a lock
	 * that kept its own replica from deciding on a stale view).
	 */
	void (*on_claimed)(void *arg, const struct node_info *claimed);
	void *on_claimed_arg;
};

enum claim_outcome {
	CLAIM_STARTED,          /* EC2 accepted StartInstances */
	CLAIM_START_UNKNOWN,    /* EC2 did not answer within the budget: the claim is kept and
	                           recovery (§5.6) checks the instance */
	CLAIM_LOST,             /* stop_on_conflict: another writer changed a candidate first */
	CLAIM_NONE,             /* nothing started: no candidate left, or every start failed */
};

/* "started", "start-unknown", "lost", "none". */
const char *claim_outcome_name(enum claim_outcome o);

struct claim_result {
	enum claim_outcome outcome;
	char node[256];                 /* the claimed node (STARTED, START_UNKNOWN), the lost one (LOST) */
	char instance[32];
	int64_t start_ms;               /* duration of the StartInstances call that counted */
	int64_t claimed_us;             /* time_mono_us() when the claim PATCH that counted returned */
	int64_t start_sent_us;          /* time_mono_us() when its StartInstances call began */
	int64_t accepted_us;            /* time_mono_us() when EC2 accepted (STARTED) */
	unsigned claims;                /* claim PATCHes that succeeded */
	unsigned conflicts;             /* claim PATCHes that lost a race */
	unsigned starts;                /* StartInstances calls */
	unsigned rollbacks;             /* claims given back after a definite failure */
	struct ec2_error last_error;    /* of the last failed start (cls NONE when none failed) */
	struct kube_error kube_error;   /* of the last failed write that was not a race */
};

/*
 * Claims the first candidate that is still standby (in the cache, then by
 * the guarded PATCH): state running, state-since and started-at now,
 * started-for pods[0], last-workload pods[0]'s owner, a reservation per
 * pod, empty-since and the standby taint removed, all in one PATCH. Then
 * StartInstances on the warm EC2 client with a deadline of
 * start_budget_ms from the first start. A definite failure (capacity,
 * wrong state, not found, throttled, auth...) rolls the claim back and
 * tries the next candidate, at most LIMITS_CLAIM_STARTS starts; after a
 * capacity error, candidates of another zone are tried first. A timeout
 * (unknown outcome) keeps the claim. Emits NodeStarted (pod and Node) or
 * StartFailed (Node) through the recorder, counts
 * stratos_scaleup_total{pool,path} and stratos_claims_total{pool,result}.
 * Returns 0 with out filled (outcome says what happened), -ENOTSUP
 * without an EC2 client, -EINVAL for bad arguments, -ENOMEM.
 */
int claim_start(const struct pool_ctx *ctx, const struct claim_start_req *req,
    struct claim_result *out);

/*
 * Gives back a claim whose start failed: one guarded PATCH from the node
 * as claimed back to standby as it was before (state-since, started-at,
 * started-for and last-workload of before; reservations dropped — their
 * pods are served again on their next cycle; standby taint added). Nothing
 * is done when the node no longer is that claim (another transition
 * happened since): -ESTALE. After a lost race the node is read again and
 * the PATCH retried (LIMITS_CLAIM_RETRIES). Returns 0 or an API error.
 */
int claim_rollback(const struct pool_ctx *ctx, const struct node_info *claimed,
    const struct node_info *before, struct kube_error *err);

/*
 * Promises room on a starting node to a (verified) pod: one guarded PATCH
 * adding its reservation to the node's list (dead entries — pods bound or
 * gone — are dropped on the way) and setting last-workload. The fit is
 * checked against the version written (placement_fits), so the promise
 * never exceeds the node. Already reserved there: 0. Errors: -ENOSPC (does
 * not fit; *short_of names what, may be NULL), -ESTALE (not starting any
 * more), -ENOENT (node gone), -EBUSY (lost LIMITS_CLAIM_RETRIES races), or
 * an API error. *out (may be NULL) gets a reference to the node as written.
 */
int claim_reserve(const struct pool_ctx *ctx, const char *node, const struct pod_info *pod,
    struct node_info **out, const char **short_of, struct kube_error *err);

/*
 * Drops pod uid's reservation from node (guarded PATCH, retried after a
 * lost race). Absent (or the node gone): 0. Returns 0 or an API error.
 */
int claim_release(const struct pool_ctx *ctx, const char *node, const char *uid,
    struct kube_error *err);

/*
 * Reads pool's Nodes from the API server (one paginated LIST with a label
 * selector, consistent at this moment) into the node cache, so a decision
 * that is about to start a machine does not rest on a watch that lags
 * behind another replica's claim. Returns the number of nodes read or an
 * API error.
 */
long claim_refresh_pool(const struct pool_ctx *ctx, const char *pool, struct kube_error *err);

#endif
