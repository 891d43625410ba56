/* Unit tests for the libcurl wrapper against a tiny in-process HTTP server. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"
#include "stratos/httpc.h"

static int server_fd;
static int server_port;
static int server_connections;   /* accepted so far */

static void
send_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		data += n;
		len -= (size_t)n;
	}
}

static void
reply(int fd, const char *status, const char *extra_headers, const char *body)
{
	char head[512];

	snprintf(head, sizeof(head), "HTTP/1.1 %s\r\nContent-Length: %zu\r\n%s\r\n", status,
	    strlen(body), extra_headers);
	send_all(fd, head, strlen(head));
	send_all(fd, body, strlen(body));
}

/* Serves one connection; returns when the client closes or a handler drops it. */
static void
serve_connection(int fd)
{
	char req[65536];
	size_t have = 0;

	for (;;) {
		char *end;
		ssize_t n;

		while ((end = memmem(req, have, "\r\n\r\n", 4)) == NULL) {
			n = recv(fd, req + have, sizeof(req) - have - 1, 0);
			if (n <= 0)
				return;
			have += (size_t)n;
		}
		req[have] = '\0';
		size_t head_len = (size_t)(end - req) + 4;
		size_t clen = 0;
		char *cl = strcasestr(req, "Content-Length:");
		if (cl != NULL && cl < end)
			clen = strtoul(cl + 15, NULL, 10);
		while (have < head_len + clen) {
			n = recv(fd, req + have, sizeof(req) - have - 1, 0);
			if (n <= 0)
				return;
			have += (size_t)n;
		}
		bool expect = strcasestr(req, "Expect: 100") != NULL && strcasestr(req, "Expect: 100") < end;
		char path[128] = "";
		sscanf(req, "%*s %127s", path);

		if (strcmp(path, "/ok") == 0) {
			reply(fd, "200 OK", "Content-Type: text/plain\r\n", "hello");
		} else if (strcmp(path, "/big") == 0) {
			static char big[10001];
			memset(big, 'b', 10000);
			reply(fd, "200 OK", "", big);
		} else if (strcmp(path, "/retry") == 0) {
			reply(fd, "503 Service Unavailable", "Retry-After: 7\r\n", "slow down");
		} else if (strcmp(path, "/drop") == 0) {
			return;
		} else if (strcmp(path, "/slow") == 0) {
			sleep(2);
			reply(fd, "200 OK", "", "late");
		} else if (strcmp(path, "/echo") == 0) {
			char body[64];
			snprintf(body, sizeof(body), "%zu %s", clen, expect ? "expect" : "no-expect");
			reply(fd, "200 OK", "", body);
		} else if (strcmp(path, "/stream") == 0) {
			const char *chunks = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			    "4\r\none\n\r\n4\r\ntwo\n\r\n6\r\nthree\n\r\n0\r\n\r\n";
			send_all(fd, chunks, strlen(chunks));
		} else {
			reply(fd, "404 Not Found", "", "nope");
		}
		memmove(req, req + head_len + clen, have - head_len - clen);
		have -= head_len + clen;
	}
}

static void *
server_main(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(server_fd, NULL, NULL);
		if (fd < 0)
			return NULL;
		__atomic_add_fetch(&server_connections, 1, __ATOMIC_SEQ_CST);
		serve_connection(fd);
		close(fd);
	}
}

static int
setup(void **state)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	pthread_t t;

	(void)state;
	httpc_global_init();
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	server_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(server_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(server_fd, 16) < 0)
		return -1;
	getsockname(server_fd, (struct sockaddr *)&addr, &len);
	server_port = ntohs(addr.sin_port);
	pthread_create(&t, NULL, server_main, NULL);
	pthread_detach(t);
	return 0;
}

static void
url(char *out, size_t len, const char *path)
{
	snprintf(out, len, "http://127.0.0.1:%d%s", server_port, path);
}

static void
test_keep_alive_reuses_connection(void **state)
{
	struct httpc *h = httpc_new(NULL);
	struct httpc_response resp;
	struct httpc_request req = { .method = "GET" };
	char u[128];

	(void)state;
	url(u, sizeof(u), "/ok");
	req.url = u;
	httpc_response_init(&resp);
	int before = __atomic_load_n(&server_connections, __ATOMIC_SEQ_CST);
	assert_int_equal(httpc_perform(h, &req, &resp), 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body.data, "hello");
	assert_string_equal(resp.content_type, "text/plain");
	assert_false(resp.reused_connection);
	assert_int_equal(httpc_perform(h, &req, &resp), 0);
	assert_true(resp.reused_connection);
	assert_int_equal(__atomic_load_n(&server_connections, __ATOMIC_SEQ_CST), before + 1);
	httpc_response_free(&resp);
	httpc_free(h);
}

static void
test_response_cap(void **state)
{
	struct httpc *h = httpc_new(NULL);
	struct httpc_response resp;
	struct httpc_request req = { .method = "GET", .max_response = 1000 };
	char u[128];

	(void)state;
	url(u, sizeof(u), "/big");
	req.url = u;
	httpc_response_init(&resp);
	assert_int_equal(httpc_perform(h, &req, &resp), -EMSGSIZE);
	req.max_response = 10000;
	assert_int_equal(httpc_perform(h, &req, &resp), 0);
	assert_int_equal(resp.body.len, 10000);
	httpc_response_free(&resp);
	httpc_free(h);
}

static void
test_retry_after_and_status(void **state)
{
	struct httpc *h = httpc_new(NULL);
	struct httpc_response resp;
	struct httpc_request req = { .method = "GET" };
	char u[128];

	(void)state;
	url(u, sizeof(u), "/retry");
	req.url = u;
	httpc_response_init(&resp);
	assert_int_equal(httpc_perform(h, &req, &resp), 0);
	assert_int_equal(resp.status, 503);
	assert_int_equal(resp.retry_after_s, 7);
	url(u, sizeof(u), "/ok");
	assert_int_equal(httpc_perform(h, &req, &resp), 0);
	assert_int_equal(resp.retry_after_s, -1);
	httpc_response_free(&resp);
	httpc_free(h);
}

static void
test_transport_errors(void **state)
{
	struct httpc *h = httpc_new(NULL);
	struct httpc_response resp;
	struct httpc_request req = { .method = "GET", .timeout_ms = 300 };
	char u[128];

	(void)state;
	httpc_response_init(&resp);
	url(u, sizeof(u), "/drop");
	req.url = u;
	assert_int_equal(httpc_perform(h, &req, &resp), -ECONNRESET);
	assert_int_equal(resp.status, 0);
	url(u, sizeof(u), "/slow");
	assert_int_equal(httpc_perform(h, &req, &resp), -ETIMEDOUT);
	assert_true(resp.error[0] != '\0');
	req.url = "http://127.0.0.1:1/refused";
	assert_int_equal(httpc_perform(h, &req, &resp), -ECONNREFUSED);
	httpc_response_free(&resp);
	httpc_free(h);
}

static void
test_post_body_without_expect(void **state)
{
	struct httpc *h = httpc_new(NULL);
	struct httpc_response resp;
	static char body[5000];
	const char *headers[] = { "Content-Type: application/json", NULL };
	struct httpc_request req = { .method = "POST", .headers = headers, .body = body,
	    .body_len = sizeof(body) };
	char u[128];

	(void)state;
	memset(body, 'x', sizeof(body));
	url(u, sizeof(u), "/echo");
	req.url = u;
	httpc_response_init(&resp);
	assert_int_equal(httpc_perform(h, &req, &resp), 0);
	assert_string_equal(resp.body.data, "5000 no-expect");
	req.method = "PATCH";
	assert_int_equal(httpc_perform(h, &req, &resp), 0);
	assert_string_equal(resp.body.data, "5000 no-expect");
	httpc_response_free(&resp);
	httpc_free(h);
}

struct collect {
	char text[64];
	int calls;
	int abort_after;
};

static int
collect_data(void *ctx, const char *data, size_t len)
{
	struct collect *c = ctx;

	strncat(c->text, data, len < sizeof(c->text) - strlen(c->text) - 1 ? len :
	    sizeof(c->text) - strlen(c->text) - 1);
	return ++c->calls == c->abort_after ? -1 : 0;
}

static void
test_streaming(void **state)
{
	struct httpc *h = httpc_new(NULL);
	struct httpc_response resp;
	struct collect c = { .abort_after = -1 };
	struct httpc_request req = { .method = "GET", .on_data = collect_data, .on_data_ctx = &c };
	char u[128];

	(void)state;
	url(u, sizeof(u), "/stream");
	req.url = u;
	httpc_response_init(&resp);
	assert_int_equal(httpc_perform(h, &req, &resp), 0);
	assert_string_equal(c.text, "one\ntwo\nthree\n");
	assert_int_equal(resp.body.len, 0);
	memset(&c, 0, sizeof(c));
	c.abort_after = 1;
	assert_int_equal(httpc_perform(h, &req, &resp), -ECANCELED);
	httpc_response_free(&resp);
	httpc_free(h);
}

static void *
cancel_later(void *arg)
{
	usleep(200 * 1000);
	atomic_store((atomic_bool *)arg, true);
	return NULL;
}

/* A stream that sends nothing must still end promptly when its owner stops it. */
static void
test_cancel(void **state)
{
	struct httpc *h = httpc_new(NULL);
	struct httpc_response resp;
	atomic_bool cancel = true;
	struct httpc_request req = { .method = "GET", .cancel = &cancel };
	struct timespec t0, t1;
	pthread_t t;
	char u[128];

	(void)state;
	url(u, sizeof(u), "/slow");
	req.url = u;
	httpc_response_init(&resp);
	assert_int_equal(httpc_perform(h, &req, &resp), -ECANCELED);
	atomic_store(&cancel, false);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_create(&t, NULL, cancel_later, &cancel);
	assert_int_equal(httpc_perform(h, &req, &resp), -ECANCELED);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_join(t, NULL);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 1900);
	httpc_response_free(&resp);
	httpc_free(h);
}

/* A fresh connection per request when asked (benchmarks), and whether a request went out. */
static void
test_fresh_connection_and_request_sent(void **state)
{
	struct httpc *h = httpc_new(NULL);
	struct httpc_response resp;
	struct httpc_request req = { .method = "GET", .timeout_ms = 2000 };
	char u[128];

	(void)state;
	url(u, sizeof(u), "/ok");
	req.url = u;
	httpc_response_init(&resp);
	/* (The test server serves one connection at a time: fresh ones first.) */
	int before = __atomic_load_n(&server_connections, __ATOMIC_SEQ_CST);
	req.fresh_connection = true;
	assert_int_equal(httpc_perform(h, &req, &resp), 0);
	assert_false(resp.reused_connection);
	assert_true(resp.request_sent);
	assert_int_equal(httpc_perform(h, &req, &resp), 0);
	assert_false(resp.reused_connection);
	assert_true(resp.connect_s > 0);
	assert_int_equal(__atomic_load_n(&server_connections, __ATOMIC_SEQ_CST), before + 2);
	/* Dropped after the request was read: it was sent, the outcome is unknown. */
	req.fresh_connection = false;
	url(u, sizeof(u), "/drop");
	assert_int_equal(httpc_perform(h, &req, &resp), -ECONNRESET);
	assert_true(resp.request_sent);
	/* Refused: nothing went out. */
	req.url = "http://127.0.0.1:1/refused";
	assert_int_equal(httpc_perform(h, &req, &resp), -ECONNREFUSED);
	assert_false(resp.request_sent);
	httpc_response_free(&resp);
	httpc_free(h);
}

static void
test_url_parse(void **state)
{
	struct httpc_url u;

	(void)state;
	assert_int_equal(httpc_url_parse("https://ec2.us-east-1.amazonaws.com", &u), 0);
	assert_string_equal(u.scheme, "https");
	assert_string_equal(u.host, "ec2.us-east-1.amazonaws.com");
	assert_int_equal(u.port, 443);
	assert_true(u.default_port);
	assert_string_equal(u.path, "/");
	assert_int_equal(httpc_url_parse("http://127.0.0.1:4566/base/", &u), 0);
	assert_int_equal(u.port, 4566);
	assert_false(u.default_port);
	assert_string_equal(u.path, "/base/");
	assert_int_equal(httpc_url_parse("https://[::1]:8443", &u), 0);
	assert_string_equal(u.host, "[::1]");
	assert_int_equal(u.port, 8443);
	assert_int_equal(httpc_url_parse("http://example.com:80/", &u), 0);
	assert_true(u.default_port);
	assert_int_equal(httpc_url_parse("ftp://example.com/", &u), -EINVAL);
	assert_int_equal(httpc_url_parse("https://user:pw@example.com/", &u), -EINVAL);
	assert_int_equal(httpc_url_parse("not a url", &u), -EINVAL);
	assert_int_equal(httpc_url_parse(NULL, &u), -EINVAL);
}

static void
test_escape(void **state)
{
	char *e = httpc_escape("a b/c=d&e~f_g.h-i+é");

	(void)state;
	assert_string_equal(e, "a%20b%2Fc%3Dd%26e~f_g.h-i%2B%C3%A9");
	free(e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keep_alive_reuses_connection),
		cmocka_unit_test(test_response_cap),
		cmocka_unit_test(test_retry_after_and_status),
		cmocka_unit_test(test_transport_errors),
		cmocka_unit_test(test_post_body_without_expect),
		cmocka_unit_test(test_streaming),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_fresh_connection_and_request_sent),
		cmocka_unit_test(test_url_parse),
		cmocka_unit_test(test_escape),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
