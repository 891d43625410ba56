/* Feeding a cache from its informer: relists built aside and swapped in, watch events applied. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"
#include "stratos/log.h"
#include "stratos/metrics.h"


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
