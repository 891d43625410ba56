/* Unit tests for the extender's decision (DESIGN §6.3) over a table of node sets, with real caches and no HTTP. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test_util.h"
#include "stratos/claim.h"
#include "stratos/node_cache.h"
#include "stratos/placement.h"
#include "stratos/pod_cache.h"
#include "stratos/pools.h"
#include "stratos/timeutil.h"

/* A node of the table. Times are seconds before now; -1 = annotation absent. */
struct nspec {
	const char *name;
	const char *pool;            /* stratos.sh/pool label, NULL = none */
	const char *state;           /* stratos.sh/state label, NULL = none */
	const char *ready;           /* Ready status */
	const char *network;         /* NetworkUnavailable status, NULL = absent */
	const char *taints;          /* "key:Effect,..." */
	long started_ago;
	long since_ago;
	const char *zone;
	const char *last_workload;
	const char *reservations;    /* raw annotation text */
	const char *cpu;             /* allocatable cpu, default "4" */
	bool deleting;
};

/* A pod already in the cluster. */
struct pspec {
	const char *name;            /* in namespace ci */
	const char *uid;
	const char *node;            /* bound to, NULL = pending */
	const char *cpu;
	const char *phase;           /* default Pending/Running by node */
};

#define MAXN 8

struct row {
	const char *what;
	struct nspec nodes[MAXN];
	const char *candidates;      /* names sent by the scheduler, comma-separated (may name unknown nodes) */
	struct pspec pods[MAXN];
	const char *pod_cpu;         /* the pod being placed: requests cpu */
	const char *pod_pools;       /* its annotation */
	/* expected */
	enum placement_action action;
	const char *target;          /* WAIT/RESERVE: node; CLAIM: the first standby */
	const char *offered;         /* USABLE: offered names, comma-separated */
	const char *standby_order;   /* CLAIM: every standby, in rank order */
	const char *reasons;         /* "node=reason|node=reason" that must hold */
};

#define READY "True"
#define TAINT_STANDBY "stratos.sh/standby:NoExecute,node.kubernetes.io/unreachable:NoSchedule"
#define TAINT_BOOT "node.kubernetes.io/not-ready:NoSchedule,node.eks.amazonaws.com/not-ready:NoSchedule"
#define RES_SINCE ",\"since\":\"2026-11-30T00:00:00Z\"}"
#define RES1(uid, cpu) "[{\"uid\":\"" uid "\",\"pod\":\"ci/" uid "\",\"requests\":{\"cpu\":\"" cpu "\"}" \
	RES_SINCE "]"
#define RES2(u1, c1, u2, c2) "[{\"uid\":\"" u1 "\",\"pod\":\"ci/" u1 "\",\"requests\":{\"cpu\":\"" c1 "\"}" \
	RES_SINCE ",{\"uid\":\"" u2 "\",\"pod\":\"ci/" u2 "\",\"requests\":{\"cpu\":\"" c2 "\"}" RES_SINCE "]"

/* Named node shapes. */
#define USABLE(n, ...)   { n, "ci", "running", READY, "False", "", 600, 600, "us-east-1a", NULL, __VA_ARGS__ }
#define BOOTING(n, ago, ...) { n, "ci", "running", "Unknown", NULL, TAINT_BOOT, ago, ago, "us-east-1a", NULL, __VA_ARGS__ }
#define STANDBY(n, since, zone, lw) { n, "ci", "standby", "Unknown", NULL, TAINT_STANDBY, -1, since, zone, lw, NULL, NULL, false }

static const struct row rows[] = {
	{ "a usable node is offered; standby and booting ones are not",
	  { USABLE("u1", NULL, NULL, false), STANDBY("s1", 100, "us-east-1a", NULL),
	    BOOTING("b1", 5, NULL, NULL, false) },
	  "u1,s1,b1", { { 0 } }, "2", "ci",
	  PLACEMENT_USABLE, NULL, "u1", NULL,
	  "s1=stratos: node is standby|b1=stratos: node is starting" },
	{ "a plain cluster node that is ready counts as usable",
	  { { "plain", NULL, NULL, READY, NULL, "", -1, -1, "us-east-1a", NULL, NULL, NULL, false },
	    STANDBY("s1", 100, "us-east-1a", NULL) },
	  "plain,s1", { { 0 } }, "2", "ci",
	  PLACEMENT_USABLE, NULL, "plain", NULL, NULL },
	{ "a plain node still carrying the pool's startup taint is not",
	  { { "plain", NULL, NULL, READY, NULL, "node.eks.amazonaws.com/not-ready:NoSchedule", -1, -1,
	      "us-east-1a", NULL, NULL, NULL, false },
	    STANDBY("s1", 100, "us-east-1a", NULL) },
	  "plain,s1", { { 0 } }, "2", "ci",
	  PLACEMENT_CLAIM, "s1", NULL, "s1", "plain=stratos: node is not ready" },
	{ "a booting node with room gets a reservation; the standby stays stopped",
	  { BOOTING("b1", 5, NULL, NULL, false), STANDBY("s1", 100, "us-east-1a", NULL) },
	  "b1,s1", { { 0 } }, "2", "ci",
	  PLACEMENT_RESERVE, "b1", NULL, NULL, "b1=stratos: node is starting|s1=stratos: node is standby" },
	{ "a booting node full of promises: claim a standby node",
	  { BOOTING("b1", 5, RES2("p1", "2", "p2", "1500m"), NULL, false),
	    STANDBY("s1", 100, "us-east-1a", NULL) },
	  "b1,s1", { { 0 } }, "2", "ci",
	  PLACEMENT_CLAIM, "s1", NULL, "s1", NULL },
	{ "DaemonSet pods bound to the booting node count against its room",
	  { BOOTING("b1", 5, RES1("p1", "1"), NULL, false), STANDBY("s1", 100, "us-east-1a", NULL) },
	  "b1,s1", { { "ds-b1", "ds-uid", "b1", "1500m", "Running" } }, "2", "ci",
	  PLACEMENT_CLAIM, "s1", NULL, "s1", NULL },
	{ "a promise of a pod that is bound elsewhere no longer holds room",
	  { BOOTING("b1", 5, RES2("p1", "2", "p2", "1500m"), NULL, false),
	    STANDBY("s1", 100, "us-east-1a", NULL), USABLE("u9", NULL, NULL, false) },
	  "b1,s1", { { "p1", "p1", "u9", "2", "Running" } }, "2", "ci",
	  PLACEMENT_RESERVE, "b1", NULL, NULL, NULL },
	{ "a promise of a pod that the cache has not seen still holds room",
	  { BOOTING("b1", 5, RES2("p-unseen", "2", "p2", "1500m"), NULL, false),
	    STANDBY("s1", 100, "us-east-1a", NULL) },
	  "b1,s1", { { 0 } }, "2", "ci",
	  PLACEMENT_CLAIM, "s1", NULL, "s1", NULL },
	{ "the pod's own reservation on a booting node: wait for it",
	  { BOOTING("b1", 7, RES1("me", "2"), NULL, false), BOOTING("b2", 2, NULL, NULL, false),
	    STANDBY("s1", 100, "us-east-1a", NULL) },
	  "b2,b1,s1", { { 0 } }, "2", "ci",
	  PLACEMENT_WAIT, "b1", NULL, NULL, NULL },
	{ "the pod's reservation on a node the scheduler did not send: still wait",
	  { BOOTING("b1", 7, RES1("me", "2"), NULL, false), STANDBY("s1", 100, "us-east-1a", NULL) },
	  "s1", { { 0 } }, "2", "ci",
	  PLACEMENT_WAIT, "b1", NULL, NULL, NULL },
	{ "a reservation on a node that gave up booting is not waited for",
	  { { "late", "ci", "running", "Unknown", NULL, TAINT_BOOT, 3600, 3600, "us-east-1a", NULL,
	      RES1("me", "2"), NULL, false },
	    STANDBY("s1", 100, "us-east-1a", NULL) },
	  "late,s1", { { 0 } }, "2", "ci",
	  PLACEMENT_CLAIM, "s1", NULL, "s1", "late=stratos: node is not ready" },
	{ "the earliest started booting node with room is filled first",
	  { BOOTING("b-new", 2, NULL, NULL, false), BOOTING("b-old", 9, NULL, NULL, false) },
	  "b-new,b-old", { { 0 } }, "2", "ci",
	  PLACEMENT_RESERVE, "b-old", NULL, NULL, NULL },
	{ "cache affinity first, then the most recently stopped",
	  { STANDBY("s-old-mine", 7200, "us-east-1a", "ci/Deployment/web"),
	    STANDBY("s-recent", 120, "us-east-1a", NULL), STANDBY("s-older", 3600, "us-east-1a", NULL) },
	  "s-older,s-recent,s-old-mine", { { 0 } }, "2", "ci",
	  PLACEMENT_CLAIM, "s-old-mine", NULL, "s-old-mine,s-recent,s-older", NULL },
	{ "zones balanced when equally warm",
	  { USABLE("ua1", NULL, NULL, false), USABLE("ua2", NULL, NULL, false),
	    STANDBY("s-a", 100, "us-east-1a", NULL), STANDBY("s-b", 101, "us-east-1b", NULL) },
	  "s-a,s-b", { { 0 } }, "2", "ci",
	  PLACEMENT_CLAIM, "s-b", NULL, "s-b,s-a", NULL },
	{ "a usable node whose room is promised to other pods is not offered",
	  { USABLE("u1", RES2("p1", "2", "p2", "1"), NULL, false), STANDBY("s1", 100, "us-east-1a", NULL) },
	  "u1,s1", { { "busy", "busy-uid", "u1", "500m", "Running" } }, "2", "ci",
	  PLACEMENT_CLAIM, "s1", NULL, "s1", "u1=" PLACEMENT_REASON_ROOM_RESERVED },
	{ "a usable node with reservations and room for one more is offered",
	  { USABLE("u1", RES1("p1", "1"), NULL, false), STANDBY("s1", 100, "us-east-1a", NULL) },
	  "u1,s1", { { 0 } }, "2", "ci",
	  PLACEMENT_USABLE, NULL, "u1", NULL, NULL },
	{ "a usable node with a malformed reservations annotation is offered (it counts as none)",
	  { USABLE("u1", "[{\"uid\":1}]", NULL, false) },
	  "u1", { { 0 } }, "2", "ci",
	  PLACEMENT_USABLE, NULL, "u1", NULL, NULL },
	{ "a booting node with a malformed reservations annotation gets no more promises",
	  { BOOTING("b1", 5, "not json", NULL, false), STANDBY("s1", 100, "us-east-1a", NULL) },
	  "b1,s1", { { 0 } }, "2", "ci",
	  PLACEMENT_CLAIM, "s1", NULL, "s1", NULL },
	{ "the reserved pod itself is offered its node once usable",
	  { USABLE("u1", RES2("me", "2", "p2", "2"), "4", false) },
	  "u1", { { 0 } }, "2", "ci",
	  PLACEMENT_USABLE, NULL, "u1", NULL, NULL },
	{ "nothing to use, promise or start: no capacity, every reason stable",
	  { { "w", "ci", "warmup", READY, "False", "", -1, 60, "us-east-1a", NULL, NULL, NULL, false },
	    { "st", "ci", "stopping", READY, "False", "node.kubernetes.io/unschedulable:NoSchedule", 900, 30,
	      "us-east-1a", NULL, NULL, NULL, false },
	    { "gpu1", "gpu", "running", READY, "False", "", 60, 60, "us-east-1a", NULL, NULL, NULL, false },
	    { "wf", "ci", "standby", "Unknown", NULL, "stratos.sh/warmup-failed:NoSchedule", -1, 60,
	      "us-east-1a", NULL, NULL, NULL, false },
	    { "del", "ci", "standby", "Unknown", NULL, TAINT_STANDBY, -1, 60, "us-east-1a", NULL, NULL,
	      NULL, true },
	    { "new", "ci", NULL, READY, NULL, "", -1, -1, "us-east-1a", NULL, NULL, NULL, false } },
	  "w,st,gpu1,wf,del,new,ghost", { { 0 } }, "2", "ci",
	  PLACEMENT_NO_CAPACITY, NULL, NULL, NULL,
	  "w=stratos: node is warming up|st=stratos: node is stopping|"
	  "gpu1=stratos: node belongs to another pool|wf=stratos: node failed its warmup|"
	  "del=stratos: node is being deleted|new=stratos: node is not managed yet|"
	  "ghost=" PLACEMENT_REASON_UNKNOWN_NODE },
	{ "a pod of two pools: a usable node of the second is enough",
	  { { "g1", "gpu", "running", READY, "False", "", 60, 60, "us-east-1a", NULL, NULL, NULL, false },
	    STANDBY("s1", 100, "us-east-1a", NULL) },
	  "g1,s1", { { 0 } }, "2", "ci,gpu",
	  PLACEMENT_USABLE, NULL, "g1", NULL, NULL },
	{ "a pod of two pools: standby nodes of its first pool come first",
	  { { "g-s", "gpu", "standby", "Unknown", NULL, TAINT_STANDBY, -1, 10, "us-east-1a", NULL, NULL,
	      NULL, false },
	    STANDBY("c-s", 5000, "us-east-1a", NULL) },
	  "g-s,c-s", { { 0 } }, "2", "ci,gpu",
	  PLACEMENT_CLAIM, "c-s", NULL, "c-s,g-s", NULL },
	{ "a pool the daemon does not know: nothing of it is used or started",
	  { { "x1", "gone", "standby", "Unknown", NULL, TAINT_STANDBY, -1, 10, "us-east-1a", NULL, NULL,
	      NULL, false } },
	  "x1", { { 0 } }, "2", "gone",
	  PLACEMENT_NO_CAPACITY, NULL, NULL, NULL, "x1=stratos: node is not managed yet" },
};

/* A fixed "now", 30 s into a minute, so recency buckets (CLAIM_RECENCY_BUCKET_MS) are the same every run. */
#define NOW_MS (29933334LL * 60000 + 30000)
static int64_t now_ms = NOW_MS;

static json_t *
node_json(const struct nspec *s)
{
	json_t *labels = json_pack("{s:s}", "kubernetes.io/hostname", s->name);
	json_t *ann = json_object(), *taints = json_array(), *conds = json_array();
	char copy[512], when[TIME_RFC3339_LEN], *save = NULL;
	json_t *j;

	if (s->pool != NULL)
		json_object_set_new(labels, "stratos.sh/pool", json_string(s->pool));
	if (s->state != NULL)
		json_object_set_new(labels, "stratos.sh/state", json_string(s->state));
	if (s->zone != NULL)
		json_object_set_new(labels, "topology.kubernetes.io/zone", json_string(s->zone));
	json_object_set_new(labels, "stratos.sh/instance-id", json_string("i-0123456789abcdef0"));
	if (s->started_ago >= 0) {
		time_format_rfc3339(now_ms - s->started_ago * 1000, when);
		json_object_set_new(ann, "stratos.sh/started-at", json_string(when));
	}
	if (s->since_ago >= 0) {
		time_format_rfc3339(now_ms - s->since_ago * 1000, when);
		json_object_set_new(ann, "stratos.sh/state-since", json_string(when));
	}
	if (s->last_workload != NULL)
		json_object_set_new(ann, "stratos.sh/last-workload", json_string(s->last_workload));
	if (s->reservations != NULL)
		json_object_set_new(ann, "stratos.sh/reservations", json_string(s->reservations));
	snprintf(copy, sizeof(copy), "%s", s->taints != NULL ? s->taints : "");
	for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		char *colon = strrchr(t, ':');
		*colon = '\0';
		json_array_append_new(taints, json_pack("{s:s,s:s}", "key", t, "effect", colon + 1));
	}
	json_array_append_new(conds, json_pack("{s:s,s:s}", "type", "Ready", "status", s->ready));
	if (s->network != NULL)
		json_array_append_new(conds, json_pack("{s:s,s:s}", "type", "NetworkUnavailable",
		    "status", s->network));
	j = json_pack("{s:{s:s,s:s,s:s,s:o,s:o},s:{s:o,s:b},s:{s:o,s:{s:s,s:s,s:s}}}",
	    "metadata", "name", s->name, "uid", s->name, "resourceVersion", "10", "labels", labels,
	    "annotations", ann,
	    "spec", "taints", taints, "unschedulable", s->state != NULL &&
	    strcmp(s->state, "stopping") == 0,
	    "status", "conditions", conds, "allocatable", "cpu", s->cpu != NULL ? s->cpu : "4",
	    "memory", "16Gi", "pods", "29");
	if (s->deleting)
		json_object_set_new(json_object_get(j, "metadata"), "deletionTimestamp",
		    json_string("2026-11-30T00:00:00Z"));
	return j;
}

static json_t *
pod_json(const struct pspec *s)
{
	json_t *j = json_pack("{s:{s:s,s:s,s:s,s:s,s:{s:s}},s:{s:[{s:s,s:{s:{s:s}}}]},s:{s:s}}",
	    "metadata", "name", s->name, "namespace", "ci", "uid", s->uid, "resourceVersion", "20",
	    "annotations", "stratos.sh/pool", "ci",
	    "spec", "containers", "name", "c", "resources", "requests", "cpu", s->cpu,
	    "status", "phase", s->phase != NULL ? s->phase : s->node != NULL ? "Running" : "Pending");

	if (s->node != NULL)
		json_object_set_new(json_object_get(j, "spec"), "nodeName", json_string(s->node));
	return j;
}

static struct pools *
pools_ci_gpu(void)
{
	struct pools *p = pools_new();
	const char *names[] = { "ci", "gpu" };

	for (size_t i = 0; i < 2; i++) {
		json_t *np = json_pack("{s:s,s:s,s:{s:s},s:{s:i,s:i,s:{s:{s:s,s:s},s:{s:s},"
		    "s:[{s:s,s:s,s:s}]},s:{s:s}}}",
		    "apiVersion", "stratos.sh/v1alpha1", "kind", "NodePool", "metadata", "name", names[i],
		    "spec", "poolSize", 10, "minStandby", 2, "template", "nodeClassRef", "kind",
		    "AWSNodeClass", "name", names[i], "labels", "stratos.sh/pool", names[i],
		    "startupTaints", "key", "node.eks.amazonaws.com/not-ready", "value", "true", "effect",
		    "NoSchedule", "preWarm", "timeout", "10m");
		assert_int_equal(pools_upsert_nodepool(p, np, NULL), 0);
		json_decref(np);
	}
	return p;
}

static bool
in_list(const char *list, const char *name)
{
	char copy[512], *save = NULL;

	if (list == NULL)
		return false;
	snprintf(copy, sizeof(copy), "%s", list);
	for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save))
		if (strcmp(t, name) == 0)
			return true;
	return false;
}

static void
run_row(const struct row *r)
{
	struct node_cache *nc = node_cache_new();
	struct pod_cache *pc = pod_cache_new();
	struct pools *pools = pools_ci_gpu();
	const struct pools_snapshot *snap = pools_acquire(pools);
	struct placement_node cand[MAXN + 2];
	struct placement pl;
	struct placement_pod pod = { .uid = "me", .key = "ci/me", .owner_key = "ci/Deployment/web" };
	struct resources req;
	char poolbuf[128], names[256], *save = NULL, order[512] = "";
	size_t n = 0;
	json_t *rj;

	print_message("row: %s\n", r->what);
	for (size_t i = 0; i < MAXN && r->nodes[i].name != NULL; i++) {
		json_t *j = node_json(&r->nodes[i]);
		assert_int_equal(cache_apply(node_cache_base(nc), j), 1);
		json_decref(j);
	}
	for (size_t i = 0; i < MAXN && r->pods[i].name != NULL; i++) {
		json_t *j = pod_json(&r->pods[i]);
		assert_int_equal(cache_apply(pod_cache_base(pc), j), 1);
		json_decref(j);
	}
	rj = json_pack("{s:s}", "cpu", r->pod_cpu);
	assert_int_equal(resources_parse_list(rj, &req), 0);
	json_decref(rj);
	req.pods = 1;
	pod.requests = &req;
	snprintf(poolbuf, sizeof(poolbuf), "%s", r->pod_pools);
	placement_split_pools(poolbuf, &pod);
	snprintf(names, sizeof(names), "%s", r->candidates);
	memset(cand, 0, sizeof(cand));
	for (char *t = strtok_r(names, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		cand[n].name = t;
		cand[n].node = node_cache_get(nc, t);
		n++;
	}
	struct placement_in in = { .snap = snap, .nodes = nc, .pods = pc, .now_ms = now_ms };
	assert_int_equal(placement_decide(&in, &pod, cand, n, &pl), 0);
	if (pl.action != r->action)
		fail_msg("%s: action %s, want %s", r->what, placement_action_name(pl.action),
		    placement_action_name(r->action));
	if (r->action == PLACEMENT_WAIT || r->action == PLACEMENT_RESERVE) {
		assert_non_null(pl.target);
		assert_string_equal(node_info_name(pl.target), r->target);
		assert_true(pl.target_is_candidate == in_list(r->candidates, r->target));
	}
	if (r->action == PLACEMENT_CLAIM) {
		for (size_t i = 0; i < pl.nstandby; i++)
			snprintf(order + strlen(order), sizeof(order) - strlen(order), "%s%s", i ? "," : "",
			    node_info_name(pl.standby[i]));
		assert_string_equal(order, r->standby_order);
		assert_string_equal(node_info_name(pl.standby[0]), r->target);
		assert_string_equal(pl.pool_name, node_info_pool(pl.standby[0]));
	}
	/* Offered exactly as expected; every other candidate has a reason. */
	for (size_t i = 0; i < n; i++) {
		bool want = r->action == PLACEMENT_USABLE && in_list(r->offered, cand[i].name);
		if (want != (cand[i].reason == NULL))
			fail_msg("%s: %s offered=%d (reason %s)", r->what, cand[i].name,
			    cand[i].reason == NULL, cand[i].reason ? cand[i].reason : "-");
	}
	if (r->reasons != NULL) {
		char copy[1024], *s2 = NULL;
		snprintf(copy, sizeof(copy), "%s", r->reasons);
		for (char *t = strtok_r(copy, "|", &s2); t != NULL; t = strtok_r(NULL, "|", &s2)) {
			char *eq = strchr(t, '=');
			bool seen = false;
			*eq = '\0';
			for (size_t i = 0; i < n; i++) {
				if (strcmp(cand[i].name, t) == 0) {
					assert_non_null(cand[i].reason);
					assert_string_equal(cand[i].reason, eq + 1);
					seen = true;
				}
			}
			assert_true(seen);
		}
	}
	placement_free(&pl);
	for (size_t i = 0; i < n; i++)
		if (cand[i].node != NULL)
			cache_obj_unref((struct cache_obj *)&cand[i].node->obj);
	resources_release(&req);
	pools_release(snap);
	pools_free(pools);
	pod_cache_free(pc);
	node_cache_free(nc);
}

static void
test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		run_row(&rows[i]);
}

/* The pieces the table leans on. */
static void
test_split_pools(void **state)
{
	struct placement_pod pod;
	char a[] = "ci", b[] = "ci,gpu,,x", c[] = "";

	(void)state;
	assert_int_equal(placement_split_pools(a, &pod), 1);
	assert_string_equal(pod.pools[0], "ci");
	assert_int_equal(placement_split_pools(b, &pod), 3);
	assert_string_equal(pod.pools[2], "x");
	assert_int_equal(placement_split_pools(c, &pod), 0);
}

static void
test_instance_id(void **state)
{
	struct nspec s = STANDBY("s", 1, "us-east-1a", NULL);
	json_t *j;
	struct node_info *n;
	char id[32];
	int rc;

	(void)state;
	j = node_json(&s);
	json_object_del(json_object_get(json_object_get(j, "metadata"), "labels"),
	    "stratos.sh/instance-id");
	n = node_info_parse(j, &rc);
	assert_non_null(n);
	assert_int_equal(claim_instance_id(n, id, sizeof(id)), -ENOENT);
	cache_obj_unref(&n->obj);
	json_object_set_new(json_object_get(j, "spec"), "providerID",
	    json_string("aws:///us-east-1a/i-0a1b2c3d4e5f60011"));
	n = node_info_parse(j, &rc);
	assert_int_equal(claim_instance_id(n, id, sizeof(id)), 0);
	assert_string_equal(id, "i-0a1b2c3d4e5f60011");
	cache_obj_unref(&n->obj);
	json_decref(j);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_split_pools),
		cmocka_unit_test(test_instance_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
