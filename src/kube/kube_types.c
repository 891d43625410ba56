/* Kubernetes matching rules shared by every part: conditions, taint effects, ToleratesTaint, selector requirements. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/kube_types.h"

enum kube_cond
kube_cond_parse(const char *s)
{
	if (s == NULL)
		return KUBE_COND_ABSENT;
	if (strcmp(s, "True") == 0)
		return KUBE_COND_TRUE;
	if (strcmp(s, "False") == 0)
		return KUBE_COND_FALSE;
	return KUBE_COND_UNKNOWN;
}

static const char *const kube__effect_names[] = {
	[KUBE_EFFECT_ANY] = "",
	[KUBE_EFFECT_NO_SCHEDULE] = "NoSchedule",
	[KUBE_EFFECT_PREFER_NO_SCHEDULE] = "PreferNoSchedule",
	[KUBE_EFFECT_NO_EXECUTE] = "NoExecute",
};

int
kube_effect_parse(const char *s, uint8_t *out)
{
	if (s == NULL || s[0] == '\0') {
		*out = KUBE_EFFECT_ANY;
		return 0;
	}
	for (uint8_t i = KUBE_EFFECT_NO_SCHEDULE; i <= KUBE_EFFECT_NO_EXECUTE; i++) {
		if (strcmp(s, kube__effect_names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *
kube_effect_name(enum kube_taint_effect effect)
{
	return (unsigned)effect <= KUBE_EFFECT_NO_EXECUTE ? kube__effect_names[effect] : "";
}

int
kube_toleration_read(const json_t *tol, struct kube_toleration *out)
{
	const char *key = json_string_value(json_object_get(tol, "key"));
	const char *value = json_string_value(json_object_get(tol, "value"));
	const char *op = json_string_value(json_object_get(tol, "operator"));
	const json_t *secs = json_object_get(tol, "tolerationSeconds");

	memset(out, 0, sizeof(*out));
	if (kube_effect_parse(json_string_value(json_object_get(tol, "effect")), &out->effect) < 0)
		return -EINVAL;
	if (op != NULL && op[0] != '\0' && strcmp(op, "Exists") != 0 && strcmp(op, "Equal") != 0)
		return -EINVAL;
	out->exists = op != NULL && strcmp(op, "Exists") == 0;
	out->key = key != NULL && key[0] != '\0' ? key : NULL;
	out->value = value != NULL && value[0] != '\0' ? value : NULL;
	out->seconds = json_is_integer(secs) ? (int64_t)json_integer_value(secs) : -1;
	return 0;
}

bool
kube_toleration_tolerates(const struct kube_toleration *t, const char *key, const char *value,
    enum kube_taint_effect effect)
{
	/*
	 * k8s.io/api/core/v1/toleration.go ToleratesTaint: effect, then key
	 * (both match everything when empty), then the operator.
	 */
	if (t->effect != KUBE_EFFECT_ANY && t->effect != effect)
		return false;
	if (t->key != NULL && strcmp(t->key, key) != 0)
		return false;
	if (t->exists)
		return true;
	return strcmp(t->value != NULL ? t->value : "", value != NULL ? value : "") == 0;
}

bool
kube_tolerations_tolerate(const struct kube_toleration *t, size_t n, const char *key,
    const char *value, enum kube_taint_effect effect)
{
	for (size_t i = 0; i < n; i++)
		if (kube_toleration_tolerates(&t[i], key, value, effect))
			return true;
	return false;
}

bool
kube_tolerations_json_tolerate(const json_t *tolerations, const char *key, const char *value,
    enum kube_taint_effect effect)
{
	struct kube_toleration t;
	size_t i;
	json_t *item;

	json_array_foreach(tolerations, i, item)
		if (kube_toleration_read(item, &t) == 0 && kube_toleration_tolerates(&t, key, value, effect))
			return true;
	return false;
}

int
kube_selector_op_parse(const char *name, enum kube_selector_op *out)
{
	static const char *const names[] = { "In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt" };

	for (size_t i = 0; name != NULL && i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = (enum kube_selector_op)i;
			return 0;
		}
	}
	return -EINVAL;
}

static bool
kube__int(const char *s, long long *v)
{
	char *end;

	if (s == NULL || *s == '\0')
		return false;
	*v = strtoll(s, &end, 10);
	return *end == '\0';
}

bool
kube_selector_matches(enum kube_selector_op op, const char *have, const char *const *values,
    size_t n)
{
	long long a, b;
	bool found = false;

	switch (op) {
	case KUBE_SEL_IN:
	case KUBE_SEL_NOT_IN:
		for (size_t i = 0; have != NULL && i < n && !found; i++)
			found = strcmp(values[i], have) == 0;
		return op == KUBE_SEL_IN ? found : !found;
	case KUBE_SEL_EXISTS:
		return have != NULL;
	case KUBE_SEL_DOES_NOT_EXIST:
		return have == NULL;
	case KUBE_SEL_GT:
	case KUBE_SEL_LT:
		if (n != 1 || !kube__int(have, &a) || !kube__int(values[0], &b))
			return false;
		return op == KUBE_SEL_GT ? a > b : a < b;
	}
	return false;
}
