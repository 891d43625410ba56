/* Kubernetes REST client over httpc: pooled handles, bearer-token rotation, typed errors. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stratos/jsonpatch.h"
#include "stratos/jsonprune.h"
#include "stratos/kube.h"
#include "stratos/limits.h"
#include "stratos/log.h"
#include "stratos/metrics.h"
#include "stratos/timeutil.h"

#define KUBE_TOKEN_REREAD_MS 60000       /* rotated service-account tokens: re-read each minute */
#define KUBE_EXEC_EARLY_MS   60000       /* an exec plugin's token is renewed this long before expiry */
#define KUBE_EXEC_RETRY_MS   5000        /* a failed plugin is not run again sooner */
#define KUBE_ERROR_BODY_MAX  (64u * 1024)

const struct kube_resource KUBE_NODES = { "", "v1", "nodes", false };
const struct kube_resource KUBE_PODS = { "", "v1", "pods", true };
const struct kube_resource KUBE_NODEPOOLS = { "stratos.sh", "v1alpha1", "nodepools", false };
const struct kube_resource KUBE_AWSNODECLASSES = { "stratos.sh", "v1alpha1", "awsnodeclasses",
	false };
const struct kube_resource KUBE_LEASES = { "coordination.k8s.io", "v1", "leases", true };
const struct kube_resource KUBE_EVENTS = { "events.k8s.io", "v1", "events", true };

struct kube {
	char *server;
	char *identity;
	long timeout_ms;                       /* of one request; KUBE_REQUEST_TIMEOUT_MS by default */
	struct httpc_tls tls;                  /* strings owned */

	pthread_mutex_t token_lock;
	char *token;                           /* current bearer token, NULL = none */
	char *token_file;
	int64_t token_read_ms;
	struct kube_exec *exec;                /* credential plugin, when there is no token (file) */
	int64_t token_expires_ms;              /* the plugin's token: Unix ms, 0 = until a 401 */
	int64_t exec_failed_ms;                /* monotonic time of the last failed run */
	char exec_error[256];                  /* why the last run failed, "" after a success */

	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;
	struct httpc *idle[LIMITS_KUBE_CONNECTIONS];
	size_t nidle;
	size_t nopen;

	struct metrics_family *m_requests;
};

const char *
kube_err_class_name(enum kube_err_class c)
{
	static const char *const names[] = {
		[KUBE_ERR_NONE] = "none", [KUBE_ERR_NOT_FOUND] = "not_found",
		[KUBE_ERR_CONFLICT] = "conflict", [KUBE_ERR_GONE] = "gone",
		[KUBE_ERR_TOO_MANY_REQUESTS] = "too_many_requests",
		[KUBE_ERR_UNAUTHORIZED] = "unauthorized", [KUBE_ERR_FORBIDDEN] = "forbidden",
		[KUBE_ERR_INVALID] = "invalid", [KUBE_ERR_TRANSPORT] = "transport",
		[KUBE_ERR_OTHER] = "other",
	};

	return (size_t)c < sizeof(names) / sizeof(names[0]) ? names[c] : "other";
}

static int
kube__errno(enum kube_err_class c)
{
	switch (c) {
	case KUBE_ERR_NONE:
		return 0;
	case KUBE_ERR_NOT_FOUND:
		return -ENOENT;
	case KUBE_ERR_CONFLICT:
		return -EBUSY;
	case KUBE_ERR_GONE:
		return -ESTALE;
	case KUBE_ERR_TOO_MANY_REQUESTS:
		return -EAGAIN;
	case KUBE_ERR_UNAUTHORIZED:
		return -EACCES;
	case KUBE_ERR_FORBIDDEN:
		return -EPERM;
	case KUBE_ERR_INVALID:
		return -EINVAL;
	default:
		return -EIO;
	}
}

static void
kube__err_clear(struct kube_error *err)
{
	memset(err, 0, sizeof(*err));
	err->retry_after_s = -1;
}

int
kube_path(char out[KUBE_PATH_MAX], const struct kube_resource *r, const char *ns,
    const char *name, const char *sub)
{
	char *ens = NULL, *ename = NULL;
	int n;

	if (r->namespaced && ns != NULL && (ens = httpc_escape(ns)) == NULL)
		return -ENOMEM;
	if (name != NULL && (ename = httpc_escape(name)) == NULL) {
		free(ens);
		return -ENOMEM;
	}
	if (r->group[0] == '\0')
		n = snprintf(out, KUBE_PATH_MAX, "/api/%s", r->version);
	else
		n = snprintf(out, KUBE_PATH_MAX, "/apis/%s/%s", r->group, r->version);
	if (ens != NULL)
		n += snprintf(out + n, KUBE_PATH_MAX - (size_t)n, "/namespaces/%s", ens);
	if (n < KUBE_PATH_MAX)
		n += snprintf(out + n, KUBE_PATH_MAX - (size_t)n, "/%s", r->plural);
	if (ename != NULL && n < KUBE_PATH_MAX)
		n += snprintf(out + n, KUBE_PATH_MAX - (size_t)n, "/%s", ename);
	if (sub != NULL && ename != NULL && n < KUBE_PATH_MAX)
		n += snprintf(out + n, KUBE_PATH_MAX - (size_t)n, "/%s", sub);
	free(ens);
	free(ename);
	if (sub != NULL && name == NULL)
		return -EINVAL;
	return n < KUBE_PATH_MAX ? 0 : -ENAMETOOLONG;
}

static char *
kube__dup(const char *s, bool *failed)
{
	char *d = NULL;

	if (s != NULL && (d = strdup(s)) == NULL)
		*failed = true;
	return d;
}

static void
kube__free_secret(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

struct kube *
kube_new(const struct kube_config *cfg, const char *identity)
{
	static const char *const labels[] = { "verb", "resource", "code", NULL };
	struct kube *k = calloc(1, sizeof(*k));
	bool failed = false;

	if (k == NULL)
		return NULL;
	pthread_mutex_init(&k->token_lock, NULL);
	pthread_mutex_init(&k->pool_lock, NULL);
	pthread_cond_init(&k->pool_cond, NULL);
	k->timeout_ms = KUBE_REQUEST_TIMEOUT_MS;
	k->server = kube__dup(cfg->server, &failed);
	k->identity = kube__dup(identity, &failed);
	k->tls.ca_file = kube__dup(cfg->ca_file, &failed);
	k->tls.ca_pem = kube__dup(cfg->ca_pem, &failed);
	k->tls.cert_file = kube__dup(cfg->cert_file, &failed);
	k->tls.key_file = kube__dup(cfg->key_file, &failed);
	k->tls.cert_pem = kube__dup(cfg->cert_pem, &failed);
	k->tls.key_pem = kube__dup(cfg->key_pem, &failed);
	k->tls.insecure_skip_verify = cfg->insecure_skip_verify;
	k->token = kube__dup(cfg->token, &failed);
	/* A static token wins over a token file, as in client-go. */
	if (cfg->token == NULL)
		k->token_file = kube__dup(cfg->token_file, &failed);
	/* As in client-go, a token already there wins over the plugin. */
	if (cfg->token == NULL && cfg->token_file == NULL && cfg->exec != NULL &&
	    (k->exec = kube_exec_dup(cfg->exec)) == NULL)
		failed = true;
	k->m_requests = metrics_register(METRICS_COUNTER, "stratos_kube_requests_total",
	    "Requests to the Kubernetes API by verb, resource and HTTP status (or \"error\").",
	    labels, NULL, 0);
	if (failed || k->server == NULL) {
		kube_free(k);
		return NULL;
	}
	return k;
}

void
kube_free(struct kube *k)
{
	if (k == NULL)
		return;
	for (size_t i = 0; i < k->nidle; i++)
		httpc_free(k->idle[i]);
	free(k->server);
	free(k->identity);
	free((char *)k->tls.ca_file);
	free((char *)k->tls.ca_pem);
	free((char *)k->tls.cert_file);
	free((char *)k->tls.key_file);
	free((char *)k->tls.cert_pem);
	kube__free_secret((char *)k->tls.key_pem);
	kube__free_secret(k->token);
	free(k->token_file);
	kube_exec_free(k->exec);
	pthread_mutex_destroy(&k->token_lock);
	pthread_mutex_destroy(&k->pool_lock);
	pthread_cond_destroy(&k->pool_cond);
	free(k);
}

void
kube_set_timeout(struct kube *k, long timeout_ms)
{
	k->timeout_ms = timeout_ms > 0 ? timeout_ms : KUBE_REQUEST_TIMEOUT_MS;
}

const char *
kube_server(const struct kube *k)
{
	return k->server;
}

/*
 * Runs the exec plugin when there is no token yet, after a 401 (force), or a
 * minute before the token expires; a failure keeps the old token and is not
 * retried for a few seconds. Under token_lock.
 */
static void
kube__exec_refresh(struct kube *k, bool force)
{
	struct kube_exec_credential cred;
	int64_t now = time_mono_ms(), started;
	char why[512];
	int rc;

	if (!(k->token == NULL || force ||
	    (k->token_expires_ms > 0 && time_real_ms() >= k->token_expires_ms - KUBE_EXEC_EARLY_MS)))
		return;
	if (k->exec_failed_ms != 0 && now - k->exec_failed_ms < KUBE_EXEC_RETRY_MS)
		return;
	started = now;
	rc = kube_exec_run(k->exec, KUBE_EXEC_TIMEOUT_MS, &cred, why, sizeof(why));
	if (rc < 0) {
		k->exec_failed_ms = time_mono_ms();
		snprintf(k->exec_error, sizeof(k->exec_error), "%s", rc == -ENOMEM ? "out of memory" : why);
		log_msg(LOG_LEVEL_WARN, json_pack("{s:s}", "error", rc == -ENOMEM ? "out of memory" :
		    why), "exec credential plugin failed; keeping the previous token");
		return;
	}
	k->exec_failed_ms = 0;
	k->exec_error[0] = '\0';
	kube__free_secret(k->token);
	k->token = cred.token;
	k->token_expires_ms = cred.expires_ms;
	cred.token = NULL;
	{
		char expiry[TIME_RFC3339_LEN] = "never";
		if (k->token_expires_ms > 0)
			time_format_rfc3339(k->token_expires_ms, expiry);
		log_msg(LOG_LEVEL_INFO, json_pack("{s:s,s:I,s:s}", "command", k->exec->argv[0],
		    "ms", (json_int_t)(time_mono_ms() - started), "expires", expiry),
		    "exec credential plugin gave a token");
	}
}

/*
 * Returns a newly allocated "Authorization: Bearer ..." header (caller wipes
 * and frees) or NULL when there is no token. The token file is re-read every
 * minute, and at once when force is set (after a 401); an exec plugin runs
 * as kube__exec_refresh says.
 */
static char *
kube__auth_header(struct kube *k, bool force)
{
	char *hdr = NULL, *fresh = NULL;
	int64_t now = time_mono_ms();

	pthread_mutex_lock(&k->token_lock);
	if (k->token_file != NULL &&
	    (k->token == NULL || force || now - k->token_read_ms >= KUBE_TOKEN_REREAD_MS)) {
		int rc = kubeconfig_read_token(k->token_file, &fresh);
		if (rc == 0) {
			kube__free_secret(k->token);
			k->token = fresh;
		} else {
			/* Keep the old token: a rotation in progress must not cut us off. */
			log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s}", "file", k->token_file,
			    "error", strerror(-rc)), "cannot re-read the service-account token");
		}
		k->token_read_ms = now;
	}
	if (k->exec != NULL)
		kube__exec_refresh(k, force);
	if (k->token != NULL && asprintf(&hdr, "Authorization: Bearer %s", k->token) < 0)
		hdr = NULL;
	pthread_mutex_unlock(&k->token_lock);
	return hdr;
}

/* A final 401 while the exec plugin fails: the plugin's error is the one to read. */
static void
kube__explain_401(struct kube *k, struct kube_error *err)
{
	size_t n;

	if (k->exec == NULL || err->class != KUBE_ERR_UNAUTHORIZED)
		return;
	pthread_mutex_lock(&k->token_lock);
	n = strlen(err->message);
	if (k->exec_error[0] != '\0' && n < sizeof(err->message))
		snprintf(err->message + n, sizeof(err->message) - n, " (%s)", k->exec_error);
	pthread_mutex_unlock(&k->token_lock);
}

static struct httpc *
kube__checkout(struct kube *k)
{
	struct httpc *h = NULL;

	pthread_mutex_lock(&k->pool_lock);
	while (k->nidle == 0 && k->nopen >= LIMITS_KUBE_CONNECTIONS)
		pthread_cond_wait(&k->pool_cond, &k->pool_lock);
	if (k->nidle > 0) {
		h = k->idle[--k->nidle];
	} else {
		k->nopen++;
		pthread_mutex_unlock(&k->pool_lock);
		h = httpc_new(&k->tls);
		if (h != NULL)
			return h;
		pthread_mutex_lock(&k->pool_lock);
		k->nopen--;
		pthread_cond_signal(&k->pool_cond);
	}
	pthread_mutex_unlock(&k->pool_lock);
	return h;
}

static void
kube__checkin(struct kube *k, struct httpc *h)
{
	pthread_mutex_lock(&k->pool_lock);
	k->idle[k->nidle++] = h;
	pthread_cond_signal(&k->pool_cond);
	pthread_mutex_unlock(&k->pool_lock);
}

struct httpc *
kube_stream_handle(struct kube *k)
{
	return httpc_new(&k->tls);
}

/* Metric labels from a path: the resource plural (+ "/subresource") and the verb. */
static void
kube__labels(const char *method, const char *path, char *resource, size_t rlen,
    const char **verb)
{
	const char *seg[8];
	size_t segl[8], n = 0, i = 0;
	const char *p = path, *q = strchr(path, '?');
	bool watch = q != NULL && (strstr(q, "watch=1") != NULL || strstr(q, "watch=true") != NULL);
	size_t len = q != NULL ? (size_t)(q - path) : strlen(path);

	while (n < 8 && p < path + len) {
		while (p < path + len && *p == '/')
			p++;
		if (p >= path + len)
			break;
		seg[n] = p;
		while (p < path + len && *p != '/')
			p++;
		segl[n] = (size_t)(p - seg[n]);
		n++;
	}
	if (n > 0 && segl[0] == 3 && strncmp(seg[0], "api", 3) == 0)
		i = 2;
	else if (n > 0 && segl[0] == 4 && strncmp(seg[0], "apis", 4) == 0)
		i = 3;
	if (i + 3 <= n && segl[i] == 10 && strncmp(seg[i], "namespaces", 10) == 0)
		i += 2;
	if (i >= n) {
		snprintf(resource, rlen, "%s", "unknown");
	} else if (i + 2 < n) {
		snprintf(resource, rlen, "%.*s/%.*s", (int)segl[i], seg[i], (int)segl[i + 2],
		    seg[i + 2]);
	} else {
		snprintf(resource, rlen, "%.*s", (int)segl[i], seg[i]);
	}
	if (strcmp(method, "GET") == 0)
		*verb = watch ? "watch" : i + 1 < n ? "get" : "list";
	else if (strcmp(method, "POST") == 0)
		*verb = "create";
	else if (strcmp(method, "PUT") == 0)
		*verb = "update";
	else if (strcmp(method, "PATCH") == 0)
		*verb = "patch";
	else if (strcmp(method, "DELETE") == 0)
		*verb = "delete";
	else
		*verb = "other";
}

static void
kube__count(struct kube *k, const char *method, const char *path, long status)
{
	char resource[96], code[16];
	const char *verb;

	if (k->m_requests == NULL)
		return;
	kube__labels(method, path, resource, sizeof(resource), &verb);
	if (status > 0)
		snprintf(code, sizeof(code), "%ld", status);
	else
		snprintf(code, sizeof(code), "error");
	metrics_counter_add(k->m_requests, 1, verb, resource, code);
}

/* Fills err from an HTTP error response (a Status object when the server sends one). */
static int
kube__http_error(long status, const struct buf *body, long retry_after, struct kube_error *err)
{
	json_t *st = NULL;

	kube__err_clear(err);
	err->code = status;
	err->retry_after_s = retry_after;
	if (body->len > 0)
		st = json_loadb(body->data, body->len, 0, NULL);
	if (json_is_object(st)) {
		const char *m = json_string_value(json_object_get(st, "message"));
		const char *r = json_string_value(json_object_get(st, "reason"));
		json_t *cause;
		size_t i;
		snprintf(err->message, sizeof(err->message), "%s", m != NULL ? m : "");
		snprintf(err->reason, sizeof(err->reason), "%s", r != NULL ? r : "");
		/*
		 * Some refusals say why only in a cause (an eviction's 429 names the
		 * PodDisruptionBudget there); validation errors already carry theirs in
		 * the message, so a cause is added only when the message lacks it.
		 */
		json_array_foreach(json_object_get(json_object_get(st, "details"), "causes"), i,
		    cause) {
			const char *cm = json_string_value(json_object_get(cause, "message"));
			size_t len = strlen(err->message);
			if (cm != NULL && cm[0] != '\0' && strstr(err->message, cm) == NULL &&
			    len + 3 < sizeof(err->message))
				snprintf(err->message + len, sizeof(err->message) - len, "%s%s",
				    len > 0 ? ": " : "", cm);
		}
	} else if (body->len > 0) {
		snprintf(err->message, sizeof(err->message), "%.*s",
		    (int)(body->len < 300 ? body->len : 300), body->data);
	}
	json_decref(st);
	if (err->message[0] == '\0')
		snprintf(err->message, sizeof(err->message), "HTTP %ld", status);
	switch (status) {
	case 401:
		err->class = KUBE_ERR_UNAUTHORIZED;
		break;
	case 403:
		err->class = KUBE_ERR_FORBIDDEN;
		break;
	case 404:
		err->class = KUBE_ERR_NOT_FOUND;
		break;
	case 409:
		err->class = KUBE_ERR_CONFLICT;
		break;
	case 410:
		err->class = KUBE_ERR_GONE;
		break;
	case 429:
		err->class = KUBE_ERR_TOO_MANY_REQUESTS;
		break;
	case 400:
	case 415:
	case 422:
		err->class = KUBE_ERR_INVALID;
		break;
	default:
		err->class = KUBE_ERR_OTHER;
		break;
	}
	return kube__errno(err->class);
}

static int
kube__transport_error(int rc, const struct httpc_response *resp, struct kube_error *err)
{
	kube__err_clear(err);
	err->class = KUBE_ERR_TRANSPORT;
	snprintf(err->message, sizeof(err->message), "%s", resp->error[0] ? resp->error :
	    strerror(-rc));
	return rc;
}

/* Builds the request headers; hdrs gets at most 5 entries + NULL. */
static void
kube__headers(const char **hdrs, char *auth, const char *content_type, char *ctype_buf,
    size_t ctype_len)
{
	size_t n = 0;

	hdrs[n++] = "Accept: application/json";
	hdrs[n++] = "User-Agent: stratosd/" STRATOS_VERSION;
	if (auth != NULL)
		hdrs[n++] = auth;
	if (content_type != NULL) {
		snprintf(ctype_buf, ctype_len, "Content-Type: %s", content_type);
		hdrs[n++] = ctype_buf;
	}
	hdrs[n] = NULL;
}

/*
 * Performs req; on 2xx returns 0 with the body in resp (caller frees it with
 * httpc_response_free, also on error), else the error as kube_request.
 */
static int
kube__request_raw(struct kube *k, const struct kube_req *req, struct httpc_response *resp,
    struct kube_error *err)
{
	struct httpc *h;
	char *url = NULL, *auth = NULL, ctype[128];
	const char *hdrs[6];
	int rc = 0;

	kube__err_clear(err);
	httpc_response_init(resp);
	if (asprintf(&url, "%s%s", k->server, req->path) < 0)
		return -ENOMEM;
	h = kube__checkout(k);
	if (h == NULL) {
		free(url);
		return -ENOMEM;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		struct httpc_request hr = {
			.method = req->method, .url = url, .headers = hdrs,
			.body = req->body, .body_len = req->body_len,
			.timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : k->timeout_ms,
			.max_response = LIMITS_KUBE_RESPONSE,
		};
		if (auth != NULL)
			kube__free_secret(auth);
		auth = kube__auth_header(k, attempt > 0);
		kube__headers(hdrs, auth, req->body != NULL ?
		    (req->content_type != NULL ? req->content_type : "application/json") : NULL,
		    ctype, sizeof(ctype));
		rc = httpc_perform(h, &hr, resp);
		kube__count(k, req->method, req->path, rc < 0 ? 0 : resp->status);
		if (rc < 0) {
			rc = kube__transport_error(rc, resp, err);
			break;
		}
		/* A rotated or expired token: read the file or run the plugin again, retry once. */
		if (resp->status == 401 && attempt == 0 &&
		    (k->token_file != NULL || k->exec != NULL))
			continue;
		if (resp->status < 200 || resp->status > 299)
			rc = kube__http_error(resp->status, &resp->body, resp->retry_after_s, err);
		if (resp->status == 401)
			kube__explain_401(k, err);
		break;
	}
	kube__checkin(k, h);
	kube__free_secret(auth);
	free(url);
	return rc;
}

int
kube_request(struct kube *k, const struct kube_req *req, json_t **out, struct kube_error *err)
{
	struct httpc_response resp;
	int rc;

	if (out != NULL)
		*out = NULL;
	rc = kube__request_raw(k, req, &resp, err);
	if (rc == 0 && out != NULL && resp.body.len > 0) {
		json_error_t jerr;
		*out = json_loadb(resp.body.data, resp.body.len, 0, &jerr);
		if (*out == NULL) {
			err->class = KUBE_ERR_OTHER;
			err->code = resp.status;
			snprintf(err->message, sizeof(err->message), "response is not JSON: %s",
			    jerr.text);
			rc = -EBADMSG;
		}
	}
	httpc_response_free(&resp);
	return rc;
}

int
kube_get(struct kube *k, const char *path, json_t **out, struct kube_error *err)
{
	struct kube_req req = { .method = "GET", .path = path };

	return kube_request(k, &req, out, err);
}

struct kube__page {
	const struct jsonprune *prune;
	struct buf scratch;
	kube_list_fn fn;
	void *ctx;
	int rc;                      /* why the walk stopped */
};

/* Parses one item (pruned first when the caller asked) and hands it over. */
static int
kube__page_item(void *p, const char *item, size_t len)
{
	struct kube__page *pg = p;
	json_t *obj = NULL;
	int rc;

	if (pg->prune != NULL) {
		buf_reset(&pg->scratch);
		if (jsonprune_apply(pg->prune, item, len, &pg->scratch) == 0)
			obj = json_loadb(pg->scratch.data, pg->scratch.len, 0, NULL);
	}
	if (obj == NULL)
		obj = json_loadb(item, len, 0, NULL);
	if (obj == NULL) {
		pg->rc = -EBADMSG;
		return 1;
	}
	rc = pg->fn(pg->ctx, obj);
	json_decref(obj);
	if (rc != 0) {
		pg->rc = rc;
		return 1;
	}
	return 0;
}

/* One page fetched on a helper thread while the previous one is parsed. */
struct kube__fetch {
	struct kube *k;
	char *path;
	struct httpc_response resp;
	struct kube_error err;
	int rc;
};

static void *
kube__fetch_main(void *arg)
{
	struct kube__fetch *f = arg;
	struct kube_req req = { .method = "GET", .path = f->path };

	f->rc = kube__request_raw(f->k, &req, &f->resp, &f->err);
	return NULL;
}

static char *
kube__page_path(const char *path, const char *query, const char *cont)
{
	char *econt = NULL, *full = NULL;

	if (cont != NULL && (econt = httpc_escape(cont)) == NULL)
		return NULL;
	if (asprintf(&full, "%s?limit=%u%s%s%s%s", path, LIMITS_KUBE_LIST_PAGE,
	    query != NULL ? "&" : "", query != NULL ? query : "",
	    econt != NULL ? "&continue=" : "", econt != NULL ? econt : "") < 0)
		full = NULL;
	free(econt);
	return full;
}

int
kube_list(struct kube *k, const char *path, const char *query, const struct jsonprune *prune,
    kube_list_fn fn, void *ctx, char **rv_out, struct kube_error *err)
{
	struct kube__page pg = { .prune = prune, .fn = fn, .ctx = ctx };
	struct kube__fetch cur = { .k = k }, next = { .k = k };
	char *rv = NULL;
	unsigned pages = 1;
	int rc;

	if (rv_out != NULL)
		*rv_out = NULL;
	kube__err_clear(err);
	buf_init(&pg.scratch, LIMITS_KUBE_RESPONSE);
	cur.path = kube__page_path(path, query, NULL);
	if (cur.path == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	kube__fetch_main(&cur);
	for (;;) {
		json_t *meta = NULL;
		const char *cont, *page_rv;
		pthread_t t;
		bool fetching = false;

		rc = cur.rc;
		if (rc < 0) {
			*err = cur.err;
			break;
		}
		if (jsonprune_list_metadata(cur.resp.body.data, cur.resp.body.len, &meta) < 0) {
			rc = -EBADMSG;
			err->class = KUBE_ERR_OTHER;
			snprintf(err->message, sizeof(err->message), "LIST reply is not a list");
			break;
		}
		/*
		 * The first page's version: every item of the list is as of it (a
		 * real server serves later pages from the same snapshot), so a watch
		 * from it misses nothing. A later page's version, from a server that
		 * answered with a newer one, would skip changes to earlier pages.
		 */
		page_rv = json_string_value(json_object_get(meta, "resourceVersion"));
		if (pages == 1 && page_rv != NULL && (rv = strdup(page_rv)) == NULL) {
			json_decref(meta);
			rc = -ENOMEM;
			break;
		}
		cont = json_string_value(json_object_get(meta, "continue"));
		/* While this page is parsed, the server prepares the next one. */
		if (cont != NULL && cont[0] != '\0') {
			if (++pages > LIMITS_KUBE_LIST_PAGES) {
				json_decref(meta);
				err->class = KUBE_ERR_OTHER;
				snprintf(err->message, sizeof(err->message), "more than %u pages",
				    LIMITS_KUBE_LIST_PAGES);
				rc = -E2BIG;
				break;
			}
			next.path = kube__page_path(path, query, cont);
			if (next.path == NULL) {
				json_decref(meta);
				rc = -ENOMEM;
				break;
			}
			if (pthread_create(&t, NULL, kube__fetch_main, &next) == 0)
				fetching = true;
			else
				kube__fetch_main(&next);
		}
		json_decref(meta);
		pg.rc = 0;
		rc = jsonprune_list_items(cur.resp.body.data, cur.resp.body.len, kube__page_item,
		    &pg, NULL);
		if (rc == 1)
			rc = pg.rc;
		if (rc == -EBADMSG) {
			err->class = KUBE_ERR_OTHER;
			snprintf(err->message, sizeof(err->message), "LIST reply is not a list");
		}
		if (fetching)
			pthread_join(t, NULL);
		httpc_response_free(&cur.resp);
		free(cur.path);
		cur = next;
		memset(&next, 0, sizeof(next));
		next.k = k;
		if (rc != 0 || cur.path == NULL)
			break;
	}
out:
	httpc_response_free(&cur.resp);
	free(cur.path);
	buf_free(&pg.scratch);
	if (rc == 0 && rv_out != NULL)
		*rv_out = rv;
	else
		free(rv);
	return rc;
}

static int
kube__send_json(struct kube *k, const char *method, const char *path, const char *ctype,
    json_t *body, json_t **out, struct kube_error *err)
{
	struct kube_req req = { .method = method, .path = path, .content_type = ctype };
	char *text = NULL;
	int rc;

	if (body != NULL) {
		text = json_dumps(body, JSON_COMPACT);
		if (text == NULL) {
			kube__err_clear(err);
			return -ENOMEM;
		}
		req.body = text;
		req.body_len = strlen(text);
	}
	rc = kube_request(k, &req, out, err);
	free(text);
	return rc;
}

int
kube_create(struct kube *k, const char *path, json_t *obj, json_t **out, struct kube_error *err)
{
	return kube__send_json(k, "POST", path, NULL, obj, out, err);
}

int
kube_replace(struct kube *k, const char *path, json_t *obj, json_t **out, struct kube_error *err)
{
	return kube__send_json(k, "PUT", path, NULL, obj, out, err);
}

int
kube_patch(struct kube *k, const char *path, enum kube_patch_type type, json_t *patch,
    json_t **out, struct kube_error *err)
{
	return kube__send_json(k, "PATCH", path, type == KUBE_PATCH_JSON ?
	    "application/json-patch+json" : "application/merge-patch+json", patch, out, err);
}

/*
 * After a guarded patch got 422: whether the object moved on from
 * resource_version. If it did, the patch failed because it was built for an
 * older object, and err becomes the lost race (KUBE_ERR_CONFLICT); if it
 * did not, the 422 stands. A node deleted meanwhile is KUBE_ERR_NOT_FOUND.
 */
static int
kube__patch_recheck(struct kube *k, const char *path, const char *resource_version,
    struct kube_error *err)
{
	struct kube_error gerr;
	json_t *cur = NULL;
	const char *now;
	int rc = kube_get(k, path, &cur, &gerr);

	if (rc == -ENOENT) {
		*err = gerr;
		return rc;
	}
	now = json_string_value(json_object_get(json_object_get(cur, "metadata"),
	    "resourceVersion"));
	if (rc == 0 && now != NULL && strcmp(now, resource_version) != 0) {
		char was[sizeof(err->message)];
		snprintf(was, sizeof(was), "%s", err->message);
		err->class = KUBE_ERR_CONFLICT;
		snprintf(err->message, sizeof(err->message), "the object has been modified "
		    "(resourceVersion %.32s, expected %.32s), so the patch no longer applies: %s",
		    now, resource_version, was);
		rc = -EBUSY;
	} else {
		rc = kube__errno(err->class);
	}
	json_decref(cur);
	return rc;
}

/*
 * The precondition is "replace /metadata/resourceVersion", not a JSON Patch
 * "test", because only the former is recognisable on a real kube-apiserver:
 *
 * - k8s.io/apiserver/pkg/endpoints/handlers/patch.go, applyJSPatch: when
 *   patchObj.Apply fails (a failed "test" among others) the error becomes
 *   errors.NewGenericServerResponse(http.StatusUnprocessableEntity, "",
 *   schema.GroupResource{}, "", err.Error(), 0, false) (older releases went
 *   through interpretPatchError to the same place). NewGenericServerResponse
 *   (apimachinery/pkg/api/errors/errors.go) answers reason Invalid, message
 *   "the server rejected our request due to an error in our request", and
 *   with isUnexpectedResponse=false it drops the server message: no cause
 *   says a test failed. A lost race and a malformed patch are the same 422.
 * - k8s.io/apiserver/pkg/registry/generic/registry/store.go, Store.Update:
 *   inside GuaranteedUpdate, after objInfo.UpdatedObject has applied the
 *   patch to the stored object, "if newResourceVersion !=
 *   existingResourceVersion { return nil, nil, apierrors.NewConflict(
 *   qualifiedResource, name, fmt.Errorf(OptimisticLockErrorMsg)) }": 409
 *   Conflict, "the object has been modified; please apply your changes to the
 *   latest version and try again", the answer a stale PUT gets. A patch that
 *   sets the version we read is refused exactly when someone wrote between.
 *
 * The patch is applied before that comparison, so an operation that does not
 * apply to the newer object (removing a key the other writer removed) fails
 * first, as the cause-less 422; kube__patch_recheck tells that case apart.
 */
int
kube_patch_guarded(struct kube *k, const char *path, const char *resource_version,
    json_t *patch, json_t **out, struct kube_error *err)
{
	json_t *guarded = jsonpatch_new();
	int rc;

	kube__err_clear(err);
	if (guarded == NULL)
		return -ENOMEM;
	if (resource_version == NULL || !json_is_array(patch)) {
		json_decref(guarded);
		err->class = KUBE_ERR_INVALID;
		snprintf(err->message, sizeof(err->message), "guarded patch needs a resourceVersion "
		    "and a JSON Patch array");
		return -EINVAL;
	}
	rc = jsonpatch_set_resource_version(guarded, resource_version);
	if (rc == 0 && json_array_extend(guarded, patch) < 0)
		rc = -ENOMEM;
	if (rc == 0)
		rc = kube_patch(k, path, KUBE_PATCH_JSON, guarded, out, err);
	json_decref(guarded);
	if (rc < 0 && err->class == KUBE_ERR_INVALID && err->code == 422)
		rc = kube__patch_recheck(k, path, resource_version, err);
	return rc;
}

int
kube_delete(struct kube *k, const char *path, json_t *opts, struct kube_error *err)
{
	return kube__send_json(k, "DELETE", path, NULL, opts, NULL, err);
}

int
kube_evict(struct kube *k, const char *ns, const char *name, struct kube_error *err)
{
	char path[KUBE_PATH_MAX];
	json_t *body;
	int rc;

	kube__err_clear(err);
	if ((rc = kube_path(path, &KUBE_PODS, ns, name, "eviction")) < 0)
		return rc;
	body = json_pack("{s:s,s:s,s:{s:s,s:s}}", "apiVersion", "policy/v1", "kind", "Eviction",
	    "metadata", "name", name, "namespace", ns);
	if (body == NULL)
		return -ENOMEM;
	rc = kube_create(k, path, body, NULL, err);
	json_decref(body);
	return rc;
}

int
kube_bind(struct kube *k, const char *ns, const char *name, const char *node,
    struct kube_error *err)
{
	char path[KUBE_PATH_MAX];
	json_t *body;
	int rc;

	kube__err_clear(err);
	if ((rc = kube_path(path, &KUBE_PODS, ns, name, "binding")) < 0)
		return rc;
	body = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:s,s:s}}", "apiVersion", "v1",
	    "kind", "Binding", "metadata", "name", name, "namespace", ns,
	    "target", "apiVersion", "v1", "kind", "Node", "name", node);
	if (body == NULL)
		return -ENOMEM;
	rc = kube_create(k, path, body, NULL, err);
	json_decref(body);
	return rc;
}

/* Length of the longest prefix of s within max bytes that does not split a UTF-8 sequence. */
static size_t
kube__utf8_cut(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

int
kube_event_create(struct kube *k, const struct kube_event *ev, struct kube_error *err)
{
	char path[KUBE_PATH_MAX], when[TIME_RFC3339_LEN], name[256];
	const char *ns = ev->namespace != NULL ? ev->namespace : "default";
	struct timespec ts;
	json_t *body, *regarding;
	int rc;

	kube__err_clear(err);
	if (ev->name == NULL || ev->reason == NULL || ev->kind == NULL) {
		err->class = KUBE_ERR_INVALID;
		snprintf(err->message, sizeof(err->message), "event needs name, kind and reason");
		return -EINVAL;
	}
	if ((rc = kube_path(path, &KUBE_EVENTS, ns, NULL, NULL)) < 0)
		return rc;
	/* client-go names events <object>.<unix nanos in hex>. */
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(name, sizeof(name), "%.*s.%llx", 230, ev->name,
	    (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec);
	time_format_rfc3339_micro(time_real_ms(), when);
	regarding = json_pack("{s:s,s:s,s:s}", "kind", ev->kind, "apiVersion",
	    ev->api_version != NULL ? ev->api_version : "v1", "name", ev->name);
	if (regarding != NULL && ev->namespace != NULL)
		json_object_set_new(regarding, "namespace", json_string(ev->namespace));
	if (regarding != NULL && ev->uid != NULL)
		json_object_set_new(regarding, "uid", json_string(ev->uid));
	body = json_pack("{s:s,s:s,s:{s:s,s:s},s:s,s:s,s:s,s:s,s:s,s:s,s:s%,s:o}",
	    "apiVersion", "events.k8s.io/v1", "kind", "Event",
	    "metadata", "name", name, "namespace", ns,
	    "eventTime", when,
	    "reportingController", KUBE_REPORTING_CONTROLLER,
	    "reportingInstance", k->identity != NULL ? k->identity : "stratosd",
	    "action", ev->action != NULL ? ev->action : ev->reason,
	    "reason", ev->reason,
	    "type", ev->type != NULL ? ev->type : "Normal",
	    "note", ev->note != NULL ? ev->note : "",
	    ev->note != NULL ? kube__utf8_cut(ev->note, KUBE_EVENT_NOTE_MAX) : (size_t)0,
	    "regarding", regarding);
	if (body == NULL)
		return -ENOMEM;
	rc = kube_create(k, path, body, NULL, err);
	json_decref(body);
	return rc;
}

int
kube_check_access(struct kube *k, const char *verb, const char *group, const char *resource,
    const char *namespace, const char *name, bool *allowed, struct kube_error *err)
{
	json_t *body, *attrs, *out = NULL;
	const char *slash = strchr(resource, '/');
	int rc;

	*allowed = false;
	kube__err_clear(err);
	attrs = json_pack("{s:s,s:s,s:s#}", "verb", verb, "group", group != NULL ? group : "",
	    "resource", resource, slash != NULL ? (int)(slash - resource) : (int)strlen(resource));
	if (attrs != NULL && slash != NULL)
		json_object_set_new(attrs, "subresource", json_string(slash + 1));
	if (attrs != NULL && namespace != NULL)
		json_object_set_new(attrs, "namespace", json_string(namespace));
	if (attrs != NULL && name != NULL)
		json_object_set_new(attrs, "name", json_string(name));
	body = json_pack("{s:s,s:s,s:{s:o}}", "apiVersion", "authorization.k8s.io/v1",
	    "kind", "SelfSubjectAccessReview", "spec", "resourceAttributes", attrs);
	if (body == NULL)
		return -ENOMEM;
	rc = kube_create(k, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body, &out,
	    err);
	json_decref(body);
	if (rc == 0) {
		json_t *a = json_object_get(json_object_get(out, "status"), "allowed");
		if (!json_is_boolean(a)) {
			err->class = KUBE_ERR_OTHER;
			snprintf(err->message, sizeof(err->message),
			    "SelfSubjectAccessReview reply without status.allowed");
			rc = -EBADMSG;
		} else {
			*allowed = json_is_true(a);
		}
	}
	json_decref(out);
	return rc;
}

struct kube__stream {
	struct httpc_response *resp;
	httpc_data_fn fn;
	void *ctx;
	struct buf errbody;
	int user_rc;
};

static int
kube__stream_data(void *p, const char *data, size_t len)
{
	struct kube__stream *s = p;
	int rc;

	if (s->resp->status != 200) {
		/* An error reply: keep its start for the Status message. */
		(void)buf_append(&s->errbody, data, len);
		return 0;
	}
	rc = s->fn(s->ctx, data, len);
	if (rc != 0) {
		s->user_rc = rc;
		return -1;
	}
	return 0;
}

int
kube_stream(struct kube *k, struct httpc *h, const char *path, httpc_data_fn fn, void *ctx,
    const atomic_bool *cancel, long idle_timeout_ms, struct kube_error *err)
{
	struct httpc_response resp;
	struct kube__stream s = { .resp = &resp, .fn = fn, .ctx = ctx };
	char *url = NULL, *auth = NULL;
	const char *hdrs[6];
	int rc = 0;

	kube__err_clear(err);
	if (asprintf(&url, "%s%s", k->server, path) < 0)
		return -ENOMEM;
	httpc_response_init(&resp);
	for (int attempt = 0; attempt < 2; attempt++) {
		struct httpc_request hr = {
			.method = "GET", .url = url, .headers = hdrs, .on_data = kube__stream_data,
			.on_data_ctx = &s, .cancel = cancel, .idle_timeout_ms = idle_timeout_ms,
		};
		buf_free(&s.errbody);
		buf_init(&s.errbody, KUBE_ERROR_BODY_MAX);
		s.user_rc = 0;
		kube__free_secret(auth);
		auth = kube__auth_header(k, attempt > 0);
		kube__headers(hdrs, auth, NULL, NULL, 0);
		rc = httpc_perform(h, &hr, &resp);
		kube__count(k, "GET", path, resp.status);
		if (rc == -ECANCELED && s.user_rc != 0) {
			rc = s.user_rc;
			break;
		}
		if (rc < 0 && resp.status != 200 && resp.status != 0 && rc != -ECANCELED) {
			/* The error body was cut short; the status is what matters. */
			rc = kube__http_error(resp.status, &s.errbody, resp.retry_after_s, err);
			break;
		}
		if (rc < 0) {
			rc = kube__transport_error(rc, &resp, err);
			break;
		}
		if (resp.status == 401 && attempt == 0 &&
		    (k->token_file != NULL || k->exec != NULL))
			continue;
		if (resp.status != 200)
			rc = kube__http_error(resp.status, &s.errbody, resp.retry_after_s, err);
		if (resp.status == 401)
			kube__explain_401(k, err);
		break;
	}
	buf_free(&s.errbody);
	httpc_response_free(&resp);
	kube__free_secret(auth);
	free(url);
	return rc;
}
