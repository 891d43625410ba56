/* Unit tests for the libcurl wrapper against the scripted in-process HTTP server. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"
#include "fake_http.h"
#include "stratos/httpc.h"

static void
h_paths(int fd, const struct req *r)
{
	if (strcmp(r->path, "/ok") == 0) {
		fake_http_reply(fd, 200, "text/plain", NULL, "hello");
	} else if (strcmp(r->path, "/big") == 0) {
		static char big[10001];
		memset(big, 'b', 10000);
		fake_http_reply(fd, 200, NULL, NULL, big);
	} else if (strcmp(r->path, "/retry") == 0) {
		fake_http_reply(fd, 503, NULL, "Retry-After: 7\r\n", "slow down");
	} else if (strcmp(r->path, "/drop") == 0) {
		fake_http_drop(fd);
	} else if (strcmp(r->path, "/slow") == 0) {
		sleep(2);
		fake_http_reply(fd, 200, NULL, NULL, "late");
	} else if (strcmp(r->path, "/echo") == 0) {
		char body[64];
		snprintf(body, sizeof(body), "%zu %s", r->body_len,
		    strcasestr(r->head, "Expect: 100") != NULL ? "expect" : "no-expect");
		fake_http_reply(fd, 200, NULL, NULL, body);
	} else if (strcmp(r->path, "/stream") == 0) {
		stream_start(fd);
		chunk(fd, "one\n");
		chunk(fd, "two\n");
		chunk(fd, "three\n");
		stream_end(fd);
	} else {
		fake_http_reply(fd, 404, NULL, NULL, "nope");
	}
}

static int
setup(void **state)
{
	(void)state;
	httpc_global_init();
	handler = h_paths;
	return fake_http_start();
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
	int before = __atomic_load_n(&fake_http_connections, __ATOMIC_SEQ_CST);
	assert_int_equal(httpc_perform(h, &req, &resp), 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body.data, "hello");
	assert_string_equal(resp.content_type, "text/plain");
	assert_false(resp.reused_connection);
	assert_int_equal(httpc_perform(h, &req, &resp), 0);
	assert_true(resp.reused_connection);
	assert_int_equal(__atomic_load_n(&fake_http_connections, __ATOMIC_SEQ_CST), before + 1);
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
	int before = __atomic_load_n(&fake_http_connections, __ATOMIC_SEQ_CST);
	req.fresh_connection = true;
	assert_int_equal(httpc_perform(h, &req, &resp), 0);
	assert_false(resp.reused_connection);
	assert_true(resp.request_sent);
	assert_int_equal(httpc_perform(h, &req, &resp), 0);
	assert_false(resp.reused_connection);
	assert_true(resp.connect_s > 0);
	assert_int_equal(__atomic_load_n(&fake_http_connections, __ATOMIC_SEQ_CST), before + 2);
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
