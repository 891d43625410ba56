/* The pools registry: immutable, reference-counted snapshots of every NodePool and AWSNodeClass. */
#ifndef STRATOS_POOLS_H
#define STRATOS_POOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "stratos/fieldcheck.h"
#include "stratos/nodeclass.h"
#include "stratos/nodepool.h"

/*
 * How it is used
 *
 *   Writers (one file loader at start-up, or the NodePool and AWSNodeClass
 *   watch caches) feed Kubernetes objects in; every change builds a new
 *   snapshot (copy-on-write: the parsed structs of unchanged objects are
 *   shared, the pointer arrays and the label index are rebuilt) and swaps it
 *   in. Readers (webhook threads, the extender, the controller) take the
 *   current snapshot with pools_acquire(), read it as long as they like
 *   without any lock, and give it back with pools_release(). Writers never
 *   wait for readers; readers wait at most for a pointer swap.
 *
 *   Watch cache wiring (branch kube-client):
 *     ADDED/MODIFIED  → pools_upsert_nodepool(p, ev.object, NULL)
 *     DELETED         → pools_delete_nodepool(p, name)
 *     (re)list done   → pools_replace_nodepools(p, list.items)   (marks NodePools synced)
 *   and the same with _nodeclass / _nodeclasses. /readyz: pools_loaded().
 */

struct pools;

/* What readers get: everything sorted by name. Never modified after publication. */
struct pools_snapshot {
	int refs;                               /* atomic */
	uint64_t generation;                    /* +1 per change; the first snapshot is 0 */
	bool loaded;                            /* both kinds synced at least once */
	struct nodepool **nodepools;            /* sorted by name */
	size_t nnodepools;
	struct nodeclass **nodeclasses;         /* sorted by name */
	size_t nnodeclasses;
	struct pools__label_index *labels;      /* private: (key, value) → pools with that template label */
	size_t words;                           /* private: bitset size in uint64_t */
};

/* Synced flags for pools_mark_synced(). */
#define POOLS_SYNCED_NODEPOOLS   0x1u
#define POOLS_SYNCED_NODECLASSES 0x2u

/* New, empty, not loaded registry (generation 0). NULL on ENOMEM. */
struct pools *pools_new(void);

/* Frees the registry. Snapshots still held stay valid until released. NULL-safe. */
void pools_free(struct pools *p);

/*
 * The current snapshot, with a reference the caller gives back with
 * pools_release(). Never NULL. Thread-safe, lock-free for the caller's
 * reading; takes a mutex only for the pointer load and increment.
 */
const struct pools_snapshot *pools_acquire(struct pools *p);

/* Gives a snapshot back. NULL-safe, thread-safe. */
void pools_release(const struct pools_snapshot *snap);

/* Generation and loaded flag of the current snapshot (cheap; /readyz). Thread-safe. */
uint64_t pools_generation(struct pools *p);
bool pools_loaded(struct pools *p);

/*
 * Writers. All are thread-safe (serialised among themselves) and publish a
 * new snapshot on success.
 *
 * upsert: parses obj (nodepool_parse / nodeclass_parse; violations to rep
 * when non-NULL) and inserts or replaces the object of that name. An object
 * that breaks rules is still stored (with nviolations > 0): dropping it
 * would look like a deletion to the controller. Returns 0, -EINVAL (not an
 * object or no metadata.name), -ENOSPC (LIMITS_POOLS_MAX reached), -ENOMEM.
 *
 * delete: -ENOENT when absent.
 *
 * replace_nodepools / replace_nodeclasses: the items of a list (a JSON
 * array of objects; their "kind" is not looked at) replace every object of
 * that kind, and that kind is marked synced. Items without a usable name are
 * skipped (counted in *skipped when non-NULL).
 *
 * replace_all: docs mixes both kinds (by "kind"); other kinds → -EINVAL and
 * nothing changes. Marks both kinds synced.
 */
int pools_upsert_nodepool(struct pools *p, const json_t *obj, struct fieldcheck_report *rep);
int pools_delete_nodepool(struct pools *p, const char *name);
int pools_upsert_nodeclass(struct pools *p, const json_t *obj, struct fieldcheck_report *rep);
int pools_delete_nodeclass(struct pools *p, const char *name);
int pools_replace_nodepools(struct pools *p, const json_t *items, size_t *skipped);
int pools_replace_nodeclasses(struct pools *p, const json_t *items, size_t *skipped);
int pools_replace_all(struct pools *p, const json_t *docs);

/* Sets synced flags (a watch cache whose list came back empty still syncs). Thread-safe. */
int pools_mark_synced(struct pools *p, unsigned flags);

/* Lookups on a snapshot (no locks; the snapshot must be held). NULL when absent. */
const struct nodepool *pools_find_nodepool(const struct pools_snapshot *snap, const char *name);
const struct nodeclass *pools_find_nodeclass(const struct pools_snapshot *snap, const char *name);

/*
 * The pools whose spec.template.labels contain every (keys[i], values[i])
 * pair: fills out with up to max of them (in name order) and returns how
 * many there are in all. n == 0 matches nothing. Cost: one hash lookup per
 * pair plus one AND per 64 pools; no allocation. Thread-safe on a held
 * snapshot.
 */
size_t pools_match_labels(const struct pools_snapshot *snap, const char *const *keys,
    const char *const *values, size_t n, const struct nodepool **out, size_t max);

#endif
