/* The list+watch loop (informer) that keeps a cache in step with the API. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "stratos/jsonprune.h"
#include "stratos/kube_informer.h"
#include "stratos/limits.h"
#include "stratos/log.h"
#include "stratos/metrics.h"
#include "stratos/timeutil.h"

#define KUBE_WATCH_BACKOFF_MIN_MS   200
#define KUBE_WATCH_BACKOFF_MAX_MS   30000
#define KUBE_WATCH_IDLE_SLACK_S     30      /* silence beyond timeoutSeconds = dead stream */
#define KUBE_WATCH_SHORT_MS         1000    /* an empty watch shorter than this backs off */

/* Why a watch stream ended, as returned by the stream callback (positive). */
enum {
	KUBE__END_GONE = 1,              /* ERROR event with code 410 */
	KUBE__END_ERROR_EVENT,           /* another ERROR event */
	KUBE__END_APPLY_FAILED,          /* the cache refused an event */
	KUBE__END_OVERSIZE,              /* an event over LIMITS_KUBE_WATCH_EVENT */
	KUBE__END_BAD_EVENT,             /* not a watch event stream */
};

struct kube_informer {
	struct kube *k;
	char *resource;
	char *path;
	char *query;                 /* selectors, escaped, "" when none */
	long watch_timeout_s;
	const struct kube_informer_ops *ops;
	void *ctx;
	struct jsonprune *prune_items;   /* for LIST items */
	struct jsonprune *prune_events;  /* the same inside watch events */

	pthread_t thread;
	bool started;
	atomic_bool stop;
	pthread_mutex_t lock;        /* st, and the stop sleep */
	pthread_cond_t cond;
	struct kube_informer_status st;

	/* Watch thread only. */
	char rv[sizeof(((struct kube_informer_status *)0)->resource_version)];
	unsigned seed;                   /* jitter; differs between replicas and informers */
	struct kube_watch_parser parser;
	unsigned long stream_events;
	struct metrics_family *m_restarts;
};

static char *
kube_informer__query(const struct kube_informer_config *cfg)
{
	char *ls = NULL, *fs = NULL, *q = NULL;

	if (cfg->label_selector != NULL && (ls = httpc_escape(cfg->label_selector)) == NULL)
		goto out;
	if (cfg->field_selector != NULL && (fs = httpc_escape(cfg->field_selector)) == NULL)
		goto out;
	if (asprintf(&q, "%s%s%s%s%s", ls != NULL ? "labelSelector=" : "", ls != NULL ? ls : "",
	    ls != NULL && fs != NULL ? "&" : "", fs != NULL ? "fieldSelector=" : "",
	    fs != NULL ? fs : "") < 0)
		q = NULL;
out:
	free(ls);
	free(fs);
	return q;
}

struct kube_informer *
kube_informer_new(struct kube *k, const struct kube_informer_config *cfg)
{
	static const char *const labels[] = { "resource", "reason", NULL };
	struct kube_informer *inf = calloc(1, sizeof(*inf));

	if (inf == NULL)
		return NULL;
	inf->k = k;
	inf->resource = strdup(cfg->resource);
	inf->path = strdup(cfg->path);
	inf->query = kube_informer__query(cfg);
	inf->watch_timeout_s = cfg->watch_timeout_s;
	if (cfg->prune != NULL) {
		inf->prune_items = jsonprune_new(cfg->prune, NULL);
		inf->prune_events = jsonprune_new(cfg->prune, "object");
		if (inf->prune_items == NULL || inf->prune_events == NULL) {
			kube_informer_free(inf);
			return NULL;
		}
	}
	inf->ops = cfg->ops;
	inf->ctx = cfg->ctx;
	atomic_init(&inf->stop, false);
	if (getrandom(&inf->seed, sizeof(inf->seed), 0) != (ssize_t)sizeof(inf->seed))
		inf->seed = (unsigned)time_mono_us();
	pthread_mutex_init(&inf->lock, NULL);
	time_cond_init(&inf->cond);
	inf->m_restarts = metrics_register(METRICS_COUNTER, "stratos_kube_watch_restarts_total",
	    "Watch streams restarted, by resource and reason (closed, error, gone, ...).",
	    labels, NULL, 0);
	if (inf->resource == NULL || inf->path == NULL || inf->query == NULL) {
		kube_informer_free(inf);
		return NULL;
	}
	return inf;
}

/* Sleeps up to ms unless stopped. Returns true when stopping. */
static bool
kube_informer__sleep(struct kube_informer *inf, long ms)
{
	int64_t deadline = time_mono_ms() + ms;

	pthread_mutex_lock(&inf->lock);
	while (!atomic_load(&inf->stop) &&
	    time_cond_wait_until(&inf->cond, &inf->lock, deadline) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&inf->lock);
	return atomic_load(&inf->stop);
}

/* Full jitter between half and all of the current step, then double the step. */
static long
kube_informer__backoff(struct kube_informer *inf, long *step_ms)
{
	long cur = *step_ms < KUBE_WATCH_BACKOFF_MIN_MS ? KUBE_WATCH_BACKOFF_MIN_MS : *step_ms;
	long wait = cur / 2 +
	    (long)((unsigned long)rand_r(&inf->seed) % (unsigned long)(cur / 2 + 1));

	*step_ms = cur * 2 > KUBE_WATCH_BACKOFF_MAX_MS ? KUBE_WATCH_BACKOFF_MAX_MS : cur * 2;
	return wait;
}

static void
kube_informer__set_error(struct kube_informer *inf, const char *msg)
{
	pthread_mutex_lock(&inf->lock);
	snprintf(inf->st.last_error, sizeof(inf->st.last_error), "%s", msg);
	pthread_mutex_unlock(&inf->lock);
}

static void
kube_informer__set_rv(struct kube_informer *inf, const char *rv)
{
	if (rv == NULL || rv[0] == '\0')
		return;
	snprintf(inf->rv, sizeof(inf->rv), "%s", rv);
	pthread_mutex_lock(&inf->lock);
	snprintf(inf->st.resource_version, sizeof(inf->st.resource_version), "%s", rv);
	pthread_mutex_unlock(&inf->lock);
}

static int
kube_informer__list_item(void *ctx, json_t *item)
{
	struct kube_informer *inf = ctx;

	if (atomic_load(&inf->stop))
		return -ECANCELED;
	return inf->ops->list_item(inf->ctx, item);
}

static int
kube_informer__list(struct kube_informer *inf)
{
	struct kube_error err;
	char *rv = NULL;
	int64_t t0 = time_mono_ms();
	int rc;

	rc = inf->ops->list_begin(inf->ctx);
	if (rc < 0)
		return rc;
	rc = kube_list(inf->k, inf->path, inf->query[0] != '\0' ? inf->query : NULL,
	    inf->prune_items, kube_informer__list_item, inf, &rv, &err);
	if (rc == 0 && (rv == NULL || rv[0] == '\0')) {
		snprintf(err.message, sizeof(err.message), "LIST reply without resourceVersion");
		rc = -EBADMSG;
	}
	if (rc == 0)
		rc = inf->ops->list_end(inf->ctx, rv);
	else
		inf->ops->list_abort(inf->ctx);
	if (rc < 0) {
		char msg[200];
		snprintf(msg, sizeof(msg), "list: %s", rc == -ECANCELED ? "cancelled" :
		    err.class != KUBE_ERR_NONE ? err.message : strerror(-rc));
		kube_informer__set_error(inf, msg);
		if (rc != -ECANCELED)
			log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s}", "resource", inf->resource,
			    "error", msg), "list failed; retrying with backoff");
		free(rv);
		return rc;
	}
	kube_informer__set_rv(inf, rv);
	/*
	 * A LIST leaves megabytes of page buffers free in the arenas of the
	 * threads that fetched them; hand them back rather than keep them as RSS.
	 */
	malloc_trim(0);
	pthread_mutex_lock(&inf->lock);
	inf->st.synced = true;
	inf->st.lists++;
	pthread_mutex_unlock(&inf->lock);
	log_msg(LOG_LEVEL_INFO, json_pack("{s:s,s:s,s:I}", "resource", inf->resource,
	    "resourceVersion", rv, "ms", (json_int_t)(time_mono_ms() - t0)), "listed");
	free(rv);
	return 0;
}

static int
kube_informer__on_event(void *ctx, const struct kube_watch_event *ev)
{
	struct kube_informer *inf = ctx;
	int rc;

	switch (ev->type) {
	case KUBE_WATCH_BOOKMARK:
		kube_informer__set_rv(inf, ev->resource_version);
		pthread_mutex_lock(&inf->lock);
		inf->st.bookmarks++;
		pthread_mutex_unlock(&inf->lock);
		return 0;
	case KUBE_WATCH_ERROR: {
		const char *m = json_string_value(json_object_get(ev->object, "message"));
		char msg[200];
		snprintf(msg, sizeof(msg), "ERROR event %ld: %s", ev->code, m != NULL ? m : "");
		kube_informer__set_error(inf, msg);
		return ev->code == 410 ? KUBE__END_GONE : KUBE__END_ERROR_EVENT;
	}
	default:
		rc = inf->ops->event(inf->ctx, ev->type, ev->object);
		if (rc < 0) {
			kube_informer__set_error(inf, "the cache refused a watch event");
			return KUBE__END_APPLY_FAILED;
		}
		kube_informer__set_rv(inf, ev->resource_version);
		inf->stream_events++;
		pthread_mutex_lock(&inf->lock);
		inf->st.events++;
		pthread_mutex_unlock(&inf->lock);
		return 0;
	}
}

static int
kube_informer__on_data(void *ctx, const char *data, size_t len)
{
	struct kube_informer *inf = ctx;
	int rc = kube_watch_parser_feed(&inf->parser, data, len);

	if (rc == -EMSGSIZE || rc == -EBADMSG) {
		kube_informer__set_error(inf, inf->parser.error);
		return rc == -EMSGSIZE ? KUBE__END_OVERSIZE : KUBE__END_BAD_EVENT;
	}
	return rc;
}

enum kube_informer__next {
	KUBE__RESUME,                /* watch again from the last resourceVersion */
	KUBE__RESUME_BACKOFF,
	KUBE__RELIST,
	KUBE__RELIST_BACKOFF,
	KUBE__STOP,
};

static enum kube_informer__next
kube_informer__watch(struct kube_informer *inf, struct httpc *h, const char **reason,
    long *retry_after_s)
{
	long timeout = inf->watch_timeout_s > 0 ? inf->watch_timeout_s :
	    300 + (long)((unsigned long)rand_r(&inf->seed) % 301);
	struct kube_error err;
	char *path = NULL;
	int64_t t0 = time_mono_ms();
	int rc;

	*retry_after_s = -1;
	if (asprintf(&path, "%s?watch=1&resourceVersion=%s&allowWatchBookmarks=true"
	    "&timeoutSeconds=%ld%s%s", inf->path, inf->rv, timeout,
	    inf->query[0] != '\0' ? "&" : "", inf->query) < 0) {
		*reason = "error";
		return KUBE__RESUME_BACKOFF;
	}
	kube_watch_parser_reset(&inf->parser);
	inf->stream_events = 0;
	pthread_mutex_lock(&inf->lock);
	inf->st.watches++;
	pthread_mutex_unlock(&inf->lock);
	rc = kube_stream(inf->k, h, path, kube_informer__on_data, inf, &inf->stop,
	    (timeout + KUBE_WATCH_IDLE_SLACK_S) * 1000, &err);
	free(path);
	if (atomic_load(&inf->stop))
		return KUBE__STOP;
	switch (rc) {
	case 0:
		*reason = "closed";
		/* A server that closes at once every time must not make us spin. */
		if (inf->stream_events == 0 && time_mono_ms() - t0 < KUBE_WATCH_SHORT_MS)
			return KUBE__RESUME_BACKOFF;
		return KUBE__RESUME;
	case KUBE__END_GONE:
		*reason = "gone";
		log_msg(LOG_LEVEL_INFO, json_pack("{s:s,s:s,s:s}", "resource", inf->resource,
		    "resourceVersion", inf->rv, "form", "ERROR event"),
		    "resourceVersion expired (410); relisting");
		return KUBE__RELIST;
	case KUBE__END_ERROR_EVENT:
		*reason = "error_event";
		return KUBE__RESUME_BACKOFF;
	case KUBE__END_APPLY_FAILED:
		*reason = "apply_failed";
		return KUBE__RELIST_BACKOFF;
	case KUBE__END_OVERSIZE:
		*reason = "oversize";
		log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s}", "resource", inf->resource, "error",
		    inf->parser.error), "watch event over the size cap; relisting");
		return KUBE__RELIST_BACKOFF;
	case KUBE__END_BAD_EVENT:
		*reason = "bad_event";
		log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s}", "resource", inf->resource, "error",
		    inf->parser.error), "malformed watch stream; relisting");
		return KUBE__RELIST_BACKOFF;
	default:
		break;
	}
	kube_informer__set_error(inf, err.message);
	switch (err.class) {
	case KUBE_ERR_GONE:
		*reason = "gone";
		log_msg(LOG_LEVEL_INFO, json_pack("{s:s,s:s,s:s}", "resource", inf->resource,
		    "resourceVersion", inf->rv, "form", "HTTP 410"),
		    "resourceVersion expired (410); relisting");
		return KUBE__RELIST;
	case KUBE_ERR_TOO_MANY_REQUESTS:
		*reason = "throttled";
		*retry_after_s = err.retry_after_s;
		return KUBE__RESUME_BACKOFF;
	case KUBE_ERR_TRANSPORT:
		/* A dropped stream that delivered events resumes at once. */
		*reason = "dropped";
		return inf->stream_events > 0 ? KUBE__RESUME : KUBE__RESUME_BACKOFF;
	default:
		*reason = "error";
		log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s,s:i}", "resource", inf->resource,
		    "error", err.message, "code", (int)err.code), "watch failed");
		return KUBE__RESUME_BACKOFF;
	}
}

static void *
kube_informer__main(void *arg)
{
	struct kube_informer *inf = arg;
	struct httpc *h = kube_stream_handle(inf->k);
	long step = 0;
	bool need_list = true;

	kube_watch_parser_init(&inf->parser, LIMITS_KUBE_WATCH_EVENT, inf->prune_events,
	    kube_informer__on_event, inf);
	while (h != NULL && !atomic_load(&inf->stop)) {
		enum kube_informer__next next;
		const char *reason = "error";
		long retry_after = -1;

		if (need_list) {
			if (kube_informer__list(inf) < 0) {
				if (kube_informer__sleep(inf, kube_informer__backoff(inf, &step)))
					break;
				continue;
			}
			need_list = false;
			step = 0;
		}
		next = kube_informer__watch(inf, h, &reason, &retry_after);
		if (next == KUBE__STOP)
			break;
		metrics_counter_add(inf->m_restarts, 1, inf->resource, reason);
		need_list = next == KUBE__RELIST || next == KUBE__RELIST_BACKOFF;
		if (next == KUBE__RESUME || next == KUBE__RELIST) {
			if (strcmp(reason, "closed") != 0 || inf->stream_events > 0)
				step = 0;
			continue;
		}
		long wait = kube_informer__backoff(inf, &step);
		if (retry_after > 0 && retry_after * 1000 > wait)
			wait = retry_after * 1000 > KUBE_WATCH_BACKOFF_MAX_MS ?
			    KUBE_WATCH_BACKOFF_MAX_MS : retry_after * 1000;
		if (kube_informer__sleep(inf, wait))
			break;
	}
	if (h == NULL)
		log_error("informer %s: out of memory", inf->resource);
	kube_watch_parser_free(&inf->parser);
	httpc_free(h);
	return NULL;
}

int
kube_informer_start(struct kube_informer *inf)
{
	int rc;

	if (inf->started)
		return -EALREADY;
	atomic_store(&inf->stop, false);
	rc = pthread_create(&inf->thread, NULL, kube_informer__main, inf);
	if (rc != 0)
		return -rc;
	inf->started = true;
	return 0;
}

void
kube_informer_stop(struct kube_informer *inf)
{
	if (inf == NULL || !inf->started)
		return;
	pthread_mutex_lock(&inf->lock);
	atomic_store(&inf->stop, true);
	pthread_cond_broadcast(&inf->cond);
	pthread_mutex_unlock(&inf->lock);
	pthread_join(inf->thread, NULL);
	inf->started = false;
}

void
kube_informer_free(struct kube_informer *inf)
{
	if (inf == NULL)
		return;
	kube_informer_stop(inf);
	free(inf->resource);
	free(inf->path);
	free(inf->query);
	jsonprune_free(inf->prune_items);
	jsonprune_free(inf->prune_events);
	pthread_mutex_destroy(&inf->lock);
	pthread_cond_destroy(&inf->cond);
	free(inf);
}

bool
kube_informer_synced(struct kube_informer *inf)
{
	bool s;

	pthread_mutex_lock(&inf->lock);
	s = inf->st.synced;
	pthread_mutex_unlock(&inf->lock);
	return s;
}

void
kube_informer_status(struct kube_informer *inf, struct kube_informer_status *st)
{
	pthread_mutex_lock(&inf->lock);
	*st = inf->st;
	pthread_mutex_unlock(&inf->lock);
}
