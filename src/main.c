/* stratosd: wires the modules together for each subcommand. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "stratos/aws_credentials.h"
#include "stratos/cache.h"
#include "stratos/config.h"
#include "stratos/controller.h"
#include "stratos/crd_cache.h"
#include "stratos/debug.h"
#include "stratos/doctor.h"
#include "stratos/ec2.h"
#include "stratos/extender.h"
#include "stratos/httpc.h"
#include "stratos/kube.h"
#include "stratos/kube_recorder.h"
#include "stratos/kubeconfig.h"
#include "stratos/leader.h"
#include "stratos/limits.h"
#include "stratos/log.h"
#include "stratos/mutate_pod.h"
#include "stratos/node_cache.h"
#include "stratos/pod_cache.h"
#include "stratos/pool_ctx.h"
#include "stratos/placed.h"
#include "stratos/pools.h"
#include "stratos/pools_file.h"
#include "stratos/server.h"
#include "stratos/timeutil.h"
#include "stratos/validate_cmd.h"
#include "stratos/validate_webhook.h"

extern char **environ;

/* One API request inside the scheduler's filter call. */
#define MAIN_FAST_PATH_KUBE_TIMEOUT_MS 3000L

struct main_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

static int main_version(int argc, char **argv);
static int main_help(int argc, char **argv);
static int main_serve(int argc, char **argv);
static int main_doctor(int argc, char **argv);

static const struct main_command main_commands[] = {
	{ "serve", "run the daemon: webhooks and extender over HTTPS, metrics and health", main_serve },
	{ "validate", "check NodePool/AWSNodeClass manifests offline (FILE... or -)", validate_cmd_main },
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

/*
 * Loads the configuration for a subcommand. Returns -1 when the command
 * should go on, else the exit status to return: 0 after --help, 2 for a bad
 * flag, variable or file key.
 */
static int
main__config(struct config *cfg, int argc, char **argv)
{
	struct config_error err;
	enum log_level level = LOG_LEVEL_INFO;
	int rc = config_load(cfg, argc, argv, environ, &err);

	if (rc == -ECANCELED) {
		main_help(0, NULL);
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "stratosd: %s\n", rc == -ENOMEM ? "out of memory" : err.message);
		return 2;
	}
	log_level_parse(cfg->log_level, &level);
	log_set_level(level);
	return -1;
}

/* ---- stratosd doctor ------------------------------------------------------ */

static int
main_doctor(int argc, char **argv)
{
	struct config cfg;
	enum log_level level = LOG_LEVEL_ERROR;
	int rc = main__config(&cfg, argc, argv);

	if (rc >= 0) {
		config_free(&cfg);
		return rc;
	}
	/* The table is the output: logs only when asked for. */
	if (config_source_of(&cfg, "log-level") == CONFIG_SOURCE_DEFAULT)
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

/* ---- stratosd serve ------------------------------------------------------- */

/*
 * Everything `serve` runs. Modules of later issues (Kubernetes caches, leader
 * election, the pool controller, the EC2 client, the pools registry) get a
 * field here, are created in main__serve_init_modules, handed to their
 * handlers in main__serve_routes, started in main__serve_start_modules and
 * stopped in main__serve_stop_modules.
 */
struct main_serve {
	struct config cfg;
	struct server_ready *ready;     /* modules register their /readyz checks here */
	struct server *metrics;         /* plain HTTP: /metrics, /healthz, /readyz */
	struct server *https;           /* webhooks, extender, /healthz, /readyz */
	/* Kubernetes: NULL when no configuration exists at all (webhooks-only runs). */
	struct kube *kube;
	struct kube *kube_fast;         /* the extender's calls inside the filter call */
	char *namespace;                /* of the Lease */
	char identity[LEADER_IDENTITY_MAX];
	struct node_cache *nodes;
	struct pod_cache *pods;
	struct crd_cache *nodepools;
	struct crd_cache *nodeclasses;
	struct leader *leader;          /* --leader-elect */
	struct kube_recorder *events;
	struct pools *pools;            /* NodePools and AWSNodeClasses: --pools-file or the watches */
	/* AWS: only with a cluster and --cluster-name (the instances are tagged with it). */
	char region[LIMITS_AWS_REGION + 1];
	struct aws_credentials_provider *aws;
	struct ec2_client *ec2;
	struct pool_ctx pool;           /* what the extender and the controller share */
	struct pool_ctx pool_fast;      /* the same with kube_fast, for the extender */
	struct controller *controller;  /* with a cluster, EC2 and the cluster's NodePools */
	struct mutate_pod *mutate_pod;
	struct validate_webhook *validate_webhook;
	struct extender *extender;      /* only with a Kubernetes configuration */
	struct placed *placed;          /* the binding tracker of the extender and the controller */
};

static bool
main__pools_ready(void *ctx, char *why, size_t why_len)
{
	if (pools_loaded(ctx))
		return true;
	snprintf(why, why_len, "NodePools and AWSNodeClasses not loaded yet");
	return false;
}

/* The API client, the caches and the elector. Returns 0 or an exit status. */
static int
main__serve_init_kube(struct main_serve *m)
{
	struct kube_config kc;
	struct kubeconfig_error kerr;
	int rc;

	rc = kubeconfig_resolve(m->cfg.kubeconfig, environ, &kc, &kerr);
	if (rc == -ENOENT && m->cfg.kubeconfig == NULL) {
		log_warn("%s; running without the Kubernetes caches (webhooks only)", kerr.message);
		kube_config_free(&kc);
		return 0;
	}
	if (rc < 0) {
		log_error("%s", kerr.message);
		kube_config_free(&kc);
		return 2;
	}
	if (leader_identity(m->identity, sizeof(m->identity)) < 0 ||
	    httpc_global_init() < 0 ||
	    (m->namespace = kubeconfig_daemon_namespace(m->cfg.namespace)) == NULL ||
	    (m->kube = kube_new(&kc, m->identity)) == NULL ||
	    (m->kube_fast = kube_new(&kc, m->identity)) == NULL) {
		log_error("cannot create the Kubernetes client");
		kube_config_free(&kc);
		return 1;
	}
	log_msg(LOG_LEVEL_INFO, json_pack("{s:s,s:s,s:s,s:s}", "server", kc.server, "config",
	    kc.source, "namespace", m->namespace, "identity", m->identity), "Kubernetes API");
	kube_config_free(&kc);
	/*
	 * The extender's own client: its connections never queue behind the
	 * controller's, and a stalled API server costs a filter call at most
	 * this much, well inside the scheduler's httpTimeout (10 s).
	 */
	kube_set_timeout(m->kube_fast, MAIN_FAST_PATH_KUBE_TIMEOUT_MS);
	if ((m->events = kube_recorder_new(m->kube)) == NULL)
		return 1;
	m->nodes = node_cache_new();
	m->pods = pod_cache_new();
	if (m->nodes == NULL || m->pods == NULL ||
	    server_ready_add(m->ready, "caches", cache_ready_check, NULL) < 0)
		return 1;
	/* With --pools-file the pools come from the file, not from the cluster. */
	if (m->cfg.pools_file == NULL) {
		m->nodepools = crd_cache_new_nodepools();
		m->nodeclasses = crd_cache_new_awsnodeclasses();
		if (m->nodepools == NULL || m->nodeclasses == NULL ||
		    crd_cache_feed_pools(m->nodepools, m->pools) < 0 ||
		    crd_cache_feed_pools(m->nodeclasses, m->pools) < 0 ||
		    server_ready_add(m->ready, "pools", main__pools_ready, m->pools) < 0)
			return 1;
	}
	return 0;
}

/*
 * The pool controller, when there is a cluster to manage (EC2) and the
 * cluster's NodePools to manage it by (it writes their status, finalizers
 * and launch records: not with --pools-file), and the elector that starts
 * and stops it. Returns 0 or an exit status.
 */
static int
main__serve_init_controller(struct main_serve *m)
{
	struct controller_options co = {
		.workers = (unsigned)m->cfg.controller_workers,
		.ec2_resync_ms = m->cfg.ec2_resync_ms,
		.ec2_poll_ms = m->cfg.ec2_poll_ms,
	};

	if (m->kube == NULL)
		return 0;
	if (m->ec2 != NULL && m->nodepools != NULL) {
		m->controller = controller_new(&m->pool, &co);
		if (m->controller == NULL)
			return 1;
	} else if (m->ec2 != NULL) {
		log_warn("--pools-file: the pool controller needs the cluster's NodePools; it is off");
	}
	if (m->cfg.leader_elect) {
		struct leader_config lc = {
			.namespace = m->namespace, .identity = m->identity,
			.on_started = m->controller != NULL ? controller_on_started : NULL,
			.on_stopped = m->controller != NULL ? controller_on_stopped : NULL,
			.ctx = m->controller,
		};
		m->leader = leader_new(m->kube, &lc);
		if (m->leader == NULL)
			return 1;
		if (m->controller != NULL)
			controller_set_leader(m->controller, m->leader);
	}
	return 0;
}

/*
 * The AWS side: credentials, region and a warm EC2 client, when there is a
 * cluster to manage (a Kubernetes configuration and --cluster-name). A
 * cluster name without credentials is a configuration error: the daemon
 * would answer every filter call without ever being able to start a node.
 * Returns 0 or an exit status.
 */
static int
main__serve_init_aws(struct main_serve *m)
{
	struct aws_credentials_error cerr;
	struct ec2_options eo;
	struct ec2_error eerr;
	const char *source = NULL;

	if (m->kube == NULL)
		return 0;
	if (m->cfg.cluster_name == NULL || m->cfg.cluster_name[0] == '\0') {
		log_warn("no --cluster-name: no standby node can be started (the extender offers "
		    "usable nodes only) and the pool controller is off");
		return 0;
	}
	if (aws_region_resolve(m->cfg.aws_region, NULL, m->region, sizeof(m->region), &source,
	    &cerr) < 0) {
		log_error("--aws-region: %s", cerr.message);
		return 2;
	}
	struct aws_credentials_options co = { .region = m->region };
	if (aws_credentials_provider_new(&co, &m->aws, &cerr) < 0) {
		log_error("AWS credentials: %s", cerr.message);
		return 2;
	}
	ec2_options_from_config(&m->cfg, m->region, m->aws, &eo);
	if (ec2_client_new(&eo, &m->ec2, &eerr) < 0) {
		log_error("EC2 client: %s", eerr.message);
		return 2;
	}
	log_msg(LOG_LEVEL_INFO, json_pack("{s:s,s:s,s:s,s:s,s:s}", "cluster", m->cfg.cluster_name,
	    "region", m->region, "region_from", source != NULL ? source : "", "endpoint",
	    ec2_client_endpoint(m->ec2), "credentials", aws_credentials_source_name(
	    aws_credentials_provider_source(m->aws))), "EC2 client ready");
	return 0;
}

/* Creates the modules the handlers need. Returns 0 or an exit status. */
static int
main__serve_init_modules(struct main_serve *m)
{
	struct mutate_pod_options mo = {
		.scheduler_name = m->cfg.scheduler_name,
		.managed_resource = m->cfg.managed_resource,
	};
	const struct pools_snapshot *snap;
	int rc;

	m->pools = pools_new();
	if (m->pools == NULL)
		return 1;
	if (m->cfg.pools_file != NULL) {
		/* Every violation is printed; a bad file is a configuration error. */
		rc = pools_file_load(m->pools, m->cfg.pools_file, stderr);
		if (rc < 0) {
			log_error("--pools-file %s: not loaded", m->cfg.pools_file);
			return rc == -ENOMEM ? 1 : 2;
		}
		snap = pools_acquire(m->pools);
		log_msg(LOG_LEVEL_INFO, json_pack("{s:s, s:i, s:i}", "file", m->cfg.pools_file,
		    "nodepools", (int)snap->nnodepools, "awsnodeclasses", (int)snap->nnodeclasses),
		    "pools file loaded");
		pools_release(snap);
		if (server_ready_add(m->ready, "pools", main__pools_ready, m->pools) < 0)
			return 1;
	}
	if ((rc = main__serve_init_kube(m)) != 0)
		return rc;
	if ((rc = main__serve_init_aws(m)) != 0)
		return rc;
	m->pool = (struct pool_ctx){
		.kube = m->kube, .nodes = m->nodes, .pods = m->pods, .nodepools = m->nodepools,
		.pools = m->pools, .ec2 = m->ec2, .events = m->events, .cluster = m->cfg.cluster_name,
		.region = m->region, .identity = m->identity, .namespace = m->namespace,
		.start_budget_ms = m->cfg.start_budget_ms,
	};
	m->mutate_pod = mutate_pod_new(m->pools, &mo);
	/* Without a cluster the node counts are unknown and the webhook says so. */
	struct validate_webhook_options vo = {
		.pool_nodes = m->nodes != NULL ? node_cache_pool_size : NULL,
		.pool_nodes_ctx = m->nodes,
	};
	m->validate_webhook = validate_webhook_new(m->pools, &vo);
	if (m->mutate_pod == NULL || m->validate_webhook == NULL)
		return 1;
	/* The extender judges nodes by the caches: without a cluster there is nothing to judge. */
	m->pool_fast = m->pool;
	m->pool_fast.kube = m->kube_fast;
	if (m->kube != NULL) {
		/* One tracker for both paths, so a pod's binding is measured once. */
		if ((m->placed = placed_new(&m->pool_fast)) == NULL)
			return 1;
		m->pool.placed = m->pool_fast.placed = m->placed;
		if ((m->extender = extender_new(&m->pool_fast)) == NULL)
			return 1;
	}
	return main__serve_init_controller(m);
}

/* Frees what main__serve_init_modules made, once no server calls a handler any more. */
static void
main__serve_free_modules(struct main_serve *m)
{
	mutate_pod_free(m->mutate_pod);
	validate_webhook_free(m->validate_webhook);
	extender_free(m->extender);
	pools_free(m->pools);
}

/*
 * Every route of both servers, in one table. Admission webhooks expect JSON
 * (SERVER_ROUTE_JSON); the extender paths also need SERVER_ROUTE_CLIENT_CERT.
 * Routes marked kube exist only when a Kubernetes configuration was found.
 */
static int
main__serve_routes(struct main_serve *m)
{
	const struct {
		struct server *server;
		const char *method;
		const char *path;
		unsigned flags;
		server_handler_fn fn;
		void *ctx;
		bool kube;
	} routes[] = {
		{ m->https, "POST", "/admission/mutate-pod", SERVER_ROUTE_JSON,
		  mutate_pod_handle, m->mutate_pod, false },
		{ m->https, "POST", "/admission/validate-nodepool", SERVER_ROUTE_JSON,
		  validate_webhook_nodepool_handle, m->validate_webhook, false },
		{ m->https, "POST", "/admission/validate-awsnodeclass", SERVER_ROUTE_JSON,
		  validate_webhook_nodeclass_handle, m->validate_webhook, false },
		/* The filter may claim and start a node: it waits on a blocking worker then. */
		{ m->https, "POST", "/scheduler/filter",
		  SERVER_ROUTE_JSON | SERVER_ROUTE_BLOCKING | SERVER_ROUTE_CLIENT_CERT,
		  extender_filter_handle, m->extender, true },
		{ m->https, "POST", "/scheduler/prioritize", SERVER_ROUTE_JSON | SERVER_ROUTE_CLIENT_CERT,
		  extender_prioritize_handle, m->extender, true },
		{ m->metrics, "GET", "/metrics", 0, server_handle_metrics, NULL, false },
		/* Read-only views of the caches. */
		{ m->metrics, "GET", "/debug/caches", 0, debug_handle_caches, NULL, true },
		{ m->metrics, "GET", "/debug/caches/nodes", 0, debug_handle_caches, "nodes", true },
		{ m->metrics, "GET", "/debug/caches/pods", 0, debug_handle_caches, "pods", true },
		{ m->metrics, "GET", "/debug/caches/nodepools", 0, debug_handle_caches, "nodepools",
		  true },
		{ m->metrics, "GET", "/debug/caches/awsnodeclasses", 0, debug_handle_caches,
		  "awsnodeclasses", true },
	};

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (routes[i].kube && m->kube == NULL)
			continue;
		if (server_route(routes[i].server, routes[i].method, routes[i].path, routes[i].flags,
		    routes[i].fn, routes[i].ctx) < 0) {
			fprintf(stderr, "stratosd: cannot route %s %s\n", routes[i].method,
			    routes[i].path);
			return 1;
		}
	}
	return 0;
}

/* Starts background threads (watches, controller). Returns 0 or an exit status. */
static int
main__serve_start_modules(struct main_serve *m)
{
	if (m->kube == NULL)
		return 0;
	if (node_cache_start(m->nodes, m->kube) < 0 || pod_cache_start(m->pods, m->kube) < 0 ||
	    (m->nodepools != NULL && crd_cache_start(m->nodepools, m->kube) < 0) ||
	    (m->nodeclasses != NULL && crd_cache_start(m->nodeclasses, m->kube) < 0)) {
		log_error("cannot start the Kubernetes watches");
		return 1;
	}
	if (m->placed != NULL && placed_start(m->placed) < 0) {
		log_error("cannot start the binding tracker");
		return 1;
	}
	/*
	 * The fast path must find its EC2 connections open (DESIGN §6.3: no TLS
	 * handshake there). Before the controller starts: warming holds every
	 * pooled connection, and would wait out its deadline behind the
	 * controller's first calls.
	 */
	if (m->ec2 != NULL && ec2_client_warm(m->ec2, time_mono_ms() + 5000) < 1)
		log_warn("EC2 endpoint %s does not answer yet; calls will connect on demand",
		    ec2_client_endpoint(m->ec2));
	if (m->leader != NULL && leader_start(m->leader) < 0) {
		log_error("cannot start leader election");
		return 1;
	}
	/* Without --leader-elect the controller acts from the start (one replica). */
	if (m->leader == NULL && m->controller != NULL && controller_start(m->controller) < 0) {
		log_error("cannot start the pool controller");
		return 1;
	}
	return 0;
}

/* Stops background threads, in the reverse order of their start. Must cope
 * with modules never created or started (start-up failed half-way). */
static void
main__serve_stop_modules(struct main_serve *m)
{
	/* Leader work stops, then the Lease is released for the next replica. */
	leader_free(m->leader);
	controller_free(m->controller);
	m->controller = NULL;
	/* The binding tracker follows the caches: it stops before they go (and after its users). */
	placed_free(m->placed);
	m->placed = NULL;
	m->pool.placed = m->pool_fast.placed = NULL;
	ec2_client_free(m->ec2);
	m->ec2 = NULL;
	aws_credentials_provider_free(m->aws);
	m->aws = NULL;
	kube_recorder_free(m->events, 2000);
	m->events = NULL;
	crd_cache_free(m->nodeclasses);
	crd_cache_free(m->nodepools);
	pod_cache_free(m->pods);
	node_cache_free(m->nodes);
	kube_free(m->kube_fast);
	kube_free(m->kube);
	free(m->namespace);
}

/* Lets 1,000+ connections in: the soft descriptor limit up to the hard one. */
static void
main__raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int
main__serve_servers(struct main_serve *m)
{
	struct server_options mo = {
		.name = "metrics",
		.listen = m->cfg.metrics_listen,
		.listen_flag = "--metrics-listen",
		.max_body_bytes = LIMITS_METRICS_BODY,
		.max_connections = LIMITS_METRICS_CONNECTIONS,
		.idle_timeout_ms = m->cfg.idle_timeout_ms,
		.threads = 1,
		.ready = m->ready,
	};
	struct server_options ho = {
		.name = "https",
		.listen = m->cfg.listen,
		.listen_flag = "--listen",
		.tls_cert = m->cfg.insecure_http ? NULL : m->cfg.tls_cert,
		.tls_key = m->cfg.insecure_http ? NULL : m->cfg.tls_key,
		.client_ca = m->cfg.client_ca,
		.max_body_bytes = m->cfg.max_body_bytes,
		.max_connections = (unsigned)m->cfg.max_connections,
		.idle_timeout_ms = m->cfg.idle_timeout_ms,
		.threads = (unsigned)m->cfg.threads,
		.blocking_threads = (unsigned)m->cfg.blocking_threads,
		.ready = m->ready,
	};

	m->metrics = server_new(&mo);
	m->https = server_new(&ho);
	if (m->metrics == NULL || m->https == NULL) {
		fprintf(stderr, "stratosd: out of memory\n");
		return 1;
	}
	return main__serve_routes(m);
}

/* Checks the flag combinations config_load cannot. Returns 0 or 2. */
static int
main__serve_check(const struct config *cfg)
{
	if (cfg->insecure_http) {
		if (cfg->client_ca != NULL) {
			fprintf(stderr, "stratosd: --client-ca: needs TLS, not --insecure-http\n");
			return 2;
		}
		return 0;
	}
	if (cfg->tls_cert == NULL || cfg->tls_key == NULL) {
		fprintf(stderr, "stratosd: %s: required (the API server and the scheduler call "
		    "over HTTPS; --insecure-http serves plain HTTP for tests)\n",
		    cfg->tls_cert == NULL ? "--tls-cert" : "--tls-key");
		return 2;
	}
	return 0;
}

static int
main__serve_start(struct server *s)
{
	struct server_error err;
	int rc = server_start(s, &err);

	if (rc == 0)
		return 0;
	log_error("%s", err.message);
	/* A bad address or certificate is a configuration error. */
	return rc == -EINVAL || rc == -ENOENT || rc == -EACCES || rc == -EFBIG ? 2 : 1;
}

static int
main_serve(int argc, char **argv)
{
	struct main_serve m;
	int64_t t0 = time_mono_ms();
	sigset_t sigs;
	int rc, sig;

	memset(&m, 0, sizeof(m));
	rc = main__config(&m.cfg, argc, argv);
	if (rc >= 0) {
		/* --help, or a bad flag: nothing to serve. */
		config_free(&m.cfg);
		return rc;
	}
	rc = main__serve_check(&m.cfg);
	if (rc != 0 || m.cfg.nargs > 0) {
		if (rc == 0) {
			fprintf(stderr, "stratosd serve: unexpected argument \"%s\"\n", m.cfg.args[0]);
			rc = 2;
		}
		config_free(&m.cfg);
		return rc;
	}
	if (m.cfg.insecure_http)
		log_warn("--insecure-http: serving %s over plain HTTP; admission webhooks need TLS",
		    m.cfg.listen);

	/*
	 * LIST pages and watch events are megabyte buffers freed at once: keep
	 * them out of the heaps where they would pin the small cache objects'
	 * pages (a fixed threshold also stops glibc raising it after a big free).
	 */
	mallopt(M_MMAP_THRESHOLD, 1024 * 1024);

	/* Every thread inherits this mask; only the main thread takes the signals. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	main__raise_nofile();

	m.ready = server_ready_new();
	rc = m.ready == NULL ? 1 : main__serve_init_modules(&m);
	if (rc == 0)
		rc = main__serve_servers(&m);
	if (rc == 0)
		rc = main__serve_start(m.metrics);
	if (rc == 0)
		rc = main__serve_start(m.https);
	if (rc == 0)
		rc = main__serve_start_modules(&m);
	if (rc != 0)
		goto out;

	log_msg(LOG_LEVEL_INFO, json_pack("{s:s,s:s,s:s,s:b,s:i,s:I,s:I}",
	    "version", STRATOS_VERSION, "listen", server_address(m.https),
	    "metrics_listen", server_address(m.metrics), "tls", !m.cfg.insecure_http,
	    "threads", (int)m.cfg.threads, "max_body_bytes", (json_int_t)m.cfg.max_body_bytes,
	    "startup_ms", (json_int_t)(time_mono_ms() - t0)),
	    "stratosd serving on %s (metrics on %s)", server_address(m.https),
	    server_address(m.metrics));

	for (;;) {
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_info("SIGHUP: reloading the certificate");
			server_reload_tls(m.https);
			continue;
		}
		log_msg(LOG_LEVEL_INFO, json_pack("{s:s}", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"),
		    "shutting down: finishing requests in flight (up to %d ms)", SERVER_STOP_GRACE_MS);
		break;
	}
	t0 = time_mono_ms();
	server_stop(m.https, SERVER_STOP_GRACE_MS);
out:
	main__serve_stop_modules(&m);
	server_stop(m.metrics, 1000);
	if (rc == 0)
		log_msg(LOG_LEVEL_INFO, json_pack("{s:I}", "shutdown_ms",
		    (json_int_t)(time_mono_ms() - t0)), "stopped");
	server_free(m.https);
	server_free(m.metrics);
	main__serve_free_modules(&m);
	server_ready_free(m.ready);
	config_free(&m.cfg);
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
