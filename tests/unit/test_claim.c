/* Unit tests for claim: verifying pods, claiming and starting standby nodes with rollback, reservations, against a scripted API server and EC2. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fake_cluster.h"
#include "stratos/placement.h"
#include "stratos/timeutil.h"

/* Claims among cands (names) for pod, as the extender does. */
static int
start(struct pod_info *pod, const char *const *names, size_t n, bool stop_on_conflict,
    struct claim_result *res)
{
	const struct node_info *cands[8];
	const struct pod_info *pods[1] = { pod };
	struct claim_start_req req = {
		.pool = "ci", .pods = pods, .npods = 1, .candidates = cands, .ncandidates = n,
		.start_budget_ms = ctx.start_budget_ms, .path = "inline",
		.stop_on_conflict = stop_on_conflict,
	};
	int rc;

	for (size_t i = 0; i < n; i++)
		assert_non_null(cands[i] = node_cache_get(ctx.nodes, names[i]));
	rc = claim_start(&ctx, &req, res);
	for (size_t i = 0; i < n; i++)
		cache_obj_unref((struct cache_obj *)&cands[i]->obj);
	return rc;
}

/* ---- verifying ---- */

static void
test_verify_pod(void **state)
{
	struct pod_info *p;
	char why[256];
	json_t *j;

	(void)state;
	put_pod(pool_pod("cached", "u-cached", "1"), true);
	put_pod(pool_pod("uncached", "u-uncached", "1"), false);
	j = pool_pod("bound", "u-bound", "1");
	json_object_set_new(json_object_get(j, "spec"), "nodeName", json_string("n1"));
	put_pod(j, true);
	j = pool_pod("leaving", "u-leaving", "1");
	json_object_set_new(json_object_get(j, "metadata"), "deletionTimestamp",
	    json_string("2026-11-30T00:00:00Z"));
	put_pod(j, true);
	j = pool_pod("other", "u-other", "1");
	json_object_set_new(json_object_get(json_object_get(j, "metadata"), "annotations"),
	    "stratos.sh/pool", json_string("gpu,infer"));
	put_pod(j, true);

	/* From the cache: no API request. */
	assert_int_equal(claim_verify_pod(&ctx, "ci", "cached", "u-cached", "ci", &p, why,
	    sizeof(why)), 0);
	assert_string_equal(p->uid, "u-cached");
	cache_obj_unref(&p->obj);
	assert_int_equal(gets, 0);
	/* Not cached yet: one GET, and the cache learns it. */
	assert_int_equal(claim_verify_pod(&ctx, "ci", "uncached", "u-uncached", "ci", &p, why,
	    sizeof(why)), 0);
	cache_obj_unref(&p->obj);
	assert_int_equal(gets, 1);
	assert_non_null(p = pod_cache_get(ctx.pods, "ci", "uncached"));
	cache_obj_unref(&p->obj);
	/* Forged: a pod that does not exist, a wrong uid (one GET to be sure), bound, leaving, another pool. */
	assert_int_equal(claim_verify_pod(&ctx, "ci", "forged", "u-x", "ci", &p, why, sizeof(why)),
	    -ENOENT);
	assert_null(p);
	assert_int_equal(claim_verify_pod(&ctx, "ci", "cached", "u-wrong", "ci", &p, why,
	    sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "u-wrong"));
	assert_int_equal(claim_verify_pod(&ctx, "ci", "bound", "u-bound", "ci", &p, why, sizeof(why)),
	    -EALREADY);
	assert_int_equal(claim_verify_pod(&ctx, "ci", "leaving", "u-leaving", "ci", &p, why,
	    sizeof(why)), -ECANCELED);
	assert_int_equal(claim_verify_pod(&ctx, "ci", "other", "u-other", "ci", &p, why, sizeof(why)),
	    -EPERM);
	assert_int_equal(claim_verify_pod(&ctx, "ci", "other", "u-other", "infer", &p, why,
	    sizeof(why)), 0);
	cache_obj_unref(&p->obj);
	assert_int_equal(claim_verify_pod(&ctx, "ci", "cached", "", "ci", &p, why, sizeof(why)),
	    -EINVAL);
	assert_int_equal(patches, 0);
	assert_string_equal(ec2_started, "");
}

/* ---- claiming and starting ---- */

static void
test_claim_and_start(void **state)
{
	const char *names[] = { "s1" };
	struct claim_result res;
	struct pod_info *pod;
	struct reservations *r = NULL;
	json_t *n;

	(void)state;
	put_node(standby_node("s1", "us-east-1a", "2026-11-30T00:00:00Z", NULL));
	put_pod(pool_pod("web-5d9f8c6b7-abcde", "u1", "2"), true);
	pod = verified("web-5d9f8c6b7-abcde", "u1");
	assert_int_equal(start(pod, names, 1, true, &res), 0);
	assert_int_equal(res.outcome, CLAIM_STARTED);
	assert_string_equal(res.node, "s1");
	assert_string_equal(res.instance, "i-s1");
	assert_int_equal(res.starts, 1);
	assert_string_equal(ec2_started, "i-s1,");
	/* One PATCH made the whole transition. */
	assert_int_equal(patches, 1);
	n = stored("s1");
	assert_string_equal(label(n, "stratos.sh/state"), "running");
	assert_false(has_taint(n, "stratos.sh/standby"));
	assert_true(has_taint(n, "node.kubernetes.io/unreachable"));
	assert_string_equal(ann(n, "stratos.sh/started-for"), "ci/web-5d9f8c6b7-abcde");
	assert_string_equal(ann(n, "stratos.sh/last-workload"), "ci/Deployment/web");
	assert_string_equal(ann(n, "stratos.sh/started-at"), ann(n, "stratos.sh/state-since"));
	assert_int_equal(reservations_parse(ann(n, "stratos.sh/reservations"), &r), 0);
	assert_int_equal(r->n, 1);
	assert_string_equal(r->item[0].uid, "u1");
	assert_int_equal(r->item[0].requests.cpu_milli, 2000);
	reservations_free(r);
	json_decref(n);
	/* The cache has the claim at once (write-through): the node is starting now. */
	{
		struct node_info *c = node_cache_get(ctx.nodes, "s1");
		assert_string_equal(c->state, "running");
		cache_obj_unref(&c->obj);
	}
	/* Claiming it again finds it no longer standby: nothing written, nothing started. */
	assert_int_equal(start(pod, names, 1, true, &res), 0);
	assert_int_equal(res.outcome, CLAIM_LOST);
	assert_int_equal(patches, 1);
	assert_string_equal(ec2_started, "i-s1,");
	cache_obj_unref(&pod->obj);
}

/* A capacity error rolls the claim back as it was and starts another zone's node. */
static void
test_capacity_then_other_zone(void **state)
{
	const char *names[] = { "s1", "s2", "s3" };
	struct claim_result res;
	struct pod_info *pod;
	json_t *n;

	(void)state;
	put_node(standby_node("s1", "us-east-1a", "2026-11-30T00:00:03Z", "ci/Deployment/old"));
	put_node(standby_node("s2", "us-east-1a", "2026-11-30T00:00:02Z", NULL));
	put_node(standby_node("s3", "us-east-1b", "2026-11-30T00:00:01Z", NULL));
	put_pod(pool_pod("web-5d9f8c6b7-abcde", "u1", "2"), true);
	pod = verified("web-5d9f8c6b7-abcde", "u1");
	ec2_mode("i-s1", EC2_CAPACITY);
	assert_int_equal(start(pod, names, 3, true, &res), 0);
	assert_int_equal(res.outcome, CLAIM_STARTED);
	/* s2 is in the zone that has no capacity: s3 (another zone) is tried next. */
	assert_string_equal(res.node, "s3");
	assert_string_equal(ec2_started, "i-s1,i-s3,");
	assert_int_equal(res.rollbacks, 1);
	assert_int_equal(res.starts, 2);
	n = stored("s1");
	assert_string_equal(label(n, "stratos.sh/state"), "standby");
	assert_true(has_taint(n, "stratos.sh/standby"));
	assert_null(ann(n, "stratos.sh/reservations"));
	assert_null(ann(n, "stratos.sh/started-for"));
	assert_null(ann(n, "stratos.sh/started-at"));
	/* As it was: its recency and its caches' owner are kept. */
	assert_string_equal(ann(n, "stratos.sh/state-since"), "2026-11-30T00:00:03Z");
	assert_string_equal(ann(n, "stratos.sh/last-workload"), "ci/Deployment/old");
	json_decref(n);
	n = stored("s2");
	assert_string_equal(label(n, "stratos.sh/state"), "standby");
	json_decref(n);
	cache_obj_unref(&pod->obj);
}

/* Wrong state and not found are definite too; three starts at most; throttling stops at once. */
static void
test_definite_failures(void **state)
{
	const char *names[] = { "s1", "s2", "s3", "s4" };
	struct claim_result res;
	struct pod_info *pod;

	(void)state;
	for (int i = 0; i < 4; i++) {
		char name[8], since[32];
		snprintf(name, sizeof(name), "s%d", i + 1);
		snprintf(since, sizeof(since), "2026-11-30T00:00:0%dZ", 9 - i);
		put_node(standby_node(name, "us-east-1a", since, NULL));
	}
	put_pod(pool_pod("p", "u1", "1"), true);
	pod = verified("p", "u1");
	ec2_mode("i-s1", EC2_WRONG_STATE);
	ec2_mode("i-s2", EC2_CAPACITY);
	ec2_mode("i-s3", EC2_WRONG_STATE);
	assert_int_equal(start(pod, names, 4, true, &res), 0);
	assert_int_equal(res.outcome, CLAIM_NONE);
	assert_int_equal(res.starts, LIMITS_CLAIM_STARTS);
	assert_int_equal(res.rollbacks, 3);
	assert_string_equal(ec2_started, "i-s1,i-s2,i-s3,");
	assert_int_equal(res.last_error.cls, EC2_ERR_WRONG_STATE);
	for (int i = 1; i <= 4; i++) {
		char name[8];
		json_t *n;
		snprintf(name, sizeof(name), "s%d", i);
		n = stored(name);
		assert_string_equal(label(n, "stratos.sh/state"), "standby");
		assert_true(has_taint(n, "stratos.sh/standby"));
		json_decref(n);
	}
	/* Throttling is the account's: rolled back, and no other node tried. */
	ec2_started[0] = '\0';
	ec2_mode("i-s1", EC2_THROTTLE);
	assert_int_equal(start(pod, names, 4, true, &res), 0);
	assert_int_equal(res.outcome, CLAIM_NONE);
	assert_int_equal(res.last_error.cls, EC2_ERR_THROTTLED);
	/* (The EC2 client's own standard-mode retries may ask for i-s1 again within the budget.) */
	assert_null(strstr(ec2_started, "i-s2"));
	assert_null(strstr(ec2_started, "i-s3"));
	cache_obj_unref(&pod->obj);
}

/* EC2 stalls: the start budget bounds the call, and the claim is kept (outcome unknown). */
static void
test_stall_keeps_the_claim(void **state)
{
	const char *names[] = { "s1", "s2" };
	struct claim_result res;
	struct pod_info *pod;
	int64_t t0;
	json_t *n;

	(void)state;
	put_node(standby_node("s1", "us-east-1a", "2026-11-30T00:00:02Z", NULL));
	put_node(standby_node("s2", "us-east-1a", "2026-11-30T00:00:01Z", NULL));
	put_pod(pool_pod("p", "u1", "1"), true);
	pod = verified("p", "u1");
	ec2_mode("i-s1", EC2_STALL);
	ctx.start_budget_ms = 400;
	t0 = time_mono_ms();
	assert_int_equal(start(pod, names, 2, true, &res), 0);
	assert_int_equal(res.outcome, CLAIM_START_UNKNOWN);
	assert_true(time_mono_ms() - t0 < 400 + 600 * fake_http_slowdown());
	assert_string_equal(res.node, "s1");
	n = stored("s1");
	assert_string_equal(label(n, "stratos.sh/state"), "running");
	json_decref(n);
	n = stored("s2");
	assert_string_equal(label(n, "stratos.sh/state"), "standby");
	json_decref(n);
	cache_obj_unref(&pod->obj);
}

/* Another writer changed the node between our look and our PATCH. */
static void
test_lost_race(void **state)
{
	const char *names[] = { "s1", "s2" };
	struct claim_result res;
	struct pod_info *pod;

	(void)state;
	put_node(standby_node("s1", "us-east-1a", "2026-11-30T00:00:02Z", NULL));
	put_node(standby_node("s2", "us-east-1a", "2026-11-30T00:00:01Z", NULL));
	put_pod(pool_pod("p", "u1", "1"), true);
	pod = verified("p", "u1");
	/* The extender stops and looks again... */
	snprintf(conflict_on, sizeof(conflict_on), "s1");
	assert_int_equal(start(pod, names, 2, true, &res), 0);
	assert_int_equal(res.outcome, CLAIM_LOST);
	assert_string_equal(res.node, "s1");
	assert_int_equal(res.conflicts, 1);
	assert_string_equal(ec2_started, "");
	/* ...the controller takes the next node. */
	/* ...the controller takes the next node (the cache still shows s1 at its old version). */
	assert_int_equal(start(pod, names, 2, false, &res), 0);
	assert_int_equal(res.outcome, CLAIM_STARTED);
	assert_string_equal(res.node, "s2");
	assert_string_equal(ec2_started, "i-s2,");
	cache_obj_unref(&pod->obj);
}

/* ---- reservations ---- */

static void
test_reserve_and_release(void **state)
{
	const char *names[] = { "s1" };
	struct claim_result res;
	struct pod_info *p1, *p2, *p3;
	struct node_info *out = NULL;
	const char *short_of = NULL;
	struct reservations *r = NULL;
	struct kube_error err;
	json_t *n;
	int before;

	(void)state;
	put_node(standby_node("s1", "us-east-1a", "2026-11-30T00:00:00Z", NULL));
	put_pod(pool_pod("p1", "u1", "2"), true);
	put_pod(pool_pod("p2", "u2", "1500m"), true);
	put_pod(pool_pod("p3", "u3", "1"), true);
	p1 = verified("p1", "u1");
	p2 = verified("p2", "u2");
	p3 = verified("p3", "u3");
	assert_int_equal(start(p1, names, 1, true, &res), 0);
	assert_int_equal(res.outcome, CLAIM_STARTED);
	/* Room for p2 (2 + 1.5 of 4). */
	assert_int_equal(claim_reserve(&ctx, "s1", p2, &out, &short_of, &err), 0);
	assert_non_null(out);
	cache_obj_unref(&out->obj);
	/* Again: already there, nothing written. */
	before = patches;
	assert_int_equal(claim_reserve(&ctx, "s1", p2, NULL, NULL, &err), 0);
	assert_int_equal(patches, before);
	/* p3 does not fit (3.5 + 1 > 4). */
	assert_int_equal(claim_reserve(&ctx, "s1", p3, NULL, &short_of, &err), -ENOSPC);
	assert_string_equal(short_of, "cpu");
	/* A race: another replica wrote first; the node is read again and the write made. */
	assert_int_equal(claim_release(&ctx, "s1", "u2", &err), 0);
	snprintf(conflict_on, sizeof(conflict_on), "s1");
	before = gets;
	assert_int_equal(claim_reserve(&ctx, "s1", p3, NULL, NULL, &err), 0);
	assert_int_equal(gets, before + 1);
	n = stored("s1");
	assert_int_equal(reservations_parse(ann(n, "stratos.sh/reservations"), &r), 0);
	assert_int_equal(r->n, 2);
	assert_non_null(reservations_find(r, "u1"));
	assert_non_null(reservations_find(r, "u3"));
	assert_string_equal(ann(n, "stratos.sh/last-workload"), "ci/Deployment/web");
	reservations_free(r);
	json_decref(n);
	/* Release both: the annotation goes; releasing what is absent writes nothing. */
	assert_int_equal(claim_release(&ctx, "s1", "u1", &err), 0);
	assert_int_equal(claim_release(&ctx, "s1", "u3", &err), 0);
	n = stored("s1");
	assert_null(ann(n, "stratos.sh/reservations"));
	json_decref(n);
	before = patches;
	assert_int_equal(claim_release(&ctx, "s1", "u3", &err), 0);
	assert_int_equal(claim_release(&ctx, "nowhere", "u3", &err), 0);
	assert_int_equal(patches, before);
	/* A standby node is not starting: no promise on it. */
	put_node(standby_node("s9", "us-east-1a", "2026-11-30T00:00:00Z", NULL));
	assert_int_equal(claim_reserve(&ctx, "s9", p3, NULL, NULL, &err), -ESTALE);
	cache_obj_unref(&p1->obj);
	cache_obj_unref(&p2->obj);
	cache_obj_unref(&p3->obj);
}

/* A rollback that meets a reservation written meanwhile still gives the node back. */
static void
test_rollback_after_a_reservation(void **state)
{
	const char *names[] = { "s1" };
	struct claim_result res;
	struct pod_info *p1, *p2;
	struct node_info *claimed, *before;
	struct kube_error err;
	json_t *n;

	(void)state;
	put_node(standby_node("s1", "us-east-1a", "2026-11-30T00:00:00Z", NULL));
	put_pod(pool_pod("p1", "u1", "1"), true);
	put_pod(pool_pod("p2", "u2", "1"), true);
	p1 = verified("p1", "u1");
	p2 = verified("p2", "u2");
	before = node_cache_get(ctx.nodes, "s1");
	ec2_mode("i-s1", EC2_STALL);
	ec2_stall_ms = 300;
	ctx.start_budget_ms = 100;
	assert_int_equal(start(p1, names, 1, true, &res), 0);
	assert_int_equal(res.outcome, CLAIM_START_UNKNOWN);
	claimed = node_cache_get(ctx.nodes, "s1");
	/* Another pod reserved room on it (through this cache: then the rollback's version is stale). */
	assert_int_equal(claim_reserve(&ctx, "s1", p2, NULL, NULL, &err), 0);
	snprintf(conflict_on, sizeof(conflict_on), "s1");
	assert_int_equal(claim_rollback(&ctx, claimed, before, &err), 0);
	n = stored("s1");
	assert_string_equal(label(n, "stratos.sh/state"), "standby");
	assert_null(ann(n, "stratos.sh/reservations"));
	assert_true(has_taint(n, "stratos.sh/standby"));
	json_decref(n);
	/* Once given back, a second rollback finds it is no longer that claim. */
	assert_int_equal(claim_rollback(&ctx, claimed, before, &err), -ESTALE);
	ec2_stall_ms = 3000;
	cache_obj_unref(&claimed->obj);
	cache_obj_unref(&before->obj);
	cache_obj_unref(&p1->obj);
	cache_obj_unref(&p2->obj);
}

static void
test_refresh_pool(void **state)
{
	struct kube_error err;
	struct node_info *n;
	json_t *other;

	(void)state;
	/* Nodes the API server has and the cache does not (another replica's world). */
	pthread_mutex_lock(&store_lock);
	json_object_set_new(store_nodes, "s1", standby_node("s1", "us-east-1a", "2026-11-30T00:00:00Z",
	    NULL));
	other = standby_node("g1", "us-east-1a", "2026-11-30T00:00:00Z", NULL);
	json_object_set_new(json_object_get(json_object_get(other, "metadata"), "labels"),
	    "stratos.sh/pool", json_string("gpu"));
	json_object_set_new(store_nodes, "g1", other);
	pthread_mutex_unlock(&store_lock);
	assert_null(node_cache_get(ctx.nodes, "s1"));
	assert_int_equal(claim_refresh_pool(&ctx, "ci", &err), 1);
	assert_non_null(n = node_cache_get(ctx.nodes, "s1"));
	cache_obj_unref(&n->obj);
	assert_null(node_cache_get(ctx.nodes, "g1"));
	assert_int_equal(claim_refresh_pool(&ctx, "bad pool/name", &err), -EINVAL);
}

static void
test_rank_and_zones(void **state)
{
	const struct node_info *nodes[3];
	struct claim_zones z;
	json_t *running;

	(void)state;
	put_node(standby_node("a", "us-east-1a", "2026-11-30T00:00:10Z", NULL));
	put_node(standby_node("b", "us-east-1b", "2026-11-30T00:00:20Z", "ci/Deployment/web"));
	put_node(standby_node("c", "us-east-1a", "2026-11-30T00:00:30Z", NULL));
	running = standby_node("r", "us-east-1b", "2026-11-30T00:00:00Z", NULL);
	json_object_set_new(json_object_get(json_object_get(running, "metadata"), "labels"),
	    "stratos.sh/state", json_string("running"));
	put_node(running);
	claim_zone_load(ctx.nodes, "ci", &z);
	assert_int_equal(z.n, 1);
	assert_string_equal(z.zone[0], "us-east-1b");
	assert_int_equal(z.running[0], 1);
	nodes[0] = node_cache_get(ctx.nodes, "a");
	nodes[1] = node_cache_get(ctx.nodes, "b");
	nodes[2] = node_cache_get(ctx.nodes, "c");
	/* No affinity: same minute, so the zone with nothing running wins over the later stop. */
	claim_rank_standby(nodes, 3, NULL, "ci/Job/other", &z);
	assert_string_equal(node_info_name(nodes[0]), "c");
	assert_string_equal(node_info_name(nodes[1]), "a");
	assert_string_equal(node_info_name(nodes[2]), "b");
	/* The owner whose caches are on b comes first whatever the rest says. */
	claim_rank_standby(nodes, 3, NULL, "ci/Deployment/web", &z);
	assert_string_equal(node_info_name(nodes[0]), "b");
	assert_string_equal(node_info_name(nodes[1]), "c");
	for (int i = 0; i < 3; i++)
		cache_obj_unref((struct cache_obj *)&nodes[i]->obj);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		CLUSTER_TEST(test_verify_pod),
		CLUSTER_TEST(test_claim_and_start),
		CLUSTER_TEST(test_capacity_then_other_zone),
		CLUSTER_TEST(test_definite_failures),
		CLUSTER_TEST(test_stall_keeps_the_claim),
		CLUSTER_TEST(test_lost_race),
		CLUSTER_TEST(test_reserve_and_release),
		CLUSTER_TEST(test_rollback_after_a_reservation),
		CLUSTER_TEST(test_refresh_pool),
		CLUSTER_TEST(test_rank_and_zones),
	};

	return cmocka_run_group_tests(tests, cluster_setup, cluster_teardown);
}
