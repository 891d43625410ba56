/* The extender's filter call without the network: latency and throughput of the server's work (jsonscan check + handler) for the shapes of call a scheduler makes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "stratos/buf.h"
#include "stratos/extender.h"
#include "stratos/jsonscan.h"
#include "stratos/log.h"
#include "stratos/node_cache.h"
#include "stratos/pod_cache.h"
#include "stratos/pool_ctx.h"
#include "stratos/pools.h"
#include "stratos/server.h"
#include "stratos/timeutil.h"

#ifndef STRATOS_SOURCE_DIR
#define STRATOS_SOURCE_DIR "."
#endif

/*
 * What is measured is what an HTTPS worker does once the body has arrived:
 * jsonscan_validate over the whole body (SERVER_ROUTE_JSON) and the
 * handler on the event loop, answer included. TLS and the socket are the
 * server's (bench/webhook_vs_nginx.sh measures those). The caches hold
 * 5,000 Nodes of no pool and a pool "ci" of 40 nodes (one usable with room,
 * the others standby), as a cluster of that size would.
 */

#define PLAIN_NODES 5000
#define POOL_NODES 40

static struct pool_ctx ctx;
static struct extender *ex;

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *text = calloc(1, 1 << 20);

	if (f == NULL || text == NULL)
		exit(1);
	*len = fread(text, 1, (1 << 20) - 1, f);
	fclose(f);
	return text;
}

static void
load(json_t *node)
{
	if (cache_apply(node_cache_base(ctx.nodes), node) != 1)
		exit(1);
	json_decref(node);
}

static void
setup(void)
{
	json_t *np = json_loads("{\"apiVersion\":\"stratos.sh/v1alpha1\",\"kind\":\"NodePool\","
	    "\"metadata\":{\"name\":\"ci\"},\"spec\":{\"poolSize\":100,\"minStandby\":1,\"template\":"
	    "{\"nodeClassRef\":{\"kind\":\"AWSNodeClass\",\"name\":\"ci\"},\"labels\":{\"stratos.sh/pool\":\"ci\"},"
	    "\"startupTaints\":[{\"key\":\"node.eks.amazonaws.com/not-ready\",\"value\":\"true\","
	    "\"effect\":\"NoSchedule\"}]}}}", 0, NULL);
	char name[64];

	log_set_level(LOG_LEVEL_ERROR);
	ctx.nodes = node_cache_new();
	ctx.pods = pod_cache_new();
	ctx.pools = pools_new();
	if (np == NULL || pools_upsert_nodepool(ctx.pools, np, NULL) < 0)
		exit(1);
	json_decref(np);
	for (int i = 0; i < PLAIN_NODES; i++) {
		snprintf(name, sizeof(name), "ip-10-1-%d-%d.ec2.internal", i / 250, i % 250);
		load(json_pack("{s:{s:s,s:s,s:{s:s}},s:{},s:{s:{s:s,s:s,s:s},s:[{s:s,s:s}]}}",
		    "metadata", "name", name, "resourceVersion", "5", "labels", "kubernetes.io/hostname", name,
		    "spec", "status", "allocatable", "cpu", "7910m", "memory", "30Gi", "pods", "58",
		    "conditions", "type", "Ready", "status", "True"));
	}
	for (int i = 0; i < POOL_NODES; i++) {
		snprintf(name, sizeof(name), "ip-10-0-9-%d.ec2.internal", i);
		if (i == 0)
			load(json_pack("{s:{s:s,s:s,s:{s:s,s:s}},s:{},s:{s:{s:s,s:s,s:s},s:[{s:s,s:s}]}}",
			    "metadata", "name", name, "resourceVersion", "5", "labels", "stratos.sh/pool", "ci",
			    "stratos.sh/state", "running", "spec", "status", "allocatable", "cpu", "7910m",
			    "memory", "30Gi", "pods", "58", "conditions", "type", "Ready", "status", "True"));
		else
			load(json_pack("{s:{s:s,s:s,s:{s:s,s:s,s:s},s:{s:s}},s:{s:[{s:s,s:s,s:s}]},"
			    "s:{s:{s:s,s:s},s:[{s:s,s:s}]}}",
			    "metadata", "name", name, "resourceVersion", "5", "labels", "stratos.sh/pool", "ci",
			    "stratos.sh/state", "standby", "stratos.sh/instance-id", "i-0123456789abcdef0",
			    "annotations", "stratos.sh/state-since", "2026-11-28T05:10:00Z",
			    "spec", "taints", "key", "stratos.sh/standby", "value", "true", "effect", "NoExecute",
			    "status", "allocatable", "cpu", "7910m", "pods", "58", "conditions", "type", "Ready",
			    "status", "Unknown"));
	}
	if ((ex = extender_new(&ctx)) == NULL)
		exit(1);
}

/* The fixture's Pod, with (pool != NULL) or without the pool annotation. */
static void
pod_text(struct buf *b, const char *pool)
{
	size_t len;
	char *text = read_file(STRATOS_SOURCE_DIR "/tests/fixtures/extender/filter-args-nodenames.json",
	    &len);
	json_t *args = json_loads(text, 0, NULL), *pod = json_object_get(args, "Pod");
	json_t *ann = json_object_get(json_object_get(pod, "metadata"), "annotations");
	char *s;

	if (pool == NULL)
		json_object_del(ann, "stratos.sh/pool");
	else
		json_object_set_new(ann, "stratos.sh/pool", json_string(pool));
	s = json_dumps(pod, JSON_COMPACT);
	buf_append_str(b, s);
	free(s);
	free(text);
	json_decref(args);
}

static char *
call_names(const char *pool, bool pool_nodes, size_t n, size_t *len)
{
	struct buf b;

	buf_init(&b, 256u << 20);
	buf_append_str(&b, "{\"Pod\":");
	pod_text(&b, pool);
	buf_append_str(&b, ",\"Nodes\":null,\"NodeNames\":[");
	for (size_t i = 0; i < n; i++) {
		if (pool_nodes)
			buf_printf(&b, "%s\"ip-10-0-9-%zu.ec2.internal\"", i ? "," : "", i);
		else
			buf_printf(&b, "%s\"ip-10-1-%zu-%zu.ec2.internal\"", i ? "," : "", i / 250, i % 250);
	}
	buf_append_str(&b, "]}");
	*len = b.len;
	return buf_take(&b);
}

/* n full Node objects (the fixture's standby node, images and all), renamed. */
static char *
call_nodes(size_t n, size_t *len)
{
	size_t flen;
	char *text = read_file(STRATOS_SOURCE_DIR "/tests/fixtures/extender/nodes-standby.json", &flen);
	json_t *nodes = json_loads(text, 0, NULL), *node = json_array_get(nodes, 0);
	struct buf b;

	/* A Node as the scheduler sends it carries its image list: the bulk of the body. */
	json_t *images = json_array();
	for (int i = 0; i < 20; i++)
		json_array_append_new(images, json_pack("{s:[s,s],s:i}", "names",
		    "registry.example/team/image-with-a-long-name@sha256:0123456789abcdef0123456789abcdef",
		    "registry.example/team/image-with-a-long-name:v1.2.3", "sizeBytes", 123456789 + i));
	json_object_set_new(json_object_get(node, "status"), "images", images);
	buf_init(&b, 256u << 20);
	buf_append_str(&b, "{\"Pod\":");
	pod_text(&b, NULL);
	buf_append_str(&b, ",\"Nodes\":{\"metadata\":{},\"items\":[");
	for (size_t i = 0; i < n; i++) {
		char name[64], *s;
		snprintf(name, sizeof(name), "ip-10-1-%zu-%zu.ec2.internal", i / 250, i % 250);
		json_object_set_new(json_object_get(node, "metadata"), "name", json_string(name));
		s = json_dumps(node, JSON_COMPACT);
		buf_printf(&b, "%s%s", i ? "," : "", s);
		free(s);
	}
	buf_append_str(&b, "]},\"NodeNames\":null}");
	free(text);
	json_decref(nodes);
	*len = b.len;
	return buf_take(&b);
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Runs the call iters times as the server would; prints p50/p99 and calls per second. */
static void
measure(const char *what, const char *body, size_t len, int iters, const char *expect)
{
	int64_t *us = calloc((size_t)iters, sizeof(*us)), total = 0;
	size_t out_len = 0;

	for (int i = 0; i < iters; i++) {
		struct server_request req = { .method = "POST", .body = body, .body_len = len };
		struct server_response resp = { .status = 200 };
		struct jsonscan_doc doc = { 0 };
		int64_t t0 = time_mono_us();

		req.received_us = t0;
		buf_init(&resp.body, 512u << 20);
		if (jsonscan_validate(body, len, &doc, &req.json_root, NULL) < 0)
			exit(1);
		extender_filter_handle(ex, &req, &resp);
		jsonscan_doc_free(&doc);
		us[i] = time_mono_us() - t0;
		total += us[i];
		if (resp.status != 200 || resp.defer || strstr(resp.body.data, expect) == NULL) {
			fprintf(stderr, "%s: unexpected answer %d: %.300s\n", what, resp.status,
			    resp.body.data);
			exit(1);
		}
		out_len = resp.body.len;
		buf_free(&resp.body);
	}
	qsort(us, (size_t)iters, sizeof(*us), cmp_i64);
	printf("  %-52s %8.1f KiB in, %8.1f KiB out: p50 %7.1f us  p99 %7.1f us  %8.0f calls/s\n",
	    what, len / 1024.0, out_len / 1024.0, (double)us[iters / 2],
	    (double)us[(size_t)(iters * 0.99)], iters * 1e6 / (double)total);
	free(us);
}

int
main(int argc, char **argv)
{
	bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	int iters = quick ? 20 : 2000;
	size_t len;
	char *body;

	setup();
	printf("extender filter, server work per call (jsonscan check + handler), %d calls each; "
	    "caches: %d nodes + a pool of %d\n", iters, PLAIN_NODES, POOL_NODES);
	body = call_names(NULL, false, PLAIN_NODES, &len);
	measure("pod of no pool, 5,000 NodeNames (pass-through)", body, len, iters,
	    "\"FailedAndUnresolvableNodes\":{}");
	free(body);
	body = call_nodes(500, &len);
	measure("pod of no pool, 500 full Nodes (pass-through)", body, len, quick ? 5 : iters / 4,
	    "\"FailedAndUnresolvableNodes\":{}");
	free(body);
	body = call_names("ci", true, POOL_NODES, &len);
	measure("pool pod, 40 pool nodes, one usable", body, len, iters,
	    "\"NodeNames\":[\"ip-10-0-9-0.ec2.internal\"]");
	free(body);
	body = call_names("ci", false, PLAIN_NODES, &len);
	measure("pool pod, 5,000 NodeNames of plain usable nodes", body, len, quick ? 5 : iters / 10,
	    "\"NodeNames\":[\"ip-10-1-0-0.ec2.internal\"");
	free(body);
	return 0;
}
