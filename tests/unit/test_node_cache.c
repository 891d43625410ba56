/* Unit tests for Node parsing and the generic cache: index, write-through ordering, notifications. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"
#include "stratos/jsonprune.h"
#include "stratos/node_cache.h"

static void
test_standby_fixture(void **state)
{
	json_t *nodes = test_load_json(FIXTURE("extender/nodes-standby.json"));
	struct node_info *n;
	int rc;

	(void)state;
	n = node_info_parse(json_array_get(nodes, 0), &rc);
	assert_non_null(n);
	assert_string_equal(node_info_name(n), "ip-10-0-1-11.ec2.internal");
	assert_string_equal(n->uid, "node-uid-i-0a1b2c3d4e5f60011");
	assert_int_equal(n->obj.rv, 1000011);
	assert_string_equal(node_info_pool(n), "ci-runners");
	assert_string_equal(n->state, "standby");
	assert_string_equal(n->instance_id, "i-0a1b2c3d4e5f60011");
	assert_string_equal(n->zone, "us-east-1a");
	assert_string_equal(n->instance_type, "m5.2xlarge");
	assert_string_equal(n->provider_id, "aws:///us-east-1a/i-0a1b2c3d4e5f60011");
	assert_int_equal(n->state_since_ms, 1795842600000LL);
	assert_int_equal(n->nannotations, 1);          /* only stratos.sh/ annotations */
	assert_null(node_info_annotation(n, "node.alpha.kubernetes.io/ttl"));
	assert_null(n->reservations);
	assert_int_equal(n->ntaints, 5);
	assert_true(node_info_has_taint(n, NODESTATE_TAINT_STANDBY, KUBE_EFFECT_NO_EXECUTE));
	assert_false(node_info_has_taint(n, NODESTATE_TAINT_STANDBY, KUBE_EFFECT_NO_SCHEDULE));
	assert_true(node_info_has_taint(n, "node.kubernetes.io/unreachable", KUBE_EFFECT_ANY));
	assert_int_equal(n->allocatable.cpu_milli, 7910);
	assert_int_equal(n->allocatable.memory, 31369588LL * 1024);
	assert_int_equal(n->allocatable.pods, 58);
	assert_int_equal(n->allocatable.ephemeral, 192188443124LL);
	assert_int_equal(n->ready, KUBE_COND_UNKNOWN);
	assert_true(node_info_network_ready(n));       /* no network condition at all */
	assert_string_equal(node_info_label(n, "kubernetes.io/arch"), "amd64");
	assert_string_equal(node_info_label(n, "node-role.kubernetes.io/ci"), "");
	assert_null(node_info_label(n, "nope"));
	cache_obj_unref(&n->obj);
	json_decref(nodes);
}

static void
test_extender_nodes_and_selection(void **state)
{
	json_t *args = test_load_json(FIXTURE("extender/filter-args-nodes.json"));
	json_t *items = json_object_get(json_object_get(args, "Nodes"), "items");
	struct pod_info *p;
	int rc;

	(void)state;
	p = pod_info_parse(json_object_get(args, "Pod"), &rc);
	assert_non_null(p);
	assert_true(json_array_size(items) >= 2);
	for (size_t i = 0; i < json_array_size(items); i++) {
		struct node_info *n = node_info_parse(json_array_get(items, i), &rc);
		assert_non_null(n);
		/* The pod selects ci-runners nodes and tolerates their standby taint. */
		assert_true(node_info_selected_by(n, p));
		assert_true(pod_info_tolerates(p, NODESTATE_TAINT_STANDBY, "true", KUBE_EFFECT_NO_EXECUTE));
		cache_obj_unref(&n->obj);
	}
	cache_obj_unref(&p->obj);
	json_decref(args);
}

static void
test_conditions_and_network(void **state)
{
	json_t *j = json_loads("{\"metadata\":{\"name\":\"n\",\"resourceVersion\":\"3\","
	    "\"annotations\":{\"stratos.sh/reservations\":\"[{\\\"uid\\\":\\\"u\\\"}]\","
	    "\"stratos.sh/last-workload\":\"ci/Deployment/runner\","
	    "\"stratos.sh/started-at\":\"2026-11-28T07:00:01.5Z\"}},"
	    "\"spec\":{\"unschedulable\":true},\"status\":{\"conditions\":["
	    "{\"type\":\"Ready\",\"status\":\"True\",\"lastTransitionTime\":\"2026-11-28T07:00:20Z\"},"
	    "{\"type\":\"NetworkUnavailable\",\"status\":\"True\"}],"
	    "\"allocatable\":{\"cpu\":\"4\",\"nvidia.com/gpu\":\"1\",\"hugepages-2Mi\":\"0\"}}}",
	    0, NULL);
	struct node_info *n;
	int rc;

	(void)state;
	n = node_info_parse(j, &rc);
	assert_non_null(n);
	assert_null(node_info_pool(n));
	assert_true(n->unschedulable);
	assert_int_equal(n->ready, KUBE_COND_TRUE);
	assert_int_equal(n->ready_since_ms, 1795849220000LL);
	assert_false(node_info_network_ready(n));
	assert_string_equal(n->reservations, "[{\"uid\":\"u\"}]");
	assert_string_equal(n->last_workload, "ci/Deployment/runner");
	assert_int_equal(n->started_at_ms, 1795849201500LL);
	assert_int_equal(resources_ext_get(&n->allocatable, "nvidia.com/gpu"), 1);
	assert_int_equal(n->allocatable.next, 2);
	cache_obj_unref(&n->obj);
	/* EKS reports NetworkingReady instead. */
	json_array_append_new(json_object_get(json_object_get(j, "status"), "conditions"),
	    json_pack("{s:s,s:s}", "type", "NetworkingReady", "status", "True"));
	n = node_info_parse(j, &rc);
	assert_true(node_info_network_ready(n));
	cache_obj_unref(&n->obj);
	/* Bad taint effect or allocatable quantity: not cacheable. */
	json_object_set_new(json_object_get(j, "spec"), "taints",
	    json_pack("[{s:s,s:s}]", "key", "k", "effect", "Sometimes"));
	assert_null(node_info_parse(j, &rc));
	assert_int_equal(rc, -EINVAL);
	json_decref(j);
}

static json_t *
node_json(const char *name, const char *pool, const char *state, unsigned rv)
{
	char rvs[16];

	snprintf(rvs, sizeof(rvs), "%u", rv);
	return json_pack("{s:{s:s,s:s,s:{s:s,s:s}},s:{s:{s:s,s:s}}}", "metadata", "name", name,
	    "resourceVersion", rvs, "labels", NODESTATE_LABEL_POOL, pool, NODESTATE_LABEL_STATE, state,
	    "status", "allocatable", "cpu", "2", "pods", "10");
}

static int
count_pool(void *ctx, const struct node_info *n)
{
	int *c = ctx;

	(void)n;
	(*c)++;
	return 0;
}

static void
test_cache_write_through_and_index(void **state)
{
	struct node_cache *nc = node_cache_new();
	struct cache *c = node_cache_base(nc);
	struct cache_sub *sub = cache_sub_new(4);
	struct cache_event ev;
	struct node_info *n;
	json_t *j;
	int count = 0;

	(void)state;
	assert_int_equal(cache_subscribe(c, sub), 0);
	uint64_t g0 = cache_generation(c);
	for (unsigned i = 0; i < 300; i++) {
		char name[32];
		snprintf(name, sizeof(name), "node-%03u", i);
		j = node_json(name, i % 3 == 0 ? "gpu" : "ci", "standby", 10);
		assert_int_equal(cache_apply(c, j), 1);
		json_decref(j);
	}
	assert_int_equal(cache_count(c), 300);
	assert_true(cache_generation(c) >= g0 + 300);
	assert_int_equal(node_cache_foreach(nc, "gpu", count_pool, &count), 100);
	assert_int_equal(count, 100);
	assert_int_equal(node_cache_foreach(nc, "ci", count_pool, &count), 200);
	assert_int_equal(node_cache_foreach(nc, "none", count_pool, &count), 0);
	assert_int_equal(node_cache_foreach(nc, NULL, count_pool, &count), 300);

	/*
	 * 300 adds overflowed the 4-slot queue: 4 events, then one RESYNC (re-read
	 * the cache), and nothing more until the consumer has taken it.
	 */
	for (int i = 0; i < 4; i++) {
		assert_int_equal(cache_sub_next(sub, &ev, 0), 0);
		assert_int_equal(ev.change, CACHE_ADDED);
		assert_non_null(ev.new_obj);
		cache_event_release(&ev);
	}
	assert_int_equal(cache_sub_next(sub, &ev, 0), 0);
	assert_int_equal(ev.change, CACHE_RESYNC);
	assert_int_equal(cache_sub_next(sub, &ev, 0), -ETIMEDOUT);

	/* A newer version moves the node to another pool; an older one never rolls it back. */
	j = node_json("node-001", "gpu", "running", 12);
	assert_int_equal(cache_apply(c, j), 1);
	json_decref(j);
	j = node_json("node-001", "ci", "standby", 11);
	assert_int_equal(cache_apply(c, j), 0);
	json_decref(j);
	n = node_cache_get(nc, "node-001");
	assert_non_null(n);
	assert_string_equal(n->state, "running");
	assert_int_equal(n->obj.rv, 12);
	count = 0;
	node_cache_foreach(nc, "gpu", count_pool, &count);
	assert_int_equal(count, 101);

	/* A held reference outlives removal from the cache. */
	assert_int_equal(cache_remove(c, "node-001", 11), 0);      /* cache holds 12 > 11 */
	assert_int_equal(cache_remove(c, "node-001", 0), 1);
	assert_null(node_cache_get(nc, "node-001"));
	assert_string_equal(node_info_name(n), "node-001");
	cache_obj_unref(&n->obj);
	assert_int_equal(cache_count(c), 299);

	/* The MODIFIED event, queued after the consumer took the RESYNC. */
	assert_int_equal(cache_sub_next(sub, &ev, 0), 0);
	assert_int_equal(ev.change, CACHE_MODIFIED);
	assert_int_equal(ev.old_obj->rv, 10);
	assert_int_equal(ev.new_obj->rv, 12);
	cache_event_release(&ev);
	assert_int_equal(cache_sub_next(sub, &ev, 0), 0);
	assert_int_equal(ev.change, CACHE_DELETED);
	assert_null(ev.new_obj);
	cache_event_release(&ev);
	assert_int_equal(cache_sub_next(sub, &ev, 10), -ETIMEDOUT);

	struct cache_obj **objs;
	long k = cache_snapshot(c, "gpu", &objs);
	assert_int_equal(k, 100);
	cache_objs_free(objs, (size_t)k);

	json_t *dbg = cache_debug_json("nodes", 0);
	assert_non_null(dbg);
	assert_int_equal(json_array_size(json_object_get(dbg, "objects")), 299);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(dbg,
	    "objects"), 0), "key")), "node-000");
	assert_false(json_is_true(json_object_get(dbg, "synced")));
	json_decref(dbg);

	cache_unsubscribe(c, sub);
	cache_sub_close(sub);
	assert_int_equal(cache_sub_next(sub, &ev, -1), -ECANCELED);
	cache_sub_free(sub);
	cache_free(c);
}

struct waiter {
	struct cache *c;
	uint64_t seen;
	uint64_t got;
};

static void *
wait_thread(void *arg)
{
	struct waiter *w = arg;

	w->got = cache_wait(w->c, w->seen, 5000);
	return NULL;
}

static void
test_cache_wait_wakes(void **state)
{
	struct cache *c = node_cache_base(node_cache_new());
	struct waiter w = { .c = c };
	pthread_t t;
	json_t *j;

	(void)state;
	w.seen = cache_generation(c);
	pthread_create(&t, NULL, wait_thread, &w);
	usleep(50 * 1000);
	j = node_json("n", "p", "warmup", 1);
	cache_apply(c, j);
	json_decref(j);
	pthread_join(t, NULL);
	assert_true(w.got > w.seen);
	assert_int_equal(cache_wait(c, w.got, 20), w.got);         /* times out, unchanged */
	cache_free(c);
}

static void
test_transition_patch(void **state)
{
	json_t *nodes = test_load_json(FIXTURE("extender/nodes-standby.json"));
	json_t *bare = json_loads("{\"metadata\":{\"name\":\"b\",\"resourceVersion\":\"1\"},"
	    "\"spec\":{}}", 0, NULL);
	struct node_patch p;
	struct node_info *n, *b;
	json_t *patch;
	char *text;
	int rc;

	(void)state;
	n = node_info_parse(json_array_get(nodes, 0), &rc);
	assert_non_null(n);
	/* The claim of DESIGN §6.3 against a node that has labels, annotations and taints. */
	node_patch_init(&p, n);
	node_patch_set_label(&p, NODESTATE_LABEL_STATE, "running");
	node_patch_set_annotation(&p, NODESTATE_ANN_STARTED_FOR, "ci/runner-1");
	node_patch_remove_annotation(&p, NODESTATE_ANN_EMPTY_SINCE);     /* absent: no op */
	node_patch_remove_annotation(&p, NODESTATE_ANN_STATE_SINCE);
	node_patch_remove_label(&p, "not-there");
	node_patch_remove_taint(&p, NODESTATE_TAINT_STANDBY);
	node_patch_add_taint(&p, "node.kubernetes.io/unreachable", NULL, KUBE_EFFECT_NO_SCHEDULE);
	node_patch_set_unschedulable(&p, false);                      /* unchanged: no op */
	patch = node_patch_take(&p, &rc);
	assert_int_equal(rc, 0);
	text = json_dumps(patch, JSON_COMPACT);
	assert_string_equal(text,
	    "[{\"op\":\"add\",\"path\":\"/metadata/labels/stratos.sh~1state\",\"value\":\"running\"},"
	    "{\"op\":\"add\",\"path\":\"/metadata/annotations/stratos.sh~1started-for\","
	    "\"value\":\"ci/runner-1\"},"
	    "{\"op\":\"remove\",\"path\":\"/metadata/annotations/stratos.sh~1state-since\"},"
	    "{\"op\":\"add\",\"path\":\"/spec/taints\",\"value\":["
	    "{\"key\":\"node.kubernetes.io/unreachable\",\"effect\":\"NoSchedule\","
	    "\"timeAdded\":\"2026-11-28T05:10:00Z\"},"
	    "{\"key\":\"node.kubernetes.io/unreachable\",\"effect\":\"NoExecute\","
	    "\"timeAdded\":\"2026-11-28T05:10:00Z\"},"
	    "{\"key\":\"node.cloudprovider.kubernetes.io/shutdown\",\"effect\":\"NoSchedule\"},"
	    "{\"key\":\"node.eks.amazonaws.com/not-ready\",\"effect\":\"NoSchedule\","
	    "\"value\":\"true\"}]}]");
	free(text);
	json_decref(patch);

	/* A node without labels or annotations gets whole maps, never "add" under a missing parent. */
	b = node_info_parse(bare, &rc);
	assert_non_null(b);
	node_patch_init(&p, b);
	node_patch_set_label(&p, NODESTATE_LABEL_POOL, "gpu");
	node_patch_set_label(&p, NODESTATE_LABEL_STATE, "warmup");
	node_patch_set_annotation(&p, NODESTATE_ANN_STATE_SINCE, "2026-11-28T07:00:00Z");
	node_patch_add_taint(&p, NODESTATE_TAINT_STANDBY, "true", KUBE_EFFECT_NO_EXECUTE);
	node_patch_set_unschedulable(&p, true);
	patch = node_patch_take(&p, &rc);
	text = json_dumps(patch, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text,
	    "[{\"op\":\"add\",\"path\":\"/spec/unschedulable\",\"value\":true},"
	    "{\"op\":\"add\",\"path\":\"/metadata/labels\",\"value\":"
	    "{\"stratos.sh/pool\":\"gpu\",\"stratos.sh/state\":\"warmup\"}},"
	    "{\"op\":\"add\",\"path\":\"/metadata/annotations\",\"value\":"
	    "{\"stratos.sh/state-since\":\"2026-11-28T07:00:00Z\"}},"
	    "{\"op\":\"add\",\"path\":\"/spec/taints\",\"value\":"
	    "[{\"effect\":\"NoExecute\",\"key\":\"stratos.sh/standby\",\"value\":\"true\"}]}]");
	free(text);
	json_decref(patch);

	/* Nothing to change: an empty patch. */
	node_patch_init(&p, n);
	node_patch_add_taint(&p, NODESTATE_TAINT_STANDBY, "true", KUBE_EFFECT_NO_EXECUTE);
	patch = node_patch_take(&p, &rc);
	assert_int_equal(json_array_size(patch), 0);
	json_decref(patch);

	cache_obj_unref(&n->obj);
	cache_obj_unref(&b->obj);
	json_decref(bare);
	json_decref(nodes);
}

static void
describe(const struct node_info *n, char *out, size_t len)
{
	int k = snprintf(out, len, "%s|%s|%llu|%s|%s|%s|%s|%s|%s|%lld|%lld|%lld|%s|%s|%s|%d|%d%d%d|"
	    "%lld|%lld|%lld|cpu=%lld mem=%lld eph=%lld pods=%lld|",
	    node_info_name(n), n->uid, (unsigned long long)n->obj.rv, node_info_pool(n) ? node_info_pool(n) : "-",
	    n->state ? n->state : "-", n->instance_id ? n->instance_id : "-", n->zone ? n->zone : "-",
	    n->instance_type ? n->instance_type : "-", n->provider_id ? n->provider_id : "-",
	    (long long)n->state_since_ms, (long long)n->started_at_ms, (long long)n->empty_since_ms,
	    n->started_for ? n->started_for : "-", n->last_workload ? n->last_workload : "-",
	    n->reservations ? n->reservations : "-", n->unschedulable, n->ready,
	    n->network_unavailable, n->networking_ready, (long long)n->ready_since_ms,
	    (long long)n->created_ms, (long long)n->deleted_ms,
	    (long long)n->allocatable.cpu_milli, (long long)n->allocatable.memory,
	    (long long)n->allocatable.ephemeral, (long long)n->allocatable.pods);
	for (uint32_t i = 0; i < 2 * n->nlabels && k < (int)len; i++)
		k += snprintf(out + k, len - (size_t)k, "%s,", n->labels[i]);
	for (uint32_t i = 0; i < 2 * n->nannotations && k < (int)len; i++)
		k += snprintf(out + k, len - (size_t)k, "%s,", n->annotations[i]);
	for (uint32_t i = 0; i < n->ntaints && k < (int)len; i++)
		k += snprintf(out + k, len - (size_t)k, "%s=%s:%d@%lld,", n->taints[i].key,
		    n->taints[i].value ? n->taints[i].value : "", n->taints[i].effect,
		    (long long)n->taints[i].added_ms);
	for (uint32_t i = 0; i < n->allocatable.next && k < (int)len; i++)
		k += snprintf(out + k, len - (size_t)k, "%s=%lld,", n->allocatable.ext[i].name,
		    (long long)n->allocatable.ext[i].value);
}

/* The cache parses pruned text: it must give exactly what the whole Node gives. */
static void
test_pruned_parse_is_identical(void **state)
{
	json_t *standby = test_load_json(FIXTURE("extender/nodes-standby.json"));
	json_t *full = test_load_json(FIXTURE("kube/node-full.json"));
	json_t *nodes[] = { json_array_get(standby, 0), json_array_get(standby, 1), full };
	struct jsonprune *pr = jsonprune_new(NODE_CACHE_FIELDS, NULL);

	(void)state;
	assert_non_null(pr);
	for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
		char *text = json_dumps(nodes[i], JSON_COMPACT), whole[8192], cut[8192];
		struct buf out;
		struct node_info *a, *b;
		int rc;

		buf_init(&out, 1 << 20);
		assert_int_equal(jsonprune_apply(pr, text, strlen(text), &out), 0);
		json_t *pruned = json_loadb(out.data, out.len, 0, NULL);
		assert_non_null(pruned);
		a = node_info_parse(nodes[i], &rc);
		b = node_info_parse(pruned, &rc);
		assert_non_null(a);
		assert_non_null(b);
		describe(a, whole, sizeof(whole));
		describe(b, cut, sizeof(cut));
		assert_string_equal(whole, cut);
		if (nodes[i] == full) {
			/* Ten images and the node info are most of a Node's text. */
			assert_true(out.len * 2 < strlen(text));
			assert_null(strstr(out.data, "images"));
			assert_true(a->unschedulable);
			assert_true(node_info_network_ready(a));
			assert_non_null(a->reservations);
			assert_true(a->empty_since_ms > 0 && a->deleted_ms > 0);
			assert_int_equal(resources_ext_get(&a->allocatable, "nvidia.com/gpu"), 1);
		}
		cache_obj_unref(&a->obj);
		cache_obj_unref(&b->obj);
		json_decref(pruned);
		buf_free(&out);
		free(text);
	}
	jsonprune_free(pr);
	json_decref(standby);
	json_decref(full);
}

/* Reservations are parsed once, when the node is cached (the extender reads them on every call). */
static void
test_reservations_parsed_with_the_node(void **state)
{
	const char *ok = "[{\"uid\":\"u1\",\"pod\":\"ci/a\",\"requests\":{\"cpu\":\"500m\"},"
	    "\"since\":\"2026-11-28T07:00:01Z\"}]";
	json_t *j = json_pack("{s:{s:s,s:s,s:{s:s}},s:{s:{s:s,s:s}}}", "metadata", "name", "n",
	    "resourceVersion", "3", "annotations", NODESTATE_ANN_RESERVATIONS, ok,
	    "status", "allocatable", "cpu", "2", "pods", "10");
	struct node_info *n;
	int rc;

	(void)state;
	n = node_info_parse(j, &rc);
	assert_non_null(n);
	assert_non_null(n->reserved);
	assert_int_equal(n->reserved->n, 1);
	assert_string_equal(n->reserved->item[0].pod, "ci/a");
	assert_int_equal(n->reserved->item[0].requests.cpu_milli, 500);
	assert_false(n->reservations_invalid);
	cache_obj_unref(&n->obj);
	/* Unreadable: cached all the same, with no reservations and the flag set. */
	json_object_set_new(json_object_get(json_object_get(j, "metadata"), "annotations"),
	    NODESTATE_ANN_RESERVATIONS, json_string("[{\"uid\":1}]"));
	n = node_info_parse(j, &rc);
	assert_non_null(n);
	assert_null(n->reserved);
	assert_true(n->reservations_invalid);
	cache_obj_unref(&n->obj);
	json_decref(j);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reservations_parsed_with_the_node),
		cmocka_unit_test(test_standby_fixture),
		cmocka_unit_test(test_extender_nodes_and_selection),
		cmocka_unit_test(test_conditions_and_network),
		cmocka_unit_test(test_cache_write_through_and_index),
		cmocka_unit_test(test_cache_wait_wakes),
		cmocka_unit_test(test_transition_patch),
		cmocka_unit_test(test_pruned_parse_is_identical),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
