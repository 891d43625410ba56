/* stratosd doctor: checks region, credentials, endpoint and EC2 permissions once, prints a table. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "stratos/aws_credentials.h"
#include "stratos/config.h"
#include "stratos/doctor.h"
#include "stratos/ec2.h"
#include "stratos/kube.h"
#include "stratos/kubeconfig.h"
#include "stratos/log.h"
#include "stratos/timeutil.h"
#include "stratos/yamljson.h"

#define DOCTOR__ROWS 24

extern char **environ;
#define DOCTOR__DRY_RUN_BUDGET_MS 15000
/* Syntactically valid ids that exist nowhere: what a dry run targets when nothing better is known. */
#define DOCTOR__FAKE_INSTANCE "i-0000000000000000f"
#define DOCTOR__FAKE_IMAGE    "ami-00000000000000000"

struct doctor__row {
	char check[48];
	const char *result;         /* "ok", "FAIL", "warn", "unknown", "skipped" */
	char detail[600];
	bool fatal;
};

struct doctor {
	struct doctor__row rows[DOCTOR__ROWS];
	size_t nrows;
	int status;
};

static void
doctor__row(struct doctor *d, const char *check, const char *result, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
doctor__row(struct doctor *d, const char *check, const char *result, const char *fmt, ...)
{
	struct doctor__row *r;
	va_list ap;

	if (d->nrows >= DOCTOR__ROWS)
		return;
	r = &d->rows[d->nrows++];
	snprintf(r->check, sizeof(r->check), "%s", check);
	r->result = result;
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
	r->fatal = strcmp(result, "FAIL") == 0;
	if (r->fatal)
		d->status = 1;
}

static void
doctor__print(const struct doctor *d)
{
	printf("%-28s %-8s %s\n", "CHECK", "RESULT", "DETAIL");
	for (size_t i = 0; i < d->nrows; i++) {
		const struct doctor__row *r = &d->rows[i];
		/* One line per row: a detail never breaks the table. */
		char detail[sizeof(r->detail)];
		snprintf(detail, sizeof(detail), "%s", r->detail);
		for (char *p = detail; *p != '\0'; p++)
			if (*p == '\n' || *p == '\r' || *p == '\t')
				*p = ' ';
		printf("%-28s %-8s %s\n", r->check, r->result, detail);
	}
	printf("\n%s\n", d->status == 0 ? "doctor: everything required is in place" :
	    "doctor: something required is missing (see FAIL above)");
	fflush(stdout);
}

/* "AKIA…0001": enough to tell keys apart, nothing more. */
static void
doctor__mask(const char *key, char *out, size_t len)
{
	size_t n = strlen(key);

	if (n <= 8)
		snprintf(out, len, "****");
	else
		snprintf(out, len, "%.4s…%s", key, key + n - 4);
}

/* What RunInstances is dry-run with: the first AWSNodeClass of --pools-file, else stand-ins. */
struct doctor__launch {
	json_t *docs;
	const char *image, *type, *subnet, *profile, *source;
	const char *sgs[16];
	size_t nsgs;
};

static void
doctor__launch_params(struct doctor *d, const struct config *cfg, struct doctor__launch *l)
{
	struct yamljson_error yerr;
	size_t i;
	json_t *doc;

	memset(l, 0, sizeof(*l));
	l->image = DOCTOR__FAKE_IMAGE;
	l->type = "t3.micro";
	l->source = "stand-in parameters";
	if (cfg->pools_file == NULL)
		return;
	if (yamljson_parse_file(cfg->pools_file, &l->docs, &yerr) < 0) {
		if (yerr.line > 0)
			doctor__row(d, "pools file", "FAIL", "%s:%d:%d: %s", cfg->pools_file, yerr.line,
			    yerr.column, yerr.message);
		else
			doctor__row(d, "pools file", "FAIL", "%s: %s", cfg->pools_file, yerr.message);
		return;
	}
	json_array_foreach(l->docs, i, doc) {
		json_t *spec = json_object_get(doc, "spec"), *sg;
		size_t j;
		const char *kind = json_string_value(json_object_get(doc, "kind"));
		if (kind == NULL || strcmp(kind, "AWSNodeClass") != 0 || !json_is_object(spec))
			continue;
		if (json_string_value(json_object_get(spec, "ami")) != NULL)
			l->image = json_string_value(json_object_get(spec, "ami"));
		if (json_string_value(json_object_get(spec, "instanceType")) != NULL)
			l->type = json_string_value(json_object_get(spec, "instanceType"));
		l->subnet = json_string_value(json_array_get(json_object_get(spec, "subnetIds"), 0));
		l->profile = json_string_value(json_object_get(spec, "iamInstanceProfile"));
		json_array_foreach(json_object_get(spec, "securityGroupIds"), j, sg)
			if (json_is_string(sg) && l->nsgs < 16)
				l->sgs[l->nsgs++] = json_string_value(sg);
		l->source = "the first AWSNodeClass of --pools-file";
		return;
	}
}

/* One dry run: a row saying allowed, denied or inconclusive. */
static void
doctor__dry_run(struct doctor *d, struct ec2_client *ec2, enum ec2_op op, const char *target,
    const struct doctor__launch *l)
{
	struct ec2_call call = { .deadline_ms = time_mono_ms() + DOCTOR__DRY_RUN_BUDGET_MS,
	    .dry_run = true };
	const char *ids[] = { target };
	const struct ec2_tag tag = { "stratos.sh/doctor", "dry-run" };
	struct ec2_error err = { 0 };
	char check[48];
	int rc;

	snprintf(check, sizeof(check), "ec2:%s", ec2_op_name(op));
	switch (op) {
	case EC2_OP_RUN_INSTANCES: {
		struct ec2_run_params p = { .image_id = l->image, .instance_type = l->type,
		    .subnet_id = l->subnet, .security_group_ids = l->sgs,
		    .nsecurity_groups = l->nsgs, .iam_instance_profile = l->profile };
		rc = ec2_run_instances(ec2, &p, &call, NULL, &err);
		break;
	}
	case EC2_OP_START_INSTANCES:
		rc = ec2_start_instances(ec2, ids, 1, &call, NULL, &err);
		break;
	case EC2_OP_STOP_INSTANCES:
		rc = ec2_stop_instances(ec2, ids, 1, false, &call, NULL, &err);
		break;
	case EC2_OP_TERMINATE_INSTANCES:
		rc = ec2_terminate_instances(ec2, ids, 1, &call, NULL, &err);
		break;
	case EC2_OP_DESCRIBE_INSTANCES:
		rc = ec2_describe_instances(ec2, NULL, 0, NULL, 0, &call, NULL, &err);
		break;
	case EC2_OP_CREATE_TAGS:
		rc = ec2_create_tags(ec2, ids, 1, &tag, 1, &call, &err);
		break;
	default:
		rc = ec2_delete_tags(ec2, ids, 1, &tag, 1, &call, &err);
		break;
	}
	if (rc == 0) {
		doctor__row(d, check, "ok", "permitted (DryRunOperation)");
	} else if (strcmp(err.code, "UnauthorizedOperation") == 0 ||
	    strcmp(err.code, "AccessDenied") == 0) {
		doctor__row(d, check, "FAIL", "denied: %s: %.300s", err.code, err.message);
	} else if (err.cls == EC2_ERR_AUTH) {
		doctor__row(d, check, "FAIL", "credentials refused: %s: %.300s", err.code, err.message);
	} else if (err.cls == EC2_ERR_NOT_FOUND || strstr(err.code, ".Malformed") != NULL ||
	    strncmp(err.code, "InvalidParameter", 16) == 0) {
		/* EC2 validated the parameters before the permission: no verdict. */
		doctor__row(d, check, "unknown", "inconclusive, EC2 answered %s: %.300s", err.code,
		    err.message);
	} else {
		doctor__row(d, check, "FAIL", "%s (%s): %.300s", err.code,
		    ec2_error_class_name(err.cls), err.message);
	}
}

/* An instance of the cluster to aim the instance-level dry runs at, if any. */
static void
doctor__target(const struct config *cfg, struct ec2_client *ec2, char *out, size_t len,
    const char **why)
{
	struct ec2_call call = { .deadline_ms = time_mono_ms() + DOCTOR__DRY_RUN_BUDGET_MS };
	struct ec2_instances list = { 0 };
	struct ec2_error err;

	snprintf(out, len, "%s", DOCTOR__FAKE_INSTANCE);
	*why = "a stand-in instance id (no --cluster-name, or no instance of the cluster)";
	if (cfg->cluster_name == NULL || cfg->cluster_name[0] == '\0')
		return;
	if (ec2_describe_cluster_instances(ec2, cfg->cluster_name, NULL, NULL, &call, &list,
	    &err) == 0 && list.len > 0) {
		for (size_t i = 0; i < list.len; i++) {
			if (list.v[i].state_code != EC2_STATE_TERMINATED) {
				snprintf(out, len, "%s", list.v[i].id);
				*why = "an instance of the cluster";
				break;
			}
		}
	}
	ec2_instances_free(&list);
}

/* Region, credentials, endpoint and EC2 permissions; stops at the first step that fails. */
static void
doctor__aws(struct doctor *d_out, const struct config *cfg)
{
	static const enum ec2_op required[] = {
		EC2_OP_DESCRIBE_INSTANCES, EC2_OP_RUN_INSTANCES, EC2_OP_START_INSTANCES,
		EC2_OP_STOP_INSTANCES, EC2_OP_TERMINATE_INSTANCES, EC2_OP_CREATE_TAGS,
	};
	struct doctor *d = d_out;
	struct aws_credentials_provider *creds = NULL;
	struct aws_credentials_error cerr;
	struct aws_caller_identity id;
	struct aws_credentials c;
	struct ec2_client *ec2 = NULL;
	struct ec2_options eo;
	struct ec2_error eerr;
	struct doctor__launch launch;
	const char *source = NULL, *why = NULL;
	char region[LIMITS_AWS_REGION + 1], masked[32], when[TIME_RFC3339_LEN], target[32];
	int64_t t0;

	memset(&launch, 0, sizeof(launch));
	/* 1. Region. */
	if (aws_region_resolve(cfg->aws_region, NULL, region, sizeof(region), &source, &cerr) < 0) {
		doctor__row(d, "region", "FAIL", "%s", cerr.message);
		goto out;
	}
	doctor__row(d, "region", "ok", "%s (from %s)", region, source);

	/* 2. Credentials and who they belong to. */
	struct aws_credentials_options co = { .region = region };
	if (aws_credentials_provider_new(&co, &creds, &cerr) < 0) {
		doctor__row(d, "credentials", "FAIL", "%s", cerr.message);
		goto out;
	}
	if (aws_credentials_get(creds, &c) == 0) {
		doctor__mask(c.access_key_id, masked, sizeof(masked));
		if (c.expiration_ms > 0) {
			time_format_rfc3339(c.expiration_ms, when);
			doctor__row(d, "credentials", "ok", "%s, access key %s, temporary until %s "
			    "(refreshed in the background)", aws_credentials_source_name(c.source), masked,
			    when);
		} else {
			doctor__row(d, "credentials", "ok", "%s, access key %s, long-term",
			    aws_credentials_source_name(c.source), masked);
		}
		aws_credentials_wipe(&c);
	} else {
		doctor__row(d, "credentials", "FAIL", "%s credentials already expired",
		    aws_credentials_source_name(aws_credentials_provider_source(creds)));
	}
	if (aws_sts_get_caller_identity(creds, region, &id, &cerr) == 0)
		doctor__row(d, "identity", "ok", "%s (account %s)", id.arn, id.account);
	else
		doctor__row(d, "identity", "warn", "unknown: %s (EC2 checks below still tell)",
		    cerr.message);

	/* 3. Endpoint. */
	ec2_options_from_config(cfg, region, creds, &eo);
	eo.connections = 1;
	eo.keepalive_ms = -1;
	eo.max_attempts = 2;
	if (ec2_client_new(&eo, &ec2, &eerr) < 0) {
		doctor__row(d, "ec2 endpoint", "FAIL", "%s", eerr.message);
		goto out;
	}
	t0 = time_mono_ms();
	if (ec2_client_warm(ec2, time_mono_ms() + 10000) < 1) {
		doctor__row(d, "ec2 endpoint", "FAIL", "%s does not answer (DNS, network or TLS)",
		    ec2_client_endpoint(ec2));
		goto out;
	}
	doctor__row(d, "ec2 endpoint", "ok", "%s answers (%lld ms incl. connect)",
	    ec2_client_endpoint(ec2), (long long)(time_mono_ms() - t0));

	/* 4. Permissions, by dry run. */
	doctor__launch_params(d, cfg, &launch);
	doctor__target(cfg, ec2, target, sizeof(target), &why);
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		doctor__dry_run(d, ec2, required[i], target, &launch);
	doctor__row(d, "dry-run targets", "ok", "RunInstances with %s (%s, %s); instance actions "
	    "on %s, %s", launch.source, launch.image, launch.type, target, why);

out:
	json_decref(launch.docs);
	ec2_client_free(ec2);
	aws_credentials_provider_free(creds);
}

/*
 * What the manifests' ClusterRole and Role grant (manifests/base/rbac.yaml),
 * asked one SelfSubjectAccessReview each. namespaced: in the daemon's namespace.
 */
static const struct doctor__access {
	const char *verb;
	const char *group;
	const char *resource;
	bool namespaced;
	const char *name;
} doctor_access[] = {
	{ "get", "", "nodes", false, NULL },
	{ "list", "", "nodes", false, NULL },
	{ "watch", "", "nodes", false, NULL },
	{ "patch", "", "nodes", false, NULL },
	{ "delete", "", "nodes", false, NULL },
	{ "list", "", "pods", false, NULL },
	{ "watch", "", "pods", false, NULL },
	{ "get", "", "pods", false, NULL },
	{ "create", "", "pods/eviction", false, NULL },
	{ "create", "", "pods", true, NULL },
	{ "delete", "", "pods", true, NULL },
	{ "list", "stratos.sh", "nodepools", false, NULL },
	{ "watch", "stratos.sh", "nodepools", false, NULL },
	{ "patch", "stratos.sh", "nodepools", false, NULL },
	{ "patch", "stratos.sh", "nodepools/status", false, NULL },
	{ "list", "stratos.sh", "awsnodeclasses", false, NULL },
	{ "watch", "stratos.sh", "awsnodeclasses", false, NULL },
	{ "create", "events.k8s.io", "events", false, NULL },
	{ "create", "coordination.k8s.io", "leases", true, NULL },
	{ "get", "coordination.k8s.io", "leases", true, "stratos-controller" },
	{ "update", "coordination.k8s.io", "leases", true, "stratos-controller" },
};

/* The API server and the RBAC permissions stratosd needs, when a cluster is configured. */
static void
doctor__kube(struct doctor *d, const struct config *cfg)
{
	struct kube_config kc;
	struct kubeconfig_error kerr;
	struct kube_error err;
	struct kube *k = NULL;
	struct buf denied, unknown;
	char *ns = NULL;
	size_t nok = 0;
	int rc;

	buf_init(&denied, 4096);
	buf_init(&unknown, 4096);
	rc = kubeconfig_resolve(cfg->kubeconfig, environ, &kc, &kerr);
	if (rc == -ENOENT && cfg->kubeconfig == NULL) {
		doctor__row(d, "kubernetes api", "skipped", "no kubeconfig or in-cluster config found");
		goto out;
	}
	if (rc < 0) {
		doctor__row(d, "kubernetes api", "FAIL", "%s", kerr.message);
		goto out;
	}
	ns = kubeconfig_daemon_namespace(cfg->namespace);
	k = kube_new(&kc, "doctor");
	if (k == NULL || ns == NULL) {
		doctor__row(d, "kubernetes api", "FAIL", "cannot create the client (out of memory)");
		goto out;
	}
	for (size_t i = 0; i < sizeof(doctor_access) / sizeof(doctor_access[0]); i++) {
		const struct doctor__access *a = &doctor_access[i];
		bool allowed = false;
		char what[160];

		snprintf(what, sizeof(what), "%s %s%s%s%s%s", a->verb, a->resource,
		    a->group[0] != '\0' ? "." : "", a->group,
		    a->namespaced ? " in " : "", a->namespaced ? ns : "");
		if (kube_check_access(k, a->verb, a->group, a->resource, a->namespaced ? ns : NULL,
		    a->name, &allowed, &err) < 0) {
			if (i == 0) {
				doctor__row(d, "kubernetes api", "FAIL", "%s: %s", kc.server, err.message);
				goto out;
			}
			buf_printf(&unknown, "%s%s (%s)", unknown.len ? ", " : "", what, err.message);
		} else if (!allowed) {
			buf_printf(&denied, "%s%s", denied.len ? ", " : "", what);
		} else {
			nok++;
		}
		if (i == 0)
			doctor__row(d, "kubernetes api", "ok", "%s (%s)", kc.server, kc.source);
	}
	if (denied.len > 0)
		doctor__row(d, "kubernetes rbac", "FAIL", "denied: %s", denied.data);
	else if (unknown.len > 0)
		doctor__row(d, "kubernetes rbac", "warn", "could not check: %s", unknown.data);
	else
		doctor__row(d, "kubernetes rbac", "ok", "all %zu permissions granted "
		    "(SelfSubjectAccessReview; leases and pre-pull pods in %s)", nok, ns);
out:
	buf_free(&denied);
	buf_free(&unknown);
	kube_free(k);
	free(ns);
	kube_config_free(&kc);
}

int
doctor_run(const struct config *cfg)
{
	struct doctor d = { .status = 0 };

	doctor__aws(&d, cfg);
	doctor__kube(&d, cfg);
	doctor__print(&d);
	return d.status;
}
