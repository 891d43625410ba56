/* Generic informer-fed object cache: probe tables, one index, write-through, notifications. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stratos/cache.h"
#include "stratos/intern.h"
#include "stratos/kube_watch.h"
#include "stratos/limits.h"
#include "stratos/log.h"
#include "stratos/metrics.h"
#include "stratos/siphash.h"
#include "stratos/timeutil.h"

#define CACHE_REGISTRY_MAX 16

/* Objects sharing one index value (the pods of a node, the nodes of a pool). */
struct cache__group {
	const char *key;             /* interned, one reference held */
	uint32_t hash;
	uint32_t n, cap;
	struct cache_obj **items;
};

/* Open addressing with linear probing and backward-shift deletion. */
struct cache__table {
	struct cache_obj **slots;
	size_t cap;                  /* power of two, or 0 */
	size_t count;
	struct cache__group **groups;
	size_t gcap;
	size_t gcount;
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

static pthread_mutex_t cache_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache *cache_registry[CACHE_REGISTRY_MAX];
static size_t cache_nregistry;

/*
 * Keys and index values are names chosen by whoever creates the object (a
 * pod's namespace/name, its spec.nodeName). Under a public hash (this was
 * FNV-1a) they can be picked to share one home slot, and linear probing
 * then walks the whole cluster on every lookup; a keyed hash leaves them
 * nothing to aim at.
 */
static uint32_t
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

static size_t
cache__size(const struct cache_obj *o)
{
	return o->type->size != NULL ? o->type->size(o) : 0;
}

/* ---- tables ---- */

static size_t
cache__find(const struct cache__table *t, const char *key, uint32_t hash)
{
	size_t mask = t->cap - 1;

	if (t->cap == 0)
		return SIZE_MAX;
	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		struct cache_obj *o = t->slots[i];
		if (o == NULL)
			return SIZE_MAX;
		if (o->hash == hash && strcmp(o->key, key) == 0)
			return i;
	}
}

static int
cache__grow(struct cache__table *t)
{
	size_t ncap = t->cap ? t->cap * 2 : 64;
	struct cache_obj **ns = calloc(ncap, sizeof(*ns));

	if (ns == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++) {
		struct cache_obj *o = t->slots[i];
		if (o == NULL)
			continue;
		size_t j = o->hash & (ncap - 1);
		while (ns[j] != NULL)
			j = (j + 1) & (ncap - 1);
		ns[j] = o;
	}
	free(t->slots);
	t->slots = ns;
	t->cap = ncap;
	return 0;
}

static struct cache__group *
cache__group_find(const struct cache__table *t, const char *key, uint32_t hash, size_t *slot)
{
	size_t mask = t->gcap - 1;

	if (t->gcap == 0)
		return NULL;
	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		struct cache__group *g = t->groups[i];
		if (g == NULL)
			return NULL;
		if (g->hash == hash && strcmp(g->key, key) == 0) {
			if (slot != NULL)
				*slot = i;
			return g;
		}
	}
}

static int
cache__group_grow(struct cache__table *t)
{
	size_t ncap = t->gcap ? t->gcap * 2 : 16;
	struct cache__group **ng = calloc(ncap, sizeof(*ng));

	if (ng == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < t->gcap; i++) {
		struct cache__group *g = t->groups[i];
		if (g == NULL)
			continue;
		size_t j = g->hash & (ncap - 1);
		while (ng[j] != NULL)
			j = (j + 1) & (ncap - 1);
		ng[j] = g;
	}
	free(t->groups);
	t->groups = ng;
	t->gcap = ncap;
	return 0;
}

static int
cache__index_add(struct cache__table *t, struct cache_obj *o)
{
	uint32_t h;
	struct cache__group *g;

	if (o->index == NULL)
		return 0;
	h = cache__hash(o->index);
	g = cache__group_find(t, o->index, h, NULL);
	if (g == NULL) {
		if ((t->gcount + 1) * 4 > t->gcap * 3 && cache__group_grow(t) < 0)
			return -ENOMEM;
		g = calloc(1, sizeof(*g));
		if (g == NULL)
			return -ENOMEM;
		g->key = intern_ref(o->index);
		g->hash = h;
		size_t j = h & (t->gcap - 1);
		while (t->groups[j] != NULL)
			j = (j + 1) & (t->gcap - 1);
		t->groups[j] = g;
		t->gcount++;
	}
	if (g->n == g->cap) {
		uint32_t ncap = g->cap ? g->cap * 2 : 4;
		struct cache_obj **ni = realloc(g->items, ncap * sizeof(*ni));
		if (ni == NULL)
			return -ENOMEM;
		g->items = ni;
		g->cap = ncap;
	}
	g->items[g->n++] = o;
	return 0;
}

/* Removes slot i of a probe table, shifting later members of the run back. */
#define CACHE__BACKSHIFT(arr, cap, i, hashof) do {                              \
	size_t mask_ = (cap) - 1, hole_ = (i), j_ = (i);                         \
	(arr)[hole_] = NULL;                                                     \
	for (;;) {                                                               \
		j_ = (j_ + 1) & mask_;                                           \
		if ((arr)[j_] == NULL)                                           \
			break;                                                   \
		size_t home_ = hashof((arr)[j_]) & mask_;                        \
		/* Move j_ into the hole unless its home lies in (hole_, j_]. */ \
		bool stays_ = hole_ <= j_ ? (home_ > hole_ && home_ <= j_) :     \
		    (home_ > hole_ || home_ <= j_);                              \
		if (!stays_) {                                                   \
			(arr)[hole_] = (arr)[j_];                                \
			(arr)[j_] = NULL;                                        \
			hole_ = j_;                                              \
		}                                                                \
	}                                                                        \
} while (0)

#define CACHE__HASH_OF(x) ((x)->hash)

static void
cache__index_remove(struct cache__table *t, struct cache_obj *o)
{
	struct cache__group *g;
	size_t slot = 0;

	if (o->index == NULL)
		return;
	g = cache__group_find(t, o->index, cache__hash(o->index), &slot);
	if (g == NULL)
		return;
	for (uint32_t i = 0; i < g->n; i++) {
		if (g->items[i] == o) {
			g->items[i] = g->items[--g->n];
			break;
		}
	}
	if (g->n == 0) {
		CACHE__BACKSHIFT(t->groups, t->gcap, slot, CACHE__HASH_OF);
		t->gcount--;
		intern_release(g->key);
		free(g->items);
		free(g);
	}
}

/*
 * Puts o (reference stolen) in t, replacing an object with the same key,
 * which is returned (its reference now the caller's). *rc is set on ENOMEM
 * (o is then not inserted and still the caller's).
 */
static struct cache_obj *
cache__table_put(struct cache__table *t, struct cache_obj *o, int *rc)
{
	size_t i = cache__find(t, o->key, o->hash);
	struct cache_obj *old = NULL;

	*rc = 0;
	if (i == SIZE_MAX) {
		if (t->count >= LIMITS_CACHE_OBJECTS) {
			*rc = -ENOSPC;
			return NULL;
		}
		if ((t->count + 1) * 10 > t->cap * 7 && cache__grow(t) < 0) {
			*rc = -ENOMEM;
			return NULL;
		}
		i = o->hash & (t->cap - 1);
		while (t->slots[i] != NULL)
			i = (i + 1) & (t->cap - 1);
		t->count++;
	} else {
		old = t->slots[i];
		cache__index_remove(t, old);
		t->bytes -= cache__size(old);
	}
	t->slots[i] = o;
	t->bytes += cache__size(o);
	if (cache__index_add(t, o) < 0) {
		/* Without its index entry the object would hide from by-index lookups. */
		t->slots[i] = old;
		t->bytes -= cache__size(o);
		if (old != NULL) {
			t->bytes += cache__size(old);
			(void)cache__index_add(t, old);
		} else {
			CACHE__BACKSHIFT(t->slots, t->cap, i, CACHE__HASH_OF);
			t->count--;
		}
		*rc = -ENOMEM;
		return NULL;
	}
	return old;
}

/* Takes key out of t; returns its object (reference now the caller's) or NULL. */
static struct cache_obj *
cache__table_take(struct cache__table *t, const char *key, uint32_t hash)
{
	size_t i = cache__find(t, key, hash);
	struct cache_obj *o;

	if (i == SIZE_MAX)
		return NULL;
	o = t->slots[i];
	cache__index_remove(t, o);
	CACHE__BACKSHIFT(t->slots, t->cap, i, CACHE__HASH_OF);
	t->count--;
	t->bytes -= cache__size(o);
	return o;
}

static struct cache_obj *
cache__table_get(const struct cache__table *t, const char *key)
{
	size_t i = cache__find(t, key, cache__hash(key));

	return i == SIZE_MAX ? NULL : t->slots[i];
}

static void
cache__table_clear(struct cache__table *t)
{
	for (size_t i = 0; i < t->cap; i++)
		cache_obj_unref(t->slots[i]);
	for (size_t i = 0; i < t->gcap; i++) {
		if (t->groups[i] != NULL) {
			intern_release(t->groups[i]->key);
			free(t->groups[i]->items);
			free(t->groups[i]);
		}
	}
	free(t->slots);
	free(t->groups);
	memset(t, 0, sizeof(*t));
}

/* ---- notifications ---- */

static void
cache__publish(struct cache *c, enum cache_change change, struct cache_obj *old_obj,
    struct cache_obj *new_obj)
{
	pthread_mutex_lock(&c->notify_lock);
	c->generation++;
	pthread_cond_broadcast(&c->notify_cond);
	for (size_t i = 0; i < c->nsubs; i++) {
		struct cache_sub *s = c->subs[i];
		pthread_mutex_lock(&s->lock);
		if (!s->closed) {
			if (s->len == s->cap) {
				s->overflowed = true;
			} else if (!s->overflowed) {
				struct cache_event *ev = &s->ring[(s->head + s->len) % s->cap];
				ev->cache = c;
				ev->change = change;
				ev->old_obj = cache_obj_ref(old_obj);
				ev->new_obj = cache_obj_ref(new_obj);
				s->len++;
			}
			pthread_cond_signal(&s->cond);
		}
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&c->notify_lock);
}

static void
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
	pthread_mutex_lock(&cache_registry_lock);
	if (cache_nregistry < CACHE_REGISTRY_MAX)
		cache_registry[cache_nregistry++] = c;
	pthread_mutex_unlock(&cache_registry_lock);
	return c;
}

void
cache_free(struct cache *c)
{
	if (c == NULL)
		return;
	cache_stop(c);
	kube_informer_free(c->informer);
	pthread_mutex_lock(&cache_registry_lock);
	for (size_t i = 0; i < cache_nregistry; i++) {
		if (cache_registry[i] == c) {
			cache_registry[i] = cache_registry[--cache_nregistry];
			break;
		}
	}
	pthread_mutex_unlock(&cache_registry_lock);
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
cache_index_count(struct cache *c, const char *index)
{
	struct cache__group *g;
	size_t n;

	pthread_rwlock_rdlock(&c->lock);
	g = cache__group_find(&c->cur, index, cache__hash(index), NULL);
	n = g != NULL ? g->n : 0;
	pthread_rwlock_unlock(&c->lock);
	return n;
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

size_t
cache_foreach(struct cache *c, const char *index, cache_visit_fn fn, void *ctx)
{
	size_t visited = 0;

	pthread_rwlock_rdlock(&c->lock);
	if (index == NULL) {
		for (size_t i = 0; i < c->cur.cap; i++) {
			if (c->cur.slots[i] == NULL)
				continue;
			visited++;
			if (fn(ctx, c->cur.slots[i]) != 0)
				break;
		}
	} else {
		struct cache__group *g = cache__group_find(&c->cur, index, cache__hash(index), NULL);
		for (uint32_t i = 0; g != NULL && i < g->n; i++) {
			visited++;
			if (fn(ctx, g->items[i]) != 0)
				break;
		}
	}
	pthread_rwlock_unlock(&c->lock);
	return visited;
}

long
cache_snapshot(struct cache *c, const char *index, struct cache_obj ***out)
{
	struct cache_obj **arr = NULL;
	size_t n = 0, cap;

	*out = NULL;
	pthread_rwlock_rdlock(&c->lock);
	if (index == NULL) {
		cap = c->cur.count;
		arr = malloc((cap ? cap : 1) * sizeof(*arr));
		for (size_t i = 0; arr != NULL && i < c->cur.cap; i++)
			if (c->cur.slots[i] != NULL)
				arr[n++] = cache_obj_ref(c->cur.slots[i]);
	} else {
		struct cache__group *g = cache__group_find(&c->cur, index, cache__hash(index), NULL);
		cap = g != NULL ? g->n : 0;
		arr = malloc((cap ? cap : 1) * sizeof(*arr));
		for (uint32_t i = 0; arr != NULL && g != NULL && i < g->n; i++)
			arr[n++] = cache_obj_ref(g->items[i]);
	}
	pthread_rwlock_unlock(&c->lock);
	if (arr == NULL)
		return -ENOMEM;
	*out = arr;
	return (long)n;
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

static void
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
static int
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

static int
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
static uint64_t
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

/* ---- informer callbacks (watch thread) ---- */

static int
cache__list_begin(void *ctx)
{
	struct cache *c = ctx;

	cache__table_clear(&c->staging);
	return 0;
}

static int
cache__list_item(void *ctx, json_t *obj)
{
	struct cache *c = ctx;
	struct cache_obj *o, *cur, *dup;
	char key[CACHE_KEY_MAX];
	int rc = 0;

	if (cache_key_of(obj, key) < 0) {
		cache__log_unparsable(c, obj);
		return 0;
	}
	/* Unchanged objects are shared with the live table rather than parsed again. */
	pthread_rwlock_rdlock(&c->lock);
	cur = cache_obj_ref(cache__table_get(&c->cur, key));
	pthread_rwlock_unlock(&c->lock);
	if (cur != NULL) {
		const char *rvs = json_string_value(json_object_get(json_object_get(obj, "metadata"),
		    "resourceVersion"));
		uint64_t rv;
		if (cache_parse_rv(rvs, &rv) == 0 && rv == cur->rv) {
			o = cur;
			cur = NULL;
			goto put;
		}
	}
	o = c->type->parse(obj, &rc);
	if (o == NULL) {
		cache_obj_unref(cur);
		if (rc == -EINVAL) {
			cache__log_unparsable(c, obj);
			return 0;
		}
		return rc;
	}
	/* The hook sees the listed object unless a write-through already went further. */
	if (c->hook != NULL && (cur == NULL || cur->rv < o->rv))
		c->hook(c->hook_ctx, cur != NULL ? CACHE_MODIFIED : CACHE_ADDED, key, obj);
put:
	cache_obj_unref(cur);
	dup = cache__table_put(&c->staging, o, &rc);
	if (rc < 0) {
		cache_obj_unref(o);
		return rc;
	}
	cache_obj_unref(dup);
	return 0;
}

struct cache__change {
	enum cache_change change;
	struct cache_obj *old_obj, *new_obj;
};

static int
cache__list_end(void *ctx, const char *resource_version)
{
	struct cache *c = ctx;
	struct cache__table *st = &c->staging, old;
	struct cache__change *changes = NULL;
	size_t nchanges = 0, cap;
	uint64_t list_rv = 0;
	int rc = 0;

	(void)cache_parse_rv(resource_version, &list_rv);
	pthread_mutex_lock(&c->write_lock);
	if (list_rv > c->stream_rv)
		c->stream_rv = list_rv;
	/* The live table only changes under write_lock, so it can be read freely here. */
	cap = c->cur.count + st->count;
	changes = calloc(cap ? cap : 1, sizeof(*changes));
	if (changes == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < c->cur.cap; i++) {
		struct cache_obj *o = c->cur.slots[i], *s, *dup;
		if (o == NULL)
			continue;
		s = cache__table_get(st, o->key);
		if (s == NULL && o->rv > list_rv) {
			/* Written through after the list was taken: keep it. */
			dup = cache__table_put(st, cache_obj_ref(o), &rc);
			if (rc < 0) {
				cache_obj_unref(o);
				goto out;
			}
			cache_obj_unref(dup);
		} else if (s == NULL) {
			changes[nchanges++] = (struct cache__change){ CACHE_DELETED,
				cache_obj_ref(o), NULL };
		} else if (s != o && o->rv > s->rv) {
			dup = cache__table_put(st, cache_obj_ref(o), &rc);
			if (rc < 0) {
				cache_obj_unref(o);
				goto out;
			}
			cache_obj_unref(dup);
		} else if (s != o) {
			changes[nchanges++] = (struct cache__change){ CACHE_MODIFIED,
				cache_obj_ref(o), cache_obj_ref(s) };
		}
	}
	for (size_t i = 0; i < st->cap; i++) {
		struct cache_obj *s = st->slots[i];
		if (s != NULL && cache__table_get(&c->cur, s->key) == NULL)
			changes[nchanges++] = (struct cache__change){ CACHE_ADDED, NULL,
				cache_obj_ref(s) };
	}
	/* Readers wait only for this swap. */
	pthread_rwlock_wrlock(&c->lock);
	old = c->cur;
	c->cur = *st;
	pthread_rwlock_unlock(&c->lock);
	memset(st, 0, sizeof(*st));
	cache__table_clear(&old);
	cache__counts(c);
	for (size_t i = 0; i < nchanges; i++) {
		cache__publish(c, changes[i].change, changes[i].old_obj, changes[i].new_obj);
		if (changes[i].change == CACHE_DELETED && c->hook != NULL)
			c->hook(c->hook_ctx, CACHE_DELETED, changes[i].old_obj->key, NULL);
	}
	if (c->hook != NULL)
		c->hook(c->hook_ctx, CACHE_LISTED, NULL, NULL);
out:
	for (size_t i = 0; i < nchanges; i++) {
		cache_obj_unref(changes[i].old_obj);
		cache_obj_unref(changes[i].new_obj);
	}
	free(changes);
	cache__table_clear(st);
	pthread_mutex_unlock(&c->write_lock);
	return rc;
}

static void
cache__list_abort(void *ctx)
{
	struct cache *c = ctx;

	cache__table_clear(&c->staging);
}

static int
cache__event(void *ctx, enum kube_watch_type type, json_t *obj)
{
	struct cache *c = ctx;
	enum cache_change change = CACHE_MODIFIED;
	char key[CACHE_KEY_MAX];
	int rc;

	if (cache_key_of(obj, key) < 0) {
		cache__log_unparsable(c, obj);
		return 0;
	}
	pthread_mutex_lock(&c->write_lock);
	uint64_t rv = cache__rv_of(obj);
	if (rv > c->stream_rv)
		c->stream_rv = rv;
	if (type == KUBE_WATCH_DELETED) {
		rc = cache__remove_locked(c, key, 0);
		if (rc == 1 && c->hook != NULL)
			c->hook(c->hook_ctx, CACHE_DELETED, key, obj);
	} else {
		rc = cache__upsert_locked(c, obj, &change);
		if (rc == 1 && c->hook != NULL)
			c->hook(c->hook_ctx, change, key, obj);
	}
	pthread_mutex_unlock(&c->write_lock);
	return rc < 0 ? rc : 0;
}

static const struct kube_informer_ops cache_informer_ops = {
	.list_begin = cache__list_begin,
	.list_item = cache__list_item,
	.list_end = cache__list_end,
	.list_abort = cache__list_abort,
	.event = cache__event,
};

int
cache_start(struct cache *c, struct kube *k, const char *path, const char *label_selector,
    const char *field_selector, long watch_timeout_s)
{
	struct kube_informer_config cfg = {
		.resource = c->type->resource, .path = path, .label_selector = label_selector,
		.field_selector = field_selector, .watch_timeout_s = watch_timeout_s,
		.prune = c->type->prune, .ops = &cache_informer_ops, .ctx = c,
	};

	if (c->informer == NULL) {
		c->informer = kube_informer_new(k, &cfg);
		if (c->informer == NULL)
			return -ENOMEM;
	}
	return kube_informer_start(c->informer);
}

void
cache_stop(struct cache *c)
{
	if (c != NULL && c->informer != NULL)
		kube_informer_stop(c->informer);
}

/* ---- subscriptions ---- */

struct cache_sub *
cache_sub_new(size_t capacity)
{
	struct cache_sub *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->cap = capacity ? capacity : LIMITS_CACHE_SUB_QUEUE;
	if (s->cap > LIMITS_CACHE_SUB_QUEUE)
		s->cap = LIMITS_CACHE_SUB_QUEUE;
	s->ring = calloc(s->cap, sizeof(*s->ring));
	if (s->ring == NULL) {
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	time_cond_init(&s->cond);
	return s;
}

int
cache_subscribe(struct cache *c, struct cache_sub *s)
{
	int rc = 0;

	pthread_mutex_lock(&c->notify_lock);
	if (c->nsubs == LIMITS_CACHE_SUBSCRIBERS)
		rc = -ENOSPC;
	else
		c->subs[c->nsubs++] = s;
	pthread_mutex_unlock(&c->notify_lock);
	return rc;
}

void
cache_unsubscribe(struct cache *c, struct cache_sub *s)
{
	pthread_mutex_lock(&c->notify_lock);
	for (size_t i = 0; i < c->nsubs; i++) {
		if (c->subs[i] == s) {
			c->subs[i] = c->subs[--c->nsubs];
			break;
		}
	}
	pthread_mutex_unlock(&c->notify_lock);
}

int
cache_sub_next(struct cache_sub *s, struct cache_event *ev, long timeout_ms)
{
	int64_t deadline = time_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	int rc = 0;

	memset(ev, 0, sizeof(*ev));
	pthread_mutex_lock(&s->lock);
	while (s->len == 0 && !s->overflowed && !s->closed) {
		if (timeout_ms < 0) {
			pthread_cond_wait(&s->cond, &s->lock);
		} else if (time_cond_wait_until(&s->cond, &s->lock, deadline) == ETIMEDOUT) {
			rc = -ETIMEDOUT;
			break;
		}
	}
	if (s->len > 0) {
		*ev = s->ring[s->head];
		s->head = (s->head + 1) % s->cap;
		s->len--;
		rc = 0;
	} else if (s->overflowed) {
		/* The queued events were delivered first; now say what was lost. */
		ev->change = CACHE_RESYNC;
		s->overflowed = false;
		rc = 0;
	} else if (s->closed) {
		rc = -ECANCELED;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void
cache_sub_close(struct cache_sub *s)
{
	pthread_mutex_lock(&s->lock);
	s->closed = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void
cache_sub_free(struct cache_sub *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->len; i++) {
		struct cache_event *ev = &s->ring[(s->head + i) % s->cap];
		cache_event_release(ev);
	}
	free(s->ring);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}

void
cache_event_release(struct cache_event *ev)
{
	if (ev == NULL)
		return;
	cache_obj_unref(ev->old_obj);
	cache_obj_unref(ev->new_obj);
	ev->old_obj = NULL;
	ev->new_obj = NULL;
}

/* ---- registry ---- */

bool
cache_all_synced(const char **first_unsynced)
{
	bool all = true;

	pthread_mutex_lock(&cache_registry_lock);
	for (size_t i = 0; i < cache_nregistry; i++) {
		if (!cache_synced(cache_registry[i])) {
			if (first_unsynced != NULL)
				*first_unsynced = cache_registry[i]->type->resource;
			all = false;
			break;
		}
	}
	pthread_mutex_unlock(&cache_registry_lock);
	return all;
}

bool
cache_ready_check(void *ctx, char *why, size_t why_len)
{
	const char *first = NULL;

	(void)ctx;
	if (cache_all_synced(&first))
		return true;
	snprintf(why, why_len, "%s not synced", first != NULL ? first : "cache");
	return false;
}

/* Longest probe (slots examined to reach a member) of a power-of-two linear-probing table. */
#define CACHE__LONGEST_PROBE(arr, cap, out) do {                                   \
	for (size_t i_ = 0; i_ < (cap); i_++) {                                     \
		if ((arr)[i_] == NULL)                                              \
			continue;                                                   \
		size_t probe_ = ((i_ - ((arr)[i_]->hash & ((cap) - 1))) & ((cap) - 1)) + 1; \
		if (probe_ > (out))                                                 \
			(out) = probe_;                                             \
	}                                                                           \
} while (0)

size_t
cache_longest_probe(struct cache *c, size_t *index_longest)
{
	size_t objs = 0, groups = 0;

	pthread_rwlock_rdlock(&c->lock);
	CACHE__LONGEST_PROBE(c->cur.slots, c->cur.cap, objs);
	CACHE__LONGEST_PROBE(c->cur.groups, c->cur.gcap, groups);
	pthread_rwlock_unlock(&c->lock);
	if (index_longest != NULL)
		*index_longest = groups;
	return objs;
}

static json_t *
cache__debug_entry(struct cache *c)
{
	struct kube_informer_status st = { 0 };
	size_t count = cache_count(c), bytes = atomic_load(&c->bytes);

	if (c->informer != NULL)
		kube_informer_status(c->informer, &st);
	return json_pack("{s:s,s:b,s:I,s:s,s:I,s:I,s:I,s:I,s:s,s:I,s:I}",
	    "resource", c->type->resource, "synced", cache_synced(c),
	    "count", (json_int_t)count, "resourceVersion", st.resource_version,
	    "lists", (json_int_t)st.lists, "watches", (json_int_t)st.watches,
	    "events", (json_int_t)st.events, "bookmarks", (json_int_t)st.bookmarks,
	    "lastError", st.last_error, "bytes", (json_int_t)bytes,
	    "bytesPerObject", (json_int_t)(count ? bytes / count : 0));
}

static int
cache__cmp_key(const void *a, const void *b)
{
	const struct cache_obj *const *x = a, *const *y = b;

	return strcmp((*x)->key, (*y)->key);
}

json_t *
cache_debug_json(const char *resource, size_t budget)
{
	json_t *out = NULL;

	pthread_mutex_lock(&cache_registry_lock);
	if (resource == NULL) {
		json_t *arr = json_array();
		size_t ient = 0, ibytes = 0;
		for (size_t i = 0; arr != NULL && i < cache_nregistry; i++)
			json_array_append_new(arr, cache__debug_entry(cache_registry[i]));
		intern_stats(&ient, &ibytes);
		out = json_pack("{s:o,s:{s:I,s:I}}", "caches", arr, "interned", "entries",
		    (json_int_t)ient, "bytes", (json_int_t)ibytes);
	} else {
		for (size_t i = 0; i < cache_nregistry; i++) {
			struct cache *c = cache_registry[i];
			struct cache_obj **objs = NULL;
			long n;
			json_t *arr;

			if (strcmp(c->type->resource, resource) != 0)
				continue;
			out = cache__debug_entry(c);
			size_t index_probe = 0, probe = cache_longest_probe(c, &index_probe);
			json_object_set_new(out, "longestProbe", json_integer((json_int_t)probe));
			json_object_set_new(out, "longestIndexProbe", json_integer((json_int_t)index_probe));
			n = cache_snapshot(c, NULL, &objs);
			arr = json_array();
			if (n > 0)
				qsort(objs, (size_t)n, sizeof(*objs), cache__cmp_key);
			size_t used = 0;
			for (long j = 0; arr != NULL && j < n; j++) {
				char rv[24];
				snprintf(rv, sizeof(rv), "%llu", (unsigned long long)objs[j]->rv);
				/* {"key":"…","rv":"…"}, plus a comma */
				used += strlen(objs[j]->key) + strlen(rv) + 20;
				if (budget > 0 && used > budget) {
					json_object_set_new(out, "truncated", json_true());
					break;
				}
				json_array_append_new(arr, json_pack("{s:s,s:s}", "key", objs[j]->key,
				    "rv", rv));
			}
			cache_objs_free(objs, n > 0 ? (size_t)n : 0);
			json_object_set_new(out, "objects", arr);
			break;
		}
	}
	pthread_mutex_unlock(&cache_registry_lock);
	return out;
}
