/* What the watch and LIST fuzz targets share: the cache types and a summary of one typed parse. */
#ifndef STRATOS_FUZZ_KUBE_COMMON_H
#define STRATOS_FUZZ_KUBE_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "stratos/cache.h"
#include "stratos/crd_cache.h"
#include "stratos/jsonprune.h"
#include "stratos/node_cache.h"
#include "stratos/pod_cache.h"

/* The typed parsers behind the four watch caches: what turns API bytes into cache objects. */
static const struct cache_type *const fuzz_kube_types[] = {
	&POD_CACHE_TYPE, &NODE_CACHE_TYPE, &CRD_NODEPOOLS_TYPE, &CRD_AWSNODECLASSES_TYPE,
};
#define FUZZ_KUBE_NTYPES (sizeof(fuzz_kube_types) / sizeof(fuzz_kube_types[0]))

/* Each type's prune set, compiled once, for LIST items and (prefix "object") watch events. */
static struct jsonprune *fuzz_kube_prune_items[FUZZ_KUBE_NTYPES];
static struct jsonprune *fuzz_kube_prune_events[FUZZ_KUBE_NTYPES];

static void
fuzz_kube_init(void)
{
	for (size_t i = 0; i < FUZZ_KUBE_NTYPES; i++) {
		if (fuzz_kube_types[i]->prune == NULL)
			continue;
		fuzz_kube_prune_items[i] = jsonprune_new(fuzz_kube_types[i]->prune, NULL);
		fuzz_kube_prune_events[i] = jsonprune_new(fuzz_kube_types[i]->prune, "object");
		if (fuzz_kube_prune_items[i] == NULL || fuzz_kube_prune_events[i] == NULL)
			abort();
	}
}

/* What a typed parse made of one object; equal summaries = equal cache objects for readers. */
struct fuzz_kube_summary {
	int rc;                    /* 0 parsed, else the parser's error */
	char key[CACHE_KEY_MAX];
	char index[CACHE_KEY_MAX];
	unsigned long long rv;
	size_t size;
};

static void
fuzz_kube_summarize(const struct cache_type *type, json_t *obj, struct fuzz_kube_summary *s)
{
	int rc = 0;
	struct cache_obj *o = type->parse(obj, &rc);

	memset(s, 0, sizeof(*s));
	if (o == NULL) {
		s->rc = rc != 0 ? rc : -1;
		return;
	}
	snprintf(s->key, sizeof(s->key), "%s", o->key);
	snprintf(s->index, sizeof(s->index), "%s", o->index[0] != NULL ? o->index[0] : "");
	s->rv = (unsigned long long)o->rv;
	s->size = type->size != NULL ? type->size(o) : 0;
	cache_obj_unref(o);
}

/*
 * Pruning only drops members the parser never reads, so an object must
 * parse the same with and without it; a difference means a prune list
 * lost a field some reader needs.
 */
static void
fuzz_kube_same(const struct fuzz_kube_summary *pruned, const struct fuzz_kube_summary *whole,
    const char *what)
{
	if (pruned->rc != whole->rc || strcmp(pruned->key, whole->key) != 0 ||
	    strcmp(pruned->index, whole->index) != 0 || pruned->rv != whole->rv ||
	    pruned->size != whole->size) {
		fprintf(stderr, "%s: pruned and whole objects parse differently: rc %d/%d key %s/%s "
		    "index %s/%s rv %llu/%llu size %zu/%zu\n", what, pruned->rc, whole->rc,
		    pruned->key, whole->key, pruned->index, whole->index, pruned->rv, whole->rv,
		    pruned->size, whole->size);
		abort();
	}
}

#endif
