/* stratosd: wires the modules together for each subcommand. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/config.h"
#include "stratos/doctor.h"
#include "stratos/httpc.h"
#include "stratos/log.h"

extern char **environ;

struct main_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

static int main_version(int argc, char **argv);
static int main_help(int argc, char **argv);
static int main_doctor(int argc, char **argv);

static const struct main_command main_commands[] = {
	{ "doctor", "check AWS credentials, region, endpoint and EC2 permissions (exit 1 if missing)",
	  main_doctor },
	{ "version", "print the version", main_version },
	{ "help", "show this help", main_help },
};

static int
main_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("stratosd %s\n", STRATOS_VERSION);
	return 0;
}

static int
main_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("usage: stratosd <command> [flags]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(main_commands) / sizeof(main_commands[0]); i++)
		printf("  %-10s %s\n", main_commands[i].name, main_commands[i].summary);
	printf("\nflags (flag > STRATOS_* environment > --config file > default):\n");
	config_usage(stdout);
	return 0;
}

static int
main_doctor(int argc, char **argv)
{
	struct config cfg;
	struct config_error err;
	enum log_level level = LOG_LEVEL_ERROR;
	int rc = config_load(&cfg, argc, argv, environ, &err);

	if (rc == -ECANCELED) {
		config_free(&cfg);
		return main_help(0, NULL);
	}
	if (rc < 0) {
		fprintf(stderr, "stratosd: %s\n", rc == -ENOMEM ? "out of memory" : err.message);
		config_free(&cfg);
		return 2;
	}
	/* The table is the output: logs only when asked for. */
	if (config_source_of(&cfg, "log-level") != CONFIG_SOURCE_DEFAULT)
		log_level_parse(cfg.log_level, &level);
	log_set_level(level);
	if (httpc_global_init() < 0) {
		fprintf(stderr, "stratosd: cannot initialise libcurl\n");
		config_free(&cfg);
		return 1;
	}
	rc = doctor_run(&cfg);
	config_free(&cfg);
	return rc;
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		main_help(0, NULL);
		return 2;
	}
	for (size_t i = 0; i < sizeof(main_commands) / sizeof(main_commands[0]); i++)
		if (strcmp(argv[1], main_commands[i].name) == 0)
			return main_commands[i].run(argc - 2, argv + 2);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return main_help(0, NULL);
	fprintf(stderr, "stratosd: unknown command \"%s\" (try: stratosd help)\n", argv[1]);
	return 2;
}
