/* AWS STS: AssumeRoleWithWebIdentity (IRSA credentials) and GetCallerIdentity (doctor). */
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

int
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
int
aws_sts_get_caller_identity(struct aws_credentials_provider *p, const char *region,
    struct aws_caller_identity *out, struct aws_credentials_error *err)
{
	static const char body[] = "Action=GetCallerIdentity&Version=" AWS_CREDS__STS_VERSION;
	const char *ct = "Content-Type: application/x-www-form-urlencoded; charset=utf-8";
	const char *sign_headers[] = { ct, NULL };
	struct aws_credentials c;
	struct sigv4_headers sh = { 0 };
	struct httpc_response resp;
	struct httpc_url u;
	struct httpc *http = NULL;
	struct httpc_tls tls = { .ca_file = p->set.ca_file };
	char url[LIMITS_AWS_URL], host[300];
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
	struct sigv4_request sreq = {
		.method = "POST", .host = host, .path = u.path, .headers = sign_headers,
		.body = body, .body_len = sizeof(body) - 1, .region = region, .service = "sts",
	};
	struct sigv4_credentials sc = { c.access_key_id, c.secret_access_key, c.session_token };
	rc = sigv4_sign_headers(&sreq, &sc, &sh);
	aws_credentials_wipe(&c);
	if (rc < 0) {
		aws_creds__error(err, "cannot sign the STS request");
		goto out;
	}
	http = httpc_new(&tls);
	if (http == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	struct httpc_request req = { .method = "POST", .url = url, .headers = sh.lines, .body = body,
	    .body_len = sizeof(body) - 1, .timeout_ms = p->fetch_timeout_ms,
	    .max_response = LIMITS_AWS_CREDS_RESPONSE };
	rc = httpc_perform(http, &req, &resp);
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
	sigv4_headers_free(&sh);
	aws_credentials_wipe(&c);
	return rc;
}
