/* Resource lists and the scheduler's pod-request arithmetic over compact integers. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/intern.h"
#include "stratos/quantity.h"
#include "stratos/resources.h"

/* A list being computed; names borrowed from the JSON. */
struct resources__acc {
	int64_t cpu, mem, eph;
	size_t next;
	const char *name[LIMITS_RESOURCES_EXTENDED];
	int64_t val[LIMITS_RESOURCES_EXTENDED];
};

static int64_t *
resources__acc_slot(struct resources__acc *a, const char *name, int *rc)
{
	if (strcmp(name, "cpu") == 0)
		return &a->cpu;
	if (strcmp(name, "memory") == 0)
		return &a->mem;
	if (strcmp(name, "ephemeral-storage") == 0)
		return &a->eph;
	for (size_t i = 0; i < a->next; i++)
		if (strcmp(a->name[i], name) == 0)
			return &a->val[i];
	if (a->next == LIMITS_RESOURCES_EXTENDED) {
		*rc = -E2BIG;
		return NULL;
	}
	a->name[a->next] = name;
	a->val[a->next] = 0;
	return &a->val[a->next++];
}

static int
resources__parse_value(const char *name, const char *text, int64_t *v)
{
	if (text == NULL)
		return -EINVAL;
	return strcmp(name, "cpu") == 0 ? quantity_parse_milli(text, v) : quantity_parse(text, v);
}

/*
 * Sets a's value of every resource of a ResourceList that except (may be
 * NULL) does not name; "pods" and the pool-pod resource never count.
 */
static int
resources__acc_set(struct resources__acc *a, json_t *list, json_t *except)
{
	const char *name;
	json_t *val;
	int rc = 0;

	json_object_foreach(list, name, val) {
		int64_t v, *slot;
		if (strcmp(name, "pods") == 0 || strcmp(name, NODESTATE_POOL_POD_RESOURCE) == 0 ||
		    (except != NULL && json_object_get(except, name) != NULL))
			continue;
		if (resources__parse_value(name, json_string_value(val), &v) < 0)
			return -EINVAL;
		slot = resources__acc_slot(a, name, &rc);
		if (slot == NULL)
			return rc;
		*slot = v;
	}
	return 0;
}

/* Reads one ResourceList into a fresh accumulator. */
static int
resources__acc_list(struct resources__acc *a, json_t *list)
{
	memset(a, 0, sizeof(*a));
	return resources__acc_set(a, list, NULL);
}

/* A container's requests, each missing one defaulting to its limit. */
static int
resources__container(struct resources__acc *a, json_t *container)
{
	json_t *res = json_object_get(container, "resources");
	json_t *req = json_object_get(res, "requests"), *lim = json_object_get(res, "limits");
	int rc = resources__acc_list(a, req);

	return rc < 0 ? rc : resources__acc_set(a, lim, req);
}

static int
resources__acc_combine(struct resources__acc *dst, const struct resources__acc *src, bool max)
{
	int rc = 0;

	dst->cpu = max ? (src->cpu > dst->cpu ? src->cpu : dst->cpu) : dst->cpu + src->cpu;
	dst->mem = max ? (src->mem > dst->mem ? src->mem : dst->mem) : dst->mem + src->mem;
	dst->eph = max ? (src->eph > dst->eph ? src->eph : dst->eph) : dst->eph + src->eph;
	for (size_t i = 0; i < src->next; i++) {
		int64_t *slot = resources__acc_slot(dst, src->name[i], &rc);
		if (slot == NULL)
			return rc;
		*slot = max ? (src->val[i] > *slot ? src->val[i] : *slot) : *slot + src->val[i];
	}
	return 0;
}

static void
resources__ext_release(const void *data, size_t len)
{
	const struct resources_ext *e = data;

	for (size_t i = 0; i < len / sizeof(*e); i++)
		intern_release(e[i].name);
}

static int
resources__ext_cmp(const void *a, const void *b)
{
	const struct resources_ext *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Turns the accumulator into an immutable list with an interned ext blob. */
static int
resources__finish(const struct resources__acc *a, int64_t pods, struct resources *out)
{
	struct resources_ext tmp[LIMITS_RESOURCES_EXTENDED];
	size_t n = 0;
	int matched = 0;

	memset(out, 0, sizeof(*out));
	memset(tmp, 0, sizeof(tmp));
	for (size_t i = 0; i < a->next; i++) {
		tmp[n].name = intern_str(a->name[i]);
		tmp[n].value = a->val[i];
		if (tmp[n].name == NULL) {
			resources__ext_release(tmp, n * sizeof(tmp[0]));
			return -ENOMEM;
		}
		n++;
	}
	if (n > 0) {
		qsort(tmp, n, sizeof(tmp[0]), resources__ext_cmp);
		out->ext = intern_blob(tmp, n * sizeof(tmp[0]), resources__ext_release, &matched);
		if (out->ext == NULL || matched)
			resources__ext_release(tmp, n * sizeof(tmp[0]));
		if (out->ext == NULL)
			return -ENOMEM;
	}
	out->next = (uint32_t)n;
	out->cpu_milli = a->cpu;
	out->memory = a->mem;
	out->ephemeral = a->eph;
	out->pods = pods;
	return 0;
}

int
resources_parse_list(json_t *list, struct resources *out)
{
	struct resources__acc a;
	json_t *pods = json_object_get(list, "pods");
	int64_t npods = 0;
	int rc;

	if (list != NULL && !json_is_object(list))
		return -EINVAL;
	rc = resources__acc_list(&a, list);
	if (rc < 0)
		return rc;
	if (pods != NULL && quantity_parse(json_string_value(pods), &npods) < 0)
		return -EINVAL;
	return resources__finish(&a, npods, out);
}

/* The resources pod-level requests may set (IsSupportedPodLevelResource). */
static bool
resources__pod_level(const char *name)
{
	return strcmp(name, "cpu") == 0 || strcmp(name, "memory") == 0 ||
	    strncmp(name, "hugepages-", 10) == 0;
}

/*
 * spec.resources (component-helpers resource.PodRequests with pod-level
 * resources on): its requests replace the containers' aggregate for the
 * resources above. A pod-level limit without a request stands in for it
 * only where the containers request none (defaultPodRequests of
 * pkg/apis/core/v1/defaults.go; the API server has normally filled the
 * request already).
 */
static int
resources__apply_pod_level(struct resources__acc *a, json_t *res)
{
	json_t *req = json_object_get(res, "requests"), *lim = json_object_get(res, "limits");
	const char *name;
	json_t *val;
	int rc = 0;

	json_object_foreach(req, name, val) {
		int64_t v, *slot;
		if (!resources__pod_level(name))
			continue;
		if (resources__parse_value(name, json_string_value(val), &v) < 0)
			return -EINVAL;
		if ((slot = resources__acc_slot(a, name, &rc)) == NULL)
			return rc;
		*slot = v;
	}
	json_object_foreach(lim, name, val) {
		int64_t v, *slot;
		if (!resources__pod_level(name) || json_object_get(req, name) != NULL)
			continue;
		if (resources__parse_value(name, json_string_value(val), &v) < 0)
			return -EINVAL;
		if ((slot = resources__acc_slot(a, name, &rc)) == NULL)
			return rc;
		if (*slot == 0)
			*slot = v;
	}
	return 0;
}

int
resources_pod_requests(json_t *spec, struct resources *out)
{
	struct resources__acc sum, init_need, sidecars, c;
	json_t *item;
	size_t i;
	int rc;

	memset(&sum, 0, sizeof(sum));
	memset(&init_need, 0, sizeof(init_need));
	memset(&sidecars, 0, sizeof(sidecars));
	json_array_foreach(json_object_get(spec, "containers"), i, item) {
		if ((rc = resources__container(&c, item)) < 0 ||
		    (rc = resources__acc_combine(&sum, &c, false)) < 0)
			return rc;
	}
	json_array_foreach(json_object_get(spec, "initContainers"), i, item) {
		const char *policy = json_string_value(json_object_get(item, "restartPolicy"));
		struct resources__acc need;

		if ((rc = resources__container(&c, item)) < 0)
			return rc;
		if (policy != NULL && strcmp(policy, "Always") == 0) {
			/* A sidecar keeps running beside everything that starts after it. */
			if ((rc = resources__acc_combine(&sum, &c, false)) < 0 ||
			    (rc = resources__acc_combine(&sidecars, &c, false)) < 0)
				return rc;
			need = sidecars;
		} else {
			need = c;
			if ((rc = resources__acc_combine(&need, &sidecars, false)) < 0)
				return rc;
		}
		if ((rc = resources__acc_combine(&init_need, &need, true)) < 0)
			return rc;
	}
	if ((rc = resources__acc_combine(&sum, &init_need, true)) < 0)
		return rc;
	if ((rc = resources__apply_pod_level(&sum, json_object_get(spec, "resources"))) < 0)
		return rc;
	if (json_object_get(spec, "overhead") != NULL) {
		if ((rc = resources__acc_list(&c, json_object_get(spec, "overhead"))) < 0 ||
		    (rc = resources__acc_combine(&sum, &c, false)) < 0)
			return rc;
	}
	return resources__finish(&sum, 1, out);
}

int64_t
resources_ext_get(const struct resources *r, const char *name)
{
	for (uint32_t i = 0; i < r->next; i++)
		if (strcmp(r->ext[i].name, name) == 0)
			return r->ext[i].value;
	return 0;
}

void
resources_release(struct resources *r)
{
	if (r != NULL) {
		intern_release(r->ext);
		r->ext = NULL;
		r->next = 0;
	}
}

void
resources_copy(struct resources *dst, const struct resources *src)
{
	*dst = *src;
	intern_ref(src->ext);
}

void
resources_sum_init(struct resources_sum *s)
{
	memset(s, 0, sizeof(*s));
}

int
resources_sum_add(struct resources_sum *s, const struct resources *r)
{
	s->cpu_milli += r->cpu_milli;
	s->memory += r->memory;
	s->ephemeral += r->ephemeral;
	s->pods += r->pods;
	for (uint32_t i = 0; i < r->next; i++) {
		size_t j;
		/* Interned names: pointer equality is string equality. */
		for (j = 0; j < s->next && s->ext_name[j] != r->ext[i].name; j++)
			;
		if (j == s->next) {
			if (s->next == LIMITS_RESOURCES_EXTENDED)
				return -E2BIG;
			s->ext_name[j] = r->ext[i].name;
			s->ext_value[j] = 0;
			s->next++;
		}
		s->ext_value[j] += r->ext[i].value;
	}
	return 0;
}

bool
resources_sum_fits(const struct resources_sum *s, const struct resources *alloc,
    const char **short_of)
{
	const char *what = NULL;

	if (s->cpu_milli > alloc->cpu_milli)
		what = "cpu";
	else if (s->memory > alloc->memory)
		what = "memory";
	else if (s->ephemeral > alloc->ephemeral)
		what = "ephemeral-storage";
	else if (s->pods > alloc->pods)
		what = "pods";
	for (size_t i = 0; what == NULL && i < s->next; i++)
		if (s->ext_value[i] > 0 && s->ext_value[i] > resources_ext_get(alloc, s->ext_name[i]))
			what = s->ext_name[i];
	if (short_of != NULL)
		*short_of = what;
	return what == NULL;
}

bool
resources_sum_fits_pod(const struct resources_sum *used, const struct resources *pod,
    const struct resources *alloc, const char **short_of)
{
	const char *what = NULL;

	/* fitsRequest's order: the pod slot first, then each resource the pod asks for. */
	if (used->pods + 1 > alloc->pods)
		what = "pods";
	else if (pod->cpu_milli > 0 && pod->cpu_milli > alloc->cpu_milli - used->cpu_milli)
		what = "cpu";
	else if (pod->memory > 0 && pod->memory > alloc->memory - used->memory)
		what = "memory";
	else if (pod->ephemeral > 0 && pod->ephemeral > alloc->ephemeral - used->ephemeral)
		what = "ephemeral-storage";
	for (uint32_t i = 0; what == NULL && i < pod->next; i++) {
		const struct resources_ext *e = &pod->ext[i];
		int64_t in_use = 0;

		if (e->value <= 0)
			continue;
		for (size_t j = 0; j < used->next; j++)
			if (strcmp(used->ext_name[j], e->name) == 0)
				in_use = used->ext_value[j];
		if (e->value > resources_ext_get(alloc, e->name) - in_use)
			what = e->name;
	}
	if (short_of != NULL)
		*short_of = what;
	return what == NULL;
}

/* ---- canonical quantity strings (apimachinery resource/quantity.go) ---- */

/* Longest quantity written: a sign, 19 digits of a 64-bit magnitude, "m" or "Ki". */
#define RESOURCES__QUANTITY_LEN 32

/*
 * DecimalSI: the value is mag * 10^exp10. As int64Amount.AsCanonicalBytes,
 * every factor of ten goes into the exponent, which is then lowered to a
 * multiple of three, and the suffix names it (n u m "" k M G T P E).
 * Lowering only restores zeros just removed, so the mantissa cannot overflow.
 */
static void
resources__format_decimal(bool negative, uint64_t mag, int exp10,
    char out[RESOURCES__QUANTITY_LEN])
{
	static const char *const suffix[] = { "n", "u", "m", "", "k", "M", "G", "T", "P", "E" };

	while (mag % 10 == 0) {
		mag /= 10;
		exp10++;
	}
	while (exp10 % 3 != 0) {
		mag *= 10;
		exp10--;
	}
	snprintf(out, RESOURCES__QUANTITY_LEN, "%s%" PRIu64 "%s", negative ? "-" : "", mag,
	    suffix[exp10 / 3 + 3]);
}

/* A count or millicores (exp10 = -3) as DecimalSI. */
static void
resources__format_si(int64_t v, int exp10, char out[RESOURCES__QUANTITY_LEN])
{
	/* The magnitude as unsigned: -INT64_MIN does not fit in int64. */
	uint64_t mag = v < 0 ? -(uint64_t)v : (uint64_t)v;

	if (v == 0)
		snprintf(out, RESOURCES__QUANTITY_LEN, "0");
	else
		resources__format_decimal(v < 0, mag, exp10, out);
}

/*
 * Bytes as BinarySI (CanonicalizeBytes): below 1024 in magnitude the format
 * becomes DecimalSI ("to avoid rounding and confusion"); otherwise the
 * largest power of 1024 that divides the value is the suffix. A multiple of
 * 1024 is kept binary; anything else is written as DecimalSI, because a
 * suffix-less number parses back as DecimalSI and the API server would print
 * 1000000000 as "1G": only that way is the string canonical as it stands.
 */
static void
resources__format_bytes(int64_t v, char out[RESOURCES__QUANTITY_LEN])
{
	static const char *const suffix[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
	uint64_t mag = v < 0 ? -(uint64_t)v : (uint64_t)v;
	int exp = 0;

	if (mag < 1024 || mag % 1024 != 0) {
		resources__format_si(v, 0, out);
		return;
	}
	while (mag % 1024 == 0) {
		mag /= 1024;
		exp++;
	}
	snprintf(out, RESOURCES__QUANTITY_LEN, "%s%" PRIu64 "%s", v < 0 ? "-" : "", mag,
	    suffix[exp]);
}

/* hugepages-<size> counts bytes; every other extended resource counts things. */
static bool
resources__is_bytes(const char *name)
{
	return strcmp(name, "memory") == 0 || strcmp(name, "ephemeral-storage") == 0 ||
	    strncmp(name, "hugepages-", 10) == 0;
}

static int
resources__set_quantity(json_t *obj, const char *name, int64_t v, bool milli)
{
	char text[RESOURCES__QUANTITY_LEN];

	if (milli)
		resources__format_si(v, -3, text);
	else if (resources__is_bytes(name))
		resources__format_bytes(v, text);
	else
		resources__format_si(v, 0, text);
	return json_object_set_new(obj, name, json_string(text)) == 0 ? 0 : -ENOMEM;
}

int
resources_format_list(const struct resources *r, json_t **out)
{
	json_t *obj = json_object();
	int rc = obj != NULL ? 0 : -ENOMEM;

	*out = NULL;
	if (rc == 0 && r->cpu_milli != 0)
		rc = resources__set_quantity(obj, "cpu", r->cpu_milli, true);
	if (rc == 0 && r->memory != 0)
		rc = resources__set_quantity(obj, "memory", r->memory, false);
	if (rc == 0 && r->ephemeral != 0)
		rc = resources__set_quantity(obj, "ephemeral-storage", r->ephemeral, false);
	if (rc == 0 && r->pods != 0)
		rc = resources__set_quantity(obj, "pods", r->pods, false);
	for (uint32_t i = 0; rc == 0 && i < r->next; i++)
		rc = resources__set_quantity(obj, r->ext[i].name, r->ext[i].value, false);
	if (rc < 0) {
		json_decref(obj);
		return rc;
	}
	*out = obj;
	return 0;
}
