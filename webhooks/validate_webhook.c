/* The validating webhooks for NodePool and AWSNodeClass (/admission/validate-nodepool, /admission/validate-awsnodeclass). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/admission.h"
#include "stratos/log.h"
#include "stratos/metrics.h"
#include "stratos/crd_validate.h"
#include "stratos/validate_webhook.h"

#define VALIDATE_WEBHOOK_GROUP "stratos.sh"

struct validate_webhook {
	struct pools *pools;
	struct validate_webhook_options opt;
	struct metrics_family *denials;
};

struct validate_webhook *
validate_webhook_new(struct pools *pools, const struct validate_webhook_options *opt)
{
	static const char *const labels[] = { "kind", NULL };
	struct validate_webhook *vr = calloc(1, sizeof(*vr));

	if (vr == NULL)
		return NULL;
	vr->pools = pools;
	if (opt != NULL)
		vr->opt = *opt;
	vr->denials = metrics_register(METRICS_COUNTER, "stratos_admission_denials_total",
	    "NodePool and AWSNodeClass requests the validating webhooks denied, by kind.",
	    labels, NULL, 0);
	return vr;
}

void
validate_webhook_free(struct validate_webhook *vr)
{
	free(vr);
}

/* Nodes of one pool, of every pool using a class, or -1 when unknown. */
static long
validate_webhook__nodes(const struct validate_webhook *vr, const struct pools_snapshot *snap,
    bool nodepool, const char *name)
{
	long total = 0;
	size_t users = 0;

	if (nodepool)
		return vr->opt.pool_nodes != NULL ? vr->opt.pool_nodes(vr->opt.pool_nodes_ctx, name) : -1;
	if (!snap->loaded)
		return -1;
	for (size_t i = 0; i < snap->nnodepools; i++) {
		const struct nodepool *np = snap->nodepools[i];
		long n;

		if (strcmp(np->node_class_name, name) != 0)
			continue;
		users++;
		n = vr->opt.pool_nodes != NULL ? vr->opt.pool_nodes(vr->opt.pool_nodes_ctx, np->name) : -1;
		if (n < 0)
			return -1;
		total += n;
	}
	return users > 0 ? total : 0;
}

/* `Kind "name" is invalid: f1: m1; f2: m2` within LIMITS_ADMISSION_MESSAGE. */
static char *
validate_webhook__message(const char *kind, const char *name,
    const struct fieldcheck_report *rep)
{
	struct buf msg, item;
	size_t shown = 0;

	buf_init(&msg, LIMITS_ADMISSION_MESSAGE);
	buf_init(&item, LIMITS_ADMISSION_MESSAGE);
	if (buf_printf(&msg, "%s \"%s\" is invalid: ", kind, name) < 0)
		goto fail;
	for (size_t i = 0; i < rep->nviolations; i++) {
		buf_reset(&item);
		if (fieldcheck_issue_format(&rep->violations[i], &item) < 0 ||
		    msg.len + item.len + 64 > LIMITS_ADMISSION_MESSAGE)
			break;
		if ((i > 0 && buf_append_str(&msg, "; ") < 0) || buf_append(&msg, item.data, item.len) < 0)
			goto fail;
		shown++;
	}
	if (shown < rep->nviolations + rep->dropped &&
	    buf_printf(&msg, "; and %zu more", rep->nviolations + rep->dropped - shown) < 0)
		goto fail;
	buf_free(&item);
	return buf_take(&msg);
fail:
	buf_free(&item);
	buf_free(&msg);
	return NULL;
}

static json_t *
validate_webhook__details(const char *kind, const char *name,
    const struct fieldcheck_report *rep)
{
	json_t *causes = json_array();
	json_t *details = json_pack("{s:s, s:s, s:s, s:o}", "name", name, "group",
	    VALIDATE_WEBHOOK_GROUP, "kind", kind, "causes", causes);

	if (details == NULL)
		return NULL;
	for (size_t i = 0; i < rep->nviolations; i++) {
		json_t *c = json_pack("{s:s, s:s, s:s}", "reason", "FieldValueInvalid", "message",
		    rep->violations[i].message, "field", rep->violations[i].field);
		if (c == NULL || json_array_append_new(causes, c) < 0) {
			json_decref(details);
			return NULL;
		}
	}
	return details;
}

static void
validate_webhook__handle(struct validate_webhook *vr, const struct server_request *req,
    struct server_response *resp, bool nodepool)
{
	const char *want = nodepool ? NODEPOOL_KIND : NODECLASS_KIND;
	const char *handler = nodepool ? "validate-nodepool" : "validate-awsnodeclass";
	struct admission_request ar;
	struct admission_verdict v = { .allowed = true };
	struct fieldcheck_report rep;
	struct crd_validate_input in = { .nodes = -1 };
	const struct pools_snapshot *snap;
	const char *warnings[LIMITS_ADMISSION_WARNINGS];
	char *texts[LIMITS_ADMISSION_WARNINGS] = { NULL };
	char *message = NULL;
	json_t *details = NULL;
	char err[256];
	const char *name;
	int status, rc;

	fieldcheck_report_init(&rep);
	if (admission_request_parse(req, &ar, &status, err, sizeof(err)) < 0) {
		log_msg(LOG_LEVEL_WARN, json_pack("{s:s}", "handler", handler),
		    "bad admission request: %s", err);
		admission_respond_error(resp, status, err);
		admission_request_free(&ar);
		return;
	}
	if (strcmp(ar.group, VALIDATE_WEBHOOK_GROUP) != 0 || strcmp(ar.kind, want) != 0 ||
	    ar.sub_resource[0] != '\0' || strcmp(ar.operation, "CONNECT") == 0) {
		if (strcmp(ar.kind, want) != 0)
			log_msg(LOG_LEVEL_WARN, json_pack("{s:s, s:s}", "handler", handler, "kind", ar.kind),
			    "admission request for another kind allowed unchecked");
		(void)admission_respond(resp, ar.uid, &v);
		admission_request_free(&ar);
		return;
	}
	in.op = strcmp(ar.operation, "CREATE") == 0 ? CRD_VALIDATE_CREATE :
	    strcmp(ar.operation, "UPDATE") == 0 ? CRD_VALIDATE_UPDATE : CRD_VALIDATE_DELETE;
	in.object = ar.object;
	in.old_object = ar.old_object;
	name = ar.name;
	if (name[0] == '\0')
		name = json_string_value(json_object_get(json_object_get(ar.object, "metadata"),
		    "name"));
	if (name == NULL)
		name = "";
	if ((in.op != CRD_VALIDATE_DELETE && in.object == NULL) ||
	    (in.op == CRD_VALIDATE_DELETE && in.old_object == NULL)) {
		admission_respond_error(resp, 400, in.op == CRD_VALIDATE_DELETE ?
		    "request.oldObject is required for DELETE" : "request.object is required");
		admission_request_free(&ar);
		return;
	}
	snap = pools_acquire(vr->pools);
	in.snap = snap;
	in.nodes = validate_webhook__nodes(vr, snap, nodepool, name);
	rc = nodepool ? crd_validate_nodepool(&in, &rep) : crd_validate_nodeclass(&in, &rep);
	pools_release(snap);
	if (rc < 0) {
		admission_respond_error(resp, 500, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < rep.nwarnings && v.nwarnings < LIMITS_ADMISSION_WARNINGS; i++) {
		struct buf b;
		buf_init(&b, 4096);
		if (fieldcheck_issue_format(&rep.warnings[i], &b) == 0 && b.data != NULL) {
			texts[v.nwarnings] = buf_take(&b);
			warnings[v.nwarnings] = texts[v.nwarnings];
			v.nwarnings++;
		}
		buf_free(&b);
	}
	v.warnings = warnings;
	if (rep.nviolations + rep.dropped > 0) {
		message = validate_webhook__message(want, name, &rep);
		details = validate_webhook__details(want, name, &rep);
		v.allowed = false;
		v.code = 422;
		v.reason = "Invalid";
		v.message = message != NULL ? message : "invalid (details lost: out of memory)";
		v.details = details;
		metrics_counter_add(vr->denials, 1, want);
		log_msg(LOG_LEVEL_INFO, json_pack("{s:s, s:s, s:s, s:i, s:b}", "handler", handler,
		    "kind", want, "name", name, "violations", (int)rep.nviolations, "dryRun",
		    ar.dry_run), "denied %s %s", ar.operation, want);
	}
	(void)admission_respond(resp, ar.uid, &v);
out:
	for (size_t i = 0; i < LIMITS_ADMISSION_WARNINGS; i++)
		free(texts[i]);
	free(message);
	json_decref(details);
	fieldcheck_report_free(&rep);
	admission_request_free(&ar);
}

void
validate_webhook_nodepool_handle(void *ctx, const struct server_request *req,
    struct server_response *resp)
{
	validate_webhook__handle(ctx, req, resp, true);
}

void
validate_webhook_nodeclass_handle(void *ctx, const struct server_request *req,
    struct server_response *resp)
{
	validate_webhook__handle(ctx, req, resp, false);
}
