/* Credential sources over HTTP: the container endpoint (EKS Pod Identity) and IMDSv2, and their shared HTTP steps. */
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

/* ---- HTTP helpers ------------------------------------------------------- */

/* Reads a small token file whole, without its trailing newline. Caller frees securely. */
int
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

int
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
int
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
int
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

int
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
