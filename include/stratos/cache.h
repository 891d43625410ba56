/* In-memory object caches fed by informers: compact objects, lookups, change notifications. */
#ifndef STRATOS_CACHE_H
#define STRATOS_CACHE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "stratos/kube.h"

struct cache;
struct cache_type;

/*
 * Each object may be filed under up to CACHE_INDEXES index values, each a
 * hash lookup away (the pods of a node; the pending pods of a pool). Index
 * 0 is "the" index of the functions without _in.
 */
#define CACHE_INDEXES 2

/*
 * Header of every cached object. Objects are immutable once cached and
 * reference-counted: a reader may keep one (cache_obj_ref) after the cache
 * has replaced or dropped it. Typed objects (struct node_info, pod_info)
 * start with this header.
 */
struct cache_obj {
	const struct cache_type *type;
	const char *key;             /* "name" or "namespace/name"; owned by the object */
	const char *index[CACHE_INDEXES];   /* index values (interned), e.g. node or pool; NULL = not indexed */
	uint64_t rv;                 /* metadata.resourceVersion as a number (etcd revision) */
	uint32_t hash;               /* of key */
	atomic_uint refs;
};

/* How to turn one API object into a compact cache object. */
struct cache_type {
	const char *resource;        /* "nodes": logs, metrics, /debug/caches */
	/*
	 * New object (refs 1) from an API object, or NULL with *rc: -EINVAL
	 * when the object cannot be cached (logged and skipped), -ENOMEM.
	 * Must set key, index[], rv and call cache_obj_init.
	 */
	struct cache_obj *(*parse)(json_t *obj, int *rc);
	/* Frees a typed object whose last reference went. */
	void (*destroy)(struct cache_obj *o);
	/* Approximate bytes owned by o (for the memory report); may be NULL. */
	size_t (*size)(const struct cache_obj *o);
	/*
	 * Members parse never reads (jsonprune paths, NULL-terminated; may be
	 * NULL), cut from the text before it is parsed: a Node's image list
	 * or a Pod's env and volumes cost parse time and nothing else.
	 */
	const char *const *prune;
};

/* Sets hash and the first reference after the typed parser filled key. */
void cache_obj_init(struct cache_obj *o, const struct cache_type *type);

/* Parses "12345" into *rv. Returns 0 or -EINVAL. */
int cache_parse_rv(const char *s, uint64_t *rv);

/* Longest key: a namespace (63), "/", a name (253). */
#define CACHE_KEY_MAX 320

/*
 * The cache key of an API object: "namespace/name" for namespaced objects,
 * "name" otherwise. Returns 0 or -EINVAL (no name, too long).
 */
int cache_key_of(json_t *obj, char out[CACHE_KEY_MAX]);

/* Adds a reference. NULL-safe. Thread-safe. */
struct cache_obj *cache_obj_ref(struct cache_obj *o);

/* Drops a reference; the last one destroys the object. NULL-safe. Thread-safe. */
void cache_obj_unref(struct cache_obj *o);

/*
 * Called on the watch thread (or the write-through caller) for every change
 * that reaches the cache, with the API object (NULL for a deletion found
 * by a relist, and for CACHE_LISTED, which follows every completed list).
 * Used to feed registries that want whole objects (pools).
 */
enum cache_change {
	CACHE_ADDED,
	CACHE_MODIFIED,
	CACHE_DELETED,
	CACHE_RESYNC,                /* subscriber queue overflowed: re-read the whole cache */
	CACHE_LISTED,                /* hooks only: a (re)list has been applied in full */
};
typedef void (*cache_hook_fn)(void *ctx, enum cache_change change, const char *key,
    json_t *obj);

/*
 * New empty cache, registered for /debug/caches and cache_all_synced (its
 * resource name must be unique). Not thread-safe with other cache_new/free.
 * NULL on ENOMEM.
 */
struct cache *cache_new(const struct cache_type *type);

/* Stops the informer, unregisters and frees (objects still referenced live on). NULL-safe. */
void cache_free(struct cache *c);

/*
 * Sets the hook (before cache_start). The hook must be quick and must not
 * call back into this cache's write functions.
 */
void cache_set_hook(struct cache *c, cache_hook_fn fn, void *ctx);

/*
 * Starts the list+watch thread on path ("/api/v1/nodes") with optional
 * selectors; watch_timeout_s 0 = client-go's random 5–10 min. Returns 0 or -errno.
 */
int cache_start(struct cache *c, struct kube *k, const char *path, const char *label_selector,
    const char *field_selector, long watch_timeout_s);

/* Stops the thread (idempotent). */
void cache_stop(struct cache *c);

const char *cache_resource(const struct cache *c);

/* True once a full list has been applied; stays true across relists. Thread-safe. */
bool cache_synced(struct cache *c);

/* Objects held. Thread-safe. */
size_t cache_count(struct cache *c);

/*
 * The longest probe of the object table (slots a lookup examines to reach
 * the object farthest from its home slot) and, in *index_longest (may be
 * NULL), the longest of the index tables. Names are hashed with a
 * per-process key (siphash_table), so names chosen to collide cannot make
 * these grow. Walks the tables under the read lock: tests and
 * /debug/caches/<resource>.
 */
size_t cache_longest_probe(struct cache *c, size_t *index_longest);

/* Objects whose index 0 equals index (a hash lookup, no walk). Thread-safe. */
size_t cache_index_count(struct cache *c, const char *index);

/* Objects whose index `which` (< CACHE_INDEXES) equals value. Thread-safe. */
size_t cache_index_count_in(struct cache *c, unsigned which, const char *value);

/*
 * Looks up by key; returns a new reference (cache_obj_unref it) or NULL.
 * Thread-safe; takes the read lock for a hash lookup only.
 */
struct cache_obj *cache_get(struct cache *c, const char *key);

/*
 * Calls fn for every object (index NULL) or every object whose index equals
 * index, under the read lock: fn must be quick and must not call the
 * cache's write functions. A non-zero return stops the walk. Returns the
 * number of objects visited. Thread-safe.
 */
typedef int (*cache_visit_fn)(void *ctx, struct cache_obj *o);
size_t cache_foreach(struct cache *c, const char *index, cache_visit_fn fn, void *ctx);

/* The same over the objects whose index `which` equals value (not NULL). */
size_t cache_foreach_in(struct cache *c, unsigned which, const char *value, cache_visit_fn fn,
    void *ctx);

/*
 * Copies references to the objects (all, or those of one index value) into
 * a new array (*out, caller frees with cache_objs_free). Returns the count
 * or -ENOMEM. Thread-safe; the read lock is held only for the copy.
 */
long cache_snapshot(struct cache *c, const char *index, struct cache_obj ***out);

/* The same for the objects whose index `which` equals value (not NULL). */
long cache_snapshot_in(struct cache *c, unsigned which, const char *value,
    struct cache_obj ***out);
void cache_objs_free(struct cache_obj **objs, size_t n);

/*
 * Write-through: applies an object just returned by a write (PATCH/PUT),
 * unless the cache already holds a newer resourceVersion, or the object is
 * absent at a version the watch has already passed (deleted meanwhile: the
 * write must not bring it back). Returns 1 when applied, 0 when the cache
 * was already newer, or a negative error. Thread-safe.
 */
int cache_apply(struct cache *c, json_t *obj);

/*
 * Write-through of a deletion we made: drops key unless the cache holds a
 * version newer than rv (0 = unconditionally). Returns 1 when dropped, 0 if not.
 */
int cache_remove(struct cache *c, const char *key, uint64_t rv);

/* Change counter, bumped on every change. Thread-safe. */
uint64_t cache_generation(struct cache *c);

/*
 * Waits until the generation differs from seen or timeout_ms passes (-1 =
 * forever). Returns the current generation. Thread-safe.
 */
uint64_t cache_wait(struct cache *c, uint64_t seen, long timeout_ms);

/* ---- subscriptions: bounded event queues read by a consumer thread ---- */

struct cache_event {
	struct cache *cache;         /* which cache changed */
	enum cache_change change;
	struct cache_obj *old_obj;   /* references held by the event; NULL when absent */
	struct cache_obj *new_obj;
};

struct cache_sub;

/*
 * New subscription with room for capacity queued events (0 =
 * LIMITS_CACHE_SUB_QUEUE). One subscription may follow several caches.
 * When the queue is full, events are dropped and the consumer gets one
 * CACHE_RESYNC event (re-read the caches). NULL on ENOMEM.
 */
struct cache_sub *cache_sub_new(size_t capacity);

/* Starts queueing c's changes into s. Returns 0, -ENOSPC (too many subscribers). Thread-safe. */
int cache_subscribe(struct cache *c, struct cache_sub *s);

/* Stops queueing c's changes into s. Thread-safe. */
void cache_unsubscribe(struct cache *c, struct cache_sub *s);

/*
 * Takes the next event (release it with cache_event_release). Waits up to
 * timeout_ms (-1 = forever). Returns 0, -ETIMEDOUT, or -ECANCELED once
 * cache_sub_close was called and the queue is empty. Thread-safe.
 */
int cache_sub_next(struct cache_sub *s, struct cache_event *ev, long timeout_ms);

/* Wakes every waiter; later cache_sub_next calls drain and then return -ECANCELED. */
void cache_sub_close(struct cache_sub *s);

/* Frees a subscription that no cache follows any more. NULL-safe. */
void cache_sub_free(struct cache_sub *s);

void cache_event_release(struct cache_event *ev);

/* ---- all caches: readiness and the debug view ---- */

/*
 * True when every registered cache has synced; otherwise *first_unsynced
 * (may be NULL) names one that has not. Thread-safe.
 */
bool cache_all_synced(const char **first_unsynced);

/*
 * A readiness check (the server_ready_fn shape): true when every cache has
 * synced, else false with "<resource> not synced" in why. ctx unused.
 * Thread-safe and quick.
 */
bool cache_ready_check(void *ctx, char *why, size_t why_len);

/*
 * Debug view: without resource, {"caches":[{resource, synced, count,
 * resourceVersion, lists, watches, events, bookmarks, lastError, bytes}]};
 * with resource, that cache's entry plus "longestProbe",
 * "longestIndexProbe" (cache_longest_probe) and "objects": [{"key","rv"}] sorted
 * by key, cut (with "truncated": true) once the objects' text would pass
 * budget bytes (0 = no limit). Caller owns the result; NULL when no such
 * cache. Thread-safe.
 */
json_t *cache_debug_json(const char *resource, size_t budget);

#endif
