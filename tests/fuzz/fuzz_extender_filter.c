/* libFuzzer target: the extender's filter and prioritize handlers on any request body, over caches holding a pool's nodes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "stratos/extender.h"
#include "stratos/jsonscan.h"
#include "stratos/log.h"
#include "stratos/node_cache.h"
#include "stratos/pod_cache.h"
#include "stratos/pool_ctx.h"
#include "stratos/pools.h"
#include "stratos/server.h"
#include "stratos/timeutil.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * No API server and no EC2 (kube and ec2 NULL): every path a body can take
 * runs, including the deferred one, and none of them can reach the network.
 * The caches hold one node of each kind the decision tells apart.
 */
static struct pool_ctx ctx;
static struct extender *ex;

static const char *const NODES[] = {
	"{\"metadata\":{\"name\":\"usable\",\"resourceVersion\":\"5\",\"labels\":{\"stratos.sh/pool\":\"ci\","
	"\"stratos.sh/state\":\"running\"},\"annotations\":{\"stratos.sh/last-workload\":\"ci/Deployment/web\","
	"\"stratos.sh/reservations\":\"[{\\\"uid\\\":\\\"u-1\\\",\\\"pod\\\":\\\"ci/a\\\",\\\"requests\\\":{\\\"cpu\\\":\\\"1\\\"},\\\"since\\\":\\\"2026-11-28T05:10:00Z\\\"}]\"}},"
	"\"spec\":{},\"status\":{\"allocatable\":{\"cpu\":\"4\",\"memory\":\"8Gi\",\"pods\":\"29\"},"
	"\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}",
	"{\"metadata\":{\"name\":\"standby\",\"resourceVersion\":\"5\",\"labels\":{\"stratos.sh/pool\":\"ci\","
	"\"stratos.sh/state\":\"standby\",\"stratos.sh/instance-id\":\"i-0123456789abcdef0\"},"
	"\"annotations\":{\"stratos.sh/state-since\":\"2026-11-28T05:10:00Z\"}},"
	"\"spec\":{\"taints\":[{\"key\":\"stratos.sh/standby\",\"value\":\"true\",\"effect\":\"NoExecute\"}]},"
	"\"status\":{\"allocatable\":{\"cpu\":\"4\",\"pods\":\"29\"},\"conditions\":[{\"type\":\"Ready\",\"status\":\"Unknown\"}]}}",
	"{\"metadata\":{\"name\":\"plain\",\"resourceVersion\":\"5\"},\"spec\":{},\"status\":{\"allocatable\":"
	"{\"cpu\":\"2\",\"pods\":\"110\"},\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}",
	NULL,
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	json_t *np = json_loads("{\"apiVersion\":\"stratos.sh/v1alpha1\",\"kind\":\"NodePool\","
	    "\"metadata\":{\"name\":\"ci\"},\"spec\":{\"poolSize\":10,\"minStandby\":1,\"template\":"
	    "{\"nodeClassRef\":{\"kind\":\"AWSNodeClass\",\"name\":\"ci\"},\"labels\":{\"stratos.sh/pool\":\"ci\"},"
	    "\"startupTaints\":[{\"key\":\"node.eks.amazonaws.com/not-ready\",\"value\":\"true\","
	    "\"effect\":\"NoSchedule\"}]}}}", 0, NULL);
	char when[TIME_RFC3339_LEN];

	(void)argc;
	(void)argv;
	log_set_level(LOG_LEVEL_ERROR);
	ctx.nodes = node_cache_new();
	ctx.pods = pod_cache_new();
	ctx.pools = pools_new();
	ctx.start_budget_ms = 100;
	if (ctx.nodes == NULL || ctx.pods == NULL || ctx.pools == NULL || np == NULL ||
	    pools_upsert_nodepool(ctx.pools, np, NULL) < 0)
		abort();
	json_decref(np);
	for (size_t i = 0; NODES[i] != NULL; i++) {
		json_t *n = json_loads(NODES[i], 0, NULL);
		if (n == NULL || cache_apply(node_cache_base(ctx.nodes), n) != 1)
			abort();
		json_decref(n);
	}
	/* A node starting now, with room (its started-at must be recent to count as starting). */
	time_format_rfc3339(time_real_ms(), when);
	{
		json_t *n = json_pack("{s:{s:s,s:s,s:{s:s,s:s},s:{s:s}},s:{},s:{s:{s:s,s:s},s:[{s:s,s:s}]}}",
		    "metadata", "name", "starting", "resourceVersion", "5", "labels", "stratos.sh/pool", "ci",
		    "stratos.sh/state", "running", "annotations", "stratos.sh/started-at", when,
		    "spec", "status", "allocatable", "cpu", "4", "pods", "29", "conditions", "type", "Ready",
		    "status", "False");
		if (n == NULL || cache_apply(node_cache_base(ctx.nodes), n) != 1)
			abort();
		json_decref(n);
	}
	/* A real pending pool pod, so a body naming it gets past verification to the writes. */
	{
		json_t *p = json_loads("{\"metadata\":{\"name\":\"p\",\"namespace\":\"ci\",\"uid\":"
		    "\"fuzz-uid\",\"resourceVersion\":\"9\",\"annotations\":{\"stratos.sh/pool\":\"ci\"}},"
		    "\"spec\":{\"containers\":[{\"name\":\"c\",\"resources\":{\"requests\":{\"cpu\":"
		    "\"1\"}}}]},\"status\":{\"phase\":\"Pending\"}}", 0, NULL);
		if (p == NULL || cache_apply(pod_cache_base(ctx.pods), p) != 1)
			abort();
		json_decref(p);
	}
	if ((ex = extender_new(&ctx)) == NULL)
		abort();
	return 0;
}

/* Whether v is one of the elements of the call's NodeNames (a pass-through echoes them whatever they are). */
static bool
sent(json_t *names, json_t *v)
{
	size_t i;
	json_t *e;

	json_array_foreach(names, i, e)
		if (json_equal(e, v))
			return true;
	return false;
}

/* Runs fn on body as the server would (event loop, then a worker when deferred) and checks the answer. */
static void
run(server_handler_fn fn, const char *body, size_t len, struct jsonscan_value root, bool filter)
{
	struct server_request req;
	struct server_response resp;
	json_t *out, *names, *in;
	size_t i;

	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.body = body;
	req.body_len = len;
	req.json_root = root;
	req.received_us = time_mono_us();
	for (int pass = 0; pass < 2; pass++) {
		memset(&resp, 0, sizeof(resp));
		resp.status = 200;
		buf_init(&resp.body, 64u << 20);
		req.on_worker = pass == 1;
		fn(ex, &req, &resp);
		if (resp.defer && pass == 0) {
			buf_free(&resp.body);
			continue;
		}
		if (resp.defer)
			abort();        /* a worker call must answer */
		out = json_loadb(resp.body.data != NULL ? resp.body.data : "", resp.body.len, 0, NULL);
		if (out == NULL) {
			fprintf(stderr, "answer is not JSON: %.*s\n", (int)resp.body.len, resp.body.data);
			abort();
		}
		if (resp.status == 200 && filter) {
			/* NodeNames returned must be a subset of those sent (extender.go Filter). */
			names = json_object_get(out, "NodeNames");
			if (!json_is_object(json_object_get(out, "FailedAndUnresolvableNodes")) ||
			    !json_is_string(json_object_get(out, "Error")))
				abort();
			in = jsonscan_json(jsonscan_get(root, "NodeNames"));
			for (i = 0; json_is_array(names) && i < json_array_size(names); i++) {
				if (!sent(in, json_array_get(names, i))) {
					char *t = json_dumps(json_array_get(names, i), JSON_ENCODE_ANY);
					fprintf(stderr, "returned a name that was not sent: %s\n", t);
					abort();
				}
			}
			json_decref(in);
		} else if (resp.status != 200 && json_object_get(out, "error") == NULL) {
			abort();
		}
		json_decref(out);
		buf_free(&resp.body);
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jsonscan_doc doc = { 0 };
	struct jsonscan_value root;
	char *body = malloc(size + 1);

	if (body == NULL)
		return 0;
	memcpy(body, data, size);
	body[size] = '\0';
	/* The server admits only a JSON object (SERVER_ROUTE_JSON). */
	if (jsonscan_validate(body, size, &doc, &root, NULL) == 0 && root.type == JSONSCAN_OBJECT) {
		run(extender_filter_handle, body, size, root, true);
		run(extender_prioritize_handle, body, size, root, false);
	}
	jsonscan_doc_free(&doc);
	free(body);
	return 0;
}
