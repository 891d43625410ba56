/* Internal to the cache module (src/kube/cache*.c): its structures and the functions its parts share. */
#ifndef STRATOS_KUBE_CACHE_INTERNAL_H
#define STRATOS_KUBE_CACHE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "stratos/cache.h"
#include "stratos/kube_informer.h"
#include "stratos/limits.h"
#include "stratos/metrics.h"

/* Objects sharing one index value (the pods of a node, the nodes of a pool). */
struct cache__group {
	const char *key;             /* interned, one reference held */
	uint32_t hash;
	uint32_t n, cap;
	struct cache_obj **items;
};

/* Open addressing with linear probing and backward-shift deletion. */
/* One index: the groups of objects by value, a probe table of its own. */
struct cache__index {
	struct cache__group **groups;
	size_t gcap;
	size_t gcount;
};

struct cache__table {
	struct cache_obj **slots;
	size_t cap;                  /* power of two, or 0 */
	size_t count;
	struct cache__index idx[CACHE_INDEXES];
	size_t bytes;                /* type->size of the objects */
};

struct cache_sub {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct cache_event *ring;
	size_t cap, head, len;
	bool overflowed;             /* a RESYNC is owed */
	bool closed;
};

struct cache {
	const struct cache_type *type;
	pthread_rwlock_t lock;       /* readers vs. the in-place changes of cur */
	pthread_mutex_t write_lock;  /* one writer at a time: watch thread or write-through */
	struct cache__table cur;

	/* Watch thread only: the table a relist is building. */
	struct cache__table staging;
	/*
	 * Under write_lock: the newest resourceVersion the list+watch stream has
	 * brought (list versions, event objects, deletions included). The cache
	 * is the server's state as of this version, so a write-through of an
	 * absent object at or below it is a write the object's deletion has
	 * already overtaken, and must not bring it back.
	 */
	uint64_t stream_rv;

	cache_hook_fn hook;
	void *hook_ctx;
	struct kube_informer *informer;

	pthread_mutex_t notify_lock;
	pthread_cond_t notify_cond;
	uint64_t generation;
	struct cache_sub *subs[LIMITS_CACHE_SUBSCRIBERS];
	size_t nsubs;

	atomic_size_t count;
	atomic_size_t bytes;
	struct metrics_family *m_objects;
};

/* cache.c */
uint32_t cache__hash(const char *s);
size_t cache__size(const struct cache_obj *o);
void cache__counts(struct cache *c);
void cache__log_unparsable(struct cache *c, json_t *obj);
int cache__upsert_locked(struct cache *c, json_t *obj, enum cache_change *change);
int cache__remove_locked(struct cache *c, const char *key, uint64_t rv);
uint64_t cache__rv_of(json_t *obj);

/* cache_table.c: callers hold the cache's locks as cache.c describes. */
struct cache__group *cache__group_find(const struct cache__table *t, unsigned which,
    const char *key, uint32_t hash, size_t *slot);
struct cache_obj *cache__table_put(struct cache__table *t, struct cache_obj *o, int *rc);
struct cache_obj *cache__table_take(struct cache__table *t, const char *key, uint32_t hash);
struct cache_obj *cache__table_get(const struct cache__table *t, const char *key);
void cache__table_clear(struct cache__table *t);

/* cache_sub.c: wakes cache_wait and queues the change for every subscriber. */
void cache__publish(struct cache *c, enum cache_change change, struct cache_obj *old_obj,
    struct cache_obj *new_obj);

/* cache_registry.c */
void cache__register(struct cache *c);
void cache__unregister(struct cache *c);

#endif
