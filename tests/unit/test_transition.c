/* Unit tests for the controller's Node transitions: each one patch that applies to the cached node and leaves it in the state of DESIGN §4. */
#include <errno.h>
#include <string.h>

#include "test_util.h"
#include "patch_apply.h"
#include "stratos/nodestate.h"
#include "stratos/timeutil.h"
#include "stratos/transition.h"

#define NOW_MS 1796000000000LL

static struct nodepool *
pool_ci(void)
{
	json_t *j = J("{'apiVersion':'stratos.sh/v1alpha1','kind':'NodePool','metadata':{'name':'ci'},"
	    "'spec':{'poolSize':3,'minStandby':1,'template':{'nodeClassRef':{'kind':'AWSNodeClass',"
	    "'name':'ci'},'labels':{'stratos.sh/pool':'ci','role':'ci'},'startupTaints':[{'key':"
	    "'node.eks.amazonaws.com/not-ready','value':'true','effect':'NoSchedule'}]}}}");
	struct nodepool *p = NULL;

	assert_int_equal(nodepool_parse(j, NULL, &p), 0);
	json_decref(j);
	return p;
}

/* Applies the transition to the Node object and returns the result (and the parsed node). */
static json_t *
apply(json_t *node, const struct nodepool *pool, enum transition t,
    const struct transition_args *args)
{
	int rc;
	struct node_info *n = node_info_parse(node, &rc);
	json_t *patch, *out;

	assert_non_null(n);
	size_t failed = 0;

	patch = transition_build(n, pool, t, NOW_MS, args, &rc);
	assert_non_null(patch);
	out = json_deep_copy(node);
	if (patch_apply(out, patch, &failed) != 0)
		fail_msg("%s: operation %zu of the patch does not apply", transition_name(t), failed);
	json_decref(patch);
	cache_obj_unref(&n->obj);
	return out;
}

static const char *
label(json_t *node, const char *key)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(node, "metadata"),
	    "labels"), key));
}

static const char *
ann(json_t *node, const char *key)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(node, "metadata"),
	    "annotations"), key));
}

static int
taints(json_t *node, const char *key, const char *effect)
{
	size_t i;
	json_t *t;
	int n = 0;

	json_array_foreach(json_object_get(json_object_get(node, "spec"), "taints"), i, t)
		if (strcmp(json_string_value(json_object_get(t, "key")), key) == 0 &&
		    (effect == NULL || strcmp(json_string_value(json_object_get(t, "effect")), effect) == 0))
			n++;
	return n;
}

static void
test_life_of_a_node(void **state)
{
	struct nodepool *ci = pool_ci();
	struct transition_args adopt = { .instance_id = "i-0abc", .since_ms = NOW_MS - 60000 };
	struct transition_args empty = { .since_ms = NOW_MS };
	/* As the kubelet registered it: no labels of ours, no annotations at all, a lifecycle taint. */
	json_t *node = J("{'metadata':{'name':'ip-10-0-0-4','resourceVersion':'5','labels':"
	    "{'kubernetes.io/hostname':'ip-10-0-0-4'}},'spec':{'providerID':'aws:///us-east-1a/i-0abc',"
	    "'taints':[{'key':'node.kubernetes.io/not-ready','effect':'NoSchedule'}]},"
	    "'status':{'allocatable':{'cpu':'2'}}}");
	json_t *next;
	char since[TIME_RFC3339_LEN];

	(void)state;
	next = apply(node, ci, TRANSITION_ADOPT, &adopt);
	json_decref(node);
	node = next;
	assert_string_equal(label(node, NODESTATE_LABEL_POOL), "ci");
	assert_string_equal(label(node, NODESTATE_LABEL_STATE), "warmup");
	assert_string_equal(label(node, NODESTATE_LABEL_INSTANCE_ID), "i-0abc");
	assert_string_equal(label(node, "role"), "ci");
	time_format_rfc3339(NOW_MS - 60000, since);
	assert_string_equal(ann(node, NODESTATE_ANN_STATE_SINCE), since);       /* the launch */
	assert_int_equal(taints(node, "node.eks.amazonaws.com/not-ready", "NoSchedule"), 1);
	assert_int_equal(taints(node, "node.kubernetes.io/not-ready", NULL), 1); /* not ours: kept */

	next = apply(node, ci, TRANSITION_WARMUP_DONE, NULL);
	json_decref(node);
	node = next;
	assert_non_null(ann(node, NODESTATE_ANN_WARMUP_DONE));

	next = apply(node, ci, TRANSITION_STANDBY, NULL);
	json_decref(node);
	node = next;
	assert_string_equal(label(node, NODESTATE_LABEL_STATE), "standby");
	assert_null(ann(node, NODESTATE_ANN_WARMUP_DONE));
	assert_int_equal(taints(node, NODESTATE_TAINT_STANDBY, "NoExecute"), 1);
	assert_int_equal(taints(node, "node.eks.amazonaws.com/not-ready", "NoSchedule"), 1);

	/* The extender's claim is not ours; a running node gets empty-since, then stopping. */
	json_object_set_new(json_object_get(json_object_get(node, "metadata"), "labels"),
	    NODESTATE_LABEL_STATE, json_string("running"));
	next = apply(node, ci, TRANSITION_REMOVE_STARTUP_TAINTS, NULL);
	json_decref(node);
	node = next;
	assert_int_equal(taints(node, "node.eks.amazonaws.com/not-ready", NULL), 0);
	next = apply(node, ci, TRANSITION_EMPTY_SINCE, &empty);
	json_decref(node);
	node = next;
	assert_non_null(ann(node, NODESTATE_ANN_EMPTY_SINCE));
	next = apply(node, ci, TRANSITION_STOPPING, NULL);
	json_decref(node);
	node = next;
	assert_string_equal(label(node, NODESTATE_LABEL_STATE), "stopping");
	assert_true(json_is_true(json_object_get(json_object_get(node, "spec"), "unschedulable")));
	assert_null(ann(node, NODESTATE_ANN_EMPTY_SINCE));        /* gone on every transition */

	/* Drain timeout: running and uncordoned again. */
	json_t *timed = apply(node, ci, TRANSITION_DRAIN_TIMEOUT, NULL);
	assert_string_equal(label(timed, NODESTATE_LABEL_STATE), "running");
	assert_false(json_is_true(json_object_get(json_object_get(timed, "spec"), "unschedulable")));
	json_decref(timed);

	/* Stopped: standby, uncordoned, startup taints back. */
	next = apply(node, ci, TRANSITION_STANDBY, NULL);
	json_decref(node);
	node = next;
	assert_string_equal(label(node, NODESTATE_LABEL_STATE), "standby");
	assert_false(json_is_true(json_object_get(json_object_get(node, "spec"), "unschedulable")));
	assert_int_equal(taints(node, "node.eks.amazonaws.com/not-ready", "NoSchedule"), 1);
	assert_int_equal(taints(node, NODESTATE_TAINT_STANDBY, NULL), 1);
	json_decref(node);
	nodepool_free(ci);
}

static void
test_warmup_failed_and_rewarm(void **state)
{
	struct nodepool *ci = pool_ci();
	json_t *node = J("{'metadata':{'name':'n','resourceVersion':'5','labels':{'stratos.sh/pool':'ci',"
	    "'stratos.sh/state':'warmup'},'annotations':{'stratos.sh/warmup-done':'2026-12-06T00:00:00Z'}},"
	    "'spec':{},'status':{}}");
	json_t *failed, *again;

	(void)state;
	failed = apply(node, ci, TRANSITION_WARMUP_FAILED, NULL);
	assert_int_equal(taints(failed, NODESTATE_TAINT_WARMUP_FAILED, "NoSchedule"), 1);
	assert_string_equal(label(failed, NODESTATE_LABEL_STATE), "warmup");
	assert_null(ann(failed, NODESTATE_ANN_WARMUP_DONE));
	again = apply(failed, ci, TRANSITION_REWARM, NULL);
	assert_int_equal(taints(again, NODESTATE_TAINT_WARMUP_FAILED, NULL), 0);
	assert_int_equal(taints(again, "node.eks.amazonaws.com/not-ready", NULL), 1);
	json_decref(node);
	json_decref(failed);
	json_decref(again);
	nodepool_free(ci);
}

static void
test_nothing_to_do_is_an_empty_patch(void **state)
{
	struct nodepool *ci = pool_ci();
	json_t *node = J("{'metadata':{'name':'n','resourceVersion':'5','labels':{'stratos.sh/pool':'ci',"
	    "'stratos.sh/state':'running'}},'spec':{},'status':{}}");
	struct transition_args none = { .since_ms = 0 };
	int rc;
	struct node_info *n = node_info_parse(node, &rc);
	json_t *p;

	(void)state;
	/* No startup taint left, no empty-since to remove. */
	p = transition_build(n, ci, TRANSITION_REMOVE_STARTUP_TAINTS, NOW_MS, NULL, &rc);
	assert_int_equal(json_array_size(p), 0);
	json_decref(p);
	p = transition_build(n, ci, TRANSITION_EMPTY_SINCE, NOW_MS, &none, &rc);
	assert_int_equal(json_array_size(p), 0);
	json_decref(p);
	/* Adoption without an instance id is refused. */
	assert_null(transition_build(n, ci, TRANSITION_ADOPT, NOW_MS, NULL, &rc));
	assert_int_equal(rc, -EINVAL);
	cache_obj_unref(&n->obj);
	json_decref(node);
	nodepool_free(ci);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_life_of_a_node),
		cmocka_unit_test(test_warmup_failed_and_rewarm),
		cmocka_unit_test(test_nothing_to_do_is_an_empty_patch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
