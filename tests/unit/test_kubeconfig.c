/* Unit tests for kubeconfig and in-cluster configuration loading. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"
#include "stratos/kubeconfig.h"

/* Placeholder PEM text: the loader checks the armour, TLS is not exercised here. */
#define FAKE_CERT "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
#define FAKE_KEY  "-----BEGIN PRIVATE KEY-----\nMIIEfake\n-----END PRIVATE KEY-----\n"
/* base64 of FAKE_CERT and FAKE_KEY */
#define FAKE_CERT_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJmYWtlCi0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K"
#define FAKE_KEY_B64  "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JSUVmYWtlCi0tLS0tRU5EIFBSSVZBVEUgS0VZLS0tLS0K"

static char dir[256];

static void
write_file(const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *
path_of(const char *name)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/stratos-kubeconfig-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	write_file("ca.crt", FAKE_CERT);
	write_file("client.crt", FAKE_CERT);
	write_file("client.key", FAKE_KEY);
	write_file("token", "  file-token-123\n");
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

/* A kubeconfig with one cluster, one user and the given extra YAML lines. */
static void
write_config(const char *name, const char *cluster_extra, const char *user_extra)
{
	char text[4096];

	snprintf(text, sizeof(text),
	    "apiVersion: v1\nkind: Config\ncurrent-context: main\n"
	    "clusters:\n- name: c1\n  cluster:\n    server: https://127.0.0.1:6443/\n%s"
	    "contexts:\n- name: main\n  context:\n    cluster: c1\n    user: u1\n"
	    "    namespace: team-a\n"
	    "- name: other\n  context:\n    cluster: c1\n"
	    "users:\n- name: u1\n  user:\n%s",
	    cluster_extra, user_extra);
	write_file(name, text);
}

static void
test_token_and_ca_file(void **state)
{
	struct kube_config cfg;
	struct kubeconfig_error err;

	(void)state;
	write_config("k1", "    certificate-authority: ca.crt\n", "    token: abc.def\n");
	assert_int_equal(kubeconfig_load(path_of("k1"), NULL, &cfg, &err), 0);
	assert_string_equal(cfg.server, "https://127.0.0.1:6443");
	assert_string_equal(cfg.token, "abc.def");
	assert_null(cfg.token_file);
	/* Relative to the kubeconfig's directory. */
	assert_string_equal(cfg.ca_file, path_of("ca.crt"));
	assert_null(cfg.ca_pem);
	assert_false(cfg.insecure_skip_verify);
	assert_string_equal(cfg.namespace, "team-a");
	assert_non_null(strstr(cfg.source, "context main"));
	kube_config_free(&cfg);
}

static void
test_token_file(void **state)
{
	struct kube_config cfg;
	struct kubeconfig_error err;
	char *tok = NULL;

	(void)state;
	write_config("k2", "    insecure-skip-tls-verify: true\n", "    tokenFile: token\n");
	assert_int_equal(kubeconfig_load(path_of("k2"), NULL, &cfg, &err), 0);
	assert_null(cfg.token);
	assert_string_equal(cfg.token_file, path_of("token"));
	assert_true(cfg.insecure_skip_verify);
	assert_int_equal(kubeconfig_read_token(cfg.token_file, &tok), 0);
	assert_string_equal(tok, "file-token-123");
	free(tok);
	kube_config_free(&cfg);
}

static void
test_client_cert_files_and_data(void **state)
{
	struct kube_config cfg;
	struct kubeconfig_error err;

	(void)state;
	write_config("k3", "    certificate-authority-data: " FAKE_CERT_B64 "\n",
	    "    client-certificate: client.crt\n    client-key: client.key\n");
	assert_int_equal(kubeconfig_load(path_of("k3"), NULL, &cfg, &err), 0);
	assert_string_equal(cfg.ca_pem, FAKE_CERT);
	assert_null(cfg.ca_file);
	assert_string_equal(cfg.cert_file, path_of("client.crt"));
	assert_string_equal(cfg.key_file, path_of("client.key"));
	assert_null(cfg.token);
	kube_config_free(&cfg);

	write_config("k4", "    certificate-authority: ca.crt\n",
	    "    client-certificate-data: " FAKE_CERT_B64 "\n"
	    "    client-key-data: " FAKE_KEY_B64 "\n");
	assert_int_equal(kubeconfig_load(path_of("k4"), NULL, &cfg, &err), 0);
	assert_string_equal(cfg.cert_pem, FAKE_CERT);
	assert_string_equal(cfg.key_pem, FAKE_KEY);
	assert_null(cfg.cert_file);
	kube_config_free(&cfg);
}

static void
test_context_selection(void **state)
{
	struct kube_config cfg;
	struct kubeconfig_error err;

	(void)state;
	write_config("k5", "", "    token: t\n");
	/* "other" has no user and no namespace: anonymous. */
	assert_int_equal(kubeconfig_load(path_of("k5"), "other", &cfg, &err), 0);
	assert_null(cfg.token);
	assert_null(cfg.namespace);
	kube_config_free(&cfg);
	assert_int_equal(kubeconfig_load(path_of("k5"), "nope", &cfg, &err), -EINVAL);
	assert_non_null(strstr(err.message, "no context named \"nope\""));
	kube_config_free(&cfg);
}

static void
test_merged_files(void **state)
{
	struct kube_config cfg;
	struct kubeconfig_error err;
	char paths[1200];

	(void)state;
	/* The first file names the context; the second defines it. */
	write_file("m1", "current-context: second\n");
	write_file("m2", "clusters:\n- name: c2\n  cluster:\n    server: http://10.0.0.2:8080\n"
	    "contexts:\n- name: second\n  context:\n    cluster: c2\n    user: u2\n"
	    "users:\n- name: u2\n  user:\n    token: from-m2\n");
	snprintf(paths, sizeof(paths), "%s/m1:%s/missing:%s/m2", dir, dir, dir);
	if (kubeconfig_load(paths, NULL, &cfg, &err) != 0)
		fail_msg("%s", err.message);
	assert_string_equal(cfg.server, "http://10.0.0.2:8080");
	assert_string_equal(cfg.token, "from-m2");
	kube_config_free(&cfg);
}

/* An EKS-style exec plugin: argv, env, a relative command, and the request it is given. */
static void
test_exec_plugin(void **state)
{
	struct kube_config cfg;
	struct kubeconfig_error err;
	char want[600];
	json_t *info;

	(void)state;
	write_config("exec", "    certificate-authority-data: " FAKE_CERT_B64 "\n",
	    "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n"
	    "      command: aws\n      args: [--region, eu-west-1, eks, get-token, --cluster-name, prod]\n"
	    "      env:\n      - name: AWS_PROFILE\n        value: ops\n"
	    "      interactiveMode: IfAvailable\n      installHint: install the AWS CLI\n");
	if (kubeconfig_load(path_of("exec"), NULL, &cfg, &err) != 0)
		fail_msg("%s", err.message);
	assert_non_null(cfg.exec);
	assert_null(cfg.token);
	assert_string_equal(cfg.exec->argv[0], "aws");            /* a bare name: PATH at run time */
	assert_string_equal(cfg.exec->argv[6], "prod");
	assert_null(cfg.exec->argv[7]);
	assert_string_equal(cfg.exec->env[0], "AWS_PROFILE=ops");
	assert_null(cfg.exec->env[1]);
	assert_string_equal(cfg.exec->api_version, "client.authentication.k8s.io/v1beta1");
	assert_string_equal(cfg.exec->install_hint, "install the AWS CLI");
	assert_string_equal(cfg.exec->exec_info, "{\"apiVersion\":\"client.authentication.k8s.io/"
	    "v1beta1\",\"kind\":\"ExecCredential\",\"spec\":{\"interactive\":false}}");
	kube_config_free(&cfg);

	/* A relative command with a '/' is the kubeconfig directory's; provideClusterInfo
	 * hands the cluster (with the inline CA) to the plugin. */
	write_config("exec2", "    certificate-authority-data: " FAKE_CERT_B64 "\n",
	    "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
	    "      command: ./bin/get-token\n      provideClusterInfo: true\n");
	if (kubeconfig_load(path_of("exec2"), NULL, &cfg, &err) != 0)
		fail_msg("%s", err.message);
	snprintf(want, sizeof(want), "%s/./bin/get-token", dir);
	assert_string_equal(cfg.exec->argv[0], want);
	assert_null(cfg.exec->argv[1]);
	assert_null(cfg.exec->env[0]);
	info = json_loads(cfg.exec->exec_info, 0, NULL);
	assert_non_null(info);
	assert_string_equal(json_string_value(json_object_get(info, "apiVersion")),
	    "client.authentication.k8s.io/v1");
	json_t *cluster = json_object_get(json_object_get(info, "spec"), "cluster");
	assert_string_equal(json_string_value(json_object_get(cluster, "server")),
	    "https://127.0.0.1:6443");
	assert_string_equal(json_string_value(json_object_get(cluster, "certificate-authority-data")),
	    FAKE_CERT_B64);
	assert_true(json_is_false(json_object_get(cluster, "insecure-skip-tls-verify")));
	json_decref(info);
	kube_config_free(&cfg);
}

struct bad_case {
	const char *cluster_extra;
	const char *user_extra;
	const char *expect;           /* in the error message */
};

static void
test_errors_name_the_field(void **state)
{
	static const struct bad_case cases[] = {
		{ "    certificate-authority: nope.crt\n", "    token: t\n",
		  "clusters[name=c1].cluster.certificate-authority" },
		{ "    certificate-authority-data: '%%%%'\n", "    token: t\n",
		  "certificate-authority-data: not valid base64" },
		{ "", "    client-certificate: client.crt\n",
		  "users[name=u1].user.client-key(-data): missing" },
		{ "", "    client-key-data: " FAKE_KEY_B64 "\n",
		  "client-certificate(-data): missing" },
		{ "", "    exec:\n      command: aws\n", "users[name=u1].user.exec.apiVersion: \"\" is "
		  "not supported" },
		{ "", "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n",
		  "users[name=u1].user.exec.command: missing" },
		{ "", "    exec:\n      apiVersion: client.authentication.k8s.io/v1alpha1\n"
		  "      command: aws\n", "exec.apiVersion: \"client.authentication.k8s.io/v1alpha1\"" },
		{ "", "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws\n"
		  "      interactiveMode: Always\n", "exec.interactiveMode: Always needs a terminal" },
		{ "", "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws\n"
		  "      args: [eks, {get: token}]\n", "exec.args[1]: must be a string" },
		{ "", "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws\n"
		  "      env:\n      - value: x\n", "exec.env[0].name: must be a variable name" },
		{ "", "    auth-provider:\n      name: gcp\n", "user.auth-provider" },
		{ "", "    username: a\n    password: b\n", "user.username" },
		{ "", "    tokenFile: missing-token\n", "user.tokenFile" },
		{ "    insecure-skip-tls-verify: maybe\n", "    token: t\n",
		  "insecure-skip-tls-verify: must be true or false" },
		{ "", "    client-certificate-data: aGVsbG8=\n    client-key-data: aGVsbG8=\n",
		  "not PEM data" },
	};
	struct kube_config cfg;
	struct kubeconfig_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_config("bad", cases[i].cluster_extra, cases[i].user_extra);
		assert_true(kubeconfig_load(path_of("bad"), NULL, &cfg, &err) < 0);
		if (strstr(err.message, cases[i].expect) == NULL)
			fail_msg("case %zu: \"%s\" does not mention \"%s\"", i, err.message,
			    cases[i].expect);
		kube_config_free(&cfg);
	}

	write_file("noserver", "current-context: a\nclusters:\n- name: c\n  cluster: {}\n"
	    "contexts:\n- name: a\n  context:\n    cluster: c\n");
	assert_int_equal(kubeconfig_load(path_of("noserver"), NULL, &cfg, &err), -EINVAL);
	assert_non_null(strstr(err.message, "clusters[name=c].cluster.server: missing"));
	kube_config_free(&cfg);

	write_file("nocur", "clusters: []\n");
	assert_int_equal(kubeconfig_load(path_of("nocur"), NULL, &cfg, &err), -EINVAL);
	assert_non_null(strstr(err.message, "current-context: missing"));
	kube_config_free(&cfg);

	write_file("nocluster", "current-context: a\ncontexts:\n- name: a\n  context:\n"
	    "    cluster: ghost\n");
	assert_int_equal(kubeconfig_load(path_of("nocluster"), NULL, &cfg, &err), -EINVAL);
	assert_non_null(strstr(err.message, "no cluster named \"ghost\""));
	kube_config_free(&cfg);

	write_file("noctxcluster", "current-context: a\ncontexts:\n- name: a\n  context:\n"
	    "    user: x\n");
	assert_int_equal(kubeconfig_load(path_of("noctxcluster"), NULL, &cfg, &err), -EINVAL);
	assert_non_null(strstr(err.message, "contexts[name=a].context.cluster: missing"));
	kube_config_free(&cfg);

	write_file("yaml", "clusters: [\n");
	assert_int_equal(kubeconfig_load(path_of("yaml"), NULL, &cfg, &err), -EINVAL);
	assert_non_null(strstr(err.message, path_of("yaml")));
	kube_config_free(&cfg);

	assert_int_equal(kubeconfig_load(path_of("does-not-exist"), NULL, &cfg, &err), -ENOENT);
	kube_config_free(&cfg);
}

static void
test_in_cluster(void **state)
{
	char sa[300], host[] = "KUBERNETES_SERVICE_HOST=10.96.0.1";
	char port[] = "KUBERNETES_SERVICE_PORT=443";
	char host6[] = "KUBERNETES_SERVICE_HOST=fd00::1";
	char *env[] = { host, port, NULL }, *env6[] = { host6, port, NULL }, *noenv[] = { NULL };
	struct kube_config cfg;
	struct kubeconfig_error err;

	(void)state;
	snprintf(sa, sizeof(sa), "%s/sa", dir);
	mkdir(sa, 0700);
	/* No token yet. */
	assert_true(kubeconfig_in_cluster(sa, env, &cfg, &err) < 0);
	assert_non_null(strstr(err.message, "/sa/token"));
	kube_config_free(&cfg);
	write_file("sa/token", "sa-token\n");
	assert_true(kubeconfig_in_cluster(sa, env, &cfg, &err) < 0);
	assert_non_null(strstr(err.message, "/sa/ca.crt"));
	kube_config_free(&cfg);
	write_file("sa/ca.crt", FAKE_CERT);
	write_file("sa/namespace", "stratos-system");
	assert_int_equal(kubeconfig_in_cluster(sa, env, &cfg, &err), 0);
	assert_string_equal(cfg.server, "https://10.96.0.1:443");
	assert_string_equal(cfg.token_file, path_of("sa/token"));
	assert_null(cfg.token);                  /* re-read by the client, never cached here */
	assert_string_equal(cfg.ca_file, path_of("sa/ca.crt"));
	assert_string_equal(cfg.namespace, "stratos-system");
	assert_string_equal(cfg.source, "in-cluster");
	kube_config_free(&cfg);
	assert_int_equal(kubeconfig_in_cluster(sa, env6, &cfg, &err), 0);
	assert_string_equal(cfg.server, "https://[fd00::1]:443");
	kube_config_free(&cfg);
	assert_int_equal(kubeconfig_in_cluster(sa, noenv, &cfg, &err), -ENOENT);
	assert_non_null(strstr(err.message, "KUBERNETES_SERVICE_HOST"));
	kube_config_free(&cfg);
}

static void
test_resolve_order(void **state)
{
	char envk[600], home[300];
	struct kube_config cfg;
	struct kubeconfig_error err;

	(void)state;
	write_config("flag", "", "    token: from-flag\n");
	write_config("env", "", "    token: from-env\n");
	snprintf(envk, sizeof(envk), "KUBECONFIG=%s", path_of("env"));
	snprintf(home, sizeof(home), "HOME=%s/nohome", dir);
	char *env[] = { envk, home, NULL }, *empty[] = { home, NULL };
	assert_int_equal(kubeconfig_resolve(path_of("flag"), env, &cfg, &err), 0);
	assert_string_equal(cfg.token, "from-flag");
	kube_config_free(&cfg);
	assert_int_equal(kubeconfig_resolve(NULL, env, &cfg, &err), 0);
	assert_string_equal(cfg.token, "from-env");
	kube_config_free(&cfg);
	assert_int_equal(kubeconfig_resolve(NULL, empty, &cfg, &err), -ENOENT);
	assert_non_null(strstr(err.message, "--kubeconfig"));
	kube_config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_and_ca_file),
		cmocka_unit_test(test_token_file),
		cmocka_unit_test(test_client_cert_files_and_data),
		cmocka_unit_test(test_context_selection),
		cmocka_unit_test(test_merged_files),
		cmocka_unit_test(test_exec_plugin),
		cmocka_unit_test(test_errors_name_the_field),
		cmocka_unit_test(test_in_cluster),
		cmocka_unit_test(test_resolve_order),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
