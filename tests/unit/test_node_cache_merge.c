/* Unit tests for node_cache_merge_patch against a scripted API server: the request sent and the write-through. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test_util.h"
#include "fake_http.h"
#include "stratos/kube.h"
#include "stratos/node_cache.h"

/* Nodes as the API server returns them after the patch. */
#define NODE_N1_RV15 "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"n1\"," \
	"\"uid\":\"uid-n1\",\"resourceVersion\":\"15\",\"labels\":{\"stratos.sh/pool\":\"ci\"," \
	"\"stratos.sh/state\":\"running\"},\"annotations\":{" \
	"\"stratos.sh/last-workload\":\"ci/Deployment/runner\"}}," \
	"\"status\":{\"allocatable\":{\"cpu\":\"2\",\"pods\":\"10\"}}}"
#define NODE_AHEAD_RV15 "{\"kind\":\"Node\",\"metadata\":{\"name\":\"ahead\"," \
	"\"resourceVersion\":\"15\",\"labels\":{\"stratos.sh/pool\":\"ci\"}}}"

static void
h_nodes(int fd, const struct req *r)
{
	if (strcmp(r->method, "PATCH") != 0)
		reply(fd, 405, NULL, "{\"kind\":\"Status\",\"code\":405}");
	else if (strcmp(r->path, "/api/v1/nodes/n1") == 0)
		reply(fd, 200, NULL, NODE_N1_RV15);
	else if (strcmp(r->path, "/api/v1/nodes/ahead") == 0)
		reply(fd, 200, NULL, NODE_AHEAD_RV15);
	else
		reply(fd, 404, NULL, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
		    "\"status\":\"Failure\",\"message\":\"nodes \\\"gone\\\" not found\","
		    "\"reason\":\"NotFound\",\"details\":{\"name\":\"gone\",\"kind\":\"nodes\"},"
		    "\"code\":404}");
}

static int
setup(void **state)
{
	(void)state;
	httpc_global_init();
	handler = h_nodes;
	return fake_http_start();
}

static struct kube *
client(void)
{
	struct kube_config cfg = { 0 };
	char server[64];
	struct kube *k;

	snprintf(server, sizeof(server), "http://127.0.0.1:%d", server_port);
	cfg.server = server;
	cfg.token = (char *)"t";
	k = kube_new(&cfg, "test-replica");
	assert_non_null(k);
	return k;
}

/* A node as the watch delivered it. */
static void
cache_node(struct cache *c, const char *name, const char *rv, const char *empty_since)
{
	json_t *n = json_pack("{s:{s:s,s:s,s:{s:s,s:s},s:{s:s}}}", "metadata", "name", name,
	    "resourceVersion", rv, "labels", NODESTATE_LABEL_POOL, "ci", NODESTATE_LABEL_STATE,
	    "running", "annotations", NODESTATE_ANN_EMPTY_SINCE, empty_since);

	assert_int_equal(cache_apply(c, n), 1);
	json_decref(n);
}

/*
 * The request is a PATCH of the node with the merge-patch content type and
 * the patch as given (a null removes a key), without a resourceVersion
 * guard; the reply replaces the cached node at once.
 */
static void
test_request_and_write_through(void **state)
{
	struct node_cache *nc = node_cache_new();
	struct cache *c = node_cache_base(nc);
	struct kube *k = client();
	struct kube_error err;
	struct node_info *out = NULL, *cached;
	json_t *patch = json_pack("{s:{s:{s:n,s:s}}}", "metadata", "annotations",
	    NODESTATE_ANN_EMPTY_SINCE, NODESTATE_ANN_LAST_WORKLOAD, "ci/Deployment/runner");
	json_t *sent;
	uint64_t gen;

	(void)state;
	cache_node(c, "n1", "10", "2026-11-28T07:00:00Z");
	gen = cache_generation(c);
	paths_log[0] = '\0';
	assert_int_equal(node_cache_merge_patch(nc, k, "n1", patch, &out, &err), 0);

	assert_string_equal(paths_log, "PATCH /api/v1/nodes/n1\n");
	assert_string_equal(last.method, "PATCH");
	assert_string_equal(last.ctype, "application/merge-patch+json");
	sent = json_loadb(last.body, last.body_len, 0, NULL);
	assert_non_null(sent);
	assert_true(json_equal(sent, patch));
	assert_true(json_is_null(json_object_get(json_object_get(json_object_get(sent, "metadata"),
	    "annotations"), NODESTATE_ANN_EMPTY_SINCE)));
	assert_null(strstr(last.body, "resourceVersion"));
	json_decref(sent);

	/* The reply, not the patch, is what the cache holds now. */
	assert_non_null(out);
	assert_int_equal(out->obj.rv, 15);
	assert_string_equal(out->uid, "uid-n1");
	assert_string_equal(node_info_annotation(out, NODESTATE_ANN_LAST_WORKLOAD),
	    "ci/Deployment/runner");
	assert_null(node_info_annotation(out, NODESTATE_ANN_EMPTY_SINCE));
	assert_int_equal(out->empty_since_ms, 0);
	assert_int_equal(out->allocatable.cpu_milli, 2000);
	cached = node_cache_get(nc, "n1");
	assert_ptr_equal(cached, out);
	assert_true(cache_generation(c) > gen);
	cache_obj_unref(&cached->obj);
	cache_obj_unref(&out->obj);

	/* out may be NULL: the cache is still written. */
	cache_node(c, "n1", "16", "2026-11-28T07:10:00Z");       /* the watch moves on */
	assert_int_equal(node_cache_merge_patch(nc, k, "n1", patch, NULL, &err), 0);
	cached = node_cache_get(nc, "n1");
	assert_int_equal(cached->obj.rv, 16);                    /* 15 is older: kept 16 */
	cache_obj_unref(&cached->obj);

	json_decref(patch);
	node_cache_free(nc);
	kube_free(k);
}

/* A reply older than what the watch already delivered never rolls the cache back. */
static void
test_reply_older_than_the_watch(void **state)
{
	struct node_cache *nc = node_cache_new();
	struct cache *c = node_cache_base(nc);
	struct kube *k = client();
	struct kube_error err;
	struct node_info *out = NULL;
	json_t *patch = json_pack("{s:{s:{s:s}}}", "metadata", "labels", "x", "y");

	(void)state;
	cache_node(c, "ahead", "20", "2026-11-28T07:00:00Z");
	assert_int_equal(node_cache_merge_patch(nc, k, "ahead", patch, &out, &err), 0);
	assert_non_null(out);
	assert_int_equal(out->obj.rv, 20);
	assert_int_equal(out->empty_since_ms, 1795849200000LL);
	cache_obj_unref(&out->obj);
	json_decref(patch);
	node_cache_free(nc);
	kube_free(k);
}

/* An error leaves the cache alone and hands back no node. */
static void
test_error_leaves_the_cache(void **state)
{
	struct node_cache *nc = node_cache_new();
	struct cache *c = node_cache_base(nc);
	struct kube *k = client();
	struct kube_error err;
	struct node_info *out = (struct node_info *)&out, *cached;
	json_t *patch = json_pack("{s:{s:{s:n}}}", "metadata", "annotations",
	    NODESTATE_ANN_EMPTY_SINCE);

	(void)state;
	cache_node(c, "gone", "5", "2026-11-28T07:00:00Z");
	assert_int_equal(node_cache_merge_patch(nc, k, "gone", patch, &out, &err), -ENOENT);
	assert_null(out);
	assert_int_equal(err.class, KUBE_ERR_NOT_FOUND);
	assert_int_equal(err.code, 404);
	cached = node_cache_get(nc, "gone");
	assert_non_null(cached);                     /* the watch, not the write, removes it */
	assert_int_equal(cached->obj.rv, 5);
	assert_int_equal(cached->empty_since_ms, 1795849200000LL);
	cache_obj_unref(&cached->obj);
	json_decref(patch);
	node_cache_free(nc);
	kube_free(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_and_write_through),
		cmocka_unit_test(test_reply_older_than_the_watch),
		cmocka_unit_test(test_error_leaves_the_cache),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
