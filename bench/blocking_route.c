/* /healthz and a webhook-sized POST while extender-like handlers wait 2 s: on the blocking workers vs in place on the event loop. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stratos/httpc.h"
#include "stratos/server.h"
#include "stratos/timeutil.h"

/*
 * The decision this measures (issue 8): the extender's filter call may wait
 * up to its EC2 budget (2 s). Run in place, that handler holds the
 * libmicrohttpd event-loop thread it landed on, and every connection of that
 * thread (admission webhooks, probes) waits with it. SERVER_ROUTE_BLOCKING
 * suspends the connection and runs the handler on a worker instead.
 *
 * Each mode: a server with `threads` event-loop threads; `waiting` clients
 * keep calling the slow route (a handler that sleeps wait_ms); meanwhile
 * GET /healthz and POST /echo go round-robin over 8 keep-alive connections,
 * as the API server keeps its connections to a webhook; their latencies
 * are printed as p50/p99/max. A probe connection that libmicrohttpd put on
 * an event-loop thread a slow handler holds waits with it.
 */
#define PROBE_CONNECTIONS 8

static atomic_bool stop_slow;

static void
slow_handler(void *ctx, const struct server_request *req, struct server_response *resp)
{
	long ms = *(long *)ctx;
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	if (!req->on_worker && ctx != NULL && ((long *)ctx)[1] != 0) {
		resp->defer = true;
		return;
	}
	nanosleep(&ts, NULL);
	buf_append_str(&resp->body, "{\"Error\":\"\"}");
}

static void
echo_handler(void *ctx, const struct server_request *req, struct server_response *resp)
{
	(void)ctx;
	buf_printf(&resp->body, "{\"len\":%zu}", req->body_len);
}

struct slow_client {
	char url[128];
};

static void *
slow_main(void *arg)
{
	struct slow_client *c = arg;
	struct httpc *h = httpc_new(NULL);

	while (!atomic_load(&stop_slow)) {
		struct httpc_request req = { .method = "POST", .url = c->url, .body = "{}",
		    .body_len = 2, .timeout_ms = 30000 };
		struct httpc_response resp;

		httpc_response_init(&resp);
		httpc_perform(h, &req, &resp);
		httpc_response_free(&resp);
	}
	httpc_free(h);
	return NULL;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void
run(bool blocking, unsigned threads, unsigned waiting, long wait_ms, int samples)
{
	struct server_options o = { .name = "bench", .listen = "127.0.0.1:0", .threads = threads,
	    .idle_timeout_ms = 60000, .max_connections = 256 };
	struct server *s = server_new(&o);
	struct server_error err;
	struct slow_client *clients = calloc(waiting, sizeof(*clients));
	pthread_t *t = calloc(waiting, sizeof(*t));
	int64_t *lat = calloc((size_t)samples, sizeof(*lat));
	char health[128], echo[128];
	char body[2048];
	int failed = 0;

	memset(body, ' ', sizeof(body) - 1);
	body[0] = '{';
	body[sizeof(body) - 2] = '}';
	body[sizeof(body) - 1] = '\0';
	long handler_ctx[2] = { wait_ms, blocking };
	server_route(s, "POST", "/scheduler/filter", blocking ? SERVER_ROUTE_BLOCKING : 0,
	    slow_handler, handler_ctx);
	server_route(s, "POST", "/echo", 0, echo_handler, NULL);
	if (server_start(s, &err) != 0) {
		fprintf(stderr, "server: %s\n", err.message);
		exit(1);
	}
	snprintf(health, sizeof(health), "http://127.0.0.1:%d/healthz", server_port(s));
	snprintf(echo, sizeof(echo), "http://127.0.0.1:%d/echo", server_port(s));
	/* The probe connections exist first, spread over the threads, as the API server's do. */
	struct httpc *probes[PROBE_CONNECTIONS];
	for (int i = 0; i < PROBE_CONNECTIONS; i++) {
		struct httpc_request req = { .method = "GET", .url = health, .timeout_ms = 10000 };
		struct httpc_response resp;

		probes[i] = httpc_new(NULL);
		httpc_response_init(&resp);
		httpc_perform(probes[i], &req, &resp);
		httpc_response_free(&resp);
	}
	atomic_store(&stop_slow, false);
	for (unsigned i = 0; i < waiting; i++) {
		snprintf(clients[i].url, sizeof(clients[i].url),
		    "http://127.0.0.1:%d/scheduler/filter", server_port(s));
		pthread_create(&t[i], NULL, slow_main, &clients[i]);
	}
	/* Let the slow calls reach their handlers. */
	struct timespec settle = { 0, 200 * 1000000L };
	nanosleep(&settle, NULL);
	for (int i = 0; i < samples; i++) {
		struct httpc *h = probes[i % PROBE_CONNECTIONS];
		struct httpc_request req = { .method = i % 2 ? "POST" : "GET", .url = i % 2 ? echo : health,
		    .body = i % 2 ? body : NULL, .body_len = i % 2 ? strlen(body) : 0,
		    .timeout_ms = 10000 };
		struct httpc_response resp;
		int64_t t0 = time_mono_us();

		httpc_response_init(&resp);
		if (httpc_perform(h, &req, &resp) < 0 || resp.status != 200)
			failed++;
		lat[i] = time_mono_us() - t0;
		httpc_response_free(&resp);
	}
	for (int i = 0; i < PROBE_CONNECTIONS; i++)
		httpc_free(probes[i]);
	atomic_store(&stop_slow, true);
	for (unsigned i = 0; i < waiting; i++)
		pthread_join(t[i], NULL);
	server_free(s);
	qsort(lat, (size_t)samples, sizeof(*lat), cmp_i64);
	printf("%-9s threads=%u waiting=%u: healthz/echo n=%d p50 %8.2f ms  p99 %8.2f ms  max %8.2f ms"
	    "  failed %d\n", blocking ? "workers" : "in-place", threads, waiting, samples,
	    lat[samples / 2] / 1000.0, lat[samples * 99 / 100] / 1000.0, lat[samples - 1] / 1000.0,
	    failed);
	free(lat);
	free(t);
	free(clients);
}

int
main(int argc, char **argv)
{
	bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	int samples = quick ? 20 : 200;
	long wait_ms = quick ? 300 : 2000;

	httpc_global_init();
	printf("slow handler waits %ld ms; %d probe requests per run over %d keep-alive connections\n",
	    wait_ms, samples, PROBE_CONNECTIONS);
	for (unsigned waiting = 1; waiting <= 4; waiting *= 2) {
		run(false, 4, waiting, wait_ms, samples);
		run(true, 4, waiting, wait_ms, samples);
	}
	return 0;
}
