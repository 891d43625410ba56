/* The pool controller's frame: leadership terms, the event loop that turns cache changes into keys, the workers and the urgent thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller_internal.h"
#include "stratos/leader.h"
#include "stratos/limits.h"
#include "stratos/log.h"
#include "stratos/nodestate.h"
#include "stratos/pool_node.h"
#include "stratos/reservations.h"
#include "stratos/timeutil.h"

/* ---- a small string map ---- */

struct ctl_map__entry {
	char *key;
	char *value;
	int64_t num;
	struct ctl_map__entry *next;
};

#define CTL_MAP_BUCKETS 4096u

struct ctl_map {
	pthread_mutex_t lock;
	size_t n, max;
	struct ctl_map__entry *buckets[CTL_MAP_BUCKETS];
};

static uint32_t
ctl_map__hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % CTL_MAP_BUCKETS;
}

struct ctl_map *
ctl_map_new(size_t max)
{
	struct ctl_map *m = calloc(1, sizeof(*m));

	if (m != NULL) {
		pthread_mutex_init(&m->lock, NULL);
		m->max = max;
	}
	return m;
}

static void
ctl_map__entry_free(struct ctl_map__entry *e)
{
	free(e->key);
	free(e->value);
	free(e);
}

void
ctl_map_clear(struct ctl_map *m)
{
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < CTL_MAP_BUCKETS; i++) {
		struct ctl_map__entry *e = m->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			ctl_map__entry_free(e);
		}
		m->buckets[i] = NULL;
	}
	m->n = 0;
	pthread_mutex_unlock(&m->lock);
}

void
ctl_map_free(struct ctl_map *m)
{
	if (m == NULL)
		return;
	ctl_map_clear(m);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

int
ctl_map_set(struct ctl_map *m, const char *key, const char *value, int64_t num)
{
	struct ctl_map__entry *e;
	uint32_t h = ctl_map__hash(key);
	char *v = value != NULL ? strdup(value) : NULL;
	int rc = 0;

	if (value != NULL && v == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&m->lock);
	for (e = m->buckets[h]; e != NULL && strcmp(e->key, key) != 0; e = e->next)
		;
	if (e == NULL) {
		if (m->n == m->max) {
			free(v);
			rc = -ENOSPC;
			goto out;
		}
		e = calloc(1, sizeof(*e));
		if (e == NULL || (e->key = strdup(key)) == NULL) {
			free(e);
			free(v);
			rc = -ENOMEM;
			goto out;
		}
		e->next = m->buckets[h];
		m->buckets[h] = e;
		m->n++;
	}
	free(e->value);
	e->value = v;
	e->num = num;
out:
	pthread_mutex_unlock(&m->lock);
	return rc;
}

int
ctl_map_get(struct ctl_map *m, const char *key, char *out, size_t len, int64_t *num)
{
	struct ctl_map__entry *e;
	int rc = -ENOENT;

	pthread_mutex_lock(&m->lock);
	for (e = m->buckets[ctl_map__hash(key)]; e != NULL && strcmp(e->key, key) != 0; e = e->next)
		;
	if (e != NULL) {
		if (out != NULL && len > 0)
			snprintf(out, len, "%s", e->value != NULL ? e->value : "");
		if (num != NULL)
			*num = e->num;
		rc = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

void
ctl_map_del(struct ctl_map *m, const char *key)
{
	struct ctl_map__entry **pp, *e;

	pthread_mutex_lock(&m->lock);
	for (pp = &m->buckets[ctl_map__hash(key)]; (e = *pp) != NULL; pp = &e->next) {
		if (strcmp(e->key, key) == 0) {
			*pp = e->next;
			ctl_map__entry_free(e);
			m->n--;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
}

/* ---- acting, queueing, notes ---- */

bool
ctl_acting(struct ctl_run *r)
{
	if (atomic_load(&r->stop))
		return false;
	return r->ctl->leader == NULL || leader_is_leader(r->ctl->leader);
}

static void
ctl__enqueue(struct ctl_run *r, char kind, const char *name, int64_t delay_ms)
{
	char key[LIMITS_WORKQUEUE_KEY + 1];
	int rc;

	if (name == NULL || strlen(name) + 2 > LIMITS_WORKQUEUE_KEY)
		return;
	snprintf(key, sizeof(key), "%c/%s", kind, name);
	rc = delay_ms > 0 ? workqueue_add_after(r->q, key, delay_ms) : workqueue_add(r->q, key);
	if (rc < 0 && rc != -ESHUTDOWN)
		log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s}", "key", key, "error", strerror(-rc)),
		    "controller: work queue refused a key");
}

void
ctl_enqueue_pool(struct ctl_run *r, const char *pool, int64_t delay_ms)
{
	ctl__enqueue(r, 'p', pool, delay_ms);
}

void
ctl_enqueue_node(struct ctl_run *r, const char *node, int64_t delay_ms)
{
	ctl__enqueue(r, 'n', node, delay_ms);
}

void
ctl_schedule_ec2(struct ctl_run *r)
{
	int64_t due = ec2view_next_refresh(r->ctl->view) - time_mono_ms();

	if (due > 0)
		workqueue_add_after(r->q, "e", due);
	else
		workqueue_add(r->q, "e");
}

void
ctl_want_instance(struct ctl_run *r, const char *id)
{
	ec2view_want(r->ctl->view, id);
	ctl_schedule_ec2(r);
}

int
ctl_instance_node(struct controller *c, const char *id, char *out, size_t len)
{
	return ctl_map_get(c->instances, id, out, len, NULL);
}

int
ctl_provider_instance(const char *provider_id, char *out, size_t len)
{
	const char *slash;

	if (provider_id == NULL || strncmp(provider_id, "aws://", 6) != 0)
		return -EINVAL;
	slash = strrchr(provider_id, '/');
	if (slash == NULL || strncmp(slash + 1, "i-", 2) != 0 || strlen(slash + 1) >= len)
		return -EINVAL;
	snprintf(out, len, "%s", slash + 1);
	return 0;
}

struct ctl_poolmem *
ctl_poolmem(struct controller *c, const char *pool)
{
	struct ctl_poolmem *m;

	for (m = c->pools; m != NULL && strcmp(m->name, pool) != 0; m = m->next)
		;
	if (m == NULL && (m = calloc(1, sizeof(*m))) != NULL) {
		snprintf(m->name, sizeof(m->name), "%s", pool);
		pthread_mutex_init(&m->serve_lock, NULL);
		m->next = c->pools;
		c->pools = m;
	}
	return m;
}

struct ctl_poolmem *
ctl_serve_lock(struct controller *c, const char *pool)
{
	struct ctl_poolmem *m;

	pthread_mutex_lock(&c->lock);
	m = ctl_poolmem(c, pool);
	pthread_mutex_unlock(&c->lock);
	if (m != NULL)
		pthread_mutex_lock(&m->serve_lock);
	return m;
}

void
ctl_serve_unlock(struct ctl_poolmem *m)
{
	if (m != NULL)
		pthread_mutex_unlock(&m->serve_lock);
}

void
ctl_degraded(struct controller *c, const char *pool, const char *reason, const char *fmt, ...)
{
	struct ctl_poolmem *m;
	va_list ap;

	pthread_mutex_lock(&c->lock);
	if ((m = ctl_poolmem(c, pool)) != NULL) {
		if (reason == NULL) {
			m->degraded_reason[0] = m->degraded_message[0] = '\0';
			m->degraded_since_ms = 0;
		} else {
			if (strcmp(m->degraded_reason, reason) != 0)
				m->degraded_since_ms = time_real_ms();
			snprintf(m->degraded_reason, sizeof(m->degraded_reason), "%s", reason);
			va_start(ap, fmt);
			vsnprintf(m->degraded_message, sizeof(m->degraded_message), fmt, ap);
			va_end(ap);
		}
	}
	pthread_mutex_unlock(&c->lock);
}

/* ---- the instance index ---- */

static void
controller__index_node(struct controller *c, const struct node_info *old_n,
    const struct node_info *new_n)
{
	char id[32];

	if (old_n != NULL && ctl_provider_instance(old_n->provider_id, id, sizeof(id)) == 0 &&
	    (new_n == NULL || new_n->provider_id == NULL ||
	    strcmp(new_n->provider_id, old_n->provider_id) != 0))
		ctl_map_del(c->instances, id);
	if (new_n != NULL && ctl_provider_instance(new_n->provider_id, id, sizeof(id)) == 0)
		ctl_map_set(c->instances, id, node_info_name(new_n), 0);
}

static void controller__index_reservations(struct controller *c, const struct node_info *o,
    const struct node_info *n);

static int
controller__index_visit(void *ctx, const struct node_info *n)
{
	controller__index_node(ctx, NULL, n);
	controller__index_reservations(ctx, NULL, n);
	return 0;
}

/* ---- dispatch: cache changes to keys ---- */

/* Whether a node change matters to its pool's counts or status. */
static bool
controller__pool_relevant(const struct node_info *o, const struct node_info *n)
{
	if (o == NULL || n == NULL)
		return true;
	if ((o->state == NULL) != (n->state == NULL) || (o->state != NULL && o->state != n->state))
		return true;
	if (node_info_pool(o) != node_info_pool(n))
		return true;
	return o->ready != n->ready || o->started_at_ms != n->started_at_ms ||
	    o->ntaints != n->ntaints || o->deleted_ms != n->deleted_ms;
}

/* The urgent path's test: a running pool node whose startup taints may go now. */
static void
controller__maybe_urgent(struct ctl_run *r, const struct node_info *n)
{
	const struct pools_snapshot *snap;
	const struct nodepool *pool;
	bool urgent = false;

	if (node_info_pool(n) == NULL || nodestate_parse(n->state) != NODESTATE_RUNNING ||
	    n->deleted_ms != 0)
		return;
	snap = pools_acquire(r->ctl->ctx.pools);
	pool = pools_find_nodepool(snap, node_info_pool(n));
	if (pool != NULL && pool_node_has_startup_taint(n, pool) &&
	    pool_node_startup_taints_removable(n, pool))
		urgent = true;
	pools_release(snap);
	if (!urgent)
		return;
	if (ctl_map_get(r->ctl->seen, node_info_name(n), NULL, 0, NULL) < 0)
		ctl_map_set(r->ctl->seen, node_info_name(n), NULL, time_mono_us());
	workqueue_add(r->urgent, node_info_name(n));
}

/* Files each reserved pod under the node that holds its reservation. */
static void
controller__index_reservations(struct controller *c, const struct node_info *o,
    const struct node_info *n)
{
	const struct reservations *res;

	if (n == NULL || n->reserved == NULL ||
	    (o != NULL && o->reservations != NULL && strcmp(o->reservations, n->reservations) == 0))
		return;
	res = n->reserved;
	for (size_t i = 0; i < res->n; i++)
		ctl_map_set(c->reserved, res->item[i].pod, node_info_name(n), 0);
}

static void
controller__dispatch_node(struct ctl_run *r, const struct node_info *o, const struct node_info *n)
{
	const struct node_info *cur = n != NULL ? n : o;
	const char *pool = node_info_pool(cur);
	char id[32];

	controller__index_node(r->ctl, o, n);
	controller__index_reservations(r->ctl, o, n);
	if (n != NULL)
		controller__maybe_urgent(r, n);
	if (pool != NULL) {
		/*
		 * A kubelet that stops reporting (Ready leaves True) may be an
		 * instance that stopped by itself, one that comes back may have
		 * been started by hand: the changes EC2 does not announce. Ask
		 * the view about it.
		 */
		if (o != NULL && n != NULL && o->ready != n->ready && n->instance_id != NULL)
			ctl_want_instance(r, n->instance_id);
		ctl_enqueue_node(r, node_info_name(cur), 0);
		if (controller__pool_relevant(o, n))
			ctl_enqueue_pool(r, pool, 0);
		if (o != NULL && n != NULL && node_info_pool(o) != NULL && node_info_pool(o) != pool)
			ctl_enqueue_pool(r, node_info_pool(o), 0);
		if (n == NULL && cur->instance_id != NULL)
			ctl_want_instance(r, cur->instance_id);
		return;
	}
	if (o != NULL && node_info_pool(o) != NULL)
		ctl_enqueue_pool(r, node_info_pool(o), 0);
	/* A Node of no pool yet: one of our instances registering (adoption)? */
	if (n != NULL && ctl_provider_instance(n->provider_id, id, sizeof(id)) == 0) {
		struct ec2view_instance in;
		if (!ec2view_synced(r->ctl->view) ||
		    (ec2view_get(r->ctl->view, id, &in) == 0 && in.pool[0] != '\0'))
			ctl_enqueue_node(r, node_info_name(n), 0);
	}
}

/* A pod that may change what its node's task decides (emptiness, warmup, drain). */
static void
controller__dispatch_pod_node(struct ctl_run *r, const char *node)
{
	struct node_info *n;

	if (node == NULL)
		return;
	n = node_cache_get(r->ctl->ctx.nodes, node);
	if (n == NULL)
		return;
	if (node_info_pool(n) != NULL)
		ctl_enqueue_node(r, node, 0);
	cache_obj_unref(&n->obj);
}

static void
controller__dispatch_pod(struct ctl_run *r, const struct pod_info *o, const struct pod_info *p)
{
	const struct pod_info *cur = p != NULL ? p : o;

	controller__dispatch_pod_node(r, pod_info_node(cur));
	if (o != NULL && p != NULL && pod_info_node(o) != pod_info_node(p))
		controller__dispatch_pod_node(r, pod_info_node(o));
	/* Bound, or gone: its reservation, wherever it is, goes at once (§6.3). */
	if (cur->pool != NULL && (p == NULL || pod_info_node(p) != NULL || p->deleted_ms != 0)) {
		char node[256];
		if (ctl_map_get(r->ctl->reserved, cur->obj.key, node, sizeof(node), NULL) == 0) {
			ctl_map_del(r->ctl->reserved, cur->obj.key);
			ctl_enqueue_node(r, node, 0);
		}
	}
	/* A pool pod the scheduler could not place: the fallback path (§5.5) and its pool's status. */
	if (cur->pool != NULL && pod_info_node(cur) == NULL) {
		bool was = o != NULL && o->scheduled == KUBE_COND_FALSE &&
		    o->sched_reason == POD_SCHED_REASON_UNSCHEDULABLE;
		bool is = p != NULL && p->scheduled == KUBE_COND_FALSE &&
		    p->sched_reason == POD_SCHED_REASON_UNSCHEDULABLE;
		if (was != is || p == NULL) {
			char first[LIMITS_NODEPOOL_NAME + 1];
			const char *comma = strchr(cur->pool, ',');
			size_t len = comma != NULL ? (size_t)(comma - cur->pool) : strlen(cur->pool);
			if (len < sizeof(first)) {
				memcpy(first, cur->pool, len);
				first[len] = '\0';
				ctl_enqueue_pool(r, first, 0);
			}
		}
	}
}

static int
controller__all_visit_node(void *ctx, const struct node_info *n)
{
	struct ctl_run *r = ctx;

	if (node_info_pool(n) != NULL)
		ctl_enqueue_node(r, node_info_name(n), 0);
	else if (n->provider_id != NULL)
		controller__dispatch_node(r, NULL, n);
	return 0;
}

/* Everything, once: at the start of a term and after a subscription overflow. */
static void
controller__enqueue_all(struct ctl_run *r)
{
	const struct pools_snapshot *snap = pools_acquire(r->ctl->ctx.pools);

	for (size_t i = 0; i < snap->nnodepools; i++)
		ctl_enqueue_pool(r, snap->nodepools[i]->name, 0);
	pools_release(snap);
	ctl_map_clear(r->ctl->instances);
	ctl_map_clear(r->ctl->reserved);
	node_cache_foreach(r->ctl->ctx.nodes, NULL, controller__index_visit, r->ctl);
	node_cache_foreach(r->ctl->ctx.nodes, NULL, controller__all_visit_node, r);
	workqueue_add(r->q, "g");
	ctl_schedule_ec2(r);
}

static void
controller__dispatch(struct ctl_run *r, const struct cache_event *ev)
{
	struct controller *c = r->ctl;

	if (ev->change == CACHE_RESYNC) {
		controller__enqueue_all(r);
		return;
	}
	if (ev->cache == node_cache_base(c->ctx.nodes)) {
		controller__dispatch_node(r, (const struct node_info *)ev->old_obj,
		    (const struct node_info *)ev->new_obj);
	} else if (ev->cache == pod_cache_base(c->ctx.pods)) {
		controller__dispatch_pod(r, (const struct pod_info *)ev->old_obj,
		    (const struct pod_info *)ev->new_obj);
	} else if (c->ctx.nodepools != NULL && ev->cache == crd_cache_base(c->ctx.nodepools)) {
		const struct cache_obj *o = ev->new_obj != NULL ? ev->new_obj : ev->old_obj;
		if (o != NULL)
			ctl_enqueue_pool(r, o->key, 0);
	}
}

/* ---- threads ---- */

static void
controller__run_unref(struct ctl_run *r)
{
	if (atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	cache_sub_free(r->sub);
	free(r);
}

static void
controller__thread_exit(struct ctl_run *r)
{
	struct controller *c = r->ctl;

	controller__run_unref(r);
	pthread_mutex_lock(&c->lock);
	c->threads--;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void *
controller__loop(void *arg)
{
	struct ctl_run *r = arg;
	struct controller *c = r->ctl;
	int64_t next_tick = time_mono_ms() + c->opts.tick_ms;

	controller__enqueue_all(r);
	while (!atomic_load(&r->stop)) {
		struct cache_event ev;
		int64_t now = time_mono_ms();
		int rc;

		if (now >= next_tick) {
			const struct pools_snapshot *snap = pools_acquire(c->ctx.pools);
			for (size_t i = 0; i < snap->nnodepools; i++)
				ctl_enqueue_pool(r, snap->nodepools[i]->name, 0);
			pools_release(snap);
			workqueue_add(r->q, "g");
			ctl_schedule_ec2(r);
			next_tick = now + c->opts.tick_ms;
		}
		rc = cache_sub_next(r->sub, &ev, (long)(next_tick - now));
		if (rc == -ECANCELED)
			break;
		if (rc == 0) {
			controller__dispatch(r, &ev);
			cache_event_release(&ev);
		}
	}
	controller__thread_exit(r);
	return NULL;
}

/* An instance changed in the view: its pool and its node look again. */
static void
controller__on_instance(void *ctx, const struct ec2view_instance *in, int old_state)
{
	struct ctl_run *r = ctx;
	char node[256];

	ctl_log(LOG_LEVEL_DEBUG, in->pool, NULL, in->id, json_pack("{s:s,s:s}", "from",
	    ec2view_state_name(old_state), "to", ec2view_state_name(in->state_code)),
	    "instance state");
	if (in->pool[0] != '\0')
		ctl_enqueue_pool(r, in->pool, 0);
	if (ctl_instance_node(r->ctl, in->id, node, sizeof(node)) == 0)
		ctl_enqueue_node(r, node, 0);
}

static void
controller__refresh_ec2(struct ctl_run *r)
{
	struct ec2_error err = { 0 };
	int rc = ec2view_refresh(r->ctl->view, 0, controller__on_instance, r, &err);

	if (rc < 0)
		ctl_log(LOG_LEVEL_WARN, NULL, NULL, NULL, json_pack("{s:s,s:s}", "code", err.code,
		    "error", err.message), "DescribeInstances failed; the EC2 view keeps what it had");
	ctl_schedule_ec2(r);
}

/* Nothing is decided on caches that have not listed yet (an unknown node is not a missing one). */
static bool
controller__synced(struct controller *c)
{
	return cache_synced(node_cache_base(c->ctx.nodes)) &&
	    cache_synced(pod_cache_base(c->ctx.pods)) &&
	    (c->ctx.nodepools == NULL || cache_synced(crd_cache_base(c->ctx.nodepools))) &&
	    pools_loaded(c->ctx.pools);
}

#define CONTROLLER_SYNC_WAIT_MS 200

/* A task of the work queue's workers: the key says which. Returns the key's requeue delay. */
static int64_t
controller__task(void *ctx, const char *key)
{
	struct ctl_run *r = ctx;
	int64_t t0 = time_mono_us();
	const char *kind = "ec2";

	if (!ctl_acting(r))
		return 0;
	if (strcmp(key, "e") == 0) {
		controller__refresh_ec2(r);
	} else if (!controller__synced(r->ctl)) {
		return CONTROLLER_SYNC_WAIT_MS;
	} else if (key[0] == 'p' && key[1] == '/') {
		kind = "pool";
		reconcile_pool(r, key + 2);
	} else if (key[0] == 'n' && key[1] == '/') {
		kind = "node";
		reconcile_node(r, key + 2, false);
	} else if (strcmp(key, "g") == 0) {
		kind = "gc";
		reconcile_gc(r);
	}
	metrics_histogram_observe(r->ctl->m_reconcile_seconds, (double)(time_mono_us() - t0) / 1e6,
	    kind);
	return 0;
}

/* The urgent queue's task: startup taints of one node (§5.3). */
static int64_t
controller__urgent(void *ctx, const char *key)
{
	struct ctl_run *r = ctx;

	if (!ctl_acting(r))
		return 0;
	if (!controller__synced(r->ctl))
		return CONTROLLER_SYNC_WAIT_MS;
	reconcile_node(r, key, true);
	return 0;
}

/* ---- lifecycle ---- */

static void
controller__metrics(struct controller *c)
{
	static const double taint_buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5 };
	static const double long_buckets[] = { 1, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600 };
	static const char *const pool_state[] = { "pool", "state", NULL };
	static const char *const pool[] = { "pool", NULL };
	static const char *const pool_reason[] = { "pool", "reason", NULL };
	static const char *const pool_result[] = { "pool", "result", NULL };
	static const char *const kind[] = { "kind", NULL };
	static const char *const pool_path[] = { "pool", "path", NULL };

	c->m_nodes = metrics_register(METRICS_GAUGE, "stratos_nodepool_nodes",
	    "Nodes of each pool by state (warmup, standby, running, stopping).", pool_state, NULL, 0);
	c->m_desired = metrics_register(METRICS_GAUGE, "stratos_nodepool_desired_standby",
	    "The pool's minStandby.", pool, NULL, 0);
	c->m_size = metrics_register(METRICS_GAUGE, "stratos_nodepool_pool_size",
	    "The pool's poolSize.", pool, NULL, 0);
	c->m_scaleup = metrics_register(METRICS_COUNTER, "stratos_scaleup_total",
	    "Nodes started or made running for pending pool pods, by path (inline: the extender; "
	    "fallback: the controller).", pool_path, NULL, 0);
	c->m_scaledown = metrics_register(METRICS_COUNTER, "stratos_scaledown_total",
	    "Running nodes stopped back to standby after their empty TTL.", pool, NULL, 0);
	c->m_warmup_seconds = metrics_register(METRICS_HISTOGRAM, "stratos_warmup_duration_seconds",
	    "From launch to standby (or to running when pods waited).", pool, long_buckets,
	    sizeof(long_buckets) / sizeof(long_buckets[0]));
	c->m_warmup_failures = metrics_register(METRICS_COUNTER, "stratos_warmup_failures_total",
	    "Warmups that did not complete: timeout, never-registered, terminated, launch-failed.",
	    pool_reason, NULL, 0);
	c->m_drain_seconds = metrics_register(METRICS_HISTOGRAM, "stratos_drain_duration_seconds",
	    "From the start of a drain to the node's last evictable pod gone.", pool, long_buckets,
	    sizeof(long_buckets) / sizeof(long_buckets[0]));
	c->m_taint_seconds = metrics_register(METRICS_HISTOGRAM,
	    "stratos_startup_taint_removal_seconds",
	    "From the Node event that shows readiness to the startup taints removed.", pool,
	    taint_buckets, sizeof(taint_buckets) / sizeof(taint_buckets[0]));
	c->m_launches = metrics_register(METRICS_COUNTER, "stratos_launches_total",
	    "RunInstances of the pool controller by result.", pool_result, NULL, 0);
	c->m_gc = metrics_register(METRICS_COUNTER, "stratos_gc_total",
	    "Instances terminated and Nodes deleted by garbage collection.", pool_reason, NULL, 0);
	c->m_reconcile_seconds = metrics_register(METRICS_HISTOGRAM,
	    "stratos_controller_task_seconds", "Time of one controller task by kind.", kind,
	    METRICS_BUCKETS_LATENCY, METRICS_BUCKETS_LATENCY_COUNT);
}

struct controller *
controller_new(const struct pool_ctx *ctx, const struct controller_options *o)
{
	struct controller *c;
	struct ec2view_options vo;

	if (ctx == NULL || ctx->kube == NULL || ctx->nodes == NULL || ctx->pods == NULL ||
	    ctx->pools == NULL || ctx->ec2 == NULL || ctx->cluster == NULL)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->ctx = *ctx;
	if (o != NULL)
		c->opts = *o;
	if (c->opts.workers == 0)
		c->opts.workers = CONTROLLER_WORKERS_DEFAULT;
	if (c->opts.workers > LIMITS_CONTROLLER_WORKERS)
		c->opts.workers = LIMITS_CONTROLLER_WORKERS;
	if (c->opts.tick_ms <= 0)
		c->opts.tick_ms = CONTROLLER_TICK_MS_DEFAULT;
	vo = (struct ec2view_options){ .cluster = ctx->cluster, .resync_ms = c->opts.ec2_resync_ms,
	    .poll_ms = c->opts.ec2_poll_ms };
	c->view = ec2view_new(ctx->ec2, &vo);
	c->instances = ctl_map_new(LIMITS_CACHE_OBJECTS);
	c->retire = ctl_map_new(LIMITS_CONTROLLER_QUEUE);
	c->retiring = ctl_map_new(LIMITS_CONTROLLER_QUEUE);
	c->reserved = ctl_map_new(LIMITS_CACHE_OBJECTS);
	c->seen = ctl_map_new(LIMITS_CONTROLLER_QUEUE);
	if (c->view == NULL || c->instances == NULL || c->retire == NULL || c->seen == NULL ||
	    c->retiring == NULL || c->reserved == NULL) {
		controller_free(c);
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	time_cond_init(&c->cond);
	controller__metrics(c);
	return c;
}

void
controller_set_leader(struct controller *c, struct leader *l)
{
	c->leader = l;
}

/*
 * Ends a term's queues: waits for the tasks in flight (a call on the wire
 * finishes; ctl_acting keeps its follow-ups from writing) and frees them.
 * On its own thread, so that controller_stop waits only a bounded time.
 */
static void *
controller__reaper(void *arg)
{
	struct ctl_run *r = arg;

	workqueue_free(r->q);
	workqueue_free(r->urgent);
	r->q = r->urgent = NULL;
	controller__thread_exit(r);
	return NULL;
}

static int
controller__spawn(struct controller *c, struct ctl_run *r, void *(*fn)(void *))
{
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	atomic_fetch_add(&r->refs, 1);
	c->threads++;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, fn, r);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		atomic_fetch_sub(&r->refs, 1);
		c->threads--;
		return -rc;
	}
	return 0;
}

static void
controller__subscribe(struct controller *c, struct ctl_run *r, bool on)
{
	struct cache *caches[3] = { node_cache_base(c->ctx.nodes), pod_cache_base(c->ctx.pods),
	    c->ctx.nodepools != NULL ? crd_cache_base(c->ctx.nodepools) : NULL };

	for (size_t i = 0; i < 3; i++) {
		if (caches[i] == NULL)
			continue;
		if (on)
			cache_subscribe(caches[i], r->sub);
		else
			cache_unsubscribe(caches[i], r->sub);
	}
}

int
controller_start(struct controller *c)
{
	struct ctl_run *r;
	int rc = 0;

	pthread_mutex_lock(&c->lock);
	if (c->run != NULL)
		goto out;
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	r->ctl = c;
	atomic_init(&r->refs, 1);
	atomic_init(&r->stop, false);
	r->sub = cache_sub_new(CONTROLLER_SUB_QUEUE);
	if (r->sub == NULL ||
	    (rc = workqueue_new(c->opts.workers, LIMITS_CONTROLLER_QUEUE, controller__task, r,
	    &r->q)) < 0 ||
	    (rc = workqueue_new(CONTROLLER_URGENT_WORKERS, LIMITS_CONTROLLER_QUEUE, controller__urgent, r,
	    &r->urgent)) < 0) {
		workqueue_free(r->q);
		controller__run_unref(r);
		rc = rc < 0 ? rc : -ENOMEM;
		goto out;
	}
	controller__subscribe(c, r, true);
	c->run = r;
	rc = controller__spawn(c, r, controller__loop);
	pthread_mutex_unlock(&c->lock);
	if (rc < 0) {
		controller_stop(c);
		return rc;
	}
	log_msg(LOG_LEVEL_INFO, json_pack("{s:i,s:I}", "workers", (int)c->opts.workers,
	    "tick_ms", (json_int_t)c->opts.tick_ms), "pool controller started");
	return 0;
out:
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void
controller_stop(struct controller *c)
{
	struct ctl_run *r;
	int64_t deadline;
	unsigned left;

	pthread_mutex_lock(&c->lock);
	r = c->run;
	c->run = NULL;
	pthread_mutex_unlock(&c->lock);
	if (r == NULL)
		return;
	/* From here on no write starts: every one asks ctl_acting first. */
	atomic_store(&r->stop, true);
	controller__subscribe(c, r, false);
	cache_sub_close(r->sub);
	deadline = time_mono_ms() + CONTROLLER_STOP_GRACE_MS;
	pthread_mutex_lock(&c->lock);
	if (controller__spawn(c, r, controller__reaper) < 0) {
		/* No thread for it: wait for the tasks in flight here. */
		pthread_mutex_unlock(&c->lock);
		workqueue_free(r->q);
		workqueue_free(r->urgent);
		r->q = r->urgent = NULL;
		pthread_mutex_lock(&c->lock);
	}
	while (c->threads > 0 && time_cond_wait_until(&c->cond, &c->lock, deadline) == 0)
		;
	left = c->threads;
	pthread_mutex_unlock(&c->lock);
	controller__run_unref(r);
	log_msg(LOG_LEVEL_INFO, json_pack("{s:i}", "threads_finishing", (int)left),
	    "pool controller stopped");
}

void
controller_on_started(void *c)
{
	int rc = controller_start(c);

	if (rc < 0)
		log_msg(LOG_LEVEL_ERROR, json_pack("{s:s}", "error", strerror(-rc)),
		    "pool controller did not start");
}

void
controller_on_stopped(void *c)
{
	controller_stop(c);
}

void
controller_free(struct controller *c)
{
	if (c == NULL)
		return;
	if (c->view != NULL && c->instances != NULL && c->retire != NULL && c->seen != NULL &&
	    c->retiring != NULL && c->reserved != NULL) {
		controller_stop(c);
		/* Threads of earlier terms still finishing a call: they hold c. */
		pthread_mutex_lock(&c->lock);
		while (c->threads > 0)
			pthread_cond_wait(&c->cond, &c->lock);
		pthread_mutex_unlock(&c->lock);
		pthread_mutex_destroy(&c->lock);
		pthread_cond_destroy(&c->cond);
	}
	while (c->pools != NULL) {
		struct ctl_poolmem *m = c->pools;
		c->pools = m->next;
		free(m->status_written);
		pthread_mutex_destroy(&m->serve_lock);
		free(m);
	}
	ec2view_free(c->view);
	ctl_map_free(c->instances);
	ctl_map_free(c->retire);
	ctl_map_free(c->retiring);
	ctl_map_free(c->reserved);
	ctl_map_free(c->seen);
	free(c);
}
