/* Caches of the stratos.sh custom resources, feeding the pools registry. */
#ifndef STRATOS_CRD_CACHE_H
#define STRATOS_CRD_CACHE_H

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
	char storage[];
};

extern const struct cache_type CRD_NODEPOOLS_TYPE;       /* resource "nodepools" */
extern const struct cache_type CRD_AWSNODECLASSES_TYPE;  /* resource "awsnodeclasses" */

/* New cache of NodePools / AWSNodeClasses. NULL on ENOMEM. */
struct cache *crd_cache_new_nodepools(void);
struct cache *crd_cache_new_awsnodeclasses(void);

struct pools;

/*
 * Feeds the pools registry from this cache (before crd_cache_start): every
 * object the watch adds or changes is upserted whole, deletions delete, and
 * each completed list marks that kind synced (pools_loaded() for /readyz).
 * Returns 0 or -EINVAL (not a CRD cache). The registry must outlive the cache.
 */
int crd_cache_feed_pools(struct cache *c, struct pools *p);

/* Starts the list+watch of the cache's resource (its type says which). Returns 0 or -errno. */
int crd_cache_start(struct cache *c, struct kube *k);

#endif
