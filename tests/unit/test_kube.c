/* Unit tests for the Kubernetes REST client and the list+watch cache against a scripted server. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"
#include "fake_http.h"
#include "stratos/jsonpatch.h"
#include "stratos/kube.h"
#include "stratos/node_cache.h"
#include "stratos/timeutil.h"

static char tmpdir[128];

static int
setup(void **state)
{
	(void)state;
	httpc_global_init();
	if (fake_http_start() < 0)
		return -1;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/stratos-kube-XXXXXX");
	return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[200];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd);
}

static struct kube *
client(const char *token, const char *token_file)
{
	struct kube_config cfg = { 0 };
	char server[64];
	struct kube *k;

	snprintf(server, sizeof(server), "http://127.0.0.1:%d", server_port);
	cfg.server = server;
	cfg.token = (char *)token;
	cfg.token_file = (char *)token_file;
	k = kube_new(&cfg, "test-replica");
	assert_non_null(k);
	paths_log[0] = '\0';
	return k;
}

/* ---- requests and errors ---- */

/*
 * The Status bodies kube-apiserver sends. A stale resourceVersion (a PUT, or a
 * patch that sets one): apierrors.NewConflict(..., OptimisticLockErrorMsg)
 * from registry/generic/registry/store.go. A JSON Patch that does not apply
 * (a failed "test" among others): handlers/patch.go passes the apply error to
 * errors.NewGenericServerResponse(422, ..., isUnexpectedResponse=false), which
 * keeps neither the error text nor a cause: details is empty.
 */
#define STATUS_409_MODIFIED "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{}," \
	"\"status\":\"Failure\",\"message\":\"Operation cannot be fulfilled on nodes \\\"n1\\\": " \
	"the object has been modified; please apply your changes to the latest version and try " \
	"again\",\"reason\":\"Conflict\",\"details\":{\"name\":\"n1\",\"kind\":\"nodes\"},\"code\":409}"
#define STATUS_422_PATCH "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{}," \
	"\"status\":\"Failure\",\"message\":\"the server rejected our request due to an error in " \
	"our request\",\"reason\":\"Invalid\",\"details\":{},\"code\":422}"

static void
h_errors(int fd, const struct req *r)
{
	if (strstr(r->path, "/404"))
		reply(fd, 404, NULL, "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"message\":\"nodes \\\"x\\\" not found\",\"code\":404}");
	else if (strstr(r->path, "/409"))
		reply(fd, 409, NULL, STATUS_409_MODIFIED);
	else if (strstr(r->path, "/410"))
		reply(fd, 410, NULL, "{\"kind\":\"Status\",\"reason\":\"Expired\",\"message\":\"too old\",\"code\":410}");
	else if (strstr(r->path, "/422patch"))
		reply(fd, 422, NULL, STATUS_422_PATCH);
	else if (strstr(r->path, "/422"))
		reply(fd, 422, NULL, "{\"kind\":\"Status\",\"reason\":\"Invalid\",\"message\":\"spec.x: Invalid value\",\"code\":422}");
	else if (strstr(r->path, "/429"))
		reply(fd, 429, "Retry-After: 3\r\n", "{\"kind\":\"Status\",\"apiVersion\":\"v1\","
		    "\"metadata\":{},\"status\":\"Failure\",\"message\":\"Cannot evict pod as it would "
		    "violate the pod's disruption budget.\",\"reason\":\"TooManyRequests\",\"details\":"
		    "{\"causes\":[{\"reason\":\"DisruptionBudget\",\"message\":\"The disruption budget "
		    "web needs 2 healthy pods and has 2 currently\"}]},\"code\":429}");
	else if (strstr(r->path, "/403"))
		reply(fd, 403, NULL, "{\"kind\":\"Status\",\"reason\":\"Forbidden\",\"message\":\"no\",\"code\":403}");
	else if (strstr(r->path, "/500"))
		reply(fd, 500, NULL, "<html>oops</html>");
	else if (strstr(r->path, "/notjson"))
		reply(fd, 200, NULL, "{nope");
	else
		reply(fd, 200, NULL, "{\"kind\":\"Node\",\"metadata\":{\"name\":\"ok\"}}");
}

static void
test_error_classes(void **state)
{
	static const struct {
		const char *path;
		enum kube_err_class cls;
		int rc;
		long code;
	} cases[] = {
		{ "/api/v1/nodes/404", KUBE_ERR_NOT_FOUND, -ENOENT, 404 },
		{ "/api/v1/nodes/409", KUBE_ERR_CONFLICT, -EBUSY, 409 },
		{ "/api/v1/nodes/410", KUBE_ERR_GONE, -ESTALE, 410 },
		{ "/api/v1/nodes/422patch", KUBE_ERR_INVALID, -EINVAL, 422 },
		{ "/api/v1/nodes/422", KUBE_ERR_INVALID, -EINVAL, 422 },
		{ "/api/v1/nodes/429", KUBE_ERR_TOO_MANY_REQUESTS, -EAGAIN, 429 },
		{ "/api/v1/nodes/403", KUBE_ERR_FORBIDDEN, -EPERM, 403 },
		{ "/api/v1/nodes/500", KUBE_ERR_OTHER, -EIO, 500 },
	};
	struct kube *k;
	struct kube_error err;
	json_t *out;

	(void)state;
	handler = h_errors;
	k = client("t0k", NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		out = (json_t *)1;
		int rc = kube_get(k, cases[i].path, &out, &err);
		assert_int_equal(rc, cases[i].rc);
		assert_int_equal(err.class, cases[i].cls);
		assert_int_equal(err.code, cases[i].code);
		assert_null(out);
	}
	assert_int_equal(kube_get(k, "/api/v1/nodes/429", NULL, &err), -EAGAIN);
	assert_int_equal(err.retry_after_s, 3);
	assert_string_equal(err.reason, "TooManyRequests");
	/* The budget is named only in the cause: it is added to the message. */
	assert_string_equal(err.message, "Cannot evict pod as it would violate the pod's disruption "
	    "budget.: The disruption budget web needs 2 healthy pods and has 2 currently");
	assert_int_equal(kube_get(k, "/api/v1/nodes/500", NULL, &err), -EIO);
	assert_string_equal(err.message, "<html>oops</html>");
	assert_int_equal(kube_get(k, "/api/v1/nodes/notjson", &out, &err), -EBADMSG);
	assert_int_equal(kube_get(k, "/api/v1/nodes/ok", &out, &err), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(out, "metadata"),
	    "name")), "ok");
	json_decref(out);
	assert_string_equal(last.auth, "Bearer t0k");
	kube_free(k);

	/* Nothing listening. */
	struct kube_config cfg = { .server = "http://127.0.0.1:1" };
	k = kube_new(&cfg, NULL);
	assert_int_equal(kube_get(k, "/api/v1/nodes", NULL, &err), -ECONNREFUSED);
	assert_int_equal(err.class, KUBE_ERR_TRANSPORT);
	kube_free(k);
}

static char current_token[64] = "old-token";

static void
h_rotating(int fd, const struct req *r)
{
	char want[80];

	snprintf(want, sizeof(want), "Bearer %s", current_token);
	if (strcmp(r->auth, want) != 0)
		reply(fd, 401, NULL, "{\"kind\":\"Status\",\"reason\":\"Unauthorized\",\"code\":401}");
	else
		reply(fd, 200, NULL, "{}");
}

static void
write_token(const char *path, const char *tok)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fprintf(f, "%s\n", tok);
	fclose(f);
}

static void
test_token_rotation_on_401(void **state)
{
	char path[256];
	struct kube *k;
	struct kube_error err;

	(void)state;
	snprintf(path, sizeof(path), "%s/token", tmpdir);
	write_token(path, "old-token");
	handler = h_rotating;
	k = client(NULL, path);
	assert_int_equal(kube_get(k, "/api/v1/nodes/a", NULL, &err), 0);
	/* The kubelet rotates the projected token; the server stops accepting the old one. */
	write_token(path, "new-token");
	snprintf(current_token, sizeof(current_token), "new-token");
	assert_int_equal(kube_get(k, "/api/v1/nodes/a", NULL, &err), 0);
	assert_string_equal(last.auth, "Bearer new-token");
	/* A token the server never accepts: unauthorized after one retry. */
	snprintf(current_token, sizeof(current_token), "other");
	assert_int_equal(kube_get(k, "/api/v1/nodes/a", NULL, &err), -EACCES);
	assert_int_equal(err.class, KUBE_ERR_UNAUTHORIZED);
	kube_free(k);
}

/* Lines in a file: how many times the plugin ran. */
static int
count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	int n = 0, ch;

	if (f == NULL)
		return 0;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

/* A kubeconfig exec plugin supplies the token: run once, again after a 401, again near expiry. */
static void
test_exec_plugin_token(void **state)
{
	char plugin[256], tokpath[256], exppath[256], runs[256], script[1024];
	char *argv[] = { plugin, NULL };
	struct kube_exec x = { .argv = argv, .api_version = "client.authentication.k8s.io/v1",
		.exec_info = "{}" };
	struct kube_config cfg = { 0 };
	char server[64], expiry[TIME_RFC3339_LEN];
	struct kube_error err;
	struct kube *k;
	FILE *f;

	(void)state;
	snprintf(plugin, sizeof(plugin), "%s/plugin", tmpdir);
	snprintf(tokpath, sizeof(tokpath), "%s/exec-token", tmpdir);
	snprintf(exppath, sizeof(exppath), "%s/exec-expiry", tmpdir);
	snprintf(runs, sizeof(runs), "%s/runs", tmpdir);
	snprintf(script, sizeof(script), "#!/bin/sh\necho run >> %s\n"
	    "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
	    "\"status\":{\"token\":\"%%s\",\"expirationTimestamp\":\"%%s\"}}' \"$(cat %s)\" \"$(cat %s)\"\n",
	    runs, tokpath, exppath);
	f = fopen(plugin, "w");
	assert_non_null(f);
	fputs(script, f);
	fclose(f);
	assert_int_equal(chmod(plugin, 0755), 0);
	write_token(tokpath, "old-token");
	time_format_rfc3339(time_real_ms() + 3600 * 1000, expiry);
	write_token(exppath, expiry);
	snprintf(current_token, sizeof(current_token), "old-token");

	handler = h_rotating;
	snprintf(server, sizeof(server), "http://127.0.0.1:%d", server_port);
	cfg.server = server;
	cfg.exec = &x;
	k = kube_new(&cfg, "test-replica");
	assert_non_null(k);
	assert_int_equal(kube_get(k, "/api/v1/nodes/a", NULL, &err), 0);
	assert_int_equal(kube_get(k, "/api/v1/nodes/a", NULL, &err), 0);
	assert_string_equal(last.auth, "Bearer old-token");
	assert_int_equal(count_lines(runs), 1);              /* valid for an hour: run once */
	/* The server stops taking it: a 401 runs the plugin again and the request is retried. */
	write_token(tokpath, "new-token");
	snprintf(current_token, sizeof(current_token), "new-token");
	assert_int_equal(kube_get(k, "/api/v1/nodes/a", NULL, &err), 0);
	assert_string_equal(last.auth, "Bearer new-token");
	assert_int_equal(count_lines(runs), 2);
	/* A token that expires within the minute is renewed before it is sent. */
	time_format_rfc3339(time_real_ms() + 30 * 1000, expiry);
	write_token(exppath, expiry);
	write_token(tokpath, "newer-token");
	snprintf(current_token, sizeof(current_token), "newer-token");
	assert_int_equal(kube_get(k, "/api/v1/nodes/a", NULL, &err), 0);   /* 401, run: 30 s token */
	assert_int_equal(count_lines(runs), 3);
	assert_int_equal(kube_get(k, "/api/v1/nodes/a", NULL, &err), 0);   /* near expiry: run */
	assert_int_equal(count_lines(runs), 4);
	assert_string_equal(last.auth, "Bearer newer-token");
	kube_free(k);
	/* A static token wins over the plugin, as in client-go. */
	cfg.token = "newer-token";
	k = kube_new(&cfg, "test-replica");
	assert_int_equal(kube_get(k, "/api/v1/nodes/a", NULL, &err), 0);
	assert_int_equal(count_lines(runs), 4);
	kube_free(k);
}

static void
h_echo(int fd, const struct req *r)
{
	if (strstr(r->path, "selfsubjectaccessreviews") != NULL)
		reply(fd, 201, NULL, strstr(r->body, "\"verb\":\"patch\"") != NULL ?
		    "{\"status\":{\"allowed\":true}}" : "{\"status\":{\"allowed\":false}}");
	else if (strcmp(r->method, "PATCH") == 0)
		reply(fd, 200, NULL, "{\"metadata\":{\"name\":\"n1\",\"resourceVersion\":\"8\"}}");
	else
		reply(fd, 201, NULL, "{}");
}

static void
test_request_bodies(void **state)
{
	struct kube *k;
	struct kube_error err;
	json_t *patch, *body, *out = NULL;
	char path[KUBE_PATH_MAX];
	bool allowed = false;

	(void)state;
	handler = h_echo;
	k = client("t", NULL);

	assert_int_equal(kube_path(path, &KUBE_PODS, "ci", "runner-1", "eviction"), 0);
	assert_string_equal(path, "/api/v1/namespaces/ci/pods/runner-1/eviction");
	assert_int_equal(kube_path(path, &KUBE_NODEPOOLS, "ignored", "gpu", "status"), 0);
	assert_string_equal(path, "/apis/stratos.sh/v1alpha1/nodepools/gpu/status");
	assert_int_equal(kube_path(path, &KUBE_LEASES, "stratos-system", NULL, NULL), 0);
	assert_string_equal(path, "/apis/coordination.k8s.io/v1/namespaces/stratos-system/leases");
	assert_int_equal(kube_path(path, &KUBE_NODES, NULL, NULL, "status"), -EINVAL);

	/* A guarded JSON Patch: the precondition comes first, pointers are escaped. */
	patch = jsonpatch_new();
	jsonpatch_append(patch, "replace", json_string("running"), "metadata", "labels",
	    NODESTATE_LABEL_STATE, NULL);
	jsonpatch_append(patch, "add", json_string("a~b"), "metadata", "annotations", "x~y/z", NULL);
	assert_int_equal(kube_patch_guarded(k, "/api/v1/nodes/n1", "7", patch, &out, &err), 0);
	assert_string_equal(last.method, "PATCH");
	assert_string_equal(last.ctype, "application/json-patch+json");
	body = json_loads(last.body, 0, NULL);
	assert_int_equal(json_array_size(body), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(body, 0), "op")),
	    "replace");
	assert_string_equal(json_string_value(json_object_get(json_array_get(body, 0), "path")),
	    "/metadata/resourceVersion");
	assert_string_equal(json_string_value(json_object_get(json_array_get(body, 0), "value")), "7");
	assert_string_equal(json_string_value(json_object_get(json_array_get(body, 1), "path")),
	    "/metadata/labels/stratos.sh~1state");
	assert_string_equal(json_string_value(json_object_get(json_array_get(body, 2), "path")),
	    "/metadata/annotations/x~0y~1z");
	json_decref(body);
	json_decref(out);
	json_decref(patch);

	patch = json_pack("{s:{s:{s:n}}}", "metadata", "annotations", "stratos.sh/empty-since");
	assert_int_equal(kube_patch(k, "/api/v1/nodes/n1", KUBE_PATCH_MERGE, patch, NULL, &err), 0);
	assert_string_equal(last.ctype, "application/merge-patch+json");
	json_decref(patch);

	assert_int_equal(kube_evict(k, "ci", "runner-1", &err), 0);
	assert_string_equal(last.path, "/api/v1/namespaces/ci/pods/runner-1/eviction");
	body = json_loads(last.body, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(body, "apiVersion")), "policy/v1");
	assert_string_equal(json_string_value(json_object_get(body, "kind")), "Eviction");
	json_decref(body);

	assert_int_equal(kube_bind(k, "ci", "runner-1", "node-a", &err), 0);
	assert_string_equal(last.path, "/api/v1/namespaces/ci/pods/runner-1/binding");
	body = json_loads(last.body, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(json_object_get(body, "target"),
	    "name")), "node-a");
	json_decref(body);

	/* Events: cluster-scoped objects go to "default"; notes are cut at 1024 bytes. */
	char note[1500];
	memset(note, 'x', sizeof(note) - 1);
	note[sizeof(note) - 1] = '\0';
	note[1023] = '\xc3';              /* a two-byte character across the limit */
	note[1024] = '\xa9';
	struct kube_event ev = { .type = "Warning", .reason = "DrainTimeout", .action = "Drain",
		.note = note, .kind = "Node", .name = "node-a", .uid = "u-1" };
	assert_int_equal(kube_event_create(k, &ev, &err), 0);
	assert_string_equal(last.path, "/apis/events.k8s.io/v1/namespaces/default/events");
	body = json_loads(last.body, 0, NULL);
	assert_non_null(body);
	assert_string_equal(json_string_value(json_object_get(body, "reportingController")),
	    "stratos.sh/stratosd");
	assert_string_equal(json_string_value(json_object_get(body, "reportingInstance")),
	    "test-replica");
	assert_int_equal(strlen(json_string_value(json_object_get(body, "note"))), 1023);
	assert_string_equal(json_string_value(json_object_get(json_object_get(body, "regarding"),
	    "uid")), "u-1");
	assert_non_null(strstr(json_string_value(json_object_get(body, "eventTime")), "."));
	assert_int_equal(strncmp(json_string_value(json_object_get(json_object_get(body,
	    "metadata"), "name")), "node-a.", 7), 0);
	json_decref(body);

	assert_int_equal(kube_check_access(k, "patch", "", "nodes", NULL, NULL, &allowed, &err), 0);
	assert_true(allowed);
	assert_int_equal(kube_check_access(k, "delete", "", "nodes", NULL, NULL, &allowed, &err), 0);
	assert_false(allowed);
	kube_free(k);
}

/*
 * One node per path, as the API server keeps it: "won" took our patch; on
 * "lost" another replica wrote first (409); on "moved" the other replica's
 * write made one of our operations inapplicable (the 422 comes before the
 * version check); "bad" is a patch that does not apply to the very version
 * we read; "gone" was deleted after the failed patch.
 */
static void
h_guarded(int fd, const struct req *r)
{
	const char *name = strrchr(r->path, '/') + 1;
	char node[160];

	if (strcmp(r->method, "GET") == 0) {
		if (strcmp(name, "gone") == 0) {
			reply(fd, 404, NULL, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
			    "\"status\":\"Failure\",\"message\":\"nodes \\\"gone\\\" not found\","
			    "\"reason\":\"NotFound\",\"details\":{\"name\":\"gone\",\"kind\":\"nodes\"},"
			    "\"code\":404}");
			return;
		}
		snprintf(node, sizeof(node), "{\"kind\":\"Node\",\"metadata\":{\"name\":\"%s\","
		    "\"resourceVersion\":\"%s\"}}", name, strcmp(name, "bad") == 0 ? "7" : "8");
		reply(fd, 200, NULL, node);
	} else if (strcmp(name, "won") == 0) {
		reply(fd, 200, NULL, "{\"kind\":\"Node\",\"metadata\":{\"name\":\"won\","
		    "\"resourceVersion\":\"8\"}}");
	} else if (strcmp(name, "lost") == 0) {
		reply(fd, 409, NULL, STATUS_409_MODIFIED);
	} else {
		reply(fd, 422, NULL, STATUS_422_PATCH);
	}
}

/* A lost race is a conflict however the real server words it; an invalid patch is not. */
static void
test_guarded_patch_outcomes(void **state)
{
	static const struct {
		const char *node;
		int rc;
		enum kube_err_class cls;
		long code;
		const char *requests;       /* what the client sent, in order */
	} cases[] = {
		{ "won", 0, KUBE_ERR_NONE, 0, "PATCH /api/v1/nodes/won\n" },
		{ "lost", -EBUSY, KUBE_ERR_CONFLICT, 409, "PATCH /api/v1/nodes/lost\n" },
		{ "moved", -EBUSY, KUBE_ERR_CONFLICT, 422,
		  "PATCH /api/v1/nodes/moved\nGET /api/v1/nodes/moved\n" },
		{ "bad", -EINVAL, KUBE_ERR_INVALID, 422,
		  "PATCH /api/v1/nodes/bad\nGET /api/v1/nodes/bad\n" },
		{ "gone", -ENOENT, KUBE_ERR_NOT_FOUND, 404,
		  "PATCH /api/v1/nodes/gone\nGET /api/v1/nodes/gone\n" },
	};
	struct kube *k;
	struct kube_error err;
	char path[KUBE_PATH_MAX];

	(void)state;
	handler = h_guarded;
	k = client("t", NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *patch = jsonpatch_new(), *out = NULL;
		jsonpatch_append(patch, "remove", NULL, "metadata", "annotations",
		    NODESTATE_ANN_EMPTY_SINCE, NULL);
		snprintf(path, sizeof(path), "/api/v1/nodes/%s", cases[i].node);
		paths_log[0] = '\0';
		assert_int_equal(kube_patch_guarded(k, path, "7", patch, &out, &err), cases[i].rc);
		assert_int_equal(err.class, cases[i].cls);
		assert_int_equal(err.code, cases[i].code);
		assert_string_equal(paths_log, cases[i].requests);
		if (cases[i].rc == 0)
			assert_non_null(out);
		else
			assert_null(out);
		if (cases[i].cls == KUBE_ERR_CONFLICT && cases[i].code == 422)
			assert_non_null(strstr(err.message, "expected 7"));
		json_decref(out);
		json_decref(patch);
	}
	kube_free(k);
}

static void
h_pages(int fd, const struct req *r)
{
	if (strstr(r->path, "expire=1") != NULL && strstr(r->path, "continue=") != NULL)
		reply(fd, 410, NULL, "{\"kind\":\"Status\",\"reason\":\"Expired\",\"message\":"
		    "\"The provided continue parameter is too old\",\"code\":410}");
	/*
	 * Later pages at newer versions: a real server repeats the first page's
	 * (they are served from its snapshot), but a server that does not must
	 * not make the client resume its watch past changes to the first page.
	 */
	else if (strstr(r->path, "continue=tok%2F2") != NULL)
		reply(fd, 200, NULL, "{\"metadata\":{\"resourceVersion\":\"990\"},\"items\":[{\"n\":3}]}");
	else if (strstr(r->path, "continue=tok1") != NULL)
		reply(fd, 200, NULL, "{\"metadata\":{\"resourceVersion\":\"950\",\"continue\":\"tok/2\"},\"items\":[{\"n\":2}]}");
	else
		reply(fd, 200, NULL, "{\"metadata\":{\"resourceVersion\":\"900\",\"continue\":\"tok1\"},\"items\":[{\"n\":0},{\"n\":1}]}");
}

static int
collect_items(void *ctx, json_t *item)
{
	int *sum = ctx;

	*sum = *sum * 10 + (int)json_integer_value(json_object_get(item, "n"));
	return 0;
}

static void
test_list_pages(void **state)
{
	struct kube *k;
	struct kube_error err;
	char *rv = NULL;
	int seq = 0;

	(void)state;
	handler = h_pages;
	k = client("t", NULL);
	assert_int_equal(kube_list(k, "/api/v1/pods", "labelSelector=a%3Db", NULL, collect_items, &seq,
	    &rv, &err), 0);
	assert_int_equal(seq, 123);                 /* 0, 1, 2, 3 in order */
	assert_string_equal(rv, "900");             /* the first page's */
	assert_non_null(strstr(paths_log, "GET /api/v1/pods?limit=500&labelSelector=a%3Db\n"));
	assert_non_null(strstr(paths_log, "&continue=tok1\n"));
	assert_non_null(strstr(paths_log, "&continue=tok%2F2\n"));
	free(rv);
	/* A continue token that expires while the first page is parsed: Gone, no version. */
	seq = 0;
	rv = NULL;
	assert_int_equal(kube_list(k, "/api/v1/pods", "expire=1", NULL, collect_items, &seq, &rv,
	    &err), -ESTALE);
	assert_int_equal(err.class, KUBE_ERR_GONE);
	assert_null(rv);
	assert_int_equal(seq, 1);                   /* the first page was delivered */
	kube_free(k);
}

/* ---- the list+watch loop behind a cache ---- */

static pthread_mutex_t script_lock = PTHREAD_MUTEX_INITIALIZER;
static int lists, watches;
static char watch_rvs[512];             /* resourceVersion= of each watch, space-separated */

#define NODE(name, rv) "{\"metadata\":{\"name\":\"" name "\",\"resourceVersion\":\"" rv "\"," \
	"\"labels\":{\"stratos.sh/pool\":\"p\"}}}"

static void
h_informer(int fd, const struct req *r)
{
	int l, w;

	pthread_mutex_lock(&script_lock);
	if (strstr(r->path, "watch=1") == NULL) {
		l = ++lists;
		w = watches;
	} else {
		const char *rv = strstr(r->path, "resourceVersion=");
		l = lists;
		w = ++watches;
		strncat(watch_rvs, rv + 16, strcspn(rv + 16, "&"));
		strcat(watch_rvs, " ");
	}
	pthread_mutex_unlock(&script_lock);
	if (strstr(r->path, "watch=1") == NULL) {
		/* First list: a, b, c. Second list (after 410): a and d, at a newer version. */
		if (l == 1)
			reply(fd, 200, NULL, "{\"metadata\":{\"resourceVersion\":\"10\"},\"items\":["
			    NODE("a", "5") "," NODE("b", "6") "," NODE("c", "7") "]}");
		else
			reply(fd, 200, NULL, "{\"metadata\":{\"resourceVersion\":\"40\"},\"items\":["
			    NODE("a", "5") "," NODE("d", "33") "]}");
		return;
	}
	switch (w) {
	case 1:
		/* Events split across chunks, then the stream ends (server timeout). */
		stream_start(fd);
		chunk(fd, "{\"type\":\"ADDED\",\"object\":" NODE("e", "11") "}\n{\"type\":\"MOD");
		chunk(fd, "IFIED\",\"object\":" NODE("b", "12") "}\n");
		chunk(fd, "{\"type\":\"DELETED\",\"object\":" NODE("c", "13") "}\n"
		    "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"20\"}}}\n");
		stream_end(fd);
		break;
	case 2:
		/* Resumed from 20: an old version of b must not roll the cache back. */
		stream_start(fd);
		chunk(fd, "{\"type\":\"MODIFIED\",\"object\":" NODE("b", "9") "}\n");
		chunk(fd, "{\"type\":\"ADDED\",\"object\":" NODE("f", "21") "}\n");
		stream_end(fd);
		break;
	case 3:
		reply(fd, 410, NULL, "{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\"}");
		break;
	case 4:
		/* After the relist: an in-stream 410. */
		stream_start(fd);
		chunk(fd, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
		    "\"message\":\"too old resource version\"}}\n");
		stream_end(fd);
		break;
	default:
		/* Quiet: hold the stream open until the client goes away. */
		stream_start(fd);
		for (int i = 0; i < 100; i++) {
			usleep(100 * 1000);
			if (send(fd, "", 0, MSG_NOSIGNAL) < 0)
				break;
		}
		stream_end(fd);
		break;
	}
}

static bool
wait_for(int *counter, int value, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 20) {
		pthread_mutex_lock(&script_lock);
		bool ok = *counter >= value;
		pthread_mutex_unlock(&script_lock);
		if (ok)
			return true;
		usleep(20 * 1000);
	}
	return false;
}

static char *
keys(struct cache *c)
{
	static char out[256];
	json_t *dbg = cache_debug_json(cache_resource(c), 0), *o;
	size_t i;

	out[0] = '\0';
	json_array_foreach(json_object_get(dbg, "objects"), i, o) {
		strcat(out, json_string_value(json_object_get(o, "key")));
		strcat(out, "@");
		strcat(out, json_string_value(json_object_get(o, "rv")));
		strcat(out, " ");
	}
	json_decref(dbg);
	return out;
}

static void
test_informer_resume_and_relist(void **state)
{
	struct cache *c = node_cache_base(node_cache_new());
	struct kube *k;
	const char *unsynced = NULL;

	(void)state;
	handler = h_informer;
	k = client("t", NULL);
	assert_false(cache_all_synced(&unsynced));
	assert_string_equal(unsynced, "nodes");
	assert_int_equal(cache_start(c, k, "/api/v1/nodes", NULL, NULL, 30), 0);
	/* Watch 5 is the quiet one: everything before it has been applied. */
	assert_true(wait_for(&watches, 5, 10000));
	usleep(100 * 1000);
	assert_true(cache_synced(c));
	assert_true(cache_all_synced(NULL));
	/* Two lists only: the first, and the one after the HTTP 410; the in-stream 410 made the third. */
	pthread_mutex_lock(&script_lock);
	int nlists = lists;
	pthread_mutex_unlock(&script_lock);
	assert_int_equal(nlists, 3);
	/* Watch 1 from the list's version, 2 resumed from the bookmark, 3 from f's version;
	 * 4 after the second list, 5 after the third. */
	assert_string_equal(watch_rvs, "10 20 21 40 40 ");
	/* The last list (same script as the second) decides: a and d; e, f, b gone. */
	assert_string_equal(keys(c), "a@5 d@33 ");
	assert_int_equal(cache_count(c), 2);
	json_t *dbg = cache_debug_json("nodes", 0);
	assert_int_equal(json_integer_value(json_object_get(dbg, "lists")), 3);
	assert_string_equal(json_string_value(json_object_get(dbg, "resourceVersion")), "40");
	json_decref(dbg);
	/* Write-through after the stream passed: c (deleted at 13) stays deleted, a and a new
	 * object beyond the stream's version go in. */
	json_t *late = json_loads(NODE("c", "12"), 0, NULL), *newer = json_loads(NODE("a", "41"), 0, NULL),
	       *fresh = json_loads(NODE("g", "42"), 0, NULL);
	assert_int_equal(cache_apply(c, late), 0);
	assert_int_equal(cache_apply(c, newer), 1);
	assert_int_equal(cache_apply(c, fresh), 1);
	assert_string_equal(keys(c), "a@41 d@33 g@42 ");
	json_decref(late);
	json_decref(newer);
	json_decref(fresh);
	/* Stopping interrupts the quiet stream promptly. */
	cache_free(c);
	kube_free(k);
}

static void
h_between_lists(int fd, const struct req *r)
{
	if (strstr(r->path, "watch=1") == NULL) {
		/* The relist sees b deleted meanwhile (version 50 is after b's 11). */
		pthread_mutex_lock(&script_lock);
		int l = ++lists;
		pthread_mutex_unlock(&script_lock);
		reply(fd, 200, NULL, l == 1 ?
		    "{\"metadata\":{\"resourceVersion\":\"10\"},\"items\":[" NODE("a", "5") "]}" :
		    "{\"metadata\":{\"resourceVersion\":\"50\"},\"items\":[" NODE("a", "5") "]}");
		return;
	}
	pthread_mutex_lock(&script_lock);
	int w = ++watches;
	pthread_mutex_unlock(&script_lock);
	if (w == 1) {
		stream_start(fd);
		chunk(fd, "{\"type\":\"ADDED\",\"object\":" NODE("b", "11") "}\n");
		chunk(fd, "garbage!\n");
		stream_end(fd);
	} else {
		stream_start(fd);
		usleep(3000 * 1000);
		stream_end(fd);
	}
}

static void
test_bad_stream_relists(void **state)
{
	struct cache *c = node_cache_base(node_cache_new());
	struct kube *k;

	(void)state;
	handler = h_between_lists;
	watches = 0;
	lists = 0;
	k = client("t", NULL);
	assert_int_equal(cache_start(c, k, "/api/v1/nodes", NULL, NULL, 30), 0);
	assert_true(wait_for(&watches, 2, 10000));
	usleep(100 * 1000);
	/* The garbage made it relist: b (only seen in the broken stream) is gone. */
	assert_string_equal(keys(c), "a@5 ");
	assert_non_null(strstr(paths_log, "GET /api/v1/nodes?limit=500\nGET /api/v1/nodes?watch=1"));
	char *second = strstr(strstr(paths_log, "watch=1") + 1, "GET /api/v1/nodes?limit=500");
	assert_non_null(second);
	cache_free(c);
	kube_free(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_classes),
		cmocka_unit_test(test_token_rotation_on_401),
		cmocka_unit_test(test_exec_plugin_token),
		cmocka_unit_test(test_request_bodies),
		cmocka_unit_test(test_guarded_patch_outcomes),
		cmocka_unit_test(test_list_pages),
		cmocka_unit_test(test_informer_resume_and_relist),
		cmocka_unit_test(test_bad_stream_relists),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
