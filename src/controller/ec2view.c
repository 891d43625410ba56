/* The EC2 view: the cluster's instances as the last replies showed them, refreshed only while something changes. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/ec2view.h"
#include "stratos/nodestate.h"
#include "stratos/timeutil.h"

struct ec2view__entry {
	struct ec2view_instance inst;
	bool wanted;
};

struct ec2view {
	struct ec2_client *ec2;
	char *cluster;
	int64_t resync_ms, poll_ms;
	pthread_mutex_t lock;           /* everything below */
	struct ec2view__entry *v;
	size_t n, cap;
	uint32_t *slots;                /* open addressing: entry index + 1, 0 = empty */
	size_t nslots;                  /* power of two, >= 2 n */
	char (*unknown)[32];            /* wanted ids the view does not hold */
	size_t nunknown;
	bool synced, want_full;
	int64_t full_mono, poll_mono;   /* time_mono_ms() of the last full listing / targeted poll */
	int64_t full_real;
	struct ec2view_stats stats;
	pthread_mutex_t refresh_lock;   /* one refresh at a time */
};

/* One change, collected under the lock and reported after it. */
struct ec2view__change {
	struct ec2view_instance now;
	int old_state;
};

struct ec2view__changes {
	struct ec2view__change *v;
	size_t n, cap;
	bool oom;
};

bool
ec2view_state_transitional(int state_code)
{
	return state_code == EC2_STATE_PENDING || state_code == EC2_STATE_STOPPING ||
	    state_code == EC2_STATE_SHUTTING_DOWN;
}

const char *
ec2view_state_name(int state_code)
{
	switch (state_code) {
	case EC2_STATE_PENDING: return "pending";
	case EC2_STATE_RUNNING: return "running";
	case EC2_STATE_SHUTTING_DOWN: return "shutting-down";
	case EC2_STATE_TERMINATED: return "terminated";
	case EC2_STATE_STOPPING: return "stopping";
	case EC2_STATE_STOPPED: return "stopped";
	case EC2VIEW_STATE_GONE: return "gone";
	default: return "unknown";
	}
}

static uint32_t
ec2view__hash(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id != '\0'; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h;
}

/* Rebuilds the slot table for n entries (after growth or removals). Returns 0 or -ENOMEM. */
static int
ec2view__reindex(struct ec2view *v)
{
	size_t want = 64;
	uint32_t *slots;

	while (want < 2 * v->n + 2)
		want *= 2;
	slots = calloc(want, sizeof(*slots));
	if (slots == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < v->n; i++) {
		size_t s = ec2view__hash(v->v[i].inst.id) & (want - 1);
		while (slots[s] != 0)
			s = (s + 1) & (want - 1);
		slots[s] = (uint32_t)(i + 1);
	}
	free(v->slots);
	v->slots = slots;
	v->nslots = want;
	return 0;
}

static struct ec2view__entry *
ec2view__find(struct ec2view *v, const char *id)
{
	if (v->nslots == 0)
		return NULL;
	for (size_t s = ec2view__hash(id) & (v->nslots - 1); v->slots[s] != 0;
	    s = (s + 1) & (v->nslots - 1)) {
		struct ec2view__entry *e = &v->v[v->slots[s] - 1];
		if (strcmp(e->inst.id, id) == 0)
			return e;
	}
	return NULL;
}

/* A new entry for id (not present). NULL on ENOMEM. */
static struct ec2view__entry *
ec2view__insert(struct ec2view *v, const char *id)
{
	struct ec2view__entry *e;

	if (v->n == v->cap) {
		size_t cap = v->cap ? 2 * v->cap : 64;
		struct ec2view__entry *nv = realloc(v->v, cap * sizeof(*nv));
		if (nv == NULL)
			return NULL;
		v->v = nv;
		v->cap = cap;
	}
	e = &v->v[v->n++];
	memset(e, 0, sizeof(*e));
	snprintf(e->inst.id, sizeof(e->inst.id), "%s", id);
	e->inst.state_code = EC2VIEW_STATE_GONE;
	if (2 * v->n + 2 > v->nslots) {
		if (ec2view__reindex(v) < 0) {
			v->n--;
			return NULL;
		}
	} else {
		size_t s = ec2view__hash(id) & (v->nslots - 1);
		while (v->slots[s] != 0)
			s = (s + 1) & (v->nslots - 1);
		v->slots[s] = (uint32_t)v->n;
	}
	return e;
}

static void
ec2view__note(struct ec2view__changes *ch, const struct ec2view_instance *now, int old_state)
{
	if (ch == NULL)
		return;
	if (ch->n == ch->cap) {
		size_t cap = ch->cap ? 2 * ch->cap : 16;
		struct ec2view__change *nv = realloc(ch->v, cap * sizeof(*nv));
		if (nv == NULL) {
			ch->oom = true;
			return;
		}
		ch->v = nv;
		ch->cap = cap;
	}
	ch->v[ch->n].now = *now;
	ch->v[ch->n].old_state = old_state;
	ch->n++;
}

static void
ec2view__report(struct ec2view__changes *ch, ec2view_change_fn fn, void *ctx)
{
	for (size_t i = 0; fn != NULL && i < ch->n; i++)
		fn(ctx, &ch->v[i].now, ch->v[i].old_state);
	free(ch->v);
	memset(ch, 0, sizeof(*ch));
}

static void
ec2view__forget_unknown(struct ec2view *v, const char *id)
{
	for (size_t i = 0; i < v->nunknown; i++) {
		if (strcmp(v->unknown[i], id) == 0) {
			memmove(v->unknown[i], v->unknown[v->nunknown - 1], sizeof(v->unknown[i]));
			v->nunknown--;
			return;
		}
	}
}

/* Sets an entry's state, noting the change. */
static void
ec2view__set_state(struct ec2view__entry *e, int code, int64_t now_real,
    struct ec2view__changes *ch, bool pool_changed)
{
	int old = e->inst.state_code;

	e->inst.observed_ms = now_real;
	if (old != code) {
		e->inst.state_code = code;
		e->inst.changed_ms = now_real;
	}
	if (old != code || pool_changed)
		ec2view__note(ch, &e->inst, old);
}

/* One instance of a reply, under the lock. */
static int
ec2view__apply_one(struct ec2view *v, const struct ec2_instance *in, bool described,
    int64_t now_real, struct ec2view__changes *ch)
{
	struct ec2view__entry *e = ec2view__find(v, in->id);
	const char *pool = ec2_instance_tag(in, NODESTATE_TAG_POOL);
	const char *state = ec2_instance_tag(in, NODESTATE_TAG_STATE);
	bool fresh = e == NULL, pool_changed;

	if (e == NULL && (e = ec2view__insert(v, in->id)) == NULL)
		return -ENOMEM;
	pool_changed = !fresh && strcmp(e->inst.pool, pool != NULL ? pool : "") != 0;
	snprintf(e->inst.pool, sizeof(e->inst.pool), "%s", pool != NULL ? pool : "");
	snprintf(e->inst.state_tag, sizeof(e->inst.state_tag), "%s", state != NULL ? state : "");
	if (in->subnet_id[0] != '\0')
		snprintf(e->inst.subnet_id, sizeof(e->inst.subnet_id), "%s", in->subnet_id);
	if (in->availability_zone[0] != '\0')
		snprintf(e->inst.zone, sizeof(e->inst.zone), "%s", in->availability_zone);
	if (in->client_token[0] != '\0')
		snprintf(e->inst.client_token, sizeof(e->inst.client_token), "%s", in->client_token);
	if (in->launch_time_ms != 0)
		e->inst.launch_ms = in->launch_time_ms;
	if (described) {
		e->inst.described = true;
		e->wanted = false;
	}
	ec2view__forget_unknown(v, in->id);
	ec2view__set_state(e, in->state_code, now_real, ch, pool_changed);
	return 0;
}

/* Drops the entries a full listing did not show (seen[i] false), noting them gone. */
static int
ec2view__sweep(struct ec2view *v, const bool *seen, int64_t now_real, struct ec2view__changes *ch)
{
	size_t w = 0;

	for (size_t i = 0; i < v->n; i++) {
		if (!seen[i]) {
			int old = v->v[i].inst.state_code;
			v->v[i].inst.state_code = EC2VIEW_STATE_GONE;
			v->v[i].inst.changed_ms = now_real;
			if (old != EC2VIEW_STATE_GONE)
				ec2view__note(ch, &v->v[i].inst, old);
			continue;
		}
		if (w != i)
			v->v[w] = v->v[i];
		w++;
	}
	if (w == v->n)
		return 0;
	v->n = w;
	return ec2view__reindex(v);
}

struct ec2view *
ec2view_new(struct ec2_client *ec2, const struct ec2view_options *opts)
{
	struct ec2view *v = calloc(1, sizeof(*v));

	if (v == NULL)
		return NULL;
	v->ec2 = ec2;
	v->cluster = strdup(opts != NULL && opts->cluster != NULL ? opts->cluster : "");
	v->unknown = calloc(EC2VIEW_WANTED_UNKNOWN_MAX, sizeof(*v->unknown));
	if (v->cluster == NULL || v->unknown == NULL) {
		free(v->cluster);
		free(v->unknown);
		free(v);
		return NULL;
	}
	v->resync_ms = opts != NULL && opts->resync_ms > 0 ? opts->resync_ms :
	    EC2VIEW_RESYNC_MS_DEFAULT;
	v->poll_ms = opts != NULL && opts->poll_ms > 0 ? opts->poll_ms : EC2VIEW_POLL_MS_DEFAULT;
	pthread_mutex_init(&v->lock, NULL);
	pthread_mutex_init(&v->refresh_lock, NULL);
	return v;
}

void
ec2view_free(struct ec2view *v)
{
	if (v == NULL)
		return;
	pthread_mutex_destroy(&v->lock);
	pthread_mutex_destroy(&v->refresh_lock);
	free(v->v);
	free(v->slots);
	free(v->unknown);
	free(v->cluster);
	free(v);
}

bool
ec2view_synced(struct ec2view *v)
{
	bool s;

	pthread_mutex_lock(&v->lock);
	s = v->synced;
	pthread_mutex_unlock(&v->lock);
	return s;
}

int64_t
ec2view_full_ms(struct ec2view *v)
{
	int64_t t;

	pthread_mutex_lock(&v->lock);
	t = v->full_real;
	pthread_mutex_unlock(&v->lock);
	return t;
}

int
ec2view_get(struct ec2view *v, const char *id, struct ec2view_instance *out)
{
	struct ec2view__entry *e;
	int rc = -ENOENT;

	pthread_mutex_lock(&v->lock);
	if ((e = ec2view__find(v, id)) != NULL) {
		*out = e->inst;
		rc = 0;
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}

long
ec2view_list(struct ec2view *v, const char *pool, struct ec2view_instance **out)
{
	long n = 0;

	*out = NULL;
	pthread_mutex_lock(&v->lock);
	for (size_t i = 0; i < v->n; i++)
		if (pool == NULL || strcmp(v->v[i].inst.pool, pool) == 0)
			n++;
	if (n > 0 && (*out = malloc((size_t)n * sizeof(**out))) == NULL) {
		pthread_mutex_unlock(&v->lock);
		return -ENOMEM;
	}
	n = 0;
	for (size_t i = 0; *out != NULL && i < v->n; i++)
		if (pool == NULL || strcmp(v->v[i].inst.pool, pool) == 0)
			(*out)[n++] = v->v[i].inst;
	pthread_mutex_unlock(&v->lock);
	return n;
}

int
ec2view_apply_instances(struct ec2view *v, const struct ec2_instances *list, bool described,
    bool full, ec2view_change_fn fn, void *ctx)
{
	struct ec2view__changes ch = { 0 };
	int64_t now_real = time_real_ms();
	bool *seen = NULL;
	int rc = 0;

	pthread_mutex_lock(&v->lock);
	for (size_t i = 0; rc == 0 && i < list->len; i++)
		rc = ec2view__apply_one(v, &list->v[i], described, now_real, &ch);
	if (rc == 0 && full) {
		/* After the inserts: every entry the listing did not name is gone. */
		seen = calloc(v->n + 1, sizeof(*seen));
		if (seen == NULL) {
			rc = -ENOMEM;
		} else {
			for (size_t i = 0; i < list->len; i++) {
				struct ec2view__entry *e = ec2view__find(v, list->v[i].id);
				if (e != NULL)
					seen[e - v->v] = true;
			}
			rc = ec2view__sweep(v, seen, now_real, &ch);
		}
		if (rc == 0) {
			v->synced = true;
			v->want_full = false;
			v->full_real = now_real;
			v->full_mono = time_mono_ms();
			v->nunknown = 0;
		}
	}
	pthread_mutex_unlock(&v->lock);
	free(seen);
	ec2view__report(&ch, fn, ctx);
	return rc;
}

void
ec2view_apply_changes(struct ec2view *v, const struct ec2_state_changes *changes,
    ec2view_change_fn fn, void *ctx)
{
	struct ec2view__changes ch = { 0 };
	int64_t now_real = time_real_ms();

	pthread_mutex_lock(&v->lock);
	for (size_t i = 0; i < changes->len; i++) {
		struct ec2view__entry *e = ec2view__find(v, changes->v[i].id);
		if (e != NULL)
			ec2view__set_state(e, changes->v[i].current_code, now_real, &ch, false);
	}
	pthread_mutex_unlock(&v->lock);
	ec2view__report(&ch, fn, ctx);
}

void
ec2view_apply_state_tag(struct ec2view *v, const char *const *ids, size_t n, const char *state)
{
	pthread_mutex_lock(&v->lock);
	for (size_t i = 0; i < n; i++) {
		struct ec2view__entry *e = ec2view__find(v, ids[i]);
		if (e != NULL)
			snprintf(e->inst.state_tag, sizeof(e->inst.state_tag), "%s", state);
	}
	pthread_mutex_unlock(&v->lock);
}

void
ec2view_want(struct ec2view *v, const char *id)
{
	struct ec2view__entry *e;

	if (id == NULL || id[0] == '\0' || strlen(id) >= sizeof(v->unknown[0]))
		return;
	pthread_mutex_lock(&v->lock);
	if ((e = ec2view__find(v, id)) != NULL) {
		e->wanted = true;
	} else {
		size_t i;
		for (i = 0; i < v->nunknown && strcmp(v->unknown[i], id) != 0; i++)
			;
		if (i == v->nunknown && v->nunknown < EC2VIEW_WANTED_UNKNOWN_MAX)
			snprintf(v->unknown[v->nunknown++], sizeof(v->unknown[0]), "%s", id);
		else if (i == v->nunknown)
			v->want_full = true;            /* too many strangers: list everything */
	}
	pthread_mutex_unlock(&v->lock);
}

void
ec2view_want_full(struct ec2view *v)
{
	pthread_mutex_lock(&v->lock);
	v->want_full = true;
	pthread_mutex_unlock(&v->lock);
}

/* Whether a targeted poll has something to ask. Lock held. */
static bool
ec2view__poll_needed(struct ec2view *v)
{
	if (v->nunknown > 0)
		return true;
	for (size_t i = 0; i < v->n; i++)
		if (v->v[i].wanted || ec2view_state_transitional(v->v[i].inst.state_code))
			return true;
	return false;
}

int64_t
ec2view_next_refresh(struct ec2view *v)
{
	int64_t next;

	pthread_mutex_lock(&v->lock);
	if (!v->synced || v->want_full) {
		next = v->poll_mono + v->poll_ms;     /* failures back off by a poll period */
		if (v->poll_mono == 0)
			next = 0;
	} else {
		next = v->full_mono + v->resync_ms;
		if (ec2view__poll_needed(v) && v->poll_mono + v->poll_ms < next)
			next = v->poll_mono + v->poll_ms;
	}
	pthread_mutex_unlock(&v->lock);
	return next;
}

void
ec2view_stats(struct ec2view *v, struct ec2view_stats *out)
{
	pthread_mutex_lock(&v->lock);
	*out = v->stats;
	out->instances = v->n;
	out->transitional = 0;
	for (size_t i = 0; i < v->n; i++)
		if (ec2view_state_transitional(v->v[i].inst.state_code))
			out->transitional++;
	pthread_mutex_unlock(&v->lock);
}

/* The ids a targeted poll asks about (at most LIMITS_EC2_IDS_PER_CALL). Lock held. */
static size_t
ec2view__poll_ids(struct ec2view *v, char (*ids)[32], size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < v->nunknown && n < max; i++)
		memcpy(ids[n++], v->unknown[i], sizeof(ids[0]));
	for (size_t i = 0; i < v->n && n < max; i++)
		if (v->v[i].wanted || ec2view_state_transitional(v->v[i].inst.state_code))
			memcpy(ids[n++], v->v[i].inst.id, sizeof(ids[0]));
	return n;
}

int
ec2view_refresh(struct ec2view *v, int64_t deadline_ms, ec2view_change_fn fn, void *ctx,
    struct ec2_error *err)
{
	struct ec2_call call = { .deadline_ms = deadline_ms };
	struct ec2_instances list = { 0 };
	char (*ids)[32] = NULL;
	const char **idp = NULL;
	const char *cluster_filter[1];
	struct ec2_filter filter;
	size_t nids = 0;
	bool full;
	int64_t now;
	int rc = 0;

	if (v->ec2 == NULL)
		return -ENOTSUP;
	pthread_mutex_lock(&v->refresh_lock);
	now = time_mono_ms();
	if (ec2view_next_refresh(v) > now)
		goto out;                   /* another caller just did it */
	pthread_mutex_lock(&v->lock);
	full = !v->synced || v->want_full || now >= v->full_mono + v->resync_ms;
	if (!full) {
		ids = calloc(LIMITS_EC2_IDS_PER_CALL, sizeof(*ids));
		idp = calloc(LIMITS_EC2_IDS_PER_CALL, sizeof(*idp));
		if (ids != NULL && idp != NULL)
			nids = ec2view__poll_ids(v, ids, LIMITS_EC2_IDS_PER_CALL);
	}
	pthread_mutex_unlock(&v->lock);
	if (!full && (ids == NULL || idp == NULL)) {
		rc = -ENOMEM;
		goto out;
	}
	if (full) {
		rc = ec2_describe_cluster_instances(v->ec2, v->cluster, NULL, NULL, &call, &list, err);
	} else if (nids > 0) {
		for (size_t i = 0; i < nids; i++)
			idp[i] = ids[i];
		cluster_filter[0] = v->cluster;
		filter = (struct ec2_filter){ "tag:" NODESTATE_TAG_CLUSTER, cluster_filter, 1 };
		rc = ec2_describe_instances(v->ec2, &filter, 1, idp, nids, &call, &list, err);
	}
	pthread_mutex_lock(&v->lock);
	v->poll_mono = time_mono_ms();
	if (rc == 0 && full) {
		v->full_mono = v->poll_mono;
		v->stats.full++;
	} else if (rc == 0 && nids > 0) {
		v->stats.targeted++;
	} else if (rc < 0) {
		v->stats.failures++;
		/* An id EC2 does not know (vanished, or not visible yet): list everything next time. */
		if (rc == -ENOENT)
			v->want_full = true;
	}
	pthread_mutex_unlock(&v->lock);
	if (rc == 0 && (full || nids > 0)) {
		rc = ec2view_apply_instances(v, &list, true, full, fn, ctx);
		if (rc == 0 && !full) {
			/* Asked about and not shown (another cluster's, or gone): stop asking. */
			pthread_mutex_lock(&v->lock);
			for (size_t i = 0; i < nids; i++) {
				struct ec2view__entry *e = ec2view__find(v, ids[i]);
				if (e != NULL)
					e->wanted = false;
				ec2view__forget_unknown(v, ids[i]);
			}
			pthread_mutex_unlock(&v->lock);
		}
	}
out:
	pthread_mutex_unlock(&v->refresh_lock);
	ec2_instances_free(&list);
	free(ids);
	free(idp);
	return rc;
}
