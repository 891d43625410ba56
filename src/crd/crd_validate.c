/* Validation of NodePools and AWSNodeClasses as a request: CREATE/UPDATE/DELETE rules, cross-references, manifest files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/nodeclass.h"
#include "stratos/nodepool.h"
#include "stratos/crd_validate.h"

/* Fields of an AWSNodeClass spec that existing instances keep from their launch. */
static const char *const crd_validate_launch_fields[] = {
	"instanceType", "ami", "subnetIds", "securityGroupIds", "iamInstanceProfile",
	"blockDeviceMappings", "userData", "metadataOptions", "tags", NULL,
};

static bool
crd_validate__equal(const json_t *a, const json_t *b)
{
	if (json_is_null(a))
		a = NULL;
	if (json_is_null(b))
		b = NULL;
	if (a == NULL || b == NULL)
		return a == b;
	return json_equal(a, b);
}

static bool
crd_validate__deleting(const json_t *obj)
{
	const json_t *ts = json_object_get(json_object_get(obj, "metadata"), "deletionTimestamp");

	return ts != NULL && !json_is_null(ts);
}

/* UPDATEs that change no spec are never denied (finalizer and label edits, status writes). */
static bool
crd_validate__unchanged_update(const struct crd_validate_input *in)
{
	if (in->op != CRD_VALIDATE_UPDATE || in->old_object == NULL)
		return false;
	return crd_validate__deleting(in->object) ||
	    crd_validate__equal(json_object_get(in->object, "spec"), json_object_get(in->old_object, "spec"));
}

static const char *
crd_validate__name(const json_t *obj)
{
	const char *s = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));

	return s != NULL ? s : "";
}

static void
crd_validate__nodepool_transitions(const struct crd_validate_input *in, const struct nodepool *np,
    const struct nodepool *old, struct fieldcheck_report *rep)
{
	if (old->node_class_name[0] != '\0' && np->node_class_name[0] != '\0' &&
	    strcmp(old->node_class_name, np->node_class_name) != 0) {
		if (in->nodes > 0)
			fieldcheck_report_warning(rep, "spec.template.nodeClassRef",
			    "changed while the pool has %ld node(s); they keep the old class until replaced",
			    in->nodes);
		else
			fieldcheck_report_warning(rep, "spec.template.nodeClassRef",
			    "changed; nodes launched before keep the old class until replaced");
	}
	if (in->nodes > np->pool_size && np->pool_size < old->pool_size && np->pool_size > 0)
		fieldcheck_report_warning(rep, "spec.poolSize",
		    "%d is below the pool's %ld nodes; standby nodes are terminated, running ones kept",
		    np->pool_size, in->nodes);
	for (size_t i = 0; i < old->nstartup_taints; i++) {
		const struct nodepool_taint *t = &old->startup_taints[i];
		bool kept = false;

		for (size_t j = 0; j < np->nstartup_taints && !kept; j++)
			kept = strcmp(np->startup_taints[j].key, t->key) == 0 &&
			    np->startup_taints[j].effect == t->effect;
		if (!kept)
			fieldcheck_report_warning(rep, "spec.template.startupTaints",
			    "%s:%s dropped while the pool has nodes; Stratos stops removing it from them",
			    t->key, kube_effect_name(t->effect));
	}
}

int
crd_validate_nodepool(const struct crd_validate_input *in, struct fieldcheck_report *rep)
{
	struct nodepool *np = NULL, *old = NULL;
	const struct pools_snapshot *snap = in->snap;
	int rc;

	if (in->op == CRD_VALIDATE_DELETE) {
		if (in->nodes > 0)
			fieldcheck_report_warning(rep, "", "deleting NodePool %s drains its %ld node(s) "
			    "and terminates their instances", crd_validate__name(in->old_object), in->nodes);
		return 0;
	}
	if (crd_validate__unchanged_update(in))
		return 0;
	rc = nodepool_parse(in->object, rep, &np);
	if (rc == -EINVAL)
		return 0;       /* "must be an object" is in rep */
	if (rc < 0)
		return rc;
	if (snap != NULL && snap->loaded && np->node_class_name[0] != '\0' &&
	    pools_find_nodeclass(snap, np->node_class_name) == NULL)
		fieldcheck_report_warning(rep, "spec.template.nodeClassRef.name",
		    "AWSNodeClass %s not found; the pool cannot launch nodes until it exists",
		    np->node_class_name);
	if (in->op == CRD_VALIDATE_UPDATE && in->old_object != NULL && in->nodes != 0) {
		rc = nodepool_parse(in->old_object, NULL, &old);
		if (rc == -ENOMEM) {
			nodepool_free(np);
			return rc;
		}
		if (old != NULL)
			crd_validate__nodepool_transitions(in, np, old, rep);
	}
	nodepool_free(old);
	nodepool_free(np);
	return 0;
}

/* Names of the pools of snap whose nodeClassRef is name: the first in *first, the count returned. */
static size_t
crd_validate__class_users(const struct pools_snapshot *snap, const char *name, const char **first)
{
	size_t n = 0;

	*first = NULL;
	for (size_t i = 0; snap != NULL && i < snap->nnodepools; i++) {
		if (strcmp(snap->nodepools[i]->node_class_name, name) == 0) {
			if (n++ == 0)
				*first = snap->nodepools[i]->name;
		}
	}
	return n;
}

int
crd_validate_nodeclass(const struct crd_validate_input *in, struct fieldcheck_report *rep)
{
	const struct pools_snapshot *snap = in->snap;
	const json_t *spec, *old_spec;
	struct nodeclass *nc = NULL;
	const char *first;
	size_t users;
	int rc;

	if (in->op == CRD_VALIDATE_DELETE) {
		const char *name = crd_validate__name(in->old_object);
		users = crd_validate__class_users(snap, name, &first);
		if (users > 0)
			fieldcheck_report_warning(rep, "", "AWSNodeClass %s is used by NodePool %s%s; "
			    "they cannot launch nodes without it", name, first,
			    users > 1 ? " and others" : "");
		return 0;
	}
	if (crd_validate__unchanged_update(in))
		return 0;
	rc = nodeclass_parse(in->object, rep, &nc);
	if (rc == -EINVAL)
		return 0;
	if (rc < 0)
		return rc;
	/* Launch settings only reach instances launched after the change. */
	users = snap != NULL && snap->loaded ? crd_validate__class_users(snap, nc->name, &first) : 1;
	if (in->op == CRD_VALIDATE_UPDATE && in->old_object != NULL && in->nodes != 0 && users > 0) {
		spec = json_object_get(in->object, "spec");
		old_spec = json_object_get(in->old_object, "spec");
		if (!crd_validate__equal(json_object_get(spec, "region"), json_object_get(old_spec, "region")))
			fieldcheck_report_warning(rep, "spec.region", "changed; instances in the old "
			    "region are no longer managed by Stratos");
		for (size_t i = 0; crd_validate_launch_fields[i] != NULL; i++) {
			char field[64];
			if (crd_validate__equal(json_object_get(spec, crd_validate_launch_fields[i]),
			    json_object_get(old_spec, crd_validate_launch_fields[i])))
				continue;
			snprintf(field, sizeof(field), "spec.%s", crd_validate_launch_fields[i]);
			if (in->nodes > 0)
				fieldcheck_report_warning(rep, field, "changed while %ld node(s) use this "
				    "class; their instances keep the old value until replaced", in->nodes);
			else
				fieldcheck_report_warning(rep, field, "changed; existing instances keep "
				    "the old value until replaced");
		}
	}
	nodeclass_free(nc);
	return 0;
}

/* --- manifest files --- */

struct crd_validate__seen {
	const char *kind;
	const char *name;
	size_t doc;
};

static void
crd_validate__print(FILE *out, const char *file, size_t doc, const char *kind, const char *name,
    const struct fieldcheck_report *rep, struct crd_validate_stats *st)
{
	const char *k = kind != NULL ? kind : "?";
	const char *n = name != NULL && name[0] != '\0' ? name : "<no name>";

	for (size_t i = 0; i < rep->nviolations; i++) {
		const struct fieldcheck_issue *v = &rep->violations[i];
		fprintf(out, "%s: doc %zu (%s/%s): %s%s%s\n", file, doc, k, n, v->field,
		    v->field[0] != '\0' ? ": " : "", v->message);
	}
	for (size_t i = 0; i < rep->nwarnings; i++) {
		const struct fieldcheck_issue *w = &rep->warnings[i];
		fprintf(out, "%s: doc %zu (%s/%s): warning: %s%s%s\n", file, doc, k, n, w->field,
		    w->field[0] != '\0' ? ": " : "", w->message);
	}
	if (rep->dropped > 0)
		fprintf(out, "%s: doc %zu (%s/%s): %zu more problems not shown\n", file, doc, k, n,
		    rep->dropped);
	st->violations += rep->nviolations + rep->dropped;
	st->warnings += rep->nwarnings;
}

int
crd_validate_documents(const char *file, const json_t *docs, const struct pools_snapshot *snap,
    bool other_kinds_ok, FILE *out, struct crd_validate_stats *st)
{
	struct crd_validate__seen *seen;
	size_t nseen = 0, i;
	json_t *doc;
	int rc = 0;

	seen = calloc(json_array_size(docs) + 1, sizeof(*seen));
	if (seen == NULL)
		return -ENOMEM;
	json_array_foreach(docs, i, doc) {
		struct fieldcheck_report rep;
		struct crd_validate_input in = {
			.op = CRD_VALIDATE_CREATE, .object = doc, .snap = snap, .nodes = -1,
		};
		const char *kind = json_string_value(json_object_get(doc, "kind"));
		const char *api = json_string_value(json_object_get(doc, "apiVersion"));
		const char *name = crd_validate__name(doc);
		bool is_pool = kind != NULL && strcmp(kind, NODEPOOL_KIND) == 0;
		bool is_class = kind != NULL && strcmp(kind, NODECLASS_KIND) == 0;

		fieldcheck_report_init(&rep);
		if (!json_is_object(doc)) {
			fieldcheck_report_violation(&rep, "", "must be an object (a Kubernetes resource)");
			goto print;
		}
		if (!is_pool && !is_class) {
			if (api != NULL && strncmp(api, "stratos.sh/", 11) == 0)
				fieldcheck_report_violation(&rep, "kind", "must be NodePool or AWSNodeClass");
			else if (!other_kinds_ok)
				fieldcheck_report_violation(&rep, "kind", "must be NodePool or AWSNodeClass "
				    "(this file holds only those)");
			else
				st->skipped++;
			goto print;
		}
		st->resources++;
		if (api == NULL || strcmp(api, NODEPOOL_API_VERSION) != 0)
			fieldcheck_report_violation(&rep, "apiVersion", "must be " NODEPOOL_API_VERSION);
		for (size_t j = 0; j < nseen && name[0] != '\0'; j++) {
			if (strcmp(seen[j].kind, kind) == 0 && strcmp(seen[j].name, name) == 0) {
				fieldcheck_report_violation(&rep, "metadata.name", "duplicate of doc %zu",
				    seen[j].doc);
				break;
			}
		}
		seen[nseen].kind = kind;
		seen[nseen].name = name;
		seen[nseen++].doc = i + 1;
		rc = is_pool ? crd_validate_nodepool(&in, &rep) : crd_validate_nodeclass(&in, &rep);
print:
		crd_validate__print(out, file, i + 1, kind, name, &rep, st);
		fieldcheck_report_free(&rep);
		if (rc < 0)
			break;
	}
	free(seen);
	return rc;
}
