/* The generic object cache: compact immutable objects by key, write-through, change counter. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache_internal.h"
#include "stratos/intern.h"
#include "stratos/log.h"
#include "stratos/metrics.h"
#include "stratos/siphash.h"
#include "stratos/timeutil.h"

/*
 * Keys and index values are names chosen by whoever creates the object (a
 * pod's namespace/name, its spec.nodeName). Under a public hash (this was
 * FNV-1a) they can be picked to share one home slot, and linear probing
 * then walks the whole cluster on every lookup; a keyed hash leaves them
 * nothing to aim at.
 */
uint32_t
cache__hash(const char *s)
{
	return (uint32_t)siphash_table_str(s);
}

int
cache_parse_rv(const char *s, uint64_t *rv)
{
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*rv = strtoull(s, &end, 10);
	return errno != 0 || *end != '\0' ? -EINVAL : 0;
}

int
cache_key_of(json_t *obj, char out[CACHE_KEY_MAX])
{
	json_t *meta = json_object_get(obj, "metadata");
	const char *name = json_string_value(json_object_get(meta, "name"));
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	int n;

	if (name == NULL || name[0] == '\0')
		return -EINVAL;
	if (ns != NULL && ns[0] != '\0')
		n = snprintf(out, CACHE_KEY_MAX, "%s/%s", ns, name);
	else
		n = snprintf(out, CACHE_KEY_MAX, "%s", name);
	return n < CACHE_KEY_MAX ? 0 : -EINVAL;
}

void
cache_obj_init(struct cache_obj *o, const struct cache_type *type)
{
	o->type = type;
	o->hash = cache__hash(o->key);
	atomic_init(&o->refs, 1);
}

struct cache_obj *
cache_obj_ref(struct cache_obj *o)
{
	if (o != NULL)
		atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
	return o;
}

void
cache_obj_unref(struct cache_obj *o)
{
	if (o != NULL && atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) == 1)
		o->type->destroy(o);
}

size_t
cache__size(const struct cache_obj *o)
{
	return o->type->size != NULL ? o->type->size(o) : 0;
}

void
cache__counts(struct cache *c)
{
	atomic_store(&c->count, c->cur.count);
	atomic_store(&c->bytes, c->cur.bytes);
	if (c->m_objects != NULL)
		metrics_gauge_set(c->m_objects, (double)c->cur.count, c->type->resource);
}

/* ---- the cache ---- */

struct cache *
cache_new(const struct cache_type *type)
{
	static const char *const labels[] = { "resource", NULL };
	struct cache *c = calloc(1, sizeof(*c));
	pthread_rwlockattr_t attr;

	if (c == NULL)
		return NULL;
	c->type = type;
	/* Writers must not starve behind a steady stream of extender reads. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&c->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&c->write_lock, NULL);
	pthread_mutex_init(&c->notify_lock, NULL);
	time_cond_init(&c->notify_cond);
	c->m_objects = metrics_register(METRICS_GAUGE, "stratos_cache_objects",
	    "Objects held in the in-memory caches.", labels, NULL, 0);
	if (c->m_objects != NULL)
		metrics_gauge_set(c->m_objects, 0, type->resource);
	cache__register(c);
	return c;
}

void
cache_free(struct cache *c)
{
	if (c == NULL)
		return;
	cache_stop(c);
	kube_informer_free(c->informer);
	cache__unregister(c);
	cache__table_clear(&c->cur);
	cache__table_clear(&c->staging);
	pthread_rwlock_destroy(&c->lock);
	pthread_mutex_destroy(&c->write_lock);
	pthread_mutex_destroy(&c->notify_lock);
	pthread_cond_destroy(&c->notify_cond);
	free(c);
}

void
cache_set_hook(struct cache *c, cache_hook_fn fn, void *ctx)
{
	c->hook = fn;
	c->hook_ctx = ctx;
}

const char *
cache_resource(const struct cache *c)
{
	return c->type->resource;
}

size_t
cache_count(struct cache *c)
{
	return atomic_load(&c->count);
}

bool
cache_synced(struct cache *c)
{
	return c->informer != NULL && kube_informer_synced(c->informer);
}

size_t
cache_index_count_in(struct cache *c, unsigned which, const char *value)
{
	struct cache__group *g;
	size_t n;

	if (which >= CACHE_INDEXES || value == NULL)
		return 0;
	pthread_rwlock_rdlock(&c->lock);
	g = cache__group_find(&c->cur, which, value, cache__hash(value), NULL);
	n = g != NULL ? g->n : 0;
	pthread_rwlock_unlock(&c->lock);
	return n;
}

size_t
cache_index_count(struct cache *c, const char *index)
{
	return cache_index_count_in(c, 0, index);
}

struct cache_obj *
cache_get(struct cache *c, const char *key)
{
	struct cache_obj *o;

	pthread_rwlock_rdlock(&c->lock);
	o = cache_obj_ref(cache__table_get(&c->cur, key));
	pthread_rwlock_unlock(&c->lock);
	return o;
}

/* Walks every object (value NULL) or the group of value in index which, under the read lock. */
static size_t
cache__walk(struct cache *c, unsigned which, const char *value, cache_visit_fn fn, void *ctx)
{
	size_t visited = 0;

	pthread_rwlock_rdlock(&c->lock);
	if (value == NULL) {
		for (size_t i = 0; i < c->cur.cap; i++) {
			if (c->cur.slots[i] == NULL)
				continue;
			visited++;
			if (fn(ctx, c->cur.slots[i]) != 0)
				break;
		}
	} else if (which < CACHE_INDEXES) {
		struct cache__group *g = cache__group_find(&c->cur, which, value, cache__hash(value),
		    NULL);
		for (uint32_t i = 0; g != NULL && i < g->n; i++) {
			visited++;
			if (fn(ctx, g->items[i]) != 0)
				break;
		}
	}
	pthread_rwlock_unlock(&c->lock);
	return visited;
}

size_t
cache_foreach(struct cache *c, const char *index, cache_visit_fn fn, void *ctx)
{
	return cache__walk(c, 0, index, fn, ctx);
}

size_t
cache_foreach_in(struct cache *c, unsigned which, const char *value, cache_visit_fn fn,
    void *ctx)
{
	return value != NULL ? cache__walk(c, which, value, fn, ctx) : 0;
}

struct cache__collect {
	struct cache_obj **arr;
	size_t n, cap;
};

static int
cache__collect(void *ctx, struct cache_obj *o)
{
	struct cache__collect *cc = ctx;

	if (cc->n < cc->cap)
		cc->arr[cc->n++] = cache_obj_ref(o);
	return 0;
}

/* Copies references under the read lock; the array is sized before the walk, under the same lock. */
static long
cache__snapshot(struct cache *c, unsigned which, const char *value, struct cache_obj ***out)
{
	struct cache__collect cc = { 0 };
	struct cache__group *g;

	*out = NULL;
	if (which >= CACHE_INDEXES)
		return 0;
	pthread_rwlock_rdlock(&c->lock);
	if (value == NULL) {
		cc.cap = c->cur.count;
	} else {
		g = cache__group_find(&c->cur, which, value, cache__hash(value), NULL);
		cc.cap = g != NULL ? g->n : 0;
	}
	cc.arr = malloc((cc.cap ? cc.cap : 1) * sizeof(*cc.arr));
	if (cc.arr != NULL) {
		if (value == NULL) {
			for (size_t i = 0; i < c->cur.cap; i++)
				if (c->cur.slots[i] != NULL)
					(void)cache__collect(&cc, c->cur.slots[i]);
		} else if ((g = cache__group_find(&c->cur, which, value, cache__hash(value),
		    NULL)) != NULL) {
			for (uint32_t i = 0; i < g->n; i++)
				(void)cache__collect(&cc, g->items[i]);
		}
	}
	pthread_rwlock_unlock(&c->lock);
	if (cc.arr == NULL)
		return -ENOMEM;
	*out = cc.arr;
	return (long)cc.n;
}

long
cache_snapshot(struct cache *c, const char *index, struct cache_obj ***out)
{
	return cache__snapshot(c, 0, index, out);
}

long
cache_snapshot_in(struct cache *c, unsigned which, const char *value, struct cache_obj ***out)
{
	if (value == NULL) {
		*out = NULL;
		return 0;
	}
	return cache__snapshot(c, which, value, out);
}

void
cache_objs_free(struct cache_obj **objs, size_t n)
{
	for (size_t i = 0; objs != NULL && i < n; i++)
		cache_obj_unref(objs[i]);
	free(objs);
}

uint64_t
cache_generation(struct cache *c)
{
	uint64_t g;

	pthread_mutex_lock(&c->notify_lock);
	g = c->generation;
	pthread_mutex_unlock(&c->notify_lock);
	return g;
}

uint64_t
cache_wait(struct cache *c, uint64_t seen, long timeout_ms)
{
	int64_t deadline = time_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	uint64_t g;

	pthread_mutex_lock(&c->notify_lock);
	while (c->generation == seen) {
		if (timeout_ms < 0)
			pthread_cond_wait(&c->notify_cond, &c->notify_lock);
		else if (time_cond_wait_until(&c->notify_cond, &c->notify_lock, deadline) == ETIMEDOUT)
			break;
	}
	g = c->generation;
	pthread_mutex_unlock(&c->notify_lock);
	return g;
}

void
cache__log_unparsable(struct cache *c, json_t *obj)
{
	char key[CACHE_KEY_MAX] = "?";

	(void)cache_key_of(obj, key);
	log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s}", "resource", c->type->resource, "object", key),
	    "object cannot be cached; skipped");
}

/*
 * Applies one upsert to the live table with the write lock held. Returns 1
 * applied, 0 older than the cached version, negative on error.
 */
int
cache__upsert_locked(struct cache *c, json_t *obj, enum cache_change *change)
{
	struct cache_obj *o, *old, *cur;
	int rc = 0;

	o = c->type->parse(obj, &rc);
	if (o == NULL) {
		if (rc == -EINVAL) {
			cache__log_unparsable(c, obj);
			return 0;
		}
		return rc;
	}
	pthread_rwlock_wrlock(&c->lock);
	cur = cache__table_get(&c->cur, o->key);
	if (cur != NULL && cur->rv >= o->rv) {
		pthread_rwlock_unlock(&c->lock);
		cache_obj_unref(o);
		return 0;
	}
	old = cache__table_put(&c->cur, o, &rc);
	pthread_rwlock_unlock(&c->lock);
	if (rc < 0) {
		if (rc == -ENOSPC)
			log_msg(LOG_LEVEL_ERROR, json_pack("{s:s,s:i}", "resource", c->type->resource,
			    "limit", (int)LIMITS_CACHE_OBJECTS), "cache is full");
		cache_obj_unref(o);
		return rc;
	}
	*change = old != NULL ? CACHE_MODIFIED : CACHE_ADDED;
	cache__counts(c);
	cache__publish(c, *change, old, o);
	cache_obj_unref(old);
	return 1;
}

int
cache__remove_locked(struct cache *c, const char *key, uint64_t rv)
{
	struct cache_obj *old;
	uint32_t h = cache__hash(key);

	pthread_rwlock_wrlock(&c->lock);
	old = cache__table_get(&c->cur, key);
	if (old == NULL || (rv != 0 && old->rv > rv)) {
		pthread_rwlock_unlock(&c->lock);
		return 0;
	}
	old = cache__table_take(&c->cur, key, h);
	pthread_rwlock_unlock(&c->lock);
	cache__counts(c);
	cache__publish(c, CACHE_DELETED, old, NULL);
	cache_obj_unref(old);
	return 1;
}

/* The object's metadata.resourceVersion as a number, 0 when absent or not numeric. */
uint64_t
cache__rv_of(json_t *obj)
{
	uint64_t rv = 0;

	(void)cache_parse_rv(json_string_value(json_object_get(json_object_get(obj, "metadata"),
	    "resourceVersion")), &rv);
	return rv;
}

/* Whether key is absent at a version the stream has passed: deleted since. Under write_lock. */
static bool
cache__deleted_since(struct cache *c, const char *key, uint64_t rv)
{
	bool absent;

	if (rv == 0 || rv > c->stream_rv)
		return false;
	pthread_rwlock_rdlock(&c->lock);
	absent = cache__table_get(&c->cur, key) == NULL;
	pthread_rwlock_unlock(&c->lock);
	return absent;
}

int
cache_apply(struct cache *c, json_t *obj)
{
	enum cache_change change = CACHE_MODIFIED;
	char key[CACHE_KEY_MAX];
	int rc;

	if (cache_key_of(obj, key) < 0)
		return -EINVAL;
	pthread_mutex_lock(&c->write_lock);
	if (cache__deleted_since(c, key, cache__rv_of(obj))) {
		pthread_mutex_unlock(&c->write_lock);
		return 0;
	}
	rc = cache__upsert_locked(c, obj, &change);
	if (rc == 1 && c->hook != NULL)
		c->hook(c->hook_ctx, change, key, obj);
	pthread_mutex_unlock(&c->write_lock);
	return rc;
}

int
cache_remove(struct cache *c, const char *key, uint64_t rv)
{
	int rc;

	pthread_mutex_lock(&c->write_lock);
	rc = cache__remove_locked(c, key, rv);
	if (rc == 1 && c->hook != NULL)
		c->hook(c->hook_ctx, CACHE_DELETED, key, NULL);
	pthread_mutex_unlock(&c->write_lock);
	return rc;
}
