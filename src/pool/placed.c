/* Follows the pool pods this replica answered until they are bound: their reservations released, bind latency measured. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/claim.h"
#include "stratos/limits.h"
#include "stratos/metrics.h"
#include "stratos/placed.h"
#include "stratos/placement.h"
#include "stratos/pool_node.h"
#include "stratos/pools.h"
#include "stratos/timeutil.h"

#define PLACED_BUCKETS_TABLE 4096u      /* hash buckets of each table */
#define PLACED_KEY_MAX 256              /* a uid or a node name */
#define PLACED_RELEASES_MAX 16          /* nodes holding one pod's reservations, released at its binding */

/* An entry of a small string-keyed table kept in insertion order (oldest dropped when full). */
struct placed__entry {
	char key[PLACED_KEY_MAX];
	char pool[LIMITS_NODEPOOL_NAME + 1];
	int64_t created_ms;          /* pods: creationTimestamp */
	int64_t since_ms;            /* pods: noted; nodes: usable since */
	bool offered;
	char node[PLACED_KEY_MAX];   /* pods: the node its room was promised on when noted ("" unknown) */
	struct placed__entry *hnext; /* hash chain */
	struct placed__entry *prev, *next;   /* age order */
};

struct placed__table {
	struct placed__entry *bucket[PLACED_BUCKETS_TABLE];
	struct placed__entry *oldest, *newest;
	size_t n, max;
};

struct placed {
	const struct pool_ctx *ctx;
	pthread_mutex_t lock;        /* both tables */
	struct placed__table pods;   /* uid → the answer this replica gave last */
	struct placed__table nodes;  /* node name → when this replica saw it become usable */
	struct cache_sub *sub;
	pthread_t thread;
	bool started;
	atomic_bool stop;
	struct metrics_family *bind_after_ready;
	struct metrics_family *pending_to_bound;
	struct metrics_family *released;
};

/* Bind latencies: tens of milliseconds (a pod waiting on a usable node) to minutes (a fresh launch). */
static const double PLACED_BUCKETS[] = {
	0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 300, 600,
};

/* ---- the tables ---- */

static uint32_t
placed__hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % PLACED_BUCKETS_TABLE;
}

static struct placed__entry *
placed__find(struct placed__table *t, const char *key)
{
	struct placed__entry *e = t->bucket[placed__hash(key)];

	while (e != NULL && strcmp(e->key, key) != 0)
		e = e->hnext;
	return e;
}

static void
placed__unlink(struct placed__table *t, struct placed__entry *e)
{
	struct placed__entry **pp = &t->bucket[placed__hash(e->key)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		t->oldest = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		t->newest = e->prev;
	t->n--;
}

static void
placed__remove(struct placed__table *t, const char *key)
{
	struct placed__entry *e = placed__find(t, key);

	if (e != NULL) {
		placed__unlink(t, e);
		free(e);
	}
}

/* The entry of key, made the newest (created when absent; the oldest dropped when full). */
static struct placed__entry *
placed__upsert(struct placed__table *t, const char *key)
{
	struct placed__entry *e = placed__find(t, key);
	uint32_t h;

	if (strlen(key) >= PLACED_KEY_MAX)
		return NULL;
	if (e != NULL) {
		placed__unlink(t, e);
	} else {
		if (t->n >= t->max && t->oldest != NULL)
			placed__remove(t, t->oldest->key);
		if ((e = calloc(1, sizeof(*e))) == NULL)
			return NULL;
		snprintf(e->key, sizeof(e->key), "%s", key);
	}
	h = placed__hash(key);
	e->hnext = t->bucket[h];
	t->bucket[h] = e;
	e->prev = t->newest;
	e->next = NULL;
	if (t->newest != NULL)
		t->newest->next = e;
	else
		t->oldest = e;
	t->newest = e;
	t->n++;
	return e;
}

static void
placed__clear(struct placed__table *t)
{
	while (t->oldest != NULL)
		placed__remove(t, t->oldest->key);
}

/* ---- public ---- */

struct placed *
placed_new(const struct pool_ctx *ctx)
{
	static const char *const pool[] = { "pool", NULL };
	size_t nb = sizeof(PLACED_BUCKETS) / sizeof(PLACED_BUCKETS[0]);
	struct placed *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->ctx = ctx;
	pthread_mutex_init(&p->lock, NULL);
	p->pods.max = LIMITS_PLACED_PODS;
	p->nodes.max = LIMITS_PLACED_NODES;
	p->bind_after_ready = metrics_register(METRICS_HISTOGRAM, "stratos_bind_after_ready_seconds",
	    "A pod bound to the node it held a reservation on: the node became usable (Ready, "
	    "startup taints gone) → the pod bound.", pool, PLACED_BUCKETS, nb);
	p->pending_to_bound = metrics_register(METRICS_HISTOGRAM,
	    "stratos_pod_pending_to_bound_seconds",
	    "Pool pods answered by this replica's extender: created → bound.", pool,
	    PLACED_BUCKETS, nb);
	p->released = metrics_register(METRICS_COUNTER, "stratos_reservations_released_total",
	    "Reservations dropped when their pod was bound (on its node or elsewhere).", pool,
	    NULL, 0);
	return p;
}

void
placed_note(struct placed *p, const char *uid, const char *pool, int64_t created_ms,
    bool offered, const char *node)
{
	struct placed__entry *e;

	if (p == NULL || uid == NULL || uid[0] == '\0')
		return;
	pthread_mutex_lock(&p->lock);
	if ((e = placed__upsert(&p->pods, uid)) != NULL) {
		snprintf(e->pool, sizeof(e->pool), "%s", pool != NULL ? pool : "");
		e->created_ms = created_ms;
		e->since_ms = time_real_ms();
		e->offered = offered;
		snprintf(e->node, sizeof(e->node), "%s", node != NULL ? node : "");
	}
	pthread_mutex_unlock(&p->lock);
}

size_t
placed_count(struct placed *p)
{
	size_t n;

	pthread_mutex_lock(&p->lock);
	n = p->pods.n;
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* ---- following the caches ---- */

struct placed__holders {
	const char *uid;
	size_t n;
	char name[PLACED_RELEASES_MAX][PLACED_KEY_MAX];
};

static int
placed__holders_visit(void *ctx, const struct node_info *n)
{
	struct placed__holders *h = ctx;

	if (n->reservations != NULL && strstr(n->reservations, h->uid) != NULL &&
	    h->n < PLACED_RELEASES_MAX)
		snprintf(h->name[h->n++], PLACED_KEY_MAX, "%s", node_info_name(n));
	return 0;
}

/* A pod this replica answered was bound: measure, and release what it no longer needs. */
static void
placed__bound(struct placed *p, const struct pod_info *pod)
{
	struct placed__entry e, *found;
	struct placed__holders h;
	const char *node = pod_info_node(pod);
	int64_t now = time_real_ms();
	bool promised;

	pthread_mutex_lock(&p->lock);
	found = placed__find(&p->pods, pod->uid);
	if (found != NULL) {
		e = *found;
		placed__remove(&p->pods, pod->uid);
	}
	pthread_mutex_unlock(&p->lock);
	/* Only the replica whose answer offered nodes led to this binding. */
	if (found == NULL || !e.offered)
		return;
	if (e.created_ms > 0 && now >= e.created_ms)
		metrics_histogram_observe(p->pending_to_bound, (double)(now - e.created_ms) / 1000.0,
		    e.pool);
	memset(&h, 0, sizeof(h));
	h.uid = pod->uid;
	if (p->ctx->nodes != NULL && e.pool[0] != '\0')
		node_cache_foreach(p->ctx->nodes, e.pool, placed__holders_visit, &h);
	/*
	 * Bound where its room was promised: as noted, or as the node still
	 * says (the controller may have dropped a bound pod's promise first).
	 */
	promised = e.node[0] != '\0' && strcmp(e.node, node) == 0;
	for (size_t i = 0; i < h.n && !promised; i++)
		promised = strcmp(h.name[i], node) == 0;
	if (promised) {
		struct placed__entry *u;
		int64_t usable = 0;

		pthread_mutex_lock(&p->lock);
		if ((u = placed__find(&p->nodes, node)) != NULL)
			usable = u->since_ms;
		pthread_mutex_unlock(&p->lock);
		if (usable > 0 && now >= usable)
			metrics_histogram_observe(p->bind_after_ready, (double)(now - usable) / 1000.0,
			    e.pool);
	}
	for (size_t i = 0; i < h.n; i++) {
		struct kube_error err;

		if (claim_release(p->ctx, h.name[i], pod->uid, &err) == 0)
			metrics_counter_add(p->released, 1, e.pool);
	}
}

/* Notes when a pool node becomes usable (and forgets it when it stops being). */
static void
placed__node(struct placed *p, const struct node_info *old, const struct node_info *n)
{
	const struct pools_snapshot *snap;
	const struct nodepool *pool;
	bool usable, was = false;

	if (n == NULL || node_info_pool(n) == NULL) {
		if (old != NULL) {
			pthread_mutex_lock(&p->lock);
			placed__remove(&p->nodes, node_info_name(old));
			pthread_mutex_unlock(&p->lock);
		}
		return;
	}
	snap = p->ctx->pools != NULL ? pools_acquire(p->ctx->pools) : NULL;
	pool = snap != NULL ? pools_find_nodepool(snap, node_info_pool(n)) : NULL;
	usable = pool != NULL && pool_node_classify(n, pool, time_real_ms()) == POOL_NODE_USABLE;
	if (old != NULL && pool != NULL)
		was = pool_node_classify(old, pool, time_real_ms()) == POOL_NODE_USABLE;
	pools_release(snap);
	pthread_mutex_lock(&p->lock);
	if (!usable) {
		placed__remove(&p->nodes, node_info_name(n));
	} else if (!was && old != NULL) {
		/* Seen turning usable. A node usable at first sight (a relist) has no known start. */
		struct placed__entry *e = placed__upsert(&p->nodes, node_info_name(n));
		if (e != NULL)
			e->since_ms = time_real_ms();
	}
	pthread_mutex_unlock(&p->lock);
}

static void *
placed__main(void *arg)
{
	struct placed *p = arg;
	struct cache *pods = pod_cache_base(p->ctx->pods);

	while (!atomic_load(&p->stop)) {
		struct cache_event ev;
		int rc = cache_sub_next(p->sub, &ev, 500);

		if (rc == -ECANCELED)
			break;
		if (rc < 0)
			continue;
		if (ev.cache == pods) {
			const struct pod_info *o = (const struct pod_info *)ev.old_obj;
			const struct pod_info *n = (const struct pod_info *)ev.new_obj;

			if (n != NULL && n->pool != NULL && pod_info_node(n) != NULL &&
			    (o == NULL || pod_info_node(o) == NULL)) {
				placed__bound(p, n);
			} else if (o != NULL && (n == NULL || n->deleted_ms != 0)) {
				pthread_mutex_lock(&p->lock);
				placed__remove(&p->pods, o->uid);
				pthread_mutex_unlock(&p->lock);
			}
		} else if (ev.change != CACHE_RESYNC) {
			placed__node(p, (const struct node_info *)ev.old_obj,
			    (const struct node_info *)ev.new_obj);
		}
		cache_event_release(&ev);
	}
	return NULL;
}

int
placed_start(struct placed *p)
{
	int rc;

	if (p->ctx->nodes == NULL || p->ctx->pods == NULL)
		return -ENOTSUP;
	if ((p->sub = cache_sub_new(0)) == NULL)
		return -ENOMEM;
	if ((rc = cache_subscribe(pod_cache_base(p->ctx->pods), p->sub)) < 0 ||
	    (rc = cache_subscribe(node_cache_base(p->ctx->nodes), p->sub)) < 0)
		return rc;
	if ((rc = pthread_create(&p->thread, NULL, placed__main, p)) != 0)
		return -rc;
	p->started = true;
	return 0;
}

void
placed_free(struct placed *p)
{
	if (p == NULL)
		return;
	if (p->sub != NULL) {
		if (p->ctx->pods != NULL)
			cache_unsubscribe(pod_cache_base(p->ctx->pods), p->sub);
		if (p->ctx->nodes != NULL)
			cache_unsubscribe(node_cache_base(p->ctx->nodes), p->sub);
		atomic_store(&p->stop, true);
		cache_sub_close(p->sub);
	}
	if (p->started)
		pthread_join(p->thread, NULL);
	cache_sub_free(p->sub);
	placed__clear(&p->pods);
	placed__clear(&p->nodes);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
