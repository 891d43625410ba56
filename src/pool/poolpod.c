/* Pool pods (DESIGN §6.2): which NodePools a pod is for, and the taints it is made to tolerate. */
#include <string.h>

#include "stratos/poolpod.h"

const struct poolpod_taint POOLPOD_TAINTS[POOLPOD_STANDARD_TAINTS] = {
	{ NODESTATE_TAINT_STANDBY, NODESTATE_TAINT_STANDBY_VALUE, KUBE_EFFECT_NO_EXECUTE },
	{ KUBE_TAINT_UNREACHABLE, "", KUBE_EFFECT_NO_SCHEDULE },
	{ KUBE_TAINT_NOT_READY, "", KUBE_EFFECT_NO_SCHEDULE },
	{ KUBE_TAINT_SHUTDOWN, "", KUBE_EFFECT_NO_SCHEDULE },
};

/* A pod with more nodeSelector entries cannot be inside a template's labels. */
#define POOLPOD_SELECTOR_MAX LIMITS_NODEPOOL_LABELS

const char *
poolpod_rule_name(enum poolpod_rule rule)
{
	switch (rule) {
	case POOLPOD_NODE_SELECTOR:
		return "nodeSelector";
	case POOLPOD_AFFINITY:
		return "affinity";
	case POOLPOD_LABELS:
		return "labels";
	case POOLPOD_AMBIGUOUS:
		return "ambiguous";
	default:
		return "none";
	}
}

static const char *
poolpod__str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static bool
poolpod__in_values(const json_t *values, const char *name)
{
	size_t i;
	json_t *v;

	json_array_foreach(values, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
			return true;
	return false;
}

static void
poolpod__add(struct poolpod_match *m, const char *name)
{
	for (size_t i = 0; i < m->npools; i++)
		if (strcmp(m->names[i], name) == 0)
			return;
	if (m->npools == LIMITS_POOLPOD_POOLS) {
		m->truncated = true;
		return;
	}
	m->names[m->npools++] = name;
}

/*
 * One required node-affinity term: the pools it allows are the values of
 * its "stratos.sh/pool In" expressions (intersected when there are several)
 * minus NotIn values. Returns false when the term does not confine the pod
 * to pools (no In expression on the key).
 */
static bool
poolpod__term(const json_t *term, struct poolpod_match *m)
{
	const json_t *exprs = json_object_get(term, "matchExpressions");
	const json_t *first_in = NULL, *e;
	bool none = false;
	size_t i;

	json_array_foreach(exprs, i, e) {
		const char *key = poolpod__str(e, "key"), *op = poolpod__str(e, "operator");
		if (key == NULL || op == NULL || strcmp(key, NODESTATE_LABEL_POOL) != 0)
			continue;
		if (strcmp(op, "In") == 0 && first_in == NULL)
			first_in = json_object_get(e, "values");
		else if (strcmp(op, "DoesNotExist") == 0)
			none = true;
	}
	if (first_in == NULL || !json_is_array(first_in))
		return false;
	if (none)
		return true;    /* In and DoesNotExist together: the term matches no node */
	for (size_t v = 0; v < json_array_size(first_in); v++) {
		const char *name = json_string_value(json_array_get(first_in, v));
		bool keep = name != NULL;

		json_array_foreach(exprs, i, e) {
			const char *key = poolpod__str(e, "key"), *op = poolpod__str(e, "operator");
			const json_t *vals = json_object_get(e, "values");
			if (!keep || key == NULL || op == NULL || strcmp(key, NODESTATE_LABEL_POOL) != 0)
				continue;
			if (strcmp(op, "In") == 0)
				keep = poolpod__in_values(vals, name);
			else if (strcmp(op, "NotIn") == 0)
				keep = !poolpod__in_values(vals, name);
		}
		if (keep)
			poolpod__add(m, name);
	}
	return true;
}

static bool
poolpod__affinity(const json_t *spec, struct poolpod_match *m)
{
	const json_t *terms = json_object_get(json_object_get(json_object_get(json_object_get(
	    spec, "affinity"), "nodeAffinity"), "requiredDuringSchedulingIgnoredDuringExecution"),
	    "nodeSelectorTerms");
	size_t i;
	json_t *term;

	if (!json_is_array(terms) || json_array_size(terms) == 0)
		return false;
	json_array_foreach(terms, i, term) {
		if (!poolpod__term(term, m)) {
			m->npools = 0;
			m->truncated = false;
			return false;
		}
	}
	return m->npools > 0;
}

static void
poolpod__labels(const struct pools_snapshot *snap, const json_t *selector, struct poolpod_match *m)
{
	const char *keys[POOLPOD_SELECTOR_MAX], *values[POOLPOD_SELECTOR_MAX];
	const struct nodepool *found[2];
	size_t n = 0, count;
	const char *key;
	json_t *v;

	if (json_object_size(selector) > POOLPOD_SELECTOR_MAX)
		return;
	json_object_foreach((json_t *)selector, key, v) {
		if (!json_is_string(v))
			return;
		keys[n] = key;
		values[n++] = json_string_value(v);
	}
	count = pools_match_labels(snap, keys, values, n, found, 2);
	if (count == 0)
		return;
	m->rule = count == 1 ? POOLPOD_LABELS : POOLPOD_AMBIGUOUS;
	m->npools = count == 1 ? 1 : 2;
	m->nambiguous = count > 1 ? count : 0;
	for (size_t i = 0; i < m->npools; i++) {
		m->names[i] = found[i]->name;
		m->pools[i] = found[i];
	}
	if (count > 1)
		m->pools[0] = m->pools[1] = NULL;       /* not a pool pod: no pools to apply */
}

void
poolpod_detect_own(const json_t *pod, struct poolpod_match *m)
{
	const json_t *spec = json_object_get(pod, "spec");
	const char *pool = poolpod__str(json_object_get(spec, "nodeSelector"), NODESTATE_LABEL_POOL);

	memset(m, 0, sizeof(*m));
	if (!json_is_object(spec))
		return;
	if (pool != NULL && pool[0] != '\0') {
		m->rule = POOLPOD_NODE_SELECTOR;
		m->npools = 1;
		m->names[0] = pool;
	} else if (poolpod__affinity(spec, m)) {
		m->rule = POOLPOD_AFFINITY;
	}
}

void
poolpod_detect(const struct pools_snapshot *snap, const json_t *pod, struct poolpod_match *m)
{
	const json_t *selector = json_object_get(json_object_get(pod, "spec"), "nodeSelector");

	poolpod_detect_own(pod, m);
	if (m->rule == POOLPOD_NONE) {
		if (json_is_object(selector) && json_object_size(selector) > 0)
			poolpod__labels(snap, selector, m);
		return;
	}
	for (size_t i = 0; i < m->npools; i++)
		m->pools[i] = pools_find_nodepool(snap, m->names[i]);
}
