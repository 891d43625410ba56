/* Caches of the stratos.sh custom resources, feeding the pools registry. */
#ifndef STRATOS_CRD_CACHE_H
#define STRATOS_CRD_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "stratos/cache.h"
#include "stratos/kube.h"

/*
 * What the cache itself keeps of a custom resource: enough for lookups,
 * /debug/caches and change notifications. The parsed spec lives in the
 * pools registry, fed through the cache hook (cache_set_hook) with the
 * whole object on every change.
 */
struct crd_info {
	struct cache_obj obj;        /* key = name */
	int64_t generation;          /* metadata.generation */
	int64_t deleted_ms;          /* deletionTimestamp, 0 when not being deleted */
	/*
	 * What the pool controller writes back and must read again after a
	 * restart (NodePools only; absent for AWSNodeClasses): where its
	 * finalizer is, its launch records, the status it last wrote.
	 */
	int finalizer_index;         /* index of stratos.sh/nodepool in metadata.finalizers, -1 */
	bool has_finalizers;         /* metadata.finalizers exists (JSON Patch "add" needs it) */
	bool has_annotations;        /* metadata.annotations exists */
	const char *launches;        /* annotation stratos.sh/launches, NULL when absent */
	const char *status;          /* .status as compact JSON text, NULL when absent */
	char storage[];              /* key, then launches, then status */
};

extern const struct cache_type CRD_NODEPOOLS_TYPE;       /* resource "nodepools" */
extern const struct cache_type CRD_AWSNODECLASSES_TYPE;  /* resource "awsnodeclasses" */

/*
 * A cache of NodePools or of AWSNodeClasses: a struct cache of crd_info
 * objects under a type of its own (not to be confused with the node or pod
 * cache). crd_cache_base gives the generic cache.
 */
struct crd_cache;

/* New cache of NodePools / AWSNodeClasses. NULL on ENOMEM. */
struct crd_cache *crd_cache_new_nodepools(void);
struct crd_cache *crd_cache_new_awsnodeclasses(void);

/* Stops and frees. NULL-safe. */
void crd_cache_free(struct crd_cache *cc);

/* The generic cache behind cc (borrowed). */
struct cache *crd_cache_base(struct crd_cache *cc);

struct pools;

/*
 * Feeds the pools registry from this cache (before crd_cache_start): every
 * object the watch adds or changes is upserted whole, deletions delete, and
 * each completed list marks that kind synced (pools_loaded() for /readyz).
 * Returns 0 or -EINVAL (not a CRD cache). The registry must outlive the cache.
 */
int crd_cache_feed_pools(struct crd_cache *cc, struct pools *p);

/* New reference to the cached object name, or NULL. Thread-safe. */
struct crd_info *crd_cache_get(struct crd_cache *cc, const char *name);

/* Starts the list+watch of the cache's resource (its type says which). Returns 0 or -errno. */
int crd_cache_start(struct crd_cache *cc, struct kube *k);

#endif
