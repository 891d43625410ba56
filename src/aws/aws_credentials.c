/* AWS credential chain: picks the source, keeps the current credentials, refreshes them in the background. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "aws_credentials_internal.h"
#include "stratos/aws_xml.h"
#include "stratos/log.h"
#include "stratos/sigv4.h"
#include "stratos/timeutil.h"

extern char **environ;

void
aws_credentials_wipe(struct aws_credentials *c)
{
	if (c != NULL)
		explicit_bzero(c, sizeof(*c));
}

const char *
aws_credentials_source_name(enum aws_credentials_source s)
{
	switch (s) {
	case AWS_CREDENTIALS_ENV:
		return "environment";
	case AWS_CREDENTIALS_WEB_IDENTITY:
		return "web-identity";
	case AWS_CREDENTIALS_CONTAINER:
		return "container";
	case AWS_CREDENTIALS_IMDS:
		return "imds";
	default:
		return "none";
	}
}

void
aws_creds__error(struct aws_credentials_error *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

/* ---- parsing ---------------------------------------------------------- */

int
aws_creds__copy(char *dst, size_t cap, const char *src, const char *what,
    struct aws_credentials_error *err)
{
	size_t n = src != NULL ? strlen(src) : 0;

	if (n == 0 || n >= cap) {
		aws_creds__error(err, "%s %s", what, n == 0 ? "missing" : "too long");
		return -EINVAL;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

/* Wipes a jansson string in place before the object is released. */
static void
aws_creds__json_wipe(json_t *s)
{
	if (json_is_string(s))
		explicit_bzero((char *)json_string_value(s), json_string_length(s));
}

int
aws_credentials_parse_json(const char *data, size_t len, struct aws_credentials *out,
    struct aws_credentials_error *err)
{
	json_error_t jerr;
	json_t *root = json_loadb(data, len, 0, &jerr);
	const char *code, *exp, *token;
	enum aws_credentials_source keep = out->source;
	int rc = -EINVAL;

	if (!json_is_object(root)) {
		aws_creds__error(err, "credentials reply is not a JSON object");
		goto out;
	}
	code = json_string_value(json_object_get(root, "Code"));
	if (code != NULL && strcmp(code, "Success") != 0) {
		const char *msg = json_string_value(json_object_get(root, "Message"));
		aws_creds__error(err, "credentials reply has Code %.64s: %.200s", code,
		    msg != NULL ? msg : "");
		goto out;
	}
	memset(out, 0, sizeof(*out));
	out->source = keep;
	if (aws_creds__copy(out->access_key_id, sizeof(out->access_key_id),
	    json_string_value(json_object_get(root, "AccessKeyId")), "AccessKeyId", err) < 0 ||
	    aws_creds__copy(out->secret_access_key, sizeof(out->secret_access_key),
	    json_string_value(json_object_get(root, "SecretAccessKey")), "SecretAccessKey",
	    err) < 0)
		goto out;
	token = json_string_value(json_object_get(root, "Token"));
	if (token == NULL)
		token = json_string_value(json_object_get(root, "SessionToken"));
	if (token != NULL && token[0] != '\0' &&
	    aws_creds__copy(out->session_token, sizeof(out->session_token), token, "Token",
	    err) < 0)
		goto out;
	exp = json_string_value(json_object_get(root, "Expiration"));
	if (exp != NULL && time_parse_rfc3339(exp, &out->expiration_ms) < 0) {
		aws_creds__error(err, "Expiration is not an RFC 3339 time: \"%.64s\"", exp);
		goto out;
	}
	if (exp == NULL && out->session_token[0] != '\0') {
		aws_creds__error(err, "temporary credentials without Expiration");
		goto out;
	}
	rc = 0;
out:
	if (rc < 0) {
		aws_credentials_wipe(out);
		out->source = keep;
	}
	if (root != NULL) {
		aws_creds__json_wipe(json_object_get(root, "SecretAccessKey"));
		aws_creds__json_wipe(json_object_get(root, "Token"));
		aws_creds__json_wipe(json_object_get(root, "SessionToken"));
		json_decref(root);
	}
	return rc;
}

int64_t
aws_credentials_refresh_at(int64_t expiration_ms, int64_t now_ms, int64_t ahead_ms)
{
	int64_t at, half;

	if (expiration_ms <= 0)
		return INT64_MAX;
	at = expiration_ms - ahead_ms;
	if (at > now_ms)
		return at;
	/*
	 * The source handed out keys already inside the window (it caches
	 * them, as IMDS does): come back at half their remaining life, never
	 * in a tight loop.
	 */
	half = (expiration_ms - now_ms) / 2;
	if (half < AWS_CREDS__MIN_INTERVAL_MS)
		half = AWS_CREDS__MIN_INTERVAL_MS;
	if (half > 5 * 60 * 1000)
		half = 5 * 60 * 1000;
	return now_ms + half;
}

/* ---- settings ---------------------------------------------------------- */

const char *
aws_creds__env(char **env, const char *name)
{
	size_t n = strlen(name);

	for (char **e = env; e != NULL && *e != NULL; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return (*e)[n + 1] != '\0' ? *e + n + 1 : NULL;
	return NULL;
}

static int
aws_creds__dup(char **dst, const char *src)
{
	if (src == NULL)
		return 0;
	*dst = strdup(src);
	return *dst == NULL ? -ENOMEM : 0;
}

static void
aws_creds__free_secret(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void
aws_creds__settings_free(struct aws_creds__settings *s)
{
	aws_creds__free_secret(s->access_key_id);
	aws_creds__free_secret(s->secret_access_key);
	aws_creds__free_secret(s->session_token);
	aws_creds__free_secret(s->container_token);
	free(s->role_arn);
	free(s->web_identity_token_file);
	free(s->role_session_name);
	free(s->sts_endpoint);
	free(s->container_full_uri);
	free(s->container_relative_uri);
	free(s->container_token_file);
	free(s->imds_endpoint);
	free(s->ca_file);
	free(s->region);
	memset(s, 0, sizeof(*s));
}

int
aws_creds__settings_load(struct aws_creds__settings *s, char **env, const char *ca_file)
{
	const char *v;
	int rc = 0;

	memset(s, 0, sizeof(*s));
	if (env == NULL)
		env = environ;
	rc |= aws_creds__dup(&s->access_key_id, aws_creds__env(env, "AWS_ACCESS_KEY_ID"));
	rc |= aws_creds__dup(&s->secret_access_key, aws_creds__env(env, "AWS_SECRET_ACCESS_KEY"));
	rc |= aws_creds__dup(&s->session_token, aws_creds__env(env, "AWS_SESSION_TOKEN"));
	rc |= aws_creds__dup(&s->role_arn, aws_creds__env(env, "AWS_ROLE_ARN"));
	rc |= aws_creds__dup(&s->web_identity_token_file,
	    aws_creds__env(env, "AWS_WEB_IDENTITY_TOKEN_FILE"));
	rc |= aws_creds__dup(&s->role_session_name, aws_creds__env(env, "AWS_ROLE_SESSION_NAME"));
	v = aws_creds__env(env, "AWS_ENDPOINT_URL_STS");
	rc |= aws_creds__dup(&s->sts_endpoint, v != NULL ? v : aws_creds__env(env, "AWS_ENDPOINT_URL"));
	rc |= aws_creds__dup(&s->container_full_uri,
	    aws_creds__env(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI"));
	rc |= aws_creds__dup(&s->container_relative_uri,
	    aws_creds__env(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"));
	rc |= aws_creds__dup(&s->container_token_file,
	    aws_creds__env(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"));
	rc |= aws_creds__dup(&s->container_token,
	    aws_creds__env(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN"));
	v = aws_creds__env(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
	if (v == NULL) {
		const char *mode = aws_creds__env(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
		v = mode != NULL && strcasecmp(mode, "IPv6") == 0 ? AWS_CREDS__IMDS_DEFAULT_V6 :
		    AWS_CREDS__IMDS_DEFAULT;
	}
	rc |= aws_creds__dup(&s->imds_endpoint, v);
	v = aws_creds__env(env, "AWS_EC2_METADATA_DISABLED");
	s->imds_disabled = v != NULL && strcasecmp(v, "true") == 0;
	rc |= aws_creds__dup(&s->ca_file, ca_file != NULL ? ca_file :
	    aws_creds__env(env, "AWS_CA_BUNDLE"));
	v = aws_creds__env(env, "AWS_REGION");
	rc |= aws_creds__dup(&s->region, v != NULL ? v : aws_creds__env(env, "AWS_DEFAULT_REGION"));
	return rc != 0 ? -ENOMEM : 0;
}

/* ---- refresh thread ----------------------------------------------------- */

static void
aws_creds__install(struct aws_credentials_provider *p, struct aws_credentials *fresh)
{
	explicit_bzero(&p->current, sizeof(p->current));
	memcpy(&p->current, fresh, sizeof(p->current));
	aws_credentials_wipe(fresh);
	p->refresh_at_ms = aws_credentials_refresh_at(p->current.expiration_ms, time_real_ms(),
	    p->refresh_ahead_ms);
	p->fetches++;
	p->streak = 0;
}

static void *
aws_creds__refresh_main(void *arg)
{
	struct aws_credentials_provider *p = arg;
	struct aws_credentials fresh;
	struct aws_credentials_error err;
	char when[TIME_RFC3339_LEN];

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		int64_t now = time_real_ms();
		if (!p->force && now < p->refresh_at_ms) {
			int64_t wait = p->refresh_at_ms == INT64_MAX ? 3600000 : p->refresh_at_ms - now;
			if (wait > 3600000)
				wait = 3600000;
			time_cond_wait_until(&p->cond, &p->lock, time_mono_ms() + wait);
			continue;
		}
		p->force = false;
		pthread_mutex_unlock(&p->lock);
		int rc = aws_creds__fetch(p, &fresh, &err);
		pthread_mutex_lock(&p->lock);
		if (rc == 0) {
			aws_creds__install(p, &fresh);
			time_format_rfc3339(p->current.expiration_ms, when);
			log_msg(LOG_LEVEL_INFO, json_pack("{s:s,s:s}", "source",
			    aws_credentials_source_name(p->source), "expiration", when),
			    "AWS credentials refreshed");
			continue;
		}
		p->failures++;
		p->streak++;
		int64_t backoff = AWS_CREDS__RETRY_BASE_MS;
		for (unsigned i = 1; i < p->streak && backoff < AWS_CREDS__RETRY_MAX_MS; i++)
			backoff *= 2;
		if (backoff > AWS_CREDS__RETRY_MAX_MS)
			backoff = AWS_CREDS__RETRY_MAX_MS;
		p->refresh_at_ms = time_real_ms() + backoff;
		time_format_rfc3339(p->current.expiration_ms, when);
		log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s,s:i,s:I,s:s}", "source",
		    aws_credentials_source_name(p->source), "error", err.message, "attempt",
		    (int)p->streak, "retry_in_ms", (json_int_t)backoff, "expiration", when),
		    "AWS credentials refresh failed; keeping the current ones until they expire");
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ---- public API --------------------------------------------------------- */

static enum aws_credentials_source
aws_creds__pick(const struct aws_creds__settings *s, struct aws_credentials_error *err)
{
	if (s->access_key_id != NULL && s->secret_access_key != NULL)
		return AWS_CREDENTIALS_ENV;
	if (s->access_key_id != NULL || s->secret_access_key != NULL) {
		aws_creds__error(err, "environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
		    "must be set together");
		return AWS_CREDENTIALS_NONE;
	}
	if (s->role_arn != NULL && s->web_identity_token_file != NULL)
		return AWS_CREDENTIALS_WEB_IDENTITY;
	if (s->container_full_uri != NULL || s->container_relative_uri != NULL)
		return AWS_CREDENTIALS_CONTAINER;
	if (!s->imds_disabled)
		return AWS_CREDENTIALS_IMDS;
	aws_creds__error(err, "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
	    "or AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (IRSA), or "
	    "AWS_CONTAINER_CREDENTIALS_FULL_URI (EKS Pod Identity), or run on EC2 with an "
	    "instance profile (IMDS is disabled by AWS_EC2_METADATA_DISABLED)");
	return AWS_CREDENTIALS_NONE;
}

int
aws_credentials_provider_new(const struct aws_credentials_options *opts,
    struct aws_credentials_provider **out, struct aws_credentials_error *err)
{
	struct aws_credentials_options none = { 0 };
	struct aws_credentials_provider *p;
	struct aws_credentials fresh;
	struct httpc_tls tls = { 0 };
	int rc;

	*out = NULL;
	if (err != NULL)
		err->message[0] = '\0';
	if (opts == NULL)
		opts = &none;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->fetch_lock, NULL);
	time_cond_init(&p->cond);
	p->refresh_at_ms = INT64_MAX;
	p->refresh_ahead_ms = opts->refresh_ahead_ms > 0 ? opts->refresh_ahead_ms :
	    AWS_CREDS__REFRESH_AHEAD_DEFAULT_MS;
	if (p->refresh_ahead_ms < AWS_CREDS__REFRESH_AHEAD_MIN_MS)
		p->refresh_ahead_ms = AWS_CREDS__REFRESH_AHEAD_MIN_MS;
	p->fetch_timeout_ms = opts->fetch_timeout_ms > 0 ? opts->fetch_timeout_ms :
	    AWS_CREDS__FETCH_TIMEOUT_MS;

	rc = aws_creds__settings_load(&p->set, opts->env, opts->ca_file);
	if (rc < 0)
		goto fail;
	if (opts->region != NULL)
		snprintf(p->region, sizeof(p->region), "%s", opts->region);
	else if (p->set.region != NULL)
		snprintf(p->region, sizeof(p->region), "%s", p->set.region);

	p->source = aws_creds__pick(&p->set, err);
	if (p->source == AWS_CREDENTIALS_NONE) {
		rc = p->set.access_key_id != NULL || p->set.secret_access_key != NULL ? -EINVAL :
		    -ENOENT;
		goto fail;
	}
	if (p->source != AWS_CREDENTIALS_ENV) {
		tls.ca_file = p->set.ca_file;
		p->http = httpc_new(&tls);
		if (p->http == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	rc = aws_creds__fetch(p, &fresh, err);
	if (rc < 0) {
		if (err != NULL && p->source == AWS_CREDENTIALS_IMDS) {
			char inner[sizeof(err->message)];
			snprintf(inner, sizeof(inner), "%s", err->message);
			aws_creds__error(err, "no AWS credentials: no AWS_ACCESS_KEY_ID, IRSA or container "
			    "settings in the environment, and IMDS failed (%s)", inner);
			rc = -ENOENT;
		} else if (err != NULL) {
			char inner[sizeof(err->message)];
			snprintf(inner, sizeof(inner), "%s", err->message);
			aws_creds__error(err, "%s credentials: %s", aws_credentials_source_name(p->source),
			    inner);
		}
		goto fail;
	}
	aws_creds__install(p, &fresh);
	if (p->source != AWS_CREDENTIALS_ENV) {
		if (pthread_create(&p->thread, NULL, aws_creds__refresh_main, p) != 0) {
			rc = -EAGAIN;
			aws_creds__error(err, "cannot start the credential refresh thread");
			goto fail;
		}
		p->thread_started = true;
	}
	*out = p;
	return 0;
fail:
	aws_credentials_provider_free(p);
	return rc;
}

void
aws_credentials_provider_free(struct aws_credentials_provider *p)
{
	if (p == NULL)
		return;
	if (p->thread_started) {
		pthread_mutex_lock(&p->lock);
		p->stop = true;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->thread, NULL);
	}
	httpc_free(p->http);
	aws_creds__settings_free(&p->set);
	explicit_bzero(&p->current, sizeof(p->current));
	explicit_bzero(p->imds_token, sizeof(p->imds_token));
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->fetch_lock);
	free(p);
}

int
aws_credentials_get(struct aws_credentials_provider *p, struct aws_credentials *out)
{
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	memcpy(out, &p->current, sizeof(*out));
	pthread_mutex_unlock(&p->lock);
	if (out->expiration_ms != 0 && out->expiration_ms <= time_real_ms()) {
		aws_credentials_wipe(out);
		rc = -EKEYEXPIRED;
	}
	return rc;
}

enum aws_credentials_source
aws_credentials_provider_source(struct aws_credentials_provider *p)
{
	return p->source;
}

void
aws_credentials_provider_stats(struct aws_credentials_provider *p, unsigned *fetches,
    unsigned *failures)
{
	pthread_mutex_lock(&p->lock);
	if (fetches != NULL)
		*fetches = p->fetches;
	if (failures != NULL)
		*failures = p->failures;
	pthread_mutex_unlock(&p->lock);
}

void
aws_credentials_provider_refresh_soon(struct aws_credentials_provider *p)
{
	pthread_mutex_lock(&p->lock);
	if (p->thread_started) {
		p->force = true;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
}
