/*
 * Test-only driver of the Kubernetes client for the integration tests: one
 * replica's claim of a standby node, made exactly as the extender will make
 * it (node cache, guarded JSON Patch, write-through). Not installed.
 *
 *   kube_driver claim --kubeconfig FILE --node NAME --identity ID --go FILE
 *   kube_driver OP --kubeconfig FILE [args]      one REST call, one JSON line out:
 *     event KIND NAME [NAMESPACE]   events.k8s.io Event (Warning DrainTimeout)
 *     bind NAMESPACE POD NODE       pods/binding
 *     evict NAMESPACE POD           pods/eviction
 *     status NODEPOOL               merge patch of the NodePool's status subresource
 *     can-i VERB RESOURCE           SelfSubjectAccessReview
 *     patch-guarded NODE RV PATCH   kube_patch_guarded of a JSON Patch (text) on a Node
 *     list PATH [QUERY|- [PAUSE]]   kube_list page by page; with PAUSE, prints
 *                                   {"paused":true} at the first item and waits
 *                                   for that file, so a test can write between pages
 *
 * Syncs a node cache, prints {"ready":true,"rv":...} once it holds the node,
 * waits for the --go file to exist (so two drivers race), claims the node
 * (stratos.sh/state=running, started-for=ID, standby taint removed) with a
 * test on the cached resourceVersion, and prints one JSON result line:
 * {"won":bool,"class":...,"code":...,"cacheState":...,"cacheRv":...}.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stratos/httpc.h"
#include "stratos/kube.h"
#include "stratos/kubeconfig.h"
#include "stratos/node_cache.h"
#include "stratos/timeutil.h"

extern char **environ;

static const char *
arg(int argc, char **argv, const char *name)
{
	for (int i = 0; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return NULL;
}

static json_t *
claim_patch(const struct node_info *n, const char *identity)
{
	struct node_patch p;
	char now[TIME_RFC3339_LEN];
	int rc;

	time_format_rfc3339(time_real_ms(), now);
	node_patch_init(&p, n);
	node_patch_set_label(&p, NODESTATE_LABEL_STATE, "running");
	node_patch_set_annotation(&p, NODESTATE_ANN_STARTED_FOR, identity);
	node_patch_set_annotation(&p, NODESTATE_ANN_STARTED_AT, now);
	node_patch_remove_taint(&p, NODESTATE_TAINT_STANDBY);
	return node_patch_take(&p, &rc);
}

static int
claim(int argc, char **argv)
{
	const char *kubeconfig = arg(argc, argv, "--kubeconfig"), *node = arg(argc, argv, "--node");
	const char *identity = arg(argc, argv, "--identity"), *go = arg(argc, argv, "--go");
	struct kube_config cfg;
	struct kubeconfig_error kerr;
	struct kube_error err;
	struct node_info *n = NULL, *after = NULL;
	struct node_cache *nodes;
	struct kube *k;
	char rv[32];
	json_t *patch;
	int rc;

	if (kubeconfig == NULL || node == NULL || identity == NULL || go == NULL) {
		fprintf(stderr, "usage: kube_driver claim --kubeconfig F --node N --identity I --go F\n");
		return 2;
	}
	if (kubeconfig_load(kubeconfig, NULL, &cfg, &kerr) < 0) {
		fprintf(stderr, "kube_driver: %s\n", kerr.message);
		return 2;
	}
	httpc_global_init();
	k = kube_new(&cfg, identity);
	kube_config_free(&cfg);
	nodes = node_cache_new();
	if (k == NULL || nodes == NULL || node_cache_start(nodes, k) < 0)
		return 1;
	for (int64_t t0 = time_mono_ms(); n == NULL && time_mono_ms() - t0 < 20000;) {
		if (cache_synced(node_cache_base(nodes)))
			n = node_cache_get(nodes, node);
		if (n == NULL)
			usleep(20 * 1000);
	}
	if (n == NULL) {
		fprintf(stderr, "kube_driver: node %s not in the cache\n", node);
		return 1;
	}
	snprintf(rv, sizeof(rv), "%llu", (unsigned long long)n->obj.rv);
	printf("{\"ready\":true,\"rv\":\"%s\"}\n", rv);
	fflush(stdout);
	while (access(go, F_OK) != 0)
		usleep(1000);
	patch = claim_patch(n, identity);
	rc = node_cache_patch(nodes, k, node, rv, patch, &after, &err);
	json_decref(patch);
	/* What this replica's cache says right after its own write. */
	json_t *out = json_pack("{s:b,s:s,s:i,s:s,s:s,s:s?,s:I}", "won", rc == 0,
	    "class", kube_err_class_name(err.class), "code", (int)err.code, "message", err.message,
	    "identity", identity, "cacheState", after != NULL ? after->state : NULL,
	    "cacheRv", (json_int_t)(after != NULL ? after->obj.rv : 0));
	char *text = json_dumps(out, JSON_COMPACT);
	printf("%s\n", text);
	fflush(stdout);
	free(text);
	json_decref(out);
	cache_obj_unref(&n->obj);
	cache_obj_unref(after != NULL ? &after->obj : NULL);
	node_cache_free(nodes);
	kube_free(k);
	return 0;
}

static void
print_result(const char *op, int rc, const struct kube_error *err, json_t *extra)
{
	json_t *out = json_pack("{s:s,s:b,s:s,s:i,s:s,s:s}", "op", op, "ok", rc == 0,
	    "class", kube_err_class_name(err->class), "code", (int)err->code, "reason", err->reason,
	    "message", err->message);
	char *text;

	if (extra != NULL)
		json_object_update(out, extra);
	json_decref(extra);
	text = json_dumps(out, JSON_COMPACT);
	printf("%s\n", text);
	free(text);
	json_decref(out);
}

struct list_run {
	json_t *names;
	const char *pause;           /* file to wait for at the first item, or NULL */
};

static int
list_item(void *ctx, json_t *item)
{
	struct list_run *lr = ctx;

	if (lr->pause != NULL && json_array_size(lr->names) == 0) {
		printf("{\"paused\":true}\n");
		fflush(stdout);
		while (access(lr->pause, F_OK) != 0)
			usleep(1000);
	}
	json_array_append_new(lr->names, json_string(json_string_value(json_object_get(
	    json_object_get(item, "metadata"), "name"))));
	return 0;
}

/* One REST call per invocation: argv[0] is the operation, then --kubeconfig F, then its args. */
static int
rest(int argc, char **argv)
{
	const char *op = argv[0], *kubeconfig = arg(argc, argv, "--kubeconfig");
	struct kube_config cfg;
	struct kubeconfig_error kerr;
	struct kube_error err = { 0 };
	struct kube *k;
	char **a = argv + 3;
	int n = argc - 3, rc = -EINVAL;

	if (kubeconfig == NULL || argc < 3 || strcmp(argv[1], "--kubeconfig") != 0) {
		fprintf(stderr, "usage: kube_driver OP --kubeconfig F ARGS...\n");
		return 2;
	}
	if (kubeconfig_load(kubeconfig, NULL, &cfg, &kerr) < 0) {
		fprintf(stderr, "kube_driver: %s\n", kerr.message);
		return 2;
	}
	httpc_global_init();
	k = kube_new(&cfg, "kube-driver");
	kube_config_free(&cfg);
	if (k == NULL)
		return 1;
	if (strcmp(op, "event") == 0 && n >= 2) {
		struct kube_event ev = {
			.type = "Warning", .reason = "DrainTimeout", .action = "Drain",
			.note = "drain did not finish within 5m0s; the node goes back to running",
			.kind = a[0], .api_version = strcmp(a[0], "NodePool") == 0 ?
			    "stratos.sh/v1alpha1" : "v1",
			.name = a[1], .namespace = n >= 3 ? a[2] : NULL,
		};
		rc = kube_event_create(k, &ev, &err);
		print_result(op, rc, &err, NULL);
	} else if (strcmp(op, "bind") == 0 && n >= 3) {
		rc = kube_bind(k, a[0], a[1], a[2], &err);
		print_result(op, rc, &err, NULL);
	} else if (strcmp(op, "evict") == 0 && n >= 2) {
		rc = kube_evict(k, a[0], a[1], &err);
		print_result(op, rc, &err, json_pack("{s:i}", "retryAfter", (int)err.retry_after_s));
	} else if (strcmp(op, "status") == 0 && n >= 1) {
		char path[KUBE_PATH_MAX];
		json_t *patch = json_pack("{s:{s:i,s:{s:i,s:i}}}", "status", "observedGeneration", 1,
		    "nodes", "standby", 2, "total", 2), *out = NULL;
		rc = kube_path(path, &KUBE_NODEPOOLS, NULL, a[0], "status");
		if (rc == 0)
			rc = kube_patch(k, path, KUBE_PATCH_MERGE, patch, &out, &err);
		print_result(op, rc, &err, json_pack("{s:O?}", "status",
		    json_object_get(out, "status")));
		json_decref(patch);
		json_decref(out);
	} else if (strcmp(op, "patch-guarded") == 0 && n >= 3) {
		char path[KUBE_PATH_MAX];
		json_t *patch = json_loads(a[2], 0, NULL), *out = NULL;
		rc = kube_path(path, &KUBE_NODES, NULL, a[0], NULL);
		if (rc == 0)
			rc = kube_patch_guarded(k, path, a[1], patch, &out, &err);
		print_result(op, rc, &err, json_pack("{s:s?}", "rv", json_string_value(
		    json_object_get(json_object_get(out, "metadata"), "resourceVersion"))));
		json_decref(patch);
		json_decref(out);
	} else if (strcmp(op, "list") == 0 && n >= 1) {
		struct list_run lr = { .names = json_array(), .pause = n >= 3 ? a[2] : NULL };
		char *rv = NULL;
		rc = kube_list(k, a[0], n >= 2 && strcmp(a[1], "-") != 0 ? a[1] : NULL, NULL,
		    list_item, &lr, &rv, &err);
		print_result(op, rc, &err, json_pack("{s:s?,s:o}", "rv", rv, "names", lr.names));
		free(rv);
	} else if (strcmp(op, "can-i") == 0 && n >= 2) {
		bool allowed = false;
		rc = kube_check_access(k, a[0], "", a[1], NULL, NULL, &allowed, &err);
		print_result(op, rc, &err, json_pack("{s:b}", "allowed", allowed));
	} else {
		fprintf(stderr, "kube_driver: bad operation or arguments\n");
		kube_free(k);
		return 2;
	}
	kube_free(k);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "claim") == 0)
		return claim(argc - 2, argv + 2);
	if (argc >= 2)
		return rest(argc - 1, argv + 1);
	fprintf(stderr, "usage: kube_driver claim|event|bind|evict|status|can-i|patch-guarded|list ...\n");
	return 2;
}
