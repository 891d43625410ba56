/* NodePool and AWSNodeClass caches: small objects here, whole objects handed to the pools hook. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/crd_cache.h"
#include "stratos/log.h"
#include "stratos/nodestate.h"
#include "stratos/pools.h"
#include "stratos/timeutil.h"

static void
crd__destroy(struct cache_obj *o)
{
	free(o);
}

static size_t
crd__size(const struct cache_obj *o)
{
	const struct crd_info *c = (const struct crd_info *)o;

	return sizeof(*c) + strlen(o->key) + 1 + (c->launches ? strlen(c->launches) + 1 : 0) +
	    (c->status ? strlen(c->status) + 1 : 0);
}

static struct cache_obj *crd__parse_nodepool(json_t *obj, int *rc);
static struct cache_obj *crd__parse_nodeclass(json_t *obj, int *rc);

const struct cache_type CRD_NODEPOOLS_TYPE = {
	.resource = "nodepools",
	.parse = crd__parse_nodepool,
	.destroy = crd__destroy,
	.size = crd__size,
};

const struct cache_type CRD_AWSNODECLASSES_TYPE = {
	.resource = "awsnodeclasses",
	.parse = crd__parse_nodeclass,
	.destroy = crd__destroy,
	.size = crd__size,
};

static struct cache_obj *
crd__parse(json_t *obj, const struct cache_type *type, int *rc)
{
	json_t *meta = json_object_get(obj, "metadata");
	json_t *finalizers = json_object_get(meta, "finalizers"), *f;
	const char *name = json_string_value(json_object_get(meta, "name"));
	const char *deleted = json_string_value(json_object_get(meta, "deletionTimestamp"));
	const char *launches = NULL;
	char *status = NULL;
	struct crd_info *c;
	size_t n, nl = 0, ns = 0, i;

	*rc = -EINVAL;
	if (name == NULL || name[0] == '\0')
		return NULL;
	if (type == &CRD_NODEPOOLS_TYPE) {
		launches = json_string_value(json_object_get(json_object_get(meta, "annotations"),
		    NODESTATE_POOL_ANN_LAUNCHES));
		if (json_is_object(json_object_get(obj, "status")) &&
		    (status = json_dumps(json_object_get(obj, "status"), JSON_COMPACT)) == NULL) {
			*rc = -ENOMEM;
			return NULL;
		}
		nl = launches != NULL ? strlen(launches) + 1 : 0;
		ns = status != NULL ? strlen(status) + 1 : 0;
	}
	n = strlen(name);
	c = calloc(1, sizeof(*c) + n + 1 + nl + ns);
	if (c == NULL) {
		free(status);
		*rc = -ENOMEM;
		return NULL;
	}
	memcpy(c->storage, name, n + 1);
	c->obj.key = c->storage;
	if (launches != NULL) {
		memcpy(c->storage + n + 1, launches, nl);
		c->launches = c->storage + n + 1;
	}
	if (status != NULL) {
		memcpy(c->storage + n + 1 + nl, status, ns);
		c->status = c->storage + n + 1 + nl;
		free(status);
	}
	c->finalizer_index = -1;
	c->has_finalizers = json_is_array(finalizers);
	c->has_annotations = json_is_object(json_object_get(meta, "annotations"));
	json_array_foreach(finalizers, i, f) {
		if (json_is_string(f) && strcmp(json_string_value(f), NODESTATE_FINALIZER) == 0) {
			c->finalizer_index = (int)i;
			break;
		}
	}
	cache_obj_init(&c->obj, type);
	if (cache_parse_rv(json_string_value(json_object_get(meta, "resourceVersion")),
	    &c->obj.rv) < 0) {
		free(c);
		return NULL;
	}
	c->generation = (int64_t)json_integer_value(json_object_get(meta, "generation"));
	if (deleted != NULL)
		(void)time_parse_rfc3339(deleted, &c->deleted_ms);
	*rc = 0;
	return &c->obj;
}

static struct cache_obj *
crd__parse_nodepool(json_t *obj, int *rc)
{
	return crd__parse(obj, &CRD_NODEPOOLS_TYPE, rc);
}

static struct cache_obj *
crd__parse_nodeclass(json_t *obj, int *rc)
{
	return crd__parse(obj, &CRD_AWSNODECLASSES_TYPE, rc);
}

/* A struct crd_cache is the struct cache itself, under a type of its own. */
struct cache *
crd_cache_base(struct crd_cache *cc)
{
	return (struct cache *)cc;
}

struct crd_cache *
crd_cache_new_nodepools(void)
{
	return (struct crd_cache *)cache_new(&CRD_NODEPOOLS_TYPE);
}

struct crd_cache *
crd_cache_new_awsnodeclasses(void)
{
	return (struct crd_cache *)cache_new(&CRD_AWSNODECLASSES_TYPE);
}

void
crd_cache_free(struct crd_cache *cc)
{
	cache_free(crd_cache_base(cc));
}

struct crd_info *
crd_cache_get(struct crd_cache *cc, const char *name)
{
	return (struct crd_info *)cache_get(crd_cache_base(cc), name);
}

int
crd_cache_start(struct crd_cache *cc, struct kube *k)
{
	struct cache *c = crd_cache_base(cc);
	const struct kube_resource *r = strcmp(cache_resource(c), "nodepools") == 0 ?
	    &KUBE_NODEPOOLS : &KUBE_AWSNODECLASSES;
	char path[KUBE_PATH_MAX];
	int rc = kube_path(path, r, NULL, NULL, NULL);

	return rc < 0 ? rc : cache_start(c, k, path, NULL, NULL, 0);
}

static void
crd__feed(struct pools *p, bool nodepools, enum cache_change change, const char *key,
    json_t *obj)
{
	const char *kind = nodepools ? "NodePool" : "AWSNodeClass";
	int rc = 0;

	switch (change) {
	case CACHE_ADDED:
	case CACHE_MODIFIED:
		rc = nodepools ? pools_upsert_nodepool(p, obj, NULL) :
		    pools_upsert_nodeclass(p, obj, NULL);
		break;
	case CACHE_DELETED:
		rc = nodepools ? pools_delete_nodepool(p, key) : pools_delete_nodeclass(p, key);
		if (rc == -ENOENT)
			rc = 0;
		break;
	case CACHE_LISTED:
		rc = pools_mark_synced(p, nodepools ? POOLS_SYNCED_NODEPOOLS :
		    POOLS_SYNCED_NODECLASSES);
		break;
	default:
		break;
	}
	if (rc < 0)
		log_msg(LOG_LEVEL_ERROR, json_pack("{s:s,s:s,s:s}", "kind", kind, "name",
		    key != NULL ? key : "", "error", strerror(-rc)), "pools registry refused a change");
}

static void
crd__feed_nodepools(void *ctx, enum cache_change change, const char *key, json_t *obj)
{
	crd__feed(ctx, true, change, key, obj);
}

static void
crd__feed_nodeclasses(void *ctx, enum cache_change change, const char *key, json_t *obj)
{
	crd__feed(ctx, false, change, key, obj);
}

int
crd_cache_feed_pools(struct crd_cache *cc, struct pools *p)
{
	struct cache *c = crd_cache_base(cc);

	if (strcmp(cache_resource(c), "nodepools") == 0)
		cache_set_hook(c, crd__feed_nodepools, p);
	else if (strcmp(cache_resource(c), "awsnodeclasses") == 0)
		cache_set_hook(c, crd__feed_nodeclasses, p);
	else
		return -EINVAL;
	return 0;
}
