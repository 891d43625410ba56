/*
 * Test-only driver of the Kubernetes client for the integration tests: one
 * replica's claim of a standby node, made exactly as the extender will make
 * it (node cache, guarded JSON Patch, write-through). Not installed.
 *
 *   kube_driver claim --kubeconfig FILE --node NAME --identity ID --go FILE
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
	node_patch_set_label(&p, NODE_LABEL_STATE, "running");
	node_patch_set_annotation(&p, NODE_ANN_STARTED_FOR, identity);
	node_patch_set_annotation(&p, NODE_ANN_STARTED_AT, now);
	node_patch_remove_taint(&p, NODE_TAINT_STANDBY);
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
	struct cache *nodes;
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
		if (cache_synced(nodes))
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
	cache_free(nodes);
	kube_free(k);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "claim") == 0)
		return claim(argc - 2, argv + 2);
	fprintf(stderr, "usage: kube_driver claim ...\n");
	return 2;
}
