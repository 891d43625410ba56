/* Unit tests for pool_node_classify: what each kind of Node is to a pool, over a table of node sets. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test_util.h"
#include "stratos/nodestate.h"
#include "stratos/pool_node.h"
#include "stratos/timeutil.h"

#define NOW_MS 1796000000000LL   /* 2026-11-30T...Z */

static struct nodepool *
pool_ci(void)
{
	json_t *j = json_pack("{s:s,s:s,s:{s:s},s:{s:i,s:i,s:{s:{s:s,s:s},s:{s:s},s:[{s:s,s:s,s:s}],"
	    "s:s},s:{s:s}}}",
	    "apiVersion", "stratos.sh/v1alpha1", "kind", "NodePool", "metadata", "name", "ci",
	    "spec", "poolSize", 10, "minStandby", 2, "template", "nodeClassRef", "kind", "AWSNodeClass",
	    "name", "ci", "labels", "stratos.sh/pool", "ci", "startupTaints", "key",
	    "node.eks.amazonaws.com/not-ready", "value", "true", "effect", "NoSchedule",
	    "startupTaintRemoval", "WhenNetworkReady", "preWarm", "timeout", "10m");
	struct nodepool *p = NULL;

	assert_int_equal(nodepool_parse(j, NULL, &p), 0);
	assert_int_equal(p->nviolations, 0);
	json_decref(j);
	return p;
}

/* One row: a node built from these facts, and the kind it must be for pool ci. */
struct row {
	const char *what;
	const char *pool;            /* stratos.sh/pool label, NULL = none */
	const char *state;           /* stratos.sh/state label, NULL = none */
	const char *ready;           /* Ready condition status, NULL = absent */
	const char *network;         /* NetworkUnavailable status, NULL = absent */
	const char *taints;          /* comma-separated key:effect */
	long started_ago_s;          /* stratos.sh/started-at, -1 = absent */
	bool deleting;
	bool cordoned;
	enum pool_node_kind want;
};

static const struct row rows[] = {
	{ "usable pool node", "ci", "running", "True", "False", "", 30, false, false, POOL_NODE_USABLE },
	{ "usable, no network condition", "ci", "running", "True", NULL, "", -1, false, false,
	  POOL_NODE_USABLE },
	{ "booting: network not ready", "ci", "running", "True", "True", "", 5, false, false,
	  POOL_NODE_STARTING },
	{ "booting: startup taint left", "ci", "running", "True", "False",
	  "node.eks.amazonaws.com/not-ready:NoSchedule", 5, false, false, POOL_NODE_STARTING },
	{ "booting: not ready, unreachable", "ci", "running", "Unknown", NULL,
	  "node.kubernetes.io/unreachable:NoSchedule,node.kubernetes.io/unreachable:NoExecute", 3,
	  false, false, POOL_NODE_STARTING },
	{ "ready but not-ready taint still there", "ci", "running", "True", "False",
	  "node.kubernetes.io/not-ready:NoSchedule", 8, false, false, POOL_NODE_STARTING },
	{ "ready, only the NoExecute twin left", "ci", "running", "True", "False",
	  "node.kubernetes.io/unreachable:NoExecute", 8, false, false, POOL_NODE_USABLE },
	{ "started too long ago to wait for", "ci", "running", "False", NULL, "", 900, false, false,
	  POOL_NODE_NOT_READY },
	{ "running, never started by us, not ready", "ci", "running", "False", NULL, "", -1, false,
	  false, POOL_NODE_NOT_READY },
	{ "standby", "ci", "standby", "Unknown", NULL,
	  "stratos.sh/standby:NoExecute,node.kubernetes.io/unreachable:NoSchedule", -1, false, false,
	  POOL_NODE_STANDBY },
	{ "warming", "ci", "warmup", "True", "False", "", -1, false, false, POOL_NODE_WARMING },
	{ "stopping", "ci", "stopping", "True", "False", "", 60, false, true, POOL_NODE_STOPPING },
	{ "warmup failed", "ci", "standby", "Unknown", NULL, "stratos.sh/warmup-failed:NoSchedule", -1,
	  false, false, POOL_NODE_WARMUP_FAILED },
	{ "other pool", "gpu", "running", "True", "False", "", -1, false, false, POOL_NODE_OTHER_POOL },
	{ "pool label, no state yet", "ci", NULL, "True", "False", "", -1, false, false,
	  POOL_NODE_UNMANAGED },
	{ "being deleted", "ci", "running", "True", "False", "", 10, true, false, POOL_NODE_DELETING },
	{ "cordoned running node", "ci", "running", "True", "False", "", 10, false, true,
	  POOL_NODE_STARTING },
	{ "plain cluster node", NULL, NULL, "True", "False", "", -1, false, false, POOL_NODE_USABLE },
	{ "plain node, not ready", NULL, NULL, "False", NULL, "", -1, false, false,
	  POOL_NODE_NOT_READY },
	{ "plain node with the pool's startup taint", NULL, NULL, "True", NULL,
	  "node.eks.amazonaws.com/not-ready:NoSchedule", -1, false, false, POOL_NODE_NOT_READY },
	{ "plain node, shut down", NULL, NULL, "Unknown", NULL,
	  "node.cloudprovider.kubernetes.io/shutdown:NoSchedule", -1, false, false,
	  POOL_NODE_NOT_READY },
};

/* Readiness of a claimed node against its start (pool_node_ready_since_start). */
static const struct {
	const char *what;
	long started_ago_s;          /* -1: never claimed */
	long ready_ago_s;            /* Ready's lastTransitionTime */
	enum pool_node_kind want;
} ready_rows[] = {
	{ "claimed right after its stop: the old Ready is stale", 2, 600, POOL_NODE_STARTING },
	{ "claimed, Ready since the start", 20, 5, POOL_NODE_USABLE },
	{ "claimed, Ready in the start's own second", 3, 3, POOL_NODE_USABLE },
	{ "running, never claimed, Ready long ago", -1, 3600, POOL_NODE_USABLE },
	{ "claimed long ago, stale Ready past the warmup window", 900, 1200, POOL_NODE_NOT_READY },
};

static struct node_info *
node_of_ready(const struct row *r, long ready_ago_s)
{
	json_t *labels = json_object(), *ann = json_object(), *conds = json_array(), *taints = json_array();
	char copy[256], when[TIME_RFC3339_LEN], *save = NULL;
	json_t *j;
	struct node_info *n;
	int rc;

	if (r->pool != NULL)
		json_object_set_new(labels, NODESTATE_LABEL_POOL, json_string(r->pool));
	if (r->state != NULL)
		json_object_set_new(labels, NODESTATE_LABEL_STATE, json_string(r->state));
	if (r->started_ago_s >= 0) {
		time_format_rfc3339(NOW_MS - r->started_ago_s * 1000, when);
		json_object_set_new(ann, NODESTATE_ANN_STARTED_AT, json_string(when));
	}
	if (r->ready != NULL && ready_ago_s > 0) {
		time_format_rfc3339(NOW_MS - ready_ago_s * 1000, when);
		json_array_append_new(conds, json_pack("{s:s,s:s,s:s}", "type", "Ready", "status",
		    r->ready, "lastTransitionTime", when));
	} else if (r->ready != NULL) {
		json_array_append_new(conds, json_pack("{s:s,s:s}", "type", "Ready", "status", r->ready));
	}
	if (r->network != NULL)
		json_array_append_new(conds, json_pack("{s:s,s:s}", "type", "NetworkUnavailable",
		    "status", r->network));
	snprintf(copy, sizeof(copy), "%s", r->taints);
	for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		char *colon = strrchr(t, ':');
		*colon = '\0';
		json_array_append_new(taints, json_pack("{s:s,s:s}", "key", t, "effect", colon + 1));
	}
	j = json_pack("{s:{s:s,s:s,s:o,s:o},s:{s:o,s:b},s:{s:o,s:{s:s,s:s}}}",
	    "metadata", "name", "n", "resourceVersion", "7", "labels", labels, "annotations", ann,
	    "spec", "taints", taints, "unschedulable", r->cordoned,
	    "status", "conditions", conds, "allocatable", "cpu", "2", "pods", "29");
	if (r->deleting)
		json_object_set_new(json_object_get(j, "metadata"), "deletionTimestamp",
		    json_string("2026-11-30T00:00:00Z"));
	n = node_info_parse(j, &rc);
	json_decref(j);
	assert_non_null(n);
	return n;
}

static struct node_info *
node_of(const struct row *r)
{
	return node_of_ready(r, 0);
}

static void
test_classify_table(void **state)
{
	struct nodepool *ci = pool_ci();

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct node_info *n = node_of(&rows[i]);
		enum pool_node_kind got = pool_node_classify(n, ci, NOW_MS);

		if (got != rows[i].want)
			fail_msg("%s: got %s, want %s", rows[i].what, pool_node_kind_name(got),
			    pool_node_kind_name(rows[i].want));
		cache_obj_unref(&n->obj);
	}
	nodepool_free(ci);
}

static void
test_ready_since_start(void **state)
{
	struct nodepool *ci = pool_ci();

	(void)state;
	for (size_t i = 0; i < sizeof(ready_rows) / sizeof(ready_rows[0]); i++) {
		struct row r = { ready_rows[i].what, "ci", "running", "True", "False", "",
		    ready_rows[i].started_ago_s, false, false, 0 };
		struct node_info *n = node_of_ready(&r, ready_rows[i].ready_ago_s);
		enum pool_node_kind got = pool_node_classify(n, ci, NOW_MS);

		if (got != ready_rows[i].want)
			fail_msg("%s: got %s, want %s", ready_rows[i].what, pool_node_kind_name(got),
			    pool_node_kind_name(ready_rows[i].want));
		assert_int_equal(pool_node_ready_since_start(n), ready_rows[i].want == POOL_NODE_USABLE);
		cache_obj_unref(&n->obj);
	}
	nodepool_free(ci);
}

static void
test_reasons_are_the_contract(void **state)
{
	(void)state;
	/* DESIGN §6.3: the reason strings users and tests match. */
	assert_string_equal(pool_node_reason(POOL_NODE_STANDBY), "stratos: node is standby");
	assert_string_equal(pool_node_reason(POOL_NODE_STARTING), "stratos: node is starting");
	assert_string_equal(pool_node_reason(POOL_NODE_WARMING), "stratos: node is warming up");
	assert_string_equal(pool_node_reason(POOL_NODE_STOPPING), "stratos: node is stopping");
	assert_string_equal(pool_node_reason(POOL_NODE_NOT_READY), "stratos: node is not ready");
	assert_string_equal(pool_node_reason(POOL_NODE_USABLE), "");
	for (int k = 1; k < POOL_NODE_KINDS; k++)
		assert_true(strncmp(pool_node_reason((enum pool_node_kind)k), "stratos: ", 9) == 0);
}

static void
test_startup_taint_removal_modes(void **state)
{
	struct nodepool *ci = pool_ci();
	struct row r = { "x", "ci", "running", "True", "True", "", 5, false, false, 0 };
	struct node_info *n = node_of(&r);

	(void)state;
	/* WhenNetworkReady: Ready is not enough while NetworkUnavailable is True. */
	assert_false(pool_node_startup_taints_removable(n, ci));
	ci->startup_taint_removal = NODEPOOL_REMOVAL_WHEN_READY;
	assert_true(pool_node_startup_taints_removable(n, ci));
	ci->startup_taint_removal = NODEPOOL_REMOVAL_NEVER;
	assert_false(pool_node_startup_taints_removable(n, ci));
	cache_obj_unref(&n->obj);
	/* A Ready from before the stop never lets them go, whatever the mode. */
	struct row stale = { "y", "ci", "running", "True", "False", "", 2, false, false, 0 };
	n = node_of_ready(&stale, 120);
	ci->startup_taint_removal = NODEPOOL_REMOVAL_WHEN_READY;
	assert_false(pool_node_startup_taints_removable(n, ci));
	ci->startup_taint_removal = NODEPOOL_REMOVAL_WHEN_NETWORK_READY;
	assert_false(pool_node_startup_taints_removable(n, ci));
	cache_obj_unref(&n->obj);
	nodepool_free(ci);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify_table),
		cmocka_unit_test(test_ready_since_start),
		cmocka_unit_test(test_reasons_are_the_contract),
		cmocka_unit_test(test_startup_taint_removal_modes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
