/* Every cache of the process: readiness (/readyz) and the /debug/caches view. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"
#include "stratos/intern.h"

#define CACHE_REGISTRY_MAX 16

static pthread_mutex_t cache_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache *cache_registry[CACHE_REGISTRY_MAX];
static size_t cache_nregistry;

void
cache__register(struct cache *c)
{
	pthread_mutex_lock(&cache_registry_lock);
	if (cache_nregistry < CACHE_REGISTRY_MAX)
		cache_registry[cache_nregistry++] = c;
	pthread_mutex_unlock(&cache_registry_lock);
}

void
cache__unregister(struct cache *c)
{
	pthread_mutex_lock(&cache_registry_lock);
	for (size_t i = 0; i < cache_nregistry; i++) {
		if (cache_registry[i] == c) {
			cache_registry[i] = cache_registry[--cache_nregistry];
			break;
		}
	}
	pthread_mutex_unlock(&cache_registry_lock);
}


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
