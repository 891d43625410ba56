/* HTTPS and plain-HTTP servers over libmicrohttpd: routing, capped bodies, request dispatch, health, lifecycle. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#include "stratos/jsonscan.h"
#include "stratos/limits.h"
#include "stratos/log.h"
#include "stratos/metrics.h"
#include "server_internal.h"
#include "stratos/timeutil.h"



struct metrics_family *server__m_requests;
struct metrics_family *server__m_seconds;
struct metrics_family *server__m_connections;
struct metrics_family *server__m_timeouts;
struct metrics_family *server__m_tls_reloads;
struct metrics_family *server__m_tls_not_after;

static void
server__metrics_init(void)
{
	static const char *const handler_code[] = { "handler", "code", NULL };
	static const char *const handler[] = { "handler", NULL };
	static const char *const srv[] = { "server", NULL };
	static const char *const srv_result[] = { "server", "result", NULL };

	server__m_requests = metrics_register(METRICS_COUNTER, "stratos_http_requests_total",
	    "HTTP requests answered, by route and status code", handler_code, NULL, 0);
	server__m_seconds = metrics_register(METRICS_HISTOGRAM, "stratos_http_request_seconds",
	    "Time from request headers to the last response byte", handler,
	    METRICS_BUCKETS_LATENCY, METRICS_BUCKETS_LATENCY_COUNT);
	server__m_connections = metrics_register(METRICS_GAUGE, "stratos_http_connections",
	    "Open connections", srv, NULL, 0);
	server__m_timeouts = metrics_register(METRICS_COUNTER,
	    "stratos_http_connections_timed_out_total",
	    "Connections closed because a request was not received within the idle timeout",
	    srv, NULL, 0);
	server__m_tls_reloads = metrics_register(METRICS_COUNTER, "stratos_tls_reloads_total",
	    "Certificate, key or client CA reloads, by result", srv_result, NULL, 0);
	server__m_tls_not_after = metrics_register(METRICS_GAUGE,
	    "stratos_tls_certificate_not_after_seconds",
	    "Expiry (Unix time) of the serving certificate in use", srv, NULL, 0);
}

/* ---- Small helpers ------------------------------------------------------- */

void
server_json_error(struct server_response *resp, int status, const char *fmt, ...)
{
	char msg[512];
	json_t *doc, *str;
	char *text;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	str = json_string(msg);
	if (str == NULL) {
		/* Not UTF-8 (a message quoting the client's bytes): keep ASCII only. */
		for (char *p = msg; *p != '\0'; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		str = json_string(msg);
	}
	doc = json_object();
	json_object_set_new(doc, "error", str);
	text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	resp->status = status;
	resp->content_type = "application/json";
	buf_reset(&resp->body);
	if (text != NULL)
		buf_append_str(&resp->body, text);
	free(text);
}

void
server_handle_metrics(void *ctx, const struct server_request *req, struct server_response *resp)
{
	(void)ctx;
	(void)req;
	resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
	if (metrics_render(&resp->body) < 0)
		server_json_error(resp, 500, "metrics did not fit the response buffer");
}

/* ---- Requests ------------------------------------------------------------- */

static const struct server__route *
server__route_find(const struct server *s, const char *method, const char *path,
    bool *path_known)
{
	*path_known = false;
	for (size_t i = 0; i < s->nroutes; i++) {
		const struct server__route *r = &s->routes[i];
		if (strcmp(r->path, path) != 0)
			continue;
		*path_known = true;
		if (strcmp(r->method, method) == 0 ||
		    (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0))
			return r;
	}
	return NULL;
}

static void
server__allow(const struct server *s, const char *path, char *out, size_t len)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < s->nroutes; i++) {
		const struct server__route *r = &s->routes[i];
		if (strcmp(r->path, path) != 0)
			continue;
		o += (size_t)snprintf(out + o, o < len ? len - o : 0, "%s%s%s", o ? ", " : "",
		    r->method, strcmp(r->method, "GET") == 0 ? ", HEAD" : "");
		if (o >= len)
			break;
	}
}

/* Queues a response; takes ownership of body (malloc'd, may be NULL when len is 0). */
static enum MHD_Result
server__reply(struct server *s, struct MHD_Connection *mc, struct server__req *r, int status,
    const char *content_type, char *body, size_t len, const char *allow)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	if (allow != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	if (atomic_load(&s->stopping))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(mc, (unsigned)status, resp);
	MHD_destroy_response(resp);
	r->status = status;
	r->resp_bytes = len;
	if (r->conn != NULL)
		atomic_store(&r->conn->responding, true);
	return ret;
}

static enum MHD_Result
server__reply_error(struct server *s, struct MHD_Connection *mc, struct server__req *r,
    int status, const char *allow, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static enum MHD_Result
server__reply_error(struct server *s, struct MHD_Connection *mc, struct server__req *r,
    int status, const char *allow, const char *fmt, ...)
{
	struct server_response resp;
	char msg[512];
	va_list ap;
	size_t len;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	buf_init(&resp.body, 4096);
	server_json_error(&resp, status, "%s", msg);
	len = resp.body.len;
	return server__reply(s, mc, r, status, "application/json", buf_take(&resp.body), len, allow);
}

/*
 * Checks the body of a SERVER_ROUTE_JSON request in full (jsonscan, one
 * pass, no tree; container ends recorded in doc) and, with
 * SERVER_ROUTE_JSON_TREE, parses it into *tree. Returns 0, or -1 with the
 * 400 text in why. Free doc in every case.
 */
static int
server__check_json(const struct server__req *r, bool want_tree, struct jsonscan_doc *doc,
    struct jsonscan_value *root, json_t **tree, char *why, size_t whylen)
{
	struct jsonscan_error err;
	json_error_t jerr;
	int rc;

	*tree = NULL;
	rc = jsonscan_validate(r->body.data, r->body.len, doc, root, &err);
	if (r->body.len == 0) {
		snprintf(why, whylen, "request body is empty; a JSON object is expected");
		return -1;
	}
	if (rc < 0) {
		snprintf(why, whylen, "request body is not valid JSON (line %d, column %d): %s",
		    err.line, err.column, err.text);
		return -1;
	}
	if (root->type != JSONSCAN_OBJECT) {
		snprintf(why, whylen, "request body must be a JSON object");
		return -1;
	}
	if (want_tree && (*tree = json_loadb(r->body.data, r->body.len, 0, &jerr)) == NULL) {
		/* Only memory can fail here: the text was checked. */
		snprintf(why, whylen, "request body could not be parsed: %s", jerr.text);
		return -1;
	}
	return 0;
}

void
server__run_handler(struct server *s, struct server__req *r)
{
	const struct server__route *route = r->route;
	struct server_request req;
	struct server_response resp;
	size_t cap;
	char why[400];
	json_t *doc = NULL;
	struct jsonscan_doc jdoc = { 0 };

	memset(&req, 0, sizeof(req));
	req.method = r->method;
	req.path = route->path;
	req.body = r->body.data != NULL ? r->body.data : "";
	req.body_len = r->body.len;
	req.client_cert_verified = r->client_cert_verified;
	req.received_us = r->received_us != 0 ? r->received_us : time_mono_us();
	req.on_worker = atomic_load(&r->blocking) == SERVER__BLOCKING_RUNNING;
	r->received_us = req.received_us;
	cap = s->opts.max_body_bytes * 2 > LIMITS_HTTP_RESPONSE_MIN ? s->opts.max_body_bytes * 2 :
	    LIMITS_HTTP_RESPONSE_MIN;
	resp.status = 200;
	resp.content_type = "application/json";
	resp.defer = false;
	buf_init(&resp.body, cap);
	if (route->flags & (SERVER_ROUTE_JSON | SERVER_ROUTE_JSON_TREE)) {
		if (server__check_json(r, route->flags & SERVER_ROUTE_JSON_TREE, &jdoc,
		    &req.json_root, &doc, why, sizeof(why)) < 0) {
			jsonscan_doc_free(&jdoc);
			server_json_error(&resp, 400, "%s", why);
			goto done;
		}
		req.json = doc;
	}
	route->fn(route->ctx, &req, &resp);
	json_decref(doc);
	jsonscan_doc_free(&jdoc);
	if (resp.defer && !req.on_worker && (route->flags & SERVER_ROUTE_BLOCKING)) {
		/* Called again on a worker: keep the request body, drop this answer. */
		buf_free(&resp.body);
		r->deferred = true;
		return;
	}
	if (resp.status < 200 || resp.status > 599) {
		log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:i}", "path", route->path, "status",
		    resp.status), "handler returned an invalid HTTP status");
		server_json_error(&resp, 500, "internal error: invalid status");
	}
done:
	/* The body is not needed any more: give the memory back before sending. */
	buf_free(&r->body);
	r->res_status = resp.status;
	r->res_type = resp.content_type != NULL ? resp.content_type : "application/json";
	r->res_body = resp.body;
}

/* Queues the answer server__run_handler kept in r. */
static enum MHD_Result
server__send_result(struct server *s, struct MHD_Connection *mc, struct server__req *r)
{
	size_t len = r->res_body.len;

	return server__reply(s, mc, r, r->res_status, r->res_type, buf_take(&r->res_body), len,
	    NULL);
}

static enum MHD_Result
server__dispatch(struct server *s, struct MHD_Connection *mc, struct server__req *r)
{
	/* Checked once per connection, for every route, so any handler can tell. */
	r->client_cert_verified = s->opts.client_ca != NULL && server__client_verified(s, r->conn, mc);
	server__run_handler(s, r);
	if (r->deferred) {
		r->mc = mc;
		atomic_store(&r->blocking, SERVER__BLOCKING_RUNNING);
		if (server__blocking_submit(s, r) == 0)
			return MHD_YES;
		atomic_store(&r->blocking, SERVER__BLOCKING_NONE);
		return server__reply_error(s, mc, r, 503, NULL,
		    "%s: every worker is busy; try again", r->route->path);
	}
	return server__send_result(s, mc, r);
}

/* Sends the 404 or 405 decided on the headers. */
static enum MHD_Result
server__reply_pending(struct server *s, struct MHD_Connection *mc, struct server__req *r)
{
	if (r->pending == 404)
		return server__reply_error(s, mc, r, 404, NULL, "no such path: %s", r->path);
	return server__reply_error(s, mc, r, 405, r->pending_allow,
	    "method %s not allowed on %s (allowed: %s)", r->method, r->path, r->pending_allow);
}

/*
 * First call for a request: route, method, client certificate, declared size.
 * An error queued now closes the connection after it (libmicrohttpd will not
 * read a body it was not asked for), so a refusal of a request without a
 * body waits for the final call and keeps the connection alive.
 */
static enum MHD_Result
server__begin(struct server *s, struct MHD_Connection *mc, struct server__req *r,
    const char *url, const char *method)
{
	const char *clen, *te;
	bool path_known, has_body;

	clen = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	te = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	has_body = te != NULL || (clen != NULL && strcmp(clen, "0") != 0);
	r->route = server__route_find(s, method, url, &path_known);
	if (r->route == NULL) {
		r->pending = path_known ? 405 : 404;
		if (path_known)
			server__allow(s, url, r->pending_allow, sizeof(r->pending_allow));
		return has_body ? server__reply_pending(s, mc, r) : MHD_YES;
	}
	if ((r->route->flags & SERVER_ROUTE_CLIENT_CERT) && s->opts.client_ca != NULL &&
	    !server__client_verified(s, r->conn, mc))
		return server__reply_error(s, mc, r, 403, NULL, "%s requires a client certificate signed by the configured client CA: %s",
		    r->route->path, r->conn != NULL ? r->conn->cert_error : "no connection state");
	if (clen != NULL) {
		char *end;
		unsigned long long n;

		errno = 0;
		n = strtoull(clen, &end, 10);
		if (errno == 0 && end != clen && n > s->opts.max_body_bytes)
			return server__reply_error(s, mc, r, 413, NULL,
			    "request body of %llu bytes is larger than the limit of %zu bytes (--max-body-bytes)",
			    n, s->opts.max_body_bytes);
	}
	buf_init(&r->body, s->opts.max_body_bytes);
	return MHD_YES;
}

static enum MHD_Result
server__access(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct server *s = cls;
	struct server__req *r = *con_cls;

	(void)version;
	if (r == NULL) {
		r = calloc(1, sizeof(*r));
		if (r == NULL)
			return MHD_NO;
		*con_cls = r;
		r->start_us = time_mono_us();
		r->conn = server__conn_of(mc);
		buf_init(&r->body, 0);
		snprintf(r->method, sizeof(r->method), "%s", method);
		snprintf(r->path, sizeof(r->path), "%s", url);
		atomic_fetch_add(&s->inflight, 1);
		return server__begin(s, mc, r, url, method);
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (!r->too_large && buf_append(&r->body, upload_data, n) == 0)
			return MHD_YES;
		if (!r->too_large) {
			r->too_large = true;
			buf_free(&r->body);
		}
		/* A chunked body has no declared size: a 413 can be sent only once it
		 * ends, so read on without keeping it, within a bound. */
		r->drained += n;
		return r->drained > LIMITS_HTTP_BODY_DRAIN ? MHD_NO : MHD_YES;
	}
	if (r->status != 0)
		return MHD_YES;
	switch (atomic_load(&r->blocking)) {
	case SERVER__BLOCKING_DONE:
		return server__send_result(s, mc, r);
	case SERVER__BLOCKING_RUNNING:
		return MHD_YES;         /* still suspended: nothing to do yet */
	default:
		break;
	}
	if (r->pending != 0)
		return server__reply_pending(s, mc, r);
	if (r->too_large)
		return server__reply_error(s, mc, r, 413, NULL,
		    "request body is larger than the limit of %zu bytes (--max-body-bytes)",
		    s->opts.max_body_bytes);
	if (r->conn != NULL)
		atomic_store(&r->conn->responding, true);
	return server__dispatch(s, mc, r);
}

static void
server__completed(void *cls, struct MHD_Connection *mc, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct server *s = cls;
	struct server__req *r = *con_cls;
	int64_t us;

	(void)mc;
	if (r == NULL)
		return;
	*con_cls = NULL;
	us = time_mono_us() - r->start_us;
	if (r->conn != NULL) {
		atomic_store(&r->conn->since_ms, time_mono_ms());
		atomic_store(&r->conn->responding, false);
	}
	if (r->status != 0) {
		const char *handler = r->route != NULL ? r->route->path : "unmatched";
		char code[8];

		snprintf(code, sizeof(code), "%d", r->status);
		metrics_counter_add(server__m_requests, 1, handler, code);
		metrics_histogram_observe(server__m_seconds, (double)us / 1e6, handler);
	}
	if (log_enabled(LOG_LEVEL_DEBUG)) {
		log_msg(LOG_LEVEL_DEBUG, json_pack("{s:s,s:s,s:s,s:i,s:I,s:I,s:b}", "server", s->opts.name, "method",
		    r->method, "path", r->path, "status", r->status, "bytes", (json_int_t)r->resp_bytes,
		    "duration_us", (json_int_t)us, "completed",
		    toe == MHD_REQUEST_TERMINATED_COMPLETED_OK), "request");
	}
	/* A 503 from /readyz is a probe doing its job (start-up, drain), not a failure. */
	if (r->status >= 500 && !(r->status == 503 && strcmp(r->path, "/readyz") == 0))
		log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:s,s:s,s:i}", "server", s->opts.name,
		    "method", r->method, "path", r->path, "status", r->status), "request failed");
	buf_free(&r->body);
	buf_free(&r->res_body);
	free(r);
	atomic_fetch_sub(&s->inflight, 1);
}

/* ---- Built-in routes ------------------------------------------------------ */

static void
server__handle_healthz(void *ctx, const struct server_request *req, struct server_response *resp)
{
	(void)ctx;
	(void)req;
	buf_append_str(&resp->body, "{\"status\":\"ok\"}");
}

static bool
server__not_stopping(void *ctx, char *why, size_t len)
{
	struct server *s = ctx;

	if (!atomic_load(&s->stopping))
		return true;
	snprintf(why, len, "shutting down");
	return false;
}

static void
server__handle_readyz(void *ctx, const struct server_request *req, struct server_response *resp)
{
	struct server *s = ctx;
	char why[64] = "";
	bool ok;

	(void)req;
	ok = server__not_stopping(s, why, sizeof(why));
	if (!ok) {
		buf_printf(&resp->body, "{\"ready\":false,\"checks\":[{\"name\":\"server\",\"ok\":false,"
		    "\"reason\":\"%s\"}]}", why);
	} else {
		ok = server_ready_evaluate(s->opts.ready, &resp->body);
	}
	resp->status = ok ? 200 : 503;
}

/* ---- Address and lifecycle ------------------------------------------------ */

/* Splits "[v6]:port", "host:port" or ":port". host is "" for any address. */
static int
server__split_address(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *colon;
	size_t hl;

	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');
		if (close == NULL || close[1] != ':')
			return -EINVAL;
		hl = (size_t)(close - addr - 1);
		if (hl == 0 || hl >= hostlen)
			return -EINVAL;
		memcpy(host, addr + 1, hl);
		host[hl] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL)
			return -EINVAL;
		hl = (size_t)(colon - addr);
		if (hl >= hostlen || memchr(addr, ':', hl) != NULL)
			return -EINVAL;
		memcpy(host, addr, hl);
		host[hl] = '\0';
	}
	if (colon[1] == '\0' || strlen(colon + 1) >= portlen)
		return -EINVAL;
	for (const char *p = colon + 1; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return -EINVAL;
	if (atoi(colon + 1) > 65535)
		return -EINVAL;
	snprintf(port, portlen, "%s", colon + 1);
	return 0;
}

static int
server__listen_on(const struct sockaddr *sa, socklen_t salen, bool dual)
{
	int one = 1, zero = 0;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int saved;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (dual)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, sa, salen) < 0 || listen(fd, SERVER__LISTEN_BACKLOG) < 0) {
		saved = errno;
		close(fd);
		return -saved;
	}
	return fd;
}

static int
server__bind(struct server *s, struct server_error *err)
{
	char host[256], port[8];
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -EINVAL, rc;

	if (server__split_address(s->opts.listen, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(err->message, sizeof(err->message),
		    "%s \"%s\": expected [host]:port, like :8443, 127.0.0.1:0 or [::1]:8443",
		    s->opts.listen_flag, s->opts.listen);
		return -EINVAL;
	}
	if (host[0] == '\0') {
		/* Any address: one dual-stack socket, or IPv4 alone where IPv6 is off. */
		struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT,
			.sin6_port = htons((uint16_t)atoi(port)) };
		struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY),
			.sin_port = htons((uint16_t)atoi(port)) };
		fd = server__listen_on((struct sockaddr *)&a6, sizeof(a6), true);
		if (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL)
			fd = server__listen_on((struct sockaddr *)&a4, sizeof(a4), false);
	} else {
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
		rc = getaddrinfo(host, port, &hints, &res);
		if (rc != 0) {
			snprintf(err->message, sizeof(err->message), "%s \"%s\": %s",
			    s->opts.listen_flag, s->opts.listen, gai_strerror(rc));
			return -EINVAL;
		}
		for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
			fd = server__listen_on(ai->ai_addr, ai->ai_addrlen, false);
			if (fd >= 0)
				break;
		}
		freeaddrinfo(res);
	}
	if (fd < 0) {
		snprintf(err->message, sizeof(err->message), "%s \"%s\": %s", s->opts.listen_flag,
		    s->opts.listen, strerror(-fd));
		return fd;
	}
	s->listen_fd = fd;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		char ip[INET6_ADDRSTRLEN] = "?";
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
			s->port = ntohs(a->sin6_port);
			snprintf(s->address, sizeof(s->address), "[%s]:%d", ip, s->port);
		} else {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
			s->port = ntohs(a->sin_port);
			snprintf(s->address, sizeof(s->address), "%s:%d", ip, s->port);
		}
	}
	return 0;
}

/* libmicrohttpd's own messages: start-up problems are warnings, the rest (a
 * client that fails its handshake, resets...) would flood the log at warn. */
static void server__mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void
server__mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct server *s = cls;
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	log_msg(atomic_load(&s->started) ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN,
	    json_pack("{s:s}", "server", s->opts.name), "libmicrohttpd: %s", msg);
}

static char *
server__strdup_opt(const char *v, bool *oom)
{
	char *d;

	if (v == NULL)
		return NULL;
	d = strdup(v);
	if (d == NULL)
		*oom = true;
	return d;
}

struct server *
server_new(const struct server_options *opts)
{
	struct server *s;
	bool oom = false;

	if (opts == NULL || opts->listen == NULL ||
	    (opts->tls_cert == NULL) != (opts->tls_key == NULL) ||
	    (opts->client_ca != NULL && opts->tls_cert == NULL))
		return NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->opts = *opts;
	s->opts.name = server__strdup_opt(opts->name != NULL ? opts->name : "http", &oom);
	s->opts.listen = server__strdup_opt(opts->listen, &oom);
	s->opts.listen_flag = server__strdup_opt(opts->listen_flag != NULL ? opts->listen_flag :
	    "listen address", &oom);
	s->opts.tls_cert = server__strdup_opt(opts->tls_cert, &oom);
	s->opts.tls_key = server__strdup_opt(opts->tls_key, &oom);
	s->opts.client_ca = server__strdup_opt(opts->client_ca, &oom);
	if (s->opts.max_body_bytes == 0)
		s->opts.max_body_bytes = LIMITS_HTTP_BODY_DEFAULT;
	if (s->opts.max_connections == 0)
		s->opts.max_connections = LIMITS_HTTP_CONNECTIONS_DEFAULT;
	if (s->opts.threads == 0)
		s->opts.threads = 1;
	if (s->opts.threads > LIMITS_HTTP_THREADS_MAX)
		s->opts.threads = LIMITS_HTTP_THREADS_MAX;
	s->tls = s->opts.tls_cert != NULL;
	s->listen_fd = -1;
	pthread_mutex_init(&s->cred_lock, NULL);
	pthread_rwlock_init(&s->ca_lock, NULL);
	pthread_mutex_init(&s->reload_lock, NULL);
	pthread_mutex_init(&s->conns_lock, NULL);
	pthread_mutex_init(&s->wd_lock, NULL);
	time_cond_init(&s->wd_cond);
	pthread_mutex_init(&s->blocking.lock, NULL);
	pthread_cond_init(&s->blocking.cond, NULL);
	server__metrics_init();
	if (oom || server_route(s, "GET", "/healthz", 0, server__handle_healthz, s) < 0 ||
	    server_route(s, "GET", "/readyz", 0, server__handle_readyz, s) < 0) {
		server_free(s);
		return NULL;
	}
	return s;
}

int
server_route(struct server *s, const char *method, const char *path, unsigned flags,
    server_handler_fn fn, void *ctx)
{
	struct server__route *r;
	bool known;

	if (s == NULL || method == NULL || path == NULL || path[0] != '/' || fn == NULL ||
	    atomic_load(&s->started))
		return -EINVAL;
	if (server__route_find(s, method, path, &known) != NULL)
		return -EEXIST;
	if (s->nroutes == LIMITS_HTTP_ROUTES)
		return -ENOSPC;
	r = &s->routes[s->nroutes];
	r->method = strdup(method);
	r->path = strdup(path);
	if (r->method == NULL || r->path == NULL) {
		free(r->method);
		free(r->path);
		r->method = r->path = NULL;
		return -ENOMEM;
	}
	r->flags = flags;
	r->fn = fn;
	r->ctx = ctx;
	s->nroutes++;
	return 0;
}

int
server_start(struct server *s, struct server_error *err)
{
	struct MHD_OptionItem o[16];
	unsigned flags, timeout_s;
	size_t n = 0;
	int rc;

	err->message[0] = '\0';
	if (atomic_load(&s->started) || s->daemon != NULL) {
		snprintf(err->message, sizeof(err->message), "%s server already started", s->opts.name);
		return -EALREADY;
	}
	if (s->tls) {
		struct server__cred *c = NULL;
		rc = server__cred_load(s->opts.tls_cert, s->opts.tls_key, &c, err->message,
		    sizeof(err->message));
		if (rc < 0)
			return rc;
		server__cred_unref(s->cred);
		s->cred = c;
		server__sig_read(s->opts.tls_cert, &s->sig_cert);
		server__sig_read(s->opts.tls_key, &s->sig_key);
		metrics_gauge_set(server__m_tls_not_after, (double)c->not_after, s->opts.name);
		if (s->opts.client_ca != NULL) {
			if (s->ca != NULL) {
				gnutls_x509_trust_list_deinit(s->ca, 1);
				s->ca = NULL;
			}
			rc = server__ca_load(s->opts.client_ca, &s->ca, err->message, sizeof(err->message));
			if (rc < 0)
				return rc;
			server__sig_read(s->opts.client_ca, &s->sig_ca);
		}
	}
	rc = server__bind(s, err);
	if (rc < 0)
		return rc;

	timeout_s = s->opts.idle_timeout_ms <= 0 ? 0 :
	    (unsigned)((s->opts.idle_timeout_ms + 999) / 1000);
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)server__mhd_log, s };
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_LISTEN_SOCKET, s->listen_fd, NULL };
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT, s->opts.max_connections, NULL };
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, NULL };
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		LIMITS_HTTP_CONNECTION_MEMORY, NULL };
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)server__completed, s };
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_CONNECTION,
		(intptr_t)server__notify_connection, s };
	if (s->opts.threads > 1)
		o[n++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE, s->opts.threads, NULL };
	if (s->tls) {
		o[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_CERT_CALLBACK, 0,
			(void *)server__cert_cb };
		o[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0,
			(void *)SERVER__TLS_PRIORITIES };
	}
	o[n++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };

	flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
	    MHD_ALLOW_SUSPEND_RESUME;
	if (s->tls)
		flags |= MHD_USE_TLS;
	s->daemon = MHD_start_daemon(flags, 0, server__accept_policy, s, server__access, s,
	    MHD_OPTION_ARRAY, o,
	    MHD_OPTION_END);
	if (s->daemon == NULL) {
		snprintf(err->message, sizeof(err->message),
		    "%s server on %s: libmicrohttpd did not start (see the log above)", s->opts.name,
		    s->address);
		close(s->listen_fd);
		s->listen_fd = -1;
		return -EIO;
	}
	atomic_store(&s->started, true);
	for (size_t i = 0; i < s->nroutes; i++) {
		if ((s->routes[i].flags & SERVER_ROUTE_BLOCKING) && s->blocking.nthreads == 0 &&
		    (rc = server__blocking_start(s)) < 0) {
			snprintf(err->message, sizeof(err->message), "%s server: blocking workers: %s",
			    s->opts.name, strerror(-rc));
			server_stop(s, 0);
			return rc;
		}
	}
	if (s->cred != NULL)
		log_msg(LOG_LEVEL_INFO, json_pack("{s:s,s:s,s:I}", "server", s->opts.name,
		    "serial", s->cred->serial, "not_after", (json_int_t)s->cred->not_after),
		    "serving certificate loaded from %s", s->opts.tls_cert);
	s->wd_stop = false;
	rc = pthread_create(&s->watchdog, NULL, server__watchdog_main, s);
	if (rc != 0) {
		snprintf(err->message, sizeof(err->message), "%s server: watchdog thread: %s",
		    s->opts.name, strerror(rc));
		server_stop(s, 0);
		return -rc;
	}
	s->watchdog_running = true;
	return 0;
}

int
server_port(const struct server *s)
{
	return s != NULL ? s->port : 0;
}

const char *
server_address(const struct server *s)
{
	return s != NULL ? s->address : "";
}

unsigned
server_connections(const struct server *s)
{
	return atomic_load(&((struct server *)s)->nconns);
}

void
server_stop(struct server *s, int64_t grace_ms)
{
	int64_t deadline;

	if (s == NULL || s->daemon == NULL)
		return;
	atomic_store(&s->stopping, true);
	/* Every port that answers /readyz says so while this one drains. */
	if (s->opts.ready != NULL)
		atomic_store(&s->opts.ready->stopping, true);
	/*
	 * New connections are refused from here on by server__accept_policy, not
	 * by MHD_quiesce_daemon(): with epoll worker threads that call races the
	 * workers' own removal of the listening socket and libmicrohttpd aborts
	 * the process ("Failed to remove listen FD from epoll set", an open
	 * defect in 0.9.75). MHD_stop_daemon() closes the socket.
	 */
	deadline = time_mono_ms() + (grace_ms > 0 ? grace_ms : 0);
	while (atomic_load(&s->inflight) > 0 && time_mono_ms() < deadline) {
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (atomic_load(&s->inflight) > 0)
		log_msg(LOG_LEVEL_WARN, json_pack("{s:s,s:i}", "server", s->opts.name, "requests",
		    atomic_load(&s->inflight)), "stopping with requests still in flight");
	/* Blocking handlers finish (their waits are bounded) and resume their connections. */
	server__blocking_stop(s);
	MHD_stop_daemon(s->daemon);
	s->daemon = NULL;
	s->listen_fd = -1;
	if (s->watchdog_running) {
		pthread_mutex_lock(&s->wd_lock);
		s->wd_stop = true;
		pthread_cond_signal(&s->wd_cond);
		pthread_mutex_unlock(&s->wd_lock);
		pthread_join(s->watchdog, NULL);
		s->watchdog_running = false;
	}
	atomic_store(&s->started, false);
}

void
server_free(struct server *s)
{
	if (s == NULL)
		return;
	server_stop(s, 0);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	for (size_t i = 0; i < s->nroutes; i++) {
		free(s->routes[i].method);
		free(s->routes[i].path);
	}
	server__cred_unref(s->cred);
	if (s->ca != NULL)
		gnutls_x509_trust_list_deinit(s->ca, 1);
	free((char *)s->opts.name);
	free((char *)s->opts.listen);
	free((char *)s->opts.listen_flag);
	free((char *)s->opts.tls_cert);
	free((char *)s->opts.tls_key);
	free((char *)s->opts.client_ca);
	pthread_mutex_destroy(&s->cred_lock);
	pthread_rwlock_destroy(&s->ca_lock);
	pthread_mutex_destroy(&s->reload_lock);
	pthread_mutex_destroy(&s->conns_lock);
	pthread_mutex_destroy(&s->wd_lock);
	pthread_mutex_destroy(&s->blocking.lock);
	pthread_cond_destroy(&s->blocking.cond);
	pthread_cond_destroy(&s->wd_cond);
	free(s);
}
