/* Outgoing HTTP(S) over libcurl easy handles: keep-alive, caps, typed errors. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>

#include "stratos/httpc.h"
#include "stratos/limits.h"

struct httpc {
	CURL *curl;
	char *ca_file;
	char *ca_pem;
	char *cert_file;
	char *key_file;
	char *cert_pem;
	char *key_pem;
	bool insecure;
};

struct httpc__transfer {
	const struct httpc_request *req;
	struct httpc_response *resp;
	bool too_big;
	bool aborted;
};

/* libcurl calls this about once a second even on an idle stream. */
static int
httpc__progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
    curl_off_t ulnow)
{
	struct httpc__transfer *t = userdata;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (atomic_load(t->req->cancel)) {
		t->aborted = true;
		return 1;
	}
	return 0;
}

int
httpc_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

static char *
httpc__dup(const char *s, bool *failed)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = strdup(s);
	if (d == NULL)
		*failed = true;
	return d;
}

struct httpc *
httpc_new(const struct httpc_tls *tls)
{
	struct httpc *h = calloc(1, sizeof(*h));
	bool failed = false;

	if (h == NULL)
		return NULL;
	h->curl = curl_easy_init();
	if (tls != NULL) {
		h->ca_file = httpc__dup(tls->ca_file, &failed);
		h->ca_pem = httpc__dup(tls->ca_pem, &failed);
		h->cert_file = httpc__dup(tls->cert_file, &failed);
		h->key_file = httpc__dup(tls->key_file, &failed);
		h->cert_pem = httpc__dup(tls->cert_pem, &failed);
		h->key_pem = httpc__dup(tls->key_pem, &failed);
		h->insecure = tls->insecure_skip_verify;
	}
	if (h->curl == NULL || failed) {
		httpc_free(h);
		return NULL;
	}
	return h;
}

static void
httpc__free_secret(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void
httpc_free(struct httpc *h)
{
	if (h == NULL)
		return;
	if (h->curl != NULL)
		curl_easy_cleanup(h->curl);
	free(h->ca_file);
	free(h->ca_pem);
	free(h->cert_file);
	free(h->key_file);
	free(h->cert_pem);
	httpc__free_secret(h->key_pem);
	free(h);
}

void
httpc_response_init(struct httpc_response *resp)
{
	memset(resp, 0, sizeof(*resp));
	buf_init(&resp->body, 0);
	resp->retry_after_s = -1;
}

void
httpc_response_free(struct httpc_response *resp)
{
	if (resp != NULL)
		buf_free(&resp->body);
}

static size_t
httpc__write(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct httpc__transfer *t = userdata;
	size_t n = size * nmemb;

	if (t->req->on_data != NULL) {
		if (t->req->on_data(t->req->on_data_ctx, data, n) < 0) {
			t->aborted = true;
			return 0;
		}
		return n;
	}
	if (buf_append(&t->resp->body, data, n) < 0) {
		t->too_big = true;
		return 0;
	}
	return n;
}

static void
httpc__trim_copy(char *dst, size_t dstlen, const char *src, size_t n)
{
	while (n > 0 && (*src == ' ' || *src == '\t')) {
		src++;
		n--;
	}
	while (n > 0 && (src[n - 1] == '\r' || src[n - 1] == '\n' || src[n - 1] == ' '))
		n--;
	if (n >= dstlen)
		n = dstlen - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static size_t
httpc__header(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct httpc__transfer *t = userdata;
	size_t n = size * nmemb;
	char value[128];

	/* A new status line (redirect, 100-continue) starts a new header block. */
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		const char *sp = memchr(data, ' ', n);
		t->resp->retry_after_s = -1;
		t->resp->content_type[0] = '\0';
		/* Known before the body, so a streaming reader can tell errors from data. */
		if (sp != NULL && (size_t)(sp - data) + 4 <= n)
			t->resp->status = strtol(sp + 1, NULL, 10);
	} else if (n > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
		httpc__trim_copy(value, sizeof(value), data + 12, n - 12);
		char *end;
		long secs = strtol(value, &end, 10);
		if (end != value && *end == '\0' && secs >= 0) {
			t->resp->retry_after_s = secs;
		} else {
			time_t when = curl_getdate(value, NULL);
			if (when != -1)
				t->resp->retry_after_s = when > time(NULL) ? (long)(when - time(NULL)) : 0;
		}
	} else if (n > 13 && strncasecmp(data, "Content-Type:", 13) == 0) {
		httpc__trim_copy(t->resp->content_type, sizeof(t->resp->content_type), data + 13,
		    n - 13);
	}
	return n;
}

static int
httpc__map_error(CURLcode code, const struct httpc__transfer *t)
{
	switch (code) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
		return -EPROTO;
	case CURLE_ABORTED_BY_CALLBACK:
		return -ECANCELED;
	case CURLE_WRITE_ERROR:
		if (t->too_big)
			return -EMSGSIZE;
		if (t->aborted)
			return -ECANCELED;
		return -EIO;
	default:
		return -EIO;
	}
}

static void
httpc__blob(CURL *curl, CURLoption opt, const char *pem)
{
	struct curl_blob blob = {
		.data = (void *)pem, .len = strlen(pem), .flags = CURL_BLOB_COPY,
	};

	curl_easy_setopt(curl, opt, &blob);
}

static void
httpc__tls_options(struct httpc *h)
{
	CURL *c = h->curl;

	if (h->ca_file != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
	if (h->ca_pem != NULL)
		httpc__blob(c, CURLOPT_CAINFO_BLOB, h->ca_pem);
	if (h->cert_file != NULL)
		curl_easy_setopt(c, CURLOPT_SSLCERT, h->cert_file);
	if (h->cert_pem != NULL)
		httpc__blob(c, CURLOPT_SSLCERT_BLOB, h->cert_pem);
	if (h->key_file != NULL)
		curl_easy_setopt(c, CURLOPT_SSLKEY, h->key_file);
	if (h->key_pem != NULL)
		httpc__blob(c, CURLOPT_SSLKEY_BLOB, h->key_pem);
	if (h->insecure) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
}

int
httpc_perform(struct httpc *h, const struct httpc_request *req, struct httpc_response *resp)
{
	struct httpc__transfer t = { .req = req, .resp = resp };
	struct curl_slist *headers = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *c = h->curl;
	CURLcode code;
	long connects = 0;
	size_t nheaders = 0;
	int rc = 0;

	buf_free(&resp->body);
	httpc_response_init(resp);
	if (req->cancel != NULL && atomic_load(req->cancel)) {
		snprintf(resp->error, sizeof(resp->error), "cancelled");
		return -ECANCELED;
	}
	buf_init(&resp->body, req->max_response ? req->max_response : LIMITS_HTTPC_RESPONSE_DEFAULT);

	/* Reset keeps the live connections, DNS and TLS session caches. */
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, req->url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, httpc__write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, httpc__header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	    req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 5000L);
	if (req->timeout_ms > 0)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms);
	if (req->idle_timeout_ms > 0) {
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
		    (req->idle_timeout_ms + 999) / 1000);
	}
	if (req->cancel != NULL) {
		curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, httpc__progress);
		curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
	}
	httpc__tls_options(h);
	if (req->fresh_connection) {
		curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
	}

	if (req->method == NULL || strcmp(req->method, "GET") == 0) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(req->method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
		if (req->body != NULL || strcmp(req->method, "DELETE") != 0) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
		}
	}
	for (const char *const *hp = req->headers; hp != NULL && *hp != NULL; hp++) {
		if (++nheaders > LIMITS_HTTPC_HEADERS) {
			rc = -E2BIG;
			snprintf(resp->error, sizeof(resp->error), "too many request headers");
			goto out;
		}
		struct curl_slist *n = curl_slist_append(headers, *hp);
		if (n == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		headers = n;
	}
	/* curl would wait up to a second for "100 Continue" on larger bodies. */
	struct curl_slist *n = curl_slist_append(headers, "Expect:");
	if (n == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	headers = n;
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);

	code = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &resp->total_s);
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
	resp->reused_connection = connects == 0;
	{
		long sent = 0;
		double connect = 0, appconnect = 0;
		curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &sent);
		curl_easy_getinfo(c, CURLINFO_CONNECT_TIME, &connect);
		curl_easy_getinfo(c, CURLINFO_APPCONNECT_TIME, &appconnect);
		resp->request_sent = sent > 0;
		resp->connect_s = connects == 0 ? 0 : (appconnect > connect ? appconnect : connect);
	}
	if (code != CURLE_OK) {
		rc = httpc__map_error(code, &t);
		snprintf(resp->error, sizeof(resp->error), "%s",
		    t.too_big ? "response larger than the cap" :
		    errbuf[0] != '\0' ? errbuf : curl_easy_strerror(code));
		/* A stream aborted by its reader still had a response. */
		if (rc != -ECANCELED)
			resp->status = resp->status > 0 && rc == -EMSGSIZE ? resp->status : 0;
	}
out:
	curl_slist_free_all(headers);
	/* The options point at request memory that the caller may free. */
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	return rc;
}

int
httpc_url_parse(const char *url, struct httpc_url *out)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *user = NULL;
	int rc = -EINVAL;

	memset(out, 0, sizeof(*out));
	if (u == NULL)
		return -ENOMEM;
	if (url == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		goto out;
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
		goto out;
	rc = -E2BIG;
	if (strlen(host) >= sizeof(out->host) || strlen(path) >= sizeof(out->path))
		goto out;
	snprintf(out->scheme, sizeof(out->scheme), "%s", scheme);
	snprintf(out->host, sizeof(out->host), "%s", host);
	snprintf(out->path, sizeof(out->path), "%s", path[0] != '\0' ? path : "/");
	out->port = atoi(port);
	out->default_port = out->port == (strcmp(scheme, "https") == 0 ? 443 : 80);
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(user);
	curl_url_cleanup(u);
	return rc;
}

char *
httpc_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(n * 3 + 1), *p = out;

	if (out == NULL)
		return NULL;
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '_' || ch == '.' || ch == '~') {
			*p++ = (char)ch;
		} else {
			*p++ = '%';
			*p++ = hex[ch >> 4];
			*p++ = hex[ch & 15];
		}
	}
	*p = '\0';
	return out;
}
