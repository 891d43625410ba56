/* Node cache: parses Nodes into compact node_info objects, indexed by pool, with write-through. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/intern.h"
#include "stratos/jsonpatch.h"
#include "stratos/limits.h"
#include "stratos/nodestate.h"
#include "stratos/node_cache.h"
#include "stratos/timeutil.h"

static void
node__destroy(struct cache_obj *o)
{
	struct node_info *n = (struct node_info *)o;

	intern_release(n->obj.index[0]);
	intern_release(n->state);
	intern_release(n->zone);
	intern_release(n->instance_type);
	intern_release(n->last_workload);
	for (uint32_t i = 0; i < 2 * n->nlabels; i++)
		intern_release(n->labels[i]);
	for (uint32_t i = 0; i < n->ntaints; i++) {
		intern_release(n->taints[i].key);
		intern_release(n->taints[i].value);
	}
	for (uint32_t i = 0; i < 2 * n->nannotations; i++)
		free((char *)n->annotations[i]);
	resources_release(&n->allocatable);
	reservations_free(n->reserved);
	free(n->labels);
	free(n->taints);
	free(n->annotations);
	free((char *)n->obj.key);
	free((char *)n->uid);
	free((char *)n->instance_id);
	free((char *)n->provider_id);
	free(n);
}

static size_t
node__size(const struct cache_obj *o)
{
	const struct node_info *n = (const struct node_info *)o;
	size_t s = sizeof(*n) + strlen(n->obj.key) + 1 + strlen(n->uid) + 1 +
	    2 * n->nlabels * sizeof(char *) + n->ntaints * sizeof(struct kube_taint) +
	    2 * n->nannotations * sizeof(char *);

	for (uint32_t i = 0; i < 2 * n->nannotations; i++)
		s += strlen(n->annotations[i]) + 1;
	if (n->provider_id != NULL)
		s += strlen(n->provider_id) + 1;
	if (n->instance_id != NULL)
		s += strlen(n->instance_id) + 1;
	return s;
}

static struct cache_obj *
node__parse(json_t *obj, int *rc)
{
	struct node_info *n = node_info_parse(obj, rc);

	return n != NULL ? &n->obj : NULL;
}

/* Exactly what node_info_parse reads (jsonprune allow-list); images are most of a Node. */
const char *const NODE_CACHE_FIELDS[] = {
	"+metadata.name", "+metadata.uid", "+metadata.resourceVersion", "+metadata.labels",
	"+metadata.annotations", "+metadata.creationTimestamp", "+metadata.deletionTimestamp",
	"+spec.taints", "+spec.unschedulable", "+spec.providerID",
	"+status.allocatable", "+status.conditions",
	NULL,
};

const struct cache_type NODE_CACHE_TYPE = {
	.resource = "nodes",
	.prune = NODE_CACHE_FIELDS,
	.parse = node__parse,
	.destroy = node__destroy,
	.size = node__size,
};

static int64_t
node__time(const char *s)
{
	int64_t ms = 0;

	if (s != NULL)
		(void)time_parse_rfc3339(s, &ms);
	return ms;
}

static int
node__label_cmp(const void *a, const void *b)
{
	const char *const *x = a, *const *y = b;

	return strcmp(x[0], y[0]);
}

static int
node__labels(struct node_info *n, json_t *labels)
{
	size_t count = json_object_size(labels), i = 0;
	const char *key;
	json_t *val;

	if (count > LIMITS_NODE_LABELS)
		return -EINVAL;
	if (count == 0)
		return 0;
	n->labels = calloc(2 * count, sizeof(*n->labels));
	if (n->labels == NULL)
		return -ENOMEM;
	json_object_foreach(labels, key, val) {
		if (!json_is_string(val))
			return -EINVAL;
		n->labels[2 * i] = intern_str(key);
		n->labels[2 * i + 1] = intern_str(json_string_value(val));
		n->nlabels++;
		if (n->labels[2 * i] == NULL || n->labels[2 * i + 1] == NULL)
			return -ENOMEM;
		i++;
	}
	qsort(n->labels, n->nlabels, 2 * sizeof(*n->labels), node__label_cmp);
	return 0;
}

static int
node__annotations(struct node_info *n, json_t *annotations)
{
	const char *key;
	json_t *val;
	size_t count = 0, i = 0;

	json_object_foreach(annotations, key, val)
		if (strncmp(key, NODESTATE_PREFIX, strlen(NODESTATE_PREFIX)) == 0 && json_is_string(val))
			count++;
	if (count == 0)
		return 0;
	n->annotations = calloc(2 * count, sizeof(*n->annotations));
	if (n->annotations == NULL)
		return -ENOMEM;
	json_object_foreach(annotations, key, val) {
		const char *v = json_string_value(val);
		if (strncmp(key, NODESTATE_PREFIX, strlen(NODESTATE_PREFIX)) != 0 || v == NULL)
			continue;
		n->annotations[2 * i] = strdup(key);
		n->annotations[2 * i + 1] = strdup(v);
		n->nannotations++;
		if (n->annotations[2 * i] == NULL || n->annotations[2 * i + 1] == NULL)
			return -ENOMEM;
		i++;
	}
	n->state_since_ms = node__time(node_info_annotation(n, NODESTATE_ANN_STATE_SINCE));
	n->started_at_ms = node__time(node_info_annotation(n, NODESTATE_ANN_STARTED_AT));
	n->empty_since_ms = node__time(node_info_annotation(n, NODESTATE_ANN_EMPTY_SINCE));
	n->started_for = node_info_annotation(n, NODESTATE_ANN_STARTED_FOR);
	n->reservations = node_info_annotation(n, NODESTATE_ANN_RESERVATIONS);
	/* Parsed here, once per version of the node, not on every filter call. */
	if (n->reservations != NULL) {
		int rc = reservations_parse(n->reservations, &n->reserved);

		if (rc == -ENOMEM)
			return rc;
		if (rc < 0)
			n->reservations_invalid = true;
	}
	if (node_info_annotation(n, NODESTATE_ANN_LAST_WORKLOAD) != NULL &&
	    (n->last_workload = intern_str(node_info_annotation(n, NODESTATE_ANN_LAST_WORKLOAD))) == NULL)
		return -ENOMEM;
	return 0;
}

static int
node__taints(struct node_info *n, json_t *taints)
{
	size_t count = json_array_size(taints), i;
	json_t *t;

	if (count > LIMITS_NODE_TAINTS)
		return -EINVAL;
	if (count == 0)
		return 0;
	n->taints = calloc(count, sizeof(*n->taints));
	if (n->taints == NULL)
		return -ENOMEM;
	json_array_foreach(taints, i, t) {
		struct kube_taint *kt = &n->taints[n->ntaints];
		const char *key = json_string_value(json_object_get(t, "key"));
		const char *value = json_string_value(json_object_get(t, "value"));
		const char *effect = json_string_value(json_object_get(t, "effect"));

		/* A taint, unlike a toleration, names its effect. */
		if (key == NULL || kube_effect_parse(effect, &kt->effect) < 0 ||
		    kt->effect == KUBE_EFFECT_ANY)
			return -EINVAL;
		kt->added_ms = node__time(json_string_value(json_object_get(t, "timeAdded")));
		n->ntaints++;
		if ((kt->key = intern_str(key)) == NULL)
			return -ENOMEM;
		if (value != NULL && value[0] != '\0' && (kt->value = intern_str(value)) == NULL)
			return -ENOMEM;
	}
	return 0;
}

static const char *
node__strdup_opt(const char *s, int *rc)
{
	char *d;

	if (s == NULL || s[0] == '\0')
		return NULL;
	d = strdup(s);
	if (d == NULL)
		*rc = -ENOMEM;
	return d;
}

struct node_info *
node_info_parse(json_t *node, int *rc)
{
	json_t *meta = json_object_get(node, "metadata"), *spec = json_object_get(node, "spec");
	json_t *status = json_object_get(node, "status"), *c;
	const char *name = json_string_value(json_object_get(meta, "name"));
	const char *uid = json_string_value(json_object_get(meta, "uid"));
	const char *v;
	struct node_info *n;
	size_t i;
	int r = 0;

	*rc = -EINVAL;
	if (name == NULL || name[0] == '\0')
		return NULL;
	n = calloc(1, sizeof(*n));
	if (n == NULL) {
		*rc = -ENOMEM;
		return NULL;
	}
	n->obj.key = strdup(name);
	n->uid = strdup(uid != NULL ? uid : "");
	if (n->obj.key == NULL || n->uid == NULL) {
		free((char *)n->obj.key);
		free((char *)n->uid);
		free(n);
		*rc = -ENOMEM;
		return NULL;
	}
	cache_obj_init(&n->obj, &NODE_CACHE_TYPE);
	if (cache_parse_rv(json_string_value(json_object_get(meta, "resourceVersion")),
	    &n->obj.rv) < 0) {
		r = -EINVAL;
		goto fail;
	}
	n->has_labels = json_is_object(json_object_get(meta, "labels"));
	n->has_annotations = json_is_object(json_object_get(meta, "annotations"));
	if ((r = node__labels(n, json_object_get(meta, "labels"))) < 0 ||
	    (r = node__annotations(n, json_object_get(meta, "annotations"))) < 0 ||
	    (r = node__taints(n, json_object_get(spec, "taints"))) < 0)
		goto fail;
	if ((v = node_info_label(n, NODESTATE_LABEL_POOL)) != NULL && v[0] != '\0')
		n->obj.index[0] = intern_ref(v);
	if ((v = node_info_label(n, NODESTATE_LABEL_STATE)) != NULL && v[0] != '\0')
		n->state = intern_ref(v);
	n->zone = intern_ref(node_info_label(n, KUBE_LABEL_ZONE));
	n->instance_type = intern_ref(node_info_label(n, KUBE_LABEL_INSTANCE_TYPE));
	n->instance_id = node__strdup_opt(node_info_label(n, NODESTATE_LABEL_INSTANCE_ID), &r);
	n->provider_id = node__strdup_opt(json_string_value(json_object_get(spec, "providerID")),
	    &r);
	if (r < 0)
		goto fail;
	n->unschedulable = json_is_true(json_object_get(spec, "unschedulable"));
	if ((r = resources_parse_list(json_object_get(status, "allocatable"),
	    &n->allocatable)) < 0)
		goto fail;
	n->created_ms = node__time(json_string_value(json_object_get(meta, "creationTimestamp")));
	n->deleted_ms = node__time(json_string_value(json_object_get(meta, "deletionTimestamp")));
	json_array_foreach(json_object_get(status, "conditions"), i, c) {
		const char *type = json_string_value(json_object_get(c, "type"));
		enum kube_cond st = kube_cond_parse(json_string_value(json_object_get(c, "status")));
		if (type == NULL)
			continue;
		if (strcmp(type, "Ready") == 0) {
			n->ready = (uint8_t)st;
			n->ready_since_ms = node__time(json_string_value(json_object_get(c,
			    "lastTransitionTime")));
		} else if (strcmp(type, "NetworkUnavailable") == 0) {
			n->network_unavailable = (uint8_t)st;
		} else if (strcmp(type, "NetworkingReady") == 0) {
			n->networking_ready = (uint8_t)st;
		}
	}
	*rc = 0;
	return n;
fail:
	*rc = r;
	node__destroy(&n->obj);
	return NULL;
}

const char *
node_info_label(const struct node_info *n, const char *key)
{
	size_t lo = 0, hi = n->nlabels;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int cmp = strcmp(n->labels[2 * mid], key);
		if (cmp == 0)
			return n->labels[2 * mid + 1];
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const char *
node_info_annotation(const struct node_info *n, const char *key)
{
	for (uint32_t i = 0; i < n->nannotations; i++)
		if (strcmp(n->annotations[2 * i], key) == 0)
			return n->annotations[2 * i + 1];
	return NULL;
}

bool
node_info_has_taint(const struct node_info *n, const char *key, enum kube_taint_effect effect)
{
	for (uint32_t i = 0; i < n->ntaints; i++)
		if (strcmp(n->taints[i].key, key) == 0 &&
		    (effect == KUBE_EFFECT_ANY || n->taints[i].effect == effect))
			return true;
	return false;
}

bool
node_info_network_ready(const struct node_info *n)
{
	if (n->network_unavailable == KUBE_COND_FALSE || n->networking_ready == KUBE_COND_TRUE)
		return true;
	return n->network_unavailable == KUBE_COND_ABSENT &&
	    n->networking_ready == KUBE_COND_ABSENT;
}

static const char *
node__label_fn(void *ctx, const char *key)
{
	const struct node_info *n = ctx;

	if (strcmp(key, "metadata.name") == 0)
		return n->obj.key;
	return node_info_label(n, key);
}

bool
node_info_selected_by(const struct node_info *n, const struct pod_info *p)
{
	return pod_info_selects(p, node__label_fn, (void *)n);
}

/* ---- transition patches ---- */

static const char *const NODE_EFFECTS[] = { "", "NoSchedule", "PreferNoSchedule", "NoExecute" };

void
node_patch_init(struct node_patch *p, const struct node_info *n)
{
	memset(p, 0, sizeof(*p));
	p->node = n;
	p->ops = jsonpatch_new();
	p->taints = json_array();
	if (p->ops == NULL || p->taints == NULL)
		p->error = -ENOMEM;
	for (uint32_t i = 0; p->error == 0 && i < n->ntaints; i++) {
		const struct kube_taint *t = &n->taints[i];
		json_t *jt = json_pack("{s:s,s:s}", "key", t->key, "effect", NODE_EFFECTS[t->effect]);
		if (jt != NULL && t->value != NULL)
			json_object_set_new(jt, "value", json_string(t->value));
		if (jt != NULL && t->added_ms > 0) {
			char when[TIME_RFC3339_LEN];
			time_format_rfc3339(t->added_ms, when);
			json_object_set_new(jt, "timeAdded", json_string(when));
		}
		if (jt == NULL || json_array_append_new(p->taints, jt) < 0)
			p->error = -ENOMEM;
	}
}

static void
node_patch__op(struct node_patch *p, const char *op, json_t *value, const char *a,
    const char *b, const char *c)
{
	int rc;

	if (p->error != 0) {
		json_decref(value);
		return;
	}
	rc = c != NULL ? jsonpatch_append(p->ops, op, value, a, b, c, NULL) :
	    jsonpatch_append(p->ops, op, value, a, b, NULL);
	if (rc < 0)
		p->error = rc;
}

/* Sets key in a map the node lacks: collected and added whole by node_patch_take. */
static void
node_patch__whole(struct node_patch *p, json_t **map, const char *key, const char *value)
{
	if (p->error != 0)
		return;
	if (*map == NULL && (*map = json_object()) == NULL) {
		p->error = -ENOMEM;
		return;
	}
	if (value != NULL)
		json_object_set_new(*map, key, json_string(value));
	else
		json_object_del(*map, key);
}

/*
 * Sets (value) or removes (value NULL) key in metadata.<map>. A node that
 * lacks the map gets it whole from node_patch_take (a JSON Patch cannot add
 * into a member that is not there); removing a key the node does not have
 * would fail the patch, so it is left out.
 */
static void
node_patch__meta(struct node_patch *p, const char *map, bool has_map, json_t **whole,
    const char *key, const char *value, bool has_key)
{
	if (!has_map && (value != NULL || *whole != NULL))
		node_patch__whole(p, whole, key, value);
	else if (!has_map)
		return;                 /* removing from a map the node does not have: nothing to do */
	else if (value != NULL)
		node_patch__op(p, "add", json_string(value), "metadata", map, key);
	else if (has_key)
		node_patch__op(p, "remove", NULL, "metadata", map, key);
}

void
node_patch_set_label(struct node_patch *p, const char *key, const char *value)
{
	node_patch__meta(p, "labels", p->node->has_labels, &p->labels, key, value, true);
}

void
node_patch_remove_label(struct node_patch *p, const char *key)
{
	node_patch__meta(p, "labels", p->node->has_labels, &p->labels, key, NULL,
	    node_info_label(p->node, key) != NULL);
}

void
node_patch_set_annotation(struct node_patch *p, const char *key, const char *value)
{
	node_patch__meta(p, "annotations", p->node->has_annotations, &p->annotations, key, value,
	    true);
}

void
node_patch_remove_annotation(struct node_patch *p, const char *key)
{
	node_patch__meta(p, "annotations", p->node->has_annotations, &p->annotations, key, NULL,
	    node_info_annotation(p->node, key) != NULL);
}

void
node_patch_remove_taint(struct node_patch *p, const char *key)
{
	for (size_t i = json_array_size(p->taints); i-- > 0;) {
		const char *k = json_string_value(json_object_get(json_array_get(p->taints, i), "key"));
		if (k != NULL && strcmp(k, key) == 0) {
			json_array_remove(p->taints, i);
			p->taints_changed = true;
		}
	}
}

void
node_patch_remove_taint_effect(struct node_patch *p, const char *key,
    enum kube_taint_effect effect)
{
	for (size_t i = json_array_size(p->taints); effect != KUBE_EFFECT_ANY && i-- > 0;) {
		json_t *t = json_array_get(p->taints, i);
		const char *k = json_string_value(json_object_get(t, "key"));
		const char *e = json_string_value(json_object_get(t, "effect"));
		if (k != NULL && e != NULL && strcmp(k, key) == 0 &&
		    strcmp(e, NODE_EFFECTS[effect]) == 0) {
			json_array_remove(p->taints, i);
			p->taints_changed = true;
		}
	}
}

void
node_patch_add_taint(struct node_patch *p, const char *key, const char *value,
    enum kube_taint_effect effect)
{
	json_t *t;

	if (effect == KUBE_EFFECT_ANY || p->error != 0)
		return;
	for (size_t i = json_array_size(p->taints); i-- > 0;) {
		json_t *old = json_array_get(p->taints, i);
		const char *k = json_string_value(json_object_get(old, "key"));
		const char *e = json_string_value(json_object_get(old, "effect"));
		const char *v = json_string_value(json_object_get(old, "value"));
		if (k != NULL && e != NULL && strcmp(k, key) == 0 &&
		    strcmp(e, NODE_EFFECTS[effect]) == 0) {
			if (strcmp(v != NULL ? v : "", value != NULL ? value : "") == 0)
				return;         /* already there */
			json_array_remove(p->taints, i);
		}
	}
	t = json_pack("{s:s,s:s}", "key", key, "effect", NODE_EFFECTS[effect]);
	if (t != NULL && value != NULL && value[0] != '\0')
		json_object_set_new(t, "value", json_string(value));
	if (t == NULL || json_array_append_new(p->taints, t) < 0)
		p->error = -ENOMEM;
	p->taints_changed = true;
}

void
node_patch_set_unschedulable(struct node_patch *p, bool unschedulable)
{
	if (p->node->unschedulable != unschedulable)
		node_patch__op(p, "add", json_boolean(unschedulable), "spec", "unschedulable", NULL);
}

void
node_patch_free(struct node_patch *p)
{
	if (p == NULL)
		return;
	json_decref(p->ops);
	json_decref(p->labels);
	json_decref(p->annotations);
	json_decref(p->taints);
	memset(p, 0, sizeof(*p));
}

json_t *
node_patch_take(struct node_patch *p, int *rc)
{
	json_t *ops;

	if (p->labels != NULL)
		node_patch__op(p, "add", json_incref(p->labels), "metadata", "labels", NULL);
	if (p->annotations != NULL)
		node_patch__op(p, "add", json_incref(p->annotations), "metadata", "annotations", NULL);
	if (p->taints_changed)
		node_patch__op(p, "add", json_incref(p->taints), "spec", "taints", NULL);
	*rc = p->error;
	ops = p->error == 0 ? json_incref(p->ops) : NULL;
	node_patch_free(p);
	return ops;
}

/* A struct node_cache is the struct cache itself, under a type of its own. */
struct cache *
node_cache_base(struct node_cache *nc)
{
	return (struct cache *)nc;
}

struct node_cache *
node_cache_new(void)
{
	return (struct node_cache *)cache_new(&NODE_CACHE_TYPE);
}

void
node_cache_free(struct node_cache *nc)
{
	cache_free(node_cache_base(nc));
}

int
node_cache_start(struct node_cache *nc, struct kube *k)
{
	char path[KUBE_PATH_MAX];
	int rc = kube_path(path, &KUBE_NODES, NULL, NULL, NULL);

	return rc < 0 ? rc : cache_start(node_cache_base(nc), k, path, NULL, NULL, 0);
}

struct node_info *
node_cache_get(struct node_cache *nc, const char *name)
{
	return (struct node_info *)cache_get(node_cache_base(nc), name);
}

struct node__visit {
	int (*fn)(void *ctx, const struct node_info *n);
	void *ctx;
};

static int
node__visit(void *ctx, struct cache_obj *o)
{
	struct node__visit *v = ctx;

	return v->fn(v->ctx, (const struct node_info *)o);
}

size_t
node_cache_foreach(struct node_cache *nc, const char *pool,
    int (*fn)(void *ctx, const struct node_info *n), void *ctx)
{
	struct node__visit v = { fn, ctx };

	return cache_foreach(node_cache_base(nc), pool, node__visit, &v);
}

long
node_cache_pool_size(void *cache, const char *pool)
{
	struct cache *c = cache != NULL ? node_cache_base(cache) : NULL;

	if (c == NULL || pool == NULL || !cache_synced(c))
		return -1;
	return (long)cache_index_count(c, pool);
}

/* Applies a write's reply to the cache and hands back the cached version. */
static int
node__write_through(struct node_cache *nc, json_t *obj, const char *name, struct node_info **out)
{
	int rc = obj != NULL ? cache_apply(node_cache_base(nc), obj) : 0;

	if (out != NULL)
		*out = node_cache_get(nc, name);
	return rc < 0 ? rc : 0;
}

/* One write of a Node: guarded JSON Patch (resource_version set) or merge patch, written through. */
static int
node__patch(struct node_cache *nc, struct kube *k, const char *name, const char *resource_version,
    json_t *patch, struct node_info **out, struct kube_error *err)
{
	char path[KUBE_PATH_MAX];
	json_t *obj = NULL;
	int rc;

	if (out != NULL)
		*out = NULL;
	if ((rc = kube_path(path, &KUBE_NODES, NULL, name, NULL)) < 0)
		return rc;
	rc = resource_version != NULL ?
	    kube_patch_guarded(k, path, resource_version, patch, &obj, err) :
	    kube_patch(k, path, KUBE_PATCH_MERGE, patch, &obj, err);
	if (rc == 0)
		rc = node__write_through(nc, obj, name, out);
	json_decref(obj);
	return rc;
}

int
node_cache_patch(struct node_cache *nc, struct kube *k, const char *name,
    const char *resource_version, json_t *patch, struct node_info **out,
    struct kube_error *err)
{
	/* Never a merge patch by accident: kube_patch_guarded refuses an empty version. */
	return node__patch(nc, k, name, resource_version != NULL ? resource_version : "", patch,
	    out, err);
}

int
node_cache_merge_patch(struct node_cache *nc, struct kube *k, const char *name, json_t *patch,
    struct node_info **out, struct kube_error *err)
{
	return node__patch(nc, k, name, NULL, patch, out, err);
}
