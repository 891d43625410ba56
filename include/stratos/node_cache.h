/* The Node cache: pool state labels, stratos annotations, taints, readiness, allocatable. */
#ifndef STRATOS_NODE_CACHE_H
#define STRATOS_NODE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "stratos/cache.h"
#include "stratos/kube.h"
#include "stratos/kube_types.h"
#include "stratos/nodestate.h"
#include "stratos/pod_cache.h"
#include "stratos/reservations.h"
#include "stratos/resources.h"


/*
 * One cached node; immutable while a reference is held. Labels are kept
 * whole (the scheduler's node selection needs them); of the annotations
 * only the stratos.sh ones.
 */
struct node_info {
	struct cache_obj obj;        /* key = name; index = stratos.sh/pool label (interned) */
	const char *uid;
	const char *state;           /* interned stratos.sh/state, NULL when unlabelled */
	const char *instance_id;     /* stratos.sh/instance-id label, NULL when absent */
	const char *zone;            /* interned topology.kubernetes.io/zone */
	const char *instance_type;   /* interned node.kubernetes.io/instance-type */
	const char *provider_id;     /* spec.providerID, NULL when absent */
	/* stratos.sh annotations; times 0 when absent */
	int64_t state_since_ms;
	int64_t started_at_ms;
	int64_t empty_since_ms;
	const char *started_for;     /* "namespace/name" */
	const char *last_workload;   /* interned owner key */
	const char *reservations;    /* raw JSON text of stratos.sh/reservations */
	struct reservations *reserved;   /* that text parsed once, when the node was cached; NULL
	                                    when absent, empty or unreadable */
	bool reservations_invalid;   /* the annotation exists but does not parse: treated as none */
	uint32_t nannotations;       /* every stratos.sh/ annotation: key, value pairs */
	const char **annotations;
	uint32_t nlabels;            /* key, value pairs sorted by key, interned */
	const char **labels;
	uint32_t ntaints;
	struct kube_taint *taints;
	struct resources allocatable;
	bool unschedulable;
	bool has_labels;             /* metadata.labels exists (JSON Patch "add" needs the parent) */
	bool has_annotations;        /* metadata.annotations exists */
	uint8_t ready;               /* enum kube_cond */
	uint8_t network_unavailable; /* enum kube_cond */
	uint8_t networking_ready;    /* EKS NetworkingReady, enum kube_cond */
	int64_t ready_since_ms;      /* lastTransitionTime of Ready */
	int64_t created_ms;
	int64_t deleted_ms;          /* deletionTimestamp, 0 when not being deleted */
};

static inline const char *
node_info_name(const struct node_info *n)
{
	return n->obj.key;
}

/* The pool label (NULL when the node belongs to no pool). */
static inline const char *
node_info_pool(const struct node_info *n)
{
	return n->obj.index[0];
}

extern const struct cache_type NODE_CACHE_TYPE;

/* The members of a Node that node_info_parse reads (jsonprune "+" paths, NULL-terminated). */
extern const char *const NODE_CACHE_FIELDS[];

/* Parses a Node object (refs 1). NULL with *rc -EINVAL or -ENOMEM. Thread-safe. */
struct node_info *node_info_parse(json_t *node, int *rc);

/* A label's value or NULL (binary search). */
const char *node_info_label(const struct node_info *n, const char *key);

/* A stratos.sh/ annotation's value or NULL. */
const char *node_info_annotation(const struct node_info *n, const char *key);

/* Whether the node carries taint key with effect (value ignored). */
bool node_info_has_taint(const struct node_info *n, const char *key,
    enum kube_taint_effect effect);

/*
 * Network readiness as DESIGN §3.2 defines it: NetworkUnavailable False, or
 * EKS NetworkingReady True, or no network condition at all.
 */
bool node_info_network_ready(const struct node_info *n);

/* Whether pod p may be placed on n by node selection (nodeSelector + required affinity). */
bool node_info_selected_by(const struct node_info *n, const struct pod_info *p);

/*
 * Builds the JSON Patch of one node transition against the cached version
 * of the node, so every operation applies: "add" creates the label or
 * annotation map when the node has none, removals are emitted only for keys
 * the node has, and the taints are written as one whole list. Pass the
 * result to node_cache_patch with the same node's resourceVersion.
 * Not thread-safe (one builder per caller); the node must stay referenced.
 */
struct node_patch {
	const struct node_info *node;
	json_t *ops;
	json_t *labels;              /* the whole map when the node had none */
	json_t *annotations;
	json_t *taints;              /* working copy, written by node_patch_take when changed */
	bool taints_changed;
	int error;                   /* first error; node_patch_take reports it */
};

void node_patch_init(struct node_patch *p, const struct node_info *n);
void node_patch_set_label(struct node_patch *p, const char *key, const char *value);
void node_patch_remove_label(struct node_patch *p, const char *key);
void node_patch_set_annotation(struct node_patch *p, const char *key, const char *value);
/* Only stratos.sh/ annotations are known to the cache; others are left alone. */
void node_patch_remove_annotation(struct node_patch *p, const char *key);
/* Adds or replaces the taint with this key and effect. value may be NULL. */
void node_patch_add_taint(struct node_patch *p, const char *key, const char *value,
    enum kube_taint_effect effect);
/* Removes every taint with this key (any effect). */
void node_patch_remove_taint(struct node_patch *p, const char *key);
/* Removes the taints with this key and effect only. */
void node_patch_remove_taint_effect(struct node_patch *p, const char *key,
    enum kube_taint_effect effect);
void node_patch_set_unschedulable(struct node_patch *p, bool unschedulable);

/*
 * The finished patch (caller's reference; an empty array when nothing
 * changes), or NULL with *rc set (-ENOMEM, -EINVAL). Frees the builder.
 */
json_t *node_patch_take(struct node_patch *p, int *rc);

/* Frees a builder that is not taken. NULL-safe. */
void node_patch_free(struct node_patch *p);

/* ---- the cache ---- */

/*
 * The cache of Nodes: a struct cache of node_info objects indexed by pool,
 * as a type of its own so that a node cache and a pod cache cannot be
 * passed for each other. node_cache_base gives the generic cache for what
 * every cache does (synced, subscriptions, write-through).
 */
struct node_cache;

/* New, empty, registered for /readyz and /debug/caches. NULL on ENOMEM. */
struct node_cache *node_cache_new(void);

/* Stops and frees (objects still referenced live on). NULL-safe. */
void node_cache_free(struct node_cache *nc);

/* The generic cache behind nc (borrowed). */
struct cache *node_cache_base(struct node_cache *nc);

/* Starts the list+watch of every Node. Returns 0 or -errno. */
int node_cache_start(struct node_cache *nc, struct kube *k);

/* New reference or NULL. Thread-safe. */
struct node_info *node_cache_get(struct node_cache *nc, const char *name);

/*
 * Calls fn for each node of pool (NULL = every node) under the read lock;
 * fn must be quick. Returns the number visited. Thread-safe.
 */
size_t node_cache_foreach(struct node_cache *nc, const char *pool,
    int (*fn)(void *ctx, const struct node_info *n), void *ctx);

/*
 * Nodes labelled with pool, or -1 while the cache has not synced (an unknown
 * count must not pass for zero). The signature is that of
 * validate_webhook_options.pool_nodes, with the struct node_cache as ctx. Thread-safe.
 */
long node_cache_pool_size(void *cache, const char *pool);

/*
 * The optimistic-concurrency write of every claim and state transition: a
 * JSON Patch (borrowed) guarded by resource_version (kube_patch_guarded),
 * PATCHed to the node, and the reply written through to the cache at once so
 * this replica never acts on the state it just replaced. *out (may be NULL)
 * gets a reference to the updated node. Another writer in between is
 * KUBE_ERR_CONFLICT (-EBUSY). Thread-safe.
 */
int node_cache_patch(struct node_cache *nc, struct kube *k, const char *name,
    const char *resource_version, json_t *patch, struct node_info **out,
    struct kube_error *err);

/* Same without the resourceVersion guard (merge patch), also written through. */
int node_cache_merge_patch(struct node_cache *nc, struct kube *k, const char *name, json_t *patch,
    struct node_info **out, struct kube_error *err);

#endif
