/* Unit tests for exec credential plugins: the ExecCredential parser and running real (shell) plugins. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"
#include "stratos/kube_exec.h"
#include "stratos/timeutil.h"

#define V1 "client.authentication.k8s.io/v1"

static char dir[128];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/stratos-exec-XXXXXX");
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[200];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

/* Writes an executable shell script DIR/name; returns its path (static). */
static const char *
script(const char *name, const char *body)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s", body);
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
	return path;
}

static void
test_parse_output(void **state)
{
	struct kube_exec_credential c;
	char err[300];
	const char *ok = "{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\","
	    "\"status\":{\"token\":\"k8s-aws-v1.abc\",\"expirationTimestamp\":\"2026-11-28T12:00:00Z\"}}";
	int64_t want;

	(void)state;
	assert_int_equal(kube_exec_parse_output(ok, strlen(ok), V1, &c, err, sizeof(err)), 0);
	assert_string_equal(c.token, "k8s-aws-v1.abc");
	assert_int_equal(time_parse_rfc3339("2026-11-28T12:00:00Z", &want), 0);
	assert_int_equal(c.expires_ms, want);
	kube_exec_credential_free(&c);
	assert_null(c.token);

	static const struct { const char *out, *expect; } bad[] = {
		{ "not json", "output is not JSON" },
		{ "{\"apiVersion\":\"" V1 "\",\"kind\":\"Secret\",\"status\":{\"token\":\"t\"}}",
		  "kind: \"Secret\", want \"ExecCredential\"" },
		{ "{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\","
		  "\"status\":{\"token\":\"t\"}}", "apiVersion: \"client.authentication.k8s.io/v1beta1\", "
		  "want \"" V1 "\"" },
		{ "{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\"}", "status: missing" },
		{ "{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"\"}}",
		  "status.token: missing" },
		{ "{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\",\"status\":"
		  "{\"clientCertificateData\":\"x\",\"clientKeyData\":\"y\"}}",
		  "client certificates from exec plugins are not supported" },
		{ "{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\",\"status\":"
		  "{\"token\":\"t\",\"expirationTimestamp\":\"tomorrow\"}}",
		  "status.expirationTimestamp: \"tomorrow\" is not an RFC 3339 time" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(kube_exec_parse_output(bad[i].out, strlen(bad[i].out), V1, &c, err,
		    sizeof(err)), -EINVAL);
		if (strstr(err, bad[i].expect) == NULL)
			fail_msg("case %zu: \"%s\" does not mention \"%s\"", i, err, bad[i].expect);
		assert_null(c.token);
	}
}

/* A plugin sees its args, its env on top of ours, and the request in KUBERNETES_EXEC_INFO. */
static void
test_run_passes_args_env_and_request(void **state)
{
	char info_path[200], info[300] = "", err[300] = "";
	char *argv[4], *env[] = { "PLUGIN_REGION=eu-west-1", "HOME=/plugin-home", NULL };
	struct kube_exec x = { .argv = argv, .env = env, .api_version = V1,
		.exec_info = "{\"kind\":\"ExecCredential\",\"spec\":{\"interactive\":false}}" };
	struct kube_exec_credential c;
	FILE *f;

	(void)state;
	snprintf(info_path, sizeof(info_path), "%s/info", dir);
	argv[0] = (char *)script("plugin", "printf '%s' \"$KUBERNETES_EXEC_INFO\" > \"$2\"\n"
	    "printf '{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\","
	    "\"status\":{\"token\":\"%s-%s-%s-%s\"}}' \"$1\" \"$PLUGIN_REGION\" \"$HOME\" "
	    "\"$(env | grep -c -e '^HOME=' -e '^KUBERNETES_EXEC_INFO=')$(grep -E '^Sig(Blk|Ign)' /proc/$$/status | tr -d ' \\t\\n')\"\n");
	argv[1] = "prod";
	argv[2] = info_path;
	argv[3] = NULL;
	/* Ours would be shadowed: each variable once, the plugin's value. */
	setenv("HOME", "/stratos-home", 1);
	setenv("KUBERNETES_EXEC_INFO", "stale", 1);
	/* Nor does it inherit a daemon's blocked or ignored signals. */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(kube_exec_run(&x, 5000, &c, err, sizeof(err)), 0);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	signal(SIGPIPE, SIG_DFL);
	unsetenv("KUBERNETES_EXEC_INFO");
	unsigned long long blocked, ignored;
	char *sig = strstr(c.token, "SigBlk:");
	assert_non_null(sig);
	assert_int_equal(sscanf(sig, "SigBlk:%16llxSigIgn:%16llx", &blocked, &ignored), 2);
	assert_int_equal(blocked & (1ULL << (SIGTERM - 1)), 0);
	assert_int_equal(ignored & (1ULL << (SIGPIPE - 1)), 0);
	*sig = '\0';
	assert_string_equal(c.token, "prod-eu-west-1-/plugin-home-2");
	assert_int_equal(c.expires_ms, 0);
	kube_exec_credential_free(&c);
	f = fopen(info_path, "r");
	assert_non_null(f);
	assert_non_null(fgets(info, sizeof(info), f));
	fclose(f);
	assert_string_equal(info, x.exec_info);
}

static void
test_run_failures_say_why(void **state)
{
	char *argv[2] = { NULL, NULL }, err[300];
	struct kube_exec x = { .argv = argv, .api_version = V1, .exec_info = "{}" };
	struct kube_exec_credential c;
	int64_t t0;

	(void)state;
	argv[0] = (char *)script("fails", "echo 'error: SSO session expired; run aws sso login' >&2\n"
	    "echo 'second line' >&2\nexit 3\n");
	assert_int_equal(kube_exec_run(&x, 5000, &c, err, sizeof(err)), -EIO);
	assert_non_null(strstr(err, "exited with status 3: error: SSO session expired; run aws sso "
	    "login"));
	assert_null(strstr(err, "second line"));

	argv[0] = (char *)script("garbage", "echo hello\n");
	assert_int_equal(kube_exec_run(&x, 5000, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "/garbage: output is not JSON"));

	/* Killed at the deadline, even when it holds its pipes open. */
	argv[0] = (char *)script("hangs", "sleep 5\n");
	t0 = time_mono_ms();
	assert_int_equal(kube_exec_run(&x, 300, &c, err, sizeof(err)), -ETIMEDOUT);
	assert_true(time_mono_ms() - t0 < 4000);
	assert_non_null(strstr(err, "killed after 300 ms"));

	argv[0] = "stratos-no-such-plugin";
	x.install_hint = "install it from https://example.com/plugin";
	assert_int_equal(kube_exec_run(&x, 5000, &c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "stratos-no-such-plugin: No such file or directory; install it "
	    "from https://example.com/plugin"));
	assert_null(c.token);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_output),
		cmocka_unit_test(test_run_passes_args_env_and_request),
		cmocka_unit_test(test_run_failures_say_why),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
