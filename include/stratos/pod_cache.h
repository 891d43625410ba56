/* The Pod cache: compact, interned per-pod facts the extender and the pool controller need. */
#ifndef STRATOS_POD_CACHE_H
#define STRATOS_POD_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "stratos/cache.h"
#include "stratos/kube_types.h"
#include "stratos/resources.h"

enum pod_phase {
	POD_PHASE_UNKNOWN,
	POD_PHASE_PENDING,
	POD_PHASE_RUNNING,
	POD_PHASE_SUCCEEDED,
	POD_PHASE_FAILED,
};

/* PodScheduled=False reasons the controller acts on. */
enum pod_sched_reason {
	POD_SCHED_REASON_NONE,
	POD_SCHED_REASON_UNSCHEDULABLE,
	POD_SCHED_REASON_SCHEDULER_ERROR,
	POD_SCHED_REASON_OTHER,
};

/*
 * Node selection of a pod, interned and shared: nodeSelector pairs, then
 * the required node-affinity terms (ORed; requirements inside a term ANDed;
 * term t is reqs[term_first[t] .. term_first[t+1])). Indices, not pointers,
 * so equal selections are byte-identical.
 */
struct pod_selection {
	uint16_t nselector;          /* pairs in pairs[0 .. 2*nselector) */
	uint16_t nterms;
	uint16_t nreqs;
	uint16_t nvalues;
	/* Followed by, in this order and aligned:
	 *   const char *pairs[2 * nselector];       key, value, key, value...
	 *   uint16_t term_first[nterms + 1];
	 *   struct kube_selector_req reqs[nreqs];
	 *   const char *values[nvalues]; */
	unsigned char data[];
};

const char *const *pod_selection_pairs(const struct pod_selection *s);
const uint16_t *pod_selection_term_first(const struct pod_selection *s);
const struct kube_selector_req *pod_selection_reqs(const struct pod_selection *s);
const char *const *pod_selection_values(const struct pod_selection *s);

#define POD_FLAG_DAEMONSET  0x01u  /* controlled by a DaemonSet */
#define POD_FLAG_MIRROR     0x02u  /* static pod's mirror (kubernetes.io/config.mirror) */

/*
 * One cached pod. Strings are interned or stored in the object; everything
 * is immutable while a reference is held. Only what DESIGN §8 lists is kept.
 */
struct pod_info {
	struct cache_obj obj;        /* key "namespace/name"; index = nodeName (NULL unbound) */
	const char *name;            /* inside key */
	const char *namespace;       /* interned */
	const char *uid;
	const char *owner_key;       /* interned "namespace/Kind/name" (ReplicaSet of a
	                                Deployment → Deployment); NULL without a controller */
	const char *pool;            /* interned: the annotation stratos.sh/pool ("a" or "a,b"), else
	                                the pools the pod names itself (DESIGN §6.2 rules 1 and 2:
	                                nodeSelector, required affinity), as the webhook would
	                                write them; NULL for a pod of no pool */
	int64_t created_ms;
	int64_t sched_since_ms;      /* PodScheduled False: its lastTransitionTime (0 unknown) */
	int64_t deleted_ms;          /* deletionTimestamp, 0 when not being deleted */
	struct resources requests;   /* scheduler arithmetic, pods = 1 */
	const struct kube_tolerations *tolerations;   /* interned; never NULL */
	const struct pod_selection *selection;        /* interned; NULL when none */
	uint8_t phase;               /* enum pod_phase */
	uint8_t flags;               /* POD_FLAG_* */
	uint8_t scheduled;           /* PodScheduled: enum kube_cond */
	uint8_t sched_reason;        /* enum pod_sched_reason when scheduled is FALSE */
	uint8_t ready;               /* Ready: enum kube_cond */
	uint8_t containers;          /* spec.containers (capped at 255) */
	uint8_t images_pulled;       /* containerStatuses with an imageID */
	char storage[];              /* key, then uid */
};

/* The node a pod is bound to (NULL when unbound). */
static inline const char *
pod_info_node(const struct pod_info *p)
{
	return p->obj.index[0];
}

/* The Pod cache type, for cache_new. */
extern const struct cache_type POD_CACHE_TYPE;

/* The members of a Pod that pod_info_parse reads (jsonprune "+" paths, NULL-terminated). */
extern const char *const POD_CACHE_FIELDS[];

/*
 * Parses one Pod object into a new pod_info (refs 1; cache_obj_unref it).
 * Returns NULL with *rc = -EINVAL (not a usable pod: no name, bad quantity,
 * over LIMITS_POD_*) or -ENOMEM. Thread-safe.
 */
struct pod_info *pod_info_parse(json_t *pod, int *rc);

/*
 * The owner key of a Pod object: "namespace/Kind/name" of its controlling
 * owner, with a ReplicaSet named <deployment>-<pod-template-hash> reported
 * as "namespace/Deployment/<deployment>". Returns 0, -ENOENT (no
 * controller) or -ENAMETOOLONG. Thread-safe.
 */
int pod_owner_key(json_t *pod, char *out, size_t len);

/*
 * Whether the pod tolerates a taint (key, value may be NULL for "", effect),
 * with Kubernetes' ToleratesTaint rules.
 */
bool pod_info_tolerates(const struct pod_info *p, const char *key, const char *value,
    enum kube_taint_effect effect);

/*
 * Whether a node with these labels satisfies the pod's nodeSelector and
 * required node affinity. label(ctx, key) returns the value or NULL.
 */
bool pod_info_selects(const struct pod_info *p, const char *(*label)(void *ctx, const char *key),
    void *ctx);

/* Bytes the object owns (struct, strings, its share of nothing interned). */
size_t pod_info_size(const struct pod_info *p);

/* ---- the cache ---- */

/*
 * The cache of Pods: a struct cache of pod_info objects indexed by node
 * (index 0) and, for pending pool pods, by pool (index 1), as a type of its
 * own so that it cannot be passed where a node cache is expected.
 */
struct pod_cache;

/* Index 1 of a pod: its (first) pool while it is unbound, Pending and not being deleted. */
#define POD_CACHE_INDEX_PENDING 1u

/* New pod cache (resource "pods"). NULL on ENOMEM. */
struct pod_cache *pod_cache_new(void);

/* Stops and frees (objects still referenced live on). NULL-safe. */
void pod_cache_free(struct pod_cache *pc);

/* The generic cache behind pc (borrowed). */
struct cache *pod_cache_base(struct pod_cache *pc);

/* Starts watching every pod of the cluster. */
int pod_cache_start(struct pod_cache *pc, struct kube *k);

/* New reference to namespace/name, or NULL. Thread-safe. */
struct pod_info *pod_cache_get(struct pod_cache *pc, const char *ns, const char *name);

/*
 * Calls fn for each pod bound to node (NULL: every pod, bound or not) under
 * the read lock; fn must be quick and a non-zero return stops the walk.
 * Returns the number visited. Thread-safe.
 */
size_t pod_cache_foreach_on_node(struct pod_cache *pc, const char *node,
    int (*fn)(void *ctx, const struct pod_info *p), void *ctx);

/*
 * Calls fn for each pending pod of pool: unbound, phase Pending, not being
 * deleted, of pool by pod_info.pool (the annotation, else what the pod names
 * itself; a pod allowed in several pools waits under the first one it
 * names). A hash lookup, no walk of other pods. As
 * pod_cache_foreach_on_node otherwise.
 */
size_t pod_cache_foreach_pending(struct pod_cache *pc, const char *pool,
    int (*fn)(void *ctx, const struct pod_info *p), void *ctx);

/* How many pods pod_cache_foreach_pending would visit. Thread-safe. */
size_t pod_cache_pending_count(struct pod_cache *pc, const char *pool);

#endif
