/* AWS credential chain (env, web identity, container, IMDSv2) with a background refresh thread. */
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

#include "stratos/aws_credentials.h"
#include "stratos/aws_xml.h"
#include "stratos/buf.h"
#include "stratos/httpc.h"
#include "stratos/limits.h"
#include "stratos/log.h"
#include "stratos/sigv4.h"
#include "stratos/timeutil.h"

extern char **environ;

#define AWS_CREDS__REFRESH_AHEAD_DEFAULT_MS (10 * 60 * 1000)
#define AWS_CREDS__REFRESH_AHEAD_MIN_MS     (5 * 60 * 1000)
#define AWS_CREDS__MIN_INTERVAL_MS          5000
#define AWS_CREDS__RETRY_BASE_MS            1000
#define AWS_CREDS__RETRY_MAX_MS             60000
#define AWS_CREDS__FETCH_TIMEOUT_MS         5000
#define AWS_CREDS__IMDS_TIMEOUT_MS          1000
#define AWS_CREDS__IMDS_TOKEN_TTL_S         21600
#define AWS_CREDS__IMDS_DEFAULT             "http://169.254.169.254"
#define AWS_CREDS__IMDS_DEFAULT_V6          "http://[fd00:ec2::254]"
#define AWS_CREDS__ECS_HOST                 "http://169.254.170.2"
#define AWS_CREDS__STS_VERSION              "2011-06-15"

/* The AWS_* settings, read once from the environment given to _new(). */
struct aws_creds__settings {
	char *access_key_id;
	char *secret_access_key;
	char *session_token;
	char *role_arn;
	char *web_identity_token_file;
	char *role_session_name;
	char *sts_endpoint;             /* AWS_ENDPOINT_URL_STS, else AWS_ENDPOINT_URL */
	char *container_full_uri;
	char *container_relative_uri;
	char *container_token_file;
	char *container_token;
	char *imds_endpoint;
	bool imds_disabled;
	char *ca_file;
	char *region;                   /* AWS_REGION, else AWS_DEFAULT_REGION */
};

struct aws_credentials_provider {
	struct aws_creds__settings set;
	char region[LIMITS_AWS_REGION + 1];   /* for STS; "" = global endpoint */
	int64_t refresh_ahead_ms;
	int64_t fetch_timeout_ms;
	enum aws_credentials_source source;

	/* I/O state, used by one fetch at a time (fetch_lock). */
	pthread_mutex_t fetch_lock;
	struct httpc *http;
	char imds_token[256];
	int64_t imds_token_expires_ms;  /* monotonic */

	/* Shared state (lock). */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct aws_credentials current;
	int64_t refresh_at_ms;          /* Unix ms; INT64_MAX = never */
	unsigned fetches;
	unsigned failures;
	unsigned streak;                /* consecutive failures */
	bool stop;
	bool force;
	bool thread_started;
	pthread_t thread;
};

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

static void
aws_creds__error(struct aws_credentials_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
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

static int
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

/* Wipes every text node of a document holding secrets before it is freed. */
static void
aws_creds__xml_wipe(xmlNode *n)
{
	for (; n != NULL; n = n->next) {
		if ((n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) &&
		    n->content != NULL)
			explicit_bzero(n->content, strlen((char *)n->content));
		aws_creds__xml_wipe(n->children);
	}
}

int
aws_credentials_parse_sts_xml(const char *data, size_t len, struct aws_credentials *out,
    struct aws_credentials_error *err)
{
	xmlDoc *doc = aws_xml_parse(data, len);
	enum aws_credentials_source keep = out->source;
	xmlNode *c;
	char exp[64];
	int rc = -EINVAL;

	memset(out, 0, sizeof(*out));
	out->source = keep;
	if (doc == NULL) {
		aws_creds__error(err, "STS reply is not XML");
		return -EINVAL;
	}
	c = aws_xml_path(xmlDocGetRootElement(doc), "AssumeRoleWithWebIdentityResult/Credentials");
	if (c == NULL) {
		aws_creds__error(err, "STS reply has no AssumeRoleWithWebIdentityResult/Credentials");
		goto out;
	}
	if (aws_xml_text(aws_xml_child(c, "AccessKeyId"), out->access_key_id,
	    sizeof(out->access_key_id)) < 0 || out->access_key_id[0] == '\0' ||
	    aws_xml_text(aws_xml_child(c, "SecretAccessKey"), out->secret_access_key,
	    sizeof(out->secret_access_key)) < 0 || out->secret_access_key[0] == '\0' ||
	    aws_xml_text(aws_xml_child(c, "SessionToken"), out->session_token,
	    sizeof(out->session_token)) < 0 || out->session_token[0] == '\0') {
		aws_creds__error(err, "STS credentials incomplete or too long");
		goto out;
	}
	if (aws_xml_text(aws_xml_child(c, "Expiration"), exp, sizeof(exp)) < 0 ||
	    time_parse_rfc3339(exp, &out->expiration_ms) < 0) {
		aws_creds__error(err, "STS Expiration missing or not an RFC 3339 time");
		goto out;
	}
	rc = 0;
out:
	if (rc < 0) {
		aws_credentials_wipe(out);
		out->source = keep;
	}
	aws_creds__xml_wipe(xmlDocGetRootElement(doc));
	xmlFreeDoc(doc);
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

static const char *
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

static void
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

static int
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

static bool
aws_creds__valid_region(const char *r)
{
	size_t n = strlen(r);

	if (n == 0 || n > 32)
		return false;
	for (; *r != '\0'; r++)
		if (!islower((unsigned char)*r) && !isdigit((unsigned char)*r) && *r != '-')
			return false;
	return true;
}

/* ---- HTTP helpers ------------------------------------------------------- */

/* Reads a small token file whole, without its trailing newline. Caller frees securely. */
static int
aws_creds__read_token(const char *path, struct buf *out, struct aws_credentials_error *err)
{
	char chunk[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	buf_init(out, LIMITS_AWS_TOKEN_FILE);
	if (fd < 0) {
		int e = errno;
		aws_creds__error(err, "cannot read token file %s: %s", path, strerror(e));
		return -e;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		if (buf_append(out, chunk, (size_t)n) < 0) {
			close(fd);
			explicit_bzero(chunk, sizeof(chunk));
			buf_free_secure(out);
			aws_creds__error(err, "token file %s is larger than %u bytes", path,
			    LIMITS_AWS_TOKEN_FILE);
			return -E2BIG;
		}
	}
	explicit_bzero(chunk, sizeof(chunk));
	close(fd);
	while (out->len > 0 && isspace((unsigned char)out->data[out->len - 1]))
		out->data[--out->len] = '\0';
	if (out->len == 0) {
		buf_free_secure(out);
		aws_creds__error(err, "token file %s is empty", path);
		return -EINVAL;
	}
	return 0;
}

static int
aws_creds__perform(struct aws_credentials_provider *p, const struct httpc_request *req,
    struct httpc_response *resp, const char *what, struct aws_credentials_error *err)
{
	int rc = httpc_perform(p->http, req, resp);

	if (rc < 0)
		aws_creds__error(err, "%s: %s", what, resp->error);
	return rc;
}

/* STS endpoint: override, else regional, else global. */
static void
aws_creds__sts_url(const struct aws_credentials_provider *p, const char *region, char *out,
    size_t len)
{
	if (p->set.sts_endpoint != NULL)
		snprintf(out, len, "%s", p->set.sts_endpoint);
	else if (region != NULL && region[0] != '\0')
		snprintf(out, len, "https://sts.%s.amazonaws.com%s", region,
		    strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
	else
		snprintf(out, len, "https://sts.amazonaws.com");
}

/* Turns a non-2xx reply from STS or a credential endpoint into a message and code. */
static int
aws_creds__http_failure(const struct httpc_response *resp, const char *what,
    struct aws_credentials_error *err)
{
	struct aws_xml_error xe;

	if (aws_xml_parse_error(resp->body.data, resp->body.len, &xe) == 0) {
		aws_creds__error(err, "%s: HTTP %ld %s: %s", what, resp->status, xe.code, xe.message);
	} else {
		json_t *j = json_loadb(resp->body.data != NULL ? resp->body.data : "",
		    resp->body.len, 0, NULL);
		const char *m = json_string_value(json_object_get(j, "message"));
		if (m == NULL)
			m = json_string_value(json_object_get(j, "Message"));
		aws_creds__error(err, "%s: HTTP %ld%s%.200s", what, resp->status,
		    m != NULL ? ": " : "", m != NULL ? m : "");
		json_decref(j);
	}
	return resp->status >= 400 && resp->status < 500 ? -EACCES : -EIO;
}

/* A credentials request whose only good answer is 200; anything else is described from the body. */
static int
aws_creds__request(struct aws_credentials_provider *p, const struct httpc_request *req,
    struct httpc_response *resp, const char *what, struct aws_credentials_error *err)
{
	int rc = aws_creds__perform(p, req, resp, what, err);

	if (rc == 0 && resp->status != 200)
		rc = aws_creds__http_failure(resp, what, err);
	return rc;
}

/* ---- sources ------------------------------------------------------------ */

static int
aws_creds__fetch_web_identity(struct aws_credentials_provider *p, struct aws_credentials *out,
    struct aws_credentials_error *err)
{
	const char *headers[] = {
		"Content-Type: application/x-www-form-urlencoded; charset=utf-8",
		"Accept: application/xml",
		NULL,
	};
	struct httpc_request req = { .method = "POST", .headers = headers,
	    .timeout_ms = p->fetch_timeout_ms, .connect_timeout_ms = p->fetch_timeout_ms,
	    .max_response = LIMITS_AWS_CREDS_RESPONSE };
	struct httpc_response resp;
	struct buf token, body;
	char url[LIMITS_AWS_URL], session[128];
	char *e_arn = NULL, *e_session = NULL, *e_token = NULL;
	int rc;

	httpc_response_init(&resp);
	buf_init(&body, LIMITS_AWS_TOKEN_FILE * 3 + 4096);
	rc = aws_creds__read_token(p->set.web_identity_token_file, &token, err);
	if (rc < 0)
		return rc;
	if (p->set.role_session_name != NULL)
		snprintf(session, sizeof(session), "%s", p->set.role_session_name);
	else
		snprintf(session, sizeof(session), "stratos-%lld", (long long)(time_real_ms() / 1000));
	e_arn = httpc_escape(p->set.role_arn);
	e_session = httpc_escape(session);
	e_token = httpc_escape(token.data);
	buf_free_secure(&token);
	if (e_arn == NULL || e_session == NULL || e_token == NULL ||
	    buf_printf(&body, "Action=AssumeRoleWithWebIdentity&Version=" AWS_CREDS__STS_VERSION
	        "&RoleArn=%s&RoleSessionName=%s&WebIdentityToken=%s", e_arn, e_session,
	        e_token) < 0) {
		rc = -ENOMEM;
		aws_creds__error(err, "web identity: out of memory");
		goto out;
	}
	aws_creds__sts_url(p, p->region, url, sizeof(url));
	req.url = url;
	req.body = body.data;
	req.body_len = body.len;
	rc = aws_creds__request(p, &req, &resp, "STS AssumeRoleWithWebIdentity", err);
	if (rc < 0)
		goto out;
	out->source = AWS_CREDENTIALS_WEB_IDENTITY;
	rc = aws_credentials_parse_sts_xml(resp.body.data, resp.body.len, out, err);
out:
	free(e_arn);
	free(e_session);
	if (e_token != NULL) {
		explicit_bzero(e_token, strlen(e_token));
		free(e_token);
	}
	buf_free_secure(&body);
	buf_free_secure(&resp.body);
	return rc;
}

/* The container endpoint must be HTTPS or a loopback / link-local agent address. */
static int
aws_creds__container_url_allowed(const char *url, struct aws_credentials_error *err)
{
	static const char *const hosts[] = {
		"169.254.170.2", "169.254.170.23", "[fd00:ec2::23]", "localhost", "[::1]",
	};
	struct httpc_url u;

	if (httpc_url_parse(url, &u) < 0) {
		aws_creds__error(err, "container credentials URI is not an http(s) URL");
		return -EINVAL;
	}
	if (strcmp(u.scheme, "https") == 0 || strncmp(u.host, "127.", 4) == 0)
		return 0;
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
		if (strcmp(u.host, hosts[i]) == 0)
			return 0;
	aws_creds__error(err, "container credentials URI %s: plain http is only allowed to "
	    "loopback or the EKS/ECS agent addresses", url);
	return -EINVAL;
}

static int
aws_creds__fetch_container(struct aws_credentials_provider *p, struct aws_credentials *out,
    struct aws_credentials_error *err)
{
	const char *headers[3] = { "Accept: application/json", NULL, NULL };
	struct httpc_request req = { .method = "GET", .headers = headers,
	    .timeout_ms = p->fetch_timeout_ms, .connect_timeout_ms = p->fetch_timeout_ms,
	    .max_response = LIMITS_AWS_CREDS_RESPONSE };
	struct httpc_response resp;
	struct buf token, auth;
	char url[LIMITS_AWS_URL];
	int rc;

	httpc_response_init(&resp);
	buf_init(&token, 0);
	buf_init(&auth, LIMITS_AWS_TOKEN_FILE + 64);
	if (p->set.container_full_uri != NULL)
		snprintf(url, sizeof(url), "%s", p->set.container_full_uri);
	else
		snprintf(url, sizeof(url), AWS_CREDS__ECS_HOST "%s", p->set.container_relative_uri);
	rc = aws_creds__container_url_allowed(url, err);
	if (rc < 0)
		goto out;
	/* The token file is rotated by the agent: read it on every fetch. */
	if (p->set.container_token_file != NULL) {
		rc = aws_creds__read_token(p->set.container_token_file, &token, err);
		if (rc < 0)
			goto out;
	} else if (p->set.container_token != NULL) {
		if (buf_append_str(&token, p->set.container_token) < 0)
			goto nomem;
	}
	if (token.len > 0) {
		if (strpbrk(token.data, "\r\n") != NULL) {
			rc = -EINVAL;
			aws_creds__error(err, "container authorization token contains a line break");
			goto out;
		}
		if (buf_printf(&auth, "Authorization: %s", token.data) < 0)
			goto nomem;
		headers[1] = auth.data;
	}
	req.url = url;
	rc = aws_creds__request(p, &req, &resp, "container credentials endpoint", err);
	if (rc < 0)
		goto out;
	out->source = AWS_CREDENTIALS_CONTAINER;
	rc = aws_credentials_parse_json(resp.body.data, resp.body.len, out, err);
	if (rc == 0 && out->expiration_ms == 0 && out->session_token[0] != '\0')
		rc = -EINVAL;
	goto out;
nomem:
	rc = -ENOMEM;
	aws_creds__error(err, "container credentials: out of memory");
out:
	buf_free_secure(&token);
	buf_free_secure(&auth);
	buf_free_secure(&resp.body);
	return rc;
}

/* IMDSv2 session token, cached until shortly before its TTL runs out. */
static int
aws_creds__imds_token(struct aws_credentials_provider *p, bool renew,
    struct aws_credentials_error *err)
{
	char url[LIMITS_AWS_URL], ttl[64];
	const char *headers[] = { ttl, NULL };
	struct httpc_request req = { .method = "PUT", .url = url, .headers = headers,
	    .body = "", .body_len = 0, .timeout_ms = AWS_CREDS__IMDS_TIMEOUT_MS,
	    .connect_timeout_ms = AWS_CREDS__IMDS_TIMEOUT_MS, .max_response = 4096 };
	struct httpc_response resp;
	int rc;

	if (!renew && p->imds_token[0] != '\0' && time_mono_ms() < p->imds_token_expires_ms)
		return 0;
	explicit_bzero(p->imds_token, sizeof(p->imds_token));
	snprintf(url, sizeof(url), "%s/latest/api/token", p->set.imds_endpoint);
	snprintf(ttl, sizeof(ttl), "X-aws-ec2-metadata-token-ttl-seconds: %d",
	    AWS_CREDS__IMDS_TOKEN_TTL_S);
	httpc_response_init(&resp);
	rc = aws_creds__perform(p, &req, &resp, "IMDS token", err);
	if (rc == 0 && resp.status != 200) {
		aws_creds__error(err, "IMDS token: HTTP %ld", resp.status);
		rc = resp.status == 403 ? -EACCES : -EIO;
	}
	if (rc == 0) {
		while (resp.body.len > 0 && isspace((unsigned char)resp.body.data[resp.body.len - 1]))
			resp.body.data[--resp.body.len] = '\0';
		if (resp.body.len == 0 || resp.body.len >= sizeof(p->imds_token) ||
		    strpbrk(resp.body.data, "\r\n") != NULL) {
			aws_creds__error(err, "IMDS token: malformed reply");
			rc = -EIO;
		} else {
			memcpy(p->imds_token, resp.body.data, resp.body.len + 1);
			p->imds_token_expires_ms = time_mono_ms() +
			    (AWS_CREDS__IMDS_TOKEN_TTL_S - 60) * 1000LL;
		}
	}
	buf_free_secure(&resp.body);
	return rc;
}

/* GET an IMDS path with the session token; renews the token once on 401. */
static int
aws_creds__imds_get(struct aws_credentials_provider *p, const char *path,
    struct httpc_response *resp, struct aws_credentials_error *err)
{
	char url[LIMITS_AWS_URL], hdr[300];
	const char *headers[] = { hdr, NULL };
	struct httpc_request req = { .method = "GET", .url = url, .headers = headers,
	    .timeout_ms = AWS_CREDS__IMDS_TIMEOUT_MS,
	    .connect_timeout_ms = AWS_CREDS__IMDS_TIMEOUT_MS,
	    .max_response = LIMITS_AWS_CREDS_RESPONSE };
	int rc;

	snprintf(url, sizeof(url), "%s%s", p->set.imds_endpoint, path);
	for (int attempt = 0; attempt < 2; attempt++) {
		rc = aws_creds__imds_token(p, attempt > 0, err);
		if (rc < 0)
			break;
		snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token: %s", p->imds_token);
		rc = aws_creds__perform(p, &req, resp, "IMDS", err);
		explicit_bzero(hdr, sizeof(hdr));
		if (rc < 0)
			break;
		if (resp->status == 200)
			return 0;
		if (resp->status != 401) {
			aws_creds__error(err, "IMDS %s: HTTP %ld", path, resp->status);
			return resp->status == 404 ? -ENOENT : -EIO;
		}
		rc = -EACCES;
		aws_creds__error(err, "IMDS %s: HTTP 401 with a fresh session token", path);
	}
	return rc;
}

static int
aws_creds__fetch_imds(struct aws_credentials_provider *p, struct aws_credentials *out,
    struct aws_credentials_error *err)
{
	struct httpc_response resp;
	char role[256], path[512];
	size_t n;
	int rc;

	httpc_response_init(&resp);
	rc = aws_creds__imds_get(p, "/latest/meta-data/iam/security-credentials/", &resp, err);
	if (rc == -ENOENT)
		aws_creds__error(err, "IMDS: this instance has no IAM instance profile");
	if (rc < 0)
		goto out;
	n = strcspn(resp.body.data, "\r\n");
	if (n == 0 || n >= sizeof(role) || strchr(resp.body.data, '/') != NULL) {
		aws_creds__error(err, "IMDS: no role name in security-credentials/");
		rc = -EIO;
		goto out;
	}
	memcpy(role, resp.body.data, n);
	role[n] = '\0';
	snprintf(path, sizeof(path), "/latest/meta-data/iam/security-credentials/%s", role);
	rc = aws_creds__imds_get(p, path, &resp, err);
	if (rc < 0)
		goto out;
	out->source = AWS_CREDENTIALS_IMDS;
	rc = aws_credentials_parse_json(resp.body.data, resp.body.len, out, err);
out:
	buf_free_secure(&resp.body);
	return rc;
}

static int
aws_creds__fetch(struct aws_credentials_provider *p, struct aws_credentials *out,
    struct aws_credentials_error *err)
{
	int rc;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&p->fetch_lock);
	switch (p->source) {
	case AWS_CREDENTIALS_ENV:
		out->source = AWS_CREDENTIALS_ENV;
		rc = aws_creds__copy(out->access_key_id, sizeof(out->access_key_id),
		    p->set.access_key_id, "AWS_ACCESS_KEY_ID", err);
		if (rc == 0)
			rc = aws_creds__copy(out->secret_access_key, sizeof(out->secret_access_key),
			    p->set.secret_access_key, "AWS_SECRET_ACCESS_KEY", err);
		if (rc == 0 && p->set.session_token != NULL)
			rc = aws_creds__copy(out->session_token, sizeof(out->session_token),
			    p->set.session_token, "AWS_SESSION_TOKEN", err);
		break;
	case AWS_CREDENTIALS_WEB_IDENTITY:
		rc = aws_creds__fetch_web_identity(p, out, err);
		break;
	case AWS_CREDENTIALS_CONTAINER:
		rc = aws_creds__fetch_container(p, out, err);
		break;
	case AWS_CREDENTIALS_IMDS:
		rc = aws_creds__fetch_imds(p, out, err);
		break;
	default:
		rc = -ENOENT;
		break;
	}
	pthread_mutex_unlock(&p->fetch_lock);
	if (rc < 0)
		aws_credentials_wipe(out);
	return rc;
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

int
aws_region_resolve(const char *configured, const struct aws_credentials_options *opts,
    char *out, size_t len, const char **source, struct aws_credentials_error *err)
{
	struct aws_credentials_provider tmp;
	struct httpc_response resp;
	char **env = opts != NULL && opts->env != NULL ? opts->env : environ;
	const char *v, *src = NULL;
	int rc;

	if (err != NULL)
		err->message[0] = '\0';
	if (configured != NULL && configured[0] != '\0') {
		v = configured;
		src = "flag";
	} else if ((v = aws_creds__env(env, "AWS_REGION")) != NULL) {
		src = "AWS_REGION";
	} else if ((v = aws_creds__env(env, "AWS_DEFAULT_REGION")) != NULL) {
		src = "AWS_DEFAULT_REGION";
	}
	if (v != NULL) {
		if (!aws_creds__valid_region(v) || strlen(v) >= len) {
			aws_creds__error(err, "%s: \"%.64s\" is not a region name", src, v);
			return -EINVAL;
		}
		snprintf(out, len, "%s", v);
		if (source != NULL)
			*source = src;
		return 0;
	}
	/* IMDS, with a throwaway provider state for its token. */
	memset(&tmp, 0, sizeof(tmp));
	pthread_mutex_init(&tmp.fetch_lock, NULL);
	rc = aws_creds__settings_load(&tmp.set, env, NULL);
	if (rc == 0 && tmp.set.imds_disabled) {
		aws_creds__error(err, "no region: set --aws-region or AWS_REGION "
		    "(IMDS is disabled by AWS_EC2_METADATA_DISABLED)");
		rc = -ENOENT;
	}
	if (rc == 0) {
		tmp.http = httpc_new(NULL);
		rc = tmp.http != NULL ? 0 : -ENOMEM;
	}
	httpc_response_init(&resp);
	if (rc == 0) {
		rc = aws_creds__imds_get(&tmp, "/latest/meta-data/placement/region", &resp, err);
		if (rc < 0) {
			char inner[sizeof(err->message)];
			snprintf(inner, sizeof(inner), "%s", err != NULL ? err->message : "");
			aws_creds__error(err, "no region: set --aws-region or AWS_REGION (IMDS: %s)",
			    inner);
			rc = -ENOENT;
		} else {
			while (resp.body.len > 0 &&
			    isspace((unsigned char)resp.body.data[resp.body.len - 1]))
				resp.body.data[--resp.body.len] = '\0';
			if (!aws_creds__valid_region(resp.body.data) || resp.body.len >= len) {
				aws_creds__error(err, "IMDS placement/region is not a region name");
				rc = -EINVAL;
			} else {
				snprintf(out, len, "%s", resp.body.data);
				if (source != NULL)
					*source = "imds";
			}
		}
	}
	httpc_response_free(&resp);
	httpc_free(tmp.http);
	aws_creds__settings_free(&tmp.set);
	explicit_bzero(tmp.imds_token, sizeof(tmp.imds_token));
	pthread_mutex_destroy(&tmp.fetch_lock);
	return rc;
}

int
aws_sts_get_caller_identity(struct aws_credentials_provider *p, const char *region,
    struct aws_caller_identity *out, struct aws_credentials_error *err)
{
	static const char body[] = "Action=GetCallerIdentity&Version=" AWS_CREDS__STS_VERSION;
	const char *ct = "Content-Type: application/x-www-form-urlencoded; charset=utf-8";
	const char *sign_headers[] = { ct, NULL };
	struct aws_credentials c;
	struct sigv4_signature sig = { 0 };
	struct httpc_response resp;
	struct httpc_url u;
	struct httpc *http = NULL;
	struct httpc_tls tls = { .ca_file = p->set.ca_file };
	char url[LIMITS_AWS_URL], host[300], date[SIGV4_DATE_LEN];
	char h_host[320], h_date[64], *h_token = NULL;
	const char *send[6];
	size_t ns = 0;
	xmlDoc *doc = NULL;
	xmlNode *r;
	int rc;

	memset(out, 0, sizeof(*out));
	httpc_response_init(&resp);
	if (region == NULL || region[0] == '\0')
		region = p->region[0] != '\0' ? p->region : "us-east-1";
	aws_creds__sts_url(p, region, url, sizeof(url));
	if (httpc_url_parse(url, &u) < 0) {
		aws_creds__error(err, "STS endpoint %s is not an http(s) URL", url);
		return -EINVAL;
	}
	snprintf(host, sizeof(host), "%s", u.host);
	if (!u.default_port)
		snprintf(host + strlen(host), sizeof(host) - strlen(host), ":%d", u.port);
	rc = aws_credentials_get(p, &c);
	if (rc < 0) {
		aws_creds__error(err, "credentials expired");
		return -EACCES;
	}
	sigv4_format_date(time_real_ms(), date);
	struct sigv4_request sreq = {
		.method = "POST", .host = host, .path = u.path, .headers = sign_headers,
		.body = body, .body_len = sizeof(body) - 1, .region = region,
		.service = "sts", .amz_date = date,
	};
	struct sigv4_credentials sc = { c.access_key_id, c.secret_access_key, c.session_token };
	rc = sigv4_sign(&sreq, &sc, false, &sig);
	if (rc < 0) {
		aws_creds__error(err, "cannot sign the STS request");
		goto out;
	}
	snprintf(h_host, sizeof(h_host), "Host: %s", host);
	snprintf(h_date, sizeof(h_date), "X-Amz-Date: %s", date);
	send[ns++] = ct;
	send[ns++] = h_host;
	send[ns++] = h_date;
	if (c.session_token[0] != '\0') {
		if (asprintf(&h_token, "X-Amz-Security-Token: %s", c.session_token) < 0) {
			h_token = NULL;
			rc = -ENOMEM;
			goto out;
		}
		send[ns++] = h_token;
	}
	char *h_auth = NULL;
	if (asprintf(&h_auth, "Authorization: %s", sig.authorization) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	send[ns++] = h_auth;
	send[ns] = NULL;
	http = httpc_new(&tls);
	if (http == NULL) {
		free(h_auth);
		rc = -ENOMEM;
		goto out;
	}
	struct httpc_request req = { .method = "POST", .url = url, .headers = send, .body = body,
	    .body_len = sizeof(body) - 1, .timeout_ms = p->fetch_timeout_ms,
	    .max_response = LIMITS_AWS_CREDS_RESPONSE };
	rc = httpc_perform(http, &req, &resp);
	free(h_auth);
	if (rc < 0) {
		aws_creds__error(err, "STS GetCallerIdentity: %s", resp.error);
		goto out;
	}
	if (resp.status != 200) {
		rc = aws_creds__http_failure(&resp, "STS GetCallerIdentity", err);
		goto out;
	}
	doc = aws_xml_parse(resp.body.data, resp.body.len);
	r = aws_xml_path(xmlDocGetRootElement(doc), "GetCallerIdentityResult");
	if (r == NULL) {
		aws_creds__error(err, "STS GetCallerIdentity: unexpected reply");
		rc = -EIO;
		goto out;
	}
	aws_xml_text(aws_xml_child(r, "Account"), out->account, sizeof(out->account));
	aws_xml_text(aws_xml_child(r, "Arn"), out->arn, sizeof(out->arn));
	aws_xml_text(aws_xml_child(r, "UserId"), out->user_id, sizeof(out->user_id));
	rc = 0;
out:
	xmlFreeDoc(doc);
	httpc_free(http);
	httpc_response_free(&resp);
	sigv4_signature_free(&sig);
	if (h_token != NULL) {
		explicit_bzero(h_token, strlen(h_token));
		free(h_token);
	}
	aws_credentials_wipe(&c);
	return rc;
}
