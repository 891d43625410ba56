/* The cache's tables: open addressing by key, plus the objects grouped by their index value. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"
#include "stratos/intern.h"


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

struct cache__group *
cache__group_find(const struct cache__table *t, unsigned which, const char *key, uint32_t hash,
    size_t *slot)
{
	const struct cache__index *x = &t->idx[which];
	size_t mask = x->gcap - 1;

	if (x->gcap == 0)
		return NULL;
	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		struct cache__group *g = x->groups[i];
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
cache__group_grow(struct cache__index *x)
{
	size_t ncap = x->gcap ? x->gcap * 2 : 16;
	struct cache__group **ng = calloc(ncap, sizeof(*ng));

	if (ng == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < x->gcap; i++) {
		struct cache__group *g = x->groups[i];
		if (g == NULL)
			continue;
		size_t j = g->hash & (ncap - 1);
		while (ng[j] != NULL)
			j = (j + 1) & (ncap - 1);
		ng[j] = g;
	}
	free(x->groups);
	x->groups = ng;
	x->gcap = ncap;
	return 0;
}

static void cache__index_remove_one(struct cache__table *t, unsigned which, struct cache_obj *o);

static int
cache__index_add_one(struct cache__table *t, unsigned which, struct cache_obj *o)
{
	struct cache__index *x = &t->idx[which];
	const char *value = o->index[which];
	uint32_t h;
	struct cache__group *g;

	if (value == NULL)
		return 0;
	h = cache__hash(value);
	g = cache__group_find(t, which, value, h, NULL);
	if (g == NULL) {
		if ((x->gcount + 1) * 4 > x->gcap * 3 && cache__group_grow(x) < 0)
			return -ENOMEM;
		g = calloc(1, sizeof(*g));
		if (g == NULL)
			return -ENOMEM;
		g->key = intern_ref(value);
		g->hash = h;
		size_t j = h & (x->gcap - 1);
		while (x->groups[j] != NULL)
			j = (j + 1) & (x->gcap - 1);
		x->groups[j] = g;
		x->gcount++;
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

/* Files o under each of its index values; all or nothing. */
static int
cache__index_add(struct cache__table *t, struct cache_obj *o)
{
	for (unsigned w = 0; w < CACHE_INDEXES; w++) {
		if (cache__index_add_one(t, w, o) < 0) {
			while (w-- > 0)
				cache__index_remove_one(t, w, o);
			return -ENOMEM;
		}
	}
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

/*
 * Removal scans the group (swap with the last): O(group size), which the
 * groups keep small (a node's pods) or short-lived (a pool's pending pods).
 */
static void
cache__index_remove_one(struct cache__table *t, unsigned which, struct cache_obj *o)
{
	struct cache__index *x = &t->idx[which];
	struct cache__group *g;
	size_t slot = 0;

	if (o->index[which] == NULL)
		return;
	g = cache__group_find(t, which, o->index[which], cache__hash(o->index[which]), &slot);
	if (g == NULL)
		return;
	for (uint32_t i = 0; i < g->n; i++) {
		if (g->items[i] == o) {
			g->items[i] = g->items[--g->n];
			break;
		}
	}
	if (g->n == 0) {
		CACHE__BACKSHIFT(x->groups, x->gcap, slot, CACHE__HASH_OF);
		x->gcount--;
		intern_release(g->key);
		free(g->items);
		free(g);
	}
}

static void
cache__index_remove(struct cache__table *t, struct cache_obj *o)
{
	for (unsigned w = 0; w < CACHE_INDEXES; w++)
		cache__index_remove_one(t, w, o);
}

/*
 * Puts o (reference stolen) in t, replacing an object with the same key,
 * which is returned (its reference now the caller's). *rc is set on ENOMEM
 * (o is then not inserted and still the caller's).
 */
struct cache_obj *
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
struct cache_obj *
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

struct cache_obj *
cache__table_get(const struct cache__table *t, const char *key)
{
	size_t i = cache__find(t, key, cache__hash(key));

	return i == SIZE_MAX ? NULL : t->slots[i];
}

void
cache__table_clear(struct cache__table *t)
{
	for (size_t i = 0; i < t->cap; i++)
		cache_obj_unref(t->slots[i]);
	for (unsigned w = 0; w < CACHE_INDEXES; w++) {
		struct cache__index *x = &t->idx[w];
		for (size_t i = 0; i < x->gcap; i++) {
			if (x->groups[i] != NULL) {
				intern_release(x->groups[i]->key);
				free(x->groups[i]->items);
				free(x->groups[i]);
			}
		}
		free(x->groups);
	}
	free(t->slots);
	memset(t, 0, sizeof(*t));
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
	for (unsigned w = 0; w < CACHE_INDEXES; w++)
		CACHE__LONGEST_PROBE(c->cur.idx[w].groups, c->cur.idx[w].gcap, groups);
	pthread_rwlock_unlock(&c->lock);
	if (index_longest != NULL)
		*index_longest = groups;
	return objs;
}
