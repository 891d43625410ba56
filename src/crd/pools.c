/* The pools registry: immutable, reference-counted snapshots of every NodePool and AWSNodeClass. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/limits.h"
#include "stratos/pools.h"

#define POOLS_WORDS_MAX ((LIMITS_POOLS_MAX + 63) / 64)

struct pools {
	pthread_mutex_t swap_lock;      /* held only to load `current` and take a reference */
	pthread_mutex_t write_lock;     /* serialises writers; never held by readers */
	struct pools_snapshot *current;
	unsigned synced;                /* POOLS_SYNCED_* (under write_lock) */
};

/* One distinct (key, value) template label and the pools that carry it. */
struct pools__label_entry {
	const char *key;                /* borrowed from a nodepool the snapshot holds */
	const char *value;
	uint64_t hash;
	uint64_t *bits;                 /* words bits: bit i = snapshot->nodepools[i] */
};

struct pools__label_index {
	size_t mask;                    /* capacity - 1 (a power of two) */
	struct pools__label_entry *slots; /* open addressing; key NULL = empty */
	uint64_t *bitsets;
};

static uint64_t
pools__hash(const char *key, const char *value)
{
	uint64_t h = 1469598103934665603ULL;    /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
		h = (h ^ *p) * 1099511628211ULL;
	h = (h ^ 0xffu) * 1099511628211ULL;     /* separator no key or value byte can be */
	for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h;
}

static void
pools__index_free(struct pools__label_index *ix)
{
	if (ix == NULL)
		return;
	free(ix->slots);
	free(ix->bitsets);
	free(ix);
}

static const struct pools__label_entry *
pools__index_find(const struct pools__label_index *ix, const char *key, const char *value)
{
	uint64_t h = pools__hash(key, value);

	for (size_t i = h & ix->mask;; i = (i + 1) & ix->mask) {
		const struct pools__label_entry *e = &ix->slots[i];
		if (e->key == NULL)
			return NULL;
		if (e->hash == h && strcmp(e->key, key) == 0 && strcmp(e->value, value) == 0)
			return e;
	}
}

/* Builds the (key, value) → pools index of a snapshot whose nodepools are final. */
static int
pools__index_build(struct pools_snapshot *s)
{
	struct pools__label_index *ix;
	size_t total = 0, cap = 8, used = 0;

	for (size_t i = 0; i < s->nnodepools; i++)
		total += s->nodepools[i]->nlabels;
	while (cap < 2 * total)
		cap *= 2;
	s->words = s->nnodepools > 0 ? (s->nnodepools + 63) / 64 : 1;
	ix = calloc(1, sizeof(*ix));
	if (ix == NULL)
		return -ENOMEM;
	ix->mask = cap - 1;
	ix->slots = calloc(cap, sizeof(*ix->slots));
	ix->bitsets = calloc(total > 0 ? total * s->words : 1, sizeof(uint64_t));
	if (ix->slots == NULL || ix->bitsets == NULL) {
		pools__index_free(ix);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->nnodepools; i++) {
		const struct nodepool *np = s->nodepools[i];
		for (size_t l = 0; l < np->nlabels; l++) {
			const char *key = np->labels[l].key, *value = np->labels[l].value;
			uint64_t h = pools__hash(key, value);
			size_t j = h & ix->mask;
			struct pools__label_entry *e;

			for (;; j = (j + 1) & ix->mask) {
				e = &ix->slots[j];
				if (e->key == NULL || (e->hash == h && strcmp(e->key, key) == 0 &&
				    strcmp(e->value, value) == 0))
					break;
			}
			if (e->key == NULL) {
				e->key = key;
				e->value = value;
				e->hash = h;
				e->bits = ix->bitsets + used * s->words;
				used++;
			}
			e->bits[i / 64] |= 1ULL << (i % 64);
		}
	}
	s->labels = ix;
	return 0;
}

/*
 * The array work of the writers is the same for both kinds, so it is
 * written once: POOLS__ARRAY_FUNCS(T) defines, for struct T (with a name
 * member and T_ref, T_free and T_parse), these functions on arrays of
 * references sorted by name:
 *
 *   pools__free_T(v, n)      drops the n references and frees the array
 *   pools__edit_T(...)       a new array: cur with add inserted or replacing
 *                            its namesake, minus drop (-ENOENT when drop is
 *                            absent); add and drop NULL: a copy of cur
 *   pools__parse_T(...)      a JSON list of objects → a new sorted,
 *                            name-unique array (a later item wins over an
 *                            earlier one of the same name, as in a watch);
 *                            items that are not objects or have no name are
 *                            skipped and counted in *skipped
 */
#define POOLS__ARRAY_FUNCS(T)                                                   \
static void                                                                     \
pools__free_##T(struct T **v, size_t n)                                         \
{                                                                               \
	for (size_t i = 0; v != NULL && i < n; i++)                             \
		T##_free(v[i]);                                                 \
	free(v);                                                                \
}                                                                               \
                                                                                \
static int                                                                      \
pools__cmp_##T(const void *a, const void *b)                                    \
{                                                                               \
	const struct T *x = *(struct T *const *)a, *y = *(struct T *const *)b;  \
                                                                                \
	return strcmp(x->name, y->name);                                        \
}                                                                               \
                                                                                \
static int                                                                      \
pools__edit_##T(struct T *const *cur, size_t ncur, struct T *add,               \
    const char *drop, struct T ***out, size_t *nout)                            \
{                                                                               \
	struct T **v = malloc((ncur + 1) * sizeof(*v));                         \
	size_t n = 0;                                                           \
	bool placed = add == NULL, found = false;                               \
                                                                                \
	if (v == NULL)                                                          \
		return -ENOMEM;                                                 \
	for (size_t i = 0; i < ncur; i++) {                                     \
		int c = add != NULL ? strcmp(cur[i]->name, add->name) : -1;     \
                                                                                \
		if (drop != NULL && strcmp(cur[i]->name, drop) == 0) {          \
			found = true;                                           \
			continue;                                               \
		}                                                               \
		if (!placed && c >= 0) {                                        \
			v[n++] = T##_ref(add);                                  \
			placed = true;                                          \
			if (c == 0)                                             \
				continue;                                       \
		}                                                               \
		v[n++] = T##_ref(cur[i]);                                       \
	}                                                                       \
	if (!placed)                                                            \
		v[n++] = T##_ref(add);                                          \
	if (drop != NULL && !found) {                                           \
		pools__free_##T(v, n);                                          \
		return -ENOENT;                                                 \
	}                                                                       \
	*out = v;                                                               \
	*nout = n;                                                              \
	return 0;                                                               \
}                                                                               \
                                                                                \
static int                                                                      \
pools__parse_##T(const json_t *items, struct T ***out, size_t *nout,            \
    size_t *skipped)                                                            \
{                                                                               \
	size_t n = 0, count = json_array_size(items);                           \
	struct T **v;                                                           \
	int rc;                                                                 \
                                                                                \
	if (count > LIMITS_POOLS_MAX)                                           \
		return -ENOSPC;                                                 \
	v = malloc((count + 1) * sizeof(*v));                                   \
	if (v == NULL)                                                          \
		return -ENOMEM;                                                 \
	for (size_t i = 0; i < count; i++) {                                    \
		struct T *obj;                                                  \
		rc = T##_parse(json_array_get(items, i), NULL, &obj);           \
		if (rc == -ENOMEM) {                                            \
			pools__free_##T(v, n);                                  \
			return rc;                                              \
		}                                                               \
		if (rc < 0 || obj->name[0] == '\0') {                           \
			T##_free(obj);                                          \
			(*skipped)++;                                           \
			continue;                                               \
		}                                                               \
		/* Keep the later of two namesakes. */                          \
		for (size_t j = 0; j < n; j++) {                                \
			if (strcmp(v[j]->name, obj->name) == 0) {               \
				T##_free(v[j]);                                 \
				v[j] = v[--n];                                  \
				break;                                          \
			}                                                       \
		}                                                               \
		v[n++] = obj;                                                   \
	}                                                                       \
	qsort(v, n, sizeof(*v), pools__cmp_##T);                                \
	*out = v;                                                               \
	*nout = n;                                                              \
	return 0;                                                               \
}

POOLS__ARRAY_FUNCS(nodepool)
POOLS__ARRAY_FUNCS(nodeclass)

static void
pools__snapshot_destroy(struct pools_snapshot *s)
{
	pools__free_nodepool(s->nodepools, s->nnodepools);
	pools__free_nodeclass(s->nodeclasses, s->nnodeclasses);
	pools__index_free(s->labels);
	free(s);
}

void
pools_release(const struct pools_snapshot *snap)
{
	struct pools_snapshot *s = (struct pools_snapshot *)snap;

	if (s != NULL && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0)
		pools__snapshot_destroy(s);
}

/*
 * Publishes a snapshot made of the given arrays (their references are
 * taken over, even on failure). Called with write_lock held.
 */
static int
pools__publish(struct pools *p, struct nodepool **nps, size_t nnps, struct nodeclass **ncs,
    size_t nncs)
{
	struct pools_snapshot *s = calloc(1, sizeof(*s)), *old;
	int rc;

	if (s == NULL) {
		pools__free_nodepool(nps, nnps);
		pools__free_nodeclass(ncs, nncs);
		return -ENOMEM;
	}
	s->refs = 1;
	s->nodepools = nps;
	s->nnodepools = nnps;
	s->nodeclasses = ncs;
	s->nnodeclasses = nncs;
	if ((rc = pools__index_build(s)) < 0) {
		pools__snapshot_destroy(s);
		return rc;
	}
	s->loaded = (p->synced & (POOLS_SYNCED_NODEPOOLS | POOLS_SYNCED_NODECLASSES)) ==
	    (POOLS_SYNCED_NODEPOOLS | POOLS_SYNCED_NODECLASSES);
	pthread_mutex_lock(&p->swap_lock);
	old = p->current;
	s->generation = old != NULL ? old->generation + 1 : 0;
	p->current = s;
	pthread_mutex_unlock(&p->swap_lock);
	pools_release(old);
	return 0;
}

struct pools *
pools_new(void)
{
	struct pools *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	pthread_mutex_init(&p->swap_lock, NULL);
	pthread_mutex_init(&p->write_lock, NULL);
	if (pools__publish(p, NULL, 0, NULL, 0) < 0) {
		pools_free(p);
		return NULL;
	}
	return p;
}

void
pools_free(struct pools *p)
{
	if (p == NULL)
		return;
	pools_release(p->current);
	pthread_mutex_destroy(&p->swap_lock);
	pthread_mutex_destroy(&p->write_lock);
	free(p);
}

const struct pools_snapshot *
pools_acquire(struct pools *p)
{
	struct pools_snapshot *s;

	pthread_mutex_lock(&p->swap_lock);
	s = p->current;
	__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&p->swap_lock);
	return s;
}

uint64_t
pools_generation(struct pools *p)
{
	const struct pools_snapshot *s = pools_acquire(p);
	uint64_t g = s->generation;

	pools_release(s);
	return g;
}

bool
pools_loaded(struct pools *p)
{
	const struct pools_snapshot *s = pools_acquire(p);
	bool loaded = s->loaded;

	pools_release(s);
	return loaded;
}

/* --- lookups --- */

#define POOLS__BSEARCH(arr, n, name, out) do {                          \
	size_t lo = 0, hi = (n);                                        \
	(out) = NULL;                                                   \
	while (lo < hi) {                                               \
		size_t mid = lo + (hi - lo) / 2;                        \
		int c = strcmp((arr)[mid]->name, (name));               \
		if (c == 0) { (out) = (arr)[mid]; break; }              \
		if (c < 0) lo = mid + 1; else hi = mid;                 \
	}                                                               \
} while (0)

const struct nodepool *
pools_find_nodepool(const struct pools_snapshot *snap, const char *name)
{
	const struct nodepool *np;

	POOLS__BSEARCH(snap->nodepools, snap->nnodepools, name, np);
	return np;
}

const struct nodeclass *
pools_find_nodeclass(const struct pools_snapshot *snap, const char *name)
{
	const struct nodeclass *nc;

	POOLS__BSEARCH(snap->nodeclasses, snap->nnodeclasses, name, nc);
	return nc;
}

size_t
pools_match_labels(const struct pools_snapshot *snap, const char *const *keys,
    const char *const *values, size_t n, const struct nodepool **out, size_t max)
{
	uint64_t acc[POOLS_WORDS_MAX];
	size_t count = 0;

	if (n == 0 || snap->nnodepools == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const struct pools__label_entry *e = pools__index_find(snap->labels, keys[i], values[i]);
		if (e == NULL)
			return 0;
		for (size_t w = 0; w < snap->words; w++)
			acc[w] = i == 0 ? e->bits[w] : acc[w] & e->bits[w];
	}
	for (size_t w = 0; w < snap->words; w++) {
		for (uint64_t bits = acc[w]; bits != 0; bits &= bits - 1) {
			if (count < max)
				out[count] = snap->nodepools[w * 64 + (size_t)__builtin_ctzll(bits)];
			count++;
		}
	}
	return count;
}

/* --- writers --- */

/*
 * One write: the new nodepools and/or nodeclasses (the set_ flags say which;
 * the other kind is carried over from the current snapshot), then publish.
 * Takes over the given references. Called with write_lock held.
 */
static int
pools__commit(struct pools *p, struct nodepool **nps, size_t nnps, bool set_nps,
    struct nodeclass **ncs, size_t nncs, bool set_ncs)
{
	const struct pools_snapshot *cur = p->current;

	if (!set_nps && pools__edit_nodepool(cur->nodepools, cur->nnodepools, NULL, NULL,
	    &nps, &nnps) < 0)
		nps = NULL;
	if (!set_ncs && pools__edit_nodeclass(cur->nodeclasses, cur->nnodeclasses, NULL, NULL,
	    &ncs, &nncs) < 0)
		ncs = NULL;
	if (nps == NULL || ncs == NULL) {
		pools__free_nodepool(nps, nnps);
		pools__free_nodeclass(ncs, nncs);
		return -ENOMEM;
	}
	return pools__publish(p, nps, nnps, ncs, nncs);
}

int
pools_upsert_nodepool(struct pools *p, const json_t *obj, struct fieldcheck_report *rep)
{
	struct nodepool *np, **v;
	size_t n;
	int rc;

	if ((rc = nodepool_parse(obj, rep, &np)) < 0)
		return rc;
	if (np->name[0] == '\0') {
		nodepool_free(np);
		return -EINVAL;
	}
	pthread_mutex_lock(&p->write_lock);
	if (p->current->nnodepools >= LIMITS_POOLS_MAX && pools_find_nodepool(p->current, np->name) == NULL)
		rc = -ENOSPC;
	else if ((rc = pools__edit_nodepool(p->current->nodepools, p->current->nnodepools, np, NULL,
	    &v, &n)) == 0)
		rc = pools__commit(p, v, n, true, NULL, 0, false);
	pthread_mutex_unlock(&p->write_lock);
	nodepool_free(np);
	return rc;
}

int
pools_delete_nodepool(struct pools *p, const char *name)
{
	struct nodepool **v;
	size_t n;
	int rc;

	pthread_mutex_lock(&p->write_lock);
	if ((rc = pools__edit_nodepool(p->current->nodepools, p->current->nnodepools, NULL,
	    name, &v, &n)) == 0)
		rc = pools__commit(p, v, n, true, NULL, 0, false);
	pthread_mutex_unlock(&p->write_lock);
	return rc;
}

int
pools_upsert_nodeclass(struct pools *p, const json_t *obj, struct fieldcheck_report *rep)
{
	struct nodeclass *nc, **v;
	size_t n;
	int rc;

	if ((rc = nodeclass_parse(obj, rep, &nc)) < 0)
		return rc;
	if (nc->name[0] == '\0') {
		nodeclass_free(nc);
		return -EINVAL;
	}
	pthread_mutex_lock(&p->write_lock);
	if (p->current->nnodeclasses >= LIMITS_POOLS_MAX &&
	    pools_find_nodeclass(p->current, nc->name) == NULL)
		rc = -ENOSPC;
	else if ((rc = pools__edit_nodeclass(p->current->nodeclasses, p->current->nnodeclasses, nc,
	    NULL, &v, &n)) == 0)
		rc = pools__commit(p, NULL, 0, false, v, n, true);
	pthread_mutex_unlock(&p->write_lock);
	nodeclass_free(nc);
	return rc;
}

int
pools_delete_nodeclass(struct pools *p, const char *name)
{
	struct nodeclass **v;
	size_t n;
	int rc;

	pthread_mutex_lock(&p->write_lock);
	if ((rc = pools__edit_nodeclass(p->current->nodeclasses, p->current->nnodeclasses,
	    NULL, name, &v, &n)) == 0)
		rc = pools__commit(p, NULL, 0, false, v, n, true);
	pthread_mutex_unlock(&p->write_lock);
	return rc;
}

int
pools_replace_nodepools(struct pools *p, const json_t *items, size_t *skipped)
{
	struct nodepool **v;
	size_t n, skip = 0;
	int rc;

	if (!json_is_array(items))
		return -EINVAL;
	if ((rc = pools__parse_nodepool(items, &v, &n, &skip)) < 0)
		return rc;
	if (skipped != NULL)
		*skipped = skip;
	pthread_mutex_lock(&p->write_lock);
	p->synced |= POOLS_SYNCED_NODEPOOLS;
	rc = pools__commit(p, v, n, true, NULL, 0, false);
	pthread_mutex_unlock(&p->write_lock);
	return rc;
}

int
pools_replace_nodeclasses(struct pools *p, const json_t *items, size_t *skipped)
{
	struct nodeclass **v;
	size_t n, skip = 0;
	int rc;

	if (!json_is_array(items))
		return -EINVAL;
	if ((rc = pools__parse_nodeclass(items, &v, &n, &skip)) < 0)
		return rc;
	if (skipped != NULL)
		*skipped = skip;
	pthread_mutex_lock(&p->write_lock);
	p->synced |= POOLS_SYNCED_NODECLASSES;
	rc = pools__commit(p, NULL, 0, false, v, n, true);
	pthread_mutex_unlock(&p->write_lock);
	return rc;
}

int
pools_replace_all(struct pools *p, const json_t *docs)
{
	json_t *pools_items = json_array(), *class_items = json_array();
	struct nodepool **nps = NULL;
	struct nodeclass **ncs = NULL;
	size_t nnps = 0, nncs = 0, skipped = 0, i;
	json_t *doc;
	int rc = 0;

	if (pools_items == NULL || class_items == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (!json_is_array(docs)) {
		rc = -EINVAL;
		goto out;
	}
	json_array_foreach(docs, i, doc) {
		const char *kind = json_string_value(json_object_get(doc, "kind"));
		if (kind != NULL && strcmp(kind, NODEPOOL_KIND) == 0)
			rc = json_array_append(pools_items, doc);
		else if (kind != NULL && strcmp(kind, NODECLASS_KIND) == 0)
			rc = json_array_append(class_items, doc);
		else
			rc = -EINVAL;
		if (rc < 0)
			goto out;
	}
	if ((rc = pools__parse_nodepool(pools_items, &nps, &nnps, &skipped)) < 0)
		goto out;
	if ((rc = pools__parse_nodeclass(class_items, &ncs, &nncs, &skipped)) < 0) {
		pools__free_nodepool(nps, nnps);
		goto out;
	}
	pthread_mutex_lock(&p->write_lock);
	p->synced |= POOLS_SYNCED_NODEPOOLS | POOLS_SYNCED_NODECLASSES;
	rc = pools__publish(p, nps, nnps, ncs, nncs);
	pthread_mutex_unlock(&p->write_lock);
out:
	json_decref(pools_items);
	json_decref(class_items);
	return rc;
}

int
pools_mark_synced(struct pools *p, unsigned flags)
{
	int rc;

	pthread_mutex_lock(&p->write_lock);
	p->synced |= flags & (POOLS_SYNCED_NODEPOOLS | POOLS_SYNCED_NODECLASSES);
	rc = pools__commit(p, NULL, 0, false, NULL, 0, false);
	pthread_mutex_unlock(&p->write_lock);
	return rc;
}
