/* Daemon configuration: flags > STRATOS_* environment > YAML config file > defaults. */
#ifndef STRATOS_CONFIG_H
#define STRATOS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_OPTIONS_MAX 64

/* Every setting of stratosd. Strings are owned by the struct (NULL = unset). */
struct config {
	/* HTTPS server */
	char *listen;
	char *metrics_listen;
	char *tls_cert;
	char *tls_key;
	char *client_ca;
	bool insecure_http;             /* --listen without TLS (tests only) */
	uint64_t max_body_bytes;
	uint64_t max_connections;
	int64_t idle_timeout_ms;
	uint64_t threads;
	/* inputs */
	char *config_file;
	char *pools_file;
	char *kubeconfig;
	char *namespace;
	char *cluster_name;
	/* scheduling integration */
	char *scheduler_name;
	bool managed_resource;
	/* controller and extender */
	bool leader_elect;
	int64_t start_budget_ms;        /* StartInstances inside the filter call */
	uint64_t blocking_threads;      /* HTTPS workers of the extender's blocking routes */
	uint64_t controller_workers;    /* pool controller task threads */
	int64_t ec2_resync_ms;          /* full DescribeInstances period */
	int64_t ec2_poll_ms;            /* poll of instances in transition */
	/* AWS */
	char *aws_region;
	char *aws_endpoint_url;
	char *ec2_rate_limits;          /* "Action=rate/burst,..." over EC2_RATE_LIMITS_DEFAULT */
	int64_t ec2_timeout_ms;         /* deadline of EC2 calls that give none */
	uint64_t ec2_connections;       /* pooled keep-alive connections to EC2 */
	/* logging */
	char *log_level;

	/* positional arguments (borrowed from argv) */
	int nargs;
	char **args;

	/* where each option's value came from, indexed like the option table */
	unsigned char sources[CONFIG_OPTIONS_MAX];
};

enum config_source {
	CONFIG_SOURCE_DEFAULT,
	CONFIG_SOURCE_FILE,
	CONFIG_SOURCE_ENV,
	CONFIG_SOURCE_FLAG,
};

/* Why loading failed, naming the key and where it came from. */
struct config_error {
	char message[512];
};

/*
 * Fills cfg from defaults, then the YAML file named by --config /
 * STRATOS_CONFIG, then STRATOS_* variables of envp, then the flags in argv
 * (argv[0] is the first flag, not the program name). Unknown flags, unknown
 * file keys and bad values are errors naming the key, e.g.
 * "--max-body-bytes: not a size: \"4x\"". "--help" returns -ECANCELED.
 * Returns 0, -EINVAL (err filled) or -ENOMEM. cfg must be freed with
 * config_free() even on error. Not thread-safe (call once from main).
 */
int config_load(struct config *cfg, int argc, char **argv, char **envp,
    struct config_error *err);

/* Frees the strings. NULL-safe. */
void config_free(struct config *cfg);

/* Prints the options with their defaults and environment names. */
void config_usage(FILE *out);

/* Where the current value of option `name` (flag spelling without "--") came from. */
enum config_source config_source_of(const struct config *cfg, const char *name);

#endif
