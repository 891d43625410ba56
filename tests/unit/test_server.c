/* Unit tests for the HTTP(S) server: routing, body caps, keep-alive, client certificates, readiness, metrics. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "test_util.h"
#include "stratos/httpc.h"
#include "stratos/limits.h"
#include "stratos/log.h"
#include "stratos/metrics.h"
#include "stratos/server.h"
#include "stratos/timeutil.h"

/* ---- Certificates made for the run ------------------------------------- */

static char cert_dir[64];

static void
write_datum(const char *name, const gnutls_datum_t *d)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", cert_dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(d->data, 1, d->size, f), d->size);
	fclose(f);
}

static const char *
cert_path(const char *name)
{
	static __thread char paths[16][128];
	static __thread int next;
	char *p = paths[next++ % 16];

	snprintf(p, 128, "%s/%s", cert_dir, name);
	return p;
}

/* A P-256 key and a certificate signed by issuer (self-signed when NULL). */
static void
make_cert(const char *base, gnutls_x509_crt_t *crt_out, gnutls_x509_privkey_t *key_out,
    gnutls_x509_crt_t issuer, gnutls_x509_privkey_t issuer_key, bool ca, bool server,
    unsigned serial)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	gnutls_datum_t d;
	unsigned char ser[4] = { 0, 0, (unsigned char)(serial >> 8), (unsigned char)serial };
	unsigned char ip[4] = { 127, 0, 0, 1 };
	time_t now = time(NULL);
	char name[160];

	assert_int_equal(gnutls_x509_privkey_init(&key), 0);
	assert_int_equal(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
	assert_int_equal(gnutls_x509_crt_init(&crt), 0);
	gnutls_x509_crt_set_version(crt, 3);
	gnutls_x509_crt_set_serial(crt, ser, sizeof(ser));
	gnutls_x509_crt_set_activation_time(crt, now - 3600);
	gnutls_x509_crt_set_expiration_time(crt, now + 86400);
	gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, base, strlen(base));
	gnutls_x509_crt_set_key(crt, key);
	if (ca) {
		gnutls_x509_crt_set_basic_constraints(crt, 1, -1);
		gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
	} else {
		gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
		gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
		gnutls_x509_crt_set_key_purpose_oid(crt,
		    server ? GNUTLS_KP_TLS_WWW_SERVER : GNUTLS_KP_TLS_WWW_CLIENT, 0);
	}
	if (server) {
		gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, sizeof(ip),
		    GNUTLS_FSAN_APPEND);
		gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
		    GNUTLS_FSAN_APPEND);
	}
	assert_int_equal(gnutls_x509_crt_sign2(crt, issuer ? issuer : crt,
	    issuer_key ? issuer_key : key, GNUTLS_DIG_SHA256, 0), 0);
	assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d), 0);
	snprintf(name, sizeof(name), "%s.crt", base);
	write_datum(name, &d);
	gnutls_free(d.data);
	assert_int_equal(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &d), 0);
	snprintf(name, sizeof(name), "%s.key", base);
	write_datum(name, &d);
	gnutls_free(d.data);
	if (crt_out != NULL)
		*crt_out = crt;
	else
		gnutls_x509_crt_deinit(crt);
	if (key_out != NULL)
		*key_out = key;
	else
		gnutls_x509_privkey_deinit(key);
}

static int
group_setup(void **state)
{
	gnutls_x509_crt_t ca, rogue;
	gnutls_x509_privkey_t ca_key, rogue_key;

	(void)state;
	httpc_global_init();
	log_set_level(LOG_LEVEL_ERROR);
	snprintf(cert_dir, sizeof(cert_dir), "/tmp/test_server.XXXXXX");
	if (mkdtemp(cert_dir) == NULL)
		return -1;
	make_cert("ca", &ca, &ca_key, NULL, NULL, true, false, 1);
	make_cert("server", NULL, NULL, ca, ca_key, false, true, 2);
	make_cert("server2", NULL, NULL, ca, ca_key, false, true, 3);
	make_cert("client", NULL, NULL, ca, ca_key, false, false, 4);
	make_cert("rogue-ca", &rogue, &rogue_key, NULL, NULL, true, false, 5);
	make_cert("rogue", NULL, NULL, rogue, rogue_key, false, false, 6);
	gnutls_x509_crt_deinit(ca);
	gnutls_x509_privkey_deinit(ca_key);
	gnutls_x509_crt_deinit(rogue);
	gnutls_x509_privkey_deinit(rogue_key);
	return 0;
}

static int
group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", cert_dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- Handlers ------------------------------------------------------------ */

static atomic_int handler_calls;

/* Echoes what the handler saw, as JSON. */
static void
echo_handler(void *ctx, const struct server_request *req, struct server_response *resp)
{
	(void)ctx;
	atomic_fetch_add(&handler_calls, 1);
	buf_printf(&resp->body, "{\"method\":\"%s\",\"path\":\"%s\",\"len\":%zu,\"cert\":%s,\"json\":%s,"
	    "\"checked\":%s}", req->method, req->path, req->body_len,
	    req->client_cert_verified ? "true" : "false", req->json != NULL ? "true" : "false",
	    req->json_root.type == JSONSCAN_OBJECT ? "true" : "false");
}

static void
bad_status_handler(void *ctx, const struct server_request *req, struct server_response *resp)
{
	(void)ctx;
	(void)req;
	resp->status = 42;
}

/* Requests the slow handler has begun: a test stops the server mid-request only once one has. */
static atomic_int slow_started;

static void
slow_handler(void *ctx, const struct server_request *req, struct server_response *resp)
{
	struct timespec ts = { 0, 400 * 1000000L };

	(void)ctx;
	(void)req;
	atomic_fetch_add(&slow_started, 1);
	nanosleep(&ts, NULL);
	buf_append_str(&resp->body, "{\"slow\":true}");
}

/* The blocking route's gate: its handlers wait until the test opens it. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static int gate_waiting;

static void
gated_handler(void *ctx, const struct server_request *req, struct server_response *resp)
{
	(void)ctx;
	if (!req->on_worker) {
		resp->defer = true;     /* waiting is for the workers */
		return;
	}
	pthread_mutex_lock(&gate_lock);
	gate_waiting++;
	pthread_cond_broadcast(&gate_cond);
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_lock);
	gate_waiting--;
	pthread_mutex_unlock(&gate_lock);
	buf_append_str(&resp->body, "{\"gated\":true}");
}

static bool
flag_check(void *ctx, char *why, size_t len)
{
	bool *ok = ctx;

	if (!*ok)
		snprintf(why, len, "caches not synced");
	return *ok;
}

/* ---- Server and client helpers ------------------------------------------ */

struct fixture {
	struct server *srv;
	struct server_ready *ready;
	bool ready_flag;
	char base[64];
};

static struct fixture *
start(bool tls, bool client_ca, size_t max_body, int64_t idle_ms)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct server_options o = {
		.name = "test",
		.listen = "127.0.0.1:0",
		.tls_cert = tls ? cert_path("server.crt") : NULL,
		.tls_key = tls ? cert_path("server.key") : NULL,
		.client_ca = client_ca ? cert_path("ca.crt") : NULL,
		.max_body_bytes = max_body,
		.max_connections = 64,
		.idle_timeout_ms = idle_ms,
		.threads = 2,
		.tls_check_interval_ms = 200,
	};
	struct server_error err;

	assert_non_null(f);
	f->ready = server_ready_new();
	f->ready_flag = true;
	o.ready = f->ready;
	f->srv = server_new(&o);
	assert_non_null(f->srv);
	assert_int_equal(server_route(f->srv, "POST", "/echo", 0, echo_handler, NULL), 0);
	assert_int_equal(server_route(f->srv, "GET", "/echo", 0, echo_handler, NULL), 0);
	assert_int_equal(server_route(f->srv, "POST", "/json", SERVER_ROUTE_JSON | SERVER_ROUTE_JSON_TREE,
	    echo_handler, NULL), 0);
	assert_int_equal(server_route(f->srv, "POST", "/scan", SERVER_ROUTE_JSON, echo_handler, NULL), 0);
	assert_int_equal(server_route(f->srv, "POST", "/private",
	    SERVER_ROUTE_CLIENT_CERT | SERVER_ROUTE_JSON, echo_handler, NULL), 0);
	assert_int_equal(server_route(f->srv, "GET", "/bad", 0, bad_status_handler, NULL), 0);
	assert_int_equal(server_route(f->srv, "GET", "/slow", 0, slow_handler, NULL), 0);
	assert_int_equal(server_route(f->srv, "GET", "/gated", SERVER_ROUTE_BLOCKING, gated_handler,
	    NULL), 0);
	assert_int_equal(server_route(f->srv, "POST", "/echo", 0, echo_handler, NULL), -EEXIST);
	assert_int_equal(server_route(f->srv, "GET", "no-slash", 0, echo_handler, NULL), -EINVAL);
	if (server_start(f->srv, &err) != 0)
		fail_msg("server_start: %s", err.message);
	assert_true(server_port(f->srv) > 0);
	assert_int_equal(server_route(f->srv, "GET", "/late", 0, echo_handler, NULL), -EINVAL);
	snprintf(f->base, sizeof(f->base), "%s://127.0.0.1:%d", tls ? "https" : "http",
	    server_port(f->srv));
	return f;
}

static void
stop(struct fixture *f)
{
	server_free(f->srv);
	server_ready_free(f->ready);
	free(f);
}

/* One request through httpc; returns the status, body copied to out. */
static long
call(struct httpc *h, struct fixture *f, const char *method, const char *path, const char *body,
    char *out, size_t outlen, bool *reused)
{
	struct httpc_request req = { 0 };
	struct httpc_response resp;
	const char *headers[] = { "Content-Type: application/json", NULL };
	char url[256];
	long status;
	int rc;

	snprintf(url, sizeof(url), "%s%s", f->base, path);
	req.method = method;
	req.url = url;
	req.headers = headers;
	req.body = body;
	req.body_len = body != NULL ? strlen(body) : 0;
	req.timeout_ms = 10000;
	httpc_response_init(&resp);
	rc = httpc_perform(h, &req, &resp);
	if (rc < 0) {
		print_message("%s %s: %s\n", method, path, resp.error);
		httpc_response_free(&resp);
		return rc;
	}
	if (out != NULL)
		snprintf(out, outlen, "%s", resp.body.data != NULL ? resp.body.data : "");
	if (reused != NULL)
		*reused = resp.reused_connection;
	if (strlen(resp.content_type) == 0)
		fail_msg("response to %s %s without Content-Type", method, path);
	status = resp.status;
	httpc_response_free(&resp);
	return status;
}

static int
raw_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static void
raw_send_str(int fd, const char *s)
{
	test_send_all(fd, s, strlen(s));
}

/*
 * Reads one response (headers + Content-Length body) within timeout_ms.
 * Returns its length, 0 when the server closed first, -1 on timeout.
 */
static ssize_t
raw_response_head(int fd, char *out, size_t outlen, int timeout_ms, bool head)
{
	size_t have = 0;
	int64_t deadline = time_mono_ms() + timeout_ms;

	out[0] = '\0';
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char *end = strstr(out, "\r\n\r\n");
		if (end != NULL) {
			char *cl = strcasestr(out, "Content-Length:");
			size_t want = (size_t)(end - out) + 4 +
			    (cl != NULL && !head ? strtoul(cl + 15, NULL, 10) : 0);
			if (have >= want)
				return (ssize_t)have;
		}
		int left = (int)(deadline - time_mono_ms());
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return -1;
		ssize_t n = recv(fd, out + have, outlen - have - 1, 0);
		if (n <= 0)
			return have > 0 ? (ssize_t)have : 0;
		have += (size_t)n;
		out[have] = '\0';
	}
}

static ssize_t
raw_response(int fd, char *out, size_t outlen, int timeout_ms)
{
	return raw_response_head(fd, out, outlen, timeout_ms, false);
}

/* True when the peer closed the connection (EOF or reset) within timeout_ms. */
static bool
raw_closed(int fd, int timeout_ms)
{
	char b[256];
	int64_t deadline = time_mono_ms() + timeout_ms;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int left = (int)(deadline - time_mono_ms());
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return false;
		ssize_t n = recv(fd, b, sizeof(b), 0);
		if (n <= 0)
			return true;
	}
}

static struct metrics_family *
requests_family(void)
{
	static const char *const labels[] = { "handler", "code", NULL };
	return metrics_register(METRICS_COUNTER, "stratos_http_requests_total", "", labels, NULL, 0);
}

/* ---- Tests ---------------------------------------------------------------- */

static void
test_routing(void **state)
{
	struct fixture *f = start(false, false, 0, 10000);
	struct httpc *h = httpc_new(NULL);
	char body[512];
	int fd;

	(void)state;
	assert_int_equal(call(h, f, "GET", "/echo?timeout=10s", NULL, body, sizeof(body), NULL), 200);
	assert_non_null(strstr(body, "\"path\":\"/echo\""));
	assert_int_equal(call(h, f, "GET", "/missing", NULL, body, sizeof(body), NULL), 404);
	assert_string_equal(body, "{\"error\":\"no such path: /missing\"}");
	assert_int_equal(call(h, f, "DELETE", "/echo", NULL, body, sizeof(body), NULL), 405);
	assert_non_null(strstr(body, "\"error\":"));
	assert_int_equal(call(h, f, "GET", "/bad", NULL, body, sizeof(body), NULL), 500);
	assert_int_equal(call(h, f, "GET", "/healthz", NULL, body, sizeof(body), NULL), 200);
	assert_string_equal(body, "{\"status\":\"ok\"}");

	/* 405 names the allowed methods in Allow; HEAD works where GET does. */
	fd = raw_connect(server_port(f->srv));
	raw_send_str(fd, "PUT /json HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
	assert_true(raw_response(fd, body, sizeof(body), 5000) > 0);
	assert_non_null(strstr(body, "HTTP/1.1 405"));
	assert_non_null(strcasestr(body, "Allow: POST\r\n"));
	assert_non_null(strcasestr(body, "Content-Type: application/json"));
	raw_send_str(fd, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(raw_response_head(fd, body, sizeof(body), 5000, true) > 0);
	assert_non_null(strstr(body, "HTTP/1.1 200"));
	close(fd);
	httpc_free(h);
	stop(f);
}

static void
test_keep_alive(void **state)
{
	struct fixture *f = start(true, false, 0, 10000);
	struct httpc_tls tls = { .ca_file = cert_path("ca.crt") };
	struct httpc *h = httpc_new(&tls);
	bool reused = true;
	char body[256];

	(void)state;
	assert_int_equal(call(h, f, "POST", "/echo", "{}", body, sizeof(body), &reused), 200);
	assert_false(reused);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(call(h, f, "POST", "/echo", "{\"a\":1}", body, sizeof(body), &reused), 200);
		assert_true(reused);
	}
	/* An error without a body does not cost the connection. */
	assert_int_equal(call(h, f, "GET", "/nowhere", NULL, body, sizeof(body), &reused), 404);
	assert_int_equal(call(h, f, "GET", "/echo", NULL, body, sizeof(body), &reused), 200);
	assert_true(reused);
	assert_int_equal(server_connections(f->srv), 1);
	httpc_free(h);
	stop(f);
}

static void
test_body_cap_content_length(void **state)
{
	struct fixture *f = start(false, false, 2048, 10000);
	struct httpc *h = httpc_new(NULL);
	char big[4096], body[512];
	int fd;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	atomic_store(&handler_calls, 0);
	assert_int_equal(call(h, f, "POST", "/echo", big, body, sizeof(body), NULL), 413);
	assert_non_null(strstr(body, "larger than the limit of 2048 bytes"));
	big[2048] = '\0';
	assert_int_equal(call(h, f, "POST", "/echo", big, body, sizeof(body), NULL), 200);
	assert_non_null(strstr(body, "\"len\":2048"));
	assert_int_equal(atomic_load(&handler_calls), 1);

	/* The 413 comes from the headers alone: 100 MB announced, none sent. */
	fd = raw_connect(server_port(f->srv));
	raw_send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n");
	assert_true(raw_response(fd, body, sizeof(body), 5000) > 0);
	assert_non_null(strstr(body, "HTTP/1.1 413"));
	assert_true(raw_closed(fd, 5000));
	close(fd);
	httpc_free(h);
	stop(f);
}

static void
test_body_cap_chunked(void **state)
{
	struct fixture *f = start(false, false, 2048, 10000);
	char chunk[1100], body[512];
	int fd;

	(void)state;
	/* Under the cap: accepted, and the connection stays usable. */
	fd = raw_connect(server_port(f->srv));
	raw_send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
	raw_send_str(fd, "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
	assert_true(raw_response(fd, body, sizeof(body), 5000) > 0);
	assert_non_null(strstr(body, "HTTP/1.1 200"));
	assert_non_null(strstr(body, "\"len\":11"));

	/* Over the cap by a little: 413 once the body ends. */
	raw_send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
	memset(chunk, 'y', sizeof(chunk));
	for (int i = 0; i < 3; i++) {
		raw_send_str(fd, "44c\r\n");
		test_send_all(fd, chunk, sizeof(chunk));
		raw_send_str(fd, "\r\n");
	}
	raw_send_str(fd, "0\r\n\r\n");
	assert_true(raw_response(fd, body, sizeof(body), 5000) > 0);
	assert_non_null(strstr(body, "HTTP/1.1 413"));
	close(fd);

	/* Far over the cap: dropped without reading it all. */
	fd = raw_connect(server_port(f->srv));
	raw_send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
	bool closed = false;
	for (int i = 0; i < 4000 && !closed; i++) {
		if (send(fd, "44c\r\n", 5, MSG_NOSIGNAL) < 0 ||
		    send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL) < 0 ||
		    send(fd, "\r\n", 2, MSG_NOSIGNAL) < 0)
			closed = true;
	}
	assert_true(closed || raw_closed(fd, 5000));
	close(fd);
	stop(f);
}

static void
test_json_route(void **state)
{
	struct fixture *f = start(false, false, 0, 10000);
	struct httpc *h = httpc_new(NULL);
	char body[512];

	(void)state;
	assert_int_equal(call(h, f, "POST", "/json", "{\"kind\":\"AdmissionReview\"}", body,
	    sizeof(body), NULL), 200);
	assert_non_null(strstr(body, "\"json\":true,\"checked\":true"));
	/* Without SERVER_ROUTE_JSON_TREE: checked, no tree. */
	assert_int_equal(call(h, f, "POST", "/scan", "{\"kind\":\"AdmissionReview\"}", body,
	    sizeof(body), NULL), 200);
	assert_non_null(strstr(body, "\"json\":false,\"checked\":true"));
	for (int i = 0; i < 2; i++) {
		const char *path = i == 0 ? "/json" : "/scan";

		assert_int_equal(call(h, f, "POST", path, "{\"kind\":", body, sizeof(body), NULL), 400);
		assert_non_null(strstr(body, "not valid JSON (line 1, column 9)"));
		assert_int_equal(call(h, f, "POST", path, "[1,2]", body, sizeof(body), NULL), 400);
		assert_non_null(strstr(body, "must be a JSON object"));
		assert_int_equal(call(h, f, "POST", path, "{\"a\":\"\xff\xfe\"}", body, sizeof(body), NULL),
		    400);
		assert_non_null(strstr(body, "invalid UTF-8"));
		assert_int_equal(call(h, f, "POST", path, "{\"a\":1}x", body, sizeof(body), NULL), 400);
		assert_int_equal(call(h, f, "POST", path, "", body, sizeof(body), NULL), 400);
		assert_non_null(strstr(body, "empty"));
	}
	/* Routes without the flag see the bytes as they came. */
	assert_int_equal(call(h, f, "POST", "/echo", "{\"kind\":", body, sizeof(body), NULL), 200);
	assert_non_null(strstr(body, "\"json\":false,\"checked\":false"));
	httpc_free(h);
	stop(f);
}

static void
test_client_cert(void **state)
{
	struct fixture *f = start(true, true, 0, 10000);
	struct httpc_tls anon = { .ca_file = cert_path("ca.crt") };
	struct httpc_tls good = { .ca_file = cert_path("ca.crt"), .cert_file = cert_path("client.crt"),
		.key_file = cert_path("client.key") };
	struct httpc_tls rogue = { .ca_file = cert_path("ca.crt"), .cert_file = cert_path("rogue.crt"),
		.key_file = cert_path("rogue.key") };
	struct httpc *h;
	char body[512];

	(void)state;
	h = httpc_new(&anon);
	assert_int_equal(call(h, f, "POST", "/private", "{}", body, sizeof(body), NULL), 403);
	assert_non_null(strstr(body, "no client certificate"));
	/* Routes without the flag do not need one (the API server presents none). */
	assert_int_equal(call(h, f, "POST", "/echo", "{}", body, sizeof(body), NULL), 200);
	assert_non_null(strstr(body, "\"cert\":false"));
	httpc_free(h);

	h = httpc_new(&good);
	/* Any route can tell a verified client, not only the flagged ones. */
	assert_int_equal(call(h, f, "POST", "/echo", "{}", body, sizeof(body), NULL), 200);
	assert_non_null(strstr(body, "\"cert\":true"));
	assert_int_equal(call(h, f, "POST", "/private", "{}", body, sizeof(body), NULL), 200);
	assert_non_null(strstr(body, "\"cert\":true"));
	assert_int_equal(call(h, f, "POST", "/private", "{}", body, sizeof(body), NULL), 200);
	httpc_free(h);

	h = httpc_new(&rogue);
	assert_int_equal(call(h, f, "POST", "/private", "{}", body, sizeof(body), NULL), 403);
	assert_non_null(strstr(body, "not trusted"));
	httpc_free(h);
	stop(f);

	/* Without --client-ca the flag has no effect. */
	f = start(true, false, 0, 10000);
	h = httpc_new(&anon);
	assert_int_equal(call(h, f, "POST", "/private", "{}", body, sizeof(body), NULL), 200);
	httpc_free(h);
	stop(f);
}

static void
test_ready_checks(void **state)
{
	struct fixture *f = start(false, false, 0, 10000);
	struct httpc *h = httpc_new(NULL);
	char body[512];

	(void)state;
	assert_int_equal(call(h, f, "GET", "/readyz", NULL, body, sizeof(body), NULL), 200);
	assert_int_equal(server_ready_add(f->ready, "caches synced", flag_check, &f->ready_flag), 0);
	assert_int_equal(server_ready_add(f->ready, "caches synced", flag_check, &f->ready_flag),
	    -EEXIST);
	assert_int_equal(call(h, f, "GET", "/readyz", NULL, body, sizeof(body), NULL), 200);
	f->ready_flag = false;
	assert_int_equal(call(h, f, "GET", "/readyz", NULL, body, sizeof(body), NULL), 503);
	assert_non_null(strstr(body, "\"name\":\"caches synced\",\"ok\":false,\"reason\":\"caches not synced\""));
	assert_int_equal(call(h, f, "GET", "/healthz", NULL, body, sizeof(body), NULL), 200);
	assert_int_equal(server_ready_remove(f->ready, "caches synced"), 0);
	assert_int_equal(server_ready_remove(f->ready, "caches synced"), -ENOENT);
	assert_int_equal(call(h, f, "GET", "/readyz", NULL, body, sizeof(body), NULL), 200);
	httpc_free(h);
	stop(f);
}

static void
test_metrics_move(void **state)
{
	struct fixture *f = start(false, false, 0, 10000);
	struct httpc *h = httpc_new(NULL);
	struct metrics_family *req = requests_family();
	double ok0 = metrics_value(req, "/echo", "200"), nf0 = metrics_value(req, "unmatched", "404");
	char body[256];
	struct buf text;

	(void)state;
	assert_non_null(req);
	assert_int_equal(call(h, f, "GET", "/echo", NULL, body, sizeof(body), NULL), 200);
	assert_int_equal(call(h, f, "GET", "/echo", NULL, body, sizeof(body), NULL), 200);
	assert_int_equal(call(h, f, "GET", "/x", NULL, body, sizeof(body), NULL), 404);
	/* Counted when the response is done, just after the client has it. */
	for (int i = 0; i < 100 && metrics_value(req, "unmatched", "404") < nf0 + 1; i++)
		usleep(10000);
	assert_true(metrics_value(req, "/echo", "200") == ok0 + 2);
	assert_true(metrics_value(req, "unmatched", "404") == nf0 + 1);
	buf_init(&text, 1 << 20);
	assert_int_equal(metrics_render(&text), 0);
	assert_non_null(strstr(text.data, "stratos_http_request_seconds_bucket{handler=\"/echo\""));
	assert_non_null(strstr(text.data, "stratos_http_connections{server=\"test\"}"));
	buf_free(&text);
	httpc_free(h);
	stop(f);
}

static void
test_slow_client_cut(void **state)
{
	struct fixture *f = start(false, false, 0, 1000);
	struct httpc *h = httpc_new(NULL);
	const char *req = "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n";
	char body[256];
	int fd;
	int64_t t0;
	bool cut = false;

	(void)state;
	fd = raw_connect(server_port(f->srv));
	t0 = time_mono_ms();
	/* One byte every 200 ms: never idle, never done; cut at about 1 s. */
	for (size_t i = 0; i < strlen(req) && !cut; i++) {
		if (send(fd, req + i, 1, MSG_NOSIGNAL) < 0) {
			cut = true;
			break;
		}
		/* Others are served meanwhile. */
		if (i == 2)
			assert_int_equal(call(h, f, "GET", "/healthz", NULL, body, sizeof(body), NULL), 200);
		cut = raw_closed(fd, 200);
	}
	assert_true(cut);
	assert_true(time_mono_ms() - t0 < 3000);
	close(fd);
	httpc_free(h);
	stop(f);
}

static void
test_tls_reload_bad_files_keep_serving(void **state)
{
	struct fixture *f = start(true, false, 0, 10000);
	struct httpc_tls tls = { .ca_file = cert_path("ca.crt") };
	struct httpc *h = httpc_new(&tls);
	char body[256], cmd[512];

	(void)state;
	assert_int_equal(call(h, f, "GET", "/healthz", NULL, body, sizeof(body), NULL), 200);
	/* A key that is not the certificate's (half-way through a rotation). */
	snprintf(cmd, sizeof(cmd), "cp %s/server.crt %s/server.crt.bak && cp %s/server2.crt %s/server.crt",
	    cert_dir, cert_dir, cert_dir, cert_dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(server_reload_tls(f->srv), -EINVAL);
	httpc_free(h);
	h = httpc_new(&tls);
	assert_int_equal(call(h, f, "GET", "/healthz", NULL, body, sizeof(body), NULL), 200);
	/* The matching key arrives: the new pair is taken. */
	snprintf(cmd, sizeof(cmd), "cp %s/server.key %s/server.key.bak && cp %s/server2.key %s/server.key",
	    cert_dir, cert_dir, cert_dir, cert_dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(server_reload_tls(f->srv), 0);
	httpc_free(h);
	h = httpc_new(&tls);
	assert_int_equal(call(h, f, "GET", "/healthz", NULL, body, sizeof(body), NULL), 200);
	snprintf(cmd, sizeof(cmd), "mv %s/server.crt.bak %s/server.crt && mv %s/server.key.bak %s/server.key",
	    cert_dir, cert_dir, cert_dir, cert_dir);
	assert_int_equal(system(cmd), 0);
	httpc_free(h);
	stop(f);
}

struct slow_call {
	struct fixture *f;
	long status;
};

static void *
slow_call_main(void *arg)
{
	struct slow_call *c = arg;
	struct httpc *h = httpc_new(NULL);
	char body[128];

	c->status = call(h, c->f, "GET", "/slow", NULL, body, sizeof(body), NULL);
	httpc_free(h);
	return NULL;
}

/* New connections while the server drains: each a fresh one, until one is refused. */
struct late_caller {
	struct fixture *f;
	struct slow_call *slow;
	atomic_bool slow_done;
	bool refused_while_draining;
};

static void *
late_caller_main(void *arg)
{
	struct late_caller *l = arg;
	char body[64];

	for (;;) {
		struct httpc *h = httpc_new(NULL);
		long st = call(h, l->f, "GET", "/healthz", NULL, body, sizeof(body), NULL);

		httpc_free(h);
		if (st < 0) {
			l->refused_while_draining = !atomic_load(&l->slow_done);
			return NULL;
		}
		usleep(5000);
	}
}

static void
test_graceful_stop(void **state)
{
	struct fixture *f = start(false, false, 0, 10000);
	struct slow_call c = { f, 0 };
	struct late_caller late = { .f = f, .slow = &c };
	struct httpc *h = httpc_new(NULL);
	char body[256];
	pthread_t t, lt;

	(void)state;
	f->ready_flag = true;
	atomic_store(&slow_started, 0);
	atomic_init(&late.slow_done, false);
	pthread_create(&t, NULL, slow_call_main, &c);
	while (atomic_load(&slow_started) == 0)
		usleep(1000);
	pthread_create(&lt, NULL, late_caller_main, &late);
	server_stop(f->srv, 5000);
	pthread_join(t, NULL);
	atomic_store(&late.slow_done, true);
	pthread_join(lt, NULL);
	/* The request in flight finished; a connection opened meanwhile was refused. */
	assert_int_equal(c.status, 200);
	assert_true(late.refused_while_draining);
	/* Stopped: nothing listens any more. */
	assert_true(call(h, f, "GET", "/healthz", NULL, body, sizeof(body), NULL) < 0);
	httpc_free(h);
	stop(f);
}

struct gated_call {
	struct fixture *f;
	long status;
	char body[64];
};

static void *
gated_call_main(void *arg)
{
	struct gated_call *c = arg;
	struct httpc *h = httpc_new(NULL);

	c->status = call(h, c->f, "GET", "/gated", NULL, c->body, sizeof(c->body), NULL);
	httpc_free(h);
	return NULL;
}

/*
 * While handlers of a blocking route wait (the extender's StartInstances),
 * the event loop answers every other request: three waiting handlers run in
 * place would hold up both event-loop threads of the fixture.
 */
static void
test_blocking_route_keeps_others_answered(void **state)
{
	struct fixture *f = start(false, false, 0, 10000);
	struct gated_call calls[3];
	pthread_t t[3];
	struct httpc *h = httpc_new(NULL);
	char body[256];

	(void)state;
	pthread_mutex_lock(&gate_lock);
	gate_open = false;
	pthread_mutex_unlock(&gate_lock);
	for (int i = 0; i < 3; i++) {
		calls[i] = (struct gated_call){ .f = f };
		pthread_create(&t[i], NULL, gated_call_main, &calls[i]);
	}
	pthread_mutex_lock(&gate_lock);
	while (gate_waiting < 3) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 10;
		if (pthread_cond_timedwait(&gate_cond, &gate_lock, &until) == ETIMEDOUT)
			fail_msg("the blocking handlers did not start");
	}
	pthread_mutex_unlock(&gate_lock);
	/* Three handlers are waiting: health and the other routes still answer. */
	for (int i = 0; i < 5; i++) {
		assert_int_equal(call(h, f, "GET", "/healthz", NULL, body, sizeof(body), NULL), 200);
		assert_int_equal(call(h, f, "POST", "/echo", "{}", body, sizeof(body), NULL), 200);
	}
	pthread_mutex_lock(&gate_lock);
	gate_open = true;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(calls[i].status, 200);
		assert_string_equal(calls[i].body, "{\"gated\":true}");
	}
	httpc_free(h);
	stop(f);
}

static void
test_stop_fails_readiness_everywhere(void **state)
{
	struct fixture *f = start(false, false, 0, 10000);
	struct server_options o = { .name = "other", .listen = "127.0.0.1:0", .ready = f->ready };
	struct server *other = server_new(&o);
	struct server_error err;
	struct httpc *h = httpc_new(NULL);
	struct fixture view;
	char body[256];

	(void)state;
	assert_int_equal(server_start(other, &err), 0);
	view = *f;
	snprintf(view.base, sizeof(view.base), "http://127.0.0.1:%d", server_port(other));
	assert_int_equal(call(h, &view, "GET", "/readyz", NULL, body, sizeof(body), NULL), 200);
	server_stop(f->srv, 0);
	assert_int_equal(call(h, &view, "GET", "/readyz", NULL, body, sizeof(body), NULL), 503);
	assert_non_null(strstr(body, "shutting down"));
	assert_int_equal(call(h, &view, "GET", "/healthz", NULL, body, sizeof(body), NULL), 200);
	httpc_free(h);
	server_free(other);
	stop(f);
}

static void
test_bad_options(void **state)
{
	struct server_options o = { .listen = "127.0.0.1:0", .tls_cert = "/x.crt" };
	struct server_error err;
	struct server *s;

	(void)state;
	assert_null(server_new(&o));                      /* cert without key */
	o.tls_cert = NULL;
	o.client_ca = "/ca.crt";
	assert_null(server_new(&o));                      /* client CA without TLS */
	o.client_ca = NULL;
	o.listen = "8443";
	o.listen_flag = "--listen";
	s = server_new(&o);
	assert_int_equal(server_start(s, &err), -EINVAL);
	assert_non_null(strstr(err.message, "--listen \"8443\""));
	server_free(s);
	o.listen = "127.0.0.1:0";
	o.tls_cert = cert_path("nope.crt");
	o.tls_key = cert_path("server.key");
	s = server_new(&o);
	assert_int_equal(server_start(s, &err), -ENOENT);
	assert_non_null(strstr(err.message, "--tls-cert"));
	server_free(s);
	o.tls_cert = cert_path("server2.crt");
	s = server_new(&o);
	assert_int_equal(server_start(s, &err), -EINVAL);
	assert_non_null(strstr(err.message, "does not match"));
	server_free(s);
	o.tls_cert = NULL;
	o.tls_key = NULL;
	o.listen = "[::1]:0";
	s = server_new(&o);
	if (server_start(s, &err) == 0)
		assert_non_null(strstr(server_address(s), "[::1]:"));
	server_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routing),
		cmocka_unit_test(test_keep_alive),
		cmocka_unit_test(test_body_cap_content_length),
		cmocka_unit_test(test_body_cap_chunked),
		cmocka_unit_test(test_json_route),
		cmocka_unit_test(test_client_cert),
		cmocka_unit_test(test_ready_checks),
		cmocka_unit_test(test_metrics_move),
		cmocka_unit_test(test_slow_client_cut),
		cmocka_unit_test(test_tls_reload_bad_files_keep_serving),
		cmocka_unit_test(test_graceful_stop),
		cmocka_unit_test(test_stop_fails_readiness_everywhere),
		cmocka_unit_test(test_blocking_route_keeps_others_answered),
		cmocka_unit_test(test_bad_options),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
