/* Resource lists and the scheduler's pod-request arithmetic over compact integers. */
#include <errno.h>
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

/* Adds name: "<value><suffix>" to obj unless the value is 0. */
static int
resources__format_one(json_t *obj, const char *name, int64_t v, bool milli)
{
	char text[32];

	if (v == 0)
		return 0;
	if (milli && v % 1000 != 0)
		snprintf(text, sizeof(text), "%lldm", (long long)v);
	else
		snprintf(text, sizeof(text), "%lld", (long long)(milli ? v / 1000 : v));
	return json_object_set_new(obj, name, json_string(text));
}

json_t *
resources_format_list(const struct resources *r)
{
	json_t *obj = json_object();
	int rc;

	if (obj == NULL)
		return NULL;
	rc = resources__format_one(obj, "cpu", r->cpu_milli, true);
	if (rc == 0)
		rc = resources__format_one(obj, "memory", r->memory, false);
	if (rc == 0)
		rc = resources__format_one(obj, "ephemeral-storage", r->ephemeral, false);
	for (uint32_t i = 0; rc == 0 && i < r->next; i++)
		rc = resources__format_one(obj, r->ext[i].name, r->ext[i].value, false);
	if (rc < 0) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}
