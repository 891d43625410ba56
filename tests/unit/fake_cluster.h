/* A scripted API server (Nodes, Pods, guarded JSON Patches, Events) and EC2 StartInstances on one port, with a pool_ctx over them, for the claim and extender unit tests. */
#ifndef STRATOS_TEST_FAKE_CLUSTER_H
#define STRATOS_TEST_FAKE_CLUSTER_H

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"
/* Before fake_http.h, whose global `last` its locals would shadow. */
#include "patch_apply.h"
#include "fake_http.h"
#include "stratos/aws_credentials.h"
#include "stratos/claim.h"
#include "stratos/kube_recorder.h"
#include "stratos/log.h"
#include "stratos/pools.h"

/*
 * Use: cluster_setup/cluster_teardown as the group setup, and
 * cluster_each_setup/cluster_each_teardown around each test; then
 * put_node/put_pod fill the API server (and the caches), ec2_mode scripts
 * StartInstances per instance, conflict_on makes the next PATCH of a node
 * lose a race, and ec2_started/patches/gets tell what was asked.
 */

/* ---- a small API server and EC2 behind one scripted port ---- */

enum ec2_mode { EC2_OK, EC2_CAPACITY, EC2_WRONG_STATE, EC2_THROTTLE, EC2_STALL };

static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *store_nodes;            /* name → Node */
static json_t *store_pods;             /* "ns/name" → Pod */
static long store_rv = 100000000;      /* above every fixture's resourceVersion */
static char conflict_on[64];           /* the next PATCH of this node loses a race first */
static json_t *ec2_modes;              /* instance id → mode (integer) */
static char ec2_started[1024];         /* "i-a,i-b," in call order */
static int ec2_stall_ms = 3000;
static int patches, gets;

#define STATUS_404 "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"reason\":\"NotFound\",\"code\":404}"
#define STATUS_409 "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":" \
	"\"Operation cannot be fulfilled on nodes: the object has been modified\",\"reason\":\"Conflict\",\"code\":409}"
#define STATUS_422 "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":" \
	"\"the server rejected our request due to an error in our request\",\"reason\":\"Invalid\",\"details\":{},\"code\":422}"

static inline void
reply_json(int fd, int status, json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT);

	reply(fd, status, NULL, s);
	free(s);
}

static inline void
bump(json_t *obj)
{
	char rv[32];

	snprintf(rv, sizeof(rv), "%ld", ++store_rv);
	json_object_set_new(json_object_get(obj, "metadata"), "resourceVersion", json_string(rv));
}

static inline void
h_ec2(int fd, const struct req *r)
{
	const char *id = strstr(r->body, "InstanceId.1=");
	char iid[64] = "";
	int mode = EC2_OK;

	if (id != NULL)
		sscanf(id + 13, "%63[^&]", iid);
	pthread_mutex_lock(&store_lock);
	if (json_object_get(ec2_modes, iid) != NULL)
		mode = (int)json_integer_value(json_object_get(ec2_modes, iid));
	strncat(ec2_started, iid, sizeof(ec2_started) - strlen(ec2_started) - 2);
	strcat(ec2_started, ",");
	pthread_mutex_unlock(&store_lock);
	switch (mode) {
	case EC2_CAPACITY:
		fake_http_reply(fd, 500, "text/xml", NULL, "<Response><Errors><Error><Code>"
		    "InsufficientInstanceCapacity</Code><Message>no m5.2xlarge capacity</Message>"
		    "</Error></Errors><RequestID>r1</RequestID></Response>");
		return;
	case EC2_WRONG_STATE:
		fake_http_reply(fd, 400, "text/xml", NULL, "<Response><Errors><Error><Code>"
		    "IncorrectInstanceState</Code><Message>The instance is not in a state from which "
		    "it can be started.</Message></Error></Errors><RequestID>r2</RequestID></Response>");
		return;
	case EC2_THROTTLE:
		fake_http_reply(fd, 503, "text/xml", NULL, "<Response><Errors><Error><Code>"
		    "RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error>"
		    "</Errors><RequestID>r3</RequestID></Response>");
		return;
	case EC2_STALL:
		usleep((useconds_t)ec2_stall_ms * 1000);
		break;
	default:
		break;
	}
	{
		char body[1024];
		snprintf(body, sizeof(body), "<StartInstancesResponse xmlns=\"http://ec2.amazonaws.com/"
		    "doc/2016-11-15/\"><requestId>x</requestId><instancesSet><item><instanceId>%s"
		    "</instanceId><currentState><code>0</code><name>pending</name></currentState>"
		    "<previousState><code>80</code><name>stopped</name></previousState></item>"
		    "</instancesSet></StartInstancesResponse>", iid);
		fake_http_reply(fd, 200, "text/xml", NULL, body);
	}
}

static inline void
h_patch_node(int fd, const struct req *r, const char *name)
{
	json_t *patch = json_loads(r->body, 0, NULL), *node, *copy;
	const char *want = json_string_value(json_object_get(json_array_get(patch, 0), "value"));
	size_t failed;

	pthread_mutex_lock(&store_lock);
	patches++;
	node = json_object_get(store_nodes, name);
	if (node == NULL) {
		pthread_mutex_unlock(&store_lock);
		reply(fd, 404, NULL, STATUS_404);
		json_decref(patch);
		return;
	}
	if (strcmp(conflict_on, name) == 0) {
		/* Another writer got there first. */
		conflict_on[0] = '\0';
		bump(node);
	}
	if (want == NULL || strcmp(want, json_string_value(json_object_get(json_object_get(node,
	    "metadata"), "resourceVersion"))) != 0) {
		pthread_mutex_unlock(&store_lock);
		reply(fd, 409, NULL, STATUS_409);
		json_decref(patch);
		return;
	}
	copy = json_deep_copy(node);
	if (patch_apply(copy, patch, &failed) < 0) {
		pthread_mutex_unlock(&store_lock);
		json_decref(copy);
		json_decref(patch);
		reply(fd, 422, NULL, STATUS_422);
		return;
	}
	bump(copy);
	json_object_set(store_nodes, name, copy);
	pthread_mutex_unlock(&store_lock);
	reply_json(fd, 200, copy);
	json_decref(copy);
	json_decref(patch);
}

static inline void
h_api(int fd, const struct req *r)
{
	char name[256], ns[64];

	if (strcmp(r->method, "POST") == 0 && strcmp(r->path, "/") == 0) {
		h_ec2(fd, r);
	} else if (strcmp(r->method, "POST") == 0 && strstr(r->path, "/events") != NULL) {
		reply(fd, 201, NULL, "{}");
	} else if (strcmp(r->method, "PATCH") == 0 &&
	    sscanf(r->path, "/api/v1/nodes/%255s", name) == 1) {
		h_patch_node(fd, r, name);
	} else if (strcmp(r->method, "GET") == 0 && strncmp(r->path, "/api/v1/nodes?", 14) == 0) {
		const char *sel = strstr(r->path, "stratos.sh%2Fpool%3D");
		char pool[64] = "";
		json_t *list = json_pack("{s:s,s:{s:s},s:[]}", "kind", "NodeList", "metadata",
		    "resourceVersion", "1", "items"), *node;
		const char *key;

		if (sel != NULL)
			sscanf(sel + 20, "%63[^&]", pool);
		pthread_mutex_lock(&store_lock);
		json_object_foreach(store_nodes, key, node) {
			const char *p = json_string_value(json_object_get(json_object_get(json_object_get(node,
			    "metadata"), "labels"), "stratos.sh/pool"));
			if (p != NULL && strcmp(p, pool) == 0)
				json_array_append(json_object_get(list, "items"), node);
		}
		pthread_mutex_unlock(&store_lock);
		reply_json(fd, 200, list);
		json_decref(list);
	} else if (strcmp(r->method, "GET") == 0 && sscanf(r->path, "/api/v1/nodes/%255s", name) == 1) {
		json_t *node;
		pthread_mutex_lock(&store_lock);
		gets++;
		node = json_incref(json_object_get(store_nodes, name));
		pthread_mutex_unlock(&store_lock);
		if (node == NULL)
			reply(fd, 404, NULL, STATUS_404);
		else
			reply_json(fd, 200, node);
		json_decref(node);
	} else if (strcmp(r->method, "GET") == 0 &&
	    sscanf(r->path, "/api/v1/namespaces/%63[^/]/pods/%255s", ns, name) == 2) {
		char key[330];
		json_t *pod;
		snprintf(key, sizeof(key), "%s/%s", ns, name);
		pthread_mutex_lock(&store_lock);
		gets++;
		pod = json_incref(json_object_get(store_pods, key));
		pthread_mutex_unlock(&store_lock);
		if (pod == NULL)
			reply(fd, 404, NULL, STATUS_404);
		else
			reply_json(fd, 200, pod);
		json_decref(pod);
	} else {
		reply(fd, 404, NULL, STATUS_404);
	}
}

/* ---- fixtures ---- */

static struct aws_credentials_provider *creds;
static struct pool_ctx ctx;

static inline json_t *
standby_node(const char *name, const char *zone, const char *since, const char *last_workload)
{
	char iid[64];
	json_t *n;

	snprintf(iid, sizeof(iid), "i-%s", name);
	n = json_pack("{s:{s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s},s:{s:s}},"
	    "s:{s:[{s:s,s:s,s:s},{s:s,s:s}]},"
	    "s:{s:{s:s,s:s,s:s},s:[{s:s,s:s}]}}",
	    "metadata", "name", name, "uid", name, "resourceVersion", "50",
	    "labels", "stratos.sh/pool", "ci", "stratos.sh/state", "standby", "stratos.sh/instance-id",
	    iid, "topology.kubernetes.io/zone", zone,
	    "annotations", "stratos.sh/state-since", since,
	    "spec", "taints", "key", "stratos.sh/standby", "value", "true", "effect", "NoExecute",
	    "key", "node.kubernetes.io/unreachable", "effect", "NoSchedule",
	    "status", "allocatable", "cpu", "4", "memory", "16Gi", "pods", "29",
	    "conditions", "type", "Ready", "status", "Unknown");
	if (last_workload != NULL)
		json_object_set_new(json_object_get(json_object_get(n, "metadata"), "annotations"),
		    "stratos.sh/last-workload", json_string(last_workload));
	return n;
}

static inline json_t *
pool_pod(const char *name, const char *uid, const char *cpu)
{
	return json_pack("{s:{s:s,s:s,s:s,s:s,s:{s:s},s:[{s:s,s:s,s:s,s:b}],s:{s:s}},"
	    "s:{s:[{s:s,s:{s:{s:s}}}]},s:{s:s}}",
	    "metadata", "name", name, "namespace", "ci", "uid", uid, "resourceVersion", "30",
	    "annotations", "stratos.sh/pool", "ci",
	    "ownerReferences", "kind", "ReplicaSet", "name", "web-5d9f8c6b7", "uid", "rs", "controller", 1,
	    "labels", "pod-template-hash", "5d9f8c6b7",
	    "spec", "containers", "name", "c", "resources", "requests", "cpu", cpu,
	    "status", "phase", "Pending");
}

static inline void
put_node(json_t *n)
{
	pthread_mutex_lock(&store_lock);
	json_object_set(store_nodes, json_string_value(json_object_get(json_object_get(n, "metadata"),
	    "name")), n);
	pthread_mutex_unlock(&store_lock);
	assert_int_equal(cache_apply(node_cache_base(ctx.nodes), n), 1);
	json_decref(n);
}

/* A pod known to the API server, and (when cached) to the pod cache. */
static inline void
put_pod(json_t *p, bool cached)
{
	char key[330];

	snprintf(key, sizeof(key), "ci/%s", json_string_value(json_object_get(json_object_get(p,
	    "metadata"), "name")));
	pthread_mutex_lock(&store_lock);
	json_object_set(store_pods, key, p);
	pthread_mutex_unlock(&store_lock);
	if (cached)
		assert_int_equal(cache_apply(pod_cache_base(ctx.pods), p), 1);
	json_decref(p);
}

static inline json_t *
stored(const char *name)
{
	json_t *n;

	pthread_mutex_lock(&store_lock);
	n = json_deep_copy(json_object_get(store_nodes, name));
	pthread_mutex_unlock(&store_lock);
	return n;
}

static inline const char *
ann(json_t *node, const char *key)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(node, "metadata"),
	    "annotations"), key));
}

static inline const char *
label(json_t *node, const char *key)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(node, "metadata"),
	    "labels"), key));
}

static inline bool
has_taint(json_t *node, const char *key)
{
	size_t i;
	json_t *t;

	json_array_foreach(json_object_get(json_object_get(node, "spec"), "taints"), i, t)
		if (strcmp(json_string_value(json_object_get(t, "key")), key) == 0)
			return true;
	return false;
}

static inline int
cluster_setup(void **state)
{
	char *env[] = { "AWS_ACCESS_KEY_ID=AKIASTRATOSSIM000001",
	    "AWS_SECRET_ACCESS_KEY=stratosSimSecretKey00000000000000000000", NULL };
	struct aws_credentials_options opts = { .env = env };
	struct aws_credentials_error err;

	(void)state;
	log_set_level(LOG_LEVEL_ERROR);
	httpc_global_init();
	handler = h_api;
	if (fake_http_start() < 0)
		return -1;
	return aws_credentials_provider_new(&opts, &creds, &err);
}

static inline int
cluster_teardown(void **state)
{
	(void)state;
	aws_credentials_provider_free(creds);
	return 0;
}

static inline int
cluster_each_setup(void **state)
{
	char url[64];
	struct kube_config kc = { 0 };
	struct ec2_options eo = { .region = "us-east-1", .credentials = creds, .keepalive_ms = -1 };
	json_t *np;

	(void)state;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", server_port);
	kc.server = url;
	memset(&ctx, 0, sizeof(ctx));
	store_nodes = json_object();
	store_pods = json_object();
	ec2_modes = json_object();
	ec2_started[0] = conflict_on[0] = '\0';
	patches = gets = 0;
	ctx.kube = kube_new(&kc, "test");
	ctx.nodes = node_cache_new();
	ctx.pods = pod_cache_new();
	ctx.pools = pools_new();
	ctx.events = kube_recorder_new(ctx.kube);
	ctx.start_budget_ms = 2000;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", server_port);
	eo.endpoint = url;
	assert_int_equal(ec2_client_new(&eo, &ctx.ec2, NULL), 0);
	np = json_pack("{s:s,s:s,s:{s:s},s:{s:i,s:i,s:{s:{s:s,s:s},s:{s:s}},s:{s:s}}}",
	    "apiVersion", "stratos.sh/v1alpha1", "kind", "NodePool", "metadata", "name", "ci",
	    "spec", "poolSize", 10, "minStandby", 2, "template", "nodeClassRef", "kind", "AWSNodeClass",
	    "name", "ci", "labels", "stratos.sh/pool", "ci", "preWarm", "timeout", "10m");
	assert_int_equal(pools_upsert_nodepool(ctx.pools, np, NULL), 0);
	json_decref(np);
	return 0;
}

static inline int
cluster_each_teardown(void **state)
{
	(void)state;
	kube_recorder_free(ctx.events, 2000);
	ec2_client_free(ctx.ec2);
	pools_free(ctx.pools);
	pod_cache_free(ctx.pods);
	node_cache_free(ctx.nodes);
	kube_free(ctx.kube);
	json_decref(store_nodes);
	json_decref(store_pods);
	json_decref(ec2_modes);
	return 0;
}

static inline void
ec2_mode(const char *iid, enum ec2_mode m)
{
	pthread_mutex_lock(&store_lock);
	json_object_set_new(ec2_modes, iid, json_integer(m));
	pthread_mutex_unlock(&store_lock);
}

static inline struct pod_info *
verified(const char *name, const char *uid)
{
	struct pod_info *p = NULL;

	assert_int_equal(claim_verify_pod(&ctx, "ci", name, uid, "ci", &p, NULL, 0), 0);
	return p;
}

/* A test run between cluster_each_setup and cluster_each_teardown. */
#define CLUSTER_TEST(t) cmocka_unit_test_setup_teardown(t, cluster_each_setup, cluster_each_teardown)

#endif
