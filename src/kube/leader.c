/* Lease-based leader election (client-go's LeaderElector): acquire, renew, release. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "stratos/leader.h"
#include "stratos/log.h"
#include "stratos/metrics.h"
#include "stratos/timeutil.h"

struct leader {
	struct kube *k;
	char *ns;
	char *name;
	char identity[LEADER_IDENTITY_MAX];
	long lease_ms, deadline_ms, retry_ms;
	void (*on_started)(void *ctx);
	void (*on_stopped)(void *ctx);
	void *ctx;

	pthread_t thread;
	bool started;
	atomic_bool stop;
	pthread_mutex_t lock;        /* below, and the interruptible sleep */
	pthread_cond_t cond;
	bool leading;
	int64_t renewed_ms;          /* monotonic time of the last successful acquire/renew */
	char holder[LEADER_IDENTITY_MAX];

	/* Election thread only: what client-go calls the observed record. */
	char *observed_spec;         /* compact JSON of the Lease spec last seen */
	int64_t observed_ms;         /* monotonic time it was first seen */
	int64_t observed_lease_ms;   /* its leaseDurationSeconds */
	unsigned seed;               /* acquire jitter */
	json_int_t observed_transitions;

	struct metrics_family *m_leader;
};

int
leader_identity(char *out, size_t len)
{
	unsigned char rnd[8];
	char host[64];

	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "stratosd");
	host[sizeof(host) - 1] = '\0';
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -EIO;
	if ((size_t)snprintf(out, len, "%s_%02x%02x%02x%02x%02x%02x%02x%02x", host, rnd[0], rnd[1],
	    rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]) >= len)
		return -ENAMETOOLONG;
	return 0;
}

struct leader *
leader_new(struct kube *k, const struct leader_config *cfg)
{
	struct leader *l;

	if (cfg->namespace == NULL)
		return NULL;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return NULL;
	l->k = k;
	l->ns = strdup(cfg->namespace);
	l->name = strdup(cfg->name != NULL ? cfg->name : LEADER_LEASE_NAME);
	if (cfg->identity != NULL)
		snprintf(l->identity, sizeof(l->identity), "%s", cfg->identity);
	else if (leader_identity(l->identity, sizeof(l->identity)) < 0)
		l->identity[0] = '\0';
	l->lease_ms = cfg->lease_duration_ms > 0 ? cfg->lease_duration_ms : LEADER_LEASE_DURATION_MS;
	l->deadline_ms = cfg->renew_deadline_ms > 0 ? cfg->renew_deadline_ms :
	    LEADER_RENEW_DEADLINE_MS;
	l->retry_ms = cfg->retry_period_ms > 0 ? cfg->retry_period_ms : LEADER_RETRY_PERIOD_MS;
	l->on_started = cfg->on_started;
	l->on_stopped = cfg->on_stopped;
	l->ctx = cfg->ctx;
	atomic_init(&l->stop, false);
	if (getrandom(&l->seed, sizeof(l->seed), 0) != (ssize_t)sizeof(l->seed))
		l->seed = (unsigned)time_mono_us();
	pthread_mutex_init(&l->lock, NULL);
	time_cond_init(&l->cond);
	l->m_leader = metrics_register(METRICS_GAUGE, "stratos_leader",
	    "1 while this replica holds the controller Lease.", NULL, NULL, 0);
	if (l->m_leader != NULL)
		metrics_gauge_set(l->m_leader, 0);
	/* client-go refuses a renew deadline that does not leave room inside the lease. */
	if (l->ns == NULL || l->name == NULL || l->identity[0] == '\0' ||
	    l->deadline_ms >= l->lease_ms || l->retry_ms >= l->deadline_ms) {
		leader_free(l);
		return NULL;
	}
	return l;
}

const char *
leader_self(const struct leader *l)
{
	return l->identity;
}

bool
leader_is_leader(struct leader *l)
{
	bool yes;

	pthread_mutex_lock(&l->lock);
	yes = l->leading && time_mono_ms() - l->renewed_ms < l->deadline_ms;
	pthread_mutex_unlock(&l->lock);
	return yes;
}

void
leader_holder(struct leader *l, char *out, size_t len)
{
	pthread_mutex_lock(&l->lock);
	snprintf(out, len, "%s", l->holder);
	pthread_mutex_unlock(&l->lock);
}

static void
leader__set_holder(struct leader *l, const char *holder)
{
	pthread_mutex_lock(&l->lock);
	snprintf(l->holder, sizeof(l->holder), "%s", holder != NULL ? holder : "");
	pthread_mutex_unlock(&l->lock);
}

/* Notes the record; a change restarts the lease-duration clock of a would-be taker. */
static void
leader__observe(struct leader *l, json_t *spec)
{
	char *raw = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS);

	if (raw == NULL)
		return;
	if (l->observed_spec == NULL || strcmp(raw, l->observed_spec) != 0) {
		free(l->observed_spec);
		l->observed_spec = raw;
		l->observed_ms = time_mono_ms();
		/* Absent or 0 (client-go reads it as 0): the record is stale at once. */
		l->observed_lease_ms = json_integer_value(json_object_get(spec,
		    "leaseDurationSeconds")) * 1000;
		l->observed_transitions = json_integer_value(json_object_get(spec,
		    "leaseTransitions"));
		leader__set_holder(l, json_string_value(json_object_get(spec, "holderIdentity")));
	} else {
		free(raw);
	}
}

static json_t *
leader__spec(const char *holder, long duration_s, const char *acquire, const char *renew,
    json_int_t transitions)
{
	return json_pack("{s:s,s:I,s:s,s:s,s:I}", "holderIdentity", holder,
	    "leaseDurationSeconds", (json_int_t)duration_s, "acquireTime", acquire,
	    "renewTime", renew, "leaseTransitions", transitions);
}

enum leader__result {
	LEADER__HELD,                /* acquired or renewed */
	LEADER__OTHER,               /* another holder's lease is valid */
	LEADER__FAILED,              /* request failed or lost a race: try again */
};

/* client-go's tryAcquireOrRenew. */
static enum leader__result
leader__try(struct leader *l, long timeout_ms)
{
	char path[KUBE_PATH_MAX], coll[KUBE_PATH_MAX], now[TIME_RFC3339_LEN];
	struct kube_req get = { .method = "GET", .path = path, .timeout_ms = timeout_ms };
	struct kube_error err;
	json_t *lease = NULL, *spec, *nspec = NULL, *out = NULL;
	const char *holder, *acquire;
	enum leader__result res = LEADER__FAILED;
	int rc;

	if (kube_path(path, &KUBE_LEASES, l->ns, l->name, NULL) < 0 ||
	    kube_path(coll, &KUBE_LEASES, l->ns, NULL, NULL) < 0)
		return LEADER__FAILED;
	time_format_rfc3339_micro(time_real_ms(), now);
	rc = kube_request(l->k, &get, &lease, &err);
	if (rc < 0 && err.class == KUBE_ERR_NOT_FOUND) {
		json_t *obj = json_pack("{s:s,s:s,s:{s:s,s:s},s:o}", "apiVersion",
		    "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name", l->name,
		    "namespace", l->ns, "spec", leader__spec(l->identity, l->lease_ms / 1000, now,
		    now, 0));
		char *body = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
		struct kube_req create = { .method = "POST", .path = coll, .body = body,
			.body_len = body != NULL ? strlen(body) : 0, .timeout_ms = timeout_ms };
		if (body != NULL && kube_request(l->k, &create, &out, &err) == 0) {
			leader__observe(l, json_object_get(out, "spec"));
			res = LEADER__HELD;
		} else if (body != NULL) {
			log_msg(LOG_LEVEL_DEBUG, json_pack("{s:s}", "error", err.message),
			    "cannot create the Lease");
		}
		free(body);
		json_decref(obj);
		json_decref(out);
		return res;
	}
	if (rc < 0) {
		log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s}", "lease", l->name, "error", err.message),
		    "cannot read the Lease");
		return LEADER__FAILED;
	}
	spec = json_object_get(lease, "spec");
	if (!json_is_object(spec)) {
		spec = json_object();
		json_object_set_new(lease, "spec", spec);
	}
	leader__observe(l, spec);
	holder = json_string_value(json_object_get(spec, "holderIdentity"));
	/*
	 * Someone else's record stands while it changed less than its own
	 * leaseDurationSeconds ago, on our clock: client-go's isLeaseValid is
	 * observedTime + observedRecord.LeaseDurationSeconds > now. The holder's
	 * duration, not ours: replicas may be configured differently, and a
	 * released Lease (1 s) is taken over after 1 s, not after our 15.
	 */
	if (holder != NULL && holder[0] != '\0' && strcmp(holder, l->identity) != 0 &&
	    time_mono_ms() - l->observed_ms < l->observed_lease_ms) {
		res = LEADER__OTHER;
		goto out;
	}
	/*
	 * Our own record (renewing, or back after a lost renewal) keeps acquireTime
	 * and the transition count, as client-go does; taking over bumps it.
	 */
	acquire = json_string_value(json_object_get(spec, "acquireTime"));
	if (holder != NULL && strcmp(holder, l->identity) == 0 && acquire != NULL)
		nspec = leader__spec(l->identity, l->lease_ms / 1000, acquire, now,
		    l->observed_transitions);
	else
		nspec = leader__spec(l->identity, l->lease_ms / 1000, now, now,
		    l->observed_transitions + 1);
	if (nspec == NULL || json_object_set_new(lease, "spec", nspec) < 0)
		goto out;
	{
		char *body = json_dumps(lease, JSON_COMPACT);
		struct kube_req put = { .method = "PUT", .path = path, .body = body,
			.body_len = body != NULL ? strlen(body) : 0, .timeout_ms = timeout_ms };
		if (body != NULL && kube_request(l->k, &put, &out, &err) == 0) {
			leader__observe(l, json_object_get(out, "spec"));
			res = LEADER__HELD;
		} else if (body != NULL && err.class != KUBE_ERR_CONFLICT) {
			log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s}", "lease", l->name, "error",
			    err.message), "cannot update the Lease");
		}
		free(body);
	}
out:
	json_decref(out);
	json_decref(lease);
	return res;
}

/* client-go's release: empty holder and a 1 s lease, so the next candidate need not wait. */
static void
leader__release(struct leader *l)
{
	char path[KUBE_PATH_MAX], now[TIME_RFC3339_LEN];
	struct kube_error err;
	json_t *lease = NULL, *spec;
	const char *holder;

	if (kube_path(path, &KUBE_LEASES, l->ns, l->name, NULL) < 0 ||
	    kube_get(l->k, path, &lease, &err) < 0) {
		log_warn("cannot release the Lease: %s", err.message);
		return;
	}
	holder = json_string_value(json_object_get(json_object_get(lease, "spec"),
	    "holderIdentity"));
	if (holder == NULL || strcmp(holder, l->identity) != 0) {
		json_decref(lease);
		return;
	}
	time_format_rfc3339_micro(time_real_ms(), now);
	spec = leader__spec("", 1, now, now, l->observed_transitions);
	if (spec != NULL && json_object_set_new(lease, "spec", spec) == 0 &&
	    kube_replace(l->k, path, lease, NULL, &err) == 0)
		log_msg(LOG_LEVEL_INFO, json_pack("{s:s,s:s}", "lease", l->name, "identity",
		    l->identity), "released the Lease");
	else
		log_warn("cannot release the Lease: %s", err.message);
	json_decref(lease);
}

static bool
leader__sleep(struct leader *l, long ms)
{
	int64_t deadline = time_mono_ms() + ms;

	pthread_mutex_lock(&l->lock);
	while (!atomic_load(&l->stop) &&
	    time_cond_wait_until(&l->cond, &l->lock, deadline) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&l->lock);
	return atomic_load(&l->stop);
}

static void
leader__set_leading(struct leader *l, bool leading, const char *why)
{
	char holder[LEADER_IDENTITY_MAX];

	pthread_mutex_lock(&l->lock);
	l->leading = leading;
	if (leading)
		l->renewed_ms = time_mono_ms();
	snprintf(holder, sizeof(holder), "%s", l->holder);
	pthread_mutex_unlock(&l->lock);
	if (l->m_leader != NULL)
		metrics_gauge_set(l->m_leader, leading ? 1 : 0);
	/* Losing the lease unplanned is worth a warning; handing it over at shutdown is not. */
	log_msg(leading || strcmp(why, "shutting down") == 0 ? LOG_LEVEL_INFO : LOG_LEVEL_WARN,
	    json_pack("{s:s,s:s,s:s,s:s,s:s}",
	    "lease", l->name, "namespace", l->ns, "identity", l->identity, "holder", holder,
	    "reason", why), leading ? "became leader" : "stopped leading");
	if (leading && l->on_started != NULL)
		l->on_started(l->ctx);
	else if (!leading && l->on_stopped != NULL)
		l->on_stopped(l->ctx);
}

static void *
leader__main(void *arg)
{
	struct leader *l = arg;
	char last_holder[LEADER_IDENTITY_MAX] = "";

	log_msg(LOG_LEVEL_INFO, json_pack("{s:s,s:s,s:s}", "lease", l->name, "namespace", l->ns,
	    "identity", l->identity), "leader election started");
	while (!atomic_load(&l->stop)) {
		bool leading;
		int64_t renewed;

		pthread_mutex_lock(&l->lock);
		leading = l->leading;
		renewed = l->renewed_ms;
		pthread_mutex_unlock(&l->lock);
		if (!leading) {
			/* client-go jitters the acquire period by up to 20 %. */
			long wait = l->retry_ms + (long)((unsigned long)rand_r(&l->seed) %
			    (unsigned long)(l->retry_ms / 5 + 1));
			enum leader__result r = leader__try(l, l->deadline_ms);
			if (r == LEADER__HELD) {
				leader__set_leading(l, true, "acquired");
				continue;
			}
			char holder[LEADER_IDENTITY_MAX];
			leader_holder(l, holder, sizeof(holder));
			if (strcmp(holder, last_holder) != 0) {
				log_msg(LOG_LEVEL_INFO, json_pack("{s:s,s:s}", "lease", l->name,
				    "holder", holder), "observed leader");
				snprintf(last_holder, sizeof(last_holder), "%s", holder);
			}
			if (leader__sleep(l, wait))
				break;
			continue;
		}
		if (leader__sleep(l, l->retry_ms))
			break;
		/* Never let one request outlive the renew deadline. */
		long left = l->deadline_ms - (time_mono_ms() - renewed);
		enum leader__result r = left > 0 ? leader__try(l, left) : LEADER__FAILED;
		if (r == LEADER__HELD) {
			pthread_mutex_lock(&l->lock);
			l->renewed_ms = time_mono_ms();
			pthread_mutex_unlock(&l->lock);
		} else if (r == LEADER__OTHER) {
			leader__set_leading(l, false, "another holder took the lease");
		} else if (time_mono_ms() - renewed >= l->deadline_ms) {
			leader__set_leading(l, false, "renew deadline passed");
		}
	}
	return NULL;
}

int
leader_start(struct leader *l)
{
	int rc;

	if (l->started)
		return -EALREADY;
	atomic_store(&l->stop, false);
	rc = pthread_create(&l->thread, NULL, leader__main, l);
	if (rc != 0)
		return -rc;
	l->started = true;
	return 0;
}

void
leader_stop(struct leader *l, bool release)
{
	bool leading;

	if (l == NULL || !l->started)
		return;
	pthread_mutex_lock(&l->lock);
	atomic_store(&l->stop, true);
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->thread, NULL);
	l->started = false;
	pthread_mutex_lock(&l->lock);
	leading = l->leading;
	pthread_mutex_unlock(&l->lock);
	if (leading) {
		/* Leader work stops before another replica may start it. */
		leader__set_leading(l, false, "shutting down");
		if (release)
			leader__release(l);
	}
}

void
leader_free(struct leader *l)
{
	if (l == NULL)
		return;
	leader_stop(l, true);
	free(l->ns);
	free(l->name);
	free(l->observed_spec);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	free(l);
}
