/* AWS Signature Version 4 over OpenSSL: a pure function from request and keys to a signature. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "stratos/buf.h"
#include "stratos/limits.h"
#include "stratos/sigv4.h"

#define SIGV4__ALGORITHM "AWS4-HMAC-SHA256"

struct sigv4__header {
	char *name;     /* lower case */
	char *value;    /* trimmed, inner runs of spaces collapsed */
};

static pthread_once_t sigv4__once = PTHREAD_ONCE_INIT;
static EVP_MD *sigv4__md;
static EVP_MAC *sigv4__mac;
static EVP_MAC_CTX *sigv4__hmac_template;   /* HMAC-SHA256, no key: duplicated per use */

/*
 * Explicitly fetched algorithms spare OpenSSL 3 an implicit fetch (a
 * lookup under a lock) per call: HMAC() fetched "HMAC" five times a request.
 */
static void
sigv4__init(void)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};

	sigv4__md = EVP_MD_fetch(NULL, "SHA256", NULL);
	sigv4__mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (sigv4__mac != NULL)
		sigv4__hmac_template = EVP_MAC_CTX_new(sigv4__mac);
	if (sigv4__hmac_template != NULL &&
	    EVP_MAC_CTX_set_params(sigv4__hmac_template, params) != 1) {
		EVP_MAC_CTX_free(sigv4__hmac_template);
		sigv4__hmac_template = NULL;
	}
}

static const EVP_MD *
sigv4__sha256(void)
{
	pthread_once(&sigv4__once, sigv4__init);
	return sigv4__md != NULL ? sigv4__md : EVP_sha256();
}

static void
sigv4__hex(const unsigned char *in, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * len] = '\0';
}

int
sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(data != NULL ? data : "", len, md, &mdlen, sigv4__sha256(), NULL) != 1 ||
	    mdlen != 32)
		return -EIO;
	sigv4__hex(md, 32, out);
	return 0;
}

static int
sigv4__hmac(const unsigned char *key, size_t keylen, const void *data, size_t len,
    unsigned char out[32])
{
	EVP_MAC_CTX *ctx;
	size_t outlen = 0;
	int ok;

	pthread_once(&sigv4__once, sigv4__init);
	/* Duplicating a prepared context skips the digest lookup by name. */
	if (sigv4__hmac_template == NULL || (ctx = EVP_MAC_CTX_dup(sigv4__hmac_template)) == NULL)
		return -EIO;
	ok = EVP_MAC_init(ctx, key, keylen, NULL) == 1 && EVP_MAC_update(ctx, data, len) == 1 &&
	    EVP_MAC_final(ctx, out, &outlen, 32) == 1 && outlen == 32;
	/* The context holds a copy of the key; freeing it cleanses that copy. */
	EVP_MAC_CTX_free(ctx);
	return ok ? 0 : -EIO;
}

void
sigv4_format_date(int64_t unix_ms, char out[SIGV4_DATE_LEN])
{
	time_t secs = (time_t)(unix_ms / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	snprintf(out, SIGV4_DATE_LEN, "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool
sigv4__valid_date(const char *d)
{
	if (d == NULL || strlen(d) != SIGV4_DATE_LEN - 1 || d[8] != 'T' || d[15] != 'Z')
		return false;
	for (int i = 0; i < 15; i++)
		if (i != 8 && !isdigit((unsigned char)d[i]))
			return false;
	return true;
}

static void
sigv4__headers_free(struct sigv4__header *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
}

/* Copies "Name: value" as a lower-case name and a normalised value. */
static int
sigv4__header_parse(const char *line, struct sigv4__header *out)
{
	const char *colon = strchr(line, ':');
	const char *v, *end;
	size_t nlen;
	char *p;

	if (colon == NULL || colon == line)
		return -EINVAL;
	nlen = (size_t)(colon - line);
	while (nlen > 0 && isspace((unsigned char)line[nlen - 1]))
		nlen--;
	if (nlen == 0)
		return -EINVAL;
	out->name = malloc(nlen + 1);
	if (out->name == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < nlen; i++) {
		unsigned char ch = (unsigned char)line[i];
		if (ch <= ' ' || ch >= 0x7f) {
			free(out->name);
			out->name = NULL;
			return -EINVAL;
		}
		out->name[i] = (char)tolower(ch);
	}
	out->name[nlen] = '\0';

	v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	end = v + strlen(v);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	out->value = malloc((size_t)(end - v) + 1);
	if (out->value == NULL) {
		free(out->name);
		out->name = NULL;
		return -ENOMEM;
	}
	p = out->value;
	for (const char *s = v; s < end; s++) {
		if (*s == '\r' || *s == '\n') {
			free(out->name);
			free(out->value);
			out->name = out->value = NULL;
			return -EINVAL;
		}
		if ((*s == ' ' || *s == '\t') && p > out->value && p[-1] == ' ')
			continue;
		*p++ = *s == '\t' ? ' ' : *s;
	}
	*p = '\0';
	return 0;
}

static int
sigv4__header_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sigv4__header *)a)->name,
	    ((const struct sigv4__header *)b)->name);
}

static int
sigv4__add(struct sigv4__header *h, size_t *n, const char *name, const char *value)
{
	if (*n >= LIMITS_SIGV4_HEADERS)
		return -E2BIG;
	h[*n].name = strdup(name);
	h[*n].value = strdup(value);
	if (h[*n].name == NULL || h[*n].value == NULL) {
		free(h[*n].name);
		free(h[*n].value);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

/* Canonical headers block and signed-header list, duplicates joined with ','. */
static int
sigv4__canonical_headers(const struct sigv4_request *req, const struct sigv4_credentials *creds,
    struct buf *canon, struct buf *signed_headers)
{
	struct sigv4__header h[LIMITS_SIGV4_HEADERS];
	size_t n = 0;
	int rc = 0;

	for (const char *const *p = req->headers; p != NULL && *p != NULL; p++) {
		if (n >= LIMITS_SIGV4_HEADERS) {
			rc = -E2BIG;
			goto out;
		}
		rc = sigv4__header_parse(*p, &h[n]);
		if (rc < 0)
			goto out;
		n++;
		if (strcmp(h[n - 1].name, "host") == 0 || strcmp(h[n - 1].name, "x-amz-date") == 0 ||
		    strcmp(h[n - 1].name, "x-amz-security-token") == 0 ||
		    strcmp(h[n - 1].name, "authorization") == 0) {
			rc = -EINVAL;
			goto out;
		}
	}
	if ((rc = sigv4__add(h, &n, "host", req->host)) < 0 ||
	    (rc = sigv4__add(h, &n, "x-amz-date", req->amz_date)) < 0)
		goto out;
	if (creds->session_token != NULL && creds->session_token[0] != '\0' &&
	    (rc = sigv4__add(h, &n, "x-amz-security-token", creds->session_token)) < 0)
		goto out;
	/* qsort is not stable; values of a repeated name keep their order below. */
	for (size_t i = 1; i < n; i++) {
		struct sigv4__header tmp = h[i];
		size_t j = i;
		while (j > 0 && sigv4__header_cmp(&h[j - 1], &tmp) > 0) {
			h[j] = h[j - 1];
			j--;
		}
		h[j] = tmp;
	}
	for (size_t i = 0; i < n; i++) {
		bool repeat = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;
		if (repeat) {
			/* Replace the previous newline with ",value\n". */
			canon->len--;
			rc = buf_printf(canon, ",%s\n", h[i].value);
		} else {
			rc = buf_printf(canon, "%s:%s\n", h[i].name, h[i].value);
			if (rc == 0)
				rc = buf_printf(signed_headers, "%s%s", i > 0 ? ";" : "", h[i].name);
		}
		if (rc < 0)
			goto out;
	}
out:
	sigv4__headers_free(h, n);
	return rc;
}

int
sigv4_sign(const struct sigv4_request *req, const struct sigv4_credentials *creds,
    bool keep_intermediates, struct sigv4_signature *out)
{
	struct buf canon, signed_headers, sts;
	char payload_hash[65], canon_hash[65], scope[256], date[9];
	unsigned char k1[32], k2[32], k3[32], k4[32], sig[32];
	char sighex[65];
	unsigned char *secret_key = NULL;
	size_t secret_len = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	buf_init(&canon, LIMITS_SIGV4_CANONICAL);
	buf_init(&signed_headers, 4096);
	buf_init(&sts, 4096);
	if (req->method == NULL || req->host == NULL || req->region == NULL ||
	    req->service == NULL || creds->access_key_id == NULL ||
	    creds->secret_access_key == NULL || !sigv4__valid_date(req->amz_date) ||
	    req->region[0] == '\0' || req->service[0] == '\0' || creds->access_key_id[0] == '\0') {
		rc = -EINVAL;
		goto fail;
	}
	memcpy(date, req->amz_date, 8);
	date[8] = '\0';
	if (snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", date, req->region,
	    req->service) >= (int)sizeof(scope)) {
		rc = -EINVAL;
		goto fail;
	}

	/* 1. Canonical request. */
	if ((rc = sigv4_sha256_hex(req->body, req->body_len, payload_hash)) < 0 ||
	    (rc = buf_printf(&canon, "%s\n%s\n%s\n", req->method,
	        req->path != NULL ? req->path : "/", req->query != NULL ? req->query : "")) < 0 ||
	    (rc = sigv4__canonical_headers(req, creds, &canon, &signed_headers)) < 0 ||
	    (rc = buf_printf(&canon, "\n%s\n%s", signed_headers.data, payload_hash)) < 0)
		goto fail;

	/* 2. String to sign. */
	if ((rc = sigv4_sha256_hex(canon.data, canon.len, canon_hash)) < 0 ||
	    (rc = buf_printf(&sts, SIGV4__ALGORITHM "\n%s\n%s\n%s", req->amz_date, scope,
	        canon_hash)) < 0)
		goto fail;

	/* 3. Signing key: HMAC chain from "AWS4" + secret. */
	secret_len = 4 + strlen(creds->secret_access_key);
	secret_key = malloc(secret_len + 1);
	if (secret_key == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	memcpy(secret_key, "AWS4", 4);
	memcpy(secret_key + 4, creds->secret_access_key, secret_len - 4);
	if ((rc = sigv4__hmac(secret_key, secret_len, date, 8, k1)) < 0 ||
	    (rc = sigv4__hmac(k1, 32, req->region, strlen(req->region), k2)) < 0 ||
	    (rc = sigv4__hmac(k2, 32, req->service, strlen(req->service), k3)) < 0 ||
	    (rc = sigv4__hmac(k3, 32, "aws4_request", 12, k4)) < 0 ||
	    (rc = sigv4__hmac(k4, 32, sts.data, sts.len, sig)) < 0)
		goto fail;
	sigv4__hex(sig, 32, sighex);

	/* 4. Authorization header. */
	{
		struct buf auth;
		buf_init(&auth, 8192);
		rc = buf_printf(&auth, SIGV4__ALGORITHM " Credential=%s/%s, SignedHeaders=%s, Signature=%s",
		    creds->access_key_id, scope, signed_headers.data, sighex);
		if (rc < 0) {
			buf_free(&auth);
			goto fail;
		}
		out->authorization = buf_take(&auth);
		if (out->authorization == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	if (keep_intermediates) {
		out->canonical_request = buf_take(&canon);
		out->string_to_sign = buf_take(&sts);
		if (out->canonical_request == NULL || out->string_to_sign == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	rc = 0;
	goto out;
fail:
	sigv4_signature_free(out);
out:
	if (secret_key != NULL) {
		explicit_bzero(secret_key, secret_len);
		free(secret_key);
	}
	explicit_bzero(k1, sizeof(k1));
	explicit_bzero(k2, sizeof(k2));
	explicit_bzero(k3, sizeof(k3));
	explicit_bzero(k4, sizeof(k4));
	explicit_bzero(sig, sizeof(sig));
	buf_free(&canon);
	buf_free(&signed_headers);
	buf_free(&sts);
	return rc;
}

void
sigv4_signature_free(struct sigv4_signature *sig)
{
	if (sig == NULL)
		return;
	free(sig->authorization);
	free(sig->canonical_request);
	free(sig->string_to_sign);
	memset(sig, 0, sizeof(*sig));
}

void
sigv4_headers_free(struct sigv4_headers *h)
{
	if (h == NULL)
		return;
	if (h->token != NULL) {
		explicit_bzero(h->token, strlen(h->token));
		free(h->token);
	}
	free(h->authorization);
	memset(h, 0, sizeof(*h));
}

int
sigv4_sign_headers(const struct sigv4_request *req, const struct sigv4_credentials *creds,
    struct sigv4_headers *h)
{
	struct sigv4_request r = *req;
	struct sigv4_signature sig = { 0 };
	char now[SIGV4_DATE_LEN];
	size_t n = 0;
	int rc;

	memset(h, 0, sizeof(*h));
	if (r.amz_date == NULL) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		sigv4_format_date((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, now);
		r.amz_date = now;
	}
	rc = sigv4_sign(&r, creds, false, &sig);
	if (rc < 0)
		return rc;
	for (size_t i = 0; r.headers != NULL && r.headers[i] != NULL; i++)
		h->lines[n++] = r.headers[i];
	snprintf(h->host, sizeof(h->host), "Host: %s", r.host);
	snprintf(h->date, sizeof(h->date), "X-Amz-Date: %s", r.amz_date);
	h->lines[n++] = h->host;
	h->lines[n++] = h->date;
	if (creds->session_token != NULL && creds->session_token[0] != '\0') {
		if (asprintf(&h->token, "X-Amz-Security-Token: %s", creds->session_token) < 0) {
			h->token = NULL;
			rc = -ENOMEM;
			goto fail;
		}
		h->lines[n++] = h->token;
	}
	if (asprintf(&h->authorization, "Authorization: %s", sig.authorization) < 0) {
		h->authorization = NULL;
		rc = -ENOMEM;
		goto fail;
	}
	h->lines[n++] = h->authorization;
	h->lines[n] = NULL;
	sigv4_signature_free(&sig);
	return 0;
fail:
	sigv4_signature_free(&sig);
	sigv4_headers_free(h);
	return rc;
}
