/* Unit tests for configuration precedence and errors. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"
#include "stratos/config.h"

static char config_path[64];

static int
write_config(const char *text)
{
	strcpy(config_path, "/tmp/stratos-test-config-XXXXXX");
	int fd = mkstemp(config_path);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

static void
test_defaults(void **state)
{
	struct config cfg;
	struct config_error err;
	char *argv[] = { NULL };
	char *envp[] = { NULL };

	(void)state;
	assert_int_equal(config_load(&cfg, 0, argv, envp, &err), 0);
	assert_string_equal(cfg.listen, ":8443");
	assert_string_equal(cfg.metrics_listen, ":8080");
	assert_int_equal(cfg.max_body_bytes, 4 * 1024 * 1024);
	assert_int_equal(cfg.idle_timeout_ms, 120000);
	assert_false(cfg.leader_elect);
	assert_null(cfg.tls_cert);
	assert_int_equal(config_source_of(&cfg, "listen"), CONFIG_SOURCE_DEFAULT);
	config_free(&cfg);
}

static void
test_precedence_flag_env_file_default(void **state)
{
	struct config cfg;
	struct config_error err;
	char cfgflag[128];

	(void)state;
	assert_int_equal(write_config("listen: \":1111\"\nmetrics-listen: \":2222\"\n"
	    "threads: 3\nlog-level: debug\nmanaged-resource: true\n"), 0);
	snprintf(cfgflag, sizeof(cfgflag), "--config=%s", config_path);
	char *argv[] = { cfgflag, "--listen", ":9999", "file1.yaml", "--no-managed-resource",
	    "file2.yaml", NULL };
	char *envp[] = { "STRATOS_LISTEN=:7777", "STRATOS_METRICS_LISTEN=:6666",
	    "STRATOS_SIM_APISERVER=https://ignored", "PATH=/bin", NULL };
	assert_int_equal(config_load(&cfg, 6, argv, envp, &err), 0);
	assert_string_equal(cfg.listen, ":9999");            /* flag beats env and file */
	assert_string_equal(cfg.metrics_listen, ":6666");    /* env beats file */
	assert_int_equal(cfg.threads, 3);                     /* file beats default */
	assert_string_equal(cfg.log_level, "debug");
	assert_false(cfg.managed_resource);                   /* --no- form */
	assert_string_equal(cfg.max_body_bytes == 4194304 ? "default" : "x", "default");
	assert_int_equal(cfg.nargs, 2);
	assert_string_equal(cfg.args[0], "file1.yaml");
	assert_string_equal(cfg.args[1], "file2.yaml");
	assert_int_equal(config_source_of(&cfg, "listen"), CONFIG_SOURCE_FLAG);
	assert_int_equal(config_source_of(&cfg, "metrics-listen"), CONFIG_SOURCE_ENV);
	assert_int_equal(config_source_of(&cfg, "threads"), CONFIG_SOURCE_FILE);
	config_free(&cfg);
	unlink(config_path);
}

/* The admission options: --scheduler-name, --managed-resource, --pools-file through every source. */
static void
test_admission_options(void **state)
{
	struct config cfg;
	struct config_error err;
	char cfgflag[128];

	(void)state;
	assert_int_equal(write_config("scheduler-name: from-file\npools-file: /file/pools.yaml\n"
	    "managed-resource: true\n"), 0);
	snprintf(cfgflag, sizeof(cfgflag), "--config=%s", config_path);
	{
		char *argv[] = { cfgflag, NULL };
		char *envp[] = { "STRATOS_SCHEDULER_NAME=from-env", NULL };
		assert_int_equal(config_load(&cfg, 1, argv, envp, &err), 0);
		assert_string_equal(cfg.scheduler_name, "from-env");            /* env beats file */
		assert_string_equal(cfg.pools_file, "/file/pools.yaml");        /* file beats default */
		assert_true(cfg.managed_resource);
		assert_int_equal(config_source_of(&cfg, "managed-resource"), CONFIG_SOURCE_FILE);
		config_free(&cfg);
	}
	{
		char *argv[] = { cfgflag, "--scheduler-name", "from-flag", "--pools-file=/flag.yaml",
		    NULL };
		char *envp[] = { "STRATOS_SCHEDULER_NAME=from-env", "STRATOS_MANAGED_RESOURCE=false",
		    NULL };
		assert_int_equal(config_load(&cfg, 4, argv, envp, &err), 0);
		assert_string_equal(cfg.scheduler_name, "from-flag");           /* flag beats env */
		assert_string_equal(cfg.pools_file, "/flag.yaml");
		assert_false(cfg.managed_resource);                             /* env beats file */
		config_free(&cfg);
	}
	{
		char *argv[] = { NULL };
		char *envp[] = { NULL };
		assert_int_equal(config_load(&cfg, 0, argv, envp, &err), 0);
		assert_null(cfg.scheduler_name);                                /* unset by default */
		assert_null(cfg.pools_file);
		assert_false(cfg.managed_resource);
		config_free(&cfg);
	}
	unlink(config_path);
}

static void
expect_error(int argc, char **argv, char **envp, const char *fragment)
{
	struct config cfg;
	struct config_error err;

	assert_int_equal(config_load(&cfg, argc, argv, envp, &err), -EINVAL);
	if (strstr(err.message, fragment) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", err.message, fragment);
	config_free(&cfg);
}

static void
test_errors_name_the_key(void **state)
{
	char *envp[] = { NULL };
	char cfgflag[128];

	(void)state;
	expect_error(1, (char *[]){ "--listn=:1", NULL }, envp, "unknown flag --listn");
	expect_error(1, (char *[]){ "--max-body-bytes=4x", NULL }, envp,
	    "--max-body-bytes: not a size (bytes, or with k, M, G, Ki, Mi, Gi): \"4x\"");
	expect_error(1, (char *[]){ "--max-body-bytes=1", NULL }, envp,
	    "--max-body-bytes: 1 is out of range");
	expect_error(1, (char *[]){ "--idle-timeout=soon", NULL }, envp,
	    "--idle-timeout: not a duration");
	expect_error(1, (char *[]){ "--leader-elect=maybe", NULL }, envp,
	    "--leader-elect: not a boolean");
	expect_error(1, (char *[]){ "--listen", NULL }, envp, "--listen: needs a value");
	expect_error(1, (char *[]){ "--log-level=loud", NULL }, envp, "--log-level: must be one of");
	expect_error(0, (char *[]){ NULL }, (char *[]){ "STRATOS_THREADS=0", NULL },
	    "STRATOS_THREADS: 0 is out of range");

	assert_int_equal(write_config("listen: \":1\"\nlistn: \":2\"\n"), 0);
	snprintf(cfgflag, sizeof(cfgflag), "--config=%s", config_path);
	expect_error(1, (char *[]){ cfgflag, NULL }, envp, "unknown key \"listn\"");
	unlink(config_path);
	assert_int_equal(write_config("threads: [1]\n"), 0);
	snprintf(cfgflag, sizeof(cfgflag), "--config=%s", config_path);
	expect_error(1, (char *[]){ cfgflag, NULL }, envp, "threads: must be a string");
	unlink(config_path);
	assert_int_equal(write_config("threads: 1\n  bad indent: x\n"), 0);
	snprintf(cfgflag, sizeof(cfgflag), "--config=%s", config_path);
	expect_error(1, (char *[]){ cfgflag, NULL }, envp, config_path);
	unlink(config_path);
	expect_error(1, (char *[]){ "--config=/nonexistent/stratos.yaml", NULL }, envp,
	    "/nonexistent/stratos.yaml");
}

static void
test_help(void **state)
{
	struct config cfg;
	struct config_error err;

	(void)state;
	assert_int_equal(config_load(&cfg, 1, (char *[]){ "--help", NULL }, (char *[]){ NULL },
	    &err), -ECANCELED);
	config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_precedence_flag_env_file_default),
		cmocka_unit_test(test_errors_name_the_key),
		cmocka_unit_test(test_admission_options),
		cmocka_unit_test(test_help),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
