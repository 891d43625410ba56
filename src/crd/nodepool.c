/* NodePool (stratos.sh/v1alpha1): the parsed, defaulted spec and every per-field rule of DESIGN §3.2. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/limits.h"
#include "stratos/nodestate.h"
#include "stratos/nodepool.h"

const char *const NODEPOOL_EFFECT_NAMES[] = { "NoSchedule", "PreferNoSchedule", "NoExecute", NULL };
const char *const NODEPOOL_REMOVAL_NAMES[] = { "WhenNetworkReady", "WhenReady", "Never", NULL };
const char *const NODEPOOL_TIMEOUT_ACTION_NAMES[] = { "terminate", "stop", NULL };
const char *const NODEPOOL_NODE_CLASS_KINDS[] = { "AWSNodeClass", NULL };

static const char *const nodepool_spec_fields[] = {
	"poolSize", "minStandby", "template", "preWarm", "scaleDown", NULL,
};
static const char *const nodepool_template_fields[] = {
	"nodeClassRef", "labels", "startupTaints", "startupTaintRemoval", NULL,
};
static const char *const nodepool_ref_fields[] = { "kind", "name", NULL };
static const char *const nodepool_taint_fields[] = { "key", "value", "effect", NULL };
static const char *const nodepool_prewarm_fields[] = {
	"timeout", "timeoutAction", "imagesToPull", NULL,
};
static const char *const nodepool_scaledown_fields[] = {
	"enabled", "emptyNodeTTL", "drainTimeout", NULL,
};

#define NODEPOOL_RESERVED_PREFIX NODESTATE_PREFIX

struct nodepool *
nodepool_ref(struct nodepool *p)
{
	if (p != NULL)
		__atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
	return p;
}

void
nodepool_free(struct nodepool *p)
{
	if (p == NULL || __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	free(p->name);
	free(p->uid);
	free(p->resource_version);
	free(p->node_class_kind);
	free(p->node_class_name);
	fieldcheck_pairs_free(p->labels, p->nlabels);
	for (size_t i = 0; i < p->nstartup_taints; i++) {
		free(p->startup_taints[i].key);
		free(p->startup_taints[i].value);
	}
	free(p->startup_taints);
	for (size_t i = 0; i < p->nimages_to_pull; i++)
		free(p->images_to_pull[i]);
	free(p->images_to_pull);
	free(p);
}

const char *
nodepool_label(const struct nodepool *p, const char *key)
{
	for (size_t i = 0; i < p->nlabels; i++)
		if (strcmp(p->labels[i].key, key) == 0)
			return p->labels[i].value;
	return NULL;
}

/* metadata: the name is also the value of the stratos.sh/pool label, so ≤ 63 characters. */
static int
nodepool__metadata(struct fieldcheck *fc, const json_t *obj, struct nodepool *p)
{
	int rc = fieldcheck_metadata(fc, obj, &p->name, &p->uid, &p->resource_version,
	    &p->generation, &p->deleting);

	if (rc > 0 && strlen(p->name) > LIMITS_NODEPOOL_NAME) {
		size_t mark = fieldcheck_push(fc, "metadata.name");
		fieldcheck_violation(fc, "must be no more than %u characters (it is the value "
		    "of the stratos.sh/pool label)", LIMITS_NODEPOOL_NAME);
		fieldcheck_pop(fc, mark);
	}
	return rc < 0 ? rc : 0;
}

/* One entry of spec.template.labels; arg is the NodePool name. */
static bool
nodepool__label(struct fieldcheck *fc, const char *key, const json_t *v, const void *arg)
{
	const char *name = arg, *problem;
	bool ok = true;

	if ((problem = fieldcheck_qualified_name(key)) != NULL) {
		fieldcheck_violation(fc, "invalid key: %s", problem);
		ok = false;
	} else if (strncmp(key, NODEPOOL_RESERVED_PREFIX, strlen(NODEPOOL_RESERVED_PREFIX)) == 0 &&
	    strcmp(key, NODESTATE_LABEL_POOL) != 0) {
		fieldcheck_violation(fc, "the stratos.sh/ prefix is reserved "
		    "(only stratos.sh/pool may be set)");
		ok = false;
	}
	if (json_is_string(v) && (problem = fieldcheck_label_value(json_string_value(v))) != NULL) {
		fieldcheck_violation(fc, "invalid value: %s", problem);
		ok = false;
	}
	if (json_is_string(v) && strcmp(key, NODESTATE_LABEL_POOL) == 0 && name[0] != '\0' &&
	    strcmp(json_string_value(v), name) != 0) {
		fieldcheck_violation(fc, "must equal the NodePool name \"%s\"", name);
		ok = false;
	}
	return ok;
}

static int
nodepool__taints(struct fieldcheck *fc, const json_t *tmpl, struct nodepool *p)
{
	const json_t *list = NULL;
	size_t mark;

	if (fieldcheck_list(fc, tmpl, "startupTaints", 0, LIMITS_NODEPOOL_STARTUP_TAINTS, &list) <= 0)
		return 0;
	p->startup_taints = calloc(json_array_size(list) + 1, sizeof(*p->startup_taints));
	if (p->startup_taints == NULL)
		return -ENOMEM;
	mark = fieldcheck_push(fc, "startupTaints");
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *t = json_array_get(list, i);
		const char *key = NULL, *value = "", *problem;
		int effect = -1;
		bool ok = true;
		size_t m2 = fieldcheck_push_index(fc, i);

		if (!json_is_object(t)) {
			fieldcheck_violation(fc, FIELDCHECK_MSG_OBJECT);
			fieldcheck_pop(fc, m2);
			continue;
		}
		fieldcheck_unknown_fields(fc, t, nodepool_taint_fields);
		if (fieldcheck_string(fc, t, "key", FIELDCHECK_REQUIRED, &key) > 0) {
			size_t m3 = fieldcheck_push(fc, "key");
			if ((problem = fieldcheck_qualified_name(key)) != NULL) {
				fieldcheck_violation(fc, "%s", problem);
				ok = false;
			} else if (strncmp(key, NODEPOOL_RESERVED_PREFIX,
			    strlen(NODEPOOL_RESERVED_PREFIX)) == 0) {
				fieldcheck_violation(fc, "the stratos.sh/ prefix is reserved for the "
				    "taints Stratos manages");
				ok = false;
			}
			fieldcheck_pop(fc, m3);
		} else {
			ok = false;
		}
		if (fieldcheck_string(fc, t, "value", 0, &value) < 0) {
			ok = false;
		} else if ((problem = fieldcheck_label_value(value)) != NULL) {
			size_t m3 = fieldcheck_push(fc, "value");
			fieldcheck_violation(fc, "%s", problem);
			fieldcheck_pop(fc, m3);
			ok = false;
		}
		if (fieldcheck_enum(fc, t, "effect", FIELDCHECK_REQUIRED, NODEPOOL_EFFECT_NAMES,
		    &effect) <= 0)
			ok = false;
		if (ok) {
			for (size_t j = 0; j < p->nstartup_taints; j++) {
				if (strcmp(p->startup_taints[j].key, key) == 0 &&
				    (int)p->startup_taints[j].effect == KUBE_EFFECT_NO_SCHEDULE + effect) {
					fieldcheck_violation(fc, "duplicate key and effect");
					ok = false;
					break;
				}
			}
		}
		fieldcheck_pop(fc, m2);
		if (!ok)
			continue;
		p->startup_taints[p->nstartup_taints].key = strdup(key);
		p->startup_taints[p->nstartup_taints].value = strdup(value);
		/* NODEPOOL_EFFECT_NAMES lists NoSchedule, PreferNoSchedule, NoExecute in kube_taint_effect order. */
		p->startup_taints[p->nstartup_taints].effect =
		    (enum kube_taint_effect)(KUBE_EFFECT_NO_SCHEDULE + effect);
		if (p->startup_taints[p->nstartup_taints].key == NULL ||
		    p->startup_taints[p->nstartup_taints].value == NULL) {
			free(p->startup_taints[p->nstartup_taints].key);
			free(p->startup_taints[p->nstartup_taints].value);
			return -ENOMEM;
		}
		p->nstartup_taints++;
	}
	fieldcheck_pop(fc, mark);
	return 0;
}

static int
nodepool__template(struct fieldcheck *fc, const json_t *spec, struct nodepool *p)
{
	const json_t *tmpl = NULL, *ref = NULL;
	const char *s, *problem;
	size_t mark;
	int v, rc;

	if (fieldcheck_object(fc, spec, "template", FIELDCHECK_REQUIRED, &tmpl) <= 0)
		return 0;
	mark = fieldcheck_push(fc, "template");
	fieldcheck_unknown_fields(fc, tmpl, nodepool_template_fields);
	if (fieldcheck_object(fc, tmpl, "nodeClassRef", FIELDCHECK_REQUIRED, &ref) > 0) {
		size_t m2 = fieldcheck_push(fc, "nodeClassRef");
		fieldcheck_unknown_fields(fc, ref, nodepool_ref_fields);
		if (fieldcheck_enum(fc, ref, "kind", 0, NODEPOOL_NODE_CLASS_KINDS, &v) > 0 &&
		    !fieldcheck_set_string(&p->node_class_kind, NODEPOOL_NODE_CLASS_KINDS[v]))
			return -ENOMEM;
		if (fieldcheck_string(fc, ref, "name", FIELDCHECK_REQUIRED, &s) > 0) {
			size_t m3 = fieldcheck_push(fc, "name");
			if ((problem = fieldcheck_dns1123_subdomain(s)) != NULL)
				fieldcheck_violation(fc, "%s", problem);
			else if (!fieldcheck_set_string(&p->node_class_name, s))
				return -ENOMEM;
			fieldcheck_pop(fc, m3);
		}
		fieldcheck_pop(fc, m2);
	}
	if ((rc = fieldcheck_string_map(fc, tmpl, "labels", LIMITS_NODEPOOL_LABELS, nodepool__label,
	    p->name, &p->labels, &p->nlabels)) < 0)
		return rc;
	if ((rc = nodepool__taints(fc, tmpl, p)) < 0)
		return rc;
	if (fieldcheck_enum(fc, tmpl, "startupTaintRemoval", 0, NODEPOOL_REMOVAL_NAMES, &v) > 0)
		p->startup_taint_removal = (enum nodepool_taint_removal)v;
	fieldcheck_pop(fc, mark);
	return 0;
}

/* An item of preWarm.imagesToPull. */
static bool
nodepool__image(struct fieldcheck *fc, const char *s, size_t len)
{
	const char *problem;

	if (len > LIMITS_NODEPOOL_IMAGE_REF) {
		fieldcheck_violation(fc, "must be no more than %u characters",
		    LIMITS_NODEPOOL_IMAGE_REF);
		return false;
	}
	if ((problem = fieldcheck_image_ref(s)) != NULL) {
		fieldcheck_violation(fc, "must be an image reference "
		    "([registry[:port]/]path[:tag][@digest]): %s", problem);
		return false;
	}
	return true;
}

static int
nodepool__prewarm(struct fieldcheck *fc, const json_t *spec, struct nodepool *p)
{
	const json_t *pw = NULL;
	int64_t ms;
	size_t mark;
	int v, rc;

	if (fieldcheck_object(fc, spec, "preWarm", 0, &pw) <= 0)
		return 0;
	mark = fieldcheck_push(fc, "preWarm");
	fieldcheck_unknown_fields(fc, pw, nodepool_prewarm_fields);
	if (fieldcheck_duration(fc, pw, "timeout", 0, &ms) > 0) {
		if (ms < NODEPOOL_PREWARM_TIMEOUT_MIN_MS || ms > NODEPOOL_PREWARM_TIMEOUT_MAX_MS) {
			size_t m2 = fieldcheck_push(fc, "timeout");
			fieldcheck_violation(fc, "must be between 1m and 2h");
			fieldcheck_pop(fc, m2);
		} else {
			p->prewarm_timeout_ms = ms;
		}
	}
	if (fieldcheck_enum(fc, pw, "timeoutAction", 0, NODEPOOL_TIMEOUT_ACTION_NAMES, &v) > 0)
		p->prewarm_timeout_action = (enum nodepool_timeout_action)v;
	/* A set in the CRD (x-kubernetes-list-type: set): the API refuses repeats. */
	rc = fieldcheck_string_set(fc, pw, "imagesToPull", 0, LIMITS_NODEPOOL_IMAGES,
	    nodepool__image, &p->images_to_pull, &p->nimages_to_pull);
	fieldcheck_pop(fc, mark);
	return rc;
}

static void
nodepool__scaledown(struct fieldcheck *fc, const json_t *spec, struct nodepool *p)
{
	const json_t *sd = NULL;
	size_t mark;
	int64_t ms;
	bool b;

	if (fieldcheck_object(fc, spec, "scaleDown", 0, &sd) <= 0)
		return;
	mark = fieldcheck_push(fc, "scaleDown");
	fieldcheck_unknown_fields(fc, sd, nodepool_scaledown_fields);
	if (fieldcheck_bool(fc, sd, "enabled", 0, &b) > 0)
		p->scale_down_enabled = b;
	if (fieldcheck_duration(fc, sd, "emptyNodeTTL", 0, &ms) > 0)
		p->empty_node_ttl_ms = ms;
	if (fieldcheck_duration(fc, sd, "drainTimeout", 0, &ms) > 0)
		p->drain_timeout_ms = ms;
	if (p->scale_down_enabled && p->empty_node_ttl_ms == 0 &&
	    json_is_string(json_object_get(sd, "emptyNodeTTL"))) {
		size_t m2 = fieldcheck_push(fc, "emptyNodeTTL");
		fieldcheck_warning(fc, "0s stops a node the moment it is empty; "
		    "the next pod waits for a start");
		fieldcheck_pop(fc, m2);
	}
	if (p->scale_down_enabled && p->drain_timeout_ms == 0 &&
	    json_is_string(json_object_get(sd, "drainTimeout"))) {
		size_t m2 = fieldcheck_push(fc, "drainTimeout");
		fieldcheck_warning(fc, "0s leaves no time for evictions a PodDisruptionBudget "
		    "delays; such drains fail");
		fieldcheck_pop(fc, m2);
	}
	fieldcheck_pop(fc, mark);
}

static int
nodepool__spec(struct fieldcheck *fc, const json_t *obj, struct nodepool *p)
{
	const json_t *spec = NULL;
	int64_t size = -1, standby = -1;
	int rc;

	if (fieldcheck_object(fc, obj, "spec", FIELDCHECK_REQUIRED, &spec) <= 0)
		return 0;
	fieldcheck_push(fc, "spec");
	fieldcheck_unknown_fields(fc, spec, nodepool_spec_fields);
	if (fieldcheck_int(fc, spec, "poolSize", FIELDCHECK_REQUIRED, 1, NODEPOOL_POOL_SIZE_MAX,
	    &size) > 0)
		p->pool_size = (int)size;
	if (fieldcheck_int(fc, spec, "minStandby", FIELDCHECK_REQUIRED, 0, NODEPOOL_POOL_SIZE_MAX,
	    &standby) > 0) {
		if (size >= 0 && standby > size) {
			size_t m2 = fieldcheck_push(fc, "minStandby");
			fieldcheck_violation(fc, "must not be greater than spec.poolSize (%d)", (int)size);
			fieldcheck_pop(fc, m2);
			standby = size;
		}
		p->min_standby = (int)standby;
	}
	if ((rc = nodepool__template(fc, spec, p)) < 0)
		return rc;
	if ((rc = nodepool__prewarm(fc, spec, p)) < 0)
		return rc;
	nodepool__scaledown(fc, spec, p);
	fieldcheck_pop(fc, 0);
	return 0;
}

/* The whole object: metadata, then spec. */
static int
nodepool__object(struct fieldcheck *fc, const json_t *obj, void *arg)
{
	int rc;

	if ((rc = nodepool__metadata(fc, obj, arg)) < 0)
		return rc;
	return nodepool__spec(fc, obj, arg);
}

int
nodepool_parse(const json_t *obj, struct fieldcheck_report *rep, struct nodepool **out)
{
	struct nodepool *p;
	int rc;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->refs = 1;
	p->prewarm_timeout_ms = NODEPOOL_DEFAULT_PREWARM_TIMEOUT_MS;
	p->prewarm_timeout_action = NODEPOOL_TIMEOUT_STOP;
	p->startup_taint_removal = NODEPOOL_REMOVAL_WHEN_NETWORK_READY;
	p->scale_down_enabled = true;
	p->empty_node_ttl_ms = NODEPOOL_DEFAULT_EMPTY_NODE_TTL_MS;
	p->drain_timeout_ms = NODEPOOL_DEFAULT_DRAIN_TIMEOUT_MS;
	if (!fieldcheck_set_string(&p->name, "") || !fieldcheck_set_string(&p->uid, "") ||
	    !fieldcheck_set_string(&p->resource_version, "") ||
	    !fieldcheck_set_string(&p->node_class_kind, NODEPOOL_NODE_CLASS_KINDS[0]) ||
	    !fieldcheck_set_string(&p->node_class_name, "")) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = fieldcheck_walk(obj, rep, nodepool__object, p, &p->nviolations)) < 0)
		goto fail;
	*out = p;
	return 0;
fail:
	nodepool_free(p);
	return rc;
}
