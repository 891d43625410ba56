/* Daemon configuration from flags, STRATOS_* environment, a YAML file and defaults. */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "stratos/config.h"
#include "stratos/limits.h"
#include "stratos/log.h"
#include "stratos/timeutil.h"
#include "stratos/yamljson.h"

enum config__type {
	CONFIG_T_STRING,
	CONFIG_T_BOOL,
	CONFIG_T_UINT,
	CONFIG_T_SIZE,
	CONFIG_T_DURATION,
	CONFIG_T_LOG_LEVEL,
};

struct config__option {
	const char *name;           /* flag spelling without "--"; also the file key */
	enum config__type type;
	size_t offset;
	const char *def;            /* default as text, NULL = unset */
	uint64_t min, max;          /* UINT and SIZE */
	const char *help;
};

#define CONFIG__OPT(n, t, field, d, lo, hi, h) \
	{ n, t, offsetof(struct config, field), d, lo, hi, h }

static const struct config__option config_options[] = {
	CONFIG__OPT("listen", CONFIG_T_STRING, listen, ":8443", 0, 0,
	    "HTTPS address for the extender and webhooks ([host]:port)"),
	CONFIG__OPT("metrics-listen", CONFIG_T_STRING, metrics_listen, ":8080", 0, 0,
	    "plain-HTTP address for /metrics, /healthz, /readyz"),
	CONFIG__OPT("tls-cert", CONFIG_T_STRING, tls_cert, NULL, 0, 0,
	    "serving certificate (PEM); re-read when the file changes"),
	CONFIG__OPT("tls-key", CONFIG_T_STRING, tls_key, NULL, 0, 0,
	    "serving key (PEM); re-read when the file changes"),
	CONFIG__OPT("client-ca", CONFIG_T_STRING, client_ca, NULL, 0, 0,
	    "CA (PEM) whose client certificates the extender paths require"),
	CONFIG__OPT("insecure-http", CONFIG_T_BOOL, insecure_http, "false", 0, 0,
	    "serve --listen over plain HTTP without --tls-cert/--tls-key (tests only: the API server requires TLS)"),
	CONFIG__OPT("max-body-bytes", CONFIG_T_SIZE, max_body_bytes, "4Mi", 1024,
	    LIMITS_HTTP_BODY_MAX, "largest request body accepted (413 beyond); extender calls with "
	    "full Node objects need about 10Ki per node"),
	CONFIG__OPT("max-connections", CONFIG_T_UINT, max_connections, "1024", 1, 100000,
	    "concurrent HTTPS connections"),
	CONFIG__OPT("idle-timeout", CONFIG_T_DURATION, idle_timeout_ms, "120s", 0, 0,
	    "close connections idle, or not done sending a request, this long (0 = never)"),
	CONFIG__OPT("threads", CONFIG_T_UINT, threads, "2", 1, LIMITS_HTTP_THREADS_MAX,
	    "HTTPS worker threads"),
	CONFIG__OPT("config", CONFIG_T_STRING, config_file, NULL, 0, 0,
	    "YAML file with any of these options (flag names as keys)"),
	CONFIG__OPT("pools-file", CONFIG_T_STRING, pools_file, NULL, 0, 0,
	    "NodePools and AWSNodeClasses from a multi-document YAML file instead of the cluster"),
	CONFIG__OPT("kubeconfig", CONFIG_T_STRING, kubeconfig, NULL, 0, 0,
	    "kubeconfig file (default: $KUBECONFIG, else in-cluster)"),
	CONFIG__OPT("namespace", CONFIG_T_STRING, namespace, NULL, 0, 0,
	    "namespace of the Lease (default: service-account namespace, else stratos-system)"),
	CONFIG__OPT("cluster-name", CONFIG_T_STRING, cluster_name, NULL, 0, 0,
	    "cluster name for the stratos.sh/cluster EC2 tag"),
	CONFIG__OPT("scheduler-name", CONFIG_T_STRING, scheduler_name, NULL, 0, 0,
	    "set spec.schedulerName of pool pods to this second scheduler"),
	CONFIG__OPT("managed-resource", CONFIG_T_BOOL, managed_resource, "false", 0, 0,
	    "add the stratos.sh/pool-pod extended resource to pool pods"),
	CONFIG__OPT("leader-elect", CONFIG_T_BOOL, leader_elect, "false", 0, 0,
	    "run the pool controller only on the Lease holder"),
	CONFIG__OPT("start-budget", CONFIG_T_DURATION, start_budget_ms, "2s", 0, 0,
	    "time the extender's filter call gives StartInstances (keep well below the "
	    "scheduler's httpTimeout)"),
	CONFIG__OPT("blocking-threads", CONFIG_T_UINT, blocking_threads, "8", 1, 256,
	    "workers for extender calls that may wait on EC2 (webhooks never wait for them)"),
	CONFIG__OPT("controller-workers", CONFIG_T_UINT, controller_workers, "4", 1,
	    LIMITS_CONTROLLER_WORKERS,
	    "pool controller threads for per-pool and per-node tasks (a slow one never blocks the others)"),
	CONFIG__OPT("ec2-resync", CONFIG_T_DURATION, ec2_resync_ms, "5m", 0, 0,
	    "full DescribeInstances of the cluster this often (garbage collection); between, "
	    "only instances in transition are described"),
	CONFIG__OPT("ec2-poll", CONFIG_T_DURATION, ec2_poll_ms, "1s", 0, 0,
	    "how often instances in transition (pending, stopping) are described"),
	CONFIG__OPT("aws-region", CONFIG_T_STRING, aws_region, NULL, 0, 0,
	    "AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, IMDS)"),
	CONFIG__OPT("aws-endpoint-url", CONFIG_T_STRING, aws_endpoint_url, NULL, 0, 0,
	    "EC2 endpoint (default: AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL, regional)"),
	CONFIG__OPT("ec2-rate-limits", CONFIG_T_STRING, ec2_rate_limits, NULL, 0, 0,
	    "client-side EC2 token buckets, e.g. Start=10/20,Run=2/5 (rate/s/burst; 0 = off)"),
	CONFIG__OPT("ec2-timeout", CONFIG_T_DURATION, ec2_timeout_ms, "20s", 0, 0,
	    "deadline of an EC2 call incl. retries (the scheduler fast path uses its own ~2s)"),
	CONFIG__OPT("ec2-connections", CONFIG_T_UINT, ec2_connections, "4", 1,
	    LIMITS_EC2_CONNECTIONS_MAX, "pooled keep-alive connections to the EC2 endpoint"),
	CONFIG__OPT("log-level", CONFIG_T_LOG_LEVEL, log_level, "info", 0, 0,
	    "debug, info, warn or error"),
};

#define CONFIG__NOPTIONS (sizeof(config_options) / sizeof(config_options[0]))
_Static_assert(CONFIG__NOPTIONS <= CONFIG_OPTIONS_MAX, "raise CONFIG_OPTIONS_MAX");

static const struct config__option *
config__find(const char *name, size_t len)
{
	for (size_t i = 0; i < CONFIG__NOPTIONS; i++)
		if (strlen(config_options[i].name) == len &&
		    strncmp(config_options[i].name, name, len) == 0)
			return &config_options[i];
	return NULL;
}

static int
config__parse_bool(const char *v, bool *out)
{
	if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0) {
		*out = true;
		return 0;
	}
	if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcasecmp(v, "no") == 0) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

/* Kubernetes quantity suffixes: k M G decimal, Ki Mi Gi binary ("MiB" also read). */
static int
config__parse_size(const char *v, uint64_t *out)
{
	static const struct {
		const char *suffix;
		uint64_t mult;
	} suffixes[] = {
		{"", 1}, {"k", 1000}, {"K", 1000}, {"M", 1000000}, {"G", 1000000000},
		{"Ki", 1024}, {"Mi", 1024 * 1024}, {"Gi", 1024 * 1024 * 1024},
		{"KiB", 1024}, {"MiB", 1024 * 1024}, {"GiB", 1024 * 1024 * 1024},
	};
	char *end;
	unsigned long long n;

	if (!isdigit((unsigned char)*v))
		return -EINVAL;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (strcmp(end, suffixes[i].suffix) == 0) {
			if (n > UINT64_MAX / suffixes[i].mult)
				return -EINVAL;
			*out = n * suffixes[i].mult;
			return 0;
		}
	}
	return -EINVAL;
}

static void
config__where(char *out, size_t len, enum config_source src, const struct config *cfg,
    const struct config__option *o)
{
	char env[96];
	size_t i;

	switch (src) {
	case CONFIG_SOURCE_FLAG:
		snprintf(out, len, "--%s", o->name);
		break;
	case CONFIG_SOURCE_ENV:
		snprintf(env, sizeof(env), "STRATOS_%s", o->name);
		for (i = 8; env[i] != '\0'; i++)
			env[i] = env[i] == '-' ? '_' : (char)toupper((unsigned char)env[i]);
		snprintf(out, len, "%s", env);
		break;
	case CONFIG_SOURCE_FILE:
		snprintf(out, len, "%s: %s", cfg->config_file ? cfg->config_file : "config file",
		    o->name);
		break;
	default:
		snprintf(out, len, "default of --%s", o->name);
		break;
	}
}

static int
config__set(struct config *cfg, const struct config__option *o, const char *value,
    enum config_source src, struct config_error *err)
{
	char *base = (char *)cfg + o->offset;
	char where[300];
	const char *problem = NULL;
	int64_t ms;
	uint64_t n;
	bool b;
	enum log_level lvl;

	config__where(where, sizeof(where), src, cfg, o);
	if (strlen(value) > LIMITS_CONFIG_VALUE) {
		snprintf(err->message, sizeof(err->message), "%s: value longer than %u bytes", where,
		    LIMITS_CONFIG_VALUE);
		return -EINVAL;
	}
	switch (o->type) {
	case CONFIG_T_STRING:
	case CONFIG_T_LOG_LEVEL:
		if (o->type == CONFIG_T_LOG_LEVEL && log_level_parse(value, &lvl) < 0) {
			problem = "must be one of debug, info, warn, error";
			break;
		}
		char *dup = strdup(value);
		if (dup == NULL)
			return -ENOMEM;
		free(*(char **)base);
		*(char **)base = dup;
		break;
	case CONFIG_T_BOOL:
		if (config__parse_bool(value, &b) < 0)
			problem = "not a boolean (true or false)";
		else
			*(bool *)base = b;
		break;
	case CONFIG_T_UINT:
	case CONFIG_T_SIZE:
		if (o->type == CONFIG_T_UINT) {
			char *end;
			errno = 0;
			n = strtoull(value, &end, 10);
			if (!isdigit((unsigned char)*value) || *end != '\0' || errno != 0) {
				problem = "not a non-negative integer";
				break;
			}
		} else if (config__parse_size(value, &n) < 0) {
			problem = "not a size (bytes, or with k, M, G, Ki, Mi, Gi)";
			break;
		}
		if (n < o->min || n > o->max) {
			snprintf(err->message, sizeof(err->message),
			    "%s: %s is out of range %llu..%llu", where, value,
			    (unsigned long long)o->min, (unsigned long long)o->max);
			return -EINVAL;
		}
		*(uint64_t *)base = n;
		break;
	case CONFIG_T_DURATION:
		if (duration_parse_ms(value, &ms) < 0)
			problem = "not a duration (like 30s, 5m, 1h30m)";
		else
			*(int64_t *)base = ms;
		break;
	}
	if (problem != NULL) {
		snprintf(err->message, sizeof(err->message), "%s: %s: \"%.200s\"", where, problem, value);
		return -EINVAL;
	}
	cfg->sources[o - config_options] = (unsigned char)src;
	return 0;
}

static int
config__load_file(struct config *cfg, struct config_error *err)
{
	struct yamljson_error yerr;
	json_t *docs = NULL, *doc;
	const char *key;
	json_t *value;
	int rc;

	rc = yamljson_parse_file(cfg->config_file, &docs, &yerr);
	if (rc < 0) {
		if (yerr.line > 0)
			snprintf(err->message, sizeof(err->message), "%s:%d:%d: %s", cfg->config_file,
			    yerr.line, yerr.column, yerr.message);
		else
			snprintf(err->message, sizeof(err->message), "%s: %s", cfg->config_file,
			    yerr.message);
		return rc == -ENOMEM ? rc : -EINVAL;
	}
	if (json_array_size(docs) > 1 || (json_array_size(docs) == 1 &&
	    !json_is_object(json_array_get(docs, 0)))) {
		snprintf(err->message, sizeof(err->message),
		    "%s: must be one YAML mapping of option names to values", cfg->config_file);
		json_decref(docs);
		return -EINVAL;
	}
	doc = json_array_get(docs, 0);
	rc = 0;
	json_object_foreach(doc, key, value) {
		const struct config__option *o = config__find(key, strlen(key));
		char text[64];
		const char *v = text;

		if (o == NULL) {
			snprintf(err->message, sizeof(err->message), "%s: unknown key \"%.100s\"",
			    cfg->config_file, key);
			rc = -EINVAL;
			break;
		}
		if (strcmp(o->name, "config") == 0) {
			snprintf(err->message, sizeof(err->message),
			    "%s: config: a config file cannot name another", cfg->config_file);
			rc = -EINVAL;
			break;
		}
		if (json_is_string(value))
			v = json_string_value(value);
		else if (json_is_true(value) || json_is_false(value))
			v = json_is_true(value) ? "true" : "false";
		else if (json_is_integer(value) && json_integer_value(value) >= 0)
			snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(value));
		else {
			snprintf(err->message, sizeof(err->message),
			    "%s: %s: must be a string, a boolean or a non-negative integer",
			    cfg->config_file, key);
			rc = -EINVAL;
			break;
		}
		rc = config__set(cfg, o, v, CONFIG_SOURCE_FILE, err);
		if (rc < 0)
			break;
	}
	json_decref(docs);
	return rc;
}

static int
config__load_env(struct config *cfg, char **envp, struct config_error *err)
{
	for (char **e = envp; e != NULL && *e != NULL; e++) {
		char name[96];
		const char *eq;
		size_t len;

		if (strncmp(*e, "STRATOS_", 8) != 0 || (eq = strchr(*e, '=')) == NULL)
			continue;
		len = (size_t)(eq - *e) - 8;
		if (len >= sizeof(name))
			continue;
		for (size_t i = 0; i < len; i++)
			name[i] = (*e)[8 + i] == '_' ? '-' : (char)tolower((unsigned char)(*e)[8 + i]);
		/* Other STRATOS_* variables (test harness settings) are not ours. */
		const struct config__option *o = config__find(name, len);
		if (o == NULL || strcmp(o->name, "config") == 0)
			continue;
		int rc = config__set(cfg, o, eq + 1, CONFIG_SOURCE_ENV, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Walks the flags; with apply false only --config is taken (it must be read first). */
static int
config__load_flags(struct config *cfg, int argc, char **argv, bool apply,
    struct config_error *err)
{
	int npos = 0;

	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i], *eq, *value = NULL;
		const struct config__option *o;
		bool negated = false;
		size_t len;

		if (strcmp(arg, "--") == 0) {
			for (i++; i < argc; i++)
				if (apply)
					cfg->args[npos++] = argv[i];
			break;
		}
		if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
			if (apply)
				cfg->args[npos++] = argv[i];
			continue;
		}
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
			return -ECANCELED;
		arg += 2;
		eq = strchr(arg, '=');
		len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
		o = config__find(arg, len);
		if (o == NULL && len > 3 && strncmp(arg, "no-", 3) == 0 && eq == NULL) {
			o = config__find(arg + 3, len - 3);
			negated = o != NULL && o->type == CONFIG_T_BOOL;
			if (!negated)
				o = NULL;
		}
		if (o == NULL) {
			snprintf(err->message, sizeof(err->message), "unknown flag --%.*s (see --help)",
			    (int)len, arg);
			return -EINVAL;
		}
		if (eq != NULL) {
			value = eq + 1;
		} else if (o->type == CONFIG_T_BOOL) {
			value = negated ? "false" : "true";
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			snprintf(err->message, sizeof(err->message), "--%s: needs a value", o->name);
			return -EINVAL;
		}
		/* First pass: only --config; second pass: everything else. */
		if (apply == (strcmp(o->name, "config") == 0))
			continue;
		int rc = config__set(cfg, o, value, CONFIG_SOURCE_FLAG, err);
		if (rc < 0)
			return rc;
	}
	if (apply)
		cfg->nargs = npos;
	return 0;
}

int
config_load(struct config *cfg, int argc, char **argv, char **envp, struct config_error *err)
{
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	err->message[0] = '\0';
	cfg->args = calloc((size_t)argc + 1, sizeof(char *));
	if (cfg->args == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < CONFIG__NOPTIONS; i++) {
		if (config_options[i].def == NULL)
			continue;
		rc = config__set(cfg, &config_options[i], config_options[i].def,
		    CONFIG_SOURCE_DEFAULT, err);
		if (rc < 0)
			return rc;
	}
	/* The file is named by a flag or the environment, and ranks below both. */
	for (char **e = envp; e != NULL && *e != NULL; e++) {
		if (strncmp(*e, "STRATOS_CONFIG=", 15) == 0) {
			rc = config__set(cfg, config__find("config", 6), *e + 15, CONFIG_SOURCE_ENV, err);
			if (rc < 0)
				return rc;
		}
	}
	rc = config__load_flags(cfg, argc, argv, false, err);
	if (rc < 0)
		return rc;
	if (cfg->config_file != NULL && cfg->config_file[0] != '\0') {
		rc = config__load_file(cfg, err);
		if (rc < 0)
			return rc;
	}
	rc = config__load_env(cfg, envp, err);
	if (rc < 0)
		return rc;
	return config__load_flags(cfg, argc, argv, true, err);
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < CONFIG__NOPTIONS; i++) {
		const struct config__option *o = &config_options[i];
		if (o->type == CONFIG_T_STRING || o->type == CONFIG_T_LOG_LEVEL) {
			char **p = (char **)((char *)cfg + o->offset);
			free(*p);
			*p = NULL;
		}
	}
	free(cfg->args);
	cfg->args = NULL;
	cfg->nargs = 0;
}

void
config_usage(FILE *out)
{
	for (size_t i = 0; i < CONFIG__NOPTIONS; i++) {
		const struct config__option *o = &config_options[i];
		char env[96];
		config__where(env, sizeof(env), CONFIG_SOURCE_ENV, NULL, o);
		fprintf(out, "  --%-18s %s\n  %-20s env %s%s%s%s\n", o->name, o->help, "", env,
		    o->def ? ", default \"" : "", o->def ? o->def : "", o->def ? "\"" : "");
	}
}

enum config_source
config_source_of(const struct config *cfg, const char *name)
{
	const struct config__option *o = config__find(name, strlen(name));

	return o != NULL ? (enum config_source)cfg->sources[o - config_options] :
	    CONFIG_SOURCE_DEFAULT;
}
