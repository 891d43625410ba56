/* The EC2 client: endpoint, a pool of warm keep-alive connections, signed calls with retries and rate limits. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "ec2_internal.h"
#include "stratos/config.h"
#include "stratos/log.h"
#include "stratos/sigv4.h"
#include "stratos/timeutil.h"

/* ---- the client ---------------------------------------------------------------- */

int
ec2_endpoint_resolve(const char *flag, const char *region, char *out, size_t len)
{
	const char *v = flag;
	int n;

	if (!ec2__nonempty(v))
		v = getenv("AWS_ENDPOINT_URL_EC2");
	if (!ec2__nonempty(v))
		v = getenv("AWS_ENDPOINT_URL");
	if (ec2__nonempty(v))
		n = snprintf(out, len, "%s", v);
	else
		n = snprintf(out, len, "https://ec2.%s.amazonaws.com%s", region,
		    strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
	return n < 0 || (size_t)n >= len ? -E2BIG : 0;
}

/* "Start=10/20,RunInstances=2/5" over the defaults. */
static int
ec2__parse_rates(const char *spec, double rate[EC2_OP_COUNT], double burst[EC2_OP_COUNT],
    struct ec2_error *err)
{
	char copy[1024], *save = NULL;

	if (spec == NULL || spec[0] == '\0')
		return 0;
	if (strlen(spec) >= sizeof(copy))
		return ec2__invalid(err, "rate limits: too long");
	snprintf(copy, sizeof(copy), "%s", spec);
	for (char *item = strtok_r(copy, ",", &save); item != NULL;
	    item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		size_t i;
		while (*item == ' ')
			item++;
		if (eq == NULL)
			return ec2__invalid(err, "rate limits: \"%s\" is not Action=rate/burst", item);
		*eq = '\0';
		for (i = 0; i < EC2_OP_COUNT; i++) {
			const char *name = ec2_op_name((enum ec2_op)i);
			size_t n = strlen(name);
			if (strcasecmp(item, name) == 0)
				break;
			/* "Start" for StartInstances. */
			if (n > 9 && strcmp(name + n - 9, "Instances") == 0 &&
			    strlen(item) == n - 9 && strncasecmp(item, name, n - 9) == 0)
				break;
		}
		if (i == EC2_OP_COUNT)
			return ec2__invalid(err, "rate limits: unknown action \"%s\"", item);
		if (ratelimit_parse(eq + 1, &rate[i], &burst[i]) < 0)
			return ec2__invalid(err, "rate limits: %s: \"%s\" is not rate/burst", item, eq + 1);
	}
	return 0;
}

static int
ec2__conn_open(struct ec2__conn *conn, const char *ca_file)
{
	struct httpc_tls tls = { .ca_file = ca_file };

	conn->http = httpc_new(&tls);
	return conn->http != NULL ? 0 : -ENOMEM;
}

static void *ec2__keepalive_main(void *arg);

int
ec2_client_new(const struct ec2_options *opts, struct ec2_client **out, struct ec2_error *err)
{
	static const char *const req_labels[] = { "operation", "result", NULL };
	static const char *const sec_labels[] = { "operation", NULL };
	double rate[EC2_OP_COUNT], burst[EC2_OP_COUNT];
	struct ec2_client *c;
	struct httpc_url u;
	const char *ca_file;
	int rc;

	*out = NULL;
	if (err != NULL)
		memset(err, 0, sizeof(*err));
	if (opts == NULL || !ec2__nonempty(opts->region) || opts->credentials == NULL ||
	    strlen(opts->region) > LIMITS_AWS_REGION)
		return ec2__invalid(err, "EC2 client needs a region and credentials");
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	time_cond_init(&c->cond);
	aws_retry_quota_init(&c->quota, AWS_RETRY_QUOTA);
	for (size_t i = 0; i < EC2_OP_COUNT; i++)
		ratelimit_init(&c->buckets[i], 0, 1);

	snprintf(c->region, sizeof(c->region), "%s", opts->region);
	c->creds = opts->credentials;
	c->default_timeout_ms = opts->default_timeout_ms > 0 ? opts->default_timeout_ms :
	    EC2__TIMEOUT_DEFAULT_MS;
	c->max_attempts = opts->max_attempts > 0 ? opts->max_attempts : AWS_RETRY_MAX_ATTEMPTS;
	if (c->max_attempts > LIMITS_EC2_ATTEMPTS_MAX)
		c->max_attempts = LIMITS_EC2_ATTEMPTS_MAX;
	c->page_size = opts->describe_page_size > 0 ? opts->describe_page_size : EC2__PAGE_DEFAULT;
	c->keepalive_ms = opts->keepalive_ms == 0 ? EC2__KEEPALIVE_DEFAULT_MS : opts->keepalive_ms;
	c->fresh = opts->fresh_connections;
	if (c->page_size < 5 || c->page_size > 1000) {
		rc = ec2__invalid(err, "describe page size must be 5-1000");
		goto fail;
	}

	rc = ec2_endpoint_resolve(opts->endpoint, opts->region, c->endpoint, sizeof(c->endpoint));
	if (rc == 0)
		rc = httpc_url_parse(c->endpoint, &u);
	if (rc < 0) {
		rc = ec2__invalid(err, "EC2 endpoint \"%.200s\" is not an http(s) URL", c->endpoint);
		goto fail;
	}
	snprintf(c->host, sizeof(c->host), "%s", u.host);
	if (!u.default_port)
		snprintf(c->host + strlen(c->host), sizeof(c->host) - strlen(c->host), ":%d", u.port);
	snprintf(c->path, sizeof(c->path), "%s", u.path);

	/* Rate limits: defaults, then the operator's overrides. */
	for (size_t i = 0; i < EC2_OP_COUNT; i++)
		rate[i] = 0, burst[i] = 1;
	if ((rc = ec2__parse_rates(EC2_RATE_LIMITS_DEFAULT, rate, burst, err)) < 0 ||
	    (rc = ec2__parse_rates(opts->rate_limits, rate, burst, err)) < 0)
		goto fail;
	for (size_t i = 0; i < EC2_OP_COUNT; i++) {
		ratelimit_destroy(&c->buckets[i]);
		ratelimit_init(&c->buckets[i], rate[i], burst[i]);
	}

	c->nconns = opts->connections > 0 ? opts->connections : EC2__CONNECTIONS_DEFAULT;
	if (c->nconns > LIMITS_EC2_CONNECTIONS_MAX)
		c->nconns = LIMITS_EC2_CONNECTIONS_MAX;
	c->conns = calloc(c->nconns, sizeof(*c->conns));
	if (c->conns == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	ca_file = opts->ca_file != NULL ? opts->ca_file : getenv("AWS_CA_BUNDLE");
	if (ca_file != NULL && ca_file[0] == '\0')
		ca_file = NULL;
	for (size_t i = 0; i < c->nconns; i++) {
		if ((rc = ec2__conn_open(&c->conns[i], ca_file)) < 0)
			goto fail;
	}
	c->m_requests = metrics_register(METRICS_COUNTER, "stratos_cloud_requests_total",
	    "EC2 HTTP requests by action and result (success or error class)", req_labels, NULL, 0);
	c->m_seconds = metrics_register(METRICS_HISTOGRAM, "stratos_cloud_request_seconds",
	    "EC2 HTTP request latency by action", sec_labels, METRICS_BUCKETS_LATENCY,
	    METRICS_BUCKETS_LATENCY_COUNT);
	c->stats.quota = AWS_RETRY_QUOTA;
	if (c->keepalive_ms > 0 && !c->fresh) {
		if (pthread_create(&c->keepalive, NULL, ec2__keepalive_main, c) != 0) {
			rc = -EAGAIN;
			goto fail;
		}
		c->keepalive_started = true;
	}
	*out = c;
	return 0;
fail:
	ec2_client_free(c);
	return rc;
}

void
ec2_client_free(struct ec2_client *c)
{
	if (c == NULL)
		return;
	if (c->keepalive_started) {
		pthread_mutex_lock(&c->lock);
		c->stop = true;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		pthread_join(c->keepalive, NULL);
	}
	for (size_t i = 0; c->conns != NULL && i < c->nconns; i++)
		httpc_free(c->conns[i].http);
	free(c->conns);
	for (size_t i = 0; i < EC2_OP_COUNT; i++)
		ratelimit_destroy(&c->buckets[i]);
	aws_retry_quota_destroy(&c->quota);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void
ec2_options_from_config(const struct config *cfg, const char *region,
    struct aws_credentials_provider *creds, struct ec2_options *out)
{
	memset(out, 0, sizeof(*out));
	out->region = region;
	out->credentials = creds;
	out->endpoint = cfg->aws_endpoint_url;
	out->rate_limits = cfg->ec2_rate_limits;
	out->default_timeout_ms = cfg->ec2_timeout_ms;
	out->connections = (unsigned)cfg->ec2_connections;
}

const char *
ec2_client_endpoint(const struct ec2_client *c)
{
	return c->endpoint;
}

void
ec2_client_stats(struct ec2_client *c, struct ec2_client_stats *out)
{
	pthread_mutex_lock(&c->lock);
	*out = c->stats;
	pthread_mutex_unlock(&c->lock);
	out->quota = aws_retry_quota_available(&c->quota);
}

/*
 * Checks out the free connection used most recently (the one most likely
 * still open), waiting until deadline_ms. Returns NULL on timeout.
 */
static struct ec2__conn *
ec2__checkout(struct ec2_client *c, int64_t deadline_ms, bool wait)
{
	struct ec2__conn *best = NULL;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		for (size_t i = 0; i < c->nconns; i++) {
			struct ec2__conn *k = &c->conns[i];
			if (!k->busy && (best == NULL || k->last_used_ms > best->last_used_ms))
				best = k;
		}
		if (best != NULL || !wait || c->stop || time_mono_ms() >= deadline_ms)
			break;
		time_cond_wait_until(&c->cond, &c->lock, deadline_ms);
	}
	if (best != NULL)
		best->busy = true;
	pthread_mutex_unlock(&c->lock);
	return best;
}

static void
ec2__checkin(struct ec2_client *c, struct ec2__conn *k, const struct httpc_response *resp,
    bool ping)
{
	pthread_mutex_lock(&c->lock);
	k->busy = false;
	k->last_used_ms = time_mono_ms();
	if (resp->request_sent) {
		if (ping)
			c->stats.keepalive_pings++;
		else
			c->stats.requests++;
		if (resp->reused_connection && !ping)
			c->stats.reused++;
		if (!resp->reused_connection)
			c->stats.new_connections++;
	}
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/*
 * A cheap unsigned request that keeps (or makes) a connection open. EC2
 * answers it with an error and no action is taken, so it costs no API quota.
 */
static int
ec2__ping(struct ec2_client *c, struct ec2__conn *k, int64_t timeout_ms)
{
	struct httpc_request req = { .method = "GET", .url = c->endpoint,
	    .timeout_ms = timeout_ms, .connect_timeout_ms = timeout_ms, .max_response = 64 * 1024 };
	struct httpc_response resp;
	int rc;

	httpc_response_init(&resp);
	rc = httpc_perform(k->http, &req, &resp);
	ec2__checkin(c, k, &resp, true);
	httpc_response_free(&resp);
	return rc;
}

int
ec2_client_warm(struct ec2_client *c, int64_t deadline_ms)
{
	struct ec2__conn *held[LIMITS_EC2_CONNECTIONS_MAX];
	size_t n = 0;
	int open = 0;

	/* Hold them all so each ping lands on a different handle. */
	while (n < c->nconns && (held[n] = ec2__checkout(c, deadline_ms, true)) != NULL)
		n++;
	for (size_t i = 0; i < n; i++) {
		int64_t left = deadline_ms - time_mono_ms();
		if (left < 1)
			left = 1;
		if (ec2__ping(c, held[i], left) == 0)
			open++;
	}
	return open;
}

static void *
ec2__keepalive_main(void *arg)
{
	struct ec2_client *c = arg;

	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		int64_t now = time_mono_ms();
		struct ec2__conn *due = NULL;
		for (size_t i = 0; i < c->nconns && due == NULL; i++) {
			struct ec2__conn *k = &c->conns[i];
			if (!k->busy && k->last_used_ms != 0 && now - k->last_used_ms >= c->keepalive_ms)
				due = k;
		}
		if (due != NULL) {
			due->busy = true;
			pthread_mutex_unlock(&c->lock);
			ec2__ping(c, due, EC2__CONNECT_TIMEOUT_MS);
			pthread_mutex_lock(&c->lock);
			continue;
		}
		time_cond_wait_until(&c->cond, &c->lock,
		    now + (c->keepalive_ms / 4 > 0 ? c->keepalive_ms / 4 : 1));
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void
ec2__sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (ms > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Outcome of one HTTP attempt. */
struct ec2__attempt {
	enum ec2_error_class cls;     /* EC2_ERR_NONE on success */
	bool retryable;
	bool timeout_cost;            /* the retry quota charges a timeout */
	bool throttled;
};

/* Signs and sends one attempt on a pooled connection. */
static int
ec2__attempt(struct ec2_client *c, enum ec2_op op, const struct buf *body, int64_t deadline,
    bool dry_run, struct httpc_response *resp, struct ec2_error *err, struct ec2__attempt *at)
{
	struct aws_credentials creds;
	struct sigv4_headers sh;
	struct ec2__conn *k;
	const char *sign_headers[] = { EC2__CONTENT_TYPE, NULL };
	int64_t t0, left;
	int rc;

	memset(at, 0, sizeof(*at));
	if (ratelimit_acquire(&c->buckets[op], deadline) < 0) {
		ec2__err(err, EC2_ERR_THROTTLED, "ClientRateLimited",
		    "%s: the client-side rate limit has no token before the deadline", ec2_op_name(op));
		at->cls = EC2_ERR_THROTTLED;
		return -EAGAIN;
	}
	if (aws_credentials_get(c->creds, &creds) < 0) {
		ec2__err(err, EC2_ERR_AUTH, "CredentialsExpired",
		    "the AWS credentials expired and could not be refreshed");
		at->cls = EC2_ERR_AUTH;
		return -EACCES;
	}
	struct sigv4_request sreq = {
		.method = "POST", .host = c->host, .path = c->path, .headers = sign_headers,
		.body = body->data, .body_len = body->len, .region = c->region, .service = "ec2",
	};
	struct sigv4_credentials sc = { creds.access_key_id, creds.secret_access_key,
	    creds.session_token };
	rc = sigv4_sign_headers(&sreq, &sc, &sh);
	aws_credentials_wipe(&creds);
	if (rc < 0) {
		ec2__err(err, EC2_ERR_OTHER, "SigningFailed", "cannot sign the request (%d)", rc);
		at->cls = EC2_ERR_OTHER;
		return rc;
	}

	k = ec2__checkout(c, deadline, true);
	if (k == NULL) {
		ec2__err(err, EC2_ERR_THROTTLED, "ClientRateLimited",
		    "%s: every pooled EC2 connection stayed busy until the deadline", ec2_op_name(op));
		at->cls = EC2_ERR_THROTTLED;
		rc = -EAGAIN;
		goto out;
	}
	t0 = time_mono_ms();
	left = deadline - t0;
	if (left < 1)
		left = 1;
	struct httpc_request req = {
		.method = "POST", .url = c->endpoint, .headers = sh.lines, .body = body->data,
		.body_len = body->len, .timeout_ms = left,
		.connect_timeout_ms = left < EC2__CONNECT_TIMEOUT_MS ? left : EC2__CONNECT_TIMEOUT_MS,
		.max_response = LIMITS_EC2_RESPONSE, .fresh_connection = c->fresh,
	};
	rc = httpc_perform(k->http, &req, resp);
	ec2__checkin(c, k, resp, false);
	if (c->m_seconds != NULL)
		metrics_histogram_observe(c->m_seconds, (double)(time_mono_ms() - t0) / 1000.0,
		    ec2_op_name(op));
	err->http_status = resp->status;

	if (rc == 0 && resp->status == 200) {
		at->cls = EC2_ERR_NONE;
	} else if (rc == 0) {
		ec2_parse_error(resp->body.data, resp->body.len, resp->status, err);
		/* Keys refused as expired or unknown: maybe revoked; fetch new ones now. */
		if (strcmp(err->code, "ExpiredToken") == 0 || strcmp(err->code, "RequestExpired") == 0 ||
		    strcmp(err->code, "AuthFailure") == 0 || strcmp(err->code, "InvalidClientTokenId") == 0)
			aws_credentials_provider_refresh_soon(c->creds);
		if (dry_run && strcmp(err->code, "DryRunOperation") == 0) {
			at->cls = EC2_ERR_NONE;
		} else {
			at->cls = err->cls;
			at->throttled = err->cls == EC2_ERR_THROTTLED;
			at->retryable = aws_retry_is_retryable(err->code, resp->status);
			/* A bare 5xx (a proxy, a load balancer) may come after EC2 acted. */
			if (resp->status >= 500 && err->code[0] == 'H' &&
			    strncmp(err->code, "HTTP", 4) == 0 && op != EC2_OP_DESCRIBE_INSTANCES) {
				at->cls = err->cls = EC2_ERR_UNKNOWN_OUTCOME;
				at->timeout_cost = true;
			}
		}
	} else {
		/*
		 * No reply. If the request left, EC2 may have acted on it: the
		 * outcome is unknown (a read has no outcome to be unsure of).
		 */
		const char *code = rc == -ETIMEDOUT ? "RequestTimeout" :
		    rc == -ECONNRESET ? "ConnectionDropped" : rc == -EPROTO ? "TLSError" :
		    rc == -EMSGSIZE ? "ResponseTooLarge" : "ConnectionFailed";
		at->cls = resp->request_sent && op != EC2_OP_DESCRIBE_INSTANCES ?
		    EC2_ERR_UNKNOWN_OUTCOME : EC2_ERR_OTHER;
		ec2__err(err, at->cls, code, "%s", resp->error);
		err->http_status = 0;
		at->retryable = rc != -EMSGSIZE;
		at->timeout_cost = true;
	}
	rc = 0;
out:
	sigv4_headers_free(&sh);
	return rc;
}

static void
ec2__log_attempt(enum ec2_op op, const struct ec2_error *err, unsigned attempt, int64_t elapsed,
    bool final)
{
	/* Not-found and wrong-state are answers the caller expects and handles. */
	enum log_level lvl = final && err->cls != EC2_ERR_NOT_FOUND &&
	    err->cls != EC2_ERR_WRONG_STATE ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG;

	if (!log_enabled(lvl))
		return;
	log_msg(lvl, json_pack("{s:s,s:s,s:s,s:i,s:I,s:i,s:s}", "operation", ec2_op_name(op),
	    "code", err->code, "class", ec2_error_class_name(err->cls), "attempt", (int)attempt,
	    "elapsed_ms", (json_int_t)elapsed, "http_status", (int)err->http_status,
	    "request_id", err->request_id),
	    final ? "EC2 call failed: %s" : "EC2 attempt failed, retrying: %s", err->message);
}

/*
 * Runs one call: rate limit, sign, send, classify; retries in the AWS
 * standard mode while the deadline and the retry quota allow. On success
 * reply holds the body (the caller frees it).
 */
int
ec2__call(struct ec2_client *c, enum ec2_op op, struct buf *body, const struct ec2_call *call,
    struct buf *reply, struct ec2_error *err)
{
	struct ec2_error scratch;
	struct httpc_response resp;
	struct ec2__attempt at;
	int64_t start = time_mono_ms();
	int64_t deadline = call != NULL && call->deadline_ms > 0 ? call->deadline_ms :
	    start + c->default_timeout_ms;
	unsigned max = call != NULL && call->max_attempts > 0 ? call->max_attempts : c->max_attempts;
	unsigned last_cost = 0, attempt = 0;
	bool dry_run = call != NULL && call->dry_run;
	bool was_unknown = false;
	int rc;

	if (err == NULL)
		err = &scratch;
	memset(err, 0, sizeof(*err));
	if (max > LIMITS_EC2_ATTEMPTS_MAX)
		max = LIMITS_EC2_ATTEMPTS_MAX;
	if (dry_run && (rc = buf_append_str(body, "&DryRun=true")) < 0)
		return rc;
	httpc_response_init(&resp);
	for (;;) {
		if (time_mono_ms() >= deadline) {
			if (attempt == 0)
				ec2__err(err, EC2_ERR_OTHER, "DeadlineExceeded",
				    "%s: the deadline passed before the request was sent", ec2_op_name(op));
			break;
		}
		attempt++;
		rc = ec2__attempt(c, op, body, deadline, dry_run, &resp, err, &at);
		err->attempts = attempt;
		if (rc < 0 && at.cls == EC2_ERR_NONE)
			at.cls = EC2_ERR_OTHER;
		if (c->m_requests != NULL)
			metrics_counter_add(c->m_requests, 1, ec2_op_name(op),
			    at.cls == EC2_ERR_NONE ? "success" : ec2_error_class_name(at.cls));
		if (at.cls == EC2_ERR_NONE) {
			aws_retry_quota_success(&c->quota, last_cost);
			*reply = resp.body;
			buf_init(&resp.body, 0);
			memset(err, 0, sizeof(*err));
			err->attempts = attempt;
			err->elapsed_ms = time_mono_ms() - start;
			httpc_response_free(&resp);
			return 0;
		}
		if (at.cls == EC2_ERR_UNKNOWN_OUTCOME)
			was_unknown = true;
		if (!at.retryable || attempt >= max)
			break;
		unsigned cost = aws_retry_quota_acquire(&c->quota, at.timeout_cost);
		if (cost == 0) {
			snprintf(err->message + strlen(err->message),
			    sizeof(err->message) - strlen(err->message), " (retry quota exhausted)");
			break;
		}
		int64_t delay = aws_retry_backoff_ms(attempt, at.throttled, aws_retry_random());
		/* The deadline wins: no retry that could not finish in time. */
		if (time_mono_ms() + delay >= deadline) {
			aws_retry_quota_success(&c->quota, cost);   /* not spent: give it back */
			break;
		}
		last_cost = cost;
		ec2__log_attempt(op, err, attempt, time_mono_ms() - start, false);
		ec2__sleep_ms(delay);
	}
	httpc_response_free(&resp);
	/* An earlier attempt may have acted even though the last one was refused. */
	if (was_unknown && err->cls != EC2_ERR_UNKNOWN_OUTCOME) {
		char prev[sizeof(err->message)];
		snprintf(prev, sizeof(prev), "%s", err->message);
		snprintf(err->message, sizeof(err->message),
		    "%s (an earlier attempt timed out or lost its connection after sending)", prev);
		err->cls = EC2_ERR_UNKNOWN_OUTCOME;
	}
	if (err->cls == EC2_ERR_NONE)
		err->cls = EC2_ERR_OTHER;
	err->attempts = attempt;
	err->elapsed_ms = time_mono_ms() - start;
	ec2__log_attempt(op, err, attempt, err->elapsed_ms, true);
	return ec2__rc_of(err->cls);
}
